"""Tables read back whole: the metadata written with a table, and the columns of a
one-row-per-dataset table (results, or a simulation's truth), for the report.

Parquet, CSV and JSON are read through DuckDB (:mod:`jaxvi._tables.sources`), NPZ with NumPy;
every failure is one line naming the file. The writers are in :mod:`jaxvi._results.files`.
Nothing here imports JAX.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from jaxvi._results.files import output_format, sidecar_path
from jaxvi._tables.columns import numbers
from jaxvi._tables.engine import arrow_table, connect, quote
from jaxvi._tables.sources import file_format, open_source

__all__ = ["check_file", "npz_archive", "read_columns", "read_metadata"]


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata written with a table (``{}`` when there is none): Parquet key-value
    metadata, a CSV file's JSON sidecar, an NPZ file's 0-d string arrays."""
    path = Path(path)
    fmt = output_format(path)
    check_file(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            raw = pq.read_schema(path).metadata or {}
        except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ... for a bad file
            raise ValueError(f"{path}: not a readable Parquet file ({_first_line(err)})") from None
        return {k.decode(): v.decode() for k, v in raw.items() if not k.startswith(b"ARROW")}
    if fmt == "csv":
        side = sidecar_path(path)
        if not side.exists():
            return {}
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ValueError(f"{side}: not readable JSON ({_first_line(err)})") from None
        return {str(k): str(v) for k, v in meta.items()}
    with npz_archive(path) as archive:
        return {k: str(archive[k]) for k in archive.files if archive[k].ndim == 0}


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def check_file(path: Path) -> None:
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, expected a file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: file is empty")


@contextlib.contextmanager
def npz_archive(path: Path) -> Iterator[Any]:
    if not zipfile.is_zipfile(path):  # np.load would try it as a pickle, or as one .npy array
        raise ValueError(f"{path}: not an NPZ file (a zip of .npy arrays, as numpy.savez writes)")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as err:  # zipfile.BadZipFile, ValueError, OSError, ...
        raise ValueError(f"{path}: not a readable NPZ file ({_first_line(err)})") from None
    with archive:
        yield archive


def read_columns(path: str | os.PathLike, wanted: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Whole columns of a one-row-per-dataset table (results, or a simulation's truth), in
    the file's row order.

    Args:
        path: a Parquet, CSV, JSON or NPZ file.
        wanted: column names; the first is the id column, returned as int64 or str.

    Raises:
        ValueError: naming the file and the first missing column, or a missing value.
    """
    path = Path(path)
    if file_format(path) == "npz":
        check_file(path)
        with npz_archive(path) as archive:
            missing = [c for c in wanted if c not in archive.files]
            if missing:
                raise ValueError(
                    f"{path}: missing column {missing[0]!r} (found: {', '.join(archive.files)})"
                )
            cols = {c: archive[c] for c in wanted}
    else:
        with contextlib.closing(connect(keep_order=True)) as con:
            src = open_source(con, path)
            missing = [c for c in wanted if c not in src.columns]
            if missing:
                found = ", ".join(src.columns)
                raise ValueError(f"{path}: missing column {missing[0]!r} (found: {found})")
            names = ", ".join(quote(c) for c in wanted)
            sql = src.sql(f"SELECT {names} FROM {{src}}")
            arrow = arrow_table(con, sql, src.params, src.label)
        cols = {}  # Arrow's buffers outlive the connection
        for c in wanted:
            col = arrow.column(c)
            if col.null_count:
                raise ValueError(f"{path}: column {c!r} has a missing value")
            cols[c] = numbers(col)
    if not len(cols[wanted[0]]):
        raise ValueError(f"{path}: no data rows")
    ids = np.asarray(cols[wanted[0]])
    cols[wanted[0]] = ids.astype(np.int64) if ids.dtype.kind in "iu" else ids.astype(str)
    return cols
