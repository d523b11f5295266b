"""Measurements for RS-1..RS-3 (rank and symmetry; theory in ``theory.rank``).

Rows are tokens (``X`` is ``T x d``). *Affine rank* = ``rank(X - 1 xbar^T)``.

- RS-1: ranks of token ensembles and of their LayerNorm images, decided by a singular-value gap
  rule in float64 (``decided_rank``: rank = number of singular values above ``GAP_HI sigma_1``;
  a matrix with a singular value in ``(GAP_LO, GAP_HI] sigma_1`` is *undecided* and is decided
  again in ``MP_DPS``-digit arithmetic from its exact float64 input), and in exact rational
  arithmetic (``exact_rank``, fraction-free elimination) on a subset.
- RS-2: a ``MP_DPS``-digit forward pass of an attention-only stack (``mp_stack``) beside the
  float64 engine, to tell exact rank from numerical rank.
- RS-3: the Krylov span of the input embeddings under the network's linear maps
  (``krylov_trace``) and the tokens' energy outside it.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import mpmath as mp
import numpy as np

from sim import kernels, rng
from sim.config import LN_EPS, Config

#: gap rule of ``decided_rank`` (relative to sigma_1)
GAP_HI, GAP_LO = 1e-8, 1e-13
#: digits of the high-precision decisions and forward passes
MP_DPS = 60
#: relative singular-value cut of ``orth_rows`` (spans of generic, well-conditioned matrices)
SPAN_RTOL = 1e-9


# ----------------------------------------------------------------------------- RS-1

#: a token whose variance is below this times its mean square counts as constant (rounding)
CONSTANT_RTOL = 1e-28


def layer_norm(x: np.ndarray) -> np.ndarray:
    """LayerNorm of every token (``... x T x d``) without epsilon, ``D^+ X P``: no affine
    parameters, ``|x|^2 = d``, and a constant token (variance below ``CONSTANT_RTOL`` of its
    mean square) maps to 0. The engine's ``sim.kernels.layer_norm`` adds ``LN_EPS`` to the
    variance, which breaks exact scale invariance at relative size ``LN_EPS/variance``."""
    c = x - x.mean(axis=-1, keepdims=True)
    var = (c * c).mean(axis=-1, keepdims=True)
    const = var <= CONSTANT_RTOL * (x * x).mean(axis=-1, keepdims=True)
    return np.where(const, 0.0, c / np.sqrt(np.where(const, 1.0, var)))


def centred(x: np.ndarray) -> np.ndarray:
    """Tokens minus their mean token (``... x T x d``): its rank is the affine rank."""
    return x - x.mean(axis=-2, keepdims=True)


def with_ones_row(x: np.ndarray) -> np.ndarray:
    """``[X; 1^T]`` (``... x (T + 1) x d``): its rank exceeds ``rank X`` iff 1 is not in the
    row space."""
    ones = np.ones(x.shape[:-2] + (1, x.shape[-1]))
    return np.concatenate([x, ones], axis=-2)


def decided_rank(m: np.ndarray, scale: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Ranks of a stack of matrices (``n x a x b``) by the gap rule, relative to ``scale``
    (``n``; default each matrix's ``sigma_1``; a centred matrix passes its uncentred one's, so
    that rounding residue of identical tokens counts as zero): (ranks, undecided mask)."""
    sv = np.linalg.svd(m, compute_uv=False)
    top = sv[:, :1] if scale is None else np.asarray(scale, dtype=float)[:, None]
    ranks = (sv > GAP_HI * top).sum(axis=1)
    undecided = ((sv > GAP_LO * top) & (sv <= GAP_HI * top)).any(axis=1) | (top[:, 0] == 0)
    return ranks, undecided


def _mp_sv(rows: list[list[Any]]) -> list[Any]:
    sv = mp.svd_r(mp.matrix(rows), compute_uv=False)
    return [abs(sv[i]) for i in range(len(sv))]


