"""REM-F at finite head dimension (theory/rem_key_query.py): the overlap of rows with unequal
score variances against rem.row_overlap and mpmath, the chi2 and Wishart mixtures against an
adaptive quadrature, their own refinement and Monte Carlo of Gaussian scores with a random
Wishart covariance, the d_k -> inf limit, the registry and input validation."""

import math
import time

import mpmath
import numpy as np
import pytest
from scipy import integrate, special, stats

from theory import predictions, rem
from theory import rem_key_query as kq

# ----------------------------------------------------------------------------- row_overlap_general


@pytest.mark.parametrize("T", [2, 16, 256, 4096])
def test_general_overlap_equals_rem_for_equal_stds(T: int) -> None:
    for s in (0.1, 0.7, 2.5, 7.0):
        for r in (0.02, 0.3, 0.8, 0.999, 1.0):
            assert kq.row_overlap_general(T, s, s, r) == pytest.approx(
                rem.row_overlap(T, s, r), rel=1e-9, abs=0)


def test_general_overlap_limits_and_symmetry() -> None:
    for T, s1, s2 in ((2, 0.7, 3.0), (64, 4.0, 1.5), (1024, 1.3, 0.2)):
        assert kq.row_overlap_general(T, s1, s2, 0.0) == 1 / T  # independent rows
        assert kq.row_overlap_general(T, 0.0, s2, 0.7) == 1 / T  # a uniform row
        assert kq.row_overlap_general(T, s1, s2, 1e-9) == pytest.approx(1 / T, rel=1e-7)
        for r in (-0.9, -0.2, 0.4, 1.0):
            assert kq.row_overlap_general(T, s1, s2, r) == kq.row_overlap_general(T, s2, s1, r)
        # positive association raises the overlap, negative lowers it, monotonically in r
        values = [kq.row_overlap_general(T, s1, s2, r) for r in (-1.0, -0.5, 0.0, 0.5, 1.0)]
        assert np.all(np.diff(values) > 0) and values[0] < 1 / T < values[-1]
    for T, s in ((2, 0.7), (64, 4.0), (1024, 1.3)):  # correlation 1, equal stds: the same row
        assert kq.row_overlap_general(T, s, s, 1.0) == pytest.approx(
            rem.row_statistics(T, s).ipr, rel=1e-12)


def _conditioned_on(row: int, T: int, s1: float, s2: float, r: float) -> float:
    """The double Laplace integral with the shared Gaussian part taken to be all of row ``row``
    (1 or 2), the other row smoothed over its own part at each node: a different route through
    the quadrature to the same number (the row with the larger shared part goes first, where
    the shared variable runs on its lattice)."""
    sign = 1 if r > 0 else -1
    own = math.sqrt(1 - r * r)
    rows = [(s1, abs(r) * s1, s1 * own), (s2, abs(r) * s2, s2 * own)]
    rows[row - 1] = (rows[row - 1][0], rows[row - 1][0], 0.0)
    rows.sort(key=lambda row_: -row_[1])
    stds, shared, own = zip(*rows, strict=True)
    assert shared[0] >= kq._HERMITE_BELOW
    return kq._overlap_integral(T, stds, shared, own, sign, kq._STEP)


@pytest.mark.parametrize("T,s1,s2,r", [(16, 3.0, 1.0, 0.2), (64, 2.0, 1.6, -0.6),
                                       (256, 0.9, 0.6, 0.5), (8, 5.0, 4.0, -0.3)])
def test_general_overlap_does_not_depend_on_the_decomposition(T: int, s1: float, s2: float,
                                                              r: float) -> None:
    """Conditioning on either row, or splitting the shared part evenly (the default when
    |r| s1 <= s2), gives the same integral."""
    value = kq.row_overlap_general(T, s1, s2, r)
    assert _conditioned_on(2, T, s1, s2, r) == pytest.approx(value, rel=1e-11)
    assert _conditioned_on(1, T, s1, s2, r) == pytest.approx(value, rel=1e-11)


