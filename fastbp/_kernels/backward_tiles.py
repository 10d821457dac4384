"""Register-tiled backward loop nests: the delta recursion and the weight gradient.

Like :mod:`fastbp._kernels.forward_tiles`, each tile is written out as scalar accumulators that
LLVM's SLP vectorizer packs into vector registers; no operand needs packing, because here the lanes
run along a contiguous row:

- delta^(l-1) = (delta^l W^l) * h'(a^(l-1)): a tile of 2 samples x 32 columns j accumulates
  delta[n, i] (two broadcasts) times the contiguous run W[i, j..j+31] (loaded once for both
  samples) over i, in blocks of 64 rows of W packed into a contiguous scratch when B >= 8; for
  an odd B the last pair is (B-1, B-1), the same sums computed and stored twice (a separate
  1 x 32 tile for it cost cold compile), and columns that do not fill a tile take the edge
  loop. 2 x 32 rather than 1 x 32: the 1 x 32 tile had too few vector accumulators, so each
  add waited on the previous one's latency (docs/perf-log.md, row 14).
  The copy into the scratch is 32 loads then 32 stores (vector moves), not a scalar copy, and
  both sources run through one copy of the loops (``src[q0 + k ld]``) (docs/perf-log.md,
  row 26).
  The h' epilogue (``layers._scale``) then runs over the finished sums, vectorized: fusing it
  into the tile's stores was slower (docs/perf-log.md, rows 26 and 26b).
- dW^l = delta^l^T z^(l-1): a tile of 4 rows i x 16 columns j accumulates delta[n, i]
  (broadcast) times the contiguous run zin[n, j..j+15] over samples n, then stores the finished
  tile once: the gradient is written exactly once per call, never read back. The same tile
  serves float32: a wider float32 tile was slower (docs/perf-log.md, row 13).
  At large B the tile reads B rows of delta and zin that are M^l and M^(l-1) entries apart;
  where those strides are multiples of 1 KiB (512 float64, 2048 float32) the rows share a few
  L1 sets. The operands are therefore copied into panel-major order first
  (:func:`pack_weight_gradient`, into workspace that is dead by then; by the driver, or, split
  over columns on threads, each task its own panels of zin), and the tile reads two contiguous
  streams (which operand is packed when: ``kernels._layer_gradient``; docs/perf-log.md,
  row 19). The rows outside a 4-row tile run samples-outer, vectorized along j (row 21).

Every sum runs sequentially over its reduction index with the first term assigned, the same
order as the edge loops of :mod:`fastbp._kernels.layers`, so results do not depend on tiling or
threads.
"""

from __future__ import annotations

from numba import prange

from .._jit import fma, kernel
from .layers import _delta_columns, _scale, _weight_gradient_columns

#: Delta tile: 1 sample x COLS columns, over blocks of DELTA_KC rows of W packed into a
#: contiguous (DELTA_KC, COLS) scratch of PACK entries.
COLS = 32
DELTA_KC = 64
PACK = DELTA_KC * COLS


