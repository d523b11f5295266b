"""Planted attention patterns (``qk``, ``sink``) and the kinds ``heads``, ``queries``,
``ablation`` (``sim.heads``) against the NumPy reference (``tests/reference.py``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference
from reference import reference_trace
from scipy.stats import spearmanr
from test_reference import agreement

from sim.config import Config
from sim.montecarlo import first_layer_attention, simulate

PLANTED = [
    Config(T=6, d=8, depth=3, qk="sink", qk_scale=0.4, sink=True, sink_value=0.0, mlp=False,
           norm="none", sink_align=0.6, sink_cos=-0.3),
    Config(T=6, d=8, heads=2, depth=2, qk="sink", qk_scale=0.2, sink=True, sink_value=0.5,
           norm="pre", input="gaussian", causal=True),
    Config(T=5, d=8, depth=2, qk="diagonal", qk_scale=0.3, norm="post", alpha_attn=0.5),
    Config(T=5, d=6, depth=2, qk="given", qk_matrix=tuple(np.linspace(-0.2, 0.3, 36)),
           norm="l2", mlp=False, sink=True, gap="remove"),
    Config(T=6, d=8, depth=2, sink=True, sink_value=-1.0, beta=2.0, input="simplex", rho=0.3),
]


@pytest.mark.parametrize("config", PLANTED, ids=range(len(PLANTED)))
def test_planted_patterns_match_reference(config: Config) -> None:
    a = agreement(config, seed=21)
    assert a.ok, "\n".join([repr(config)] + a.failures[:20])
    assert a.compared > 0


def test_sink_value_twin_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reference that forgets ``sink_value`` must disagree."""
    original = reference.head_values

    def unscaled(c, xa, w, h):
        return original(c.replace(sink_value=1.0), xa, w, h)

    monkeypatch.setattr(reference, "head_values", unscaled)
    assert not agreement(PLANTED[0], seed=21).ok


def test_sink_geometry_and_layer1_sink_mass() -> None:
    """The planted input has ``x_i . u = a sqrt d``, ``x_i . e = 0``, ``|x_i|^2 = d`` and
    ``cos(x_0, x_i) = a b``; a sink head gives every query ``A_i0 = e^m / (e^m + T - 1)`` with
    ``m = c a d sqrt(1 - b^2)``."""
    c = Config(T=7, d=10, depth=1, qk="sink", qk_scale=0.15, sink=True, sink_align=0.4,
               sink_cos=0.5, mlp=False, norm="none")
    x = reference.draw_input(c, reference.rng.sample_seed(0, 0))
    d, a, b = c.d, c.sink_align, c.sink_cos
    np.testing.assert_allclose(x[1:, 0], a * math.sqrt(d), rtol=1e-14)
    np.testing.assert_allclose(x[1:, 1], 0.0, atol=0.0)
    np.testing.assert_allclose(np.sum(x * x, axis=1), d, rtol=1e-13)
    np.testing.assert_allclose(x[1:] @ x[0] / d, a * b, rtol=1e-13)
    m = c.qk_scale * a * d * math.sqrt(1 - b * b)
    attn = first_layer_attention(c, 0)[0]
    np.testing.assert_allclose(attn[1:, 0], math.exp(m) / (math.exp(m) + c.T - 1), rtol=1e-13)


