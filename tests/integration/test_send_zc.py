"""Zero-copy sends (IORING_OP_SEND_ZC): large sends from the engine's buffers.

By default (SYN_SEND_ZC=auto) they are used only towards peers that are not on
this machine: over loopback the kernel copies anyway, after the extra work of
pinning the pages. These tests force them on (always) to prove that bodies
relayed by zero-copy sends arrive intact both ways, buffers being reused only
after the kernel's notification, and that loopback peers get plain sends by
default.
"""

from __future__ import annotations

import pytest
from harness import payload, payload_sha256

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


def test_loopback_peers_get_plain_sends_by_default(synapserve, backends, monkeypatch):
    monkeypatch.delenv("SYN_SEND_ZC", raising=False)
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]}, server={"workers": 1})
    for _ in range(5):
        assert proxy.request("GET", f"/bytes/{SIZE}").body == payload(SIZE)
    assert _ops(proxy, "send_zc") == 0
    assert _ops(proxy, "send") > 0


def test_zero_copy_sends_can_be_turned_off(synapserve, backends, monkeypatch):
    monkeypatch.setenv("SYN_SEND_ZC", "off")
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]}, server={"workers": 1})
    assert proxy.request("GET", f"/bytes/{SIZE}").body == payload(SIZE)
    assert _ops(proxy, "send_zc") == 0
