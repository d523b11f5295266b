"""The provenance line stamped on every figure."""

from __future__ import annotations

from matplotlib.figure import Figure

from sim.claims import ClaimResult


def stamp(fig: Figure, result: ClaimResult, samples: int | str, seed: int) -> None:
    """Write the provenance line (claim, profile, samples, seed, version) at the foot of
    ``fig``."""
    fig.text(0.01, 0.005, f"{result.id} · profile {result.profile} · samples {samples} · "
             f"seed {seed} · sigprop {result.version}", fontsize=7, color="0.4",
             ha="left", va="bottom")
