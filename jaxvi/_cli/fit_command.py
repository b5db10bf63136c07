"""``jaxvi fit``: a table of observations in, a table of results out (``fit_table`` on DuckDB).

The kernel is made ready in a second thread while DuckDB reads
(:func:`~jaxvi._cli.kernel_cache.warm_kernel`).
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import replace
from typing import Any

from jaxvi._cli.kernel_cache import warm_kernel, worker_env
from jaxvi._cli.options import csv_character, positive_float, positive_int

__all__ = ["add_fit"]


def _lam_or_estimate(text: str) -> float | str:
    """A positive number, or ``estimate``."""
    return "estimate" if text == "estimate" else positive_float(text)


def _cmd_fit_on_dask(args: argparse.Namespace) -> int:
    """``jaxvi fit --scheduler``: :func:`jaxvi.dask.fit_table` into a folder of Parquet parts."""
    import time

    from jaxvi._dask.cluster import open_scheduler, write_parts
    from jaxvi._dask.graph import import_dask, plan_fit
    from jaxvi._results.atomic import atomic_folder
    from jaxvi._results.result_batches import run_metadata
    from jaxvi._results.signals import raise_if_signalled
    from jaxvi._tables.sources import file_format

    t0 = time.perf_counter()
    if file_format(args.input) == "npz":
        raise ValueError(f"{args.input}: --scheduler reads Parquet, CSV or JSON lines, not NPZ")
    if file_format(args.output) is not None:
        raise ValueError(f"{args.output}: with --scheduler the output is a folder of Parquet parts")
    if args.csv_quote is not None or args.csv_delimiter is not None:
        raise ValueError(
            "--csv-quote and --csv-delimiter read CSV with DuckDB, on one machine; on Dask, read "
            "the files with dask.dataframe.read_csv(sep=..., quotechar=...) and pass the frame "
            "to jaxvi.dask.fit_table"
        )
    lam: Any = args.lam_column or args.lam or 1.0
    if lam == "estimate":
        from jaxvi._model.empirical_bayes import estimate_lam

        lam = estimate_lam
    # Imported before the cluster starts: these imports are most of the planning's time, and
    # a signal that comes while the scheduler's gc callback runs in this process is lost
    # (jaxvi._results.signals): the shorter that stretch, the sooner a lost signal is seen.
    import_dask(who="--scheduler")
    with (
        atomic_folder(args.output) as folder,
        open_scheduler(args.scheduler, announce=not args.quiet, worker_env=worker_env()) as client,
    ):
        # Built with the client current, so that Dask picks its P2P shuffle.
        plan = plan_fit(
            args.input,
            id=args.id_column,
            x=args.value_column,
            lam=lam,
            sigma=args.sigma_column or args.sigma or 1.0,
            theta=args.theta,
            dtype=args.dtype,
        )
        lam_value = plan.lam
        if plan.estimator is not None:  # λ̂ first: it goes in every part's metadata
            merged = plan.merged.persist()  # client.persist(frame) can drop parts of a frame
            plan = replace(plan, merged=merged)
            estimate = plan.lam_estimate()
            # Before the cluster's pass over every dataset (as write_parts checks before its
            # own): Dask's readers run fsspec code that can swallow a signal.
            raise_if_signalled()
            lam_value = client.compute(estimate).result()
        meta = run_metadata(
            plan.problem.label,
            lam=lam_value if lam_value is not None else args.lam_column,
            lam_estimated=plan.estimator is not None,
            sigma=args.sigma_column or plan.sigma,
            theta=plan.theta,
            dtype=args.dtype,
        )
        results = plan.results(lam_value)
        count = write_parts(client, results, folder, meta, progress=not args.quiet)
        if count == 0:
            raise ValueError(f"{plan.problem.label}: no data rows")
    if not args.quiet:
        print(
            f"fitted {count:,} datasets on {args.scheduler} (lam = {meta['lam']}) in "
            f"{time.perf_counter() - t0:.2f} s -> {args.output}"
        )
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    import threading

    if args.scheduler is not None:
        return _cmd_fit_on_dask(args)

    from jaxvi._results.signals import stopped_by
    from jaxvi._results.table_fit import BATCH_SIZE
    from jaxvi._study.study import fit_file

    for name in ("lam", "sigma"):
        if getattr(args, f"{name}_column") is not None and getattr(args, name) is not None:
            raise ValueError(f"give --{name} or --{name}-column, not both")

    # JAX is imported and the kernel loaded from the cache in a second thread while DuckDB
    # runs the query; the thread starts once the query does, so that its imports do not
    # slow down the planning before it (both hold the GIL).
    def warm() -> None:
        # An error here would only be lost in the thread: the solve meets it and reports it.
        with contextlib.suppress(BaseException):
            warm_kernel(args, args.dtype)

    # Not a daemon: a daemon thread killed inside JAX's C++ code while the interpreter exits
    # aborts the process, where the interpreter waits for this one. Joined on every way out
    # but a signal: the command then exits at once (os._exit, no teardown), and JAX's import
    # in it took up to 0.7 s of the stop.
    loader = threading.Thread(target=warm, name="jaxvi-import-jax")
    lam: Any = args.lam_column or args.lam or 1.0
    if lam == "estimate":
        from jaxvi._model.empirical_bayes import estimate_lam

        lam = estimate_lam
    try:
        s = fit_file(
            args.input,
            args.output,
            lam=lam,
            sigma=args.sigma_column or args.sigma or 1.0,
            theta=args.theta,
            dtype=args.dtype,
            batch_size=args.batch_size or BATCH_SIZE,
            id_column=args.id_column,
            value_column=args.value_column,
            memory_limit=args.memory_limit,
            threads=args.threads,
            csv_quote=args.csv_quote,
            csv_delimiter=args.csv_delimiter,
            progress=not args.quiet,
            before_solve=loader.join,
            busy=loader.is_alive,
            started=loader.start,
        )
    except BaseException as err:
        if stopped_by(err) is None and loader.ident is not None:  # started once the query ran
            loader.join()
        raise
    loader.join()
    if not args.quiet:
        print(
            f"fitted {s.num_datasets:,} datasets ({s.num_batches:,} "
            f"batch{'es' * (s.num_batches != 1)}, lam = {s.lam}) in {s.seconds:.2f} s "
            f"-> {args.output}"
        )
    return 0


def add_fit(sub) -> None:
    p = sub.add_parser(
        "fit",
        help="fit every dataset of a table and write one result row per dataset",
        description="Read INPUT, a long table with one row per observation (columns "
        "dataset_id and x; ids may be integers or strings; rows in any order, a dataset's "
        "rows possibly spread over several files) or a table of precomputed statistics "
        "(columns dataset_id, n, sum_x, sum_x2; optional shift, the value the sums were "
        "taken about). INPUT is a Parquet, CSV (delimiter and header detected) or JSON-lines "
        "file, a glob ('runs/*.parquet', quoted) or a folder, read by DuckDB in parallel and "
        "in bounded memory; or an NPZ file (keys values, offsets and optional ids; or n, "
        "sum_x, sum_x2). Write OUTPUT with one row per dataset, sorted by id: dataset_id, n, "
        "b, theta, elbo, grad, log_evidence, kl_gap, q_mean (= 1/theta), post_mean, post_sd "
        "(the exact posterior's mean and sd). lam, sigma, the dtype, the input and jaxvi's "
        "version (and fixed_theta, if given) go in the metadata: Parquet key-value "
        "metadata, a JSON sidecar OUTPUT.json beside a CSV file, NPZ keys. OUTPUT is written "
        "atomically: a failed or killed run leaves no file. The compiled kernel is kept in "
        "JAX's persistent compilation cache, in the cache folder ~/.cache/jaxvi/xla (or "
        "JAX_COMPILATION_CACHE_DIR).",
        epilog="examples: jaxvi fit data.parquet -o results.parquet --lam 1 --sigma 1;  "
        "jaxvi fit 'runs/*.csv' -o results.csv --lam estimate --memory-limit 4GB",
    )
    p.add_argument(
        "input", metavar="INPUT", help="input table: a file, a quoted glob, a folder, or .npz"
    )
    p.add_argument("-o", "--output", required=True, help="results table: .parquet, .csv or .npz")
    p.add_argument(
        "--lam",
        type=_lam_or_estimate,
        default=None,
        help="prior rate lambda > 0, or 'estimate': the type-II maximum-likelihood lambda of "
        "all datasets (recorded in the metadata) (default: 1)",
    )
    p.add_argument(
        "--sigma", type=positive_float, default=None, help="noise scale sigma > 0 (default: 1)"
    )
    p.add_argument(
        "--lam-column",
        metavar="NAME",
        help="take each dataset's lambda from this column (it must not vary within a dataset)",
    )
    p.add_argument(
        "--sigma-column",
        metavar="NAME",
        help="take each dataset's sigma from this column (it must not vary within a dataset)",
    )
    p.add_argument(
        "--theta",
        type=positive_float,
        default=None,
        help="evaluate q at this rate for every dataset instead of the optimum theta*",
    )
    p.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="working precision; float64 switches JAX's x64 mode on (default: float32)",
    )
    p.add_argument(
        "--batch-size",
        "--chunk-size",
        type=positive_int,
        default=None,
        help="datasets per batch out of DuckDB and per kernel call; bounds memory (default: 16384)",
    )
    p.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="DuckDB's memory limit, e.g. 2GB; larger inputs spill to disk (default: 80%% of RAM)",
    )
    p.add_argument("--threads", type=positive_int, help="DuckDB's threads (default: every core)")
    p.add_argument(
        "--csv-quote",
        metavar="CHAR",
        type=csv_character,
        help="the quote character of CSV input, which also escapes itself doubled (default: "
        "RFC 4180's \")",
    )
    p.add_argument(
        "--csv-delimiter",
        metavar="CHAR",
        type=csv_character,
        help="the delimiter of CSV input, e.g. ';', or '\\t' for a tab (default: detected)",
    )
    p.add_argument(
        "--id-column", default="dataset_id", help="dataset id column (default: dataset_id)"
    )
    p.add_argument("--value-column", default="x", help="observation column (default: x)")
    p.add_argument(
        "--scheduler",
        metavar="SPEC",
        help="run on Dask: 'local' or 'local:N' starts a LocalCluster of N worker processes "
        "(default N: the cores), 'tcp://HOST:PORT' uses a running scheduler; OUTPUT is then a "
        "folder of Parquet parts, each sorted by id (needs the dask extra)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    p.set_defaults(func=_cmd_fit)
