"""``fastbp train``: train a network on a built-in data set or on your own .npz/.csv file.

Shows a progress bar while training (in a terminal, with tqdm installed), then the loss of a
few epochs and a summary: the loss before and after training (mean per sample), validation
loss, time and steps per second. ``--save`` writes the trained network for ``fastbp predict``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ._cli_types import fraction, positive_float, positive_int
from ._cli_types import sizes as parse_sizes
from .activations import ACTIVATIONS
from .cli_input import CLIError, load_table, non_negative_int, output_file
from .datasets import DATASETS
from .network import MLP
from .optim import SGD, Adam
from .solvers import LBFGS, BayesianRegularization, LevenbergMarquardt, kernel_ready
from .train import _Validation, training_kernels_ready

__all__ = ["load_table", "register", "run"]

#: Per built-in data set: samples, sizes, activations, epochs, batch size, learning rate.
DEFAULTS = {
    "smooth_regression": dict(
        samples=1000, sizes="1,32,32,1", activation="tanh,tanh,identity", epochs=150,
        batch_size=16, lr=0.01,
    ),
    "xor": dict(samples=4, sizes="2,4,1", activation="tanh,sigmoid", epochs=2000,
                batch_size=4, lr=0.05),
    "two_spirals": dict(samples=1000, sizes="2,32,32,1", activation="tanh,tanh,sigmoid",
                        epochs=300, batch_size=16, lr=0.01),
    "file": dict(sizes=None, activation="tanh", epochs=100, batch_size=32, lr=None),
}  # fmt: skip
#: The full-batch solvers of ``--optimizer`` and their default iterations (``--epochs``).
FULL_BATCH = {
    "lbfgs": (LBFGS, 500),
    "lm": (LevenbergMarquardt, 100),
    "br": (BayesianRegularization, 100),
}


def register(sub) -> None:
    """Add the ``train`` sub-command to ``sub`` (an argparse sub-parsers object)."""
    p = sub.add_parser(
        "train",
        help="train a network on built-in data or on your own .npz/.csv",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data",
        default="smooth_regression",
        metavar="NAME|FILE",
        help=f"a built-in data set ({', '.join(DATASETS)}; default smooth_regression, a 1-D "
        "sine), digits (the UCI handwritten digits, a softmax classifier; needs scikit-learn) "
        "or an .npz with arrays X and Y, or a .csv whose last --targets columns are Y",
    )
    p.add_argument(
        "--targets", type=non_negative_int, default=1, help="CSV only: number of target columns"
    )
    p.add_argument("--samples", type=positive_int, help="samples generated (built-in data)")
    p.add_argument(
        "--sizes",
        type=parse_sizes,
        metavar="M0,...,ML",
        help="layer widths (default per data set; for a file: inputs,32,targets)",
    )
    p.add_argument(
        "--activation",
        metavar="NAME[,NAME...]",
        help="one activation for every layer or one per layer, from: " + ", ".join(ACTIVATIONS),
    )
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    p.add_argument(
        "--optimizer",
        default="adam",
        choices=("adam", "sgd", *FULL_BATCH),
        help="adam or sgd (mini-batches), or a full-batch solver: lbfgs (L-BFGS), lm "
        "(Levenberg-Marquardt) or br (Bayesian regularization), for which --epochs counts "
        "iterations (default 500, 100, 100) and --lr, --batch-size do not apply",
    )
    p.add_argument("--lr", type=positive_float, help="learning rate (default per data set)")
    p.add_argument("--momentum", type=float, default=0.0, help="SGD momentum")
    p.add_argument("--nesterov", action="store_true", help="SGD: Nesterov momentum")
    p.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay")
    p.add_argument("--epochs", type=positive_int, help="passes over the data")
    p.add_argument("--batch-size", type=positive_int, help="samples per step (1: per-sample)")
    p.add_argument(
        "--validation", type=fraction, default=0.2, help="fraction held out for validation"
    )
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of data, network and shuffling"
    )
    p.add_argument("--save", metavar="FILE", help="write the trained network (.npz) here")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stderr is a terminal and tqdm is installed)",
    )
    p.set_defaults(func=run)


def _data(args):
    """``(name, X, Y, defaults)`` for ``--data``."""
    if args.data in DATASETS:
        d = DEFAULTS[args.data]
        n = args.samples or d["samples"]
        try:
            if args.data == "smooth_regression":
                sizes = args.sizes or parse_sizes(d["sizes"])
                X, Y = DATASETS[args.data](n, sizes[0], sizes[-1], seed=args.seed)
            else:
                X, Y = DATASETS[args.data](n, seed=args.seed)
        except ValueError as exc:
            raise CLIError(f"--data {args.data} --samples {n}: {exc}") from None
        return args.data, X, Y, d
    if not os.path.exists(args.data):
        raise CLIError(
            f"--data {args.data!r}: expected a built-in data set ({', '.join(DATASETS)}) "
            "or an existing file"
        )
    X, Y = load_table(args.data, args.targets)
    if Y is None:
        raise CLIError(
            f"{args.data}: expected targets (an array Y in an .npz, --targets >= 1 for a CSV)"
        )
    return os.path.basename(args.data), X, Y, DEFAULTS["file"]


def _accuracy(net, X, Y) -> float | None:
    """Share of 0/1 targets predicted on the right side of 1/2 (single 0/1 output only)."""
    if Y.shape[1] != 1 or not np.isin(Y, (0.0, 1.0)).all() or X.shape[0] == 0:
        return None
    try:
        return float(((net.predict(X) > 0.5) == (Y > 0.5)).mean())
    except FloatingPointError:  # outputs overflowed (only after a diverged run)
        return None


def _mean_loss(net, X, Y) -> float:
    """Loss per sample; NaN when it overflowed to NaN (only after a diverged run)."""
    if X.shape[0] == 0:
        return float("nan")
    # The serial driver, as fit's validation: a one-off evaluation never pays back the compile
    # of a parfor (the same bits as net.loss below 1024 samples, the validation block).
    return _Validation(net, (X, Y))(*net.kernel_args())


def _optimizer(args, lr: float):
    """The optimiser of ``--optimizer`` with learning rate ``lr``; CLIError naming the option."""
    if args.optimizer in FULL_BATCH:
        return FULL_BATCH[args.optimizer][0]()
    try:
        if args.optimizer == "adam":
            return Adam(lr=lr, weight_decay=args.weight_decay)
        return SGD(
            lr, momentum=args.momentum, nesterov=args.nesterov, weight_decay=args.weight_decay
        )
    except (TypeError, ValueError) as exc:
        # The optimizers name their argument ("momentum: expected ..."): name the option.
        name, _, rest = str(exc).partition(": ")
        raise CLIError(f"--{name.replace('_', '-')}: {rest}" if rest else str(exc)) from None


def run(args: argparse.Namespace) -> int:
    """Run ``fastbp train`` with parsed ``args``; returns 0 (1 when training diverged)."""
    from .train import TrainingDiverged

    if args.save:
        output_file(args.save, "--save")
    if args.optimizer in FULL_BATCH and args.batch_size is not None:
        raise CLIError(f"--batch-size: --optimizer {args.optimizer} uses every sample per step")
    if args.data == "digits":
        from . import cli_digits

        if args.optimizer in ("lm", "br"):
            raise CLIError(
                f"--optimizer {args.optimizer}: needs the squared loss; digits trains a "
                "softmax classifier (use lbfgs, adam or sgd)"
            )

        return cli_digits.run(args, lambda lr: _optimizer(args, lr))
    name, X, Y, d = _data(args)
    sizes = args.sizes or (d["sizes"] and parse_sizes(d["sizes"])) or [X.shape[1], 32, Y.shape[1]]
    if sizes[0] != X.shape[1] or sizes[-1] != Y.shape[1]:
        raise CLIError(
            f"--sizes {','.join(map(str, sizes))} does not fit the data: expected "
            f"{X.shape[1]} inputs and {Y.shape[1]} outputs"
        )
    acts = (args.activation or d["activation"]).split(",")
    activation = acts[0] if len(acts) == 1 else acts
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(X.shape[0])
    n_val = int(round(args.validation * X.shape[0]))
    if X.shape[0] - n_val < 1:
        raise CLIError(f"--validation {args.validation:g}: no samples left for training; lower it")
    val, tr = perm[:n_val], perm[n_val:]
    Xtr, Ytr = X[tr], Y[tr]
    validation = (X[val], Y[val]) if n_val else None
    try:
        net = MLP(sizes, activation, dtype=args.dtype, seed=args.seed)
    except (TypeError, ValueError) as exc:
        message = str(exc).removeprefix("activations: ")
        raise CLIError(f"--activation: {message}") from None
    opt = _optimizer(args, args.lr or d["lr"] or (0.01 if args.optimizer == "adam" else 0.1))
    full_batch = args.optimizer in FULL_BATCH
    epochs = args.epochs or (FULL_BATCH[args.optimizer][1] if full_batch else d["epochs"])
    batch = None if full_batch else args.batch_size or d["batch_size"]

    print(
        f"fastbp train: {name}, {Xtr.shape[0]} training and {n_val} validation samples; "
        f"sizes {','.join(map(str, sizes))}, {','.join(net.activations)}, {net.dtype.name}"
    )
    if full_batch:
        print(f"{opt!r}, full batch, {epochs} iterations", flush=True)
    else:
        print(f"{opt!r}, batch size {batch}, {epochs} epochs, seed {args.seed}", flush=True)
    if not (kernel_ready(opt) if full_batch else training_kernels_ready(net, batch, opt)):
        print(
            f"compiling kernels for {net.dtype.name}, first run only (later runs load them "
            "from the disk cache)...",
            flush=True,
        )
    loss0 = _mean_loss(net, Xtr, Ytr)
    t0 = time.perf_counter()
    status = 0
    try:
        history = net.fit(
            Xtr, Ytr, epochs=epochs, batch_size=batch, optimizer=opt, seed=args.seed,
            validation_data=validation, progress=args.progress,
        )  # fmt: skip
    except TrainingDiverged as exc:
        print(f"error: {exc}")
        history = exc.history
        status = 1
    wall = time.perf_counter() - t0

    if history.loss:
        unit = "iter" if full_batch else "epoch"
        print(f"\n{unit:>7} {'loss':>12} {'val_loss':>12}   (mean per sample)")
        shown = sorted({int(round(x)) for x in np.geomspace(1, history.epochs, 8)})
        for e in shown:
            val = f"{history.val_loss[e - 1]:>12.4e}" if history.val_loss else f"{'-':>12}"
            print(f"{e:>7} {history.loss[e - 1]:>12.4e} {val}")
    if full_batch and history.status != "completed":
        print(f"stopped before {epochs} iterations: {history.status}")
    loss1 = _mean_loss(net, Xtr, Ytr)
    print(
        f"\ntraining loss {loss0:.4e} -> {loss1:.4e} (mean per sample, "
        f"{loss0 / loss1 if loss1 > 0 else float('inf'):.3g}x lower)"
    )
    if validation is not None:
        print(f"validation loss {_mean_loss(net, *validation):.4e}")
    acc = _accuracy(net, Xtr, Ytr)
    if acc is not None:
        val_acc = _accuracy(net, *validation) if validation is not None else None
        extra = f", validation {val_acc:.1%}" if val_acc is not None else ""
        print(f"accuracy (output > 0.5): training {acc:.1%}{extra}")
    print(
        f"time {wall:.2f} s ({history.train_seconds:.2f} s in training steps), "
        f"{history.steps} steps, {history.steps_per_second:,.0f} steps/s"
    )
    if args.save:
        try:
            net.save(args.save)
        except (OSError, ValueError) as exc:  # the path went away, or the run diverged
            raise CLIError(f"--save {args.save}: {exc}") from None
        print(f"saved to {args.save}")
    return status
