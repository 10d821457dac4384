"""MLP.fit on networks whose layer-1 updates are deferred (train_kernels.defer_depth > 1):
chunking, divergence and Ctrl-C contracts as on the per-step path, and no allocation."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastbp
from fastbp import train, train_kernels

ROOT = Path(__file__).resolve().parents[1]
SIZES = [128, 128, 4]  # 16,384 weights in W^1: deferred, depth DEFER_DEPTH


def _net(acts=("sigmoid", "sigmoid"), seed=1):
    net = fastbp.MLP(SIZES, list(acts), seed=seed)
    theta, sizes, _ = net.kernel_args()
    assert train_kernels.defer_depth(sizes, net.n_params) == train_kernels.DEFER_DEPTH > 1
    return net


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n, SIZES[0])), rng.uniform(size=(n, SIZES[-1]))


@pytest.mark.parametrize("n", [37, 40])  # the epoch ends inside a group, at a group's end
def test_chunking_does_not_change_deferred_results(monkeypatch, n):
    X, Y = _data(n)
    results = []
    for seconds in (1e-9, 10.0):
        monkeypatch.setattr(train, "CHUNK_SECONDS", seconds)
        net = _net()
        hist = net.fit(X, Y, epochs=3, batch_size=1, seed=0, progress=False,
                       optimizer=fastbp.SGD(0.1, weight_decay=0.01))  # fmt: skip
        results.append((net.params.copy(), hist.loss))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]


def test_deferred_fit_agrees_with_the_python_loop():
    X, Y = _data(50)
    a = _net()
    b = a.copy()
    a.fit(X, Y, epochs=2, batch_size=1, seed=3, progress=False,
          optimizer=fastbp.SGD(0.1, weight_decay=0.01))  # fmt: skip
    opt = fastbp.SGD(0.1, weight_decay=0.01)
    rng = np.random.default_rng(3)
    grad = np.empty(b.n_params)
    for _ in range(2):
        for i in rng.permutation(50):
            b.loss_and_grad(X[i : i + 1], Y[i : i + 1], out=grad)
            opt.step(b.params, grad)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-12, atol=1e-14)


def _replay(net0, X, Y, steps, **kw):
    net = net0.copy()
    train.fit(net, X, Y, max_steps=steps, progress=False, **kw)
    return net


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("bad", [5, 22])  # inside a group, at a group's start
def test_deferred_divergence_in_the_update_names_the_step_and_replays(monkeypatch, bad):
    # Identity layers, zero biases and inputs: no gradient, only weight decay, until sample
    # `bad`, whose first feature is 1e155: a finite loss (~1e304), but lr * delta x^T overflows
    # W^1. The bound on |W^1| then sends that step through the per-step rule, whose check names
    # it. Tiny chunks: the failing step is several kernel calls into the epoch.
    monkeypatch.setattr(train, "CHUNK_SECONDS", 1e-9)
    n = 30
    X = np.zeros((n, SIZES[0]))
    Y = np.zeros((n, SIZES[-1]))
    X[bad, 0] = 1e155
    net0 = _net(("identity", "identity"))
    W1, W2 = net0.weights
    rng = np.random.default_rng(0)
    net0.params = np.concatenate(
        [0.01 * rng.uniform(size=W1.size), np.zeros(SIZES[1]),
         1e-3 * rng.uniform(size=W2.size), np.zeros(SIZES[2])]
    )  # fmt: skip
    kw = dict(epochs=1, batch_size=1, shuffle=False)
    net = net0.copy()
    opt = fastbp.SGD(1e5, weight_decay=1e-9)
    with pytest.raises(fastbp.TrainingDiverged, match=f"step {bad + 1} of {n}.*update") as info:
        net.fit(X, Y, optimizer=opt, progress=False, **kw)
    assert info.value.history.steps == bad and opt.steps == bad
    ref = _replay(net0, X, Y, bad, optimizer=fastbp.SGD(1e5, weight_decay=1e-9), **kw)
    np.testing.assert_array_equal(net.params, ref.params)
    # Weight decay alone before the bad sample: W^1 (1 - lr wd)^bad, to rounding.
    np.testing.assert_allclose(net.weights[0], W1 * (1 - 1e-4) ** bad, rtol=1e-13)


def test_deferred_divergence_on_the_loss_restores_the_last_step_bit_for_bit(monkeypatch):
    monkeypatch.setattr(train, "CHUNK_SECONDS", 1e-9)
    X, Y = _data(64)
    X[43] = 1e200  # the loss of that step is inf, with 3 updates of W^1 pending before it
    net0 = _net(("identity", "identity"))
    kw = dict(epochs=1, batch_size=1, shuffle=False, optimizer=fastbp.SGD(0.001))
    net = net0.copy()
    with pytest.raises(fastbp.TrainingDiverged, match="step 44 of 64: the loss is") as info:
        net.fit(X, Y, progress=False, **kw)
    assert info.value.history.steps == 43
    kw["optimizer"] = fastbp.SGD(0.001)
    np.testing.assert_array_equal(net.params, _replay(net0, X, Y, 43, **kw).params)


MEASURE = """
import json
import numpy as np
from numba.core.runtime import rtsys
import fastbp
from fastbp import kernels, train_kernels

net = fastbp.MLP([128, 128, 4], seed=0)
rng = np.random.default_rng(0)
n = 300
X = rng.uniform(size=(n, 128)); Y = rng.uniform(size=(n, 4))
theta, sizes, codes = net.kernel_args()
kind, hyper, count, state = fastbp.SGD(0.01)._args(net.n_params, net.dtype)
A, Z, tmp = kernels.make_workspace(net.sizes, 1, net.dtype)
grad = np.empty_like(theta)
Xb = np.empty((1, 128)); Yb = np.empty((1, 4)); out = np.empty((1, 4))
row = np.empty(128); losses = np.zeros(n); status = np.zeros(1, np.int64)
order = np.arange(n)

def run(first, stop):
    return train_kernels.train_steps(theta, sizes, codes, X, Y, order, 1, first, stop,
        kind, hyper, count, state, A, Z, tmp, grad, Xb, Yb, out, row, losses, status)

def allocations(first, stop):
    before = rtsys.get_allocation_stats()
    assert run(first, stop) == stop - first and status[0] == 0
    after = rtsys.get_allocation_stats()
    return [after.alloc - before.alloc, after.free - before.free]

run(0, 2)
print(json.dumps({"few": allocations(0, 3), "many": allocations(0, 298),
                  "resumed": allocations(298, 299)}))
"""


def test_deferred_steps_allocate_nothing():
    env = {**os.environ, "NUMBA_NRT_STATS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", MEASURE], env=env, cwd=ROOT, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    counts = json.loads(out.stdout.strip().splitlines()[-1])
    assert counts["few"] == counts["many"] == counts["resumed"]
