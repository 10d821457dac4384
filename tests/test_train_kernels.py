"""The per-sample plain-SGD kernel against the generic fused step (bit for bit in float64)."""

import numpy as np
import pytest

import fastbp
from fastbp import kernels, train_kernels


def _run_generic(net, X, Y, order, opt):
    """Per-sample steps through one_sample_step (the path of momentum and Adam)."""
    theta, sizes, codes = net.kernel_args()
    kind, hyper, count, state = opt._args(net.n_params, net.dtype)
    A, Z, _ = kernels.make_workspace(net.sizes, 1, net.dtype)
    out = np.empty((1, Y.shape[1]), dtype=net.dtype)
    row = np.empty(max(net.sizes), dtype=net.dtype)
    losses = []
    for i in order:
        value, ok = train_kernels.one_sample_step(
            theta, sizes, codes, X[i : i + 1], Y[i : i + 1], A, Z, out, kind, hyper, count,
            state, row,
        )  # fmt: skip
        assert ok
        losses.append(value)
    return np.array(losses)


def _run_sgd(net, X, Y, order, opt, cuts, depth=1):
    """The same steps through sgd_sample_steps, in calls split at ``cuts``."""
    theta, sizes, codes = net.kernel_args()
    kind, hyper, count, state = opt._args(net.n_params, net.dtype)
    A, Z, _ = kernels.make_workspace(net.sizes, 1, net.dtype)
    row = np.empty(max(net.sizes), dtype=net.dtype)
    losses = np.zeros(len(order))
    status = np.zeros(1, dtype=np.int64)
    keep = np.empty_like(theta)
    bounds = [0, *cuts, len(order)]
    for first, stop in zip(bounds, bounds[1:]):
        done = train_kernels.sgd_sample_steps(
            theta, sizes, codes, X, Y, order, first, stop, hyper, count, state, A, Z, row,
            losses, status, depth, keep,
        )  # fmt: skip
        assert done == stop - first and status[0] == train_kernels.OK
    return losses


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "sizes,acts",
    [
        ((3, 5, 2), ("tanh", "sigmoid")),  # m_in < 8: no lane block; odd rows
        ((19, 9, 4), ("sigmoid", "identity")),  # lane blocks and a tail; odd rows
        ((16, 8, 7, 3), ("relu", "softplus", "leaky_relu")),  # no tail; three layers
        ((24, 1), ("sigmoid",)),  # one layer: layer 1 is the output layer
    ],
)
def test_sgd_sample_steps_equal_the_generic_step_bit_for_bit(sizes, acts, dtype, rng):
    n = 13
    X = rng.normal(size=(n, sizes[0])).astype(dtype)
    Y = rng.uniform(size=(n, sizes[-1])).astype(dtype)
    order = rng.permutation(n).astype(np.int64)
    a = fastbp.MLP(list(sizes), list(acts), dtype=dtype, seed=2)
    b = a.copy()
    expected = _run_generic(a, X, Y, order, fastbp.SGD(0.05, weight_decay=0.01))
    got = _run_sgd(b, X, Y, order, fastbp.SGD(0.05, weight_decay=0.01), cuts=[1, 5, 6])
    if dtype == np.float64:
        np.testing.assert_array_equal(b.params, a.params)
        np.testing.assert_array_equal(got, expected)
    else:
        # float32: sgd_sample_steps keeps h'(a) rounded to float32 (as the batched drivers do),
        # one_sample_step recomputes it in float64 in the backward pass: 1-ulp differences.
        np.testing.assert_allclose(b.params, a.params, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert not np.array_equal(a.params, fastbp.MLP(list(sizes), list(acts), seed=2).params)


# Deferred layer-1 updates (depth > 1): the same mathematics, rounded differently.
DEFER_CASES = [
    ((19, 9, 4), ("sigmoid", "identity")),  # odd rows: the one-row flush
    ((16, 8, 7, 3), ("relu", "softplus", "leaky_relu")),  # rows by four; three layers
    ((12, 13, 30), ("tanh", "sigmoid")),  # 13 rows: fours and a rest of one
]


@pytest.mark.parametrize("depth", [2, 3, 4, 5, 8])
@pytest.mark.parametrize("sizes,acts", DEFER_CASES)
def test_deferred_sgd_sample_steps_agree_with_the_generic_step(sizes, acts, depth, rng):
    n = 29
    X = rng.normal(size=(n, sizes[0]))
    Y = rng.uniform(size=(n, sizes[-1]))
    order = rng.permutation(n).astype(np.int64)
    a = fastbp.MLP(list(sizes), list(acts), seed=2)
    b = a.copy()
    expected = _run_generic(a, X, Y, order, fastbp.SGD(0.05, weight_decay=0.01))
    got = _run_sgd(b, X, Y, order, fastbp.SGD(0.05, weight_decay=0.01), [], depth=depth)
    np.testing.assert_allclose(b.params, a.params, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert not np.array_equal(b.params, a.params)  # the deferred path really ran


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("depth", [3, 4])
@pytest.mark.parametrize("sizes,acts", DEFER_CASES)
def test_deferred_results_do_not_depend_on_the_calls(sizes, acts, depth, dtype, rng):
    # Calls ending inside a group, at a group's end, one step long, and the whole epoch.
    n = 23
    X = rng.normal(size=(n, sizes[0])).astype(dtype)
    Y = rng.uniform(size=(n, sizes[-1])).astype(dtype)
    order = rng.permutation(n).astype(np.int64)
    net0 = fastbp.MLP(list(sizes), list(acts), dtype=dtype, seed=2)
    runs = []
    for cuts in ([], [1, 2, 3, 4, 5, 9, 12, 13, 22], [4, 8, 12], [7, 11]):
        net = net0.copy()
        losses = _run_sgd(net, X, Y, order, fastbp.SGD(0.05, weight_decay=0.01), cuts, depth)
        runs.append((net.params.copy(), losses))
    for params, losses in runs[1:]:
        np.testing.assert_array_equal(params, runs[0][0])
        np.testing.assert_array_equal(losses, runs[0][1])


def test_defer_depth_is_one_for_small_first_layers_and_fits_the_buffer():
    def depth(sizes):
        net = fastbp.MLP(list(sizes), seed=0)
        return train_kernels.defer_depth(net.kernel_args()[1], net.n_params)

    assert depth((784, 128, 10)) == train_kernels.DEFER_DEPTH
    assert depth((3, 5, 2)) == 1  # W^1 small: stays in cache
    assert depth((784, 128)) == 1  # one layer
    assert depth((16384, 1, 1)) == 1  # no room for a delta in grad beyond W^1
