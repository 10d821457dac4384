"""Fuzzing the public API with hypothesis: random shapes, dtypes, values and argument kinds.

For every call: the only exceptions are the documented ``TypeError`` / ``ValueError`` (with a
message that names the offending argument) and ``FloatingPointError`` (an intermediate
overflow that would have produced NaN); the interpreter survives; the network is bit for bit
unchanged after an error (and after any call that does not train); results that are returned
have the documented shape and dtype and contain no NaN.

CI runs ``N_FAST`` examples per test (about 10-20 s in all); ``-m slow`` adds ``N_SLOW``.
"""

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastbp
from fastbp import kernels

N_FAST = 150
N_SLOW = 3000
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)

ALLOWED = (TypeError, ValueError, FloatingPointError)

#: Names a clear message may start with (the argument, or the API function for kernels).
ARG_NAMES = ("X", "Y", "out", "params", "sizes", "activations", "dtype", "seed", "eps")
ARG_NAMES += ("scheme", "net", "kernels", "X, Y", "forward", "loss", "epochs", "batch_size")

DTYPES = [
    np.float64,
    np.float32,
    np.float16,
    np.int64,
    np.int8,
    np.uint8,
    np.bool_,
    np.complex128,
    np.dtype("U3"),
    np.dtype("O"),
]

# Values that matter: NaN, +-inf, huge (beyond float32), subnormal, zero.
SPECIAL = [np.nan, np.inf, -np.inf, 1e300, -1e300, 3e38, 5e-324, 1e-45, 0.0, -0.0]


def floats_with_specials():
    return st.one_of(
        st.floats(-10.0, 10.0, allow_nan=False, width=64),
        st.sampled_from(SPECIAL),
        st.floats(allow_nan=True, allow_infinity=True),
    )


@st.composite
def arrays(draw, width=None, batch=None, single=False, allow_odd=True, valid=None):
    """A numeric array: half the time a valid one, of shape (batch, width) (``(width,)`` when
    ``single``) with finite values; otherwise with an odd dtype, shape, values or layout."""
    valid = draw(st.booleans()) if valid is None else valid
    odd = allow_odd and not valid
    if odd and draw(st.integers(0, 3)) == 0:
        dtype = draw(st.sampled_from(DTYPES))
    else:
        dtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
    dtype = np.dtype(dtype)
    b = draw(st.integers(0, 6)) if batch is None else batch
    w = width if width is not None else draw(st.integers(0, 6))
    if odd and draw(st.integers(0, 3)) == 0:
        w = draw(st.integers(0, 7))  # wrong width
    shape = (w,) if single else (b, w)
    if odd and draw(st.integers(0, 2)) == 0:
        shape = draw(st.sampled_from([(b, w), (w,), (), (b, w, 1), (w, b)]))
    if dtype.kind == "f":
        if valid:
            elements = st.one_of(
                st.floats(-3, 3, width=32),
                st.sampled_from([1e300, -1e300, 3e38, 5e-324, 1e-45, 0.0, -0.0]),
            )
        else:
            elements = floats_with_specials()
        arr = draw(hnp.arrays(np.float64, shape, elements=elements))
        with np.errstate(over="ignore"):
            arr = arr.astype(dtype)
    elif dtype.kind in "iub":
        arr = draw(hnp.arrays(dtype, shape))
    elif dtype.kind == "c":
        arr = np.zeros(shape, dtype) + 1j
    elif dtype.kind == "U":
        arr = np.full(shape, "ab", dtype=dtype)
    else:
        arr = np.empty(shape, dtype=object)
        arr[...] = None if draw(st.booleans()) else 1.0
    arr = np.array(arr)  # hypothesis may hand back a numpy scalar for shape ()
    layout = draw(st.sampled_from(["C", "C", "F", "strided", "readonly"]))
    if layout == "F":
        arr = np.asfortranarray(arr)
    elif layout == "strided" and arr.ndim >= 1:
        arr = np.repeat(arr, 2, axis=0)[::2]
    elif layout == "readonly":
        arr = arr.copy()
        arr.flags.writeable = False
    return arr


def other_values():
    """Things that are not arrays at all."""
    return st.sampled_from(
        [None, "X", b"bytes", {"a": 1}, object(), [[1.0, 2.0], [3.0]], [], [[]], 3, 2.5, [None]]
    )


