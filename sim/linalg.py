"""Gram-matrix and symmetric-eigenvalue helpers for ``sim.kernels.observe``: BLAS/LAPACK
routines numba does not expose, bound from SciPy's ``cython_blas``/``cython_lapack`` (the
OpenBLAS that numba's ``np.dot`` and ``np.linalg`` already use, so ``threadpool_limits`` covers
them too), eigenvalue counts (an inertia count, and a one-Cholesky certificate for the common
ranks) and a Lanczos top eigenvalue.

The routines see C-ordered NumPy arrays as Fortran column-major ones, i.e. transposed: a C-ordered
``T x d`` array ``x`` is the Fortran ``d x T`` matrix ``x^T``. For a symmetric matrix this is
immaterial except for the triangle: the Fortran lower triangle is the C upper one.
"""

from __future__ import annotations

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import types
from numba.extending import get_cython_function_address


def _bind(module: str, name: str, nargs: int):
    """An external function ``sigprop_<name>`` numba code can call (and cache: the symbol is
    resolved by name, registered again at every import)."""
    symbol = f"sigprop_{name}"
    llvm.add_symbol(symbol, get_cython_function_address(f"scipy.linalg.cython_{module}", name))
    return types.ExternalFunction(symbol, types.void(*([types.voidptr] * nargs)))


_dsytrf = _bind("lapack", "dsytrf", 8)
_dpotrf = _bind("lapack", "dpotrf", 5)
_dsyrk = _bind("blas", "dsyrk", 10)

_UPLO_L = ord("L")
_TRANS_N = ord("N")
_TRANS_T = ord("T")


@numba.njit(cache=True)
def gram(x):
    """The smaller Gram matrix of ``x`` (``T x d``, float64, C-contiguous): ``x x^T``
    (``T x T``) if ``T < d``, else ``x^T x`` (``d x d``; at ``T = d`` this side, where
    LayerNorm's null vector ``1`` is known, see ``certified_count``); one ``dsyrk`` (half the
    flops of a matmul, as NumPy's ``x.T @ x``), the other triangle mirrored. A new ``n x n``
    array."""
    T, d = x.shape
    n = min(T, d)
    tokens = T >= d  # x^T x
    c = np.zeros((n, n))
    uplo = np.array([_UPLO_L], dtype=np.uint8)  # Fortran lower = C upper triangle
    # Fortran sees x as A = x^T (d x T, lda = d): x^T x = A A^T ('N'), x x^T = A^T A ('T').
    trans = np.array([_TRANS_N if tokens else _TRANS_T], dtype=np.uint8)
    ints = np.array([n, T if tokens else d, d, n], dtype=np.int32)  # n, k, lda, ldc
    scalars = np.array([1.0, 0.0])
    _dsyrk(uplo.ctypes, trans.ctypes, ints[0:].ctypes, ints[1:].ctypes, scalars[0:].ctypes,
           x.ctypes, ints[2:].ctypes, scalars[1:].ctypes, c.ctypes, ints[3:].ctypes)
    for i in range(n):
        for j in range(i):
            c[i, j] = c[j, i]
    return c


@numba.njit(cache=True)
def count_above(a, c):
    """The number of eigenvalues of the symmetric ``a`` (``n x n``, float64) above ``c``:
    the positive inertia (Sylvester) of ``a - c I`` from its Bunch-Kaufman factorisation
    ``P (a - c I) P^T = L D L^T`` (LAPACK ``dsytrf``; ``D`` has 1 x 1 and 2 x 2 blocks).
    Exact for ``a - c I + E`` with ``|E|`` a small multiple of ``n eps |a|``. ``a`` is kept.
    Returns ``-1`` if LAPACK reports an argument error."""
    n = a.shape[0]
    f = a.copy()
    for i in range(n):
        f[i, i] -= c
    uplo = np.array([_UPLO_L], dtype=np.uint8)
    lwork = 64 * n
    work = np.empty(lwork)
    ipiv = np.zeros(n, dtype=np.int32)
    ints = np.array([n, n, lwork, 0], dtype=np.int32)  # n, lda, lwork, info
    _dsytrf(uplo.ctypes, ints[0:].ctypes, f.ctypes, ints[1:].ctypes, ipiv.ctypes, work.ctypes,
            ints[2:].ctypes, ints[3:].ctypes)
    if ints[3] < 0:
        return -1
    # Fortran D(i, j) (lower) is the C-order f[j, i]; a 2 x 2 block has ipiv(k) = ipiv(k+1) < 0
    pos = 0
    k = 0
    while k < n:
        if ipiv[k] > 0 or k + 1 == n:
            if f[k, k] > 0.0:
                pos += 1
            k += 1
        else:
            p, q, r = f[k, k], f[k, k + 1], f[k + 1, k + 1]
            det = p * r - q * q
            if det < 0.0:
                pos += 1
            elif det > 0.0:
                if p + r > 0.0:
                    pos += 2
            elif p + r > 0.0:
                pos += 1
            k += 2
    return pos


