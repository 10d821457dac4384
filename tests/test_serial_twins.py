"""The serial twins of the drivers: the same bits as the public drivers, and no parfor compiled
for a network whose calls stay below the threading threshold."""

import json

import numba
import numpy as np
import pytest
from helpers import PARALLEL_CODE, run_script

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


# A fresh child process (with the suite's disk cache, warm or cold: it makes no difference) runs
# the calls of each stage. The RESULT lines give, after each stage, the package dispatchers that
# hold machine code (compiled in the child or loaded from the cache) and those of them whose
# code has a parallel region, callees linked into it included (tests/helpers.py PARALLEL_CODE),
# so a serial driver that reached a threaded kernel shows up even below a cache-loaded entry.
_COMPILES = """
import json
import numpy as np
import fastbp
from fastbp import _jit


def report(stage):
    held = {d.py_func.__name__ for d in _jit.DISPATCHERS if d.overloads}
    print("RESULT " + json.dumps([stage, sorted(held), parallel_code()]))


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
def compile_stages():
    """stage -> (dispatchers holding machine code so far, those whose code has a parfor)."""
    out = run_script(PARALLEL_CODE + _COMPILES, NUMBA_NUM_THREADS="2")
    stages = {}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            stage, held, parallel = json.loads(line[len("RESULT ") :])
            stages[stage] = (held, parallel)
    return stages


def test_small_network_compiles_no_parfor(compile_stages):
    """In a fresh process with 2 Numba threads: forward, loss, loss_and_grad and fit (per-sample
    SGD with validation, Adam mini-batches) on a network below the threshold run no machine code
    with a parallel region, compiled or loaded from the cache; loss_and_grad on a network above
    it does."""
    held, parallel = compile_stages["small"]
    assert parallel == [], parallel
    # The serial twins really ran here (they hold machine code): the check above was not vacuous.
    assert {"_loss_and_grad_serial", "_forward_serial", "_loss_serial"} <= set(held), held
    # The threaded driver's own result (with a warm cache its callees are not loaded, so they
    # hold nothing; compiled here, its prange callees are listed too).
    # (B of 32 or more: the sample-blocked gradient's threaded twin; below: kernels.loss_and_grad.)
    held, parallel = compile_stages["large"]
    assert {"loss_and_grad", "_loss_and_grad_blocked_threaded"} & set(parallel), parallel


def test_finite_differences_on_a_small_network_compile_no_parfor(compile_stages):
    """Below the threshold finite_difference_grad takes kernels._finite_difference_serial (it
    compiled _forward_rows_parallel_forward for any network before; found for issue 12)."""
    held, parallel = compile_stages["gradcheck"]
    assert "_finite_difference_serial" in held, held
    assert parallel == [], parallel


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
