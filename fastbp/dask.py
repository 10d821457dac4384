"""Full-batch loss, gradient, training and prediction over row blocks on a Dask cluster.

The data live in a Dask array chunked by rows (from zarr, HDF5, or anything Dask reads), on the
workers of a ``distributed`` cluster or on Dask's local scheduler when there is no client. Each
block's loss and gradient are computed on the worker that holds the block by fastbp's own
compiled kernels; the per-block results are added on the cluster through a tree of fixed shape,
and only the sum reaches the client. :func:`minimize` runs SciPy's optimiser on the client with
the mean loss, one evaluation per call. Needs the optional extra ``fastbp[dask]`` (dask[array],
distributed, scipy); ``import fastbp`` never imports this module.

How an evaluation runs
----------------------
- ``theta`` travels once per evaluation: :meth:`distributed.Client.scatter` with
  ``broadcast=True`` (one key on every worker), never inline in each task.
- A block's task (:func:`_block_loss_and_grad`) takes this thread's cached network for the spec
  ``(sizes, activations, loss, dtype)``, copies ``theta`` in, and calls
  :meth:`fastbp.MLP.loss_and_grad` on fixed sub-batches of :data:`SUB_BATCH` rows of the block
  (so the workspace stays small for million-row blocks), adding the results in float64.
- The block results go through a tree of fixed shape over block index (:data:`FAN_IN` children a
  node), each node adding its children in index order. The shape depends only on the number of
  blocks, so the sum has the same bits on any number of workers, on the local scheduler and on
  any placement of the blocks (same data, chunking and ``theta``); a whole L-BFGS run is
  therefore reproducible.
- An error inside a task re-raises on the client with its type, and its message names the
  block.

Workers should run one Numba thread each, one worker process per core (see docs/scale-out.md)::

    cluster = LocalCluster(n_workers=8, threads_per_worker=1, processes=True,
                           env={"NUMBA_NUM_THREADS": "1"})

and :func:`warm_up` loads (or compiles) the kernels on every worker before the first step.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import uuid

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as exc:  # pragma: no cover - depends on the environment
    from ._extras import missing_extra

    raise missing_extra("dask", exc) from exc

from ._validate import check_dtype, first_nonfinite
from .network import MLP

__all__ = [
    "FAN_IN",
    "METHODS",
    "SUB_BATCH",
    "Data",
    "loss_and_grad",
    "minimize",
    "predict",
    "warm_up",
]

#: Rows per :meth:`fastbp.MLP.loss_and_grad` call inside a block (the last call takes the rest).
SUB_BATCH = 4096

#: Children per node of the summation tree over block index.
FAN_IN = 8

#: The SciPy methods :func:`minimize` accepts: they use the gradient and need no Hessian.
METHODS = ("L-BFGS-B", "BFGS", "CG", "TNC", "SLSQP")


# --------------------------------------------------------------------------------------------
# Client and arrays
# --------------------------------------------------------------------------------------------
def _default_client():
    """The current ``distributed`` client, or None (no client, or distributed missing)."""
    try:
        from distributed import default_client
    except ImportError:  # dask[array] without distributed: the local scheduler
        return None
    try:
        return default_client()
    except ValueError:  # no client: the local scheduler
        return None


def _check_client(client):
    """``client`` itself when it is a ``distributed.Client``, else ``TypeError``."""
    try:
        from distributed import Client
    except ImportError:
        Client = ()  # noqa: N806 - nothing can be a Client then
    if not isinstance(client, Client):
        raise TypeError(
            f"client: expected a distributed.Client or None, got {type(client).__name__}"
        )
    return client


def _as_dask(value, name: str, chunks=None):
    """``value`` as a 2-D Dask array with one column chunk (NumPy input is wrapped)."""
    if isinstance(value, da.Array):
        arr = value
    else:
        try:
            np_value = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{name}: expected a dask or numpy array, could not convert ({exc})"
            ) from None
        if np_value.dtype.kind not in "iuf":
            raise TypeError(
                f"{name}: expected a real numeric array (int or float), got dtype {np_value.dtype}"
            )
        if np_value.ndim != 2:
            raise ValueError(
                f"{name}: expected a 2-D array (n_samples, n_features), got {np_value.ndim}-D "
                f"with shape {np_value.shape}"
            )
        if chunks is None or sum(chunks) != np_value.shape[0]:
            chunks = "auto"  # a row count that differs is reported by the caller
        arr = da.from_array(np_value, chunks=(chunks, -1))
    if arr.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-D array (n_samples, n_features), got {arr.ndim}-D with "
            f"shape {arr.shape}"
        )
    if arr.dtype.kind not in "iuf":
        raise TypeError(
            f"{name}: expected a real numeric array (int or float), got dtype {arr.dtype}"
        )
    if any(math.isnan(c) for c in arr.chunks[0]) or math.isnan(arr.shape[1]):
        raise ValueError(
            f"{name}: the chunk sizes are unknown (NaN); call {name}.compute_chunk_sizes() first"
        )
    if arr.shape[1] < 1:
        raise ValueError(f"{name}: expected at least one column, got shape {arr.shape}")
    if len(arr.chunks[1]) != 1:
        arr = arr.rechunk({1: -1})
    return arr


def _prepare_block(block, *, block_dtype, array_name, block_info=None):
    """Worker side: one block cast to an owned, C-contiguous array of ``dtype``, checked finite."""
    dtype, name = np.dtype(block_dtype), array_name
    loc = block_info[0]["chunk-location"][0] if block_info else 0
    start = block_info[0]["array-location"][0][0] if block_info else 0
    arr = np.asarray(block)
    if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).all():
        row, col = first_nonfinite(arr)
        raise ValueError(
            f"{name}: block {loc}: expected finite values, found {float(arr[row, col])} at row "
            f"{start + row} (row {row} of the block), column {col}"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.array(arr, dtype=dtype, order="C")  # a copy: never a view of the source
    if out.size and arr.dtype != dtype and not np.isfinite(out).all():
        row, col = first_nonfinite(out)
        raise ValueError(
            f"{name}: block {loc}: value {arr[row, col].item()!r} at row {start + row} "
            f"(row {row} of the block), column {col} overflows {dtype.name}"
        )
    return out


def _wait_persisted(client, arrays) -> None:
    """Wait for persisted ``arrays``; re-raise the first failed block's error (block order)."""
    from distributed import futures_of, wait

    for arr in arrays:
        futures = futures_of(arr)
        with client.as_current():  # wait() looks up the current client
            wait(futures)
        by_key = {f.key: f for f in futures}
        for key in arr.__dask_keys__():
            future = by_key[key[0] if isinstance(key, list) else key]
            if future.status == "error":
                future.result()  # raises the worker's exception, with its type


