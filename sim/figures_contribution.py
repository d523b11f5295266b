"""Figures of CW-2, CW-3, CW-4 (contribution weights). Each takes the claim's ``ClaimResult`` and
draws only from ``result.data`` (estimates and theory values stored by
``sim.claims.contribution``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from sim.claims import ClaimResult
from sim.stamp import stamp

_COLORS = {"passive": "0.4", "aligned": "C0", "active": "C3"}


def cw2_sink_curve(result: ClaimResult) -> Figure:
    """CW-2: left, the output norm ``||y||/sqrt(d)`` against the sink rate for the three sink
    geometries with the passive line ``(1 - s)||m||`` and the fixed-geometry theory; middle,
    ``E||y||^2/d`` with the exact population curve; right, ``cw_sink`` with its theory."""
    rows = result.data["rows"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    grid = np.linspace(0.0, 1.0, 201)
    for case, color in _COLORS.items():
        sub = sorted((r for r in rows if r["case"] == case), key=lambda r: r["s"])
        s = np.array([r["s"] for r in sub])
        cv = result.data["convexity"][case]
        axes[0].errorbar(s, [r["norm"] for r in sub], yerr=[r["norm_se"] for r in sub],
                         fmt="o", color=color, ms=4, capsize=2,
                         label=f"{case}: c2 = {cv['c2']:.3f} ± {cv['c2_se']:.1g}")
        axes[0].plot(s, [r["passive_line"] for r in sub], ":", color=color, lw=1)
        axes[1].errorbar(s, [r["output_norm"] for r in sub],
                         yerr=[r["output_norm_se"] for r in sub], fmt="o", color=color, ms=4,
                         capsize=2, label=case)
        axes[1].plot(s, [r["theory"] for r in sub], "-", color=color, lw=1)
        axes[2].errorbar(s, [r["cw_sink"] for r in sub], yerr=[r["cw_sink_se"] for r in sub],
                         fmt="o", color=color, ms=4, capsize=2, label=case)
        r_, c_ = np.sqrt(cv["r2"]), cv["cos"]
        q = grid**2 * r_**2 + 2 * grid * (1 - grid) * r_ * c_ + (1 - grid) ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            axes[2].plot(grid, grid * (grid * r_**2 + (1 - grid) * r_ * c_) / q, "-",
                         color=color, lw=1)
    axes[0].set_title("||y(s)||/sqrt(d); dotted: passive line (1 - s)||m||", fontsize=9)
    axes[1].set_title("E||y(s)||^2/d; lines: exact population curve", fontsize=9)
    axes[2].set_title("sink contribution weight; lines: large-d geometry", fontsize=9)
    axes[2].axhline(0.0, color="k", lw=0.5)
    axes[2].set_ylim(-1.5, 1.5)
    for ax in axes:
        ax.set_xlabel("sink rate s = A_i0")
        ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, result, rows[0]["samples"], rows[0]["seed"])
    return fig


def cw3_faithfulness(result: ClaimResult) -> Figure:
    """CW-3: mean Spearman correlation of each predictor (CW, |CW|, alpha, ||alpha v||) with the
    deletion effect on the layer output (left) and on the final representation (right), by
    ``beta``, without (filled) and with (open) a sink."""
    rows = result.data["rows"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), sharey=True)
    labels = {"cw": "CW", "abs_cw": "|CW|", "alpha": "alpha", "norm": "||alpha v||"}
    for ax, target in zip(axes, ("layer", "final"), strict=True):
        for k, (pr, name) in enumerate(labels.items()):
            for sink in (False, True):
                sub = sorted((r for r in rows if r["sink"] == sink), key=lambda r: r["beta"])
                ax.errorbar([r["beta"] for r in sub], [r[f"{pr}_{target}"] for r in sub],
                            yerr=[r[f"{pr}_{target}_se"] for r in sub],
                            fmt="s--" if sink else "o-", color=f"C{k}", ms=4, capsize=2,
                            mfc="none" if sink else f"C{k}",
                            label=f"{name}{' (sink)' if sink else ''}")
        ax.set_xscale("log")
        ax.set_xlabel("beta (score scale)")
        where = "layer-1 head output" if target == "layer" else "final representation"
        ax.set_title(f"deletion effect on the {where}", fontsize=9)
        ax.axhline(0.0, color="k", lw=0.5)
    axes[0].set_ylabel("Spearman(predictor, effect), mean over queries")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, result, rows[0]["samples"], rows[0]["seed"])
    return fig


def cw4_small_updates(result: ClaimResult) -> Figure:
    """CW-4: ``cos(v_0, Delta x_i)`` against the update size ``||y_i||^2/d`` per query (a
    subsample), coloured by the sink rate, for the aligned and the active sink."""
    rows = result.data["rows"]
    fig, axes = plt.subplots(1, len(rows), figsize=(5.5 * len(rows), 4.3), sharey=True)
    for ax, r in zip(np.atleast_1d(axes), rows, strict=True):
        sc = ax.scatter(r["output_norm"], r["cos"], c=r["sink_mass"], s=3, cmap="viridis",
                        vmin=0, vmax=1)
        ax.axhline(0.0, color="k", lw=0.5)
        ax.set_xscale("log")
        ax.set_xlabel("update size ||Delta x_i||^2/d")
        ax.set_title(f"{r['case']} sink: smallest 25% mean {r['small']:+.3f}", fontsize=9)
    np.atleast_1d(axes)[0].set_ylabel("cos(v_0, Delta x_i)")
    fig.subplots_adjust(bottom=0.17, right=0.88)
    fig.colorbar(sc, cax=fig.add_axes((0.9, 0.17, 0.015, 0.71)), label="sink rate A_i0")
    stamp(fig, result, rows[0]["samples"], rows[0]["seed"])
    return fig


#: figure name -> (claim id, drawing function)
FIGURES = {"cw2_sink_curve": ("CW-2", cw2_sink_curve),
           "cw3_faithfulness": ("CW-3", cw3_faithfulness),
           "cw4_small_updates": ("CW-4", cw4_small_updates)}
