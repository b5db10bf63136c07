"""The native CPU statistics kernel (``jaxvi/_stats/native``): loaded, used, and equal to XLA.

The public kernels dispatch to it on CPU (``suff_stats(x, lengths)``, ``suff_stats_ragged``),
and ``fit`` calls it on the host values. Each is compared with the XLA path it replaces, under
``jit``, ``vmap`` and ``grad``; bad offsets and garbage padding stay in their own rows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import jaxvi
from jaxvi._stats import native
from jaxvi._stats.padded import suff_stats_xla
from jaxvi._stats.ragged import _xla as ragged_xla

ROOT = Path(__file__).resolve().parents[1]


def test_the_extension_is_built_loaded_and_used():
    """Fails when the suite would otherwise run on the XLA fallback without meaning to."""
    if os.environ.get("JAXVI_NATIVE") == "0":
        pytest.skip("JAXVI_NATIVE=0: the XLA path on purpose")
    assert native.available(), native.reason()
    lib = native.load()
    # Built against the vendored headers, whose FFI API sets the jaxlib floor.
    assert tuple(lib.ffi_api_version) == (0, 3)
    floor = re.search(r'"jaxlib>=([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    assert floor and floor[1] == "0.10.1"
    # Under jit, the native call is in the program: a custom call to jaxvi's handler.
    x = jnp.ones((4, 3))
    hlo = jax.jit(jaxvi.suff_stats).lower(x, jnp.array([3, 2, 1, 0])).as_text()
    assert "jaxvi_padded_stats" in hlo
    hlo = jax.jit(jaxvi.suff_stats_ragged).lower(jnp.ones(5), jnp.array([0, 2, 5])).as_text()
    assert "jaxvi_ragged_stats" in hlo


def test_a_missing_extension_warns_once_naming_the_cause_and_falls_back():
    script = (
        "import sys, warnings\n"
        "sys.modules['jaxvi._stats.native._suff_stats'] = None\n"
        "import numpy as np, jaxvi\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    a = jaxvi.suff_stats_ragged(np.arange(5.0, dtype=np.float32), np.array([0, 2, 5]))\n"
        "    b = jaxvi.fit([np.ones(3, np.float32)])\n"
        "    from jaxvi._results.npz import _ragged_statistics\n"
        "    c = _ragged_statistics(np.arange(5.0), np.array([0, 2, 5]))\n"
        "print(len(w)); print(w[0].message)\n"
        "print(a.sum_x.tolist(), b.n.tolist(), c['sum_x'].tolist())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ)
    )
    assert proc.returncode == 0, proc.stderr
    count, message, values = proc.stdout.splitlines()
    assert count == "1"
    assert "native CPU statistics kernel is not available" in message
    assert "the extension did not load" in message and "XLA path" in message
    assert values == "[1.0, 3.0] [3.0] [1.0, 3.0]"


def _ragged_case(seed: int, dtype=np.float32):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 300, 60)
    lengths[[0, 7, -1]] = 0  # empty datasets, first and last among them
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int32)
    values = (rng.normal(size=offsets[-1]) * 2 + rng.choice([0.0, 1e3], offsets[-1])).astype(dtype)
    return values, offsets


def _close(got, want, dtype, rtol=None):
    rtol = rtol or (2e-6 if dtype == np.float32 else 1e-13)
    n, s1, s2, shift = (np.asarray(a, np.float64) for a in got)
    wn, ws1, ws2, wshift = (np.asarray(a, np.float64) for a in want)
    np.testing.assert_array_equal(n, wn)
    np.testing.assert_array_equal(shift, wshift)
    scale = np.sqrt(np.maximum(ws2 * np.maximum(wn, 1), 1e-300))  # Σ|y| <= sqrt(n·Σy²)
    assert (np.abs(s1 - ws1) <= rtol * scale + 1e-30).all()
    np.testing.assert_allclose(s2, ws2, rtol=rtol, atol=1e-30)


@pytest.mark.parametrize("dtype", [np.float32, pytest.param(np.float64, marks=pytest.mark.float64)])
def test_ragged_equals_the_xla_path_under_jit_and_vmap(dtype):
    values, offsets = _ragged_case(0, dtype)
    want = ragged_xla(jnp.asarray(values), jnp.asarray(offsets))
    _close(jaxvi.suff_stats_ragged(values, offsets), want, dtype)
    _close(jax.jit(jaxvi.suff_stats_ragged)(values, offsets), want, dtype)
    # vmap over a batch of value arrays (same layout) and of layouts (same values)
    other = values[::-1].copy()
    both = jax.vmap(jaxvi.suff_stats_ragged, in_axes=(0, None))(np.stack([values, other]), offsets)
    _close([f[0] for f in both], want, dtype)
    _close([f[1] for f in both], ragged_xla(jnp.asarray(other), jnp.asarray(offsets)), dtype)


@pytest.mark.parametrize("dtype", [np.float32, pytest.param(np.float64, marks=pytest.mark.float64)])
def test_padded_equals_the_xla_path_whatever_the_padding_holds(dtype):
    rng = np.random.default_rng(1)
    clean = (rng.normal(size=(50, 70)) + 500).astype(dtype)
    x = clean.copy()
    lengths = rng.integers(-3, 75, 50)  # out of [0, 70]: clipped
    garbage = np.arange(70)[None, :] >= np.clip(lengths, 0, 70)[:, None]
    x[garbage] = rng.choice([np.nan, np.inf, -np.inf, 1e30], garbage.sum())
    want = suff_stats_xla(jnp.asarray(x), jnp.asarray(lengths))
    _close(jaxvi.suff_stats(x, lengths), want, dtype)
    _close(jax.jit(jaxvi.suff_stats)(x, lengths), want, dtype)
    batched = jax.vmap(jaxvi.suff_stats)(np.stack([x, x]), np.stack([lengths, lengths]))
    _close([f[1] for f in batched], want, dtype)
    full = jaxvi.suff_stats(clean)  # full rows
    _close(full, suff_stats_xla(jnp.asarray(clean), jnp.full(50, 70)), dtype)


def test_gradients_in_both_modes_and_free_of_the_padding():
    rng = np.random.default_rng(2)
    lengths = rng.integers(0, 12, 20)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int32)
    values = rng.normal(1.0, 1.0, offsets[-1]).astype(np.float32)

    def ragged_loss(v):
        st = jaxvi.suff_stats_ragged(v, offsets)
        return jaxvi.elbo(jnp.float32(0.7), st, 1.3, 2.0).sum()

    check_grads(ragged_loss, (values,), order=1, modes=("fwd", "rev"), atol=5e-2, rtol=5e-2)
    x = rng.normal(size=(6, 9)).astype(np.float32)
    lengths = np.array([9, 4, 0, 1, 9, 3])
    x_nan = np.where(np.arange(9) < lengths[:, None], x, np.nan).astype(np.float32)

    def padded_loss(x):
        st = jaxvi.suff_stats(x, lengths)
        return (st.total_sum() + 0.1 * st.total_sum_sq()).sum()

    with jax.debug_nans(True):
        g = jax.grad(padded_loss)(x_nan)
    valid = np.arange(9) < lengths[:, None]
    np.testing.assert_allclose(g, np.where(valid, 1 + 0.2 * x, 0), rtol=1e-5, atol=1e-6)
    check_grads(padded_loss, (x,), order=1, modes=("fwd", "rev"), atol=1e-2, rtol=1e-2)


def test_bad_offsets_give_nan_in_their_own_row_and_read_nothing_outside():
    values = np.arange(10.0, dtype=np.float32)
    offsets = np.array([0, 3, 2, 6, 10**9, 10], np.int64)  # dataset 1 decreases, 3 runs past M
    st = jaxvi.suff_stats_ragged(values, offsets)
    assert np.isnan(np.asarray(st.sum_x)[[1, 3]]).all()
    np.testing.assert_array_equal(np.asarray(st.sum_x)[[0, 2]], [3.0, 6.0])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), size=st.integers(1, 3000), offset=st.sampled_from([0.0, 1e4]))
def test_permuting_values_within_a_dataset_changes_only_rounding(seed, size, offset):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=size) + offset).astype(np.float32)
    perm = rng.permutation(size)
    a = jaxvi.suff_stats_ragged(x, np.array([0, size]))
    b = jaxvi.suff_stats_ragged(x[perm], np.array([0, size]))
    # Different first values are different shifts: compare what they stand for.
    np.testing.assert_allclose(a.total_sum(), b.total_sum(), rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(a.centred_sum_sq(), b.centred_sum_sq(), rtol=1e-4, atol=1e-3)


def test_fit_sums_float64_data_in_float64_before_rounding_to_float32():
    # float64 data 10⁶ sd from zero, computed in float32: the native host path sums them in
    # float64 and rounds the statistics after, as the XLA path shifts them on the host first.
    rng = np.random.default_rng(4)
    data = [rng.normal(1e6, 1.0, n) for n in (5000, 3, 1, 700)]
    with pytest.warns(UserWarning, match="float64"):
        native_run = jaxvi.fit(data, engine="native")
    with pytest.warns(UserWarning, match="float64"):
        xla_run = jaxvi.fit(data, engine="xla")
    assert native_run.theta.dtype == np.float32
    for name in ("theta", "elbo", "log_evidence", "kl_gap"):
        np.testing.assert_allclose(
            getattr(native_run, name), getattr(xla_run, name), rtol=2e-6, err_msg=name
        )
