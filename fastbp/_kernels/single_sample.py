"""The B = 1 path for tiny networks: loss and gradient of one sample in one fused loop nest.

Used by :func:`fastbp.kernels.loss_and_grad` when B = 1 and the network has at most
:data:`TINY_PARAMS` parameters, and directly (through :func:`_single_sample_flat`, six array
arguments) by :class:`fastbp.MLP` for a 1-D sample.
"""

from __future__ import annotations

import numpy as np

from .._jit import kernel
from .checks import _has_nan
from .layers import _activate_units

#: Networks with at most this many parameters take :func:`_single_sample` for B = 1.
TINY_PARAMS = 2048


@kernel
def _single_sample(theta, sizes, codes, x, y, A, Z, tmp, grad):
    """Loss and gradient for one sample of a tiny network, fused in one plain loop nest.

    For a few dozen weights the tiled path is all set-up (views, tails, a call per layer)
    (docs/perf-log.md, row 10).
    Forward: a = W z + b summed in k order, h and h' from one exponential; backward: each
    row of W is read once to write its dW row (outer product) and add into delta^(l-1).

    The first layer's backward step skips the delta^0 it does not need, and rows are read
    through views indexed from ``range`` (``w[k]``, not ``theta[p + k]``), so LLVM can drop
    Numba's negative-index wraparound from the inner loops (docs/perf-log.md, row 17).
    """
    L = sizes.shape[0] - 1
    w0 = 0
    u0 = 0
    for l in range(L):
        m_in = sizes[l]
        m_out = sizes[l + 1]
        b0 = w0 + m_out * m_in
        code = codes[l]
        zin = x if l == 0 else Z[u0 - m_in : u0]
        b = theta[b0 : b0 + m_out]
        z_out = Z[u0 : u0 + m_out]
        for i in range(m_out):
            w = theta[w0 + i * m_in : w0 + (i + 1) * m_in]
            s = b[i]
            for k in range(m_in):
                s += w[k] * zin[k]
            z_out[i] = s
        # h and h' over the layer's sums at once (vector loops for the smooth activations).
        _activate_units(code, A, Z, u0, m_out)
        w0 = b0 + m_out
        u0 += m_out
    # Output delta and loss (float64, in order).
    m = sizes[L]
    u0 -= m
    total = 0.0
    for i in range(m):
        r = np.float64(Z[u0 + i]) - np.float64(y[i])  # float64: see output_delta
        total += 0.5 * (r * r)
        A[u0 + i] = r * A[u0 + i]
    w_end = theta.shape[0]
    for l in range(L, 0, -1):
        m_in = sizes[l - 1]
        m_out = sizes[l]
        b0 = w_end - m_out
        w0 = b0 - m_out * m_in
        u_prev = u0 - m_in
        dl = A[u0 : u0 + m_out]
        gb = grad[b0 : b0 + m_out]
        if l > 1:
            t = tmp[:m_in]
            zin = Z[u_prev:u0]
            for k in range(m_in):
                t[k] = 0.0
            for i in range(m_out):
                d = dl[i]
                w = theta[w0 + i * m_in : w0 + (i + 1) * m_in]
                g = grad[w0 + i * m_in : w0 + (i + 1) * m_in]
                for k in range(m_in):
                    g[k] = d * zin[k]
                    t[k] += w[k] * d
                gb[i] = d
            ap = A[u_prev:u0]
            for k in range(m_in):
                ap[k] = t[k] * ap[k]
        else:  # the first layer: no delta^0 is needed, so W^1 is not summed into tmp
            for i in range(m_out):
                d = dl[i]
                g = grad[w0 + i * m_in : w0 + (i + 1) * m_in]
                for k in range(m_in):
                    g[k] = d * x[k]
                gb[i] = d
        u0 = u_prev
        w_end = w0
    return total


@kernel
def _is_vector(v, n):
    """Whether the 1-D array v is n long, contiguous and aligned: what a C-contiguous 1-D type
    promises but the compiled entry, called without type dispatch, cannot assume."""
    item = v.itemsize
    return v.shape[0] == n and (n == 1 or v.strides[0] == item) and v.ctypes.data % item == 0


@kernel
def _finite_vector(v):
    """Whether every entry of the 1-D array v is finite (``_all_finite`` without a 2-D view)."""
    bad = False
    for k in range(v.shape[0]):
        d = v[k] - v[k]
        bad |= d != d
    return not bad


@kernel
def _single_sample_flat(theta, meta, x, y, buf, grad):
    """:func:`_single_sample` for 1-D x and y, with six array arguments instead of nine.

    The entry :class:`fastbp.MLP` uses for one sample of a tiny network: every array argument
    costs unboxing and type dispatch per call (MLP skips the dispatch by calling the compiled
    overload directly), and so would a reshape of x and y in Python (docs/perf-log.md,
    row 17).
    ``meta`` is ``sizes`` then ``codes``; ``buf`` holds a, z (U each) then the delta row
    (max(sizes)).

    The caller checks the dtypes, that every array is 1-D and that grad is C-contiguous, aligned
    and writable (MLP calls the compiled overload directly, so nothing else checks them); the
    lengths, strides and alignment of x and y, the length of grad and NaN/Inf in x or y are
    checked here, before any work, and raise ValueError. Returns NaN when the gradient holds a
    NaN.
    """
    L = (meta.shape[0] - 1) // 2
    sizes = meta[: L + 1]
    codes = meta[L + 1 :]
    if not (_is_vector(x, sizes[0]) and _is_vector(y, sizes[L])):
        raise ValueError("x, y: expected contiguous, aligned vectors of lengths M^0 and M^L")
    if grad.shape[0] != theta.shape[0]:
        raise ValueError("grad: expected the length of theta")
    if not _finite_vector(x):
        raise ValueError("X: expected finite values, found NaN or Inf")
    if not _finite_vector(y):
        raise ValueError("Y: expected finite values, found NaN or Inf")
    units = 0
    for l in range(1, L + 1):
        units += sizes[l]
    A = buf[:units]
    Z = buf[units : 2 * units]
    tmp = buf[2 * units :]
    total = _single_sample(theta, sizes, codes, x, y, A, Z, tmp, grad)
    # NaN in the gradient (an overflow met its opposite) is reported as a NaN loss: the caller
    # (MLP.loss_and_grad) then raises FloatingPointError without another pass over grad.
    return np.nan if _has_nan(grad) else total
