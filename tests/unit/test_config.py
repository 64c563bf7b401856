"""The configuration loader: the corpus in tests/configs, the model, and `synapserve check`.

tests/configs/valid/<case>/ are directories that load; tests/configs/broken/<case>/ are
directories that do not, each with expected.txt: the exact issue lines, in order, with "{dir}"
standing for the case directory as passed to load().
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from synapserve import config
from synapserve.config import Address, ConfigError, Issue

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
REPO = Path(__file__).resolve().parents[2]
BROKEN = sorted(p.name for p in (CONFIGS / "broken").iterdir() if p.is_dir())
VALID = sorted(p.name for p in (CONFIGS / "valid").iterdir() if p.is_dir())

BASE = """
[listeners.http]
bind = "127.0.0.1:8080"

[upstreams.app]
servers = [{ address = "10.0.0.1:8080" }]

[sites.main]
hosts = ["*"]
[[sites.main.routes]]
path = "/"
upstream = "app"
"""


def expected_lines(case: Path) -> list[str]:
    return (case / "expected.txt").read_text().replace("{dir}", str(case)).splitlines()


def issues_of(directory: str | Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        config.load(directory)
    return [str(issue) for issue in err.value.issues]


def load_text(tmp_path: Path, text: str, base: str = BASE) -> config.Config:
    (tmp_path / "synapserve.toml").write_text(base + "\n" + text)
    return config.load(tmp_path)


# ---- the broken corpus ------------------------------------------------------------------------


def test_the_broken_corpus_covers_enough_cases():
    assert len(BROKEN) >= 35


@pytest.mark.parametrize("name", BROKEN)
def test_broken_config_reports_every_issue(name):
    case = CONFIGS / "broken" / name
    assert issues_of(case) == expected_lines(case)


def test_issue_files_are_the_directory_as_given_joined_with_the_name(monkeypatch):
    monkeypatch.chdir(CONFIGS / "broken")
    assert issues_of("port-zero") == [
        'port-zero/synapserve.toml:2: listeners.http.bind: invalid address "0.0.0.0:0": '
        "the port must be a number from 1 to 65535"
    ]


def test_a_missing_directory_is_an_issue(tmp_path):
    assert issues_of(tmp_path / "nope") == [f"{tmp_path}/nope: no such directory"]


def test_a_file_given_as_directory_is_an_issue(tmp_path):
    (tmp_path / "x.toml").write_text("")
    assert issues_of(tmp_path / "x.toml") == [
        f"{tmp_path}/x.toml: cannot read this directory: Not a directory"
    ]


def test_dot_files_and_other_names_are_not_read(tmp_path):
    (tmp_path / ".#synapserve.toml").write_text("not toml = = =")
    (tmp_path / "synapserve.toml.bak").write_text("not toml = = =")
    (tmp_path / "notes.toml").mkdir()
    assert issues_of(tmp_path) == [f"{tmp_path}: no *.toml files in this directory"]


def test_lines_are_found_in_arrays_of_tables(tmp_path):
    text = """[listeners.http]
bind = "127.0.0.1:8080"

[upstreams.app]
balance = "random"

[[upstreams.app.servers]]
address = "10.0.0.1:8080"

