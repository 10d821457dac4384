"""fastbp.dask on a real Dask cluster (two worker processes on the loopback) and on the local
scheduler: agreement with MLP.loss_and_grad, the same bits everywhere, minimize, predict,
every validation error, a worker killed in the middle of a fit, and the many-fits recipe of
docs/scale-out.md.

One network size class ([8, 70, 3]: the serial tiny-network drivers) and both dtypes, with
fewer than 937 rows per call in this process, so the default run needs only the serial
loss_and_grad and forward drivers (this process compiles them into the disk cache first; the
workers load them from it). The local warm_up, which compiles the threaded ones, is slow.
"""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dask.array", reason="fastbp.dask needs the extra: pip install 'fastbp[dask]'")
pytest.importorskip("distributed", reason="fastbp.dask needs the extra: pip install 'fastbp[dask]'")
pytest.importorskip("scipy", reason="fastbp.dask needs the extra: pip install 'fastbp[dask]'")

import dask.array as da  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

import fastbp  # noqa: E402
import fastbp.dask as fd  # noqa: E402

SIZES = [8, 70, 3]
ACTIVATIONS = ["tanh", "relu", "softplus"]
DTYPES = [np.float64, np.float32]
# Uneven row blocks: a 1-row and a 0-row block among them (300 rows).
CHUNKS = (120, 1, 0, 97, 82)
# Enough blocks for a two-level summation tree (FAN_IN = 8).
MANY = (15,) * 20
MAXITER = 8  # L-BFGS iterations of the fits (the local reference and the cluster)
NO_FIXED_PORT = {"dashboard_address": "127.0.0.1:0"}
DOCS = Path(__file__).resolve().parents[1] / "docs" / "scale-out.md"


def _problem(dtype=np.float64, rows=300, seed=7):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, SIZES[0]))
    Y = rng.standard_normal((rows, SIZES[-1]))
    return X.astype(dtype), Y.astype(dtype)


def _dask_pair(X, Y, chunks):
    return (
        da.from_array(X, chunks=(chunks, (5, X.shape[1] - 5))),  # two column chunks: merged
        da.from_array(Y, chunks=(chunks, Y.shape[1])),
    )


