"""Derivatives with respect to the input: input gradient, vector-Jacobian and Jacobian-vector
products, and the whole input Jacobian, compiled (public as :mod:`fastbp.kernels`).

Each is the seed's recursion (docs/maths.md, eqs. 6-9) started from another seed vector:

- reverse (pull cotangents back): ``delta^L = u * h'(a^L)``, ``delta^(l-1) = (W^l^T delta^l)
  * h'(a^(l-1))``, and the last step ``u J = W^1^T delta^1`` (no ``h'``: ``z^0 = x``). With
  ``u = f(x) - y`` it is ``dL/dx`` (:func:`input_grad`), with a given ``u`` :func:`vjp`, and
  with the ``M^L`` unit vectors ``e_i`` the rows of the Jacobian (``jacobian``, reverse mode);
- forward (push tangents): ``t^0 = v``, ``t^l = h'(a^l) * (W^l t^(l-1))``, ``J v = t^L``
  (:func:`jvp`; with the ``M^0`` unit vectors the columns of the Jacobian, forward mode).

The layout: a driver first runs the forward pass over the batch (:func:`_forward_rows`, with
``_plain_affine`` and ``_activate_units``: the tiled drivers' bits, so ``F`` equals
``forward``'s output and :func:`input_grad`'s loss equals ``loss``'s), which leaves ``z^l``
in ``Z`` and ``h'(a^l)`` in ``A`` (the block layout of :func:`fastbp.kernels.make_workspace`),
then the per-sample recursion. Sample ``b`` of a Jacobian owns the ``P`` rows ``b P .. b P + P -
1`` of the tangent buffer ``T`` (``P = M^0`` forward, ``M^L`` reverse), a matrix per layer, so
every loop is over rows, the same code for each sample, whoever runs it.

Threads: the public drivers split the forward pass over blocks of :data:`FORWARD_BLOCK`
samples (a multiple of the forward tiles' 32, so ``_plain_affine`` sums every sample as the
whole-batch call does) and the recursion over blocks of :data:`ROW_BLOCK` samples, each task
writing only its own samples' rows: the same bits for any thread count. Their serial twins
(``_<name>_serial``) compile no parfor. Every sum runs over its reduction index in order, first
term assigned, with explicit fused multiply-adds; a non-finite sum becomes NaN
(``s * (1 + (s - s))``, the delta epilogue's guard), so an overflow is reported, never a
silent ``inf``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import fma, kernel, twins
from .checks import _all_finite, _check_arguments
from .layers import _activate_units, _scale
from .plain import _plain_affine, _plain_delta
from .workspace import _block

__all__ = ["FORWARD_BLOCK", "ROW_BLOCK", "input_grad", "jacobian", "jvp", "tangent_length", "vjp"]

#: Samples per task of the threaded forward pass: a multiple of the forward tiles' 32 samples.
FORWARD_BLOCK = 64
#: Samples per task of the threaded recursions (the tangent rows of a Jacobian are many).
ROW_BLOCK = 8
# Whether the drivers may call their prange kernels (False in the serial twins).
_THREADS = True


# --------------------------------------------------------------------------------------------
# Pieces: the forward pass of a block of samples, and the row loops of the recursions.
# --------------------------------------------------------------------------------------------
@kernel
def _forward_rows(theta, sizes, codes, X, A, Z, lo, hi):
    """Forward pass of samples lo..hi: z^l into Z and h'(a^l) into A (rows of each block)."""
    B = X.shape[0]
    L = sizes.shape[0] - 1
    w0 = 0
    u0 = 0
    zin = X[lo:hi]
    for l in range(L):
        m_in = sizes[l]
        m_out = sizes[l + 1]
        b0 = w0 + m_out * m_in
        z = _block(Z, B, u0, m_out)[lo:hi]
        _plain_affine(theta, w0, b0, zin, z)
        # The sums a^l in Z (rows lo..hi of the block, contiguous in the flat Z) -> h(a) in
        # place, h'(a) into the same entries of A.
        _activate_units(codes[l], A, Z, B * u0 + lo * m_out, (hi - lo) * m_out)
        zin = z
        w0 = b0 + m_out
        u0 += m_out


