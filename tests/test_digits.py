"""fastbp.datasets.digits (scikit-learn's copy) and `fastbp train --data digits` (>= 97% test
accuracy, seeded), `fastbp predict` writing classes. Plain tier for the unit tests."""

import subprocess
import sys

import numpy as np
import pytest

import fastbp
from fastbp import cli

sklearn = pytest.importorskip("sklearn")


def test_digits_shapes_and_values():
    X, y = fastbp.datasets.digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64 and 0 <= X.min() and X.max() == 1
    assert y.shape == (1797,) and y.dtype == np.int64 and set(np.unique(y)) == set(range(10))


def test_import_fastbp_does_not_import_sklearn():
    code = "import sys, fastbp; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_without_sklearn_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"fastbp\[datasets\]"):
        fastbp.datasets.digits()


def test_confusion_matrix_and_split():
    from fastbp.cli_digits import confusion_matrix, split

    C = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3)
    np.testing.assert_array_equal(C, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    tr, te = split(10, 0)
    assert len(te) == 2 and sorted(np.concatenate([tr, te])) == list(range(10))


def test_train_digits_and_predict_classes(tmp_path, monkeypatch, capsys):
    """The real commands, in this process, on the plain tier (the tiled drivers' bits, see
    tests/test_losses_tiled.py): a cold subprocess would compile the loss-code training kernel
    for a minute or more."""
    monkeypatch.setattr(fastbp._dispatch, "tiled_ready", lambda kernel, args: False)
    monkeypatch.setattr(fastbp.train, "tiled_ready", lambda kernel, args: False)
    model = tmp_path / "digits.npz"
    assert cli.main(["train", "--data", "digits", "--save", str(model)]) == 0
    stdout = capsys.readouterr().out
    line = [s for s in stdout.splitlines() if s.startswith("accuracy:")][0]
    test_acc = float(line.split("test ")[1].split("%")[0])
    assert test_acc >= 97.0
    assert "confusion matrix" in stdout
    X, y = fastbp.datasets.digits()
    np.savez(tmp_path / "x.npz", X=X[:5])
    assert cli.main(["predict", str(model), str(tmp_path / "x.npz")]) == 0
    classes = [int(s) for s in capsys.readouterr().out.split()]
    net = fastbp.load(model)
    assert net.loss_name == "softmax_cross_entropy"
    assert classes == list(net.predict_classes(X[:5]))
