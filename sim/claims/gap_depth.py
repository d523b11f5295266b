"""Mind the gap claims in depth (science/mind-the-gap.md): GAP-5 .. GAP-8.

Every exact comparison tests the mean/bulk energy recursion of ``theory.gap_depth`` on
random-Markov attention-only stacks (``norm="none"``, ``mlp=False``, one head, isometric input,
``d = T`` unless stated), with Student's t at ``samples - 1`` degrees of freedom:

- bulk fraction: the ratio of means ``mean(E_b)/mean(E_m + E_b)`` (delta-method SE), where per
  sample ``E_b = consensus_distance^2 ||X||_F^2`` and ``||X||_F^2 = norm * T * d``;
- ``E ||X_l||_F^2/(T d)`` (the ``norm`` observable);
- ``E ||dX_L/dW_V^l||_F^2`` (kind ``"gradient"``) and the slope of its log in ``log T``
  (weighted least squares on the sample means; the theory's slope is the same fit applied to
  the exact predictions at the same ``T``);
- one gap-removed key-query layer: ``E norm_1 = sigma_v2 (E ipr - 1/T)``;
- ``E ||A_1 - lambda A_2||_F^2`` from the singular values (kind ``"spectra"``).

Each passing comparison has a mutation twin (prediction x 1.1, or slope - 1) that must fail.
Comparisons of role ``"reference"`` (``sim.stats.ROLES``) are reported beside the exact ones and
do not decide a verdict: GAP-5's LayerNorm-as-rescaling approximation, GAP-8's large-T bulk-edge
law, and the gradient slopes at fixed ``d`` or with ``|slope| < SLOPE_RESOLVED`` (GAP-6, GAP-7).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sim.claims import (
    Claim,
    ClaimResult,
    compare_estimate,
    decide,
    largest_z,
    mutation_twins,
    register,
    rejected_summary,
    with_role,
)
from sim.config import Config
from sim.montecarlo import Estimate, Result, estimate, estimate_function
from sim.profiles import check_profile, grid_samples
from sim.stats import Comparison, ExponentFit, compare, fit_power_law
from sim.sweep import Point, sweep
from theory import gap_depth as theory

SEED = 5
MARKOV_S = math.sqrt(math.log(2.0))  # the paper's sigma/m = 1

#: attention-only stack options: name -> (norm, alpha_attn, value scaling); value scaling "d"
#: is the paper's W_V (entries of variance 1, sigma_v2 = d), 1.0 is variance 1/d. LayerNorm is
#: invariant to the scale of W_V, and without a skip the scaling is a global factor
#: sigma_v2^l on X_l (same draws), so these four cover the eight combinations.
OPTIONS: dict[str, tuple[str, float, Any]] = {
    "none": ("none", 0.0, "d"),
    "layernorm": ("post", 0.0, "d"),
    "skip": ("none", 1.0, "d"),
    "upscaled skip": ("none", 1.0, 1.0),
}
EXACT_OPTIONS = ("none", "skip", "upscaled skip")
#: a gradient slope decides only where ``|slope| >=`` this (a 5% relative resolution of a slope
#: near 0 is meaningless); smaller ones are reported beside (role ``"reference"``)
SLOPE_RESOLVED = 1.5

DEPTH_GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"T": (32, 128), "depth": 3, "layers": (1, 2),
              "samples": {32: 3200, 128: 700}, "rank_T": (32, 128), "rank_samples": 16},
    "book": {"T": (20, 50, 100, 200), "depth": 4, "layers": (1, 2),
             "samples": {20: 8000, 50: 3000, 100: 1000, 200: 500},
             "rank_T": (50, 100, 200), "rank_samples": 8},
    # full: the per-point projections (sim.costs, 2026-11-30) detected 1.0-2.1% with a fifth
    # to a third of these samples (the deep layers' bulk fractions and norms are heavy-tailed)
    "full": {"T": (20, 50, 100, 200, 512, 1024), "depth": 10, "layers": (1, 2, 3, 5, 10),
             "samples": {20: 2000000, 50: 450000, 100: 200000, 200: 80000, 512: 12000,
                         1024: 6000},
             # GAP-5's option "none" at T = 512 projected 1.02% at 12,000: (1.02/0.9)^2 times
             "samples_at": {("none", 512): 15500},
             "rank_T": (50, 100, 200, 512, 1024), "rank_samples": 32},
}
GRADIENT_GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"T": (16, 32, 64, 128), "depth": 2, "fixed_d": 64,
              "samples": {16: 2500, 32: 1500, 64: 800, 128: 300}},
    "book": {"T": (16, 32, 64, 128, 256), "depth": 2, "fixed_d": 256,
             "samples": {16: 3000, 32: 2000, 64: 1000, 128: 500, 256: 200}},
    "full": {"T": (16, 32, 64, 128, 256, 512, 1024), "depth": 2, "fixed_d": 1024,
             "samples": {16: 80000, 32: 48000, 64: 24000, 128: 12000, 256: 6000, 512: 3200,
                         1024: 1600}},  # x4 after a projection of 1.4-1.7%
}
KEY_QUERY_GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"T": (64,), "beta": (0.1, 0.25, 0.5, 1.0, 2.0), "samples": 300},
    "book": {"T": (64, 256), "beta": (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0), "samples": 400},
    "full": {"T": (64, 256, 1024), "beta": (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0),
             "samples": {64: 10000, 256: 3000, 1024: 2000}},  # 2000 projected 1.8% at T = 64
}
DIFF_GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"T": (64,), "lambda": (0.0, 0.25, 0.5, 0.75, 1.0), "samples": 300,
              "depth_T": (64,), "depth": 2, "layers": (1, 2),
              "depth_samples": {64: 1500}, "checked_samples": 4},
    "book": {"T": (64, 128), "lambda": (0.0, 0.25, 0.5, 0.75, 0.9, 1.0), "samples": 400,
             "depth_T": (50, 100), "depth": 3, "layers": (1, 2, 3),
             "depth_samples": {50: 5000, 100: 2000}, "checked_samples": 16},
    "full": {"T": (64, 256, 1024), "lambda": (0.0, 0.25, 0.5, 0.75, 0.9, 1.0),
             "samples": 2000, "depth_T": (50, 200, 512), "depth": 10,
             "layers": (1, 2, 3, 5, 10),
             # x5, x4, x3.5 after projections of 2.0%, 1.7%, 1.5% (deep bulk fractions)
             "depth_samples": {50: 500000, 200: 80000, 512: 14000}, "checked_samples": 64},
}


# ----------------------------------------------------------------------------- configs

def stack_config(T: int, depth: int, option: str = "none", gap: str = "keep",
                 diff_lambda: float = 0.5, d: int | None = None,
                 sigma_v2: float | None = None) -> Config:
    """Attention-only random-Markov stack ``X' = alpha X + A X W_V`` (``OPTIONS[option]``) on
    isometric input; ``sigma_v2`` overrides the option's value scaling."""
    norm, alpha, scaling = OPTIONS[option]
    d = T if d is None else d
    if sigma_v2 is None:
        sigma_v2 = float(d) if scaling == "d" else float(scaling)
    return Config(T=T, d=d, depth=depth, attention="markov", markov_s=MARKOV_S, mlp=False,
                  norm=norm, alpha_attn=alpha, sigma_v2=sigma_v2, input="isometric", gap=gap,
                  diff_lambda=diff_lambda)


