"""Contribution weights (science/contribution-weights.md): claims CW-1 to CW-4
(theory in ``theory.contribution``, NumPy contribution weights in ``sim.contribution``).

- CW-1: the identities of ``CW_ij = A_ij <v_j, y_i>/||y_i||^2`` checked on many random heads
  (rows sum to 1, invariance to rescaling the values, ``CW = A`` for equal values, negative for
  an opposing value), and the engine's ``cw_sink``/``cw_self`` against the NumPy weights on the
  same matrices. Exact identities: the verdict rests on the largest violation.
- CW-2: planted sink (``qk="sink"``), one plain layer, gaussian input. The sink rate is set by
  ``qk_scale`` (the same draws at every rate: common random numbers). The exact population
  curve ``E||y(s)||^2/d`` is compared at each rate; per sample, the quadratic coefficient of
  the squared norm (exact) is compared with ``E||v_0 - m||^2/d`` and that of the norm
  ``||y||/sqrt(d)`` (convexity) is reported with its interval; active suppression is
  ``cw_sink < 0`` and ``||y|| - (1 - s)||m|| < 0`` with intervals excluding 0.
- CW-3: kind ``"ablation"``: Spearman correlations of CW, alpha and ``||alpha_ij v_j||`` with
  the deletion effects, per sample, with and without a sink; paired difference CW - alpha.
- CW-4: kind ``"queries"`` with a sink whose rate varies by query: the sign of
  ``cos(v_0, Delta x_i)`` for the smallest updates against the fixed-geometry prediction.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sim.claims import Claim, ClaimResult, decide, mutation_twins, register, rejected_summary
from sim.config import Config
from sim.contribution import contribution_weights, first_layer_head, quadratic_coefficients
from sim.montecarlo import Estimate, Result, estimate
from sim.profiles import check_profile
from sim.stats import FAMILY_RATE, compare, critical_z
from sim.sweep import Point, sweep
from theory import contribution as theory
from theory import predictions

SEED = 23
#: matrix seed of the designed query-key matrices (part of the design, not of the Monte Carlo)
DESIGN_SEED = 5

# ----------------------------------------------------------------------------- CW-1

CW1_GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"heads": 200, "engine_samples": 8},
    "book": {"heads": 2000, "engine_samples": 32},
    "full": {"heads": 20000, "engine_samples": 256},
}


def identity_violations(A: np.ndarray, V: np.ndarray, scale: float) -> dict[str, float]:
    """Largest violations of the CW-1 identities on one head (``A`` row-stochastic ``T x T``,
    ``V`` ``T x d``): row sums, rescaling by ``scale``, equal values (``CW = A``), and the sign
    rule (``CW_ij`` has the sign of ``<v_j, y_i>``: the largest ``CW_ij`` where the value
    opposes the output, 0 when none is positive); ``opposing`` counts those entries."""
    cw = contribution_weights(A, V)
    equal = contribution_weights(A, np.tile(V[:1], (A.shape[0], 1)))
    Y = A @ V
    against = (Y @ V.T) < 0
    return {"row_sum": float(np.max(np.abs(cw.sum(axis=1) - 1.0))),
            "rescale": float(np.max(np.abs(contribution_weights(A, scale * V) - cw))),
            "equal_values": float(np.max(np.abs(equal - A))),
            "sign": float(max(np.max(cw[against], initial=0.0), 0.0)),
            "opposing": float(np.sum(against))}


def _random_head(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    T = int(rng.integers(3, 33))
    d = int(rng.integers(2, 65))
    logits = rng.normal(0.0, rng.uniform(0.1, 4.0), (T, T))
    A = np.exp(logits - logits.max(axis=1, keepdims=True))
    A /= A.sum(axis=1, keepdims=True)
    return A, rng.normal(0.0, 1.0, (T, d))


def cw1_engine_config(sink: bool) -> Config:
    """Random-qk softmax layer (with a sink token of value 0.5 when ``sink``)."""
    extra = {"sink": True, "sink_value": 0.5, "sink_cos": 0.3} if sink else {}
    return Config(T=12, d=16, depth=1, heads=1, mlp=False, norm="none", alpha_attn=1.0,
                  attention="softmax", beta=1.5, input="gaussian", **extra)


def run_cw1(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """CW-1: the identities, over random heads, and the engine against NumPy."""
    g = CW1_GRIDS[check_profile(profile)]
    rng = np.random.default_rng(SEED)
    worst = {"row_sum": 0.0, "rescale": 0.0, "equal_values": 0.0, "sign": 0.0}
    opposing = 0
    for _ in range(g["heads"]):
        A, V = _random_head(rng)
        scale = float(np.exp(rng.uniform(-5, 5)))
        v = identity_violations(A, V, scale)
        opposing += int(v["opposing"])
        for k in worst:
            worst[k] = max(worst[k], v[k])
    engine = {}
    points = [Point(cw1_engine_config(s), g["engine_samples"], SEED, kind)
              for s in (False, True) for kind in ("heads", "queries")]
    results = sweep(points, executor=executor)
    for p, res in zip(points, results, strict=True):
        key = f"{p.kind}{'_sink' if p.config.sink else ''}"
        err = 0.0
        for i in range(p.samples):
            A, V = first_layer_head(p.config, p.seed, i)
            cw = contribution_weights(A, V)
            q = np.arange(1 if p.config.sink else 0, p.config.T)
            sink_cw, self_cw = cw[q, 0], cw[q, q]
            if p.kind == "heads":
                pairs = ((res.per_sample("cw_sink", 0)[i], sink_cw.mean()),
                         (res.per_sample("cw_self", 0)[i], self_cw.mean()))
            else:
                pairs = ((res.per_sample("cw_sink")[i, q], sink_cw),
                         (res.per_sample("cw_self")[i, q], self_cw))
            for got, want in pairs:
                err = max(err, float(np.max(np.abs(np.asarray(got) - want))))
        engine[key] = err
    identity_ok = max(worst.values()) < 1e-9 and opposing > 0
    engine_ok = max(engine.values()) < 1e-9
    verdict = "confirmed" if identity_ok and engine_ok else "refuted"
    deciding = (f"largest violation over {g['heads']} random heads: row sums "
                f"{worst['row_sum']:.1e}, rescaling {worst['rescale']:.1e}, equal values "
                f"{worst['equal_values']:.1e}, largest CW of an opposing value {worst['sign']:.1e} "
                f"({opposing} opposing values); "
                f"engine vs NumPy {max(engine.values()):.1e}")
    notes = ("Exact identities: sum_j CW_ij = <sum_j A_ij v_j, y_i>/||y_i||^2 = 1; CW is "
             "homogeneous of degree 0 in V; with v_j = v for all j, y_i = v and CW_ij = A_ij; "
             "a value with <v_j, y_i> < 0 has CW_ij < 0. They hold to rounding on every random "
             "head, and the engine's cw_sink / cw_self (kinds heads and queries, with and "
             "without a sink) equal the NumPy weights on the same A and V.")
    return ClaimResult("CW-1", CW1.statement, verdict, deciding, [], [], profile, notes,
                       {"identities": worst, "opposing": opposing, "engine": engine,
                        "heads": g["heads"], "samples": g["engine_samples"], "seed": SEED})


CW1 = register(Claim(
    "CW-1", "contribution-weights",
    "Contribution weights CW_ij = alpha_ij <v_j, y_i>/||y_i||^2 sum to 1 over j, are invariant "
    "to a rescaling of the values, reduce to alpha when all values are equal and are negative "
    "when a value opposes the output.",
    "contribution", "cw-1", run_cw1))


# ----------------------------------------------------------------------------- CW-2

#: the three sink geometries: (sink_value, sink_align, sink_cos); same input geometry
CW2_CASES: dict[str, tuple[float, float, float]] = {
    "passive": (0.0, 0.8, 0.6),
    "aligned": (1.0, 0.8, 0.6),
    "active": (-0.5, 0.8, 0.6),
}
CW2_T, CW2_D = 16, 64

CW2_GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"rates": (0.1, 0.3, 0.5, 0.7, 0.9), "samples": 1500},
    "book": {"rates": (0.05, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9), "samples": 3000},
    "full": {"rates": tuple(np.round(np.linspace(0.05, 0.95, 19), 3)), "samples": 20000},
}


def qk_scale_for_rate(rate: float, sink_align: float, sink_cos: float, d: int, T: int) -> float:
    """``qk_scale`` giving the planted sink rate ``rate`` (inverse of ``sink_rate``)."""
    return math.log((T - 1) * rate / (1 - rate)) / (sink_align * d * math.sqrt(1 - sink_cos**2))


def cw2_config(case: str, rate: float) -> Config:
    w, a, b = CW2_CASES[case]
    return Config(T=CW2_T, d=CW2_D, depth=1, heads=1, mlp=False, norm="none", alpha_attn=1.0,
                  attention="softmax", qk="sink",
                  qk_scale=qk_scale_for_rate(rate, a, b, CW2_D, CW2_T), sink=True,
                  sink_align=a, sink_cos=b, sink_value=w, input="gaussian")


def _query_mean(result: Result, observable: str) -> np.ndarray:
    """Per-sample mean over the non-sink queries ``i >= 1`` (``samples``)."""
    return result.per_sample(observable)[:, 1:].mean(axis=1)


def _interval(est: Estimate, n_tests: int) -> tuple[float, float]:
    z = critical_z(n_tests, FAMILY_RATE, dof=max(est.n - 1, 1))
    return est.mean - z * est.se, est.mean + z * est.se


def _threshold(name: str, r2: float, cos: float) -> float:
    """``cw_zero`` or ``suppression_threshold`` of ``theory.contribution`` (``nan`` unless
    ``cos < 0`` and ``r > 0``: no sign change or suppression otherwise)."""
    if cos >= 0 or r2 <= 0:
        return float("nan")
    return float(getattr(theory._generated(), name)(math.sqrt(r2), cos))


def run_cw2(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """CW-2: output norm against sink rate (population curve, convexity, active suppression)."""
    g = CW2_GRIDS[check_profile(profile)]
    rates = g["rates"]
    points = [Point(cw2_config(case, rate), g["samples"], SEED, "queries")
              for case in CW2_CASES for rate in rates]
    results = sweep(points, executor=executor)
    by_case = {case: results[k * len(rates):(k + 1) * len(rates)]
               for k, case in enumerate(CW2_CASES)}
    out_pred = predictions.get("cw2_output_norm")
    # family: output norms, curvatures, rest norms, convexity and suppression intervals
    n_curve = len(CW2_CASES) * len(rates)
    n_tests = n_curve + 1 + 2 * len(CW2_CASES) + 2 * len(rates)
    curve_cmp, curv_cmp, rest_cmp, rows, convexity, suppression = [], [], [], [], {}, []
    sink_rate_error = 0.0
    for case, res_list in by_case.items():
        w, a, b = CW2_CASES[case]
        geo = {"sink_value": w, "sink_align": a, "sink_cos": b}
        r2 = float(theory._generated().geometry_r2(w, a, CW2_T))
        cos_ = float(theory._generated().geometry_cos(w, a, b, CW2_T))
        norms, sq = [], []
        for rate, res in zip(rates, res_list, strict=True):
            s_measured = _query_mean(res, "sink_mass")
            sink_rate_error = max(sink_rate_error, float(np.max(np.abs(s_measured - rate))))
            on = _query_mean(res, "output_norm")
            rest = _query_mean(res, "rest_norm")
            cw = _query_mean(res, "cw_sink")
            e_on = estimate(on)
            pred = float(out_pred(s=rate, sigma_v2=1.0, T=CW2_T, **geo))
            curve_cmp.append(compare(pred, e_on.mean, e_on.se, n_tests=n_tests,
                                     params={"case": case, "s": rate},
                                     label="E||y(s)||^2/d vs exact population curve",
                                     dof=e_on.n - 1))
            norm = np.sqrt(on)
            gap = norm - (1 - rate) * np.sqrt(rest)
            e_norm, e_gap, e_cw = estimate(norm), estimate(gap), estimate(cw)
            rows.append({"case": case, "s": rate, "output_norm": e_on.mean,
                         "output_norm_se": e_on.se, "theory": pred, "norm": e_norm.mean,
                         "norm_se": e_norm.se, "passive_line": float((1 - rate) * np.sqrt(
                             rest).mean()), "gap": e_gap.mean, "gap_se": e_gap.se,
                         "cw_sink": e_cw.mean, "cw_sink_se": e_cw.se,
                         "cw_theory": float(theory._generated().cw_sink(
                             rate, math.sqrt(r2), cos_)),
                         "norm_ratio_theory": float(theory._generated().norm_ratio(
                             rate, math.sqrt(r2), cos_)),
                         "samples": res.samples, "seed": res.seed})
            norms.append(norm)
            sq.append(on)
            if case == "active":
                suppression.append({"s": rate, "gap": _interval(e_gap, n_tests),
                                    "cw_sink": _interval(e_cw, n_tests),
                                    "below_passive": _interval(e_gap, n_tests)[1] < 0,
                                    "cw_negative": _interval(e_cw, n_tests)[1] < 0})
        e_rest = estimate(_query_mean(res_list[0], "rest_norm"))
        if not rest_cmp:  # the non-sink values do not depend on the sink: one comparison
            rest_cmp.append(compare(float(predictions.get("cw2_rest_norm")(
                sink_align=a, T=CW2_T, sigma_v2=1.0)), e_rest.mean, e_rest.se,
                n_tests=n_tests, params={"case": "all"}, label="E||m||^2/d vs sigma_v2 rho_m",
                dof=e_rest.n - 1))
        coef_sq = quadratic_coefficients(np.array(rates), np.column_stack(sq))[:, 2]
        e_c2 = estimate(coef_sq)
        curv_cmp.append(compare(float(predictions.get("cw2_output_curvature")(
            sigma_v2=1.0, T=CW2_T, **geo)), e_c2.mean, e_c2.se, n_tests=n_tests,
            params={"case": case}, label="s^2 coefficient of ||y||^2/d vs E||v_0 - m||^2/d",
            dof=e_c2.n - 1))
        coef = quadratic_coefficients(np.array(rates), np.column_stack(norms))[:, 2]
        e_c = estimate(coef)
        lo, hi = _interval(e_c, n_tests) if e_c.se > 0 else (e_c.mean, e_c.mean)
        convexity[case] = {"c2": e_c.mean, "c2_se": e_c.se, "interval": (lo, hi),
                           "convex": lo > 0, "linear": max(abs(lo), abs(hi)) < 1e-9,
                           "r2": r2, "cos": cos_,
                           "cw_zero": _threshold("cw_zero", r2, cos_),
                           "suppression_threshold": _threshold("suppression_threshold", r2,
                                                               cos_),
                           "norm_minimiser": float(theory._generated().norm_minimiser(
                               math.sqrt(r2), cos_))}
    comparisons = curve_cmp + rest_cmp + curv_cmp
    mutations = mutation_twins(comparisons, n_tests)
    agreement = decide(comparisons, mutations)
    worst = max(comparisons, key=lambda c: abs(c.z))
    below = [float(r["s"]) for r in suppression if r["below_passive"]]
    negative = [float(r["s"]) for r in suppression if r["cw_negative"]]
    cv = convexity
    deciding = (f"population curve: max |z| = {abs(worst.z):.1f} over {len(comparisons)} "
                f"comparisons; norm curvature c2 = " + ", ".join(
                    f"{k} {v['c2']:.3f} [{v['interval'][0]:.3f}, {v['interval'][1]:.3f}]"
                    for k, v in cv.items())
                + f"; active sink: below the passive line at s = {below}, cw_sink < 0 at "
                f"s = {negative}")
    convex_ok = cv["aligned"]["convex"] and cv["active"]["convex"] and cv["passive"]["linear"]
    if agreement != "confirmed":
        verdict = agreement
        notes = "The exact population curve came out " + agreement + ": " + \
            rejected_summary(comparisons)
    elif convex_ok and below and negative:
        verdict = "qualified"
        notes = (
            "Convexity holds, but as a consequence of geometry, not of suppression: at fixed "
            "values y(s) = s v_0 + (1 - s) m is affine in s, so ||y(s)|| is convex for any "
            "sink; its squared norm has s^2 coefficient ||v_0 - m||^2 (measured, matching the "
            "exact E||v_0 - m||^2/d). A passive sink gives the line (1 - s)||m|| (curvature "
            f"{cv['passive']['c2']:.1e}). Active suppression (curve below the passive line, "
            "cw_sink < 0) needs a sink value opposing the others' mean, cos(v_0, m) < 0: "
            f"with cos = {cv['active']['cos']:.2f}, r = {math.sqrt(cv['active']['r2']):.2f} "
            f"the theory puts cw_sink < 0 for s < {cv['active']['cw_zero']:.3f} and the curve "
            f"below the line for s < {cv['active']['suppression_threshold']:.3f} (measured: "
            f"cw_sink < 0 at s = {negative}, below at s = {below}). The aligned sink "
            f"(cos = {cv['aligned']['cos']:.2f}) has an equally convex curve and no "
            "suppression. In random heads the sign of cos(v_0, m) is set by the input "
            "geometry (sink_value * sink_align * sink_cos); nothing at initialisation makes it "
            "negative.")
    else:
        verdict = "open"
        notes = ("The population curve matches the theory, but convexity or active suppression "
                 "was not resolved: " + str({k: v["interval"] for k, v in cv.items()}))
    return ClaimResult("CW-2", CW2.statement, verdict, deciding, comparisons, mutations,
                       profile, notes, {"rows": rows, "convexity": convexity,
                                        "suppression": suppression, "T": CW2_T, "d": CW2_D,
                                        "cases": {k: list(v) for k, v in CW2_CASES.items()},
                                        "sink_rate_error": sink_rate_error})


CW2 = register(Claim(
    "CW-2", "contribution-weights",
    "Attention sinks actively suppress information, through a convex relationship between "
    "sink rate and output norm.",
    "contribution", "cw-2", run_cw2))


# ----------------------------------------------------------------------------- CW-3

CW3_T, CW3_D = 12, 32
CW3_GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"beta": (1.0, 3.0), "depth": 3, "samples": 100},
    "book": {"beta": (0.5, 1.0, 2.0, 4.0), "depth": 4, "samples": 300},
    "full": {"beta": (0.25, 0.5, 1.0, 2.0, 4.0, 8.0), "depth": 8, "samples": 3000},
}
PREDICTORS = ("cw", "abs_cw", "alpha", "norm")


def sink_qk_matrix(beta: float, d: int, T: int, sink_align: float = 0.5,
                   sink_cos: float = 0.0) -> tuple[float, ...]:
    """Planted query-key matrix with a sink: ``c u e^T + (beta/d) G`` (``G`` a fixed standard
    Gaussian ``d x d`` matrix, seed ``DESIGN_SEED``, so random scores have std ``beta``; ``c``
    puts the sink logit at ``log(T - 1)``, i.e. a layer-1 sink rate near 1/2)."""
    G = np.random.default_rng(DESIGN_SEED).standard_normal((d, d))
    M = beta / d * G
    M[0, 1] += math.log(T - 1) / (sink_align * d * math.sqrt(1 - sink_cos**2))
    return tuple(float(x) for x in M.ravel())


def random_qk_matrix(beta: float, d: int) -> tuple[float, ...]:
    """The same random part without the sink: ``(beta/d) G``."""
    G = np.random.default_rng(DESIGN_SEED).standard_normal((d, d))
    return tuple(float(x) for x in (beta / d * G).ravel())


def cw3_config(beta: float, depth: int, sink: bool) -> Config:
    extra = ({"sink": True, "sink_value": 0.2, "qk_matrix": sink_qk_matrix(beta, CW3_D, CW3_T)}
             if sink else {"qk_matrix": random_qk_matrix(beta, CW3_D)})
    return Config(T=CW3_T, d=CW3_D, depth=depth, heads=1, mlp=False, norm="post",
                  attention="softmax", qk="given", input="gaussian", **extra)


def run_cw3(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """CW-3: CW, alpha and ||alpha v|| as predictors of deletion effects (Spearman)."""
    g = CW3_GRIDS[check_profile(profile)]
    cases = [(beta, sink) for sink in (False, True) for beta in g["beta"]]
    points = [Point(cw3_config(beta, g["depth"], sink), g["samples"], SEED, "ablation")
              for beta, sink in cases]
    results = sweep(points, executor=executor)
    n_tests = 2 * len(cases)
    rows, diffs = [], []
    for (beta, sink), res in zip(cases, results, strict=True):
        row: dict[str, Any] = {"beta": beta, "sink": sink, "samples": res.samples,
                               "seed": res.seed}
        for target in ("layer", "final"):
            for pr in PREDICTORS:
                e = res.estimate(f"spearman_{pr}_{target}", 0)
                row[f"{pr}_{target}"], row[f"{pr}_{target}_se"] = e.mean, e.se
            diff = estimate(res.per_sample(f"spearman_cw_{target}", 0)
                            - res.per_sample(f"spearman_alpha_{target}", 0))
            lo, hi = _interval(diff, n_tests)
            row[f"diff_{target}"], row[f"diff_{target}_interval"] = diff.mean, (lo, hi)
            diffs.append({"beta": beta, "sink": sink, "target": target, "diff": diff.mean,
                          "interval": (lo, hi)})
        rows.append(row)
    worse = [x for x in diffs if x["interval"][1] < 0]
    better = [x for x in diffs if x["interval"][0] > 0]
    if len(better) == len(diffs):
        verdict = "confirmed"
    elif len(worse) == len(diffs):
        verdict = "refuted"
    elif worse or better:
        verdict = "qualified"
    else:
        verdict = "open"

    def _fmt(x: dict) -> str:
        lo, hi = x["interval"]
        return (f"{'sink' if x['sink'] else 'no sink'} beta={x['beta']:g} {x['target']}: "
                f"{x['diff']:+.3f} [{lo:+.3f}, {hi:+.3f}]")

    deciding = (f"at initialisation, Spearman(CW) - Spearman(alpha): CW worse in "
                f"{len(worse)}, better in {len(better)} of {len(diffs)} cases; e.g. " + "; ".join(
                    _fmt(x) for x in diffs if x["beta"] == g["beta"][0]))
    notes = (
        "Deleting token j from query i's row changes the head output by exactly "
        "A_ij ||v_j - y_i||/(1 - A_ij) (checked in the tests). In random heads the values are "
        "nearly orthogonal and of similar norm, and y_i, an average, is shorter than v_j, so "
        "this effect is close to A_ij ||v_j||: alpha and the norm-based predictor rank it almost "
        "perfectly, while CW_ij = A_ij <v_j, y_i>/||y_i||^2 adds the random sign and size of "
        "<v_j, y_i> and ranks worse (the table gives all four predictors). For the final "
        "representation of a deep stack all predictors are weaker. The paper's claim concerns "
        "semantically critical tokens in trained models, which random transformers do not have: "
        "this measures only whether CW is a better ranking of deletion effects as a measure, "
        "at initialisation." + (" Where the intervals are on both sides, the sign depends on "
                                "the case: " + "; ".join(_fmt(x) for x in better)
                                if better and worse else ""))
    return ClaimResult("CW-3", CW3.statement, verdict, deciding, [], [], profile, notes,
                       {"rows": rows, "diffs": diffs, "T": CW3_T, "d": CW3_D,
                        "depth": g["depth"]})


CW3 = register(Claim(
    "CW-3", "contribution-weights",
    "Contribution weights identify the tokens whose deletion changes the output better than "
    "attention weights do.",
    "contribution", "cw-3", run_cw3))


# ----------------------------------------------------------------------------- CW-4

CW4_GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"samples": 300, "beta": 2.0},
    "book": {"samples": 1000, "beta": 2.0},
    "full": {"samples": 10000, "beta": 2.0},
}
CW4_T, CW4_D = 16, 64
#: fraction of queries (per sample) counted as small updates
SMALL_FRACTION = 0.25


def cw4_config(case: str, beta: float) -> Config:
    """CW-2's sink geometries with a random part in the scores, so the sink rate varies by
    query: ``W_QK = c u e^T + (beta/d) G``."""
    w, a, b = CW2_CASES[case]
    return Config(T=CW4_T, d=CW4_D, depth=1, heads=1, mlp=False, norm="none", alpha_attn=1.0,
                  attention="softmax", qk="given",
                  qk_matrix=sink_qk_matrix(beta, CW4_D, CW4_T, a, b), sink=True, sink_align=a,
                  sink_cos=b, sink_value=w, input="gaussian")


def small_update_cos(result: Result, fraction: float = SMALL_FRACTION
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: mean ``cos(v_0, y_i)`` over the ``fraction`` of queries ``i >= 1`` with the
    smallest ``||y_i||``, and over the others (``samples`` each)."""
    on = result.per_sample("output_norm")[:, 1:]
    cos = result.per_sample("sink_output_cos")[:, 1:]
    k = max(1, int(round(fraction * on.shape[1])))
    order = np.argsort(on, axis=1)
    small = np.take_along_axis(cos, order[:, :k], axis=1).mean(axis=1)
    large = np.take_along_axis(cos, order[:, k:], axis=1).mean(axis=1)
    return small, large