@kernel
def delta_columns(theta, w0, delta, code_prev, a_prev, acc, wp, j_lo, j_hi):
    """Columns j_lo <= j < j_hi of delta^(l-1), over a_prev (see module notes)."""
    B, m_out = delta.shape
    m_in = a_prev.shape[1]
    jt = j_lo + (j_hi - j_lo) // 32 * 32
    packed = B >= 8
    for ib in range(0, m_out, 64):
        kn = min(64, m_out - ib)
        for jb in range(j_lo, jt, 32):
            p = w0 + ib * m_in + jb
            # One copy of the loops for both sources: the tile reads row k of the block at
            # src[q0 + k * ld], packed or not.
            if packed:
                for k in range(kn):
                    # All 32 loads before the 32 stores, so SLP makes them vector moves: an
                    # element-by-element copy stayed scalar (theta and wp may alias).
                    q = p + k * m_in
                    row = theta[q : q + 32]
                    dst = wp[k * 32 : k * 32 + 32]
                    x0 = row[0]
                    x1 = row[1]
                    x2 = row[2]
                    x3 = row[3]
                    x4 = row[4]
                    x5 = row[5]
                    x6 = row[6]
                    x7 = row[7]
                    x8 = row[8]
                    x9 = row[9]
                    x10 = row[10]
                    x11 = row[11]
                    x12 = row[12]
                    x13 = row[13]
                    x14 = row[14]
                    x15 = row[15]
                    x16 = row[16]
                    x17 = row[17]
                    x18 = row[18]
                    x19 = row[19]
                    x20 = row[20]
                    x21 = row[21]
                    x22 = row[22]
                    x23 = row[23]
                    x24 = row[24]
                    x25 = row[25]
                    x26 = row[26]
                    x27 = row[27]
                    x28 = row[28]
                    x29 = row[29]
                    x30 = row[30]
                    x31 = row[31]
                    dst[0] = x0
                    dst[1] = x1
                    dst[2] = x2
                    dst[3] = x3
                    dst[4] = x4
                    dst[5] = x5
                    dst[6] = x6
                    dst[7] = x7
                    dst[8] = x8
                    dst[9] = x9
                    dst[10] = x10
                    dst[11] = x11
                    dst[12] = x12
                    dst[13] = x13
                    dst[14] = x14
                    dst[15] = x15
                    dst[16] = x16
                    dst[17] = x17
                    dst[18] = x18
                    dst[19] = x19
                    dst[20] = x20
                    dst[21] = x21
                    dst[22] = x22
                    dst[23] = x23
                    dst[24] = x24
                    dst[25] = x25
                    dst[26] = x26
                    dst[27] = x27
                    dst[28] = x28
                    dst[29] = x29
                    dst[30] = x30
                    dst[31] = x31
                src = wp
                q0 = 0
                ld = 32
            else:
                src = theta
                q0 = p
                ld = m_in
            for n in range(0, B, 2):
                n1 = min(n + 1, B - 1)  # odd B: the last pair is (B - 1, B - 1), same sums twice
                d0 = delta[n, ib : ib + kn]
                out0 = acc[n, jb : jb + 32]
                d1 = delta[n1, ib : ib + kn]
                out1 = acc[n1, jb : jb + 32]
                if ib == 0:
                    wv = src[q0 : q0 + 32]
                    e0 = d0[0]
                    e1 = d1[0]
                    c0_0 = e0 * wv[0]
                    c1_0 = e1 * wv[0]
                    c0_1 = e0 * wv[1]
                    c1_1 = e1 * wv[1]
                    c0_2 = e0 * wv[2]
                    c1_2 = e1 * wv[2]
                    c0_3 = e0 * wv[3]
                    c1_3 = e1 * wv[3]
                    c0_4 = e0 * wv[4]
                    c1_4 = e1 * wv[4]
                    c0_5 = e0 * wv[5]
                    c1_5 = e1 * wv[5]
                    c0_6 = e0 * wv[6]
                    c1_6 = e1 * wv[6]
                    c0_7 = e0 * wv[7]
                    c1_7 = e1 * wv[7]
                    c0_8 = e0 * wv[8]
                    c1_8 = e1 * wv[8]
                    c0_9 = e0 * wv[9]
                    c1_9 = e1 * wv[9]
                    c0_10 = e0 * wv[10]
                    c1_10 = e1 * wv[10]
                    c0_11 = e0 * wv[11]
                    c1_11 = e1 * wv[11]
                    c0_12 = e0 * wv[12]
                    c1_12 = e1 * wv[12]
                    c0_13 = e0 * wv[13]
                    c1_13 = e1 * wv[13]
                    c0_14 = e0 * wv[14]
                    c1_14 = e1 * wv[14]
                    c0_15 = e0 * wv[15]
                    c1_15 = e1 * wv[15]
                    c0_16 = e0 * wv[16]
                    c1_16 = e1 * wv[16]
                    c0_17 = e0 * wv[17]
                    c1_17 = e1 * wv[17]
                    c0_18 = e0 * wv[18]
                    c1_18 = e1 * wv[18]
                    c0_19 = e0 * wv[19]
                    c1_19 = e1 * wv[19]
                    c0_20 = e0 * wv[20]
                    c1_20 = e1 * wv[20]
                    c0_21 = e0 * wv[21]
                    c1_21 = e1 * wv[21]
                    c0_22 = e0 * wv[22]
                    c1_22 = e1 * wv[22]
                    c0_23 = e0 * wv[23]
                    c1_23 = e1 * wv[23]
                    c0_24 = e0 * wv[24]
                    c1_24 = e1 * wv[24]
                    c0_25 = e0 * wv[25]
                    c1_25 = e1 * wv[25]
                    c0_26 = e0 * wv[26]
                    c1_26 = e1 * wv[26]
                    c0_27 = e0 * wv[27]
                    c1_27 = e1 * wv[27]
                    c0_28 = e0 * wv[28]
                    c1_28 = e1 * wv[28]
                    c0_29 = e0 * wv[29]
                    c1_29 = e1 * wv[29]
                    c0_30 = e0 * wv[30]
                    c1_30 = e1 * wv[30]
                    c0_31 = e0 * wv[31]
                    c1_31 = e1 * wv[31]
                    k0 = 1
                else:
                    c0_0 = out0[0]
                    c0_1 = out0[1]
                    c0_2 = out0[2]
                    c0_3 = out0[3]
                    c0_4 = out0[4]
                    c0_5 = out0[5]
                    c0_6 = out0[6]
                    c0_7 = out0[7]
                    c0_8 = out0[8]
                    c0_9 = out0[9]
                    c0_10 = out0[10]
                    c0_11 = out0[11]
                    c0_12 = out0[12]
                    c0_13 = out0[13]
                    c0_14 = out0[14]
                    c0_15 = out0[15]
                    c0_16 = out0[16]
                    c0_17 = out0[17]
                    c0_18 = out0[18]
                    c0_19 = out0[19]
                    c0_20 = out0[20]
                    c0_21 = out0[21]
                    c0_22 = out0[22]
                    c0_23 = out0[23]
                    c0_24 = out0[24]
                    c0_25 = out0[25]
                    c0_26 = out0[26]
                    c0_27 = out0[27]
                    c0_28 = out0[28]
                    c0_29 = out0[29]
                    c0_30 = out0[30]
                    c0_31 = out0[31]
                    c1_0 = out1[0]
                    c1_1 = out1[1]
                    c1_2 = out1[2]
                    c1_3 = out1[3]
                    c1_4 = out1[4]
                    c1_5 = out1[5]
                    c1_6 = out1[6]
                    c1_7 = out1[7]
                    c1_8 = out1[8]
                    c1_9 = out1[9]
                    c1_10 = out1[10]
                    c1_11 = out1[11]
                    c1_12 = out1[12]
                    c1_13 = out1[13]
                    c1_14 = out1[14]
                    c1_15 = out1[15]
                    c1_16 = out1[16]
                    c1_17 = out1[17]
                    c1_18 = out1[18]
                    c1_19 = out1[19]
                    c1_20 = out1[20]
                    c1_21 = out1[21]
                    c1_22 = out1[22]
                    c1_23 = out1[23]
                    c1_24 = out1[24]
                    c1_25 = out1[25]
                    c1_26 = out1[26]
                    c1_27 = out1[27]
                    c1_28 = out1[28]
                    c1_29 = out1[29]
                    c1_30 = out1[30]
                    c1_31 = out1[31]
                    k0 = 0
                for k in range(k0, kn):
                    q = q0 + k * ld
                    wv = src[q : q + 32]
                    f0 = d0[k]
                    f1 = d1[k]
                    c0_0 = fma(f0, wv[0], c0_0)
                    c1_0 = fma(f1, wv[0], c1_0)
                    c0_1 = fma(f0, wv[1], c0_1)
                    c1_1 = fma(f1, wv[1], c1_1)
                    c0_2 = fma(f0, wv[2], c0_2)
                    c1_2 = fma(f1, wv[2], c1_2)
                    c0_3 = fma(f0, wv[3], c0_3)
                    c1_3 = fma(f1, wv[3], c1_3)
                    c0_4 = fma(f0, wv[4], c0_4)
                    c1_4 = fma(f1, wv[4], c1_4)
                    c0_5 = fma(f0, wv[5], c0_5)
                    c1_5 = fma(f1, wv[5], c1_5)
                    c0_6 = fma(f0, wv[6], c0_6)
                    c1_6 = fma(f1, wv[6], c1_6)
                    c0_7 = fma(f0, wv[7], c0_7)
                    c1_7 = fma(f1, wv[7], c1_7)
                    c0_8 = fma(f0, wv[8], c0_8)
                    c1_8 = fma(f1, wv[8], c1_8)
                    c0_9 = fma(f0, wv[9], c0_9)
                    c1_9 = fma(f1, wv[9], c1_9)
                    c0_10 = fma(f0, wv[10], c0_10)
                    c1_10 = fma(f1, wv[10], c1_10)
                    c0_11 = fma(f0, wv[11], c0_11)
                    c1_11 = fma(f1, wv[11], c1_11)
                    c0_12 = fma(f0, wv[12], c0_12)
                    c1_12 = fma(f1, wv[12], c1_12)
                    c0_13 = fma(f0, wv[13], c0_13)
                    c1_13 = fma(f1, wv[13], c1_13)
                    c0_14 = fma(f0, wv[14], c0_14)
                    c1_14 = fma(f1, wv[14], c1_14)
                    c0_15 = fma(f0, wv[15], c0_15)
                    c1_15 = fma(f1, wv[15], c1_15)
                    c0_16 = fma(f0, wv[16], c0_16)
                    c1_16 = fma(f1, wv[16], c1_16)
                    c0_17 = fma(f0, wv[17], c0_17)
                    c1_17 = fma(f1, wv[17], c1_17)
                    c0_18 = fma(f0, wv[18], c0_18)
                    c1_18 = fma(f1, wv[18], c1_18)
                    c0_19 = fma(f0, wv[19], c0_19)
                    c1_19 = fma(f1, wv[19], c1_19)
                    c0_20 = fma(f0, wv[20], c0_20)
                    c1_20 = fma(f1, wv[20], c1_20)
                    c0_21 = fma(f0, wv[21], c0_21)
                    c1_21 = fma(f1, wv[21], c1_21)
                    c0_22 = fma(f0, wv[22], c0_22)
                    c1_22 = fma(f1, wv[22], c1_22)
                    c0_23 = fma(f0, wv[23], c0_23)
                    c1_23 = fma(f1, wv[23], c1_23)
                    c0_24 = fma(f0, wv[24], c0_24)
                    c1_24 = fma(f1, wv[24], c1_24)
                    c0_25 = fma(f0, wv[25], c0_25)
                    c1_25 = fma(f1, wv[25], c1_25)
                    c0_26 = fma(f0, wv[26], c0_26)
                    c1_26 = fma(f1, wv[26], c1_26)
                    c0_27 = fma(f0, wv[27], c0_27)
                    c1_27 = fma(f1, wv[27], c1_27)
                    c0_28 = fma(f0, wv[28], c0_28)
                    c1_28 = fma(f1, wv[28], c1_28)
                    c0_29 = fma(f0, wv[29], c0_29)
                    c1_29 = fma(f1, wv[29], c1_29)
                    c0_30 = fma(f0, wv[30], c0_30)
                    c1_30 = fma(f1, wv[30], c1_30)
                    c0_31 = fma(f0, wv[31], c0_31)
                    c1_31 = fma(f1, wv[31], c1_31)
                out0[0] = c0_0
                out0[1] = c0_1
                out0[2] = c0_2
                out0[3] = c0_3
                out0[4] = c0_4
                out0[5] = c0_5
                out0[6] = c0_6
                out0[7] = c0_7
                out0[8] = c0_8
                out0[9] = c0_9
                out0[10] = c0_10
                out0[11] = c0_11
                out0[12] = c0_12
                out0[13] = c0_13
                out0[14] = c0_14
                out0[15] = c0_15
                out0[16] = c0_16
                out0[17] = c0_17
                out0[18] = c0_18
                out0[19] = c0_19
                out0[20] = c0_20
                out0[21] = c0_21
                out0[22] = c0_22
                out0[23] = c0_23
                out0[24] = c0_24
                out0[25] = c0_25
                out0[26] = c0_26
                out0[27] = c0_27
                out0[28] = c0_28
                out0[29] = c0_29
                out0[30] = c0_30
                out0[31] = c0_31
                out1[0] = c1_0
                out1[1] = c1_1
                out1[2] = c1_2
                out1[3] = c1_3
                out1[4] = c1_4
                out1[5] = c1_5
                out1[6] = c1_6
                out1[7] = c1_7
                out1[8] = c1_8
                out1[9] = c1_9
                out1[10] = c1_10
                out1[11] = c1_11
                out1[12] = c1_12
                out1[13] = c1_13
                out1[14] = c1_14
                out1[15] = c1_15
                out1[16] = c1_16
                out1[17] = c1_17
                out1[18] = c1_18
                out1[19] = c1_19
                out1[20] = c1_20
                out1[21] = c1_21
                out1[22] = c1_22
                out1[23] = c1_23
                out1[24] = c1_24
                out1[25] = c1_25
                out1[26] = c1_26
                out1[27] = c1_27
                out1[28] = c1_28
                out1[29] = c1_29
                out1[30] = c1_30
                out1[31] = c1_31
    _delta_columns(theta, w0, delta, acc, 0, B, jt, j_hi)
    _scale(acc, a_prev, 0, B, j_lo, j_hi)


