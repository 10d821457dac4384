"""fastbp.optimize: SciPy's minimize and least_squares over a network's parameters."""

import numpy as np
import pytest
from helpers import run_script

import fastbp

scipy = pytest.importorskip("scipy")
from fastbp import optimize  # noqa: E402  (needs scipy)


@pytest.fixture
def data(rng):
    X = rng.normal(size=(80, 3))
    Y = np.sin(X[:, :1]) + 0.5 * X[:, 1:2] * X[:, 2:3]
    return X, Y


@pytest.mark.parametrize("method", ["L-BFGS-B", "Newton-CG", "trust-krylov", "BFGS"])
def test_minimize_lowers_the_mean_loss_and_writes_params(data, method):
    X, Y = data
    net = fastbp.MLP([3, 16, 1], ["tanh", "identity"], seed=0)
    before = net.loss(X, Y) / len(X)
    result = optimize.minimize(net, X, Y, method=method, options={"maxiter": 30})
    assert np.array_equal(net.params, result.x)
    assert result.fun == pytest.approx(net.loss(X, Y) / len(X), rel=1e-12)
    assert result.fun < 0.5 * before
    assert result.nfev >= 1


def test_minimize_uses_the_exact_hessian(data):
    """Newton-CG's hessp is H v / B: near a minimum it converges in few iterations."""
    X, Y = data
    net = fastbp.MLP([3, 8, 1], ["tanh", "identity"], seed=1)
    optimize.minimize(net, X, Y, options={"maxiter": 500})
    result = optimize.minimize(net, X, Y, method="Newton-CG", options={"xtol": 1e-12})
    assert result.success
    _, g = net.loss_and_grad(X, Y)
    assert np.linalg.norm(g) / len(X) < 1e-6


@pytest.mark.parametrize("method", ["lm", "trf"])
def test_least_squares_lowers_the_loss_and_writes_params(data, method):
    X, Y = data
    net = fastbp.MLP([3, 8, 1], ["tanh", "identity"], seed=0)
    before = net.loss(X, Y)
    result = optimize.least_squares(net, X, Y, method=method, max_nfev=50)
    assert np.array_equal(net.params, result.x)
    assert result.cost == pytest.approx(net.loss(X, Y), rel=1e-10)
    assert result.cost < 0.2 * before


@pytest.mark.parametrize("fit", ["minimize", "least_squares"])
def test_bad_input_same_errors_as_loss_and_grad(data, fit):
    X, Y = data
    net = fastbp.MLP([3, 8, 1], "tanh", seed=0)
    start = net.params.copy()
    Xnan = X.copy()
    Xnan[2, 1] = np.nan
    for bad in ((X[:, :2], Y), (X, Y[:-1]), (Xnan, Y), (X.astype(str), Y)):
        with pytest.raises((TypeError, ValueError)) as expected:
            net.loss_and_grad(*bad)
        with pytest.raises(expected.type, match=str(expected.value).split("(")[0][:30]):
            getattr(optimize, fit)(net, *bad)
        assert np.array_equal(net.params, start)
    with pytest.raises(TypeError, match="'x0' is set by"):
        getattr(optimize, fit)(net, X, Y, x0=start)
    with pytest.raises(ValueError, match="at least one sample"):
        getattr(optimize, fit)(net, X[:0], Y[:0])


def test_import_fastbp_does_not_import_optimize():
    """The SciPy extra stays optional: ``import fastbp`` does not import fastbp.optimize (Numba
    itself imports SciPy where it is installed, so sys.modules cannot tell more)."""
    out = run_script("import sys, fastbp; print('RESULT', 'fastbp.optimize' in sys.modules)")
    assert out.split()[-1] == "False"


def test_minimize_cross_entropy_weights_equal_repeated_samples(rng):
    """A softmax cross-entropy network with labels and integer sample weights: the weighted
    objective is that of the repeated samples, so one L-BFGS run lands on the same point, and
    the L2 penalty (weights only) is scikit-learn's alpha / (2 n) ||W||^2."""
    X = rng.normal(size=(30, 4))
    y = rng.integers(0, 3, size=30)
    w = rng.integers(0, 4, size=30)
    w[0] = 1  # at least one sample
    nets = [
        fastbp.MLP([4, 6, 3], ["tanh", "identity"], loss="softmax_cross_entropy", seed=2)
        for _ in range(2)
    ]
    opts = {"l2": 0.1, "options": {"maxiter": 40}}
    weighted = optimize.minimize(nets[0], X, y, sample_weight=w, **opts)
    repeated = optimize.minimize(nets[1], X.repeat(w, axis=0), y.repeat(w), **opts)
    assert np.allclose(weighted.x, repeated.x, rtol=1e-6, atol=1e-9)
    assert weighted.fun == pytest.approx(repeated.fun, rel=1e-10)
    penalty = 0.05 * sum(float((W**2).sum()) for W in nets[0].weights)
    mean = nets[0].loss(X, y, sample_weight=w) / w.sum()
    assert weighted.fun == pytest.approx(mean + penalty / w.sum(), rel=1e-10)


def test_minimize_refuses_bad_weights_and_l2(data):
    X, Y = data
    net = fastbp.MLP([3, 4, 1], ["tanh", "identity"], seed=0)
    with pytest.raises(ValueError, match="sample_weight: every weight is zero"):
        optimize.minimize(net, X, Y, sample_weight=np.zeros(len(X)))
    with pytest.raises(ValueError, match="sample_weight: expected finite values >= 0"):
        optimize.minimize(net, X, Y, sample_weight=-np.ones(len(X)))
    with pytest.raises(ValueError, match="l2: expected a finite value >= 0"):
        optimize.minimize(net, X, Y, l2=-1.0)
