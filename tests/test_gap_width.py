"""GAP-3 second-order theory of the stable rank ``sr(A)`` of random-Markov attention
(``theory.gap``, module item 6) against a seeded NumPy Monte Carlo, independent of the engine."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import sympy as sp

from theory import gap, predictions

Z = 4.0  # agreement within Z standard errors (+ the stated budget); seeds are fixed


@functools.cache
def _draws(T: int, s: float, n: int) -> dict[str, np.ndarray]:
    """Per sample: ``sr(A)``, ``F_perp``, ``|c|^2``, ``|A_perp c|^2`` of ``A = rowsoftmax(G)``,
    ``G_ij ~ N(-s^2/2, s^2)``."""
    rng = np.random.default_rng([3, T, round(100 * s), n])
    out: dict[str, list[np.ndarray]] = {"sr": [], "F": [], "c2": [], "pc2": []}
    for start in range(0, n, 5000):
        m = min(5000, n - start)
        g = rng.normal(-s * s / 2, s, size=(m, T, T))
        e = np.exp(g - g.max(axis=2, keepdims=True))
        a = e / e.sum(axis=2, keepdims=True)
        p = a - 1.0 / T
        f = np.einsum("nij,nij->n", p, p)
        c = p.sum(axis=1)
        pc = np.einsum("nij,nj->ni", p, c)
        lam = np.linalg.eigvalsh(a @ a.transpose(0, 2, 1))[:, -1]
        for key, val in (("sr", (1 + f) / lam), ("F", f), ("c2", np.einsum("ni,ni->n", c, c)),
                         ("pc2", np.einsum("ni,ni->n", pc, pc))):
            out[key].append(val)
    return {k: np.concatenate(v) for k, v in out.items()}


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    return float(np.mean(x)), float(np.std(x, ddof=1) / math.sqrt(x.size))


def _truncation(d: dict[str, np.ndarray], T: int) -> np.ndarray:
    """``(1 + F_perp)(1 - Q1 + 2 Q1^2 - Q2)`` per sample: the expansion the theory averages."""
    q1, q2 = d["c2"] / T, d["pc2"] / T
    return (1 + d["F"]) * (1 - q1 + 2 * q1**2 - q2)


def test_expansion_of_the_top_eigenvalue():
    q1, q2 = sp.symbols("Q_1:3", real=True)
    assert gap.derive_inverse_top_eigenvalue(2) == [1, -q1, 2 * q1**2 - q2]
    q = sp.symbols("q", positive=True)
    # Marchenko-Pastur moments make 1/lambda = 1 - e2 exactly, order by order
    assert gap.derive_mean_field_inverse_top_eigenvalue(3) == [1, -q, 0, 0]
    e2, e4, T = gap.e2_sym, gap.e4_sym, gap.T
    rest = gap.derive_stable_rank_third_order_terms()  # asserts its closed form
    # every term of the rest is O(T^-3) when e2 ~ 1/T, e4 ~ 1/T^2, e4 - e2^2 ~ 1/T^3
    t = sp.symbols("t", positive=True)
    v3 = sp.symbols("v_3", real=True)
    scaled = rest.subs({e4: e2**2 + v3}).subs({e2: e2 * t, v3: v3 * t**3, T: T / t})
    assert sp.limit(sp.simplify(scaled / t**3), t, 0) != 0
    assert sp.limit(sp.simplify(scaled / t**2), t, 0) == 0
    assert predictions.get("gap3_stable_rank_finite").expr == gap.derive_stable_rank_second_order()


@pytest.mark.parametrize("s", [1.0, 1.5])
def test_pairing_moments(s):
    """``theory.gap.derive_pairing_moments`` (the moments both second-order theories, GAP-1's
    and GAP-3's, are built from) against the Monte Carlo; twins: the cross-row pairing
    ``2 ||C||_F^2`` dropped from ``E|c|^4``, and the one-row term ``e4`` dropped from ``E Q2``,
    must be rejected by the same test."""
    T, n = 8, 40000
    d = _draws(T, s, n)
    e2, e4 = gap.centred_row_moments(T, s)
    values = {gap.e2_sym: e2, gap.e4_sym: e4, gap.T: T}
    exact = {m: float(v.subs(values)) for m, v in gap.derive_pairing_moments().items()}
    q1, q2, f = gap.q1_sym, gap.q2_sym, sp.Symbol("F_perp", positive=True)
    checks = [(d["c2"] / T, exact[q1]), ((d["c2"] / T) ** 2, exact[q1**2]),
              (d["pc2"] / T, exact[q2]), (d["F"] * d["c2"] / T, exact[f * q1]),
              (d["F"], T * e2)]
    for vals, expected in checks:
        mean, se = _mean_se(vals)
        assert abs(mean - expected) < Z * se, (mean, se, expected)
    twins = [((d["c2"] / T) ** 2, (T * e4 + T * (T - 1) * e2**2) / T**2), (d["pc2"] / T, e2**2)]
    for vals, wrong in twins:
        mean, se = _mean_se(vals)
        assert abs(mean - wrong) > Z * se, (mean, se, wrong)


@pytest.mark.parametrize("T,s,n", [(16, 1.25, 20000), (16, 1.5, 20000)])
def test_second_order_agrees_and_its_twins_are_rejected(T, s, n):
    d = _draws(T, s, n)
    mean, se = _mean_se(d["sr"])
    pred = gap.stable_rank_finite(T, s)
    budget = gap.stable_rank_bias_budget(T, s)
    assert abs(mean - pred) <= Z * se + budget
    # the same test rejects: the first-order formula (theta_2 dropped) and 1.1 x the prediction
    for twin in (gap.stable_rank_finite_first(T, s), 1.1 * pred):
        assert abs(mean - twin) > Z * se + budget, (mean, twin)
    # the exact expectation of the truncation is the prediction (covariances O(T^-4) aside)
    tmean, tse = _mean_se(_truncation(d, T))
    assert abs(tmean - pred) <= Z * tse + 0.1 * budget


@pytest.mark.parametrize("T,s,n", [(16, 1.25, 20000), (16, 1.5, 20000), (32, 1.25, 5000),
                                   (32, 1.5, 5000)])
def test_budget_covers_the_measured_remainder(T, s, n):
    """``E[sr - truncation]`` (the neglected terms, measured with a small SE) is inside the
    budget, and the budget is not loose by more than a factor of 10."""
    d = _draws(T, s, n)
    rem, se = _mean_se(d["sr"] - _truncation(d, T))
    budget = gap.stable_rank_bias_budget(T, s)
    assert abs(rem) + Z * se <= budget
    assert budget <= 10 * abs(rem)


def test_first_order_error_is_the_old_budget():
    """The first-order formula is off by ``(1 + b) e2^2/(1 + e2)`` at second order, which is
    exactly its ``O(T^-2)`` budget."""
    for T, s in ((16, 1.5), (64, 1.0)):
        e2, _ = gap.centred_row_moments(T, s)
        b = T * e2
        assert gap.stable_rank_first_bias_budget(T, s) == pytest.approx(
            (1 + b) * e2**2 / (1 + e2), rel=1e-12)
        leading = (1 + b) * (1 - e2)  # second order, without the O(T^-3) terms
        assert gap.stable_rank_finite_first(T, s) - leading == pytest.approx(
            (1 + b) * e2**2 / (1 + e2), rel=1e-12)
