"""Write the register-tile modules of every instruction-set tier from their tile shapes.

Numba has no vector types, so a register tile is written as scalar accumulators that LLVM's SLP
vectorizer packs into vector registers (see :mod:`fastbp._kernels.forward_tiles`). Writing
them out by hand hard-coded one shape; this script writes them from the shape instead, one
module per tier (``fastbp/_kernels/tiles_<tier>.py``), so the constants of a tier really drive
its loops and a tier's shape is changed here, in :data:`TIERS`, and nowhere else.

Usage, from the repository root::

    python tools/gen_tiles.py          # rewrite the tier modules
    python tools/gen_tiles.py --check  # exit 1 if a committed module differs from its output

``tests/test_tiers.py`` checks that the committed modules are this script's output, byte for
byte. Every tier sums every output element in the same order (sequential over the reduction
index, first term or bias assigned, resumed across the k blocks), so the tiers give the same
bits; only the grouping of elements into tiles and the blocking differ. The sample span
(:data:`SPAN`) is common to all tiers: it decides which samples the forward tiles sum
sequentially and which go through the 8-way split dot product of the edge loop
(``layers._forward_samples``), so it is part of the bits, not of the shape.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: Samples whose forward sums run sequentially in k: the first B - B % SPAN of every call (or
#: thread block). Fixed for all tiers (the tiles' LANES divide it), so the tiers agree bit for
#: bit; the plain tier follows the same split (fastbp._kernels.plain).
SPAN = 32

#: Per tier: the tile shapes and blocking. fwd: ROWS output units x LANES samples, over blocks
#: of FWD_KC inputs; delta: DELTA_SAMPLES samples x COLS columns over blocks of DELTA_KC rows of
#: W; weight gradient: WG_ROWS rows x WG_COLS columns, over blocks of WG_IB rows per panel of
#: zin. The measurements behind each shape: docs/perf-log.md, "Issue 14" (on a loaded 2-core
#: Zen 3, no AVX2 candidate beat the AVX-512 shapes outside the noise in a whole call, so the
#: AVX2 tier keeps them for now; the portable tier's are not measured).
TIERS = {
    "avx512": {
        "title": "AVX-512 (x86-64-v4: 32 zmm registers of 8 float64)",
        "ROWS": 2,
        "LANES": 32,
        "FWD_KC": 64,
        "DELTA_SAMPLES": 2,
        "COLS": 32,
        "DELTA_KC": 64,
        "WG_ROWS": 4,
        "WG_COLS": 16,
        "WG_IB": 32,
    },
    "avx2": {
        "title": "AVX2 + FMA (x86-64-v3: 16 ymm registers of 4 float64)",
        "ROWS": 2,
        "LANES": 32,
        "FWD_KC": 64,
        "DELTA_SAMPLES": 2,
        "COLS": 32,
        "DELTA_KC": 64,
        "WG_ROWS": 4,
        "WG_COLS": 16,
        "WG_IB": 32,
    },
    "portable": {
        "title": "portable (SSE2, NEON and others: 16 or 32 registers of 2 float64)",
        "ROWS": 2,
        "LANES": 16,
        "FWD_KC": 64,
        "DELTA_SAMPLES": 2,
        "COLS": 16,
        "DELTA_KC": 64,
        "WG_ROWS": 4,
        "WG_COLS": 8,
        "WG_IB": 32,
    },
}

#: Thread blocks of rows and columns are multiples of this (fastbp._kernels.workspace): the
#: weight-gradient panels of a block must start on a panel.
BLOCK_ALIGN = 16

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "fastbp" / "_kernels"


def check_shape(tier: str, s: dict) -> None:
    """Raise ValueError when a tier's shape breaks an alignment the drivers rely on."""
    if SPAN % s["LANES"]:
        raise ValueError(f"{tier}: LANES must divide SPAN = {SPAN}")
    if BLOCK_ALIGN % s["WG_ROWS"] or BLOCK_ALIGN % s["WG_COLS"]:
        raise ValueError(f"{tier}: WG_ROWS and WG_COLS must divide {BLOCK_ALIGN}")
    if s["WG_IB"] % s["WG_ROWS"]:
        raise ValueError(f"{tier}: WG_IB must be a multiple of WG_ROWS")
    for key in ("ROWS", "LANES", "FWD_KC", "DELTA_SAMPLES", "COLS", "DELTA_KC"):
        if s[key] < 1:
            raise ValueError(f"{tier}: {key} must be positive")


