"""NPZ input: the ragged layout (``values``, ``offsets``, optional ``ids``), a long table's two
columns, or statistics (``n``, ``sum_x``, ``sum_x2``, optional ``ids``, ``shift``), turned into
an Arrow table that :func:`jaxvi.fit_table` reads. The ragged layout's statistics are made
here, in float64, by the native kernel's host function (one pass on every core; NumPy's
``add.reduceat`` where it is not available), since a long table cannot hold an empty dataset
(empty datasets are kept: their posterior is the prior).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from jaxvi._results.read_back import check_file, npz_archive
from jaxvi._stats import native
from jaxvi._tables.columns import numbers_table
from jaxvi._tables.engine import require
from jaxvi._tables.statistics import STATS_COLUMNS, show

__all__ = ["read_npz"]


def _ragged_statistics(values: np.ndarray, offsets: np.ndarray) -> dict[str, np.ndarray]:
    """``n``, ``sum_x``, ``sum_x2``, ``shift`` of each dataset, about its first value, in
    float64 (empty datasets: zeros), for float64 ``values``."""
    lengths = np.diff(offsets)
    kernel = native.host_kernel()
    if kernel is not None:
        n, shift, sum_x, sum_x2 = kernel.window_stats(values, offsets[:-1], lengths)
        return {"n": n, "sum_x": sum_x, "sum_x2": sum_x2, "shift": shift}
    return _reduceat_statistics(values, offsets, lengths)


def _reduceat_statistics(
    values: np.ndarray, offsets: np.ndarray, lengths: np.ndarray
) -> dict[str, np.ndarray]:
    nonempty = lengths > 0
    shift = np.zeros(len(lengths))
    shift[nonempty] = values[offsets[:-1][nonempty]]
    y = values - np.repeat(shift, lengths)
    sums = np.zeros((2, len(lengths)))
    starts = offsets[:-1][nonempty]
    if starts.size:
        sums[0, nonempty] = np.add.reduceat(y, starts)
        sums[1, nonempty] = np.add.reduceat(y * y, starts)
    return {"n": lengths.astype(np.float64), "sum_x": sums[0], "sum_x2": sums[1], "shift": shift}


def read_npz(path: str | os.PathLike, *, id: str = "dataset_id", x: str = "x") -> Any:
    """An NPZ input as an Arrow table that :func:`jaxvi.fit_table` reads.

    * ``values``, ``offsets`` (and ``ids``): the ragged layout, turned into a statistics
      table here (empty datasets are kept: their posterior is the prior);
    * ``id`` and ``x`` arrays: a long table;
    * ``n``, ``sum_x``, ``sum_x2`` (and ``ids``, ``shift``): a statistics table.

    Raises:
        ValueError: naming the file and what is wrong with its arrays.
    """
    require("pyarrow")  # a missing pyarrow is named before any work
    path = Path(path)
    check_file(path)
    with npz_archive(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    if "values" not in arrays and id in arrays and x in arrays:
        if arrays[id].ndim != 1 or arrays[id].shape != arrays[x].shape:
            raise ValueError(
                f"{path}: {id!r} {arrays[id].shape} and {x!r} {arrays[x].shape} must be 1-D "
                "and of one length"
            )
        return numbers_table({id: arrays[id], x: arrays[x]})
    if "values" not in arrays and all(k in arrays for k in STATS_COLUMNS):
        num = arrays["n"].shape[0]
        ids = arrays.get("ids", np.arange(num))
        cols = {k: arrays[k] for k in (*STATS_COLUMNS, "shift") if k in arrays}
        shapes = {k: v.shape for k, v in cols.items()}
        if any(s != ids.shape for s in shapes.values()):
            raise ValueError(f"{path}: arrays {shapes} and ids {ids.shape} differ in shape")
        return numbers_table({"dataset_id": ids, **cols})
    missing = [k for k in ("values", "offsets") if k not in arrays]
    if missing:
        raise ValueError(f"{path}: missing array {missing[0]!r} (found: {', '.join(arrays)})")
    values, offsets = arrays["values"], arrays["offsets"]
    if values.ndim != 1 or offsets.ndim != 1 or offsets.dtype.kind not in "iu":
        raise ValueError(
            f"{path}: need 1-D 'values' and 1-D integer 'offsets'; got {values.shape} "
            f"{values.dtype} and {offsets.shape} {offsets.dtype}"
        )
    if values.dtype.kind not in "biuf":
        raise ValueError(f"{path}: 'values' must hold numbers, not {values.dtype}")
    offsets = offsets.astype(np.int64)
    num = len(offsets) - 1
    if num < 1:
        raise ValueError(f"{path}: 'offsets' must hold at least 2 entries (one dataset)")
    if offsets[0] != 0 or offsets[-1] != len(values) or (np.diff(offsets) < 0).any():
        raise ValueError(
            f"{path}: 'offsets' must start at 0, never decrease and end at len(values) = "
            f"{len(values)}; got {offsets[0]} ... {offsets[-1]}"
        )
    ids = arrays.get("ids", np.arange(num))
    if ids.shape != (num,):
        raise ValueError(f"{path}: 'ids' has shape {ids.shape}, expected ({num},)")
    if num > 1 and not (ids[1:] > ids[:-1]).all():  # increasing ids are distinct; else look
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            twice = unique[int(np.argmax(counts > 1))]
            raise ValueError(f"{path}: dataset {show(twice)} appears more than once in 'ids'")
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argmax(bad))
        d = int(np.searchsorted(offsets, row, side="right")) - 1
        raise ValueError(
            f"{path}: dataset {show(ids[d])} has a non-finite value = {show(values[row])}"
        )
    stats = _ragged_statistics(values.astype(np.float64), offsets)
    return numbers_table({"dataset_id": ids, **stats})
