"""The sample-blocked gradient: loss and dL/dtheta over blocks of samples that stay in L2.

The batch is processed in blocks of :func:`block_samples` samples (a multiple of 32 sized so
that one block's activations of every layer fit in about 256 KiB): forward through every
layer, the output delta, backward through every layer, each block's dW^l and db^l added into
``grad`` before the next block starts. The buffers a block uses (a^l and h', then delta^l, in
A; z^l in Z) are the same for every block, so the cost per sample does not grow with B (the
whole-batch drivers streamed every layer's activations through memory once B passed a few
thousand rows; docs/perf-log.md, "Issue 22").

The three layer products run in explicit-vector register tiles (:mod:`fastbp._kernels.simd`),
BLIS-style: a tile of ``MR`` rows by ``NR = 2`` vectors of columns, its accumulators in
registers for the whole reduction, no loop inside the tile's step:

===================  ===========================  ==================  ========================
product              tile rows x vector lanes     reduction           operands
===================  ===========================  ==================  ========================
forward a = zW^T+b   samples x outputs            inputs k, in order  W^T packed in NR panels
delta  delta W       samples x inputs             outputs i, in order W packed in NR panels
weight dW = d^T z    outputs x inputs             samples n, in order z and delta as they are
===================  ===========================  ==================  ========================

The bits are those of the whole-batch drivers and of the plain tier (:mod:`fastbp._kernels.plain`
states the orders): every sum runs over its reduction index in order with one fused
multiply-add per term; the forward tail (the last B % 32 samples of the batch) goes through the
same edge loop; the loss, db and dW continue their sums from one block to the next, the first
sample of the batch assigned; h and h' are the same pair functions over the block. So the
blocking, the tile shapes and the tier change the speed, never a result
(``tests/test_blocked.py``).

The packed weights live in ``tmp`` (:func:`packed_length`); the per-layer maxima of the
overflow bound (:func:`fastbp._kernels.checks._gradient_may_be_nan`, applied here per block)
after them.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from .._jit import fma, kernel
from .checks import _check_arguments, _finite_max_x, _has_nan, _max_abs
from .layers import (
    SIGMOID,
    SOFTPLUS,
    TANH,
    _forward_samples,
    _piecewise_pair,
    smooth_pairs,
)
from .losses import SQUARED, check_loss_arguments, sample_delta
from .simd import (
    LANES_F32,
    VECTOR_BYTES,
    Vec,
    vbroadcast,
    vfma,
    vload,
    vload_part,
    vmul,
    vstore,
    vstore_part,
)

__all__ = ["BLOCK_BYTES", "MR", "block_samples", "loss_and_grad_blocked", "packed_length"]

#: Rows of every register tile (samples in the forward and delta tiles, outputs in the weight
#: gradient's); 4 divides the 32-sample granule of the forward pass.
MR = 4
#: Vectors per tile row: NR = 2 * lanes columns.
NV = 2
#: The samples of a block are a multiple of this: the forward tiles' granule (the last
#: B % SPAN samples of the batch take the edge loop, as in the whole-batch drivers).
SPAN = 32
#: Bytes of activations one block may hold (a, z and delta of every layer), about half of a
#: 512 KiB L2 so that the weights' panels stream beside them.
BLOCK_BYTES = 256 * 1024
#: Widest NR over the dtypes (float32 has twice the lanes): the workspace is sized with it.
PAD = NV * LANES_F32


def block_samples(sizes, batch: int, itemsize: int) -> int:
    """Samples per block for ``batch`` samples of ``sizes`` (a multiple of 32, at most the
    batch rounded up to 32, at least 32)."""
    per_sample = itemsize * (sizes[0] + 2 * sum(sizes[1:]))
    nb = max(SPAN, BLOCK_BYTES // max(per_sample, 1) // SPAN * SPAN)
    return min(nb, (batch + SPAN - 1) // SPAN * SPAN)


def packed_length(sizes) -> int:
    """Entries of ``tmp`` the blocked driver needs: the forward panels (W^T and b, outputs
    padded to :data:`PAD`), the delta panels (W, inputs padded) and 2 (L + 1) maxima."""
    total = 0
    L = len(sizes) - 1
    for l in range(1, L + 1):
        m_in, m_out = int(sizes[l - 1]), int(sizes[l])
        total += _pad(m_out) * (m_in + 1)
        if l > 1:
            total += _pad(m_in) * m_out
    return total + 2 * (L + 1)


def _pad(m: int) -> int:
    return (m + PAD - 1) // PAD * PAD


@intrinsic
def _lanes(typingctx, arr):
    """Lanes per vector for ``arr``'s dtype on this tier, as a compile-time constant."""
    if not isinstance(getattr(arr, "dtype", None), types.Float):
        return None
    count = VECTOR_BYTES // (arr.dtype.bitwidth // 8)

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, count)

    return types.intp(arr), codegen