@kernel(parallel=True)
def _forward_parallel(theta, sizes, codes, X, A, Z):
    """:func:`_forward_rows` over blocks of FORWARD_BLOCK samples, one task each."""
    B = X.shape[0]
    n = (B + FORWARD_BLOCK - 1) // FORWARD_BLOCK
    for c in prange(n):
        lo = c * FORWARD_BLOCK
        _forward_rows(theta, sizes, codes, X, A, Z, lo, min(B, lo + FORWARD_BLOCK))


@kernel(inline="always")
def _forward(theta, sizes, codes, X, A, Z):
    """The forward pass of the whole batch, threaded over sample blocks when allowed."""
    B = X.shape[0]
    if _THREADS and B > FORWARD_BLOCK:
        _forward_parallel(theta, sizes, codes, X, A, Z)
    else:
        _forward_rows(theta, sizes, codes, X, A, Z, 0, B)


@kernel
def _linear(theta, w0, t_in, t_out):
    """t_out[r, i] = sum_k W[i, k] t_in[r, k] (no bias), in k order, first term assigned.

    Four rows of W at once: four independent chains of fused multiply-adds (each still
    sequential over k), as in ``_plain_affine``.
    """
    R, m_in = t_in.shape
    m_out = t_out.shape[1]
    r4 = m_out - m_out % 4
    for r in range(R):
        x = t_in[r]
        o = t_out[r]
        for i in range(0, r4, 4):
            p = w0 + i * m_in
            wa = theta[p : p + m_in]
            wb = theta[p + m_in : p + 2 * m_in]
            wc = theta[p + 2 * m_in : p + 3 * m_in]
            wd = theta[p + 3 * m_in : p + 4 * m_in]
            x0 = x[0]
            sa = wa[0] * x0
            sb = wb[0] * x0
            sc = wc[0] * x0
            sd = wd[0] * x0
            for k in range(1, m_in):
                xk = x[k]
                sa = fma(wa[k], xk, sa)
                sb = fma(wb[k], xk, sb)
                sc = fma(wc[k], xk, sc)
                sd = fma(wd[k], xk, sd)
            o[i] = sa
            o[i + 1] = sb
            o[i + 2] = sc
            o[i + 3] = sd
        for i in range(r4, m_out):
            p = w0 + i * m_in
            w = theta[p : p + m_in]
            s = w[0] * x[0]
            for k in range(1, m_in):
                s = fma(w[k], x[k], s)
            o[i] = s


@kernel
def _scale_rows(t, hp, P):
    """t[b P + p, i] *= h'[b, i] for the P rows of each sample b of hp, a non-finite sum -> NaN.

    The expression of ``layers._scale`` (the delta epilogue), row by row of a tangent matrix.
    """
    one = t.dtype.type(1.0)
    for b in range(hp.shape[0]):
        h = hp[b]
        for p in range(P):
            row = t[b * P + p]
            for i in range(row.shape[0]):
                s = row[i]
                row[i] = s * h[i] * (one + (s - s))


@kernel
def _guard(t):
    """Non-finite entries of the 2-D t -> NaN (``s * (1 + (s - s))``): an overflow is reported."""
    one = t.dtype.type(1.0)
    for r in range(t.shape[0]):
        row = t[r]
        for i in range(row.shape[0]):
            s = row[i]
            row[i] = s * (one + (s - s))


