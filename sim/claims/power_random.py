"""Layers as power iterations with random value matrices (science/power-method.md): PM-2, PM-3.

PM-2 (``kind="alignment"``, untied weights, one head, ``mlp=False``, ``alpha_attn = 1``,
isometric input). Per sample, the alignments are averaged over the deep window of layers
(``GRIDS[...]["window"]``), where the tokens have collapsed (``cosine`` reported):

- *no common attractor*: ``align_M``, ``align_F`` (L2 norm) and ``align_centred`` (LayerNorm)
  against the random-direction value ``theory.random_alignment(n, k_i)``, ``k_i`` the dimension
  of the sample's layer-1 top subspace (recomputed from the engine's own ``F_1``), ``n = d``
  (L2) or ``d - 1`` (LayerNorm's centred hyperplane); SE of the paired difference;
- *one-layer tilt* (L2 norm): ``align_own`` against ``theory.one_layer_tilt`` (a NumPy
  integral; its SE is added in quadrature).

PM-3 (the engine's own ``F = W_V^T`` of layer 1, ``sim.kernels.draw_layer``; eigenvalues by
LAPACK; ``M = I + F`` has eigenvalues ``1 + lambda``, and ``F`` at ``sigma_v2`` is
``sqrt(sigma_v2)`` times ``F`` at 1 for the same draws, so one spectrum per sample serves
every ``sigma_v2``):

- ``E #real eigenvalues`` of ``F`` against Edelman-Kostlan-Shub;
- ``P(top eigenvalue of M real)`` at ``d = 2`` against ``1/sqrt(2)``;
- the slope of ``log(E[1 - r] sqrt(ln d))`` in ``log d`` against ``-1/2``, ``r = |mu_2/mu_1|``
  (``theory.gap_ratio``);
- the coverage of the shared-weight theory, the fraction of initialisations whose top
  eigenvalue of ``M`` is real and separated (``r <= SEPARATED``), reported with SEs (no
  prediction is tested there).

Every passing comparison has a mutation twin (prediction x 1.1; for the slope also exponent 0)
that must fail.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from sim import kernels, rng
from sim.alignment import top_subspace
from sim.claims import (
    Claim,
    ClaimResult,
    decide,
    largest_z,
    mutation_twins,
    register,
    rejected_summary,
)
from sim.config import Config
from sim.montecarlo import Estimate, Result, estimate
from sim.profiles import check_profile
from sim.stats import Comparison, compare, fit_power_law
from sim.sweep import Point, sweep
from theory import power_random as theory

SEED = 7
#: "separated": the power iteration contracts by at least this factor per layer
SEPARATED = 0.9

#: PM-2 stacks: (value, norm, attention)
STACKS_QUICK = (("symmetric", "l2", "uniform"), ("random", "l2", "uniform"))
STACKS_BOOK = STACKS_QUICK + (("symmetric", "post", "softmax"),)
GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"d": 16, "T": 4, "depth": 16, "window": (6, 16), "sigma_v2": 2.0,
              "stacks": STACKS_QUICK, "samples": 1600},
    "book": {"d": 16, "T": 4, "depth": 16, "window": (6, 16), "sigma_v2": 2.0,
             "stacks": STACKS_BOOK, "samples": 2000},
    "full": {"d": 64, "T": 8, "depth": 24, "window": (10, 24), "sigma_v2": 2.0,
             "stacks": STACKS_BOOK + (("random", "l2", "softmax"), ("random", "post", "uniform")),
             "samples": 20000},
}
SPECTRA_GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"count_d": (4, 8, 16, 32),
              "count_samples": {4: 8000, 8: 6000, 16: 3000, 32: 3000}, "two_samples": 12000,
              "gap_d": (8, 16, 32, 64), "gap_samples": {8: 6000, 16: 6000, 32: 4000, 64: 2500},
              "coverage_d": (16, 64), "sigma_v2": (0.5, 1.0, 2.0)},
    "book": {"count_d": (4, 8, 16, 32, 64),
             "count_samples": {4: 8000, 8: 6000, 16: 4000, 32: 4000, 64: 3000},
             "two_samples": 20000,
             "gap_d": (8, 16, 32, 64, 128),
             "gap_samples": {8: 6000, 16: 6000, 32: 5000, 64: 3000, 128: 1000},
             "coverage_d": (16, 64, 256), "coverage_samples_256": 200,
             "sigma_v2": (0.5, 1.0, 2.0)},
    "full": {"count_d": (4, 8, 16, 32, 64, 128),
             "count_samples": {4: 100000, 8: 80000, 16: 40000, 32: 40000, 64: 40000,
                               128: 20000}, "two_samples": 400000,
             "gap_d": (8, 16, 32, 64, 128, 256),
             "gap_samples": {8: 80000, 16: 80000, 32: 60000, 64: 40000, 128: 20000,
                             256: 8000},
             "coverage_d": (16, 64, 256), "coverage_samples_256": 4000,
             "sigma_v2": (0.5, 1.0, 2.0)},
}


# ----------------------------------------------------------------------------- helpers

def stack_config(d: int, T: int, depth: int, sigma_v2: float, value: str, norm: str,
                 attention: str) -> Config:
    """Untied attention-only stack ``X' = N(X + A X F^T)``, one head, isometric input."""
    return Config(T=T, d=d, depth=depth, heads=1, attention=attention, beta=1.0, mlp=False,
                  norm=norm, alpha_attn=1.0, sigma_v2=sigma_v2, value=value,
                  shared_weights=False, input="isometric")


