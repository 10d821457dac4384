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

import numba
import numpy as np
from llvmlite import ir
from numba import prange
from numba.core import types
from numba.extending import intrinsic

from .._jit import fma, kernel, twins
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
from .workspace import BLOCK_BYTES, SPAN

__all__ = ["MR", "TASKS", "loss_and_grad_blocked", "loss_and_grad_blocked_threaded"]

#: Rows of every register tile (samples in the forward and delta tiles, outputs in the weight
#: gradient's); 4 divides the 32-sample granule of the forward pass.
MR = 4
#: Reduction chunk of the forward and delta tiles: KC rows of a packed panel (16 KiB in
#: float64 on avx2) stay in L1 while every sample group of the block passes over them.
KC = 256


if numba.config.DISABLE_JIT:  # pragma: no cover - exercised by the JIT-off CI step

    def _lanes(arr):
        """Lanes per vector for ``arr``'s dtype on this tier (the JIT-off stand-in)."""
        return VECTOR_BYTES // arr.itemsize

else:

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
@kernel(inline="always")
def _pack_forward_panel(theta, w0, b0, m_in, m_out, P, p0, NR, pnl):
    """Panel ``pnl`` of :func:`_pack_forward`."""
    i0 = pnl * NR
    p = p0 + pnl * NR * (m_in + 1)
    for r in range(NR):
        i = i0 + r
        if i < m_out:
            row = theta[w0 + i * m_in : w0 + (i + 1) * m_in]
            for k in range(m_in):
                P[p + k * NR + r] = row[k]
            P[p + m_in * NR + r] = theta[b0 + i]
        else:
            for k in range(m_in + 1):
                P[p + k * NR + r] = 0.0


@kernel
def _pack_forward(theta, w0, b0, m_in, m_out, P, p0, NR):
    """W^T and b of one layer into panels of NR outputs, zero-padded: panel q holds, for each
    k, W[q NR : (q + 1) NR, k] (NR entries), then the panel's NR biases. Returns the end."""
    panels = (m_out + NR - 1) // NR
    for pnl in range(panels):
        _pack_forward_panel(theta, w0, b0, m_in, m_out, P, p0, NR, pnl)
    return p0 + panels * NR * (m_in + 1)


@kernel(inline="always")
def _pack_delta_panel(theta, w0, m_in, m_out, P, p0, NR, pnl):
    """Panel ``pnl`` of :func:`_pack_delta`."""
    j0 = pnl * NR
    cols = min(NR, m_in - j0)
    p = p0 + pnl * NR * m_out
    for i in range(m_out):
        src = w0 + i * m_in + j0
        for r in range(NR):
            P[p + i * NR + r] = theta[src + r] if r < cols else 0.0


@kernel
def _pack_delta(theta, w0, m_in, m_out, P, p0, NR):
    """W of one layer into panels of NR inputs, zero-padded: panel q holds, for each output
    i, W[i, q NR : (q + 1) NR]. Returns the end."""
    panels = (m_in + NR - 1) // NR
    for pnl in range(panels):
        _pack_delta_panel(theta, w0, m_in, m_out, P, p0, NR, pnl)
    return p0 + panels * NR * m_out


@kernel(parallel=True)
def _pack_forward_parallel(theta, w0, b0, m_in, m_out, P, p0, NR):
    """:func:`_pack_forward` with the panels split over threads."""
    panels = (m_out + NR - 1) // NR
    for pnl in prange(panels):
        _pack_forward_panel(theta, w0, b0, m_in, m_out, P, p0, NR, pnl)
    return p0 + panels * NR * (m_in + 1)


@kernel(parallel=True)
def _pack_delta_parallel(theta, w0, m_in, m_out, P, p0, NR):
    """:func:`_pack_delta` with the panels split over threads."""
    panels = (m_in + NR - 1) // NR
    for pnl in prange(panels):
        _pack_delta_panel(theta, w0, m_in, m_out, P, p0, NR, pnl)
    return p0 + panels * NR * m_out


