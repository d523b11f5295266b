"""``kernels.observe``'s spectral observables against NumPy ``eigvalsh`` of the Gram matrix.

``observe`` gets ``lambda_max`` by Lanczos and the numerical rank by an inertia count
(``sim.linalg``) for Gram matrices of side ``n >= LANCZOS_MIN_N``; these tests pin the results to
the eigenvalue definitions: stable rank to ``1e-12`` relative, gram stable rank to ``1e-12``
relative, numerical rank exactly, on random, LayerNorm-centred (rank ``n - 1``), collapsed,
zero, near-threshold and ``T < d`` / ``T > d`` inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim import kernels as K
from sim import linalg

RTOL = 1e-12


def reference(x: np.ndarray, rank_rtol: float = K.RANK_RTOL) -> tuple[float, float, int]:
    """``(stable_rank, gram_stable_rank, numerical_rank)`` from ``np.linalg.eigvalsh`` of the
    smaller Gram matrix of ``x`` (``T x d``, float64)."""
    T, d = x.shape
    gram = x @ x.T if T < d else x.T @ x
    lam = np.linalg.eigvalsh(gram)
    return (float(np.sum(x * x) / lam[-1]), float(np.sum(lam ** 2) / lam[-1] ** 2),
            int(np.sum(lam > rank_rtol ** 2 * lam[-1])))


def engine(x: np.ndarray) -> tuple[float, float, int]:
    out = np.full(K.N_OBS, np.nan)
    K.observe(x, out, True)
    return (out[K.O_STABLE_RANK], out[K.O_GRAM_STABLE_RANK], int(out[K.O_NUMERICAL_RANK]))


def agrees(got: tuple[float, float, int], want: tuple[float, float, int]) -> bool:
    return (abs(got[0] / want[0] - 1.0) <= RTOL and abs(got[1] / want[1] - 1.0) <= RTOL
            and got[2] == want[2])


def with_spectrum(T: int, d: int, sigma: np.ndarray, seed: int) -> np.ndarray:
    """``U diag(sigma) V^T`` (``T x d``) with Haar-random orthonormal ``U, V``."""
    gen = np.random.default_rng(seed)
    n = min(T, d)
    u, _ = np.linalg.qr(gen.standard_normal((T, n)))
    v, _ = np.linalg.qr(gen.standard_normal((d, n)))
    return (u * sigma) @ v.T


def centred(x: np.ndarray) -> np.ndarray:
    """Rows centred (as LayerNorm does): ``x 1 = 0``, so the ``d x d`` Gram has rank ``d - 1``."""
    return x - x.mean(axis=1, keepdims=True)


def cases() -> dict[str, np.ndarray]:
    gen = np.random.default_rng(9)
    noise = gen.standard_normal((400, 160))
    row = gen.standard_normal(160)
    near, inside = np.geomspace(1.0, 1e-3, 160), np.geomspace(1.0, 1e-3, 160)
    near[0] = inside[0] = 3.0  # a separated top: Lanczos converges within LANCZOS_MAX_STEPS
    # singular values at (1 +- 6%) RANK_RTOL sigma_max (sigma_max = 3), and at (1 +- 0.2%): Gram
    # eigenvalues 0.4% from the cut, still about 20 times the rounding band n eps lambda_max
    near[-2:] = 3.0 * K.RANK_RTOL * np.array([1.06, 0.94])
    inside[-2:] = 3.0 * K.RANK_RTOL * np.array([1.002, 0.998])
    return {
        "gaussian T > d": noise,
        "gaussian T < d": gen.standard_normal((150, 420)),
        "gaussian small n": gen.standard_normal((64, 64)),
        "layernorm-centred": centred(noise),
        "layernorm-centred, dominant direction": centred(noise + np.outer(np.ones(400), row)),
        "rank 1 + tiny noise": np.outer(np.ones(400), row) + 1e-9 * noise,
        "rank 1 + noise above the cut": np.outer(np.ones(400), row) + 1e-3 * noise,
        "collapsed, centred": centred(np.outer(np.ones(400), row) + 1e-6 * noise),
        "rank 5": gen.standard_normal((400, 5)) @ gen.standard_normal((5, 160)),
        "near threshold, T > d": with_spectrum(400, 160, near, 1),
        "near threshold, T < d": with_spectrum(160, 400, near, 2),
        "very near threshold": with_spectrum(400, 160, inside, 3),
        "float32 input": noise.astype(np.float32),
        # Gram eigenvalues uniform on [0.01, 1]: a linear edge, slower than Marchenko-Pastur's
        # square root; Lanczos needs 144 steps to converge here, more than LANCZOS_MAX_STEPS
        "flat spectrum, n = 400": with_spectrum(500, 400, np.sqrt(np.linspace(1.0, 0.01, 400)), 5),
    }


@pytest.mark.parametrize("name", list(cases()))
def test_observe_matches_eigvalsh(name: str) -> None:
    x = cases()[name]
    want = reference(x.astype(np.float64))
    got = engine(x)
    assert agrees(got, want), (name, got, want)


def lanczos_converges(x: np.ndarray) -> bool:
    return bool(linalg.top_eigenvalue(linalg.gram(x.astype(np.float64)), K.LANCZOS_RTOL,
                                      K.LANCZOS_MAX_STEPS, K.LANCZOS_CHECK_EVERY)[2])


def test_cases_cover_both_paths() -> None:
    """A separated top and Gaussian (Marchenko-Pastur) spectra take the Lanczos path; a linear
    edge at ``n = 400`` exhausts ``LANCZOS_MAX_STEPS`` and falls back to ``eigvalsh`` (as small
    ``n`` always does)."""
    all_cases = cases()
    lanczos = {name for name, x in all_cases.items() if lanczos_converges(x)}
    assert {"near threshold, T > d", "near threshold, T < d", "very near threshold",
            "layernorm-centred, dominant direction", "rank 1 + tiny noise",
            "collapsed, centred", "gaussian T > d", "layernorm-centred"} <= lanczos
    assert "flat spectrum, n = 400" not in lanczos


def test_near_threshold_counts_are_the_inertia_at_the_cut() -> None:
    """Eigenvalues 12% and 0.4% either side of the cut: the inertia count at the cut (the path
    these cases take: Lanczos converges, no certificate applies) is eigvalsh's count."""
    for name in ("near threshold, T > d", "very near threshold"):
        gram, cut, lam_max, want = _gram_cut(cases()[name])
        assert want == 159
        assert linalg.certified_count(gram, cut, lam_max) == -1
        assert linalg.count_above(gram, cut) == want


