"""Derivatives beyond the parameter gradient: the Python layer of :meth:`fastbp.MLP.input_grad`,
:meth:`~fastbp.MLP.jacobian`, :meth:`~fastbp.MLP.jvp`, :meth:`~fastbp.MLP.vjp` and
:meth:`~fastbp.MLP.per_sample_grads` (validation, buffers, the choice of variant).

The compiled drivers are :func:`fastbp.kernels.input_grad`, :func:`~fastbp.kernels.vjp`,
:func:`~fastbp.kernels.jvp`, :func:`~fastbp.kernels.jacobian` and
:func:`~fastbp.kernels.per_sample_grads`, thin wrappers of one compiled body
(``fastbp._kernels.input_derivs._derivatives``, an op code per operation); the methods call
that body directly, so the five operations compile one kernel per variant and dtype. The
mathematics is in docs/derivatives.md. A call runs the threaded body when its largest layer
product reaches the tier's ``THREAD_MIN_WORK`` and Numba has more than one thread
(:func:`fastbp._dispatch.threaded`), else its serial twin: the same bits.
"""

from __future__ import annotations

import math

import numpy as np

from ._dispatch import call, threaded
from ._kernels import input_derivs as D
from ._validate import as_batch, as_pair, check_out, fast_pair

__all__ = [
    "JACOBIAN_MODES", "input_grad", "jacobian", "jacobian_mode", "jvp", "per_sample_grads", "vjp",
]  # fmt: skip

#: The modes :meth:`fastbp.MLP.jacobian` accepts.
JACOBIAN_MODES = ("auto", "forward", "reverse")

_OVERFLOW = (
    "{what} is NaN: an intermediate value overflowed {dtype} (inf - inf or 0 * inf), so the "
    "result has no meaningful value; scale the inputs or parameters down"
)


def _variant(sizes, work_batch: int):
    """(kernel, parallel): the threaded body when the call may run threaded, else its twin."""
    parallel = threaded(sizes, work_batch)
    return (D._derivatives if parallel else D._derivatives_serial), parallel


def _fast_pair_or_convert(X, S, name: str, width: int, net):
    """``(X2, S2, single)``: X (B, M^0) and S (B, width) as the drivers take them.

    Arrays that need no conversion are used as they are (their finiteness is checked by the
    compiled driver); anything else goes through :func:`fastbp._validate.as_batch`, which
    converts or raises the precise error (the messages of ``loss_and_grad``).
    """
    n_in = net._sizes[0]
    dt = net._dtype
    pair = fast_pair(X, S, n_in, width, dt)
    if pair is not None:
        return pair[0], pair[1], np.ndim(X) == 1
    return _convert_pair(X, S, name, width, net)


def _convert_pair(X, S, name: str, width: int, net):
    """The full conversion and checks of X and S (``as_pair``'s rules, with S named)."""
    dt = net._dtype
    if name == "Y":
        return as_pair(X, S, net._sizes[0], width, dt)
    X2, x_single = as_batch(X, "X", net._sizes[0], dt)
    S2, s_single = as_batch(S, name, width, dt)
    if x_single != s_single:
        raise ValueError(
            f"X, {name}: expected both 1-D (one sample) or both 2-D (a batch), got "
            f"X {np.ndim(X)}-D and {name} {np.ndim(S)}-D"
        )
    if X2.shape[0] != S2.shape[0]:
        raise ValueError(
            f"X, {name}: expected the same number of samples, got {X2.shape[0]} and {S2.shape[0]}"
        )
    return X2, S2, x_single


def _run(net, kernel, parallel, args, X, S, name, width):
    """Call the driver; a ValueError from its own checks (NaN or Inf in an argument that the
    fast path did not convert) is replaced by the precise message of the full conversion."""
    try:
        return call(kernel, parallel, *args)
    except ValueError:
        if S is None:
            as_batch(X, "X", net._sizes[0], net._dtype)
        else:
            _convert_pair(X, S, name, width, net)
        raise


def _check_result(arr: np.ndarray, what: str, dtype) -> None:
    if arr.size and np.isnan(arr.max()):  # max propagates NaN: one pass, no temporary
        raise FloatingPointError(_OVERFLOW.format(what=what, dtype=dtype))