# --------------------------------------------------------------------------------------------
# Packing: once per call, the weights into panels the tiles read with whole-vector loads.
# --------------------------------------------------------------------------------------------
@kernel
def _pack_forward(theta, w0, b0, m_in, m_out, P, p0, NR):
    """W^T and b of one layer into panels of NR outputs, zero-padded: panel q holds, for each
    k, W[q NR : (q + 1) NR, k] (NR entries), then the panel's NR biases. Returns the end."""
    p = p0
    for i0 in range(0, m_out, NR):
        for k in range(m_in):
            for r in range(NR):
                i = i0 + r
                P[p + r] = theta[w0 + i * m_in + k] if i < m_out else 0.0
            p += NR
        for r in range(NR):
            i = i0 + r
            P[p + r] = theta[b0 + i] if i < m_out else 0.0
        p += NR
    return p


@kernel
def _pack_delta(theta, w0, m_in, m_out, P, p0, NR):
    """W of one layer into panels of NR inputs, zero-padded: panel q holds, for each output
    i, W[i, q NR : (q + 1) NR]. Returns the end."""
    p = p0
    for j0 in range(0, m_in, NR):
        for i in range(m_out):
            for r in range(NR):
                j = j0 + r
                P[p + r] = theta[w0 + i * m_in + j] if j < m_in else 0.0
            p += NR
    return p


# --------------------------------------------------------------------------------------------
# Register tiles.
# --------------------------------------------------------------------------------------------
@kernel(inline="always")
def _forward_tile(P, q, m_in, zb, z0, a, a0, m_out, cols):
    """a[n, i] = b_i + sum_k W[i, k] z[n, k] for MR samples and one panel of NR outputs.

    ``q``: the panel's first entry in P (its NR biases at q + m_in NR); ``zb[z0 + n m_in + k]``
    the inputs; ``a[a0 + n m_out + i]`` the outputs, ``cols`` of the panel's NR stored.
    """
    V = _lanes(P)
    NR = 2 * V
    qb = q + m_in * NR
    c00 = vload(P, qb)
    c01 = vload(P, qb + V)
    c10 = c00
    c11 = c01
    c20 = c00
    c21 = c01
    c30 = c00
    c31 = c01
    for k in range(m_in):
        w_0 = vload(P, q + k * NR)
        w_1 = vload(P, q + k * NR + V)
        x = vbroadcast(zb, z0 + k)
        c00 = vfma(w_0, x, c00)
        c01 = vfma(w_1, x, c01)
        x = vbroadcast(zb, z0 + m_in + k)
        c10 = vfma(w_0, x, c10)
        c11 = vfma(w_1, x, c11)
        x = vbroadcast(zb, z0 + 2 * m_in + k)
        c20 = vfma(w_0, x, c20)
        c21 = vfma(w_1, x, c21)
        x = vbroadcast(zb, z0 + 3 * m_in + k)
        c30 = vfma(w_0, x, c30)
        c31 = vfma(w_1, x, c31)
    if cols == NR:
        vstore(a, a0, c00)
        vstore(a, a0 + V, c01)
        vstore(a, a0 + m_out, c10)
        vstore(a, a0 + m_out + V, c11)
        vstore(a, a0 + 2 * m_out, c20)
        vstore(a, a0 + 2 * m_out + V, c21)
        vstore(a, a0 + 3 * m_out, c30)
        vstore(a, a0 + 3 * m_out + V, c31)
    else:
        n0 = min(cols, V)
        n1 = cols - n0
        vstore_part(a, a0, c00, n0)
        vstore_part(a, a0 + V, c01, n1)
        vstore_part(a, a0 + m_out, c10, n0)
        vstore_part(a, a0 + m_out + V, c11, n1)
        vstore_part(a, a0 + 2 * m_out, c20, n0)
        vstore_part(a, a0 + 2 * m_out + V, c21, n1)
        vstore_part(a, a0 + 3 * m_out, c30, n0)
        vstore_part(a, a0 + 3 * m_out + V, c31, n1)