def key_query_config(T: int, beta: float) -> Config:
    """One gap-removed key-query layer ``A_perp X W_V`` (``sigma_v2 = 1``), isometric, d = T."""
    return Config(T=T, d=T, depth=1, attention="softmax", beta=beta, mlp=False, norm="none",
                  alpha_attn=0.0, sigma_v2=1.0, input="isometric", gap="remove")


def differential_config(T: int, diff_lambda: float) -> Config:
    """Layer-1 differential random-Markov attention (only the matrix is measured, d = 1)."""
    return Config(T=T, d=1, depth=1, attention="markov", markov_s=MARKOV_S, mlp=False,
                  norm="none", input="gaussian", gap="differential", diff_lambda=diff_lambda)


# ----------------------------------------------------------------------------- measurements

def energies_per_sample(result: Result, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample bulk energy ``||X - 1 xbar^T||_F^2`` and total ``||X||_F^2`` at ``layer``."""
    c = result.config
    total = result.per_sample("norm", layer) * c.T * c.d
    return result.per_sample("consensus_distance", layer) ** 2 * total, total


def bulk_fraction_estimate(result: Result, layer: int) -> Estimate:
    """Ratio of means ``mean(E_b)/mean(||X||_F^2)`` with its delta-method SE."""
    bulk, total = energies_per_sample(result, layer)
    return estimate_function(lambda a, t: a / t, bulk, total)






def _depth_rows(result: Result, gap: str, option: str, diff_lambda: float = 0.5
                ) -> list[dict[str, Any]]:
    """Per-layer measured and predicted bulk fraction and norm (data for figures)."""
    c = result.config
    b = theory.markov_bulk(c.T, c.markov_s)
    frac = theory.bulk_fraction(c.T, c.d, c.depth, b, c.sigma_v2, c.alpha_attn, gap,
                                diff_lambda)
    energy = theory.energies(c.T, c.d, c.depth, b, c.sigma_v2, c.alpha_attn, gap,
                             diff_lambda).sum(axis=1) / (c.T * c.d)
    rows = []
    for layer in range(c.depth + 1):
        f = bulk_fraction_estimate(result, layer)
        n = result.estimate("norm", layer)
        row = {"T": c.T, "option": option, "gap": gap, "diff_lambda": diff_lambda,
               "layer": layer, "bulk_fraction": f.mean, "bulk_fraction_se": f.se,
               "bulk_fraction_theory": float(frac[layer]), "norm": n.mean, "norm_se": n.se,
               "norm_theory": float(energy[layer]), "samples": result.samples,
               "seed": result.seed}
        if "gram_stable_rank" in result.observables and result.kind == "forward":
            g = result.per_sample("gram_stable_rank", layer)
            row["gram_stable_rank"] = float(np.mean(g))
            row["gram_stable_rank_se"] = float(np.std(g, ddof=1) / math.sqrt(g.size))
        rows.append(row)
    return rows


def _depth_comparisons(result: Result, gap: str, layers: tuple[int, ...], n_tests: int,
                       label: str, diff_lambda: float = 0.5, norms: bool = True,
                       role: str = "exact", **params: Any) -> list[Comparison]:
    """Bulk fraction (and ``E norm``) against the recursion at ``layers`` (comparisons of
    ``role``)."""
    c = result.config
    b = theory.markov_bulk(c.T, c.markov_s)
    frac = theory.bulk_fraction(c.T, c.d, c.depth, b, c.sigma_v2, c.alpha_attn, gap,
                                diff_lambda)
    energy = theory.energies(c.T, c.d, c.depth, b, c.sigma_v2, c.alpha_attn, gap,
                             diff_lambda).sum(axis=1) / (c.T * c.d)
    out = []
    for layer in layers:
        p = {"T": c.T, **params, "layer": layer}
        out.append(compare_estimate(frac[layer], bulk_fraction_estimate(result, layer), n_tests, p,
                                    f"{label}: bulk fraction", role=role))
        if norms:
            out.append(compare_estimate(energy[layer], result.estimate("norm", layer), n_tests, p,
                                        f"{label}: ||X||^2/(T d)", role=role))
    return out


def _bound_violations(result: Result) -> tuple[int, int]:
    """Samples x layers where ``sr(X X^T) - 1`` exceeds its bound ``rho^2`` (beyond rounding),
    and how many were checked (layers where the bound is finite)."""
    bad = checked = 0
    for layer in range(result.config.depth + 1):
        bulk, total = energies_per_sample(result, layer)
        f = bulk / total
        bound = theory.stable_rank_gram_bound(f)
        sr = result.per_sample("gram_stable_rank", layer)
        ok = np.isfinite(bound)
        checked += int(ok.sum())
        bad += int(np.sum(sr[ok] - 1.0 > bound[ok] * (1 + 1e-6) + 1e-9))
    return bad, checked


# ----------------------------------------------------------------------------- GAP-5

def gap5_points(profile: str) -> tuple[list[Point], list[Point]]:
    """(``order`` points for the recursion, ``forward`` points for ``sr(X X^T)``)."""
    g = DEPTH_GRIDS[check_profile(profile)]
    order = [Point(stack_config(T, g["depth"], opt), grid_samples(g, T, point=(opt, T)), SEED,
                   "order") for opt in OPTIONS for T in g["T"]]
    rank = [Point(stack_config(T, g["depth"], opt), g["rank_samples"], SEED, "forward")
            for opt in OPTIONS for T in g["rank_T"]]
    return order, rank


def run_gap5(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """GAP-5: rank collapse in depth (bulk fraction and norm recursion; ``sr(X X^T)``)."""
    g = DEPTH_GRIDS[check_profile(profile)]
    order, rank = gap5_points(profile)
    results = sweep(order + rank, executor=executor)
    order_res, rank_res = results[:len(order)], results[len(order):]
    n_exact = len(g["T"]) * len(g["layers"]) * (2 * len(EXACT_OPTIONS) + 1)
    exact, approx, rows, rank_rows = [], [], [], []
    for point, res in zip(order, order_res, strict=True):
        option = _option_of(point.config)
        rows += _depth_rows(res, "keep", option)
        if option == "layernorm":
            approx += _depth_comparisons(res, "keep", g["layers"], n_exact, "LayerNorm (approx.)",
                                         norms=False, role="reference", option=option)
        else:
            exact += _depth_comparisons(res, "keep", g["layers"], n_exact, option, option=option)
    bad = checked = 0
    for point, res in zip(rank, rank_res, strict=True):
        rank_rows += _depth_rows(res, "keep", _option_of(point.config))
        v, n = _bound_violations(res)
        bad, checked = bad + v, checked + n
    mutations = mutation_twins(exact + approx, n_exact)
    exact_verdict = decide(exact, mutations)
    approx_verdict = decide(approx, [])
    factors = {opt: _per_layer_factor(opt, max(g["T"])) for opt in EXACT_OPTIONS}
    last = max(rank_rows, key=lambda r: (r["T"], r["layer"]))
    sr_last = {r["option"]: r["gram_stable_rank"] for r in rank_rows
               if r["T"] == last["T"] and r["layer"] == last["layer"]}
    sr_one = {r["option"]: r["gram_stable_rank"] for r in rank_rows
              if r["T"] == last["T"] and r["layer"] == 1}
    worst = largest_z(exact)
    deciding = (f"recursion vs simulation: max |z| = {abs(worst.z):.1f} (critical "
                f"{worst.z_crit:.1f}) over {len(exact)} exact comparisons; per-layer bulk/mean "
                f"factor at T={max(g['T'])}: " + ", ".join(f"{k} {v:.3g}"
                                                          for k, v in factors.items()))
    if exact_verdict != "confirmed":
        verdict = "open" if exact_verdict == "open" else "refuted"
        notes = (f"The exact recursion came out {exact_verdict}: " + rejected_summary(exact)
                 if exact_verdict == "refuted" else
                 "The exact recursion is not resolved at 5% by this profile.")
    else:
        verdict = "qualified"
        notes = (
            "The expected mean and bulk energies follow the exact linear recursion "
            "K = alpha^2 I + sigma_v2 [[1, b/(T(T-1))], [0, b/T]], so the bulk fraction "
            "collapses geometrically with a per-layer factor b/T (no skip), "
            "(1 + sigma_v2 b/T)/(1 + sigma_v2) (skip) and (1 + b/T)/2 (upscaled skip, "
            "independent of T): 'faster for larger T' holds without skip and with the "
            "paper's skip, not for the upscaled skip, which only halves the bulk fraction "
            f"per layer. LayerNorm as a global rescaling: {approx_verdict} "
            f"({rejected_summary(approx) if approx_verdict == 'refuted' else 'agrees'}). "
            f"The paper's rank measure sr(X X^T) is near 1 after one layer already "
            f"(T={last['T']}: " + ", ".join(f"{k} {v:.4g}" for k, v in sr_one.items())
            + f"; layer {last['layer']}: " + ", ".join(f"{k} {v:.4g}"
                                                       for k, v in sr_last.items())
            + "): sr(X X^T) - 1 <= (E_b/E_m)^2 / sr(X_perp) (bound held in "
            f"{checked - bad} of {checked} sample-layers), so it cannot tell a collapsed "
            "stack from a finite bulk spread over ~T directions; the statement holds for "
            "the bulk fraction, with the rates above.")
    return ClaimResult("GAP-5", GAP5.statement, verdict, deciding, exact + approx, mutations,
                       profile, notes, {"rows": rows, "rank_rows": rank_rows,
                                        "bound_violations": bad, "bound_checked": checked,
                                        "factors": factors})


def _option_of(config: Config) -> str:
    for name, (norm, alpha, scaling) in OPTIONS.items():
        sv = float(config.d) if scaling == "d" else float(scaling)
        if (config.norm, config.alpha_attn, config.sigma_v2) == (norm, alpha, sv):
            return name
    raise ValueError(f"config {config} is none of {', '.join(OPTIONS)}")


def _per_layer_factor(option: str, T: int) -> float:
    norm, alpha, scaling = OPTIONS[option]
    sv = float(T) if scaling == "d" else float(scaling)
    K = theory.transfer_matrix(T, theory.markov_bulk(T, MARKOV_S), sv, alpha)
    return float(K[1, 1] / K[0, 0])




GAP5 = register(Claim(
    "GAP-5", "mind-the-gap",
    "Rank collapse in depth: in attention-only stacks sr(X_l X_l^T) -> 1 with depth, faster "
    "for larger T; LayerNorm does not stop it, skips slow it. The bulk loses a factor of about "
    "r^2/T per layer relative to the mean.",
    "mind-the-gap", "gap-5", run_gap5))


# ----------------------------------------------------------------- GAP-6 / GAP-7 gradients

#: value/width scalings of the gradient sweep: name -> (d = T?, sigma_v2 = d?)
SCALINGS = {"paper (d=T, W_V var 1)": (1, 1), "d=T, W_V var 1/d": (1, 0),
            "fixed d, W_V var 1/d": (0, 0)}


def gradient_points(profile: str, gap: str) -> list[tuple[str, Point]]:
    g = GRADIENT_GRIDS[check_profile(profile)]
    out = []
    for name, (width, value) in SCALINGS.items():
        for T in g["T"]:
            d = T if width else g["fixed_d"]
            if T > d:
                continue
            cfg = stack_config(T, g["depth"], "none", gap, d=d,
                               sigma_v2=float(d) if value else 1.0)
            out.append((name, Point(cfg, grid_samples(g, T), SEED, "gradient")))
    return out


def gradient_comparisons(profile: str, gap: str, executor: Any, n_tests: int
                         ) -> tuple[list[Comparison], list[Comparison], list[Comparison],
                                    list[dict[str, Any]]]:
    """(pointwise, slopes, fixed-d slopes, rows) for the gradient sweep; fixed-d slopes and
    slopes below ``SLOPE_RESOLVED`` have role ``"reference"``."""
    named = gradient_points(profile, gap)
    results = sweep([p for _, p in named], executor=executor)
    pointwise, slopes, fixed, rows = [], [], [], []
    by_scaling: dict[str, list[tuple[Result, float]]] = {}
    for (name, point), res in zip(named, results, strict=True):
        c = point.config
        b = theory.markov_bulk(c.T, c.markov_s)
        pred = theory.jacobian_frobenius2(c.T, c.d, c.depth, b, c.sigma_v2, gap)
        for layer in range(1, c.depth + 1):
            est = res.estimate("jacobian_frobenius2", layer)
            params = {"scaling": name, "T": c.T, "d": c.d, "layer": layer}
            pointwise.append(compare_estimate(pred, est, n_tests, params,
                                              f"gap {gap}: E||J_l||^2"))
            rows.append({"gap": gap, "scaling": name, "T": c.T, "d": c.d, "layer": layer,
                         "jacobian_frobenius2": est.mean, "se": est.se, "theory": pred,
                         "samples": res.samples, "seed": res.seed})
        by_scaling.setdefault(name, []).append((res, pred))
    for name, pairs in by_scaling.items():
        Ts = np.array([r.config.T for r, _ in pairs], dtype=float)
        ests = [r.estimate("jacobian_frobenius2", 1) for r, _ in pairs]
        means = np.array([e.mean for e in ests])
        ses = np.array([e.se for e in ests])
        preds = np.array([p for _, p in pairs])
        # WLS slope of log(mean) = slope of log(theory) + slope of log(mean/theory) (same
        # weights); the SE comes from the second fit, free of the theory's curvature in log T.
        theory_fit = fit_power_law(Ts, preds, ses * preds / means)
        resid = fit_power_law(Ts, means / preds, ses / preds)
        fit = ExponentFit(theory_fit.slope + resid.slope, 0.0, resid.slope_se, resid.interval,
                          resid.level)
        width, value = SCALINGS[name]
        depth = pairs[0][0].config.depth
        limit = theory.gradient_slope_limit(depth, width, value, gap)
        resolved = width != 0 and abs(theory_fit.slope) >= SLOPE_RESOLVED
        cmp_ = compare(theory_fit.slope, fit.slope, fit.slope_se, n_tests=n_tests,
                       params={"scaling": name, "depth": depth, "limit": limit},
                       label=f"gap {gap}: slope of log E||J||^2 in log T",
                       role="exact" if resolved else "reference")
        (fixed if width == 0 else slopes).append(cmp_)
        for row in rows:
            if row["scaling"] == name and row["gap"] == gap:
                row["slope"], row["slope_se"] = fit.slope, fit.slope_se
                row["slope_theory"], row["slope_limit"] = theory_fit.slope, limit
    return pointwise, slopes, fixed, rows


def _slope_twins(comparisons: list[Comparison], n_tests: int, shift: float = -1.0
                 ) -> list[Comparison]:
    """Wrong-exponent twins: the slope shifted by ``shift``."""
    return [compare(c.prediction + shift, c.estimate, c.se, n_tests=n_tests, params=c.params,
                    label=f"{c.label} {shift:+g}", role=c.role)
            for c in comparisons if c.passed]


def run_gap6(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """GAP-6: ``E ||dX_L/dW_V^l||_F^2`` exactly, and its growth with ``T``."""
    g = GRADIENT_GRIDS[check_profile(profile)]
    n_tests = len(gradient_points(profile, "keep")) * g["depth"] + len(SCALINGS)
    pointwise, slopes, fixed, rows = gradient_comparisons(profile, "keep", executor, n_tests)
    mutations = mutation_twins(pointwise, n_tests) + _slope_twins(slopes, n_tests)
    # the paper's "log ||J||^2 rises linearly in log T" at fixed d: slope 1 must be rejected
    paper_fixed = [compare(1.0, c.estimate, c.se, n_tests=n_tests, params=c.params,
                           label="fixed d: paper's growth, slope 1", role="reference")
                   for c in fixed]
    exact_verdict = decide(with_role(pointwise + slopes + fixed), mutations)
    worst = largest_z(pointwise)
    paper = next(c for c in slopes if c.params["scaling"].startswith("paper"))
    inv = next(c for c in slopes if not c.params["scaling"].startswith("paper"))
    fix = fixed[0]
    deciding = (f"E||J||^2 exact: max |z| = {abs(worst.z):.1f} (critical {worst.z_crit:.1f}); "
                f"slope in log T at L={paper.params['depth']}: {paper.estimate:.2f} +- "
                f"{paper.se:.2f} (theory {paper.prediction:.2f}, limit L+1 = "
                f"{paper.params['limit']:g}) with W_V var 1, {inv.estimate:.2f} with var 1/d, "
                f"{fix.estimate:.2f} +- {fix.se:.2f} at fixed d")
    if exact_verdict != "confirmed":
        verdict = exact_verdict
        notes = "The exact gradient theory is " + exact_verdict + ": " + rejected_summary(
            pointwise + slopes)
    else:
        rejected_fixed = all(not c.passed for c in paper_fixed)
        verdict = "qualified"
        notes = (
            "E||dX_L/dW_V^l||_F^2 = d sigma_v2^(L-1) E||A_L...A_1 X_0||_F^2 is the same for "
            "every layer l and agrees with the simulation. It grows like T^(L+1) only because "
            "d = T/gamma and the paper's W_V (variance 1, sigma_v2 = d) are tied to T: with "
            "variance 1/d the slope is 2 (from ||X_0||^2 = T d and ||N_l||^2 = d), and at "
            f"fixed d it is {fix.estimate:.2f} +- {fix.se:.2f} (the paper's growth, slope 1, "
            f"{'rejected' if rejected_fixed else 'not rejected'}): the attention's gap does "
            "not make gradients grow with T; the mean component just carries the input "
            "energy through.")
    return ClaimResult("GAP-6", GAP6.statement, verdict, deciding, pointwise + slopes + fixed,
                       mutations + paper_fixed, profile, notes, {"rows": rows})


GAP6 = register(Claim(
    "GAP-6", "mind-the-gap",
    "Gradients explode with T: log ||dX_L/dW_V^l||_F^2 rises linearly in log T, already at "
    "L = 2.",
    "mind-the-gap", "gap-6", run_gap6))


# ----------------------------------------------------------------------------- GAP-7

def run_gap7(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """GAP-7: the fix ``A_perp`` in depth, for gradients, and its key-query caveat."""
    g = DEPTH_GRIDS[check_profile(profile)]
    gg = GRADIENT_GRIDS[profile]
    kq = KEY_QUERY_GRIDS[profile]
    depth_points = [Point(stack_config(T, g["depth"], "none", "remove"), grid_samples(g, T), SEED,
                          "order") for T in g["T"]]
    rank_points = [Point(stack_config(T, g["depth"], opt, gap), g["rank_samples"], SEED,
                         "forward") for T in g["rank_T"] for opt, gap in
                   (("none", "remove"), ("none", "keep"))]
    kq_points = [Point(key_query_config(T, beta), grid_samples(kq, T), SEED, "order")
                 for T in kq["T"] for beta in kq["beta"]]
    n_tests = (len(depth_points) * len(g["layers"]) * 2 + len(kq_points)
               + len(gradient_points(profile, "remove")) * gg["depth"] + len(SCALINGS))
    res = sweep(depth_points + rank_points + kq_points, executor=executor)
    d_res = res[:len(depth_points)]
    r_res = res[len(depth_points):len(depth_points) + len(rank_points)]
    k_res = res[len(depth_points) + len(rank_points):]
    depth_cmp, rows, rank_rows = [], [], []
    for r in d_res:
        depth_cmp += _depth_comparisons(r, "remove", g["layers"], n_tests, "gap removed",
                                        option="none")
        rows += _depth_rows(r, "remove", "none")
    for r in r_res:
        rank_rows += _depth_rows(r, r.config.gap, "none")
    kq_cmp, kq_rows = [], []
    for p, r in zip(kq_points, k_res, strict=True):
        c = p.config
        pred = theory.key_query_perp_energy_ratio(c.T, c.d_k, c.beta, c.sigma_v2)
        est = r.estimate("norm", 1)
        kq_cmp.append(compare_estimate(pred, est, n_tests, {"T": c.T, "beta": c.beta},
                                       "key-query A_perp layer: ||X_1||^2/||X_0||^2"))
        kq_rows.append({"T": c.T, "beta": c.beta, "ratio": est.mean, "se": est.se,
                        "theory": pred, "samples": r.samples, "seed": r.seed})
    pointwise, slopes, fixed, grad_rows = gradient_comparisons(profile, "remove", executor,
                                                               n_tests)
    keep_slopes = gradient_comparisons(profile, "keep", executor, n_tests)[1]
    mutations = (mutation_twins(depth_cmp + kq_cmp + pointwise, n_tests)
                 + _slope_twins(slopes, n_tests))
    # slopes near 0 cannot resolve 5% relative: reported (twins kept), not deciding
    small_slopes = with_role(slopes, "reference")
    slopes = with_role(slopes)
    comparisons = depth_cmp + kq_cmp + pointwise + slopes
    exact_verdict = decide(comparisons, mutations)
    worst = largest_z(comparisons)
    paper_slope = next(c for c in slopes if c.params["scaling"].startswith("paper"))
    keep_paper = next(c for c in keep_slopes if c.params["scaling"].startswith("paper"))
    small = min(kq_rows, key=lambda r: (r["beta"], -r["T"]))
    Tmax = max(r["T"] for r in rank_rows)
    sr1 = {r["gap"]: r["gram_stable_rank"] for r in rank_rows
           if r["T"] == Tmax and r["layer"] == 1}
    deciding = (f"max |z| = {abs(worst.z):.1f} (critical {worst.z_crit:.1f}) over "
                f"{len(comparisons)} exact comparisons; bulk fraction stays (T-1)/T; gradient "
                f"slope {paper_slope.estimate:.2f} (gap removed) vs {keep_paper.estimate:.2f} "
                f"(kept); key-query at beta={small['beta']:g}, T={small['T']}: A_perp keeps "
                f"{small['ratio']:.2g} of the input energy")
    if exact_verdict != "confirmed":
        verdict = exact_verdict
        notes = (f"The exact theory of the fix is {exact_verdict}: "
                 + rejected_summary(comparisons))
    else:
        verdict = "qualified"
        notes = (
            "With A_perp the mean factor of the recursion is 0: from isometric input the "
            "expected bulk fraction is (T-1)/T at every depth (no collapse in depth), and "
            f"sr(X X^T) after one layer is {sr1.get('remove', float('nan')):.3g} against "
            f"{sr1.get('keep', float('nan')):.4g} with the gap (T = {Tmax}). The gradient "
            "growth is reduced, not stopped: E||J||^2 = d^2 sigma_v2^(L-1) b^L T^(1-L), "
            f"slope {paper_slope.prediction:.2f} (limit 2) instead of "
            f"{keep_paper.prediction:.2f} (limit L+1) with the paper's W_V. Caveat: "
            "||A_perp X||^2 = d (||A||_F^2 - 1) on isometric input, so one gap-removed "
            "key-query layer keeps sigma_v2 (E ipr - 1/T) of the energy, which vanishes as "
            f"the logits shrink (measured {small['ratio']:.2g} at beta = {small['beta']:g}, "
            "confirmed exactly): the fix needs attention that carries signal. In width see "
            "GAP-3 (sr(A_perp)/T).")
    return ClaimResult("GAP-7", GAP7.statement, verdict, deciding,
                       comparisons + small_slopes + fixed,
                       mutations, profile, notes,
                       {"rows": rows, "rank_rows": rank_rows, "key_query_rows": kq_rows,
                        "gradient_rows": grad_rows})


GAP7 = register(Claim(
    "GAP-7", "mind-the-gap",
    "The fix: using A_perp = A - 1 1^T/T slows or avoids rank collapse in width and depth and "
    "stops the gradient explosion; with tiny logits A_perp X almost vanishes.",
    "mind-the-gap", "gap-7", run_gap7))


# ----------------------------------------------------------------------------- GAP-8

def row_sum_error(T: int, diff_lambda: float, samples: int, seed: int = SEED) -> float:
    """``max |D 1 - (1 - lambda) 1|`` over ``samples`` layer-1 differential matrices."""
    from sim.montecarlo import first_layer_attention

    cfg = differential_config(T, diff_lambda)
    return max(float(np.max(np.abs(first_layer_attention(cfg, i, seed)[0].sum(axis=1)
                                   - (1.0 - diff_lambda)))) for i in range(samples))


def run_gap8(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """GAP-8: differential attention ``A_1 - lambda A_2`` as gap shrinking."""
    g = DIFF_GRIDS[check_profile(profile)]
    spec_points = [Point(differential_config(T, lam), g["samples"], SEED, "spectra")
                   for T in g["T"] for lam in g["lambda"]]
    depth_points = [Point(stack_config(T, g["depth"], "none", "differential", lam),
                          grid_samples(g, T, "depth_samples"), SEED, "order")
                    for T in g["depth_T"] for lam in g["lambda"]]
    n_tests = 2 * len(spec_points) + len(depth_points) * len(g["layers"]) * 2
    res = sweep(spec_points + depth_points, executor=executor)
    s_res, d_res = res[:len(spec_points)], res[len(spec_points):]
    frob, spec_rows = [], []
    for p, r in zip(spec_points, s_res, strict=True):
        c = p.config
        sing = r.per_sample("singular")
        eig = r.per_sample("eig_real") + 1j * r.per_sample("eig_imag")
        f2 = estimate(np.sum(sing**2, axis=1))
        pred = theory.differential_frobenius2(c.T, c.markov_s, c.diff_lambda)
        frob.append(compare_estimate(pred, f2, n_tests, {"T": c.T, "lambda": c.diff_lambda},
                                     "E||A_1 - lambda A_2||_F^2"))
        b = theory.markov_bulk(c.T, c.markov_s)
        spec_rows.append({
            "T": c.T, "diff_lambda": c.diff_lambda, "frobenius2": f2.mean, "se": f2.se,
            "theory": pred, "sigma_1": float(np.mean(sing[:, 0])),
            "sigma_2_sqrtT": float(np.mean(sing[:, 1]) * math.sqrt(c.T)),
            "bulk_rms_sqrtT": float(math.sqrt((1 + c.diff_lambda**2) * b)),
            "top_eigenvalue": float(np.mean(np.abs(eig[:, 0]))),
            "second_eigenvalue": float(np.mean(np.abs(eig[:, 1]))),
            "eig_real": eig.real[:4].ravel().tolist(), "eig_imag": eig.imag[:4].ravel().tolist(),
            "samples": r.samples, "seed": r.seed})
    edge_cmp, edge_rows = bulk_edge_comparisons(spec_points, s_res, n_tests)
    depth_cmp, rows = [], []
    for p, r in zip(depth_points, d_res, strict=True):
        lam = p.config.diff_lambda
        depth_cmp += _depth_comparisons(r, "differential", g["layers"], n_tests,
                                        "differential", lam, **{"lambda": lam})
        rows += _depth_rows(r, "differential", "none", lam)
    row_err = max(row_sum_error(T, lam, g["checked_samples"]) for T in g["T"]
                  for lam in g["lambda"])
    comparisons = frob + depth_cmp + edge_cmp
    mutations = mutation_twins(comparisons, n_tests)
    exact, edge_cmp = with_role(comparisons), with_role(comparisons, "reference")
    exact_verdict = decide(exact, with_role(mutations))
    edge_verdict = (decide(edge_cmp, with_role(mutations, "reference")) if edge_cmp
                    else "open")
    if row_err > 1e-12:
        exact_verdict = "refuted"
    worst = largest_z(exact)
    Tmax = max(g["depth_T"])
    b = theory.markov_bulk(Tmax, MARKOV_S)
    factors = {lam: float((1 + lam**2) * b / Tmax / (1 - lam) ** 2) if lam < 1 else math.inf
               for lam in g["lambda"]}
    threshold = _collapse_threshold(b, Tmax)
    deciding = (f"D 1 = (1-lambda) 1 to {row_err:.1e}; max |z| = {abs(worst.z):.1f} (critical "
                f"{worst.z_crit:.1f}) over {len(exact)} exact comparisons; "
                f"bulk edge x sqrt(1+lambda^2): {edge_verdict} ({_edge_summary(edge_cmp)}); "
                f"no collapse only for lambda > {threshold:.3f} at T={Tmax}")
    if exact_verdict != "confirmed":
        verdict = exact_verdict
        notes = "The exact theory is " + exact_verdict + ": " + rejected_summary(exact)
    else:
        verdict = "qualified"
        notes = (
            "D = A_1 - lambda A_2 has the outlier 1 - lambda exactly (D 1 = (1-lambda) 1) but a "
            "bulk inflated by 1 + lambda^2: E||D_perp||_F^2 = (1+lambda^2) b (exact), singular "
            "edge x sqrt(1+lambda^2) (a large-T law: " + edge_verdict + " at these T, "
            + _edge_summary(edge_cmp) + "). In depth the bulk/mean ratio changes per layer by "
            "(1+lambda^2) b/(T (1-lambda)^2) (at T=" + str(Tmax) + ": " + ", ".join(
                f"lambda={k:g}: {v:.3g}" for k, v in factors.items())
            + f"), so rank still collapses unless lambda > {threshold:.3f} "
            "(1 - lambda of order sqrt(2 b/T)): shrinking the outlier is the mechanism, but "
            "differential attention at lambda ~ 0.5 does not stop the collapse.")
    return ClaimResult("GAP-8", GAP8.statement, verdict, deciding, comparisons, mutations,
                       profile, notes, {"spectra_rows": spec_rows, "rows": rows,
                                        "row_sum_error": row_err, "factors": factors,
                                        "edge_rows": edge_rows, "edge_verdict": edge_verdict,
                                        "threshold": threshold})


#: a bulk singular value is read only where the outlier 1 - lambda is this factor away from
#: the rank-one BBP threshold e/2 (e the bulk edge): above it the bulk edge is sigma_2, below it
#: sigma_1; points near the threshold are skipped
EDGE_MARGIN = 1.5


def bulk_edge_comparisons(points: list[Point], results: list[Result], n_tests: int
                          ) -> tuple[list[Comparison], list[dict[str, Any]]]:
    """The bulk singular edge of ``D = A_1 - lambda A_2`` against ``sqrt(1 + lambda^2)`` times
    that of ``A_1`` (the ``lambda = 0`` point at the same ``T``, the same seeds: paired samples).

    ``D_perp = A_1perp - lambda A_2perp`` has i.i.d.-like entries of variance ``(1 + lambda^2)``
    times ``A_perp``'s, so its quarter-circle edge scales by ``sqrt(1 + lambda^2)``. Per sample the
    bulk edge is ``sigma_2`` of ``D`` where the outlier is separated (``1 - lambda > EDGE_MARGIN
    e/2``) and ``sigma_1`` where it is absorbed (``1 - lambda < e/(2 EDGE_MARGIN)``); the
    comparison is on the paired difference ``edge_D - sqrt(1 + lambda^2) edge_A``, relative to
    the predicted edge."""
    base = {p.config.T: r.per_sample("singular")[:, 1] for p, r in zip(points, results,
                                                                       strict=True)
            if p.config.diff_lambda == 0.0}
    comps, rows = [], []
    for p, r in zip(points, results, strict=True):
        c = p.config
        if c.diff_lambda == 0.0 or c.T not in base:
            continue
        factor = math.sqrt(1.0 + c.diff_lambda ** 2)
        predicted = factor * float(base[c.T].mean())
        outlier = 1.0 - c.diff_lambda
        if outlier > EDGE_MARGIN * predicted / 2:
            which = 1
        elif outlier < predicted / (2 * EDGE_MARGIN):
            which = 0
        else:
            rows.append({"T": c.T, "diff_lambda": c.diff_lambda, "skipped": True})
            continue
        edge = r.per_sample("singular")[:, which]
        diff = estimate(edge - factor * base[c.T])
        est = Estimate(predicted + diff.mean, diff.se, diff.n)
        comps.append(compare_estimate(
            predicted, est, n_tests, {"T": c.T, "lambda": c.diff_lambda, "sigma": which + 1},
            "bulk edge of D vs sqrt(1+lambda^2) x edge of A_1", role="reference"))
        rows.append({"T": c.T, "diff_lambda": c.diff_lambda, "skipped": False,
                     "sigma": which + 1, "edge": est.mean, "se": est.se,
                     "predicted": predicted, "ratio": est.mean / predicted * factor})
    return comps, rows


def _edge_summary(comps: list[Comparison]) -> str:
    if not comps:
        return "no point away from the BBP threshold"
    return "measured/predicted " + ", ".join(
        f"T={c.params['T']}, lambda={c.params['lambda']:g}: {c.estimate / c.prediction:.3f}"
        for c in comps)


def _collapse_threshold(b: float, T: int) -> float:
    """Smallest ``lambda`` with ``(1-lambda)^2 <= (1+lambda^2) b/T`` (bulk no longer loses)."""
    # (1 - b/T) lam^2 - 2 lam + (1 - b/T) = 0, smaller root
    a = 1.0 - b / T
    return float((2.0 - math.sqrt(4.0 - 4.0 * a * a)) / (2.0 * a))


GAP8 = register(Claim(
    "GAP-8", "mind-the-gap",
    "Other fixes act by removing the gap: differential attention A_1 - lambda A_2 shrinks the "
    "outlier to 1 - lambda, and with it rank collapse in depth.",
    "mind-the-gap", "gap-8", run_gap8))
