"""Every public entry point that can go parallel, from several Python threads, under Numba's
``workqueue`` threading layer (which aborts the process on concurrent parallel regions).

Each case runs in a child process (an abort there fails the test, not the suite) and compares
the bits of the threaded results with serial calls made in the same child.
"""

from __future__ import annotations

import pytest
from helpers import run_script, script_result

SCRIPT = r"""
import json, sys, threading
import numba, numpy as np
import fastbp
from fastbp import kernels

assert numba.config.THREADING_LAYER == "workqueue"
# [8, 64, 1] at B >= 1024 reaches kernels.PARALLEL_MIN_WORK in its first layer: the fit's
# batches, the validation blocks and the finite differences all take the threaded drivers.
sizes, B = [8, 64, 1], 1024
assert kernels.uses_threads(sizes, B) and numba.get_num_threads() > 1
rng = np.random.default_rng(0)
X = rng.standard_normal((2 * B, sizes[0]))
Y = np.tanh(X[:, :1])
base = fastbp.MLP(sizes, "tanh", seed=1)

def fit(net):
    net.fit(X, Y, epochs=1, batch_size=B, optimizer=fastbp.Adam(), seed=0, progress=False)
    return net.params.copy()

def fit_val(net):
    net.fit(X, Y, epochs=1, batch_size=B, seed=0, progress=False, validation_data=(X, Y))
    return np.array([*net.history.val_loss, *net.params])

def fd(net):
    return fastbp.finite_difference_grad(net, X[:B], Y[:B])

def check(net):
    return np.array([fastbp.check_grad(net, X[:B], Y[:B]).max_rel_error])

ENTRIES = {
    "forward": lambda net: net.forward(X),
    "predict": lambda net: net.predict(X),
    "loss": lambda net: np.array([net.loss(X, Y)]),
    "loss_and_grad": lambda net: net.loss_and_grad(X, Y)[1],
    "fit": fit,
    "fit_validation": fit_val,
    "finite_difference_grad": fd,
    "check_grad": check,
}
name = sys.argv[1]
entry = ENTRIES[name]
serial = entry(base.copy())
results = [None] * 4
def work(i):
    results[i] = entry(base.copy())
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
same = all(r is not None and np.array_equal(r, serial) for r in results)
print("RESULT " + json.dumps({"same": same}))
"""

ENTRIES = [
    "forward", "predict", "loss", "loss_and_grad", "fit", "fit_validation",
    "finite_difference_grad", "check_grad",
]  # fmt: skip


@pytest.mark.parametrize("entry", ENTRIES)
def test_entry_point_from_four_threads_under_workqueue(entry):
    """No abort (the child exits 0) and the same bits as the serial call."""
    out = run_script(SCRIPT, entry, NUMBA_THREADING_LAYER="workqueue", NUMBA_NUM_THREADS="2")
    assert script_result(out) == {"same": True}
