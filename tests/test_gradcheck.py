"""Backpropagation against finite differences (fastbp.finite_difference_grad, fastbp.check_grad)."""

import numpy as np
import pytest
import reference
from helpers import make_net, random_problem, rel_err

import fastbp

SIZES = (3, 5, 4, 2)
BATCH = 6
# Pre-activations must stay this far from the relu / leaky_relu kink at 0, so that a central
# difference with a step of about 1e-5 never straddles it.
KINK_MARGIN = 1e-3


def problem(activation, seed):
    rng = np.random.default_rng(seed)
    activations = (activation, "tanh", activation)
    theta, X, Y = random_problem(rng, SIZES, BATCH)
    return activations, theta, X, Y


def generic_problem(activation):
    """First seed whose pre-activations are all at least KINK_MARGIN away from 0."""
    for seed in range(100):
        activations, theta, X, Y = problem(activation, seed)
        a = reference.pre_activations(theta, SIZES, activations, X)
        if np.min(np.abs(a)) > KINK_MARGIN:
            return activations, theta, X, Y
    raise AssertionError("no seed gave pre-activations away from the kink")


@pytest.mark.parametrize("activation", fastbp.ACTIVATIONS)
def test_backprop_matches_central_differences(activation):
    activations, theta, X, Y = generic_problem(activation)
    net = make_net(fastbp, SIZES, activations, theta)
    _, grad = net.loss_and_grad(X, Y)
    fd = fastbp.finite_difference_grad(net, X, Y, scheme="central")
    assert fd.shape == grad.shape
    assert rel_err(grad, fd) <= 1e-6


@pytest.mark.parametrize("activation", fastbp.ACTIVATIONS)
def test_backprop_matches_forward_differences(activation):
    activations, theta, X, Y = generic_problem(activation)
    net = make_net(fastbp, SIZES, activations, theta)
    _, grad = net.loss_and_grad(X, Y)
    fd = fastbp.finite_difference_grad(net, X, Y, scheme="forward")
    assert rel_err(grad, fd) <= 1e-4


def test_central_is_more_accurate_than_forward():
    activations, theta, X, Y = generic_problem("sigmoid")
    net = make_net(fastbp, SIZES, activations, theta)
    _, grad = net.loss_and_grad(X, Y)
    central = fastbp.finite_difference_grad(net, X, Y, scheme="central")
    forward = fastbp.finite_difference_grad(net, X, Y, scheme="forward")
    assert rel_err(central, grad) < rel_err(forward, grad)


@pytest.mark.parametrize("eps", [1e-4, 1e-6])
def test_explicit_eps(eps):
    activations, theta, X, Y = generic_problem("softplus")
    net = make_net(fastbp, SIZES, activations, theta)
    _, grad = net.loss_and_grad(X, Y)
    fd = fastbp.finite_difference_grad(net, X, Y, eps=eps, scheme="central")
    assert rel_err(grad, fd) <= 1e-6


@pytest.mark.parametrize("scheme", ["central", "forward"])
def test_finite_differences_leave_params_unchanged(scheme, rng):
    theta, X, Y = random_problem(rng, SIZES, BATCH)
    # Values whose +-eps round trip is not exact, so a perturb-and-restore would show.
    theta = theta * np.pi
    net = make_net(fastbp, SIZES, ("tanh", "sigmoid", "softplus"), theta)
    before = net.params.tobytes()
    fastbp.finite_difference_grad(net, X, Y, scheme=scheme)
    assert net.params.tobytes() == before
    fastbp.finite_difference_grad(net, X, Y, eps=0.1, scheme=scheme)
    assert net.params.tobytes() == before


@pytest.mark.parametrize("activation", fastbp.ACTIVATIONS)
def test_check_grad_is_small(activation):
    activations, theta, X, Y = generic_problem(activation)
    net = make_net(fastbp, SIZES, activations, theta)
    before = net.params.tobytes()
    result = fastbp.check_grad(net, X, Y)
    assert isinstance(result.max_rel_error, float)
    assert float(result) == result.max_rel_error
    assert 0.0 <= result.max_rel_error <= 1e-6
    assert net.params.tobytes() == before


def test_check_grad_agrees_with_its_definition():
    activations, theta, X, Y = generic_problem("tanh")
    net = make_net(fastbp, SIZES, activations, theta)
    eps = 1e-5
    result = fastbp.check_grad(net, X, Y, eps=eps)
    _, bp = net.loss_and_grad(X, Y)
    fd = fastbp.finite_difference_grad(net, X, Y, eps=eps, scheme="central")
    scale = max(np.max(np.abs(bp)), np.max(np.abs(fd)))
    expected = float(np.max(np.abs(bp - fd)) / scale)
    assert result.max_rel_error == pytest.approx(expected, rel=1e-6, abs=1e-15)


def test_check_grad_detects_a_wrong_gradient(monkeypatch):
    activations, theta, X, Y = generic_problem("sigmoid")
    net = make_net(fastbp, SIZES, activations, theta)
    assert fastbp.check_grad(net, X, Y).max_rel_error <= 1e-6

    cls = type(net)
    right = cls.loss_and_grad

    def wrong(self, X, Y, out=None):
        loss, grad = right(self, X, Y, out=out)
        grad[7] += 0.01 * np.max(np.abs(grad))
        return loss, grad

    monkeypatch.setattr(cls, "loss_and_grad", wrong)
    assert fastbp.check_grad(net, X, Y).max_rel_error >= 1e-3


@pytest.mark.parametrize("scheme", ["backward", "Central", "", None, 2])
def test_bad_scheme_raises(scheme, rng):
    theta, X, Y = random_problem(rng, SIZES, BATCH)
    net = make_net(fastbp, SIZES, ("tanh",) * 3, theta)
    before = net.params.tobytes()
    with pytest.raises((ValueError, TypeError), match="scheme"):
        fastbp.finite_difference_grad(net, X, Y, scheme=scheme)
    assert net.params.tobytes() == before


@pytest.mark.parametrize("eps", [0.0, -1e-6, np.nan, np.inf])
def test_bad_eps_raises(eps, rng):
    theta, X, Y = random_problem(rng, SIZES, BATCH)
    net = make_net(fastbp, SIZES, ("tanh",) * 3, theta)
    with pytest.raises((ValueError, TypeError), match="eps"):
        fastbp.finite_difference_grad(net, X, Y, eps=eps)
