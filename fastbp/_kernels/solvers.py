"""What the compiled loops of the full-batch solvers share: their status codes and small dense
linear algebra in explicit loops (not backprop kernels: a Cholesky of the Levenberg-Marquardt
normal matrix, its solves, the trace of its inverse).

The loops themselves: :mod:`fastbp._kernels.lbfgs` (L-BFGS) and
:mod:`fastbp._kernels.levenberg_marquardt` (Levenberg-Marquardt and Bayesian regularization);
the classes and their Python loop are :mod:`fastbp.solvers` and :mod:`fastbp.full_batch`.
Each loop call runs iterations ``first <= k < stop`` over buffers the caller allocated once and
keeps everything an iteration needs between calls in them (the current loss, the gradient, the
L-BFGS memory, ``mu``, ``alpha``, ``beta``), so how a fit is cut into calls never changes the
results. Everything is serial: the same bits at any thread count.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import kernel

__all__ = [
    "CONVERGED", "DIVERGED", "LINE_SEARCH_FAILED", "LOSS_NOT_FINITE", "MU_MAX_REACHED", "OK",
]  # fmt: skip

#: ``status[0]`` after a call: every iteration asked for is done.
OK = 0
#: The loss at the starting parameters is NaN or Inf (nothing was changed).
LOSS_NOT_FINITE = 1
#: The tolerance is met (L-BFGS: gradient or relative decrease; LM: a zero loss).
CONVERGED = 2
#: L-BFGS: no step along steepest descent satisfies the line search (parameters unchanged).
LINE_SEARCH_FAILED = 3
#: L-BFGS: every trial point of the last line search had a NaN or Inf loss (unchanged).
DIVERGED = 4
#: LM, BR: ``mu`` grew past ``mu_max`` without a step that lowers the objective (unchanged).
MU_MAX_REACHED = 5


# --------------------------------------------------------------------------------------------
# Small dense linear algebra, explicit loops
# --------------------------------------------------------------------------------------------
@kernel
def _dot(a, b, n):
    """sum_k a[k] b[k] for k < n in float64, over 8 lanes then summed in a fixed order (the
    SLP vectorizer packs the lanes; no fastmath reassociation needed)."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    m = n - n % 8
    for k in range(0, m, 8):
        s0 += a[k] * b[k]
        s1 += a[k + 1] * b[k + 1]
        s2 += a[k + 2] * b[k + 2]
        s3 += a[k + 3] * b[k + 3]
        s4 += a[k + 4] * b[k + 4]
        s5 += a[k + 5] * b[k + 5]
        s6 += a[k + 6] * b[k + 6]
        s7 += a[k + 7] * b[k + 7]
    for k in range(m, n):
        s0 += a[k] * b[k]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@kernel
def _cholesky(M, K):
    """Lower Cholesky factor of the symmetric M[:K, :K] in place (only the lower triangle is
    read and written); False if a pivot is not positive (M is then garbage).

    Row by row (left-looking): ``L[i, j] = (M[i, j] - L[i, :j] . L[j, :j]) / L[j, j]``, each
    a dot product of two contiguous rows, so row i stays in L1 while the rows above stream.
    """
    for i in range(K):
        Li = M[i]
        for j in range(i):
            Lj = M[j]
            Li[j] = (Li[j] - _dot(Li, Lj, j)) / Lj[j]
        d = Li[i] - _dot(Li, Li, i)
        if not d > 0.0:  # also False for NaN
            return False
        Li[i] = math.sqrt(d)
    return True


@kernel
def _solve(L, K, b):
    """b <- (L L^T)^-1 b, with L the lower factor in L[:K, :K]."""
    for i in range(K):
        b[i] = (b[i] - _dot(L[i], b, i)) / L[i, i]
    for i in range(K - 1, -1, -1):
        s = b[i]
        for j in range(i + 1, K):
            s -= L[j, i] * b[j]
        b[i] = s / L[i, i]


@kernel
def _inverse_trace(L, K, v):
    """tr((L L^T)^-1) = ||L^-1||_F^2: column i of L^-1 by forward substitution from the unit
    vector e_i (zero above row i). ``v``: scratch of length >= K."""
    total = 0.0
    for i in range(K):
        for r in range(K):
            v[r] = 0.0
        v[i] = 1.0 / L[i, i]
        total += v[i] * v[i]
        for r in range(i + 1, K):
            x = -_dot(L[r], v, r) / L[r, r]  # v[:i] is zero: the dot reads them as 0
            v[r] = x
            total += x * x
    return total


@kernel
def _dot_mixed(a, b, n):
    """sum_k a[k] b[k] in float64 for a of the network dtype, b float64, in order."""
    s = 0.0
    for k in range(n):
        s += np.float64(a[k]) * b[k]
    return s
