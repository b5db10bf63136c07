"""Runs every ``@pytest.mark.float64`` test in a process of its own with x64 enabled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


@pytest.mark.slow
def test_float64_suite_passes_in_its_own_process():
    if os.environ.get("JAX_ENABLE_X64"):
        pytest.skip("already inside the float64 process")
    env = dict(os.environ, JAX_ENABLE_X64="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(TESTS),
            "-m",
            "float64",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=TESTS.parent,
    )
    tail = proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, f"float64 suite failed:\n{tail}"
    assert " passed" in proc.stdout, f"float64 suite ran no test:\n{tail}"