# --------------------------------------------------------------------------------------------
# Register tiles.
# --------------------------------------------------------------------------------------------
@kernel(inline="always")
def _store_tile(a, a0, ld, c00, c01, c10, c11, c20, c21, c30, c31, cols, V):
    """The MR x NR tile (rows ld apart from a[a0]) into a: whole vectors, or ``cols`` columns."""
    if cols == 2 * V:
        vstore(a, a0, c00)
        vstore(a, a0 + V, c01)
        vstore(a, a0 + ld, c10)
        vstore(a, a0 + ld + V, c11)
        vstore(a, a0 + 2 * ld, c20)
        vstore(a, a0 + 2 * ld + V, c21)
        vstore(a, a0 + 3 * ld, c30)
        vstore(a, a0 + 3 * ld + V, c31)
    else:
        n0 = min(cols, V)
        n1 = cols - n0
        vstore_part(a, a0, c00, n0)
        vstore_part(a, a0 + V, c01, n1)
        vstore_part(a, a0 + ld, c10, n0)
        vstore_part(a, a0 + ld + V, c11, n1)
        vstore_part(a, a0 + 2 * ld, c20, n0)
        vstore_part(a, a0 + 2 * ld + V, c21, n1)
        vstore_part(a, a0 + 3 * ld, c30, n0)
        vstore_part(a, a0 + 3 * ld + V, c31, n1)


@kernel(inline="always")
def _forward_tile(P, q, k0, k1, m_in, zb, z0, ldz, a, a0, lda, cols):
    """a[n, i] = b_i + sum_k W[i, k] z[n, k] for MR samples and one panel of NR outputs, over
    the inputs k0 <= k < k1: the sums start from the biases at k0 = 0, else from the partial
    sums a holds (stored in the dtype, so continuing them is exact).

    ``q``: the panel's first entry in P (its NR biases at q + m_in NR); ``zb[z0 + n ldz + k]``
    the inputs; ``a[a0 + n lda + i]`` the outputs, ``cols`` of the panel's NR stored.
    """
    V = _lanes(P)
    NR = 2 * V
    if k0 == 0:
        qb = q + m_in * NR
        c00 = vload(P, qb)
        c01 = vload(P, qb + V)
        c10 = c00
        c11 = c01
        c20 = c00
        c21 = c01
        c30 = c00
        c31 = c01
    else:
        n0 = min(cols, V)
        n1 = cols - n0
        c00 = vload_part(a, a0, n0)
        c01 = vload_part(a, a0 + V, n1)
        c10 = vload_part(a, a0 + lda, n0)
        c11 = vload_part(a, a0 + lda + V, n1)
        c20 = vload_part(a, a0 + 2 * lda, n0)
        c21 = vload_part(a, a0 + 2 * lda + V, n1)
        c30 = vload_part(a, a0 + 3 * lda, n0)
        c31 = vload_part(a, a0 + 3 * lda + V, n1)
    for k in range(k0, k1):
        w_0 = vload(P, q + k * NR)
        w_1 = vload(P, q + k * NR + V)
        x = vbroadcast(zb, z0 + k)
        c00 = vfma(w_0, x, c00)
        c01 = vfma(w_1, x, c01)
        x = vbroadcast(zb, z0 + ldz + k)
        c10 = vfma(w_0, x, c10)
        c11 = vfma(w_1, x, c11)
        x = vbroadcast(zb, z0 + 2 * ldz + k)
        c20 = vfma(w_0, x, c20)
        c21 = vfma(w_1, x, c21)
        x = vbroadcast(zb, z0 + 3 * ldz + k)
        c30 = vfma(w_0, x, c30)
        c31 = vfma(w_1, x, c31)
    _store_tile(a, a0, lda, c00, c01, c10, c11, c20, c21, c30, c31, cols, V)


