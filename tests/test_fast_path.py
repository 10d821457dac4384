"""The fast call paths of MLP.loss_and_grad give the bits of the general path and keep its
contract: bad input raises naming the argument, before anything is written."""

import numpy as np
import pytest

import fastbp
from fastbp import kernels

ACTS = ("tanh", "softplus")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sizes", [(2, 16, 1), (4, 5, 3), (3, 7, 6, 2)])
def test_one_sample_paths_agree_bitwise(sizes, dtype, rng):
    net = fastbp.MLP(sizes, ACTS[: len(sizes) - 2] + ("sigmoid",), dtype=dtype, seed=2)
    assert net.n_params <= kernels.TINY_PARAMS
    x = rng.standard_normal(sizes[0]).astype(dtype)
    y = rng.standard_normal(sizes[-1]).astype(dtype)
    out = np.full(net.n_params, np.nan, dtype=dtype)
    loss_fast, g = net.loss_and_grad(x, y, out=out)  # 1-D, exact dtype, out: the tiny entry
    assert g is out
    loss_2d, g_2d = net.loss_and_grad(x[None], y[None])  # 2-D batch of one: the driver
    loss_list, g_list = net.loss_and_grad(x.tolist(), y.tolist())  # converted: general path
    assert loss_fast == loss_2d == loss_list
    assert out.tobytes() == g_2d.tobytes() == g_list.tobytes()


@pytest.mark.parametrize("sizes, batch", [((784, 128, 10), 1), ((5, 9, 4), 40), ((33, 20, 3), 7)])
def test_tiled_paths_match_driver_bitwise(sizes, batch, rng):
    net = fastbp.MLP(sizes, "tanh", seed=4)
    X = rng.standard_normal((batch, sizes[0]))
    Y = rng.standard_normal((batch, sizes[-1]))
    loss, grad = net.loss_and_grad(X, Y)
    A, Z, tmp = kernels.make_workspace(sizes, batch, np.float64)
    g = np.empty(net.n_params)
    value = kernels.loss_and_grad(*net.kernel_args(), X, Y, A, Z, tmp, g)
    assert value == loss
    assert g.tobytes() == grad.tobytes()


@pytest.mark.parametrize("bad", ["x nan", "x inf", "y nan", "y -inf"])
def test_tiny_entry_rejects_nonfinite_before_writing(bad, rng):
    net = fastbp.MLP((2, 16, 1), seed=0)
    x = rng.standard_normal(2)
    y = rng.standard_normal(1)
    value = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[bad.split()[1]]
    if bad.startswith("x"):
        x[1] = value
    else:
        y[0] = value
    out = np.full(net.n_params, 7.0)
    before = net.params.tobytes()
    name = "X" if bad.startswith("x") else "Y"
    with pytest.raises(ValueError, match=rf"^{name}: expected finite values"):
        net.loss_and_grad(x, y, out=out)
    assert np.all(out == 7.0)
    assert net.params.tobytes() == before


def test_batched_driver_rejects_nonfinite_before_writing(rng):
    net = fastbp.MLP((30, 40, 5), seed=0)
    X = rng.standard_normal((50, 30))
    Y = rng.standard_normal((50, 5))
    Y[49, 4] = np.nan
    out = np.full(net.n_params, 7.0)
    with pytest.raises(ValueError, match=r"^Y: expected finite values"):
        net.loss_and_grad(X, Y, out=out)
    assert np.all(out == 7.0)


def test_nan_gradient_under_an_infinite_loss_is_reported():
    """delta * z products of opposite sign overflow to +inf and -inf: dW is NaN while the loss
    is merely +inf. The drivers' cheap bound on max|delta| max|z| must fall back to a scan."""
    net = fastbp.MLP([1, 1], "identity")
    net.params = [1.0, 0.0]
    X = np.array([[1e200], [1e200]])
    Y = np.array([[0.0], [3e200]])
    A, Z, tmp = kernels.make_workspace(net.sizes, 2, np.float64)
    g = np.empty(net.n_params)
    value = kernels.loss_and_grad(*net.kernel_args(), X, Y, A, Z, tmp, g)
    assert np.isnan(g[0]) and np.isnan(value)
    with pytest.raises(FloatingPointError, match="loss_and_grad"):
        net.loss_and_grad(X, Y)
    assert net.params.tolist() == [1.0, 0.0]
