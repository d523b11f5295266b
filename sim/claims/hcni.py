"""Rank and symmetry claims RS-4, RS-5, RS-6 (science/rank-symmetry.md; theory in
``theory.hcni``, experiments in ``sim.hcni``).

- RS-4 (head-channel non-identifiability): exact dimension counts by numerical ranks (gauge,
  signal-map kernel with a known ``W_O``, the shared-channel sum that the paper's count
  describes); ``E d sigma_min(W_O)`` against Edelman's limit (a ``d -> inf`` law: role
  ``"reference"``, reported beside the verdict); the exact inversion's squared error over its
  conditional mean (1) under noise; a learned read-out with ``W_O`` unknown.
- RS-5 (PG-OP): the overhead ``H d / d^2`` at BERT-base sizes; the kernel dimension with and
  without gates; the PG-OP inversion error over its conditional mean (the gate factor), and the
  paired log-ratio of recovery errors with and without PG-OP at equal noise.
- RS-6 (one picture): the four collapses with their fixes, each from a small simulation here.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from sim import hcni as S
from sim.claims import (
    Claim,
    ClaimResult,
    decide,
    mutation_twins,
    register,
    rejected_summary,
    with_role,
)
from sim.config import Config
from sim.montecarlo import estimate
from sim.profiles import check_profile
from sim.stats import compare, critical_z
from sim.sweep import Point, map_samples, sweep
from theory import hcni as theory
from theory import predictions

SEED = 7
PAPER = "rank-symmetry"

GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"wo_d": (32,), "wo_samples": 10000, "rec_d": (64,), "rec_samples": 6000},
    "book": {"wo_d": (32, 64), "wo_samples": 12000, "rec_d": (64,), "rec_samples": 8000},
    # full: sized so that every comparison detects 1% (issue 8; per-sample spreads measured on
    # pilots: d sigma_min has a coefficient of variation of about 0.78, the error ratios 0.21-0.25)
    "full": {"wo_d": (32, 64, 128, 256), "wo_samples": 250000, "rec_d": (64, 128, 256),
             "rec_samples": 25000},
}
#: recovery experiments: tokens, heads, noise (fraction of rms(Y)), gate scale
REC_T, REC_HEADS, NOISE, GATE_STD = 32, 4, 0.1, 1.0
#: BERT-base sizes at which the overhead and the paper's count are evaluated
BERT = {"H": 12, "d": 768, "d_k": 64}
#: small sizes for exact rank counts: (n, d, heads)
RANK_SIZES = ((24, 6, 3), (40, 8, 2))


@lru_cache(maxsize=8)
def _recovery(d: int, samples: int, executor: Any = "serial") -> dict[str, np.ndarray]:
    return map_samples(S.recovery_samples, samples, S.head_config(REC_T, d, REC_HEADS),
                       executor=executor, seed=SEED, noise=NOISE, gate_std=GATE_STD)


# ----------------------------------------------------------------------------- counts

def rank_counts() -> list[dict[str, Any]]:
    """Per small size: measured (by ranks) and derived dimensions of the gauge, the signal
    kernel with a known ``W_O``, the shared-channel kernel, and the kernel with PG-OP gates."""
    rows = []
    for n, d, heads in RANK_SIZES:
        dk = d // heads
        c = S.head_config(n, d, heads, input="gaussian")
        p = S.layer_parts(c, int(S.sample_seed(SEED, 0)))
        J = S.parameter_jacobian(p["A"], p["xa"], p["W_V"], p["W_O"])
        g = S.gates(n, d, heads, GATE_STD, SEED)
        shared = S.shared_channel(heads, dk, dk, SEED)
        rows.append({
            "n": n, "d": d, "heads": heads, "d_k": dk,
            "gauge": S.kernel_dimension(J),
            "gauge_theory": int(theory._generated().gauge_dimension(heads, dk)),
            "kernel_known": S.kernel_dimension(S.signal_map(p["W_O"], heads, n)),
            "kernel_known_theory": int(theory._generated().kernel_known(
                n, heads, dk, np.linalg.matrix_rank(p["W_O"]))),
            "kernel_gated": S.kernel_dimension(S.signal_map(p["W_O"], heads, n, g)),
            "kernel_shared": S.kernel_dimension(S.signal_map(shared, heads, n)),
            "kernel_shared_gated": S.kernel_dimension(S.signal_map(shared, heads, n, g)),
            "paper_count": int(theory._generated().paper_count(n, heads, dk))})
    return rows


def _counts_ok(rows: list[dict[str, Any]]) -> bool:
    return all(r["gauge"] == r["gauge_theory"] and r["kernel_known"] == r["kernel_known_theory"]
               and r["kernel_shared"] == r["paper_count"] for r in rows)


# ----------------------------------------------------------------------------- RS-4

def run_rs4(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """RS-4: what is and is not identifiable after the head sum (see the module docstring)."""
    g = GRIDS[check_profile(profile)]
    counts = rank_counts()
    n_tests = len(g["wo_d"]) + len(g["rec_d"])
    mean_t = float(predictions.get("rs4_sigma_min_mean")())
    median_t = float(predictions.get("rs4_sigma_min_median")())
    c_wo, c_noise, wo_rows, rec_rows = [], [], [], []
    for d in g["wo_d"]:
        sv = map_samples(S.wo_singular_values, g["wo_samples"], d, 2, seed=SEED,
                         executor=executor)
        t = d * sv[:, -1]
        e = estimate(t)
        # Edelman's law is a d -> inf law: reported beside the verdict (the full profile
        # resolves its finite-d correction, 0.66110 +- 0.00102 against 0.65568 at d = 32)
        c_wo.append(compare(mean_t, e.mean, e.se, n_tests=n_tests, params={"d": d},
                            label="E d sigma_min(W_O) vs Edelman limit", role="reference"))
        below = estimate((t <= median_t).astype(float))
        kappa = sv[:, 0] / sv[:, -1] / d
        wo_rows.append({"d": d, "t_mean": e.mean, "t_se": e.se, "below_median": below.mean,
                        "below_median_se": below.se, "sigma_max_median": float(np.median(sv[:, 0])),
                        "kappa_over_d_median": float(np.median(kappa)),
                        "t_quantiles": np.quantile(t, np.linspace(0.01, 0.99, 99)).tolist(),
                        "samples": g["wo_samples"], "seed": SEED})
    for d in g["rec_d"]:
        r = _recovery(d, g["rec_samples"], executor)
        e = estimate(r["norm_plain"])
        c_noise.append(compare(1.0, e.mean, e.se, n_tests=n_tests,
                               params={"d": d, "T": REC_T, "heads": REC_HEADS, "noise": NOISE},
                               label="inversion error / eps^2 T ||W_O^-1 P_h||^2"))
        rec_rows.append({"d": d, "amplification_median": float(np.median(r["amplification"])),
                         "amplification_median_over_d":
                             float(np.median(r["amplification"])) / d,
                         "rel_error_median": float(np.median(r["rel_plain"])),
                         "samples": g["rec_samples"], "seed": SEED})
    d0 = g["rec_d"][0]
    readout = S.readout_experiment(S.head_config(REC_T, d0, REC_HEADS), SEED, 8, 16, NOISE)
    comparisons = c_wo + c_noise
    mutations = mutation_twins(comparisons, n_tests)
    exact = with_role(comparisons)
    v = decide(exact, with_role(mutations))
    ok = _counts_ok(counts)
    bert_count = int(theory._generated().paper_count(1, BERT["H"], BERT["d_k"]))
    deciding = (f"ranks: gauge {counts[0]['gauge']} = H d_k^2, kernel with known W_O "
                f"{counts[0]['kernel_known']}, shared-channel kernel {counts[0]['kernel_shared']}"
                f" = n(H-1)d_k at (n, d, H) = {RANK_SIZES[0]}; E d sigma_min(W_O) "
                + ", ".join(f"{c.estimate:.4f} +- {c.se:.1g} (d={c.params['d']})" for c in c_wo)
                + f" vs {mean_t:.4f}; inversion error / prediction "
                + ", ".join(f"{c.estimate:.3f} +- {c.se:.1g} (d={c.params['d']})"
                            for c in c_noise))
    if not ok:
        verdict = "refuted"
        notes = "The measured ranks differ from the derived dimensions: see the count table."
    elif v != "confirmed":
        verdict = "open" if v == "open" else "refuted"
        notes = "The noise comparisons came out " + v + ": " + rejected_summary(exact)
    else:
        amp = rec_rows[0]
        verdict = "qualified"
        notes = (
            "The paper's count n(H-1)d_k (n(H-1)d_k = " f"{bert_count} n at H = {BERT['H']}, "
            f"d_k = {BERT['d_k']}) is the kernel of a head sum in one shared d_k channel; it is "
            "not what a generic W_O loses. With d = H d_k and W_O known and invertible (always, "
            "for a Gaussian W_O) the kernel is 0 and every head is recovered exactly; what "
            "remains unidentifiable is the parameter gauge (W_V^h G, G^-1 W_O^h), H d_k^2 per "
            "layer, which changes no output. Under noise the exact inversion is ill-conditioned: "
            f"d sigma_min(W_O) follows Edelman's law (median {median_t:.3f}), so "
            "E sigma_min^-2 is infinite and the median per-entry noise amplification is "
            f"{amp['amplification_median']:.0f} at d = {amp['d']} ("
            f"{amp['amplification_median_over_d']:.2f} d); the error matches its conditional "
            "prediction eps^2 T ||W_O^-1 P_h||^2. With W_O unknown, a linear read-out fitted on "
            f"{int(readout['rows_train'])} labelled token rows recovers H to "
            f"{readout['learned_clean']:.1g} without noise and to {readout['learned']:.3f} "
            f"(relative squared error) at noise {NOISE:g} rms, against {readout['exact']:.3g} "
            "for the exact inversion; it recovers the heads only in the gauge of its labels "
            f"(error {readout['other_gauge']:.3g} against H when fitted to H_h G_h). So HCNI "
            "holds as: a gauge of H d_k^2 parameters, plus (not 'and so') noise-amplified "
            "recovery; the MLP acts after the sum, so it cannot undo any loss, but at d = H d_k "
            "there is none to undo. The MLP statement itself is not simulated here.")
    return ClaimResult("RS-4", RS4.statement, verdict, deciding, comparisons, mutations, profile,
                       notes, {"counts": counts, "wo_rows": wo_rows, "rec_rows": rec_rows,
                               "readout": readout, "sigma_min_mean": mean_t,
                               "sigma_min_median": median_t, "bert_count_per_token": bert_count})


RS4 = register(Claim(
    "RS-4", PAPER,
    "Head-channel non-identifiability: after the heads are summed through W_O, n(H-1)d_k "
    "degrees of freedom per layer stay ambiguous when one head is recovered from the mixed "
    "signal; the MLP cannot fix this.",
    PAPER, "rs-4", run_rs4))


# ----------------------------------------------------------------------------- RS-5

def run_rs5(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """RS-5: PG-OP's overhead and whether it improves head recoverability at equal noise."""
    g = GRIDS[check_profile(profile)]
    counts = rank_counts()
    overhead = float(predictions.get("rs5_pgop_overhead")(H=BERT["H"], d=BERT["d"]))
    overhead_bias = float(theory._generated().pgop_overhead_bias(BERT["H"], BERT["d"]))
    n_tests = len(g["rec_d"])
    comparisons, rows = [], []
    z = critical_z(n_tests)
    for d in g["rec_d"]:
        r = _recovery(d, g["rec_samples"], executor)
        # the gate factor is the error's conditional mean given the sample's W_O, gates and
        # heads, so the per-sample ratio has mean 1 exactly; unlike the difference
        # norm_pgop - gate_factor its spread is bounded (the gate factor's 1/g^2 tail divides
        # out), so the comparison can resolve 1% (issue 8)
        ratio = estimate(r["norm_pgop"] / r["gate_factor"])
        factor = float(np.mean(r["gate_factor"]))
        comparisons.append(compare(1.0, ratio.mean, ratio.se, n_tests=n_tests,
                                   params={"d": d, "T": REC_T, "heads": REC_HEADS,
                                           "noise": NOISE, "gate_std": GATE_STD},
                                   label="PG-OP inversion error / its gated conditional mean "
                                         "(the no-gate prediction times the gate factor)"))
        lr = estimate(np.log(r["rel_pgop"] / r["rel_plain"]))
        rows.append({"d": d, "log_ratio": lr.mean, "log_ratio_se": lr.se,
                     "ratio_low": math.exp(lr.mean - z * lr.se),
                     "ratio_high": math.exp(lr.mean + z * lr.se), "gate_factor": factor,
                     "rel_plain_median": float(np.median(r["rel_plain"])),
                     "rel_pgop_median": float(np.median(r["rel_pgop"])),
                     "samples": g["rec_samples"], "seed": SEED})
    mutations = mutation_twins(comparisons, n_tests)
    v = decide(comparisons, mutations)
    gated_same = all(c["kernel_gated"] == c["kernel_known"]
                     and c["kernel_shared_gated"] == c["kernel_shared"] for c in counts)
    row = rows[0]
    deciding = (f"overhead H d/d^2 = {100 * overhead:.4f}% at H={BERT['H']}, d={BERT['d']} "
                f"({100 * overhead_bias:.4f}% with gate biases); kernel dimension with gates "
                f"{counts[0]['kernel_gated']} / {counts[0]['kernel_shared_gated']} (known W_O / "
                f"shared channel) vs {counts[0]['kernel_known']} / {counts[0]['kernel_shared']} "
                f"without; PG-OP (our reconstruction, gates at initialisation) / plain recovery "
                f"error at equal noise: "
                + ", ".join(f"x{math.exp(r['log_ratio']):.2f} [{r['ratio_low']:.2f}, "
                            f"{r['ratio_high']:.2f}] (d={r['d']})" for r in rows))
    if v != "confirmed":
        verdict = "open"
        notes = ("The gate-factor prediction of the PG-OP error came out " + v + " ("
                 + rejected_summary(comparisons) + "), so the direction of the effect is "
                 "measured but not explained.")
    elif row["ratio_low"] > 1.0 and gated_same:
        verdict = "refuted"
        notes = (
            f"The overhead arithmetic holds: H d/d^2 = H/d = {100 * overhead:.4f}% < 1.6% at "
            "BERT-base sizes. The fix does not, in this reconstruction (gate u_h . p_i with a "
            "sinusoidal code, gates at initialisation, W_O known): a nonzero per-token gate "
            "rescales each head's channel, so the kernel of the signal map is unchanged (exact "
            "ranks, with and without a shared channel), and the exact inversion divides the "
            "noise by the gate, multiplying the error by (1/n) sum_i g_ih^-2 (measured and "
            f"predicted: the gate factor, {row['gate_factor']:.2f} at gate scale {GATE_STD:g}). "
            "Recovery is worse with PG-OP at equal noise, with the interval above 1. A trained "
            "gate that switches heads off at some positions (time-multiplexing a shared "
            "channel) could help; that is not tested here.")
    else:
        verdict = "qualified"
        notes = ("PG-OP changes recoverability without changing the kernel dimension "
                 f"(same: {gated_same}); see the table.")
    return ClaimResult("RS-5", RS5.statement, verdict, deciding, comparisons, mutations, profile,
                       notes, {"rows": rows, "counts": counts, "overhead": overhead,
                               "overhead_bias": overhead_bias, "bert": BERT})


