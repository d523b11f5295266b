"""Kinds ``heads``, ``queries`` and ``ablation``: what each attention head does to the tokens
(science/sinks.md, science/contribution-weights.md).

Head ``h`` of a layer with input ``X`` (``T x d``) and attention input ``X_a`` (``LN(X)`` for
``norm="pre"``, else ``X``) applies ``A_h`` (the matrix the forward pass uses) to its values
``v_j`` (``d``): row ``j`` of ``X_a W_V^h`` (token 0's times ``sink_value`` with a sink), mapped
to ``d`` by the head's rows of ``W_O`` when ``heads > 1``. Its output ("contribution") is
``y_i = sum_j A_ij v_j``, and the contribution weights are
``CW_ij = A_ij <v_j, y_i> / ||y_i||^2`` (they sum to 1 over ``j``).

``queries`` means the tokens ``i >= 1`` when ``sink=True`` (the sink is not a query of
interest), all tokens otherwise. Observables:

- ``heads`` (rows: ``(l - 1) * heads + h`` for layer ``l = 1 .. depth``, head ``h``): means over
  queries of ``sink_mass`` ``A_i0``, ``diagonal_mass`` ``A_ii``, ``entropy`` (row entropy,
  nats, over entries ``> 0``), ``ipr`` ``sum_j A_ij^2``, ``output_norm`` ``||y_i||^2 / d``,
  ``cw_sink`` ``CW_i0``, ``cw_self`` ``CW_ii``; ``value_norm`` ``||v_j||^2 / d`` (mean over
  queries ``j``); ``consensus`` ``mu(X)`` and ``consensus_update`` ``mu(alpha_attn X + Y_h)``
  (``mu`` the consensus distance ``||X - 1 xbar^T||_F / ||X||_F`` over all tokens);
  ``diagonal_error`` ``sum_i ||y_i - v_i||^2 / sum_i ||v_i||^2`` (all tokens); ``overlap``
  ``mean_{i != k} sum_j A_ij A_kj`` (all tokens); and, over the value weights given ``X`` and
  ``A``, the moments of ``N = ||P Z||^2`` and ``D = ||Z||^2`` (``Z = alpha_attn X + Y_h``, ``P``
  the centring) that ``consensus_update`` is ``sqrt(N/D)`` of: ``update_n`` ``E N``,
  ``update_m`` ``E D``, ``update_var_n``, ``update_var_m``, ``update_cov`` (see
  ``update_moments``; NaN unless one head with random, unsteered values).
- ``queries`` (layer 1, head 0; row ``i`` is query token ``i``): ``sink_mass``,
  ``diagonal_mass``, ``entropy``, ``output_norm``, ``cw_sink``, ``cw_self`` of row ``i``;
  ``rest_norm`` ``||m_i||^2 / d`` with ``m_i = sum_{j >= 1} A_ij v_j / (1 - A_i0)``;
  ``sink_rest_cos`` ``cos(v_0, m_i)``; ``sink_output_cos`` ``cos(v_0, y_i)``.
- ``ablation`` (softmax attention, one head, ``gap="keep"``; one row): for layer 1's head, the
  Spearman rank correlation over tokens ``j != i`` between a predictor (``CW_ij``, ``|CW_ij|``,
  ``A_ij``, ``||A_ij v_j||``) and an effect of deleting token ``j``, averaged over queries ``i``
  (queries with a constant predictor or effect are skipped): ``*_layer``: ``||y_i - y_i^(-j)||``,
  the change of the head output (rows renormalise, so it is ``A_ij ||v_j - y_i|| / (1 - A_ij)``);
  ``*_final``: ``||x_i^L - x_i^L(-j)||``, the change of token ``i`` after ``depth`` layers when
  token ``j`` is deleted from the input and the same weights are rerun on ``T - 1`` tokens.

Samples run in ``prange`` and write their own slots, so results do not depend on the thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from sim import kernels as K

HEAD_OBSERVABLES = ("sink_mass", "diagonal_mass", "entropy", "ipr", "output_norm", "value_norm",
                    "cw_sink", "cw_self", "consensus", "consensus_update", "diagonal_error",
                    "overlap", "update_n", "update_m", "update_var_n", "update_var_m",
                    "update_cov")
_N_UPDATE = 5  # the update_* moments, last in HEAD_OBSERVABLES
QUERY_OBSERVABLES = ("sink_mass", "diagonal_mass", "entropy", "output_norm", "cw_sink",
                     "cw_self", "rest_norm", "sink_rest_cos", "sink_output_cos")
ABLATION_PREDICTORS = ("cw", "abs_cw", "alpha", "norm")
ABLATION_OBSERVABLES = tuple(f"spearman_{p}_{e}" for e in ("layer", "final")
                             for p in ABLATION_PREDICTORS)


@numba.njit(cache=True)
def head_parts(xa, weights, h, ip, fp):
    """``(A, V, Y)`` of head ``h`` in float64: attention (``T x T``), values mapped to ``d``
    (``T x d``) and output ``Y = A V`` (``T x d``)."""
    heads, d = ip[K.I_HEADS], ip[K.I_D]
    dk = d // heads
    a, e, q = K.attention_operator(xa, weights, h, ip, fp)
    v = K.head_values(xa, weights[2], h, ip, fp).astype(np.float64)
    if heads > 1:
        v = np.dot(v, weights[3][h * dk:(h + 1) * dk, :].astype(np.float64))
    a = a.astype(np.float64)
    return a, v, np.dot(a, v)


@numba.njit(cache=True)
def value_input(xa, ip, fp):
    """``X_s`` (``T x d``, float64): the attention input with token 0's row times
    ``sink_value`` when there is a sink, so that one head's values are ``X_s W_V``."""
    xs = xa.astype(np.float64)
    if ip[K.I_SINK]:
        xs[0] *= fp[K.F_SINK_VALUE]
    return xs