class Code:
    """Lines of Python source at an indentation level."""

    def __init__(self):
        self.lines: list[str] = []
        self.level = 0

    def __call__(self, *lines: str) -> None:
        for line in lines:
            self.lines.append(("    " * self.level + line) if line else "")

    def indent(self, n: int = 1) -> Code:
        self.level += n
        return self

    def dedent(self, n: int = 1) -> Code:
        self.level -= n
        return self


def forward_rows(c: Code, s: dict) -> None:
    R, L = s["ROWS"], s["LANES"]
    c(
        "@kernel",
        "def forward_rows(theta, w0, b0, code, zin, zinT, a, z, zT, i_lo, i_hi, n0, derivative):",
        '    """Rows i_lo <= i < i_hi of a = zin W^T + b and z = h(a) (see forward_tiles).',
        "",
        "    zin, a and z hold the rows of samples n0 .. n0 + B - 1 (all of them, n0 = 0, in a"
        " serial",
        "    call; one thread's block of samples otherwise), zinT and zT every sample's column.",
        f"    Tiles of {R} rows x {L} samples over the first B - B % SPAN samples, in blocks of"
        f" {s['FWD_KC']}",
        "    inputs; the other samples go through layers._forward_samples.",
        '    """',
        "    B, m_in = zin.shape",
        "    Bt = B - B % SPAN",
        "    if Bt > 0:  # B < SPAN: no sample tile, skip the blocked loops entirely",
    )
    c.indent(2)
    c(
        "for kb in range(0, m_in, FWD_KC):",
        "    kn = min(FWD_KC, m_in - kb)",
        "    xb = zinT[kb : kb + kn]",
        "    for nb in range(n0, n0 + Bt, LANES):",
        "        for i in range(i_lo, i_hi, ROWS):",
        "            if i + ROWS <= i_hi:",
    )
    c.indent(4)
    for r in range(R):
        c(
            f"p = w0 + (i + {r}) * m_in + kb",
            f"wr{r} = theta[p : p + kn]",
            f"acc{r} = zT[i + {r}, nb : nb + LANES]",
        )
    c("if kb == 0:")
    c.indent()
    for r in range(R):
        c(f"bias{r} = theta[b0 + i + {r}]")
        for j in range(L):
            c(f"c{r}_{j} = bias{r}")
    c.dedent()
    c("else:")
    c.indent()
    for r in range(R):
        for j in range(L):
            c(f"c{r}_{j} = acc{r}[{j}]")
    c.dedent()
    c("for k in range(kn):")
    c.indent()
    c("x = xb[k, nb : nb + LANES]")
    for r in range(R):
        c(f"v{r} = wr{r}[k]")
    for j in range(L):
        for r in range(R):
            c(f"c{r}_{j} = fma(v{r}, x[{j}], c{r}_{j})")
    c.dedent()
    for r in range(R):
        for j in range(L):
            c(f"acc{r}[{j}] = c{r}_{j}")
    c.dedent()
    c(
        "else:",
        "    # The rows that do not fill a tile: the same sum per element, one at a time.",
        "    for r in range(i_hi - i):",
        "        p = w0 + (i + r) * m_in + kb",
        "        w = theta[p : p + kn]",
        "        acc = zT[i + r, nb : nb + LANES]",
        "        for s in range(LANES):",
        "            c = theta[b0 + i + r] if kb == 0 else acc[s]",
        "            for k in range(kn):",
        "                c = fma(w[k], xb[k, nb + s], c)",
        "            acc[s] = c",
    )
    c.level = 0
    c(
        "    # Row views indexed from 0, so Numba's negative-index wraparound folds away",
        "    # (docs/perf-log.md, row 29).",
        "    zTb = zT[i_lo:i_hi]",
        "    for n in range(Bt):",
        "        ar = a[n, i_lo:i_hi]",
        "        for i in range(ar.shape[0]):",
        "            ar[i] = zTb[i, n0 + n]",
        "    _forward_samples(theta, w0, b0, zin, a, Bt, B, i_lo, i_hi)",
        "    _activate(code, a, z, zT, i_lo, i_hi, n0, derivative)",
    )


