"""The whole-network drivers, compiled: forward, loss, backpropagation and finite differences.

Their public name is :mod:`fastbp.kernels`, which re-exports this module; its docstring gives the
arguments the drivers share, the shape checks and when they run threaded. The drivers live here;
their pieces have their own modules in this package: the register tiles
(:mod:`fastbp._kernels.forward_tiles`, :mod:`fastbp._kernels.backward_tiles`) and edge loops
(:mod:`fastbp._kernels.layers`), the checks (:mod:`fastbp._kernels.checks`), the workspace
layout and thread blocks (:mod:`fastbp._kernels.workspace`, whose public helpers are
re-exported here) and the fused B = 1 path for tiny networks
(:mod:`fastbp._kernels.single_sample`).
"""

from __future__ import annotations

import numpy as np

from .._jit import kernel, twins
from .backward_tiles import (
    PACK,
    delta_columns,
    delta_columns_parallel,
    pack_weight_gradient,
    weight_gradient_rows,
    weight_gradient_rows_parallel,
)
from .checks import (
    _all_finite,
    _check_arguments,
    _check_finite,
    _finite_max_x,
    _gradient_may_be_nan,
    _has_nan,
)
from .forward_tiles import (
    SPAN,
    forward_rows,
    forward_rows_forward,
    forward_rows_gradient,
    forward_rows_parallel,
    forward_rows_parallel_forward,
    forward_rows_parallel_gradient,
)
from .layers import (
    IDENTITY,
    LEAKY_RELU,
    LEAKY_SLOPE,
    RELU,
    SIGMOID,
    SOFTPLUS,
    TANH,
    _bias_gradient,
    activation,
    activation_derivative,
)
from .losses import (
    check_loss_arguments,
    loss_delta,
    loss_sum,
    output_delta,
    residual_loss,
)
from .single_sample import TINY_PARAMS, _single_sample, _single_sample_flat
from .workspace import (
    _TASKS,
    PARALLEL_MIN_WORK,
    _block,
    _column_block,
    _ld,
    _sample_block,
    _thread_block,
    make_workspace,
    uses_threads,
    workspace_lengths,
)

__all__ = [
    "PARALLEL_MIN_WORK",
    "TINY_PARAMS",
    "finite_difference",
    "forward",
    "loss",
    "loss_and_grad",
    "make_workspace",
    "uses_threads",
    "workspace_lengths",
]

# Re-exported: the scalar activations and their codes live beside the loop nests that call them.
_SCALARS = (activation, activation_derivative)
_CODES = (SIGMOID, TANH, RELU, LEAKY_RELU, SOFTPLUS, IDENTITY, LEAKY_SLOPE)
# Re-exported: the single-sample entry fastbp.MLP calls for one sample of a tiny network.
_ENTRIES = (_single_sample_flat,)
# Whether the drivers may call their prange kernels (False in the serial twins), and whether
# loss_and_grad may take the single-sample path (False in the twin for larger networks); see
# the end of the module.
_THREADS = True
_TINY = True


