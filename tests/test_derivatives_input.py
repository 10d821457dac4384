"""Input derivatives: MLP.input_grad, jacobian (both modes), jvp, vjp and their compiled drivers.

Checked against PyTorch's torch.func (golden values in tests/data/derivative_golden.npz, made by
tests/data/make_derivative_golden.py), against the NumPy oracle (tests/reference_derivatives.py)
at production shapes, by identities (forward and reverse Jacobians agree; dX = J^T (f - y),
J v and u^T J from J), by central differences along random directions, and for the bits at 1
and 2 threads and the allocations in a fresh interpreter.

Cold compile is the scarce resource: the default run compiles the serial float64 body only
(the methods on one Numba thread: the ``serial`` fixture; the compiled drivers' serial twins,
the same bytecode as the public ones). Float32, the threaded drivers, and the bits at 1 and 2
threads with the allocations are ``slow`` (run them with ``-m slow``).
"""

from pathlib import Path

import numba
import numpy as np
import pytest
import reference_derivatives as rd
from helpers import make_net, random_problem, rel_err, run_script, scalar_rel_err, script_result

import fastbp
from fastbp.activations import ACTIVATIONS

GOLDEN = np.load(Path(__file__).parent / "data" / "derivative_golden.npz")
CASES = sorted({key.split("/")[0] for key in GOLDEN.files})
# Widths past 32, 64 and 128, a batch past 64 (and not a multiple of 32 or 8).
PRODUCTION = (129, 70, 33, 6)
BATCH = 70


@pytest.fixture(autouse=True)
def serial(request):
    """One Numba thread, so the methods run the serial body (no parfor compiled), except in the
    tests marked slow, which run on the threads the session has."""
    if request.node.get_closest_marker("slow"):
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def golden(name):
    g = {key.split("/")[1]: GOLDEN[key] for key in GOLDEN.files if key.startswith(name + "/")}
    g["sizes"] = [int(m) for m in g["sizes"]]
    g["acts"] = str(g["acts"]).split(",")
    return g


def golden_net(g, dtype):
    return make_net(fastbp, g["sizes"], g["acts"], g["theta"], dtype)


@pytest.mark.parametrize("name", CASES)
def test_golden_float64(name):
    g = golden(name)
    net = golden_net(g, np.float64)
    for mode in ("forward", "reverse", "auto"):
        J = net.jacobian(g["X"], mode=mode)
        assert rel_err(J, g["J_rev"]) < 1e-12, mode
        assert rel_err(J, g["J_fwd"]) < 1e-12, mode
    loss, dX = net.input_grad(g["X"], g["Y"])
    assert rel_err(dX, g["dX"]) < 1e-12
    assert scalar_rel_err(loss, g["losses"].sum()) < 1e-12
    F, JV = net.jvp(g["X"], g["V"])
    assert rel_err(JV, g["JV"]) < 1e-12
    F2, UJ = net.vjp(g["X"], g["U"])
    assert rel_err(UJ, g["UJ"]) < 1e-12
    assert np.array_equal(F, F2) and np.array_equal(F, net.forward(g["X"]))


@pytest.mark.slow
def test_golden_float32():
    for name in CASES:
        g = golden(name)
        net = golden_net(g, np.float32)
        X = g["X"].astype(np.float32)
        for mode in ("forward", "reverse"):
            assert rel_err(net.jacobian(X, mode=mode), g["J_rev"]) < 1e-4, (name, mode)
        loss, dX = net.input_grad(X, g["Y"].astype(np.float32))
        assert dX.dtype == np.float32 and rel_err(dX, g["dX"]) < 1e-4, name
        assert scalar_rel_err(loss, g["losses"].sum()) < 1e-4, name
        assert rel_err(net.jvp(X, g["V"].astype(np.float32))[1], g["JV"]) < 1e-4, name
        assert rel_err(net.vjp(X, g["U"].astype(np.float32))[1], g["UJ"]) < 1e-4, name


