"""Aligned text tables: the one printer behind ``jaxvi demo``, ``report`` and ``bench``."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["format_table"]


def format_table(
    rows: Sequence[Sequence[str]], *, head: Sequence[str] | None = None, align: str = ""
) -> list[str]:
    """Rows of text cells as aligned lines, two spaces between columns.

    Args:
        rows: the cells, one sequence per line, all of one length.
        head: a header line, aligned with the rows.
        align: one character per column, ``"<"`` (left) or ``">"`` (right); by default the
            first column is left-aligned and the rest right-aligned.

    Examples:
        >>> format_table([("a", "1.5"), ("longer", "10.25")], head=("name", "s"))
        ['name        s', 'a         1.5', 'longer  10.25']
        >>> format_table([("datasets", "10"), ("device", "cpu")], align="<<")
        ['datasets  10', 'device    cpu']
    """
    table = [tuple(head)] if head is not None else []
    table += [tuple(row) for row in rows]
    if not table:
        return []
    columns = len(table[0])
    align = align or "<" + ">" * (columns - 1)
    widths = [max(len(row[i]) for row in table) for i in range(columns)]
    lines = []
    for row in table:
        cells = [
            cell.ljust(w) if a == "<" else cell.rjust(w)
            for cell, w, a in zip(row, widths, align, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines
