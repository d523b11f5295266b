"""Contribution weights (Cunningham and Muca Cirone): claims CW-1 to CW-4.

One head: ``y_i = sum_j A_ij v_j`` (``A`` row-stochastic, ``v_j`` the value of token ``j``).
The contribution weight of token ``j`` to query ``i`` is ``CW_ij = A_ij <v_j, y_i> / ||y_i||^2``.

Sink geometry (science/sinks.md, CW-2): with sink rate ``s = A_i0``, the output is the affine
function ``y(s) = s v_0 + (1 - s) m`` of ``s``, ``m = sum_{j>=1} A_ij v_j / (1 - s)`` the
renormalised non-sink mean value. In units of ``||m||``, the geometry is ``r = ||v_0||/||m||``
and ``c = cos(v_0, m)``:

- ``||y(s)||^2/||m||^2 = s^2 r^2 + 2 s (1 - s) r c + (1 - s)^2`` (a convex quadratic: its
  ``s^2`` coefficient is ``||v_0 - m||^2/||m||^2 >= 0``), so ``||y(s)||`` is convex;
- passive sink (``r = 0``): ``(1 - s) ||m||``; active sink (``v_0 = -kappa m``):
  ``|1 - s (1 + kappa)| ||m||``, zero at ``s = 1/(1 + kappa)``;
- ``CW_i0 = s (s r^2 + (1 - s) r c) / (||y||^2/||m||^2)``: negative iff ``s < -c/(r - c)``
  (needs ``c < 0``); the curve lies below the passive line iff ``s < -2c/(r - 2c)``, so a
  negative sink contribution weight implies suppression below the passive line.
- at the minimum ``s*`` of ``||y(s)||``, ``y`` is orthogonal to ``v_0 - m``, so
  ``<v_0, y> = ||y||^2 >= 0`` (CW-4: the smallest update never points against ``v_0``).

Population (planted sink, engine ``qk="sink"``, ``sink=True``, gaussian input, one layer,
``norm="none"``, one head with random ``F = W_V^T``, entries of variance ``sigma_v2/d``):
``E F^T F = sigma_v2 I`` exactly, tokens ``i >= 1`` have ``x_i . u = a sqrt(d)``, independent
isotropic remainders of norm ``sqrt(d (1 - a^2))``, and ``x_0 . x_i = a b d``. Every query
``i >= 1`` has the same sink rate ``s = 1/(1 + (T - 1) exp(-qk_scale a d sqrt(1 - b^2)))`` and
the same output, with (``w = sink_value``, all expectations exact)::

    E ||m||^2/d      = sigma_v2 rho_m,   rho_m = a^2 + (1 - a^2)/(T - 1)
    E ||y(s)||^2/d   = sigma_v2 (s^2 w^2 + 2 s (1 - s) w a b + (1 - s)^2 rho_m)
    E (||y||^2 - (1 - s)^2 ||m||^2)/d = sigma_v2 (s^2 w^2 + 2 s (1 - s) w a b)

CW-3: deleting token ``j`` from query ``i``'s row (row renormalised) changes the head output by
``Delta_ij = A_ij (y_i - v_j)/(1 - A_ij)``, so ``||Delta_ij|| = A_ij ||v_j - y_i||/(1 - A_ij)``
exactly (derived in ``derive_deletion_effect``).
"""

from __future__ import annotations

import sympy as sp

from theory.predictions import Prediction, register

s = sp.symbols("s", nonnegative=True)  # sink rate A_i0
r = sp.symbols("r", nonnegative=True)  # ||v_0|| / ||m||
c = sp.symbols("c", real=True)  # cos(v_0, m)
kappa = sp.symbols("kappa", positive=True)
w = sp.symbols("sink_value", real=True)
a = sp.symbols("sink_align", real=True)
b = sp.symbols("sink_cos", real=True)
sigma_v2 = sp.symbols("sigma_v2", positive=True)
T, d = sp.symbols("T d", positive=True)
qk_scale = sp.symbols("qk_scale", real=True)


def derive_norm_ratio_squared() -> sp.Expr:
    """``||y(s)||^2/||m||^2`` with ``y = s v_0 + (1 - s) m``, ``|v_0| = r``, ``|m| = 1``,
    ``<v_0, m> = r c``."""
    return sp.expand(s**2 * r**2 + 2 * s * (1 - s) * r * c + (1 - s) ** 2)


def derive_norm_ratio() -> sp.Expr:
    """``||y(s)||/||m||`` at fixed geometry."""
    return sp.sqrt(derive_norm_ratio_squared())


def derive_curvature_squared() -> sp.Expr:
    """``s^2`` coefficient of ``||y(s)||^2/||m||^2``: ``||v_0 - m||^2/||m||^2``."""
    coeff = sp.Poly(derive_norm_ratio_squared(), s).coeff_monomial(s**2)
    assert sp.simplify(coeff - (r**2 - 2 * r * c + 1)) == 0
    return sp.factor(coeff)


