"""Every activation and its derivative, elementwise against the reference, far into saturation.

A 1-layer net with input x = 1, W = a (one row per test point) and b = 0 has pre-activations
a and outputs h(a). With targets y = h_ref(a) - 1 the bias gradient is (z - y) h'(a) per unit.
pytest runs with filterwarnings = error, so any overflow or invalid-value warning fails here.
"""

import numpy as np
import pytest
import reference

import fastbp

POINTS = np.r_[
    -1000.0,
    -710.0,
    -100.0,
    -40.0,
    -20.0,
    -5.0,
    -1.0,
    -1e-8,
    0.0,
    1e-8,
    1.0,
    5.0,
    20.0,
    40.0,
    100.0,
    710.0,
    1000.0,
    np.linspace(-3.0, 3.0, 13),
]

# h(0), h'(0) for each activation (h'(0) of relu is 0 and of leaky_relu 0.01 by convention).
AT_ZERO = {
    "sigmoid": (0.5, 0.25),
    "tanh": (0.0, 1.0),
    "relu": (0.0, 0.0),
    "leaky_relu": (0.0, 0.01),
    "softplus": (np.log(2.0), 0.5),
    "identity": (0.0, 1.0),
}


def probe(name, a, dtype=np.float64):
    """(z, db, y) of a 1 -> len(a) layer at pre-activations a, with y = h_ref(a) - 1."""
    net = fastbp.MLP((1, a.size), name, dtype=dtype, seed=0)
    net.weights[0][:, 0] = a
    net.biases[0][:] = 0.0
    x = np.ones(1)
    y = reference.activation(name, a) - 1.0
    z = net.forward(x).copy()
    _, grad = net.loss_and_grad(x, y)
    return z, grad[a.size :].copy(), y


def test_table_covers_activations():
    assert set(AT_ZERO) == set(fastbp.ACTIVATIONS)
    assert len(set(fastbp.ACTIVATIONS)) == len(fastbp.ACTIVATIONS)


@pytest.mark.parametrize("name", fastbp.ACTIVATIONS)
def test_values_match_reference(name):
    z, _, _ = probe(name, POINTS)
    assert np.all(np.isfinite(z))
    # Relative per element, also for tiny values: softplus(-40) = 4.2e-18 must not become 0.
    np.testing.assert_allclose(z, reference.activation(name, POINTS), rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("name", fastbp.ACTIVATIONS)
def test_derivatives_match_reference(name):
    z, db, y = probe(name, POINTS)
    assert np.all(np.isfinite(db))
    expected = (z - y) * reference.activation_prime(name, POINTS)
    # Absolute floor 1e-15 (the scale is 1): where h' is below rounding of h (e.g. sigmoid'(40)
    # = 4e-18 from h (1 - h)), any tiny value is as good as the exact one for backprop.
    np.testing.assert_allclose(db, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", fastbp.ACTIVATIONS)
def test_value_and_derivative_at_zero(name):
    z, db, y = probe(name, np.zeros(1))
    h0, dh0 = AT_ZERO[name]
    assert z[0] == pytest.approx(h0, abs=1e-16)
    assert db[0] == pytest.approx(dh0, abs=1e-16)


@pytest.mark.parametrize("name", fastbp.ACTIVATIONS)
def test_large_inputs_float32(name):
    a = np.array([-1000.0, -100.0, -20.0, 0.0, 20.0, 100.0, 1000.0])
    z, db, y = probe(name, a, dtype=np.float32)
    assert z.dtype == np.float32
    assert np.all(np.isfinite(z))
    assert np.all(np.isfinite(db))
    np.testing.assert_allclose(z, reference.activation(name, a), rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("name", fastbp.ACTIVATIONS)
def test_saturated_loss_is_finite(name, rng):
    """Big weights push every unit to |a| ~ 1000: loss and gradient stay finite, no warnings."""
    sizes = (3, 4, 2)
    net = fastbp.MLP(sizes, name, seed=0)
    net.params = rng.choice([-1.0, 1.0], size=net.n_params) * 500.0
    X = rng.choice([-2.0, 2.0], size=(5, 3))
    Y = rng.normal(size=(5, 2))
    loss, grad = net.loss_and_grad(X, Y)
    assert np.isfinite(loss)
    assert np.all(np.isfinite(grad))
    assert np.all(np.isfinite(net.forward(X)))
