"""Layers as power iterations with random value matrices (science/power-method.md, PM-2, PM-3).

Conventions (``sim.config``): a token is a column vector ``x`` in ``R^d``; one head applies
``F = W_V^T``; ``M = I + F`` (``alpha_attn = 1``). ``"random"`` ``F`` has i.i.d. entries of
variance ``sigma_v2/d`` (real Ginibre, spectrum filling the disc of radius ``sigma =
sqrt(sigma_v2)``); ``"symmetric"`` ``F = (G + G^T)/sqrt(2)`` (GOE: off-diagonal variance
``sigma_v2/d``, semicircle on ``[-2 sigma, 2 sigma]``). The *alignment* of ``x`` with a matrix
``K`` is ``||Proj_S x||/||x||``, ``S`` the real invariant subspace (a line, or the plane of a
complex pair) of ``K``'s eigenvalue of largest modulus.

PM-2 (untied weights, one fresh ``F_l`` per layer).

- *No common attractor.* The layer map ``x -> N(x + F_l a)`` with ``F_l`` orthogonally invariant
  in law commutes in law with rotations, so the stationary law of the tokens is rotation
  invariant and, ``F_1`` being used once, a deep token is a uniform direction independent of
  ``F_1``. Its alignment with any ``k``-dimensional subspace fixed by ``F_1`` is then
  ``E sqrt(B)``, ``B ~ Beta(k/2, (n-k)/2)`` (``n`` the dimension of the sphere the tokens live
  on: ``d`` for the L2 norm, ``d - 1`` for LayerNorm's centred hyperplane):
  ``random_alignment(n, k) = Gamma((k+1)/2) Gamma(n/2) / (Gamma(k/2) Gamma((n+1)/2))``.
- *One-layer tilt.* Deep in the stack the tokens have collapsed to one direction ``x``
  (uniform, independent of ``F_l``), attention is uniform, and layer ``l`` maps ``x`` to
  ``N(M_l x)``. Its alignment with ``M_l``'s own top subspace is
  ``tilt = E ||Proj_S M x|| / ||M x||`` over ``M`` and a uniform ``x``. For symmetric ``F``
  (``S`` the top eigenvector, ``x`` uniform in ``M``'s eigenbasis) this is
  ``E |mu_1 g_1| / sqrt(sum_k mu_k^2 g_k^2)``; with ``mu_1 -> 1 + 2 sigma`` (semicircle edge)
  and ``sum_k mu_k^2 g_k^2 -> tr M^2 -> d (1 + sigma_v2)`` the large-``d`` limit is
  ``sqrt(2/(pi d)) (1 + 2 sigma)/sqrt(1 + sigma_v2)``. At finite ``d`` (and for Ginibre ``F``,
  whose eigenvectors are not orthogonal) ``one_layer_tilt`` evaluates the expectation
  numerically: exactly in ``x`` and by a Monte-Carlo mean (with its SE) over ``M``.
- *The tilt given ``M`` (Rao-Blackwellisation).* Take ``x ~ N(0, I)`` (same direction law), so
  ``y = M x ~ N(0, C)``, ``C = M M^T = U diag(s^2) U^T`` (``s`` the singular values of ``M``).
  With ``1/||y|| = pi^(-1/2) int_0^inf t^(-1/2) e^(-t ||y||^2) dt``, and ``e^(-t ||y||^2)``
  turning ``N(0, C)`` into ``det(I + 2 t C)^(-1/2) N(0, C_t)``, ``C_t = C (I + 2 t C)^(-1)``:
  ``E[||B^T y||/||y|| | M] = pi^(-1/2) int_0^inf t^(-1/2) prod_i (1 + 2 t s_i^2)^(-1/2)
  E||g_t|| dt``, ``B`` (``d x k``) an orthonormal basis of ``S`` and ``g_t ~ N(0, Sigma_t)``,
  ``Sigma_t = V^T diag(s^2/(1 + 2 t s^2)) V`` (``k x k``), ``V = U^T B``. ``E||g||`` is
  ``sqrt(2/pi) sqrt(Sigma_t)`` for ``k = 1`` and ``sqrt(2 a/pi) E(1 - b/a)`` for ``k = 2``
  (``a >= b`` the eigenvalues of ``Sigma_t``, ``E`` the complete elliptic integral of the second
  kind with parameter ``m``). Symmetric ``F``: ``V`` picks the top eigenvector and this is
  ``E|mu_1 g_1|/sqrt(sum mu_k^2 g_k^2)`` integrated over ``g``. In ``v = ln(t tr C)`` the
  integrand is analytic in a strip and decays like ``e^(v/2)`` (left) and ``e^(-v d/2)``
  (right), so the trapezoidal rule on ``[TILT_V[0], TILT_V[1]]`` with step ``TILT_STEP``
  converges exponentially (relative error below ``1e-10``, tested).

PM-3 (random spectra of ``M = I + F``, ``F`` real Ginibre).

- Real eigenvalues: ``E #real = 1/2 + sqrt(2) 2F1(1, -1/2; d; 1/2) / B(d, 1/2)`` (Edelman,
  Kostlan and Shub 1994), ``~ sqrt(2 d/pi)``: a vanishing fraction of the ``d`` eigenvalues.
  The eigenvalues of ``M`` are ``1 + sigma lambda`` (``lambda`` of the unit-radius Ginibre
  ``G``), real exactly when ``lambda`` is.
- ``d = 2``, exactly: the eigenvalues are real iff ``(a-d)^2 + 4bc >= 0``; with ``X = a - d``,
  ``U = b + c``, ``W = b - c`` i.i.d. ``N(0, 2 s^2)`` that is ``X^2 + U^2 >= W^2``, and
  ``X^2 + U^2`` is exponential, so ``P(real top) = E exp(-W^2/(4 s^2)) = 1/sqrt(2)`` for every
  ``sigma`` and for ``F`` as well as ``M``.
- The gap ratio ``r = |mu_2|/|mu_1|``, ``mu_2`` the largest-modulus eigenvalue outside
  ``mu_1``'s invariant subspace (the conjugate partner excluded): the convergence factor of the
  power iteration to ``S``. Edge scaling: ``|1 + sigma z/sqrt(d)|`` near the edge point
  ``z = sqrt(d)`` (``z`` an eigenvalue of the unscaled Ginibre matrix) is
  ``(1 + sigma)(1 + sigma h / ((1 + sigma) sqrt(d)))`` with ``h = Re z - sqrt(d) + O(Im z^2 /
  sqrt(d))`` the eigenvalue's level. Levels near the edge have an ``O(1)`` density with a
  Gaussian (erfc) tail of variance ``1/4``; among ``N ~ d^(1/4)`` edge candidates the top level
  sits at ``h* ~ sqrt(ln N / 2)`` and the spacing of the top two is ``~ 1/(4 h*) ~ (ln d)^(-1/2)``
  (extreme-value spacing of a Gaussian tail). Hence
  ``1 - r ~ C sigma/(1 + sigma) / sqrt(d ln d)``: near-degeneracy at large ``d``, and the
  log-derivative of ``(1 - r) sqrt(ln d)`` in ``ln d`` is ``-1/2`` (``GAP_EXPONENT``). The
  constant ``C`` is not derived here.
- Exact one-point densities of the real Ginibre ``G`` (``d x d``, entries ``N(0, 1)``, so
  ``lambda = sqrt(d)`` times the unit-radius eigenvalue). Real eigenvalues (Edelman, Kostlan and
  Shub 1994; Edelman 1997): ``rho_r(x) = Q(d-1, x^2)/sqrt(2 pi) + |x|^(d-1) e^(-x^2/2)
  P((d-1)/2, x^2/2) / (2^(d/2) Gamma(d/2))`` (``P``, ``Q`` the regularised lower and upper
  incomplete gamma functions), integrating to ``E #real``. Complex eigenvalues in the upper half
  plane (Edelman 1997, Thm 6.2): ``rho_c(x, y) = sqrt(2/pi) y e^(y^2 - x^2) erfc(sqrt(2) y)
  e_(d-2)(x^2 + y^2)``, ``e_n`` the truncated exponential series; numerically
  ``e_(d-2)(z) e^(-z) = Q(d-1, z)`` and ``e^(2 y^2) erfc(sqrt 2 y) = erfcx(sqrt 2 y)``, so both
  densities are evaluated without overflow at any ``d``. ``int rho_r + 2 int rho_c = d``.
- *Top two levels, Poisson approximation.* A *level* is a real eigenvalue or a conjugate pair
  (counted once). ``|mu| = |1 + sigma lambda/sqrt(d)| = (sigma/sqrt(d)) |lambda - c|`` with
  centre ``c = -sqrt(d)/sigma``, so in the distance ``s = |lambda - c|`` the levels have
  intensity ``g(s) = g_r(s) + g_c(s)``, ``g_r(s) = rho_r(c + s) + rho_r(c - s)``, ``g_c(s) = s
  int_0^pi rho_c(c + s cos phi, s sin phi) dphi``, and ``N(s) = int_s^inf g`` levels lie beyond
  ``s``. Treating the levels as a Poisson process with this exact intensity (independent levels:
  eigenvalue repulsion is ignored, a stated bias the simulation measures): ``P(top real) =
  int g_r(s) e^(-N(s)) ds``, ``P(top real, r <= rho) = int g_r(s) e^(-N(rho s)) ds``, and ``P(r
  <= rho) = int g(s) e^(-N(rho s)) ds`` (``r`` as in ``gap_ratio``: the top level's conjugate
  partner is not a level). Quadrature: Gauss-Legendre panels in ``s`` (a panel edge at ``|c|``,
  where ``g_r`` has the ``|x|^(d-1)`` kink) and in ``phi``, truncated at ``|lambda| <= sqrt(d) +
  LEVEL_CUTOFF`` (the densities are below ``e^(-100)`` beyond); ``N`` by integrating each
  panel's Legendre interpolant of ``g``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import sympy as sp

from theory.predictions import Prediction, register

n, k, s, d = sp.symbols("n k sigma d", positive=True)
v = sp.symbols("sigma_v2", positive=True)

#: log-derivative of ``(1 - r) sqrt(ln d)`` in ``ln d`` (module docstring)
GAP_EXPONENT = sp.Rational(-1, 2)
#: a top eigenvalue counts as real when ``|Im mu| <= REAL_TOL |mu|``
REAL_TOL = 1e-10
x, y = sp.symbols("x y", real=True)
#: the densities are integrated over ``|lambda| <= sqrt(d) + LEVEL_CUTOFF`` (module docstring)
LEVEL_CUTOFF = 10.0
#: Gauss-Legendre nodes per panel, and the largest panel (in units of ``lambda``)
_NODES, _PANEL = 16, 1.0


def derive_random_alignment() -> sp.Expr:
    """``E ||Proj_S x||`` for ``x`` uniform on ``S^(n-1)`` and ``S`` of dimension ``k``:
    ``||Proj_S x||^2 ~ Beta(k/2, (n-k)/2)``, whose half moment is ``B(a + 1/2, b)/B(a, b)``."""
    a, b = k / 2, (n - k) / 2
    half_moment = sp.beta(a + sp.Rational(1, 2), b) / sp.beta(a, b)
    return sp.simplify(sp.gammasimp(sp.expand_func(half_moment)))


def derive_two_by_two_real_probability() -> sp.Expr:
    """``P(eigenvalues real)`` of a 2 x 2 matrix with i.i.d. ``N(0, s^2)`` entries (module
    docstring): ``E exp(-W^2/(4 s^2))`` for ``W ~ N(0, 2 s^2)``."""
    w = sp.symbols("w", real=True)
    density = sp.exp(-w**2 / (4 * s**2)) / sp.sqrt(4 * sp.pi * s**2)
    exponential_tail = sp.exp(-w**2 / (4 * s**2))  # P(X^2 + U^2 >= w^2), X^2 + U^2 ~ Exp(4 s^2)
    return sp.simplify(sp.integrate(exponential_tail * density, (w, -sp.oo, sp.oo)))


def derive_tilt_large_d_symmetric() -> sp.Expr:
    """Large-``d`` one-layer tilt for symmetric ``F``: ``E|g| (1 + 2 sigma)/sqrt(d(1 +
    sigma_v2))`` (module docstring), as a function of ``d`` and ``sigma_v2``."""
    g_abs = sp.sqrt(2 / sp.pi)  # E|g|, g ~ N(0, 1)
    top = 1 + 2 * sp.sqrt(v)  # semicircle edge of I + F
    trace_m2 = d * (1 + v)  # E tr (I + F)^2 at leading order
    return sp.simplify(g_abs * top / sp.sqrt(trace_m2))


def derive_real_count_large_d() -> sp.Expr:
    """Leading large-``d`` expected number of real Ginibre eigenvalues, ``sqrt(2 d/pi)``."""
    return sp.sqrt(2 * d / sp.pi)


def derive_real_density() -> sp.Expr:
    """``rho_r(x)``: density of the real eigenvalues of a ``d x d`` real Ginibre matrix with
    ``N(0, 1)`` entries (Edelman-Kostlan-Shub; module docstring), in ``x`` and ``d``."""
    return (sp.uppergamma(d - 1, x**2) / (sp.gamma(d - 1) * sp.sqrt(2 * sp.pi))
            + sp.Abs(x)**(d - 1) * sp.exp(-x**2 / 2) * sp.lowergamma((d - 1) / 2, x**2 / 2)
            / (2**(d / 2) * sp.gamma(d / 2) * sp.gamma((d - 1) / 2)))


def derive_complex_density() -> sp.Expr:
    """``rho_c(x, y)``, ``y > 0``: density of the complex eigenvalues in the upper half plane
    (Edelman 1997, Thm 6.2), with the truncated exponential series ``e_(d-2)`` written out."""
    j = sp.symbols("j", integer=True, nonnegative=True)
    series = sp.Sum((x**2 + y**2)**j / sp.factorial(j), (j, 0, d - 2))
    return sp.sqrt(2 / sp.pi) * y * sp.exp(y**2 - x**2) * sp.erfc(sp.sqrt(2) * y) * series


def generated_functions() -> list[tuple[str, sp.Expr, tuple[sp.Symbol, ...]]]:
    """The closed forms printed into ``theory/_generated/power_random.py``: (name, expr, args)."""
    return [("tilt_large_d_symmetric", derive_tilt_large_d_symmetric(), (d, v)),
            ("real_count_large_d", derive_real_count_large_d(), (d,))]


# ----------------------------------------------------------------------------- numbers


def _generated():
    from theory._generated import power_random

    return power_random


def random_alignment(n_dim: int, k_dim: int) -> float:
    """``E ||Proj_S x||/||x||`` for a uniform direction ``x`` in ``R^n_dim`` and a fixed
    ``k_dim``-dimensional ``S`` (``derive_random_alignment``, by log-gamma)."""
    if not 1 <= k_dim < n_dim:
        raise ValueError(f"need 1 <= k_dim < n_dim, got k_dim={k_dim}, n_dim={n_dim}")
    return math.exp(math.lgamma((k_dim + 1) / 2) + math.lgamma(n_dim / 2)
                    - math.lgamma(k_dim / 2) - math.lgamma((n_dim + 1) / 2))


def expected_real_eigenvalues(dim: int) -> float:
    """``E #real eigenvalues`` of a ``dim x dim`` real Ginibre matrix (Edelman-Kostlan-Shub)."""
    from scipy.special import beta, hyp2f1

    if dim < 1:
        raise ValueError(f"dim={dim!r} must be >= 1")
    return float(0.5 + math.sqrt(2.0) * hyp2f1(1.0, -0.5, dim, 0.5) / beta(dim, 0.5))


