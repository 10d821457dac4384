"""Scalar activations and the small pieces the register-tiled loop nests share.

The tiled nests themselves live in :mod:`fastbp._kernels.forward_tiles` and
:mod:`fastbp._kernels.backward_tiles`; this module holds what they call per element (activation
and derivative, the fused epilogues) and the plain loops that finish the edges a tile does not
cover. Every edge loop sums in the same order as the tile it completes
(sequential over the reduction index, first term assigned), so a result does not depend on
whether it came from a tile or an edge, nor on how work is split between threads.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import fma, kernel
from .vexp import exp_nonpos, exp_parts, log1p_unit

# Activation codes, in the order of fastbp.activations.ACTIVATIONS (a test checks they agree).
SIGMOID = 0
TANH = 1
RELU = 2
LEAKY_RELU = 3
SOFTPLUS = 4
IDENTITY = 5
LEAKY_SLOPE = 0.01
TANH_SPLIT = -1.0986122886681098  # -ln 3: e^-2|a| below 1/3


# --------------------------------------------------------------------------------------------
# The smooth activations. Only exp of a non-positive argument is taken, so nothing overflows,
# and it is fastbp._kernels.vexp's branch-free exp, not libm's: inlined into the epilogue's loop
# over a strip (inline="always": compiled on their own, SLP would pack parts into 2-lane vectors,
# and a loop holding vector instructions is not vectorized), LLVM vectorizes it. Computed in float64
# whatever the dtype (float32 results are then rounded once). Each returns (h, h'); a loop that
# stores only h lets LLVM drop h'. The scalar functions below evaluate these same pairs, so
# every path of the package (batched, single-sample, training) gets the same bits for h and h'.
#
# OVERFLOW: every h and h' here is multiplied by g = 1 + (a - a), which is exactly 1 for a
# finite a (signed zeros kept) and NaN for +-inf, so an overflowed pre-activation gives NaN
# (reported as an error), never a silently saturated value. The layer products use FMA
# (fastbp._jit), which turns an overflow that separate multiply and add would report as
# inf - inf = NaN into +-inf; this makes it NaN again.
#
# FMA: exp's polynomial and reduction (fastbp._kernels.vexp) and tanh's expm1 take explicit fused
# multiply-adds (fastbp._jit.fma), so the scalar and vector paths, and every compilation of
# them, keep the same bits (tested). Each rounds once where two roundings were; the accuracy
# tests hold as before. It is faster too (docs/perf-log.md, row 28).
# --------------------------------------------------------------------------------------------
@kernel(inline="always")
def _sigmoid_pair(a):
    """(sigmoid(a), sigmoid'(a)) from e = e^-|a|: 1 / (1 + e) for a >= 0, e / (1 + e) below."""
    e = exp_nonpos(-abs(a))
    s = (1.0 if a >= 0 else e) / (1.0 + e)  # one division: the numerator is selected
    g = 1.0 + (a - a)  # 1, or NaN for an overflowed a: see OVERFLOW above
    return s * g, e / ((1.0 + e) * (1.0 + e)) * g


@kernel(inline="always")
def _tanh_pair(a):
    """(tanh(a), tanh'(a)) from one reduction of y = -2|a|: e = e^y and em = e^y - 1.

    tanh(|a|) = -em / (2 + em) keeps full relative accuracy for small |a| (1 - e cancels), and
    copysign gives tanh(-0) = -0 and tanh(-|a|) = -tanh(|a|) exactly, as libm's tanh.
    """
    y = -2.0 * abs(a)
    q, s, t = exp_parts(y)
    st = s * t
    em = fma(st, q, st - 1.0)
    e = fma(s, q, s) * t
    e = e if a == a else a
    # -em / (em + 2) for e > 1/3, 1 - 2e / (1 + e) below, where em / (em + 2) loses up to 2.5
    # ulp to the rounding of em + 2; both computed and selected (no branch), numerator and
    # denominator selected before one division. NaN takes the e branch.
    near = y >= TANH_SPLIT
    t = (-em if near else 2.0 * e) / ((em + 2.0) if near else (1.0 + e))
    h = t if near else 1.0 - t
    g = 1.0 + (a - a)
    return math.copysign(h, a) * g, 4.0 * e / ((1.0 + e) * (1.0 + e)) * g


@kernel(inline="always")
def _softplus_pair(a):
    """(softplus(a), sigmoid(a)): max(a, 0) + log1p(e^-|a|), the exact form of the scalar one."""
    e = exp_nonpos(-abs(a))
    s = (1.0 if a >= 0 else e) / (1.0 + e)
    g = 1.0 + (a - a)
    return ((a if a > 0.0 else 0.0) + log1p_unit(e)) * g, s * g


# --------------------------------------------------------------------------------------------
# Scalar activations, selected by code: the pairs above for the smooth ones.
# --------------------------------------------------------------------------------------------
@kernel
def _smooth_pair(code, a):
    """The pair of sigmoid, tanh or softplus at float64 ``a``, as a call of its own.

    The same pairs as :func:`_activate`, which inlines them into its vector loops, so the
    scalar and vector paths round alike (see the OVERFLOW/FMA note above).

    Not inlined: the scalar functions below stay small enough for LLVM to inline them into
    their callers' loops, so relu and the other piecewise codes pay no call (with the three
    pairs inlined in them the relu epilogue was slower; docs/perf-log.md, row 18).
    """
    if code == SIGMOID:
        return _sigmoid_pair(a)
    if code == TANH:
        return _tanh_pair(a)
    return _softplus_pair(a)


@kernel
def activation(code, a):
    """h(a) for the activation with integer ``code``."""
    if code == SIGMOID or code == TANH or code == SOFTPLUS:
        return _smooth_pair(code, np.float64(a))[0]
    g = 1.0 + (a - a)
    if code == RELU:
        return (a if a > 0 else 0.0) * g
    if code == LEAKY_RELU:
        return (a if a > 0 else LEAKY_SLOPE * a) * g
    return a * g


@kernel
def activation_derivative(code, a):
    """h'(a) for the activation with integer ``code``, computed from the pre-activation.

    Computing from ``a`` (not from ``z = h(a)``) keeps full relative accuracy where ``h``
    saturates: ``z (1 - z)`` is exactly 0 once ``z`` rounds to 1, while ``e^-|a| / (1 + e^-|a|)^2``
    stays accurate down to the underflow limit.
    """
    if code == SIGMOID or code == TANH or code == SOFTPLUS:
        return _smooth_pair(code, np.float64(a))[1]  # softplus' = sigmoid, the same formula
    g = 1.0 + (a - a)
    if code == RELU:
        return (1.0 if a > 0 else 0.0) * g
    if code == LEAKY_RELU:
        return (1.0 if a > 0 else LEAKY_SLOPE) * g
    return g


@kernel
def activation_second_derivative(code, a):
    """h''(a) for the activation with integer ``code``, computed from the pre-activation.

    The R-operator of the Hessian-vector product (:mod:`fastbp._kernels.second_order`) needs
    it. From ``e = e^-|a|`` (``e^-2|a|`` for tanh) and ``1 - e = -expm1(-|a|)``, so it keeps
    full relative accuracy near 0 and where ``h`` saturates:

    - sigmoid: ``h'(1 - 2h) = -sign(a) e (1 - e) / (1 + e)^3``;
    - tanh: ``-2 h h' = -sign(a) 8 e (1 - e) / (1 + e)^3`` with ``e = e^-2|a|``;
    - softplus: ``sigmoid'(a) = e / (1 + e)^2``;
    - relu, leaky relu, identity: 0 (the piecewise-linear ones' kinks have measure zero).

    Computed in float64 whatever the dtype of ``a``, NaN for an overflowed (infinite) ``a``,
    like :func:`activation` (the OVERFLOW note above).
    """
    x = np.float64(a)
    g = 1.0 + (x - x)
    if code == SIGMOID or code == TANH:
        y = -abs(x) if code == SIGMOID else -2.0 * abs(x)
        e = math.exp(y)
        one_minus_e = -math.expm1(y)
        scale = 1.0 if code == SIGMOID else 8.0
        c = scale * e * one_minus_e / ((1.0 + e) * (1.0 + e) * (1.0 + e))
        return -math.copysign(c, x) * g
    if code == SOFTPLUS:
        e = math.exp(-abs(x))
        return e / ((1.0 + e) * (1.0 + e)) * g
    return 0.0 * g


@kernel
def activation_and_derivative(code, a):
    """``(h(a), h'(a))`` from one exponential: bit for bit the values of :func:`activation` and
    :func:`activation_derivative`, which evaluate the same formulas on the same ``e^-|a|``.

    A backward h' pass of its own cost as much as the delta product itself; computing h' in
    the forward epilogue from the exponential it already takes removes that pass
    (docs/perf-log.md, row 9).
    """
    if code == SIGMOID or code == TANH or code == SOFTPLUS:
        return _smooth_pair(code, np.float64(a))
    return _piecewise_pair(code, a)


@kernel(inline="always")
def _piecewise_pair(code, a):
    """(h(a), h'(a)) of relu, leaky relu or identity (the tail of activation_and_derivative)."""
    g = 1.0 + (a - a)
    if code == RELU:
        return (a * g, g) if a > 0 else (0.0 * g, 0.0 * g)
    if code == LEAKY_RELU:
        return (a * g, g) if a > 0 else (LEAKY_SLOPE * a * g, LEAKY_SLOPE * g)
    return a * g, g


@kernel(inline="always")
def smooth_pairs(code, a, h, d):
    """h[i] = h(a[i]) and d[i] = h'(a[i]) for sigmoid, tanh or softplus: one loop per code.

    No call and no branch inside a loop, so LLVM vectorizes it. ``h`` or ``d`` may be ``a``
    itself (the same view: element i is read before it is written). Inlined (inline="always")
    so that LLVM sees that they are the same pointer: compiled as a function of its own, a and
    d are two arguments, LLVM's runtime overlap check finds them overlapping and runs the
    scalar loop (same bits, several times slower). Only the gradient's derivative mode has
    vector loops: forward-only calls take the scalar functions, to save cold compile
    (docs/perf-log.md, rows 18 and 24).
    """
    m = a.shape[0]
    if code == SIGMOID:
        for i in range(m):
            hi, di = _sigmoid_pair(np.float64(a[i]))
            h[i] = hi
            d[i] = di
    elif code == TANH:
        for i in range(m):
            hi, di = _tanh_pair(np.float64(a[i]))
            h[i] = hi
            d[i] = di
    else:
        for i in range(m):
            hi, di = _softplus_pair(np.float64(a[i]))
            h[i] = hi
            d[i] = di


# --------------------------------------------------------------------------------------------
# Epilogues. The tiles store raw sums and these loops apply h or h' over the finished strip while
# it is still in L1: one copy of the activation code per kernel instead of one per accumulator
# (inlining it into all 32 accumulators made the cold compile several times slower).
# --------------------------------------------------------------------------------------------
@kernel
def _activate(code, a, z, zT, i_lo, i_hi, n0, derivative):
    """z[n, i] = zT[i, n0 + n] = h(a[n, i]) for the columns i_lo..i_hi of every sample.

    a and z are the rows of samples n0, n0 + 1, ...; zT has every sample's column (a block of
    samples given to one thread writes only its own columns of zT).

    z is kept in both layouts: sample-major feeds the weight gradient (lanes along inputs), the
    transposed copy feeds the next layer's forward tile (lanes along samples). With
    ``derivative`` (the forward pass of a gradient), a[n, i] is replaced by h'(a[n, i]), the only
    use the backward pass has for it.

    With ``derivative``, sigmoid, tanh and softplus run over each sample's contiguous strip
    a[n, i_lo:i_hi] in a loop with no call and no branch inside (:func:`smooth_pairs`; the code
    is switched on outside), so LLVM vectorizes it (8 float64 lanes of zmm here), then the
    strip is copied into zT. Without it (forward and loss only) and for relu, leaky relu and
    identity, the scalar loop runs: each inlined vector loop costs cold compile time, and the
    gradient is the call that matters (docs/perf-log.md, rows 18 and 24).
    """
    if derivative:
        _activate_gradient(code, a, z, zT, i_lo, i_hi, n0, derivative)
    else:
        _activate_forward(code, a, z, zT, i_lo, i_hi, n0, derivative)


# The two modes of _activate as kernels of their own: fastbp._kernels.forward_tiles compiles a
# twin of its loop nest per mode, so a gradient never compiles the forward-only path (the scalar
# activation functions) and a forward pass never compiles the vector loops
# (docs/perf-log.md, row 30). ``derivative`` is accepted and ignored, so either one can
# stand in for _activate.
@kernel
def _activate_forward(code, a, z, zT, i_lo, i_hi, n0, derivative):
    """z[n, i] = zT[i, n0 + n] = h(a[n, i]), a unchanged (forward and loss): :func:`_activate`."""
    zTb = zT[i_lo:i_hi]  # views indexed from 0: see _activate_gradient
    for n in range(a.shape[0]):
        ar = a[n, i_lo:i_hi]
        zr = z[n, i_lo:i_hi]
        for i in range(ar.shape[0]):
            h = activation(code, ar[i])
            zr[i] = h
            zTb[i, n0 + n] = h


@kernel
def _activate_gradient(code, a, z, zT, i_lo, i_hi, n0, derivative):
    """z[n, i] = zT[i, n0 + n] = h(a[n, i]), a[n, i] = h'(a[n, i]): :func:`_activate`."""
    # Row views indexed from 0 in every loop below: with i from range(i_lo, i_hi), Numba keeps
    # its negative-index wraparound on each access; from range(m) it folds away
    # (docs/perf-log.md, row 29).
    zTb = zT[i_lo:i_hi]
    if code != SIGMOID and code != TANH and code != SOFTPLUS:
        for n in range(a.shape[0]):
            ar = a[n, i_lo:i_hi]
            zr = z[n, i_lo:i_hi]
            for i in range(ar.shape[0]):
                h, d = _piecewise_pair(code, ar[i])
                ar[i] = d
                zr[i] = h
                zTb[i, n0 + n] = h
        return
    # Every column (the serial call, or one block of samples): a and z are contiguous, so one
    # strip of B m entries runs through the vector loop instead of B strips of m (the loop's
    # set-up and remainder paid once; docs/perf-log.md, row 28). One call site of
    # smooth_pairs: each inlined copy of its three vector loops costs cold compile.
    m = i_hi - i_lo
    B = a.shape[0]
    whole = m == a.shape[1]
    af = a.reshape(B * a.shape[1])
    zf = z.reshape(B * a.shape[1])
    for n in range(1 if whole else B):
        lo = 0 if whole else n * a.shape[1] + i_lo
        hi = B * m if whole else lo + m
        ar = af[lo:hi]
        smooth_pairs(code, ar, zf[lo:hi], ar)
    for n in range(B):
        zr = z[n, i_lo:i_hi]
        for i in range(m):
            zTb[i, n0 + n] = zr[i]


@kernel
def _activate_units(code, A, Z, u0, m):
    """Z[u0 + i] = h(a), A[u0 + i] = h'(a) for the m sums a that Z[u0 : u0 + m] holds (one sample).

    The single-sample paths' epilogue, through the scalar functions: the same formulas as the
    batched epilogue's vector loops, with the same fused multiply-adds (in
    :func:`_smooth_pair`) and no reassociation, so the same bits. The vector loops of
    :func:`smooth_pairs` would be a little faster here, but inlining them into every
    single-sample and training kernel costs more cold compile than they save
    (docs/perf-log.md, row 18).
    """
    for i in range(u0, u0 + m):
        h, d = activation_and_derivative(code, Z[i])
        Z[i] = h
        A[i] = d


@kernel
def _scale(acc, a_prev, n_lo, n_hi, j_lo, j_hi):
    """delta^(l-1)[n, j] = acc[n, j] * h'(a^(l-1)[n, j]), over the h' the forward pass left.

    A non-finite sum acc (an overflow, which FMA may report as inf where separate multiply and
    add give inf - inf = NaN) becomes NaN via ``* (1 + (s - s))``, so the gradient reports it.

    The guard's 1 is in the arrays' dtype: a float64 literal made float32 runs convert to
    float64 and back, for the same bits (the factor is exactly 1 or NaN). Row views indexed from
    0 let the loop vectorize; acc[n, j] from j_lo kept Numba's negative-index wraparound and ran
    scalar (docs/perf-log.md, row 26).
    """
    one = acc.dtype.type(1.0)
    for n in range(n_lo, n_hi):
        sums = acc[n, j_lo:j_hi]
        h = a_prev[n, j_lo:j_hi]
        for j in range(h.shape[0]):
            s = sums[j]
            h[j] = s * h[j] * (one + (s - s))


# --------------------------------------------------------------------------------------------
# Edge loops. Same summation order as the tiles: see the module docstring.
# --------------------------------------------------------------------------------------------
@kernel
def _forward_samples(theta, w0, b0, zin, a, n_lo, n_hi, i_lo, i_hi):
    """a[n, i] for rows i_lo..i_hi and samples n_lo..n_hi that do not fill a tile (B = 1 too).

    A dot product along contiguous k, split over 8 partial sums that the SLP vectorizer packs
    into vector registers (one sequential sum would be one FMA per latency, ~4x slower); the
    partial sums are added in a fixed tree order, so the result is deterministic.
    """
    m_in = zin.shape[1]
    k8 = m_in - m_in % 8
    for n in range(n_lo, n_hi):
        x = zin[n]
        for i in range(i_lo, i_hi):
            # Row views: indices from range() are provably >= 0, so Numba's negative-index
            # wraparound folds away and the 8 loads become one vector load, not a gather.
            p = w0 + i * m_in
            w = theta[p : p + m_in]
            s = theta[b0 + i]
            if k8 > 0:
                s0 = w[0] * x[0]
                s1 = w[1] * x[1]
                s2 = w[2] * x[2]
                s3 = w[3] * x[3]
                s4 = w[4] * x[4]
                s5 = w[5] * x[5]
                s6 = w[6] * x[6]
                s7 = w[7] * x[7]
                for k in range(8, k8, 8):
                    # 8-wide views: constant indices need no negative-index wraparound, which
                    # LLVM could not drop for k + 1 .. k + 7 (docs/perf-log.md, row 2).
                    wk = w[k : k + 8]
                    xk = x[k : k + 8]
                    s0 = fma(wk[0], xk[0], s0)
                    s1 = fma(wk[1], xk[1], s1)
                    s2 = fma(wk[2], xk[2], s2)
                    s3 = fma(wk[3], xk[3], s3)
                    s4 = fma(wk[4], xk[4], s4)
                    s5 = fma(wk[5], xk[5], s5)
                    s6 = fma(wk[6], xk[6], s6)
                    s7 = fma(wk[7], xk[7], s7)
                s += ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
            for k in range(k8, m_in):
                s = fma(w[k], x[k], s)
            a[n, i] = s


@kernel(inline="always")
def _bias_gradient(delta, gb):
    """db = sum_n delta[n] into gb (M^l,), in sample order, first sample assigned: plain adds.

    The tiled drivers and the plain tier both call this, so they sum alike. Inlined (Numba IR),
    so the drivers pay no call and no library of their own. Over a view indexed from 0:
    grad[b0 + i] kept Numba's negative-index wraparound and ran scalar (docs/perf-log.md,
    row 29).
    """
    B, m = delta.shape
    d0 = delta[0]
    for i in range(m):
        gb[i] = d0[i]
    for n in range(1, B):
        dn = delta[n]
        for i in range(m):
            gb[i] += dn[i]


@kernel
def _delta_columns(theta, w0, delta, acc, n_lo, n_hi, j_lo, j_hi):
    """acc[n, j] = sum_i delta[n, i] W[i, j] for the few columns j_lo..j_hi outside a tile."""
    m_out = delta.shape[1]
    m_in = acc.shape[1]
    for n in range(n_lo, n_hi):
        for j in range(j_lo, j_hi):
            s = delta[n, 0] * theta[w0 + j]
            for i in range(1, m_out):
                s = fma(delta[n, i], theta[w0 + i * m_in + j], s)
            acc[n, j] = s


@kernel
def _weight_gradient_columns(delta, zin, w0, grad, i_lo, i_hi, j_lo, j_hi):
    """dW[i, j] for rows i_lo..i_hi and the few columns j_lo <= j < j_hi that do not fill a
    tile (none unless j_hi is past the last full panel)."""
    B, m_in = zin.shape
    for i in range(i_lo, i_hi):
        for j in range(j_lo, j_hi):
            s = delta[0, i] * zin[0, j]
            for n in range(1, B):
                s = fma(delta[n, i], zin[n, j], s)
            grad[w0 + i * m_in + j] = s
