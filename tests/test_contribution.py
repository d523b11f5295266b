"""CW-1 to CW-4: the contribution-weight identities (property tests), the fixed-geometry and
population closed forms of theory.contribution against direct NumPy evaluation, the exact
deletion effect, the engine's recorded weights against sim.contribution, and the claims end to
end under the quick profile."""

import math

import matplotlib
import numpy as np
import pytest
from conftest import run_quick_claims
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.claims.contribution import (
    CW2_CASES,
    CW2_D,
    CW2_T,
    cw1_engine_config,
    cw2_config,
    identity_violations,
    qk_scale_for_rate,
)
from sim.contribution import (
    contribution_weights,
    deletion_effect,
    deletion_effect_formula,
    first_layer_head,
    quadratic_coefficients,
)
from sim.montecarlo import simulate
from theory import contribution as th
from theory import predictions

matplotlib.use("Agg")


def _head(seed: int, T: int, d: int, spread: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, spread, (T, T))
    A = np.exp(logits - logits.max(axis=1, keepdims=True))
    return A / A.sum(axis=1, keepdims=True), rng.normal(0.0, 1.0, (T, d))


heads = st.tuples(st.integers(0, 2**32 - 1), st.integers(2, 20), st.integers(1, 40),
                  st.floats(0.0, 5.0))


@settings(max_examples=200, deadline=None)
@given(heads, st.floats(-8.0, 8.0))
def test_cw_identities(head, log_scale):
    A, V = _head(*head)
    v = identity_violations(A, V, math.exp(log_scale) * (-1) ** int(log_scale > 0))
    assert v["row_sum"] < 1e-9
    assert v["rescale"] < 1e-9
    assert v["equal_values"] < 1e-12
    assert v["sign"] == 0.0


@settings(max_examples=100, deadline=None)
@given(heads)
def test_opposing_value_is_negative(head):
    """A value set to oppose query 0's output (v_j = -t y_0, t > 0 large enough that the output
    keeps its direction) gets CW_0j < 0; its CW equals -t A_0j <y, y'>/||y'||^2."""
    A, V = _head(*head)
    V = V.copy()
    y = A[0] @ V
    j = int(np.argmin(A[0]))
    V[j] = -0.5 * y  # y' = y - A_0j (v_j_old + y/2): same direction when A_0j is small
    y_new = A[0] @ V
    cw = contribution_weights(A, V)
    expected = A[0, j] * (V[j] @ y_new) / (y_new @ y_new)
    assert np.isclose(cw[0, j], expected)
    if y @ y_new > 0:
        assert cw[0, j] < 0


@settings(max_examples=100, deadline=None)
@given(heads)
def test_deletion_effect_closed_form(head):
    A, V = _head(*head)
    direct = deletion_effect(A, V)
    formula = deletion_effect_formula(A, V)
    ok = A < 1 - 1e-6
    assert np.allclose(direct[ok], formula[ok], rtol=1e-7, atol=1e-10)


def _geometry(r: float, c: float, d: int = 5) -> tuple[np.ndarray, np.ndarray]:
    m = np.zeros(d)
    m[0] = 1.0
    v0 = r * np.array([c, math.sqrt(1 - c * c)] + [0.0] * (d - 2))
    return v0, m


@pytest.mark.parametrize("r,c", [(0.6, -0.6), (1.2, 0.5), (0.0, 0.0), (2.0, -0.95)])
def test_fixed_geometry_closed_forms(r, c):
    """norm_ratio and cw_sink against y(s) = s v_0 + (1 - s) m built explicitly, CW from a
    two-token head (sink weight s, the rest weight 1 - s carrying m)."""
    gen = th._generated()
    v0, m = _geometry(r, c)
    for s in np.linspace(0.01, 0.99, 13):
        y = s * v0 + (1 - s) * m
        assert np.isclose(gen.norm_ratio(s, r, c), np.linalg.norm(y))
        A = np.array([[s, 1 - s], [0.5, 0.5]])
        cw = contribution_weights(A, np.array([v0, m]))
        assert np.isclose(gen.cw_sink(s, r, c), cw[0, 0], atol=1e-12)
    if c < 0 and r > 0:
        s0 = gen.cw_zero(r, c)
        assert abs(gen.cw_sink(s0, r, c)) < 1e-12
        st_ = gen.suppression_threshold(r, c)
        assert np.isclose(gen.norm_ratio(st_, r, c), 1 - st_)
        assert gen.cw_sink(0.5 * s0, r, c) < 0 and gen.norm_ratio(0.5 * st_, r, c) < 1 - st_ / 2
    grid = np.linspace(0, 1, 100001)
    smin = gen.norm_minimiser(r, c)
    assert abs(grid[np.argmin(gen.norm_ratio(grid, r, c))] - min(max(smin, 0), 1)) < 1e-4


def test_active_and_passive_forms():
    assert th.check_minimum_alignment()
    s, kappa = th.s, th.kappa
    assert th.derive_active_minimiser() == 1 / (1 + kappa)
    cw = th.derive_cw_sink_active()
    assert abs(float(cw.subs({s: 0.2, kappa: 1.5})) - (-0.2 * 1.5 / (1 - 0.2 * 2.5))) < 1e-12
    assert float(th.derive_passive_norm().subs(s, 0.3)) == pytest.approx(0.7)


