"""The compiled loop of :class:`fastbp.LBFGS`: :func:`lbfgs_steps`.

The two-loop recursion (Nocedal and Wright, algorithm 7.4) and a line search meeting the strong
Wolfe conditions, :func:`_line_search`, the logic of MINPACK-2's ``dcsrch`` and ``dcstep``
(More and Thuente 1994), as SciPy's L-BFGS-B uses them. Status codes and the dot product:
:mod:`fastbp._kernels.solvers`.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import kernel

# The one place the full-batch solvers take the gradient from: the serial sample-blocked
# loss_and_grad driver (the whole-batch drivers' bits; no parfor).
from .blocked import loss_and_grad_blocked as _gradient
from .solvers import CONVERGED, DIVERGED, LINE_SEARCH_FAILED, LOSS_NOT_FINITE, OK, _dot

__all__ = ["EVALS", "lbfgs_steps"]

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
