"""Start, stop and reload of the real process (PRODUCT.md sections 4 and 5, "Reload")."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import signal
import socket
import subprocess
import threading
import time

from harness import LOCALHOST, ProxySpec, free_port, payload, payload_sha256, wait_for

# ---- stopping -----------------------------------------------------------------------------------


def test_sigterm_lets_an_in_flight_request_finish(synapserve, backends):
    (a,) = backends("a")
    a.delay = 1.0
    proxy = synapserve(upstreams={"app": [a]})
    with cf.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(proxy.get, "/bytes/300000")
        wait_for(lambda: a.requests == 1, what="the request to reach the backend")
        proxy.signal(signal.SIGTERM)
        r = pending.result()
    assert r.status == 200
    assert r.body == payload(300_000)
    assert proxy.stop() == 0  # waits for the exit; 0 and no traceback


def test_stop_signals_while_exiting_still_exit_0(synapserve, backends):
    """Once stopped, the interpreter's exit resets Python's signal handlers to the default: a
    SIGTERM then (a second `systemctl stop`, a harness that signals again) killed the process
    that was exiting cleanly, status -15 instead of 0."""
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]})
    proxy.signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    while proxy.proc.poll() is None and time.monotonic() < deadline:
        try:
            proxy.signal(signal.SIGTERM)
        except ProcessLookupError:
            break
        time.sleep(0.001)
    assert proxy.stop() == 0


def test_sigterm_closes_idle_connections_and_exits_promptly(synapserve, backends):
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]})
    with proxy.connect() as c:
        assert c.get("/").status == 200
        start = time.monotonic()
        proxy.signal(signal.SIGTERM)
        assert c.at_eof(timeout=5), "an idle kept-alive connection is not closed at stop"
    proxy.stop()
    assert time.monotonic() - start < 3.0  # nothing in flight: no need to wait the grace period


def test_sigterm_right_after_ready_exits_cleanly(synapserve_cmd, backends, tmp_path):
    """Ready is /healthz answering 200 (and READY=1 for systemd): a SIGTERM from then on must
    drain and exit 0, not kill the process."""
    (a,) = backends("a")
    codes = []
    for i in range(5):
        admin = free_port()
        conf = tmp_path / f"p{i}"
        conf.mkdir()
        (conf / "synapserve.toml").write_text(
            ProxySpec({"app": [a]}).render({"http": free_port()}, admin)
        )
        proc = subprocess.Popen(
            [*synapserve_cmd, "run", "--config-dir", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 15
            while not healthz_ok(admin):  # polled as tightly as a supervisor would see it
                assert time.monotonic() < deadline and proc.poll() is None, "never ready"
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        codes.append((proc.returncode, "Traceback" in err))
    assert codes == [(0, False)] * 5


def healthz_ok(port: int) -> bool:
    """One GET /healthz, as fast as it goes (no client library, no sleep)."""
    try:
        with socket.create_connection((LOCALHOST, port), timeout=1) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := s.recv(4096):  # all of it: closing on unread bytes would reset
                reply += chunk
            return reply.startswith(b"HTTP/1.1 200") or _pause()
    except OSError:
        return _pause()


def _pause() -> bool:
    time.sleep(0.001)  # not a wait for something: just not a busy loop
    return False


def test_a_clean_stop_logs_no_error(synapserve, backends):
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]})
    assert proxy.get("/").status == 200
    proxy.stop()
    errors = [line for line in proxy.stderr().splitlines() if " ERROR " in line]
    assert errors == []


def test_admin_clients_that_reset_leave_no_traceback(synapserve, backends):
    """A scraper that times out and resets its connection is routine: not a traceback in the
    log."""
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]})
    for path in (b"/metrics", b"/status", b"/healthz"):
        s = socket.create_connection((LOCALHOST, proxy.admin_port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        s.close()  # reset, whatever the admin endpoint was doing
    assert proxy.admin("GET", "/healthz")[0] == 200
    proxy.stop(check=False)
    assert "Traceback" not in proxy.stderr(), proxy.stderr()


def test_a_port_in_use_is_one_clear_line_and_exit_1(synapserve_cmd, backends, tmp_path):
    (a,) = backends("a")
    with socket.socket() as taken:
        taken.bind((LOCALHOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "synapserve.toml").write_text(
            ProxySpec({"app": [a]}).render({"http": port}, free_port())
        )
        done = subprocess.run(
            [*synapserve_cmd, "run", "--config-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "cannot bind" in lines[0] and f"{LOCALHOST}:{port}" in lines[0]


# ---- reloading ---------------------------------------------------------------------------------


def test_reload_adds_a_server_and_says_so(synapserve, backends):
    a, b = backends("a", "b")
    proxy = synapserve(upstreams={"app": [a]}, server={"workers": 1})
    assert proxy.status()["generation"] == 1
    proxy.write_config(upstreams={"app": [a, b]})
    # the directory is watched: saving the file is enough
    wait_for(lambda: proxy.status()["generation"] >= 2, what="the watcher's reload")
    assert f"servers added: app/{b.address}" in proxy.stderr()
    assert {proxy.get("/").tag for _ in range(4)} == {"a", "b"}
    # POST /reload with nothing changed: applied, counted, and says it changed nothing
    gen = proxy.status()["generation"]
    ok = proxy.metric("synapserve_config_reloads_total", result="success")
    result = proxy.reload()
    assert (result["http_status"], result["ok"], result["errors"]) == (200, True, [])
    assert result["generation"] == gen + 1
    assert all(not v for diff in result["changes"].values() for v in diff.values())
    assert proxy.metric("synapserve_config_reloads_total", result="success") == ok + 1
    assert proxy.metric("synapserve_config_last_reload_successful") == 1


def test_post_reload_reports_what_changed(synapserve, backends):
    a, b, c = backends("a", "b", "c")
    proxy = synapserve(upstreams={"app": [a, b]})
    gen = proxy.status()["generation"]
    proxy.write_config(upstreams={"app": {"servers": [a, c], "balance": "least_conn"}})
    result = proxy.reload()
    assert result["ok"]
    # the watcher may have applied the file first; then this reload changed nothing, and the
    # change is in the log of the one before
    if result["generation"] == gen + 1:
        changes = result["changes"]
        assert changes["servers"]["added"] == [f"app/{c.address}"]
        assert changes["servers"]["removed"] == [f"app/{b.address}"]
        assert changes["upstreams"]["modified"] == ["app"]
    else:
        err = proxy.stderr()
        assert f"servers added: app/{c.address}" in err
        assert f"servers removed: app/{b.address}" in err
    assert {proxy.get("/").tag for _ in range(6)} <= {"a", "c"}


def test_an_invalid_config_is_refused_and_the_running_one_kept(synapserve, backends):
    a, b = backends("a", "b")
    proxy = synapserve(upstreams={"app": [a]})
    gen = proxy.status()["generation"]
    good = proxy.spec.render(proxy.ports, proxy.admin_port)
    proxy.write_text(good.replace(f'"{a.address}"', f'"{b.address}", wieght = 2'))
    result = proxy.reload()
    assert (result["http_status"], result["ok"]) == (422, False)
    assert result["generation"] == gen
    assert any("synapserve.toml" in e and "wieght" in e for e in result["errors"]), result
    assert proxy.get("/").tag == "a"
    assert proxy.status()["generation"] == gen
    assert proxy.metric("synapserve_config_reloads_total", result="failure") >= 1
    assert proxy.metric("synapserve_config_last_reload_successful") == 0
    assert b.requests == 0
    # the fix, saved: the watcher applies it
    proxy.write_config(upstreams={"app": [a, b.server(weight=2)]})
    wait_for(
        lambda: proxy.metric("synapserve_config_last_reload_successful") == 1,
        what="the fixed config to apply",
    )
    assert proxy.status()["generation"] > gen
    assert {proxy.get("/").tag for _ in range(6)} == {"a", "b"}


def test_a_removed_server_gets_no_request_once_the_reload_returned(synapserve, backends):
    a, b = backends("a", "b")
    proxy = synapserve(upstreams={"app": [a, b]}, server={"workers": 1})
    with proxy.connect() as c:
        assert c.get("/").tag == "a"  # round robin: b would be next
        proxy.write_config(upstreams={"app": [a]})
        assert proxy.reload()["ok"]
        after = [c.get("/").tag for _ in range(3)]
    after += [proxy.get("/").tag for _ in range(3)]
    assert after == ["a"] * 6
    assert b.requests == 0


def test_reloads_do_not_disturb_traffic(synapserve, backends):
    a, b = backends("a", "b")
    proxy = synapserve(upstreams={"app": [a, b]})
    stop = threading.Event()
    errors: list[str] = []
    done = [0]

    def client() -> None:
        with proxy.connect() as kept:  # a long-lived connection across every reload
            while not stop.is_set():
                for r in (proxy.get("/echo"), kept.get("/echo")):
                    if r.status != 200:
                        errors.append(f"{r.status} {r.body[:80]!r}")
                    done[0] += 1

    with cf.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(client) for _ in range(2)]
        for i in range(6):
            weight = 1 + i % 2
            proxy.write_config(upstreams={"app": [a, b.server(weight=weight)]})
            assert proxy.reload()["ok"]
        stop.set()
        for f in futures:
            f.result()  # no exception: no connection was refused or reset
    assert errors == []
    assert done[0] > 20


def test_a_server_that_stays_keeps_its_pool_counters_and_health(synapserve, backends):
    a, b = backends("a", "b")
    health = {"path": "/healthz", "interval": "3s", "timeout": "1s"}
    proxy = synapserve(upstreams={"app": {"servers": [a], "health": health}}, server={"workers": 1})
    for _ in range(5):
        assert proxy.get("/").tag == "a"
    conns = a.connections
    assert conns == 1  # pooled
    proxy.write_config(upstreams={"app": {"servers": [a, b], "health": health}})
    assert proxy.reload()["ok"]
    # a is still up at once (no check in between: the interval is 3s); b, new, waits for its
    # first good check
    assert proxy.server_up("app", a)
    assert proxy.metric("synapserve_upstream_requests_total", server=a) == 5
    tags = [proxy.get("/").tag for _ in range(5)]
    assert tags == ["a"] * 5 or a.health_checks + b.health_checks > 1
    assert a.connections == conns, "the pooled connections to a were dropped by the reload"


def test_a_download_in_progress_survives_reloads(synapserve, backends):
    (a,) = backends("a")
    proxy = synapserve(upstreams={"app": [a]})
    size = 64 << 20
    with proxy.connect() as c:
        c.send(b"GET /bytes/%d HTTP/1.1\r\nHost: app.example\r\n\r\n" % size)
        head = c.reader.read_head()  # the response has started
        assert head.startswith(b"HTTP/1.1 200")
        for i in range(3):
            proxy.write_config(upstreams={"app": [a.server(weight=1 + i)]})
            assert proxy.reload()["ok"]
        digest = hashlib.sha256()
        c.reader.read_exact(size, digest.update)
    assert digest.hexdigest() == payload_sha256(size)
