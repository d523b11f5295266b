"""numba kernels: one deep random transformer per Monte-Carlo sample.

A config is passed to the kernels as two arrays (``encode``): integers ``ip`` (slots ``I_*``) and
reals ``fp`` (slots ``F_*``); the forward pass runs in the dtype of the prototype array ``proto``.
Observables are always computed in float64. Conventions are those of ``sim.config``.

Random arrays are drawn from counter-based streams (``sim.rng``), keyed by
``(sample_seed, layer, matrix)``; with ``shared_weights`` every layer uses the keys of layer 1.
Layout of the draws (the NumPy reference in ``tests/`` rebuilds the same arrays):

- input (layer 0): ``gaussian``: ``X = N`` (``T x d``); ``isometric``: ``N`` is ``d x T``,
  ``Q R = N`` with ``diag R > 0``, ``X = sqrt(d) Q^T``; ``simplex``: ``X = C^{1/2} X_iso`` with
  ``C = (1 - rho) I + rho 1 1^T``.
- per layer: ``W_Q, W_K, W_V`` are ``heads x d x d_k`` (one stream each), ``W_O`` is ``d x d``,
  ``W_1`` is ``d x d_ff``, ``b_1`` is ``d_ff``, ``W_2`` is ``d_ff x d``, ``b_2`` is ``d``,
  ``markov`` logits ``G`` are ``heads x T x T``; with ``gap="differential"`` the second
  attention draws ``W_Q2, W_K2`` (or ``G2``) the same way from their own streams.

Planted patterns (``qk != "random"``) draw no ``W_Q, W_K``: ``W_Q`` holds the planted ``W_QK``
(``1 x d x d``, shared by all heads). ``sink=True`` rewrites the drawn input (``_plant_sink``).

``gap="remove"`` subtracts ``1/T`` from every entry, masked ones included, exactly as
``A - 1 1^T/T`` says; with ``causal=True`` the gap-removed matrix is therefore not causal.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange
from numba.extending import overload

from sim import fastmath, linalg, rng
from sim.config import ATTENTIONS, GAPS, INPUTS, LN_EPS, NORMS, QKS, VALUES, Config

# Bump when a kernel changes its numbers: it is part of every cache key.
KERNEL_VERSION = "15"

OBSERVABLES = ("cosine", "q", "p", "stable_rank", "numerical_rank", "consensus_distance",
               "entropy", "ipr", "norm", "gram_stable_rank")
(O_COSINE, O_Q, O_P, O_STABLE_RANK, O_NUMERICAL_RANK, O_CONSENSUS, O_ENTROPY, O_IPR,
 O_NORM, O_GRAM_STABLE_RANK) = range(len(OBSERVABLES))
N_OBS = len(OBSERVABLES)

#: numerical rank counts singular values above ``RANK_RTOL * sigma_max`` (computed from the
#: float64 Gram matrix, whose eigenvalues resolve about ``sqrt(n * eps)`` of ``sigma_max``).
RANK_RTOL = 1e-5
#: ``observe``'s spectral shortcut (``_spectral``): Gram matrices of side ``n >= LANCZOS_MIN_N``
#: get ``lambda_max`` by Lanczos, converged when its residual bound is ``<= LANCZOS_RTOL``
#: relative (checked every ``LANCZOS_CHECK_EVERY`` steps, at most ``LANCZOS_MAX_STEPS``), and
#: the numerical rank from the inertia of ``G - RANK_RTOL^2 lambda_max I``. That count and
#: ``eigvalsh``'s can differ only for an eigenvalue within rounding (about ``n eps lambda_max``)
#: of the cut, where either answer is a rounding artefact. From ``n = 32`` a converged Lanczos
#: and a Cholesky certificate cost less than ``eigvalsh`` (n = 32: 31 us against 44; n = 64: 46
#: against 148; one core). Collapsing tokens converge in 8 to 16 steps; Gaussian input (a flat
#: Marchenko-Pastur edge) needs 32 to 72 at n = 64 to 256 (0.1 to 1.3 ms against 0.19 to 3.2 ms
#: for ``eigvalsh`` at n = 64 and 256), hence up to 128 steps.
LANCZOS_MIN_N = 32
LANCZOS_RTOL = 1e-12
LANCZOS_MAX_STEPS = 128
LANCZOS_CHECK_EVERY = 8

(I_T, I_D, I_HEADS, I_DEPTH, I_DFF, I_NORM, I_MLP, I_ATTENTION, I_GAP, I_SHARED, I_CAUSAL,
 I_INPUT, I_VALUE, I_QK, I_SINK) = range(15)
(F_BETA, F_SIGMA_V2, F_SIGMA_W2, F_SIGMA_B2, F_ALPHA_ATTN, F_ALPHA_MLP, F_MARKOV_S, F_RHO,
 F_DIFF_LAMBDA, F_STEER_MU, F_QK_SCALE, F_SINK_ALIGN, F_SINK_COS, F_SINK_VALUE) = range(14)
#: ``fp`` holds ``value_matrix`` (``d*d``, value="given" only), the unit steering vector ``u``
#: (``d``, steer_mu != 0 only) and ``qk_matrix`` (``d*d``, qk="given" only) after its scalar slots
F_VECTORS = 14
NORM_POST, NORM_PRE, NORM_NONE, NORM_L2 = range(4)
VALUE_RANDOM, VALUE_SYMMETRIC, VALUE_GIVEN = range(3)
ATT_SOFTMAX, ATT_MARKOV, ATT_UNIFORM, ATT_IDENTITY = range(4)
INPUT_ISOMETRIC, INPUT_SIMPLEX, INPUT_GAUSSIAN = range(3)
GAP_KEEP, GAP_REMOVE, GAP_DIFFERENTIAL = range(3)
QK_RANDOM, QK_SINK, QK_DIAGONAL, QK_GIVEN = range(4)


def encode(config: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ip, fp, proto)``: the config as kernel arguments."""
    ip = np.array([config.T, config.d, config.heads, config.depth, config.hidden,
                   NORMS.index(config.norm), int(config.mlp), ATTENTIONS.index(config.attention),
                   GAPS.index(config.gap), int(config.shared_weights), int(config.causal),
                   INPUTS.index(config.input), VALUES.index(config.value),
                   QKS.index(config.qk), int(config.sink)], dtype=np.int64)
    fp = np.array([config.beta, config.sigma_v2, config.sigma_w2, config.sigma_b2,
                   config.alpha_attn, config.alpha_mlp, config.markov_s, config.rho,
                   config.diff_lambda, config.steer_mu, config.qk_scale, config.sink_align,
                   config.sink_cos, config.sink_value],
                  dtype=np.float64)
    vectors = [np.asarray(config.value_matrix, dtype=np.float64)]
    if config.steer_mu != 0.0:
        vectors.append(steering_direction(config))
    vectors.append(np.asarray(config.qk_matrix, dtype=np.float64))
    fp = np.concatenate([fp] + vectors)
    proto = np.zeros(0, dtype=np.dtype(config.dtype))
    return ip, fp, proto


