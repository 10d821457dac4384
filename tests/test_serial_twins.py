"""The serial twins of the drivers: the same bits as the public drivers, and no parfor compiled
for a network whose calls stay below the threading threshold."""

import json

import numba
import numpy as np
import pytest
from helpers import run_script

import fastbp
from fastbp import kernels


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "sizes,batch",
    [((5, 7, 3), 9), ((40, 33, 2), 64), ((300, 200, 4), 40), ((784, 128, 10), 1)],
)
def test_twins_give_the_public_drivers_bits(sizes, batch, dtype, rng):
    net = fastbp.MLP(list(sizes), ["tanh", "sigmoid"], dtype=dtype, seed=4)
    theta, sz, codes = net.kernel_args()
    X = rng.normal(size=(batch, sizes[0])).astype(dtype)
    Y = rng.normal(size=(batch, sizes[-1])).astype(dtype)
    results = []
    for fwd, lss, lag in (
        (kernels.forward, kernels.loss, kernels.loss_and_grad),
        (kernels._forward_serial, kernels._loss_serial, kernels._loss_and_grad_serial),
    ):
        A, Z, tmp = kernels.make_workspace(sizes, batch, dtype)
        out = np.empty((batch, sizes[-1]), dtype=dtype)
        grad = np.empty_like(theta)
        with fastbp._jit.PARALLEL_LOCK:
            fwd(theta, sz, codes, X, A, Z, out)
            value = lss(theta, sz, codes, X, Y, A, Z)
            total = lag(theta, sz, codes, X, Y, A, Z, tmp, grad)
        results.append((out, value, total, grad))
    (o1, v1, t1, g1), (o2, v2, t2, g2) = results
    assert o1.tobytes() == o2.tobytes() and v1 == v2 and t1 == t2
    assert g1.tobytes() == g2.tobytes()
    # The twin without the single-sample path (MLP's above TINY_PARAMS; none of these cases
    # takes that path): the same bits too.
    A, Z, tmp = kernels.make_workspace(sizes, batch, dtype)
    grad = np.empty_like(theta)
    assert kernels._loss_and_grad_large(theta, sz, codes, X, Y, A, Z, tmp, grad) == t1
    assert grad.tobytes() == g1.tobytes()


def test_twins_raise_like_the_drivers():
    net = fastbp.MLP([3, 4, 2], "tanh")
    theta, sz, codes = net.kernel_args()
    A, Z, tmp = kernels.make_workspace((3, 4, 2), 2, net.dtype)
    X = np.ones((2, 3))
    with pytest.raises(ValueError, match="Y must have shape"):
        kernels._loss_and_grad_serial(theta, sz, codes, X, np.ones((2, 3)), A, Z, tmp, theta * 0)
    X[1, 1] = np.nan
    with pytest.raises(ValueError, match="X: expected finite"):
        kernels._loss_serial(theta, sz, codes, X, np.ones((2, 2)), A, Z)


def test_threaded_needs_work_and_threads():
    """The public (threaded) drivers only when the work reaches the threshold and Numba may use
    more than one thread; otherwise the serial twins. MLP, fastbp._dispatch and fastbp.train
    answer alike."""
    from fastbp import _dispatch, train

    sizes = (784, 128, 10)
    net = fastbp.MLP(list(sizes), "tanh")
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert not net._threaded(64)
        assert not _dispatch.threaded(sizes, 64) and not train._threaded(sizes, 64)
        if numba.config.NUMBA_NUM_THREADS < 2:
            pytest.skip("the two-thread half needs NUMBA_NUM_THREADS >= 2")
        numba.set_num_threads(2)
        assert net._threaded(64) and not net._threaded(1)
        assert _dispatch.threaded(sizes, 64) and not _dispatch.threaded(sizes, 1)
        assert train._threaded(sizes, 64) and not train._threaded(sizes, 1)
    finally:
        numba.set_num_threads(old)


