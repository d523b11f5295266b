"""RS-1, RS-2, RS-3 (rank and symmetry): the LayerNorm rank identities (exact arithmetic,
hypothesis), the consensus contraction against an independent NumPy stack with uniform
attention, the out-of-span energy against an independent NumPy MLP, the high-precision pass
against the engine, and the claims end to end under the quick profile."""

import math

import matplotlib
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import kernels
from sim import rank as measure
from sim.claims import decide
from sim.claims.rank import rounding_bound, rs2_config, rs3_config
from tests.conftest import run_quick_claims
from theory import derive
from theory import rank as theory

matplotlib.use("Agg")


# ----------------------------------------------------------------------------- RS-1

def _sympy_ranks(x: np.ndarray) -> tuple[int, int, int]:
    X = sp.Matrix(x.astype(int).tolist())
    d = X.shape[1]
    P = sp.eye(d) - sp.ones(d, d) / d
    return X.rank(), X.col_join(sp.ones(1, d)).rank(), (X * P).rank()


@st.composite
def structured_integer_tokens(draw):
    """Small integer token matrices with repeats, multiples, constant rows and sums."""
    T, d = draw(st.integers(2, 6)), draw(st.integers(2, 6))
    ints = st.integers(-4, 4)
    rows = [draw(st.lists(ints, min_size=d, max_size=d))]
    for _ in range(T - 1):
        kind = draw(st.sampled_from(["free", "repeat", "multiple", "constant", "sum"]))
        prev = rows[draw(st.integers(0, len(rows) - 1))]
        if kind == "free":
            rows.append(draw(st.lists(ints, min_size=d, max_size=d)))
        elif kind == "repeat":
            rows.append(list(prev))
        elif kind == "multiple":
            c = draw(st.sampled_from([-2, -1, 2, 3]))
            rows.append([c * v for v in prev])
        elif kind == "constant":
            rows.append([draw(ints)] * d)
        else:
            other = rows[draw(st.integers(0, len(rows) - 1))]
            rows.append([a + b for a, b in zip(prev, other, strict=True)])
    return np.array(rows, dtype=float)


@settings(max_examples=60, deadline=None)
@given(structured_integer_tokens())
def test_ln_rank_identity_exact(x):
    """rank(X P) = rank [X; 1] - 1 = rank X - [1 in rowspace X], in sympy; the fraction-free
    elimination and the float64 gap rule agree with it."""
    r, r_ones, r_ln = _sympy_ranks(x)
    assert r_ln == r_ones - 1 == r - (r_ones == r)
    e = measure.exact_ln_identity(x)
    assert (e["rank"], e["rank_ones"], e["rank_ln"]) == (r, r_ones, r_ln)
    f = measure.ranks(x[None])
    assert (f["rank"][0], f["rank_ones"][0], f["rank_ln"][0]) == (r, r_ones, r_ln)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 7), st.integers(3, 7), st.integers(0, 2**31))
def test_generic_ranks_random_gaussian(T, d, seed):
    x = np.random.default_rng(seed).standard_normal((1, T, d))
    r = measure.ranks(x)
    expect = theory.generic_ranks(T, d)
    assert {k: int(r[k][0]) for k in expect} == expect


def test_layer_norm_matches_engine():
    """Without epsilon; the engine's LN_EPS changes an O(1)-variance token by ~1e-12."""
    x = np.random.default_rng(0).standard_normal((5, 7))
    assert np.allclose(measure.layer_norm(x), kernels.layer_norm(x), atol=1e-10)
    assert np.array_equal(measure.layer_norm(np.full((1, 4), 0.1)), np.zeros((1, 4)))
    c = np.array([0.3, -1.1, 2.0, 0.7])
    ln = measure.layer_norm(np.array([c, 7 * c]))
    assert np.allclose(ln[0], ln[1], atol=1e-15)  # exactly scale invariant up to rounding


def test_counterexamples():
    c, z = np.array([1.0, 2.0, 4.0, 3.0]), np.array([2.0, -1.0, 0.0, 5.0])
    r = measure.ranks(np.array([[c, 2 * c, z]]))
    assert (r["aff"][0], r["aff_ln"][0]) == (2, 1)  # {c, 2c, z}: two tokens share an image
    assert (r["rank"][0], r["rank_ln"][0]) == (2, 2)
    const = np.array([c, z, [3.0] * 4])
    e = measure.exact_ln_identity(const)
    assert measure.layer_norm(const)[2] == pytest.approx(np.zeros(4))  # zero-variance row -> 0
    assert (e["rank"], e["rank_ln"]) == (3, 2)