def derive_passive_norm() -> sp.Expr:
    """Passive sink ``v_0 = 0`` (``r = 0``): ``||y||/||m|| = 1 - s`` for ``s <= 1``."""
    return sp.simplify(sp.sqrt(sp.factor(derive_norm_ratio_squared().subs(r, 0))))


def derive_active_norm() -> sp.Expr:
    """Active sink ``v_0 = -kappa m`` (``r = kappa``, ``c = -1``): ``|1 - s(1 + kappa)|``."""
    q = sp.factor(derive_norm_ratio_squared().subs({r: kappa, c: -1}))
    assert sp.expand(q - (1 - s * (1 + kappa)) ** 2) == 0
    return sp.Abs(1 - s * (1 + kappa))


def derive_active_minimiser() -> sp.Expr:
    """The sink rate where the active-sink output vanishes: ``1/(1 + kappa)``."""
    (root,) = sp.solve(sp.Eq(1 - s * (1 + kappa), 0), s)
    return root


def derive_cw_sink() -> sp.Expr:
    """``CW_i0 = s <v_0, y>/||y||^2`` at fixed geometry (units of ``||m||``)."""
    return s * (s * r**2 + (1 - s) * r * c) / derive_norm_ratio_squared()


def derive_cw_sink_active() -> sp.Expr:
    """``CW_i0`` of the active sink ``v_0 = -kappa m``: ``-s kappa/(1 - s(1 + kappa))``."""
    return sp.factor(sp.simplify(derive_cw_sink().subs({r: kappa, c: -1})))


def derive_cw_zero() -> sp.Expr:
    """Sink rate where ``CW_i0`` changes sign: ``-c/(r - c)`` (negative below it when c < 0)."""
    (root,) = sp.solve(sp.Eq(s * r**2 + (1 - s) * r * c, 0), s)
    return sp.simplify(root)


def derive_suppression_threshold() -> sp.Expr:
    """Sink rate below which ``||y(s)|| < (1 - s)||m||``: ``-2c/(r - 2c)`` (needs c < 0)."""
    gap = sp.expand(derive_norm_ratio_squared() - (1 - s) ** 2)  # = s (s r^2 + 2 (1-s) r c)
    assert sp.expand(gap - s * (s * r**2 + 2 * (1 - s) * r * c)) == 0
    (root,) = sp.solve(sp.Eq(sp.cancel(gap / s), 0), s)
    return sp.simplify(root)


def derive_norm_minimiser() -> sp.Expr:
    """``s*`` minimising ``||y(s)||``: ``(1 - r c)/(1 - 2 r c + r^2)``."""
    (root,) = sp.solve(sp.diff(derive_norm_ratio_squared(), s), s)
    return sp.simplify(root)


def check_minimum_alignment() -> bool:
    """At ``s*``, ``<v_0, y>/||m||^2 - ||y||^2/||m||^2 = 0`` (so ``cos(v_0, y) >= 0`` there)."""
    st = derive_norm_minimiser()
    inner = (s * r**2 + (1 - s) * r * c).subs(s, st)
    return sp.simplify(inner - derive_norm_ratio_squared().subs(s, st)) == 0


def derive_sink_rate() -> sp.Expr:
    """Layer-1 sink rate of the planted sink (``qk="sink"``): logits ``qk_scale a d sqrt(1 -
    b^2)`` on the sink and 0 on the ``T - 1`` other tokens."""
    logit = qk_scale * a * d * sp.sqrt(1 - b**2)
    return 1 / (1 + (T - 1) * sp.exp(-logit))


def derive_rest_norm() -> sp.Expr:
    """``E ||m||^2/d = sigma_v2 (a^2 + (1 - a^2)/(T - 1))``: uniform attention on the ``T - 1``
    tokens, ``E F^T F = sigma_v2 I``, remainders independent and isotropic (mean zero)."""
    return sigma_v2 * (a**2 + (1 - a**2) / (T - 1))


def derive_output_norm() -> sp.Expr:
    """``E ||y(s)||^2/d`` (engine ``output_norm``) of the planted sink, exact."""
    rho_m = derive_rest_norm() / sigma_v2
    return sigma_v2 * (s**2 * w**2 + 2 * s * (1 - s) * w * a * b + (1 - s) ** 2 * rho_m)


def derive_output_curvature() -> sp.Expr:
    """``s^2`` coefficient of ``E ||y(s)||^2/d``: ``E ||v_0 - m||^2/d``."""
    return sp.factor(sp.Poly(sp.expand(derive_output_norm()), s).coeff_monomial(s**2))


def derive_suppression_gap() -> sp.Expr:
    """``E (||y||^2 - (1 - s)^2 ||m||^2)/d``: negative where the population curve lies below the
    passive line."""
    return sp.factor(sp.expand(derive_output_norm() - (1 - s) ** 2 * derive_rest_norm()))


def derive_population_geometry() -> tuple[sp.Expr, sp.Expr]:
    """Large-``d`` geometry of the planted sink: ``r^2 = w^2/rho_m`` and
    ``c = sign(w) a b/sqrt(rho_m)`` (the quadratic forms concentrate on their means)."""
    rho_m = derive_rest_norm() / sigma_v2
    return sp.simplify(w**2 / rho_m), sp.sign(w) * a * b / sp.sqrt(rho_m)


