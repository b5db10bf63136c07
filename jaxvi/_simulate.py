"""Draws datasets from the generative model: ``z ~ Exponential(λ)``, ``x_i | z ~ Normal(z, σ²)``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxvi._data import Padded
from jaxvi._dtypes import float_dtype

__all__ = ["simulate"]


def _lengths(key: jax.Array, num_datasets: int, sizes) -> tuple[jax.Array, int]:
    if isinstance(sizes, (int, np.integer)):
        if sizes < 0:
            raise ValueError(f"simulate: sizes must be >= 0, got {sizes}")
        return jnp.full((num_datasets,), int(sizes), jnp.int32), int(sizes)
    if isinstance(sizes, tuple) and len(sizes) == 2:
        low, high = (int(v) for v in sizes)
        if not 0 <= low <= high:
            raise ValueError(f"simulate: sizes=(low, high) needs 0 <= low <= high, got {sizes}")
        return jax.random.randint(key, (num_datasets,), low, high + 1, jnp.int32), high
    arr = np.asarray(sizes)
    if arr.shape != (num_datasets,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            "simulate: sizes must be an int, an inclusive (low, high) pair, or one integer per "
            f"dataset (shape ({num_datasets},)); got {type(sizes).__name__} of shape {arr.shape}"
        )
    if arr.size and arr.min() < 0:
        raise ValueError(
            f"simulate: sizes must be >= 0; dataset {int(arr.argmin())} has {arr.min()}"
        )
    return jnp.asarray(arr, jnp.int32), int(arr.max()) if arr.size else 0


def simulate(
    key: jax.Array,
    num_datasets: int,
    *,
    lam: ArrayLike = 1.0,
    sigma: ArrayLike = 1.0,
    sizes: int | tuple[int, int] | ArrayLike = (1, 64),
    dtype=None,
) -> tuple[Padded, jax.Array]:
    """Simulate ``num_datasets`` independent datasets from the model.

    Args:
        key: a PRNG key.
        num_datasets: D, the number of datasets.
        lam: prior rate λ, a scalar or ``(D,)``.
        sigma: noise scale σ, a scalar or ``(D,)``.
        sizes: an int (every dataset that size), an inclusive ``(low, high)`` range drawn
            uniformly, or ``(D,)`` integers, one size per dataset.
        dtype: float dtype of the data; the default float when ``None``.

    Returns:
        ``(Padded(x, lengths), z_true)``: ``x`` is ``(D, n_max)`` with zeros past each length,
        ``lengths`` is ``(D,)`` int32 and ``z_true`` is ``(D,)``.

    Examples:
        >>> import jax
        >>> data, z = simulate(jax.random.key(0), 3, sizes=(2, 5))
        >>> data.x.shape, z.shape
        ((3, 5), (3,))
    """
    dtype = float_dtype(lam, sigma) if dtype is None else jnp.dtype(dtype)
    k_len, k_z, k_x = jax.random.split(key, 3)
    lengths, n_max = _lengths(k_len, num_datasets, sizes)
    lam = jnp.broadcast_to(jnp.asarray(lam, dtype), (num_datasets,))
    sigma = jnp.broadcast_to(jnp.asarray(sigma, dtype), (num_datasets,))
    z = jax.random.exponential(k_z, (num_datasets,), dtype) / lam
    noise = jax.random.normal(k_x, (num_datasets, n_max), dtype)
    x = z[:, None] + sigma[:, None] * noise
    valid = jnp.arange(n_max)[None, :] < lengths[:, None]
    return Padded(jnp.where(valid, x, 0), lengths), z
