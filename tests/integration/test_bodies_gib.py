"""1 GiB bodies through the proxy, each direction, framed by Content-Length and chunked, with a
checksum at the far end.

The harness's Backend builds bodies in memory, which 1 GiB does not suit; this module has its
own small backend that streams a repeating 1 MiB block and hashes what it receives, and a client
that does the same, so that the only large cost is the bytes themselves. Content-Length bodies
of this size go through the proxy by splice (the test checks the counter); chunked ones are
relayed through the workers' buffers, their framing checked on the way.
"""

from __future__ import annotations

import functools
import hashlib
import json
import socket
import threading

import pytest
from harness import LOCALHOST

MiB = 1 << 20
GiB = 1 << 30
BLOCK = bytes(range(256)) * (MiB // 256)


@functools.lru_cache(maxsize=1)
def gib_sha256() -> str:
    h = hashlib.sha256()
    for _ in range(GiB // MiB):
        h.update(BLOCK)
    return h.hexdigest()


def _send_body(sock: socket.socket, chunked: bool) -> None:
    for _ in range(GiB // MiB):
        if chunked:
            sock.sendall(b"%x\r\n" % MiB)
            sock.sendall(BLOCK)
            sock.sendall(b"\r\n")
        else:
            sock.sendall(BLOCK)
    if chunked:
        sock.sendall(b"0\r\n\r\n")


def _head(f) -> tuple[str, dict[str, str]]:
    first = f.readline().decode("latin-1").rstrip("\r\n")
    fields = {}
    while line := f.readline():
        if line in (b"\r\n", b"\n"):
            break
        k, _, v = line.decode("latin-1").partition(":")
        fields[k.strip().lower()] = v.strip()
    return first, fields


def _read_body(f, fields: dict[str, str]) -> tuple[int, str]:
    """Length and sha256 of a body framed as fields say, read from a buffered file."""
    h, n = hashlib.sha256(), 0
    if fields.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(f.readline().split(b";")[0], 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return n, h.hexdigest()
            left = size
            while left:
                data = f.read(min(left, MiB))
                if not data:
                    raise ConnectionError("body cut short")
                h.update(data)
                left -= len(data)
            n += size
            f.readline()
    left = int(fields.get("content-length", "0"))
    while left:
        data = f.read(min(left, MiB))
        if not data:
            raise ConnectionError("body cut short")
        h.update(data)
        n += len(data)
        left -= len(data)
    return n, h.hexdigest()


class GiBBackend:
    """GET /down?chunked=0|1 answers 1 GiB; POST /up answers {"length", "sha256"} of what
    it received. One request per connection (it answers Connection: close)."""

    def __init__(self) -> None:
        self._lst = socket.create_server((LOCALHOST, 0))
        self.address = f"{LOCALHOST}:{self._lst.getsockname()[1]}"
        self.errors: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def server(self) -> dict:
        return {"address": self.address}

    def close(self) -> None:
        self._lst.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._lst.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb", buffering=MiB) as f:
            try:
                first, fields = _head(f)
                target = first.split(" ")[1] if first else ""
                if target.startswith("/down"):
                    chunked = "chunked=1" in target
                    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {GiB}"
                    conn.sendall(
                        f"HTTP/1.1 200 OK\r\n{framing}\r\nConnection: close\r\n\r\n".encode()
                    )
                    _send_body(conn, chunked)
                else:
                    n, digest = _read_body(f, fields)
                    body = json.dumps({"length": n, "sha256": digest}).encode()
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
                    )
            except (OSError, ValueError) as e:
                self.errors.append(repr(e))


@pytest.fixture
def gib(synapserve):
    backend = GiBBackend()
    proxy = synapserve(
        upstreams={"app": {"servers": [backend.server()], "read_timeout": "120s"}},
        limits={"body_bytes": "2g", "client_body_timeout": "120s"},
        server={"workers": 1},
    )
    yield proxy, backend
    backend.close()


def _splices(proxy) -> float:
    return proxy.metric("synapserve_io_uring_ops_total", op="splice")


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_a_gib_download(gib, chunked):
    proxy, backend = gib
    before = _splices(proxy)
    with socket.create_connection((LOCALHOST, proxy.ports["http"]), timeout=60) as s:
        s.sendall(f"GET /down?chunked={int(chunked)} HTTP/1.1\r\nHost: gib\r\n\r\n".encode())
        with s.makefile("rb", buffering=MiB) as f:
            first, fields = _head(f)
            assert first.startswith("HTTP/1.1 200"), first
            assert _read_body(f, fields) == (GiB, gib_sha256())
    assert not backend.errors
    if not chunked:
        assert _splices(proxy) - before >= 2 * (GiB // MiB) * 0.5  # most of it by splice


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_a_gib_upload(gib, chunked):
    proxy, backend = gib
    before = _splices(proxy)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {GiB}"
    with socket.create_connection((LOCALHOST, proxy.ports["http"]), timeout=60) as s:
        s.sendall(f"POST /up HTTP/1.1\r\nHost: gib\r\n{framing}\r\n\r\n".encode())
        _send_body(s, chunked)
        with s.makefile("rb", buffering=MiB) as f:
            first, fields = _head(f)
            assert first.startswith("HTTP/1.1 200"), first
            got = json.loads(f.read(int(fields["content-length"])))
    assert got == {"length": GiB, "sha256": gib_sha256()}
    assert not backend.errors
    if not chunked:
        assert _splices(proxy) - before >= 2 * (GiB // MiB) * 0.5