# --------------------------------------------------------------------------------------------
# The recursions of a block of samples lo..hi (after the forward pass).
# --------------------------------------------------------------------------------------------
@kernel
def _pullback_rows(theta, sizes, X, S, residual, A, Z, out, lo, hi):
    """out[lo:hi] = u J for samples lo..hi: u = f - S (``residual``) or u = S.

    delta^L = u * h'(a^L) (with ``residual`` in float64, as ``output_delta``), then eq. (9)
    down to delta^1 in A, the raw sums of each step in the second half of Z; last
    out = W^1^T delta^1.
    """
    B = X.shape[0]
    L = sizes.shape[0] - 1
    units = 0
    for l in range(1, L + 1):
        units += sizes[l]
    m = sizes[L]
    u0 = units - m
    delta = _block(A, B, u0, m)[lo:hi]
    seed = S[lo:hi]
    if residual:
        zL = _block(Z, B, u0, m)[lo:hi]
        for n in range(hi - lo):
            for i in range(m):
                r = np.float64(zL[n, i]) - np.float64(seed[n, i])
                delta[n, i] = r * delta[n, i]
    else:
        for n in range(hi - lo):
            for i in range(m):
                delta[n, i] = seed[n, i] * delta[n, i]
    w_end = theta.shape[0]
    for l in range(L, 1, -1):
        m_in = sizes[l - 1]
        m_out = sizes[l]
        w0 = w_end - m_out - m_out * m_in
        u_prev = u0 - m_in
        acc = _block(Z[B * units :], B, u_prev, m_in)[lo:hi]
        _plain_delta(theta, w0, delta, acc)
        a_prev = _block(A, B, u_prev, m_in)[lo:hi]
        _scale(acc, a_prev, 0, hi - lo, 0, m_in)
        delta = a_prev
        u0 = u_prev
        w_end = w0
    dx = out[lo:hi]
    _plain_delta(theta, 0, delta, dx)
    _guard(dx)


@kernel(parallel=True)
def _pullback_parallel(theta, sizes, X, S, residual, A, Z, out):
    B = X.shape[0]
    n = (B + ROW_BLOCK - 1) // ROW_BLOCK
    for c in prange(n):
        lo = c * ROW_BLOCK
        _pullback_rows(theta, sizes, X, S, residual, A, Z, out, lo, min(B, lo + ROW_BLOCK))


@kernel
def _push_rows(theta, sizes, X, V, A, Z, out, lo, hi):
    """out[lo:hi] = J v for samples lo..hi: t^l = h'(a^l) * (W^l t^(l-1)), t^0 = v.

    t^l for l < L lives in the second half of Z, laid out like A (its rows lo..hi).
    """
    B = X.shape[0]
    L = sizes.shape[0] - 1
    units = 0
    for l in range(1, L + 1):
        units += sizes[l]
    tin = V[lo:hi]
    w0 = 0
    u0 = 0
    for l in range(L):
        m_in = sizes[l]
        m_out = sizes[l + 1]
        t = out[lo:hi] if l == L - 1 else _block(Z[B * units :], B, u0, m_out)[lo:hi]
        _linear(theta, w0, tin, t)
        _scale_rows(t, _block(A, B, u0, m_out)[lo:hi], 1)
        tin = t
        w0 += m_out * m_in + m_out
        u0 += m_out


@kernel(parallel=True)
def _push_parallel(theta, sizes, X, V, A, Z, out):
    B = X.shape[0]
    n = (B + ROW_BLOCK - 1) // ROW_BLOCK
    for c in prange(n):
        lo = c * ROW_BLOCK
        _push_rows(theta, sizes, X, V, A, Z, out, lo, min(B, lo + ROW_BLOCK))


