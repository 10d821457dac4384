"""Mini-batch gradient descent: the compiled training loop behind :meth:`MLP.fit`.

Each epoch draws one permutation of the samples from a seeded ``numpy.random.Generator``, then
runs its steps in compiled code (:func:`fastbp._kernels.train_steps.train_steps`): gather the batch,
loss and gradient by backpropagation, optimiser update, finiteness check, with no Python per
step. The Python loop
only calls the kernel once per chunk of steps (a chunk lasts about a tenth of a second) to move
the progress bar, and once per epoch for validation, history and the callback.

Results do not depend on the chunking: the same network, data, optimiser and seed give
bit-identical parameters.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import time
import types
from collections.abc import Callable

import numpy as np

from . import kernels
from ._dispatch import call, threaded, tiled_ready
from ._dispatch import run as dispatch_run
from ._jit import twins
from ._kernels import drivers
from ._kernels import train_steps as train_kernels
from ._kernels.train_steps import OK, PARAMS_NOT_FINITE, train_steps
from ._plain import plain_train_steps
from ._validate import as_batch, as_pair
from .early_stopping import EarlyStopping, _Watch
from .losses import NO_WEIGHTS, as_targets, as_weights, check_weights
from .optim import MOMENTUM, SGD, SGD_KIND, Optimizer

# The training loop per path and tier: a fit compiles only the path it takes (mini-batches, one
# sample per step, or per-sample plain SGD; train_kernels.train_steps branches on those at run
# time and so compiled all three) and, below kernels.PARALLEL_MIN_WORK or on one Numba thread,
# no parfor (the serial tier: the same bytecode over a `kernels` whose drivers are the serial
# twins, so the same bits). Cold `fastbp train`: docs/perf-log.md, start-up round.
_serial_kernels = types.ModuleType("fastbp._kernels_serial")
_serial_kernels.__dict__.update(vars(drivers))
_serial_kernels.forward = drivers._forward_serial
_serial_kernels.loss = drivers._loss_serial
_serial_kernels.loss_and_grad = drivers._loss_and_grad_serial
_PATHS = {  # path -> (_SGD_SAMPLES, _SAMPLES, _BATCHES) in train_kernels.train_steps
    "batches": (False, False, True),
    "samples": (False, True, False),
    "sgd_samples": (True, False, False),
}


def _path_twins(namespace: dict, suffix: str) -> dict:
    ns = dict(namespace)
    (ns["one_sample_step"],) = twins((train_kernels.one_sample_step,), ns, suffix)
    out = {}
    for path, (sgd_samples, samples, batches) in _PATHS.items():
        flags = {"_SGD_SAMPLES": sgd_samples, "_SAMPLES": samples, "_BATCHES": batches}
        (out[path],) = twins((train_steps,), {**ns, **flags}, f"{path}_{suffix}")
    return out


#: (threaded, path) -> the training kernel for it.
TRAIN_STEPS = {
    (threaded_, path): kernel
    for threaded_, suffix, ns in (
        (False, "serial", {**vars(train_kernels), "kernels": _serial_kernels}),
        (True, "threaded", vars(train_kernels)),
    )
    for path, kernel in _path_twins(ns, suffix).items()
}


def _path(batch_size: int, optimizer, extended: bool = False) -> str:
    """The path train_kernels.train_steps takes for these arguments (the same conditions);
    ``extended``: a loss code and weights are passed (another loss than the squared one, or
    sample weights), which only the mini-batch path takes, whatever the batch size."""
    if batch_size != 1 or extended:
        return "batches"
    kind, hyper = optimizer._kind, optimizer._hyper
    return "sgd_samples" if kind == SGD_KIND and hyper[MOMENTUM] == 0.0 else "samples"


def _threaded(sizes, batch: int) -> bool:
    """Whether steps on ``batch`` samples use the threaded drivers: :func:`_dispatch.threaded`,
    behind a module-level name so tests can force either tier."""
    return threaded(sizes, batch)


def training_kernels_ready(net, batch_size: int, optimizer) -> bool:
    """Whether :meth:`MLP.fit` with these arguments finds its training kernel compiled in this
    process or in the disk cache (False: the first step compiles it, for a minute or so)."""
    path = _path(batch_size, optimizer, net._loss_code != 0)
    steps = TRAIN_STEPS[_threaded(net.sizes, batch_size), path]
    if getattr(steps, "overloads", True):  # compiled here already, or no JIT at all
        return True
    try:
        return os.path.exists(steps._cache._cache_file._index_path)
    except AttributeError:  # no disk cache: every process compiles
        return False


__all__ = ["History", "TrainingDiverged", "fit"]

#: Seconds of compiled work between two returns to Python (progress bar, Ctrl-C).
CHUNK_SECONDS = 0.1
#: Samples per block when the validation loss is evaluated.
VALIDATION_BLOCK = 1024


class TrainingDiverged(FloatingPointError):
    """Training stopped because the loss or the parameters became NaN or Inf.

    The network holds the last finite parameters (those before the failing step), and the
    optimiser the matching state.

    Attributes
    ----------
    epoch : int
        1-based epoch of the failing step.
    step : int
        1-based step within that epoch.
    history : History
        What was done before.
    """

    def __init__(self, message: str, epoch: int, step: int, history: History) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.history = history


class History:
    """What :meth:`MLP.fit` did, epoch by epoch.

    Attributes
    ----------
    loss : list of float
        Training loss of each completed epoch, as a **mean per sample**:
        ``(1 / n_samples) sum_n 1/2 ||f(x_n) - y_n||^2``, where each sample's term is computed
        during the epoch with the parameters of the step that used it (no extra pass).
    val_loss : list of float
        Mean per-sample loss on ``validation_data`` after each epoch (empty without it).
    time : list of float
        Seconds since the start of ``fit`` at the end of each epoch.
    steps : int
        Optimiser steps taken (also counts the steps of an unfinished epoch).
    train_seconds : float
        Seconds spent in the compiled training steps (excludes validation and callbacks).
    status : str
        ``"completed"``, ``"stopped"`` (the callback asked), ``"early_stopped"``
        (:class:`fastbp.EarlyStopping`), ``"interrupted"`` (Ctrl-C), ``"diverged"``, or
        ``"running"``; with a full-batch solver (:mod:`fastbp.solvers`, where an epoch is an
        iteration) also ``"converged"`` (its tolerance met), ``"line_search_failed"``
        (:class:`fastbp.LBFGS`) and ``"mu_max"`` (:class:`fastbp.LevenbergMarquardt`,
        :class:`fastbp.BayesianRegularization`).
    best_epoch : int or None
        With early stopping: the epoch (from 1) of the lowest validation loss, whose
        parameters the network holds after the fit when ``restore_best``; else None.
    best_val_loss : float or None
        That epoch's validation loss.
    mu : list of float
        :class:`fastbp.LevenbergMarquardt` and :class:`fastbp.BayesianRegularization`: the
        damping after each iteration (empty otherwise).
    alpha, beta, effective_params : list of float
        :class:`fastbp.BayesianRegularization`: the regularization parameters and the
        effective number of parameters gamma after each iteration (empty otherwise).
    """

    def __init__(self, batch_size: int, steps_per_epoch: int) -> None:
        self.loss: list[float] = []
        self.val_loss: list[float] = []
        self.time: list[float] = []
        self.steps = 0
        self.train_seconds = 0.0
        self.status = "running"
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.best_epoch: int | None = None
        self.best_val_loss: float | None = None
        self.mu: list[float] = []
        self.alpha: list[float] = []
        self.beta: list[float] = []
        self.effective_params: list[float] = []

    @property
    def epochs(self) -> int:
        """Number of completed epochs."""
        return len(self.loss)

    @property
    def steps_per_second(self) -> float:
        """Optimiser steps per second of training time."""
        return self.steps / self.train_seconds if self.train_seconds > 0 else math.nan

    def as_dict(self) -> dict:
        """The per-epoch lists and totals as a plain dict."""
        return {
            "loss": list(self.loss),
            "val_loss": list(self.val_loss),
            "time": list(self.time),
            "epochs": self.epochs,
            "steps": self.steps,
            "train_seconds": self.train_seconds,
            "status": self.status,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "mu": list(self.mu),
            "alpha": list(self.alpha),
            "beta": list(self.beta),
            "effective_params": list(self.effective_params),
        }

    def __repr__(self) -> str:
        last = f", loss={self.loss[-1]:.6g}" if self.loss else ""
        val = f", val_loss={self.val_loss[-1]:.6g}" if self.val_loss else ""
        return f"History(epochs={self.epochs}, steps={self.steps}{last}{val}, {self.status})"


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------
def _positive_int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name}: expected a positive int, got {int(value)}")
    return int(value)


def _progress_bar(progress, total: int, desc: str):
    """A tqdm bar, or None when progress is off (or auto and not a terminal / no tqdm)."""
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress: expected True, False or None, got {progress!r}")
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if progress:
            raise ImportError(
                "progress=True needs tqdm: pip install tqdm (or fastbp[progress])"
            ) from None
        return None
    if progress is None and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return None
    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, leave=True)


class _Validation:
    """Mean per-sample loss on held-out data, in blocks, with its own workspace."""

    def __init__(self, net, data) -> None:
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise TypeError(
                "validation_data: expected a pair (X_val, Y_val) or a triple (X_val, Y_val, w_val)"
            )
        self.code = net._loss_code
        self.extended = self.code != 0 or len(data) == 3
        if self.extended:
            self.X, self.Y, self.w = _training_arrays(
                net, data[0], data[1], data[2] if len(data) == 3 else None
            )
        else:
            self.X, self.Y, _ = as_pair(data[0], data[1], net.sizes[0], net.sizes[-1], net.dtype)
            self.w = NO_WEIGHTS
        if self.X.ndim != 2 or self.X.shape[0] == 0:
            raise ValueError("validation_data: expected at least one sample, as 2-D arrays")
        self.total = float(self.w.sum()) if self.w.shape[0] else float(self.X.shape[0])
        self.block = min(VALIDATION_BLOCK, self.X.shape[0])
        self.A, self.Z, _ = kernels.make_workspace(net.sizes, self.block, net.dtype)
        self.parallel = False  # set by fit: whether its steps run the threaded drivers
        self.ready = net._ready  # the network's record of handed-over drivers (_dispatch.run)

    def __call__(self, theta, sizes, codes) -> float:
        total = 0.0
        n = self.X.shape[0]
        # Threaded only when the fit's steps are: an evaluation per epoch next to serial steps
        # never pays back the parfor's compile (docs/perf-log.md, start-up round).
        parallel = self.parallel and _threaded(sizes, self.block)
        for start in range(0, n, self.block):
            stop = min(start + self.block, n)
            args = (theta, sizes, codes, self.X[start:stop], self.Y[start:stop], self.A, self.Z)
            if self.extended:
                w = self.w[start:stop] if self.w.shape[0] else self.w
                args = (*args, self.code, w)
            total += dispatch_run("loss", parallel, args, self.ready)
        return total / self.total if self.total > 0 else 0.0


def _training_arrays(net, X, Y, sample_weight):
    """``(X2, Y2, w)`` of a fit (or its validation data) with a loss code or weights: labels as
    one-hot rows (allocated once per fit), weights float64 and checked, or :data:`NO_WEIGHTS`."""
    X2, single = as_batch(X, "X", net.sizes[0], net.dtype)
    if single:
        raise ValueError("X, Y: expected a 2-D batch of at least one sample")
    n = X2.shape[0]
    Y2 = as_targets(
        Y, n, False, net.sizes[-1], net.dtype, net._loss_code,
        lambda b: np.zeros((b, net.sizes[-1]), dtype=net.dtype),
    )  # fmt: skip
    w = as_weights(sample_weight, n)
    if w.shape[0]:
        check_weights(w)
    return X2, Y2, w


def check_options(shuffle, seed, callback, early_stopping, validation_data) -> None:
    """The checks of :meth:`MLP.fit`'s options shared by both loops (this module's and
    :mod:`fastbp.full_batch`'s)."""
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle: expected a bool, got {shuffle!r}")
    if seed is not None and not isinstance(seed, (numbers.Integral, np.random.Generator)):
        raise TypeError(f"seed: expected an int, a numpy Generator or None, got {seed!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable or None, got {callback!r}")
    if early_stopping is not None:
        if not isinstance(early_stopping, EarlyStopping):
            raise TypeError(
                f"early_stopping: expected a fastbp.EarlyStopping or None, got {early_stopping!r}"
            )
        if validation_data is None:
            raise ValueError(
                "early_stopping: needs validation_data=(X_val, Y_val), whose loss it watches"
            )


