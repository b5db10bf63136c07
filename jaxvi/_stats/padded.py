"""Sufficient statistics: everything the model needs from a dataset is ``(n, Σx, Σx²)``.

The sums are kept *shifted*: ``sum_x = Σ(x − shift)`` and ``sum_x2 = Σ(x − shift)²``. A float32
``Σx²`` over data whose mean is far from zero holds the mean and loses the spread (DESIGN §1,
trap 6); a shift close to the data, such as its first value, keeps the spread in the digits.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxvi._model.dtypes import float_dtype

__all__ = ["SuffStats", "suff_stats", "suff_stats_ragged"]


class SuffStats(NamedTuple):
    """Shifted sufficient statistics of a batch of datasets (a pytree).

    All fields share one batch shape ``(...)`` (``shift`` may be a scalar).

    Attributes:
        n: ``(...)`` number of observations, as a float of the data's dtype.
        sum_x: ``(...)`` ``Σ (x − shift)``.
        sum_x2: ``(...)`` ``Σ (x − shift)²``.
        shift: ``(...)`` or scalar; the value subtracted before summing.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxvi import SuffStats
        >>> st = SuffStats(n=jnp.array([3.0]), sum_x=jnp.array([6.0]), sum_x2=jnp.array([14.0]))
        >>> float(st.shift)
        0.0
    """

    n: Any
    sum_x: Any
    sum_x2: Any
    shift: Any = 0.0

    def total_sum(self) -> jax.Array:
        """``Σx = sum_x + n·shift``, shape ``(...)``."""
        return self.sum_x + self.n * self.shift

    def total_sum_sq(self) -> jax.Array:
        """``Σx² = sum_x2 + shift·(2·sum_x + n·shift)``, shape ``(...)``."""
        return self.sum_x2 + self.shift * (2 * self.sum_x + self.n * self.shift)

    def mean(self) -> jax.Array:
        """``x̄ = shift + sum_x / n`` (NaN where ``n == 0``), shape ``(...)``."""
        return self.shift + self.sum_x / self.n

    def centred_sum_sq(self) -> jax.Array:
        """``Σ(x − x̄)² = sum_x2 − sum_x²/n``, clipped at 0; 0 where ``n == 0``."""
        n_safe = jnp.where(self.n > 0, self.n, 1)
        return jnp.maximum(self.sum_x2 - self.sum_x * (self.sum_x / n_safe), 0)


@jax.custom_jvp
def sum_and_sum_sq(y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(Σy, Σy²)`` over the last axis of ``y`` ``(..., L)``, shape ``(...)`` each.

    Pieces of ``PIECE`` values are summed by one two-output reduction, into which XLA:CPU
    fuses an elementwise producer of ``y`` (a select, a shift); two separate sums make it
    write ``y`` out in full and read it back (jax 0.10.2, ``benchmarks/kernel_study.py``):
    with a mask and a shift over (2·10⁶, 64) float32 this runs at 0.25-0.34 of ``jnp.sum``
    against 0.08 for two sums of a select. That reduction adds its terms one after another,
    so the pieces stay short (an error of ~``PIECE``·ε at worst), and their partial sums are
    added by a plain (tree) sum. A rest of ``L mod PIECE`` values is one more piece; rows of
    at most ``2·PIECE`` values are one piece. The tangents are two plain sums.
    """
    length = y.shape[-1]
    if length <= 2 * PIECE:
        # Rows up to 64 values: one reduction of each row is faster than pieces here (74 ms
        # against 146 ms for pieces of 32 on (2·10⁶, 64), masked and shifted), and a run of
        # 64 additions keeps the error near a tree's.
        return _two_output_sum(y)
    main = length - length % PIECE
    pieces = y[..., :main].reshape(*y.shape[:-1], main // PIECE, PIECE)
    s, s2 = (part.sum(-1) for part in _two_output_sum(pieces))
    if main < length:
        r, r2 = _two_output_sum(y[..., main:])
        s, s2 = s + r, s2 + r2
    return s, s2


PIECE = 32


def _two_output_sum(y: jax.Array) -> tuple[jax.Array, jax.Array]:
    zero = jnp.zeros((), y.dtype)
    return jax.lax.reduce(
        (y, y * y), (zero, zero), lambda a, b: (a[0] + b[0], a[1] + b[1]), (y.ndim - 1,)
    )


@sum_and_sum_sq.defjvp
def _sum_and_sum_sq_jvp(primals, tangents):
    (y,), (dy,) = primals, tangents
    return sum_and_sum_sq(y), (dy.sum(-1), (2 * y * dy).sum(-1))


def suff_stats(
    x: ArrayLike, lengths: ArrayLike | None = None, *, mask: ArrayLike | None = None
) -> SuffStats:
    """Shifted sufficient statistics of padded datasets.

    Slots outside a dataset (index ``>= lengths``, or ``mask == False``) are ignored in
    values *and* gradients, whatever they hold: NaN, inf or garbage. A length below 0 counts
    as 0 and one above ``n_max`` as ``n_max`` (kernels never raise on values).

    Args:
        x: ``(..., n_max)`` data; the last axis runs over a dataset's observations.
            Integer data is promoted to the default float dtype.
        lengths: ``(...)`` integer number of valid leading entries per dataset, or ``None``
            for full rows.
        mask: ``(..., n_max)`` boolean, ``True`` for valid entries. Combined with
            ``lengths`` when both are given.

    Returns:
        :class:`SuffStats` with batch shape ``(...)``; the shift is each dataset's first
        valid value (0 for an empty dataset), held out of gradients.

    Examples:
        >>> import jax.numpy as jnp
        >>> st = suff_stats(jnp.array([[1.0, 2.0, 3.0], [5.0, jnp.nan, 0.0]]), jnp.array([3, 1]))
        >>> st.n.tolist(), st.total_sum().tolist()
        ([3.0, 1.0], [6.0, 5.0])
    """
    dtype = float_dtype(x)
    # No op may touch x before the mask: even a no-op cast of its padded NaN trips
    # jax.debug_nans outside jit.
    x = x if isinstance(x, jax.Array) and x.dtype == dtype else jnp.asarray(x, dtype)
    if x.ndim < 1:
        raise ValueError(
            f"suff_stats: x must have at least one axis (..., n_max); got shape {x.shape}"
        )
    n_max = x.shape[-1]
    valid = None
    if lengths is not None:
        lengths = jnp.asarray(lengths)
        if lengths.shape != x.shape[:-1]:
            raise ValueError(
                f"suff_stats: lengths has shape {lengths.shape}, expected the batch shape "
                f"{x.shape[:-1]} of x {x.shape}"
            )
        # int32 or wider, as the user gave it: strict promotion forbids mixing int32 and int64.
        iota = jax.lax.broadcasted_iota(
            jnp.promote_types(lengths.dtype, jnp.int32), x.shape, x.ndim - 1
        )
        valid = iota < lengths[..., None]
    if mask is not None:
        mask = jnp.asarray(mask, bool)
        if mask.shape != x.shape:
            raise ValueError(f"suff_stats: mask has shape {mask.shape}, expected {x.shape}")
        valid = mask if valid is None else valid & mask
    if valid is None:
        n = jnp.full(x.shape[:-1], n_max, dtype)
        if not n_max:
            zeros = jnp.zeros(x.shape[:-1], dtype)
            return SuffStats(n, zeros, zeros, zeros)
        shift = jax.lax.stop_gradient(x[..., 0])
        # The same fused reduction as the masked path: faster than two sums each with its
        # own shift (solve over (2·10⁶, 64): 109 against 130 ms; (125000, 1024): 48 against
        # 73 ms), and one mechanism for both.
        return SuffStats(n, *sum_and_sum_sq(x - shift[..., None]), shift)
    if mask is None:  # valid slots lead: n is the clipped length, no count or search
        n = jnp.clip(lengths, 0, n_max).astype(dtype)
        return _masked_sums(x, valid, n, None)
    return _masked_sums(x, valid, valid.sum(-1).astype(dtype), jnp.argmax(valid, axis=-1))


@jax.jit
def _masked_sums(
    x: jax.Array, valid: jax.Array, n: jax.Array, first: jax.Array | None
) -> SuffStats:
    """Shifted sums over the ``valid`` slots; the shift is the value at ``first`` (slot 0 when
    ``None``), 0 for an empty dataset.

    One select, ``where(valid, x − shift, 0)``: its gradient is ``where(valid, ḡ, 0)``, free of
    the padding whatever it holds, so no second ``where`` on ``x`` is needed. Jitted so that the
    NaN that ``x − shift`` makes in padded slots stays inside (``jax.debug_nans`` checks the
    outputs of a jit, which are clean). Both sums are one two-output reduction
    (:func:`sum_and_sum_sq`), into which XLA:CPU fuses the select: two plain sums would write
    ``y`` out and read it back, 4x slower.
    """
    n_max = x.shape[-1]
    if not n_max:
        zeros = jnp.zeros(x.shape[:-1], x.dtype)
        return SuffStats(n, zeros, zeros, zeros)
    at = x[..., 0] if first is None else jnp.take_along_axis(x, first[..., None], -1)[..., 0]
    shift = jax.lax.stop_gradient(jnp.where(n > 0, at, 0))
    y = jnp.where(valid, x - shift[..., None], 0)
    return SuffStats(n, *sum_and_sum_sq(y), shift)


def suff_stats_ragged(values: ArrayLike, offsets: ArrayLike) -> SuffStats:
    """Shifted sufficient statistics of datasets stored back to back.

    This is the general fallback (a segment sum); :func:`jaxvi.fit` buckets ragged data into
    padded blocks instead, which is 3x faster on CPU (``benchmarks/ragged_floor.py``: a
    ``segment_sum`` of (x, x²) took 194 ms for 10⁶ datasets against 64 ms for ``fit``'s
    blocks and sums).

    Args:
        values: ``(M,)`` all observations, dataset after dataset.
        offsets: ``(D + 1,)`` integer boundaries; dataset ``d`` is
            ``values[offsets[d]:offsets[d + 1]]``. Must start at 0, not decrease and end at
            ``M`` (checked by :func:`jaxvi.fit`, not here: kernels never raise on values).

    Returns:
        :class:`SuffStats` of batch shape ``(D,)``; each shift is the dataset's first value.

    Examples:
        >>> import jax.numpy as jnp
        >>> st = suff_stats_ragged(jnp.array([1.0, 2.0, 3.0, 4.0]), jnp.array([0, 3, 3, 4]))
        >>> st.n.tolist(), st.total_sum().tolist()
        ([3.0, 0.0, 1.0], [6.0, 0.0, 4.0])
    """
    dtype = float_dtype(values)
    values = jnp.asarray(values, dtype)
    offsets = jnp.asarray(offsets)
    if values.ndim != 1 or offsets.ndim != 1 or offsets.shape[0] < 1:
        raise ValueError(
            "suff_stats_ragged: values must be (M,) and offsets (D+1,); got "
            f"{values.shape} and {offsets.shape}"
        )
    num = offsets.shape[0] - 1
    m = values.shape[0]
    counts = jnp.diff(offsets)
    n = counts.astype(dtype)
    if m == 0:
        zeros = jnp.zeros((num,), dtype)
        return SuffStats(n, zeros, zeros, zeros)
    starts = jnp.clip(offsets[:-1], 0, m - 1)
    shift = jax.lax.stop_gradient(jnp.where(counts > 0, values[starts], 0))
    seg = jnp.searchsorted(offsets[1:], jnp.arange(m, dtype=offsets.dtype), side="right")
    seg_safe = jnp.minimum(seg, max(num - 1, 0))
    y = values - shift[seg_safe]
    sums = _blocked_segment_sum(jnp.stack([y, y * y], axis=-1), seg, num)
    return SuffStats(n, sums[:, 0], sums[:, 1], shift)


_BLOCK = 32


def _blocked_segment_sum(y: jax.Array, seg: jax.Array, num: int) -> jax.Array:
    """``segment_sum(y, seg, num)`` with the rounding error of a tree, not of a running sum.

    XLA's scatter-add adds a segment's values one after another: for 10⁵ values its float32
    error is ~3e-5 of Σ(x − shift)², where the padded path's tree reduction is ~1e-7. Here the
    flat array is cut into blocks of ``_BLOCK``; within a block each segment's run is summed
    (≤ 32 terms), and those partial sums form the next, shorter ragged array, level after level.
    A (block, segment) pair is numbered ``block + segment``: both never decrease along the
    array, so that number grows by at least 1 from one pair to the next, and the pieces stay in
    segment order for the next level. ``seg`` must not decrease; ``seg == num`` is dropped.

    Args:
        y: ``(M, C)`` values.
        seg: ``(M,)`` non-decreasing segment ids in ``[0, num]``.
        num: number of segments.

    Returns:
        ``(num, C)`` sums.
    """
    m = y.shape[0]
    levels = max(0, math.ceil(math.log(max(m, 1)) / math.log(_BLOCK)) - 1)
    for _ in range(levels):
        rows = -(-m // _BLOCK)
        pad = rows * _BLOCK - m
        y = jnp.pad(y, ((0, pad), (0, 0)))
        seg = jnp.pad(seg, (0, pad), constant_values=num)
        piece = jnp.arange(rows * _BLOCK, dtype=seg.dtype) // _BLOCK + seg
        m = rows + num + 1
        y = jax.ops.segment_sum(y, piece, m, indices_are_sorted=True)
        # Each piece's segment; unused numbers get the previous one (their sum is 0), which
        # keeps the ids non-decreasing.
        seg = jax.ops.segment_max(seg, piece, m, indices_are_sorted=True)
        seg = jnp.maximum(jax.lax.cummax(seg, axis=0), 0)
    return jax.ops.segment_sum(y, seg, num + 1, indices_are_sorted=True)[:num]
