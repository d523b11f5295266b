"""Softmax rows as a Random Energy Model (Giorlandino and Goldt): entropy collapse, condensation,
rank collapse, and exact finite-``T`` predictions (claims REM-1 to REM-5 and REM-F).

Conventions (as in ``sim.config``): rows are tokens, ``X`` is ``T x d``; ``q = <|x_t|^2>/d`` and
``p = <x_t . x_s>/d`` (``t != s``) are the order parameters, ``rho = p/q`` the token cosine.
Query/key entries have variance ``beta sqrt(ln T)/d``, so for tokens with order parameters
``(q, p)`` the part of a score ``a_ts`` that varies with ``s`` is Gaussian with standard deviation
``score_std = beta sqrt(ln T) sqrt(q (q - p))`` (the shared part cancels in the softmax). A
softmax row ``A_ts = e^{a_ts}/S`` is a Random Energy Model with ``T`` states and inverse
temperature ``beta``. ``ipr = Y2 = sum_s A_ts^2``; ``Y_k = sum_s A_ts^k``; ``entropy`` is the row
entropy ``-sum_s A_ts ln A_ts`` in nats. ``overlap = sum_s A_ts A_t's`` (``t != t'``).

Results derived here (sympy unless stated):

REM-1. Microcanonical REM entropy per ``ln T``: ``s(e) = 1 - e^2/(2 q(q-p))``; maximising
``s(e) + beta e`` gives the row entropy ``S/ln T -> 1 - beta^2/beta_c^2`` for ``beta < beta_c`` and
``-> 0`` above (entropy collapse), with ``beta_c(q, p) = sqrt(2/(q(q-p)))``.

REM-2. Above ``beta_c`` the largest weights ``e^{a_ts}`` form a Poisson process of intensity
``x^{-1-m}`` with ``m = beta_c/beta`` (the Gaussian tail slope at the maximum ``sqrt(2 ln T)``),
so the normalised weights are Poisson-Dirichlet(``m``). Campbell's formula with the Laplace
representation ``1/S^k = int t^{k-1} e^{-tS} dt / Gamma(k)`` gives
``E Y_k -> Gamma(k - m)/(Gamma(k) Gamma(1 - m))``; ``E Y2 -> 1 - m`` above ``beta_c``, ``0`` below.

REM-3. With value vectors ``v_s = x_s W_V``, ``E v_s.v_s'/d = sigma_v2 [p + (q-p) delta_ss']``,
one attention layer maps ``q_S = sigma_v2 [p + (q - p) ipr]``,
``p_S = sigma_v2 [p + (q - p) overlap]``.
The paper neglects the overlap (it is ``1/T`` for independent rows): after LN (``q = 1``,
``p = rho``) the cosine map is ``Phi_S(rho) = rho/((1 - rho) ipr + rho)``, asymptotically ``1`` for
``beta < beta_c`` (``rho > 0``) and ``rho/(1 - sqrt(2(1-rho))/beta)`` above.

REM-4. Order-parameter recursion through blocks (``sim.config`` conventions): residual
``q <- alpha^2 q + q_S`` (cross terms vanish in expectation), LN ``(q, p) <- (1, p/q)``, ReLU MLP
``q1 = sigma_w2 q + sigma_b2``, ``p1 = sigma_w2 p + sigma_b2``, ``q' = sigma_w2 q1/2 + sigma_b2``,
``p' = (sigma_w2/2) q1 f(p1/q1) + sigma_b2`` with the arc-cosine kernel
``f(c) = [sqrt(1-c^2) + c (pi - arccos c)]/pi``, derived from Price's theorem and Sheppard's orthant
probability (``f(1) = 1``, ``f(0) = 1/pi``). Gain control is modelled as gap removal
(``gap = "remove"``: ``A - 1 1^T/T``): ``q_S = sigma_v2 (q-p)(ipr - 1/T)``,
``p_S = sigma_v2 (q-p)(overlap - 1/T)``; for independent rows (``E overlap = 1/T``) ``p_S = 0``
exactly, and as ``T -> inf`` this is the paper's gain-controlled attention
``q <- alpha^2 q + sigma_v2 (q-p) ipr``, ``p <- alpha^2 p``. (Subtracting the sequence mean of the
output instead gives ``q_S = sigma_v2 (q-p)(1 - 1/T)(ipr - 1/T)``, ``p_S = -sigma_v2 (q-p)(ipr -
1/T)/T`` for independent rows: the two agree as ``T -> inf``.)

REM-5. With ``u = rho/(1 - rho)``, attention + residual + LN (post-LN, overlap neglected) maps
``u -> u (alpha^2 + sigma_v2)/(alpha^2 + sigma_v2 ipr)`` exactly, so for ``beta < beta_c``
(``ipr -> 0``) ``u -> u (1 + sigma_v2/alpha^2)`` and ``u_L = u_0 (1 + sigma_v2/alpha^2)^L``. Keeping
``rho_L <= rho_max`` needs ``alpha_attn^2 >= sigma_v2 / ((u_max/u_0)^{1/L} - 1)``
``~ sigma_v2 L / ln(u_max/u_0)``: the residual weight must grow like ``sqrt(L)``. Pre-LN: ``q - p``
scales by ``alpha^2`` and ``u -> u (1 + sigma_v2/(alpha^2 q))``. Gap removal: ``u -> u alpha^2/
(alpha^2 + sigma_v2 ipr)`` (``rho`` unchanged below ``beta_c``, decreased above).

REM-F (exact at finite ``T`` for ``T`` i.i.d. ``N(0, score_std^2)`` scores per row; quadrature).
With ``w = e^g``, ``L_k(t) = E[w^k e^{-t w}]`` and ``M(t) = E[g w e^{-t w}]`` (one-dimensional
Gaussian integrals), the identities ``1/S^k = int_0^inf t^{k-1} e^{-tS} dt / Gamma(k)``,
``ln S = int_0^inf (e^{-u} - e^{-uS}) du/u`` and independence give

- ``E Y_k = T/Gamma(k) int_0^inf t^{k-1} L_k(t) L_0(t)^{T-1} dt`` (``k = 2``: ``E ipr``);
- ``E Y2^2 = (1/6) int_0^inf t^3 [T L_4 L_0^{T-1} + T (T-1) L_2^2 L_0^{T-2}] dt``;
- ``E entropy = int_0^inf [(e^{-u} - L_0(u)^T)/u - T M(u) L_0(u)^{T-1}] du``;
- the overlap of two rows whose score pairs are i.i.d. over ``s`` with correlation ``r``
  (the law of a random transformer's scores at ``d -> inf``, covariance
  ``beta^2 ln T C_tt' C_ss'``, ``r = p/q``): with ``1/(S S') = int int e^{-aS - bS'} da db``,
  ``E overlap = T int int E[w w' e^{-aw-bw'}] E[e^{-aw-bw'}]^{T-1} da db``, the inner
  expectations conditioned on the shared part of ``(g, g')`` (``r = 0``: ``1/T``; ``r = 1``:
  ``E ipr``).

Numerically, with ``tau = ln t`` and ``x = tau + g ~ N(tau, score_std^2)``,
``t^k L_k = E[e^{k x - e^x}]`` is a Gaussian convolution of a fixed smooth function; it is evaluated
by the trapezoidal rule on a uniform ``tau`` grid (spectrally accurate: every integrand is analytic
in a strip), after shifting ``g`` by the REM free energy so the grid is centred (Gauss-Hermite
nodes replace the convolution for ``score_std < 0.3``).

The cosine map at finite ``T`` comes in three forms, all for ``d -> inf``:
``Phi_S(rho, E ipr)``, the expectation-of-``Y2`` plug-in, which neglects the row overlap; the
ratio ``E p_S/E q_S = (rho + (1-rho) E overlap)/(rho + (1-rho) E ipr)`` with the overlap of
independent rows (``1/T``, exact for i.i.d. scores) or of rows correlated ``rho`` (exact for a
random transformer). The ratio of means is what the token-averaged order parameters ``p/q`` of the
recursion measure; the mean pairwise cosine differs from it by a Jensen gap (``Y2`` fluctuates from
row to row, and does not self-average in the condensed phase), which is not computed here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import NamedTuple, TypeAlias

import numpy as np
import sympy as sp
from scipy import special

from theory.predictions import Prediction, register

q = sp.Symbol("q", positive=True)
p = sp.Symbol("p", real=True)
beta = sp.Symbol("beta", positive=True)
T = sp.Symbol("T", positive=True)
rho = sp.Symbol("rho", real=True)
ipr = sp.Symbol("ipr", positive=True)
overlap = sp.Symbol("overlap", nonnegative=True)
sigma_v2 = sp.Symbol("sigma_v2", nonnegative=True)
sigma_w2 = sp.Symbol("sigma_w2", nonnegative=True)
sigma_b2 = sp.Symbol("sigma_b2", nonnegative=True)
alpha = sp.Symbol("alpha_attn", real=True)
depth = sp.Symbol("depth", positive=True, integer=True)
rho_max = sp.Symbol("rho_max", positive=True)
c = sp.Symbol("c", real=True)
k = sp.Symbol("k", positive=True)
m = sp.Symbol("m", positive=True)

NORMS = ("post", "pre", "none")
OVERLAPS = ("none", "independent", "correlated")
Values: TypeAlias = float | np.ndarray  # a scalar, or an array broadcast over parameters


def _is_zero(expr: sp.Expr) -> bool:
    """``expr == 0`` for tokens with ``q > p`` and ``0 < rho < 1`` (checked by substitution)."""
    delta, r = sp.symbols("delta r_", positive=True)
    expr = expr.subs(p, q - delta).subs(rho, 1 / (1 + r))
    return sp.simplify(expr) == 0


# ----------------------------------------------------------------------------- REM-1

def _microcanonical_entropy(e: sp.Symbol, j2: sp.Expr) -> sp.Expr:
    """Number of states at energy ``e ln T`` is ``T^{s(e)}``, ``s(e) = 1 - e^2/(2 J^2)``."""
    return 1 - e**2 / (2 * j2)


@cache
def derive_beta_c() -> sp.Expr:
    """``beta_c(q, p)``: where the REM entropy at the dominant energy vanishes.

    Energies per ``sqrt(ln T)`` have variance ``J^2 = q(q-p)``; maximising ``s(e) + beta e``
    (assumes ``T -> inf``, i.i.d. Gaussian energies)."""
    e = sp.Symbol("epsilon", real=True)
    j2 = sp.Symbol("J2", positive=True)
    s = _microcanonical_entropy(e, j2)
    e_star = sp.solve(sp.diff(s + beta * e, e), e)[0]
    entropy = sp.simplify(s.subs(e, e_star))
    (root,) = sp.solve(entropy, beta)  # beta is positive: one root
    return sp.sqrt(sp.simplify(root**2).subs(j2, q * (q - p)))


@cache
def derive_entropy_ratio_asymptotic() -> sp.Expr:
    """``lim S/ln T`` of a softmax row: ``1 - beta^2/beta_c^2`` below ``beta_c``, 0 above (the
    Boltzmann entropy is the microcanonical entropy at the dominant energy ``e* = beta J^2``)."""
    e = sp.Symbol("epsilon", real=True)
    j2 = sp.Symbol("J2", positive=True)
    s = _microcanonical_entropy(e, j2)
    e_star = sp.solve(sp.diff(s + beta * e, e), e)[0]
    below = sp.simplify(s.subs(e, e_star)).subs(j2, q * (q - p))
    bc = derive_beta_c()
    assert _is_zero(below - (1 - beta**2 / bc**2))
    return sp.Piecewise((1 - beta**2 / bc**2, beta < bc), (0, True))


# ----------------------------------------------------------------------------- REM-2

@cache
def derive_condensation_index() -> sp.Expr:
    """``m = beta_c/beta``: the weights ``y = e^{a}`` near the maximum of ``T`` energies
    ``a = beta sqrt(ln T) J z`` have a Poisson intensity ``y^{-1-m}``, ``m`` the Gaussian tail
    slope ``sqrt(2 ln T)`` at the maximum over ``beta sqrt(ln T) J``."""
    log_t = sp.Symbol("lnT", positive=True)
    j = sp.sqrt(q * (q - p))
    slope = sp.sqrt(2 * log_t)  # -d/dz ln phi(z) at z_max = sqrt(2 ln T)
    index = sp.simplify(slope / (beta * sp.sqrt(log_t) * j))
    assert _is_zero(index - derive_beta_c() / beta)
    return index


@cache
def derive_pd_moment() -> sp.Expr:
    """``E Y_k`` for Poisson-Dirichlet(``m``) weights, ``0 < m < 1``, ``k >= 1``.

    For a Poisson process of intensity ``C y^{-1-m}``: Laplace functional
    ``E e^{-tS} = exp(-C Gamma(1-m) t^m/m)`` (by parts), Campbell-Mecke
    ``E sum_i y_i^k e^{-tS} = C Gamma(k-m) t^{m-k} E e^{-tS}``, and
    ``E Y_k = int t^{k-1} E[sum_i y_i^k e^{-tS}] dt / Gamma(k)``; ``C`` cancels."""
    t, eta, big_c = sp.symbols("t eta C", positive=True)
    # int (1 - e^{-t eta}) eta^{-1-m} d eta, integrated by parts (boundary terms vanish, m < 1)
    exponent = sp.simplify(sp.integrate(t * sp.exp(-t * eta) * eta ** (-m) / m, (eta, 0, sp.oo),
                                        conds="none"))
    palm = sp.integrate(eta ** (k - 1 - m) * sp.exp(-t * eta), (eta, 0, sp.oo), conds="none")
    integrand = sp.powsimp(big_c * t ** (k - 1) * palm, force=True)
    coef = sp.simplify(integrand / t ** (m - 1))  # integrand = coef * t^{m-1}
    assert not coef.has(t)
    rate = sp.gammasimp(big_c * exponent / t**m)
    tail = sp.integrate(t ** (m - 1) * sp.exp(-rate * t**m), (t, 0, sp.oo), conds="none")
    return sp.gammasimp(coef * tail / sp.gamma(k))


@cache
def derive_ipr_moment_asymptotic() -> sp.Expr:
    """``lim E Y_k`` (``k > 1``): 0 below ``beta_c``, the PD(``beta_c/beta``) moment above."""
    bc = derive_beta_c()
    return sp.Piecewise((0, beta < bc), (derive_pd_moment().subs(m, bc / beta), True))


@cache
def derive_ipr_asymptotic() -> sp.Expr:
    """``lim E ipr``: 0 below ``beta_c``, ``1 - beta_c/beta`` above."""
    moment2 = sp.gammasimp(derive_pd_moment().subs(k, 2))
    assert sp.simplify(moment2 - (1 - m)) == 0
    bc = derive_beta_c()
    return sp.Piecewise((0, beta < bc), (sp.expand(moment2.subs(m, bc / beta)), True))


# ----------------------------------------------------------------------------- REM-3, REM-4

def _value_gram(a: dict, b: dict, uniform: sp.Expr) -> sp.Expr:
    """``E y_a . y_b / d`` for ``y = sum_s a_s v_s``, with ``a, b`` linear combinations of the
    row vectors ``At, At2`` (two attention rows) and ``u = 1/T`` (all entries ``1/T``).

    ``E v_s.v_s'/d = sigma_v2 [(q - p) delta_ss' + p]`` gives ``sigma_v2 [(q-p) <a, b> + p (sum a)
    (sum b)]``; the Gram table of the rows: ``<At, At> = ipr``, ``<At, At2> = overlap``,
    ``<At, u> = <u, u> = 1/T``, ``sum At = sum u = 1``."""
    gram = {("At", "At"): ipr, ("At2", "At2"): ipr, ("At", "At2"): overlap,
            ("At", "u"): uniform, ("At2", "u"): uniform, ("u", "u"): uniform}
    inner = sum(ca * cb * gram.get((i, j), gram.get((j, i)))
                for i, ca in a.items() for j, cb in b.items())
    return sigma_v2 * ((q - p) * inner + p * sum(a.values()) * sum(b.values()))


@cache
def derive_attention() -> dict[str, sp.Expr]:
    """One attention layer on tokens ``(q, p)``: ``attention_q/p`` for ``A`` and
    ``gap_attention_q/p`` for the gap-removed ``A - 1 1^T/T`` (``gap = "remove"``).

    Assumes ``d -> inf`` (inner products of value vectors concentrate) and that the attention
    rows are independent of ``W_V``."""
    uniform = 1 / T
    row, row2 = {"At": 1}, {"At2": 1}
    gap_row, gap_row2 = {"At": 1, "u": -1}, {"At2": 1, "u": -1}
    return {
        "attention_q": sp.factor_terms(sp.expand(_value_gram(row, row, uniform))),
        "attention_p": sp.factor_terms(sp.expand(_value_gram(row, row2, uniform))),
        "gap_attention_q": _per_value_gap(_value_gram(gap_row, gap_row, uniform)),
        "gap_attention_p": _per_value_gap(_value_gram(gap_row, gap_row2, uniform)),
    }


def _per_value_gap(expr: sp.Expr) -> sp.Expr:
    """Write ``expr`` as ``sigma_v2 (q - p) (...)`` with the ``1/T`` terms apart (so that the
    printed code has the ``T -> inf`` limit at ``T = inf``)."""
    rest = sp.apart(sp.simplify(expr / (sigma_v2 * (q - p))), T)
    assert not rest.has(q) and not rest.has(p)
    return sigma_v2 * (q - p) * rest


@cache
def derive_cosine_ratio() -> sp.Expr:
    """``p_S/q_S`` after one attention layer on LN'd tokens (``q = 1``, ``p = rho``)."""
    att = derive_attention()
    return sp.simplify((att["attention_p"] / att["attention_q"]).subs({q: 1, p: rho}))


