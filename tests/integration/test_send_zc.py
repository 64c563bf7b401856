"""Zero-copy sends (IORING_OP_SEND_ZC): large sends from the engine's buffers.

They are off by default (the logic hears of such a send only at the kernel's
notification, one round trip later); SYN_SEND_ZC=auto uses them towards peers
not on this machine (over loopback the kernel copies anyway), always towards
any. These tests force them on to prove that bodies relayed by zero-copy sends
arrive intact both ways, that a buffer a send still reads is never handed to
another connection, and that a stalled client does not hold its connection.
"""

from __future__ import annotations

import socket
import time

import pytest
from harness import LOCALHOST, payload, payload_sha256, wait_for

from synapserve.native import probe_features

pytestmark = pytest.mark.skipif(
    not probe_features()["send_zc"], reason="this kernel has no IORING_OP_SEND_ZC"
)

SIZE = 60000  # below the splice threshold (64 KiB): relayed through buffers


def _ops(proxy, op: str) -> float:
    return proxy.metric("synapserve_io_uring_ops_total", op=op)


def test_bodies_both_ways_with_zero_copy_sends(synapserve, backends, monkeypatch):
    monkeypatch.setenv("SYN_SEND_ZC", "always")
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]}, server={"workers": 1})
    for i in range(40):
        r = proxy.request("GET", f"/bytes/{SIZE + i}")
        assert r.status == 200 and r.body == payload(SIZE + i)
        r = proxy.request("POST", "/echo", body=payload(SIZE + i))
        assert r.status == 200
        assert r.json()["body_length"] == SIZE + i
        assert r.json()["body_sha256"] == payload_sha256(SIZE + i)
    assert _ops(proxy, "send_zc") >= 40


@pytest.mark.parametrize("mode", [None, "auto"])
def test_loopback_peers_get_plain_sends(synapserve, backends, monkeypatch, mode):
    """Off by default; with auto, not towards a peer on this machine."""
    if mode:
        monkeypatch.setenv("SYN_SEND_ZC", mode)
    else:
        monkeypatch.delenv("SYN_SEND_ZC", raising=False)
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]}, server={"workers": 1})
    for _ in range(5):
        assert proxy.request("GET", f"/bytes/{SIZE}").body == payload(SIZE)
    assert _ops(proxy, "send_zc") == 0
    assert _ops(proxy, "send") > 0


def test_a_stalled_client_sees_none_of_another_connections_bytes(synapserve, backends, monkeypatch):
    """A client stops reading a large chunked response (relayed through buffers, by
    zero-copy sends); the upstream read timeout ends the exchange and its buffers go back.
    Others' bytes then arrive in those buffers: none may reach the stalled client, whose
    connection must be let go of (not held until it reads)."""
    monkeypatch.setenv("SYN_SEND_ZC", "always")
    (a,) = backends("a", body=b"x" * (8 << 20), chunked=True)
    proxy = synapserve(
        upstreams={"app": {"servers": [a], "read_timeout": "1s"}}, server={"workers": 1}
    )
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect((LOCALHOST, proxy.ports["http"]))
    stalled.sendall(b"GET /big HTTP/1.1\r\nHost: app.example\r\n\r\n")
    time.sleep(2.5)  # the read timeout fires: the exchange is over on the proxy's side
    assert _ops(proxy, "send_zc") > 0, "the stalled response was not sent zero-copy"
    for _ in range(60):  # through every buffer of the pool, several times over
        r = proxy.request("POST", "/echo", body=b"y" * SIZE)
        assert r.status == 200 and r.json()["body_length"] == SIZE
    # let go of while the client still reads nothing (not held until the queue drains)
    wait_for(
        lambda: proxy.metric("synapserve_connections_active", listener="http") == 0,
        5.0,
        "the stalled connection let go of",
    )
    got = bytearray()
    stalled.settimeout(5)
    try:
        while chunk := stalled.recv(1 << 16):
            got += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    stalled.close()
    # (what the client had received before the reset stays readable on Linux)
    assert got.startswith(b"HTTP/1.1 200"), bytes(got[:200])
    assert b"y" not in got[got.find(b"\r\n\r\n") :]


def test_zero_copy_sends_can_be_turned_off(synapserve, backends, monkeypatch):
    monkeypatch.setenv("SYN_SEND_ZC", "off")
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]}, server={"workers": 1})
    assert proxy.request("GET", f"/bytes/{SIZE}").body == payload(SIZE)
    assert _ops(proxy, "send_zc") == 0
