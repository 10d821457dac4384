"""Input checking and conversion for the public API, done before any kernel runs.

Every check raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (wrong shape,
size or value) with a message that names the argument and says what was expected.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "as_array", "as_batch", "as_pair", "check_dtype", "check_out", "fast_pair", "first_nonfinite",
]  # fmt: skip

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(dtype) -> np.dtype:
    """The network dtype: float32 or float64, else ``TypeError``."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}") from None
    if dt not in SUPPORTED_DTYPES:
        raise TypeError(f"dtype: expected float32 or float64, got {dt.name}")
    return dt


def first_nonfinite(arr: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN or +-Inf of a float array, as plain ints (printed ``(1, 0)``,
    never NumPy scalar reprs), or None when every entry is finite."""
    if arr.size == 0 or np.isfinite(arr).all():
        return None
    return tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])


def as_array(value, name: str, dtype: np.dtype) -> np.ndarray:
    """Convert ``value`` to a finite, C-contiguous, writable array of ``dtype``.

    Integer, unsigned and other float inputs are converted; bool, complex, object and string
    data are refused. Read-only inputs are copied, so every call compiles to the same kernel
    specialization (Numba types read-only arrays separately).
    """
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a numeric array, could not convert ({exc})") from None
    if arr.dtype.kind not in "iuf":
        raise TypeError(
            f"{name}: expected a real numeric array (int or float), got dtype {arr.dtype}"
        )
    if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).all():
        bad = first_nonfinite(arr)
        raise ValueError(f"{name}: expected finite values, found {float(arr[bad])} at index {bad}")
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    if out.dtype.itemsize < arr.dtype.itemsize or arr.dtype.kind in "iu":
        if out.size and not np.isfinite(out).all():
            raise ValueError(f"{name}: values overflow {dtype.name}")
    if not out.flags.writeable:
        out = out.copy()
    return out


def as_batch(value, name: str, width: int, dtype: np.dtype) -> tuple[np.ndarray, bool]:
    """``value`` as a (B, width) array and whether it was a single 1-D sample."""
    arr = as_array(value, name, dtype)
    if arr.ndim == 1:
        if arr.shape[0] != width:
            raise ValueError(f"{name}: expected shape ({width},) for one sample, got {arr.shape}")
        return arr.reshape(1, width), True
    if arr.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-D array (n_samples, {width}) or a 1-D sample ({width},), "
            f"got {arr.ndim}-D with shape {arr.shape}"
        )
    if arr.shape[1] != width:
        raise ValueError(f"{name}: expected {width} columns, got shape {arr.shape}")
    return arr, False


def as_pair(X, Y, n_in: int, n_out: int, dtype: np.dtype):
    """Check and convert inputs X and targets Y together; returns (X2, Y2, single)."""
    X2, x_single = as_batch(X, "X", n_in, dtype)
    Y2, y_single = as_batch(Y, "Y", n_out, dtype)
    if x_single != y_single:
        raise ValueError(
            "X, Y: expected both 1-D (one sample) or both 2-D (a batch), got "
            f"X {np.ndim(X)}-D and Y {np.ndim(Y)}-D"
        )
    if X2.shape[0] != Y2.shape[0]:
        raise ValueError(
            f"X, Y: expected the same number of samples, got {X2.shape[0]} and {Y2.shape[0]}"
        )
    return X2, Y2, x_single


def fast_pair(X, Y, n_in: int, n_out: int, dtype: np.dtype):
    """``(X2, Y2)`` without copies when X and Y need no conversion, else None.

    Accepts exactly: numpy arrays of ``dtype``, C-contiguous and writable, both 1-D (one sample)
    or both 2-D with the same number of rows, of widths ``n_in`` and ``n_out``. Finiteness is
    NOT checked here: the compiled drivers check it before any work (see
    :func:`fastbp.kernels.loss_and_grad`). Anything else returns None and goes through
    :func:`as_pair`, which converts and raises the precise error. Costs well under a
    microsecond, against ~10 for the full path on a tiny network.
    """
    if type(X) is not np.ndarray or type(Y) is not np.ndarray:
        return None
    if X.dtype is not dtype or Y.dtype is not dtype:
        return None
    fx = X.flags
    fy = Y.flags
    if not (fx.c_contiguous and fy.c_contiguous and fx.writeable and fy.writeable):
        return None
    sx = X.shape
    sy = Y.shape
    if len(sx) == 2:
        if len(sy) != 2 or sx[1] != n_in or sy[1] != n_out or sx[0] != sy[0]:
            return None
        return X, Y
    if len(sx) == 1 and len(sy) == 1 and sx[0] == n_in and sy[0] == n_out:
        return X.reshape(1, n_in), Y.reshape(1, n_out)
    return None


def check_out(out, n, dtype: np.dtype) -> np.ndarray:
    """``out`` must be a writable, C-contiguous array of ``dtype`` and shape ``n`` (an int:
    ``(n,)``; or a shape tuple)."""
    shape = (int(n),) if isinstance(n, (int, np.integer)) else tuple(n)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a numpy array, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out: expected dtype {dtype.name}, got {out.dtype}")
    if out.shape != shape:
        raise ValueError(f"out: expected shape {shape}, got {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out: expected a writable, C-contiguous array")
    return out


def squared_only(net, what: str) -> None:
    """Refuse a cross-entropy network in a derivative seeded with the squared loss's delta^L.

    The cross-entropy seed is not wired into those kernels yet (docs/derivatives.md), so they
    raise before any kernel runs rather than return the squared loss's derivative."""
    if net._loss_code != 0:
        raise ValueError(
            f"{what}: defined for the squared loss only; this network's loss is "
            f"{net._loss_name!r} (the jacobian, jvp and vjp of f hold for any loss)"
        )
