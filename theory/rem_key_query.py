"""Exact finite-``(T, d_k)`` theory of one key-query softmax attention layer (claim REM-F).

``theory.rem`` treats the ``s``-dependent parts of the scores of a softmax row as ``T`` i.i.d.
``N(0, sigma^2)`` variables, ``sigma = score_std(T, beta, 1, rho) = beta sqrt(ln T (1 - rho))``,
which is the law of a random transformer's scores at ``d -> inf``. At finite head dimension the
law is a Gaussian mixture, derived here (conventions of ``sim.config``).

Setting. Tokens ``x_t`` (``T x d``, ``T <= d``) on a simplex: ``|x_t|^2 = d``,
``x_t . x_t' = rho d`` (``t != t'``). One head of dimension ``d_k``; ``W_Q, W_K`` are ``d x d_k``
with i.i.d. ``N(0, qk^2)`` entries, ``qk^2 = beta sqrt(ln T)/d``, independent of each other and of
``W_V``. Scores ``a_ts = g_t . k_s / sqrt(d_k)`` with ``g_t = W_Q^T x_t``, ``k_s = W_K^T x_s``.

Conditional Gaussian argument. The columns of ``W_K`` are i.i.d. ``N(0, qk^2 I_d)``, so the
``k_s`` are jointly Gaussian with ``E k_s k_s'^T = qk^2 x_s . x_s' I_{d_k}``:
``k_s = sqrt(qk^2 d) (sqrt(rho) kappa_0 + sqrt(1 - rho) kappa_s)`` with ``kappa`` i.i.d.
``N(0, I_{d_k})``. The ``kappa_0`` term is common to all ``s`` and cancels in the softmax. Given
``W_Q`` (i.e. the ``g_t``), the ``s``-dependent parts ``sqrt(qk^2 d (1 - rho)/d_k) g_t . kappa_s``
are therefore i.i.d. over ``s``, and for two rows ``t != t'`` the pairs are bivariate normal
with covariance ``(1 - rho) qk^2 d G / d_k``, ``G = [[|g_t|^2, g_t.g_t'], [g_t.g_t', |g_t'|^2]]``.
The rows of ``g`` over the ``d_k`` coordinates are i.i.d. ``N(0, qk^2 d C)``,
``C = [[1, rho], [rho, 1]]``, so ``G = qk^2 d W`` with ``W ~ Wishart_2(d_k, C)``. With
``(qk^2 d)^2 = beta^2 ln T`` the pair covariance is ``sigma^2 W / d_k``:

- one row: ``T`` i.i.d. scores of standard deviation ``sigma sqrt(V)``, ``V = W_11/d_k ~
  chi2_{d_k}/d_k``, so ``E ipr``, ``E ipr^2``, ``E entropy`` are ``E_V`` of
  ``rem.row_statistics(T, sigma sqrt(V))`` (``key_query_row_statistics``), and the higher
  moments ``E Y_k = E sum_s A_ts^k`` are ``E_V`` of ``rem.ipr_moment_exact(k, T, sigma sqrt(V))``
  (``key_query_ipr_moment``);
- two rows: score pairs i.i.d. over ``s`` with standard deviations ``sigma sqrt(W_11/d_k)``,
  ``sigma sqrt(W_22/d_k)`` and correlation ``W_12/sqrt(W_11 W_22)`` (of either sign), so
  ``E overlap`` is ``E_W`` of the overlap of rows with unequal standard deviations
  (``row_overlap_general``, ``key_query_overlap``).

``d_k -> inf`` recovers ``rem`` (``V -> 1``, ``W/d_k -> C``). The output ``A X W_V`` averaged over
the independent ``W_V`` has ``E p_S/E q_S = (rho + (1-rho) E overlap)/(rho + (1-rho) E ipr)``
exactly (rows of ``A`` sum to one), at any ``d``.

Numerics. ``row_overlap_general`` uses the double Laplace representation of ``rem.row_overlap``
(``1/(S S') = int int e^{-aS - bS'} da db``), trapezoidal rules on one ``ln a``, ``ln b`` lattice
per row (step 0.25: the integrands are analytic in a strip, errors ~1e-13) and in the shared
Gaussian part of the two scores, split so that one step of the shared variable moves each lattice
by one step (or conditioning on the row with the smaller standard deviation).

The mixtures are product rules refined until two successive rules agree to ``_MIXTURE_TOL``
(1e-9, relative; the finer rule is returned, typically good to ~1e-11). A chi2 variable,
``x = c^2/2 ~ Gamma(shape)``, uses generalised Gauss-Laguerre (``scipy.special.roots_genlaguerre``)
for ``shape >= 8``; for smaller shapes Gauss-Laguerre converges only root-exponentially (the
integrands are smooth but not entire: an expectation over a Gaussian of variance ``v`` is not
analytic at ``v = 0``), and a trapezoidal rule in ``ln x`` is used instead. The Wishart matrix is
``W = C^{1/2} W_0 C^{1/2}``, ``W_0 ~ Wishart_2(d_k, I)`` in Bartlett form ``L L^T``,
``L = [[c_1, 0], [n, c_2]]`` (``c_1^2 ~ chi2_{d_k}``, ``c_2^2 ~ chi2_{d_k - 1}``,
``n ~ N(0, 1)``), with ``(n, c_2)`` in polar coordinates ``R (u, sqrt(1 - u^2))`` and then
``(c_1^2, R^2)`` as trace ``tau ~ chi2_{2 d_k}`` and split ``v = (c_1^2 - R^2)/tau``: ``tau``,
``v`` and ``u`` are independent, ``v`` and ``u`` Beta-distributed on ``[-1, 1]`` (Gauss-Jacobi).
In the plain Bartlett variables the integrand has complex singularities in ``n`` at distance
``~c_2`` from the real axis (where the second row's variance vanishes) and Gauss-Hermite in ``n``
converges slowly (errors ~1e-5 with 16 nodes at ``d_k = 8``); in these coordinates the
singularities sit at the ends of the ranges, where the densities vanish. Cost (overlap
evaluations of ~2-7 ms each, all levels tried): ~50-150 at ``d_k >= 1024``, ~600 at ``d_k = 64``,
~1200 at ``d_k = 16``, ~4400 at ``d_k = 8`` (~30 s); below ``d_k = 8`` (log-trapezoid) ~10^4.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache

import numpy as np
import sympy as sp
from scipy import special

from theory import rem
from theory.predictions import Prediction, register
from theory.rem import (
    _HERMITE_BELOW,
    _LAPLACE,
    _SIGMA_LN,
    RowStatistics,
    Values,
    _check_t,
    _free_energy,
    _generated,
    _psi,
    _psi_tail,
    _smooth_lattice,
    _vectorised,
    row_overlap,
    row_statistics,
    score_std,
)

_STEP = 0.25  # ln a, ln b lattice step (errors ~3e-13 at 0.25, 2e-9 at 0.3; tests)
_EDGE_TOL = 1e-17  # integrands at the edges of the initial range, relative to their peak
_KEEP_TOL = 1e-19  # the 2-D integral is restricted to where the marginal integrand exceeds this
# Gauss-Hermite (probability weights) for Gaussian smoothing or shifts of standard deviation
# < 0.3: the error is ~ n! (2 sd^2/pi^2)^n (psi is analytic in a strip of half-width pi/2),
# ~1e-15 at 20 nodes
_HERMITE_SMALL = (np.polynomial.hermite_e.hermegauss(20)[0],
                  np.polynomial.hermite_e.hermegauss(20)[1] / math.sqrt(2 * math.pi))


def _psi1(x: np.ndarray) -> np.ndarray:
    return _psi(1, x)


def _initial_range(T: int, std: float, widen: float) -> tuple[float, float]:
    """A generous ``y = ln a`` range around the peak ``y ~ -E ln S`` of the row's integrands."""
    c = _free_energy(T, std)
    return -c - widen * (50.0 + 10.0 * std), -c + widen * (30.0 + 10.0 * std)


