"""``fastbp train`` and ``fastbp predict``: smoke tests that check the numbers they print."""

import re

import numpy as np
import pytest

import fastbp
from fastbp.cli import main


def _loss_line(out):
    m = re.search(r"training loss (\S+) -> (\S+) \(mean per sample", out)
    assert m, out
    return float(m.group(1)), float(m.group(2))


def test_default_train_run_learns_by_orders_of_magnitude(tmp_path, capsys):
    # The README's main job: `fastbp train` with its defaults.
    model = tmp_path / "model.npz"
    assert main(["train", "--no-progress", "--save", str(model)]) == 0
    out = capsys.readouterr().out
    before, after = _loss_line(out)
    assert after < 1e-3 * before
    assert "validation loss" in out and "steps/s" in out and f"saved to {model}" in out
    net = fastbp.load(model)
    X, Y = fastbp.datasets.smooth_regression(1000, 1, 1, seed=0)
    assert net.loss(X, Y) / len(X) < 1e-3 * before


@pytest.mark.parametrize(
    "argv",
    [
        ["--data", "xor", "--epochs", "300"],
        ["--data", "two_spirals", "--epochs", "3", "--samples", "200"],
        ["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--nesterov", "--epochs", "5"],
        ["--batch-size", "1", "--epochs", "2", "--dtype", "float32", "--validation", "0"],
        ["--sizes", "2,8,3", "--activation", "relu,identity", "--epochs", "2", "--samples", "50"],
    ],
)
def test_train_options(argv, capsys):
    assert main(["train", "--no-progress", *argv]) == 0
    out = capsys.readouterr().out
    before, after = _loss_line(out)
    assert after < before


def test_xor_reports_accuracy(capsys):
    main(["train", "--no-progress", "--data", "xor", "--validation", "0"])
    out = capsys.readouterr().out
    assert "accuracy (output > 0.5): training 100.0%" in out


@pytest.mark.parametrize("fmt", ["csv", "npz"])
def test_train_on_a_user_file_then_predict(tmp_path, capsys, fmt):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(120, 2))
    Y = np.stack([X[:, 0] * X[:, 1], np.sin(X[:, 0])], axis=1)
    data = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        np.savetxt(data, np.hstack([X, Y]), delimiter=",", header="x1,x2,y1,y2", comments="")
        extra = ["--targets", "2"]
    else:
        np.savez(data, X=X, Y=Y)
        extra = []
    model = tmp_path / "m.npz"
    argv = ["train", "--no-progress", "--data", str(data), "--epochs", "20", "--save", str(model)]
    assert main(argv + ["--activation", "tanh,identity", *extra]) == 0
    out = capsys.readouterr().out
    assert "data." + fmt in out and "96 training and 24 validation samples" in out
    net = fastbp.load(model)
    assert net.sizes == (2, 32, 2)
    # predict to stdout (reads the inputs, ignores extra columns) and to files
    assert main(["predict", str(model), str(data)]) == 0
    printed = np.loadtxt(capsys.readouterr().out.splitlines(), delimiter=",")
    np.testing.assert_array_equal(printed, net.predict(X))
    assert main(["predict", str(model), str(data), "-o", str(tmp_path / "p.csv")]) == 0
    assert "120 predictions of 2 outputs" in capsys.readouterr().out
    np.testing.assert_array_equal(
        np.loadtxt(tmp_path / "p.csv", delimiter=",", ndmin=2), net.predict(X)
    )
    assert main(["predict", str(model), str(data), "-o", str(tmp_path / "p.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), net.predict(X))


def test_diverging_run_exits_1_with_the_hint(capsys):
    argv = ["train", "--no-progress", "--optimizer", "sgd", "--lr", "1e6", "--epochs", "5"]
    assert main(argv + ["--activation", "relu,relu,identity"]) == 1
    out = capsys.readouterr().out
    assert "training diverged at epoch" in out and "Lower the learning rate" in out


@pytest.mark.parametrize(
    "argv,match",
    [
        (["train", "--data", "nowhere"], "expected a built-in data set"),
        (["train", "--data", "xor", "--sizes", "3,4,1"], "does not fit the data"),
        (["train", "--activation", "nope"], "unknown activation"),
        (["predict", "missing.npz", "x.csv"], "missing.npz: no such file"),
    ],
)
def test_errors_exit_with_a_message(argv, match, capsys):
    # In-process: main returns 1 and prints one line (tests/test_cli_errors.py runs the command).
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"fastbp {argv[0]}: error: ") and match in err
    assert err.count("\n") == 1


def test_predict_rejects_too_few_columns(tmp_path, capsys):
    model = tmp_path / "m.npz"
    fastbp.MLP([3, 2, 1], seed=0).save(model)
    data = tmp_path / "x.csv"
    np.savetxt(data, np.ones((4, 2)), delimiter=",")
    assert main(["predict", str(model), str(data)]) == 1
    assert "expected at least 3 columns" in capsys.readouterr().err


def test_help_lists_train_and_predict(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "train" in out and "predict" in out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for option in (
        "--data",
        "--sizes",
        "--optimizer",
        "--lr",
        "--epochs",
        "--batch-size",
        "--save",
    ):
        assert option in out


def test_summary_survives_an_overflowed_loss():
    from fastbp import cli_train

    class Overflowed:
        def predict(self, X):
            raise FloatingPointError("forward: an output is NaN")

    # A real network whose loss is inf - inf: net.loss raises, the summary says NaN.
    bad = fastbp.MLP([1, 2, 1], "identity", seed=0)
    bad.params = np.array([1e308, -1e308, 0, 0, 1.0, 1.0, 0])
    big = np.full((3, 1), 1e308)
    with pytest.raises(FloatingPointError):
        bad.loss(big, np.ones((3, 1)))
    assert np.isnan(cli_train._mean_loss(bad, big, np.ones((3, 1))))
    X, Y = np.zeros((3, 1)), np.ones((3, 1))
    assert cli_train._accuracy(Overflowed(), X, Y) is None
    net = fastbp.MLP([1, 1], "identity", seed=0)
    assert cli_train._mean_loss(net, X, Y) == pytest.approx(net.loss(X, Y) / 3)
