"""Figures of GAP-1, GAP-2, GAP-4 and the validity map, drawn from ``ClaimResult.data`` only."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from sim.claims import ClaimResult
from sim.stamp import stamp


def _colors(n: int) -> np.ndarray:
    return plt.cm.viridis(np.linspace(0.05, 0.85, max(n, 1)))


def gap1_outlier(result: ClaimResult) -> Figure:
    """GAP-1: ``T (E sigma_1^2 - 1)`` against ``T``, with the third-order theory, ``b_T`` and
    its limit ``r^2``."""
    rows = result.data["rows"]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    svals = sorted({r["markov_s"] for r in rows})
    for s, color in zip(svals, _colors(len(svals)), strict=True):
        sub = sorted((r for r in rows if r["markov_s"] == s), key=lambda r: r["T"])
        Ts = np.array([r["T"] for r in sub])
        ax.errorbar(Ts, [r["T"] * r["excess"] for r in sub],
                    yerr=[r["T"] * r["excess_se"] for r in sub], fmt="o", color=color,
                    capsize=2, label=f"simulation, s={s:.2f}")
        ax.plot(Ts, [r["T"] * r["finite"] for r in sub], "_", ms=14, color=color)
        ax.plot(Ts, [r["T"] * r["first_order"] for r in sub], "x", ms=5, color=color)
        ax.axhline(sub[0]["asymptotic"] * sub[0]["T"], color=color, ls="--", lw=0.8)
    ax.plot([], [], "k_", ms=14, label=r"third order, $O(T^{-4})$")
    ax.plot([], [], "kx", ms=5, label=r"$b_T$ (first order)")
    ax.plot([], [], "k--", lw=0.8, label=r"$r^2 = e^{s^2}-1$")
    ax.set(xscale="log", xlabel="T", ylabel=r"$T\,(\mathbb{E}\sigma_1^2 - 1)$",
           title=f"outlier: max $|\\lambda_1 - 1|$ = {result.data['identity']:.1e}")
    ax.legend(fontsize=7)
    stamp(fig, result, rows[0]["samples"], rows[0]["seed"])
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def _esd_panel(ax, curves: list[dict], key: str, xlabel: str) -> None:
    for cur, color in zip(curves, _colors(len(curves)), strict=True):
        x = np.asarray(cur["points"])
        ax.errorbar(x, cur["mean"], yerr=cur["se"], fmt="o", ms=3, color=color, capsize=1.5,
                    label=f"{key}={cur[key]:g}")
        ax.plot(x, cur["law"], "-", color=color, lw=1)
    ax.set(xlabel=xlabel, ylabel="mean ESD (points) and law (lines)")
    ax.legend(fontsize=7)


def gap2_bulk(result: ClaimResult) -> Figure:
    """GAP-2: mean ESD of eigenvalue moduli and singular values of ``sqrt(T) A`` at the largest
    ``T`` against the disc and quarter circle of radius ``r_T``."""
    esd = result.data["esd"]
    largest = max(e["T"] for e in esd)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, which, label in ((left, "eig", r"$\sqrt{T}|\lambda|$"),
                             (right, "singular", r"$\sqrt{T}\sigma$")):
        curves = [dict(e, s=e["markov_s"]) for e in esd
                  if e["T"] == largest and e["which"] == which]
        _esd_panel(ax, curves, "s", label)
        ax.set_title(f"T={largest}: {'disc' if which == 'eig' else 'quarter circle'} "
                     r"of radius $r_T$")
    row = result.data["rows"][0]
    stamp(fig, result, row["samples"], row["seed"])
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def _map_panel(ax, rows: list[dict], key: str, ks: str, title: str, lines) -> None:
    """KS distances over (``key``, ``T``) with ``lines``: ``[(label, style, T -> key)]``."""
    xs = np.array([r[key] for r in rows])
    Ts = np.array([r["T"] for r in rows])
    vals = np.array([r[ks] for r in rows])
    sc = ax.scatter(xs, Ts, c=np.log10(np.maximum(vals, 1e-4)), s=120, cmap="magma_r",
                    vmin=-3, vmax=0, marker="s")
    for x, t, v in zip(xs, Ts, vals, strict=True):
        ax.annotate(f"{v:.3f}", (x, t), fontsize=6, ha="center", va="bottom",
                    xytext=(0, 6), textcoords="offset points")
    dense = np.geomspace(Ts.min() / 1.3, Ts.max() * 1.3, 50)
    right = xs.max()
    for label, style, line in lines:
        ax.plot(line(dense), dense, style, color="k", lw=1, label=label)
        right = max(right, float(np.min(line(dense))))
    ax.set(yscale="log", xlabel=key, ylabel="T", title=title)
    if key == "beta":
        ax.set_xscale("log")
        ax.set_xlim(xs.min() / 1.5, right * 1.5)
    else:
        ax.set_xlim(0, right * 1.15)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    plt.colorbar(sc, ax=ax, label="log10 KS distance")


def gap_validity_map(result: ClaimResult) -> Figure:
    """Where the bulk laws hold: KS distance of the singular-value ESD to its law over
    (``markov_s``, ``T``) (GAP-2 result) or (``beta``, ``T``) (GAP-4 result), with the REM
    critical line of a row (``s = sqrt(2 ln T)``, ``beta = beta_c = sqrt 2``) and the line where
    the squared entries, a REM at twice the scale, condense (``s = sqrt(ln T / 2)``,
    ``beta = beta_c / 2``)."""
    rows = result.data["map"]
    if "markov_s" in rows[0]:
        fig, ax = plt.subplots(figsize=(6.5, 5.0))
        _map_panel(ax, rows, "markov_s", "ks_singular_r_T",
                   r"random Markov: quarter circle of radius $r_T$",
                   [(r"row REM critical point $s=\sqrt{2\ln T}$", "--",
                     lambda T: np.sqrt(2 * np.log(T))),
                    (r"squared entries condense $s=\sqrt{\ln T/2}$", ":",
                     lambda T: np.sqrt(np.log(T) / 2))])
    else:
        fig, axes = plt.subplots(1, 2, figsize=(12, 5.0))
        lines = [(r"row REM critical point $\beta_c=\sqrt{2}$", "--",
                  lambda T: np.full_like(T, math.sqrt(2.0))),
                 (r"squared entries condense $\beta_c/2$", ":",
                  lambda T: np.full_like(T, math.sqrt(0.5)))]
        _map_panel(axes[0], rows, "beta", "ks_v_T",
                   r"key-query vs $MP\boxtimes MP$ at scale $v_T$ (GAP-4)", lines)
        _map_panel(axes[1], rows, "beta", "ks_iid",
                   r"key-query vs i.i.d.-lognormal quarter circle (GAP-2's law)", lines)
    r0 = result.data["rows"][0]
    stamp(fig, result, r0["samples"], r0["seed"])
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def gap4_key_query(result: ClaimResult) -> Figure:
    """GAP-4: mean ESD of ``sqrt(T) sigma / v_T`` against the free product law at the largest
    ``T``; and the edge ``sqrt(T) sigma_2`` against ``beta`` with the product-law edge and the
    i.i.d.-lognormal edge."""
    esd, rows = result.data["esd"], result.data["rows"]
    largest = max(e["T"] for e in esd)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    _esd_panel(left, [e for e in esd if e["T"] == largest], "beta", r"$\sqrt{T}\sigma/v_T$")
    left.set_title(rf"T={largest}: $MP\boxtimes MP$ law (c = {result.data['c']:g})")
    sub = sorted((r for r in rows if r["T"] == largest), key=lambda r: r["beta"])
    b = [r["beta"] for r in sub]
    right.errorbar(b, [r["edge"] for r in sub], yerr=[r["edge_se"] for r in sub], fmt="o",
                   color="k", capsize=2, label="simulation")
    right.plot(b, [r["edge_product"] for r in sub], "s-", ms=3, label="product-law edge")
    right.plot(b, [r["edge_iid"] for r in sub], "^-", ms=3, label="i.i.d. lognormal edge 2r")
    right.axvline(math.sqrt(2.0), color="0.5", ls="--", lw=0.8, label=r"$\beta_c$")
    right.set(xscale="log", yscale="log", xlabel=r"$\beta$", ylabel=r"$\sqrt{T}\sigma_2$",
              title="edge of the bulk")
    right.legend(fontsize=7)
    stamp(fig, result, sub[0]["samples"], sub[0]["seed"])
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


FIGURES = {"gap1_outlier": ("GAP-1", gap1_outlier), "gap2_bulk": ("GAP-2", gap2_bulk),
           "gap2_validity_map": ("GAP-2", gap_validity_map),
           "gap4_key_query": ("GAP-4", gap4_key_query),
           "gap4_validity_map": ("GAP-4", gap_validity_map)}