class Data:
    """Training data held as persisted row blocks, on a Dask cluster or the local scheduler.

    Parameters
    ----------
    X : dask.array.Array or array_like, shape (n_samples, n_in)
        Inputs, chunked by rows (column chunks are merged). NumPy input is split into row
        chunks by Dask (``chunks=("auto", -1)``, or the row chunks of ``Y`` when ``Y`` is a
        Dask array).
    Y : dask.array.Array or array_like, shape (n_samples, n_out)
        Targets, with the same row chunks as ``X``.
    dtype : {numpy.float64, numpy.float32}, optional
        The dtype of the network that will use the data. Default: ``X``'s dtype when it is
        float32 or float64, else float64.
    client : distributed.Client, optional
        Where the blocks live. Default: the current client if there is one, else Dask's local
        scheduler (the blocks are then NumPy arrays in this process).

    Attributes
    ----------
    X, Y : dask.array.Array
        The persisted blocks: C-contiguous, of ``dtype``, one column chunk each.
    dtype : numpy.dtype
        Their dtype.
    n_samples, n_in, n_out : int
        Rows, input width and output width.
    row_chunks : tuple of int
        Rows of each block, in block order (empty blocks allowed).
    client : distributed.Client or None
        The client the blocks are persisted on (None: the local scheduler).

    Raises
    ------
    TypeError
        A non-numeric array, a ``dtype`` other than float32/float64, or a ``client`` that is
        not a ``distributed.Client``.
    ValueError
        Not 2-D, unknown chunk sizes, different row counts or row chunks, no columns, or a NaN,
        an Inf or a value that overflows ``dtype`` in a block (the message names the array, the
        block, the row and the column).

    Notes
    -----
    Each block is cast once, on the worker, to an owned C-contiguous array of ``dtype``, checked
    finite there, and persisted (``client.persist``); construction waits until every block is
    in memory, so an error in the data is raised here. A worker lost later is handled by Dask:
    its blocks are recomputed from their source when the source can be read again (zarr, HDF5,
    a NumPy array in the graph).

    Examples
    --------
    >>> import dask.array as da, numpy as np, fastbp, fastbp.dask
    >>> X = da.from_array(np.ones((10, 3)), chunks=(4, 3))
    >>> Y = da.from_array(np.zeros((10, 2)), chunks=(4, 2))
    >>> data = fastbp.dask.Data(X, Y)
    >>> data.row_chunks
    (4, 4, 2)
    """

    def __init__(self, X, Y, *, dtype=None, client=None) -> None:
        client = _default_client() if client is None else _check_client(client)
        if dtype is not None:
            dtype = check_dtype(dtype)
        row_chunks = None
        if not isinstance(X, da.Array) and isinstance(Y, da.Array):
            row_chunks = Y.chunks[0]
        X = _as_dask(X, "X", row_chunks)
        Y = _as_dask(Y, "Y", X.chunks[0])
        if X.shape[0] != Y.shape[0]:
            raise ValueError(
                f"X, Y: expected the same number of samples, got {X.shape[0]} and {Y.shape[0]}"
            )
        if X.chunks[0] != Y.chunks[0]:
            raise ValueError(
                "X, Y: expected the same row chunks, got "
                f"{_short(X.chunks[0])} and {_short(Y.chunks[0])}; rechunk one to the other, "
                "e.g. Y.rechunk({0: X.chunks[0]})"
            )
        if dtype is None:
            dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)
            dtype = np.dtype(dtype)
        token = uuid.uuid4().hex
        Xp = X.map_blocks(
            _prepare_block,
            dtype=dtype,
            name=f"fastbp-X-{token}",
            meta=np.empty((0, 0), dtype),
            **_block_kwargs(dtype, "X"),
        )
        Yp = Y.map_blocks(
            _prepare_block,
            dtype=dtype,
            name=f"fastbp-Y-{token}",
            meta=np.empty((0, 0), dtype),
            **_block_kwargs(dtype, "Y"),
        )
        if client is None:
            Xp, Yp = dask.persist(Xp, Yp, scheduler="threads")
        else:
            Xp, Yp = client.persist([Xp, Yp])
            _wait_persisted(client, [Xp, Yp])
        self.X = Xp
        self.Y = Yp
        self.dtype = dtype
        self.n_samples = int(X.shape[0])
        self.n_in = int(X.shape[1])
        self.n_out = int(Y.shape[1])
        self.row_chunks = tuple(int(c) for c in X.chunks[0])
        self.client = client

    @property
    def n_blocks(self) -> int:
        """Number of row blocks."""
        return len(self.row_chunks)

    def __repr__(self) -> str:
        where = "local scheduler" if self.client is None else repr(self.client)
        return (
            f"fastbp.dask.Data(n_samples={self.n_samples}, n_in={self.n_in}, "
            f"n_out={self.n_out}, n_blocks={self.n_blocks}, dtype={self.dtype.name}, on {where})"
        )


