"""Figures: one function per figure, drawn from a ``ClaimResult`` (its cached estimates), so
drawing never reruns a simulation. ``write_all`` writes every figure as PNG and PDF, each stamped
with its claim, profile, seed, samples and version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from sim.claims import ClaimResult, verify


def stamp(fig: Figure, result: ClaimResult, samples: int, seed: int) -> None:
    """Write the provenance line at the foot of ``fig``."""
    fig.text(0.01, 0.005, f"{result.id} · profile {result.profile} · samples {samples} · "
             f"seed {seed} · sigprop {result.version}", fontsize=7, color="0.4",
             ha="left", va="bottom")


def gap3_stable_rank(result: ClaimResult) -> Figure:
    """GAP-3: ``sr(A)`` and ``sr(A_perp)/T`` against ``T``, with the finite-T theory and the
    large-T limits."""
    from theory.gap import stable_rank_finite

    rows = result.data["rows"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    svalues = sorted({r["markov_s"] for r in rows})
    colors = plt.cm.viridis(np.linspace(0.05, 0.85, len(svalues)))
    for s, color in zip(svalues, colors, strict=True):
        sub = sorted((r for r in rows if r["markov_s"] == s), key=lambda r: r["T"])
        Ts = np.array([r["T"] for r in sub])
        left.errorbar(Ts, [r["stable_rank"] for r in sub], yerr=[r["stable_rank_se"] for r in sub],
                      fmt="o", color=color, ms=4, capsize=2, label=f"simulation, s={s:.2f}")
        dense = np.unique(np.round(np.geomspace(Ts.min(), Ts.max(), 2 * len(Ts) - 1)).astype(int))
        left.plot(dense, stable_rank_finite(dense, s), "-", color=color, lw=1.2)
        left.axhline(sub[0]["limit"], color=color, ls="--", lw=0.8)
        right.errorbar(Ts, [r["perp_ratio"] for r in sub], yerr=[r["perp_ratio_se"] for r in sub],
                       fmt="o-", color=color, ms=4, capsize=2, lw=0.8, label=f"s={s:.2f}")
    left.plot([], [], "k-", lw=1.2, label="finite-T theory")
    left.plot([], [], "k--", lw=0.8, label=r"limit $e^{s^2}$")
    left.set(xscale="log", xlabel="T", ylabel=r"$\mathrm{sr}(A)$",
             title="stable rank of random-Markov attention")
    left.legend(fontsize=7)
    right.axhline(0.25, color="k", ls="--", lw=0.8, label="limit 1/4")
    right.set(xscale="log", xlabel="T", ylabel=r"$\mathrm{sr}(A_\perp)/T$",
              title="gap removed")
    right.legend(fontsize=7)
    stamp(fig, result, rows[0]["samples"], rows[0]["seed"])
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def throughput(rows: list[dict]) -> Figure:
    """``sigprop bench`` rows: GFLOP/s of each implementation per size and dtype, with the
    machine's matrix-multiply ceiling as a line."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    impls = ["engine", "numpy", "torch"]
    colors = {"engine": "tab:blue", "numpy": "tab:orange", "torch": "tab:green"}
    for ax, dtype in zip(axes, ("float64", "float32"), strict=True):
        timed = [r for r in rows if r["dtype"] == dtype and r["impl"] != "ceiling"]
        sizes = list(dict.fromkeys((r["T"], r["d"], r["depth"]) for r in timed))
        width = 0.8 / len(impls)
        for k, impl in enumerate(impls):
            vals = [next((r["gflops"] for r in timed if r["impl"] == impl
                          and (r["T"], r["d"], r["depth"]) == size), np.nan) for size in sizes]
            ax.bar(np.arange(len(sizes)) + (k - 1) * width, vals, width, label=impl,
                   color=colors[impl])
        for r in rows:
            if r["impl"] == "ceiling" and r["dtype"] == dtype:
                ax.axhline(r["gflops"], color="k", ls="--", lw=0.8, label="matmul ceiling")
        ax.set_xticks(range(len(sizes)), [f"T={t} d={d}\ndepth={n}" for t, d, n in sizes])
        ax.set(yscale="log", title=dtype)
    axes[0].set_ylabel("GFLOP/s (forward-pass matmul flops)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


#: figure name -> (claim id, drawing function)
FIGURES: dict[str, tuple[str, Callable[[ClaimResult], Figure]]] = {
    "gap3_stable_rank": ("GAP-3", gap3_stable_rank),
}


def write_all(profile: str = "book", out: str | Path = "figures") -> list[Path]:
    """Draw every figure from the (cached) claim results and write PNG and PDF files."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    claims = {r.id: r for r in verify(sorted({c for c, _ in FIGURES.values()}), profile)}
    written = []
    for name, (claim_id, draw) in FIGURES.items():
        fig = draw(claims[claim_id])
        for ext in ("png", "pdf"):
            path = out / f"{name}.{ext}"
            fig.savefig(path, dpi=150)
            written.append(path)
        plt.close(fig)
    return written
