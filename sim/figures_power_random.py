"""Figures of PM-2 (untied weights) and PM-3 (random value spectra). Each takes the claim's
``ClaimResult`` and draws only from ``result.data`` (stored by ``sim.claims.power_random``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from sim.claims import ClaimResult
from sim.stamp import stamp


def pm2_alignment(result: ClaimResult) -> Figure:
    """PM-2: by layer, the tokens' alignment with layer 1's top subspace (``align_M``, or
    ``align_centred`` under LayerNorm) and with each layer's own ``I + F_l`` (``align_own``);
    dashed: the random-direction value; dotted: the one-layer tilt; shaded: the deep window."""
    rows = result.data["rows"]
    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 3.8), squeeze=False)
    for ax, row in zip(axes[0], rows, strict=True):
        fixed = "align_M" if row["norm"] == "l2" else "align_centred"
        layers = np.arange(len(row[f"{fixed}_layers"]))
        ax.errorbar(layers, row[f"{fixed}_layers"], yerr=row[f"{fixed}_layers_se"], fmt="o-",
                    ms=3, capsize=2, color="C0", label=f"layer 1's top subspace ({fixed})")
        ax.axhline(row[f"{fixed}_baseline"], color="C0", ls="--", lw=1,
                   label="random direction (theory)")
        if row["norm"] == "l2":
            ax.errorbar(layers, row["align_own_layers"], yerr=row["align_own_layers_se"],
                        fmt="s-", ms=3, capsize=2, color="C3", label="own layer (align_own)")
            ax.axhline(row["tilt_theory"], color="C3", ls=":", lw=1.2,
                       label="one-layer tilt (theory)")
        ax.plot(layers, row["cosine_layers"], color="0.6", lw=1, label="token cosine")
        w0, w1 = row["window"]
        ax.axvspan(w0, w1, color="0.92", zorder=0)
        ax.set_xlabel("layer l")
        ax.set_ylabel("alignment ||Proj_S x|| / ||x||")
        ax.set_title(f"{row['value']} F, {row['norm']}, {row['attention']}; d={row['d']}, "
                     f"sigma_v2={row['sigma_v2']:g}", fontsize=9)
        ax.set_ylim(0, 1.02)
    axes[0][0].legend(fontsize=7, loc="center right")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    stamp(fig, result, max(r["samples"] for r in rows), rows[0]["seed"])
    return fig


def pm3_spectra(result: ClaimResult) -> Figure:
    """PM-3: (left) E #real eigenvalues of F against Edelman-Kostlan-Shub and sqrt(2 d/pi);
    (middle) E[1 - |mu_2/mu_1|] of I + F against d with the edge law (d ln d)^(-1/2) through
    the middle point; (right) the fraction of draws with a real top eigenvalue and with a real,
    separated one, by d and sigma_v2."""
    data = result.data
    fig, (left, mid, right) = plt.subplots(1, 3, figsize=(13, 4))
    counts = data["counts"]
    d = np.array([r["d"] for r in counts])
    left.errorbar(d, [r["real_count"] for r in counts], yerr=[r["se"] for r in counts],
                  fmt="o", ms=4, capsize=2, label="engine's F")
    left.plot(d, [r["theory"] for r in counts], "-", label="exact (EKS)")
    left.plot(d, [r["large_d"] for r in counts], ":", label="sqrt(2 d/pi)")
    left.set_xscale("log", base=2)
    left.set_xlabel("d")
    left.set_ylabel("E #real eigenvalues")
    left.legend(fontsize=8)
    gap = data["gap"]
    dg = np.array([r["d"] for r in gap], dtype=float)
    y = np.array([r["one_minus_r"] for r in gap])
    mid.errorbar(dg, y, yerr=[r["se"] for r in gap], fmt="o", ms=4, capsize=2,
                 label="E[1 - r], sigma_v2 = 1")
    law = 1.0 / np.sqrt(dg * np.log(dg))
    k = len(dg) // 2
    mid.plot(dg, law * y[k] / law[k], "-", label="(d ln d)^(-1/2) through the middle point")
    mid.set_xscale("log", base=2)
    mid.set_yscale("log")
    mid.set_xlabel("d")
    mid.set_ylabel("1 - |mu_2/mu_1|")
    fit = data["gap_fit"]
    mid.set_title(f"slope of (1-r) sqrt(ln d): {fit['slope']:.3f} +- {fit['slope_se']:.3f}",
                  fontsize=9)
    mid.legend(fontsize=8)
    cov = data["coverage"]
    sigmas = sorted({r["sigma_v2"] for r in cov})
    dims = sorted({r["d"] for r in cov})
    width = 0.8 / len(sigmas)
    for j, sv in enumerate(sigmas):
        sub = [next(r for r in cov if r["d"] == dd and r["sigma_v2"] == sv) for dd in dims]
        x = np.arange(len(dims)) + (j - (len(sigmas) - 1) / 2) * width
        right.bar(x, [r["real_top"] for r in sub], width, color=f"C{j}", alpha=0.35,
                  yerr=[r["real_top_se"] for r in sub])
        right.bar(x, [r["separated"] for r in sub], width, color=f"C{j}",
                  yerr=[r["separated_se"] for r in sub], label=f"sigma_v2 = {sv:g}")
    right.set_xticks(np.arange(len(dims)), [f"d = {dd}" for dd in dims])
    right.set_ylabel("fraction of draws")
    right.set_title(f"light: top of I + F real; dark: real and r <= {data['separated']}",
                    fontsize=9)
    right.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    stamp(fig, result, max(r["samples"] for r in counts), data["seed"])
    return fig


def pm3_poisson(result: ClaimResult) -> Figure:
    """PM-3, the Poisson approximation of the top two levels: (left) P(top of I + F real) and
    (middle) P(real and r <= SEPARATED) against d, measured (points, binomial SE) and predicted
    (curves), one colour per sigma_v2; (right) the CDF of r = |mu_2/mu_1| at the largest KS
    d, empirical (solid) against predicted (dashed)."""
    data = result.data
    fig, (left, mid, right) = plt.subplots(1, 3, figsize=(13, 4))
    cov = data["coverage"]
    for j, curve in enumerate(data["curves"]):
        sv = curve["sigma_v2"]
        rows = [r for r in cov if r["sigma_v2"] == sv]
        dd = np.array([r["d"] for r in rows], dtype=float) * (1 + 0.04 * (j - 1))
        for ax, key in ((left, "real_top"), (mid, "separated")):
            ax.plot(curve["d"], curve[key], "-", color=f"C{j}", lw=1.2,
                    label=f"Poisson, sigma_v2 = {sv:g}")
            ax.errorbar(dd, [r[key] for r in rows], yerr=[r[f"{key}_se"] for r in rows],
                        fmt="o", ms=4, capsize=2, color=f"C{j}")
    for ax, title in ((left, "top level of I + F real"),
                      (mid, f"top real and r <= {data['separated']}")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("d")
        ax.set_ylabel("probability")
        ax.set_title(title + " (points: engine; lines: Poisson)", fontsize=9)
    two = data["two_by_two"]
    left.errorbar([2], [two["real_top"]], yerr=[two["se"]], fmt="ks", ms=4, capsize=2,
                  label="d = 2, engine (exact 1/sqrt 2 dotted)")
    left.plot([2], [two["poisson"]], "kx", ms=6, label="d = 2, Poisson")
    left.axhline(2 ** -0.5, color="0.5", ls=":", lw=1)
    left.legend(fontsize=7, loc="lower left")
    ks_d = max(k["d"] for k in data["ks"])
    for j, k in enumerate(r for r in data["ks"] if r["d"] == ks_d):
        right.plot(k["empirical_r"], k["empirical_p"], "-", color=f"C{j}",
                   label=f"sigma_v2 = {k['sigma_v2']:g}: KS {k['ks']:.3f}")
        right.plot(k["grid"], k["cdf"], "--", color=f"C{j}")
    right.axvline(data["separated"], color="0.5", ls=":", lw=1)
    right.set_xlim(0.5, 1.0)
    right.set_xlabel("rho")
    right.set_ylabel("P(r <= rho)")
    right.set_title(f"d = {ks_d}: empirical (solid) vs Poisson (dashed)", fontsize=9)
    right.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    stamp(fig, result, max(r["samples"] for r in cov), data["seed"])
    return fig


FIGURES = {"pm2_alignment": ("PM-2", pm2_alignment), "pm3_spectra": ("PM-3", pm3_spectra),
           "pm3_poisson": ("PM-3", pm3_poisson)}