def array_like(width, batch, single=False):
    return st.one_of(
        arrays(width, batch, single),
        arrays(width, batch, single).map(lambda a: a.tolist() if a.dtype != object else a),
        other_values(),
    )


@st.composite
def networks(draw):
    L = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 5), min_size=L + 1, max_size=L + 1))
    acts = draw(st.lists(st.sampled_from(fastbp.ACTIVATIONS), min_size=L, max_size=L))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    net = fastbp.MLP(sizes, acts, dtype=dtype, seed=draw(st.integers(0, 2**32 - 1)))
    if draw(st.integers(0, 4)) == 0:  # huge parameters: overflow inside the network
        net.params = net.params * np.float32(1e30)
    return net


def snapshot(net):
    return (net.sizes, net.activations, net.dtype, net.params.tobytes(), net.params.ctypes.data)


def check_error(exc):
    assert isinstance(exc, ALLOWED), repr(exc)
    message = str(exc)
    assert message, repr(exc)
    if isinstance(exc, FloatingPointError):
        assert "overflowed" in message
    else:
        assert message.startswith(ARG_NAMES), message


def no_nan(value):
    assert not np.isnan(np.asarray(value, dtype=np.float64)).any()


def fuzz_methods(data):
    net = data.draw(networks(), label="net")
    before = snapshot(net)
    m0, mL = net.sizes[0], net.sizes[-1]
    batch = data.draw(st.integers(0, 6), label="batch")
    single = data.draw(st.integers(0, 4), label="single") == 0
    if data.draw(st.booleans(), label="valid pair"):
        X = data.draw(arrays(m0, batch, single, valid=True), label="X")
        Y = data.draw(arrays(mL, batch, single, valid=True), label="Y")
    else:
        X = data.draw(array_like(m0, batch, single), label="X")
        Y = data.draw(array_like(mL, batch, single), label="Y")
    methods = [
        "forward",
        "loss",
        "loss_and_grad",
        "loss_and_grad_out",
        "params",
        "fd",
        "check",
        "fit",
    ]
    method = data.draw(st.sampled_from(methods), label="method")
    trains = method in ("params", "fit")
    try:
        if method == "forward":
            out = net.forward(X)
            assert out.dtype == net.dtype and out.shape[-1] == mL
            no_nan(out)
        elif method == "loss":
            value = net.loss(X, Y)
            assert isinstance(value, float) and value >= 0.0
        elif method in ("loss_and_grad", "loss_and_grad_out"):
            out = None
            if method == "loss_and_grad_out":
                out = data.draw(
                    st.one_of(
                        arrays(net.n_params, None, single=True).map(
                            lambda a: np.zeros(a.shape, net.dtype) if a.ndim == 1 else a
                        ),
                        arrays(net.n_params, None, single=True),
                        other_values(),
                    ),
                    label="out",
                )
            value, grad = net.loss_and_grad(X, Y, out=out)
            assert isinstance(value, float) and value >= 0.0
            assert grad.shape == (net.n_params,) and grad.dtype == net.dtype
            if out is not None:
                assert grad is out
            no_nan(grad)
        elif method == "params":
            value = data.draw(array_like(net.n_params, None, single=True), label="params")
            net.params = value
            assert net.params.ctypes.data == before[4]  # same buffer
            assert np.isfinite(net.params).all()
        elif method in ("fd", "check"):
            eps = data.draw(
                st.one_of(st.none(), st.sampled_from([1e-6, 0.0, -1.0, np.nan, "x", True])),
                label="eps",
            )
            scheme = data.draw(st.sampled_from(["central", "forward", "backward", 3]))
            if method == "fd":
                fd = fastbp.finite_difference_grad(net, X, Y, eps=eps, scheme=scheme)
                assert fd.shape == (net.n_params,) and fd.dtype == net.dtype
                no_nan(fd)
            else:
                result = fastbp.check_grad(net, X, Y, eps=eps, scheme=scheme)
                assert result.max_rel_error >= 0.0  # False for NaN
                no_nan(result.backprop)
                no_nan(result.finite_difference)
        else:  # fit
            epochs = data.draw(st.sampled_from([1, 0, -1, 1.5, "2", None]), label="epochs")
            batch_size = data.draw(st.sampled_from([1, 4, 0, -2, 2.5]), label="batch_size")
            net.fit(X, Y, epochs=epochs, batch_size=batch_size, seed=0)
            assert np.isfinite(net.params).all()
    except ALLOWED as exc:
        event(f"{method}: {type(exc).__name__}")
        if isinstance(exc, fastbp.TrainingDiverged):
            # Training that diverges (e.g. targets of 1e300: an infinite loss) is reported as
            # such, with the last finite parameters restored; steps before it may have run.
            assert method == "fit" and "training diverged" in str(exc), repr(exc)
            assert np.isfinite(net.params).all()
            assert snapshot(net)[:3] == before[:3] and snapshot(net)[4] == before[4]
            return
        check_error(exc)
        assert snapshot(net) == before, f"{method} changed the network before raising"
        return
    event(f"{method}: returned")
    if not trains:
        assert snapshot(net) == before, f"{method} changed the network"


