"""Mind the gap in depth (GAP-5 .. GAP-8): mean/bulk energy recursion of attention-only stacks.

Stack ``X_l = alpha X_{l-1} + A_l X_{l-1} W_l`` (``alpha = alpha_attn``; ``alpha = 0`` is the
paper's plain stack), ``X`` is ``T x d`` (rows are tokens), ``W_l`` is ``d x d`` with i.i.d.
``N(0, sigma_v2/d)`` entries, ``A_l`` input-independent random-Markov attention (``A 1 = 1``,
i.i.d. rows with exchangeable entries), everything independent across layers.

Split ``X = 1 xbar^T + X_perp`` (``1^T X_perp = 0``) and ``A = 1 1^T/T + A_perp``
(``A_perp 1 = 0``), ``c = A_perp^T 1``. Then ``A X = 1 (xbar + X_perp^T c/T)^T + P A_perp X_perp``
with ``P = I - 1 1^T/T``. The mean energy is ``E_m = T |xbar|^2`` and the bulk energy
``E_b = ||X_perp||_F^2`` (so ``||X||_F^2 = E_m + E_b``). Row exchangeability gives, with
``b = E ||A_perp||_F^2 = E ||A||_F^2 - 1`` (``theory.gap.markov_frobenius2 - 1``, exact):

- ``E[c c^T] = E[A_perp^T A_perp] = b/(T-1) P``, ``E[A_perp^T P A_perp] = (b/T) P``, ``E c = 0``.

Because ``W`` has mean zero and acts on the right (``E ||M W||_F^2 = sigma_v2 ||M||_F^2``), the
expected energies obey an exact *linear* recursion ``(E_m, E_b)_l = K (E_m, E_b)_{l-1}``:

    K = alpha^2 I + sigma_v2 [[mu, kappa b/(T(T-1))], [0, kappa b/T]]

with ``(mu, kappa) = (1, 1)`` for ``gap="keep"``, ``(0, 1)`` for ``gap="remove"`` (``A_perp``)
and ``((1 - lambda)^2, 1 + lambda^2)`` for ``gap="differential"`` (``D = A_1 - lambda A_2``, two
independent draws: ``D 1 = (1-lambda) 1``, ``D_perp = A1_perp - lambda A2_perp``).

Isometric input (``X_0 X_0^T = d I``): ``E_m = d``, ``E_b = d (T - 1)``.

LayerNorm (``norm="post"``, ``alpha = 0``) is *approximated* as a per-sample global rescaling
(token norms equal): its feature centring multiplies both energies by ``(d-1)/d`` in expectation,
so the bulk fraction follows the ``norm="none"`` recursion; the per-token normalisation is the
approximation.

Gradients (GAP-6): ``X_L = A_L ... A_1 X_0 W_1 ... W_L``, ``||dX_L/dW_l||_F^2 =
||M_l||_F^2 ||N_l||_F^2`` with ``M_l = A_L ... A_1 X_0 W_1 ... W_{l-1}`` and
``N_l = W_{l+1} ... W_L`` independent, so ``E ||J_l||_F^2 = d sigma_v2^{L-1} E_L`` where
``E_L`` is the total energy of ``A_L ... A_1 X_0`` (the recursion with ``sigma_v2 = 1``,
``alpha = 0``): the same for every layer ``l``.

Rank (GAP-5): with ``rho = E_b/E_m`` of one sample, ``sr(X X^T) - 1 <= ||X_perp||_2^2 E_b/E_m^2
<= rho^2`` (Weyl: ``sigma_2(X) <= sigma_1(X_perp)``; ``lambda_1 >= E_m``); a bulk fraction of
order one spread over ``sr(X_perp) ~ T`` directions still gives ``sr(X X^T) = 1 + O(1/T)``.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import sympy as sp

from theory.predictions import Prediction, register

T, d, b, v, alpha, lam, r = sp.symbols("T d b sigma_v2 alpha_attn diff_lambda r", positive=True)
L = sp.symbols("L", positive=True, integer=True)
E_m, E_b = sp.symbols("E_m E_b", nonnegative=True)

GAPS = ("keep", "remove", "differential")


def attention_factors(gap: str) -> tuple[sp.Expr, sp.Expr]:
    """``(mu, kappa)``: the attention's mean factor and bulk multiplier (module docstring)."""
    if gap == "keep":
        return sp.Integer(1), sp.Integer(1)
    if gap == "remove":
        return sp.Integer(0), sp.Integer(1)
    if gap == "differential":
        return (1 - lam) ** 2, 1 + lam**2
    raise ValueError(f"gap={gap!r} is not allowed; choose one of {', '.join(GAPS)}")