def test_population_forms_against_numpy_monte_carlo():
    """E||y(s)||^2/d, E||m||^2/d and the curvature against a direct NumPy draw of the planted
    geometry (independent of the engine): gaussian remainders, F with variance sigma_v2/d."""
    rng = np.random.default_rng(4)
    T, d, (w, a, b), sv2, n = 8, 24, (-0.5, 0.8, 0.6), 1.7, 20000
    s = 0.4
    on, rest = np.empty(n), np.empty(n)
    x0 = math.sqrt(d) * np.r_[b, math.sqrt(1 - b * b), np.zeros(d - 2)]
    for k in range(n):
        g = rng.standard_normal((T - 1, d - 2))
        g *= math.sqrt(d * (1 - a * a)) / np.linalg.norm(g, axis=1, keepdims=True)
        x = np.column_stack([np.full(T - 1, a * math.sqrt(d)), np.zeros(T - 1), g])
        F = rng.normal(0, math.sqrt(sv2 / d), (d, d))
        m = F @ x.mean(axis=0)
        y = s * w * (F @ x0) + (1 - s) * m
        on[k], rest[k] = y @ y / d, m @ m / d
    pred_on = predictions.get("cw2_output_norm")(s=s, sink_value=w, sink_align=a, sink_cos=b,
                                                 T=T, sigma_v2=sv2)
    pred_rest = predictions.get("cw2_rest_norm")(sink_align=a, T=T, sigma_v2=sv2)
    for pred, vals in ((pred_on, on), (pred_rest, rest)):
        se = vals.std(ddof=1) / math.sqrt(n)
        assert abs(vals.mean() - pred) < 5 * se
        assert abs(vals.mean() - 1.1 * pred) > 5 * se  # mutation twin
    gen = th._generated()
    grid = np.linspace(0, 1, 5)
    q = gen.output_norm(grid, w, a, b, T, sv2)
    assert np.isclose(quadratic_coefficients(grid, q[None])[0, 2],
                      gen.output_curvature(w, a, b, T, sv2))
    assert np.allclose(gen.output_norm(grid, w, a, b, T, sv2)
                       - (1 - grid) ** 2 * gen.rest_norm(a, T, sv2),
                       gen.suppression_gap(grid, w, a, b, sv2))


@pytest.mark.parametrize("case", list(CW2_CASES))
def test_engine_sink_rate_and_queries(case):
    """The planted sink rate is exact, every query i >= 1 has the same output, and the engine's
    queries observables equal NumPy on the rebuilt head."""
    cfg = cw2_config(case, 0.3)
    res = simulate(cfg, 3, 2, "queries", progress=False)
    w, a, b = CW2_CASES[case]
    assert np.allclose(res.per_sample("sink_mass")[:, 1:], 0.3, atol=1e-12)
    assert qk_scale_for_rate(0.3, a, b, CW2_D, CW2_T) == pytest.approx(cfg.qk_scale)
    for i in range(3):
        A, V = first_layer_head(cfg, 2, i)
        Y = A @ V
        cw = contribution_weights(A, V)
        assert np.allclose(res.per_sample("output_norm")[i, 1:], np.sum(Y[1:] ** 2, 1) / CW2_D)
        assert np.allclose(res.per_sample("cw_sink")[i, 1:], cw[1:, 0])


@pytest.mark.parametrize("sink", [False, True])
def test_engine_heads_against_numpy(sink):
    cfg = cw1_engine_config(sink)
    res = simulate(cfg, 4, 9, "heads", progress=False)
    q = slice(1, None) if sink else slice(None)
    for i in range(4):
        A, V = first_layer_head(cfg, 9, i)
        cw = contribution_weights(A, V)
        assert np.isclose(res.per_sample("cw_sink", 0)[i], cw[q, 0].mean())
        assert np.isclose(res.per_sample("cw_self", 0)[i], np.diag(cw)[q].mean())


def test_generated_module_is_current():
    from pathlib import Path

    from theory.derive import GENERATED_DIR, render

    assert (Path(GENERATED_DIR) / "contribution.py").read_text() == \
        render("contribution", th.generated_functions())


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return run_quick_claims(tmp_path_factory, ("CW-1", "CW-2", "CW-3", "CW-4"))


def test_cw1_quick(quick):
    r = quick["CW-1"]
    assert r.verdict == "confirmed"
    assert max(r.data["identities"].values()) < 1e-9 and r.data["opposing"] > 0
    assert max(r.data["engine"].values()) < 1e-9


def test_cw2_quick(quick):
    r = quick["CW-2"]
    assert r.verdict in ("qualified", "open")
    assert all(c.passed for c in r.comparisons)
    assert r.mutations and r.mutations_rejected
    assert r.data["sink_rate_error"] < 1e-9
    cv = r.data["convexity"]
    assert cv["passive"]["linear"]
    assert cv["aligned"]["c2"] > 0 and cv["active"]["c2"] > 0
    # suppression only where the fixed-geometry theory puts it
    for row in r.data["suppression"]:
        if row["cw_negative"]:
            assert row["s"] < cv["active"]["cw_zero"]
        if row["below_passive"]:
            assert row["s"] < cv["active"]["suppression_threshold"]


def test_cw3_cw4_quick(quick):
    r3, r4 = quick["CW-3"], quick["CW-4"]
    assert r3.verdict in ("confirmed", "qualified", "refuted", "open")
    assert len(r3.data["diffs"]) == 2 * len(r3.data["rows"])
    for row in r3.data["rows"]:  # the exact layer effect is ranked best by alpha or the norm
        assert max(row["alpha_layer"], row["norm_layer"]) > row["cw_layer"]
    assert r4.verdict == "open"
    active = next(x for x in r4.data["rows"] if x["case"] == "active")
    aligned = next(x for x in r4.data["rows"] if x["case"] == "aligned")
    assert aligned["small"] > 0 > active["large"]


def test_figures_draw(quick):
    import matplotlib.pyplot as plt

    from sim.figures_contribution import FIGURES

    for _name, (claim, fn) in FIGURES.items():
        fig = fn(quick[claim])
        assert fig.axes
        plt.close(fig)