@pytest.fixture(scope="module")
def production():
    rng = np.random.default_rng(7)
    theta, X, Y = random_problem(rng, PRODUCTION, BATCH, scale=1.5)
    return theta, X, Y, rng.normal(size=X.shape), rng.normal(size=Y.shape)


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_production_identities_and_oracle(act, production):
    theta, X, Y, V, U = production
    acts = [act] * (len(PRODUCTION) - 1)
    net = make_net(fastbp, PRODUCTION, acts, theta)
    Jf = net.jacobian(X, mode="forward")
    Jr = net.jacobian(X, mode="reverse")
    assert Jf.shape == (BATCH, PRODUCTION[-1], PRODUCTION[0])
    assert rel_err(Jf, Jr) < 1e-12
    assert rel_err(Jr, rd.jacobian(theta, PRODUCTION, acts, X)) < 1e-12
    loss, dX = net.input_grad(X, Y)
    ref_loss, ref_dX = rd.input_grad(theta, PRODUCTION, acts, X, Y)
    assert rel_err(dX, ref_dX) < 1e-12 and scalar_rel_err(loss, ref_loss) < 1e-12
    assert loss == net.loss(X, Y)  # the same forward pass, summed alike
    F = net.forward(X)
    assert rel_err(dX, np.einsum("bij,bi->bj", Jr, F - Y)) < 1e-12
    F1, JV = net.jvp(X, V)
    assert np.array_equal(F1, F) and rel_err(JV, np.einsum("bij,bj->bi", Jr, V)) < 1e-12
    F2, UJ = net.vjp(X, U)
    assert np.array_equal(F2, F) and rel_err(UJ, np.einsum("bij,bi->bj", Jr, U)) < 1e-12
    F3, dX3 = net.vjp(X, F - Y)
    assert np.array_equal(dX3, dX)  # input_grad is vjp seeded with f - y, bit for bit


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "softplus", "identity"])
def test_central_differences(act, rng):
    sizes = (7, 40, 65, 3)
    theta, X, Y = random_problem(rng, sizes, 5)
    net = make_net(fastbp, sizes, [act] * 3, theta)
    eps = 1e-5
    for _ in range(3):
        V = rng.normal(size=X.shape)
        fd = (net.forward(X + eps * V) - net.forward(X - eps * V)) / (2 * eps)
        assert rel_err(net.jvp(X, V)[1], fd) < 1e-7
        # Directional derivative of the loss: dX . V.
        lfd = (net.loss(X + eps * V, Y) - net.loss(X - eps * V, Y)) / (2 * eps)
        assert scalar_rel_err(np.sum(net.input_grad(X, Y)[1] * V), lfd) < 1e-7


def test_one_sample_drops_the_batch_axis(production):
    theta, X, Y, V, U = production
    net = make_net(fastbp, PRODUCTION, "tanh", theta)
    J = net.jacobian(X[3])
    assert J.shape == (PRODUCTION[-1], PRODUCTION[0])
    assert np.array_equal(J, net.jacobian(X[3:4])[0])
    loss, dx = net.input_grad(X[3], Y[3])
    assert dx.shape == (PRODUCTION[0],) and loss == net.loss(X[3], Y[3])
    f, jv = net.jvp(X[3], V[3])
    assert f.shape == jv.shape == (PRODUCTION[-1],)
    f, uj = net.vjp(X[3], U[3])
    assert f.shape == (PRODUCTION[-1],) and uj.shape == (PRODUCTION[0],)
    # Lists and integer arrays are converted, as everywhere.
    assert np.array_equal(net.jacobian(X[3].tolist()), J)


def test_cross_entropy_networks(production):
    """f's derivatives hold for any loss (same bits as the squared network's); input_grad and
    per_sample_grads seed the recursion with the loss's own delta^L: softmax(f) - y for labels,
    the vjp of that cotangent."""
    theta, X, Y, V, U = production
    acts = ["tanh"] * (len(PRODUCTION) - 2) + ["identity"]
    sq = make_net(fastbp, PRODUCTION, acts, theta)
    ce = fastbp.MLP(PRODUCTION, acts, loss="softmax_cross_entropy")
    ce.params = sq.params
    assert np.array_equal(ce.jacobian(X[:5]), sq.jacobian(X[:5]))
    assert all(np.array_equal(a, b) for a, b in zip(ce.jvp(X[:5], V[:5]), sq.jvp(X[:5], V[:5])))
    assert all(np.array_equal(a, b) for a, b in zip(ce.vjp(X[:5], U[:5]), sq.vjp(X[:5], U[:5])))
    labels = np.arange(5) % PRODUCTION[-1]
    P = ce.predict_proba(X[:5])
    seed = P - np.eye(PRODUCTION[-1])[labels]
    loss, dX = ce.input_grad(X[:5], labels)
    assert loss == pytest.approx(ce.loss(X[:5], labels), rel=1e-14)
    assert rel_err(dX, ce.vjp(X[:5], seed)[1]) <= 1e-12
    losses, G = ce.per_sample_grads(X[:5], labels)
    total, grad = ce.loss_and_grad(X[:5], labels)
    assert losses.sum() == pytest.approx(total, rel=1e-13)
    assert rel_err(G.sum(axis=0), grad) <= 1e-12
    assert rel_err(G[2], ce.loss_and_grad(X[2:3], labels[2:3])[1]) <= 1e-12


