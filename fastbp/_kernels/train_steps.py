"""The compiled steps of :meth:`MLP.fit`: one call runs many optimiser steps of an epoch.

:func:`train_steps` gathers each mini-batch, computes the loss and gradient with
:func:`fastbp.kernels.loss_and_grad` and applies
:func:`fastbp._kernels.optimizer_steps.optimizer_step`; for one sample per step,
:func:`one_sample_step` fuses the update into the backward pass, and for plain SGD (momentum 0, the
classic rule) :func:`sgd_sample_steps` runs the whole chunk in one kernel that defers the first
layer's weight updates over a few steps (W^1 only read in between) and writes them fused with the
next sample's first-layer forward pass. The Python loop around them (chunks, history, divergence,
Ctrl-C) is :mod:`fastbp.train`.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import kernel
from . import drivers as kernels  # the global name fastbp.train rebinds per tier
from .checks import _max_abs
from .layers import _activate_units
from .optimizer_steps import LR, MOMENTUM, SGD_KIND, WEIGHT_DECAY, layer_step, optimizer_step
from .train_defer import (
    _KEEP_BOUND,
    _KEEP_NEXT,
    _KEEP_PENDING,
    DEFER_DEPTH,
    _deferred_sums,
    _flush_and_forward,
    _keep_state,
    _room,
    _sgd_bias,
    defer_depth,
)
from .train_rows import (
    _first_layer_update_and_forward,
    _layer_sums,
)

__all__ = [
    "DEFER_DEPTH", "LOSS_NOT_FINITE", "OK", "PARAMS_NOT_FINITE", "batch_scale", "defer_depth",
    "one_sample_step", "sgd_sample_steps", "train_steps",
]  # fmt: skip

# Which paths train_steps compiles: all three here; fastbp.train.TRAIN_STEPS holds twins in
# which two of them are False, so a fit compiles only the path it takes (Numba prunes a branch
# on a constant global before typing). docs/perf-log.md, start-up round.
_SGD_SAMPLES = True
_SAMPLES = True
_BATCHES = True

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
    at once by :func:`fastbp._kernels.optimizer_steps.layer_step`, so no gradient array is ever
    written: for
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


@kernel
def _activate_in_place(code, A, Z, u0, m):
    """z = h(a) over Z[u0 : u0 + m] (which holds a), h'(a) into A: one exponential each (NaN
    for both where a overflowed, as in the drivers' forward epilogue)."""
    _activate_units(code, A, Z, u0, m)


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
    (:func:`fastbp._kernels.optimizer_steps.layer_step`, no gradient array). Biases are updated
    every step.

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
    of [784, 128, 10] agree with depth 1 to ~1e-13 relative (docs/perf-log.md, row T4).

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
def batch_scale(w):
    """The step's gradient scale for a batch of weights ``w``: 1 / sum(w) (summed in float64,
    in order), or 0 when the weights sum to 0 (the step then follows a zero gradient)."""
    s = 0.0
    for r in range(w.shape[0]):
        s += np.float64(w[r])
    return 1.0 / s if s > 0.0 else 0.0


@kernel
def train_steps(
    theta, sizes, codes, X, Y, order, batch_size, first, stop,
    kind, hyper, count, state, A, Z, tmp, grad, Xb, Yb, out, row, losses, status,
    loss_code=0, weights=None, wb=None,
):  # fmt: skip
    """Run steps ``first <= s < stop`` of an epoch; returns how many completed.

    Step ``s`` takes the samples ``order[s * batch_size : (s + 1) * batch_size]`` (fewer in the
    last step), gathers them into ``Xb``, ``Yb``, computes the loss and gradient with
    :func:`fastbp.kernels.loss_and_grad` and updates ``theta`` with
    :func:`fastbp._kernels.optimizer_steps.optimizer_step` at ``scale = 1 / batch`` (the mean
    gradient); with
    ``batch_size == 1`` the update is fused into the backward pass instead
    (:func:`one_sample_step`; with plain SGD the whole run is :func:`sgd_sample_steps`). The
    loss of step ``s`` (a sum over its samples, float64) goes to ``losses[s]``.

    ``status[0]`` says why the run ended: ``OK``; ``LOSS_NOT_FINITE``, the loss of step
    ``first + returned`` is NaN or Inf and theta is untouched by it; ``PARAMS_NOT_FINITE``, the
    update of step ``first + returned`` wrote a NaN or Inf: theta, state and count are those of
    a failed step and the caller restores them.

    ``loss_code``, ``weights`` (float64, (n,) or length 0 for none) and ``wb`` (scratch for the
    batch's weights, >= batch_size) select another loss or sample weights, on the mini-batch
    path only (:mod:`fastbp.train` takes it for them whatever the batch size): each step then
    calls ``loss_and_grad`` with the loss code and the batch's weights, gathered into ``wb``,
    and scales the update by ``1 / sum`` of those weights (:func:`batch_scale`), so an integer
    weight counts as that many copies of the sample in the mean.
    """
    n = X.shape[0]
    m_in = X.shape[1]
    m_out = Y.shape[1]
    if _SGD_SAMPLES and batch_size == 1 and kind == SGD_KIND and hyper[MOMENTUM] == 0.0:
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
        if _SAMPLES and batch_size == 1:
            # Per-sample SGD: no gradient array at all (row: scratch of length max(sizes)).
            value, ok = one_sample_step(
                theta, sizes, codes, Xb, Yb, A, Z, out, kind, hyper, count, state, row
            )
        elif _BATCHES:
            if weights is None:  # pruned at compile time: the classic call
                value = kernels.loss_and_grad(theta, sizes, codes, Xb[:B], Yb[:B], A, Z, tmp, grad)
                scale = 1.0 / B
            else:
                wv = wb[:0]
                scale = 1.0 / B
                if weights.shape[0] > 0:
                    for r in range(B):
                        wb[r] = weights[order[start + r]]
                    wv = wb[:B]
                    scale = batch_scale(wv)
                value = kernels.loss_and_grad(
                    theta, sizes, codes, Xb[:B], Yb[:B], A, Z, tmp, grad, loss_code, wv
                )
            ok = True
            if math.isfinite(value):
                ok = optimizer_step(kind, hyper, count, theta, grad, scale, state)
        else:  # a path this twin does not compile (fastbp.train never calls it so)
            value = np.nan
            ok = True
        losses[s] = value
        if not math.isfinite(value):
            status[0] = LOSS_NOT_FINITE
            return s - first
        if not ok:
            status[0] = PARAMS_NOT_FINITE
            return s - first
    return stop - first
