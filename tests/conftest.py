"""Shared fixtures for the pytest suites."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def synapserve_cmd() -> list[str]:
    """The installed `synapserve` console script of this virtual environment."""
    exe = shutil.which("synapserve", path=os.path.dirname(sys.executable))
    assert exe, "the synapserve console script is not installed in this environment"
    return [exe]


@pytest.fixture
def run_cli(synapserve_cmd):
    def run(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*synapserve_cmd, *args], capture_output=True, text=True, timeout=60, check=check
        )

    return run
