"""Checks of concrete input for :func:`jaxvi.fit`.

Kernels never raise on values (an invalid dataset gives NaN in its own row), so the eager
wrapper is where bad input is caught. Every message names the parameter as the user wrote it
(``lam``, ``sigma``, ``theta``, ``offsets``, ``lengths``) and, where there is one, the dataset.
All checks are vectorised.

Shapes, dtypes, offsets, lengths and parameters are checked before any compute. NaN and inf
in the values are caught by the reduction itself, which reads every value anyway: a non-finite
value makes its dataset's shifted sums non-finite, so :func:`check_finite_values` looks at the
values only when some sum came out non-finite, and before anything is solved. That saves
``fit`` a pass over the values (7 ms of 170 for 10⁶ datasets, 92 MB).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxvi._fit.buckets import Flat
from jaxvi._model.dtypes import default_float
from jaxvi._model.params import NEED, is_positive
from jaxvi._model.statistics import SuffStats
from jaxvi._stats.data import Padded, Ragged

__all__ = [
    "as_flat_or_stats",
    "check_finite_values",
    "check_lengths",
    "check_numeric",
    "check_offsets",
    "check_param",
]


def check_numeric(name: str, arr: np.ndarray, *, integer: bool = False) -> None:
    """Raise unless ``arr`` holds real numbers (integers only, when ``integer``)."""
    kinds = "iu" if integer else "biuf"
    if arr.dtype.kind not in kinds:
        what = "integers" if integer else "real numbers"
        raise ValueError(f"fit: {name} must hold {what}; got dtype {arr.dtype}")


def check_param(
    name: str, value: object, num: int, *, validate: bool, dtype: np.dtype
) -> np.ndarray:
    """``value`` as a scalar or ``(num,)`` array of ``dtype``, checked finite and positive.

    The shape is always checked; the values only when ``validate``.
    """
    arr = np.asarray(value)
    check_numeric(name, arr)
    if arr.shape not in ((), (num,)):
        raise ValueError(
            f"fit: {name} must be a scalar or have one value per dataset (shape ({num},)); "
            f"got shape {arr.shape}"
        )
    if validate:
        bad = ~is_positive(arr)
        if bad.any():
            if arr.ndim == 0:
                raise ValueError(f"fit: {name} {NEED}; got {arr.item()!r}")
            i = int(np.argmax(bad))
            raise ValueError(f"fit: {name} {NEED}; {name}[{i}] = {arr[i].item()!r} (dataset {i})")
    with np.errstate(all="ignore"):
        return arr.astype(dtype)


def check_offsets(offsets: np.ndarray, num_values: int, *, validate: bool) -> None:
    """Raise unless ``offsets`` is ``(D+1,)`` integers from 0, non-decreasing, ending at M."""
    if offsets.ndim != 1 or offsets.shape[0] < 1:
        raise ValueError(f"fit: offsets must have shape (D + 1,); got shape {offsets.shape}")
    check_numeric("offsets", offsets, integer=True)
    if not validate:
        return
    if offsets[0] != 0:
        raise ValueError(f"fit: offsets must start at 0; got offsets[0] = {offsets[0]}")
    steps = np.diff(offsets)
    if steps.size and steps.min() < 0:
        d = int(np.argmax(steps < 0))
        raise ValueError(
            f"fit: offsets must not decrease; dataset {d} has offsets[{d}] = {offsets[d]} > "
            f"offsets[{d + 1}] = {offsets[d + 1]}"
        )
    if offsets[-1] != num_values:
        raise ValueError(
            f"fit: offsets must end at len(values) = {num_values}; got offsets[-1] = {offsets[-1]}"
        )


def check_lengths(lengths: np.ndarray, num: int, row_width: int, *, validate: bool) -> None:
    """Raise unless ``lengths`` is ``(num,)`` integers in ``[0, row_width]``."""
    if lengths.shape != (num,):
        raise ValueError(
            f"fit: lengths must have one entry per row of x (shape ({num},)); got shape "
            f"{lengths.shape}"
        )
    check_numeric("lengths", lengths, integer=True)
    if not validate or num == 0:
        return
    if lengths.min() < 0:
        d = int(np.argmax(lengths < 0))
        raise ValueError(f"fit: lengths must be >= 0; dataset {d} has length {lengths[d]}")
    if lengths.max() > row_width:
        d = int(np.argmax(lengths > row_width))
        raise ValueError(
            f"fit: lengths must not exceed the row width {row_width} of x; dataset {d} has "
            f"length {lengths[d]}"
        )


def _raise_non_finite(dataset: int, value: object) -> None:
    raise ValueError(f"fit: dataset {dataset} contains a non-finite value ({value!r})")


def check_finite_values(flat: Flat, sums_finite: np.ndarray, chunk: int) -> None:
    """Raise naming the first dataset of ``flat`` that holds NaN or inf.

    ``sums_finite`` ``(D,)`` says whose shifted sums came out finite. NaN and inf propagate
    through ``x − shift``, its square and the sums, so when all are finite no value needs a
    look. Otherwise the values are scanned in chunks of ``chunk``; a dataset whose sums
    overflowed from finite values is not an error (its row is inf or NaN, as without checks).
    The windows of ``flat`` must not decrease (checked offsets or rows of a padded block), so
    the first bad value found belongs to the first bad dataset.
    """
    values = flat.values
    if values.dtype.kind != "f" or sums_finite.all():
        return
    for lo in range(0, values.shape[0], chunk):
        bad = np.flatnonzero(~np.isfinite(values[lo : lo + chunk])) + lo
        if not bad.size:
            continue
        # Each bad position's dataset: the last window starting at or before it, if the
        # position is inside (a padded block's padding lies outside every window).
        d = np.searchsorted(flat.starts, bad, side="right") - 1
        inside = (d >= 0) & (bad < flat.starts[d] + flat.lengths[d])
        if inside.any():
            i = int(np.argmax(inside))
            _raise_non_finite(int(d[i]), values[bad[i]].item())


def _stats_fields(stats: SuffStats, validate: bool) -> tuple[np.ndarray, ...]:
    n = np.asarray(stats.n)
    if n.ndim != 1:
        raise ValueError(f"fit: SuffStats fields must have shape (D,); got n of shape {n.shape}")
    fields = [n]
    for name in ("sum_x", "sum_x2", "shift"):
        f = np.asarray(getattr(stats, name))
        check_numeric(f"stats.{name}", f)
        if name == "shift" and f.ndim == 0:
            f = np.broadcast_to(f, n.shape)
        if f.shape != n.shape:
            raise ValueError(
                f"fit: stats.{name} has shape {f.shape}, expected {n.shape} like stats.n"
            )
        fields.append(f)
    check_numeric("stats.n", n)
    if validate:
        for name, f in zip(("n", "sum_x", "sum_x2", "shift"), fields, strict=True):
            bad = ~np.isfinite(f)
            if name in ("n", "sum_x2"):
                bad |= f < 0
            if bad.any():
                d = int(np.argmax(bad))
                raise ValueError(
                    f"fit: dataset {d} has an invalid stats.{name} = {f[d].item()!r} "
                    "(must be finite" + (" and >= 0)" if name in ("n", "sum_x2") else ")")
                )
    return tuple(fields)


def _ragged_to_flat(values: np.ndarray, offsets: np.ndarray, validate: bool) -> Flat:
    if values.ndim != 1:
        raise ValueError(f"fit: Ragged values must be 1-D (M,); got shape {values.shape}")
    check_numeric("values", values)
    check_offsets(offsets, values.shape[0], validate=validate)
    offsets = offsets.astype(np.int64, copy=False)
    return Flat.windows(values, offsets[:-1], np.diff(offsets), values.shape[0], checked=validate)


def _padded_to_flat(x: np.ndarray, lengths: Any, validate: bool) -> Flat:
    if x.ndim != 2:
        raise ValueError(f"fit: padded data x must be 2-D (D, n_max); got shape {x.shape}")
    check_numeric("x", x)
    num, width = x.shape
    if lengths is None:
        lens = np.full(num, width, np.int64)
    else:
        lens = np.asarray(lengths)
        check_lengths(lens, num, width, validate=validate)
    starts = np.arange(num, dtype=np.int64) * width
    flat = np.ascontiguousarray(x).reshape(-1)
    lens = lens.astype(np.int64, copy=False)
    return Flat.windows(flat, starts, lens, starts + width, checked=validate)


def _sequence_to_flat(data: Any, validate: bool) -> Flat:
    arrays = []
    # Python floats are weakly typed, as in JAX: they take the default float, so a list of
    # lists does not count as float64 data (which would warn with x64 off).
    default = default_float()
    for d, a in enumerate(data):
        arr = np.asarray(a)
        if not hasattr(a, "dtype") and arr.dtype == np.float64:
            arr = arr.astype(default)
        if arr.ndim != 1:
            raise ValueError(f"fit: dataset {d} must be a 1-D array; got shape {arr.shape}")
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"fit: dataset {d} must hold real numbers; got dtype {arr.dtype}")
        arrays.append(arr)
    sizes = np.array([a.shape[0] for a in arrays], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    values = np.concatenate(arrays) if arrays else np.zeros(0, np.float32)
    return _ragged_to_flat(values, offsets, validate)


def as_flat_or_stats(data: Any, *, validate: bool) -> Flat | tuple[np.ndarray, ...]:
    """Check ``data`` and lay it out as a :class:`~jaxvi._fit.buckets.Flat`, or as the four
    ``(D,)`` fields ``(n, sum_x, sum_x2, shift)`` when it is already a :class:`SuffStats`.

    Shapes and dtypes are always checked; offsets, lengths and the statistics' values only
    when ``validate``. NaN and inf in the values are left to :func:`check_finite_values`.
    """
    if isinstance(data, SuffStats):
        return _stats_fields(data, validate)
    if isinstance(data, Ragged):
        return _ragged_to_flat(np.asarray(data.values), np.asarray(data.offsets), validate)
    if isinstance(data, Padded):
        return _padded_to_flat(np.asarray(data.x), data.lengths, validate)
    if isinstance(data, (list, tuple)):
        return _sequence_to_flat(data, validate)
    if hasattr(data, "__array__") or hasattr(data, "shape"):
        x = np.asarray(data)
        if x.ndim != 2:
            raise ValueError(
                "fit: an array must be 2-D (datasets, values) of full rows; got shape "
                f"{x.shape}. Wrap one dataset as [x], or use Ragged or Padded"
            )
        return _padded_to_flat(x, None, validate)
    raise TypeError(
        "fit: data must be Ragged, Padded, SuffStats, a sequence of 1-D arrays or a 2-D array; "
        f"got {type(data).__name__}"
    )