def _mp_rank(rows: list[list[Any]], scale_rows: list[list[Any]] | None = None) -> int:
    """Singular values above ``10^(-MP_DPS/2)`` times the largest of ``scale_rows``."""
    vals = _mp_sv(rows)
    top = max(_mp_sv(scale_rows) if scale_rows is not None else vals)
    if top == 0:
        return 0
    return sum(1 for s in vals if s > mp.mpf(10) ** (-MP_DPS // 2) * top)


def mp_ranks(x: np.ndarray) -> dict[str, int]:
    """The four RS-1 ranks of one float64 token matrix ``x`` (``T x d``, taken as exact),
    decided in ``MP_DPS``-digit arithmetic: rank, rank of ``[X; 1]``, rank and affine rank of
    LayerNorm(X), affine rank of X."""
    with mp.workdps(MP_DPS):
        X = [[mp.mpf(float(v)) for v in row] for row in x]
        d = len(X[0])
        ln = []
        for row in X:
            mu = mp.fsum(row) / d
            c = [v - mu for v in row]
            var = mp.fsum(t * t for t in c) / d
            ln.append([t / mp.sqrt(var) for t in c] if var > 0 else [mp.mpf(0)] * d)

        def cen(m):
            mean = [mp.fsum(r[j] for r in m) / len(m) for j in range(d)]
            return [[r[j] - mean[j] for j in range(d)] for r in m]

        return {"rank": _mp_rank(X), "rank_ones": _mp_rank(X + [[mp.mpf(1)] * d]),
                "rank_ln": _mp_rank(ln), "aff": _mp_rank(cen(X), X),
                "aff_ln": _mp_rank(cen(ln), ln)}


def ranks(x: np.ndarray) -> dict[str, np.ndarray]:
    """RS-1 ranks of ``n`` token matrices (``n x T x d``): ``rank``, ``rank_ones`` (of
    ``[X; 1]``), ``rank_ln``, ``aff``, ``aff_ln``, and ``undecided`` (how many of the five each
    sample needed high precision for)."""
    ln = layer_norm(x)
    top = np.linalg.svd(x, compute_uv=False)[:, 0]
    top_ln = np.linalg.svd(ln, compute_uv=False)[:, 0]
    mats = {"rank": (x, None), "rank_ones": (with_ones_row(x), None), "rank_ln": (ln, None),
            "aff": (centred(x), top), "aff_ln": (centred(ln), top_ln)}
    out, undecided = {}, np.zeros(x.shape[0], dtype=int)
    for name, (m, scale) in mats.items():
        out[name], und = decided_rank(m, scale)
        undecided += und
    for i in np.nonzero(undecided)[0]:
        for name, r in mp_ranks(x[i]).items():
            out[name][i] = r
    out["undecided"] = undecided
    return out


def ensemble(name: str, n: int, seed: int, T: int, d: int, k: int = 0) -> np.ndarray:
    """``n`` token matrices (``n x T x d``) of a named ensemble (one NumPy generator seeded
    by ``seed``): ``"gaussian"`` i.i.d. N(0, 1) entries; ``"repeated"`` each token one of ``k``
    Gaussian vectors, uniformly with replacement; ``"collinear"`` each token ``a_t u_g`` with
    ``a_t`` a uniform random integer in ``[1, 2^20)`` with a random sign and ``u_g`` one of
    ``k`` Gaussian directions (rounded to multiples of ``2^-20``), ``g`` uniform."""
    g = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(T, d, k)))
    if name == "gaussian":
        return g.standard_normal((n, T, d))
    if name == "repeated":
        base = g.standard_normal((n, k, d))
        pick = g.integers(0, k, (n, T))
        return np.take_along_axis(base, pick[:, :, None], axis=1)
    if name == "collinear":
        # dyadic entries (21-bit directions, 20-bit integer multiples): the products are exact
        # in float64, so the tokens are exactly collinear as rationals
        base = np.round(g.standard_normal((n, k, d)) * 2.0**20) / 2.0**20
        pick = g.integers(0, k, (n, T))
        a = g.integers(1, 2**20, (n, T, 1)) * g.choice([-1.0, 1.0], (n, T, 1))
        return a * np.take_along_axis(base, pick[:, :, None], axis=1)
    raise ValueError(f"ensemble={name!r} must be gaussian, repeated or collinear")


def exact_rank(m: np.ndarray | list) -> int:
    """Exact rank of a matrix of floats or Fractions (floats are exact binary rationals):
    fraction-free Gaussian elimination on integers."""
    rows = [[Fraction(v) for v in row] for row in np.asarray(m, dtype=object)]
    if not rows:
        return 0
    den = 1
    for row in rows:
        for v in row:
            den = den * v.denominator // math.gcd(den, v.denominator)
    a = [[int(v * den) for v in row] for row in rows]
    n_rows, n_cols = len(a), len(a[0])
    r, prev = 0, 1
    for c in range(n_cols):
        piv = next((i for i in range(r, n_rows) if a[i][c] != 0), None)
        if piv is None:
            continue
        a[r], a[piv] = a[piv], a[r]
        for i in range(r + 1, n_rows):
            for j in range(c + 1, n_cols):
                a[i][j] = (a[r][c] * a[i][j] - a[i][c] * a[r][j]) // prev
            a[i][c] = 0
        prev = a[r][c]
        r += 1
        if r == n_rows:
            break
    return r


