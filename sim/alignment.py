"""Kind ``alignment``: per-layer alignment of the tokens with the top eigen-directions of the
value/output product ``F`` (the power-method reading of a transformer, science/power-method.md).

One head applies ``F = W_V^T`` to each token (``sim.config``). The alignment of a token ``x`` with
a matrix ``K`` is ``||Proj_S x|| / ||x||``, ``S`` the real invariant subspace of the eigenvalue of
``K`` of largest modulus: the eigenvector's line for a real eigenvalue (so ``|cos|``), the plane of
``Re v, Im v`` for a complex pair. Observables (``ALIGNMENT_OBSERVABLES``), means over tokens
unless stated, at layers ``0 .. depth``:

- ``align_F``: ``K = F_1``, layer 1's ``F`` (steering included);
- ``align_M``: ``K = M = alpha_attn I + F_1``;
- ``align_centred``: ``K = P M``, ``P = I - 1 1^T/d`` (LayerNorm's feature centring);
- ``align_u``: the steering direction ``u`` (NaN without steering);
- ``align_own``: ``K = alpha_attn I + F_l`` of the current layer ``l`` (layer 1's at layer 0);
- ``align_mean_M``: the mean token's alignment with ``M``;
- ``cosine``: mean off-diagonal token cosine;
- ``misalign_F`` .. ``misalign_mean_M``: ``1 -`` the matching ``align_*``, computed without
  cancellation (per token ``1 - c = s^2/(1 + c)``, ``s = ||x - Proj_S x||/||x||``), so that it
  keeps its relative precision down to about ``1e-15`` where ``1 - align`` would be rounding
  below about ``1e-8``.

Eigen-decompositions use LAPACK through NumPy (numba cannot return complex eigenvectors of a real
matrix); samples run on threads (the numba parts release the GIL), each writing its own slot.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from sim import kernels

_ALIGNED = ("align_F", "align_M", "align_centred", "align_u", "align_own", "align_mean_M")
ALIGNMENT_OBSERVABLES = (*_ALIGNED, "cosine", *(f"mis{name}" for name in _ALIGNED))
#: an eigenvalue counts as real when ``|Im lambda| <= REAL_TOL |lambda|``
REAL_TOL = 1e-10


def top_subspace(k: np.ndarray) -> np.ndarray:
    """Orthonormal basis (``d x 1`` or ``d x 2``) of the real invariant subspace of the
    eigenvalue of ``k`` (``d x d``) of largest modulus."""
    values, vectors = np.linalg.eig(k)
    top = int(np.argmax(np.abs(values)))
    v = vectors[:, top]
    if abs(values[top].imag) <= REAL_TOL * abs(values[top]):
        basis = np.real(v)[:, None]
    else:
        basis = np.stack([v.real, v.imag], axis=1)
    q, _ = np.linalg.qr(basis)
    return q


def alignment(x: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """``||Proj_S x_t|| / ||x_t||`` for each row of ``x`` (``T x d``); ``basis`` is ``d x k``
    orthonormal."""
    proj = np.linalg.norm(x @ basis, axis=1)
    return proj / np.linalg.norm(x, axis=1)


def misalignment(x: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """``1 - alignment(x, basis)`` for each row of ``x`` without cancellation:
    ``s^2/(1 + c)`` with ``c`` the alignment and ``s = ||x_t - Proj_S x_t|| / ||x_t||``."""
    coords = x @ basis
    norm = np.linalg.norm(x, axis=1)
    c = np.linalg.norm(coords, axis=1) / norm
    s = np.linalg.norm(x - coords @ basis.T, axis=1) / norm
    return s * s / (1.0 + c)


def _value_matrix(weights: tuple) -> np.ndarray:
    return np.asarray(weights[2][0], dtype=np.float64).T


def _record(out: np.ndarray, x: np.ndarray, bases: dict[str, np.ndarray | None]) -> None:
    xx = x.astype(np.float64)
    mis = len(_ALIGNED) + 1  # first misalign_* slot
    for j, name in enumerate(_ALIGNED[:5]):
        basis = bases[name]
        out[j] = np.nan if basis is None else float(np.mean(alignment(xx, basis)))
        out[mis + j] = np.nan if basis is None else float(np.mean(misalignment(xx, basis)))
    mean = xx.mean(axis=0, keepdims=True)
    out[5] = float(alignment(mean, bases["align_M"])[0])
    out[mis + 5] = float(misalignment(mean, bases["align_M"])[0])
    unit = xx / np.linalg.norm(xx, axis=1, keepdims=True)
    T = xx.shape[0]
    total = unit.sum(axis=0)
    out[6] = (float(total @ total) - T) / (T * (T - 1.0))


def alignment_samples(ip: np.ndarray, fp: np.ndarray, seeds: np.ndarray,
                      proto: np.ndarray) -> np.ndarray:
    """``samples x (depth + 1) x len(ALIGNMENT_OBSERVABLES)`` (see the module docstring)."""
    depth, d = int(ip[kernels.I_DEPTH]), int(ip[kernels.I_D])
    shared = ip[kernels.I_SHARED] == 1
    alpha = fp[kernels.F_ALPHA_ATTN]
    steered = fp[kernels.F_STEER_MU] != 0.0
    u_off = kernels.F_VECTORS + (d * d if ip[kernels.I_VALUE] == kernels.VALUE_GIVEN else 0)
    centring = np.eye(d) - 1.0 / d
    out = np.empty((seeds.size, depth + 1, len(ALIGNMENT_OBSERVABLES)))

    def one(i: int) -> None:
        seed = seeds[i]
        x = kernels.draw_input_nogil(ip, fp, seed, proto)
        first = kernels.draw_layer_nogil(ip, fp, seed, 1, proto)
        m = alpha * np.eye(d) + _value_matrix(first)
        bases = {"align_F": top_subspace(_value_matrix(first)), "align_M": top_subspace(m),
                 "align_centred": top_subspace(centring @ m),
                 "align_u": fp[u_off:u_off + d, None] if steered else None}
        bases["align_own"] = bases["align_M"]
        _record(out[i, 0], x, bases)
        for layer in range(1, depth + 1):
            weights = first
            if not shared and layer > 1:
                weights = kernels.draw_layer_nogil(ip, fp, seed, layer, proto)
                bases["align_own"] = top_subspace(alpha * np.eye(d) + _value_matrix(weights))
            x, _, _ = kernels.block_nogil(x, weights, ip, fp)
            _record(out[i, layer], x, bases)

    with ThreadPoolExecutor(max(1, min(numba.get_num_threads(), seeds.size))) as pool:
        list(pool.map(one, range(seeds.size)))
    return out
