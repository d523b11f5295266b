"""Sinks and diagonal patterns (science/sinks.md): claims SD-1 to SD-5.

One softmax head with planted scores ``s_ij = x_i^T W_QK x_j`` (rows are tokens, ``X`` is
``T x d``), ``A = rowsoftmax(s)``, values ``v_j = F x_j`` with ``F = W_V^T`` (entries of variance
``sigma_v2/d``), output ``y_i = sum_j A_ij v_j`` and the layer ``x_i <- x_i + y_i``.

Sink geometry (the engine's ``sink=True``): ``u = e_1``, ``e = e_2``; token 0 is the sink
``x_0 = sqrt(d) (b u + sqrt(1 - b^2) e)``; tokens ``i >= 1`` are ``x_i = a sqrt(d) u + r_i`` with
``r_i`` orthogonal to ``u, e`` and ``|r_i|^2 = d (1 - a^2)``, so ``|x_i|^2 = d``,
``x_i . x_0 = d a b``. ``a = sink_align``, ``b = sink_cos``. The *clean* geometry also has the
``r_i`` mutually orthogonal (``x_i . x_k = a^2 d``); for random input (isometric Haar or
Gaussian) ``E r_j . r_k = 0`` for ``j != k`` by the sign symmetry ``r_j -> -r_j``.

Derived here (sympy unless stated):

- SD-1/SD-2: with ``W_QK = c u e^T`` the layer-1 scores are ``s_i0 = c a d sqrt(1 - b^2)`` (the
  *margin* ``m``) and ``s_ij = 0`` (``j >= 1``), so ``A_i0 = 1/(1 + (T - 1) e^{-m})`` exactly.
  ``A_i0 >= 1 - eps`` for every ``i`` holds iff ``sum_{j>=1} e^{-(s_i0 - s_ij)} <= eps/(1 - eps)``
  (exact); the uniform margin ``s_i0 - s_ij >= M = log((T - 1)(1 - eps)/eps)`` is sufficient,
  and necessary when all margins are equal; by Jensen the *mean* margin must be ``>= M`` in any
  case. ``dM/dlog T = T/(T - 1) -> 1``.
- SD-1: ``E ||y_i||^2/d = sigma_v2 [p^2 g^2 + 2 p (1 - p) g a b + (1 - p)^2 (a^2 + (1 - a^2)/(T -
  1))]`` for ``i >= 1`` with ``p = A_i0`` and ``g = sink_value`` (exact expectation over ``F``
  and the random part of the input). It vanishes iff ``p = 1`` and ``g = 0`` (for ``a != 0``):
  the head is switched off only by mass on a null-value token.
- SD-2: the rank-one head ``W_QK = c w e^T`` with ``w = cos(phi) u + sin(phi) e_3`` has
  per-query margins ``m_i = c d sqrt(1 - b^2) (a cos(phi) + sin(phi) sqrt(1 - a^2) t_i)`` with
  ``t_i`` a coordinate of a uniform unit vector in ``R^{d-2}`` (``(t + 1)/2 ~ Beta((d - 3)/2,
  (d - 3)/2)``), so the fraction of queries with ``A_i0 >= 1 - eps`` is ``P(t > t*)``.
- SD-3 (costs at mass ``>= 1 - eps`` for queries ``i >= 1``, keys ``j = 0 .. T - 1``):
  planted sink ``c u e^T``: nuclear = Frobenius = ``M/(a d sqrt(1 - b^2))``, rank 1. Optimal sink
  (clean geometry): ``M/(|xbar| |x_0 - xbar|)`` in both norms, rank 1, attained by
  ``W ~ xbar (x_0 - xbar)^T`` (``xbar`` the mean non-sink token); the lower bound is
  ``<W, xbar (x_0 - xbar)^T> >= M`` (Jensen over ``j`` and ``i``). Diagonal ``c I``: exact scale
  from ``(T - 2) e^{-c d (1 - a^2)} + e^{-c d (1 - a b)} = eps/(1 - eps)`` (uniform-margin
  sufficient scale ``M/(d (1 - rho_max))``, ``rho_max = max(a^2, a b)``); ``c I`` on ``R^d``
  costs ``c d`` (nuclear), ``c sqrt(d)`` (Frobenius), rank ``d``; the same scores come from
  ``c P`` with ``P`` the projector on the ``T``-dimensional token span (``c T``,
  ``c sqrt(T)``, rank ``T``). The optimal diagonal has no closed form here: it is computed by
  ``optimal_cost`` (scipy). A diagonal needs rank 2 at least (rank-one scores
  ``S_ij = y_i z_j`` peak at the same key for every query of one sign).
- SD-4: for a simplex Gram ``X X^T = q d ((1 - rho) I + rho 1 1^T)`` and ``A`` with mean row
  ``ipr`` ``Y2`` and mean row overlap ``C = mean_{i != k} sum_j A_ij A_kj``, the expectation over
  ``F`` of ``||P Y||^2`` and ``||Y||^2`` (``P`` the centring, ``Y = X + A X F^T``) gives
  ``mu'^2 = mu^2 (1 + sigma_v2 (Y2 - C)) / (1 + sigma_v2 ((1 - rho) Y2 + rho))`` with
  ``1 - rho = mu^2 T/(T - 1)``. Uniform attention (``Y2 = C = 1/T``): ``mu'^2 = mu^2/(1 +
  sigma_v2 (1 - mu^2))`` for *any* ``X``; ``A = I`` (``Y2 = 1``, ``C = 0``) leaves ``mu`` unchanged.
- SD-4 at finite ``d``: ``mu' = sqrt(N/D)`` is not ``sqrt(E N/E D)``. To second order in the
  fluctuations of ``N`` and ``D`` over ``F`` (relative variances ``O(1/d)``),
  ``E mu' = sqrt(E N/E D) (1 - Var N/(8 n^2) + 3 Var D/(8 m^2) - Cov(N, D)/(4 n m))`` with
  ``n = E N``, ``m = E D`` (the *Jensen factor*, error ``O(1/d^2)``). The moments are Gaussian
  quadratic-form moments of ``F`` given ``X`` and ``A`` (``sim.heads.update_moments``). Uniform
  attention (``N`` constant, ``D = ||X||^2 + 2 T xbar.v + T |v|^2`` with ``v = F xbar``) gives
  ``1 + 3 Var D/(8 m^2)`` with ``Var D/m^2 = 2 s (2 + s)(1 - mu^2)^2/(d (1 + s (1 - mu^2))^2)``
  (``s = sigma_v2``): ``1 + 3 s (2 + s)/(4 d (1 + s)^2)`` once the tokens have collapsed.
- SD-5: with ``W_QK = c I`` on isometric tokens (``T <= d``) ``A = p I + (1 - p)(J - I)/(T - 1)``,
  ``p = 1/(1 + (T - 1) e^{-c d})``, so ``A - I = -(1 - p) T/(T - 1) P`` and
  ``sum_i |y_i - v_i|^2 / sum_i |v_i|^2 = ((1 - p) T/(T - 1))^2 B`` exactly, with
  ``B = ||P X F^T||^2/||X F^T||^2 ~ Beta((T - 1) d/2, d/2)`` (``X F^T`` has i.i.d. Gaussian
  entries); its expectation is ``(1 - p)^2 T/(T - 1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sympy as sp
from scipy import optimize, stats

from theory.predictions import Prediction, register

T, d = sp.symbols("T d", positive=True)
eps = sp.symbols("epsilon", positive=True)
a, b = sp.symbols("sink_align sink_cos", real=True)
c = sp.symbols("qk_scale", positive=True)
g = sp.symbols("sink_value", real=True)
v = sp.symbols("sigma_v2", positive=True)
m = sp.symbols("margin", real=True)
p = sp.symbols("p", positive=True)
phi, t = sp.symbols("phi t", real=True)
Y2, C = sp.symbols("ipr overlap", positive=True)
mu2 = sp.symbols("mu2", positive=True)
n_upd, m_upd = sp.symbols("update_n update_m", positive=True)
var_n, var_m = sp.symbols("update_var_n update_var_m", nonnegative=True)
cov_nm = sp.symbols("update_cov", real=True)


# ----------------------------------------------------------------------------- SD-1, SD-2

def derive_sink_mass() -> sp.Expr:
    """``A_i0`` when the sink's score exceeds every other key's by ``margin`` (all equal)."""
    return 1 / (1 + (T - 1) * sp.exp(-m))


def derive_planted_sink_margin() -> sp.Expr:
    """Layer-1 margin of ``W_QK = c u e^T`` in the sink geometry: ``x_i^T W (x_0 - x_j)``."""
    x_i_u, x_0_e = a * sp.sqrt(d), sp.sqrt(d) * sp.sqrt(1 - b**2)
    return sp.simplify(c * x_i_u * x_0_e)


def derive_minimal_margin() -> sp.Expr:
    """Smallest equal margin with ``A_i0 >= 1 - eps``: solve ``A_i0(M) = 1 - eps``."""
    M = sp.log((T - 1) * (1 - eps) / eps)
    assert sp.simplify(derive_sink_mass().subs(m, M) - (1 - eps)) == 0
    assert sp.simplify(sp.diff(derive_sink_mass(), m)) != 0  # A_i0 increases with the margin
    return M


def derive_margin_log_slope() -> sp.Expr:
    """``dM/d log T``."""
    return sp.simplify(T * sp.diff(derive_minimal_margin(), T))


def derive_planted_sink_scale() -> sp.Expr:
    """Smallest ``qk_scale`` of ``c u e^T`` with ``A_i0 >= 1 - eps``: its nuclear and Frobenius
    cost (``||u e^T|| = 1``)."""
    return sp.simplify(derive_minimal_margin() / derive_planted_sink_margin().subs(c, 1))


def mean_token_norm2() -> sp.Expr:
    """``E |xbar|^2 / d`` of the mean non-sink token (exact in the clean geometry)."""
    return a**2 + (1 - a**2) / (T - 1)


def derive_output_norm() -> sp.Expr:
    """``E ||y_i||^2 / d`` (``i >= 1``) for sink mass ``p``, rest mass spread evenly over the
    ``T - 1`` other tokens (``z = p g x_0 + (1 - p) xbar``, ``E ||F z||^2 = sigma_v2 |z|^2``)."""
    z2 = p**2 * g**2 + 2 * p * (1 - p) * g * a * b + (1 - p) ** 2 * mean_token_norm2()
    return sp.expand(v * z2)


def derive_sd2_threshold() -> sp.Expr:
    """``t*``: query ``i`` of ``W_QK = c w e^T`` has ``A_i0 >= 1 - eps`` iff ``t_i >= t*``."""
    margin_i = c * d * sp.sqrt(1 - b**2) * (a * sp.cos(phi) + sp.sin(phi) * sp.sqrt(1 - a**2) * t)
    sol = sp.solve(sp.Eq(margin_i, derive_minimal_margin()), t)
    assert len(sol) == 1
    return sp.simplify(sol[0])


# ----------------------------------------------------------------------------- SD-3

def derive_optimal_sink_cost() -> sp.Expr:
    """Minimal nuclear (= Frobenius) norm of a sink, clean geometry: ``M/(|xbar| |x_0 -
    xbar|)``."""
    xbar2 = d * mean_token_norm2()
    diff2 = d - 2 * d * a * b + xbar2  # |x_0 - xbar|^2, x_0 . xbar = d a b
    return derive_minimal_margin() / sp.sqrt(xbar2 * diff2)


def derive_diagonal_condition() -> sp.Expr:
    """``sum_{j != i} e^{-(s_ii - s_ij)} - eps/(1 - eps)`` for ``W = c I`` (clean geometry,
    query ``i >= 1``): ``<= 0`` is the exact condition for ``A_ii >= 1 - eps``."""
    return (T - 2) * sp.exp(-c * d * (1 - a**2)) + sp.exp(-c * d * (1 - a * b)) - eps / (1 - eps)


def derive_diagonal_uniform_scale() -> sp.Expr:
    """Sufficient ``c`` of ``c I``: every margin ``c d (1 - x_i . x_j / d) >= M``."""
    rho_max = sp.Max(a**2, a * b)
    return derive_minimal_margin() / (d * (1 - rho_max))


# ----------------------------------------------------------------------------- SD-4, SD-5

def derive_consensus_update() -> sp.Expr:
    """``mu'^2`` after ``X -> X + A X F^T`` (expectation of numerator and denominator over
    ``F``) for a simplex Gram with ``mu^2 = mu2``, mean row ``ipr`` and row ``overlap``."""
    q_d = sp.symbols("qd", positive=True)  # q d: cancels
    rho = 1 - mu2 * T / (T - 1)
    # Gram G = qd((1 - rho) I + rho J); AGA^T = qd((1 - rho) A A^T + rho J) (rows sum to 1)
    tr_g, sum_g = q_d * T, q_d * ((1 - rho) * T + rho * T**2)
    tr_aga = q_d * ((1 - rho) * T * Y2 + rho * T)
    sum_aga = q_d * ((1 - rho) * (T * Y2 + T * (T - 1) * C) + rho * T**2)
    num = (tr_g - sum_g / T) + v * (tr_aga - sum_aga / T)  # ||P Y||^2, P = I - J/T
    den = tr_g + v * tr_aga
    return sp.simplify(num / den)


def derive_consensus_jensen() -> sp.Expr:
    """``E sqrt(N/D) / sqrt(n/m)`` to second order: expand ``sqrt((1 + e a)/(1 + e b))`` to
    ``e^2`` and take ``E a = E b = 0``, ``E a^2 = Var N/n^2``, ``E b^2 = Var D/m^2``,
    ``E a b = Cov(N, D)/(n m)``."""
    e, fa, fb = sp.symbols("e a b", real=True)
    series = sp.series(sp.sqrt((1 + e * fa) / (1 + e * fb)), e, 0, 3).removeO().subs(e, 1)
    moments = {(0, 0): 1, (1, 0): 0, (0, 1): 0, (2, 0): var_n / n_upd**2,
               (0, 2): var_m / m_upd**2, (1, 1): cov_nm / (n_upd * m_upd)}
    terms = sp.Poly(sp.expand(series), fa, fb).terms()
    return sp.expand(sum(coef * moments[mon] for mon, coef in terms))


def derive_uniform_jensen() -> sp.Expr:
    """The Jensen factor of uniform attention in terms of ``mu^2``: ``Var N = 0`` and
    ``Var D/m^2 = 2 s (2 + s)(1 - mu^2)^2/(d (1 + s (1 - mu^2))^2)``."""
    rel = 2 * v * (2 + v) * (1 - mu2) ** 2 / (d * (1 + v * (1 - mu2)) ** 2)
    jensen = derive_consensus_jensen().subs({var_n: 0, cov_nm: 0, var_m: rel * m_upd**2})
    return 1 + sp.factor(sp.simplify(jensen - 1))


def derive_diagonal_error() -> sp.Expr:
    """``E sum_i |y_i - v_i|^2 / sum_i |v_i|^2`` for diagonal mass ``p`` spread evenly
    (``A - I = -(1 - p) T/(T - 1) P``, ``E ||P G||^2/||G||^2 = (T - 1)/T``)."""
    return sp.simplify(((1 - p) * T / (T - 1)) ** 2 * (T - 1) / T)


def derive_diagonal_error_of_margin() -> sp.Expr:
    """The SD-5 error as a function of the diagonal margin ``c d``."""
    return sp.simplify(derive_diagonal_error().subs(p, derive_sink_mass()))


def generated_functions() -> list[tuple[str, sp.Expr, tuple[sp.Symbol, ...]]]:
    """The closed forms printed into ``theory/_generated/sinks.py``: (name, expr, args)."""
    return [
        ("sink_mass", derive_sink_mass(), (m, T)),
        ("planted_sink_margin", derive_planted_sink_margin(), (c, a, b, d)),
        ("minimal_margin", derive_minimal_margin(), (T, eps)),
        ("margin_log_slope", derive_margin_log_slope(), (T,)),
        ("planted_sink_scale", derive_planted_sink_scale(), (T, eps, a, b, d)),
        ("output_norm", derive_output_norm(), (p, g, a, b, T, v)),
        ("sd2_threshold", derive_sd2_threshold(), (T, eps, a, b, d, c, phi)),
        ("optimal_sink_cost", derive_optimal_sink_cost(), (T, eps, a, b, d)),
        ("diagonal_uniform_scale", derive_diagonal_uniform_scale(), (T, eps, a, b, d)),
        ("consensus_update2", derive_consensus_update(), (mu2, Y2, C, T, v)),
        ("consensus_jensen", derive_consensus_jensen(), (n_upd, m_upd, var_n, var_m, cov_nm)),
        ("uniform_jensen", derive_uniform_jensen(), (mu2, v, d)),
        ("diagonal_error", derive_diagonal_error(), (p, T)),
        ("diagonal_error_of_margin", derive_diagonal_error_of_margin(), (m, T)),
    ]


def _generated():
    """The printed evaluators (imported lazily: ``theory.derive`` rewrites them from here)."""
    from theory._generated import sinks

    return sinks


# ----------------------------------------------------------------------------- numerics

def sd2_fraction(T: int, eps: float, a: float, b: float, d: int, c: float, phi: float) -> float:
    """Predicted fraction of queries ``i >= 1`` with ``A_i0 >= 1 - eps`` under ``W_QK = c w
    e^T``, ``w = cos(phi) u + sin(phi) e_3`` (rests uniform on the sphere of ``R^{d-2}``)."""
    ts = float(_generated().sd2_threshold(T, eps, a, b, d, c, phi))
    k = (d - 3) / 2.0
    return float(stats.beta.sf((ts + 1.0) / 2.0, k, k))


def sd2_threshold_from_fraction(fraction: float, d: int) -> tuple[float, float]:
    """Inverse of the ``t`` law: ``(t*, density of t at t*)`` with ``P(t > t*) = fraction``."""
    k = (d - 3) / 2.0
    u = float(stats.beta.isf(fraction, k, k))
    return 2.0 * u - 1.0, float(stats.beta.pdf(u, k, k)) / 2.0


def sd2_rank_one_matrix(d: int, c: float, phi: float) -> np.ndarray:
    """``W_QK = c (cos(phi) e_1 + sin(phi) e_3) e_2^T`` (``d x d``, 0-based columns 0, 2, 1)."""
    w = np.zeros((d, d))
    w[0, 1] = c * math.cos(phi)
    w[2, 1] = c * math.sin(phi)
    return w


def diagonal_scale(T: int, eps: float, a: float, b: float, d: int) -> float:
    """Exact smallest ``c`` of ``c I`` with ``A_ii >= 1 - eps`` (clean geometry, ``T >= 3``)."""
    if T < 3:
        raise ValueError(f"T={T!r} must be >= 3")
    f = lambda x: float((T - 2) * math.exp(-x * d * (1 - a * a))  # noqa: E731
                        + math.exp(-x * d * (1 - a * b)) - eps / (1 - eps))
    hi = 1.0 / d
    while f(hi) > 0:
        hi *= 2.0
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-14, rtol=1e-13))


def clean_tokens(T: int, d: int, a: float, b: float) -> np.ndarray:
    """Clean sink geometry (``T x d``): ``x_0 = sqrt(d)(b e_1 + sqrt(1 - b^2) e_2)``, ``x_i =
    sqrt(d)(a e_1 + sqrt(1 - a^2) e_{i+2})``; needs ``d >= T + 1``."""
    if d < T + 1:
        raise ValueError(f"d={d!r} must be >= T + 1 = {T + 1}")
    x = np.zeros((T, d))
    x[0, 0], x[0, 1] = b, math.sqrt(1 - b * b)
    for i in range(1, T):
        x[i, 0], x[i, i + 1] = a, math.sqrt(1 - a * a)
    return math.sqrt(d) * x


@dataclass(frozen=True)
class Optimum:
    """A numerical minimal-norm ``W_QK`` (``d x d``) and its cost, with the smallest attention
    mass on the target over the queries ``i >= 1`` (``>= 1 - eps`` up to the solver's tolerance)."""

    cost: float
    W: np.ndarray
    mass: float
    success: bool


def _targets(T: int, pattern: str) -> np.ndarray:
    if pattern == "sink":
        return np.zeros(T - 1, dtype=int)
    if pattern == "diagonal":
        return np.arange(1, T)
    raise ValueError(f"pattern={pattern!r} must be 'sink' or 'diagonal'")


def _constraints(S: np.ndarray, targets: np.ndarray, L: float) -> tuple[np.ndarray, np.ndarray]:
    """``-L - logsumexp_{j != t_i}(S_ij - S_i t_i)`` (``>= 0`` is feasible) for ``i >= 1`` and
    its gradient with respect to ``S`` (``(T - 1) x T x T``)."""
    T = S.shape[0]
    val = np.empty(T - 1)
    grad = np.zeros((T - 1, T, T))
    for k, (i, tg) in enumerate(zip(range(1, T), targets, strict=True)):
        z = S[i] - S[i, tg]
        mask = np.ones(T, bool)
        mask[tg] = False
        zm = z[mask]
        top = zm.max()
        w = np.exp(zm - top)
        lse = top + math.log(w.sum())
        w /= w.sum()
        val[k] = -L - lse
        row = np.zeros(T)
        row[mask] = -w
        row[tg] = 1.0
        grad[k, i] = row
    return val, grad


def mass_on_target(W: np.ndarray, X: np.ndarray, pattern: str) -> float:
    """Smallest attention mass on the target (sink or self) over queries ``i >= 1``."""
    S = X @ W @ X.T
    A = np.exp(S - S.max(axis=1, keepdims=True))
    A /= A.sum(axis=1, keepdims=True)
    tg = _targets(X.shape[0], pattern)
    return float(min(A[i, j] for i, j in zip(range(1, X.shape[0]), tg, strict=True)))


def optimal_cost(X: np.ndarray, pattern: str, eps: float, norm: str,
                 space: str = "span", seed: int = 0) -> Optimum:
    """Minimal ``||W_QK||`` (``norm`` "frobenius" or "nuclear") with mass ``>= 1 - eps`` on the
    target of every query ``i >= 1`` (``pattern`` "sink": key 0; "diagonal": key ``i``), by
    scipy SLSQP on the exact convex constraints ``logsumexp_{j != t}(s_ij - s_it) <=
    -log((1 - eps)/eps)``.

    ``space="span"``: ``W = X^+ S X^{+T}`` restricted to the token span (it only meets the
    tokens through ``X W X^T``, and ``P W P`` never costs more), parametrised by ``M = R^{-1} S
    R^{-1}`` with ``R = G^{1/2}``, ``G = X X^T`` (``||W|| = ||M||``). ``space="full"``: ``W``
    itself (``d x d``), independent of that reduction (small ``d``). The nuclear norm is
    minimised as ``(||Q||_F^2 + ||K||_F^2)/2`` over ``M = Q K^T`` (or ``W = Q K^T``), started
    from the Frobenius optimum."""
    T, dim = X.shape
    L = math.log((1 - eps) / eps)
    tg = _targets(T, pattern)
    if space == "span":
        G = X @ X.T
        w_, V = np.linalg.eigh(G)
        R = (V * np.sqrt(w_)) @ V.T
        n = T
        to_w = lambda Mx: np.linalg.pinv(X) @ (R @ Mx @ R) @ np.linalg.pinv(X).T  # noqa: E731

        def scores(Mx):
            return R @ Mx @ R

        def pull(gS):  # dS -> dM
            return R @ gS @ R
    elif space == "full":
        n = dim
        to_w = lambda Mx: Mx  # noqa: E731

        def scores(Mx):
            return X @ Mx @ X.T

        def pull(gS):
            return X.T @ gS @ X
    else:
        raise ValueError(f"space={space!r} must be 'span' or 'full'")

    def cons_f(flat):
        return _constraints(scores(flat.reshape(n, n)), tg, L)[0]

    def cons_j(flat):
        _, gS = _constraints(scores(flat.reshape(n, n)), tg, L)
        return np.array([pull(gk).ravel() for gk in gS])

    rng = np.random.default_rng(seed)
    x0 = 0.1 * rng.standard_normal(n * n) / n
    res = optimize.minimize(lambda f: 0.5 * f @ f, x0, jac=lambda f: f, method="SLSQP",
                            constraints=[{"type": "ineq", "fun": cons_f, "jac": cons_j}],
                            options={"maxiter": 2000, "ftol": 1e-14})
    Mx = res.x.reshape(n, n)
    ok = bool(res.success)
    if norm == "nuclear":
        U, s, Vt = np.linalg.svd(Mx)
        q0 = (U * np.sqrt(s)).ravel()
        k0 = (Vt.T * np.sqrt(s)).ravel()

        def split(f):
            return f[:n * n].reshape(n, n), f[n * n:].reshape(n, n)

        def ncons_f(f):
            Q, K = split(f)
            return _constraints(scores(Q @ K.T), tg, L)[0]

        def ncons_j(f):
            Q, K = split(f)
            _, gS = _constraints(scores(Q @ K.T), tg, L)
            out = []
            for gk in gS:
                gM = pull(gk)
                out.append(np.r_[(gM @ K).ravel(), (gM.T @ Q).ravel()])
            return np.array(out)

        res = optimize.minimize(lambda f: 0.5 * f @ f, np.r_[q0, k0], jac=lambda f: f,
                                method="SLSQP",
                                constraints=[{"type": "ineq", "fun": ncons_f, "jac": ncons_j}],
                                options={"maxiter": 3000, "ftol": 1e-14})
        Q, K = split(res.x)
        Mx = Q @ K.T
        ok = bool(res.success)
        cost = float(np.linalg.svd(Mx, compute_uv=False).sum())
    elif norm == "frobenius":
        cost = float(np.linalg.norm(Mx))
    else:
        raise ValueError(f"norm={norm!r} must be 'frobenius' or 'nuclear'")
    W = to_w(Mx)
    return Optimum(cost, W, mass_on_target(W, X, pattern), ok)


NORMS = ("nuclear", "frobenius")


def planted_costs(T: int, eps: float, a: float, b: float, d: int) -> dict[str, float]:
    """Costs of the planted forms (clean geometry): sink ``c u e^T``, diagonal ``c I`` on
    ``R^d`` and ``c P`` on the token span, per norm (and rank)."""
    cs = float(_generated().planted_sink_scale(T, eps, a, b, d)) if a * a * (1 - b * b) > 0 \
        else math.inf  # u e^T gives the sink no margin without alignment
    cd = diagonal_scale(T, eps, a, b, d)
    return {"sink_scale": cs, "sink_nuclear": cs, "sink_frobenius": cs, "sink_rank": 1,
            "diagonal_scale": cd, "identity_nuclear": cd * d,
            "identity_frobenius": cd * math.sqrt(d), "identity_rank": d,
            "span_nuclear": cd * T, "span_frobenius": cd * math.sqrt(T), "span_rank": T}


def cost_ratio_record(T: int, eps: float, a: float, b: float, d: int) -> dict[str, float]:
    """Optimal sink (closed form) against optimal diagonal (numerical, token span) and the
    planted forms, per norm: costs and diagonal/sink ratios (> 1: the sink is cheaper)."""
    X = clean_tokens(T, d, a, b)
    sink = float(_generated().optimal_sink_cost(T, eps, a, b, d))
    rec: dict[str, float] = {"T": T, "eps": eps, "sink_align": a, "sink_cos": b, "d": d,
                             "optimal_sink": sink, **planted_costs(T, eps, a, b, d)}
    for norm in NORMS:
        opt = optimal_cost(X, "diagonal", eps, norm)
        rec[f"optimal_diagonal_{norm}"] = opt.cost
        rec[f"optimal_diagonal_{norm}_mass"] = opt.mass
        rec[f"ratio_optimal_{norm}"] = opt.cost / sink
        rec[f"ratio_planted_{norm}"] = rec[f"identity_{norm}"] / rec["sink_scale"]
    return rec


def consensus_update(mu: float, ipr: float, overlap: float, T: int, sigma_v2: float) -> float:
    """``mu'`` (SD-4) from ``mu``, mean row ``ipr`` and row overlap (see the module docstring)."""
    return float(np.sqrt(_generated().consensus_update2(mu * mu, ipr, overlap, T, sigma_v2)))


def consensus_jensen(n, m, var_n, var_m, cov):
    """The Jensen factor ``E mu' / sqrt(n/m)`` (SD-4, finite ``d``) from the moments of
    ``N = ||P Z||^2`` and ``D = ||Z||^2`` over ``F`` (``sim.heads.update_moments``); works
    elementwise on arrays."""
    return _generated().consensus_jensen(n, m, var_n, var_m, cov)


def near_diagonal_ipr_overlap(diagonal_mass: float, T: int) -> tuple[float, float]:
    """``(ipr, overlap)`` of ``A = q I + (1 - q)(J - I)/(T - 1)`` (``q`` the diagonal mass)."""
    r = (1 - diagonal_mass) / (T - 1)
    ipr = diagonal_mass**2 + (T - 1) * r * r
    overlap = 2 * diagonal_mass * r + (T - 2) * r * r
    return ipr, overlap


# ----------------------------------------------------------------------------- registry

register(Prediction(
    "sd_minimal_margin", "SD-2",
    "smallest equal logit margin of the sink over every other key with A_i0 >= 1 - eps",
    ("T", "epsilon"), "all T - 1 non-sink keys have the same score (sufficient in general)",
    lambda T, epsilon: _generated().minimal_margin(T, epsilon), derive_minimal_margin()))
register(Prediction(
    "sd_output_norm", "SD-1",
    "E ||y_i||^2/d of a head with sink mass p and sink value scale g (i >= 1)",
    ("p", "sink_value", "sink_align", "sink_cos", "T", "sigma_v2"),
    "sink geometry; rest mass spread evenly; random F and random non-sink parts",
    lambda p, sink_value, sink_align, sink_cos, T, sigma_v2: _generated().output_norm(
        p, sink_value, sink_align, sink_cos, T, sigma_v2), derive_output_norm()))
register(Prediction(
    "sd_optimal_sink_cost", "SD-3",
    "minimal nuclear (= Frobenius) norm of W_QK with A_i0 >= 1 - eps for all i >= 1",
    ("T", "epsilon", "sink_align", "sink_cos", "d"), "clean sink geometry (rests orthogonal)",
    lambda T, epsilon, sink_align, sink_cos, d: _generated().optimal_sink_cost(
        T, epsilon, sink_align, sink_cos, d), derive_optimal_sink_cost()))
register(Prediction(
    "sd_consensus_update", "SD-4",
    "mu'^2 after one attention layer with residual, from mu^2, row ipr and row overlap",
    ("mu2", "ipr", "overlap", "T", "sigma_v2"),
    "simplex Gram; ratio of expectations over F (error O(1/d))",
    lambda mu2, ipr, overlap, T, sigma_v2: _generated().consensus_update2(
        mu2, ipr, overlap, T, sigma_v2), derive_consensus_update()))
register(Prediction(
    "sd_consensus_jensen", "SD-4",
    "E mu' / sqrt(E N/E D): the finite-d (Jensen) factor of one layer's mu', given X and A",
    ("update_n", "update_m", "update_var_n", "update_var_m", "update_cov"),
    "second order in the fluctuations of N and D over F (error O(1/d^2))",
    lambda update_n, update_m, update_var_n, update_var_m, update_cov:
        _generated().consensus_jensen(update_n, update_m, update_var_n, update_var_m,
                                      update_cov), derive_consensus_jensen()))
register(Prediction(
    "sd_uniform_jensen", "SD-4",
    "the Jensen factor of uniform attention, from mu^2",
    ("mu2", "sigma_v2", "d"), "second order over F (error O(1/d^2)); any X",
    lambda mu2, sigma_v2, d: _generated().uniform_jensen(mu2, sigma_v2, d),
    derive_uniform_jensen()))
register(Prediction(
    "sd_diagonal_error", "SD-5",
    "E relative error of the token-wise map x_i -> x_i + F x_i under the diagonal pattern",
    ("margin", "T"), "isometric input, T <= d; margin = qk_scale d",
    lambda margin, T: _generated().diagonal_error_of_margin(margin, T),
    derive_diagonal_error_of_margin()))
