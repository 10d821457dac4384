"""The compiled steps of :meth:`MLP.fit`: one call runs many optimiser steps of an epoch.

:func:`train_steps` gathers each mini-batch, computes the loss and gradient with
:func:`fastbp.kernels.loss_and_grad` and applies :func:`fastbp.optim.optimizer_step`; for one
sample per step, :func:`one_sample_step` fuses the update into the backward pass, and for plain
SGD (momentum 0, the classic rule) :func:`sgd_sample_steps` runs the whole chunk in one kernel
that also fuses the first layer's update with the next sample's first-layer forward pass. The
Python loop around them (chunks, history, divergence, Ctrl-C) is :mod:`fastbp.train`.
"""

from __future__ import annotations

import math

import numpy as np

from . import kernels
from ._jit import kernel
from ._layers import _activate_units
from .optim import LR, MOMENTUM, SGD_KIND, WEIGHT_DECAY, layer_step, optimizer_step

__all__ = [
    "LOSS_NOT_FINITE", "OK", "PARAMS_NOT_FINITE", "one_sample_step", "sgd_sample_steps",
    "train_steps",
]  # fmt: skip

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
        # float64 as in kernels.output_delta: a float32 residual squares to inf above 1.8e19.
        r = np.float64(Z[u0 + i]) - np.float64(y[0, i])
        total += 0.5 * (r * r)
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


# --------------------------------------------------------------------------------------------
# Per-sample plain SGD (momentum 0), the classic backpropagation rule: every step of a call in
# one kernel, the first layer's update fused with the next step's first-layer forward pass.
# --------------------------------------------------------------------------------------------
@kernel(contract=True)
def _pair_sums(W0, W1, c0, c1, x):
    """``(c0 + W0 . x, c1 + W1 . x)`` for two weight rows, each summed in the order of
    :func:`fastbp._layers._forward_samples` (8 lane sums over k = 0, 8, ...; a fixed tree; then
    the tail) and with its FMA contraction, so a row gives the bits of the drivers'
    single-sample forward pass.

    Two rows at once share the loads of x and give two independent chains of vector adds: the
    one-row loop waits on the add latency. Measured for 784 x 128 (all rows, float64, minimum
    of 300, loaded machine): 9.7 us against 25.4 us for ``_forward_samples``, the same bits.
    """
    m_in = x.shape[0]
    k8 = m_in - m_in % 8
    if k8 > 0:
        xk = x[0:8]
        v0 = W0[0:8]
        v1 = W1[0:8]
        s00 = v0[0] * xk[0]
        s01 = v0[1] * xk[1]
        s02 = v0[2] * xk[2]
        s03 = v0[3] * xk[3]
        s04 = v0[4] * xk[4]
        s05 = v0[5] * xk[5]
        s06 = v0[6] * xk[6]
        s07 = v0[7] * xk[7]
        s10 = v1[0] * xk[0]
        s11 = v1[1] * xk[1]
        s12 = v1[2] * xk[2]
        s13 = v1[3] * xk[3]
        s14 = v1[4] * xk[4]
        s15 = v1[5] * xk[5]
        s16 = v1[6] * xk[6]
        s17 = v1[7] * xk[7]
        for k in range(8, k8, 8):
            xk = x[k : k + 8]
            v0 = W0[k : k + 8]
            v1 = W1[k : k + 8]
            s00 += v0[0] * xk[0]
            s01 += v0[1] * xk[1]
            s02 += v0[2] * xk[2]
            s03 += v0[3] * xk[3]
            s04 += v0[4] * xk[4]
            s05 += v0[5] * xk[5]
            s06 += v0[6] * xk[6]
            s07 += v0[7] * xk[7]
            s10 += v1[0] * xk[0]
            s11 += v1[1] * xk[1]
            s12 += v1[2] * xk[2]
            s13 += v1[3] * xk[3]
            s14 += v1[4] * xk[4]
            s15 += v1[5] * xk[5]
            s16 += v1[6] * xk[6]
            s17 += v1[7] * xk[7]
        c0 += ((s00 + s01) + (s02 + s03)) + ((s04 + s05) + (s06 + s07))
        c1 += ((s10 + s11) + (s12 + s13)) + ((s14 + s15) + (s16 + s17))
    for k in range(k8, m_in):
        c0 += W0[k] * x[k]
        c1 += W1[k] * x[k]
    return c0, c1


