"""Hessian-vector products, Gauss-Newton products and the residual Jacobian (MLP.hvp, gnvp,
residual_jacobian and the compiled drivers kernels.hvp, gnvp, residual_jacobian).

Golden values from PyTorch (tests/data/make_second_order_golden.py), the NumPy oracle
tests/reference_second_order.py at production shapes, identities that need no oracle, central
finite differences, 1 and 2 threads, allocations. Compile cost: the default run compiles ONE
signature, the serial body ``_second_order_serial`` in float64 (every shape here is below the
work threshold, every array C-contiguous float64); the float32 golden values, the public
(threaded) drivers and the 1-vs-2-thread test compile more and run under ``-m slow``.
"""

import os
from pathlib import Path

import numba
import numpy as np
import pytest
import reference_second_order as ref
from helpers import make_net, random_problem, rel_err, run_script, script_result

import fastbp
from fastbp import kernels
from fastbp._kernels import layers
from fastbp._kernels import second_order as so

GOLDEN = np.load(Path(__file__).parent / "data" / "second_order_golden.npz")
ACTS = fastbp.ACTIVATIONS
CODES = dict(zip(ACTS, range(len(ACTS))))
TOL = {np.float64: 1e-12, np.float32: 1e-4}
# float32 compiles a second signature of the body: under -m slow.
DTYPES = [np.float64, pytest.param(np.float32, marks=pytest.mark.slow)]
# Production shapes, every layer product below kernels.PARALLEL_MIN_WORK (the serial body).
SIZES = [33, 65, 100, 4]
BATCH = 65
MIXED = ["tanh", "softplus", "sigmoid"]


def golden(kind, name):
    return {
        k.split("/")[2]: GOLDEN[k].astype(np.float64)
        for k in GOLDEN
        if k.startswith(f"{kind}/{name}/")
    }


# ----------------------------------------------------------------------- h''
@pytest.mark.parametrize("name", ACTS)
def test_second_derivative_matches_finite_differences(name):
    """h''(a) against the central difference of h'(a) (step 1e-6), away from the kinks."""
    code = CODES[name]
    points = np.r_[np.linspace(-8.0, 8.0, 33) + 0.0123, -30.0, 30.0, 1e-3, -1e-3]
    step = 1e-6
    for a in points:
        fd = (
            layers.activation_derivative(code, a + step)
            - layers.activation_derivative(code, a - step)
        ) / (2 * step)
        got = layers.activation_second_derivative(code, a)
        assert abs(got - fd) <= 1e-7 * max(1.0, abs(fd)), (name, a, got, fd)
    assert layers.activation_second_derivative(code, 0.0) == {"sigmoid": 0.0, "tanh": 0.0}.get(
        name, {"softplus": 0.25}.get(name, 0.0)
    )
    assert np.isnan(layers.activation_second_derivative(code, np.inf))


def test_second_derivative_saturated_is_accurate():
    """Far into saturation h'' keeps its relative accuracy (no 1 - 2h cancellation)."""
    a = 30.0
    e = np.exp(-a)
    assert layers.activation_second_derivative(CODES["sigmoid"], a) == pytest.approx(
        -e * (1 - e) / (1 + e) ** 3, rel=1e-14
    )
    e2 = np.exp(-2 * a)
    assert layers.activation_second_derivative(CODES["tanh"], -a) == pytest.approx(
        8 * e2 * (1 - e2) / (1 + e2) ** 3, rel=1e-14
    )


# ----------------------------------------------------------------------- PyTorch golden values
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTS)
def test_hvp_and_gnvp_match_torch(name, dtype):
    g = golden("hvp", name)
    net = make_net(fastbp, [4, 33, 9, 3], name, g["theta"], dtype)
    X, Y, v = (g[k].astype(dtype) for k in ("X", "Y", "v"))
    assert rel_err(net.hvp(X, Y, v), g["hv"]) <= TOL[dtype]
    assert rel_err(net.gnvp(X, Y, v), g["gnv"]) <= TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTS)
