"""Figures: one function per figure, drawn from a ``ClaimResult`` (its cached estimates), so
drawing never reruns a simulation. GAP-3 and the REM chapter are drawn here; the other
Mind-the-gap figures live in ``sim.figures_gap_spectra`` and ``sim.figures_gap_depth``, the
power-method ones in ``sim.figures_power_shared`` and ``sim.figures_power_random``, and
``FIGURES`` lists them all. ``write_all`` writes every figure as PNG and PDF, each stamped
with its claim, profile, seed, samples and version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from sim.claims import ClaimResult, verify
from sim.figures_contribution import FIGURES as CONTRIBUTION_FIGURES
from sim.figures_gap_depth import FIGURES as GAP_DEPTH_FIGURES
from sim.figures_gap_spectra import FIGURES as GAP_SPECTRA_FIGURES
from sim.figures_hcni import FIGURES as HCNI_FIGURES
from sim.figures_power_random import FIGURES as POWER_RANDOM_FIGURES
from sim.figures_power_shared import FIGURES as POWER_SHARED_FIGURES
from sim.figures_rank import FIGURES as RANK_FIGURES
from sim.figures_sinks import FIGURES as SINKS_FIGURES
from sim.stamp import stamp


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


def _by(rows: list[dict], key: str) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(r[key], []).append(r)
    return out


def _dense(values: list[float], per_gap: int = 3) -> np.ndarray:
    """``values`` with ``per_gap - 1`` points between neighbours (for theory curves)."""
    v = np.sort(np.asarray(values, dtype=float))
    pieces = [np.linspace(a, b, per_gap, endpoint=False) for a, b in zip(v[:-1], v[1:],
                                                                          strict=True)]
    return np.concatenate(pieces + [v[-1:]])


def _side_by_side(result: ClaimResult, rows: list[dict], value: str, se: str,
                  finite: Callable[[int, np.ndarray], np.ndarray],
                  asymptotic: Callable[[np.ndarray], np.ndarray], ylabel: str,
                  title: str) -> Figure:
    """Simulation per ``T`` against ``beta``: left with the finite theory, right with the
    asymptotic law (drawn through ``beta_c``, where it has a kink); stamped with
    ``result``'s provenance."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    groups = _by(rows, "T")
    colors = plt.cm.viridis(np.linspace(0.05, 0.85, len(groups)))
    betas = sorted({r["beta"] for r in rows})
    dense = _dense(betas)
    for (T, sub), color in zip(sorted(groups.items()), colors, strict=True):
        sub = sorted(sub, key=lambda r: r["beta"])
        b = [r["beta"] for r in sub]
        for ax in (left, right):
            ax.errorbar(b, [r[value] for r in sub], yerr=[r[se] for r in sub], fmt="o",
                        color=color, ms=4, capsize=2, label=f"simulation, T={T}")
        left.plot(dense, finite(T, dense), "-", color=color, lw=1.2)
    from theory import rem

    beta_c = float(rem._generated().beta_c(1.0, 0.0))  # orthogonal tokens
    kinked = np.union1d(dense, [beta_c] if dense[0] < beta_c < dense[-1] else [])
    right.plot(kinked, asymptotic(kinked), "k--", lw=1.2, label="asymptotic (T -> inf)")
    left.plot([], [], "k-", lw=1.2, label="finite-(T, d) theory")
    left.set(xlabel=r"$\beta$", ylabel=ylabel, title=f"{title}: finite-(T, d) theory")
    right.set(xlabel=r"$\beta$", title=f"{title}: asymptotic REM")
    for ax in (left, right):
        ax.axvline(np.sqrt(2), color="0.6", lw=0.8, ls=":")
        ax.legend(fontsize=7)
    stamp(fig, result, rows[0]["samples"], rows[0]["seed"])
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def remf_ipr(result: ClaimResult) -> Figure:
    """REM-F / REM-2: ``E ipr`` against ``beta`` per ``T``; left the finite-(T, d) theory,
    right the asymptotic ``1 - beta_c/beta``."""
    from sim.claims.rem import key_query_row
    from theory import rem

    rows = result.data["rows"]
    return _side_by_side(
        result, rows, "ipr", "ipr_se",
        lambda T, b: [key_query_row(T, T, x, 0.0).ipr for x in b],
        lambda b: np.nan_to_num(rem._generated().ipr_asymptotic(b, 1.0, 0.0)),
        r"$\mathbb{E}\,\sum_s A_{ts}^2$", "E ipr")


