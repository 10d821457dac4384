"""The one home of fastbp's Numba options.

Every compiled function in the package is made by :func:`kernel` so that the options below are
set in one place and a test can check that no kernel hard-codes its own.

Options and why:

- ``cache``: compiled machine code is stored next to the sources (or in ``NUMBA_CACHE_DIR``) so a
  fresh process loads it instead of compiling for seconds. ``FASTBP_DISABLE_CACHE=1`` turns it
  off (read once, at import).
- ``nogil``: kernels release the GIL, so Python threads working on different buffers run in
  parallel.
- ``error_model="numpy"``: division follows IEEE rules instead of raising
  ``ZeroDivisionError``; this also removes a branch from every division in the loops.
- ``fastmath`` is OFF: it lets LLVM assume there are no NaN or Inf values and reassociate
  sums, which would make results depend on the compiler and could silently drop the
  finiteness guarantees the tests check. The ``{"contract"}`` flag alone (FMA fusion, no
  reassociation, NaN semantics kept) was measured side by side on the final forward tile:
  +12-20% (784x128 B = 32: 45 against 40 GFLOP/s), but the core suite forbids any fastmath
  flag (tests/test_jit.py) and results would change in the last bits, so it is left for a
  deliberate decision rather than slipped in here.
- SLP vectorization, scoped: Numba ships with LLVM's SLP vectorizer off
  (``numba.config.SLP_VECTORIZE``). The register tiles in :mod:`fastbp._forward_tiles` and
  :mod:`fastbp._backward_tiles` are written as scalar accumulators and only become vector code
  with it, so :func:`kernel` turns it on while (and only while) a fastbp dispatcher compiles,
  under Numba's compiler lock, and restores the previous value after: other packages' kernels
  in the same process keep Numba's default.
- ``parallel`` is per kernel (the ``*_parallel`` loop nests). Numba's default ``workqueue``
  threading layer aborts the process when two Python threads run parallel kernels at once, so
  the Python layer holds :data:`PARALLEL_LOCK` around every call that may go parallel.
"""

from __future__ import annotations

import os
import threading

import numba
from numba.core import types
from numba.core.compiler_lock import global_compiler_lock

__all__ = ["CACHE", "DISPATCHERS", "PARALLEL_LOCK", "kernel"]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


#: Whether compiled kernels are cached on disk (``FASTBP_DISABLE_CACHE=1`` turns it off).
CACHE: bool = not _env_flag("FASTBP_DISABLE_CACHE")

_OPTIONS = {"cache": CACHE, "nogil": True, "error_model": "numpy", "fastmath": False}


def _launch_threads() -> None:
    from numba.np.ufunc import parallel

    parallel._launch_threads()


_launch_threads()

#: Held by the Python layer around kernel calls that may run ``prange`` loops on several
#: threads (Numba's workqueue layer is not safe for concurrent parallel calls). A user calling
#: the public :mod:`fastbp.kernels` drivers on large work from several threads should hold it.
PARALLEL_LOCK = threading.Lock()


def _with_slp(dispatcher):
    """Make ``dispatcher`` compile (lazily, per signature) with the SLP vectorizer on.

    Literal argument types (a constant ``0`` passed from another kernel) are widened first, so
    each kernel is compiled once per dtype instead of once per pattern of constant arguments
    (that cut the cold compile of one dtype roughly in half).
    """
    compile_ = dispatcher.compile

    def compile_with_slp(sig):
        if isinstance(sig, tuple):
            sig = tuple(types.unliteral(t) for t in sig)
        with global_compiler_lock:
            old = numba.config.SLP_VECTORIZE
            numba.config.SLP_VECTORIZE = 1
            try:
                return compile_(sig)
            finally:
                numba.config.SLP_VECTORIZE = old

    dispatcher.compile = compile_with_slp
    return dispatcher


#: Every dispatcher created through :func:`kernel`, for tests and introspection.
DISPATCHERS: list = []


def kernel(func=None, **overrides):
    """Compile ``func`` with fastbp's options (``@kernel`` or ``@kernel(parallel=True)``).

    Only options that are genuinely per-kernel (``parallel``, ``inline``) may be overridden.
    """
    bad = set(overrides) - {"parallel", "inline"}
    if bad:
        raise TypeError(f"kernel() options {sorted(bad)} are set only in fastbp._jit")

    def wrap(f):
        dispatcher = _with_slp(numba.njit(**{**_OPTIONS, **overrides})(f))
        DISPATCHERS.append(dispatcher)
        return dispatcher

    return wrap(func) if func is not None else wrap