def test_residual_jacobian_matches_torch(name, dtype):
    g = golden("jac", name)
    net = make_net(fastbp, [3, 33, 2], name, g["theta"], dtype)
    assert rel_err(net.residual_jacobian(g["X"].astype(dtype)), g["J"]) <= TOL[dtype]


# ----------------------------------------------------------------------- oracle, production shapes
@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(15)
    theta, X, Y = random_problem(rng, SIZES, BATCH)
    return theta, X, Y, rng.normal(size=theta.shape), rng.normal(size=theta.shape)


@pytest.mark.parametrize("name", ACTS)
def test_hvp_matches_oracle(problem, name):
    theta, X, Y, v, _ = problem
    acts = [name, name, "identity"]
    net = make_net(fastbp, SIZES, acts, theta)
    _, hv = ref.hvp(SIZES, acts, theta, X, Y, v)
    assert rel_err(net.hvp(X, Y, v), hv) <= 1e-12


def test_gnvp_and_jacobian_match_oracle(problem):
    theta, X, Y, v, _ = problem
    net = make_net(fastbp, SIZES, MIXED, theta)
    J = ref.residual_jacobian(SIZES, MIXED, theta, X)
    assert rel_err(net.residual_jacobian(X), J) <= 1e-12
    assert rel_err(net.gnvp(X, Y, v), J.T @ (J @ v)) <= 1e-12


# ----------------------------------------------------------------------- identities
def test_jacobian_transpose_residual_is_the_gradient(problem):
    theta, X, Y, _, _ = problem
    net = make_net(fastbp, SIZES, MIXED, theta)
    r = (net.forward(X) - Y).ravel()
    _, grad = net.loss_and_grad(X, Y)
    assert rel_err(net.residual_jacobian(X).T @ r, grad) <= 1e-12


def test_hessian_is_symmetric(problem):
    theta, X, Y, v, u = problem
    net = make_net(fastbp, SIZES, MIXED, theta)
    uHv = u @ net.hvp(X, Y, v)
    vHu = v @ net.hvp(X, Y, u)
    assert abs(uHv - vHu) <= 1e-12 * max(abs(uHv), 1.0)


def test_zero_residual_hessian_is_gauss_newton(problem):
    theta, X, _, v, _ = problem
    net = make_net(fastbp, SIZES, MIXED, theta)
    Y = net.forward(X)
    assert rel_err(net.hvp(X, Y, v), net.gnvp(X, Y, v)) <= 1e-12
    # and with a residual they differ: the test can fail
    assert rel_err(net.hvp(X, Y + 1.0, v), net.gnvp(X, Y, v)) > 1e-3


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "softplus"])
def test_hvp_matches_finite_differences_of_the_gradient(problem, name):
    """(grad(theta + e v) - grad(theta - e v)) / 2e, e = 1e-5: O(e^2) + rounding ~ 1e-8."""
    theta, X, Y, v, _ = problem
    acts = [name, name, name]
    net = make_net(fastbp, SIZES, acts, theta)
    hv = net.hvp(X, Y, v)
    eps = 1e-5
    net.params = theta + eps * v
    up = net.loss_and_grad(X, Y)[1].copy()
    net.params = theta - eps * v
    down = net.loss_and_grad(X, Y)[1]
    assert rel_err(hv, (up - down) / (2 * eps)) <= 1e-6


# ----------------------------------------------------------------------- API details
def test_one_sample_out_and_empty_batch(problem):
    theta, X, Y, v, _ = problem
    net = make_net(fastbp, SIZES, MIXED, theta)
    out = np.empty(net.n_params)
    assert net.hvp(X[3], Y[3], v, out=out) is out
    assert np.array_equal(out, net.hvp(X[3:4], Y[3:4], v))
    assert np.array_equal(net.gnvp(X[3], Y[3], v), net.gnvp(X[3:4], Y[3:4], v))
    J = net.residual_jacobian(X[3])
    assert J.shape == (SIZES[-1], net.n_params)
    assert np.array_equal(J, net.residual_jacobian(X[3:4]))
    J_out = np.empty((BATCH * SIZES[-1], net.n_params))
    assert net.residual_jacobian(X, out=J_out) is J_out
    assert np.array_equal(net.hvp(X[:0], Y[:0], v), np.zeros(net.n_params))
    assert net.residual_jacobian(X[:0]).shape == (0, net.n_params)


