"""Plain-NumPy reference of the forward pass and the observables (tests only).

Written from the conventions in the docstrings of ``sim.config`` and ``sim.kernels``, without
calling any numba forward function of ``sim.kernels``. Only the random streams are shared with the
engine: every random array is rebuilt here from ``sim.rng.normal(shape, stream_key(sample_seed,
layer, matrix), mean, std)`` following the layout documented at the top of ``sim/kernels.py``:

- input: stream ``(layer -1, rng.INPUT)``. ``gaussian``: ``X = N`` (``T x d``); ``isometric``:
  ``N`` (``d x T``) ``= Q R`` with ``diag R > 0`` and ``X = sqrt(d) Q^T``; ``simplex``:
  ``X = C^{1/2} X_iso`` with ``C = (1 - rho) I + rho 1 1^T`` and the closed-form square root.
- layer ``l`` (``1 .. depth``; with ``shared_weights`` always ``1``): ``W_Q, W_K``
  (``heads x d x d_k``, softmax only, variance ``beta sqrt(ln T) / d``), ``G`` (``heads x T x T``,
  markov only, ``N(-s^2/2, s^2)``), with ``gap="differential"`` a second ``W_Q2, W_K2`` or
  ``G2`` from their own streams, ``W_V`` (``heads x d x d_k``, ``sigma_v2 / d``), ``W_O``
  (``d x d``, ``1 / d``, only when ``heads > 1``), ``W_1, b_1, W_2, b_2`` (only with the MLP).

Everything is computed in float64. ``reference_run`` rounds every random array to the config's
dtype first, so that a float32 engine can be compared with the same (rounded) draws.

The hooks ``score_scale`` and ``alpha_attn_factor`` exist only so that the tests can build
mutation twins of this reference (a check that cannot fail is a defect).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim import rng
from sim.config import LN_EPS, Config
from sim.kernels import OBSERVABLES, RANK_RTOL

__all__ = [
    "OBSERVABLES",
    "Trace",
    "attention",
    "attention_probs",
    "block",
    "draw_input",
    "draw_layer",
    "layer_norm",
    "mlp",
    "observables",
    "reference_run",
    "reference_trace",
    "simplex_sqrt",
]


def score_scale(d_k: int) -> float:
    """Scale of the query-key scores: ``1 / sqrt(d_k)`` (a hook for mutation twins)."""
    return 1.0 / math.sqrt(d_k)


#: multiplies ``alpha_attn`` inside the reference (1 here; a hook for mutation twins)
alpha_attn_factor = 1.0


# ----------------------------------------------------------------------------- draws

#: ``(generator, delta)`` while ``reference_trace`` runs with a perturbation, else ``None``
_perturbation: tuple[np.random.Generator, float] | None = None


def _perturb(a: np.ndarray) -> np.ndarray:
    """``a * (1 + delta u)``, ``u ~ U(-1, 1)`` elementwise, while a perturbation is active.

    Applied to every random array and to the result of every step of the forward pass, so
    that a perturbed trace mimics rounding at relative size ``delta`` in each operation."""
    if _perturbation is None:
        return a
    gen, delta = _perturbation
    return a * (1.0 + delta * gen.uniform(-1.0, 1.0, size=a.shape))


def _stream(shape: tuple[int, ...], sample_seed: np.uint64, layer: int, matrix: int,
            mean: float, std: float, dtype: np.dtype) -> np.ndarray:
    key = rng.stream_key(np.uint64(sample_seed), layer, matrix)
    return _perturb(rng.normal(shape, key, mean, std).astype(dtype).astype(np.float64))


def simplex_sqrt(T: int, rho: float) -> np.ndarray:
    """``C^{1/2}`` for ``C = (1 - rho) I + rho 1 1^T`` (``T x T``), in closed form: ``C`` has
    eigenvalue ``1 - rho + rho T`` on ``1`` and ``1 - rho`` on its complement."""
    J = np.full((T, T), 1.0 / T)
    return math.sqrt(1.0 - rho) * (np.eye(T) - J) + math.sqrt(1.0 - rho + rho * T) * J


def draw_input(config: Config, sample_seed: np.uint64, dtype: np.dtype | None = None
               ) -> np.ndarray:
    """Input tokens ``X_0`` (``T x d``, float64 values rounded through ``dtype``)."""
    dtype = np.dtype(config.dtype if dtype is None else dtype)
    T, d = config.T, config.d
    key = rng.stream_key(np.uint64(sample_seed), -1, rng.INPUT)
    if config.input == "gaussian":
        x = rng.normal((T, d), key).astype(dtype).astype(np.float64)
        return _perturb(plant_sink(config, x) if config.sink else x)
    n = rng.normal((d, T), key)
    q, r = np.linalg.qr(n, mode="reduced")  # q: d x T
    signs = np.where(np.diag(r) >= 0, 1.0, -1.0)
    x = math.sqrt(d) * (q * signs).T  # T x d, X X^T = d I
    if config.input == "simplex":
        x = simplex_sqrt(T, config.rho) @ x
    if config.sink:
        x = plant_sink(config, x)
    return _perturb(x.astype(dtype).astype(np.float64))


def plant_sink(config: Config, x: np.ndarray) -> np.ndarray:
    """Token 0 becomes ``sqrt(d) (b e_1 + sqrt(1 - b^2) e_2)``; tokens ``t >= 1`` keep their
    coordinates ``2 ..``, rescaled to norm ``sqrt(d (1 - a^2))``, and get ``a sqrt(d)`` on
    ``e_1`` and 0 on ``e_2``."""
    d, a, b = config.d, config.sink_align, config.sink_cos
    x = x.copy()
    rest = x[1:, 2:]
    x[1:, 2:] = rest * np.sqrt(d * (1 - a * a)) / np.linalg.norm(rest, axis=1, keepdims=True)
    x[1:, 0] = a * np.sqrt(d)
    x[1:, 1] = 0.0
    x[0] = 0.0
    x[0, :2] = np.sqrt(d) * np.array([b, np.sqrt(1 - b * b)])
    return x


def planted_qk(config: Config) -> np.ndarray:
    """The planted ``W_QK`` (``d x d``) of ``qk`` = sink / diagonal / given."""
    d, c = config.d, config.qk_scale
    if config.qk == "sink":
        return c * np.outer(np.eye(d)[0], np.eye(d)[1])
    if config.qk == "diagonal":
        return c * np.eye(d)
    return np.asarray(config.qk_matrix).reshape(d, d)


@dataclass
class Weights:
    """The random arrays of one layer (``None`` where the config does not use them)."""

    w_v: np.ndarray
    w_q: np.ndarray | None = None
    w_k: np.ndarray | None = None
    logits: np.ndarray | None = None
    w_q2: np.ndarray | None = None
    w_k2: np.ndarray | None = None
    logits2: np.ndarray | None = None
    w_o: np.ndarray | None = None
    w_1: np.ndarray | None = None
    b_1: np.ndarray | None = None
    w_2: np.ndarray | None = None
    b_2: np.ndarray | None = None


def draw_layer(config: Config, sample_seed: np.uint64, layer: int,
               dtype: np.dtype | None = None) -> Weights:
    """The weights of block ``layer`` (``1 .. depth``), honouring ``shared_weights``."""
    dtype = np.dtype(config.dtype if dtype is None else dtype)
    key_layer = 1 if config.shared_weights else layer
    T, d, h, dk, dff = config.T, config.d, config.heads, config.d_k, config.hidden

    def draw(shape, matrix, mean, std):
        return _stream(shape, sample_seed, key_layer, matrix, mean, std, dtype)

    w = Weights(w_v=draw((h, d, dk), rng.W_V, 0.0, math.sqrt(config.sigma_v2 / d)))
    w.w_v = value_treatment(config, w.w_v)
    if config.attention == "softmax" and config.qk == "random":
        qk_std = math.sqrt(config.beta * math.sqrt(math.log(T)) / d)
        w.w_q = draw((h, d, dk), rng.W_Q, 0.0, qk_std)
        w.w_k = draw((h, d, dk), rng.W_K, 0.0, qk_std)
        if config.gap == "differential":
            w.w_q2 = draw((h, d, dk), rng.W_Q2, 0.0, qk_std)
            w.w_k2 = draw((h, d, dk), rng.W_K2, 0.0, qk_std)
    elif config.attention == "markov":
        s = config.markov_s
        w.logits = draw((h, T, T), rng.LOGITS, -0.5 * s * s, s)
        if config.gap == "differential":
            w.logits2 = draw((h, T, T), rng.LOGITS2, -0.5 * s * s, s)
    if h > 1:
        w.w_o = draw((d, d), rng.W_O, 0.0, math.sqrt(1.0 / d))
    if config.mlp:
        sb = math.sqrt(config.sigma_b2)
        w.w_1 = draw((d, dff), rng.W_1, 0.0, math.sqrt(config.sigma_w2 / d))
        w.b_1 = draw((dff,), rng.B_1, 0.0, sb)
        w.w_2 = draw((dff, d), rng.W_2, 0.0, math.sqrt(config.sigma_w2 / dff))
        w.b_2 = draw((d,), rng.B_2, 0.0, sb)
    return w


def value_treatment(config: Config, w_v: np.ndarray) -> np.ndarray:
    """``W_V`` of one head after ``value`` and steering: ``F = W_V^T`` is ``(G + G^T)/sqrt 2``
    (symmetric), the given matrix, plus ``steer_mu u u^T``."""
    w_v = w_v.copy()
    d = config.d
    if config.value == "symmetric":
        w_v[0] = (w_v[0] + w_v[0].T) / math.sqrt(2.0)
    elif config.value == "given":
        w_v[0] = np.asarray(config.value_matrix).reshape(d, d).T
    if config.steer_mu != 0.0:
        u = np.zeros(d)
        u[0] = 1.0
        if config.steer_u:
            u = np.asarray(config.steer_u) / np.linalg.norm(config.steer_u)
        w_v[0] = w_v[0] + config.steer_mu * np.outer(u, u)
    return w_v


# ----------------------------------------------------------------------------- forward pass

def layer_norm(x: np.ndarray) -> np.ndarray:
    """Each row to mean 0 and population variance 1 (so ``|x_t|^2 = d``), no affine params."""
    mu = x.mean(axis=1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=1, keepdims=True)
    return _perturb((x - mu) / np.sqrt(var + LN_EPS))


def l2_norm(x: np.ndarray) -> np.ndarray:
    """Each row to ``|x|^2 = d`` without centring."""
    return _perturb(x / np.sqrt((x * x).mean(axis=1, keepdims=True) + LN_EPS))


def _mask(T: int, causal: bool) -> np.ndarray:
    """``True`` where token ``t`` may attend to ``s``."""
    if causal:
        return np.tril(np.ones((T, T), dtype=bool))
    return np.ones((T, T), dtype=bool)


def _softmax_rows(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    s = np.where(allowed, scores, -np.inf)
    s = s - s.max(axis=1, keepdims=True)
    e = np.exp(s)
    return _perturb(e / e.sum(axis=1, keepdims=True))


def attention_probs(config: Config, xa: np.ndarray, w: Weights, head: int,
                    second: bool = False) -> np.ndarray:
    """Attention probabilities of ``head`` (``T x T``, rows sum to 1, before gap removal);
    ``second`` selects the differential attention's second draw ``A_2``."""
    T = config.T
    allowed = _mask(T, config.causal)
    if config.attention == "softmax" and config.qk != "random":
        return _softmax_rows(_perturb(xa @ planted_qk(config) @ xa.T), allowed)
    if config.attention == "softmax":
        wq, wk = (w.w_q2, w.w_k2) if second else (w.w_q, w.w_k)
        q, k = _perturb(xa @ wq[head]), _perturb(xa @ wk[head])
        scores = _perturb(q @ k.T * score_scale(config.d_k))
        return _softmax_rows(scores, allowed)
    if config.attention == "markov":
        return _softmax_rows((w.logits2 if second else w.logits)[head], allowed)
    if config.attention == "uniform":
        return allowed / allowed.sum(axis=1, keepdims=True)
    return np.eye(T)  # identity


