"""``jaxvi fit``: a table of observations in, a table of results out (``fit_table`` on DuckDB).

JAX is imported in a second thread while DuckDB reads, and the command (an application, not
the library) keeps its compiled kernel in its cache folder (:mod:`jaxvi._tables.saved_kernel`)
beside JAX's persistent compilation cache.
"""

from __future__ import annotations

import argparse
from typing import Any

from jaxvi._cli.options import positive_float, positive_int

__all__ = ["add_fit"]


def _lam_or_estimate(text: str) -> float | str:
    """A positive number, or ``estimate``."""
    return "estimate" if text == "estimate" else positive_float(text)


def _use_compilation_cache() -> str:
    """JAX's persistent compilation cache for this command (a library must not set it): the
    second run of a command loads its kernels instead of compiling them. An existing
    ``JAX_COMPILATION_CACHE_DIR`` is kept. Returns the cache's folder."""
    import os

    import jax

    folder = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "jaxvi", "xla")
        jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    return folder


def _warm_jax(args: argparse.Namespace, dtype_name: str) -> None:
    """Import JAX, and load the fit kernel for full batches (compiled, from the command's
    cache; or traced and compiled, then saved there), while DuckDB reads."""
    import os

    import numpy as np

    from jaxvi._tables.study import enable_dtype

    cache = _use_compilation_cache()
    dtype = enable_dtype(dtype_name)
    from jaxvi._tables.fit_table import BATCH_SIZE
    from jaxvi._tables.kernel import warm

    warm(
        args.batch_size or BATCH_SIZE,
        np.dtype(dtype),
        lam_rows=args.lam_column is not None,
        sigma_rows=args.sigma_column is not None,
        theta=args.theta,
        exact=True,
        folder=os.path.join(cache, "jaxvi-kernels"),
    )


def _cmd_fit(args: argparse.Namespace) -> int:
    import threading

    from jaxvi._tables.fit_table import BATCH_SIZE
    from jaxvi._tables.study import fit_file

    for name in ("lam", "sigma"):
        if getattr(args, f"{name}_column") is not None and getattr(args, name) is not None:
            raise ValueError(f"give --{name} or --{name}-column, not both")
    # JAX loads (1-2 s) in a second thread while DuckDB runs the query in this one.
    failed: list[BaseException] = []

    def warm() -> None:
        try:
            _warm_jax(args, args.dtype)
        except BaseException as err:  # the solve reports it; here it would only be lost
            failed.append(err)

    # Not a daemon, and joined on every way out: a thread killed inside JAX's C++ code while
    # the interpreter exits aborts the process.
    loader = threading.Thread(target=warm, name="jaxvi-import-jax")
    loader.start()
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
            progress=not args.quiet,
            before_solve=loader.join,
        )
    finally:
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
        "jaxvi-kernels/ of the cache folder (~/.cache/jaxvi/xla, or JAX_COMPILATION_CACHE_DIR, "
        "which also holds JAX's persistent compilation cache).",
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
        help="datasets per batch out of DuckDB and per kernel call; bounds memory (default: 65536)",
    )
    p.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="DuckDB's memory limit, e.g. 2GB; larger inputs spill to disk (default: 80%% of RAM)",
    )
    p.add_argument("--threads", type=positive_int, help="DuckDB's threads (default: every core)")
    p.add_argument(
        "--id-column", default="dataset_id", help="dataset id column (default: dataset_id)"
    )
    p.add_argument("--value-column", default="x", help="observation column (default: x)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    p.set_defaults(func=_cmd_fit)
