"""The serial twins of the drivers: the same bits as the public drivers, and no parfor compiled
for a network whose calls stay below the threading threshold."""

import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import fastbp
from fastbp import kernels


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "sizes,batch",
    [((5, 7, 3), 9), ((40, 33, 2), 64), ((300, 200, 4), 40), ((784, 128, 10), 1)],
)
def test_twins_give_the_public_drivers_bits(sizes, batch, dtype, rng):
    net = fastbp.MLP(list(sizes), ["tanh", "sigmoid"], dtype=dtype, seed=4)
    theta, sz, codes = net.kernel_args()
    X = rng.normal(size=(batch, sizes[0])).astype(dtype)
    Y = rng.normal(size=(batch, sizes[-1])).astype(dtype)
    results = []
    for fwd, lss, lag in (
        (kernels.forward, kernels.loss, kernels.loss_and_grad),
        (kernels._forward_serial, kernels._loss_serial, kernels._loss_and_grad_serial),
    ):
        A, Z, tmp = kernels.make_workspace(sizes, batch, dtype)
        out = np.empty((batch, sizes[-1]), dtype=dtype)
        grad = np.empty_like(theta)
        with fastbp._jit.PARALLEL_LOCK:
            fwd(theta, sz, codes, X, A, Z, out)
            value = lss(theta, sz, codes, X, Y, A, Z)
            total = lag(theta, sz, codes, X, Y, A, Z, tmp, grad)
        results.append((out, value, total, grad))
    (o1, v1, t1, g1), (o2, v2, t2, g2) = results
    assert o1.tobytes() == o2.tobytes() and v1 == v2 and t1 == t2
    assert g1.tobytes() == g2.tobytes()
    # The twin without the single-sample path (MLP's above TINY_PARAMS; none of these cases
    # takes that path): the same bits too.
    A, Z, tmp = kernels.make_workspace(sizes, batch, dtype)
    grad = np.empty_like(theta)
    assert kernels._loss_and_grad_large(theta, sz, codes, X, Y, A, Z, tmp, grad) == t1
    assert grad.tobytes() == g1.tobytes()


def test_twins_raise_like_the_drivers():
    net = fastbp.MLP([3, 4, 2], "tanh")
    theta, sz, codes = net.kernel_args()
    A, Z, tmp = kernels.make_workspace((3, 4, 2), 2, net.dtype)
    X = np.ones((2, 3))
    with pytest.raises(ValueError, match="Y must have shape"):
        kernels._loss_and_grad_serial(theta, sz, codes, X, np.ones((2, 3)), A, Z, tmp, theta * 0)
    X[1, 1] = np.nan
    with pytest.raises(ValueError, match="X: expected finite"):
        kernels._loss_serial(theta, sz, codes, X, np.ones((2, 2)), A, Z)


def test_threaded_needs_work_and_threads():
    """The public (threaded) drivers only when the work reaches the threshold and Numba may use
    more than one thread; otherwise the serial twins."""
    net = fastbp.MLP([784, 128, 10], "tanh")
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert not net._threaded(64)
        if numba.config.NUMBA_NUM_THREADS > 1:
            numba.set_num_threads(2)
            assert net._threaded(64) and not net._threaded(1)
    finally:
        numba.set_num_threads(old)


def test_small_network_compiles_no_parfor():
    """In a fresh process with the disk cache off (so everything really compiles): forward,
    loss, loss_and_grad and fit (per-sample SGD with validation, Adam mini-batches) on a
    network below the threshold compile none of the three prange kernels."""
    code = """
import numpy as np, fastbp
from fastbp import _forward_tiles as f, _backward_tiles as b
wrappers = (f.forward_rows_parallel, b.delta_columns_parallel, b.weight_gradient_rows_parallel)
X, Y = fastbp.datasets.xor()
net = fastbp.MLP([2, 8, 1], "tanh", seed=0)
net.forward(X); net.loss(X, Y); net.loss_and_grad(X, Y)
net.fit(X, Y, epochs=2, batch_size=1, progress=False, validation_data=(X, Y))
net.fit(X, Y, epochs=2, batch_size=4, optimizer=fastbp.Adam(), progress=False)
print(sum(len(w.overloads) for w in wrappers))
"""
    env = {**os.environ, "FASTBP_DISABLE_CACHE": "1", "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["0"]


@pytest.mark.parametrize("batch_size", [1, 7])
def test_fit_serial_twin_gives_the_threaded_bits(batch_size, monkeypatch, rng):
    """The same fit through train_steps and through its serial twin: identical parameters."""
    from fastbp import train

    X = rng.normal(size=(40, 5))
    Y = rng.normal(size=(40, 2))
    nets = []
    for threaded in (True, False):
        monkeypatch.setattr(train, "_threaded", lambda sizes, batch, t=threaded: t)
        net = fastbp.MLP([5, 6, 2], "tanh", seed=3)
        net.fit(X, Y, epochs=2, batch_size=batch_size, seed=1, progress=False,
                optimizer=fastbp.SGD(0.05, momentum=0.5), validation_data=(X, Y))  # fmt: skip
        nets.append(net)
    assert nets[0].params.tobytes() == nets[1].params.tobytes()
    assert nets[0].history.val_loss == nets[1].history.val_loss