def run_cw4(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """CW-4: sign of cos(v_0, Delta x_i) for the smallest updates (open at initialisation)."""
    g = CW4_GRIDS[check_profile(profile)]
    cases = ("aligned", "active")
    points = [Point(cw4_config(c, g["beta"]), g["samples"], SEED, "queries") for c in cases]
    results = sweep(points, executor=executor)
    n_tests = 2 * len(cases)
    rows = []
    for case, res in zip(cases, results, strict=True):
        small, large = small_update_cos(res)
        e_s, e_l = estimate(small), estimate(large)
        frac = float(np.mean(res.per_sample("sink_output_cos")[:, 1:] < 0))
        rows.append({"case": case, "small": e_s.mean, "small_interval": _interval(e_s, n_tests),
                     "large": e_l.mean, "large_interval": _interval(e_l, n_tests),
                     "negative_fraction": frac, "samples": res.samples, "seed": res.seed,
                     "sink_mass": res.per_sample("sink_mass")[:, 1:].ravel()[:4000].tolist(),
                     "cos": res.per_sample("sink_output_cos")[:, 1:].ravel()[:4000].tolist(),
                     "output_norm": res.per_sample("output_norm")[:, 1:].ravel()[:4000]
                     .tolist()})
    deciding = "; ".join(
        f"{r['case']} sink: cos(v_0, Delta x) of the smallest {100 * SMALL_FRACTION:.0f}% "
        f"updates {r['small']:+.3f} [{r['small_interval'][0]:+.3f}, "
        f"{r['small_interval'][1]:+.3f}], of the others {r['large']:+.3f}" for r in rows)
    notes = (
        "At fixed geometry (theory.contribution) cos(v_0, y_i) has the sign of "
        "s_i r^2 + (1 - s_i) r c: it is negative only when the sink's value opposes the others' "
        "mean (c < 0) and the sink rate is below -c/(r - c). Along one query's curve y(s) the "
        "smallest update (at s*) has <v_0, y> = ||y||^2 >= 0; across the queries of random "
        "heads the small updates are those where the sink and the rest cancel, and their sign "
        "follows the planted geometry (measured: positive for the aligned sink, negative for "
        "the active one). The "
        "paper's statement is about semantic drift of low-confidence tokens in trained models; at "
        "initialisation there is no drift to oppose and the sign is fixed by the planted "
        "geometry, so the claim is open here; the measured signs are reported for the aligned "
        "and the active sink.")
    return ClaimResult("CW-4", CW4.statement, "open", deciding, [], [], profile, notes,
                       {"rows": rows, "T": CW4_T, "d": CW4_D, "beta": g["beta"]})


CW4 = register(Claim(
    "CW-4", "contribution-weights",
    "Sinks stabilise representations by opposing the semantic drift of low-confidence tokens.",
    "contribution", "cw-4", run_cw4))
