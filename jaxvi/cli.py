"""The ``jaxvi`` command. It parses arguments, calls the library and prints: no numerics here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


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


def _cmd_demo(args: argparse.Namespace) -> int:
    from jaxvi._demo import QUANTILES, run_demo

    r = run_demo(
        args.num_datasets, sizes=args.sizes, lam=args.lam, sigma=args.sigma, seed=args.seed
    )
    q = " / ".join(f"q{int(p * 100):02d}" for p in QUANTILES)
    rows = [
        ("device", r.device),
        ("datasets", f"{r.num_datasets:,}"),
        ("points", f"{r.num_points:,}"),
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
    width = max(len(k) for k, _ in rows)
    print(
        f"jaxvi demo: {r.num_datasets:,} simulated datasets of "
        f"{args.sizes[0]}-{args.sizes[1]} points"
    )
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``jaxvi`` command."""
    parser = argparse.ArgumentParser(
        prog="jaxvi",
        description="Exact closed-form variational inference for z ~ Exponential(lam), "
        "x_i | z ~ Normal(z, sigma^2), over millions of datasets at once.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
    demo.add_argument("--lam", type=float, default=1.0, help="prior rate lambda (default: 1)")
    demo.add_argument("--sigma", type=float, default=1.0, help="noise scale sigma (default: 1)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxvi`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:
        print(f"jaxvi: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
