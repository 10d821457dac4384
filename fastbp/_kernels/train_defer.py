"""Deferred first-layer updates of per-sample plain SGD (see train_kernels.sgd_sample_steps).

Per-sample SGD updates W^1 <- (1 - lr wd) W^1 - lr delta_s x_s^T at every step. Here the last
few steps' updates stay pending: between flushes W^1 is only read, the forward pass adds the
pending rank-1 terms through dot products of the samples, and a flush writes them in one pass
fused with the next sample's first-layer sums (docs/perf-log.md, row T4). These are the
pieces; the step loop that uses them is :func:`fastbp._kernels.train_steps.sgd_sample_steps`.
"""

from __future__ import annotations

from .._jit import kernel
from .train_rows import _pair_sums


@kernel
def _sgd_weights(W, d, z, lr, wd):
    """Plain SGD on one weight row from one sample; True if every value written is finite.

    The expression of :func:`fastbp._kernels.optimizer_steps.layer_step`, so the same bits.
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
    :func:`fastbp._kernels.optimizer_steps.layer_step`). Several are applied as one rank-n_p update,
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
    per-step update of :func:`fastbp._kernels.optimizer_steps.layer_step`, bit for bit. Returns True
    when every value written is finite. The biases are not touched (:func:`_sgd_bias`). ``coef``:
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


#: Most steps whose layer-1 updates :func:`sgd_sample_steps` keeps pending (chosen by
#: measurement: docs/perf-log.md, row T4).
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
def _keep_state(theta, nw, keep, n_p, next_step):
    """End of a call: W^1 base and pending count into ``keep`` (the caller then flushes)."""
    nk = keep.shape[0]
    if n_p > 0:
        for j in range(nw):
            keep[j] = theta[j]
    keep[nk - _KEEP_PENDING] = n_p
    keep[nk - _KEEP_NEXT] = next_step
