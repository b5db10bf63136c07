"""The accelerator targets of issue 13, read from a ``jaxvi bench --json`` record.

    python benchmarks/accelerator_targets.py bench.json

Prints one line per target: the measured fraction, the target, and whether it is met. The
targets are set for GPUs; on a CPU the same fractions are printed for comparison. Exit code 0
whatever the outcome (a missed target is a result, not an error).
"""

from __future__ import annotations

import argparse

from jaxvi._text import format_table
from jaxvi._tools.record import read_record

# (contender, field, target, what it measures)
TARGETS = (
    ("padded solve, lengths", "fraction_of_sum", 0.6, "padded solve(suff_stats(x, lengths))"),
    ("ragged stats, jit(suff_stats_ragged)", "fraction_of_sum", 0.3, "ragged, device values"),
    ("ragged fit", "fraction_of_copy", 0.5, "ragged fit from host NumPy vs the copy"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record")
    args = parser.parse_args()
    rec = read_record(args.record)
    entries = {e["name"]: e for g in ("roofline", "workloads", "peers") for e in rec[g]}
    print(f"device: {rec['device']['summary']}; jax {rec['versions']['jax']}")
    rows = []
    for name, field, target, what in TARGETS:
        e = entries.get(name)
        got = None if e is None else e.get(field)
        nominal = None if e is None else e.get("fraction_of_nominal")
        rows.append(
            (
                what,
                field,
                "-" if got is None else f"{got:.2f}",
                f">= {target}",
                "-" if nominal is None else f"{nominal:.2f}",
                "-" if got is None else ("met" if got >= target else "missed"),
            )
        )
    head = ("target", "against", "measured", "GPU target", "of nominal", "")
    print("\n".join(format_table(rows, head=head)))


if __name__ == "__main__":
    main()
