"""The disk cache never hands one signature another's machine code (issue: numba #4807).

Numba's index save is an unlocked read-modify-write; fastbp's save takes a lock, re-reads the
index under it, gives each signature its own data file and writes data then index atomically
(``fastbp._jit._LockedCacheFile``). Tested three ways: an index crossed by hand (the load guard),
two saves interleaved in one process (threads, deterministic), and two processes racing to save
float32 and float64 of one small kernel into one empty cache, then a third loading both.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import pytest
from helpers import ROOT, run_script, script_result

from fastbp import _jit

needs_cache_classes = pytest.mark.skipif(
    getattr(_jit, "_CacheLocator", None) is None or numba.config.DISABLE_JIT,
    reason="numba's cache classes are unavailable (or the JIT is off)",
)

# Compile _has_nan for float64 into an empty cache, then point the float32 signature's index
# entry at the float64 data file: what two processes racing on one index can leave behind.
CRAFT = r"""
import numba, numpy as np
from fastbp import _jit
from fastbp._kernels import checks as _checks
assert _jit.CACHE_DIR is not None
d = _checks._has_nan
assert d(np.array([1.0, np.nan])) is True
sig64 = (numba.typeof(np.zeros(2)),)
sig32 = (numba.typeof(np.zeros(2, np.float32)),)
codegen = d.targetctx.codegen()
index = d._cache._cache_file._load_index()
index[d._cache._index_key(sig32, codegen)] = index[d._cache._index_key(sig64, codegen)]
d._cache._cache_file._save_index(index)
print("RESULT true")
"""

CHECK = r"""
import json
import numpy as np
from fastbp._kernels import checks as _checks
buf = np.zeros(16, np.float32)
v = buf[:8]
v[0] = np.nan  # float64 code reading these bytes would see no NaN
print("RESULT " + json.dumps([bool(_checks._has_nan(v)), bool(_checks._has_nan(buf[8:]))]))
"""


def test_load_rejects_an_overload_of_another_signature(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path), "FASTBP_DISABLE_CACHE": "0"}
    assert script_result(run_script(CRAFT, **env)) is True
    assert script_result(run_script(CHECK, **env)) == [True, False]


RACE = r"""
import sys, numpy as np, fastbp
dt = np.dtype(sys.argv[1])
net = fastbp.MLP([5, 7, 3], "tanh", dtype=dt, seed=0)
X = np.linspace(-1, 1, 20).reshape(4, 5).astype(dt)
net.loss_and_grad(X, np.zeros((4, 3), dt))
print("RESULT true")
"""

VERIFY = r"""
import json, sys, numpy as np, fastbp
sys.path.insert(0, "tests")
from reference import loss_and_grad as ref
out = []
for dt in (np.float32, np.float64):
    net = fastbp.MLP([5, 7, 3], "tanh", dtype=dt, seed=0)
    X = np.linspace(-1, 1, 20).reshape(4, 5)
    loss, g = net.loss_and_grad(X.astype(dt), np.zeros((4, 3), dt))
    r_loss, r_g = ref(
        net.params.astype(np.float64), [5, 7, 3], list(net.activations), X, np.zeros((4, 3))
    )
    out.append(float(np.abs(g - r_g).max() / np.abs(r_g).max()))
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_two_processes_compile_two_dtypes_into_one_cache(tmp_path):
    """Both dtypes compiled at once into one empty cache; a third process loads both right."""
    import os
    import subprocess
    import sys

    from helpers import ROOT

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", RACE, dt], env=env, cwd=ROOT)
        for dt in ("float32", "float64")
    ]
    assert [p.wait(timeout=900) for p in procs] == [0, 0]
    errs = script_result(run_script(VERIFY, NUMBA_CACHE_DIR=str(tmp_path)))
    assert errs[0] < 1e-5 and errs[1] < 1e-12