# --------------------------------------------------------------------------------------------
# Whole-network drivers: one compiled call per forward / loss / gradient, no Python per layer.
# --------------------------------------------------------------------------------------------
@kernel
def _forward_all(theta, sizes, codes, X, A, Z, derivative):
    """Forward pass through every layer; returns the unit offset of the output layer.

    Z holds z^l sample-major in its first B * U entries, then the transposed input X^T
    (M^0, B) and the transposed z^l (M^l, B) of every layer, which the forward tiles read.
    """
    B = X.shape[0]
    L = sizes.shape[0] - 1
    units = 0
    for l in range(1, L + 1):
        units += sizes[l]
    ld = _ld(B)
    t0 = B * units
    zinT = Z[t0 : t0 + sizes[0] * ld].reshape((sizes[0], ld))
    # Split over samples, the first layer's tasks copy their own samples of X^T. (Calls to the
    # split rules sit behind `_THREADS and`, so the serial twins do not compile them.)
    split = False
    if _THREADS and _sample_block(B, B * sizes[0] * sizes[1]) > 0:
        split = True
    if B >= SPAN and not split:  # below one tile of samples the forward nest never reads X^T
        # k outer: contiguous writes, 32..B strided read streams (docs/perf-log.md, row 11c).
        for k in range(sizes[0]):
            for n in range(B):
                zinT[k, n] = X[n, k]
    t0 += sizes[0] * ld
    w0 = 0
    u0 = 0
    zin = X
    for l in range(L):
        m_in = sizes[l]
        m_out = sizes[l + 1]
        b0 = w0 + m_out * m_in
        a = _block(A, B, u0, m_out)
        z = _block(Z, B, u0, m_out)
        zT = Z[t0 : t0 + m_out * ld].reshape((m_out, ld))
        work = B * m_in * m_out
        if _THREADS and _sample_block(B, work) > 0:
            samples = _sample_block(B, work)
            forward_rows_parallel(
                theta, w0, b0, codes[l], zin, zinT, a, z, zT, m_out, samples, l == 0, derivative
            )
        elif _THREADS and _thread_block(m_out, work) > 0:
            chunk = _thread_block(m_out, work)
            forward_rows_parallel(
                theta, w0, b0, codes[l], zin, zinT, a, z, zT, chunk, B, False, derivative
            )
        else:
            forward_rows(theta, w0, b0, codes[l], zin, zinT, a, z, zT, 0, m_out, 0, derivative)
        zin = z
        zinT = zT
        t0 += m_out * ld
        w0 = b0 + m_out
        if l < L - 1:
            u0 += m_out
    return u0


# The forward tiles' twins per mode: (serial, parallel), see fastbp._kernels.forward_tiles.
_FORWARD_TILES = {
    "gradient": (forward_rows_gradient, forward_rows_parallel_gradient),
    "forward": (forward_rows_forward, forward_rows_parallel_forward),
}


def _mode_namespace(namespace: dict, mode: str) -> dict:
    """``namespace`` with the forward tiles bound to their twins for ``mode``."""
    rows, parallel = _FORWARD_TILES[mode]
    return {**namespace, "forward_rows": rows, "forward_rows_parallel": parallel}


# _forward_all per mode: the gradient's compiles only the vector epilogue (h and h'), forward
# and loss only the scalar one (h), instead of both, to cut cold compile (docs/perf-log.md,
# row 30). _forward_all itself, with both, serves direct callers.
(_forward_all_gradient,) = twins(
    (_forward_all,), _mode_namespace(globals(), "gradient"), "gradient"
)
(_forward_all_forward,) = twins((_forward_all,), _mode_namespace(globals(), "forward"), "forward")


@kernel
def forward(theta, sizes, codes, X, A, Z, out):
    """Network output f(X, theta) into ``out`` (B, M^L); a^l, z^l of every layer into A, Z."""
    _check_arguments(theta, sizes, codes, X, A, Z)
    if out.shape[0] != X.shape[0] or out.shape[1] != sizes[sizes.shape[0] - 1]:
        raise ValueError("kernels: out must have shape (B, sizes[-1])")
    if not _all_finite(X):
        raise ValueError("X: expected finite values, found NaN or Inf")
    B = X.shape[0]
    m = out.shape[1]
    u0 = _forward_all_forward(theta, sizes, codes, X, A, Z, False)
    zL = _block(Z, B, u0, m)
    for n in range(B):
        for i in range(m):
            out[n, i] = zL[n, i]


@kernel
def _loss_unchecked(theta, sizes, codes, X, Y, A, Z, loss_code=0, weights=None):
    B = X.shape[0]
    m = Y.shape[1]
    u0 = _forward_all_forward(theta, sizes, codes, X, A, Z, False)
    if weights is None:  # the classic call: the squared loss (pruned at compile time)
        return residual_loss(_block(Z, B, u0, m), Y)
    return loss_sum(loss_code, _block(Z, B, u0, m), Y, weights)