@kernel
def _jacobian_rows(theta, sizes, X, A, T, forward, J, lo, hi):
    """J[lo:hi]: sample b's ``P`` tangent (forward) or cotangent (reverse) rows through the net.

    Forward, P = M^0: the rows of t^1 = diag(h'(a^1)) W^1 are the columns of W^1 scaled
    (the unit tangents need no product), then t^l = h'(a^l) * (t^(l-1) W^l^T) per row, and
    J[b, i, j] = t^L[b P + j, i]. Reverse, P = M^L: s = diag(h'(a^L)) W^L, row i scaled by
    h'(a^L)_i (the unit cotangents need no product), then s <- (s W^l) * h'(a^(l-1)) per row,
    and the last product s W^1 is written into J's rows.

    The two halves of T alternate per layer; in each, the block's matrices start at
    ``lo P max(M^l)`` whatever the layer's width, so blocks running at different layers on
    different threads never touch each other's entries.
    """
    B = X.shape[0]
    L = sizes.shape[0] - 1
    M0 = sizes[0]
    ML = sizes[L]
    maxw = 0
    for l in range(1, L + 1):
        maxw = max(maxw, sizes[l])
    nb = hi - lo
    half = T.shape[0] // 2
    one = J.dtype.type(1.0)
    P = M0 if forward else ML
    off = lo * P * maxw
    rows = nb * P
    base = 0
    if forward:
        m = sizes[1]
        t = T[off : off + rows * m].reshape((rows, m))
        hp = _block(A, B, 0, m)[lo:hi]
        for n in range(nb):
            h = hp[n]
            for j in range(P):
                row = t[n * P + j]
                for i in range(m):
                    s = h[i] * theta[i * M0 + j]
                    row[i] = s * (one + (s - s))
        w0 = m * M0 + m
        u0 = m
        for l in range(2, L + 1):
            m_in = sizes[l - 1]
            m = sizes[l]
            base = half - base
            tn = T[base + off : base + off + rows * m].reshape((rows, m))
            _linear(theta, w0, t, tn)
            _scale_rows(tn, _block(A, B, u0, m)[lo:hi], P)
            t = tn
            w0 += m * m_in + m
            u0 += m
        for n in range(nb):
            Jb = J[lo + n]
            for j in range(P):
                row = t[n * P + j]
                for i in range(ML):
                    Jb[i, j] = row[i]
        return
    units = 0
    for l in range(1, L + 1):
        units += sizes[l]
    u0 = units - ML
    hL = _block(A, B, u0, ML)[lo:hi]
    Jr = J.reshape((B * P, M0))[lo * P : hi * P]
    if L == 1:
        for n in range(nb):
            h = hL[n]
            for i in range(P):
                row = Jr[n * P + i]
                w = theta[i * M0 : (i + 1) * M0]
                for k in range(M0):
                    s = h[i] * w[k]
                    row[k] = s * (one + (s - s))
        return
    m_in = sizes[L - 1]
    w0 = theta.shape[0] - ML - ML * m_in
    u_prev = u0 - m_in
    s_rows = T[off : off + rows * m_in].reshape((rows, m_in))
    hprev = _block(A, B, u_prev, m_in)[lo:hi]
    for n in range(nb):
        h = hL[n]
        g = hprev[n]
        for i in range(P):
            row = s_rows[n * P + i]
            w = theta[w0 + i * m_in : w0 + (i + 1) * m_in]
            for k in range(m_in):
                s = h[i] * w[k]
                row[k] = s * g[k] * (one + (s - s))
    u0 = u_prev
    w_end = w0
    for l in range(L - 1, 1, -1):
        m_out = sizes[l]
        m_in = sizes[l - 1]
        w0 = w_end - m_out - m_out * m_in
        u_prev = u0 - m_in
        base = half - base
        sn = T[base + off : base + off + rows * m_in].reshape((rows, m_in))
        _plain_delta(theta, w0, s_rows, sn)
        _scale_rows(sn, _block(A, B, u_prev, m_in)[lo:hi], P)
        s_rows = sn
        u0 = u_prev
        w_end = w0
    _plain_delta(theta, 0, s_rows, Jr)
    _guard(Jr)


@kernel(parallel=True)
def _jacobian_parallel(theta, sizes, X, A, T, forward, J):
    B = X.shape[0]
    n = (B + ROW_BLOCK - 1) // ROW_BLOCK
    for c in prange(n):
        lo = c * ROW_BLOCK
        _jacobian_rows(theta, sizes, X, A, T, forward, J, lo, min(B, lo + ROW_BLOCK))


# --------------------------------------------------------------------------------------------
# Checks and sizes.
# --------------------------------------------------------------------------------------------
@kernel(inline="always")
def _bad_shape(S, B, width):
    """Whether the 2-D S is not of shape (B, width)."""
    return S.shape[0] != B or S.shape[1] != width


