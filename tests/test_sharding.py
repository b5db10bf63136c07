"""``fit`` shards the dataset axis over every device by default, and the device count never
changes a result (tests run with 4 fake CPU devices, see ``conftest.py``)."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from helpers import OPTS, make_datasets, to_ragged
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.sharding import NamedSharding, PartitionSpec

import jaxvi._fit.blocks
import jaxvi._fit.fit
from jaxvi import Solution, fit


@pytest.mark.parametrize("engine", ["native", "xla"])
def test_blocks_are_sharded_over_every_device_by_default(monkeypatch, engine):
    assert jax.device_count() == 4
    seen = []
    # The XLA engine's device blocks (long rows, rows of raw windows) and both engines' solve.
    for module, name in (
        (jaxvi._fit.blocks, "_row_sums"),
        (jaxvi._fit.blocks, "_window_sums"),
        (jaxvi._fit.fit, "_solve_stats"),
    ):
        kernel = getattr(module, name)

        def spy(*args, kernel=kernel, **kw):
            out = kernel(*args, **kw)
            seen.append((kernel, out[0].sharding))
            return out

        monkeypatch.setattr(module, name, spy)
    fit(make_datasets(0, 100), engine=engine, **OPTS)
    assert len({k for k, _ in seen}) == (3 if engine == "xla" else 1)  # every kind ran
    for _, sharding in seen:
        assert isinstance(sharding, NamedSharding)
        assert sharding.spec == PartitionSpec("data")
        assert set(sharding.device_set) == set(jax.devices())
    seen.clear()
    # One device: its blocks go to jit as NumPy arrays, and stay on that device.
    fit(make_datasets(0, 100), devices=jax.devices()[:1], engine=engine, **OPTS)
    assert seen and all(s.device_set == {jax.devices()[0]} for _, s in seen)
    seen.clear()
    fit(make_datasets(0, 100), devices=jax.devices()[2:3], engine=engine, **OPTS)
    assert seen and all(s.device_set == {jax.devices()[2]} for _, s in seen)


@settings(max_examples=6, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**16),
    num_devices=st.sampled_from([1, 4]),
    engine=st.sampled_from(["native", "device", "xla"]),
)
def test_results_do_not_depend_on_the_device_count(seed, num_devices, engine):
    data = to_ragged(make_datasets(seed, 100, max_len=150))
    want = fit(data, devices=jax.devices()[:num_devices], engine=engine, **OPTS)
    got = fit(data, devices=jax.devices()[: 5 - num_devices], engine=engine, **OPTS)
    for name in Solution._fields:
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-6, err_msg=name)
