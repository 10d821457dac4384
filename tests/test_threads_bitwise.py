"""Parallel kernels give the same bits for 1 and 2 threads, and the parallel path really runs.

The drivers split a layer product over threads by disjoint blocks of output rows or columns,
or of samples (the forward pass from B = 256 on, each task copying its own samples of X^T; the
weight gradient of a layer with twice as many inputs as outputs by columns, each task packing
its own panels of z^(l-1)), aligned to the tiles, and every element is summed in the same order
whoever computes it. This checks that promise bit for bit on shapes above the work threshold,
with tails in every dimension (odd widths, a batch that does not fill the sample tiles) and
every kind of split. It runs in a fresh interpreter with NUMBA_NUM_THREADS=2 so it means the
same on a one-core CI machine.
"""

import pytest
from helpers import run_script, script_result


def run_two_threads(script: str, **env: str) -> str:
    """Run ``script`` in a fresh interpreter with NUMBA_NUM_THREADS=2 (and ``env``); its stdout."""
    return run_script(script, NUMBA_NUM_THREADS="2", **env)


SCRIPT = """
import hashlib, json, sys
import numba
import numpy as np
import fastbp
from fastbp import kernels
from fastbp._kernels import workspace as ws

out = {}
cases = [
    ((301, 203, 37), 67, "tanh", "float64"),
    ((784, 128, 10), 256, "sigmoid", "float64"),
    ((130, 257, 129, 3), 41, "softplus", "float32"),
    ((64,) * 6, 200, "relu", "float64"),
    # Split over samples with a last block of 11 samples; weight gradient over columns with
    # 12 columns and 2 rows outside the tiles.
    ((300, 130, 5), 299, "tanh", "float32"),
    # Wide inputs but B < 64: z^(l-1) is not packed, so the weight gradient splits rows.
    ((1000, 100, 3), 60, "sigmoid", "float64"),
    # Split over samples in a later layer too (reading the previous layer's transposed z),
    # with odd widths (the single-row tile) and a piecewise activation.
    ((64, 65, 63), 299, "relu", "float64"),
    # Split over columns in a later layer (z^1 packed from its own region), 8 tail columns.
    ((64, 520, 130), 128, "sigmoid", "float32"),
]
rng = np.random.default_rng(5)
for sizes, batch, act, dtype in cases:
    net = fastbp.MLP(sizes, act, dtype=dtype, seed=3)
    X = rng.standard_normal((batch, sizes[0])).astype(dtype)
    Y = rng.standard_normal((batch, sizes[-1])).astype(dtype)
    res = {"uses_threads": kernels.uses_threads(sizes, batch)}
    works = [batch * m_in * m_out for m_in, m_out in zip(sizes, sizes[1:])]
    res["splits"] = [
        "samples" if ws._sample_block(batch, w) else "rows" if ws._thread_block(m, w) else ""
        for w, m in zip(works, sizes[1:])
    ] + [
        "columns" if ws._column_block(m_in, m_out, w) and batch >= 64 and m_out >= 128 else ""
        for w, m_in, m_out in zip(works, sizes, sizes[1:])
    ]
    for nt in (1, 2, 1):
        numba.set_num_threads(nt)
        loss, grad = net.loss_and_grad(X, Y)
        f = net.forward(X)
        digest = hashlib.sha256(grad.tobytes() + f.tobytes() + np.float64(loss).tobytes())
        res.setdefault(str(nt), []).append(digest.hexdigest())
        numba.set_num_threads(2)
    out[str(sizes)] = res
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def digests():
    return script_result(run_two_threads(SCRIPT))


def test_cases_take_the_parallel_path(digests):
    assert digests, "no case ran"
    for case, res in digests.items():
        assert res["uses_threads"], f"{case} stays below PARALLEL_MIN_WORK: the test is vacuous"


def test_cases_cover_every_split(digests):
    """Forward over rows and over samples, weight gradient over columns: each taken somewhere."""
    taken = {split for res in digests.values() for split in res["splits"]}
    assert {"rows", "samples", "columns"} <= taken, taken


def test_one_and_two_threads_are_bitwise_identical(digests):
    for case, res in digests.items():
        one = res["1"]
        two = res["2"]
        assert one[0] == one[1], f"{case}: two 1-thread runs differ"
        assert one[0] == two[0], f"{case}: 1 and 2 threads differ"


ALLOC_SCRIPT = """
import json
import numba
import numpy as np
from numba.core.runtime import rtsys
import fastbp
from fastbp import kernels

