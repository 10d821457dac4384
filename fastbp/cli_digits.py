"""``fastbp train --data digits``: a softmax classifier of the handwritten digits.

Reads the data with :func:`fastbp.datasets.digits` (needs scikit-learn), splits it 80/20 with
the seed, trains ``--sizes`` (default 64,64,10; tanh, identity logits) with the softmax
cross-entropy, and prints the test accuracy and the confusion matrix of the test split.
"""

from __future__ import annotations

import time

import numpy as np

from .cli_input import CLIError
from .network import MLP
from .solvers import FullBatchOptimizer

__all__ = ["DEFAULTS", "confusion_matrix", "run"]

#: Defaults of the digits run (each overridable by the options of ``fastbp train``).
DEFAULTS = dict(sizes=[64, 64, 10], activation="tanh,identity", epochs=40, batch_size=32, lr=0.003)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """``C[i, j]``: how many samples of class ``i`` were predicted as ``j`` (int64, (k, k))."""
    C = np.zeros((k, k), dtype=np.int64)
    np.add.at(C, (y_true, y_pred), 1)
    return C


def split(n: int, seed: int, test: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, test) index arrays: a permutation, its first ``round(test n)`` for test."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test * n))
    return perm[n_test:], perm[:n_test]


def run(args, make_optimizer) -> int:
    """Run ``fastbp train --data digits`` with parsed ``args``; returns 0."""
    from .datasets import digits

    try:
        X, y = digits()
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    sizes = args.sizes or DEFAULTS["sizes"]
    if sizes[0] != 64 or sizes[-1] != 10:
        raise CLIError(f"--sizes {','.join(map(str, sizes))}: digits needs 64 inputs, 10 outputs")
    acts = (args.activation or DEFAULTS["activation"]).split(",")
    try:
        net = MLP(
            sizes, acts[0] if len(acts) == 1 else acts, loss="softmax_cross_entropy",
            dtype=args.dtype, seed=args.seed,
        )  # fmt: skip
    except (TypeError, ValueError) as exc:
        raise CLIError(f"--activation: {exc}") from None
    opt = make_optimizer(args.lr or DEFAULTS["lr"])
    epochs = args.epochs or DEFAULTS["epochs"]
    full_batch = isinstance(opt, FullBatchOptimizer)  # lbfgs: every sample per iteration
    batch = None if full_batch else args.batch_size or DEFAULTS["batch_size"]
    tr, te = split(X.shape[0], args.seed)
    print(
        f"fastbp train: digits (UCI, 8x8), {tr.size} training and {te.size} test samples; "
        f"sizes {','.join(map(str, sizes))}, {','.join(net.activations)}, softmax "
        f"cross-entropy, {net.dtype.name}"
    )
    if full_batch:
        print(f"{opt!r}, full batch, {epochs} iterations", flush=True)
    else:
        print(f"{opt!r}, batch size {batch}, {epochs} epochs, seed {args.seed}", flush=True)
    t0 = time.perf_counter()
    history = net.fit(
        X[tr], y[tr], epochs=epochs, batch_size=batch, optimizer=opt, seed=args.seed,
        validation_data=(X[te], y[te]), progress=args.progress,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    pred = net.predict_classes(X[te])
    acc = float((pred == y[te]).mean())
    train_acc = float((net.predict_classes(X[tr]) == y[tr]).mean())
    print(
        f"\ncross-entropy per sample: training {history.loss[-1]:.4f}, test "
        f"{history.val_loss[-1]:.4f}"
    )
    print(f"accuracy: training {train_acc:.2%}, test {acc:.2%} ({int((pred == y[te]).sum())}"
          f" of {te.size})")  # fmt: skip
    C = confusion_matrix(y[te], pred, 10)
    print("\nconfusion matrix of the test split (rows: true digit, columns: predicted)")
    print("     " + "".join(f"{j:>4}" for j in range(10)))
    for i in range(10):
        print(f"  {i:>2} " + "".join(f"{C[i, j]:>4}" for j in range(10)))
    print(
        f"\ntime {wall:.2f} s ({history.train_seconds:.2f} s in training steps), "
        f"{history.steps} steps, {history.steps_per_second:,.0f} steps/s"
    )
    if args.save:
        net.save(args.save)
        print(f"saved to {args.save}")
    return 0