@numba.njit(cache=True)
def update_moments(x, b, alpha, sigma_v2, out):
    """Fill ``out[:5]`` with ``E N, E D, Var N, Var D, Cov(N, D)`` of ``N = ||P Z||^2``,
    ``D = ||Z||^2``, ``Z = alpha X + B W`` over ``W`` (``d x d``, i.i.d. ``N(0, sigma_v2/d)``),
    for fixed ``X`` (``x``) and ``B`` (``b``), both ``T x d`` float64; ``P = I - 1 1^T/T``.

    Gaussian moments (``s = sigma_v2``): the linear term ``2 alpha <C X, C B W>`` has variance
    ``4 alpha^2 (s/d) ||B^T C X||^2``, the quadratic ``||C B W||^2`` has mean ``s ||C B||^2`` and
    variance ``2 (s^2/d) ||B^T C B||^2``, and they are uncorrelated; ``C = P`` for ``N``,
    ``I`` for ``D``, and the covariance pairs ``P`` with ``I`` the same way."""
    T, d = x.shape
    px = x.copy()
    pb = b.copy()
    for j in range(d):
        mx = 0.0
        mb = 0.0
        for t in range(T):
            mx += x[t, j]
            mb += b[t, j]
        mx /= T
        mb /= T
        for t in range(T):
            px[t, j] -= mx
            pb[t, j] -= mb
    s = sigma_v2
    bpx = np.dot(b.T, px)
    bx = np.dot(b.T, x)
    bpb = np.dot(b.T, pb)
    bb = np.dot(b.T, b)
    lin = 4.0 * alpha * alpha * s / d
    quad = 2.0 * s * s / d
    out[0] = alpha * alpha * np.sum(px * px) + s * np.sum(pb * pb)
    out[1] = alpha * alpha * np.sum(x * x) + s * np.sum(b * b)
    out[2] = lin * np.sum(bpx * bpx) + quad * np.sum(bpb * bpb)
    out[3] = lin * np.sum(bx * bx) + quad * np.sum(bb * bb)
    out[4] = lin * np.sum(bpx * bx) + quad * np.sum(bpb * bb)


@numba.njit(cache=True)
def consensus(x):
    """``||X - 1 xbar^T||_F / ||X||_F`` of ``x`` (``T x d``, float64)."""
    T, d = x.shape
    mean = np.zeros(d)
    for t in range(T):
        mean += x[t]
    mean /= T
    dev = 0.0
    total = 0.0
    for t in range(T):
        for j in range(d):
            total += x[t, j] * x[t, j]
            v = x[t, j] - mean[j]
            dev += v * v
    return math.sqrt(dev / total) if total > 0.0 else np.nan


@numba.njit(cache=True)
def _row_entropy(a, i):
    ent = 0.0
    for j in range(a.shape[1]):
        if a[i, j] > 0.0:
            ent -= a[i, j] * math.log(a[i, j])
    return ent


@numba.njit(cache=True)
def contribution_weight(a, v, y, i, j):
    """``CW_ij = A_ij <v_j, y_i> / ||y_i||^2`` (NaN when ``y_i = 0``)."""
    yy = np.dot(y[i], y[i])
    return a[i, j] * np.dot(v[j], y[i]) / yy if yy > 0.0 else np.nan