def remf_y3(result: ClaimResult) -> Figure:
    """REM-F / REM-2: ``E Y_3 = E sum_s A_ts^3`` against ``beta`` per ``T``; left the
    finite-(T, d) theory, right the Poisson-Dirichlet(``beta_c/beta``) moment (0 below
    ``beta_c``)."""
    from sim.claims.rem import key_query_moment
    from theory import rem

    rows = result.data["rows"]
    return _side_by_side(
        result, rows, "y3", "y3_se",
        lambda T, b: [key_query_moment(3, T, T, x, 0.0) for x in b],
        lambda b: [rem.pd_moment(3, x, 0.0) for x in b],
        r"$\mathbb{E}\,\sum_s A_{ts}^3$", "E Y3")


def remf_entropy(result: ClaimResult) -> Figure:
    """REM-F / REM-1: ``E S / ln T`` against ``beta`` per ``T``."""
    from sim.claims.rem import key_query_row
    from theory import rem

    rows = result.data["rows"]
    return _side_by_side(
        result, rows, "entropy_ratio", "entropy_ratio_se",
        lambda T, b: [key_query_row(T, T, x, 0.0).entropy / np.log(T) for x in b],
        lambda b: np.nan_to_num(rem._generated().entropy_ratio_asymptotic(b, 1.0, 0.0)),
        r"$\mathbb{E}\,S/\ln T$", "row entropy")


def remf_cosine_map(result: ClaimResult) -> Figure:
    """REM-F / REM-3: ``mean p / mean q`` after one attention layer against ``beta``; left the
    finite-(T, d) map, right the paper's ``Phi_S`` with the asymptotic ``ipr``."""
    from theory import rem

    rows = result.data["maps"]
    rho = rows[0]["rho"]
    rows = sorted(({**r, "value": r["ratio"], "se": r["ratio_se"]} for r in rows),
                  key=lambda r: r["beta"])
    by_T = _by(rows, "T")  # the finite map is drawn through its values at the grid points
    return _side_by_side(
        result, rows, "value", "se",
        lambda T, b: np.interp(b, [r["beta"] for r in by_T[T]],
                               [r["key_query"] for r in by_T[T]]),
        lambda b: rem._generated().cosine_map_asymptotic(b, rho),
        rf"token cosine after one layer ($\rho = {rho}$)", "cosine map")