def exact_ln_identity(x: np.ndarray) -> dict[str, int]:
    """Exact ``rank X``, ``rank [X; 1]`` and ``rank X P`` (= ``rank LN(X)``: LayerNorm rescales
    the non-constant rows of ``X P`` by positive numbers and the constant ones are zero) of one
    float64 token matrix, in rational arithmetic."""
    d = x.shape[1]
    xf = [[Fraction(float(v)) for v in row] for row in x]
    xp = [[v - sum(row, Fraction(0)) / d for v in row] for row in xf]
    return {"rank": exact_rank(xf), "rank_ones": exact_rank(xf + [[Fraction(1)] * d]),
            "rank_ln": exact_rank(xp)}


# ----------------------------------------------------------------------------- RS-2

def _mp_svd_ratio(X: mp.matrix) -> list[float]:
    sv = sorted((abs(s) for s in mp.svd_r(X, compute_uv=False)), reverse=True)
    return [float(s / sv[0]) for s in sv]


def mp_stack(config: Config, sample: int, seed: int, dps: int = MP_DPS) -> dict[str, Any]:
    """One sample of a one-head softmax attention-only stack (``norm`` post or none,
    ``mlp=False``) computed in ``dps``-digit arithmetic from the engine's float64 weights, beside
    the float64 engine: per layer the singular values over ``sigma_1`` in both, and the distance
    of the layer's linear map to the singular set (``min |1 + lambda(A) mu(W_V)|`` with a
    residual, ``min |lambda(A)| min |mu(W_V)|`` without)."""
    if config.mlp or config.heads != 1 or config.norm not in ("post", "none") \
            or config.attention != "softmax":
        raise ValueError("mp_stack needs a one-head softmax attention-only stack, norm post or "
                         f"none; got mlp={config.mlp}, heads={config.heads}, "
                         f"norm={config.norm!r}, attention={config.attention!r}")
    ip, fp, proto = kernels.encode(config)
    s = rng.sample_seed(seed, sample)
    x = kernels.draw_input(ip, fp, s, proto)
    T, d = x.shape
    alpha = config.alpha_attn
    out: dict[str, Any] = {"mp": [], "float": [], "singular_distance": []}
    with mp.workdps(dps):
        X = mp.matrix(x.tolist())
        xf = x.copy()
        out["mp"].append(_mp_svd_ratio(X))
        out["float"].append(np.linalg.svd(xf, compute_uv=False).tolist())
        for layer in range(1, config.depth + 1):
            w = kernels.draw_layer(ip, fp, s, layer, proto)
            wq, wk, wv = (mp.matrix(w[i][0].tolist()) for i in range(3))
            S = (X * wq) * (X * wk).T / mp.sqrt(wq.cols)
            A = mp.matrix(T, T)
            for i in range(T):
                m = max(S[i, j] for j in range(T))
                e = [mp.exp(S[i, j] - m) for j in range(T)]
                z = mp.fsum(e)
                for j in range(T):
                    A[i, j] = e[j] / z
            Z = A * X * wv + alpha * X
            if config.norm == "post":
                for i in range(T):
                    mu = mp.fsum(Z[i, j] for j in range(d)) / d
                    var = mp.fsum((Z[i, j] - mu) ** 2 for j in range(d)) / d
                    inv = 1 / mp.sqrt(var + mp.mpf(LN_EPS))
                    for j in range(d):
                        Z[i, j] = (Z[i, j] - mu) * inv
            X = Z
            out["mp"].append(_mp_svd_ratio(X))
            xf, _, _ = kernels.block(xf, w, ip, fp)
            sv = np.linalg.svd(xf, compute_uv=False)
            out["float"].append((sv / sv[0]).tolist())
            lam = np.linalg.eigvals(np.array(A.tolist(), dtype=float))
            mu_w = np.linalg.eigvals(w[2][0].T)
            if alpha != 0:
                dist = float(np.abs(1 + np.outer(lam, mu_w) / alpha).min())
            else:
                dist = float(np.abs(lam).min() * np.abs(mu_w).min())
            out["singular_distance"].append(dist)
            if layer == 1:  # the two passes agree before rounding errors are amplified
                out["layer1_gap"] = float(np.max(np.abs(np.array(X.tolist(), dtype=float)
                                                        - xf)))
    return out


