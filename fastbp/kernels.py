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
A, Z : ndarray, shape (>= B * U,), ``U = sum(sizes[1:])``
    Workspace: the pre-activations ``a^l`` and activations ``z^l`` of every layer, layer ``l``
    stored as a row-major ``(B, M^l)`` block starting at ``B * (M^1 + ... + M^(l-1))``.
    After :func:`loss_and_grad`, the block of layer ``l`` in ``A`` holds ``delta^l``.
tmp : ndarray, shape (>= max(sizes),)
    Scratch row for the delta recursion.

Shapes are checked at the start of each driver (O(L) work) and a ``ValueError`` is raised on a
mismatch, so a wrong buffer never reads or writes out of bounds.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import kernel

__all__ = [
    "finite_difference",
    "forward",
    "loss",
    "loss_and_grad",
    "make_workspace",
    "workspace_lengths",
]

# Activation codes, in the order of fastbp.activations.ACTIVATIONS (a test checks they agree).
SIGMOID = 0
TANH = 1
RELU = 2
LEAKY_RELU = 3
SOFTPLUS = 4
IDENTITY = 5
LEAKY_SLOPE = 0.01


# --------------------------------------------------------------------------------------------
# Scalar activations. Only exp of a non-positive argument is ever taken, so nothing overflows.
# --------------------------------------------------------------------------------------------
@kernel
def activation(code, a):
    """h(a) for the activation with integer ``code``."""
    if code == SIGMOID:
        if a >= 0:
            return 1.0 / (1.0 + math.exp(-a))
        e = math.exp(a)
        return e / (1.0 + e)
    if code == TANH:
        return math.tanh(a)
    if code == RELU:
        return a if a > 0 else 0.0
    if code == LEAKY_RELU:
        return a if a > 0 else LEAKY_SLOPE * a
    if code == SOFTPLUS:
        # log(1 + e^a) = max(a, 0) + log1p(e^-|a|): exact form, no threshold approximation.
        return max(a, 0.0) + math.log1p(math.exp(-abs(a)))
    return a


@kernel
def activation_derivative(code, a):
    """h'(a) for the activation with integer ``code``, computed from the pre-activation.

    Computing from ``a`` (not from ``z = h(a)``) keeps full relative accuracy where ``h``
    saturates: ``z (1 - z)`` is exactly 0 once ``z`` rounds to 1, while ``e^-|a| / (1 + e^-|a|)^2``
    stays accurate down to the underflow limit.
    """
    if code == SIGMOID:
        e = math.exp(-abs(a))
        return e / ((1.0 + e) * (1.0 + e))
    if code == SOFTPLUS:
        return activation(SIGMOID, a)
    if code == TANH:
        e = math.exp(-2.0 * abs(a))
        return 4.0 * e / ((1.0 + e) * (1.0 + e))
    if code == RELU:
        return 1.0 if a > 0 else 0.0
    if code == LEAKY_RELU:
        return 1.0 if a > 0 else LEAKY_SLOPE
    return 1.0


# --------------------------------------------------------------------------------------------
# Layer kernels. W^l and b^l are read straight from the flat theta by offset (no views).
# --------------------------------------------------------------------------------------------
@kernel
def affine_activation(theta, w0, b0, code, zin, a, z):
    """a = zin W^T + b and z = h(a) for one layer, over a batch.

    zin is (B, m_in); a and z are (B, m_out). Loop order: four samples share each row of W, so
    every weight loaded from memory feeds four independent accumulators (four dependency chains
    instead of one; without fastmath LLVM may not reorder a single sum). The activation is
    applied while a[n, i] is still in a register (fused epilogue).
    """
    B, m_in = zin.shape
    m_out = a.shape[1]
    n = 0
    while n + 4 <= B:
        for i in range(m_out):
            row = w0 + i * m_in
            bi = theta[b0 + i]
            s0 = bi
            s1 = bi
            s2 = bi
            s3 = bi
            for j in range(m_in):
                w = theta[row + j]
                s0 += w * zin[n, j]
                s1 += w * zin[n + 1, j]
                s2 += w * zin[n + 2, j]
                s3 += w * zin[n + 3, j]
            a[n, i] = s0
            a[n + 1, i] = s1
            a[n + 2, i] = s2
            a[n + 3, i] = s3
            z[n, i] = activation(code, s0)
            z[n + 1, i] = activation(code, s1)
            z[n + 2, i] = activation(code, s2)
            z[n + 3, i] = activation(code, s3)
        n += 4
    while n < B:
        for i in range(m_out):
            row = w0 + i * m_in
            s = theta[b0 + i]
            for j in range(m_in):
                s += theta[row + j] * zin[n, j]
            a[n, i] = s
            z[n, i] = activation(code, s)
        n += 1


