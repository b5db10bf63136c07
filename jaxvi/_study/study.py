"""Simulation studies on files: simulate datasets into a table, fit a table into a file.

These are the workloads behind ``jaxvi simulate`` and ``jaxvi fit``. Simulation draws a chunk
of datasets at a time; fitting streams the statistics out of DuckDB a batch at a time
(:class:`~jaxvi._results.table_fit.TableFit`). Both write atomically: a failed or killed run
leaves no output file. JAX is imported only where it is used, so the command can start DuckDB's
query first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jaxvi._model.params import positive
from jaxvi._progress import progress_bar
from jaxvi._results.files import output_format, output_table
from jaxvi._results.npz import read_npz
from jaxvi._results.table_fit import BATCH_SIZE, TableFit
from jaxvi._tables.sources import file_format

__all__ = [
    "FitSummary",
    "enable_dtype",
    "fit_file",
    "simulate_to_file",
    "simulation_chunks",
    "truth_path",
]

# Rows of simulated data held at once (per chunk), whatever the dataset sizes.
_SIM_ROWS = 1 << 22
_SIM_DATASETS = 1 << 16
# Seconds to sleep after each chunk is written: lets a test kill a run mid-write on purpose.
_PAUSE_ENV = "JAXVI_TEST_PAUSE_AFTER_CHUNK"


def enable_dtype(name: str | None) -> np.dtype:
    """The float dtype named ``'float32'`` or ``'float64'``; float64 switches JAX's x64 on.

    Call it before any JAX work: x64 is a global switch, and arrays made earlier stay 32-bit.
    """
    if name in (None, "float32"):
        return np.dtype(np.float32)
    if name == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)
        return np.dtype(np.float64)
    raise ValueError(f"--dtype must be float32 or float64, got {name!r}")


def _pause() -> None:
    pause = os.environ.get(_PAUSE_ENV)
    if pause:
        time.sleep(float(pause))


# --------------------------------------------------------------------------------------------
# simulate


def truth_path(path: str | os.PathLike) -> Path:
    """Where the true z of a simulated table go: ``data.parquet`` → ``data.truth.parquet``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.truth{path.suffix}")


