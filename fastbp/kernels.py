"""Explicit-loop Numba kernels: forward, loss, backpropagation and finite differences.

Everything here is compiled by :func:`fastbp._jit.kernel` (cached, ``nogil``, no fastmath) and
works on buffers passed in by the caller: no kernel allocates, calls BLAS, ``np.dot`` or ``@``.
The whole-network drivers :func:`forward`, :func:`loss` and :func:`loss_and_grad` are public and
can be called from a user's own ``@numba.njit`` code, e.g. inside a simulation loop::

    theta, sizes, codes = net.kernel_args()
    A, Z, tmp = fastbp.kernels.make_workspace(sizes, batch, net.dtype)
    grad = np.empty_like(theta)

    @numba.njit
    def step(theta, sizes, codes, X, Y, A, Z, tmp, grad):
        return fastbp.kernels.loss_and_grad(theta, sizes, codes, X, Y, A, Z, tmp, grad)

Arguments shared by the drivers
-------------------------------
theta : ndarray, shape (n_params,)
    Flat parameters. For layer ``l = 1..L``: ``W^l`` row-major with shape ``(M^l, M^(l-1))``,
    then ``b^l`` of shape ``(M^l,)``.
sizes : int64 ndarray, shape (L + 1,)
    Layer widths ``[M^0, ..., M^L]``.
codes : int64 ndarray, shape (L,)
    Activation code of each layer (:data:`fastbp.activations.ACTIVATIONS` order).
X : ndarray, shape (B, M^0), C-contiguous, dtype of ``theta``
    Inputs, one sample per row.
Y : ndarray, shape (B, M^L), C-contiguous, dtype of ``theta``
    Targets.
A : ndarray, shape (>= B * U,), ``U = sum(sizes[1:])``
    Workspace: the pre-activations ``a^l`` of every layer, layer ``l`` stored as a row-major
    ``(B, M^l)`` block starting at ``B * (M^1 + ... + M^(l-1))``. After :func:`loss_and_grad`,
    the block of layer ``l`` holds ``delta^l``.
Z : ndarray, shape (>= B * (2 U + M^0),)
    Workspace: the activations ``z^l``, laid out like ``A`` in the first ``B * U`` entries;
    then the transposed input ``X^T`` (M^0, B) and transposed ``z^l`` (M^l, B) of each layer,
    which the register-tiled forward nest reads (see :mod:`fastbp._forward_tiles`).
tmp : ndarray, shape (>= max(sizes),)
    Reserved scratch row (checked for length; the tiled nests need no scratch).

Shapes are checked at the start of each driver (O(L) work) and a ``ValueError`` is raised on a
mismatch, so a wrong buffer never reads or writes out of bounds. :func:`forward`, :func:`loss`
and :func:`loss_and_grad` also raise ``ValueError`` naming ``X`` or ``Y`` when it holds NaN or
Inf, before anything is computed or written (a vectorized pass over the inputs only).

Drivers run ``prange`` loops over disjoint blocks when a layer product reaches
:data:`PARALLEL_MIN_WORK` multiply-adds (:func:`uses_threads` says when); Numba's default
threading layer must not run two such calls at once, so from several Python threads hold
:data:`fastbp._jit.PARALLEL_LOCK` around them, as :class:`fastbp.MLP` does.
"""

from __future__ import annotations

import numpy as np

