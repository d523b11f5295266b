"""``sim.fastmath`` (vectorisable exp, log, sincos) and the Gaussian generator built on it.

Accuracy bounds, in ulps of the reference value (``np.spacing``):
- ``exp_nonpos``: <= 1 ulp from ``np.exp`` and ``math.exp`` on ``[-708, 0]``; exactly 0 below.
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