def _trim(norm: np.ndarray) -> slice | None:
    """Where ``norm > _KEEP_TOL * peak`` (padded), or ``None`` if the edges are not negligible."""
    peak = np.max(np.abs(norm))
    if max(np.max(np.abs(norm[:3])), np.max(np.abs(norm[-3:]))) > _EDGE_TOL * peak:
        return None
    keep = np.nonzero(norm > _KEEP_TOL * peak)[0]
    return slice(max(keep[0] - 5, 0), min(keep[-1] + 5, len(norm) - 1) + 1)


def _axis_range(T: int, std: float, h: float) -> tuple[int, int]:
    """Lattice indices ``j`` (``y = j h``) where the row's marginal integrand
    ``T E[psi_1(y + g)] E[e^{-e^{y+g}}]^{T-1}`` (``g ~ N(0, std^2)``, which bounds the 2-D
    integrand in ``y``) exceeds ``_KEEP_TOL`` of its peak, padded by 5 steps."""
    for widen in (1.0, 1.5, 2.25, 3.4, 5.1, 7.6):
        lo, hi = _initial_range(T, std, widen)
        j0 = math.floor(lo / h)
        n = math.ceil(hi / h) - j0 + 1
        marg = _smooth_lattice(_psi_tail, j0 * h, n, h, std)
        with np.errstate(divide="ignore"):
            norm = T * _smooth_lattice(_psi1, j0 * h, n, h, std) * np.exp(
                (T - 1) * np.log1p(-np.minimum(marg, 1.0)))
        keep = _trim(norm)
        if keep is not None:
            return j0 + keep.start, j0 + keep.stop - 1
    raise RuntimeError(f"overlap quadrature range did not converge for T={T}, std={std}")


def _lines(j0: int, n: int, own: float, shifts: np.ndarray, lattice: bool,
           h: float) -> tuple[np.ndarray, np.ndarray]:
    """``E_v[psi(y_j + shifts_k + own v)]`` (``v ~ N(0, 1)``) for ``psi = psi_1`` and the tail
    ``1 - e^{-e^x}`` at ``y_j = (j0 + j) h``, ``j < n``: ``n x K`` arrays. ``lattice``:
    ``shifts_k = +-(k - kk) h``, one smoothed line read through sliding windows."""
    if lattice:
        kk = (len(shifts) - 1) // 2
        window = np.lib.stride_tricks.sliding_window_view
        out = [window(_smooth_lattice(fn, (j0 - kk) * h, n + 2 * kk, h, own), 2 * kk + 1)
               for fn in (_psi1, _psi_tail)]
        if shifts[0] > 0:  # negative correlation: the shift runs the other way
            out = [v[:, ::-1] for v in out]
        return np.ascontiguousarray(out[0]), np.ascontiguousarray(out[1])
    x = (j0 + np.arange(n))[:, None] * h + shifts[None, :]
    if own == 0.0:
        return _psi1(x), _psi_tail(x)
    if own < _HERMITE_BELOW:  # small smoothing: Gauss-Hermite, all nodes at once
        v, w = _HERMITE_SMALL
        x = x[:, :, None] + own * v
        return _psi1(x) @ w, _psi_tail(x) @ w
    return tuple(np.stack([_smooth_lattice(fn, j0 * h + s, n, h, own) for s in shifts], axis=1)
                 for fn in (_psi1, _psi_tail))