def derive_deletion_effect() -> sp.Expr:
    """``Delta_ij / (y_i - v_j)`` when token ``j`` (weight ``A_ij = p``) is deleted from a row:
    ``y^(-j) = (y - p v_j)/(1 - p)`` so ``y - y^(-j) = p (v_j - y)/(1 - p)``."""
    p, y_, v_ = sp.symbols("A_ij y v", real=True)
    delta = sp.simplify(y_ - (y_ - p * v_) / (1 - p))
    ratio = p / (1 - p)
    assert sp.simplify(delta / (v_ - y_) - ratio) == 0
    return ratio


def generated_functions() -> list[tuple[str, sp.Expr, tuple[sp.Symbol, ...]]]:
    """The closed forms printed into ``theory/_generated/contribution.py``."""
    r2, cos_ = derive_population_geometry()
    return [
        ("norm_ratio", derive_norm_ratio(), (s, r, c)),
        ("cw_sink", derive_cw_sink(), (s, r, c)),
        ("cw_zero", derive_cw_zero(), (r, c)),
        ("suppression_threshold", derive_suppression_threshold(), (r, c)),
        ("norm_minimiser", derive_norm_minimiser(), (r, c)),
        ("active_minimiser", derive_active_minimiser(), (kappa,)),
        ("sink_rate", derive_sink_rate(), (qk_scale, a, b, d, T)),
        ("rest_norm", derive_rest_norm(), (a, T, sigma_v2)),
        ("output_norm", derive_output_norm(), (s, w, a, b, T, sigma_v2)),
        ("output_curvature", derive_output_curvature(), (w, a, b, T, sigma_v2)),
        ("suppression_gap", derive_suppression_gap(), (s, w, a, b, sigma_v2)),
        ("geometry_r2", r2, (w, a, T)),
        ("geometry_cos", cos_, (w, a, b, T)),
    ]


def _generated():
    """The printed evaluators (imported lazily: ``theory.derive`` rewrites them from here)."""
    from theory._generated import contribution

    return contribution


POPULATION = ("planted sink (qk='sink', sink=True), gaussian input, one layer, norm='none', "
              "one head, random values E F^T F = sigma_v2 I; exact")

register(Prediction(
    "cw2_sink_rate", "CW-2", "layer-1 sink rate A_i0 of the planted sink",
    ("qk_scale", "sink_align", "sink_cos", "d", "T"), "qk='sink', norm='none'; exact",
    lambda qk_scale, sink_align, sink_cos, d, T: _generated().sink_rate(
        qk_scale, sink_align, sink_cos, d, T), derive_sink_rate()))
register(Prediction(
    "cw2_output_norm", "CW-2", "population output norm E||y(s)||^2/d against the sink rate s",
    ("s", "sink_value", "sink_align", "sink_cos", "T", "sigma_v2"), POPULATION,
    lambda s, sink_value, sink_align, sink_cos, T, sigma_v2: _generated().output_norm(
        s, sink_value, sink_align, sink_cos, T, sigma_v2), derive_output_norm()))
register(Prediction(
    "cw2_rest_norm", "CW-2", "population non-sink mean value norm E||m||^2/d",
    ("sink_align", "T", "sigma_v2"), POPULATION,
    lambda sink_align, T, sigma_v2: _generated().rest_norm(sink_align, T, sigma_v2),
    derive_rest_norm()))
register(Prediction(
    "cw2_output_curvature", "CW-2", "s^2 coefficient of E||y(s)||^2/d (= E||v_0 - m||^2/d)",
    ("sink_value", "sink_align", "sink_cos", "T", "sigma_v2"), POPULATION,
    lambda sink_value, sink_align, sink_cos, T, sigma_v2: _generated().output_curvature(
        sink_value, sink_align, sink_cos, T, sigma_v2), derive_output_curvature()))
register(Prediction(
    "cw2_suppression_gap", "CW-2",
    "E(||y||^2 - (1-s)^2 ||m||^2)/d: below zero where the curve is under the passive line",
    ("s", "sink_value", "sink_align", "sink_cos", "sigma_v2"), POPULATION,
    lambda s, sink_value, sink_align, sink_cos, sigma_v2: _generated().suppression_gap(
        s, sink_value, sink_align, sink_cos, sigma_v2), derive_suppression_gap()))
register(Prediction(
    "cw2_cw_sink", "CW-2", "sink contribution weight at fixed geometry (r, c)",
    ("s", "r", "c"), "fixed geometry: r = ||v_0||/||m||, c = cos(v_0, m); exact",
    lambda s, r, c: _generated().cw_sink(s, r, c), derive_cw_sink()))
register(Prediction(
    "cw2_norm_ratio", "CW-2", "||y(s)||/||m|| at fixed geometry (r, c)",
    ("s", "r", "c"), "fixed geometry; exact",
    lambda s, r, c: _generated().norm_ratio(s, r, c), derive_norm_ratio()))