def steering_direction(config: Config) -> np.ndarray:
    """The unit steering vector ``u`` (``d``): ``steer_u`` normalised, ``e_1`` when empty."""
    if not config.steer_u:
        u = np.zeros(config.d)
        u[0] = 1.0
        return u
    u = np.asarray(config.steer_u, dtype=np.float64)
    return u / np.linalg.norm(u)


# ----------------------------------------------------------------------------- draws

@numba.njit(cache=True)
def _normal(shape, seed, layer, matrix, mean, std, proto):
    """``mean + std * N(0, 1)`` of stream ``(seed, layer, matrix)`` in the dtype of ``proto``:
    each value computed in float64 and rounded once on store (the same bits as a float64 array
    cast with ``astype``)."""
    out = np.empty(shape, dtype=proto.dtype)
    rng.fill_normal(out, rng.stream_key(seed, layer, matrix), mean, std)
    return out


@numba.njit(cache=True)
def draw_input(ip, fp, seed, proto):
    """Input tokens ``X_0`` (``T x d``) of the sample with 64-bit ``seed``."""
    T, d = ip[I_T], ip[I_D]
    kind = ip[I_INPUT]
    if kind == INPUT_GAUSSIAN:
        x = _normal((T, d), seed, -1, rng.INPUT, 0.0, 1.0, proto)
        if ip[I_SINK]:
            x = _plant_sink(x.astype(np.float64), fp).astype(proto.dtype)
        return x
    g = np.empty((d, T), dtype=np.float64)
    rng.fill_normal(g, rng.stream_key(seed, -1, rng.INPUT), 0.0, 1.0)
    q, r = np.linalg.qr(g)
    x = np.empty((T, d), dtype=np.float64)
    scale = math.sqrt(d)
    for t in range(T):
        sgn = scale if r[t, t] >= 0 else -scale
        for j in range(d):
            x[t, j] = sgn * q[j, t]
    if kind == INPUT_SIMPLEX:
        rho = fp[F_RHO]
        a = math.sqrt(1.0 - rho)
        b = math.sqrt(1.0 - rho + rho * T)
        mean = np.zeros(d)
        for t in range(T):
            mean += x[t]
        mean /= T
        for t in range(T):
            x[t] = a * (x[t] - mean) + b * mean
    if ip[I_SINK]:
        x = _plant_sink(x, fp)
    return x.astype(proto.dtype)


@numba.njit(cache=True)
def _plant_sink(x, fp):
    """Token 0 becomes the sink ``sqrt(d) (b u + sqrt(1 - b^2) e)``; tokens ``t >= 1`` get
    ``x_t . u = a sqrt(d)``, ``x_t . e = 0`` and their other coordinates rescaled so that
    ``|x_t|^2 = d`` (``u = e_1``, ``e = e_2``, ``a = sink_align``, ``b = sink_cos``; float64,
    in place)."""
    T, d = x.shape
    a, b = fp[F_SINK_ALIGN], fp[F_SINK_COS]
    root = math.sqrt(d)
    for t in range(1, T):
        rest = 0.0
        for j in range(2, d):
            rest += x[t, j] * x[t, j]
        scale = math.sqrt(d * (1.0 - a * a) / rest) if rest > 0.0 else 0.0
        for j in range(2, d):
            x[t, j] *= scale
        x[t, 0] = a * root
        x[t, 1] = 0.0
    for j in range(d):
        x[0, j] = 0.0
    x[0, 0] = b * root
    x[0, 1] = math.sqrt(max(1.0 - b * b, 0.0)) * root
    return x


@numba.njit(cache=True)
def draw_layer(ip, fp, seed, layer, proto):
    """Weights of one layer: ``(W_Q, W_K, W_V, W_O, W_1, b_1, W_2, b_2, G, W_Q2, W_K2, G2)``;
    unused ones are empty. Shapes as in the module docstring."""
    T, d, heads, dff = ip[I_T], ip[I_D], ip[I_HEADS], ip[I_DFF]
    dk = d // heads
    att = ip[I_ATTENTION]
    empty3 = np.zeros((0, 0, 0), dtype=proto.dtype)
    empty2 = np.zeros((0, 0), dtype=proto.dtype)
    empty1 = np.zeros(0, dtype=proto.dtype)
    wq, wk, g = empty3, empty3, empty3
    wq2, wk2, g2 = empty3, empty3, empty3
    second = ip[I_GAP] == GAP_DIFFERENTIAL
    if att == ATT_SOFTMAX and ip[I_QK] != QK_RANDOM:
        wq = planted_qk(ip, fp, proto)
        if second:
            wq2 = wq
    elif att == ATT_SOFTMAX:
        qk_std = math.sqrt(fp[F_BETA] * math.sqrt(math.log(T)) / d)
        wq = _normal((heads, d, dk), seed, layer, rng.W_Q, 0.0, qk_std, proto)
        wk = _normal((heads, d, dk), seed, layer, rng.W_K, 0.0, qk_std, proto)
        if second:
            wq2 = _normal((heads, d, dk), seed, layer, rng.W_Q2, 0.0, qk_std, proto)
            wk2 = _normal((heads, d, dk), seed, layer, rng.W_K2, 0.0, qk_std, proto)
    elif att == ATT_MARKOV:
        s = fp[F_MARKOV_S]
        g = _normal((heads, T, T), seed, layer, rng.LOGITS, -0.5 * s * s, s, proto)
        if second:
            g2 = _normal((heads, T, T), seed, layer, rng.LOGITS2, -0.5 * s * s, s, proto)
    wv = _normal((heads, d, dk), seed, layer, rng.W_V, 0.0, math.sqrt(fp[F_SIGMA_V2] / d), proto)
    _value_treatment(wv, ip, fp)
    wo = empty2
    if heads > 1:
        wo = _normal((d, d), seed, layer, rng.W_O, 0.0, math.sqrt(1.0 / d), proto)
    w1, b1, w2, b2 = empty2, empty1, empty2, empty1
    if ip[I_MLP]:
        sb = math.sqrt(fp[F_SIGMA_B2])
        w1 = _normal((d, dff), seed, layer, rng.W_1, 0.0, math.sqrt(fp[F_SIGMA_W2] / d), proto)
        b1 = _normal((dff,), seed, layer, rng.B_1, 0.0, sb, proto)
        w2 = _normal((dff, d), seed, layer, rng.W_2, 0.0, math.sqrt(fp[F_SIGMA_W2] / dff), proto)
        b2 = _normal((d,), seed, layer, rng.B_2, 0.0, sb, proto)
    return wq, wk, wv, wo, w1, b1, w2, b2, g, wq2, wk2, g2


