"""Helpers shared by several test files (imported as ``helpers``; tests/ is on sys.path)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import numpy as np

from jaxvi import Ragged, Solution, SuffStats, solve


def assert_b_close(got, want, lam, rtol: float) -> None:
    """``B = Σx/σ² − λ`` may cancel: its error is measured against ``|Σx|/σ² + λ`` (DESIGN §1's
    accuracy contract), that is ``|B + λ| + λ``."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = np.abs(want + lam) + lam
    bad = np.abs(got - want) > rtol * scale
    assert not bad.any(), (
        f"B differs at {np.flatnonzero(bad)[:5]}: {got[bad][:5]} vs {want[bad][:5]}"
    )


OPTS = dict(chunk_size=2048, min_width=8, max_width=64)


def make_datasets(seed: int, num: int, max_len: int = 200, dtype=np.float32) -> list[np.ndarray]:
    """Ragged datasets with a long tail of lengths (some longer than ``max_width``), a few
    empties, and a mean far from zero so that an unshifted float32 Σx² would fail. Means are
    positive: a sum that cancels has no relative accuracy in float32, whatever the order."""
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.geometric(1 / 30, num) - 1, max_len)
    lengths[::17] = 0
    return [(rng.normal(rng.uniform(2, 50), rng.uniform(0.5, 3), n)).astype(dtype) for n in lengths]


def to_ragged(datasets: list[np.ndarray]) -> Ragged:
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in datasets])]).astype(np.int64)
    values = np.concatenate(datasets) if datasets else np.zeros(0, np.float32)
    return Ragged(values, offsets)


def exact_stats(datasets: list[np.ndarray], dtype=np.float32) -> SuffStats:
    """Shifted sums in float64, each rounded once to ``dtype``."""
    fields = []
    for d in datasets:
        shift = float(np.asarray(d[0], dtype)) if len(d) else 0.0
        y = d.astype(np.float64) - shift
        fields.append((len(d), y.sum(), (y * y).sum(), shift))
    cols = np.array(fields, np.float64).reshape(-1, 4).T
    return SuffStats(*(c.astype(dtype) for c in cols))


def reference(datasets, lam=1.0, sigma=1.0, theta=None, dtype=np.float32) -> Solution:
    """``solve`` on :func:`exact_stats`. Padded with empty datasets to a multiple of 512, so
    that references of any size share one compiled shape."""
    num = len(datasets)
    pad = -num % 512
    stats = SuffStats(*(np.pad(f, (0, pad)) for f in exact_stats(datasets, dtype)))
    lam, sigma, theta = (
        None
        if p is None
        else np.pad(np.broadcast_to(np.asarray(p, dtype), (num,)), (0, pad), constant_values=1)
        for p in (lam, sigma, theta)
    )
    sol = solve(stats, lam, sigma, theta=theta)
    return Solution(*(np.asarray(f)[:num] for f in sol))


def assert_solutions_close(got: Solution, want: Solution, lam=1.0, sigma=1.0, rtol=1e-6) -> None:
    """θ and n within ``rtol`` of their own value, B of ``|Σx|/σ² + λ``; the ELBO and log
    evidence within ``rtol`` of the magnitude of their terms (they are sums of large terms);
    the KL gap within DESIGN's float32 goal of 1e-4 (a small difference of those sums)."""
    assert got.theta.shape == want.theta.shape
    np.testing.assert_array_equal(got.n, want.n)
    np.testing.assert_allclose(got.theta, want.theta, rtol=rtol)
    b_scale = np.abs(want.b + lam) + lam
    assert np.all(np.abs(got.b - want.b) <= rtol * b_scale), np.max(
        np.abs(got.b - want.b) / b_scale
    )
    kl_rtol = 1e-4 if got.theta.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got.kl_gap, want.kl_gap, rtol=kl_rtol, atol=1e-30)
    scale = np.abs(want.elbo) + np.abs(want.b * want.theta) + want.n * (1 + np.abs(np.log(sigma)))
    for name in ("elbo", "log_evidence"):
        err = np.abs(getattr(got, name) - getattr(want, name))
        assert np.all(err <= rtol * (scale + 1)), (name, np.max(err / (scale + 1)))


def signal_when_ready(
    proc: subprocess.Popen, sig: int, ready: Callable[[subprocess.Popen], None]
) -> tuple[float, int, str]:
    """Wait for ``ready(proc)``, check that ``proc`` still runs, send it ``sig``; (seconds it
    took to exit, its exit code, its whole stderr as text). ``proc`` is killed on any way out."""
    try:
        ready(proc)
        assert proc.poll() is None, "the run ended before the signal"
        sent = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=30)
        seconds = time.monotonic() - sent
    finally:
        proc.kill()
        _, err = proc.communicate()
    text = err if isinstance(err, str) else err.decode()
    return seconds, proc.returncode, text