@kernel
def output_delta(code, a, z, Y):
    """delta^L = (z^L - y) * h'(a^L), written over a^L; returns sum of 1/2 ||z^L - y||^2.

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
            a[n, i] = r * activation_derivative(code, a[n, i])
    return total


@kernel
def weight_gradient(delta, zin, w0, b0, grad):
    """dW = sum_n delta[n]^T zin[n] (outer products) and db = sum_n delta[n], into grad.

    The first sample assigns and later ones accumulate, so grad needs no zeroing pass; the
    inner loop runs along a contiguous row of dW and of zin (an axpy, which LLVM vectorizes
    without reassociation). Samples are summed in order: results do not depend on threads.
    """
    B, m_out = delta.shape
    m_in = zin.shape[1]
    if B == 0:
        for k in range(w0, b0 + m_out):
            grad[k] = 0.0
        return
    for i in range(m_out):
        row = w0 + i * m_in
        d = delta[0, i]
        for j in range(m_in):
            grad[row + j] = d * zin[0, j]
        db = d
        for n in range(1, B):
            d = delta[n, i]
            for j in range(m_in):
                grad[row + j] += d * zin[n, j]
            db += d
        grad[b0 + i] = db


@kernel
def backpropagate_delta(theta, w0, delta, code_prev, a_prev, tmp):
    """delta^(l-1) = (W^l^T delta^l) * h'(a^(l-1)), written over a^(l-1).

    For each sample, rows of W^l are added into tmp scaled by delta (contiguous axpy), then the
    activation derivative is applied as tmp is copied out.
    """
    B, m_out = delta.shape
    m_in = a_prev.shape[1]
    for n in range(B):
        for j in range(m_in):
            tmp[j] = 0.0
        for i in range(m_out):
            d = delta[n, i]
            row = w0 + i * m_in
            for j in range(m_in):
                tmp[j] += theta[row + j] * d
        for j in range(m_in):
            a_prev[n, j] = tmp[j] * activation_derivative(code_prev, a_prev[n, j])


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
    if A.shape[0] < X.shape[0] * units or Z.shape[0] < X.shape[0] * units:
        raise ValueError("kernels: workspace A, Z shorter than B * sum(sizes[1:])")


@kernel
def _block(buf, B, u0, m):
    """The (B, m) row-major block of a flat workspace buffer that starts at B * u0."""
    return buf[B * u0 : B * (u0 + m)].reshape((B, m))


@kernel
def _forward_all(theta, sizes, codes, X, A, Z):
    """Forward pass through every layer; returns the unit offset of the output layer."""
    B = X.shape[0]
    L = sizes.shape[0] - 1
    w0 = 0
    u0 = 0
    zin = X
    for l in range(L):
        m_in = sizes[l]
        m_out = sizes[l + 1]
        b0 = w0 + m_out * m_in
        a = _block(A, B, u0, m_out)
        z = _block(Z, B, u0, m_out)
        affine_activation(theta, w0, b0, codes[l], zin, a, z)
        zin = z
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
    B = X.shape[0]
    m = out.shape[1]
    u0 = _forward_all(theta, sizes, codes, X, A, Z)
    zL = _block(Z, B, u0, m)
    for n in range(B):
        for i in range(m):
            out[n, i] = zL[n, i]


@kernel
def _loss_unchecked(theta, sizes, codes, X, Y, A, Z):
    B = X.shape[0]
    m = Y.shape[1]
    u0 = _forward_all(theta, sizes, codes, X, A, Z)
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
    return _loss_unchecked(theta, sizes, codes, X, Y, A, Z)


@kernel
def loss_and_grad(theta, sizes, codes, X, Y, A, Z, tmp, grad):
    """Loss (returned, float64) and its gradient with respect to theta (into ``grad``).

    Forward pass (eqs. 2-4 of the seed), then the backward recursion (eq. 12): delta^L at the
    output, then for l = L..1 the outer-product gradient dW^l = delta^l z^(l-1)^T, db^l = delta^l
    (eqs. 10-11, summed over samples) and delta^(l-1) = (W^l^T delta^l) * h'(a^(l-1)).
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
    if tmp.shape[0] < maxw:
        raise ValueError("kernels: tmp shorter than max(sizes)")
    B = X.shape[0]
    u0 = _forward_all(theta, sizes, codes, X, A, Z)
    total = output_delta(codes[L - 1], _block(A, B, u0, sizes[L]), _block(Z, B, u0, sizes[L]), Y)
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
        weight_gradient(delta, zin, w0, b0, grad)
        if l > 1:
            backpropagate_delta(theta, w0, delta, codes[l - 2], _block(A, B, u_prev, m_in), tmp)
        u0 = u_prev
        w_end = w0
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
    """Lengths ``(len(A) == len(Z), len(tmp))`` needed for ``batch`` samples of ``sizes``."""
    sizes = [int(m) for m in sizes]
    return int(batch) * sum(sizes[1:]), max(sizes)


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
        Zero-filled 1-D buffers of lengths ``batch * sum(sizes[1:])`` (A and Z) and
        ``max(sizes)`` (tmp).
    """
    n_units, n_tmp = workspace_lengths(sizes, batch)
    return (
        np.zeros(n_units, dtype=dtype),
        np.zeros(n_units, dtype=dtype),
        np.zeros(n_tmp, dtype=dtype),
    )
