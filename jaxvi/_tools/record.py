"""``jaxvi bench`` as a record a script can read: JSON out, records side by side, a roofline.

A record (``SCHEMA``) holds:

* ``device``: ``platform``, ``kind``, ``count``, ``nominal_gb_per_s`` (``null`` when unknown,
  as on CPUs) and a one-line ``summary``;
* ``versions``: ``jax``, ``jaxlib``, ``jaxvi``, ``numpy``, ``python``;
* ``settings``: the workload sizes and repetitions it ran with, and ``created`` (UTC);
* ``roofline``, ``workloads`` (jaxvi's) and ``peers``: one entry per contender, with ``name``,
  ``datasets_per_s``, ``gb_per_s``, ``fraction_of_sum`` (against ``jnp.sum`` over the same
  bytes, timed in the same run), ``fraction_of_nominal`` (``null`` when the nominal bandwidth
  is unknown), ``fraction_of_copy`` (against copying the same bytes from host to device, for
  work that starts on the host; else ``null``), ``compile_s``, ``seconds`` (median),
  ``num_datasets``, ``nbytes``, ``bytes_per_dataset``, ``max_rel_err_theta`` (``null`` when
  not measured) and ``note``.
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jaxvi._text import format_table
from jaxvi._tools.bench import BenchReport, BenchRow

__all__ = [
    "SCHEMA",
    "bench_record",
    "compare_records",
    "plot_records",
    "read_record",
    "write_record",
]

SCHEMA = "jaxvi.bench/1"
_ENTRY_KEYS = ("name", "datasets_per_s", "gb_per_s", "fraction_of_sum", "compile_s")
_GROUPS = {"roofline": "roofline", "jaxvi": "workloads", "peer": "peers"}


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _entry(row: BenchRow, nominal: float | None) -> dict[str, Any]:
    return {
        "name": row.name,
        "datasets_per_s": row.datasets_per_s,
        "gb_per_s": row.gb_per_s,
        "fraction_of_sum": row.roofline,
        "fraction_of_nominal": row.gb_per_s / nominal if nominal else None,
        "fraction_of_copy": _finite(row.fraction_of_copy),
        "compile_s": row.compile_seconds,
        "seconds": row.seconds,
        "num_datasets": row.num_datasets,
        "nbytes": row.nbytes,
        "bytes_per_dataset": row.nbytes / max(row.num_datasets, 1),
        "max_rel_err_theta": _finite(row.max_rel_err_theta),
        "headline": row.headline,
        "note": row.note,
    }


def bench_record(report: BenchReport) -> dict[str, Any]:
    """The JSON-ready record of one ``jaxvi bench`` run (see the module's docstring)."""
    import jax
    import jaxlib
    import numpy as np

    from jaxvi._version import __version__

    record: dict[str, Any] = {
        "schema": SCHEMA,
        "device": {
            "platform": report.platform,
            "kind": report.device_kind,
            "count": report.device_count,
            "nominal_gb_per_s": report.nominal_gbps,
            "summary": report.device,
        },
        "versions": {
            "jax": jax.__version__,
            "jaxlib": jaxlib.__version__,
            "jaxvi": __version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "settings": {**report.settings, "created": datetime.now(UTC).isoformat(timespec="seconds")},
    }
    for group in _GROUPS.values():
        record[group] = []
    for row in report.rows:
        record[_GROUPS[row.kind]].append(_entry(row, report.nominal_gbps))
    return record


def write_record(record: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``record`` as indented JSON to ``path``, atomically (no partial file)."""
    from jaxvi._results.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """A record written by ``jaxvi bench --json``; a clear error for any other file."""
    try:
        record = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a jaxvi bench record (not JSON: {err})") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a jaxvi bench record (no schema {SCHEMA!r})")
    for group in _GROUPS.values():
        for entry in record.get(group, []):
            missing = [k for k in _ENTRY_KEYS if k not in entry]
            if missing:
                raise ValueError(f"{path}: {group} entry {entry.get('name')!r} lacks {missing}")
    return record


def _label(record: dict[str, Any], path: str | os.PathLike) -> str:
    return f"{Path(path).stem} ({record['device']['kind']})"


def _ratio(entry: dict[str, Any] | None, first: dict[str, Any] | None) -> str:
    if entry is None or first is None:
        return "-"
    return f"{entry['datasets_per_s'] / first['datasets_per_s']:.2f}x"


def compare_records(records: Sequence[dict[str, Any]], paths: Sequence[str | os.PathLike]) -> str:
    """The records side by side: one line per contender (in the order they first appear),
    datasets/s and the fraction of ``jnp.sum`` for each record, and each record's datasets/s
    against the first's."""
    letters = [chr(ord("A") + i) for i in range(len(records))]
    lines = []
    for letter, rec, path in zip(letters, records, paths, strict=True):
        v = rec["versions"]
        lines.append(
            f"{letter}: {path}: {rec['device']['summary']}; jax {v['jax']}, jaxvi {v['jaxvi']}; "
            f"{rec['settings'].get('created', '')}"
        )
    names: list[str] = []
    tables = []
    for rec in records:
        by_name = {e["name"]: e for g in _GROUPS.values() for e in rec.get(g, [])}
        tables.append(by_name)
        names += [n for n in by_name if n not in names]
    head = ["contender"]
    for i, letter in enumerate(letters):
        head += [f"{letter} datasets/s", f"{letter} of sum"] + ([f"{letter}/A"] if i else [])
    body = []
    for name in names:
        cells = [name]
        first = tables[0].get(name)
        for i, table in enumerate(tables):
            e = table.get(name)
            if e is None:
                cells += ["-", "-"]
            else:
                cells += [f"{e['datasets_per_s']:.3g}", f"{e['fraction_of_sum']:.2f}"]
            if i:
                cells.append(_ratio(e, first))
        body.append(cells)
    return "\n".join([*lines, "", *format_table(body, head=head)])


def plot_records(
    records: Sequence[dict[str, Any]], paths: Sequence[str | os.PathLike], out: str | os.PathLike
) -> None:
    """Draw the records against their devices' rooflines into the PNG ``out``.

    Left: datasets/s against bytes per dataset, log-log; the lines are what the best measured
    ``jnp.sum`` bandwidth (solid) and the nominal bandwidth (dashed, where known) allow at each
    size; crosses are the roofline contenders themselves (``jnp.sum`` on each workload, the
    host-to-device copy), dots jaxvi, squares the peers. Right: each contender's fraction of
    ``jnp.sum`` over the same bytes. One colour per record."""
    import numpy as np
    from matplotlib.ticker import NullFormatter

    from jaxvi._study.plots import new_figure, save_png

    fig = new_figure((12, 5))
    roof_ax, frac_ax = fig.subplots(1, 2, width_ratios=(1, 1.2))
    colors = [f"C{i}" for i in range(len(records))]
    sizes = [e["bytes_per_dataset"] for r in records for g in _GROUPS.values() for e in r[g]]
    grid = np.geomspace(max(min(sizes, default=4) / 2, 1), max(sizes, default=4) * 2, 50)
    bars: list[tuple[str, float, str]] = []
    for rec, path, color in zip(records, paths, colors, strict=True):
        label = _label(rec, path)
        sums = [e["gb_per_s"] for e in rec["roofline"]]
        if sums:
            roof_ax.plot(grid, max(sums) * 1e9 / grid, color=color, lw=1, label=f"{label}: jnp.sum")
        nominal = rec["device"]["nominal_gb_per_s"]
        if nominal:
            roof_ax.plot(grid, nominal * 1e9 / grid, color=color, lw=1, ls="--",
                         label=f"{label}: nominal {nominal:.0f} GB/s")  # fmt: skip
        for group, marker in (("roofline", "x"), ("workloads", "o"), ("peers", "s")):
            for e in rec[group]:
                style = (
                    {"color": color}
                    if group == "roofline"
                    else {
                        "facecolors": "none" if group == "peers" else color,
                        "edgecolors": color,
                    }
                )
                roof_ax.scatter(e["bytes_per_dataset"], e["datasets_per_s"], marker=marker,
                                zorder=3, **style)  # fmt: skip
                roof_ax.annotate(e["name"], (e["bytes_per_dataset"], e["datasets_per_s"]),
                                 fontsize=6, xytext=(4, 2), textcoords="offset points")  # fmt: skip
                if group != "roofline":
                    tag = f" [{Path(path).stem}]" if len(records) > 1 else ""
                    bars.append((e["name"] + tag, e["fraction_of_sum"], color))
    roof_ax.set(xscale="log", yscale="log", xlabel="bytes per dataset", ylabel="datasets/s",
                title="roofline: datasets/s the bandwidth allows")  # fmt: skip
    roof_ax.xaxis.set_minor_formatter(NullFormatter())
    roof_ax.legend(fontsize=7)
    ys = np.arange(len(bars))
    frac_ax.barh(ys, [b[1] for b in bars], color=[b[2] for b in bars])
    frac_ax.set_yticks(ys, [b[0] for b in bars], fontsize=7)
    frac_ax.invert_yaxis()
    frac_ax.axvline(1.0, color="k", lw=0.8)
    frac_ax.set(xlabel="fraction of jnp.sum over the same bytes", title="each contender")
    save_png(fig, out)
