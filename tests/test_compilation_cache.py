"""The command's table kernel, kept in JAX's persistent compilation cache in its cache folder.

A user's second run loads the compiled kernel instead of compiling it, and must give the same
results, bit for bit; kernels of other shapes are other entries; a damaged entry costs a
compile and one warning, never the run (a folder that cannot be written:
``tests/test_machine_faults.py``). Each run is a process of its own (JAX's in-memory caches
are per process).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

# One run of the command in a fresh process; prints how many kernels JAX loaded from its
# persistent cache and how many it compiled (JAX's public monitoring events).
_RUN = (
    "import sys, collections, jax.monitoring\n"
    "seen = collections.Counter()\n"
    "jax.monitoring.register_event_listener(lambda name, **kw: seen.update([name]))\n"
    "from jaxvi.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "hits = seen['/jax/compilation_cache/cache_hits']\n"
    "misses = seen['/jax/compilation_cache/cache_misses']\n"
    "print(f'loaded={hits} compiled={misses}')\n"
    "sys.exit(rc)\n"
)


@pytest.fixture
def study(tmp_path):
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 9, 300)
    ids = np.repeat(np.arange(300), sizes)
    x = rng.normal(np.repeat(rng.exponential(size=300), sizes))
    table = pa.table({"dataset_id": ids, "x": x})
    table = table.append_column("lam", pa.array(0.5 + (ids % 3) / 4))
    table = table.append_column("sigma", pa.array(np.full(ids.size, 0.8)))
    pq.write_table(table, tmp_path / "d.parquet")
    return tmp_path


def _run(folder: Path, cache: Path, out: str, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(cache))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # set by `import jax` here; a user's shell lacks it
    args = ["fit", str(folder / "d.parquet"), "-o", str(folder / out), "-q", *extra]
    return subprocess.run(
        [sys.executable, "-c", _RUN, *args], capture_output=True, text=True, env=env, timeout=300
    )


def _fit(folder: Path, cache: Path, out: str, *extra: str, warns: str = "") -> tuple[int, int]:
    """(kernels loaded from JAX's cache, kernels compiled) by one successful, silent run."""
    proc = _run(folder, cache, out, *extra)
    assert proc.returncode == 0, proc.stderr
    # -q: a run that succeeds prints nothing (no XLA logs), or the one warning expected.
    if warns:
        assert proc.stderr.startswith(warns) and proc.stderr.count("\n") == 1, proc.stderr
    else:
        assert proc.stderr == "", proc.stderr
    loaded, compiled = (int(w.partition("=")[2]) for w in proc.stdout.split()[-2:])
    return loaded, compiled


def _same(folder: Path, *names: str) -> bool:
    first, *rest = (pq.read_table(folder / n) for n in names)
    return first.num_rows == 300 and all(first.equals(t) for t in rest)  # metadata too


def test_the_second_run_loads_the_kernel_and_gives_the_same_results(study):
    cache = study / "cache"
    assert _fit(study, cache, "first.parquet", "--batch-size", "128") == (0, 1)
    entries = set(cache.iterdir())
    assert _fit(study, cache, "second.parquet", "--batch-size", "128") == (1, 0)
    assert set(cache.iterdir()) == entries
    assert _same(study, "first.parquet", "second.parquet")  # bit for bit
    # Another batch size is another kernel, in an entry of its own.
    assert _fit(study, cache, "third.parquet", "--batch-size", "64") == (0, 1)
    assert len(set(cache.iterdir()) - entries) == 1
    assert _same(study, "first.parquet", "third.parquet")


def test_a_damaged_cache_entry_costs_a_compile_and_one_warning(study):
    # JAX writes its entries in place: a run killed mid-write leaves one cut short, which JAX
    # skips but never replaces. The command removes it, so that the next run saves a whole one.
    cache = study / "cache"
    _fit(study, cache, "first.parquet", "--batch-size", "128")
    for entry in cache.iterdir():
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])  # a write cut short
    warns = f"jaxvi fit: warning: the kernel saved in {cache} could not be read"
    assert _fit(study, cache, "second.parquet", "--batch-size", "128", warns=warns) == (0, 1)
    assert _fit(study, cache, "third.parquet", "--batch-size", "128") == (0, 1)  # saved whole
    assert _fit(study, cache, "fourth.parquet", "--batch-size", "128") == (1, 0)
    assert _same(study, "first.parquet", "second.parquet", "third.parquet", "fourth.parquet")


@pytest.mark.parametrize(
    "options",
    [
        ("--dtype", "float64"),
        ("--lam-column", "lam", "--sigma-column", "sigma"),
        ("--theta", "0.7", "--lam", "2"),
        ("--lam", "estimate"),
    ],
    ids=["double", "columns", "theta", "estimate"],
)
def test_every_kernel_shape_is_loaded_on_the_second_run(study, options):
    # Per-dataset λ and σ are arguments of their own; a fixed θ another; float64 runs with
    # x64; λ̂ runs JAX's estimator beside the kernel.
    cache = study / "cache"
    args = ("--batch-size", "128", *options)
    loaded, compiled = _fit(study, cache, "first.parquet", *args)
    assert loaded == 0 and compiled >= 1
    assert _fit(study, cache, "second.parquet", *args) == (compiled, 0)
    assert _same(study, "first.parquet", "second.parquet")
    theta = pq.read_table(study / "first.parquet")["theta"].to_numpy()
    assert theta.dtype == (np.float64 if "float64" in options else np.float32)
    if "--theta" in options:
        assert np.all(theta == np.float32(0.7))
