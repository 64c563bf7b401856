"""The plan crossing the boundary: compiled from a Config, validated again in C."""

from __future__ import annotations

import socket

import pytest

from synapserve import config, plan
from synapserve.native import Engine, EngineError

CONFIG = """
[server]
workers = 1
max_connections = 16
[listeners.http]
bind = "127.0.0.1:{port}"
[upstreams.app]
servers = [{{ address = "127.0.0.1:9001" }}, {{ address = "127.0.0.1:9002", weight = 3 }}]
[sites.main]
hosts = ["*"]
[[sites.main.routes]]
path = "/"
upstream = "app"
"""


@pytest.fixture
def setup(tmp_path):
    sock = socket.create_server(("127.0.0.1", 0))
    (tmp_path / "s.toml").write_text(CONFIG.format(port=sock.getsockname()[1]))
    cfg = config.load(tmp_path)
    engine = Engine(1, 16)
    yield cfg, {f"127.0.0.1:{sock.getsockname()[1]}": sock}, engine
    engine.close()
    sock.close()


def test_a_valid_plan_applies_and_slots_stay_across_builds(setup):
    cfg, sockets, engine = setup
    slots = plan.SlotState()
    p1 = plan.build(cfg, sockets, slots, 1)
    engine.apply(p1)
    p1.commit(slots)
    p2 = plan.build(cfg, sockets, slots, 2)
    engine.apply(p2)
    assert p2.server_slot == p1.server_slot
    assert engine.gc() >= 0


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda p: setattr(p.ptr, "magic", 7), "bad magic"),
        (lambda p: setattr(p.ptr.routes[0], "upstream", 99), "route 0 invalid"),
        (lambda p: setattr(p.ptr.servers[1], "weight", 0), "server 1 invalid"),
        (lambda p: setattr(p.ptr.upstreams[0], "nservers", 5), "upstream 0 invalid"),
        (lambda p: setattr(p.ptr.upstreams[0], "balance", 9), "upstream 0 invalid"),
        (lambda p: setattr(p.ptr.listeners[0], "bit", 64), "listener 0 invalid"),
        (lambda p: setattr(p.ptr.limits, "headers", 65), "limits out of range"),
    ],
)
def test_the_engine_refuses_a_corrupt_plan(setup, corrupt, message):
    cfg, sockets, engine = setup
    p = plan.build(cfg, sockets, plan.SlotState(), 1)
    corrupt(p)
    with pytest.raises(EngineError, match=message):
        engine.apply(p)