def test_general_overlap_step_convergence() -> None:
    """Halving the ln a, ln b lattice step (and the shared-part step with it) changes nothing."""
    cases = [(2, 0.5, 0.4, 0.5), (16, 3.0, 1.0, -0.9), (1024, 7.0, 2.0, 0.95),
             (1024, 0.2, 4.0, -0.3), (4096, 10.0, 1.5, 0.5), (64, 0.1, 0.05, 0.6)]
    for T, s1, s2, r in cases:
        fine = kq.row_overlap_general(T, s1, s2, r, _step=kq._STEP / 2)
        assert kq.row_overlap_general(T, s1, s2, r) == pytest.approx(fine, rel=1e-11, abs=0)


def _mp_overlap_two_tokens(s1: float, s2: float, r: float) -> float:
    """T = 2: overlap = E[a(u) a(u') + a(-u) a(-u')], a = logistic, (u, u') the score differences,
    bivariate normal with covariance 2 [[s1^2, r s1 s2], [r s1 s2, s2^2]]: nested mpmath
    Gauss-Legendre at 15 digits (u' given u is normal; |r| = 1 is one integral)."""
    with mpmath.workdps(15):
        sd1, sd2 = mpmath.sqrt(2) * s1, mpmath.sqrt(2) * s2
        rr = mpmath.mpf(r)
        cond = sd2 * mpmath.sqrt(1 - rr * rr)

        def a(x):
            return 1 / (1 + mpmath.exp(-x))

        def pair(x, y):
            return a(x) * a(y) + a(-x) * a(-y)

        def inner(x):
            mu = rr * sd2 / sd1 * x
            if cond == 0:
                return pair(x, mu)
            return mpmath.quad(lambda y: pair(x, y) * mpmath.npdf(y, mu, cond),
                               [mu - 12 * cond, mu, mu + 12 * cond], method="gauss-legendre")

        return float(mpmath.quad(lambda x: inner(x) * mpmath.npdf(x, 0, sd1),
                                 [-12 * sd1, 0, 12 * sd1], method="gauss-legendre"))


@pytest.mark.slow
@pytest.mark.parametrize("s1,s2,r", [(3.0, 1.0, -0.9), (0.7, 2.5, -0.4), (5.0, 0.8, 0.99),
                                     (2.0, 0.5, -1.0), (0.15, 0.1, 0.6)])
def test_general_overlap_matches_mpmath_for_two_tokens(s1: float, s2: float, r: float) -> None:
    exact = _mp_overlap_two_tokens(s1, s2, r)
    got = kq.row_overlap_general(2, s1, s2, r)
    assert got == pytest.approx(exact, rel=1e-8, abs=0)
    assert got * (1 + 1e-6) != pytest.approx(exact, rel=1e-8, abs=0)  # mutation twin


def test_general_overlap_is_fast() -> None:
    kq._overlap.cache_clear()
    s = rem.score_std(1024, 2.0, 1.0, 0.3)
    start = time.perf_counter()
    for r in (0.3, 0.6, -0.4):
        kq.row_overlap_general(1024, s, 0.8 * s, r)
    assert (time.perf_counter() - start) / 3 < 0.25  # ~15 ms on an idle core


# ----------------------------------------------------------------------------- quadrature rules


def test_gamma_rules_integrate_polynomials() -> None:
    """Gauss-Laguerre (shape >= 8) is exact for cubics; the log-trapezoid (small shapes)
    converges geometrically in the step."""
    def moment_errors(shape: float, level: int) -> np.ndarray:
        x, w = kq._gamma_expectation_rule(shape, level)
        exact = [1.0, shape, shape * (shape + 1), shape * (shape + 1) * (shape + 2)]
        return np.abs([float(w @ x**k) / e - 1 for k, e in enumerate(exact)])

    for shape in (8.0, 32.0, 2048.0):
        for level in (0, 3):
            assert np.all(moment_errors(shape, level) < 1e-12)
    for shape in (0.5, 4.0):
        assert np.all(moment_errors(shape, 5) < 1e-11)
        assert np.max(moment_errors(shape, 1)) > 1e-9  # a coarse step is visibly worse
    x, w = kq._gamma_rule(12, 3.5)  # same nodes and (normalised) weights as scipy's
    x0, w0 = special.roots_genlaguerre(12, 2.5)
    np.testing.assert_allclose(x, x0, rtol=1e-14)
    np.testing.assert_allclose(w, w0 / w0.sum(), rtol=1e-10, atol=1e-300)