def first_below(values: np.ndarray, threshold: float) -> int:
    """First index where ``values`` (1-D) is below ``threshold`` (``-1`` if never)."""
    idx = np.nonzero(values < threshold)[0]
    return int(idx[0]) if idx.size else -1


# ----------------------------------------------------------------------------- RS-3

def orth_rows(m: np.ndarray, rtol: float = SPAN_RTOL) -> np.ndarray:
    """Orthonormal basis (rows) of the row space of ``m``, singular values above
    ``rtol sigma_1``."""
    if m.shape[0] == 0:
        return m
    _, sv, vt = np.linalg.svd(m, full_matrices=False)
    return vt[sv > rtol * sv[0]]


def out_of_span(x: np.ndarray, basis: np.ndarray) -> tuple[float, float]:
    """(energy of ``x``'s rows outside the span of ``basis`` rows, largest principal-angle sine
    between ``x``'s row space and the span)."""
    res = x - (x @ basis.T) @ basis
    q = orth_rows(x)
    # sines directly (sqrt(1 - cos^2) would resolve only sqrt(eps))
    q_res = q - (q @ basis.T) @ basis if basis.shape[0] else q
    sine = float(np.linalg.svd(q_res, compute_uv=False)[0]) if q.shape[0] else 0.0
    return float((res * res).sum()), sine


def krylov_trace(config: Config, sample: int, seed: int) -> list[dict[str, float]]:
    """Per layer of one sample (one head; norm ``none``, ``post`` or ``l2``): the dimension of
    the Krylov span ``K_l`` of the input embeddings under the network's linear maps
    (``K <- K + K W_V`` per attention, ``K <- K + K W_1 W_2 + b_1 W_2 + b_2`` per MLP, then
    ``K <- K P`` after each LayerNorm), the tokens' energy outside it (absolute and as a
    fraction), the largest principal-angle sine, and for the MLP the quantities its prediction
    needs: ``k_in`` (dimension of the span entering the MLP) and ``trace_k``
    (``sigma_w2 |Z|_F^2/d + T sigma_b2``)."""
    if config.heads != 1 or config.norm == "pre":
        raise ValueError(f"krylov_trace needs heads=1 and norm none/post/l2; got "
                         f"heads={config.heads}, norm={config.norm!r}")
    ip, fp, proto = kernels.encode(config)
    s = rng.sample_seed(seed, sample)
    x = kernels.draw_input(ip, fp, s, proto).astype(np.float64)
    T, d = x.shape
    P = np.eye(d) - 1.0 / d
    basis = orth_rows(x)
    rows = [{"layer": 0, "dim": basis.shape[0], "energy": 0.0, "fraction": 0.0, "sine": 0.0}]
    for layer in range(1, config.depth + 1):
        w = kernels.draw_layer(ip, fp, s, layer, proto)
        wv = w[2][0].astype(np.float64)
        basis = orth_rows(np.vstack([basis, basis @ wv]))
        if config.norm == "post":
            basis = orth_rows(basis @ P)
        row: dict[str, float] = {"layer": layer}
        if config.mlp:
            y, _, _ = kernels._attend(x, w, ip, fp)
            z = kernels._axpy(config.alpha_attn, x, y)
            if config.norm in ("post", "l2"):
                z = kernels._normalise(z, ip[kernels.I_NORM])
            w1, b1, w2, b2 = (w[i].astype(np.float64) for i in (4, 5, 6, 7))
            row["k_in"] = basis.shape[0]
            row["trace_k"] = config.sigma_w2 * float((z * z).sum()) / d + T * config.sigma_b2
            extra = [basis @ w1 @ w2]
            if config.sigma_b2 > 0:
                extra += [(b1 @ w2)[None, :], b2[None, :]]
            basis = orth_rows(np.vstack([basis] + extra))
            if config.norm == "post":
                basis = orth_rows(basis @ P)
        x, _, _ = kernels.block(x, w, ip, fp)
        energy, sine = out_of_span(x, basis)
        row.update({"dim": basis.shape[0], "energy": energy,
                    "fraction": energy / float((x * x).sum()), "sine": sine})
        rows.append(row)
    return rows