def value_matrix(config: Config, seed: int, sample: int, layer: int = 1) -> np.ndarray:
    """The engine's ``F = W_V^T`` (``d x d``, float64) of ``layer`` in ``sample``."""
    ip, fp, proto = kernels.encode(config)
    weights = kernels.draw_layer(ip, fp, rng.sample_seed(seed, sample), layer, proto)
    return np.asarray(weights[2][0], dtype=np.float64).T


def engine_spectra(d: int, samples: int, seed: int = SEED, value: str = "random"
                   ) -> np.ndarray:
    """Eigenvalues (``samples x d``, complex) of the engine's layer-1 ``F`` at ``sigma_v2 = 1``."""
    cfg = Config(T=2, d=d, depth=1, heads=1, mlp=False, attention="uniform", sigma_v2=1.0,
                 value=value, input="gaussian")
    ip, fp, proto = kernels.encode(cfg)
    out = np.empty((samples, d), dtype=complex)
    with threadpool_limits(1):
        for i in range(samples):
            w = kernels.draw_layer(ip, fp, rng.sample_seed(seed, i), 1, proto)
            out[i] = np.linalg.eigvals(np.asarray(w[2][0], dtype=np.float64).T)
    return out


def _cmp(prediction: float, est: Estimate, n_tests: int, params: dict, label: str,
         extra_se: float = 0.0) -> Comparison:
    return compare(float(prediction), est.mean, math.hypot(est.se, extra_se), n_tests=n_tests,
                   params=params, label=label, dof=max(est.n - 1, 1))








# ----------------------------------------------------------------------------- PM-2

def pm2_points(profile: str) -> list[Point]:
    g = GRIDS[check_profile(profile)]
    return [Point(stack_config(g["d"], g["T"], g["depth"], g["sigma_v2"], *stack),
                  g["samples"], SEED, "alignment") for stack in g["stacks"]]


def _window_mean(result: Result, observable: str, window: tuple[int, int]) -> np.ndarray:
    """Per-sample mean of ``observable`` over layers ``window[0] .. window[1]``."""
    return result.per_sample(observable)[:, window[0]:window[1] + 1].mean(axis=1)


def _baseline_dims(config: Config, samples: int, seed: int) -> dict[str, np.ndarray]:
    """Per sample, the dimension (1 or 2) of layer 1's top subspace of ``F``, ``M``, ``P M``."""
    d = config.d
    centring = np.eye(d) - 1.0 / d
    dims = {"align_F": np.empty(samples, int), "align_M": np.empty(samples, int),
            "align_centred": np.empty(samples, int)}
    with threadpool_limits(1):
        for i in range(samples):
            f = value_matrix(config, seed, i)
            m = config.alpha_attn * np.eye(d) + f
            dims["align_F"][i] = top_subspace(f).shape[1]
            dims["align_M"][i] = top_subspace(m).shape[1]
            dims["align_centred"][i] = top_subspace(centring @ m).shape[1]
    return dims


