"""Every peer implementation in benchmarks/ runs: each is called once on a tiny shape, and its
loss and gradient (or Jacobian, per-sample gradients, H v, epoch) are checked against fastbp.
CI installs neither PyTorch nor JAX, so without this a broken peer (``jax.vmap(...,
in_dims=...)``, whose keyword is ``in_axes``) fails only in someone's asv run. The PyTorch and
JAX peers are skipped where those libraries are not installed."""

import sys

import numpy as np
import pytest
from helpers import ROOT, rel_err

import fastbp

if str(ROOT) not in sys.path:  # benchmarks/ is a package at the root of the checkout
    sys.path.insert(0, str(ROOT))

from benchmarks import common, derivative_peers, peer_impls, second_order, train_epoch  # noqa: E402

SIZES = [3, 5, 2]


@pytest.fixture
def problem():
    net, X, Y = common.make_problem(SIZES, 4)
    return net, X, Y


@pytest.fixture(params=["numpy", "torch", "jax"])
def peer(request):
    if request.param != "numpy":
        pytest.importorskip(request.param)
    return request.param


def test_loss_and_grad_peers(problem, peer):
    net, X, Y = problem
    loss, grad = net.loss_and_grad(X, Y)
    got_loss, got_grad = common.make_step(peer, net, X, Y)()
    if peer == "torch":  # a list of tensors, one per W and b, in fastbp's order
        got_grad = np.concatenate([np.asarray(g.detach()).ravel() for g in got_grad])
    assert abs(float(got_loss) - loss) <= 1e-12 * abs(loss)
    assert rel_err(np.asarray(got_grad).ravel(), grad) <= 1e-12


@pytest.mark.parametrize("activation", fastbp.ACTIVATIONS)
def test_numpy_activations_and_forward(activation, rng):
    net = fastbp.MLP(SIZES, activation, seed=0)
    X = rng.normal(size=(4, 3))
    assert rel_err(common.numpy_forward(net, X), net.forward(X)) <= 1e-12
    Y = rng.normal(size=(4, 2))
    _, grad = net.loss_and_grad(X, Y)
    step = peer_impls.make_numpy(net.params.copy(), SIZES, list(net.activations), X, Y)
    assert rel_err(step()[1], grad) <= 1e-10


def test_numpy_finite_differences(problem):
    net, X, Y = problem
    assert rel_err(common.numpy_fd_grad(net, X, Y), net.loss_and_grad(X, Y)[1]) <= 1e-7


def test_numpy_training_epoch_matches_fastbp(problem):
    """benchmarks/train_epoch.py's NumPy epoch is fastbp's SGD epoch (sigmoid layers)."""
    net, X, Y = problem
    params = ([W.copy() for W in net.weights], [b.copy() for b in net.biases])
    train_epoch.numpy_epoch(params, X, Y, 2)
    train_epoch.fastbp_epoch(net, X, Y, 2)
    assert rel_err(np.concatenate([params[0][0].ravel(), params[1][0]]), net.params[:20]) < 1e-12


def test_torch_training_epoch(problem):
    torch = pytest.importorskip("torch")
    net, X, Y = problem
    model, opt = train_epoch.torch_setup(net, 1)
    train_epoch.torch_epoch(model, opt, torch.from_numpy(X), torch.from_numpy(Y), 2)
    train_epoch.fastbp_epoch(net, X, Y, 2)
    got = np.asarray(model[0].weight.detach()).ravel()
    assert rel_err(got, net.weights[0].ravel()) < 1e-12


@pytest.mark.parametrize("impl", ["torch", "jax"])
def test_derivative_peers(problem, impl):
    pytest.importorskip(impl)
    net, X, Y = problem
    J = np.asarray(derivative_peers.make_jacobian_peer(impl, net, X)())
    assert rel_err(J, net.jacobian(X)) <= 1e-12
    G = derivative_peers.make_per_sample_peer(impl, net, X, Y)()  # (dW^1.., db^1..) batched
    L = len(G) // 2
    rows = [np.asarray(g).reshape(len(X), -1) for pair in zip(G[:L], G[L:]) for g in pair]
    flat = np.concatenate(rows, axis=1)  # fastbp's layout: W^1, b^1, W^2, b^2
    assert rel_err(flat, net.per_sample_grads(X, Y)[1]) <= 1e-12


# torch.func.jvp goes through torch.jit.script, which PyTorch 2.13 deprecates with a warning
# (the suite makes warnings errors); the peer itself is what this checks.
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torch_hvp_peer(problem, rng):
    pytest.importorskip("torch")
    net, X, Y = problem
    v = rng.normal(size=net.n_params)
    got = np.asarray(second_order.torch_hvp(net, X, Y, v)())
    assert rel_err(got, net.hvp(X, Y, v)) <= 1e-12


def test_peers_report_a_missing_library_as_not_implemented(monkeypatch, problem):
    """asv counts a NotImplementedError in setup as skipped: with torch and jax made
    unimportable, every maker says so (or returns None, which make_step turns into it)."""
    net, X, Y = problem
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "jax", None)
    for impl in ("torch", "jax"):
        with pytest.raises(NotImplementedError):
            common.make_step(impl, net, X, Y)
        with pytest.raises(NotImplementedError):
            derivative_peers.make_jacobian_peer(impl, net, X)
        with pytest.raises(NotImplementedError):
            derivative_peers.make_per_sample_peer(impl, net, X, Y)
