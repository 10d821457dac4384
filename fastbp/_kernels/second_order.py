"""Second-order drivers, compiled: Hessian-vector and Gauss-Newton products, residual Jacobian.

Public through :mod:`fastbp.kernels`, which re-exports :func:`hvp`, :func:`gnvp`,
:func:`residual_jacobian`, :func:`second_order` and the workspace helpers.

- :func:`hvp`: ``H v``, the exact Hessian of the loss ``sum_n 1/2 ||f(x_n) - y_n||^2`` with
  respect to theta times a direction ``v`` (laid out like theta), by Pearlmutter's R-operator:
  the forward pass carries the tangents ``R(a^l), R(z^l)`` beside ``a^l, z^l``, and the
  backward pass carries ``R(delta^l)`` beside ``delta^l`` (docs/second-order.md derives it from
  the seed's recursion).
- :func:`gnvp`: ``J_r^T J_r v``, the Gauss-Newton product: the tangent forward pass gives
  ``J_r v = R(z^L)``, then an ordinary backward pass starts from it instead of the residual.
- :func:`residual_jacobian`: ``J_r`` with row ``b M^L + k = d f_k(x_b) / d theta``: per sample,
  ``M^L`` backward passes seeded with the unit vectors, all rows written once.

Every layer product is one of the gradient's register-tiled GEMMs over the batch
(:mod:`fastbp._kernels.forward_tiles`, :mod:`fastbp._kernels.backward_tiles`, called by name),
each sum a single one in a fixed order, so the results are bitwise the same at any thread count:

- forward: ``a^l = b^l + W^l z^(l-1)`` (the forward tile, scalar epilogue), then ``h'`` and
  ``h''`` of it; the tangent ``R(a^l) = c^l + [V^l | W^l] [z^(l-1); R(z^(l-1))]`` is the same
  tile over the concatenated input (V, c: the blocks of v), the weights packed row by row
  ``[V_i | W_i]`` (in the first layer ``R(z^0) = 0``: ``c^1 + V^1 x``, read from v in place);
- weight products: ``(H v)_W^l = R(delta^l)^T z^(l-1) + delta^l^T R(z^(l-1))`` is the weight
  gradient tile over the batch stacked twice (2B samples: ``[R(delta); delta]`` against
  ``[z; R(z)]``), ``(H v)_b^l = sum_n R(delta^l)``;
- the backward recursion: ``delta^(l-1) = (delta^l W^l) h'`` (the delta tile) and
  ``R(delta^(l-1)) = ([R(delta^l) | delta^l] [W^l; V^l]) h' + (delta^l W^l) h'' R(a^(l-1))``,
  the delta tile over the concatenated ``[R(delta) | delta]`` and stacked ``[W; V]``.

The one compiled body :func:`second_order` runs the forward pass once for every mode (one copy
of the loop nests in its library: cold compile is the scarce resource); :func:`hvp`,
:func:`gnvp` and :func:`residual_jacobian` are thin wrappers. The serial twins
(``_second_order_serial`` ...) compile no parfor.

Layout of ``work`` for B samples, ``U = sum(sizes[1:])``, ``W = max(sizes)``, ``P = len(theta)``,
``ld`` the transposed blocks' row stride (:func:`fastbp._kernels.workspace._ld`); per layer l,
from unit offset ``u0 = M^1 + ... + M^(l-1)``:

=====  =================  ===========================================================
ZZ     2 B U at 0         (2B, M^l) at 2 B u0: ``z^l`` rows, then ``R(z^l)`` rows
DD     2 B U              (2B, M^l): ``R(delta^l)`` rows, then ``h'(a^l)``, later ``delta^l``
RA     B U                (B, M^l): ``R(a^l)``
HH     B U                (B, M^l): ``h''(a^l)``
ZC     2 B U              (B, 2 M^l): ``[z^l | R(z^l)]``, the next tangent's input
X0     B M^0              a C-contiguous copy of X
XT     M^0 ld             X transposed (the forward tile's input)
ZCT    2 ld U             (2 M^l, ld): ``z^l`` then ``R(z^l)`` transposed
G, RG  B W each           raw ``delta^l W^l`` and ``[R(delta) | delta] [W; V]`` sums
DC     2 B W              ``[R(delta^l) | delta^l]``
PK     2 P + W            packed weights ``[V_i | W_i], c`` or ``[W; V]``
TS     8 PACK             the delta tiles' packed blocks (one per task)
JS     2 B M^L W          per sample of the Jacobian, two (M^L, W) blocks of unit seeds
=====  =================  ===========================================================
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import fma, kernel, twins
from .backward_tiles import (
    PACK,
    delta_columns,
    delta_columns_parallel,
    weight_gradient_rows,
    weight_gradient_rows_parallel,
)
from .checks import _all_finite, _check_finite
from .forward_tiles import SPAN, forward_rows_forward, forward_rows_parallel_forward
from .layers import (
    IDENTITY,
    _bias_gradient,
    activation_derivative,
    activation_second_derivative,
)
from .losses import SQUARED, check_loss_arguments, sample_delta, sample_loss, sample_output_hessian
from .workspace import _TASKS, _ld, _thread_block

__all__ = [
    "GNVP",
    "HVP",
    "JACOBIAN",
    "gnvp",
    "hvp",
    "make_second_order_workspace",
    "residual_jacobian",
    "second_order",
    "second_order_workspace_length",
]

# Whether the drivers may call their prange loops (False in the serial twins, end of module).
_THREADS = True

#: Modes of :func:`second_order`.
HVP = 0
GNVP = 1
JACOBIAN = 2


def second_order_workspace_length(sizes, batch: int) -> int:
    """Length of the ``work`` buffer :func:`hvp`, :func:`gnvp` and :func:`residual_jacobian`
    need for ``batch`` samples of ``sizes`` (the layout: module notes).

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
    B = int(batch)
    U, W, m0 = sum(sizes[1:]), max(sizes), sizes[0]
    P = sum(m * (k + 1) for k, m in zip(sizes, sizes[1:]))
    ld = (B + 7) // 8 * 8 + 8
    return (
        8 * B * U + B * m0 + ld * (m0 + 2 * U) + 4 * B * W + 2 * P + W + _TASKS * PACK
        + 2 * B * sizes[-1] * W
    )  # fmt: skip


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