def _block_kwargs(dtype, name):
    # map_blocks passes unknown keywords to the function; ``dtype`` is its own argument, so the
    # block dtype travels under another name.
    return {"block_dtype": dtype, "array_name": name}


def _short(chunks) -> str:
    chunks = tuple(int(c) for c in chunks)
    return str(chunks) if len(chunks) <= 8 else f"({', '.join(map(str, chunks[:8]))}, ...)"


# --------------------------------------------------------------------------------------------
# Worker side: cached networks, block tasks, tree nodes
# --------------------------------------------------------------------------------------------
_LOCAL = threading.local()

#: Networks cached per worker thread (the oldest is dropped past this many specs).
_CACHE_SIZE = 16


def _spec(net: MLP) -> tuple:
    """The network's ``(sizes, activations, loss, dtype)``: what a worker needs to rebuild it.

    ``loss`` is ``net.loss_name`` where the network has one, else ``"squared"`` (the sum of
    squared errors, fastbp's original loss).
    """
    return (
        tuple(int(m) for m in net.sizes),
        tuple(net.activations),
        str(getattr(net, "loss_name", "squared")),
        net.dtype.str,
    )


def _network(spec: tuple):
    """This thread's ``(network, gradient buffer)`` for ``spec``, made on first use."""
    nets = getattr(_LOCAL, "nets", None)
    if nets is None:
        nets = _LOCAL.nets = {}
    entry = nets.get(spec)
    if entry is None:
        sizes, activations, loss, dtype = spec
        # ``loss=`` only for the other losses, so this runs on an MLP without the argument too.
        extra = {} if loss == "squared" else {"loss": loss}
        net = MLP(sizes, activations, dtype=np.dtype(dtype), seed=0, **extra)
        entry = (net, np.empty(net.n_params, dtype=net.dtype))
        if len(nets) >= _CACHE_SIZE:
            del nets[next(iter(nets))]
        nets[spec] = entry
    return entry