def _loss_data(net, X, Y, sample_weight):
    """``(X2, Y2, single, loss_code, weights)`` for the ops with a loss (input_grad,
    per_sample_grads): the squared loss without weights takes the fast conversion and the
    empty ``theta[:0]`` for "no weights" (so it shares the public drivers' compiled body);
    otherwise targets as the loss reads them (labels as one-hot rows) and float64 weights."""
    if net._loss_code == 0 and sample_weight is None:
        X2, Y2, single = _fast_pair_or_convert(X, Y, "Y", net._sizes[-1], net)
        return X2, Y2, single, 0, net._theta[:0]
    X2, Y2, w = net._loss_arguments(X, Y, sample_weight)
    return X2, Y2, np.ndim(X) == 1, net._loss_code, (w if w.shape[0] else net._theta[:0])


def _refine(net, Y, sample_weight):
    """What :func:`_run` re-converts for a precise message: Y for the squared loss without
    weights (its fast path converted nothing), else None (Y and the weights were converted and
    checked already, so the driver's own message stands)."""
    return Y if net._loss_code == 0 and sample_weight is None else None


def input_grad(net, X, Y, sample_weight=None):
    """:meth:`fastbp.MLP.input_grad`."""
    X2, Y2, single, code, w = _loss_data(net, X, Y, sample_weight)
    B = X2.shape[0]
    dX = np.empty((B, net._sizes[0]), dtype=net._dtype)
    A, Z, _ = net._workspace(B)
    kernel, parallel = _variant(net._sizes, B)
    args = (net._theta, net._sizes_arr, net._codes, X2, Y2, A, Z, A, dX, dX, D.INPUT_GRAD, code, w)
    value = _run(
        net, kernel, parallel, args, X, _refine(net, Y, sample_weight), "Y", net._sizes[-1]
    )
    if math.isnan(value):
        raise FloatingPointError(_OVERFLOW.format(what="input_grad: the loss", dtype=net._dtype))
    _check_result(dX, "input_grad: an entry of dX", net._dtype)
    return float(value), (dX[0] if single else dX)


def vjp(net, X, U):
    """:meth:`fastbp.MLP.vjp`."""
    X2, U2, single = _fast_pair_or_convert(X, U, "U", net._sizes[-1], net)
    B = X2.shape[0]
    F = np.empty((B, net._sizes[-1]), dtype=net._dtype)
    UJ = np.empty((B, net._sizes[0]), dtype=net._dtype)
    A, Z, _ = net._workspace(B)
    kernel, parallel = _variant(net._sizes, B)
    args = (
        net._theta,
        net._sizes_arr,
        net._codes,
        X2,
        U2,
        A,
        Z,
        A,
        F,
        UJ,
        D.VJP,
        0,
        net._theta[:0],
    )
    _run(net, kernel, parallel, args, X, U, "U", net._sizes[-1])
    _check_result(F, "vjp: an output", net._dtype)
    _check_result(UJ, "vjp: an entry of UJ", net._dtype)
    return (F[0], UJ[0]) if single else (F, UJ)


def jvp(net, X, V):
    """:meth:`fastbp.MLP.jvp`."""
    X2, V2, single = _fast_pair_or_convert(X, V, "V", net._sizes[0], net)
    B = X2.shape[0]
    F = np.empty((B, net._sizes[-1]), dtype=net._dtype)
    JV = np.empty((B, net._sizes[-1]), dtype=net._dtype)
    A, Z, _ = net._workspace(B)
    kernel, parallel = _variant(net._sizes, B)
    args = (
        net._theta,
        net._sizes_arr,
        net._codes,
        X2,
        V2,
        A,
        Z,
        A,
        F,
        JV,
        D.JVP,
        0,
        net._theta[:0],
    )
    _run(net, kernel, parallel, args, X, V, "V", net._sizes[0])
    _check_result(F, "jvp: an output", net._dtype)
    _check_result(JV, "jvp: an entry of JV", net._dtype)
    return (F[0], JV[0]) if single else (F, JV)