@kernel
def loss(theta, sizes, codes, X, Y, A, Z, loss_code=0, weights=None):
    """Loss sum_n 1/2 ||f(x_n, theta) - y_n||^2 (float64) by one forward pass.

    With ``loss_code`` and ``weights`` (both given, see :mod:`fastbp.kernels`): the loss of
    that code, each sample's term times its weight.
    """
    _check_arguments(theta, sizes, codes, X, A, Z)
    if Y.shape[0] != X.shape[0] or Y.shape[1] != sizes[sizes.shape[0] - 1]:
        raise ValueError("kernels: Y must have shape (B, sizes[-1])")
    if weights is not None:
        check_loss_arguments(codes, X.shape[0], loss_code, weights)
    _check_finite(X, Y)
    if weights is None:
        return _loss_unchecked(theta, sizes, codes, X, Y, A, Z)
    return _loss_unchecked(theta, sizes, codes, X, Y, A, Z, loss_code, weights)


@kernel(inline="always")
def _layer_gradient(delta, zin, dp, zp, w0, b0, grad):
    """dW = delta^T zin (tiled, threaded above the work threshold) and db = sum_n delta[n].

    Inlined into the driver (Numba IR), so it has no library of its own: a library re-optimizes
    and re-emits everything linked into it, which made this level cost cold-compile time over
    the tiles it calls (docs/perf-log.md, row 33).

    Every entry is summed over samples in order, first sample assigned: no zeroing pass, and
    the same bits for any thread count. The bias sum runs along contiguous rows of delta.
    dp (>= B M^l entries) and zp (>= B M^(l-1)) are dead workspace that receives the tiles'
    panel-major copies of delta and zin (see :func:`pack_weight_gradient`).
    """
    B, m_out = delta.shape
    m_in = zin.shape[1]
    if B == 0:
        for k in range(w0, b0 + m_out):
            grad[k] = 0.0
        return
    # Which operands to pack: packing zin pays once a panel serves many row tiles over many
    # samples (for small layers the copy costs more than it saves); packing delta pays where
    # its row stride is a multiple of 1 KiB (the B rows share 4 or fewer L1 sets). The
    # measurements: docs/perf-log.md, row 19 and "Moved from the source comments".
    size = delta.itemsize
    pack_delta = B >= 64 and m_in >= 128 and (m_out * size) % 1024 == 0
    # zin may be the caller's X (any layout): packed unless it is a plain C-contiguous array.
    plain = zin.strides[1] == size and zin.strides[0] == m_in * size
    pack_zin = not plain or (B >= 64 and m_out >= 128)
    dsrc = dp if pack_delta else delta.reshape(B * m_out)
    zsrc = zp if pack_zin else zin.reshape(B * m_in)
    work = B * m_in * m_out
    if _THREADS and pack_zin and _column_block(m_in, m_out, work) > 0:
        # Split over columns: delta (read whole by every task) packed here, zin by each task.
        # Unpacked, zin would be the caller's X or z^(l-1), which both threads read anyway:
        # nothing to gain over the split by rows (docs/perf-log.md, row 31).
        cols = _column_block(m_in, m_out, work)
        pack_weight_gradient(delta, zin, dp, zp, pack_delta, False, 0, 0)
        weight_gradient_rows_parallel(
            delta, zin, dsrc, zsrc, pack_delta, True, w0, grad, m_out, cols, True
        )
    else:
        pack_weight_gradient(delta, zin, dp, zp, pack_delta, pack_zin, 0, m_in)
        if _THREADS and _thread_block(m_out, work) > 0:
            chunk = _thread_block(m_out, work)
            weight_gradient_rows_parallel(
                delta, zin, dsrc, zsrc, pack_delta, pack_zin, w0, grad, chunk, m_in, False
            )
        else:
            weight_gradient_rows(
                delta, zin, dsrc, zsrc, pack_delta, pack_zin, w0, grad, 0, m_out, 0, m_in
            )
    _bias_gradient(delta, grad[b0 : b0 + m_out])


