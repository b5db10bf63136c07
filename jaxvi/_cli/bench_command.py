"""``jaxvi bench``: time jaxvi against the roofline and its peers; ``--json`` writes the run as
a record, ``--plot`` draws it, ``--compare`` prints records side by side.
"""

from __future__ import annotations

import argparse

from jaxvi._cli.options import positive_int

__all__ = ["add_bench"]


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.compare:
        return _compare_bench(args)
    from jaxvi._tools.bench import parse_peers, run_bench
    from jaxvi._tools.record import bench_record, plot_records, write_record

    if args.plot:
        from jaxvi._study.plots import new_figure

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


def add_bench(sub) -> None:
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
        type=positive_int,
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
    p.add_argument("--reps", type=positive_int, default=5, help="repetitions (default: 5)")
    p.add_argument(
        "--svi-datasets",
        type=positive_int,
        default=64,
        help="datasets NumPyro fits, its datasets/s is scaled from them (default: 64)",
    )
    p.add_argument("--svi-steps", type=positive_int, default=2000, help="SVI steps (default: 2000)")
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