def _row_entropy(a: np.ndarray) -> np.ndarray:
    safe = np.where(a > 0, a, 1.0)
    return -np.sum(np.where(a > 0, a * np.log(safe), 0.0), axis=1)


def head_values(config: Config, xa: np.ndarray, w: Weights, h: int) -> np.ndarray:
    """``xa W_V^h`` (``T x d_k``), token 0's row times ``sink_value`` with a sink."""
    v = _perturb(xa @ w.w_v[h])
    if config.sink:
        v[0] *= config.sink_value
    return v


def attention(config: Config, xa: np.ndarray, w: Weights) -> tuple[np.ndarray, float, float]:
    """Multi-head attention output (``T x d``), mean row entropy (nats) and mean
    ``sum_s A_ts^2`` over heads and rows (of ``A`` before gap removal)."""
    T = config.T
    outs, ents, iprs = [], [], []
    for h in range(config.heads):
        a = attention_probs(config, xa, w, h)
        ents.append(_row_entropy(a))
        iprs.append(np.sum(a * a, axis=1))
        if config.gap == "remove":
            a = _perturb(a - np.ones((T, T)) / T)
        elif config.gap == "differential":
            a = _perturb(a - config.diff_lambda * attention_probs(config, xa, w, h, True))
        outs.append(_perturb(a @ head_values(config, xa, w, h)))
    out = np.concatenate(outs, axis=1)
    if config.heads > 1:
        out = _perturb(out @ w.w_o)
    return out, float(np.mean(ents)), float(np.mean(iprs))


