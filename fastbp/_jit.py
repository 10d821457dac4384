"""The one home of fastbp's Numba options.

Every compiled function in the package is made by :func:`kernel` so that the options below are
set in one place and a test can check that no kernel hard-codes its own.

Options and why:

- ``cache``: compiled machine code is stored next to the sources (or in ``NUMBA_CACHE_DIR``) so a
  fresh process loads it instead of compiling for seconds. ``FASTBP_DISABLE_CACHE=1`` turns it
  off (read once, at import). Numba checks a cached entry only against the source of the file
  that defines the function, not against the files of the kernels it calls, so a driver in
  ``train_kernels.py`` that calls ``kernels.loss_and_grad`` would keep running the old, inlined copy
  after ``kernels.py`` changed (and could index a workspace whose layout changed). To rule
  that out, every fastbp cache entry is also keyed on a hash of the source of every fastbp
  module that defines kernels: editing any of them recompiles all of them, once.
- ``nogil``: kernels release the GIL, so Python threads working on different buffers run in
  parallel.
- ``error_model="numpy"``: division follows IEEE rules instead of raising
  ``ZeroDivisionError``; this also removes a branch from every division in the loops.
- ``fastmath`` is OFF: it lets LLVM assume there are no NaN or Inf values and reassociate
  sums, which would make results depend on the compiler and could silently drop the
  finiteness guarantees the tests check.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba

__all__ = ["CACHE", "DISPATCHERS", "kernel", "kernel_sources_hash"]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


#: Whether compiled kernels are cached on disk (``FASTBP_DISABLE_CACHE=1`` turns it off).
CACHE: bool = not _env_flag("FASTBP_DISABLE_CACHE")

_OPTIONS = {"cache": CACHE, "nogil": True, "error_model": "numpy", "fastmath": False}

#: Every dispatcher created through :func:`kernel`, for tests and introspection.
DISPATCHERS: list = []


_PACKAGE_DIR = Path(__file__).resolve().parent
_kernel_sources_hash: bytes | None = None


def kernel_sources_hash() -> bytes:
    """SHA-256 over the source of every module of the package that compiles kernels.

    A module counts when it has a top-level ``@kernel`` decorator (and ``_jit.py`` itself,
    which sets the options); files are read in name order, once per process.
    """
    global _kernel_sources_hash
    if _kernel_sources_hash is None:
        digest = hashlib.sha256()
        for path in sorted(_PACKAGE_DIR.glob("*.py")):
            source = path.read_bytes()
            if b"\n@kernel" in source or path.name == "_jit.py":
                digest.update(path.name.encode() + b"\0" + source + b"\0")
        _kernel_sources_hash = digest.digest()
    return _kernel_sources_hash


def _key_cache_on_package(dispatcher) -> None:
    # Numba stores a stamp of the defining file in each cache index and discards the index when
    # the stamp differs; adding the package hash makes a change in any kernel module discard it.
    # Private Numba attributes: if a Numba version lacks them, its own per-file check remains.
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is not None and hasattr(cache_file, "_source_stamp"):
        cache_file._source_stamp = (cache_file._source_stamp, kernel_sources_hash())


def kernel(func=None, **overrides):
    """Compile ``func`` with fastbp's options (``@kernel`` or ``@kernel(parallel=True)``).

    Only options that are genuinely per-kernel (``parallel``, ``inline``) may be overridden.
    """
    bad = set(overrides) - {"parallel", "inline"}
    if bad:
        raise TypeError(f"kernel() options {sorted(bad)} are set only in fastbp._jit")

    def wrap(f):
        dispatcher = numba.njit(**{**_OPTIONS, **overrides})(f)
        if CACHE:
            _key_cache_on_package(dispatcher)
        DISPATCHERS.append(dispatcher)
        return dispatcher

    return wrap(func) if func is not None else wrap