def test_wishart_rule_moments() -> None:
    """The product rule (folded to v >= 0, so exact for functions symmetric in the two rows)
    reproduces the first and second moments of W/d_k, W ~ Wishart_2(d_k, C):
    Cov(W_ij, W_kl) = d_k (C_ik C_jl + C_il C_jk)."""
    for d_k, rho in ((1, 0.4), (5, 0.0), (16, 0.3), (64, 0.8)):
        w11, w22, w12, w = kq._wishart_nodes(d_k, rho, 4, drop=0.0)
        assert w.sum() == pytest.approx(1.0, abs=1e-13)
        got = [w @ (w11 + w22) / 2, w @ w12, w @ (w11**2 + w22**2) / 2, w @ (w11 * w22),
               w @ w12**2, w @ ((w11 + w22) * w12) / 2]
        exact = [1.0, rho, 1 + 2 / d_k, 1 + 2 * rho**2 / d_k, rho**2 + (1 + rho**2) / d_k,
                 rho + 2 * rho / d_k]
        assert got == pytest.approx(exact, rel=1e-10, abs=1e-14)


# ----------------------------------------------------------------------------- one row


@pytest.mark.parametrize("T,d_k,sigma", [(16, 8, 2.8), (256, 24, 4.5), (64, 3, 1.2)])
def test_chi2_mixture_matches_adaptive_quadrature(T: int, d_k: int, sigma: float) -> None:
    """E_V of the row statistics against scipy.integrate.quad over the chi2_{d_k}/d_k density."""
    got = kq.key_query_row_statistics(T, d_k, sigma)
    law = stats.chi2(d_k, scale=1 / d_k)
    hi = law.isf(1e-17)
    for field in ("ipr", "entropy", "ipr_second_moment"):
        f = lambda v, field=field: getattr(rem.row_statistics(T, sigma * math.sqrt(v)),
                                           field) * law.pdf(v)
        exact, err = integrate.quad(f, 0, hi, epsabs=0, epsrel=1e-12, limit=500,
                                    points=[1.0])
        value = getattr(got, field)
        assert value == pytest.approx(exact, rel=1e-8, abs=0)
        assert value * (1 + 1e-6) != pytest.approx(exact, rel=1e-8, abs=0)
    assert got.normalisation == pytest.approx(1.0, abs=1e-12)


def test_row_mixture_refinement_converges() -> None:
    sigma = rem.score_std(64, 2.0, 1.0, 0.3)
    for d_k in (4, 16, 64, 1024):
        stats_, level = kq._row_mixture(64, d_k, sigma, kq._MIXTURE_TOL)
        finer = kq._row_level(64, d_k, sigma, level + 2)
        got = [stats_.ipr, stats_.ipr_second_moment, stats_.entropy, stats_.normalisation]
        assert got == pytest.approx(list(finer), rel=1e-10)


def test_row_limits() -> None:
    T, sigma = 64, 2.5
    assert kq.key_query_row_statistics(T, math.inf, sigma) == rem.row_statistics(T, sigma)
    assert kq.key_query_row_statistics(T, None, sigma) == rem.row_statistics(T, sigma)
    assert kq.key_query_row_statistics(T, 8, 0.0).ipr == 1 / T
    # finite d_k moves E ipr by O(1/d_k) (here down: E ipr is concave in the score variance)
    base = rem.row_statistics(T, sigma).ipr
    gaps = [kq.key_query_row_statistics(T, d_k, sigma).ipr - base for d_k in (64, 256, 4096)]
    assert gaps[0] < gaps[1] < gaps[2] < 0
    assert gaps[1] / gaps[2] == pytest.approx(16, rel=0.05)
    assert float(kq.ipr_key_query(T, math.inf, 1.3, 0.2)) == float(rem.ipr_finite(T, 1.3, 0.2))


# ----------------------------------------------------------------------------- two rows


