"""The drivers' cheap checks (fastbp._kernels.checks): max |v| on the bit patterns, the
finiteness check of X that also returns max |X|, and the NaN bound of the gradient."""

import numba
import numpy as np
import pytest

import fastbp
from fastbp import kernels
from fastbp._kernels import checks as _checks


def _expected(v):
    v = np.asarray(v, dtype=np.float64)
    if v.size and not np.isfinite(v).all():
        return np.inf
    return float(np.abs(v).max()) if v.size else 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 31, 1000, 4099])
def test_max_abs_is_the_exact_maximum(dtype, n, rng):
    tiny = np.finfo(dtype).smallest_subnormal
    v = (rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n)).astype(dtype)
    if n > 3:
        v[1], v[2], v[3] = -0.0, tiny, -tiny
    got = _checks._max_abs(v)
    assert isinstance(got, float)
    assert got == _expected(v)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_max_abs_is_inf_for_nan_or_inf(dtype, bad, rng):
    for where in (0, 500, 999):
        v = rng.standard_normal(1000).astype(dtype)
        v[where] = bad
        assert _checks._max_abs(v) == np.inf
    big = np.array([-np.finfo(dtype).max, 1.0], dtype)
    assert _checks._max_abs(big) == float(np.finfo(dtype).max)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_finite_max_x_checks_x_and_y_and_returns_max_abs_x(dtype, rng):
    X = rng.standard_normal((5, 3)).astype(dtype)
    Y = rng.standard_normal((5, 2)).astype(dtype)
    assert _checks._finite_max_x(X, Y) == float(np.abs(X.astype(np.float64)).max())
    # errstate: with NUMBA_DISABLE_JIT=1 the checks run on NumPy scalars, where inf - inf warns.
    with np.errstate(invalid="ignore"):
        _assert_rejected(X, Y)


def _assert_rejected(X, Y):
    for bad in (np.nan, np.inf):
        Xb = X.copy()
        Xb[4, 2] = bad
        with pytest.raises(ValueError, match="X: expected finite values"):
            _checks._finite_max_x(Xb, Y)
        Yb = Y.copy()
        Yb[0, 1] = -bad
        with pytest.raises(ValueError, match="Y: expected finite values"):
            _checks._finite_max_x(X, Yb)


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NumPy scalars warn on overflow")
@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu", "softplus"])
def test_overflowed_hidden_activation_makes_the_returned_loss_nan(act):
    """The NaN bound does not scan z of sigmoid and tanh layers (|z| <= 1): a NaN there, from an
    overflowed pre-activation, reaches the loss through the next layer's sums. Checked at the
    kernel level, where the driver returns NaN instead of raising."""
    net = fastbp.MLP([2, 64, 64, 1], act, seed=0)
    theta, sizes, codes = net.kernel_args()
    theta[: 64 * 2] = np.tile([2.0, -2.0], 64)  # W1: 2 x - 2 x with x = 1.7e308: inf - inf
    X = np.full((64, 2), 1.7e308)
    Y = np.zeros((64, 1))
    A, Z, tmp = kernels.make_workspace(sizes, 64)
    grad = np.empty_like(theta)
    assert np.isnan(kernels.loss_and_grad(theta, sizes, codes, X, Y, A, Z, tmp, grad))