def test_a_wrong_rank_cut_is_caught() -> None:
    """The twin: a numerical rank with the cut at ``1.1 RANK_RTOL`` (or ``0.9``) differs from
    the engine's on the near-threshold inputs, so the exact-rank check would reject it."""
    for name in ("near threshold, T > d", "very near threshold"):
        x = cases()[name]
        got = engine(x)
        for factor in (1.1, 0.9):
            twin = reference(x, factor * K.RANK_RTOL)
            assert not agrees(got, twin), (name, factor)
        assert agrees(got, reference(x))


def test_a_perturbed_stable_rank_is_caught() -> None:
    """The twin: a stable rank off by ``1e-11`` relative fails the ``1e-12`` check."""
    x = cases()["gaussian T > d"]
    got = engine(x)
    want = reference(x)
    assert agrees(got, want)
    assert not agrees((got[0] * (1 + 1e-11), got[1], got[2]), want)


def test_zero_input() -> None:
    out = np.full(K.N_OBS, -1.0)
    K.observe(np.zeros((300, 140)), out, True)
    assert out[K.O_NUMERICAL_RANK] == 0.0
    assert np.isnan(out[K.O_STABLE_RANK]) and np.isnan(out[K.O_GRAM_STABLE_RANK])


def test_count_above_is_the_inertia() -> None:
    gen = np.random.default_rng(3)
    q, _ = np.linalg.qr(gen.standard_normal((150, 150)))
    lam = np.concatenate([np.linspace(-2.0, 5.0, 147), [0.0, 0.0, 1e-9]])
    a = (q * lam) @ q.T
    a = (a + a.T) / 2
    kept = a.copy()
    for c in (-3.0, -1.0, -1e-6, 1e-7, 0.5, 4.9, 6.0):
        assert linalg.count_above(a, c) == int(np.sum(lam > c)), c
    assert np.array_equal(a, kept)


