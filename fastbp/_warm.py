"""Compile the tiled drivers in a helper process, into the disk cache, while the plain tier runs.

A cold tiled driver compiles for tens of seconds. Compiling it on a thread of the user's process
would not help: Numba holds its compiler lock for a whole compile, and the plain tier's own
compiles and every cache load wait on it. So :func:`request` starts ``python -m fastbp._warm``
(at most one at a time per process, the rest queued), which compiles the kernel for the exact
argument types of the call into the shared disk cache, at low priority, and exits;
:mod:`fastbp._dispatch` switches to the tiled driver once the helper has finished (it loads
from the cache then; if the helper failed, it compiles in-process, as without this module).
Helpers of several processes on one cache take turns on a lock file, so the second waits and
then finds the kernel cached.

``FASTBP_BACKGROUND_COMPILE=0`` turns this off (every call then takes the tiled drivers, which
compile in-process on first use); it is off as well where there is no disk cache or the JIT is
disabled. A helper left running when the process exits finishes its compile for the next run.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading

import numba
import numpy as np

from . import _jit

__all__ = ["busy", "compile_keys", "enabled", "request", "state"]

_LOCK = threading.Lock()
_QUEUE: list = []  # specs waiting for a helper
_STATE: dict = {}  # key -> "queued" | "running" | "done"
_RUNNING: list = []  # [(key, starter Popen, pipe fd)] (at most one)


def enabled() -> bool:
    """Whether calls may run on the plain tier while a helper compiles the tiled drivers."""
    return (
        os.environ.get("FASTBP_BACKGROUND_COMPILE", "1") != "0"
        and _jit.CACHE_DIR is not None
        and not numba.config.DISABLE_JIT
    )


def _spec(kernel, args) -> tuple:
    """A hashable, JSON-able description of ``kernel`` and its argument types."""
    types = []
    for a in args:
        if isinstance(a, np.ndarray):
            layout = "C" if a.flags.c_contiguous else ("F" if a.flags.f_contiguous else "A")
            types.append(("array", a.dtype.str, a.ndim, layout, not a.flags.writeable))
        elif isinstance(a, (bool, np.bool_)):
            types.append(("boolean",))
        else:
            types.append(("scalar", np.asarray(a).dtype.str))
    py = kernel.py_func
    return (py.__module__, py.__qualname__, tuple(types))


def _find(module: str, qualname: str):
    """The one package dispatcher with this module and qualname (twins included), or None."""
    found = [
        d
        for d in _jit.DISPATCHERS
        if getattr(d, "py_func", None) is not None
        and d.py_func.__module__ == module
        and d.py_func.__qualname__ == qualname
    ]
    return found[0] if len(found) == 1 else None


# The helper detaches at once (POSIX): the process started here forks and exits, its child
# compiles, so nothing is left for this process to reap or to warn about at exit ("subprocess
# is still running"), and a helper outlives the process that asked for it. It holds the write
# end of a pipe, whose end of file here says that it has exited.
_BOOT = """
import os, sys
if hasattr(os, "fork") and os.fork():
    os._exit(0)
