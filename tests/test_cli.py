"""The fastbp command line."""

import argparse
import subprocess
import sys

import pytest

from fastbp import _cli_types, cli


def test_gradcheck_prints_agreement_and_times(capsys):
    code = cli.main(
        [
            "gradcheck",
            "--sizes",
            "3,4,2",
            "--sizes",
            "3,8,8,2",
            "--batch",
            "4",
            "--repeat",
            "2",
            "--fd-repeat",
            "1",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith(("3,4,2", "3,8,8,2"))]
    assert len(lines) == 2
    rel_err = float(lines[0].split()[2])
    assert rel_err < 1e-6
    assert "finite differences" in out


def test_gradcheck_rejects_bad_sizes(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["gradcheck", "--sizes", "3"])
    assert exc.value.code == 2
    assert "sizes" in capsys.readouterr().err


def test_help_lists_commands():
    result = subprocess.run(
        [sys.executable, "-m", "fastbp", "--help"], capture_output=True, text=True, check=True
    )
    assert "gradcheck" in result.stdout
    assert "export" in result.stdout


@pytest.mark.parametrize(
    "parse,text,expected",
    [
        (_cli_types.sizes, "3,4,2", [3, 4, 2]),
        (_cli_types.positive_int, "7", 7),
        (_cli_types.positive_float, "0.5", 0.5),
        (_cli_types.fraction, "0", 0.0),
    ],
)
def test_argument_types_accept(parse, text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize(
    "parse,text",
    [
        (_cli_types.sizes, "3"),
        (_cli_types.sizes, "3,0"),
        (_cli_types.sizes, "3,x"),
        (_cli_types.positive_int, "0"),
        (_cli_types.positive_float, "nan"),
        (_cli_types.positive_float, "-1"),
        (_cli_types.fraction, "1"),
    ],
)
def test_argument_types_refuse(parse, text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected"):
        parse(text)


@pytest.mark.parametrize(
    "seconds,text", [(2.5e-6, "2.5 us"), (0.0125, "12.50 ms"), (3.0, "3.00 s")]
)
def test_fmt_time_units(seconds, text):
    assert _cli_types.fmt_time(seconds).strip() == text


def test_validation_error_prints_plain_indices():
    """Messages name an index as (1, 0), never (np.int64(1), np.int64(0))."""
    import numpy as np

    import fastbp

    net = fastbp.MLP([2, 3, 1], seed=0)
    X = np.zeros((3, 2))
    X[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"found nan at index \(1, 0\)$"):
        net.loss(X, np.zeros((3, 1)))
