"""Many requests in flight at once on one worker: the pools that grow while
warming up (receive buffers, head slabs, pipes) must grow and shrink back
without corrupting anything."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import socket
import time

from harness import LOCALHOST, wait_for


def test_three_hundred_requests_in_flight_on_one_worker(synapserve, backends):
    (a,) = backends("a")
    a.delay = 0.5  # every request is held, so all 300 are in flight together
    proxy = synapserve(upstreams={"app": {"servers": [a], "keepalive": 512}}, server={"workers": 1})
    with cf.ThreadPoolExecutor(max_workers=300) as pool:
        results = list(pool.map(lambda i: proxy.get(f"/n{i}"), range(300)))
    assert [r.status for r in results] == [200] * 300
    assert {r.tag for r in results} == {"a"}
    # and again, on the pooled upstream connections the first wave left
    with cf.ThreadPoolExecutor(max_workers=300) as pool:
        results = list(pool.map(lambda i: proxy.get(f"/again{i}"), range(300)))
    assert [r.status for r in results] == [200] * 300
    assert proxy.metric("synapserve_requests_total", code="2xx") == 600


def test_ten_thousand_keepalive_requests_allocate_nothing(synapserve, backends):
    """PRODUCT.md: steady state allocates nothing per request on the heap."""
    a, b = backends("a", "b")
    proxy = synapserve(upstreams={"app": [a, b]}, server={"workers": 2})
    conns = [proxy.connect() for _ in range(20)]
    for c in conns:  # warm-up
        for _ in range(10):
            assert c.get("/warm").status == 200
    allocs = proxy.status()["engine"]["heap_allocs"]
    assert allocs > 0  # the counter counts: the warm-up made the pools
    for i in range(500):
        for c in conns:
            assert c.get(f"/k{i}").status == 200
    assert proxy.status()["engine"]["heap_allocs"] == allocs
    assert proxy.metric("synapserve_requests_total", code="2xx") == 10_000 + 200
    for c in conns:
        c.close()


def test_concurrent_large_bodies_each_arrive_whole(synapserve, backends):
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]}, server={"workers": 1})
    size = 3 * 1024 * 1024 + 17
    with cf.ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(lambda i: proxy.get(f"/bytes/{size}"), range(24)))
    digests = {hashlib.sha256(r.body).hexdigest() for r in results}
    assert [len(r.body) for r in results] == [size] * 24
    assert len(digests) == 1
    wait_for(
        lambda: proxy.metric("synapserve_io_uring_ops_total", op="splice") > 0,
        what="the large bodies to have gone by splice",
    )


def test_a_client_that_leaves_mid_request_does_not_cost_the_pooled_connection(synapserve, backends):
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]}, server={"workers": 1})
    assert proxy.get("/").tag == "a"
    assert a.connections == 1
    a.delay = 0.3
    s = socket.create_connection((LOCALHOST, proxy.ports["http"]))
    s.sendall(b"GET /left HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_for(lambda: a.requests == 2, what="the request to reach the backend")
    s.close()  # gone before the answer: the proxy reads it to the end and keeps the connection
    time.sleep(0.5)
    a.delay = 0
    assert proxy.get("/").tag == "a"
    assert a.connections == 1
