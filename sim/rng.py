"""Counter-based Gaussian random numbers for the numba engine.

Every random array is a pure function of a 64-bit *stream key*. The key of an array is derived
from ``(sample_seed, layer, matrix)``, so any weight matrix of any sample can be regenerated alone,
and results do not depend on the order in which threads run.

- ``sample_seed(seed, i)``: 64 bits from ``numpy.random.SeedSequence(seed, spawn_key=(i,))``.
- ``stream_key(sample_seed, layer, matrix)``: SplitMix64 mixing of the three (asymmetric in
  layer and matrix).
- element ``k`` of a stream: the SplitMix64 output ``mix64(key + (k + 1) * GOLDEN)``. Elements
  ``2j, 2j + 1`` give the 52-bit uniforms ``u1 = (a + 1/2) 2^-52`` in ``(0, 1)`` and
  ``u2 = b 2^-52`` in ``[0, 1)`` (``a, b`` the top 52 bits), and Box-Muller turns them into the
  normals ``r cos(2 pi u2)``, ``r sin(2 pi u2)``, ``r = sqrt(-2 log u1)``; an odd-sized array
  ends with the cosine of its last pair, so every element is a pure function of ``(key, k)``.
  ``log`` and ``(cos, sin)(2 pi .)`` are ``sim.fastmath.log_unit`` and ``sincos_2pi`` (<= 1 ulp,
  SIMD-vectorised; about 5 ns per normal instead of 24 with libm).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from sim import fastmath

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S12 = np.uint64(12)
_ONE = np.uint64(1)
_TWO = np.uint64(2)
_ONE_BITS = np.uint64(0x3FF0000000000000)  # bits of 1.0
_HALF_ULP = 2.0**-53  # (1/2) 2^-52

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


@numba.njit(inline="always", cache=True)
def _unit52(z: np.uint64) -> float:
    """The top 52 bits of ``z`` times ``2^-52`` (exact; in ``[0, 1)``), by a bit cast."""
    return fastmath.i64_as_f64((z >> _S12) | _ONE_BITS) - 1.0


@numba.njit(inline="always", cache=True)
def _box_muller(key: np.uint64, j: int) -> tuple[float, float]:
    """The standard normals ``(z_2j, z_2j+1)`` of pair ``j`` of stream ``key``."""
    c = np.uint64(2 * j)
    u1 = _unit52(mix64(key + (c + _ONE) * GOLDEN)) + _HALF_ULP
    u2 = _unit52(mix64(key + (c + _TWO) * GOLDEN))
    r = math.sqrt(-2.0 * fastmath.log_unit(u1))
    cs, sn = fastmath.sincos_2pi(u2)
    return r * cs, r * sn


# error_model="numpy": no ZeroDivisionError branch in log_unit, so the loop vectorises
@numba.njit(cache=True, error_model="numpy")
def fill_normal(out, key: np.uint64, mean: float, std: float) -> None:
    """Fill the flat array ``out`` with ``mean + std * N(0, 1)`` from stream ``key``."""
    k = np.uint64(key)
    n = out.size
    flat = out.reshape(n)
    for j in range(n // 2):
        z0, z1 = _box_muller(k, j)
        flat[2 * j] = mean + std * z0
        flat[2 * j + 1] = mean + std * z1
    if n % 2 == 1:
        z0, z1 = _box_muller(k, n // 2)
        flat[n - 1] = mean + std * z0


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
