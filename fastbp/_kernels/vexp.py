"""Branch-free exp, expm1 and log1p for the arguments the activations take, in float64.

Numba has no vector math library here: ``math.exp``, ``math.tanh`` and ``math.log1p`` are scalar
libm calls (~4-5 ns each) that keep a loop around them scalar. The functions below use only
arithmetic, comparisons that become selects, and a float <-> int bit view, so once LLVM inlines
them into a loop over a contiguous strip the loop vectorizer packs them (zmm on AVX-512).
The polynomial and reduction use explicit fused multiply-adds (:func:`fastbp._jit.fma`; no
fastmath), which round once and reorder nothing, so every path and every compilation gives
the same bits (and exp is faster: docs/perf-log.md, row 28). Under
``NUMBA_DISABLE_JIT=1`` they run unfused on NumPy scalars (which have the same ``.view``), within
the same error bounds but not always to the same bits.

Only non-positive exponents are taken (the activations use e^-|a|), so nothing overflows.

Method (range reduction and log1p after FreeBSD's msun, restated without branches):

- y = k ln2 + r with k = round(y / ln2) (a shift by 1.5 * 2^52 rounds to nearest), |r| <= ln2 / 2,
  Cody-Waite: ln2 split in a 32-bit ``LN2_HI`` (k LN2_HI and y - k LN2_HI exact for
  |k| < 2^21) and ``LN2_LO``; the rounding error c of r = hi - lo is carried separately.
- expm1(r) by its Taylor series to r^13 (the first omitted term is < 2^-56 |r| at |r| = ln2/2),
  so expm1 and exp of y share one polynomial: e^y = 2^k (1 + q), e^y - 1 = (2^k - 1) + 2^k q,
  where 2^k - 1 is exact and 2^k q is exact scaling.
- 2^k from the bits (k + 1023) << 52; for k < -600 as 2^(k + 600) 2^-600, so subnormal results
  are rounded once more (at most 1 ulp of the subnormal) and exp(y) = 0 below -745.2, as libm.
- log1p(e) for 0 <= e <= 1 by FreeBSD's s_log1p.c: 1 + e = 2^k (1 + f) with k in {0, 1},
  log1p(f) = f - (f^2/2 - s (f^2/2 + R(s^2))), s = f / (2 + f), plus the rounding error of 1 + e.

Accuracy, measured against 80-bit long double over dense grids (tests/test_vexp.py checks < 1),
compiled as the package compiles them (with FMA): exp 0.86 ulp on [-745, 0] where the result is
normal, expm1 0.94 ulp, log1p(e) 0.84 ulp (unfused: 0.90, 0.91, 0.82).

Every function here is ``inline="always"``: compiled on its own with fastbp's SLP vectorizer
on, the isomorphic halves of Estrin's scheme get packed into 2-lane vectors, and a loop that
then inlines those vector instructions is not vectorized by the loop vectorizer.
"""

from __future__ import annotations

import numpy as np

from .._jit import fma, kernel

INV_LN2 = 1.4426950408889634  # 1 / ln 2
LN2_HI = 6.93147180369123816490e-01  # 0x3FE62E42FEE00000: 32 significant bits
LN2_LO = 1.90821492927058770002e-10  # ln 2 - LN2_HI
SHIFT = 6755399441055744.0  # 1.5 * 2^52: (x + SHIFT) - SHIFT rounds x to an integer (|x| < 2^51)
LOWEST = -746.0  # exp(y) rounds to 0 below -745.14; clamping also maps -inf (and NaN) here
SPLIT = -600.0  # 2^k for k < SPLIT is built as 2^(k - SPLIT) 2^SPLIT: both factors normal
TWO_SPLIT = 2.0**SPLIT
TWO52 = 4503599627370496.0  # 2^52: (k + 1023) 2^52 are the bits of 2^k

# expm1(r) = r + r^2 (1/2! + r (1/3! + ... + r 1/13!)): exact reciprocals of the factorials.
P2 = 1.0 / 2.0
P3 = 1.0 / 6.0
P4 = 1.0 / 24.0
P5 = 1.0 / 120.0
P6 = 1.0 / 720.0
P7 = 1.0 / 5040.0
P8 = 1.0 / 40320.0
P9 = 1.0 / 362880.0
P10 = 1.0 / 3628800.0
P11 = 1.0 / 39916800.0
P12 = 1.0 / 479001600.0
P13 = 1.0 / 6227020800.0