def _in_block(exc: BaseException, what: str) -> BaseException:
    """``exc`` again, same type, its message prefixed with ``what`` (the block)."""
    try:
        return type(exc)(f"{what}: {exc}")
    except Exception:  # an exception type whose constructor wants other arguments
        return RuntimeError(f"{what}: {type(exc).__name__}: {exc}")


def _block_loss_and_grad(spec: tuple, theta: np.ndarray, X: np.ndarray, Y: np.ndarray, index):
    """Worker side: ``(loss, grad)`` of one block, summed in float64 over sub-batches."""
    try:
        net, buf = _network(spec)
        net.params[...] = theta
        grad = np.zeros(net.n_params, dtype=np.float64)
        loss = 0.0
        for start in range(0, X.shape[0], SUB_BATCH):
            stop = start + SUB_BATCH
            value, g = net.loss_and_grad(X[start:stop], Y[start:stop], out=buf)
            loss += value
            grad += g
        return loss, grad
    except Exception as exc:
        raise _in_block(exc, f"fastbp.dask: block {index}") from exc


def _add(*parts):
    """A tree node: the sum of its children ``(loss, grad)``, added in index order."""
    loss = float(parts[0][0])
    grad = np.array(parts[0][1], dtype=np.float64)  # a copy: a child may be read-only
    for value, g in parts[1:]:
        loss += value
        grad += g
    return loss, grad


def _tree(leaves: list, token: str):
    """The root of the summation tree over ``leaves`` (Delayed, in block order).

    Level by level, each run of :data:`FAN_IN` consecutive nodes becomes one node; the shape
    depends only on ``len(leaves)``.
    """
    level, depth = leaves, 0
    while len(level) > 1:
        level = [
            dask.delayed(_add, pure=False)(
                *level[i : i + FAN_IN], dask_key_name=f"fastbp-sum-{token}-{depth}-{i // FAN_IN}"
            )
            for i in range(0, len(level), FAN_IN)
        ]
        depth += 1
    return level[0]