def derive_covariances() -> dict[str, sp.Expr]:
    """``E[c c^T]``, ``E[A_perp^T A_perp]`` and ``E[A_perp^T P A_perp]`` as multiples of ``P``.

    A zero-sum exchangeable vector ``a`` has ``E[a a^T] = x I + y 1 1^T`` with ``x + y T = 0``
    (``E[a a^T] 1 = 0``) and trace ``E|a|^2``, so ``E[a a^T] = E|a|^2/(T-1) P``. Rows of
    ``A_perp`` (``E|a|^2 = b/T`` each, ``T`` i.i.d. rows) and ``c`` (``E|c|^2 = b``: the column
    sums of ``A_perp`` add ``T`` independent centred entries) are such vectors; and
    ``A_perp^T P A_perp = A_perp^T A_perp - c c^T/T``."""
    x, y = sp.symbols("x y")
    norm2 = sp.Symbol("n2", positive=True)
    sol = sp.solve([x + y * T, T * x + T * y - norm2], [x, y], dict=True)[0]  # trace of x I+y11^T
    coeff_of_p = sp.simplify(sol[x])  # x I + y 1 1^T = x P  since y = -x/T
    assert sp.simplify(sol[y] + coeff_of_p / T) == 0
    rows = T * coeff_of_p.subs(norm2, b / T)
    ccT = coeff_of_p.subs(norm2, b)
    return {"ccT": sp.simplify(ccT), "AtA": sp.simplify(rows),
            "AtPA": sp.simplify(rows - ccT / T)}


@cache
def derive_transfer_matrix(gap: str) -> sp.Matrix:
    """``K``: expected ``(E_m, E_b)`` after a layer, ``K (E_m, E_b)`` (module docstring).

    Mean: ``T |xbar + X_perp^T c/T|^2`` has expectation ``mu E_m + kappa tr(X_perp^T E[cc^T]
    X_perp)/T``; bulk: ``tr(X_perp^T E[D_perp^T P D_perp] X_perp)``; the skip adds
    ``alpha^2`` (cross terms are linear in ``W`` and vanish)."""
    mu, kappa = attention_factors(gap)
    cov = derive_covariances()
    leak = kappa * cov["ccT"] / T
    bulk = kappa * cov["AtPA"]
    return alpha**2 * sp.eye(2) + v * sp.Matrix([[mu, leak], [0, bulk]])


@cache
def derive_energies(gap: str) -> tuple[sp.Expr, sp.Expr]:
    """``(E_m, E_b)`` after ``L`` layers from ``(E_m, E_b)`` at the input (closed form of
    ``K^L``, upper triangular; checked against ``K`` applied once more)."""
    K = derive_transfer_matrix(gap)
    km, kb, leak = K[0, 0], K[1, 1], K[0, 1]
    bulk = kb**L * E_b
    mean = km**L * E_m + leak * E_b * (km**L - kb**L) / (km - kb)
    step = K * sp.Matrix([mean, bulk])
    nxt = sp.Matrix([mean, bulk]).subs(L, L + 1)
    assert sp.simplify(sp.expand_power_base(sp.powsimp(step[0] - nxt[0], force=True),
                                            force=True)) == 0
    assert sp.simplify(step[1] - nxt[1]) == 0
    return mean, bulk


def derive_bulk_ratio_per_layer(gap: str) -> sp.Expr:
    """Deep-stack factor by which ``E_b/E_m`` shrinks per layer: ``K_bb / K_mm``."""
    K = derive_transfer_matrix(gap)
    return sp.simplify(K[1, 1] / K[0, 0])