def tilt_large_d_symmetric(dim: int, sigma_v2: float) -> float:
    """Large-``d`` one-layer tilt for symmetric ``F`` (printed closed form)."""
    return float(_generated().tilt_large_d_symmetric(dim, sigma_v2))


def two_by_two_real_probability() -> float:
    """``P(top eigenvalue real)`` at ``d = 2`` (any ``sigma``): ``1/sqrt(2)``."""
    return float(derive_two_by_two_real_probability())


@dataclass(frozen=True)
class NumericalValue:
    """A Monte-Carlo integral evaluated in the theory: ``mean`` with standard error ``se``."""

    mean: float
    se: float
    samples: int


def draw_value_matrices(dim: int, sigma_v2: float, value: str, samples: int,
                        rng: np.random.Generator) -> np.ndarray:
    """``samples x dim x dim`` value matrices ``F`` of the given ensemble (module docstring)."""
    g = rng.standard_normal((samples, dim, dim)) * math.sqrt(sigma_v2 / dim)
    if value == "random":
        return g
    if value == "symmetric":
        return (g + np.swapaxes(g, 1, 2)) / math.sqrt(2.0)
    raise ValueError(f"value={value!r} is not allowed; choose random or symmetric")


#: one-layer tilt: trapezoidal rule in ``v = ln(t tr C)`` on ``[TILT_V[0], TILT_V[1]]``, step
#: ``TILT_STEP`` (module docstring; relative error below 1e-10, tested)
TILT_V = (-50.0, 30.0)
TILT_STEP = 0.4
#: default number of draws of ``M`` in ``one_layer_tilt``
TILT_SAMPLES = 4000
#: draws of ``M`` per chunk in ``one_layer_tilt`` (memory: chunk x nodes x d doubles)
_TILT_CHUNK = 256


