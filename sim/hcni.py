"""Head-channel non-identifiability and the position-gated output projection (RS-4, RS-5):
per-head outputs from the engine's draws, identifiability ranks, recovery experiments and the
PG-OP forward (theory in ``theory.hcni``).

Head ``h``'s output before ``W_O`` is ``H_h = A_h X_a W_V^h`` (``T x d_k``), with ``A_h`` and
``X_a W_V^h`` exactly as the engine's forward pass computes them (``sim.kernels``); the layer's
attention output is ``Y = H W_O``, ``H = [H_1 ... H_H]`` (``T x d``). PG-OP:
``y_i = sum_h g_ih H_h[i] W_O^h`` with ``g_ih = sigmoid(u_h . p_i)``, ``p_i`` the sinusoidal
positional code scaled to ``|p_i|^2 = d`` and ``u_h`` i.i.d. ``N(0, gate_std^2/d)`` (so
``u_h . p_i ~ N(0, gate_std^2)``). Noise and gates are drawn from NumPy generators keyed by the
sample seed, so each sample is reproducible alone.
"""

from __future__ import annotations

import numpy as np

from sim import kernels as K
from sim.config import Config
from sim.rng import sample_seed
from theory import hcni as theory

#: NumPy stream tags (noise, gates, gauge) mixed with a sample seed
_NOISE, _GATES, _GAUGE = 11, 12, 13


def head_config(T: int, d: int, heads: int, beta: float = 1.0, attention: str = "softmax",
                input: str = "isometric") -> Config:
    """One post-LN attention layer without MLP whose heads are read out."""
    return Config(T=T, d=d, heads=heads, depth=1, beta=beta, mlp=False, norm="post",
                  attention=attention, input=input)


def layer_parts(config: Config, weight_seed: int, input_seed: int | None = None) -> dict:
    """Layer 1 of ``config`` drawn by the engine: ``A`` (``heads x T x T``), ``xa`` (``T x d``),
    ``W_V`` (``heads x d x d_k``), ``W_O`` (``d x d``) and ``H`` (``T x d``), all float64.
    Weights come from ``weight_seed``, the input from ``input_seed`` (default: the same)."""
    ip, fp, proto = K.encode(config)
    x = K.draw_input(ip, fp, np.uint64(input_seed if input_seed is not None else weight_seed),
                     proto)
    w = K.draw_layer(ip, fp, np.uint64(weight_seed), 1, proto)
    xa = K.layer_norm(x) if config.norm == "pre" else x
    heads, dk = config.heads, config.d // config.heads
    A = np.empty((heads, config.T, config.T))
    Hcat = np.empty((config.T, config.d))
    for h in range(heads):
        a = K.attention_operator(xa, w, h, ip, fp)[0].astype(np.float64)
        A[h] = a
        Hcat[:, h * dk:(h + 1) * dk] = a @ K.head_values(xa, w[2], h, ip, fp).astype(np.float64)
    return {"A": A, "xa": xa.astype(np.float64), "W_V": w[2].astype(np.float64),
            "W_O": w[3].astype(np.float64), "H": Hcat}


