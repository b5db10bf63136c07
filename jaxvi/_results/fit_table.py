"""``fit_table``: every dataset of a file, a glob, a folder or a DataFrame, solved, and the
results returned as one Arrow table (the run itself: :class:`~jaxvi._results.table_fit.TableFit`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jaxvi._results.table_fit import BATCH_SIZE, TableFit

__all__ = ["fit_table"]


def fit_table(
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
    progress: bool = False,
    csv_quote: str | None = None,
    csv_delimiter: str | None = None,
) -> Any:
    """Fit every dataset of a table and return one row of results per dataset, sorted by id.

    DuckDB groups the rows by id and computes each dataset's statistics (n, the mean and
    ``Σ(x − x̄)²``, by stable methods, in DOUBLE); JAX solves them. Statistics leave DuckDB in
    batches of ``batch_size`` datasets, so memory stays bounded however many datasets there
    are, and DuckDB spills to disk past ``memory_limit``.

    Args:
        source: a long table (one row per observation: columns ``id`` and ``x``, rows in any
            order, a dataset's rows possibly spread over several files) or a statistics table
            (``dataset_id, n, sum_x, sum_x2`` and optionally ``shift``, the value the sums are
            taken about). A path to a Parquet, CSV (delimiter and header detected) or JSON
            file, a glob (``"runs/*.parquet"``), a folder (read recursively), or an in-memory
            pandas or polars DataFrame or Arrow table, which DuckDB scans in place (a polars
            LazyFrame is collected, an Arrow RecordBatchReader or a DuckDB relation read into
            an Arrow table first).
        id: the dataset id column (integers or strings).
        x: the value column of a long table.
        lam: prior rate λ > 0: a number; the name of a column holding each dataset's λ (it
            must not vary within a dataset); or a function ``f(stats, sigma=...) -> λ`` of
            every dataset's :class:`~jaxvi.SuffStats`, such as :func:`jaxvi.estimate_lam`
            (then all statistics are held in memory first).
        sigma: noise scale σ > 0: a number or the name of a column.
        theta: evaluate q at this rate instead of θ* (``None``: θ*).
        dtype: ``float32`` or ``float64`` (needs ``jax_enable_x64``); JAX's default float
            when ``None``.
        exact: compute ``log_evidence`` and ``kl_gap`` (NaN otherwise).
        batch_size: datasets per batch out of DuckDB and per kernel call.
        memory_limit: DuckDB's memory limit, such as ``"2GB"``; larger group-bys spill.
        threads: DuckDB's threads; all cores when ``None``.
        progress: draw progress bars on stderr, when tqdm is installed: DuckDB's reading of
            the input, then the datasets solved (for Parquet sorted by id, read by ranges of
            ids, one bar through its rows).
        csv_quote: the quote character of CSV input (``None``: RFC 4180's ``"``); it also
            escapes itself, doubled.
        csv_delimiter: the delimiter of CSV input, one character (``None``: detected).

    Returns:
        A ``pyarrow.Table`` with columns ``dataset_id, n, b, theta, elbo, grad,
        log_evidence, kl_gap, q_mean, post_mean, post_sd`` (``q_mean = 1/theta``; ``post_*``
        the exact posterior's mean and sd), one row per dataset sorted by id, and the run's
        λ, σ, dtype, input and jaxvi version in its schema metadata.

    Raises:
        ValueError: one line naming the input and the column, dataset id or parameter at
            fault: a missing file or column, an unreadable file, ids that are neither
            integers nor text, values that are not numbers, a missing, NaN or infinite
            value, duplicate ids in a statistics table, λ or σ that is not positive or varies
            within a dataset.

    Examples:
        >>> import pyarrow as pa
        >>> from jaxvi import fit_table
        >>> data = pa.table({"dataset_id": ["b", "a", "b"], "x": [1.0, 2.0, 3.0]})
        >>> res = fit_table(data, lam=2.0)
        >>> res["dataset_id"].to_pylist(), res["n"].to_pylist()
        (['a', 'b'], [1, 2])
        >>> [round(t, 4) for t in res["theta"].to_pylist()]
        [1.4142, 1.2361]
    """
    import pyarrow as pa

    from jaxvi._results.kernel import RESULT_COLUMNS

    with TableFit(
        source,
        id=id,
        x=x,
        lam=lam,
        sigma=sigma,
        theta=theta,
        dtype=dtype,
        exact=exact,
        batch_size=batch_size,
        memory_limit=memory_limit,
        threads=threads,
        csv_quote=csv_quote,
        csv_delimiter=csv_delimiter,
    ) as run:
        batches = list(run.batches(progress))
    if batches:
        table = pa.Table.from_batches(batches)
    else:  # pragma: no cover - an empty input raises before
        table = pa.table({c: [] for c in RESULT_COLUMNS})
    return table.replace_schema_metadata(run.metadata)