@numba.njit(cache=True)
def planted_qk(ip, fp, proto):
    """The planted ``W_QK`` (``1 x d x d``): ``qk_scale e_1 e_2^T`` (sink), ``qk_scale I``
    (diagonal) or ``qk_matrix`` (given)."""
    d = ip[I_D]
    c = fp[F_QK_SCALE]
    w = np.zeros((1, d, d), dtype=proto.dtype)
    mode = ip[I_QK]
    if mode == QK_SINK:
        w[0, 0, 1] = c
    elif mode == QK_DIAGONAL:
        for i in range(d):
            w[0, i, i] = c
    else:
        off = fp.size - d * d
        for i in range(d):
            for j in range(d):
                w[0, i, j] = fp[off + i * d + j]
    return w


@numba.njit(cache=True)
def _value_treatment(wv, ip, fp):
    """Apply ``value`` and steering to ``W_V`` (one head, ``d x d``, ``F = W_V^T``) in place."""
    d = ip[I_D]
    mode = ip[I_VALUE]
    if mode == VALUE_SYMMETRIC:
        w = wv[0].astype(np.float64)
        inv = 1.0 / math.sqrt(2.0)
        for i in range(d):
            for j in range(d):
                wv[0, i, j] = (w[i, j] + w[j, i]) * inv
    elif mode == VALUE_GIVEN:
        for i in range(d):
            for j in range(d):
                wv[0, i, j] = fp[F_VECTORS + j * d + i]  # W_V[i, j] = F[j, i]
    mu = fp[F_STEER_MU]
    if mu != 0.0:
        off = F_VECTORS + (d * d if mode == VALUE_GIVEN else 0)
        for i in range(d):
            for j in range(d):
                wv[0, i, j] = wv[0, i, j] + mu * fp[off + i] * fp[off + j]


# ----------------------------------------------------------------------------- forward pass

@numba.njit(cache=True)
def layer_norm(x):
    """Row-wise LayerNorm without affine parameters, to ``|x_t|^2 = d`` (new array). Mean and
    variance are float64 sums: one chain per row (float64 ``x``), or 8 lanes
    (``fastmath.moments32``, float32 ``x``); the result is rounded once to the dtype of ``x``."""
    return _layer_norm_dtype(x)


def _layer_norm_dtype(x):
    """``_layer_norm32`` or ``_layer_norm64`` by the dtype of ``x`` (numba: at compile time)."""
    raise NotImplementedError("numba only")


@overload(_layer_norm_dtype)
def _layer_norm_dtype_overload(x):
    if x.dtype == numba.types.float32 and x.layout == "C":
        return lambda x: _layer_norm32(x)
    return lambda x: _layer_norm64(x)


@numba.njit(cache=True)
def _layer_norm32(x):
    """``layer_norm`` of a C-contiguous float32 ``x``."""
    T, d = x.shape
    out = np.empty_like(x)
    d8 = d - d % 8
    for t in range(T):
        row = x[t]
        s, _ = fastmath.moments32(row, d8, 0.0)
        for j in range(d8, d):
            s += np.float64(row[j])
        mu = s / d
        _, var = fastmath.moments32(row, d8, mu)
        for j in range(d8, d):
            v = np.float64(row[j]) - mu
            var += v * v
        inv = 1.0 / math.sqrt(var / d + LN_EPS)
        for j in range(d):
            out[t, j] = (np.float64(row[j]) - mu) * inv
    return out


@numba.njit(cache=True)
def _layer_norm64(x):
    """``layer_norm`` of a float64 ``x`` (or any layout)."""
    T, d = x.shape
    out = np.empty_like(x)
    for t in range(T):
        mu = 0.0
        for j in range(d):
            mu += x[t, j]
        mu /= d
        var = 0.0
        for j in range(d):
            v = x[t, j] - mu
            var += v * v
        inv = 1.0 / math.sqrt(var / d + LN_EPS)
        for j in range(d):
            out[t, j] = (x[t, j] - mu) * inv
    return out


@numba.njit(cache=True)
def l2_norm(x):
    """Each row scaled to ``|x_t|^2 = d`` without centring (new array; epsilon ``LN_EPS``)."""
    T, d = x.shape
    out = np.empty_like(x)
    for t in range(T):
        sq = 0.0
        for j in range(d):
            sq += x[t, j] * x[t, j]
        inv = 1.0 / math.sqrt(sq / d + LN_EPS)
        for j in range(d):
            out[t, j] = x[t, j] * inv
    return out


@numba.njit(cache=True)
def _normalise(x, norm):
    """The post-placement normaliser: LayerNorm (``post``) or L2 (``l2``)."""
    return l2_norm(x) if norm == NORM_L2 else layer_norm(x)


@numba.njit(cache=True)
def _scale_inplace(a, c):
    """``a *= c`` element by element, keeping the dtype of ``a``."""
    flat = a.reshape(a.size)
    for i in range(flat.size):
        flat[i] = flat[i] * c


@numba.njit(cache=True)
def _shift_inplace(a, c):
    """``a += c`` element by element, keeping the dtype of ``a``."""
    flat = a.reshape(a.size)
    for i in range(flat.size):
        flat[i] = flat[i] + c


@numba.njit(cache=True)
def _axpy(c, x, y):
    """``c * x + y`` in the dtype of ``y`` (new array)."""
    out = np.empty_like(y)
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            out[i, j] = c * x[i, j] + y[i, j]
    return out


@numba.njit(cache=True)
def _exp_shifted_row(row, n, m, x):
    """``x[j] = row[j] - m`` and ``row[j] = exp(x[j])`` for ``j < n`` (``x`` float64); a
    separate loop without reductions so that LLVM SIMD-vectorises ``fastmath.exp_nonpos``."""
    for j in range(n):
        v = np.float64(row[j]) - m
        x[j] = v
        row[j] = fastmath.exp_nonpos(v)


@numba.njit(cache=True)
def _exp_shifted_row32(row, n, m, x):
    """``_exp_shifted_row`` for float32 ``row`` and ``x``, all in float32: ``x[j] = row[j] - m``
    (``m`` the float32 row maximum; the difference rounded to float32) and
    ``row[j] = fastmath.exp_nonpos32(x[j])``."""
    for j in range(n):
        v = row[j] - m
        x[j] = v
        row[j] = fastmath.exp_nonpos32(v)


