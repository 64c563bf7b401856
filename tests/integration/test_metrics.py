"""/metrics equals the traffic (PRODUCT.md section 4, the metrics table): counted from the
client's side and the backends' side, the numbers must match exactly."""

from __future__ import annotations

from harness import build_request, wait_for


def test_request_and_connection_counters_equal_traffic(synapserve, backends):
    a, b = backends("a", "b")
    proxy = synapserve(upstreams={"app": [a, b]})
    n = 25
    assert [proxy.get("/").status for _ in range(n)] == [200] * n
    with proxy.connect() as c:  # 5 more on one connection
        assert [c.get("/").status for _ in range(5)] == [200] * 5
    total = n + 5
    assert proxy.metric("synapserve_requests_total", site="main", code="2xx") == total
    assert proxy.metric("synapserve_requests_total", site="main") == total
    assert proxy.metric("synapserve_connections_accepted_total", listener="http") == n + 1
    for backend in (a, b):
        by_server = proxy.metric(
            "synapserve_upstream_requests_total", upstream="app", server=backend, code="2xx"
        )
        assert by_server == backend.served
    assert proxy.metric("synapserve_upstream_requests_total", upstream="app") == total
    assert proxy.metric("synapserve_request_duration_seconds_count", site="main") == total
    assert proxy.metric("synapserve_upstream_response_seconds_count", upstream="app") == total
    wait_for(
        lambda: proxy.metric("synapserve_connections_active", listener="http") == 0,
        what="connections_active back to 0",
    )


def test_status_classes_are_counted_apart(synapserve, backends):
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]})
    for status, count in ((200, 3), (404, 2), (500, 4)):
        for _ in range(count):
            assert proxy.get(f"/?status={status}").status == status
    counts = {
        code: proxy.metric("synapserve_requests_total", site="main", code=code)
        for code in ("1xx", "2xx", "3xx", "4xx", "5xx")
    }
    assert counts == {"1xx": 0, "2xx": 3, "3xx": 0, "4xx": 2, "5xx": 4}
    assert proxy.metric("synapserve_upstream_requests_total", server=a, code="5xx") == 4
    # a 500 is the application's answer, not a failure of the server (only 502-504 are)
    assert proxy.metric("synapserve_upstream_failures_total", server=a) == 0


def test_byte_counters_equal_bytes_on_the_wire(synapserve, backends):
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]})
    sent = received = 0
    for i in range(10):
        with proxy.connect() as c:
            r = c.request("POST", f"/echo?i={i}", body=b"x" * (1000 * i))
            assert r.status == 200
            sent += c.sent
            received += c.received
    assert proxy.metric("synapserve_bytes_received_total", listener="http") == sent
    assert proxy.metric("synapserve_bytes_sent_total", listener="http") == received


def test_pipelined_and_refused_requests_are_counted(synapserve, backends):
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]})
    with proxy.connect() as c:
        c.send(build_request("GET", "/") * 3)
        assert [c.read_response().status for _ in range(3)] == [200] * 3
    assert proxy.raw(b"GET / HTTP/1.1\r\n\r\n").status == 400  # no Host: no site either
    assert proxy.metric("synapserve_requests_total", site="main", code="2xx") == 3
    assert proxy.metric("synapserve_requests_total", code="4xx") == 1
    assert proxy.metric("synapserve_connections_accepted_total", listener="http") == 2


def test_failures_retries_and_server_state_are_exported(synapserve, backends):
    a, b = backends("a", "b")
    proxy = synapserve(upstreams={"app": [a, b]}, server={"workers": 1})
    assert proxy.server_up("app", a) and proxy.server_up("app", b)
    a.kill()
    assert [proxy.get("/").tag for _ in range(4)] == ["b"] * 4
    fails = proxy.metric("synapserve_upstream_failures_total", server=a, reason="connect")
    retries = proxy.metric("synapserve_upstream_retries_total", upstream="app")
    assert fails >= 1 and retries == fails
    # default passive = { max_fails = 3, fail_timeout = "10s" }
    for _ in range(4):
        assert proxy.get("/").tag == "b"
    assert proxy.metric("synapserve_upstream_failures_total", server=a, reason="connect") == 3
    assert not proxy.server_up("app", a)
    assert proxy.server_up("app", b)