@numba.njit(cache=True)
def _positive_definite(a, c, u, rho):
    """Whether ``a - c I + rho u u^T`` (``a`` symmetric ``n x n`` float64, ``u`` of length
    ``n``) is positive definite: its Cholesky factorisation (LAPACK ``dpotrf``, one third of the
    flops of ``dsytrf`` and blocked) runs to the end. Like ``count_above``, exact for the matrix
    plus an ``E`` with ``|E|`` a small multiple of ``n eps |a|``. ``a`` is kept."""
    n = a.shape[0]
    f = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            f[i, j] = a[i, j] + rho * u[i] * u[j]
        f[i, i] -= c
    uplo = np.array([_UPLO_L], dtype=np.uint8)
    ints = np.array([n, n, 0], dtype=np.int32)  # n, lda, info
    _dpotrf(uplo.ctypes, ints[0:].ctypes, f.ctypes, ints[1:].ctypes, ints[2:].ctypes)
    return ints[2] == 0


@numba.njit(cache=True)
def certified_count(a, c, rho):
    """The number of eigenvalues of the symmetric ``a`` (``n x n``, float64) above ``c > 0`` when
    one Cholesky factorisation certifies it, else ``-1`` (then count with ``count_above``). Two
    cases are certified:

    - rank ``n``: ``a - c I`` is positive definite, so every eigenvalue is above ``c``;
    - rank ``n - 1`` along the all-ones direction ``u = 1/sqrt(n)`` (LayerNorm centres every
      token, so ``x 1 = 0`` and ``x^T x u = 0``): the Rayleigh quotient ``u^T a u`` is below
      ``c / 2``, so the smallest eigenvalue is below ``c``; and ``a + rho u u^T - c I`` is
      positive definite (``rho > 0``, for example ``lambda_max``), so by interlacing for a
      rank-one update the other ``n - 1`` eigenvalues of ``a`` are above ``c``.

    Exact, like ``count_above``, for ``a`` plus an ``E`` with ``|E|`` a small multiple of
    ``n eps |a|``."""
    n = a.shape[0]
    u = np.full(n, 1.0 / np.sqrt(n))
    rayleigh = np.dot(u, np.dot(a, u))
    if rayleigh < 0.5 * c:
        return n - 1 if _positive_definite(a, c, u, rho) else -1
    return n if _positive_definite(a, c, u, 0.0) else -1


@numba.njit(cache=True)
def _count_below(alpha, beta, m, x):
    """The number of eigenvalues below ``x`` of the symmetric tridiagonal matrix with diagonal
    ``alpha[:m]`` and off-diagonal ``beta[:m-1]`` (Sturm sequence: the negative pivots of the
    ``L D L^T`` factorisation of ``T - x I``)."""
    count = 0
    q = 1.0
    for i in range(m):
        q = alpha[i] - x - (beta[i - 1] * beta[i - 1] / q if i > 0 else 0.0)
        if q == 0.0:
            q = -1e-300  # x is an eigenvalue of the leading block: count it below (LAPACK dstebz)
        if q < 0.0:
            count += 1
    return count


