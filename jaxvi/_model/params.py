"""The one check of the model's positive parameters (λ, σ, θ) on concrete values.

Kernels never check values (a bad λ gives NaN in its own row); the host wrappers, the table
readers and the command check concrete input with these, so the rule and its words are one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["NEED", "is_positive", "positive"]

NEED = "must be a positive finite number"


def is_positive(value: Any) -> Any:
    """Elementwise: finite and > 0 (``False`` for NaN and for what is not a number).

    Examples:
        >>> is_positive(np.array([1.0, 0.0, np.inf, np.nan])).tolist()
        [True, False, False, False]
    """
    with np.errstate(invalid="ignore"):
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            return np.zeros(arr.shape, bool) if arr.ndim else False
        return np.isfinite(arr) & (arr > 0)


def positive(name: str, value: Any) -> float:
    """``value`` as a float, checked finite and > 0.

    Examples:
        >>> positive("lam", 2)
        2.0
        >>> positive("sigma", -1)
        Traceback (most recent call last):
        ...
        ValueError: sigma must be a positive finite number, got -1
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {NEED}, got {value!r}") from None
    if not is_positive(number):
        raise ValueError(f"{name} {NEED}, got {value!r}")
    return number
