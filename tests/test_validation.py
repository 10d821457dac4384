"""Bad input raises ValueError/TypeError naming the argument, before any kernel runs, and leaves
the network unchanged; odd but valid input gives exactly the result of a plain float64 C array."""

import numpy as np
import pytest
from helpers import make_net, random_problem

import fastbp

ERRORS = (ValueError, TypeError)
SIZES = (4, 5, 3)
B = 6


@pytest.fixture
def setup(rng):
    theta, X, Y = random_problem(rng, SIZES, B)
    net = make_net(fastbp, SIZES, ("tanh", "softplus"), theta)
    return net, X, Y


def named(arg):
    """A regex that matches the argument's name as a word."""
    return rf"(?<![A-Za-z_]){arg}(?![A-Za-z_])"


# ------------------------------------------------------------------------- constructor
@pytest.mark.parametrize(
    "sizes",
    [
        [],
        [3],
        (),
        [3, 0],
        [0, 3],
        [3, -1, 2],
        [3, 2.5],
        [2.0, 3],
        ["3", 2],
        "32",
        5,
        None,
        [3, True],
    ],
    ids=repr,
)
def test_bad_sizes(sizes):
    with pytest.raises(ERRORS, match=named("sizes")):
        fastbp.MLP(sizes)


@pytest.mark.parametrize("activations", ["swish", ["tanh", "gelu"], ["Tanh", "tanh"]])
def test_unknown_activation_lists_valid_names(activations):
    with pytest.raises(ValueError, match=named("activations")) as info:
        fastbp.MLP(SIZES, activations)
    for name in fastbp.ACTIVATIONS:
        assert name in str(info.value)


@pytest.mark.parametrize(
    "activations", [["tanh"], ["tanh", "tanh", "tanh"], [], ("relu",) * 5], ids=repr
)
def test_wrong_number_of_activations(activations):
    with pytest.raises(ValueError, match=named("activations")):
        fastbp.MLP(SIZES, activations)


@pytest.mark.parametrize("activations", [None, 3, ["tanh", 3]], ids=repr)
def test_activations_of_wrong_type(activations):
    with pytest.raises(ERRORS, match=named("activations")):
        fastbp.MLP(SIZES, activations)


@pytest.mark.parametrize(
    "dtype", [np.int32, np.int64, np.float16, np.complex128, object, "float128", bool], ids=str
)
def test_unsupported_dtype(dtype):
    with pytest.raises(ERRORS, match=named("dtype")):
        fastbp.MLP(SIZES, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "float32", "f8", np.dtype("float64")])
def test_supported_dtype_spellings(dtype):
    net = fastbp.MLP(SIZES, dtype=dtype, seed=0)
    assert net.params.dtype == np.dtype(dtype)


# ------------------------------------------------------------------------- X and Y
def bad_inputs(X, Y):
    """(label, X, Y, argument named) for every bad input."""
    X3 = X[:, :, None]
    Xnan = X.copy()
    Xnan[2, 1] = np.nan
    Xinf = X.copy()
    Xinf[0, 0] = np.inf
    Ynan = Y.copy()
    Ynan[1, 2] = np.nan
    Yinf = Y.copy()
    Yinf[3, 0] = -np.inf
    return [
        ("X 3-D", X3, Y, "X"),
        ("Y 3-D", X, Y[:, :, None], "Y"),
        ("X 0-D", np.float64(1.0), Y, "X"),
        ("X wide", np.hstack([X, X[:, :1]]), Y, "X"),
        ("X narrow", X[:, :-1], Y, "X"),
        ("Y wide", X, np.hstack([Y, Y[:, :1]]), "Y"),
        ("Y narrow", X, Y[:, :-1], "Y"),
        ("x 1-D wrong width", X[0, :-1], Y[0], "X"),
        ("batch counts differ", X, Y[:-1], "(X|Y)"),
        ("batch counts differ 2", X[:-1], Y, "(X|Y)"),
        ("X 1-D Y 2-D", X[0], Y[:1], "(X|Y)"),
        ("X NaN", Xnan, Y, "X"),
        ("X Inf", Xinf, Y, "X"),
        ("Y NaN", X, Ynan, "Y"),
        ("Y -Inf", X, Yinf, "Y"),
        ("X complex", X.astype(np.complex128), Y, "X"),
        ("Y complex", X, Y.astype(np.complex128), "Y"),
        ("X object", X.astype(object), Y, "X"),
        ("Y object", X, Y.astype(object), "Y"),
        ("X strings", X.astype(str), Y, "X"),
        ("Y strings", X, Y.astype(str), "Y"),
        ("X None", None, Y, "X"),
        ("X ragged", [[1.0, 2.0, 3.0, 4.0], [1.0]] + [[0.0] * 4] * (B - 2), Y, "X"),
    ]


