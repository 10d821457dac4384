"""``fastbp predict``: load a saved network and write its predictions.

INPUT is an .npz with an array X, or a .csv whose first M0 columns are the inputs (further
columns, e.g. the targets of a training file, are ignored; a non-numeric first line is a header).
Predictions go to --output (.csv, or .npy) or, as CSV, to standard output.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .cli_train import load_table

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
    from .io import ModelFileError, load

    try:
        net = load(args.model)
        X, _ = load_table(args.input, None)
    except (FileNotFoundError, ModelFileError, ValueError) as exc:
        raise SystemExit(f"fastbp predict: {exc}") from None
    m0 = net.sizes[0]
    if X.shape[1] < m0:
        raise SystemExit(
            f"fastbp predict: {args.input} has {X.shape[1]} columns, the network needs {m0}"
        )
    try:
        P = net.predict(X[:, :m0])
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"fastbp predict: {args.input}: {exc}") from None
    if args.output and args.output.lower().endswith(".npy"):
        np.save(args.output, P)
    else:
        out = args.output or sys.stdout
        np.savetxt(out, P, delimiter=",", fmt="%.17g")
    if args.output:
        print(f"{P.shape[0]} predictions of {P.shape[1]} outputs written to {args.output}")
    return 0
