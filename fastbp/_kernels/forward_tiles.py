"""Register-tiled forward loop nest: a = zin W^T + b and z = h(a) for one layer.

Generated from a template and kept as plain source (Numba has no vector types): a tile of
2 output units x 32 samples is 64 scalar accumulators that LLVM's SLP vectorizer packs into
8 vector registers (SLP is enabled for fastbp's kernels only, see :mod:`fastbp._jit`). Per step
of the reduction index k the tile broadcasts 2 weights W[i, k], W[i+1, k] and loads the
contiguous run zinT[k, n..n+31] of the transposed input once for both rows. W is row-major
(M^l, M^(l-1)), so the lanes must run along samples: the previous layer's epilogue writes z
transposed too. The k loop is blocked by 64 so the 64 x 32 block of zinT stays in L1 while
every row pair streams over it; partial sums wait in zT (rewritten with h at the end).

Why 2 x 32: a tile of 4 outputs x 8 samples made SLP gather the 4 weights from 4 rows, and
1 output x 32 samples is load-bound; 4 x 32 was no better and doubles the accumulators (the
measurements: docs/perf-log.md, rows 1, 3 and 11a).

Each a[n, i] is summed as b_i + sum_k W[i, k] zin[n, k] in increasing k, whichever thread,
tile or remainder row computes it; samples that do not fill a tile (all of them when B < 32)
go through the lane-split dot product of :func:`fastbp._kernels.layers._forward_samples`.
"""

from __future__ import annotations

from numba import prange

from .._jit import fma, kernel, twins
from .layers import _activate, _activate_forward, _activate_gradient, _forward_samples

#: Rows (output units) per tile; row blocks given to threads (all but the last) are multiples
#: of it.
ROWS = 2
#: Samples per tile (the vector lanes); below this batch the transposed input is not used.
LANES = 32


