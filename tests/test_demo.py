"""``jaxvi demo``: the report's invariants on a small workload, and the printed table.

No timing is asserted, only that the times were measured (> 0).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

import jaxvi
from jaxvi._tools.demo import QUANTILES, DemoReport, run_demo

# The doctest of run_demo uses the same workload, so the simulation compiles once.
NUM, SIZES, SEED = 1000, (1, 8), 0


@functools.cache
def _report() -> DemoReport:
    return run_demo(NUM, sizes=SIZES, seed=SEED)


@functools.cache
def _reference() -> tuple[jaxvi.Padded, jaxvi.Solution]:
    """The same data solved through the public API, apart from the demo's pipeline."""
    data, _ = jaxvi.simulate(jax.random.key(SEED), NUM, sizes=SIZES)
    sol = jax.jit(lambda x, n: jaxvi.solve(jaxvi.suff_stats(x, n)))(data.x, data.lengths)
    return data, jax.tree.map(np.asarray, sol)


def test_counts():
    r, (data, _) = _report(), _reference()
    assert r.num_datasets == NUM
    assert r.num_points == int(np.asarray(data.lengths).sum())
    assert SIZES[0] * NUM <= r.num_points <= SIZES[1] * NUM
    assert isinstance(r.device, str) and r.device


def test_times_are_measured():
    r = _report()
    assert r.simulate_seconds > 0 and r.compile_seconds > 0 and r.run_seconds > 0


def test_quantiles_are_ordered_and_match_the_solution():
    r, (_, sol) = _report(), _reference()
    for name, values in (("theta", r.theta_quantiles), ("kl", r.kl_quantiles)):
        assert len(values) == len(QUANTILES)
        assert list(values) == sorted(values), f"{name} quantiles out of order: {values}"
    assert r.theta_quantiles[0] > 0 and r.kl_quantiles[0] >= 0
    np.testing.assert_allclose(r.theta_quantiles, np.quantile(sol.theta, QUANTILES), rtol=1e-6)
    np.testing.assert_allclose(r.kl_quantiles, np.quantile(sol.kl_gap, QUANTILES), rtol=1e-5)


def test_relative_grad_and_mean_gap():
    r, (_, sol) = _report(), _reference()
    assert 0 <= r.max_relative_grad < 1e-5
    np.testing.assert_allclose(
        r.max_relative_grad, np.asarray(jaxvi.relative_grad(sol)).max(), rtol=1e-3, atol=1e-9
    )
    assert 0 <= r.median_mean_gap <= r.max_mean_gap < np.inf


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_datasets": 0}, "number of datasets"),
        ({"lam": 0.0}, "lam"),
        ({"sigma": -1.0}, "sigma"),
        ({"sigma": float("nan")}, "sigma"),
        ({"sizes": (3, 1)}, "low <= high"),
    ],
)
def test_bad_arguments(kwargs, match):
    kwargs = {"num_datasets": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        run_demo(**kwargs)


@pytest.mark.slow
def test_cli_prints_the_table():
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    proc = subprocess.run(
        [sys.executable, "-m", "jaxvi", "demo", "-n", "20000"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    table = dict(
        (m.group(1).strip(), m.group(2).strip())
        for m in re.finditer(r"^  (\S.*?)  +(\S.*)$", out, re.MULTILINE)
    )
    assert table["datasets"] == "20,000", out
    points = int(table["points"].replace(",", ""))
    assert 20_000 <= points <= 64 * 20_000
    for row in ("simulate time", "compile time", "run time"):
        assert float(table[row].removesuffix(" s")) > 0, row
    assert float(table["datasets/s"].replace(",", "")) > 0
    thetas = [float(v) for v in table["theta* (q01 / q50 / q99)"].split(" / ")]
    kls = [float(v) for v in table["KL gap (q01 / q50 / q99)"].split(" / ")]
    assert thetas == sorted(thetas) and thetas[0] > 0
    assert kls == sorted(kls) and kls[0] >= 0
    assert float(table["max |grad| / scale at theta*"]) < 1e-5
    assert re.fullmatch(r"median [\d.]+, max [\d.]+", table["|1/theta* - E[z|x]| / sd(z|x)"])
