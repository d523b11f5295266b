"""Theory of the REM chapter: the derivations' internal checks, the generated evaluators, the
exact finite-T quadrature (REM-F) against independent mpmath evaluations and Monte Carlo of i.i.d.
Gaussian score rows, and the order-parameter recursion (REM-4, REM-5)."""

import math
from functools import cache

import mpmath
import numpy as np
import pytest
import sympy as sp

from theory import derive, predictions, rem

# ----------------------------------------------------------------------------- generated code


def test_generated_code_matches_fresh_derivation() -> None:
    path = derive.GENERATED_DIR / "rem.py"
    assert path.read_text() == derive.render("rem", rem.generated_functions()), \
        "run `sigprop derive` and commit theory/_generated/rem.py"


def test_laplace_identities() -> None:
    rem.verify_laplace_identities()


# ----------------------------------------------------------------------------- sympy facts


def test_relu_kernel_endpoints_and_price_theorem() -> None:
    c = rem.c
    f = rem.derive_relu_kernel()
    assert sp.simplify(f.subs(c, 1) - 1) == 0
    assert sp.simplify(f.subs(c, 0) - 1 / sp.pi) == 0
    # Price's theorem: f'(c)/2 is the orthant probability, 1/2 at c = 1 and 1/4 at c = 0
    assert sp.simplify(sp.diff(f, c).subs(c, 1) / 2 - sp.Rational(1, 2)) == 0
    assert sp.simplify(sp.diff(f, c).subs(c, 0) / 2 - sp.Rational(1, 4)) == 0


def test_pd_moments_reduce_to_one_minus_m() -> None:
    pd = rem.derive_pd_moment()
    assert sp.simplify(sp.gammasimp(pd.subs(rem.k, 2)) - (1 - rem.m)) == 0
    assert sp.simplify(sp.gammasimp(pd.subs(rem.k, 1)) - 1) == 0
    # k = 3: (1 - m)(2 - m)/2 from Gamma(3 - m) = (2 - m)(1 - m) Gamma(1 - m)
    assert sp.simplify(sp.gammasimp(pd.subs(rem.k, 3)) - (1 - rem.m) * (2 - rem.m) / 2) == 0


def test_pd_moment_evaluator_matches_the_derivation() -> None:
    """``pd_moment`` (gammaln; used for REM-2's Y3 law) against the sympy expression
    ``derive_ipr_moment_asymptotic`` on both sides of beta_c (LN'd tokens, q = 1, p = rho)."""
    expr = rem.derive_ipr_moment_asymptotic().subs({rem.q: 1, rem.p: rem.rho})
    for kk in (3, 4, 2.5):
        for rho in (0.0, 0.3):
            bc = float(rem._generated().beta_c(1.0, rho))
            for beta in (0.5 * bc, 0.99 * bc, 1.01 * bc, 2.0, 4.0):
                exact = float(expr.subs({rem.k: kk, rem.beta: beta, rem.rho: rho}).evalf(30))
                assert rem.pd_moment(kk, beta, rho) == pytest.approx(exact, rel=1e-12,
                                                                            abs=1e-300)


def test_entropy_vanishes_continuously_at_beta_c() -> None:
    gen = rem._generated()
    for rho in (0.0, 0.3, 0.7):
        bc = float(gen.beta_c(1.0, rho))
        assert float(gen.entropy_ratio_asymptotic(bc * (1 - 1e-9), 1.0, rho)) == \
            pytest.approx(0.0, abs=1e-8)
        assert float(gen.entropy_ratio_asymptotic(bc * (1 + 1e-9), 1.0, rho)) == 0.0
        assert float(gen.ipr_asymptotic(bc * (1 + 1e-9), 1.0, rho)) == pytest.approx(0, abs=1e-8)


