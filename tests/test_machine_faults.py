"""Faults of the machine (issue 25): a file-size limit (a full disk) while writing and while
spilling, a temporary folder that vanishes, a cache folder that cannot be written, runs killed
or run at once. Each gives one line and a clean folder, or a warning and a correct result."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

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


# The command under a 1 MB file-size limit, as `ulimit -f 1024` sets it (set in the child
# itself: a preexec_fn is unsafe in a process that runs threads).
LIMITED = (
    "import resource, sys\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
    "from jaxvi.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.parametrize("ending", [".csv", ".parquet"])
def test_a_file_size_limit_names_the_output_and_leaves_nothing(input_file, tmp_path, ending):
    out = tmp_path / "out"
    out.mkdir()
    target = out / f"results{ending}"
    proc = subprocess.run(
        [sys.executable, "-c", LIMITED, "fit", str(input_file), "-o", str(target), "-q"],
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


def _dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True)  # fmt: skip
    return int(proc.stdout)


def test_what_killed_runs_left_is_removed_by_the_next_and_a_live_runs_is_kept(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("dataset_id,x\n1,0.5\n1,1.5\n2,3.0\n")
    out = tmp_path / "out"
    out.mkdir()
    dead, live = _dead_pid(), os.getpid()
    stale = out / f".r.parquet.{dead}-abc.tmp"
    stale.write_text("partial output of a killed run")
    running = out / f".r.parquet.{live}-xyz.tmp"
    running.write_text("a concurrent run's output")
    spill = tmp_path / "tmp" / "jaxvi_duckdb"
    (spill / str(dead)).mkdir(parents=True)
    (spill / str(dead) / "duckdb_temp_storage-0.tmp").write_bytes(b"spilled")
    (spill / str(live)).mkdir()
    env = dict(os.environ, JAX_PLATFORMS="cpu", TMPDIR=str(tmp_path / "tmp"))
    proc = subprocess.run(
        [*JAXVI, str(data), "-o", str(out / "r.parquet"), "-q"], env=env, capture_output=True
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(["r.parquet", running.name])
    assert not (spill / str(dead)).exists()
    assert (spill / str(live)).exists()


def test_concurrent_runs_on_one_input_output_and_cache_agree(input_file, tmp_path):
    """Three runs at once, same input, same output file, same (empty) cache: each succeeds,
    the output is one complete file equal to a lone run's, and nothing else is left."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(tmp_path / "c"))
    out = tmp_path / "out"
    out.mkdir()
    cmd = [*JAXVI, str(input_file), "-o", str(out / "r.parquet"), "-q"]
    procs = [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    assert errors == ["", "", ""]
    assert [p.name for p in out.iterdir()] == ["r.parquet"]
    together = pq.read_table(out / "r.parquet")
    alone = tmp_path / "alone.parquet"
    subprocess.run([*JAXVI, str(input_file), "-o", str(alone), "-q"], env=env, check=True)
    assert together.equals(pq.read_table(alone))


@pytest.fixture(scope="module")
def spilling_input(tmp_path_factory):
    """Shuffled rows of 7·10⁵ datasets: DuckDB's group-by spills under a 40 MB memory limit."""
    path = tmp_path_factory.mktemp("spill") / "shuffled.parquet"
    rng = np.random.default_rng(26)
    ids = rng.integers(0, 700_000, 2_000_000)
    pq.write_table(pa.table({"dataset_id": ids, "x": rng.standard_normal(ids.size)}), path)
    return path


SPILL = ["--memory-limit", "40MB", "--threads", "1", "-q"]


def test_a_full_disk_while_spilling_names_the_spill_file_and_leaves_nothing(
    spilling_input, tmp_path
):
    """A 1 MB file-size limit, as a full disk: the first spill file that outgrows it is
    named in one line (exit 2), and neither output nor spill file is left."""
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    out.mkdir()
    tmp.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", LIMITED, "fit", str(spilling_input), "-o", str(out / "r.parquet"),
         *SPILL],
        capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu", TMPDIR=str(tmp)),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxvi fit: error: "), lines
    assert f'"{tmp}/jaxvi_duckdb/' in lines[0] and "File too large" in lines[0], lines
    assert list(out.iterdir()) == []
    assert [p for p in tmp.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("when", ["before the spill", "while spilling"])
def test_a_temporary_folder_that_vanishes_mid_run_is_one_line(spilling_input, tmp_path, when):
    """The temporary folder removed once jaxvi's spill folder appears, or once DuckDB has
    spilled: DuckDB cannot make or open its next file, and the run ends with one line naming
    it (exit 2) and no output, not a traceback; a run that needed no new file finishes."""
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    out.mkdir()
    tmp.mkdir()
    target = out / "r.parquet"
    env = dict(os.environ, JAX_PLATFORMS="cpu", TMPDIR=str(tmp))
    proc = subprocess.Popen(
        [*JAXVI, str(spilling_input), "-o", str(target), *SPILL],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    pattern = "jaxvi_duckdb" if when == "before the spill" else "jaxvi_duckdb/*/*"
    deadline = time.monotonic() + 60
    while not list(tmp.glob(pattern)) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    shutil.rmtree(tmp, ignore_errors=True)
    _, err = proc.communicate(timeout=120)
    lines = err.splitlines()
    if proc.returncode == 0:  # DuckDB had every file it needed open
        assert lines == [] and pq.read_table(target).num_rows > 600_000
        return
    assert proc.returncode == 2, err
    assert len(lines) == 1 and f'"{tmp}/jaxvi_duckdb/' in lines[0], lines
    assert "Traceback" not in err
    assert list(out.iterdir()) == []