@kernel
def _offsets(sizes, B):
    """(U, W, offsets of DD, RA, HH, ZC, X0, XT, ZCT, G, RG, DC, PK, TS, JS, end) of work."""
    L = sizes.shape[0] - 1
    U = 0
    W = sizes[0]
    P = 0
    for l in range(1, L + 1):
        U += sizes[l]
        W = max(W, sizes[l])
        P += sizes[l] * (sizes[l - 1] + 1)
    m0 = sizes[0]
    ld = _ld(B)
    dd = 2 * B * U
    ra = 4 * B * U
    hh = 5 * B * U
    zc = 6 * B * U
    x0 = 8 * B * U
    xt = x0 + B * m0
    zct = xt + m0 * ld
    g = zct + 2 * ld * U
    rg = g + B * W
    dc = rg + B * W
    pk = dc + 2 * B * W
    ts = pk + 2 * P + W
    js = ts + _TASKS * PACK
    end = js + 2 * B * sizes[L] * W
    return U, W, ld, dd, ra, hh, zc, x0, xt, zct, g, rg, dc, pk, ts, js, end


@kernel
def _rows(buf, start, n, m):
    """The (n, m) row-major block of a flat buffer that starts at ``start``.

    Not inlined in Numba IR (LLVM inlines it): at its ~40 call sites the IR inlining pass cost
    a fifth of the body's cold compile (docs/perf-log.md, "Issue 15 (second order)")."""
    return buf[start : start + n * m].reshape((n, m))


