"""Progress bars on stderr for long work (tqdm, from the ``cli`` extra), or a bar that draws
nothing: callers update and close either without asking which they got."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["NoBar", "progress_bar"]


class NoBar:
    """What :func:`progress_bar` returns when no bar is drawn: every call does nothing."""

    n = 0

    def update(self, n: float = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(
    enabled: bool,
    unit: str,
    total: int | None = None,
    desc: str = "",
    *,
    delay: float = 1.0,
    leave: bool = False,
    scale: bool | None = None,
) -> Any:
    """A tqdm bar on stderr, or a :class:`NoBar` when ``enabled`` is false or tqdm is missing.

    Args:
        enabled: draw a bar at all.
        unit: what one step counts (``"datasets"``, ``"block"``, ``"%"``).
        total: the number of steps, when known.
        desc: the bar's label.
        delay: seconds before the bar first appears. The command's default of 1 s means short
            runs never draw one, so a quick failure prints only its error line.
        leave: keep the finished bar on the screen.
        scale: print counts with SI prefixes (``65.5k``, and fractions as ``50.3``);
            ``None`` does so for a total of 1000 or more, or none, so that a small count reads
            ``10/10``, not ``10.0/10.0``.
    """
    if scale is None:
        scale = total is None or total >= 1000
    if not enabled:
        return NoBar()
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a nicety; without the cli extra there is none
        return NoBar()
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=scale,
        file=sys.stderr,
        delay=delay,
        leave=leave,
        dynamic_ncols=True,
    )