def test_beta_c_matches_a_numerical_rem_free_energy() -> None:
    """Independent check of REM-1: maximise s(e) + beta e over the allowed energies numerically and
    find where the maximiser hits the edge (zero entropy)."""
    for q, p in ((1.0, 0.0), (1.0, 0.4), (2.0, 0.5)):
        j2 = q * (q - p)
        edge = math.sqrt(2 * j2)
        es = np.linspace(-edge, edge, 200001)
        s = 1 - es**2 / (2 * j2)

        def entropy_at(b: float, s=s, es=es) -> float:
            return float(s[np.argmax(s + b * es)])

        lo, hi = 0.01, 20.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if entropy_at(mid) > 1e-6 else (lo, mid)
        assert float(rem._generated().beta_c(q, p)) == pytest.approx(lo, rel=1e-3)
        b = 0.5 * lo
        assert float(rem._generated().entropy_ratio_asymptotic(b, q, p)) == \
            pytest.approx(entropy_at(b), abs=1e-4)


def test_cosine_map_asymptotic_is_the_map_at_the_asymptotic_ipr() -> None:
    gen = rem._generated()
    for beta, rho in ((3.0, 0.3), (2.5, 0.1), (1.0, 0.5)):
        y2 = float(gen.ipr_asymptotic(beta, 1.0, rho))
        with np.errstate(divide="ignore"):  # numpy.select evaluates both branches
            phi = float(gen.cosine_map_asymptotic(beta, rho))
        assert phi == pytest.approx(float(gen.cosine_map(rho, y2)), rel=1e-12)


def test_mobius_factor_is_the_attention_residual_ln_map() -> None:
    """REM-5 from the sublayer maps: post-LN attention + residual + LN multiplies u = rho/(1-rho)
    by the derived factor, for any ipr."""
    gen = rem._generated()
    for rho, y2, sv2, alpha in ((0.2, 0.0, 0.2, 1.0), (0.5, 0.3, 1.0, 0.7), (0.05, 0.9, 2.0, 3.0)):
        qq = alpha**2 + float(gen.attention_q(1.0, rho, y2, sv2))
        pp = alpha**2 * rho + float(gen.attention_p(1.0, rho, 0.0, sv2))
        u_new = (pp / qq) / (1 - pp / qq)
        assert u_new / (rho / (1 - rho)) == pytest.approx(
            float(gen.mobius_factor_post(y2, sv2, alpha)), rel=1e-12)


def test_alpha_attn_min_keeps_rho_at_rho_max() -> None:
    gen = rem._generated()
    depth, sv2, rho0, rho_max = 50, 0.5, 0.1, 0.9
    a = float(gen.alpha_attn_min(depth, sv2, rho0, rho_max))
    run = rem.recursion(depth, norm="post", beta=0.5, T=64, sigma_v2=sv2, alpha_attn=a,
                        mlp=False, rho0=rho0)
    assert run.cosine[-1] == pytest.approx(rho_max, rel=1e-10)
    run = rem.recursion(depth, norm="post", beta=0.5, T=64, sigma_v2=sv2, alpha_attn=0.9 * a,
                        mlp=False, rho0=rho0)
    assert run.cosine[-1] > rho_max + 1e-3  # mutation twin: a weaker residual overshoots
    large = rem.derive_alpha_attn_min_large_depth()
    lead = float(large.subs({rem.depth: 10**6, rem.sigma_v2: sv2, rem.rho: rho0,
                             rem.rho_max: rho_max}))
    exact = float(gen.alpha_attn_min(10**6, sv2, rho0, rho_max)) ** 2
    assert exact == pytest.approx(lead, rel=1e-5)


# ----------------------------------------------------------------------------- REM-F vs mpmath