# --------------------------------------------------------------------------------------------
# Client side
# --------------------------------------------------------------------------------------------
def _check_net(net) -> None:
    if not isinstance(net, MLP):
        raise TypeError(f"net: expected a fastbp.MLP, got {type(net).__name__}")


def _check_pair(net, data) -> None:
    """The checks of :func:`loss_and_grad` and :func:`minimize`, before any task runs."""
    _check_net(net)
    if not isinstance(data, Data):
        raise TypeError(f"data: expected a fastbp.dask.Data, got {type(data).__name__}")
    if data.dtype != net.dtype:
        raise TypeError(
            f"data: expected dtype {net.dtype.name} (the network's), got {data.dtype.name}; "
            f"make it with fastbp.dask.Data(X, Y, dtype=numpy.{net.dtype.name})"
        )
    if data.n_in != net.sizes[0]:
        raise ValueError(f"data: expected X with {net.sizes[0]} columns, got {data.n_in}")
    if data.n_out != net.sizes[-1]:
        raise ValueError(f"data: expected Y with {net.sizes[-1]} columns, got {data.n_out}")


#: Seconds :func:`_broadcast` keeps retrying while a lost worker is still listed.
BROADCAST_RETRY_S = 60.0


def _broadcast(client, theta: np.ndarray):
    """``theta`` scattered once to every worker (a Future).

    A worker that died since the last evaluation is still listed for a moment, and the
    broadcast to it fails (``CommClosedError``, an ``OSError``): retried until the scheduler
    has removed it, up to :data:`BROADCAST_RETRY_S` seconds.
    """
    deadline = time.monotonic() + BROADCAST_RETRY_S
    while True:
        try:
            return client.scatter(theta, broadcast=True, hash=False)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _evaluate(net: MLP, data: Data, theta: np.ndarray) -> tuple[float, np.ndarray]:
    """The summed ``(loss, grad)`` (float, float64 array) over every block at ``theta``."""
    spec = _spec(net)
    token = uuid.uuid4().hex
    client = data.client
    if client is not None:
        shared = _broadcast(client, theta)
    else:
        shared = dask.delayed(theta, name=f"fastbp-theta-{token}")  # one key in the graph
    xs = data.X.to_delayed().ravel()
    ys = data.Y.to_delayed().ravel()
    leaves = [
        dask.delayed(_block_loss_and_grad, pure=False)(
            spec, shared, x, y, i, dask_key_name=f"fastbp-block-{token}-{i}"
        )
        for i, (x, y) in enumerate(zip(xs, ys))
    ]
    root = _tree(leaves, token)
    if client is not None:
        loss, grad = client.compute(root).result()
    else:
        ((loss, grad),) = dask.compute(root, scheduler="threads")
    if math.isnan(loss) or np.isnan(grad).any():  # opposite infinities of two blocks met
        raise FloatingPointError(
            "fastbp.dask: the loss or gradient is NaN: an intermediate value overflowed "
            f"{net.dtype.name}; scale the inputs, targets or parameters down"
        )
    return float(loss), grad


def loss_and_grad(net: MLP, data: Data) -> tuple[float, np.ndarray]:
    """Loss and exact gradient over every block of ``data``, computed where the blocks are.

    Parameters
    ----------
    net : fastbp.MLP
        The network (its :attr:`~fastbp.MLP.params` are sent to the workers once).
    data : fastbp.dask.Data
        Persisted blocks of the network's dtype and widths.

    Returns
    -------
    loss : float
        The network's loss summed over all samples (``net.loss`` of the concatenated blocks),
        accumulated in float64.
    grad : ndarray, shape (n_params,)
        Its gradient with respect to ``net.params``, in the network's dtype (summed in float64,
        then rounded once).

    Raises
    ------
    TypeError
        ``net`` is not an MLP, ``data`` not a :class:`Data`, or their dtypes differ.
    ValueError
        The widths of ``data`` are not the network's.
    FloatingPointError
        A block's loss or gradient is NaN (the message names the block), or the sum is.

    Notes
    -----
    Equal to ``net.loss_and_grad`` on the concatenated arrays to rounding (float64: about
    1e-12 relative): the blocks and their sub-batches are added in another order. The result
    has the same bits on any cluster, worker count or scheduler for the same data, chunking
    and parameters.
    """
    _check_pair(net, data)
    loss, grad = _evaluate(net, data, net.params.copy())
    return loss, grad.astype(net.dtype)


