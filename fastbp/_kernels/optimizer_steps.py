"""The compiled optimiser updates behind :mod:`fastbp.optim`: SGD (momentum, Nesterov) and Adam
as in-place passes over the flat ``theta``, with the finiteness check of the new values fused
into the same pass.

The update rules and what ``scale`` and ``weight_decay`` mean are in :mod:`fastbp.optim`, whose
classes validate the hyper-parameters, own the state and call :func:`optimizer_step`; the
training kernels (:mod:`fastbp._kernels.train_steps`) call :func:`optimizer_step` and
:func:`layer_step` directly.
"""

from __future__ import annotations

import math

from .._jit import kernel

__all__ = [
    "ADAM_KIND",
    "BETA1",
    "BETA2",
    "EPS",
    "LR",
    "MOMENTUM",
    "NESTEROV",
    "N_HYPER",
    "SGD_KIND",
    "WEIGHT_DECAY",
    "layer_step",
    "optimizer_step",
    "state_rows",
]

# Optimiser kinds, the integer the kernels branch on (never a function argument: see _jit).
SGD_KIND = 0
ADAM_KIND = 1
# Slots of the float64 hyper-parameter vector.
LR = 0
MOMENTUM = 1
NESTEROV = 2
WEIGHT_DECAY = 3
BETA1 = 4
BETA2 = 5
EPS = 6
N_HYPER = 7


# --------------------------------------------------------------------------------------------
# Kernels. Each case has its own loop without branches inside, so that LLVM can vectorize it.
# ``bad`` ORs together the non-finiteness of every value written (x - x is 0 exactly for finite
# x and NaN for NaN or Inf), so detecting divergence costs no second pass over memory. A bool OR
# keeps the loop vectorized, while a float sum of (x - x) would serialize it: without fastmath
# LLVM may not reorder a floating-point reduction (docs/perf-log.md, "Moved from the source
# comments").
# --------------------------------------------------------------------------------------------
@kernel
def _sgd(theta, grad, scale, velocity, lr, momentum, nesterov, weight_decay):
    n = theta.shape[0]
    bad = False
    if momentum == 0.0:
        for k in range(n):
            t = theta[k] - lr * (scale * grad[k] + weight_decay * theta[k])
            theta[k] = t
            bad |= (t - t) != 0.0
    elif nesterov:
        for k in range(n):
            g = scale * grad[k] + weight_decay * theta[k]
            v = momentum * velocity[k] + g
            velocity[k] = v
            t = theta[k] - lr * (g + momentum * v)
            theta[k] = t
            bad |= ((t - t) + (v - v)) != 0.0
    else:
        for k in range(n):
            v = momentum * velocity[k] + (scale * grad[k] + weight_decay * theta[k])
            velocity[k] = v
            t = theta[k] - lr * v
            theta[k] = t
            bad |= ((t - t) + (v - v)) != 0.0
    return not bad


@kernel
def _adam(theta, grad, scale, m1, m2, step, lr, beta1, beta2, eps, weight_decay):
    # Bias corrections in float64 from the step number t (>= 1).
    c1 = 1.0 - beta1**step
    c2 = 1.0 - beta2**step
    n = theta.shape[0]
    bad = False
    for k in range(n):
        g = scale * grad[k] + weight_decay * theta[k]
        m = beta1 * m1[k] + (1.0 - beta1) * g
        v = beta2 * m2[k] + (1.0 - beta2) * (g * g)
        m1[k] = m
        m2[k] = v
        t = theta[k] - lr * (m / c1) / (math.sqrt(v / c2) + eps)
        theta[k] = t
        bad |= ((t - t) + (m - m) + (v - v)) != 0.0
    return not bad


@kernel
def _update(kind, hyper, step, theta, grad, scale, s0, s1):
    """The update of ``kind`` on (slices of) theta, grad and the state rows s0, s1."""
    if kind == SGD_KIND:
        return _sgd(
            theta, grad, scale, s0, hyper[LR], hyper[MOMENTUM], hyper[NESTEROV] != 0.0,
            hyper[WEIGHT_DECAY],
        )  # fmt: skip
    return _adam(
        theta, grad, scale, s0, s1, float(step), hyper[LR], hyper[BETA1], hyper[BETA2],
        hyper[EPS], hyper[WEIGHT_DECAY],
    )  # fmt: skip


