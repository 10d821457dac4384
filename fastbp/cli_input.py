"""The command line's files and option values: every problem is one :class:`CLIError`.

The sub-commands read their files and check their output paths here, before any kernel is
compiled, so that a bad file costs a fraction of a second and prints one line instead of a
traceback. :func:`fastbp.cli.main` catches :class:`CLIError` once and prints
``fastbp <command>: error: <message>`` on stderr with exit status 1 (argparse's usage errors keep
status 2). Messages name the file, the row (the 1-based line number) and the column (1-based)
where there is one, and what was expected; indices print as plain ints, ``X[1, 0]``.
"""

from __future__ import annotations

import argparse
import math
import os
import zipfile

import numpy as np

from ._validate import first_nonfinite

__all__ = [
    "CLIError",
    "input_file",
    "load_model",
    "load_table",
    "non_negative_int",
    "output_file",
    "read_csv",
]


class CLIError(Exception):
    """A bad input file, output path or option value, printed by ``fastbp`` as one line."""


def non_negative_int(text: str) -> int:
    """An argparse type: an int >= 0 (``--seed``, ``--targets``).

    Raises
    ------
    argparse.ArgumentTypeError
        When ``text`` is not an int or is negative (argparse then exits with status 2).
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text!r}")
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def input_file(path: str) -> None:
    """Check that ``path`` is an existing, readable file.

    Parameters
    ----------
    path : str
        The file a sub-command is about to read.

    Raises
    ------
    CLIError
        When ``path`` does not exist, is a directory or cannot be read.
    """
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CLIError(f"{path}: expected a file, found a directory")
    if not os.access(path, os.R_OK):
        raise CLIError(f"{path}: cannot read the file (permission denied)")


def output_file(path: str, option: str) -> None:
    """Check that ``path`` can be written, before any work is done.

    A typo in an output path then costs nothing instead of a training run or a sweep.

    Parameters
    ----------
    path : str
        The file a sub-command will write.
    option : str
        The option that gave it (``"--save"``), for the message.

    Raises
    ------
    CLIError
        When ``path`` is a directory, its directory does not exist, or it cannot be written.
    """
    if os.path.isdir(path):
        raise CLIError(f"{option} {path}: expected a file name, found a directory")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CLIError(f"{option} {path}: expected an existing directory, {directory} is not one")
    if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise CLIError(f"{option} {path}: cannot write there (permission denied)")


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def read_csv(path: str) -> np.ndarray:
    """A CSV file of numbers as a float64 table, shape ``(rows, columns)``.

    Blank lines are skipped; a first line none of whose cells is a number is a header. Every
    cell must be a finite number and every row as wide as the first.

    Raises
    ------
    CLIError
        Naming the file, the row (1-based line number) and the column (1-based) and what was
        expected.
    """
    input_file(path)
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise CLIError(f"{path}: cannot read the file ({_first_line(exc)})") from None
    rows = []
    width = width_row = None
    seen_line = False
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            column = raw[: exc.start].count(b",") + 1
            raise CLIError(
                f"{path}: row {number}, column {column}: expected UTF-8 text of numbers, "
                f"found the byte 0x{raw[exc.start]:02x}"
            ) from None
        if not line.strip():
            continue
        cells = line.split(",")
        first, seen_line = not seen_line, True
        if first and not any(_is_number(c) for c in cells):
            continue  # a header
        values = []
        for column, cell in enumerate(cells, start=1):
            try:
                v = float(cell)
            except ValueError:
                raise CLIError(
                    f"{path}: row {number}, column {column}: expected a number, "
                    f"found {cell.strip()!r}"
                ) from None
            if not math.isfinite(v):
                raise CLIError(
                    f"{path}: row {number}, column {column}: expected a finite number, "
                    f"found {cell.strip()}"
                )
            values.append(v)
        if width is None:
            width, width_row = len(values), number
        elif len(values) != width:
            raise CLIError(
                f"{path}: row {number}, column {min(len(values), width) + 1}: expected "
                f"{width} columns as in row {width_row}, found {len(values)}"
            )
        rows.append(values)
    if not rows:
        raise CLIError(f"{path}: expected rows of comma-separated numbers, found none")
    return np.array(rows, dtype=np.float64)


def _zip_archive(path: str, what: str) -> None:
    """Raise :class:`CLIError` unless ``path`` is a whole zip archive (what an .npz is)."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if not zipfile.is_zipfile(path):
        if magic == b"PK\x03\x04":
            raise CLIError(f"{path}: expected {what}, found a truncated or damaged zip archive")
        raise CLIError(f"{path}: expected {what}, found another kind of file")