def minimize(net: MLP, data: Data, method: str = "L-BFGS-B", *, callback=None, tol=None, **options):
    """Fit ``net`` to ``data`` by full-batch SciPy optimisation of the mean loss.

    SciPy runs on the client; each evaluation of the mean loss and its gradient is one
    :func:`loss_and_grad` over the cluster. On return, ``net.params`` holds the result.

    Parameters
    ----------
    net : fastbp.MLP
        The network; its parameters are the starting point and are overwritten with the result.
    data : fastbp.dask.Data
        Persisted blocks of the network's dtype and widths (at least one sample).
    method : {"L-BFGS-B", "BFGS", "CG", "TNC", "SLSQP"}, default "L-BFGS-B"
        A gradient-based method of :func:`scipy.optimize.minimize`.
    callback : callable, optional
        As in SciPy: ``callback(intermediate_result)`` (or ``callback(xk)``) after each
        iteration; ``xk`` is a float64 copy of the parameters.
    tol : float, optional
        As in SciPy.
    **options
        SciPy's ``options`` of the method, e.g. ``maxiter``, ``gtol``, ``ftol``, ``maxcor``.

    Returns
    -------
    scipy.optimize.OptimizeResult
        SciPy's result; ``fun`` and ``jac`` are the mean loss and its gradient.

    Raises
    ------
    TypeError, ValueError
        As :func:`loss_and_grad`; also an unknown ``method`` or empty ``data`` (ValueError).
        Raised before any task runs; the network is then unchanged.

    Notes
    -----
    The mean, not the sum, keeps SciPy's default tolerances meaningful at any number of rows.
    A float32 network is evaluated at the float32 rounding of SciPy's float64 iterate. Every
    evaluation has the same bits on any cluster, so the whole run is reproducible.
    """
    _check_pair(net, data)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    if data.n_samples == 0:
        raise ValueError("data: expected at least one sample, got 0 rows")
    from scipy.optimize import minimize as scipy_minimize

    n = float(data.n_samples)
    dtype = net.dtype

    def fun(x):
        loss, grad = _evaluate(net, data, np.asarray(x, dtype=dtype))
        return loss / n, grad / n

    result = scipy_minimize(
        fun,
        net.params.astype(np.float64),
        jac=True,
        method=method,
        callback=callback,
        tol=tol,
        options=options or None,
    )
    net.params = result.x
    return result


def _predict_block(X, net: MLP, block_info=None):
    """Worker side: ``net.forward`` of one block, in sub-batches."""
    index = block_info[0]["chunk-location"][0] if block_info else 0
    try:
        out = np.empty((X.shape[0], net.sizes[-1]), dtype=net.dtype)
        for start in range(0, X.shape[0], SUB_BATCH):
            out[start : start + SUB_BATCH] = net.forward(X[start : start + SUB_BATCH])
        return out
    except Exception as exc:
        raise _in_block(exc, f"fastbp.dask.predict: block {index}") from exc


