"""Register-tiled forward loop nest: a = zin W^T + b and z = h(a) for one layer.

Generated once by hand-checked templates and kept as plain source (Numba has no vector types):
a tile of 4 output units x 8 samples is 32 scalar accumulators that LLVM's SLP vectorizer packs
into vector registers (enabled for fastbp's kernels only, see :mod:`fastbp._jit`). Per step of
the reduction index k the tile loads 4 weights W[i..i+3, k] (broadcast) and one contiguous run
zinT[k, n..n+7] of the transposed input, and does 32 FMAs: loads stay well under the FMA rate,
so the nest is compute-bound instead of load-bound. W is row-major (M^l, M^(l-1)), so the lanes
must run along samples, which is why the previous layer's epilogue also writes z transposed.

Each a[n, i] is summed as b_i + sum_k W[i, k] zin[n, k] in increasing k, whichever thread or
tile computes it; samples that do not fill a tile go through the lane-split dot product of
:func:`fastbp._layers._forward_samples` (used alone when B < 8, e.g. B = 1).
"""

from __future__ import annotations

from numba import prange

from ._jit import kernel
from ._layers import _activate, _forward_samples

#: Rows (output units) per tile; row blocks given to threads are multiples of it.
ROWS = 4
#: Samples per tile: the vector lanes.
LANES = 8


@kernel
def forward_rows(theta, w0, b0, code, zin, zinT, a, z, zT, i_lo, i_hi, derivative):
    """Rows i_lo <= i < i_hi of a = zin W^T + b and z = h(a) (see module notes)."""
    B, m_in = zin.shape
    Bt = B - B % 32
    if Bt > 0:  # B < 32: no sample tile, skip the blocked loops entirely
        for kb in range(0, m_in, 64):
            kn = min(64, m_in - kb)
            xb = zinT[kb : kb + kn]
            for nb in range(0, Bt, 32):
                for i in range(i_lo, i_hi):
                    p = w0 + i * m_in + kb
                    w = theta[p : p + kn]
                    acc = zT[i, nb : nb + 32]
                    if kb == 0:
                        c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = c8 = c9 = c10 = c11 = c12 = c13 = (
                            c14
                        ) = c15 = c16 = c17 = c18 = c19 = c20 = c21 = c22 = c23 = c24 = c25 = (
                            c26
                        ) = c27 = c28 = c29 = c30 = c31 = theta[b0 + i]
                    else:
                        c0 = acc[0]
                        c1 = acc[1]
                        c2 = acc[2]
                        c3 = acc[3]
                        c4 = acc[4]
                        c5 = acc[5]
                        c6 = acc[6]
                        c7 = acc[7]
                        c8 = acc[8]
                        c9 = acc[9]
                        c10 = acc[10]
                        c11 = acc[11]
                        c12 = acc[12]
                        c13 = acc[13]
                        c14 = acc[14]
                        c15 = acc[15]
                        c16 = acc[16]
                        c17 = acc[17]
                        c18 = acc[18]
                        c19 = acc[19]
                        c20 = acc[20]
                        c21 = acc[21]
                        c22 = acc[22]
                        c23 = acc[23]
                        c24 = acc[24]
                        c25 = acc[25]
                        c26 = acc[26]
                        c27 = acc[27]
                        c28 = acc[28]
                        c29 = acc[29]
                        c30 = acc[30]
                        c31 = acc[31]
                    for k in range(kn):
                        v = w[k]
                        x = xb[k, nb : nb + 32]
                        c0 += v * x[0]
                        c1 += v * x[1]
                        c2 += v * x[2]
                        c3 += v * x[3]
                        c4 += v * x[4]
                        c5 += v * x[5]
                        c6 += v * x[6]
                        c7 += v * x[7]
                        c8 += v * x[8]
                        c9 += v * x[9]
                        c10 += v * x[10]
                        c11 += v * x[11]
                        c12 += v * x[12]
                        c13 += v * x[13]
                        c14 += v * x[14]
                        c15 += v * x[15]
                        c16 += v * x[16]
                        c17 += v * x[17]
                        c18 += v * x[18]
                        c19 += v * x[19]
                        c20 += v * x[20]
                        c21 += v * x[21]
                        c22 += v * x[22]
                        c23 += v * x[23]
                        c24 += v * x[24]
                        c25 += v * x[25]
                        c26 += v * x[26]
                        c27 += v * x[27]
                        c28 += v * x[28]
                        c29 += v * x[29]
                        c30 += v * x[30]
                        c31 += v * x[31]
                    acc[0] = c0
                    acc[1] = c1
                    acc[2] = c2
                    acc[3] = c3
                    acc[4] = c4
                    acc[5] = c5
                    acc[6] = c6
                    acc[7] = c7
                    acc[8] = c8
                    acc[9] = c9
                    acc[10] = c10
                    acc[11] = c11
                    acc[12] = c12
                    acc[13] = c13
                    acc[14] = c14
                    acc[15] = c15
                    acc[16] = c16
                    acc[17] = c17
                    acc[18] = c18
                    acc[19] = c19
                    acc[20] = c20
                    acc[21] = c21
                    acc[22] = c22
                    acc[23] = c23
                    acc[24] = c24
                    acc[25] = c25
                    acc[26] = c26
                    acc[27] = c27
                    acc[28] = c28
                    acc[29] = c29
                    acc[30] = c30
                    acc[31] = c31
    for n in range(Bt):
        for i in range(i_lo, i_hi):
            a[n, i] = zT[i, n]
    _forward_samples(theta, w0, b0, zin, a, Bt, B, i_lo, i_hi)
    _activate(code, a, z, zT, i_lo, i_hi, derivative)


@kernel(parallel=True)
def forward_rows_parallel(theta, w0, b0, code, zin, zinT, a, z, zT, chunk, derivative):
    """:func:`forward_rows` over blocks of ``chunk`` rows (a multiple of ROWS), one per task.

    Each block writes only its own columns of a, z and rows of zT, and every element is summed
    in the same order as in the serial call, so results are bitwise identical to it.
    """
    m_out = a.shape[1]
    for c in prange((m_out + chunk - 1) // chunk):
        i_hi = min(m_out, (c + 1) * chunk)
        forward_rows(theta, w0, b0, code, zin, zinT, a, z, zT, c * chunk, i_hi, derivative)
