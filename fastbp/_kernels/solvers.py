"""The compiled loops of the full-batch solvers: L-BFGS, Levenberg-Marquardt, Bayesian
regularization (the classes and their Python loop are :mod:`fastbp.solvers`).

One call runs iterations ``first <= k < stop`` over buffers the caller allocated once, and
keeps everything an iteration needs between calls in them (the current loss, the gradient, the
L-BFGS memory, ``mu``, ``alpha``, ``beta``), so how a fit is cut into calls never changes the
results. Everything is serial: the same bits at any thread count.

- :func:`lbfgs_steps`: the two-loop recursion (Nocedal and Wright, algorithm 7.4) and a line
  search meeting the strong Wolfe conditions, :func:`_line_search`, the logic of MINPACK-2's
  ``dcsrch`` and ``dcstep`` (More and Thuente 1994), as SciPy's L-BFGS-B uses them.
- :func:`lm_steps`: Levenberg-Marquardt (``(J^T J + mu I) dx = -J^T e``, ``mu`` down on
  success, up on failure, as MATLAB's ``trainlm``) and, with ``hyper[BAYES]``, Bayesian
  regularization (MacKay; Foresee and Hagan, as ``trainbr``), on whichever normal matrix is
  smaller: the N x N ``J^T J`` or the R x R ``J J^T`` (R = B M^L residuals), factored by an
  explicit-loop Cholesky (:func:`_cholesky`).
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import kernel

# The serial forward driver (network outputs, for the residuals of LM and BR).
from .drivers import _forward_serial as _forward

# The one place the solvers take the gradient from: the serial loss_and_grad driver (no
# single-sample branch, no parfor). A new gradient core is swapped in by changing this line.
from .drivers import _loss_and_grad_large as _gradient

# The serial residual Jacobian (fastbp.kernels.second_order in JACOBIAN mode).
from .second_order import JACOBIAN
from .second_order import _second_order_serial as _second_order

__all__ = [
    "ALPHA", "BAYES", "BETA", "CONVERGED", "DIVERGED", "GAMMA", "LINE_SEARCH_FAILED",
    "LOSS_NOT_FINITE", "MU", "MU_MAX_REACHED", "OK", "lbfgs_steps", "lm_steps",
]  # fmt: skip

#: ``status[0]`` after a call: every iteration asked for is done.
OK = 0
#: The loss at the starting parameters is NaN or Inf (nothing was changed).
LOSS_NOT_FINITE = 1
#: The tolerance is met (L-BFGS: gradient or relative decrease; LM: a zero loss).
CONVERGED = 2
#: L-BFGS: no step along steepest descent satisfies the line search (parameters unchanged).
LINE_SEARCH_FAILED = 3
#: L-BFGS: every trial point of the last line search had a NaN or Inf loss (unchanged).
DIVERGED = 4
#: LM, BR: ``mu`` grew past ``mu_max`` without a step that lowers the objective (unchanged).
MU_MAX_REACHED = 5

# hyper of lbfgs_steps
TOL = 0
C1 = 1
C2 = 2
XTOL = 3
MAX_LS = 4
# istate of lbfgs_steps: stored pairs, index of the newest, whether f and g are computed,
# evaluations of the gradient.
PAIRS = 0
NEWEST = 1
STARTED = 2
EVALS = 3

# hyper of lm_steps
MU_INC = 0
MU_DEC = 1
MU_MAX = 2
BAYES = 3
# fstate of lm_steps: mu, alpha, beta, gamma (effective parameters), the current sse, the
# number of residuals (weighted), the objective beta sse + alpha ssw.
MU = 0
ALPHA = 1
BETA = 2
GAMMA = 3
SSE = 4
N_RES = 5
OBJ = 6


# --------------------------------------------------------------------------------------------
# Small dense linear algebra, explicit loops (the solvers' own: not backprop kernels)
# --------------------------------------------------------------------------------------------
@kernel
def _dot(a, b, n):
    """sum_k a[k] b[k] for k < n in float64, over 8 lanes then summed in a fixed order (the
    SLP vectorizer packs the lanes; no fastmath reassociation needed)."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    m = n - n % 8
    for k in range(0, m, 8):
        s0 += a[k] * b[k]
        s1 += a[k + 1] * b[k + 1]
        s2 += a[k + 2] * b[k + 2]
        s3 += a[k + 3] * b[k + 3]
        s4 += a[k + 4] * b[k + 4]
        s5 += a[k + 5] * b[k + 5]
        s6 += a[k + 6] * b[k + 6]
        s7 += a[k + 7] * b[k + 7]
    for k in range(m, n):
        s0 += a[k] * b[k]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@kernel
