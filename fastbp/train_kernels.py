"""The compiled steps of :meth:`MLP.fit`: one call runs many optimiser steps of an epoch.

:func:`train_steps` gathers each mini-batch, computes the loss and gradient with
:func:`fastbp.kernels.loss_and_grad` and applies :func:`fastbp.optim.optimizer_step`; for one
sample per step, :func:`one_sample_step` fuses the update into the backward pass. The Python
loop around them (chunks, history, divergence, Ctrl-C) is :mod:`fastbp.train`.
"""

from __future__ import annotations

import math

from . import kernels
from ._jit import kernel
from .optim import layer_step, optimizer_step

__all__ = ["LOSS_NOT_FINITE", "OK", "PARAMS_NOT_FINITE", "one_sample_step", "train_steps"]

#: ``status[0]`` after :func:`train_steps`: every step done.
OK = 0
#: The loss of the step that stopped the run is NaN or Inf (theta untouched by it).
LOSS_NOT_FINITE = 1
#: The update of the step that stopped the run wrote NaN or Inf (the caller restores).
PARAMS_NOT_FINITE = 2


@kernel
def one_sample_step(theta, sizes, codes, x, y, A, Z, out, kind, hyper, count, state, row):
    """One step of per-sample training, the update fused into the backward pass.

    The forward pass is :func:`fastbp.kernels.forward`, which leaves ``a^l`` and ``z^l`` of
    each layer in the documented workspace layout (for one sample, layer ``l`` at offset
    ``M^1 + ... + M^(l-1)`` of A and Z); only that public contract and the scalar
    ``kernels.activation_derivative`` are used, not the drivers' internals, which the
    performance work reshapes. Backward, from the output down, each layer first
    propagates delta through its old ``W^l`` (as backpropagation requires) and is then updated
    at once by :func:`fastbp.optim.layer_step`, so no gradient array is ever written: for
    [784, 128, 10] in float64, theta (800 KB) is then the only large array a step touches and
    stays in a 1 MB L2 cache. ``row`` is scratch of length >= max(sizes). Returns the loss (if
    NaN or Inf, theta is untouched) and whether the update wrote only finite values.
    """
    L = sizes.shape[0] - 1
    kernels.forward(theta, sizes, codes, x, A, Z, out)
    u0 = 0
    for l in range(1, L):
        u0 += sizes[l]
    # delta^L = (z^L - y) * h'(a^L) over a^L, and the loss (float64, as kernels.loss_and_grad).
    code = codes[L - 1]
    total = 0.0
    for i in range(sizes[L]):
        r = Z[u0 + i] - y[0, i]
        total += 0.5 * (float(r) * float(r))
        A[u0 + i] = r * kernels.activation_derivative(code, A[u0 + i])
    if not math.isfinite(total):
        return total, True
    count[0] += 1
    ok = True
    w_end = theta.shape[0]
    for l in range(L, 0, -1):
        m_in = sizes[l - 1]
        m_out = sizes[l]
        b0 = w_end - m_out
        w0 = b0 - m_out * m_in
        delta = A[u0 : u0 + m_out]
        if l > 1:
            u_prev = u0 - m_in
            zin = Z[u_prev:u0]
            # delta^(l-1) = (W^l^T delta^l) * h'(a^(l-1)), from the old W^l: rows of W^l are
            # added into row[] scaled by delta (contiguous axpy), then written over a^(l-1).
            for j in range(m_in):
                row[j] = 0.0
            for i in range(m_out):
                d = delta[i]
                r0 = w0 + i * m_in
                for j in range(m_in):
                    row[j] += theta[r0 + j] * d
            code = codes[l - 2]
            for j in range(m_in):
                A[u_prev + j] = row[j] * kernels.activation_derivative(code, A[u_prev + j])
        else:
            u_prev = 0
            zin = x[0]
        ok &= layer_step(kind, hyper, count[0], theta, w0, b0, delta, zin, state, row)
        u0 = u_prev
        w_end = w0
    return total, ok


@kernel
def train_steps(
    theta, sizes, codes, X, Y, order, batch_size, first, stop,
    kind, hyper, count, state, A, Z, tmp, grad, Xb, Yb, out, row, losses, status,
):  # fmt: skip
    """Run steps ``first <= s < stop`` of an epoch; returns how many completed.

    Step ``s`` takes the samples ``order[s * batch_size : (s + 1) * batch_size]`` (fewer in the
    last step), gathers them into ``Xb``, ``Yb``, computes the loss and gradient with
    :func:`fastbp.kernels.loss_and_grad` and updates ``theta`` with
    :func:`fastbp.optim.optimizer_step` at ``scale = 1 / batch`` (the mean gradient); with
    ``batch_size == 1`` the update is fused into the backward pass instead
    (:func:`one_sample_step`). The loss of step ``s`` (a sum over its samples, float64) goes
    to ``losses[s]``.

    ``status[0]`` says why the run ended: ``OK``; ``LOSS_NOT_FINITE``, the loss of step
    ``first + returned`` is NaN or Inf and theta is untouched by it; ``PARAMS_NOT_FINITE``, the
    update of step ``first + returned`` wrote a NaN or Inf: theta, state and count are those of
    a failed step and the caller restores them.
    """
    n = X.shape[0]
    m_in = X.shape[1]
    m_out = Y.shape[1]
    status[0] = OK
    for s in range(first, stop):
        start = s * batch_size
        B = min(batch_size, n - start)
        # The gather is B * (M^0 + M^L) copies against B * n_params multiply-adds per step.
        for r in range(B):
            i = order[start + r]
            for j in range(m_in):
                Xb[r, j] = X[i, j]
            for j in range(m_out):
                Yb[r, j] = Y[i, j]
        if batch_size == 1:
            # Per-sample SGD: no gradient array at all (row: scratch of length max(sizes)).
            value, ok = one_sample_step(
                theta, sizes, codes, Xb, Yb, A, Z, out, kind, hyper, count, state, row
            )
        else:
            value = kernels.loss_and_grad(theta, sizes, codes, Xb[:B], Yb[:B], A, Z, tmp, grad)
            ok = True
            if math.isfinite(value):
                ok = optimizer_step(kind, hyper, count, theta, grad, 1.0 / B, state)
        losses[s] = value
        if not math.isfinite(value):
            status[0] = LOSS_NOT_FINITE
            return s - first
        if not ok:
            status[0] = PARAMS_NOT_FINITE
            return s - first
    return stop - first
