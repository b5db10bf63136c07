"""Parquet sorted by id, read a range of ids at a time.

One group-by over the whole input holds every dataset's state until the input has been read,
so its memory grows with the number of datasets. When the Parquet files' own statistics show
that their row groups hold ranges of ids that do not overlap (as a file written sorted by id
has, jaxvi's simulations included), the input is read as consecutive ranges of ids instead:
one group-by per range, each reading only its row groups (DuckDB skips the others by their
min and max), each sorted by id and all in order. A dataset whose rows straddle two row groups
falls in one range whole. Memory is then bounded by a range, not by the input.

Anything else (a row group without statistics, ids that may be missing, row groups whose ids
overlap, a file without the id column, CSV, JSON, a DataFrame) is read by the one group-by.
Nothing here imports JAX.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from jaxvi._tables.engine import run_sql
from jaxvi._tables.sources import Source

__all__ = ["RANGE_ROWS", "IdRanges", "id_ranges"]

# Rows per range, at least; a range is whole row groups (DuckDB's writer makes them of
# 122,880 rows, pyarrow's of 2²⁰), and the one it shares with the next range is read twice.
# On 10⁶ sorted datasets in pyarrow's row groups (benchmarks/files.py), 2²² rows per range
# took `jaxvi fit`'s peak RSS from 359-364 MB to 271-272 MB at the same wall time, and 2²¹
# saved 10 MB more for 0.1-0.2 s. Once the statistics were read on a thread of their own
# (:mod:`jaxvi._tables.read_ahead`), 2²³ was 3% faster than 2²² in three runs of 7-9 rounds
# (1.63 s against 1.68 s; a range's group-by and sort, and its shared row group, come half as
# often) for 10-18 MB more.
RANGE_ROWS = 1 << 23


@dataclass(frozen=True)
class IdRanges:
    """How a sorted input is read by ranges of ids.

    Attributes:
        starts: the ids at which the ranges after the first start, increasing: the ranges
            are ``id < starts[0]``, ``starts[0] ≤ id < starts[1]``, …, ``starts[-1] ≤ id``.
        rows: the input's rows, from the files' metadata.
    """

    starts: tuple[int, ...]
    rows: int

    def bounds(self) -> list[tuple[int | None, int | None]]:
        """``(low, high)`` of each range, ``None`` where it is open."""
        edges: list[int | None] = [None, *self.starts, None]
        return list(itertools.pairwise(edges))


def id_ranges(con: Any, src: Source, id: str) -> IdRanges | None:
    """How to read ``src`` by ranges of ids, or ``None`` when it must be read whole.

    Args:
        con: a DuckDB connection.
        src: the input; only Parquet files qualify.
        id: its id column, of an integer type.

    Returns:
        The ranges (of at least :data:`RANGE_ROWS` rows, two or more); ``None`` unless ``src``
        is Parquet whose every row group has statistics of the id, no NULL ids and ids that do
        not overlap another's, with rows enough for two ranges.
    """
    if src.fmt != "parquet":
        return None
    groups = run_sql(
        con,
        f"""SELECT file_name, row_group_num_rows,
                   TRY_CAST(stats_min_value AS {src.columns[id]}),
                   TRY_CAST(stats_max_value AS {src.columns[id]}), stats_null_count
            FROM parquet_metadata($files) WHERE lower(path_in_schema) = lower($id)
            ORDER BY 3, 4""",
        {"files": list(src.files), "id": id},
        src.label,
    ).fetchall()
    if len({g[0] for g in groups}) < len(src.files) or any(
        lo is None or hi is None or nulls != 0 for _, _, lo, hi, nulls in groups
    ):
        return None  # a file without the column, a row group without statistics or with NULLs
    if any(a[3] > b[2] for a, b in itertools.pairwise(groups)):
        return None  # row groups whose ids overlap: not sorted
    starts: list[int] = []
    held, last = 0, groups[0][2]
    for _, n, lo, _, _ in groups:
        if held >= RANGE_ROWS and lo > last:
            starts.append(lo)
            held, last = 0, lo
        held += n
    if not starts:
        return None
    return IdRanges(tuple(starts), sum(g[1] for g in groups))