@kernel
def loss_and_grad(theta, sizes, codes, X, Y, A, Z, tmp, grad, loss_code=0, weights=None):
    """Loss (returned, float64) and its gradient with respect to theta (into ``grad``).

    With ``loss_code`` and ``weights`` (both given, see :mod:`fastbp.kernels`): the loss of
    that code and its gradient, each sample's term times its weight (delta^L by
    :func:`fastbp._kernels.losses.loss_delta`). The classic nine-argument call is the squared
    loss without weights, compiled as before.

    Forward pass (eqs. 2-4 of docs/maths.md), then the backward recursion: delta^L at the output
    (eq. 8), then for l = L..1 the outer-product gradient dW^l = delta^l z^(l-1)^T, db^l = delta^l
    (eqs. 6-7, summed over samples) and delta^(l-1) = (W^l^T delta^l) * h'(a^(l-1)) (eq. 9).

    Returns NaN (with ``grad`` written) when an entry of the gradient is NaN, which happens
    only when intermediate values overflowed to infinities of opposite sign.
    """
    _check_arguments(theta, sizes, codes, X, A, Z)
    L = sizes.shape[0] - 1
    if Y.shape[0] != X.shape[0] or Y.shape[1] != sizes[L]:
        raise ValueError("kernels: Y must have shape (B, sizes[-1])")
    if grad.shape[0] != theta.shape[0]:
        raise ValueError("kernels: grad must have the length of theta")
    maxw = 0
    for l in range(L + 1):
        maxw = max(maxw, sizes[l])
    if tmp.shape[0] < maxw + _TASKS * PACK:
        raise ValueError("kernels: tmp too short (see make_workspace)")
    if weights is not None:
        check_loss_arguments(codes, X.shape[0], loss_code, weights)
    xmax = _finite_max_x(X, Y)
    B = X.shape[0]
    if weights is None:  # pruned at compile time: the single-sample path is the squared loss's
        if _TINY and B == 1 and theta.shape[0] <= TINY_PARAMS:
            total = _single_sample(theta, sizes, codes, X[0], Y[0], A, Z, tmp, grad)
            return np.nan if _has_nan(grad) else total  # tiny: the full scan is cheap
    ld = _ld(B)
    units = 0
    for l in range(1, L + 1):
        units += sizes[l]
    t_base = B * units + ld * sizes[0]  # the transposed z^1 in Z (see _forward_all)
    scratch = tmp[maxw : maxw + _TASKS * PACK]
    u0 = _forward_all_gradient(theta, sizes, codes, X, A, Z, True)
    if weights is None:
        total = output_delta(_block(A, B, u0, sizes[L]), _block(Z, B, u0, sizes[L]), Y)
    else:
        total = loss_delta(
            loss_code, _block(A, B, u0, sizes[L]), _block(Z, B, u0, sizes[L]), Y, weights
        )
    # Walk the layers backwards; w_end is the offset just past layer l's parameters.
    w_end = theta.shape[0]
    for l in range(L, 0, -1):
        m_in = sizes[l - 1]
        m_out = sizes[l]
        b0 = w_end - m_out
        w0 = b0 - m_out * m_in
        delta = _block(A, B, u0, m_out)
        # Dead by now, so the weight gradient packs its panels there: the transposed z^l (its
        # delta tiles' sums are scaled into delta^l already; at l = L never read) and the
        # transposed z^(l-1) (or X^T), which the delta tiles below overwrite afterwards.
        t_l = t_base + ld * u0
        dp = Z[t_l : t_l + B * m_out]
        if l > 1:
            u_prev = u0 - m_in
            zin = _block(Z, B, u_prev, m_in)
            t_in = t_base + ld * u_prev
        else:
            u_prev = 0
            zin = X
            t_in = t_base - ld * sizes[0]
        zp = Z[t_in : t_in + B * m_in]
        _layer_gradient(delta, zin, dp, zp, w0, b0, grad)
        if l > 1:
            a_prev = _block(A, B, u_prev, m_in)
            # The transposed z^(l-1) is dead once the forward pass is done: it holds the raw
            # sums of the delta tiles until the h' epilogue scales them into a_prev.
            t_prev = t_base + ld * u_prev
            acc = Z[t_prev : t_prev + B * m_in].reshape((B, m_in))
            chunk = _thread_block(m_in, B * m_in * m_out)
            if _THREADS and chunk > 0:
                delta_columns_parallel(theta, w0, delta, codes[l - 2], a_prev, acc, scratch, chunk)
            else:
                delta_columns(theta, w0, delta, codes[l - 2], a_prev, acc, scratch[:PACK], 0, m_in)
        u0 = u_prev
        w_end = w0
    # A NaN in the gradient (overflowed contributions of opposite sign met) makes the returned
    # loss NaN too, so one check of the loss covers both.
    if _gradient_may_be_nan(sizes, codes, X, xmax, A, Z, grad):
        total = np.nan
    return total


