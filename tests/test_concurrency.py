"""Threads: the same network from many threads gives bit-for-bit the serial results.

Design under test (see docs/reliability.md): the kernels are ``nogil`` and each Python thread
gets its own workspace (``threading.local`` in :class:`fastbp.MLP`), grown on demand; there is
no lock around serial kernels. Calls that may run Numba ``prange`` loops are serialised by
``fastbp._jit.PARALLEL_LOCK`` where the package has parallel kernels; the subprocess test below
drives work large enough to take that path, so an abort (the workqueue layer's reaction to
concurrent parallel calls) or a deadlock shows up as a failed or timed-out child.
"""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numba
import numpy as np
import pytest

import fastbp

ROOT = Path(__file__).resolve().parents[1]

N_THREADS = 8
N_CALLS = 40  # per thread: 8 x 40 = 320 concurrent calls per entry point, all compared

#: The evaluation entry points (fit is tested apart: it changes the network, so concurrent fits
#: of one network are a data race by contract). All of them, unconditionally: a guard on
#: hasattr would drop a renamed method from the test instead of failing.
METHODS = ["loss_and_grad", "forward", "loss"]


@pytest.fixture
def rng():
    return np.random.default_rng(20240601)


def make_problems(rng, net, count):
    """``count`` (X, Y) pairs with batch sizes 1..33, so each thread's workspace grows."""
    problems = []
    for _ in range(count):
        batch = int(rng.integers(1, 34))
        X = rng.normal(scale=2.0, size=(batch, net.sizes[0]))
        Y = rng.normal(size=(batch, net.sizes[-1]))
        problems.append((X, Y))
    return problems


def evaluate(net, method, X, Y):
    """One call of ``method``; the result as bytes so that comparisons are bit for bit."""
    if method == "loss_and_grad":
        loss, grad = net.loss_and_grad(X, Y)
        return np.float64(loss).tobytes() + grad.tobytes()
    if method == "forward":
        return net.forward(X).tobytes()
    return np.float64(net.loss(X, Y)).tobytes()


def run_threads(worker, n_threads):
    """Start ``n_threads`` threads together on ``worker(index)``; re-raise the first error."""
    barrier = threading.Barrier(n_threads)
    errors = []

    def target(index):
        try:
            barrier.wait()
            worker(index)
        except BaseException as exc:  # noqa: BLE001 - reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
        assert not t.is_alive(), "a thread is stuck (deadlock?)"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", METHODS)
def test_same_network_many_threads_bitwise(method, dtype, rng):
    net = fastbp.MLP([7, 16, 9, 3], ["tanh", "softplus", "sigmoid"], dtype=dtype, seed=1)
    problems = make_problems(rng, net, N_CALLS)
    expected = [evaluate(net, method, X, Y) for X, Y in problems]
    params = net.params.copy()
    results = [[None] * N_CALLS for _ in range(N_THREADS)]

    def worker(t):
        # Each thread walks the problems in its own rotated order: different batch sizes
        # run at the same moment in different threads.
        for k in range(N_CALLS):
            i = (k + 5 * t) % N_CALLS
            results[t][i] = evaluate(net, method, *problems[i])

    run_threads(worker, N_THREADS)
    for t in range(N_THREADS):
        for i in range(N_CALLS):
            assert results[t][i] == expected[i], f"thread {t}, call {i}"
    np.testing.assert_array_equal(net.params, params)


def test_same_network_threads_with_out(rng):
    """``out=`` per thread: no allocation path, still bitwise equal to the serial results."""
    net = fastbp.MLP([5, 12, 4], ["relu", "identity"], seed=2)
    problems = make_problems(rng, net, N_CALLS)
    expected = [net.loss_and_grad(X, Y) for X, Y in problems]

    def worker(t):
        out = np.empty(net.n_params)
        for k in range(N_CALLS):
            i = (k + 3 * t) % N_CALLS
            loss, grad = net.loss_and_grad(*problems[i], out=out)
            assert grad is out
            assert loss == expected[i][0]
            assert out.tobytes() == expected[i][1].tobytes()

    run_threads(worker, N_THREADS)


def test_different_networks_in_threads(rng):
    nets = [
        fastbp.MLP([6, 10, 2], activation, seed=s)
        for s, activation in enumerate(fastbp.ACTIVATIONS)
    ]
    problems = [make_problems(rng, net, 10) for net in nets]
    expected = [[evaluate(n, "loss_and_grad", X, Y) for X, Y in p] for n, p in zip(nets, problems)]
    results = [None] * len(nets)

    def worker(t):
        results[t] = [evaluate(nets[t], "loss_and_grad", X, Y) for X, Y in problems[t]]

    run_threads(worker, len(nets))
    assert results == expected


