"""The public compiled drivers in fastbp.kernels, called from user @numba.njit code."""

import numba
import numpy as np
import pytest
from helpers import make_net, random_problem, rel_err, scalar_rel_err

import fastbp
from fastbp import kernels


@numba.njit
def repeated_loss_and_grad(theta, sizes, codes, X, Y, A, Z, tmp, grad, n):
    value = 0.0
    for _ in range(n):
        value = kernels.loss_and_grad(theta, sizes, codes, X, Y, A, Z, tmp, grad)
    return value


@numba.njit
def forward_and_loss(theta, sizes, codes, X, Y, A, Z, out):
    kernels.forward(theta, sizes, codes, X, A, Z, out)
    return kernels.loss(theta, sizes, codes, X, Y, A, Z)


@numba.njit
def sgd(theta, sizes, codes, X, Y, A, Z, tmp, grad, lr, steps, losses):
    for step in range(steps):
        losses[step] = kernels.loss_and_grad(theta, sizes, codes, X, Y, A, Z, tmp, grad)
        for i in range(theta.shape[0]):
            theta[i] -= lr * grad[i]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", fastbp.ACTIVATIONS)
def test_njit_loop_matches_method(activation, dtype, rng):
    sizes = (4, 7, 3)
    theta, X, Y = random_problem(rng, sizes, 11)
    X, Y = X.astype(dtype), Y.astype(dtype)
    net = make_net(fastbp, sizes, (activation, "sigmoid"), theta, dtype=dtype)
    loss, grad = net.loss_and_grad(X, Y)

    args = net.kernel_args()
    assert args[0] is net.params or np.shares_memory(args[0], net.params)
    A, Z, tmp = kernels.make_workspace(net.sizes, X.shape[0], dtype)
    g = np.full(net.n_params, np.nan, dtype=dtype)
    # Three calls in a row: the kernel overwrites grad, it does not accumulate.
    value = repeated_loss_and_grad(*args, X, Y, A, Z, tmp, g, 3)
    assert value == loss
    assert g.tobytes() == grad.tobytes()

    out = np.full((X.shape[0], sizes[-1]), np.nan, dtype=dtype)
    value = forward_and_loss(*args, X, Y, A, Z, out)
    assert out.tobytes() == net.forward(X).tobytes()
    assert value == net.loss(X, Y)


def test_larger_workspace_is_fine(rng):
    sizes = (3, 5, 2)
    theta, X, Y = random_problem(rng, sizes, 4)
    net = make_net(fastbp, sizes, ("tanh", "identity"), theta)
    loss, grad = net.loss_and_grad(X, Y)
    A, Z, tmp = kernels.make_workspace(net.sizes, 100, np.float64)
    assert A.ndim == 1 and A.shape[0] >= 100 * (5 + 2)
    assert Z.shape[0] >= 100 * (5 + 2)
    assert tmp.shape[0] >= 5
    g = np.empty(net.n_params)
    value = repeated_loss_and_grad(*net.kernel_args(), X, Y, A, Z, tmp, g, 1)
    assert scalar_rel_err(value, loss) <= 1e-15
    assert rel_err(g, grad) <= 1e-15


def test_njit_training_loop_matches_python_loop(rng):
    sizes = (3, 6, 2)
    theta, X, Y = random_problem(rng, sizes, 20)
    net = make_net(fastbp, sizes, ("tanh", "identity"), theta)
    lr, steps = 0.01, 25

    python_losses = []
    for _ in range(steps):
        loss, grad = net.loss_and_grad(X, Y)
        python_losses.append(loss)
        net.params = net.params - lr * grad

    trained = make_net(fastbp, sizes, ("tanh", "identity"), theta)
    theta_arr, sizes_arr, codes = trained.kernel_args()
    A, Z, tmp = kernels.make_workspace(trained.sizes, X.shape[0], np.float64)
    g = np.empty(trained.n_params)
    losses = np.empty(steps)
    sgd(theta_arr, sizes_arr, codes, X, Y, A, Z, tmp, g, lr, steps, losses)

    assert losses[-1] < losses[0]
    assert rel_err(losses, np.array(python_losses)) <= 1e-12
    assert rel_err(trained.params, net.params) <= 1e-12
