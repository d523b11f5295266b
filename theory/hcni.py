"""Rank and symmetry (Cirrincione): head-channel non-identifiability (RS-4), the position-gated
output projection (RS-5).

Conventions: ``n`` tokens (rows), ``H`` heads of width ``d_k``, model width ``d``. Head ``h``'s
output before the projection is ``H_h = A_h X W_V^h`` (``n x d_k``); the layer's attention output
is ``Y = sum_h H_h W_O^h = H W_O`` with ``W_O^h`` the ``d_k x d`` block of rows ``h d_k ..
(h+1) d_k - 1`` of ``W_O`` (``H d_k x d``) and ``H = [H_1 ... H_H]``.

RS-4, what is and is not identifiable:

1. Parameters. ``Y`` depends on ``(W_V^h, W_O^h)`` only through the products
   ``M_h = W_V^h W_O^h`` (``d x d``, rank ``d_k``), so every ``G_h in GL(d_k)`` acting as
   ``(W_V^h G_h, G_h^{-1} W_O^h)`` leaves ``Y`` unchanged: a gauge of dimension ``H d_k^2`` per
   layer; the set of products has dimension ``H (2 d d_k - d_k^2)`` (rank-``d_k`` ``d x d``
   matrices), i.e. ``2 H d d_k`` parameters minus the gauge.
2. Signals. The map ``(H_1..H_H) -> Y`` is ``H -> H W_O``, token by token: its kernel has
   dimension ``n (H d_k - rank W_O)``, which is 0 for ``d = H d_k`` and invertible ``W_O``
   (``H = Y W_O^{-1}`` exactly). The paper's count ``n (H - 1) d_k`` is the kernel of a head sum
   in one shared ``d_k``-dimensional channel (``W_O^h = B`` for every head): it is what a plain
   sum of heads loses, not what a generic square ``W_O`` loses.
3. Noise. With ``Y + E``, ``E`` i.i.d. ``N(0, eps^2)`` entries, the exact inversion's error on
   head ``h`` is ``E W_O^{-1} P_h`` (``P_h`` the columns of head ``h``), so
   ``E ||H_h_hat - H_h||_F^2 = eps^2 n ||W_O^{-1} P_h||_F^2`` given ``W_O``; the per-entry
   amplification averaged over heads is ``(1/d) sum_i sigma_i(W_O)^{-2}``.
4. ``W_O`` Gaussian ``d x d`` with variance ``1/d``: ``sigma_max -> 2`` and ``t = d sigma_min``
   has the limiting law ``P(t > y) = exp(-y^2/2 - y)`` (Edelman 1988: ``n sigma_min(G)^2`` of an
   ``n x n`` standard Gaussian ``G`` has density ``(1 + sqrt x)/(2 sqrt x) e^{-x/2 - sqrt x}``);
   the condition number ``kappa/d`` has the limiting CDF ``exp(-2/x - 2/x^2)``. Since the law of
   ``t`` has a positive density at 0, ``E sigma_min^{-2} = infinity``: the mean noise
   amplification of exact inversion diverges at every ``d``, the typical one grows like ``d``.

RS-5, PG-OP: ``y_i = sum_h g_ih H_h[i] W_O^h`` with ``g_ih = sigmoid(u_h . p_i)``, ``p_i`` a
positional code of dimension ``d_p``. The gates cost ``H d_p`` parameters against the ``d^2``
of ``W_O``: ``H d_p / d^2`` (``H/d`` for ``d_p = d``). Per token the gate multiplies head ``h``'s
channel by the nonzero scalar ``g_ih``, so the kernel dimension of the signal map is unchanged
(item 2), and the exact inversion's error on head ``h`` becomes ``sum_i |e_i W_O^{-1} P_h|^2 /
g_ih^2``: its conditional mean is the no-gate error times ``(1/n) sum_i g_ih^{-2}``, at equal
noise ``eps``.
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from theory.predictions import Prediction, register

n, H, d, d_k, r, d_p = sp.symbols("n H d d_k r d_p", positive=True, integer=True)
y, x = sp.symbols("y x", positive=True)


# ----------------------------------------------------------------------------- RS-4 counts

def derive_counts() -> dict[str, sp.Expr]:
    """Dimensions per layer: parameters ``2 H d d_k``; gauge ``H d_k^2``; identifiable products
    ``H (2 d d_k - d_k^2)``; signal-map kernel with ``W_O`` of rank ``r`` (``n (H d_k - r)``);
    shared-channel kernel and the paper's count ``n (H - 1) d_k``."""
    params = 2 * H * d * d_k
    gauge = H * d_k**2
    # a rank-d_k d x d matrix: d_k (2 d - d_k) dimensions (Grassmannian pair plus GL(d_k))
    products = H * d_k * (2 * d - d_k)
    assert sp.simplify(params - gauge - products) == 0
    return {"parameters": params, "gauge": gauge, "products": products,
            "kernel_known": n * (H * d_k - r), "kernel_shared": n * (H - 1) * d_k,
            "paper_count": n * (H - 1) * d_k}


