"""The one home of fastbp's Numba options and of its on-disk compilation cache.

Every compiled function in the package is made by :func:`kernel` so that the options below are
set in one place and a test can check that no kernel hard-codes its own.

Options and why:

- ``nogil``: kernels release the GIL, so Python threads working on different buffers run in
  parallel.
- ``error_model="numpy"``: division follows IEEE rules instead of raising
  ``ZeroDivisionError``; this also removes a branch from every division in the loops.
- ``fastmath`` is OFF. Full fastmath lets LLVM assume there are no NaN or Inf values and
  reassociate sums, which would make results depend on the compiler and silently drop the
  finiteness guarantees the tests check. Fused multiply-adds are written out with :func:`fma`
  (``llvm.fma``) where the layer products, their edge loops and the exp polynomial want them:
  one rounding instead of two, nothing reordered, and the same bits from every compilation of
  a kernel (the ``contract`` flag that did this before only permits fusion, and a kernel
  linked into a caller fused differently from the same kernel compiled alone, so a cold
  process and a warm cache gave different bits). An FMA does not round the product, so an
  overflow that the separate multiply and add report as NaN (``2 * 1.7e308 - 2 * 1.7e308`` =
  inf - inf) gives +inf instead; three guards keep every such overflow reported: the forward
  epilogue maps a non-finite pre-activation to a NaN activation (``h + (a - a)``), the delta
  epilogue does the same to a non-finite ``W^T delta`` sum, and the weight gradient of any
  layer whose magnitudes could overflow (the bound in :mod:`fastbp._kernels.checks`) is recomputed
  without FMA before the NaN check. FMA pays on float64 batched calls (docs/perf-log.md, rows
  11b and 15; explicit since "Explicit FMA").
- SLP vectorization, scoped: Numba ships with LLVM's SLP vectorizer off
  (``numba.config.SLP_VECTORIZE``). The register tiles in :mod:`fastbp._kernels.forward_tiles` and
  :mod:`fastbp._kernels.backward_tiles` are written as scalar accumulators and only become vector
  code with it, so :func:`kernel` turns it on while (and only while) a fastbp dispatcher compiles,
  under Numba's compiler lock, and restores the previous value after: other packages' kernels in the
  same process keep Numba's default.
- ``parallel`` is per kernel (the ``*_parallel`` loop nests). Numba's default ``workqueue``
  threading layer aborts the process when two Python threads run parallel kernels at once, so
  the Python layer holds :data:`PARALLEL_LOCK` around every call that may go parallel.

The disk cache
--------------
Numba's own ``cache=True`` stamps a cached function with a hash of the one file that defines
it, so editing a callee in another module (say ``kernels.py``, called from ``train.py``) leaves
the caller's stale machine code on disk, loaded on the next run. fastbp therefore attaches its
own cache to every dispatcher made here:

- the source stamp is :data:`SOURCE_STAMP`, a SHA-256 over the relative path and the bytes of
  every module that holds compiled code and every package module those import
  (:func:`_compiled_sources`), so a change to any of them invalidates every kernel, while an
  edit of the CLI or another pure-Python module invalidates none; only the package's own
  kernels are cached there (a kernel made with :func:`kernel` elsewhere is not cached);
- the directory is :data:`CACHE_DIR`, the first writable one of ``$NUMBA_CACHE_DIR/fastbp_<h>``
  (when ``NUMBA_CACHE_DIR`` is set), ``<package>/__pycache__`` (numba's usual place), and
  ``<user cache dir>/numba/fastbp_<h>`` (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux), where
  ``<h>`` is a hash of the package's path so that two installs never share entries. "Writable"
  is tested by really creating a file there, once, at import. A read-only install therefore
  caches in the user's directory; when nothing is writable, ``CACHE_DIR`` is ``None`` and kernels
  are compiled in each process: no exception and no warning;
- an unreadable or corrupt cache file is treated as a miss (the kernel is compiled), and a write
  that fails (disk full, directory made read-only later) turns caching off for that kernel in
  this process instead of failing the call;
- saving is safe across processes (:class:`_LockedCacheFile`). Numba's own index save is an
  unlocked read-modify-write (numba issues #4807, #10128): two processes compiling float32 and
  float64 of one kernel at once could both pick data file ``.1.nbc``, so one signature's index
  entry was lost and the other could point at the wrong machine code. fastbp's save takes an
  exclusive ``fcntl.flock`` on ``<index>.lock`` beside the index, re-reads the index under it,
  gives a new signature a data file that no index entry names, and writes the data file, then
  the index, each to a temporary file moved into place with ``os.replace``. A load takes no
  lock: it sees a whole old or a whole new file, a missing or corrupt data file is a miss, and
  loaded code whose stored signature is not the one asked for is a miss too. Where there is no
  ``fcntl`` (Windows) or the file system refuses the lock, saving runs unlocked: two processes
  saving at once may then lose an entry (a recompile next time), and the signature check still
  keeps crossed code from ever being run;
- each tier of the register tiles (:mod:`fastbp._tiers`) has its own cache files: the tier is
  part of every entry's file name (Numba's key already holds the CPU name and features);
- ``FASTBP_DISABLE_CACHE=1`` (read once, at import) turns the disk cache off entirely.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import re
import tempfile
import threading
import types as types_module
from pathlib import Path

import numba
from llvmlite import ir
from numba.core import types
from numba.core.compiler_lock import global_compiler_lock
from numba.extending import intrinsic

from ._tiers import TIER

try:  # Private numba classes; if a future numba moves them, run uncached rather than stale.
    from numba.core.caching import (
        CompileResultCacheImpl,
        FunctionCache,
        IndexDataCacheFile,
        _CacheLocator,
    )
    from numba.misc.appdirs import user_cache_dir
except ImportError:  # pragma: no cover - depends on the numba version
    _CacheLocator = None

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: saves run unlocked (see the module notes)
    fcntl = None

__all__ = [
    "CACHE",
    "CACHE_DIR",
    "DISPATCHERS",
    "PARALLEL_LOCK",
    "SOURCE_STAMP",
    "cached",
    "call_signature",
    "fma",
    "kernel",
    "twins",
]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


#: The package directory whose sources stamp the cache.
PACKAGE_DIR: Path = Path(__file__).resolve().parent


# What the stamp follows, read off the source text (cheaper at every import than a full
# ast.parse of the package; docs/perf-log.md, start-up round): relative imports at any level
# (``from .x import ...``, ``from . import x, y``, ``from .._jit import ...``,
# ``from ..x.y import ...``, parenthesized over several lines too), and the uses that make
# compiled code.
_RELATIVE_IMPORT = re.compile(r"^[ \t]*from (\.+)([\w.]*)\s+import\s+(\([^)]*\)|[^\n]*)", re.M)
_COMPILES = re.compile(r"^[ \t]*@kernel\b|\btwins\(|[=(]\s*kernel\(", re.M)


def _compiled_sources(package_dir: Path) -> list[Path]:
    """The package's modules that hold compiled code, and the package modules they import.

    A module holds compiled code when it makes a kernel (``@kernel``, ``= kernel(...)``) or
    twins (this module too); what it imports from the package may be compiled into it, so
    imports are followed, transitively. Editing any other module (the CLI, the docs of the
    Python layer) leaves every cached kernel valid.
    """
    # Module names relative to the package: "network", "_kernels.layers", and a subpackage's
    # own file as "_kernels.__init__".
    files = {
        p.relative_to(package_dir).with_suffix("").as_posix().replace("/", "."): p
        for p in package_dir.rglob("*.py")
        if "__pycache__" not in p.parts
    }

    def resolve(dotted: str) -> str | None:
        """The file key of a module or subpackage name, or None outside the package."""
        for key in (dotted, f"{dotted}.__init__" if dotted else "__init__"):
            if key in files:
                return key
        return None

    imports: dict[str, set[str]] = {}
    compiled = {"_jit"}
    for name, path in files.items():
        text = path.read_text(encoding="utf-8")
        # The package a relative import starts from (a subpackage's __init__ is in it).
        package = name.split(".")[:-1]
        deps = set()
        for dots, module, names in _RELATIVE_IMPORT.findall(text):
            up = len(dots) - 1
            if up > len(package):
                continue  # above the top package: not one of ours
            base = package[: len(package) - up]
            target = [*base, *filter(None, module.split("."))]
            if module:  # ``from . import x`` follows x, not the package's __init__
                # The module and the subpackages it is in (their __init__ runs first).
                for depth in range(len(base) + 1, len(target) + 1):
                    deps.add(resolve(".".join(target[:depth])))
            # ``from . import x`` and ``from .pkg import x`` may name submodules.
            for item in re.sub(r"#[^\n]*", "", names).strip().strip("()").split(","):
                if item.split():
                    deps.add(resolve(".".join([*target, item.split()[0]])))
        if _COMPILES.search(text):
            compiled.add(name)
        imports[name] = {d for d in deps if d is not None}
    todo = [n for n in compiled if n in files]
    seen = set(todo)
    while todo:
        for dep in imports[todo.pop()]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return sorted(files[n] for n in seen)


def _source_stamp(package_dir: Path) -> str | None:
    """SHA-256 over (relative path, bytes) of the modules that hold compiled code and what they
    import (:func:`_compiled_sources`), or ``None`` when a source file cannot be read (e.g. a
    zipped install)."""
    h = hashlib.sha256()
    try:
        files = _compiled_sources(package_dir)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    try:
        for path in files:
            h.update(path.relative_to(package_dir).as_posix().encode())
            h.update(b"\0")
            h.update(path.read_bytes())
            h.update(b"\0")
    except OSError:
        return None
    return h.hexdigest() if files else None


def _is_writable_dir(path: str) -> bool:
    """Whether ``path`` exists or can be created, and a file can really be written in it."""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def _cache_dir(package_dir: Path) -> str | None:
    """The first writable cache directory for ``package_dir`` (see the module docstring)."""
    sub = "fastbp_" + hashlib.sha1(str(package_dir).encode()).hexdigest()[:16]
    candidates = []
    if numba.config.CACHE_DIR:
        candidates.append(os.path.join(numba.config.CACHE_DIR, sub))
    candidates.append(str(package_dir / "__pycache__"))
    candidates.append(os.path.join(user_cache_dir(appname="numba", appauthor=False), sub))
    for path in candidates:
        if _is_writable_dir(path):
            return path
    return None


#: Whether compiled kernels may be cached on disk (``FASTBP_DISABLE_CACHE=1`` turns it off).
CACHE: bool = not _env_flag("FASTBP_DISABLE_CACHE")

#: Hash of every source file of the package; the freshness stamp of every cache entry.
SOURCE_STAMP: str | None = _source_stamp(PACKAGE_DIR) if CACHE and _CacheLocator else None

#: Where kernels are cached, or None when caching is off or no writable directory was found.
CACHE_DIR: str | None = _cache_dir(PACKAGE_DIR) if SOURCE_STAMP else None

# The cache is attached per dispatcher below, so "cache" is not one of these options.
_OPTIONS = {"nogil": True, "error_model": "numpy", "fastmath": False}


def _launch_threads() -> None:
    from numba.np.ufunc import parallel

    parallel._launch_threads()


_launch_threads()

#: Held by the Python layer around kernel calls that may run ``prange`` loops on several
#: threads (Numba's workqueue layer is not safe for concurrent parallel calls). A user calling
#: the public :mod:`fastbp.kernels` drivers on large work from several threads should hold it.
PARALLEL_LOCK = threading.Lock()


#: Depth of nested fastbp compiles (under Numba's compiler lock); see :func:`_with_slp`.
_COMPILING = [0]


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
            # The objects that exist before the outermost compile (callees compile inside it)
            # are frozen for its duration: Numba's compiler allocates millions of objects, and
            # each of the collector's full passes would also walk the whole existing heap. New
            # objects are still collected, so the peak memory stays the same (unlike pausing
            # the collector). Skipped when something is frozen already (a caller's own
            # gc.freeze()). docs/perf-log.md, row 30.
            outer = _COMPILING[0] == 0 and gc.get_freeze_count() == 0
            if outer:
                gc.freeze()
            _COMPILING[0] += 1
            try:
                return compile_(sig)
            finally:
                _COMPILING[0] -= 1
                if outer:
                    gc.unfreeze()
                numba.config.SLP_VECTORIZE = old

    dispatcher.compile = compile_with_slp
    return dispatcher


#: Every dispatcher created through :func:`kernel`, for tests and introspection.
DISPATCHERS: list = []


if _CacheLocator is not None:

    class _PackageLocator(_CacheLocator):
        """Numba cache locator: :data:`CACHE_DIR`, stamped with :data:`SOURCE_STAMP`."""

        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno

        def get_cache_path(self):
            return CACHE_DIR

        def get_source_stamp(self):
            return SOURCE_STAMP

        def get_disambiguator(self):
            # The tier is in the file name: a driver's bytecode is the same on every tier, but
            # the tiles linked into it are not, so each tier keeps its own entries (no tier is
            # handed another's code, and switching FASTBP_TIER does not flush the other's).
            return f"{self._lineno}-{TIER}"

        @classmethod
        def from_function(cls, py_func, py_file):
            return cls(py_func, py_file) if CACHE_DIR else None

    class _PackageCacheImpl(CompileResultCacheImpl):
        _locator_classes = [_PackageLocator]

    class _LockedCacheFile(IndexDataCacheFile):
        """Numba's index and data files, saved under a lock so processes never cross entries.

        Same file names and formats as numba's (``<base>.nbi``, ``<base>.<n>.nbc``), plus
        ``<base>.nbi.lock``, an empty file whose ``flock`` serializes the savers of one index.
        """

        def __init__(self, cache_path, filename_base, source_stamp):
            super().__init__(cache_path, filename_base, source_stamp)
            self._lock_path = self._index_path + ".lock"

        @contextlib.contextmanager
        def _locked(self):
            """Hold the exclusive lock of this index (unlocked where flock is unavailable)."""
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                if fcntl is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX)
                    except OSError:  # a file system without flock (some NFS): save unlocked
                        pass
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the lock

        def _index_for_update(self) -> dict:
            """The index as it is on disk now; a corrupt one counts as empty (it is replaced)."""
            try:
                return self._load_index()
            except OSError:
                raise
            except Exception:  # truncated or foreign pickle
                return {}

        def save(self, key, data):
            """Save ``data`` under ``key``: its data file first, then the index, both atomic."""
            payload = self._dump(data)  # pickled outside the lock: the lock is held briefly
            with self._locked():
                overloads = self._index_for_update()
                name = overloads.get(key)
                if name is None:  # a new signature: a data file no index entry names
                    used = set(overloads.values())
                    number = 1
                    while self._data_name(number) in used:
                        number += 1
                    name = self._data_name(number)
                # The key's own file may be rewritten: a reader sees the whole old or new file,
                # both compiled for this key's signature.
                with self._open_for_write(self._data_path(name)) as f:
                    f.write(payload)
                overloads[key] = name
                self._save_index(overloads)

        def load(self, key):
            """The data saved under ``key``, or None (no entry, or a missing or corrupt file)."""
            try:
                name = self._load_index().get(key)
                return None if name is None else self._load_data(name)
            except Exception:
                return None

        def flush(self):
            """Empty the index (under the lock, so no concurrent save is lost half-way)."""
            with self._locked():
                self._save_index({})

    class _PackageCache(FunctionCache):
        """A numba function cache that never makes a call fail."""

        _impl_class = _PackageCacheImpl

        def __init__(self, py_func):
            super().__init__(py_func)
            self._cache_file = _LockedCacheFile(
                cache_path=self._cache_path,
                filename_base=self._impl.filename_base,
                source_stamp=self._impl.locator.get_source_stamp(),
            )

        def load_overload(self, sig, target_context):
            try:
                cres = super().load_overload(sig, target_context)
            except Exception:  # unreadable, truncated or foreign file: compile instead
                return None
            # Saves are locked (_LockedCacheFile), but an unlocked one (no flock on this
            # system) can still point two signatures at one data file (numba issues #4807,
            # #10128): code whose stored signature is not the one asked for is a miss.
            if cres is not None and tuple(getattr(cres.signature, "args", ())) != tuple(sig):
                return None
            return cres

        def save_overload(self, sig, data):
            # A corrupt index is replaced by the save itself (_LockedCacheFile); anything that
            # still fails (disk full, directory gone read-only, lock file not creatable, code
            # that does not pickle) turns caching off for this kernel, never fails the call.
            try:
                super().save_overload(sig, data)
            except Exception:
                self.disable()


def _fma_python(a, b, c):
    """``a * b + c`` rounded twice: the stand-in for :func:`fma` under NUMBA_DISABLE_JIT."""
    return a * b + c


if numba.config.DISABLE_JIT:
    fma = _fma_python
else:

    @intrinsic
    def fma(typingctx, a, b, c):
        """``a * b + c`` rounded once (``llvm.fma``), in the floating type the three unify to.

        The one way fastbp fuses a multiply-add: explicit, so every compilation of a kernel
        gives the same bits. LLVM's ``contract`` flag only permits fusion, and whether it
        fuses depends on the context a function is optimized in; a kernel compiled on its
        own and its copy linked into a caller (the copy is what the disk cache holds) fused
        differently, so a cold process and a warm one gave different bits (docs/perf-log.md,
        "Explicit FMA").
        """
        res = typingctx.unify_types(a, b, c)
        if not isinstance(res, types.Float):
            return None

        def codegen(context, builder, signature, args):
            vals = [context.cast(builder, v, t, res) for v, t in zip(args, signature.args)]
            t = vals[0].type
            f = builder.module.declare_intrinsic("llvm.fma", [t], ir.FunctionType(t, [t, t, t]))
            return builder.call(f, vals)

        return res(a, b, c), codegen


def kernel(func=None, **overrides):
    """Compile ``func`` with fastbp's options (``@kernel`` or ``@kernel(parallel=True)``).

    Only options that are genuinely per-kernel (``parallel``, ``inline``) may be overridden;
    fastmath is never on (fused multiply-adds are written out with :func:`fma`).
    """
    bad = set(overrides) - {"parallel", "inline"}
    if bad:
        raise TypeError(f"kernel() options {sorted(bad)} are set only in fastbp._jit")

    def wrap(f):
        dispatcher = numba.njit(**{**_OPTIONS, **overrides})(f)
        # Under NUMBA_DISABLE_JIT=1, njit returns the plain function: nothing to compile.
        if isinstance(dispatcher, numba.core.dispatcher.Dispatcher):
            _with_slp(dispatcher)
            # Only the package's own kernels share its stamp and directory: a kernel defined
            # elsewhere (a test's, a user's) is not stamped by its own source here.
            if CACHE_DIR is not None and (f.__module__ or "").split(".")[0] == "fastbp":
                dispatcher._cache = _PackageCache(dispatcher.py_func)
        DISPATCHERS.append(dispatcher)
        return dispatcher

    return wrap(func) if func is not None else wrap


def twins(dispatchers, namespace: dict, suffix: str) -> list:
    """Recompile each of ``dispatchers`` (their own bytecode) over ``namespace``, as kernels.

    The twin of ``f`` is named ``_<f>_<suffix>`` (a distinct qualname, so its own disk-cache
    entry) and is put into ``namespace`` under ``f``'s name, so a later twin that calls ``f``
    calls the twin: give the dispatchers callees first. Used for the serial twins of the
    drivers, whose namespace sets the constant ``_THREADS`` to False (Numba prunes a branch on
    a constant global before typing, so the ``prange`` calls are never compiled), for the
    training kernels' twins, which call those, and for the forward tiles' twins per mode (the
    epilogue a gradient needs, or the one a forward pass needs). A twin keeps the original's
    ``parallel`` and ``inline`` options.
    """
    made = []
    for dispatcher in dispatchers:
        f = getattr(dispatcher, "py_func", dispatcher)  # a plain function under DISABLE_JIT
        name = f"_{f.__name__.lstrip('_')}_{suffix}"
        twin = types_module.FunctionType(f.__code__, namespace, name, f.__defaults__, f.__closure__)
        twin.__qualname__ = name
        twin.__doc__ = f"Twin of :func:`{f.__module__}.{f.__name__}` ({suffix})."
        # The original's own options: parallel loops and inlining stay as they
        # were.
        options = getattr(dispatcher, "targetoptions", {})
        extra = {"parallel": True} if options.get("parallel") else {}
        if options.get("inline", "never") != "never":
            extra["inline"] = options["inline"]
        namespace[f.__name__] = kernel(twin, **extra)
        made.append(namespace[f.__name__])
    return made


def call_signature(dispatcher, types) -> tuple:
    """The argument types ``dispatcher`` compiles for a call with positional arguments of
    ``types``: omitted trailing parameters with defaults (``loss_code=0, weights=None`` of the
    loss drivers) become Numba ``Omitted`` types, as the dispatcher folds them at a call. A
    signature built from the given arguments alone names no overload (and ``compile`` rejects
    it): :mod:`fastbp._warm` and :func:`cached` use this one."""
    return tuple(dispatcher.fold_argument_types(tuple(types), {})[1])


def cached(dispatcher, args) -> bool:
    """Whether ``dispatcher(*args)`` would run without compiling: an overload for the types of
    ``args`` is compiled in this process, or its entry is in the disk cache's index (read, not
    loaded: a few hundred microseconds). Used by :mod:`fastbp._dispatch` to hand a network
    over from the plain tier to the tiled drivers once a helper process has compiled them.
    False where it cannot tell (no cache, the JIT off, a numba without these internals)."""
    try:
        sig = call_signature(dispatcher, tuple(numba.typeof(a) for a in args))
        if sig in dispatcher.overloads:
            return True
        cache = dispatcher._cache
        if not isinstance(cache, _PackageCache) or not cache._enabled:
            return False
        key = cache._index_key(sig, dispatcher.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # a private numba API moved, or an unreadable index: cannot tell
        return False