def _row_softmax_dtype(s, causal):
    """``_row_softmax`` by the dtype of ``s`` (numba: chosen at compile time)."""
    raise NotImplementedError("numba only")


@overload(_row_softmax_dtype)
def _row_softmax_dtype_overload(s, causal):
    if s.dtype == numba.types.float32 and s.layout == "C":
        return lambda s, causal: _row_softmax32(s, causal)
    return lambda s, causal: _row_softmax64(s, causal)


@numba.njit(cache=True)
def _row_max(row, n):
    """``max(row[:n])`` (float64; ``-inf`` if ``n == 0``); four independent lanes."""
    m0 = m1 = m2 = m3 = -np.inf
    n4 = n - n % 4
    for j in range(0, n4, 4):
        m0 = max(m0, np.float64(row[j]))
        m1 = max(m1, np.float64(row[j + 1]))
        m2 = max(m2, np.float64(row[j + 2]))
        m3 = max(m3, np.float64(row[j + 3]))
    for j in range(n4, n):
        m0 = max(m0, np.float64(row[j]))
    return max(max(m0, m1), max(m2, m3))


@numba.njit(cache=True)
def _row_sums(row, x, n):
    """``(sum_j e_j, sum_j e_j x_j)`` over ``j < n`` with ``e = row`` (float64); four partial
    sums (lane ``j % 4``) combined as ``(s0 + s1) + (s2 + s3)``: a fixed order, so the same
    bits on every run, with four independent add chains."""
    z0 = z1 = z2 = z3 = 0.0
    y0 = y1 = y2 = y3 = 0.0
    n4 = n - n % 4
    for j in range(0, n4, 4):
        e0, e1 = np.float64(row[j]), np.float64(row[j + 1])
        e2, e3 = np.float64(row[j + 2]), np.float64(row[j + 3])
        z0 += e0
        z1 += e1
        z2 += e2
        z3 += e3
        y0 += e0 * x[j]
        y1 += e1 * x[j + 1]
        y2 += e2 * x[j + 2]
        y3 += e3 * x[j + 3]
    for j in range(n4, n):
        e = np.float64(row[j])
        z0 += e
        y0 += e * x[j]
    return (z0 + z1) + (z2 + z3), (y0 + y1) + (y2 + y3)


@numba.njit(cache=True)
def _row_normalise(row, n, inv):
    """``row[j] *= inv`` for ``j < n``; returns ``sum_j row[j]^2`` (float64, four lanes as in
    ``_row_sums``)."""
    q0 = q1 = q2 = q3 = 0.0
    n4 = n - n % 4
    for j in range(0, n4, 4):
        a0, a1 = row[j] * inv, row[j + 1] * inv
        a2, a3 = row[j + 2] * inv, row[j + 3] * inv
        row[j] = a0
        row[j + 1] = a1
        row[j + 2] = a2
        row[j + 3] = a3
        q0 += a0 * a0
        q1 += a1 * a1
        q2 += a2 * a2
        q3 += a3 * a3
    for j in range(n4, n):
        a = row[j] * inv
        row[j] = a
        q0 += a * a
    return (q0 + q1) + (q2 + q3)


@numba.njit(cache=True)
def _row_softmax(s, causal):
    """Max-shifted row softmax of scores ``s`` (``T x T``), in place; returns the summed row
    entropies (nats) and summed ``sum_s A_ts^2``. Row maxima, sums and entropies are float64
    reductions (``_row_max``, ``_row_sums``: four partial sums). float64 ``s``: ``exp`` is
    ``fastmath.exp_nonpos`` (<= 1 ulp from ``math.exp``; shifted scores below ``-708`` give
    exactly 0) (``_row_softmax64``). C-contiguous float32 ``s``: shifted scores and ``exp`` in
    float32 (``fastmath.exp_nonpos32``, <= 1 float32 ulp; below ``-86`` exactly 0), sums in 8
    lanes (``_row_softmax32``)."""
    return _row_softmax_dtype(s, causal)


@numba.njit(cache=True)
def _row_max32(row, n):
    """``max(row[:n])`` of a float32 row (exact, float32; ``-inf`` if ``n == 0``); 8 lanes."""
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = np.float32(-np.inf)
    n8 = n - n % 8
    for j in range(0, n8, 8):
        m0 = max(m0, row[j])
        m1 = max(m1, row[j + 1])
        m2 = max(m2, row[j + 2])
        m3 = max(m3, row[j + 3])
        m4 = max(m4, row[j + 4])
        m5 = max(m5, row[j + 5])
        m6 = max(m6, row[j + 6])
        m7 = max(m7, row[j + 7])
    for j in range(n8, n):
        m0 = max(m0, row[j])
    return max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))


@numba.njit(cache=True)
def _scale_row(row, n, c):
    """``row[j] = row[j] * c`` for ``j < n``, the product in float64 (``c`` float64) rounded
    once to the dtype of ``row``."""
    for j in range(n):
        row[j] = np.float64(row[j]) * c


@numba.njit(cache=True)
def _row_softmax32(s, causal):
    """``_row_softmax`` of float32 scores: shifted scores ``x = s - max`` and ``e = exp(x)`` in
    float32 (``_exp_shifted_row32``); ``sum e``, ``sum e x`` and ``sum e^2`` accumulated in float64
    (``fastmath.softmax_sums32``, 8 lanes, then the ``n mod 8`` tail); ``A = e / z`` rounded once
    to float32, row entropy ``log z - sum e x / z`` and ``sum_s A_ts^2 = sum e^2 / z^2``."""
    T = s.shape[0]
    ent = 0.0
    ipr = 0.0
    x = np.empty(T, dtype=np.float32)
    for t in range(T):
        row = s[t]
        n = t + 1 if causal else T
        m = _row_max32(row, n)
        _exp_shifted_row32(row, n, m, x)
        n8 = n - n % 8
        z, ez, sq = fastmath.softmax_sums32(row, x, n8)
        for j in range(n8, n):
            e = np.float64(row[j])
            z += e
            ez += e * np.float64(x[j])
            sq += e * e
        inv = 1.0 / z
        _scale_row(row, n, inv)
        for j in range(n, T):
            row[j] = 0.0
        ent += math.log(z) - ez * inv
        ipr += sq * (inv * inv)
    return ent, ipr


