"""Bodies, framing and connection handling end to end (PRODUCT.md section 5, first paragraph).

Sizes: 0, 1 MiB and 64 MiB in each direction, framed by Content-Length and chunked; 1 GiB in
test_bodies_gib.py, with a backend and a client of its own that stream instead of building the
body in memory.
"""

from __future__ import annotations

import socket

import pytest
from harness import build_request, payload, payload_sha256, sha256, wait_for

MiB = 1 << 20
SIZES = [0, MiB, 64 * MiB]
FRAMINGS = ["length", "chunked"]


@pytest.fixture
def proxy(synapserve, backends):
    (a,) = backends("a")
    p = synapserve(upstreams={"app": [a]})
    p.backend = a
    return p


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("size", SIZES, ids=["0", "1MiB", "64MiB"])
def test_upload(proxy, size, framing):
    """POST a body; the backend checksums what it received (and answers chunked when the
    client sent chunked)."""
    proxy.backend.chunked = framing == "chunked"
    body = payload(size)
    r = proxy.request("POST", "/echo", body=body, chunked=framing == "chunked")
    assert r.status == 200
    seen = r.json()
    assert (seen["body_length"], seen["body_sha256"]) == (size, payload_sha256(size))
    if framing == "chunked":
        assert seen["chunked"] and r.header("Transfer-Encoding") == "chunked"
    else:
        assert dict((k.lower(), v) for k, v in seen["headers"])["content-length"] == str(size)


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("size", SIZES, ids=["0", "1MiB", "64MiB"])
def test_download(proxy, size, framing):
    path = f"/bytes/{size}" if framing == "length" else f"/chunked/{size}"
    r = proxy.get(path)
    assert r.status == 200
    assert (len(r.body), sha256(r.body)) == (size, payload_sha256(size))
    if framing == "chunked":
        assert r.header("Transfer-Encoding") == "chunked"
    else:
        assert r.header("Content-Length") == str(size)


def test_pipelined_requests_are_answered_in_order(synapserve, backends):
    a, b = backends("a", "b")
    proxy = synapserve(upstreams={"app": [a, b]})
    with proxy.connect() as c:
        # the first is the slowest: its answer must still come first
        c.send(
            build_request("GET", "/echo?n=1&delay=200")
            + build_request("POST", "/echo?n=2", body=b"second body")
            + build_request("GET", "/echo?n=3")
        )
        got = [c.read_response() for _ in range(3)]
        assert [r.status for r in got] == [200, 200, 200]
        targets = [r.json()["target"] for r in got]
        assert targets == ["/echo?n=1&delay=200", "/echo?n=2", "/echo?n=3"]
        assert got[1].json()["body_sha256"] == sha256(b"second body")
        assert not c.at_eof(timeout=0.2)  # and the connection stays open


def test_http10_client_gets_a_response_then_close(proxy):
    with proxy.connect() as c:
        r = c.request("GET", "/echo", version="HTTP/1.0", host=None)
        assert r.status == 200
        assert r.json()["method"] == "GET"
        assert c.at_eof()


def test_http10_client_keep_alive_when_asked(proxy):
    with proxy.connect() as c:
        first = c.request("GET", "/", version="HTTP/1.0", headers=[("Connection", "keep-alive")])
        assert (first.status, first.body) == (200, b"a")
        assert (first.header("Connection") or "").lower() == "keep-alive"
        second = c.request("GET", "/", version="HTTP/1.0", headers=[("Connection", "keep-alive")])
        assert (second.status, second.body) == (200, b"a")
    assert proxy.backend.requests == 2


def test_http10_client_gets_a_chunked_response_decoded(proxy):
    """An HTTP/1.0 client cannot read chunked framing: it must get the body itself, delimited
    by the close."""
    size = 300_000
    with proxy.connect() as c:
        r = c.request("GET", f"/chunked/{size}", version="HTTP/1.0")
        assert r.status == 200
        assert r.header("Transfer-Encoding") is None
        assert (len(r.body), sha256(r.body)) == (size, payload_sha256(size))
        assert c.at_eof()


