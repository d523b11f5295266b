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


def stable_rank_finite(T: int | np.ndarray, markov_s: float | np.ndarray) -> float | np.ndarray:
    """``E sr(A)`` at finite ``T`` to ``O(T^-2)``: ``F/(1 + (F - 1)/T)``, ``F`` exact."""
    Ts, ss = np.broadcast_arrays(np.asarray(T), np.asarray(markov_s, dtype=float))
    out = np.empty(Ts.shape)
    for idx in np.ndindex(Ts.shape):
        f = markov_frobenius2(int(Ts[idx]), float(ss[idx]))
        out[idx] = f / (1.0 + (f - 1.0) / Ts[idx])
    return out if out.ndim else float(out)


def stable_rank_bias_budget(T: int, markov_s: float) -> float:
    """Size of the neglected ``O(T^-2)`` term of ``stable_rank_finite``: ``sr * (b/T)^2``, the
    square of the first-order correction to ``sigma_1^2``."""
    f = markov_frobenius2(int(T), float(markov_s))
    return float(stable_rank_finite(T, markov_s)) * ((f - 1.0) / T) ** 2


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
    "stable rank of random-Markov attention at finite T: F/(1 + (F-1)/T), F = E||A||_F^2 "
    "by exact quadrature",
    ("markov_s", "T"), "error O(T^-2) from sigma_1(A)^2 = 1 + |c|^2/T",
    lambda markov_s, T: stable_rank_finite(T, markov_s),
    derive_stable_rank_finite(sp.Function("F")(T, s))))
register(Prediction(
    "gap3_perp_ratio_limit", "GAP-3",
    "large-T stable rank of the gap-removed matrix over T, sr(A_perp)/T -> 1/4",
    (), "T -> infinity; quarter-circle singular-value law of sqrt(T) A_perp",
    lambda: _generated().perp_stable_rank_ratio_limit(), derive_perp_stable_rank_ratio()))
