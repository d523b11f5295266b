"""Mind the gap, the spectral half: the outlier (GAP-1), the bulk laws of random-Markov attention
(GAP-2) and of key-query attention (GAP-4).

Conventions (as in ``theory.gap``): ``A = rowsoftmax(G)`` is ``T x T``, ``G_ij`` i.i.d.
``N(-s^2/2, s^2)`` (``markov_s = s``), lognormal entries of mean ``m = 1`` and
``r^2 = sigma^2/m^2 = e^{s^2} - 1``; ``A_perp = A - 1 1^T/T``; ``b_T = E ||A_perp||_F^2``
(exact, ``theory.gap.markov_frobenius2 - 1``), so the entries of ``sqrt(T) A_perp`` have variance
exactly ``b_T/T`` and ``r_T = sqrt(b_T)`` is the finite-``T`` radius.

GAP-1. ``A 1 = 1``; with ``c = A_perp^T 1`` the top eigenvalue ``lambda = sigma_1(A)^2`` of
``A^T A`` solves the secular equation ``lambda - 1 = c^T (lambda - A_perp^T A_perp)^{-1} c / T``
exactly (``A_perp 1 = 0`` and ``1^T c = 0``), so ``E sigma_1^2 - 1 = b_T/T + O(T^-2)`` and, per
sample, ``|(lambda - 1) - |c|^2/T| <= max((lambda - 1)^2, lambda (lambda - 1) p/(1 - p))`` with
``p = sigma_1(A_perp)^2 < 1`` (``sigma1_squared_first_order_bias_bound``). To second order, with
``Q1 = |c|^2/T`` and ``Q2 = |A_perp c|^2/T``, ``lambda - 1 = Q1 - Q1^2 + Q2 + D`` with ``D =
O(T^-3)``; the rows ``u`` of ``A_perp`` are independent, so pairing indices gives
``E Q1 = e2``, ``E Q1^2 = (T e4 + (T^2 + T) e2^2)/T^2`` and ``E Q2 = e4 + e2^2`` (``e2 = E|u|^2 =
b_T/T``, ``e4 = E|u|^4``, exact by ``theory.gap.centred_row_moments``): ``E sigma_1^2 - 1 =
e2 + e4 (1 - 1/T) - e2^2/T + O(T^-3)`` (``sigma1_squared_excess``). Writing the secular equation
over the eigenvalues ``mu in [0, p]`` of ``A_perp^T A_perp`` gives ``D = Q1 (Q1 - eps/lambda)
- t2 + R`` with ``eps = lambda - 1``, ``t2 = Q2 (lambda^2 - 1)/lambda^2`` and
``0 <= R <= t3 = Q2 p/(lambda^2 (lambda - p))``; ``Q1`` lies in ``[eps (lambda - p),
eps lambda]``, so ``|Q1 (Q1 - eps/lambda)| <= t1 = lambda eps^2 max(|lambda - p - 1/lambda|,
lambda - 1/lambda)`` and ``|D| <= t1 + max(t2, t3 - t2)`` per sample, with ``Q2`` measured
(``sigma1_squared_bias_bound``). To third order, with ``Q3 = |A_perp^T A_perp c|^2/T``,
``lambda - 1 = Q1 - Q1^2 + Q2 + 2 Q1^3 - 3 Q1 Q2 + Q3 + D4``, ``D4 = O(T^-4)``; ``E Q1^3``,
``E Q1 Q2`` and ``E Q3`` pair six rows and are computed exactly by ``theory.row_pairings``
(``sigma1_squared_excess_third``). Per sample, ``lambda - 1 = Q1/lambda + Q2/lambda^2 +
Q3/lambda^3 + R4`` with ``0 <= R4 <= Q3 p/(lambda^3 (lambda - p))`` puts ``Q1`` in a narrow
interval, at whose ends ``|D4|`` is largest (``sigma1_squared_third_order_bias_bound``, ``Q2``
and ``Q3`` measured).

GAP-2. Eigenvalues of ``sqrt(T) A`` without the outlier: uniform on the disc of radius ``r``,
radial CDF ``rho^2/r^2``. Singular values without the outlier: the quarter circle on
``[0, 2r]`` (the square roots of a Marchenko-Pastur law of ratio 1 and mean ``r^2``).

GAP-4. Key-query attention with score matrix ``L = (X W_Q)(X W_K)^T/sqrt(d_k)`` of score std
``v = beta sqrt(ln T)`` on isometric tokens: to first order in ``v``,
``sqrt(T) A_perp = v Z_1 Z_2^T P/sqrt(T d_k)`` with ``Z_i`` i.i.d. ``N(0, 1)`` of size
``T x d_k`` and ``P`` the centring. The nonzero squared singular values of ``Z_1 Z_2^T/sqrt(T
d_k)`` are ``(T/d_k)`` times the eigenvalues of ``W_1 W_2`` with ``W_i = Z_i^T Z_i/T``
(``d_k x d_k``, Marchenko-Pastur of ratio ``c = d_k/T``, mean 1), whose limit law is the free
multiplicative convolution ``mu_c = MP_c [x] MP_c`` (S-transform ``1/(1 + c z)^2``). Over the
``T`` singular values ``t`` of ``sqrt(T) A_perp / v`` this gives the CDF
``F(t) = 1 - c mu_c((c t^2, inf))`` (``key_query_singular_cdf``); the squared edge is
``x_+(c)/c`` with ``x_+ = 1/chi(z*)``, ``chi(z) = z/((1 + z)(1 + c z)^2)``, ``chi'(z*) = 0``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import sympy as sp
from scipy import integrate

from theory.predictions import Prediction, register

s, T = sp.symbols("markov_s T", positive=True)
r, x, rho, b = sp.symbols("r x rho b_T", positive=True)
c = sp.symbols("c", positive=True)  # d_k / T
z, u, psi, eta = sp.symbols("z u psi eta")
e2, e4 = sp.symbols("e_2 e_4", positive=True)  # theory.gap's e2_sym, e4_sym (same symbols)

# ----------------------------------------------------------------------------- GAP-1


def derive_sigma1_squared() -> sp.Expr:
    """``E sigma_1(A)^2`` to ``O(T^-2)``: ``1 + b_T/T`` (``E |c|^2 = b_T`` exactly)."""
    return 1 + b / T


def secular_symbols(order: int) -> tuple[sp.Symbol, ...]:
    """``Q_1 ... Q_order`` (``Q_k = c^T M^{k-1} c/T``; the first two are ``theory.gap``'s)."""
    return sp.symbols(f"Q_1:{order + 1}", real=True)


def derive_secular_expansion(order: int = 2) -> sp.Expr:
    """``lambda - 1`` to ``order`` from the secular equation
    ``eps = Q1/(1 + eps) + Q2/(1 + eps)^2 + Q3/(1 + eps)^3 + ...`` (``Q_k = O(T^-k)``), solved
    order by order in a bookkeeping ``h`` (``Q_k -> h^k Q_k``): ``Q1 - Q1^2 + Q2`` at order 2,
    plus ``2 Q1^3 - 3 Q1 Q2 + Q3`` at order 3."""
    qs = secular_symbols(order)
    etas = sp.symbols(f"eta_1:{order + 1}")
    hh = sp.Symbol("h")
    eps = sum(hh ** (k + 1) * etas[k] for k in range(order))
    eq = sp.expand(sp.series(eps - sum(hh**k * qs[k - 1] / (1 + eps) ** k
                                       for k in range(1, order + 1)),
                             hh, 0, order + 1).removeO())
    sol: dict[sp.Symbol, sp.Expr] = {}
    for k in range(order):
        sol[etas[k]] = sp.solve(eq.coeff(hh, k + 1).subs(sol), etas[k])[0]
    return sp.expand(sum(sol.values()))


def derive_sigma1_squared_second_order() -> sp.Expr:
    """``E sigma_1(A)^2`` to ``O(T^-3)`` in the centred-row moments ``e2 = E|u|^2``,
    ``e4 = E|u|^4``: the expansion ``derive_secular_expansion`` averaged with the pairing
    moments ``theory.gap.derive_pairing_moments``."""
    from theory.gap import derive_pairing_moments

    moments = derive_pairing_moments()
    excess = sum(term.as_coeff_Mul()[0] * moments[term.as_coeff_Mul()[1]]
                 for term in derive_secular_expansion().as_ordered_terms())
    return 1 + sp.simplify(sp.expand(excess))


def derive_sigma1_squared_asymptotic() -> sp.Expr:
    """``E sigma_1(A)^2 = 1 + r^2/T`` with ``b_T -> r^2 = e^{s^2} - 1``."""
    return derive_sigma1_squared().subs(b, sp.exp(s**2) - 1)


# ----------------------------------------------------------------------------- GAP-2


def derive_circular_radial_cdf() -> sp.Expr:
    """``P(|lambda| <= rho)`` for the uniform law on the disc of radius ``r`` (``rho <= r``)."""
    t = sp.symbols("t", positive=True)
    density = 1 / (sp.pi * r**2)
    cdf = sp.integrate(2 * sp.pi * t * density, (t, 0, rho))
    assert sp.simplify(cdf.subs(rho, r) - 1) == 0
    return sp.simplify(cdf)


def derive_quarter_circle_density() -> sp.Expr:
    """Density of ``x = sqrt(lambda)`` when ``lambda`` follows Marchenko-Pastur of ratio 1 and
    mean ``r^2`` (squared singular values of a square i.i.d. matrix of entry variance
    ``r^2/T``): the quarter circle on ``[0, 2r]``."""
    lam = sp.symbols("lambda", positive=True)
    mp1 = sp.sqrt(lam * (4 * r**2 - lam)) / (2 * sp.pi * r**2 * lam)
    density = sp.simplify(mp1.subs(lam, x**2) * 2 * x)
    assert sp.simplify(sp.integrate(density, (x, 0, 2 * r)) - 1) == 0
    return density


def derive_quarter_circle_cdf() -> sp.Expr:
    """CDF of the quarter-circle law on ``[0, 2r]`` (``0 <= x <= 2r``)."""
    t = sp.symbols("t", positive=True)
    cdf = sp.integrate(derive_quarter_circle_density().subs(x, t), (t, 0, x))
    cdf = sp.simplify(cdf)
    assert sp.simplify(cdf.subs(x, 2 * r) - 1) == 0
    return cdf


def derive_quarter_circle_edge() -> sp.Expr:
    """Upper edge of the quarter circle: where the density vanishes."""
    roots = [e for e in sp.solve(derive_quarter_circle_density(), x) if e.is_positive]
    return roots[0]


# ----------------------------------------------------------------------------- GAP-4


def derive_product_chi() -> sp.Expr:
    """``chi(z) = z S(z)/(1 + z)`` of ``mu_c = MP_c [x] MP_c``, ``S(z) = 1/(1 + c z)^2`` (the
    S-transform of one Marchenko-Pastur law of ratio ``c`` and mean 1, squared by freeness).
    ``chi`` inverts ``psi(u) = sum_k m_k u^k``."""
    return z / ((1 + z) * (1 + c * z) ** 2)


def derive_product_edge_equation() -> sp.Expr:
    """Numerator of ``chi'(z)`` (its positive root ``z*`` gives the edge ``1/chi(z*)``)."""
    num = sp.numer(sp.together(sp.diff(derive_product_chi(), z)))
    return sp.expand(num * 2 * c / sp.Poly(num, z).LC())


def derive_product_edge() -> sp.Expr:
    """Upper edge ``x_+(c)`` of ``mu_c``: ``1/chi(z*)`` at the positive root of ``chi' = 0``."""
    roots = sp.solve(derive_product_edge_equation(), z)
    positive = [e for e in roots if e.subs(c, 1).is_positive]
    return sp.simplify(1 / derive_product_chi().subs(z, positive[0]))


def derive_product_edge_w() -> sp.Expr:
    """``x_+`` in the variable ``w = sqrt(1 + 8/c)`` (so ``z* = (w - 1)/4``):
    ``(w + 3)^3/((w + 1)^2 (w - 1))``; equal to ``derive_product_edge`` (checked)."""
    w = sp.symbols("w", positive=True)
    edge = sp.factor(sp.simplify((1 / derive_product_chi()).subs(z, (w - 1) / 4)
                                 .subs(c, 8 / (w**2 - 1))))
    check = (edge - derive_product_edge()).subs(w, sp.sqrt(1 + 8 / c))
    assert all(abs(sp.N(check.subs(c, cv))) < 1e-12 for cv in (sp.Rational(1, 3), 1, 5))
    return edge


def derive_key_query_edge() -> sp.Expr:
    """Edge of the singular values of ``sqrt(T) A_perp / v`` (first order in ``v``):
    ``sqrt(x_+(c)/c)``."""
    return sp.sqrt(derive_product_edge() / c)


def derive_product_cubic() -> sp.Poly:
    """``psi(u)`` solves ``chi(psi) = u``: a cubic in ``psi`` with coefficients in ``u, c``."""
    p, q = sp.fraction(sp.together(derive_product_chi().subs(z, psi) - u))
    return sp.Poly(sp.expand(-p + 0 * q), psi)


def derive_product_cubic_shifted() -> sp.Poly:
    """The cubic in ``eta = psi + 1/c`` at ``u = 1/x``, times ``x``: ``c^2 eta^3 + c(c - 1)
    eta^2 - x eta + x/c``. At ``x = 0`` the cubic is ``(psi + 1)(c psi + 1)^2``, so the roots
    near the hard edge ``x -> 0`` are small in ``eta``: this form keeps them accurate."""
    cubic = derive_product_cubic().as_expr()
    return sp.Poly(sp.expand((cubic.subs(u, 1 / x) * x).subs(psi, eta - 1 / c)), eta)


def derive_product_moments(n: int) -> list[sp.Expr]:
    """``m_1 .. m_n`` of ``mu_c`` by series inversion of ``chi`` (Lagrange): ``chi(psi(u)) = u``
    solved order by order."""
    coeffs = sp.symbols(f"a1:{n + 1}")
    series = sum(a * u ** (k + 1) for k, a in enumerate(coeffs))
    expansion = sp.series(derive_product_chi().subs(z, series), u, 0, n + 1).removeO()
    solution: dict = {}
    for k in range(1, n + 1):
        eq = sp.expand(expansion.coeff(u, k).subs(solution)) - (1 if k == 1 else 0)
        solution[coeffs[k - 1]] = sp.expand(sp.solve(eq, coeffs[k - 1])[0])
    return [sp.factor(solution[a]) for a in coeffs]


def generated_functions() -> list[tuple[str, sp.Expr, tuple[sp.Symbol, ...]]]:
    """The closed forms printed into ``theory/_generated/gap_spectra.py``: (name, expr, args)."""
    return [
        ("sigma1_squared", derive_sigma1_squared(), (b, T)),
        ("sigma1_squared_asymptotic", derive_sigma1_squared_asymptotic(), (s, T)),
        ("sigma1_squared_second_order", derive_sigma1_squared_second_order(), (e2, e4, T)),
        ("circular_radial_cdf", derive_circular_radial_cdf(), (rho, r)),
        ("quarter_circle_cdf", derive_quarter_circle_cdf(), (x, r)),
        ("quarter_circle_edge", derive_quarter_circle_edge(), (r,)),
        ("product_edge", derive_product_edge(), (c,)),
        ("key_query_edge", derive_key_query_edge(), (c,)),
    ]


def _generated():
    """The printed evaluators (imported lazily: ``theory.derive`` rewrites them from here)."""
    from theory._generated import gap_spectra

    return gap_spectra


# ----------------------------------------------------------------------------- numerics


def lognormal_radius(markov_s: float) -> float:
    """``r = sigma/m = sqrt(e^{s^2} - 1)``: the large-``T`` radius of the bulk of ``sqrt(T) A``."""
    return math.sqrt(math.expm1(float(markov_s) ** 2))


def finite_radius(T: int, markov_s: float) -> float:
    """``r_T = sqrt(b_T)``, ``b_T = E ||A_perp||_F^2`` exact (entries of ``sqrt(T) A_perp``
    have variance ``b_T/T``)."""
    from theory.gap import markov_frobenius2

    return math.sqrt(markov_frobenius2(int(T), float(markov_s)) - 1.0)


def sigma1_squared_excess(T: int, markov_s: float) -> float:
    """``E sigma_1(A)^2 - 1`` to ``O(T^-3)``: ``e2 + e4 (1 - 1/T) - e2^2/T`` (exact moments)."""
    from theory.gap import centred_row_moments

    m2, m4 = centred_row_moments(int(T), float(markov_s))
    return float(_generated().sigma1_squared_second_order(m2, m4, T)) - 1.0


def _secular_graph(powers: dict[int, int]) -> tuple[list[tuple[int, int]], int]:
    """The dot-product graph of ``prod_k (T Q_k)^{powers[k]}`` (``T Q_k = c^T M^{k-1} c`` is
    the path ``<u_a, u_1><u_1, u_2> ... <u_{k-1}, u_b>`` summed over its ``k + 1`` row slots)
    and the number of factors ``Q``."""
    edges, n, factors = [], 0, 0
    for k, times in sorted(powers.items()):
        for _ in range(times):
            edges += [(n + i, n + i + 1) for i in range(k)]
            n += k + 1
            factors += 1
    return edges, factors


def secular_moment(T: int, markov_s: float, powers: dict[int, int]) -> float:
    """Exact ``E prod_k Q_k^{powers[k]}`` (``theory.row_pairings``)."""
    from theory.row_pairings import expect_graph

    edges, factors = _secular_graph(powers)
    return expect_graph(int(T), float(markov_s), edges) / float(T) ** factors


@functools.cache
def _third_order_monomials() -> tuple[tuple[float, tuple[tuple[int, int], ...]], ...]:
    """``(coefficient, ((k, power of Q_k), ...))`` of ``2 Q1^3 - 3 Q1 Q2 + Q3``, derived once."""
    third = derive_secular_expansion(3) - derive_secular_expansion(2)
    return tuple((float(coeff), tuple((k + 1, e) for k, e in enumerate(monomial) if e))
                 for monomial, coeff in sp.Poly(third, *secular_symbols(3)).terms())


def sigma1_squared_third_order_term(T: int, markov_s: float) -> float:
    """``E[2 Q1^3 - 3 Q1 Q2 + Q3]``, the ``O(T^-3)`` term of ``E sigma_1(A)^2 - 1``, exact."""
    return sum(coeff * secular_moment(T, markov_s, dict(powers))
               for coeff, powers in _third_order_monomials())


def sigma1_squared_excess_third(T: int, markov_s: float) -> float:
    """``E sigma_1(A)^2 - 1`` to ``O(T^-4)``: the second order (``sigma1_squared_excess``) plus
    ``E[2 Q1^3 - 3 Q1 Q2 + Q3]`` (``sigma1_squared_third_order_term``), all exact moments."""
    return sigma1_squared_excess(T, markov_s) + sigma1_squared_third_order_term(T, markov_s)


def sigma1_squared_excess_first_order(T: int, markov_s: float) -> float:
    """``E sigma_1(A)^2 - 1 = b_T/T`` to ``O(T^-2)``."""
    return finite_radius(T, markov_s) ** 2 / T


def sigma1_squared_bias_bound(sigma_1: np.ndarray, sigma_1_perp: np.ndarray,
                              secular_q2: np.ndarray) -> np.ndarray:
    """Per-sample bound on ``|(sigma_1^2 - 1) - (Q1 - Q1^2 + Q2)|``, the remainder of the
    second-order expansion (module docstring), from ``lambda = sigma_1^2``,
    ``p = sigma_1(A_perp)^2`` and ``Q2 = secular_q2``; ``inf`` where ``sigma_1(A_perp) >= 1``.
    Arrays of one value per sample."""
    lam = np.asarray(sigma_1, dtype=float) ** 2
    p = np.asarray(sigma_1_perp, dtype=float) ** 2
    q2 = np.asarray(secular_q2, dtype=float)
    eps = np.maximum(lam - 1.0, 0.0)
    t1 = lam * eps**2 * np.maximum(np.abs(lam - p - 1.0 / lam), lam - 1.0 / lam)
    t2 = q2 * (lam**2 - 1.0) / lam**2
    with np.errstate(divide="ignore", invalid="ignore"):
        t3 = np.where(p < 1.0, q2 * p / (lam**2 * (lam - p)), np.inf)
    return t1 + np.maximum(t2, t3 - t2)


def sigma1_squared_third_order_bias_bound(sigma_1: np.ndarray, sigma_1_perp: np.ndarray,
                                          secular_q2: np.ndarray,
                                          secular_q3: np.ndarray) -> np.ndarray:
    """Per-sample bound on ``|D4|``, ``D4 = (lambda - 1) - (Q1 - Q1^2 + Q2 + 2 Q1^3 - 3 Q1 Q2 +
    Q3)`` (module docstring, GAP-1 third order), from ``lambda = sigma_1^2``, ``p =
    sigma_1(A_perp)^2``, ``Q2`` and ``Q3``. The secular equation gives ``Q1 = lambda (eps -
    Q2/lambda^2 - Q3/lambda^3 - R4)`` with ``0 <= R4 <= Q3 p/(lambda^3 (lambda - p))``, and ``D4``
    is monotone in ``Q1`` (its derivative is ``1 - 2 Q1 + 6 Q1^2 - 3 Q2 > 0`` for ``Q2 < 5/18``),
    so ``|D4|`` is at most its larger value at the two ends (``p < lambda`` always: ``A_perp^T
    A_perp`` is ``A^T A`` compressed to ``1^perp``). ``inf`` where ``Q2 >= 5/18``."""
    lam = np.asarray(sigma_1, dtype=float) ** 2
    p = np.asarray(sigma_1_perp, dtype=float) ** 2
    q2 = np.asarray(secular_q2, dtype=float)
    q3 = np.asarray(secular_q3, dtype=float)
    eps = lam - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        r4 = np.where(p < lam, q3 * p / (lam**3 * (lam - p)), np.inf)
    hi = lam * (eps - q2 / lam**2 - q3 / lam**3)
    ends = []
    for q1 in (hi, hi - lam * r4):
        with np.errstate(invalid="ignore"):
            ends.append(np.abs(eps - (q1 - q1**2 + q2 + 2 * q1**3 - 3 * q1 * q2 + q3)))
    bound = np.maximum(*ends)
    return np.where((p < lam) & (q2 < 5.0 / 18.0), bound, np.inf)


def sigma1_squared_first_order_bias_bound(sigma_1: np.ndarray,
                                          sigma_1_perp: np.ndarray) -> np.ndarray:
    """Per-sample bound on ``|(sigma_1^2 - 1) - |c|^2/T|`` from the secular equation (module
    docstring); ``inf`` where ``sigma_1(A_perp) >= 1``. Arrays of one value per sample."""
    lam = np.asarray(sigma_1, dtype=float) ** 2
    p = np.asarray(sigma_1_perp, dtype=float) ** 2
    excess = np.maximum(lam - 1.0, 0.0)
    with np.errstate(divide="ignore"):
        up = np.where(p < 1.0, lam * excess * p / (1.0 - p), np.inf)
    return np.maximum(excess**2, up)


def circular_radial_cdf(radius: np.ndarray | float, r_: float) -> np.ndarray:
    """Radial CDF of the uniform disc of radius ``r_`` (clipped to ``[0, 1]``)."""
    rad = np.clip(np.asarray(radius, dtype=float), 0.0, r_)
    return _generated().circular_radial_cdf(rad, r_)


def circular_radial_quantile(p: np.ndarray, r_: float) -> np.ndarray:
    """Inverse of ``circular_radial_cdf``."""
    return r_ * np.sqrt(np.asarray(p, dtype=float))


def quarter_circle_cdf(xs: np.ndarray | float, r_: float) -> np.ndarray:
    """CDF of the quarter circle on ``[0, 2 r_]`` (clipped)."""
    xx = np.clip(np.asarray(xs, dtype=float), 0.0, 2.0 * r_)
    return np.clip(_generated().quarter_circle_cdf(xx, r_), 0.0, 1.0)


def quarter_circle_quantile(p: np.ndarray, r_: float) -> np.ndarray:
    """Inverse of ``quarter_circle_cdf`` (bisection, to 1e-14 relative)."""
    return _invert(lambda t: quarter_circle_cdf(t, r_), np.asarray(p, dtype=float),
                   0.0, 2.0 * r_)


def _invert(cdf, p: np.ndarray, lo: float, hi: float) -> np.ndarray:
    a = np.full(p.shape, lo)
    bb = np.full(p.shape, hi)
    for _ in range(60):
        mid = (a + bb) / 2
        below = cdf(mid) < p
        a = np.where(below, mid, a)
        bb = np.where(below, bb, mid)
    return (a + bb) / 2


def _edges(c_: float) -> tuple[float, float]:
    """Support ``[x_-, x_+]`` of the absolutely continuous part of ``mu_c``: ``1/chi`` at the
    two roots of ``2 c z^2 + c z - 1``; ``x_- = 0`` (a hard edge) for ``c >= 1``."""
    if c_ >= 1.0:
        lower = 0.0
    else:
        zm = (-c_ - math.sqrt(c_**2 + 8 * c_)) / (4 * c_)
        lower = 1.0 / float(derive_product_chi().subs({c: c_, z: zm}))
    return lower, float(_generated().product_edge(c_))


@functools.cache
def _cubic(c_: float) -> tuple:
    coeffs = derive_product_cubic_shifted().all_coeffs()
    return tuple(sp.lambdify(x, k.subs(c, c_), "math") for k in coeffs)


def product_density(xs: np.ndarray | float, c_: float) -> np.ndarray:
    """Density of the absolutely continuous part of ``mu_c`` (mass ``min(1, 1/c)``):
    ``-Im G(x + i0)/pi = |Im psi(1/x)|/(pi x)``, ``psi`` the complex root of the cubic
    (``derive_product_cubic_shifted``; zero where all roots are real)."""
    c_ = float(c_)
    coeffs = _cubic(c_)
    xx = np.atleast_1d(np.asarray(xs, dtype=float))
    out = np.zeros(xx.shape)
    for i, xi in enumerate(xx):
        if xi <= 0:
            continue
        roots = np.roots([k(xi) for k in coeffs])
        out[i] = np.max(np.abs(roots.imag)) / (math.pi * xi)
    return out if np.ndim(xs) else out[0]


def _power(c_: float) -> int:
    """Exponent ``p`` of the map ``x = x_- + (x_+ - x_-) sin(theta/2)^(2p)``: 3 smooths the
    hard edge at 0 (``c >= 1``, density ``~ x^{-2/3}`` or ``x^{-1/2}``), 1 a square-root edge."""
    return 3 if c_ >= 1.0 else 1


@functools.cache
def _product_cdf_table(c_: float, n: int = 800) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative a.c. mass of ``mu_c`` at ``theta_k = k pi/n`` (map of ``_power``), by
    adaptive quadrature between nodes (smooth integrand in ``theta``)."""
    lo, hi = _edges(c_)
    p = _power(c_)
    thetas = np.linspace(0.0, math.pi, n + 1)

    def integrand(th: float) -> float:
        sn = math.sin(th / 2)
        xx = lo + (hi - lo) * sn ** (2 * p)
        dx = (hi - lo) * p * sn ** (2 * p - 1) * math.cos(th / 2)
        return float(product_density(xx, c_) * dx)

    pieces = [integrate.quad(integrand, a, bb, epsabs=1e-14, epsrel=1e-12)[0]
              for a, bb in zip(thetas[:-1], thetas[1:], strict=True)]
    return thetas, np.concatenate([[0.0], np.cumsum(pieces)])


def product_cdf(xs: np.ndarray | float, c_: float) -> np.ndarray:
    """CDF of ``mu_c`` (atom ``max(0, 1 - 1/c)`` at 0 included), by monotone cubic
    interpolation in ``theta`` of the tabulated quadrature (error below 1e-6)."""
    from scipy.interpolate import PchipInterpolator

    c_ = float(c_)
    thetas, cum = _product_cdf_table(c_)
    lo, hi = _edges(c_)
    xx = np.asarray(xs, dtype=float)
    frac = np.clip((xx - lo) / (hi - lo), 0.0, 1.0)
    theta = 2 * np.arcsin(frac ** (1 / (2 * _power(c_))))
    atom = max(0.0, 1.0 - 1.0 / c_)
    return np.where(xx < 0, 0.0, atom + PchipInterpolator(thetas, cum)(theta))


def key_query_singular_cdf(t: np.ndarray | float, c_: float) -> np.ndarray:
    """CDF over the ``T`` singular values ``t`` of ``sqrt(T) A_perp / v`` at first order in the
    score std ``v``: ``1 - c mu_c((c t^2, inf))``, ``c = d_k/T``."""
    tt = np.asarray(t, dtype=float)
    return np.clip(1.0 - c_ * (1.0 - product_cdf(c_ * tt**2, c_)), 0.0, 1.0)


def key_query_singular_quantile(p: np.ndarray, c_: float) -> np.ndarray:
    """Inverse of ``key_query_singular_cdf``."""
    return _invert(lambda t: key_query_singular_cdf(t, c_), np.asarray(p, dtype=float), 0.0,
                   float(_generated().key_query_edge(c_)))


def key_query_score_std(T: int, beta: float) -> float:
    """Score std ``v = beta sqrt(ln T)`` of key-query attention on isometric tokens."""
    return float(beta) * math.sqrt(math.log(T))


def key_query_frobenius_perp(T: int, d_k: int, beta: float) -> float:
    """Exact ``E ||A_perp||_F^2 = T E ipr - 1`` of key-query attention (REM-F at finite
    ``d_k``): the second moment of the singular values of ``sqrt(T) A_perp``, hence the
    finite-size scale ``v_T^2`` of the bulk law."""
    from theory.rem_key_query import ipr_key_query

    return float(T * ipr_key_query(T, d_k, beta) - 1.0)


register(Prediction(
    "gap1_sigma1_squared_excess", "GAP-1",
    "E sigma_1(A)^2 - 1 of random-Markov attention to second order: e2 + e4 (1 - 1/T) - e2^2/T "
    "with exact centred-row moments",
    ("T", "markov_s"), "error O(T^-3), bounded per sample by the secular equation",
    lambda T, markov_s: sigma1_squared_excess(T, markov_s), derive_sigma1_squared_second_order()))
register(Prediction(
    "gap1_sigma1_squared_excess_third", "GAP-1",
    "E sigma_1(A)^2 - 1 of random-Markov attention to third order: the second order plus "
    "E[2 Q1^3 - 3 Q1 Q2 + Q3] by exact pairing of the centred rows",
    ("T", "markov_s"), "error O(T^-4), bounded per sample by the secular equation",
    lambda T, markov_s: sigma1_squared_excess_third(T, markov_s), derive_secular_expansion(3)))
register(Prediction(
    "gap1_sigma1_squared_first_order", "GAP-1",
    "E sigma_1(A)^2 - 1 of random-Markov attention: b_T/T with b_T = E||A_perp||_F^2 exact",
    ("T", "markov_s"), "error O(T^-2), bounded per sample by the secular equation",
    lambda T, markov_s: sigma1_squared_excess_first_order(T, markov_s),
    derive_sigma1_squared()))
register(Prediction(
    "gap1_sigma1_squared_asymptotic", "GAP-1",
    "E sigma_1(A)^2 = 1 + r^2/T, r^2 = e^{s^2} - 1",
    ("markov_s", "T"), "large T (b_T -> r^2)",
    lambda markov_s, T: _generated().sigma1_squared_asymptotic(markov_s, T),
    derive_sigma1_squared_asymptotic()))
register(Prediction(
    "gap2_bulk_radius", "GAP-2",
    "radius r = sqrt(e^{s^2} - 1) of the eigenvalue disc of sqrt(T) A (outlier removed)",
    ("markov_s",), "T -> infinity; circular law for random Markov matrices",
    lambda markov_s: lognormal_radius(markov_s), sp.sqrt(sp.exp(s**2) - 1)))
register(Prediction(
    "gap2_bulk_radius_finite", "GAP-2",
    "finite-T radius r_T = sqrt(E||A_perp||_F^2) (exact quadrature)",
    ("T", "markov_s"), "law of i.i.d. entries of variance b_T/T at finite T",
    lambda T, markov_s: finite_radius(T, markov_s)))
register(Prediction(
    "gap2_singular_edge", "GAP-2",
    "edge 2r of the quarter-circle law of the singular values of sqrt(T) A (outlier removed)",
    ("markov_s",), "T -> infinity",
    lambda markov_s: _generated().quarter_circle_edge(lognormal_radius(markov_s)),
    derive_quarter_circle_edge()))
register(Prediction(
    "gap4_key_query_edge", "GAP-4",
    "edge of the singular values of sqrt(T) A_perp / v for key-query attention, v = beta "
    "sqrt(ln T): sqrt(x_+(c)/c), x_+ the edge of MP_c [x] MP_c, c = d_k/T",
    ("c",), "first order in v (small beta); T, d_k -> infinity at fixed c",
    lambda c: _generated().key_query_edge(c), derive_key_query_edge()))
