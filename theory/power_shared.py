"""Layers as power iterations with shared weights (PM-1, PM-4, PM-5; science/power-method.md).

Stack (one head, ``mlp=False``, weights shared by all layers): ``x_i <- N(alpha x_i +
F sum_j A_ij x_j)``, tokens ``x_i`` are rows of ``X`` (``T x d``) written as column vectors,
``F = W_V^T`` (``d x d``), ``N`` the L2 normaliser (``norm="l2"``, ``|x|^2 = d``) or LayerNorm
(``norm="post"``: ``N(y) = sqrt(d) P y/|P y|``, ``P = I - 1 1^T/d`` centres the features).

Uniform attention (``A = 1 1^T/T``). With ``xbar`` the mean token and ``delta_i = x_i - xbar``:
``alpha x_i + F xbar = M xbar + alpha delta_i``, ``M = alpha I + F``. A common normalising
scale would make the mean do power iteration on ``M`` and leave the deviations multiplied by
``alpha``; the per-token scales differ only at second order near consensus. Linearising
around consensus on the top eigenvector ``v_1`` of ``M`` (eigenvalues ``mu_k`` by decreasing
modulus; ``derive_linearised_map``):

- the mean token's tangent components along ``v_k`` (``k >= 2``) scale by ``mu_k/mu_1``, so
  ``sin angle(xbar_l, v_1) ~ C |mu_2/mu_1|^l`` (the *mean rate*);
- deviations scale by ``alpha/mu_1``, so a single token's ``sin angle(x_i, v_1)`` decays at
  the *token rate* ``max(|mu_2|, |alpha|)/|mu_1|``.

LayerNorm: after one layer tokens are centred, ``P(M xbar + alpha delta_i) = P M xbar +
alpha delta_i``, so the same holds with ``M`` replaced by ``P M`` (whose nonzero eigenvectors lie
in ``range(P)``). The winner is the eigenvector of ``M`` (or ``P M``) of largest modulus: ``|alpha
+ lambda|``, not ``|lambda|``, orders the eigenvalues ``lambda`` of ``F``.

Softmax attention (PM-5). Near consensus ``x_j = sqrt(d)(v_1 + e_j)``, the scores are
``s_0 + a.e_i + b.e_j + O(e^2)``; the softmax removes the row constant ``a.e_i``, so
``A_ij = (1 + b.(e_j - ebar))/T + O(e^2)`` and ``sum_j A_ij x_j = xbar + sum_j (A_ij - 1/T)
delta_j = xbar + O(e^2)``: attention is uniform to first order, and both rates are independent
of ``beta``. ``beta`` only sets when the linear regime starts (``beta sqrt(ln T) |e| << 1``).

First layer at finite ``beta`` (PM-5; ``derive_first_layer``). Isometric input (``x_i =
sqrt(d) U e_i``, ``U`` a Haar ``d x T`` frame), no normaliser (``norm="none"``), one layer
``y_i = alpha x_i + F sum_j A_ij x_j``. Given the frame, ``X W_Q`` and ``X W_K`` are i.i.d.
Gaussian, so ``A`` is independent of ``U``; and ``E_U x_j^T B x_k = tr(B) delta_jk``. The
softmax rows are exchangeable in the keys, so ``E A_ij = 1/T``, and two moments of ``A`` remain:
``P = E sum_j A_ij^2`` (the REM participation ratio, ``rem_key_query.ipr_key_query``) and
``O = E sum_j A_ij A_i'j`` (``i != i'``, two rows with independent queries:
``rem_key_query.overlap_key_query(T, d_k, beta, 0)``). The engine's ``q = sum_i |y_i|^2/(T d)``
and ``p = sum_{i != i'} y_i.y_i'/(T (T - 1) d)`` then have the exact expectations

    E q = alpha^2 + 2 alpha tr F/(T d) + P tr(F^T F)/d,
    E p = 2 alpha tr F/(T d) + O tr(F^T F)/d,

so the deviation energy kept, ``E sum_i |y_i - ybar|^2/((T - 1) d) = E (q - p) = alpha^2 + (P - O)
tr(F^T F)/d`` (input value 1), and the mean-token energy gain ``E |ybar|^2/|xbar|^2 = E (q + (T -
1) p) = alpha^2 + 2 alpha tr F/d + (P + (T - 1) O) tr(F^T F)/d``. Uniform attention (``P = O =
1/T``) keeps ``alpha^2`` of the deviations and gives the mean ``tr(M^T M)/d``; rows on single
keys (``P -> 1``, ``O -> 0``) keep ``alpha^2 + tr(F^T F)/d``. How far attention is from uniform,
``P - O``, sets how much of ``F`` the deviations see in the transient; near consensus the
linearisation above makes the asymptotic rates beta-independent.

Steering (PM-4), ``F' = F + mu u u^T``. If ``u`` is an eigenvector of ``F`` (eigenvalue
``lambda_u``), it is one of ``M'`` with ``alpha + lambda_u + mu`` and wins once ``mu >
mu* = rho - alpha - lambda_u``, ``rho = max_{k != u} |alpha + lambda_k|``
(``derive_steering_threshold``). For random symmetric ``F = (G + G^T)/sqrt 2`` (off-diagonal
variance ``sigma_v2/d``: semicircle on ``[-2s, 2s]``, ``s = sqrt(sigma_v2)``) and a fixed unit
``u``, the spike separates (BBP) once ``mu > s``, at ``theta = mu + s^2/mu``, with
``|<v_1, u>|^2 = 1 - s^2/mu^2`` (``derive_bbp``, from the semicircle's Stieltjes transform), and
the tokens converge at the token rate ``(alpha + 2 s)/(alpha + theta)`` (``alpha > 0``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import sympy as sp

from theory.predictions import Prediction, register

alpha = sp.Symbol("alpha_attn", positive=True)
mu_1, mu_2 = sp.symbols("mu_1 mu_2", real=True, nonzero=True)
lam_u, rho, steer = sp.symbols("lambda_u rho mu", real=True)
v, z, theta = sp.symbols("sigma_v2 z theta", positive=True)
mu_s = sp.Symbol("mu", positive=True)
NORMS = ("l2", "post")


# ----------------------------------------------------------------------------- derivations

@cache
def derive_linearised_map() -> dict[str, sp.Expr]:
    """First-order map of the tangents ``t_i`` (component along ``v_2`` over component along
    ``v_1``, scale free so the normaliser drops out) of two tokens in the eigenbasis of ``M =
    diag(mu_1, mu_2)``: ``t_i' = (alpha t_i + (mu_2 - alpha) tbar)/mu_1``. Returns the mean
    factor ``tbar'/tbar``, the deviation factor ``(t_1 - t_2)'/(t_1 - t_2)``, and the two
    rates (the module docstring)."""
    eps, t1, t2 = sp.symbols("epsilon t_1 t_2", real=True)
    F = sp.diag(mu_1 - alpha, mu_2 - alpha)
    xs = [sp.Matrix([1, eps * t]) / sp.sqrt(1 + eps**2 * t**2) for t in (t1, t2)]
    xbar = (xs[0] + xs[1]) / 2
    new = [alpha * x + F * xbar for x in xs]
    tan = [sp.series(y[1] / y[0], eps, 0, 2).removeO() for y in new]
    mean = sp.simplify(sp.expand((tan[0] + tan[1]) / 2) / (eps * (t1 + t2) / 2))
    dev = sp.simplify(sp.expand(tan[0] - tan[1]) / (eps * (t1 - t2)))
    assert sp.simplify(mean - mu_2 / mu_1) == 0 and sp.simplify(dev - alpha / mu_1) == 0
    return {"mean_factor": mean, "deviation_factor": dev,
            "mean_rate": sp.Abs(mu_2 / mu_1),
            "token_rate": sp.Max(sp.Abs(mu_2), alpha) / sp.Abs(mu_1)}


@cache
def derive_steering_threshold() -> sp.Expr:
    """``mu*`` at which the steered eigenvalue ``alpha + lambda_u + mu`` of ``M'`` reaches the
    largest other modulus ``rho`` (``u`` an eigenvector of ``F``; ``mu > 0`` branch)."""
    return sp.solve(sp.Eq(alpha + lam_u + steer, rho), steer)[0]


@cache
def derive_bbp() -> dict[str, sp.Expr]:
    """Rank-one spike ``mu u u^T`` on a semicircle of radius ``2 s`` (``s^2 = sigma_v2``):
    Stieltjes transform ``G(z) = (z - sqrt(z^2 - 4 s^2))/(2 s^2)``; the outlier solves
    ``G(theta) = 1/mu`` (exists iff ``G(2 s) = 1/s > 1/mu``), and the squared overlap is
    ``-1/(mu^2 G'(theta))``; the token rate is the bulk edge ``alpha + 2 s`` over
    ``alpha + theta``."""
    root = sp.Function("r")(z)  # sqrt(z^2 - 4 s^2), positive for z > 2 s
    G = (z - root) / (2 * v)
    threshold = sp.simplify(1 / G.subs(root, 0).subs(z, 2 * sp.sqrt(v)))
    outlier = mu_s + v / mu_s
    root_at = mu_s - v / mu_s  # the positive root at theta when mu > s
    assert sp.expand(root_at**2 - (outlier**2 - 4 * v)) == 0
    assert sp.simplify(G.subs(root, root_at).subs(z, outlier) - 1 / mu_s) == 0
    dG = sp.diff(G, z).subs(sp.Derivative(root, z), z / root)
    overlap2 = sp.factor(sp.simplify(-1 / (mu_s**2 * dG.subs(root, root_at).subs(z, outlier))))
    rate = (alpha + 2 * sp.sqrt(v)) / (alpha + outlier)
    return {"threshold": threshold, "outlier": outlier, "overlap2": overlap2, "rate": rate}


T_sym, d_sym = sp.symbols("T d", positive=True)
tr_F, tr_FF = sp.symbols("tr_F tr_FF", real=True)
ipr_P, ov_O = sp.symbols("P O", nonnegative=True)


@cache
def derive_first_layer() -> dict[str, sp.Expr]:
    """Exact first-layer expectations (module docstring, *First layer at finite beta*) of the
    engine's ``q``, ``p``, the deviation energy kept ``q - p`` and the mean energy gain
    ``q + (T - 1) p``, in ``alpha``, ``T``, ``d``, ``tr_F = tr F``, ``tr_FF = tr(F^T F)``,
    ``P = E ipr``, ``O = E overlap``. Built from the moment rules (``E A_ij = 1/T``,
    ``E sum_j A_ij^2 = P``, ``E sum_j A_ij A_i'j = O``, ``E x_j^T B x_k = tr B delta_jk``)
    applied to ``|y_i|^2`` and ``|sum_i y_i|^2`` term by term."""
    a, T, d = alpha, T_sym, d_sym
    # sum_i |y_i|^2 = alpha^2 sum |x_i|^2 + 2 alpha sum_ij A_ij x_i^T F x_j
    #                 + sum_i sum_jk A_ij A_ik x_j^T F^T F x_k
    total = a**2 * T * d + 2 * a * T * (1 / T) * tr_F + T * ipr_P * tr_FF
    # sum_i y_i = alpha sum_i x_i + F sum_j c_j x_j, column sums c_j = sum_i A_ij:
    # E c_j = 1, sum_j E c_j^2 = T P + T (T - 1) O
    colsum2 = a**2 * T * d + 2 * a * T * tr_F + (T * ipr_P + T * (T - 1) * ov_O) * tr_FF
    q = sp.simplify(total / (T * d))
    p = sp.simplify((colsum2 - total) / (T * (T - 1) * d))
    deviation = sp.simplify(q - p)
    mean_gain = sp.simplify(q + (T - 1) * p)
    # limits: uniform attention keeps alpha^2 of the deviations, the mean gets tr(M^T M)/d
    uniform = {ipr_P: 1 / T, ov_O: 1 / T}
    assert sp.simplify(deviation.subs(uniform) - a**2) == 0
    assert sp.simplify(mean_gain.subs(uniform) - (a**2 + 2 * a * tr_F / d + tr_FF / d)) == 0
    # rows on single keys (P = 1; O = 0 for distinct keys): the deviations see all of F^T F
    hard = {ipr_P: 1, ov_O: 0}
    assert sp.simplify(deviation.subs(hard) - (a**2 + tr_FF / d)) == 0
    out = {"q": q, "p": p, "deviation": deviation, "mean_gain": mean_gain}
    return {k: sp.collect(sp.expand(e), [tr_FF, tr_F], sp.factor) for k, e in out.items()}


#: arguments of the printed first-layer functions (``generated_functions``)
FIRST_LAYER_ARGS = (alpha, T_sym, d_sym, tr_F, tr_FF, ipr_P, ov_O)


def generated_functions() -> list[tuple[str, sp.Expr, tuple[sp.Symbol, ...]]]:
    """The closed forms printed into ``theory/_generated/power_shared.py``: (name, expr, args)."""
    lin = derive_linearised_map()
    bbp = derive_bbp()
    # max(a, b) = (a + b + |a - b|)/2: the NumPy printer's Max needs an unimported functools
    a, b = sp.Abs(mu_2), alpha
    token = lin["token_rate"].replace(sp.Max, lambda *args: (a + b + sp.Abs(a - b)) / 2)
    assert all(sp.simplify((token - lin["token_rate"]).subs({mu_1: 2, mu_2: m, alpha: 1})) == 0
               for m in (sp.Rational(1, 3), -3))
    return [("mean_rate", lin["mean_rate"], (mu_1, mu_2)),
            ("token_rate", token, (mu_1, mu_2, alpha)),
            ("steering_threshold", derive_steering_threshold(), (alpha, lam_u, rho)),
            ("bbp_threshold", bbp["threshold"], (v,)),
            ("bbp_outlier", bbp["outlier"], (mu_s, v)),
            ("bbp_overlap2", bbp["overlap2"], (mu_s, v)),
            ("bbp_rate", bbp["rate"], (mu_s, v, alpha))] + [
            (f"first_layer_{k}", e, FIRST_LAYER_ARGS) for k, e in derive_first_layer().items()]


def _generated():
    from theory._generated import power_shared

    return power_shared


# ----------------------------------------------------------------------------- numbers

def power_matrix(F: np.ndarray, alpha_attn: float = 1.0, norm: str = "l2") -> np.ndarray:
    """``M = alpha I + F`` (``norm="l2"``) or ``P M`` (``norm="post"``), ``d x d``."""
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r} is not allowed; choose one of {', '.join(NORMS)}")
    F = np.asarray(F, dtype=float)
    d = F.shape[0]
    m = alpha_attn * np.eye(d) + F
    if norm == "post":
        m = m - np.ones((d, d)) @ m / d
    return m


@dataclass(frozen=True)
class PowerRates:
    """Spectrum facts of the power matrix: ``mu_1, mu_2`` (largest moduli, complex allowed),
    the rates, the top eigenvector ``v_1`` (real, unit; NaN for a complex pair) and whether the
    top eigenvalue is real and strictly dominant."""

    mu_1: complex
    mu_2: complex
    mean_rate: float
    token_rate: float
    v_1: np.ndarray
    converges: bool


def rates(F: np.ndarray, alpha_attn: float = 1.0, norm: str = "l2") -> PowerRates:
    """Mean and token rates of the shared-weight stack with value/output product ``F``
    (module docstring; printed closed forms)."""
    m = power_matrix(F, alpha_attn, norm)
    values, vectors = np.linalg.eig(m)
    order = np.argsort(-np.abs(values), kind="stable")
    values, vectors = values[order], vectors[:, order]
    real = abs(values[0].imag) <= 1e-10 * abs(values[0])
    g = _generated()
    m1, m2 = abs(values[0]), abs(values[1])
    v1 = np.real(vectors[:, 0]) if real else np.full(m.shape[0], np.nan)
    if real:
        v1 = v1 / np.linalg.norm(v1)
    return PowerRates(complex(values[0]), complex(values[1]), float(g.mean_rate(m1, m2)),
                      float(g.token_rate(m1, m2, abs(alpha_attn))), v1,
                      bool(real and m1 > m2 * (1 + 1e-12)))


def value_matrix_with_spectrum(eigenvalues: np.ndarray, seed: int) -> np.ndarray:
    """Symmetric ``F = Q diag(eigenvalues) Q^T`` with ``Q`` Haar-orthogonal from ``seed``."""
    lam = np.asarray(eigenvalues, dtype=float)
    q = haar_orthogonal(lam.size, seed)
    return (q * lam) @ q.T


def haar_orthogonal(d: int, seed: int) -> np.ndarray:
    """A Haar-distributed orthogonal ``d x d`` matrix (QR of a Gaussian, signs fixed)."""
    g = np.random.default_rng(seed).standard_normal((d, d))
    q, r = np.linalg.qr(g)
    return q * np.sign(np.diag(r))


def steering_threshold(F: np.ndarray, u: np.ndarray, alpha_attn: float = 1.0) -> float:
    """``mu*`` for ``u`` an eigenvector of symmetric ``F`` (``ValueError`` otherwise)."""
    F = np.asarray(F, dtype=float)
    u = np.asarray(u, dtype=float) / np.linalg.norm(u)
    lam_u_value = float(u @ F @ u)
    if np.linalg.norm(F @ u - lam_u_value * u) > 1e-9 * max(1.0, np.linalg.norm(F)):
        raise ValueError("steering_threshold needs u to be an eigenvector of F")
    lams = np.linalg.eigvalsh((F + F.T) / 2)
    k = int(np.argmin(np.abs(lams - lam_u_value)))
    rest = np.delete(lams, k)
    return float(_generated().steering_threshold(alpha_attn, lam_u_value,
                                                 np.max(np.abs(alpha_attn + rest))))


def bbp(mu: float, sigma_v2: float, alpha_attn: float = 1.0) -> dict[str, float]:
    """BBP facts for ``F' = F + mu u u^T``, ``F`` random symmetric: threshold, outlier
    ``theta``, overlap ``|<v_1, u>|`` (0 below threshold) and token rate (1 below)."""
    g = _generated()
    thr = float(g.bbp_threshold(sigma_v2))
    if mu <= thr:
        return {"threshold": thr, "outlier": float("nan"), "overlap": 0.0, "rate": 1.0}
    return {"threshold": thr, "outlier": float(g.bbp_outlier(mu, sigma_v2)),
            "overlap": float(np.sqrt(g.bbp_overlap2(mu, sigma_v2))),
            "rate": float(g.bbp_rate(mu, sigma_v2, alpha_attn))}


#: relative accuracy asked of the two-row overlap mixture (Monte-Carlo errors are >~ 1e-4)
OVERLAP_TOL = 1e-6


def attention_moments(T: int, d_k: int, beta: float, overlap: bool = True) -> dict[str, float]:
    """``P = E ipr`` and ``O = E overlap`` (``rho = 0``) of a key-query softmax head
    (``theory.rem_key_query``, exact quadrature; ``O`` costs ~10 s at ``T = 8, d_k = 16``,
    NaN when ``overlap=False``). ``beta = 0`` is uniform attention."""
    from theory import rem_key_query

    if beta == 0.0:
        return {"ipr": 1.0 / T, "overlap": 1.0 / T}
    ipr = float(rem_key_query.ipr_key_query(T, d_k, beta))
    ov = math.nan
    if overlap:
        ov = rem_key_query.key_query_overlap(T, d_k, rem_key_query.score_std(T, beta, 1.0, 0.0),
                                             0.0, tol=OVERLAP_TOL)
    return {"ipr": ipr, "overlap": ov}


def first_layer(F: np.ndarray, T: int, ipr: float, overlap: float = math.nan,
                alpha_attn: float = 1.0) -> dict[str, float]:
    """Exact layer-1 expectations (``derive_first_layer``) of ``q``, ``p``, the deviation energy
    kept ``q - p`` and the mean energy gain ``q + (T - 1) p`` for value/output product ``F``
    (``d x d``), isometric input, ``norm="none"``, attention moments ``ipr``, ``overlap``
    (``overlap`` NaN gives NaN for all but ``q``)."""
    F = np.asarray(F, dtype=float)
    d = F.shape[0]
    args = (alpha_attn, T, d, float(np.trace(F)), float(np.sum(F * F)), ipr, overlap)
    return {k: float(getattr(_generated(), f"first_layer_{k}")(*args))
            for k in ("q", "p", "deviation", "mean_gain")}


# ----------------------------------------------------------------------------- predictions

register(Prediction(
    "pm1_mean_rate", "PM-1",
    "per-layer contraction of sin angle(mean token, v_1(M)), shared weights, uniform attention",
    ("mu_1", "mu_2"), "linearised near consensus; real, strictly dominant mu_1",
    lambda mu_1, mu_2: float(_generated().mean_rate(mu_1, mu_2)),
    derive_linearised_map()["mean_rate"]))
register(Prediction(
    "pm1_token_rate", "PM-1",
    "per-layer contraction of sin angle(token, v_1(M)): max(|mu_2|, alpha)/|mu_1|",
    ("mu_1", "mu_2", "alpha_attn"), "linearised near consensus; also for softmax attention (PM-5)",
    lambda mu_1, mu_2, alpha_attn: float(_generated().token_rate(mu_1, mu_2, alpha_attn)),
    derive_linearised_map()["token_rate"]))
register(Prediction(
    "pm4_threshold_eigen", "PM-4",
    "steering threshold mu* = rho - alpha - lambda_u for u an eigenvector of F",
    ("alpha_attn", "lambda_u", "rho"), "exact (u eigenvector of F)",
    lambda alpha_attn, lambda_u, rho: float(_generated().steering_threshold(
        alpha_attn, lambda_u, rho)), derive_steering_threshold()))
register(Prediction(
    "pm4_bbp_threshold", "PM-4",
    "steering threshold for random symmetric F (semicircle radius 2 sqrt(sigma_v2)): "
    "sqrt(sigma_v2)", ("sigma_v2",), "d -> infinity (BBP)",
    lambda sigma_v2: float(_generated().bbp_threshold(sigma_v2)), derive_bbp()["threshold"]))
register(Prediction(
    "pm4_bbp_overlap2", "PM-4",
    "|<v_1(M'), u>|^2 = 1 - sigma_v2/mu^2 above the threshold", ("mu", "sigma_v2"),
    "d -> infinity (BBP)", lambda mu, sigma_v2: float(_generated().bbp_overlap2(mu, sigma_v2)),
    derive_bbp()["overlap2"]))
register(Prediction(
    "pm4_bbp_rate", "PM-4",
    "token rate toward v_1(M') above the threshold: (alpha + 2 s)/(alpha + mu + s^2/mu)",
    ("mu", "sigma_v2", "alpha_attn"), "d -> infinity; alpha > 0",
    lambda mu, sigma_v2, alpha_attn: float(_generated().bbp_rate(mu, sigma_v2, alpha_attn)),
    derive_bbp()["rate"]))