@kernel(inline="always")
def _delta_tile(P, q, m_out, d, d0, m_in, h, h0, cols):
    """delta^(l-1)[n, j] = (sum_i delta[n, i] W[i, j]) h'[n, j] for MR samples and one panel.

    The sum runs over i in order, the first term assigned (a product); then the whole-batch
    drivers' epilogue (:func:`fastbp._kernels.layers._scale`) while the sums are in registers:
    ``s * h' * (1 + (s - s))``, which turns an overflowed (non-finite) sum into NaN. ``d`` holds
    delta^l (row n at d0 + n m_out), ``h`` holds h'(a^(l-1)) and receives delta^(l-1) in place
    (row n at h0 + n m_in).
    """
    V = _lanes(P)
    NR = 2 * V
    w_0 = vload(P, q)
    w_1 = vload(P, q + V)
    x = vbroadcast(d, d0)
    c00 = vmul(x, w_0)
    c01 = vmul(x, w_1)
    x = vbroadcast(d, d0 + m_out)
    c10 = vmul(x, w_0)
    c11 = vmul(x, w_1)
    x = vbroadcast(d, d0 + 2 * m_out)
    c20 = vmul(x, w_0)
    c21 = vmul(x, w_1)
    x = vbroadcast(d, d0 + 3 * m_out)
    c30 = vmul(x, w_0)
    c31 = vmul(x, w_1)
    for i in range(1, m_out):
        w_0 = vload(P, q + i * NR)
        w_1 = vload(P, q + i * NR + V)
        x = vbroadcast(d, d0 + i)
        c00 = vfma(x, w_0, c00)
        c01 = vfma(x, w_1, c01)
        x = vbroadcast(d, d0 + m_out + i)
        c10 = vfma(x, w_0, c10)
        c11 = vfma(x, w_1, c11)
        x = vbroadcast(d, d0 + 2 * m_out + i)
        c20 = vfma(x, w_0, c20)
        c21 = vfma(x, w_1, c21)
        x = vbroadcast(d, d0 + 3 * m_out + i)
        c30 = vfma(x, w_0, c30)
        c31 = vfma(x, w_1, c31)
    n0 = min(cols, V)
    n1 = cols - n0
    _scale_store(h, h0, c00, n0, V)
    _scale_store(h, h0 + V, c01, n1, V)
    _scale_store(h, h0 + m_in, c10, n0, V)
    _scale_store(h, h0 + m_in + V, c11, n1, V)
    _scale_store(h, h0 + 2 * m_in, c20, n0, V)
    _scale_store(h, h0 + 2 * m_in + V, c21, n1, V)
    _scale_store(h, h0 + 3 * m_in, c30, n0, V)
    _scale_store(h, h0 + 3 * m_in + V, c31, n1, V)


