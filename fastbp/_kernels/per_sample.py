"""Per-sample gradients, compiled (public as :func:`fastbp.kernels.per_sample_grads`).

The gradient of sample b alone is the seed's outer products (docs/maths.md, eqs. 6-7) before
they are summed over the batch: ``dW^l_b = delta^l_b z^(l-1)_b^T``, ``db^l_b = delta^l_b``,
with the deltas of the batched backward pass (eqs. 8-9). Each entry is one product, so a row
is the gradient of its sample to the last bit whatever the thread count, and the rows sum to
the batch gradient (:func:`fastbp.kernels.loss_and_grad`) up to the order of that sum.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import kernel, twins
from .checks import _all_finite, _check_arguments, _has_nan
from .input_derivs import FORWARD_BLOCK, ROW_BLOCK, _forward_parallel, _forward_rows
from .layers import _scale
from .plain import _plain_delta
from .workspace import _block

__all__ = ["per_sample_grads"]

# Whether the driver may call its prange kernels (False in the serial twin).
_THREADS = True


@kernel
def _per_sample_rows(theta, sizes, X, Y, A, Z, losses, G, lo, hi):
    """losses[lo:hi] and G[lo:hi] for samples lo..hi, after the forward pass.

    delta^L = (z^L - y) * h'(a^L) in float64 (as ``output_delta``); for l = L..1 the rows
    of G get dW^l_b = delta^l_b z^(l-1)_b^T (row-major, the layout of theta) and db^l_b, then
    delta^(l-1) = (W^l^T delta^l) * h'(a^(l-1)) into A (the raw sums in the second half of Z).
    """
    B = X.shape[0]
    L = sizes.shape[0] - 1
    units = 0
    for l in range(1, L + 1):
        units += sizes[l]
    m = sizes[L]
    u0 = units - m
    nb = hi - lo
    delta = _block(A, B, u0, m)[lo:hi]
    zL = _block(Z, B, u0, m)[lo:hi]
    for n in range(nb):
        total = 0.0
        for i in range(m):
            r = np.float64(zL[n, i]) - np.float64(Y[lo + n, i])
            total += 0.5 * (r * r)
            delta[n, i] = r * delta[n, i]
        losses[lo + n] = total
    w_end = theta.shape[0]
    for l in range(L, 0, -1):
        m_in = sizes[l - 1]
        m_out = sizes[l]
        b0 = w_end - m_out
        w0 = b0 - m_out * m_in
        u_prev = u0 - m_in
        zin = X[lo:hi] if l == 1 else _block(Z, B, u_prev, m_in)[lo:hi]
        for n in range(nb):
            g = G[lo + n]
            d = delta[n]
            x = zin[n]
            for i in range(m_out):
                di = d[i]
                row = g[w0 + i * m_in : w0 + (i + 1) * m_in]
                for j in range(m_in):
                    row[j] = di * x[j]
            gb = g[b0 : b0 + m_out]
            for i in range(m_out):
                gb[i] = d[i]
        if l > 1:
            acc = _block(Z[B * units :], B, u_prev, m_in)[lo:hi]
            _plain_delta(theta, w0, delta, acc)
            a_prev = _block(A, B, u_prev, m_in)[lo:hi]
            _scale(acc, a_prev, 0, nb, 0, m_in)
            delta = a_prev
        u0 = u_prev
        w_end = w0


@kernel(parallel=True)
def _per_sample_parallel(theta, sizes, X, Y, A, Z, losses, G):
    B = X.shape[0]
    n = (B + ROW_BLOCK - 1) // ROW_BLOCK
    for c in prange(n):
        lo = c * ROW_BLOCK
        _per_sample_rows(theta, sizes, X, Y, A, Z, losses, G, lo, min(B, lo + ROW_BLOCK))


@kernel
def per_sample_grads(theta, sizes, codes, X, Y, A, Z, losses, G):
    """Per-sample losses (into ``losses``, (B,)) and gradients (into ``G``, (B, n_params)).

    ``losses[b] = 1/2 ||f(x_b) - y_b||^2`` (computed in float64, stored in the dtype of
    ``losses``) and ``G[b]`` its gradient with respect to theta, in theta's layout. Returns the
    batch loss (float64, summed in sample order: the value :func:`loss` returns), or NaN when
    an entry of G is NaN (intermediate values overflowed). ``A`` and ``Z`` are the workspace
    of :func:`make_workspace`.
    """
    _check_arguments(theta, sizes, codes, X, A, Z)
    B = X.shape[0]
    L = sizes.shape[0] - 1
    if Y.shape[0] != B or Y.shape[1] != sizes[L]:
        raise ValueError("kernels: Y must have shape (B, sizes[-1])")
    if losses.shape[0] != B:
        raise ValueError("kernels: losses must have shape (B,)")
    if G.shape[0] != B or G.shape[1] != theta.shape[0]:
        raise ValueError("kernels: G must have shape (B, len(theta))")
    if not _all_finite(X):
        raise ValueError("X: expected finite values, found NaN or Inf")
    if not _all_finite(Y):
        raise ValueError("Y: expected finite values, found NaN or Inf")
    if _THREADS and B > FORWARD_BLOCK:
        _forward_parallel(theta, sizes, codes, X, A, Z)
    else:
        _forward_rows(theta, sizes, codes, X, A, Z, 0, B)
    units = 0
    for l in range(1, L + 1):
        units += sizes[l]
    zL = _block(Z, B, units - sizes[L], sizes[L])
    total = 0.0
    for n in range(B):
        for i in range(sizes[L]):
            r = np.float64(zL[n, i]) - np.float64(Y[n, i])
            total += 0.5 * (r * r)
    if _THREADS and B > ROW_BLOCK:
        _per_sample_parallel(theta, sizes, X, Y, A, Z, losses, G)
    else:
        _per_sample_rows(theta, sizes, X, Y, A, Z, losses, G, 0, B)
    # An entry of G is one product delta * z: NaN only where a delta or a z is NaN or
    # infinite (0 * inf). The deltas and activations are few; G is scanned only if one is.
    n = B * units
    if not (_all_finite(A[:n].reshape((1, n))) and _all_finite(Z[:n].reshape((1, n)))):
        for b in range(B):
            if _has_nan(G[b]):
                return np.nan
    return total


(_per_sample_grads_serial,) = twins((per_sample_grads,), {**globals(), "_THREADS": False}, "serial")
