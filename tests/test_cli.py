"""The fastbp command line."""

import subprocess
import sys

import pytest

from fastbp import cli


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
