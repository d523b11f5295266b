"""Counter-based Gaussian random numbers for the numba engine.

Every random array is a pure function of a 64-bit *stream key*. The key of an array is derived
from ``(sample_seed, layer, matrix)``, so any weight matrix of any sample can be regenerated alone,
and results do not depend on the order in which threads run.

- ``sample_seed(seed, i)``: 64 bits from ``numpy.random.SeedSequence(seed, spawn_key=(i,))``.
- ``stream_key(sample_seed, layer, matrix)``: SplitMix64 mixing of the three (asymmetric in
  layer and matrix).
- element ``k`` of a stream: the SplitMix64 output ``mix64(key + (k + 1) * GOLDEN)``; pairs of
  53-bit uniforms in ``(0, 1)`` become pairs of standard normals by Box-Muller.
"""

from __future__ import annotations

import math

import numba
import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_ONE = np.uint64(1)
_TWO_PI = 2.0 * math.pi
_INV_2_53 = 1.0 / 9007199254740992.0

# Matrix identifiers inside one layer (layer 0 holds the input).
INPUT, W_Q, W_K, W_V, W_O, W_1, B_1, W_2, B_2, LOGITS, W_Q2, W_K2, LOGITS2 = range(13)


@numba.njit(inline="always", cache=True)
def mix64(z: np.uint64) -> np.uint64:
    """SplitMix64 finaliser (a bijection of 64-bit integers)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@numba.njit(cache=True)
def stream_key(sample_seed: np.uint64, layer: int, matrix: int) -> np.uint64:
    """Key of the random stream for one matrix of one layer of one sample."""
    k = mix64(np.uint64(sample_seed) ^ mix64(np.uint64(layer + 1) * GOLDEN))
    return mix64(k + np.uint64(matrix + 1) * _M2)


@numba.njit(cache=True)
def fill_normal(out, key: np.uint64, mean: float, std: float) -> None:
    """Fill the flat array ``out`` with ``mean + std * N(0, 1)`` from stream ``key``."""
    k = np.uint64(key)
    n = out.size
    flat = out.reshape(n)
    half = (n + 1) // 2
    for j in range(half):
        c = np.uint64(2 * j)
        a = mix64(k + (c + _ONE) * GOLDEN)
        b = mix64(k + (c + np.uint64(2)) * GOLDEN)
        u1 = (np.float64(a >> _S11) + 0.5) * _INV_2_53
        u2 = np.float64(b >> _S11) * _INV_2_53
        r = math.sqrt(-2.0 * math.log(u1))
        t = _TWO_PI * u2
        flat[2 * j] = mean + std * r * math.cos(t)
        if 2 * j + 1 < n:
            flat[2 * j + 1] = mean + std * r * math.sin(t)


def sample_seed(seed: int, index: int) -> np.uint64:
    """64-bit seed of Monte-Carlo sample ``index`` under the run seed ``seed``."""
    ss = np.random.SeedSequence(seed, spawn_key=(index,))
    return ss.generate_state(1, dtype=np.uint64)[0]


def sample_seeds(seed: int, start: int, stop: int) -> np.ndarray:
    """Seeds of samples ``start .. stop-1`` (uint64 array)."""
    return np.array([sample_seed(seed, i) for i in range(start, stop)], dtype=np.uint64)


def normal(shape: tuple[int, ...], key: np.uint64, mean: float = 0.0, std: float = 1.0
           ) -> np.ndarray:
    """The stream ``key`` as a float64 array of ``shape`` (for tests and the reference)."""
    out = np.empty(shape, dtype=np.float64)
    fill_normal(out, np.uint64(key), mean, std)
    return out
