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
  finiteness guarantees the tests check.
"""

from __future__ import annotations

import os

import numba

__all__ = ["CACHE", "DISPATCHERS", "kernel"]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


#: Whether compiled kernels are cached on disk (``FASTBP_DISABLE_CACHE=1`` turns it off).
CACHE: bool = not _env_flag("FASTBP_DISABLE_CACHE")

_OPTIONS = {"cache": CACHE, "nogil": True, "error_model": "numpy", "fastmath": False}

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
        dispatcher = numba.njit(**{**_OPTIONS, **overrides})(f)
        DISPATCHERS.append(dispatcher)
        return dispatcher

    return wrap(func) if func is not None else wrap
