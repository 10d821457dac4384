"""The B = 1 path for tiny networks: loss and gradient of one sample in one fused loop nest.

Used by :func:`fastbp.kernels.loss_and_grad` when B = 1 and the network has at most
:data:`TINY_PARAMS` parameters, and directly (through :func:`_single_sample_flat`, six array
arguments) by :class:`fastbp.MLP` for a 1-D sample.
"""

from __future__ import annotations

import numpy as np

from ._checks import _all_finite, _has_nan
from ._jit import kernel
from ._layers import _activate_units

#: Networks with at most this many parameters take :func:`_single_sample` for B = 1.
TINY_PARAMS = 2048


@kernel
def _single_sample(theta, sizes, codes, x, y, A, Z, tmp, grad):
    """Loss and gradient for one sample of a tiny network, fused in one plain loop nest.

    For a few dozen weights the tiled path is all set-up (views, tails, a call per layer):
    measured 1.2 us inside the kernel for [2, 16, 1], against 0.3 us for these loops.
    Forward: a = W z + b summed in k order, h and h' from one exponential; backward: each
    row of W is read once to write its dW row (outer product) and add into delta^(l-1).
    """
    L = sizes.shape[0] - 1
    w0 = 0
    u0 = 0
    for l in range(L):
        m_in = sizes[l]
        m_out = sizes[l + 1]
        b0 = w0 + m_out * m_in
        for i in range(m_out):
            p = w0 + i * m_in
            s = theta[b0 + i]
            for k in range(m_in):
                s += theta[p + k] * (x[k] if l == 0 else Z[u0 - m_in + k])
            Z[u0 + i] = s
        # h and h' over the layer's sums at once (vector loops for the smooth activations).
        _activate_units(codes[l], A, Z, u0, m_out)
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
        for k in range(m_in):
            tmp[k] = 0.0
        for i in range(m_out):
            d = A[u0 + i]
            p = w0 + i * m_in
            for k in range(m_in):
                grad[p + k] = d * (x[k] if l == 1 else Z[u_prev + k])
                tmp[k] += theta[p + k] * d
            grad[b0 + i] = d
        if l > 1:
            for k in range(m_in):
                A[u_prev + k] = tmp[k] * A[u_prev + k]
        u0 = u_prev
        w_end = w0
    return total


@kernel
def _single_sample_flat(theta, meta, x, y, buf, grad):
    """:func:`_single_sample` for 1-D x and y, with six array arguments instead of nine.

    The entry :class:`fastbp.MLP` uses for one sample of a tiny network: every array argument
    costs ~0.1-0.15 us of boxing per call and a reshape of x and y another ~0.3 us each, which is
    most of a [2, 16, 1] call. ``meta`` is ``sizes`` then ``codes``; ``buf`` holds a, z (U each)
    then the delta row (max(sizes)). Shapes and dtypes are the caller's to check; NaN/Inf in
    x or y raise ValueError before any work. Returns NaN when the gradient holds a NaN.
    """
    L = (meta.shape[0] - 1) // 2
    sizes = meta[: L + 1]
    codes = meta[L + 1 :]
    units = 0
    for l in range(1, L + 1):
        units += sizes[l]
    if not _all_finite(x.reshape((1, x.shape[0]))):
        raise ValueError("X: expected finite values, found NaN or Inf")
    if not _all_finite(y.reshape((1, y.shape[0]))):
        raise ValueError("Y: expected finite values, found NaN or Inf")
    A = buf[:units]
    Z = buf[units : 2 * units]
    tmp = buf[2 * units :]
    total = _single_sample(theta, sizes, codes, x, y, A, Z, tmp, grad)
    # NaN in the gradient (an overflow met its opposite) is reported as a NaN loss: the caller
    # (MLP.loss_and_grad) then raises FloatingPointError without another pass over grad.
    return np.nan if _has_nan(grad) else total