def test_expect_100_continue(proxy):
    body = payload(100_000)
    with proxy.connect() as c:
        head = build_request(
            "POST",
            "/echo",
            headers=[("Expect", "100-continue"), ("Content-Length", str(len(body)))],
        )
        c.send(head)
        interim = c.read_response(interim=True)
        assert interim.status == 100  # before any byte of the body was sent
        c.send(body)
        r = c.read_response()
        assert r.status == 200
        assert (r.json()["body_length"], r.json()["body_sha256"]) == (len(body), sha256(body))


def test_head_response_has_no_body_and_the_connection_goes_on(proxy):
    with proxy.connect() as c:
        r = c.request("HEAD", "/bytes/5000")
        assert (r.status, r.header("Content-Length"), r.body) == (200, "5000", b"")
        r = c.request("GET", "/bytes/10")
        assert (r.status, r.body) == (200, payload(10))


@pytest.mark.parametrize("framing", FRAMINGS)
def test_body_over_the_limit_gives_413(synapserve, backends, framing):
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]}, limits={"body_bytes": "1k"})
    r = proxy.raw(
        build_request("POST", "/", body=payload(2048), chunked=framing == "chunked"), timeout=2
    )
    assert r.status == 413
    assert r.closed
    assert a.requests == 0
    assert proxy.get("/").status == 200


def test_413_comes_instead_of_100_continue(synapserve, backends):
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]}, limits={"body_bytes": "1k"})
    with proxy.connect() as c:
        c.send(
            build_request(
                "POST", "/", headers=[("Expect", "100-continue"), ("Content-Length", "2048")]
            )
        )
        assert c.read_response(interim=True).status == 413
    assert a.requests == 0


def test_keep_alive_many_requests_few_backend_connections(proxy):
    with proxy.connect() as c:
        got = [c.get(f"/echo?i={i}") for i in range(200)]
    assert [r.status for r in got] == [200] * 200
    # one client connection lives on one worker, and requests come one at a time: one pooled
    # connection to the backend carries them all
    assert proxy.backend.connections == 1
    assert {r.json()["conn"] for r in got} == {got[0].json()["conn"]}


def test_pool_is_shared_by_client_connections(proxy):
    workers = 2
    got = [proxy.get("/echo") for _ in range(100)]  # a new client connection each
    assert [r.status for r in got] == [200] * 100
    assert proxy.backend.connections <= workers
    assert proxy.metric("synapserve_connections_accepted_total", listener="http") == 100


def test_client_closing_mid_response_does_not_disturb_others(proxy):
    s = socket.create_connection(("127.0.0.1", proxy.ports["http"]))
    s.sendall(build_request("GET", f"/bytes/{64 * MiB}"))
    s.recv(1000)
    s.close()  # walks away with most of 64 MiB unsent
    r = proxy.get("/bytes/1000")
    assert (r.status, r.body) == (200, payload(1000))
    wait_for(
        lambda: proxy.metric("synapserve_connections_active", listener="http") == 0,
        what="no client connection left open",
    )


def test_keepalive_0_opens_a_connection_per_request(synapserve, backends):
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": {"servers": [a], "keepalive": 0}})
    with proxy.connect() as c:
        assert [c.get("/").status for _ in range(10)] == [200] * 10
    assert a.connections == 10


def test_backend_connection_close_is_honoured_and_the_client_kept(proxy):
    proxy.backend.keepalive = False  # every answer says Connection: close
    with proxy.connect() as c:
        got = [c.get("/") for _ in range(10)]
        assert [(r.status, r.body) for r in got] == [(200, b"a")] * 10
        assert all(r.header("Connection") is None for r in got)  # the client's stays open
        assert not c.at_eof(timeout=0.2)
    assert proxy.backend.connections == 10


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_a_response_delimited_by_close(proxy, version):
    proxy.backend.mode = "eof_body"
    size = 200_000
    with proxy.connect() as c:
        r = c.request("GET", f"/bytes/{size}", version=version)
        assert r.status == 200
        assert (len(r.body), sha256(r.body)) == (size, payload_sha256(size))
    assert proxy.get("/bytes/10").body == payload(10)
