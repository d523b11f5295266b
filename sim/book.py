"""Helpers the book pages call: the verdict ledger and comparison tables (Markdown)."""

from __future__ import annotations

from collections.abc import Sequence

from sim.claims import ClaimResult, all_claims, verify
from sim.profiles import current_profile
from sim.stats import Comparison


def profile_note(profile: str | None = None) -> str:
    profile = profile or current_profile()
    return (f"*Built with the `{profile}` profile. `make book PROFILE=full` (a cluster) uses "
            "larger grids and more samples; the statistical standard is the same.*")


def claim_results(profile: str | None = None) -> list[ClaimResult]:
    """Every registered claim, run (from the cache when possible) under ``profile``."""
    return verify(None, profile or current_profile())


def ledger_markdown(profile: str | None = None) -> str:
    """The verdict ledger: claim, verdict, deciding number, link to its section."""
    claims = all_claims()
    lines = ["| claim | paper | verdict | deciding number |", "|---|---|---|---|"]
    for result in claim_results(profile):
        claim = claims[result.id]
        link = f"{{ref}}`{result.id} <{claim.anchor}>`"
        lines.append(f"| {link} | {claim.paper} | **{result.verdict}** | "
                     f"{_escape(result.deciding)} |")
    return "\n".join(lines)


def _escape(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def comparison_markdown(comparisons: Sequence[Comparison], label: str | None = None) -> str:
    """One row per comparison: parameters, prediction, estimate ± se, z, what it could detect,
    and whether it passed."""
    rows = [c for c in comparisons if label is None or c.label == label]
    if not rows:
        return "*(no comparisons)*"
    keys = list(rows[0].params)
    head = keys + ["prediction", "estimate ± se", "bias budget", "z", "detectable", "passed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in rows:
        cells = [_fmt(c.params[k]) if isinstance(c.params[k], float) else str(c.params[k])
                 for k in keys]
        cells += [_fmt(c.prediction), f"{_fmt(c.estimate)} ± {c.se:.2g}", f"{c.bias:.2g}",
                  f"{c.z:+.2f}", f"{100 * c.detectable_relative:.2g}%",
                  "yes" if c.passed else "**no**"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict_markdown(result: ClaimResult) -> str:
    twins = "all rejected" if result.mutations_rejected else "**not all rejected**"
    return (f"**Verdict: {result.verdict}.** {result.deciding}.\n\n{result.notes}\n\n"
            f"Mutation twins ({len(result.mutations)}, predictions made 10% wrong): {twins}.")


def edge_fit_markdown(fits: dict[str, dict | None]) -> str:
    """GAP-2's edge fits (``ClaimResult.data["edge_fits"]``): per ``markov_s`` the fitted
    exponent ``kappa`` of ``|sqrt(T) E sigma_2 - 2 r_T| ~ C T^-kappa`` with its interval, and
    which reference exponents (2/3, 1/2, 1) the interval contains."""
    lines = ["| s | kappa | 95% interval | side | contains 2/3 | 1/2 | 1 |",
             "|---|---|---|---|---|---|---|"]
    for s, fit in fits.items():
        if fit is None:
            lines.append(f"| {s} | - | no fit (the gap changes sign or too few T) | | | | |")
            continue
        lo, hi = fit["interval"]
        side = "above" if fit["sign"] > 0 else "below"
        yes = {True: "yes", False: "no"}
        lines.append(f"| {s} | {fit['kappa']:.2f} | [{lo:.2f}, {hi:.2f}] | {side} | "
                     f"{yes[fit['tracy_widom_2_3']]} | {yes[fit['one_half']]} | "
                     f"{yes[fit['one']]} |")
    return "\n".join(lines)