@numba.njit(cache=True)
def _row_softmax64(s, causal):
    """``_row_softmax`` of float64 scores."""
    T = s.shape[0]
    ent = 0.0
    ipr = 0.0
    x = np.empty(T, dtype=np.float64)
    for t in range(T):
        row = s[t]
        n = t + 1 if causal else T
        m = _row_max(row, n)
        _exp_shifted_row(row, n, m, x)
        z, ez = _row_sums(row, x, n)
        inv = 1.0 / z
        sq = _row_normalise(row, n, inv)
        for j in range(n, T):
            row[j] = 0.0
        ent += math.log(z) - ez * inv
        ipr += sq
    return ent, ipr


@numba.njit(cache=True)
def attention_matrix(xa, wq, wk, g, h, ip):
    """Attention probabilities of head ``h`` (``T x T``, before gap removal), with the row
    entropy and ``sum_s A_ts^2`` summed over rows. Random softmax scores
    ``(x W_Q^h)(x W_K^h)^T / sqrt(d_k)`` are computed as ``(c x W_Q^h)(x W_K^h)^T``
    (``c = 1/sqrt(d_k)``), or, with one head and ``T > d`` (fewer flops), as
    ``x (c W_Q W_K^T) x^T``: equal up to rounding."""
    T = ip[I_T]
    causal = ip[I_CAUSAL] == 1
    att = ip[I_ATTENTION]
    if att == ATT_SOFTMAX and ip[I_QK] != QK_RANDOM:
        a = np.dot(np.dot(xa, wq[0]), xa.T)  # s_ij = x_i^T W_QK x_j
        ent, ipr = _row_softmax(a, causal)
        return a, ent, ipr
    if att == ATT_SOFTMAX:
        c = 1.0 / math.sqrt(wq.shape[2])
        if wq.shape[0] == 1 and xa.shape[1] < T:
            # one head, T > d: x (c W_Q W_K^T) x^T, matmul flops d^3 + T d^2 instead of 2 T d^2
            wqk = np.dot(wq[0], wk[0].T)
            _scale_inplace(wqk, c)
            a = np.dot(np.dot(xa, wqk), xa.T)
        else:
            qh = np.dot(xa, wq[h])
            _scale_inplace(qh, c)
            a = np.dot(qh, np.dot(xa, wk[h]).T)
        ent, ipr = _row_softmax(a, causal)
        return a, ent, ipr
    if att == ATT_MARKOV:
        a = g[h].copy()
        ent, ipr = _row_softmax(a, causal)
        return a, ent, ipr
    a = np.zeros((T, T), dtype=xa.dtype)
    ent = 0.0
    ipr = 0.0
    if att == ATT_UNIFORM:
        for t in range(T):
            n = t + 1 if causal else T
            for j in range(n):
                a[t, j] = 1.0 / n
            ent += math.log(n)
            ipr += 1.0 / n
    else:  # identity
        for t in range(T):
            a[t, t] = 1.0
        ipr = float(T)
    return a, ent, ipr


@numba.njit(cache=True)
def attention_operator(xa, weights, h, ip, fp):
    """The matrix head ``h`` applies to the tokens (``T x T``): ``A``, ``A - 1 1^T/T``
    (``gap="remove"``) or ``A_1 - diff_lambda A_2`` (``gap="differential"``); with the row
    entropy and ``sum_s A_ts^2`` of ``A`` (``A_1``) summed over rows."""
    wq, wk, wv, wo, w1, b1, w2, b2, g, wq2, wk2, g2 = weights
    a, e, q = attention_matrix(xa, wq, wk, g, h, ip)
    if ip[I_GAP] == GAP_REMOVE:
        _shift_inplace(a, -1.0 / ip[I_T])
    elif ip[I_GAP] == GAP_DIFFERENTIAL:
        a2, e2, q2 = attention_matrix(xa, wq2, wk2, g2, h, ip)
        lam = fp[F_DIFF_LAMBDA]
        for i in range(a.shape[0]):
            for j in range(a.shape[1]):
                a[i, j] = a[i, j] - lam * a2[i, j]
    return a, e, q


@numba.njit(cache=True)
def head_values(xa, wv, h, ip, fp):
    """Values ``xa W_V^h`` of head ``h`` (``T x d_k``); with a sink, token 0's row times
    ``sink_value``."""
    v = np.dot(xa, wv[h])
    if ip[I_SINK]:
        c = fp[F_SINK_VALUE]
        for j in range(v.shape[1]):
            v[0, j] = v[0, j] * c
    return v


@numba.njit(cache=True)
def _attend(xa, weights, ip, fp):
    """Multi-head attention output (``T x d``), mean row entropy and mean ``ipr``."""
    T, d, heads = ip[I_T], ip[I_D], ip[I_HEADS]
    wv, wo = weights[2], weights[3]
    dk = d // heads
    out = np.empty((T, d), dtype=xa.dtype)
    ent = 0.0
    ipr = 0.0
    for h in range(heads):
        a, e, q = attention_operator(xa, weights, h, ip, fp)
        ent += e
        ipr += q
        out[:, h * dk:(h + 1) * dk] = np.dot(a, head_values(xa, wv, h, ip, fp))
    if heads > 1:
        out = np.dot(out, wo)
    return out, ent / (heads * T), ipr / (heads * T)


@numba.njit(cache=True)
def _mlp(z, w1, b1, w2, b2):
    """``relu(z W_1 + b_1) W_2 + b_2``; biases and ReLU applied in place on the matmul results
    (one pass each, no temporaries)."""
    h = np.dot(z, w1)
    for i in range(h.shape[0]):
        for j in range(h.shape[1]):
            v = h[i, j] + b1[j]
            if v < 0:
                v = 0.0
            h[i, j] = v
    y = np.dot(h, w2)
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            y[i, j] = y[i, j] + b2[j]
    return y


@numba.njit(cache=True)
def block(x, weights, ip, fp):
    """One transformer block on ``x`` (``T x d``): returns ``(x', entropy, ipr)``."""
    w1, b1, w2, b2 = weights[4], weights[5], weights[6], weights[7]
    aa = fp[F_ALPHA_ATTN]
    am = fp[F_ALPHA_MLP]
    norm = ip[I_NORM]
    has_mlp = ip[I_MLP] == 1
    if norm == NORM_POST or norm == NORM_L2:
        y, ent, ipr = _attend(x, weights, ip, fp)
        z = _normalise(_axpy(aa, x, y), norm)
        if has_mlp:
            z = _normalise(_axpy(am, z, _mlp(z, w1, b1, w2, b2)), norm)
        return z, ent, ipr
    xa = layer_norm(x) if norm == NORM_PRE else x
    y, ent, ipr = _attend(xa, weights, ip, fp)
    z = _axpy(aa, x, y)
    if has_mlp:
        zm = layer_norm(z) if norm == NORM_PRE else z
        z = _axpy(am, z, _mlp(zm, w1, b1, w2, b2))
    return z, ent, ipr