def positional_code(T: int, d: int) -> np.ndarray:
    """Sinusoidal code (``T x d``, ``d`` even) scaled so ``|p_i|^2 = d``."""
    if d % 2:
        raise ValueError(f"d={d!r} must be even for a sinusoidal code")
    pos = np.arange(T)[:, None]
    freq = 10000.0 ** (-np.arange(d // 2) / (d // 2))
    p = np.empty((T, d))
    p[:, 0::2] = np.sin(pos * freq)
    p[:, 1::2] = np.cos(pos * freq)
    return np.sqrt(2.0) * p


def gates(T: int, d: int, heads: int, gate_std: float, seed: int) -> np.ndarray:
    """PG-OP gates ``g_ih = sigmoid(u_h . p_i)`` (``T x heads``)."""
    u = np.random.default_rng([int(seed), _GATES]).standard_normal((heads, d))
    return 1.0 / (1.0 + np.exp(-positional_code(T, d) @ (gate_std / np.sqrt(d) * u).T))


def pgop_forward(Hcat: np.ndarray, W_O: np.ndarray, g: np.ndarray | None) -> np.ndarray:
    """``y_i = sum_h g_ih H_h[i] W_O^h`` (``T x d``); ``g = None`` is the plain ``H W_O``."""
    if g is None:
        return Hcat @ W_O
    dk = Hcat.shape[1] // g.shape[1]
    return (Hcat * np.repeat(g, dk, axis=1)) @ W_O


def invert(Y: np.ndarray, W_O: np.ndarray, g: np.ndarray | None) -> np.ndarray:
    """Exact recovery of ``H`` from ``Y`` with ``W_O`` (and the gates) known:
    ``Y W_O^{-1}``, each head's columns divided by its gate."""
    Hhat = np.linalg.solve(W_O.T, Y.T).T
    if g is None:
        return Hhat
    return Hhat / np.repeat(g, Hhat.shape[1] // g.shape[1], axis=1)


# ----------------------------------------------------------------------------- ranks

def signal_map(W_O: np.ndarray, heads: int, n: int, g: np.ndarray | None = None) -> np.ndarray:
    """Matrix of the linear map ``vec H -> vec Y`` (``n H d_k x n d_out``) for ``n`` tokens, with
    gates ``g`` (``n x heads``) or none; ``W_O`` is ``H d_k x d_out``."""
    m, dout = W_O.shape
    L = np.zeros((n * m, n * dout))
    gg = np.ones((n, heads)) if g is None else g
    for i in range(n):
        L[i * m:(i + 1) * m, i * dout:(i + 1) * dout] = np.repeat(gg[i], m // heads)[:, None] * W_O
    return L


def kernel_dimension(L: np.ndarray) -> int:
    """``rows - rank`` of ``L``: the dimension of the inputs that give the same output."""
    return int(L.shape[0] - np.linalg.matrix_rank(L))


def shared_channel(heads: int, dk: int, d_out: int, seed: int) -> np.ndarray:
    """``W_O`` whose blocks are all one Gaussian ``d_k x d_out`` matrix ``B`` (a head sum in one
    shared channel)."""
    B = np.random.default_rng(seed).standard_normal((dk, d_out))
    return np.vstack([B] * heads)


def parameter_jacobian(A: np.ndarray, xa: np.ndarray, W_V: np.ndarray,
                       W_O: np.ndarray) -> np.ndarray:
    """Jacobian of ``(W_V, W_O) -> Y = sum_h A_h X_a W_V^h W_O^h`` (``2 H d d_k x T d``), exact
    (the map is bilinear: columns are the images of unit perturbations)."""
    heads, d, dk = W_V.shape
    rows = []
    for h in range(heads):
        AX = A[h] @ xa
        WO_h = W_O[h * dk:(h + 1) * dk]
        for a in range(d):
            for b in range(dk):
                rows.append(np.outer(AX[:, a], WO_h[b]).ravel())  # dW_V^h[a, b]
        AXV = AX @ W_V[h]
        for b in range(dk):
            for c in range(d):
                e = np.zeros((AX.shape[0], d))
                e[:, c] = AXV[:, b]
                rows.append(e.ravel())  # dW_O^h[b, c]
    return np.array(rows)


# ----------------------------------------------------------------------------- W_O spectrum

def wo_singular_values(d: int, heads: int, samples: int, seed: int,
                       start: int = 0) -> np.ndarray:
    """Singular values (decreasing) of the engine's ``W_O`` (``d x d``, variance ``1/d``), one
    row per sample (``samples x d``), samples ``start .. start + samples - 1``."""
    config = Config(T=2, d=d, heads=heads, depth=1, attention="uniform", mlp=False)
    ip, fp, proto = K.encode(config)
    out = np.empty((samples, d))
    for i in range(samples):
        w = K.draw_layer(ip, fp, sample_seed(seed, start + i), 1, proto)
        out[i] = np.linalg.svd(w[3].astype(np.float64), compute_uv=False)
    return out


# ----------------------------------------------------------------------------- recovery

def recovery_samples(config: Config, samples: int, seed: int, noise: float,
                     gate_std: float, start: int = 0) -> dict[str, np.ndarray]:
    """Exact-inversion recovery of every head, without and with PG-OP, at equal noise: the same
    ``E`` (i.i.d. ``N(0, eps^2)``, ``eps = noise * rms(H W_O)``) is added to ``H W_O`` and to the
    PG-OP output. Per sample ``start .. start + samples - 1`` (arrays of length ``samples``):

    - ``rel_plain``, ``rel_pgop``: ``sum_h ||H_h_hat - H_h||^2 / sum_h ||H_h||^2``;
    - ``norm_plain``, ``norm_pgop``: the squared error over its no-gate conditional mean
      ``theory.hcni.inversion_error`` (``norm_plain`` has mean 1);
    - ``gate_factor``: the conditional mean of ``norm_pgop`` (``theory.hcni.gate_factor``
      weighted by the heads' conditional errors);
    - ``amplification`` ``(1/d) sum sigma_i(W_O)^-2`` and ``t = d sigma_min(W_O)``."""
    keys = ("rel_plain", "rel_pgop", "norm_plain", "norm_pgop", "gate_factor", "amplification",
            "t")
    out = {k: np.empty(samples) for k in keys}
    T, d, heads = config.T, config.d, config.heads
    for i in range(samples):
        s = sample_seed(seed, start + i)
        parts = layer_parts(config, s)
        Hcat, W_O = parts["H"], parts["W_O"]
        Y = pgop_forward(Hcat, W_O, None)
        eps = noise * float(np.sqrt(np.mean(Y * Y)))
        E = eps * np.random.default_rng([int(s), _NOISE]).standard_normal(Y.shape)
        g = gates(T, d, heads, gate_std, int(s))
        err_plain = invert(Y + E, W_O, None) - Hcat
        err_pgop = invert(pgop_forward(Hcat, W_O, g) + E, W_O, g) - Hcat
        pred = theory.inversion_error(W_O, heads, T, eps)
        total = float(np.sum(Hcat * Hcat))
        out["rel_plain"][i] = float(np.sum(err_plain**2)) / total
        out["rel_pgop"][i] = float(np.sum(err_pgop**2)) / total
        out["norm_plain"][i] = float(np.sum(err_plain**2)) / pred.sum()
        out["norm_pgop"][i] = float(np.sum(err_pgop**2)) / pred.sum()
        out["gate_factor"][i] = float(pred @ theory.gate_factor(g)) / pred.sum()
        sv = np.linalg.svd(W_O, compute_uv=False)
        out["amplification"][i] = theory.amplification(sv)
        out["t"][i] = d * sv[-1]
    return out


def readout_experiment(config: Config, seed: int, n_train: int, n_test: int,
                       noise: float) -> dict[str, float]:
    """A linear read-out ``R`` (``d x d``) fitted by least squares on ``n_train`` inputs of one
    layer (weights fixed, ``W_O`` not used), mapping ``Y + E`` to ``H``; tested on ``n_test``
    fresh inputs. Returns relative test errors ``sum ||H_hat - H||^2 / sum ||H||^2`` of: the
    read-out fitted and tested without noise (``learned_clean``), with noise (``learned``), the
    exact inversion with noise (``exact``), and a read-out fitted on targets in another gauge
    ``H_h G_h`` (random ``G_h``), scored against ``H`` (``other_gauge``) and against ``H G``
    (``other_gauge_own``); ``eps = noise * rms(Y)``."""
    ws = sample_seed(seed, 0)

    def draw(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = layer_parts(config, ws, sample_seed(seed, 1 + k))
        Y = p["H"] @ p["W_O"]
        eps = noise * float(np.sqrt(np.mean(Y * Y)))
        E = eps * np.random.default_rng([int(ws), _NOISE, k]).standard_normal(Y.shape)
        return p["H"], Y, E

    heads, d = config.heads, config.d
    dk = d // heads
    rng = np.random.default_rng([int(ws), _GAUGE])
    G = np.zeros((d, d))
    for h in range(heads):
        G[h * dk:(h + 1) * dk, h * dk:(h + 1) * dk] = rng.standard_normal((dk, dk))
    train = [draw(k) for k in range(n_train)]
    test = [draw(n_train + k) for k in range(n_test)]
    W_O = layer_parts(config, ws)["W_O"]
    Ht, Yt, Et = (np.vstack([t[j] for t in train]) for j in range(3))
    Hs, Ys, Es = (np.vstack([t[j] for t in test]) for j in range(3))
    R_clean = np.linalg.lstsq(Yt, Ht, rcond=None)[0]
    R = np.linalg.lstsq(Yt + Et, Ht, rcond=None)[0]
    R_gauge = np.linalg.lstsq(Yt + Et, Ht @ G, rcond=None)[0]
    norm = float(np.sum(Hs * Hs))

    def rel(Hhat: np.ndarray, target: np.ndarray, scale: float = norm) -> float:
        return float(np.sum((Hhat - target) ** 2)) / scale

    HG = Hs @ G
    return {"learned_clean": rel(Ys @ R_clean, Hs), "learned": rel((Ys + Es) @ R, Hs),
            "exact": rel(invert(Ys + Es, W_O, None), Hs),
            "other_gauge": rel((Ys + Es) @ R_gauge, Hs),
            "other_gauge_own": rel((Ys + Es) @ R_gauge, HG, float(np.sum(HG * HG))),
            "rows_train": float(Yt.shape[0]), "d": float(d)}
