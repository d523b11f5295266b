"""Mind the gap claims, spectral half (science/mind-the-gap.md): GAP-1 (outlier), GAP-2 (bulk of
random-Markov attention), GAP-4 (bulk of key-query attention) and the validity map.

- GAP-1 (``kind="attention"``): ``E sigma_1(A)^2 - 1`` against the third-order theory
  ``theory.gap_spectra.sigma1_squared_excess_third`` (bias budget: the mean per-sample
  secular-equation bound on its ``O(T^-4)`` remainder, ``sigma1_squared_third_order_bias_bound``,
  from the measured ``Q2`` and ``Q3``; twin 1.1 times the theory), against the second order
  (its ``O(T^-3)`` bound), the first-order ``b_T/T`` (its ``O(T^-2)`` bound) and the asymptotic
  ``r^2/T``; ``A 1 = 1`` checked on every eigenvalue spectrum of the GAP-2 sweep (max
  ``|lambda_1 - 1|``, an identity up to rounding).
- GAP-2 (``kind="spectra"``): calibrated ESD tests (``sim.esd``) of the eigenvalue moduli and the
  singular values of ``sqrt(T) A`` without the outlier against the disc and the quarter circle of
  radius ``r`` (limit) and ``r_T`` (finite ``T``), twins at ``1.1 r_T``; the edge
  ``sqrt(T) sigma_2`` against ``2 r_T`` and a power-law fit of its approach.
- GAP-4 (``kind="spectra"``, key-query on isometric tokens, ``d = d_k = T``): singular values of
  ``sqrt(T) A`` without the outlier over the score std ``v`` (first order) or ``v_T`` (exact
  second moment) against the free product ``MP_c [x] MP_c`` law, twins at 1.1; and against the
  i.i.d.-lognormal quarter circle of ``r^2 = e^{v^2} - 1``.
- The validity map: KS distances of each (``s``, ``T``) and (``beta``, ``T``) point, with the
  REM scale ``s/sqrt(2 ln T)`` (``beta/beta_c``), in ``ClaimResult.data["map"]``.

Roles (``sim.stats.ROLES``): the second order, the first-order ``b_T/T`` and the asymptotic
``r^2/T`` (GAP-1), the
laws of radius ``r`` and the edge ``2 r_T`` (GAP-2), the first-order scale ``v`` and the
i.i.d.-lognormal law (GAP-4) are reported beside the finite-``T`` comparisons (role
``"reference"``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from sim.claims import MUTATION, Claim, ClaimResult, compare_estimate, decide, register
from sim.config import Config
from sim.esd import esd_test, scaled
from sim.montecarlo import Result, estimate
from sim.profiles import check_profile, grid_samples
from sim.stats import Comparison, compare, critical_z, fit_power_law
from sim.sweep import Point, sweep
from theory import gap_spectra as th

SEED = 5
EDGE_FIT_LEVEL = 0.95  # the edge exponent is descriptive: it decides no verdict
IDENTITY_TOL = 1e-12  # |lambda_1 - 1| allowed by rounding (float64, T <= 4096)

GAP1_GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"T": (256,), "markov_s": (0.5, math.sqrt(math.log(2))), "samples": 600},
    "book": {"T": (256,), "markov_s": (0.25, 0.5, math.sqrt(math.log(2))), "samples": 600},
    # full (projected with sim.costs): with the first-order theory the O(T^-2) budget alone was
    # above 1% at 10 of 25 points; with the second-order theory and its O(T^-3) bound (Q2
    # measured) only at T = 128, s = 1.25 (1.35%), where no sample count helps. Samples sized
    # for <= 0.9% elsewhere, the largest need at T = 256, s = 1.25 (budget 0.57%). The
    # third-order theory's O(T^-4) bound (Q2, Q3 measured) is 0.13% at T = 128, s = 1.25
    "full": {"T": (128, 256, 512, 1024, 2048),
             "markov_s": (0.25, 0.5, math.sqrt(math.log(2)), 1.0, 1.25),
             "samples": {128: 30000, 256: 43000, 512: 10000, 1024: 3000, 2048: 2500}},
}
GAP2_GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"T": (64, 128, 256), "markov_s": (0.5, math.sqrt(math.log(2)), 1.5, 2.0),
              "samples": {64: 100, 128: 50, 256: 25}},
    "book": {"T": (64, 128, 256, 512),
             "markov_s": (0.25, 0.5, math.sqrt(math.log(2)), 1.0, 1.5, 2.0),
             "samples": {64: 200, 128: 100, 256: 40, 512: 12}},
    "full": {"T": (64, 128, 256, 512, 1024, 2048, 4096),
             "markov_s": (0.25, 0.5, math.sqrt(math.log(2)), 1.0, 1.25, 1.5, 1.75, 2.0),
             # projected (sim.costs) 1.0-1.1% up to T = 1024 and 1.8% at 2048 with
             # {64: 1000, ..., 2048: 16}: the detectable scales with 1/sqrt(samples x T)
             "samples": {64: 2000, 128: 1000, 256: 400, 512: 200, 1024: 80, 2048: 64,
                         4096: 32}},
}
GAP4_GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"T": (64, 128, 256), "beta": (0.01, 0.05, 0.25, 1.0, 3.0),
              "samples": {64: 100, 128: 50, 256: 25}},
    "book": {"T": (64, 128, 256),
             "beta": (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0),
             "samples": {64: 200, 128: 100, 256: 40}},
    "full": {"T": (64, 128, 256, 512, 1024, 2048),
             "beta": (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0),
             # the projection (sim.costs) with {64: 1000, ..., 2048: 16} detected 1.5-1.7% up
             # to T = 512 and 2.4-2.6% at 1024 and 2048 (the free-product law at beta ~ 1)
             "samples": {64: 3000, 128: 2000, 256: 700, 512: 350, 1024: 300, 2048: 140}},
}
REM_BETA_C = math.sqrt(2.0)  # beta_c of isometric tokens (theory.rem, q = 1, p = 0)


def markov_config(T: int, markov_s: float) -> Config:
    """One layer of random-Markov attention (``d = 1``: only the attention is measured)."""
    return Config(T=T, d=1, depth=1, attention="markov", markov_s=markov_s, mlp=False,
                  norm="none", input="gaussian")


def key_query_config(T: int, beta: float) -> Config:
    """One key-query head on isometric tokens, ``d = d_k = T`` (``gamma = T/d = 1``)."""
    return Config(T=T, d=T, depth=1, attention="softmax", beta=beta, mlp=False, norm="none",
                  input="isometric")



def _worst(comps: list[Comparison]) -> Comparison:
    return max(comps, key=lambda c: abs(c.z) / c.z_crit)


def _ks_trend(rows: list[dict], key: str, n_tests: int = 1) -> dict[str, Any] | None:
    """Does the KS distance ``key`` fall between the smallest and the largest ``T`` of ``rows``
    (one parameter value)? One-sided z-test of the drop against the two worst-point errors at
    the family rate over ``n_tests``; the log-log slope over all ``T`` is descriptive."""
    rows = sorted(rows, key=lambda r: r["T"])
    if len(rows) < 2:
        return None
    first, last = rows[0], rows[-1]
    drop = first[key] - last[key]
    z = drop / math.hypot(first[key + "_se"], last[key + "_se"])
    Ts = np.log([r["T"] for r in rows])
    ks = np.log(np.maximum([r[key] for r in rows], 1e-12))
    slope = float(np.polyfit(Ts, ks, 1)[0])
    return {"first": first[key], "last": last[key], "z": float(z), "slope": slope,
            "decreasing": bool(z > critical_z(n_tests))}


# ----------------------------------------------------------------------------- GAP-1

def gap1_points(profile: str) -> list[Point]:
    g = GAP1_GRIDS[check_profile(profile)]
    return [Point(markov_config(T, s), grid_samples(g, T), SEED, "attention")
            for s in g["markov_s"] for T in g["T"]]


def run_gap1(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """GAP-1: ``A 1 = 1`` and ``sigma_1(A)^2 = 1 + b_T/T + O(T^-2) -> 1``."""
    points = gap1_points(profile)
    results = sweep(points, executor=executor)
    spectra = sweep(gap2_points(profile), executor=executor)
    identity = max(float(np.max(np.abs(
        res.per_sample("eig_real")[:, 0] - 1 + 1j * res.per_sample("eig_imag")[:, 0])))
        for res in spectra)
    n_tests = 4 * len(points)  # third, second and first order, and the limit, at every point
    finite, second, first, asym, twins, rows = [], [], [], [], [], []
    for point, res in zip(points, results, strict=True):
        T, s = point.config.T, point.config.markov_s
        s1, s1p = res.per_sample("sigma_1", 0), res.per_sample("sigma_1_perp", 0)
        q2, q3 = res.per_sample("secular_q2", 0), res.per_sample("secular_q3", 0)
        excess = estimate(s1**2 - 1)
        bias = float(np.mean(th.sigma1_squared_third_order_bias_bound(s1, s1p, q2, q3)))
        bias2 = float(np.mean(th.sigma1_squared_bias_bound(s1, s1p, q2)))
        bias1 = float(np.mean(th.sigma1_squared_first_order_bias_bound(s1, s1p)))
        pred = th.sigma1_squared_excess_third(T, s)
        pred2 = th.sigma1_squared_excess(T, s)
        pred1 = th.sigma1_squared_excess_first_order(T, s)
        lim = th.lognormal_radius(s) ** 2 / T
        params = {"T": T, "markov_s": s}
        finite.append(compare_estimate(pred, excess, n_tests, params,
                                       "sigma_1^2 - 1 vs third order", bias=bias))
        twins.append(compare_estimate(MUTATION * pred, excess, n_tests, params,
                                      "sigma_1^2 - 1 vs 1.1 x third order", bias=bias))
        second.append(compare_estimate(pred2, excess, n_tests, params,
                                       "sigma_1^2 - 1 vs second order", bias=bias2,
                                       role="reference"))
        first.append(compare_estimate(pred1, excess, n_tests, params, "sigma_1^2 - 1 vs b_T/T",
                                      bias=bias1, role="reference"))
        asym.append(compare_estimate(lim, excess, n_tests, params, "sigma_1^2 - 1 vs r^2/T",
                                     bias=bias1, role="reference"))
        rows.append({"T": T, "markov_s": s, "excess": excess.mean, "excess_se": excess.se,
                     "finite": pred, "second_order": pred2, "first_order": pred1,
                     "asymptotic": lim, "bias": bias, "bias_second_order": bias2,
                     "bias_first_order": bias1, "sigma_1": float(np.mean(s1)),
                     "samples": point.samples, "seed": point.seed})
    v_finite = decide(finite, twins)
    w = _worst(finite)
    wa = max(asym, key=lambda c: abs(c.estimate / c.prediction - 1))
    w1 = _worst(first)
    deciding = (f"max |lambda_1 - 1| = {identity:.1e}; sigma_1^2 - 1 vs third order: max |z| = "
                f"{abs(w.z):.1f} (critical {w.z_crit:.1f}, bias budget {w.bias:.2g}); "
                f"vs b_T/T: max |z| = {abs(w1.z):.1f} (bias budget {w1.bias:.2g}); "
                f"vs r^2/T off by {100 * (wa.estimate / wa.prediction - 1):+.1f}% at "
                f"T={wa.params['T']}, s={wa.params['markov_s']:.2f}")
    references = second + first + asym
    if identity > IDENTITY_TOL:
        verdict, notes = "refuted", f"A 1 = 1 fails beyond rounding: {identity:.2e}."
    elif v_finite != "confirmed":
        verdict = "open" if v_finite == "open" else "refuted"
        notes = f"The third-order finite-T excess came out {v_finite}."
    elif all(c.passed for c in references):
        verdict = "confirmed"
        notes = ("1 is an eigenvalue to rounding, and sigma_1(A)^2 - 1 equals its third-order "
                 "theory within the stated O(T^-4) budget, the second order within its O(T^-3) "
                 "one, and b_T/T (hence r^2/T -> 0) within the O(T^-2) one, at every point.")
    else:
        verdict = "qualified"
        failing = [c for c in references if not c.passed]
        notes = ("1 is an eigenvalue to rounding and sigma_1(A)^2 - 1 equals its third-order "
                 "theory at every point, so sigma_1 -> 1; rejected within their budgets: "
                 + "; ".join(sorted({f"{c.label} at (T, s) = ({c.params['T']}, "
                                     f"{c.params['markov_s']:.2f})" for c in failing})) + ".")
    return ClaimResult("GAP-1", GAP1.statement, verdict, deciding, finite + references, twins,
                       profile, notes, {"rows": rows, "identity": identity})


# ----------------------------------------------------------------------------- GAP-2

def gap2_points(profile: str) -> list[Point]:
    g = GAP2_GRIDS[check_profile(profile)]
    return [Point(markov_config(T, s), grid_samples(g, T), SEED, "spectra")
            for s in g["markov_s"] for T in g["T"]]


def bulk_values(res: Result) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalue moduli and singular values of ``sqrt(T) A`` without the outlier
    (``samples x (T - 1)`` each)."""
    T = res.config.T
    eig = np.hypot(res.per_sample("eig_real"), res.per_sample("eig_imag"))[:, 1:]
    return math.sqrt(T) * eig, math.sqrt(T) * res.per_sample("singular")[:, 1:]


