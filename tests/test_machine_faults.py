"""Faults of the machine (issue 25): a file-size limit while writing, a cache folder that
cannot be written. Each gives one line and a clean folder, or a warning and a correct result."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

JAXVI = [sys.executable, "-m", "jaxvi", "fit"]


@pytest.fixture(scope="module")
def input_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("faults") / "d.parquet"
    ids = np.repeat(np.arange(200_000), 2)
    pq.write_table(pa.table({"dataset_id": ids, "x": np.linspace(0, 1, ids.size)}), path)
    return path


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))  # 1 MB, as `ulimit -f 1024`


@pytest.mark.parametrize("ending", [".csv", ".parquet"])
def test_a_file_size_limit_names_the_output_and_leaves_nothing(input_file, tmp_path, ending):
    out = tmp_path / "out"
    out.mkdir()
    target = out / f"results{ending}"
    proc = subprocess.run(
        [*JAXVI, str(input_file), "-o", str(target), "-q"],
        preexec_fn=_limit_file_size,
        capture_output=True,
        text=True,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"jaxvi fit: error: {target}: file too large (")
    assert proc.stderr.count("\n") == 1
    assert list(out.iterdir()) == []


def test_a_cache_folder_that_cannot_be_written_warns_once_and_fits(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("dataset_id,x\n1,0.5\n1,1.5\n2,3.0\n")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(blocker / "c"))
    out = tmp_path / "r.parquet"
    proc = subprocess.run(
        [*JAXVI, str(data), "-o", str(out), "-q"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxvi fit: warning: cache folder "), lines
    assert pq.read_table(out)["n"].to_pylist() == [2, 1]
