"""Numba runtime (NRT) allocations per steady-state kernel call: the design promises none.

Measured in a subprocess started with ``NUMBA_NRT_STATS=1`` (the statistics exist only when the
variable is set before numba is imported, and the asv process has imported numba already). The
public driver is called from the user's side of the contract, an ``@njit`` loop, ``n1`` and then
``n2`` times; the reported number is ``(allocs(n2) - allocs(n1)) / (n2 - n1)``. The difference
cancels the allocations of boxing the loop's own array arguments (one per array per Python-level
call, freed on return), so what remains is what the kernel itself allocates per call.
"""

from __future__ import annotations

import json
import subprocess
import sys

from .common import child_env, smoke_params

ALLOC_CONFIGS = {"2-16-1": [2, 16, 1], "784-128-10": [784, 128, 10]}

CHILD = """
import json
import sys

import numba
import numpy as np
from numba.core.runtime import rtsys

import fastbp
from fastbp import kernels

sizes, batch, driver = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
net = fastbp.MLP(sizes, seed=0)
X = rng.uniform(-1.0, 1.0, size=(batch, sizes[0]))
Y = rng.uniform(0.1, 0.9, size=(batch, sizes[-1]))
theta, sizes_arr, codes = net.kernel_args()
A, Z, tmp = kernels.make_workspace(net.sizes, batch, net.dtype)
grad = np.empty_like(theta)
out = np.empty((batch, sizes[-1]))


@numba.njit
def loop_loss_and_grad(n, theta, sizes, codes, X, Y, A, Z, tmp, grad):
    s = 0.0
    for _ in range(n):
        s += kernels.loss_and_grad(theta, sizes, codes, X, Y, A, Z, tmp, grad)
    return s


@numba.njit
def loop_forward(n, theta, sizes, codes, X, A, Z, out):
    for _ in range(n):
        kernels.forward(theta, sizes, codes, X, A, Z, out)


def run(n):
    if driver == "loss_and_grad":
        loop_loss_and_grad(n, theta, sizes_arr, codes, X, Y, A, Z, tmp, grad)
    else:
        loop_forward(n, theta, sizes_arr, codes, X, A, Z, out)


def allocations(n):
    before = rtsys.get_allocation_stats()
    run(n)
    after = rtsys.get_allocation_stats()
    return after.alloc - before.alloc, after.free - before.free


run(1)  # compile
n1, n2 = 10, 110
(a1, f1), (a2, f2) = allocations(n1), allocations(n2)
print(json.dumps({"alloc": (a2 - a1) / (n2 - n1), "leak": (a2 - f2) / n2}))
"""


def measure(sizes, batch: int, driver: str) -> dict:
    """Run :data:`CHILD` with NRT statistics on; returns its ``alloc`` and ``leak`` per call."""
    env = child_env(NUMBA_NRT_STATS="1")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([sizes, batch, driver])],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"allocation probe failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class Allocations:
    """``track_nrt_allocations_per_call``: NRT allocations per call inside an njit loop."""

    # Smoke mode keeps both batches: B = 1 takes the single-sample path of tiny networks.
    params = smoke_params(list(ALLOC_CONFIGS), [1, 32], ["loss_and_grad", "forward"], keep=(1, 2))
    param_names = ["sizes", "batch", "driver"]
    unit = "allocations per call"
    timeout = 180

    def track_nrt_allocations_per_call(self, config, batch, driver):
        return measure(ALLOC_CONFIGS[config], batch, driver)["alloc"]
