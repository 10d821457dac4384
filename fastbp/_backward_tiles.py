"""Register-tiled backward loop nests: the delta recursion and the weight gradient.

Like :mod:`fastbp._forward_tiles`, each tile is written out as scalar accumulators that LLVM's
SLP vectorizer packs into vector registers; no operand needs packing, because here the lanes
run along a contiguous row:

- delta^(l-1) = (delta^l W^l) * h'(a^(l-1)): a tile of 4 samples x 8 columns j accumulates
  delta[n, i] (broadcast) times the contiguous run W[i, j..j+7] over i; samples that do not
  fill a tile (all of them when B < 4, e.g. B = 1) use a 1 x 16 tile, still vector-wide.
- dW^l = delta^l^T z^(l-1): a tile of 4 rows i x 8 columns j accumulates delta[n, i]
  (broadcast) times the contiguous run zin[n, j..j+7] over samples n, then stores the finished
  tile once: the gradient is written exactly once per call, never read back.

Every sum runs sequentially over its reduction index with the first term assigned, the same
order as the edge loops of :mod:`fastbp._layers`, so results do not depend on tiling or threads.
"""

from __future__ import annotations

from numba import prange

from ._jit import kernel
from ._layers import _delta_columns, _scale, _weight_gradient_columns

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
    for ib in range(0, m_out, 64):
        kn = min(64, m_out - ib)
        for jb in range(j_lo, jt, 32):
            p = w0 + ib * m_in + jb
            packed = B >= 8
            if packed:
                for k in range(kn):
                    for s in range(32):
                        wp[k * 32 + s] = theta[p + k * m_in + s]
            for n in range(B):
                d = delta[n, ib : ib + kn]
                out = acc[n, jb : jb + 32]
                if ib == 0:
                    wv = wp[0:32] if packed else theta[p : p + 32]
                    d0 = d[0]
                    c0 = d0 * wv[0]
                    c1 = d0 * wv[1]
                    c2 = d0 * wv[2]
                    c3 = d0 * wv[3]
                    c4 = d0 * wv[4]
                    c5 = d0 * wv[5]
                    c6 = d0 * wv[6]
                    c7 = d0 * wv[7]
                    c8 = d0 * wv[8]
                    c9 = d0 * wv[9]
                    c10 = d0 * wv[10]
                    c11 = d0 * wv[11]
                    c12 = d0 * wv[12]
                    c13 = d0 * wv[13]
                    c14 = d0 * wv[14]
                    c15 = d0 * wv[15]
                    c16 = d0 * wv[16]
                    c17 = d0 * wv[17]
                    c18 = d0 * wv[18]
                    c19 = d0 * wv[19]
                    c20 = d0 * wv[20]
                    c21 = d0 * wv[21]
                    c22 = d0 * wv[22]
                    c23 = d0 * wv[23]
                    c24 = d0 * wv[24]
                    c25 = d0 * wv[25]
                    c26 = d0 * wv[26]
                    c27 = d0 * wv[27]
                    c28 = d0 * wv[28]
                    c29 = d0 * wv[29]
                    c30 = d0 * wv[30]
                    c31 = d0 * wv[31]
                    k0 = 1
                else:
                    c0 = out[0]
                    c1 = out[1]
                    c2 = out[2]
                    c3 = out[3]
                    c4 = out[4]
                    c5 = out[5]
                    c6 = out[6]
                    c7 = out[7]
                    c8 = out[8]
                    c9 = out[9]
                    c10 = out[10]
                    c11 = out[11]
                    c12 = out[12]
                    c13 = out[13]
                    c14 = out[14]
                    c15 = out[15]
                    c16 = out[16]
                    c17 = out[17]
                    c18 = out[18]
                    c19 = out[19]
                    c20 = out[20]
                    c21 = out[21]
                    c22 = out[22]
                    c23 = out[23]
                    c24 = out[24]
                    c25 = out[25]
                    c26 = out[26]
                    c27 = out[27]
                    c28 = out[28]
                    c29 = out[29]
                    c30 = out[30]
                    c31 = out[31]
                    k0 = 0
                for k in range(k0, kn):
                    if packed:
                        wv = wp[k * 32 : k * 32 + 32]
                    else:
                        q = p + k * m_in
                        wv = theta[q : q + 32]
                    dk = d[k]
                    c0 += dk * wv[0]
                    c1 += dk * wv[1]
                    c2 += dk * wv[2]
                    c3 += dk * wv[3]
                    c4 += dk * wv[4]
                    c5 += dk * wv[5]
                    c6 += dk * wv[6]
                    c7 += dk * wv[7]
                    c8 += dk * wv[8]
                    c9 += dk * wv[9]
                    c10 += dk * wv[10]
                    c11 += dk * wv[11]
                    c12 += dk * wv[12]
                    c13 += dk * wv[13]
                    c14 += dk * wv[14]
                    c15 += dk * wv[15]
                    c16 += dk * wv[16]
                    c17 += dk * wv[17]
                    c18 += dk * wv[18]
                    c19 += dk * wv[19]
                    c20 += dk * wv[20]
                    c21 += dk * wv[21]
                    c22 += dk * wv[22]
                    c23 += dk * wv[23]
                    c24 += dk * wv[24]
                    c25 += dk * wv[25]
                    c26 += dk * wv[26]
                    c27 += dk * wv[27]
                    c28 += dk * wv[28]
                    c29 += dk * wv[29]
                    c30 += dk * wv[30]
                    c31 += dk * wv[31]
                out[0] = c0
                out[1] = c1
                out[2] = c2
                out[3] = c3
                out[4] = c4
                out[5] = c5
                out[6] = c6
                out[7] = c7
                out[8] = c8
                out[9] = c9
                out[10] = c10
                out[11] = c11
                out[12] = c12
                out[13] = c13
                out[14] = c14
                out[15] = c15
                out[16] = c16
                out[17] = c17
                out[18] = c18
                out[19] = c19
                out[20] = c20
                out[21] = c21
                out[22] = c22
                out[23] = c23
                out[24] = c24
                out[25] = c25
                out[26] = c26
                out[27] = c27
                out[28] = c28
                out[29] = c29
                out[30] = c30
                out[31] = c31
    _delta_columns(theta, w0, delta, acc, 0, B, jt, j_hi)
    _scale(acc, a_prev, 0, B, j_lo, j_hi)


