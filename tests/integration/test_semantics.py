"""Proxy semantics end to end (PRODUCT.md section 5, "Proxy semantics"): what the backend
receives of the client's head, and what the client receives of the backend's."""

from __future__ import annotations

import pytest
from harness import sha256

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}


@pytest.fixture
def proxy(synapserve, backends):
    (a,) = backends("a")
    p = synapserve(upstreams={"app": [a]})
    p.backend = a
    return p


def fields(seen: dict) -> list[tuple[str, str]]:
    return [(k.lower(), v) for k, v in seen["headers"]]


def values(seen: dict, name: str) -> list[str]:
    return [v for k, v in fields(seen) if k == name]


def test_hop_by_hop_request_fields_are_removed(proxy):
    r = proxy.get(
        "/echo",
        headers=[
            ("Connection", "keep-alive, X-Private-Hop"),
            ("X-Private-Hop", "secret"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Trailer", "X-Checksum"),
            ("Upgrade", "h2c"),
            ("Proxy-Connection", "keep-alive"),
            ("X-End-To-End", "kept"),
            ("Accept", "*/*"),
        ],
    )
    assert r.status == 200
    seen = r.json()
    names = {k for k, _ in fields(seen)}
    assert not names & (HOP_BY_HOP | {"x-private-hop"}), sorted(names)
    assert values(seen, "x-end-to-end") == ["kept"]
    assert values(seen, "accept") == ["*/*"]


def test_hop_by_hop_response_fields_are_removed(proxy):
    proxy.backend.headers = [
        ("Connection", "X-Backend-Hop"),
        ("X-Backend-Hop", "internal"),
        ("Keep-Alive", "timeout=9"),
        ("Proxy-Connection", "keep-alive"),
        ("Trailer", "X-Checksum"),
        ("Upgrade", "foo"),
        ("X-End-To-End", "kept"),
    ]
    r = proxy.get("/")
    assert (r.status, r.body) == (200, b"a")
    names = {k.lower() for k, _ in r.headers}
    assert not names & {"x-backend-hop", "keep-alive", "proxy-connection", "trailer", "upgrade"}
    assert r.header("X-End-To-End") == "kept"
    # the proxy's own Connection field, if any, says nothing about the backend's
    assert "x-backend-hop" not in (r.header("Connection") or "").lower()


def test_x_forwarded_fields(proxy):
    r = proxy.get(
        "/echo",
        headers=[
            ("Host", "App.Example:8080"),
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-Proto", "https"),  # a client's claim: replaced
            ("X-Forwarded-Host", "evil.example"),  # same
        ],
    )
    seen = r.json()
    assert values(seen, "host") == ["App.Example:8080"]  # passed through as sent
    assert values(seen, "x-forwarded-for") == ["203.0.113.7, 127.0.0.1"]
    assert values(seen, "x-forwarded-proto") == ["http"]
    assert values(seen, "x-forwarded-host") == ["App.Example:8080"]


def test_x_forwarded_for_is_set_and_appended_to_every_earlier_hop(proxy):
    seen = proxy.get("/echo").json()
    assert values(seen, "x-forwarded-for") == ["127.0.0.1"]
    seen = proxy.get(
        "/echo",
        headers=[("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", "203.0.113.7")],
        source="127.0.0.9",
    ).json()
    assert values(seen, "x-forwarded-for") == ["198.51.100.1, 203.0.113.7, 127.0.0.9"]


def test_request_line_and_end_to_end_fields_pass_unchanged(proxy):
    # the target is not normalized: no decoding, no dot-segment removal
    target = "/echo/a%20b/../c?q=1&r=%2F"
    seen = proxy.request(
        "PATCH",
        target,
        body=b"{}",
        headers=[("Content-Type", "application/json"), ("Cookie", "a=1; b=2"), ("X-A", "1")],
    ).json()
    assert (seen["method"], seen["target"], seen["version"]) == ("PATCH", target, "HTTP/1.1")
    got = [(k, v) for k, v in fields(seen) if not k.startswith("x-forwarded-")]
    assert got == [
        ("host", "app.example"),
        ("content-type", "application/json"),
        ("cookie", "a=1; b=2"),
        ("x-a", "1"),
        ("content-length", "2"),
    ]
    assert seen["body_sha256"] == sha256(b"{}")


def test_backend_status_and_reason_reach_the_client(proxy):
    for status in (201, 404, 500, 503):
        r = proxy.get(f"/?status={status}")
        assert (r.status, r.body) == (status, b"a")