FORWARD_PARALLEL = '''

@kernel(parallel=True)
def forward_rows_parallel(
    theta, w0, b0, code, zin, zinT, a, z, zT, rows, samples, pack, derivative
):
    """:func:`forward_rows` over a grid of tasks: blocks of ``rows`` output rows times blocks of
    ``samples`` samples, samples outer. Where there are several blocks of samples, ``samples``
    is a multiple of SPAN (one block: ``samples >= B``, any value); ``rows`` is any value.

    Each task writes only its own entries of a, z and zT, and every element is summed in the
    same order as in the serial call (a sample block starts on a span, so its sequential sums
    are the serial call's), so results are bitwise identical to it. With ``pack`` (only with
    one block of rows, ``rows >= M^l``), each task first transposes its own samples of zin into
    zinT: the thread that reads them writes them (docs/perf-log.md, row 31).
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


# One twin of the two kernels above per mode, with _activate bound to that mode's epilogue
# (see forward_tiles; docs/perf-log.md, row 30).
forward_rows_gradient, forward_rows_parallel_gradient = twins(
    (forward_rows, forward_rows_parallel),
    {**globals(), "_activate": _activate_gradient},
    "gradient",
)
forward_rows_forward, forward_rows_parallel_forward = twins(
    (forward_rows, forward_rows_parallel), {**globals(), "_activate": _activate_forward}, "forward"
)
'''


def delta_columns(c: Code, s: dict) -> None:
    S, C = s["DELTA_SAMPLES"], s["COLS"]
    c(
        "",
        "",
        "@kernel",
        "def delta_columns(theta, w0, delta, code_prev, a_prev, acc, wp, j_lo, j_hi):",
        '    """Columns j_lo <= j < j_hi of delta^(l-1), over a_prev (see backward_tiles).',
        "",
        f"    Tiles of {S} samples x {C} columns over blocks of {s['DELTA_KC']} rows of W, packed"
        " into wp",
        "    (PACK entries) when B >= 8; the columns past the last tile take the edge loop.",
        '    """',
        "    B, m_out = delta.shape",
        "    m_in = a_prev.shape[1]",
        "    jt = j_lo + (j_hi - j_lo) // COLS * COLS",
        "    packed = B >= 8",
        "    for ib in range(0, m_out, DELTA_KC):",
        "        kn = min(DELTA_KC, m_out - ib)",
        "        for jb in range(j_lo, jt, COLS):",
        "            p = w0 + ib * m_in + jb",
        "            # One copy of the loops for both sources: the tile reads row k of the",
        "            # block at src[q0 + k * ld], packed or not.",
        "            if packed:",
        "                for k in range(kn):",
        "                    # All loads before the stores, so SLP makes them vector moves (theta",
        "                    # and wp may alias).",
        "                    q = p + k * m_in",
        "                    row = theta[q : q + COLS]",
        "                    dst = wp[k * COLS : k * COLS + COLS]",
    )
    c.indent(5)
    for j in range(C):
        c(f"x{j} = row[{j}]")
    for j in range(C):
        c(f"dst[{j}] = x{j}")
    c.dedent(5)
    c(
        "                src = wp",
        "                q0 = 0",
        "                ld = COLS",
        "            else:",
        "                src = theta",
        "                q0 = p",
        "                ld = m_in",
        "            for n in range(0, B, DELTA_SAMPLES):",
        "                # Past the last sample the tile repeats it: the same sums, stored twice.",
    )
    c.indent(4)
    c("n0 = n")
    for r in range(1, S):
        c(f"n{r} = min(n + {r}, B - 1)")
    for r in range(S):
        c(f"d{r} = delta[n{r}, ib : ib + kn]", f"out{r} = acc[n{r}, jb : jb + COLS]")
    c("if ib == 0:")
    c.indent()
    c("wv = src[q0 : q0 + COLS]")
    for r in range(S):
        c(f"e{r} = d{r}[0]")
    for j in range(C):
        for r in range(S):
            c(f"c{r}_{j} = e{r} * wv[{j}]")
    c("k0 = 1")
    c.dedent()
    c("else:")
    c.indent()
    for r in range(S):
        for j in range(C):
            c(f"c{r}_{j} = out{r}[{j}]")
    c("k0 = 0")
    c.dedent()
    c("for k in range(k0, kn):")
    c.indent()
    c("q = q0 + k * ld", "wv = src[q : q + COLS]")
    for r in range(S):
        c(f"f{r} = d{r}[k]")
    for j in range(C):
        for r in range(S):
            c(f"c{r}_{j} = fma(f{r}, wv[{j}], c{r}_{j})")
    c.dedent()
    for r in range(S):
        for j in range(C):
            c(f"out{r}[{j}] = c{r}_{j}")
    c.level = 0
    c(
        "    _delta_columns(theta, w0, delta, acc, 0, B, jt, j_hi)",
        "    _scale(acc, a_prev, 0, B, j_lo, j_hi)",
    )


