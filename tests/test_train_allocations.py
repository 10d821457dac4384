"""The training loop allocates nothing per step: the count of one compiled run of 3 steps
equals that of a run of 300 (only the boxing of the arguments, fixed per call, remains).

NUMBA_NRT_STATS=1 must be set before numba is imported, so this runs in a fresh interpreter.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

MEASURE = """
import json, sys
import numpy as np
from numba.core.runtime import rtsys
import fastbp
from fastbp import kernels, train_kernels

batch = int(sys.argv[1])
opt = fastbp.SGD(0.01, momentum=0.9) if sys.argv[2] == "momentum" else (
    fastbp.Adam(1e-3) if sys.argv[2] == "adam" else fastbp.SGD(0.01))
net = fastbp.MLP([5, 7, 6, 3], ["tanh", "relu", "sigmoid"], seed=0)
rng = np.random.default_rng(0)
n = 300 * batch
X = rng.normal(size=(n, 5)); Y = rng.uniform(size=(n, 3))
theta, sizes, codes = net.kernel_args()
kind, hyper, count, state = opt._args(net.n_params, net.dtype)
A, Z, tmp = kernels.make_workspace(net.sizes, batch, net.dtype)
grad = np.empty_like(theta)
Xb = np.empty((batch, 5)); Yb = np.empty((batch, 3)); out = np.empty((1, 3))
row = np.empty(7); losses = np.zeros(300); status = np.zeros(1, np.int64)
order = np.arange(n)

def run(first, stop):
    return train_kernels.train_steps(theta, sizes, codes, X, Y, order, batch, first, stop,
        kind, hyper, count, state, A, Z, tmp, grad, Xb, Yb, out, row, losses, status)

def allocations(first, stop):
    before = rtsys.get_allocation_stats()
    assert run(first, stop) == stop - first and status[0] == 0
    after = rtsys.get_allocation_stats()
    return [after.alloc - before.alloc, after.free - before.free]

run(0, 2)
print(json.dumps({"few": allocations(0, 3), "many": allocations(0, 300)}))
"""


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_training_steps_allocate_nothing(batch, optimizer):
    env = {**os.environ, "NUMBA_NRT_STATS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(batch), optimizer],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    counts = json.loads(out.stdout.strip().splitlines()[-1])
    assert counts["few"] == counts["many"], counts
    assert counts["many"][0] == counts["many"][1]  # what is allocated is freed