# --------------------------------------------------------------------------------------------
# Checks: every argument a driver indexes, O(L) work, before anything is written.
# --------------------------------------------------------------------------------------------
@kernel(inline="always")
def _check_shapes(theta, sizes, codes, X, work):
    """Raise ValueError unless theta, codes, X and work fit ``sizes``."""
    L = sizes.shape[0] - 1
    if L < 1 or codes.shape[0] != L:
        raise ValueError("kernels: codes must have len(sizes) - 1 entries")
    n_params = 0
    for l in range(1, L + 1):
        if sizes[l] < 1 or sizes[l - 1] < 1:
            raise ValueError("kernels: sizes must be positive")
        n_params += sizes[l] * (sizes[l - 1] + 1)
    if theta.shape[0] != n_params:
        raise ValueError("kernels: theta length does not match sizes")
    if X.shape[1] != sizes[0]:
        raise ValueError("kernels: X must have sizes[0] columns")
    if work.shape[0] < _offsets(sizes, X.shape[0])[-1]:
        raise ValueError("kernels: work too short (see second_order_workspace_length)")


# --------------------------------------------------------------------------------------------
# Forward pass with tangents.
# --------------------------------------------------------------------------------------------
@kernel(inline="always")
def _forward_layer(theta, w0, b0, code, zin, zinT, a, z, zT):
    """a = b + W zin (the forward tile), z = h(a), zT = z^T: threaded by rows above the work
    threshold, in the serial tile below it."""
    B, m_in = zin.shape
    m = a.shape[1]
    if _THREADS and _thread_block(m, B * m_in * m) > 0:
        chunk = _thread_block(m, B * m_in * m)
        forward_rows_parallel_forward(
            theta, w0, b0, code, zin, zinT, a, z, zT, chunk, B, False, False
        )
    else:
        forward_rows_forward(theta, w0, b0, code, zin, zinT, a, z, zT, 0, m, 0, False)


