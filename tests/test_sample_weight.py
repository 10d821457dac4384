"""sample_weight: an integer weight is the sample repeated, 0 removes it (1e-13), for every loss
of the table; errors name sample_weight; weighted fits. Plain tier (see tests/test_losses.py)."""

import numpy as np
import pytest
import reference_losses as ref

import fastbp


@pytest.fixture(autouse=True)
def plain_tier(monkeypatch):
    monkeypatch.setattr(fastbp._dispatch, "tiled_ready", lambda kernel, args: False)
    monkeypatch.setattr(fastbp.train, "tiled_ready", lambda kernel, args: False)


def _problem(loss, rng, n=70):
    net = fastbp.MLP([6, 40, 5], ["tanh", "identity"], loss=loss, seed=5)
    X = rng.normal(size=(n, 6))
    if loss == "softmax_cross_entropy":
        Y = rng.integers(0, 5, size=n)
    elif loss == "sigmoid_cross_entropy":
        Y = rng.random(size=(n, 5))
    else:
        Y = rng.normal(size=(n, 5))
    return net, X, Y


@pytest.mark.parametrize("loss", fastbp.LOSSES)
def test_integer_weight_is_repetition_and_zero_is_removal(loss, rng):
    net, X, Y = _problem(loss, rng)
    w = rng.integers(0, 4, size=X.shape[0])
    value, grad = net.loss_and_grad(X, Y, sample_weight=w)
    Xr, Yr = np.repeat(X, w, axis=0), np.repeat(Y, w, axis=0)
    want, want_grad = net.loss_and_grad(Xr, Yr)
    assert value == pytest.approx(want, rel=1e-13)
    np.testing.assert_allclose(grad, want_grad, rtol=0, atol=1e-13 * np.abs(want_grad).max())
    assert net.loss(X, Y, sample_weight=w) == pytest.approx(want, rel=1e-13)
    ones = net.loss_and_grad(X, Y, sample_weight=np.ones(X.shape[0]))
    plain = net.loss_and_grad(X, Y)
    assert ones[0] == pytest.approx(plain[0], rel=1e-13)
    np.testing.assert_allclose(ones[1], plain[1], rtol=0, atol=1e-13 * np.abs(plain[1]).max())


@pytest.mark.parametrize("loss", fastbp.LOSSES)
def test_weights_against_the_oracle(loss, rng):
    net, X, Y = _problem(loss, rng, n=9)
    w = rng.random(9)
    Yf = ref.one_hot(Y, 5) if Y.ndim == 1 else Y
    want, want_grad = ref.loss_and_grad(loss, net.params, net.sizes, net.activations, X, Yf, w)
    value, grad = net.loss_and_grad(X, Y, sample_weight=w)
    assert value == pytest.approx(want, rel=1e-13)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-11, atol=1e-14)


def test_a_removed_sample_cannot_overflow(rng):
    net = fastbp.MLP([2, 3, 2], ["tanh", "identity"], seed=0)
    X = np.array([[0.1, 0.2], [0.3, 0.4]])
    Y = np.array([[0.0, 0.0], [1e300, 1e300]])  # its squared residual overflows
    assert net.loss(X, Y, sample_weight=[1.0, 0.0]) == net.loss(X[:1], Y[:1])


@pytest.mark.parametrize(
    "w,exc,match",
    [
        (np.ones(3), ValueError, r"sample_weight: expected shape \(4,\)"),
        (np.ones((4, 1)), ValueError, "sample_weight: expected shape"),
        (np.array([1.0, -1.0, 1.0, 1.0]), ValueError, "sample_weight: expected finite values"),
        (np.array([1.0, np.nan, 1.0, 1.0]), ValueError, "sample_weight: expected finite values"),
        (np.array([1.0, np.inf, 1.0, 1.0]), ValueError, "sample_weight: expected finite values"),
        (np.array(["a"] * 4), TypeError, "sample_weight: expected real numbers"),
    ],
)
def test_bad_weights_name_sample_weight(w, exc, match, rng):
    net, X, Y = _problem("squared", rng, n=4)
    before = net.params.copy()
    for call in (
        lambda: net.loss(X, Y, sample_weight=w),
        lambda: net.loss_and_grad(X, Y, sample_weight=w),
        lambda: net.fit(X, Y, epochs=1, sample_weight=w, progress=False),
    ):
        with pytest.raises(exc, match=match):
            call()
    np.testing.assert_array_equal(net.params, before)


@pytest.mark.parametrize("loss", fastbp.LOSSES)
def test_full_batch_fit_with_integer_weights_is_fit_on_repeated_data(loss, rng):
    net, X, Y = _problem(loss, rng, n=20)
    w = rng.integers(0, 3, size=20)
    a, b = net.copy(), net.copy()
    opt = dict(epochs=3, batch_size=10_000, shuffle=False, progress=False)
    ha = a.fit(X, Y, sample_weight=w, optimizer=fastbp.SGD(0.05), **opt)
    hb = b.fit(np.repeat(X, w, axis=0), np.repeat(Y, w, axis=0), optimizer=fastbp.SGD(0.05), **opt)
    np.testing.assert_allclose(a.params, b.params, rtol=0, atol=1e-13)
    np.testing.assert_allclose(ha.loss, hb.loss, rtol=1e-13)


def test_weighted_fit_is_deterministic_at_batch_size_one(rng):
    net, X, Y = _problem("softmax_cross_entropy", rng, n=30)
    w = rng.random(30)
    runs = []
    for _ in range(2):
        n = net.copy()
        n.fit(X, Y, epochs=2, batch_size=1, seed=4, sample_weight=w, progress=False)
        runs.append(n.params.tobytes())
    assert runs[0] == runs[1] and runs[0] != net.params.tobytes()
