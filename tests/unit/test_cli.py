"""The command line, run as a real process."""

from __future__ import annotations

import subprocess
import sys


def test_version_names_the_simd_level_and_features(run_cli):
    out = run_cli("version", check=True).stdout
    assert out.startswith("synapserve 0.1.0 (native 0.1.0)")
    assert "parser simd: " in out
    assert "engine: io_uring" in out
    for feature in ("multishot_accept", "buf_ring", "send_zc", "splice", "ktls"):
        assert feature in out


def test_version_honours_simd_cap(run_cli, monkeypatch):
    monkeypatch.setenv("SYN_SIMD", "scalar")
    out = run_cli("version", check=True).stdout
    assert "parser simd: scalar" in out


def test_run_refuses_a_broken_config_with_one_clear_line(run_cli, tmp_path):
    (tmp_path / "a.toml").write_text('[listeners.http]\nbind = "127.0.0.1:18999"\nbogus = 1\n')
    res = run_cli("run", "--config-dir", str(tmp_path))
    assert res.returncode == 1
    assert "invalid configuration" in res.stderr
    assert "listeners.http.bogus" in res.stderr


def test_unknown_command_is_a_usage_error(run_cli):
    res = run_cli("frobnicate")
    assert res.returncode == 2
    assert "invalid choice" in res.stderr


def _imported(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running code."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return set(out.split())


def test_commands_import_only_what_they_use():
    """Each module costs resident memory for the life of the process (docs/benchmarks.md,
    bench-rss): what a command never uses stays out of it."""
    check = _imported("import synapserve.cli, synapserve.config")
    assert not check & {"urllib.request", "http.client", "ssl", "email", "decimal", "difflib"}
    run = _imported("import synapserve.cli, synapserve.supervisor")
    assert not run & {"decimal", "difflib", "asyncio", "brotli"}
