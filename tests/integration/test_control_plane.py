"""The control plane's own duties: active health checks with rise and fall, systemd
notifications, dropping root, and the `synapserve status` / `reload` commands."""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess

import pytest
from harness import wait_for


def test_health_takes_a_server_out_after_fall_and_back_after_rise(synapserve, backends):
    a, b = backends("a", "b")
    health = {"path": "/healthz", "interval": "100ms", "timeout": "80ms", "rise": 2, "fall": 3}
    proxy = synapserve(upstreams={"app": {"servers": [a, b], "health": health}})
    wait_for(lambda: proxy.server_up("app", a) and proxy.server_up("app", b), what="both up")

    a.health_status = 503
    seen = a.health_checks
    wait_for(lambda: not proxy.server_up("app", a), what="a taken out")
    # taken out by the third failed check, not before
    assert a.health_checks - seen >= 3
    assert {proxy.get("/").tag for _ in range(6)} == {"b"}
    state = {s["address"]: s for s in proxy.status()["upstreams"]["app"]["servers"]}
    assert state[a.address]["state"] == "down"
    assert state[a.address]["health"]["last_status"] == 503

    a.health_status = 200
    seen = a.health_checks
    wait_for(lambda: proxy.server_up("app", a), what="a back")
    assert a.health_checks - seen >= 2  # rise = 2
    assert {proxy.get("/").tag for _ in range(6)} == {"a", "b"}
    log = proxy.stderr()
    # each transition logged once
    assert log.count(f"health: app {a.address} -> down") == 1
    assert log.count(f"health: app {a.address} -> up") == 2  # first check, then the return


def test_systemd_is_told_ready_reloading_and_stopping(synapserve_cmd, backends, tmp_path):
    (a,) = backends("a")
    sock_path = str(tmp_path / "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(sock_path)
    notify.settimeout(10)
    from harness import Proxy, ProxySpec

    proxy = Proxy(synapserve_cmd, str(tmp_path / "p"), ProxySpec({"app": [a]}))
    os.environ["NOTIFY_SOCKET"] = sock_path
    try:
        proxy.start()
    finally:
        del os.environ["NOTIFY_SOCKET"]
    try:
        assert notify.recv(64) == b"READY=1"
        proxy.wait_healthy()
        proxy.signal(signal.SIGHUP)
        assert notify.recv(64) == b"RELOADING=1"
        assert notify.recv(64) == b"READY=1"
    finally:
        proxy.stop()
    assert notify.recv(64) == b"STOPPING=1"
    notify.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_root_becomes_server_user_after_binding(synapserve, backends):
    (a,) = backends("a")
    nobody = pwd.getpwnam("nobody")
    proxy = synapserve(upstreams={"app": [a]}, server={"user": "nobody"})
    assert proxy.get("/").tag == "a"
    with open(f"/proc/{proxy.proc.pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    assert fields["Uid"].split()[:2] == [str(nobody.pw_uid)] * 2
    assert int(fields["CapEff"], 16) == 1 << 10  # CAP_NET_BIND_SERVICE only
    assert "running as nobody" in proxy.stderr()


def test_status_and_reload_commands(synapserve, backends, synapserve_cmd):
    a, b = backends("a", "b")
    proxy = synapserve(upstreams={"app": [a, b]})
    for _ in range(4):
        proxy.get("/")
    admin = f"127.0.0.1:{proxy.admin_port}"
    out = subprocess.run(
        [*synapserve_cmd, "status", "--admin", admin], capture_output=True, text=True, check=True
    ).stdout
    lines = [line.split() for line in out.splitlines()]
    rows = {row[1]: row for row in lines if row and row[0] == "app"}
    assert set(rows) == {a.address, b.address}
    assert all(row[2] == "up" and int(row[4]) == 2 for row in rows.values())

    proxy.write_config(upstreams={"app": [a]})
    res = subprocess.run(
        [*synapserve_cmd, "reload", "--admin", admin], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert f"servers removed: app/{b.address}" in res.stdout or "no changes" in res.stdout

    proxy.write_text("[listeners.http]\nbind = 7\n", name="zz-broken.toml")
    res = subprocess.run(
        [*synapserve_cmd, "reload", "--admin", admin], capture_output=True, text=True
    )
    assert res.returncode == 1
    assert "zz-broken.toml" in res.stderr
    assert proxy.get("/").tag == "a"  # the running config kept serving
