"""Shared fixtures for the fastbp test suite."""

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

# The oracle (reference.py) and helpers.py live beside the tests and are imported as top-level
# modules. pytest's default "prepend" import mode already puts this folder on sys.path; this line
# keeps them importable under --import-mode=importlib too.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

# When a hypothesis test fails, its pytest plugin imports libcst (to suggest an @example patch),
# and libcst's import emits a DeprecationWarning from mypy_extensions. Under filterwarnings =
# error that turns a clean test failure into a pytest INTERNALERROR that hides the report. Import
# it once here, quietly, so the later import is a no-op.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import libcst  # noqa: F401
    except ImportError:  # libcst is optional for hypothesis
        pass


# The suite compiles the tiled drivers in-process, as it always has: with the background
# compile on, every test's first call of a new variant would start a helper process
# (fastbp._warm) competing for the two cores. tests/test_plain_tier.py turns it on where it
# tests the hand-over.
os.environ.setdefault("FASTBP_BACKGROUND_COMPILE", "0")
# The suite's threaded cases reach the threaded drivers from the kernels' own per-layer
# threshold (kernels.PARALLEL_MIN_WORK = 2**19 multiply-adds), not from the tier's higher one
# for a whole call (fastbp._dispatch.THREAD_MIN_WORK), so they stay small enough to compile and
# run quickly; tests/test_tiers.py checks the tier's own threshold.
os.environ.setdefault("FASTBP_THREAD_MIN_WORK", str(1 << 19))


@pytest.fixture
def rng():
    """A fresh, seeded generator per test (no global seeding)."""
    return np.random.default_rng(12345)


# The kernels that many files need (the serial loss_and_grad, loss and forward chains and the
# threaded drivers, of both dtypes; the threaded derivative and second-order bodies in float64)
# are compiled once, one dtype per core, before the xdist workers start, into the cache the
# workers and their child processes then load from. Without this the two workers and their
# children compile the same chains at the same time (measured on a cold suite: ~30 s of
# duplicated compile in the workers, the threaded drivers again in tests/test_workqueue.py's
# children), and one worker alone compiles the threaded bodies that only the workqueue
# children run (~30 s). Cold suite, 2-core AMD EPYC: 257 s with the serial chains only, 229 s
# with the threaded drivers too (docs/perf-log.md, "Suite time"). A warm cache makes it two
# short loads; a failure here is ignored (the tests compile what they need).
_PREWARM = """
import sys
import numpy as np
import fastbp

dtype = sys.argv[1]
net = fastbp.MLP([3, 5, 2], ["tanh", "sigmoid"], dtype=dtype, seed=0)
X = np.linspace(-1.0, 1.0, 12, dtype=dtype).reshape(4, 3)
Y = np.zeros((4, 2), dtype=dtype)
net.loss_and_grad(X, Y)
net.loss(X, Y)
net.forward(X)
from fastbp import kernels  # the threaded drivers, as a large network or batch calls them

theta, sizes, codes = net.kernel_args()
A, Z, tmp = kernels.make_workspace(net.sizes, 4, dtype)
grad = np.empty_like(theta)
out = np.empty((4, 2), dtype=dtype)
with fastbp._jit.PARALLEL_LOCK:
    kernels.loss_and_grad(theta, sizes, codes, X, Y, A, Z, tmp, grad)
    kernels.loss(theta, sizes, codes, X, Y, A, Z)
    kernels.forward(theta, sizes, codes, X, A, Z, out)
# One threaded body each (float64, as tests/test_workqueue.py runs them): [8, 64, 1] at 1024
# samples reaches the threshold the suite sets (FASTBP_THREAD_MIN_WORK, above).
big = fastbp.MLP([8, 64, 1], "tanh", seed=1)
Xb = np.linspace(-1.0, 1.0, 8192).reshape(1024, 8)
Yb = np.zeros((1024, 1))
if dtype == "float64":
    big.input_grad(Xb, Yb)
else:
    big.hvp(Xb, Yb, np.ones(big.n_params))
"""


def pytest_configure(config):
    import subprocess

    numprocesses = getattr(config.option, "numprocesses", None)
    if hasattr(config, "workerinput") or not numprocesses or numprocesses < 2:
        return  # a worker, or one process: nothing to share
    if os.environ.get("NUMBA_DISABLE_JIT") == "1" or os.environ.get("FASTBP_DISABLE_CACHE") == "1":
        return
    markexpr = getattr(config.option, "markexpr", "") or ""
    if markexpr.strip() == "cold":
        return  # the cold tests compile into caches of their own
    from helpers import child_env

    env = child_env(NUMBA_NUM_THREADS="2")
    sys.stderr.write(
        "tests/conftest.py: compiling the kernels most tests share into the cache, one dtype per "
        "core (about a minute when the cache is cold)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PREWARM, dtype],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for dtype in ("float64", "float32")
    ]
    for proc in procs:
        try:
            proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
