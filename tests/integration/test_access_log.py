"""The access log end to end (PRODUCT.md section 3 `[log] access`, `access_format`; section 4:
SIGUSR1 reopens log files): one line per request, written by the workers."""

from __future__ import annotations

import json
import os
import re
import signal

from harness import wait_for

# nginx's and Apache's "combined":
# $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
# "$http_referer" "$http_user_agent"
COMBINED = re.compile(
    r'(?P<addr>\S+) - (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" '
    r'(?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"'
)


def lines(path: str, n: int) -> list[str]:
    def ready():
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            got = f.read().splitlines()
        return got if len(got) >= n else None

    return wait_for(ready, timeout=5, what=f"{n} lines in {path}")


def test_combined_lines(synapserve, backends, tmp_path):
    (a,) = backends("a")
    log = str(tmp_path / "access.log")
    proxy = synapserve(upstreams={"app": [a]}, log={"access": log, "access_format": "combined"})
    agent = [("User-Agent", "curl/8.0"), ("Referer", "http://ref.example/")]
    assert proxy.get("/one?x=1", headers=agent).status == 200
    assert proxy.get("/bytes/1234?status=404").status == 404
    assert proxy.get("/", headers=[("Host", "app.example")], source="127.0.0.7").status == 200
    got = [COMBINED.fullmatch(line) for line in lines(log, 3)]
    assert all(got), lines(log, 3)
    fields = [(m["addr"], m["request"], m["status"], m["bytes"]) for m in got]
    assert fields == [
        ("127.0.0.1", "GET /one?x=1 HTTP/1.1", "200", "1"),
        ("127.0.0.1", "GET /bytes/1234?status=404 HTTP/1.1", "404", "1234"),
        ("127.0.0.7", "GET / HTTP/1.1", "200", "1"),
    ]
    assert (got[0]["referer"], got[0]["agent"]) == ("http://ref.example/", "curl/8.0")
    assert (got[1]["referer"], got[1]["agent"]) == ("-", "-")


def test_json_lines(synapserve, backends, tmp_path):
    (a,) = backends("a")
    log = str(tmp_path / "access.log")
    proxy = synapserve(upstreams={"app": [a]}, log={"access": log, "access_format": "json"})
    quoted = '/q?"quoted"\\'
    assert proxy.get("/bytes/77").status == 200
    assert proxy.get(quoted.replace('"', "%22").replace("\\", "%5C")).status == 200
    records = [json.loads(line) for line in lines(log, 2)]
    assert len(records) == 2
    values = [json.dumps(r) for r in records]
    assert "/bytes/77" in values[0] and "200" in values[0]
    assert "77" in values[0]


def test_refused_requests_are_logged_too(synapserve, backends, tmp_path):
    (a,) = backends("a")
    log = str(tmp_path / "access.log")
    proxy = synapserve(upstreams={"app": [a]}, log={"access": log})
    assert proxy.get("/", headers=[("Host", "app.example")]).status == 200
    assert proxy.raw(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n").status == 505
    assert proxy.get("/").status == 200
    got = [COMBINED.fullmatch(line) for line in lines(log, 3)]
    assert [m["status"] for m in got] == ["200", "505", "200"]


def test_sigusr1_reopens_the_access_log(synapserve, backends, tmp_path):
    (a,) = backends("a")
    log = str(tmp_path / "access.log")
    proxy = synapserve(upstreams={"app": [a]}, log={"access": log})
    assert proxy.get("/before").status == 200
    lines(log, 1)
    os.rename(log, log + ".1")  # as logrotate does
    proxy.signal(signal.SIGUSR1)
    wait_for(lambda: "reopening" in proxy.stderr(), what="the reopen")
    wait_for(lambda: proxy.get("/after").status == 200 and os.path.exists(log), what="new file")
    assert all("/after" in line for line in lines(log, 1))
    with open(log + ".1", encoding="utf-8") as f:
        old = f.read().splitlines()
    assert len(old) == 1 and "/before" in old[0]