# ----------------------------------------------------------------------------- observables

def as_float64(x):
    """``x`` as a C-contiguous float64 array: ``x`` itself when it already is one, else a
    copy (numba: resolved at compile time)."""
    return np.ascontiguousarray(x, dtype=np.float64)


@overload(as_float64)
def _as_float64_overload(x):
    if x.dtype == numba.types.float64 and x.layout == "C":
        return lambda x: x
    return lambda x: np.ascontiguousarray(x.astype(np.float64))


def _row_square_sum(x, xx, t):
    """``|x_t|^2`` in float64 (``xx``: ``x`` in float64): one chain over the row, or for a
    C-contiguous float32 ``x`` 8 lanes (``fastmath.moments32``) (numba: chosen at compile
    time)."""
    raise NotImplementedError("numba only")


@overload(_row_square_sum)
def _row_square_sum_overload(x, xx, t):
    if x.dtype == numba.types.float32 and x.layout == "C":
        def lanes(x, xx, t):
            d = x.shape[1]
            d8 = d - d % 8
            _, r = fastmath.moments32(x[t], d8, 0.0)
            for j in range(d8, d):
                r += xx[t, j] * xx[t, j]
            return r
        return lanes

    def chain(x, xx, t):
        r = 0.0
        for j in range(xx.shape[1]):
            r += xx[t, j] * xx[t, j]
        return r
    return chain


def _deviation(x, xx, colsum):
    """``sum_t |x_t - mean|^2`` (``mean = colsum / T``) in float64: one chain over all entries,
    or for float32 ``x`` one accumulator per column, summed at the end (numba: at compile
    time)."""
    raise NotImplementedError("numba only")


@overload(_deviation)
def _deviation_overload(x, xx, colsum):
    if x.dtype == numba.types.float32:
        def columns(x, xx, colsum):
            T, d = xx.shape
            mean = colsum / T
            acc = np.zeros(d)
            for t in range(T):
                for j in range(d):
                    v = xx[t, j] - mean[j]
                    acc[j] += v * v
            dev = 0.0
            for j in range(d):
                dev += acc[j]
            return dev
        return columns

    def chain(x, xx, colsum):
        T, d = xx.shape
        dev = 0.0
        for t in range(T):
            for j in range(d):
                v = xx[t, j] - colsum[j] / T
                dev += v * v
        return dev
    return chain


@numba.njit(cache=True)
def observe(x, out, spectral=True):
    """Fill ``out[O_*]`` (not entropy/ipr) with the observables of tokens ``x`` (``T x d``);
    ``spectral=False`` skips the Gram eigenvalues (``stable_rank``, ``numerical_rank`` NaN)."""
    xx = as_float64(x)
    T, d = xx.shape
    total = 0.0
    colsum = np.zeros(d)
    unitsum = np.zeros(d)
    zero_row = False
    for t in range(T):
        r = _row_square_sum(x, xx, t)
        total += r
        if r == 0.0:
            zero_row = True
        inv = 1.0 / math.sqrt(r) if r > 0.0 else 0.0
        for j in range(d):
            colsum[j] += xx[t, j]
            unitsum[j] += xx[t, j] * inv
    pairs = T * (T - 1.0)
    out[O_Q] = total / (T * d)
    out[O_NORM] = total / (T * d)
    out[O_P] = (np.dot(colsum, colsum) - total) / (pairs * d)
    out[O_COSINE] = np.nan if zero_row else (np.dot(unitsum, unitsum) - T) / pairs
    if not np.isfinite(total) or total == 0.0:
        out[O_STABLE_RANK] = np.nan
        out[O_GRAM_STABLE_RANK] = np.nan
        out[O_NUMERICAL_RANK] = 0.0 if total == 0.0 else np.nan
        out[O_CONSENSUS] = np.nan
        return
    dev = _deviation(x, xx, colsum)
    out[O_CONSENSUS] = math.sqrt(dev / total)
    if not spectral:
        out[O_STABLE_RANK] = np.nan
        out[O_NUMERICAL_RANK] = np.nan
        out[O_GRAM_STABLE_RANK] = np.nan
        return
    _spectral(xx, total, out)


@numba.njit(cache=True)
def _spectral(xx, total, out):
    """``stable_rank``, ``gram_stable_rank`` and ``numerical_rank`` of tokens ``xx`` (``T x d``,
    float64, ``total = |xx|_F^2 > 0``) from the smaller Gram matrix ``G`` (``n x n``).

    ``n >= LANCZOS_MIN_N``: ``lambda_max`` by Lanczos (``linalg.top_eigenvalue``, residual bound
    ``LANCZOS_RTOL``), ``sum lambda^2 = |G|_F^2``, and the rank is the number of eigenvalues above
    ``cut = RANK_RTOL^2 lambda_max``: certified by one Cholesky factorisation for rank ``n`` and
    LayerNorm's ``n - 1`` (``linalg.certified_count``), else an inertia count
    (``linalg.count_above``). Otherwise (small ``n``, no convergence) all three come from
    ``np.linalg.eigvalsh(G)``."""
    gram = linalg.gram(xx)
    n = gram.shape[0]
    if n >= LANCZOS_MIN_N:
        lam_max, steps, ok = linalg.top_eigenvalue(gram, LANCZOS_RTOL, LANCZOS_MAX_STEPS,
                                                   LANCZOS_CHECK_EVERY)
        if ok and lam_max > 0.0:
            cut = RANK_RTOL * RANK_RTOL * lam_max
            above = linalg.certified_count(gram, cut, lam_max)
            if above < 0:
                above = linalg.count_above(gram, cut)
            if above >= 0:
                squares = 0.0
                for i in range(n):
                    for j in range(n):
                        squares += gram[i, j] * gram[i, j]
                out[O_STABLE_RANK] = total / lam_max
                out[O_GRAM_STABLE_RANK] = squares / (lam_max * lam_max)
                out[O_NUMERICAL_RANK] = above
                return
    lam = np.linalg.eigvalsh(gram)
    lam_max = lam[-1]
    out[O_STABLE_RANK] = total / lam_max
    squares = 0.0
    for v in lam:
        squares += v * v
    out[O_GRAM_STABLE_RANK] = squares / (lam_max * lam_max)
    cut = RANK_RTOL * RANK_RTOL * lam_max
    rank = 0
    for v in lam:
        if v > cut:
            rank += 1
    out[O_NUMERICAL_RANK] = rank


# ----------------------------------------------------------------------------- samples

