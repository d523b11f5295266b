"""Figures of RS-1, RS-2, RS-3 (rank and symmetry). Each takes the claim's ``ClaimResult`` and
draws only from ``result.data`` and ``result.comparisons`` (stored by ``sim.claims.rank``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from sim.claims import ClaimResult
from sim.markdown import markdown_table
from sim.stamp import stamp

#: values below this are drawn at it on log axes (exact zeros, rounding)
_FLOOR = 1e-300


def rs1_ranks(result: ClaimResult) -> Figure:
    """RS-1: left, frequency with which LayerNorm lowers rank / affine rank on the structured
    ensembles (measured with SE, exact probability); right, generic Gaussian tokens at
    ``d = 6``: predicted ranks of ``X`` and ``LN(X)`` against ``T`` with the number of
    mismatching samples."""
    data = result.data
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    ax = axes[0]
    ens = data["ensembles"]
    xs = np.arange(len(ens))
    ax.bar(xs - 0.2, [e["predicted"] for e in ens], 0.4, color="0.75", label="exact probability")
    ax.errorbar(xs + 0.2, [e["frequency"] for e in ens], yerr=[e["se"] for e in ens], fmt="o",
                color="C0", capsize=3, label=f"measured ({ens[0]['n']} samples each)")
    ax.set_xticks(xs, [f"{e['ensemble']}\nT={e['T']}, k={e['k']}, d={e['d']}\n{e['which']} drop"
                       for e in ens], fontsize=7)
    ax.set_ylabel("P(LayerNorm lowers the rank)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    ax.set_title("structured ensembles", fontsize=9)
    ax = axes[1]
    gen = data["generic"]
    Ts = [g["T"] for g in gen]
    styles = (("rank", "rank X", "C0", "-"), ("rank_ln", "rank LN(X)", "C0", "--"),
              ("aff", "affine rank X", "C3", "-"), ("aff_ln", "affine rank LN(X)", "C3", "--"))
    for key, label, color, ls in styles:
        ax.plot(Ts, [g[f"pred_{key}"] for g in gen], ls, color=color, marker="o", ms=4,
                label=f"{label} (generic prediction)")
    for g in gen:
        bad = sum(g[f"mismatch_{k}"] for k, *_ in styles)
        ax.annotate(f"{bad}/{g['n']} off", (g["T"], g["pred_rank"] + 0.25), fontsize=7,
                    ha="center")
    ax.axvline(gen[0]["d"], color="0.5", lw=0.8, ls=":", label="T = d")
    ax.set_ylim(min(g["pred_aff"] for g in gen) - 0.5, gen[0]["d"] + 1)
    ax.set_xlabel("tokens T")
    ax.set_ylabel("rank")
    ax.set_title(f"generic Gaussian tokens, d = {gen[0]['d']}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, result, data["samples"], data["seed"])
    return fig


def rs2_depth(result: ClaimResult) -> Figure:
    """RS-2: consensus_distance, numerical rank (tolerance 1e-5) and stable rank - 1 by layer
    for attention-only stacks with and without residual and LayerNorm; right, the
    high-precision certificates: sigma_min/sigma_1 in exact-rank precision and in float64."""
    data = result.data
    rows = data["rows"]
    cases = list(dict.fromkeys(r["case"] for r in rows))
    colors = dict(zip(cases, plt.cm.tab10(np.arange(len(cases))), strict=True))
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.3))
    for case in cases:
        sub = sorted((r for r in rows if r["case"] == case), key=lambda r: r["layer"])
        layers = np.array([r["layer"] for r in sub])
        mu = np.array([r["consensus_distance"] for r in sub])
        axes[0].plot(layers, np.maximum(mu, _FLOOR), "-", color=colors[case], lw=1.2,
                     label=case)
        axes[1].plot(layers, [r["numerical_rank"] for r in sub], "-", color=colors[case],
                     lw=1.2, label=case)
        sr = np.array([r["stable_rank"] for r in sub]) - 1.0
        axes[2].plot(layers, np.where(sr > 0, sr, np.nan), "-", color=colors[case], lw=1.2,
                     label=case)
    fit = next((f for f in data["fits"] if f["norm"] == "post"), None)
    if fit is not None:
        case = next(c for c in cases if c.startswith("LayerNorm, residual") and
                    c.endswith(f"d={fit['d']}"))
        sub = sorted((r for r in rows if r["case"] == case), key=lambda r: r["layer"])
        mu = np.array([r["consensus_distance"] for r in sub])
        a = int(np.nonzero(mu < data["start"])[0][0])
        guide = np.arange(a, len(mu))
        axes[0].plot(guide, mu[a] * fit["prediction"] ** (guide - a), "k--", lw=1,
                     label=f"theory rate {fit['prediction']:.4f} (d={fit['d']})")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("consensus_distance mu(X)")
    axes[1].set_ylabel("numerical rank (sigma > 1e-5 sigma_1)")
    axes[2].set_yscale("log")
    axes[2].set_ylabel("stable rank - 1")
    for ax in axes[:3]:
        ax.set_xlabel("layer l")
    axes[0].legend(fontsize=6)
    ax = axes[3]
    for c in data["certificates"]:
        color = "C0" if c["alpha"] else "C3"
        lab = "residual" if c["alpha"] else "no residual"
        first = c["sample"] == 0
        layers = np.arange(len(c["min_ratio_mp"]))
        ax.plot(layers, np.maximum(c["min_ratio_mp"], _FLOOR), "-", color=color, lw=1.2,
                label=f"{lab}: {c['dps']} digits" if first else None)
        ax.plot(layers, np.maximum(c["min_ratio_float"], _FLOOR), ":", color=color, lw=1.2,
                label=f"{lab}: float64" if first else None)
    for tol in data["tolerances"]:
        ax.axhline(tol, color="0.5", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_ylim(1e-160, 2)
    ax.set_xlabel("layer l")
    ax.set_ylabel("sigma_min / sigma_1 (T = 4, d = 8, LayerNorm)")
    ax.set_title("exact rank vs numerical rank (dashed: tolerances)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, result, max(r["samples"] for r in rows), rows[0]["seed"])
    return fig


def rs3_span(result: ClaimResult) -> Figure:
    """RS-3: left, energy fraction outside the Krylov span by layer, attention-only and with
    the MLP (LayerNorm and none), with the span dimension; right, one MLP block's out-of-span
    energy over its exact expectation per parameter point (1 is the theory, 1.1 the twin)."""
    data = result.data
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.3))
    ax = axes[0]
    for (norm, mlp), color in zip([("none", False), ("post", False), ("none", True),
                                   ("post", True)], ("C0", "C2", "C3", "C1"), strict=True):
        sub = sorted((t for t in data["traces"] if t["norm"] == norm and t["mlp"] == mlp),
                     key=lambda t: t["layer"])
        layers = [t["layer"] for t in sub]
        frac = np.maximum([t["fraction"] for t in sub], 1e-34)
        ax.plot(layers, frac, "o-" if mlp else "s--", color=color,
                label=f"{'MLP' if mlp else 'attention only'}, norm {norm}")
        for t in sub:
            ax.annotate(f"{t['dim']:.0f}", (t["layer"], max(t["fraction"], 1e-34)),
                        textcoords="offset points", xytext=(4, 4), fontsize=6, color=color)
    ax.axhline(data["bound"] ** 2, color="k", lw=0.8, ls=":",
               label="rounding bound (squared) at the last layer")
    ax.set_yscale("log")
    ax.set_xlabel("layer l (labels: dimension of the Krylov span)")
    ax.set_ylabel("energy fraction outside the span")
    ax.legend(fontsize=7)
    ax = axes[1]
    pts = data["points"]
    xs = np.arange(len(pts))
    ax.errorbar(xs, [p["ratio"] for p in pts], yerr=[p["ratio_se"] for p in pts], fmt="o",
                color="C0", capsize=3, label=f"measured ({pts[0]['samples']} samples)")
    ax.axhline(1.0, color="k", lw=1, label="exact expectation")
    ax.axhline(1.1, color="C3", lw=1, ls="--", label="mutation twin x 1.1")
    ax.set_xticks(xs, [f"sigma_w2={p['sigma_w2']:g}\nsigma_b2={p['sigma_b2']:g}\n"
                       f"k_in={p['k_in']}, s={p['s']}" for p in pts], fontsize=7)
    ax.set_ylabel("out-of-span energy / prediction")
    ax.set_title(f"one ReLU MLP block, T={pts[0]['T']}, d={pts[0]['d']}, "
                 f"d_ff={pts[0]['d_ff']}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    stamp(fig, result, data["samples"], data["seed"])
    return fig


#: figure name -> (claim id, drawing function), merged into ``sim.figures.FIGURES``
FIGURES = {"rs1_ranks": ("RS-1", rs1_ranks), "rs2_depth": ("RS-2", rs2_depth),
           "rs3_span": ("RS-3", rs3_span)}


# ----------------------------------------------------------------------------- tables (Markdown)

def examples_markdown(result: ClaimResult) -> str:
    """RS-1 constructed examples: exact ranks of X, [X; 1] and LN(X), affine ranks."""
    return markdown_table(
        ("tokens", "T", "d", "rank X", "1 in rowspace", "rank LN(X)", "affine rank X",
         "affine rank LN(X)"),
        ((r["case"], r["T"], r["d"], r["rank"], "yes" if r["one_in_rowspace"] else "no",
          r["rank_ln"], r["aff"], r["aff_ln"]) for r in result.data["examples"]))


def generic_markdown(result: ClaimResult) -> str:
    """RS-1 generic Gaussian ensembles: predicted ranks and mismatching samples."""
    return markdown_table(
        ("T", "d", "rank X", "rank LN(X)", "affine rank X", "affine rank LN(X)", "samples",
         "mismatches"),
        ((g["T"], g["d"], g["pred_rank"], g["pred_rank_ln"], g["pred_aff"], g["pred_aff_ln"],
          g["n"], sum(g[f"mismatch_{k}"] for k in ("rank", "rank_ln", "aff", "aff_ln")))
         for g in result.data["generic"]))


def certificates_markdown(result: ClaimResult) -> str:
    """RS-2 high-precision passes: digits, depth, exact rank at every layer, the layer where
    float64 numerical rank (each tolerance) reaches 1, smallest sigma_min/sigma_1."""
    tols = result.data["tolerances"]
    head = (["residual", "sample", "digits", "layers", "exact rank (min over layers)"]
            + [f"float64 rank 1 at tol {t:g} from layer" for t in tols]
            + ["smallest sigma_min/sigma_1", "closest approach to the singular set"])
    rows = []
    for c in result.data["certificates"]:
        firsts = []
        for t in tols:
            ranks = c[f"numerical_rank_{t:g}"]
            firsts.append(str(next((i for i, r in enumerate(ranks) if r <= 1), "never")))
        dist = f"{c['singular_distance']:.2g}" if c["alpha"] else "-"
        rows.append(["yes" if c["alpha"] else "no", c["sample"], c["dps"],
                     len(c["exact_rank"]) - 1, min(c["exact_rank"]), *firsts,
                     f"{min(c['min_ratio_mp']):.1e}", dist])
    return markdown_table(head, rows)