@kernel(inline="always")
def _forward(theta, v, sizes, codes, X, work, tangent, second):
    """Every layer forward: z^l into ZZ, h'(a^l) into DD's second half, with ``second``
    h''(a^l) into HH, with ``tangent`` R(a^l) into RA and R(z^l) into ZZ (module notes)."""
    B, m0 = X.shape
    L = sizes.shape[0] - 1
    U, W, ld, o_dd, o_ra, o_hh, o_zc, o_x0, o_xt, o_zct, o_g, o_rg, o_dc, o_pk, o_ts, o_js, end = (
        _offsets(sizes, B)
    )
    x0 = _rows(work, o_x0, B, m0)
    for n in range(B):
        xn = X[n]
        row = x0[n]
        for k in range(m0):
            row[k] = xn[k]
    xt = _rows(work, o_xt, m0, ld)
    if B >= SPAN:  # below one tile of samples the forward tile never reads X^T
        for k in range(m0):
            col = xt[k]
            for n in range(B):
                col[n] = x0[n, k]
    ident = codes[0] - codes[0] + IDENTITY
    zin = x0
    zinT = xt
    cin = x0
    cinT = xt
    w0 = 0
    u0 = 0
    for l in range(L):
        m_in = sizes[l]
        m = sizes[l + 1]
        b0 = w0 + m * m_in
        code = codes[l]
        z = _rows(work, 2 * B * u0, B, m)
        rz = _rows(work, 2 * B * u0 + B * m, B, m)
        hd = _rows(work, o_dd + 2 * B * u0 + B * m, B, m)
        zT = _rows(work, o_zct + 2 * ld * u0, m, ld)
        rzT = _rows(work, o_zct + 2 * ld * u0 + m * ld, m, ld)
        _forward_layer(theta, w0, b0, code, zin, zinT, hd, z, zT)
        hh = _rows(work, o_hh + B * u0, B, m)
        for n in range(B):
            hr = hd[n]
            if second:
                sr = hh[n]
                for i in range(m):
                    sr[i] = activation_second_derivative(code, hr[i])
            for i in range(m):
                hr[i] = activation_derivative(code, hr[i])
        if tangent:
            ra = _rows(work, o_ra + B * u0, B, m)
            if l == 0:  # R(z^0) = 0: R(a^1) = c^1 + V^1 x, the weights read from v in place
                src = v
                pw0 = w0
                pb0 = b0
            else:  # [V_i | W_i] row by row, then c
                two = 2 * m_in
                src = work[o_pk : o_pk + m * (two + 1)]
                for i in range(m):
                    p = w0 + i * m_in
                    dst = src[i * two : (i + 1) * two]
                    vr = v[p : p + m_in]
                    wr = theta[p : p + m_in]
                    for j in range(m_in):
                        dst[j] = vr[j]
                    for j in range(m_in):
                        dst[m_in + j] = wr[j]
                for i in range(m):
                    src[m * two + i] = v[b0 + i]
                pw0 = 0
                pb0 = m * two
            # The tile's z and z^T outputs (identity: copies of R(a)) land in R(z)'s blocks,
            # rewritten below.
            _forward_layer(src, pw0, pb0, ident, cin, cinT, ra, rz, rzT)
            zc = _rows(work, o_zc + 2 * B * u0, B, 2 * m)
            for n in range(B):
                hr = hd[n]
                rr = ra[n]
                zr = z[n]
                rzr = rz[n]
                cr = zc[n]
                for i in range(m):
                    r = hr[i] * rr[i]
                    rzr[i] = r
                    cr[i] = zr[i]
                    cr[m + i] = r
            if B >= SPAN and l < L - 1:
                for i in range(m):
                    col = rzT[i]
                    for n in range(B):
                        col[n] = rz[n, i]
            cin = zc
            cinT = _rows(work, o_zct + 2 * ld * u0, 2 * m, ld)
        zin = z
        zinT = zT
        w0 = b0 + m
        u0 += m


# --------------------------------------------------------------------------------------------
# Backward pass with tangents.
# --------------------------------------------------------------------------------------------
@kernel(inline="always")
def _weight_gradient(delta, zin, w0, out):
    """out[W^l] = delta^T zin (the weight gradient tile, over the rows of both: samples, or
    for H v the batch stacked twice), threaded by rows above the work threshold."""
    Bs, m_out = delta.shape
    m_in = zin.shape[1]
    dsrc = delta.reshape(Bs * m_out)
    zsrc = zin.reshape(Bs * m_in)
    if _THREADS and _thread_block(m_out, Bs * m_in * m_out) > 0:
        chunk = _thread_block(m_out, Bs * m_in * m_out)
        weight_gradient_rows_parallel(
            delta, zin, dsrc, zsrc, False, False, w0, out, chunk, m_in, False
        )
    else:
        weight_gradient_rows(delta, zin, dsrc, zsrc, False, False, w0, out, 0, m_out, 0, m_in)


@kernel(inline="always")
def _delta(theta, w0, delta, code, a_prev, acc, scratch):
    """acc = delta W (raw sums, W the (delta.shape[1], M) block of theta at w0), then a_prev
    *= acc (the delta tile and its h' epilogue), threaded by columns above the threshold."""
    B, m_out = delta.shape
    m_in = acc.shape[1]
    if _THREADS and _thread_block(m_in, B * m_in * m_out) > 0:
        chunk = _thread_block(m_in, B * m_in * m_out)
        delta_columns_parallel(theta, w0, delta, code, a_prev, acc, scratch, chunk)
    else:
        delta_columns(theta, w0, delta, code, a_prev, acc, scratch[:PACK], 0, m_in)