@cache
def derive_cosine_map() -> sp.Expr:
    """``Phi_S(rho) = rho / ((1 - rho) ipr + rho)``: the paper's map (overlap neglected)."""
    return sp.simplify(derive_cosine_ratio().subs(overlap, 0))


@cache
def derive_cosine_map_asymptotic() -> sp.Expr:
    """``Phi_S`` with the asymptotic ``ipr`` (``rho > 0``): 1 below ``beta_c(1, rho)``,
    ``rho/(1 - sqrt(2(1-rho))/beta)`` above."""
    bc = derive_beta_c().subs({q: 1, p: rho})
    above = derive_ipr_asymptotic().args[1][0].subs({q: 1, p: rho})
    r = sp.Symbol("r", positive=True)  # r = 1 - rho > 0
    phi_above = sp.simplify(sp.simplify(derive_cosine_map().subs(ipr, above).subs(rho, 1 - r))
                            .subs(r, 1 - rho))
    assert _is_zero(phi_above - rho / (1 - sp.sqrt(2 * (1 - rho)) / beta))
    phi_below = sp.limit(derive_cosine_map(), ipr, 0)
    return sp.Piecewise((phi_below, beta < bc), (phi_above, True))


@cache
def derive_relu_kernel() -> sp.Expr:
    """``f(c) = 2 E[relu(u) relu(v)]`` for standard normals with correlation ``c``.

    Price's theorem: ``d/dc E[relu u relu v] = P(u > 0, v > 0)``; Sheppard: that orthant is a
    wedge of angle ``pi - arccos c``, probability ``(pi - arccos c)/(2 pi)``; at ``c = 0`` the
    value is ``(E relu u)^2``. ``E relu(u)^2 = 1/2``, so ``f(1) = 1``."""
    x, s = sp.symbols("x s", real=True)
    gauss = sp.exp(-x**2 / 2) / sp.sqrt(2 * sp.pi)
    mean_relu = sp.integrate(x * gauss, (x, 0, sp.oo))
    second_relu = sp.integrate(x**2 * gauss, (x, 0, sp.oo))
    # orthant {u > 0} and {c u + sqrt(1-c^2) w > 0}: polar angles (-pi/2, pi/2) and
    # (acos c - pi/2, acos c + pi/2); the intersection has length pi - acos(c).
    wedge = sp.pi / 2 - (sp.acos(s) - sp.pi / 2)
    orthant = wedge / (2 * sp.pi)
    cross = mean_relu**2 + sp.integrate(orthant, (s, 0, c))
    f = sp.simplify(cross / second_relu)
    expected = (sp.sqrt(1 - c**2) + c * (sp.pi - sp.acos(c))) / sp.pi
    assert sp.simplify(f - expected) == 0
    assert sp.simplify(f.subs(c, 1) - 1) == 0 and sp.simplify(f.subs(c, 0) - 1 / sp.pi) == 0
    return expected