def rem4_deep(result: ClaimResult) -> Figure:
    """REM-4: per-layer token cosine of deep stacks, simulation (points) against the recursion
    with the finite-T ipr (solid) and with the asymptotic ipr (dashed)."""
    rows = result.data["rows"]
    norms = sorted({r["norm"] for r in rows}, reverse=True)
    betas = sorted({r["beta"] for r in rows})
    fig, axes = plt.subplots(len(norms), len(betas), figsize=(3.2 * len(betas), 3.0 * len(norms)),
                             sharex=True, sharey=True, squeeze=False)
    variants = sorted({("gain" if r["gain"] else "", r["alpha"]) for r in rows})
    colors = dict(zip(variants, plt.cm.tab10(np.arange(len(variants))), strict=True))
    for r in rows:
        ax = axes[norms.index(r["norm"]), betas.index(r["beta"])]
        color = colors[("gain" if r["gain"] else "", r["alpha"])]
        label = "gain-controlled" if r["gain"] else f"alpha={r['alpha']}"
        layers = np.arange(len(r["cosine"]))
        ax.errorbar(layers, r["cosine"], yerr=r["cosine_se"], fmt="o", ms=2.5, color=color,
                    elinewidth=0.8, label=label)
        ax.plot(layers, r["finite"], "-", color=color, lw=1.0)
        ax.plot(layers, r["asymptotic"], "--", color=color, lw=1.0)
        ax.set_title(f"{r['norm']}-LN, beta={r['beta']}", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("layer")
    for ax in axes[:, 0]:
        ax.set_ylabel("token cosine p/q")
    axes[0, 0].plot([], [], "k-", label="recursion, finite-T ipr")
    axes[0, 0].plot([], [], "k--", label="recursion, asymptotic ipr")
    axes[0, 0].legend(fontsize=6)
    stamp(fig, result, rows[0]["samples"], rows[0]["seed"])
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def rem5_residual(result: ClaimResult) -> Figure:
    """REM-5: token cosine over depth of post-LN attention-only stacks below ``beta_c``:
    simulation, the exact recursion and the Möbius law, plain and gain-controlled."""
    rows = result.data["rows"]
    rho0, depth = result.data["rho0"], result.data["depth"]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    colors = plt.cm.viridis(np.linspace(0.05, 0.85, len(rows)))
    for r, color in zip(rows, colors, strict=True):
        layers = np.arange(depth + 1)
        label = ("gain-controlled, " if r["gain"] else "") + f"alpha={r['alpha']}"
        ax.errorbar(layers, r["cosine"], yerr=r["cosine_se"], fmt="o", ms=3, color=color,
                    label=label)
        ax.plot(layers, r["finite"], "-", color=color, lw=1.0)
        if r["gain"]:
            ax.plot(layers, np.full(depth + 1, rho0), ":", color=color, lw=1.0)
        else:
            u = rho0 / (1 - rho0) * (1 + 1 / r["alpha"] ** 2) ** layers
            ax.plot(layers, u / (1 + u), ":", color=color, lw=1.0)
    ax.plot([], [], "k-", label="exact recursion")
    ax.plot([], [], "k:", label="Möbius law (ipr -> 0)")
    ax.set(xlabel="layer", ylabel="token cosine", title=f"attention + residual + LN, "
           f"beta={rows[0]['beta']}, T=d={rows[0]['T']}")
    ax.legend(fontsize=6, ncol=2)
    stamp(fig, result, rows[0]["samples"], rows[0]["seed"])
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def rem_phase_map(result: ClaimResult) -> Figure:
    """The ``(beta, alpha_attn)`` plane at the final layer of post-LN stacks: token cosine and
    entropy ratio, simulated and predicted; contours mark rank collapse (cosine 0.9) and
    entropy collapse (S/ln T 0.5)."""
    phase = result.data["phase"]
    rows = phase["rows"]
    betas = sorted({r["beta"] for r in rows})
    alphas = sorted({r["alpha"] for r in rows})
    grid = {(r["beta"], r["alpha"]): r for r in rows}

    def field(fn):
        return np.array([[fn(grid[(b, a)]) for b in betas] for a in alphas])

    panels = [("simulated cosine", field(lambda r: r["cosine"][-1]), "cosine"),
              ("predicted cosine", field(lambda r: r["finite"][-1]), "cosine"),
              ("simulated S/ln T", field(lambda r: r["entropy_ratio"][-1]), "entropy"),
              ("predicted S/ln T", field(lambda r: r["entropy_predicted"]), "entropy")]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8), sharey=True)
    x, y = np.arange(len(betas)), np.arange(len(alphas))
    for ax, (title, z, kind) in zip(axes, panels, strict=True):
        im = ax.imshow(z, origin="lower", vmin=0, vmax=1, aspect="auto",
                       cmap="magma" if kind == "cosine" else "viridis")
        level = 0.9 if kind == "cosine" else 0.5
        if np.nanmin(z) < level < np.nanmax(z):
            ax.contour(x, y, z, levels=[level], colors="w", linewidths=1.2)
        ax.set_xticks(x, [f"{b:g}" for b in betas])
        ax.set(title=title, xlabel=r"$\beta$")
        fig.colorbar(im, ax=ax, fraction=0.046)
    axes[0].set_yticks(y, [f"{a:g}" for a in alphas])
    axes[0].set_ylabel(r"$\alpha_{attn}$")
    r0 = rows[0]
    fig.suptitle(f"depth {r0['depth']}, T=d={r0['T']}: white contours mark rank collapse "
                 "(cosine 0.9) and entropy collapse (S/ln T = 0.5)", fontsize=9)
    stamp(fig, result, r0["samples"], r0["seed"])
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    return fig