@numba.njit(cache=True)
def _top_ritz(alpha, beta, m):
    """The largest eigenvalue ``theta`` of the ``m x m`` symmetric tridiagonal matrix with
    diagonal ``alpha[:m]`` and off-diagonal ``beta[:m-1]`` (``beta >= 0``), and the last
    component of its unit eigenvector: ``theta`` by bisection on Sturm counts down to adjacent
    floats, the eigenvector by two steps of inverse iteration with ``theta' I - T``
    (``theta' = theta + 4 eps |T|``: positive definite, so ``L D L^T`` without pivoting).
    ``O(m)`` work per bisection step: microseconds where a dense ``eigh`` takes tens. A
    non-finite entry gives ``(nan, nan)`` (then Lanczos reports no convergence)."""
    if not (np.isfinite(alpha[:m]).all() and np.isfinite(beta[:m - 1]).all()):
        return np.nan, np.nan  # no eigenvalue to find, and nan bounds never end the bisection
    lo = hi = alpha[0]
    for i in range(m):
        r = (beta[i - 1] if i > 0 else 0.0) + (beta[i] if i + 1 < m else 0.0)
        lo = min(lo, alpha[i] - r)
        hi = max(hi, alpha[i] + r)
    norm = max(abs(lo), abs(hi)) + 1e-300  # |T| bound (Gershgorin)
    # invariant: fewer than m eigenvalues below lo, all m below or at hi
    lo -= 1e-15 * norm
    hi += 1e-15 * norm
    while True:
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if _count_below(alpha, beta, m, mid) < m:
            lo = mid
        else:
            hi = mid
    theta = hi
    shift = theta + 4e-16 * norm
    v = np.ones(m)
    piv = np.empty(m)
    for _ in range(2):
        # solve (shift I - T) v' = v: forward elimination, then back substitution; a pivot
        # rounded to 0 is replaced by eps |T| (as LAPACK's inverse iteration dstein does)
        piv[0] = shift - alpha[0]
        for i in range(m):
            if i > 0:
                c = -beta[i - 1] / piv[i - 1]
                piv[i] = shift - alpha[i] + c * beta[i - 1]
                v[i] -= c * v[i - 1]
            if piv[i] == 0.0:
                piv[i] = 2.2e-16 * norm
        v[m - 1] /= piv[m - 1]
        for i in range(m - 2, -1, -1):
            v[i] = (v[i] + beta[i] * v[i + 1]) / piv[i]
        v /= np.sqrt(np.dot(v, v))
    return theta, v[m - 1]


@numba.njit(cache=True)
def top_eigenvalue(g, rtol, kmax, every):
    """Largest eigenvalue of the symmetric ``g`` (``n x n``, float64) by Lanczos with full
    reorthogonalisation from a fixed pseudo-random start, at most ``kmax`` steps. Every
    ``every`` steps the largest Ritz value ``theta`` (``<= lambda_max``) is checked: converged
    when the residual ``|beta_k s_k|`` bounding ``|lambda - theta|`` for some eigenvalue
    ``lambda`` is at most ``rtol * theta``. Returns ``(theta, steps, converged)``."""
    n = g.shape[0]
    kmax = min(kmax, n)
    q = np.empty((kmax + 1, n))
    alpha = np.zeros(kmax)
    beta = np.zeros(kmax)
    # golden-ratio (Weyl) sequence in [-1, 1): no structure a Gram matrix would be orthogonal to
    s = 0.0
    for i in range(n):
        u = ((i + 1) * 0.6180339887498949) % 1.0
        q[0, i] = 2.0 * u - 1.0 + 0.25
        s += q[0, i] * q[0, i]
    q[0] /= np.sqrt(s)
    theta = 0.0
    for k in range(kmax):
        w = np.dot(g, q[k])
        basis = q[:k + 1]
        c = np.dot(basis, w)
        w -= np.dot(c, basis)
        c2 = np.dot(basis, w)
        w -= np.dot(c2, basis)
        alpha[k] = c[k] + c2[k]
        b = np.sqrt(np.dot(w, w))
        beta[k] = b
        m = k + 1
        if m % every == 0 or m == kmax or b <= 1e-300:
            theta, last = _top_ritz(alpha, beta, m)
            if b * abs(last) <= rtol * abs(theta):
                return theta, m, True
        if b <= 1e-300:
            return theta, m, False
        q[k + 1] = w / b
    return theta, kmax, False