def top_bases(k_mats: np.ndarray) -> np.ndarray:
    """Orthonormal bases of the top-modulus real invariant subspace of each matrix in ``k_mats``
    (``samples x d x d``), as ``samples x d x 2``: for a real top eigenvalue (``|Im| <=
    REAL_TOL |mu|``) the unit eigenvector and a zero second column, for a complex pair the
    Gram-Schmidt basis of ``Re w, Im w``."""
    values, vectors = np.linalg.eig(k_mats)
    idx = np.arange(values.shape[0])
    top = np.argmax(np.abs(values), axis=1)
    w = vectors[idx, :, top]  # samples x d
    lam = values[idx, top]
    real = np.abs(lam.imag) <= REAL_TOL * np.abs(lam)
    b1 = w.real / np.linalg.norm(w.real, axis=1, keepdims=True)
    b2 = w.imag - np.sum(b1 * w.imag, axis=1, keepdims=True) * b1
    b2 = np.where(real[:, None], 0.0, b2)
    norm2 = np.linalg.norm(b2, axis=1, keepdims=True)
    b2 = np.divide(b2, norm2, out=np.zeros_like(b2), where=norm2 > 0)
    return np.stack([b1, b2], axis=2)


def gaussian_norm_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``E ||g||`` for ``g ~ N(0, diag(a, b))`` in ``R^2``, ``a >= b >= 0``, ``a > 0``:
    ``sqrt(2 a/pi) E(1 - b/a)``, ``E(m)`` the complete elliptic integral of the second kind
    (parameter ``m``); ``b = 0`` gives the half-normal ``sqrt(2 a/pi)``."""
    from scipy.special import ellipe

    return np.sqrt(2 * a / math.pi) * ellipe(1 - b / a)


def conditional_tilt(m_mats: np.ndarray, bases: np.ndarray) -> np.ndarray:
    """``E[||B^T M x||/||M x|| | M]`` over ``x ~ N(0, I_d)`` for each ``M`` of ``m_mats``
    (``samples x d x d``) and orthonormal ``B`` of ``bases`` (``samples x d x 2``, a zero
    second column for a line), by the ``t``-integral of the module docstring (``C = M M^T`` by
    ``eigh``). Returns ``samples`` values."""
    c_vals, u = np.linalg.eigh(m_mats @ np.swapaxes(m_mats, 1, 2))
    return spectral_tilt(np.clip(c_vals, 0.0, None), np.swapaxes(u, 1, 2) @ bases)


def spectral_tilt(s2: np.ndarray, vv: np.ndarray) -> np.ndarray:
    """The ``t``-integral (module docstring) from the eigenvalues ``s2`` of ``C = M M^T``
    (``samples x d``) and ``V = U^T B`` (``samples x d x 2``, ``U`` the eigenvectors of ``C``):
    trapezoidal rule in ``v = ln(t tr C)``. Returns ``samples`` values."""
    products = np.stack([vv[..., 0]**2, vv[..., 1]**2, vv[..., 0] * vv[..., 1]], axis=2)
    v_nodes = np.arange(TILT_V[0], TILT_V[1] + TILT_STEP / 2, TILT_STEP)
    t = np.exp(v_nodes)[None, :] / s2.sum(axis=1, keepdims=True)  # samples x nodes
    two_t_s2 = 2 * t[:, :, None] * s2[:, None, :]  # samples x nodes x d
    log_det = np.sum(np.log1p(two_t_s2), axis=2)  # ln det(I + 2 t C)
    sig = (s2[:, None, :] / (1 + two_t_s2)) @ products  # Sigma_t entries (11, 22, 12)
    mid, half = (sig[..., 0] + sig[..., 1]) / 2, np.hypot((sig[..., 0] - sig[..., 1]) / 2,
                                                         sig[..., 2])
    a = mid + half
    b = np.minimum(np.clip(mid - half, 0.0, None), a)
    # dt = t dv: integrand t^(1/2) det^(-1/2) E||P y||_t / sqrt(pi)
    integrand = np.sqrt(t / math.pi) * np.exp(-0.5 * log_det) * gaussian_norm_mean(a, b)
    return TILT_STEP * integrand.sum(axis=1)


@cache
def one_layer_tilt(dim: int, sigma_v2: float, value: str, samples: int = TILT_SAMPLES,
                   seed: int = 0) -> NumericalValue:
    """``E ||Proj_S M x||/||M x||``, ``M = I + F``, ``x`` uniform and independent of ``M``: the
    mean over ``samples`` NumPy draws of ``M`` of the exact conditional expectation over ``x``
    (``conditional_tilt``; Rao-Blackwellised, so ``se`` is over the draws of ``M`` only). For
    symmetric ``F`` the eigenbasis of ``M`` serves both the top line and ``C = M^2``."""
    rng = np.random.default_rng([seed, dim, int(round(sigma_v2 * 1e6)), len(value)])
    vals = []
    for start in range(0, samples, _TILT_CHUNK):
        m = draw_value_matrices(dim, sigma_v2, value, min(_TILT_CHUNK, samples - start), rng)
        m += np.eye(dim)
        if value == "symmetric":  # C = M^2: U is M's eigenbasis, V = U^T B picks the top
            mu, _ = np.linalg.eigh(m)
            vv = np.zeros((m.shape[0], dim, 2))
            vv[np.arange(m.shape[0]), np.argmax(np.abs(mu), axis=1), 0] = 1.0
            vals.append(spectral_tilt(mu**2, vv))
        else:
            vals.append(conditional_tilt(m, top_bases(m)))
    a = np.concatenate(vals)
    return NumericalValue(float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size)), a.size)


def gap_ratio(eigenvalues: np.ndarray) -> tuple[bool, float]:
    """``(top real, r)`` for one spectrum: ``r = |mu_2|/|mu_1|`` with ``mu_2`` the largest
    modulus outside ``mu_1``'s real invariant subspace (its conjugate partner excluded)."""
    mags = np.sort(np.abs(eigenvalues))[::-1]
    top = eigenvalues[int(np.argmax(np.abs(eigenvalues)))]
    real = bool(abs(top.imag) <= REAL_TOL * abs(top))
    second = mags[1] if real else mags[2] if mags.size > 2 else 0.0
    return real, float(second / mags[0])


