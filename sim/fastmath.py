"""Vectorisable elementary functions for the numba kernels (no ``fastmath`` needed).

numba calls libm for ``math.exp``, ``math.log``, ... one element at a time (about 20-30 ns each
here; no SVML). The functions below are branch-free float64 arithmetic (``llvm.fma``, integer
bit casts and selects), so LLVM SIMD-vectorises loops that call them, with IEEE semantics and
the same bits on every machine (``fma`` is exactly rounded by definition).

- ``exp_nonpos(x)``: ``exp(x)`` for ``x <= 0`` (softmax of max-shifted scores). Cody-Waite
  reduction ``x = k ln 2 + r`` (split ``ln 2``, ``|r| <= ln 2 / 2``), degree-13 Taylor polynomial,
  ``2^k`` added to the exponent bits. Error <= 1 ulp against ``math.exp`` for
  ``-708 <= x <= 0`` (``tests/test_fastmath.py``); ``x < -708`` gives ``0`` (absolute error below
  ``2.3e-308``); ``exp_nonpos(0) == 1`` exactly; NaN gives NaN. Not valid for ``x > 0``.
- ``log_unit(u)``: ``log(u)`` for ``0 < u <= 1`` normal (uniform deviates). ``u = 2^e m`` with
  ``m`` in ``[sqrt(1/2), sqrt(2))``, ``log m = 2 atanh(f)``, ``f = (m - 1) / (m + 1)``, odd series
  in ``f``. Error <= 1 ulp against ``math.log``.
- ``sincos_2pi(v)``: ``(cos(2 pi v), sin(2 pi v))`` for ``0 <= v < 1``: exact reduction of ``v`` to
  the nearest quarter turn (``v - q/4`` is exact), then Taylor polynomials in ``t = 2 pi w``,
  ``|w| <= 1/8``. Absolute error <= 1 ulp of 1 (``2.2e-16``) against ``math.cos/sin(2 pi v)``.
- ``exp_nonpos32(x)``: ``exp(x)`` for float32 ``x <= 0``, all in float32 (8 lanes of AVX2 instead
  of 4): the same reduction with ``k ln 2`` split into the float32 ``ln 2`` and its float32
  remainder (``fma`` makes ``x - k ln2_hi`` exact), degree-7 Taylor polynomial. Error <= 1 ulp (of
  float32) against ``exp`` computed in float64 and rounded to float32, for
  ``EXP32_FLUSH <= x <= 0``; ``x < EXP32_FLUSH`` gives ``0`` (absolute error below ``4.5e-38``,
  results stay normal); ``exp_nonpos32(0) == 1``; NaN gives NaN.
- ``softmax_sums32``, ``moments32``: float64 sums over float32 arrays in 8 lanes, written as LLVM
  vector code (SIMD without reassociation; a fixed order, so the same bits everywhere).

Bit casts are numba intrinsics (``f64_as_i64``, ``i64_as_f64``; float32: ``f32_as_i32``,
``i32_as_f32``); ``fma`` is ``llvm.fma.f64`` (``fma32``: ``llvm.fma.f32``)
(one instruction with FMA hardware, else a correctly rounded libm call: same bits, slower).
``log_unit`` divides: a loop calling it vectorises only in a function compiled with
``error_model="numpy"`` (numba's default model adds a ZeroDivisionError branch).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def f64_as_i64(typingctx, x):
    """The bits of float64 ``x`` as int64 (a bit cast, no conversion)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def i64_as_f64(typingctx, i):
    """The float64 whose bits are the 64-bit integer ``i`` (int64 or uint64; a bit cast)."""
    if i not in (types.int64, types.uint64):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(i), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` with one rounding (``llvm.fma.f64``; all three float64)."""
    if not (a == types.float64 and b == types.float64 and c == types.float64):
        return None

    def codegen(context, builder, signature, args):
        d = ir.DoubleType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(d, [d, d, d]),
                                            "llvm.fma.f64")
        return builder.call(fn, args)

    return types.float64(types.float64, types.float64, types.float64), codegen


@intrinsic
def f32_as_i32(typingctx, x):
    """The bits of float32 ``x`` as int32 (a bit cast)."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def i32_as_f32(typingctx, i):
    """The float32 whose bits are the low 32 bits of the integer ``i`` (int32 or int64; numba
    widens int32 arithmetic to int64, so the wrap-around is applied here)."""
    if i not in (types.int32, types.int64, types.uint32, types.uint64):
        return None

    def codegen(context, builder, signature, args):
        v = args[0]
        if v.type.width != 32:
            v = builder.trunc(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return types.float32(i), codegen


@intrinsic
def fma32(typingctx, a, b, c):
    """``a * b + c`` with one rounding (``llvm.fma.f32``; all three float32)."""
    if not (a == types.float32 and b == types.float32 and c == types.float32):
        return None

    def codegen(context, builder, signature, args):
        f = ir.FloatType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f, [f, f, f]),
                                            "llvm.fma.f32")
        return builder.call(fn, args)

    return types.float32(types.float32, types.float32, types.float32), codegen


_LANES = 8


def _lane_tree(builder, vec):
    """``((v0 + v1) + (v2 + v3)) + ((v4 + v5) + (v6 + v7))`` of an 8-lane vector."""
    v = [builder.extract_element(vec, ir.Constant(ir.IntType(32), i)) for i in range(_LANES)]
    return builder.fadd(builder.fadd(builder.fadd(v[0], v[1]), builder.fadd(v[2], v[3])),
                        builder.fadd(builder.fadd(v[4], v[5]), builder.fadd(v[6], v[7])))


@intrinsic
def softmax_sums32(typingctx, e, x, n):
    """``(sum_j e_j, sum_j e_j x_j, sum_j e_j^2)`` over ``j < n`` (``n`` a multiple of 8) of
    float32 1-D C-contiguous arrays ``e, x``, accumulated in float64 (the products of float32
    values are exact in float64): lane ``i`` sums the elements ``j = i mod 8`` in order, and the
    lanes are combined as ``((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))``. Written as
    8-lane LLVM vector code, so it runs as SIMD without reassociation: the same bits on every
    machine."""
    arr = types.Array(types.float32, 1, "C")
    if e != arr or x != arr or n not in (types.int64, types.intp):
        return None
    ret = types.UniTuple(types.float64, 3)

    def codegen(context, builder, signature, args):
        ev, xv, count = args
        ep = context.make_array(arr)(context, builder, value=ev).data
        xp = context.make_array(arr)(context, builder, value=xv).data
        ft = ir.VectorType(ir.FloatType(), _LANES)
        dt = ir.VectorType(ir.DoubleType(), _LANES)
        zero = ir.Constant(dt, [0.0] * _LANES)
        acc = [cgutils.alloca_once_value(builder, zero) for _ in range(3)]
        i64 = ir.IntType(64)
        blocks = builder.sdiv(count, ir.Constant(i64, _LANES))
        with cgutils.for_range(builder, blocks) as loop:
            base = builder.mul(loop.index, ir.Constant(i64, _LANES))
            ve = builder.load(builder.bitcast(builder.gep(ep, [base]), ft.as_pointer()), align=4)
            vx = builder.load(builder.bitcast(builder.gep(xp, [base]), ft.as_pointer()), align=4)
            de = builder.fpext(ve, dt)
            dx = builder.fpext(vx, dt)
            terms = (de, builder.fmul(de, dx), builder.fmul(de, de))
            for a, term in zip(acc, terms, strict=True):
                builder.store(builder.fadd(builder.load(a), term), a)
        out = [_lane_tree(builder, builder.load(a)) for a in acc]
        return context.make_tuple(builder, ret, out)

    return ret(e, x, n), codegen


@intrinsic
def moments32(typingctx, a, n, c):
    """``(sum_j (a_j - c), sum_j (a_j - c)^2)`` over ``j < n`` (``n`` a multiple of 8) of a
    float32 1-D C-contiguous array ``a``, in float64 (``c`` float64); lanes and their combination
    as in ``softmax_sums32`` (8-lane vector code: SIMD without reassociation, the same bits on
    every machine)."""
    arr = types.Array(types.float32, 1, "C")
    if a != arr or n not in (types.int64, types.intp) or c != types.float64:
        return None
    ret = types.UniTuple(types.float64, 2)

    def codegen(context, builder, signature, args):
        av, count, cv = args
        ap = context.make_array(arr)(context, builder, value=av).data
        ft = ir.VectorType(ir.FloatType(), _LANES)
        dt = ir.VectorType(ir.DoubleType(), _LANES)
        zero = ir.Constant(dt, [0.0] * _LANES)
        shift = builder.insert_element(zero, cv, ir.Constant(ir.IntType(32), 0))
        shift = builder.shuffle_vector(shift, shift, ir.Constant(ir.VectorType(
            ir.IntType(32), _LANES), [0] * _LANES))
        acc = [cgutils.alloca_once_value(builder, zero) for _ in range(2)]
        i64 = ir.IntType(64)
        blocks = builder.sdiv(count, ir.Constant(i64, _LANES))
        with cgutils.for_range(builder, blocks) as loop:
            base = builder.mul(loop.index, ir.Constant(i64, _LANES))
            va = builder.load(builder.bitcast(builder.gep(ap, [base]), ft.as_pointer()), align=4)
            dev = builder.fsub(builder.fpext(va, dt), shift)
            for a_, term in zip(acc, (dev, builder.fmul(dev, dev)), strict=True):
                builder.store(builder.fadd(builder.load(a_), term), a_)
        out = [_lane_tree(builder, builder.load(a_)) for a_ in acc]
        return context.make_tuple(builder, ret, out)

    return ret(a, n, c), codegen


_LOG2E = 1.4426950408889634
_SHIFT = 6755399441055744.0  # 1.5 * 2^52: x + _SHIFT rounds x to an integer in the low bits
_LN2_HI = 6.93147180369123816490e-01  # 0x3fe62e42fee00000: k * _LN2_HI exact for |k| < 2^21
_LN2_LO = 1.90821492927058770002e-10
#: ``1 / k!`` for ``k = 13 .. 2`` (Horner order)
_E13 = 1.0 / 6227020800.0
_E12 = 1.0 / 479001600.0
_E11 = 1.0 / 39916800.0
_E10 = 1.0 / 3628800.0
_E9 = 1.0 / 362880.0
_E8 = 1.0 / 40320.0
_E7 = 1.0 / 5040.0
_E6 = 1.0 / 720.0
_E5 = 1.0 / 120.0
_E4 = 1.0 / 24.0
_E3 = 1.0 / 6.0
_E2 = 0.5
#: below this ``exp_nonpos`` returns 0 (``exp(-708) = 3.3e-308`` is still normal)
EXP_FLUSH = -708.0


@numba.njit(inline="always", cache=True)
def exp_nonpos(x):
    """``exp(x)`` for float64 ``x <= 0`` (module docstring: accuracy, flush, NaN)."""
    xc = x if x > -709.0 else -709.0  # NaN and -inf -> -709 (result replaced below)
    kd = fma(xc, _LOG2E, _SHIFT)
    k = kd - _SHIFT
    r = fma(-k, _LN2_LO, fma(-k, _LN2_HI, xc))
    p = fma(r, _E13, _E12)
    p = fma(r, p, _E11)
    p = fma(r, p, _E10)
    p = fma(r, p, _E9)
    p = fma(r, p, _E8)
    p = fma(r, p, _E7)
    p = fma(r, p, _E6)
    p = fma(r, p, _E5)
    p = fma(r, p, _E4)
    p = fma(r, p, _E3)
    p = fma(r, p, _E2)
    p = fma(r * r, p, r) + 1.0
    e = i64_as_f64(f64_as_i64(p) + (f64_as_i64(kd) << 52))
    e = 0.0 if x < EXP_FLUSH else e
    return x if x != x else e


_F32 = np.float32
_LOG2E_F = _F32(1.4426950408889634)
_SHIFT_F = _F32(12582912.0)  # 1.5 * 2^23
_LN2_HI_F = _F32(0.6931471824645996)  # float32(ln 2): k * _LN2_HI_F is exact for |k| < 2^7 ...
_LN2_LO_F = _F32(-1.9046542121259336e-09)  # ... and inside fma, x - k _LN2_HI_F is exact
#: ``1 / k!`` for ``k = 7 .. 2`` in float32 (Horner order)
_F7 = _F32(1.0 / 5040.0)
_F6 = _F32(1.0 / 720.0)
_F5 = _F32(1.0 / 120.0)
_F4 = _F32(1.0 / 24.0)
_F3 = _F32(1.0 / 6.0)
_F2 = _F32(0.5)
_ONE_F = _F32(1.0)
_ZERO_F = _F32(0.0)
_CLAMP_F = _F32(-88.0)
#: below this ``exp_nonpos32`` returns 0: then ``k >= -125`` and ``2^k p`` stays normal
EXP32_FLUSH = _F32(-86.0)


@numba.njit(inline="always", cache=True)
def exp_nonpos32(x):
    """``exp(x)`` for float32 ``x <= 0`` in float32 arithmetic (module docstring)."""
    xc = x if x > _CLAMP_F else _CLAMP_F  # NaN and -inf -> -88 (result replaced below)
    kd = fma32(xc, _LOG2E_F, _SHIFT_F)
    k = kd - _SHIFT_F
    r = fma32(-k, _LN2_LO_F, fma32(-k, _LN2_HI_F, xc))
    p = fma32(r, _F7, _F6)
    p = fma32(r, p, _F5)
    p = fma32(r, p, _F4)
    p = fma32(r, p, _F3)
    p = fma32(r, p, _F2)
    p = fma32(r * r, p, r) + _ONE_F
    e = i32_as_f32(f32_as_i32(p) + (f32_as_i32(kd) << 23))
    e = _ZERO_F if x < EXP32_FLUSH else e
    return x if x != x else e


_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD  # bits of sqrt(1/2)
_MANT_MASK = 0x000FFFFFFFFFFFFF
_SHIFT_BITS = 0x4338000000000000  # bits of _SHIFT: i64_as_f64(_SHIFT_BITS + e) = _SHIFT + e
_ONE_BITS = 0x3FF0000000000000
#: ``1 / (2j + 1)`` for the odd series of ``atanh``
_L3 = 1.0 / 3.0
_L5 = 1.0 / 5.0
_L7 = 1.0 / 7.0
_L9 = 1.0 / 9.0
_L11 = 1.0 / 11.0
_L13 = 1.0 / 13.0
_L15 = 1.0 / 15.0
_L17 = 1.0 / 17.0
_L19 = 1.0 / 19.0
_L21 = 1.0 / 21.0
_L23 = 1.0 / 23.0


@numba.njit(inline="always", cache=True)
def log_unit(u):
    """``log(u)`` for float64 ``0 < u <= 1`` normal (module docstring: accuracy)."""
    bits = f64_as_i64(u)
    # shift so that the mantissa lands in [sqrt(1/2), sqrt(2))
    t = bits - _SQRT_HALF_BITS
    e = t >> 52
    m = i64_as_f64((t & _MANT_MASK) + _SQRT_HALF_BITS)
    f = (m - 1.0) / (m + 1.0)
    f2 = f * f
    q = fma(f2, _L23, _L21)
    q = fma(f2, q, _L19)
    q = fma(f2, q, _L17)
    q = fma(f2, q, _L15)
    q = fma(f2, q, _L13)
    q = fma(f2, q, _L11)
    q = fma(f2, q, _L9)
    q = fma(f2, q, _L7)
    q = fma(f2, q, _L5)
    q = fma(f2, q, _L3)
    # log m = 2 atanh f = 2 f + f R = g - hf + f (hf + R) (as in fdlibm: 2 f = g - f g)
    g = m - 1.0
    hf = 0.5 * g * g
    big_r = 2.0 * f2 * q
    lm = g - (hf - f * (hf + big_r))
    ed = i64_as_f64(e + _SHIFT_BITS) - _SHIFT  # float(e), vectorisable without AVX-512
    return fma(ed, _LN2_HI, fma(ed, _LN2_LO, lm))


_TWO_PI = 6.283185307179586
_TWO_PI_LO = 2.4492935982947064e-16  # 2 pi - _TWO_PI
#: Taylor coefficients of sin (odd, ``(-1)^j / (2j+1)!``) and cos (even)
_S3 = -1.0 / 6.0
_S5 = 1.0 / 120.0
_S7 = -1.0 / 5040.0
_S9 = 1.0 / 362880.0
_S11 = -1.0 / 39916800.0
_S13 = 1.0 / 6227020800.0
_S15 = -1.0 / 1307674368000.0
_S17 = 1.0 / 355687428096000.0
_C2 = -0.5
_C4 = 1.0 / 24.0
_C6 = -1.0 / 720.0
_C8 = 1.0 / 40320.0
_C10 = -1.0 / 3628800.0
_C12 = 1.0 / 479001600.0
_C14 = -1.0 / 87178291200.0
_C16 = 1.0 / 20922789888000.0


@numba.njit(inline="always", cache=True)
def sincos_2pi(v):
    """``(cos(2 pi v), sin(2 pi v))`` for float64 ``0 <= v < 1`` (module docstring)."""
    qd = fma(v, 4.0, _SHIFT)  # nearest quarter turn, in the low bits
    q = qd - _SHIFT
    w = fma(q, -0.25, v)  # exact: |w| <= 1/8
    t = fma(w, _TWO_PI, w * _TWO_PI_LO)
    t2 = t * t
    s = fma(t2, _S17, _S15)
    s = fma(t2, s, _S13)
    s = fma(t2, s, _S11)
    s = fma(t2, s, _S9)
    s = fma(t2, s, _S7)
    s = fma(t2, s, _S5)
    s = fma(t2, s, _S3)
    sn = fma(t * t2, s, t)
    c = fma(t2, _C16, _C14)
    c = fma(t2, c, _C12)
    c = fma(t2, c, _C10)
    c = fma(t2, c, _C8)
    c = fma(t2, c, _C6)
    c = fma(t2, c, _C4)
    c = fma(t2, c, _C2)
    cs = fma(t2, c, 1.0)
    quad = f64_as_i64(qd) & 3
    # rotate by quad quarter turns: (c, s) -> (-s, c) -> (-c, -s) -> (s, -c); branch-free
    odd = (quad & 1) == 1
    cr = sn if odd else cs
    sr = cs if odd else sn
    neg_c = ((quad + 1) >> 1) & 1
    neg_s = (quad >> 1) & 1
    cr = i64_as_f64(f64_as_i64(cr) ^ (neg_c << 63))
    sr = i64_as_f64(f64_as_i64(sr) ^ (neg_s << 63))
    return cr, sr

