"""The ``fastbp`` command line (also ``python -m fastbp``).

Sub-commands live in their own modules; each has ``register(subparsers)`` that adds a parser
and sets ``func`` (called with the parsed arguments, returns an exit code). A bad file or option
value raises :class:`fastbp.cli_input.CLIError`, caught here once: one line on stderr, status 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .cli_input import CLIError

__all__ = ["main"]

#: Modules that provide sub-commands, in the order ``--help`` lists them.
SUBCOMMANDS = (
    "fastbp.cli_gradcheck",
    "fastbp.cli_complexity",
    "fastbp.cli_train",
    "fastbp.cli_predict",
    "fastbp.cli_export",
    "fastbp.cli_compile",
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered sub-command."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="fastbp",
        description="Exact backpropagation gradients of fully-connected networks, fast, "
        "from explicit-loop Numba kernels.",
    )
    parser.add_argument("--version", action="version", version=f"fastbp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Usage errors exit through argparse (status 2); a :class:`CLIError` (a bad file, output path
    or option value) prints ``fastbp <command>: error: <message>`` on stderr and returns 1.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        message = " ".join(str(exc).split("\n"))
        sys.stderr.write(f"fastbp {args.command}: error: {message}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