def _cholesky(M, K):
    """Lower Cholesky factor of the symmetric M[:K, :K] in place (only the lower triangle is
    read and written); False if a pivot is not positive (M is then garbage).

    Row by row (left-looking): ``L[i, j] = (M[i, j] - L[i, :j] . L[j, :j]) / L[j, j]``, each
    a dot product of two contiguous rows, so row i stays in L1 while the rows above stream.
    """
    for i in range(K):
        Li = M[i]
        for j in range(i):
            Lj = M[j]
            Li[j] = (Li[j] - _dot(Li, Lj, j)) / Lj[j]
        d = Li[i] - _dot(Li, Li, i)
        if not d > 0.0:  # also False for NaN
            return False
        Li[i] = math.sqrt(d)
    return True


@kernel
def _solve(L, K, b):
    """b <- (L L^T)^-1 b, with L the lower factor in L[:K, :K]."""
    for i in range(K):
        b[i] = (b[i] - _dot(L[i], b, i)) / L[i, i]
    for i in range(K - 1, -1, -1):
        s = b[i]
        for j in range(i + 1, K):
            s -= L[j, i] * b[j]
        b[i] = s / L[i, i]


@kernel
def _inverse_trace(L, K, v):
    """tr((L L^T)^-1) = ||L^-1||_F^2: column i of L^-1 by forward substitution from the unit
    vector e_i (zero above row i). ``v``: scratch of length >= K."""
    total = 0.0
    for i in range(K):
        for r in range(K):
            v[r] = 0.0
        v[i] = 1.0 / L[i, i]
        total += v[i] * v[i]
        for r in range(i + 1, K):
            x = -_dot(L[r], v, r) / L[r, r]  # v[:i] is zero: the dot reads them as 0
            v[r] = x
            total += x * x
    return total


# --------------------------------------------------------------------------------------------
# L-BFGS
# --------------------------------------------------------------------------------------------
@kernel
def _evaluate(theta, sizes, codes, X, Y, loss_code, weights, scale, A, Z, tmp, gt, g):
    """The objective ``scale * loss`` (returned) and its gradient into ``g`` (float64)."""
    value = _gradient(theta, sizes, codes, X, Y, A, Z, tmp, gt, loss_code, weights)
    for i in range(g.shape[0]):
        g[i] = scale * np.float64(gt[i])
    return scale * value


@kernel
def _dcstep(stx, fx, dx, sty, fy, dy, stp, fp, dp, brackt, stpmin, stpmax):
    """MINPACK-2's ``dcstep``: the safeguarded trial step of the More-Thuente line search and
    the updated interval. Returns (stx, fx, dx, sty, fy, dy, stp, brackt)."""
    sgnd = np.sign(dp) * np.sign(dx)
    if fp > fx:
        # A higher value: the minimum is bracketed. The cubic step if closer to stx than the
        # quadratic one, else their mean.
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * math.sqrt(max(0.0, (theta / s) ** 2 - (dx / s) * (dp / s)))
        if stp < stx:
            gamma = -gamma
        p = (gamma - dx) + theta
        q = ((gamma - dx) + gamma) + dp
        stpc = stx + (p / q) * (stp - stx)
        stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
        if abs(stpc - stx) <= abs(stpq - stx):
            stpf = stpc
        else:
            stpf = stpc + (stpq - stpc) / 2.0
        brackt = True
    elif sgnd < 0.0:
        # A lower value, derivatives of opposite sign: bracketed. The cubic step if farther
        # from stp than the secant step, else the secant step.
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * math.sqrt(max(0.0, (theta / s) ** 2 - (dx / s) * (dp / s)))
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = ((gamma - dp) + gamma) + dx
        stpc = stp + (p / q) * (stx - stp)
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
        brackt = True
    elif abs(dp) < abs(dx):
        # A lower value, same signs, the derivative's magnitude decreasing.
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * math.sqrt(max(0.0, (theta / s) ** 2 - (dx / s) * (dp / s)))
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = (gamma + (dx - dp)) + gamma
        r = p / q
        if r < 0.0 and gamma != 0.0:
            stpc = stp + r * (stx - stp)
        elif stp > stx:
            stpc = stpmax
        else:
            stpc = stpmin
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        if brackt:
            stpf = stpc if abs(stpc - stp) < abs(stpq - stp) else stpq
            if stp > stx:
                stpf = min(stp + 0.66 * (sty - stp), stpf)
            else:
                stpf = max(stp + 0.66 * (sty - stp), stpf)
        else:
            stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
            stpf = min(max(stpf, stpmin), stpmax)
    else:
        # A lower value, same signs, the derivative not decreasing: the cubic step if
        # bracketed, else stpmin or stpmax.
        if brackt:
            theta = 3.0 * (fp - fy) / (sty - stp) + dy + dp
            s = max(abs(theta), abs(dy), abs(dp))
            gamma = s * math.sqrt(max(0.0, (theta / s) ** 2 - (dy / s) * (dp / s)))
            if stp > sty:
                gamma = -gamma
            p = (gamma - dp) + theta
            q = ((gamma - dp) + gamma) + dy
            stpf = stp + (p / q) * (sty - stp)
        elif stp > stx:
            stpf = stpmax
        else:
            stpf = stpmin
    if fp > fx:
        sty = stp
        fy = fp
        dy = dp
    else:
        if sgnd < 0.0:
            sty = stx
            fy = fx
            dy = dx
        stx = stp
        fx = fp
        dx = dp
    return stx, fx, dx, sty, fy, dy, stpf, brackt