def test_list_inputs_are_converted(problem):
    theta, X, Y, v, _ = problem
    net = make_net(fastbp, SIZES, MIXED, theta)
    assert np.array_equal(
        net.hvp(X[:2].tolist(), Y[:2].tolist(), v.tolist()), net.hvp(X[:2], Y[:2], v)
    )


BAD = [
    (lambda X, Y, v: (X[:, :-1], Y, v), ValueError, "X: expected 33 columns"),
    (lambda X, Y, v: (X, Y[:-1], v), ValueError, "X, Y: expected the same number of samples"),
    (lambda X, Y, v: (X, Y, v[:-1]), ValueError, "v: expected shape"),
    (lambda X, Y, v: (X, Y, v.astype(str)), TypeError, "v: expected a real numeric array"),
    (lambda X, Y, v: (np.where(X == X[0, 0], np.nan, X), Y, v), ValueError, "X: expected finite"),
    (lambda X, Y, v: (X, Y, np.where(v == v[0], np.inf, v)), ValueError, "v: expected finite"),
]


@pytest.mark.parametrize("method", ["hvp", "gnvp"])
@pytest.mark.parametrize("bad", range(len(BAD)))
def test_bad_input_raises_and_leaves_network_unchanged(problem, method, bad):
    theta, X, Y, v, _ = problem
    net = make_net(fastbp, SIZES, MIXED, theta)
    make, exc, message = BAD[bad]
    with pytest.raises(exc, match=message):
        getattr(net, method)(*make(X, Y, v))
    assert np.array_equal(net.params, theta)


def test_bad_out_raises(problem):
    theta, X, Y, v, _ = problem
    net = make_net(fastbp, SIZES, MIXED, theta)
    with pytest.raises(TypeError, match="out: expected dtype float64"):
        net.hvp(X, Y, v, out=np.empty(net.n_params, np.float32))
    with pytest.raises(ValueError, match="out: expected shape"):
        net.gnvp(X, Y, v, out=np.empty(net.n_params + 1))
    with pytest.raises(ValueError, match="out: expected shape"):
        net.residual_jacobian(X, out=np.empty((BATCH, net.n_params)))
    with pytest.raises(ValueError, match="X: expected finite"):
        net.residual_jacobian(np.full((2, 33), np.inf))


def _check_errors(hvp, gnvp, residual_jacobian, second_order, problem):
    theta, X, Y, v, _ = problem
    net = make_net(fastbp, SIZES, MIXED, theta)
    th, sizes, codes = net.kernel_args()
    work = kernels.make_second_order_workspace(SIZES, BATCH)
    assert work.shape == (kernels.second_order_workspace_length(SIZES, BATCH),)
    out = np.empty(net.n_params)
    with pytest.raises(ValueError, match="work too short"):
        hvp(th, sizes, codes, X, Y, v, work[:-1], out)
    with pytest.raises(ValueError, match="v must have the length of theta"):
        gnvp(th, sizes, codes, X, Y, v[:-1], work, out)
    with pytest.raises(ValueError, match="Y must have shape"):
        hvp(th, sizes, codes, X, Y[:-1], v, work, out)
    with pytest.raises(ValueError, match="theta length"):
        hvp(th[:-1], sizes, codes, X, Y, v[:-1], work, out[:-1])
    with pytest.raises(ValueError, match="out must have shape"):
        residual_jacobian(th, sizes, codes, X, work, np.empty((BATCH, len(th))))
    with pytest.raises(ValueError, match="mode must be"):
        second_order(th, sizes, codes, X, Y, v, work, out.reshape(1, -1), 7)
    with pytest.raises(ValueError, match="Y: expected finite"):
        second_order(th, sizes, codes, X, np.full_like(Y, np.nan), v, work, out.reshape(1, -1), 0)
    # and with good arguments the body writes H v (the test can fail)
    second_order(th, sizes, codes, X, Y, v, work, out.reshape(1, -1), kernels.HVP)
    assert rel_err(out, ref.hvp(SIZES, MIXED, theta, X, Y, v)[1]) <= 1e-12


