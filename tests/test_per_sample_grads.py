"""Per-sample gradients: MLP.per_sample_grads and fastbp.kernels.per_sample_grads.

Against PyTorch's vmap(grad) (golden values, tests/data/make_derivative_golden.py), the NumPy
oracle at a production shape for every activation, and the identities: the rows sum to
loss_and_grad's gradient and row n is loss_and_grad of sample n alone. Bits at 1 and 2 threads
and allocations: tests/test_derivatives_input.py (one fresh interpreter for all drivers). The
default run compiles the serial float64 body only (the ``serial`` fixture of that file, used
here too); float32 and the public threaded driver are ``slow``.
"""

import numpy as np
import pytest
import reference_derivatives as rd
from helpers import make_net, random_problem, rel_err, scalar_rel_err
from test_derivatives_input import (  # noqa: F401 (serial: the autouse fixture)
    BATCH,
    CASES,
    PRODUCTION,
    golden,
    golden_net,
    serial,
    wrapper_code,
)

import fastbp
from fastbp.activations import ACTIVATIONS


@pytest.mark.parametrize(
    "dtype,tol", [(np.float64, 1e-12), pytest.param(np.float32, 1e-4, marks=pytest.mark.slow)]
)
def test_golden(dtype, tol):
    for name in CASES:
        g = golden(name)
        net = golden_net(g, dtype)
        losses, G = net.per_sample_grads(g["X"].astype(dtype), g["Y"].astype(dtype))
        assert G.dtype == dtype and G.shape == g["G"].shape
        assert rel_err(G, g["G"]) < tol, (name, dtype)
        assert rel_err(losses, g["losses"]) < tol, (name, dtype)


@pytest.fixture(scope="module")
def production():
    rng = np.random.default_rng(11)
    return random_problem(rng, PRODUCTION, BATCH, scale=1.5)


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_production(act, production):
    theta, X, Y = production
    acts = [act] * (len(PRODUCTION) - 1)
    net = make_net(fastbp, PRODUCTION, acts, theta)
    out = np.full((BATCH, net.n_params), np.nan)
    losses, G = net.per_sample_grads(X, Y, out=out)
    assert G is out
    ref_losses, ref_G = rd.per_sample_grads(theta, PRODUCTION, acts, X, Y)
    assert rel_err(G, ref_G) < 1e-12 and rel_err(losses, ref_losses) < 1e-12
    loss, grad = net.loss_and_grad(X, Y)
    assert rel_err(G.sum(0), grad) < 1e-12
    assert scalar_rel_err(losses.sum(), loss) < 1e-12
    for n in (0, 37, BATCH - 1):
        one_loss, one_grad = net.loss_and_grad(X[n : n + 1], Y[n : n + 1])
        assert rel_err(G[n], one_grad) < 1e-12 and scalar_rel_err(losses[n], one_loss) < 1e-12


def test_one_sample_and_errors(production):
    theta, X, Y = production
    net = make_net(fastbp, PRODUCTION, "sigmoid", theta)
    loss, g = net.per_sample_grads(X[5], Y[5])
    assert g.shape == (net.n_params,) and isinstance(loss, float)
    assert np.array_equal(g, net.per_sample_grads(X[5:6], Y[5:6])[1][0])
    with pytest.raises(ValueError, match=r"out: expected shape \(70, 11647\)"):
        net.per_sample_grads(X, Y, out=np.empty(net.n_params))
    with pytest.raises(TypeError, match="out: expected dtype float64"):
        net.per_sample_grads(X, Y, out=np.empty((BATCH, net.n_params), np.float32))
    with pytest.raises(ValueError, match="X, Y: expected the same number of samples"):
        net.per_sample_grads(X, Y[:4])
    bad = Y.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"Y: expected finite values, found nan at index \(3, 1\)"):
        net.per_sample_grads(X, bad)


@pytest.mark.parametrize("public", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_compiled_driver(public, production):
    """fastbp.kernels.per_sample_grads, compiled (the slow run), and the code of its serial twin
    over the compiled serial body (the default run; see test_derivatives_input)."""
    from fastbp import kernels
    from fastbp._kernels import input_derivs

    driver = (
        kernels.per_sample_grads if public else wrapper_code(input_derivs._per_sample_grads_serial)
    )
    theta, X, Y = production
    net = make_net(fastbp, PRODUCTION, "relu", theta)
    th, sizes, codes = net.kernel_args()
    A, Z, _ = kernels.make_workspace(PRODUCTION, BATCH)
    losses, G = np.empty(BATCH), np.empty((BATCH, net.n_params))
    total = driver(th, sizes, codes, X, Y, A, Z, losses, G)
    assert total == net.loss(X, Y)
    ref_losses, ref_G = net.per_sample_grads(X, Y)
    assert np.array_equal(G, ref_G) and np.array_equal(losses, ref_losses)
    with pytest.raises(ValueError, match="G must have shape"):
        driver(th, sizes, codes, X, Y, A, Z, losses, np.empty((BATCH, 5)))
