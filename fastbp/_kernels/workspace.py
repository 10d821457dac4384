"""Workspace layout: buffer lengths, block views, strides and thread blocks of the drivers.

The plain-Python helpers allocate (once, in the caller); the ``@kernel`` helpers only slice.
:mod:`fastbp.kernels` re-exports the public names (``make_workspace``, ``workspace_lengths``,
``uses_threads``, ``PARALLEL_MIN_WORK``).
"""

from __future__ import annotations

import numpy as np

from .._jit import kernel
from .backward_tiles import PACK, WG_COLS, WG_ROWS
from .simd import LANES_F32

#: A layer product with fewer multiply-adds (B * M^(l-1) * M^l) than this runs serially: waking
#: the worker threads costs several microseconds, more than the second core saves below it.
PARALLEL_MIN_WORK = 1 << 19

# Thread blocks are multiples of this many rows or columns: a multiple of the weight-gradient
# panels (WG_ROWS rows, WG_COLS columns, every tier's divide it: tools/gen_tiles.py), so a
# block's panels start where the packed copies' panels do. Every element is summed in the same
# order whichever block computes it (the forward and delta sums run over k in order in a tile
# and in its remainder alike).
_BLOCK_ALIGN = 16
assert _BLOCK_ALIGN % WG_ROWS == 0 and _BLOCK_ALIGN % WG_COLS == 0
_TASKS = 8

# --------------------------------------------------------------------------------------------
# The sample-blocked gradient (fastbp._kernels.blocked): block sizes and buffer lengths.
# --------------------------------------------------------------------------------------------
#: The samples of a block are a multiple of this: the forward tiles' granule (the last
#: B % SPAN samples of the batch take the edge loop, as in the whole-batch drivers).
SPAN = 32
#: Bytes of activations one block may hold (a, z and delta of every layer), about half of a
#: 512 KiB L2 so that the weights' panels stream beside them.
BLOCK_BYTES = 256 * 1024
#: Widest panel of the blocked tiles over the dtypes (2 vectors of float32): the workspace
#: is sized with it.
PAD = 2 * LANES_F32