RS5 = register(Claim(
    "RS-5", PAPER,
    "A position-gated output projection (PG-OP) partly fixes HCNI at a parameter overhead "
    "< 1.6% of W_O.", PAPER, "rs-5", run_rs5))


# ----------------------------------------------------------------------------- RS-6

RS6_GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"depth_samples": 100, "width_samples": 200, "rows_samples": 200,
              "hcni_samples": 6000},
    "book": {"depth_samples": 200, "width_samples": 400, "rows_samples": 400,
             "hcni_samples": 8000},
    # hcni: the d = 64 recoveries of RS-4 and RS-5 (the same draws, computed once)
    "full": {"depth_samples": 2000, "width_samples": 4000, "rows_samples": 4000,
             "hcni_samples": GRIDS["full"]["rec_samples"]},
}
DEPTH_L, WIDTH_T, ROWS_T, BETA_HOT, BETA_COLD = 12, 64, 64, 3.0, 0.5


def _depth_config(alpha: float) -> Config:
    return Config(T=16, d=32, depth=DEPTH_L, mlp=False, norm="post", alpha_attn=alpha)


def run_rs6(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """RS-6: one number per collapse, with and without its fix."""
    g = RS6_GRIDS[check_profile(profile)]
    from sim.claims.rem import key_query_row, rows_config
    from theory.gap import stable_rank_bias_budget, stable_rank_finite

    width = Config(T=WIDTH_T, d=1, depth=1, attention="markov", mlp=False, norm="none",
                   input="gaussian")
    points = [Point(_depth_config(0.0), g["depth_samples"], SEED, "forward"),
              Point(_depth_config(1.0), g["depth_samples"], SEED, "forward"),
              Point(width, g["width_samples"], SEED, "attention")]
    points += [Point(rows_config(ROWS_T, b), g["rows_samples"], SEED, "rows")
               for b in (BETA_HOT, BETA_COLD)]
    res = sweep(points, executor=executor)
    n_tests = 5
    comparisons, rows = [], []
    # depth: consensus distance after L layers, no skip vs skip (measured only)
    mu0 = res[0].estimate("consensus_distance", DEPTH_L)
    mu1 = res[1].estimate("consensus_distance", DEPTH_L)
    rows.append({"collapse": "rank in depth", "observable": f"mu(X_{DEPTH_L})",
                 "symmetry": "token exchange: the consensus 1 xbar^T is the S_T-invariant state "
                             "that attention's averaging attracts",
                 "fix": "skip connection (alpha_attn = 1)", "broken": mu0.mean,
                 "broken_se": mu0.se, "fixed": mu1.mean, "fixed_se": mu1.se,
                 "calibrated": False})
    # width: sr(A)/T with the gap kept (theory) vs removed
    sr = res[2].estimate("stable_rank", 0)
    perp = estimate(res[2].per_sample("stable_rank_perp", 0) / WIDTH_T)
    s = width.markov_s
    pred = float(stable_rank_finite(WIDTH_T, s))
    comparisons.append(compare(pred, sr.mean, sr.se, bias=stable_rank_bias_budget(WIDTH_T, s),
                               n_tests=n_tests, params={"T": WIDTH_T, "markov_s": s},
                               label="width: sr(A) vs finite-T theory"))
    rows.append({"collapse": "rank in width", "observable": "sr(A)/T",
                 "symmetry": "row-stochasticity: A 1 = 1 puts an outlier singular value on the "
                             "constant vector",
                 "fix": "remove the gap (A - 1 1^T/T)", "broken": sr.mean / WIDTH_T,
                 "broken_se": sr.se / WIDTH_T, "fixed": perp.mean, "fixed_se": perp.se,
                 "calibrated": False})
    # HCNI: recovery error / its no-gate prediction, plain vs PG-OP
    r = _recovery(64, RS6_GRIDS[check_profile(profile)]["hcni_samples"], executor)
    e_plain = estimate(r["norm_plain"])
    e_pgop = estimate(r["norm_pgop"])
    ratio = estimate(r["norm_pgop"] / r["gate_factor"])  # mean 1 exactly (see RS-5)
    comparisons.append(compare(1.0, e_plain.mean, e_plain.se, n_tests=n_tests,
                               params={"d": 64}, label="HCNI: inversion error / prediction"))
    comparisons.append(compare(1.0, ratio.mean, ratio.se, n_tests=n_tests,
                               params={"d": 64}, label="HCNI: PG-OP error / its gated "
                                                       "conditional mean"))
    rows.append({"collapse": "HCNI", "observable": "inversion error / eps^2 T ||W_O^-1||^2",
                 "symmetry": "per-head GL(d_k) gauge of (W_V^h, W_O^h); heads share the summed "
                             "channel",
                 "fix": "PG-OP (position gates)", "broken": e_plain.mean, "broken_se": e_plain.se,
                 "fixed": e_pgop.mean, "fixed_se": e_pgop.se, "calibrated": True})
    # entropy: S/ln T at large beta vs small beta, both against the exact finite-(T, d) theory
    # of REM-F (isometric tokens, one head, d_k = d = T); the d -> inf REM row theory was 1.7%
    # off at beta = 3, which the full profile resolves (z = 11.6)
    ent = {}
    for b, rr in zip((BETA_HOT, BETA_COLD), res[3:], strict=True):
        e = estimate(rr.per_sample("entropy", 0) / math.log(ROWS_T))
        th = key_query_row(ROWS_T, ROWS_T, b, 0.0).entropy / math.log(ROWS_T)
        comparisons.append(compare(th, e.mean, e.se, n_tests=n_tests,
                                   params={"T": ROWS_T, "beta": b},
                                   label="entropy: S/ln T vs finite-(T, d) REM-F"))
        ent[b] = e
    rows.append({"collapse": "entropy", "observable": "S/ln T",
                 "symmetry": "key exchange in the REM: above beta_c the softmax row condenses "
                             "on a few keys",
                 "fix": f"smaller beta ({BETA_COLD:g} < beta_c = sqrt 2)",
                 "broken": ent[BETA_HOT].mean, "broken_se": ent[BETA_HOT].se,
                 "fixed": ent[BETA_COLD].mean, "fixed_se": ent[BETA_COLD].se,
                 "calibrated": True})
    mutations = mutation_twins(comparisons, n_tests)
    v = decide(comparisons, mutations)
    deciding = "; ".join(f"{row['collapse']}: {row['broken']:.3g} -> {row['fixed']:.3g} "
                         f"({row['observable']})" for row in rows)
    if v == "refuted":
        verdict = "open"
        notes = "A calibrating comparison failed: " + rejected_summary(comparisons)
    else:
        verdict = "qualified" if v == "confirmed" else "open"
        notes = (
            "Each collapse has its own observable, symmetry and fix, and each effect is far "
            "outside its standard errors. The entropy pair, the width 'gap kept' arm and both "
            "HCNI arms are calibrated comparisons against derived predictions (verdict of "
            f"those: {v}); the depth pair and the gap-removed arm are measurements without a "
            "prediction here, so the picture cannot be 'confirmed'. The HCNI fix in the paper "
            "(PG-OP) makes recovery worse at equal noise (RS-5); the fix that restores "
            "recoverability is a known, invertible W_O (or a learned read-out, RS-4). "
            "'Four distinct broken symmetries' is a reading, not a measured statement: that "
            "the fixes act independently (e.g. removing the gap leaves the entropy unchanged) "
            "is not tested here.")
    return ClaimResult("RS-6", RS6.statement, verdict, deciding, comparisons, mutations, profile,
                       notes, {"rows": rows, "samples": {k: v for k, v in g.items()},
                               "seed": SEED, "depth": DEPTH_L})


RS6 = register(Claim(
    "RS-6", PAPER,
    "Rank collapse in depth, rank collapse in width, HCNI and entropy collapse are four "
    "distinct broken symmetries, each with its own fix.", PAPER, "rs-6", run_rs6))
