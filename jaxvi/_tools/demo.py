"""The workload behind ``jaxvi demo``: simulate many datasets, solve them all, summarise."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi._model.exact import posterior
from jaxvi._model.solve import Solution, relative_grad, solve
from jaxvi._stats.padded import suff_stats
from jaxvi._stats.simulate import simulate

__all__ = ["QUANTILES", "DemoReport", "run_demo"]

QUANTILES = (0.01, 0.5, 0.99)


@dataclass(frozen=True)
class DemoReport:
    """What ``jaxvi demo`` measured. Times are wall-clock seconds.

    Attributes:
        device: kind of the default device, which ran everything.
        num_datasets: D, the number of datasets solved.
        num_points: total number of observations over all datasets.
        simulate_seconds: drawing the data (compilation included), not part of the solve.
        compile_seconds: lowering and compiling the solve pipeline, once.
        run_seconds: one run of the compiled pipeline over all datasets, to completion.
        theta_quantiles: θ* at the probabilities :data:`QUANTILES`.
        kl_quantiles: ``KL(q_θ* ‖ p(z|x))`` at :data:`QUANTILES`.
        max_relative_grad: the largest ``|grad| / (|B|/θ² + 2a/θ³ + 1/θ)`` at θ*: how far the
            reported θ* is from stationary, in units of the gradient's own terms.
        max_mean_gap: the largest ``|1/θ* − E[z|x]| / sd(z|x)``: how far q*'s mean is from
            the exact posterior mean, in posterior standard deviations.
        median_mean_gap: the median of the same.
    """

    device: str
    num_datasets: int
    num_points: int
    simulate_seconds: float
    compile_seconds: float
    run_seconds: float
    theta_quantiles: tuple[float, ...]
    kl_quantiles: tuple[float, ...]
    max_relative_grad: float
    max_mean_gap: float
    median_mean_gap: float

    @property
    def datasets_per_second(self) -> float:
        """Datasets solved per second of ``run_seconds``."""
        return self.num_datasets / self.run_seconds


def _pipeline(
    x: jax.Array, lengths: jax.Array, lam: jax.Array, sigma: jax.Array
) -> tuple[Solution, jax.Array, jax.Array]:
    """Padded data → statistics → solution, fused in one program: the demo's measured work.

    Every :class:`Solution` field is returned, so none of the work is dead code that XLA
    could drop from the timing.
    """
    stats = suff_stats(x, lengths)
    sol = solve(stats, lam, sigma)
    post = posterior(stats, lam, sigma)
    mean_gap = jnp.abs(1 / sol.theta - post.mean) / jnp.sqrt(post.var)
    return sol, relative_grad(sol, sigma), mean_gap


def run_demo(
    num_datasets: int = 1_000_000,
    *,
    sizes: tuple[int, int] = (1, 64),
    lam: float = 1.0,
    sigma: float = 1.0,
    seed: int = 0,
) -> DemoReport:
    """Simulate ``num_datasets`` datasets on the default device, solve them all, summarise.

    The data are drawn from the model (:func:`~jaxvi.simulate`) and padded to ``sizes[1]``.
    The pipeline (statistics, :func:`~jaxvi.solve`, the exact posterior) is lowered and
    compiled first, then run once to completion, so compile and run times are apart.

    Args:
        num_datasets: D ≥ 1.
        sizes: inclusive ``(low, high)`` range of dataset sizes, drawn uniformly.
        lam: prior rate λ > 0 used to simulate and to solve.
        sigma: noise scale σ > 0 used to simulate and to solve.
        seed: seed of the data.

    Returns:
        A :class:`DemoReport`.

    Raises:
        ValueError: for ``num_datasets < 1``, ``lam <= 0``, ``sigma <= 0`` or bad ``sizes``.

    Examples:
        >>> r = run_demo(1000, sizes=(1, 8))
        >>> r.num_datasets, r.max_relative_grad < 1e-5
        (1000, True)
    """
    if num_datasets < 1:
        raise ValueError(f"demo: the number of datasets must be >= 1, got {num_datasets}")
    for name, value in (("lam", lam), ("sigma", sigma)):
        if not value > 0 or not np.isfinite(value):
            raise ValueError(f"demo: {name} must be finite and > 0, got {value}")
    t0 = time.perf_counter()
    data, _ = simulate(jax.random.key(seed), num_datasets, lam=lam, sigma=sigma, sizes=sizes)
    data = jax.block_until_ready(data)
    t1 = time.perf_counter()
    compiled = jax.jit(_pipeline).lower(data.x, data.lengths, lam, sigma).compile()
    t2 = time.perf_counter()
    out = jax.block_until_ready(compiled(data.x, data.lengths, lam, sigma))
    t3 = time.perf_counter()
    sol, rel, gap = jax.tree.map(np.asarray, out)
    return DemoReport(
        device=str(jax.devices()[0].device_kind),
        num_datasets=num_datasets,
        num_points=int(np.asarray(data.lengths, np.int64).sum()),
        simulate_seconds=t1 - t0,
        compile_seconds=t2 - t1,
        run_seconds=t3 - t2,
        theta_quantiles=tuple(float(v) for v in np.quantile(sol.theta, QUANTILES)),
        kl_quantiles=tuple(float(v) for v in np.quantile(sol.kl_gap, QUANTILES)),
        max_relative_grad=float(rel.max()),
        max_mean_gap=float(gap.max()),
        median_mean_gap=float(np.median(gap)),
    )