@kernel
def forward_rows(theta, w0, b0, code, zin, zinT, a, z, zT, i_lo, i_hi, n0, derivative):
    """Rows i_lo <= i < i_hi of a = zin W^T + b and z = h(a) (see module notes).

    zin, a and z hold the rows of samples n0 .. n0 + B - 1 (all of them, n0 = 0, in a serial
    call; one thread's block of samples otherwise), zinT and zT every sample's column.
    """
    B, m_in = zin.shape
    Bt = B - B % 32
    if Bt > 0:  # B < 32: no sample tile, skip the blocked loops entirely
        for kb in range(0, m_in, 64):
            kn = min(64, m_in - kb)
            xb = zinT[kb : kb + kn]
            for nb in range(n0, n0 + Bt, 32):
                for i in range(i_lo, i_hi, 2):
                    if i + 2 <= i_hi:
                        p = w0 + (i + 0) * m_in + kb
                        wr0 = theta[p : p + kn]
                        acc0 = zT[i + 0, nb : nb + 32]
                        p = w0 + (i + 1) * m_in + kb
                        wr1 = theta[p : p + kn]
                        acc1 = zT[i + 1, nb : nb + 32]
                        if kb == 0:
                            c0_0 = c0_1 = c0_2 = c0_3 = c0_4 = c0_5 = c0_6 = c0_7 = c0_8 = c0_9 = (
                                c0_10
                            ) = c0_11 = c0_12 = c0_13 = c0_14 = c0_15 = c0_16 = c0_17 = c0_18 = (
                                c0_19
                            ) = c0_20 = c0_21 = c0_22 = c0_23 = c0_24 = c0_25 = c0_26 = c0_27 = (
                                c0_28
                            ) = c0_29 = c0_30 = c0_31 = theta[b0 + i + 0]
                            c1_0 = c1_1 = c1_2 = c1_3 = c1_4 = c1_5 = c1_6 = c1_7 = c1_8 = c1_9 = (
                                c1_10
                            ) = c1_11 = c1_12 = c1_13 = c1_14 = c1_15 = c1_16 = c1_17 = c1_18 = (
                                c1_19
                            ) = c1_20 = c1_21 = c1_22 = c1_23 = c1_24 = c1_25 = c1_26 = c1_27 = (
                                c1_28
                            ) = c1_29 = c1_30 = c1_31 = theta[b0 + i + 1]
                        else:
                            c0_0 = acc0[0]
                            c0_1 = acc0[1]
                            c0_2 = acc0[2]
                            c0_3 = acc0[3]
                            c0_4 = acc0[4]
                            c0_5 = acc0[5]
                            c0_6 = acc0[6]
                            c0_7 = acc0[7]
                            c0_8 = acc0[8]
                            c0_9 = acc0[9]
                            c0_10 = acc0[10]
                            c0_11 = acc0[11]
                            c0_12 = acc0[12]
                            c0_13 = acc0[13]
                            c0_14 = acc0[14]
                            c0_15 = acc0[15]
                            c0_16 = acc0[16]
                            c0_17 = acc0[17]
                            c0_18 = acc0[18]
                            c0_19 = acc0[19]
                            c0_20 = acc0[20]
                            c0_21 = acc0[21]
                            c0_22 = acc0[22]
                            c0_23 = acc0[23]
                            c0_24 = acc0[24]
                            c0_25 = acc0[25]
                            c0_26 = acc0[26]
                            c0_27 = acc0[27]
                            c0_28 = acc0[28]
                            c0_29 = acc0[29]
                            c0_30 = acc0[30]
                            c0_31 = acc0[31]
                            c1_0 = acc1[0]
                            c1_1 = acc1[1]
                            c1_2 = acc1[2]
                            c1_3 = acc1[3]
                            c1_4 = acc1[4]
                            c1_5 = acc1[5]
                            c1_6 = acc1[6]
                            c1_7 = acc1[7]
                            c1_8 = acc1[8]
                            c1_9 = acc1[9]
                            c1_10 = acc1[10]
                            c1_11 = acc1[11]
                            c1_12 = acc1[12]
                            c1_13 = acc1[13]
                            c1_14 = acc1[14]
                            c1_15 = acc1[15]
                            c1_16 = acc1[16]
                            c1_17 = acc1[17]
                            c1_18 = acc1[18]
                            c1_19 = acc1[19]
                            c1_20 = acc1[20]
                            c1_21 = acc1[21]
                            c1_22 = acc1[22]
                            c1_23 = acc1[23]
                            c1_24 = acc1[24]
                            c1_25 = acc1[25]
                            c1_26 = acc1[26]
                            c1_27 = acc1[27]
                            c1_28 = acc1[28]
                            c1_29 = acc1[29]
                            c1_30 = acc1[30]
                            c1_31 = acc1[31]
                        for k in range(kn):
                            x = xb[k, nb : nb + 32]
                            v0 = wr0[k]
                            v1 = wr1[k]
                            c0_0 = fma(v0, x[0], c0_0)
                            c1_0 = fma(v1, x[0], c1_0)
                            c0_1 = fma(v0, x[1], c0_1)
                            c1_1 = fma(v1, x[1], c1_1)
                            c0_2 = fma(v0, x[2], c0_2)
                            c1_2 = fma(v1, x[2], c1_2)
                            c0_3 = fma(v0, x[3], c0_3)
                            c1_3 = fma(v1, x[3], c1_3)
                            c0_4 = fma(v0, x[4], c0_4)
                            c1_4 = fma(v1, x[4], c1_4)
                            c0_5 = fma(v0, x[5], c0_5)
                            c1_5 = fma(v1, x[5], c1_5)
                            c0_6 = fma(v0, x[6], c0_6)
                            c1_6 = fma(v1, x[6], c1_6)
                            c0_7 = fma(v0, x[7], c0_7)
                            c1_7 = fma(v1, x[7], c1_7)
                            c0_8 = fma(v0, x[8], c0_8)
                            c1_8 = fma(v1, x[8], c1_8)
                            c0_9 = fma(v0, x[9], c0_9)
                            c1_9 = fma(v1, x[9], c1_9)
                            c0_10 = fma(v0, x[10], c0_10)
                            c1_10 = fma(v1, x[10], c1_10)
                            c0_11 = fma(v0, x[11], c0_11)
                            c1_11 = fma(v1, x[11], c1_11)
                            c0_12 = fma(v0, x[12], c0_12)
                            c1_12 = fma(v1, x[12], c1_12)
                            c0_13 = fma(v0, x[13], c0_13)
                            c1_13 = fma(v1, x[13], c1_13)
                            c0_14 = fma(v0, x[14], c0_14)
                            c1_14 = fma(v1, x[14], c1_14)
                            c0_15 = fma(v0, x[15], c0_15)
                            c1_15 = fma(v1, x[15], c1_15)
                            c0_16 = fma(v0, x[16], c0_16)
                            c1_16 = fma(v1, x[16], c1_16)
                            c0_17 = fma(v0, x[17], c0_17)
                            c1_17 = fma(v1, x[17], c1_17)
                            c0_18 = fma(v0, x[18], c0_18)
                            c1_18 = fma(v1, x[18], c1_18)
                            c0_19 = fma(v0, x[19], c0_19)
                            c1_19 = fma(v1, x[19], c1_19)
                            c0_20 = fma(v0, x[20], c0_20)
                            c1_20 = fma(v1, x[20], c1_20)
                            c0_21 = fma(v0, x[21], c0_21)
                            c1_21 = fma(v1, x[21], c1_21)
                            c0_22 = fma(v0, x[22], c0_22)
                            c1_22 = fma(v1, x[22], c1_22)
                            c0_23 = fma(v0, x[23], c0_23)
                            c1_23 = fma(v1, x[23], c1_23)
                            c0_24 = fma(v0, x[24], c0_24)
                            c1_24 = fma(v1, x[24], c1_24)
                            c0_25 = fma(v0, x[25], c0_25)
                            c1_25 = fma(v1, x[25], c1_25)
                            c0_26 = fma(v0, x[26], c0_26)
                            c1_26 = fma(v1, x[26], c1_26)
                            c0_27 = fma(v0, x[27], c0_27)
                            c1_27 = fma(v1, x[27], c1_27)
                            c0_28 = fma(v0, x[28], c0_28)
                            c1_28 = fma(v1, x[28], c1_28)
                            c0_29 = fma(v0, x[29], c0_29)
                            c1_29 = fma(v1, x[29], c1_29)
                            c0_30 = fma(v0, x[30], c0_30)
                            c1_30 = fma(v1, x[30], c1_30)
                            c0_31 = fma(v0, x[31], c0_31)
                            c1_31 = fma(v1, x[31], c1_31)
                        acc0[0] = c0_0
                        acc0[1] = c0_1
                        acc0[2] = c0_2
                        acc0[3] = c0_3
                        acc0[4] = c0_4
                        acc0[5] = c0_5
                        acc0[6] = c0_6
                        acc0[7] = c0_7
                        acc0[8] = c0_8
                        acc0[9] = c0_9
                        acc0[10] = c0_10
                        acc0[11] = c0_11
                        acc0[12] = c0_12
                        acc0[13] = c0_13
                        acc0[14] = c0_14
                        acc0[15] = c0_15
                        acc0[16] = c0_16
                        acc0[17] = c0_17
                        acc0[18] = c0_18
                        acc0[19] = c0_19
                        acc0[20] = c0_20
                        acc0[21] = c0_21
                        acc0[22] = c0_22
                        acc0[23] = c0_23
                        acc0[24] = c0_24
                        acc0[25] = c0_25
                        acc0[26] = c0_26
                        acc0[27] = c0_27
                        acc0[28] = c0_28
                        acc0[29] = c0_29
                        acc0[30] = c0_30
                        acc0[31] = c0_31
                        acc1[0] = c1_0
                        acc1[1] = c1_1
                        acc1[2] = c1_2
                        acc1[3] = c1_3
                        acc1[4] = c1_4
                        acc1[5] = c1_5
                        acc1[6] = c1_6
                        acc1[7] = c1_7
                        acc1[8] = c1_8
                        acc1[9] = c1_9
                        acc1[10] = c1_10
                        acc1[11] = c1_11
                        acc1[12] = c1_12
                        acc1[13] = c1_13
                        acc1[14] = c1_14
                        acc1[15] = c1_15
                        acc1[16] = c1_16
                        acc1[17] = c1_17
                        acc1[18] = c1_18
                        acc1[19] = c1_19
                        acc1[20] = c1_20
                        acc1[21] = c1_21
                        acc1[22] = c1_22
                        acc1[23] = c1_23
                        acc1[24] = c1_24
                        acc1[25] = c1_25
                        acc1[26] = c1_26
                        acc1[27] = c1_27
                        acc1[28] = c1_28
                        acc1[29] = c1_29
                        acc1[30] = c1_30
                        acc1[31] = c1_31
                    else:
                        p = w0 + i * m_in + kb
                        w = theta[p : p + kn]
                        acc = zT[i, nb : nb + 32]
                        for r in range(i_hi - i):
                            w = theta[p + r * m_in : p + r * m_in + kn]
                            acc = zT[i + r, nb : nb + 32]
                            for s in range(32):
                                c = theta[b0 + i + r] if kb == 0 else acc[s]
                                for k in range(kn):
                                    c = fma(w[k], xb[k, nb + s], c)
                                acc[s] = c
    # Row views indexed from 0, so Numba's negative-index wraparound folds away
    # (docs/perf-log.md, row 29).
    zTb = zT[i_lo:i_hi]
    for n in range(Bt):
        ar = a[n, i_lo:i_hi]
        for i in range(ar.shape[0]):
            ar[i] = zTb[i, n0 + n]
    _forward_samples(theta, w0, b0, zin, a, Bt, B, i_lo, i_hi)
    _activate(code, a, z, zT, i_lo, i_hi, n0, derivative)


