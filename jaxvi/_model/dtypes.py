"""The one dtype policy of every layer: float dtypes are kept, integers promoted, and float64
needs JAX's x64 mode (without it, float64 is computed in float32, with a warning)."""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike


def _x64() -> bool:
    """Whether JAX's x64 mode is on (float64 canonicalises to itself)."""
    return jax.dtypes.canonicalize_dtype(np.float64) == np.float64


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
        return jnp.dtype(jnp.float64 if _x64() else jnp.float32)
    dt = dtypes[0]
    for other in dtypes[1:]:
        dt = jnp.promote_types(dt, other)
    return jnp.dtype(dt)


def default_float() -> np.dtype:
    """JAX's default float: float64 when x64 is on, else float32."""
    return np.dtype(np.float64 if _x64() else np.float32)


def compute_dtype(data_dtype: Any, requested: Any = None, *, who: str) -> np.dtype:
    """The dtype a host wrapper (``fit``, ``fit_table``) computes in.

    ``requested`` when given (a floating dtype), else the data's float dtype, else (integer
    data, or none) the default float. Narrower floats compute in float32. float64 with x64 off
    computes in float32, after a warning that names ``who``.

    Examples:
        >>> compute_dtype(np.dtype(np.int16), who="fit").name  # x64 off
        'float32'
    """
    if requested is not None:
        want = np.dtype(requested)
        if want.kind != "f":
            raise ValueError(f"{who}: dtype must be a floating dtype; got {want}")
    elif data_dtype is not None and np.dtype(data_dtype).kind == "f":
        want = np.dtype(data_dtype)
    else:
        want = default_float()
    if want.itemsize < 4:
        want = np.dtype(np.float32)
    if want == np.float64 and not _x64():
        warnings.warn(
            f"{who}: float64 data with jax_enable_x64 off is computed in float32; enable x64 "
            "(JAX_ENABLE_X64=1) for float64 results",
            UserWarning,
            stacklevel=3,
        )
        want = np.dtype(np.float32)
    return want
