"""PM-2, PM-3: theory.power_random against independent checks (sympy, mpmath, NumPy Monte
Carlo by a separate code path), the engine's F convention the claims rely on, and the claims
end to end under the quick profile."""

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from conftest import run_quick_claims

from sim.claims import ClaimResult, decide, with_role
from sim.claims import power_random as claims
from sim.profiles import grid_samples
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
    """one_layer_tilt (conditional t-integral) against the eigenvalue formula
    E|mu_1 g_1|/sqrt(sum mu_k^2 g_k^2) from GOE spectra (eigvalsh, separate draws); and the
    large-d closed form."""
    rng = np.random.default_rng(3)
    dim, sv = 12, 1.5
    g = rng.standard_normal((40000, dim, dim)) * math.sqrt(sv / dim)
    mu = 1 + np.linalg.eigvalsh((g + np.swapaxes(g, 1, 2)) / math.sqrt(2))
    top = np.argmax(np.abs(mu), axis=1)
    z = rng.standard_normal(mu.shape)
    num = np.abs(mu[np.arange(mu.shape[0]), top] * z[np.arange(mu.shape[0]), top])
    vals = num / np.sqrt(np.sum(mu**2 * z**2, axis=1))
    tilt = pr.one_layer_tilt(dim, sv, "symmetric", samples=4000, seed=11)
    assert abs(tilt.mean - vals.mean()) < 5 * math.hypot(tilt.se, vals.std() / math.sqrt(
        vals.size))
    assert tilt.mean > pr.random_alignment(dim, 1) * 1.5
    limit = pr.tilt_large_d_symmetric(dim, sv)
    assert limit == pytest.approx(math.sqrt(2 / (math.pi * dim)) * (1 + 2 * math.sqrt(sv))
                                  / math.sqrt(1 + sv))


def test_gaussian_norm_mean():
    """E||g||, g ~ N(0, diag(a, b)) in R^2: the elliptic form against mpmath's integral over the
    angle (E||g|| = sqrt(pi/2) (1/2pi) int sqrt(a cos^2 + b sin^2)) and the isotropic and
    degenerate limits (Rayleigh mean sqrt(pi a/2), half-normal sqrt(2 a/pi))."""
    for a, b in ((1.0, 0.3), (2.5, 2.4), (0.7, 1e-6)):
        ref = math.sqrt(math.pi / 2) * mpmath.quad(
            lambda th, a=a, b=b: mpmath.sqrt(a * mpmath.cos(th)**2 + b * mpmath.sin(th)**2),
            [0, mpmath.pi / 2, mpmath.pi, 3 * mpmath.pi / 2, 2 * mpmath.pi]) / (2 * math.pi)
        assert pr.gaussian_norm_mean(np.array(a), np.array(b)) == pytest.approx(float(ref),
                                                                               rel=1e-12)
    assert pr.gaussian_norm_mean(np.array(2.0), np.array(2.0)) == pytest.approx(
        math.sqrt(math.pi))
    assert pr.gaussian_norm_mean(np.array(2.0), np.array(0.0)) == pytest.approx(
        math.sqrt(4 / math.pi))
    g = np.random.default_rng(6).standard_normal((400000, 2)) * np.sqrt([1.7, 0.4])
    r = np.linalg.norm(g, axis=1)
    assert abs(r.mean() - pr.gaussian_norm_mean(np.array(1.7), np.array(0.4))) < 5 * r.std(
    ) / math.sqrt(r.size)


