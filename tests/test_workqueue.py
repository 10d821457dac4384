"""Every public entry point that can go parallel, from several Python threads, under Numba's
``workqueue`` threading layer (which aborts the process on concurrent parallel regions).

Each case runs in a child process (an abort there fails the test, not the suite) and compares
the bits of the threaded results with serial calls made in the same child.
"""

from __future__ import annotations

import pytest
from helpers import PARALLEL_CODE, run_script, script_result

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

# Finite differences cost n_params forward passes each: a 17-parameter network whose first
# layer reaches the threshold at 2^16 samples (2^19 multiply-adds) keeps them cheap.
small, BF = [2, 4, 1], 1 << 16
assert kernels.uses_threads(small, BF)
XF = rng.standard_normal((BF, small[0]))
YF = np.tanh(XF[:, :1])
fd_net = fastbp.MLP(small, "tanh", seed=1)

def fd(net):
    return fastbp.finite_difference_grad(fd_net.copy(), XF, YF)

def check(net):
    return np.array([fastbp.check_grad(fd_net.copy(), XF, YF).max_rel_error])

V = rng.standard_normal((2 * B, sizes[0]))
U = rng.standard_normal((2 * B, sizes[-1]))
v = rng.standard_normal(base.n_params)
W = rng.uniform(0.5, 2.0, 2 * B)
# A softmax cross-entropy network (integer labels) for the classification entry points.
clf = fastbp.MLP([8, 64, 3], ["tanh", "identity"], loss="softmax_cross_entropy", seed=2)
labels = rng.integers(0, 3, 2 * B)

def minimize(net):
    from fastbp import optimize
    optimize.minimize(net, X, Y, options={"maxiter": 3})
    return net.params.copy()

def least_squares(net):
    from fastbp import optimize
    net = fd_net.copy()  # a (2^16, 17) Jacobian: cheap for SciPy's Levenberg-Marquardt
    optimize.least_squares(net, XF, YF, max_nfev=3)
    return net.params.copy()

ENTRIES = {
    "forward": lambda net: net.forward(X),
    "predict": lambda net: net.predict(X),
    "loss": lambda net: np.array([net.loss(X, Y)]),
    "loss_and_grad": lambda net: net.loss_and_grad(X, Y)[1],
    "fit": fit,
    "fit_validation": fit_val,
    "finite_difference_grad": fd,
    "check_grad": check,
    "loss_and_grad_sample_weight": lambda net: net.loss_and_grad(X, Y, sample_weight=W)[1],
    "input_grad": lambda net: net.input_grad(X, Y)[1],
    "jacobian_forward": lambda net: net.jacobian(X, mode="forward"),
    "jacobian_reverse": lambda net: net.jacobian(X, mode="reverse"),
    "jvp": lambda net: net.jvp(X, V)[1],
    "vjp": lambda net: net.vjp(X, U)[1],
    "per_sample_grads": lambda net: net.per_sample_grads(X, Y)[1],
    "hvp": lambda net: net.hvp(X, Y, v),
    "gnvp": lambda net: net.gnvp(X, Y, v),
    "residual_jacobian": lambda net: net.residual_jacobian(X),
    "minimize": minimize,
    "least_squares": least_squares,
    "cross_entropy_loss_and_grad": lambda net: clf.copy().loss_and_grad(X, labels)[1],
    "cross_entropy_fit": lambda net: (
        clf.copy().fit(X, labels, epochs=1, batch_size=B, seed=0, progress=False).loss
    ),
    "predict_proba": lambda net: clf.copy().predict_proba(X),
}
name = sys.argv[1]
entry = ENTRIES[name]


serial = entry(base.copy())
threaded = parallel_code()
results = [None] * 4
def work(i):
    results[i] = entry(base.copy())
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
same = all(r is not None and np.array_equal(r, serial) for r in results)
print("RESULT " + json.dumps({"same": same, "threaded": threaded}))
"""

ENTRIES = [
    "forward", "predict", "loss", "loss_and_grad", "fit", "fit_validation",
    "finite_difference_grad", "check_grad", "loss_and_grad_sample_weight", "input_grad",
    "jacobian_forward", "jacobian_reverse", "jvp", "vjp", "per_sample_grads", "hvp", "gnvp",
    "residual_jacobian", "minimize", "least_squares", "cross_entropy_loss_and_grad",
    "cross_entropy_fit", "predict_proba",
]  # fmt: skip


@pytest.mark.parametrize("entry", ENTRIES)
def test_entry_point_from_four_threads_under_workqueue(entry):
    """No abort (the child exits 0), the same bits as the serial call, and the call really ran
    a threaded driver (machine code with a parallel region: tests/helpers.py PARALLEL_CODE), so
    the case is not vacuous."""
    out = run_script(
        PARALLEL_CODE + SCRIPT, entry, NUMBA_THREADING_LAYER="workqueue", NUMBA_NUM_THREADS="2"
    )
    result = script_result(out)
    assert result["same"] is True
    assert result["threaded"], f"{entry} ran no threaded driver"