def real_density(x_val: np.ndarray | float, dim: int) -> np.ndarray:
    """``rho_r`` (``derive_real_density``) at ``x_val`` for ``dim >= 2``, stably at any ``dim``
    (regularised incomplete gammas, the power term in log space)."""
    from scipy.special import gammainc, gammaincc

    if dim < 2:
        raise ValueError(f"dim={dim!r} must be >= 2")
    a = np.abs(np.asarray(x_val, dtype=float))
    with np.errstate(divide="ignore"):
        log_power = ((dim - 1) * np.log(a) - a**2 / 2 - math.lgamma(dim / 2)
                     - dim / 2 * math.log(2.0))
    return (gammaincc(dim - 1, a**2) / math.sqrt(2 * math.pi)
            + np.exp(log_power) * gammainc((dim - 1) / 2, a**2 / 2))


def complex_density(x_val: np.ndarray | float, y_val: np.ndarray | float, dim: int
                    ) -> np.ndarray:
    """``rho_c`` (``derive_complex_density``) at ``(x_val, y_val)``, ``y_val >= 0``, for
    ``dim >= 2``, as ``sqrt(2/pi) y erfcx(sqrt 2 y) Q(dim - 1, x^2 + y^2)``."""
    from scipy.special import erfcx, gammaincc

    if dim < 2:
        raise ValueError(f"dim={dim!r} must be >= 2")
    xv, yv = np.asarray(x_val, dtype=float), np.asarray(y_val, dtype=float)
    return (math.sqrt(2 / math.pi) * yv * erfcx(math.sqrt(2.0) * yv)
            * gammaincc(dim - 1, xv**2 + yv**2))