PACK_WEIGHT_GRADIENT = '''

@kernel
def pack_weight_gradient(delta, zin, dp, zp, pack_delta, pack_zin, j_lo, j_hi):
    """Copy the operands of the weight-gradient tiles into panel-major order, where asked.

    ``dp[i B + WG_ROWS n + r] = delta[n, i + r]`` for every full panel of WG_ROWS rows ``i``
    and ``zp[j B + WG_COLS n + c] = zin[n, j + c]`` for every full panel of WG_COLS columns
    ``j`` with ``j_lo <= j < j_hi`` (``j_lo`` a multiple of WG_COLS and ``j_hi`` too or
    ``M^(l-1)``: a thread packs the panels it reads), so each tile reads two contiguous streams
    instead of B rows M^l or M^(l-1) apart (see backward_tiles). A copy: it changes no bits.
    """
    B, m_out = delta.shape
    m_in = zin.shape[1]
    it = m_out - m_out % WG_ROWS
    jt = min(j_hi, m_in - m_in % WG_COLS)
    for n in range(B):
        if pack_delta:
            d = delta[n]
            for i in range(0, it, WG_ROWS):
                q = i * B + WG_ROWS * n
                dq = dp[q : q + WG_ROWS]
                dr = d[i : i + WG_ROWS]
                for r in range(WG_ROWS):
                    dq[r] = dr[r]
        if pack_zin:
            x = zin[n]
            for j in range(j_lo, jt, WG_COLS):
                q = j * B + WG_COLS * n
                zq = zp[q : q + WG_COLS]
                xr = x[j : j + WG_COLS]
                for c in range(WG_COLS):
                    zq[c] = xr[c]
'''


def weight_gradient_rows(c: Code, s: dict) -> None:
    R, C = s["WG_ROWS"], s["WG_COLS"]
    c(
        "",
        "",
        "@kernel",
        "def weight_gradient_rows(",
        "    delta, zin, dsrc, zsrc, packed_delta, packed_zin, w0, grad, i_lo, i_hi, j_lo, j_hi",
        "):",
        '    """Rows i_lo <= i < i_hi, columns j_lo <= j < j_hi of dW = delta^T zin into grad;'
        " B >= 1.",
        "",
        f"    Tiles of {R} rows x {C} columns, summed over the samples in order. ``j_lo`` is a"
        " multiple",
        "    of WG_COLS and ``j_hi`` too or ``M^(l-1)`` (a thread's block of columns is whole"
        " panels).",
        "    The tiles read delta from ``dsrc`` and zin from ``zsrc``: the panel-major copies of",
        "    :func:`pack_weight_gradient` where ``packed_*``, else the arrays themselves,"
        " flattened.",
        '    """',
        "    B, m_in = zin.shape",
        "    m_out = delta.shape[1]",
        "    it = i_lo + (i_hi - i_lo) // WG_ROWS * WG_ROWS",
        "    jt = min(j_hi, m_in - m_in % WG_COLS)",
        "    sd = WG_ROWS if packed_delta else m_out",
        "    sz = WG_COLS if packed_zin else m_in",
        "    for ib in range(i_lo, it, WG_IB):",
        "        ie = min(ib + WG_IB, it)",
        "        for j in range(j_lo, jt, WG_COLS):",
        "            q = j * B if packed_zin else j",
        "            zpan = zsrc[q : q + sz * (B - 1) + WG_COLS]",
        "            for i in range(ib, ie, WG_ROWS):",
        "                q = i * B if packed_delta else i",
        "                dpan = dsrc[q : q + sd * (B - 1) + WG_ROWS]",
        "                dv = dpan[0:WG_ROWS]",
        "                x = zpan[0:WG_COLS]",
    )
    c.indent(4)
    for r in range(R):
        c(f"d{r} = dv[{r}]")
    for r in range(R):
        for j in range(C):
            c(f"c{r}_{j} = d{r} * x[{j}]")
    c("for n in range(1, B):")
    c.indent()
    c("dv = dpan[sd * n : sd * n + WG_ROWS]", "x = zpan[sz * n : sz * n + WG_COLS]")
    for r in range(R):
        c(f"d{r} = dv[{r}]")
    for r in range(R):
        for j in range(C):
            c(f"c{r}_{j} = fma(d{r}, x[{j}], c{r}_{j})")
    c.dedent()
    for r in range(R):
        c(f"p = w0 + (i + {r}) * m_in + j", "g = grad[p : p + WG_COLS]")
        for j in range(C):
            c(f"g[{j}] = c{r}_{j}")
    c.level = 0
    c(
        "        _weight_gradient_columns(delta, zin, w0, grad, ib, ie, jt, j_hi)",
        "    _weight_gradient_last_rows(delta, zin, w0, grad, it, i_hi, j_lo, j_hi)",
    )


