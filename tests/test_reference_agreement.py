"""fastbp against the independent NumPy oracle (tests/reference.py), float64, relative 1e-12."""

import numpy as np
import pytest
import reference
from helpers import make_net, random_problem, rel_err, scalar_rel_err

import fastbp

TOL = 1e-12

# Depth 1..4, widths including 1 and odd sizes, one and several outputs.
SIZES = [
    (1, 1),
    (3, 2),
    (5, 1),
    (1, 7, 1),
    (4, 3, 5),
    (2, 1, 3),
    (6, 5, 4, 3),
    (3, 7, 1, 5, 2),
    (1, 2, 3, 4, 5),
]
BATCHES = [1, 3, 17, 64]

# Mixed activations: each row is long enough for the deepest net; a net takes its first L names.
MIXES = [
    ("tanh", "sigmoid", "relu", "identity"),
    ("softplus", "leaky_relu", "tanh", "sigmoid"),
    ("relu", "softplus", "identity", "leaky_relu"),
    ("identity", "tanh", "softplus", "relu"),
]


def check_against_reference(sizes, activations, batch, seed):
    rng = np.random.default_rng(seed)
    theta, X, Y = random_problem(rng, sizes, batch)
    net = make_net(fastbp, sizes, activations, theta)
    ref_loss, ref_grad = reference.loss_and_grad(theta, sizes, activations, X, Y)
    ref_out = reference.forward(theta, sizes, activations, X)

    out = net.forward(X).copy()  # copies: results may live in reused workspace buffers
    loss = net.loss(X, Y)
    loss2, grad = net.loss_and_grad(X, Y)

    assert out.shape == ref_out.shape
    assert grad.shape == ref_grad.shape
    assert rel_err(out, ref_out) <= TOL
    assert scalar_rel_err(loss, ref_loss) <= TOL
    assert scalar_rel_err(loss2, ref_loss) <= TOL
    assert rel_err(grad, ref_grad) <= TOL


@pytest.mark.parametrize("activation", fastbp.ACTIVATIONS)
@pytest.mark.parametrize("sizes", SIZES, ids=str)
@pytest.mark.parametrize("batch", BATCHES)
def test_single_activation_matches_reference(activation, sizes, batch):
    activations = (activation,) * (len(sizes) - 1)
    check_against_reference(sizes, activations, batch, seed=batch + 100 * len(sizes))


@pytest.mark.parametrize("mix", MIXES, ids=lambda m: "-".join(m))
@pytest.mark.parametrize("sizes", [s for s in SIZES if len(s) > 2], ids=str)
@pytest.mark.parametrize("batch", BATCHES)
def test_mixed_activations_match_reference(mix, sizes, batch):
    activations = mix[: len(sizes) - 1]
    check_against_reference(sizes, activations, batch, seed=7 * batch + len(sizes))


@pytest.mark.parametrize("activation", fastbp.ACTIVATIONS)
def test_single_activation_name_means_every_layer(activation, rng):
    sizes = (3, 4, 2)
    theta, X, Y = random_problem(rng, sizes, 5)
    net = fastbp.MLP(sizes, activation, seed=0)
    net.params = theta
    assert net.activations == (activation, activation)
    ref_loss, ref_grad = reference.loss_and_grad(theta, sizes, (activation,) * 2, X, Y)
    loss, grad = net.loss_and_grad(X, Y)
    assert scalar_rel_err(loss, ref_loss) <= TOL
    assert rel_err(grad, ref_grad) <= TOL


@pytest.mark.parametrize("activation", fastbp.ACTIVATIONS)
def test_one_dimensional_sample(activation, rng):
    sizes = (4, 5, 3)
    activations = (activation, "tanh")
    theta, X, Y = random_problem(rng, sizes, 1)
    x, y = X[0], Y[0]
    net = make_net(fastbp, sizes, activations, theta)
    ref_loss, ref_grad = reference.loss_and_grad(theta, sizes, activations, X, Y)
    ref_out = reference.forward(theta, sizes, activations, X)[0]

    out = net.forward(x)
    assert out.shape == (3,)
    assert rel_err(out, ref_out) <= TOL
    assert scalar_rel_err(net.loss(x, y), ref_loss) <= TOL
    loss, grad = net.loss_and_grad(x, y)
    assert scalar_rel_err(loss, ref_loss) <= TOL
    assert rel_err(grad, ref_grad) <= TOL


def test_loss_is_python_float(rng):
    theta, X, Y = random_problem(rng, (3, 2), 4)
    net = make_net(fastbp, (3, 2), ("tanh",), theta)
    assert type(net.loss(X, Y)) is float
    assert type(net.loss_and_grad(X, Y)[0]) is float


def test_views_follow_the_layout(rng):
    sizes = (3, 4, 2)
    theta, _, _ = random_problem(rng, sizes, 1)
    net = make_net(fastbp, sizes, ("tanh", "sigmoid"), theta)
    Ws, bs = reference.unpack(theta, sizes)
    assert net.sizes == sizes
    assert net.n_params == theta.size
    for W, b, W_ref, b_ref in zip(net.weights, net.biases, Ws, bs, strict=True):
        assert np.array_equal(W, W_ref)
        assert np.array_equal(b, b_ref)
    # The views share the params buffer: writing a weight changes params.
    net.weights[1][1, 2] = 42.0
    assert net.params[3 * 4 + 4 + 1 * 4 + 2] == 42.0


def test_out_receives_the_gradient(rng):
    sizes = (3, 4, 2)
    theta, X, Y = random_problem(rng, sizes, 6)
    net = make_net(fastbp, sizes, ("softplus", "identity"), theta)
    out = np.full(net.n_params, np.nan)
    loss, grad = net.loss_and_grad(X, Y, out=out)
    assert grad is out
    ref_loss, ref_grad = reference.loss_and_grad(theta, sizes, ("softplus", "identity"), X, Y)
    assert scalar_rel_err(loss, ref_loss) <= TOL
    assert rel_err(out, ref_grad) <= TOL