@cache
def derive_gradient_slope(gap: str, width_power: int, value_power: int) -> sp.Expr:
    """Large-``T`` slope of ``log E ||J_l||_F^2`` in ``log T`` with ``d ~ T^width_power``,
    ``sigma_v2 ~ T^value_power`` and ``b`` fixed (``b -> r^2``), as a function of ``L``.

    ``E ||J||^2 = d sigma_v2^{L-1} E_L(sigma_v2 = 1, alpha = 0)``; on isometric input ``E_L`` is
    ``d (1 + O(1/T))`` with the gap kept and ``d T (b/T)^L`` with it removed. The slope is
    computed by ``sympy.limit`` at ``L = 1 .. 6`` and returned as the linear law in ``L`` those
    values fit (asserted)."""
    mean, bulk = derive_energies(gap)
    total = (mean + bulk).subs({alpha: 0, v: 1, E_m: d, E_b: d * (T - 1)})
    grad = (d * v ** (L - 1) * total).subs({d: T**width_power, v: T**value_power, b: r**2})
    if gap == "differential":
        grad = grad.subs(lam, sp.Rational(1, 2))
    slopes = [sp.limit(T * sp.diff(sp.log(sp.simplify(grad.subs(L, k))), T), T, sp.oo)
              for k in range(1, 7)]
    law = slopes[0] + (slopes[1] - slopes[0]) * (L - 1)
    assert all(sp.simplify(law.subs(L, k) - s_k) == 0 for k, s_k in enumerate(slopes, 1))
    return sp.expand(law)


def generated_functions() -> list[tuple[str, sp.Expr, tuple[sp.Symbol, ...]]]:
    """The closed forms printed into ``theory/_generated/gap_depth.py``: (name, expr, args)."""
    out: list[tuple[str, sp.Expr, tuple[sp.Symbol, ...]]] = []
    for gap in GAPS:
        K = derive_transfer_matrix(gap)
        args = (T, b, v, alpha) + ((lam,) if gap == "differential" else ())
        out.append((f"mean_factor_{gap}", K[0, 0], args))
        out.append((f"leak_factor_{gap}", K[0, 1], args))
        out.append((f"bulk_factor_{gap}", K[1, 1], args))
    for gap, width_power, value_power in SLOPE_CASES:
        out.append((_slope_name(gap, width_power, value_power),
                    derive_gradient_slope(gap, width_power, value_power), (L,)))
    return out


#: (gap, width_power, value_power): d ~ T^width_power, sigma_v2 ~ T^value_power. ``(1, 1)`` is
#: the paper's setting (d = T/gamma, W_V entries of variance 1), ``(1, 0)`` variance 1/d,
#: ``(0, 0)`` fixed d.
SLOPE_CASES = tuple((g, w, p) for g in ("keep", "remove") for w, p in ((1, 1), (1, 0), (0, 0)))


def _slope_name(gap: str, width_power: int, value_power: int) -> str:
    return f"gradient_slope_{gap}_w{width_power}_v{value_power}"


def gradient_slope_limit(depth: int, width_power: int, value_power: int,
                         gap: str = "keep") -> float:
    """Large-``T`` slope of ``log E ||J||^2`` in ``log T`` (printed closed forms)."""
    if (gap, width_power, value_power) not in SLOPE_CASES:
        raise ValueError(f"(gap, width_power, value_power)={(gap, width_power, value_power)!r} "
                         f"must be one of {SLOPE_CASES}")
    return float(getattr(_generated(), _slope_name(gap, width_power, value_power))(depth))


# ----------------------------------------------------------------------------- numbers


def _generated():
    from theory._generated import gap_depth

    return gap_depth


def transfer_matrix(T: int, b: float, sigma_v2: float, alpha_attn: float = 0.0,
                    gap: str = "keep", diff_lambda: float = 0.5) -> np.ndarray:
    """``K`` (2 x 2, float) for ``b = E ||A_perp||_F^2`` (printed closed forms)."""
    g = _generated()
    extra = (diff_lambda,) if gap == "differential" else ()
    if gap not in GAPS:
        raise ValueError(f"gap={gap!r} is not allowed; choose one of {', '.join(GAPS)}")
    args = (T, b, sigma_v2, alpha_attn) + extra
    return np.array([[getattr(g, f"mean_factor_{gap}")(*args),
                      getattr(g, f"leak_factor_{gap}")(*args)],
                     [0.0, getattr(g, f"bulk_factor_{gap}")(*args)]], dtype=float)


def markov_bulk(T: int, markov_s: float) -> float:
    """``b = E ||A_perp||_F^2`` of ``T x T`` random-Markov attention (exact quadrature)."""
    from theory.gap import markov_frobenius2

    return markov_frobenius2(int(T), float(markov_s)) - 1.0


