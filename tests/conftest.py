"""Shared test helpers."""

import os

from sim.claims import ClaimResult, get_claim


def run_quick_claims(tmp_path_factory, ids: tuple[str, ...]) -> dict[str, ClaimResult]:
    """Run the claims ``ids`` under ``quick`` in a fresh cache directory (the environment's
    cache setting is restored afterwards); for module-scoped fixtures."""
    old = os.environ.get("SIGPROP_CACHE_DIR")
    os.environ["SIGPROP_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    try:
        return {i: get_claim(i).run("quick") for i in ids}
    finally:
        if old is None:
            del os.environ["SIGPROP_CACHE_DIR"]
        else:
            os.environ["SIGPROP_CACHE_DIR"] = old
