"""Derivatives with respect to the input: input gradient, vector-Jacobian and Jacobian-vector
products, and the whole input Jacobian, compiled (public as :mod:`fastbp.kernels`).

Each is the seed's recursion (docs/maths.md, eqs. 6-9) started from another seed vector:

- reverse (pull cotangents back): ``delta^L = u * h'(a^L)``, ``delta^(l-1) = (W^l^T delta^l)
  * h'(a^(l-1))``, and the last step ``u J = W^1^T delta^1`` (no ``h'``: ``z^0 = x``). With
  ``u = f(x) - y`` it is ``dL/dx`` (:func:`input_grad`), with a given ``u`` :func:`vjp`, and
  with the ``M^L`` unit vectors ``e_i`` the rows of the Jacobian (``jacobian``, reverse mode);
- forward (push tangents): ``t^0 = v``, ``t^l = h'(a^l) * (W^l t^(l-1))``, ``J v = t^L``
  (:func:`jvp`; with the ``M^0`` unit vectors the columns of the Jacobian, forward mode).

The layout: one compiled body, :func:`_derivatives`, serves the five operations (an op code,
branched on once per stage), so the loop nests compile once per variant and dtype, not once per
operation (Numba links a callee's library into each caller and optimizes and emits it again:
docs/perf-log.md, "Issue 15"); the public drivers :func:`input_grad`, :func:`vjp`,
:func:`jvp`, :func:`jacobian` and :func:`per_sample_grads` are thin wrappers that put their
arguments in the body's places, and :class:`fastbp.MLP` calls the body itself. The body first
runs the forward pass over the batch (:func:`_forward_rows`, with ``_plain_affine`` and
``_activate_units``: the tiled drivers' bits, so ``F`` equals ``forward``'s output and
:func:`input_grad`'s loss equals ``loss``'s), which leaves ``z^l`` in ``Z`` and ``h'(a^l)`` in
``A`` (the block layout of :func:`fastbp.kernels.make_workspace`), then the per-sample
recursion of the op. Sample ``b`` of a Jacobian owns the ``P`` rows ``b P .. b P + P - 1`` of
the tangent buffer ``T`` (``P = M^0`` forward, ``M^L`` reverse), a matrix per layer, so every
loop is over rows, the same code for each sample, whoever runs it.

Threads: the body splits the forward pass over blocks of :data:`FORWARD_BLOCK` samples (a
multiple of the forward tiles' 32, so ``_plain_affine`` sums every sample as the whole-batch
call does) and the recursion over blocks of :data:`ROW_BLOCK` samples, each task writing only
its own samples' rows, through the one prange kernel :func:`_rows_parallel`: the same bits for
any thread count. The serial twins (``_derivatives_serial``, ``_<driver>_serial``) compile no
parfor and inline the pieces (:func:`_forward_rows`, :func:`_pullback_rows`, :func:`_push_rows`,
:func:`_jacobian_rows`, ``_per_sample_rows``) at one call site, no level of linking; the pieces
read no ``_THREADS`` and are shared by both variants. Every sum runs over its reduction index
in order, first term assigned, with explicit fused multiply-adds; a non-finite sum becomes NaN
(``s * (1 + (s - s))``, the delta epilogue's guard), so an overflow is reported, never a
silent ``inf``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import fma, kernel, twins
from .checks import _all_finite, _check_arguments, _has_nan
from .layers import _activate_units, _scale
from .losses import SQUARED, check_loss_arguments, sample_delta, sample_loss
from .per_sample import _per_sample_rows
from .plain import _plain_affine, _plain_delta
from .workspace import _block

__all__ = [
    "FORWARD_BLOCK", "ROW_BLOCK", "input_grad", "jacobian", "jvp", "per_sample_grads",
    "tangent_length", "vjp",
]  # fmt: skip

#: Samples per task of the threaded forward pass: a multiple of the forward tiles' 32 samples.
FORWARD_BLOCK = 64
#: Samples per task of the threaded recursions (the tangent rows of a Jacobian are many).
ROW_BLOCK = 8
# Whether the body may call its prange kernel (False in the serial twins).
_THREADS = True


# --------------------------------------------------------------------------------------------
# Pieces: the forward pass of a block of samples, and the row loops of the recursions.
# --------------------------------------------------------------------------------------------
@kernel(inline="always")
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
@kernel(inline="always")
def _pullback_rows(theta, sizes, X, S, residual, A, Z, out, lo, hi, loss_code, weights):
    """out[lo:hi] = u J for samples lo..hi: u = f - S (``residual``) or u = S.

    delta^L = u * h'(a^L) (with ``residual`` in float64, as ``output_delta``), or, with a
    cross-entropy ``loss_code`` or ``weights`` (length B), the loss table's
    :func:`~fastbp._kernels.losses.sample_delta` of each sample (targets S); then eq. (9)
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
    if residual and (loss_code != SQUARED or weights.shape[0] != 0):
        zL = _block(Z, B, u0, m)[lo:hi]
        for n in range(hi - lo):
            w = 1.0 if weights.shape[0] == 0 else np.float64(weights[lo + n])
            sample_delta(loss_code, delta[n], zL[n], seed[n], w)
    elif residual:
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


