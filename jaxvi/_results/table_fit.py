"""One run of :func:`~jaxvi._results.fit_table.fit_table`: :class:`TableFit`, every dataset of a
file, a glob, a folder or a DataFrame, solved a batch at a time.

DuckDB turns the table into per-dataset statistics with one group-by
(:mod:`jaxvi._tables.statistics`), or one per range of ids for Parquet sorted by id
(:mod:`jaxvi._tables.id_ranges`); they leave it in Arrow record batches of bounded size, and
each batch is solved by one jitted kernel (:mod:`jaxvi._results.kernel`) and handed on at once.
Memory stays bounded however many datasets there are: DuckDB spills to disk past its memory
limit, and a sorted input never holds more than a range's datasets.

It imports JAX only when the first batch is solved: the ``jaxvi`` command loads its kernel
meanwhile (:func:`jaxvi._results.kernel.warm`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from jaxvi._model.params import positive
from jaxvi._progress import progress_bar
from jaxvi._results.result_batches import estimate_over, result_batch, run_metadata
from jaxvi._results.signals import raise_if_signalled
from jaxvi._tables.checked_batches import StatsBatch, statistics_batches
from jaxvi._tables.csv_dialect import CsvDialect
from jaxvi._tables.engine import connect
from jaxvi._tables.query_progress import QueryProgress
from jaxvi._tables.read_ahead import ReadAhead
from jaxvi._tables.sources import open_source
from jaxvi._tables.statistics import Layout, plan_statistics

__all__ = ["AHEAD", "BATCH_SIZE", "READ_AHEAD", "TableFit"]

# 2¹⁴: with 2¹⁶ a run's peak memory was 40-60 MB higher (each batch's Arrow, NumPy and
# device copies), at the same speed on 10⁶ datasets (benchmarks/files.py).
BATCH_SIZE = 1 << 14
# Datasets whose statistics the command reads ahead while its kernel loads (~50 MB): on 10⁶
# datasets of sorted Parquet, DuckDB's whole query fits in the second the kernel takes.
READ_AHEAD = 1 << 20
# Datasets whose statistics are read ahead once the kernel is ready (~10 MB): the ranges of
# a sorted input (:data:`~jaxvi._tables.id_ranges.RANGE_ROWS` rows, 1.3·10⁵ datasets of
# 1-64 points) are then computed by DuckDB while the range before is solved and written.
AHEAD = 1 << 18


class TableFit:
    """One run of :func:`fit_table`: the checked input, then result batches on demand.

    Opening checks the input's columns and types (so bad input fails before anything is
    computed); :meth:`batches` runs the query and yields one Arrow record batch of results
    per batch of statistics. :attr:`metadata` describes the run once :meth:`batches` is done.
    """

    def __init__(
        self,
        source: Any,
        *,
        id: str = "dataset_id",
        x: str = "x",
        lam: float | str | Callable[..., Any] = 1.0,
        sigma: float | str = 1.0,
        theta: float | None = None,
        dtype: Any = None,
        exact: bool = True,
        batch_size: int = BATCH_SIZE,
        memory_limit: str | None = None,
        threads: int | None = None,
        temp_directory: str | os.PathLike | None = None,
        label: str | None = None,
        csv_quote: str | None = None,
        csv_delimiter: str | None = None,
    ):
        self.lam_column = lam if isinstance(lam, str) else None
        self.sigma_column = sigma if isinstance(sigma, str) else None
        self.estimate = lam if callable(lam) else None
        self.lam = None if self.lam_column or self.estimate else positive("lam", lam)
        self.sigma = None if self.sigma_column else positive("sigma", sigma)
        self.theta = None if theta is None else positive("theta", theta)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        self.batch_size = int(batch_size)
        self.dtype_request = dtype
        self.exact = exact
        csv = None
        if csv_quote is not None or csv_delimiter is not None:
            csv = CsvDialect('"' if csv_quote is None else csv_quote, csv_delimiter)
        self.con = connect(
            memory_limit=memory_limit, threads=threads, temp_directory=temp_directory
        )
        try:  # bad input: close the connection before the error leaves
            src = open_source(self.con, source, csv)
            if label is not None:
                src = replace(src, label=label)
            self.layout: Layout = plan_statistics(
                self.con, src, id=id, x=x, lam=self.lam_column, sigma=self.sigma_column
            )
        except BaseException:
            self.con.close()
            raise
        self.num_datasets = 0
        self.lam_estimate: float | None = None
        self._reading: ReadAhead[StatsBatch] | None = None

    @property
    def label(self) -> str:
        return self.layout.label

    def close(self) -> None:
        """Stop reading, if :meth:`batches` was left unfinished, and close DuckDB's connection
        (its spilled files go with it)."""
        if self._reading is not None:
            self._reading.close()
        self.con.close()

    def __enter__(self) -> TableFit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def batches(
        self,
        progress: bool = False,
        before_solve: Callable[[], None] | None = None,
        busy: Callable[[], bool] | None = None,
        started: Callable[[], None] | None = None,
    ) -> Iterator[Any]:
        """Arrow record batches of results (:data:`~jaxvi._results.kernel.RESULT_COLUMNS`),
        sorted by id. ``progress`` draws bars on stderr: DuckDB's progress through the input,
        then the datasets solved; or, for an input read by ranges of ids, one bar through its
        rows. The statistics are read on a thread of their own (:class:`ReadAhead`) while the
        caller solves and writes, up to :data:`READ_AHEAD` datasets ahead while ``busy()``
        (the caller's kernel loads), :data:`AHEAD` after. ``started()`` is called once the
        query runs (the command starts loading its kernel then), ``before_solve()`` once the
        first statistics are out."""
        ranges = self.layout.ranges
        with contextlib.ExitStack() as stack:
            if ranges is None:  # one query, which reads everything before its first statistics
                with QueryProgress(self.con, progress, self.label):  # set before it starts
                    stats = stack.enter_context(self._read(busy, started))
                    first = next(stats)  # an empty input raises before its first batch
                bar = progress_bar(progress, "datasets")
            else:  # a range of ids at a time: one bar through the input's rows
                stats = stack.enter_context(self._read(busy, started))
                first = next(stats)
                bar = progress_bar(progress, "rows", ranges.rows, f"reading {self.label}")
            stack.callback(bar.close)
            if before_solve is not None:
                before_solve()
            from jaxvi._model.dtypes import compute_dtype

            self.dtype = compute_dtype(None, self.dtype_request, who="fit_table")
            held: Iterable[StatsBatch] = itertools.chain([first], stats)
            if self.estimate is not None:  # λ̂ needs every dataset: O(D) statistics held
                held = list(held)
                sigma = None if self.sigma_column else self.sigma
                self.lam_estimate = estimate_over(
                    held, self.estimate, sigma=sigma, dtype=self.dtype, label=self.label
                )
            for batch in held:
                raise_if_signalled()  # one that a library swallowed stops the run here
                yield self._result_batch(batch)
                self.num_datasets += len(batch)
                bar.update(len(batch) if ranges is None else int(batch.n.sum()))

    def _read(
        self, busy: Callable[[], bool] | None, started: Callable[[], None] | None
    ) -> ReadAhead[StatsBatch]:
        """The checked statistics, read on a thread of their own: up to :data:`READ_AHEAD`
        datasets ahead while ``busy()``, :data:`AHEAD` after; ``started()`` once it runs."""
        stats = statistics_batches(self.con, self.layout, self.batch_size)

        def limit() -> int:
            return READ_AHEAD if busy is not None and busy() else AHEAD

        self._reading = ReadAhead(stats, self.con, limit)
        if started is not None:
            started()
        return self._reading

    def _result_batch(self, batch: StatsBatch) -> Any:
        lam = batch.lam if self.lam_column else self.lam_estimate or self.lam
        sigma = batch.sigma if self.sigma_column else self.sigma
        assert lam is not None and sigma is not None  # a column's batch always carries it
        return result_batch(
            batch,
            lam=lam,
            sigma=sigma,
            theta=self.theta,
            dtype=self.dtype,
            exact=self.exact,
            batch_size=self.batch_size,
            label=self.label,
        )

    @property
    def metadata(self) -> dict[str, str]:
        """λ, σ, the dtype, jaxvi's version and the input, as text."""
        return run_metadata(
            self.label,
            lam=self.lam_estimate or self.lam_column or self.lam,
            lam_estimated=self.lam_estimate is not None,
            sigma=self.sigma_column or self.sigma,
            theta=self.theta,
            dtype=getattr(self, "dtype", np.dtype(np.float32)),
        )
