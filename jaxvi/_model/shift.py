"""Statistics about a shift, rounded to the dtype the kernels compute in (NumPy only: the
table path calls it before, or without, importing JAX)."""

from __future__ import annotations

import numpy as np

__all__ = ["rebase"]


def rebase(
    n: np.ndarray, sum_x: np.ndarray, sum_x2: np.ndarray, shift: np.ndarray, dtype: np.dtype
) -> tuple[np.ndarray, ...]:
    """float64 statistics in ``dtype``, about the shift as ``dtype`` rounds it.

    Rounding the shift alone would move every value by the rounding error; the sums take it
    up instead, in float64: ``Σ(x − s') = Σ(x − s) + n·δ`` and ``Σ(x − s')² = Σ(x − s)² +
    δ·(2·Σ(x − s) + n·δ)``, with ``δ = s − s'``.

    Examples:
        >>> st = rebase(np.array([2.0]), np.array([0.0]), np.array([2.0]), np.array([0.1]),
        ...             np.dtype(np.float32))
        >>> [f.dtype.name for f in st], float(st[1][0]) != 0
        (['float32', 'float32', 'float32', 'float32'], True)
    """
    with np.errstate(invalid="ignore", over="ignore"):
        shift_d = shift.astype(dtype)
        delta = shift - shift_d.astype(np.float64)
        sx = sum_x + n * delta
        sx2 = sum_x2 + delta * (2 * sum_x + n * delta)
        return n.astype(dtype), sx.astype(dtype), sx2.astype(dtype), shift_d
