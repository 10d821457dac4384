"""Argument and finiteness checks of the drivers: shapes, NaN/Inf in X and Y, NaN in grad.

All O(L) or O(B (M^0 + U)): cheap next to the layer products, and run inside the compiled
drivers so a wrong buffer never reads or writes out of bounds.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from ._workspace import _ld


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
    """max |v| over a 1-D array, or inf if it holds a NaN or Inf.

    Eight running maxima over 8-wide views (lane r takes k = r mod 8), which the SLP
    vectorizer packs into one vector max; a maximum is exact, so the result is the same as a
    single running one, whose select chain ran at ~1 element per cycle (171 us of a 1.8 ms
    [784,128,10] B = 256 float32 call, benchmarks/README.md row 20).
    """
    n = v.shape[0]
    n8 = n - n % 8
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = 0.0
    bad = False
    for k in range(0, n8, 8):
        w = v[k : k + 8]
        a0 = abs(float(w[0]))
        a1 = abs(float(w[1]))
        a2 = abs(float(w[2]))
        a3 = abs(float(w[3]))
        a4 = abs(float(w[4]))
        a5 = abs(float(w[5]))
        a6 = abs(float(w[6]))
        a7 = abs(float(w[7]))
        m0 = a0 if a0 > m0 else m0
        m1 = a1 if a1 > m1 else m1
        m2 = a2 if a2 > m2 else m2
        m3 = a3 if a3 > m3 else m3
        m4 = a4 if a4 > m4 else m4
        m5 = a5 if a5 > m5 else m5
        m6 = a6 if a6 > m6 else m6
        m7 = a7 if a7 > m7 else m7
        # NaN is the only value a select by > skips: flagged lane-wise in the same pass.
        bad |= ((a0 != a0) | (a1 != a1)) | ((a2 != a2) | (a3 != a3))
        bad |= ((a4 != a4) | (a5 != a5)) | ((a6 != a6) | (a7 != a7))
    for k in range(n8, n):
        a = abs(float(v[k]))
        m0 = a if a > m0 else m0
        bad |= a != a
    m = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    return np.inf if bad else m


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
def _gradient_may_be_nan(sizes, X, A, Z, grad):
    """Whether grad (just written by the backward pass) holds a NaN, checked cheaply.

    Every entry of dW^l is a sum of B products delta^l[n, i] z^(l-1)[n, j], and of db^l a sum
    of B deltas. If B max|delta^l| max(1, max|z^(l-1)|) stays below 1e37 for a layer, no
    product or partial sum of it can overflow even in float32, so no NaN can appear there: that
    bound costs O(B (M^0 + U)), against a full scan of the n_params gradient (11.6 us from
    NumPy, 13.8 us compiled for [784,128,10]: memory-bound, ~19% of a B = 1 call).

    A layer that fails the bound (huge or non-finite activations) has its weight gradient
    recomputed without FMA (:func:`_exact_weight_gradient`: the tiles contract to FMA, which
    turns inf - inf into a silent inf) and its entries scanned for NaN.
    """
    B = X.shape[0]
    L = sizes.shape[0] - 1
    zmax = _max_abs(X.reshape((X.shape[0] * X.shape[1],)))
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
        zmax = _max_abs(z)
        zin = z.reshape((B, m))
        u0 += m
        w0 = b0 + m
    return False


@kernel
def _check_finite(X, Y):
    """Raise ValueError naming X or Y if it holds NaN or Inf; O(B (M^0 + M^L)), before any work."""
    if not _all_finite(X):
        raise ValueError("X: expected finite values, found NaN or Inf")
    if not _all_finite(Y):
        raise ValueError("Y: expected finite values, found NaN or Inf")
