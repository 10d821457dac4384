"""Register-tiled backward loop nests: the delta recursion and the weight gradient.

Generated per instruction-set tier like :mod:`fastbp._kernels.forward_tiles`
(``tools/gen_tiles.py`` writes ``tiles_<tier>.py``); this module re-exports the chosen tier's
kernels. The shapes below are the AVX-512 tier's (DELTA_SAMPLES x COLS, DELTA_KC, WG_ROWS x
WG_COLS; the AVX2 tier's fit 16 ymm registers: docs/perf-log.md, "Issue 14"). Each tile is
written out as scalar accumulators that LLVM's SLP vectorizer packs into vector registers; no
operand needs packing, because here the lanes run along a contiguous row:

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

from .._tiers import TIER

# Only the chosen tier's module is imported (and so compiled).
if TIER == "avx512":
    from .tiles_avx512 import (
        COLS,
        DELTA_KC,
        DELTA_SAMPLES,
        PACK,
        WG_COLS,
        WG_IB,
        WG_ROWS,
        delta_columns,
        delta_columns_parallel,
        pack_weight_gradient,
        weight_gradient_rows,
        weight_gradient_rows_parallel,
    )
elif TIER == "avx2":
    from .tiles_avx2 import (
        COLS,
        DELTA_KC,
        DELTA_SAMPLES,
        PACK,
        WG_COLS,
        WG_IB,
        WG_ROWS,
        delta_columns,
        delta_columns_parallel,
        pack_weight_gradient,
        weight_gradient_rows,
        weight_gradient_rows_parallel,
    )
else:
    from .tiles_portable import (
        COLS,
        DELTA_KC,
        DELTA_SAMPLES,
        PACK,
        WG_COLS,
        WG_IB,
        WG_ROWS,
        delta_columns,
        delta_columns_parallel,
        pack_weight_gradient,
        weight_gradient_rows,
        weight_gradient_rows_parallel,
    )

__all__ = [
    "COLS",
    "DELTA_KC",
    "DELTA_SAMPLES",
    "PACK",
    "WG_COLS",
    "WG_IB",
    "WG_ROWS",
    "delta_columns",
    "delta_columns_parallel",
    "pack_weight_gradient",
    "weight_gradient_rows",
    "weight_gradient_rows_parallel",
]