def _overlap_integral(T: int, stds: tuple[float, float], shared: tuple[float, float],
                      own: tuple[float, float], sign: int, h: float) -> float:
    """The double Laplace integral, the shared standard normal ``z`` entering row ``i`` as
    ``shared_i z`` (row 2 with ``sign``). ``shared_1 >= 0.3``: trapezoidal rule in ``z`` with
    step ``h/shared_1``, so that row 1 moves by one lattice step per step in ``z`` (and row 2 too
    when ``shared_2 = shared_1``; otherwise row 2 is entirely shared and evaluated directly);
    below, Gauss-Hermite nodes."""
    if shared[0] >= _HERMITE_BELOW:
        dz = h / shared[0]
        kk = math.ceil(math.sqrt(2 * math.log(1e18 * T)) / dz)
        z = np.arange(-kk, kk + 1) * dz
        weights = dz * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        lattice = (True, shared[1] == shared[0])
    else:
        z, weights = _HERMITE_SMALL
        lattice = (False, False)
    axes = []
    for i in range(2):
        j0, j1 = _axis_range(T, stds[i], h)
        f1, tail = _lines(j0, j1 - j0 + 1, own[i], (sign if i else 1) * shared[i] * z,
                          lattice[i], h)
        axes.append((f1, tail, tail @ weights))  # tail @ weights = 1 - L_0
    (f1a, ta, ma), (f1b, tb, mb) = axes
    k1 = (f1a * weights) @ f1b.T  # ab E[w w' e^{-aw - bw'}]
    one_minus_j = ma[:, None] + mb[None, :] - (ta * weights) @ tb.T
    with np.errstate(divide="ignore"):
        power = np.exp((T - 1) * np.log1p(-np.clip(one_minus_j, 0.0, 1.0)))
    return float(T * h * h * np.sum(k1 * power))


@lru_cache(maxsize=8192)
def _overlap(T: int, std_1: float, std_2: float, r: float, h: float) -> float:
    """``std_1 >= std_2 > 0``, ``0 < |r| <= 1``."""
    ar, sign = abs(r), (1 if r > 0 else -1)
    if ar * std_1 <= std_2:  # equal shared parts: the same lattice step on both axes
        a = math.sqrt(ar * std_1 * std_2)
        shared = (a, a)
    else:  # the second row entirely shared (evaluated directly, no smoothing)
        shared = (ar * std_1, std_2)
    own = (math.sqrt(max(std_1**2 - shared[0]**2, 0.0)),
           0.0 if shared[1] == std_2 else math.sqrt(max(std_2**2 - shared[1]**2, 0.0)))
    return _overlap_integral(T, (std_1, std_2), shared, own, sign, h)


def row_overlap_general(T: int, std_1: float, std_2: float, correlation: float,
                        *, _step: float = _STEP) -> float:
    """Exact ``E sum_s A_ts A_t's`` of two softmax rows whose ``T`` score pairs are i.i.d. over
    ``s``, bivariate Gaussian with standard deviations ``std_1``, ``std_2`` and correlation
    ``correlation`` in ``[-1, 1]`` (REM-F; ``rem.row_overlap`` is the case of equal standard
    deviations and ``correlation >= 0``).

    Double Laplace representation ``1/(S S') = int int e^{-aS - bS'} da db``:
    ``E overlap = T int int E[w w' e^{-aw - bw'}] E[e^{-aw - bw'}]^{T-1} da db``, the inner
    expectations conditioned on a shared Gaussian part of ``(g, g')``, trapezoidal rules in
    ``ln a``, ``ln b`` and the shared part. Independent rows (``correlation = 0``) or a
    uniform row (a zero standard deviation) give ``1/T`` exactly."""
    T = _check_t(T)
    s1, s2, r = float(std_1), float(std_2), float(correlation)
    for name, v in (("std_1", s1), ("std_2", s2)):
        if not (math.isfinite(v) and v >= 0.0):
            raise ValueError(f"{name}={v!r} must be finite and >= 0")
    if not -1.0 <= r <= 1.0:
        raise ValueError(f"correlation={correlation!r} must be in [-1, 1]")
    if s1 == 0.0 or s2 == 0.0 or r == 0.0:
        return 1.0 / T
    if s1 < s2:
        s1, s2 = s2, s1
    return _overlap(T, s1, s2, r, float(_step))


# ----------------------------------------------------------------------------- mixture rules

_MIXTURE_TOL = 1e-9  # two successive rules must agree to this, relative
_LAGUERRE_FROM = 8.0  # Gamma shape from which Gauss-Laguerre is used (log-trapezoid below)
# refinement levels (Gamma rule, Gauss-Jacobi nodes): Gauss-Laguerre nodes for shapes >= 8,
# log-trapezoid steps below
_LAGUERRE_LEVELS = ((3, 3), (4, 4), (6, 5), (8, 6), (12, 8), (16, 10), (20, 12), (24, 16),
                    (32, 20), (48, 24), (64, 32))
_LOG_LEVELS = ((0.45, 6), (0.38, 8), (0.32, 10), (0.28, 12), (0.24, 16), (0.2, 20),
               (0.16, 24), (0.13, 32))
_LOG_CUT = 30.0  # log-trapezoid: nodes where x e^{-x} x^{shape-1} is within e^{-30} of its peak


def _gamma_rule(n: int, shape: float) -> tuple[np.ndarray, np.ndarray]:
    """``n``-point Gauss rule for ``x ~ Gamma(shape, 1)`` (generalised Gauss-Laguerre): nodes from
    ``scipy.special.roots_genlaguerre``, probability weights from the Christoffel function of the
    orthonormal polynomials (which, unlike the unnormalised weights, cannot overflow)."""
    alpha = shape - 1.0
    x, _ = special.roots_genlaguerre(n, alpha)
    p_prev, p = np.zeros_like(x), np.ones_like(x)
    christoffel = np.ones_like(x)
    for kk in range(n - 1):  # sqrt(b_{k+1}) p_{k+1} = (x - a_k) p_k - sqrt(b_k) p_{k-1}
        a_k, b_k, b_next = 2 * kk + alpha + 1, kk * (kk + alpha), (kk + 1) * (kk + 1 + alpha)
        p_prev, p = p, ((x - a_k) * p - math.sqrt(b_k) * p_prev) / math.sqrt(b_next)
        christoffel += p * p
    w = 1.0 / christoffel
    return x, w / w.sum()


