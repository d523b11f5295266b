"""PM-2, PM-3: theory.power_random against independent checks (sympy, mpmath, NumPy Monte
Carlo by a separate code path), the engine's F convention the claims rely on, and the claims
end to end under the quick profile."""

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from conftest import run_quick_claims

from sim.claims import ClaimResult, decide
from sim.claims import power_random as claims
from theory import power_random as pr


@pytest.mark.parametrize("n, k", [(2, 1), (5, 1), (16, 1), (16, 2), (31, 2), (64, 1)])
def test_random_alignment_formula(n, k):
    """Log-gamma evaluator = sympy expression = direct integral of sqrt(b) Beta(k/2, (n-k)/2)."""
    expr = pr.derive_random_alignment().subs({pr.n: n, pr.k: k})
    a, b = k / 2, (n - k) / 2
    integral = mpmath.quad(lambda t: mpmath.sqrt(t) * t ** (a - 1) * (1 - t) ** (b - 1),
                           [0, 1]) / mpmath.beta(a, b)
    value = pr.random_alignment(n, k)
    assert value == pytest.approx(float(expr), rel=1e-12)
    assert value == pytest.approx(float(integral), rel=1e-9)
    if k == 1:  # the brief's form Gamma(d/2)/(sqrt(pi) Gamma((d+1)/2))
        assert value == pytest.approx(math.gamma(n / 2) / (math.sqrt(math.pi)
                                                            * math.gamma((n + 1) / 2)))


def test_random_alignment_monte_carlo():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200000, 12))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for k in (1, 2):
        vals = np.linalg.norm(x[:, :k], axis=1)
        se = vals.std() / math.sqrt(vals.size)
        assert abs(vals.mean() - pr.random_alignment(12, k)) < 5 * se


def test_real_eigenvalue_count_and_two_by_two():
    """EKS against mpmath, E_1 = 1 and E_2 = 2 P(real at d = 2) = sqrt(2) (the two derivations
    agree); P(real, d = 2) against NumPy draws."""
    for dim in (1, 2, 3, 7, 40):
        ref = 0.5 + mpmath.sqrt(2) * mpmath.hyp2f1(1, -0.5, dim, 0.5) / mpmath.beta(dim, 0.5)
        assert pr.expected_real_eigenvalues(dim) == pytest.approx(float(ref), rel=1e-12)
    assert pr.expected_real_eigenvalues(1) == pytest.approx(1.0)
    assert pr.expected_real_eigenvalues(2) == pytest.approx(2 * pr.two_by_two_real_probability())
    assert sp.simplify(pr.derive_two_by_two_real_probability() - 1 / sp.sqrt(2)) == 0
    rng = np.random.default_rng(2)
    ev = np.linalg.eigvals(rng.standard_normal((100000, 2, 2)) * 0.3)
    p = np.mean(ev[:, 0].imag == 0)
    assert abs(p - pr.two_by_two_real_probability()) < 5 * math.sqrt(0.25 / 100000)
    counts = np.sum(np.linalg.eigvals(rng.standard_normal((20000, 8, 8))).imag == 0, axis=1)
    assert abs(counts.mean() - pr.expected_real_eigenvalues(8)) < 5 * counts.std() / math.sqrt(
        counts.size)


