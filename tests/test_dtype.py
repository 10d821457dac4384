"""float32 networks: same results as float64 to single precision, and float32 throughout."""

import numpy as np
import pytest
import reference
from helpers import random_problem, rel_err, scalar_rel_err

import fastbp

TOL32 = 1e-4
SIZES = (5, 8, 6, 3)


@pytest.mark.parametrize("activation", fastbp.ACTIVATIONS)
def test_float32_close_to_float64(activation, rng):
    activations = (activation, "tanh", activation)
    _, X, Y = random_problem(rng, SIZES, 16)
    net64 = fastbp.MLP(SIZES, activations, dtype=np.float64, seed=7)
    net32 = fastbp.MLP(SIZES, activations, dtype=np.float32, seed=7)
    # The same seed gives the same initial parameters, up to float32 rounding.
    np.testing.assert_allclose(net32.params, net64.params, rtol=1e-6, atol=1e-7)
    # Compare at exactly the same point: the float32 parameters, read in float64.
    net64.params = net32.params.astype(np.float64)

    loss64, grad64 = net64.loss_and_grad(X, Y)
    loss32, grad32 = net32.loss_and_grad(X, Y)
    assert scalar_rel_err(loss32, loss64) <= TOL32
    assert rel_err(grad32, grad64) <= TOL32
    assert rel_err(net32.forward(X), net64.forward(X)) <= TOL32
    assert scalar_rel_err(net32.loss(X, Y), loss64) <= TOL32


def test_float32_close_to_reference(rng):
    activations = ("softplus", "sigmoid", "identity")
    theta, X, Y = random_problem(rng, SIZES, 32)
    net = fastbp.MLP(SIZES, activations, dtype=np.float32, seed=0)
    net.params = theta.astype(np.float32)
    theta32 = net.params.astype(np.float64)
    ref_loss, ref_grad = reference.loss_and_grad(theta32, SIZES, activations, X, Y)
    loss, grad = net.loss_and_grad(X, Y)
    assert scalar_rel_err(loss, ref_loss) <= TOL32
    assert rel_err(grad, ref_grad) <= TOL32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_everywhere(dtype, rng):
    _, X, Y = random_problem(rng, SIZES, 4)
    net = fastbp.MLP(SIZES, "tanh", dtype=dtype, seed=1)
    assert np.dtype(net.dtype) == np.dtype(dtype)
    assert net.params.dtype == dtype
    assert net.params.ndim == 1
    assert net.params.flags.c_contiguous
    assert all(W.dtype == dtype for W in net.weights)
    assert all(b.dtype == dtype for b in net.biases)
    loss, grad = net.loss_and_grad(X, Y)
    assert type(loss) is float
    assert grad.dtype == dtype
    assert grad.shape == net.params.shape
    assert net.forward(X).dtype == dtype
    out = np.zeros(net.n_params, dtype=dtype)
    assert net.loss_and_grad(X, Y, out=out)[1] is out


def test_float32_params_assignment_casts(rng):
    net = fastbp.MLP(SIZES, "tanh", dtype=np.float32, seed=1)
    theta = rng.normal(size=net.n_params)
    buffer = net.params
    net.params = theta
    assert net.params.dtype == np.float32
    assert np.array_equal(net.params, theta.astype(np.float32))
    # Same buffer: earlier references (and the weight views) see the new values.
    assert np.shares_memory(buffer, net.params)
    assert np.array_equal(buffer, theta.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_seed_same_network(dtype):
    a = fastbp.MLP(SIZES, "sigmoid", dtype=dtype, seed=3)
    b = fastbp.MLP(SIZES, "sigmoid", dtype=dtype, seed=3)
    c = fastbp.MLP(SIZES, "sigmoid", dtype=dtype, seed=4)
    assert a.params.tobytes() == b.params.tobytes()
    assert a.params.tobytes() != c.params.tobytes()
    assert np.all(np.isfinite(a.params))
