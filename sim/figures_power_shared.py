"""Figures of PM-1, PM-4, PM-5 (layers as power iterations, shared weights). Each takes the
claim's ``ClaimResult`` and draws only from ``result.data`` and ``result.comparisons``
(estimates and theory values stored by ``sim.claims.power_shared``).

A *sine* here is ``sqrt(1 - a^2)`` of the sample-mean alignment ``a`` (token mean, then sample
mean), close to the root-mean-square sine near convergence; values below ``1e-9`` are rounding
and are not drawn.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from sim.claims import ClaimResult
from sim.claims.power_shared import CANCELLATION_FLOOR, FLOOR, WINDOW
from sim.stamp import stamp

#: below this a sine from ``sqrt(1 - a^2)`` is rounding
_ROUNDING = 1e-9
_MATRICES = (("align_F", "F", "C3"), ("align_M", "I + F", "C0"),
             ("align_centred", "P(I + F)", "C2"))


def _provenance(rows: list[dict]) -> tuple[int, int]:
    return max(r["samples"] for r in rows), rows[0]["seed"]


def _sine(a: np.ndarray) -> np.ndarray:
    s = np.sqrt(np.clip(1.0 - np.asarray(a, dtype=float) ** 2, 0.0, None))
    return np.where(s > _ROUNDING, s, np.nan)


def pm1_alignment(result: ClaimResult) -> Figure:
    """PM-1: alignment of the tokens with the top eigenvectors of F, I + F and P(I + F) by
    layer, L2 (left) and LayerNorm (right); top: alignment, bottom: sine (log) with the
    fitted and the predicted token rate over the fit window."""
    rows = result.data["rows"]
    cases = (("l2", "l2", "L2 normaliser"), ("layernorm", "post", "LayerNorm"))
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    for col, (case, norm, title) in enumerate(cases):
        sub = sorted((r for r in rows if r["case"] == case), key=lambda r: r["layer"])
        layers = np.array([r["layer"] for r in sub])
        top, bottom = axes[0, col], axes[1, col]
        for key, name, color in _MATRICES:
            a = np.array([r[key] for r in sub])
            top.errorbar(layers, a, yerr=[r[f"{key}_se"] for r in sub], fmt="o-", ms=3,
                         lw=1, capsize=2, color=color, label=f"top eigenvector of {name}")
            bottom.plot(layers, _sine(a), "o-", ms=3, lw=1, color=color, label=name)
        a_mean = np.array([r["align_mean_M"] for r in sub])
        top.plot(layers, a_mean, ":", color="0.4", lw=1, label="mean token with I + F")
        top.set_ylim(-0.03, 1.03)
        top.set_ylabel("alignment ||Proj_v x|| / ||x||")
        top.set_title(title, fontsize=10)
        top.legend(fontsize=7, loc="center right")
        cmp = next((c for c in result.comparisons if c.params.get("norm") == norm), None)
        winner = "align_M" if norm == "l2" else "align_centred"
        s = _sine([r[winner] for r in sub])
        ok = np.nonzero(np.isfinite(s))[0]
        if cmp is not None and ok.size:
            end = int(ok.max())
            lo = max(end - WINDOW, 0)
            bottom.axvspan(layers[lo], layers[end], color="0.9", zorder=0, label="fit window")
            guide = layers[lo:end + 1]
            bottom.plot(guide, s[end] * cmp.estimate ** (guide - layers[end]), "k-", lw=1.5,
                        label=f"fitted {cmp.estimate:.4f} ± {cmp.se:.1g}")
            full = layers[:end + 1]
            theo = s[end] * cmp.prediction ** (full - layers[end])
            bottom.plot(full, np.where(theo <= 1.0, theo, np.nan), "k--", lw=1,
                        label=f"theory max(|mu_2|, alpha)/|mu_1| = {cmp.prediction:.4f}")
        bottom.set_yscale("log")
        bottom.set_xlabel("layer l")
        bottom.set_ylabel("sine sqrt(1 - <align>^2)")
        bottom.legend(fontsize=7, loc="lower left")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, result, *_provenance(rows))
    return fig


def pm4_steering(result: ClaimResult) -> Figure:
    """PM-4: designed F with u an eigenvector: final alignment with u against mu (threshold
    mu*), alignment with u by layer for each mu; random symmetric F: align_u^2 at the last
    layer against mu/s with the BBP overlap 1 - s^2/mu^2."""
    curve = sorted(result.data["curve"], key=lambda r: r["mu"])
    mu_star = result.data["mu_star"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    mus = [r["mu"] for r in curve]
    depth = len(curve[0]["per_layer"]) - 1
    ax = axes[0]
    ax.errorbar(mus, [r["align_u"] for r in curve], yerr=[r["align_u_se"] for r in curve],
                fmt="o", color="C0", ms=5, capsize=2, label=f"simulation, layer {depth}")
    grid = np.linspace(0.0, max(mus) * 1.05, 400)
    ax.plot(grid, np.where(grid > mu_star, 1.0, 0.0), "k-", lw=1,
            label="L -> infinity: 1 above mu*, 0 below")
    ax.axvline(mu_star, color="C3", ls="--", lw=1, label=f"mu* = rho - alpha - lambda_u "
                                                          f"= {mu_star:.3g}")
    ax.set_xlabel("steering strength mu")
    ax.set_ylabel("|cos(x_L, u)| (token mean)")
    ax.set_title("designed F, u an eigenvector of F", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    colors = plt.cm.viridis(np.linspace(0.05, 0.9, len(curve)))
    for r, color in zip(curve, colors, strict=True):
        ax.plot(np.arange(depth + 1), r["per_layer"], "o-" if r["above"] else "s--",
                color=color, ms=3, lw=1, label=f"mu = {r['mu']:g}" + (" (> mu*)" if r["above"]
                                                                     else ""))
    ax.set_xlabel("layer l")
    ax.set_ylabel("|cos(x_l, u)| (token and sample mean)")
    ax.set_title("alignment with u by layer", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    ax = axes[2]
    bbp = sorted(result.data["bbp_rows"], key=lambda r: r["mu_over_s"])
    theo = result.data["bbp_theory"]
    ax.plot([t["mu_over_s"] for t in theo], [t["overlap2"] for t in theo], "k-", lw=1,
            label="BBP: 1 - s^2/mu^2 above mu = s")
    ax.errorbar([r["mu_over_s"] for r in bbp], [r["align_u2"] for r in bbp],
                yerr=[r["align_u2_se"] for r in bbp], fmt="o", color="C1", ms=5, capsize=2,
                label=f"simulation, d = {bbp[0]['d']}")
    ax.axvline(1.0, color="C3", ls="--", lw=1, label="threshold mu = s = sqrt(sigma_v2)")
    ax.set_xlabel("mu / s")
    ax.set_ylabel("|cos(x_L, u)|^2 at the last layer")
    ax.set_title(f"random symmetric F, sigma_v2 = {bbp[0]['sigma_v2']:g}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, result, *_provenance(curve))
    return fig


def _case_key(case: str) -> float:
    return 0.0 if case == "uniform" else float(case.split("=")[1])


def pm5_softmax(result: ClaimResult) -> Figure:
    """PM-5: token cosine and the mean token's alignment with I + F by layer (uniform and
    softmax at each beta); each sample's sine to v_1 by layer (log) against the predicted
    token rate; each softmax sample's fitted contraction against its final token cosine."""
    rows = result.data["rows"]
    per = result.data["per_sample"]
    T = result.data["T"]
    rate = result.data["token_rate"]
    cases = sorted({r["case"] for r in rows}, key=_case_key)
    colors = dict(zip(cases, ["0.3"] + list(plt.cm.viridis(
        np.linspace(0.1, 0.85, max(len(cases) - 1, 1)))), strict=False))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    ax = axes[0]
    for case in cases:
        sub = sorted((r for r in rows if r["case"] == case), key=lambda r: r["layer"])
        layers = [r["layer"] for r in sub]
        ax.errorbar(layers, [r["cosine"] for r in sub], yerr=[r["cosine_se"] for r in sub],
                    fmt="o-", ms=2.5, lw=1, capsize=1.5, color=colors[case],
                    label=f"{case}: token cosine")
        ax.plot(layers, [r["align_mean_M"] for r in sub], ":", lw=1.2, color=colors[case],
                label=f"{case}: mean token with I + F")
    ax.axhline(-1.0 / (T - 1), color="C3", lw=0.8, ls="--", label="-1/(T-1): token mean 0")
    ax.set_xlabel("layer l")
    ax.set_ylabel("sample mean")
    ax.set_title(f"rank collapse and the power-method direction, T = {T}", fontsize=9)
    ax.legend(fontsize=6)
    ax = axes[1]
    for case in cases:
        sines = np.array(per[case]["sin"])
        layers = np.arange(sines.shape[1])
        shown = np.where(sines > _ROUNDING, sines, np.nan)
        for i, row in enumerate(shown):
            ax.plot(layers, row, "-", color=colors[case], lw=0.6, alpha=0.5,
                    label=case if i == 0 else None)
    ax.plot(layers, rate ** layers, "k--", lw=1.2, label=f"slope of the token rate {rate:.3g}")
    ax.set_yscale("log")
    ax.set_ylim(1e-9, 2)
    ax.set_xlabel("layer l")
    ax.set_ylabel("sin(x, v_1(I + F)) per sample")
    ax.set_title("each sample: converging at the rate, or stalled", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    ax = axes[2]
    for case in cases:
        if "rate" not in per[case]:
            continue
        ax.plot(per[case]["cosine_final"], per[case]["rate"], "o", color=colors[case], ms=4,
                alpha=0.7, label=case)
    ax.axhline(rate, color="k", ls="--", lw=1, label=f"uniform-attention token rate {rate:.3g}")
    ax.axvline(-1.0 / (T - 1), color="C3", lw=0.8, ls="--", label="-1/(T-1)")
    for c in result.comparisons:
        if "observable" in c.params:  # the layer-1 comparisons (pm5_first_layer)
            continue
        ax.axhline(c.estimate, color=colors.get(f"beta={c.params['beta']:g}", "0.5"), lw=0.8,
                   ls=":")
    ax.set_xlabel("token cosine at the last layer (per sample)")
    ax.set_ylabel(f"fitted contraction, last {WINDOW + 1} resolvable layers")
    ax.set_title("per-sample fits (dotted: exp of the mean log, the estimate)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, result, *_provenance(rows))
    return fig


def pm5_first_layer(result: ClaimResult) -> Figure:
    """PM-5: layer 1 without normaliser against the REM participation ratio ``E ipr``: the
    engine's ``q`` and the deviation energy kept ``q - p`` (points, 2 SE; ``beta = 0`` is
    uniform attention) against their exact expectations (crosses, lines)."""
    first = sorted(result.data["first_layer"], key=lambda r: r["beta"])
    P = np.array([r["ipr_theory"] for r in first])
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for key, name, color in (("q", "q (energy per token)", "C0"),
                             ("deviation", "q - p (deviation energy kept)", "C3"),
                             ("mean_gain", "q + (T-1) p (mean energy gain)", "C2")):
        theory = np.array([r[f"{key}_theory"] for r in first])
        ok = np.isfinite(theory)
        ax.plot(P[ok], theory[ok], "x--", color=color, ms=8, lw=1, label=f"{name}: theory")
        ax.errorbar(P, [r[key] for r in first], yerr=[2 * r[f"{key}_se"] for r in first],
                    fmt="o", ms=4, capsize=2, color=color, label=f"{name}: engine")
    for r in first:
        ax.annotate(f"beta={r['beta']:g}", (r["ipr_theory"], r["q"]), fontsize=7,
                    xytext=(3, -12), textcoords="offset points")
    ax.set_xlabel("E ipr (REM participation ratio, exact)")
    ax.set_ylabel("layer-1 expectation (input value: q = 1, q - p = 1)")
    ax.set_title("first layer, norm none: beta enters only through E ipr (and E overlap)",
                 fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, result, *_provenance(first))
    return fig


def _anchored(values: np.ndarray, rate: float, below: float = 1e-2) -> np.ndarray:
    """``rate^l`` through the first layer where ``values`` drops below ``below``."""
    layers = np.arange(values.size)
    hit = np.nonzero(values < below)[0]
    if not hit.size:
        return np.full(values.size, np.nan)
    k = int(hit[0])
    return values[k] * rate ** (layers - k)


def pm5_link(result: ClaimResult) -> Figure:
    """PM-5 and GAP-5: per layer (medians over the samples that reach consensus), the
    rank-collapse side ``sqrt(E_b/E_m)`` (bulk over mean energy of the tokens) and the
    power-method side ``sin angle(xbar, v_1(I + F))``, uniform attention (left) and softmax
    (right), with the two predicted slopes: ``alpha/|mu_1|`` and ``|mu_2/mu_1|``."""
    link = result.data["link"]
    dev_rate, mean_rate = result.data["deviation_rate"], result.data["mean_rate"]
    fig, axes = plt.subplots(1, len(link), figsize=(5.5 * len(link), 4.3), sharey=True)
    for ax, (case, d) in zip(np.atleast_1d(axes), link.items(), strict=True):
        bulk = np.asarray(d["bulk_over_mean"], dtype=float)
        sin = np.asarray(d["sin_mean"], dtype=float)
        layers = np.arange(bulk.size)
        # bulk comes from 1 - cosine (rounding below CANCELLATION_FLOOR), sin without cancellation
        ax.plot(layers, np.where(bulk > CANCELLATION_FLOOR, bulk, np.nan), "o-", ms=3, lw=1,
                color="C3",
                label="rank collapse: sqrt(E_bulk/E_mean) (GAP-5)")
        ax.plot(layers, np.where(sin > FLOOR, sin, np.nan), "s-", ms=3, lw=1, color="C0",
                label="power method: sin(mean token, v_1)")
        ax.plot(layers, _anchored(bulk, dev_rate), "--", color="C3", lw=1,
                label=f"slope alpha/|mu_1| = {dev_rate:.3g}")
        ax.plot(layers, _anchored(sin, mean_rate), "--", color="C0", lw=1,
                label=f"slope |mu_2/mu_1| = {mean_rate:.3g}")
        ax.set_yscale("log")
        ax.set_ylim(FLOOR / 3, 5)
        ax.set_xlabel("layer l")
        ax.set_title(f"{case} ({d['reached']}/{d['samples']} samples reach consensus)",
                     fontsize=9)
        ax.legend(fontsize=7, loc="lower left")
    np.atleast_1d(axes)[0].set_ylabel("median over samples")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    first = next(iter(link.values()))
    stamp(fig, result, first["samples"], first["seed"])
    return fig


#: figure name -> (claim id, drawing function), merged into ``sim.figures.FIGURES``
FIGURES = {"pm1_alignment": ("PM-1", pm1_alignment), "pm4_steering": ("PM-4", pm4_steering),
           "pm5_softmax": ("PM-5", pm5_softmax), "pm5_first_layer": ("PM-5", pm5_first_layer),
           "pm5_link": ("PM-5", pm5_link)}
