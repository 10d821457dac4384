"""Property tests over random shapes and activations (hypothesis)."""

import numpy as np
import reference
from helpers import make_net, random_problem, rel_err, scalar_rel_err
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbp

TOL = 1e-10


@st.composite
def problems(draw, min_batch=0):
    depth = draw(st.integers(1, 3))
    sizes = tuple(draw(st.lists(st.integers(1, 6), min_size=depth + 1, max_size=depth + 1)))
    activations = tuple(
        draw(st.lists(st.sampled_from(fastbp.ACTIVATIONS), min_size=depth, max_size=depth))
    )
    batch = draw(st.integers(min_batch, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    return sizes, activations, batch, seed


@settings(max_examples=50, deadline=None)
@given(problems())
def test_matches_reference(problem):
    sizes, activations, batch, seed = problem
    theta, X, Y = random_problem(np.random.default_rng(seed), sizes, batch)
    net = make_net(fastbp, sizes, activations, theta)
    loss, grad = net.loss_and_grad(X, Y)
    ref_loss, ref_grad = reference.loss_and_grad(theta, sizes, activations, X, Y)
    out = net.forward(X)
    assert grad.shape == net.params.shape == (reference.n_params(sizes),)
    assert out.shape == (batch, sizes[-1])
    assert rel_err(out, reference.forward(theta, sizes, activations, X)) <= TOL
    if batch == 0:
        assert loss == 0.0
        assert np.all(grad == 0.0)
    else:
        assert scalar_rel_err(loss, ref_loss) <= TOL
        assert rel_err(grad, ref_grad) <= TOL


@settings(max_examples=50, deadline=None)
@given(problems(min_batch=1))
def test_loss_and_grad_are_sums_over_samples(problem):
    """The batch loss and gradient are the sums of the one-sample ones."""
    sizes, activations, batch, seed = problem
    theta, X, Y = random_problem(np.random.default_rng(seed), sizes, batch)
    net = make_net(fastbp, sizes, activations, theta)
    loss, grad = net.loss_and_grad(X, Y)
    grad = grad.copy()
    parts = []
    for n in range(batch):
        loss_n, grad_n = net.loss_and_grad(X[n], Y[n])
        parts.append((loss_n, grad_n.copy()))  # the returned array may be a reused buffer
    total_loss = sum(p[0] for p in parts)
    total_grad = np.sum([p[1] for p in parts], axis=0)
    assert scalar_rel_err(loss, total_loss) <= TOL
    assert rel_err(grad, total_grad) <= TOL


@settings(max_examples=50, deadline=None)
@given(problems())
def test_empty_batch_gives_zero(problem):
    sizes, activations, _, seed = problem
    theta, _, _ = random_problem(np.random.default_rng(seed), sizes, 0)
    net = make_net(fastbp, sizes, activations, theta)
    X = np.zeros((0, sizes[0]))
    Y = np.zeros((0, sizes[-1]))
    out = np.full(net.n_params, np.nan)
    loss, grad = net.loss_and_grad(X, Y, out=out)
    assert loss == 0.0
    assert type(loss) is float
    assert grad is out
    assert np.all(grad == 0.0)
    assert net.loss(X, Y) == 0.0
    assert net.forward(X).shape == (0, sizes[-1])