def predict(net: MLP, X):
    """The network's output on every row block of ``X``, as a lazy Dask array.

    Parameters
    ----------
    net : fastbp.MLP
        The network; a copy is put in the graph once (one key every block task depends on).
    X : dask.array.Array or array_like, shape (n_samples, M^0)
        Inputs, chunked by rows (column chunks are merged); NumPy input is wrapped.

    Returns
    -------
    dask.array.Array, shape (n_samples, M^L)
        ``net.forward`` of each block, in the network's dtype, with the row chunks of ``X``;
        call ``.compute()`` (or persist, or store to zarr).

    Raises
    ------
    TypeError
        ``net`` is not an MLP, or ``X`` is not numeric.
    ValueError
        ``X`` is not 2-D, or not ``M^0`` wide. A NaN or Inf in a block raises when computed,
        naming the block.
    """
    _check_net(net)
    X = _as_dask(X, "X")
    if X.shape[1] != net.sizes[0]:
        raise ValueError(f"X: expected {net.sizes[0]} columns, got shape {X.shape}")
    shared = dask.delayed(net.copy(), name=f"fastbp-net-{uuid.uuid4().hex}")
    return X.map_blocks(
        _predict_block,
        shared,
        dtype=net.dtype,
        chunks=(X.chunks[0], (net.sizes[-1],)),
        meta=np.empty((0, 0), dtype=net.dtype),
        name=f"fastbp-predict-{uuid.uuid4().hex}",
    )


@contextlib.contextmanager
def _compile_lock():
    """Take turns with other processes on this machine's cache (fastbp._warm's lock file)."""
    from . import _jit

    lock = None
    try:
        import fcntl

        lock = open(os.path.join(_jit.CACHE_DIR, "fastbp-warm.lock"), "a")  # noqa: SIM115
        fcntl.flock(lock, fcntl.LOCK_EX)
    except (ImportError, OSError, TypeError):  # no fcntl, no cache dir: no turns
        pass
    try:
        yield
    finally:
        if lock is not None:
            lock.close()


def _warm_worker(spec: tuple) -> float:
    """Worker side: load or compile the kernels ``spec`` uses; returns the seconds it took."""
    t0 = time.perf_counter()
    with _compile_lock():
        old = os.environ.get("FASTBP_BACKGROUND_COMPILE")
        # In-process, now: no plain tier and no helper process for the first real block.
        os.environ["FASTBP_BACKGROUND_COMPILE"] = "0"
        try:
            net, buf = _network(spec)
            for rows in sorted({1, SUB_BATCH}):
                X = np.zeros((rows, net.sizes[0]), dtype=net.dtype)
                Y = np.zeros((rows, net.sizes[-1]), dtype=net.dtype)
                net.loss_and_grad(X, Y, out=buf)
                net.forward(X)
        finally:
            if old is None:
                del os.environ["FASTBP_BACKGROUND_COMPILE"]
            else:
                os.environ["FASTBP_BACKGROUND_COMPILE"] = old
    return time.perf_counter() - t0


def warm_up(client, net: MLP) -> dict:
    """Load (or compile) ``net``'s kernels on every worker before the first evaluation.

    Parameters
    ----------
    client : distributed.Client or None
        The cluster (None: the current client, or this process when there is none).
    net : fastbp.MLP
        The network whose ``(sizes, activations, loss, dtype)`` the kernels are made for
        (every network of that dtype and loss uses the same compiled kernels).

    Returns
    -------
    dict
        Worker address (``"local"`` without a client) -> seconds its warm-up took.

    Notes
    -----
    One task per worker, pinned to it. Workers on one machine take turns on a lock file in
    the kernel cache, so the first compiles into the disk cache and the others load from it;
    workers on other machines, with their own cache, compile at the same time. Cached kernels
    load in about a second.
    """
    _check_net(net)
    client = _default_client() if client is None else _check_client(client)
    spec = _spec(net)
    if client is None:
        return {"local": _warm_worker(spec)}
    workers = sorted(client.scheduler_info()["workers"])
    token = uuid.uuid4().hex
    futures = [
        client.submit(
            _warm_worker,
            spec,
            workers=[w],
            allow_other_workers=False,
            pure=False,
            key=f"fastbp-warm-{token}-{i}",
        )
        for i, w in enumerate(workers)
    ]
    return dict(zip(workers, client.gather(futures)))