@kernel
def finite_difference(theta, sizes, codes, X, Y, A, Z, eps, central, start, stop, grad):
    """Finite-difference gradient for coordinates ``start <= k < stop`` of theta, into grad.

    Each coordinate is perturbed in place by ``h = eps * max(1, |theta_k|)`` and restored to its
    exact old value. The step actually taken is read back from theta after rounding to its dtype,
    so the divisor is the true difference of the two evaluation points. ``central`` selects
    (L(theta + h) - L(theta - h)) / 2h; otherwise the seed's forward difference (eq. 5),
    (L(theta + h) - L(theta)) / h. Costs 2 (or 1) forward passes per coordinate: O(N^2).
    """
    _check_arguments(theta, sizes, codes, X, A, Z)
    if Y.shape[0] != X.shape[0] or Y.shape[1] != sizes[sizes.shape[0] - 1]:
        raise ValueError("kernels: Y must have shape (B, sizes[-1])")
    if grad.shape[0] != theta.shape[0]:
        raise ValueError("kernels: grad must have the length of theta")
    if start < 0 or stop < start or stop > theta.shape[0]:
        raise ValueError("kernels: expected 0 <= start <= stop <= len(theta)")
    _check_finite(X, Y)
    base = 0.0
    if not central:
        base = _loss_unchecked(theta, sizes, codes, X, Y, A, Z)
    for k in range(start, stop):
        old = theta[k]
        h = eps * max(1.0, abs(float(old)))
        theta[k] = old + h
        up = theta[k]
        l_up = _loss_unchecked(theta, sizes, codes, X, Y, A, Z)
        if central:
            theta[k] = old - h
            down = theta[k]
            l_down = _loss_unchecked(theta, sizes, codes, X, Y, A, Z)
        else:
            down = old
            l_down = base
        theta[k] = old
        grad[k] = (l_up - l_down) / (float(up) - float(down))


# --------------------------------------------------------------------------------------------
# Serial twins: the same drivers without the prange kernels, for calls below the work threshold.
# --------------------------------------------------------------------------------------------
# A driver that names a parallel wrapper compiles it (and Numba recompiles the loop nest inside
# the parfor) even when the call never reaches PARALLEL_MIN_WORK, seconds of cold compile
# (docs/perf-log.md, row 16). fastbp.MLP calls these twins below the threshold,
# so a small network never compiles a parfor; the public drivers above keep their threads.
# Each twin is the driver's own bytecode over a namespace in which _THREADS is False: Numba
# prunes a branch on a constant global before typing, so every `if _THREADS and chunk > 0`
# compiles to its serial call alone (the same call the public driver makes below the
# threshold, so the same bits, and the two cannot drift apart). Binding the wrappers' names to
# serial kernels instead compiled three more functions, each linking, optimizing and emitting
# its tile once more (docs/perf-log.md, row 27).
_SERIAL = {**globals(), "_THREADS": False}
# The serial drivers call serial twins of the per-mode _forward_all (the module-level ones keep
# their prange branch).
for _mode in _FORWARD_TILES:
    (_SERIAL[f"_forward_all_{_mode}"],) = twins(
        (_forward_all,), _mode_namespace(_SERIAL, _mode), f"{_mode}_serial"
    )
(
    _layer_gradient_serial,
    _loss_unchecked_serial,
    _forward_serial,
    _loss_serial,
    _loss_and_grad_serial,
    _finite_difference_serial,
) = twins(
    (_layer_gradient, _loss_unchecked, forward, loss, loss_and_grad, finite_difference),
    _SERIAL,
    "serial",
)
# fastbp.MLP's gradient for a network above TINY_PARAMS, which never takes the single-sample
# path: the serial twin with that branch pruned too, so the first call does not compile
# _single_sample and the scalar activations it inlines, nor link them into the driver
# (docs/perf-log.md, row 27). Tiny networks and fit keep _loss_and_grad_serial.
(_loss_and_grad_large,) = twins((loss_and_grad,), {**_SERIAL, "_TINY": False}, "large")
del _SERIAL, _mode
