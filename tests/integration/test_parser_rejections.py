"""Strict parsing end to end (PRODUCT.md section 5, RFC 9112 section 11; the rules and statuses
are in docs/http1-parser.md): for every refused request the client gets the status and a closed
connection, the backend receives nothing, and the proxy goes on serving."""

from __future__ import annotations

import pytest
from harness import Backend, Proxy, ProxySpec

H = b"Host: app.example\r\n"

CASES = {
    # framing
    "cl_and_te": (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n",
        400,
    ),
    "two_different_content_lengths": (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    ),
    "content_length_list": (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello",
        400,
    ),
    "content_length_signed": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", 400),
    "content_length_not_a_number": (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5a\r\n\r\nhello",
        400,
    ),
    "te_gzip_chunked": (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    "te_chunked_not_final": (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        400,
    ),
    "te_chunked_twice": (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "te_in_http10": (
        b"POST / HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "bad_chunk_size": (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    # request line
    "http_2_0": (b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    "malformed_version": (b"GET / http/1.1\r\n" + H + b"\r\n", 400),
    "space_in_target": (b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400),
    "raw_8bit_target": (b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", 400),
    "invalid_method": (b"G(T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    # fields
    "bare_lf": (b"GET / HTTP/1.1\nHost: app.example\n\n", 400),
    "bare_lf_in_one_field": (b"GET / HTTP/1.1\r\n" + H + b"X-A: 1\nX-B: 2\r\n\r\n", 400),
    "bare_cr": (b"GET / HTTP/1.1\r\n" + H + b"X-A: 1\rX-B: 2\r\n\r\n", 400),
    "obs_fold": (b"GET / HTTP/1.1\r\n" + H + b"X-A: 1\r\n  continued\r\n\r\n", 400),
    "space_before_colon": (b"GET / HTTP/1.1\r\nHost : app.example\r\n\r\n", 400),
    "invalid_name_char": (b"GET / HTTP/1.1\r\n" + H + b"X@A: 1\r\n\r\n", 400),
    "empty_name": (b"GET / HTTP/1.1\r\n" + H + b": 1\r\n\r\n", 400),
    "nul_in_value": (b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
    "del_in_value": (b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x7fb\r\n\r\n", 400),
    "65_fields": (
        b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-F%d: v\r\n" % i for i in range(64)) + b"\r\n",
        431,
    ),
    "head_over_header_bytes": (
        b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * (17 * 1024) + b"\r\n\r\n",
        431,
    ),
    # Host
    "missing_host": (b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 400),
    "two_hosts": (b"GET / HTTP/1.1\r\n" + H + H + b"\r\n", 400),
    "invalid_host": (b"GET / HTTP/1.1\r\nHost: app example\r\n\r\n", 400),
}


@pytest.fixture(scope="module")
def setup(synapserve_cmd, tmp_path_factory):
    backend = Backend("a")
    proxy = Proxy(
        synapserve_cmd, str(tmp_path_factory.mktemp("parser")), ProxySpec({"app": [backend]})
    )
    try:
        proxy.start()
        yield proxy, backend
        proxy.stop()
    finally:
        if proxy.running:
            proxy.proc.kill()
        backend.close()


@pytest.mark.parametrize("data,status", CASES.values(), ids=CASES.keys())
def test_refused(setup, data, status):
    proxy, backend = setup
    before = (backend.accepted, backend.requests)
    r = proxy.raw(data)
    assert r, "no answer"
    assert r.status == status
    assert r.closed, "the connection stays open after a refused request"
    assert r.response().header("Connection") == "close"
    assert (backend.accepted, backend.requests) == before, "something reached the backend"
    ok = proxy.get("/")
    assert (ok.status, ok.body) == (200, b"a")


def test_refusals_are_counted_as_4xx_and_5xx(setup):
    proxy, _ = setup
    four = proxy.metric("synapserve_requests_total", code="4xx")
    five = proxy.metric("synapserve_requests_total", code="5xx")
    assert proxy.raw(CASES["obs_fold"][0]).status == 400
    assert proxy.raw(CASES["http_2_0"][0]).status == 505
    assert proxy.metric("synapserve_requests_total", code="4xx") == four + 1
    assert proxy.metric("synapserve_requests_total", code="5xx") == five + 1


def test_64_fields_and_a_head_just_under_header_bytes_are_accepted(setup):
    proxy, backend = setup
    many = [(f"X-F{i}", "v") for i in range(63)]  # + Host = 64, the limit
    r = proxy.get("/echo", headers=many)
    assert r.status == 200
    assert len(r.json()["headers"]) == 64 + 3  # and the X-Forwarded-* the proxy adds
    big = [("X-Big", "v" * (15 * 1024))]
    assert proxy.get("/", headers=big).status == 200


@pytest.mark.parametrize("limit", [32, 64], ids=["32k", "64k"])
def test_header_bytes_above_16k_is_honoured(synapserve, backends, limit):
    """[limits] header_bytes may be set from 1k up to 64k (docs/configuration.md)."""
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]}, limits={"header_bytes": f"{limit}k"})
    value = "v" * ((limit - 4) * 1024)
    r = proxy.get("/echo", headers=[("X-Big", value)])
    assert r.status == 200
    assert r.json()["headers"][1] == ["X-Big", value]
    r = proxy.raw(b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * (limit * 1024) + b"\r\n\r\n")
    assert r.status == 431


def test_a_smaller_header_bytes_is_enforced(synapserve, backends):
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]}, limits={"header_bytes": "2k", "headers": 8})
    assert proxy.get("/", headers=[("X-Big", "v" * 1000)]).status == 200
    too_big = b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 3000 + b"\r\n\r\n"
    assert proxy.raw(too_big).status == 431
    assert proxy.get("/", headers=[(f"X-F{i}", "v") for i in range(7)]).status == 200
    assert proxy.get("/", headers=[(f"X-F{i}", "v") for i in range(8)]).status == 431
    assert a.requests == 2
