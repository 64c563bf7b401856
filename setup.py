"""Only here because cffi_modules is a setup() keyword; the rest is in pyproject.toml."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from setuptools import setup  # noqa: E402

setup(cffi_modules=["appliance/synapserve/_native_build.py:ffibuilder"])