def _gram_cut(x: np.ndarray) -> tuple[np.ndarray, float, float, int]:
    """``(gram, cut, lambda_max, eigvalsh count above the cut)`` of tokens ``x``."""
    x = x.astype(np.float64)
    gram = x @ x.T if x.shape[0] < x.shape[1] else x.T @ x
    lam = np.linalg.eigvalsh(gram)
    cut = K.RANK_RTOL ** 2 * lam[-1]
    return gram, cut, lam[-1], int(np.sum(lam > cut))


def test_certified_count_is_the_count_or_declines() -> None:
    """One Cholesky factorisation certifies rank ``n`` and LayerNorm's rank ``n - 1``; every
    other case (rank 5, collapse, an eigenvalue near the cut) is declined (``-1``) and left to
    the inertia count. Never a wrong count."""
    certified = {}
    for name, x in cases().items():
        gram, cut, lam_max, want = _gram_cut(x)
        got = linalg.certified_count(gram, cut, lam_max)
        assert got in (-1, want), (name, got, want)
        if got >= 0:
            assert linalg.count_above(gram, cut) == want, name
            certified[name] = got
    assert certified == {"gaussian T > d": 160, "gaussian T < d": 150, "gaussian small n": 64,
                         "layernorm-centred": 159, "float32 input": 160,
                         "layernorm-centred, dominant direction": 159,
                         "rank 1 + noise above the cut": 160, "flat spectrum, n = 400": 400}


