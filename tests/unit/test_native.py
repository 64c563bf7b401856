"""The cffi binding: the compiled module loads and reaches the real parser."""

from __future__ import annotations

import pytest

from synapserve import native


def test_abi_and_versions():
    assert native.lib.syn_abi_version() == native.ABI_VERSION
    assert native.native_version() == "0.1.0"
    assert native.simd_level() in {"scalar", "sse4.2", "avx2"}


def test_valid_request_gives_head_length():
    head = b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n"
    got = native.parse_request(head + b"body")
    assert got == native.ParseResult(len(head), 0, "")


def test_incomplete_request():
    assert native.parse_request(b"GET /a HTTP/1.1\r\nHost: x\r\n").rc == -2


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            "both Content-Length and Transfer-Encoding",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
            "conflicting Content-Length values",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            501,
            "unsupported transfer coding",
        ),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "unsupported HTTP version"),
        (b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "bare LF line ending"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", 400, "obsolete line folding"),
        (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "whitespace before colon"),
        (
            b"GET / HTTP/1.1\r\n"
            + b"".join(b"X-%d: y\r\n" % i for i in range(65))
            + b"Host: a\r\n\r\n",
            431,
            "too many header fields",
        ),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 70000, 431, "header section too large"),
        (b"GET / HTTP/1.1\r\n\r\n", 400, "missing Host"),
    ],
)
def test_rejections_carry_status_and_reason(data, status, reason):
    got = native.parse_request(data)
    assert (got.rc, got.status, got.reason) == (-1, status, reason)