def test_stamp_covers_every_compiled_module_and_not_the_cli():
    import importlib
    import importlib.util
    import pkgutil
    import sys

    import fastbp
    from fastbp import _jit
    from fastbp._extras import available  # a submodule whose optional extra is installed

    for info in pkgutil.walk_packages(fastbp.__path__, "fastbp."):
        if info.name != "fastbp.__main__" and available(info.name):
            importlib.import_module(info.name)
    stamped = {p.resolve() for p in _jit._compiled_sources(_jit.PACKAGE_DIR)}
    defining = {
        sys.modules[d.py_func.__module__].__file__
        for d in _jit.DISPATCHERS
        if getattr(d, "py_func", None) is not None
        and d.py_func.__module__ in sys.modules
        and d.py_func.__module__.startswith("fastbp")
    }
    assert defining, "no dispatcher found: the check would be empty"
    from pathlib import Path

    assert {Path(f).resolve() for f in defining} <= stamped
    names = {p.name for p in stamped}
    assert "cli.py" not in names and "cli_train.py" not in names and "network.py" not in names


def test_a_kernel_defined_outside_the_package_is_not_cached_under_it():
    from numba.core.caching import NullCache

    from fastbp import _jit

    def add_one(x):
        return x + 1

    d = _jit.kernel(add_one)
    assert isinstance(d._cache, NullCache)
    assert d(1) == 2


# --- saves that interleave -----------------------------------------------------------------


def _probe(x):
    return x + 1.0


def _package_caches(monkeypatch, path, n=2):
    """``n`` fresh package caches of one function, all on the index files under ``path``."""
    monkeypatch.setattr(_jit, "CACHE_DIR", str(path))
    return [_jit._PackageCache(_probe) for _ in range(n)]


@needs_cache_classes
def test_interleaved_saves_keep_both_entries_with_distinct_data_files(tmp_path, monkeypatch):
    """Saver A reads the index and stops there; saver B then saves another signature; A goes
    on. Unlocked (numba's save), B reads the index A is about to replace: both pick ``.1.nbc``
    and one entry is lost. Locked, B waits for A and re-reads the index A wrote."""
    a, b, fresh = (c._cache_file for c in _package_caches(monkeypatch, tmp_path, 3))
    read_by_a, resume_a, read_by_b = threading.Event(), threading.Event(), threading.Event()

    def pause_after_read(load_index, read, resume=None):
        def paused():
            index = load_index()
            read.set()
            if resume is not None:
                resume.wait(30)
            return index

        return paused

    a._load_index = pause_after_read(a._load_index, read_by_a, resume_a)
    b._load_index = pause_after_read(b._load_index, read_by_b)
    saver_a = threading.Thread(target=a.save, args=("key32", "code32"), daemon=True)
    saver_b = threading.Thread(target=b.save, args=("key64", "code64"), daemon=True)
    saver_a.start()
    assert read_by_a.wait(30)
    saver_b.start()
    # An unlocked B reads the index at once; a locked one cannot until A is done.
    b_read_while_a_paused = read_by_b.wait(1.0)
    if b_read_while_a_paused:
        saver_b.join(30)
    resume_a.set()
    saver_a.join(30)
    saver_b.join(30)
    assert not saver_a.is_alive() and not saver_b.is_alive()

    index = fresh._load_index()
    assert sorted(index) == ["key32", "key64"], index
    assert index["key32"] != index["key64"], index
    assert (fresh.load("key32"), fresh.load("key64")) == ("code32", "code64")
    assert not b_read_while_a_paused, "B read the index while A was between read and write"


@needs_cache_classes
def test_a_new_signature_never_takes_a_data_file_an_entry_names(tmp_path, monkeypatch):
    (cache,) = _package_caches(monkeypatch, tmp_path, 1)
    f = cache._cache_file
    f.save("k2", "two")
    f.save("k1", "one")
    f.save("k2", "two, again")  # the key's own file is rewritten, no new one
    index = f._load_index()
    assert sorted(index) == ["k1", "k2"] and index["k1"] != index["k2"]
    assert (f.load("k1"), f.load("k2")) == ("one", "two, again")
    assert len(list(tmp_path.glob("*.nbc"))) == 2
    assert not list(tmp_path.glob("*.tmp.*")), "a temporary file was left behind"


@needs_cache_classes
def test_a_missing_or_corrupt_data_file_is_a_miss(tmp_path, monkeypatch):
    (cache,) = _package_caches(monkeypatch, tmp_path, 1)
    f = cache._cache_file
    f.save("k", "code")
    data = tmp_path / f._load_index()["k"]
    data.write_bytes(b"\x80\x04garbage")
    assert f.load("k") is None
    data.unlink()
    assert f.load("k") is None
    f.save("k", "code")  # and a save repairs it
    assert f.load("k") == "code"