def test_certified_count_never_counts_a_nearby_eigenvalue_wrong() -> None:
    """Spectra with one eigenvalue at ``1 +- 1e-3`` or ``1 +- 0.1`` times the cut, with and
    without LayerNorm's null direction: each result is ``-1`` or the eigenvalue count. The
    twins claim a wrong count on some of these spectra: the certificate at a cut 10% too low,
    and the rank-one update without the Rayleigh-quotient test (``n - 1`` for full rank)."""
    gen = np.random.default_rng(21)
    n = 130
    ones = np.full(n, 1.0 / np.sqrt(n))
    wrong_cut = wrong_rayleigh = certified = 0
    cut = K.RANK_RTOL ** 2
    for trial in range(32):
        q, _ = np.linalg.qr(gen.standard_normal((n, n)))
        null = trial % 2 == 0
        if null:  # the first column along the all-ones direction, the rest orthogonal to it
            q[:, 0] = ones
            q, _ = np.linalg.qr(q)
        lam = np.geomspace(1.0, 1e-4, n)[::-1].copy()
        lam[1] = cut * (1 + (1e-3, -1e-3, 0.1, -0.1)[(trial // 2) % 4])
        lam[0] = 0.0 if null else 2.0 * cut
        a = (q * lam) @ q.T
        a = (a + a.T) / 2
        want = int(np.sum(lam > cut))
        got = linalg.certified_count(a, cut, 1.0)
        assert got in (-1, want), (trial, got, lam[:2])
        certified += got >= 0
        wrong_cut += linalg.certified_count(a, 0.9 * cut, 1.0) not in (-1, want)
        wrong_rayleigh += linalg._positive_definite(a, cut, ones, 1.0) and want != n - 1
    assert certified >= 8 and wrong_cut > 0 and wrong_rayleigh > 0


def test_observe_takes_the_cholesky_certificate_after_layernorm() -> None:
    """A post-LN block's tokens (rank ``d - 1``): certified by one Cholesky factorisation, the
    engine's numerical rank is the eigenvalue count (also pinned in
    ``test_observe_matches_eigvalsh``)."""
    x = cases()["layernorm-centred, dominant direction"]
    gram, cut, lam_max, want = _gram_cut(x)
    assert want == x.shape[1] - 1
    assert linalg.certified_count(gram, cut, lam_max) == want
    assert engine(x)[2] == want


def _tridiagonals(count: int, seed: int = 0):
    """Random symmetric tridiagonal ``(alpha, beta, m)`` of sides 1 to 24 and scales 1e-3 to
    1e3, a fifth of them with some zero off-diagonal entries (decoupled blocks)."""
    gen = np.random.default_rng(seed)
    for trial in range(count):
        m = int(gen.integers(1, 25))
        alpha = gen.standard_normal(25) * 10 ** gen.uniform(-3, 3)
        beta = np.abs(gen.standard_normal(25)) * 10 ** gen.uniform(-6, 1)
        if trial % 5 == 0:
            beta[gen.random(25) < 0.3] = 0.0
        yield alpha, beta, m


def test_top_ritz_matches_eigh() -> None:
    """Lanczos' tridiagonal step: the top eigenvalue within ``1e-14 |T|`` of ``eigh``'s and the
    last eigenvector component within ``1e-10`` (where the top eigenvalue is separated). The
    twin: the second eigenvalue (bisection converging to the wrong end) is rejected."""
    twins = 0
    for alpha, beta, m in _tridiagonals(600):
        t = np.diag(alpha[:m]) + np.diag(beta[:m - 1], 1) + np.diag(beta[:m - 1], -1)
        w, v = np.linalg.eigh(t)
        theta, last = linalg._top_ritz(alpha, beta, m)
        norm = np.abs(w).max()
        assert abs(theta - w[-1]) <= 1e-14 * norm, (m, theta, w[-1])
        gaps = [0.5 * (a + b) for a, b in zip(w[:-1], w[1:], strict=True) if b - a > 1e-9 * norm]
        for x in [w[0] - norm, w[-1] + norm, *gaps]:
            assert linalg._count_below(alpha, beta, m, x) == int(np.sum(w < x))
        if m == 1 or w[-1] - w[-2] > 1e-6 * norm:
            assert abs(abs(last) - abs(v[-1, -1])) <= 1e-10, (m, last, v[-1, -1])
            twins += m > 1 and abs(w[-2] - w[-1]) > 1e-14 * norm
    assert twins > 400
    alpha, beta = np.array([1.0, np.nan, 2.0]), np.array([0.5, 0.5, 0.0])
    assert np.isnan(linalg._top_ritz(alpha, beta, 3)).all()  # returns, does not loop


def test_top_eigenvalue_converges_or_says_not() -> None:
    x = cases()["gaussian T > d"]
    gram = x.T @ x
    lam_max = np.linalg.eigvalsh(gram)[-1]
    theta, steps, ok = linalg.top_eigenvalue(gram, 1e-12, 160, 8)
    assert ok and abs(theta / lam_max - 1.0) <= 1e-12
    assert theta <= lam_max * (1 + 1e-15)  # a Ritz value: from below
    theta, steps, ok = linalg.top_eigenvalue(gram, 1e-12, 8, 8)
    assert not ok and steps == 8


@pytest.mark.parametrize("shape", [(300, 64), (40, 13)])
def test_float32_scalar_observables_match_float64_path(shape: tuple[int, int]) -> None:
    """float32 tokens take 8-lane row sums and per-column deviation sums (float64 either way):
    the scalar observables equal those of the same values in float64 to ``1e-13`` relative."""
    gen = np.random.default_rng(3)
    x32 = (gen.standard_normal(shape) + 0.5).astype(np.float32)
    got = np.full(K.N_OBS, np.nan)
    want = np.full(K.N_OBS, np.nan)
    K.observe(x32, got, False)
    K.observe(x32.astype(np.float64), want, False)
    for o in (K.O_COSINE, K.O_Q, K.O_P, K.O_CONSENSUS, K.O_NORM):
        assert abs(got[o] / want[o] - 1.0) <= 1e-13, K.OBSERVABLES[o]
