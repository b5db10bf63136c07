"""The command's table kernel, kept compiled in its cache folder (``jaxvi._tables.saved_kernel``).

A run loads the executable instead of tracing the kernel: it must give the same results as
the run that compiled it, recompile a damaged or foreign file, and keep kernels of different
shapes apart. Each run is a process of its own (the loaded executables are per process).
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

# One run of the command in a fresh process; prints whether the modules that define the
# kernel were imported (they are only when it is traced).
_RUN = (
    "import sys\n"
    "from jaxvi.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print('traced' if 'jaxvi._model.exact' in sys.modules else 'loaded')\n"
    "sys.exit(rc)\n"
)


@pytest.fixture
def study(tmp_path):
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 9, 300)
    ids = np.repeat(np.arange(300), sizes)
    x = rng.normal(np.repeat(rng.exponential(size=300), sizes))
    pq.write_table(pa.table({"dataset_id": ids, "x": x}), tmp_path / "d.parquet")
    return tmp_path


def _fit(folder: Path, cache: Path, out: str, *extra: str) -> str:
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(cache))
    args = ["fit", str(folder / "d.parquet"), "-o", str(folder / out), "-q", *extra]
    proc = subprocess.run(
        [sys.executable, "-c", _RUN, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()[-1]


def _kernels(cache: Path) -> list[Path]:
    return sorted((cache / "jaxvi-kernels").glob("*.jaxvi-kernel"))


def test_the_second_run_loads_the_kernel_and_gives_the_same_results(study):
    cache = study / "cache"
    assert _fit(study, cache, "first.parquet", "--batch-size", "128") == "traced"
    (saved,) = _kernels(cache)
    assert _fit(study, cache, "second.parquet", "--batch-size", "128") == "loaded"
    first, second = (pq.read_table(study / f) for f in ("first.parquet", "second.parquet"))
    assert first.num_rows == 300 and first.equals(second)  # bit for bit, metadata too
    assert _kernels(cache) == [saved]

    # Other shapes (a batch size, per-dataset λ) are other kernels, in files of their own.
    assert _fit(study, cache, "third.parquet", "--batch-size", "64") == "traced"
    assert len(_kernels(cache)) == 2
    assert pq.read_table(study / "third.parquet").equals(first)


def test_a_damaged_kernel_file_is_compiled_again_and_replaced(study):
    cache = study / "cache"
    _fit(study, cache, "first.parquet", "--batch-size", "128")
    (saved,) = _kernels(cache)
    size = saved.stat().st_size
    saved.write_bytes(saved.read_bytes()[: size // 2])  # a write cut short
    assert _fit(study, cache, "second.parquet", "--batch-size", "128") == "traced"
    assert _kernels(cache) == [saved] and saved.stat().st_size != size // 2  # replaced
    assert pq.read_table(study / "second.parquet").equals(pq.read_table(study / "first.parquet"))
    assert _fit(study, cache, "third.parquet", "--batch-size", "128") == "loaded"
    assert not list((cache / "jaxvi-kernels").glob(".*.tmp"))  # no temporary file left


def test_a_kernel_already_in_jax_cache_is_saved_whole(study):
    # On CPU, an executable JAX loads from its persistent cache serializes without the code
    # of its fusions; the command must compile its own copy to save.
    cache = study / "cache"
    prime = (
        "import sys, jax\n"
        "jax.config.update('jax_compilation_cache_dir', sys.argv[1])\n"
        "jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)\n"
        "import jaxvi\n"
        "jaxvi.fit_table(sys.argv[2], batch_size=128)\n"
    )
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    args = [sys.executable, "-c", prime, str(cache), str(study / "d.parquet")]
    subprocess.run(args, check=True, env=env, timeout=300)
    assert list(cache.iterdir()) and not _kernels(cache)  # in JAX's cache only
    assert _fit(study, cache, "first.parquet", "--batch-size", "128") == "traced"
    assert len(_kernels(cache)) == 1
    assert _fit(study, cache, "second.parquet", "--batch-size", "128") == "loaded"
    assert pq.read_table(study / "second.parquet").equals(pq.read_table(study / "first.parquet"))


def test_a_cache_folder_that_cannot_be_written_only_costs_the_compile(study):
    cache = study / "cache"
    cache.mkdir()
    (cache / "jaxvi-kernels").write_text("a file where the folder would go")
    for out in ("first.parquet", "second.parquet"):
        assert _fit(study, cache, out, "--batch-size", "128") == "traced"
    assert pq.read_table(study / "second.parquet").equals(pq.read_table(study / "first.parquet"))


def test_the_key_names_the_software_the_machine_and_the_signature():
    from jaxvi._tables import saved_kernel

    sig = (((128,), "<f4"),) * 4 + (((), "<f4"),) * 2 + (None, True)
    key = saved_kernel.kernel_key(sig)
    assert key == saved_kernel.kernel_key(sig) and key.endswith(".jaxvi-kernel")
    assert saved_kernel.kernel_key((*sig[:-1], False)) != key
    os.environ["XLA_FLAGS"], old = "--xla_cpu_use_thunk_runtime=false", os.environ.get("XLA_FLAGS")
    try:
        assert saved_kernel.kernel_key(sig) != key
    finally:
        if old is None:
            del os.environ["XLA_FLAGS"]
        else:
            os.environ["XLA_FLAGS"] = old
