"""Contribution weights of one attention head, in plain NumPy (chapter "Contribution weights").

Conventions: ``A`` is a row-stochastic ``T x T`` attention matrix (row ``i`` is query ``i``),
``V`` the ``T x d`` values (row ``j`` is ``v_j``), ``Y = A V`` the head output (row ``y_i``).
The contribution weight is ``CW_ij = A_ij <v_j, y_i> / ||y_i||^2``.
"""

from __future__ import annotations

import numpy as np

from sim import kernels, rng
from sim.config import Config


def head_output(A: np.ndarray, V: np.ndarray) -> np.ndarray:
    """``Y = A V`` (``T x d``)."""
    return np.asarray(A, dtype=float) @ np.asarray(V, dtype=float)


def contribution_weights(A: np.ndarray, V: np.ndarray) -> np.ndarray:
    """``CW_ij = A_ij <v_j, y_i>/||y_i||^2`` (``T x T``); rows sum to 1 (``y_i != 0``)."""
    A = np.asarray(A, dtype=float)
    V = np.asarray(V, dtype=float)
    Y = A @ V
    return A * (Y @ V.T) / np.sum(Y * Y, axis=1, keepdims=True)


def deletion_effect(A: np.ndarray, V: np.ndarray) -> np.ndarray:
    """``||y_i - y_i^(-j)||`` (``T x T``) by direct deletion: row ``i`` of ``A`` with entry
    ``j`` removed and renormalised (diagonal included; ``A_ij = 1`` gives ``nan``)."""
    A = np.asarray(A, dtype=float)
    V = np.asarray(V, dtype=float)
    T = A.shape[0]
    Y = A @ V
    out = np.empty((T, T))
    for j in range(T):
        keep = np.ones(T, dtype=bool)
        keep[j] = False
        rest = A[:, keep]
        mass = rest.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            y_minus = (rest / mass) @ V[keep]
        out[:, j] = np.linalg.norm(Y - y_minus, axis=1)
    return out


def deletion_effect_formula(A: np.ndarray, V: np.ndarray) -> np.ndarray:
    """``A_ij ||v_j - y_i||/(1 - A_ij)`` (``T x T``), the closed form of ``deletion_effect``."""
    A = np.asarray(A, dtype=float)
    V = np.asarray(V, dtype=float)
    Y = A @ V
    dist = np.linalg.norm(Y[:, None, :] - V[None, :, :], axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return A * dist / (1.0 - A)


def first_layer_head(config: Config, seed: int, sample: int) -> tuple[np.ndarray, np.ndarray]:
    """``(A, V)`` of head 0 in layer 1 of sample ``sample`` of ``(config, seed)``: the attention
    matrix the forward pass applies and the values ``V = X W_V`` (the sink's value scaled by
    ``sink_value``); needs ``heads=1`` (the head's values are then in the model space)."""
    if config.heads != 1:
        raise ValueError(f"first_layer_head needs heads=1, got heads={config.heads}")
    ip, fp, proto = kernels.encode(config)
    s = rng.sample_seed(seed, sample)
    A = kernels.first_layer_attention(ip, fp, s, proto)[0].astype(np.float64)
    x = kernels.draw_input(ip, fp, s, proto).astype(np.float64)
    if config.norm == "pre":
        x = kernels.layer_norm(x)
    wv = kernels.draw_layer(ip, fp, s, 1, proto)[2][0].astype(np.float64)
    V = x @ wv
    if config.sink:
        V[0] *= config.sink_value
    return A, V


def quadratic_coefficients(s: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Least-squares ``values ~ c0 + c1 s + c2 s^2`` per row: ``values`` is ``samples x n``
    (``n >= 3`` sink rates ``s``); returns ``samples x 3`` (``c0, c1, c2``)."""
    s = np.asarray(s, dtype=float)
    design = np.column_stack([np.ones_like(s), s, s * s])
    coef, *_ = np.linalg.lstsq(design, np.asarray(values, dtype=float).T, rcond=None)
    return coef.T