@kernel(inline="always")
def _scale_store(h, p, s, count, V):
    """h[p : p + count] = s * h[p : p + count] * (1 + (s - s)) (:func:`layers._scale`)."""
    if count == V:
        g = vload(h, p)
        vstore(h, p, vmul(vmul(s, g), _guard(s)))
    elif count > 0:
        g = vload_part(h, p, count)
        vstore_part(h, p, vmul(vmul(s, g), _guard(s)), count)


@intrinsic
def _guard(typingctx, s):
    """``1 + (s - s)`` per lane: 1 where s is finite, NaN where it is not."""
    if not isinstance(s, Vec):
        return None

    def codegen(context, builder, sig, args):
        lt = context.get_value_type(s)
        one = ir.Constant(lt, [ir.Constant(lt.element, 1.0)] * s.count)
        return builder.fadd(one, builder.fsub(args[0], args[0]))

    return s(s), codegen


@kernel(inline="always")
def _weight_tile(d, d0, m_out, zb, z0, m_in, nb, grad, g0, cols, first):
    """dW[i, j] += sum_n delta[n, i] z[n, j] over the block's nb samples, in order, for MR
    outputs and one panel of NR inputs; with ``first`` the batch's first sample is assigned.

    ``d[d0 + n m_out + i]`` is delta, ``zb[z0 + n m_in + j]`` the layer's input, ``grad[g0 +
    i m_in + j]`` the entries. A partial panel (``cols`` < NR) loads z with masked loads, so it
    never reads past the input's last row.
    """
    V = _lanes(grad)
    NR = 2 * V
    n0 = min(cols, V)
    n1 = cols - n0
    full = cols == NR
    if first:
        z_0 = vload(zb, z0) if full else vload_part(zb, z0, n0)
        z_1 = vload(zb, z0 + V) if full else vload_part(zb, z0 + V, n1)
        x = vbroadcast(d, d0)
        c00 = vmul(x, z_0)
        c01 = vmul(x, z_1)
        x = vbroadcast(d, d0 + 1)
        c10 = vmul(x, z_0)
        c11 = vmul(x, z_1)
        x = vbroadcast(d, d0 + 2)
        c20 = vmul(x, z_0)
        c21 = vmul(x, z_1)
        x = vbroadcast(d, d0 + 3)
        c30 = vmul(x, z_0)
        c31 = vmul(x, z_1)
        n_start = 1
    else:
        c00 = vload_part(grad, g0, n0)
        c01 = vload_part(grad, g0 + V, n1)
        c10 = vload_part(grad, g0 + m_in, n0)
        c11 = vload_part(grad, g0 + m_in + V, n1)
        c20 = vload_part(grad, g0 + 2 * m_in, n0)
        c21 = vload_part(grad, g0 + 2 * m_in + V, n1)
        c30 = vload_part(grad, g0 + 3 * m_in, n0)
        c31 = vload_part(grad, g0 + 3 * m_in + V, n1)
        n_start = 0
    if full:
        for n in range(n_start, nb):
            zp = z0 + n * m_in
            dp = d0 + n * m_out
            z_0 = vload(zb, zp)
            z_1 = vload(zb, zp + V)
            x = vbroadcast(d, dp)
            c00 = vfma(x, z_0, c00)
            c01 = vfma(x, z_1, c01)
            x = vbroadcast(d, dp + 1)
            c10 = vfma(x, z_0, c10)
            c11 = vfma(x, z_1, c11)
            x = vbroadcast(d, dp + 2)
            c20 = vfma(x, z_0, c20)
            c21 = vfma(x, z_1, c21)
            x = vbroadcast(d, dp + 3)
            c30 = vfma(x, z_0, c30)
            c31 = vfma(x, z_1, c31)
    else:
        for n in range(n_start, nb):
            zp = z0 + n * m_in
            dp = d0 + n * m_out
            z_0 = vload_part(zb, zp, n0)
            z_1 = vload_part(zb, zp + V, n1)
            x = vbroadcast(d, dp)
            c00 = vfma(x, z_0, c00)
            c01 = vfma(x, z_1, c01)
            x = vbroadcast(d, dp + 1)
            c10 = vfma(x, z_0, c10)
            c11 = vfma(x, z_1, c11)
            x = vbroadcast(d, dp + 2)
            c20 = vfma(x, z_0, c20)
            c21 = vfma(x, z_1, c21)
            x = vbroadcast(d, dp + 3)
            c30 = vfma(x, z_0, c30)
            c31 = vfma(x, z_1, c31)
    if full:
        vstore(grad, g0, c00)
        vstore(grad, g0 + V, c01)
        vstore(grad, g0 + m_in, c10)
        vstore(grad, g0 + m_in + V, c11)
        vstore(grad, g0 + 2 * m_in, c20)
        vstore(grad, g0 + 2 * m_in + V, c21)
        vstore(grad, g0 + 3 * m_in, c30)
        vstore(grad, g0 + 3 * m_in + V, c31)
    else:
        vstore_part(grad, g0, c00, n0)
        vstore_part(grad, g0 + V, c01, n1)
        vstore_part(grad, g0 + m_in, c10, n0)
        vstore_part(grad, g0 + m_in + V, c11, n1)
        vstore_part(grad, g0 + 2 * m_in, c20, n0)
        vstore_part(grad, g0 + 2 * m_in + V, c21, n1)
        vstore_part(grad, g0 + 3 * m_in, c30, n0)
        vstore_part(grad, g0 + 3 * m_in + V, c31, n1)