# --------------------------------------------------------------------------------------------
# The training loop
# --------------------------------------------------------------------------------------------
def fit(
    net,
    X,
    Y,
    *,
    epochs: int,
    batch_size: int | None = None,
    optimizer: Optimizer | None = None,
    shuffle: bool = True,
    seed=None,
    validation_data=None,
    progress: bool | None = None,
    callback: Callable | None = None,
    max_steps: int | None = None,
    sample_weight=None,
    early_stopping: EarlyStopping | None = None,
) -> History:
    """Train ``net`` by mini-batch gradient descent; see :meth:`fastbp.MLP.fit`.

    ``max_steps`` (not exposed by :meth:`fastbp.MLP.fit`) stops after that many steps; the
    tests use it to check restarts and step counts. ``batch_size`` None: 32. (A full-batch
    optimizer is run by :func:`fastbp.full_batch.fit` instead, which :meth:`MLP.fit` calls.)
    """
    epochs = _positive_int(epochs, "epochs")
    batch_size = _positive_int(32 if batch_size is None else batch_size, "batch_size")
    if optimizer is None:
        optimizer = SGD(lr=0.1)
    elif not isinstance(optimizer, Optimizer):
        raise TypeError(
            "optimizer: expected fastbp.SGD, fastbp.Adam, fastbp.LBFGS, "
            f"fastbp.LevenbergMarquardt, fastbp.BayesianRegularization or None, got {optimizer!r}"
        )
    check_options(shuffle, seed, callback, early_stopping, validation_data)
    extended = net._loss_code != 0 or sample_weight is not None
    if extended:
        X2, Y2, weights = _training_arrays(net, X, Y, sample_weight)
        single = False
    else:
        X2, Y2, single = as_pair(X, Y, net.sizes[0], net.sizes[-1], net.dtype)
        weights = NO_WEIGHTS
    if single or X2.shape[0] == 0:
        raise ValueError("X, Y: expected a 2-D batch of at least one sample")
    validation = _Validation(net, validation_data) if validation_data is not None else None
    # The training loss is a mean per sample: per unit of weight with weights.
    total_weight = float(weights.sum()) if weights.shape[0] else float(X2.shape[0])
    total_weight = total_weight if total_weight > 0 else 1.0

    n = X2.shape[0]
    batch_size = min(batch_size, n)
    steps_per_epoch = -(-n // batch_size)
    theta, sizes, codes = net.kernel_args()
    kind, hyper, count, state = optimizer._args(net.n_params, net.dtype)
    A, Z, tmp = kernels.make_workspace(net.sizes, batch_size, net.dtype)
    grad = np.empty_like(theta)
    Xb = np.empty((batch_size, X2.shape[1]), dtype=net.dtype)
    Yb = np.empty((batch_size, Y2.shape[1]), dtype=net.dtype)
    out = np.empty((1, Y2.shape[1]), dtype=net.dtype)
    row = np.empty(max(net.sizes), dtype=net.dtype)
    losses = np.zeros(steps_per_epoch, dtype=np.float64)
    status = np.zeros(1, dtype=np.int64)
    wb = np.empty(batch_size if weights.shape[0] else 0, dtype=np.float64)
    # The state at the start of the epoch: divergence restores it and replays the good steps.
    # (Once per epoch, not per chunk: for a large network a copy per chunk would cost as much
    # as a step, while a replay happens once, when training is over anyway.)
    saved_theta = np.empty_like(theta)
    saved_state = np.empty_like(state)
    saved_count = np.empty_like(count)
    rng = np.random.default_rng(seed)
    order = np.arange(n, dtype=np.int64)

    history = History(batch_size, steps_per_epoch)
    net._history = history
    count0 = int(count[0])
    bar = _progress_bar(progress, epochs * steps_per_epoch, f"fit {epochs} epochs")
    chunk = min(steps_per_epoch, 16)

    def save():
        np.copyto(saved_theta, theta)
        np.copyto(saved_state, state)
        np.copyto(saved_count, count)

    def restore():
        np.copyto(theta, saved_theta)
        np.copyto(state, saved_state)
        np.copyto(count, saved_count)

    parallel = _threaded(net.sizes, batch_size)
    path = _path(batch_size, optimizer, extended)
    steps = TRAIN_STEPS[parallel, path]
    if validation is not None:
        validation.parallel = parallel
    watch = _Watch(early_stopping, theta) if early_stopping is not None else None

    def arguments(first, stop):
        args = (
            theta, sizes, codes, X2, Y2, order, batch_size, first, stop,
            kind, hyper, count, state, A, Z, tmp, grad, Xb, Yb, out, row, losses, status,
        )  # fmt: skip
        return (*args, net._loss_code, weights, wb) if extended else args

    # Mini-batch steps start on the plain tier while a helper process compiles this fit's
    # training kernel (the same bits: fastbp._dispatch), and switch between two chunks once
    # it is ready.
    plain = not parallel and path == "batches"

    def run(first, stop):
        nonlocal plain
        args = arguments(first, stop)
        if plain and not tiled_ready(steps, args):
            return plain_train_steps(*args)
        plain = False
        return call(steps, parallel, *args)

    t_start = time.perf_counter()
    try:
        run(0, 0)  # compiles (or loads from the disk cache) outside the timings: takes no step
        t_start = time.perf_counter()
        for epoch in range(1, epochs + 1):
            if shuffle:
                order[:] = rng.permutation(n)
            s = 0
            save()
            while s < steps_per_epoch:
                stop = min(steps_per_epoch, s + chunk)
                if max_steps is not None:
                    stop = min(stop, s + max_steps - (int(count[0]) - count0))
                    if stop <= s:
                        break
                t0 = time.perf_counter()
                done = run(s, stop)
                elapsed = time.perf_counter() - t0
                history.train_seconds += elapsed
                if status[0] != OK:
                    exc = _diverged(
                        history, run, restore, s + done, epoch, losses, optimizer, status
                    )
                    history.steps = int(count[0]) - count0
                    raise exc
                s += done
                history.steps = int(count[0]) - count0
                if bar is not None:
                    bar.update(done)
                # Aim at CHUNK_SECONDS per call; the chunk size never changes the results.
                rate = done / max(elapsed, 1e-6)
                chunk = max(1, min(steps_per_epoch, int(rate * CHUNK_SECONDS)))
            if s < steps_per_epoch:  # max_steps reached inside the epoch
                break
            history.loss.append(float(losses.sum()) / total_weight)
            if validation is not None:
                history.val_loss.append(validation(theta, sizes, codes))
            history.time.append(time.perf_counter() - t_start)
            if watch is not None and watch.update(epoch, history.val_loss[-1], theta):
                history.status = "early_stopped"
                break
            if bar is not None:
                postfix = {"loss": f"{history.loss[-1]:.4g}"}
                if history.val_loss:
                    postfix["val_loss"] = f"{history.val_loss[-1]:.4g}"
                bar.set_postfix(postfix, refresh=False)
            if callback is not None and callback(epoch, history) is True:
                history.status = "stopped"
                break
        else:
            history.status = "completed"
        if history.status == "running":
            history.status = "stopped"
        if watch is not None and watch.best_epoch > 0:
            history.best_epoch = watch.best_epoch
            history.best_val_loss = watch.best
            watch.restore(theta)
    except KeyboardInterrupt as exc:
        # Ctrl-C is delivered between kernel calls, so theta is at the end of a whole step,
        # unless it struck between a failed step and its repair: then go back to the epoch start.
        if not np.isfinite(theta).all() or not np.isfinite(state).all():
            restore()
        history.steps = int(count[0]) - count0
        if len(history.loss) < history.steps // steps_per_epoch:
            # Ctrl-C struck after the last step of an epoch, before its record: complete it.
            history.loss.append(float(losses.sum()) / total_weight)
            if validation is not None:
                history.val_loss.append(validation(theta, sizes, codes))
            history.time.append(time.perf_counter() - t_start)
        history.status = "interrupted"
        exc.history = history
        raise
    finally:
        if bar is not None:
            bar.close()
    return history


def _diverged(history, run, restore, failed, epoch, losses, optimizer, status):
    """Repair theta after failed step ``failed`` of the epoch; the TrainingDiverged to raise."""
    loss = losses[failed]
    if status[0] == PARAMS_NOT_FINITE:
        # The update wrote NaN/Inf: go back to the epoch start and replay the good steps, which
        # reproduces the parameters before the failing step bit for bit (the kernels are
        # deterministic).
        restore()
        if failed:
            run(0, failed)
        what = f"the update made the parameters non-finite (batch loss {loss:.6g})"
    else:
        what = f"the loss is {loss}"
    history.status = "diverged"
    return TrainingDiverged(
        f"training diverged at epoch {epoch}, step {failed + 1} of {history.steps_per_epoch}: "
        f"{what}. The parameters were restored to their last finite values, from before that "
        f"step. Lower the learning rate (lr={optimizer.lr:g}).",
        epoch,
        failed + 1,
        history,
    )