def _gauss_panels(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights (``panels x _NODES``) on the panels ``edges``."""
    t, w = np.polynomial.legendre.leggauss(_NODES)
    half = np.diff(edges)[:, None] / 2
    return edges[:-1, None] + half * (t + 1), half * w


def _panel_edges(lo: float, hi: float, breaks: tuple[float, ...] = ()) -> np.ndarray:
    """Panel edges covering ``[lo, hi]`` with ``breaks`` among them, panels ``<= _PANEL``."""
    pts = sorted({lo, hi, *(b for b in breaks if lo < b < hi)})
    out = [np.linspace(a, b, max(1, math.ceil((b - a) / _PANEL)) + 1)[:-1]
           for a, b in zip(pts[:-1], pts[1:], strict=True)]
    return np.concatenate([*out, [hi]])


@dataclass(frozen=True)
class LevelIntensity:
    """Intensity of the levels of ``M = I + F`` in the distance ``s = |lambda - c|`` (module
    docstring) on Gauss-Legendre panels: ``edges`` (``panels + 1``), ``nodes``, ``weights``,
    ``real``, ``pairs`` (``g_r``, ``g_c``; ``panels x _NODES``). ``s`` relates to the modulus
    by ``|mu| = s sigma/sqrt(d)``."""

    dim: int
    sigma_v2: float
    edges: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    real: np.ndarray
    pairs: np.ndarray

    @property
    def centre(self) -> float:
        return -math.sqrt(self.dim / self.sigma_v2)

    def _antiderivative(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """(Legendre coefficients of each panel's antiderivative, ``_NODES + 1 x panels``, zero
        at the panel's left edge; cumulative integral at the edges) of ``part``."""
        key = f"_anti_{part}"
        if key not in self.__dict__:
            g = {"all": self.real + self.pairs, "real": self.real, "pairs": self.pairs}[part]
            leg = np.polynomial.legendre
            t, _ = leg.leggauss(_NODES)
            coef = np.linalg.solve(leg.legvander(t, _NODES - 1), g.T)
            before = np.concatenate([[0.0], np.cumsum(np.sum(g * self.weights, axis=1))])
            object.__setattr__(self, key, (leg.legint(coef, lbnd=-1, axis=0), before))
        return self.__dict__[key]

    def beyond(self, s_val: np.ndarray | float, part: str = "all") -> np.ndarray:
        """``N(s)``: expected number of levels (``part``: ``all``, ``real`` or ``pairs``)
        farther than ``s_val`` from the centre (exact integral of each panel's interpolant)."""
        anti, before = self._antiderivative(part)
        half = np.diff(self.edges) / 2
        sv = np.clip(np.asarray(s_val, dtype=float), self.edges[0], self.edges[-1])
        panel = np.clip(np.searchsorted(self.edges, sv, side="right") - 1, 0, len(half) - 1)
        tt = (sv - self.edges[panel]) / half[panel] - 1
        vander = np.polynomial.legendre.legvander(tt, _NODES)
        partial = half[panel] * np.sum(vander * np.moveaxis(anti[:, panel], 0, -1), axis=-1)
        return np.reshape(before[-1] - before[panel] - partial, np.shape(sv))


@cache
def level_intensity(dim: int, sigma_v2: float) -> LevelIntensity:
    """The level intensity of ``I + F`` at ``(dim, sigma_v2)`` (module docstring; cached)."""
    if dim < 2 or sigma_v2 <= 0:
        raise ValueError(f"need dim >= 2 and sigma_v2 > 0, got {dim!r}, {sigma_v2!r}")
    c = -math.sqrt(dim / sigma_v2)
    r0 = math.sqrt(dim) + LEVEL_CUTOFF
    edges = _panel_edges(max(0.0, -c - r0), -c + r0, (-c,))
    s_nodes, s_w = _gauss_panels(edges)
    real = real_density(c + s_nodes, dim) + real_density(c - s_nodes, dim)
    # the arc of the circle |lambda - c| = s, 0 < phi < phi_max(s), inside |lambda| <= r0
    flat = s_nodes.ravel()
    cos_max = np.clip((c**2 + flat**2 - r0**2) / (2 * abs(c) * flat), -1.0, 1.0)
    phi_max = np.arccos(cos_max)
    n_phi = max(1, math.ceil(np.max(flat * phi_max) / (2 * _PANEL)))
    u, uw = _gauss_panels(np.linspace(0.0, 1.0, n_phi + 1))
    phi = phi_max[:, None] * u.ravel()[None, :]
    lam_x = c + flat[:, None] * np.cos(phi)
    lam_y = flat[:, None] * np.sin(phi)
    arc = np.sum(complex_density(lam_x, lam_y, dim) * uw.ravel()[None, :], axis=1)
    pairs = (flat * phi_max * arc).reshape(s_nodes.shape)
    return LevelIntensity(dim, float(sigma_v2), edges, s_nodes, s_w, real, pairs)


def level_counts(dim: int, sigma_v2: float, modulus: float) -> tuple[float, float]:
    """``(N_r, N_c)``: expected numbers of real eigenvalues and of conjugate pairs of ``I + F``
    with ``|mu| > modulus``."""
    lv = level_intensity(dim, float(sigma_v2))
    s_val = modulus * math.sqrt(dim / sigma_v2)
    return float(lv.beyond(s_val, "real")), float(lv.beyond(s_val, "pairs"))


@cache
def poisson_top_real(dim: int, sigma_v2: float) -> float:
    """``P(top level of I + F real)`` in the Poisson approximation: ``int g_r e^(-N)``."""
    lv = level_intensity(dim, float(sigma_v2))
    return float(np.sum(lv.weights * lv.real * np.exp(-lv.beyond(lv.nodes))))


@cache
def poisson_real_separated(dim: int, sigma_v2: float, rho: float) -> float:
    """``P(top level real and r <= rho)``, Poisson approximation: ``int g_r e^(-N(rho s))``."""
    lv = level_intensity(dim, float(sigma_v2))
    return float(np.sum(lv.weights * lv.real * np.exp(-lv.beyond(rho * lv.nodes))))


@cache
def poisson_gap_cdf(dim: int, sigma_v2: float, rho: float) -> float:
    """``P(r <= rho)``, Poisson approximation: ``int g e^(-N(rho s))``."""
    lv = level_intensity(dim, float(sigma_v2))
    return float(np.sum(lv.weights * (lv.real + lv.pairs)
                        * np.exp(-lv.beyond(rho * lv.nodes))))


def poisson_gap_cdf_grid(dim: int, sigma_v2: float, rhos: np.ndarray) -> np.ndarray:
    """``poisson_gap_cdf`` at each of ``rhos`` (1-D)."""
    lv = level_intensity(dim, float(sigma_v2))
    g = lv.weights * (lv.real + lv.pairs)
    rho = np.asarray(rhos, dtype=float)[:, None, None]
    return np.sum(g * np.exp(-lv.beyond(rho * lv.nodes)), axis=(1, 2))


register(Prediction(
    "pm2_random_alignment", "PM-2",
    "E||Proj_S x||/||x|| of a uniform direction in n dimensions and a fixed k-dimensional S: "
    "the deep-layer alignment with layer 1's top subspace under untied weights",
    ("n", "k"), "x uniform (rotation-invariant stationary law), independent of S",
    lambda n, k: random_alignment(int(n), int(k)), derive_random_alignment()))
register(Prediction(
    "pm2_one_layer_tilt", "PM-2",
    "deep-layer alignment of N((I + F_l) x) with (I + F_l)'s own top subspace, x uniform",
    ("d", "sigma_v2", "value"), "collapsed tokens, x uniform and independent of F_l; "
    f"exact in x (t-integral), mean over {TILT_SAMPLES} NumPy draws of M",
    lambda d, sigma_v2, value: one_layer_tilt(int(d), float(sigma_v2), str(value)).mean))
register(Prediction(
    "pm2_tilt_large_d_symmetric", "PM-2",
    "large-d one-layer tilt, symmetric F: sqrt(2/(pi d)) (1 + 2 sigma)/sqrt(1 + sigma_v2)",
    ("d", "sigma_v2"), "d -> infinity (semicircle edge, tr M^2 ~ d(1 + sigma_v2))",
    lambda d, sigma_v2: tilt_large_d_symmetric(int(d), float(sigma_v2)),
    derive_tilt_large_d_symmetric()))
register(Prediction(
    "pm3_expected_real_eigenvalues", "PM-3",
    "expected number of real eigenvalues of a d x d real Ginibre matrix (Edelman-Kostlan-Shub)",
    ("d",), "exact", lambda d: expected_real_eigenvalues(int(d))))
register(Prediction(
    "pm3_real_top_two_by_two", "PM-3",
    "P(top-modulus eigenvalue of I + F real) at d = 2, any sigma_v2", (), "exact",
    lambda: two_by_two_real_probability(), derive_two_by_two_real_probability()))
register(Prediction(
    "pm3_gap_exponent", "PM-3",
    "log-derivative of (1 - |mu_2/mu_1|) sqrt(ln d) in ln d (edge extreme-value scaling)",
    (), "large d, edge scaling, Gaussian-tail extreme spacing", lambda: float(GAP_EXPONENT),
    GAP_EXPONENT))
register(Prediction(
    "pm3_real_top", "PM-3",
    "P(top-modulus level of I + F real), Poisson approximation with the exact Ginibre densities",
    ("d", "sigma_v2"), "levels independent (repulsion ignored); exact one-point densities",
    lambda d, sigma_v2: poisson_top_real(int(d), float(sigma_v2))))
register(Prediction(
    "pm3_real_separated", "PM-3",
    "P(top level of I + F real and r = |mu_2/mu_1| <= rho), Poisson approximation",
    ("d", "sigma_v2", "rho"), "levels independent (repulsion ignored); exact densities",
    lambda d, sigma_v2, rho: poisson_real_separated(int(d), float(sigma_v2), float(rho))))
register(Prediction(
    "pm3_gap_cdf", "PM-3",
    "P(r <= rho), r = |mu_2/mu_1| of I + F (conjugate partner excluded), Poisson approximation",
    ("d", "sigma_v2", "rho"), "levels independent (repulsion ignored); exact densities",
    lambda d, sigma_v2, rho: poisson_gap_cdf(int(d), float(sigma_v2), float(rho))))