def _blocks(arr, chunks):
    edges = np.cumsum((0, *chunks))
    return [arr[a:b] for a, b in zip(edges[:-1], edges[1:])]


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes on 127.0.0.1, kernels cached before they start."""
    X, Y = _problem(rows=4)
    for dtype in DTYPES:  # compile (or load) here, into the disk cache the workers read
        net = fastbp.MLP(SIZES, "tanh", dtype=dtype, seed=0)
        net.loss_and_grad(X.astype(dtype), Y.astype(dtype))
        net.forward(X.astype(dtype))
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        # The scheduler's HTTP server (health, metrics) on a free port, not 8787.
        scheduler_kwargs=NO_FIXED_PORT,
        env={"NUMBA_NUM_THREADS": "1", "FASTBP_BACKGROUND_COMPILE": "0"},
    )
    with cluster:
        yield cluster


@pytest.fixture(scope="module")
def client(cluster):
    """The cluster's client (not the default one: ``client=None`` means the local scheduler
    here), after every worker has loaded the kernels."""
    with Client(cluster, set_as_default=False) as client:
        files = set(client.run(lambda: __import__("fastbp").__file__).values())
        assert files == {fastbp.__file__}, f"workers import another fastbp: {files}"
        for dtype in DTYPES:
            fd.warm_up(client, fastbp.MLP(SIZES, "tanh", dtype=dtype))
        yield client


def _loss(net, X, Y):
    """The loss by loss_and_grad (compiled already; ``net.loss`` would compile its driver)."""
    return net.loss_and_grad(X, Y)[0]


def _equal(a, b):
    """Same bits: loss and gradient."""
    return a[0] == b[0] and np.array_equal(a[1], b[1])


def test_import_fastbp_imports_no_dask():
    # (scipy is left out: numba itself imports scipy's top level when it is installed.)
    code = "import sys, fastbp; print([m for m in ('dask', 'distributed') if m in sys.modules])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(fastbp.__file__).parents[1],
    ).stdout
    assert out.strip() == "[]"


def test_workers_run_one_numba_thread(client):
    threads = client.run(lambda: __import__("numba").config.NUMBA_NUM_THREADS)
    assert sorted(threads.values()) == [1, 1]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_agrees_with_mlp_on_uneven_chunks(client, activation, dtype):
    X, Y = _problem(dtype)
    net = fastbp.MLP(SIZES, [activation, "identity"], dtype=dtype, seed=3)
    data = fd.Data(*_dask_pair(X, Y, CHUNKS), client=client)
    assert data.row_chunks == CHUNKS and data.dtype == dtype and data.n_blocks == 5
    assert len(data.X.chunks[1]) == 1  # column chunks merged
    loss, grad = fd.loss_and_grad(net, data)
    ref_loss, ref_grad = net.loss_and_grad(X, Y)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    assert grad.dtype == dtype and grad.shape == (net.n_params,)
    assert abs(loss - ref_loss) <= tol * abs(ref_loss)
    assert np.max(np.abs(grad - ref_grad)) <= tol * np.max(np.abs(ref_grad))
    # The same sum block by block, in float64, from MLP calls in this process.
    by_block = [net.loss_and_grad(x, y) for x, y in zip(_blocks(X, CHUNKS), _blocks(Y, CHUNKS))]
    assert abs(loss - sum(v for v, _ in by_block)) <= 1e-13 * abs(loss)


def test_same_bits_on_cluster_local_scheduler_and_repeat(client):
    X, Y = _problem()
    net = fastbp.MLP(SIZES, "tanh", seed=4)
    on_cluster = fd.Data(*_dask_pair(X, Y, MANY), client=client)
    local = fd.Data(*_dask_pair(X, Y, MANY))  # no default client: the local scheduler
    assert local.client is None
    first = fd.loss_and_grad(net, on_cluster)
    assert _equal(first, fd.loss_and_grad(net, on_cluster))
    assert _equal(first, fd.loss_and_grad(net, local))


@pytest.fixture(scope="module")
def fit_problem():
    """Data, a starting network and the local scheduler's L-BFGS result (the reference)."""
    X, Y = _problem(seed=11)
    net = fastbp.MLP(SIZES, "tanh", seed=6)
    reference = net.copy()
    result = fd.minimize(reference, fd.Data(*_dask_pair(X, Y, CHUNKS)), maxiter=MAXITER)
    return X, Y, net, reference, result


def test_minimize_lowers_the_loss_with_the_local_bits(client, fit_problem):
    X, Y, start, reference, local = fit_problem
    net = start.copy()
    seen = []
    result = fd.minimize(
        net,
        fd.Data(*_dask_pair(X, Y, CHUNKS), client=client),
        maxiter=MAXITER,
        callback=seen.append,
    )
    assert result.nit <= MAXITER and len(seen) == result.nit > 0
    assert result.fun < 0.9 * _loss(start, X, Y) / len(X)
    assert abs(result.fun - _loss(net, X, Y) / len(X)) <= 1e-12 * result.fun
    assert np.array_equal(result.x, local.x) and result.fun == local.fun
    assert np.array_equal(net.params, reference.params)


def test_predict_equals_forward(client):
    X, _ = _problem()
    net = fastbp.MLP(SIZES, "softplus", seed=8)
    Xd = _dask_pair(X, X[:, :3], CHUNKS)[0]
    out = fd.predict(net, Xd)
    assert out.chunks == (CHUNKS, (SIZES[-1],)) and out.dtype == net.dtype
    got = client.compute(out).result()
    # Each block is one forward call (blocks are shorter than SUB_BATCH): the same bits.
    expected = np.concatenate([net.forward(x) for x in _blocks(X, CHUNKS)])
    assert np.array_equal(got, expected)
    np.testing.assert_allclose(got, net.forward(X), rtol=1e-12, atol=1e-14)
    assert np.array_equal(fd.predict(net, X).compute(scheduler="threads"), net.forward(X))


def test_warm_up_reports_every_worker(client):
    seconds = fd.warm_up(client, fastbp.MLP(SIZES, "relu"))
    assert sorted(seconds) == sorted(client.scheduler_info()["workers"])
    assert all(s >= 0 for s in seconds.values())


