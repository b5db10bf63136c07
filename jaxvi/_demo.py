"""The workload behind ``jaxvi demo``: simulate many datasets, solve them all, summarise."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from jaxvi._exact import posterior
from jaxvi._simulate import simulate
from jaxvi._solve import Solution, relative_grad, solve
from jaxvi._stats import suff_stats

__all__ = ["DemoReport", "run_demo"]

QUANTILES = (0.01, 0.5, 0.99)


@dataclass(frozen=True)
class DemoReport:
    """What ``jaxvi demo`` measured. Times are wall-clock seconds on ``device``."""

    device: str
    num_datasets: int
    num_points: int
    compile_seconds: float
    run_seconds: float
    theta_quantiles: tuple[float, ...]
    kl_quantiles: tuple[float, ...]
    max_relative_grad: float
    max_mean_gap: float  # max |1/θ* − posterior mean| / posterior sd
    median_mean_gap: float

    @property
    def datasets_per_second(self) -> float:
        return self.num_datasets / self.run_seconds


def _pipeline(x, lengths, lam, sigma):
    stats = suff_stats(x, lengths)
    sol = solve(stats, lam, sigma)
    post = posterior(stats, lam, sigma)
    gap = jnp.abs(1 / sol.theta - post.mean) / jnp.sqrt(post.var)
    return sol, relative_grad(sol, sigma), gap


def run_demo(
    num_datasets: int = 1_000_000,
    *,
    sizes: tuple[int, int] = (1, 64),
    lam: float = 1.0,
    sigma: float = 1.0,
    seed: int = 0,
) -> DemoReport:
    """Simulate ``num_datasets`` datasets on the default device, solve them, and summarise.

    Compile time and run time are measured apart: the pipeline is lowered and compiled first,
    then run once to completion (``block_until_ready``).
    """
    data, _ = simulate(jax.random.key(seed), num_datasets, lam=lam, sigma=sigma, sizes=sizes)
    data = jax.block_until_ready(data)
    fn = jax.jit(_pipeline)
    t0 = time.perf_counter()
    compiled = fn.lower(data.x, data.lengths, lam, sigma).compile()
    t1 = time.perf_counter()
    sol, rel, gap = jax.block_until_ready(compiled(data.x, data.lengths, lam, sigma))
    t2 = time.perf_counter()
    sol = Solution(*(np.asarray(f) for f in sol))
    rel, gap = np.asarray(rel), np.asarray(gap)
    return DemoReport(
        device=str(jax.devices()[0].device_kind),
        num_datasets=num_datasets,
        num_points=int(np.asarray(data.lengths).sum()),
        compile_seconds=t1 - t0,
        run_seconds=t2 - t1,
        theta_quantiles=tuple(float(v) for v in np.quantile(sol.theta, QUANTILES)),
        kl_quantiles=tuple(float(v) for v in np.quantile(sol.kl_gap, QUANTILES)),
        max_relative_grad=float(rel.max()),
        max_mean_gap=float(gap.max()),
        median_mean_gap=float(np.median(gap)),
    )
