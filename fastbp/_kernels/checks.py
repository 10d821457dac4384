"""Argument and finiteness checks of the drivers: shapes, NaN/Inf in X and Y, NaN in grad.

All O(L) or O(B (M^0 + U)): cheap next to the layer products, and run inside the compiled
drivers so a wrong buffer never reads or writes out of bounds.
"""

from __future__ import annotations

import numpy as np

from .._jit import kernel
from .layers import SIGMOID, TANH
from .workspace import _ld

# Bit masks and limits of _max_abs: all but the sign bit, and the bits of +inf.
_ABS64 = np.int64(0x7FFFFFFFFFFFFFFF)
_INF64 = np.int64(0x7FF0000000000000)
_ABS32 = np.int32(0x7FFFFFFF)
_INF32 = np.int32(0x7F800000)


@kernel
def _check_arguments(theta, sizes, codes, X, A, Z):
    L = sizes.shape[0] - 1
    if L < 1 or codes.shape[0] != L:
        raise ValueError("kernels: codes must have len(sizes) - 1 entries")
    n_params = 0
    units = 0
    for l in range(1, L + 1):
        n_params += sizes[l] * (sizes[l - 1] + 1)
        units += sizes[l]
    if theta.shape[0] != n_params:
        raise ValueError("kernels: theta length does not match sizes")
    if X.shape[1] != sizes[0]:
        raise ValueError("kernels: X must have sizes[0] columns")
    B = X.shape[0]
    if A.shape[0] < B * units or Z.shape[0] < B * units + _ld(B) * (units + sizes[0]):
        raise ValueError("kernels: workspace A or Z too short (see make_workspace)")


@kernel
def _all_finite(X):
    """Whether every entry of the 2-D array X is finite.

    ``x - x`` is 0 for a finite x and NaN for NaN or +-Inf, and NaN is the only value unequal
    to itself; OR-ing booleans is associative, so LLVM vectorizes this loop without fastmath
    (an early-exit loop or a float sum would run at one element per cycle or slower).
    """
    bad = False
    for n in range(X.shape[0]):
        for k in range(X.shape[1]):
            d = X[n, k] - X[n, k]
            bad |= d != d
    return not bad


@kernel
def _has_nan(v):
    """Whether the 1-D array v holds a NaN: a vectorized OR-reduction (NaN != NaN)."""
    bad = False
    for k in range(v.shape[0]):
        bad |= v[k] != v[k]
    return bad


@kernel
def _max_abs(v):
    """max |v| (as float64) over a contiguous 1-D float array, or inf if it holds a NaN or Inf.

    On the bit patterns: with the sign bit cleared, IEEE floats order as their bits do as
    integers, and every NaN lies above inf. An integer maximum is a reduction the loop
    vectorizer packs without fastmath (a float maximum is not: its NaN rules make the order
    matter), so this runs as zmm integer maxima, and the result is exact (faster than running
    float maxima; docs/perf-log.md, rows 20 and 28).
    """
    if v.itemsize == 8:
        u = v.view(np.int64)
        m = np.int64(0)
        for k in range(u.shape[0]):
            m = max(m, u[k] & _ABS64)
        return np.inf if m >= _INF64 else np.int64(m).view(np.float64)
    u32 = v.view(np.int32)
    m32 = np.int32(0)
    for k in range(u32.shape[0]):
        m32 = max(m32, u32[k] & _ABS32)
    return np.inf if m32 >= _INF32 else np.float64(np.int32(m32).view(np.float32))


@kernel
def _exact_weight_gradient(delta, zin, w0, grad):
    """dW = delta^T zin into grad[w0:], summed over samples in order with separate multiply and
    add (this kernel has no FMA contraction), so overflowed products of opposite sign meet as
    inf - inf = NaN exactly as the unfused arithmetic reports them."""
    B, m_in = zin.shape
    m_out = delta.shape[1]
    for i in range(m_out):
        for j in range(m_in):
            s = delta[0, i] * zin[0, j]
            for n in range(1, B):
                s += delta[n, i] * zin[n, j]
            grad[w0 + i * m_in + j] = s


@kernel
def _gradient_may_be_nan(sizes, codes, X, xmax, A, Z, grad):
    """Whether grad (just written by the backward pass) holds a NaN, checked cheaply.

    Every entry of dW^l is a sum of B products delta^l[n, i] z^(l-1)[n, j], and of db^l a sum
    of B deltas. If B max|delta^l| max(1, max|z^(l-1)|) stays below 1e37 for a layer, no
    product or partial sum of it can overflow even in float32, so no NaN can appear there: that
    bound costs O(B (M^0 + U)), against a memory-bound full scan of the n_params gradient
    (docs/perf-log.md, row 12).

    A layer that fails the bound (huge or non-finite activations) has its weight gradient
    recomputed without FMA (:func:`_exact_weight_gradient`: the tiles contract to FMA, which
    turns inf - inf into a silent inf) and its entries scanned for NaN.

    Sigmoid and tanh layers need no scan of z: |z| <= 1 wherever z is finite, and a NaN in z
    (from an overflowed pre-activation, see ``layers``) reaches every output of its sample
    through the next layer's sums (NaN times anything, 0 included, is NaN), so the loss the
    driver returns is NaN already. The output layer's z is never needed. At [64]*11, B = 64,
    sigmoid, this halves the bound's reads (docs/perf-log.md, row 28).
    """
    B = X.shape[0]
    L = sizes.shape[0] - 1
    zmax = xmax  # max |X|, from the driver's finiteness check of X (:func:`_finite_max_x`)
    u0 = 0
    w0 = 0
    zin = X
    for l in range(1, L + 1):
        m = sizes[l]
        m_in = sizes[l - 1]
        b0 = w0 + m * m_in
        delta = A[B * u0 : B * (u0 + m)]
        dmax = _max_abs(delta)
        if B > 0 and not (B * dmax * max(zmax, 1.0) < 1e37):
            _exact_weight_gradient(delta.reshape((B, m)), zin, w0, grad)
            if _has_nan(grad[w0 : b0 + m]):
                return True
        z = Z[B * u0 : B * (u0 + m)]
        if l == L or codes[l - 1] == SIGMOID or codes[l - 1] == TANH:
            zmax = 1.0  # bounded, or unused after the output layer (see above)
        else:
            zmax = _max_abs(z)
        zin = z.reshape((B, m))
        u0 += m
        w0 = b0 + m
    return False


@kernel
def _finite_max_x(X, Y):
    """:func:`_check_finite` for a C-contiguous X, returning max |X| for the gradient's bound.

    One pass over X serves both (a maximum is inf exactly when X holds NaN or Inf), where the
    check and the bound would read X once each (docs/perf-log.md, row 28).
    """
    xmax = _max_abs(X.reshape((X.shape[0] * X.shape[1],)))
    if not xmax < np.inf:
        raise ValueError("X: expected finite values, found NaN or Inf")
    if not _all_finite(Y):
        raise ValueError("Y: expected finite values, found NaN or Inf")
    return xmax


@kernel
def _check_finite(X, Y):
    """Raise ValueError naming X or Y if it holds NaN or Inf; O(B (M^0 + M^L)), before any work."""
    if not _all_finite(X):
        raise ValueError("X: expected finite values, found NaN or Inf")
    if not _all_finite(Y):
        raise ValueError("Y: expected finite values, found NaN or Inf")
