"""``sim.fastmath`` (vectorisable exp, log, sincos) and the Gaussian generator built on it.

Accuracy bounds, in ulps of the reference value (``np.spacing``):
- ``exp_nonpos``: <= 1 ulp from ``np.exp`` and ``math.exp`` on ``[-708, 0]``; exactly 0 below.
- ``exp_nonpos32``: <= 1 float32 ulp from float64 ``np.exp`` rounded to float32 on
  ``[EXP32_FLUSH, 0]``; exactly 0 below.
- ``softmax_sums32``, ``moments32``: bit for bit the documented 8-lane float64 sums.
- ``log_unit``: <= 1 ulp from ``np.log`` on ``[2^-60, 1]``.
- ``sincos_2pi``: absolute error <= ``2^-53`` against the exact value (mpmath, 120 bits), and
  <= ``8 * 2^-53`` against ``np.cos/np.sin(2 pi v)`` (whose argument ``2 pi v`` is itself
  rounded: up to ``4 * 2^-53`` from the product and ``2 * 2^-53`` from the constant ``2 pi``).
"""

from __future__ import annotations

import math

import mpmath
import numba
import numpy as np
import pytest
from scipy import stats

from sim import fastmath, rng

EPS = 2.0**-53


@numba.njit(error_model="numpy")
def _exp(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = fastmath.exp_nonpos(x[i])
    return out


@numba.njit(error_model="numpy")
def _exp32(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = fastmath.exp_nonpos32(x[i])
    return out


@numba.njit
def _sums32(e, x, n):
    return fastmath.softmax_sums32(e, x, n)


@numba.njit
def _moments32(a, n, c):
    return fastmath.moments32(a, n, c)


@numba.njit(error_model="numpy")
def _log(u):
    out = np.empty_like(u)
    for i in range(u.size):
        out[i] = fastmath.log_unit(u[i])
    return out


@numba.njit(error_model="numpy")
def _sincos(v):
    c = np.empty_like(v)
    s = np.empty_like(v)
    for i in range(v.size):
        c[i], s[i] = fastmath.sincos_2pi(v[i])
    return c, s


def _ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    return np.abs(got - want) / np.spacing(np.abs(want))


def test_exp_within_one_ulp() -> None:
    x = -np.concatenate([np.linspace(0.0, 708.0, 2_000_001), np.geomspace(1e-300, 1.0, 50_001),
                         np.linspace(0.0, 1e-3, 50_001), [0.5 * math.log(2.0), math.log(2.0)],
                         np.log(2.0) * (np.arange(-1021, 1) + 0.5)])
    x = x[x >= fastmath.EXP_FLUSH]
    got = _exp(x)
    assert _ulps(got, np.exp(x)).max() <= 1.0
    sub = x[::97]
    assert _ulps(got[::97], np.array([math.exp(v) for v in sub])).max() <= 1.0


def test_exp_special_values() -> None:
    x = np.array([0.0, -0.0, -708.0, np.nextafter(-708.0, -np.inf), -709.0, -745.0, -1e308,
                  -np.inf, np.nan])
    got = _exp(x)
    assert got[0] == 1.0 and got[1] == 1.0
    assert got[2] == pytest.approx(math.exp(-708.0), rel=2 * EPS)
    assert np.all(got[3:8] == 0.0)
    assert np.isnan(got[8])
    # the flush costs at most exp(-708) in absolute terms
    assert np.exp(np.nextafter(-708.0, -np.inf)) < 3.31e-308


def test_exp_mutation_twin_is_detected() -> None:
    """A polynomial one degree short fails the same 1-ulp check (the check can fail)."""
    x = -np.linspace(0.0, 1.0, 100_001)
    k = np.round(x / math.log(2.0))
    r = x - k * math.log(2.0)
    short = sum(r**j / math.factorial(j) for j in range(12)) * 2.0**k
    assert _ulps(short, np.exp(x)).max() > 1.0


def _ulps32(got: np.ndarray, x: np.ndarray) -> np.ndarray:
    want = np.exp(x.astype(np.float64)).astype(np.float32)
    return np.abs(got.astype(np.float64) - want) / np.spacing(want).astype(np.float64)


def test_exp32_within_one_ulp() -> None:
    flush = float(fastmath.EXP32_FLUSH)
    # all float32 in [-1, -1/2] (2^23 values), a dense grid and the reduction's half-way points
    every = -np.arange(0x3F000000, 0x3F800001, dtype=np.int32).view(np.float32)
    x = np.concatenate([every, np.linspace(flush, 0.0, 4_000_001, dtype=np.float32),
                        -np.geomspace(1e-38, 1.0, 50_001).astype(np.float32),
                        (math.log(2.0) * (np.arange(-124, 1) + 0.5)).astype(np.float32)])
    x = x[x >= fastmath.EXP32_FLUSH]
    got = _exp32(x)
    assert got.dtype == np.float32
    assert _ulps32(got, x).max() <= 1.0


def test_exp32_special_values() -> None:
    f = np.float32
    x = np.array([0.0, -0.0, fastmath.EXP32_FLUSH,
                  np.nextafter(fastmath.EXP32_FLUSH, f(-np.inf)), -88.0, -1e30, -np.inf, np.nan],
                 dtype=np.float32)
    got = _exp32(x)
    assert got[0] == 1.0 and got[1] == 1.0
    assert got[2] == np.float32(math.exp(float(fastmath.EXP32_FLUSH)))
    assert np.all(got[3:7] == 0.0)
    assert np.isnan(got[7])
    # the flush costs at most exp(-86) = 4.5e-38 in absolute terms; results stay normal
    assert math.exp(float(fastmath.EXP32_FLUSH)) < 4.5e-38
    assert got[2] >= np.finfo(np.float32).tiny


def test_exp32_mutation_twin_is_detected() -> None:
    """A float32 polynomial one degree short (degree 6) fails the same 1-ulp check."""
    x = -np.linspace(0.0, 1.0, 100_001, dtype=np.float32)
    k = np.round(x.astype(np.float64) / math.log(2.0))
    r = (x - k * math.log(2.0)).astype(np.float32)
    short = sum(r ** j / np.float32(math.factorial(j)) for j in range(7)) * np.float32(2.0) ** k
    assert _ulps32(short.astype(np.float32), x).max() > 1.0


def _lane_sum(v: np.ndarray) -> float:
    """The documented order: lane ``i`` sums ``v[j]``, ``j = i mod 8``, in order; then
    ``((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))``."""
    s = [0.0] * 8
    for j, value in enumerate(v.tolist()):
        s[j % 8] += value
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))


