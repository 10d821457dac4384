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
- ``fastmath={"contract"}`` and nothing else: LLVM may fuse ``a * b + c`` into one FMA (one
  rounding instead of two, so each product-sum is at least as accurate). No ``reassoc``: sums
  keep the order written in the source, so results do not depend on vector width, tiling or
  threads (tests check 1 and 2 threads bit for bit). No ``nnan``/``ninf``/``nsz``: NaN and Inf
  behave as IEEE says and the drivers' NaN/Inf checks stay. Full ``fastmath=True`` would allow
  all of those and, per issue 3's exploration, vectorized the tiles along the wrong axis.
  Measured side by side (two copies of the package in one process, 1 thread, float64, loaded
  machine), with against without: [784,128,10] B = 32 1.14x and 1.54x in two runs, B = 256
  1.14x and 1.15x, [784,512,512,10] B = 128 1.23x, [64]*11 B = 64 1.16x and 1.07x,
  [2048]*3 B = 64 1.27x; the final forward tile alone 45 against 40 GFLOP/s. float32 was
  within the noise (0.57x to 1.19x across runs). The whole suite, golden values at 1e-12
  included, passes with it.
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

_OPTIONS = {"cache": CACHE, "nogil": True, "error_model": "numpy", "fastmath": {"contract"}}


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
