"""Steady state allocates nothing in compiled code, and evaluation never changes the parameters.

Numba's NRT allocation counters exist only when NUMBA_NRT_STATS=1 is set before numba is
imported, so the measurement runs in a fresh interpreter.

Every NumPy array passed from Python into a compiled function is wrapped in one NRT meminfo
(counted as one alloc and one mi_alloc, freed on return). That boxing is the only allocation a
call from Python may show; the kernels themselves must allocate nothing. So the kernels are
measured from inside a user @njit loop (count with 1 inner iteration == count with 11), and the
methods are checked to allocate only a fixed boxing cost that does not grow with depth or batch.
"""

import os
from pathlib import Path

import numpy as np
import pytest
from helpers import make_net, random_problem, run_script, script_result

import fastbp

ROOT = Path(__file__).resolve().parents[1]
CALLS = 10

MEASURE = """
import json
import sys

import numba
import numpy as np
from numba.core.runtime import rtsys

import fastbp
from fastbp import kernels

CALLS = int(sys.argv[1])


@numba.njit
def user_loop(theta, sizes, codes, X, Y, A, Z, tmp, grad, out, n):
    total = 0.0
    for _ in range(n):
        total += kernels.loss_and_grad(theta, sizes, codes, X, Y, A, Z, tmp, grad)
        total += kernels.loss(theta, sizes, codes, X, Y, A, Z)
        kernels.forward(theta, sizes, codes, X, A, Z, out)
    return total


def count(call):
    for _ in range(3):  # warm up: compile, grow the workspace
        call()
    before = rtsys.get_allocation_stats()
    for _ in range(CALLS):
        call()
    after = rtsys.get_allocation_stats()
    return {"alloc": after.alloc - before.alloc, "free": after.free - before.free,
            "mi_alloc": after.mi_alloc - before.mi_alloc, "mi_free": after.mi_free - before.mi_free}


NETS = {
    "small": ([3, 2], ["sigmoid"], 1),
    "large": ([5, 7, 6, 4, 3], ["tanh", "relu", "softplus", "sigmoid"], 64),
}
result = {}
for dtype in (np.float64, np.float32):
    for label, (sizes, activations, batch) in NETS.items():
        net = fastbp.MLP(sizes, activations, dtype=dtype, seed=0)
        rng = np.random.default_rng(0)
        X = rng.normal(size=(batch, sizes[0])).astype(dtype)
        Y = rng.normal(size=(batch, sizes[-1])).astype(dtype)
        g = np.empty(net.n_params, dtype=dtype)
        key = np.dtype(dtype).name + " " + label + " "
        result[key + "loss_and_grad"] = count(lambda: net.loss_and_grad(X, Y, out=g))
        result[key + "forward"] = count(lambda: net.forward(X))
        result[key + "loss"] = count(lambda: net.loss(X, Y))
        A, Z, tmp = kernels.make_workspace(net.sizes, batch, dtype)
        out = np.empty((batch, sizes[-1]), dtype=dtype)
        theta, sizes_arr, codes = net.kernel_args()
        for n in (1, 11):
            result[key + "njit loop " + str(n)] = count(
                lambda: user_loop(theta, sizes_arr, codes, X, Y, A, Z, tmp, g, out, n)
            )
print("RESULT " + json.dumps(result))
"""

NO_JIT = pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"),
    reason="NRT allocation counters need compiled code",
)


@pytest.fixture(scope="module")
def counts():
    return script_result(run_script(MEASURE, str(CALLS), timeout=600, NUMBA_NRT_STATS="1"))


@NO_JIT
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("label", ["small", "large"])
def test_kernels_allocate_nothing(counts, dtype, label):
    """From compiled code, 11 inner iterations of the three drivers allocate what 1 does."""
    one = counts[f"{dtype} {label} njit loop 1"]
    eleven = counts[f"{dtype} {label} njit loop 11"]
    assert eleven == one
    # And what 1 does is only the boxing of the 10 array arguments of user_loop.
    assert one == dict.fromkeys(("alloc", "free", "mi_alloc", "mi_free"), 10 * CALLS)


@NO_JIT
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("method", ["loss_and_grad", "forward", "loss"])
def test_methods_allocate_only_boxing(counts, dtype, method):
    small = counts[f"{dtype} small {method}"]
    large = counts[f"{dtype} large {method}"]
    # Nothing leaks, and the cost is the same for a deep net with a big batch as for a tiny one:
    # no per-layer or per-sample allocation.
    assert small["alloc"] == small["free"] == small["mi_alloc"] == small["mi_free"]
    assert large == small
    # At most one meminfo per array argument of a driver (loss_and_grad takes 9 arrays).
    assert small["alloc"] <= 9 * CALLS


@pytest.mark.parametrize("activation", fastbp.ACTIVATIONS)
def test_evaluation_leaves_params_unchanged(activation, rng):
    sizes = (4, 6, 3)
    theta, X, Y = random_problem(rng, sizes, 9)
    net = make_net(fastbp, sizes, (activation, activation), theta)
    before = net.params.tobytes()
    g = np.empty(net.n_params)
    net.loss_and_grad(X, Y)
    net.loss_and_grad(X, Y, out=g)
    net.loss(X, Y)
    net.forward(X)
    assert net.params.tobytes() == before


def test_repeated_calls_are_bitwise_identical(rng):
    sizes = (4, 6, 3)
    theta, X, Y = random_problem(rng, sizes, 9)
    net = make_net(fastbp, sizes, ("softplus", "tanh"), theta)
    loss1, grad1 = net.loss_and_grad(X, Y)
    grad1 = grad1.copy()
    net.loss_and_grad(X[:2], Y[:2])  # a smaller batch in between reuses the workspace
    g = np.full(net.n_params, np.nan)
    loss2, grad2 = net.loss_and_grad(X, Y, out=g)
    assert loss1 == loss2
    assert grad1.tobytes() == grad2.tobytes()
