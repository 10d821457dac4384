"""Per-sample gradients: the recursion of a block of samples, a piece of the one compiled body of
:mod:`fastbp._kernels.input_derivs` (public as :func:`fastbp.kernels.per_sample_grads`).

The gradient of sample b alone is the seed's outer products (docs/maths.md, eqs. 6-7) before
they are summed over the batch: ``dW^l_b = delta^l_b z^(l-1)_b^T``, ``db^l_b = delta^l_b``,
with the deltas of the batched backward pass (eqs. 8-9). Each entry is one product, so a row
is the gradient of its sample to the last bit whatever the thread count, and the rows sum to
the batch gradient (:func:`fastbp.kernels.loss_and_grad`) up to the order of that sum.
"""

from __future__ import annotations

import numpy as np

from .._jit import kernel
from .layers import _scale
from .losses import SQUARED, sample_delta
from .plain import _plain_delta
from .workspace import _block

__all__: list[str] = []


@kernel(inline="always")
def _per_sample_rows(theta, sizes, X, Y, A, Z, losses, G, lo, hi, loss_code, weights):
    """losses[lo:hi] and G[lo:hi] for samples lo..hi, after the forward pass.

    delta^L = (z^L - y) * h'(a^L) in float64 (as ``output_delta``), or, with a cross-entropy
    ``loss_code`` or ``weights`` (length B), the loss table's ``sample_delta`` (the sample's
    loss and delta times its weight); for l = L..1 the rows
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
    extended = loss_code != SQUARED or weights.shape[0] != 0
    for n in range(nb):
        if extended:
            w = 1.0 if weights.shape[0] == 0 else np.float64(weights[lo + n])
            losses[lo + n] = sample_delta(loss_code, delta[n], zL[n], Y[lo + n], w)
            continue
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