def _read_npz(path: str) -> dict[str, np.ndarray]:
    """The arrays ``X`` (required) and ``Y`` (when present) of an .npz file, checked."""
    _zip_archive(path, "an .npz archive (a zip of .npy arrays)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("X", "Y") if k in data.files}
    except Exception as exc:  # a damaged archive fails in many ways inside zipfile and np.load
        raise CLIError(f"{path}: damaged .npz archive ({_first_line(exc)})") from None
    if "X" not in arrays:
        raise CLIError(f"{path}: expected an array named X (and Y for training)")
    for key, arr in arrays.items():
        if arr.dtype.kind not in "biuf":
            raise CLIError(f"{path}: {key}: expected an array of numbers, found dtype {arr.dtype}")
        if arr.ndim not in (1, 2):
            raise CLIError(
                f"{path}: {key}: expected a 1-D or 2-D array (one sample per row), "
                f"found shape {arr.shape}"
            )
        arr = arr.astype(np.float64)
        bad = first_nonfinite(arr)
        if bad is not None:
            where = ", ".join(map(str, bad))
            raise CLIError(f"{path}: {key}[{where}]: expected a finite number, found {arr[bad]}")
        arrays[key] = arr
    if "Y" in arrays and len(arrays["Y"]) != len(arrays["X"]):
        raise CLIError(
            f"{path}: expected as many rows in Y as in X ({len(arrays['X'])}), "
            f"found {len(arrays['Y'])}"
        )
    return arrays


def load_table(path: str, n_targets: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(X, Y)`` from an .npz (arrays ``X`` and ``Y``) or a .csv (last ``n_targets`` columns).

    Parameters
    ----------
    path : str
        An ``.npz`` file with an array ``X`` (and ``Y``), or a CSV file (:func:`read_csv`).
    n_targets : int or None
        CSV only: how many of the last columns are the targets ``Y`` (None or 0: none).

    Returns
    -------
    X : ndarray, shape (n_samples, n_in), float64
    Y : ndarray, shape (n_samples, n_out), float64, or None
        None when the file has no targets (an .npz without ``Y``, or no ``n_targets``).

    Raises
    ------
    CLIError
        Naming the file (and the row and column, or the array and index) and what was expected.
    """
    input_file(path)
    if path.lower().endswith(".npz"):
        arrays = _read_npz(path)
        X, Y = arrays["X"], arrays.get("Y")
    else:
        table = read_csv(path)
        if n_targets:
            if table.shape[1] <= n_targets:
                raise CLIError(
                    f"{path}: expected more than {n_targets} columns (inputs, then the last "
                    f"{n_targets} as targets, --targets), found {table.shape[1]}"
                )
            X, Y = table[:, :-n_targets], table[:, -n_targets:]
        else:
            X, Y = table, None
    if X.shape[0] == 0:
        raise CLIError(f"{path}: expected at least one sample, found none")
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if Y is not None and Y.ndim == 1:
        Y = Y.reshape(-1, 1)
    return X, Y


def load_model(path: str):
    """The network in a model file written by ``fastbp train --save`` or ``MLP.save``.

    Raises
    ------
    CLIError
        When the file is missing, a directory, not an .npz archive, or not a valid fastbp model
        (:func:`fastbp.load`'s ``ModelFileError``).
    """
    from .io import ModelFileError, load

    input_file(path)
    _zip_archive(path, "a fastbp model file (an .npz archive written by `fastbp train --save`)")
    try:
        return load(path)
    except (OSError, ModelFileError) as exc:
        raise CLIError(_first_line(exc)) from None
