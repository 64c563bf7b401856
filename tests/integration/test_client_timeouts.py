"""Client-side timeouts end to end (PRODUCT.md section 3 `[limits]`, section 5: 408 header
timeout): slow or idle clients are cut off on time and do not hold up anyone else."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from harness import LOCALHOST, Raw, build_request

LIMITS = {"client_header_timeout": "1s", "client_body_timeout": "1s", "keepalive_timeout": "1s"}


@pytest.fixture
def proxy(synapserve, backends):
    (a,) = backends("a")
    p = synapserve(upstreams={"app": [a]}, limits=LIMITS)
    p.backend = a
    return p


def read_until_close(s: socket.socket, timeout: float) -> Raw:
    s.settimeout(timeout)
    got = bytearray()
    closed = False
    try:
        while chunk := s.recv(4096):
            got += chunk
        closed = True
    except ConnectionResetError:
        closed = True
    except TimeoutError:
        pass
    out = Raw(bytes(got))
    out.closed = closed
    return out


def test_slowloris_gets_408_while_others_are_served(proxy):
    head = b"GET / HTTP/1.1\r\nHost: app.example\r\nX-Slow: " + b"x" * 100
    s = socket.create_connection((LOCALHOST, proxy.ports["http"]))
    stop = threading.Event()
    start = time.monotonic()

    def trickle() -> None:  # one byte every 100 ms, never finishing the head
        for i in range(len(head)):
            try:
                s.send(head[i : i + 1])
            except OSError:
                return
            if stop.wait(0.1):
                return

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        served = [proxy.get("/") for _ in range(20)]  # meanwhile
        assert [(r.status, r.body) for r in served] == [(200, b"a")] * 20
        assert time.monotonic() - start < 1.0, "the others were held up"
        r = read_until_close(s, timeout=5)
        elapsed = time.monotonic() - start
    finally:
        stop.set()
        s.close()
        t.join()
    assert r.status == 408
    assert r.closed
    assert 0.9 <= elapsed <= 3.0, elapsed
    assert proxy.backend.requests == 20


def test_an_idle_new_connection_is_closed_after_client_header_timeout(proxy):
    with socket.create_connection((LOCALHOST, proxy.ports["http"])) as s:
        start = time.monotonic()
        r = read_until_close(s, timeout=5)
        elapsed = time.monotonic() - start
    assert r.closed
    assert r == b"" or r.status == 408  # nothing was asked: closing silently is fine too
    assert 0.9 <= elapsed <= 3.0, elapsed


def test_an_idle_kept_alive_connection_is_closed_after_keepalive_timeout(proxy):
    with proxy.connect() as c:
        assert c.get("/").status == 200
        start = time.monotonic()
        assert c.at_eof(timeout=5)
        elapsed = time.monotonic() - start
    assert 0.9 <= elapsed <= 3.0, elapsed


def test_a_client_that_stops_sending_its_body_gets_408(proxy):
    with socket.create_connection((LOCALHOST, proxy.ports["http"])) as s:
        s.sendall(build_request("POST", "/", headers=[("Content-Length", "1000")]) + b"x" * 10)
        start = time.monotonic()
        r = read_until_close(s, timeout=5)
        elapsed = time.monotonic() - start
    assert r.status == 408
    assert r.closed
    assert 0.9 <= elapsed <= 3.0, elapsed
    assert proxy.backend.served == 0
    assert proxy.get("/").status == 200
