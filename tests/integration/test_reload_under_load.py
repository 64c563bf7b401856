"""Reload under load (PRODUCT.md section 5, "Reload"): while 200 connections keep
requests going, the config is rewritten 100 times; no request fails, no connection
is reset, a WebSocket tunnel opened before stays open and working, and servers that
stay keep their health and counters."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest
from harness import LOCALHOST, UpgradeEcho

WRK = shutil.which("wrk")


def open_tunnel(port: int) -> socket.socket:
    s = socket.create_connection((LOCALHOST, port), timeout=5)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 101 ")
    return s


def echo(s: socket.socket, payload: bytes) -> bytes:
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        d = s.recv(65536)
        assert d, "the tunnel closed"
        got += d
    return got


@pytest.mark.skipif(WRK is None, reason="wrk is not installed (Debian package wrk)")
def test_a_hundred_reloads_under_load(synapserve, backends):
    a, b, c = backends("a", "b", "c")
    ws = UpgradeEcho()
    sites = {"main": {"hosts": ["*"], "routes": {"/": "app", "/ws": "ws"}}}
    proxy = synapserve(
        upstreams={"app": [a, b], "ws": [ws.server()]},
        sites=sites,
        listeners=("http", "extra"),
        server={"workers": 2},
    )
    tunnel = open_tunnel(proxy.ports["http"])
    assert echo(tunnel, b"before") == b"before"
    a_before = a.requests

    wrk = subprocess.Popen(
        [WRK, "-t2", "-c200", "-d60s", f"http://{LOCALHOST}:{proxy.ports['http']}/"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    variants = [
        ({"app": [a, b], "ws": [ws.server()]}, ("http", "extra"), {}),
        ({"app": [a, b, c], "ws": [ws.server()]}, ("http", "extra"), {}),
        (
            {
                "app": {"servers": [a, b.server(weight=3)], "balance": "least_conn"},
                "ws": [ws.server()],
            },
            ("http",),
            {},
        ),
        (
            {"app": {"servers": [a, c], "balance": "random"}, "ws": [ws.server()]},
            ("http",),
            {"/extra/": "app"},
        ),
        (
            {"app": {"servers": [a, b, c], "balance": "ewma"}, "ws": [ws.server()]},
            ("http", "extra"),
            {"/extra/": "app"},
        ),
    ]
    try:
        for i in range(100):
            ups, listeners, extra_routes = variants[i % len(variants)]
            routes = {"/": "app", "/ws": "ws"} | extra_routes
            proxy.write_config(
                upstreams=ups,
                listeners=listeners,
                sites={"main": {"hosts": ["*"], "routes": routes}},
            )
            result = proxy.reload()
            assert result["ok"], result
            if i % 10 == 9:
                assert echo(tunnel, f"reload {i}".encode()) == f"reload {i}".encode()
    finally:
        wrk.send_signal(signal.SIGINT)  # wrk stops and prints its figures
        out, _ = wrk.communicate(timeout=30)

    done = re.search(r"(\d+) requests in", out)
    assert done and int(done.group(1)) > 1000, out
    assert "Non-2xx" not in out, out
    assert "Socket errors" not in out, out  # no refused, reset or timed-out connection
    # the tunnel opened before the first reload is still open and working after the last
    payload = os.urandom(256 * 1024)
    assert echo(tunnel, payload) == payload
    tunnel.close()
    # a stayed in every config: its counters carried on from before the reloads
    assert a.requests > a_before
    assert (
        proxy.metric("synapserve_upstream_requests_total", upstream="app", server=a, code="2xx")
        >= a.requests - a_before
    )
    assert proxy.status()["generation"] >= 101  # the watcher reloads on each save too
    ws.close()


def test_a_saved_change_serves_within_a_second(synapserve, backends):
    a, b = backends("a", "b")
    proxy = synapserve(upstreams={"app": [a]}, server={"workers": 1})
    assert proxy.get("/").tag == "a"
    proxy.write_config(upstreams={"app": [b]})
    saved = time.monotonic()
    while proxy.get("/").tag != "b":
        assert time.monotonic() - saved < 1.0, "the saved change was not serving within 1 s"