@kernel
def _layer_sums(theta, w0, b0, x, a):
    """a = W x + b for one sample (W at w0, b at b0 of theta), rows by pairs."""
    m_out = a.shape[0]
    m_in = x.shape[0]
    for i in range(0, m_out - 1, 2):
        p = w0 + i * m_in
        a[i], a[i + 1] = _pair_sums(
            theta[p : p + m_in], theta[p + m_in : p + 2 * m_in], theta[b0 + i], theta[b0 + i + 1],
            x,
        )  # fmt: skip
    if m_out % 2:
        i = m_out - 1
        p = w0 + i * m_in
        W = theta[p : p + m_in]
        a[i] = _pair_sums(W, W, theta[b0 + i], theta[b0 + i], x)[0]


@kernel
def _sgd_row(theta, p, m_in, bk, d, z, lr, wd):
    """Plain SGD on one weight row (at p) and its bias (at bk) from one sample; True if finite.

    The expressions of :func:`fastbp.optim.layer_step`, so the same bits.
    """
    W = theta[p : p + m_in]
    bad = False
    for j in range(m_in):
        t = W[j] - lr * (1.0 * (d * z[j]) + wd * W[j])
        W[j] = t
        bad |= (t - t) != 0.0
    t = theta[bk] - lr * (1.0 * d + wd * theta[bk])
    theta[bk] = t
    bad |= (t - t) != 0.0
    return not bad


@kernel
def _first_layer_update_and_forward(theta, w0, b0, delta, z, lr, wd, x_next, a_next):
    """Plain SGD update of layer 1 from one sample, fused with the next sample's forward sums.

    Rows go by pairs: both are updated (:func:`_sgd_row`) and, while they are in L1, summed
    against the next sample (:func:`_pair_sums`), so ``a_next`` gets the bits the next step's
    own forward pass would give. W^1 is read and written once per step instead of being read by
    the forward pass and read and written again by the update. Returns True when every value
    written is finite.
    """
    m_out = delta.shape[0]
    m_in = z.shape[0]
    ok = True
    for i in range(0, m_out - 1, 2):
        p = w0 + i * m_in
        ok &= _sgd_row(theta, p, m_in, b0 + i, delta[i], z, lr, wd)
        ok &= _sgd_row(theta, p + m_in, m_in, b0 + i + 1, delta[i + 1], z, lr, wd)
        a_next[i], a_next[i + 1] = _pair_sums(
            theta[p : p + m_in], theta[p + m_in : p + 2 * m_in], theta[b0 + i], theta[b0 + i + 1],
            x_next,
        )  # fmt: skip
    if m_out % 2:
        i = m_out - 1
        p = w0 + i * m_in
        ok &= _sgd_row(theta, p, m_in, b0 + i, delta[i], z, lr, wd)
        W = theta[p : p + m_in]
        a_next[i] = _pair_sums(W, W, theta[b0 + i], theta[b0 + i], x_next)[0]
    return ok


@kernel
def _activate_in_place(code, A, Z, u0, m):
    """z = h(a) over Z[u0 : u0 + m] (which holds a), h'(a) into A: one exponential each (NaN
    for both where a overflowed, as in the drivers' forward epilogue)."""
    _activate_units(code, A, Z, u0, m)


