"""Statistics of datasets stored back to back: ``suff_stats_ragged(values, offsets)``.

On CPU, the native kernel (:mod:`jaxvi._stats.native`) reads every value once, on every core,
through an XLA FFI call; elsewhere (GPU, TPU, or without the extension) a segment sum with a
tree's rounding error does the job. Both sit behind ``jax.lax.platform_dependent``, so one
traced function lowers to the right one for the device, and a ``custom_jvp`` in plain JAX
gives their derivatives: ``d Σ(x − shift) = Σ dx`` and ``d Σ(x − shift)² = Σ 2(x − shift) dx``
(the shift is held out of gradients, as everywhere in jaxvi).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxvi._model.dtypes import float_dtype
from jaxvi._model.statistics import SuffStats
from jaxvi._stats import native
from jaxvi._stats.native.calls import ragged_stats

__all__ = ["suff_stats_ragged"]


def suff_stats_ragged(values: ArrayLike, offsets: ArrayLike) -> SuffStats:
    """Shifted sufficient statistics of datasets stored back to back.

    Args:
        values: ``(M,)`` all observations, dataset after dataset.
        offsets: ``(D + 1,)`` integer boundaries; dataset ``d`` is
            ``values[offsets[d]:offsets[d + 1]]``. Must start at 0, not decrease and end at
            ``M`` (checked by :func:`jaxvi.fit`, not here: kernels never raise on values; a
            dataset whose offsets do not fit gets NaN in its own row).

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
    if not jnp.issubdtype(offsets.dtype, jnp.integer):
        raise ValueError(f"suff_stats_ragged: offsets must be integers; got {offsets.dtype}")
    if offsets.dtype not in (jnp.int32, jnp.int64):
        offsets = offsets.astype(jnp.int32)
    if dtype in (jnp.float32, jnp.float64) and native.available():
        return SuffStats(*_dispatched(values, offsets))
    return SuffStats(*_xla(values, offsets))


def _segments(offsets: jax.Array, m: int) -> jax.Array:
    """``(M,)`` the dataset of every value (``D`` past the last one)."""
    return jnp.searchsorted(offsets[1:], jnp.arange(m, dtype=offsets.dtype), side="right")


def _xla(values: jax.Array, offsets: jax.Array) -> tuple[jax.Array, ...]:
    """``(n, sum_x, sum_x2, shift)`` by a blocked segment sum: any platform."""
    num = offsets.shape[0] - 1
    m = values.shape[0]
    counts = jnp.diff(offsets)
    n = counts.astype(values.dtype)
    if m == 0:
        zeros = jnp.zeros((num,), values.dtype)
        return n, zeros, zeros, zeros
    starts = jnp.clip(offsets[:-1], 0, m - 1)
    shift = jax.lax.stop_gradient(jnp.where(counts > 0, values[starts], 0))
    seg = _segments(offsets, m)
    seg_safe = jnp.minimum(seg, max(num - 1, 0))
    y = values - shift[seg_safe]
    sums = _blocked_segment_sum(jnp.stack([y, y * y], axis=-1), seg, num)
    return n, sums[:, 0], sums[:, 1], shift


@jax.custom_jvp
def _dispatched(values: jax.Array, offsets: jax.Array) -> tuple[jax.Array, ...]:
    """The native kernel on CPU, the segment sum elsewhere."""
    return jax.lax.platform_dependent(values, offsets, cpu=ragged_stats, default=_xla)


@_dispatched.defjvp
def _dispatched_jvp(primals, tangents):
    values, offsets = primals
    dv = tangents[0]
    out = _dispatched(values, offsets)
    n, _, _, shift = out
    num = offsets.shape[0] - 1
    if values.shape[0] == 0 or num == 0:
        zeros = jnp.zeros_like(n)
        return out, (zeros, zeros, zeros, zeros)
    seg = _segments(offsets, values.shape[0])
    y = values - shift[jnp.minimum(seg, num - 1)]
    ds1 = jax.ops.segment_sum(dv, seg, num)
    ds2 = jax.ops.segment_sum(2 * y * dv, seg, num)
    return out, (jnp.zeros_like(n), ds1, ds2, jnp.zeros_like(shift))


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