def test_drop_probabilities():
    pmf = theory.distinct_count_pmf(8, 5)
    assert sum(pmf.values()) == 1
    # two tokens on one line: LayerNorm merges them iff their signs agree
    assert theory.collinear_drop_probability(2, 1, 5, "aff") == sp.Rational(1, 2)
    # Monte Carlo of the occupancy (independent of the Stirling formula)
    g = np.random.default_rng(1)
    K = np.array([len(set(g.integers(0, 8, 8))) for _ in range(20000)])
    p = float(theory.repeated_drop_probability(8, 8, 5, "rank"))
    assert abs((K >= 5).mean() - p) < 5 * math.sqrt(p * (1 - p) / K.size)


# ----------------------------------------------------------------------------- RS-2

def _uniform_stack_rate(norm: str, d: int, T=6, depth=70, samples=150, seed=0):
    """Independent NumPy stack: uniform attention, residual, one value matrix per layer
    (variance 1/d), L2 or LayerNorm; per-sample mean log-increment of mu over 30 layers from
    mu < 1e-3."""
    g = np.random.default_rng(seed)
    slopes = []
    for _ in range(samples):
        x = g.standard_normal((T, d))
        mus = []
        for _ in range(depth):
            m = x.mean(axis=0)
            mus.append(math.sqrt(((x - m) ** 2).sum() / (x * x).sum()))
            x = x + m @ g.normal(0, math.sqrt(1 / d), (d, d))
            if norm == "post":
                x = x - x.mean(axis=1, keepdims=True)
            x = math.sqrt(d) * x / np.linalg.norm(x, axis=1, keepdims=True)
        mus = np.array(mus)
        a = int(np.nonzero(mus < 1e-3)[0][0])
        slopes.append((math.log(mus[a + 30]) - math.log(mus[a])) / 30)
    s = np.array(slopes)
    return math.exp(s.mean()), math.exp(s.mean()) * s.std(ddof=1) / math.sqrt(s.size)


@pytest.mark.parametrize("norm", ["post", "l2"])
def test_consensus_rate_against_numpy_stack(norm):
    d = 12
    rate, se = _uniform_stack_rate(norm, d)
    pred = theory.consensus_rate(1.0, d, norm)
    assert abs(rate - pred) < 5 * se + theory.consensus_rate_bias(1.0, d, norm)
    assert abs(rate - 1.1 * pred) > 5 * se
    # the 1/d correction is resolved: the d -> infinity rate is further off than the theory
    assert abs(rate - 2**-0.5) > abs(rate - pred)


def test_mp_stack_matches_engine_and_certifies():
    r = measure.mp_stack(rs2_config("post", 8, 1.0, 12, T=4), 0, 1)
    assert r["layer1_gap"] < 1e-13
    assert np.allclose(r["mp"][-1], r["float"][-1], rtol=1e-6)
    assert min(r["singular_distance"]) > 0
    with pytest.raises(ValueError):
        measure.mp_stack(rs3_config(2.0, 0.0), 0, 1)


def _ratios(rows: list[list[str]]):
    """A pass of ``certified_pass``: singular values over sigma_1 of the matrix ``rows``
    (decimal strings), parsed and decomposed at ``digits`` digits."""
    import mpmath as mp

    def run(digits: int) -> dict:
        with mp.workdps(digits):
            s = mp.svd_r(mp.matrix([[mp.mpf(x) for x in row] for row in rows]), compute_uv=False)
            return {"mp": [[float(v / s[0]) for v in s]]}
    return run


def test_certified_pass_raises_digits_only_for_a_full_rank_matrix():
    """A matrix of rank 2 with sigma_2/sigma_1 = 5e-101 is certified once the digits resolve
    it (240: cut 1e-120); at 60 digits its entry 1 + 1e-100 rounds to 1. The twin, an exactly
    singular matrix, is never certified: its computed sigma_2 stays near 10^-digits."""
    from sim.claims.rank import MAX_DPS, certified_pass

    r, digits, exact = certified_pass(_ratios([["1", "1"], ["1", "1.0" + "0" * 99 + "1"]]), 2,
                                      60)
    assert (digits, exact) == (240, [2]) and r["mp"][0][1] == pytest.approx(2.5e-101, rel=1e-6)
    r, digits, exact = certified_pass(_ratios([["1", "2"], ["2", "4"]]), 2, 60)
    assert exact == [1] and digits <= MAX_DPS < 2 * digits