@kernel
def sgd_sample_steps(
    theta, sizes, codes, X, Y, order, first, stop, hyper, count, state, A, Z, row, losses, status
):
    """Steps ``first <= s < stop`` of per-sample plain SGD; the contract of :func:`train_steps`.

    Step s trains on sample ``order[s]``, read in place from X and Y (no gather). Forward:
    a^l = W^l z^(l-1) + b^l by :func:`_layer_sums` (the bits of the drivers' single-sample
    loop), z^l = h(a^l) into Z and h'(a^l) into A (one exponential). Backward
    from the output: delta^(l-1) from the old W^l, then W^l updated at once
    (:func:`fastbp.optim.layer_step`, no gradient array). Layer 1, the big one, is updated by
    :func:`_first_layer_update_and_forward`, which also leaves the next step's a^1 in
    Z[:M^1]: each step after the first of a call starts from there. Per step this is the
    arithmetic of :func:`one_sample_step`, bit for bit, without its per-step argument checks.
    """
    L = sizes.shape[0] - 1
    m0 = sizes[0]
    m1 = sizes[1]
    lr = hyper[LR]
    wd = hyper[WEIGHT_DECAY]
    status[0] = OK
    units = 0
    for l in range(1, L + 1):
        units += sizes[l]
    u_out = units - sizes[L]
    pending = False  # Z[:m1] holds the a^1 of step s (summed by the previous step)
    for s in range(first, stop):
        x = X[order[s]]
        y = Y[order[s]]
        if not pending:
            _layer_sums(theta, 0, m1 * m0, x, Z[:m1])
        _activate_in_place(codes[0], A, Z, 0, m1)
        w0 = m1 * (m0 + 1)
        u0 = 0
        for l in range(2, L + 1):
            m_in = sizes[l - 1]
            m_out = sizes[l]
            b0 = w0 + m_out * m_in
            _layer_sums(theta, w0, b0, Z[u0 : u0 + m_in], Z[u0 + m_in : u0 + m_in + m_out])
            _activate_in_place(codes[l - 1], A, Z, u0 + m_in, m_out)
            u0 += m_in
            w0 = b0 + m_out
        # delta^L = (z^L - y) * h'(a^L) and the loss, as in one_sample_step.
        total = 0.0
        for i in range(sizes[L]):
            r = np.float64(Z[u_out + i]) - np.float64(y[i])  # float64: see output_delta
            total += 0.5 * (r * r)
            A[u_out + i] = r * A[u_out + i]
        losses[s] = total
        if not math.isfinite(total):
            status[0] = LOSS_NOT_FINITE
            return s - first
        count[0] += 1
        ok = True
        u0 = u_out
        w_end = theta.shape[0]
        for l in range(L, 1, -1):
            m_in = sizes[l - 1]
            m_out = sizes[l]
            b0 = w_end - m_out
            w0 = b0 - m_out * m_in
            u_prev = u0 - m_in
            for j in range(m_in):
                row[j] = 0.0
            for i in range(m_out):
                d = A[u0 + i]
                r0 = w0 + i * m_in
                for j in range(m_in):
                    row[j] += theta[r0 + j] * d
            for j in range(m_in):
                A[u_prev + j] = row[j] * A[u_prev + j]
            delta = A[u0 : u0 + m_out]
            ok &= layer_step(
                SGD_KIND, hyper, count[0], theta, w0, b0, delta, Z[u_prev:u0], state, row
            )
            u0 = u_prev
            w_end = w0
        if s + 1 < stop:
            ok &= _first_layer_update_and_forward(
                theta, 0, m1 * m0, A[:m1], x, lr, wd, X[order[s + 1]], Z[:m1]
            )
            pending = True
        else:
            ok &= layer_step(SGD_KIND, hyper, count[0], theta, 0, m1 * m0, A[:m1], x, state, row)
        if not ok:
            status[0] = PARAMS_NOT_FINITE
            return s - first
    return stop - first


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
    (:func:`one_sample_step`; with plain SGD the whole run is :func:`sgd_sample_steps`). The
    loss of step ``s`` (a sum over its samples, float64) goes to ``losses[s]``.

    ``status[0]`` says why the run ended: ``OK``; ``LOSS_NOT_FINITE``, the loss of step
    ``first + returned`` is NaN or Inf and theta is untouched by it; ``PARAMS_NOT_FINITE``, the
    update of step ``first + returned`` wrote a NaN or Inf: theta, state and count are those of
    a failed step and the caller restores them.
    """
    n = X.shape[0]
    m_in = X.shape[1]
    m_out = Y.shape[1]
    if batch_size == 1 and kind == SGD_KIND and hyper[MOMENTUM] == 0.0:
        # Per-sample plain SGD: the whole run in one kernel (W^1 read and written once a step).
        return sgd_sample_steps(
            theta, sizes, codes, X, Y, order, first, stop, hyper, count, state, A, Z, row,
            losses, status,
        )  # fmt: skip
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
