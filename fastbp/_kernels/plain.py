"""The plain tier's kernels: one short plain-loop kernel per layer and step, called from Python
by :mod:`fastbp._plain`, so that no kernel links another one's register tiles and a first call
compiles in a few seconds (only the activations the network uses are compiled).

The hand-over from this tier to the tiled drivers is safe only because both tiers give the same
bits, which fixes every loop here:
each sum runs in the tiled kernels' order with the same fused multiply-adds
(:func:`fastbp._jit.fma`):

- a[n, i] = b_i + sum_k W[i, k] z[n, k], sequential in k, for the samples the tiles cover
  (n < B - B % SPAN, SPAN = 32 on every tier); the remaining samples go through the tiles'
  own edge loop (:func:`fastbp._kernels.layers._forward_samples`, an 8-way split dot product);
- h and h' by the same pair functions as the tiles' epilogue, in float64;
- delta^(l-1)[n, j] = sum_i delta[n, i] W[i, j], sequential in i, first term assigned, then
  the tiles' own epilogue :func:`fastbp._kernels.layers._scale`;
- dW[i, j] = sum_n delta[n, i] z[n, j], sequential in n, first sample assigned; db[i] the
  same sum of plain adds as :func:`fastbp.kernels._layer_gradient`;
- the output delta, the single-sample path of a tiny network and the overflow re-check of the
  weight gradient are the tiled drivers' own kernels, and the NaN bound is theirs, evaluated
  here with NumPy.

``tests/test_plain_tier.py`` checks the bits against the tiled drivers at production shapes.
"""

from __future__ import annotations

import numpy as np

from .._jit import fma, kernel, twins
from .forward_tiles import SPAN
from .layers import (
    IDENTITY,
    LEAKY_RELU,
    RELU,
    SIGMOID,
    SOFTPLUS,
    TANH,
    _bias_gradient,
    _forward_samples,
    _piecewise_pair,
    _sigmoid_pair,
    _softplus_pair,
    _tanh_pair,
)

__all__ = ["EPILOGUES"]


# --------------------------------------------------------------------------------------------
# Kernels: one layer each.
# --------------------------------------------------------------------------------------------
@kernel
def _plain_affine(theta, w0, b0, zin, a):
    """a = zin W^T + b for one layer, in the tiles' summation order (module notes)."""
    B, m_in = zin.shape
    m_out = a.shape[1]
    Bt = B - B % SPAN
    r4 = m_out - m_out % 4
    for n in range(Bt):
        x = zin[n]
        ar = a[n]
        # Four rows at once: four independent chains of fused multiply-adds instead of one
        # waiting on the last (each still sequential over k, so the same bits).
        for i in range(0, r4, 4):
            p = w0 + i * m_in
            wa = theta[p : p + m_in]
            wb = theta[p + m_in : p + 2 * m_in]
            wc = theta[p + 2 * m_in : p + 3 * m_in]
            wd = theta[p + 3 * m_in : p + 4 * m_in]
            sa = theta[b0 + i]
            sb = theta[b0 + i + 1]
            sc = theta[b0 + i + 2]
            sd = theta[b0 + i + 3]
            for k in range(m_in):
                xk = x[k]
                sa = fma(wa[k], xk, sa)
                sb = fma(wb[k], xk, sb)
                sc = fma(wc[k], xk, sc)
                sd = fma(wd[k], xk, sd)
            ar[i] = sa
            ar[i + 1] = sb
            ar[i + 2] = sc
            ar[i + 3] = sd
        for i in range(r4, m_out):
            p = w0 + i * m_in
            w = theta[p : p + m_in]
            s = theta[b0 + i]
            for k in range(m_in):
                s = fma(w[k], x[k], s)
            ar[i] = s
    _forward_samples(theta, w0, b0, zin, a, Bt, B, 0, m_out)


@kernel
def _plain_weight_gradient(delta, zin, w0, grad):
    """dW = delta^T zin (sequential over samples, first assigned) and db = sum_n delta[n]."""
    B, m_out = delta.shape
    m_in = zin.shape[1]
    b0 = w0 + m_out * m_in
    if B == 0:
        for k in range(w0, b0 + m_out):
            grad[k] = 0.0
        return
    for i in range(m_out):
        g = grad[w0 + i * m_in : w0 + (i + 1) * m_in]
        d = delta[0, i]
        z0 = zin[0]
        for j in range(m_in):
            g[j] = d * z0[j]
        for n in range(1, B):
            d = delta[n, i]
            zn = zin[n]
            for j in range(m_in):
                g[j] = fma(d, zn[j], g[j])
    _bias_gradient(delta, grad[b0 : b0 + m_out])


@kernel
def _plain_delta(theta, w0, delta, acc):
    """acc[n, j] = sum_i delta[n, i] W[i, j], sequential over i, first term assigned."""
    B, m_out = delta.shape
    m_in = acc.shape[1]
    for n in range(B):
        r = acc[n]
        d = delta[n, 0]
        w = theta[w0 : w0 + m_in]
        for j in range(m_in):
            r[j] = d * w[j]
        for i in range(1, m_out):
            d = delta[n, i]
            w = theta[w0 + i * m_in : w0 + (i + 1) * m_in]
            for j in range(m_in):
                r[j] = fma(d, w[j], r[j])


# The epilogue per activation and mode: each twin binds _pair to one activation's (h, h') and
# _DERIVATIVE to whether h' replaces a, so a call compiles only the activation it runs.
_DERIVATIVE = True


@kernel(inline="always")
def _pair(a):  # pragma: no cover - a placeholder that every twin rebinds
    return a, a


@kernel
def _epilogue(a, z):
    """z = h(a), and with _DERIVATIVE a = h'(a), entry by entry over a (B, m) block."""
    B, m = a.shape
    for n in range(B):
        ar = a[n]
        zr = z[n]
        for i in range(m):
            h, d = _pair(ar[i])
            if _DERIVATIVE:
                ar[i] = d
            zr[i] = h


# The smooth pairs in float64 (as layers._smooth_pair takes them), the piecewise ones in the
# data's dtype (as layers.activation_and_derivative takes them).
@kernel(inline="always")
def _sigmoid(a):
    return _sigmoid_pair(np.float64(a))


@kernel(inline="always")
def _tanh(a):
    return _tanh_pair(np.float64(a))


@kernel(inline="always")
def _softplus(a):
    return _softplus_pair(np.float64(a))


@kernel(inline="always")
def _relu(a):
    return _piecewise_pair(RELU, a)


@kernel(inline="always")
def _leaky_relu(a):
    return _piecewise_pair(LEAKY_RELU, a)


@kernel(inline="always")
def _identity(a):
    return _piecewise_pair(IDENTITY, a)


_PAIRS = {
    SIGMOID: ("sigmoid", _sigmoid),
    TANH: ("tanh", _tanh),
    RELU: ("relu", _relu),
    LEAKY_RELU: ("leaky_relu", _leaky_relu),
    SOFTPLUS: ("softplus", _softplus),
    IDENTITY: ("identity", _identity),
}
#: (activation code, derivative) -> the epilogue kernel for that activation and mode.
EPILOGUES = {
    (code, derivative): twins(
        (_epilogue,),
        {**globals(), "_pair": pair, "_DERIVATIVE": derivative},
        f"{name}_{'gradient' if derivative else 'forward'}",
    )[0]
    for code, (name, pair) in _PAIRS.items()
    for derivative in (True, False)
}
