"""The benchmark suites run (and there check every contender's θ against float64 NumPy).

No timing is asserted: ``benchmarks/`` runs once at a tiny scale with ``--benchmark-disable``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxvi._text import format_table
from jaxvi._tools.bench import BenchReport, BenchRow, ragged_workload, run_bench
from jaxvi._tools.peers import closed_form_numpy, numba_loop, numpy_reduceat

ROOT = Path(__file__).resolve().parents[1]


def _run_python(*args: str, timeout: int, **env: str) -> subprocess.CompletedProcess:
    """This interpreter on ``args`` from the repository root, without the suite's XLA_FLAGS
    (its 4 fake devices); the test fails with the output's tail on a non-zero exit."""
    environ = dict(os.environ, **env)
    environ.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    return proc


def test_benchmark_suites_run_once():
    proc = _run_python(
        *("-m", "pytest", "benchmarks", "-q", "-p", "no:cacheprovider", "-x"),
        timeout=600,
        JAXVI_BENCH_SCALE="0.0002",
        JAXVI_BENCH_ROUNDS="1",
    )
    # Every suite ran (the peers' suites skip only without the bench extra).
    assert " failed" not in proc.stdout and " passed" in proc.stdout


SCRIPTS = [
    ("profile_fit.py", "--num-datasets", "3000", "--reps", "1"),
    ("ragged_floor.py", "--num-datasets", "3000", "--reps", "1"),
    ("scaling.py", "--sizes", "1000,3000", "--reps", "1"),
    ("measure_fit_memory.py", "--num-datasets", "3000"),
    ("kernel_study.py", "--rows", "256", "--cols", "64", "--reps", "1", "--only", "variadic"),
    ("files.py", "--datasets", "2000", "--reps", "1", "--inputs", "shuffled_csv"),
    ("device_host_work.py", "--num-datasets", "3000", "--reps", "1"),
    ("padded_parts.py", "--rows", "2000", "--cols", "16", "--reps", "1"),
    ("profile_fit.py", "--num-datasets", "3000", "--reps", "1", "--engine", "device"),
    ("signal_stops.py", "--datasets", "2000", "--runs", "2", "--max-delay", "0.5"),
]


@pytest.mark.parametrize("script", SCRIPTS, ids=[s[0] for s in SCRIPTS])
def test_benchmark_scripts_run_at_a_tiny_scale(script, tmp_path):
    """The scripts RESULTS.md quotes still run and print their table (no timing asserted)."""
    picture = tmp_path / "files.png"
    extra = ("--dir", str(tmp_path), "--plot", str(picture)) if script[0] == "files.py" else ()
    proc = _run_python(str(ROOT / "benchmarks" / script[0]), *script[1:], *extra, timeout=300)
    assert "|" in proc.stdout or "{" in proc.stdout, proc.stdout[-2000:]
    if extra:
        assert picture.read_bytes().startswith(b"\x89PNG")
        assert "× the query's wall time" in proc.stdout  # the floors the README quotes
        assert "× the query's peak RSS" in proc.stdout


def test_numpy_peer_empty_datasets_give_the_prior():
    theta, elbo, grad = numpy_reduceat(np.array([1.0, 5.0]), np.array([0, 0, 2, 2]), lam=3.0)
    np.testing.assert_allclose(theta[[0, 2]], 3.0)
    np.testing.assert_allclose(elbo[[0, 2]], 0.0, atol=1e-15)
    np.testing.assert_allclose(grad[[0, 2]], 0.0, atol=1e-15)
    ref = closed_form_numpy(np.array([2.0]), np.array([6.0]), np.array([26.0]), lam=3.0)
    np.testing.assert_allclose(theta[1], ref[0][0])


def test_ragged_workload_has_a_long_tail_and_empty_datasets():
    values, offsets = ragged_workload(20_000)
    lengths = np.diff(offsets)
    assert values.dtype == np.float32 and offsets[-1] == values.shape[0]
    assert (lengths == 0).any() and lengths.max() > 40 * np.median(lengths)


def test_report_formats_every_row():
    row = BenchRow(
        "padded solve, lengths", 0.5, 1.0, 10, 4_000_000_000, 20.0, 8.0, 0.75, 1e-7, "note",
        headline=True,
    )  # fmt: skip
    fit_row = BenchRow("ragged fit", 0.1, 1.0, 1000, 4000, 1e4, 4e-5, 0.1, headline=True)
    peer = BenchRow("numba prange loop (float64)", 0.2, 1.0, 1000, 4000, 5e3, 2e-5, 0.05,
                    kind="peer")  # fmt: skip
    report = BenchReport("GPU X", "NVIDIA A100-SXM4-40GB", 1555.0, "0.10.2", [row, fit_row, peer])
    text = report.format()
    assert "padded solve" in text and "1555 GB/s" in text and "note" in text
    # The headline kernels get their headlines: roofline fraction, and ratio to each peer.
    assert "padded solve, lengths: 0.75 of the jnp.sum roofline" in text
    assert "ragged fit vs numba prange loop (float64): 2x the datasets/s" in text


def test_numba_peer_matches_numpy_in_float64():
    values, offsets = ragged_workload(2000)
    got, want = numba_loop(values, offsets), numpy_reduceat(values, offsets)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9)


def test_table_printer_aligns_columns():
    lines = format_table([("a", "1.5"), ("longer name", "10.25")], head=("contender", "s"))
    assert len({len(line) for line in lines}) == 1
    assert lines[2].startswith("longer name") and lines[1].endswith("  1.5")


def test_run_bench_names_an_unknown_peer():
    with pytest.raises(ValueError, match="julia"):
        run_bench(10, padded_rows=0, peers=("numpy", "julia"))