@kernel
def pack_weight_gradient(delta, zin, dp, zp, pack_delta, pack_zin, j_lo, j_hi):
    """Copy the operands of the weight-gradient tiles into panel-major order, where asked.

    ``dp[i B + 4 n + r] = delta[n, i + r]`` for every full 4-row panel ``i`` and
    ``zp[j B + 16 n + c] = zin[n, j + c]`` for every full 16-column panel ``j`` with
    ``j_lo <= j < j_hi`` (``j_lo`` a multiple of 16 and ``j_hi`` too or ``M^(l-1)``: a thread
    packs the panels it reads), so each tile reads two contiguous streams instead of B rows M^l
    or M^(l-1) apart. Those strides are powers of two in the common widths (512 float64 =
    4 KiB, 2048 float32 = 8 KiB), where the B rows a tile reads all fall into a few L1 sets
    (docs/perf-log.md, rows 4 and 5: the same aliasing in the forward and delta tiles).
    A copy, so it changes no bits.
    """
    B, m_out = delta.shape
    m_in = zin.shape[1]
    it = m_out - m_out % 4
    jt = min(j_hi, m_in - m_in % 16)
    for n in range(B):
        if pack_delta:
            d = delta[n]
            for i in range(0, it, 4):
                q = i * B + 4 * n
                dq = dp[q : q + 4]
                dr = d[i : i + 4]
                for r in range(4):
                    dq[r] = dr[r]
        if pack_zin:
            x = zin[n]
            for j in range(j_lo, jt, 16):
                q = j * B + 16 * n
                zq = zp[q : q + 16]
                xr = x[j : j + 16]
                for c in range(16):
                    zq[c] = xr[c]


