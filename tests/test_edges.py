"""Numerics at the edges: huge inputs, saturation, overflowing losses, dtype conversions.

The contract (docs/reliability.md): inputs are finite (validated); results are finite, or
+-inf where the exact value overflows the dtype (the loss is a float64 and overflows to +inf);
a result that would be NaN because an intermediate value overflowed (inf - inf, 0 * inf) raises
``FloatingPointError`` instead, and so does a pre-activation or a backpropagated sum that
overflows (the layer products use FMA, which makes inf - inf a silent +inf); no floating-point
warning escapes (pytest turns warnings into errors here); the network is never changed.
"""

import itertools
import math

import numba
import numpy as np
import pytest

import fastbp

ACTIVATIONS = fastbp.ACTIVATIONS

#: Under NUMBA_DISABLE_JIT=1 the kernels run as Python on NumPy scalars, which warn on overflow.
overflows = pytest.mark.skipif(
    numba.config.DISABLE_JIT, reason="NumPy scalars warn on overflow with the JIT off"
)
SATURATING = ("sigmoid", "tanh")  # bounded outputs
BIG = {np.float64: (1e300, 1.7e308), np.float32: (1e30, 3e38)}


@pytest.fixture
def rng():
    return np.random.default_rng(99)


def signs(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


def call_all(net, X, Y):
    """forward, loss and loss_and_grad; each result or the FloatingPointError it raised."""
    results = {}
    for name, call in (
        ("forward", lambda: net.forward(X)),
        ("loss", lambda: net.loss(X, Y)),
        ("loss_and_grad", lambda: net.loss_and_grad(X, Y)),
    ):
        try:
            results[name] = call()
        except FloatingPointError as exc:
            assert "overflowed" in str(exc)
            results[name] = exc
    return results


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("hidden", ACTIVATIONS)
@pytest.mark.parametrize("output", SATURATING)
@pytest.mark.parametrize("sign", ["+", "-", "mixed"])
def test_saturated_everything_is_finite(hidden, output, sign, dtype, rng):
    """Inputs of +-1e300 (1e30 in float32) saturate every pre-activation; with a bounded
    output the loss and the gradient are finite (h' is 0 where saturated, never 0 * inf)."""
    net = fastbp.MLP([4, 6, 5, 3], [hidden, hidden, output], dtype=dtype, seed=2)
    big = BIG[dtype][0]
    X = big * {"+": 1.0, "-": -1.0, "mixed": signs(rng, (8, 4))}[sign] * np.ones((8, 4))
    Y = rng.uniform(-1.0, 1.0, size=(8, 3))
    before = net.params.copy()
    out = net.forward(X)
    low = 0.0 if output == "sigmoid" else -1.0
    assert np.all((out >= low) & (out <= 1.0))
    loss = net.loss(X, Y)
    loss2, grad = net.loss_and_grad(X, Y)
    assert math.isfinite(loss) and loss2 == loss
    assert np.isfinite(grad).all()
    assert net.params.tobytes() == before.tobytes()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_each_activation_saturates_at_huge_pre_activations(dtype):
    """One unit, pre-activation +-1e300 (float64) / +-1e30 (float32): exact limits."""
    big = BIG[dtype][0]
    expected = {
        "sigmoid": (1.0, 0.0),
        "tanh": (1.0, -1.0),
        "relu": (big, 0.0),
        "leaky_relu": (big, -0.01 * big),
        "softplus": (big, 0.0),
        "identity": (big, -big),
    }
    for name in ACTIVATIONS:
        net = fastbp.MLP([1, 1], name, dtype=dtype)
        net.params = [1.0, 0.0]  # W = 1, b = 0: a = x
        up, down = expected[name]
        out = net.forward(np.array([[big], [-big]]))
        np.testing.assert_allclose(out[:, 0], [up, down], rtol=1e-6 if dtype == np.float32 else 0)


@overflows
def test_loss_overflow_is_inf_and_gradient_is_signed_inf():
    """Outputs near 1e300 and targets 0: the loss exceeds the float64 range (+inf, as the
    mathematics says); every sample pushes each gradient entry the same way, so the gradient
    entries are finite or +-inf, never NaN."""
    net = fastbp.MLP([3, 4, 2], "identity", seed=0)
    X = np.full((5, 3), 1e300)
    Y = np.zeros((5, 2))
    out = net.forward(X)
    assert np.isfinite(out).all() and np.abs(out).max() > 1e299
    assert net.loss(X, Y) == math.inf
    loss, grad = net.loss_and_grad(X, Y)
    assert loss == math.inf
    assert not np.isnan(grad).any()
    assert np.isinf(grad).any()


@overflows
def test_huge_targets_infinite_loss_finite_gradient():
    """Targets of -1e300 with a sigmoid output: the loss overflows (+inf) but the gradient,
    sum (z - y) h'(a) z_prev, is finite and linear in the target scale."""
    net = fastbp.MLP([3, 4, 2], ["tanh", "sigmoid"], seed=1)
    X = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
    loss1, grad1 = net.loss_and_grad(X, np.full((4, 2), -1e299))
    loss2, grad2 = net.loss_and_grad(X, np.full((4, 2), -2e299))
    assert loss1 == math.inf and loss2 == math.inf
    assert np.isfinite(grad1).all() and np.isfinite(grad2).all()
    np.testing.assert_allclose(grad2, 2.0 * grad1, rtol=1e-12)


@overflows
def test_float32_loss_is_float64_beyond_float32_range():
    """A float32 residual of 1e20 squares to 5e39: finite in the float64 loss (was +inf when
    the square was taken in float32). Its gradient entry 1e40 overflows float32: +inf."""
    net = fastbp.MLP([2, 1], "identity", dtype=np.float32)
    net.params = [1.0, 0.0, 0.0]
    X = np.array([[1e20, 0.0]])
    Y = np.zeros((1, 1))
    r = float(np.float32(1e20))
    assert net.loss(X, Y) == pytest.approx(0.5 * r * r, rel=1e-15)
    loss, grad = net.loss_and_grad(X, Y)
    assert loss == pytest.approx(0.5 * r * r, rel=1e-15)
    assert grad[0] == np.inf and grad[1] == 0.0 and grad[2] == np.float32(r)


@overflows
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_extreme_grid_never_returns_nan(dtype, rng):
    """Every pair of activations, inputs up to the dtype's maximum with mixed signs, huge
    parameters too: each call returns NaN-free results or raises FloatingPointError."""
    seen = {"finite": 0, "inf": 0, "raised": 0}
    for (hidden, output), big in itertools.product(
        itertools.product(ACTIVATIONS, ACTIVATIONS), BIG[dtype]
    ):
        net = fastbp.MLP([3, 5, 2], [hidden, output], dtype=dtype, seed=3)
        if big == BIG[dtype][1]:
            net.params = net.params * (big / 4)  # huge weights as well as huge inputs
        before = net.params.tobytes()
        X = big * signs(rng, (4, 3))
        Y = rng.normal(size=(4, 2))
        for name, result in call_all(net, X, Y).items():
            if isinstance(result, FloatingPointError):
                seen["raised"] += 1
                continue
            values = [np.float64(result[0]), result[1]] if name == "loss_and_grad" else [result]
            assert not any(np.isnan(v).any() for v in values), (hidden, output, big, name)
            seen["inf" if any(np.isinf(v).any() for v in values) else "finite"] += 1
        assert net.params.tobytes() == before
    # The grid really reaches every outcome (so the test exercises the overflow handling).
    assert all(seen.values()), seen


@overflows
def test_forward_nan_from_overflow_raises():
    """2 * 1.7e308 - 2 * 1.7e308: each product overflows, to +inf and -inf, and their sum is
    NaN in any order. The exact output (0) was lost on the way: raise, do not return NaN."""
    net = fastbp.MLP([2, 1], "identity")
    net.params = [2.0, -2.0, 0.0]
    X = np.full((1, 2), 1.7e308)
    with pytest.raises(FloatingPointError, match="forward: an output is NaN"):
        net.forward(X)
    with pytest.raises(FloatingPointError, match="loss: the loss is NaN"):
        net.loss(X, [[0.0]])
    with pytest.raises(FloatingPointError, match="loss_and_grad"):
        net.loss_and_grad(X, [[0.0]])
    np.testing.assert_array_equal(net.params, [2.0, -2.0, 0.0])


# --------------------------------------------------------------------------- dtype conversions
def test_float64_input_beyond_float32_range_is_a_value_error():
    net = fastbp.MLP([2, 1], dtype=np.float32, seed=0)
    for method, args in (
        (net.forward, ([[1e300, 0.0]],)),
        (net.loss, ([[1e300, 0.0]], [[0.0]])),
        (net.loss_and_grad, ([[0.0, 0.0]], [[-1e39]])),
    ):
        with pytest.raises(ValueError, match="overflow float32"):
            method(*args)
    with pytest.raises(ValueError, match="params: values overflow float32"):
        net.params = [1e300, 0.0, 0.0]


def test_float64_input_to_float32_net_is_rounded_like_numpy(rng):
    net = fastbp.MLP([3, 4, 2], ["tanh", "identity"], dtype=np.float32, seed=0)
    X = rng.normal(size=(6, 3)) * np.array([1.0, 1e-40, 1e37])  # normal, subnormal, huge
    Y = rng.normal(size=(6, 2))
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    assert net.forward(X).tobytes() == net.forward(X32).tobytes()
    assert net.loss(X, Y) == net.loss(X32, Y32)
    a, b = net.loss_and_grad(X, Y), net.loss_and_grad(X32, Y32)
    assert a[0] == b[0] and a[1].tobytes() == b[1].tobytes()
    assert net.forward(X).dtype == np.float32


def test_float32_and_integer_inputs_to_float64_net_are_exact(rng):
    net = fastbp.MLP([3, 4, 2], ["softplus", "sigmoid"], seed=0)
    X32 = rng.normal(size=(5, 3)).astype(np.float32)
    Xint = rng.integers(-(2**40), 2**40, size=(5, 3))
    for X in (X32, Xint):
        assert net.forward(X).tobytes() == net.forward(X.astype(np.float64)).tobytes()
        assert net.forward(X).dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_subnormal_inputs_are_not_flushed_to_zero(dtype, rng):
    """Subnormal inputs are computed with (no flush to zero, as fastmath could allow) and
    quietly. Their speed is measured in benchmarks/reliability.py, not here."""
    tiny = np.finfo(dtype).smallest_subnormal
    net = fastbp.MLP([4, 2], "identity", dtype=dtype, seed=5)
    net.weights[0][...] = np.abs(net.weights[0]) + 0.5  # no cancellation
    X = (rng.integers(20, 100, size=(7, 4)) * tiny).astype(dtype)
    assert (np.abs(X) < np.finfo(dtype).smallest_normal).all()
    exact = X.astype(np.float64) @ net.weights[0].astype(np.float64).T
    assert np.abs(exact).min() > 8 * tiny  # far above the rounding of 4 products
    out = net.forward(X)
    np.testing.assert_allclose(out, exact, rtol=0, atol=4 * float(tiny))
    loss, grad = net.loss_and_grad(X, np.zeros((7, 2)))
    assert np.isfinite(grad).all()
    assert loss == pytest.approx(0.5 * np.sum(out.astype(np.float64) ** 2), rel=1e-12, abs=0)


@overflows
def test_gradient_check_with_overflowed_gradients_is_quiet():
    """float32 network, input 3e38: backprop's dW overflows to +inf, and so does the finite
    difference. check_grad compares them without a warning; an infinite gradient cannot be
    verified, so the error is 0 only where both agree exactly, inf otherwise."""
    net = fastbp.MLP([1, 1], "relu", dtype=np.float32)
    net.params = [0.5, 0.0]
    X, Y = np.array([3e38]), np.array([0.0])
    result = fastbp.check_grad(net, X, Y)
    assert result.backprop[0] == np.inf and result.finite_difference[0] == np.inf
    # The bias gradient (1.5e38) is lost in the finite difference of two 1e76 losses.
    assert result.max_rel_error == math.inf and result.worst_param.startswith("b1")


@overflows
def test_finite_difference_nan_from_overflow_raises():
    """Both perturbed losses overflow to +inf: their difference is NaN. Raise, unchanged."""
    net = fastbp.MLP([1, 1], "identity")
    net.params = [1.0, 0.0]
    X, Y = np.array([1e300]), np.array([0.0])
    with pytest.raises(FloatingPointError, match="finite_difference_grad"):
        fastbp.finite_difference_grad(net, X, Y)
    np.testing.assert_array_equal(net.params, [1.0, 0.0])


# ------------------------------------------------- overflow inside the FMA-contracted products
@overflows
def test_batched_forward_overflow_raises():
    """The tiled forward (B = 64) fuses w * x + s into an FMA, which turns 2 * 1.7e308 -
    2 * 1.7e308 into +inf, not NaN: the epilogue still reports the overflow, for a saturating
    activation too (tanh(+inf) = 1 would otherwise hide it)."""
    for act in ("identity", "tanh"):
        net = fastbp.MLP([2, 64, 1], [act, "identity"])
        W1 = np.tile([2.0, -2.0], (64, 1))
        net.params = np.concatenate([W1.ravel(), np.zeros(64), np.full(64, 1e-3), [0.0]])
        before = net.params.copy()
        X = np.full((64, 2), 1.7e308)
        with pytest.raises(FloatingPointError, match="overflowed"):
            net.forward(X)
        with pytest.raises(FloatingPointError, match="overflowed"):
            net.loss_and_grad(X, np.zeros((64, 1)))
        np.testing.assert_array_equal(net.params, before)


@overflows
def test_delta_overflow_raises():
    """delta^1 = W^2^T delta^2 with products +3e308 and -3e308: inf - inf in separate
    arithmetic, +inf in an FMA. Either way the gradient is lost: raise."""
    net = fastbp.MLP([1, 2, 2], "identity")
    # W1 = [[1e-300], [1e-300]], b1 = 0, W2 = [[3, 3], [3, 3]], b2 = 0: z^2 is ~0.
    net.params = [1e-300, 1e-300, 0.0, 0.0, 3.0, 3.0, 3.0, 3.0, 0.0, 0.0]
    X = np.ones((2, 1))
    Y = np.tile([-1e308, 1e308], (2, 1))  # delta^2 = z - y = (1e308, -1e308)
    with pytest.raises(FloatingPointError, match="overflowed"):
        net.loss_and_grad(X, Y)


@overflows
def test_weight_gradient_overflow_raises():
    """dW = delta_1 x_1 + delta_2 x_2 = 1e310 - 1e310: the products overflow with opposite
    signs. The FMA-contracted tile would give +inf; the exact recomputation gives the NaN."""
    net = fastbp.MLP([1, 1], "identity")
    net.params = [1e-300, 0.0]
    X = np.full((2, 1), 1e300)  # z = 1
    Y = np.array([[1.0 - 1e10], [1.0 + 1e10]])  # delta = (1e10, -1e10)
    loss = net.loss(X, Y)
    assert math.isfinite(loss)
    with pytest.raises(FloatingPointError, match="overflowed"):
        net.loss_and_grad(X, Y)
