"""Helpers shared by several test files (imported as ``helpers``; tests/ is on sys.path)."""

from __future__ import annotations

import numpy as np


def assert_b_close(got, want, lam, rtol: float) -> None:
    """``B = Σx/σ² − λ`` may cancel: its error is measured against ``|Σx|/σ² + λ`` (DESIGN §1's
    accuracy contract), that is ``|B + λ| + λ``."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = np.abs(want + lam) + lam
    bad = np.abs(got - want) > rtol * scale
    assert not bad.any(), (
        f"B differs at {np.flatnonzero(bad)[:5]}: {got[bad][:5]} vs {want[bad][:5]}"
    )
