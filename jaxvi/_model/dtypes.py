"""Dtype rules shared by every layer: integer data is promoted, float dtypes are kept."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike


def float_dtype(*xs: ArrayLike) -> np.dtype:
    """The floating dtype that results from ``xs``: their promoted float type.

    Integers and bools promote to JAX's default float (float32, or float64 under x64).
    Python scalars are weak and do not widen an array's dtype; nor do weakly typed arrays,
    which is what Python scalars become under ``jit`` (a default ``shift=0.0`` would otherwise
    turn float32 statistics into float64 ones under x64).
    """
    dtypes = []
    for x in xs:
        if x is None or isinstance(x, (int, float, bool)) or getattr(x, "weak_type", False):
            continue
        dt = jnp.result_type(x)
        if jnp.issubdtype(dt, jnp.floating):
            dtypes.append(dt)
    if not dtypes:
        return jnp.dtype(jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
    dt = dtypes[0]
    for other in dtypes[1:]:
        dt = jnp.promote_types(dt, other)
    return jnp.dtype(dt)
