"""The disk cache never hands one signature another's machine code (issue: numba #4807)."""

from __future__ import annotations

import pytest
from helpers import run_script, script_result

# Compile _has_nan for float64 into an empty cache, then point the float32 signature's index
# entry at the float64 data file: what two processes racing on one index can leave behind.
CRAFT = r"""
import numba, numpy as np
from fastbp import _checks, _jit
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
from fastbp import _checks
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
    import pkgutil
    import sys

    import fastbp
    from fastbp import _jit

    for info in pkgutil.walk_packages(fastbp.__path__, "fastbp."):
        if info.name != "fastbp.__main__":
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