@kernel(inline="always")
def _backward(theta, v, sizes, codes, Y, work, out, exact, loss_code, weights):
    """After :func:`_forward` with tangents: H v (``exact``) or J_r^T J_r v into out; returns
    the loss (float64). A cross-entropy ``loss_code`` or ``weights`` (length B) seed the
    output with that loss's delta and Hessian, each sample's times its weight."""
    B = Y.shape[0]
    L = sizes.shape[0] - 1
    U, W, ld, o_dd, o_ra, o_hh, o_zc, o_x0, o_xt, o_zct, o_g, o_rg, o_dc, o_pk, o_ts, o_js, end = (
        _offsets(sizes, B)
    )
    scratch = work[o_ts : o_ts + _TASKS * PACK]
    m = sizes[L]
    u0 = U - m
    z = _rows(work, 2 * B * u0, B, m)
    rz = _rows(work, 2 * B * u0 + B * m, B, m)
    rd = _rows(work, o_dd + 2 * B * u0, B, m)
    d = _rows(work, o_dd + 2 * B * u0 + B * m, B, m)
    ra = _rows(work, o_ra + B * u0, B, m)
    hh = _rows(work, o_hh + B * u0, B, m)
    # The output: delta^L = r h'(a^L), r = z^L - y; R(delta^L) = R(z^L) h' + r h'' R(a^L).
    # For the Gauss-Newton product delta^L = J_r v h' = R(z^L) h'.
    # A cross-entropy loss (identity output: h' = 1, h'' = 0): delta^L = w (p - y),
    # R(delta^L) = w H_out R(z^L), the Gauss-Newton seed w H_out R(z^L) (H_out: the loss's
    # Hessian in the logits, losses.sample_output_hessian). Weights scale each sample's terms.
    total = 0.0
    if loss_code != SQUARED:
        for n in range(B):
            w = 1.0 if weights.shape[0] == 0 else np.float64(weights[n])
            sample_output_hessian(loss_code, z[n], rz[n], rd[n] if exact else d[n], w)
            if exact:
                total += sample_delta(loss_code, d[n], z[n], Y[n], w)
            elif w != 0.0:
                total += w * sample_loss(loss_code, z[n], Y[n])
    elif weights.shape[0] != 0:
        for n in range(B):
            w = np.float64(weights[n])
            t = 0.0
            for i in range(m):
                r = np.float64(z[n, i]) - np.float64(Y[n, i])
                t += 0.5 * (r * r)
                hp = d[n, i]
                if w == 0.0:  # the sample is removed, even where its values overflow
                    d[n, i] = 0.0
                    rd[n, i] = 0.0
                elif exact:
                    d[n, i] = (w * r) * hp
                    rd[n, i] = w * (rz[n, i] * hp + r * hh[n, i] * ra[n, i])
                else:
                    d[n, i] = w * (rz[n, i] * hp)
            if w != 0.0:
                total += w * t
    else:
        for n in range(B):
            for i in range(m):
                r = np.float64(z[n, i]) - np.float64(Y[n, i])
                total += 0.5 * (r * r)
                hp = d[n, i]
                if exact:
                    d[n, i] = r * hp
                    rd[n, i] = rz[n, i] * hp + r * hh[n, i] * ra[n, i]
                else:
                    d[n, i] = rz[n, i] * hp
    x0 = _rows(work, o_x0, B, sizes[0])
    w_end = theta.shape[0]
    for l in range(L, 0, -1):
        m_in = sizes[l - 1]
        m_out = sizes[l]
        b0 = w_end - m_out
        w0 = b0 - m_out * m_in
        rd = _rows(work, o_dd + 2 * B * u0, B, m_out)
        d = _rows(work, o_dd + 2 * B * u0 + B * m_out, B, m_out)
        u_prev = u0 - m_in
        if exact:
            if l > 1:  # [R(delta); delta] against [z; R(z)]: 2B rows
                _weight_gradient(
                    _rows(work, o_dd + 2 * B * u0, 2 * B, m_out),
                    _rows(work, 2 * B * u_prev, 2 * B, m_in), w0, out,
                )  # fmt: skip
            else:  # R(z^0) = 0
                _weight_gradient(rd, x0, w0, out)
            _bias_gradient(rd, out[b0 : b0 + m_out])
        else:
            _weight_gradient(d, _rows(work, 2 * B * u_prev, B, m_in) if l > 1 else x0, w0, out)
            _bias_gradient(d, out[b0 : b0 + m_out])
        if l > 1:
            code = codes[l - 2]
            rdp = _rows(work, o_dd + 2 * B * u_prev, B, m_in)
            dp = _rows(work, o_dd + 2 * B * u_prev + B * m_in, B, m_in)  # h'(a^(l-1)) now
            g = _rows(work, o_g, B, m_in)
            if exact:
                dc = _rows(work, o_dc, B, 2 * m_out)
                for n in range(B):
                    hr = dp[n]
                    pr = rdp[n]
                    for j in range(m_in):
                        pr[j] = hr[j]
                    cr = dc[n]
                    rr = rd[n]
                    dr = d[n]
                    for i in range(m_out):
                        cr[i] = rr[i]
                    for i in range(m_out):
                        cr[m_out + i] = dr[i]
                nw = m_out * m_in
                pk = work[o_pk : o_pk + 2 * nw]
                for k in range(nw):
                    pk[k] = theta[w0 + k]
                for k in range(nw):
                    pk[nw + k] = v[w0 + k]
                # R(delta^(l-1)) first part: ([R(delta) | delta] [W; V]) h', over a copy of h'
                _delta(pk, 0, dc, code, rdp, _rows(work, o_rg, B, m_in), scratch)
            _delta(theta, w0, d, code, dp, g, scratch)  # delta^(l-1) over h', g = delta W
            if exact:
                rap = _rows(work, o_ra + B * u_prev, B, m_in)
                hhp = _rows(work, o_hh + B * u_prev, B, m_in)
                for n in range(B):
                    pr = rdp[n]
                    gr = g[n]
                    hr = hhp[n]
                    ar = rap[n]
                    for j in range(m_in):
                        pr[j] = pr[j] + gr[j] * hr[j] * ar[j]
        u0 = u_prev
        w_end = w0
    return total