@cache
def derive_mlp() -> dict[str, sp.Expr]:
    """The ReLU MLP ``W_2 relu(W_1 z + b_1) + b_2`` on tokens ``(q, p)`` (``d, d_ff -> inf``;
    ``W_1`` variance ``sigma_w2/d``, ``W_2`` ``sigma_w2/d_ff``, biases ``sigma_b2`` shared across
    tokens)."""
    q1 = sigma_w2 * q + sigma_b2
    p1 = sigma_w2 * p + sigma_b2
    f = derive_relu_kernel()
    return {"mlp_q": sigma_w2 * q1 * f.subs(c, 1) / 2 + sigma_b2,
            "mlp_p": sigma_w2 * q1 * f.subs(c, p1 / q1) / 2 + sigma_b2}


# ----------------------------------------------------------------------------- REM-5

@cache
def derive_mobius() -> dict[str, sp.Expr]:
    """Factors ``u'/u`` with ``u = rho/(1 - rho)`` (overlap neglected) for attention + residual
    (+ LN): ``post`` (tokens at ``q = 1``), ``pre`` (tokens at ``q``, attention on ``LN x``) and
    ``gap`` (post-LN with gap removal, ``T -> inf``)."""
    att = derive_attention()
    u_of = lambda qq, pp: pp / (qq - pp)
    post_q = alpha**2 + att["attention_q"].subs({q: 1, p: rho})
    post_p = alpha**2 * rho + att["attention_p"].subs({q: 1, p: rho})
    post = sp.factor(sp.simplify(u_of(post_q, post_p) / u_of(1, rho)).subs(overlap, 0))
    att_ln = {key: v.subs({p: p / q}).subs({q: 1}) for key, v in att.items()}
    pre_q = alpha**2 * q + att_ln["attention_q"].subs(p, rho).subs(rho, p / q)
    pre_p = alpha**2 * p + att_ln["attention_p"].subs(p, rho).subs(rho, p / q)
    pre = sp.factor(sp.simplify((u_of(pre_q, pre_p) / u_of(q, p)).subs({overlap: 0, ipr: 0})))
    gap_q = alpha**2 + att["gap_attention_q"].subs({q: 1, p: rho})
    gap_p = alpha**2 * rho + att["gap_attention_p"].subs({q: 1, p: rho})
    gap = sp.factor(sp.limit(sp.simplify(u_of(gap_q, gap_p) / u_of(1, rho)), T, sp.oo)
                    .subs(overlap, 0))
    return {"post": post, "pre": pre, "gap": gap}


@cache
def derive_alpha_attn_min() -> sp.Expr:
    """Smallest ``alpha_attn`` keeping ``rho_depth <= rho_max`` below ``beta_c`` (post-LN,
    attention only, ``ipr -> 0``): ``u_L = u_0 (1 + sigma_v2/alpha^2)^L <= u_max``."""
    factor = derive_mobius()["post"].subs(ipr, 0)
    assert sp.simplify(factor - (1 + sigma_v2 / alpha**2)) == 0
    a2 = sp.Symbol("a2", positive=True)
    u0, umax = rho / (1 - rho), rho_max / (1 - rho_max)
    sol = sp.solve(sp.Eq(factor.subs(alpha**2, a2), (umax / u0) ** (1 / depth)), a2)[0]
    return sp.sqrt(sp.simplify(sol))


