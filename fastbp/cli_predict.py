"""``fastbp predict``: load a saved network and write its predictions.

INPUT is an .npz with an array X, or a .csv whose first M0 columns are the inputs (further
columns, e.g. the targets of a training file, are ignored; a non-numeric first line is a header).
Predictions go to --output (.csv, or .npy) or, as CSV, to standard output. A classification
model (a cross-entropy loss) writes classes: one integer per sample for softmax cross-entropy,
0/1 per output for sigmoid cross-entropy.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .cli_input import CLIError, load_model, load_table, output_file

__all__ = ["register", "run"]


def register(sub) -> None:
    """Add the ``predict`` sub-command to ``sub`` (an argparse sub-parsers object)."""
    p = sub.add_parser(
        "predict",
        help="load a network saved by `fastbp train --save` and write its predictions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="a model file written by `fastbp train --save` or net.save")
    p.add_argument("input", help=".npz with X, or .csv with the inputs in the first columns")
    p.add_argument("-o", "--output", help="write predictions here (.csv or .npy)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``fastbp predict`` with parsed ``args``; returns 0."""
    net = load_model(args.model)
    X, _ = load_table(args.input, None)
    m0 = net.sizes[0]
    if X.shape[1] < m0:
        raise CLIError(
            f"{args.input}: expected at least {m0} columns (the inputs of the network in "
            f"{args.model}), found {X.shape[1]}"
        )
    if args.output:
        output_file(args.output, "--output")
    try:
        classes = net.loss_name != "squared"
        P = net.predict_classes(X[:, :m0]) if classes else net.predict(X[:, :m0])
    except (TypeError, ValueError) as exc:
        raise CLIError(f"{args.input}: {exc}") from None
    if P.ndim == 1:
        P = P.reshape(-1, 1)
    try:
        if args.output and args.output.lower().endswith(".npy"):
            np.save(args.output, P)
        else:
            out = args.output or sys.stdout
            np.savetxt(out, P, delimiter=",", fmt="%d" if classes else "%.17g")
    except OSError as exc:  # checked above; only a path that went away since
        raise CLIError(f"--output {args.output}: cannot write the file ({exc.strerror})") from None
    if args.output:
        what = "classes" if classes else "outputs"
        print(f"{P.shape[0]} predictions of {P.shape[1]} {what} written to {args.output}")
    return 0
