"""Multishot receives (issue 3): one receive armed per connection answers every request on it.

Where the kernel has them (6.0), a kept-alive client connection costs no receive submission
per request: the receive armed for the first request stays armed. What comes while the proxy does
not want it (pipelined requests behind a slow one) waits in a stash of a few buffers, then the
receive is stopped; before a body or a tunnel is spliced from the socket the receive is stopped
and what it took goes first. SYN_RECV_MULTISHOT=off is the fallback, a single-shot receive per
want, as on kernels before 6.0; each scenario here runs both ways.
"""

from __future__ import annotations

import socket
import subprocess
import threading

import pytest
from harness import LOCALHOST, UpgradeEcho, payload, payload_sha256, sha256

from synapserve.native import probe_features

MULTISHOT = probe_features()["multishot_recv"]
MiB = 1 << 20


@pytest.fixture(params=["multishot", "single"])
def mode(request, monkeypatch):
    if request.param == "multishot":
        if not MULTISHOT:
            pytest.skip("this kernel has no multishot receive (6.0)")
        monkeypatch.delenv("SYN_RECV_MULTISHOT", raising=False)
    else:
        monkeypatch.setenv("SYN_RECV_MULTISHOT", "off")
    return request.param


def ops(proxy, op: str) -> float:
    return proxy.metric("synapserve_io_uring_ops_total", op=op)


def test_version_reports_the_probe(synapserve_cmd, monkeypatch):
    monkeypatch.setenv("SYN_RECV_MULTISHOT", "off")
    out = subprocess.run([*synapserve_cmd, "version"], capture_output=True, text=True, check=True)
    assert [ln.split() for ln in out.stdout.splitlines() if "multishot_recv" in ln] == [
        ["multishot_recv", "no"]
    ]
    monkeypatch.delenv("SYN_RECV_MULTISHOT")
    out = subprocess.run([*synapserve_cmd, "version"], capture_output=True, text=True, check=True)
    want = "yes" if MULTISHOT else "no"
    assert [ln.split() for ln in out.stdout.splitlines() if "multishot_recv" in ln] == [
        ["multishot_recv", want]
    ]


def test_kept_alive_requests_need_no_receive_each(synapserve, backends, tmp_path, mode):
    """The client's receive stays armed across requests. Static answers, so that no upstream
    receive (single-shot: responses carry the large bodies) is counted with it."""
    (a,) = backends("a")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "f.txt").write_bytes(b"static bytes")  # root + path, as nginx's root
    sites = {"main": {"hosts": ["*"], "routes": {"/": "app", "/s/": {"root": str(tmp_path)}}}}
    proxy = synapserve(upstreams={"app": [a]}, sites=sites, server={"workers": 1})
    with proxy.connect() as c:
        assert c.get("/s/f.txt").body == b"static bytes"  # the client's receive is armed
        recv, multi = ops(proxy, "recv"), ops(proxy, "recv_multishot")
        for _ in range(200):
            r = c.get("/s/f.txt")
            assert (r.status, r.body) == (200, b"static bytes")
        recv_n, multi_n = ops(proxy, "recv") - recv, ops(proxy, "recv_multishot") - multi
        assert c.get("/").body == b"a"  # proxied on the same connection, too
    if mode == "multishot":
        assert multi >= 1 and (recv_n, multi_n) == (0, 0)  # all came to the receive armed before
    else:
        assert multi_n == 0 and recv_n >= 200  # one per request
        assert ops(proxy, "recv_multishot") == 0


def test_pipelined_requests_behind_a_slow_one_come_in_order(synapserve, backends, mode):
    """The proxy reads no further while the first request waits for its slow answer: what
    comes meanwhile (more than the stash holds) waits in the socket, and nothing is lost."""
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]}, server={"workers": 1})
    pad = "x" * 3000
    n = 120  # about 380 KiB of requests: many buffers' worth
    reqs = [b"GET /echo?delay=300 HTTP/1.1\r\nHost: p\r\n\r\n"]
    reqs += [
        f"GET /echo/{i} HTTP/1.1\r\nHost: p\r\nX-Pad: {pad}\r\n\r\n".encode() for i in range(n)
    ]
    with proxy.connect() as c:
        c.send(b"".join(reqs))
        assert c.read_response().json()["target"] == "/echo?delay=300"
        for i in range(n):
            r = c.read_response()
            assert r.status == 200 and r.json()["target"] == f"/echo/{i}"
        assert c.get("/").body == b"a"
    assert proxy.get("/").body == b"a"


def test_a_large_upload_that_came_with_its_head_on_a_kept_alive_connection(
    synapserve, backends, mode
):
    """The receive armed for the head takes some of the body before the proxy sees the head;
    those bytes go first, then the rest is spliced."""
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]}, server={"workers": 1})
    body = payload(4 * MiB + 11)
    with proxy.connect() as c:
        assert c.get("/").body == b"a"
        spliced = ops(proxy, "splice")
        for _ in range(3):
            head = f"POST /echo HTTP/1.1\r\nHost: p\r\nContent-Length: {len(body)}\r\n\r\n"
            c.send(head.encode() + body)  # one write: head and body together
            r = c.read_response()
            assert r.status == 200
            assert (r.json()["body_length"], r.json()["body_sha256"]) == (
                len(body),
                payload_sha256(len(body)),
            )
            r = c.get("/bytes/5000")  # and the connection goes on with heads
            assert r.body == payload(5000)
        assert ops(proxy, "splice") > spliced  # the bodies went by splice
    assert proxy.get("/").body == b"a"


def test_a_large_download_on_a_pooled_upstream_connection(synapserve, backends, mode):
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]}, server={"workers": 1})
    with proxy.connect() as c:
        for size in (100, 2 * MiB + 3, 100, 2 * MiB + 5, 7):
            r = c.get(f"/bytes/{size}")
            assert (r.status, len(r.body), sha256(r.body)) == (200, size, payload_sha256(size))
    assert a.connections == 1  # the same upstream connection all along


def test_a_tunnel_with_bytes_sent_before_the_101(synapserve, backends, mode):
    """The client does not wait for the 101: its first bytes may already be with the engine
    when the tunnel starts. They come out first, then a large echo by splice, then the
    half-close."""
    ws = UpgradeEcho()
    (a,) = backends("a")
    sites = {"main": {"hosts": ["*"], "routes": {"/": "app", "/ws": "ws"}}}
    proxy = synapserve(
        upstreams={"app": [a], "ws": [{"address": ws.address}]}, sites=sites, server={"workers": 1}
    )
    try:
        with socket.create_connection((LOCALHOST, proxy.ports["http"]), timeout=10) as s:
            s.sendall(
                b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
                + b"early bytes;"
            )
            got = b""
            while b"\r\n\r\n" not in got:
                got += s.recv(4096)
            head, rest = got.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 101 ")
            big = payload(3 * MiB + 1)
            sender = threading.Thread(target=s.sendall, args=(big,))
            sender.start()
            want = len(b"early bytes;") + len(big)
            while len(rest) < want:
                d = s.recv(1 << 16)
                assert d, "the tunnel closed early"
                rest += d
            sender.join()
            assert rest[:12] == b"early bytes;" and sha256(rest[12:]) == sha256(big)
            s.shutdown(socket.SHUT_WR)  # passed on; the echo server then ends its side
            assert s.recv(1) == b""
    finally:
        ws.close()
    assert proxy.get("/").body == b"a"
