"""Figures of GAP-5 .. GAP-8 (Mind the gap in depth). Each takes the claim's ``ClaimResult`` and
draws only from ``result.data`` (estimates and theory values stored by ``sim.claims.gap_depth``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from sim.claims import ClaimResult
from sim.stamp import stamp


def _provenance(rows: list[dict]) -> tuple[int, int]:
    return max(r["samples"] for r in rows), rows[0]["seed"]


def _depth_panel(ax, rows, key, group, label_fmt, log=True):
    groups = sorted({r[group] for r in rows}, key=str)
    colors = plt.cm.viridis(np.linspace(0.05, 0.85, max(len(groups), 1)))
    for g, color in zip(groups, colors, strict=True):
        sub = sorted((r for r in rows if r[group] == g), key=lambda r: r["layer"])
        layers = [r["layer"] for r in sub]
        ax.errorbar(layers, [r[key] for r in sub], yerr=[r[f"{key}_se"] for r in sub],
                    fmt="o", color=color, ms=4, capsize=2, label=label_fmt(g))
        ax.plot(layers, [r[f"{key}_theory"] for r in sub], "-", color=color, lw=1)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("layer l")


def gap5_depth(result: ClaimResult) -> Figure:
    """GAP-5: bulk fraction by layer for each option at the largest T (points: simulation,
    lines: recursion), and the paper's sr(X X^T) by layer."""
    rows = result.data["rows"]
    Tmax = max(r["T"] for r in rows)
    sub = [r for r in rows if r["T"] == Tmax]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    _depth_panel(left, sub, "bulk_fraction", "option", str)
    left.set_ylabel("bulk fraction E||X - 1 xbar^T||^2 / E||X||^2")
    left.set_title(f"T = d = {Tmax}: simulation (points), recursion (lines)", fontsize=9)
    left.legend(fontsize=8)
    rank = result.data["rank_rows"]
    Tr = max(r["T"] for r in rank)
    for option, color in zip(sorted({r["option"] for r in rank}),
                             plt.cm.viridis(np.linspace(0.05, 0.85, 4)), strict=False):
        s = sorted((r for r in rank if r["T"] == Tr and r["option"] == option),
                   key=lambda r: r["layer"])
        right.plot([r["layer"] for r in s], [r["gram_stable_rank"] - 1 for r in s], "o-",
                   color=color, ms=4, label=option)
    right.set_yscale("log")
    right.set_xlabel("layer l")
    right.set_ylabel("sr(X X^T) - 1")
    right.set_title(f"the paper's rank measure, T = d = {Tr}", fontsize=9)
    right.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, result, *_provenance(rows))
    return fig


def _gradient_panel(ax, rows):
    for scaling, color in zip(sorted({r["scaling"] for r in rows}),
                              plt.cm.viridis(np.linspace(0.05, 0.85, 3)), strict=False):
        s = sorted((r for r in rows if r["scaling"] == scaling and r["layer"] == 1),
                   key=lambda r: r["T"])
        Ts = [r["T"] for r in s]
        ax.errorbar(Ts, [r["jacobian_frobenius2"] for r in s], yerr=[r["se"] for r in s],
                    fmt="o", color=color, ms=4, capsize=2,
                    label=f"{scaling}: slope {s[0]['slope']:.2f}")
        ax.plot(Ts, [r["theory"] for r in s], "-", color=color, lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("T")
    ax.set_ylabel("E ||dX_L/dW_V^1||_F^2")
    ax.legend(fontsize=7)


def gap6_gradients(result: ClaimResult) -> Figure:
    """GAP-6: E||dX_L/dW_V^1||^2 against T for three width/value scalings (points: simulation,
    lines: exact theory)."""
    rows = result.data["rows"]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    _gradient_panel(ax, rows)
    ax.set_title(f"gap kept, L = {max(r['layer'] for r in rows)}", fontsize=9)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, result, *_provenance(rows))
    return fig