@numba.njit
def loop(theta, sizes, codes, X, Y, A, Z, tmp, grad, n):
    total = 0.0
    for _ in range(n):
        total += kernels.loss_and_grad(theta, sizes, codes, X, Y, A, Z, tmp, grad)
    return total

sizes, batch = SHAPE
net = fastbp.MLP(sizes, "tanh", seed=0)
theta, sizes_arr, codes = net.kernel_args()
A, Z, tmp = kernels.make_workspace(sizes, batch, np.float64)
X = np.ones((batch, sizes[0]))
Y = np.zeros((batch, sizes[-1]))
grad = np.empty(net.n_params)
args = (theta, sizes_arr, codes, X, Y, A, Z, tmp, grad)
loop(*args, 1)
counts = {}
for n in (1, 11):
    before = rtsys.get_allocation_stats()
    loop(*args, n)
    after = rtsys.get_allocation_stats()
    counts[n] = [after.alloc - before.alloc, after.mi_alloc - before.mi_alloc]
result = {"uses_threads": kernels.uses_threads(sizes, batch), "counts": counts}
print("RESULT " + json.dumps(result))
"""


# Rows for both products; then samples (forward) and columns (first weight gradient).
@pytest.mark.parametrize("shape", [((301, 203, 37), 67), ((784, 128, 10), 256)])
def test_parallel_path_allocates_nothing(shape):
    res = script_result(run_two_threads(f"SHAPE = {shape!r}\n" + ALLOC_SCRIPT, NUMBA_NRT_STATS="1"))
    assert res["uses_threads"]
    # 11 parallel calls from compiled code allocate exactly what 1 does: the boxing of the
    # 9 array arguments of the outer loop, nothing per call.
    assert res["counts"]["1"] == res["counts"]["11"] == [9, 9]


BOUNDS_SCRIPT = """
import numba
import numpy as np
import fastbp
from fastbp import kernels

rng = np.random.default_rng(2)
# Samples split with a tail block (both layers), columns split with tail columns and rows
# outside the tiles in a later layer, rows split: every split of the threaded driver.
for sizes, batch, act in (((300, 130, 5), 299, "tanh"), ((64, 65, 63), 299, "relu"),
                          ((64, 520, 130), 128, "sigmoid")):
    net = fastbp.MLP(sizes, act, seed=1)
    theta, s, c = net.kernel_args()
    X = rng.standard_normal((batch, sizes[0]))
    Y = rng.standard_normal((batch, sizes[-1]))
    A, Z, tmp = kernels.make_workspace(s, batch)
    grad = np.empty_like(theta)
    kernels.loss_and_grad(theta, s, c, X, Y, A, Z, tmp, grad)
    out = np.empty((batch, sizes[-1]))
    kernels.forward(theta, s, c, X, A, Z, out)
print("OK")
"""


# Every threaded driver compiled with bounds checks and no cache (~50 s): CI's cold step.
@pytest.mark.cold
def test_parallel_splits_stay_in_bounds():
    """The threaded drivers compiled with NUMBA_BOUNDSCHECK=1 (every index checked, so an
    out-of-bounds read or write raises instead of corrupting memory) on every kind of split.
    The reliability step of CI runs the serial paths this way; this covers the parallel ones."""
    # FASTBP_DISABLE_CACHE: the cache key ignores boundscheck.
    out = run_two_threads(BOUNDS_SCRIPT, NUMBA_BOUNDSCHECK="1", FASTBP_DISABLE_CACHE="1")
    assert out.split() == ["OK"]
