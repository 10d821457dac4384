"""Second-order drivers, compiled: Hessian-vector and Gauss-Newton products, residual Jacobian.

Public through :mod:`fastbp.kernels`, which re-exports :func:`hvp`, :func:`gnvp`,
:func:`residual_jacobian` and the workspace helpers.

- :func:`hvp`: ``H v``, the exact Hessian of the loss ``sum_n 1/2 ||f(x_n) - y_n||^2`` with
  respect to theta times a direction ``v`` (laid out like theta), by Pearlmutter's R-operator:
  the forward pass carries the tangents ``R(a^l), R(z^l)`` beside ``a^l, z^l``, and the
  backward pass carries ``R(delta^l)`` beside ``delta^l`` (docs/second-order.md derives it from
  the seed's recursion).
- :func:`gnvp`: ``J_r^T J_r v``, the Gauss-Newton product: the tangent forward pass gives
  ``J_r v = R(z^L)``, then an ordinary backward pass starts from it instead of the residual.
- :func:`residual_jacobian`: ``J_r`` with row ``b M^L + k = d f_k(x_b) / d theta``: per sample,
  ``M^L`` backward passes seeded with the unit vectors, all rows written once.

Explicit loops over one workspace buffer ``work`` (:func:`second_order_workspace_length`),
no allocation. Every entry is summed in one fixed order (in the forward dot products by 8
partial sums combined in a fixed tree, then the bias added; over samples and over output units
in increasing order, first term assigned, in the backward sums), whatever the split between
threads: a parallel loop (``prange``) owns disjoint output rows or samples, so the results are
bitwise the same at any thread count. The serial twins (``_hvp_serial`` ...) compile no parfor.

Layout of ``work`` for a batch of B samples, ``U = sum(sizes[1:])``, each block of B U entries
holding layer l as a row-major ``(B, M^l)`` block from ``B (M^1 + ... + M^(l-1))``, like the
drivers' ``A``:

====  =============================================================
A     ``h'(a^l)``
H     ``h''(a^l)``
Z     ``z^l``
RA    ``R(a^l)``, replaced by ``R(delta^l)`` in the backward pass
RZ    ``R(z^l) = h'(a^l) R(a^l)``
D     ``delta^l``
S     scratch: ``R(W^T delta)`` rows (B max(sizes)), or per sample of the Jacobian
      two ``(M^L, max(sizes))`` blocks of back-propagated unit seeds
====  =============================================================
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import fma, kernel, twins
from .checks import _all_finite, _check_finite
from .layers import activation_and_derivative, activation_second_derivative
from .workspace import _thread_block

__all__ = [
    "gnvp",
    "hvp",
    "make_second_order_workspace",
    "residual_jacobian",
    "second_order_workspace_length",
]

# Whether the drivers may call their prange loops (False in the serial twins, end of module).
_THREADS = True


def second_order_workspace_length(sizes, batch: int) -> int:
    """Length of the ``work`` buffer :func:`hvp`, :func:`gnvp` and :func:`residual_jacobian`
    need for ``batch`` samples of ``sizes``: ``B (6 U + 2 M^L max(sizes))``, ``U = sum(sizes[1:])``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[M^0, ..., M^L]``.
    batch : int
        Largest number of samples per call.

    Returns
    -------
    int
    """
    sizes = [int(m) for m in sizes]
    return int(batch) * (6 * sum(sizes[1:]) + 2 * sizes[-1] * max(sizes))


def make_second_order_workspace(sizes, batch: int, dtype=np.float64) -> np.ndarray:
    """Allocate the zero-filled ``work`` buffer of the second-order drivers.

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
    work : ndarray, shape (second_order_workspace_length(sizes, batch),)
    """
    return np.zeros(second_order_workspace_length(sizes, batch), dtype=dtype)


# --------------------------------------------------------------------------------------------
# Checks: every argument a driver indexes, O(L) work, before anything is written.
# --------------------------------------------------------------------------------------------
@kernel(inline="always")
def _check_shapes(theta, sizes, codes, X, work):
    """Raise ValueError unless theta, codes, X and work fit ``sizes``; returns U."""
    L = sizes.shape[0] - 1
    if L < 1 or codes.shape[0] != L:
        raise ValueError("kernels: codes must have len(sizes) - 1 entries")
    n_params = 0
    units = 0
    widest = sizes[0]
    for l in range(1, L + 1):
        if sizes[l] < 1 or sizes[l - 1] < 1:
            raise ValueError("kernels: sizes must be positive")
        n_params += sizes[l] * (sizes[l - 1] + 1)
        units += sizes[l]
        widest = max(widest, sizes[l])
    if theta.shape[0] != n_params:
        raise ValueError("kernels: theta length does not match sizes")
    if X.shape[1] != sizes[0]:
        raise ValueError("kernels: X must have sizes[0] columns")
    B = X.shape[0]
    if work.shape[0] < B * (6 * units + 2 * sizes[L] * widest):
        raise ValueError("kernels: work too short (see second_order_workspace_length)")
    return units


@kernel(inline="always")
def _check_product(theta, sizes, codes, X, Y, v, work, out):
    """The checks of :func:`hvp` and :func:`gnvp`: shapes, then X, Y and v finite."""
    _check_shapes(theta, sizes, codes, X, work)
    L = sizes.shape[0] - 1
    if Y.shape[0] != X.shape[0] or Y.shape[1] != sizes[L]:
        raise ValueError("kernels: Y must have shape (B, sizes[-1])")
    if v.shape[0] != theta.shape[0]:
        raise ValueError("kernels: v must have the length of theta")
    if out.shape[0] != theta.shape[0]:
        raise ValueError("kernels: out must have the length of theta")
    _check_finite(X, Y)
    if not _all_finite(v.reshape((1, v.shape[0]))):
        raise ValueError("v: expected finite values, found NaN or Inf")


# --------------------------------------------------------------------------------------------
# Forward pass with tangents.
# --------------------------------------------------------------------------------------------
@kernel(inline="always")
def _dot(w, x):
    """sum_k w[k] x[k] by 8 partial sums (packed into vector registers by the SLP vectorizer)
    combined in a fixed tree, then the tail in order: deterministic, like the edge loop
    :func:`fastbp._kernels.layers._forward_samples`."""
    m = x.shape[0]
    k8 = m - m % 8
    s = w[0] * 0.0
    if k8 > 0:
        s0 = w[0] * x[0]
        s1 = w[1] * x[1]
        s2 = w[2] * x[2]
        s3 = w[3] * x[3]
        s4 = w[4] * x[4]
        s5 = w[5] * x[5]
        s6 = w[6] * x[6]
        s7 = w[7] * x[7]
        for k in range(8, k8, 8):
            wk = w[k : k + 8]
            xk = x[k : k + 8]
            s0 = fma(wk[0], xk[0], s0)
            s1 = fma(wk[1], xk[1], s1)
            s2 = fma(wk[2], xk[2], s2)
            s3 = fma(wk[3], xk[3], s3)
            s4 = fma(wk[4], xk[4], s4)
            s5 = fma(wk[5], xk[5], s5)
            s6 = fma(wk[6], xk[6], s6)
            s7 = fma(wk[7], xk[7], s7)
        s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for k in range(k8, m):
        s = fma(w[k], x[k], s)
    return s


@kernel
def _forward_rows(theta, v, code, w0, b0, zin, rzin, A, H, Z, RA, RZ, i_lo, i_hi, tangent, first):
    """Units i_lo..i_hi of one layer, every sample: a = b + W z, z = h(a), A = h'(a), and with
    ``tangent`` R(a) = (c + V z) + W R(z^(l-1)) (no last term in the first layer, where
    R(z^0) = 0), H = h''(a), R(z) = h'(a) R(a).

    A..RZ are the layer's (B, M^l) blocks. Unit-outer: the rows of W and V stay in L1 while the
    samples stream past them.
    """
    B, m_in = zin.shape
    for i in range(i_lo, i_hi):
        p = w0 + i * m_in
        w = theta[p : p + m_in]
        vw = v[p : p + m_in]
        for n in range(B):
            x = zin[n]
            a = theta[b0 + i] + _dot(w, x)
            z, d = activation_and_derivative(code, a)
            Z[n, i] = z
            A[n, i] = d
            if tangent:
                ra = v[b0 + i] + _dot(vw, x)
                if not first:
                    ra = ra + _dot(w, rzin[n])
                RA[n, i] = ra
                H[n, i] = activation_second_derivative(code, a)
                RZ[n, i] = d * ra


@kernel(parallel=True)
def _forward_rows_parallel(
    theta, v, code, w0, b0, zin, rzin, A, H, Z, RA, RZ, chunk, tangent, first
):
    """:func:`_forward_rows` over blocks of ``chunk`` units in parallel (disjoint columns)."""
    m = A.shape[1]
    for c in prange((m + chunk - 1) // chunk):
        lo = c * chunk
        _forward_rows(
            theta, v, code, w0, b0, zin, rzin, A, H, Z, RA, RZ, lo, min(lo + chunk, m),
            tangent, first,
        )  # fmt: skip


@kernel(inline="always")
def _block(buf, B, u0, m):
    """The (B, m) row-major block of a flat buffer that starts at B * u0."""
    return buf[B * u0 : B * (u0 + m)].reshape((B, m))


@kernel(inline="always")
def _forward_pass(theta, v, sizes, codes, X, work, tangent):
    """Every layer forward (with tangents when ``tangent``); returns the output layer's u0."""
    B = X.shape[0]
    L = sizes.shape[0] - 1
    U = 0
    for l in range(1, L + 1):
        U += sizes[l]
    A = work[0 : B * U]
    H = work[B * U : 2 * B * U]
    Z = work[2 * B * U : 3 * B * U]
    RA = work[3 * B * U : 4 * B * U]
    RZ = work[4 * B * U : 5 * B * U]
    zin = X
    rzin = X  # unused in the first layer
    w0 = 0
    u0 = 0
    for l in range(L):
        m_in = sizes[l]
        m = sizes[l + 1]
        b0 = w0 + m * m_in
        a = _block(A, B, u0, m)
        h = _block(H, B, u0, m)
        z = _block(Z, B, u0, m)
        ra = _block(RA, B, u0, m)
        rz = _block(RZ, B, u0, m)
        chunk = _thread_block(m, B * m_in * m * (3 if tangent else 1))
        if _THREADS and chunk > 0:
            _forward_rows_parallel(
                theta, v, codes[l], w0, b0, zin, rzin, a, h, z, ra, rz, chunk, tangent, l == 0
            )
        else:
            _forward_rows(
                theta, v, codes[l], w0, b0, zin, rzin, a, h, z, ra, rz, 0, m, tangent, l == 0
            )
        zin = z
        rzin = rz
        w0 = b0 + m
        if l < L - 1:
            u0 += m
    return u0