@pytest.mark.parametrize("n", [0, 8, 64, 1000])
def test_lane_sums_are_the_documented_order(n: int) -> None:
    gen = np.random.default_rng(n)
    e = gen.random(n + 5).astype(np.float32)
    x = (-20.0 * gen.random(n + 5)).astype(np.float32)
    z, ez, sq = _sums32(e, x, n)
    e64, x64 = e[:n].astype(np.float64), x[:n].astype(np.float64)
    assert (z, ez, sq) == (_lane_sum(e64), _lane_sum(e64 * x64), _lane_sum(e64 * e64))
    c = 0.37
    s1, s2 = _moments32(x, n, c)
    assert (s1, s2) == (_lane_sum(x64 - c), _lane_sum((x64 - c) ** 2))


def test_lane_sums_twin_plain_order_differs() -> None:
    """The order check is sharp: on ``[2^60, 1 x 7, -2^60, 1 x 7]`` left-to-right summation
    loses the first seven ones, the lanes keep them."""
    a = np.array([2.0**60] + [1.0] * 7 + [-(2.0**60)] + [1.0] * 7, dtype=np.float32)
    s1, _ = _moments32(a, 16, 0.0)
    plain = 0.0
    for v in a.astype(np.float64).tolist():
        plain += v
    assert s1 == _lane_sum(a.astype(np.float64)) == 14.0
    assert plain == 7.0


def test_log_within_one_ulp() -> None:
    u = np.concatenate([np.geomspace(2.0**-60, 1.0, 1_000_001),
                        np.linspace(2.0**-53, 1.0, 1_000_001), 1.0 - np.arange(2000) * EPS,
                        np.linspace(0.5, math.sqrt(0.5) + 1e-3, 100_001), 2.0 ** -np.arange(60.0),
                        [math.sqrt(0.5), np.nextafter(math.sqrt(0.5), 0)]])
    got = _log(u)
    want = np.log(u)
    nonzero = want != 0.0
    assert _ulps(got[nonzero], want[nonzero]).max() <= 1.0
    assert np.all(got[~nonzero] == 0.0)
    assert _log(np.array([1.0]))[0] == 0.0


