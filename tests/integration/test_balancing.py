"""Load balancing end to end (PRODUCT.md section 5, docs/load-balancing.md): which server the
real process picks, seen from the backends."""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections import Counter

from harness import wait_for

# Client addresses: all of 127.0.0.0/8 is loopback on Linux, so a client can come from any of
# them by binding its socket before connecting; that is how ip_hash gets several clients here.
CLIENTS = [f"127.0.1.{i}" for i in range(1, 61)]


def test_round_robin_weights_5_1_1_give_the_smooth_sequence(synapserve, backends):
    a, b, c = backends("a", "b", "c")
    proxy = synapserve(
        upstreams={"app": [a.server(weight=5), b, c]},
        server={"workers": 1},  # one worker: one balancer state, so the sequence is exact
    )
    got = [proxy.get("/").tag for _ in range(14)]
    assert got == list("aabacaa") * 2
    assert (a.requests, b.requests, c.requests) == (10, 2, 2)
    assert proxy.metric("synapserve_upstream_requests_total", upstream="app", server=a) == 10


def test_round_robin_skips_a_down_server_without_burst(synapserve, backends):
    a, b, c = backends("a", "b", "c")
    b.health_status = 503  # b never passes its first check, so it never comes up
    proxy = synapserve(
        upstreams={
            "app": {
                "servers": [a.server(weight=5), b, c],
                "health": {"path": "/healthz", "interval": "100ms", "timeout": "50ms"},
            }
        },
        server={"workers": 1},
    )
    wait_for(lambda: b.health_checks >= 2, what="two health checks of b")
    assert not proxy.server_up("app", b)
    got = [proxy.get("/").tag for _ in range(12)]
    # docs/load-balancing.md: with b down from the start, 5,1,1 gives a,a,a,c,a,a
    assert got == list("aaacaa") * 2
    assert b.requests == 0


def test_least_conn_sends_concurrent_requests_to_the_idle_server(synapserve, backends):
    slow, fast = backends("slow", "fast")
    slow.delay = 1.5
    proxy = synapserve(upstreams={"app": {"servers": [slow, fast], "balance": "least_conn"}})
    with cf.ThreadPoolExecutor(max_workers=20) as pool:
        futures = []
        for _ in range(20):
            futures.append(pool.submit(proxy.get, "/"))
            # the next request is sent when this one is answered or clearly held by slow
            cf.wait(futures[-1:], timeout=0.2)
        assert slow.requests == 1, "slow has a request in flight from the start: it gets no more"
        active = proxy.metric(
            "synapserve_upstream_server_active_connections", upstream="app", server=slow
        )
        assert active == 1
        tags = Counter(f.result().tag for f in futures)
    assert tags == {"slow": 1, "fast": 19}
    assert all(f.result().status == 200 for f in futures)
    in_flight = ("synapserve_upstream_server_active_connections",)
    wait_for(
        lambda: proxy.metric(*in_flight, upstream="app", server=slow) == 0,
        what="no request in flight to slow",
    )


def test_ip_hash_keeps_a_client_on_one_server(synapserve, backends):
    servers = backends("a", "b", "c", "d")
    proxy = synapserve(upstreams={"app": {"servers": servers, "balance": "ip_hash"}})
    # from one address (127.0.0.1), every request lands on the same server, whatever worker
    # accepted its connection
    assert len({proxy.get("/").tag for _ in range(20)}) == 1
    first = {src: proxy.get("/", source=src).tag for src in CLIENTS}
    again = {src: proxy.get("/", source=src).tag for src in CLIENTS}
    assert again == first
    # it is a hash of the client, not one favourite server: 60 clients use all 4
    assert set(first.values()) == {"a", "b", "c", "d"}


