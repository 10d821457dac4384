"""Every error of the real ``fastbp`` command is one line, before any kernel compiles.

Each case checks: exit status 1 (argparse's usage errors: 2), exactly one line on stderr, which
starts with ``fastbp <command>: error:``, names the file (and row and column, or array and index)
and what was expected, no traceback, no NumPy scalar repr, and no compile (the error came before
any kernel was needed). The cases of :data:`REAL_COMMAND` (the issue's short row and NaN, and
each command's files) run the real ``python -m fastbp ...`` in a subprocess with an empty
``NUMBA_CACHE_DIR`` (nothing may be written into it); the others call :func:`fastbp.cli.main`
in this process with the same arguments, in the files' folder, listening for Numba compile
events (a real command costs about 0.7 s of interpreter and imports, 60 cases 40 s).
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from numba.core import event

import fastbp
from fastbp import cli

CSV_HEADER = "method,sizes,n_params,batch,dtype,seconds,calls\n"

#: Files a case can name, by file name: text (str) or arrays for np.savez (dict).
FILES = {
    "ragged.csv": "x,y,t\n1,2,3\n4,5\n",
    "long_row.csv": "1,2\n3,4,5\n",
    "nan.csv": "1,2\nnan,3\n",
    "inf.csv": "1,2\n3,inf\n",
    "word.csv": "1,2\n3,x\n",
    "trailing_comma.csv": "1,2,\n3,4,\n",
    "empty.csv": "",
    "header_only.csv": "x,y\n",
    "latin1.csv": b"1,2\n3,\xe9\n",
    "one_column.csv": "1\n2\n",
    "three.csv": "1,2,3\n4,5,6\n",
    "two.csv": "1,2\n3,4\n",
    "not_a_zip.npz": "hello",
    "no_x.npz": {"Y": np.zeros((3, 1))},
    "x_3d.npz": {"X": np.zeros((3, 2, 2)), "Y": np.zeros((3, 1))},
    "y_3d.npz": {"X": np.zeros((3, 2)), "Y": np.zeros((3, 1, 1))},
    "rows_differ.npz": {"X": np.zeros((3, 2)), "Y": np.zeros((4, 1))},
    "nan_x.npz": {"X": np.array([[1.0, 2.0], [np.nan, 3.0]]), "Y": np.zeros((2, 1))},
    "text_x.npz": {"X": np.array(["a", "b"]), "Y": np.zeros((2, 1))},
    "no_y.npz": {"X": np.zeros((3, 2))},
    "zero_rows.npz": {"X": np.zeros((0, 2)), "Y": np.zeros((0, 1))},
    "study_short_row.csv": CSV_HEADER + "backprop,7-7-7,112,16\n",
    "study_bad_sizes.csv": CSV_HEADER
    + "backprop,7-7-7,112,16,float64,0.001,10\nbackprop,7-x-7,112,16,float64,0.001,10\n",
    "study_bad_method.csv": CSV_HEADER + "backprop,7-7-7,112,16,float64,0.001,10\nbp,7-7-7,1,1,"
    "float64,0.001,10\n",
    "study_nan_seconds.csv": CSV_HEADER + "backprop,7-7-7,112,16,float64,nan,10\n",
    "a_dir": None,  # a directory
}

# (argv, expected text in the one line; {tmp} is the folder of the files). Status 1.
CASES = {
    # fastbp train --data: CSV
    "train-ragged-row": (
        ["train", "--data", "ragged.csv"],
        "ragged.csv: row 3, column 3: expected 3 columns as in row 2, found 2",
    ),
    "train-long-row": (
        ["train", "--data", "long_row.csv"],
        "long_row.csv: row 2, column 3: expected 2 columns as in row 1, found 3",
    ),
    "train-nan": (
        ["train", "--data", "nan.csv"],
        "nan.csv: row 2, column 1: expected a finite number, found nan",
    ),
    "train-inf": (
        ["train", "--data", "inf.csv"],
        "inf.csv: row 2, column 2: expected a finite number, found inf",
    ),
    "train-text-cell": (
        ["train", "--data", "word.csv"],
        "word.csv: row 2, column 2: expected a number, found 'x'",
    ),
    "train-empty-first-row-cell": (
        ["train", "--data", "trailing_comma.csv"],
        "trailing_comma.csv: row 1, column 3: expected a number, found ''",
    ),
    "train-empty-file": (
        ["train", "--data", "empty.csv"],
        "empty.csv: expected rows of comma-separated numbers, found none",
    ),
    "train-header-only": (
        ["train", "--data", "header_only.csv"],
        "header_only.csv: expected rows of comma-separated numbers, found none",
    ),
    "train-not-utf8": (
        ["train", "--data", "latin1.csv"],
        "latin1.csv: row 2, column 2: expected UTF-8 text of numbers, found the byte 0xe9",
    ),
    "train-too-few-columns-for-targets": (
        ["train", "--data", "three.csv", "--targets", "3"],
        "three.csv: expected more than 3 columns",
    ),
    "train-no-targets": (
        ["train", "--data", "three.csv", "--targets", "0"],
        "three.csv: expected targets",
    ),
    "train-csv-sizes-do-not-fit": (
        ["train", "--data", "three.csv", "--sizes", "3,4,1"],
        "--sizes 3,4,1 does not fit the data: expected 2 inputs and 1 outputs",
    ),
    "train-directory": (["train", "--data", "a_dir"], "a_dir: expected a file, found a directory"),
    "train-missing-file": (
        ["train", "--data", "missing.csv"],
        "--data 'missing.csv': expected a built-in data set",
    ),
    # fastbp train --data: .npz
    "train-npz-not-a-zip": (
        ["train", "--data", "not_a_zip.npz"],
        "not_a_zip.npz: expected an .npz archive (a zip of .npy arrays), found another kind",
    ),
    "train-npz-truncated": (
        ["train", "--data", "truncated.npz"],
        "truncated.npz: expected an .npz archive (a zip of .npy arrays), found a truncated",
    ),
    "train-npz-no-x": (["train", "--data", "no_x.npz"], "no_x.npz: expected an array named X"),
    "train-npz-no-y": (["train", "--data", "no_y.npz"], "no_y.npz: expected targets"),
    "train-npz-x-3d": (
        ["train", "--data", "x_3d.npz"],
        "x_3d.npz: X: expected a 1-D or 2-D array (one sample per row), found shape (3, 2, 2)",
    ),
    "train-npz-y-3d": (
        ["train", "--data", "y_3d.npz"],
        "y_3d.npz: Y: expected a 1-D or 2-D array (one sample per row), found shape (3, 1, 1)",
    ),
    "train-npz-rows-differ": (
        ["train", "--data", "rows_differ.npz"],
        "rows_differ.npz: expected as many rows in Y as in X (3), found 4",
    ),
    "train-npz-nan": (
        ["train", "--data", "nan_x.npz"],
        "nan_x.npz: X[1, 0]: expected a finite number, found nan",
    ),
    "train-npz-text": (
        ["train", "--data", "text_x.npz"],
        "text_x.npz: X: expected an array of numbers, found dtype <U1",
    ),
    "train-npz-zero-rows": (
        ["train", "--data", "zero_rows.npz"],
        "zero_rows.npz: expected at least one sample, found none",
    ),
    # fastbp train: output path and option values checked before training
    "train-save-missing-directory": (
        ["train", "--data", "xor", "--save", "no_such_dir/m.npz"],
        "--save no_such_dir/m.npz: expected an existing directory",
    ),
    "train-save-is-a-directory": (
        ["train", "--data", "xor", "--save", "a_dir"],
        "--save a_dir: expected a file name, found a directory",
    ),
    "train-unknown-activation": (
        ["train", "--data", "xor", "--activation", "bogus"],
        "--activation: unknown activation 'bogus'",
    ),
    "train-activation-count": (
        ["train", "--data", "xor", "--activation", "tanh,tanh,tanh"],
        "--activation: expected 1 name or exactly 2 names",
    ),
    "train-momentum": (
        ["train", "--optimizer", "sgd", "--momentum", "2"],
        "--momentum: expected a finite value in [0.0, 1.0), got 2.0",
    ),
    "train-weight-decay": (
        ["train", "--weight-decay", "-1"],
        "--weight-decay: expected a finite value in [0.0, inf), got -1.0",
    ),
    "train-lr-inf": (["train", "--lr", "inf"], "--lr: expected a finite value"),
    "train-samples-for-spirals": (
        ["train", "--data", "two_spirals", "--samples", "1"],
        "--data two_spirals --samples 1: n_samples: expected at least 2",
    ),
    "train-no-training-samples": (
        ["train", "--data", "xor", "--validation", "0.9"],
        "--validation 0.9: no samples left for training",
    ),
    # fastbp predict
    "predict-model-missing": (["predict", "missing.npz", "two.csv"], "missing.npz: no such file"),
    "predict-model-directory": (
        ["predict", "a_dir", "two.csv"],
        "a_dir: expected a file, found a directory",
    ),
    "predict-model-not-a-zip": (
        ["predict", "two.csv", "two.csv"],
        "two.csv: expected a fastbp model file (an .npz archive written by `fastbp train "
        "--save`), found another kind of file",
    ),
    "predict-model-truncated": (
        ["predict", "truncated.npz", "two.csv"],
        "truncated.npz: expected a fastbp model file",
    ),
    "predict-model-other-npz": (
        ["predict", "no_y.npz", "two.csv"],
        "no_y.npz: not a fastbp model file (missing format",
    ),
    "predict-input-ragged": (
        ["predict", "model.npz", "ragged.csv"],
        "ragged.csv: row 3, column 3: expected 3 columns as in row 2, found 2",
    ),
    "predict-input-nan": (
        ["predict", "model.npz", "nan_x.npz"],
        "nan_x.npz: X[1, 0]: expected a finite number, found nan",
    ),
    "predict-input-x-3d": (
        ["predict", "model.npz", "x_3d.npz"],
        "x_3d.npz: X: expected a 1-D or 2-D array",
    ),
    "predict-too-few-columns": (
        ["predict", "model.npz", "one_column.csv"],
        "one_column.csv: expected at least 2 columns (the inputs of the network in model.npz), "
        "found 1",
    ),
    "predict-input-zero-rows": (
        ["predict", "model.npz", "zero_rows.npz"],
        "zero_rows.npz: expected at least one sample",
    ),
    "predict-output-missing-directory": (
        ["predict", "model.npz", "two.csv", "-o", "no_such_dir/p.csv"],
        "--output no_such_dir/p.csv: expected an existing directory",
    ),
    "predict-output-npy-missing-directory": (
        ["predict", "model.npz", "two.csv", "-o", "no_such_dir/p.npy"],
        "--output no_such_dir/p.npy: expected an existing directory",
    ),
    "predict-output-is-a-directory": (
        ["predict", "model.npz", "two.csv", "-o", "a_dir"],
        "--output a_dir: expected a file name, found a directory",
    ),
    # fastbp complexity
    "complexity-from-missing": (
        ["complexity", "--from-csv", "missing.csv"],
        "missing.csv: no such file",
    ),
    "complexity-from-directory": (
        ["complexity", "--from-csv", "a_dir"],
        "a_dir: expected a file, found a directory",
    ),
    "complexity-from-empty": (
        ["complexity", "--from-csv", "empty.csv"],
        "empty.csv: row 1: expected columns method,sizes,n_params,batch,dtype,seconds,calls, "
        "found an empty file",
    ),
    "complexity-from-other-table": (
        ["complexity", "--from-csv", "three.csv"],
        "three.csv: row 1: expected columns method,sizes,",
    ),
    "complexity-short-row": (
        ["complexity", "--from-csv", "study_short_row.csv"],
        "study_short_row.csv: row 2: expected 7 columns",
    ),
    "complexity-bad-sizes": (
        ["complexity", "--from-csv", "study_bad_sizes.csv"],
        "study_bad_sizes.csv: row 3, column 2 (sizes): expected layer widths joined by '-'",
    ),
    "complexity-bad-method": (
        ["complexity", "--from-csv", "study_bad_method.csv"],
        "study_bad_method.csv: row 3, column 1 (method): expected backprop or finite_difference",
    ),
    "complexity-nan-seconds": (
        ["complexity", "--from-csv", "study_nan_seconds.csv"],
        "study_nan_seconds.csv: row 2, column 6 (seconds): expected a finite number of seconds",
    ),
    "complexity-csv-missing-directory": (
        ["complexity", "--min-n", "10", "--max-n", "20", "--csv", "no_such_dir/c.csv"],
        "--csv no_such_dir/c.csv: expected an existing directory",
    ),
    "complexity-plot-is-a-directory": (
        ["complexity", "--min-n", "10", "--max-n", "20", "--plot", "a_dir"],
        "--plot a_dir: expected a file name, found a directory",
    ),
}

#: argparse's usage errors: status 2, the last line names the option.
USAGE_CASES = {
    "train-targets-negative": (["train", "--targets", "-1"], "argument --targets"),
    "train-seed-negative": (["train", "--seed", "-1"], "argument --seed"),
    "train-epochs-zero": (["train", "--epochs", "0"], "argument --epochs"),
    "train-epochs-negative": (["train", "--epochs", "-3"], "argument --epochs"),
    "train-batch-size-zero": (["train", "--batch-size", "0"], "argument --batch-size"),
    "train-lr-negative": (["train", "--lr", "-0.1"], "argument --lr"),
    "gradcheck-seed-negative": (["gradcheck", "--seed", "-1"], "argument --seed"),
    "gradcheck-activation": (["gradcheck", "--activation", "bogus"], "argument --activation"),
    "complexity-seed-negative": (["complexity", "--seed", "-1"], "argument --seed"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The folder holding :data:`FILES`, a saved model and a truncated copy of it."""
    folder = tmp_path_factory.mktemp("cli_errors")
    for name, content in FILES.items():
        path = folder / name
        if content is None:
            path.mkdir()
        elif isinstance(content, dict):
            with open(path, "wb") as f:  # a file object: np.savez adds no .npz suffix
                np.savez(f, **content)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    fastbp.MLP([2, 4, 1], seed=0).save(folder / "model.npz")
    whole = (folder / "model.npz").read_bytes()
    (folder / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    return folder


def _run(argv, folder, tmp_path):
    cache = tmp_path / "numba_cache"
    cache.mkdir()
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    proc = subprocess.run(
        [sys.executable, "-m", "fastbp", *argv],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    return proc, cache


#: Cases run as the real command: the defects the trust issue named (a short row, a NaN), a bad
#: file of every command and reader (CSV, .npz, model, output path, study table) and usage errors.
REAL_COMMAND = {
    "train-ragged-row", "train-nan", "train-npz-nan", "train-save-missing-directory",
    "predict-model-truncated", "predict-input-nan", "complexity-short-row",
    "train-epochs-zero", "gradcheck-activation",
}  # fmt: skip


class _Compiles(event.Listener):
    def __init__(self):
        self.names = []

    def on_start(self, ev):
        self.names.append(ev.data["dispatcher"].py_func.__name__)

    def on_end(self, ev):
        pass


def _run_case(case, argv, folder, tmp_path, monkeypatch, capsys):
    """``(proc, cache)``: the real command for :data:`REAL_COMMAND`, else ``cli.main(argv)``
    here (``cache`` is then the list of kernels compiled during the call)."""
    if case in REAL_COMMAND:
        return _run(argv, folder, tmp_path)
    monkeypatch.chdir(folder)
    capsys.readouterr()
    compiles = _Compiles()
    with event.install_listener("numba:compile", compiles):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
    return subprocess.CompletedProcess(argv, code, "", capsys.readouterr().err), compiles.names


def _assert_clean(proc, cache):
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "np.int64" not in proc.stderr and "np.float64" not in proc.stderr, proc.stderr
    # Nothing compiled: the error was found before any kernel was needed.
    if isinstance(cache, list):
        assert cache == [], (cache, proc.stderr)
    else:
        assert not [p for p in cache.rglob("*") if p.is_file()], proc.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_error_is_one_line_naming_file_row_and_column(case, files, tmp_path, monkeypatch, capsys):
    argv, expected = CASES[case]
    proc, cache = _run_case(case, argv, files, tmp_path, monkeypatch, capsys)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"fastbp {argv[0]}: error: "), lines[0]
    assert expected in lines[0], lines[0]
    _assert_clean(proc, cache)


@pytest.mark.parametrize("case", sorted(USAGE_CASES))
def test_bad_option_value_is_a_usage_error(case, files, tmp_path, monkeypatch, capsys):
    argv, expected = USAGE_CASES[case]
    proc, cache = _run_case(case, argv, files, tmp_path, monkeypatch, capsys)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"fastbp {argv[0]}: error: {expected}"), proc.stderr
    _assert_clean(proc, cache)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(files, tmp_path):
    path = tmp_path / "locked.csv"
    path.write_text("1,2\n")
    path.chmod(0)
    proc, cache = _run(["train", "--data", str(path)], files, tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"fastbp train: error: {path}: cannot read the file (permission denied)"
    ]
    _assert_clean(proc, cache)


def test_real_command_cases_exist():
    """Every name in REAL_COMMAND is a case (a renamed case would silently run in-process)."""
    assert REAL_COMMAND <= set(CASES) | set(USAGE_CASES)