@kernel(inline="always")
def _delta_tile(P, q, i0, i1, m_out, d, d0, ldd, h, h0, ldh, acc, cols):
    """delta^(l-1)[n, j] = (sum_i delta[n, i] W[i, j]) h'[n, j] for MR samples and one panel,
    over the outputs i0 <= i < i1.

    The sum runs over i in order, the first term assigned (a product); partial sums wait in
    ``acc`` (same layout as h) between chunks of i. After the last chunk, the whole-batch
    drivers' epilogue (:func:`fastbp._kernels.layers._scale`) while the sums are in registers:
    ``s * h' * (1 + (s - s))``, which turns an overflowed (non-finite) sum into NaN. ``d`` holds
    delta^l (row n at d0 + n ldd), ``h`` holds h'(a^(l-1)) and receives delta^(l-1) in place
    (row n at h0 + n ldh).
    """
    V = _lanes(P)
    NR = 2 * V
    n0 = min(cols, V)
    n1 = cols - n0
    if i0 == 0:
        w_0 = vload(P, q)
        w_1 = vload(P, q + V)
        x = vbroadcast(d, d0)
        c00 = vmul(x, w_0)
        c01 = vmul(x, w_1)
        x = vbroadcast(d, d0 + ldd)
        c10 = vmul(x, w_0)
        c11 = vmul(x, w_1)
        x = vbroadcast(d, d0 + 2 * ldd)
        c20 = vmul(x, w_0)
        c21 = vmul(x, w_1)
        x = vbroadcast(d, d0 + 3 * ldd)
        c30 = vmul(x, w_0)
        c31 = vmul(x, w_1)
        i_start = 1
    else:
        c00 = vload_part(acc, h0, n0)
        c01 = vload_part(acc, h0 + V, n1)
        c10 = vload_part(acc, h0 + ldh, n0)
        c11 = vload_part(acc, h0 + ldh + V, n1)
        c20 = vload_part(acc, h0 + 2 * ldh, n0)
        c21 = vload_part(acc, h0 + 2 * ldh + V, n1)
        c30 = vload_part(acc, h0 + 3 * ldh, n0)
        c31 = vload_part(acc, h0 + 3 * ldh + V, n1)
        i_start = i0
    for i in range(i_start, i1):
        w_0 = vload(P, q + i * NR)
        w_1 = vload(P, q + i * NR + V)
        x = vbroadcast(d, d0 + i)
        c00 = vfma(x, w_0, c00)
        c01 = vfma(x, w_1, c01)
        x = vbroadcast(d, d0 + ldd + i)
        c10 = vfma(x, w_0, c10)
        c11 = vfma(x, w_1, c11)
        x = vbroadcast(d, d0 + 2 * ldd + i)
        c20 = vfma(x, w_0, c20)
        c21 = vfma(x, w_1, c21)
        x = vbroadcast(d, d0 + 3 * ldd + i)
        c30 = vfma(x, w_0, c30)
        c31 = vfma(x, w_1, c31)
    if i1 < m_out:
        _store_tile(acc, h0, ldh, c00, c01, c10, c11, c20, c21, c30, c31, cols, V)
        return
    _scale_store(h, h0, c00, n0, V)
    _scale_store(h, h0 + V, c01, n1, V)
    _scale_store(h, h0 + ldh, c10, n0, V)
    _scale_store(h, h0 + ldh + V, c11, n1, V)
    _scale_store(h, h0 + 2 * ldh, c20, n0, V)
    _scale_store(h, h0 + 2 * ldh + V, c21, n1, V)
    _scale_store(h, h0 + 3 * ldh, c30, n0, V)
    _scale_store(h, h0 + 3 * ldh + V, c31, n1, V)


@kernel(inline="always")
def _scale_store(h, p, s, count, V):
    """h[p : p + count] = s * h[p : p + count] * (1 + (s - s)) (:func:`layers._scale`)."""
    if count == V:
        g = vload(h, p)
        vstore(h, p, vmul(vmul(s, g), _guard(s)))
    elif count > 0:
        g = vload_part(h, p, count)
        vstore_part(h, p, vmul(vmul(s, g), _guard(s)), count)


if numba.config.DISABLE_JIT:  # pragma: no cover - exercised by the JIT-off CI step

    def _guard(s):
        """``1 + (s - s)`` per lane (the JIT-off stand-in)."""
        return 1 + (s - s)

