"""Run profiles: ``quick`` (seconds; tests and CI), ``book`` (default; minutes on a laptop) and
``full`` (publication quality; a cluster). A profile changes grids and sample counts, never the
statistical standard."""

from __future__ import annotations

import os

PROFILES = ("quick", "book", "full")
DEFAULT_PROFILE = "book"


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not known; choose one of {', '.join(PROFILES)}")
    return profile


def current_profile() -> str:
    """The profile named by ``$SIGPROP_PROFILE``, else ``book``."""
    return check_profile(os.environ.get("SIGPROP_PROFILE", DEFAULT_PROFILE))
