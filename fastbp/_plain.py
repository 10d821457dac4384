"""The plain tier: the whole-network drivers as Python over small plain-loop kernels.

The tiled drivers of :mod:`fastbp.kernels` compile for tens of seconds on a cold cache: the
register tiles are large, and Numba links every callee's library into its caller and optimizes
and emits all of it again at each level of the driver chain. This tier computes the same
quantities with a few short kernels called one per layer from Python, so no kernel links
another one's tiles: a first call compiles in a few seconds, and only the activations the
network uses are compiled. :mod:`fastbp._dispatch` runs it until the tiled drivers are in the
disk cache (built by a helper process, :mod:`fastbp._warm`), then hands over.

The hand-over is safe only because both tiers give the same bits: the kernels
(:mod:`fastbp._kernels.plain`) sum in the tiled kernels' order with the same fused multiply-adds,
and the output delta, the single-sample path of a tiny network and the overflow re-check of the
weight gradient are the tiled drivers' own kernels; the NaN bound is theirs, evaluated here with
NumPy.

``tests/test_plain_tier.py`` checks the bits against the tiled drivers at production shapes.
The checks are NumPy's (this tier is called by :class:`fastbp.MLP` only, on buffers it made),
and raise the drivers' messages. Serial, and it allocates small temporaries in its checks:
it serves the first seconds of a process, not the steady state (docs/perf-log.md, "Plain
tier").
"""

from __future__ import annotations

import math

import numpy as np

from ._kernels.checks import _exact_weight_gradient
from ._kernels.layers import SIGMOID, TANH, _scale
from ._kernels.losses import check_loss_arguments, loss_delta, loss_sum, output_delta, residual_loss
from ._kernels.optimizer_steps import optimizer_step
from ._kernels.plain import EPILOGUES, _plain_affine, _plain_delta, _plain_weight_gradient
from ._kernels.single_sample import TINY_PARAMS, _single_sample
from ._kernels.train_steps import LOSS_NOT_FINITE, OK, PARAMS_NOT_FINITE, batch_scale

__all__ = ["plain_forward", "plain_loss", "plain_loss_and_grad", "plain_train_steps"]


# --------------------------------------------------------------------------------------------
# Drivers: the arguments, checks and bits of fastbp.kernels' forward, loss and loss_and_grad.
# --------------------------------------------------------------------------------------------
def _check(theta, sizes, codes, X, Y, A, Z) -> None:
    """The drivers' shape and finiteness checks (same messages), in NumPy."""
    L = sizes.shape[0] - 1
    units = int(sizes[1:].sum())
    n_params = int((sizes[1:] * (sizes[:-1] + 1)).sum())
    if L < 1 or codes.shape[0] != L:
        raise ValueError("kernels: codes must have len(sizes) - 1 entries")
    if theta.shape[0] != n_params:
        raise ValueError("kernels: theta length does not match sizes")
    if X.ndim != 2 or X.shape[1] != sizes[0]:
        raise ValueError("kernels: X must have sizes[0] columns")
    B = X.shape[0]
    if A.shape[0] < B * units or Z.shape[0] < 2 * B * units:
        raise ValueError("kernels: workspace A or Z too short (see make_workspace)")
    if Y is not None and (Y.ndim != 2 or Y.shape[0] != B or Y.shape[1] != sizes[L]):
        raise ValueError("kernels: Y must have shape (B, sizes[-1])")
    if B and not np.isfinite(X).all():
        raise ValueError("X: expected finite values, found NaN or Inf")
    if Y is not None and B and not np.isfinite(Y).all():
        raise ValueError("Y: expected finite values, found NaN or Inf")