@kernel
def weight_gradient_rows(delta, zin, w0, grad, i_lo, i_hi):
    """Rows i_lo <= i < i_hi of dW = delta^T zin into grad; needs B >= 1."""
    B, m_in = zin.shape
    it = i_lo + (i_hi - i_lo) // 4 * 4
    jt = m_in - m_in % 16
    for ib in range(i_lo, it, 32):
        ie = min(ib + 32, it)
        for j in range(0, jt, 16):
            for i in range(ib, ie, 4):
                dv = delta[0, i : i + 4]
                x = zin[0, j : j + 16]
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
                    dv = delta[n, i : i + 4]
                    x = zin[n, j : j + 16]
                    d0 = dv[0]
                    d1 = dv[1]
                    d2 = dv[2]
                    d3 = dv[3]
                    c0_0 += d0 * x[0]
                    c0_1 += d0 * x[1]
                    c0_2 += d0 * x[2]
                    c0_3 += d0 * x[3]
                    c0_4 += d0 * x[4]
                    c0_5 += d0 * x[5]
                    c0_6 += d0 * x[6]
                    c0_7 += d0 * x[7]
                    c0_8 += d0 * x[8]
                    c0_9 += d0 * x[9]
                    c0_10 += d0 * x[10]
                    c0_11 += d0 * x[11]
                    c0_12 += d0 * x[12]
                    c0_13 += d0 * x[13]
                    c0_14 += d0 * x[14]
                    c0_15 += d0 * x[15]
                    c1_0 += d1 * x[0]
                    c1_1 += d1 * x[1]
                    c1_2 += d1 * x[2]
                    c1_3 += d1 * x[3]
                    c1_4 += d1 * x[4]
                    c1_5 += d1 * x[5]
                    c1_6 += d1 * x[6]
                    c1_7 += d1 * x[7]
                    c1_8 += d1 * x[8]
                    c1_9 += d1 * x[9]
                    c1_10 += d1 * x[10]
                    c1_11 += d1 * x[11]
                    c1_12 += d1 * x[12]
                    c1_13 += d1 * x[13]
                    c1_14 += d1 * x[14]
                    c1_15 += d1 * x[15]
                    c2_0 += d2 * x[0]
                    c2_1 += d2 * x[1]
                    c2_2 += d2 * x[2]
                    c2_3 += d2 * x[3]
                    c2_4 += d2 * x[4]
                    c2_5 += d2 * x[5]
                    c2_6 += d2 * x[6]
                    c2_7 += d2 * x[7]
                    c2_8 += d2 * x[8]
                    c2_9 += d2 * x[9]
                    c2_10 += d2 * x[10]
                    c2_11 += d2 * x[11]
                    c2_12 += d2 * x[12]
                    c2_13 += d2 * x[13]
                    c2_14 += d2 * x[14]
                    c2_15 += d2 * x[15]
                    c3_0 += d3 * x[0]
                    c3_1 += d3 * x[1]
                    c3_2 += d3 * x[2]
                    c3_3 += d3 * x[3]
                    c3_4 += d3 * x[4]
                    c3_5 += d3 * x[5]
                    c3_6 += d3 * x[6]
                    c3_7 += d3 * x[7]
                    c3_8 += d3 * x[8]
                    c3_9 += d3 * x[9]
                    c3_10 += d3 * x[10]
                    c3_11 += d3 * x[11]
                    c3_12 += d3 * x[12]
                    c3_13 += d3 * x[13]
                    c3_14 += d3 * x[14]
                    c3_15 += d3 * x[15]
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
        _weight_gradient_columns(delta, zin, w0, grad, ib, ie, jt)
    _weight_gradient_columns(delta, zin, w0, grad, it, i_hi, 0)


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
def weight_gradient_rows_parallel(delta, zin, w0, grad, chunk):
    """:func:`weight_gradient_rows` over blocks of ``chunk`` rows (a multiple of ROWS)."""
    m_out = delta.shape[1]
    for c in prange((m_out + chunk - 1) // chunk):
        weight_gradient_rows(delta, zin, w0, grad, c * chunk, min(m_out, (c + 1) * chunk))