BACKWARD_REST = '''

@kernel
def _weight_gradient_last_rows(delta, zin, w0, grad, i_lo, i_hi, j_lo, j_hi):
    """dW[i, j_lo:j_hi] for the (fewer than WG_ROWS) rows i_lo..i_hi that do not fill a tile.

    Each row is summed over samples in order, first sample assigned, as the tiles do, but with
    the samples outside and the contiguous run of j inside, so the loop vectorizes along j
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
    ``cols`` columns, rows outer. Where there are several blocks, ``rows`` is a multiple of
    WG_ROWS and ``cols`` of WG_COLS (one block: ``rows >= M^l`` or ``cols >= M^(l-1)``).

    With ``pack`` (only with one block of rows), each task first copies its own panels of zin
    into ``zsrc`` (:func:`pack_weight_gradient`; docs/perf-log.md, row 31). Every entry is
    summed over the samples in order whatever its task, so the bits are the serial call's.
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
'''


def module_source(tier: str) -> str:
    """The source text of ``fastbp/_kernels/tiles_<tier>.py``."""
    s = TIERS[tier]
    check_shape(tier, s)
    c = Code()
    c(
        f'"""Register tiles of the {s["title"]} tier.',
        "",
        "GENERATED by tools/gen_tiles.py from its TIERS table: do not edit; change the shape there",
        "and rerun it (tests/test_tiers.py checks this file is its output). The loop nests and",
        "their numerics are described in fastbp._kernels.forward_tiles and",
        "fastbp._kernels.backward_tiles, which re-export the host tier's functions.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from numba import prange",
        "",
        "from .._jit import fma, kernel, twins",
        "from .layers import (",
        "    _activate,",
        "    _activate_forward,",
        "    _activate_gradient,",
        "    _delta_columns,",
        "    _forward_samples,",
        "    _scale,",
        "    _weight_gradient_columns,",
        ")",
        "",
        f'TIER = "{tier}"',
        "#: Samples summed sequentially per call or thread block: the first B - B % SPAN.",
        f"SPAN = {SPAN}",
        "#: Forward tile: ROWS output units x LANES samples, over blocks of FWD_KC inputs.",
        f"ROWS = {s['ROWS']}",
        f"LANES = {s['LANES']}",
        f"FWD_KC = {s['FWD_KC']}",
        "#: Delta tile: DELTA_SAMPLES samples x COLS columns, over blocks of DELTA_KC rows of W",
        "#: packed into a contiguous (DELTA_KC, COLS) scratch of PACK entries.",
        f"DELTA_SAMPLES = {s['DELTA_SAMPLES']}",
        f"COLS = {s['COLS']}",
        f"DELTA_KC = {s['DELTA_KC']}",
        "PACK = DELTA_KC * COLS",
        "#: Weight-gradient tile: WG_ROWS rows x WG_COLS columns, WG_IB rows per panel of zin.",
        f"WG_ROWS = {s['WG_ROWS']}",
        f"WG_COLS = {s['WG_COLS']}",
        f"WG_IB = {s['WG_IB']}",
        "",
        "",
    )
    forward_rows(c, s)
    text = "\n".join(c.lines) + "\n" + FORWARD_PARALLEL
    c = Code()
    delta_columns(c, s)
    text += "\n".join(c.lines) + "\n" + PACK_WEIGHT_GRADIENT
    c = Code()
    weight_gradient_rows(c, s)
    text += "\n".join(c.lines) + "\n" + BACKWARD_REST
    return text


def module_path(tier: str) -> Path:
    return OUT_DIR / f"tiles_{tier}.py"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    stale = []
    for tier in TIERS:
        text = module_source(tier)
        path = module_path(tier)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
        else:
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{path} differs from tools/gen_tiles.py's output", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