def test_compiled_body_checks_its_arguments(problem):
    """The serial body (the drivers' bytecode, the signature the methods compiled already)
    through thin wrappers like the public drivers': every check fires before any write."""

    def body(*a):  # the squared loss without weights: loss code 0, the empty theta[:0]
        return so._body_serial(*a, 0, a[0][:0])

    def hvp(*a):
        return body(*a[:-1], a[-1].reshape(1, -1), kernels.HVP)

    def gnvp(*a):
        return body(*a[:-1], a[-1].reshape(1, -1), kernels.GNVP)

    def residual_jacobian(th, s, c, X, work, out):
        return body(th, s, c, X, X, th, work, out, kernels.JACOBIAN)

    _check_errors(hvp, gnvp, residual_jacobian, body, problem)


@pytest.mark.slow
def test_public_compiled_drivers_check_their_arguments(problem):
    """kernels.hvp, gnvp, residual_jacobian and second_order (the threaded body: a signature of
    its own, hence slow)."""
    _check_errors(
        kernels.hvp, kernels.gnvp, kernels.residual_jacobian, kernels.second_order, problem
    )


# ----------------------------------------------------------------------- threads
@pytest.mark.slow
@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
def test_public_drivers_same_bits_at_1_and_2_threads():
    """kernels.hvp / gnvp / residual_jacobian (threaded body) at 1 and 2 threads, and the
    method's serial body on one thread: the same bits."""
    sizes = [64, 128, 64, 8]  # B * 64 * 128 >= PARALLEL_MIN_WORK at B = 70
    rng = np.random.default_rng(3)
    theta, X, Y = random_problem(rng, sizes, 70)
    v = rng.normal(size=theta.shape)
    net = make_net(fastbp, sizes, MIXED, theta)
    assert kernels.uses_threads(sizes, 70)
    th, s, c = net.kernel_args()
    work = kernels.make_second_order_workspace(sizes, 70)
    results = []
    old = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            hv, gv = np.empty_like(theta), np.empty_like(theta)
            J = np.empty((70 * 8, len(theta)))
            with fastbp._jit.PARALLEL_LOCK:
                kernels.hvp(th, s, c, X, Y, v, work, hv)
                kernels.gnvp(th, s, c, X, Y, v, work, gv)
                kernels.residual_jacobian(th, s, c, X, work, J)
            results.append((hv, gv, J))
        numba.set_num_threads(1)  # the methods take the serial body
        serial = (net.hvp(X, Y, v), net.gnvp(X, Y, v), net.residual_jacobian(X))
    finally:
        numba.set_num_threads(old)
    for a, b, c_ in zip(results[0], results[1], serial):
        assert np.array_equal(a, b) and np.array_equal(a, c_)
    assert rel_err(results[0][0], ref.hvp(sizes, MIXED, theta, X, Y, v)[1]) <= 1e-12


# ----------------------------------------------------------------------- allocations
MEASURE = """
import json
import numpy as np
from numba.core.runtime import rtsys
import fastbp

net = fastbp.MLP([33, 65, 100, 4], ["tanh", "softplus", "sigmoid"], seed=0)
rng = np.random.default_rng(0)
X = rng.normal(size=(65, 33)); Y = rng.normal(size=(65, 4)); v = rng.normal(size=net.n_params)
hv = np.empty(net.n_params); J = np.empty((65 * 4, net.n_params))
calls = {"hvp": lambda: net.hvp(X, Y, v, out=hv), "gnvp": lambda: net.gnvp(X, Y, v, out=hv),
         "residual_jacobian": lambda: net.residual_jacobian(X, out=J)}
result = {}
for name, call in calls.items():
    for _ in range(3):
        call()
    before = rtsys.get_allocation_stats()
    for _ in range(10):
        call()
    after = rtsys.get_allocation_stats()
    result[name] = [after.alloc - before.alloc, after.free - before.free]
print("RESULT " + json.dumps(result))
"""


@pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"), reason="needs compiled code"
)
def test_steady_state_allocates_only_boxing():
    """10 calls allocate exactly the boxing of the body's 9 array arguments (the weights, empty
    here, among them), all freed: the kernels themselves allocate nothing (test_allocations.py
    explains the boxing)."""
    counts = script_result(run_script(MEASURE, timeout=600, NUMBA_NRT_STATS="1"))
    for name, (alloc, free) in counts.items():
        assert alloc == free == 9 * 10, (name, alloc, free)


def test_cross_entropy_hessian_and_gauss_newton_with_weights(rng):
    """For the cross-entropy losses (class labels and probabilities) and sample weights (a 0
    among them): hvp against central differences of the gradient, gnvp against
    J_r^T diag(w) H_out J_r v from the residual Jacobian (H_out: the loss's Hessian in the
    logits, diag(p) - p p^T for softmax, s (1 - s) for sigmoid)."""
    for loss in ("squared", "softmax_cross_entropy", "sigmoid_cross_entropy"):
        net = fastbp.MLP([4, 6, 3], ["tanh", "identity"], loss=loss, seed=0)
        theta = rng.normal(scale=0.7, size=net.n_params)
        net.params = theta
        X = rng.normal(size=(7, 4))
        if loss == "softmax_cross_entropy":
            Y = rng.integers(0, 3, size=7)
        else:
            Y = rng.uniform(size=(7, 3))
        v = rng.normal(size=net.n_params)
        w = rng.uniform(0.0, 2.0, size=7)
        w[2] = 0.0
        for sw in (None, w):
            Hv = net.hvp(X, Y, v, sample_weight=sw)
            h = 1e-5
            net.params = theta + h * v
            up = net.loss_and_grad(X, Y, sample_weight=sw)[1].copy()
            net.params = theta - h * v
            down = net.loss_and_grad(X, Y, sample_weight=sw)[1].copy()
            net.params = theta
            assert rel_err(Hv, (up - down) / (2 * h)) <= 1e-7, (loss, sw is not None)
            J = net.residual_jacobian(X)
            F = net.forward(X)
            Jv = (J @ v).reshape(F.shape)
            if loss == "softmax_cross_entropy":
                P = np.exp(F - F.max(axis=1, keepdims=True))
                P /= P.sum(axis=1, keepdims=True)
                HJv = P * Jv - P * (P * Jv).sum(axis=1, keepdims=True)
            elif loss == "sigmoid_cross_entropy":
                s = 1.0 / (1.0 + np.exp(-F))
                HJv = s * (1.0 - s) * Jv
            else:
                HJv = Jv
            weights = np.ones(7) if sw is None else sw
            expected = J.T @ (weights[:, None] * HJv).ravel()
            assert rel_err(net.gnvp(X, Y, v, sample_weight=sw), expected) <= 1e-12
    # Newton-CG with the exact hessp on a cross-entropy network, weighted
    pytest.importorskip("scipy")
    from fastbp import optimize

    net = fastbp.MLP([4, 6, 3], ["tanh", "identity"], loss="softmax_cross_entropy", seed=1)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, size=30)
    start = net.loss(X, y, sample_weight=w.repeat(5)[:30]) / w.repeat(5)[:30].sum()
    result = optimize.minimize(
        net, X, y, method="Newton-CG", sample_weight=w.repeat(5)[:30], l2=0.01,
        options={"maxiter": 20},
    )  # fmt: skip
    assert result.fun < 0.8 * start


def test_least_squares_refuses_cross_entropy_networks():
    """least_squares fits residuals f - y: a cross-entropy network gets a ValueError naming
    it, its parameters unchanged."""
    pytest.importorskip("scipy")
    from fastbp import optimize

    net = fastbp.MLP([4, 8, 3], ["tanh", "identity"], loss="softmax_cross_entropy", seed=1)
    X, y = np.ones((5, 4)), np.zeros(5, dtype=np.int64)
    before = net.params.copy()
    with pytest.raises(ValueError, match="fastbp.optimize: defined for the squared loss"):
        optimize.least_squares(net, X, y)
    assert np.array_equal(net.params, before)