def test_singular_set():
    lam, mu = sp.symbols("lambda mu")
    assert theory.derive_singular_set() == 1 + lam * mu
    A = np.diag([2.0, 0.5])
    W = np.diag([-0.5, 1.0])
    M = np.eye(4) + np.kron(W.T, A)  # lambda = 2, mu = -1/2: singular
    assert abs(np.linalg.det(M)) < 1e-12


# ----------------------------------------------------------------------------- RS-3

def test_relu_even_energy_and_leverage():
    e = theory.derive_relu_even_energy()
    assert e["even_energy"] == theory.kappa / 4
    g = np.random.default_rng(2)
    u = g.standard_normal(400000) * 1.7
    relu = np.maximum(u, 0)
    lin = (relu @ u) / (u @ u)
    assert np.mean((relu - lin * u) ** 2) == pytest.approx(1.7**2 / 4, rel=0.01)
    p, n = 5, 40
    vals = []
    for _ in range(3000):
        M = g.standard_normal((p, n))
        lev = np.einsum("ik,ij,jk->k", M, np.linalg.inv(M @ M.T), M)
        vals.append((M[:, 0] @ M[:, 0]) * lev[0])
    pred = float(theory.derive_leverage_moment().subs({theory.p: p, theory.n: n}))
    assert abs(np.mean(vals) - pred) < 5 * np.std(vals) / math.sqrt(len(vals))


def test_out_of_span_energy_against_numpy_mlp():
    """Independent NumPy block on a fixed random input Z with a given span K_in."""
    g = np.random.default_rng(3)
    T, d, dff, sw2, sb2 = 5, 40, 60, 2.0, 0.3
    X = g.standard_normal((T, d))
    W_V = g.standard_normal((d, d)) / math.sqrt(d)
    Z = X + 0.3 * X @ W_V
    B = measure.orth_rows(np.vstack([X, X @ W_V]))
    trK = sw2 * (Z * Z).sum() / d + T * sb2
    pred = theory.out_of_span_energy(sw2, d, dff, B.shape[0], sb2, trK)
    ratios = []
    for _ in range(800):
        W1 = g.normal(0, math.sqrt(sw2 / d), (d, dff))
        b1 = g.normal(0, math.sqrt(sb2), dff)
        W2 = g.normal(0, math.sqrt(sw2 / dff), (dff, d))
        b2 = g.normal(0, math.sqrt(sb2), d)
        Y = Z + np.maximum(Z @ W1 + b1, 0) @ W2 + b2
        S = measure.orth_rows(np.vstack([B, B @ W1 @ W2, b1 @ W2, b2]))
        ratios.append(measure.out_of_span(Y, S)[0] / pred)
    r = np.array(ratios)
    se = r.std(ddof=1) / math.sqrt(r.size)
    assert abs(r.mean() - 1) < 5 * se
    assert abs(r.mean() - 1.1) > 5 * se


def test_attention_only_stays_in_span():
    for norm in ("none", "post", "l2"):
        rows = measure.krylov_trace(rs3_config(2.0, 0.0, False, 3, norm, 4, 64, 64), 0, 5)
        assert [r["dim"] for r in rows] == [4, 8, 16, 32]
        assert all(r["sine"] <= rounding_bound(3, 64) for r in rows)
    rows = measure.krylov_trace(rs3_config(2.0, 0.0, True, 1, "none", 4, 64, 64), 0, 5)
    assert rows[1]["fraction"] > 0.01


def test_generated_code_is_current():
    from pathlib import Path

    path = Path(derive.GENERATED_DIR) / "rank.py"
    assert path.read_text() == derive.render("rank", theory.generated_functions())


# ----------------------------------------------------------------------------- claims

@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return run_quick_claims(tmp_path_factory, ("RS-1", "RS-2", "RS-3"))


@pytest.mark.parametrize("claim", ["RS-1", "RS-2", "RS-3"])
def test_claims_quick(quick, claim):
    r = quick[claim]
    assert r.mutations_rejected or r.verdict == "open"
    if r.verdict in ("confirmed", "qualified"):
        assert decide(r.comparisons, r.mutations) == "confirmed"


def test_figures_draw(quick):
    from sim.figures_rank import FIGURES

    for _name, (cid, fn) in FIGURES.items():
        fig = fn(quick[cid])
        assert fig.axes
        matplotlib.pyplot.close(fig)
