"""Statistics of padded datasets: ``suff_stats(x, lengths)``, the rows of a ``(..., n_max)`` block.

Shifted by each dataset's first value (:class:`~jaxvi._model.statistics.SuffStats`). With
``lengths`` (or full rows) on CPU, the native kernel (:mod:`jaxvi._stats.native`) reads the block
once on every core; elsewhere, and with a ``mask``, one fused two-output XLA reduction does
(:func:`sum_and_sum_sq`). ``jax.lax.platform_dependent`` picks one per device, and a
``custom_jvp`` in plain JAX differentiates both.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxvi._model.dtypes import float_dtype
from jaxvi._model.statistics import SuffStats
from jaxvi._stats import native
from jaxvi._stats.native.calls import padded_stats

__all__ = ["suff_stats", "suff_stats_xla", "sum_and_sum_sq"]


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
    if lengths is not None:
        lengths = jnp.asarray(lengths)
        if lengths.shape != x.shape[:-1]:
            raise ValueError(
                f"suff_stats: lengths has shape {lengths.shape}, expected the batch shape "
                f"{x.shape[:-1]} of x {x.shape}"
            )
        if not jnp.issubdtype(lengths.dtype, jnp.integer):
            raise ValueError(f"suff_stats: lengths must be integers; got {lengths.dtype}")
    if mask is None and dtype in (jnp.float32, jnp.float64) and native.available():
        if lengths is None:
            lengths = jnp.full(x.shape[:-1], n_max, jnp.int32)
        elif lengths.dtype not in (jnp.int32, jnp.int64):
            lengths = lengths.astype(jnp.int32)
        return SuffStats(*_dispatched(x, lengths))
    valid = None if lengths is None else _leading(x, lengths)
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


def _leading(x: jax.Array, lengths: jax.Array) -> jax.Array:
    """``(..., n_max)`` bool: the slots before each dataset's length."""
    # int32, or int64 as the user gave it: strict promotion forbids mixing the two.
    if lengths.dtype not in (jnp.int32, jnp.int64):
        lengths = lengths.astype(jnp.int32)
    iota = jax.lax.broadcasted_iota(lengths.dtype, x.shape, x.ndim - 1)
    return iota < lengths[..., None]


def suff_stats_xla(x: jax.Array, lengths: jax.Array) -> SuffStats:
    """:func:`suff_stats` of the leading ``lengths`` slots by XLA, on any platform: the path
    of accelerators, and of ``fit``'s device blocks (whose rows are sharded over devices,
    which the native call is not)."""
    n = jnp.clip(lengths, 0, x.shape[-1]).astype(x.dtype)
    return _masked_sums(x, _leading(x, lengths), n, None)


def _xla(x: jax.Array, lengths: jax.Array) -> tuple[jax.Array, ...]:
    return tuple(suff_stats_xla(x, lengths))


@jax.custom_jvp
def _dispatched(x: jax.Array, lengths: jax.Array) -> tuple[jax.Array, ...]:
    """The native kernel on CPU (one read of ``x``, on every core), XLA elsewhere."""
    return jax.lax.platform_dependent(x, lengths, cpu=padded_stats, default=_xla)


@_dispatched.defjvp
def _dispatched_jvp(primals, tangents):
    x, lengths = primals
    dx = tangents[0]
    out = _dispatched(x, lengths)
    n, _, _, shift = out
    valid = _leading(x, lengths)
    # The padding may hold NaN: it is replaced before any arithmetic, so neither the tangents
    # nor their transposes (reverse mode) see it.
    y = jnp.where(valid, x, shift[..., None]) - shift[..., None]
    dx = jnp.where(valid, dx, 0)
    return out, (jnp.zeros_like(n), dx.sum(-1), (2 * y * dx).sum(-1), jnp.zeros_like(shift))


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
