"""Scaling: ``fit`` time against total points, 10⁵ to 10⁷ datasets (slope in RESULTS.md)."""

from __future__ import annotations

import time

import pytest
from conftest import SCALE, scaled

from jaxvi import Ragged, fit
from jaxvi._tools.bench import ragged_workload

# At a smoke-test scale the three sizes would only compile three sets of tiny shapes.
SIZES = [100_000, 1_000_000, 10_000_000] if SCALE >= 0.01 else [1_000_000]


@pytest.mark.parametrize("num_datasets", SIZES)
def test_fit_scaling(benchmark, num_datasets):
    values, offsets = ragged_workload(scaled(num_datasets))
    data = Ragged(values, offsets)
    t0 = time.perf_counter()
    fit(data, exact=False)
    first = time.perf_counter() - t0
    benchmark.pedantic(lambda: fit(data, exact=False), rounds=3, iterations=1)
    benchmark.extra_info.update(
        num_datasets=offsets.shape[0] - 1, num_points=int(values.shape[0]), first_call_s=first
    )