@kernel
def optimizer_step(kind, hyper, count, theta, grad, scale, state):
    """One in-place update of ``theta``; returns True when every value written is finite.

    Parameters
    ----------
    kind : int
        ``SGD_KIND`` or ``ADAM_KIND``.
    hyper : float64 ndarray, shape (N_HYPER,)
        Hyper-parameters at the slots ``LR``, ``MOMENTUM``, ``NESTEROV``, ``WEIGHT_DECAY``,
        ``BETA1``, ``BETA2``, ``EPS``.
    count : int64 ndarray, shape (1,)
        Steps taken so far; incremented here (Adam's ``t`` is the new value).
    theta, grad : ndarray, shape (n_params,)
        Parameters (updated in place) and the gradient, of one dtype.
    scale : float
        Factor applied to ``grad`` (1 / batch size for a mean gradient).
    state : ndarray, shape (rows, n_params)
        Optimiser state in the dtype of theta: SGD's velocity (one row), Adam's ``m`` and
        ``v`` (two rows); ``rows >= state_rows(kind)``.
    """
    n = theta.shape[0]
    if grad.shape[0] != n or state.shape[1] != n:
        raise ValueError("optimizer_step: grad and state must have the length of theta")
    if state.shape[0] < state_rows(kind):
        raise ValueError("optimizer_step: state has fewer rows than the optimiser needs")
    count[0] += 1
    s0, s1 = _rows(state)
    return _update(kind, hyper, count[0], theta, grad, scale, s0, s1)


@kernel
def state_rows(kind):
    """Rows of state that ``kind`` reads and writes: SGD's velocity, Adam's m and v."""
    return 1 if kind == SGD_KIND else 2


@kernel
def _rows(state):
    """The two state rows the updates take; SGD's one row stands in for the second, which
    SGD never reads (a (1, n) state, not Adam's (2, n))."""
    return state[0], state[1] if state.shape[0] > 1 else state[0]


@kernel
def layer_step(kind, hyper, step, theta, w0, b0, delta, zin, state, grow):
    """The update of one layer from one sample, without a gradient array: fused backprop.

    For ``batch_size = 1`` the gradient of ``W^l`` is the outer product ``delta zin^T``. Each
    row ``delta[i] * zin`` is formed in ``grow`` (``len(zin)``, stays in L1) and applied at once
    by the same loops as :func:`optimizer_step` (plain SGD forms it on the fly), so the result
    is that of ``loss_and_grad`` followed by ``optimizer_step`` (the same bits unless the
    compiler contracts ``d * zin[j] + ...`` into an FMA), but ``theta`` is the only large array
    touched: for [784, 128, 10] in float64 it (800 KB) stays in a 1 MB L2 cache, where a
    separate gradient (another 800 KB, written then read back) would push both to L3.
    ``step`` is the step number after ``count`` was incremented (Adam's ``t``). Returns True
    when every value written is finite.
    """
    m_out = delta.shape[0]
    m_in = zin.shape[0]
    if state.shape[0] < state_rows(kind) or state.shape[1] != theta.shape[0]:
        raise ValueError("layer_step: state must have state_rows(kind) rows of len(theta)")
    s0, s1 = _rows(state)
    ok = True
    if kind == SGD_KIND and hyper[MOMENTUM] == 0.0:
        # Plain SGD, the classic per-sample rule: the row of the outer product is formed on the
        # fly (the expression of _sgd with scale = 1 and grad = d * zin[j], so the same bits).
        lr = hyper[LR]
        wd = hyper[WEIGHT_DECAY]
        bad = False
        for i in range(m_out):
            d = delta[i]
            row = w0 + i * m_in
            W = theta[row : row + m_in]
            for j in range(m_in):
                t = W[j] - lr * (1.0 * (d * zin[j]) + wd * W[j])
                W[j] = t
                bad |= (t - t) != 0.0
        stop = b0 + m_out
        ok = _sgd(theta[b0:stop], delta, 1.0, s0[b0:stop], lr, 0.0, False, wd)
        return ok and not bad
    for i in range(m_out):
        d = delta[i]
        for j in range(m_in):
            grow[j] = d * zin[j]
        row = w0 + i * m_in
        stop = row + m_in
        ok &= _update(
            kind, hyper, step, theta[row:stop], grow[:m_in], 1.0, s0[row:stop], s1[row:stop]
        )
    stop = b0 + m_out
    ok &= _update(kind, hyper, step, theta[b0:stop], delta, 1.0, s0[b0:stop], s1[b0:stop])
    return ok