@st.composite
def constructor_args(draw):
    sizes = draw(
        st.one_of(
            st.lists(st.integers(1, 6), min_size=2, max_size=4),
            st.lists(st.integers(1, 6), min_size=2, max_size=4).map(np.array),
            st.lists(st.integers(-2, 6), min_size=0, max_size=4),
            st.lists(st.sampled_from([1, 2.0, 2.5, "3", None, True, np.int64(2)]), max_size=4),
            other_values(),
        )
    )
    acts = draw(
        st.one_of(
            st.sampled_from(fastbp.ACTIVATIONS),
            st.sampled_from(fastbp.ACTIVATIONS),
            st.lists(st.sampled_from([*fastbp.ACTIVATIONS, "gelu", 3, None]), max_size=4),
            other_values(),
        )
    )
    dtype = draw(
        st.sampled_from([np.float64, np.float32, "float32", "f8", np.float16, int, "nope", None])
    )
    seed = draw(st.sampled_from([None, 0, 2**40, -1, 1.5, "s", np.random.default_rng(1)]))
    return sizes, acts, dtype, seed


def fuzz_constructor(args):
    sizes, acts, dtype, seed = args
    try:
        net = fastbp.MLP(sizes, acts, dtype=dtype, seed=seed)
    except ALLOWED as exc:
        event(f"MLP: {type(exc).__name__}")
        check_error(exc)
        return
    event("MLP: returned")
    assert net.dtype in (np.float32, np.float64)
    assert len(net.sizes) >= 2 and min(net.sizes) >= 1
    assert np.isfinite(net.params).all()
    assert net.params.shape == (net.n_params,)


def fuzz_kernels(data):
    """The public compiled drivers with wrong buffer lengths: ValueError, never out of bounds.
    float64 C-contiguous buffers only, so one compiled signature per driver."""
    net = fastbp.MLP(data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=4)), seed=0)
    theta, sizes, codes = net.kernel_args()
    batch = data.draw(st.integers(0, 4))
    nA, ntmp = kernels.workspace_lengths(net.sizes, batch)

    def vec(n, label):
        return np.zeros(max(0, n + data.draw(st.sampled_from([0, 0, 0, -1, 1]), label=label)))

    X = np.zeros((batch, net.sizes[0] + data.draw(st.sampled_from([0, 0, 1]), label="dX")))
    Y = np.zeros((batch + data.draw(st.sampled_from([0, 0, 1]), label="dY"), net.sizes[-1]))
    A, Z, tmp = vec(nA, "A"), vec(nA, "Z"), vec(ntmp, "tmp")
    grad = vec(net.n_params, "grad")
    theta_in = theta if data.draw(st.booleans()) else vec(net.n_params, "theta")
    out = np.zeros((batch, net.sizes[-1] + data.draw(st.sampled_from([0, 0, 1]), label="dout")))
    snapshot_ = theta.tobytes()
    which = data.draw(st.sampled_from(["forward", "loss", "loss_and_grad"]))
    try:
        if which == "forward":
            kernels.forward(theta_in, sizes, codes, X, A, Z, out)
        elif which == "loss":
            kernels.loss(theta_in, sizes, codes, X, Y, A, Z)
        else:
            kernels.loss_and_grad(theta_in, sizes, codes, X, Y, A, Z, tmp, grad)
        event(f"kernels.{which}: returned")
    except ValueError as exc:
        event(f"kernels.{which}: ValueError")
        assert str(exc).startswith("kernels:"), str(exc)
    assert theta.tobytes() == snapshot_


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NumPy scalars warn on overflow")
def test_fit_that_diverges_is_reported_by_the_fuzzer_as_such():
    """The case hypothesis found: fit with targets of 1e300 (an infinite loss) raises
    TrainingDiverged with the network restored, which the fuzzer accepts."""
    net = fastbp.MLP([1, 1], "identity", seed=0)
    before = net.params.copy()
    with pytest.raises(fastbp.TrainingDiverged, match="training diverged"):
        net.fit(np.ones((4, 1)), np.full((4, 1), 1e300), epochs=1, batch_size=1, seed=0)
    np.testing.assert_array_equal(net.params, before)