else:

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
def _weight_tile(d, d0, zp, z0, nb, grad, g0, m_in, cols, first):
    """dW[i, j] += sum_n delta[n, i] z[n, j] over the block's nb samples, in order, for MR
    outputs and one panel of NR inputs; with ``first`` the batch's first sample is assigned.

    Both operands packed by :func:`_weight_layer`: ``d[d0 + n MR + r]`` is delta^l[n, i + r],
    ``zp[z0 + n NR + c]`` the input z[n, j + c] (zero past the last column). ``grad[g0 + r m_in
    + c]`` are the entries, ``cols`` of the panel's NR of them real.
    """
    V = _lanes(grad)
    NR = 2 * V
    n0 = min(cols, V)
    n1 = cols - n0
    full = cols == NR
    if first:
        z_0 = vload(zp, z0)
        z_1 = vload(zp, z0 + V)
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
    elif full:
        c00 = vload(grad, g0)
        c01 = vload(grad, g0 + V)
        c10 = vload(grad, g0 + m_in)
        c11 = vload(grad, g0 + m_in + V)
        c20 = vload(grad, g0 + 2 * m_in)
        c21 = vload(grad, g0 + 2 * m_in + V)
        c30 = vload(grad, g0 + 3 * m_in)
        c31 = vload(grad, g0 + 3 * m_in + V)
        n_start = 0
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
    for n in range(n_start, nb):
        zq = z0 + n * NR
        dq = d0 + n * MR
        z_0 = vload(zp, zq)
        z_1 = vload(zp, zq + V)
        x = vbroadcast(d, dq)
        c00 = vfma(x, z_0, c00)
        c01 = vfma(x, z_1, c01)
        x = vbroadcast(d, dq + 1)
        c10 = vfma(x, z_0, c10)
        c11 = vfma(x, z_1, c11)
        x = vbroadcast(d, dq + 2)
        c20 = vfma(x, z_0, c20)
        c21 = vfma(x, z_1, c21)
        x = vbroadcast(d, dq + 3)
        c30 = vfma(x, z_0, c30)
        c31 = vfma(x, z_1, c31)
    _store_tile(grad, g0, m_in, c00, c01, c10, c11, c20, c21, c30, c31, cols, V)


@kernel(inline="always")
def _weight_row(d, d0, ldd, zp, z0, nb, grad, g0, cols, first):
    """:func:`_weight_tile` for one output row (the rows past the last multiple of MR), delta
    read in place (row n at d0 + n ldd)."""
    V = _lanes(grad)
    NR = 2 * V
    n0 = min(cols, V)
    n1 = cols - n0
    if first:
        x = vbroadcast(d, d0)
        c0 = vmul(x, vload(zp, z0))
        c1 = vmul(x, vload(zp, z0 + V))
        n_start = 1
    else:
        c0 = vload_part(grad, g0, n0)
        c1 = vload_part(grad, g0 + V, n1)
        n_start = 0
    for n in range(n_start, nb):
        zq = z0 + n * NR
        x = vbroadcast(d, d0 + n * ldd)
        c0 = vfma(x, vload(zp, zq), c0)
        c1 = vfma(x, vload(zp, zq + V), c1)
    vstore_part(grad, g0, c0, n0)
    vstore_part(grad, g0 + V, c1, n1)


# --------------------------------------------------------------------------------------------
# One layer's products over one block. A block's rows of layer l lie ``ld`` entries apart
# (:func:`_ld`); X's rows, M^0 apart.
# --------------------------------------------------------------------------------------------
@kernel
def _ld(m):
    """Row stride of a block buffer of m columns: m, plus 8 where the row's bytes would be a
    multiple of 1 KiB in float64 (a power-of-two stride maps the rows a tile reads over the
    samples to a few L1 sets; the weight-gradient tile reads 32 or more of them)."""
    return m + 8 if m % 128 == 0 else m


