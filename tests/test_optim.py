"""SGD and Adam kernels against NumPy re-implementations of the textbook updates, step by step."""

import numpy as np
import pytest

import fastbp
from fastbp.optim import layer_step, optimizer_step


# ---------------------------------------------------------------------------------------------
# Textbook updates in NumPy (written from the formulas, not from fastbp's code).
# ---------------------------------------------------------------------------------------------
def sgd_reference(theta, grads, lr, momentum=0.0, nesterov=False, weight_decay=0.0, scale=1.0):
    theta = theta.astype(np.float64).copy()
    v = np.zeros_like(theta)
    out = []
    for g in grads:
        g = scale * g.astype(np.float64) + weight_decay * theta
        if momentum:
            v = momentum * v + g
            g = g + momentum * v if nesterov else v
        theta = theta - lr * g
        out.append(theta.copy())
    return out


def adam_reference(theta, grads, lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, scale=1.0):
    theta = theta.astype(np.float64).copy()
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    out = []
    for t, g in enumerate(grads, start=1):
        g = scale * g.astype(np.float64) + weight_decay * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(theta.copy())
    return out


SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.1, weight_decay=0.01),
    dict(lr=0.02, momentum=0.5, nesterov=True, weight_decay=0.1),
]
ADAM_CASES = [
    dict(lr=1e-3),
    dict(lr=0.01, beta1=0.5, beta2=0.9, eps=1e-6),
    dict(lr=0.01, weight_decay=0.05),
    dict(lr=0.1, beta1=0.0),
]


def _problem(dtype, n=37, steps=12, seed=0):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=n).astype(dtype)
    grads = [rng.normal(size=n).astype(dtype) for _ in range(steps)]
    return theta, grads


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-13), (np.float32, 2e-6)])
@pytest.mark.parametrize("case", SGD_CASES, ids=str)
def test_sgd_matches_textbook_step_by_step(case, dtype, rtol):
    theta, grads = _problem(dtype)
    expected = sgd_reference(theta, grads, scale=0.25, **case)
    opt = fastbp.SGD(**case)
    params = theta.copy()
    for k, g in enumerate(grads):
        assert opt.step(params, g, scale=0.25) is True
        assert params.dtype == dtype
        np.testing.assert_allclose(params, expected[k], rtol=rtol, atol=rtol, err_msg=f"step {k}")
    assert opt.steps == len(grads)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("case", ADAM_CASES, ids=str)
def test_adam_matches_textbook_step_by_step(case, dtype, rtol):
    theta, grads = _problem(dtype)
    ref = {("b1" if k == "beta1" else "b2" if k == "beta2" else k): v for k, v in case.items()}
    expected = adam_reference(theta, grads, scale=0.5, **ref)
    opt = fastbp.Adam(**case)
    params = theta.copy()
    for k, g in enumerate(grads):
        assert opt.step(params, g, scale=0.5) is True
        np.testing.assert_allclose(params, expected[k], rtol=rtol, atol=rtol, err_msg=f"step {k}")
    assert set(opt.state) == {"m", "v"}


def test_plain_sgd_is_exactly_theta_minus_lr_grad():
    theta, grads = _problem(np.float64)
    params = theta.copy()
    fastbp.SGD(0.125).step(params, grads[0])
    np.testing.assert_array_equal(params, theta - 0.125 * grads[0])


