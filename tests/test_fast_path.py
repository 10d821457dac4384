"""The fast call paths of MLP.loss_and_grad give the bits of the general path and keep its
contract: bad input raises naming the argument, before anything is written."""

import pickle
import threading

import numba
import numpy as np
import pytest
import reference
from helpers import rel_err, scalar_rel_err

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
    # The twin and the driver run one bytecode, so their agreement alone would also hold for a
    # bug they share: the oracle too (the tiled paths at scale: test_production_oracle.py).
    ref_loss, ref_grad = reference.loss_and_grad(net.params, sizes, net.activations, X, Y)
    assert scalar_rel_err(loss, ref_loss) <= 1e-12 and rel_err(grad, ref_grad) <= 1e-12
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


# --------------------------------------------------------------------------------------------
# The tiny entry is called without Numba's type dispatch (MLP._tiny_entry): Python checks
# type, dtype and ndim; the entry checks lengths, strides, alignment and NaN/Inf; anything it
# refuses falls through to the general path, so results and errors are the general path's.
# --------------------------------------------------------------------------------------------
def tiny_problem(rng, dtype=np.float64, sizes=(2, 16, 1)):
    net = fastbp.MLP(sizes, "sigmoid", dtype=dtype, seed=3)
    x = rng.standard_normal(sizes[0]).astype(dtype)
    y = rng.standard_normal(sizes[-1]).astype(dtype)
    return net, x, y


def general(net, x, y):
    """Loss and gradient through the general path (the fast path switched off on a copy)."""
    slow = net.copy()
    slow._tiny_dtype = None
    loss, grad = slow.loss_and_grad(x, y, out=np.empty(net.n_params, dtype=net.dtype))
    return loss, grad.tobytes()


def read_only(v):
    v = v.copy()
    v.flags.writeable = False
    return v


def strided(v):
    w = np.zeros(2 * v.shape[0], dtype=v.dtype)
    w[::2] = v
    return w[::2]


def misaligned(v):
    raw = np.zeros(v.nbytes + 1, dtype=np.uint8)
    w = raw[1:].view(v.dtype)
    w[...] = v
    assert not w.flags.aligned
    return w


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("make", [read_only, strided], ids=["read-only", "strided"])
@pytest.mark.parametrize("which", ["x", "y", "both"])
def test_odd_vectors_give_the_general_bits(make, which, dtype, rng):
    """Read-only vectors run in the entry (it only reads them); strided ones are refused by it
    and fall through. Either way: the bits of the general path."""
    net, x, y = tiny_problem(rng, dtype, (3, 7, 2))
    expected = general(net, x, y)
    xa = make(x) if which in ("x", "both") else x
    ya = make(y) if which in ("y", "both") else y
    out = np.full(net.n_params, np.nan, dtype=dtype)
    loss, g = net.loss_and_grad(xa, ya, out=out)
    assert g is out
    assert (loss, out.tobytes()) == expected


def test_entry_is_the_compiled_overload_per_thread(rng):
    net, x, y = tiny_problem(rng)
    out = np.empty(net.n_params)
    net.loss_and_grad(x, y, out=out)
    entry, buf = net._local.tiny
    if numba.config.DISABLE_JIT:
        assert entry is kernels._single_sample_flat
    else:
        assert entry is not kernels._single_sample_flat  # the dispatcher is bypassed
        sig = tuple(numba.typeof(a) for a in (net.params, net._meta, x, y, buf, out))
        assert entry is kernels._single_sample_flat.overloads[sig].entry_point
    seen = []
    thread = threading.Thread(target=lambda: seen.append(net._tiny_entry()[1]))
    thread.start()
    thread.join()
    assert seen[0] is not buf  # each thread has its own buffer


@pytest.mark.parametrize(
    "bad",
    ["x long", "x short", "y long", "x strided", "y strided", "x misaligned", "grad short"],
)
def test_entry_refuses_what_python_does_not_check(bad, rng):
    """Called directly (as MLP calls it), the entry raises ValueError before writing."""
    net, x, y = tiny_problem(rng, sizes=(3, 5, 2))
    entry, buf = net._tiny_entry()
    grad = np.full(net.n_params + (-1 if bad == "grad short" else 0), 7.0)
    what, how = bad.split()
    change = {
        "long": lambda v: np.append(v, 1.0),
        "short": lambda v: v[:-1].copy(),
        "strided": strided,
        "misaligned": misaligned,
    }[how]
    if what == "x":
        x = change(x)
    elif what == "y":
        y = change(y)
    with pytest.raises(ValueError):
        entry(net.params, net._meta, x, y, buf, grad)
    assert np.all(grad == 7.0)


BAD_ONE_SAMPLE = {
    "x long": lambda x, y, n: (np.append(x, 1.0), y, np.zeros(n)),
    "x short": lambda x, y, n: (x[:-1].copy(), y, np.zeros(n)),
    "y long": lambda x, y, n: (x, np.append(y, 1.0), np.zeros(n)),
    "x nan, out short": lambda x, y, n: (np.full_like(x, np.nan), y, np.zeros(n - 1)),
    "y inf, x long": lambda x, y, n: (np.append(x, 1.0), np.full_like(y, np.inf), np.zeros(n)),
    "x 2-D": lambda x, y, n: (x[None], y, np.zeros(n)),
    "out long": lambda x, y, n: (x, y, np.zeros(n + 1)),
    "out short": lambda x, y, n: (x, y, np.zeros(n - 1)),
    "out 2-D": lambda x, y, n: (x, y, np.zeros((n, 1))),
    "out float32": lambda x, y, n: (x, y, np.zeros(n, dtype=np.float32)),
    "out strided": lambda x, y, n: (x, y, np.zeros(2 * n)[::2]),
    "out read-only": lambda x, y, n: (x, y, read_only(np.zeros(n))),
}


@pytest.mark.parametrize("bad", list(BAD_ONE_SAMPLE))
def test_one_sample_errors_are_the_general_paths(bad, rng):
    """Bad 1-D input with ``out``: the exception (type and message) the general path raises,
    nothing written to ``out``, the network unchanged."""
    net, x, y = tiny_problem(rng, sizes=(3, 5, 2))
    xb, yb, out = BAD_ONE_SAMPLE[bad](x, y, net.n_params)
    if out.flags.writeable:
        out[...] = 7.0
    slow = net.copy()
    slow._tiny_dtype = None  # the fast path off: the general path, same arguments
    with pytest.raises((ValueError, TypeError)) as general_error:
        slow.loss_and_grad(xb, yb, out=out)
    before = net.params.tobytes()
    with pytest.raises(type(general_error.value)) as error:
        net.loss_and_grad(xb, yb, out=out)
    assert str(error.value) == str(general_error.value)
    assert np.all(out == (7.0 if out.flags.writeable else 0.0))
    assert net.params.tobytes() == before


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tiny_path_after_pickling_and_in_threads(dtype, rng):
    net, x, y = tiny_problem(rng, dtype)
    expected = general(net, x, y)
    clone = pickle.loads(pickle.dumps(net))
    out = np.empty(clone.n_params, dtype=dtype)
    loss, _ = clone.loss_and_grad(x, y, out=out)
    assert (loss, out.tobytes()) == expected
    results = []

    def worker():
        o = np.empty(net.n_params, dtype=dtype)
        for _ in range(50):
            loss, _ = net.loss_and_grad(x, y, out=o)
            results.append((loss, o.tobytes()))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 200 and set(results) == {expected}
