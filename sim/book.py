"""Helpers the book pages call: the verdict ledger and comparison tables (Markdown)."""

from __future__ import annotations

from collections.abc import Sequence

from sim.claim_cache import prefetch
from sim.claims import ClaimResult, all_claims, verify
from sim.markdown import markdown_table
from sim.profiles import current_profile
from sim.stats import Comparison

#: claims by decreasing cost under the ``book`` profile (measured 2026-11-29, one core each);
#: the ledger starts them first so that its two worker processes finish together
SLOWEST_FIRST = ("REM-4", "REM-F", "REM-5", "GAP-7", "GAP-8", "GAP-3", "GAP-1", "GAP-4", "PM-2",
                 "GAP-5", "GAP-6", "SD-1", "PM-3", "CW-2", "PM-4")


def profile_note(profile: str | None = None) -> str:
    profile = profile or current_profile()
    return (f"*Built with the `{profile}` profile. `make book PROFILE=full` (a cluster) uses "
            "larger grids and more samples; the statistical standard is the same.*")


def claim_results(profile: str | None = None) -> list[ClaimResult]:
    """Every registered claim, run (from the cache when possible) under ``profile``; missing
    ones are computed side by side in local processes first (``sim.claim_cache.prefetch``)."""
    profile = profile or current_profile()
    ids = list(all_claims())
    prefetch(sorted(ids, key=lambda c: SLOWEST_FIRST.index(c) if c in SLOWEST_FIRST
                    else len(SLOWEST_FIRST)), profile)
    return verify(None, profile)


def ledger_markdown(profile: str | None = None) -> str:
    """The verdict ledger: claim, verdict, deciding number, link to its section."""
    claims = all_claims()
    lines = ["| claim | paper | verdict | deciding number |", "|---|---|---|---|"]
    for result in sorted(claim_results(profile), key=_chapter_order):
        claim = claims[result.id]
        link = f"{{ref}}`{result.id} <{claim.anchor}>`"
        lines.append(f"| {link} | {claim.paper} | **{result.verdict}** | "
                     f"{_escape(result.deciding)} |")
    return "\n".join(lines)


#: claim-id prefixes in the order of the book's chapters
CHAPTER_ORDER = ("GAP", "REM", "PM", "SD", "CW", "RS")


def _chapter_order(result: ClaimResult) -> tuple[int, int]:
    """(chapter, number): ``GAP-2`` before ``GAP-10``; a lettered id (``REM-F``, the chapter's
    foundation) first in its chapter."""
    prefix, _, suffix = result.id.partition("-")
    chapter = CHAPTER_ORDER.index(prefix) if prefix in CHAPTER_ORDER else len(CHAPTER_ORDER)
    return chapter, int(suffix) if suffix.isdigit() else -1


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
    keys = list(dict.fromkeys(k for c in rows for k in c.params))
    head = keys + ["prediction", "estimate ± se", "bias budget", "z", "detectable", "passed"]
    lines = []
    for c in rows:
        cells = [_fmt(c.params[k]) if isinstance(c.params.get(k), float)
                 else str(c.params.get(k, "-")) for k in keys]
        cells += [_fmt(c.prediction), f"{_fmt(c.estimate)} ± {c.se:.2g}", f"{c.bias:.2g}",
                  f"{c.z:+.2f}", f"{100 * c.detectable_relative:.2g}%",
                  "yes" if c.passed else "**no**"]
        lines.append(cells)
    return markdown_table(head, lines)


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


def comparison_tables(result: ClaimResult) -> str:
    """One ``comparison_markdown`` table per comparison label of ``result``, in order; the
    heading says when the label's comparisons are reported beside the verdict (role
    ``"reference"``, ``sim.stats.Comparison.role``) rather than deciding it."""
    labels = dict.fromkeys(c.label for c in result.comparisons)
    return "\n\n".join(f"*{label}*{_role_note(result.comparisons, label)}\n\n"
                       f"{comparison_markdown(result.comparisons, label)}" for label in labels)


def _role_note(comparisons: list, label: str) -> str:
    roles = {c.role for c in comparisons if c.label == label}
    if roles == {"reference"}:
        return " (reported beside the verdict, not deciding it)"
    if "reference" in roles:
        return " (some rows reported beside the verdict, not deciding it)"
    return ""


def coverage_markdown(result: ClaimResult) -> str:
    """The PM-3 coverage table (markdown): by ``d`` and ``sigma_v2``, the fraction of draws
    whose top eigenvalue of ``I + F`` is real, and real and separated, with SEs."""
    return markdown_table(
        ("d", "sigma_v2", "top real", "real and separated", "median r", "samples"),
        ((r["d"], f"{r['sigma_v2']:g}", f"{r['real_top']:.3f} +- {r['real_top_se']:.3f}",
          f"{r['separated']:.3f} +- {r['separated_se']:.3f}", f"{r['median_r']:.4f}",
          r["samples"]) for r in result.data["coverage"]))
