"""Figures of RS-4, RS-5, RS-6 (rank and symmetry). Each takes the claim's ``ClaimResult`` and
draws only from ``result.data`` (estimates stored by ``sim.claims.hcni``)."""

from __future__ import annotations

from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from sim.claims import ClaimResult
from sim.markdown import markdown_table
from sim.stamp import stamp
from theory import hcni as theory


def rs4_sigma_min(result: ClaimResult) -> Figure:
    """RS-4: quantiles of ``d sigma_min(W_O)`` against Edelman's limiting law."""
    fig, ax = plt.subplots(figsize=(6, 4))
    y = np.linspace(0.0, 3.5, 200)
    ax.plot(y, 1.0 - theory._generated().sigma_min_survival(y), "k-", lw=1.5,
            label="Edelman limit 1 - exp(-y^2/2 - y)")
    probs = np.linspace(0.01, 0.99, 99)
    for row in result.data["wo_rows"]:
        ax.plot(row["t_quantiles"], probs, "o", ms=3, label=f"engine W_O, d = {row['d']}")
    ax.axvline(result.data["sigma_min_median"], color="0.5", ls=":", lw=1)
    ax.set_xlabel("d sigma_min(W_O)")
    ax.set_ylabel("CDF")
    ax.legend(fontsize=8)
    row = result.data["wo_rows"][0]
    stamp(fig, result, row["samples"], row["seed"])
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def rs6_collapses(result: ClaimResult) -> Figure:
    """RS-6: the four collapses, each observable without (broken) and with its fix."""
    rows = result.data["rows"]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    for ax, row in zip(axes, rows, strict=True):
        vals = [row["broken"], row["fixed"]]
        errs = [row["broken_se"], row["fixed_se"]]
        ax.bar([0, 1], vals, yerr=errs, color=["C3", "C2"], capsize=3)
        ax.set_xticks([0, 1], ["collapse", "fix"])
        ax.set_title(f"{row['collapse']}\nfix: {row['fix']}", fontsize=8)
        ax.set_ylabel(row["observable"], fontsize=8)
        if min(vals) > 0 and max(vals) / min(vals) > 100:
            ax.set_yscale("log")
    stamp(fig, result, max(result.data["samples"].values()), result.data["seed"])
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


FIGURES: dict[str, tuple[str, Callable[[ClaimResult], Figure]]] = {
    "rs4_sigma_min": ("RS-4", rs4_sigma_min),
    "rs6_collapses": ("RS-6", rs6_collapses),
}


def rs6_table(result: ClaimResult) -> str:
    """RS-6 as a markdown table: collapse, symmetry, fix, observable broken -> fixed (+- SE)."""
    return markdown_table(
        ("collapse", "symmetry broken", "fix", "observable", "collapse", "fix", "calibrated"),
        ((r["collapse"], r["symmetry"], r["fix"], r["observable"],
          f"{r['broken']:.4g} ± {r['broken_se']:.1g}", f"{r['fixed']:.4g} ± {r['fixed_se']:.1g}",
          "yes" if r["calibrated"] else "no") for r in result.data["rows"]))
