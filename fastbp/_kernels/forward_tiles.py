"""Register-tiled forward loop nest: a = zin W^T + b and z = h(a) for one layer.

The kernels are generated (``tools/gen_tiles.py``) into one module per instruction-set tier,
``tiles_<tier>.py``; this module re-exports those of the tier chosen at import
(:data:`fastbp._tiers.TIER`), so callers import them from here whatever the CPU.

Numba has no vector types: a tile of ROWS output units x LANES samples is ROWS * LANES scalar
accumulators that LLVM's SLP vectorizer packs into vector registers (SLP is enabled for
fastbp's kernels only, see :mod:`fastbp._jit`). Per step of the reduction index k the tile
broadcasts ROWS weights W[i, k] and loads the contiguous run zinT[k, n..n+LANES-1] of the
transposed input once for all rows. W is row-major (M^l, M^(l-1)), so the lanes must run along
samples: the previous layer's epilogue writes z transposed too. The k loop is blocked by FWD_KC
so the FWD_KC x LANES block of zinT stays in L1 while every row tile streams over it; partial
sums wait in zT (rewritten with h at the end).

The shapes per tier: AVX-512 2 x 32 (8 zmm accumulators in float64; a 4 x 8 tile made SLP
gather the 4 weights from 4 rows, 1 x 32 is load-bound, 4 x 32 was no better: docs/perf-log.md,
rows 1, 3 and 11a), AVX2 sized to 16 ymm registers (docs/perf-log.md, "Issue 14").

Each a[n, i] is summed as b_i + sum_k W[i, k] zin[n, k] in increasing k, whichever tier,
thread, tile or remainder row computes it, for the first B - B % SPAN samples of a call (or of
a thread's block of samples, which starts on a span); the other samples (all of them when
B < SPAN) go through the lane-split dot product of
:func:`fastbp._kernels.layers._forward_samples`. SPAN is the same on every tier, so every tier
gives the same bits.
"""

from __future__ import annotations

from .._tiers import TIER

# Only the chosen tier's module is imported (and so compiled).
if TIER == "avx512":
    from .tiles_avx512 import (
        FWD_KC,
        LANES,
        ROWS,
        SPAN,
        forward_rows,
        forward_rows_forward,
        forward_rows_gradient,
        forward_rows_parallel,
        forward_rows_parallel_forward,
        forward_rows_parallel_gradient,
    )
elif TIER == "avx2":
    from .tiles_avx2 import (
        FWD_KC,
        LANES,
        ROWS,
        SPAN,
        forward_rows,
        forward_rows_forward,
        forward_rows_gradient,
        forward_rows_parallel,
        forward_rows_parallel_forward,
        forward_rows_parallel_gradient,
    )
else:
    from .tiles_portable import (
        FWD_KC,
        LANES,
        ROWS,
        SPAN,
        forward_rows,
        forward_rows_forward,
        forward_rows_gradient,
        forward_rows_parallel,
        forward_rows_parallel_forward,
        forward_rows_parallel_gradient,
    )

__all__ = [
    "FWD_KC",
    "LANES",
    "ROWS",
    "SPAN",
    "TIER",
    "forward_rows",
    "forward_rows_forward",
    "forward_rows_gradient",
    "forward_rows_parallel",
    "forward_rows_parallel_forward",
    "forward_rows_parallel_gradient",
]