def _log_gamma_rule(step: float, shape: float) -> tuple[np.ndarray, np.ndarray]:
    """Rule for ``x ~ Gamma(shape, 1)`` with small ``shape``: trapezoidal rule in ``t = ln x``
    (geometric convergence: the integrands are analytic in a strip around the real ``t`` axis),
    plus a node at ``x = 0`` carrying the remaining mass, so that the truncated left tail costs
    only ``E[f(x) - f(0)]`` there (``O(x^{shape+1})``)."""
    a = shape
    peak = math.log(a + 1.0)  # maximum of (a + 1) t - e^t
    k_lo = math.floor(-(_LOG_CUT / (a + 1.0) + 1.0) / step)
    k_hi = math.ceil((math.log(_LOG_CUT + a + 10.0) + 2.0 - peak) / step)
    t = peak + np.arange(k_lo, k_hi + 1) * step
    g = (a + 1.0) * t - np.exp(t)
    t = t[g >= (a + 1.0) * (peak - 1.0) - _LOG_CUT]
    w = step * np.exp(a * t - np.exp(t) - special.gammaln(a))
    return np.concatenate([[0.0], np.exp(t)]), np.concatenate([[1.0 - w.sum()], w])


def _gamma_expectation_rule(shape: float, level: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for ``x ~ Gamma(shape, 1)`` at refinement ``level``: Gauss-Laguerre for
    ``shape >= 8`` (where it converges fast), the log-trapezoid below (where Gauss-Laguerre,
    being polynomial, converges only root-exponentially for integrands that are not entire)."""
    if shape >= _LAGUERRE_FROM:
        return _gamma_rule(_LAGUERRE_LEVELS[level][0], shape)
    return _log_gamma_rule(_LOG_LEVELS[level][0], shape)


def _levels(shape: float) -> tuple[tuple[float, int], ...]:
    return _LAGUERRE_LEVELS if shape >= _LAGUERRE_FROM else _LOG_LEVELS


def _jacobi_rule(exponent: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n``-point Gauss-Jacobi probability rule on ``[-1, 1]`` for the density
    ``~ (1 - u^2)^exponent``."""
    u, w = special.roots_jacobi(n, exponent, exponent)
    return u, w / w.sum()


def _start_level(nodes: float, column: int) -> int:
    """The finest Gauss-Laguerre level whose node count in ``column`` (0: Laguerre, 1: Jacobi)
    is at most ``nodes`` (rules of thumb for where to start refining, fitted to
    ``_MIXTURE_TOL``)."""
    return max([i for i, lv in enumerate(_LAGUERRE_LEVELS) if lv[column] <= nodes], default=0)


def _refine(evaluate, start: int, stop: int, tol: float, what: str) -> tuple[np.ndarray, int]:
    """Evaluate successive rules at levels ``start, ..., stop - 1`` until two agree to ``tol``
    (relative, elementwise); return the finer one and its level."""
    previous = None
    for level in range(start, stop):
        value = np.asarray(evaluate(level), dtype=float)
        if previous is not None and np.all(np.abs(value - previous)
                                           <= tol * np.abs(value) + 1e-300):
            return value, level
        previous = value
    raise RuntimeError(f"{what}: the mixture rule did not converge to {tol}")


def _check_dk(d_k) -> int | float:
    """``d_k`` as an int ``>= 1``, or ``math.inf`` (``None`` or infinite: ``d -> inf``)."""
    if d_k is None:
        return math.inf
    v = float(d_k)
    if v == math.inf:
        return math.inf
    if not (math.isfinite(v) and v == int(v) and v >= 1):
        raise ValueError(f"d_k={d_k!r} must be an integer >= 1 or inf")
    return int(v)


def _check_std(name: str, value) -> float:
    v = float(value)
    if not (math.isfinite(v) and v >= 0.0):
        raise ValueError(f"{name}={value!r} must be finite and >= 0")
    return v


# ----------------------------------------------------------------------------- one row

def key_query_row_statistics(T: int, d_k: int | float | None, score_std: float, *,
                             tol: float = _MIXTURE_TOL) -> RowStatistics:
    """``E ipr``, ``E ipr^2``, ``E entropy`` (nats) and ``E sum_s A_ts`` of one softmax row of a
    key-query head of dimension ``d_k`` (REM-F at finite ``d``): the ``chi2_{d_k}/d_k`` mixture
    ``E_V[rem.row_statistics(T, score_std sqrt(V))]``, where ``score_std`` is the ``d -> inf``
    score standard deviation ``beta sqrt(ln T (1 - rho))``. ``d_k = inf`` (or ``None``) is
    ``rem.row_statistics(T, score_std)``. The fields are those of ``rem.RowStatistics``
    (``score_std`` there is the ``d -> inf`` one)."""
    T = _check_t(T)
    dk = _check_dk(d_k)
    sigma = _check_std("score_std", score_std)
    if dk == math.inf or sigma == 0.0:
        return row_statistics(T, sigma)
    return _row_mixture(T, dk, sigma, float(tol))[0]


def _row_level(T: int, d_k: int, sigma: float, level: int) -> np.ndarray:
    """``E_V`` of (ipr, ipr^2, entropy, normalisation) by the chi2 rule at ``level``."""
    shape = d_k / 2  # V = chi2_{d_k}/d_k = x/shape, x ~ Gamma(shape)
    x, w = _gamma_expectation_rule(shape, level)
    rows = [row_statistics(T, sigma * math.sqrt(xi / shape)) for xi in x]
    return w @ np.array([[r.ipr, r.ipr_second_moment, r.entropy, r.normalisation] for r in rows])


def _row_start(d_k: int) -> int:
    shape = d_k / 2
    return _start_level(1.0 + 28.0 / math.sqrt(shape), 0) if shape >= _LAGUERRE_FROM else 1


@lru_cache(maxsize=4096)
def _row_mixture(T: int, d_k: int, sigma: float, tol: float) -> tuple[RowStatistics, int]:
    fields, level = _refine(lambda lv: _row_level(T, d_k, sigma, lv), _row_start(d_k),
                            len(_levels(d_k / 2)), tol, "key_query_row_statistics")
    return RowStatistics(T, sigma, *(float(f) for f in fields)), level


def key_query_ipr_moment(kk: float, T: int, d_k: int | float | None, score_std: float, *,
                         tol: float = _MIXTURE_TOL) -> float:
    """Exact ``E Y_k = E sum_s A_ts^k`` (``k >= 1``) of one softmax row of a key-query head of
    dimension ``d_k`` (REM-F at finite ``d``): the ``chi2_{d_k}/d_k`` mixture
    ``E_V[rem.ipr_moment_exact(k, T, score_std sqrt(V))]`` of the Laplace identity
    ``1/S^k = int t^{k-1} e^{-tS} dt/Gamma(k)``, ``score_std`` the ``d -> inf`` score standard
    deviation ``beta sqrt(ln T (1 - rho))``. ``k = 2`` is ``E ipr``; ``d_k = inf`` (or ``None``)
    is ``rem.ipr_moment_exact(k, T, score_std)``."""
    T = _check_t(T)
    dk = _check_dk(d_k)
    sigma = _check_std("score_std", score_std)
    k_ = float(kk)
    if not (math.isfinite(k_) and k_ >= 1.0):
        raise ValueError(f"k={kk!r} must be finite and >= 1")
    if dk == math.inf or sigma == 0.0:
        return rem.ipr_moment_exact(k_, T, sigma)
    return _moment_mixture(k_, T, dk, sigma, float(tol))[0]


def _moment_level(kk: float, T: int, d_k: int, sigma: float, level: int) -> float:
    """``E_V rem.ipr_moment_exact(k, T, sigma sqrt(V))`` by the chi2 rule at ``level`` (the same
    nodes as ``_row_level``, so the cached REM-F grids are shared)."""
    shape = d_k / 2
    x, w = _gamma_expectation_rule(shape, level)
    return float(w @ np.array([rem.ipr_moment_exact(kk, T, sigma * math.sqrt(xi / shape))
                               for xi in x]))


@lru_cache(maxsize=4096)
def _moment_mixture(kk: float, T: int, d_k: int, sigma: float, tol: float) -> tuple[float, int]:
    value, level = _refine(lambda lv: _moment_level(kk, T, d_k, sigma, lv), _row_start(d_k),
                           len(_levels(d_k / 2)), tol, "key_query_ipr_moment")
    return float(value), level


# ----------------------------------------------------------------------------- two rows

def _wishart_nodes(d_k: int, rho: float, level: int, drop: float) -> np.ndarray:
    """Nodes ``(W_11, W_22, W_12)/d_k`` and weights (rows) of the product rule for
    ``W ~ Wishart_2(d_k, C)``, ``C = [[1, rho], [rho, 1]]``; nodes whose weights sum to at most
    ``drop`` are left out.

    ``W = C^{1/2} W_0 C^{1/2}`` with ``W_0 ~ Wishart_2(d_k, I)`` = the Gram matrix of two
    independent ``N(0, I_{d_k})`` vectors of squared lengths ``c_1^2`` and ``R^2`` and angle
    cosine ``u`` (Bartlett: ``W_0 = L L^T``, ``L = [[c_1, 0], [n, c_2]]``, ``(n, c_2) =
    R (u, sqrt(1 - u^2))``). The trace ``tau = c_1^2 + R^2 ~ chi2_{2 d_k}``, the split
    ``v = (c_1^2 - R^2)/tau`` (density ``~ (1 - v^2)^{d_k/2 - 1}``) and ``u`` (density
    ``~ (1 - u^2)^{(d_k - 3)/2}``) are independent. In these coordinates the integrand is
    singular only at the ends of the ranges (a vanishing variance), where the density vanishes;
    in the Bartlett ``n`` it has complex singularities at distance ``~c_2`` from the real axis
    and Gauss-Hermite converges slowly. ``v -> -v`` swaps the rows, so only ``v >= 0`` is
    evaluated (weights doubled)."""
    x, wx = _gamma_expectation_rule(float(d_k), level)  # tau/2 ~ Gamma(d_k)
    n_angle = _levels(d_k)[level][1]
    v, wv = _jacobi_rule(d_k / 2 - 1.0, n_angle)
    half = v > 1e-12
    keep_v = half | (np.abs(v) <= 1e-12)
    v, wv = np.where(half, v, 0.0)[keep_v], np.where(half, 2.0 * wv, wv)[keep_v]
    if d_k == 1:
        u, wu = np.array([-1.0, 1.0]), np.array([0.5, 0.5])
    else:
        u, wu = _jacobi_rule((d_k - 3) / 2, n_angle)
    tau = (2.0 * x / d_k)[:, None, None]
    sq1, sq2 = tau * (1 + v[None, :, None]) / 2, tau * (1 - v[None, :, None]) / 2
    cross = np.sqrt(sq1 * sq2) * u[None, None, :]  # c_1 R u / d_k
    shape = np.broadcast_shapes(sq1.shape, cross.shape)
    sq1, sq2, cross = (np.broadcast_to(a, shape).ravel() for a in (sq1, sq2, cross))
    w = (wx[:, None, None] * wv[None, :, None] * wu[None, None, :]).ravel()
    al = 0.5 * (math.sqrt(1.0 + rho) + math.sqrt(1.0 - rho))  # C^{1/2} = [[al, be], [be, al]]
    be = 0.5 * (math.sqrt(1.0 + rho) - math.sqrt(1.0 - rho))
    w11 = al * al * sq1 + 2 * al * be * cross + be * be * sq2
    w22 = be * be * sq1 + 2 * al * be * cross + al * al * sq2
    w12 = al * be * (sq1 + sq2) + (al * al + be * be) * cross
    order = np.argsort(w)
    keep = order[np.cumsum(w[order]) > drop]
    return np.stack([w11[keep], w22[keep], w12[keep], w[keep]])


def key_query_overlap(T: int, d_k: int | float | None, score_std: float, rho: float, *,
                      tol: float = _MIXTURE_TOL) -> float:
    """Exact ``E sum_s A_ts A_t's`` (``t != t'``) of a key-query head of dimension ``d_k`` on
    simplex tokens with cosine ``rho`` (REM-F at finite ``d``): the ``Wishart_2(d_k, C)``
    mixture of ``row_overlap_general(T, score_std sqrt(W_11/d_k), score_std sqrt(W_22/d_k),
    W_12/sqrt(W_11 W_22))``, ``C = [[1, rho], [rho, 1]]``, ``score_std`` the ``d -> inf`` score
    standard deviation ``beta sqrt(ln T (1 - rho))``. ``d_k = inf`` is ``rem.row_overlap``."""
    T = _check_t(T)
    dk = _check_dk(d_k)
    sigma = _check_std("score_std", score_std)
    r = float(rho)
    if not -1.0 <= r <= 1.0:
        raise ValueError(f"rho={rho!r} must be in [-1, 1]")
    if sigma == 0.0:
        return 1.0 / T
    if dk == math.inf:
        return row_overlap(T, sigma, r) if r >= 0 else row_overlap_general(T, sigma, sigma, r)
    return _overlap_mixture(T, dk, sigma, r, float(tol))[0]


def _overlap_level(T: int, d_k: int, sigma: float, rho: float, level: int,
                   tol: float = _MIXTURE_TOL) -> float:
    """``E_W row_overlap_general`` by the Wishart rule at ``level`` (nodes of total weight
    ``<= 1e-3 tol/T`` left out)."""
    w11, w22, w12, w = _wishart_nodes(d_k, rho, level, drop=1e-3 * tol / T)
    total = 0.0
    for a, b, c, weight in zip(w11, w22, w12, w, strict=True):
        corr = min(max(c / math.sqrt(a * b), -1.0), 1.0) if a * b > 0 else 0.0
        total += weight * row_overlap_general(T, sigma * math.sqrt(a), sigma * math.sqrt(b), corr)
    return total


def _overlap_start(d_k: int) -> int:
    return _start_level(1.0 + 25.0 / math.sqrt(d_k), 1) if d_k >= _LAGUERRE_FROM else 2


@lru_cache(maxsize=4096)
def _overlap_mixture(T: int, d_k: int, sigma: float, rho: float, tol: float) -> tuple[float, int]:
    value, level = _refine(lambda lv: _overlap_level(T, d_k, sigma, rho, lv, tol),
                           _overlap_start(d_k), len(_levels(d_k)), tol, "key_query_overlap")
    return float(value), level


# ----------------------------------------------------------------------------- evaluators

def _statistics(T: float, d_k: float, beta: float, rho: float) -> RowStatistics:
    T, d_k, beta, rho = (float(v) for v in (T, d_k, beta, rho))  # plain floats in messages
    Ti, dk, b, r = _check_t(T), _check_dk(d_k), _check_std("beta", beta), _check_rho(rho)
    return key_query_row_statistics(Ti, dk, score_std(Ti, b, 1.0, r))


def _check_rho(rho: float) -> float:
    r = float(rho)
    if not 0.0 <= r <= 1.0:
        raise ValueError(f"rho={rho!r} must be in [0, 1]")
    return r


def ipr_key_query(T: Values, d_k: Values, beta: Values, rho: Values = 0.0) -> Values:
    """Exact ``E ipr`` of a key-query softmax row at finite ``T`` and head dimension ``d_k``
    (simplex tokens with cosine ``rho``; broadcasts over all arguments; ``d_k = inf`` is
    ``rem.ipr_finite``)."""
    return _vectorised(lambda t, k, b, r: _statistics(t, k, b, r).ipr, T, d_k, beta, rho)


def ipr_variance_key_query(T: Values, d_k: Values, beta: Values, rho: Values = 0.0) -> Values:
    """Exact ``Var ipr`` of one key-query row (over the weights and the row's scores)."""
    return _vectorised(lambda t, k, b, r: _statistics(t, k, b, r).ipr_variance, T, d_k, beta,
                       rho)


def entropy_ratio_key_query(T: Values, d_k: Values, beta: Values, rho: Values = 0.0) -> Values:
    """Exact ``E entropy / ln T`` of a key-query softmax row."""
    return _vectorised(lambda t, k, b, r: _statistics(t, k, b, r).entropy / math.log(t), T, d_k,
                       beta, rho)


def ipr_moment_key_query(k: Values, T: Values, d_k: Values, beta: Values,
                         rho: Values = 0.0) -> Values:
    """Exact ``E Y_k = E sum_s A_ts^k`` (``k >= 1``) of a key-query softmax row at finite ``T``
    and head dimension ``d_k`` (simplex tokens with cosine ``rho``; broadcasts over all
    arguments; ``k = 2`` is ``ipr_key_query``, ``d_k = inf`` is ``rem.ipr_moment_finite``)."""
    def one(kk, t, dk, b, r):
        kk, t, dk, b, r = (float(v) for v in (kk, t, dk, b, r))  # plain floats in messages
        Ti, dki, bb, rr = _check_t(t), _check_dk(dk), _check_std("beta", b), _check_rho(r)
        return key_query_ipr_moment(kk, Ti, dki, score_std(Ti, bb, 1.0, rr))
    return _vectorised(one, k, T, d_k, beta, rho)


def _overlap_one(T: float, d_k: float, beta: float, rho: float) -> float:
    T, d_k, beta, rho = (float(v) for v in (T, d_k, beta, rho))  # plain floats in messages
    Ti, dk, b, r = _check_t(T), _check_dk(d_k), _check_std("beta", beta), _check_rho(rho)
    return key_query_overlap(Ti, dk, score_std(Ti, b, 1.0, r), r)


def overlap_key_query(T: Values, d_k: Values, beta: Values, rho: Values) -> Values:
    """Exact ``E sum_s A_ts A_t's`` (``t != t'``) of a key-query head of dimension ``d_k`` on
    simplex tokens with cosine ``rho`` (``d_k = inf`` is ``rem.overlap_finite``)."""
    return _vectorised(_overlap_one, T, d_k, beta, rho)


def cosine_ratio_key_query(T: Values, d_k: Values, beta: Values, rho: Values) -> Values:
    """``E p_S / E q_S = (rho + (1-rho) E overlap)/(rho + (1-rho) E ipr)`` of the output
    ``A X W_V`` of one key-query head, averaged exactly over ``W_V`` (independent of ``W_Q``,
    ``W_K``; any ``d``)."""
    def one(t, k, b, r):
        y2, o = _statistics(t, k, b, r).ipr, _overlap_one(t, k, b, r)  # validate first
        return float(_generated().cosine_ratio(float(r), y2, o))
    return _vectorised(one, T, d_k, beta, rho)


# ----------------------------------------------------------------------------- registry

_DK = sp.Symbol("d_k", positive=True, integer=True)


@cache
def derive_general_overlap_representation() -> tuple[sp.Expr, tuple[sp.Symbol, ...]]:
    """``row_overlap_general`` as an unevaluated integral, and its symbols ``(std_1, std_2,
    correlation)``: ``T int int E[w w' e^{-aw - bw'}] E[e^{-aw - bw'}]^{T-1} da db`` with
    ``(g, g') = (s_1 z, s_2 (r z + sqrt(1 - r^2) z_2))``."""
    z, z2 = sp.symbols("z z_2", real=True)
    a, b = sp.symbols("a b", positive=True)
    s1, s2 = sp.symbols("s_1 s_2", nonnegative=True)
    r = sp.Symbol("r", real=True)
    gauss = lambda x: sp.exp(-x**2 / 2) / sp.sqrt(2 * sp.pi)
    g1, g2 = s1 * z, s2 * (r * z + sp.sqrt(1 - r**2) * z2)
    pair = lambda f: sp.Integral(f * gauss(z) * gauss(z2), (z, -sp.oo, sp.oo),
                                 (z2, -sp.oo, sp.oo))
    laplace2 = sp.exp(-a * sp.exp(g1) - b * sp.exp(g2))
    expr = rem.T * sp.Integral(pair(sp.exp(g1 + g2) * laplace2) * pair(laplace2) ** (rem.T - 1),
                           (a, 0, sp.oo), (b, 0, sp.oo))
    return expr, (s1, s2, r)


@cache
def derive_key_query_representations() -> dict[str, sp.Expr]:
    """REM-F at finite ``d_k`` as unevaluated integrals: ``ipr``, ``moment`` (``E Y_k``) and
    ``entropy`` (per ``ln T``) over ``V ~ chi2_{d_k}/d_k``; ``overlap`` over the two squared
    lengths ``c_1^2, c_2^2 ~ chi2_{d_k}`` and the angle cosine ``u`` of two independent
    ``N(0, I_{d_k})`` vectors ``h_1, h_2``, with ``g_t = a h_1 + b h_2``,
    ``g_t' = b h_1 + a h_2`` (``[[a, b], [b, a]] = C^{1/2}``), ``W = (g_i . g_j)``."""
    v = sp.Symbol("V", positive=True)
    chi2 = ((_DK / 2) ** (_DK / 2) * v ** (_DK / 2 - 1) * sp.exp(-_DK * v / 2)
            / sp.gamma(_DK / 2))
    sigma = _LAPLACE["sigma"]
    mixture = lambda e: sp.Integral(e.subs(sigma, _SIGMA_LN * sp.sqrt(v)) * chi2, (v, 0, sp.oo))
    c1, c2 = sp.symbols("c_1 c_2", positive=True)
    u = sp.Symbol("u", real=True)
    chi = lambda c: c ** (_DK - 1) * sp.exp(-c**2 / 2) / (2 ** (_DK / 2 - 1) * sp.gamma(_DK / 2))
    angle = (1 - u**2) ** ((_DK - 3) / 2) / sp.beta(sp.Rational(1, 2), (_DK - 1) / 2)
    al = (sp.sqrt(1 + rem.rho) + sp.sqrt(1 - rem.rho)) / 2
    be = (sp.sqrt(1 + rem.rho) - sp.sqrt(1 - rem.rho)) / 2
    cross = c1 * c2 * u
    w11 = al**2 * c1**2 + 2 * al * be * cross + be**2 * c2**2
    w22 = be**2 * c1**2 + 2 * al * be * cross + al**2 * c2**2
    w12 = al * be * (c1**2 + c2**2) + (al**2 + be**2) * cross
    general, (s1, s2, r) = derive_general_overlap_representation()
    inner = general.subs({s1: _SIGMA_LN * sp.sqrt(w11 / _DK), s2: _SIGMA_LN * sp.sqrt(w22 / _DK),
                          r: w12 / sp.sqrt(w11 * w22)})
    overlap_expr = sp.Integral(inner * chi(c1) * chi(c2) * angle, (c1, 0, sp.oo),
                               (c2, 0, sp.oo), (u, -1, 1))
    return {"ipr": mixture(_LAPLACE["ipr"]), "moment": mixture(_LAPLACE["moment"]),
            "entropy": mixture(_LAPLACE["entropy"]) / sp.log(rem.T),
            "overlap": overlap_expr}


_ASSUMPTIONS = ("one softmax head of dimension d_k; W_Q, W_K independent with i.i.d. "
                "N(0, beta sqrt(ln T)/d) entries; tokens on a simplex (|x_t|^2 = d, "
                "x_t.x_s = rho d, T <= d, 0 <= rho <= 1); exact at finite T and d_k "
                "(d_k = inf: the d -> inf REM-F law)")
_KQ = derive_key_query_representations()
_KQ_ARGS = (rem.T, _DK, rem.beta, rem.rho)

register(Prediction(
    "remf_ipr_key_query", "REM-F",
    "exact E sum_s A_ts^2 of a key-query softmax row at finite T and head dimension d_k "
    "(chi2_{d_k}/d_k mixture of the REM-F row integral)",
    ("T", "d_k", "beta", "rho"), _ASSUMPTIONS, ipr_key_query, _KQ["ipr"]))
register(Prediction(
    "remf_ipr_moment_key_query", "REM-F",
    "exact E sum_s A_ts^k (k >= 1) of a key-query softmax row at finite T and head dimension "
    "d_k (chi2_{d_k}/d_k mixture of the REM-F Laplace integral of 1/S^k)",
    ("k", "T", "d_k", "beta", "rho"), _ASSUMPTIONS, ipr_moment_key_query, _KQ["moment"]))
register(Prediction(
    "remf_entropy_key_query", "REM-F",
    "exact E[row entropy]/ln T of a key-query softmax row at finite T and head dimension d_k "
    "(chi2_{d_k}/d_k mixture)",
    ("T", "d_k", "beta", "rho"), _ASSUMPTIONS, entropy_ratio_key_query, _KQ["entropy"]))
register(Prediction(
    "remf_overlap_key_query", "REM-F",
    "exact E sum_s A_ts A_t's (t != t') of a key-query head at finite T and d_k (Wishart_2 "
    "mixture of the overlap of rows with unequal score variances and correlation W_12/sqrt(W_11 "
    "W_22))",
    ("T", "d_k", "beta", "rho"), _ASSUMPTIONS, overlap_key_query, _KQ["overlap"]))
register(Prediction(
    "remf_cosine_ratio_key_query", "REM-F",
    "E p_S / E q_S of the output A X W_V of one key-query head: (rho + (1-rho) E overlap)/(rho + "
    "(1-rho) E ipr) with the finite-d_k ipr and overlap",
    ("T", "d_k", "beta", "rho"),
    _ASSUMPTIONS + "; W_V independent of W_Q, W_K (averaged over exactly)",
    cosine_ratio_key_query,
    rem.derive_cosine_ratio().subs({rem.overlap: sp.Function("E_overlap")(*_KQ_ARGS),
                                    rem.ipr: sp.Function("E_ipr")(*_KQ_ARGS)})))


# ----------------------------------------------------------------------------- short names
# ``sigprop predict ipr --T 512 --d 512 --beta 2``: the most exact theory of one key-query
# softmax layer (one head, d_k = d) on orthogonal tokens with |x|^2 = d. Asymptotic variants
# keep their own names (rem2_ipr_asymptotic, rem1_entropy_asymptotic).

def _check_orthogonal(T: Values, d: Values) -> None:
    if np.any(np.asarray(T, dtype=float) > np.asarray(d, dtype=float)):
        raise ValueError(f"T={T!r} orthogonal tokens need T <= d, got d={d!r}")


def layer_ipr(T: Values, d: Values, beta: Values) -> Values:
    """Exact ``E sum_s A_ts^2`` of one key-query softmax layer with one head (``d_k = d``) on
    orthogonal tokens with ``|x|^2 = d`` (``ipr_key_query`` at ``rho = 0``)."""
    _check_orthogonal(T, d)
    return ipr_key_query(T, d, beta, 0.0)


def layer_entropy(T: Values, d: Values, beta: Values) -> Values:
    """Exact mean row entropy (nats) of one key-query softmax layer with one head (``d_k = d``)
    on orthogonal tokens with ``|x|^2 = d``: ``ln T`` times ``entropy_ratio_key_query``."""
    _check_orthogonal(T, d)
    return np.log(np.asarray(T, dtype=float)) * entropy_ratio_key_query(T, d, beta, 0.0)


_LAYER = ("one key-query softmax layer, one head (d_k = d), W_Q, W_K with i.i.d. "
          "N(0, beta sqrt(ln T)/d) entries, orthogonal tokens with |x|^2 = d (T <= d); exact at "
          "finite T and d")
register(Prediction(
    "ipr", "REM-F",
    "E sum_s A_ts^2 of one key-query softmax layer at finite T and d (the exact theory; "
    "asymptotic: rem2_ipr_asymptotic)",
    ("T", "d", "beta"), _LAYER, layer_ipr,
    _KQ["ipr"].subs({_DK: sp.Symbol("d", positive=True), rem.rho: 0})))
register(Prediction(
    "entropy", "REM-F",
    "mean row entropy (nats) of one key-query softmax layer at finite T and d (the exact theory; "
    "asymptotic, per ln T: rem1_entropy_asymptotic)",
    ("T", "d", "beta"), _LAYER, layer_entropy,
    (sp.log(rem.T) * _KQ["entropy"]).subs({_DK: sp.Symbol("d", positive=True), rem.rho: 0})))
