"""Containers for many datasets at once: the data layer.

Two layouts cover what users have:

* :class:`Padded` — a rectangular ``(D, n_max)`` block with a length per row;
* :class:`Ragged` — all values concatenated, with ``offsets`` marking where each
  dataset starts (the CSR layout: dataset ``d`` is ``values[offsets[d]:offsets[d+1]]``).

Both are ``NamedTuple`` pytrees, so they pass through ``jit`` and ``vmap`` unchanged.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["Padded", "Ragged"]


class Padded(NamedTuple):
    """Datasets stored as rows of a padded block.

    Attributes:
        x: ``(D, n_max)`` values. Slots at or beyond a row's length are ignored,
            whatever they hold (NaN and inf included).
        lengths: ``(D,)`` integer number of valid values per row, or ``None`` when
            every row is full.
    """

    x: Any
    lengths: Any = None


class Ragged(NamedTuple):
    """Datasets stored back to back in one flat array.

    Attributes:
        values: ``(M,)`` all values, dataset after dataset.
        offsets: ``(D + 1,)`` non-decreasing integers with ``offsets[0] == 0`` and
            ``offsets[-1] == M``; dataset ``d`` is ``values[offsets[d]:offsets[d + 1]]``.
    """

    values: Any
    offsets: Any