def _draws_with_both_kinds(dim: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Ginibre and GOE ``M = I + F`` at ``sigma_v2 = 2`` with their top bases, including a real
    and a complex Ginibre top."""
    m = np.concatenate([pr.draw_value_matrices(dim, 2.0, "random", 12, rng),
                        pr.draw_value_matrices(dim, 2.0, "symmetric", 2, rng)]) + np.eye(dim)
    bases = pr.top_bases(m)
    complex_top = np.any(bases[:, :, 1] != 0, axis=1)
    assert complex_top[:12].any() and not complex_top[:12].all() and not complex_top[12:].any()
    return m, bases


def test_top_bases_orthonormal_invariant():
    """Each basis spans an invariant subspace of M (M B = B R) with orthonormal columns, and
    the line case agrees with |cos| to the top eigenvector."""
    m, bases = _draws_with_both_kinds(10, np.random.default_rng(9))
    for mi, b in zip(m, bases, strict=True):
        cols = b[:, np.linalg.norm(b, axis=0) > 0]
        np.testing.assert_allclose(cols.T @ cols, np.eye(cols.shape[1]), atol=1e-12)
        mb = mi @ cols
        np.testing.assert_allclose(cols @ (cols.T @ mb), mb, atol=1e-10)


def test_conditional_tilt_quadrature_converged():
    """The trapezoidal rule in v = ln(t tr C) against a finer, wider rule (relative 1e-10), the
    symmetric shortcut against the general path and, for one M, against scipy quad in t."""
    from scipy import integrate

    rng = np.random.default_rng(10)
    for dim in (3, 16, 64, 200):
        m, bases = _draws_with_both_kinds(dim, rng)
        value = pr.conditional_tilt(m, bases)
        old = pr.TILT_V, pr.TILT_STEP
        try:
            pr.TILT_V, pr.TILT_STEP = (-80.0, 80.0), old[1] / 4
            fine = pr.conditional_tilt(m, bases)
        finally:
            pr.TILT_V, pr.TILT_STEP = old
        np.testing.assert_allclose(value, fine, rtol=1e-10)
        mu = np.linalg.eigvalsh(m[12:])  # GOE: one_layer_tilt's shortcut C = M^2, V = e_top
        vv = np.zeros((2, dim, 2))
        vv[[0, 1], np.argmax(np.abs(mu), axis=1), 0] = 1.0
        np.testing.assert_allclose(pr.spectral_tilt(mu**2, vv), value[12:], rtol=1e-10)
        if dim == 16:
            mi, b, quad_value = m[0], bases[0], value[0]
    s2, u = np.linalg.eigh(mi @ mi.T)
    vv = u.T @ b

    def integrand(t):
        cov = vv.T @ np.diag(s2 / (1 + 2 * t * s2)) @ vv
        lo, hi = np.linalg.eigvalsh(cov)
        return (pr.gaussian_norm_mean(np.array(hi), np.array(max(lo, 0.0)))
                / math.sqrt(math.pi * t) * math.exp(-0.5 * np.sum(np.log1p(2 * t * s2))))

    ref = integrate.quad(integrand, 0, np.inf, epsabs=0, epsrel=1e-10, limit=400)[0]
    assert quad_value == pytest.approx(ref, rel=1e-8)


def test_conditional_tilt_brute_force_with_twin():
    """For fixed M (real top, complex top, GOE), E[||B^T M x||/||M x|| | M] against 200000
    Gaussian x (NumPy); the 10% twin is rejected."""
    rng = np.random.default_rng(12)
    m, bases = _draws_with_both_kinds(8, rng)
    complex_top = np.any(bases[:, :, 1] != 0, axis=1)
    picks = [int(np.argmin(complex_top)), int(np.argmax(complex_top)), m.shape[0] - 1]
    exact = pr.conditional_tilt(m[picks], bases[picks])
    for value, i in zip(exact, picks, strict=True):
        y = rng.standard_normal((200000, 8)) @ m[i].T
        vals = np.linalg.norm(y @ bases[i], axis=1) / np.linalg.norm(y, axis=1)
        se = vals.std(ddof=1) / math.sqrt(vals.size)
        assert abs(vals.mean() - value) < 5 * se, (i, vals.mean(), value, se)
        assert abs(vals.mean() - claims.MUTATION * value) > 5 * se


def _tilt_brute_force(dim: int, sigma_v2: float, value: str, samples: int,
                      rng: np.random.Generator) -> tuple[float, float]:
    """The former evaluation: mean and SE of ||Proj_S M x||/||M x|| over joint draws of (M, x),
    the top subspace from sim.alignment.top_subspace (the engine's code path)."""
    from sim.alignment import alignment, top_subspace

    m = pr.draw_value_matrices(dim, sigma_v2, value, samples, rng) + np.eye(dim)
    x = rng.standard_normal((samples, dim))
    vals = np.array([alignment((mi @ xi)[None, :], top_subspace(mi))[0]
                     for mi, xi in zip(m, x, strict=True)])
    return float(vals.mean()), float(vals.std(ddof=1) / math.sqrt(samples))


@pytest.mark.parametrize("value", ["random", "symmetric"])
def test_one_layer_tilt_against_joint_monte_carlo(value):
    """one_layer_tilt (exact in x) against joint (M, x) draws within their SE; its own SE over
    M alone is smaller than the joint one at equal draws."""
    dim, sv, n_draws = 10, 2.0, 6000
    mean, se = _tilt_brute_force(dim, sv, value, n_draws, np.random.default_rng(13))
    tilt = pr.one_layer_tilt(dim, sv, value, samples=n_draws, seed=5)
    assert abs(tilt.mean - mean) < 5 * math.hypot(se, tilt.se)
    assert tilt.se < se and tilt.samples == n_draws


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


def test_baseline_dims_match_top_subspace():
    """The claim's batched top dimensions (eigenvalues only) equal those of
    sim.alignment.top_subspace on the engine's layer-1 F, M and P M; per-ensemble samples."""
    from sim.alignment import top_subspace

    cfg = claims.stack_config(8, 2, 2, 2.0, "random", "l2", "uniform")
    dims = claims._baseline_dims(cfg, 40, 3, chunk=16)
    centring = np.eye(8) - 1.0 / 8
    for i in range(40):
        f = claims.value_matrix(cfg, 3, i)
        m = np.eye(8) + f
        for name, mat in (("align_F", f), ("align_M", m), ("align_centred", centring @ m)):
            assert dims[name][i] == top_subspace(mat).shape[1]
    assert set(dims["align_M"]) == {1, 2}
    g = {"samples": {"random": 5, "symmetric": 3}}
    assert grid_samples(g, "symmetric") == 3 and grid_samples({"samples": 4}, "random") == 4


def test_predictions_registered():
    from theory.predictions import get

    assert get("pm2_random_alignment")(n=16, k=1) == pytest.approx(pr.random_alignment(16, 1))
    assert get("pm3_real_top_two_by_two")() == pytest.approx(2 ** -0.5)
    assert get("pm3_gap_exponent")() == -0.5
    assert get("pm2_one_layer_tilt")(d=8, sigma_v2=2.0, value="symmetric") == pytest.approx(
        pr.one_layer_tilt(8, 2.0, "symmetric").mean)


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
    exact = with_role(r.comparisons)
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


# ----------------------------------------------------------------------------- PM-3 densities

@pytest.mark.parametrize("dim", [2, 3, 5, 16, 64, 256])
def test_density_identities(dim):
    """int rho_r = E #real (EKS) and int rho_r + 2 int rho_c = d, both by the theory's polar
    quadrature around the centre (any sigma_v2) and, at small d, by scipy quad in (x, y)."""
    from scipy import integrate

    e_real = pr.expected_real_eigenvalues(dim)
    for sv in (0.5, 1.0, 2.0):
        lv = pr.level_intensity(dim, sv)
        n_r, n_c = float(lv.beyond(0.0, "real")), float(lv.beyond(0.0, "pairs"))
        assert n_r == pytest.approx(e_real, abs=1e-8)
        assert n_r + 2 * n_c == pytest.approx(dim, abs=1e-8)
    if dim <= 5:
        real = integrate.quad(lambda t: pr.real_density(t, dim), -np.inf, np.inf,
                              epsabs=1e-12)[0]
        lim = math.sqrt(dim) + 9
        pairs = integrate.dblquad(lambda yy, xx: pr.complex_density(xx, yy, dim), -lim, lim,
                                  0, lim, epsabs=1e-11)[0]
        assert real == pytest.approx(e_real, abs=1e-8)
        assert real + 2 * pairs == pytest.approx(dim, abs=1e-8)


@pytest.mark.parametrize("dim", [3, 6])
def test_densities_match_sympy(dim):
    """The stable evaluators (incomplete gammas, erfcx) equal the sympy closed forms (EKS;
    Edelman's truncated exponential series) at a few points."""
    real_expr = pr.derive_real_density().subs(pr.d, dim)
    complex_expr = pr.derive_complex_density().subs(pr.d, dim).doit()
    for xv, yv in ((0.3, 0.2), (-1.7, 1.1), (2.5, 0.05)):
        assert pr.real_density(xv, dim) == pytest.approx(
            float(real_expr.subs(pr.x, xv).evalf(30)), rel=1e-12)
        assert pr.complex_density(xv, yv, dim) == pytest.approx(
            float(complex_expr.subs({pr.x: xv, pr.y: yv}).evalf(30)), rel=1e-12)


def test_level_counts_monte_carlo_with_twin():
    """Mean numbers of real eigenvalues and of conjugate pairs of I + F with |mu| > t (NumPy
    Ginibre draws, d = 8, sigma_v2 = 1.5) agree with the exact densities; the 10% twin is
    rejected."""
    dim, sv, n_draws = 8, 1.5, 20000
    rng = np.random.default_rng(8)
    mu = 1 + np.linalg.eigvals(rng.standard_normal((n_draws, dim, dim)) * math.sqrt(sv / dim))
    z_crit = 5.0
    for t in (0.8, 1.5, 2.2):
        beyond = np.abs(mu) > t
        for pred, hits in zip(pr.level_counts(dim, sv, t),
                              (beyond & (mu.imag == 0), beyond & (mu.imag > 0)), strict=True):
            counts = hits.sum(axis=1)
            se = counts.std(ddof=1) / math.sqrt(n_draws)
            assert abs(counts.mean() - pred) < z_crit * se, (t, counts.mean(), pred)
            if pred > 0.5:
                assert abs(counts.mean() - 1.1 * pred) > z_crit * se, (t, pred)


def _poisson_two_by_two_independent() -> float:
    """P(top real), d = 2, Poisson approximation, evaluated independently with scipy quad in
    Cartesian coordinates of lambda around the centre c = -sqrt 2 (sigma_v2 = 1):
    levels beyond s: N(s) = int_{|x-c|>s} rho_r + int int_{|z-c|>s, y>0} rho_c."""
    from scipy import integrate

    dim, c = 2, -math.sqrt(2.0)
    lim = 12.0

    def n_real(s):
        return (integrate.quad(lambda t: pr.real_density(t, dim), c + s, lim)[0]
                + integrate.quad(lambda t: pr.real_density(t, dim), -lim, c - s)[0])

    def n_pairs(s):
        inside = integrate.dblquad(lambda rr, ph: rr * pr.complex_density(
            c + rr * math.cos(ph), rr * math.sin(ph), dim), 0, math.pi, 0, s, epsabs=1e-8)[0]
        total = (dim - pr.expected_real_eigenvalues(dim)) / 2
        return total - inside

    def integrand(s):
        g_r = pr.real_density(c + s, dim) + pr.real_density(c - s, dim)
        return g_r * math.exp(-n_real(s) - n_pairs(s))

    return integrate.quad(integrand, 0, 10, limit=100, epsabs=1e-7)[0]


def test_poisson_two_by_two_against_independent_quadrature():
    """The panel quadrature against scipy quad; the Poisson number differs from the exact
    1/sqrt 2 (independent levels are only an approximation)."""
    value = pr.poisson_top_real(2, 1.0)
    assert value == pytest.approx(_poisson_two_by_two_independent(), abs=1e-5)
    assert abs(value - pr.two_by_two_real_probability()) > 0.01


def test_poisson_probabilities_consistent():
    """P(real, r <= 1) = P(top real); the gap CDF increases to 1 - P(no level) = 1 -
    exp(-N(0)); the grid evaluator
    matches the scalar one; predictions are registered."""
    from theory.predictions import get

    dim, sv = 16, 2.0
    assert pr.poisson_real_separated(dim, sv, 1.0) == pytest.approx(
        pr.poisson_top_real(dim, sv), abs=1e-10)
    grid = np.linspace(0, 1, 21)
    cdf = pr.poisson_gap_cdf_grid(dim, sv, grid)
    no_level = math.exp(-float(pr.level_intensity(dim, sv).beyond(0.0)))  # Poisson: no level
    assert np.all(np.diff(cdf) >= -1e-12) and cdf[-1] == pytest.approx(1 - no_level, abs=1e-10)
    assert cdf[14] == pytest.approx(pr.poisson_gap_cdf(dim, sv, grid[14]), abs=1e-12)
    assert get("pm3_real_top")(d=dim, sigma_v2=sv) == pr.poisson_top_real(dim, sv)
    assert get("pm3_gap_cdf")(d=dim, sigma_v2=sv, rho=0.9) == pr.poisson_gap_cdf(dim, sv, 0.9)
    assert get("pm3_real_separated")(d=dim, sigma_v2=sv, rho=0.9) == pytest.approx(
        pr.poisson_real_separated(dim, sv, 0.9))


def test_ks_helpers():
    """ks_distance on a grid CDF equals scipy's uniform KS test; the exact critical distance
    lies below the DKW bound sqrt(ln(2/alpha)/(2 n)), close to it at alpha = 1e-6."""
    from scipy import stats

    sample = np.random.default_rng(4).uniform(size=500) ** 1.2
    grid = np.linspace(0, 1, 2001)
    assert claims.ks_distance(sample, grid, grid) == pytest.approx(
        stats.kstest(sample, "uniform").statistic, abs=1e-12)
    exact, dkw = claims.ks_critical(1000, 1), math.sqrt(math.log(2 / 1e-6) / 2000)
    assert 0.95 * dkw < exact <= dkw
    assert claims.ks_critical(1000, 4) > exact


def _beta_grid_law():
    """A Beta(2, 3) law on [0, 1] given on a grid, like the predicted CDF of r."""
    from scipy import stats

    grid = np.linspace(0.0, 1.0, claims.CDF_GRID + 1)
    return grid, stats.beta(2, 3).cdf(grid), stats.beta(2, 3)


def test_ks_test_calibrated():
    """Samples from the grid law itself: the KS test at per-test rate 0.05 rejects ~5% of 400
    replicates (binomial 4.5 sigma band)."""
    grid, cdf, law = _beta_grid_law()
    rng = np.random.default_rng(11)
    n, reps, rate = 300, 400, 0.05
    crit = claims.ks_critical(n, 1, family_rate=rate)
    rejected = sum(claims.ks_distance(law.rvs(n, random_state=rng), grid, cdf) > crit
                   for _ in range(reps))
    assert abs(rejected / reps - rate) < 4.5 * math.sqrt(rate * (1 - rate) / reps)


def test_ks_shift_twin_rejected():
    """The claim's twin, the law shifted 10% in its argument (F(1.1 r)), is rejected at the
    family rate for a sample size of the quick profile, while the law itself is not."""
    grid, cdf, law = _beta_grid_law()
    sample = law.rvs(2500, random_state=np.random.default_rng(12))
    shifted = np.interp(np.clip(claims.MUTATION * grid, 0, 1), grid, cdf)
    crit = claims.ks_critical(sample.size, 20)
    assert claims.ks_distance(sample, grid, cdf) <= crit
    assert claims.ks_distance(sample, grid, shifted) > crit
