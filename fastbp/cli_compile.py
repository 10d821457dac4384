"""``fastbp compile``: fill the disk cache ahead of time (for CI, container images, clusters).

Compiles, or finds already cached, the tiled kernels every public entry point runs, for each
``--dtype``: the forward pass, loss and gradient drivers (serial, for tiny and for larger
networks, and threaded), the one-sample entry, finite differences (serial and threaded) and the
training kernel of each path ``fit`` takes (mini-batches, one sample per step, per-sample plain
SGD; serial and threaded), the signatures with a loss code and sample weights that the
cross-entropy losses and weighted calls take (serial), and the loops of the full-batch solvers
(:mod:`fastbp.solvers`). Later processes load them from the
cache instead of compiling or starting on the plain tier. Prints one line per group: what it
compiled, how many kernels came from the cache, and how long it took.
"""

from __future__ import annotations

import argparse
import os
import time

import numba
import numpy as np

__all__ = ["register", "run"]

#: Widths: a tiny network (single-sample path), a larger one (serial) and one whose first layer
#: product reaches kernels.PARALLEL_MIN_WORK at one sample (threaded).
_TINY = [4, 16, 2]
_SMALL = [40, 48, 3]
_LARGE = [1024, 512, 2]


def register(sub) -> None:
    """Add the ``compile`` sub-command to ``sub`` (an argparse sub-parsers object)."""
    p = sub.add_parser(
        "compile",
        help="compile the kernels into the disk cache ahead of time",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--dtype",
        nargs="+",
        default=["float64"],
        choices=("float64", "float32"),
        help="dtypes to compile for (default float64)",
    )
    p.set_defaults(func=run)


def _counts() -> tuple[int, int]:
    """(compiled, loaded from the cache) over every package dispatcher, so far."""
    from . import _jit

    compiled = loaded = 0
    for d in _jit.DISPATCHERS:
        stats = getattr(d, "stats", None)
        if stats is not None:
            compiled += sum(stats.cache_misses.values())
            loaded += sum(stats.cache_hits.values())
    return compiled, loaded


