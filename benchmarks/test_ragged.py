"""Ragged end to end from host NumPy, against the peers, in one process.

``fit(Ragged(values, offsets))`` on 10⁶ datasets of mixed lengths with a long tail, validation
on, with the native engine (the CPU default) and the XLA engine (the accelerator path); NumPy
``add.reduceat`` (float64), PyTorch ``segment_reduce`` with autograd, a numba ``prange`` loop
with NumPy's closed form, and NumPyro SVI vmapped over a subset of the datasets (its
datasets/s is scaled from that subset).
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest
from conftest import SCALE, run_benchmark

from jaxvi import Ragged, fit
from jaxvi._tools.peers import numba_loop, numpy_reduceat, numpyro_svi, torch_segment_reduce


def _max_rel_err(theta, ref):
    return float(np.max(np.abs(theta - ref) / ref))


@pytest.mark.parametrize("engine", ["auto", "xla"])
@pytest.mark.parametrize("exact", [False, True], ids=["closed-form", "exact"])
def test_ragged_fit(benchmark, ragged, exact, engine):
    values, offsets = ragged
    data = Ragged(values, offsets)
    t0 = time.perf_counter()
    fit(data, exact=exact, engine=engine)  # warm-up: compiles every shape
    first = time.perf_counter() - t0
    sol = run_benchmark(
        benchmark,
        lambda: fit(data, exact=exact, engine=engine),
        num_datasets=offsets.shape[0] - 1,
        nbytes=values.nbytes,
        compile_seconds=first,
        first_call_s=first,
        num_points=int(values.shape[0]),
    )
    ref_theta, ref_elbo, _ = numpy_reduceat(values, offsets)
    benchmark.extra_info["max_rel_err_theta"] = _max_rel_err(sol.theta, ref_theta)
    assert benchmark.extra_info["max_rel_err_theta"] < 1e-5
    np.testing.assert_allclose(sol.elbo, ref_elbo, rtol=1e-5, atol=1e-3)


def test_peer_numpy_reduceat(benchmark, ragged):
    values, offsets = ragged
    run_benchmark(
        benchmark,
        lambda: numpy_reduceat(values, offsets),
        num_datasets=offsets.shape[0] - 1,
        nbytes=values.nbytes,
        compile_seconds=0.0,
    )


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs the bench extra")
def test_peer_torch_segment_reduce(benchmark, ragged):
    values, offsets = ragged
    torch_segment_reduce(values[:64], offsets[offsets <= 64])  # warm-up
    theta = run_benchmark(
        benchmark,
        lambda: torch_segment_reduce(values, offsets)[0],
        num_datasets=offsets.shape[0] - 1,
        nbytes=values.nbytes,
        compile_seconds=0.0,
    )
    ref = numpy_reduceat(values, offsets)[0]
    benchmark.extra_info["max_rel_err_theta"] = _max_rel_err(theta, ref)
    assert benchmark.extra_info["max_rel_err_theta"] < 1e-4  # float32 sums, unshifted


@pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="needs the bench extra")
def test_peer_numba_loop(benchmark, ragged):
    values, offsets = ragged
    t0 = time.perf_counter()
    numba_loop(values[:64], offsets[offsets <= 64])  # compiles
    compile_s = time.perf_counter() - t0
    theta = run_benchmark(
        benchmark,
        lambda: numba_loop(values, offsets)[0],
        num_datasets=offsets.shape[0] - 1,
        nbytes=values.nbytes,
        compile_seconds=compile_s,
    )
    ref = numpy_reduceat(values, offsets)[0]
    benchmark.extra_info["max_rel_err_theta"] = _max_rel_err(theta, ref)
    assert benchmark.extra_info["max_rel_err_theta"] < 1e-9  # float64 sums, as NumPy's


@pytest.mark.skipif(importlib.util.find_spec("numpyro") is None, reason="needs the bench extra")
def test_peer_numpyro_svi(benchmark, ragged):
    values, offsets = ragged
    count = max(int(64 * min(SCALE, 1)), 8)
    steps, particles = (2000, 16) if SCALE >= 1 else (50, 1)
    lengths = np.diff(offsets)[:count]
    width = max(int(lengths.max(initial=1)), 1)
    xs = np.zeros((count, width), np.float32)
    xs[np.arange(width) < lengths[:, None]] = values[: int(lengths.sum())]
    t0 = time.perf_counter()
    svi = numpyro_svi(xs, lengths, steps, num_particles=particles)
    compile_s = time.perf_counter() - t0
    svi()
    theta = run_benchmark(
        benchmark,
        svi,
        num_datasets=count,
        nbytes=int(lengths.sum()) * 4,
        compile_seconds=compile_s,
        steps=steps,
        particles=particles,
        subset=count,
    )
    ref = numpy_reduceat(values, offsets)[0][:count]
    rel = np.abs(theta - ref) / ref
    benchmark.extra_info.update(
        median_rel_err_theta=float(np.median(rel)), p90_rel_err_theta=float(np.quantile(rel, 0.9))
    )
