"""GAP-5 .. GAP-8: the mean/bulk energy recursion of theory.gap_depth against a direct NumPy
Monte Carlo of the matrices (independent of the engine), its closed form against iteration, the
sr(X X^T) bound, and the claims end to end under the quick profile."""

import math

import numpy as np
import pytest
import sympy as sp
from conftest import run_quick_claims

from sim.claims import ClaimResult, decide, with_role
from sim.claims.gap_depth import SLOPE_RESOLVED
from theory import gap_depth as gd

S = math.sqrt(math.log(2.0))


def _markov(rng, T):
    g = rng.normal(-S * S / 2, S, (T, T))
    e = np.exp(g - g.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _isometric(rng, T, d):
    q, _ = np.linalg.qr(rng.normal(size=(d, T)))
    return math.sqrt(d) * q.T


def _split(x):
    xbar = x.mean(axis=0)
    return x.shape[0] * xbar @ xbar, float(np.sum((x - xbar) ** 2))


@pytest.mark.parametrize("gap, alpha, lam", [("keep", 0.0, 0.5), ("keep", 1.0, 0.5),
                                             ("remove", 0.0, 0.5), ("differential", 0.0, 0.6),
                                             ("differential", 1.0, 0.3)])
def test_recursion_matches_direct_monte_carlo(gap, alpha, lam):
    """Expected (E_m, E_b) after 2 layers: NumPy matrices vs the recursion (b from the same MC
    and, separately, from the exact quadrature)."""
    rng = np.random.default_rng(7)
    T, d, depth, sv, n = 6, 8, 2, 1.7, 20000
    out = np.empty((n, 2))
    bulk = np.empty(n)
    for i in range(n):
        x = _isometric(rng, T, d)
        for _ in range(depth):
            a = _markov(rng, T)
            if gap == "remove":
                a = a - 1.0 / T
            elif gap == "differential":
                a = a - lam * _markov(rng, T)
            w = rng.normal(0, math.sqrt(sv / d), (d, d))
            x = alpha * x + a @ x @ w
        out[i] = _split(x)
        bulk[i] = np.sum((_markov(rng, T) - 1.0 / T) ** 2)
    b_exact = gd.markov_bulk(T, S)
    assert abs(bulk.mean() - b_exact) < 5 * bulk.std() / math.sqrt(n)
    pred = gd.energies(T, d, depth, b_exact, sv, alpha, gap, lam)[-1]
    mean, se = out.mean(axis=0), out.std(axis=0) / math.sqrt(n)
    assert np.all(np.abs(mean - pred) < 5 * se), (mean, pred, se)
    assert np.all(np.abs(mean - 1.1 * pred) > 5 * se)  # the mutation twin is rejected


def test_exchangeable_covariances_by_monte_carlo():
    """E[c c^T] = b/(T-1) P and E[A_perp^T P A_perp] = (b/T) P (derive_covariances)."""
    rng = np.random.default_rng(3)
    T, n = 5, 40000
    P = np.eye(T) - 1.0 / T
    ccT, apa = np.zeros((T, T)), np.zeros((T, T))
    for _ in range(n):
        ap = _markov(rng, T) - 1.0 / T
        c = ap.T @ np.ones(T)
        ccT += np.outer(c, c) / n
        apa += ap.T @ P @ ap / n
    cov = gd.derive_covariances()
    b = gd.markov_bulk(T, S)
    for key, est in (("ccT", ccT), ("AtPA", apa)):
        coeff = float(cov[key].subs({gd.T: T, gd.b: b}))
        assert np.allclose(est, coeff * P, atol=0.02 * coeff), key


@pytest.mark.parametrize("gap", gd.GAPS)
def test_closed_form_energies_equal_iteration(gap):
    mean, bulk = gd.derive_energies(gap)
    T, d, b, sv, alpha, lam = 12, 16, 0.9, 3.0, 0.7, 0.4
    subs = {gd.T: T, gd.b: b, gd.v: sv, gd.alpha: alpha, gd.lam: lam,
            gd.E_m: d, gd.E_b: d * (T - 1)}
    it = gd.energies(T, d, 5, b, sv, alpha, gap, lam)
    for L in range(1, 6):
        got = [float(sp.N(e.subs(subs).subs(gd.L, L))) for e in (mean, bulk)]
        assert np.allclose(got, it[L], rtol=1e-12)


def test_gap_removed_fraction_is_constant():
    f = gd.bulk_fraction(50, 50, 8, gd.markov_bulk(50, S), 50.0, 0.0, "remove")
    assert np.allclose(f, 49 / 50, rtol=1e-13)


@pytest.mark.parametrize("gap, width, value", gd.SLOPE_CASES)
def test_slope_limits_against_numeric_slope(gap, width, value):
    """The printed large-T slopes against the exact expression at T = 1e6 .. 2e6 (b fixed)."""
    for depth in (1, 2, 4):
        Ts = np.array([1e6, 2e6])
        vals = [gd.jacobian_frobenius2(int(T), int(T) if width else 64, depth, 1.0,
                                       T if value else 1.0, gap) for T in Ts]
        slope = np.diff(np.log(vals))[0] / np.diff(np.log(Ts))[0]
        assert abs(slope - gd.gradient_slope_limit(depth, width, value, gap)) < 1e-3


def test_gram_stable_rank_bound():
    """sr(X X^T) - 1 <= (E_b/E_m)^2 for random matrices with a mean component."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        T, d = rng.integers(2, 12), rng.integers(2, 12)
        x = rng.normal(size=(T, d)) * rng.uniform(0.01, 1) + rng.normal(size=d)
        lam = np.linalg.eigvalsh(x @ x.T)
        sr = np.sum(lam**2) / lam[-1] ** 2
        em, eb = _split(x)
        assert sr - 1 <= gd.stable_rank_gram_bound(eb / (em + eb)) * (1 + 1e-9) + 1e-12


def test_perp_energy_identity_on_isometric_input():
    """||A_perp X||_F^2 = d (||A||_F^2 - 1) for row-stochastic A and X X^T = d I."""
    rng = np.random.default_rng(2)
    T, d = 7, 9
    x = _isometric(rng, T, d)
    a = _markov(rng, T)
    assert math.isclose(np.sum(((a - 1 / T) @ x) ** 2), d * (np.sum(a**2) - 1), rel_tol=1e-12)


# ----------------------------------------------------------------------------- claims (quick)

IDS = ("GAP-5", "GAP-6", "GAP-7", "GAP-8")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, ClaimResult]:
    return run_quick_claims(tmp_path_factory, IDS)


def _exact(result: ClaimResult):
    """Comparisons of the exact theory that the claims decide on (role "exact"): not the
    LayerNorm approximation nor GAP-8's large-T edge law, and slopes only where a 5% relative
    resolution is meaningful (role "reference")."""
    return with_role(result.comparisons)


@pytest.mark.slow
@pytest.mark.parametrize("claim", IDS)
def test_reference_comparisons_are_the_reported_laws(results, claim):
    """Role "reference" marks exactly the LayerNorm approximation, the bulk-edge law and the
    fixed-d or small gradient slopes."""
    for c in results[claim].comparisons:
        reported = ("approx" in c.label or "bulk edge" in c.label
                    or ("slope" in c.label and (abs(c.prediction) < SLOPE_RESOLVED
                                                or c.params["scaling"].startswith("fixed"))))
        assert (c.role == "reference") == reported, (c.label, c.params, c.role)


@pytest.mark.slow
@pytest.mark.parametrize("claim", IDS)
def test_twins_rejected_and_verdict_follows(results, claim):
    r = results[claim]
    assert r.mutations and r.mutations_rejected, [m.label for m in r.mutations if m.passed]
    exact = _exact(r)
    assert exact
    # the claims are qualified only when the exact theory is confirmed by the comparisons
    exact_verdict = decide(exact, [])
    if r.verdict == "qualified":
        assert exact_verdict == "confirmed"
    else:
        assert r.verdict == exact_verdict


@pytest.mark.slow
def test_gap5_bound_and_layernorm_reported(results):
    r = results["GAP-5"]
    assert r.data["bound_checked"] > 0 and r.data["bound_violations"] == 0
    assert any("LayerNorm" in c.label for c in r.comparisons)


@pytest.mark.slow
def test_gap8_outlier_exact(results):
    assert results["GAP-8"].data["row_sum_error"] < 1e-12


@pytest.mark.slow
def test_gap8_bulk_edge_compared_with_twins(results):
    """The sqrt(1 + lambda^2) edge law is compared at every point away from the BBP threshold,
    and any comparison it passes has a rejected 10% twin."""
    r = results["GAP-8"]
    edge = with_role(r.comparisons, "reference")
    rows = r.data["edge_rows"]
    assert edge and len(edge) == sum(not row["skipped"] for row in rows)
    assert all(c.detectable_relative < 0.05 for c in edge)
    twins = with_role(r.mutations, "reference")
    assert len(twins) == sum(c.passed for c in edge) and not any(m.passed for m in twins)


def test_gap5_full_points_take_their_per_point_sample_counts() -> None:
    """The ``full`` grid's ``samples_at`` override reaches its point, and every override names a
    grid point (a typo would silently do nothing)."""
    from sim.claims.gap_depth import DEPTH_GRIDS, OPTIONS, gap5_points, grid_samples

    full = DEPTH_GRIDS["full"]
    assert all(opt in OPTIONS and T in full["T"] for opt, T in full["samples_at"])
    order, _ = gap5_points("full")
    names = [opt for opt in OPTIONS for _ in full["T"]]
    for name, p in zip(names, order, strict=True):
        want = full["samples_at"].get((name, p.config.T), grid_samples(full, p.config.T))
        assert p.samples == want
    assert sum(p.samples == full["samples_at"][("none", 512)] for p in order) == 1