# FreeBSD s_log1p.c: minimax R(z) ~ (log((1 + s)/(1 - s)) - 2 s) / s, z = s^2.
LP1 = 6.666666666666735130e-01
LP2 = 3.999999999940941908e-01
LP3 = 2.857142874366239149e-01
LP4 = 2.222219843214978396e-01
LP5 = 1.818357216161805012e-01
LP6 = 1.531383769920937332e-01
LP7 = 1.479819860511658591e-01
SQRT2_M1 = 0.41421356237309503  # sqrt(2) - 1: above it 1 + e is reduced by 2


@kernel
def _pow2(k):
    """2^k for an integer-valued float64 -1022 <= k <= 0, from its bits."""
    return np.int64((k + 1023.0) * TWO52).view(np.float64)


@kernel(inline="always")
def exp_parts(y):
    """(q, s, t) with e^y = (1 + q) s t and e^y - 1 = (s t - 1) + s t q, for y <= 0.

    y = -inf and y = NaN are clamped like y = -746 (callers that must propagate NaN select
    on ``y == y``). s = 2^(k - kb) and t = 2^kb are normal: kb = -600 when k < -600, else 0.
    """
    y = y if y > LOWEST else LOWEST
    k = fma(y, INV_LN2, SHIFT) - SHIFT
    hi = y - k * LN2_HI
    lo = k * LN2_LO
    r = hi - lo
    c = (hi - r) - lo  # r + c = hi - lo to twice the precision
    # p = P2 + P3 r + ... + P13 r^11 by Estrin's scheme: 4 dependent multiply-add levels
    # instead of Horner's 11. Same work in a vector loop, but the scalar paths (one sample, where
    # each unit waits on its own exp) are latency-bound (docs/perf-log.md, row 18).
    r2 = r * r
    r4 = r2 * r2
    b0 = fma(fma(P5, r, P4), r2, fma(P3, r, P2))
    b1 = fma(fma(P9, r, P8), r2, fma(P7, r, P6))
    b2 = fma(fma(P13, r, P12), r2, fma(P11, r, P10))
    p = fma(b2, r4 * r4, fma(b1, r4, b0))
    # expm1(r + c) = expm1(r) + c e^r ~ r + (c + r (c + r p)), the small terms summed first.
    q = r + fma(r, fma(r, p, c), c)
    # t is a select of constants, not a second _pow2: two isomorphic _pow2 get packed into a
    # 2-lane vector by SLP when this function is compiled on its own, and a loop that inlines
    # vector instructions is no longer vectorized by the loop vectorizer.
    small = k < SPLIT
    return q, _pow2(k - SPLIT if small else k), TWO_SPLIT if small else 1.0


@kernel(inline="always")
def exp_nonpos(y):
    """e^y for y <= 0 (-inf gives 0, NaN gives NaN), within 1 ulp where the result is normal."""
    q, s, t = exp_parts(y)
    e = fma(s, q, s) * t
    return e if y == y else y


@kernel(inline="always")
def expm1_nonpos(y):
    """e^y - 1 for y <= 0 (-inf gives -1, NaN gives NaN), within 1 ulp."""
    q, s, t = exp_parts(y)
    st = s * t
    em = fma(st, q, st - 1.0)
    return em if y == y else y


@kernel(inline="always")
def log1p_unit(e):
    """log(1 + e) for 0 <= e <= 1 (NaN gives NaN), within 1 ulp: FreeBSD's s_log1p.c."""
    big = e > SQRT2_M1
    u = 1.0 + e
    k = 1.0 if big else 0.0
    f = (0.5 * u - 1.0) if big else e  # both exact
    # c / u, with c the rounding error of 1 + e; 1 / u = 0.5 / (1 + f) ~ 0.5 (1 - f + f^2) to
    # 4% (|f| < 0.3), enough for a correction of at most 1.4 ulp, and one division fewer.
    c = ((e - (u - 1.0)) * (0.5 * fma(-f, 1.0 - f, 1.0))) if big else 0.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    R = fma(z, LP7, LP6)
    R = fma(z, R, LP5)
    R = fma(z, R, LP4)
    R = fma(z, R, LP3)
    R = fma(z, R, LP2)
    R = fma(z, R, LP1)
    R = z * R
    # k is 0 or 1: k LN2_HI and k LN2_LO are exact, so only s (hfsq + R) needs the fused add.
    return k * LN2_HI - ((hfsq - fma(s, hfsq + R, k * LN2_LO + c)) - f)
