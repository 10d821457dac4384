"""The one point through which the Python layer picks and calls a driver.

Variants of the whole-network drivers (see docs/design.md):

========================  ==========================================  =====================
tier                      kernels                                     when
========================  ==========================================  =====================
tiled, threaded           ``kernels.forward / loss / loss_and_grad``  a layer product
                                                                      reaches
                                                                      ``THREAD_MIN_WORK``
                                                                      and Numba has threads
tiled, serial             ``kernels._forward_serial``, ``_loss_serial``,  otherwise
                          ``_loss_and_grad_serial`` (tiny networks),
                          ``_loss_and_grad_large``
plain                     ``_plain.plain_forward / plain_loss /       the tiled variant is
                          plain_loss_and_grad``                       not compiled yet
========================  ==========================================  =====================

The plain tier gives the tiled drivers' bits (``tests/test_plain_tier.py``), so the hand-over
between them never changes a result: while a tiled variant is neither compiled in this process
nor in the disk cache, :func:`run` runs the plain tier and has a helper process compile the
tiled one (:mod:`fastbp._warm`); once the helper has exited, the tiled variant runs (loaded
from the cache). With ``FASTBP_BACKGROUND_COMPILE=0``, or no disk cache, the tiled variant
runs from the first call (compiled in-process).

Numba's ``workqueue`` threading layer (what a user gets where neither TBB nor OpenMP is
installed) aborts the process when two Python threads run parallel regions at once, so every
call that may enter a ``prange`` loop holds :data:`fastbp._jit.PARALLEL_LOCK`; serial calls
(the twins that compile no parfor, the plain tier) run without it, from any number of threads
at once. ``tests/test_workqueue.py`` runs every public entry point from several threads under
``NUMBA_THREADING_LAYER=workqueue``.
"""

from __future__ import annotations

import os

import numba

from . import _plain, _warm, kernels
from ._jit import PARALLEL_LOCK, cached
from ._kernels.blocked import loss_and_grad_blocked, loss_and_grad_blocked_threaded
from ._tiers import TIER

__all__ = [
    "ARITY",
    "PLAIN",
    "THREAD_MIN_WORK",
    "THREAD_MIN_WORK_BY_TIER",
    "call",
    "parallel_pays",
    "run",
    "threaded",
    "tiled",
    "tiled_ready",
]

#: op -> the plain tier's driver.
PLAIN = {
    "forward": _plain.plain_forward,
    "loss": _plain.plain_loss,
    "loss_and_grad": _plain.plain_loss_and_grad,
}


#: Per tier of the register tiles (:mod:`fastbp._tiers`): the multiply-adds of a call's largest
#: layer product (B M^(l-1) M^l) from which the call runs threaded. Below it the serial twins
#: run it, which is never slower than one thread: a parallel region costs microseconds to enter
#: and, when the other cores are busy, a whole time slice to wait for its last task. AVX2: from
#: measurements on a 2-core Zen 3 (docs/perf-log.md, "Issue 14" and "Issue 22"); AVX-512 and
#: portable: the AVX2 figure (the AVX-512 tier's old 2^19 ran [10, 64, 64, 1] at B = 442 on
#: two threads at 0.47x of one, issue 22; not re-measured on an AVX-512 host since). Inside a
#: threaded gradient, a block's product below ``blocked.REGION_MIN_WORK`` still runs serially.
THREAD_MIN_WORK_BY_TIER = {
    "avx512": 1 << 26,
    "avx2": 1 << 26,
    "portable": 1 << 26,
}


def _thread_min_work() -> int:
    """:data:`THREAD_MIN_WORK_BY_TIER` for this process's tier, or ``FASTBP_THREAD_MIN_WORK``
    (a number of multiply-adds; the test suite sets the kernels' own threshold, so its cases
    reach the threaded drivers at small shapes). Never below ``kernels.PARALLEL_MIN_WORK``:
    below that no layer would go parallel anyway."""
    value = os.environ.get("FASTBP_THREAD_MIN_WORK", "").strip()
    if value:
        try:
            work = int(value)
        except ValueError:
            raise ValueError(
                f"FASTBP_THREAD_MIN_WORK: expected an integer number of multiply-adds, "
                f"got {value!r}"
            ) from None
    else:
        work = THREAD_MIN_WORK_BY_TIER[TIER]
    return max(work, kernels.PARALLEL_MIN_WORK)