def pm2_analysis(result: Result, window: tuple[int, int], n_tests: int
                 ) -> tuple[list[Comparison], list[Comparison], dict[str, Any]]:
    """(no-attractor comparisons, tilt comparisons, row of data) for one stack."""
    c = result.config
    stack = {"value": c.value, "norm": c.norm, "attention": c.attention}
    dims = _baseline_dims(c, result.samples, result.seed)
    n_dim = c.d if c.norm == "l2" else c.d - 1
    observables = ("align_M", "align_F") if c.norm == "l2" else ("align_centred",)
    row: dict[str, Any] = {**stack, "d": c.d, "T": c.T, "sigma_v2": c.sigma_v2,
                           "window": window, "samples": result.samples, "seed": result.seed,
                           "cosine_window_start": float(result.per_sample("cosine",
                                                                          window[0]).mean())}
    for name in ("align_F", "align_M", "align_centred", "align_own", "cosine"):
        per_layer = result.per_sample(name)
        row[f"{name}_layers"] = per_layer.mean(axis=0).tolist()
        row[f"{name}_layers_se"] = (per_layer.std(axis=0, ddof=1)
                                    / math.sqrt(result.samples)).tolist()
    attractor = []
    for name in observables:
        base = np.array([theory.random_alignment(n_dim, int(k)) for k in dims[name]])
        measured = _window_mean(result, name, window)
        diff = estimate(measured - base)
        est = Estimate(float(measured.mean()), diff.se, diff.n)
        attractor.append(_cmp(float(base.mean()), est, n_tests,
                              {**stack, "d": c.d, "observable": name,
                               "real fraction": float(np.mean(dims[name] == 1))},
                              f"{c.value} F, {c.norm}, {c.attention}: deep {name} vs random"))
        row[f"{name}_baseline"] = float(base.mean())
        row[f"{name}_real_fraction"] = float(np.mean(dims[name] == 1))
    tilt = []
    if c.norm == "l2":
        pred = theory.one_layer_tilt(c.d, c.sigma_v2, c.value)
        est = estimate(_window_mean(result, "align_own", window))
        tilt.append(_cmp(pred.mean, est, n_tests, {**stack, "d": c.d, "theory se": pred.se},
                         f"{c.value} F, {c.norm}, {c.attention}: deep align_own vs tilt",
                         extra_se=pred.se))
        row["tilt_theory"], row["tilt_theory_se"] = pred.mean, pred.se
        if c.value == "symmetric":
            row["tilt_large_d"] = theory.tilt_large_d_symmetric(c.d, c.sigma_v2)
    return attractor, tilt, row


