"""The ``jaxvi`` command. It parses arguments, calls the library and prints: no numerics here.

Each subcommand is registered by one ``_add_<name>(sub)`` function listed in
:data:`SUBCOMMANDS`; its handler imports the library lazily, so ``jaxvi --help`` is instant.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _size_range(text: str) -> tuple[int, int]:
    try:
        low, high = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH, e.g. 1:64; got {text!r}") from None
    if not 0 <= low <= high:
        raise argparse.ArgumentTypeError(f"need 0 <= LOW <= HIGH, got {text!r}")
    return low, high


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    from jaxvi._model.params import NEED, is_positive

    if not is_positive(value):
        raise argparse.ArgumentTypeError(f"{NEED}, got {text}")
    return value


def _sizes(text: str) -> tuple[int, int]:
    """``LOW:HIGH`` or a single size ``N`` (= ``N:N``)."""
    return _size_range(text if ":" in text else f"{text}:{text}")


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line on stderr (exit code 2), like every other input error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lam", type=_positive_float, default=1.0, help="prior rate lambda > 0 (default: 1)"
    )
    parser.add_argument(
        "--sigma", type=_positive_float, default=1.0, help="noise scale sigma > 0 (default: 1)"
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from jaxvi._tools.demo import QUANTILES, run_demo

    r = run_demo(
        args.num_datasets, sizes=args.sizes, lam=args.lam, sigma=args.sigma, seed=args.seed
    )
    q = " / ".join(f"q{int(p * 100):02d}" for p in QUANTILES)
    rows = [
        ("device", r.device),
        ("datasets", f"{r.num_datasets:,}"),
        ("points", f"{r.num_points:,}"),
        ("simulate time", f"{r.simulate_seconds:.2f} s"),
        ("compile time", f"{r.compile_seconds:.2f} s"),
        ("run time", f"{r.run_seconds:.3f} s"),
        ("datasets/s", f"{r.datasets_per_second:,.0f}"),
        (f"theta* ({q})", " / ".join(f"{v:.4g}" for v in r.theta_quantiles)),
        (f"KL gap ({q})", " / ".join(f"{v:.3g}" for v in r.kl_quantiles)),
        ("max |grad| / scale at theta*", f"{r.max_relative_grad:.2e}"),
        (
            "|1/theta* - E[z|x]| / sd(z|x)",
            f"median {r.median_mean_gap:.3f}, max {r.max_mean_gap:.3f}",
        ),
    ]
    print(
        f"jaxvi demo: {r.num_datasets:,} simulated datasets of "
        f"{args.sizes[0]}-{args.sizes[1]} points"
    )
    from jaxvi._text import format_table

    for line in format_table(rows, align="<<"):
        print(f"  {line}")
    return 0


def _add_demo(sub) -> None:
    demo = sub.add_parser(
        "demo",
        help="simulate a built-in workload and solve it all on the default device",
        description="Simulate NUM datasets from the model, solve every one (theta*, ELBO, "
        "gradient, exact log evidence and KL gap) and print a summary with timings.",
    )
    demo.add_argument(
        "-n",
        "--num-datasets",
        type=_positive_int,
        default=1_000_000,
        help="number of datasets (default: 1,000,000)",
    )
    demo.add_argument(
        "--sizes",
        type=_size_range,
        default=(1, 64),
        help="inclusive range of dataset sizes LOW:HIGH (default: 1:64)",
    )
    _add_model_options(demo)
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.set_defaults(func=_cmd_demo)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from jaxvi._tables.study import simulate_to_file

    data, truth, rows = simulate_to_file(
        args.output,
        args.num_datasets,
        lam=args.lam,
        sigma=args.sigma,
        sizes=args.sizes,
        seed=args.seed,
        dtype=args.dtype,
        progress=not args.quiet,
    )
    if not args.quiet:
        print(f"wrote {args.num_datasets:,} datasets ({rows:,} rows) to {data}")
        print(f"wrote the true z to {truth}")
    return 0


def _add_simulate(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="draw datasets from the model into a long table file",
        description="Draw NUM datasets from z ~ Exponential(lam), x_i | z ~ Normal(z, sigma^2) "
        "and write them as a long table with columns dataset_id (0, 1, ...) and x (an .npz file "
        "holds the ragged layout instead: values, offsets, ids). The true z go beside it in "
        "STEM.truth.EXT with columns dataset_id, n, z. The format follows OUTPUT's extension: "
        ".parquet (needs the cli extra), .csv or .npz. The same seed gives the same files. "
        "Data are drawn a chunk at a time, so memory stays bounded.",
        epilog="example: jaxvi simulate -n 100000 --sizes 1:64 --seed 1 -o data.parquet",
    )
    p.add_argument(
        "-n",
        "--num-datasets",
        metavar="NUM",
        type=_positive_int,
        required=True,
        help="number of datasets",
    )
    p.add_argument("-o", "--output", required=True, help="output table: .parquet, .csv or .npz")
    _add_model_options(p)
    p.add_argument(
        "--sizes",
        type=_sizes,
        default=(1, 64),
        help="dataset sizes: an inclusive range LOW:HIGH drawn uniformly, or one size N "
        "(default: 1:64)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="precision of the simulated values (default: float32)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    p.set_defaults(func=_cmd_simulate)


def _lam_or_estimate(text: str) -> float | str:
    """A positive number, or ``estimate``."""
    return "estimate" if text == "estimate" else _positive_float(text)


def _use_compilation_cache() -> None:
    """JAX's persistent compilation cache for this command (a library must not set it): the
    second run of a command loads its kernels instead of compiling them. An existing
    ``JAX_COMPILATION_CACHE_DIR`` is kept."""
    import os

    import jax

    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        jax.config.update("jax_compilation_cache_dir", os.path.join(base, "jaxvi", "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


def _warm_jax(args: argparse.Namespace, dtype_name: str) -> None:
    """Import JAX, and trace and load the fit kernel for full batches, while DuckDB reads."""
    import numpy as np

    from jaxvi._tables.study import enable_dtype

    _use_compilation_cache()
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


def _add_fit(sub) -> None:
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
        "atomically: a failed or killed run leaves no file. Kernels are kept in JAX's "
        "persistent compilation cache (~/.cache/jaxvi/xla, or JAX_COMPILATION_CACHE_DIR).",
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
        "--sigma", type=_positive_float, default=None, help="noise scale sigma > 0 (default: 1)"
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
        type=_positive_float,
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
        type=_positive_int,
        default=None,
        help="datasets per batch out of DuckDB and per kernel call; bounds memory (default: 65536)",
    )
    p.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="DuckDB's memory limit, e.g. 2GB; larger inputs spill to disk (default: 80%% of RAM)",
    )
    p.add_argument("--threads", type=_positive_int, help="DuckDB's threads (default: every core)")
    p.add_argument(
        "--id-column", default="dataset_id", help="dataset id column (default: dataset_id)"
    )
    p.add_argument("--value-column", default="x", help="observation column (default: x)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    p.set_defaults(func=_cmd_fit)


def _cmd_report(args: argparse.Namespace) -> int:
    from jaxvi._tables.plots import write_report

    files, text = write_report(
        args.results, args.output, truth=args.truth, lam=args.lam, sigma=args.sigma
    )
    if not args.quiet:
        print(text, end="")
        print("wrote " + ", ".join(str(f) for f in files))
    return 0


def _add_report(sub) -> None:
    p = sub.add_parser(
        "report",
        help="plot and summarise a results table (and the truth of a simulation)",
        description="Read RESULTS written by 'jaxvi fit' and write into DIR: "
        "q_mean_vs_post_mean.png (q*'s mean 1/theta* against the exact posterior mean, and "
        "their gap in posterior sds against N), kl_gap_vs_n.png (KL(q* || p(z|x)) against N) "
        "and summary.txt. With --truth (the STEM.truth.EXT file of 'jaxvi simulate'), also "
        "coverage.png: how often 95% equal-tailed intervals of q* (Exponential quantiles) and "
        "of the exact posterior hold the true z, overall and by N. lam and sigma are read from "
        "RESULTS' metadata unless given.",
        epilog="example: jaxvi report results.parquet --truth data.truth.parquet -o report/",
    )
    p.add_argument("results", metavar="RESULTS", help="results table of 'jaxvi fit'")
    p.add_argument("--truth", metavar="TRUTH", help="truth table (dataset_id, n, z)")
    p.add_argument("-o", "--output", metavar="DIR", required=True, help="output directory")
    p.add_argument(
        "--lam",
        type=_positive_float,
        default=None,
        help="prior rate used for the fit (default: from RESULTS' metadata)",
    )
    p.add_argument(
        "--sigma",
        type=_positive_float,
        default=None,
        help="noise scale used for the fit (default: from RESULTS' metadata)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=_cmd_report)


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.compare:
        return _compare_bench(args)
    from jaxvi._tools.bench import parse_peers, run_bench
    from jaxvi._tools.record import bench_record, plot_records, write_record

    if args.plot:
        from jaxvi._tables.plots import new_figure

        new_figure()  # a missing matplotlib fails here, before minutes of timing
    peers = parse_peers(args.peers)
    report = run_bench(
        args.num_datasets,
        padded_rows=args.padded_rows,
        peers=peers,
        reps=args.reps,
        svi_datasets=args.svi_datasets,
        svi_steps=args.svi_steps,
    )
    print(report.format())
    record = bench_record(report)
    if args.json:
        write_record(record, args.json)
        print(f"record: {args.json}")
    if args.plot:
        plot_records([record], [args.json or "this run"], args.plot)
        print(f"plot: {args.plot}")
    return 0


def _compare_bench(args: argparse.Namespace) -> int:
    from jaxvi._tools.record import compare_records, plot_records, read_record

    records = [read_record(path) for path in args.compare]
    print(compare_records(records, args.compare))
    if args.plot:
        plot_records(records, args.compare, args.plot)
        print(f"plot: {args.plot}")
    return 0


def _add_bench(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="time jaxvi against the roofline and its peers on this device",
        description="Time, in one process, the padded kernel on a device-resident float32 "
        "block, fit() end to end on ragged host data, jnp.sum over the same bytes (the "
        "roofline proxy) and the peers (NumPy reduceat, PyTorch segment_reduce, NumPyro SVI). "
        "Prints datasets/s, GB/s and fractions of the roofline; on GPU/TPU also of the "
        "device's nominal bandwidth.",
        epilog="examples: jaxvi bench -n 100000 --padded-rows 200000 --peers numpy,torch; "
        "jaxvi bench --json gpu.json --plot gpu.png; jaxvi bench --compare cpu.json gpu.json",
    )
    p.add_argument(
        "-n",
        "--num-datasets",
        type=_positive_int,
        default=1_000_000,
        help="ragged datasets (default: 1,000,000)",
    )
    p.add_argument(
        "--padded-rows",
        type=int,
        default=2_000_000,
        help="rows of the (ROWS, 64) padded block; 0 skips it (default: 2,000,000)",
    )
    p.add_argument(
        "--peers",
        default="auto",
        help="comma-separated peers among numpy,torch,numpyro, or 'none' (default: 'auto', "
        "the installed ones)",
    )
    p.add_argument("--reps", type=_positive_int, default=5, help="repetitions (default: 5)")
    p.add_argument(
        "--svi-datasets",
        type=_positive_int,
        default=64,
        help="datasets NumPyro fits, its datasets/s is scaled from them (default: 64)",
    )
    p.add_argument(
        "--svi-steps", type=_positive_int, default=2000, help="SVI steps (default: 2000)"
    )
    p.add_argument(
        "--json",
        metavar="FILE",
        help="also write the run as a JSON record (device, versions, every workload's "
        "datasets/s, GB/s, fractions of jnp.sum and of nominal bandwidth, compile time)",
    )
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw the workloads against the device's roofline (with --compare: every record)",
    )
    p.add_argument(
        "--compare",
        nargs="+",
        metavar="RECORD.json",
        help="print records written by --json side by side instead of running anything",
    )
    p.set_defaults(func=_cmd_bench)


# One registration function per subcommand; `jaxvi bench` adds itself here.
SUBCOMMANDS = [_add_demo, _add_simulate, _add_fit, _add_report, _add_bench]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``jaxvi`` command."""
    parser = _Parser(
        prog="jaxvi",
        description="Exact closed-form variational inference for z ~ Exponential(lam), "
        "x_i | z ~ Normal(z, sigma^2), over millions of datasets at once. A simulation study "
        "in three commands: jaxvi simulate -> jaxvi fit -> jaxvi report.",
        epilog="Run 'jaxvi COMMAND --help' for each command's options. Bad input exits with "
        "code 2 and one line on stderr.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _terminated(signum: int, frame) -> None:
    # Unwinding (instead of dying at once) lets the atomic writers delete their temporary files.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxvi`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return args.func(args)
    except (ValueError, OSError) as err:
        print(f"jaxvi {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"jaxvi {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def run() -> NoReturn:
    """The console script: :func:`main`, then a quick exit.

    Once the command's files are closed there is nothing left to finish, and tearing down
    JAX's runtime took 0.3-0.4 s of every run (measured); ``os._exit`` skips it."""
    import os

    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
