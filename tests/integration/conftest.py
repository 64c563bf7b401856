"""Fixtures of the end-to-end suite: `backends(...)` and `synapserve(...)` (see harness.py)."""

from __future__ import annotations

import pytest
from harness import Backend, Blackhole, Proxy, ProxySpec


@pytest.fixture
def backends():
    """backends("a", "b", delay=0.1) -> [Backend("a"), Backend("b")], closed at teardown."""
    made: list[Backend] = []

    def make(*tags: str, **knobs) -> list[Backend]:
        new = [Backend(tag, **knobs) for tag in tags]
        made.extend(new)
        return new

    yield make
    for b in made:
        b.close()


@pytest.fixture
def blackhole():
    """An address where connects hang (for connect timeouts)."""
    hole = Blackhole()
    yield hole
    hole.close()


@pytest.fixture
def synapserve(synapserve_cmd, tmp_path):
    """synapserve(upstreams={"app": [a, b]}, route="/", server={"workers": 1}, ...) -> a
    running Proxy; stopped at teardown, which fails if it did not exit 0 or left a traceback."""
    made: list[Proxy] = []

    def start(
        upstreams: dict,
        route: str | None = "/",
        sites: dict | None = None,
        listeners: tuple[str, ...] = ("http",),
        wait_healthy: bool = True,
        **sections,
    ) -> Proxy:
        spec = ProxySpec(upstreams, route, sites, tuple(listeners), sections)
        proxy = Proxy(synapserve_cmd, str(tmp_path / f"proxy{len(made)}"), spec)
        made.append(proxy)
        proxy.start()
        if wait_healthy:
            proxy.wait_healthy()
        return proxy

    yield start
    problems = []
    for p in made:
        if p.proc is not None and p.returncode is None:
            try:
                p.stop()
            except AssertionError as e:
                problems.append(str(e))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
