"""The compiled loop of :class:`fastbp.LevenbergMarquardt` and
:class:`fastbp.BayesianRegularization`: :func:`lm_steps`.

Levenberg-Marquardt (``(J^T J + mu I) dx = -J^T e``, ``mu`` down on success, up on failure, as
MATLAB's ``trainlm``) and, with ``hyper[BAYES]``, Bayesian regularization (MacKay; Foresee and
Hagan, as ``trainbr``), on whichever normal matrix is smaller: the N x N ``J^T J`` or the R x R
``J J^T`` (R = B M^L residuals), factored by the explicit-loop Cholesky of
:mod:`fastbp._kernels.solvers`.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import kernel

# The serial forward driver (network outputs, for the residuals).
from .drivers import _forward_serial as _forward

# The serial residual Jacobian (fastbp.kernels.second_order in JACOBIAN mode).
from .second_order import JACOBIAN
from .second_order import _second_order_serial as _second_order
from .solvers import (
    CONVERGED,
    LOSS_NOT_FINITE,
    MU_MAX_REACHED,
    OK,
    _cholesky,
    _dot,
    _dot_mixed,
    _inverse_trace,
    _solve,
)

__all__ = ["ALPHA", "BAYES", "BETA", "GAMMA", "MU", "lm_steps"]

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
