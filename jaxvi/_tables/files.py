"""Long-format tables in and out: Parquet, CSV and NPZ, written atomically, read in chunks.

A *long* table has one row per observation: a dataset id column and a value column. Ids may be
integers or strings and rows may come in any order; datasets are grouped by id and kept in the
order in which each id **first appears** (for a table sorted by id, that is sorted order).

A *statistics* table has one row per dataset with columns ``dataset_id, n, sum_x, sum_x2``
(and optionally ``shift``, the value the sums are taken about); it is recognised by its columns.

NPZ files hold ``values`` and ``offsets`` (and optionally ``ids``) for long data — or the two
long columns themselves — or ``n, sum_x, sum_x2`` (optionally ``ids``, ``shift``) for
statistics.

Parquet needs pyarrow (the ``cli`` extra); CSV and NPZ need only NumPy.

Every file is written to a temporary name in the destination's directory and renamed into
place once complete, so an interrupted run never leaves a partial file under the real name.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "LongChunk",
    "StatsChunk",
    "TableWriter",
    "atomic_path",
    "group_rows",
    "open_writer",
    "read_chunks",
    "read_table",
    "table_format",
]

PARQUET_HINT = 'pip install "jaxvi[cli]"'
_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".npz": "npz"}
STATS_COLUMNS = ("n", "sum_x", "sum_x2")


def table_format(path: str | os.PathLike) -> str:
    """``'parquet'``, ``'csv'`` or ``'npz'``, from the file name's extension.

    Examples:
        >>> table_format("runs/data.parquet"), table_format("a.CSV"), table_format("b.npz")
        ('parquet', 'csv', 'npz')
    """
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMATS:
        raise ValueError(
            f"{path}: unknown table format {suffix or '(no extension)'!r}; "
            "use .parquet, .csv or .npz"
        )
    return _FORMATS[suffix]


def _pyarrow(path: str | os.PathLike):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(
            f"{path}: Parquet needs pyarrow, which is not installed; {PARQUET_HINT} "
            "(or use .csv / .npz)"
        ) from None
    return pa, pq


# --------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class LongChunk:
    """Datasets stored back to back (the :class:`~jaxvi.Ragged` layout) with their ids.

    Attributes:
        ids: ``(D,)`` int64 or str ids, in first-appearance order.
        values: ``(M,)`` float observations, dataset after dataset.
        offsets: ``(D + 1,)`` int64; dataset ``d`` is ``values[offsets[d]:offsets[d + 1]]``.
    """

    ids: np.ndarray
    values: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class StatsChunk:
    """Precomputed sufficient statistics, one entry per dataset; all fields ``(D,)``."""

    ids: np.ndarray
    n: np.ndarray
    sum_x: np.ndarray
    sum_x2: np.ndarray
    shift: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def _check_nonempty(path: Path) -> None:
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, expected a file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: file is empty")


def _as_ids(raw: np.ndarray, path: Path, column: str) -> np.ndarray:
    """int64 or str ids; floats, bools and missing values are refused."""
    if raw.dtype.kind in "iu":
        return raw.astype(np.int64, copy=False)
    if raw.dtype.kind in "UO":
        if raw.dtype.kind == "O":
            bad = np.flatnonzero([not isinstance(v, str) for v in raw])
            if bad.size:
                raise ValueError(
                    f"{path}: column {column!r} data row {bad[0] + 1}: missing or non-text id "
                    f"{_show(raw[bad[0]])}"
                )
        return raw.astype(str)
    raise ValueError(
        f"{path}: column {column!r} must hold integer or string ids, not {raw.dtype} values"
    )


def _show(value: Any) -> str:
    """A value as the user wrote it: ``7``, ``'a'``, ``nan`` (not ``np.int64(7)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _as_numbers(
    raw: np.ndarray, path: Path, column: str, ids: np.ndarray | None, row0: int = 0
) -> np.ndarray:
    """float values; text and non-finite values are refused naming the dataset id and row."""
    if raw.dtype.kind in "iub":
        return raw.astype(np.float64)
    if raw.dtype.kind != "f":
        raise ValueError(f"{path}: column {column!r} is not numeric ({raw.dtype} values)")
    bad = ~np.isfinite(raw)
    if bad.any():
        row = int(np.argmax(bad))
        where = f"dataset {_show(ids[row])}" if ids is not None else "a row"
        raise ValueError(
            f"{path}: {where} has a non-finite {column} = {_show(raw[row])} "
            f"(data row {row0 + row + 1})"
        )
    return raw


def _parse_numbers(texts: list[str], path: Path, column: str, ids: np.ndarray) -> np.ndarray:
    try:
        return np.array(texts, dtype=np.float64)
    except ValueError:
        for row, text in enumerate(texts):
            try:
                float(text)
            except ValueError:
                raise ValueError(
                    f"{path}: dataset {_show(ids[row])} has a non-numeric {column} = {text!r} "
                    f"(data row {row + 1})"
                ) from None
        raise  # pragma: no cover - np.array and float() agree on what parses


def _read_csv_columns(path: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Column texts of a CSV file with a header row; ``# key=value`` lines are metadata."""
    meta: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        lines = (line for line in fh if not (line.startswith("#") and _meta(line, meta)))
        reader = csv.reader(lines)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}: file is empty (no header row)")
        header = [h.strip() for h in header]
        cols: list[list[str]] = [[] for _ in header]
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(
                    f"{path}: data row {lineno - 1} has {len(row)} fields, the header has "
                    f"{len(header)}"
                )
            for col, text in zip(cols, row, strict=True):
                col.append(text.strip())
    return dict(zip(header, cols, strict=True)), meta


def _meta(line: str, meta: dict[str, str]) -> bool:
    key, sep, value = line[1:].strip().partition("=")
    if sep:
        meta[key.strip()] = value.strip()
    return True


def _csv_ids(texts: list[str], path: Path, column: str) -> np.ndarray:
    try:
        return np.array(texts, dtype=np.int64)
    except ValueError:
        if any(t == "" for t in texts):
            raise ValueError(
                f"{path}: column {column!r} data row {texts.index('') + 1}: missing id"
            ) from None
        return np.array(texts, dtype=str)


def _require(columns, wanted: tuple[str, ...], path: Path) -> None:
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise ValueError(
            f"{path}: missing column {missing[0]!r} "
            f"(found: {', '.join(map(str, columns)) or 'none'})"
        )


def _is_stats(columns, value_column: str) -> bool:
    return value_column not in columns and all(c in columns for c in STATS_COLUMNS)


def read_table(
    path: str | os.PathLike, *, id_column: str = "dataset_id", value_column: str = "x"
) -> LongChunk | StatsChunk:
    """Read a whole long or statistics table into memory, grouped by dataset.

    Args:
        path: a ``.parquet``, ``.csv`` or ``.npz`` file.
        id_column: name of the dataset id column.
        value_column: name of the observation column (long tables).

    Returns:
        :class:`LongChunk` for a long table, :class:`StatsChunk` for a statistics table.

    Raises:
        ValueError: one line naming the file and the column, row or dataset at fault.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "d.csv"
        >>> _ = path.write_text("dataset_id,x\\nb,1.5\\na,2\\nb,0.5\\n")
        >>> t = read_table(path)
        >>> t.ids.tolist(), t.values.tolist(), t.offsets.tolist()
        (['b', 'a'], [1.5, 0.5, 2.0], [0, 2, 3])
    """
    path = Path(path)
    fmt = table_format(path)
    _check_nonempty(path)
    if fmt == "npz":
        return _read_npz(path, id_column, value_column)
    if fmt == "csv":
        cols, _ = _read_csv_columns(path)
        stats = _is_stats(cols, value_column)
        _require(cols, (id_column, *STATS_COLUMNS) if stats else (id_column, value_column), path)
        ids = _csv_ids(cols[id_column], path, id_column)
        if not len(ids):
            raise ValueError(f"{path}: no data rows")
        if stats:
            num = {
                c: _parse_numbers(cols[c], path, c, ids)
                for c in (*STATS_COLUMNS, "shift")
                if c in cols
            }
            return _stats_chunk(ids, num, path)
        values = _parse_numbers(cols[value_column], path, value_column, ids)
        return group_rows(ids, _as_numbers(values, path, value_column, ids))
    _, pq = _pyarrow(path)
    table = _open_parquet(path, pq).read()
    return _table_to_chunk(table, path, id_column, value_column)


def _open_parquet(path: Path, pq):
    try:
        return pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ... for a corrupt file
        raise ValueError(f"{path}: not a readable Parquet file ({_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _column(table, name: str, path: Path, row0: int = 0) -> np.ndarray:
    col = table.column(name)
    if col.null_count:
        row = row0 + int(np.flatnonzero(np.asarray(col.is_null()))[0])
        raise ValueError(f"{path}: column {name!r} data row {row + 1}: missing value")
    return col.to_numpy()


def _table_to_chunk(table, path: Path, id_column: str, value_column: str):
    names = table.column_names
    stats = _is_stats(names, value_column)
    _require(names, (id_column, *STATS_COLUMNS) if stats else (id_column, value_column), path)
    if table.num_rows == 0:
        raise ValueError(f"{path}: no data rows")
    ids = _as_ids(_column(table, id_column, path), path, id_column)
    if stats:
        num = {c: _column(table, c, path) for c in (*STATS_COLUMNS, "shift") if c in names}
        return _stats_chunk(ids, num, path)
    values = _as_numbers(_column(table, value_column, path), path, value_column, ids)
    return group_rows(ids, values)


def _stats_chunk(ids: np.ndarray, num: Mapping[str, np.ndarray], path: Path) -> StatsChunk:
    cols = {c: _as_numbers(np.asarray(v), path, c, ids) for c, v in num.items()}
    n = cols["n"]
    bad = (n < 0) | (n != np.round(n))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{path}: dataset {_show(ids[i])} has n = {_show(n[i])}; need an integer >= 0"
        )
    if cols["sum_x2"].min() < 0:
        i = int(np.argmin(cols["sum_x2"]))
        raise ValueError(
            f"{path}: dataset {_show(ids[i])} has sum_x2 = {_show(cols['sum_x2'][i])} < 0"
        )
    # Σ(x − c)² ≥ (Σ(x − c))²/n for any data; allow for the rounding of sums made elsewhere.
    with np.errstate(divide="ignore", invalid="ignore"):
        floor = np.where(n > 0, cols["sum_x"] ** 2 / n, 0.0)
    impossible = (cols["sum_x2"] < floor * (1 - 1e-4)) | ((n == 0) & (cols["sum_x"] != 0))
    if impossible.any():
        i = int(np.argmax(impossible))
        raise ValueError(
            f"{path}: dataset {_show(ids[i])} has sum_x = {_show(cols['sum_x'][i])} and "
            f"sum_x2 = {_show(cols['sum_x2'][i])} with n = {_show(n[i])}: no data have these sums "
            "(need sum_x2 >= sum_x**2 / n)"
        )
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(
            f"{path}: dataset {_show(uniq[np.argmax(counts > 1)])} appears more than once in a "
            "statistics table"
        )
    shift = cols.get("shift", np.zeros_like(n))
    return StatsChunk(ids, n, cols["sum_x"], cols["sum_x2"], shift)


def _read_npz(path: Path, id_column: str, value_column: str) -> LongChunk | StatsChunk:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except Exception as err:  # zipfile.BadZipFile, ValueError, OSError, ...
        raise ValueError(f"{path}: not a readable NPZ file ({_first_line(err)})") from None
    if "values" not in arrays and id_column in arrays and value_column in arrays:
        # A long table stored column by column.
        ids = _as_ids(arrays[id_column], path, id_column)
        values = arrays[value_column]
        if ids.ndim != 1 or ids.shape != values.shape or not len(ids):
            raise ValueError(
                f"{path}: {id_column!r} {ids.shape} and {value_column!r} {values.shape} must be "
                "1-D, non-empty and of one length"
            )
        return group_rows(ids, _as_numbers(values, path, value_column, ids))
    if all(k in arrays for k in STATS_COLUMNS) and "values" not in arrays:
        n = arrays["n"]
        ids = _as_ids(arrays.get("ids", np.arange(len(n))), path, "ids")
        if not len(ids):
            raise ValueError(f"{path}: no datasets")
        num = {k: arrays[k] for k in (*STATS_COLUMNS, "shift") if k in arrays}
        shapes = {k: v.shape for k, v in num.items()}
        if any(s != ids.shape for s in shapes.values()):
            raise ValueError(f"{path}: arrays {shapes} and ids {ids.shape} differ in shape")
        return _stats_chunk(ids, num, path)
    _require(arrays, ("values", "offsets"), path)
    values, offsets = arrays["values"], arrays["offsets"]
    if values.ndim != 1 or offsets.ndim != 1 or offsets.dtype.kind not in "iu":
        raise ValueError(
            f"{path}: need 1-D 'values' and 1-D integer 'offsets'; got {values.shape} "
            f"{values.dtype} and {offsets.shape} {offsets.dtype}"
        )
    offsets = offsets.astype(np.int64)
    num = len(offsets) - 1
    if num < 1:
        raise ValueError(f"{path}: 'offsets' must hold at least 2 entries (one dataset)")
    if offsets[0] != 0 or offsets[-1] != len(values) or (np.diff(offsets) < 0).any():
        raise ValueError(
            f"{path}: 'offsets' must start at 0, never decrease and end at len(values) = "
            f"{len(values)}; got {offsets[0]} ... {offsets[-1]}"
        )
    ids = _as_ids(arrays.get("ids", np.arange(num)), path, "ids")
    if ids.shape != (num,):
        raise ValueError(f"{path}: 'ids' has shape {ids.shape}, expected ({num},)")
    if len(np.unique(ids)) != num:
        raise ValueError(f"{path}: 'ids' holds duplicates")
    row_ids = np.repeat(ids, np.diff(offsets))
    return LongChunk(ids, _as_numbers(values, path, "values", row_ids), offsets)


def group_rows(ids: np.ndarray, values: np.ndarray) -> LongChunk:
    """Group a long table's rows by id, datasets in first-appearance order, rows stable.

    Args:
        ids: ``(M,)`` int or str dataset id per row.
        values: ``(M,)`` observations.

    Returns:
        :class:`LongChunk` with ``D`` distinct ids.

    Examples:
        >>> g = group_rows(np.array([7, 3, 7, 5]), np.array([1.0, 2.0, 3.0, 4.0]))
        >>> g.ids.tolist(), g.values.tolist(), g.offsets.tolist()
        ([7, 3, 5], [1.0, 3.0, 2.0, 4.0], [0, 2, 3, 4])
    """
    if not len(ids):
        return LongChunk(ids, values, np.zeros(1, np.int64))
    if (ids[1:] >= ids[:-1]).all():  # sorted: every dataset is one run
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        return LongChunk(ids[starts], values, np.r_[starts, len(ids)].astype(np.int64))
    # One stable sort groups the rows and keeps their order inside each group; the groups
    # (blocks of the sorted rows) are then laid out again by first appearance.
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    counts = np.diff(np.r_[starts, len(ids)])
    by_first = np.argsort(order[starts], kind="stable")
    new_counts = counts[by_first]
    offsets = np.r_[0, np.cumsum(new_counts)].astype(np.int64)
    gather = np.repeat(starts[by_first] - offsets[:-1], new_counts) + np.arange(len(ids))
    return LongChunk(sorted_ids[starts][by_first], values[order[gather]], offsets)


class NotSorted(Exception):
    """Raised while streaming when ids are not sorted; the caller falls back to memory."""


def read_chunks(
    path: str | os.PathLike,
    chunk_size: int,
    *,
    id_column: str = "dataset_id",
    value_column: str = "x",
    batch_rows: int = 1 << 16,
    stream: bool = True,
) -> tuple[int, Iterator[tuple[LongChunk | StatsChunk, int]]]:
    """Chunks of at most ``chunk_size`` whole datasets, and the total number of input rows.

    A long Parquet table whose ids are sorted is *streamed*: record batches of ``batch_rows``
    rows are read one at a time and cut at dataset boundaries, so memory holds about one chunk.
    The iterator raises :class:`NotSorted` at the first id out of order (before yielding any
    chunk that it could not complete); every other input is read whole and then cut.

    Returns:
        ``(total_rows, iterator)``; the iterator yields ``(chunk, rows_consumed)``.
    """
    path = Path(path)
    fmt = table_format(path)
    if stream and fmt == "parquet":
        _check_nonempty(path)
        _, pq = _pyarrow(path)
        pf = _open_parquet(path, pq)
        names = pf.schema_arrow.names
        if not _is_stats(names, value_column):
            _require(names, (id_column, value_column), path)
            if pf.metadata.num_rows == 0:
                raise ValueError(f"{path}: no data rows")
            it = _stream_parquet(pf, path, chunk_size, id_column, value_column, batch_rows)
            return pf.metadata.num_rows, it
    table = read_table(path, id_column=id_column, value_column=value_column)
    rows = int(table.offsets[-1]) if isinstance(table, LongChunk) else len(table)
    return rows, _cut(table, chunk_size)


def _cut(table: LongChunk | StatsChunk, chunk_size: int):
    for lo in range(0, len(table), chunk_size):
        hi = min(lo + chunk_size, len(table))
        if isinstance(table, StatsChunk):
            part = StatsChunk(
                *(f[lo:hi] for f in (table.ids, table.n, table.sum_x, table.sum_x2, table.shift))
            )
            yield part, hi - lo
        else:
            a, b = table.offsets[lo], table.offsets[hi]
            yield (
                LongChunk(table.ids[lo:hi], table.values[a:b], table.offsets[lo : hi + 1] - a),
                b - a,
            )


def _batches(pf, batch_rows: int, columns: list[str]):
    # One iterator per row group: a single iterator over the whole file keeps buffers alive
    # and grows by about the file's size (pyarrow 26), while this stays at one row group.
    for group in range(pf.metadata.num_row_groups):
        yield from pf.iter_batches(batch_size=batch_rows, row_groups=[group], columns=columns)


def _stream_parquet(
    pf, path: Path, chunk_size: int, id_column: str, value_column: str, batch_rows: int
):
    pend_ids: list[np.ndarray] = []
    pend_vals: list[np.ndarray] = []
    open_datasets = 0  # distinct ids in the pending rows
    last = None
    rows_seen = 0
    for batch in _batches(pf, batch_rows, [id_column, value_column]):
        ids = _as_ids(_column(batch, id_column, path, rows_seen), path, id_column)
        vals = _as_numbers(
            _column(batch, value_column, path, rows_seen), path, value_column, ids, rows_seen
        )
        if not len(ids):
            continue
        if (last is not None and ids[0] < last) or (ids[1:] < ids[:-1]).any():
            raise NotSorted(path)
        changes = int((ids[1:] != ids[:-1]).sum())
        open_datasets += changes + (0 if last is not None and ids[0] == last else 1)
        last = ids[-1]
        pend_ids.append(ids)
        pend_vals.append(vals)
        rows_seen += len(ids)
        # Keep the last (maybe unfinished) dataset pending; emit full chunks before it.
        while open_datasets > chunk_size:
            all_ids = np.concatenate(pend_ids)
            all_vals = np.concatenate(pend_vals)
            starts = np.flatnonzero(np.r_[True, all_ids[1:] != all_ids[:-1]])
            cut = starts[chunk_size]
            chunk = LongChunk(
                all_ids[starts[:chunk_size]],
                all_vals[:cut],
                np.r_[starts[:chunk_size], cut].astype(np.int64),
            )
            pend_ids, pend_vals = [all_ids[cut:]], [all_vals[cut:]]
            open_datasets -= chunk_size
            yield chunk, cut
    if pend_ids:
        all_ids = np.concatenate(pend_ids)
        all_vals = np.concatenate(pend_vals)
        starts = np.flatnonzero(np.r_[True, all_ids[1:] != all_ids[:-1]])
        yield (
            LongChunk(all_ids[starts], all_vals, np.r_[starts, len(all_ids)].astype(np.int64)),
            len(all_ids),
        )


# --------------------------------------------------------------------------------------------
# Writing


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto it only when the block succeeds.

    The temporary file lives in the destination's directory so that :func:`os.replace` is an
    atomic rename on the same file system. On any exception it is removed; after ``SIGKILL``
    a hidden ``.NAME.*.tmp`` file may remain, but never a partial file under ``NAME``.

    Examples:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "r.txt"
        >>> with atomic_path(out) as tmp:
        ...     _ = tmp.write_text("done")
        >>> out.read_text()
        'done'
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, expected an output file name")
    if not path.parent.is_dir():
        raise ValueError(f"{path}: directory {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the permissions open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class TableWriter:
    """Appends column chunks to a table file; :meth:`close` finishes it.

    Args:
        path: where to write (``.parquet``, ``.csv`` or ``.npz``); usually a temporary path
            from :func:`atomic_path`.
        fmt: the format; from ``path``'s extension when ``None``.
        metadata: ``str → str`` pairs kept in the Parquet schema metadata, as ``# key=value``
            lines at the top of a CSV file, and as 0-d string arrays in an NPZ file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fmt: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ):
        self.path = Path(path)
        self.fmt = fmt or table_format(path)
        self.metadata = dict(metadata or {})
        self._parts: dict[str, list[np.ndarray]] = {}
        self._writer: Any = None
        self._csv: Any = None
        if self.fmt == "parquet":
            self._pa, self._pq = _pyarrow(path)

    def write(self, columns: Mapping[str, np.ndarray]) -> None:
        """Append rows; every call passes the same columns, each ``(rows,)``."""
        if self.fmt == "npz":
            for k, v in columns.items():
                self._parts.setdefault(k, []).append(np.asarray(v))
        elif self.fmt == "parquet":
            table = self._pa.table({k: np.asarray(v) for k, v in columns.items()})
            if self._writer is None:
                schema = table.schema.with_metadata(self.metadata)
                self._writer = self._pq.ParquetWriter(self.path, schema)
            self._writer.write_table(table.replace_schema_metadata(self.metadata))
        else:
            self._write_csv(columns)

    def _write_csv(self, columns: Mapping[str, np.ndarray]) -> None:
        if self._csv is None:
            self._csv = open(self.path, "w", encoding="utf-8", newline="")
            for k, v in self.metadata.items():
                self._csv.write(f"# {k}={v}\n")
            self._csv.write(",".join(columns) + "\n")
        texts = [_format_column(np.asarray(v)) for v in columns.values()]
        self._csv.writelines(",".join(row) + "\n" for row in zip(*texts, strict=True))

    def abort(self) -> None:
        """Release the file without finishing it (the caller discards it)."""
        with contextlib.suppress(Exception):
            if self._writer is not None:
                self._writer.close()
            if self._csv is not None:
                self._csv.close()

    def close(self) -> None:
        """Finish the file (flush and close it)."""
        if self.fmt == "npz":
            arrays = {k: np.concatenate(v) for k, v in self._parts.items()}
            clash = set(arrays) & set(self.metadata)
            if clash:
                raise ValueError(f"metadata keys {sorted(clash)} clash with column names")
            arrays.update({k: np.array(v) for k, v in self.metadata.items()})
            with open(self.path, "wb") as fh:
                np.savez(fh, **arrays)
        elif self._writer is not None:
            self._writer.close()
        elif self._csv is not None:
            self._csv.close()


def _format_column(v: np.ndarray) -> list[str]:
    if v.dtype.kind in "iuf":
        # NumPy prints the shortest text that reads back as the same value in v's own dtype.
        return v.astype(str).tolist()
    return [_quote(str(x)) for x in v]


def _quote(text: str) -> str:
    if any(c in text for c in ',"\n\r') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def open_writer(path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> TableWriter:
    """A :class:`TableWriter` for ``path`` (its format from the extension)."""
    return TableWriter(path, table_format(path), metadata)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata written by :class:`TableWriter` (``{}`` when there is none)."""
    path = Path(path)
    fmt = table_format(path)
    _check_nonempty(path)
    if fmt == "parquet":
        _, pq = _pyarrow(path)
        raw = _open_parquet(path, pq).schema_arrow.metadata or {}
        return {k.decode(): v.decode() for k, v in raw.items() if not k.startswith(b"ARROW")}
    if fmt == "csv":
        return _read_csv_columns(path)[1]
    with np.load(path, allow_pickle=False) as archive:
        return {k: str(archive[k]) for k in archive.files if archive[k].ndim == 0}


def read_columns(path: str | os.PathLike, wanted: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Whole columns of a one-row-per-dataset table (results or truth), ids kept as read.

    Raises:
        ValueError: naming the file and the first missing column.
    """
    path = Path(path)
    fmt = table_format(path)
    _check_nonempty(path)
    if fmt == "parquet":
        _, pq = _pyarrow(path)
        table = _open_parquet(path, pq).read()
        _require(table.column_names, wanted, path)
        cols = {c: _column(table, c, path) for c in wanted}
    elif fmt == "csv":
        texts, _ = _read_csv_columns(path)
        _require(texts, wanted, path)
        ids = _csv_ids(texts[wanted[0]], path, wanted[0])
        cols = {wanted[0]: ids}
        cols.update({c: _parse_numbers(texts[c], path, c, ids) for c in wanted[1:]})
    else:
        with np.load(path, allow_pickle=False) as archive:
            _require(archive.files, wanted, path)
            cols = {c: archive[c] for c in wanted}
    if not len(cols[wanted[0]]):
        raise ValueError(f"{path}: no data rows")
    cols[wanted[0]] = _as_ids(np.asarray(cols[wanted[0]]), path, wanted[0])
    return cols
