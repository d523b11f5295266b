"""Layers as power iterations with shared weights: claims PM-1, PM-4, PM-5
(science/power-method.md; theory in ``theory.power_shared``).

All stacks: one head, ``mlp=False``, ``shared_weights=True``, ``alpha_attn = 1``, isometric
input, kind ``"alignment"``. The observable of a rate is a token's ``sin angle(x, v) =
sqrt(1 - align^2)`` (``align`` the engine's mean over tokens), computed as ``sqrt(g (2 - g))``
from the engine's cancellation-free ``g = 1 - align`` (``misalign_*``), so that it is resolved
down to ``FLOOR`` and the fitted window stays at the end of the stack. A *fitted per-layer
contraction* is ``exp`` of the least-squares slope of ``log sin`` against the layer over the
last ``WINDOW + 1`` layers, fitted **per sample**; its mean over samples has a Student-t SE
(``dof = samples - 1``), and the rate's SE follows by the delta method. The window sits at the
end of a stack deep enough that the linearised regime holds (the theory is asymptotic); the
transient before it is shown in the figures, never fitted.

Every passing rate comparison has a mutation twin (predicted rate x 1.1) that must fail.

PM-5 also tests the transient's first layer: one layer of the same design without normaliser
(kind ``"forward"``, ``norm="none"``), the engine's ``q`` and ``q - p`` against their exact
expectations in the REM participation ratio (``theory.power_shared.first_layer``), with x 1.1
twins and beta-blind twins (uniform attention's moments).
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
    mutation_twins,
    register,
    rejected_summary,
)
from sim.config import Config
from sim.montecarlo import Estimate, Result, estimate
from sim.profiles import check_profile
from sim.stats import compare
from sim.sweep import Point, sweep
from theory import power_shared as theory

SEED = 11
WINDOW = 8
#: smallest sine (or cosine) fitted: ``sines`` come from the cancellation-free ``misalign_*``,
#: whose rounding (and the float64 forward pass's) is about 1e-15, 1e4 times below
FLOOR = 1e-11
#: smallest ``1 - cosine`` quantity shown: computed by cancellation, it is rounding below this
CANCELLATION_FLOOR = 1e-6
#: matrix seed of the designed value matrices (part of the design, not of the Monte Carlo)
DESIGN_SEED = 3
T_TOKENS, D_WIDTH = 8, 16


def tilt_spectrum(d: int = D_WIDTH) -> np.ndarray:
    """Eigenvalues of the PM-1 design ``F``: ``-1.5`` (largest ``|lambda|``), ``1`` (largest
    ``|1 + lambda|``) and ``d - 2`` values in ``[-1.2, -0.8]`` (``|1 + lambda| <= 0.2``)."""
    return np.r_[-1.5, 1.0, np.linspace(-1.2, -0.8, d - 2)]


def steer_spectrum(d: int = D_WIDTH) -> np.ndarray:
    """Eigenvalues of the PM-4 design ``F``: ``1`` (the unsteered winner), ``0`` (the steered
    eigenvector ``u = q_2``) and ``d - 2`` values in ``[-1.2, -0.8]``."""
    return np.r_[1.0, 0.0, np.linspace(-1.2, -0.8, d - 2)]


def design(spectrum: np.ndarray) -> np.ndarray:
    return theory.value_matrix_with_spectrum(spectrum, DESIGN_SEED)


GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"depth": 20, "softmax_depth": 60, "samples": 40, "softmax_samples": 80,
              "beta": (1.0, 2.0), "overlap_beta": (1.0,), "first_samples": 2000,
              "link_beta": 1.0,
              "steer_mu": (0.5, 2.0, 3.0),
              "steer_curve": (0.25, 0.75, 1.0, 1.25, 1.5), "steer_depth": 24, "steer_samples": 40,
              "bbp_mu": (2.0, 3.0), "bbp_d": 128, "bbp_samples": 24, "bbp_depth": 40},
    "book": {"depth": 20, "softmax_depth": 60, "samples": 100, "softmax_samples": 360,
             "beta": (0.5, 1.0, 2.0, 4.0), "overlap_beta": (2.0,), "first_samples": 6000,
             "link_beta": 1.0,
             "steer_mu": (0.5, 2.0, 3.0), "steer_curve": (0.25, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5),
             "steer_depth": 30, "steer_samples": 100, "bbp_mu": (1.0, 1.5, 2.0, 3.0), "bbp_d": 256,
             "bbp_samples": 32, "bbp_depth": 50},
    "full": {"depth": 24, "softmax_depth": 80, "samples": 1000, "softmax_samples": 3000,
             "overlap_beta": (0.25, 0.5, 1.0, 2.0, 4.0, 8.0), "first_samples": 200000,
             "link_beta": 1.0,
             "beta": (0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
             "steer_mu": (0.25, 0.5, 2.0, 3.0, 4.0),
             "steer_curve": (0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0),
             # steer_samples: the rates above mu* projected 1.5-2.4% at 1000 samples (issue 8)
             "steer_depth": 40, "steer_samples": 8000,
             "bbp_mu": (0.75, 1.0, 1.5, 2.0, 3.0), "bbp_d": 1024,
             "bbp_samples": 200, "bbp_depth": 60},
}


def stack_config(F: np.ndarray | None, depth: int, norm: str = "l2",
                 attention: str = "uniform", beta: float = 1.0, steer_mu: float = 0.0,
                 steer_u: np.ndarray | None = None, d: int | None = None,
                 sigma_v2: float = 1.0) -> Config:
    """Shared-weight attention-only stack (``F`` given, or random symmetric when ``None``)."""
    d = F.shape[0] if F is not None else d
    value = {"value": "given", "value_matrix": tuple(float(x) for x in F.ravel())} \
        if F is not None else {"value": "symmetric", "sigma_v2": sigma_v2}
    steer = {} if steer_u is None else {"steer_u": tuple(float(x) for x in steer_u)}
    return Config(T=T_TOKENS, d=d, depth=depth, heads=1, mlp=False, norm=norm,
                  attention=attention, beta=beta, shared_weights=True, alpha_attn=1.0,
                  input="isometric", steer_mu=steer_mu, **value, **steer)


# ----------------------------------------------------------------------------- measurements

def sines(result: Result, observable: str) -> np.ndarray:
    """``sqrt(1 - align^2)`` of the alignment ``observable`` (an ``align_*``) per sample and layer
    (``samples x (depth + 1)``), as ``sqrt(g (2 - g))`` from its ``misalign_*`` ``g = 1 - align``
    (no cancellation)."""
    g = result.per_sample(f"mis{observable}")
    return np.sqrt(np.clip(g * (2.0 - g), 0.0, None))


def fitted_rate(values: np.ndarray, window: int = WINDOW) -> tuple[Estimate, np.ndarray]:
    """Per-layer contraction of ``values`` (``samples x layers``, positive) over the last
    ``window + 1`` layers where the sample exceeds ``FLOOR`` (each sample its own window;
    below it ``sqrt(1 - align^2)`` is rounding): (the rate ``exp(mean slope)`` with its
    delta-method SE, the per-sample slopes)."""
    n_layers = values.shape[1]
    slopes = np.empty(values.shape[0])
    lc = np.arange(window + 1) - window / 2
    for i, row in enumerate(values):
        ok = np.nonzero(row > FLOOR)[0]
        end = int(ok.max()) + 1 if ok.size else 0
        if end < window + 1 or end > n_layers:
            raise ValueError(f"sample {i}: fewer than {window + 1} resolvable layers "
                             f"(values > {FLOOR})")
        logs = np.log(row[end - window - 1:end])
        slopes[i] = (logs - logs.mean()) @ lc / (lc @ lc)
    s = estimate(slopes)
    rate = math.exp(s.mean)
    return Estimate(rate, rate * s.se, s.n), slopes




def _layer_rows(result: Result, case: str, observables: tuple[str, ...], **extra: Any
                ) -> list[dict[str, Any]]:
    """Per-layer means (and SEs) of the alignments and of the token sines (figure data)."""
    rows = []
    for layer in range(result.config.depth + 1):
        row = {"case": case, "layer": layer, "samples": result.samples, "seed": result.seed,
               **extra}
        for o in observables:
            e = result.estimate(o, layer)
            row[o], row[f"{o}_se"] = e.mean, e.se
        rows.append(row)
    return rows


#: PM-5 counts a softmax sample as having reached consensus when its final token cosine exceeds
#: this (the stalled ones end near -1/(T-1))
CONSENSUS_COSINE = 0.5
#: ... and as in the linear regime (consensus on v_1) when also its final ``sin(x, v_1)`` is
#: below this: at finite beta a few pass the cosine elsewhere (most with tokens at +-F's top
#: eigenvector, split 7 to 1 by sign: cosine 0.5; ``sin(x, v_1)`` near 1) and never contract
LINEAR_SIN = 0.1


# ----------------------------------------------------------------------------- PM-1

PM1_OBSERVABLES = ("align_F", "align_M", "align_centred", "align_mean_M", "cosine")


def run_pm1(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """PM-1: which eigenvector wins (F, I + F or P(I + F)) and at what token rate."""
    g = GRIDS[check_profile(profile)]
    F = design(tilt_spectrum())
    cases = {"l2": ("l2", "align_M"), "layernorm": ("post", "align_centred")}
    points = [Point(stack_config(F, g["depth"], norm), g["samples"], SEED, "alignment")
              for norm, _ in cases.values()]
    results = sweep(points, executor=executor)
    n_tests = len(cases)
    comparisons, rows, finals = [], [], {}
    for (case, (norm, obs)), res in zip(cases.items(), results, strict=True):
        pred = theory.rates(F, 1.0, norm)
        est, _ = fitted_rate(sines(res, obs))
        comparisons.append(compare_estimate(pred.token_rate, est, n_tests,
                                            {"norm": norm, "mu_1": pred.mu_1.real,
                                             "mu_2": pred.mu_2.real},
                                            "token rate: fitted contraction of sin(x, v_1)"))
        rows += _layer_rows(res, case, PM1_OBSERVABLES)
        finals[case] = {o: res.estimate(o, g["depth"]).mean for o in PM1_OBSERVABLES}
    mutations = mutation_twins(comparisons, n_tests)
    verdict_rates = decide(comparisons, mutations)
    lam = tilt_spectrum()
    f_top = lam[np.argmax(np.abs(lam))]
    m_top = lam[np.argmax(np.abs(1 + lam))]
    L = g["depth"]
    deciding = (f"layer {L}: L2 align with I+F {finals['l2']['align_M']:.6f}, with F "
                f"{finals['l2']['align_F']:.2g}; LayerNorm align with P(I+F) "
                f"{finals['layernorm']['align_centred']:.6f}, with I+F "
                f"{finals['layernorm']['align_M']:.4f}; token rate "
                + ", ".join(f"{c.params['norm']} {c.estimate:.4f} +- {c.se:.1g} "
                            f"(theory {c.prediction:.4f})" for c in comparisons))
    if verdict_rates != "confirmed":
        verdict = verdict_rates
        notes = "The linearised rate theory came out " + verdict_rates + ": " + \
            rejected_summary(comparisons)
    else:
        verdict = "qualified"
        notes = (
            "With shared weights and uniform attention the tokens converge to the eigenvector "
            f"of M = I + F of largest modulus (L2) or of P M (LayerNorm). In the design F has "
            f"eigenvalues {f_top:g} (largest |lambda|) and {m_top:g} (largest |1 + lambda|): "
            "the tokens go to the latter, and their alignment with F's principal eigenvector "
            f"goes to {finals['l2']['align_F']:.2g}. The paper's wording 'tilted toward the "
            "principal eigenvector of F' holds only when |1 + lambda| and |lambda| order the "
            "spectrum alike (e.g. a positive top eigenvalue of F). The rate is the derived "
            "token rate max(|mu_2|, alpha)/|mu_1|, not |mu_2/mu_1| (which only the mean token "
            "obeys): deviations are multiplied by alpha, not by M.")
    return ClaimResult("PM-1", PM1.statement, verdict, deciding, comparisons, mutations,
                       profile, notes, {"rows": rows, "finals": finals,
                                        "spectrum": lam.tolist()})


PM1 = register(Claim(
    "PM-1", "power-method",
    "With shared weights, tokens are tilted toward the principal eigenvector of F; "
    "sin angle(x_l, v_1) ~ C |mu_2/mu_1|^l.",
    "power-method", "pm-1", run_pm1))


# ----------------------------------------------------------------------------- PM-4

def run_pm4(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """PM-4: steering ``F + mu u u^T``: threshold and rates (designed ``F``, ``u`` one of its
    eigenvectors), and the BBP threshold and overlap for random symmetric ``F``."""
    g = GRIDS[check_profile(profile)]
    lam = steer_spectrum()
    F = design(lam)
    u = theory.haar_orthogonal(lam.size, DESIGN_SEED)[:, 1]
    mu_star = theory.steering_threshold(F, u)
    mus = sorted(set(g["steer_mu"]) | set(g["steer_curve"]))
    points = [Point(stack_config(F, g["steer_depth"], steer_mu=m, steer_u=u), g["steer_samples"],
                    SEED, "alignment") for m in mus]
    s = math.sqrt(0.25)
    bbp_points = [Point(stack_config(None, g["bbp_depth"], steer_mu=m * s, d=g["bbp_d"],
                                     sigma_v2=s * s), g["bbp_samples"], SEED, "alignment")
                  for m in g["bbp_mu"]]
    results = sweep(points + bbp_points, executor=executor)
    n_tests = len(g["steer_mu"]) + len(g["bbp_mu"])
    rates_cmp, curve = [], []
    for m, res in zip(mus, results[:len(points)], strict=True):
        Fs = F + m * np.outer(u, u)
        pr = theory.rates(Fs, 1.0, "l2")
        above = m > mu_star
        a_last = res.estimate("align_u", g["steer_depth"])
        curve.append({"mu": m, "align_u": a_last.mean, "align_u_se": a_last.se,
                      "above": above, "samples": res.samples, "seed": res.seed,
                      "per_layer": res.per_sample("align_u").mean(axis=0).tolist()})
        if m not in g["steer_mu"]:
            continue
        if above:  # sin(x, u) decays at the token rate of M'
            est, _ = fitted_rate(sines(res, "align_u"))
            pred, label = pr.token_rate, "above mu*: contraction of sin(x, u)"
        else:  # u's component decays at max(|1 + lambda_u + mu|, alpha)/|mu_1|
            est, _ = fitted_rate(res.per_sample("align_u"))
            mu_u = 1.0 + float(u @ Fs @ u)
            pred = max(abs(mu_u), 1.0) / abs(pr.mu_1)
            label = "below mu*: contraction of cos(x, u)"
        rates_cmp.append(compare_estimate(pred, est, n_tests, {"mu": m, "mu_star": mu_star}, label))
    bbp_cmp, bbp_rows = [], []
    for m, res in zip(g["bbp_mu"], results[len(points):], strict=True):
        mu = m * s
        pred = theory.bbp(mu, s * s)
        # tokens agree at the last layer: the token-mean alignment squared is the overlap^2
        a2 = estimate(res.per_sample("align_u", g["bbp_depth"]) ** 2)
        bbp_cmp.append(compare_estimate(  # BBP is a d -> infinity law
            pred["overlap"] ** 2, a2, n_tests, {"mu/s": m, "d": g["bbp_d"], "sigma_v2": s * s},
            "random symmetric F: align_u^2 at the last layer vs 1 - s^2/mu^2", role="reference"))
        bbp_rows.append({"mu_over_s": m, "align_u2": a2.mean, "align_u2_se": a2.se,
                         "theory": pred["overlap"] ** 2, "d": g["bbp_d"], "sigma_v2": s * s,
                         "samples": res.samples, "seed": res.seed})
    comparisons = rates_cmp + bbp_cmp
    mutations = mutation_twins(rates_cmp + [c for c in bbp_cmp if c.resolved], n_tests)
    v_rates = decide(rates_cmp, mutation_twins(rates_cmp, n_tests))
    v_bbp = decide(bbp_cmp, mutation_twins(bbp_cmp, n_tests))
    deciding = (f"designed F: mu* = {mu_star:.3g}; rates "
                + ", ".join(f"mu={c.params['mu']:g}: {c.estimate:.4f} (theory "
                            f"{c.prediction:.4f})" for c in rates_cmp)
                + f"; random F (d={g['bbp_d']}): align_u^2 "
                + ", ".join(f"mu/s={c.params['mu/s']:g}: {c.estimate:.3f} +- {c.se:.1g} "
                            f"(BBP {c.prediction:.3f})" for c in bbp_cmp))
    if v_rates == "refuted":
        verdict, notes = "refuted", "Steering rates: " + rejected_summary(rates_cmp)
    elif v_rates == "open":
        verdict, notes = "open", "The steering rates are not resolved at 5% by this profile."
    else:
        verdict = "confirmed" if v_bbp == "confirmed" else "qualified"
        notes = (
            "For u an eigenvector of F, u wins exactly above mu* = rho - alpha - lambda_u and "
            "the tokens converge to it at the token rate of M' (below mu*, cos(x, u) decays "
            "at max(|alpha + lambda_u + mu|, alpha)/|mu_1|). For a generic u and random "
            "symmetric F, u never becomes an eigenvector: above the BBP threshold "
            "mu* = sqrt(sigma_v2) the tokens align with a top eigenvector whose overlap with "
            f"u is 1 - sigma_v2/mu^2 (BBP comparison {v_bbp}: "
            + (rejected_summary(bbp_cmp) if v_bbp == "refuted" else "see the table")
            + "), so steering reaches |cos| -> 1 only as mu/sqrt(sigma_v2) grows.")
    return ClaimResult("PM-4", PM4.statement, verdict, deciding, comparisons, mutations,
                       profile, notes, {"curve": curve, "mu_star": mu_star,
                                        "bbp_rows": bbp_rows,
                                        "bbp_theory": _bbp_curve(s * s)})


def _bbp_curve(sigma_v2: float, n: int = 121) -> list[dict[str, float]]:
    """Figure data: the BBP overlap^2 on a grid of ``mu/s`` in ``[0, 4]``."""
    s = math.sqrt(sigma_v2)
    return [{"mu_over_s": float(m), "overlap2": theory.bbp(m * s, sigma_v2)["overlap"] ** 2}
            for m in np.linspace(0.0, 4.0, n)[1:]]


PM4 = register(Claim(
    "PM-4", "power-method",
    "Steering: the rank-one edit F' = F + mu u u^T makes u dominant once mu passes a "
    "threshold, and tokens then converge toward u.",
    "power-method", "pm-4", run_pm4))


# ----------------------------------------------------------------------------- PM-5

PM5_OBSERVABLES = ("align_M", "align_mean_M", "cosine")
#: engine observables of the layer-1 stack (kind ``"forward"``, ``norm="none"``)
FIRST_LAYER_OBSERVABLES = ("q", "p", "ipr")


def first_layer_config(F: np.ndarray, beta: float) -> Config:
    """One layer of the PM-5 stack without normaliser (``norm="none"``): ``y_i = x_i + F sum_j
    A_ij x_j`` on isometric input; ``beta = 0`` is uniform attention."""
    if beta == 0.0:
        return stack_config(F, 1, "none")
    return stack_config(F, 1, "none", "softmax", beta)


def first_layer_rows(F: np.ndarray, betas: tuple[float, ...], overlap_betas: tuple[float, ...],
                     samples: int, executor: Any = "serial") -> list[dict[str, Any]]:
    """Per ``beta`` (0: uniform): the exact layer-1 expectations of ``q`` and, where the two-row
    overlap is computed (``overlap_betas``, ~10 s each), of the deviation energy kept ``q - p``
    and the mean energy gain ``q + (T - 1) p`` (``theory.power_shared.first_layer``), with the
    engine's per-sample estimates."""
    T = T_TOKENS
    points = [Point(first_layer_config(F, b), samples, SEED, "forward") for b in betas]
    results = sweep(points, executor=executor)
    rows = []
    for b, res in zip(betas, results, strict=True):
        m = theory.attention_moments(T, F.shape[0], b, overlap=b in overlap_betas or b == 0.0)
        pred = theory.first_layer(F, T, m["ipr"], m["overlap"])
        q, p = res.per_sample("q", 1), res.per_sample("p", 1)
        row = {"beta": b, "ipr_theory": m["ipr"], "overlap_theory": m["overlap"],
               "samples": res.samples, "seed": res.seed}
        for name, values in (("q", q), ("deviation", q - p), ("mean_gain", q + (T - 1) * p),
                             ("ipr", res.per_sample("ipr", 1))):
            e = estimate(values)
            row[name], row[f"{name}_se"] = e.mean, e.se
            row[f"{name}_theory"] = m["ipr"] if name == "ipr" else pred[name]
        rows.append(row)
    return rows