@cache
def derive_alpha_attn_min_large_depth() -> sp.Expr:
    """Leading large-``depth`` form of ``alpha_attn_min^2``: ``sigma_v2 L / ln(u_max/u_0)``."""
    ratio = sp.Symbol("ratio", positive=True)  # u_max/u_0 > 1
    eps = sp.Symbol("eps", positive=True)  # 1/L
    a2 = sigma_v2 / (ratio**eps - 1)
    lead = sp.limit(a2 * eps, eps, 0)
    u0, umax = rho / (1 - rho), rho_max / (1 - rho_max)
    return sp.simplify((lead * depth).subs(ratio, umax / u0))


# ----------------------------------------------------------------------------- REM-F (symbolic)

def verify_laplace_identities() -> None:
    """Check (sympy) the identities behind REM-F: ``1/S^k = int t^{k-1} e^{-tS} dt/Gamma(k)`` and
    Frullani's ``ln S = int (e^{-u} - e^{-uS}) du/u`` (``S > 0``)."""
    t, u, S = sp.symbols("t u S", positive=True)
    assert sp.simplify(sp.integrate(t ** (k - 1) * sp.exp(-t * S), (t, 0, sp.oo), conds="none")
                       / sp.gamma(k) - S ** (-k)) == 0
    assert sp.simplify(sp.integrate((sp.exp(-u) - sp.exp(-u * S)) / u, (u, 0, sp.oo))
                       - sp.log(S)) == 0


@cache
def derive_laplace_representations() -> dict[str, sp.Expr]:
    """REM-F as unevaluated sympy integrals (identities in ``verify_laplace_identities``).

    With ``w_s = e^{g_s}``, ``g_s ~ N(0, sigma^2)`` i.i.d. (``sigma = score_std``), the
    expectations of ``sum_s w_s^k e^{-tS} = sum_s w_s^k e^{-t w_s} prod_{s' != s} e^{-t w_s'}``
    factor into one-dimensional Gaussian integrals ``L_k(t)``."""
    t, u = sp.symbols("t u", positive=True)
    z = sp.Symbol("z", real=True)
    sigma = sp.Symbol("sigma", positive=True)  # score_std
    gauss = sp.exp(-z**2 / 2) / sp.sqrt(2 * sp.pi)
    lap = lambda kk, tt: sp.Integral(sp.exp(kk * sigma * z - tt * sp.exp(sigma * z)) * gauss,
                                     (z, -sp.oo, sp.oo))
    lap_g = lambda tt: sp.Integral(sigma * z * sp.exp(sigma * z - tt * sp.exp(sigma * z)) * gauss,
                                   (z, -sp.oo, sp.oo))
    ipr_expr = T * sp.Integral(t * lap(2, t) * lap(0, t) ** (T - 1), (t, 0, sp.oo))
    moment_expr = T / sp.gamma(k) * sp.Integral(t ** (k - 1) * lap(k, t) * lap(0, t) ** (T - 1),
                                               (t, 0, sp.oo))
    entropy_expr = sp.Integral((sp.exp(-u) - lap(0, u) ** T) / u
                               - T * lap_g(u) * lap(0, u) ** (T - 1), (u, 0, sp.oo))
    a, b, r = sp.Symbol("a", positive=True), sp.Symbol("b", positive=True), sp.Symbol("r")
    z2 = sp.Symbol("z_2", real=True)
    g2 = sigma * (r * z + sp.sqrt(1 - r**2) * z2)  # score of the second row, correlation r
    pair = lambda f: sp.Integral(f * gauss * gauss.subs(z, z2), (z, -sp.oo, sp.oo),
                                 (z2, -sp.oo, sp.oo))
    laplace2 = sp.exp(-a * sp.exp(sigma * z) - b * sp.exp(g2))
    overlap_expr = T * sp.Integral(pair(sp.exp(sigma * z + g2) * laplace2)
                                   * pair(laplace2) ** (T - 1), (a, 0, sp.oo), (b, 0, sp.oo))
    return {"ipr": ipr_expr, "moment": moment_expr, "entropy": entropy_expr,
            "overlap": overlap_expr, "sigma": sigma, "correlation": r}


def generated_functions() -> list[tuple[str, sp.Expr, tuple[sp.Symbol, ...]]]:
    """The closed forms printed into ``theory/_generated/rem.py``: (name, expr, args)."""
    att = derive_attention()
    mlp = derive_mlp()
    mob = derive_mobius()
    return [
        ("beta_c", derive_beta_c(), (q, p)),
        ("entropy_ratio_asymptotic", derive_entropy_ratio_asymptotic(), (beta, q, p)),
        ("ipr_asymptotic", derive_ipr_asymptotic(), (beta, q, p)),
        ("cosine_map", derive_cosine_map(), (rho, ipr)),
        ("cosine_ratio", derive_cosine_ratio(), (rho, ipr, overlap)),
        ("cosine_map_asymptotic", derive_cosine_map_asymptotic(), (beta, rho)),
        ("attention_q", att["attention_q"], (q, p, ipr, sigma_v2)),
        ("attention_p", att["attention_p"], (q, p, overlap, sigma_v2)),
        ("gap_attention_q", att["gap_attention_q"], (q, p, ipr, T, sigma_v2)),
        ("gap_attention_p", att["gap_attention_p"], (q, p, overlap, T, sigma_v2)),
        ("relu_kernel", derive_relu_kernel(), (c,)),
        ("mlp_q", mlp["mlp_q"], (q, sigma_w2, sigma_b2)),
        ("mlp_p", mlp["mlp_p"], (q, p, sigma_w2, sigma_b2)),
        ("mobius_factor_post", mob["post"], (ipr, sigma_v2, alpha)),
        ("mobius_factor_pre", mob["pre"], (q, sigma_v2, alpha)),
        ("mobius_factor_gap", mob["gap"], (ipr, sigma_v2, alpha)),
        ("alpha_attn_min", derive_alpha_attn_min(), (depth, sigma_v2, rho, rho_max)),
    ]


def _generated():
    """The printed evaluators (imported lazily: ``theory.derive`` rewrites them from here)."""
    from theory._generated import rem

    return rem


# ----------------------------------------------------------------------------- REM-F numerics

def score_std(T: int, beta: float, q: float = 1.0, p: float = 0.0) -> float:
    """Standard deviation of the ``s``-dependent part of a score: ``beta sqrt(ln T q(q-p))``."""
    return float(beta) * math.sqrt(math.log(T) * max(q * (q - p), 0.0))


def _free_energy(T: int, sigma: float) -> float:
    """Large-``T`` ``E ln S`` of the REM (used to centre the grid): ``ln T + sigma^2/2`` below
    the transition, ``sigma sqrt(2 ln T)`` above."""
    lt = math.log(T)
    return lt + 0.5 * sigma * sigma if sigma * sigma <= 2 * lt else sigma * math.sqrt(2 * lt)


_EDGE_TOL = 1e-17  # integrands at the grid edges, relative to their peak
_STEP = 0.1  # tau grid step (the integrands vary on scales >~ 1 and are analytic in a strip)
_HERMITE_BELOW = 0.3  # score_std below which the convolutions use Gauss-Hermite nodes
_HERMITE = np.polynomial.hermite_e.hermegauss(48)


def _psi(kk: float, x: np.ndarray) -> np.ndarray:
    """``e^{k x - e^x}`` (bounded by ``(k/e)^k``)."""
    with np.errstate(over="ignore"):
        return np.exp(kk * x - np.exp(x))


def _psi_tail(x: np.ndarray) -> np.ndarray:
    """``1 - e^{-e^x}`` without cancellation."""
    with np.errstate(over="ignore"):
        return -np.expm1(-np.exp(x))