def test_overlap_limits() -> None:
    T, beta, rho = 16, 2.0, 0.3
    sigma = rem.score_std(T, beta, 1.0, rho)
    assert kq.key_query_overlap(T, math.inf, sigma, rho) == rem.row_overlap(T, sigma, rho)
    assert kq.key_query_overlap(T, 16, 0.0, rho) == 1 / T
    assert float(kq.overlap_key_query(T, 8, beta, 1.0)) == 1 / T  # identical tokens: sigma = 0
    # the finite-d_k correction is O(1/d_k)
    base = rem.row_overlap(T, sigma, rho)
    gaps = [kq.key_query_overlap(T, d_k, sigma, rho) - base for d_k in (1024, 4096, 16384)]
    assert gaps[0] > gaps[1] > gaps[2] > 0
    assert gaps[0] / gaps[1] == pytest.approx(4, rel=0.02)
    assert gaps[1] / gaps[2] == pytest.approx(4, rel=0.01)


def _check_wishart_convergence(T: int, d_k: int, beta: float, rho: float, more: int) -> None:
    sigma = rem.score_std(T, beta, 1.0, rho)
    value, level = kq._overlap_mixture(T, d_k, sigma, rho, kq._MIXTURE_TOL)
    assert kq.key_query_overlap(T, d_k, sigma, rho) == value
    finer = kq._overlap_level(T, d_k, sigma, rho, level + more)
    assert value == pytest.approx(finer, rel=1e-9, abs=0)


def test_wishart_rule_converges() -> None:
    """More nodes than the adaptive rule chose change the result by < 1e-9."""
    _check_wishart_convergence(16, 256, 2.0, 0.3, more=1)


@pytest.mark.slow
@pytest.mark.parametrize("T,d_k,beta,rho", [(16, 32, 2.0, 0.3), (64, 64, 1.0, 0.0),
                                            (16, 16, 3.0, 0.6)])
def test_wishart_rule_converges_further(T: int, d_k: int, beta: float, rho: float) -> None:
    """Two levels more nodes than the adaptive rule chose change the result by < 1e-9."""
    _check_wishart_convergence(T, d_k, beta, rho, more=2)


@pytest.mark.slow
def test_wishart_rule_converges_at_small_d_k() -> None:
    """d_k = 4: the log-trapezoid rule for the trace."""
    _check_wishart_convergence(8, 4, 1.0, 0.3, more=1)