def test_sincos_against_exact_values() -> None:
    rs = np.random.default_rng(0)
    v = np.concatenate([rs.random(4000), np.arange(0, 8) / 8.0,
                        np.nextafter(np.arange(1, 9) / 8.0, 0.0), np.arange(1, 8) / 8.0 + EPS,
                        [1.0 - 2.0**-52, 2.0**-52, 1e-300]])
    c, s = _sincos(v)
    mpmath.mp.prec = 120
    two_pi = 2 * mpmath.pi
    err_c = max(abs(mpmath.mpf(ci) - mpmath.cos(two_pi * mpmath.mpf(vi)))
                for ci, vi in zip(c, v, strict=True))
    err_s = max(abs(mpmath.mpf(si) - mpmath.sin(two_pi * mpmath.mpf(vi)))
                for si, vi in zip(s, v, strict=True))
    assert float(err_c) <= EPS and float(err_s) <= EPS
    exact = _sincos(np.arange(0, 4) / 4.0)
    np.testing.assert_array_equal(exact[0], [1.0, 0.0, -1.0, 0.0])
    np.testing.assert_array_equal(exact[1], [0.0, 1.0, 0.0, -1.0])


def test_sincos_against_numpy_on_a_dense_grid() -> None:
    v = np.concatenate([np.arange(2**20) / 2**20, np.linspace(0.0, 1.0 - EPS, 1_000_001)])
    c, s = _sincos(v)
    assert np.abs(c - np.cos(2 * np.pi * v)).max() <= 8 * EPS
    assert np.abs(s - np.sin(2 * np.pi * v)).max() <= 8 * EPS


# ----------------------------------------------------------------------------- the generator

def _mix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _numpy_normals(key: np.uint64, n: int) -> np.ndarray:
    """The stream by its documented definition (``sim.rng``), with NumPy's libm functions."""
    pairs = (n + 1) // 2
    counter = np.arange(1, 2 * pairs + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        bits = _mix64(np.uint64(key) + counter * rng.GOLDEN) >> np.uint64(12)
    u = bits.astype(np.float64) * 2.0**-52
    u1, u2 = u[0::2] + EPS, u[1::2]
    r = np.sqrt(-2.0 * np.log(u1))
    z = np.empty(2 * pairs)
    z[0::2] = r * np.cos(2 * np.pi * u2)
    z[1::2] = r * np.sin(2 * np.pi * u2)
    return z[:n]


def test_generator_is_box_muller_of_the_documented_uniforms() -> None:
    key = rng.stream_key(np.uint64(99), 2, rng.W_1)
    got = rng.normal((100_001,), key)
    want = _numpy_normals(key, 100_001)
    # log: 1 ulp (r: 1/2 ulp); cos/sin: 8 * 2^-53 absolute (see the module docstring)
    np.testing.assert_allclose(got, want, rtol=4 * EPS, atol=10 * EPS * np.abs(want).max())


def test_element_k_depends_only_on_key_and_k() -> None:
    key = rng.stream_key(np.uint64(5), 1, rng.W_Q)
    long = rng.normal((2001,), key)
    for n in (1, 2, 7, 1000, 2000):
        np.testing.assert_array_equal(rng.normal((n,), key), long[:n])
    np.testing.assert_array_equal(rng.normal((40, 50), key).ravel(), long[:2000])


def test_generator_moments_and_ks() -> None:
    n = 1_000_000
    z = rng.normal((n,), rng.stream_key(np.uint64(2026), 4, rng.W_2))
    assert stats.kstest(z, "norm", method="asymp").pvalue > 1e-6
    # mean, variance, skewness moment, kurtosis moment at 5 standard errors
    for power, want, var in ((1, 0.0, 1.0), (2, 1.0, 2.0), (3, 0.0, 15.0), (4, 3.0, 96.0)):
        assert abs(np.mean(z**power) - want) < 5 * math.sqrt(var / n), power
    # tails: the count beyond |z| > 4 is binomial
    p = 2 * stats.norm.sf(4.0)
    assert abs(np.sum(np.abs(z) > 4.0) - n * p) < 5 * math.sqrt(n * p)
    # twin: a 1% scale error is rejected by the variance check
    assert abs(np.mean((1.01 * z) ** 2) - 1.0) > 5 * math.sqrt(2.0 / n)