class _Grid:
    """Gaussian expectations ``E[psi(x)]``, ``x = tau - c + sigma z``, ``z ~ N(0, 1)``, on a
    uniform ``tau`` grid (trapezoidal rule in ``tau``), for one ``(T, sigma)``; ``c`` is the free
    energy shift.

    The expectation over ``z`` is the trapezoidal rule on the same lattice (a discrete Gaussian
    convolution, cut where the Gaussian weight is below ``1e-18/T``: every ``psi`` is bounded and
    ``1 - L_0`` must be accurate on the scale ``1/T``) for ``sigma >= 0.3``, Gauss-Hermite with 48
    nodes below (where ``psi`` is smooth on the scale ``sigma``)."""

    def __init__(self, T: int, sigma: float, lo: float, hi: float) -> None:
        self.T, self.sigma = T, sigma
        self.c = _free_energy(T, sigma)
        self.h = h = _STEP
        self.tau = np.arange(math.floor(lo / h), math.ceil(hi / h) + 1) * h
        self.hermite = sigma < _HERMITE_BELOW
        if self.hermite:
            z, w = _HERMITE
            self.x = self.tau[:, None] - self.c + sigma * z[None, :]
            self.weights = w / math.sqrt(2 * math.pi)
            self.weights_z = self.weights * sigma * z  # E[(x - tau + c) psi]
        else:
            h = min(h, sigma / 3.0)
            self.h = h
            self.tau = np.arange(math.floor(lo / h), math.ceil(hi / h) + 1) * h
            zmax = math.sqrt(2 * math.log(1e18 * T))
            kk = math.ceil(zmax * sigma / h)
            j = np.arange(-kk, kk + 1) * h
            self.weights = h * np.exp(-0.5 * (j / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
            self.weights_z = j * self.weights
            n0 = round(self.tau[0] / h)
            self.x = np.arange(n0 - kk, n0 + len(self.tau) + kk) * h - self.c
        one_minus_l0 = np.minimum(self.expect(_psi_tail(self.x)), 1.0)
        with np.errstate(divide="ignore"):
            self.log_l0 = np.log1p(-one_minus_l0)
            self.power = np.exp((T - 1) * self.log_l0)  # L_0^{T-1}
        psi1 = _psi(1, self.x)
        self.l1 = self.expect(psi1)
        self.l2 = self.expect(_psi(2, self.x))
        self.m1 = self.expect(psi1, self.weights_z) - self.c * self.l1  # t M(t)
        with np.errstate(over="ignore"):
            log_s = -np.expm1(T * self.log_l0) + np.expm1(-np.exp(self.tau))
        with np.errstate(divide="ignore"):  # L_0^{T-2} (T = 2: 1, also where L_0 = 0)
            power2 = np.exp((T - 2) * self.log_l0) if T > 2 else np.ones_like(self.log_l0)
        self.integrands = {"ipr": T * self.l2 * self.power,
                           "ipr_second_moment": (T * self.moment_factor(4) * self.power
                                                 + T * (T - 1) * self.l2**2 * power2) / 6.0,
                           "normalisation": T * self.l1 * self.power,
                           "entropy": log_s - T * self.m1 * self.power}

    def expect(self, values: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """``E[psi(x)]`` on the ``tau`` grid from ``psi`` on ``self.x``."""
        weights = self.weights if weights is None else weights
        if self.hermite:
            return values @ weights
        return np.correlate(values, weights, "valid")

    def moment_factor(self, kk: float) -> np.ndarray:
        """``t^k L_k(t) = E[e^{k x - e^x}]`` on the ``tau`` grid."""
        return self.expect(_psi(kk, self.x))

    def integral(self, name: str) -> float:
        return float(self.h * np.sum(self.integrands[name]))

    def edges_ok(self) -> bool:
        for v in self.integrands.values():
            peak = np.max(np.abs(v))
            if max(np.max(np.abs(v[:3])), np.max(np.abs(v[-3:]))) > _EDGE_TOL * peak:
                return False
        return True


@lru_cache(maxsize=512)
def _grid(T: int, sigma: float) -> _Grid:
    lo, hi = -(40.0 + 8.0 * sigma), 30.0 + 8.0 * sigma
    for _ in range(8):
        grid = _Grid(T, sigma, lo, hi)
        if grid.edges_ok():
            return grid
        lo, hi = 1.5 * lo, 1.5 * hi
    raise RuntimeError(f"REM-F quadrature grid did not converge for T={T}, score_std={sigma}")


@dataclass(frozen=True)
class RowStatistics:
    """Exact finite-``T`` statistics of one softmax row of ``T`` i.i.d. ``N(0, score_std^2)``
    scores. ``normalisation = E sum_s A_ts`` is 1 up to the quadrature error."""

    T: int
    score_std: float
    ipr: float
    ipr_second_moment: float
    entropy: float
    normalisation: float

    @property
    def ipr_variance(self) -> float:
        """``Var Y2`` of one row."""
        return self.ipr_second_moment - self.ipr**2


def _check_t(T: int) -> int:
    if int(T) != T or T < 2:
        raise ValueError(f"T={T!r} must be an integer >= 2")
    return int(T)


@lru_cache(maxsize=4096)
def row_statistics(T: int, score_std: float) -> RowStatistics:
    """``E ipr``, ``E ipr^2``, ``E entropy`` (nats) of a row with ``T`` i.i.d. Gaussian scores of
    standard deviation ``score_std`` (REM-F, exact up to quadrature error ~1e-12)."""
    T = _check_t(T)
    sigma = float(score_std)
    if not sigma >= 0 or not math.isfinite(sigma):
        raise ValueError(f"score_std={score_std!r} must be finite and >= 0")
    if sigma == 0.0:
        return RowStatistics(T, 0.0, 1.0 / T, 1.0 / T**2, math.log(T), 1.0)
    g = _grid(T, sigma)
    return RowStatistics(T, sigma, g.integral("ipr"), g.integral("ipr_second_moment"),
                         g.integral("entropy"),
                         g.integral("normalisation"))


def ipr_moment_exact(kk: float, T: int, score_std: float) -> float:
    """``E Y_k = E sum_s A_ts^k`` (``k >= 1``) for ``T`` i.i.d. Gaussian scores (REM-F)."""
    T = _check_t(T)
    if kk < 1:
        raise ValueError(f"k={kk!r} must be >= 1")
    if score_std == 0:
        return float(T) ** (1 - kk)
    g = _grid(T, float(score_std))
    return float(T * g.h * np.sum(g.moment_factor(kk) * g.power) / math.gamma(kk))


@lru_cache(maxsize=4096)
def row_joint_moment(T: int, score_std: float, powers: tuple[int, ...]) -> float:
    """``E prod_j A_{t j}^{p_j}`` over distinct columns ``j = 1 .. r`` of one softmax row of ``T``
    i.i.d. ``N(0, score_std^2)`` scores (``powers = (p_1, ..., p_r)``, ``1 <= r <= T``, each
    ``p_j >= 1``). Laplace: ``1/S^P = int_0^inf t^{P-1} e^{-t S} dt/Gamma(P)`` (``P = sum p_j``),
    so the moment is ``int prod_j t^{p_j} L_{p_j}(t) L_0(t)^{T-r} dt/t / Gamma(P)`` on the REM-F
    grid (``E Y_k = T row_joint_moment(T, s, (k,))``)."""
    T = _check_t(T)
    r, P = len(powers), sum(powers)
    if not 1 <= r <= T or min(powers) < 1:
        raise ValueError(f"powers={powers!r} must be 1 to T={T} integers >= 1")
    if score_std == 0:
        return float(T) ** -P
    g = _grid(T, float(score_std))
    factor = np.exp((T - r) * g.log_l0)
    for p in powers:
        factor = factor * g.moment_factor(p)
    return float(g.h * np.sum(factor) / math.gamma(P))


def _smooth_lattice(fn: Callable[[np.ndarray], np.ndarray], start: float, n: int, h: float,
                    sd: float) -> np.ndarray:
    """``E_v[fn(start + j h + sd v)]``, ``v ~ N(0, 1)``, for ``j = 0..n-1``: exact for ``sd = 0``,
    Gauss-Hermite for ``sd < 0.3``, else the trapezoidal rule on the lattice (``h <= sd/3``)."""
    if sd == 0.0:
        return fn(start + np.arange(n) * h)
    if sd < _HERMITE_BELOW:
        z, w = _HERMITE
        x = start + np.arange(n)[:, None] * h + sd * z[None, :]
        return fn(x) @ (w / math.sqrt(2 * math.pi))
    kk = math.ceil(math.sqrt(2 * math.log(1e18)) * sd / h) + 1
    j = np.arange(-kk, kk + 1) * h
    weights = h * np.exp(-0.5 * (j / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
    return np.correlate(fn(start + np.arange(-kk, n + kk) * h), weights, "valid")


@lru_cache(maxsize=4096)
def row_overlap(T: int, score_std: float, correlation: float) -> float:
    """Exact ``E sum_s A_ts A_t's`` of two softmax rows whose ``T`` score pairs
    ``(a_ts, a_t's)`` are i.i.d. over ``s``, bivariate Gaussian with standard deviation
    ``score_std`` and correlation ``correlation`` (REM-F).

    In a random transformer at ``d -> inf`` the ``s``-dependent parts of the scores of tokens
    ``t != t'`` have exactly this law with ``correlation = p/q`` (the token cosine; the score
    covariance is ``beta^2 ln T C_tt' C_ss'``). Double Laplace representation
    ``1/(S S') = int int e^{-aS - bS'} da db``:
    ``E overlap = T int int E[w w' e^{-aw - bw'}] E[e^{-aw - bw'}]^{T-1} da db``, the inner
    expectations conditioned on the shared Gaussian part of ``(g, g')``. ``correlation = 0``
    gives ``1/T``, ``correlation = 1`` gives ``E ipr``."""
    T = _check_t(T)
    sigma, r = float(score_std), float(correlation)
    if not 0.0 <= r <= 1.0:
        raise ValueError(f"correlation={correlation!r} must be in [0, 1]")
    if sigma == 0.0 or r == 0.0:
        return 1.0 / T
    base = _grid(T, sigma)
    norm = base.integrands["normalisation"]  # bounds the marginals of the 2-D integrand
    keep = np.nonzero(norm > 1e-19 * norm.max())[0]
    i0, i1 = max(keep[0] - 5, 0), min(keep[-1] + 5, len(norm) - 1)
    tau, h, n = base.tau[i0:i1 + 1], base.h, i1 - i0 + 1
    shared, own = sigma * math.sqrt(r), sigma * math.sqrt(1.0 - r)
    start = tau[0] - base.c
    if shared >= 3 * h:  # shared part on the lattice: windows of one smoothed line
        kk = math.ceil(math.sqrt(2 * math.log(1e18 * T)) * shared / h)
        j = np.arange(-kk, kk + 1) * h
        weights = h * np.exp(-0.5 * (j / shared) ** 2) / (shared * math.sqrt(2 * math.pi))
        window = np.lib.stride_tricks.sliding_window_view
        lines = [_smooth_lattice(fn, start - kk * h, n + 2 * kk, h, own)
                 for fn in (lambda x: _psi(1, x), _psi_tail)]
        f1, tail = (window(line, 2 * kk + 1) for line in lines)
    else:  # Gauss-Hermite nodes for the shared part
        z, w = _HERMITE
        weights = w / math.sqrt(2 * math.pi)
        f1, tail = (np.stack([_smooth_lattice(fn, start + shared * zi, n, h, own) for zi in z],
                             axis=1) for fn in (lambda x: _psi(1, x), _psi_tail))
    k1 = (f1 * weights) @ f1.T  # ab E[w w' e^{-aw - bw'}]
    marginal = tail @ weights  # 1 - L_0
    one_minus_j = marginal[:, None] + marginal[None, :] - (tail * weights) @ tail.T
    with np.errstate(divide="ignore"):
        power = np.exp((T - 1) * np.log1p(-np.clip(one_minus_j, 0.0, 1.0)))
    return float(T * h * h * np.sum(k1 * power))


def overlap_finite(T: Values, beta: Values, rho: Values = 0.0) -> Values:
    """Exact ``E overlap`` of two attention rows of LN'd tokens with cosine ``rho`` in a random
    transformer at ``d -> inf`` (scores correlated ``rho`` between rows)."""
    def one(t, b, r):
        _row(t, b, r)  # validates
        ti = _check_t(t)
        return row_overlap(ti, score_std(ti, b, 1.0, r), r)
    return _vectorised(one, T, beta, rho)


def _vectorised(fn: Callable[..., float], *args: Values) -> Values:
    arrays = np.broadcast_arrays(*[np.asarray(a, dtype=float) for a in args])
    out = np.empty(arrays[0].shape)
    for idx in np.ndindex(out.shape):
        out[idx] = fn(*(a[idx] for a in arrays))
    return out if out.ndim else float(out)


def _row(T: float, beta: float, rho: float) -> RowStatistics:
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho={rho!r} must be in [0, 1]")
    Ti = _check_t(T)
    return row_statistics(Ti, score_std(Ti, beta, 1.0, float(rho)))


def ipr_finite(T: Values, beta: Values, rho: Values = 0.0) -> Values:
    """Exact ``E ipr`` of a softmax row at finite ``T`` (LN'd tokens with cosine ``rho``;
    broadcasts over ``T``, ``beta``, ``rho``)."""
    return _vectorised(lambda t, b, r: _row(t, b, r).ipr, T, beta, rho)


def ipr_variance_finite(T: Values, beta: Values, rho: Values = 0.0) -> Values:
    """Exact ``Var ipr`` of one row at finite ``T``."""
    return _vectorised(lambda t, b, r: _row(t, b, r).ipr_variance, T, beta, rho)


def entropy_finite(T: Values, beta: Values, rho: Values = 0.0) -> Values:
    """Exact ``E entropy`` (nats) of a softmax row at finite ``T``."""
    return _vectorised(lambda t, b, r: _row(t, b, r).entropy, T, beta, rho)


def entropy_ratio_finite(T: Values, beta: Values, rho: Values = 0.0) -> Values:
    """``E entropy / ln T`` at finite ``T`` (compare ``rem1_entropy_asymptotic``)."""
    return _vectorised(lambda t, b, r: _row(t, b, r).entropy / math.log(t), T, beta, rho)


def ipr_moment_finite(k: Values, T: Values, beta: Values, rho: Values = 0.0) -> Values:
    """Exact ``E Y_k`` at finite ``T``."""
    return _vectorised(lambda kk, t, b, r: ipr_moment_exact(
        float(kk), _check_t(t), score_std(_check_t(t), b, 1.0, r)), k, T, beta, rho)


def cosine_map_finite(T: Values, beta: Values, rho: Values) -> Values:
    """``Phi_S(rho, E ipr)``: the paper's one-layer cosine map with the exact finite-``T``
    ``E ipr`` plugged in (neglects the row overlap, the row-to-row fluctuations of ``ipr`` and
    the correlation between rows)."""
    return _vectorised(lambda t, b, r: float(_generated().cosine_map(r, _row(t, b, r).ipr)),
                       T, beta, rho)


def cosine_ratio_finite(T: Values, beta: Values, rho: Values) -> Values:
    """``E p_S / E q_S`` after one attention layer with independent rows:
    ``(rho + (1-rho)/T)/(rho + (1-rho) E ipr)`` (exact for i.i.d. scores, ``d -> inf``)."""
    return _vectorised(lambda t, b, r: float(_generated().cosine_ratio(
        r, _row(t, b, r).ipr, 1.0 / t)), T, beta, rho)


def cosine_ratio_correlated(T: Values, beta: Values, rho: Values) -> Values:
    """``E p_S / E q_S`` after one attention layer of a random transformer at ``d -> inf``:
    ``(rho + (1-rho) E overlap)/(rho + (1-rho) E ipr)`` with the exact overlap of rows whose
    scores are correlated ``rho`` (``row_overlap``)."""
    def one(t, b, r):
        ti = _check_t(t)
        return float(_generated().cosine_ratio(r, _row(t, b, r).ipr,
                                               row_overlap(ti, score_std(ti, b, 1.0, r), r)))
    return _vectorised(one, T, beta, rho)


# ----------------------------------------------------------------------------- REM-4 recursion

class OrderParameters(NamedTuple):
    """Per-layer order parameters, layers ``0..depth`` (layer 0 is the input)."""

    q: np.ndarray
    p: np.ndarray
    cosine: np.ndarray


def _ipr_function(mode, beta: float, T: int) -> Callable[[float, float], float]:
    if callable(mode):
        return mode
    if mode == "asymptotic":
        def asym(qq: float, pp: float) -> float:
            if qq * (qq - pp) <= 0.0:  # identical tokens: beta_c = inf, a uniform row
                return 0.0
            with np.errstate(divide="ignore", invalid="ignore"):
                return float(_generated().ipr_asymptotic(beta, qq, min(pp, qq)))
        return asym
    if mode == "finite":
        return lambda qq, pp: row_statistics(T, score_std(T, beta, qq, min(pp, qq))).ipr
    raise ValueError(f"ipr={mode!r} is not allowed; choose 'asymptotic', 'finite' or a callable "
                     "(q, p) -> E ipr")


def recursion(depth: int, *, norm: str = "post", beta: float, T: int, sigma_v2: float = 1.0,
              sigma_w2: float = 2.0, sigma_b2: float = 0.0, alpha_attn: float = 1.0,
              alpha_mlp: float = 1.0, mlp: bool = True, gain_control: bool = False,
              rho0: float = 0.0, ipr: str | Callable[[float, float], float] = "asymptotic",
              overlap: str | None = None) -> OrderParameters:
    """Order parameters ``(q, p, cosine = p/q)`` through ``depth`` blocks (REM-4).

    Blocks as in ``sim.config`` (``post``: ``LN(alpha_attn X + Attn X)`` then
    ``LN(alpha_mlp Z + MLP Z)``; ``pre``: ``alpha_attn X + Attn(LN X)`` then
    ``alpha_mlp Z + MLP(LN Z)``; ``none``: ``pre`` without LN). Input tokens ``q = 1``,
    ``p = rho0``. At each layer ``ipr`` is computed from the ``(q, p)`` of the attention input:
    ``"asymptotic"`` (REM-2), ``"finite"`` (REM-F, exact for i.i.d. scores at this ``T``) or a
    callable ``(q, p) -> E ipr``. ``overlap`` is the row overlap ``E <A_t, A_t'>`` in ``p_S``:
    ``"none"`` (0, the paper), ``"independent"`` (``1/T``, independent rows) or ``"correlated"``
    (exact at ``d -> inf``: rows with scores correlated ``p/q``, ``row_overlap``); the default is
    ``"correlated"`` for ``ipr="finite"`` and ``"none"`` otherwise. ``gain_control`` removes the
    gap (``A - 1 1^T/T``; the paper's gain-controlled attention when ``overlap="none"``, where
    the ``1/T`` of the gap is dropped as well).
    """
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r} is not allowed; choose one of {', '.join(NORMS)}")
    if int(depth) != depth or depth < 0:
        raise ValueError(f"depth={depth!r} must be an integer >= 0")
    T = _check_t(T)
    gen = _generated()
    ipr_of = _ipr_function(ipr, float(beta), T)
    if overlap is None:
        overlap = "correlated" if ipr == "finite" else "none"
    if overlap not in OVERLAPS:
        raise ValueError(f"overlap={overlap!r} is not allowed; choose one of {', '.join(OVERLAPS)}")
    t_eff = math.inf if overlap == "none" else float(T)  # 1/T of the gap dropped with the overlap
    a2, m2 = float(alpha_attn) ** 2, float(alpha_mlp) ** 2

    def overlap_of(qq: float, pp: float) -> float:
        if overlap == "correlated":
            r = min(max(pp / qq, 0.0), 1.0)
            return row_overlap(T, score_std(T, beta, qq, pp), r)
        return 1.0 / t_eff

    def attend(qq: float, pp: float) -> tuple[float, float]:
        pp = min(pp, qq)
        y2, o = ipr_of(qq, pp), overlap_of(qq, pp)
        if gain_control:
            return (float(gen.gap_attention_q(qq, pp, y2, t_eff, sigma_v2)),
                    float(gen.gap_attention_p(qq, pp, o, t_eff, sigma_v2)))
        return (float(gen.attention_q(qq, pp, y2, sigma_v2)),
                float(gen.attention_p(qq, pp, o, sigma_v2)))

    def feed_forward(qq: float, pp: float) -> tuple[float, float]:
        if sigma_w2 * qq + sigma_b2 == 0.0:
            return sigma_b2, sigma_b2
        pp = min(pp, qq)
        return (float(gen.mlp_q(qq, sigma_w2, sigma_b2)),
                float(gen.mlp_p(qq, pp, sigma_w2, sigma_b2)))

    def layer_norm(qq: float, pp: float) -> tuple[float, float]:
        return (1.0, pp / qq) if qq > 0 else (math.nan, math.nan)

    qs, ps = [1.0], [float(rho0)]
    qq, pp = 1.0, float(rho0)
    for _ in range(int(depth)):
        if norm == "post":
            qa, pa = attend(qq, pp)
            qq, pp = layer_norm(a2 * qq + qa, a2 * pp + pa)
            if mlp:
                qm, pm = feed_forward(qq, pp)
                qq, pp = layer_norm(m2 * qq + qm, m2 * pp + pm)
        else:
            qa, pa = attend(*(layer_norm(qq, pp) if norm == "pre" else (qq, pp)))
            qq, pp = a2 * qq + qa, a2 * pp + pa
            if mlp:
                qm, pm = feed_forward(*(layer_norm(qq, pp) if norm == "pre" else (qq, pp)))
                qq, pp = m2 * qq + qm, m2 * pp + pm
        if not (qq > 0):
            qq, pp = math.nan, math.nan
        qs.append(qq)
        ps.append(pp)
    qa_, pa_ = np.array(qs), np.array(ps)
    return OrderParameters(qa_, pa_, pa_ / qa_)


# ----------------------------------------------------------------------------- registry

def _quiet(fn: Callable[..., float]) -> Callable[..., float]:
    """Silence the divide warnings of ``numpy.select``, which evaluates every branch."""
    def wrapped(*args, **kwargs):
        with np.errstate(divide="ignore", invalid="ignore"):
            return fn(*args, **kwargs)
    return wrapped


def pd_moment(kk: float, beta_: float, rho_: float) -> float:
    """``lim E Y_k`` (``derive_ipr_moment_asymptotic``) for LN'd tokens of cosine ``rho_``:
    0 below ``beta_c``, the Poisson-Dirichlet(``beta_c/beta``) moment above (by ``gammaln``)."""
    bc = float(_generated().beta_c(1.0, rho_))
    if kk == 1:
        return 1.0
    if beta_ < bc:
        return 0.0
    mm = bc / beta_
    return float(np.exp(special.gammaln(kk - mm) - special.gammaln(kk) - special.gammaln(1 - mm)))


_LN_TOKENS = {q: 1, p: rho}
_LAPLACE = derive_laplace_representations()
_SIGMA_LN = beta * sp.sqrt(sp.log(T) * (1 - rho))


def _recursion_prediction(mode: str) -> Callable[..., np.ndarray]:
    def evaluate(depth, norm, beta, T, sigma_v2, sigma_w2, sigma_b2, alpha_attn, alpha_mlp,
                 mlp, gap, rho):
        if gap not in ("keep", "remove"):
            raise ValueError(f"gap={gap!r} is not allowed; choose one of keep, remove")
        return recursion(depth, norm=norm, beta=beta, T=T, sigma_v2=sigma_v2,
                         sigma_w2=sigma_w2, sigma_b2=sigma_b2, alpha_attn=alpha_attn,
                         alpha_mlp=alpha_mlp, mlp=bool(mlp), gain_control=gap == "remove",
                         rho0=rho, ipr=mode).cosine
    return evaluate


_RECURSION_PARAMS = ("depth", "norm", "beta", "T", "sigma_v2", "sigma_w2", "sigma_b2",
                     "alpha_attn", "alpha_mlp", "mlp", "gap", "rho")

register(Prediction(
    "rem1_beta_c", "REM-1", "critical inverse temperature of a softmax row, sqrt(2/(q(q-p))), "
    "for LN'd tokens (q = 1, p = rho)",
    ("rho",), "T -> infinity; i.i.d. Gaussian scores (REM)",
    lambda rho: _generated().beta_c(1.0, rho), derive_beta_c().subs(_LN_TOKENS)))
register(Prediction(
    "rem1_entropy_asymptotic", "REM-1",
    "row entropy over ln T: 1 - beta^2/beta_c^2 below beta_c, 0 above (entropy collapse)",
    ("beta", "rho"), "T -> infinity; i.i.d. Gaussian scores; LN'd tokens with cosine rho",
    _quiet(lambda beta, rho: _generated().entropy_ratio_asymptotic(beta, 1.0, rho)),
    derive_entropy_ratio_asymptotic().subs(_LN_TOKENS)))
register(Prediction(
    "rem2_ipr_asymptotic", "REM-2",
    "E sum_s A_ts^2: 0 below beta_c, 1 - beta_c/beta above (condensation)",
    ("beta", "rho"), "T -> infinity; Poisson-Dirichlet(beta_c/beta) weights above beta_c",
    _quiet(lambda beta, rho: _generated().ipr_asymptotic(beta, 1.0, rho)),
    derive_ipr_asymptotic().subs(_LN_TOKENS)))
register(Prediction(
    "rem2_moment_asymptotic", "REM-2",
    "E sum_s A_ts^k: 0 below beta_c, Gamma(k-m)/(Gamma(k) Gamma(1-m)), m = beta_c/beta, above",
    ("k", "beta", "rho"), "T -> infinity; k > 1; Poisson-Dirichlet(m) weights",
    lambda k, beta, rho: _vectorised(pd_moment, k, beta, rho),
    derive_ipr_moment_asymptotic().subs(_LN_TOKENS)))
register(Prediction(
    "rem3_cosine_map", "REM-3",
    "token cosine after one attention layer given the row ipr: rho/((1-rho) ipr + rho)",
    ("rho", "ipr"), "d -> infinity; overlap between rows neglected; ipr the mean of sum_s A^2",
    lambda rho, ipr: _generated().cosine_map(rho, ipr), derive_cosine_map()))
register(Prediction(
    "rem3_cosine_map_asymptotic", "REM-3",
    "one-layer cosine map with the asymptotic ipr: 1 below beta_c, rho/(1 - sqrt(2(1-rho))/beta) "
    "above",
    ("beta", "rho"), "T, d -> infinity; 0 < rho < 1",
    _quiet(lambda beta, rho: _generated().cosine_map_asymptotic(beta, rho)),
    derive_cosine_map_asymptotic()))
register(Prediction(
    "rem4_cosine_recursion", "REM-4",
    "per-layer token cosine (layers 0..depth) from the order-parameter recursion with the "
    "asymptotic ipr",
    _RECURSION_PARAMS, "T, d, d_ff -> infinity; tokens stay on a simplex; overlap neglected",
    _recursion_prediction("asymptotic")))
register(Prediction(
    "rem5_mobius_factor", "REM-5",
    "post-LN attention + residual + LN multiplies u = rho/(1-rho) by 1 + sigma_v2/alpha_attn^2 "
    "below beta_c",
    ("sigma_v2", "alpha_attn"), "ipr -> 0 (beta < beta_c, T -> infinity); overlap neglected",
    lambda sigma_v2, alpha_attn: _generated().mobius_factor_post(0.0, sigma_v2, alpha_attn),
    derive_mobius()["post"].subs(ipr, 0)))
register(Prediction(
    "rem5_alpha_attn_min", "REM-5",
    "smallest alpha_attn keeping rho_depth <= rho_max (post-LN attention layers, beta < beta_c)",
    ("depth", "sigma_v2", "rho", "rho_max"), "ipr -> 0; no MLP; 0 < rho < rho_max < 1",
    lambda depth, sigma_v2, rho, rho_max: _generated().alpha_attn_min(depth, sigma_v2, rho,
                                                                      rho_max),
    derive_alpha_attn_min()))
register(Prediction(
    "remf_ipr_finite", "REM-F", "exact E sum_s A_ts^2 at finite T (Laplace integral, quadrature)",
    ("T", "beta", "rho"), "T i.i.d. Gaussian scores per row of sd beta sqrt(ln T (1 - rho))",
    ipr_finite, _LAPLACE["ipr"].subs(_LAPLACE["sigma"], _SIGMA_LN)))
register(Prediction(
    "remf_ipr_moment_finite", "REM-F", "exact E sum_s A_ts^k at finite T (quadrature)",
    ("k", "T", "beta", "rho"), "T i.i.d. Gaussian scores per row; k >= 1",
    ipr_moment_finite, _LAPLACE["moment"].subs(_LAPLACE["sigma"], _SIGMA_LN)))
register(Prediction(
    "remf_entropy_finite", "REM-F",
    "exact E[row entropy]/ln T at finite T (Laplace integrals of ln S and 1/S, quadrature)",
    ("T", "beta", "rho"), "T i.i.d. Gaussian scores per row of sd beta sqrt(ln T (1 - rho))",
    entropy_ratio_finite, _LAPLACE["entropy"].subs(_LAPLACE["sigma"], _SIGMA_LN) / sp.log(T)))
register(Prediction(
    "remf_cosine_map_finite", "REM-F",
    "one-layer cosine map Phi_S(rho, E ipr) with the exact finite-T E ipr (plug-in)",
    ("T", "beta", "rho"), "i.i.d. scores; neglects the overlap 1/T, fluctuations of ipr across "
    "rows (Jensen gap of the mean cosine) and correlations between rows",
    cosine_map_finite, derive_cosine_map().subs(ipr, sp.Function("E_ipr")(T, beta, rho))))
register(Prediction(
    "remf_cosine_ratio_finite", "REM-F",
    "E p_S / E q_S after one attention layer: (rho + (1-rho)/T)/(rho + (1-rho) E ipr)",
    ("T", "beta", "rho"), "independent rows of i.i.d. scores (overlap 1/T); d -> infinity",
    cosine_ratio_finite,
    derive_cosine_ratio().subs({overlap: 1 / T, ipr: sp.Function("E_ipr")(T, beta, rho)})))
register(Prediction(
    "remf_overlap_finite", "REM-F",
    "exact E sum_s A_ts A_t's of two attention rows (scores correlated rho between rows)",
    ("T", "beta", "rho"), "d -> infinity: score covariance beta^2 ln T C_tt' C_ss'; i.i.d. over s",
    overlap_finite, _LAPLACE["overlap"].subs({_LAPLACE["sigma"]: _SIGMA_LN,
                                              _LAPLACE["correlation"]: rho})))
register(Prediction(
    "remf_cosine_ratio_correlated", "REM-F",
    "E p_S / E q_S after one attention layer: (rho + (1-rho) E overlap)/(rho + (1-rho) E ipr), "
    "exact overlap of rows correlated rho",
    ("T", "beta", "rho"), "random transformer at d -> infinity (LN'd tokens on a simplex)",
    cosine_ratio_correlated,
    derive_cosine_ratio().subs({overlap: sp.Function("E_overlap")(T, beta, rho),
                                ipr: sp.Function("E_ipr")(T, beta, rho)})))
register(Prediction(
    "remf_cosine_recursion", "REM-F",
    "per-layer token cosine (layers 0..depth) from the recursion with the exact finite-T ipr "
    "and row overlap",
    _RECURSION_PARAMS, "d, d_ff -> infinity; tokens stay on a simplex",
    _recursion_prediction("finite")))
