"""Unsent bytes held in the kernel (issue 3, the 1 MiB benchmark): TCP_NOTSENT_LOWAT.

Every connection synapserve accepts or opens gets TCP_NOTSENT_LOWAT 16 KiB: a send or splice
into it stops once 16 KiB wait unsent, and the rest of a large body waits in synapserve's pipe
and in the upstream socket until the client's window opens. Without it one splice moves up to a
whole pipe (1 MiB) into the socket, and the client's own ACKs send it (on the client's CPU).
SYN_NOTSENT_LOWAT=off leaves the kernel's default, SYN_NOTSENT_LOWAT=N sets N (A/B benchmarks).
Kernel TLS connections go back to the kernel's default at the switch; make test-ktls-vm moves
1 MiB bodies through them (this machine has no kTLS).

The proxy's own sockets are looked at from here with pidfd_getfd(2) (Linux 5.6, and the right to
ptrace the proxy): the option's value, and how many bytes wait unsent (SIOCOUTQNSD).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
import time

import pytest
from harness import LOCALHOST, HttpConn, build_request, payload_sha256, sha256

TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)
SIOCOUTQNSD = 0x894B  # bytes in the send queue not yet sent
SYS_PIDFD_GETFD = 438  # the same number on every architecture
KiB, MiB = 1 << 10, 1 << 20

_libc = ctypes.CDLL(None, use_errno=True)


def _pidfd_getfd(pidfd: int, fd: int) -> int:
    got = _libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
    if got < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return got


def proxy_socket(proxy, peer: tuple[str, int]) -> socket.socket:
    """A duplicate of the proxy's TCP socket whose peer is `peer` (closed by the caller); a
    connection just made may not be accepted yet."""
    deadline = time.monotonic() + 5
    while True:
        s = _find_socket(proxy.proc.pid, peer)
        if s is not None:
            return s
        if time.monotonic() > deadline:
            raise AssertionError(f"the proxy has no socket connected to {peer}")
        time.sleep(0.02)


def _find_socket(pid: int, peer: tuple[str, int]) -> socket.socket | None:
    pidfd = os.pidfd_open(pid)
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                    continue
                fd = _pidfd_getfd(pidfd, int(name))
            except OSError as e:
                if e.errno in (errno.EPERM, errno.ENOSYS):
                    pytest.skip(f"pidfd_getfd(2) on the proxy: {e.strerror}")
                continue  # closed meanwhile
            s = socket.socket(fileno=fd)
            try:
                if s.type == socket.SOCK_STREAM and s.getpeername() == peer:
                    return s
            except OSError:
                pass
            s.close()
    finally:
        os.close(pidfd)
    return None


def unsent(s: socket.socket) -> int:
    out = bytearray(4)
    fcntl.ioctl(s.fileno(), SIOCOUTQNSD, out)
    return struct.unpack("i", out)[0]


def lowat(s: socket.socket) -> int:
    return s.getsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT)


def stalled_download(proxy, path: str):
    """A client that asks for `path` and reads nothing yet (a 16 KiB receive buffer): the
    client connection, and the proxy's socket to it once the proxy has pushed all it will."""
    c = HttpConn(proxy.ports["http"], rcvbuf=16 * KiB)
    c.send(build_request("GET", path))
    mine = proxy_socket(proxy, c.sock.getsockname())
    last, still = -1, 0
    deadline = time.monotonic() + 10
    while still < 5 and time.monotonic() < deadline:  # until the queue stops moving
        time.sleep(0.05)
        now = unsent(mine)
        still = still + 1 if now == last else 0
        last = now
    return c, mine


def test_both_sides_get_16_kib(synapserve, backends, monkeypatch):
    monkeypatch.delenv("SYN_NOTSENT_LOWAT", raising=False)
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]}, server={"workers": 1})
    with proxy.connect() as c:
        assert c.get("/").body == b"a"  # the upstream connection stays in the pool
        client_side = proxy_socket(proxy, c.sock.getsockname())
        upstream_side = proxy_socket(proxy, (LOCALHOST, a.port))
        try:
            assert (lowat(client_side), lowat(upstream_side)) == (16 * KiB, 16 * KiB)
        finally:
            client_side.close()
            upstream_side.close()


@pytest.mark.parametrize("setting, want", [("off", 0), ("65536", 65536)])
def test_the_environment_sets_it(synapserve, backends, monkeypatch, setting, want):
    monkeypatch.setenv("SYN_NOTSENT_LOWAT", setting)
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]}, server={"workers": 1})
    with proxy.connect() as c:
        assert c.get("/").body == b"a"
        s = proxy_socket(proxy, c.sock.getsockname())
        try:
            assert lowat(s) == want  # 0: the kernel's default, none of our own
        finally:
            s.close()


@pytest.mark.parametrize("setting", ["default", "off"])
def test_a_stalled_client_holds_little_in_the_kernel(synapserve, backends, monkeypatch, setting):
    """A 4 MiB spliced body to a client that does not read: with the limit at most 16 KiB wait
    unsent in the proxy's socket (the rest waits in its pipe and the upstream socket); without
    it most of a pipe's worth does. Either way the whole body arrives once the client reads."""
    if setting == "off":
        monkeypatch.setenv("SYN_NOTSENT_LOWAT", "off")
    else:
        monkeypatch.delenv("SYN_NOTSENT_LOWAT", raising=False)
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]}, server={"workers": 1})
    splices = proxy.metric("synapserve_io_uring_ops_total", op="splice")
    c, mine = stalled_download(proxy, f"/bytes/{4 * MiB}")
    try:
        waiting = unsent(mine)
        if setting == "off":
            assert waiting > 256 * KiB
        else:
            # the limit is checked before each new segment: one more may start past it
            assert 0 < waiting <= 16 * KiB + 64 * KiB
        assert sha256(c.read_response().body) == payload_sha256(4 * MiB)
    finally:
        mine.close()
        c.close()
    assert proxy.metric("synapserve_io_uring_ops_total", op="splice") > splices


def test_a_static_file_to_a_stalled_client(synapserve, backends, tmp_path, monkeypatch):
    """The same for a static file, spliced from the file."""
    monkeypatch.delenv("SYN_NOTSENT_LOWAT", raising=False)
    (a,) = backends("a")
    (tmp_path / "s").mkdir()
    blob = os.urandom(3 * MiB)
    (tmp_path / "s" / "big.bin").write_bytes(blob)
    sites = {"main": {"hosts": ["*"], "routes": {"/": "app", "/s/": {"root": str(tmp_path)}}}}
    proxy = synapserve(upstreams={"app": [a]}, sites=sites, server={"workers": 1})
    c, mine = stalled_download(proxy, "/s/big.bin")
    try:
        assert 0 < unsent(mine) <= 16 * KiB + 64 * KiB
        assert c.read_response().body == blob
    finally:
        mine.close()
        c.close()