def tangent_length(sizes, batch: int, forward: bool) -> int:
    """Length of the buffer ``T`` that :func:`jacobian` needs for ``batch`` samples.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[M^0, ..., M^L]``.
    batch : int
        Number of samples ``B``.
    forward : bool
        The mode: True pushes ``P = M^0`` tangents, False pulls ``P = M^L`` cotangents.

    Returns
    -------
    int
        ``2 B P max(M^1, ..., M^L)``: two tangent matrices of ``P`` rows per sample, which
        the layers alternate between.
    """
    sizes = [int(m) for m in sizes]
    P = sizes[0] if forward else sizes[-1]
    return 2 * int(batch) * P * max(sizes[1:])


# --------------------------------------------------------------------------------------------
# Public drivers.
# --------------------------------------------------------------------------------------------
@kernel
def input_grad(theta, sizes, codes, X, Y, A, Z, dX):
    """Loss (returned, float64) and its gradient with respect to the inputs, ``dX`` (B, M^0).

    ``dX[b] = W^1^T delta^1_b``: the backward recursion of :func:`loss_and_grad` (eqs. 8-9)
    carried one step further, to ``z^0 = x``, with no weight gradient. ``A`` and ``Z`` are the
    workspace of :func:`make_workspace`. Non-finite entries of ``dX`` are NaN (an overflow).
    """
    _check_arguments(theta, sizes, codes, X, A, Z)
    B = X.shape[0]
    L = sizes.shape[0] - 1
    if _bad_shape(Y, B, sizes[L]):
        raise ValueError("kernels: Y must have shape (B, sizes[-1])")
    if _bad_shape(dX, B, sizes[0]):
        raise ValueError("kernels: dX must have shape (B, sizes[0])")
    if not _all_finite(X):
        raise ValueError("X: expected finite values, found NaN or Inf")
    if not _all_finite(Y):
        raise ValueError("Y: expected finite values, found NaN or Inf")
    _forward(theta, sizes, codes, X, A, Z)
    units = 0
    for l in range(1, L + 1):
        units += sizes[l]
    # The loss before the backward pass overwrites h'(a^L) (z^L stays), in sample order.
    zL = _block(Z, B, units - sizes[L], sizes[L])
    total = 0.0
    for n in range(B):
        for i in range(sizes[L]):
            r = np.float64(zL[n, i]) - np.float64(Y[n, i])
            total += 0.5 * (r * r)
    if _THREADS and B > ROW_BLOCK:
        _pullback_parallel(theta, sizes, X, Y, True, A, Z, dX)
    else:
        _pullback_rows(theta, sizes, X, Y, True, A, Z, dX, 0, B)
    return total


@kernel(inline="always")
def _copy_output(sizes, Z, B, F):
    """F = z^L (the output block of Z)."""
    L = sizes.shape[0] - 1
    units = 0
    for l in range(1, L + 1):
        units += sizes[l]
    zL = _block(Z, B, units - sizes[L], sizes[L])
    for n in range(B):
        for i in range(sizes[L]):
            F[n, i] = zL[n, i]


@kernel
def vjp(theta, sizes, codes, X, U, A, Z, F, UJ):
    """Vector-Jacobian products ``UJ[b] = U[b] J_f(x_b)`` (B, M^0) and the outputs ``F`` (B, M^L).

    The backward recursion seeded with ``delta^L = U * h'(a^L)`` (:func:`input_grad` seeds it
    with ``f - y``). Non-finite entries of ``UJ`` are NaN (an overflow).
    """
    _check_arguments(theta, sizes, codes, X, A, Z)
    B = X.shape[0]
    L = sizes.shape[0] - 1
    if _bad_shape(U, B, sizes[L]):
        raise ValueError("kernels: U must have shape (B, sizes[-1])")
    if _bad_shape(F, B, sizes[L]):
        raise ValueError("kernels: F must have shape (B, sizes[-1])")
    if _bad_shape(UJ, B, sizes[0]):
        raise ValueError("kernels: UJ must have shape (B, sizes[0])")
    if not _all_finite(X):
        raise ValueError("X: expected finite values, found NaN or Inf")
    if not _all_finite(U):
        raise ValueError("U: expected finite values, found NaN or Inf")
    _forward(theta, sizes, codes, X, A, Z)
    _copy_output(sizes, Z, B, F)
    if _THREADS and B > ROW_BLOCK:
        _pullback_parallel(theta, sizes, X, U, False, A, Z, UJ)
    else:
        _pullback_rows(theta, sizes, X, U, False, A, Z, UJ, 0, B)