@kernel(inline="always")
def _weight_row(d, d0, m_out, zb, z0, m_in, nb, grad, g0, cols, first):
    """:func:`_weight_tile` for one output row (the rows past the last multiple of MR)."""
    V = _lanes(grad)
    n0 = min(cols, V)
    n1 = cols - n0
    if first:
        x = vbroadcast(d, d0)
        c0 = vmul(x, vload_part(zb, z0, n0))
        c1 = vmul(x, vload_part(zb, z0 + V, n1))
        n_start = 1
    else:
        c0 = vload_part(grad, g0, n0)
        c1 = vload_part(grad, g0 + V, n1)
        n_start = 0
    for n in range(n_start, nb):
        zp = z0 + n * m_in
        x = vbroadcast(d, d0 + n * m_out)
        c0 = vfma(x, vload_part(zb, zp, n0), c0)
        c1 = vfma(x, vload_part(zb, zp + V, n1), c1)
    vstore_part(grad, g0, c0, n0)
    vstore_part(grad, g0 + V, c1, n1)


# --------------------------------------------------------------------------------------------
# One layer's products over one block.
# --------------------------------------------------------------------------------------------
@kernel
def _forward_layer(theta, w0, b0, P, q, zb, z0, m_in, a, m_out, nb, n_tiled):
    """a (nb, m_out) at a[0:] from the block's inputs zb[z0 + n m_in + k]: the first
    ``n_tiled`` samples (a multiple of MR) through the tiles, the rest through the whole-batch
    drivers' edge loop (:func:`fastbp._kernels.layers._forward_samples`)."""
    NR = 2 * _lanes(P)
    for n in range(0, n_tiled, MR):
        qq = q
        for i0 in range(0, m_out, NR):
            _forward_tile(
                P, qq, m_in, zb, z0 + n * m_in, a, n * m_out + i0, m_out, min(NR, m_out - i0)
            )
            qq += NR * (m_in + 1)
    if n_tiled < nb:
        zin = zb[z0 : z0 + nb * m_in].reshape((nb, m_in))
        _forward_samples(
            theta, w0, b0, zin, a[: nb * m_out].reshape((nb, m_out)), n_tiled, nb, 0, m_out
        )


@kernel
def _epilogue(code, a, z, count):
    """z = h(a) and a = h'(a) over the first ``count`` entries (the block's layer), by the
    whole-batch drivers' pair functions (:func:`fastbp._kernels.layers.smooth_pairs`)."""
    if code == SIGMOID or code == TANH or code == SOFTPLUS:
        ar = a[:count]
        smooth_pairs(code, ar, z[:count], ar)
    else:
        for i in range(count):
            h, dh = _piecewise_pair(code, a[i])
            a[i] = dh
            z[i] = h


