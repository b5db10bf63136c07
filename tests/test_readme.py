"""The code of the README and of the documentation's pages runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import jax

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DASK_GUIDE = ROOT / "docs" / "guide" / "dask.md"


def test_the_python_example_runs():
    block = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    namespace: dict = {}
    # A user's settings, not the suite's strict ones (tests/conftest.py).
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        exec(compile(block, "README.md", "exec"), namespace)
    table = namespace["table"]
    assert table["dataset_id"].to_pylist() == ["a", "b"]
    assert table["n"].to_pylist() == [1, 2]


def test_the_dask_example_runs(tmp_path, monkeypatch):
    """The Dask guide's example: a LocalCluster, jaxvi.dask.fit_table on runs/, to_parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    block = re.findall(r"```python\n(.*?)```", DASK_GUIDE.read_text(), re.S)[0]
    assert "jaxvi.dask.fit_table" in block
    (tmp_path / "runs").mkdir()
    rows = pa.table({"dataset_id": [3, 1, 3, 2], "x": [0.5, 1.0, 1.5, 2.0]})
    pq.write_table(rows, tmp_path / "runs" / "part-0.parquet")
    monkeypatch.chdir(tmp_path)
    exec(compile(block, str(DASK_GUIDE), "exec"), {})
    table = pq.read_table(tmp_path / "results").to_pandas().sort_values("dataset_id")
    assert table["dataset_id"].tolist() == [1, 2, 3]
    assert table["n"].tolist() == [1, 1, 2]
