"""Statistics → result columns: one jitted kernel per batch of a table's datasets.

The kernel computes every column of a results table at once: :func:`jaxvi.solve`'s B, θ,
ELBO, gradient, log evidence and KL gap, q's mean ``1/θ``, and the exact posterior's mean and
sd. Every batch is padded to the batch size, so a run compiles it once, whatever the number
of datasets (the ``jaxvi`` command keeps it in JAX's persistent cache, and traces it while
DuckDB runs the query: :func:`warm`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi._fit.devices import rows_for
from jaxvi._model.exact import posterior
from jaxvi._model.solve import solve
from jaxvi._model.statistics import SuffStats

__all__ = ["RESULT_COLUMNS", "solve_rows", "warm"]

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


@partial(jax.jit, static_argnames=("exact",))
def _results(n, sum_x, sum_x2, shift, lam, sigma, theta, *, exact):
    stats = SuffStats(n, sum_x, sum_x2, shift)
    sol = solve(stats, lam, sigma, theta=theta, exact=exact)
    post = posterior(stats, lam, sigma)
    return (*sol[1:], 1 / sol.theta, post.mean, jnp.sqrt(post.var))


def solve_rows(
    stats: tuple[np.ndarray, ...],
    lam: np.ndarray | float,
    sigma: np.ndarray | float,
    theta: float | None,
    *,
    dtype: np.dtype,
    exact: bool,
    batch: int,
) -> dict[str, np.ndarray]:
    """Every result column but the id for statistics ``(n, sum_x, sum_x2, shift)`` in
    ``dtype``, ``(D,)`` each; ``lam`` and ``sigma`` scalars or ``(D,)``.

    The rows are padded to ``batch`` with empty datasets, so that the kernel sees one shape
    (padding costs ``batch`` datasets' work at most: 3 ms for 2¹⁶ on a 2-core CPU)."""
    num = stats[0].shape[0]
    size = max(num, batch)
    fills = (0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0)
    rows = slice(0, num)
    args = [
        None if a is None else rows_for(np.asarray(a), rows, size, f, dtype)
        for a, f in zip((*stats, lam, sigma, theta), fills, strict=True)
    ]
    out = _results(*args, exact=exact)
    names = RESULT_COLUMNS[2:]
    cols = {"n": stats[0].astype(np.int64)}
    cols.update({k: np.asarray(v)[:num] for k, v in zip(names, out, strict=True)})
    return cols


def warm(
    batch: int,
    dtype: np.dtype,
    *,
    lam_rows: bool,
    sigma_rows: bool,
    theta: float | None,
    exact: bool,
) -> None:
    """Trace and compile the kernel for batches of ``batch`` rows (per-row λ or σ when
    ``lam_rows``, ``sigma_rows``), by solving that many empty datasets: later calls with the
    same shapes dispatch at once."""
    empty = tuple(np.zeros(batch, dtype) for _ in range(4))
    lam = np.ones(batch, dtype) if lam_rows else 1.0
    sigma = np.ones(batch, dtype) if sigma_rows else 1.0
    solve_rows(empty, lam, sigma, theta, dtype=dtype, exact=exact, batch=batch)