def run_pm2(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """PM-2: untied weights have no common attractor; each layer tilts toward its own ``M``."""
    g = GRIDS[check_profile(profile)]
    points = pm2_points(profile)
    results = sweep(points, executor=executor)
    n_tests = sum(3 if s[1] == "l2" else 1 for s in g["stacks"])
    attractor, tilt, rows = [], [], []
    for res in results:
        a, t, row = pm2_analysis(res, g["window"], n_tests)
        attractor += a
        tilt += t
        rows.append(row)
    comparisons = attractor + tilt
    mutations = mutation_twins(comparisons, n_tests)
    verdict = decide(comparisons, mutations)
    worst = largest_z(comparisons)
    base = rows[0]
    deciding = (f"max |z| = {abs(worst.z):.1f} (critical {worst.z_crit:.1f}) over "
                f"{len(comparisons)} comparisons; d={g['d']}: deep alignment with layer 1's "
                f"top direction {base['align_M_layers'][g['window'][1]]:.3f} (random "
                f"{base['align_M_baseline']:.3f}), own-layer tilt "
                f"{np.mean(base['align_own_layers'][g['window'][0]:]):.3f} "
                f"(theory {base['tilt_theory']:.3f})")
    if verdict == "confirmed":
        notes = ("Untied layers have no common attractor: deep tokens are uniform directions, "
                 "independent of any fixed layer's top subspace, so their alignment with it is "
                 "the random-direction value E sqrt(Beta(k/2, (n-k)/2)) (k = 1 for a real top "
                 "eigenvalue, 2 for a complex pair), not 1/sqrt(d) exactly. Each layer tilts "
                 "the (collapsed) tokens toward its own I + F_l by the predicted one-step "
                 "factor, and the next layer forgets it.")
    elif verdict == "refuted":
        notes = "Rejected: " + rejected_summary(comparisons)
    else:
        notes = "Not resolved at 5% by this profile, or a mutation twin survived."
    return ClaimResult("PM-2", PM2.statement, verdict, deciding, comparisons, mutations,
                       profile, notes, data={"rows": rows, "grid": {k: v for k, v in g.items()
                                                                    if k != "stacks"}})


PM2 = register(Claim(
    "PM-2", "power-method",
    "With independent random F_l per layer there is no common attractor: alignment with any "
    "fixed layer's top eigenvector stays at its random-direction value, with a one-layer tilt "
    "toward each layer's own eigenvector.",
    "power-method", "pm-2", run_pm2))


# ----------------------------------------------------------------------------- PM-3

def spectrum_statistics(eigenvalues: np.ndarray, sigma_v2: float
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Per sample ``(top real, r)`` of ``M = I + sqrt(sigma_v2) F_1`` (``F_1`` at ``sigma_v2 =
    1``, rows of ``eigenvalues``)."""
    mu = 1.0 + math.sqrt(sigma_v2) * eigenvalues
    real, ratio = zip(*(theory.gap_ratio(row) for row in mu), strict=True)
    return np.array(real), np.array(ratio)


def _spectra(d: int, samples: int, cache: dict) -> np.ndarray:
    have = cache.get(d)
    if have is None or have.shape[0] < samples:
        cache[d] = engine_spectra(d, samples)
    return cache[d][:samples]


def run_pm3(profile: str = "book", executor: Any = "serial") -> ClaimResult:
    """PM-3: random ``I + F`` often has a complex or nearly degenerate top eigenvalue."""
    g = SPECTRA_GRIDS[check_profile(profile)]
    n_tests = len(g["count_d"]) + 2
    spectra: dict[int, np.ndarray] = {}
    counts, count_rows = [], []
    for d in g["count_d"]:
        ev = _spectra(d, g["count_samples"][d], spectra)
        est = estimate(np.sum(ev.imag == 0, axis=1).astype(float))
        pred = theory.expected_real_eigenvalues(d)
        counts.append(_cmp(pred, est, n_tests, {"d": d}, "E #real eigenvalues of F"))
        count_rows.append({"d": d, "real_count": est.mean, "se": est.se, "theory": pred,
                           "large_d": float(np.sqrt(2 * d / np.pi)), "samples": est.n})
    two = engine_spectra(2, g["two_samples"])
    real2, _ = spectrum_statistics(two, 1.0)
    est2 = estimate(real2.astype(float))
    top2 = _cmp(theory.two_by_two_real_probability(), est2, n_tests, {"d": 2},
                "P(top eigenvalue of I + F real), d = 2")
    # gap-ratio scaling at sigma_v2 = 1
    gap_rows = []
    for d in g["gap_d"]:
        ev = _spectra(d, g["gap_samples"][d], spectra)
        real, ratio = spectrum_statistics(ev, 1.0)
        e = estimate(1.0 - ratio)
        gap_rows.append({"d": d, "one_minus_r": e.mean, "se": e.se, "samples": e.n,
                         "median": float(np.median(1.0 - ratio)),
                         "real_fraction": float(real.mean())})
    ds = np.array([r["d"] for r in gap_rows], dtype=float)
    scaled = np.array([r["one_minus_r"] for r in gap_rows]) * np.sqrt(np.log(ds))
    scaled_se = np.array([r["se"] for r in gap_rows]) * np.sqrt(np.log(ds))
    fit = fit_power_law(ds, scaled, scaled_se)
    exponent = float(theory.GAP_EXPONENT)
    slope = compare(exponent, fit.slope, fit.slope_se, n_tests=n_tests,
                    params={"d": tuple(int(x) for x in ds), "sigma_v2": 1.0},
                    label="slope of log((1 - r) sqrt(ln d)) in log d")
    raw = fit_power_law(ds, scaled / np.sqrt(np.log(ds)), scaled_se / np.sqrt(np.log(ds)))
    comparisons = counts + [top2, slope]
    # the slope's twins only where the slope can decide (resolved); otherwise the law is open
    mutations = mutation_twins(comparisons if slope.resolved else counts + [top2], n_tests)
    if slope.passed and slope.resolved:
        mutations.append(compare(0.0, slope.estimate, slope.se, n_tests=n_tests,
                                 params=slope.params, label="slope: no near-degeneracy (0)"))
    # coverage of the shared-weight theory
    coverage = []
    for d in g["coverage_d"]:
        samples = g.get(f"coverage_samples_{d}") or g["gap_samples"][d]
        ev = _spectra(d, samples, spectra)
        for sv in g["sigma_v2"]:
            real, ratio = spectrum_statistics(ev, sv)
            sep = real & (ratio <= SEPARATED)
            coverage.append({"d": d, "sigma_v2": sv, "samples": samples,
                             "real_top": float(real.mean()),
                             "real_top_se": float(real.std(ddof=1) / math.sqrt(samples)),
                             "separated": float(sep.mean()),
                             "separated_se": float(sep.std(ddof=1) / math.sqrt(samples)),
                             "median_r": float(np.median(ratio))})
    exact = comparisons[:-1]
    exact_verdict = decide(exact, [m for m in mutations if "slope" not in m.label])
    law_verdict = decide([slope], [m for m in mutations if "slope" in m.label])
    # near-degeneracy itself: 1 - r must fall with d (the exponent-0 alternative rejected)
    degenerate = bool(raw.slope < 0 and abs(raw.slope) > 5 * raw.slope_se)
    if exact_verdict != "confirmed":
        verdict = exact_verdict
    elif law_verdict == "confirmed":
        verdict = "confirmed"
    else:
        verdict = "qualified" if degenerate else "open"
    cov_txt = ", ".join(f"d={r['d']}, s2={r['sigma_v2']:g}: {100 * r['separated']:.0f}%"
                        for r in coverage)
    deciding = (f"P(real top), d=2: {est2.mean:.4f} +- {est2.se:.4f} (1/sqrt 2); slope of "
                f"(1-r) sqrt(ln d): {fit.slope:.3f} +- {fit.slope_se:.3f} (theory -1/2, "
                f"{law_verdict}; raw 1-r slope {raw.slope:.3f}); real and separated "
                f"(r <= {SEPARATED}) top: " + cov_txt)
    largest = max(coverage, key=lambda r: (r["d"], r["sigma_v2"]))
    law_detail = rejected_summary([slope]) if law_verdict == "refuted" else f"z = {slope.z:.1f}"
    notes = (f"Exact parts (E #real eigenvalues, d = 2): {exact_verdict}. The top eigenvalue of "
             f"I + F is real in a fraction that falls slowly with d "
             f"({100 * largest['real_top']:.0f}% at d={largest['d']}, sigma_v2="
             f"{largest['sigma_v2']:g}); real or not, it is nearly degenerate: 1 - |mu_2/mu_1| "
             f"falls as d^({raw.slope:.2f} +- {raw.slope_se:.2f}) over d = "
             f"{int(ds[0])}..{int(ds[-1])}; the edge law (d ln d)^(-1/2) is {law_verdict} "
             f"({law_detail}). "
             f"The shared-weight theory (a real, separated top eigenvalue) covers only the "
             f"fractions in the deciding line. ")
    if verdict == "qualified":
        notes += ("Qualified: the claim's near-degeneracy holds, but the leading edge law is "
                  "asymptotic and not resolved (or not reached) at these d.")
    elif verdict == "refuted":
        notes += "Rejected: " + rejected_summary(exact)
    elif verdict == "open":
        notes += "Not resolved at 5% by this profile, or a mutation twin survived."
    return ClaimResult("PM-3", PM3.statement, verdict, deciding, comparisons, mutations,
                       profile, notes,
                       data={"counts": count_rows, "gap": gap_rows, "coverage": coverage,
                             "gap_fit": {"slope": fit.slope, "slope_se": fit.slope_se,
                                         "raw_slope": raw.slope, "raw_slope_se": raw.slope_se},
                             "two_by_two": {"real_top": est2.mean, "se": est2.se,
                                            "samples": est2.n},
                             "separated": SEPARATED, "seed": SEED})


PM3 = register(Claim(
    "PM-3", "power-method",
    "For random non-symmetric F (Ginibre-like) the top eigenvalue of I + F is often one of a "
    "complex pair (tokens rotate rather than converge), and the gap |mu_2/mu_1| -> 1 as d grows "
    "(near-degeneracy makes convergence slow); the shared-weight theory needs a real, separated "
    "top eigenvalue.",
    "power-method", "pm-3", run_pm3))


