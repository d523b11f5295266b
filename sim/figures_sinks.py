"""Figures of SD-1 to SD-5 (sinks and diagonal patterns). Each takes the claim's
``ClaimResult`` and draws only from ``result.data`` (estimates and theory values stored by
``sim.claims.sinks``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from sim.claims import ClaimResult
from sim.stamp import stamp


def _provenance(rows: list[dict]) -> tuple[int | str, int]:
    samples = sorted({r["samples"] for r in rows})
    return (samples[0] if len(samples) == 1 else f"{samples[0]}-{samples[-1]}"), rows[0]["seed"]


def sd1_switch(result: ClaimResult) -> Figure:
    """SD-1: output norm ``||y_i||^2/d`` against the mass off the sink ``1 - A_i0``, one curve
    per sink value scale, with ``E||y_i||^2/d`` (lines)."""
    rows, curve = result.data["rows"], result.data["curve"]
    fig, ax = plt.subplots(figsize=(7, 4.6))
    values = sorted({r["sink_value"] for r in rows})
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(values)))
    for sv, color in zip(values, colors, strict=True):
        cur = [c for c in curve if c["sink_value"] == sv]
        ax.plot([1 - c["sink_mass"] for c in cur], [c["theory"] for c in cur], "-", color=color,
                lw=1, label=f"theory, sink value {sv:g}")
        sub = [r for r in rows if r["sink_value"] == sv]
        ax.errorbar([1 - r["sink_mass"] for r in sub], [r["output_norm"] for r in sub],
                    yerr=[r["output_norm_se"] for r in sub], fmt="o", color=color, ms=5,
                    capsize=2, label=f"simulation, sink value {sv:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("attention mass off the sink, 1 - A_i0")
    ax.set_ylabel("output norm ||y_i||^2 / d")
    ax.set_title(f"T = {result.data['T']}, d = {result.data['d']}, a = "
                 f"{result.data['sink_align']:g}, b = {result.data['sink_cos']:g}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, result, *_provenance(rows))
    return fig


def sd2_alignment(result: ClaimResult) -> Figure:
    """SD-2: fraction of queries with ``A_i0 >= 1 - eps`` against ``T`` (left) and the minimal
    margin read off the fractions against ``log(T - 1)`` with the fitted slope (right)."""
    rows = sorted(result.data["rows"], key=lambda r: r["T"])
    Ts = np.array([r["T"] for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    ax = axes[0]
    ax.errorbar(Ts, [r["fraction"] for r in rows], yerr=[r["fraction_se"] for r in rows],
                fmt="o", color="C0", ms=5, capsize=2, label="simulation")
    ax.plot(Ts, [r["theory"] for r in rows], "k--", lw=1, label="theory P(t_i >= t*)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tokens T")
    ax.set_ylabel(f"fraction of queries with A_i0 >= 1 - {result.data['eps']:g}")
    ax.set_title("rank-one head c w e^T, w partly aligned with the tokens", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    x = np.log(Ts - 1)
    ax.errorbar(x, [r["margin_measured"] for r in rows], yerr=[r["margin_se"] for r in rows],
                fmt="o", color="C1", ms=5, capsize=2, label="margin read off the fractions")
    ax.plot(x, [r["margin_theory"] for r in rows], "k--", lw=1,
            label="M = log((T-1)(1-eps)/eps)")
    slope, icpt = result.data["slope"], result.data["intercept"]
    ax.plot(x, icpt + slope * x, "C3-", lw=1,
            label=f"fit: slope {slope:.3f} ± {result.data['slope_se']:.3f}")
    ax.set_xlabel("log(T - 1)")
    ax.set_ylabel("minimal logit margin M")
    ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, result, *_provenance(rows))
    return fig


def sd3_costs(result: ClaimResult) -> Figure:
    """SD-3: optimal diagonal / optimal sink cost against the alignment ``a`` per norm and
    ``T`` (left: nuclear, middle: Frobenius; ``> 1``: the sink is cheaper), and the planted
    forms' ratio ``c I`` on ``R^d`` vs ``c u e^T`` against ``d`` (right)."""
    grid, planted = result.data["map"], result.data["planted"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    Ts = sorted({r["T"] for r in grid})
    bs = sorted({r["sink_cos"] for r in grid})
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(Ts)))
    styles = ["o-", "s--", "^:"]
    for ax, norm in zip(axes[:2], ("nuclear", "frobenius"), strict=True):
        for T, color in zip(Ts, colors, strict=True):
            for b, style in zip(bs, styles, strict=False):
                sub = sorted((r for r in grid if r["T"] == T and r["sink_cos"] == b),
                             key=lambda r: r["sink_align"])
                ax.plot([r["sink_align"] for r in sub], [r[f"ratio_optimal_{norm}"] for r in sub],
                        style, color=color, ms=4, lw=1, label=f"T = {T}, b = {b:g}")
        ax.axhline(1.0, color="C3", lw=0.8)
        ax.set_xlabel("alignment a = sink_align")
        ax.set_ylabel(f"optimal diagonal / optimal sink, {norm} norm")
        ax.set_title(f"{norm}: > 1 means the sink is cheaper", fontsize=9)
        ax.legend(fontsize=6, ncol=2)
    ax = axes[2]
    aligns = sorted({r["sink_align"] for r in planted})
    acol = plt.cm.plasma(np.linspace(0.0, 0.8, len(aligns)))
    T_ref = max(r["T"] for r in planted)
    for a, color in zip(aligns, acol, strict=True):
        sub = sorted((r for r in planted if r["sink_align"] == a and r["T"] == T_ref),
                     key=lambda r: r["d"])
        ax.plot([r["d"] for r in sub], [r["ratio_nuclear"] for r in sub], "o-", color=color,
                ms=4, lw=1, label=f"nuclear, a = {a:g}")
        ax.plot([r["d"] for r in sub], [r["ratio_frobenius"] for r in sub], "s--", color=color,
                ms=4, lw=1, label=f"Frobenius, a = {a:g}")
    ax.axhline(1.0, color="C3", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("width d")
    ax.set_ylabel("planted c I (on R^d) / planted c u e^T")
    ax.set_title(f"planted forms, T = {T_ref}, eps = 0.05, b = 0", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, result, "none (optimisation)", 0)
    return fig


def sd4_smoothing(result: ClaimResult) -> Figure:
    """SD-4: ``mu`` after each layer's head against its input ``mu`` per case (left: by layer,
    measured points and d -> infinity predicted lines; right: measured / predicted, filled at
    finite ``d`` (the exact comparisons), open for the d -> infinity law with REM rows)."""
    rows = result.data["rows"]
    cases = list(dict.fromkeys(r["case"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    for k, case in enumerate(cases):
        sub = sorted((r for r in rows if r["case"] == case), key=lambda r: r["layer"])
        layers = [r["layer"] for r in sub]
        color = f"C{k}"
        axes[0].plot(layers, [r["mu_in"] for r in sub], ":", color=color, lw=1)
        axes[0].errorbar(layers, [r["mu_out"] for r in sub], yerr=[r["mu_out_se"] for r in sub],
                         fmt="o", color=color, ms=4, capsize=2, label=f"{case}: measured mu'")
        axes[0].plot(layers, [r["predicted"] for r in sub], "-", color=color, lw=1)
        x = np.array(layers) + 0.06 * (k - 1.5)
        axes[1].errorbar(x, [r["ratio_finite_d"] for r in sub],
                         yerr=[r["ratio_finite_d_se"] for r in sub], fmt="o", color=color, ms=4,
                         capsize=2, label=f"{case}: finite d")
        axes[1].errorbar(x + 0.25, [r["ratio"] for r in sub], yerr=[r["ratio_se"] for r in sub],
                         fmt="o", mfc="none", color=color, ms=4, capsize=2,
                         label=f"{case}: d -> infinity, REM rows")
    axes[0].set_xlabel("layer l")
    axes[0].set_ylabel("consensus distance mu (dotted: input, lines: predicted output)")
    axes[0].legend(fontsize=7)
    axes[1].axhline(1.0, color="k", lw=0.8)
    axes[1].set_xlabel("layer l")
    axes[1].set_ylabel("measured / predicted mu after the head")
    axes[1].legend(fontsize=6, ncol=2)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, result, *_provenance(rows))
    return fig


def sd5_diagonal_error(result: ClaimResult) -> Figure:
    """SD-5: relative error of the token-wise map against the diagonal margin ``c d``."""
    rows, curve = result.data["rows"], result.data["curve"]
    fig, ax = plt.subplots(figsize=(7, 4.6))
    ax.plot([c["margin"] for c in curve], [c["theory"] for c in curve], "k-", lw=1,
            label="theory T(T-1)/(T - 1 + e^m)^2")
    ax.errorbar([r["margin"] for r in rows], [r["diagonal_error"] for r in rows],
                yerr=[r["diagonal_error_se"] for r in rows], fmt="o", color="C0", ms=5,
                capsize=2, label="simulation")
    ax.set_yscale("log")
    ax.set_xlabel("diagonal margin m = qk_scale d")
    ax.set_ylabel("sum_i |y_i - F x_i|^2 / sum_i |F x_i|^2")
    ax.set_title(f"W_QK = c I, isometric input, T = {result.data['T']}, d = {result.data['d']}",
                 fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, result, *_provenance(rows))
    return fig


#: figure name -> (claim id, drawing function), merged into ``sim.figures.FIGURES``
FIGURES = {"sd1_switch": ("SD-1", sd1_switch), "sd2_alignment": ("SD-2", sd2_alignment),
           "sd3_costs": ("SD-3", sd3_costs), "sd4_smoothing": ("SD-4", sd4_smoothing),
           "sd5_diagonal_error": ("SD-5", sd5_diagonal_error)}
