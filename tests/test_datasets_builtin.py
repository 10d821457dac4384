"""The built-in data sets behind ``fastbp train --data``: shapes, values, seeds, errors."""

import numpy as np
import pytest

from fastbp import datasets


def test_registry_names_the_generators():
    assert set(datasets.DATASETS) == {"smooth_regression", "xor", "two_spirals"}
    for name, fn in datasets.DATASETS.items():
        assert getattr(datasets, name) is fn


def test_xor_corners_and_labels():
    X, Y = datasets.xor()
    np.testing.assert_array_equal(X, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(Y[:, 0], [0, 1, 1, 0])
    X, Y = datasets.xor(10, noise=0.1, seed=3)
    assert X.shape == (10, 2) and Y.shape == (10, 1)
    np.testing.assert_array_equal(Y[:, 0], np.logical_xor(*np.round(X).T.astype(bool))[:10] * 1.0)
    np.testing.assert_array_equal(X, datasets.xor(10, noise=0.1, seed=3)[0])
    assert not np.array_equal(X, datasets.xor(10, noise=0.1, seed=4)[0])


def test_two_spirals_geometry():
    X, Y = datasets.two_spirals(300, seed=1)
    assert X.shape == (300, 2) and Y.shape == (300, 1) and X.dtype == np.float64
    assert Y.sum() == 150 and set(np.unique(Y)) == {0.0, 1.0}
    r = np.hypot(X[:, 0], X[:, 1])
    assert r.min() >= 0.05 - 1e-12 and r.max() <= 1.0 + 1e-12
    # The second spiral is the first turned by pi: a point at radius r of class 1 is the
    # reflection through the origin of where class 0 would be at that radius.
    t = r
    angle = 2 * np.pi * 1.5 * t + np.pi * Y[:, 0]
    np.testing.assert_allclose(X, np.stack([t * np.cos(angle), t * np.sin(angle)], 1), atol=1e-12)
    np.testing.assert_array_equal(X, datasets.two_spirals(300, seed=1)[0])
    noisy, _ = datasets.two_spirals(300, noise=0.05, seed=1)
    assert 0 < np.abs(noisy - X).max() < 0.5


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: datasets.xor(0), "n_samples"),
        (lambda: datasets.xor(4, noise=-1.0), "noise"),
        (lambda: datasets.two_spirals(1), "at least 2"),
        (lambda: datasets.two_spirals(10, turns=0.0), "turns"),
        (lambda: datasets.two_spirals(10, noise=float("nan")), "noise"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
