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
    (``T x T``) if ``T <= d``, else ``x^T x`` (``d x d``); one ``dsyrk`` (half the flops of a
    matmul, as NumPy's ``x.T @ x``), the other triangle mirrored. A new ``n x n`` array."""
    T, d = x.shape
    n = min(T, d)
    c = np.zeros((n, n))
    uplo = np.array([_UPLO_L], dtype=np.uint8)  # Fortran lower = C upper triangle
    # Fortran sees x as A = x^T (d x T, lda = d): x^T x = A A^T ('N'), x x^T = A^T A ('T').
    trans = np.array([_TRANS_N if T > d else _TRANS_T], dtype=np.uint8)
    ints = np.array([n, T if T > d else d, d, n], dtype=np.int32)  # n, k, lda, ldc
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
def certified_count(a, lo, hi, rho):
    """The number of eigenvalues of the symmetric ``a`` (``n x n``, float64) above ``lo`` when
    one Cholesky factorisation certifies that it equals the number above ``hi`` (``lo < hi``),
    else ``-1`` (then count with ``count_above``). Two cases are certified:

    - rank ``n``: ``a - hi I`` is positive definite, so every eigenvalue is above ``hi``;
    - rank ``n - 1`` along the all-ones direction ``u = 1/sqrt(n)`` (LayerNorm centres every
      token, so ``x 1 = 0`` and ``x^T x u = 0``): the Rayleigh quotient ``u^T a u`` is below
      ``lo / 2``, so the smallest eigenvalue is below ``lo``; and ``a + rho u u^T - hi I`` is
      positive definite (``rho > 0``, for example ``lambda_max``), so by interlacing for a
      rank-one update the other ``n - 1`` eigenvalues of ``a`` are above ``hi``.

    Either way no eigenvalue lies in ``(lo, hi]``, the condition under which ``sim.kernels``
    accepts an inertia count, and the count is the same as two ``count_above`` calls give
    (up to eigenvalues within rounding, ``~ n eps |a|``, of ``lo`` or ``hi``)."""
    n = a.shape[0]
    u = np.full(n, 1.0 / np.sqrt(n))
    rayleigh = np.dot(u, np.dot(a, u))
    if rayleigh < 0.5 * lo:
        return n - 1 if _positive_definite(a, hi, u, rho) else -1
    return n if _positive_definite(a, hi, u, 0.0) else -1


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
            t = np.zeros((m, m))
            for i in range(m):
                t[i, i] = alpha[i]
                if i + 1 < m:
                    t[i, i + 1] = beta[i]
                    t[i + 1, i] = beta[i]
            vals, vecs = np.linalg.eigh(t)
            theta = vals[m - 1]
            if b * abs(vecs[m - 1, m - 1]) <= rtol * abs(theta):
                return theta, m, True
        if b <= 1e-300:
            return theta, m, False
        q[k + 1] = w / b
    return theta, kmax, False
