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
  numerically (a stated Monte-Carlo integral over ``M`` and ``x`` in NumPy, with its SE).

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


def top_subspaces(k_mats: np.ndarray) -> list[np.ndarray]:
    """Orthonormal bases (``d x 1`` or ``d x 2``) of the top-modulus real invariant subspace of
    each matrix in ``k_mats`` (``samples x d x d``)."""
    values, vectors = np.linalg.eig(k_mats)
    out = []
    for val, vec in zip(values, vectors, strict=True):
        top = int(np.argmax(np.abs(val)))
        w = vec[:, top]
        real = abs(val[top].imag) <= REAL_TOL * abs(val[top])
        basis = np.real(w)[:, None] if real else np.stack([w.real, w.imag], axis=1)
        out.append(np.linalg.qr(basis)[0])
    return out


@cache
def one_layer_tilt(dim: int, sigma_v2: float, value: str, samples: int = 20000,
                   seed: int = 0) -> NumericalValue:
    """``E ||Proj_S M x||/||M x||``, ``M = I + F``, ``x`` uniform and independent of ``M``
    (numerical evaluation: ``samples`` NumPy draws of ``(F, x)``, chunked)."""
    rng = np.random.default_rng([seed, dim, int(round(sigma_v2 * 1e6)), len(value)])
    vals = []
    chunk = 2000
    for start in range(0, samples, chunk):
        m = draw_value_matrices(dim, sigma_v2, value, min(chunk, samples - start), rng)
        m += np.eye(dim)
        x = rng.standard_normal((m.shape[0], dim))
        mx = np.einsum("sij,sj->si", m, x)
        for basis, y in zip(top_subspaces(m), mx, strict=True):
            vals.append(np.linalg.norm(y @ basis) / np.linalg.norm(y))
    a = np.asarray(vals)
    return NumericalValue(float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size)), a.size)


def gap_ratio(eigenvalues: np.ndarray) -> tuple[bool, float]:
    """``(top real, r)`` for one spectrum: ``r = |mu_2|/|mu_1|`` with ``mu_2`` the largest
    modulus outside ``mu_1``'s real invariant subspace (its conjugate partner excluded)."""
    mags = np.sort(np.abs(eigenvalues))[::-1]
    top = eigenvalues[int(np.argmax(np.abs(eigenvalues)))]
    real = bool(abs(top.imag) <= REAL_TOL * abs(top))
    second = mags[1] if real else mags[2] if mags.size > 2 else 0.0
    return real, float(second / mags[0])


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
    "numerical evaluation (20000 NumPy draws)",
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
