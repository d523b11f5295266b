"""Progress bars: tqdm on a terminal, silent in CI or when output is not a terminal."""

from __future__ import annotations

import os
import sys

from tqdm import tqdm


def show_progress(requested: bool | None = None) -> bool:
    """Whether to draw a bar: ``requested`` if given, else only on an interactive stderr
    outside CI (``CI`` unset) and unless ``SIGPROP_PROGRESS=0``."""
    if requested is not None:
        return requested
    if os.environ.get("SIGPROP_PROGRESS") == "0" or os.environ.get("CI"):
        return False
    return sys.stderr.isatty()


def progress_bar(total: int, unit: str, requested: bool | None = None) -> tqdm:
    """A tqdm bar over ``total`` units (a context manager), disabled unless shown."""
    return tqdm(total=total, unit=unit, disable=not show_progress(requested), leave=False,
                file=sys.stderr)
