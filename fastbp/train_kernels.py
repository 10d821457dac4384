"""The compiled steps of :meth:`MLP.fit`: one call runs many optimiser steps of an epoch.

:func:`train_steps` gathers each mini-batch, computes the loss and gradient with
:func:`fastbp.kernels.loss_and_grad` and applies :func:`fastbp.optim.optimizer_step`; for one
sample per step, :func:`one_sample_step` fuses the update into the backward pass, and for plain
SGD (momentum 0, the classic rule) :func:`sgd_sample_steps` runs the whole chunk in one kernel
that defers the first layer's weight updates over a few steps (W^1 only read in between) and
writes them fused with the next sample's first-layer forward pass. The Python loop around them
(chunks, history, divergence, Ctrl-C) is :mod:`fastbp.train`.
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
def _sgd_weights(W, d, z, lr, wd):
    """Plain SGD on one weight row from one sample; True if every value written is finite.

    The expression of :func:`fastbp.optim.layer_step`, so the same bits.
    """
    bad = False
    for j in range(W.shape[0]):
        t = W[j] - lr * (1.0 * (d * z[j]) + wd * W[j])
        W[j] = t
        bad |= (t - t) != 0.0
    return not bad


@kernel
def _sgd_bias(theta, b0, delta, lr, wd):
    """Plain SGD on the biases at b0 from one sample (layer_step's expression); True if finite."""
    bad = False
    for i in range(delta.shape[0]):
        t = theta[b0 + i] - lr * (1.0 * delta[i] + wd * theta[b0 + i])
        theta[b0 + i] = t
        bad |= (t - t) != 0.0
    return not bad


@kernel
def _power(g, m):
    """g**m by m multiplications (the same bits wherever it is called)."""
    r = 1.0
    for _ in range(m):
        r *= g
    return r


@kernel
def _axpy4(W, scale, c0, c1, c2, c3, x0, x1, x2, x3):
    """W = scale W + ((c0 x0 + c1 x1) + (c2 x2 + c3 x3)); True if a value written is not finite.

    Four pending updates per pass over a row held in L1: one load and store of W for four.
    """
    bad = False
    for j in range(W.shape[0]):
        t = scale * W[j] + ((c0 * x0[j] + c1 * x1[j]) + (c2 * x2[j] + c3 * x3[j]))
        W[j] = t
        bad |= (t - t) != 0.0
    return bad


@kernel
def _axpy2(W, scale, c0, c1, x0, x1):
    """W = scale W + (c0 x0 + c1 x1); True if a value written is not finite."""
    bad = False
    for j in range(W.shape[0]):
        t = scale * W[j] + (c0 * x0[j] + c1 * x1[j])
        W[j] = t
        bad |= (t - t) != 0.0
    return bad


@kernel
def _axpy1(W, scale, c0, x0):
    """W = scale W + c0 x0; True if a value written is not finite."""
    bad = False
    for j in range(W.shape[0]):
        t = scale * W[j] + c0 * x0[j]
        W[j] = t
        bad |= (t - t) != 0.0
    return bad


@kernel
def _axpy4x4(Wa, Wb, Wc, Wd, scale, a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3,
             d0, d1, d2, d3, x0, x1, x2, x3):  # fmt: skip
    """:func:`_axpy4` on four rows at once (coefficients a* for Wa, b* for Wb, ...).

    The four samples' values are loaded once for four rows: 8 loads and 4 stores per 16
    multiply-adds instead of 20 and 4 (the one-row pass is bound by the loads). True if a
    value written is not finite.
    """
    bad = False
    for j in range(Wa.shape[0]):
        v0 = x0[j]
        v1 = x1[j]
        v2 = x2[j]
        v3 = x3[j]
        ta = scale * Wa[j] + ((a0 * v0 + a1 * v1) + (a2 * v2 + a3 * v3))
        tb = scale * Wb[j] + ((b0 * v0 + b1 * v1) + (b2 * v2 + b3 * v3))
        tc = scale * Wc[j] + ((c0 * v0 + c1 * v1) + (c2 * v2 + c3 * v3))
        td = scale * Wd[j] + ((d0 * v0 + d1 * v1) + (d2 * v2 + d3 * v3))
        Wa[j] = ta
        Wb[j] = tb
        Wc[j] = tc
        Wd[j] = td
        bad |= ((ta - ta) + (tb - tb) + (tc - tc) + (td - td)) != 0.0
    return bad


@kernel
def _flush_row(W, i, n_p, keep, nw, m1, X, order, s0, coef, k, scale):
    """Pending updates k, k + 1, ... of steps ``s0 + k ...`` into row i of W^1 (see
    :func:`_flush_rows`); True if a value written is not finite."""
    bad = False
    while k < n_p:
        d = nw + k * m1 + i
        if n_p - k >= 4:
            bad |= _axpy4(
                W, scale, coef[k] * keep[d], coef[k + 1] * keep[d + m1],
                coef[k + 2] * keep[d + 2 * m1], coef[k + 3] * keep[d + 3 * m1],
                X[order[s0 + k]], X[order[s0 + k + 1]], X[order[s0 + k + 2]],
                X[order[s0 + k + 3]],
            )  # fmt: skip
            k += 4
        elif n_p - k >= 2:
            bad |= _axpy2(
                W, scale, coef[k] * keep[d], coef[k + 1] * keep[d + m1],
                X[order[s0 + k]], X[order[s0 + k + 1]],
            )  # fmt: skip
            k += 2
        else:
            bad |= _axpy1(W, scale, coef[k] * keep[d], X[order[s0 + k]])
            k += 1
        scale = 1.0
    return bad


@kernel
def _flush_rows(theta, m0, m1, i, r, n_p, keep, X, order, s0, coef, lr, wd):
    """Write the ``n_p`` pending updates of steps ``s0 ...`` into rows i <= . < i + r of W^1.

    One pending update is the per-step rule itself (:func:`_sgd_weights`, the bits of
    :func:`fastbp.optim.layer_step`). Several are applied as one rank-n_p update,
    ``W = g^n_p W + sum_k c_k x_k`` with ``c_k = -lr g^(n_p - 1 - k) delta_k[i]`` and
    ``g = 1 - lr wd`` (``coef[k]`` holds ``-lr g^(n_p - 1 - k)``, ``coef[n_p]`` holds
    ``g^n_p``): the same mathematics as n_p steps of the rule, rounded differently. Four rows
    and four pending samples per pass (:func:`_axpy4x4`) when r == 4. True if all finite.
    """
    nw = m1 * m0
    if n_p == 1:
        ok = True
        for t in range(i, i + r):
            ok &= _sgd_weights(theta[t * m0 : (t + 1) * m0], keep[nw + t], X[order[s0]], lr, wd)
        return ok
    scale = coef[n_p]
    k = 0
    bad = False
    if r == 4:
        p = i * m0
        Wa = theta[p : p + m0]
        Wb = theta[p + m0 : p + 2 * m0]
        Wc = theta[p + 2 * m0 : p + 3 * m0]
        Wd = theta[p + 3 * m0 : p + 4 * m0]
        while n_p - k >= 4:
            d = nw + k * m1 + i
            e0 = coef[k]
            e1 = coef[k + 1]
            e2 = coef[k + 2]
            e3 = coef[k + 3]
            d1 = d + m1
            d2 = d + 2 * m1
            d3 = d + 3 * m1
            bad |= _axpy4x4(
                Wa, Wb, Wc, Wd, scale,
                e0 * keep[d], e1 * keep[d1], e2 * keep[d2], e3 * keep[d3],
                e0 * keep[d + 1], e1 * keep[d1 + 1], e2 * keep[d2 + 1], e3 * keep[d3 + 1],
                e0 * keep[d + 2], e1 * keep[d1 + 2], e2 * keep[d2 + 2], e3 * keep[d3 + 2],
                e0 * keep[d + 3], e1 * keep[d1 + 3], e2 * keep[d2 + 3], e3 * keep[d3 + 3],
                X[order[s0 + k]], X[order[s0 + k + 1]], X[order[s0 + k + 2]],
                X[order[s0 + k + 3]],
            )  # fmt: skip
            k += 4
            scale = 1.0
    for t in range(i, i + r):
        bad |= _flush_row(
            theta[t * m0 : (t + 1) * m0], t, n_p, keep, nw, m1, X, order, s0, coef, k, scale
        )
    return not bad


@kernel
def _flush_and_forward(
    theta, m0, m1, n_p, keep, X, order, s0, g, lr, wd, fuse, x_next, a_next, coef
):  # fmt: skip
    """Write the ``n_p`` pending updates of layer 1 into W^1, fused with the next forward sums.

    Rows go by fours: they are updated (:func:`_flush_rows`) and, while they are in L1 and
    when ``fuse``, summed against the next sample by pairs (:func:`_pair_sums`), so ``a_next``
    gets the bits the next step's own forward pass would give. With ``n_p == 1`` this is the
    per-step update of :func:`fastbp.optim.layer_step`, bit for bit. Returns True when every
    value written is finite. The biases are not touched (:func:`_sgd_bias`). ``coef``:
    scratch of length >= n_p + 1.
    """
    nw = m1 * m0
    for k in range(n_p):
        coef[k] = -lr * _power(g, n_p - 1 - k)
    coef[n_p] = _power(g, n_p)
    ok = True
    for i in range(0, m1, 4):
        r = min(4, m1 - i)
        ok &= _flush_rows(theta, m0, m1, i, r, n_p, keep, X, order, s0, coef, lr, wd)
        if fuse:
            for t in range(i, i + r - 1, 2):
                p = t * m0
                a_next[t], a_next[t + 1] = _pair_sums(
                    theta[p : p + m0], theta[p + m0 : p + 2 * m0], theta[nw + t],
                    theta[nw + t + 1], x_next,
                )  # fmt: skip
            if r % 2:
                t = i + r - 1
                W = theta[t * m0 : (t + 1) * m0]
                a_next[t] = _pair_sums(W, W, theta[nw + t], theta[nw + t], x_next)[0]
    return ok


@kernel
def _deferred_sums(theta, m0, m1, n_p, keep, X, order, s0, g, lr, x, q, a):
    """a^1 = W^1 x + b^1 with ``n_p`` updates of W^1 pending: only W^1 is read, not written.

    W^1 (theta) is the base the pending steps ``s0 ...`` started from, so the effective weights
    are ``g^n_p W + sum_k c_k delta_k x_k^T`` (see :func:`_flush_row`) and
    ``a_i = g^n_p (W_i . x) + sum_k delta_k[i] q_k + b_i`` with
    ``q_k = -lr g^(n_p - 1 - k) (x_k . x)``, the dot products of x with the pending samples
    (``q``: scratch of length >= n_p). The same mathematics, rounded differently.
    """
    nw = m1 * m0
    for k in range(0, n_p - 1, 2):
        pa, pb = _pair_sums(X[order[s0 + k]], X[order[s0 + k + 1]], 0.0, 0.0, x)
        q[k] = (-lr * _power(g, n_p - 1 - k)) * pa
        q[k + 1] = (-lr * _power(g, n_p - 2 - k)) * pb
    if n_p % 2:
        xk = X[order[s0 + n_p - 1]]
        q[n_p - 1] = -lr * _pair_sums(xk, xk, 0.0, 0.0, x)[0]
    gj = _power(g, n_p)
    for i in range(0, m1 - 1, 2):
        p = i * m0
        sa, sb = _pair_sums(theta[p : p + m0], theta[p + m0 : p + 2 * m0], 0.0, 0.0, x)
        ta = gj * sa
        tb = gj * sb
        for k in range(n_p):
            ta += keep[nw + k * m1 + i] * q[k]
            tb += keep[nw + k * m1 + i + 1] * q[k]
        a[i] = ta + theta[nw + i]
        a[i + 1] = tb + theta[nw + i + 1]
    if m1 % 2:
        i = m1 - 1
        W = theta[i * m0 : (i + 1) * m0]
        t = gj * _pair_sums(W, W, 0.0, 0.0, x)[0]
        for k in range(n_p):
            t += keep[nw + k * m1 + i] * q[k]
        a[i] = t + theta[nw + i]


@kernel
def _activate_in_place(code, A, Z, u0, m):
    """z = h(a) over Z[u0 : u0 + m] (which holds a), h'(a) into A: one exponential each (NaN
    for both where a overflowed, as in the drivers' forward epilogue)."""
    _activate_units(code, A, Z, u0, m)


#: Most steps whose layer-1 updates :func:`sgd_sample_steps` keeps pending (measured: see
#: benchmarks/README.md, row T4).
DEFER_DEPTH = 4
#: Fewer layer-1 weights than this stay in cache anyway: no deferral (depth 1).
DEFER_MIN_WEIGHTS = 16384
#: Scalars at the end of ``keep``: the bound on |W^1|, the pending count, the next step.
_KEEP_BOUND = 3
_KEEP_PENDING = 2
_KEEP_NEXT = 1


@kernel
def defer_depth(sizes, n_params):
    """The depth :func:`train_steps` gives :func:`sgd_sample_steps`: DEFER_DEPTH when W^1 has
    at least DEFER_MIN_WEIGHTS weights and a hidden layer follows it, else 1 (no deferral)."""
    if sizes.shape[0] < 3 or sizes[0] * sizes[1] < DEFER_MIN_WEIGHTS:
        return 1
    return _room(DEFER_DEPTH, sizes[0] * sizes[1], sizes[1], n_params)


@kernel
def _room(depth, nw, m1, n_keep):
    """``depth``, lowered so that W^1, ``depth`` deltas and the 3 scalars fit in ``keep``."""
    return max(1, min(depth, (n_keep - nw - 3) // m1))


@kernel
def _max_abs(W):
    """max |W|, or inf if W holds a NaN or Inf (exact: no rounding, any order)."""
    big = 0.0
    bad = False
    for j in range(W.shape[0]):
        v = abs(W[j])
        bad |= (v - v) != 0.0
        big = max(big, v)
    return math.inf if bad else big


@kernel
def _keep_state(theta, nw, keep, n_p, next_step):
    """End of a call: W^1 base and pending count into ``keep`` (the caller then flushes)."""
    nk = keep.shape[0]
    if n_p > 0:
        for j in range(nw):
            keep[j] = theta[j]
    keep[nk - _KEEP_PENDING] = n_p
    keep[nk - _KEEP_NEXT] = next_step


@kernel
def sgd_sample_steps(
    theta, sizes, codes, X, Y, order, first, stop, hyper, count, state, A, Z, row, losses, status,
    depth, keep,
):  # fmt: skip
    """Steps ``first <= s < stop`` of per-sample plain SGD; the contract of :func:`train_steps`.

    Step s trains on sample ``order[s]``, read in place from X and Y (no gather). Forward:
    a^l = W^l z^(l-1) + b^l by :func:`_layer_sums` (the bits of the drivers' single-sample
    loop), z^l = h(a^l) into Z and h'(a^l) into A (one exponential). Backward
    from the output: delta^(l-1) from the old W^l, then W^l updated at once
    (:func:`fastbp.optim.layer_step`, no gradient array). Biases are updated every step.

    Layer 1, the big one (for [784, 128, 10] in float64, W^1 is 0.8 MB and does not stay in
    L2 between steps), has its weight updates DEFERRED: up to ``depth`` steps of a group keep
    their ``delta^1`` pending in ``keep`` while W^1 stays the group's base and is only READ by
    the forward pass (:func:`_deferred_sums`, which adds the pending rank-1 terms through dot
    products of the samples); the last step of the group writes all of them into W^1 in one
    pass (:func:`_flush_and_forward`), fused with the next step's forward sums. Groups are
    the steps ``depth * t <= s < depth * (t + 1)`` of the epoch (its last step closes one too),
    whatever the calls: a call that ends inside a group saves the base W^1 and the pending
    count in ``keep`` and leaves theta at the end of its last step (the pending updates
    written in), and the next call (``first`` equal to the saved next step) takes the base
    back, so results do not depend on how an epoch is cut into calls. A call starting at 0,
    or anywhere else than where the previous one stopped, starts a fresh group from theta.

    Rounding: with ``depth == 1`` this is the arithmetic of :func:`one_sample_step`, bit for
    bit. With deferral it is the same mathematics, with weight decay factors ``g = 1 - lr wd``
    exact, but rounded differently (W^1 x plus corrections instead of the updated W^1 times x;
    a rank-k update instead of k rank-1 updates): float64 parameters after an epoch
    of [784, 128, 10] agree with depth 1 to ~1e-13 relative (benchmarks/README.md, T4).

    Finiteness: a step defers its update only while a bound ``B >= max |W^1|`` (kept in
    ``keep``, grown by ``|g| B + lr max|delta| max|x|`` per step) stays far below overflow;
    otherwise the pending updates are written in and the step's update is made at once by the
    per-step rule, whose check reports it: ``status`` then names the same step as without
    deferral. ``keep``: scratch of length >= M^1 M^0 + depth M^1 + 3 for depth > 1 (the
    workspace's ``grad``; ``depth`` is lowered to fit), >= M^1 M^0 + M^1 for depth 1.
    """
    L = sizes.shape[0] - 1
    m0 = sizes[0]
    m1 = sizes[1]
    nw = m1 * m0
    lr = hyper[LR]
    wd = hyper[WEIGHT_DECAY]
    g = 1.0 - lr * wd
    status[0] = OK
    if stop <= first:
        return 0
    n = order.shape[0]
    nk = keep.shape[0]
    if depth > 1:
        depth = min(_room(depth, nw, m1, nk), row.shape[0] - 1)  # row: coef and q scratch
        if keep.itemsize == 4 and n >= 2**24:
            depth = 1  # the next step is kept exactly in a float32 slot only below 2^24
    # Far below overflow: rounding in the bound or in a rank-16 sum cannot reach it.
    big = 1e300 if keep.itemsize == 8 else 1e30
    n_p = 0  # pending updates of W^1: steps s - n_p ... s - 1
    bound = 0.0
    if depth > 1:
        if first == 0 or keep[nk - _KEEP_NEXT] != first:
            keep[nk - _KEEP_BOUND] = _max_abs(theta[:nw])
        else:
            n_p = int(keep[nk - _KEEP_PENDING])
            for j in range(nw if n_p > 0 else 0):
                theta[j] = keep[j]  # the group's base W^1, saved by the previous call
        bound = keep[nk - _KEEP_BOUND]
    units = 0
    for l in range(1, L + 1):
        units += sizes[l]
    u_out = units - sizes[L]
    fused = False  # Z[:m1] holds the a^1 of step s (summed by the previous step)
    for s in range(first, stop):
        x = X[order[s]]
        y = Y[order[s]]
        if not fused:
            if n_p == 0:
                _layer_sums(theta, 0, nw, x, Z[:m1])
            else:
                _deferred_sums(theta, m0, m1, n_p, keep, X, order, s - n_p, g, lr, x, row, Z[:m1])
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
            if depth > 1:
                # theta untouched by step s: at the end of step s - 1, pending updates written.
                _keep_state(theta, nw, keep, n_p, s)
                if n_p > 0:
                    _flush_and_forward(
                        theta,
                        m0,
                        m1,
                        n_p,
                        keep,
                        X,
                        order,
                        s - n_p,
                        g,
                        lr,
                        wd,
                        False,
                        x,
                        Z[:m1],
                        row,
                    )
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
        # Layer 1: biases at once; weights deferred (see the docstring).
        delta = A[:m1]
        last = s + 1 == stop
        x_next = x if last else X[order[s + 1]]
        safe = False
        if depth > 1:
            big_d = _max_abs(delta)
            big_x = _max_abs(x)
            bound = (abs(g) * bound + lr * (big_d * big_x)) * (1.0 + 2.0**-20)
            keep[nk - _KEEP_BOUND] = bound  # rounded to the dtype, as a later call reads it
            bound = keep[nk - _KEEP_BOUND]
            safe = bound <= big
        if not safe:
            # The per-step rule (all of depth 1): its check reports this very step if it
            # overflows. Pending updates (certified finite) are written in first.
            if n_p > 0:
                ok &= _flush_and_forward(
                    theta, m0, m1, n_p, keep, X, order, s - n_p, g, lr, wd, False, x, Z[:m1], row
                )
                n_p = 0
            if last:
                ok &= layer_step(SGD_KIND, hyper, count[0], theta, 0, nw, delta, x, state, row)
            else:
                ok &= _first_layer_update_and_forward(
                    theta, 0, nw, delta, x, lr, wd, x_next, Z[:m1]
                )
        else:
            ok &= _sgd_bias(theta, nw, delta, lr, wd)
            for i in range(m1):
                keep[nw + n_p * m1 + i] = delta[i]
            n_p += 1
            if (s + 1) % depth == 0 or s + 1 == n:
                ok &= _flush_and_forward(
                    theta, m0, m1, n_p, keep, X, order, s + 1 - n_p, g, lr, wd, not last,
                    x_next, Z[:m1], row,
                )  # fmt: skip
                n_p = 0
            elif last:
                # The call ends inside a group: keep the base, leave theta at a whole step.
                _keep_state(theta, nw, keep, n_p, stop)
                ok &= _flush_and_forward(
                    theta,
                    m0,
                    m1,
                    n_p,
                    keep,
                    X,
                    order,
                    s + 1 - n_p,
                    g,
                    lr,
                    wd,
                    False,
                    x,
                    Z[:m1],
                    row,
                )
        if not ok:
            status[0] = PARAMS_NOT_FINITE
            if depth > 1:
                keep[nk - _KEEP_NEXT] = -1  # theta is restored by the caller: start afresh
            return s - first
        fused = n_p == 0
    if depth > 1 and n_p == 0:
        _keep_state(theta, nw, keep, 0, stop)
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
        # Per-sample plain SGD: the whole run in one kernel, W^1's updates deferred (grad, unused
        # here, keeps the pending ones between calls).
        return sgd_sample_steps(
            theta, sizes, codes, X, Y, order, first, stop, hyper, count, state, A, Z, row,
            losses, status, defer_depth(sizes, theta.shape[0]), grad,
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