# --------------------------------------------------------------------------------------------
# Backward pass with tangents.
# --------------------------------------------------------------------------------------------
@kernel
def _gradient_rows(p, zin, q, rzin, two, w0, b0, out, i_lo, i_hi):
    """out[W^l row i] = sum_n p[n, i] zin[n] (+ q[n, i] rzin[n] when ``two``), out[b^l i] =
    sum_n p[n, i], for rows i_lo..i_hi; over samples in order, the first assigned.

    For H v: p = R(delta^l), q = delta^l, rzin = R(z^(l-1)) (``two`` but in the first layer);
    for a gradient (the Gauss-Newton product): p = delta^l.
    """
    B, m_in = zin.shape
    for i in range(i_lo, i_hi):
        row = out[w0 + i * m_in : w0 + (i + 1) * m_in]
        c = p[0, i]
        x = zin[0]
        for j in range(m_in):
            row[j] = c * x[j]
        if two:
            d = q[0, i]
            rx = rzin[0]
            for j in range(m_in):
                row[j] = fma(d, rx[j], row[j])
        for n in range(1, B):
            c = p[n, i]
            x = zin[n]
            if two:
                d = q[n, i]
                rx = rzin[n]
                for j in range(m_in):
                    row[j] = fma(d, rx[j], fma(c, x[j], row[j]))
            else:
                for j in range(m_in):
                    row[j] = fma(c, x[j], row[j])
        s = p[0, i]
        for n in range(1, B):
            s += p[n, i]
        out[b0 + i] = s


