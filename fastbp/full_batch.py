"""The Python loop of :meth:`MLP.fit` with a full-batch solver (:mod:`fastbp.solvers`).

The same contract as the mini-batch loop of :mod:`fastbp.train`, whose pieces it uses
(:class:`~fastbp.train.History`, the validation, the progress bar, early stopping,
:class:`~fastbp.train.TrainingDiverged`): ``epochs`` counts iterations; the compiled loop runs
many iterations per call (about :data:`fastbp.train.CHUNK_SECONDS` of work) and returns to
Python for the progress bar, or after every iteration when there is validation data, early
stopping or a callback to serve. The solver state lives in buffers between calls, so results
do not depend on the chunking; all kernels are serial, so not on the thread count either.
"""

from __future__ import annotations

import time

from ._kernels import solvers as _k  # the status codes of the loops
from .early_stopping import _Watch
from .train import (
    CHUNK_SECONDS,
    History,
    TrainingDiverged,
    _positive_int,
    _progress_bar,
    _training_arrays,
    _Validation,
    check_options,
)

__all__ = ["fit"]

#: History.status for the kernels' stopping reasons.
_STOPPED = {
    _k.CONVERGED: "converged",
    _k.LINE_SEARCH_FAILED: "line_search_failed",
    _k.MU_MAX_REACHED: "mu_max",
}


def fit(
    net,
    X,
    Y,
    *,
    epochs: int,
    batch_size,
    optimizer,
    shuffle=True,
    seed=None,
    validation_data=None,
    progress=None,
    callback=None,
    max_steps=None,
    sample_weight=None,
    early_stopping=None,
) -> History:
    """Train ``net`` with the full-batch ``optimizer``; see :meth:`fastbp.MLP.fit`.

    ``shuffle`` and ``seed`` are checked and have no effect; ``max_steps`` (not exposed by
    :meth:`fastbp.MLP.fit`) caps the iterations, as ``epochs`` does.
    """
    epochs = _positive_int(epochs, "epochs")
    check_options(shuffle, seed, callback, early_stopping, validation_data)
    X2, Y2, weights = _training_arrays(net, X, Y, sample_weight)
    n = X2.shape[0]
    if n == 0:
        raise ValueError("X, Y: expected a 2-D batch of at least one sample")
    if batch_size is not None and _positive_int(batch_size, "batch_size") != n:
        raise ValueError(
            f"batch_size: {type(optimizer).__name__} is a full-batch optimizer: leave "
            f"batch_size out or pass the number of samples ({n}), got {batch_size}"
        )
    total = float(weights.sum()) if weights.shape[0] else float(n)
    total = total if total > 0 else 1.0
    iterations = epochs if max_steps is None else min(epochs, max_steps)
    runner = optimizer._runner(net, X2, Y2, weights, total, iterations)
    validation = _Validation(net, validation_data) if validation_data is not None else None
    theta, sizes, codes = net.kernel_args()
    guard = _Watch(early_stopping, theta) if early_stopping is not None else None

    history = History(n, 1)
    net._history = history
    per_iteration = validation is not None or callback is not None or guard is not None
    bar = _progress_bar(progress, iterations, f"fit {iterations} iterations")
    t_start = time.perf_counter()
    k = 0
    chunk = 1

    def diverged(what: str) -> TrainingDiverged:
        history.status = "diverged"
        kept = "unchanged" if k == 0 else f"those after iteration {k}"
        return TrainingDiverged(
            f"training diverged at iteration {k + 1}: {what}. The parameters were left at "
            f"their last finite values ({kept}).",
            k + 1,
            1,
            history,
        )

    try:
        runner.run(0, 0)  # compiles (or loads) and evaluates the start, outside the timings
        if runner.status[0] == _k.LOSS_NOT_FINITE:
            raise diverged("the loss at the starting parameters is NaN or Inf")
        t_start = time.perf_counter()
        while k < iterations:
            stop = min(iterations, k + chunk)
            t0 = time.perf_counter()
            done = runner.run(k, stop)
            elapsed = time.perf_counter() - t0
            history.train_seconds += elapsed
            for j in range(k, k + done):
                history.loss.append(float(runner.losses[j]))
                runner.record(history, j)
                history.time.append(time.perf_counter() - t_start)
            k += done
            history.steps = k
            if bar is not None:
                bar.update(done)
            code = int(runner.status[0])
            if code == _k.DIVERGED:
                raise diverged("every trial point of the line search gave a NaN or Inf loss")
            if per_iteration and done:
                if validation is not None:
                    history.val_loss.append(validation(theta, sizes, codes))
                if guard is not None and guard.update(k, history.val_loss[-1], theta):
                    history.status = "early_stopped"
                    break
                if callback is not None and callback(k, history) is True:
                    history.status = "stopped"
                    break
            if bar is not None and history.loss:
                postfix = {"loss": f"{history.loss[-1]:.4g}"}
                if history.val_loss:
                    postfix["val_loss"] = f"{history.val_loss[-1]:.4g}"
                bar.set_postfix(postfix, refresh=False)
            if code in _STOPPED:
                history.status = _STOPPED[code]
                break
            if not per_iteration:  # aim at CHUNK_SECONDS per call; never changes the results
                rate = done / max(elapsed, 1e-6)
                chunk = max(1, min(iterations, int(rate * CHUNK_SECONDS)))
        else:
            history.status = "completed"
        if history.status == "running":
            history.status = "stopped"
        if guard is not None and guard.best_epoch > 0:
            history.best_epoch = guard.best_epoch
            history.best_val_loss = guard.best
            guard.restore(theta)
    except KeyboardInterrupt as exc:
        # Delivered between kernel calls: theta is at the end of a whole iteration.
        history.steps = k
        history.status = "interrupted"
        exc.history = history
        raise
    finally:
        if bar is not None:
            bar.close()
    return history