def gap7_fix(result: ClaimResult) -> Figure:
    """GAP-7: bulk fraction with the gap removed, gradients with the gap removed, and the
    key-query energy kept by one A_perp layer against beta."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    rows = result.data["rows"]
    _depth_panel(axes[0], rows, "bulk_fraction", "T", lambda T: f"T = {T}", log=False)
    axes[0].set_ylabel("bulk fraction")
    axes[0].set_title("gap removed: (T-1)/T at every depth", fontsize=9)
    axes[0].legend(fontsize=8)
    _gradient_panel(axes[1], result.data["gradient_rows"])
    axes[1].set_title("gap removed: gradients", fontsize=9)
    kq = result.data["key_query_rows"]
    for T, color in zip(sorted({r["T"] for r in kq}),
                        plt.cm.viridis(np.linspace(0.05, 0.85, 3)), strict=False):
        s = sorted((r for r in kq if r["T"] == T), key=lambda r: r["beta"])
        axes[2].errorbar([r["beta"] for r in s], [r["ratio"] for r in s],
                         yerr=[r["se"] for r in s], fmt="o", color=color, ms=4, capsize=2,
                         label=f"T = d = {T}")
        axes[2].plot([r["beta"] for r in s], [r["theory"] for r in s], "-", color=color, lw=1)
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("beta (score std beta sqrt(ln T))")
    axes[2].set_ylabel("||A_perp X W_V||^2 / ||X||^2")
    axes[2].set_title("key-query caveat: sigma_v2 (E ipr - 1/T)", fontsize=9)
    axes[2].legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, result, *_provenance(rows))
    return fig


def gap8_differential(result: ClaimResult) -> Figure:
    """GAP-8: eigenvalues of A_1 - lambda A_2 (a few samples), E||D||_F^2 against lambda, and
    the bulk fraction in depth for each lambda."""
    spec = result.data["spectra_rows"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    T0 = min(r["T"] for r in spec)
    lams = sorted({r["diff_lambda"] for r in spec})
    colors = plt.cm.viridis(np.linspace(0.05, 0.85, len(lams)))
    for r in (r for r in spec if r["T"] == T0):
        color = colors[lams.index(r["diff_lambda"])]
        axes[0].plot(r["eig_real"], r["eig_imag"], ".", color=color, ms=2,
                     label=f"lambda = {r['diff_lambda']:g}")
        axes[0].plot([1 - r["diff_lambda"]], [0], "x", color=color, ms=8)
    axes[0].set_aspect("equal")
    axes[0].set_xlabel("Re")
    axes[0].set_ylabel("Im")
    axes[0].set_title(f"eigenvalues, T = {T0} (x: 1 - lambda)", fontsize=9)
    axes[0].legend(fontsize=6, markerscale=4, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for T, marker in zip(sorted({r["T"] for r in spec}), "osd^", strict=False):
        s = sorted((r for r in spec if r["T"] == T), key=lambda r: r["diff_lambda"])
        axes[1].errorbar([r["diff_lambda"] for r in s], [r["frobenius2"] for r in s],
                         yerr=[r["se"] for r in s], fmt=marker, ms=4, capsize=2,
                         label=f"T = {T}")
        axes[1].plot([r["diff_lambda"] for r in s], [r["theory"] for r in s], "k-", lw=0.8)
    axes[1].set_xlabel("lambda")
    axes[1].set_ylabel("E ||A_1 - lambda A_2||_F^2")
    axes[1].set_title("(1-lambda)^2 + (1+lambda^2) b", fontsize=9)
    axes[1].legend(fontsize=8)
    rows = result.data["rows"]
    Tmax = max(r["T"] for r in rows)
    _depth_panel(axes[2], [r for r in rows if r["T"] == Tmax], "bulk_fraction", "diff_lambda",
                 lambda lam: f"lambda = {lam:g}")
    axes[2].set_ylabel("bulk fraction")
    axes[2].set_title(f"depth, T = d = {Tmax}", fontsize=9)
    axes[2].legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, result, *_provenance(spec))
    return fig


#: figure name -> (claim id, drawing function), merged into ``sim.figures.FIGURES``
FIGURES = {"gap5_depth": ("GAP-5", gap5_depth), "gap6_gradients": ("GAP-6", gap6_gradients),
           "gap7_fix": ("GAP-7", gap7_fix), "gap8_differential": ("GAP-8", gap8_differential)}