def _head_parts(config: Config, x: np.ndarray, w: reference.Weights, h: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference ``(A, V, Y)`` of head ``h`` on layer input ``x``."""
    xa = reference.layer_norm(x) if config.norm == "pre" else x
    a = reference.attention_probs(config, xa, w, h)
    if config.gap == "remove":
        a = a - 1.0 / config.T
    v = reference.head_values(config, xa, w, h)
    if config.heads > 1:
        dk = config.d_k
        v = v @ w.w_o[h * dk:(h + 1) * dk]
    return a, v, a @ v


def _mu(x: np.ndarray) -> float:
    return float(np.linalg.norm(x - x.mean(axis=0)) / np.linalg.norm(x))


def _overlap(a: np.ndarray) -> float:
    g = a @ a.T
    return float((g.sum() - np.trace(g)) / (len(a) * (len(a) - 1)))


def _update_moments(config: Config, x: np.ndarray, a: np.ndarray) -> list[float]:
    """Reference ``E N, E D, Var N, Var D, Cov`` over ``W_V`` of ``N = ||P Z||^2``,
    ``D = ||Z||^2``, ``Z = alpha X + A X_s W_V`` (NaN unless one head with random values)."""
    if config.heads > 1 or config.value != "random" or config.steer_mu != 0.0:
        return [math.nan] * 5
    xs = (reference.layer_norm(x) if config.norm == "pre" else x).copy()
    if config.sink:
        xs[0] *= config.sink_value
    b = a @ xs
    px, pb = x - x.mean(axis=0), b - b.mean(axis=0)
    al2, s, d = config.alpha_attn ** 2, config.sigma_v2, config.d
    lin, quad = 4 * al2 * s / d, 2 * s * s / d
    moment = [(px, pb), (x, b)]
    means = [al2 * np.sum(u * u) + s * np.sum(w * w) for u, w in moment]
    prods = [(b.T @ u, b.T @ w) for u, w in moment]
    (bpx, bpb), (bx, bb) = prods
    return means + [lin * np.sum(bpx**2) + quad * np.sum(bpb**2),
                    lin * np.sum(bx**2) + quad * np.sum(bb**2),
                    lin * np.sum(bpx * bx) + quad * np.sum(bpb * bb)]


def _cw(a: np.ndarray, v: np.ndarray, y: np.ndarray) -> np.ndarray:
    return a * (y @ v.T) / np.sum(y * y, axis=1, keepdims=True)


@pytest.mark.parametrize("config", PLANTED[:4] + [Config(T=5, d=8, heads=2, depth=2)],
                         ids=range(5))
def test_heads_kind_matches_reference(config: Config) -> None:
    got = simulate(config, 2, seed=4, kind="heads", progress=False).values
    first = 1 if config.sink else 0
    for i in range(2):
        seed = reference.rng.sample_seed(4, i)
        trace = reference_trace(config, i, 4)
        for layer in range(1, config.depth + 1):
            w = reference.draw_layer(config, seed, layer)
            x = trace.tokens[layer - 1]
            for h in range(config.heads):
                a, v, y = _head_parts(config, x, w, h)
                cw = _cw(a, v, y)
                q = slice(first, None)
                rows = np.arange(config.T)[q]
                with np.errstate(divide="ignore", invalid="ignore"):
                    ent = -np.sum(np.where(a > 0, a * np.log(np.where(a > 0, a, 1)), 0), axis=1)
                want = [a[q, 0].mean(), a[rows, rows].mean(), ent[q].mean(),
                        np.sum(a[q] ** 2, axis=1).mean(), np.mean(np.sum(y[q] ** 2, 1)) / config.d,
                        np.mean(np.sum(v[q] ** 2, 1)) / config.d, cw[q, 0].mean(),
                        cw[rows, rows].mean(), _mu(x), _mu(config.alpha_attn * x + y),
                        np.sum((y - v) ** 2) / np.sum(v * v), _overlap(a),
                        *_update_moments(config, x, a)]
                row = got[i, (layer - 1) * config.heads + h]
                np.testing.assert_allclose(row, want, rtol=1e-9, atol=1e-12)


def test_queries_kind_matches_reference() -> None:
    config = Config(T=6, d=8, depth=1, beta=2.0, sink=True, sink_value=-0.5, sink_cos=-0.4)
    got = simulate(config, 2, seed=5, kind="queries", progress=False).values
    for i in range(2):
        seed = reference.rng.sample_seed(5, i)
        x = reference.draw_input(config, seed)
        a, v, y = _head_parts(config, x, reference.draw_layer(config, seed, 1), 0)
        cw = _cw(a, v, y)
        rest = (y - a[:, :1] * v[0]) / (1 - a[:, :1])

        def cos(u, w):
            return w @ u / (np.linalg.norm(u) * np.linalg.norm(w, axis=-1))

        with np.errstate(divide="ignore", invalid="ignore"):
            ent = -np.sum(np.where(a > 0, a * np.log(np.where(a > 0, a, 1)), 0), axis=1)
        want = np.stack([a[:, 0], np.diag(a), ent, np.sum(y * y, 1) / config.d, cw[:, 0],
                         np.diag(cw), np.sum(rest * rest, 1) / config.d, cos(v[0], rest),
                         cos(v[0], y)], axis=1)
        np.testing.assert_allclose(got[i], want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("config", [
    Config(T=6, d=8, depth=2, beta=2.0, norm="post"),
    Config(T=6, d=8, depth=2, qk="sink", qk_scale=0.3, sink=True, sink_value=0.3, mlp=False,
           norm="pre", beta=1.0),
], ids=["random", "sink"])
def test_ablation_kind_matches_reference(config: Config) -> None:
    """Deletion effects rebuilt by rerunning the reference on ``T - 1`` tokens with the same
    weights, and ``scipy.stats.spearmanr`` for the rank correlations."""
    got = simulate(config, 2, seed=7, kind="ablation", progress=False).values
    T = config.T
    first = 1 if config.sink else 0
    for s in range(2):
        seed = reference.rng.sample_seed(7, s)
        x0 = reference.draw_input(config, seed)
        ws = [reference.draw_layer(config, seed, layer) for layer in range(1, config.depth + 1)]

        def run(c: Config, x: np.ndarray, ws: list = ws) -> np.ndarray:
            for w in ws:
                x = reference.block(c, x, w)[0]
            return x

        final = run(config, x0)
        change = np.zeros((T, T))
        for j in range(T):
            keep = [t for t in range(T) if t != j]
            reduced = config.replace(T=T - 1, sink=config.sink and j != 0,
                                     sink_value=config.sink_value if j != 0 else 1.0)
            change[keep, j] = np.linalg.norm(final[keep] - run(reduced, x0[keep]), axis=1)
        a, v, y = _head_parts(config, x0, ws[0], 0)
        cw = _cw(a, v, y)
        sums = np.zeros(8)
        counts = np.zeros(8)
        for i in range(first, T):
            js = [j for j in range(T) if j != i]
            preds = [cw[i, js], np.abs(cw[i, js]), a[i, js],
                     a[i, js] * np.linalg.norm(v[js], axis=1)]
            layer_effect = [a[i, j] * np.linalg.norm(v[j] - y[i]) / (1 - a[i, j]) for j in js]
            for e, effect in enumerate([layer_effect, change[i, js]]):
                for p, pred in enumerate(preds):
                    with np.errstate(invalid="ignore", divide="ignore"):
                        r = spearmanr(pred, effect).statistic
                    if np.isfinite(r):
                        sums[4 * e + p] += r
                        counts[4 * e + p] += 1
        want = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        np.testing.assert_allclose(got[s, 0], want, rtol=1e-9, atol=1e-12)


def test_layer_deletion_formula() -> None:
    """Deleting token ``j`` from a softmax row renormalises it: ``y_i - y_i^(-j) =
    A_ij (v_j - y_i) / (1 - A_ij)``, checked against recomputing the row without ``j``."""
    rng = np.random.default_rng(0)
    s, v = rng.standard_normal(7), rng.standard_normal((7, 3))
    a = np.exp(s) / np.exp(s).sum()
    y = a @ v
    for j in range(7):
        keep = np.arange(7) != j
        a_del = np.exp(s[keep]) / np.exp(s[keep]).sum()
        np.testing.assert_allclose(y - a_del @ v[keep], a[j] * (v[j] - y) / (1 - a[j]),
                                   rtol=1e-12)


def test_ablation_rejects_what_it_cannot_measure() -> None:
    for bad in [dict(attention="markov"), dict(heads=2), dict(gap="remove")]:
        with pytest.raises(ValueError, match="ablation"):
            simulate(Config(T=4, d=4, depth=1, **bad), 1, kind="ablation", progress=False)
    with pytest.raises(ValueError, match="queries"):
        simulate(Config(T=4, d=4, depth=1, sink=True), 1, kind="rows", progress=False)
