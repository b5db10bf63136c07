"""Statistics → result columns: one jitted kernel per batch of a table's datasets.

The kernel computes every column of a results table at once: :func:`jaxvi.solve`'s B, θ,
ELBO, gradient, log evidence and KL gap, q's mean ``1/θ``, and the exact posterior's mean and
sd. Every batch is padded to the batch size, so a run compiles it once, whatever the number
of datasets (the ``jaxvi`` command makes it ready, :func:`warm`, from JAX's persistent
compilation cache while DuckDB runs the query).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from jaxvi._fit.aligned import rows_for

__all__ = [
    "CACHE_ENTRY_PREFIX",
    "RESULT_COLUMNS",
    "KernelShape",
    "solve_rows",
    "warm",
]

# The names of the kernel's entries in JAX's persistent compilation cache begin so.
CACHE_ENTRY_PREFIX = "jit_jaxvi_table_kernel-"

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


@functools.cache
def _kernel() -> Any:
    """The jitted kernel (JAX and the model's modules are imported at the first call)."""
    import jax
    import jax.numpy as jnp

    from jaxvi._model.exact import posterior
    from jaxvi._model.solve import solve
    from jaxvi._model.statistics import SuffStats

    @functools.partial(jax.jit, static_argnames=("exact",))
    def jaxvi_table_kernel(n, sum_x, sum_x2, shift, lam, sigma, theta, *, exact):
        stats = SuffStats(n, sum_x, sum_x2, shift)
        sol = solve(stats, lam, sigma, theta=theta, exact=exact)
        post = posterior(stats, lam, sigma)
        return (*sol[1:], 1 / sol.theta, post.mean, jnp.sqrt(post.var))

    return jaxvi_table_kernel


def _padded_args(
    stats: tuple[np.ndarray, ...],
    lam: np.ndarray | float,
    sigma: np.ndarray | float,
    theta: float | None,
    dtype: np.dtype,
    batch: int,
) -> list[Any]:
    """The kernel's positional arguments: the statistics, λ, σ and θ, padded to ``batch``
    rows with empty datasets (scalars stay scalars; ``theta`` may be ``None``)."""
    num = stats[0].shape[0]
    size = max(num, batch)
    fills = (0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0)
    rows = slice(0, num)
    return [
        None if a is None else rows_for(np.asarray(a), rows, size, f, dtype)
        for a, f in zip((*stats, lam, sigma, theta), fills, strict=True)
    ]


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
    args = _padded_args(stats, lam, sigma, theta, dtype, batch)
    out = _kernel()(*args, exact=exact)
    names = RESULT_COLUMNS[2:]
    cols = {"n": stats[0].astype(np.int64)}
    cols.update({k: np.asarray(v)[:num] for k, v in zip(names, out, strict=True)})
    return cols


@dataclass(frozen=True)
class KernelShape:
    """The table kernel for batches of ``batch`` rows in ``dtype``: per-row or scalar λ and
    σ (``lam_rows``, ``sigma_rows``), a fixed θ or the optimum (``theta`` given or ``None``;
    its value is an argument, not part of the shape), and ``exact``."""

    batch: int
    dtype: np.dtype
    lam_rows: bool = False
    sigma_rows: bool = False
    theta: float | None = None
    exact: bool = True

    def warm_up(self) -> list[Any]:
        """The kernel's arguments for ``batch`` empty datasets."""
        b, dt = self.batch, self.dtype
        lam = np.ones(b, dt) if self.lam_rows else 1.0
        sigma = np.ones(b, dt) if self.sigma_rows else 1.0
        empty = tuple(np.zeros(b, dt) for _ in range(4))
        return _padded_args(empty, lam, sigma, self.theta, dt, b)


def warm(shape: KernelShape) -> None:
    """Make the kernel ready for batches of ``shape``, by solving ``shape.batch`` empty
    datasets: JAX traces it and compiles it, or loads it from its persistent compilation cache
    when one is set (the ``jaxvi`` command sets its own); later calls with these shapes
    dispatch at once."""
    _kernel()(*shape.warm_up(), exact=shape.exact)