@kernel
def _forward_layer(theta, w0, b0, P, q, zb, z0, ldz, m_in, a, lda, m_out, nb, n_tiled):
    """a (nb rows, lda apart) from the block's inputs zb[z0 + n ldz + k]: the first
    ``n_tiled`` samples (a multiple of MR) through the tiles, the rest through the whole-batch
    drivers' edge loop (:func:`fastbp._kernels.layers._forward_samples`)."""
    NR = 2 * _lanes(P)
    # Panel outer, then chunks of KC inputs, then the samples: a chunk of a panel (KC NR
    # entries) stays in L1 while every sample of the block passes over it.
    for i0 in range(0, m_out, NR):
        qq = q + (i0 // NR) * NR * (m_in + 1)
        cols = min(NR, m_out - i0)
        for k0 in range(0, m_in, KC):
            k1 = min(m_in, k0 + KC)
            for n in range(0, n_tiled, MR):
                _forward_tile(
                    P, qq, k0, k1, m_in, zb, z0 + n * ldz, ldz, a, n * lda + i0, lda, cols
                )
    if n_tiled < nb:
        zin = zb[z0 : z0 + nb * ldz].reshape((nb, ldz))[:, :m_in]
        out = a[: nb * lda].reshape((nb, lda))[:, :m_out]
        _forward_samples(theta, w0, b0, zin, out, n_tiled, nb, 0, m_out)


@kernel
def _epilogue(code, a, z, ld, m, nb):
    """z = h(a) and a = h'(a) over the block's rows, by the whole-batch drivers' pair
    functions (:func:`fastbp._kernels.layers.smooth_pairs`)."""
    smooth = code == SIGMOID or code == TANH or code == SOFTPLUS
    if smooth and ld == m:  # one strip of nb m entries through the vector loop
        ar = a[: nb * m]
        smooth_pairs(code, ar, z[: nb * m], ar)
        return
    for n in range(nb):
        ar = a[n * ld : n * ld + m]
        zr = z[n * ld : n * ld + m]
        if smooth:
            smooth_pairs(code, ar, zr, ar)
        else:
            for i in range(m):
                h, dh = _piecewise_pair(code, ar[i])
                ar[i] = dh
                zr[i] = h


@kernel
def _rows_max(v, ld, m, nb):
    """max |v| over the block's rows (inf with a NaN or Inf), as checks._max_abs."""
    top = 0.0
    for n in range(nb):
        top = max(top, _max_abs(v[n * ld : n * ld + m]))
    return top


@kernel
def _weight_layer(d, ldd, m_out, zb, z0, ldz, m_in, nb, grad, w0, first, dp, zp):
    """dW of one layer over one block into grad[w0:], continuing the sums (see _weight_tile),
    then db continued with plain adds in sample order (:func:`layers._bias_gradient`).

    ``dp`` (nb m_out entries) and ``zp`` (nb m_in rounded up to NR) are dead workspace that
    receive the packed operands: delta's rows in groups of MR and the input's columns in
    panels of NR, each sample-major ([group][n][r]), so the tile reads two contiguous strips
    instead of nb rows ldd and ldz apart (each its own cache line, often on few L1 sets).
    """
    NR = 2 * _lanes(grad)
    r4 = m_out - m_out % MR
    _pack_weight_operands(d, ldd, zb, z0, ldz, m_in, nb, dp, zp, r4, NR)
    # Rows of dW outer: the tiles walk MR rows of grad along j (streams the prefetcher
    # follows), their packed delta strip stays in L1.
    for i in range(0, r4, MR):
        for j0 in range(0, m_in, NR):
            g0 = w0 + i * m_in + j0
            cols = min(NR, m_in - j0)
            _weight_tile(dp, i * nb, zp, j0 * nb, nb, grad, g0, m_in, cols, first)
    _weight_rest(d, ldd, m_out, m_in, nb, grad, w0, first, zp, r4, NR)


@kernel(inline="always")
def _pack_weight_operands(d, ldd, zb, z0, ldz, m_in, nb, dp, zp, r4, NR):
    """The weight gradient's packed operands (see :func:`_weight_layer`)."""
    for g in range(0, r4, MR):
        p = g * nb
        for n in range(nb):
            for r in range(MR):
                dp[p + n * MR + r] = d[n * ldd + g + r]
    for j0 in range(0, m_in, NR):
        p = j0 * nb
        cols = min(NR, m_in - j0)
        for n in range(nb):
            src = z0 + n * ldz + j0
            for c in range(NR):
                zp[p + n * NR + c] = zb[src + c] if c < cols else 0.0


@kernel(inline="always")
def _weight_rest(d, ldd, m_out, m_in, nb, grad, w0, first, zp, r4, NR):
    """The rows of dW past the last multiple of MR, then db continued with plain adds in
    sample order (:func:`layers._bias_gradient`)."""
    for i in range(r4, m_out):
        for j0 in range(0, m_in, NR):
            g0 = w0 + i * m_in + j0
            cols = min(NR, m_in - j0)
            _weight_row(d, i, ldd, zp, j0 * nb, nb, grad, g0, cols, first)
    b0 = w0 + m_out * m_in
    gb = grad[b0 : b0 + m_out]
    start = 0
    if first:
        for i in range(m_out):
            gb[i] = d[i]
        start = 1
    for n in range(start, nb):
        dn = d[n * ldd : n * ldd + m_out]
        for i in range(m_out):
            gb[i] += dn[i]


@kernel
def _delta_layer(P, q, d, ldd, m_out, h, acc, ldh, m_in, nb):
    """delta^(l-1) over h'(a^(l-1)) in h (nb rows, ldh apart), from delta^l in d; ``acc``
    (dead workspace, h's layout) holds partial sums between chunks of KC outputs."""
    NR = 2 * _lanes(P)
    for j0 in range(0, m_in, NR):
        qq = q + (j0 // NR) * NR * m_out
        cols = min(NR, m_in - j0)
        for i0 in range(0, m_out, KC):
            i1 = min(m_out, i0 + KC)
            for n in range(0, nb - nb % MR, MR):
                _delta_tile(P, qq, i0, i1, m_out, d, n * ldd, ldd, h, n * ldh + j0, ldh, acc, cols)
    _delta_rest(P, q, d, ldd, m_out, h, ldh, m_in, nb, NR)


@kernel(inline="always")
def _delta_rest(P, q, d, ldd, m_out, h, ldh, m_in, nb, NR):
    """The samples past the last multiple of MR (only the batch's last block can have them):
    one at a time, the same sums and epilogue as :func:`_delta_tile`."""
    for n in range(nb - nb % MR, nb):
        for j in range(m_in):
            p = q + (j // NR) * NR * m_out + j % NR
            s = d[n * ldd] * P[p]
            for i in range(1, m_out):
                s = fma(d[n * ldd + i], P[p + i * NR], s)
            k = n * ldh + j
            h[k] = s * h[k] * (h.dtype.type(1.0) + (s - s))


@kernel
def _block_loss(code, a, z, ld, Y, n0, nb, m, weights, total):
    """The output delta over the block's a (which holds h'(a^L)) and the loss, added to
    ``total`` in sample order: :func:`fastbp._kernels.losses.output_delta` and ``loss_delta``
    continued from the previous blocks, so the sum is the whole-batch drivers'."""
    if weights is None or (code == SQUARED and weights.shape[0] == 0):
        for n in range(nb):
            for i in range(m):
                k = n * ld + i
                r = np.float64(z[k]) - np.float64(Y[n0 + n, i])
                total += 0.5 * (r * r)
                a[k] = r * a[k]
        return total
    for n in range(nb):
        w = 1.0 if weights.shape[0] == 0 else np.float64(weights[n0 + n])
        row = slice(n * ld, n * ld + m)
        total += sample_delta(code, a[row], z[row], Y[n0 + n], w)
    return total


# --------------------------------------------------------------------------------------------
# Threaded layer functions: the same tiles over disjoint outputs, split into a fixed number of
# tasks, so every entry is computed by the same sequence of operations as in the serial
# functions above, whatever the thread count (the same bits).
# --------------------------------------------------------------------------------------------
#: Tasks per threaded layer product (a multiple of any likely thread count; Numba's static
#: schedule gives each thread a contiguous run of them).
TASKS = 16
#: A layer product of one block below this many multiply-adds runs serially inside the
#: threaded driver: entering a parallel region costs microseconds, and a [64]*11 network's
#: 32-sample blocks (131,072) ran 0.59x as fast on two threads as on one (docs/perf-log.md,
#: "Issue 22").
REGION_MIN_WORK = 1 << 20


@kernel(inline="always")
def _split(items, chunks_max):
    """Chunks per item so that items x chunks reaches TASKS (at most ``chunks_max``)."""
    return max(1, min(chunks_max, (TASKS + items - 1) // items))


@kernel(parallel=True)
def _forward_layer_parallel(theta, w0, b0, P, q, zb, z0, ldz, m_in, a, lda, m_out, nb, n_tiled):
    """:func:`_forward_layer` over tasks: (panel of outputs, run of sample groups) pairs."""
    if nb * m_in * m_out < REGION_MIN_WORK:
        _forward_layer(theta, w0, b0, P, q, zb, z0, ldz, m_in, a, lda, m_out, nb, n_tiled)
        return
    NR = 2 * _lanes(P)
    panels = (m_out + NR - 1) // NR
    groups = n_tiled // MR
    chunks = _split(panels, max(groups, 1))
    for t in prange(panels * chunks):
        pnl = t // chunks
        c = t % chunks
        i0 = pnl * NR
        qq = q + pnl * NR * (m_in + 1)
        cols = min(NR, m_out - i0)
        for k0 in range(0, m_in, KC):
            k1 = min(m_in, k0 + KC)
            for g in range(c * groups // chunks, (c + 1) * groups // chunks):
                n = g * MR
                _forward_tile(
                    P, qq, k0, k1, m_in, zb, z0 + n * ldz, ldz, a, n * lda + i0, lda, cols
                )
    if n_tiled < nb:
        zin = zb[z0 : z0 + nb * ldz].reshape((nb, ldz))[:, :m_in]
        out = a[: nb * lda].reshape((nb, lda))[:, :m_out]
        _forward_samples(theta, w0, b0, zin, out, n_tiled, nb, 0, m_out)


@kernel(parallel=True)
def _weight_layer_parallel(d, ldd, m_out, zb, z0, ldz, m_in, nb, grad, w0, first, dp, zp):
    """:func:`_weight_layer` over tasks: (group of MR rows, run of column panels) pairs."""
    if nb * m_in * m_out < REGION_MIN_WORK:
        _weight_layer(d, ldd, m_out, zb, z0, ldz, m_in, nb, grad, w0, first, dp, zp)
        return
    NR = 2 * _lanes(grad)
    r4 = m_out - m_out % MR
    _pack_weight_operands(d, ldd, zb, z0, ldz, m_in, nb, dp, zp, r4, NR)
    groups = r4 // MR
    panels = (m_in + NR - 1) // NR
    chunks = _split(max(groups, 1), panels)
    for t in prange(groups * chunks):
        i = (t // chunks) * MR
        c = t % chunks
        for pnl in range(c * panels // chunks, (c + 1) * panels // chunks):
            j0 = pnl * NR
            g0 = w0 + i * m_in + j0
            _weight_tile(dp, i * nb, zp, j0 * nb, nb, grad, g0, m_in, min(NR, m_in - j0), first)
    _weight_rest(d, ldd, m_out, m_in, nb, grad, w0, first, zp, r4, NR)


@kernel(parallel=True)
def _delta_layer_parallel(P, q, d, ldd, m_out, h, acc, ldh, m_in, nb):
    """:func:`_delta_layer` over tasks: (panel of inputs, run of sample groups) pairs."""
    if nb * m_in * m_out < REGION_MIN_WORK:
        _delta_layer(P, q, d, ldd, m_out, h, acc, ldh, m_in, nb)
        return
    NR = 2 * _lanes(P)
    panels = (m_in + NR - 1) // NR
    groups = nb // MR
    chunks = _split(panels, max(groups, 1))
    for t in prange(panels * chunks):
        pnl = t // chunks
        c = t % chunks
        j0 = pnl * NR
        qq = q + pnl * NR * m_out
        cols = min(NR, m_in - j0)
        for i0 in range(0, m_out, KC):
            i1 = min(m_out, i0 + KC)
            for g in range(c * groups // chunks, (c + 1) * groups // chunks):
                n = g * MR
                _delta_tile(P, qq, i0, i1, m_out, d, n * ldd, ldd, h, n * ldh + j0, ldh, acc, cols)
    _delta_rest(P, q, d, ldd, m_out, h, ldh, m_in, nb, NR)


@kernel
def _exact_layer(d, ldd, m_out, zb, z0, ldz, m_in, nb, grad, w0, first):
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
                s += d[n * ldd + i] * zb[z0 + n * ldz + j]
            grad[k] = s


# --------------------------------------------------------------------------------------------
# The driver.
# --------------------------------------------------------------------------------------------
@kernel
def _block_size(sizes, B, itemsize):
    """:func:`fastbp._kernels.workspace.block_samples`, compiled: samples per block, at most B."""
    per_sample = sizes[0]
    params = 0
    for l in range(1, sizes.shape[0]):
        per_sample += 2 * sizes[l]
        params += sizes[l] * (sizes[l - 1] + 1)
    budget = max(BLOCK_BYTES, params * itemsize // 2)
    nb = max(SPAN, budget // max(per_sample * itemsize, 1) // SPAN * SPAN)
    return min(nb, B)


@kernel
def _units_needed(sizes, NB):
    """Entries of A (and of Z) that NB samples' block buffers take."""
    total = 0
    for l in range(1, sizes.shape[0]):
        total += NB * _ld(sizes[l])
    return total


@kernel
def _tmp_needed(sizes, NR, NB):
    """Entries of tmp for panels of NR columns and blocks of NB samples: the packed weights,
    the maxima and the packed input of the weight gradient (NB rows of the widest input)."""
    L = sizes.shape[0] - 1
    total = 0
    widest = 0
    for l in range(1, L + 1):
        total += (sizes[l] + NR - 1) // NR * NR * (sizes[l - 1] + 1)
        if l > 1:
            total += (sizes[l - 1] + NR - 1) // NR * NR * sizes[l]
        widest = max(widest, sizes[l - 1])
    return total + 2 * (L + 1) + NB * ((widest + NR - 1) // NR * NR)


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
    zp = tmp[q_end + 2 * (L + 1) :]
    Bt = B - B % SPAN
    total = 0.0
    for n0 in range(0, B, NB):
        nb = min(NB, B - n0)
        first = n0 == 0
        n_tiled = max(0, min(nb, Bt - n0))
        # Forward: layer l's a^l, then h', in A; z^l in Z, each at NB * (strides before l).
        zb = Xf
        z0 = n0 * m0
        ldz = m0
        off = 0
        q = 0
        w0 = 0
        for l in range(1, L + 1):
            m_in = sizes[l - 1]
            m_out = sizes[l]
            ld = _ld(m_out)
            b0 = w0 + m_out * m_in
            a = A[off : off + nb * ld]
            z = Z[off : off + nb * ld]
            _forward_layer(theta, w0, b0, tmp, q, zb, z0, ldz, m_in, a, ld, m_out, nb, n_tiled)
            _epilogue(codes[l - 1], a, z, ld, m_out, nb)
            if not exact and l < L and codes[l - 1] != SIGMOID and codes[l - 1] != TANH:
                zmax[l] = max(np.float64(zmax[l]), _rows_max(z, ld, m_out, nb))
            zb = Z
            z0 = off
            ldz = ld
            q += (m_out + NR - 1) // NR * NR * (m_in + 1)
            w0 = b0 + m_out
            if l < L:
                off += NB * ld
        mL = sizes[L]
        ldL = _ld(mL)
        total = _block_loss(
            loss_code,
            A[off : off + nb * ldL],
            Z[off : off + nb * ldL],
            ldL,
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
            ld = _ld(m_out)
            w0 = w_end - m_out - m_out * m_in
            d = A[off : off + nb * ld]
            if l > 1:
                ld_in = _ld(m_in)
                off_in = off - NB * ld_in
                zin = Z
            else:
                ld_in = m0
                off_in = n0 * m0
                zin = Xf
            if not exact:
                # z^l is dead by now (dW^(l+1) and the loss have read it): the packed delta.
                dp = Z[off : off + nb * ld]
                _weight_layer(d, ld, m_out, zin, off_in, ld_in, m_in, nb, grad, w0, first, dp, zp)
                dmax[l] = max(np.float64(dmax[l]), _rows_max(d, ld, m_out, nb))
            elif dmax[l] < 0:
                _exact_layer(d, ld, m_out, zin, off_in, ld_in, m_in, nb, grad, w0, first)
            if l > 1:
                qd -= (m_in + NR - 1) // NR * NR * m_out
                # z^(l-1) is dead once dW^l is done: it holds the delta tiles' partial sums.
                h = A[off_in : off_in + nb * ld_in]
                acc = Z[off_in : off_in + nb * ld_in]
                _delta_layer(tmp, qd, d, ld, m_out, h, acc, ld_in, m_in, nb)
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
    B = X.shape[0]
    NB = _block_size(sizes, B, X.itemsize)
    if tmp.shape[0] < _tmp_needed(sizes, 2 * _lanes(tmp), NB):
        raise ValueError("kernels: tmp too short (see make_workspace)")
    need = _units_needed(sizes, NB)
    if A.shape[0] < need or Z.shape[0] < need:
        raise ValueError("kernels: A and Z too short (see make_workspace)")
    if weights is not None:
        check_loss_arguments(codes, X.shape[0], loss_code, weights)
    xmax = _finite_max_x(X, Y)
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


# The threaded twin: the driver's own bytecode over a namespace in which the three layer
# functions are their threaded versions (fastbp._jit.twins; the serial driver compiles no
# parfor). The same bits as the serial driver at any thread count: the tasks split outputs.
_THREADED = {
    **globals(),
    "_forward_layer": _forward_layer_parallel,
    "_weight_layer": _weight_layer_parallel,
    "_delta_layer": _delta_layer_parallel,
    "_pack_forward": _pack_forward_parallel,
    "_pack_delta": _pack_delta_parallel,
}
_blocks_threaded, loss_and_grad_blocked_threaded = twins(
    (_blocks, loss_and_grad_blocked), _THREADED, "threaded"
)
del _THREADED
