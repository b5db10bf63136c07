"""Checked batches of statistics → Arrow batches of results, λ̂ over batches, and a run's
metadata: what :func:`~jaxvi._results.fit_table.fit_table` and the Dask route share."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxvi._tables.checked_batches import StatsBatch
from jaxvi._tables.columns import arrow_numbers
from jaxvi._tables.statistics import show

__all__ = ["estimate_over", "result_batch", "run_metadata"]


def run_metadata(
    label: str,
    *,
    lam: float | str | None,
    sigma: float | str | None,
    theta: float | None,
    dtype: Any,
    lam_estimated: bool = False,
) -> dict[str, str]:
    """A run's λ, σ, dtype, input and jaxvi's version, as the text that goes in a results
    file's metadata; ``lam``/``sigma`` a number or a column's name.

    Examples:
        >>> meta = run_metadata("runs/", lam="lam", sigma=1.0, theta=None, dtype="float32")
        >>> meta["lam"], meta["sigma"], meta["dtype"]
        ('column lam', '1.0', 'float32')
    """
    from jaxvi._version import __version__

    def said(value: float | str | None) -> str:
        return f"column {value}" if isinstance(value, str) else repr(value)

    meta = {"jaxvi_version": __version__, "input": label, "lam": said(lam)}
    if lam_estimated:
        meta["lam_estimated"] = "true"
    meta["sigma"] = said(sigma)
    if theta is not None:
        meta["fixed_theta"] = repr(theta)
    meta["dtype"] = np.dtype(dtype).name
    return meta


def result_batch(
    batch: StatsBatch,
    *,
    lam: np.ndarray | float,
    sigma: np.ndarray | float,
    theta: float | None,
    dtype: np.dtype,
    exact: bool,
    batch_size: int,
    label: str,
) -> Any:
    """One Arrow record batch of results (:data:`~jaxvi._results.kernel.RESULT_COLUMNS`) for
    a checked batch of statistics, ``len(batch) <= batch_size`` datasets, by the one jitted
    kernel (padded to ``batch_size`` rows, so it compiles once per process and shape).

    Raises:
        ValueError: a dataset whose values, rebased, do not fit ``dtype``, named by its id.
    """
    import pyarrow as pa

    from jaxvi._model.shift import rebase
    from jaxvi._results.kernel import RESULT_COLUMNS, solve_rows

    stats = rebase(batch.n, batch.sum_x, batch.sum_x2, batch.shift, dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        beyond = ~np.isfinite(stats[1] + stats[2] + stats[3]) & np.isfinite(
            batch.sum_x + batch.sum_x2 + batch.shift
        )
    if beyond.any():
        i = int(np.argmax(beyond))
        raise ValueError(
            f"{label}: dataset {show(batch.ids[i].as_py())} has values beyond "
            f"{dtype.name} (mean {show(batch.shift[i])}); compute in float64"
        )
    cols = solve_rows(stats, lam, sigma, theta, dtype=dtype, exact=exact, batch=batch_size)
    arrays = [arrow_numbers(c) for c in cols.values()]
    return pa.record_batch([batch.ids, *arrays], names=list(RESULT_COLUMNS))


def estimate_over(
    batches: list[StatsBatch],
    estimator: Callable[..., Any],
    *,
    sigma: float | None,
    dtype: np.dtype,
    label: str,
) -> float:
    """λ̂ = ``estimator(stats, sigma=...)`` over every dataset of ``batches`` (σ from their
    column when ``sigma`` is ``None``), checked to be a positive number."""
    from jaxvi._model.shift import rebase
    from jaxvi._model.statistics import SuffStats

    n, sum_x, sum_x2, shift = (
        np.concatenate([getattr(b, f) for b in batches]) for f in SuffStats._fields
    )
    fields = rebase(n, sum_x, sum_x2, shift, dtype)
    sigmas: Any = sigma
    if sigma is None:
        sigmas = np.concatenate([b.sigma for b in batches if b.sigma is not None]).astype(dtype)
    value = float(estimator(SuffStats(*fields), sigma=sigmas))
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"{label}: the estimate of lam is {value!r}; it exists only when some "
            "datasets' means are above 0"
        )
    return value