@kernel(inline="always")
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


@kernel(inline="always")
def _jacobian_rows(theta, sizes, X, A, T, forward, J, lo, hi):
    """Rows b M^L .. b M^L + M^L - 1 of J (the (B M^L, M^0) view of the Jacobian) for the
    samples b = lo..hi: sample b's ``P`` tangent (forward) or cotangent (reverse) rows
    through the net.

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
            Jb = J[(lo + n) * ML : (lo + n + 1) * ML]
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
    Jr = J[lo * P : hi * P]
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
# The one compiled body: every operation is the forward pass, then one recursion per block of
# samples, picked by an op code (cold compile is the scarce resource: one copy of the loop
# nests per variant and dtype, see docs/perf-log.md "Issue 15").
# --------------------------------------------------------------------------------------------
#: Op codes of :func:`_derivatives` (FORWARD: the forward pass alone, a stage of every op).
FORWARD = 0
INPUT_GRAD = 1
VJP = 2
JVP = 3
JACOBIAN_FORWARD = 4
JACOBIAN_REVERSE = 5
PER_SAMPLE = 6


@kernel(inline="always")
def _stage(theta, sizes, codes, X, S, A, Z, T, out, op, lo, hi, loss_code, weights):
    """The stage ``op`` of samples lo..hi (the arguments: :func:`_derivatives`).

    It and the pieces it calls are inlined (Numba IR, before typing) at its one call site in
    the serial body and in :func:`_rows`: each loop nest is typed and optimized once there,
    instead of once in its own library and again in every library that links it."""
    if op == FORWARD:
        _forward_rows(theta, sizes, codes, X, A, Z, lo, hi)
    elif op == INPUT_GRAD or op == VJP:
        _pullback_rows(theta, sizes, X, S, op == INPUT_GRAD, A, Z, out, lo, hi, loss_code, weights)
    elif op == JVP:
        _push_rows(theta, sizes, X, S, A, Z, out, lo, hi)
    elif op == PER_SAMPLE:
        _per_sample_rows(theta, sizes, X, S, A, Z, T, out, lo, hi, loss_code, weights)
    else:
        _jacobian_rows(theta, sizes, X, A, T, op == JACOBIAN_FORWARD, out, lo, hi)


@kernel
def _rows(theta, sizes, codes, X, S, A, Z, T, out, op, lo, hi, loss_code, weights):
    """:func:`_stage` compiled on its own: the task of :func:`_rows_parallel`."""
    _stage(theta, sizes, codes, X, S, A, Z, T, out, op, lo, hi, loss_code, weights)


@kernel(parallel=True)
def _rows_parallel(theta, sizes, codes, X, S, A, Z, T, out, op, block, loss_code, weights):
    """:func:`_rows` over blocks of ``block`` samples, one task each (disjoint rows)."""
    B = X.shape[0]
    n = (B + block - 1) // block
    for c in prange(n):
        lo = c * block
        _rows(
            theta, sizes, codes, X, S, A, Z, T, out, op, lo, min(B, lo + block), loss_code, weights
        )


@kernel
def _derivatives(theta, sizes, codes, X, S, A, Z, T, F, out, op, loss_code, weights):
    """The one compiled body of :func:`input_grad`, :func:`vjp`, :func:`jvp`, :func:`jacobian`
    and :func:`per_sample_grads`; returns the loss (float64; 0.0 where there is none).

    ``loss_code`` and ``weights`` (the loss table's code and float weights of length B, or
    length 0 for none) choose the loss of INPUT_GRAD and PER_SAMPLE, whose targets ``S`` are
    then the loss's (probabilities; one-hot rows for class labels); the other ops ignore them.

    ``op`` and what the arguments hold (an argument an op does not read may be any array of
    its kind, the wrappers pass one of their own):

    ================  =====  =========================  ====================  ==============
    op                S      T                          F                     out
    ================  =====  =========================  ====================  ==============
    INPUT_GRAD        Y      (not read)                 (not read)            dX (B, M^0)
    VJP               U      (not read)                 outputs (B, M^L)      UJ (B, M^0)
    JVP               V      (not read)                 outputs (B, M^L)      JV (B, M^L)
    JACOBIAN_*        (-)    tangents (tangent_length)  (not read)            J (B M^L, M^0)
    PER_SAMPLE        Y      losses (B,)                (not read)            G (B, n_params)
    ================  =====  =========================  ====================  ==============

    Checks every argument it indexes (the public drivers' messages) before anything is
    written. The forward pass runs over blocks of FORWARD_BLOCK samples, the recursion over
    blocks of ROW_BLOCK, threaded in the public variant when there is more than one block.
    """
    _check_arguments(theta, sizes, codes, X, A, Z)
    B = X.shape[0]
    L = sizes.shape[0] - 1
    m0 = sizes[0]
    mL = sizes[L]
    if op == INPUT_GRAD or op == PER_SAMPLE:
        if _bad_shape(S, B, mL):
            raise ValueError("kernels: Y must have shape (B, sizes[-1])")
        if op == INPUT_GRAD and _bad_shape(out, B, m0):
            raise ValueError("kernels: dX must have shape (B, sizes[0])")
        if op == PER_SAMPLE and T.shape[0] != B:
            raise ValueError("kernels: losses must have shape (B,)")
        if op == PER_SAMPLE and _bad_shape(out, B, theta.shape[0]):
            raise ValueError("kernels: G must have shape (B, len(theta))")
        check_loss_arguments(codes, B, loss_code, weights)
    elif op == VJP:
        if _bad_shape(S, B, mL):
            raise ValueError("kernels: U must have shape (B, sizes[-1])")
        if _bad_shape(F, B, mL):
            raise ValueError("kernels: F must have shape (B, sizes[-1])")
        if _bad_shape(out, B, m0):
            raise ValueError("kernels: UJ must have shape (B, sizes[0])")
    elif op == JVP:
        if _bad_shape(S, B, m0):
            raise ValueError("kernels: V must have shape (B, sizes[0])")
        if _bad_shape(F, B, mL):
            raise ValueError("kernels: F must have shape (B, sizes[-1])")
        if _bad_shape(out, B, mL):
            raise ValueError("kernels: JV must have shape (B, sizes[-1])")
    elif op == JACOBIAN_FORWARD or op == JACOBIAN_REVERSE:
        if _bad_shape(out, B * mL, m0):
            raise ValueError("kernels: J must have shape (B, sizes[-1], sizes[0])")
        maxw = 0
        for l in range(1, L + 1):
            maxw = max(maxw, sizes[l])
        P = m0 if op == JACOBIAN_FORWARD else mL
        if T.shape[0] < 2 * B * P * maxw:
            raise ValueError("kernels: T too short (see tangent_length)")
    else:
        raise ValueError("kernels: op must be one of the op codes of input_derivs")
    if not _all_finite(X):
        raise ValueError("X: expected finite values, found NaN or Inf")
    if op != JACOBIAN_FORWARD and op != JACOBIAN_REVERSE and not _all_finite(S):
        if op == VJP:
            raise ValueError("U: expected finite values, found NaN or Inf")
        if op == JVP:
            raise ValueError("V: expected finite values, found NaN or Inf")
        raise ValueError("Y: expected finite values, found NaN or Inf")
    units = 0
    for l in range(1, L + 1):
        units += sizes[l]
    zL = _block(Z, B, units - mL, mL)
    total = 0.0
    # Two stages through one call site (one inlined copy of the pieces in the serial body):
    # the forward pass over blocks of FORWARD_BLOCK samples, then the op's recursion over
    # blocks of ROW_BLOCK.
    for step in range(2):
        stage = FORWARD if step == 0 else op
        block = FORWARD_BLOCK if step == 0 else ROW_BLOCK
        if _THREADS:
            if B > block:
                _rows_parallel(
                    theta, sizes, codes, X, S, A, Z, T, out, stage, block, loss_code, weights
                )
            else:
                _rows(theta, sizes, codes, X, S, A, Z, T, out, stage, 0, B, loss_code, weights)
        else:
            _stage(theta, sizes, codes, X, S, A, Z, T, out, stage, 0, B, loss_code, weights)
        if step == 0 and (op == VJP or op == JVP):
            for n in range(B):
                for i in range(mL):
                    F[n, i] = zL[n, i]
        elif step == 0 and (op == INPUT_GRAD or op == PER_SAMPLE):
            # The loss before the recursion overwrites h'(a^L) (z^L stays), in sample order.
            if loss_code != SQUARED or weights.shape[0] != 0:
                for n in range(B):
                    w = 1.0 if weights.shape[0] == 0 else np.float64(weights[n])
                    if w != 0.0:  # a weight 0 removes the sample, even an overflowing one
                        total += w * sample_loss(loss_code, zL[n], S[n])
                continue
            for n in range(B):
                for i in range(mL):
                    r = np.float64(zL[n, i]) - np.float64(S[n, i])
                    total += 0.5 * (r * r)
    if op == PER_SAMPLE:
        # An entry of G is one product delta * z: NaN only where a delta or a z is NaN or
        # infinite (0 * inf). The deltas and activations are few; G is scanned only if one is.
        n = B * units
        if not (_all_finite(A[:n].reshape((1, n))) and _all_finite(Z[:n].reshape((1, n)))):
            for b in range(B):
                if _has_nan(out[b]):
                    return np.nan
    return total


# --------------------------------------------------------------------------------------------
# Public drivers: thin wrappers of the body (their arguments in the body's places).
# --------------------------------------------------------------------------------------------
@kernel
def input_grad(theta, sizes, codes, X, Y, A, Z, dX, loss_code=0, weights=None):
    """Loss (returned, float64) and its gradient with respect to the inputs, ``dX`` (B, M^0).

    ``dX[b] = W^1^T delta^1_b``: the backward recursion of :func:`loss_and_grad` (eqs. 8-9)
    carried one step further, to ``z^0 = x``, with no weight gradient. ``A`` and ``Z`` are the
    workspace of :func:`make_workspace`. Non-finite entries of ``dX`` are NaN (an overflow).
    With ``loss_code`` and ``weights`` (both given, as for :func:`loss_and_grad`): the loss of
    that code, each sample's term times its weight.
    """
    if weights is None:  # the squared loss without weights; theta[:0] allocates nothing
        return _derivatives(theta, sizes, codes, X, Y, A, Z, A, dX, dX, INPUT_GRAD, 0, theta[:0])
    return _derivatives(theta, sizes, codes, X, Y, A, Z, A, dX, dX, INPUT_GRAD, loss_code, weights)


@kernel
def vjp(theta, sizes, codes, X, U, A, Z, F, UJ):
    """Vector-Jacobian products ``UJ[b] = U[b] J_f(x_b)`` (B, M^0) and the outputs ``F`` (B, M^L).

    The backward recursion seeded with ``delta^L = U * h'(a^L)`` (:func:`input_grad` seeds it
    with ``f - y``). Non-finite entries of ``UJ`` are NaN (an overflow).
    """
    _derivatives(theta, sizes, codes, X, U, A, Z, A, F, UJ, VJP, 0, theta[:0])


@kernel
def jvp(theta, sizes, codes, X, V, A, Z, F, JV):
    """Jacobian-vector products ``JV[b] = J_f(x_b) V[b]`` (B, M^L) and the outputs ``F`` (B, M^L).

    The forward recursion ``t^0 = v``, ``t^l = h'(a^l) * (W^l t^(l-1))`` beside the forward
    pass (the chain rule of eq. 9 read left to right). Non-finite entries of ``JV`` are NaN.
    """
    _derivatives(theta, sizes, codes, X, V, A, Z, A, F, JV, JVP, 0, theta[:0])


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
    J2 = J.reshape((B * sizes[L], sizes[0]))
    op = JACOBIAN_FORWARD if forward else JACOBIAN_REVERSE
    _derivatives(theta, sizes, codes, X, X, A, Z, T, J2, J2, op, 0, theta[:0])


@kernel
def per_sample_grads(theta, sizes, codes, X, Y, A, Z, losses, G, loss_code=0, weights=None):
    """Per-sample losses (into ``losses``, (B,)) and gradients (into ``G``, (B, n_params)).

    ``losses[b] = 1/2 ||f(x_b) - y_b||^2`` (computed in float64, stored in the dtype of
    ``losses``) and ``G[b]`` its gradient with respect to theta, in theta's layout. Returns the
    batch loss (float64, summed in sample order: the value :func:`loss` returns), or NaN when
    an entry of G is NaN (intermediate values overflowed). ``A`` and ``Z`` are the workspace
    of :func:`make_workspace`. With ``loss_code`` and ``weights`` (both given): the loss of that
    code, ``losses[b]`` and ``G[b]`` times the sample's weight.
    """
    if weights is None:
        return _derivatives(theta, sizes, codes, X, Y, A, Z, losses, G, G, PER_SAMPLE, 0, theta[:0])
    args = (theta, sizes, codes, X, Y, A, Z, losses, G, G, PER_SAMPLE)
    return _derivatives(*args, loss_code, weights)


# --------------------------------------------------------------------------------------------
# Serial twins: the body and the wrappers without the prange kernel (see drivers.py's twins);
# the pieces (_rows and below) read no _THREADS and are shared by both variants.
# --------------------------------------------------------------------------------------------
_SERIAL = {**globals(), "_THREADS": False}
(
    _derivatives_serial,
    _input_grad_serial,
    _vjp_serial,
    _jvp_serial,
    _jacobian_serial,
    _per_sample_grads_serial,
) = twins((_derivatives, input_grad, vjp, jvp, jacobian, per_sample_grads), _SERIAL, "serial")
del _SERIAL