def mlp(z: np.ndarray, w: Weights) -> np.ndarray:
    """``relu(z W_1 + b_1) W_2 + b_2``."""
    hidden = np.maximum(_perturb(z @ w.w_1 + w.b_1), 0.0)
    return _perturb(hidden @ w.w_2 + w.b_2)


def block(config: Config, x: np.ndarray, w: Weights) -> tuple[np.ndarray, float, float]:
    """One block (post / pre / none / l2), returning ``(x', entropy, ipr)``."""
    aa = config.alpha_attn * alpha_attn_factor
    am = config.alpha_mlp
    if config.norm in ("post", "l2"):
        normalise = l2_norm if config.norm == "l2" else layer_norm
        y, ent, ipr = attention(config, x, w)
        z = normalise(_perturb(aa * x + y))
        if config.mlp:
            z = normalise(_perturb(am * z + mlp(z, w)))
        return z, ent, ipr
    pre = config.norm == "pre"
    y, ent, ipr = attention(config, layer_norm(x) if pre else x, w)
    z = _perturb(aa * x + y)
    if config.mlp:
        z = _perturb(am * z + mlp(layer_norm(z) if pre else z, w))
    return z, ent, ipr


# ----------------------------------------------------------------------------- observables

def observables(x: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """Observables of tokens ``x`` (``T x d``) except entropy/ipr, and the singular values.

    - ``q = mean_t |x_t|^2 / d``; ``norm = ||X||_F^2 / (T d)``;
    - ``p = mean_{t != s} x_t . x_s / d``; ``cosine = mean_{t != s} cos(x_t, x_s)`` (NaN if a
      token is 0);
    - ``stable_rank = sum sigma^2 / sigma_max^2``; ``numerical_rank = #{sigma > RANK_RTOL
      sigma_max}``; ``gram_stable_rank = sr(X X^T) = sum sigma^4 / sigma_max^4``;
      ``consensus_distance = ||X - 1 xbar^T||_F / ||X||_F`` (NaN / 0 / NaN for
      ``X = 0``)."""
    T, d = x.shape
    sq = np.sum(x * x, axis=1)
    gram = x @ x.T
    off = ~np.eye(T, dtype=bool)
    out: dict[str, float] = {}
    out["q"] = float(np.mean(sq) / d)
    out["norm"] = float(np.sum(x * x) / (T * d))
    out["p"] = float(np.mean(gram[off]) / d)
    if np.any(sq == 0):
        out["cosine"] = math.nan
    else:
        u = x / np.sqrt(sq)[:, None]
        out["cosine"] = float(np.mean((u @ u.T)[off]))
    sv = np.linalg.svd(x, compute_uv=False)
    fro2 = float(np.sum(x * x))
    if fro2 == 0.0:
        out["stable_rank"] = math.nan
        out["gram_stable_rank"] = math.nan
        out["numerical_rank"] = 0.0
        out["consensus_distance"] = math.nan
    else:
        out["stable_rank"] = float(np.sum(sv ** 2) / sv[0] ** 2)
        out["gram_stable_rank"] = float(np.sum(sv ** 4) / sv[0] ** 4)
        out["numerical_rank"] = float(np.sum(sv > RANK_RTOL * sv[0]))
        centred = x - x.mean(axis=0, keepdims=True)
        out["consensus_distance"] = float(np.linalg.norm(centred) / np.linalg.norm(x))
    return out, sv


@dataclass
class Trace:
    """Per-layer tokens, observables and singular values of one reference sample."""

    values: np.ndarray  # (depth + 1) x len(OBSERVABLES)
    tokens: list[np.ndarray] = field(default_factory=list)
    singular_values: list[np.ndarray] = field(default_factory=list)


def reference_trace(config: Config, sample_index: int, seed: int, perturbation: float = 0.0,
                    perturbation_seed: int = 0) -> Trace:
    """The forward pass of sample ``sample_index`` of run ``seed``, layer by layer.

    With ``perturbation = delta > 0`` every random array and every intermediate result is
    multiplied elementwise by ``1 + delta u``, ``u ~ U(-1, 1)`` (from ``perturbation_seed``), a
    Monte-Carlo-arithmetic model of rounding: comparing with the unperturbed trace measures how
    strongly each output amplifies relative errors of the steps, i.e. how far rounding alone can
    move it (its empirical condition number)."""
    global _perturbation
    if perturbation > 0.0:
        _perturbation = (np.random.default_rng(perturbation_seed), perturbation)
    try:
        return _trace(config, sample_index, seed)
    finally:
        _perturbation = None


def _trace(config: Config, sample_index: int, seed: int) -> Trace:
    s = rng.sample_seed(seed, sample_index)
    x = draw_input(config, s)
    values = np.full((config.depth + 1, len(OBSERVABLES)), np.nan)
    trace = Trace(values)

    def record(layer: int, x: np.ndarray, ent: float, ipr: float) -> None:
        obs, sv = observables(x)
        obs["entropy"], obs["ipr"] = ent, ipr
        values[layer] = [obs[name] for name in OBSERVABLES]
        trace.tokens.append(x)
        trace.singular_values.append(sv)

    record(0, x, math.nan, math.nan)
    for layer in range(1, config.depth + 1):
        x, ent, ipr = block(config, x, draw_layer(config, s, layer))
        record(layer, x, ent, ipr)
    return trace


def reference_run(config: Config, sample_index: int, seed: int) -> np.ndarray:
    """Observables (``(depth + 1) x len(OBSERVABLES)``, float64) of one sample; row ``l`` is
    layer ``l``; entropy and ipr are NaN at layer 0."""
    return reference_trace(config, sample_index, seed).values