@kernel(parallel=True)
def _gradient_rows_parallel(p, zin, q, rzin, two, w0, b0, out, chunk):
    """:func:`_gradient_rows` over blocks of ``chunk`` rows in parallel (disjoint rows)."""
    m = p.shape[1]
    for c in prange((m + chunk - 1) // chunk):
        lo = c * chunk
        _gradient_rows(p, zin, q, rzin, two, w0, b0, out, lo, min(lo + chunk, m))


@kernel
def _propagate(theta, v, w0, delta, rdelta, dprev, rprev, aprev, hprev, G, tangent, n_lo, n_hi):
    """delta^(l-1) = (W^T delta) * h'(a^(l-1)) into dprev for samples n_lo..n_hi, and with
    ``tangent`` R(delta^(l-1)) = (V^T delta + W^T R(delta)) * h' + (W^T delta) h'' R(a^(l-1))
    over the R(a^(l-1)) in rprev. Sums over the units i of layer l in order, first assigned.
    """
    m_out = delta.shape[1]
    m_in = dprev.shape[1]
    for n in range(n_lo, n_hi):
        g = dprev[n]
        rg = G[n]
        d = delta[n, 0]
        w = theta[w0 : w0 + m_in]
        for j in range(m_in):
            g[j] = d * w[j]
        if tangent:
            rd = rdelta[n, 0]
            vw = v[w0 : w0 + m_in]
            for j in range(m_in):
                rg[j] = fma(rd, w[j], d * vw[j])
        for i in range(1, m_out):
            d = delta[n, i]
            p = w0 + i * m_in
            w = theta[p : p + m_in]
            for j in range(m_in):
                g[j] = fma(d, w[j], g[j])
            if tangent:
                rd = rdelta[n, i]
                vw = v[p : p + m_in]
                for j in range(m_in):
                    rg[j] = fma(rd, w[j], fma(d, vw[j], rg[j]))
        hd = aprev[n]
        if tangent:
            hh = hprev[n]
            ra = rprev[n]
            for j in range(m_in):
                ra[j] = rg[j] * hd[j] + g[j] * hh[j] * ra[j]
        for j in range(m_in):
            g[j] = g[j] * hd[j]


@kernel(parallel=True)
def _propagate_parallel(theta, v, w0, delta, rdelta, dprev, rprev, aprev, hprev, G, tangent, chunk):
    """:func:`_propagate` over blocks of ``chunk`` samples in parallel (disjoint samples)."""
    B = delta.shape[0]
    for c in prange((B + chunk - 1) // chunk):
        lo = c * chunk
        _propagate(
            theta, v, w0, delta, rdelta, dprev, rprev, aprev, hprev, G, tangent, lo,
            min(lo + chunk, B),
        )  # fmt: skip


@kernel
def _product(theta, v, sizes, codes, X, Y, work, out, tangent):
    """H v (``tangent``) or J_r^T J_r v into out; returns the loss (float64)."""
    B = X.shape[0]
    if B == 0:  # an empty batch: the loss and its derivatives are 0
        for k in range(out.shape[0]):
            out[k] = 0.0
        return 0.0
    L = sizes.shape[0] - 1
    U = 0
    for l in range(1, L + 1):
        U += sizes[l]
    u0 = _forward_pass(theta, v, sizes, codes, X, work, True)
    A = work[0 : B * U]
    H = work[B * U : 2 * B * U]
    Z = work[2 * B * U : 3 * B * U]
    RA = work[3 * B * U : 4 * B * U]
    RZ = work[4 * B * U : 5 * B * U]
    D = work[5 * B * U : 6 * B * U]
    m = sizes[L]
    a = _block(A, B, u0, m)
    h = _block(H, B, u0, m)
    z = _block(Z, B, u0, m)
    ra = _block(RA, B, u0, m)
    rz = _block(RZ, B, u0, m)
    d = _block(D, B, u0, m)
    # The output: delta^L = r h'(a^L), r = z^L - y; R(delta^L) = R(z^L) h' + r h'' R(a^L)
    # (over R(a^L) in RA). For the Gauss-Newton product delta^L = J_r v h' = R(z^L) h'.
    total = 0.0
    for n in range(B):
        for i in range(m):
            r = np.float64(z[n, i]) - np.float64(Y[n, i])
            total += 0.5 * (r * r)
            if tangent:
                d[n, i] = r * a[n, i]
                ra[n, i] = rz[n, i] * a[n, i] + r * h[n, i] * ra[n, i]
            else:
                d[n, i] = rz[n, i] * a[n, i]
    w_end = theta.shape[0]
    for l in range(L, 0, -1):
        m_in = sizes[l - 1]
        m_out = sizes[l]
        b0 = w_end - m_out
        w0 = b0 - m_out * m_in
        delta = _block(D, B, u0, m_out)
        rdelta = _block(RA, B, u0, m_out)
        if l > 1:
            u_prev = u0 - m_in
            zin = _block(Z, B, u_prev, m_in)
            rzin = _block(RZ, B, u_prev, m_in)
        else:
            u_prev = 0
            zin = X
            rzin = X
        two = tangent and l > 1
        p = rdelta if tangent else delta
        chunk = _thread_block(m_out, B * m_in * m_out * (2 if two else 1))
        if _THREADS and chunk > 0:
            _gradient_rows_parallel(p, zin, delta, rzin, two, w0, b0, out, chunk)
        else:
            _gradient_rows(p, zin, delta, rzin, two, w0, b0, out, 0, m_out)
        if l > 1:
            dprev = _block(D, B, u_prev, m_in)
            rprev = _block(RA, B, u_prev, m_in)
            aprev = _block(A, B, u_prev, m_in)
            hprev = _block(H, B, u_prev, m_in)
            g = work[6 * B * U : 6 * B * U + B * m_in].reshape((B, m_in))
            chunk = _thread_block(B, B * m_in * m_out * (3 if tangent else 1))
            if _THREADS and chunk > 0:
                _propagate_parallel(
                    theta, v, w0, delta, rdelta, dprev, rprev, aprev, hprev, g, tangent, chunk
                )
            else:
                _propagate(
                    theta, v, w0, delta, rdelta, dprev, rprev, aprev, hprev, g, tangent, 0, B
                )
        u0 = u_prev
        w_end = w0
    return total


# --------------------------------------------------------------------------------------------
# Residual Jacobian.
# --------------------------------------------------------------------------------------------
@kernel
def _jacobian_samples(theta, sizes, X, work, U, widest, out, b_lo, b_hi):
    """Rows b M^L + k of J_r for the samples b_lo..b_hi, after the forward pass.

    Per sample, P[k] = d f_k / d a^l (M^L rows) starts as h'(a^L_k) e_k and is propagated back
    like delta (P <- (P W^l) * h'(a^(l-1))); row b M^L + k of layer l's block is
    P[k, i] z^(l-1)_j, and P[k, i] for the bias. Scratch: the sample's two (M^L, widest) blocks
    of the S region.
    """
    B = X.shape[0]
    L = sizes.shape[0] - 1
    M = sizes[L]
    A = work[0 : B * U]
    Z = work[2 * B * U : 3 * B * U]
    s0 = 6 * B * U
    for b in range(b_lo, b_hi):
        base = s0 + b * 2 * M * widest
        P = work[base : base + M * widest]
        Q = work[base + M * widest : base + 2 * M * widest]
        u0 = U - M
        hL = A[B * u0 + b * M : B * u0 + (b + 1) * M]
        for k in range(M):
            pk = P[k * widest : k * widest + M]
            for i in range(M):
                pk[i] = 0.0
            pk[k] = hL[k]
        w_end = theta.shape[0]
        for l in range(L, 0, -1):
            m_in = sizes[l - 1]
            m_out = sizes[l]
            b0 = w_end - m_out
            w0 = b0 - m_out * m_in
            if l > 1:
                u_prev = u0 - m_in
                x = Z[B * u_prev + b * m_in : B * u_prev + (b + 1) * m_in]
            else:
                u_prev = 0
                x = X[b]
            for k in range(M):
                row = out[b * M + k]
                pk = P[k * widest : k * widest + m_out]
                for i in range(m_out):
                    c = pk[i]
                    dst = row[w0 + i * m_in : w0 + (i + 1) * m_in]
                    for j in range(m_in):
                        dst[j] = c * x[j]
                    row[b0 + i] = c
            if l > 1:
                hd = A[B * u_prev + b * m_in : B * u_prev + (b + 1) * m_in]
                for k in range(M):
                    pk = P[k * widest : k * widest + m_out]
                    qk = Q[k * widest : k * widest + m_in]
                    c = pk[0]
                    w = theta[w0 : w0 + m_in]
                    for j in range(m_in):
                        qk[j] = c * w[j]
                    for i in range(1, m_out):
                        c = pk[i]
                        p = w0 + i * m_in
                        w = theta[p : p + m_in]
                        for j in range(m_in):
                            qk[j] = fma(c, w[j], qk[j])
                    for j in range(m_in):
                        qk[j] = qk[j] * hd[j]
                P, Q = Q, P
            u0 = u_prev
            w_end = w0


@kernel(parallel=True)
def _jacobian_samples_parallel(theta, sizes, X, work, U, widest, out, chunk):
    """:func:`_jacobian_samples` over blocks of ``chunk`` samples in parallel (disjoint rows of
    out and disjoint scratch)."""
    B = X.shape[0]
    for c in prange((B + chunk - 1) // chunk):
        lo = c * chunk
        _jacobian_samples(theta, sizes, X, work, U, widest, out, lo, min(lo + chunk, B))


#: Modes of :func:`second_order`.
HVP = 0
GNVP = 1
JACOBIAN = 2


@kernel
def second_order(theta, sizes, codes, X, Y, v, work, out, mode):
    """The one compiled body of the three drivers; returns the loss (0.0 for the Jacobian).

    ``mode`` :data:`HVP` or :data:`GNVP`: ``out`` has shape (1, n_params) and receives H v or
    J_r^T J_r v; :data:`JACOBIAN`: ``out`` (B M^L, n_params) receives J_r, and Y and v are not
    read (any 2-D and 1-D arrays of the dtype will do). One body so that the large loop nests
    compile once for all three (the drivers below are thin wrappers; fastbp.MLP calls this).
    Checks every argument it indexes before writing anything.
    """
    U = _check_shapes(theta, sizes, codes, X, work)
    L = sizes.shape[0] - 1
    B = X.shape[0]
    if mode == JACOBIAN:
        if out.shape[0] != B * sizes[L] or out.shape[1] != theta.shape[0]:
            raise ValueError("kernels: out must have shape (B * sizes[-1], len(theta))")
        if not _all_finite(X):
            raise ValueError("X: expected finite values, found NaN or Inf")
        widest = 0
        for l in range(L + 1):
            widest = max(widest, sizes[l])
        _forward_pass(theta, theta, sizes, codes, X, work, False)
        chunk = _thread_block(B, B * sizes[L] * theta.shape[0])
        if _THREADS and chunk > 0:
            _jacobian_samples_parallel(theta, sizes, X, work, U, widest, out, chunk)
        else:
            _jacobian_samples(theta, sizes, X, work, U, widest, out, 0, B)
        return 0.0
    if mode != HVP and mode != GNVP:
        raise ValueError("kernels: mode must be HVP, GNVP or JACOBIAN")
    if out.shape[0] != 1:
        raise ValueError("kernels: out must have shape (1, len(theta))")
    _check_product(theta, sizes, codes, X, Y, v, work, out[0])
    return _product(theta, v, sizes, codes, X, Y, work, out[0], mode == HVP)


@kernel
def hvp(theta, sizes, codes, X, Y, v, work, out):
    """H v into ``out`` (n_params,): the Hessian of the loss with respect to theta times
    ``v``; returns the loss (float64). Pearlmutter's R-operator: one forward and one backward
    pass of tangents."""
    return second_order(theta, sizes, codes, X, Y, v, work, out.reshape((1, out.shape[0])), HVP)


@kernel
def gnvp(theta, sizes, codes, X, Y, v, work, out):
    """J_r^T J_r v into ``out`` (n_params,), the Gauss-Newton product (J_r: the Jacobian of the
    residuals f(x_n) - y_n with respect to theta); returns the loss (float64)."""
    return second_order(theta, sizes, codes, X, Y, v, work, out.reshape((1, out.shape[0])), GNVP)


@kernel
def residual_jacobian(theta, sizes, codes, X, work, out):
    """J_r into ``out`` (B M^L, n_params): row ``b M^L + k`` is d f_k(x_b) / d theta."""
    second_order(theta, sizes, codes, X, X, theta, work, out, JACOBIAN)


# --------------------------------------------------------------------------------------------
# Serial twins: the drivers' own bytecode with _THREADS = False, so no parfor is compiled or
# entered (the Python layer calls them below PARALLEL_MIN_WORK or on one thread; see
# fastbp._kernels.drivers for the pattern).
# --------------------------------------------------------------------------------------------
_SERIAL = {**globals(), "_THREADS": False}
(
    _forward_pass_serial,
    _product_serial,
    _second_order_serial,
    _hvp_serial,
    _gnvp_serial,
    _residual_jacobian_serial,
) = twins((_forward_pass, _product, second_order, hvp, gnvp, residual_jacobian), _SERIAL, "serial")
del _SERIAL
