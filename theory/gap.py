"""Mind the gap (Nait Saada, Naderi, Tanner): rank collapse in width of random-Markov attention.

Random-Markov attention: ``A = rowsoftmax(G)``, ``G_ij`` i.i.d. ``N(mu, s^2)`` with
``mu = -s^2/2`` (``markov_s = s``), so the entries ``e_ij = exp(G_ij)`` are lognormal with mean
``m = 1``; ``r^2 = sigma^2/m^2 = e^{s^2} - 1``. ``A_perp = A - 1 1^T/T`` removes the gap.
Stable rank ``sr(M) = ||M||_F^2 / ||M||_2^2``.

GAP-3 (derived here):

1. ``||A||_F^2 = 1 + ||A_perp||_F^2`` exactly (``1^T A_perp 1 = 0``), and
   ``E ||A||_F^2 = T E[Y2]`` with ``Y2 = sum_j e_j^2 / (sum_j e_j)^2`` for one row.
2. ``sigma_1(A)^2 = 1 + |c|^2/T + O(T^-2)`` where ``c = A_perp^T 1`` (perturbation of the
   eigenvector ``1/sqrt T`` of ``A^T A``), and ``E |c|^2 = E ||A_perp||_F^2`` exactly (columns of
   ``A`` are sums of ``T`` independent entries of mean ``1/T``).
3. Hence ``sr(A) = (1 + b) / (1 + b/T) + O(T^-2)`` with ``b = T E[Y2] - 1``, and
   ``sr(A) -> 1 + r^2 = e^{s^2}`` as ``T -> inf``.
4. ``b`` is computed exactly at finite ``T`` by a Laplace integral
   (``1/S^2 = int_0^inf t e^{-tS} dt``, shared with the REM chapter), and to first order in
   ``1/T`` by the delta method.
5. ``sr(A_perp)/T -> 1/4``: the singular values of ``sqrt(T) A_perp`` follow the quarter circle
   on ``[0, 2r]`` (second moment ``r^2``, edge ``2r``), assumed from the circular law for random
   Markov matrices (Bordenave-Caputo-Chafai).
6. Second order (``derive_stable_rank_second_order``). With ``u_i`` the rows of ``A_perp``,
   ``F_perp = sum_i |u_i|^2``, ``Q1 = |c|^2/T``, ``Q2 = |A_perp c|^2/T``, ``Q_k = c^T M^{k-1} c/T``
   (``M = A_perp^T A_perp``), the top eigenvalue ``lambda = 1 + eps`` of ``A^T A`` solves
   ``eps = c^T (lambda - M)^{-1} c/T``, so ``1/lambda = 1 - Q1 + (2 Q1^2 - Q2) + ...`` and
   ``sr(A) = (1 + F_perp)/lambda``. Pairing independent rows (``e2 = E|u|^2 = b/T``,
   ``e4 = E|u|^4``) gives ``E sr = (1 + b)(1 - e2) - (2 + b) v + 2 (1 + b)(e4 + e2^2)/T`` with
   ``v = e4 - e2^2``: the ``O(T^-2)`` term of ``E[1/lambda]`` vanishes (``E Q2 = 2 e2^2 + v``,
   ``E Q1^2 = e2^2 + O(T^-3)``), and so does every higher term of the expansion when
   ``Q_k`` is replaced by its Marchenko-Pastur value ``Cat_k e2^k`` (then ``1/lambda = 1 - e2``
   exactly). The first-order formula ``(1 + b)/(1 + b/T)`` is therefore off by
   ``+(1 + b) e2^2/(1 + e2)`` at second order. What remains is ``O(T^-3)``: the two explicit
   terms above (row-norm fluctuation ``v`` and the ``1/T`` parts of the pairings), and the
   neglected ones (third-order fluctuation terms, covariances of ``F_perp`` with ``Q1^2`` and
   ``Q2``), of the same origin. "``O(T^-3)``" is asymptotic: the coefficients grow like
   lognormal moments ``e^{c s^2}``, and at ``s >= 1.25``, ``T <= 128`` (before the row sums
   ``sum_j e_j^2`` stop condensing) ``T^3`` times the measured remainder still grows with ``T``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from theory.predictions import Prediction, register

s, T, x, r = sp.symbols("markov_s T x r", positive=True)
eps1, eps2, h = sp.symbols("epsilon_1 epsilon_2 h", real=True)


def lognormal_moment(k: int) -> sp.Expr:
    """``E e^{k G}`` for ``G ~ N(-s^2/2, s^2)``."""
    mu = -s**2 / 2
    return sp.simplify(sp.exp(k * mu + k**2 * s**2 / 2))


def derive_stable_rank_limit() -> sp.Expr:
    """``lim_T sr(A) = 1 + sigma^2/m^2``, in terms of ``markov_s``."""
    m, mu2 = lognormal_moment(1), lognormal_moment(2)
    return sp.simplify(1 + (mu2 - m**2) / m**2)


def derive_frobenius_first_order() -> sp.Expr:
    """``E ||A||_F^2 = T E[Y2]`` to first order in ``1/T`` (delta method).

    With ``S1 = T m (1 + eps1)``, ``S2 = T mu2 (1 + eps2)``: ``T Y2 = (mu2/m^2)(1 + eps2)/(1 +
    eps1)^2``, expanded to second order in the fluctuations, whose covariances are
    ``E eps1^2 = sigma^2/(T m^2)``, ``E eps1 eps2 = (mu3 - m mu2)/(T m mu2)``."""
    m, mu2, mu3 = lognormal_moment(1), lognormal_moment(2), lognormal_moment(3)
    ratio = (1 + h * eps2) / (1 + h * eps1) ** 2
    second = sp.series(ratio, h, 0, 3).removeO().subs(h, 1).expand()
    # E eps1 = E eps2 = 0; replace second moments by their covariances.
    poly = sp.Poly(second, eps1, eps2)
    moments = {(0, 0): 1, (1, 0): 0, (0, 1): 0,
               (2, 0): (mu2 - m**2) / (T * m**2),
               (1, 1): (mu3 - m * mu2) / (T * m * mu2),
               (0, 2): 0}
    expectation = sum(coeff * moments[monom] for monom, coeff in poly.terms())
    return sp.simplify(sp.expand(mu2 / m**2 * expectation))


def derive_stable_rank_finite(frobenius: sp.Expr) -> sp.Expr:
    """``sr(A) = F / (1 + (F - 1)/T)`` given ``F = E ||A||_F^2`` (to ``O(T^-2)``)."""
    return frobenius / (1 + (frobenius - 1) / T)


def derive_stable_rank_first_order() -> sp.Expr:
    """``sr(A)`` to first order in ``1/T``."""
    f = derive_frobenius_first_order()
    u = sp.symbols("u", positive=True)  # u = 1/T
    series = sp.series(derive_stable_rank_finite(f).subs(T, 1 / u), u, 0, 2).removeO()
    return sp.simplify(series.subs(u, 1 / T))


e2_sym, e4_sym = sp.symbols("e_2 e_4", positive=True)  # E|u|^2, E|u|^4 of a centred row u
q1_sym, q2_sym = sp.symbols("Q_1:3", real=True)  # |c|^2/T, |A_perp c|^2/T


def derive_pairing_moments() -> dict[sp.Expr, sp.Expr]:
    """Exact expectations of ``Q1 = |c|^2/T``, ``Q1^2``, ``Q2 = |A_perp c|^2/T`` and
    ``F_perp Q1`` (``c = A_perp^T 1``, ``c_j = sum_i u_ij``) in ``T``, ``e2``, ``e4``, keyed by
    the monomial (``F_perp`` the symbol ``F_perp``).

    Rows ``u_i`` are independent with ``E u_ij = 0``, so only index pairings survive: all four
    indices in one row, or two rows paired with themselves or with each other. One row's
    covariance ``C`` has ``C_jj = e2/T`` and ``C 1 = 0`` (``sum_j u_j = 0``), which fixes
    ``C_jk = -C_jj/(T - 1)`` and ``||C||_F^2``:
    ``E|c|^4 = T e4 + T (T - 1)(e2^2 + 2 ||C||_F^2)``,
    ``E|A_perp c|^2 = sum_i E(sum_j u_ij c_j)^2 = T (e4 + (T - 1) ||C||_F^2)``,
    ``E[F_perp |c|^2] = T e4 + T (T - 1) e2^2``."""
    e2, e4 = e2_sym, e4_sym
    c0, c1 = e2 / T, sp.Symbol("C_1")
    c1 = sp.solve(c0 + (T - 1) * c1, c1)[0]
    fro = T * c0**2 + T * (T - 1) * c1**2
    f = sp.Symbol("F_perp", positive=True)
    return {q1_sym: e2,
            q1_sym**2: sp.expand((T * e4 + T * (T - 1) * (e2**2 + 2 * fro)) / T**2),
            q2_sym: sp.expand(T * (e4 + (T - 1) * fro) / T),
            f * q1_sym: sp.expand((T * e4 + T * (T - 1) * e2**2) / T)}


def _truncate(expr: sp.Expr, order: int) -> sp.Expr:
    expr = sp.expand(expr)
    return sp.Add(*[expr.coeff(h, k) * h**k for k in range(order + 1)])


def derive_inverse_top_eigenvalue(order: int = 2) -> list[sp.Expr]:
    """``1/lambda = sum_k w_k`` order by order in the bookkeeping parameter ``h``, where
    ``lambda - 1 = sum_k h^k Q_k / lambda^k`` (``Q_k = c^T M^{k-1} c/T`` is of order ``T^-k``);
    returns ``[w_0, ..., w_order]`` as polynomials in ``Q_1 ... Q_order``."""
    qs = sp.symbols(f"Q_1:{order + 1}", real=True)
    w = sp.Integer(1)
    for _ in range(order):  # fixed point w = 1/(1 + x), x = sum_k h^k Q_k w^k: one order a pass
        x = _truncate(sum(h**k * qs[k - 1] * w**k for k in range(1, order + 1)), order)
        w, power = sp.Integer(1), sp.Integer(1)
        for _ in range(order):
            power = _truncate(-power * x, order)
            w += power
    return [sp.expand(w).coeff(h, k) for k in range(order + 1)]


def derive_mean_field_inverse_top_eigenvalue(order: int = 4) -> list[sp.Expr]:
    """``w_k`` with the Marchenko-Pastur moments ``Q_k = Cat_k q^k`` (``q = e2``) substituted:
    ``[1, -q, 0, ..., 0]``, i.e. ``1/lambda = 1 - e2`` in the mean field, order by order."""
    qs = sp.symbols(f"Q_1:{order + 1}", real=True)
    q = sp.symbols("q", positive=True)
    mp = {qs[k - 1]: sp.catalan(k) * q**k for k in range(1, order + 1)}
    return [sp.expand(wk.subs(mp)) for wk in derive_inverse_top_eigenvalue(order)]


def derive_stable_rank_second_order() -> sp.Expr:
    """``E sr(A)`` to second order in ``1/T`` in terms of ``T``, ``e2 = E|u|^2``, ``e4 = E|u|^4``.

    ``sr = (1 + F_perp)(w_0 + w_1 + w_2)``; the expectations of the monomials come from pairing
    independent rows (``E u_ij = 0``, exchangeable entries, row covariance ``C`` with ``C 1 = 0``,
    ``||C||_F^2 = e2^2/(T - 1)``): ``E F = T e2``, ``E Q1 = e2``,
    ``E[F Q1] = T e2^2 + e4 - e2^2``, ``E Q1^2 = e4/T + (1 + 1/T) e2^2``, ``E Q2 = e4 + e2^2``;
    ``E[F Q1^2]`` and ``E[F Q2]`` are factorised (their covariances are ``O(T^-4)``). The
    mean-field cancellation of ``w_2, w_3, ...`` is ``derive_mean_field_inverse_top_eigenvalue``."""
    w = derive_inverse_top_eigenvalue(2)
    F = sp.symbols("F_perp", positive=True)
    q1, q2 = q1_sym, q2_sym
    e2 = e2_sym
    pairing = derive_pairing_moments()
    moments = {m: v for m, v in pairing.items() if not m.has(F)}
    f_moments = {1: T * e2, q1: pairing[F * q1]}
    f_moments.update({m: T * e2 * v for m, v in moments.items() if m not in f_moments})
    expr = sp.expand((1 + F) * sum(w))
    total = sp.Integer(0)
    for term in expr.as_ordered_terms():
        coeff, rest = term.as_independent(F, q1, q2)
        if rest.has(F):
            total += coeff * f_moments[sp.simplify(rest / F)]
        else:
            total += coeff * (1 if rest == 1 else moments[rest])
    return sp.simplify(total)


def derive_stable_rank_third_order_terms() -> sp.Expr:
    """The ``O(T^-3)`` part of ``derive_stable_rank_second_order``: it minus ``(1 + b)(1 - e2)``
    with ``b = T e2``; equals ``-(2 + b) v + 2 (1 + b)(e4 + e2^2)/T``, ``v = e4 - e2^2``."""
    e2, e4 = e2_sym, e4_sym
    rest = sp.simplify(derive_stable_rank_second_order() - (1 + T * e2) * (1 - e2))
    b, v = T * e2, e4 - e2**2
    assert sp.simplify(rest - (-(2 + b) * v + 2 * (1 + b) * (e4 + e2**2) / T)) == 0
    return rest


def derive_perp_stable_rank_ratio() -> sp.Expr:
    """``lim_T sr(A_perp)/T`` from the quarter-circle law on ``[0, 2r]``.

    ``sr(A_perp)/T = (second moment of the law of sqrt(T) sigma) / (edge 2r)^2``. With
    ``sigma = 2 r sin(theta)`` the density ``sqrt(4 r^2 - x^2)/(pi r^2) dx`` becomes
    ``(4/pi) cos(theta)^2 d theta`` on ``[0, pi/2]``."""
    theta = sp.symbols("theta", positive=True)
    density = 4 / sp.pi * sp.cos(theta) ** 2
    assert sp.simplify(sp.integrate(density, (theta, 0, sp.pi / 2)) - 1) == 0
    second_moment = sp.integrate((2 * r * sp.sin(theta)) ** 2 * density, (theta, 0, sp.pi / 2))
    return sp.simplify(second_moment / (2 * r) ** 2)


def generated_functions() -> list[tuple[str, sp.Expr, tuple[sp.Symbol, ...]]]:
    """The closed forms printed into ``theory/_generated/gap.py``: (name, expr, args)."""
    return [
        ("stable_rank_limit", derive_stable_rank_limit(), (s,)),
        ("frobenius_first_order", derive_frobenius_first_order(), (s, T)),
        ("stable_rank_first_order", derive_stable_rank_first_order(), (s, T)),
        ("perp_stable_rank_ratio_limit", derive_perp_stable_rank_ratio(), ()),
    ]


# ----------------------------------------------------------------------------- exact finite T

def markov_frobenius2(T: int, markov_s: float) -> float:
    """Exact ``E ||A||_F^2 = T E[Y2]`` for a ``T x T`` random-Markov matrix.

    ``Y2 = sum_j e_j^2/(sum_j e_j)^2`` does not change when every ``e_j`` is multiplied by
    ``e^{s^2/2}``, so a row of ``rowsoftmax(G)`` is a softmax row of ``T`` i.i.d. ``N(0, s^2)``
    scores, whose ``E[Y2]`` is the REM-F Laplace integral of ``theory.rem.row_statistics``."""
    from theory.rem import row_statistics

    if T < 2:
        raise ValueError(f"T={T!r} must be >= 2")
    return T * row_statistics(int(T), float(markov_s)).ipr


def centred_row_moments(T: int, markov_s: float) -> tuple[float, float]:
    """Exact ``(e2, e4) = (E |u|^2, E |u|^4)`` of one centred row ``u = a - 1/T`` of a ``T x T``
    random-Markov matrix (``|u|^2 = Y2 - 1/T``), from the REM-F integrals of ``E Y2`` and
    ``E Y2^2``; ``T e2 = b_T``."""
    from theory.rem import row_statistics

    if T < 2:
        raise ValueError(f"T={T!r} must be >= 2")
    st = row_statistics(int(T), float(markov_s))
    return st.ipr - 1.0 / T, st.ipr_second_moment - 2.0 * st.ipr / T + 1.0 / T**2


def _broadcast(fn, T, markov_s):
    Ts, ss = np.broadcast_arrays(np.asarray(T), np.asarray(markov_s, dtype=float))
    out = np.empty(Ts.shape)
    for idx in np.ndindex(Ts.shape):
        out[idx] = fn(int(Ts[idx]), float(ss[idx]))
    return out if out.ndim else float(out)


def _second_order_parts(T: int, markov_s: float) -> tuple[float, float]:
    """``((1 + b)(1 - e2), O(T^-3) terms)`` of the second-order ``E sr(A)`` (module item 6)."""
    e2, e4 = centred_row_moments(T, markov_s)
    b, v = T * e2, e4 - e2 * e2
    return (1.0 + b) * (1.0 - e2), -(2.0 + b) * v + 2.0 * (1.0 + b) * (e4 + e2 * e2) / T


def stable_rank_finite(T: int | np.ndarray, markov_s: float | np.ndarray) -> float | np.ndarray:
    """``E sr(A)`` at finite ``T`` to second order (module item 6):
    ``(1 + b)(1 - e2) - (2 + b) v + 2 (1 + b)(e4 + e2^2)/T`` with ``e2 = b/T``, ``e4`` exact;
    neglected terms are ``O(T^-3)`` (``stable_rank_bias_budget``)."""
    return _broadcast(lambda t, s_: sum(_second_order_parts(t, s_)), T, markov_s)


def stable_rank_finite_first(T: int | np.ndarray,
                             markov_s: float | np.ndarray) -> float | np.ndarray:
    """The first-order finite-``T`` formula ``F/(1 + (F - 1)/T)``, ``F = E||A||_F^2`` exact.
    Its error is ``-(1 + b) e2^2/(1 + e2) + O(T^-3)`` (module item 6); kept as a reference."""
    def one(t: int, s_: float) -> float:
        f = markov_frobenius2(t, s_)
        return f / (1.0 + (f - 1.0) / t)

    return _broadcast(one, T, markov_s)


def stable_rank_first_bias_budget(T: int, markov_s: float) -> float:
    """``O(T^-2)`` budget of ``stable_rank_finite_first``: ``sr_first e2^2``, which is exactly
    the size ``(1 + b) e2^2/(1 + e2)`` of its known second-order error (module item 6)."""
    e2 = centred_row_moments(int(T), float(markov_s))[0]
    return float(stable_rank_finite_first(T, markov_s)) * e2 * e2


def stable_rank_bias_budget(T: int, markov_s: float) -> float:
    """Size estimate (not a bound) of the neglected ``O(T^-3)`` remainder of
    ``stable_rank_finite``: the magnitude of the ``O(T^-3)`` terms it does contain,
    ``|-(2 + b) v + 2 (1 + b)(e4 + e2^2)/T|``. The neglected terms have the same origin
    (row-norm fluctuations and ``1/T`` parts of pairings; their mean-field part cancels
    exactly). A NumPy Monte Carlo at ``T = 16 ... 128``, ``s = 1, 1.25, 1.5`` measured them at
    0.25 to 0.55 of this size for ``s >= 1.25``, ``T <= 64``, and down to 0.05 at ``s = 1``,
    ``T = 128`` (``tests/test_gap_width.py`` checks ``T = 16, 32``)."""
    return abs(_second_order_parts(int(T), float(markov_s))[1])


def _generated():
    """The printed evaluators (imported lazily: ``theory.derive`` rewrites them from here)."""
    from theory._generated import gap

    return gap


register(Prediction(
    "gap3_stable_rank_limit", "GAP-3",
    "large-T stable rank of random-Markov attention, sr(A) -> 1 + sigma^2/m^2",
    ("markov_s",), "T -> infinity; i.i.d. lognormal entries",
    lambda markov_s: _generated().stable_rank_limit(markov_s), derive_stable_rank_limit()))
register(Prediction(
    "gap3_stable_rank_first_order", "GAP-3",
    "stable rank of random-Markov attention to first order in 1/T (delta method)",
    ("markov_s", "T"), "first order in 1/T; needs T >> e^{3 s^2} (lognormal moments finite)",
    lambda markov_s, T: _generated().stable_rank_first_order(markov_s, T),
    derive_stable_rank_first_order()))
register(Prediction(
    "gap3_stable_rank_finite", "GAP-3",
    "stable rank of random-Markov attention at finite T to second order: (1 + b)(1 - e2) "
    "- (2 + b) v + 2 (1 + b)(e4 + e2^2)/T, e2 = E|u|^2 = b/T, e4 = E|u|^4, v = e4 - e2^2 "
    "(u a centred row) by exact quadrature",
    ("markov_s", "T"), "error O(T^-3) (budget: size of the O(T^-3) terms kept)",
    lambda markov_s, T: stable_rank_finite(T, markov_s),
    derive_stable_rank_second_order()))
register(Prediction(
    "gap3_stable_rank_finite_first", "GAP-3",
    "stable rank of random-Markov attention at finite T to first order: F/(1 + (F-1)/T), "
    "F = E||A||_F^2 by exact quadrature",
    ("markov_s", "T"), "error -(1 + b) e2^2/(1 + e2) + O(T^-3)",
    lambda markov_s, T: stable_rank_finite_first(T, markov_s),
    derive_stable_rank_finite(sp.Function("F")(T, s))))
register(Prediction(
    "gap3_perp_ratio_limit", "GAP-3",
    "large-T stable rank of the gap-removed matrix over T, sr(A_perp)/T -> 1/4",
    (), "T -> infinity; quarter-circle singular-value law of sqrt(T) A_perp",
    lambda: _generated().perp_stable_rank_ratio_limit(), derive_perp_stable_rank_ratio()))