def jacobian_mode(sizes, mode: str = "auto") -> str:
    """The mode :meth:`fastbp.MLP.jacobian` runs: ``"forward"`` or ``"reverse"``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[M^0, ..., M^L]``.
    mode : {"auto", "forward", "reverse"}
        ``"auto"`` picks the mode with fewer multiply-adds per sample: forward
        ``M^0 M^1 + sum_{l>=2} M^0 M^(l-1) M^l``, reverse
        ``M^L M^(L-1) + sum_{l<=L-1} M^L M^(l-1) M^l`` (the first term scales a weight matrix
        by ``h'``; the sums are the products of the tangent matrices); reverse on a tie.

    Returns
    -------
    str
        ``"forward"`` or ``"reverse"``.
    """
    if not isinstance(mode, str):
        raise TypeError(f"mode: expected one of {JACOBIAN_MODES}, got {mode!r}")
    if mode not in JACOBIAN_MODES:
        raise ValueError(f"mode: expected one of {JACOBIAN_MODES}, got {mode!r}")
    if mode != "auto":
        return mode
    sizes = [int(m) for m in sizes]
    L = len(sizes) - 1
    m0, mL = sizes[0], sizes[-1]
    fwd = m0 * sizes[1] + sum(m0 * sizes[l - 1] * sizes[l] for l in range(2, L + 1))
    rev = mL * sizes[L - 1] + sum(mL * sizes[l - 1] * sizes[l] for l in range(1, L))
    return "forward" if fwd < rev else "reverse"


def _tangents(net, length: int) -> np.ndarray:
    """This thread's tangent buffer T of at least ``length`` entries (grown on demand)."""
    T = getattr(net._local, "tangents", None)
    if T is None or T.shape[0] < length:
        T = np.zeros(max(length, 1), dtype=net._dtype)
        net._local.tangents = T
    return T


def jacobian(net, X, mode: str = "auto"):
    """:meth:`fastbp.MLP.jacobian`."""
    forward = jacobian_mode(net._sizes, mode) == "forward"
    dt = net._dtype
    if (
        type(X) is np.ndarray
        and X.dtype is dt
        and X.ndim == 2
        and X.shape[1] == net._sizes[0]
        and X.flags.c_contiguous
        and X.flags.writeable
    ):
        X2, single = X, False
    else:
        X2, single = as_batch(X, "X", net._sizes[0], dt)
    B = X2.shape[0]
    J = np.empty((B, net._sizes[-1], net._sizes[0]), dtype=dt)
    A, Z, _ = net._workspace(B)
    T = _tangents(net, D.tangent_length(net._sizes, B, forward))
    P = net._sizes[0] if forward else net._sizes[-1]
    kernel, parallel = _variant(net._sizes, B * P)
    J2 = J.reshape((B * net._sizes[-1], net._sizes[0]))
    op = D.JACOBIAN_FORWARD if forward else D.JACOBIAN_REVERSE
    args = (net._theta, net._sizes_arr, net._codes, X2, X2, A, Z, T, J2, J2, op, 0, net._theta[:0])
    _run(net, kernel, parallel, args, X, None, "", 0)
    _check_result(J, "jacobian: an entry of J", dt)
    return J[0] if single else J


def per_sample_grads(net, X, Y, out=None, sample_weight=None):
    """:meth:`fastbp.MLP.per_sample_grads`."""
    X2, Y2, single, code, w = _loss_data(net, X, Y, sample_weight)
    B = X2.shape[0]
    n = net._theta.shape[0]
    dt = net._dtype
    shape = (n,) if single else (B, n)
    if out is None:
        G = np.empty((B, n), dtype=dt)
    else:
        check_out(out, shape, dt)
        G = out.reshape((B, n))
    losses = np.empty(B, dtype=dt)
    A, Z, _ = net._workspace(B)
    kernel, parallel = _variant(net._sizes, B)
    args = (net._theta, net._sizes_arr, net._codes, X2, Y2, A, Z, losses, G, G, D.PER_SAMPLE)
    args = (*args, code, w)
    value = _run(
        net, kernel, parallel, args, X, _refine(net, Y, sample_weight), "Y", net._sizes[-1]
    )
    if math.isnan(value):
        raise FloatingPointError(_OVERFLOW.format(what="per_sample_grads: an entry of G", dtype=dt))
    if out is not None:
        G = out
    if single:
        return float(losses[0]), G.reshape(n)
    return losses, G