# A child with an empty disk cache: every kernel it needs really compiles, and each compile is a
# "numba:compile" event naming its dispatcher (a kernel loaded from the cache would not compile
# its callees, so their dispatchers would stay empty). The RESULT lines give, after each stage,
# the parallel dispatchers of fastbp._jit.DISPATCHERS compiled so far, by the events and by
# their overloads (two views of one fact).
_COMPILES = """
import json
import numpy as np
from numba.core import event
import fastbp
from fastbp import _jit

compiled = []


class Compiles(event.Listener):
    def on_start(self, ev):
        compiled.append(ev.data["dispatcher"])

    def on_end(self, ev):
        pass


event.register("numba:compile", Compiles())


def report(stage):
    parallel = {d for d in _jit.DISPATCHERS if d.targetoptions.get("parallel")}
    by_event = {d.py_func.__name__ for d in compiled if d in parallel}
    by_overloads = {d.py_func.__name__ for d in parallel if d.overloads}
    names = [d.py_func.__name__ for d in compiled]
    print("RESULT " + json.dumps([stage, names, sorted(by_event), sorted(by_overloads)]))


X, Y = fastbp.datasets.xor()
net = fastbp.MLP([2, 8, 1], "tanh", seed=0)
net.forward(X); net.loss(X, Y); net.loss_and_grad(X, Y)
net.fit(X, Y, epochs=2, batch_size=1, progress=False, validation_data=(X, Y))
net.fit(X, Y, epochs=2, batch_size=4, optimizer=fastbp.Adam(), progress=False)
report("small")
# Finite differences on the same network: their forward passes stay below the threshold too.
fastbp.finite_difference_grad(net, X, Y)
report("gradcheck")
# Positive control: 128 samples of a 64 x 64 layer reach PARALLEL_MIN_WORK = 2^19 on 2 threads.
rng = np.random.default_rng(0)
big = fastbp.MLP([64, 64, 2], "tanh", seed=0)
big.loss_and_grad(rng.normal(size=(128, 64)), rng.normal(size=(128, 2)))
report("large")
"""


@pytest.fixture(scope="module")
def compile_stages(tmp_path_factory):
    """stage -> (dispatchers compiled so far, parallel ones by event, by overloads)."""
    cache = tmp_path_factory.mktemp("empty-cache")
    out = run_script(_COMPILES, NUMBA_CACHE_DIR=str(cache), NUMBA_NUM_THREADS="2")
    stages = {}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            stage, names, by_event, by_overloads = json.loads(line[len("RESULT ") :])
            stages[stage] = (names, by_event, by_overloads)
    return stages


def test_small_network_compiles_no_parfor(compile_stages):
    """In a fresh process with an empty disk cache and 2 Numba threads: forward, loss,
    loss_and_grad and fit (per-sample SGD with validation, Adam mini-batches) on a network
    below the threshold compile no parallel dispatcher of the package, while loss_and_grad on
    a network above it does compile the threaded driver's prange kernels."""
    names, by_event, by_overloads = compile_stages["small"]
    assert by_event == by_overloads == [], (by_event, by_overloads)
    # The cache was empty, so the small network's kernels really compiled here (the events see
    # compiles, not loads), the serial twins among them: the check above was not vacuous.
    assert "_loss_and_grad_serial" in names and "_forward_serial" in names, names
    names, by_event, by_overloads = compile_stages["large"]
    assert by_event == by_overloads
    assert {
        "_forward_rows_parallel_gradient",
        "delta_columns_parallel",
        "weight_gradient_rows_parallel",
    } <= set(by_event), by_event


def test_finite_differences_on_a_small_network_compile_no_parfor(compile_stages):
    """Below the threshold finite_difference_grad takes kernels._finite_difference_serial (it
    compiled _forward_rows_parallel_forward for any network before; found for issue 12)."""
    small = set(compile_stages["small"][1])
    names, by_event, by_overloads = compile_stages["gradcheck"]
    assert "_finite_difference_serial" in names, names
    assert set(by_event) - small == set(), by_event


@pytest.mark.parametrize("batch_size", [1, 7])
def test_fit_serial_twin_gives_the_threaded_bits(batch_size, monkeypatch, rng):
    """The same fit through train_steps and through its serial twin: identical parameters."""
    from fastbp import train

    X = rng.normal(size=(40, 5))
    Y = rng.normal(size=(40, 2))
    nets = []
    for threaded in (True, False):
        monkeypatch.setattr(train, "_threaded", lambda sizes, batch, t=threaded: t)
        net = fastbp.MLP([5, 6, 2], "tanh", seed=3)
        net.fit(X, Y, epochs=2, batch_size=batch_size, seed=1, progress=False,
                optimizer=fastbp.SGD(0.05, momentum=0.5), validation_data=(X, Y))  # fmt: skip
        nets.append(net)
    assert nets[0].params.tobytes() == nets[1].params.tobytes()
    assert nets[0].history.val_loss == nets[1].history.val_loss
