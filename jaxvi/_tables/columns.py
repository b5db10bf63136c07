"""Columns of numbers between Arrow and NumPy, without pyarrow's pandas bridge.

pyarrow converts NumPy arrays to Arrow (``pa.array``) and back (``to_numpy``) through its pandas
conversion, which imports pandas when it is installed: 0.25-0.4 s of CPU and ~50 MB in every
``jaxvi fit`` (measured). Columns of integers and floats need no conversion at all: their
buffers are shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["arrow_numbers", "numbers", "numbers_table"]


def numbers(col: Any) -> np.ndarray:
    """An Arrow array (or chunked array) as NumPy. Integers and floats: a view of its buffer
    when nothing is missing, else float64 with NaN where missing. Other types go
    through ``to_numpy`` (text becomes objects).

    Examples:
        >>> import pyarrow as pa
        >>> numbers(pa.array([1, 2, 3])).tolist(), numbers(pa.array([1.5, None])).tolist()
        ([1, 2, 3], [1.5, nan])
    """
    import pyarrow.types as pat

    if hasattr(col, "combine_chunks"):
        col = col.combine_chunks()
    kind = col.type
    if not (pat.is_integer(kind) or pat.is_floating(kind)):
        return col.to_numpy(zero_copy_only=False)
    dtype = np.dtype(kind.to_pandas_dtype())  # a lookup table: no pandas
    data = col.buffers()[1]
    if data is None:  # no rows
        return np.zeros(len(col), dtype)
    values = np.frombuffer(data, dtype, count=len(col), offset=col.offset * dtype.itemsize)
    if not col.null_count:
        return values
    bits = np.frombuffer(col.buffers()[0], np.uint8)
    valid = np.unpackbits(bits, bitorder="little")[col.offset : col.offset + len(col)]
    return np.where(valid.astype(bool), values.astype(np.float64), np.nan)


def arrow_numbers(values: np.ndarray) -> Any:
    """A 1-D NumPy array of integers or floats as an Arrow array sharing its buffer (a copy
    only when it is not contiguous or not in the machine's byte order); anything else through
    ``pa.array``.

    Examples:
        >>> arrow_numbers(np.array([1.0, 2.5], np.float32)).to_pylist()
        [1.0, 2.5]
    """
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    if not values.dtype.isnative:  # Arrow holds numbers in the machine's byte order
        values = values.astype(values.dtype.newbyteorder("="))
    if values.ndim != 1 or values.dtype.kind not in "iuf":
        return pa.array(values)
    kind = pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def numbers_table(columns: Mapping[str, np.ndarray]) -> Any:
    """An Arrow table of NumPy columns, each through :func:`arrow_numbers`.

    Examples:
        >>> numbers_table({"id": np.array([7, 8]), "x": np.array([0.5, 1.5])}).to_pydict()
        {'id': [7, 8], 'x': [0.5, 1.5]}
    """
    import pyarrow as pa

    return pa.table({k: arrow_numbers(np.asarray(v)) for k, v in columns.items()})
