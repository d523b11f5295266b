"""Mind the gap claims (science/mind-the-gap.md): GAP-3, rank collapse in width.

GAP-3 has four comparisons per ``(T, markov_s)`` point of the profile's grid, on the layer-1
attention matrix of random-Markov attention (``kind="attention"``):

- ``sr(A)`` against the second-order finite-``T`` theory ``theory.gap.stable_rank_finite``
  (``O(T^-3)`` bias budget ``theory.gap.stable_rank_bias_budget``); its mutation twin is the same
  theory times 1.1.
- ``sr(A)`` against the first-order formula ``F/(1 + (F - 1)/T)``
  (``theory.gap.stable_rank_finite_first``, ``O(T^-2)`` budget
  ``theory.gap.stable_rank_first_bias_budget``), role ``"reference"``.
- ``sr(A)`` against the paper's large-``T`` limit ``1 + sigma^2/m^2 = e^{s^2}``.
- ``sr(A_perp)/T`` against the large-``T`` limit ``1/4``; its twin is ``1.1/4``.

The second-order comparisons have role ``"exact"``; the two limits, the claim's statement, and
the first-order formula are reported beside them (role ``"reference"``) and decide between
``confirmed`` and ``qualified``, as in GAP-1.
"""

from __future__ import annotations

import math
from typing import Any

from sim.claims import MUTATION, Claim, ClaimResult, decide, register
from sim.config import Config
from sim.montecarlo import estimate
from sim.profiles import check_profile, grid_samples
from sim.stats import compare
from sim.sweep import Point, sweep
from theory import predictions

SEED = 3

GAP3_GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"T": (32, 64, 128), "markov_s": (0.5, math.sqrt(math.log(2))), "samples": 200},
    "book": {"T": (16, 32, 64, 128, 256, 512),
             "markov_s": (0.5, math.sqrt(math.log(2)), 1.0, 1.25), "samples": 400},
    "full": {"T": (16, 32, 64, 128, 256, 512, 1024, 2048),
             "markov_s": (0.25, 0.5, math.sqrt(math.log(2)), 1.0, 1.25, 1.5),
             # sr(A) spreads most at small T and large s: 2000 samples projected up to 4.1%
             # at T <= 128 (sim.costs); small T are cheap, so they get more. The first-order
             # theory's O(T^-2) budget alone exceeded 1% at T = 16, s >= 1.25 and T = 32,
             # s = 1.5; the second-order O(T^-3) budget does only at T = 16, s = 1.5 (1.1%).
             # T = 32 raised from 20000 (1.24% projected at s = 1.5)
             "samples": {16: 50000, 32: 110000, 64: 8000, 128: 4000, 256: 2000, 512: 2000,
                         1024: 2000, 2048: 2000}},
}


def markov_config(T: int, markov_s: float) -> Config:
    """One layer of random-Markov attention; ``d = 1`` since nothing else is measured."""
    return Config(T=T, d=1, depth=1, attention="markov", markov_s=markov_s, mlp=False,
                  norm="none", input="gaussian")


def gap3_points(profile: str) -> list[Point]:
    grid = GAP3_GRIDS[check_profile(profile)]
    return [Point(markov_config(T, s), grid_samples(grid, T), SEED, "attention")
            for s in grid["markov_s"] for T in grid["T"]]