def _forward_all(theta, sizes, codes, X, A, Z, derivative: bool) -> int:
    """Forward pass into A (a^l, or h'(a^l)) and Z (z^l), sample-major; returns the unit
    offset of the output layer (the layout of :func:`fastbp.kernels._forward_all`)."""
    B = X.shape[0]
    L = sizes.shape[0] - 1
    w0 = u0 = 0
    zin = X
    for l in range(L):
        m_in, m_out = int(sizes[l]), int(sizes[l + 1])
        b0 = w0 + m_out * m_in
        a = A[B * u0 : B * (u0 + m_out)].reshape((B, m_out))
        z = Z[B * u0 : B * (u0 + m_out)].reshape((B, m_out))
        _plain_affine(theta, w0, b0, zin, a)
        EPILOGUES[int(codes[l]), derivative](a, z)
        zin = z
        w0 = b0 + m_out
        if l < L - 1:
            u0 += m_out
    return u0


def plain_forward(theta, sizes, codes, X, A, Z, out) -> None:
    """:func:`fastbp.kernels.forward` on the plain tier."""
    _check(theta, sizes, codes, X, None, A, Z)
    if out.shape != (X.shape[0], sizes[-1]):
        raise ValueError("kernels: out must have shape (B, sizes[-1])")
    B, m = out.shape
    u0 = _forward_all(theta, sizes, codes, X, A, Z, False)
    out[...] = Z[B * u0 : B * (u0 + m)].reshape((B, m))


def plain_loss(theta, sizes, codes, X, Y, A, Z, loss_code=0, weights=None) -> float:
    """:func:`fastbp.kernels.loss` on the plain tier (``loss_code`` and ``weights`` as there)."""
    _check(theta, sizes, codes, X, Y, A, Z)
    if weights is not None:
        check_loss_arguments(codes, X.shape[0], loss_code, weights)
    B, m = Y.shape
    u0 = _forward_all(theta, sizes, codes, X, A, Z, False)
    zL = Z[B * u0 : B * (u0 + m)].reshape((B, m))
    if weights is None:
        return float(residual_loss(zL, Y))
    return float(loss_sum(loss_code, zL, Y, weights))


def plain_loss_and_grad(
    theta, sizes, codes, X, Y, A, Z, tmp, grad, loss_code=0, weights=None
) -> float:
    """:func:`fastbp.kernels.loss_and_grad` on the plain tier (A holds delta^l afterwards;
    ``loss_code`` and ``weights`` as there)."""
    _check(theta, sizes, codes, X, Y, A, Z)
    if grad.shape[0] != theta.shape[0]:
        raise ValueError("kernels: grad must have the length of theta")
    if weights is not None:
        check_loss_arguments(codes, X.shape[0], loss_code, weights)
    B = X.shape[0]
    L = sizes.shape[0] - 1
    if weights is None and B == 1 and theta.shape[0] <= TINY_PARAMS:
        # The tiled driver's single-sample path (its own summation order), so the same bits.
        total = _single_sample(theta, sizes, codes, X[0], Y[0], A, Z, tmp, grad)
        return np.nan if np.isnan(grad).any() else total
    u0 = _forward_all(theta, sizes, codes, X, A, Z, True)
    m = int(sizes[L])
    aL = A[B * u0 : B * (u0 + m)].reshape((B, m))
    zL = Z[B * u0 : B * (u0 + m)].reshape((B, m))
    if weights is None:
        total = output_delta(aL, zL, Y)
    else:
        total = loss_delta(loss_code, aL, zL, Y, weights)
    units = int(sizes[1:].sum())
    w_end = theta.shape[0]
    for l in range(L, 0, -1):
        m_in, m_out = int(sizes[l - 1]), int(sizes[l])
        b0 = w_end - m_out
        w0 = b0 - m_out * m_in
        delta = A[B * u0 : B * (u0 + m_out)].reshape((B, m_out))
        u_prev = u0 - m_in if l > 1 else 0
        zin = Z[B * u_prev : B * (u_prev + m_in)].reshape((B, m_in)) if l > 1 else X
        _plain_weight_gradient(delta, zin, w0, grad)
        if l > 1:
            acc = Z[B * units : B * (units + m_in)].reshape((B, m_in))  # past z^L: free
            _plain_delta(theta, w0, delta, acc)
            _scale(acc, A[B * u_prev : B * (u_prev + m_in)].reshape((B, m_in)), 0, B, 0, m_in)
        u0 = u_prev
        w_end = w0
    if _gradient_may_be_nan(sizes, codes, X, A, Z, grad):
        total = np.nan
    return total


