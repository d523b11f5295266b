"""Run profiles: ``quick`` (seconds; tests and CI), ``book`` (default; minutes on a laptop) and
``full`` (publication quality; a cluster). A profile changes grids and sample counts, never the
statistical standard."""

from __future__ import annotations

import os
from typing import Any

PROFILES = ("quick", "book", "full")
DEFAULT_PROFILE = "book"


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not known; choose one of {', '.join(PROFILES)}")
    return profile


def current_profile() -> str:
    """The profile named by ``$SIGPROP_PROFILE``, else ``book``."""
    return check_profile(os.environ.get("SIGPROP_PROFILE", DEFAULT_PROFILE))


def grid_samples(grid: dict[str, Any], at: Any, key: str = "samples", point: Any = None) -> int:
    """Sample count of a profile grid at ``at`` (a ``T``, a value ensemble, ...):
    ``grid[key]`` is one int for every point or a mapping from ``at`` to an int; an entry for
    ``point`` (e.g. ``(T, beta)``) in the optional mapping ``grid[key + "_at"]`` overrides it."""
    overrides = grid.get(f"{key}_at", {})
    if point is not None and point in overrides:
        return int(overrides[point])
    n = grid[key]
    return int(n[at]) if isinstance(n, dict) else int(n)