def _wishart_scores(T: int, d_k: int, sigma: float, rho: float, pairs: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Score rows (pairs x 2 x T): W = Gram matrix of two N(0, C (x) I_{d_k}) vectors, then T
    i.i.d. score pairs N(0, sigma^2 W/d_k) (drawn directly, not through attention)."""
    g1 = rng.standard_normal((pairs, d_k))
    g2 = rho * g1 + math.sqrt(1 - rho * rho) * rng.standard_normal((pairs, d_k))
    w11, w22, w12 = (g1 * g1).sum(1), (g2 * g2).sum(1), (g1 * g2).sum(1)
    l11 = np.sqrt(w11)  # Cholesky of W
    l21, l22 = w12 / l11, np.sqrt(np.maximum(w22 - (w12 / l11) ** 2, 0.0))
    z1, z2 = rng.standard_normal((pairs, T)), rng.standard_normal((pairs, T))
    scale = sigma / math.sqrt(d_k)
    return scale * l11[:, None] * z1, scale * (l21[:, None] * z1 + l22[:, None] * z2)


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.slow
def test_key_query_predictions_match_monte_carlo() -> None:
    T, d_k, beta, rho, pairs = 16, 8, 2.0, 0.3, 20000
    sigma = rem.score_std(T, beta, 1.0, rho)
    a1, a2 = _wishart_scores(T, d_k, sigma, rho, pairs, np.random.default_rng(2024))
    p1, p2 = _softmax(a1), _softmax(a2)
    overlap, ipr = (p1 * p2).sum(1), (p1 * p1).sum(1)
    cases = [(overlap, kq.key_query_overlap(T, d_k, sigma, rho, tol=1e-6),
              rem.row_overlap(T, sigma, rho)),
             (ipr, kq.key_query_row_statistics(T, d_k, sigma).ipr,
              rem.row_statistics(T, sigma).ipr)]
    for sample, pred, d_inf in cases:
        mean, se = sample.mean(), sample.std(ddof=1) / math.sqrt(pairs)
        assert abs(mean - pred) < 5 * se, (mean, pred, se)
        assert abs(mean - 1.1 * pred) > 5 * se  # mutation twin: 10% off is detected
        assert abs(mean - d_inf) > 5 * se  # the d -> inf theory misses at d_k = 8


# ----------------------------------------------------------------------------- evaluators


def test_evaluators_broadcast_and_registry() -> None:
    table = kq.ipr_key_query(np.array([16, 64])[:, None], np.array([16.0, np.inf])[None, :],
                             1.5, 0.2)
    assert table.shape == (2, 2)
    assert table[1, 1] == float(rem.ipr_finite(64, 1.5, 0.2))
    args = dict(T=16, d_k=256, beta=1.5, rho=0.3)
    expected = {"remf_ipr_key_query": kq.ipr_key_query(**args),
                "remf_entropy_key_query": kq.entropy_ratio_key_query(**args),
                "remf_overlap_key_query": kq.overlap_key_query(**args),
                "remf_cosine_ratio_key_query": kq.cosine_ratio_key_query(**args)}
    for name, value in expected.items():
        pred = predictions.get(name)
        assert pred.claim == "REM-F" and pred.params == ("T", "d_k", "beta", "rho")
        assert pred.latex and "d_k" in pred.assumptions
        assert float(pred(**args)) == value
    y2, o = expected["remf_ipr_key_query"], expected["remf_overlap_key_query"]
    assert expected["remf_cosine_ratio_key_query"] == pytest.approx(
        (0.3 + 0.7 * o) / (0.3 + 0.7 * y2), rel=1e-14)
    stats_ = kq.key_query_row_statistics(16, 256, rem.score_std(16, 1.5, 1.0, 0.3))
    assert expected["remf_entropy_key_query"] == stats_.entropy / math.log(16)
    assert float(kq.ipr_variance_key_query(**args)) == stats_.ipr_variance
    inf = dict(args, d_k=math.inf)
    d_inf = dict(T=16, beta=1.5, rho=0.3)
    assert float(kq.overlap_key_query(**inf)) == float(rem.overlap_finite(**d_inf))
    assert float(kq.cosine_ratio_key_query(**inf)) == float(rem.cosine_ratio_correlated(**d_inf))
    assert float(kq.entropy_ratio_key_query(**inf)) == float(rem.entropy_ratio_finite(**d_inf))


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="T=1"):
        kq.ipr_key_query(1, 8, 1.0)
    with pytest.raises(ValueError, match="d_k=0"):
        kq.ipr_key_query(16, 0, 1.0)
    with pytest.raises(ValueError, match="d_k=2.5"):
        kq.overlap_key_query(16, 2.5, 1.0, 0.2)
    with pytest.raises(ValueError, match="d_k=nan"):
        kq.key_query_overlap(16, math.nan, 1.0, 0.2)
    with pytest.raises(ValueError, match="beta=-1"):
        kq.entropy_ratio_key_query(16, 8, -1.0)
    with pytest.raises(ValueError, match="rho=1.5"):
        kq.cosine_ratio_key_query(16, 8, 1.0, 1.5)
    with pytest.raises(ValueError, match="rho=-0.1"):
        kq.ipr_key_query(16, 8, 1.0, -0.1)
    with pytest.raises(ValueError, match="rho=2"):
        kq.key_query_overlap(16, 8, 1.0, 2.0)
    with pytest.raises(ValueError, match="score_std=-1"):
        kq.key_query_row_statistics(16, 8, -1.0)
    with pytest.raises(ValueError, match="correlation=1.5"):
        kq.row_overlap_general(16, 1.0, 1.0, 1.5)
    with pytest.raises(ValueError, match="std_2=inf"):
        kq.row_overlap_general(16, 1.0, math.inf, 0.5)
    with pytest.raises(ValueError, match="std_1=-0.5"):
        kq.row_overlap_general(16, -0.5, 1.0, 0.5)
    with pytest.raises(ValueError, match="takes T, d_k, beta, rho"):
        predictions.get("remf_overlap_key_query")(T=16, beta=1.0, rho=0.2)


# ----------------------------------------------------------------------------- higher moments


def _mp_moment_two_tokens(kk: int, d_k: int, sigma: float) -> float:
    """T = 2: ``Y_k = a(u)^k + a(-u)^k`` (``a`` logistic) with the score difference
    ``u = sigma sqrt(2) X``, ``X = Z sqrt(V)``, ``V ~ chi2_{d_k}/d_k``: ``X`` is variance-gamma,
    density ``2 (|x|/sqrt(d_k))^nu K_nu(sqrt(d_k) |x|)/(sqrt(2 pi) Gamma(d_k/2) (2/d_k)^{d_k/2})``,
    ``nu = (d_k - 1)/2``. One mpmath integral over ``x`` at 15 digits (no chi2 rule, no Laplace
    transform)."""
    with mpmath.workdps(15):
        n = mpmath.mpf(d_k)
        nu = (n - 1) / 2
        c = 2 / (mpmath.sqrt(2 * mpmath.pi) * mpmath.gamma(n / 2) * (2 / n) ** (n / 2))
        dens = lambda x: c * (x / mpmath.sqrt(n)) ** nu * mpmath.besselk(nu, mpmath.sqrt(n) * x)
        sd = mpmath.sqrt(2) * sigma
        a = lambda u: 1 / (1 + mpmath.exp(-u))
        norm = 2 * mpmath.quad(dens, [0, 1, 10, mpmath.inf])
        assert abs(norm - 1) < 1e-12
        return float(2 * mpmath.quad(lambda x: dens(x) * (a(sd * x) ** kk + a(-sd * x) ** kk),
                                     [0, 1, 10, mpmath.inf]))


@pytest.mark.parametrize("kk,d_k,sigma", [(3, 1, 1.5), (3, 2, 3.0), (4, 4, 6.0), (3, 16, 0.7),
                                          (5, 16, 4.0)])
def test_moment_mixture_matches_mpmath_for_two_tokens(kk: int, d_k: int, sigma: float) -> None:
    exact = _mp_moment_two_tokens(kk, d_k, sigma)
    got = kq.key_query_ipr_moment(kk, 2, d_k, sigma)
    assert got == pytest.approx(exact, rel=1e-8, abs=0)
    assert got * (1 + 1e-6) != pytest.approx(exact, rel=1e-8, abs=0)  # mutation twin


def test_moment_mixture_limits_and_refinement() -> None:
    """k = 2 is E ipr; d_k -> inf is rem.ipr_moment_exact with an O(1/d_k) correction; k = 1 is
    the normalisation; a finer chi2 rule changes nothing; Y_k decreases in k."""
    T, beta, rho = 64, 2.0, 0.3
    sigma = rem.score_std(T, beta, 1.0, rho)
    for d_k in (3, 16, 64, 1024):
        assert kq.key_query_ipr_moment(2, T, d_k, sigma) == pytest.approx(
            kq.key_query_row_statistics(T, d_k, sigma).ipr, rel=1e-9, abs=0)
        assert kq.key_query_ipr_moment(1, T, d_k, sigma) == pytest.approx(1.0, abs=1e-11)
        value, level = kq._moment_mixture(3.0, T, d_k, sigma, kq._MIXTURE_TOL)
        assert value == pytest.approx(kq._moment_level(3.0, T, d_k, sigma, level + 2), rel=1e-9)
        moments = [kq.key_query_ipr_moment(k, T, d_k, sigma) for k in (2, 3, 4, 6)]
        assert np.all(np.diff(moments) < 0)
    assert float(kq.ipr_moment_key_query(2, T, 64, beta, rho)) == pytest.approx(
        float(kq.ipr_key_query(T, 64, beta, rho)), rel=1e-9, abs=0)
    base = rem.ipr_moment_exact(3, T, sigma)
    assert kq.key_query_ipr_moment(3, T, math.inf, sigma) == base
    assert float(kq.ipr_moment_key_query(3, T, math.inf, beta, rho)) == float(
        rem.ipr_moment_finite(3, T, beta, rho))
    gaps = [kq.key_query_ipr_moment(3, T, d_k, sigma) - base for d_k in (256, 1024, 4096)]
    assert abs(gaps[0]) > abs(gaps[1]) > abs(gaps[2]) > 0
    assert gaps[0] / gaps[1] == pytest.approx(4, rel=0.05)
    assert gaps[1] / gaps[2] == pytest.approx(4, rel=0.02)
    assert kq.key_query_ipr_moment(3, T, 8, 0.0) == pytest.approx(1 / T**2, rel=1e-15)


def _key_query_rows(T: int, d_k: int, beta: float, rho: float, rows: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Softmax rows (rows x T) of real key-query attention: simplex tokens
    ``x_t = sqrt(d) (sqrt(rho) e_0 + sqrt(1 - rho) e_{t+1})`` in ``d = T + 1`` dimensions, fresh
    ``W_Q, W_K`` (``d x d_k``, entries ``N(0, beta sqrt(ln T)/d)``) per row, query token 0,
    scores ``(x_0 W_Q) . (x_s W_K)/sqrt(d_k)``."""
    d = T + 1
    x = np.zeros((T, d))
    x[:, 0] = math.sqrt(rho)
    x[np.arange(T), np.arange(1, T + 1)] = math.sqrt(1 - rho)
    x *= math.sqrt(d)
    qk = math.sqrt(beta * math.sqrt(math.log(T)) / d)
    wq = qk * rng.standard_normal((rows, d, d_k))
    wk = qk * rng.standard_normal((rows, d, d_k))
    g = np.einsum("i,rij->rj", x[0], wq)
    keys = np.einsum("si,rij->rsj", x, wk)
    return _softmax(np.einsum("rj,rsj->rs", g, keys) / math.sqrt(d_k))


@pytest.mark.slow
@pytest.mark.parametrize("T,d_k,beta,rho", [(16, 8, 2.0, 0.3), (32, 4, 3.0, 0.0)])
def test_moment_matches_monte_carlo_of_key_query_rows(T: int, d_k: int, beta: float,
                                                      rho: float) -> None:
    rows = 20000
    a = _key_query_rows(T, d_k, beta, rho, rows, np.random.default_rng(T * d_k))
    for kk in (3, 4):
        sample = (a**kk).sum(axis=1)
        pred = float(predictions.get("remf_ipr_moment_key_query")(k=kk, T=T, d_k=d_k, beta=beta,
                                                                  rho=rho))
        d_inf = float(rem.ipr_moment_finite(kk, T, beta, rho))
        mean, se = sample.mean(), sample.std(ddof=1) / math.sqrt(rows)
        assert abs(mean - pred) < 5 * se, (kk, mean, pred, se)
        assert abs(mean - 1.1 * pred) > 5 * se  # mutation twin: 10% off is detected
        assert abs(mean - d_inf) > 5 * se  # the d -> inf theory misses at small d_k


def test_moment_registry_and_validation() -> None:
    pred = predictions.get("remf_ipr_moment_key_query")
    assert pred.claim == "REM-F" and pred.params == ("k", "T", "d_k", "beta", "rho")
    assert pred.latex and "d_k" in pred.assumptions
    table = pred(k=np.array([2.0, 3.0])[:, None], T=16, d_k=np.array([16.0, np.inf])[None, :],
                 beta=1.5, rho=0.2)
    assert table.shape == (2, 2)
    assert table[0, 0] == pytest.approx(float(kq.ipr_key_query(16, 16, 1.5, 0.2)), rel=1e-9)
    assert table[1, 1] == float(rem.ipr_moment_finite(3, 16, 1.5, 0.2))
    with pytest.raises(ValueError, match="k=0.5"):
        kq.ipr_moment_key_query(0.5, 16, 8, 1.0)
    with pytest.raises(ValueError, match="d_k=0"):
        kq.ipr_moment_key_query(3, 16, 0, 1.0)
    with pytest.raises(ValueError, match="rho=1.5"):
        kq.ipr_moment_key_query(3, 16, 8, 1.0, 1.5)
    with pytest.raises(ValueError, match="takes k, T, d_k, beta, rho"):
        pred(T=16, d_k=8, beta=1.0, rho=0.2)
