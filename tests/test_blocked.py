"""The sample-blocked gradient (fastbp._kernels.blocked) against the whole-batch drivers.

The blocked driver promises the whole-batch drivers' bits (and so the plain tier's and the
oracle's agreement): every sum in the same order, continued from block to block. The shapes
below reach every path: batches that are not a multiple of the 32-sample granule (the edge
loop), several blocks, a block that is the whole batch, widths that are not a multiple of the
tile (masked loads and stores, the one-row weight tile, the delta rows past the last multiple
of 4), widths that are multiples of 128 (padded block rows), inputs and outputs past the
reduction chunk KC (partial sums continued across chunks), every activation, both dtypes, the
cross-entropy losses with sample weights, and the overflow re-check.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from helpers import make_net

import fastbp
from fastbp import _dispatch, _plain, kernels
from fastbp._kernels import blocked, workspace

NAMES = list(fastbp.ACTIVATIONS)

CASES = [
    ((10, 64, 64, 1), 442),  # scikit-learn's diabetes shape: 13 full granules and a tail
    ((3, 5, 2), 37),
    ((7, 13, 9, 3), 1000),  # several blocks
    ((300, 257, 4), 299),  # inputs past KC, odd widths
    ((33, 128, 300, 5), 64),  # a padded row stride (128) and outputs past KC (the delta chunks)
    ((64, 64, 64), 4096),  # many blocks of the full granule
]


def _problem(sizes, batch, dtype, shift, rng):
    acts = [NAMES[(shift + l) % len(NAMES)] for l in range(len(sizes) - 1)]
    theta = rng.normal(size=fastbp.MLP(sizes).n_params) * 0.3
    net = make_net(fastbp, sizes, acts, theta, dtype=dtype)
    X = rng.normal(size=(batch, sizes[0])).astype(dtype)
    Y = rng.normal(size=(batch, sizes[-1])).astype(dtype)
    return net, X, Y


def _run(driver, net, X, Y, *extra):
    theta, sizes, codes = net.kernel_args()
    A, Z, tmp = kernels.make_workspace(net.sizes, X.shape[0], net.dtype)
    grad = np.full_like(theta, np.nan)
    value = driver(theta, sizes, codes, X, Y, A, Z, tmp, grad, *extra)
    return value, grad


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sizes,batch", CASES)
def test_blocked_gives_the_whole_batch_bits(sizes, batch, dtype, rng):
    for shift in (0, 3):
        net, X, Y = _problem(sizes, batch, dtype, shift, rng)
        v0, g0 = _run(kernels._loss_and_grad_large, net, X, Y)
        v1, g1 = _run(blocked.loss_and_grad_blocked, net, X, Y)
        assert v0 == v1
        assert np.array_equal(g0, g1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sizes,batch", CASES)
def test_threaded_blocked_gives_the_serial_bits(sizes, batch, dtype, rng):
    # The threaded twin splits outputs over tasks (REGION_MIN_WORK decides per product which
    # run threaded; these cases have both kinds), so one and two threads give the serial bits.
    net, X, Y = _problem(sizes, batch, dtype, 2, rng)
    v0, g0 = _run(blocked.loss_and_grad_blocked, net, X, Y)
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(threads)
            v1, g1 = _run(blocked.loss_and_grad_blocked_threaded, net, X, Y)
            assert v0 == v1 and np.array_equal(g0, g1), threads
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("code", [1, 2])
def test_blocked_cross_entropy_with_weights(code, rng):
    sizes = (9, 40, 5)
    net, X, _ = _problem(sizes, 75, np.float64, 1, rng)
    names = list(net.activations)
    names[-1] = "identity"
    theta = net.params.copy()
    net = make_net(fastbp, sizes, names, theta, dtype=np.float64)
    P = rng.random((75, 5))
    Y = P / P.sum(axis=1, keepdims=True) if code == 1 else P
    w = rng.random(75) * 2
    w[3] = 0.0
    v0, g0 = _run(kernels._loss_and_grad_large, net, X, Y, code, w)
    v1, g1 = _run(blocked.loss_and_grad_blocked, net, X, Y, code, w)
    vp, gp = _run(_plain.plain_loss_and_grad, net, X, Y, code, w)
    assert v0 == v1 == vp
    assert np.array_equal(g0, g1) and np.array_equal(g1, gp)


def test_blocked_overflow_reports_nan_like_the_whole_batch_driver(rng):
    # relu passes huge values through: products of opposite sign overflow to +-inf in dW,
    # which the FMA tiles would report as inf; the re-check without FMA finds the NaN.
    sizes = (4, 16, 2)
    net, X, Y = _problem(sizes, 70, np.float32, NAMES.index("relu"), rng)
    X[5] *= 1e30
    X[40] *= -1e30
    v0, g0 = _run(kernels._loss_and_grad_large, net, X, Y)
    v1, g1 = _run(blocked.loss_and_grad_blocked, net, X, Y)
    assert np.isnan(v0) == np.isnan(v1)
    assert np.array_equal(g0, g1, equal_nan=True)


def test_network_takes_the_blocked_driver(rng):
    net, X, Y = _problem((10, 64, 64, 1), 442, np.float64, 1, rng)
    loss, grad = net.loss_and_grad(X, Y)
    v0, g0 = _run(kernels._loss_and_grad_large, net, X, Y)
    assert loss == v0 and np.array_equal(grad, g0)
    if not _dispatch.threaded(net.sizes, 442):
        assert _dispatch.tiled("loss_and_grad", False, net.n_params, 442) is (
            blocked.loss_and_grad_blocked
        )


def test_blocked_checks_its_workspace(rng):
    net, X, Y = _problem((20, 70, 3), 96, np.float64, 0, rng)
    theta, sizes, codes = net.kernel_args()
    A, Z, tmp = kernels.make_workspace(net.sizes, 96, net.dtype)
    grad = np.zeros_like(theta)
    with pytest.raises(ValueError, match="tmp too short"):
        blocked.loss_and_grad_blocked(theta, sizes, codes, X, Y, A, Z, tmp[:100], grad)
    with pytest.raises(ValueError, match="grad must have the length"):
        blocked.loss_and_grad_blocked(theta, sizes, codes, X, Y, A, Z, tmp, grad[:-1])


@pytest.mark.parametrize("sizes", [(10, 64, 64, 1), (784, 128, 10), (2048, 2048, 2048), (1, 1)])
@pytest.mark.parametrize("batch", [1, 31, 32, 442, 65536])
def test_workspace_lengths_cover_the_blocked_driver(sizes, batch):
    n_units, n_tmp = kernels.workspace_lengths(sizes, batch)
    assert n_units >= workspace.block_units(sizes, batch)
    assert n_tmp >= workspace.packed_length(sizes, batch)
    # The block buffers do not grow with the batch past one block.
    assert workspace.block_units(sizes, batch) <= workspace.block_units(sizes, 1 << 30)