@kernel
def _line_search(
    theta, sizes, codes, X, Y, loss_code, weights, scale, A, Z, tmp, gt,
    x0, d, g, f0, dg0, stp, max_evals, ftol, gtol, xtol, istate,
):  # fmt: skip
    """A step along ``d`` from ``x0`` (objective ``f0``, slope ``dg0 < 0``) meeting the strong
    Wolfe conditions ``f <= f0 + ftol stp dg0`` and ``|g.d| <= gtol |dg0|``: the logic of
    MINPACK-2's ``dcsrch`` (its stage 1 modified function, the bisection safeguard, its
    warnings). Leaves theta at the last trial point and g its gradient; returns
    ``(f, info, finite)``: info 0 converged, 1 a warning (the trial point stands), 2 no
    acceptable point within ``max_evals`` evaluations; finite, the number of trial points
    whose objective was finite.

    A trial point whose objective is NaN or Inf lowers the upper bound on the step to it and
    halves the distance from the best step (dcsrch has no such case).
    """
    N = theta.shape[0]
    stpmin = 0.0
    stpmax = 1e20
    brackt = False
    stage = 1
    gtest = ftol * dg0
    width = stpmax - stpmin
    width1 = width / 0.5
    stx = 0.0
    fx = f0
    gx = dg0
    sty = 0.0
    fy = f0
    gy = dg0
    stmin = 0.0
    stmax = stp + 4.0 * stp
    f = f0
    finite = 0
    for _ in range(max_evals):
        for i in range(N):
            theta[i] = x0[i] + stp * d[i]
        f = _evaluate(theta, sizes, codes, X, Y, loss_code, weights, scale, A, Z, tmp, gt, g)
        istate[EVALS] += 1
        dg = _dot(g, d, N)
        if not (math.isfinite(f) and math.isfinite(dg)):
            stpmax = stp
            stp = stx + 0.5 * (stp - stx)
            if brackt:
                stmax = min(stmax, stpmax)
            continue
        finite += 1
        ftest = f0 + stp * gtest
        if stage == 1 and f <= ftest and dg >= 0.0:
            stage = 2
        warn = False
        if brackt and (stp <= stmin or stp >= stmax):
            warn = True  # rounding errors prevent progress
        if brackt and stmax - stmin <= xtol * stmax:
            warn = True  # the interval is below xtol
        if stp == stpmax and f <= ftest and dg <= gtest:
            warn = True
        if stp == stpmin and (f > ftest or dg >= gtest):
            warn = True
        if f <= ftest and abs(dg) <= gtol * -dg0:
            return f, 0, finite
        if warn:
            return f, 1, finite
        if stage == 1 and f <= fx and f > ftest:
            # The modified function psi(stp) = f - f0 - ftol stp dg0 predicts the step.
            stx, fxm, gxm, sty, fym, gym, stp, brackt = _dcstep(
                stx, fx - stx * gtest, gx - gtest, sty, fy - sty * gtest, gy - gtest,
                stp, f - stp * gtest, dg - gtest, brackt, stmin, stmax,
            )  # fmt: skip
            fx = fxm + stx * gtest
            fy = fym + sty * gtest
            gx = gxm + gtest
            gy = gym + gtest
        else:
            stx, fx, gx, sty, fy, gy, stp, brackt = _dcstep(
                stx, fx, gx, sty, fy, gy, stp, f, dg, brackt, stmin, stmax
            )
        if brackt:
            if abs(sty - stx) >= 0.66 * width1:
                stp = stx + 0.5 * (sty - stx)
            width1 = width
            width = abs(sty - stx)
            stmin = min(stx, sty)
            stmax = max(stx, sty)
        else:
            stmin = stp + 1.1 * (stp - stx)
            stmax = stp + 4.0 * (stp - stx)
        stp = min(max(stp, stpmin), stpmax)
        if brackt and (stp <= stmin or stp >= stmax or stmax - stmin <= xtol * stmax):
            stp = stx  # no further progress possible: the best step so far
    return f, 2, finite