@pytest.mark.slow  # compiles the threaded drivers in this process (SUB_BATCH rows, 2 threads)
def test_warm_up_without_a_client_warms_this_process():
    assert set(fd.warm_up(None, fastbp.MLP(SIZES, "relu"))) == {"local"}


def test_worker_errors_reraise_with_their_type_and_block(client):
    X, Y = _problem()
    data = fd.Data(*_dask_pair(X, Y, CHUNKS), client=client)
    net = fastbp.MLP(SIZES, "tanh", seed=1)
    net.params[5] = np.nan  # in place: only the workers' kernels see it
    with pytest.raises(FloatingPointError, match=r"fastbp.dask: block \d+: loss_and_grad"):
        fd.loss_and_grad(net, data)
    bad = X.copy()
    bad[200, 1] = np.inf
    with pytest.raises(ValueError, match=r"predict: block 3: .*finite"):
        client.compute(fd.predict(fastbp.MLP(SIZES), _dask_pair(bad, Y, CHUNKS)[0])).result()


def _data_error(client, X, Y, **kwargs):
    return fd.Data(X, Y, client=client, **kwargs)


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda X, Y: (X[:, 0], Y), ValueError, "X: expected a 2-D array"),
        (lambda X, Y: (da.from_array(X)[:, 0], Y), ValueError, "X: expected a 2-D array"),
        (lambda X, Y: (X, Y[:-1]), ValueError, "X, Y: expected the same number of samples"),
        (lambda X, Y: (X.astype(bool), Y), TypeError, "X: expected a real numeric array"),
        (lambda X, Y: (X, "abc"), TypeError, "Y: expected a real numeric array"),
        (lambda X, Y: (X, X[:, :0]), ValueError, "Y: expected at least one column"),
        (
            lambda X, Y: (da.from_array(X, chunks=(100, 8)), da.from_array(Y, chunks=(150, 3))),
            ValueError,
            "X, Y: expected the same row chunks",
        ),
        (
            lambda X, Y: (
                da.from_array(X, chunks=(100, 8))[da.from_array(X[:, 0] > 0, chunks=100)],
                Y,
            ),
            ValueError,
            "unknown",
        ),
    ],
    ids=["1-D", "1-D dask", "rows", "bool", "string", "no columns", "row chunks", "nan chunks"],
)
def test_data_validation(client, make, error, message):
    X, Y = _problem()
    with pytest.raises(error, match=re.escape(message) if message != "unknown" else message):
        fd.Data(*make(X, Y), client=client)


@pytest.mark.parametrize(
    "value, where, message",
    [
        (np.nan, "X", r"X: block 3: expected finite values, found nan at row 130 \(row 9 of the "),
        (np.inf, "Y", r"Y: block 4: expected finite values, found inf at row 290 \(row 72 "),
        (1e39, "X", r"X: block 0: value 1e\+39 at row 5 \(row 5 of the block\), column 2 "),
    ],
    ids=["nan", "inf", "float32 overflow"],
)
def test_data_checks_finiteness_on_the_workers(client, value, where, message):
    X, Y = _problem()
    row = {np.nan: 130, np.inf: 290}.get(value, 5)
    (X if where == "X" else Y)[row, 2 if where == "X" else 1] = value
    dtype = np.float32 if value == 1e39 else None
    with pytest.raises(ValueError, match=message):
        fd.Data(*_dask_pair(X, Y, CHUNKS), client=client, dtype=dtype)