@pytest.mark.parametrize(
    "opt_factory,torch_factory",
    [
        (lambda: fastbp.SGD(0.05, momentum=0.9), lambda p, t: t.optim.SGD(p, 0.05, momentum=0.9)),
        (
            lambda: fastbp.SGD(0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
            lambda p, t: t.optim.SGD(p, 0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
        ),
        (
            lambda: fastbp.Adam(0.01, weight_decay=0.01),
            lambda p, t: t.optim.Adam(p, 0.01, weight_decay=0.01),
        ),
    ],
    ids=["sgd-momentum", "sgd-nesterov-wd", "adam-wd"],
)
def test_against_pytorch_optimizers(opt_factory, torch_factory):
    torch = pytest.importorskip("torch")
    theta, grads = _problem(np.float64)
    p = torch.nn.Parameter(torch.from_numpy(theta.copy()))
    topt = torch_factory([p], torch)
    opt = opt_factory()
    params = theta.copy()
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        topt.step()
        opt.step(params, g)
        np.testing.assert_allclose(params, p.detach().numpy(), rtol=1e-12, atol=1e-14)


# Under NUMBA_DISABLE_JIT=1 the kernels run as NumPy scalars, which warn on overflow.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_update_is_reported():
    params = np.array([1.0, 2.0])
    assert fastbp.SGD(1e308).step(params, np.array([1e10, 0.0])) is False
    assert not np.isfinite(params[0])
    params = np.array([1.0, 2.0])
    assert fastbp.Adam().step(params, np.array([np.nan, 0.0])) is False
    params = np.array([1.0, 2.0])
    opt = fastbp.SGD(0.1, momentum=0.5)
    assert opt.step(params, np.array([np.inf, 0.0])) is False


def test_kernel_counts_steps_and_checks_lengths():
    opt = fastbp.Adam()
    theta = np.zeros(3)
    kind, hyper, count, state = opt._args(3, np.dtype(np.float64))
    assert optimizer_step(kind, hyper, count, theta, np.ones(3), 1.0, state)
    assert count[0] == 1 and opt.steps == 1
    with pytest.raises(ValueError, match="length of theta"):
        optimizer_step(kind, hyper, count, theta, np.ones(2), 1.0, state)


def test_state_is_kept_and_bound_to_length_and_dtype():
    opt = fastbp.SGD(0.1, momentum=0.9)
    assert opt.state == {}
    params = np.zeros(4)
    opt.step(params, np.ones(4))
    np.testing.assert_array_equal(opt.state["velocity"], np.ones(4))
    with pytest.raises(ValueError, match="reset"):
        opt.step(np.zeros(5), np.ones(5))
    with pytest.raises(ValueError, match="reset"):
        opt.step(np.zeros(4, np.float32), np.ones(4, np.float32))
    opt.reset()
    assert opt.steps == 0 and opt.state == {}
    assert opt.step(np.zeros(5), np.ones(5))


@pytest.mark.parametrize(
    "factory,error,match",
    [
        (lambda: fastbp.SGD(0.0), ValueError, "lr"),
        (lambda: fastbp.SGD(-1.0), ValueError, "lr"),
        (lambda: fastbp.SGD(float("nan")), ValueError, "lr"),
        (lambda: fastbp.SGD(True), TypeError, "lr"),
        (lambda: fastbp.SGD("0.1"), TypeError, "lr"),
        (lambda: fastbp.SGD(0.1, momentum=1.0), ValueError, "momentum"),
        (lambda: fastbp.SGD(0.1, momentum=-0.1), ValueError, "momentum"),
        (lambda: fastbp.SGD(0.1, nesterov=True), ValueError, "nesterov"),
        (lambda: fastbp.SGD(0.1, momentum=0.5, nesterov=1), TypeError, "nesterov"),
        (lambda: fastbp.SGD(0.1, weight_decay=-1.0), ValueError, "weight_decay"),
        (lambda: fastbp.Adam(beta1=1.0), ValueError, "beta1"),
        (lambda: fastbp.Adam(beta2=-0.5), ValueError, "beta2"),
        (lambda: fastbp.Adam(eps=0.0), ValueError, "eps"),
        (lambda: fastbp.Adam(lr=float("inf")), ValueError, "lr"),
    ],
)
def test_bad_hyper_parameters(factory, error, match):
    with pytest.raises(error, match=match):
        factory()


def test_step_argument_checks():
    opt = fastbp.SGD(0.1)
    with pytest.raises(TypeError, match="params"):
        opt.step([1.0, 2.0], np.ones(2))
    with pytest.raises(ValueError, match="grad"):
        opt.step(np.zeros(2), np.ones(3))
    with pytest.raises(ValueError, match="grad"):
        opt.step(np.zeros(2), np.ones(2, np.float32))
    with pytest.raises(TypeError, match="dtype"):
        opt.step(np.zeros(2, np.int64), np.ones(2, np.int64))
    ro = np.zeros(2)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        opt.step(ro, np.ones(2))
    with pytest.raises(ValueError, match="scale"):
        opt.step(np.zeros(2), np.ones(2), scale=float("nan"))


def test_properties_and_repr():
    opt = fastbp.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    assert (opt.lr, opt.momentum, opt.nesterov, opt.weight_decay) == (0.1, 0.9, True, 0.01)
    assert repr(opt) == "SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)"
    opt.lr = 0.5
    assert opt.lr == 0.5
    with pytest.raises(ValueError, match="lr"):
        opt.lr = 0.0
    adam = fastbp.Adam(0.01, beta1=0.8, beta2=0.99, eps=1e-7)
    assert (adam.lr, adam.beta1, adam.beta2, adam.eps, adam.weight_decay) == (
        0.01,
        0.8,
        0.99,
        1e-7,
        0.0,
    )
    assert repr(adam).startswith("Adam(lr=0.01, beta1=0.8")
    assert isinstance(adam, fastbp.Optimizer)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "make_opt",
    [
        lambda: fastbp.SGD(0.1, weight_decay=0.01),
        lambda: fastbp.SGD(0.1, momentum=0.9),
        lambda: fastbp.SGD(0.1, momentum=0.9, nesterov=True),
        lambda: fastbp.Adam(0.01, weight_decay=0.01),
    ],
    ids=["sgd", "momentum", "nesterov", "adam"],
)
def test_layer_step_equals_optimizer_step_on_the_outer_product(make_opt, dtype):
    # One layer (W 5x3 at offset 4, b after it) inside a longer theta, three steps.
    rng = np.random.default_rng(2)
    rtol = 1e-13 if dtype == np.float64 else 1e-5
    theta = rng.normal(size=4 + 5 * 3 + 5 + 2).astype(dtype)
    ref = theta.copy()
    fused, plain = make_opt(), make_opt()
    row = np.empty(3, dtype=dtype)
    for _ in range(3):
        delta = rng.normal(size=5).astype(dtype)
        zin = rng.normal(size=3).astype(dtype)
        grad = np.zeros_like(theta)
        grad[4:19] = (delta[:, None] * zin[None, :]).ravel()
        grad[19:24] = delta
        assert plain.step(ref, grad)
        kind, hyper, count, state = fused._args(theta.shape[0], theta.dtype)
        count[0] += 1
        assert layer_step(kind, hyper, count[0], theta, 4, 19, delta, zin, state, row)
        # Compare the layer only: the plain step also moves the rest of theta (its gradient
        # is zero there, but weight decay still acts), which the fused step leaves alone.
        # The same arithmetic, up to a possible FMA contraction of the outer product.
        np.testing.assert_allclose(theta[4:24], ref[4:24], rtol=rtol, atol=rtol)
    name = list(plain.state)[0]
    np.testing.assert_allclose(fused.state[name][4:24], plain.state[name][4:24], rtol=rtol)


@pytest.mark.parametrize(
    ("make", "rows"),
    [(lambda: fastbp.SGD(lr=0.1), 1), (lambda: fastbp.SGD(lr=0.1, momentum=0.9), 1),
     (lambda: fastbp.Adam(lr=0.01), 2)],
)  # fmt: skip
def test_state_rows_per_optimizer(make, rows, rng):
    """SGD holds one state row (velocity), Adam two (m, v): never Adam's two for SGD."""
    net = fastbp.MLP([3, 5, 2], seed=0)
    X = rng.standard_normal((8, 3))
    Y = rng.standard_normal((8, 2))
    opt = make()
    net.fit(X, Y, epochs=1, batch_size=4, optimizer=opt, progress=False)
    assert opt._state.shape == (rows, net.n_params)
    assert opt._state.nbytes == rows * net.n_params * 8


def test_optimizer_step_rejects_short_state():
    """The compiled step checks the state's rows before indexing them."""
    from fastbp.optim import ADAM_KIND, optimizer_step

    opt = fastbp.Adam()
    kind, hyper, count, _ = opt._args(4, np.dtype(np.float64))
    theta = np.zeros(4)
    with pytest.raises(ValueError, match="state"):
        optimizer_step(ADAM_KIND, hyper, count, theta, np.ones(4), 1.0, np.zeros((1, 4)))
    assert not theta.any()