def test_symmetric_tilt_by_eigenvalues():
    """one_layer_tilt (eig of M, projection of M x) against the eigenvalue formula
    E|mu_1 g_1|/sqrt(sum mu_k^2 g_k^2) from GOE spectra (eigvalsh, separate draws); and the
    large-d closed form approached from below as d grows."""
    rng = np.random.default_rng(3)
    dim, sv = 12, 1.5
    g = rng.standard_normal((40000, dim, dim)) * math.sqrt(sv / dim)
    mu = 1 + np.linalg.eigvalsh((g + np.swapaxes(g, 1, 2)) / math.sqrt(2))
    top = np.argmax(np.abs(mu), axis=1)
    z = rng.standard_normal(mu.shape)
    num = np.abs(mu[np.arange(mu.shape[0]), top] * z[np.arange(mu.shape[0]), top])
    vals = num / np.sqrt(np.sum(mu**2 * z**2, axis=1))
    tilt = pr.one_layer_tilt(dim, sv, "symmetric", samples=20000, seed=11)
    assert abs(tilt.mean - vals.mean()) < 5 * math.hypot(tilt.se, vals.std() / math.sqrt(
        vals.size))
    assert tilt.mean > pr.random_alignment(dim, 1) * 1.5
    limit = pr.tilt_large_d_symmetric(dim, sv)
    assert limit == pytest.approx(math.sqrt(2 / (math.pi * dim)) * (1 + 2 * math.sqrt(sv))
                                  / math.sqrt(1 + sv))


def test_gap_ratio_conventions():
    real, r = pr.gap_ratio(np.array([3.0, 1 + 2j, 1 - 2j, 0.5]))
    assert real and r == pytest.approx(math.sqrt(5) / 3)
    real, r = pr.gap_ratio(np.array([2 + 2j, 2 - 2j, -1.0, 0.1]))
    assert not real and r == pytest.approx(1 / math.sqrt(8))


def test_engine_value_scaling_and_convention():
    """The claims use F(sigma_v2) = sqrt(sigma_v2) F(1) for the same draws, F = W_V^T, and
    symmetric F symmetric."""
    base = claims.stack_config(8, 2, 2, 1.0, "random", "l2", "uniform")
    f1 = claims.value_matrix(base, 3, 5)
    f2 = claims.value_matrix(base.replace(sigma_v2=2.0), 3, 5)
    np.testing.assert_allclose(f2, math.sqrt(2.0) * f1, rtol=1e-12)
    fs = claims.value_matrix(base.replace(value="symmetric"), 3, 5)
    np.testing.assert_allclose(fs, fs.T, atol=1e-14)
    ev = claims.engine_spectra(8, 4, seed=3)
    for i in range(4):
        np.testing.assert_allclose(np.sort_complex(ev[i]),
                                   np.sort_complex(np.linalg.eigvals(claims.value_matrix(
                                       claims.stack_config(8, 2, 1, 1.0, "random", "l2",
                                                           "uniform"), 3, i))), atol=1e-10)


def test_predictions_registered():
    from theory.predictions import get

    assert get("pm2_random_alignment")(n=16, k=1) == pytest.approx(pr.random_alignment(16, 1))
    assert get("pm3_real_top_two_by_two")() == pytest.approx(2 ** -0.5)
    assert get("pm3_gap_exponent")() == -0.5


# ----------------------------------------------------------------------------- claims (quick)

IDS = ("PM-2", "PM-3")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, ClaimResult]:
    return run_quick_claims(tmp_path_factory, IDS)


@pytest.mark.slow
@pytest.mark.parametrize("claim", IDS)
def test_twins_rejected_and_verdict_follows(results, claim):
    r = results[claim]
    assert r.mutations and r.mutations_rejected, [m.label for m in r.mutations if m.passed]
    exact = [c for c in r.comparisons if "slope" not in c.label]
    exact_verdict = decide(exact, [])
    if r.verdict in ("confirmed", "qualified"):
        assert exact_verdict == "confirmed"
    if r.verdict == "confirmed":
        assert all(c.resolved and c.passed for c in r.comparisons)
    if exact_verdict == "refuted":
        assert r.verdict == "refuted"


@pytest.mark.slow
def test_pm3_data_and_figures(results):
    from sim.figures_power_random import FIGURES

    r = results["PM-3"]
    for row in r.data["coverage"]:
        assert 0 <= row["separated"] <= row["real_top"] <= 1
    for claim_id, fn in FIGURES.values():
        fig = fn(results[claim_id])
        assert fig.axes