def test_workspaces_are_per_thread(rng):
    """A thread growing its workspace to a large batch leaves the other threads' results
    untouched, and the main thread's workspace is not the worker's."""
    net = fastbp.MLP([4, 8, 2], seed=3)
    X_small, Y_small = rng.normal(size=(2, 4)), rng.normal(size=(2, 2))
    X_big, Y_big = rng.normal(size=(500, 4)), rng.normal(size=(500, 2))
    expected_small = evaluate(net, "loss_and_grad", X_small, Y_small)
    expected_big = evaluate(net, "loss_and_grad", X_big, Y_big)
    out = {}

    def worker(t):
        for _ in range(20):
            if t % 2:
                out.setdefault(t, set()).add(evaluate(net, "loss_and_grad", X_big, Y_big))
            else:
                out.setdefault(t, set()).add(evaluate(net, "loss_and_grad", X_small, Y_small))

    run_threads(worker, 4)
    for t, values in out.items():
        assert values == ({expected_big} if t % 2 else {expected_small})


def test_fit_in_threads_on_copies_matches_serial(rng):
    """Training copies of one network in parallel threads gives the serial parameters."""
    net = fastbp.MLP([4, 8, 2], ["tanh", "identity"], seed=4)
    X, Y = rng.normal(size=(64, 4)), rng.normal(size=(64, 2))
    serial = net.copy()
    serial.fit(X, Y, epochs=3, batch_size=8, seed=0)
    copies = [net.copy() for _ in range(4)]

    def worker(t):
        copies[t].fit(X, Y, epochs=3, batch_size=8, seed=0)

    run_threads(worker, len(copies))
    for c in copies:
        assert c.params.tobytes() == serial.params.tobytes()


THREADS_SCRIPT = """
import json
import threading
import numpy as np
import fastbp

# Wide enough (batch x fan-in x fan-out >= 2**19 per layer) for kernels that switch to
# prange loops above a work threshold; every thread works on the same network.
net = fastbp.MLP([128, 128, 64, 10], ["relu", "tanh", "identity"], dtype=np.float32, seed=0)
rng = np.random.default_rng(0)
problems = [(rng.normal(size=(64, 128)), rng.normal(size=(64, 10))) for _ in range(6)]
expected = [net.loss_and_grad(X, Y) for X, Y in problems]
bad = []

def worker(t):
    for k in range(12):
        i = (k + t) % len(problems)
        loss, grad = net.loss_and_grad(*problems[i])
        out = net.forward(problems[i][0])
        if loss != expected[i][0] or grad.tobytes() != expected[i][1].tobytes():
            bad.append((t, k))

threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"bad": bad, "calls": 4 * 12}))
"""


def test_large_work_from_threads_no_abort_no_deadlock():
    env = dict(os.environ, NUMBA_NUM_THREADS="2", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", THREADS_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # a deadlock fails here instead of hanging the suite
    )
    assert proc.returncode == 0, proc.stderr  # an abort (SIGABRT) gives a negative code
    result = json.loads(proc.stdout)
    assert result == {"bad": [], "calls": 48}


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="pure-Python kernels hold the GIL")
def test_kernels_release_the_gil():
    """While one thread is inside a long kernel call, another keeps running Python code.

    A kernel holding the GIL would freeze the main loop for the whole call (a gap as long as
    the call); with ``nogil`` the gaps stay at scheduling scale. This holds on a loaded machine,
    where a throughput ratio (benchmarks/reliability.py) cannot show parallel speed-up.
    """
    import time

    net = fastbp.MLP([512, 512, 512], "tanh", seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(512, 512)), rng.normal(size=(512, 512))
    net.loss_and_grad(X[:1], Y[:1])  # compile outside the measurement
    t0 = time.perf_counter()
    net.loss_and_grad(X, Y)
    call = time.perf_counter() - t0
    done = threading.Event()
    # Three calls in a row, so the main loop below surely overlaps a kernel.
    worker = threading.Thread(
        target=lambda: ([net.loss_and_grad(X, Y) for _ in range(3)], done.set())
    )
    stamps = []
    worker.start()
    while not done.is_set():
        stamps.append(time.perf_counter())
    worker.join()
    gaps = np.diff(stamps)
    assert len(stamps) > 100
    assert gaps.max() < 0.5 * call, (gaps.max(), call)
