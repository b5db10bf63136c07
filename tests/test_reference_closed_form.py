"""The closed-form kernels against mpmath references, in ulps of the accuracy contract's scale.

References: ``tests/reference/closed_form_reference.npz``, made by
``tests/reference/make_closed_form_reference.py`` (inputs exactly representable in float32 and
float64; DESIGN.md §1). For each quantity the error is ``|computed − reference|`` divided by
``scale · eps(dtype)``, with the scale of the contract's table:

* ``b``: ``|s|/v + λ``;
* ``theta_star``: its own value;
* ``elbo``: ``|B/θ| + a/θ² + |log θ| + s2/(2v) + (n/2)|log 2πv| + |log λ| + 1``;
* ``elbo_grad``: ``|B|/θ² + 2a/θ³ + 1/θ``.

Goal: ≤ 8 in float32 and ≤ 32 in float64. A reference below 1000× the smallest normal may
come out as 0 (flushed subnormals); a reference beyond the dtype's range must come out as an
infinity of its sign. Run with ``-s`` to see the worst error of each quantity.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import jaxvi

REF = Path(__file__).parent / "reference" / "closed_form_reference.npz"
TOL_ULPS = {jnp.float32: 8.0, jnp.float64: 32.0}
DTYPES = [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.float64)]
QUANTITIES = ["b", "theta_star", "elbo", "elbo_grad"]


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    with np.load(REF) as data:
        return {k: data[k] for k in data.files}


def compute(name: str, ref: dict[str, np.ndarray], dtype) -> np.ndarray:
    """The kernel's values on the reference inputs, as float64 numpy (shape of the reference)."""
    arr = lambda k: jnp.asarray(ref[k], dtype)
    stats = jaxvi.SuffStats(arr("n"), arr("s"), arr("s2"))
    lam, sigma = arr("lam"), arr("sigma")
    if name == "b":
        out = jaxvi.b(stats, lam, sigma)
    elif name == "theta_star":
        out = jaxvi.theta_star(stats, lam, sigma)
    else:
        # θ has shape (D, 3): θ*, θ*/2, 2θ*; the batch broadcasts against it.
        bc = lambda x: jnp.broadcast_to(x[:, None], ref["theta"].shape)
        stats3 = jaxvi.SuffStats(*(bc(f) for f in stats[:3]))
        fn = jaxvi.elbo if name == "elbo" else jaxvi.elbo_grad
        out = fn(arr("theta"), stats3, bc(lam), bc(sigma))
    assert out.dtype == dtype, f"{name}: {dtype.__name__} in gave {out.dtype} out"
    return np.asarray(out, np.float64)


def errors_in_ulps(name: str, ref: dict[str, np.ndarray], got: np.ndarray, dtype) -> np.ndarray:
    """``|got − ref| / (scale·eps)``, with the flush-to-zero and overflow allowances applied."""
    fi = jnp.finfo(dtype)
    hi, lo = ref[f"{name}_hi"], ref[f"{name}_lo"]
    scale = np.abs(hi) if name == "theta_star" else ref[f"{name}_scale"]
    with np.errstate(invalid="ignore", over="ignore"):
        # (got − hi) is exact when got ≈ hi, so the double-double reference is not rounded away.
        err = np.abs((got - hi) - lo) / (scale * float(fi.eps))
    overflows = np.abs(hi) > float(fi.max)
    right_infinity = np.isinf(got) & (np.sign(got) == np.sign(hi))
    err = np.where(overflows, np.where(right_infinity, 0.0, np.inf), err)
    flushed = (np.abs(hi) < 1000 * float(fi.tiny)) & (np.abs(got) < 1000 * float(fi.tiny))
    err = np.where(flushed, 0.0, err)
    return np.where(np.isnan(err), np.inf, err)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", QUANTITIES)
def test_matches_mpmath_reference(name, dtype, ref):
    got = compute(name, ref, dtype)
    err = errors_in_ulps(name, ref, got, dtype)
    worst = np.unravel_index(np.argmax(err), err.shape)
    row = worst[0]
    where = (
        f"row {row} ({ref['kind'][row]}): n={ref['n'][row]:.9g} s={ref['s'][row]:.9g} "
        f"s2={ref['s2'][row]:.9g} lam={ref['lam'][row]:.9g} sigma={ref['sigma'][row]:.9g}"
        + (f" theta={ref['theta'][worst]:.9g}" if err.ndim == 2 else "")
        + f" got={got[worst]:.17g} ref={ref[f'{name}_hi'][worst]:.17g}"
    )
    summary = (
        f"worst {name} error, {dtype.__name__}: {err.max():.3g} ulp of the contract scale "
        f"(goal {TOL_ULPS[dtype]:g}; {err.size} values) at {where}"
    )
    print(summary)
    assert err.max() <= TOL_ULPS[dtype], summary


def test_reference_inputs_are_float32_and_in_domain(ref):
    """The references cover the contract's domain with consistent statistics."""
    n, s, s2 = ref["n"].astype(np.float64), ref["s"].astype(np.float64), ref["s2"]
    assert ref["n"].dtype == np.float32 and ref["theta"].dtype == np.float32
    assert n.min() == 0 and n.max() == 1e6 and np.all(n == np.round(n))
    assert ref["lam"].min() <= 1.001e-4 and ref["lam"].max() >= 0.999e4
    assert ref["sigma"].min() <= 0.1001 and ref["sigma"].max() >= 9.99
    assert ref["b_hi"].min() <= -0.99e12 and ref["b_hi"].max() >= 0.99e12
    has = n > 0
    assert np.all(s2[has] >= s[has] ** 2 / n[has] * (1 - 1e-12))
    assert np.all(s[~has] == 0) and np.all(s2[~has] == 0)


def test_committed_references_match_the_script(ref):
    """Recomputes a sample of rows with the generating script: data and script agree."""
    path = REF.with_name("make_closed_form_reference.py")
    spec = importlib.util.spec_from_file_location("make_closed_form_reference", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    for row in np.random.default_rng(0).choice(len(ref["n"]), 25, replace=False):
        inputs = (ref[k][row] for k in ("n", "s", "s2", "lam", "sigma"))
        again = script.references(*inputs)
        np.testing.assert_array_equal(again["theta"], ref["theta"][row])
        for name in ("b", "theta_star"):
            assert float(again[name]) == ref[f"{name}_hi"][row], (row, name)
        for name in ("elbo", "elbo_grad"):
            np.testing.assert_array_equal([float(x) for x in again[name]], ref[f"{name}_hi"][row])
