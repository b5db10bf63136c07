"""The native kernel as JAX operations: one ``jax.ffi.ffi_call`` per layout.

Each returns the four statistics ``(n, sum_x, sum_x2, shift)`` in the data's dtype; the shift is
each dataset's first value. Leading axes are batch axes, so ``vmap`` adds one more
(``vmap_method="broadcast_all"``). They run on CPU only: callers reach them through
``jax.lax.platform_dependent`` and keep the XLA path for other platforms.
"""

from __future__ import annotations

import jax

__all__ = ["padded_stats", "ragged_stats"]


def _call(target: str, shape: tuple[int, ...], dtype, *args) -> tuple[jax.Array, ...]:
    out = jax.ShapeDtypeStruct(shape, dtype)
    n, shift, sum_x, sum_x2 = jax.ffi.ffi_call(
        target, (out, out, out, out), vmap_method="broadcast_all"
    )(*args)
    return n, sum_x, sum_x2, shift


def ragged_stats(values: jax.Array, offsets: jax.Array) -> tuple[jax.Array, ...]:
    """``values (..., M)`` float32/64, ``offsets (..., D + 1)`` int32/64 → 4 × ``(..., D)``.

    A dataset whose offsets do not fit in ``[0, M]`` or decrease gets NaN sums."""
    shape = (*offsets.shape[:-1], offsets.shape[-1] - 1)
    return _call("jaxvi_ragged_stats", shape, values.dtype, values, offsets)


def padded_stats(x: jax.Array, lengths: jax.Array) -> tuple[jax.Array, ...]:
    """``x (..., W)`` float32/64, ``lengths (...)`` int32/64 (clipped to ``[0, W]``) →
    4 × ``(...)``."""
    return _call("jaxvi_padded_stats", x.shape[:-1], x.dtype, x, lengths)