def _groups(dtype: str):
    """(name, function) pairs; each function runs one group of entry points on tiny data."""
    from . import MLP, SGD, Adam, _dispatch, finite_difference_grad, kernels

    rng = np.random.default_rng(0)

    def data(sizes, n):
        return (
            rng.normal(size=(n, sizes[0])).astype(dtype),
            rng.normal(size=(n, sizes[-1])).astype(dtype),
        )

    def evaluation(sizes, batch):
        net = MLP(sizes, "tanh", dtype=dtype, seed=0)
        X, Y = data(sizes, batch)
        net.forward(X)
        net.loss(X, Y)
        net.loss_and_grad(X, Y)
        if batch == 1:
            net.loss_and_grad(X[0], Y[0], out=np.empty(net.n_params, dtype=dtype))

    def training(sizes):
        X, Y = data(sizes, 2)
        for batch, opt in ((2, Adam()), (1, Adam()), (1, SGD(0.01))):
            net = MLP(sizes, "tanh", dtype=dtype, seed=0)
            net.fit(X, Y, epochs=1, batch_size=batch, optimizer=opt, progress=False,
                    validation_data=(X, Y))  # fmt: skip

    def classification(sizes):
        # The signatures with a loss code and weights (one per driver serves every loss).
        net = MLP(sizes, ["tanh", "identity"], loss="softmax_cross_entropy", dtype=dtype, seed=0)
        X = rng.normal(size=(8, sizes[0])).astype(dtype)
        y = np.arange(8) % sizes[-1]
        net.loss(X, y)
        net.loss_and_grad(X, y)
        net.fit(X, y, epochs=1, batch_size=4, optimizer=Adam(), progress=False,
                validation_data=(X, y))  # fmt: skip

    def differences(sizes):
        net = MLP(sizes, "tanh", dtype=dtype, seed=0)
        X, Y = data(sizes, 1)
        if not _dispatch.threaded(net.sizes, 1):
            finite_difference_grad(net, X, Y)
            return
        # The threaded driver for zero coordinates: it compiles and checks, perturbs nothing.
        theta, sz, codes = net.kernel_args()
        A, Z, _ = kernels.make_workspace(net.sizes, 1, net.dtype)
        grad = np.empty_like(theta)
        args = (theta.copy(), sz, codes, X, Y, A, Z, 1e-6, True, 0, 0, grad)
        _dispatch.call(kernels.finite_difference, True, *args)

    def blocked(sizes):
        # The sample-blocked gradient (32 samples or more), classic and loss-code signatures.
        net = MLP(sizes, "tanh", dtype=dtype, seed=0)
        X, Y = data(sizes, 32)
        net.loss_and_grad(X, Y)
        net.loss_and_grad(X, Y, sample_weight=np.ones(32))

    def full_batch(sizes):
        from .solvers import LBFGS, LevenbergMarquardt

        X, Y = data(sizes, 4)
        for opt in (LBFGS(), LevenbergMarquardt()):  # BayesianRegularization runs LM's loop
            MLP(sizes, "tanh", dtype=dtype, seed=0).fit(X, Y, epochs=1, optimizer=opt,
                                                        progress=False)  # fmt: skip

    yield (
        "forward, loss, loss_and_grad (tiny network)",
        lambda: (
            evaluation(_TINY, 1),
            evaluation(_TINY, 8),
        ),
    )
    yield "forward, loss, loss_and_grad (serial)", lambda: evaluation(_SMALL, 8)
    yield "training, every path (serial)", lambda: training(_SMALL)
    yield "loss_and_grad, sample-blocked (serial)", lambda: blocked(_SMALL)
    yield "cross-entropy and sample weights (loss-code signatures)", lambda: classification(_SMALL)
    yield "finite differences (serial)", lambda: differences(_SMALL)
    yield "full-batch solvers, LBFGS and LM/BR (one loop each)", lambda: full_batch(_SMALL)
    if numba.get_num_threads() > 1:
        yield "forward, loss, loss_and_grad (threaded)", lambda: evaluation(_LARGE, 1)
        yield "loss_and_grad, sample-blocked (threaded)", lambda: blocked(_LARGE)
        yield "training, every path (threaded)", lambda: training(_LARGE)
        yield "finite differences (threaded)", lambda: differences(_LARGE)


def run(args: argparse.Namespace) -> int:
    """Compile every group for every dtype; one line per group, then the total."""
    from . import _dispatch, _jit, kernels

    # The tiled kernels themselves, in this process: no plain tier, no helper process.
    os.environ["FASTBP_BACKGROUND_COMPILE"] = "0"
    # The threaded groups' small shapes reach the threaded drivers at the kernels' own
    # per-layer threshold, below the tier's threshold for a whole call (_dispatch).
    _dispatch.THREAD_MIN_WORK = kernels.PARALLEL_MIN_WORK
    where = _jit.CACHE_DIR or "nowhere (no writable cache directory: nothing will be kept)"
    print(f"fastbp compile: kernels for {', '.join(args.dtype)} into {where}", flush=True)
    t_all = time.perf_counter()
    total = [0, 0]
    for dtype in args.dtype:
        for name, job in _groups(dtype):
            before = _counts()
            t0 = time.perf_counter()
            job()
            seconds = time.perf_counter() - t0
            compiled, loaded = (a - b for a, b in zip(_counts(), before))
            total[0] += compiled
            total[1] += loaded
            print(
                f"  {dtype:8s} {name}: {compiled} compiled, {loaded} from the cache, "
                f"{seconds:.1f} s",
                flush=True,
            )
    print(
        f"done: {total[0]} kernels compiled, {total[1]} loaded from the cache, "
        f"{time.perf_counter() - t_all:.1f} s"
    )
    return 0