@kernel(parallel=True)
def forward_rows_parallel(
    theta, w0, b0, code, zin, zinT, a, z, zT, rows, samples, pack, derivative
):
    """:func:`forward_rows` over a grid of tasks: blocks of ``rows`` output rows times blocks of
    ``samples`` samples, samples outer. Where there are several blocks, ``rows`` is a multiple
    of ROWS and ``samples`` of LANES (one block: ``rows >= M^l`` or ``samples >= B``, any value).

    Each task writes only its own entries of a, z and zT, and every element is summed in the
    same order as in the serial call (a sample block starts on a tile, so its tiles are the
    serial call's), so results are bitwise identical to it. With ``pack`` (only with one block
    of rows, ``rows >= M^l``), each task first transposes its own samples of zin into zinT:
    the thread that reads them writes them, in parallel, instead of the main thread writing
    all of X^T and the other core fetching it from there (docs/perf-log.md, row 31).
    """
    B, m_in = zin.shape
    m_out = a.shape[1]
    n_rows = (m_out + rows - 1) // rows
    n_samples = (B + samples - 1) // samples
    for c in prange(n_samples * n_rows):
        sb = c // n_rows
        i_lo = (c - sb * n_rows) * rows
        i_hi = min(m_out, i_lo + rows)
        s0 = sb * samples
        s1 = min(B, s0 + samples)
        if pack:
            # The serial driver's X^T copy (k outer: contiguous writes), over this block only.
            for k in range(m_in):
                xt = zinT[k]
                for n in range(s0, s1):
                    xt[n] = zin[n, k]
        zs = zin[s0:s1]
        forward_rows(
            theta, w0, b0, code, zs, zinT, a[s0:s1], z[s0:s1], zT, i_lo, i_hi, s0, derivative
        )


# One twin of the two kernels above per mode, with _activate bound to that mode's epilogue: the
# drivers call these (kernels._forward_all's twins), so a gradient compiles only the vector
# epilogue and a forward pass only the scalar one; the kernels above, with both, serve direct
# callers. The same bytecode, so the same bits (docs/perf-log.md, row 30).
forward_rows_gradient, forward_rows_parallel_gradient = twins(
    (forward_rows, forward_rows_parallel),
    {**globals(), "_activate": _activate_gradient},
    "gradient",
)
forward_rows_forward, forward_rows_parallel_forward = twins(
    (forward_rows, forward_rows_parallel), {**globals(), "_activate": _activate_forward}, "forward"
)