def test_ip_hash_adding_a_server_moves_clients_only_to_it(synapserve, backends):
    servers = backends("a", "b", "c", "d")
    proxy = synapserve(upstreams={"app": {"servers": servers, "balance": "ip_hash"}})
    before = {src: proxy.get("/", source=src).tag for src in CLIENTS}
    (e,) = backends("e")
    proxy.write_config(upstreams={"app": {"servers": [*servers, e], "balance": "ip_hash"}})
    assert proxy.reload()["ok"]
    wait_for(lambda: "e" in {proxy.get("/", source=src).tag for src in CLIENTS}, what="e used")
    after = {src: proxy.get("/", source=src).tag for src in CLIENTS}
    moved = {src for src in CLIENTS if after[src] != before[src]}
    # consistent hashing: a client either stays or moves to the new server, and about 1/5
    # of them move (12 of 60 expected; the bounds are many standard deviations wide)
    assert {after[src] for src in moved} == {"e"}
    assert 1 <= len(moved) <= 30, f"{len(moved)} of {len(CLIENTS)} clients moved"


def test_ip_hash_shares_clients_by_weight(synapserve, backends):
    heavy, light = backends("heavy", "light")
    proxy = synapserve(
        upstreams={"app": {"servers": [heavy.server(weight=3), light], "balance": "ip_hash"}}
    )
    tags = Counter(proxy.get("/", source=f"127.0.2.{i}").tag for i in range(1, 101))
    # 3:1 by weight: 75 of 100 expected
    assert tags["heavy"] + tags["light"] == 100
    assert 55 <= tags["heavy"] <= 92, tags


def test_random_sends_less_traffic_to_a_server_holding_requests(synapserve, backends):
    slow, fast = backends("slow", "fast")
    slow.delay = 0.2
    proxy = synapserve(upstreams={"app": {"servers": [slow, fast], "balance": "random"}})
    total = 200
    tickets = iter(range(total))
    lock = threading.Lock()
    statuses = Counter()

    def client() -> None:
        while True:
            with lock:
                if next(tickets, None) is None:
                    return
            r = proxy.get("/")
            with lock:
                statuses[r.status] += 1

    with cf.ThreadPoolExecutor(max_workers=4) as pool:
        for f in [pool.submit(client) for _ in range(4)]:
            f.result()
    assert statuses == {200: total}
    assert slow.served + fast.served == total
    # an even split would be 100 each; power of two choices avoids the busy server
    assert slow.served < total // 4, (slow.served, fast.served)


def test_ewma_sends_less_traffic_to_a_slow_server(synapserve, backends):
    slow, fast = backends("slow", "fast")
    slow.delay = 0.3
    proxy = synapserve(upstreams={"app": {"servers": [slow, fast], "balance": "ewma"}})
    workers = 2
    tags = Counter(proxy.get("/").tag for _ in range(40))
    # one request at a time, so active counts never differ: only latency can tell them
    # apart. Each worker has its own estimates and has to try slow once to learn it is slow.
    assert tags["slow"] + tags["fast"] == 40
    assert tags["slow"] <= workers, tags


def test_slow_start_ramps_up_a_server_that_came_back_or_was_added(synapserve, backends):
    a, b, c = backends("a", "b", "c")
    health = {"path": "/healthz", "interval": "100ms", "timeout": "50ms", "rise": 1, "fall": 1}
    up = {"servers": [a, b, c], "slow_start": "3s", "health": health}
    started = time.monotonic()
    proxy = synapserve(upstreams={"app": up}, server={"workers": 1})

    def shares(n: int) -> Counter:
        return Counter(proxy.get("/").tag for _ in range(n))

    # every server counts as just added at start, and they ramp together (so the shares are
    # even all along and nothing tells when it is over): the one wait that is a sleep
    time.sleep(max(0.0, started + 3.1 - time.monotonic()))
    assert all(9 <= n <= 11 for n in shares(30).values())
    c.health_status = 503
    proxy.wait_server("app", c, up=False)
    c.health_status = 200  # c comes back ...
    (d,) = backends("d")  # ... as d is added
    proxy.write_config(upstreams={"app": up | {"servers": [a, b, c, d]}})
    assert proxy.reload()["ok"]
    proxy.wait_server("app", c, up=True)
    proxy.wait_server("app", d, up=True)
    got = shares(48)
    # at full weight each would get 12 of 48; they start at a tenth of a, b's weight
    assert got["c"] <= 7 and got["d"] <= 7, got
    assert got["a"] >= 17 and got["b"] >= 17, got