def test_argument_errors(client):
    X, Y = _problem()
    data = fd.Data(X, Y, client=client)
    net = fastbp.MLP(SIZES)
    cases = [
        (lambda: fd.Data(X, Y, client="tcp://x"), TypeError, "client: expected a distributed"),
        (lambda: fd.Data(X, Y, dtype=np.int32), TypeError, "dtype: expected float32 or float64"),
        (lambda: fd.loss_and_grad("net", data), TypeError, "net: expected a fastbp.MLP"),
        (lambda: fd.loss_and_grad(net, (X, Y)), TypeError, "data: expected a fastbp.dask.Data"),
        (
            lambda: fd.loss_and_grad(fastbp.MLP(SIZES, dtype=np.float32), data),
            TypeError,
            "data: expected dtype float32 (the network's), got float64",
        ),
        (
            lambda: fd.loss_and_grad(fastbp.MLP([9, 70, 3]), data),
            ValueError,
            "data: expected X with 9 columns, got 8",
        ),
        (
            lambda: fd.loss_and_grad(fastbp.MLP([8, 70, 2]), data),
            ValueError,
            "data: expected Y with 2 columns, got 3",
        ),
        (lambda: fd.minimize(net, data, method="Nelder-Mead"), ValueError, "method: expected one"),
        (lambda: fd.minimize(net, data, method=None), ValueError, "method: expected one"),
        (
            lambda: fd.minimize(net, fd.Data(X[:0], Y[:0], client=client)),
            ValueError,
            "data: expected at least one sample",
        ),
        (lambda: fd.predict(net, X[:, :5]), ValueError, "X: expected 8 columns"),
        (lambda: fd.predict(None, X), TypeError, "net: expected a fastbp.MLP"),
        (lambda: fd.warm_up(client, "net"), TypeError, "net: expected a fastbp.MLP"),
        (lambda: fd.warm_up(42, net), TypeError, "client: expected a distributed"),
    ]
    before = net.params.copy()
    for call, error, message in cases:
        with pytest.raises(error, match=re.escape(message)):
            call()
    assert np.array_equal(net.params, before)


def _recipe() -> str:
    """The code block of docs/scale-out.md's recipe for many independent fits."""
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(
        r"<!-- recipe: tested by tests/test_dask.py -->\s*```python\n(.*?)```", text, re.S
    )
    assert match, "docs/scale-out.md lost its tested recipe block"
    return match.group(1)


def test_many_fits_recipe(client):
    X, Y = _problem(rows=100, seed=12)
    namespace = {"__name__": "scale_out_recipe", "client": client, "X": X, "Y": Y}
    exec(compile(_recipe(), str(DOCS), "exec"), namespace)  # noqa: S102 - our own docs
    nets = namespace["nets"]
    assert len(nets) == 8 and all(isinstance(n, fastbp.MLP) for n in nets)
    # Each worker's fit is the one this process makes from the same seed, bit for bit.
    local = namespace["fit_one"](3, X, Y, sizes=[8, 70, 3], activations="tanh")
    assert np.array_equal(nets[3].params, local.params)
    start = fastbp.MLP([8, 70, 3], "tanh", seed=3)
    assert _loss(nets[3], X, Y) < 0.9 * _loss(start, X, Y)
    assert len({n.params.tobytes() for n in nets}) == 8  # different seeds, different fits


# Last in the file: it leaves the cluster with one worker.
def test_killed_worker_during_minimize_then_one_worker_against_two(cluster, client, fit_problem):
    X, Y, start, reference, local = fit_problem
    data = fd.Data(*_dask_pair(X, Y, CHUNKS), client=client)  # from_array: recomputable
    many = fd.Data(*_dask_pair(X, Y, MANY), client=client)
    two = fd.loss_and_grad(start, many)
    pids = client.run(os.getpid)
    nannies = {n.worker_address: n for n in cluster.workers.values()}
    killed = []

    def kill_once(*_):
        if not killed:  # after the first iteration: the next evaluation has lost blocks
            holders = {w for ws in client.who_has(client.futures_of(data.X)).values() for w in ws}
            victim = sorted(holders)[0]
            nannies[victim].close_gracefully()  # the nanny does not restart it: it is gone
            os.kill(pids[victim], signal.SIGKILL)
            killed.append(victim)

    net = start.copy()
    result = fd.minimize(net, data, maxiter=MAXITER, callback=kill_once)
    assert killed and result.nit > 1
    assert np.array_equal(result.x, local.x) and result.fun == local.fun
    assert np.array_equal(net.params, reference.params)
    # Every block of both data sets now on the one worker left (recomputed from the source).
    assert list(client.scheduler_info()["workers"]) == sorted(set(pids) - set(killed))
    assert _equal(fd.loss_and_grad(start, many), two)