@kernel
def weight_gradient_rows(
    delta, zin, dsrc, zsrc, packed_delta, packed_zin, w0, grad, i_lo, i_hi, j_lo, j_hi
):
    """Rows i_lo <= i < i_hi, columns j_lo <= j < j_hi of dW = delta^T zin into grad; B >= 1.

    ``j_lo`` is a multiple of 16 and ``j_hi`` too or ``M^(l-1)`` (a thread's block of columns
    is whole panels, the columns outside them with the last block).
    The tiles read delta from ``dsrc`` and zin from ``zsrc``: the panel-major copies of
    :func:`pack_weight_gradient` where ``packed_*``, else the arrays themselves, flattened.
    """
    B, m_in = zin.shape
    m_out = delta.shape[1]
    it = i_lo + (i_hi - i_lo) // 4 * 4
    jt = min(j_hi, m_in - m_in % 16)
    sd = 4 if packed_delta else m_out
    sz = 16 if packed_zin else m_in
    for ib in range(i_lo, it, 32):
        ie = min(ib + 32, it)
        for j in range(j_lo, jt, 16):
            q = j * B if packed_zin else j
            zpan = zsrc[q : q + sz * (B - 1) + 16]
            for i in range(ib, ie, 4):
                q = i * B if packed_delta else i
                dpan = dsrc[q : q + sd * (B - 1) + 4]
                dv = dpan[0:4]
                x = zpan[0:16]
                d0 = dv[0]
                d1 = dv[1]
                d2 = dv[2]
                d3 = dv[3]
                c0_0 = d0 * x[0]
                c0_1 = d0 * x[1]
                c0_2 = d0 * x[2]
                c0_3 = d0 * x[3]
                c0_4 = d0 * x[4]
                c0_5 = d0 * x[5]
                c0_6 = d0 * x[6]
                c0_7 = d0 * x[7]
                c0_8 = d0 * x[8]
                c0_9 = d0 * x[9]
                c0_10 = d0 * x[10]
                c0_11 = d0 * x[11]
                c0_12 = d0 * x[12]
                c0_13 = d0 * x[13]
                c0_14 = d0 * x[14]
                c0_15 = d0 * x[15]
                c1_0 = d1 * x[0]
                c1_1 = d1 * x[1]
                c1_2 = d1 * x[2]
                c1_3 = d1 * x[3]
                c1_4 = d1 * x[4]
                c1_5 = d1 * x[5]
                c1_6 = d1 * x[6]
                c1_7 = d1 * x[7]
                c1_8 = d1 * x[8]
                c1_9 = d1 * x[9]
                c1_10 = d1 * x[10]
                c1_11 = d1 * x[11]
                c1_12 = d1 * x[12]
                c1_13 = d1 * x[13]
                c1_14 = d1 * x[14]
                c1_15 = d1 * x[15]
                c2_0 = d2 * x[0]
                c2_1 = d2 * x[1]
                c2_2 = d2 * x[2]
                c2_3 = d2 * x[3]
                c2_4 = d2 * x[4]
                c2_5 = d2 * x[5]
                c2_6 = d2 * x[6]
                c2_7 = d2 * x[7]
                c2_8 = d2 * x[8]
                c2_9 = d2 * x[9]
                c2_10 = d2 * x[10]
                c2_11 = d2 * x[11]
                c2_12 = d2 * x[12]
                c2_13 = d2 * x[13]
                c2_14 = d2 * x[14]
                c2_15 = d2 * x[15]
                c3_0 = d3 * x[0]
                c3_1 = d3 * x[1]
                c3_2 = d3 * x[2]
                c3_3 = d3 * x[3]
                c3_4 = d3 * x[4]
                c3_5 = d3 * x[5]
                c3_6 = d3 * x[6]
                c3_7 = d3 * x[7]
                c3_8 = d3 * x[8]
                c3_9 = d3 * x[9]
                c3_10 = d3 * x[10]
                c3_11 = d3 * x[11]
                c3_12 = d3 * x[12]
                c3_13 = d3 * x[13]
                c3_14 = d3 * x[14]
                c3_15 = d3 * x[15]
                for n in range(1, B):
                    dv = dpan[sd * n : sd * n + 4]
                    x = zpan[sz * n : sz * n + 16]
                    d0 = dv[0]
                    d1 = dv[1]
                    d2 = dv[2]
                    d3 = dv[3]
                    c0_0 = fma(d0, x[0], c0_0)
                    c0_1 = fma(d0, x[1], c0_1)
                    c0_2 = fma(d0, x[2], c0_2)
                    c0_3 = fma(d0, x[3], c0_3)
                    c0_4 = fma(d0, x[4], c0_4)
                    c0_5 = fma(d0, x[5], c0_5)
                    c0_6 = fma(d0, x[6], c0_6)
                    c0_7 = fma(d0, x[7], c0_7)
                    c0_8 = fma(d0, x[8], c0_8)
                    c0_9 = fma(d0, x[9], c0_9)
                    c0_10 = fma(d0, x[10], c0_10)
                    c0_11 = fma(d0, x[11], c0_11)
                    c0_12 = fma(d0, x[12], c0_12)
                    c0_13 = fma(d0, x[13], c0_13)
                    c0_14 = fma(d0, x[14], c0_14)
                    c0_15 = fma(d0, x[15], c0_15)
                    c1_0 = fma(d1, x[0], c1_0)
                    c1_1 = fma(d1, x[1], c1_1)
                    c1_2 = fma(d1, x[2], c1_2)
                    c1_3 = fma(d1, x[3], c1_3)
                    c1_4 = fma(d1, x[4], c1_4)
                    c1_5 = fma(d1, x[5], c1_5)
                    c1_6 = fma(d1, x[6], c1_6)
                    c1_7 = fma(d1, x[7], c1_7)
                    c1_8 = fma(d1, x[8], c1_8)
                    c1_9 = fma(d1, x[9], c1_9)
                    c1_10 = fma(d1, x[10], c1_10)
                    c1_11 = fma(d1, x[11], c1_11)
                    c1_12 = fma(d1, x[12], c1_12)
                    c1_13 = fma(d1, x[13], c1_13)
                    c1_14 = fma(d1, x[14], c1_14)
                    c1_15 = fma(d1, x[15], c1_15)
                    c2_0 = fma(d2, x[0], c2_0)
                    c2_1 = fma(d2, x[1], c2_1)
                    c2_2 = fma(d2, x[2], c2_2)
                    c2_3 = fma(d2, x[3], c2_3)
                    c2_4 = fma(d2, x[4], c2_4)
                    c2_5 = fma(d2, x[5], c2_5)
                    c2_6 = fma(d2, x[6], c2_6)
                    c2_7 = fma(d2, x[7], c2_7)
                    c2_8 = fma(d2, x[8], c2_8)
                    c2_9 = fma(d2, x[9], c2_9)
                    c2_10 = fma(d2, x[10], c2_10)
                    c2_11 = fma(d2, x[11], c2_11)
                    c2_12 = fma(d2, x[12], c2_12)
                    c2_13 = fma(d2, x[13], c2_13)
                    c2_14 = fma(d2, x[14], c2_14)
                    c2_15 = fma(d2, x[15], c2_15)
                    c3_0 = fma(d3, x[0], c3_0)
                    c3_1 = fma(d3, x[1], c3_1)
                    c3_2 = fma(d3, x[2], c3_2)
                    c3_3 = fma(d3, x[3], c3_3)
                    c3_4 = fma(d3, x[4], c3_4)
                    c3_5 = fma(d3, x[5], c3_5)
                    c3_6 = fma(d3, x[6], c3_6)
                    c3_7 = fma(d3, x[7], c3_7)
                    c3_8 = fma(d3, x[8], c3_8)
                    c3_9 = fma(d3, x[9], c3_9)
                    c3_10 = fma(d3, x[10], c3_10)
                    c3_11 = fma(d3, x[11], c3_11)
                    c3_12 = fma(d3, x[12], c3_12)
                    c3_13 = fma(d3, x[13], c3_13)
                    c3_14 = fma(d3, x[14], c3_14)
                    c3_15 = fma(d3, x[15], c3_15)
                p = w0 + i * m_in + j
                g = grad[p : p + 16]
                g[0] = c0_0
                g[1] = c0_1
                g[2] = c0_2
                g[3] = c0_3
                g[4] = c0_4
                g[5] = c0_5
                g[6] = c0_6
                g[7] = c0_7
                g[8] = c0_8
                g[9] = c0_9
                g[10] = c0_10
                g[11] = c0_11
                g[12] = c0_12
                g[13] = c0_13
                g[14] = c0_14
                g[15] = c0_15
                p = w0 + (i + 1) * m_in + j
                g = grad[p : p + 16]
                g[0] = c1_0
                g[1] = c1_1
                g[2] = c1_2
                g[3] = c1_3
                g[4] = c1_4
                g[5] = c1_5
                g[6] = c1_6
                g[7] = c1_7
                g[8] = c1_8
                g[9] = c1_9
                g[10] = c1_10
                g[11] = c1_11
                g[12] = c1_12
                g[13] = c1_13
                g[14] = c1_14
                g[15] = c1_15
                p = w0 + (i + 2) * m_in + j
                g = grad[p : p + 16]
                g[0] = c2_0
                g[1] = c2_1
                g[2] = c2_2
                g[3] = c2_3
                g[4] = c2_4
                g[5] = c2_5
                g[6] = c2_6
                g[7] = c2_7
                g[8] = c2_8
                g[9] = c2_9
                g[10] = c2_10
                g[11] = c2_11
                g[12] = c2_12
                g[13] = c2_13
                g[14] = c2_14
                g[15] = c2_15
                p = w0 + (i + 3) * m_in + j
                g = grad[p : p + 16]
                g[0] = c3_0
                g[1] = c3_1
                g[2] = c3_2
                g[3] = c3_3
                g[4] = c3_4
                g[5] = c3_5
                g[6] = c3_6
                g[7] = c3_7
                g[8] = c3_8
                g[9] = c3_9
                g[10] = c3_10
                g[11] = c3_11
                g[12] = c3_12
                g[13] = c3_13
                g[14] = c3_14
                g[15] = c3_15
        _weight_gradient_columns(delta, zin, w0, grad, ib, ie, jt, j_hi)
    _weight_gradient_last_rows(delta, zin, w0, grad, it, i_hi, j_lo, j_hi)