@pytest.mark.parametrize("loss", ["squared", "softmax_cross_entropy", "sigmoid_cross_entropy"])
def test_every_loss_and_sample_weights_against_central_differences(loss, rng):
    """input_grad against central differences of :meth:`loss` in X, and per_sample_grads'
    rows summing to loss_and_grad's gradient, with sample weights (a 0 among them)."""
    net = fastbp.MLP([4, 6, 3], ["tanh", "identity"], loss=loss, seed=0)
    net.params = rng.normal(scale=0.7, size=net.n_params)
    X = rng.normal(size=(7, 4))
    if loss == "softmax_cross_entropy":
        Y = rng.integers(0, 3, size=7)
    else:
        Y = rng.uniform(size=(7, 3))
    w = rng.uniform(0.0, 2.0, size=7)
    w[2] = 0.0
    for sw in (None, w):
        value, dX = net.input_grad(X, Y, sample_weight=sw)
        assert value == pytest.approx(net.loss(X, Y, sample_weight=sw), rel=1e-14)
        fd = np.empty_like(X)
        h = 1e-6
        for i, j in np.ndindex(*X.shape):
            E = np.zeros_like(X)
            E[i, j] = h
            up, down = net.loss(X + E, Y, sample_weight=sw), net.loss(X - E, Y, sample_weight=sw)
            fd[i, j] = (up - down) / (2 * h)
        assert rel_err(dX, fd) <= 1e-7
        losses, G = net.per_sample_grads(X, Y, sample_weight=sw)
        total, grad = net.loss_and_grad(X, Y, sample_weight=sw)
        assert losses.sum() == pytest.approx(total, rel=1e-13)
        assert rel_err(G.sum(axis=0), grad) <= 1e-12
    assert not G[2].any() and losses[2] == 0.0  # weight 0: the sample is removed
    with pytest.raises(ValueError, match="sample_weight: expected finite values >= 0"):
        net.input_grad(X, Y, sample_weight=-w)


def test_auto_mode_picks_the_cheaper():
    mode = fastbp.derivatives.jacobian_mode
    assert mode([3, 64, 5]) == "forward"
    assert mode([784, 128, 10]) == "reverse"
    assert mode([2, 50, 50, 50, 1]) == "reverse"
    assert mode([1, 50, 50, 50, 9]) == "forward"
    assert mode([4, 4]) == "reverse"  # a tie
    assert mode([4, 4], "forward") == "forward"


def test_bad_input_is_refused_before_any_kernel(production):
    theta, X, Y, V, U = production
    net = make_net(fastbp, PRODUCTION, "tanh", theta)
    before = net.params.copy()
    with pytest.raises(ValueError, match="X: expected 129 columns"):
        net.jacobian(X[:, :5])
    with pytest.raises(ValueError, match="mode: expected one of"):
        net.jacobian(X, mode="sideways")
    with pytest.raises(TypeError, match="mode: expected one of"):
        net.jacobian(X, mode=1)
    with pytest.raises(ValueError, match="X, Y: expected the same number of samples"):
        net.input_grad(X, Y[:3])
    with pytest.raises(ValueError, match="X, V: expected both 1-D"):
        net.jvp(X, V[0])
    with pytest.raises(ValueError, match="V: expected 129 columns"):
        net.jvp(X, U)
    with pytest.raises(ValueError, match="U: expected 6 columns"):
        net.vjp(X, V)
    with pytest.raises(TypeError, match="U: expected a real numeric array"):
        net.vjp(X, np.full(U.shape, "a"))
    bad = X.copy()
    bad[2, 5] = np.nan
    with pytest.raises(ValueError, match=r"X: expected finite values, found nan at index \(2, 5\)"):
        net.jacobian(bad)
    bad = V.copy()
    bad[1, 0] = np.inf
    with pytest.raises(ValueError, match=r"V: expected finite values, found inf at index \(1, 0\)"):
        net.jvp(X, bad)
    assert np.array_equal(net.params, before)