@kernel
def lbfgs_steps(
    theta, sizes, codes, X, Y, loss_code, weights, scale, A, Z, tmp, gt,
    hyper, S, Yh, rho, al, x0, g, g0, d, istate, fstate, losses, status, first, stop,
):  # fmt: skip
    """Iterations ``first <= k < stop`` of L-BFGS on ``scale * loss``; returns how many
    completed (``losses[k]``: the objective after iteration k).

    ``S``, ``Yh`` (m, N): the last m pairs ``s = x_(k+1) - x_k``, ``y = g_(k+1) - g_k`` as a
    ring (``istate[NEWEST]`` the newest of ``istate[PAIRS]``), ``rho = 1 / y.s``; a pair with
    ``y.s <= 1e-10 y.y`` (no positive curvature seen) is not stored. The first direction,
    and the one after a failed line search (the memory is then dropped and the iteration
    retried from the same point), is steepest descent with the step ``min(1, 1 / ||g||)``;
    the others start at step 1 with ``H_0 = (s.y / y.y) I``. ``x0``, ``g0``, ``d``, ``al``:
    scratch. ``fstate[0]``: the objective at theta, whose gradient ``g`` holds between calls.

    ``status[0]``: ``OK``; ``CONVERGED`` (``max|g| <= tol`` or a relative decrease
    ``(f_k - f_(k+1)) <= tol max(|f_k|, |f_(k+1)|, 1)``, the iteration counted);
    ``LOSS_NOT_FINITE`` at the start; ``LINE_SEARCH_FAILED`` or ``DIVERGED`` (theta back at the
    last iterate, that iteration not counted).
    """
    N = theta.shape[0]
    m = S.shape[0]
    tol = hyper[TOL]
    # Numba checks no bounds: a wrong buffer must raise, not write past its end.
    if (
        S.shape[1] != N or Yh.shape[0] != m or Yh.shape[1] != N or rho.shape[0] != m
        or al.shape[0] != m or x0.shape[0] != N or g.shape[0] != N or g0.shape[0] != N
        or d.shape[0] != N or gt.shape[0] != N or losses.shape[0] < stop or m < 1
        or istate.shape[0] <= EVALS or fstate.shape[0] < 1 or hyper.shape[0] <= MAX_LS
    ):  # fmt: skip
        raise ValueError("solvers: a buffer of lbfgs_steps has the wrong size")
    status[0] = OK
    if istate[STARTED] == 0:
        f = _evaluate(theta, sizes, codes, X, Y, loss_code, weights, scale, A, Z, tmp, gt, g)
        istate[EVALS] += 1
        if not math.isfinite(f):
            status[0] = LOSS_NOT_FINITE
            return 0
        fstate[0] = f
        istate[STARTED] = 1
    k = first
    while k < stop:
        f = fstate[0]
        pairs = istate[PAIRS]
        newest = istate[NEWEST]
        # Two-loop recursion: d = -H g.
        for i in range(N):
            d[i] = g[i]
        for t in range(pairs):
            j = (newest - t + m) % m
            al[j] = rho[j] * _dot(S[j], d, N)
            a = al[j]
            Yj = Yh[j]
            for i in range(N):
                d[i] -= a * Yj[i]
        if pairs > 0:
            gamma = 1.0 / (rho[newest] * _dot(Yh[newest], Yh[newest], N))
            for i in range(N):
                d[i] *= gamma
        for t in range(pairs - 1, -1, -1):
            j = (newest - t + m) % m
            b = rho[j] * _dot(Yh[j], d, N)
            c = al[j] - b
            Sj = S[j]
            for i in range(N):
                d[i] += c * Sj[i]
        for i in range(N):
            d[i] = -d[i]
        dg = _dot(d, g, N)
        gnorm = math.sqrt(_dot(g, g, N))
        if gnorm == 0.0:
            status[0] = CONVERGED
            losses[k] = f
            return k - first + 1
        if not dg < 0.0:  # not a descent direction (rounding): steepest descent afresh
            istate[PAIRS] = 0
            pairs = 0
            for i in range(N):
                d[i] = -g[i]
            dg = -gnorm * gnorm
        stp = 1.0 if pairs > 0 else min(1.0, 1.0 / gnorm)
        for i in range(N):
            x0[i] = theta[i]
            g0[i] = g[i]
        f_new, info, finite = _line_search(
            theta, sizes, codes, X, Y, loss_code, weights, scale, A, Z, tmp, gt,
            x0, d, g, f, dg, stp, int(hyper[MAX_LS]), hyper[C1], hyper[C2], hyper[XTOL],
            istate,
        )  # fmt: skip
        if info == 2 or not f_new <= f:
            # Back to the last iterate; retry along steepest descent with an empty memory.
            for i in range(N):
                theta[i] = x0[i]
                g[i] = g0[i]
            if pairs > 0:
                istate[PAIRS] = 0
                continue
            status[0] = DIVERGED if finite == 0 else LINE_SEARCH_FAILED
            return k - first
        fstate[0] = f_new
        # The new pair, from the parameters as stored (rounded to their dtype).
        j = (newest + 1) % m
        Sj = S[j]
        Yj = Yh[j]
        for i in range(N):
            Sj[i] = np.float64(theta[i]) - x0[i]
            Yj[i] = g[i] - g0[i]
        sy = _dot(Sj, Yj, N)
        yy = _dot(Yj, Yj, N)
        if sy > 1e-10 * yy and sy > 0.0:
            rho[j] = 1.0 / sy
            istate[NEWEST] = j
            istate[PAIRS] = min(pairs + 1, m)
        losses[k] = f_new
        k += 1
        gmax = 0.0
        for i in range(N):
            gmax = max(gmax, abs(g[i]))
        if gmax <= tol or (f - f_new) <= tol * max(abs(f), abs(f_new), 1.0):
            status[0] = CONVERGED
            return k - first
    return stop - first