@kernel
def _weight_gradient_last_rows(delta, zin, w0, grad, i_lo, i_hi, j_lo, j_hi):
    """dW[i, j_lo:j_hi] for the (at most 3) rows i_lo..i_hi that do not fill a tile.

    Each row is summed over samples in order, first sample assigned, as the tiles do, but with
    the samples outside and the contiguous run of j inside, so the loop vectorizes along j; one
    scalar sum per entry (the edge loop's order) waited an FMA latency per sample
    (docs/perf-log.md, row 21).
    """
    B, m_in = zin.shape
    m = j_hi - j_lo
    for i in range(i_lo, i_hi):
        p = w0 + i * m_in + j_lo
        g = grad[p : p + m]
        d = delta[0, i]
        x = zin[0, j_lo:j_hi]
        for j in range(m):
            g[j] = d * x[j]
        for n in range(1, B):
            d = delta[n, i]
            x = zin[n, j_lo:j_hi]
            for j in range(m):
                g[j] = fma(d, x[j], g[j])


@kernel(parallel=True)
def delta_columns_parallel(theta, w0, delta, code_prev, a_prev, acc, scratch, chunk):
    """:func:`delta_columns` over blocks of ``chunk`` columns, each with its own PACK scratch."""
    m_in = a_prev.shape[1]
    for c in prange((m_in + chunk - 1) // chunk):
        wp = scratch[c * PACK : (c + 1) * PACK]
        delta_columns(
            theta, w0, delta, code_prev, a_prev, acc, wp, c * chunk, min(m_in, (c + 1) * chunk)
        )


@kernel(parallel=True)
def weight_gradient_rows_parallel(
    delta, zin, dsrc, zsrc, packed_delta, packed_zin, w0, grad, rows, cols, pack
):
    """:func:`weight_gradient_rows` over a grid of tasks: blocks of ``rows`` rows times blocks of
    ``cols`` columns, rows outer. Where there are several blocks, ``rows`` is a multiple of 4
    and ``cols`` of 16 (one block: ``rows >= M^l`` or ``cols >= M^(l-1)``, any value).

    With ``pack`` (only with one block of rows), each task first copies its own panels of zin
    into ``zsrc`` (:func:`pack_weight_gradient`): the thread that reads a panel writes it, in
    parallel, instead of the main thread writing them all and the other core fetching them
    from there (docs/perf-log.md, row 31). Every entry is summed over the samples in order
    whatever its task, so the bits are the serial call's.
    """
    m_out = delta.shape[1]
    m_in = zin.shape[1]
    n_cols = (m_in + cols - 1) // cols
    for c in prange(((m_out + rows - 1) // rows) * n_cols):
        rb = c // n_cols
        i_lo = rb * rows
        i_hi = min(m_out, i_lo + rows)
        j_lo = (c - rb * n_cols) * cols
        j_hi = min(m_in, j_lo + cols)
        if pack:
            pack_weight_gradient(delta, zin, zsrc, zsrc, False, True, j_lo, j_hi)
        weight_gradient_rows(
            delta, zin, dsrc, zsrc, packed_delta, packed_zin, w0, grad, i_lo, i_hi, j_lo, j_hi
        )
