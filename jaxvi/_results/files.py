"""Files out: Parquet, CSV and NPZ, written atomically (read back: :mod:`jaxvi._results.read_back`).

* **Parquet** keeps the run's metadata (λ, σ, the dtype, jaxvi's version, the input) in its
  key-value metadata.
* **CSV** is plain, so that every reader takes it with its defaults: one header line, then
  rows. Its metadata go in a JSON sidecar beside it, ``NAME.csv.json``.
* **NPZ** holds one array per column and the metadata as 0-d string arrays (NPZ input:
  :mod:`jaxvi._results.npz`).

Every file is written under a temporary name in its folder and renamed into place once
complete, so an interrupted or failed run never leaves a partial file under the real name.
Nothing here imports JAX.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxvi._results.atomic import atomic_path, write_error
from jaxvi._tables.columns import numbers, numbers_table
from jaxvi._tables.engine import require
from jaxvi._tables.sources import file_format

__all__ = ["OUTPUT_FORMATS", "TableWriter", "output_format", "output_table", "sidecar_path"]

OUTPUT_FORMATS = ("parquet", "csv", "npz")


def output_format(path: str | os.PathLike) -> str:
    """``'parquet'``, ``'csv'`` or ``'npz'``, from an output file name's ending.

    Examples:
        >>> output_format("runs/results.parquet"), output_format("a.CSV")
        ('parquet', 'csv')
    """
    fmt = file_format(path)
    if fmt not in OUTPUT_FORMATS or Path(path).suffix.lower() in (".gz", ".zst"):
        raise ValueError(
            f"{path}: unknown output format {Path(path).suffix or '(no extension)'!r}; use "
            ".parquet, .csv or .npz"
        )
    return str(fmt)


def sidecar_path(path: str | os.PathLike) -> Path:
    """Where a CSV file's metadata go: ``results.csv`` → ``results.csv.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


class TableWriter:
    """Appends rows to a table file; :meth:`close` finishes it.

    Args:
        path: where to write; usually a temporary path from :func:`atomic_path`.
        fmt: ``'parquet'``, ``'csv'`` or ``'npz'``.
        metadata: ``str → str`` pairs: Parquet key-value metadata, NPZ 0-d arrays. A CSV file
            carries none (:func:`output_table` writes its sidecar).
        dictionary: Parquet columns to dictionary-encode (a long table's repeated ids). Other
            columns are not: on floats and unique ids, trying a dictionary made writing 7×
            slower and the file larger (pyarrow 26).
        behind: write on a thread of its own, at most two batches behind the caller, so that
            encoding and compressing a batch overlaps with computing the next (Arrow's
            writers release the GIL). An error on that thread is raised by the next
            :meth:`write` or by :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fmt: str,
        metadata: Mapping[str, str] | None,
        dictionary: tuple[str, ...] = (),
        behind: bool = False,
    ):
        self.path = Path(path)
        self.dictionary = list(dictionary)
        self.fmt = fmt
        self.metadata = {k: str(v) for k, v in (metadata or {}).items()}
        self._parts: dict[str, list[np.ndarray]] = {}
        self._writer: Any = None
        self.rows = 0
        self._behind = behind and fmt != "npz"  # NPZ only gathers arrays until close
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def write(self, columns: Any) -> None:
        """Append rows: an Arrow record batch or table, or a mapping of name → ``(rows,)``
        array. Every call passes the same columns."""
        if not self._behind:
            self._write(columns, self.metadata)
            return
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._drain, name="jaxvi-writer")
            self._thread.start()
        self._queue.put((columns, dict(self.metadata)))  # waits while two batches are queued

    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:  # after an error, only empty the queue
                try:
                    self._write(*item)
                except BaseException as err:
                    self._error = err

    def _join(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _write(self, columns: Any, metadata: Mapping[str, str]) -> None:
        if self.fmt == "npz":
            if not isinstance(columns, Mapping):
                columns = {
                    name: numbers(col)
                    for name, col in zip(columns.schema.names, columns.columns, strict=True)
                }
            for k, v in columns.items():
                v = np.asarray(v)  # text comes out of Arrow as objects; NPZ keeps it as str
                self._parts.setdefault(k, []).append(v.astype(str) if v.dtype == object else v)
            self.rows += len(next(iter(columns.values())))
            return
        require("pyarrow")
        if isinstance(columns, Mapping):
            columns = numbers_table(columns)
        if self._writer is None:
            self._writer = self._open(columns.schema, metadata)
        self._writer.write(columns)
        self.rows += columns.num_rows

    def _open(self, schema: Any, metadata: Mapping[str, str]) -> Any:
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetWriter(
                self.path, schema.with_metadata(metadata), use_dictionary=self.dictionary
            )
        import pyarrow.csv as pcsv

        return pcsv.CSVWriter(
            self.path, schema, write_options=pcsv.WriteOptions(quoting_style="needed")
        )

    def abort(self) -> None:
        """Release the file without finishing it (the caller discards it)."""
        self._join()
        with contextlib.suppress(Exception):
            if self._writer is not None:
                self._writer.close()

    def close(self) -> None:
        """Finish the file (after the batches still queued)."""
        self._join()
        self._raise()
        if self.fmt == "npz":
            arrays = {k: np.concatenate(v) for k, v in self._parts.items()}
            clash = set(arrays) & set(self.metadata)
            if clash:
                raise ValueError(f"metadata keys {sorted(clash)} clash with column names")
            arrays.update({k: np.array(v) for k, v in self.metadata.items()})
            with open(self.path, "wb") as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]
        elif self._writer is not None:
            self._writer.close()
        else:
            self.path.write_bytes(b"")


@contextlib.contextmanager
def output_table(
    path: str | os.PathLike,
    metadata: Mapping[str, str] | None = None,
    dictionary: tuple[str, ...] = (),
    behind: bool = False,
) -> Iterator[TableWriter]:
    """A :class:`TableWriter` for ``path`` (format by its ending) that becomes the file only
    when the block succeeds; a CSV file's metadata go to its JSON sidecar, renamed first.
    With ``behind``, batches are written on a thread of their own (:class:`TableWriter`); the
    caller must not change a batch after handing it over.

    Examples:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "r.csv"
        >>> with output_table(out, {"lam": "2"}) as w:
        ...     w.write({"dataset_id": np.array([1, 2]), "theta": np.array([0.5, 0.25])})
        >>> print(out.read_text(), end="")
        "dataset_id","theta"
        1,0.5
        2,0.25
        >>> from jaxvi._results.read_back import read_metadata
        >>> read_metadata(out)
        {'lam': '2'}
    """
    path = Path(path)
    fmt = output_format(path)
    if fmt != "npz":
        require("pyarrow")  # a missing pyarrow fails before any file is made
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(path))
        meta_tmp = stack.enter_context(atomic_path(sidecar_path(path))) if fmt == "csv" else None
        writer = TableWriter(tmp, fmt, metadata, dictionary, behind)
        try:
            yield writer
            writer.close()
            if meta_tmp is not None:
                meta_tmp.write_text(json.dumps(writer.metadata, indent=1) + "\n", encoding="utf-8")
        except OSError as err:  # a full disk, a file-size limit: name the file asked for
            writer.abort()
            raise write_error(path, err) from None
        except BaseException:
            writer.abort()
            raise