def test_overflow_is_reported(production):
    theta, X, Y, V, U = production
    net = make_net(fastbp, PRODUCTION, "identity", theta)
    net.params = net.params * 1e120  # the products overflow: inf - inf inside the sums
    with pytest.raises(FloatingPointError, match="overflowed"):
        net.jacobian(X * 1e100)


DRIVERS = ("input_grad", "vjp", "jvp", "jacobian")


def wrapper_code(dispatcher):
    """The Python function of a compiled driver: its argument mapping run from Python over the
    compiled body it calls (so the default run compiles no wrapper: each would link and
    optimize the whole body again)."""
    return getattr(dispatcher, "py_func", dispatcher)


def _drivers(public: bool) -> dict:
    from fastbp import kernels
    from fastbp._kernels import input_derivs

    if public:
        return {name: getattr(kernels, name) for name in DRIVERS}
    return {name: wrapper_code(getattr(input_derivs, f"_{name}_serial")) for name in DRIVERS}


@pytest.mark.parametrize("public", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_compiled_drivers_match_the_methods(public, production):
    """The drivers of fastbp.kernels, called with their own workspace: in the slow run the
    public (threaded) ones, compiled; by default the code of their serial twins (the same
    bytecode) over the compiled serial body that the methods use, which checks each driver's
    argument mapping and messages without compiling it."""
    from fastbp import kernels

    k = _drivers(public)
    theta, X, Y, V, U = production
    net = make_net(fastbp, PRODUCTION, "softplus", theta)
    th, sizes, codes = net.kernel_args()
    A, Z, _ = kernels.make_workspace(PRODUCTION, BATCH)
    B, m0, mL = BATCH, PRODUCTION[0], PRODUCTION[-1]
    dX = np.empty((B, m0))
    assert k["input_grad"](th, sizes, codes, X, Y, A, Z, dX) == net.input_grad(X, Y)[0]
    assert np.array_equal(dX, net.input_grad(X, Y)[1])
    F, out = np.empty((B, mL)), np.empty((B, m0))
    k["vjp"](th, sizes, codes, X, U, A, Z, F, out)
    assert np.array_equal(out, net.vjp(X, U)[1])
    JV = np.empty((B, mL))
    k["jvp"](th, sizes, codes, X, V, A, Z, F, JV)
    assert np.array_equal(JV, net.jvp(X, V)[1])
    for forward in (True, False):
        T = np.empty(kernels.tangent_length(PRODUCTION, B, forward))
        J = np.empty((B, mL, m0))
        k["jacobian"](th, sizes, codes, X, A, Z, T, forward, J)
        mode = "forward" if forward else "reverse"
        assert np.array_equal(J, net.jacobian(X, mode=mode))
        with pytest.raises(ValueError, match="T too short"):
            k["jacobian"](th, sizes, codes, X, A, Z, T[:-1], forward, J)
    with pytest.raises(ValueError, match="kernels: U must have shape"):
        k["vjp"](th, sizes, codes, X, U[:, :2].copy(), A, Z, F, out)
    with pytest.raises(ValueError, match="kernels: JV must have shape"):
        k["jvp"](th, sizes, codes, X, V, A, Z, F, JV[:3])
    with pytest.raises(ValueError, match="workspace A or Z too short"):
        k["input_grad"](th, sizes, codes, X, Y, A[:10], Z, dX)
    bad = Y.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="Y: expected finite values"):
        k["input_grad"](th, sizes, codes, X, bad, A, Z, dX)


