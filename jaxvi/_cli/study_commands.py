"""``jaxvi demo``, ``jaxvi simulate`` and ``jaxvi report``: a built-in workload, simulated
datasets to a file, and the report of a fitted study.
"""

from __future__ import annotations

import argparse

from jaxvi._cli.options import (
    add_model_options,
    positive_float,
    positive_int,
    size_pair,
)

__all__ = ["add_demo", "add_report", "add_simulate"]


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
    low, high = args.sizes
    print(
        f"jaxvi demo: {r.num_datasets:,} simulated datasets of "
        f"{low if low == high else f'{low}-{high}'} points"
    )
    from jaxvi._text import format_table

    for line in format_table(rows, align="<<"):
        print(f"  {line}")
    return 0


def add_demo(sub) -> None:
    demo = sub.add_parser(
        "demo",
        help="simulate a built-in workload and solve it all on the default device",
        description="Simulate NUM datasets from the model, solve every one (theta*, ELBO, "
        "gradient, exact log evidence and KL gap) and print a summary with timings.",
    )
    demo.add_argument(
        "-n",
        "--num-datasets",
        type=positive_int,
        default=1_000_000,
        help="number of datasets (default: 1,000,000)",
    )
    demo.add_argument(
        "--sizes",
        type=size_pair,
        default=(1, 64),
        help="dataset sizes: an inclusive range LOW:HIGH drawn uniformly, or one size N "
        "(default: 1:64)",
    )
    add_model_options(demo)
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.set_defaults(func=_cmd_demo)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from jaxvi._study.study import simulate_to_file

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


def add_simulate(sub) -> None:
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
        type=positive_int,
        required=True,
        help="number of datasets",
    )
    p.add_argument("-o", "--output", required=True, help="output table: .parquet, .csv or .npz")
    add_model_options(p)
    p.add_argument(
        "--sizes",
        type=size_pair,
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


def _cmd_report(args: argparse.Namespace) -> int:
    from jaxvi._study.plots import write_report

    files, text = write_report(
        args.results, args.output, truth=args.truth, lam=args.lam, sigma=args.sigma
    )
    if not args.quiet:
        print(text, end="")
        print("wrote " + ", ".join(str(f) for f in files))
    return 0


def add_report(sub) -> None:
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
        type=positive_float,
        default=None,
        help="prior rate used for the fit (default: from RESULTS' metadata)",
    )
    p.add_argument(
        "--sigma",
        type=positive_float,
        default=None,
        help="noise scale used for the fit (default: from RESULTS' metadata)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=_cmd_report)