@numba.njit(cache=True)
def _cosine(u, w):
    nu = math.sqrt(np.dot(u, u))
    nw = math.sqrt(np.dot(w, w))
    return np.dot(u, w) / (nu * nw) if nu > 0.0 and nw > 0.0 else np.nan


@numba.njit(cache=True)
def _head_stats(x, a, v, y, alpha, first, out):
    """Fill ``out`` (``HEAD_OBSERVABLES`` order) but the ``update_*`` moments for one head;
    ``first`` is the first query."""
    T, d = v.shape
    n = T - first
    for k in range(out.size):
        out[k] = 0.0
    err = 0.0
    vv = 0.0
    for i in range(first, T):
        out[0] += a[i, 0]
        out[1] += a[i, i]
        out[2] += _row_entropy(a, i)
        for j in range(T):
            out[3] += a[i, j] * a[i, j]
        out[4] += np.dot(y[i], y[i]) / d
        out[5] += np.dot(v[i], v[i]) / d
        out[6] += contribution_weight(a, v, y, i, 0)
        out[7] += contribution_weight(a, v, y, i, i)
    for k in range(8):
        out[k] /= n
    out[8] = consensus(x)
    out[9] = consensus(alpha * x + y)
    for i in range(T):
        r = y[i] - v[i]
        err += np.dot(r, r)
        vv += np.dot(v[i], v[i])
    out[10] = err / vv if vv > 0.0 else np.nan
    colsq = 0.0  # ||A^T 1||^2 = sum_{i, k} (A A^T)_ik
    trace = 0.0  # tr(A A^T)
    for j in range(T):
        cs = 0.0
        for i in range(T):
            cs += a[i, j]
            trace += a[i, j] * a[i, j]
        colsq += cs * cs
    out[11] = (colsq - trace) / (T * (T - 1.0))


@numba.njit(cache=True)
def _attention_input(x, ip):
    return K.layer_norm(x) if ip[K.I_NORM] == K.NORM_PRE else x


@numba.njit(parallel=True, cache=True)
def head_samples(ip, fp, seeds, proto):
    """Kind ``heads``: ``samples x (depth * heads) x len(HEAD_OBSERVABLES)``."""
    n = seeds.size
    depth, heads = ip[K.I_DEPTH], ip[K.I_HEADS]
    first = 1 if ip[K.I_SINK] else 0
    alpha = fp[K.F_ALPHA_ATTN]
    gaussian_values = (heads == 1 and ip[K.I_VALUE] == K.VALUE_RANDOM
                       and fp[K.F_STEER_MU] == 0.0)
    n_obs = len(HEAD_OBSERVABLES)
    out = np.empty((n, depth * heads, n_obs))
    for s in prange(n):
        x = K.draw_input(ip, fp, seeds[s], proto)
        weights = K.draw_layer(ip, fp, seeds[s], 1, proto)
        for layer in range(1, depth + 1):
            if ip[K.I_SHARED] != 1 and layer > 1:
                weights = K.draw_layer(ip, fp, seeds[s], layer, proto)
            xa = _attention_input(x, ip)
            x64 = x.astype(np.float64)
            for h in range(heads):
                a, v, y = head_parts(xa, weights, h, ip, fp)
                row = out[s, (layer - 1) * heads + h]
                _head_stats(x64, a, v, y, alpha, first, row)
                moments = row[n_obs - _N_UPDATE:]
                if gaussian_values:
                    update_moments(x64, np.dot(a, value_input(xa, ip, fp)), alpha,
                                   fp[K.F_SIGMA_V2], moments)
                else:
                    moments[:] = np.nan
            x, e, q = K.block(x, weights, ip, fp)
    return out


@numba.njit(parallel=True, cache=True)
def query_samples(ip, fp, seeds, proto):
    """Kind ``queries``: ``samples x T x len(QUERY_OBSERVABLES)`` (layer 1, head 0)."""
    n = seeds.size
    T, d = ip[K.I_T], ip[K.I_D]
    out = np.empty((n, T, len(QUERY_OBSERVABLES)))
    for s in prange(n):
        x = K.draw_input(ip, fp, seeds[s], proto)
        weights = K.draw_layer(ip, fp, seeds[s], 1, proto)
        a, v, y = head_parts(_attention_input(x, ip), weights, 0, ip, fp)
        for i in range(T):
            rest = (y[i] - a[i, 0] * v[0]) / (1.0 - a[i, 0]) if a[i, 0] < 1.0 else v[0] * np.nan
            row = out[s, i]
            row[0] = a[i, 0]
            row[1] = a[i, i]
            row[2] = _row_entropy(a, i)
            row[3] = np.dot(y[i], y[i]) / d
            row[4] = contribution_weight(a, v, y, i, 0)
            row[5] = contribution_weight(a, v, y, i, i)
            row[6] = np.dot(rest, rest) / d
            row[7] = _cosine(v[0], rest)
            row[8] = _cosine(v[0], y[i])
    return out