def simulation_chunks(
    num_datasets: int,
    *,
    lam: float = 1.0,
    sigma: float = 1.0,
    sizes: int | tuple[int, int] = (1, 64),
    seed: int = 0,
    dtype: Any = np.float32,
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Simulated datasets, a chunk at a time: ``(first_id, x, lengths, z)`` as NumPy arrays.

    Chunk ``k`` is ``jaxvi.simulate(jax.random.fold_in(jax.random.key(seed), k), ...)``; the
    chunk size depends only on ``sizes``, so the same arguments give the same datasets.

    Examples:
        >>> [(s, x.shape, z.shape) for s, x, _, z in simulation_chunks(3, sizes=(1, 4))]
        [(0, (3, 4), (3,))]
    """
    import jax

    from jaxvi._stats.simulate import simulate

    high = sizes if isinstance(sizes, int) else sizes[1]
    per_chunk = max(1, min(_SIM_DATASETS, _SIM_ROWS // max(high, 1)))
    root = jax.random.key(seed)
    for k, start in enumerate(range(0, num_datasets, per_chunk)):
        count = min(per_chunk, num_datasets - start)
        data, z = simulate(
            jax.random.fold_in(root, k), count, lam=lam, sigma=sigma, sizes=sizes, dtype=dtype
        )
        yield start, np.asarray(data.x), np.asarray(data.lengths), np.asarray(z)


def _metadata(**kv: Any) -> dict[str, str]:
    from jaxvi._version import __version__

    return {"jaxvi_version": __version__, **{k: str(v) for k, v in kv.items() if v is not None}}


def simulate_to_file(
    path: str | os.PathLike,
    num_datasets: int,
    *,
    lam: float = 1.0,
    sigma: float = 1.0,
    sizes: int | tuple[int, int] = (1, 64),
    seed: int = 0,
    dtype: str = "float32",
    progress: bool = False,
) -> tuple[Path, Path, int]:
    """Write a simulated long table ``(dataset_id, x)`` and its truth ``(dataset_id, n, z)``.

    An NPZ data file holds the ragged layout instead: ``values``, ``offsets`` and ``ids``. A CSV
    file's metadata (λ, σ, sizes, seed, dtype) go to its JSON sidecar.

    Returns:
        ``(data path, truth path, number of rows)``.
    """
    lam, sigma = positive("--lam", lam), positive("--sigma", sigma)
    if num_datasets <= 0:
        raise ValueError(f"-n must be a positive number of datasets, got {num_datasets}")
    dt = enable_dtype(dtype)
    path = Path(path)
    truth = truth_path(path)
    meta = _metadata(lam=lam, sigma=sigma, sizes=sizes, seed=seed, dtype=dt.name)
    bar = progress_bar(progress, "datasets", num_datasets)
    rows = 0
    with (
        output_table(path, meta, dictionary=("dataset_id",), behind=True) as writer,
        output_table(truth, meta, behind=True) as truth_writer,
    ):
        for start, x, lengths, z in simulation_chunks(
            num_datasets, lam=lam, sigma=sigma, sizes=sizes, seed=seed, dtype=dt
        ):
            ids = np.arange(start, start + len(z), dtype=np.int64)
            valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
            if writer.fmt == "npz":  # the ragged layout: values, offsets, ids
                ends = rows + np.cumsum(lengths, dtype=np.int64)
                writer.write(
                    {"values": x[valid], "offsets": ends if start else np.r_[0, ends], "ids": ids}
                )
            else:
                writer.write({"dataset_id": np.repeat(ids, lengths), "x": x[valid]})
            truth_writer.write({"dataset_id": ids, "n": lengths.astype(np.int64), "z": z})
            rows += int(lengths.sum())
            bar.update(len(z))
            _pause()
    bar.close()
    return path, truth, rows


# --------------------------------------------------------------------------------------------
# fit


@dataclass(frozen=True)
class FitSummary:
    """What :func:`fit_file` did."""

    num_datasets: int
    num_batches: int
    lam: str
    seconds: float


def fit_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    lam: float | str | Callable[..., Any] = 1.0,
    sigma: float | str = 1.0,
    theta: float | None = None,
    dtype: str = "float32",
    batch_size: int = BATCH_SIZE,
    id_column: str = "dataset_id",
    value_column: str = "x",
    memory_limit: str | None = None,
    threads: int | None = None,
    progress: bool = False,
    before_solve: Callable[[], None] | None = None,
    busy: Callable[[], bool] | None = None,
    started: Callable[[], None] | None = None,
    csv_quote: str | None = None,
    csv_delimiter: str | None = None,
) -> FitSummary:
    """Fit every dataset of a table and write one result row per dataset, sorted by id.

    Args:
        input_path: a long or statistics table (:func:`jaxvi.fit_table`): a Parquet, CSV or
            JSON file, a glob or a folder; or an NPZ file (:func:`~jaxvi._results.npz.read_npz`).
        output_path: ``.parquet``, ``.csv`` or ``.npz``, written atomically with the columns
            of :func:`jaxvi.fit_table` and its metadata (a CSV file's in its JSON sidecar).
        lam, sigma, theta: as in :func:`jaxvi.fit_table` (a number, a column name, or for
            ``lam`` an estimator such as :func:`jaxvi.estimate_lam`).
        dtype: ``'float32'`` or ``'float64'`` (switches JAX's x64 on).
        batch_size: datasets per batch out of DuckDB and per kernel call.
        id_column, value_column: the long table's columns.
        memory_limit, threads: DuckDB's memory limit (larger group-bys spill to disk) and
            threads.
        progress: draw a progress bar on stderr (needs tqdm).
        before_solve: called once before the first batch is solved (the command waits there
            for JAX, which it imports while DuckDB runs the query).
        busy: whether the caller is still loading its kernel: DuckDB reads ahead meanwhile.
        started: called once DuckDB's query runs (the command starts loading its kernel).
        csv_quote, csv_delimiter: how CSV input is read, as in :func:`jaxvi.fit_table`.

    Returns:
        A :class:`FitSummary`.

    Raises:
        ValueError: one line naming the file, column, dataset id or parameter at fault; no
            output file is left behind.
    """
    t0 = time.perf_counter()
    output_format(output_path)
    inputs = [Path(p) for p in (input_path,) if not any(c in os.fspath(p) for c in "*?[")]
    if inputs and inputs[0].exists() and inputs[0].resolve() == Path(output_path).resolve():
        raise ValueError(f"{output_path}: the output would overwrite the input")
    if Path(output_path).is_dir():
        raise ValueError(f"{output_path}: is a folder, expected an output file name")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"--dtype must be float32 or float64, got {dtype!r}")
    source: Any = input_path
    if file_format(input_path) == "npz":
        source = read_npz(input_path, id=id_column, x=value_column)

    def ready() -> None:
        if before_solve is not None:
            before_solve()
        enable_dtype(dtype)  # x64 for float64, before any JAX array exists

    with TableFit(
        source,
        id=id_column,
        x=value_column,
        lam=lam,
        sigma=sigma,
        theta=theta,
        dtype=np.dtype(dtype),
        batch_size=batch_size,
        memory_limit=memory_limit,
        threads=threads,
        label=os.fspath(input_path),
        csv_quote=csv_quote,
        csv_delimiter=csv_delimiter,
    ) as run:
        batches = 0
        with output_table(output_path, behind=True) as writer:
            for batch in run.batches(progress, ready, busy, started):
                writer.metadata = run.metadata
                writer.write(batch)
                batches += 1
                _pause()
    lam_text = run.metadata["lam"]
    return FitSummary(run.num_datasets, batches, lam_text, time.perf_counter() - t0)