def run_gap3(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """GAP-3: ``sr(A) -> 1 + sigma^2/m^2`` and ``sr(A_perp)/T -> 1/4``."""
    points = gap3_points(profile)
    results = sweep(points, executor=executor)
    finite = predictions.get("gap3_stable_rank_finite")
    first = predictions.get("gap3_stable_rank_finite_first")
    limit = predictions.get("gap3_stable_rank_limit")
    perp_limit = float(predictions.get("gap3_perp_ratio_limit")())
    n_tests = 4 * len(points)

    from theory.gap import stable_rank_bias_budget, stable_rank_first_bias_budget

    rows, c_finite, c_first, c_limit, c_perp, mutations = [], [], [], [], [], []
    for point, result in zip(points, results, strict=True):
        T, s = point.config.T, point.config.markov_s
        params = {"T": T, "markov_s": s}
        sr = result.estimate("stable_rank", 0)
        perp = estimate(result.per_sample("stable_rank_perp", 0) / T)
        perp_mean, perp_se = perp.mean, perp.se
        pred = float(finite(markov_s=s, T=T))
        bias = stable_rank_bias_budget(T, s)
        pred1 = float(first(markov_s=s, T=T))
        bias1 = stable_rank_first_bias_budget(T, s)
        lim = float(limit(markov_s=s))
        kw = {"n_tests": n_tests, "params": params}
        c_finite.append(compare(pred, sr.mean, sr.se, bias=bias,
                                label="sr(A) vs finite-T", **kw))
        c_first.append(compare(pred1, sr.mean, sr.se, bias=bias1, role="reference",
                               label="sr(A) vs first-order F/(1 + (F-1)/T)", **kw))
        c_limit.append(compare(lim, sr.mean, sr.se, label="sr(A) vs limit", role="reference",
                               **kw))
        c_perp.append(compare(perp_limit, perp_mean, perp_se, label="sr(A_perp)/T vs 1/4",
                              role="reference", **kw))
        mutations.append(compare(MUTATION * pred, sr.mean, sr.se, bias=bias,
                                 label="sr(A) vs 1.1 x finite-T", **kw))
        rows.append({"T": T, "markov_s": s, "stable_rank": sr.mean, "stable_rank_se": sr.se,
                     "finite": pred, "first_order": pred1, "limit": lim, "bias": bias,
                     "bias_first_order": bias1, "perp_ratio": perp_mean,
                     "perp_ratio_se": perp_se, "samples": point.samples, "seed": point.seed})
    for c in c_perp:
        if c.passed:
            mutations.append(compare(MUTATION * perp_limit, c.estimate, c.se,
                                     n_tests=n_tests, params=c.params,
                                     label="sr(A_perp)/T vs 1.1/4", role="reference"))

    finite_verdict = decide(c_finite, mutations)
    worst_finite = max(c_finite, key=lambda c: abs(c.z))
    worst_first = max(c_first, key=lambda c: abs(c.z))
    worst_limit = max(c_limit, key=lambda c: abs(c.estimate / c.prediction - 1))
    worst_perp = max(c_perp, key=lambda c: abs(c.estimate / c.prediction - 1))
    limit_off = worst_limit.estimate / worst_limit.prediction - 1
    perp_off = worst_perp.estimate / worst_perp.prediction - 1
    deciding = (f"second-order finite-T theory: max |z| = {abs(worst_finite.z):.1f} "
                f"(critical {worst_finite.z_crit:.1f}) over {len(c_finite)} points "
                f"(first-order: {abs(worst_first.z):.1f}); "
                f"limit e^(s^2) off by {100 * limit_off:+.1f}% at T={worst_limit.params['T']}, "
                f"s={worst_limit.params['markov_s']:.2f}; sr(A_perp)/T off 1/4 by "
                f"{100 * perp_off:+.1f}% at T={worst_perp.params['T']}, "
                f"s={worst_perp.params['markov_s']:.2f}")
    limits_verdict = decide(c_limit + c_perp + c_first, mutations)
    largest_T = max(c.params["T"] for c in c_perp)
    perp_at_largest = ", ".join(
        f"{c.estimate:.3f} (s={c.params['markov_s']:.2f})"
        for c in c_perp if c.params["T"] == largest_T)
    if finite_verdict != "confirmed":
        verdict = "open"
        notes = (f"The finite-T theory itself came out {finite_verdict} here, so the comparison "
                 "cannot decide the limit claim.")
    elif limits_verdict == "confirmed":
        verdict = "confirmed"
        notes = "Both limits hold within Monte-Carlo error at every T of the grid."
    elif limits_verdict == "open":
        verdict = "open"
        notes = ("The limits pass where tested but some comparisons could not detect a 5% "
                 "discrepancy; a larger profile is needed.")
    else:
        verdict = "qualified"
        failing_limit = sorted({(c.params["T"], round(c.params["markov_s"], 3))
                                for c in c_limit if not c.passed})
        failing_perp = sorted({(c.params["T"], round(c.params["markov_s"], 3))
                               for c in c_perp if not c.passed})
        failing_first = sorted({(c.params["T"], round(c.params["markov_s"], 3))
                                for c in c_first if not c.passed})
        notes = ("The simulation agrees with the finite-T theory, which tends to "
                 "1 + sigma^2/m^2 = e^(s^2) as T grows, with a first-order correction "
                 "-2 e^(2s^2)(e^(s^2) - 1)/T: the limit is exact but is approached slowly "
                 "when s is large. The limit is rejected at (T, s) = "
                 f"{failing_limit or 'none'}. For the gap-removed matrix there is no "
                 "finite-T theory here: sr(A_perp)/T = 1/4 is rejected at "
                 f"{failing_perp or 'none'}; at T = {largest_T} it is {perp_at_largest}, so "
                 "the quarter-circle limit is a large-T statement that the sizes tested do "
                 "not reach once the logit scale s is of order one."
                 + (" The first-order formula F/(1 + (F-1)/T) is rejected within its O(T^-2) "
                    f"budget at {failing_first}." if failing_first else ""))
    return ClaimResult("GAP-3", GAP3.statement, verdict, deciding,
                       c_finite + c_first + c_limit + c_perp,
                       mutations, profile, notes, {"rows": rows})


GAP3 = register(Claim(
    "GAP-3", "mind-the-gap",
    "Rank collapse in width: the stable rank of random-Markov attention tends to "
    "1 + sigma^2/m^2 although rank A = T, and with the gap removed sr(A_perp)/T tends to 1/4.",
    "mind-the-gap", "gap-3", run_gap3))
