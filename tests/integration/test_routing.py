"""Sites and routes end to end (PRODUCT.md section 3, `[sites.NAME]`): the site by Host (exact
name, then `*.suffix`, then the `*` default), the route by longest path prefix, 404 when
nothing matches."""

from __future__ import annotations

import pytest


@pytest.fixture
def routed(synapserve, backends):
    bs = dict(zip("abcde", backends("a", "b", "c", "d", "e"), strict=True))
    proxy = synapserve(
        upstreams={name: [b] for name, b in bs.items()},
        sites={
            "app": {"hosts": ["app.example"], "routes": {"/": "a", "/api/": "b", "/api/v2/": "c"}},
            "wild": {"hosts": ["*.wild.example"], "routes": {"/": "d"}},
            "api_only": {"hosts": ["api.example"], "routes": {"/api/": "e"}},
        },
    )
    return proxy, bs


@pytest.mark.parametrize(
    "host,path,tag",
    [
        ("app.example", "/", "a"),
        ("app.example", "/index.html", "a"),
        ("app.example", "/api/users", "b"),
        ("app.example", "/api", "a"),  # "/api/" is a prefix of paths, not of "/api"
        ("app.example", "/api/v2/users", "c"),
        ("app.example", "/api/v2", "b"),
        ("app.example", "/api/v2/?q=/x", "c"),
        ("app.example", "/api?x=/api/v2/", "a"),  # the query takes no part
        ("APP.Example", "/api/", "b"),  # host names are case-insensitive
        ("app.example:8080", "/api/v2/", "c"),  # the port takes no part
        ("app.example.", "/", "a"),  # nor a trailing dot
        ("x.wild.example", "/", "d"),
        ("X.Wild.Example:80", "/anything", "d"),
        ("api.example", "/api/x", "e"),
    ],
)
def test_host_and_longest_prefix_pick_the_upstream(routed, host, path, tag):
    proxy, _ = routed
    r = proxy.get(path, headers=[("Host", host)])
    assert (r.status, r.tag) == (200, tag)


@pytest.mark.parametrize(
    "host,path",
    [
        ("unknown.example", "/"),  # no site and no default
        ("wild.example", "/"),  # "*.wild.example" is not the bare domain
        ("app.example.org", "/"),
        ("api.example", "/other"),  # a site, but no route for the path
        ("api.example", "/api"),
    ],
)
def test_no_site_or_route_gives_404(routed, host, path):
    proxy, bs = routed
    r = proxy.get(path, headers=[("Host", host)])
    assert r.status == 404
    assert len(r.body) < 100
    assert sum(b.requests for b in bs.values()) == 0


def test_404_keeps_the_connection_and_is_counted(routed):
    proxy, _ = routed
    with proxy.connect() as c:
        assert c.get("/", host="unknown.example").status == 404
        assert c.get("/other", host="api.example").status == 404
        assert c.get("/", host="app.example").tag == "a"
    assert proxy.metric("synapserve_requests_total", site="-", code="4xx") == 1
    assert proxy.metric("synapserve_requests_total", site="api_only", code="4xx") == 1
    assert proxy.metric("synapserve_requests_total", site="app", code="2xx") == 1


def test_default_site_takes_unknown_hosts(synapserve, backends):
    a, z = backends("a", "z")
    proxy = synapserve(
        upstreams={"a": [a], "z": [z]},
        sites={
            "app": {"hosts": ["app.example"], "routes": {"/": "a"}},
            "default": {"hosts": ["*"], "routes": {"/": "z"}},
        },
    )
    assert proxy.get("/", headers=[("Host", "app.example")]).tag == "a"
    assert proxy.get("/", headers=[("Host", "other.example")]).tag == "z"
    assert proxy.get("/", headers=[("Host", "127.0.0.1:8080")]).tag == "z"
    # an HTTP/1.0 request may come without Host: the default site serves it
    with proxy.connect() as c:
        r = c.get("/", host=None, version="HTTP/1.0")
    assert (r.status, r.tag) == (200, "z")


def test_each_listener_has_its_own_default_site(synapserve, backends):
    """docs/configuration.md: on each listener only one site can be the default."""
    pub, internal = backends("public", "internal")
    proxy = synapserve(
        upstreams={"pub": [pub], "int": [internal]},
        listeners=("http", "internal"),
        sites={
            "public": {"hosts": ["*"], "listeners": ["http"], "routes": {"/": "pub"}},
            "internal": {"hosts": ["*"], "listeners": ["internal"], "routes": {"/": "int"}},
        },
    )
    assert proxy.get("/").tag == "public"
    assert proxy.get("/", listener="internal").tag == "internal"


def test_one_host_may_belong_to_two_sites_on_different_listeners(synapserve, backends):
    """docs/configuration.md: two sites may list the same host if they share no listener."""
    pub, internal, other = backends("public", "internal", "other")
    proxy = synapserve(
        upstreams={"pub": [pub], "int": [internal], "other": [other]},
        listeners=("http", "internal"),
        sites={
            "public": {"hosts": ["app.example"], "listeners": ["http"], "routes": {"/": "pub"}},
            "internal": {
                "hosts": ["app.example"],
                "listeners": ["internal"],
                "routes": {"/": "int"},
            },
            "everywhere": {"hosts": ["other.example"], "routes": {"/": "other"}},
        },
    )
    assert proxy.get("/").tag == "public"
    assert proxy.get("/", listener="internal").tag == "internal"
    assert proxy.get("/", headers=[("Host", "other.example")]).tag == "other"
    assert proxy.get("/", headers=[("Host", "other.example")], listener="internal").tag == "other"