@kernel
def _weight_layer(d, m_out, zb, z0, m_in, nb, grad, w0, first):
    """dW of one layer over one block into grad[w0:], continuing the sums (see _weight_tile),
    then db continued with plain adds in sample order (:func:`layers._bias_gradient`)."""
    NR = 2 * _lanes(grad)
    r4 = m_out - m_out % MR
    for j0 in range(0, m_in, NR):
        cols = min(NR, m_in - j0)
        for i in range(0, r4, MR):
            _weight_tile(d, i, m_out, zb, z0 + j0, m_in, nb, grad, w0 + i * m_in + j0, cols, first)
        for i in range(r4, m_out):
            _weight_row(d, i, m_out, zb, z0 + j0, m_in, nb, grad, w0 + i * m_in + j0, cols, first)
    b0 = w0 + m_out * m_in
    gb = grad[b0 : b0 + m_out]
    start = 0
    if first:
        for i in range(m_out):
            gb[i] = d[i]
        start = 1
    for n in range(start, nb):
        dn = d[n * m_out : (n + 1) * m_out]
        for i in range(m_out):
            gb[i] += dn[i]


@kernel
def _delta_layer(P, q, d, m_out, h, m_in, nb):
    """delta^(l-1) over h'(a^(l-1)) in h (nb, m_in), from delta^l in d (nb, m_out)."""
    NR = 2 * _lanes(P)
    for n in range(0, nb - nb % MR, MR):
        qq = q
        for j0 in range(0, m_in, NR):
            _delta_tile(P, qq, m_out, d, n * m_out, m_in, h, n * m_in + j0, min(NR, m_in - j0))
            qq += NR * m_out
    # The rows past the last multiple of MR (only the batch's last block can have them): one
    # sample at a time, the same sums.
    for n in range(nb - nb % MR, nb):
        for j in range(m_in):
            s = d[n * m_out] * P[q + (j // NR) * NR * m_out + j % NR]
            for i in range(1, m_out):
                s = fma(d[n * m_out + i], P[q + (j // NR) * NR * m_out + i * NR + j % NR], s)
            k = n * m_in + j
            h[k] = s * h[k] * (h.dtype.type(1.0) + (s - s))


@kernel
def _block_loss(code, a, z, Y, n0, nb, m, weights, total):
    """The output delta over the block's a (which holds h'(a^L)) and the loss, added to
    ``total`` in sample order: :func:`fastbp._kernels.losses.output_delta` and ``loss_delta``
    continued from the previous blocks, so the sum is the whole-batch drivers'."""
    if weights is None or (code == SQUARED and weights.shape[0] == 0):
        for n in range(nb):
            for i in range(m):
                k = n * m + i
                r = np.float64(z[k]) - np.float64(Y[n0 + n, i])
                total += 0.5 * (r * r)
                a[k] = r * a[k]
        return total
    for n in range(nb):
        w = 1.0 if weights.shape[0] == 0 else np.float64(weights[n0 + n])
        total += sample_delta(code, a[n * m : (n + 1) * m], z[n * m : (n + 1) * m], Y[n0 + n], w)
    return total


@kernel
def _exact_layer(d, m_out, zb, z0, m_in, nb, grad, w0, first):
    """dW of one layer over one block with separate multiply and add, continuing the sums:
    :func:`fastbp._kernels.checks._exact_weight_gradient` block by block (the overflow check's
    recomputation, where FMA would turn inf - inf into a silent inf)."""
    for i in range(m_out):
        for j in range(m_in):
            k = w0 + i * m_in + j
            if first:
                s = d[i] * zb[z0 + j]
                start = 1
            else:
                s = grad[k]
                start = 0
            for n in range(start, nb):
                s += d[n * m_out + i] * zb[z0 + n * m_in + j]
            grad[k] = s


# --------------------------------------------------------------------------------------------
# The driver.
# --------------------------------------------------------------------------------------------
@kernel
def _block_size(sizes, B, itemsize):
    """:func:`block_samples`, compiled: samples per block, at most B."""
    per_sample = sizes[0]
    for l in range(1, sizes.shape[0]):
        per_sample += 2 * sizes[l]
    nb = max(SPAN, BLOCK_BYTES // max(per_sample * itemsize, 1) // SPAN * SPAN)
    return min(nb, B)


@kernel
def _tmp_needed(sizes, NR):
    """Entries of tmp the packed panels and the maxima take for panels of NR columns."""
    L = sizes.shape[0] - 1
    total = 0
    for l in range(1, L + 1):
        total += (sizes[l] + NR - 1) // NR * NR * (sizes[l - 1] + 1)
        if l > 1:
            total += (sizes[l - 1] + NR - 1) // NR * NR * sizes[l]
    return total + 2 * (L + 1)


@kernel
def _blocks(theta, sizes, codes, X, Y, A, Z, tmp, grad, loss_code, weights, exact):
    """Every block through the network; returns the loss. ``exact``: the overflow check's
    second pass, which recomputes only the flagged layers' dW without FMA (see below)."""
    B, m0 = X.shape
    L = sizes.shape[0] - 1
    NR = 2 * _lanes(tmp)
    NB = _block_size(sizes, B, X.itemsize)
    Xf = X.reshape(B * m0)
    # Offsets in tmp: the forward panels of every layer, the delta panels, the maxima.
    qd_start = 0
    for l in range(1, L + 1):
        qd_start += (sizes[l] + NR - 1) // NR * NR * (sizes[l - 1] + 1)
    q_end = qd_start
    for l in range(2, L + 1):
        q_end += (sizes[l - 1] + NR - 1) // NR * NR * sizes[l]
    dmax = tmp[q_end : q_end + L + 1]
    zmax = tmp[q_end + L + 1 : q_end + 2 * (L + 1)]
    Bt = B - B % SPAN
    total = 0.0
    for n0 in range(0, B, NB):
        nb = min(NB, B - n0)
        first = n0 == 0
        n_tiled = max(0, min(nb, Bt - n0))
        # Forward: layer l's a^l, then h', in A; z^l in Z, each at NB * (units before l).
        zb = Xf
        z0 = n0 * m0
        off = 0
        q = 0
        w0 = 0
        for l in range(1, L + 1):
            m_in = sizes[l - 1]
            m_out = sizes[l]
            b0 = w0 + m_out * m_in
            a = A[off : off + nb * m_out]
            z = Z[off : off + nb * m_out]
            _forward_layer(theta, w0, b0, tmp, q, zb, z0, m_in, a, m_out, nb, n_tiled)
            _epilogue(codes[l - 1], a, z, nb * m_out)
            if not exact and l < L and codes[l - 1] != SIGMOID and codes[l - 1] != TANH:
                zmax[l] = max(zmax[l], _max_abs(z))
            zb = Z
            z0 = off
            q += (m_out + NR - 1) // NR * NR * (m_in + 1)
            w0 = b0 + m_out
            if l < L:
                off += NB * m_out
        mL = sizes[L]
        total = _block_loss(
            loss_code,
            A[off : off + nb * mL],
            Z[off : off + nb * mL],
            Y,
            n0,
            nb,
            mL,
            weights,
            total,
        )
        # Backward: layer l's dW and db from delta^l (in A), then delta^(l-1) over h'.
        w_end = theta.shape[0]
        qd = q_end
        for l in range(L, 0, -1):
            m_in = sizes[l - 1]
            m_out = sizes[l]
            w0 = w_end - m_out - m_out * m_in
            d = A[off : off + nb * m_out]
            if l > 1:
                off_in = off - NB * m_in
                zin = Z
            else:
                off_in = n0 * m0
                zin = Xf
            if not exact:
                _weight_layer(d, m_out, zin, off_in, m_in, nb, grad, w0, first)
                dmax[l] = max(dmax[l], _max_abs(d))
            elif dmax[l] < 0:
                _exact_layer(d, m_out, zin, off_in, m_in, nb, grad, w0, first)
            if l > 1:
                qd -= (m_in + NR - 1) // NR * NR * m_out
                _delta_layer(tmp, qd, d, m_out, A[off_in : off_in + nb * m_in], m_in, nb)
                off = off_in
            w_end = w0
    return total


@kernel
def loss_and_grad_blocked(theta, sizes, codes, X, Y, A, Z, tmp, grad, loss_code=0, weights=None):
    """:func:`fastbp.kernels.loss_and_grad` over blocks of samples (the module notes): the
    same loss and the same gradient bits, in A and Z the last block's values only.

    Checks its arguments as the whole-batch driver does; ``tmp`` must hold the packed panels
    (:func:`packed_length` entries, which :func:`fastbp.kernels.workspace_lengths` includes).
    X must be C-contiguous (as for every driver).
    """
    _check_arguments(theta, sizes, codes, X, A, Z)
    L = sizes.shape[0] - 1
    if Y.shape[0] != X.shape[0] or Y.shape[1] != sizes[L]:
        raise ValueError("kernels: Y must have shape (B, sizes[-1])")
    if grad.shape[0] != theta.shape[0]:
        raise ValueError("kernels: grad must have the length of theta")
    if tmp.shape[0] < _tmp_needed(sizes, 2 * _lanes(tmp)):
        raise ValueError("kernels: tmp too short (see make_workspace)")
    if weights is not None:
        check_loss_arguments(codes, X.shape[0], loss_code, weights)
    xmax = _finite_max_x(X, Y)
    B = X.shape[0]
    if B == 0:
        for k in range(grad.shape[0]):
            grad[k] = 0.0
        return 0.0
    NR = 2 * _lanes(tmp)
    q = 0
    w0 = 0
    for l in range(1, L + 1):
        m_in = sizes[l - 1]
        m_out = sizes[l]
        q = _pack_forward(theta, w0, w0 + m_out * m_in, m_in, m_out, tmp, q, NR)
        w0 += m_out * m_in + m_out
    w0 = sizes[0] * sizes[1] + sizes[1]
    for l in range(2, L + 1):
        q = _pack_delta(theta, w0, sizes[l - 1], sizes[l], tmp, q, NR)
        w0 += sizes[l] * sizes[l - 1] + sizes[l]
    for k in range(q, q + 2 * (L + 1)):
        tmp[k] = 0.0
    total = _blocks(theta, sizes, codes, X, Y, A, Z, tmp, grad, loss_code, weights, False)
    # The overflow bound of the whole-batch drivers (checks._gradient_may_be_nan), from the
    # maxima the blocks kept: a layer that fails it is flagged (its maximum set to -1) and
    # recomputed without FMA in a second pass, then scanned for NaN.
    dmax = tmp[q : q + L + 1]
    zmax = tmp[q + L + 1 : q + 2 * (L + 1)]
    zprev = xmax
    failed = False
    for l in range(1, L + 1):
        if not (B * np.float64(dmax[l]) * max(zprev, 1.0) < 1e37):
            dmax[l] = -1.0
            failed = True
        if l == L or codes[l - 1] == SIGMOID or codes[l - 1] == TANH:
            zprev = 1.0
        else:
            zprev = np.float64(zmax[l])
    if failed:
        _blocks(theta, sizes, codes, X, Y, A, Z, tmp, grad, loss_code, weights, True)
        w0 = 0
        for l in range(1, L + 1):
            b0 = w0 + sizes[l] * sizes[l - 1]
            if dmax[l] < 0 and _has_nan(grad[w0 : b0 + sizes[l]]):
                return np.nan
            w0 = b0 + sizes[l]
    return total