@cache
def _mp_row(T: int, sigma: float) -> tuple[float, float]:
    """(E ipr, E entropy) by mpmath at 20 digits: Gauss-Legendre quadrature of the unshifted
    Laplace representations in z (inner, truncated at |z| = 10) and u = ln t (outer)."""
    mpmath.mp.dps = 20
    s = mpmath.mpf(sigma)
    norm = mpmath.sqrt(2 * mpmath.pi)
    cache: dict = {}

    def inner(u):
        if u not in cache:
            t = mpmath.exp(u)
            zc = -u / s  # where t e^{s z} = 1

            def quad(f, lo, hi):
                return mpmath.quad(f, sorted({lo, min(max(zc, lo), hi), hi}),
                                   method="gauss-legendre") / norm

            one_minus_l0 = quad(lambda z: -mpmath.expm1(-t * mpmath.exp(s * z))
                                * mpmath.exp(-z * z / 2), -10, 10)
            l2 = quad(lambda z: mpmath.exp(2 * s * z - t * mpmath.exp(s * z) - z * z / 2),
                      -10, 10 + 2 * s)
            mg = quad(lambda z: s * z * mpmath.exp(s * z - t * mpmath.exp(s * z) - z * z / 2),
                      -10, 10 + s)
            cache[u] = (1 - one_minus_l0, l2, mg)
        return cache[u]

    lt = math.log(T)
    c = lt + sigma**2 / 2 if sigma**2 <= 2 * lt else sigma * math.sqrt(2 * lt)
    pts = [-c - 40 - 4 * sigma, -c - 4, -c + 4, 8]

    def quad_u(f):
        return mpmath.quad(f, pts, method="gauss-legendre")

    ipr = T * quad_u(lambda u: mpmath.exp(2 * u) * inner(u)[1] * inner(u)[0] ** (T - 1))
    log_s = quad_u(lambda u: mpmath.exp(-mpmath.exp(u)) - inner(u)[0] ** T)
    gw = T * quad_u(lambda u: mpmath.exp(u) * inner(u)[2] * inner(u)[0] ** (T - 1))
    return float(ipr), float(log_s - gw)


MP_POINTS = [(16, 1.0, 0.2), (8, 3.0, 0.5)]


@pytest.mark.slow
@pytest.mark.parametrize("T,beta,rho", MP_POINTS)
def test_ipr_quadrature_matches_mpmath(T: int, beta: float, rho: float) -> None:
    exact, _ = _mp_row(T, rem.score_std(T, beta, 1.0, rho))
    got = float(rem.ipr_finite(T, beta, rho))
    assert got == pytest.approx(exact, rel=1e-8, abs=0)
    assert got * (1 + 1e-6) != pytest.approx(exact, rel=1e-8, abs=0)  # mutation twin