from fastbp._warm import main
sys.exit(main(sys.argv[1:]))
"""


def _running(entry) -> bool:
    """Whether the helper of ``entry`` (key, starter Popen, read end of its pipe) still runs."""
    _, starter, fd = entry
    starter.poll()  # reap the starter (it exits within milliseconds)
    try:
        return os.read(fd, 1) != b""
    except BlockingIOError:  # nothing written and not closed: the helper runs
        return True
    except OSError:
        return False


def _start_next() -> None:
    """Start the next queued helper if none runs (holding _LOCK)."""
    if _RUNNING:
        if _running(_RUNNING[0]):
            return
        key, starter, fd = _RUNNING.pop()
        os.close(fd)
        _STATE[key] = "done"
    while _QUEUE:
        key = _QUEUE.pop(0)
        started = _spawn([key])
        if started is None:  # no process (or pipe) can be made: compile in-process instead
            _STATE[key] = "done"
            continue
        _STATE[key] = "running"
        _RUNNING.append((key, *started))
        return


def _spawn(keys: list):
    """Start a detached helper compiling ``keys`` in order; (starter, pipe fd) or None."""
    if not sys.executable:  # an embedded interpreter: no Python to start
        return None
    root = os.path.dirname(os.path.dirname(os.path.abspath(_jit.__file__)))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }
    try:
        r, w = os.pipe()
        try:
            starter = subprocess.Popen(
                [sys.executable, "-c", _BOOT, *(json.dumps(k) for k in keys)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(w,),
                env=env,
            )
        finally:
            os.close(w)
        os.set_blocking(r, False)
    except OSError:
        return None
    return starter, r


@atexit.register
def _at_exit() -> None:
    """Hand what is still queued to one last helper (it waits for the running one on the lock
    file, then compiles them in order), so the next run finds them cached; reap the starters
    (they fork and exit at once)."""
    with _LOCK:
        if _QUEUE:
            started = _spawn(list(_QUEUE))
            _QUEUE.clear()
            if started is not None:
                _RUNNING.append((None, *started))
        for _, starter, _fd in _RUNNING:
            try:
                starter.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover - a starter that hangs
                pass


def request(kernel, args) -> str:
    """Have a helper process compile ``kernel`` for the types of ``args`` (once per process);
    returns its :func:`state`."""
    key = _spec(kernel, args)
    with _LOCK:
        if _find(key[0], key[1]) is not kernel:
            _STATE[key] = "done"  # not a kernel a helper can find by name: in-process
        if key not in _STATE:
            _STATE[key] = "queued"
            _QUEUE.append(key)
        _start_next()
        return _STATE[key]


def state(kernel, args) -> str | None:
    """None if no helper was asked for ``kernel`` and ``args``; else "queued", "running" or
    "done" (exited, or could not start)."""
    key = _spec(kernel, args)
    with _LOCK:
        if key in _STATE and _STATE[key] != "done":
            _start_next()
        return _STATE.get(key)


def busy() -> bool:
    """Whether a helper of this process is queued or running."""
    with _LOCK:
        _start_next()
        return bool(_QUEUE or _RUNNING)


def _numba_type(desc):
    if desc[0] == "boolean":
        return numba.types.boolean
    if desc[0] == "array":
        _, dtype, ndim, layout, readonly = desc
        return numba.types.Array(numba.from_dtype(np.dtype(dtype)), ndim, layout, readonly=readonly)
    return numba.from_dtype(np.dtype(desc[1]))


def main(argv=None) -> int:
    """Helper process: compile each kernel-and-signature key (JSON) into the disk cache."""
    import fastbp  # noqa: F401  (every kernel and twin is made at import)

    keys = [json.loads(a) for a in (argv if argv is not None else sys.argv[1:])]
    try:
        os.nice(10)
    except (AttributeError, OSError):
        pass
    lock = None
    try:
        import fcntl

        lock = open(os.path.join(_jit.CACHE_DIR, "fastbp-warm.lock"), "a")  # noqa: SIM115
        fcntl.flock(lock, fcntl.LOCK_EX)  # helpers of other processes take turns
    except (ImportError, OSError, TypeError):
        pass
    compile_keys(keys)
    if lock is not None:
        lock.close()
    return 0


def compile_keys(keys) -> None:
    """Compile each ``(module, qualname, argument types)`` key (from :func:`_spec`) for the
    signature its call takes (omitted defaults folded in: :func:`fastbp._jit.call_signature`),
    or find it cached by an earlier helper."""
    for module, name, types in keys:
        dispatcher = _find(module, name)
        if dispatcher is not None:
            types = tuple(_numba_type(t) for t in types)
            dispatcher.compile(_jit.call_signature(dispatcher, types))


if __name__ == "__main__":
    sys.exit(main())
