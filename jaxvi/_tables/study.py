"""Simulation studies on files: simulate datasets to a table, fit a table, chunk by chunk.

These are the workloads behind ``jaxvi simulate`` and ``jaxvi fit``. Memory stays bounded by
the chunk size: simulation draws a chunk of datasets at a time, and a long Parquet input sorted
by id is streamed (see :func:`jaxvi._io.read_chunks`). Output is written atomically.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import numpy as np

from jaxvi._batch import fit
from jaxvi._data import Ragged
from jaxvi._simulate import simulate
from jaxvi._stats import SuffStats
from jaxvi._tables import files as _io
from jaxvi._tables.report import posterior_moments

__all__ = [
    "RESULT_COLUMNS",
    "FitSummary",
    "enable_dtype",
    "fit_file",
    "simulate_to_file",
    "simulation_chunks",
    "truth_path",
]

RESULT_COLUMNS = (
    "dataset_id",
    "n",
    "b",
    "theta",
    "elbo",
    "grad",
    "log_evidence",
    "kl_gap",
    "q_mean",
    "post_mean",
    "post_sd",
)
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
        jax.config.update("jax_enable_x64", True)
        return np.dtype(np.float64)
    raise ValueError(f"--dtype must be float32 or float64, got {name!r}")


def _check_positive(**params: float | None) -> None:
    for name, value in params.items():
        if value is not None and not (np.isfinite(value) and value > 0):
            raise ValueError(f"--{name} must be a positive finite number, got {value}")


def _meta(**kv) -> dict[str, str]:
    from jaxvi import __version__

    return {"jaxvi_version": __version__, **{k: str(v) for k, v in kv.items() if v is not None}}


def _progress(total: int, unit: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a nicety; without the cli extra there is none
        return None
    # delay: short runs never draw a bar, so a quick failure prints only its error line.
    return tqdm(
        total=total,
        unit=unit,
        unit_scale=True,
        file=sys.stderr,
        delay=1.0,
        leave=False,
        dynamic_ncols=True,
    )


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
    dtype: np.dtype | str = np.float32,
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Simulated datasets, a chunk at a time: ``(first_id, x, lengths, z)`` as NumPy arrays.

    Chunk ``k`` is ``jaxvi.simulate(jax.random.fold_in(jax.random.key(seed), k), ...)``; the
    chunk size depends only on ``sizes``, so the same arguments give the same datasets.

    Examples:
        >>> [(s, x.shape, z.shape) for s, x, _, z in simulation_chunks(3, sizes=(1, 4))]
        [(0, (3, 4), (3,))]
    """
    high = sizes if isinstance(sizes, int) else sizes[1]
    per_chunk = max(1, min(_SIM_DATASETS, _SIM_ROWS // max(high, 1)))
    root = jax.random.key(seed)
    for k, start in enumerate(range(0, num_datasets, per_chunk)):
        count = min(per_chunk, num_datasets - start)
        data, z = simulate(
            jax.random.fold_in(root, k), count, lam=lam, sigma=sigma, sizes=sizes, dtype=dtype
        )
        yield start, np.asarray(data.x), np.asarray(data.lengths), np.asarray(z)


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

    An NPZ data file holds the ragged layout instead: ``values``, ``offsets`` and ``ids``.

    Returns:
        ``(data path, truth path, number of rows)``.
    """
    _check_positive(lam=lam, sigma=sigma)
    if num_datasets <= 0:
        raise ValueError(f"-n must be a positive number of datasets, got {num_datasets}")
    dt = enable_dtype(dtype)
    path = Path(path)
    truth = truth_path(path)
    meta = _meta(lam=lam, sigma=sigma, sizes=sizes, seed=seed, dtype=dt.name)
    bar = _progress(num_datasets, "datasets", progress)
    rows = 0
    with _io.atomic_path(path) as tmp, _io.atomic_path(truth) as tmp_truth:
        writer = _io.TableWriter(tmp, _io.table_format(path), meta)
        truth_writer = _io.TableWriter(tmp_truth, _io.table_format(truth), meta)
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
            if bar is not None:
                bar.update(len(z))
            _pause()
        writer.close()
        truth_writer.close()
    if bar is not None:
        bar.close()
    return path, truth, rows


# --------------------------------------------------------------------------------------------
# fit


@dataclass(frozen=True)
class FitSummary:
    """What :func:`fit_file` did."""

    num_datasets: int
    num_rows: int
    num_chunks: int
    streamed: bool
    seconds: float


def _cast(values: np.ndarray, dtype: np.dtype, what: str, dataset_of_row) -> np.ndarray:
    with np.errstate(over="ignore"):
        out = values.astype(dtype)
    bad = ~np.isfinite(out)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"dataset {_io._show(dataset_of_row(row))} has {what} = {_io._show(values[row])}, "
            f"beyond {dtype.name}; use --dtype float64"
        )
    return out


def _result_columns(chunk, lam, sigma, theta, dtype) -> dict[str, np.ndarray]:
    ids = chunk.ids
    if isinstance(chunk, _io.StatsChunk):
        names = ("n", "sum_x", "sum_x2", "shift")
        data = SuffStats(*(_cast(getattr(chunk, k), dtype, k, ids.__getitem__) for k in names))
    else:
        owner = lambda row: ids[np.searchsorted(chunk.offsets, row, side="right") - 1]
        data = Ragged(_cast(chunk.values, dtype, "a value", owner), chunk.offsets)
    try:
        sol = fit(data, lam, sigma, theta=theta, dtype=dtype)
    except ValueError as err:
        # fit numbers datasets within the chunk; name them by their ids instead.
        named = lambda m: f"dataset {_io._show(ids[int(m[1])])}"
        raise ValueError(re.sub(r"dataset (\d+)", named, str(err))) from None
    post_mean, post_sd = posterior_moments(sol.n, sol.b, lam, sigma)
    return {
        "dataset_id": chunk.ids,
        "n": sol.n.astype(np.int64),
        "b": sol.b,
        "theta": sol.theta,
        "elbo": sol.elbo,
        "grad": sol.grad,
        "log_evidence": sol.log_evidence,
        "kl_gap": sol.kl_gap,
        "q_mean": (1 / sol.theta).astype(dtype),
        "post_mean": post_mean.astype(dtype),
        "post_sd": post_sd.astype(dtype),
    }


def fit_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    lam: float = 1.0,
    sigma: float = 1.0,
    theta: float | None = None,
    dtype: str = "float32",
    chunk_size: int = 1 << 18,
    id_column: str = "dataset_id",
    value_column: str = "x",
    progress: bool = False,
) -> FitSummary:
    """Fit every dataset of a table file and write one result row per dataset.

    Args:
        input_path: a long table (``id_column``, ``value_column``) or a statistics table
            (``dataset_id, n, sum_x, sum_x2``) in Parquet, CSV or NPZ.
        output_path: ``.parquet``, ``.csv`` or ``.npz``; written atomically, with
            :data:`RESULT_COLUMNS` and metadata: ``lam``, ``sigma``, ``dtype``,
            ``jaxvi_version`` and, when given, ``fixed_theta``.
        lam: prior rate λ > 0.
        sigma: noise scale σ > 0.
        theta: evaluate q at this rate instead of θ* (``None``: θ*).
        dtype: ``'float32'`` or ``'float64'`` (switches JAX's x64 on).
        chunk_size: datasets per chunk; bounds memory when a sorted Parquet file is streamed.
        id_column: the dataset id column of a long table.
        value_column: the observation column of a long table.
        progress: draw a progress bar on stderr (needs tqdm).

    Returns:
        A :class:`FitSummary`.

    Raises:
        ValueError: one line naming the file, column, dataset id or parameter at fault; no
            output file is left behind.
    """
    _check_positive(lam=lam, sigma=sigma, theta=theta)
    if chunk_size <= 0:
        raise ValueError(f"--chunk-size must be a positive integer, got {chunk_size}")
    dt = enable_dtype(dtype)
    input_path, output_path = Path(input_path), Path(output_path)
    _io.table_format(output_path)
    if input_path.resolve() == output_path.resolve():
        raise ValueError(f"{output_path}: the output would overwrite the input")
    meta = _meta(lam=lam, sigma=sigma, fixed_theta=theta, dtype=dt.name)
    t0 = time.perf_counter()
    with _io.atomic_path(output_path) as tmp:
        run = partial(
            _fit_chunks,
            input_path,
            tmp,
            _io.table_format(output_path),
            meta,
            lam=lam,
            sigma=sigma,
            theta=theta,
            dtype=dt,
            chunk_size=chunk_size,
            id_column=id_column,
            value_column=value_column,
            progress=progress,
        )
        try:
            summary = run(stream=True)
        except _io.NotSorted:
            # Not sorted by id: group in memory instead, overwriting what was streamed.
            summary = run(stream=False)
    return FitSummary(*summary, time.perf_counter() - t0)


def _fit_chunks(
    input_path: Path,
    tmp: Path,
    fmt: str,
    meta: dict[str, str],
    *,
    stream: bool,
    lam: float,
    sigma: float,
    theta: float | None,
    dtype: np.dtype,
    chunk_size: int,
    id_column: str,
    value_column: str,
    progress: bool,
) -> tuple[int, int, int, bool]:
    total, chunks = _io.read_chunks(
        input_path,
        chunk_size,
        id_column=id_column,
        value_column=value_column,
        stream=stream,
        batch_rows=int(np.clip(16 * chunk_size, 1024, 1 << 17)),
    )
    streamed = stream and _io.table_format(input_path) == "parquet"
    writer = _io.TableWriter(tmp, fmt, meta)
    bar = _progress(total, "rows", progress)
    num_datasets = num_chunks = 0
    try:
        for chunk, rows in chunks:
            writer.write(_result_columns(chunk, lam, sigma, theta, dtype))
            num_datasets += len(chunk)
            num_chunks += 1
            if bar is not None:
                bar.update(rows)
            _pause()
    except ValueError as err:
        writer.abort()
        if str(err).startswith(str(input_path)):
            raise
        raise ValueError(f"{input_path}: {err}") from None
    except BaseException:
        writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    writer.close()
    return num_datasets, total, num_chunks, streamed
