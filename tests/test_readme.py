"""The README's code runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import jax

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_python_example_runs():
    (block,) = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    namespace: dict = {}
    # A user's settings, not the suite's strict ones (tests/conftest.py).
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        exec(compile(block, "README.md", "exec"), namespace)
    table = namespace["table"]
    assert table["dataset_id"].to_pylist() == ["a", "b"]
    assert table["n"].to_pylist() == [1, 2]
