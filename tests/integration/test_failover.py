"""Health, failover and retries end to end (PRODUCT.md section 5, "Health and failover")."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from harness import payload, wait_for

FAST_HEALTH = {"path": "/healthz", "interval": "200ms", "timeout": "100ms", "rise": 1, "fall": 1}


def test_a_backend_dying_mid_run_costs_no_client_error(synapserve, backends):
    a, b, c = backends("a", "b", "c")
    b.die_after = 20  # b receives its 20th request, then drops dead without answering it
    proxy = synapserve(upstreams={"app": [a, b, c]})
    statuses, tags = Counter(), Counter()
    for _ in range(200):
        r = proxy.get("/")
        statuses[r.status] += 1
        tags[r.tag] += 1
    assert statuses == {200: 200}
    assert not b.alive
    assert tags["b"] == b.served == 19
    assert tags["a"] + tags["c"] == 181
    assert proxy.metric("synapserve_upstream_retries_total", upstream="app") >= 1
    assert proxy.metric("synapserve_upstream_failures_total", upstream="app", server=b) >= 1


def test_connect_failures_on_every_server_give_502(synapserve, backends):
    a, b = backends("a", "b")
    proxy = synapserve(upstreams={"app": {"servers": [a, b], "retries": 2}})
    a.kill()
    b.kill()
    # also once both are passively ejected: ejection is a guess, so they are still tried
    statuses = [proxy.get("/").status for _ in range(6)]
    assert statuses == [502] * 6
    connect_fails = proxy.metric(
        "synapserve_upstream_failures_total", upstream="app", reason="connect"
    )
    assert connect_fails >= 12  # every request tried both


def test_no_server_up_gives_503(synapserve, backends):
    a, b = backends("a", "b")
    a.health_status = b.health_status = 503
    proxy = synapserve(upstreams={"app": {"servers": [a, b], "health": FAST_HEALTH}})
    wait_for(lambda: a.health_checks and b.health_checks, what="a first check of each server")
    assert not proxy.server_up("app", a) and not proxy.server_up("app", b)
    r = proxy.get("/")
    assert r.status == 503
    assert len(r.body) < 100  # a short body of the proxy's own
    assert a.requests == b.requests == 0
    assert proxy.metric("synapserve_upstream_no_server_total", upstream="app") == 1


def test_backups_take_over_when_primaries_are_down_and_hand_back(synapserve, backends):
    a, b, k = backends("a", "b", "backup")
    proxy = synapserve(
        upstreams={"app": {"servers": [a, b, k.server(backup=True)], "health": FAST_HEALTH}}
    )
    assert {proxy.get("/").tag for _ in range(10)} == {"a", "b"}
    assert k.requests == 0
    a.kill()
    b.kill()
    proxy.wait_server("app", a, up=False)
    proxy.wait_server("app", b, up=False)
    got = [proxy.get("/") for _ in range(10)]
    assert [(r.status, r.tag) for r in got] == [(200, "backup")] * 10
    a.revive()
    proxy.wait_server("app", a, up=True)
    served = k.requests
    got = [proxy.get("/") for _ in range(10)]
    assert [(r.status, r.tag) for r in got] == [(200, "a")] * 10
    assert k.requests == served


def test_passive_ejection_and_recovery_after_fail_timeout(synapserve, backends):
    a, b = backends("a", "b")
    a.status = 503  # a answers, but every answer is a failure
    proxy = synapserve(
        upstreams={"app": {"servers": [a, b], "passive": {"max_fails": 2, "fail_timeout": "1s"}}},
        server={"workers": 1},
    )
    got = [proxy.get("/") for _ in range(3)]  # round robin: a, b, a
    ejected_at = time.monotonic()
    assert [(r.status, r.tag) for r in got] == [(503, "a"), (200, "b"), (503, "a")]
    assert not proxy.server_up("app", a)
    states = {s["address"]: s["state"] for s in proxy.status()["upstreams"]["app"]["servers"]}
    assert states == {a.address: "ejected", b.address: "up"}
    a.status = 200
    assert [proxy.get("/").tag for _ in range(10)] == ["b"] * 10
    assert a.requests == 2
    # after fail_timeout (1s) a gets traffic again
    wait_for(lambda: proxy.get("/").tag == "a", timeout=4, what="a to get a request again")
    assert time.monotonic() - ejected_at >= 0.9
    assert proxy.server_up("app", a)
    assert proxy.metric("synapserve_upstream_failures_total", server=a, reason="5xx") == 2


def test_read_timeout_gives_504(synapserve, backends):
    (a,) = backends("a")
    a.delay = 2.0
    proxy = synapserve(upstreams={"app": {"servers": [a], "read_timeout": "300ms"}})
    t0 = time.monotonic()
    r = proxy.get("/")
    elapsed = time.monotonic() - t0
    assert r.status == 504
    assert 0.25 <= elapsed < 1.5, elapsed
    assert a.requests == 1  # a response that never started is not sent to the same server again
    assert proxy.metric("synapserve_upstream_failures_total", server=a, reason="timeout") == 1


def test_a_response_that_started_is_never_retried(synapserve, backends):
    a, b = backends("a", "b")
    a.mode = "cut"  # a sends its head and half the body, then closes
    proxy = synapserve(upstreams={"app": [a, b]}, server={"workers": 1})
    r = proxy.raw(b"GET /bytes/100000 HTTP/1.1\r\nHost: app.example\r\n\r\n")
    head, _, body = r.partition(b"\r\n\r\n")
    assert r.status == 200 and r.response().header("Content-Length") == "100000"
    # the client sees the response cut short (the connection closes), nothing else
    assert r.closed
    assert 0 < len(body) < 100000
    assert body == payload(100000)[: len(body)]
    assert (a.requests, b.requests) == (1, 0)


@pytest.mark.parametrize("mode", ["drop_reused", "close_after_response"])
def test_a_pooled_connection_closed_by_the_backend_is_retried(synapserve, backends, mode):
    """drop_reused: the backend closes a kept-alive connection when the next request comes
    (its idle timeout fired just then); close_after_response: it closes right after each
    response without saying Connection: close. No retries are configured, and the requests are
    POSTs: the one retry on a fresh connection is for any method."""
    (a,) = backends("a")
    a.mode = mode
    proxy = synapserve(upstreams={"app": {"servers": [a], "retries": 0}}, server={"workers": 1})
    got = [proxy.request("POST", "/echo", body=b"payload %d" % i) for i in range(30)]
    assert [r.status for r in got] == [200] * 30
    assert [r.json()["body_length"] for r in got] == [len(b"payload %d" % i) for i in range(30)]
    assert a.served == 30
    if mode == "drop_reused":
        # every reuse was refused by the backend, so every request after the first needed
        # the retry on a fresh connection
        assert a.requests == 59
        assert proxy.metric("synapserve_upstream_retries_total", upstream="app") == 29


@pytest.mark.parametrize("mode", ["close", "reset"])
def test_idempotent_requests_are_retried_when_a_server_fails_before_answering(
    synapserve, backends, mode
):
    a, b = backends("a", "b")
    a.mode = mode  # a reads the request, then closes or resets without a byte of answer
    proxy = synapserve(upstreams={"app": [a, b]}, server={"workers": 1})
    got = [proxy.request(method, "/") for method in ("GET", "PUT", "DELETE", "GET")]
    assert [(r.status, r.tag) for r in got] == [(200, "b")] * 4
    assert a.requests >= 1


@pytest.mark.parametrize("mode", ["close", "reset"])
def test_a_post_that_was_sent_is_not_retried(synapserve, backends, mode):
    """PRODUCT.md section 5: after the upstream closed or reset before any response byte, a
    request is retried only when it is idempotent or had not been sent."""
    a, b = backends("a", "b")
    a.mode = mode
    proxy = synapserve(upstreams={"app": [a, b]}, server={"workers": 1})
    r = proxy.request("POST", "/", body=b"charge the card once")  # round robin: a first
    assert r.status == 502
    assert (a.requests, b.requests) == (1, 0)


def test_connect_timeout_moves_on_to_another_server(synapserve, backends, blackhole):
    (b,) = backends("b")
    proxy = synapserve(
        upstreams={"app": {"servers": [blackhole, b], "connect_timeout": "200ms"}},
        server={"workers": 1},
    )
    t0 = time.monotonic()
    got = [proxy.get("/") for _ in range(2)]  # round robin: the blackhole first
    assert [(r.status, r.tag) for r in got] == [(200, "b")] * 2
    assert 0.2 <= time.monotonic() - t0 < 1.5
    timeouts = proxy.metric(
        "synapserve_upstream_failures_total", server=blackhole, reason="timeout"
    )
    assert timeouts == 1


def test_connect_timeout_on_the_only_server_gives_504(synapserve, blackhole):
    proxy = synapserve(
        upstreams={"app": {"servers": [blackhole], "connect_timeout": "200ms", "retries": 0}}
    )
    t0 = time.monotonic()
    assert proxy.get("/").status == 504
    assert 0.2 <= time.monotonic() - t0 < 1.5


def test_an_upstream_response_that_cannot_be_framed_gives_502(synapserve, backends):
    (a,) = backends("a")
    a.chunked = True
    a.headers = [("Content-Length", "5")]  # and Transfer-Encoding: chunked: ambiguous
    proxy = synapserve(upstreams={"app": {"servers": [a], "retries": 0}})
    r = proxy.get("/")
    assert r.status == 502
    assert r.tag is None  # nothing of the backend's head reaches the client