def block_samples(sizes, batch: int, itemsize: int) -> int:
    """Samples per block for ``batch`` samples of ``sizes`` (a multiple of 32, at least 32, at
    most the batch rounded up to 32): the block's activations (a, z and delta of every layer)
    within :data:`BLOCK_BYTES`, or within half the parameters' bytes where those are larger,
    since every block streams the packed weights and the gradient once (a [2048] * 3 network
    at B = 64 runs as one block, not two)."""
    sizes = [int(m) for m in sizes]
    per_sample = itemsize * (sizes[0] + 2 * sum(sizes[1:]))
    params = sum(m_out * (m_in + 1) for m_in, m_out in zip(sizes, sizes[1:]))
    budget = max(BLOCK_BYTES, params * itemsize // 2)
    nb = max(SPAN, budget // max(per_sample, 1) // SPAN * SPAN)
    return min(nb, (batch + SPAN - 1) // SPAN * SPAN)


def packed_length(sizes, batch: int) -> int:
    """Entries of ``tmp`` the blocked driver needs for up to ``batch`` samples: the forward
    panels (W^T and b, outputs padded to :data:`PAD`), the delta panels (W, inputs padded),
    2 (L + 1) maxima, and a block's packed input of the widest layer (any dtype)."""
    sizes = [int(m) for m in sizes]
    total = 0
    L = len(sizes) - 1
    for l in range(1, L + 1):
        m_in, m_out = sizes[l - 1], sizes[l]
        total += _pad(m_out) * (m_in + 1)
        if l > 1:
            total += _pad(m_in) * m_out
    nb = min(block_samples(sizes, batch, 4), max(int(batch), 0))
    return total + 2 * (L + 1) + nb * _pad(max(sizes[:-1]))


def block_units(sizes, batch: int) -> int:
    """Entries of A (and of Z) the blocked driver needs for up to ``batch`` samples: a block's
    rows of every layer, ``_ld`` apart (at most ``batch`` samples per block)."""
    sizes = [int(m) for m in sizes]
    nb = min(block_samples(sizes, batch, 4), max(int(batch), 0))
    return nb * sum(m + 8 if m % 128 == 0 else m for m in sizes[1:])


def _pad(m: int) -> int:
    return (m + PAD - 1) // PAD * PAD


@kernel
def _ld(B):
    """Row stride of the transposed blocks in Z: B rounded up to 8, plus 8.

    A power-of-two stride (B = 256 in float64 is 2 KiB) maps the rows a tile reads to a few
    L1 sets, and the forward nest ran at half speed from the conflict misses.
    """
    return (B + 7) // 8 * 8 + 8


@kernel
def _block(buf, B, u0, m):
    """The (B, m) row-major block of a flat workspace buffer that starts at B * u0."""
    return buf[B * u0 : B * (u0 + m)].reshape((B, m))


@kernel
def _thread_block(m, work):
    """Rows or columns per parallel task for a layer product, or 0 to run it serially.

    Up to _TASKS blocks, whatever the thread count: numba.get_num_threads() inside a kernel
    makes it impossible to cache on disk, and Numba's static schedule hands each thread a
    contiguous run of blocks anyway.
    """
    if work < PARALLEL_MIN_WORK or m < 2 * _BLOCK_ALIGN:
        return 0
    chunk = (m + _TASKS - 1) // _TASKS
    return (chunk + _BLOCK_ALIGN - 1) // _BLOCK_ALIGN * _BLOCK_ALIGN


#: A layer's forward product is split over blocks of samples (each task all rows) from this
#: batch on, and over blocks of rows below it (docs/perf-log.md, row 31).
_SAMPLE_SPLIT_MIN_B = 256
#: Samples per task in that split: one forward tile's worth.
_SAMPLE_BLOCK = 32


@kernel
def _sample_block(B, work):
    """Samples per parallel task when a layer's forward product is split over samples, or 0.

    Each task then runs the tiles of all rows for its own samples: the transposed input a task
    reads was written by the same thread (by its own copy of X^T in the first layer; after
    that by its own epilogue, when the previous layer was split the same way, under Numba's
    static schedule), where a split over rows makes every thread read all of it, half of it
    from the other core's cache. Needs enough samples for a task per thread: B >= 256
    gives 8 or more tasks.
    """
    if work < PARALLEL_MIN_WORK or B < _SAMPLE_SPLIT_MIN_B:
        return 0
    return _SAMPLE_BLOCK


@kernel
def _column_block(m_in, m_out, work):
    """Columns per parallel task when a weight gradient is split over columns, or 0.

    For a layer with at least twice as many inputs as outputs, such as the first layer of
    [784, 128, 10], when the driver packs zin: zin (B x M^(l-1)) is then the larger operand,
    and each task packs the panels of zin it reads itself, where after a split over rows every
    task reads all the panels that the main thread packed.
    One 16-column block per task up to 64 blocks (balanced to 1/49 at 784 inputs); 16 is a
    multiple of the tier's WG_COLS, so a task's columns are whole panels.
    """
    if work < PARALLEL_MIN_WORK or m_in < 2 * m_out or m_in < 2 * _BLOCK_ALIGN:
        return 0
    panels = (m_in + _BLOCK_ALIGN - 1) // _BLOCK_ALIGN
    return _BLOCK_ALIGN * ((panels + 63) // 64)


def workspace_lengths(sizes, batch: int) -> tuple[int, int]:
    """Lengths ``(len(A) == len(Z), len(tmp))`` needed for ``batch`` samples of ``sizes``.

    ``len(Z) = B U + ld (U + M^0)`` with ``U = sum(sizes[1:])`` and ``ld = 8 ceil(B / 8) + 8``:
    Z also holds the transposed input and activations the forward tiles read. A needs only
    ``B U`` but gets the same length, so one number describes both (as before the tiles).
    Both are at least what the sample-blocked gradient's block buffers take
    (:func:`fastbp._kernels.blocked.block_units`, never more than ``B (U + 8 L)``).

    ``len(tmp)``: the larger of ``max(sizes) + 8 PACK`` (the packed weight blocks of the
    whole-batch delta tiles) and the sample-blocked gradient's packed weights, maxima and one
    block's packed input (:func:`fastbp._kernels.blocked.packed_length`, about twice the
    number of weights).
    """
    sizes = [int(m) for m in sizes]
    batch = int(batch)
    units = sum(sizes[1:])
    ld = (batch + 7) // 8 * 8 + 8
    n_units = max(batch * units + ld * (units + sizes[0]), block_units(sizes, batch))
    return n_units, max(max(sizes) + _TASKS * PACK, packed_length(sizes, batch))


def make_workspace(sizes, batch: int, dtype=np.float64):
    """Allocate the buffers ``(A, Z, tmp)`` the drivers need for up to ``batch`` samples.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[M^0, ..., M^L]``.
    batch : int
        Largest number of samples per call.
    dtype : numpy dtype
        The network's dtype (float32 or float64).

    Returns
    -------
    A, Z, tmp : ndarray
        Zero-filled 1-D buffers of the lengths given by :func:`workspace_lengths`.
    """
    n_units, n_tmp = workspace_lengths(sizes, batch)
    return (
        np.zeros(n_units, dtype=dtype),
        np.zeros(n_units, dtype=dtype),
        np.zeros(n_tmp, dtype=dtype),
    )


def uses_threads(sizes, batch: int) -> bool:
    """Whether a driver call for ``batch`` samples of ``sizes`` may run ``prange`` loops.

    True when some layer product reaches :data:`PARALLEL_MIN_WORK` multiply-adds (whatever
    the thread count: a parallel region goes through Numba's thread pool even with one thread).
    The Python layer holds :data:`fastbp._jit.PARALLEL_LOCK` around such calls.
    """
    batch = int(batch)
    return any(batch * m_in * m_out >= PARALLEL_MIN_WORK for m_in, m_out in zip(sizes, sizes[1:]))
