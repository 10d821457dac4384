"""Memory: no leak over 100,000 steady-state calls, and peak memory near what the buffers need.

Numba's runtime (NRT) counters exist only with ``NUMBA_NRT_STATS=1`` set before numba is
imported, and RSS is best read in a process that runs nothing else, so both measurements run
in a fresh interpreter. A call from Python boxes each array argument in one NRT allocation,
freed on return: balanced alloc/free counts are the no-leak criterion, not zero.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LEAK_SCRIPT = """
import gc
import json
import sys

import numpy as np
from numba.core.runtime import rtsys

import fastbp


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


method = sys.argv[1]
calls = int(sys.argv[2])
net = fastbp.MLP([8, 16, 4], ["tanh", "sigmoid"], seed=0)
rng = np.random.default_rng(0)
X = rng.normal(size=(4, 8))
Y = rng.normal(size=(4, 4))
out = np.empty(net.n_params)
if method == "loss_and_grad":
    call = lambda: net.loss_and_grad(X, Y, out=out)
elif method == "loss_and_grad_alloc":
    call = lambda: net.loss_and_grad(X, Y)
elif method == "forward":
    call = lambda: net.forward(X)
elif method == "loss":
    call = lambda: net.loss(X, Y)
elif method == "fit":
    call = lambda: net.fit(X, Y, epochs=1, batch_size=2, seed=0)
for _ in range(calls // 10):  # warm up: compile, grow the workspace, fill allocator pools
    call()
gc.collect()
stats0, rss0 = rtsys.get_allocation_stats(), rss_bytes()
for _ in range(calls):
    call()
gc.collect()
stats1, rss1 = rtsys.get_allocation_stats(), rss_bytes()
print(json.dumps({
    "alloc": stats1.alloc - stats0.alloc, "free": stats1.free - stats0.free,
    "mi_alloc": stats1.mi_alloc - stats0.mi_alloc, "mi_free": stats1.mi_free - stats0.mi_free,
    "rss_growth": rss1 - rss0, "calls": calls,
}))
"""

CALLS = 100_000
METHODS = ["loss_and_grad", "loss_and_grad_alloc", "forward", "loss", "fit"]


def run_script(script, *args, **env):
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", script, *map(str, args)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT), **env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("method", METHODS)
def test_no_leak_over_100k_calls(method):
    calls = CALLS if method != "fit" else CALLS // 10
    r = run_script(LEAK_SCRIPT, method, calls, NUMBA_NRT_STATS="1")
    assert r["alloc"] == r["free"], r
    assert r["mi_alloc"] == r["mi_free"], r
    # Each call boxes its array arguments (one NRT allocation each), so the counters must
    # move: a zero here would mean the statistics were not enabled.
    assert r["alloc"] >= calls, r
    # Flat RSS: a leak of even 16 bytes per call would add 1.6 MB over 100,000 calls.
    assert r["rss_growth"] < 1_000_000, r


PEAK_SCRIPT = """
import json
import tracemalloc

import numpy as np

import fastbp

sizes, batch = [1024, 1024, 1024, 1024], 256
dtype = np.float32
rng = np.random.default_rng(0)
X = rng.random((batch, sizes[0]), dtype=dtype)
Y = rng.random((batch, sizes[-1]), dtype=dtype)
# Compile (or load) the very drivers the traced calls take (at this batch the sample-blocked
# gradient, threaded where Numba has threads) before tracing: a compile's own allocations
# are not the library's buffers.
warm = fastbp.MLP(sizes, "tanh", dtype=dtype, seed=1)
warm.loss_and_grad(X, Y)
warm.forward(X)
del warm
tracemalloc.start()
net = fastbp.MLP(sizes, "tanh", dtype=dtype, seed=0)
loss, grad = net.loss_and_grad(X, Y)
out = net.forward(X)
loss, grad = net.loss_and_grad(X, Y, out=grad)
current, peak = tracemalloc.get_traced_memory()
item = np.dtype(dtype).itemsize
# The workspace as the library sizes it: A and Z, and tmp with the blocked gradient's packed
# weights (fastbp.kernels.workspace_lengths).
n_units, n_tmp = fastbp.kernels.workspace_lengths(sizes, batch)
needed = item * (2 * net.n_params + 2 * n_units + n_tmp + batch * sizes[-1])
print(json.dumps({"peak": peak, "needed": needed}))
"""


def test_peak_memory_within_1_5x_of_buffers():
    """Peak of NumPy allocations (tracemalloc) while building a [1024]*4 float32 network and
    computing at B=256, against theta + gradient + workspace A, Z, tmp + forward output.
    The [4096]*4, B=512 case is benchmarks/reliability.py (peakmem_)."""
    r = run_script(PEAK_SCRIPT)
    assert r["peak"] <= 1.5 * r["needed"], r
