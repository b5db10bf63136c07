"""Piecewise polynomials for float32 tail functions: fitted in float64 at import, evaluated by
selects.

Where every closed form of a tail function cancels in float32, jaxvi evaluates a polynomial
interpolated at import time from the float64 form (whose cancellation a float32 result cannot
see). Each piece's polynomial is in ``s = (t − origin)·scale``: about the piece's centre with
``s ∈ [−1, 1]`` (widths are powers of two, so ``s`` is exact near the centre), or about its
left edge with ``s = t − edge`` (exact when t is within 2× of the edge). Interpolating at
Chebyshev points and only then converting to powers of ``s`` keeps the float64 fit near-minimax;
on ``[−1, 1]`` the power coefficients of a smooth function shrink fast, so Horner in float32
adds ≤ ~1 ulp.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Piecewise", "evaluate", "fit_piecewise", "pick"]


class Piecewise(NamedTuple):
    """A piecewise polynomial: on ``[edges[i], edges[i+1])``, ``Σ_k coef[i, k]·s^k`` with
    ``s = (t − origins[i])·scales[i]``."""

    edges: tuple[float, ...]
    origins: np.ndarray
    scales: np.ndarray
    coef: np.ndarray


def fit_piecewise(
    f: Callable[[np.ndarray], np.ndarray],
    edges: tuple[float, ...],
    degree: int,
    *,
    about: str = "centre",
) -> Piecewise:
    """Interpolate the float64 function ``f`` (of an array) on each piece between ``edges``.

    Args:
        f: the function, in float64, evaluated at Chebyshev points of each piece.
        edges: the pieces' boundaries, increasing.
        degree: the polynomials' degree.
        about: ``"centre"`` (``s ∈ [−1, 1]``) or ``"left"`` (``s = t − left edge``).

    Examples:
        >>> table = fit_piecewise(np.exp, (0.0, 1.0, 2.0), 12)
        >>> float(evaluate(table, jnp.float32(1.5)))  # doctest: +ELLIPSIS
        4.48168...
    """
    origins, scales, rows = [], [], []
    for a, b in itertools.pairwise(edges):
        origin, scale = ((a + b) / 2, 2 / (b - a)) if about == "centre" else (a, 1.0)
        fit = np.polynomial.Chebyshev.interpolate(f, degree, domain=[a, b])
        window = [(a - origin) * scale, (b - origin) * scale]
        poly = fit.convert(kind=np.polynomial.Polynomial, domain=[a, b], window=window)
        rows.append(poly.coef)
        origins.append(origin)
        scales.append(scale)
    return Piecewise(tuple(edges), np.array(origins), np.array(scales), np.array(rows))


def pick(below: list[jax.Array], values: np.ndarray) -> jax.Array:
    """``values[piece]`` (float32) per lane by a chain of selects; ``below[p]``: piece ≤ p.

    A gather (``values[piece]``) would be one instruction, but XLA:CPU emits it as a scalar
    load, and the whole fused loop around it then runs scalar: 2.5× slower than these selects.
    """
    values = np.asarray(values, np.float32)
    v = values[-1]
    for p in range(len(values) - 2, -1, -1):
        v = jnp.where(below[p], values[p], v)
    return v


def evaluate(table: Piecewise, t: jax.Array) -> jax.Array:
    """The table at float32 ``t`` (inside ``[edges[0], edges[-1])``; outside, the end pieces
    extrapolate), by Horner's rule: one select per piece and coefficient."""
    below = [t < e for e in table.edges[1:-1]]
    s = (t - pick(below, table.origins)) * pick(below, table.scales)
    acc = jnp.zeros_like(t)
    for k in range(table.coef.shape[1] - 1, -1, -1):
        acc = acc * s + pick(below, table.coef[:, k])
    return acc