from ._backward_tiles import (
    PACK,
    delta_columns,
    delta_columns_parallel,
    weight_gradient_rows,
    weight_gradient_rows_parallel,
)
from ._forward_tiles import LANES, forward_rows, forward_rows_parallel
from ._jit import kernel
from ._layers import (
    IDENTITY,
    LEAKY_RELU,
    LEAKY_SLOPE,
    RELU,
    SIGMOID,
    SOFTPLUS,
    TANH,
    activation,
    activation_and_derivative,
    activation_derivative,
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

#: A layer product with fewer multiply-adds (B * M^(l-1) * M^l) than this runs serially: waking
#: the worker threads costs several microseconds, more than the second core saves below it.
PARALLEL_MIN_WORK = 1 << 19

# Thread blocks are multiples of this many rows or columns: a multiple of every tile edge
# (forward ROWS, delta COLS and its 1 x 16 tail tile, weight-gradient ROWS), so the tiles inside
# a block line up with those of the serial call and every element is summed in the same order.
_BLOCK_ALIGN = 16
_TASKS = 8


# --------------------------------------------------------------------------------------------
# Whole-network drivers: one compiled call per forward / loss / gradient, no Python per layer.
# --------------------------------------------------------------------------------------------
@kernel
def _check_arguments(theta, sizes, codes, X, A, Z):
    L = sizes.shape[0] - 1
    if L < 1 or codes.shape[0] != L:
        raise ValueError("kernels: codes must have len(sizes) - 1 entries")
    n_params = 0
    units = 0
    for l in range(1, L + 1):
        n_params += sizes[l] * (sizes[l - 1] + 1)
        units += sizes[l]
    if theta.shape[0] != n_params:
        raise ValueError("kernels: theta length does not match sizes")
    if X.shape[1] != sizes[0]:
        raise ValueError("kernels: X must have sizes[0] columns")
    B = X.shape[0]
    if A.shape[0] < B * units or Z.shape[0] < B * units + _ld(B) * (units + sizes[0]):
        raise ValueError("kernels: workspace A or Z too short (see make_workspace)")


@kernel
def _all_finite(X):
    """Whether every entry of the 2-D array X is finite.

    ``x - x`` is 0 for a finite x and NaN for NaN or +-Inf, and NaN is the only value unequal
    to itself; OR-ing booleans is associative, so LLVM vectorizes this loop without fastmath
    (an early-exit loop or a float sum would run at one element per cycle or slower).
    """
    bad = False
    for n in range(X.shape[0]):
        for k in range(X.shape[1]):
            d = X[n, k] - X[n, k]
            bad |= d != d
    return not bad


@kernel
def _has_nan(v):
    """Whether the 1-D array v holds a NaN: a vectorized OR-reduction (NaN != NaN)."""
    bad = False
    for k in range(v.shape[0]):
        bad |= v[k] != v[k]
    return bad


@kernel
def _max_abs(v):
    """max |v| over a 1-D array, or inf if it holds a NaN or Inf."""
    m = 0.0
    bad = False
    for k in range(v.shape[0]):
        a = abs(float(v[k]))
        m = a if a > m else m
        bad |= v[k] != v[k]
    return np.inf if bad else m


@kernel
def _gradient_may_be_nan(sizes, X, A, Z, grad):
    """Whether grad (just written by the backward pass) holds a NaN, checked cheaply.

    Every entry of dW^l is a sum of B products delta^l[n, i] z^(l-1)[n, j], and of db^l a sum
    of B deltas. If B max|delta^l| max(1, max|z^(l-1)|) stays below 1e37 for every layer, no
    product or partial sum can overflow even in float32, so no NaN can appear: that bound costs
    O(B (M^0 + U)), against a full scan of the n_params gradient (11.6 us from NumPy, 13.8 us
    compiled for [784,128,10]: memory-bound, ~19% of a B = 1 call). Otherwise (huge or
    non-finite activations) the whole gradient is scanned.
    """
    B = X.shape[0]
    L = sizes.shape[0] - 1
    zmax = _max_abs(X.reshape((X.shape[0] * X.shape[1],)))
    u0 = 0
    for l in range(1, L + 1):
        m = sizes[l]
        dmax = _max_abs(A[B * u0 : B * (u0 + m)])
        if not (B * dmax * max(zmax, 1.0) < 1e37):
            return _has_nan(grad)
        zmax = _max_abs(Z[B * u0 : B * (u0 + m)])
        u0 += m
    return False


@kernel
def _check_finite(X, Y):
    """Raise ValueError naming X or Y if it holds NaN or Inf; O(B (M^0 + M^L)), before any work."""
    if not _all_finite(X):
        raise ValueError("X: expected finite values, found NaN or Inf")
    if not _all_finite(Y):
        raise ValueError("Y: expected finite values, found NaN or Inf")


@kernel
def _ld(B):
    """Row stride of the transposed blocks in Z: B rounded up to 8, plus 8.

    A power-of-two stride (B = 256 in float64 is 2 KiB) maps the rows a tile reads to a few
    L1 sets, and the forward nest ran at half speed from the conflict misses.
    """
    return (B + 7) // 8 * 8 + 8


@kernel
def _block(buf, B, u0, m):
    """The (B, m) row-major block of a flat workspace buffer that starts at B * u0."""
    return buf[B * u0 : B * (u0 + m)].reshape((B, m))


@kernel
def _thread_block(m, work):
    """Rows or columns per parallel task for a layer product, or 0 to run it serially.

    Up to _TASKS blocks, whatever the thread count: numba.get_num_threads() inside a kernel
    makes it impossible to cache on disk, and Numba's static schedule hands each thread a
    contiguous run of blocks anyway.
    """
    if work < PARALLEL_MIN_WORK or m < 2 * _BLOCK_ALIGN:
        return 0
    chunk = (m + _TASKS - 1) // _TASKS
    return (chunk + _BLOCK_ALIGN - 1) // _BLOCK_ALIGN * _BLOCK_ALIGN


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
    if B >= LANES:  # below one tile of samples the forward nest never reads X^T
        # k outer: contiguous writes, 32..B strided read streams (7 against 17 us at B = 32).
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
        chunk = _thread_block(m_out, B * m_in * m_out)
        if chunk > 0:
            forward_rows_parallel(theta, w0, b0, codes[l], zin, zinT, a, z, zT, chunk, derivative)
        else:
            forward_rows(theta, w0, b0, codes[l], zin, zinT, a, z, zT, 0, m_out, derivative)
        zin = z
        zinT = zT
        t0 += m_out * ld
        w0 = b0 + m_out
        if l < L - 1:
            u0 += m_out
    return u0


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
    u0 = _forward_all(theta, sizes, codes, X, A, Z, False)
    zL = _block(Z, B, u0, m)
    for n in range(B):
        for i in range(m):
            out[n, i] = zL[n, i]


@kernel
def _loss_unchecked(theta, sizes, codes, X, Y, A, Z):
    B = X.shape[0]
    m = Y.shape[1]
    u0 = _forward_all(theta, sizes, codes, X, A, Z, False)
    zL = _block(Z, B, u0, m)
    total = 0.0
    for n in range(B):
        for i in range(m):
            r = np.float64(zL[n, i]) - np.float64(Y[n, i])
            total += 0.5 * (r * r)
    return total


@kernel
def loss(theta, sizes, codes, X, Y, A, Z):
    """Loss sum_n 1/2 ||f(x_n, theta) - y_n||^2 (float64) by one forward pass."""
    _check_arguments(theta, sizes, codes, X, A, Z)
    if Y.shape[0] != X.shape[0] or Y.shape[1] != sizes[sizes.shape[0] - 1]:
        raise ValueError("kernels: Y must have shape (B, sizes[-1])")
    _check_finite(X, Y)
    return _loss_unchecked(theta, sizes, codes, X, Y, A, Z)


@kernel
def output_delta(a, z, Y):
    """delta^L = (z^L - y) * h'(a^L), written over the h'(a^L) that the forward pass left in a;
    returns sum of 1/2 ||z^L - y||^2.

    The loss is accumulated in float64 whatever the network's dtype, in sample order.
    """
    B, m = a.shape
    total = 0.0
    for n in range(B):
        for i in range(m):
            # In float64 whatever the dtype (Numba's float() keeps float32): a float32
            # residual above 1.8e19 squares to a finite float64 loss, not to inf.
            r = np.float64(z[n, i]) - np.float64(Y[n, i])
            total += 0.5 * (r * r)
            a[n, i] = r * a[n, i]
    return total


@kernel
def _layer_gradient(delta, zin, w0, b0, grad):
    """dW = delta^T zin (tiled, threaded above the work threshold) and db = sum_n delta[n].

    Every entry is summed over samples in order, first sample assigned: no zeroing pass, and
    the same bits for any thread count. The bias sum runs along contiguous rows of delta.
    """
    B, m_out = delta.shape
    m_in = zin.shape[1]
    if B == 0:
        for k in range(w0, b0 + m_out):
            grad[k] = 0.0
        return
    chunk = _thread_block(m_out, B * m_in * m_out)
    if chunk > 0:
        weight_gradient_rows_parallel(delta, zin, w0, grad, chunk)
    else:
        weight_gradient_rows(delta, zin, w0, grad, 0, m_out)
    for i in range(m_out):
        grad[b0 + i] = delta[0, i]
    for n in range(1, B):
        for i in range(m_out):
            grad[b0 + i] += delta[n, i]


#: Networks with at most this many parameters take :func:`_single_sample` for B = 1.
TINY_PARAMS = 2048


@kernel
def _single_sample(theta, sizes, codes, x, y, A, Z, tmp, grad):
    """Loss and gradient for one sample of a tiny network, fused in one plain loop nest.

    For a few dozen weights the tiled path is all set-up (views, tails, a call per layer):
    measured 1.2 us inside the kernel for [2, 16, 1], against 0.3 us for these loops.
    Forward: a = W z + b summed in k order, h and h' from one exponential; backward: each
    row of W is read once to write its dW row (outer product) and add into delta^(l-1).
    """
    L = sizes.shape[0] - 1
    w0 = 0
    u0 = 0
    for l in range(L):
        m_in = sizes[l]
        m_out = sizes[l + 1]
        b0 = w0 + m_out * m_in
        for i in range(m_out):
            p = w0 + i * m_in
            s = theta[b0 + i]
            for k in range(m_in):
                s += theta[p + k] * (x[k] if l == 0 else Z[u0 - m_in + k])
            h, d = activation_and_derivative(codes[l], s)
            A[u0 + i] = d
            Z[u0 + i] = h
        w0 = b0 + m_out
        u0 += m_out
    # Output delta and loss (float64, in order).
    m = sizes[L]
    u0 -= m
    total = 0.0
    for i in range(m):
        r = np.float64(Z[u0 + i]) - np.float64(y[i])  # float64: see output_delta
        total += 0.5 * (r * r)
        A[u0 + i] = r * A[u0 + i]
    w_end = theta.shape[0]
    for l in range(L, 0, -1):
        m_in = sizes[l - 1]
        m_out = sizes[l]
        b0 = w_end - m_out
        w0 = b0 - m_out * m_in
        u_prev = u0 - m_in
        for k in range(m_in):
            tmp[k] = 0.0
        for i in range(m_out):
            d = A[u0 + i]
            p = w0 + i * m_in
            for k in range(m_in):
                grad[p + k] = d * (x[k] if l == 1 else Z[u_prev + k])
                tmp[k] += theta[p + k] * d
            grad[b0 + i] = d
        if l > 1:
            for k in range(m_in):
                A[u_prev + k] = tmp[k] * A[u_prev + k]
        u0 = u_prev
        w_end = w0
    return total


@kernel
def _single_sample_flat(theta, meta, x, y, buf, grad):
    """:func:`_single_sample` for 1-D x and y, with six array arguments instead of nine.

    The entry :class:`fastbp.MLP` uses for one sample of a tiny network: every array argument
    costs ~0.1-0.15 us of boxing per call and a reshape of x and y another ~0.3 us each, which is
    most of a [2, 16, 1] call. ``meta`` is ``sizes`` then ``codes``; ``buf`` holds a, z (U each)
    then the delta row (max(sizes)). Shapes and dtypes are the caller's to check; NaN/Inf in
    x or y raise ValueError before any work. Returns NaN when the gradient holds a NaN.
    """
    L = (meta.shape[0] - 1) // 2
    sizes = meta[: L + 1]
    codes = meta[L + 1 :]
    units = 0
    for l in range(1, L + 1):
        units += sizes[l]
    if not _all_finite(x.reshape((1, x.shape[0]))):
        raise ValueError("X: expected finite values, found NaN or Inf")
    if not _all_finite(y.reshape((1, y.shape[0]))):
        raise ValueError("Y: expected finite values, found NaN or Inf")
    A = buf[:units]
    Z = buf[units : 2 * units]
    tmp = buf[2 * units :]
    total = _single_sample(theta, sizes, codes, x, y, A, Z, tmp, grad)
    # NaN in the gradient (an overflow met its opposite) is reported as a NaN loss: the caller
    # (MLP.loss_and_grad) then raises FloatingPointError without another pass over grad.
    return np.nan if _has_nan(grad) else total


@kernel
def loss_and_grad(theta, sizes, codes, X, Y, A, Z, tmp, grad):
    """Loss (returned, float64) and its gradient with respect to theta (into ``grad``).

    Forward pass (eqs. 2-4 of the seed), then the backward recursion (eq. 12): delta^L at the
    output, then for l = L..1 the outer-product gradient dW^l = delta^l z^(l-1)^T, db^l = delta^l
    (eqs. 10-11, summed over samples) and delta^(l-1) = (W^l^T delta^l) * h'(a^(l-1)).

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
    _check_finite(X, Y)
    B = X.shape[0]
    if B == 1 and theta.shape[0] <= TINY_PARAMS:
        total = _single_sample(theta, sizes, codes, X[0], Y[0], A, Z, tmp, grad)
        return np.nan if _has_nan(grad) else total  # tiny: the full scan is cheap
    ld = _ld(B)
    units = 0
    for l in range(1, L + 1):
        units += sizes[l]
    t_base = B * units + ld * sizes[0]  # the transposed z^1 in Z (see _forward_all)
    scratch = tmp[maxw : maxw + _TASKS * PACK]
    u0 = _forward_all(theta, sizes, codes, X, A, Z, True)
    total = output_delta(_block(A, B, u0, sizes[L]), _block(Z, B, u0, sizes[L]), Y)
    # Walk the layers backwards; w_end is the offset just past layer l's parameters.
    w_end = theta.shape[0]
    for l in range(L, 0, -1):
        m_in = sizes[l - 1]
        m_out = sizes[l]
        b0 = w_end - m_out
        w0 = b0 - m_out * m_in
        delta = _block(A, B, u0, m_out)
        if l > 1:
            u_prev = u0 - m_in
            zin = _block(Z, B, u_prev, m_in)
        else:
            u_prev = 0
            zin = X
        _layer_gradient(delta, zin, w0, b0, grad)
        if l > 1:
            a_prev = _block(A, B, u_prev, m_in)
            # The transposed z^(l-1) is dead once the forward pass is done: it holds the raw
            # sums of the delta tiles until the h' epilogue scales them into a_prev.
            t_prev = t_base + ld * u_prev
            acc = Z[t_prev : t_prev + B * m_in].reshape((B, m_in))
            chunk = _thread_block(m_in, B * m_in * m_out)
            if chunk > 0:
                delta_columns_parallel(theta, w0, delta, codes[l - 2], a_prev, acc, scratch, chunk)
            else:
                delta_columns(theta, w0, delta, codes[l - 2], a_prev, acc, scratch[:PACK], 0, m_in)
        u0 = u_prev
        w_end = w0
    # A NaN in the gradient (overflowed contributions of opposite sign met) makes the returned
    # loss NaN too, so one check of the loss covers both.
    if _gradient_may_be_nan(sizes, X, A, Z, grad):
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
# Workspace helpers (plain Python: they allocate, once).
# --------------------------------------------------------------------------------------------
def workspace_lengths(sizes, batch: int) -> tuple[int, int]:
    """Lengths ``(len(A) == len(Z), len(tmp))`` needed for ``batch`` samples of ``sizes``.

    ``len(Z) = B U + ld (U + M^0)`` with ``U = sum(sizes[1:])`` and ``ld = 8 ceil(B / 8) + 8``:
    Z also holds the transposed input and activations the forward tiles read. A needs only
    ``B U`` but gets the same length, so one number describes both (as before the tiles).
    ``len(tmp) = max(sizes) + 8 PACK``: the packed weight blocks of the delta tiles.
    """
    sizes = [int(m) for m in sizes]
    batch = int(batch)
    units = sum(sizes[1:])
    ld = (batch + 7) // 8 * 8 + 8
    return batch * units + ld * (units + sizes[0]), max(sizes) + _TASKS * PACK


def make_workspace(sizes, batch: int, dtype=np.float64):
    """Allocate the buffers ``(A, Z, tmp)`` the drivers need for up to ``batch`` samples.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[M^0, ..., M^L]``.
    batch : int
        Largest number of samples per call.
    dtype : numpy dtype
        The network's dtype (float32 or float64).

    Returns
    -------
    A, Z, tmp : ndarray
        Zero-filled 1-D buffers of the lengths given by :func:`workspace_lengths`.
    """
    n_units, n_tmp = workspace_lengths(sizes, batch)
    return (
        np.zeros(n_units, dtype=dtype),
        np.zeros(n_units, dtype=dtype),
        np.zeros(n_tmp, dtype=dtype),
    )


def uses_threads(sizes, batch: int) -> bool:
    """Whether a driver call for ``batch`` samples of ``sizes`` may run ``prange`` loops.

    True when some layer product reaches :data:`PARALLEL_MIN_WORK` multiply-adds (whatever
    the thread count: a parallel region goes through Numba's thread pool even with one thread).
    The Python layer holds :data:`fastbp._jit.PARALLEL_LOCK` around such calls.
    """
    batch = int(batch)
    return any(batch * m_in * m_out >= PARALLEL_MIN_WORK for m_in, m_out in zip(sizes, sizes[1:]))
