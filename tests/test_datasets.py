"""Built-in generated data sets."""

import numpy as np
import pytest

from fastbp import datasets


def test_smooth_regression_shapes_range_and_seed():
    X, Y = datasets.smooth_regression(50, 3, 2, seed=4)
    assert X.shape == (50, 3) and Y.shape == (50, 2)
    assert X.dtype == Y.dtype == np.float64
    assert np.all(np.abs(X) <= 1.0)
    assert np.all((Y >= 0.1 - 1e-15) & (Y <= 0.9 + 1e-15))
    X2, Y2 = datasets.smooth_regression(50, 3, 2, seed=4)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(Y, Y2)
    X3, _ = datasets.smooth_regression(50, 3, 2, seed=5)
    assert not np.array_equal(X, X3)


def test_smooth_regression_empty_and_errors():
    X, Y = datasets.smooth_regression(0, 2, 1)
    assert X.shape == (0, 2) and Y.shape == (0, 1)
    with pytest.raises(ValueError, match="n_inputs"):
        datasets.smooth_regression(10, 0, 1)
    with pytest.raises(ValueError, match="n_samples"):
        datasets.smooth_regression(-1, 2, 1)
