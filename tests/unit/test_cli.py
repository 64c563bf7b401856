"""The command line, run as a real process."""

from __future__ import annotations


def test_version_names_the_simd_level(run_cli):
    out = run_cli("version", check=True).stdout
    assert out.startswith("synapserve 0.1.0 (native 0.1.0)")
    assert "parser simd: " in out


def test_version_honours_simd_cap(run_cli, monkeypatch):
    monkeypatch.setenv("SYN_SIMD", "scalar")
    out = run_cli("version", check=True).stdout
    assert "parser simd: scalar" in out


def test_run_says_not_yet_until_the_data_plane_lands(run_cli):
    res = run_cli("run", "--config-dir", "etc/synapserve")
    assert res.returncode == 2
    assert "not yet" in res.stderr


def test_unknown_command_is_a_usage_error(run_cli):
    res = run_cli("frobnicate")
    assert res.returncode == 2
    assert "invalid choice" in res.stderr