def energies(T: int, d: int, depth: int, b: float, sigma_v2: float, alpha_attn: float = 0.0,
             gap: str = "keep", diff_lambda: float = 0.5) -> np.ndarray:
    """Expected ``(E_m, E_b)`` at layers ``0 .. depth`` (``(depth + 1) x 2``) from isometric
    input, by iterating ``K`` (exact in expectation for input-independent attention)."""
    K = transfer_matrix(T, b, sigma_v2, alpha_attn, gap, diff_lambda)
    out = np.empty((depth + 1, 2))
    out[0] = (float(d), float(d) * (T - 1))
    for layer in range(1, depth + 1):
        out[layer] = K @ out[layer - 1]
    return out


def bulk_fraction(T: int, d: int, depth: int, b: float, sigma_v2: float,
                  alpha_attn: float = 0.0, gap: str = "keep",
                  diff_lambda: float = 0.5) -> np.ndarray:
    """``E_b/(E_m + E_b)`` (ratio of expectations) at layers ``0 .. depth``."""
    e = energies(T, d, depth, b, sigma_v2, alpha_attn, gap, diff_lambda)
    return e[:, 1] / e.sum(axis=1)


def jacobian_frobenius2(T: int, d: int, depth: int, b: float, sigma_v2: float,
                        gap: str = "keep", diff_lambda: float = 0.5) -> float:
    """``E ||dX_L/dW_l||_F^2`` (any ``l``, ``L = depth``) of the plain stack on isometric input."""
    total = energies(T, d, depth, b, 1.0, 0.0, gap, diff_lambda)[-1].sum()
    return float(d * sigma_v2 ** (depth - 1) * total)


def key_query_perp_energy_ratio(T: int, d_k: int, beta: float, sigma_v2: float) -> float:
    """``E ||A_perp X W_V||_F^2 / ||X||_F^2`` of one gap-removed key-query layer on isometric
    input (``X X^T = d I``): ``||A_perp X||_F^2 = d ||A_perp||_F^2 = d (||A||_F^2 - 1)`` exactly,
    so the ratio is ``sigma_v2 (E ipr - 1/T)`` with ``E ipr`` of a key-query row at finite
    ``(T, d_k)`` (``theory.rem_key_query``, score std ``beta sqrt(ln T)``)."""
    from theory import rem, rem_key_query

    row = rem_key_query.key_query_row_statistics(int(T), d_k, rem.score_std(int(T), beta),
                                                 tol=1e-7)
    return float(sigma_v2 * (row.ipr - 1.0 / T))


def differential_frobenius2(T: int, markov_s: float, diff_lambda: float) -> float:
    """``E ||A_1 - lambda A_2||_F^2 = (1 - lambda)^2 + (1 + lambda^2) b`` (the cross term
    ``tr(D_perp^T 1 1^T)/T`` vanishes since ``D_perp 1 = 0``)."""
    return float((1 - diff_lambda) ** 2 + (1 + diff_lambda**2) * markov_bulk(T, markov_s))


def stable_rank_gram_bound(bulk_fraction: np.ndarray) -> np.ndarray:
    """Upper bound ``rho^2`` on ``sr(X X^T) - 1`` for one sample with bulk fraction ``f``,
    ``rho = f/(1 - f)`` (module docstring)."""
    f = np.asarray(bulk_fraction, dtype=float)
    return (f / (1.0 - f)) ** 2


def _markov(fn):
    def evaluate(T, d, depth, markov_s, sigma_v2, **kw):
        return fn(int(T), int(d), int(depth), markov_bulk(int(T), markov_s), sigma_v2, **kw)
    return evaluate


register(Prediction(
    "gap5_bulk_fraction", "GAP-5",
    "bulk (non-mean) energy fraction E_b/(E_m+E_b) after `depth` layers of random-Markov "
    "attention, X' = alpha X + A X W_V, isometric input",
    ("T", "d", "depth", "markov_s", "sigma_v2", "alpha_attn"),
    "exact in expectation (ratio of expected energies); norm='none'; LayerNorm approximated",
    lambda T, d, depth, markov_s, sigma_v2, alpha_attn: float(_markov(bulk_fraction)(
        T, d, depth, markov_s, sigma_v2, alpha_attn=alpha_attn)[-1]),
    derive_energies("keep")[1] / sp.Add(*derive_energies("keep"))))