def _blocked_dir(tmp_path, cache):
    """The cache directory is below a regular file: it can never be created."""
    (tmp_path / "blocker").write_text("")


def _lock_path_is_a_directory(tmp_path, cache):
    os.makedirs(cache._cache_file._index_path + ".lock")


def _disk_full(tmp_path, cache):
    def no_space(path):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    cache._cache_file._open_for_write = no_space


@needs_cache_classes
@pytest.mark.parametrize("break_it", [_blocked_dir, _lock_path_is_a_directory, _disk_full])
def test_a_cache_that_cannot_be_written_never_fails_the_call(tmp_path, monkeypatch, break_it):
    """Caching turns itself off for the kernel; the call returns the right value, quietly
    (warnings are errors in this suite)."""
    where = tmp_path / "blocker" / "cache" if break_it is _blocked_dir else tmp_path
    d = _jit.kernel(_probe)
    (d._cache,) = _package_caches(monkeypatch, where, 1)
    break_it(tmp_path, d._cache)
    assert d(np.float64(1.5)) == 2.5
    assert d(np.float32(1.5)) == 2.5
    assert d._cache._enabled is False


# --- two processes racing to save ----------------------------------------------------------

# Compile _max_abs for one dtype; wait at a file gate just before the save so that both
# processes save at the same moment, and hold each index read 50 ms so that an unlocked
# read-modify-write (numba's) would surely overlap the other's.
RACE_SAVE = r"""
import os, sys, time
import numpy as np
from fastbp import _jit
from fastbp._kernels import checks as _checks
gate, dt = sys.argv[1], sys.argv[2]
assert _jit.CACHE_DIR is not None
f = _checks._max_abs._cache._cache_file
load_index, save = f._load_index, f.save

def slow_load_index():
    index = load_index()
    time.sleep(0.05)
    return index

def gated_save(key, data):
    open(os.path.join(gate, dt), "w").close()
    deadline = time.monotonic() + 120
    while len(os.listdir(gate)) < 2 and time.monotonic() < deadline:
        time.sleep(0.0005)
    save(key, data)

f._load_index, f.save = slow_load_index, gated_save
v = np.array([1.0, -3.0, 2.0, 0.5], dt)
assert _checks._max_abs(v) == 3.0
"""

# Load both signatures from the cache (no compile) and check them against NumPy.
RACE_LOAD = r"""
import json
import numpy as np
from fastbp._kernels import checks as _checks
d = _checks._max_abs
out = {"values": [], "index": sorted(d._cache._cache_file._load_index().values())}
for dt in (np.float32, np.float64):
    v = np.array([0.25, -7.5, 3.0, np.nan, 1.0], dt)[:3]  # the NaN is past the view's end
    out["values"].append([float(d(v)), float(np.max(np.abs(v)))])
out["hits"] = sum(d.stats.cache_hits.values())
out["misses"] = sum(d.stats.cache_misses.values())
print("RESULT " + json.dumps(out))
"""


RACES = 2


def test_two_processes_saving_two_dtypes_at_once_both_load_from_the_cache(tmp_path):
    """Two races (run side by side), each into an empty cache: float32 and float64 of one
    kernel compiled by two processes that save together; a third process then loads both
    (cache hits, no compile) and gets NumPy's answers."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    procs = []
    for race in range(RACES):
        (tmp_path / f"gate{race}").mkdir()
        env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / f"cache{race}")}
        env.update(FASTBP_DISABLE_CACHE="0", PYTHONPATH=path)
        procs += [
            subprocess.Popen(
                [sys.executable, "-c", RACE_SAVE, str(tmp_path / f"gate{race}"), dt],
                env=env,
                cwd=ROOT,
                stderr=subprocess.PIPE,
                text=True,
            )
            for dt in ("float32", "float64")
        ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs), errors

    def load(race):
        cache = str(tmp_path / f"cache{race}")
        return script_result(run_script(RACE_LOAD, NUMBA_CACHE_DIR=cache, FASTBP_DISABLE_CACHE="0"))

    with ThreadPoolExecutor(RACES) as pool:
        results = list(pool.map(load, range(RACES)))
    for race, got in enumerate(results):
        assert len(got["index"]) == 2 and got["index"][0] != got["index"][1], (race, got)
        assert (got["hits"], got["misses"]) == (2, 0), (race, got)
        for value, expected in got["values"]:
            assert value == expected, (race, got)