#: The multiply-adds of a call's largest layer product from which it runs threaded (read once).
THREAD_MIN_WORK: int = _thread_min_work()


def parallel_pays(work: int) -> bool:
    """Whether a call whose largest layer product is ``work`` multiply-adds runs threaded: it
    reaches :data:`THREAD_MIN_WORK` and Numba may use more than one thread."""
    return work >= THREAD_MIN_WORK and numba.get_num_threads() > 1


def threaded(sizes, batch: int) -> bool:
    """Whether a call on ``batch`` samples of ``sizes`` goes to the threaded drivers
    (:func:`parallel_pays` of its largest layer product)."""
    batch = int(batch)
    return parallel_pays(max(batch * m_in * m_out for m_in, m_out in zip(sizes, sizes[1:])))


#: Batches from which a serial gradient runs sample-blocked
#: (:func:`fastbp._kernels.blocked.loss_and_grad_blocked`): below one forward granule (32
#: samples) every sample would take the edge loop, and packing the weights costs more than
#: their panels save (docs/perf-log.md, "Issue 22").
BLOCKED_MIN_BATCH = 32


def blocked(op: str, parallel: bool, batch: int) -> bool:
    """Whether a call runs the sample-blocked gradient (the same bits as the others), serial
    or threaded as ``parallel`` says."""
    return op == "loss_and_grad" and batch >= BLOCKED_MIN_BATCH


def tiled(op: str, parallel: bool, n_params: int, batch: int = 0):
    """The tiled driver for ``op`` ("forward", "loss" or "loss_and_grad") on ``batch``
    samples."""
    if blocked(op, parallel, batch):
        return loss_and_grad_blocked_threaded if parallel else loss_and_grad_blocked
    if parallel:
        return getattr(kernels, op)
    if op == "loss_and_grad":
        # Above TINY_PARAMS the single-sample path is never taken: the twin without it.
        large = n_params > kernels.TINY_PARAMS
        return kernels._loss_and_grad_large if large else kernels._loss_and_grad_serial
    return kernels._forward_serial if op == "forward" else kernels._loss_serial


def call(kernel, parallel: bool, *args):
    """``kernel(*args)``, under :data:`~fastbp._jit.PARALLEL_LOCK` when ``parallel``."""
    if parallel:
        with PARALLEL_LOCK:
            return kernel(*args)
    return kernel(*args)


def tiled_ready(kernel, args) -> bool:
    """Whether ``kernel(*args)`` (a tiled variant) should run now: it is compiled or in the
    disk cache, its helper process has exited, or the background compile is off. Otherwise a
    helper is asked for it (once) and the caller runs the plain tier."""
    if not _warm.enabled():  # no cache, the JIT off, or FASTBP_BACKGROUND_COMPILE=0
        return True
    state = _warm.state(kernel, args)
    if state is None:  # first call of this variant and signature in this process
        state = "done" if cached(kernel, args) else _warm.request(kernel, args)
    return state == "done"


#: op -> the number of arguments of its classic call (the squared loss, no weights); a call
#: with two more (``loss_code``, ``weights``) is another compiled signature of the same driver.
ARITY = {"forward": 7, "loss": 7, "loss_and_grad": 9}


def run(op: str, parallel: bool, args: tuple, ready: dict):
    """Run ``op`` on ``args`` (a driver's arguments) through the variant this call takes.

    ``ready`` is the caller's dict ``(op, parallel) -> tiled kernel`` of the variants known to
    run without compiling (a network keeps one), so the steady state costs one lookup here.
    Sample-blocked gradients are recorded under ``(op, parallel, "blocked")``; calls with a
    loss code and weights (two more arguments) with ``"loss"`` appended: the same driver,
    another compiled signature.
    """
    batch = args[3].shape[0]
    key = (op, parallel)
    if blocked(op, parallel, batch):
        key += ("blocked",)
    if len(args) != ARITY[op]:
        key += ("loss",)
    kernel = ready.get(key)
    if kernel is not None:
        if parallel:
            with PARALLEL_LOCK:
                return kernel(*args)
        return kernel(*args)
    kernel = tiled(op, parallel, args[0].shape[0], batch)
    if tiled_ready(kernel, args):
        ready[key] = kernel
        return call(kernel, parallel, *args)
    return PLAIN[op](*args)