@settings(FUZZ, max_examples=N_FAST)
@given(st.data())
def test_fuzz_methods(data):
    fuzz_methods(data)


@settings(FUZZ, max_examples=N_FAST)
@given(constructor_args())
def test_fuzz_constructor(args):
    fuzz_constructor(args)


@settings(FUZZ, max_examples=N_FAST // 3)
@given(st.data())
def test_fuzz_kernels(data):
    fuzz_kernels(data)


@pytest.mark.slow
@settings(FUZZ, max_examples=N_SLOW)
@given(st.data())
def test_fuzz_methods_slow(data):
    fuzz_methods(data)


@pytest.mark.slow
@settings(FUZZ, max_examples=N_SLOW)
@given(constructor_args())
def test_fuzz_constructor_slow(args):
    fuzz_constructor(args)


@pytest.mark.slow
@settings(FUZZ, max_examples=N_SLOW // 3)
@given(st.data())
def test_fuzz_kernels_slow(data):
    fuzz_kernels(data)


# --------------------------------------------------------------------------------------------
# finite_difference, the public driver that writes theta and grad: every indexed argument
# --------------------------------------------------------------------------------------------
def _fd_args(B=3):
    net = fastbp.MLP([3, 4, 2], seed=0)
    theta, sizes, codes = net.kernel_args()
    theta = theta.copy()
    A, Z, _ = fastbp.kernels.make_workspace(net.sizes, B)
    X = np.linspace(-1, 1, B * 3).reshape(B, 3)
    Y = np.zeros((B, 2))
    return theta, sizes, codes, X, Y, A, Z


@given(
    start=st.integers(-5, 40),
    stop=st.integers(-5, 40),
    y_rows=st.integers(0, 4),
    y_cols=st.integers(1, 3),
    grad_len=st.integers(0, 30),
)
@settings(max_examples=60, deadline=None)
def test_finite_difference_checks_every_indexed_argument(start, stop, y_rows, y_cols, grad_len):
    """Out-of-range start/stop, a short grad or a wrong Y raise ValueError before any write:
    theta and a guard region after grad stay exactly as they were."""
    theta, sizes, codes, X, Y, A, Z = _fd_args()
    n = theta.shape[0]
    Yb = np.zeros((y_rows, y_cols))
    buf = np.full(grad_len + 8, 7.0)
    grad = buf[:grad_len]
    before = theta.copy()
    valid = 0 <= start <= stop <= n and grad_len == n and Yb.shape == Y.shape
    if valid:
        fastbp.kernels.finite_difference(
            theta, sizes, codes, X, Yb, A, Z, 1e-6, True, start, stop, grad
        )
        assert np.isfinite(grad[start:stop]).all()
    else:
        with pytest.raises(ValueError, match="kernels: "):
            fastbp.kernels.finite_difference(
                theta, sizes, codes, X, Yb, A, Z, 1e-6, True, start, stop, grad
            )
        np.testing.assert_array_equal(buf[:grad_len], 7.0)
    np.testing.assert_array_equal(buf[grad_len:], 7.0)
    np.testing.assert_array_equal(theta, before)


def test_finite_difference_stop_past_end_raises():
    """The reviewed defect: stop = len(theta) + 1 used to write theta[n] and grad[n]."""
    theta, sizes, codes, X, Y, A, Z = _fd_args()
    n = theta.shape[0]
    buf = np.full(n + 4, 7.0)
    with pytest.raises(ValueError, match="start <= stop"):
        fastbp.kernels.finite_difference(
            theta, sizes, codes, X, Y, A, Z, 1e-6, True, 0, n + 1, buf[:n]
        )
    np.testing.assert_array_equal(buf, 7.0)


def test_finite_difference_rejects_nan_inputs():
    theta, sizes, codes, X, Y, A, Z = _fd_args()
    X[1, 2] = np.nan
    with pytest.raises(ValueError, match="X: expected finite"):
        fastbp.kernels.finite_difference(
            theta, sizes, codes, X, Y, A, Z, 1e-6, True, 0, 2, np.empty_like(theta)
        )