def _consensus_link(results: dict[str, Result], depth: int) -> dict[str, Any]:
    """Figure data linking GAP-5 and PM: per layer, the medians over the samples that reach
    consensus of ``sqrt(E_b/E_m)`` (bulk over mean energy of the tokens; with ``|x|^2 = d``,
    ``E_b/E_m = (T - 1)(1 - cosine)/(1 + (T - 1) cosine)``) and of ``sin angle(xbar, v_1)``."""
    T = T_TOKENS
    out = {}
    for case, res in results.items():
        cos = res.per_sample("cosine")
        keep = cos[:, depth] > CONSENSUS_COSINE
        with np.errstate(divide="ignore", invalid="ignore"):  # token mean 0: ratio inf
            ratio = (T - 1) * np.clip(1.0 - cos, 0.0, None) / (1.0 + (T - 1) * cos)
        out[case] = {"bulk_over_mean": np.median(np.sqrt(ratio[keep]), axis=0).tolist(),
                     "sin_mean": np.median(sines(res, "align_mean_M")[keep], axis=0).tolist(),
                     "reached": int(keep.sum()), "samples": res.samples, "seed": res.seed}
    return out


def run_pm5(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """PM-5: the token rate under softmax attention at finite ``beta`` against the
    beta-independent (uniform) prediction; the first layer's energies against their exact
    expectations in the REM participation ratio (the transient); rank collapse and the
    power-method direction on shared layer axes."""
    g = GRIDS[check_profile(profile)]
    F = design(tilt_spectrum())
    pred = theory.rates(F, 1.0, "l2")
    depth = g["softmax_depth"]
    n = g["softmax_samples"]
    points = [Point(stack_config(F, depth, "l2", "softmax", beta), n, SEED, "alignment")
              for beta in g["beta"]]
    points.append(Point(stack_config(F, depth, "l2"), n, SEED, "alignment"))
    results = sweep(points, executor=executor)
    first_betas = (0.0, *g["beta"])
    first = first_layer_rows(F, first_betas, g["overlap_beta"], g["first_samples"], executor)
    n_dev = sum(1 for r in first if math.isfinite(r["deviation_theory"]) and r["beta"] > 0)
    n_tests = len(g["beta"]) + len(first) + n_dev
    comparisons, rows, per_sample, by_case = [], [], {}, {}
    effective: dict[float, Estimate] = {}
    for p, res in zip(points, results, strict=True):
        c = p.config
        case = "uniform" if c.attention == "uniform" else f"beta={c.beta:g}"
        by_case[case] = res
        rows += _layer_rows(res, case, PM5_OBSERVABLES, beta=c.beta if
                            c.attention == "softmax" else 0.0)
        # figure data: each sample's sin(x, v_1) by layer and final token cosine
        sin = sines(res, "align_M")
        per_sample[case] = {"sin": sin.tolist(),
                            "cosine_final": res.per_sample("cosine", depth).tolist(),
                            "samples": res.samples, "seed": res.seed}
        if c.attention == "softmax":
            est, slopes = fitted_rate(sin)
            per_sample[case]["rate"] = np.exp(slopes).tolist()
            effective[c.beta] = est
            consensus = np.asarray(per_sample[case]["cosine_final"]) > CONSENSUS_COSINE
            on_v1 = sin[:, depth] < LINEAR_SIN
            linear = consensus & on_v1
            per_sample[case]["reached"] = int(linear.sum())
            per_sample[case]["elsewhere"] = int((consensus & ~on_v1).sum())
            if linear.sum() >= 2:
                sub = estimate(slopes[linear])
                rate = math.exp(sub.mean)
                comparisons.append(compare_estimate(
                    pred.token_rate, Estimate(rate, rate * sub.se, sub.n), n_tests,
                    {"beta": c.beta},
                    "softmax, linear regime: token rate vs the uniform-attention rate"))
    first_cmp = []
    for r in first:
        for name, label in (("q", "layer 1, norm none: q vs alpha^2 + 2 alpha tr F/(T d) + "
                                  "E ipr tr(F^T F)/d"),
                            ("deviation", "layer 1, norm none: q - p (deviation energy kept) vs "
                                          "alpha^2 + (E ipr - E overlap) tr(F^T F)/d")):
            # at beta = 0 the deviations are exactly alpha x_i: nothing random to compare
            if math.isfinite(r[f"{name}_theory"]) and not (name == "deviation" and r["beta"] == 0):
                first_cmp.append(compare_estimate(r[f"{name}_theory"],
                                                  Estimate(r[name], r[f"{name}_se"], r["samples"]),
                                                  n_tests, {"beta": r["beta"], "observable": name,
                                                            "E_ipr": r["ipr_theory"]}, label))
    # beta-blind twins: the same layer-1 tests against uniform attention's moments (1/T)
    blind = theory.first_layer(F, T_TOKENS, 1.0 / T_TOKENS, 1.0 / T_TOKENS)
    blind_twins = [compare(blind[c.params["observable"]], c.estimate, c.se, n_tests=n_tests,
                           params=c.params, label=f"{c.label} (beta-blind twin: E ipr = 1/T)",
                           dof=c.dof) for c in first_cmp if c.params["beta"] > 0]
    mutations = mutation_twins(comparisons + first_cmp, n_tests) + blind_twins
    v_rate = decide(comparisons, mutation_twins(comparisons, n_tests))
    v_first = decide(first_cmp, mutation_twins(first_cmp, n_tests) + blind_twins)
    reached = ", ".join(f"{case}: {ps['reached']}/{ps['samples']}"
                        for case, ps in per_sample.items() if "reached" in ps)
    elsewhere = ", ".join(f"{case}: {ps['elsewhere']}"
                          for case, ps in per_sample.items() if ps.get("elsewhere"))
    dev_text = ", ".join(
        f"beta={r['beta']:g}: {r['deviation']:.4f} +- {r['deviation_se']:.1g} (theory "
        f"{r['deviation_theory']:.4f}, E ipr {r['ipr_theory']:.3f})"
        for r in first if math.isfinite(r["deviation_theory"]) and r["beta"] > 0)
    q_text = ", ".join(f"beta={r['beta']:g}: {r['q']:.4f} +- {r['q_se']:.1g} (theory "
                       f"{r['q_theory']:.4f})" for r in first)
    deciding = ("token rate in the linear regime " + ", ".join(
        f"beta={c.params['beta']:g}: {c.estimate:.4f} +- {c.se:.1g}" for c in comparisons)
        + f" (beta-independent theory {pred.token_rate:.4f}); samples reaching it by layer "
        f"{depth}: {reached}; layer-1 q " + q_text + "; layer-1 deviation energy kept "
        + dev_text + " (beta = 0: uniform)")
    eff = ", ".join(f"beta={b:g}: {e.mean:.3f} +- {e.se:.1g}" for b, e in effective.items())
    if v_rate == "confirmed" and v_first == "confirmed":
        verdict = "qualified"
        notes = (
            "Near consensus softmax attention is uniform to first order (the row constant "
            "cancels, sum_j (A_ij - 1/T) delta_j is second order), so the asymptotic rate does "
            "not depend on beta, and the samples that reach the linear regime contract at the "
            "uniform-attention rate at every beta. Attention acts on the transient, and the "
            "first layer's share of it is predicted exactly by the REM participation ratio: "
            "without normaliser, E q = alpha^2 + 2 alpha tr F/(T d) + E ipr tr(F^T F)/d "
            "(confirmed at every beta: " + q_text + ") and the deviation energy kept is "
            "alpha^2 + (E ipr - E overlap) tr(F^T F)/d (confirmed at " + dev_text + "; "
            + ", ".join(f"E overlap {r['overlap_theory']:.4f} at beta={r['beta']:g}" for r in first
                        if math.isfinite(r["overlap_theory"]) and r["beta"] > 0)
            + f" against 1/T = {1 / T_TOKENS:.4f} and E ipr up to "
            f"{max(r['ipr_theory'] for r in first):.3f}, so E ipr carries the beta dependence; "
            "the beta-blind twins, uniform attention's moments 1/T, are rejected). "
            "Uniform attention keeps alpha^2 = 1 of the "
            "deviations; as E ipr grows with beta the deviations see more of F, so the tokens "
            "start further from consensus, fewer reach the linear regime within "
            f"{depth} layers ({reached}) and the effective rate over all samples rises ({eff}); "
            "the others stall on a plateau where the token mean nearly vanishes, or (a few, "
            f"more at larger beta: {elsewhere or 'none'}) pass the consensus cosine but are not on "
            "v_1 (at the full profile most sit at +-F's top eigenvector, split 7 to 1 by sign: "
            "token cosine 0.5) and "
            "do not contract. The "
            "participation ratio predicts the first layer, not the whole transient (the "
            "deeper layers see correlated tokens). Rank collapse (bulk/mean energy, shrinking "
            "by alpha/|mu_1| per layer) and the power-method direction (mean token -> v_1 at "
            "|mu_2/mu_1|) are the two components of the same linear map.")
    elif v_rate == "refuted":
        verdict = "open"
        notes = ("The derived beta-independence of the asymptotic rate is rejected in the "
                 "linear regime: " + rejected_summary(comparisons) + ". This chapter then has no "
                 "prediction of the beta dependence to test the paper's claim with.")
    elif v_first == "refuted":
        verdict = "open"
        notes = ("The exact layer-1 expectations in the participation ratio are rejected: "
                 + rejected_summary(first_cmp) + f". Asymptotic rate comparison: {v_rate}.")
    else:
        verdict = "open"
        notes = ("A comparison could not resolve a 5% discrepancy here, or a twin survived "
                 f"(linear-regime rate: {v_rate}; layer-1 participation-ratio prediction: "
                 f"{v_first}; samples reaching the linear regime: {reached}).")

    link = _consensus_link({k: by_case[k] for k in ("uniform", f"beta={g['link_beta']:g}")},
                           depth)
    return ClaimResult("PM-5", PM5.statement, verdict, deciding, comparisons + first_cmp,
                       mutations, profile, notes,
                       {"rows": rows, "token_rate": pred.token_rate, "mean_rate": pred.mean_rate,
                        "deviation_rate": 1.0 / abs(pred.mu_1), "per_sample": per_sample,
                        "T": T_TOKENS, "first_layer": first, "link": link,
                        "link_beta": g["link_beta"], "depth": depth})


PM5 = register(Claim(
    "PM-5", "power-method",
    "Non-uniform attention (finite beta) adds token-dependent mixing that changes the "
    "alignment rate, by an amount set by how far attention is from uniform.",
    "power-method", "pm-5", run_pm5))
