"""Rank and symmetry claims RS-1, RS-2, RS-3 (science/rank-symmetry.md; theory in
``theory.rank``, measurements in ``sim.rank``).

- RS-1: LayerNorm and (affine) rank. Exact identities checked sample by sample; the frequencies
  with which LayerNorm lowers rank or affine rank on structured ensembles (repeated tokens,
  collinear tokens) against their exact probabilities (binomial standard errors); generic
  ensembles (``T < d``, ``T = d``, ``T > d``) against the generic counts.
- RS-2: residuals and rank. Exact rank (certified by a high-precision forward pass), numerical
  rank and stable rank over depth, with and without the residual and LayerNorm; the fitted
  per-layer contraction of ``consensus_distance`` against its derived rate. A sample's rate is
  the mean log-increment over ``WINDOW`` layers from the first layer where
  ``mu < START`` (a stopping time, so the increments after it are unbiased); the mean over
  samples has a Student-t SE and the rate ``exp(mean)`` its delta-method SE.
- RS-3: the MLP leaves the Krylov span of the input embeddings. Energy outside the span after
  one ReLU MLP block against its exact expectation (per sample, given the block's input: the
  ratio measured/predicted has mean 1; ReLU is homogeneous, so the ratio depends on
  ``sigma_b2/sigma_w2`` only and the grid varies that); attention-only stacks against a stated
  rounding bound.

Every passing comparison has a mutation twin (prediction x 1.1) that must fail.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from sim import rank as measure
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
from sim.sweep import Point, sweep
from theory import rank as theory

SEED = 17
#: RS-2 fit: the window starts where consensus_distance first falls below START
START, WINDOW = 1e-3, 40
#: RS-2 numerical-rank tolerances (relative to sigma_1) reported beside exact rank
TOLERANCES = (1e-5, 1e-10)
#: RS-3 rounding bound on the principal-angle sine of attention-only stacks: 10 L d eps
ROUNDING_FACTOR = 10.0
EPS64 = float(np.finfo(np.float64).eps)

GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"rs1_n": 30000, "rs1_generic_n": 2000, "rs1_exact_n": 100,
              "rs2_samples": 100, "rs2_rate": (("post", 16), ("post", 64), ("l2", 16)),
              "rs2_mp_samples": 1, "rs2_mp_depth": 160,
              "rs3_samples": 600, "rs3_points": ((2.0, 0.0), (2.0, 0.5)), "rs3_trace": 10},
    "book": {"rs1_n": 60000, "rs1_generic_n": 4000, "rs1_exact_n": 300,
             "rs2_samples": 150, "rs2_rate": (("post", 16), ("post", 32), ("post", 64),
                                              ("l2", 16)),
             "rs2_mp_samples": 2, "rs2_mp_depth": 160,
             "rs3_samples": 1000, "rs3_points": ((2.0, 0.0), (2.0, 0.5), (2.0, 2.0)),
             "rs3_trace": 20},
    "full": {"rs1_n": 800000, "rs1_generic_n": 20000, "rs1_exact_n": 2000,
             "rs2_samples": 2000, "rs2_rate": (("post", 16), ("post", 32), ("post", 64),
                                               ("l2", 16), ("l2", 32), ("l2", 64)),
             "rs2_mp_samples": 20, "rs2_mp_depth": 200,
             "rs3_samples": 25000, "rs3_points": ((2.0, 0.0), (2.0, 0.5), (2.0, 2.0),
                                                  (2.0, 8.0)), "rs3_trace": 200},
}


# ----------------------------------------------------------------------------- RS-1

#: structured ensembles: (name, T, k, d)
REPEATED = ("repeated", 8, 8, 5)
COLLINEAR = ("collinear", 3, 3, 5)
#: generic Gaussian ensembles (T, d): T < d, T = d, T = d + 1, T > d + 1
GENERIC = ((4, 6), (6, 6), (7, 6), (9, 6))
CONSTRUCTED = ("{c, 2c, z}", "constant row", "T = d generic", "T < d generic")


def constructed_examples() -> list[dict[str, Any]]:
    """Small counterexamples with integer entries, ranks in exact arithmetic
    (``sim.rank.exact_ln_identity``) and affine ranks by the gap rule: ``{c, 2c, z}``, a
    constant (zero-variance) token, ``T = d`` and ``T < d`` generic integer tokens."""
    c, z = np.array([1.0, 2.0, 4.0, 3.0]), np.array([2.0, -1.0, 0.0, 5.0])
    mats = {"{c, 2c, z}": np.array([c, 2 * c, z]),
            "constant row": np.array([c, z, [3.0, 3.0, 3.0, 3.0]]),
            "T = d generic": np.array([c, z, [1.0, 0.0, 2.0, -7.0], [0.0, 3.0, 1.0, 1.0]]),
            "T < d generic": np.array([c, z, [1.0, 0.0, 2.0, -7.0]])}
    rows = []
    for name, x in mats.items():
        e = measure.exact_ln_identity(x)
        r = measure.ranks(x[None])
        rows.append({"case": name, "T": x.shape[0], "d": x.shape[1], **e,
                     "one_in_rowspace": e["rank_ones"] == e["rank"],
                     "aff": int(r["aff"][0]), "aff_ln": int(r["aff_ln"][0])})
    return rows


def _drops(r: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"rank": (r["rank"] > r["rank_ln"]).astype(float),
            "aff": (r["aff"] > r["aff_ln"]).astype(float)}


def run_rs1(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """RS-1: LayerNorm lowers matrix rank by ``[1 in rowspace X]`` and affine rank on
    degenerate or wide inputs; frequencies on structured ensembles."""
    g = GRIDS[check_profile(profile)]
    n = g["rs1_n"]
    identity_fail = 0
    undecided = 0
    exact_disagree = 0
    exact_checked = 0
    ens_rows, comparisons = [], []
    n_tests = 3

    def check(x: np.ndarray, r: dict[str, np.ndarray]) -> None:
        nonlocal identity_fail, undecided, exact_disagree, exact_checked
        one_in = r["rank_ones"] == r["rank"]
        identity_fail += int((r["rank_ln"] != r["rank"] - one_in).sum())
        undecided += int((r["undecided"] > 0).sum())
        for i in range(min(g["rs1_exact_n"], x.shape[0])):
            e = measure.exact_ln_identity(x[i])
            exact_checked += 1
            exact_disagree += int(e["rank"] != r["rank"][i] or e["rank_ln"] != r["rank_ln"][i]
                                  or e["rank_ones"] != r["rank_ones"][i])

    for name, T, k, d in (REPEATED, COLLINEAR):
        x = measure.ensemble(name, n, SEED, T, d, k)
        r = measure.ranks(x)
        check(x, r)
        drops = _drops(r)
        params = {"ensemble": name, "T": T, "k": k, "d": d}
        for which in ("rank", "aff"):
            if name == "repeated":
                pred = float(theory.repeated_drop_probability(T, k, d, which))
            else:
                pred = float(theory.collinear_drop_probability(T, k, d, which))
            est = estimate(drops[which])
            ens_rows.append({**params, "which": which, "predicted": pred,
                             "frequency": est.mean, "se": est.se, "n": n})
            if 0.0 < pred < 1.0:
                comparisons.append(compare_estimate(
                    pred, est, n_tests, {**params, "rank": which},
                    "frequency of a LayerNorm rank drop", dof=False))
            else:  # a certain or impossible event: the count must match exactly
                identity_fail += int(np.sum(drops[which] != pred))
    generic_rows, generic_fail = [], 0
    for T, d in GENERIC:
        x = measure.ensemble("gaussian", g["rs1_generic_n"], SEED, T, d)
        r = measure.ranks(x)
        check(x, r)
        expect = theory.generic_ranks(T, d)
        mism = {key: int((r[key] != val).sum()) for key, val in expect.items()}
        generic_fail += sum(mism.values())
        generic_rows.append({"T": T, "d": d, **{f"pred_{k}": v for k, v in expect.items()},
                             **{f"mismatch_{k}": v for k, v in mism.items()},
                             "n": g["rs1_generic_n"]})
    mutations = mutation_twins(comparisons, n_tests)
    v = decide(comparisons, mutations)
    examples = constructed_examples()
    deciding = (f"rank LN(X) = rank X - [1 in rowspace X] in every one of "
                f"{2 * n + len(GENERIC) * g['rs1_generic_n']} samples ({identity_fail} "
                f"exceptions; {exact_checked} also in exact arithmetic, {exact_disagree} "
                "disagreements); drop frequencies "
                + ", ".join(f"{c.params['ensemble']} {c.params['rank']}: {c.estimate:.4f} +- "
                            f"{c.se:.1g} (exact {c.prediction:.4f})" for c in comparisons)
                + f"; generic counts: {generic_fail} mismatches")
    if identity_fail or generic_fail or exact_disagree or v == "refuted":
        verdict = "open"
        notes = ("The derived rank identities failed here, so they cannot decide the claim: "
                 f"{identity_fail} identity exceptions, {generic_fail} generic mismatches, "
                 f"{exact_disagree} float/exact disagreements; " + rejected_summary(comparisons))
    elif v == "open":
        verdict = "open"
        notes = "The frequency comparisons cannot resolve a 5% discrepancy at this profile."
    else:
        verdict = "qualified"
        notes = (
            "LayerNorm is LN(X) = D^+ X P. It preserves matrix rank except for one direction: "
            "rank LN(X) = rank X - [1 in rowspace X], zero-variance (constant) tokens included "
            "(they map to 0). For generic tokens this drops the rank exactly when T >= d. "
            "Affine rank is not neutral: generic tokens lose one affine dimension when "
            "T >= d + 1 (LayerNorm images lie in the (d-1)-dimensional hyperplane 1^perp), "
            "and tokens that are positive multiples of each other share one image ({c, 2c, z}: "
            "affine rank 2 -> 1). On the structured ensembles these events happen at exactly "
            "the predicted rates. 'Exactly affine-rank-neutral' therefore needs a genericity "
            "condition the abstract does not state: T <= d and no two tokens positively "
            "proportional (T <= d - 1 and 1 not in the row space for matrix rank). "
            f"Rank decisions: float64 gap rule, {undecided} matrices needed "
            f"{measure.MP_DPS}-digit arithmetic.")
    return ClaimResult("RS-1", RS1.statement, verdict, deciding, comparisons, mutations, profile,
                       notes, {"ensembles": ens_rows, "generic": generic_rows,
                               "examples": examples, "identity_fail": identity_fail,
                               "exact_checked": exact_checked, "undecided": undecided,
                               "samples": n, "seed": SEED})


RS1 = register(Claim(
    "RS-1", "rank-symmetry",
    "LayerNorm is exactly affine-rank-neutral, and preserves matrix rank when the bias is "
    "zero; it neither causes nor cures collapse.",
    "rank-symmetry", "rs-1", run_rs1))


# ----------------------------------------------------------------------------- RS-2

T_RS2 = 8
SIGMA_V2 = 1.0
#: depth-profile cases (norm, alpha_attn) besides the rate runs, at d = 16
PROFILE_CASES = (("post", 0.0), ("none", 1.0), ("none", 0.0))
DEPTH_RS2 = 80
#: digits of the no-residual certificate (its singular values fall super-exponentially)
NO_RESIDUAL_DPS = 300
#: a pass whose smallest singular value falls below its cut is redone with twice the digits,
#: up to this many (a singular matrix stays below the cut at any precision: its computed
#: sigma_min is about 10^-digits sigma_1; the cut must stay a normal float64)
MAX_DPS = 600


def rs2_config(norm: str, d: int, alpha: float = 1.0, depth: int = DEPTH_RS2,
               T: int = T_RS2) -> Config:
    """One-head softmax attention-only stack on isometric input."""
    return Config(T=T, d=d, depth=depth, heads=1, mlp=False, norm=norm, alpha_attn=alpha,
                  sigma_v2=SIGMA_V2, attention="softmax", input="isometric")


def fitted_log_rate(mu: np.ndarray, start: float = START, window: int = WINDOW
                    ) -> np.ndarray:
    """Per-sample mean log-increment of ``mu`` (``samples x layers``) over ``window`` layers
    from the first layer where ``mu < start``."""
    out = np.empty(mu.shape[0])
    for i, row in enumerate(mu):
        a = measure.first_below(row, start)
        if a < 0 or a + window >= row.size:
            raise ValueError(f"sample {i}: mu does not fall below {start} at least {window} "
                             f"layers before the last layer {row.size - 1}")
        out[i] = (math.log(row[a + window]) - math.log(row[a])) / window
    return out


def _depth_rows(res: Result, case: str) -> list[dict[str, Any]]:
    rows = []
    for layer in range(res.config.depth + 1):
        row = {"case": case, "layer": layer, "samples": res.samples, "seed": res.seed,
               "d": res.config.d}
        for o in ("consensus_distance", "numerical_rank", "stable_rank"):
            e = res.estimate(o, layer)
            row[o], row[f"{o}_se"] = e.mean, e.se
        rows.append(row)
    return rows


def _case(norm: str, alpha: float, d: int) -> str:
    label = {"post": "LayerNorm", "l2": "L2", "none": "no norm"}[norm]
    return f"{label}, {'residual' if alpha else 'no residual'}, d={d}"


def certified_pass(run: Callable[[int], dict[str, Any]], T: int,
                   dps: int) -> tuple[dict[str, Any], int, list[int]]:
    """``run(digits)``, a high-precision pass whose ``"mp"`` rows are singular values over
    ``sigma_1`` (``measure.mp_stack``), at ``dps`` digits, and again with twice the digits
    while some row has fewer than ``T`` above the cut ``10^(-digits/2)`` and ``2 digits <=
    MAX_DPS``: ``(last pass, its digits, exact rank per row)``."""
    digits = dps
    while True:
        r = run(digits)
        cut = 10.0 ** (-digits / 2)
        exact = [sum(s > cut for s in row) for row in r["mp"]]
        if min(exact) == T or 2 * digits > MAX_DPS:
            return r, digits, exact
        digits *= 2


def _certify(profile: dict, mp_depth: int) -> list[dict[str, Any]]:
    """High-precision forward passes (``T = 4``, ``d = 8``): per sample and layer, the smallest
    singular value over the largest in exact-rank precision and in float64. Exact rank counts
    the singular values above ``10^(-dps/2) sigma_1`` in ``dps``-digit arithmetic; a pass with
    one below is redone with ``2 dps`` digits, up to ``MAX_DPS`` (``dps`` records the last)."""
    out = []
    T = 4
    for alpha, depth, dps in ((1.0, mp_depth, measure.MP_DPS), (0.0, 5, NO_RESIDUAL_DPS)):
        cfg = rs2_config("post", 8, alpha, depth, T=T)
        for i in range(profile["rs2_mp_samples"]):
            r, digits, exact = certified_pass(
                lambda digits, cfg=cfg, i=i: measure.mp_stack(cfg, i, SEED, digits), T, dps)
            out.append({"alpha": alpha, "sample": i, "dps": digits,
                        "min_ratio_mp": [row[-1] for row in r["mp"]],
                        "min_ratio_float": [row[-1] for row in r["float"]],
                        "exact_rank": exact,
                        **{f"numerical_rank_{tol:g}": [sum(s > tol for s in row)
                                                       for row in r["float"]]
                           for tol in TOLERANCES},
                        "singular_distance": min(r["singular_distance"]),
                        "layer1_gap": r["layer1_gap"]})
    return out


def _digits(cert: list[dict[str, Any]], alpha: float) -> str:
    """The digits the passes at ``alpha`` used: ``"60"`` or a range ``"60-120"``."""
    used = sorted({c["dps"] for c in cert if c["alpha"] == alpha})
    return str(used[0]) if len(used) == 1 else f"{used[0]}-{used[-1]}"


def run_rs2(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """RS-2: exact, numerical and stable rank over depth; fitted consensus contraction."""
    g = GRIDS[check_profile(profile)]
    rate_points = [Point(rs2_config(norm, d), g["rs2_samples"], SEED)
                   for norm, d in g["rs2_rate"]]
    other = [Point(rs2_config(norm, 16, alpha), max(g["rs2_samples"] // 2, 20), SEED)
             for norm, alpha in PROFILE_CASES]
    results = sweep(rate_points + other, executor=executor)
    n_tests = len(rate_points)
    comparisons, rows, fits = [], [], []
    for p, res in zip(rate_points + other, results, strict=True):
        c = p.config
        rows += _depth_rows(res, _case(c.norm, c.alpha_attn, c.d))
        if p in rate_points:
            slopes = fitted_log_rate(res.per_sample("consensus_distance"))
            s = estimate(slopes)
            rate = math.exp(s.mean)
            est = Estimate(rate, rate * s.se, s.n)
            pred = theory.consensus_rate(c.sigma_v2, c.d, c.norm)
            bias = theory.consensus_rate_bias(c.sigma_v2, c.d, c.norm)
            comparisons.append(compare_estimate(
                pred, est, n_tests, {"norm": c.norm, "d": c.d, "sigma_v2": c.sigma_v2},
                "per-layer contraction of consensus_distance", bias=bias))
            fits.append({"norm": c.norm, "d": c.d, "rate": rate, "se": est.se,
                         "prediction": pred, "leading": (1 + c.sigma_v2) ** -0.5,
                         "per_sample": np.exp(slopes).tolist()})
    mutations = mutation_twins(comparisons, n_tests)
    v = decide(comparisons, mutations)
    cert = _certify(g, g["rs2_mp_depth"])
    T_cert = 4
    certified = all(min(c["exact_rank"]) == T_cert for c in cert)

    def collapse_layer(case: str) -> int:
        sub = [r for r in rows if r["case"] == case]
        return next((r["layer"] for r in sub if r["numerical_rank"] <= 1.0), -1)

    res_case, nores_case = _case("post", 1.0, 16), _case("post", 0.0, 16)
    L_res, L_nores = collapse_layer(res_case), collapse_layer(nores_case)
    res_cert = [c for c in cert if c["alpha"] == 1.0]
    float_collapse = [next((i for i, r in enumerate(c["numerical_rank_1e-05"]) if r <= 1), -1)
                      for c in res_cert]
    last = res_cert[0]
    deciding = (f"exact rank 4 of 4 certified at every layer in {len(cert)} high-precision "
                f"passes ({_digits(cert, 1.0)} digits with residual, {_digits(cert, 0.0)} "
                "without; "
                f"smallest sigma_4/sigma_1 {min(min(c['min_ratio_mp']) for c in cert):.1e}; "
                f"with residual at layer {len(last['min_ratio_mp']) - 1}: "
                f"{last['min_ratio_mp'][-1]:.1e}, float64 {last['min_ratio_float'][-1]:.1e}) "
                "while numerical rank at 1e-5 "
                f"reaches 1 (LayerNorm, T={T_RS2}, d=16: layer {L_res} with residual, "
                f"{L_nores} without); consensus contraction "
                + ", ".join(f"{c.params['norm']} d={c.params['d']}: {c.estimate:.4f} +- "
                            f"{c.se:.1g} (theory {c.prediction:.4f})" for c in comparisons))
    if v != "confirmed" or not certified:
        verdict = "open"
        notes = ("The derived contraction came out " + v + " (" + rejected_summary(comparisons)
                 + ")" + ("" if certified else "; exact rank was not certified in every pass")
                 + ", so the rank notions cannot be separated quantitatively here.")
    else:
        verdict = "qualified"
        notes = (
            "For a fixed attention matrix A a residual layer is vec X' = (I + W^T (x) A) vec X, "
            "singular only on the measure-zero set lambda(A) mu(W) = -1 (closest approach in the "
            f"certified passes: {min(c['singular_distance'] for c in res_cert):.2g}); without "
            "the residual A X W is singular only if A or W is, also measure zero. So exact rank "
            "is preserved almost surely with or without the residual: the high-precision passes "
            "certify full rank at every layer in both cases. Numerically the tokens still "
            "collapse. Near consensus softmax attention is uniform to first order, the residual "
            "passes the deviations unchanged and the mean grows by |I + W_V|, so "
            "consensus_distance contracts at exp(E log rho) = (1 + sigma_v2)^(-1/2) "
            "exp(O(1/d)) per layer, confirmed with its 1/d correction; numerical rank at a "
            "tolerance tau falls to 1 when mu reaches about tau (float64 runs: layer "
            f"{float_collapse} at 1e-5), and stable rank approaches 1 faster (sr - 1 ~ mu^2). "
            "Without the residual the collapse is super-exponential (numerical rank 1 by layer "
            f"{L_nores}). 'Residuals obstruct rank collapse' holds for exact rank, but "
            "attention stacks preserve exact rank without residuals too. For numerical and "
            "stable rank residuals only slow the collapse from super-exponential to "
            "geometric, at the derived rate; they do not obstruct it.")
    return ClaimResult("RS-2", RS2.statement, verdict, deciding, comparisons, mutations,
                       profile, notes, {"rows": rows, "fits": fits, "certificates": cert,
                                        "start": START, "window": WINDOW,
                                        "tolerances": TOLERANCES})


RS2 = register(Claim(
    "RS-2", "rank-symmetry",
    "Residual connections generically obstruct rank collapse, in a measure-theoretic sense, "
    "with no help from the MLP.",
    "rank-symmetry", "rs-2", run_rs2))


# ----------------------------------------------------------------------------- RS-3

T_RS3, D_RS3, DFF_RS3 = 8, 64, 128
T_TRACE, D_TRACE, DEPTH_TRACE = 4, 64, 3


def rs3_config(sigma_w2: float, sigma_b2: float, mlp: bool = True, depth: int = 1,
               norm: str = "none", T: int = T_RS3, d: int = D_RS3, d_ff: int = DFF_RS3
               ) -> Config:
    return Config(T=T, d=d, d_ff=d_ff, depth=depth, heads=1, mlp=mlp, norm=norm,
                  sigma_w2=sigma_w2, sigma_b2=sigma_b2, alpha_attn=1.0, alpha_mlp=1.0,
                  attention="softmax", input="isometric")


def rounding_bound(depth: int, d: int) -> float:
    """Stated bound on an attention-only stack's principal-angle sine to its Krylov span:
    ``ROUNDING_FACTOR * depth * d * eps``."""
    return ROUNDING_FACTOR * depth * d * EPS64


def run_rs3(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """RS-3: out-of-span energy of one ReLU MLP block against its exact expectation, and
    attention-only stacks against the rounding bound."""
    g = GRIDS[check_profile(profile)]
    n = g["rs3_samples"]
    n_tests = len(g["rs3_points"])
    comparisons, point_rows = [], []
    for sw2, sb2 in g["rs3_points"]:
        cfg = rs3_config(sw2, sb2)
        ratios, fractions = np.empty(n), np.empty(n)
        k_in = set()
        for i in range(n):
            row = measure.krylov_trace(cfg, i, SEED)[1]
            k_in.add(row["k_in"])
            pred = theory.out_of_span_energy(sw2, cfg.d, cfg.d_ff, row["k_in"], sb2,
                                             row["trace_k"])
            ratios[i] = row["energy"] / pred
            fractions[i] = row["fraction"]
        est = estimate(ratios)
        p_dim, s_dim = theory.span_dimensions(max(k_in), cfg.d, cfg.d_ff, sb2 > 0)
        params = {"sigma_w2": sw2, "sigma_b2": sb2, "T": cfg.T, "d": cfg.d, "d_ff": cfg.d_ff,
                  "k_in": max(k_in), "s": s_dim}
        comparisons.append(compare_estimate(1.0, est, n_tests, params,
                                            "out-of-span energy / its exact expectation"))
        point_rows.append({**params, "ratio": est.mean, "ratio_se": est.se,
                           "fraction": float(fractions.mean()), "samples": n, "seed": SEED,
                           "k_in_values": sorted(k_in)})
    mutations = mutation_twins(comparisons, n_tests)
    v = decide(comparisons, mutations)
    traces, worst_sine, bound_fail = [], 0.0, 0
    for norm in ("none", "post"):
        for mlp in (False, True):
            cfg = rs3_config(2.0, 0.0, mlp, DEPTH_TRACE, norm, T_TRACE, D_TRACE, D_TRACE)
            per = [measure.krylov_trace(cfg, i, SEED) for i in range(g["rs3_trace"])]
            for layer in range(DEPTH_TRACE + 1):
                vals = [p[layer] for p in per]
                sines = [r["sine"] for r in vals]
                full = vals[0]["dim"] >= D_TRACE
                if not mlp and layer:
                    worst_sine = max(worst_sine, max(sines))
                    bound_fail += sum(s > rounding_bound(layer, D_TRACE) for s in sines)
                traces.append({"norm": norm, "mlp": mlp, "layer": layer,
                               "dim": float(np.mean([r["dim"] for r in vals])),
                               "fraction": float(np.mean([r["fraction"] for r in vals])),
                               "fraction_max": float(np.max([r["fraction"] for r in vals])),
                               "sine": float(np.mean(sines)), "sine_max": float(max(sines)),
                               "full": bool(full), "samples": len(per), "seed": SEED})
    deciding = ("one ReLU MLP block: out-of-span energy / exact expectation "
                + ", ".join(f"(sigma_w2={c.params['sigma_w2']:g}, sigma_b2="
                            f"{c.params['sigma_b2']:g}): {c.estimate:.4f} +- {c.se:.1g}"
                            for c in comparisons)
                + f"; attention-only stacks: largest principal-angle sine {worst_sine:.1e} "
                f"(rounding bound {rounding_bound(DEPTH_TRACE, D_TRACE):.1e}, {bound_fail} "
                "exceedances)")
    if v != "confirmed" or bound_fail:
        verdict = "open" if v != "refuted" and not bound_fail else "refuted"
        notes = ("The out-of-span prediction or the attention-only bound failed: "
                 + rejected_summary(comparisons) + f"; {bound_fail} rounding-bound exceedances.")
    else:
        fill = math.ceil(math.log2(D_TRACE / T_TRACE))
        dims = [t["dim"] for t in traces if t["mlp"] is False and t["norm"] == "none"]
        verdict = "qualified"
        notes = (
            "An attention-only stack keeps its tokens in the Krylov span of the input "
            "embeddings under its value maps (rows of A X W lie in rowspace(X) W), up to "
            "float64 rounding below the stated bound. One ReLU MLP block leaves the span "
            "(extended by its own linear maps W_1 W_2 and biases) with exactly the predicted "
            "energy sigma_w2 (d - s)(d_ff - p) tr K/(4(d_ff + 2)): ReLU's even part |u|/2 "
            "carries tr K/4 (arc-cosine diagonal K/2 less the linear part K/4) and no linear "
            "map can produce it. The claim needs 'span' read as this Krylov span, not the "
            "span of the embeddings themselves (value maps already rotate it), and it is "
            "non-vacuous only while the span is a proper subspace: with residual connections "
            "its dimension doubles per layer (min(d, T 2^L); measured for "
            f"T={T_TRACE}, d={D_TRACE}: {', '.join(f'{x:g}' for x in dims)}), so it is all "
            f"of R^d from layer {fill} on and attention alone then reaches every direction; "
            "without residuals it stays T-dimensional.")
    return ClaimResult("RS-3", RS3.statement, verdict, deciding, comparisons, mutations,
                       profile, notes, {"points": point_rows, "traces": traces,
                                        "bound": rounding_bound(DEPTH_TRACE, D_TRACE),
                                        "samples": n, "seed": SEED})


RS3 = register(Claim(
    "RS-3", "rank-symmetry",
    "The MLP's irreplaceable role is to create directions outside the linear span of the "
    "original token embeddings, which no attention stack can do.",
    "rank-symmetry", "rs-3", run_rs3))