def throughput(rows: list[dict]) -> Figure:
    """``sigprop bench`` rows: GFLOP/s of each implementation per size and dtype (with the
    engine's matmuls alone, its upper bound), and the machine's matrix-multiply ceiling as a
    line."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    impls = ["engine", "numpy", "torch", "matmuls"]
    colors = {"engine": "tab:blue", "numpy": "tab:orange", "torch": "tab:green",
              "matmuls": "tab:gray"}
    for ax, dtype in zip(axes, ("float64", "float32"), strict=True):
        timed = [r for r in rows if r["dtype"] == dtype and r["impl"] != "ceiling"]
        sizes = list(dict.fromkeys((r["T"], r["d"], r["depth"]) for r in timed))
        width = 0.8 / len(impls)
        for k, impl in enumerate(impls):
            vals = [next((r["gflops"] for r in timed if r["impl"] == impl
                          and (r["T"], r["d"], r["depth"]) == size), np.nan) for size in sizes]
            ax.bar(np.arange(len(sizes)) + (k - 1.5) * width, vals, width,
                   label="matmuls alone" if impl == "matmuls" else impl, color=colors[impl])
        for r in rows:
            if r["impl"] == "ceiling" and r["dtype"] == dtype:
                ax.axhline(r["gflops"], color="k", ls="--", lw=0.8, label="matmul ceiling")
        ax.set_xticks(range(len(sizes)), [f"T={t} d={d}\ndepth={n}" for t, d, n in sizes])
        ax.set(yscale="log", title=dtype)
    axes[0].set_ylabel("GFLOP/s (forward-pass matmul flops)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def full_profile_costs(costs: list, workers: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
                       ) -> Figure:
    """Projected ``full``-profile cost (``sim.costs.Cost`` list): CPU hours per claim (a point
    shared with a claim above counted there), and the modelled wall time of
    ``sigprop verify --profile full`` against the worker count (``sim.costs.wall_seconds``,
    points split into blocks of samples and whole), with perfect scaling and the client's
    serial work as lines."""
    from sim.costs import wall_seconds

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    names = [c.claim for c in costs]
    own = np.array([(c.simulation_s - c.shared_s) / 3600 for c in costs])
    other = np.array([c.other_s / 3600 for c in costs])
    y = np.arange(len(costs))
    left.barh(y, own, color="tab:blue", label="simulation (sweeps)")
    left.barh(y, other, left=own, color="tab:orange", label="client (theory, direct MC)")
    left.set_yticks(y, names, fontsize=6)
    left.invert_yaxis()
    left.set(xlabel="CPU hours", title="projected cost per claim")
    left.legend(fontsize=7)
    ws = np.array(workers)
    wall = np.array([wall_seconds(costs, int(w)) for w in ws]) / 3600
    whole = np.array([wall_seconds(costs, int(w), blocks=False) for w in ws]) / 3600
    right.loglog(ws, wall, "o-", label="points in blocks of samples (sigprop)")
    right.loglog(ws, whole, "s:", color="tab:gray", label="whole points, one task each")
    right.loglog(ws, wall[0] / ws, "k--", lw=0.8, label="perfect scaling")
    right.axhline(other.sum(), color="tab:orange", lw=0.8, label="client work (serial)")
    right.set(xlabel="workers (one core each)", ylabel="wall hours", title="sigprop verify "
              "--profile full")
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


#: figure name -> (claim id, drawing function)
FIGURES: dict[str, tuple[str, Callable[[ClaimResult], Figure]]] = {
    "gap3_stable_rank": ("GAP-3", gap3_stable_rank),
    "remf_ipr": ("REM-F", remf_ipr),
    "remf_y3": ("REM-F", remf_y3),
    "remf_entropy": ("REM-F", remf_entropy),
    "remf_cosine_map": ("REM-F", remf_cosine_map),
    "rem4_deep": ("REM-4", rem4_deep),
    "rem5_residual": ("REM-5", rem5_residual),
    "rem_phase_map": ("REM-5", rem_phase_map),
    **GAP_SPECTRA_FIGURES,
    **GAP_DEPTH_FIGURES,
    **POWER_SHARED_FIGURES,
    **POWER_RANDOM_FIGURES,
    **SINKS_FIGURES,
    **CONTRIBUTION_FIGURES,
    **RANK_FIGURES,
    **HCNI_FIGURES,
}


def write_all(profile: str = "book", out: str | Path = "figures",
              names: list[str] | None = None) -> list[Path]:
    """Draw the figures ``names`` (default: all) from the (cached) claim results and write PNG
    and PDF files."""
    chosen = {n: FIGURES[n] for n in (names or FIGURES)}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    claims = {r.id: r for r in verify(sorted({c for c, _ in chosen.values()}), profile)}
    written = []
    for name, (claim_id, draw) in chosen.items():
        fig = draw(claims[claim_id])
        for ext in ("png", "pdf"):
            path = out / f"{name}.{ext}"
            fig.savefig(path, dpi=150)
            written.append(path)
        plt.close(fig)
    return written
