"""The exact side against mpmath: DESIGN §1's accuracy contract, in float32 and float64.

References: ``tests/reference/exact_reference.npz``, made by
``tests/reference/make_exact_reference.py`` from float32 inputs (exact in both dtypes) over the
contract's domain, plus a dense sweep of ``t`` through every switch point of ``jaxvi._model.tails``.

Run as a script to print the worst error of each quantity (the numbers of the closing note):

    python tests/test_reference_exact.py                   # float32
    JAX_ENABLE_X64=1 python tests/test_reference_exact.py  # float64
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvi import SuffStats, kl_gap, log_evidence, posterior, posterior_quantile

REF = np.load(Path(__file__).parent / "reference" / "exact_reference.npz")

# Goals of DESIGN §1. The quantile has no row there, so its tolerance is ours: measured worst
# 4.3e-6 (float32) and 4.6e-14 (float64), at p = 0.025 and small |t|, where log(1 − p) is
# small against the log Mills ratios whose difference it is.
# The KL gap is held to more than its row: float32 data reach it through kl_gap, and the
# data row is 1e-6. Measured worst 6.7e-7 (t = −1e7, the 1/y² series) and 7.0e-7 (2θ*, θ*/2);
# 4.0e-6 at t ≈ 0 before jaxvi._model.tails took float32 KL on [−8, 4) from a table.
TOL = {
    "float32": {"log_evidence_ulp": 8.0, "rel": 1e-4, "kl_rel": 1e-6, "quantile_rel": 3e-5},
    "float64": {"log_evidence_ulp": 32.0, "rel": 1e-10, "kl_rel": 1e-10, "quantile_rel": 1e-12},
}
DTYPES = [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.float64)]


def _stats(dtype) -> tuple[SuffStats, jax.Array, jax.Array]:
    n, s, s2 = (jnp.asarray(REF[k], dtype) for k in ("n", "s", "s2"))
    st = SuffStats(n, s, s2, jnp.zeros_like(n))
    return st, jnp.asarray(REF["lam"], dtype), jnp.asarray(REF["sigma"], dtype)


@jax.jit
def _evaluate(st, lam, sigma, theta_half, theta_double, p):
    post = posterior(st, lam, sigma)
    return {
        "log_evidence": log_evidence(st, lam, sigma),
        "kl": kl_gap(st, lam, sigma),
        "kl_half": kl_gap(st, lam, sigma, theta=theta_half),
        "kl_double": kl_gap(st, lam, sigma, theta=theta_double),
        "mean": post.mean,
        "var": post.var,
        "quantile": posterior_quantile(
            p[None, :], jax.tree.map(lambda f: f[:, None], st), lam[:, None], sigma[:, None]
        ),
    }


def _computed(dtype) -> dict[str, np.ndarray]:
    st, lam, sigma = _stats(dtype)
    out = _evaluate(
        st,
        lam,
        sigma,
        jnp.asarray(REF["theta_half"], dtype),
        jnp.asarray(REF["theta_double"], dtype),
        jnp.asarray(REF["quantile_p"], dtype),
    )
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def _relative_error(got: np.ndarray, ref: np.ndarray, dtype) -> np.ndarray:
    """|got − ref| / |ref|; a reference below 1000× the smallest normal may flush to zero."""
    floor = 1000 * float(jnp.finfo(dtype).tiny)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.abs(got - ref) / np.abs(ref)
    flushable = (np.abs(ref) < floor) & (np.abs(got) < floor)
    return np.where(np.isfinite(got), np.where(flushable, 0, err), np.inf)


@functools.cache
def errors(dtype) -> dict[str, np.ndarray]:
    """Per-row error of each quantity: ulps of the contract's scale, or relative."""
    got = _computed(dtype)
    eps = float(jnp.finfo(dtype).eps)
    out = {"log_evidence": np.abs(got["log_evidence"] - REF["log_evidence"]) / (eps * REF["scale"])}
    for k in ("kl", "kl_half", "kl_double", "mean", "var", "quantile"):
        out[k] = _relative_error(got[k], REF[k], dtype)
    return out


def _worst_where(err: np.ndarray) -> str:
    i = np.unravel_index(np.argmax(err), err.shape)
    row = i[0]
    return f"{err[i]:.3g} at t={REF['t'][row]:.4g}, n={REF['n'][row]:g}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_evidence_within_ulps_of_its_scale(dtype):
    name = jnp.dtype(dtype).name
    err = errors(dtype)["log_evidence"]
    assert np.all(err <= TOL[name]["log_evidence_ulp"]), _worst_where(err)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("quantity", ["kl", "kl_half", "kl_double", "mean", "var"])
def test_relative_error(dtype, quantity):
    name = jnp.dtype(dtype).name
    err = errors(dtype)[quantity]
    tol = TOL[name]["kl_rel" if quantity.startswith("kl") else "rel"]
    assert np.all(err <= tol), f"{quantity}: {_worst_where(err)}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_quantile_finite_and_accurate_where_phi_underflows(dtype):
    name = jnp.dtype(dtype).name
    err = errors(dtype)["quantile"]
    assert np.all(np.isfinite(err)), "a quantile is not finite"
    # The reference set reaches t far below where Φ(t) underflows in the dtype.
    assert np.nanmin(REF["t"]) < -40
    assert np.all(err <= TOL[name]["quantile_rel"]), _worst_where(err)


if __name__ == "__main__":
    dt = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    for quantity, err in errors(dt).items():
        unit = "ulp of scale" if quantity == "log_evidence" else "relative"
        print(f"{jnp.dtype(dt).name:8s} {quantity:13s} worst {unit}: {_worst_where(err)}")