# ----------------------------------------------------------------------------- RS-4 W_O

def derive_sigma_min_survival() -> sp.Expr:
    """``P(d sigma_min(W_O) > y)`` in the large-``d`` limit, from Edelman's density of
    ``x = n sigma_min(G)^2`` (``d sigma_min(W_O) = sqrt(x)`` for ``W_O = G/sqrt(d)``)."""
    xs = sp.symbols("x_s", positive=True)
    density = (1 + sp.sqrt(xs)) / (2 * sp.sqrt(xs)) * sp.exp(-xs / 2 - sp.sqrt(xs))
    survival_x = sp.exp(-xs / 2 - sp.sqrt(xs))
    assert sp.simplify(sp.diff(-survival_x, xs) - density) == 0
    assert sp.limit(survival_x, xs, 0) == 1
    return survival_x.subs(xs, y**2)


def derive_sigma_min_median() -> sp.Expr:
    """Median of ``t = d sigma_min(W_O)``: ``y^2/2 + y = ln 2``."""
    sols = sp.solve(sp.Eq(y**2 / 2 + y, sp.log(2)), y)
    return sp.simplify(next(s for s in sols if s.is_positive))


def derive_sigma_min_mean() -> sp.Expr:
    """``E t = int_0^inf P(t > y) dy``."""
    return sp.simplify(sp.integrate(derive_sigma_min_survival(), (y, 0, sp.oo)))


def derive_kappa_median() -> sp.Expr:
    """Median of ``kappa(W_O)/d`` from Edelman's limiting CDF ``exp(-2/x - 2/x^2)``; equal to
    ``2 / median(t)`` since ``sigma_max -> 2``."""
    sols = sp.solve(sp.Eq(2 / x + 2 / x**2, sp.log(2)), x)
    med = sp.simplify(next(s for s in sols if s.is_positive))
    assert sp.simplify(med - 2 / derive_sigma_min_median()) == 0
    return med


# ----------------------------------------------------------------------------- RS-5

def derive_pgop_overhead() -> dict[str, sp.Expr]:
    """Gate parameters over ``W_O`` parameters: ``H d_p / d^2``; with ``d_p = d``: ``H/d``; with
    one bias per gate: ``H (d + 1)/d^2``."""
    general = H * d_p / d**2
    return {"general": general, "code_d": sp.simplify(general.subs(d_p, d)),
            "with_bias": sp.simplify(H * (d + 1) / d**2)}


def generated_functions() -> list[tuple[str, sp.Expr, tuple[sp.Symbol, ...]]]:
    """The closed forms printed into ``theory/_generated/hcni.py``: (name, expr, args)."""
    c = derive_counts()
    o = derive_pgop_overhead()
    return [
        ("gauge_dimension", c["gauge"], (H, d_k)),
        ("product_dimension", c["products"], (H, d, d_k)),
        ("kernel_known", c["kernel_known"], (n, H, d_k, r)),
        ("paper_count", c["paper_count"], (n, H, d_k)),
        ("sigma_min_survival", derive_sigma_min_survival(), (y,)),
        ("sigma_min_median", derive_sigma_min_median(), ()),
        ("kappa_median", derive_kappa_median(), ()),
        ("pgop_overhead", o["code_d"], (H, d)),
        ("pgop_overhead_bias", o["with_bias"], (H, d)),
    ]


def _generated():
    """The printed evaluators (imported lazily: ``theory.derive`` rewrites them from here)."""
    from theory._generated import hcni

    return hcni


# ----------------------------------------------------------------------------- numerics

