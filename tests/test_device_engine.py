"""``fit``'s device engine (the accelerator default), on CPU: the device builds the length
buckets from the values as they lie; the host does integer bookkeeping only.

Checked against the native host path and the float64 references, over length mixes (empty,
short, past the widest bucket), chunkings and 1, 2 or 4 fake devices.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from helpers import OPTS, assert_solutions_close, make_datasets, reference, to_ragged
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxvi._fit.device_stats as device_stats
from jaxvi import Ragged, fit
from jaxvi._fit.buckets import Flat
from jaxvi._fit.device_stats import device_chunks


def _mixed(seed: int, num: int, long_len: int) -> list[np.ndarray]:
    """Datasets of every kind: empty, 1 point, bucket widths and their neighbours, long."""
    rng = np.random.default_rng(seed)
    kinds = np.array([0, 1, 7, 8, 9, 31, 64, 65, long_len])
    lengths = rng.choice(kinds, num)
    lengths = np.where(rng.random(num) < 0.5, rng.integers(0, 100, num), lengths)
    return [rng.normal(rng.normal(0, 50), 2, n).astype(np.float32) for n in lengths]


@settings(max_examples=15, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**16),
    num=st.integers(1, 120),
    long_len=st.sampled_from([65, 200, 1000]),
    chunk_size=st.sampled_from([64, 256, 2048]),
    num_devices=st.sampled_from([1, 2, 4]),
)
def test_device_engine_matches_the_host_path_and_the_references(
    seed, num, long_len, chunk_size, num_devices
):
    data = _mixed(seed, num, long_len)
    opts = {**OPTS, "chunk_size": chunk_size, "devices": jax.devices()[:num_devices]}
    got = fit(to_ragged(data), engine="device", **opts)
    assert_solutions_close(got, reference(data))
    host = fit(to_ragged(data), engine="native", **opts)
    assert_solutions_close(got, host, rtol=2e-6)  # each within 1e-6 of the references


def test_chunks_go_round_robin_to_every_device_and_values_are_not_copied(monkeypatch):
    data = to_ragged(make_datasets(1, 400))
    values = np.asarray(data.values)
    sent = []
    put = jax.device_put

    def spy(x, device=None, **kw):
        if isinstance(x, tuple):
            sent.append((x[0], device))
        return put(x, device, **kw)

    monkeypatch.setattr(device_stats.jax, "device_put", spy)
    got = fit(data, engine="device", **{**OPTS, "chunk_size": 1024})
    assert len(sent) >= 8
    assert [d for _, d in sent[:8]] == jax.devices()[:4] * 2  # round-robin over local devices
    # Each window is a view of the input's values (the host copies no value), but for a
    # window padded at the very end of a short input.
    assert all(np.shares_memory(w, values) for w, _ in sent[:-1])
    assert_solutions_close(got, reference(make_datasets(1, 400)))


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    lengths=st.lists(st.integers(0, 256), min_size=1, max_size=60),  # capacity >= each
    capacity=st.sampled_from([256, 512, 1024]),
    per_chunk=st.sampled_from([8, 32, 128]),
)
def test_chunks_cover_every_dataset_once_within_their_window(lengths, capacity, per_chunk):
    lengths = np.array(lengths, np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    flat = Flat(np.zeros(int(lengths.sum()), np.float32), starts, lengths,
                np.zeros(len(lengths), bool))  # fmt: skip
    spans = device_chunks(flat, capacity, per_chunk)
    covered = np.concatenate([np.arange(s.start, s.stop) for s in spans])
    np.testing.assert_array_equal(covered, np.arange(len(lengths)))
    for s in spans:
        assert s.stop - s.start <= per_chunk
        end = int((starts + lengths)[s.stop - 1])
        assert end - starts[s.start] <= capacity  # every dataset of the chunk is in its window


def test_a_dataset_longer_than_a_chunk_gets_a_window_of_its_own():
    rng = np.random.default_rng(3)
    data = [rng.normal(5, 1, n).astype(np.float32) for n in (3, 5000, 0, 17)]
    got = fit(data, engine="device", **{**OPTS, "chunk_size": 512})
    assert_solutions_close(got, reference(data))


def test_bad_values_are_named_by_the_device_engine():
    data = make_datasets(2, 50)
    data[17] = np.r_[data[17], np.float32(np.nan), data[18]]
    with pytest.raises(ValueError, match="dataset 17"):
        fit(data, engine="device", **OPTS)
    bad = Ragged(np.ones(5, np.float32), np.array([0, 3, 2, 5]))
    got = fit(bad, engine="device", validate=False, **OPTS)
    assert np.isnan(got.theta[1]) and np.isfinite(got.theta[[0, 2]]).all()
