"""``fastbp export``: write a saved network as an ONNX model (needs ``fastbp[onnx]``).

MODEL is a file written by ``fastbp train --save`` or ``net.save``; OUTPUT the ``.onnx`` file.
The model takes ``X`` (float or double, as the network) of shape (N, M0) and returns ``Y`` or,
for a classification network, ``probabilities`` (and with --labels the classes as ``labels``).
"""

from __future__ import annotations

import argparse

from .cli_input import CLIError, load_model, output_file

__all__ = ["register", "run"]


def register(sub) -> None:
    """Add the ``export`` sub-command to ``sub`` (an argparse sub-parsers object)."""
    p = sub.add_parser(
        "export",
        help="write a network saved by `fastbp train --save` as an ONNX model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="a model file written by `fastbp train --save` or net.save")
    p.add_argument("output", help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 17)")
    p.add_argument("--labels", action="store_true", help="classification: also output the classes")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``fastbp export`` with parsed ``args``; returns 0."""
    try:
        from .onnx import to_onnx
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    net = load_model(args.model)
    output_file(args.output, "output")
    try:
        model = to_onnx(net, args.output, opset=args.opset, labels=args.labels)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    except OSError as exc:  # checked above; only a path that went away since
        raise CLIError(f"{args.output}: cannot write the file ({exc.strerror})") from None
    outputs = ", ".join(o.name for o in model.graph.output)
    opset = model.opset_import[0].version
    print(f"{net!r} written to {args.output} (ONNX opset {opset}; outputs {outputs})")
    return 0