def sigma_min_mean() -> float:
    """``E d sigma_min(W_O) = sqrt(pi e/2) erfc(1/sqrt 2)`` (the closed form of
    ``derive_sigma_min_mean``; NumPy has no ``erfc``, so it is evaluated here)."""
    return math.sqrt(math.pi * math.e / 2.0) * math.erfc(1.0 / math.sqrt(2.0))


def head_columns(W_O_inverse: np.ndarray, heads: int) -> list[np.ndarray]:
    """The blocks ``W_O^{-1} P_h`` (``d x d_k``) of the columns of ``W_O^{-1}`` per head."""
    dk = W_O_inverse.shape[1] // heads
    return [W_O_inverse[:, h * dk:(h + 1) * dk] for h in range(heads)]


def inversion_error(W_O: np.ndarray, heads: int, n_tokens: int, noise: float) -> np.ndarray:
    """Conditional mean ``E ||H_h_hat - H_h||_F^2 = noise^2 n ||W_O^{-1} P_h||_F^2`` per head
    (``heads``) of the exact inversion ``(Y + E) W_O^{-1}``, ``E`` i.i.d. ``N(0, noise^2)``."""
    inv = np.linalg.inv(W_O)
    return np.array([noise**2 * n_tokens * float(np.sum(b * b))
                     for b in head_columns(inv, heads)])


def amplification(singular_values: np.ndarray) -> float:
    """Per-entry noise amplification of the exact inversion, averaged over heads:
    ``(1/d) sum_i sigma_i^{-2}``."""
    s = np.asarray(singular_values, dtype=float)
    return float(np.mean(1.0 / s**2))


def gate_factor(gates: np.ndarray) -> np.ndarray:
    """``(1/n) sum_i g_ih^{-2}`` per head (``gates`` is ``n x H``): the factor by which PG-OP
    multiplies the conditional inversion error of each head at equal noise."""
    return np.mean(1.0 / np.asarray(gates, dtype=float) ** 2, axis=0)


def pgop_overhead(heads: int, d: int, code_dim: int | None = None) -> float:
    """Gate parameters over ``W_O`` parameters, ``heads * code_dim / d^2`` (``code_dim = d``)."""
    code = d if code_dim is None else code_dim
    return float(heads * code / d**2)


register(Prediction(
    "rs4_gauge_dimension", "RS-4", "per-layer gauge dimension of (W_V^h G, G^-1 W_O^h): H d_k^2",
    ("H", "d_k"), "exact; d_k <= d",
    lambda H, d_k: _generated().gauge_dimension(H, d_k), derive_counts()["gauge"]))
register(Prediction(
    "rs4_kernel_known", "RS-4",
    "dimension of the set of head outputs giving the same Y when W_O (rank r) is known",
    ("n", "H", "d_k", "r"), "exact",
    lambda n, H, d_k, r: _generated().kernel_known(n, H, d_k, r),
    derive_counts()["kernel_known"]))
register(Prediction(
    "rs4_paper_count", "RS-4",
    "the paper's count n (H-1) d_k: kernel of a head sum in one shared d_k channel",
    ("n", "H", "d_k"), "exact for W_O^h equal across heads",
    lambda n, H, d_k: _generated().paper_count(n, H, d_k), derive_counts()["paper_count"]))
register(Prediction(
    "rs4_sigma_min_mean", "RS-4",
    "mean of d sigma_min(W_O), W_O Gaussian d x d with variance 1/d (Edelman limit)",
    (), "d -> infinity",
    lambda: sigma_min_mean(), derive_sigma_min_mean()))
register(Prediction(
    "rs4_sigma_min_median", "RS-4", "median of d sigma_min(W_O) (Edelman limit)",
    (), "d -> infinity", lambda: _generated().sigma_min_median(), derive_sigma_min_median()))
register(Prediction(
    "rs4_kappa_median", "RS-4", "median of kappa(W_O)/d (Edelman limit)",
    (), "d -> infinity", lambda: _generated().kappa_median(), derive_kappa_median()))
register(Prediction(
    "rs5_pgop_overhead", "RS-5", "PG-OP gate parameters over W_O parameters, H d / d^2",
    ("H", "d"), "one gate vector per head, positional code of dimension d",
    lambda H, d: _generated().pgop_overhead(H, d), derive_pgop_overhead()["code_d"]))