def _max_abs(v) -> float:
    """max |v| as float64, inf when v holds NaN or Inf (as
    :func:`fastbp._kernels.checks._max_abs`)."""
    if v.size == 0:
        return 0.0
    m = float(np.abs(v).max())
    return m if m < np.inf else np.inf


def _gradient_may_be_nan(sizes, codes, X, A, Z, grad) -> bool:
    """:func:`fastbp._kernels.checks._gradient_may_be_nan`'s bound, layer by layer, in NumPy: a
    layer that fails it has its weight gradient recomputed without FMA (the same kernel) and
    scanned."""
    B = X.shape[0]
    L = sizes.shape[0] - 1
    zmax = _max_abs(X)
    u0 = w0 = 0
    zin = X
    for l in range(1, L + 1):
        m, m_in = int(sizes[l]), int(sizes[l - 1])
        b0 = w0 + m * m_in
        delta = A[B * u0 : B * (u0 + m)]
        if B > 0 and not (B * _max_abs(delta) * max(zmax, 1.0) < 1e37):
            _exact_weight_gradient(delta.reshape((B, m)), zin, w0, grad)
            if np.isnan(grad[w0 : b0 + m]).any():
                return True
        z = Z[B * u0 : B * (u0 + m)]
        if l == L or codes[l - 1] == SIGMOID or codes[l - 1] == TANH:
            zmax = 1.0
        else:
            zmax = _max_abs(z)
        zin = z.reshape((B, m))
        u0 += m
        w0 = b0 + m
    return False


def plain_train_steps(
    theta, sizes, codes, X, Y, order, batch_size, first, stop,
    kind, hyper, count, state, A, Z, tmp, grad, Xb, Yb, out, row, losses, status,
    loss_code=0, weights=None, wb=None,
):  # fmt: skip
    """:func:`fastbp._kernels.train_steps.train_steps` on the plain tier, mini-batch path only
    (the arguments, statuses and bits of its serial twin): gather, :func:`plain_loss_and_grad`,
    and the same compiled :func:`fastbp._kernels.optimizer_steps.optimizer_step` at
    ``scale = 1 / B`` (with weights, ``1 / sum`` of the batch's weights, 0 for a zero sum)."""
    n = X.shape[0]
    status[0] = OK
    for s in range(first, stop):
        start = s * batch_size
        B = min(batch_size, n - start)
        rows = order[start : start + B]
        np.take(X, rows, axis=0, out=Xb[:B])
        np.take(Y, rows, axis=0, out=Yb[:B])
        if weights is None:
            value = plain_loss_and_grad(theta, sizes, codes, Xb[:B], Yb[:B], A, Z, tmp, grad)
            scale = 1.0 / B
        else:
            wv, scale = weights, 1.0 / B
            if weights.shape[0] > 0:
                wv = wb[:B]
                np.take(weights, rows, out=wv)
                scale = batch_scale(wv)
            value = plain_loss_and_grad(
                theta, sizes, codes, Xb[:B], Yb[:B], A, Z, tmp, grad, loss_code, wv
            )
        ok = True
        if math.isfinite(value):
            ok = optimizer_step(kind, hyper, count, theta, grad, scale, state)
        losses[s] = value
        if not math.isfinite(value):
            status[0] = LOSS_NOT_FINITE
            return s - first
        if not ok:
            status[0] = PARAMS_NOT_FINITE
            return s - first
    return stop - first
