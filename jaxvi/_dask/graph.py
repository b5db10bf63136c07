"""The graph of :func:`jaxvi.dask.fit_table`: read, partial statistics, shuffle, merge, solve.

Nothing runs while the graph is built but what Dask's readers do to learn the columns; a
missing column raises then. Every other check runs in the tasks and reaches the client as the
one-line :class:`ValueError` that :func:`jaxvi.fit_table` raises for the same input.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jaxvi._dask.merge import merge_partials
from jaxvi._dask.partials import partial_meta, partition_partials
from jaxvi._dask.solve import Problem, estimate_partitions, result_meta, solve_partition
from jaxvi._model.params import positive
from jaxvi._tables.sources import _files_of, file_format
from jaxvi._tables.statistics import require_columns

__all__ = ["DaskFit", "fit_table", "import_dask", "plan_fit", "read_table"]


def import_dask(who: str = "jaxvi.dask") -> tuple[Any, Any]:
    """``dask`` and ``dask.dataframe``, or the error that names the extra to install."""
    try:
        import dask
        import dask.dataframe as dd
    except ImportError:
        raise ValueError(f'{who} needs Dask; pip install "jaxvi[dask]"') from None
    return dask, dd


def read_table(
    source: Any, *, storage_options: dict[str, Any] | None = None, value_columns: tuple = ()
) -> tuple[Any, str]:
    """``source`` as a Dask DataFrame, and the label errors name it by.

    A Dask DataFrame is taken as it is. A path, glob or folder on this machine is listed as
    :func:`jaxvi.fit_table` lists it (the same errors for a missing file or a mixed folder);
    an fsspec URL (``s3://bucket/runs/``, with ``storage_options``) goes to Dask's reader as
    it is, Parquet unless its name ends otherwise. CSV value columns are read as text and
    cast by DuckDB in each task, so that a value that is no number is named with its dataset.
    """
    _, dd = import_dask()
    if isinstance(source, dd.DataFrame):
        return source, "dask table"
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            "source must be a Dask DataFrame or a path, glob, folder or URL of Parquet, CSV or "
            f"JSON-lines files; got {type(source).__name__}"
        )
    label = os.fspath(source)
    if "://" in label:
        paths: Any = label
        fmt = file_format(label.rstrip("/")) or "parquet"
    else:
        paths, fmt = _files_of(label)
    # Arrow-backed columns keep NaN apart from a missing value (NumPy-backed pandas cannot).
    options: dict[str, Any] = {"dtype_backend": "pyarrow"}
    if storage_options:
        options["storage_options"] = storage_options
    if fmt == "parquet":
        return dd.read_parquet(paths, **options), label
    if fmt == "csv":
        text = dict.fromkeys(value_columns, "object")
        return dd.read_csv(paths, dtype=text, blocksize="64MB", **options), label
    if fmt == "json":
        return dd.read_json(paths, lines=True, blocksize=1 << 26, **options), label
    raise ValueError(f"{label}: an NPZ file is not a table; use jaxvi.fit_table")


def fit_table(
    source: Any,
    *,
    id: str = "dataset_id",
    x: str = "x",
    lam: float | str | Callable[..., Any] = 1.0,
    sigma: float | str = 1.0,
    theta: float | None = None,
    dtype: str = "float32",
    npartitions: int | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Any:
    """Fit every dataset of a long table on Dask; a lazy Dask DataFrame of results.

    The same statistics, checks and kernel as :func:`jaxvi.fit_table`, spread over a Dask
    cluster: per input partition, the DuckDB group-by on one thread gives each dataset's
    partial statistics (n, mean, ``Σ(x − x̄)²``); a shuffle by id (Dask's P2P shuffle on a
    ``distributed`` cluster) brings each dataset's partials together; Chan's merge combines
    them in the order of the input partitions, so that two runs give the same bits; the
    jitted kernel solves each output partition. ``Σx² − (Σx)²/n`` appears nowhere.

    Nothing runs before ``.compute()``, ``.persist()`` or ``.to_parquet()``, and it runs on
    whatever scheduler Dask is configured with (the current ``distributed`` client, if there
    is one); it never starts a cluster. Workers import JAX on their first task and compile
    the kernel once per process.

    Args:
        source: a long table (one row per observation, a dataset's rows in any order and any
            partitions): a ``dask.dataframe.DataFrame``, or a path, glob, folder or fsspec URL
            of Parquet, CSV or JSON-lines files, read by Dask's own readers.
        id: the dataset id column (integers or strings).
        x: the value column.
        lam: prior rate λ > 0: a number, the name of a column (it must not vary within a
            dataset, across partitions included), or an estimator such as
            :func:`jaxvi.estimate_lam` (one task then gathers every dataset's statistics,
            24 bytes each, to estimate λ̂; the graph stays lazy).
        sigma: noise scale σ > 0: a number or the name of a column.
        theta: evaluate q at this rate instead of θ* (``None``: θ*).
        dtype: ``"float32"`` or ``"float64"``; float64 switches JAX's x64 on inside jaxvi's
            own tasks only, on any worker.
        npartitions: partitions of the result; the input's when ``None``.
        storage_options: passed to Dask's reader (credentials of an object store).

    Returns:
        A ``dask.dataframe.DataFrame`` with :func:`jaxvi.fit_table`'s columns and dtypes
        (``dataset_id, n, b, theta, elbo, grad, log_evidence, kl_gap, q_mean, post_mean,
        post_sd``), one row per dataset. Each partition is sorted by id; partitions are not
        ordered against each other (sort after ``compute()`` if you need one order).

    Raises:
        ValueError: when the graph is built, a missing column or a bad parameter; at compute,
            one line naming the input and the dataset, as :func:`jaxvi.fit_table` does (a
            NaN or inf, a missing value, a value that is no number, λ or σ that is not
            positive or varies within a dataset, ids that are neither integers nor text).

    Examples:
        >>> import dask, pandas as pd, dask.dataframe as dd
        >>> import jaxvi.dask
        >>> frame = pd.DataFrame({"dataset_id": [1, 2, 1, 2], "x": [0.5, 1.0, 1.5, 2.0]})
        >>> res = jaxvi.dask.fit_table(dd.from_pandas(frame, npartitions=2), lam=2.0)
        >>> with dask.config.set(scheduler="threads"):
        ...     out = res.compute().sort_values("dataset_id")
        >>> out["n"].tolist(), [round(t, 4) for t in out["theta"]]
        ([2, 2], [2.0, 1.5616])
    """
    plan = plan_fit(
        source,
        id=id,
        x=x,
        lam=lam,
        sigma=sigma,
        theta=theta,
        dtype=dtype,
        npartitions=npartitions,
        storage_options=storage_options,
    )
    return plan.results(plan.lam_estimate() if plan.estimator is not None else plan.lam)


@dataclass(frozen=True)
class DaskFit:
    """A planned run: the lazy merged statistics, and how to solve them.

    Attributes:
        merged: one row of checked-to-be-merged statistics per dataset (lazy).
        problem: what every task knows of the run.
        lam, sigma: the numbers given, or ``None`` for a column (or λ to be estimated).
        estimator: the function that estimates λ, or ``None``.
        theta: a fixed θ, or ``None`` for θ*.
        id_dtype: the id column's dtype.
    """

    merged: Any
    problem: Problem
    lam: float | None
    sigma: float | None
    estimator: Callable[..., Any] | None
    theta: float | None
    id_dtype: Any

    def lam_estimate(self) -> Any:
        """λ̂ over every dataset, as a Dask ``Delayed`` (one task gathers the statistics)."""
        import dask

        assert self.estimator is not None
        return dask.delayed(estimate_partitions, pure=True)(
            self.merged.to_delayed(), self.problem, self.estimator, self.sigma
        )

    def results(self, lam: Any) -> Any:
        """The lazy results for λ = ``lam`` (a number, a ``Delayed``, or ``None`` for the
        column)."""
        empty = result_meta(self.id_dtype, self.problem.dtype)
        return self.merged.map_partitions(
            solve_partition,
            self.problem,
            lam=lam,
            sigma=self.sigma,
            theta=self.theta,
            empty=empty,
            meta=empty,
            align_dataframes=False,
        )


def plan_fit(
    source: Any,
    *,
    id: str = "dataset_id",
    x: str = "x",
    lam: float | str | Callable[..., Any] = 1.0,
    sigma: float | str = 1.0,
    theta: float | None = None,
    dtype: str = "float32",
    npartitions: int | None = None,
    storage_options: dict[str, Any] | None = None,
) -> DaskFit:
    """Check the parameters and columns, and build the graph up to the merged statistics
    (:func:`fit_table`'s arguments)."""
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    lam_column = lam if isinstance(lam, str) else None
    sigma_column = sigma if isinstance(sigma, str) else None
    estimator = lam if callable(lam) else None
    lam_value = None if lam_column or estimator else positive("lam", lam)  # type: ignore[arg-type]
    sigma_value = None if sigma_column else positive("sigma", sigma)
    theta = None if theta is None else positive("theta", theta)
    if npartitions is not None and int(npartitions) < 1:
        raise ValueError(f"npartitions must be a positive integer, got {npartitions}")

    value_columns = tuple(c for c in (x, lam_column, sigma_column) if c)
    table, label = read_table(source, storage_options=storage_options, value_columns=value_columns)
    if x not in table.columns and {"n", "sum_x", "sum_x2"} <= set(table.columns):
        raise ValueError(
            f"{label}: a statistics table (n, sum_x, sum_x2) has one row per dataset and needs "
            "no cluster; read it with jaxvi.fit_table"
        )
    require_columns(label, table.columns, [id, *value_columns])
    table = table[list(dict.fromkeys([id, *value_columns]))]
    id_dtype = table.dtypes[id]
    problem = Problem(label, id, x, lam_column, sigma_column, dtype)

    meta = partial_meta(id_dtype, lam_column, sigma_column)
    partials = table.map_partitions(
        partition_partials,
        id=id,
        x=x,
        lam=lam_column,
        sigma=sigma_column,
        label=label,
        empty=meta,
        meta=meta,
        align_dataframes=False,
    )
    shuffled = partials.shuffle(on="dataset_id", npartitions=npartitions or table.npartitions)
    merged = shuffled.map_partitions(merge_partials, meta=merge_partials(meta))
    return DaskFit(merged, problem, lam_value, sigma_value, estimator, theta, id_dtype)