@numba.njit(cache=True)
def run_sample(ip, fp, seed, proto, out, spectral=True):
    """One sample: fill ``out`` (``(depth + 1) x N_OBS``); row ``l`` is layer ``l``."""
    x = draw_input(ip, fp, seed, proto)
    observe(x, out[0], spectral)
    out[0, O_ENTROPY] = np.nan
    out[0, O_IPR] = np.nan
    depth = ip[I_DEPTH]
    shared = ip[I_SHARED] == 1
    weights = draw_layer(ip, fp, seed, 1, proto)
    for layer in range(1, depth + 1):
        if not shared and layer > 1:
            weights = draw_layer(ip, fp, seed, layer, proto)
        x, ent, ipr = block(x, weights, ip, fp)
        observe(x, out[layer], spectral)
        out[layer, O_ENTROPY] = ent
        out[layer, O_IPR] = ipr


@numba.njit(parallel=True, cache=True)
def run_samples(ip, fp, seeds, proto):
    """Observables of ``seeds.size`` samples: ``samples x (depth + 1) x N_OBS`` (float64).

    Each sample writes its own slot, so the result does not depend on the thread count."""
    n = seeds.size
    out = np.empty((n, ip[I_DEPTH] + 1, N_OBS))
    for i in prange(n):
        run_sample(ip, fp, seeds[i], proto, out[i])
    return out


@numba.njit(parallel=True, cache=True)
def run_samples_light(ip, fp, seeds, proto):
    """``run_samples`` without the per-layer Gram eigenvalues (``stable_rank`` and
    ``numerical_rank`` are NaN): the order parameters of deep stacks at a fraction of the cost."""
    n = seeds.size
    out = np.empty((n, ip[I_DEPTH] + 1, N_OBS))
    for i in prange(n):
        run_sample(ip, fp, seeds[i], proto, out[i], False)
    return out


@numba.njit(cache=True)
def first_layer_attention(ip, fp, seed, proto):
    """Attention matrices of layer 1, head by head (``heads x T x T``, gap or differential
    treatment applied), exactly as the forward pass uses them."""
    x = draw_input(ip, fp, seed, proto)
    weights = draw_layer(ip, fp, seed, 1, proto)
    xa = layer_norm(x) if ip[I_NORM] == NORM_PRE else x
    T, heads = ip[I_T], ip[I_HEADS]
    out = np.empty((heads, T, T), dtype=proto.dtype)
    for h in range(heads):
        a, e, q = attention_operator(xa, weights, h, ip, fp)
        out[h] = a
    return out


# ----------------------------------------------------------------------------- attention kind

ATTENTION_OBSERVABLES = ("stable_rank", "stable_rank_perp", "sigma_1", "sigma_2",
                         "sigma_1_perp", "frobenius2", "entropy", "ipr", "secular_q2",
                         "secular_q3")


@numba.njit(cache=True)
def _attention_spectrum_stats(a, out):
    """Fill ``out`` (``ATTENTION_OBSERVABLES`` order, entropy/ipr excluded) for one attention
    matrix ``a`` (``T x T``, float64, before gap removal). ``secular_q2`` is
    ``|A_perp c|^2/T`` with ``c = A_perp^T 1``, ``secular_q3`` is ``|A_perp^T A_perp c|^2/T``
    (GAP-1's ``Q2``, ``Q3``, ``theory.gap_spectra``)."""
    T = a.shape[0]
    lam = np.linalg.eigvalsh(np.dot(a, a.T))
    b = a - 1.0 / T
    lam_perp = np.linalg.eigvalsh(np.dot(b, b.T))
    col = np.zeros(T)
    for i in range(T):
        col += b[i]
    q2 = 0.0
    mc = np.zeros(T)  # A_perp^T A_perp c
    for i in range(T):
        v = 0.0
        for j in range(T):
            v += b[i, j] * col[j]
        q2 += v * v
        for j in range(T):
            mc[j] += v * b[i, j]
    out[8] += q2 / T
    out[9] += np.dot(mc, mc) / T
    fro = 0.0
    fro_perp = 0.0
    for v in lam:
        fro += v
    for v in lam_perp:
        fro_perp += v
    out[0] += fro / lam[-1]
    out[1] += fro_perp / lam_perp[-1]
    out[2] += math.sqrt(max(lam[-1], 0.0))
    out[3] += math.sqrt(max(lam[-2], 0.0)) if T > 1 else 0.0
    out[4] += math.sqrt(max(lam_perp[-1], 0.0))
    out[5] += fro


@numba.njit(parallel=True, cache=True)
def attention_samples(ip, fp, seeds, proto):
    """Layer-1 attention observables per sample (``samples x 1 x len(ATTENTION_OBSERVABLES)``),
    averaged over heads. ``*_perp`` refer to ``A - 1 1^T / T``; the config's ``gap`` is ignored
    so that both are measured on the same matrix (with ``differential``, ``A = A_1``)."""
    n = seeds.size
    heads, T = ip[I_HEADS], ip[I_T]
    out = np.zeros((n, 1, len(ATTENTION_OBSERVABLES)))
    for i in prange(n):
        x = draw_input(ip, fp, seeds[i], proto)
        wq, wk, wv, wo, w1, b1, w2, b2, g, wq2, wk2, g2 = draw_layer(ip, fp, seeds[i], 1, proto)
        xa = layer_norm(x) if ip[I_NORM] == NORM_PRE else x
        for h in range(heads):
            a, ent, ipr = attention_matrix(xa, wq, wk, g, h, ip)
            _attention_spectrum_stats(a.astype(np.float64), out[i, 0])
            out[i, 0, 6] += ent / T
            out[i, 0, 7] += ipr / T
        for k in range(len(ATTENTION_OBSERVABLES)):
            out[i, 0, k] /= heads
    return out


# ----------------------------------------------------------------------------- rows kind

ROW_OBSERVABLES = ("entropy", "ipr", "overlap", "y3")


@numba.njit(cache=True)
def _direct_projection(ip, fp, seed, matrix, proto):
    """``X W`` (``heads x T x d_k``) of the layer-1 input ``X`` (isometric or simplex,
    ``X X^T = d C``) for ``W = W_Q`` or ``W_K``, sampled directly: its columns are i.i.d.
    ``N(0, qk^2 d C)``, so ``X W = sqrt(d) qk C^{1/2} N`` with ``N`` drawn ``heads x T x d_k``
    from the stream ``(seed, 1, matrix)``. Equal in law to the forward pass's product."""
    T, d, heads = ip[I_T], ip[I_D], ip[I_HEADS]
    dk = d // heads
    qk_std = math.sqrt(fp[F_BETA] * math.sqrt(math.log(T)) / d)
    p = np.empty((heads, T, dk), dtype=np.float64)
    rng.fill_normal(p, rng.stream_key(seed, 1, matrix), 0.0, qk_std * math.sqrt(d))
    if ip[I_INPUT] == INPUT_SIMPLEX:
        rho = fp[F_RHO]
        a = math.sqrt(1.0 - rho)
        b = math.sqrt(1.0 - rho + rho * T)
        for h in range(heads):
            mean = np.zeros(dk)
            for t in range(T):
                mean += p[h, t]
            mean /= T
            for t in range(T):
                p[h, t] = a * (p[h, t] - mean) + b * mean
    return p.astype(proto.dtype)


