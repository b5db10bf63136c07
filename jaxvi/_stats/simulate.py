"""Draws datasets from the generative model: ``z ~ Exponential(λ)``, ``x_i | z ~ Normal(z, σ²)``."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxvi._model.dtypes import float_dtype
from jaxvi._stats.data import Padded

__all__ = ["simulate"]


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _lengths(key: jax.Array, num_datasets: int, sizes) -> tuple[jax.Array, int]:
    """The ``(D,)`` int32 dataset sizes and their maximum (static: it is the padded width)."""
    if _is_int(sizes):
        if sizes < 0:
            raise ValueError(f"simulate: sizes must be >= 0, got {sizes}")
        return jnp.full((num_datasets,), int(sizes), jnp.int32), int(sizes)
    if isinstance(sizes, tuple):
        if len(sizes) != 2 or not all(_is_int(v) for v in sizes):
            raise ValueError(f"simulate: sizes=(low, high) needs two integers, got {sizes!r}")
        low, high = (int(v) for v in sizes)
        if not 0 <= low <= high < np.iinfo(np.int32).max:
            raise ValueError(f"simulate: sizes=(low, high) needs 0 <= low <= high, got {sizes}")
        return jax.random.randint(key, (num_datasets,), low, high + 1, jnp.int32), high
    arr = np.asarray(sizes)
    if arr.shape != (num_datasets,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            "simulate: sizes must be an int, an inclusive (low, high) tuple, or one integer per "
            f"dataset of shape ({num_datasets},); got {type(sizes).__name__} of shape "
            f"{arr.shape} and dtype {arr.dtype}"
        )
    if arr.size and arr.min() < 0:
        raise ValueError(
            f"simulate: sizes must be >= 0; dataset {int(arr.argmin())} has size {arr.min()}"
        )
    return jnp.asarray(arr, jnp.int32), int(arr.max()) if arr.size else 0


def _per_dataset(name: str, value: ArrayLike, num_datasets: int, dtype) -> jax.Array:
    arr = jnp.asarray(value, dtype)
    if arr.shape not in ((), (num_datasets,)):
        raise ValueError(
            f"simulate: {name} must be a scalar or one value per dataset of shape "
            f"({num_datasets},); got shape {arr.shape}"
        )
    return jnp.broadcast_to(arr, (num_datasets,))


@partial(jax.jit, static_argnames=("n_max",))
def _draw(
    key: jax.Array, lengths: jax.Array, lam: jax.Array, sigma: jax.Array, *, n_max: int
) -> tuple[jax.Array, jax.Array]:
    # One fused kernel: the (D, n_max) noise, the shift by z and the zero padding are a single
    # pass over memory instead of three eager passes over a block of up to gigabytes.
    k_z, k_x = jax.random.split(key)
    dtype = lam.dtype
    z = jax.random.exponential(k_z, lam.shape, dtype) / lam
    noise = jax.random.normal(k_x, (*lam.shape, n_max), dtype)
    x = z[:, None] + sigma[:, None] * noise
    valid = jax.lax.broadcasted_iota(jnp.int32, x.shape, 1) < lengths[:, None]
    return jnp.where(valid, x, jnp.zeros_like(x)), z


def simulate(
    key: jax.Array,
    num_datasets: int,
    *,
    lam: ArrayLike = 1.0,
    sigma: ArrayLike = 1.0,
    sizes: int | tuple[int, int] | ArrayLike = (1, 64),
    dtype: jnp.dtype | type | None = None,
) -> tuple[Padded, jax.Array]:
    """Simulate ``num_datasets`` independent datasets from the model.

    Dataset ``d`` draws ``z_d ~ Exponential(λ_d)`` and then ``lengths[d]`` values
    ``x ~ Normal(z_d, σ_d²)``. The same ``key`` and arguments always give the same data.

    Args:
        key: a PRNG key.
        num_datasets: D ≥ 0, the number of datasets (static).
        lam: prior rate λ > 0, a scalar or ``(D,)``.
        sigma: noise scale σ > 0, a scalar or ``(D,)``.
        sizes: an int (every dataset that size), an inclusive ``(low, high)`` tuple of sizes
            drawn uniformly, or ``(D,)`` integers, one size per dataset. Only a ``tuple`` is
            read as a range, so ``np.array([3, 5])`` means two datasets of sizes 3 and 5.
        dtype: float dtype of the data; when ``None``, that of ``lam`` and ``sigma`` (the
            default float for Python scalars).

    Returns:
        ``(Padded(x, lengths), z_true)``: ``x`` is ``(D, n_max)`` with zeros past each length,
        where ``n_max`` is the largest possible size; ``lengths`` is ``(D,)`` int32 and
        ``z_true`` is ``(D,)``.

    Raises:
        ValueError: for a negative ``num_datasets`` or size, a malformed ``sizes``, or a
            ``lam``/``sigma`` that is neither a scalar nor ``(D,)``.

    Examples:
        >>> import jax
        >>> data, z = simulate(jax.random.key(0), 3, sizes=(2, 5))
        >>> data.x.shape, data.lengths.shape, z.shape
        ((3, 5), (3,), (3,))
    """
    if not _is_int(num_datasets) or num_datasets < 0:
        raise ValueError(f"simulate: num_datasets must be an integer >= 0, got {num_datasets!r}")
    num_datasets = int(num_datasets)
    dtype = float_dtype(lam, sigma) if dtype is None else jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"simulate: dtype must be a float dtype, got {dtype}")
    k_len, k_data = jax.random.split(key)
    lengths, n_max = _lengths(k_len, num_datasets, sizes)
    lam = _per_dataset("lam", lam, num_datasets, dtype)
    sigma = _per_dataset("sigma", sigma, num_datasets, dtype)
    x, z = _draw(k_data, lengths, lam, sigma, n_max=n_max)
    return Padded(x, lengths), z
