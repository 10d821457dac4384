"""Processes: sharded gradients in a process pool, and pickling.

The loss is a sum over samples, so the gradients of disjoint shards add up to the gradient of
the whole batch; workers receive the network by pickling, so this also checks that a pickled
network computes what the original does, under both start methods.
"""

import copy
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import fastbp


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def shard_loss_and_grad(net, X, Y):
    """Worker: loss and gradient of one shard (module level, so spawn can import it)."""
    loss, grad = net.loss_and_grad(X, Y)
    return loss, grad


START_METHODS = [
    pytest.param(
        "fork",
        marks=[
            # Python >= 3.12 warns when forking a process that has threads (numba's pool may
            # have some); the children here only compute and return.
            pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning"),
            pytest.mark.skipif(
                "fork" not in multiprocessing.get_all_start_methods(), reason="no fork here"
            ),
        ],
    ),
    "spawn",
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", START_METHODS)
def test_sharded_gradients_sum_to_the_whole(method, dtype, rng):
    net = fastbp.MLP([6, 11, 5, 3], ["tanh", "leaky_relu", "sigmoid"], dtype=dtype, seed=3)
    X = rng.normal(size=(103, 6))
    Y = rng.normal(size=(103, 3))
    loss, grad = net.loss_and_grad(X, Y)
    bounds = [0, 1, 30, 64, 103]  # uneven shards, one of a single sample
    ctx = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        futures = [
            pool.submit(shard_loss_and_grad, net, X[a:b], Y[a:b])
            for a, b in zip(bounds[:-1], bounds[1:])
        ]
        parts = [f.result(timeout=300) for f in futures]
    total_loss = sum(part[0] for part in parts)
    total_grad = np.sum([part[1].astype(np.float64) for part in parts], axis=0)
    # Each shard's gradient sums its samples in the network dtype; only the order of the
    # additions differs from the whole batch.
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    scale = float(np.max(np.abs(grad)))
    assert total_loss == pytest.approx(loss, rel=rtol)
    np.testing.assert_allclose(total_grad, grad, rtol=0, atol=rtol * scale)
    # The first shard computed in a child equals the same shard computed here, bit for bit.
    local = net.loss_and_grad(X[:1], Y[:1])
    assert parts[0][0] == local[0]
    assert parts[0][1].tobytes() == local[1].tobytes()


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pickle_round_trip(protocol, dtype, rng):
    net = fastbp.MLP([3, 5, 4, 2], ["relu", "softplus", "identity"], dtype=dtype, seed=5)
    X, Y = rng.normal(size=(9, 3)), rng.normal(size=(9, 2))
    net.loss_and_grad(X, Y)  # a workspace exists; it must not be pickled or shared
    clone = pickle.loads(pickle.dumps(net, protocol=protocol))
    assert clone.sizes == net.sizes
    assert clone.activations == net.activations
    assert clone.dtype == net.dtype
    assert clone.params.dtype == net.params.dtype
    assert clone.params.tobytes() == net.params.tobytes()
    assert clone.forward(X).tobytes() == net.forward(X).tobytes()
    a, b = clone.loss_and_grad(X, Y), net.loss_and_grad(X, Y)
    assert a[0] == b[0] and a[1].tobytes() == b[1].tobytes()
    # Independent storage, and the views still point into the clone's own params.
    clone.params = clone.params + 1.0
    assert not np.shares_memory(clone.params, net.params)
    assert np.shares_memory(clone.weights[0], clone.params)
    assert net.loss_and_grad(X, Y)[0] == b[0]


def test_copy_and_deepcopy(rng):
    net = fastbp.MLP([4, 3, 2], seed=6)
    X = rng.normal(size=(5, 4))
    for clone in (copy.copy(net), copy.deepcopy(net), net.copy()):
        assert clone is not net
        assert clone.forward(X).tobytes() == net.forward(X).tobytes()
        clone.weights[0][0, 0] += 1.0
        assert clone.params[0] != net.params[0]
