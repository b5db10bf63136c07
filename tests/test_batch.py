"""``fit``: input forms, buckets, long datasets, chunks, parameters, dtypes, compilations.

The reference is :func:`jaxvi.solve` on *exact* statistics: shifted sums taken in float64 by
NumPy, rounded once. ``fit`` sums in float32 in another order, so float32 results agree within
a stated tolerance, not bit for bit. To keep the suite fast, tests share a few block shapes
(``OPTS``): every new shape is one more compilation of the fused kernel.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from compile_counter import count_compilations
from helpers import OPTS, assert_solutions_close, exact_stats, make_datasets, reference, to_ragged
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxvi import Padded, Ragged, Solution, fit

# The native kernel on the host values, and the two engines of accelerators (run here on CPU).
ENGINES = pytest.mark.parametrize("engine", ["native", "device", "xla"])


DATA = make_datasets(0, 300)


@ENGINES
def test_fit_ragged_matches_solve_on_exact_statistics(engine):
    got = fit(to_ragged(DATA), engine=engine, **OPTS)
    assert isinstance(got, Solution)
    assert all(isinstance(f, np.ndarray) and f.dtype == np.float32 for f in got)
    assert max(map(len, DATA)) > OPTS["max_width"]  # long datasets are split and recombined
    assert_solutions_close(got, reference(DATA))


def test_raw_windows_and_host_shifted_blocks_give_the_same_rows(monkeypatch):
    """float32 data go to the device as raw windows (shifted and masked there); the host
    shifted, zero-padded blocks (used for float64 or integer data in float32) agree."""
    raw = fit(to_ragged(DATA), engine="xla", **OPTS)
    monkeypatch.setattr("jaxvi._fit.fit.raw_windows", lambda flat, dtype: False)
    assert_solutions_close(fit(to_ragged(DATA), engine="xla", **OPTS), raw)


@ENGINES
def test_every_input_form_gives_the_same_rows(engine):
    want = fit(to_ragged(DATA), engine=engine, **OPTS)
    n_max = max(map(len, DATA)) + 5
    # Padding slots hold garbage, NaN and inf: they must be ignored.
    x = np.full((len(DATA), n_max), np.nan, np.float32)
    x[:, -1] = np.inf
    lengths = np.array([len(d) for d in DATA])
    for i, d in enumerate(DATA):
        x[i, : len(d)] = d
    for data in (Padded(x, lengths), DATA, tuple(DATA)):
        assert_solutions_close(fit(data, engine=engine, **OPTS), want)
    stats = fit(exact_stats(DATA), engine=engine, **OPTS)
    assert_solutions_close(stats, reference(DATA))


@ENGINES
def test_two_dimensional_array_is_full_rows(engine):
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 1.0, (40, 100)).astype(np.float32)
    got = fit(x, engine=engine, **OPTS)
    assert_solutions_close(got, reference(list(x)))
    assert_solutions_close(fit(jnp.asarray(x), engine=engine, **OPTS), got)


@ENGINES
def test_per_dataset_parameters_follow_their_dataset(engine):
    rng = np.random.default_rng(2)
    data = DATA[:120]  # one solve chunk: a single new compilation with θ given
    num = len(data)
    lam = rng.uniform(0.1, 10, num).astype(np.float32)
    sigma = rng.uniform(0.5, 4, num).astype(np.float32)
    theta = rng.uniform(0.1, 3, num).astype(np.float32)
    got = fit(to_ragged(data), lam, sigma, theta=theta, engine=engine, **OPTS)
    want = reference(data, lam, sigma, theta)
    np.testing.assert_array_equal(got.theta, theta)
    assert_solutions_close(got, want, lam, sigma, rtol=2e-6)


@ENGINES
def test_empty_datasets_are_the_prior(engine):
    data = [np.zeros(0, np.float32)] * 37 + [np.ones(4, np.float32)]
    got = fit(data, lam=2.5, engine=engine, **OPTS)
    np.testing.assert_array_equal(got.n, [0] * 37 + [4])
    np.testing.assert_allclose(got.theta[:37], 2.5)
    np.testing.assert_allclose(got.elbo[:37], 0, atol=1e-6)
    np.testing.assert_allclose(got.kl_gap[:37], 0, atol=1e-6)
    np.testing.assert_allclose(got.log_evidence[:37], 0, atol=1e-6)


@ENGINES
def test_no_datasets_gives_empty_rows(engine):
    got = fit(Ragged(np.zeros(0, np.float32), np.zeros(1, np.int64)), engine=engine, **OPTS)
    assert all(f.shape == (0,) for f in got)
    assert all(f.shape == (0,) for f in fit([], engine=engine, **OPTS))


@ENGINES
def test_integer_data_is_promoted(engine):
    ints = [np.arange(k % 9) + k for k in range(39)] + [np.array([4, 5], np.int32)]
    got = fit(ints, engine=engine, **OPTS)
    assert got.theta.dtype == jnp.asarray(1.0).dtype  # the default float
    assert_solutions_close(got, reference([d.astype(np.float32) for d in ints]))


@ENGINES
@pytest.mark.skipif(jax.config.jax_enable_x64, reason="float64 runs natively under x64")
def test_float64_without_x64_warns_once_and_computes_float32(engine):
    data = [d.astype(np.float64) for d in DATA]
    with pytest.warns(UserWarning, match="float64") as record:
        got = fit(to_ragged(data), engine=engine, **OPTS)
    assert len(record) == 1
    assert got.theta.dtype == np.float32
    assert_solutions_close(got, reference(DATA))


@ENGINES
@pytest.mark.parametrize(
    "dtype", [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.float64)]
)
def test_dtype_is_kept(dtype, engine):
    data = make_datasets(3, 60, dtype=dtype)
    got = fit(to_ragged(data), engine=engine, **OPTS)
    assert got.theta.dtype == dtype
    # float64: statistics from real data within 1e-13 (DESIGN accuracy contract).
    rtol = 1e-6 if dtype == jnp.float32 else 1e-13
    assert_solutions_close(got, reference(data, dtype=dtype), rtol=rtol)


@ENGINES
def test_validate_false_keeps_a_bad_dataset_in_its_own_row(engine):
    data = [d.copy() for d in DATA[:40]]
    bad = next(i for i, d in enumerate(data) if len(d) > 3)
    data[bad][2] = np.nan
    lam = np.ones(len(data), np.float32)
    lam[bad + 1] = -1.0
    got = fit(to_ragged(data), lam, validate=False, engine=engine, **OPTS)
    clean = fit(to_ragged(DATA[:40]), engine=engine, **OPTS)
    assert np.isnan(got.theta[bad]) and np.isnan(got.elbo[bad])
    assert np.isnan(got.elbo[bad + 1])
    keep = np.ones(len(data), bool)
    keep[[bad, bad + 1]] = False
    for name in Solution._fields:
        np.testing.assert_array_equal(getattr(got, name)[keep], getattr(clean, name)[keep])


@ENGINES
def test_validate_false_bad_offsets_or_lengths_give_nan_rows_only(engine):
    clean = fit(to_ragged(DATA[:40]), engine=engine, **OPTS)
    values, offsets = to_ragged(DATA[:40])
    offsets = offsets.copy()
    offsets[6] = offsets[7] + 3  # dataset 6 has a negative length (dataset 5 is just longer)
    offsets[-1] += 10**12  # the last one runs far past the values: nothing may be read
    got = fit(Ragged(values, offsets), validate=False, engine=engine, **OPTS)
    assert np.isnan(got.theta[[6, 39]]).all()
    keep = np.setdiff1d(np.arange(40), [5, 6, 39])
    np.testing.assert_array_equal(got.theta[keep], clean.theta[keep])

    x = np.ones((40, 20), np.float32)
    lengths = np.full(40, 20)
    lengths[3], lengths[7] = 21, -1
    got = fit(Padded(x, lengths), validate=False, engine=engine, **OPTS)
    assert np.isnan(got.theta[[3, 7]]).all() and np.isnan(got.elbo[[3, 7]]).all()
    assert np.isfinite(np.delete(got.elbo, [3, 7])).all()


@ENGINES
def test_second_fit_with_the_same_bucket_shapes_compiles_nothing(engine):
    first = make_datasets(4, 200)
    # Other values, same buckets: the values drawn anew and, but for the device engine (whose
    # bucket shapes are the largest count of any chunk), the lengths permuted.
    rng = np.random.default_rng(5)
    again = first if engine == "device" else list(reversed(first))
    second = [rng.normal(10, 2, len(d)).astype(np.float32) for d in again]
    fit(first, engine=engine, **OPTS)
    with count_compilations() as log:
        fit(second, lam=3.0, engine=engine, **OPTS)
    assert log.count == 0, log.names
    # The counter does see compilations: solve chunks of a size no other call used.
    with count_compilations() as log:
        fit(second, engine=engine, **{**OPTS, "chunk_size": 4096 if engine == "xla" else 8192})
    assert log.count > 0


def test_compiled_shapes_grow_like_log_of_the_longest_dataset():
    from jaxvi._fit.blocks import _row_sums
    from jaxvi._fit.fit import _solve_stats

    rng = np.random.default_rng(6)
    lengths = np.unique(np.geomspace(1, 3000, 400).astype(int))
    data = [rng.normal(1, 1, n).astype(np.float32) for n in lengths]
    # Count the shapes this call adds (other tests may have compiled some of them already).
    before = _row_sums._cache_size(), _solve_stats._cache_size()
    fit(data, engine="xla", **OPTS)
    added = _row_sums._cache_size() - before[0], _solve_stats._cache_size() - before[1]
    widths = int(np.log2(OPTS["max_width"] // OPTS["min_width"])) + 1
    # a full chunk and a tail per width and for the long rows; solve: a full chunk and a tail
    assert added[0] <= 2 * widths + 2, added
    assert added[1] <= 2, added


@ENGINES
def test_progress_bar_goes_to_stderr(capsys, engine):
    pytest.importorskip("tqdm")
    fit(DATA, progress=True, engine=engine, **OPTS)
    captured = capsys.readouterr()
    assert "jaxvi.fit" in captured.err and captured.out == ""
    fit(DATA, engine=engine, **OPTS)
    assert "jaxvi.fit" not in capsys.readouterr().err


@ENGINES
@settings(max_examples=12, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**16),
    ladder=st.sampled_from([(8, 64), (16, 64), (8, 32)]),
    chunk_size=st.sampled_from([2048, 512]),
    extra_width=st.integers(0, 20),
)
def test_invariant_to_bucketing_chunks_and_padding(seed, ladder, chunk_size, extra_width, engine):
    data = make_datasets(seed, 50, max_len=150)
    want = reference(data)
    min_width, max_width = ladder
    got = fit(
        to_ragged(data),
        chunk_size=chunk_size,
        min_width=min_width,
        max_width=max_width,
        engine=engine,
    )
    assert_solutions_close(got, want)
    lengths = np.array([len(d) for d in data])
    x = np.full((len(data), lengths.max() + extra_width), 7.0e30, np.float32)
    for i, d in enumerate(data):
        x[i, : len(d)] = d
    assert_solutions_close(fit(Padded(x, lengths), engine=engine, **OPTS), want)


@ENGINES
@settings(max_examples=10, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**16))
def test_permuting_datasets_permutes_results(seed, engine):
    data = make_datasets(seed, 60, max_len=150)
    perm = np.random.default_rng(seed).permutation(len(data))
    lam = np.linspace(0.5, 5, len(data)).astype(np.float32)
    got = fit([data[i] for i in perm], lam[perm], engine=engine, **OPTS)
    want = fit(data, lam, engine=engine, **OPTS)
    for name in Solution._fields:
        np.testing.assert_allclose(getattr(got, name), getattr(want, name)[perm], rtol=1e-6)


def test_next_block_is_shipped_before_the_current_one_is_awaited(monkeypatch):
    from jaxvi._fit.devices import Devices as _Devices

    events = []
    put, fetch = _Devices.put, _Devices.fetch

    def logged_put(self, tree):
        events.append("put")
        return put(self, tree)

    def logged_fetch(self, tree):
        events.append("fetch")
        return fetch(self, tree)

    monkeypatch.setattr(_Devices, "put", logged_put)
    monkeypatch.setattr(_Devices, "fetch", logged_fetch)
    fit(DATA, engine="xla", **OPTS)  # two passes over the devices: row sums, then solve
    assert events.count("put") == events.count("fetch") > 3
    # When a block is awaited (fetched), the next one is already shipped: 2 blocks ahead of
    # the fetches. Only the last fetch of each pass (reduce, then solve) has nothing behind it.
    leads, puts, fetches = [], 0, 0
    for event in events:
        if event == "put":
            puts += 1
        else:
            leads.append(puts - fetches)
            fetches += 1
    assert sum(lead == 1 for lead in leads) <= 2, events
    assert all(lead in (1, 2) for lead in leads), events  # and never more: bounded memory


@given(
    count=st.integers(0, 5000),
    full_exp=st.integers(0, 8),
    devices=st.sampled_from([1, 2, 4]),
    fine=st.booleans(),
)
def test_row_counts_cover_every_row_with_bounded_padding(count, full_exp, devices, fine):
    from jaxvi._fit.plan import row_counts

    min_rows = devices * 8
    full = min_rows << full_exp
    sizes = row_counts(count, full, min_rows, fine=fine)
    assert sum(sizes) >= count
    assert all(s % devices == 0 and min_rows <= s <= full for s in sizes)
    assert all(s == full for s in sizes[:-1])
    if sizes:
        waste = sum(sizes) - count
        tail = sizes[-1]
        assert waste < max(tail * 3 / 4, min_rows), (sizes, count)
        if fine and full // 8 >= min_rows:
            assert waste < max(full / 8, min_rows * 4), (sizes, count)


def test_python_float_lists_take_the_default_float_without_a_warning():
    # Python floats are weakly typed: lists of them are not float64 data, so no x64 warning
    # (pytest turns warnings into errors) and a float32 result with x64 off.
    sol = fit([[0.3, 1.2], [], [5.0, 4.1, 4.7]], lam=2.0)
    expected = np.float64 if jax.config.jax_enable_x64 else np.float32
    assert sol.theta.dtype == expected
    assert sol.n.tolist() == [2.0, 0.0, 3.0]
    np.testing.assert_allclose(sol.theta[1], 2.0)