[[upstreams.app.servers]]
address = "10.0.0.2:8080"
weight = 0
"""
    assert issues_of_text(tmp_path, text) == [
        f"{tmp_path}/synapserve.toml:12: upstreams.app.servers[1].weight: "
        "expected an integer from 1 to 1000, got 0"
    ]


def issues_of_text(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "synapserve.toml").write_text(text)
    return issues_of(tmp_path)


def test_an_issue_reads_file_line_key_message():
    assert str(Issue("d/a.toml", "server.workers", "bad", 3)) == "d/a.toml:3: server.workers: bad"
    assert str(Issue("d/a.toml", "server.workers", "bad")) == "d/a.toml: server.workers: bad"
    assert str(Issue("d/a.toml", "", "invalid TOML: x", 1)) == "d/a.toml:1: invalid TOML: x"


def test_config_error_message_lists_every_issue():
    err = ConfigError([Issue("a", "k", "one", 1), Issue("b", "k", "two")])
    assert str(err) == "a:1: k: one\nb: k: two"
    assert len(err.issues) == 2


# ---- the valid corpus -------------------------------------------------------------------------


@pytest.mark.parametrize("name", VALID)
def test_valid_config_loads(name):
    assert config.load(CONFIGS / "valid" / name).summary().startswith("ok: ")


def test_minimal_config_gets_the_documented_defaults():
    cfg = config.load(CONFIGS / "valid" / "minimal")
    assert cfg.server == config.Server("auto", "synapserve", 65536, "auto", "/var/cache/synapserve")
    assert cfg.admin.bind == Address("127.0.0.1", 9180, "ipv4")
    assert cfg.log == config.Log("info", "/var/log/synapserve/access.log", "combined")
    assert cfg.limits == config.Limits(16384, 64, 100 * 1024**2, 10_000, 60_000, 75_000)
    assert cfg.listeners == {
        "http": config.Listener("http", (Address("127.0.0.1", 8080, "ipv4"),), None)
    }
    server = config.UpstreamServer(Address("127.0.0.1", 9001, "ipv4"), 1, False)
    assert cfg.upstreams == {
        "app": config.Upstream(
            name="app",
            balance="round_robin",
            servers=(server,),
            keepalive=32,
            connect_timeout_ms=2000,
            read_timeout_ms=60_000,
            send_timeout_ms=60_000,
            retries=2,
            slow_start_ms=0,
            health=None,
            passive=config.Passive(max_fails=3, fail_timeout_ms=10_000),
        )
    }
    route = config.Route("/", "app", None)
    assert cfg.sites == {"default": config.Site("default", ("*",), ("http",), (route,))}
    assert cfg.files == (str(CONFIGS / "valid" / "minimal" / "synapserve.toml"),)
    assert cfg.summary() == (
        "ok: 1 file, 1 listener (1 address), 1 upstream (1 server), 1 site (1 route)"
    )


def test_full_config_reads_every_key():
    full = CONFIGS / "valid" / "full"
    cfg = config.load(full)
    assert cfg.server == config.Server(4, "www-data", 10000, "portable", "/var/cache/synapserve")
    assert cfg.server.worker_count == 4
    assert cfg.admin.bind == Address("::1", 9190, "ipv6")
    assert cfg.log == config.Log("debug", "/var/log/synapserve/full.log", "json")
    assert cfg.limits == config.Limits(32768, 48, 1024**3, 5000, 90_000, 250)
    assert [str(a) for a in cfg.listeners["http"].binds] == ["0.0.0.0:80", "[::]:80"]
    assert cfg.listeners["https"].tls == config.Tls(
        (config.Certificate(str(full / "tls/site.pem"), str(full / "tls/site.key")),),
        "1.3",
        "require",
    )
    app = cfg.upstreams["app"]
    assert (app.balance, app.keepalive, app.retries, app.slow_start_ms) == (
        "least_conn",
        0,
        0,
        30_000,
    )
    assert (app.connect_timeout_ms, app.read_timeout_ms, app.send_timeout_ms) == (
        500,
        30_000,
        3_600_000,
    )
    assert [(str(s.address), s.weight, s.backup) for s in app.servers] == [
        ("10.0.0.1:8080", 3, False),
        ("10.0.0.2:8080", 1, False),
        ("[2001:db8::9]:8080", 1, True),
    ]
    assert app.health == config.Health("/ready", 5000, 1500, 1, 5, (*range(200, 300), 301, 404))
    assert app.passive == config.Passive(0, 60_000)
    assert cfg.upstreams["api"].servers[0].address == Address("127.0.0.1", 9000, "ipv4")
    assert cfg.upstreams["api"].balance == "ewma"
    example = cfg.sites["example"]
    assert example.hosts == ("example.com", "*.example.com")
    assert example.listeners == ("https",)
    assert example.routes == (
        config.Route("/assets/", None, config.Static(str(full / "www"), "main.html", True)),
        config.Route("/api/", "api", None),
        config.Route("/", "app", None),
    )
    fallback = cfg.sites["fallback"]
    assert fallback.listeners == ("http", "https")
    assert fallback.routes[0].static == config.Static(str(full / "www"), "index.html", False)
    assert cfg.summary() == (
        "ok: 1 file, 2 listeners (3 addresses), 2 upstreams (4 servers), 2 sites (4 routes)"
    )


def test_split_config_merges_files_in_name_order():
    split = CONFIGS / "valid" / "split"
    cfg = config.load(split)
    names = ["00-server.toml", "10-listeners.toml", "20-upstreams.toml", "30-sites.toml"]
    assert cfg.files == tuple(str(split / n) for n in names)
    assert list(cfg.listeners) == ["public", "internal"]
    assert cfg.log.access == "off"
    assert cfg.upstreams["web"].health == config.Health("/healthz", 2000, 1000, 2, 3, (200,))
    # The same host may belong to two sites when they share no listener.
    assert cfg.sites["web"].hosts == ("www.example.org", "example.org")
    assert cfg.sites["admin"].hosts == ("example.org",)
    assert cfg.sites["admin"].listeners == ("internal",)
    assert cfg.summary() == (
        "ok: 4 files, 2 listeners (3 addresses), 2 upstreams (3 servers), 2 sites (2 routes)"
    )


def test_shipped_example_config_is_valid():
    cfg = config.load(REPO / "etc" / "synapserve")
    assert cfg.summary() == (
        "ok: 1 file, 1 listener (1 address), 1 upstream (2 servers), 1 site (1 route)"
    )


def test_workers_auto_resolves_to_the_cpu_count(tmp_path):
    cfg = load_text(tmp_path, '[server]\nworkers = "auto"')
    assert cfg.server.workers == "auto"
    assert cfg.server.worker_count == os.cpu_count()


def test_the_model_is_frozen():
    cfg = config.load(CONFIGS / "valid" / "minimal")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.server.workers = 2  # type: ignore[misc]


# ---- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("250ms", 250),
        ("2s", 2000),
        ("1.5s", 1500),
        ("0.001s", 1),
        ("10.000s", 10_000),
        ("5m", 300_000),
        ("1h", 3_600_000),
        ("24h", 86_400_000),
    ],
)
def test_durations_are_milliseconds(tmp_path, text, ms):
    cfg = load_text(tmp_path, f'[limits]\nkeepalive_timeout = "{text}"')
    assert cfg.limits.keepalive_timeout_ms == ms


@pytest.mark.parametrize("text", ["1.25ms", "0.0005s", "1.0000001h"])
def test_durations_are_whole_milliseconds(tmp_path, text):
    with pytest.raises(ConfigError) as e:
        load_text(tmp_path, f'[limits]\nkeepalive_timeout = "{text}"')
    assert "is not a whole number of milliseconds" in str(e.value)


@pytest.mark.parametrize(
    ("value", "size"),
    [('"16k"', 16384), ('"1m"', 1024**2), ('"1G"', 1024**3), ("4096", 4096), ('"0"', 0)],
)
def test_sizes_are_bytes(tmp_path, value, size):
    assert load_text(tmp_path, f"[limits]\nbody_bytes = {value}").limits.body_bytes == size


def test_header_bytes_may_reach_the_ceiling(tmp_path):
    assert load_text(tmp_path, '[limits]\nheader_bytes = "64k"').limits.header_bytes == 65536


@pytest.mark.parametrize(
    ("expect", "codes"),
    [("200", (200,)), ('"3xx"', tuple(range(300, 400))), ('["204", 418]', (204, 418))],
)
def test_health_expect_lists_every_accepted_code(tmp_path, expect, codes):
    text = f"health = {{ expect = {expect} }}"
    cfg = load_text(tmp_path, "", BASE.replace("servers = [", text + "\nservers = ["))
    assert cfg.upstreams["app"].health.expect == codes


@pytest.mark.parametrize(
    ("text", "address", "canonical"),
    [
        ("10.0.0.1:80", Address("10.0.0.1", 80, "ipv4"), "10.0.0.1:80"),
        ("0.0.0.0:65535", Address("0.0.0.0", 65535, "ipv4"), "0.0.0.0:65535"),
        ("[::1]:8080", Address("::1", 8080, "ipv6"), "[::1]:8080"),
        ("[0:0::0]:80", Address("::", 80, "ipv6"), "[::]:80"),
        ("[2001:DB8::1]:443", Address("2001:db8::1", 443, "ipv6"), "[2001:db8::1]:443"),
        ("LocalHost:8080", Address("127.0.0.1", 8080, "ipv4"), "127.0.0.1:8080"),
    ],
)
def test_address_parse(text, address, canonical):
    assert Address.parse(text) == address
    assert str(address) == canonical


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("10.0.0.1", "the port is missing"),
        ("10.0.0.1:0", "the port must be a number from 1 to 65535"),
        ("10.0.0.1:65536", "the port must be a number from 1 to 65535"),
        ("10.0.0.1:http", "the port must be a number from 1 to 65535"),
        ("::1:80", "IPv6 addresses need brackets"),
        ("[::1]", "the port is missing"),
        (":80", "the host is missing"),
        ("example.com:80", "host names are not supported yet"),
        ("[1.2.3.4]:80", "only IPv6 addresses go in brackets"),
        ("[fe80::zz]:80", "fe80::zz is not a valid IP address"),
    ],
)
def test_address_parse_says_what_is_wrong(text, reason):
    with pytest.raises(ValueError, match=reason):
        Address.parse(text)


# ---- synapserve check --------------------------------------------------------------------------


def test_check_prints_the_summary_of_a_valid_config(run_cli):
    res = run_cli("check", "--config-dir", str(CONFIGS / "valid" / "split"))
    assert res.returncode == 0, res.stderr
    assert res.stdout == (
        "ok: 4 files, 2 listeners (3 addresses), 2 upstreams (3 servers), 2 sites (2 routes)\n"
    )
    assert res.stderr == ""


def test_check_prints_every_issue_of_a_broken_config(run_cli):
    case = CONFIGS / "broken" / "several-errors-at-once"
    res = run_cli("check", "--config-dir", str(case))
    assert res.returncode == 1
    assert res.stdout == ""
    assert res.stderr.splitlines() == expected_lines(case)
    assert len(res.stderr.splitlines()) == 13


def test_check_of_a_missing_directory_fails(run_cli, tmp_path):
    res = run_cli("check", "--config-dir", str(tmp_path / "absent"))
    assert res.returncode == 1
    assert res.stderr == f"{tmp_path}/absent: no such directory\n"