# --------------------------------------------------------------------------------------------
# Levenberg-Marquardt and Bayesian regularization
# --------------------------------------------------------------------------------------------
@kernel
def _residuals(theta, sizes, codes, X, Y, sw, A, Z, out, e):
    """e = sqrt(w_n) (f(x_n) - y_n), row-major (B M^L,), float64; returns sum e^2 (the
    weighted sum of squares; NaN if an output is not finite)."""
    _forward(theta, sizes, codes, X, A, Z, out)
    m = out.shape[1]
    total = 0.0
    for n in range(out.shape[0]):
        w = sw[n] if sw.shape[0] > 0 else 1.0
        for i in range(m):
            r = w * (np.float64(out[n, i]) - np.float64(Y[n, i]))
            e[n * m + i] = r
            total += r * r
    return total


@kernel
def _sum_squares(theta):
    s = 0.0
    for i in range(theta.shape[0]):
        s += np.float64(theta[i]) * np.float64(theta[i])
    return s


@kernel
def _normal_matrix(J, sw, m, primal, H):
    """Scale the rows of J by sqrt(w_n) (``sw``; none when empty) and write the lower
    triangle of ``J^T J`` (primal, N x N) or ``J J^T`` (R x R) into H (float64).

    ``J^T J`` by rank-1 updates of its rows, sample by sample (each a contiguous axpy that
    vectorizes; every entry summed over r in order); ``J J^T`` by dot products of rows.
    """
    R, N = J.shape
    if sw.shape[0] > 0:
        for r in range(R):
            w = sw[r // m]
            for i in range(N):
                J[r, i] = w * J[r, i]
    if primal:
        for i in range(N):
            for j in range(i + 1):
                H[i, j] = 0.0
        for r in range(R):
            Jr = J[r]
            for i in range(N):
                c = np.float64(Jr[i])
                if c != 0.0:
                    Hi = H[i]
                    for j in range(i + 1):
                        Hi[j] += c * np.float64(Jr[j])
    else:
        for a in range(R):
            for b in range(a + 1):
                H[a, b] = _dot(J[a], J[b], N)


@kernel
def _shifted(H, K, beta, c, Lm):
    """Lm = beta H + c I (lower triangles)."""
    for i in range(K):
        for j in range(i):
            Lm[i, j] = beta * H[i, j]
        Lm[i, i] = beta * H[i, i] + c


@kernel
def _step(J, e, x0, primal, beta, alpha, c, Lm, g, u, dx):
    """The damped Gauss-Newton step ``dx = -(beta J^T J + c I)^-1 (beta J^T e + alpha x0)``
    from the factor of ``beta J^T J + c I`` (primal) or ``beta J J^T + c I`` (dual) in Lm.

    Dual, by ``(beta J^T J + c I)^-1 J^T = J^T (beta J J^T + c I)^-1``:
    ``dx = -beta J^T (beta J J^T + c I)^-1 e - (alpha / c) (x0 - beta J^T (...)^-1 J x0)``
    (the second term only when alpha > 0; then c >= alpha, far from 0). ``g`` holds
    ``J^T e``; ``u``: scratch of length R.
    """
    R, N = J.shape
    if primal:
        for i in range(N):
            dx[i] = -(beta * g[i] + alpha * x0[i])
        _solve(Lm, N, dx)
        return
    for r in range(R):
        u[r] = e[r]
    _solve(Lm, R, u)
    for i in range(N):
        dx[i] = 0.0
    for r in range(R):
        a = -beta * u[r]
        Jr = J[r]
        for i in range(N):
            dx[i] += a * np.float64(Jr[i])
    if alpha > 0.0:
        for r in range(R):
            u[r] = _dot_mixed(J[r], x0, N)
        _solve(Lm, R, u)
        for i in range(N):
            s = x0[i]
            for r in range(R):
                s -= beta * np.float64(J[r, i]) * u[r]
            dx[i] -= (alpha / c) * s


@kernel
def _dot_mixed(a, b, n):
    """sum_k a[k] b[k] in float64 for a of the network dtype, b float64, in order."""
    s = 0.0
    for k in range(n):
        s += np.float64(a[k]) * b[k]
    return s


@kernel
def lm_steps(
    theta, sizes, codes, X, Y, sw, A, Z, out, work, J, e, e2, H, Lm, g, dx, u, x0,
    hyper, fstate, istate, primal, inv_total, losses, mus, alphas, betas, gammas, status,
    first, stop,
):  # fmt: skip
    """Iterations ``first <= k < stop`` of Levenberg-Marquardt, or (``hyper[BAYES]``) of
    Bayesian regularization; returns how many completed.

    Each iteration: the residuals ``e`` (weighted by sqrt(w_n)) and the residual Jacobian J
    at theta (:func:`fastbp.kernels.residual_jacobian`'s serial body), ``g = J^T e``, the
    normal matrix H (``J^T J`` if ``primal``, else ``J J^T``); then, from ``mu``, try
    ``dx`` (:func:`_step`) on the objective ``F = beta sse + alpha ssw`` (LM: beta 1, alpha 0,
    so F is the weighted sum of squared residuals; BR: ssw the sum of squared parameters),
    accept it if F falls (``mu *= mu_decrease``), else ``mu *= mu_increase`` and retry, as
    ``trainlm`` and ``trainbr``. BR then re-estimates, as ``trainbr`` does with the J of the
    iteration's start: ``gamma = N - alpha tr((beta J^T J + alpha I)^-1)`` (the dual:
    ``R - alpha tr((beta J J^T + alpha I)^-1)``, the same number: J^T J has the nonzero
    eigenvalues of J J^T and N - R zeros), ``alpha = gamma / (2 ssw)``,
    ``beta = (n - gamma) / (2 sse)``, n the (weighted) number of residuals.

    Records per iteration: ``losses[k] = inv_total sse / 2`` (the mean per-sample loss),
    ``mus``, ``alphas``, ``betas``, ``gammas``. Scratch: ``u`` of length >= max(N, R),
    ``e2`` like ``e``, ``x0``, ``dx``. ``status[0]``: ``OK``, ``LOSS_NOT_FINITE`` at
    the start, ``CONVERGED`` (a zero sse), ``MU_MAX_REACHED`` (theta unchanged by that
    iteration, not counted).
    """
    R, N = J.shape
    K = N if primal else R
    m = sizes[sizes.shape[0] - 1]
    bayes = hyper[BAYES] != 0.0
    # Numba checks no bounds: a wrong buffer must raise, not write past its end.
    if (
        N != theta.shape[0] or R != X.shape[0] * m or e.shape[0] != R or e2.shape[0] != R
        or H.shape[0] < K or H.shape[1] < K or Lm.shape[0] < K or Lm.shape[1] < K
        or g.shape[0] != N or dx.shape[0] != N or x0.shape[0] != N or u.shape[0] < max(N, R)
        or losses.shape[0] < stop or mus.shape[0] < stop or alphas.shape[0] < stop
        or betas.shape[0] < stop or gammas.shape[0] < stop or fstate.shape[0] <= OBJ
        or (sw.shape[0] != 0 and sw.shape[0] != X.shape[0])
    ):  # fmt: skip
        raise ValueError("solvers: a buffer of lm_steps has the wrong size")
    status[0] = OK
    if istate[0] == 0:
        sse = _residuals(theta, sizes, codes, X, Y, sw, A, Z, out, e)
        if not math.isfinite(sse):
            status[0] = LOSS_NOT_FINITE
            return 0
        fstate[SSE] = sse
        fstate[OBJ] = fstate[BETA] * sse + fstate[ALPHA] * _sum_squares(theta)
        istate[0] = 1
    for k in range(first, stop):
        sse = fstate[SSE]
        if sse == 0.0:
            status[0] = CONVERGED
            return k - first
        alpha = fstate[ALPHA]
        beta = fstate[BETA]
        _second_order(theta, sizes, codes, X, X, theta, work, J, JACOBIAN)
        _normal_matrix(J, sw, m, primal, H)
        for i in range(N):
            x0[i] = np.float64(theta[i])
            g[i] = 0.0
        for r in range(R):
            a = e[r]
            Jr = J[r]
            for i in range(N):
                g[i] += a * np.float64(Jr[i])
        mu = fstate[MU]
        accepted = False
        while mu <= hyper[MU_MAX]:
            c = mu + alpha
            _shifted(H, K, beta, c, Lm)
            if _cholesky(Lm, K):
                _step(J, e, x0, primal, beta, alpha, c, Lm, g, u, dx)
                for i in range(N):
                    theta[i] = x0[i] + dx[i]
                sse2 = _residuals(theta, sizes, codes, X, Y, sw, A, Z, out, e2)
                obj2 = beta * sse2 + alpha * _sum_squares(theta)
                if math.isfinite(obj2) and obj2 < fstate[OBJ]:
                    mu = mu * hyper[MU_DEC]
                    accepted = True
                    break
            mu = mu * hyper[MU_INC]
        if not accepted:
            for i in range(N):
                theta[i] = x0[i]
            fstate[MU] = mu
            status[0] = MU_MAX_REACHED
            return k - first
        fstate[MU] = mu
        for r in range(R):
            e[r] = e2[r]
        fstate[SSE] = sse2
        ssw = _sum_squares(theta)
        if bayes:
            gamma = fstate[GAMMA]
            if alpha > 0.0:
                _shifted(H, K, beta, alpha, Lm)
                if _cholesky(Lm, K):
                    gamma = K - alpha * _inverse_trace(Lm, K, u)
            else:
                gamma = min(N, R)  # the limit alpha -> 0: the rank of J^T J (at most that)
            n_res = fstate[N_RES]
            # A guard for gamma close to n (more effective parameters than data): beta stays
            # positive and finite.
            beta = max(n_res - gamma, 0.5) / (2.0 * sse2) if sse2 > 0.0 else beta
            alpha = gamma / (2.0 * ssw) if ssw > 0.0 else alpha
            fstate[GAMMA] = gamma
            fstate[ALPHA] = alpha
            fstate[BETA] = beta
        fstate[OBJ] = beta * sse2 + alpha * ssw
        losses[k] = 0.5 * sse2 * inv_total
        mus[k] = mu
        alphas[k] = fstate[ALPHA]
        betas[k] = fstate[BETA]
        gammas[k] = fstate[GAMMA]
    return stop - first