@pytest.mark.slow
@pytest.mark.parametrize("T,beta,rho", MP_POINTS)
def test_entropy_quadrature_matches_mpmath(T: int, beta: float, rho: float) -> None:
    _, exact = _mp_row(T, rem.score_std(T, beta, 1.0, rho))
    got = float(rem.entropy_finite(T, beta, rho))
    assert got == pytest.approx(exact, rel=1e-8, abs=0)
    assert got * (1 + 1e-6) != pytest.approx(exact, rel=1e-8, abs=0)
    ratio = predictions.get("remf_entropy_finite")(T=T, beta=beta, rho=rho)
    assert ratio == pytest.approx(exact / math.log(T), rel=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("T,beta,rho", MP_POINTS)
def test_cosine_maps_match_mpmath(T: int, beta: float, rho: float) -> None:
    y2, _ = _mp_row(T, rem.score_std(T, beta, 1.0, rho))
    plug_in = rho / ((1 - rho) * y2 + rho)
    ratio = (rho + (1 - rho) / T) / ((1 - rho) * y2 + rho)
    got = predictions.get("remf_cosine_map_finite")(T=T, beta=beta, rho=rho)
    assert got == pytest.approx(plug_in, rel=1e-8, abs=0)
    assert got * (1 + 1e-6) != pytest.approx(plug_in, rel=1e-8, abs=0)
    got = predictions.get("remf_cosine_ratio_finite")(T=T, beta=beta, rho=rho)
    assert got == pytest.approx(ratio, rel=1e-8, abs=0)


def _mp_two_tokens(sigma: float) -> dict[str, float]:
    """T = 2 in closed form: A = (sigmoid(D), sigmoid(-D)), D = g_1 - g_2 ~ N(0, 2 sigma^2);
    one mpmath integral over D at 25 digits (a route independent of the Laplace transforms)."""
    mpmath.mp.dps = 25
    sd = mpmath.sqrt(2) * sigma
    dens = lambda x: mpmath.npdf(x, 0, sd)

    def a(x):
        return 1 / (1 + mpmath.exp(-x))

    def moment(kk):
        return mpmath.quad(lambda x: (a(x) ** kk + a(-x) ** kk) * dens(x), [-40 * sd, 0, 40 * sd])

    ent = mpmath.quad(lambda x: -(a(x) * mpmath.log(a(x)) + a(-x) * mpmath.log(a(-x))) * dens(x),
                      [-40 * sd, 0, 40 * sd])
    return {"ipr": float(moment(2)), "y3": float(moment(3)), "entropy": float(ent),
            "ipr2": float(mpmath.quad(lambda x: (a(x) ** 2 + a(-x) ** 2) ** 2 * dens(x),
                                      [-40 * sd, 0, 40 * sd]))}


@pytest.mark.parametrize("sigma", [0.05, 0.7, 3.0, 12.0])
def test_two_tokens_match_closed_form(sigma: float) -> None:
    exact = _mp_two_tokens(sigma)
    row = rem.row_statistics(2, sigma)
    assert row.ipr == pytest.approx(exact["ipr"], rel=1e-10)
    assert row.entropy == pytest.approx(exact["entropy"], rel=1e-9)
    assert row.ipr_second_moment == pytest.approx(exact["ipr2"], rel=1e-10)
    assert rem.ipr_moment_exact(3, 2, sigma) == pytest.approx(exact["y3"], rel=1e-10)
    assert row.normalisation == pytest.approx(1.0, abs=1e-13)


def test_limits_and_special_cases() -> None:
    assert rem.row_statistics(8, 0.0).ipr == 1 / 8
    # small score_std: second order in the softmax, E ipr = (1 + (1 - 1/T) sd^2)/T and
    # E entropy = ln T - (1 - 1/T) sd^2/2, up to O(sd^4)
    for sd in (1e-8, 1e-3, 1e-2):
        tiny = rem.row_statistics(64, sd)
        assert tiny.ipr * 64 - 1 == pytest.approx((63 / 64) * sd**2, rel=1e-3, abs=1e-15)
        assert tiny.entropy - math.log(64) == pytest.approx(-(63 / 64) * sd**2 / 2, rel=1e-3,
                                                            abs=1e-15)
    assert rem.ipr_moment_exact(1, 64, 2.0) == pytest.approx(1.0, abs=1e-13)
    # E ipr^2 >= (E ipr)^2, E ipr <= 1, entropy in [0, ln T]
    for T, sd in ((16, 0.5), (256, 4.0), (4096, 9.0)):
        row = rem.row_statistics(T, sd)
        assert 1 / T < row.ipr < 1 and row.ipr_variance > 0 and 0 < row.entropy < math.log(T)
    with pytest.raises(ValueError, match="T=1"):
        rem.row_statistics(1, 1.0)
    with pytest.raises(ValueError, match="rho="):
        rem.ipr_finite(16, 1.0, 1.5)


def test_finite_t_approaches_the_asymptotic_theory() -> None:
    """As T grows the exact E ipr and S/ln T approach REM-1/REM-2 (slowly: corrections in
    1/sqrt(ln T)); the gap shrinks monotonically over 30 decades of T."""
    gen = rem._generated()
    for beta in (0.5, 1.0, 2.0, 3.0):
        asym_ipr = float(gen.ipr_asymptotic(beta, 1.0, 0.0))
        asym_ent = float(gen.entropy_ratio_asymptotic(beta, 1.0, 0.0))
        gaps = []
        for T in (2**6, 2**12, 2**24, 2**48, 2**96):
            row = rem.row_statistics(T, rem.score_std(T, beta))
            gaps.append((abs(row.ipr - asym_ipr), abs(row.entropy / math.log(T) - asym_ent)))
        gaps = np.array(gaps)
        assert np.all(np.diff(gaps, axis=0) < 0)
        assert gaps[-1, 0] < 0.35 * gaps[0, 0] and gaps[-1, 1] < 0.35 * gaps[0, 1]


def test_finite_t_y3_approaches_the_poisson_dirichlet_moment() -> None:
    """REM-2's E Y3 law: the exact finite-T E Y3 tends to the PD(beta_c/beta) moment (0 below
    beta_c), the gap shrinking monotonically over 30 decades of T."""
    for beta in (0.5, 1.0, 2.0, 3.0):
        pd = rem.pd_moment(3, beta, 0.0)
        gaps = [abs(rem.ipr_moment_exact(3, T, rem.score_std(T, beta)) - pd)
                for T in (2**6, 2**12, 2**24, 2**48, 2**96)]
        assert np.all(np.diff(gaps) < 0)
        assert gaps[-1] < 0.35 * gaps[0]


def test_evaluation_is_fast_and_vectorised() -> None:
    import time

    rem._grid.cache_clear()
    rem.row_statistics.cache_clear()
    start = time.perf_counter()
    table = rem.ipr_finite(np.array([16, 64, 256, 1024, 4096])[:, None],
                           np.array([0.5, 1.0, 1.41, 2.0, 3.0])[None, :])
    assert table.shape == (5, 5)
    assert time.perf_counter() - start < 25 * 0.5
    start = time.perf_counter()
    rem.row_statistics(4096, rem.score_std(4096, 5.0))
    assert time.perf_counter() - start < 0.5


# ----------------------------------------------------------------------------- REM-F vs Monte Carlo


def _score_rows(T: int, sigma: float, rows: int, seed: int) -> tuple[np.ndarray, ...]:
    """ipr, entropy and sum A^3 of ``rows`` softmax rows of i.i.d. N(0, sigma^2) scores."""
    rng = np.random.default_rng(seed)
    g = sigma * rng.standard_normal((rows, T))
    g -= g.max(axis=1, keepdims=True)
    w = np.exp(g)
    s = w.sum(axis=1, keepdims=True)
    a = w / s
    return (a * a).sum(axis=1), np.log(s[:, 0]) - (a * g).sum(axis=1), (a**3).sum(axis=1)


MC_POINTS = [(16, 1.0, 0.0), (64, 2.0, 0.0), (256, 3.0, 0.3), (512, 1.0, 0.0)]


@pytest.mark.parametrize("T,beta,rho", MC_POINTS)
def test_finite_t_predictions_match_monte_carlo(T: int, beta: float, rho: float) -> None:
    rows = 20000
    ipr, entropy, y3 = _score_rows(T, rem.score_std(T, beta, 1.0, rho), rows, seed=T)
    cases = [(ipr, predictions.get("remf_ipr_finite")(T=T, beta=beta, rho=rho)),
             (entropy / math.log(T), predictions.get("remf_entropy_finite")(T=T, beta=beta,
                                                                             rho=rho)),
             (y3, predictions.get("remf_ipr_moment_finite")(k=3, T=T, beta=beta, rho=rho)),
             (ipr**2, rem.row_statistics(T, rem.score_std(T, beta, 1.0, rho)).ipr_second_moment)]
    for sample, pred in cases:
        mean, se = sample.mean(), sample.std(ddof=1) / math.sqrt(rows)
        assert abs(mean - pred) < 5 * se, (mean, pred, se)
        assert abs(mean - 1.1 * pred) > 5 * se  # mutation twin: 10% off is detected


@pytest.mark.parametrize("T,beta", [(64, 2.0), (512, 1.0)])
def test_asymptotic_theory_misses_at_finite_t(T: int, beta: float) -> None:
    """The asymptotic E ipr is many standard errors off where REM-F is within them."""
    ipr, _, _ = _score_rows(T, rem.score_std(T, beta), 20000, seed=7 + T)
    se = ipr.std(ddof=1) / math.sqrt(len(ipr))
    asym = predictions.get("rem2_ipr_asymptotic")(beta=beta, rho=0.0)
    assert abs(ipr.mean() - asym) > 20 * se


def _mp_overlap_two_tokens(sigma: float, r: float) -> float:
    """T = 2 overlap E[a(D) a(D') + a(-D) a(-D')], a = sigmoid, (D, D') bivariate normal of
    variance 2 sigma^2 and correlation r: nested mpmath Gauss-Legendre at 20 digits."""
    mpmath.mp.dps = 20
    sd = mpmath.sqrt(2) * sigma
    cond_sd = sd * mpmath.sqrt(1 - r * r)

    def a(x):
        return 1 / (1 + mpmath.exp(-x))

    def inner(x):
        mu = r * x
        f = lambda y: (a(x) * a(y) + a(-x) * a(-y)) * mpmath.npdf(y, mu, cond_sd)
        return mpmath.quad(f, [mu - 12 * cond_sd, mu, mu + 12 * cond_sd],
                           method="gauss-legendre")

    return float(mpmath.quad(lambda x: inner(x) * mpmath.npdf(x, 0, sd), [-12 * sd, 0, 12 * sd],
                             method="gauss-legendre"))


@pytest.mark.slow
def test_overlap_matches_mpmath_for_two_tokens() -> None:
    exact = _mp_overlap_two_tokens(1.2, 0.4)
    got = rem.row_overlap(2, 1.2, 0.4)
    assert got == pytest.approx(exact, rel=1e-9, abs=0)
    assert got * (1 + 1e-6) != pytest.approx(exact, rel=1e-9, abs=0)


def test_overlap_limits() -> None:
    for T, sd in ((2, 0.7), (64, 4.0), (1024, 1.3)):
        assert rem.row_overlap(T, sd, 0.0) == 1 / T
        assert rem.row_overlap(T, sd, 1e-9) == pytest.approx(1 / T, rel=1e-7)
        assert rem.row_overlap(T, sd, 1.0) == pytest.approx(rem.row_statistics(T, sd).ipr,
                                                            rel=1e-12)
        values = [rem.row_overlap(T, sd, r) for r in (0.1, 0.5, 0.9)]
        assert 1 / T < values[0] < values[1] < values[2] < rem.row_statistics(T, sd).ipr


def _attention_gram(T: int, beta: float, rho: float, samples: int, seed: int,
                    correlated: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample token averages (q_S, p_S)/sigma_v2 of one attention layer at d -> inf on LN'd
    simplex tokens (Gram C = (1-rho) I + rho 1 1^T). Scores: i.i.d. rows, or the d -> inf law
    of a random transformer, covariance beta^2 ln T C (x) C, sampled as M Z M with M = C^{1/2}."""
    rng = np.random.default_rng(seed)
    kappa = beta * math.sqrt(math.log(T))
    gamma = (math.sqrt(1 - rho + rho * T) - math.sqrt(1 - rho)) / T
    root = math.sqrt(1 - rho) * np.eye(T) + gamma * np.ones((T, T))
    z = rng.standard_normal((samples, T, T))
    a = kappa * (root @ z @ root if correlated else math.sqrt(1 - rho) * z)
    a = np.exp(a - a.max(axis=2, keepdims=True))
    a /= a.sum(axis=2, keepdims=True)
    gram = (1 - rho) * np.einsum("nts,nus->ntu", a, a) + rho  # A C A^T, rows of A sum to 1
    diag = np.einsum("ntt->n", gram) / T
    return diag, (gram.sum(axis=(1, 2)) - diag * T) / (T * (T - 1))


def _ratio_of_means(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    ratio = num.mean() / den.mean()
    grad = np.array([1 / den.mean(), -ratio / den.mean()])
    return ratio, math.sqrt(grad @ np.cov(num, den) @ grad / len(num))


def test_cosine_ratio_matches_monte_carlo_of_independent_rows() -> None:
    """E p_S / E q_S with independent rows of i.i.d. scores: the exact ratio, not the plug-in."""
    T, beta, rho = 32, 1.5, 0.3
    diag, off = _attention_gram(T, beta, rho, 3000, seed=11, correlated=False)
    ratio, se = _ratio_of_means(off, diag)
    pred = predictions.get("remf_cosine_ratio_finite")(T=T, beta=beta, rho=rho)
    assert abs(ratio - pred) < 5 * se
    assert abs(ratio - 1.1 * pred) > 5 * se
    plug_in = predictions.get("remf_cosine_map_finite")(T=T, beta=beta, rho=rho)
    assert abs(ratio - plug_in) > 5 * se  # the neglected overlap 1/T is visible at T = 32


@pytest.mark.parametrize("T,beta,rho", [(32, 1.5, 0.3), (64, 3.0, 0.6)])
def test_cosine_ratio_matches_monte_carlo_of_transformer_scores(T: int, beta: float,
                                                                rho: float) -> None:
    """With the d -> inf score law of a random transformer (rows correlated rho) the exact
    overlap is needed: the correlated ratio agrees, the independent-row ratio does not."""
    diag, off = _attention_gram(T, beta, rho, 3000, seed=T, correlated=True)
    ratio, se = _ratio_of_means(off, diag)
    pred = predictions.get("remf_cosine_ratio_correlated")(T=T, beta=beta, rho=rho)
    assert abs(ratio - pred) < 5 * se
    assert abs(ratio - 1.1 * pred) > 5 * se
    independent = predictions.get("remf_cosine_ratio_finite")(T=T, beta=beta, rho=rho)
    assert abs(ratio - independent) > 5 * se


# ----------------------------------------------------------------------------- REM-4 recursion


def test_relu_mlp_map_matches_monte_carlo() -> None:
    """The MLP map is exact in expectation at any width: sample weights for two fixed tokens."""
    rng = np.random.default_rng(3)
    d, dff, draws, sw2, sb2 = 32, 32, 20000, 2.0, 0.1
    qq, pp = 1.3, 0.4
    x = np.zeros((2, d))
    x[0, 0] = math.sqrt(qq * d)
    x[1, 0] = pp / qq * x[0, 0]
    x[1, 1] = math.sqrt(qq * d - x[1, 0] ** 2)
    gram = np.empty((draws, 2))
    for i in range(draws):
        w1 = rng.standard_normal((d, dff)) * math.sqrt(sw2 / d)
        w2 = rng.standard_normal((dff, d)) * math.sqrt(sw2 / dff)
        b1 = rng.standard_normal(dff) * math.sqrt(sb2)
        b2 = rng.standard_normal(d) * math.sqrt(sb2)
        y = np.maximum(x @ w1 + b1, 0) @ w2 + b2
        gram[i] = (y[0] @ y[0] + y[1] @ y[1]) / (2 * d), y[0] @ y[1] / d
    gen = rem._generated()
    pred = [float(gen.mlp_q(qq, sw2, sb2)), float(gen.mlp_p(qq, pp, sw2, sb2))]
    for j in range(2):
        mean, se = gram[:, j].mean(), gram[:, j].std(ddof=1) / math.sqrt(draws)
        assert abs(mean - pred[j]) < 5 * se
        assert abs(mean - 1.1 * pred[j]) > 5 * se


def test_recursion_below_beta_c_follows_the_mobius_map() -> None:
    depth, sv2, alpha, rho0 = 30, 0.3, 1.5, 0.05
    run = rem.recursion(depth, norm="post", beta=0.5, T=128, sigma_v2=sv2, alpha_attn=alpha,
                        mlp=False, rho0=rho0)
    u = (rho0 / (1 - rho0)) * (1 + sv2 / alpha**2) ** np.arange(depth + 1)
    np.testing.assert_allclose(run.cosine, u / (1 + u), rtol=1e-12)
    np.testing.assert_allclose(run.q, 1.0)


def test_gain_control_freezes_rho_below_beta_c_and_lowers_it_above() -> None:
    below = rem.recursion(20, norm="post", beta=0.5, T=128, sigma_v2=1.0, mlp=False,
                          gain_control=True, rho0=0.3)
    np.testing.assert_allclose(below.cosine, 0.3, rtol=1e-12)
    above = rem.recursion(1, norm="post", beta=3.0, T=128, sigma_v2=1.0, alpha_attn=1.0,
                          mlp=False, gain_control=True, rho0=0.3)
    gen = rem._generated()
    y2 = float(gen.ipr_asymptotic(3.0, 1.0, 0.3))
    u1 = above.cosine[1] / (1 - above.cosine[1])
    assert u1 / (0.3 / 0.7) == pytest.approx(float(gen.mobius_factor_gap(y2, 1.0, 1.0)))
    assert above.cosine[1] < 0.3


def test_pre_ln_recursion_scales_q_minus_p() -> None:
    """Pre-LN, no MLP, ipr = 0: q - p scales by alpha^2 and u by 1 + sigma_v2/(alpha^2 q)."""
    sv2, alpha = 0.5, 1.2
    run = rem.recursion(5, norm="pre", beta=0.5, T=64, sigma_v2=sv2, alpha_attn=alpha, mlp=False,
                        rho0=0.2)
    gen = rem._generated()
    for layer in range(5):
        qq, pp = run.q[layer], run.p[layer]
        assert run.q[layer + 1] - run.p[layer + 1] == pytest.approx(alpha**2 * (qq - pp))
        u, u_next = pp / (qq - pp), run.p[layer + 1] / (run.q[layer + 1] - run.p[layer + 1])
        assert u_next / u == pytest.approx(float(gen.mobius_factor_pre(qq, sv2, alpha)))


def test_recursion_modes_and_errors() -> None:
    kw = dict(norm="post", beta=2.5, T=256, sigma_v2=0.2, sigma_w2=0.2, sigma_b2=4e-4,
              rho0=0.1)
    asym = rem.recursion(6, **kw)
    same = rem.recursion(6, **kw, ipr=lambda qq, pp: float(
        rem._generated().ipr_asymptotic(2.5, qq, pp)))
    np.testing.assert_allclose(asym.cosine, same.cosine, rtol=1e-14)
    fin = rem.recursion(6, **kw, ipr="finite")
    assert fin.cosine.shape == (7,) and np.all(np.isfinite(fin.cosine))
    assert not np.allclose(fin.cosine, asym.cosine, rtol=1e-3)
    for norm in ("pre", "none"):
        run = rem.recursion(6, **{**kw, "norm": norm}, ipr="finite")
        assert np.all(np.isfinite(run.cosine)) and np.all(run.cosine <= 1 + 1e-12)
    pred = predictions.get("rem4_cosine_recursion")
    out = pred(depth=6, norm="post", beta=2.5, T=256, sigma_v2=0.2, sigma_w2=0.2,
               sigma_b2=4e-4, alpha_attn=1.0, alpha_mlp=1.0, mlp=True, gap="keep", rho=0.1)
    np.testing.assert_allclose(out, asym.cosine)
    with pytest.raises(ValueError, match="norm="):
        rem.recursion(3, norm="mid", beta=1.0, T=16)
    with pytest.raises(ValueError, match="ipr="):
        rem.recursion(3, beta=1.0, T=16, ipr="exact")


def test_registry() -> None:
    names = ["rem1_beta_c", "rem1_entropy_asymptotic", "rem2_ipr_asymptotic",
             "rem2_moment_asymptotic", "rem3_cosine_map", "rem3_cosine_map_asymptotic",
             "rem4_cosine_recursion", "rem5_mobius_factor", "rem5_alpha_attn_min",
             "remf_ipr_finite", "remf_ipr_moment_finite", "remf_entropy_finite",
             "remf_cosine_map_finite", "remf_cosine_ratio_finite", "remf_cosine_recursion",
             "remf_overlap_finite", "remf_cosine_ratio_correlated"]
    for name in names:
        assert predictions.get(name).claim == ("REM-F" if name.startswith("remf") else
                                               f"REM-{name[3]}")
        assert name.startswith(("remf", "rem4")) or predictions.get(name).latex
    moment = predictions.get("rem2_moment_asymptotic")
    bc = float(predictions.get("rem1_beta_c")(rho=0.2))
    assert float(moment(k=2, beta=2 * bc, rho=0.2)) == pytest.approx(0.5)
    assert float(moment(k=2, beta=0.9 * bc, rho=0.2)) == 0.0
    with pytest.raises(ValueError, match="takes T, beta, rho"):
        predictions.get("remf_ipr_finite")(T=16)