BAD_IDS = [case[0] for case in bad_inputs(np.zeros((B, SIZES[0])), np.zeros((B, SIZES[-1])))]


@pytest.mark.parametrize("k", range(len(BAD_IDS)), ids=BAD_IDS)
@pytest.mark.parametrize("method", ["loss_and_grad", "loss", "loss_and_grad out"])
def test_bad_X_Y(setup, k, method):
    net, X, Y = setup
    _, Xb, Yb, arg = bad_inputs(X, Y)[k]
    before = net.params.tobytes()
    with pytest.raises(ERRORS, match=named(arg)):
        if method == "loss_and_grad out":
            out = np.full(net.n_params, 7.0)
            try:
                net.loss_and_grad(Xb, Yb, out=out)
            finally:
                assert np.all(out == 7.0)  # nothing was written
        else:
            getattr(net, method)(Xb, Yb)
    assert net.params.tobytes() == before


X_ONLY = [
    k
    for k, case in enumerate(bad_inputs(np.zeros((B, SIZES[0])), np.zeros((B, SIZES[-1]))))
    if case[3] == "X"
]


@pytest.mark.parametrize("k", X_ONLY, ids=[BAD_IDS[k] for k in X_ONLY])
def test_bad_X_forward(setup, k):
    net, X, Y = setup
    _, Xb, _, _ = bad_inputs(X, Y)[k]
    before = net.params.tobytes()
    with pytest.raises(ERRORS, match=named("X")):
        net.forward(Xb)
    assert net.params.tobytes() == before


@pytest.mark.parametrize(
    "make_out",
    [
        lambda n: np.zeros(n + 1),
        lambda n: np.zeros(n - 1),
        lambda n: np.zeros(0),
        lambda n: np.zeros((n, 1)),
        lambda n: np.zeros(n, dtype=np.float32),
        lambda n: np.zeros(n, dtype=np.int64),
        lambda n: np.zeros(2 * n)[::2],
        lambda n: [0.0] * n,
    ],
    ids=["long", "short", "empty", "2-D", "float32", "int64", "strided", "list"],
)
def test_bad_out(setup, make_out):
    net, X, Y = setup
    before = net.params.tobytes()
    out = make_out(net.n_params)
    with pytest.raises(ERRORS, match=named("out")):
        net.loss_and_grad(X, Y, out=out)
    assert net.params.tobytes() == before


def test_read_only_out(setup):
    net, X, Y = setup
    out = np.zeros(net.n_params)
    out.flags.writeable = False
    with pytest.raises(ERRORS, match=named("out")):
        net.loss_and_grad(X, Y, out=out)
    assert np.all(out == 0.0)


# ------------------------------------------------------------------------- params assignment
@pytest.mark.parametrize(
    "make_value",
    [
        lambda n: np.zeros(n + 1),
        lambda n: np.zeros(n - 1),
        lambda n: np.zeros((n, 1)),
        lambda n: np.r_[np.zeros(n - 1), np.nan],
        lambda n: np.r_[np.inf, np.zeros(n - 1)],
        lambda n: np.zeros(n, dtype=np.complex128),
        lambda n: np.array(["0"] * n),
        lambda n: None,
    ],
    ids=["long", "short", "2-D", "NaN", "Inf", "complex", "strings", "None"],
)
def test_bad_params_assignment(setup, make_value):
    net, _, _ = setup
    before = net.params.tobytes()
    buffer = net.params
    with pytest.raises(ERRORS, match=named("params")):
        net.params = make_value(net.n_params)
    assert net.params.tobytes() == before
    assert net.params is buffer


