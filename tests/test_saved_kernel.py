"""The command's table kernel, kept compiled in its cache folder (``jaxvi._tables.saved_kernel``).

A run loads the executable instead of tracing the kernel, and runs it through jaxlib's client
without importing JAX (``jaxvi._tables.xla_runtime``): it must give the same results as the
run that compiled it, bit for bit, recompile a damaged file or one whose results differ, and
keep kernels of different shapes apart. Each run is a process of its own (the loaded
executables are per process).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jaxvi._tables import saved_kernel

# One run of the command in a fresh process; prints whether the kernel was traced (its jitted
# function made), else whether JAX was imported.
_RUN = (
    "import sys\n"
    "from jaxvi.cli import main\n"
    "from jaxvi._tables import kernel\n"
    "rc = main(sys.argv[1:])\n"
    "traced = kernel._kernel.cache_info().currsize > 0\n"
    "print('traced' if traced else 'loaded-with-jax' if 'jax' in sys.modules else 'loaded')\n"
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


def _fit(
    folder: Path, cache: Path, out: str, *extra: str, platforms: str = "cpu", warns: str = ""
) -> str:
    env = dict(os.environ, JAX_PLATFORMS=platforms, JAX_COMPILATION_CACHE_DIR=str(cache))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # set by `import jax` here; a user's shell lacks it
    args = ["fit", str(folder / "d.parquet"), "-o", str(folder / out), "-q", *extra]
    proc = subprocess.run(
        [sys.executable, "-c", _RUN, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    # -q: a run that succeeds prints nothing (no XLA logs), or the one warning expected.
    if warns:
        assert proc.stderr.startswith(warns) and proc.stderr.count("\n") == 1, proc.stderr
    else:
        assert proc.stderr == "", proc.stderr
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
    warns = f"jaxvi fit: warning: cache folder {cache / 'jaxvi-kernels'} cannot be written"
    for out in ("first.parquet", "second.parquet"):
        assert _fit(study, cache, out, "--batch-size", "128", warns=warns) == "traced"
    assert pq.read_table(study / "second.parquet").equals(pq.read_table(study / "first.parquet"))


@pytest.mark.parametrize(
    "options",
    [
        ("--dtype", "float64"),
        ("--lam-column", "lam", "--sigma-column", "sigma"),
        ("--theta", "0.7", "--lam", "2"),
    ],
    ids=["double", "columns", "theta"],
)
def test_every_kernel_shape_runs_without_jax_and_agrees(study, options):
    # Per-dataset λ and σ are arguments of their own; a fixed θ another; float64 runs with
    # x64, which the runtime must not narrow to float32.
    tbl = pq.read_table(study / "d.parquet")
    n = tbl.num_rows
    tbl = tbl.append_column("lam", pa.array(0.5 + (tbl["dataset_id"].to_numpy() % 3) / 4))
    tbl = tbl.append_column("sigma", pa.array(np.full(n, 0.8)))
    pq.write_table(tbl, study / "d.parquet")
    cache = study / "cache"
    args = ("--batch-size", "128", *options)
    assert _fit(study, cache, "first.parquet", *args) == "traced"
    assert _fit(study, cache, "second.parquet", *args) == "loaded"
    first, second = (pq.read_table(study / f) for f in ("first.parquet", "second.parquet"))
    assert first.equals(second)
    want = np.float64 if "float64" in options else np.float32
    assert first["theta"].to_numpy().dtype == want
    if "--theta" in options:
        assert np.all(first["theta"].to_numpy() == np.float32(0.7))


def test_a_kernel_whose_results_differ_from_those_saved_is_compiled_again(study):
    # Each file holds the digest of the results JAX gave on a check batch when it was saved:
    # a kernel that runs but disagrees (another jaxlib reading its arguments otherwise) must
    # not be used.
    cache = study / "cache"
    _fit(study, cache, "first.parquet", "--batch-size", "128")
    (saved,) = _kernels(cache)
    data = saved.read_bytes()
    at = data.index(b'"digest": "') + len(b'"digest": "')
    flipped = b"0" if data[at : at + 1] != b"0" else b"1"
    saved.write_bytes(data[:at] + flipped + data[at + 1 :])
    assert _fit(study, cache, "second.parquet", "--batch-size", "128") == "traced"
    assert data[at : at + 64] in saved.read_bytes()  # replaced by a copy with the true digest
    assert _fit(study, cache, "third.parquet", "--batch-size", "128") == "loaded"
    first = pq.read_table(study / "first.parquet")
    assert all(pq.read_table(study / f).equals(first) for f in ("second.parquet", "third.parquet"))


def test_saving_a_kernel_removes_those_unused_for_a_month(study):
    # Every upgrade and every batch size makes a new file; a save removes files nobody has
    # loaded for UNUSED_DAYS days and temporary files a killed run left, and nothing else.
    cache = study / "cache"
    folder = cache / "jaxvi-kernels"
    _fit(study, cache, "first.parquet", "--batch-size", "128")
    (used,) = _kernels(cache)
    day = 86400.0
    now = time.time()
    aged = {
        "old" + saved_kernel.SUFFIX: 40,
        "recent" + saved_kernel.SUFFIX: 5,
        ".killed.tmp": 2,
        ".writing.tmp": 0.1,
        "notes.txt": 400,
    }
    for name, days in aged.items():
        (folder / name).write_bytes(b"x")
        os.utime(folder / name, (now - days * day, now - days * day))
    os.utime(used, (now - 40 * day, now - 40 * day))
    assert _fit(study, cache, "second.parquet", "--batch-size", "128") == "loaded"
    assert time.time() - used.stat().st_mtime < day  # loading marks it used
    assert _fit(study, cache, "third.parquet", "--batch-size", "64") == "traced"  # a save
    left = {p.name for p in folder.iterdir()}
    assert used.name in left and len(_kernels(cache)) == 3  # used, recent, the new one
    assert left - {p.name for p in _kernels(cache)} == {".writing.tmp", "notes.txt"}


def test_with_no_kernel_saved_the_command_makes_no_client_of_its_own(tmp_path, monkeypatch):
    # A first run goes to JAX anyway: making jaxlib's CPU client first would only cost time.
    from jaxvi._tables import xla_runtime
    from jaxvi._tables.kernel import KernelShape, load_saved

    def no_client(*args, **kwargs):
        raise AssertionError("a client was made")

    monkeypatch.setattr(xla_runtime, "Runtime", no_client)
    shape = KernelShape(64, np.dtype(np.float32))
    assert load_saved(shape, tmp_path / "missing") is False
    assert load_saved(shape, tmp_path) is False
    (tmp_path / ("other" + saved_kernel.SUFFIX)).write_bytes(b"x")  # some kernel is saved
    with pytest.raises(AssertionError, match="a client was made"):
        load_saved(shape, tmp_path)


def test_lam_estimate_uses_the_saved_kernel_through_jax(study):
    # λ̂ needs JAX's estimator, so that run imports JAX, and loads the same file through
    # JAX's client.
    cache = study / "cache"
    _fit(study, cache, "first.parquet", "--batch-size", "128")
    out = _fit(study, cache, "second.parquet", "--batch-size", "128", "--lam", "estimate")
    assert out == "loaded-with-jax"
    meta = pq.read_table(study / "second.parquet").schema.metadata
    assert meta[b"lam_estimated"] == b"true"


def test_the_runtime_is_used_only_where_jax_would_run_on_this_cpu(monkeypatch):
    from jaxvi._tables.xla_runtime import jax_would_use_this_cpu

    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    assert jax_would_use_this_cpu()  # this machine has no accelerator plugin
    for other in ("cuda", "tpu", "cuda,cpu"):
        monkeypatch.setenv("JAX_PLATFORMS", other)
        assert not jax_would_use_this_cpu()


def test_the_key_names_the_software_the_machine_and_the_signature():
    from jaxvi._tables import saved_kernel
    from jaxvi._tables.xla_runtime import Runtime

    runtime = Runtime(jax.devices("cpu")[0].client)
    sig = (((128,), "<f4"),) * 4 + (((), "<f4"),) * 2 + (None, True)
    key = saved_kernel.kernel_key(sig, runtime)
    assert key == saved_kernel.kernel_key(sig, runtime) and key.endswith(".jaxvi-kernel")
    assert saved_kernel.kernel_key((*sig[:-1], False), runtime) != key
    os.environ["XLA_FLAGS"], old = "--xla_cpu_use_thunk_runtime=false", os.environ.get("XLA_FLAGS")
    try:
        assert saved_kernel.kernel_key(sig, runtime) != key
    finally:
        if old is None:
            del os.environ["XLA_FLAGS"]
        else:
            os.environ["XLA_FLAGS"] = old