# --------------------------------------------------------------------------------------------
# Residual Jacobian.
# --------------------------------------------------------------------------------------------
@kernel(inline="always")
def _jacobian_samples(theta, sizes, work, out, b_lo, b_hi):
    """Rows b M^L + k of J_r for the samples b_lo..b_hi, after the forward pass.

    Per sample, P[k] = d f_k / d a^l (M^L rows) starts as h'(a^L_k) e_k and is propagated back
    like delta (P <- (P W^l) * h'(a^(l-1))); row b M^L + k of layer l's block is
    P[k, i] z^(l-1)_j, and P[k, i] for the bias. Scratch: the sample's two (M^L, W) blocks
    of the JS region.
    """
    B = out.shape[0] // sizes[sizes.shape[0] - 1]
    L = sizes.shape[0] - 1
    M = sizes[L]
    U, W, ld, o_dd, o_ra, o_hh, o_zc, o_x0, o_xt, o_zct, o_g, o_rg, o_dc, o_pk, o_ts, o_js, end = (
        _offsets(sizes, B)
    )
    for b in range(b_lo, b_hi):
        base = o_js + b * 2 * M * W
        P = work[base : base + M * W]
        Q = work[base + M * W : base + 2 * M * W]
        u0 = U - M
        hL = work[o_dd + 2 * B * u0 + B * M + b * M : o_dd + 2 * B * u0 + B * M + (b + 1) * M]
        for k in range(M):
            pk = P[k * W : k * W + M]
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
                x = work[2 * B * u_prev + b * m_in : 2 * B * u_prev + (b + 1) * m_in]
            else:
                u_prev = 0
                x = work[o_x0 + b * m_in : o_x0 + (b + 1) * m_in]
            for k in range(M):
                row = out[b * M + k]
                pk = P[k * W : k * W + m_out]
                for i in range(m_out):
                    c = pk[i]
                    dst = row[w0 + i * m_in : w0 + (i + 1) * m_in]
                    for j in range(m_in):
                        dst[j] = c * x[j]
                    row[b0 + i] = c
            if l > 1:
                h0 = o_dd + 2 * B * u_prev + B * m_in + b * m_in
                hd = work[h0 : h0 + m_in]
                for k in range(M):
                    pk = P[k * W : k * W + m_out]
                    qk = Q[k * W : k * W + m_in]
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
def _jacobian_samples_parallel(theta, sizes, work, out, chunk):
    """:func:`_jacobian_samples` over blocks of ``chunk`` samples in parallel (disjoint rows of
    out and disjoint scratch)."""
    B = out.shape[0] // sizes[sizes.shape[0] - 1]
    for c in prange((B + chunk - 1) // chunk):
        lo = c * chunk
        _jacobian_samples(theta, sizes, work, out, lo, min(lo + chunk, B))


@kernel
def _second_order(theta, sizes, codes, X, Y, v, work, out, mode, loss_code, weights):
    """The one compiled body of the three drivers; returns the loss (0.0 for the Jacobian).

    ``loss_code`` and ``weights`` (float, length B, or length 0 for none) choose the loss of
    :data:`HVP` and :data:`GNVP` (the generalized Gauss-Newton ``J^T H_out J v`` for a
    cross-entropy loss); :data:`JACOBIAN` ignores them.

    ``mode`` :data:`HVP` or :data:`GNVP`: ``out`` has shape (1, n_params) and receives H v or
    J_r^T J_r v; :data:`JACOBIAN`: ``out`` (B M^L, n_params) receives J_r, and Y and v are not
    read (any 2-D and 1-D arrays of the dtype will do). One body, one forward pass for all three
    modes, so that the large loop nests compile once (the drivers below are thin wrappers;
    fastbp.MLP calls this). Checks every argument it indexes before writing anything.
    """
    _check_shapes(theta, sizes, codes, X, work)
    L = sizes.shape[0] - 1
    B = X.shape[0]
    if mode == JACOBIAN:
        if out.shape[0] != B * sizes[L] or out.shape[1] != theta.shape[0]:
            raise ValueError("kernels: out must have shape (B * sizes[-1], len(theta))")
        if not _all_finite(X):
            raise ValueError("X: expected finite values, found NaN or Inf")
    elif mode == HVP or mode == GNVP:
        if out.shape[0] != 1 or out.shape[1] != theta.shape[0]:
            raise ValueError("kernels: out must have shape (1, len(theta))")
        if Y.shape[0] != B or Y.shape[1] != sizes[L]:
            raise ValueError("kernels: Y must have shape (B, sizes[-1])")
        if v.shape[0] != theta.shape[0]:
            raise ValueError("kernels: v must have the length of theta")
        check_loss_arguments(codes, B, loss_code, weights)
        _check_finite(X, Y)
        if not _all_finite(v.reshape((1, v.shape[0]))):
            raise ValueError("v: expected finite values, found NaN or Inf")
    else:
        raise ValueError("kernels: mode must be HVP, GNVP or JACOBIAN")
    if B == 0:  # an empty batch: the loss and its derivatives are 0, the Jacobian has no rows
        if mode != JACOBIAN:
            for k in range(out.shape[1]):
                out[0, k] = 0.0
        return 0.0
    _forward(theta, v, sizes, codes, X, work, mode != JACOBIAN, mode == HVP)
    if mode == JACOBIAN:
        chunk = _thread_block(B, B * sizes[L] * theta.shape[0])
        if _THREADS and chunk > 0:
            _jacobian_samples_parallel(theta, sizes, work, out, chunk)
        else:
            _jacobian_samples(theta, sizes, work, out, 0, B)
        return 0.0
    return _backward(theta, v, sizes, codes, Y, work, out[0], mode == HVP, loss_code, weights)


@kernel
def hvp(theta, sizes, codes, X, Y, v, work, out, loss_code=0, weights=None):
    """H v into ``out`` (n_params,): the Hessian of the loss with respect to theta times
    ``v``; returns the loss (float64). Pearlmutter's R-operator: one forward and one backward
    pass of tangents. With ``loss_code`` and ``weights`` (both given, as for
    :func:`loss_and_grad`): the loss of that code, each sample's term times its weight."""
    out2 = out.reshape((1, out.shape[0]))
    if weights is None:  # the squared loss without weights; theta[:0] allocates nothing
        return _second_order(theta, sizes, codes, X, Y, v, work, out2, HVP, 0, theta[:0])
    return _second_order(theta, sizes, codes, X, Y, v, work, out2, HVP, loss_code, weights)


@kernel
def gnvp(theta, sizes, codes, X, Y, v, work, out, loss_code=0, weights=None):
    """J_r^T J_r v into ``out`` (n_params,), the Gauss-Newton product (J_r: the Jacobian of the
    residuals f(x_n) - y_n with respect to theta); returns the loss (float64). With
    ``loss_code`` and ``weights``: ``J^T H_out J v`` (H_out the loss's Hessian in the outputs,
    per sample times its weight), the generalized Gauss-Newton product."""
    out2 = out.reshape((1, out.shape[0]))
    if weights is None:
        return _second_order(theta, sizes, codes, X, Y, v, work, out2, GNVP, 0, theta[:0])
    return _second_order(theta, sizes, codes, X, Y, v, work, out2, GNVP, loss_code, weights)


@kernel
def residual_jacobian(theta, sizes, codes, X, work, out):
    """J_r into ``out`` (B M^L, n_params): row ``b M^L + k`` is d f_k(x_b) / d theta."""
    _second_order(theta, sizes, codes, X, X, theta, work, out, JACOBIAN, 0, theta[:0])


@kernel
def second_order(theta, sizes, codes, X, Y, v, work, out, mode, loss_code=0, weights=None):
    """The compiled body (``mode``: :data:`HVP`, :data:`GNVP` or :data:`JACOBIAN`, the arguments
    as for the three drivers, ``out`` of shape (1, n_params) for the products); returns the
    loss. With ``loss_code`` and ``weights`` (both given): the loss of that code, each sample's
    term times its weight (the products only)."""
    if weights is None:
        return _second_order(theta, sizes, codes, X, Y, v, work, out, mode, 0, theta[:0])
    return _second_order(theta, sizes, codes, X, Y, v, work, out, mode, loss_code, weights)


# --------------------------------------------------------------------------------------------
# Serial twins: the drivers' own bytecode with _THREADS = False, so no parfor is compiled or
# entered (the Python layer calls them below PARALLEL_MIN_WORK or on one thread; see
# fastbp._kernels.drivers for the pattern). The inlined helpers that test _THREADS are twinned
# too (an inlined function reads its own module's globals), callees first.
# --------------------------------------------------------------------------------------------
_SERIAL = {**globals(), "_THREADS": False}
(
    _forward_layer_serial,
    _forward_serial,
    _weight_gradient_serial,
    _delta_serial,
    _backward_serial,
    _body_serial,
    _second_order_serial,
    _hvp_serial,
    _gnvp_serial,
    _residual_jacobian_serial,
) = twins(
    (
        _forward_layer, _forward, _weight_gradient, _delta, _backward, _second_order, second_order,
        hvp, gnvp, residual_jacobian,
    ),
    _SERIAL,
    "serial",
)  # fmt: skip
del _SERIAL
