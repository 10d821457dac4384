"""Second-order derivatives of the loss: Hessian-vector and Gauss-Newton products, the residual
Jacobian (the Python layer of ``MLP.hvp``, ``MLP.gnvp`` and ``MLP.residual_jacobian``).

Each function validates and converts its arguments (the errors of
:meth:`fastbp.MLP.loss_and_grad`, raised before any kernel runs), takes this thread's
``work`` buffer from the network (grown on demand, then reused) and calls the one compiled body
:func:`fastbp.kernels.second_order` (threaded or its serial twin, picked as for the gradient by
:func:`fastbp._dispatch.threaded`). The mathematics is in docs/second-order.md.
"""

from __future__ import annotations

import math

import numpy as np

from ._dispatch import call, threaded
from ._kernels import second_order as _so
from ._validate import as_array, as_batch, as_pair, check_out, fast_pair
from .losses import LOSSES

__all__ = ["gnvp", "hvp", "residual_jacobian"]

_OVERFLOW = (
    "{what} is NaN: an intermediate value overflowed {dtype} (inf - inf or 0 * inf), so the "
    "result has no meaningful value; scale the inputs, targets, parameters or v down"
)


def _work(net, batch: int) -> np.ndarray:
    """This thread's ``work`` buffer of the second-order drivers, grown to ``batch`` samples."""
    local = net._local
    ws = getattr(local, "second_order", None)
    if ws is None or ws[1] < batch:
        capacity = max(batch, 1)
        ws = (_so.make_second_order_workspace(net.sizes, capacity, net.dtype), capacity)
        local.second_order = ws
    return ws[0]


def _kernel(net, batch: int):
    parallel = threaded(net.sizes, batch)
    return (_so._second_order if parallel else _so._body_serial), parallel


def _direction(v, n: int, dtype) -> np.ndarray:
    """``v`` as a finite, C-contiguous (n,) array of ``dtype``."""
    arr = as_array(v, "v", dtype)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"v: expected shape ({n},) (laid out like params), got {arr.shape}")
    return arr


def _product(net, X, Y, v, out, mode: int, name: str, sample_weight) -> np.ndarray:
    dt = net.dtype
    n_in, n_out = net.sizes[0], net.sizes[-1]
    extended = net.loss_name != "squared" or sample_weight is not None
    if extended:  # targets as the loss reads them (labels: one-hot rows), float64 weights
        X2, Y2, w = net._loss_arguments(X, Y, sample_weight)
        code = LOSSES.index(net.loss_name)
    else:
        pair = fast_pair(X, Y, n_in, n_out, dt)
        if pair is None:
            pair = as_pair(X, Y, n_in, n_out, dt)
        X2, Y2, w, code = pair[0], pair[1], net.params[:0], 0
    if not w.shape[0]:
        w = net.params[:0]  # "no weights" of the network dtype: the squared call's signature
    P = net.n_params
    v2 = _direction(v, P, dt)
    res = np.empty(P, dtype=dt) if out is None else check_out(out, P, dt)
    kernel, parallel = _kernel(net, X2.shape[0])
    theta, sizes, codes = net.kernel_args()
    work = _work(net, X2.shape[0])
    try:
        args = (theta, sizes, codes, X2, Y2, v2, work, res.reshape(1, P), mode, code, w)
        loss = call(kernel, parallel, *args)
    except ValueError:  # NaN or Inf in X or Y (fast_pair checks no values): nothing written
        if not extended:
            as_pair(X, Y, n_in, n_out, dt)  # raises the precise message
        raise
    if math.isnan(loss) or (res.size and np.isnan(res.max())):
        raise FloatingPointError(_OVERFLOW.format(what=f"{name}: the product", dtype=dt))
    return res


def hvp(net, X, Y, v, out=None, sample_weight=None) -> np.ndarray:
    """``H v`` for :meth:`fastbp.MLP.hvp` (see there)."""
    return _product(net, X, Y, v, out, _so.HVP, "hvp", sample_weight)


def gnvp(net, X, Y, v, out=None, sample_weight=None) -> np.ndarray:
    """``J_r^T J_r v`` for :meth:`fastbp.MLP.gnvp` (see there)."""
    return _product(net, X, Y, v, out, _so.GNVP, "gnvp", sample_weight)


def residual_jacobian(net, X, out=None) -> np.ndarray:
    """``J_r`` for :meth:`fastbp.MLP.residual_jacobian` (see there)."""
    dt = net.dtype
    X2, single = as_batch(X, "X", net.sizes[0], dt)
    rows, P = X2.shape[0] * net.sizes[-1], net.n_params
    J = np.empty((rows, P), dtype=dt) if out is None else check_out(out, (rows, P), dt)
    kernel, parallel = _kernel(net, X2.shape[0])
    theta, sizes, codes = net.kernel_args()
    work = _work(net, X2.shape[0])
    call(kernel, parallel, theta, sizes, codes, X2, X2, theta, work, J, _so.JACOBIAN, 0, theta[:0])
    if J.size and np.isnan(J.max()):
        raise FloatingPointError(_OVERFLOW.format(what="residual_jacobian: the Jacobian", dtype=dt))
    return J