@numba.njit(cache=True)
def average_ranks(x):
    """Ranks ``0 .. n-1`` of ``x`` with ties given their average rank."""
    n = x.size
    order = np.argsort(x, kind="mergesort")
    r = np.empty(n)
    i = 0
    while i < n:
        j = i
        while j + 1 < n and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = 0.5 * (i + j)
        i = j + 1
    return r


@numba.njit(cache=True)
def spearman(x, y):
    """Spearman rank correlation of ``x`` and ``y`` (average ranks for ties; NaN if either is
    constant)."""
    rx = average_ranks(x)
    ry = average_ranks(y)
    rx = rx - rx.mean()
    ry = ry - ry.mean()
    den = math.sqrt(np.dot(rx, rx) * np.dot(ry, ry))
    return np.dot(rx, ry) / den if den > 0.0 else np.nan


@numba.njit(cache=True)
def _forward(x, ip_draw, ip, fp, seed, proto):
    """Tokens ``x`` after ``depth`` layers (float64), run with ``ip`` on weights drawn with
    ``ip_draw`` (the config's own ``T``, so a deletion keeps the weights)."""
    weights = K.draw_layer(ip_draw, fp, seed, 1, proto)
    for layer in range(1, ip[K.I_DEPTH] + 1):
        if ip[K.I_SHARED] != 1 and layer > 1:
            weights = K.draw_layer(ip_draw, fp, seed, layer, proto)
        x, e, q = K.block(x, weights, ip, fp)
    return x.astype(np.float64)


@numba.njit(parallel=True, cache=True)
def ablation_samples(ip, fp, seeds, proto):
    """Kind ``ablation``: ``samples x 1 x len(ABLATION_OBSERVABLES)``."""
    n = seeds.size
    T = ip[K.I_T]
    first = 1 if ip[K.I_SINK] else 0
    n_pred = len(ABLATION_PREDICTORS)
    out = np.empty((n, 1, 2 * n_pred))
    for s in prange(n):
        x = K.draw_input(ip, fp, seeds[s], proto)
        weights = K.draw_layer(ip, fp, seeds[s], 1, proto)
        a, v, y = head_parts(_attention_input(x, ip), weights, 0, ip, fp)
        final = _forward(x, ip, ip, fp, seeds[s], proto)
        # change[i, j]: token i's final change when token j is deleted
        change = np.zeros((T, T))
        ip_del = ip.copy()
        ip_del[K.I_T] = T - 1
        for j in range(T):
            keep = np.empty(T - 1, dtype=np.int64)
            k = 0
            for t in range(T):
                if t != j:
                    keep[k] = t
                    k += 1
            ip_del[K.I_SINK] = ip[K.I_SINK] if j != 0 else 0
            reduced = _forward(x[keep], ip, ip_del, fp, seeds[s], proto)
            for k in range(T - 1):
                diff = final[keep[k]] - reduced[k]
                change[keep[k], j] = math.sqrt(np.dot(diff, diff))
        sums = np.zeros(2 * n_pred)
        counts = np.zeros(2 * n_pred)
        pred = np.empty((n_pred, T - 1))
        effect = np.empty((2, T - 1))
        for i in range(first, T):
            k = 0
            for j in range(T):
                if j == i:
                    continue
                cw = contribution_weight(a, v, y, i, j)
                pred[0, k] = cw
                pred[1, k] = abs(cw)
                pred[2, k] = a[i, j]
                pred[3, k] = a[i, j] * math.sqrt(np.dot(v[j], v[j]))
                dy = a[i, j] * (v[j] - y[i]) / (1.0 - a[i, j])
                effect[0, k] = math.sqrt(np.dot(dy, dy))
                effect[1, k] = change[i, j]
                k += 1
            for e in range(2):
                for p in range(n_pred):
                    r = spearman(pred[p], effect[e])
                    if not np.isnan(r):
                        sums[e * n_pred + p] += r
                        counts[e * n_pred + p] += 1.0
        for m in range(2 * n_pred):
            out[s, 0, m] = sums[m] / counts[m] if counts[m] > 0 else np.nan
    return out
