"""The one point through which the Python layer calls a kernel that may run parallel loops.

Numba's ``workqueue`` threading layer (what a user gets where neither TBB nor OpenMP is
installed) aborts the process when two Python threads run parallel regions at once, so every
call that may enter a ``prange`` loop holds :data:`fastbp._jit.PARALLEL_LOCK`; serial calls
(the twins that compile no parfor) run without it, from any number of threads at once.
``tests/test_workqueue.py`` runs every public entry point from several threads under
``NUMBA_THREADING_LAYER=workqueue``.
"""

from __future__ import annotations

import numba

from . import kernels
from ._jit import PARALLEL_LOCK

__all__ = ["call", "threaded"]


def threaded(sizes, batch: int) -> bool:
    """Whether a call on ``batch`` samples may run parallel loops: some layer product reaches
    :data:`fastbp.kernels.PARALLEL_MIN_WORK` and Numba may use more than one thread."""
    return kernels.uses_threads(sizes, batch) and numba.get_num_threads() > 1


def call(kernel, parallel: bool, *args):
    """``kernel(*args)``, under :data:`~fastbp._jit.PARALLEL_LOCK` when ``parallel``."""
    if parallel:
        with PARALLEL_LOCK:
            return kernel(*args)
    return kernel(*args)