def _markov_laws(radius: float) -> dict[str, tuple]:
    return {"eig": (lambda v: th.circular_radial_cdf(v, radius),
                    lambda p: th.circular_radial_quantile(p, radius)),
            "singular": (lambda v: th.quarter_circle_cdf(v, radius),
                         lambda p: th.quarter_circle_quantile(p, radius))}


def _as_comparison(test, params: dict[str, Any], label: str, role: str) -> Comparison:
    """``test.as_comparison`` (``sim.esd.EsdTest``) with ``role``."""
    return dataclasses.replace(test.as_comparison(params, label), role=role)


LAW_NAMES = {"eig": "eigenvalue moduli vs disc", "singular": "singular values vs quarter circle"}


def run_gap2(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """GAP-2: the bulk of ``sqrt(T) A`` (disc, quarter circle of radius ``r``)."""
    points = gap2_points(profile)
    results = sweep(points, executor=executor)
    n_tests = 5 * len(points)
    comps: dict[str, list[Comparison]] = {}
    twins: list[Comparison] = []
    rows, esd = [], []
    for point, res in zip(points, results, strict=True):
        T, s = point.config.T, point.config.markov_s
        params = {"T": T, "markov_s": s}
        values = dict(zip(("eig", "singular"), bulk_values(res), strict=True))
        r, rT = th.lognormal_radius(s), th.finite_radius(T, s)
        row = {"T": T, "markov_s": s, "r": r, "r_T": rT, "samples": point.samples,
               "seed": point.seed, "rem_scale": s / math.sqrt(2 * math.log(T))}
        for which in ("eig", "singular"):
            for tag, radius in (("r", r), ("r_T", rT)):
                test = esd_test(values[which], *_markov_laws(radius)[which], n_tests=n_tests)
                label = f"{LAW_NAMES[which]} ({tag})"
                comps.setdefault(label, []).append(
                    _as_comparison(test, params, label, "exact" if tag == "r_T" else "reference"))
                row[f"ks_{which}_{tag}"] = test.ks
                row[f"ks_{which}_{tag}_se"] = float(test.se[test.worst])
                row[f"pass_{which}_{tag}"] = test.passed
                if tag == "r_T":
                    esd.append({"T": T, "markov_s": s, "which": which,
                                "points": test.points.tolist(), "mean": test.mean.tolist(),
                                "se": test.se.tolist(), "law": test.law.tolist()})
            twin = esd_test(values[which],
                            *scaled(*_markov_laws(rT)[which], MUTATION), n_tests=n_tests)
            twins.append(twin.as_comparison(params, f"{LAW_NAMES[which]} (1.1 r_T)"))
        edge = estimate(values["singular"][:, 0])
        comps.setdefault("sqrt(T) sigma_2 vs 2 r_T", []).append(compare(
            2 * rT, edge.mean, edge.se, n_tests=n_tests, params=params, dof=point.samples - 1,
            label="sqrt(T) sigma_2 vs 2 r_T", role="reference"))
        sv = res.per_sample("singular")
        sr = estimate(np.sum(sv**2, axis=1) / sv[:, 0] ** 2)
        row.update({"edge": edge.mean, "edge_se": edge.se, "stable_rank": sr.mean,
                    "stable_rank_se": sr.se, "stable_rank_limit": math.exp(s * s)})
        rows.append(row)

    edge_fits = {}
    for s in sorted({r["markov_s"] for r in rows}):
        sub = sorted((r for r in rows if r["markov_s"] == s), key=lambda r: r["T"])
        gaps = np.array([r["edge"] - 2 * r["r_T"] for r in sub])
        if len(sub) >= 3 and (np.all(gaps > 0) or np.all(gaps < 0)):
            fit = fit_power_law([r["T"] for r in sub], np.abs(gaps),
                                [r["edge_se"] for r in sub], level=EDGE_FIT_LEVEL)
            edge_fits[f"{s:.3f}"] = {"kappa": -fit.slope, "interval": [-fit.interval[1],
                                                                       -fit.interval[0]],
                                     "sign": int(np.sign(gaps[0])),
                                     "tracy_widom_2_3": fit.contains(-2 / 3),
                                     "one_half": fit.contains(-0.5), "one": fit.contains(-1.0)}
        else:
            edge_fits[f"{s:.3f}"] = None
    svals = sorted({r["markov_s"] for r in rows})
    trends = {f"{s:.3f}": {k: _ks_trend([r for r in rows if r["markov_s"] == s], k,
                                        2 * len(svals))
                           for k in ("ks_eig_r_T", "ks_singular_r_T")} for s in svals}

    law_comps = [c for label, cs in comps.items() if label.endswith("(r_T)") for c in cs]
    limit_comps = [c for label, cs in comps.items() if label.endswith("(r)") for c in cs]
    all_comps = [c for cs in comps.values() for c in cs]
    largest = max(r["T"] for r in rows)
    at_largest = [r for r in rows if r["T"] == largest]
    ks_text = ", ".join(f"s={r['markov_s']:.2f}: {r['ks_singular_r_T']:.3f}" for r in at_largest)
    deciding = (f"KS distance of the singular-value ESD to the quarter circle (r_T) at "
                f"T={largest}: {ks_text}; twins rejected: "
                f"{sum(not t.passed for t in twins)}/{len(twins)}")
    if decide(law_comps + limit_comps, twins) == "confirmed":
        verdict, notes = "confirmed", "Every ESD matches its law within the calibrated test."
    else:
        largest_pass = {f"{r['markov_s']:.3f}": r for r in rows if r["T"] == max(
            q["T"] for q in rows)}
        converging = [s for s, t in trends.items() if all(
            largest_pass[s][f"pass_{k[3:-4]}_r_T"] or (v is not None and v["decreasing"])
            for k, v in t.items())]
        failing = sorted({(c.params["T"], round(c.params["markov_s"], 3))
                          for c in law_comps if not c.passed})
        if converging:
            verdict = "qualified"
            notes = ("The laws are limits: the calibrated ESD tests resolve the finite-T "
                     f"deviations and reject them at (T, s) = {failing}. For s in "
                     f"{converging} each ESD either passes at the largest T or its KS distance "
                     "to the r_T law "
                     "falls significantly from the smallest to the largest T; there the disc "
                     "and quarter circle hold asymptotically. "
                     "Where it does not decrease over the grid (s beyond sqrt(ln T / 2), "
                     "where the squared entries that set the entry variance condense onto a "
                     "few terms: half the REM critical scale of a row) the prediction is not "
                     "supported at these T.")
        else:
            verdict = "refuted" if any(not c.passed for c in law_comps) else "open"
            notes = ("No parameter value shows a KS distance decreasing with T over the grid, "
                     f"and the laws are rejected at {failing}.")
    data = {"rows": rows, "esd": esd, "edge_fits": edge_fits, "ks_trends": trends,
            "map": [{k: r[k] for k in ("T", "markov_s", "rem_scale", "ks_eig_r",
                                       "ks_eig_r_T", "ks_singular_r", "ks_singular_r_T",
                                       "pass_singular_r_T", "pass_eig_r_T", "stable_rank",
                                       "stable_rank_limit")} for r in rows]}
    return ClaimResult("GAP-2", GAP2.statement, verdict, deciding, all_comps, twins, profile,
                       notes, data)


# ----------------------------------------------------------------------------- GAP-4

def gap4_points(profile: str) -> list[Point]:
    g = GAP4_GRIDS[check_profile(profile)]
    return [Point(key_query_config(T, b), grid_samples(g, T), SEED, "spectra")
            for b in g["beta"] for T in g["T"]]


def _product_law(c: float) -> tuple:
    return (lambda t: th.key_query_singular_cdf(t, c),
            lambda p: th.key_query_singular_quantile(p, c))


def run_gap4(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """GAP-4: the bulk of key-query attention is the free product law at small ``beta`` and
    not the i.i.d.-lognormal one."""
    points = gap4_points(profile)
    results = sweep(points, executor=executor)
    n_tests = 4 * len(points)
    comps: dict[str, list[Comparison]] = {}
    twins: list[Comparison] = []
    rows, esd = [], []
    for point, res in zip(points, results, strict=True):
        T, beta = point.config.T, point.config.beta
        c = point.config.d_k / T
        params = {"T": T, "beta": beta}
        sv = math.sqrt(T) * res.per_sample("singular")[:, 1:]
        v = th.key_query_score_std(T, beta)
        vT = math.sqrt(th.key_query_frobenius_perp(T, point.config.d_k, beta))
        r_iid = math.sqrt(math.expm1(v * v))
        row = {"T": T, "beta": beta, "v": v, "v_T": vT, "r_iid": r_iid,
               "samples": point.samples, "seed": point.seed, "rem_scale": beta / REM_BETA_C}
        for tag, scale in (("v", v), ("v_T", vT)):
            label = f"singular values / {tag} vs MP x MP"
            test = esd_test(sv / scale, *_product_law(c), n_tests=n_tests)
            comps.setdefault(label, []).append(
                _as_comparison(test, params, label, "exact" if tag == "v_T" else "reference"))
            row[f"ks_{tag}"], row[f"pass_{tag}"] = test.ks, test.passed
            row[f"ks_{tag}_se"] = float(test.se[test.worst])
            if tag == "v_T":
                esd.append({"T": T, "beta": beta, "points": test.points.tolist(),
                            "mean": test.mean.tolist(), "se": test.se.tolist(),
                            "law": test.law.tolist()})
        twin = esd_test(sv / vT, *scaled(*_product_law(c), MUTATION), n_tests=n_tests)
        twins.append(twin.as_comparison(params, "singular values / v_T vs 1.1 MP x MP"))
        label = "singular values vs i.i.d. lognormal quarter circle"
        iid = esd_test(sv, *_markov_laws(r_iid)["singular"], n_tests=n_tests)
        comps.setdefault(label, []).append(_as_comparison(iid, params, label, "reference"))
        edge = estimate(sv[:, 0])
        row.update({"ks_iid": iid.ks, "pass_iid": iid.passed, "edge": edge.mean,
                    "edge_se": edge.se, "edge_product": vT * th._generated().key_query_edge(c),
                    "edge_iid": 2 * r_iid})
        rows.append(row)

    betas = sorted({r["beta"] for r in rows})
    trends = {f"{b:g}": _ks_trend([r for r in rows if r["beta"] == b], "ks_v_T", len(betas))
              for b in betas}
    product = comps["singular values / v_T vs MP x MP"]
    small = [c for c in product if c.params["beta"] == betas[0]]
    holds = [b for b in betas if all(c.passed for c in product if c.params["beta"] == b)]
    converging = [b for b, t in trends.items() if t is not None and t["decreasing"]]
    largest = max(r["T"] for r in rows)
    lr = {r["beta"]: r for r in rows if r["T"] == largest}
    deciding = (f"T={largest}: KS to MP x MP (v_T) " + ", ".join(
        f"beta={b:g}: {lr[b]['ks_v_T']:.3f}" for b in betas) + "; KS to the i.i.d. law " +
        ", ".join(f"{lr[b]['ks_iid']:.2f}" for b in betas))
    if all(c.passed for c in small) and all(c.resolved for c in small) \
            and all(not t.passed for t in twins if t.params["beta"] == betas[0]):
        verdict = "qualified" if len(holds) < len(betas) else "confirmed"
        notes = (f"The product law holds at beta in {holds} and is rejected above; ")
    elif f"{betas[0]:g}" in converging:
        verdict = "qualified"
        notes = ("At the smallest beta the calibrated test still resolves finite-T deviations "
                 "from the product law, but the KS distance decreases as a power of T (beta "
                 f"values converging: {converging}), so the law holds asymptotically at small "
                 "beta and not beyond; ")
    else:
        verdict = "open"
        notes = "The product law is not supported even at the smallest beta over this grid; "
    iid_rejected = all(not c.passed for c in comps[
        "singular values vs i.i.d. lognormal quarter circle"])
    notes += (f"the i.i.d.-lognormal law (r^2 = e^(v^2) - 1) is rejected at "
              f"{'every point' if iid_rejected else 'some points'}: edge ratio measured/i.i.d. at "
              f"T={largest}: " + ", ".join(f"beta={b:g}: {lr[b]['edge'] / lr[b]['edge_iid']:.2f}"
                                           for b in betas) + ".")
    data = {"rows": rows, "esd": esd, "ks_trends": trends, "c": 1.0,
            "map": [{k: r[k] for k in ("T", "beta", "rem_scale", "ks_v", "ks_v_T", "ks_iid",
                                       "pass_v_T", "pass_iid")} for r in rows]}
    all_comps = [c for cs in comps.values() for c in cs]
    return ClaimResult("GAP-4", GAP4.statement, verdict, deciding, all_comps, twins, profile,
                       notes, data)


GAP1 = register(Claim(
    "GAP-1", "mind-the-gap",
    "Outlier: A 1 = 1, so 1 is an eigenvalue of random-Markov attention, and sigma_1(A) -> 1 as "
    "T grows (sigma_1^2 = 1 + b_T/T + O(T^-2)).",
    "mind-the-gap", "gap-1", run_gap1))
GAP2 = register(Claim(
    "GAP-2", "mind-the-gap",
    "Bulk: apart from the outlier, the eigenvalues of sqrt(T) A fill the disc of radius "
    "r = sigma/m and its singular values follow the quarter circle on [0, 2r].",
    "mind-the-gap", "gap-2", run_gap2))
GAP4 = register(Claim(
    "GAP-4", "mind-the-gap",
    "Key-query attention: the outlier and the T^(-1/2) bulk scaling hold, but the bulk is not "
    "the i.i.d.-lognormal law; at small logit variance it is the free product of two "
    "Marchenko-Pastur laws (Fuss-Catalan at d_k = T).",
    "mind-the-gap", "gap-4", run_gap4))

