"""Progress bars on stderr for long work (tqdm, from the ``cli`` extra), or none."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(enabled: bool, unit: str, total: int | None = None, desc: str = "") -> Any:
    """A tqdm bar on stderr, or ``None`` when disabled or tqdm is missing. Short runs never
    draw one (``delay``), so a quick failure prints only its error line."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a nicety; without the cli extra there is none
        return None
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        file=sys.stderr,
        delay=1.0,
        leave=False,
        dynamic_ncols=True,
    )
