"""Statistics → result columns: one jitted kernel per batch of a table's datasets.

The kernel computes every column of a results table at once: :func:`jaxvi.solve`'s B, θ,
ELBO, gradient, log evidence and KL gap, q's mean ``1/θ``, and the exact posterior's mean and
sd. Every batch is padded to the batch size, so a run compiles it once, whatever the number
of datasets (the ``jaxvi`` command loads it compiled from its cache while DuckDB runs the
query, and runs it without JAX where it can: :func:`load_saved`, :func:`warm`).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jaxvi._fit.buckets import rows_for

__all__ = [
    "RESULT_COLUMNS",
    "KernelShape",
    "load_saved",
    "saved_for",
    "solve_rows",
    "table_dtype",
    "warm",
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


@functools.cache
def _kernel() -> Any:
    """The jitted kernel (its modules are imported only when it is traced: a kernel loaded
    compiled by :func:`warm` needs none of them, nor JAX)."""
    import jax
    import jax.numpy as jnp

    from jaxvi._model.exact import posterior
    from jaxvi._model.solve import solve
    from jaxvi._model.statistics import SuffStats

    @functools.partial(jax.jit, static_argnames=("exact",))
    def results(n, sum_x, sum_x2, shift, lam, sigma, theta, *, exact):
        stats = SuffStats(n, sum_x, sum_x2, shift)
        sol = solve(stats, lam, sigma, theta=theta, exact=exact)
        post = posterior(stats, lam, sigma)
        return (*sol[1:], 1 / sol.theta, post.mean, jnp.sqrt(post.var))

    return results


# Executables that warm() loaded or compiled, by their arguments' signature (_signature).
_COMPILED: dict[tuple, Any] = {}


def _signature(args: list[Any], exact: bool) -> tuple:
    return (*(None if a is None else (a.shape, a.dtype.str) for a in args), exact)


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
    compiled = _COMPILED.get(_signature(args, exact))
    out = compiled(*args) if compiled is not None else _kernel()(*args, exact=exact)
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

    def check(self) -> list[Any]:
        """The kernel's arguments for a fixed check batch: datasets of 1 to 37 points with
        means and spreads in quarters, so that every statistic is exact in float32 (a saved
        kernel must give the results it gave when it was saved:
        :mod:`jaxvi._tables.saved_kernel`)."""
        i = np.arange(self.batch)
        n = (1 + i % 37).astype(np.float64)
        mean = (i % 17 - 8) / 4
        sum_x = n * mean
        stats = (n, sum_x, sum_x * mean + n * (1 + i % 5) / 4, (i % 11 - 5) * 10.0)
        lam = 0.5 + (i % 3) / 4 if self.lam_rows else 0.75
        sigma = 0.75 + (i % 4) / 8 if self.sigma_rows else 1.25
        theta = None if self.theta is None else 1.5
        dt = self.dtype
        return _padded_args(tuple(a.astype(dt) for a in stats), lam, sigma, theta, dt, self.batch)


def load_saved(shape: KernelShape, folder: str | os.PathLike) -> bool:
    """Load the kernel of ``shape`` saved in ``folder`` (by :func:`warm`) onto this CPU,
    without importing JAX; whether there was one that loads and agrees with its check batch.
    Only where JAX would run on this CPU too
    (:func:`~jaxvi._tables.xla_runtime.jax_would_use_this_cpu`)."""
    from jaxvi._tables import saved_kernel
    from jaxvi._tables.xla_runtime import Runtime

    if not any(Path(folder).glob("*" + saved_kernel.SUFFIX)):
        return False  # nothing saved yet (a first run): no client to make
    signature = _signature(shape.warm_up(), shape.exact)
    runtime = Runtime()
    key = saved_kernel.kernel_key(signature, runtime)
    kernel = saved_kernel.load(folder, key, runtime, shape.check())
    if kernel is None:
        return False
    _COMPILED[signature] = kernel
    return True


def saved_for(dtype: np.dtype) -> bool:
    """Whether a kernel that computes in ``dtype`` was loaded by :func:`load_saved` or
    :func:`warm` (it then needs no JAX setting, x64 included)."""
    from jaxvi._tables.saved_kernel import SavedKernel

    return any(
        isinstance(k, SavedKernel) and sig[0][1] == np.dtype(dtype).str
        for sig, k in _COMPILED.items()
    )


def table_dtype(requested: Any) -> np.dtype:
    """The dtype :func:`jaxvi.fit_table` computes in: ``requested`` when a saved kernel
    computes in it, else as :func:`~jaxvi._model.dtypes.compute_dtype` decides."""
    if requested is not None and saved_for(np.dtype(requested)):
        return np.dtype(requested)
    from jaxvi._model.dtypes import compute_dtype

    return compute_dtype(None, requested, who="fit_table")


def warm(shape: KernelShape, folder: str | os.PathLike | None = None) -> None:
    """Make the kernel ready for batches of ``shape``: later calls with these shapes dispatch
    at once.

    Without ``folder``, or off a CPU, by solving ``shape.batch`` empty datasets (JAX traces
    and compiles, or loads from its persistent cache when one is set). With ``folder`` (the
    ``jaxvi`` command's cache), the compiled kernel is loaded from it, without tracing, or
    compiled and saved there (:mod:`jaxvi._tables.saved_kernel`)."""
    import jax

    args = shape.warm_up()
    device = jax.devices()[0]
    if folder is None or device.platform != "cpu":
        _kernel()(*args, exact=shape.exact)
        return
    from jaxvi._tables import saved_kernel
    from jaxvi._tables.xla_runtime import Runtime

    runtime = Runtime(device.client)
    signature = _signature(args, shape.exact)
    key = saved_kernel.kernel_key(signature, runtime)
    check = shape.check()
    kernel = saved_kernel.load(folder, key, runtime, check)
    if kernel is None:
        lowered = _kernel().lower(*args, exact=shape.exact)
        compiled = saved_kernel.compile_to_save(lowered)
        kernel = saved_kernel.save(folder, key, compiled, runtime, check) or compiled
    _COMPILED[signature] = kernel
