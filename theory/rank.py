"""Rank and symmetry (Cirrincione, arXiv 2604.23681): claims RS-1, RS-2, RS-3.

Rows are tokens: ``X`` is ``T x d``. ``P = I - 1 1^T/d`` centres each token; LayerNorm without
affine parameters is ``LN(X) = D^+ X P`` with ``D = diag(|P x_t|/sqrt d)`` (a zero-variance token
``x_t = c 1`` has ``P x_t = 0`` and maps to 0). The *affine rank* of a token set is the
dimension of its affine hull, ``rank(X - 1 xbar^T) = rank [X, 1_T] - 1``.

RS-1 (exact identities; ``[.]`` is 1 when the statement holds):

1. ``rank LN(X) = rank X - [1 in rowspace X]`` for every ``X``, zero-variance rows included
   (``rowspace(X P) = P rowspace(X)`` and ``ker P = span 1``).
2. ``aff LN(X) = rank [X P, s] - 1`` with ``s_t = |P x_t|`` (scale each row of ``[LN X, 1]``).
3. Generic ``X`` (Lebesgue-almost every; ``d >= 3``): ``rank X = min(T, d)``,
   ``rank LN X = min(T, d - 1)``, ``aff X = min(T - 1, d)``, ``aff LN X = min(T - 1, d - 1)``.
   Matrix rank drops iff ``T >= d``, affine rank iff ``T >= d + 1``. Degenerate inputs change
   the counts: ``K`` distinct tokens (repeats) act like ``T = K``; tokens that are positive
   multiples of each other share one LayerNorm image (``{c, 2c, z}``: affine rank 2 -> 1).

RS-2 (attention-only stacks, one head, ``F = W_V^T``; near consensus softmax attention is uniform
to first order, so deviations from the token mean pass unchanged while the mean is multiplied by
``I + W_V``): the per-layer log-contraction of ``mu(X)`` (``consensus_distance``) is, to first
order in ``1/d``, with ``v = sigma_v2``,

- L2 normaliser: ``E log rho = -log(1 + v)/2 + v/(2 d (1 + v)^2)``;
- LayerNorm (post): ``E log rho = -log(1 + v)/2 + v (2 + v)/(2 d (1 + v)^2)``.

For a fixed attention matrix ``A`` the residual map ``vec X' = (I + W^T (x) A) vec X`` is
singular iff ``lambda(A) mu(W) = -1`` for some eigenvalues: a measure-zero set.

RS-3 (one ReLU MLP on tokens ``Z`` whose Krylov span ``K_in`` has dimension ``k``): with
``K = sigma_w2 Z Z^T/d + sigma_b2 1 1^T`` (pre-activation covariance across hidden units), the
energy of the block's output outside ``K_out = K_in + K_in W_1 W_2 + b_1 W_2 + b_2`` is, exactly
in expectation over ``W_1, b_1, W_2`` given ``Z``,

    E |Y (I - Pi_out)|_F^2 = sigma_w2 (d - s)(d_ff - p) tr K / (4 (d_ff + 2)),

``p = k + [sigma_b2 > 0]`` (dimension of ``K_in W_1 + b_1``), ``s = k + p + [sigma_b2 > 0]``
(dimension of ``K_out``). The ``tr K/4`` is the energy of ReLU's even part ``|u|/2`` (the
arc-cosine kernel's diagonal ``K_ii/2`` less the linear part ``K_ii/4``); ``(p + 2)/(d_ff + 2)``
is what the finite hidden layer's ``p``-dimensional linear span absorbs of it (a Beta moment).
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import sympy as sp

from theory.predictions import Prediction, register

v, d, n, p, k = sp.symbols("sigma_v2 d d_ff p k", positive=True)
sw, trK, s_dim = sp.symbols("sigma_w2 trK s", positive=True)
u = sp.symbols("u", real=True)
kappa = sp.symbols("kappa", positive=True)
eps = sp.symbols("epsilon", positive=True)  # eps = 1/d


# ----------------------------------------------------------------------------- RS-2

def derive_consensus_log_rate(norm: str) -> sp.Expr:
    """``E log rho`` per layer, first order in ``1/d`` (``norm`` ``"l2"`` or ``"post"``).

    The mean token ``m = |m| e`` becomes ``|m|(e + g)`` (``P(e + g)`` with LayerNorm),
    ``g = e W_V ~ N(0, v/d I_d)``; a deviation ``delta ⊥ e`` passes unchanged, then the
    normaliser removes its component along the new mean. So ``rho^2 = (1 - c)/|e + g|^2`` with
    ``E c = v/(d(1 + v))`` to first order, and ``E log |e + g|^2 = log M - V/(2 M^2)`` by the
    delta method with the exact mean ``M`` and variance ``V`` of ``|e + g|^2``."""
    s = v * eps  # variance per coordinate of g, eps = 1/d
    if norm == "l2":
        mean = 1 + v
        var = 4 * s + 2 * s**2 + 2 * s**2 * (1 / eps - 1)
    elif norm == "post":
        mean = 1 + v * (1 - eps)
        var = 4 * s + 2 * s**2 + 2 * s**2 * (1 / eps - 2)
    else:
        raise ValueError(f"norm={norm!r} must be 'l2' or 'post'")
    e_log_norm2 = sp.log(mean) - var / (2 * mean**2)
    projection = s / (1 + v)
    log_rho2 = -e_log_norm2 - projection
    first = sp.simplify((sp.series(log_rho2, eps, 0, 2).removeO() / 2).subs(eps, 1 / d))
    lead = -sp.log(1 + v) / 2
    return lead + sp.factor(sp.simplify(first - lead))


def derive_singular_set() -> sp.Expr:
    """The residual layer's map ``I + W^T (x) A`` has eigenvalues ``1 + lambda mu``: singular
    iff ``lambda mu = -1`` (returned as the determinant factor ``1 + lambda mu``)."""
    lam, mu = sp.symbols("lambda mu")
    return 1 + lam * mu


# ----------------------------------------------------------------------------- RS-3

def derive_relu_even_energy() -> dict[str, sp.Expr]:
    """For ``u ~ N(0, kappa)``: ``E ReLU(u)^2`` (arc-cosine kernel diagonal), the linear
    coefficient ``E[ReLU(u) u]/kappa`` and the even (out-of-span) energy
    ``E ReLU(u)^2 - c^2 kappa``."""
    density = sp.exp(-u**2 / (2 * kappa)) / sp.sqrt(2 * sp.pi * kappa)
    second = sp.simplify(sp.integrate(u**2 * density, (u, 0, sp.oo)))
    cross = sp.simplify(sp.integrate(u**2 * density, (u, 0, sp.oo)))  # ReLU(u) u = u^2 on u > 0
    coeff = sp.simplify(cross / kappa)
    return {"second_moment": second, "linear_coefficient": coeff,
            "even_energy": sp.simplify(second - coeff**2 * kappa)}


def derive_leverage_moment() -> sp.Expr:
    """``E[|xi|^2 lev]`` for ``n`` i.i.d. ``N(0, I_p)`` columns, ``lev = xi^T (M M^T)^{-1} xi``:
    ``lev = B ~ Beta(p/2, (n - p)/2)`` and ``|xi|^2 = B S`` with ``S ~ chi^2_n`` independent, so
    it is ``n E[B^2]``."""
    a, b = p / 2, (n - p) / 2
    return sp.simplify(n * a * (a + 1) / ((a + b) * (a + b + 1)))


def derive_out_of_span_energy() -> sp.Expr:
    """``E |Y (I - Pi_out)|_F^2`` given ``Z`` (module docstring), from the even energy and the
    leverage moment: ``(n tr K/4)(1 - lev/p) * sigma_w2 (d - s)/n``."""
    even = derive_relu_even_energy()["even_energy"].subs(kappa, trK)
    hidden = n * even * (1 - derive_leverage_moment() / p)
    expr = sp.factor(sp.simplify(sw * (d - s_dim) / n * hidden))
    # print with the positive factors (d - s) and (d_ff - p)
    return sp.Mul(sw * trK / (4 * (n + 2)), d - s_dim, n - p, evaluate=False) \
        if sp.simplify(expr - sw * trK * (d - s_dim) * (n - p) / (4 * (n + 2))) == 0 else expr


def generated_functions() -> list[tuple[str, sp.Expr, tuple[sp.Symbol, ...]]]:
    """The closed forms printed into ``theory/_generated/rank.py``: (name, expr, args)."""
    return [
        ("consensus_log_rate_l2", derive_consensus_log_rate("l2"), (v, d)),
        ("consensus_log_rate_post", derive_consensus_log_rate("post"), (v, d)),
        ("out_of_span_energy", derive_out_of_span_energy(), (sw, d, n, p, s_dim, trK)),
    ]


def _generated():
    from theory._generated import rank

    return rank


def consensus_rate(sigma_v2: float, d: int, norm: str) -> float:
    """Per-layer contraction ``exp(E log rho)`` of ``consensus_distance`` (first order in 1/d)."""
    g = _generated()
    f = {"l2": g.consensus_log_rate_l2, "post": g.consensus_log_rate_post}[norm]
    return float(math.exp(f(sigma_v2, d)))


def consensus_rate_bias(sigma_v2: float, d: int, norm: str) -> float:
    """Budget for the neglected ``O(d^-2)`` terms of ``consensus_rate``: the rate times the
    square of its ``1/d`` correction (in the log)."""
    lead = -0.5 * math.log1p(sigma_v2)
    g = _generated()
    f = {"l2": g.consensus_log_rate_l2, "post": g.consensus_log_rate_post}[norm]
    first = float(f(sigma_v2, d)) - lead
    return consensus_rate(sigma_v2, d, norm) * first * first


def span_dimensions(k_in: int, d: int, d_ff: int, bias: bool) -> tuple[int, int]:
    """``(p, s)``: dimensions of ``K_in W_1 + b_1`` and of ``K_out`` for a generic block."""
    p_dim = min(k_in + int(bias), d_ff)
    return p_dim, min(k_in + p_dim + int(bias), d)


def out_of_span_energy(sigma_w2: float, d: int, d_ff: int, k_in: int, sigma_b2: float,
                       trace_k: float) -> float:
    """Predicted ``E |Y (I - Pi_out)|_F^2`` of one ReLU MLP block (module docstring)."""
    p_dim, s = span_dimensions(k_in, d, d_ff, sigma_b2 > 0)
    return float(_generated().out_of_span_energy(sigma_w2, d, d_ff, p_dim, s, trace_k))


# ----------------------------------------------------------------------------- RS-1

def generic_ranks(distinct: int, d: int) -> dict[str, int]:
    """Ranks of ``distinct`` generic tokens in ``R^d`` and of their LayerNorm images
    (``d >= 3``: for ``d = 2`` every LayerNorm image is one of two antipodal points)."""
    if d < 3:
        raise ValueError(f"d={d!r}: generic LayerNorm images need d >= 3")
    return {"rank": min(distinct, d), "rank_ln": min(distinct, d - 1),
            "aff": min(distinct - 1, d), "aff_ln": min(distinct - 1, d - 1)}


def _stirling2(m: int, j: int) -> int:
    """Stirling number of the second kind ``S(m, j)``."""
    total = sum((-1) ** i * math.comb(j, i) * (j - i) ** m for i in range(j + 1))
    return total // math.factorial(j)


def distinct_count_pmf(T: int, k: int) -> dict[int, Fraction]:
    """``P(K = j)``: ``K`` distinct values among ``T`` uniform draws from ``k`` (occupancy)."""
    return {j: Fraction(math.comb(k, j) * _stirling2(T, j) * math.factorial(j), k**T)
            for j in range(1, min(T, k) + 1)}


def repeated_drop_probability(T: int, k: int, d: int, which: str) -> Fraction:
    """P(LayerNorm lowers the rank (``which="rank"``: ``K >= d``) or the affine rank
    (``"aff"``: ``K >= d + 1``)) for ``T`` tokens drawn with replacement from ``k`` generic
    vectors."""
    threshold = {"rank": d, "aff": d + 1}[which]
    return sum((q for j, q in distinct_count_pmf(T, k).items() if j >= threshold), Fraction(0))


def collinear_ranks(counts: dict[int, tuple[int, int]], d: int) -> dict[str, int]:
    """Generic ranks of tokens ``a_t u_g`` (``counts[g] = (#a > 0, #a < 0)`` on line ``g``,
    generic ``a`` and ``u``) and of their LayerNorm images ``sign(a_t) LN(u_g)``."""
    hit = [c for c in counts.values() if sum(c) > 0]
    J = len(hit)
    pair = any(sum(c) >= 2 for c in hit)  # a line carries two tokens: 0 is in the affine hull
    both = any(c[0] and c[1] for c in hit)  # a line carries both signs after LayerNorm
    return {"rank": min(J, d), "rank_ln": min(J, d - 1),
            "aff": min(J, d) if pair else min(J, d + 1) - 1,
            "aff_ln": min(J, d - 1) if both else min(J, d) - 1}


def collinear_drop_probability(T: int, k: int, d: int, which: str) -> Fraction:
    """P(LayerNorm lowers ``which`` (``"rank"`` or ``"aff"``)) when each of ``T`` tokens is a
    Gaussian multiple ``a_t u_g`` of one of ``k`` generic directions, ``g`` uniform, by
    enumerating the ``(2k)^T`` equally likely (line, sign) assignments."""
    total, hits = 0, 0
    for cells in itertools.product(range(2 * k), repeat=T):
        counts = {g: (cells.count(2 * g), cells.count(2 * g + 1)) for g in range(k)}
        r = collinear_ranks(counts, d)
        total += 1
        hits += r[which] > r[f"{which}_ln"]
    return Fraction(hits, total)


register(Prediction(
    "rs2_consensus_rate_post", "RS-2",
    "per-layer contraction of consensus_distance, post-LN attention-only residual stack",
    ("sigma_v2", "d"), "near consensus (softmax uniform to first order); first order in 1/d",
    lambda sigma_v2, d: consensus_rate(sigma_v2, d, "post"),
    derive_consensus_log_rate("post")))
register(Prediction(
    "rs2_consensus_rate_l2", "RS-2",
    "per-layer contraction of consensus_distance, L2-normalised attention-only residual stack",
    ("sigma_v2", "d"), "near consensus (softmax uniform to first order); first order in 1/d",
    lambda sigma_v2, d: consensus_rate(sigma_v2, d, "l2"), derive_consensus_log_rate("l2")))
register(Prediction(
    "rs3_out_of_span_energy", "RS-3",
    "energy of one ReLU MLP block's output outside the Krylov span of its input",
    ("sigma_w2", "d", "d_ff", "k_in", "sigma_b2", "trace_k"),
    "exact expectation over W_1, b_1, W_2 given the input; generic spans (s <= d, p <= d_ff)",
    lambda sigma_w2, d, d_ff, k_in, sigma_b2, trace_k: out_of_span_energy(
        sigma_w2, d, d_ff, k_in, sigma_b2, trace_k),
    derive_out_of_span_energy()))
register(Prediction(
    "rs1_repeated_rank_drop", "RS-1",
    "probability that LayerNorm lowers the rank of T tokens drawn from k generic vectors",
    ("T", "k", "d"), "generic vectors; exact occupancy probability",
    lambda T, k, d: float(repeated_drop_probability(int(T), int(k), int(d), "rank"))))
register(Prediction(
    "rs1_collinear_aff_drop", "RS-1",
    "probability that LayerNorm lowers the affine rank of T Gaussian multiples of k directions",
    ("T", "k", "d"), "generic directions and multiples; exact enumeration",
    lambda T, k, d: float(collinear_drop_probability(int(T), int(k), int(d), "aff"))))