def test_params_assignment_copies_into_the_same_buffer(setup, rng):
    net, _, _ = setup
    buffer = net.params
    W0 = net.weights[0]
    theta = rng.normal(size=net.n_params)
    net.params = theta
    assert net.params is buffer
    assert np.array_equal(buffer, theta)
    assert np.shares_memory(W0, net.params)
    theta[0] = 123.0  # the caller's array is not aliased
    assert net.params[0] != 123.0
    net.params = list(theta)
    assert np.array_equal(net.params, theta)


# ------------------------------------------------------------------------- accepted inputs
def variants(X, Y):
    """(label, X', Y') that must give exactly the result of the float64 C arrays X, Y."""
    Xwide = np.zeros((X.shape[0], 2 * X.shape[1]))
    Xwide[:, ::2] = X
    Ywide = np.zeros((2 * Y.shape[0], Y.shape[1]))
    Ywide[::2] = Y
    Xro, Yro = X.copy(), Y.copy()
    Xro.flags.writeable = False
    Yro.flags.writeable = False
    return [
        ("lists", X.tolist(), Y.tolist()),
        ("strided", Xwide[:, ::2], Ywide[::2]),
        ("Fortran order", np.asfortranarray(X), np.asfortranarray(Y)),
        ("read-only", Xro, Yro),
        ("transposed view", np.ascontiguousarray(X.T).T, np.ascontiguousarray(Y.T).T),
    ]


VARIANT_IDS = [v[0] for v in variants(np.zeros((2, 2)), np.zeros((2, 2)))]


def assert_same_results(net, X, Y, Xv, Yv):
    loss, grad = net.loss_and_grad(X, Y)
    grad = grad.copy()
    out = net.forward(X).copy()
    loss_v, grad_v = net.loss_and_grad(Xv, Yv)
    assert loss_v == loss
    assert grad_v.tobytes() == grad.tobytes()
    assert net.loss(Xv, Yv) == net.loss(X, Y)
    assert net.forward(Xv).tobytes() == out.tobytes()


@pytest.mark.parametrize("k", range(len(VARIANT_IDS)), ids=VARIANT_IDS)
def test_accepted_layouts(setup, k):
    net, X, Y = setup
    _, Xv, Yv = variants(X, Y)[k]
    before = net.params.tobytes()
    assert_same_results(net, X, Y, Xv, Yv)
    assert net.params.tobytes() == before


def test_float32_input_to_float64_net(setup):
    net, X, Y = setup
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    assert_same_results(net, X32.astype(np.float64), Y32.astype(np.float64), X32, Y32)


@pytest.mark.parametrize("int_dtype", [np.int8, np.int32, np.int64, np.uint16])
def test_integer_input(setup, rng, int_dtype):
    net, _, _ = setup
    Xi = rng.integers(0, 5, size=(B, SIZES[0])).astype(int_dtype)
    Yi = rng.integers(0, 2, size=(B, SIZES[-1])).astype(int_dtype)
    assert_same_results(net, Xi.astype(np.float64), Yi.astype(np.float64), Xi, Yi)


def test_float64_input_to_float32_net(rng):
    theta, X, Y = random_problem(rng, SIZES, B)
    net = make_net(fastbp, SIZES, ("sigmoid", "identity"), theta, dtype=np.float32)
    assert_same_results(net, X.astype(np.float32), Y.astype(np.float32), X, Y)


def test_empty_batch(setup):
    net, _, _ = setup
    X = np.zeros((0, SIZES[0]))
    Y = np.zeros((0, SIZES[-1]))
    loss, grad = net.loss_and_grad(X, Y)
    assert loss == 0.0
    assert grad.shape == (net.n_params,)
    assert np.all(grad == 0.0)
    assert net.loss(X, Y) == 0.0
    assert net.forward(X).shape == (0, SIZES[-1])
