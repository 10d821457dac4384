"""Row pieces of per-sample plain SGD: paired dot products and the fused row updates.

Used by :func:`fastbp._kernels.train_steps.sgd_sample_steps` and the deferred updates of
:mod:`fastbp._kernels.train_defer`.
"""

from __future__ import annotations

from .._jit import fma, kernel


# --------------------------------------------------------------------------------------------
# Per-sample plain SGD (momentum 0), the classic backpropagation rule: every step of a call in
# one kernel, the first layer's update fused with the next step's first-layer forward pass.
# --------------------------------------------------------------------------------------------
@kernel
def _pair_sums(W0, W1, c0, c1, x):
    """``(c0 + W0 . x, c1 + W1 . x)`` for two weight rows, each summed in the order of
    :func:`fastbp._kernels.layers._forward_samples` (8 lane sums over k = 0, 8, ...; a fixed
    tree; then the tail) and with its fused multiply-adds, so a row gives the bits of the drivers'
    single-sample forward pass.

    Two rows at once share the loads of x and give two independent chains of vector adds: the
    one-row loop waits on the add latency (docs/perf-log.md, row T2).
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
            s00 = fma(v0[0], xk[0], s00)
            s01 = fma(v0[1], xk[1], s01)
            s02 = fma(v0[2], xk[2], s02)
            s03 = fma(v0[3], xk[3], s03)
            s04 = fma(v0[4], xk[4], s04)
            s05 = fma(v0[5], xk[5], s05)
            s06 = fma(v0[6], xk[6], s06)
            s07 = fma(v0[7], xk[7], s07)
            s10 = fma(v1[0], xk[0], s10)
            s11 = fma(v1[1], xk[1], s11)
            s12 = fma(v1[2], xk[2], s12)
            s13 = fma(v1[3], xk[3], s13)
            s14 = fma(v1[4], xk[4], s14)
            s15 = fma(v1[5], xk[5], s15)
            s16 = fma(v1[6], xk[6], s16)
            s17 = fma(v1[7], xk[7], s17)
        c0 += ((s00 + s01) + (s02 + s03)) + ((s04 + s05) + (s06 + s07))
        c1 += ((s10 + s11) + (s12 + s13)) + ((s14 + s15) + (s16 + s17))
    for k in range(k8, m_in):
        c0 = fma(W0[k], x[k], c0)
        c1 = fma(W1[k], x[k], c1)
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

    The expressions of :func:`fastbp._kernels.optimizer_steps.layer_step`, so the same bits.
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