@numba.njit(parallel=True, cache=True)
def row_samples(ip, fp, seeds, proto):
    """Row statistics of the layer-1 attention per sample (``samples x 1 x 4``), averaged over
    heads and rows: mean row ``entropy`` (nats), mean ``ipr`` ``sum_s A_ts^2``, mean ``overlap``
    ``sum_s A_ts A_t's`` over ordered pairs ``t != t'``, and mean ``y3`` ``sum_s A_ts^3`` (the
    Poisson-Dirichlet moment ``Y_3``).

    Softmax attention on isometric/simplex input samples the projections ``X W_Q, X W_K``
    directly (``_direct_projection``): ``T x d_k`` draws per matrix instead of ``d x d_k`` and no
    input QR, equal in law to the forward pass (``sim.montecarlo`` checks the config).
    ``markov`` attention uses its logits as in the forward pass."""
    n = seeds.size
    heads, T = ip[I_HEADS], ip[I_T]
    causal = ip[I_CAUSAL] == 1
    out = np.zeros((n, 1, len(ROW_OBSERVABLES)))
    for i in prange(n):
        if ip[I_ATTENTION] == ATT_SOFTMAX:
            pq = _direct_projection(ip, fp, seeds[i], rng.W_Q, proto)
            pk = _direct_projection(ip, fp, seeds[i], rng.W_K, proto)
        else:
            g = _normal((heads, T, T), seeds[i], 1, rng.LOGITS, -0.5 * fp[F_MARKOV_S] ** 2,
                        fp[F_MARKOV_S], proto)
        for h in range(heads):
            if ip[I_ATTENTION] == ATT_SOFTMAX:
                a = np.dot(pq[h], pk[h].T)
                _scale_inplace(a, 1.0 / math.sqrt(pq.shape[2]))
            else:
                a = g[h].copy()
            ent, ipr = _row_softmax(a, causal)
            colsum = np.zeros(T)
            cubes = 0.0
            for t in range(T):
                for s in range(T):
                    v = float(a[t, s])
                    colsum[s] += v
                    cubes += v * v * v
            pairs = 0.0
            for s in range(T):
                pairs += colsum[s] * colsum[s]
            out[i, 0, 0] += ent / T
            out[i, 0, 1] += ipr / T
            out[i, 0, 2] += (pairs - ipr) / (T * (T - 1.0))
            out[i, 0, 3] += cubes / T
        for k in range(len(ROW_OBSERVABLES)):
            out[i, 0, k] /= heads
    return out


# ----------------------------------------------------------------------------- gradient kind

GRADIENT_OBSERVABLES = ("jacobian_frobenius2", "output_frobenius2")


@numba.njit(cache=True)
def _frobenius2(m):
    total = 0.0
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            v = float(m[i, j])
            total += v * v
    return total


@numba.njit(parallel=True, cache=True)
def gradient_samples(ip, fp, seeds, proto):
    """Exact ``||dX_L/dW_V^l||_F^2`` of an attention-only stack ``X_l = A_l X_{l-1} W_V^l`` with
    input-independent attention (one head, no norm, no skip, no MLP; checked by
    ``sim.montecarlo``): ``samples x (depth + 1) x 2``.

    ``X_L = (A_L ... A_1) X_0 W_1 ... W_L`` is multilinear in the ``W_l``, so the Jacobian is
    ``dW -> M_l dW N_l`` with ``M_l = A_L ... A_1 X_0 W_1 ... W_{l-1}`` (``T x d``) and
    ``N_l = W_{l+1} ... W_L`` (``d x d``), and ``||J_l||_F^2 = ||M_l||_F^2 ||N_l||_F^2``.
    Row ``l`` holds ``||J_l||_F^2`` (NaN at ``l = 0``) and ``||X_l||_F^2``. ``A_l`` is the matrix
    the forward pass applies (gap or differential treatment included)."""
    n = seeds.size
    depth, d = ip[I_DEPTH], ip[I_D]
    out = np.empty((n, depth + 1, len(GRADIENT_OBSERVABLES)))
    for i in prange(n):
        x = draw_input(ip, fp, seeds[i], proto)
        out[i, 0, 0] = np.nan
        out[i, 0, 1] = _frobenius2(x)
        mixed = x.copy()  # A_l ... A_1 X_0
        values = np.empty((depth, d, d), dtype=proto.dtype)
        for layer in range(1, depth + 1):
            weights = draw_layer(ip, fp, seeds[i], layer, proto)
            a, e, q = attention_operator(x, weights, 0, ip, fp)
            values[layer - 1] = weights[2][0]
            mixed = np.dot(a, mixed)
            x = np.dot(a, np.dot(x, values[layer - 1]))
            out[i, layer, 1] = _frobenius2(x)
        right = np.empty(depth + 1)  # right[l] = ||W_{l+1} ... W_L||_F^2
        tail = np.eye(d, dtype=proto.dtype)
        right[depth] = float(d)
        for layer in range(depth - 1, 0, -1):
            tail = np.dot(values[layer], tail)
            right[layer] = _frobenius2(tail)
        left = mixed
        for layer in range(1, depth + 1):
            if layer > 1:
                left = np.dot(left, values[layer - 2])
            out[i, layer, 0] = _frobenius2(left) * right[layer]
    return out


# ----------------------------------------------------------------------------- GIL-free entries

@numba.njit(nogil=True, cache=True)
def draw_input_nogil(ip, fp, seed, proto):
    """``draw_input`` without the GIL (for Python-level kinds that run samples on threads)."""
    return draw_input(ip, fp, seed, proto)


@numba.njit(nogil=True, cache=True)
def draw_layer_nogil(ip, fp, seed, layer, proto):
    """``draw_layer`` without the GIL."""
    return draw_layer(ip, fp, seed, layer, proto)


@numba.njit(nogil=True, cache=True)
def block_nogil(x, weights, ip, fp):
    """``block`` without the GIL."""
    return block(x, weights, ip, fp)