register(Prediction(
    "gap5_frobenius2", "GAP-5",
    "E||X_L||_F^2 after `depth` layers of random-Markov attention (isometric input, norm none)",
    ("T", "d", "depth", "markov_s", "sigma_v2", "alpha_attn"),
    "exact in expectation",
    lambda T, d, depth, markov_s, sigma_v2, alpha_attn: float(_markov(energies)(
        T, d, depth, markov_s, sigma_v2, alpha_attn=alpha_attn)[-1].sum()),
    sp.Add(*derive_energies("keep"))))
register(Prediction(
    "gap6_jacobian_frobenius2", "GAP-6",
    "E||dX_L/dW_V^l||_F^2 (any l) of the plain random-Markov stack, gap kept",
    ("T", "d", "depth", "markov_s", "sigma_v2"), "exact; isometric input",
    lambda T, d, depth, markov_s, sigma_v2: _markov(jacobian_frobenius2)(
        T, d, depth, markov_s, sigma_v2)))
register(Prediction(
    "gap6_slope_limit", "GAP-6",
    "large-T slope of log E||J||^2 in log T, gap kept, d ~ T^width_power, "
    "sigma_v2 ~ T^value_power",
    ("depth", "width_power", "value_power"), "T -> infinity, b fixed",
    lambda depth, width_power, value_power: gradient_slope_limit(
        depth, width_power, value_power), derive_gradient_slope("keep", 1, 1)))
register(Prediction(
    "gap7_slope_limit", "GAP-7",
    "large-T slope of log E||J||^2 in log T, gap removed, d ~ T^width_power, "
    "sigma_v2 ~ T^value_power",
    ("depth", "width_power", "value_power"), "T -> infinity, b fixed",
    lambda depth, width_power, value_power: gradient_slope_limit(
        depth, width_power, value_power, "remove"), derive_gradient_slope("remove", 1, 1)))
register(Prediction(
    "gap7_jacobian_frobenius2", "GAP-7",
    "E||dX_L/dW_V^l||_F^2 of the plain stack with the gap removed (A_perp)",
    ("T", "d", "depth", "markov_s", "sigma_v2"), "exact; isometric input",
    lambda T, d, depth, markov_s, sigma_v2: _markov(jacobian_frobenius2)(
        T, d, depth, markov_s, sigma_v2, gap="remove")))
register(Prediction(
    "gap7_bulk_fraction", "GAP-7",
    "bulk energy fraction with the gap removed: (T-1)/T at every depth from isometric input",
    ("T", "d", "depth", "markov_s", "sigma_v2", "alpha_attn"), "exact in expectation",
    lambda T, d, depth, markov_s, sigma_v2, alpha_attn: float(_markov(bulk_fraction)(
        T, d, depth, markov_s, sigma_v2, alpha_attn=alpha_attn, gap="remove")[-1]),
    derive_energies("remove")[1] / sp.Add(*derive_energies("remove"))))
register(Prediction(
    "gap7_key_query_energy_ratio", "GAP-7",
    "E||A_perp X W_V||^2/||X||^2 of one gap-removed key-query layer: sigma_v2 (E ipr - 1/T)",
    ("T", "d_k", "beta", "sigma_v2"), "exact for isometric input (X X^T = d I); REM-F E ipr",
    lambda T, d_k, beta, sigma_v2: key_query_perp_energy_ratio(T, d_k, beta, sigma_v2)))
register(Prediction(
    "gap8_frobenius2", "GAP-8",
    "E||A_1 - lambda A_2||_F^2 = (1-lambda)^2 + (1+lambda^2) b",
    ("T", "markov_s", "diff_lambda"), "exact",
    lambda T, markov_s, diff_lambda: differential_frobenius2(T, markov_s, diff_lambda),
    (1 - lam) ** 2 + (1 + lam**2) * b))
register(Prediction(
    "gap8_bulk_fraction", "GAP-8",
    "bulk energy fraction after `depth` layers of differential attention A_1 - lambda A_2",
    ("T", "d", "depth", "markov_s", "sigma_v2", "diff_lambda"), "exact in expectation",
    lambda T, d, depth, markov_s, sigma_v2, diff_lambda: float(_markov(bulk_fraction)(
        T, d, depth, markov_s, sigma_v2, gap="differential", diff_lambda=diff_lambda)[-1]),
    derive_energies("differential")[1] / sp.Add(*derive_energies("differential"))))

