"""The ``jaxvi`` command. It parses arguments, calls the library and prints: no numerics here.

Each subcommand is registered by one ``add_<name>(sub)`` function of :mod:`jaxvi._cli`, listed
in :data:`SUBCOMMANDS`; its handler imports the library lazily, so ``jaxvi --help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from jaxvi._cli.bench_command import add_bench
from jaxvi._cli.fit_command import add_fit
from jaxvi._cli.options import Parser
from jaxvi._cli.study_commands import add_demo, add_report, add_simulate

# One registration function per subcommand; `jaxvi bench` adds itself here.
SUBCOMMANDS = [add_demo, add_simulate, add_fit, add_report, add_bench]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``jaxvi`` command."""
    parser = Parser(
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxvi`` command; returns the exit code.

    SIGINT and SIGTERM stop a command at once with exit code 128 + the signal and one line,
    also where some code lost the signal's exception (:mod:`jaxvi._results.signals`)."""
    from jaxvi._results.signals import handle_signals, raise_if_signalled, stopped_by

    parser = build_parser()
    args = parser.parse_args(argv)
    with handle_signals():
        try:
            code = args.func(args)
            raise_if_signalled()  # the run went on, but it was asked to stop
            return code
        except BaseException as err:
            signum = stopped_by(err)  # a library may have made another error of the signal
            if signum is None:
                if not isinstance(err, (ValueError, OSError)):
                    raise
                print(f"jaxvi {args.command}: error: {err}", file=sys.stderr)
                return 2
    print(f"jaxvi {args.command}: interrupted", file=sys.stderr)
    return 128 + signum


def run() -> NoReturn:
    """The console script: :func:`main`, then a quick exit.

    NumPy's OpenBLAS gets one thread unless the user set its count: no command does linear
    algebra, and the threads OpenBLAS starts at NumPy's import spin while they wait, 0.16 of
    the 2.6 CPU seconds of ``jaxvi fit`` on 10⁶ datasets (2 cores, ``perf``).

    Once the command's files are closed there is nothing left to finish, and tearing down
    JAX's runtime took 0.3-0.4 s of every run (measured); ``os._exit`` skips it."""
    import os

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy is imported
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