@kernel
def jvp(theta, sizes, codes, X, V, A, Z, F, JV):
    """Jacobian-vector products ``JV[b] = J_f(x_b) V[b]`` (B, M^L) and the outputs ``F`` (B, M^L).

    The forward recursion ``t^0 = v``, ``t^l = h'(a^l) * (W^l t^(l-1))`` beside the forward
    pass (the chain rule of eq. 9 read left to right). Non-finite entries of ``JV`` are NaN.
    """
    _check_arguments(theta, sizes, codes, X, A, Z)
    B = X.shape[0]
    L = sizes.shape[0] - 1
    if _bad_shape(V, B, sizes[0]):
        raise ValueError("kernels: V must have shape (B, sizes[0])")
    if _bad_shape(F, B, sizes[L]):
        raise ValueError("kernels: F must have shape (B, sizes[-1])")
    if _bad_shape(JV, B, sizes[L]):
        raise ValueError("kernels: JV must have shape (B, sizes[-1])")
    if not _all_finite(X):
        raise ValueError("X: expected finite values, found NaN or Inf")
    if not _all_finite(V):
        raise ValueError("V: expected finite values, found NaN or Inf")
    _forward(theta, sizes, codes, X, A, Z)
    _copy_output(sizes, Z, B, F)
    if _THREADS and B > ROW_BLOCK:
        _push_parallel(theta, sizes, X, V, A, Z, JV)
    else:
        _push_rows(theta, sizes, X, V, A, Z, JV, 0, B)


@kernel
def jacobian(theta, sizes, codes, X, A, Z, T, forward, J):
    """The input Jacobian of every sample into J (B, M^L, M^0): ``J[b, i, j] = d f_i(x_b) / d x_j``.

    ``forward`` pushes the ``M^0`` unit tangents through the network (cost per sample
    ``sum_{l>=2} M^0 M^(l-1) M^l``), otherwise the ``M^L`` unit cotangents are pulled back
    (``sum_{l<=L-1} M^L M^(l-1) M^l``); ``T`` holds the tangent matrices, of length at least
    :func:`tangent_length` ``(sizes, B, forward)``. Non-finite entries of J are NaN.
    """
    _check_arguments(theta, sizes, codes, X, A, Z)
    B = X.shape[0]
    L = sizes.shape[0] - 1
    if J.shape[0] != B or J.shape[1] != sizes[L] or J.shape[2] != sizes[0]:
        raise ValueError("kernels: J must have shape (B, sizes[-1], sizes[0])")
    maxw = 0
    for l in range(1, L + 1):
        maxw = max(maxw, sizes[l])
    P = sizes[0] if forward else sizes[L]
    if T.shape[0] < 2 * B * P * maxw:
        raise ValueError("kernels: T too short (see tangent_length)")
    if not _all_finite(X):
        raise ValueError("X: expected finite values, found NaN or Inf")
    _forward(theta, sizes, codes, X, A, Z)
    if _THREADS and B > ROW_BLOCK:
        _jacobian_parallel(theta, sizes, X, A, T, forward, J)
    else:
        _jacobian_rows(theta, sizes, X, A, T, forward, J, 0, B)


# --------------------------------------------------------------------------------------------
# Serial twins: the same drivers without the prange kernels (see drivers.py's twins).
# --------------------------------------------------------------------------------------------
_SERIAL = {**globals(), "_THREADS": False}
(_forward_batch_serial,) = twins((_forward,), _SERIAL, "serial")
(_input_grad_serial, _vjp_serial, _jvp_serial, _jacobian_serial) = twins(
    (input_grad, vjp, jvp, jacobian), _SERIAL, "serial"
)
del _SERIAL