# Bits at 1 and 2 threads (the public drivers split over sample blocks) and allocations: every
# call from Python boxes its array arguments (one NRT allocation each, freed on return); the
# kernels themselves allocate nothing, so a call costs exactly that many, at any batch.
THREADS_AND_ALLOCS = """
import hashlib, json
import numba
import numpy as np
from numba.core.runtime import rtsys
import fastbp
from fastbp import kernels
from fastbp._kernels import input_derivs as D

def digest(*arrays):
    return hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()

rng = np.random.default_rng(3)
out = {}
for sizes, batch, act in [((129, 70, 33, 6), 70, "tanh"), ((300, 65, 4), 133, "relu")]:
    net = fastbp.MLP(sizes, act, seed=2)
    th, s, c = net.kernel_args()
    X = rng.normal(size=(batch, sizes[0])); Y = rng.normal(size=(batch, sizes[-1]))
    V = rng.normal(size=X.shape); U = rng.normal(size=Y.shape)
    A, Z, _ = kernels.make_workspace(sizes, batch)
    B, m0, mL = batch, sizes[0], sizes[-1]
    bufs = dict(dX=np.empty((B, m0)), F=np.empty((B, mL)), JV=np.empty((B, mL)),
                J=np.empty((B, mL, m0)), losses=np.empty(B), G=np.empty((B, net.n_params)))
    T = {f: np.empty(D.tangent_length(sizes, B, f)) for f in (True, False)}
    calls = {
        "input_grad": lambda k: k(th, s, c, X, Y, A, Z, bufs["dX"]),
        "vjp": lambda k: k(th, s, c, X, U, A, Z, bufs["F"], bufs["dX"]),
        "jvp": lambda k: k(th, s, c, X, V, A, Z, bufs["F"], bufs["JV"]),
        "jacobian_forward": lambda k: k(th, s, c, X, A, Z, T[True], True, bufs["J"]),
        "jacobian_reverse": lambda k: k(th, s, c, X, A, Z, T[False], False, bufs["J"]),
        "per_sample_grads": lambda k: k(th, s, c, X, Y, A, Z, bufs["losses"], bufs["G"]),
    }
    variants = {
        "input_grad": (D.input_grad, D._input_grad_serial), "vjp": (D.vjp, D._vjp_serial),
        "jvp": (D.jvp, D._jvp_serial), "jacobian_forward": (D.jacobian, D._jacobian_serial),
        "jacobian_reverse": (D.jacobian, D._jacobian_serial),
        "per_sample_grads": (D.per_sample_grads, D._per_sample_grads_serial),
    }
    n_arrays = {"input_grad": 8, "vjp": 9, "jvp": 9, "jacobian_forward": 8,
                "jacobian_reverse": 8, "per_sample_grads": 9}
    for op, run in calls.items():
        public, serial = variants[op]
        digests = []
        for kernel, threads in ((serial, 1), (public, 1), (public, 2)):
            numba.set_num_threads(threads)
            value = run(kernel)
            digests.append(digest(*bufs.values(), np.array(value if value is not None else 0.0)))
        numba.set_num_threads(2)
        before = rtsys.get_allocation_stats()
        for _ in range(5):
            run(public)
        after = rtsys.get_allocation_stats()
        out[f"{sizes} {op}"] = {
            "same_bits": len(set(digests)) == 1,
            "alloc_per_call": (after.alloc - before.alloc) / 5,
            "balanced": after.alloc - before.alloc == after.free - before.free,
            "boxed": n_arrays[op],
        }
print("RESULT " + json.dumps(out))
"""


def test_threaded_variant_is_selected():
    """The methods run the threaded body when the work reaches PARALLEL_MIN_WORK and Numba has
    two threads, the serial twin otherwise (the choice only: nothing compiles here)."""
    from fastbp import derivatives
    from fastbp._kernels import input_derivs as D

    sizes = (784, 128, 10)
    assert derivatives._variant(sizes, 64) == (D._derivatives_serial, False)  # one thread
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("the two-thread half needs NUMBA_NUM_THREADS >= 2")
    numba.set_num_threads(2)
    assert derivatives._variant(sizes, 64) == (D._derivatives, True)
    assert derivatives._variant(sizes, 1) == (D._derivatives_serial, False)


@pytest.mark.slow
def test_threads_bitwise_and_no_allocations():
    result = script_result(
        run_script(THREADS_AND_ALLOCS, NUMBA_NUM_THREADS="2", NUMBA_NRT_STATS="1")
    )
    assert len(result) == 12
    for key, r in result.items():
        assert r["same_bits"], key
        assert r["balanced"] and r["alloc_per_call"] <= r["boxed"], (key, r)
