"""The loss table's compiled pieces: the output delta and the loss of every loss, by integer code.

A loss is selected by an integer code (:data:`SQUARED`, :data:`SOFTMAX_CE`, :data:`SIGMOID_CE`,
the order of :data:`fastbp.losses.LOSSES`), branched on once per sample, never by passing a
compiled function (STYLE.md, rule 4). Everything a driver needs at the output layer is here:

- :func:`sample_delta` -- THE one place that writes ``delta^L`` of one sample and returns its
  loss, for any code and weight: the batch loop :func:`loss_delta` calls it, and so can any
  other kernel that needs the output delta of one sample (the derivative methods);
- :func:`sample_loss` -- the loss of one sample, without a delta (forward-only drivers);
- :func:`output_delta` and :func:`residual_loss` -- the squared loss without weights, the
  seed's eq. (1), kept exactly as they were (summed element by element in sample order), so
  the squared loss is unchanged bit for bit;
- :func:`one_hot` and :func:`check_targets`, which turn class labels into one-hot rows in a
  caller's buffer and check probability targets, without allocating.

Weights: an array of shape ``(B,)`` (float64), or of length 0 for "no weights" (every sample
weight 1); a weight multiplies the sample's loss and its delta, a weight 0 removes the sample
(its delta is 0 and it adds nothing, even where its loss would overflow).

The cross-entropy losses take the outputs as logits (the last activation must be the identity,
so ``h'(a^L) = 1``): softmax cross-entropy ``-sum_k y_k log softmax(z)_k`` evaluated as
``sum_k y_k (lse(z) - z_k)`` with ``lse(z) = max(z) + log sum_k exp(z_k - max(z))``, finite for
any finite logits (``exp`` of a non-positive number only), delta ``softmax(z) - y``; sigmoid
cross-entropy ``sum_k max(z_k, 0) - z_k y_k + log(1 + exp(-|z_k|))``, delta ``sigmoid(z) - y``.
Everything is computed in float64 whatever the dtype, and a float32 delta is rounded once.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import kernel
from .layers import IDENTITY

__all__ = [
    "SIGMOID_CE", "SOFTMAX_CE", "SQUARED", "check_targets", "loss_delta", "loss_sum",
    "one_hot", "output_delta", "residual_loss", "sample_delta", "sample_loss",
    "sample_output_hessian",
]  # fmt: skip

# Loss codes, in the order of fastbp.losses.LOSSES (a test checks they agree).
SQUARED = 0
SOFTMAX_CE = 1
SIGMOID_CE = 2
N_LOSSES = 3


# --------------------------------------------------------------------------------------------
# The squared loss without weights: the seed's eq. (1), unchanged.
# --------------------------------------------------------------------------------------------
@kernel(inline="always")
def residual_loss(zL, Y):
    """sum_n 1/2 ||z^L_n - y_n||^2 in float64, in sample order (the loss drivers' and the plain
    tier's one loop, so they sum alike; inlined into the drivers)."""
    total = 0.0
    for n in range(zL.shape[0]):
        for i in range(zL.shape[1]):
            r = np.float64(zL[n, i]) - np.float64(Y[n, i])
            total += 0.5 * (r * r)
    return total


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


# --------------------------------------------------------------------------------------------
# One sample, any loss: the loss table.
# --------------------------------------------------------------------------------------------
@kernel
def _log_sum_exp(z):
    """(max z, sum_k exp(z_k - max z)) of a row of logits, in float64."""
    m = z.shape[0]
    top = np.float64(z[0])
    for k in range(1, m):
        top = max(top, np.float64(z[k]))
    s = 0.0
    for k in range(m):
        s += math.exp(np.float64(z[k]) - top)
    return top, s


@kernel
def sample_loss(code, z, y):
    """Loss of one sample (float64, unweighted): outputs ``z`` (M^L,), targets ``y`` (M^L,)."""
    m = z.shape[0]
    total = 0.0
    if code == SOFTMAX_CE:
        top, s = _log_sum_exp(z)
        lse = top + math.log(s)
        for k in range(m):
            yk = np.float64(y[k])
            if yk != 0.0:  # a 0 target adds nothing, whatever the logit
                total += yk * (lse - np.float64(z[k]))
    elif code == SIGMOID_CE:
        for k in range(m):
            zk = np.float64(z[k])
            total += max(zk, 0.0) - zk * np.float64(y[k]) + math.log1p(math.exp(-abs(zk)))
    else:
        for k in range(m):
            r = np.float64(z[k]) - np.float64(y[k])
            total += 0.5 * (r * r)
    return total


@kernel
def sample_delta(code, a, z, y, w):
    """delta^L of one sample over ``a`` (which holds h'(a^L)), times the weight ``w``; returns
    the sample's loss times ``w`` (float64).

    The one function that knows every loss's output delta: squared ``(z - y) h'(a)``, softmax
    cross-entropy ``softmax(z) - y``, sigmoid cross-entropy ``sigmoid(z) - y`` (both for an
    identity output, ``h' = 1``). A weight of 0 writes a zero delta and returns 0.
    """
    m = z.shape[0]
    if w == 0.0:
        for k in range(m):
            a[k] = 0.0
        return 0.0
    total = 0.0
    if code == SOFTMAX_CE:
        top, s = _log_sum_exp(z)
        lse = top + math.log(s)
        for k in range(m):
            zk = np.float64(z[k])
            yk = np.float64(y[k])
            if yk != 0.0:
                total += yk * (lse - zk)
            a[k] = w * (math.exp(zk - top) / s - yk)
    elif code == SIGMOID_CE:
        for k in range(m):
            zk = np.float64(z[k])
            yk = np.float64(y[k])
            e = math.exp(-abs(zk))
            p = (1.0 if zk >= 0.0 else e) / (1.0 + e)
            total += max(zk, 0.0) - zk * yk + math.log1p(e)
            a[k] = w * (p - yk)
    else:
        for k in range(m):
            r = np.float64(z[k]) - np.float64(y[k])
            total += 0.5 * (r * r)
            a[k] = (w * r) * a[k]
    return w * total


@kernel
def sample_output_hessian(code, z, u, out, w):
    """``out = w (d^2 l / dz^2) u`` for one sample of a cross-entropy loss (logits ``z``,
    direction ``u``, both (M^L,)): the second-order drivers' R(delta^L) and Gauss-Newton seed.

    Softmax cross-entropy: ``p * u - p (p . u)`` with ``p = softmax(z)``; sigmoid
    cross-entropy: ``s (1 - s) u`` as ``e / (1 + e)^2 u``, ``e = exp(-|z|)`` (no cancellation
    where ``s`` is near 1). In float64, rounded once into ``out``; a weight of 0 writes 0.
    """
    m = z.shape[0]
    if w == 0.0:
        for k in range(m):
            out[k] = 0.0
        return
    if code == SOFTMAX_CE:
        top, s = _log_sum_exp(z)
        pu = 0.0
        for k in range(m):
            pu += (math.exp(np.float64(z[k]) - top) / s) * np.float64(u[k])
        for k in range(m):
            p = math.exp(np.float64(z[k]) - top) / s
            out[k] = w * (p * (np.float64(u[k]) - pu))
    else:
        for k in range(m):
            e = math.exp(-abs(np.float64(z[k])))
            out[k] = w * (e / ((1.0 + e) * (1.0 + e)) * np.float64(u[k]))


# --------------------------------------------------------------------------------------------
# Every sample: what the drivers call.
# --------------------------------------------------------------------------------------------
@kernel
def loss_delta(code, a, z, Y, weights):
    """delta^L over ``a`` (B, M^L) for loss ``code`` and ``weights`` ((B,) or length 0 for
    none); returns the (weighted) loss, summed in float64 in sample order.

    The squared loss without weights is :func:`output_delta` itself (the same bits).
    """
    B = a.shape[0]
    if code == SQUARED and weights.shape[0] == 0:
        return output_delta(a, z, Y)
    total = 0.0
    for n in range(B):
        w = 1.0 if weights.shape[0] == 0 else np.float64(weights[n])
        total += sample_delta(code, a[n], z[n], Y[n], w)
    return total


@kernel
def loss_sum(code, zL, Y, weights):
    """The (weighted) loss of outputs ``zL`` (B, M^L) against ``Y``, float64, in sample order;
    the squared loss without weights is :func:`residual_loss` (the same bits)."""
    if code == SQUARED and weights.shape[0] == 0:
        return residual_loss(zL, Y)
    total = 0.0
    for n in range(zL.shape[0]):
        w = 1.0 if weights.shape[0] == 0 else np.float64(weights[n])
        if w != 0.0:
            total += w * sample_loss(code, zL[n], Y[n])
    return total


@kernel
def check_loss_arguments(codes, B, code, weights):
    """The drivers' checks of ``loss_code`` and ``weights`` (O(B)), before any work: a known
    code, an identity output layer for the cross-entropy losses, weights of length 0 or B,
    finite and >= 0."""
    if code < 0 or code >= N_LOSSES:
        raise ValueError("kernels: loss_code must be 0 (squared), 1 (softmax CE) or 2 (sigmoid CE)")
    if code != SQUARED and codes[codes.shape[0] - 1] != IDENTITY:
        raise ValueError("kernels: the cross-entropy losses need an identity output layer")
    if weights.shape[0] != 0 and weights.shape[0] != B:
        raise ValueError("kernels: weights must have length B (or 0 for none)")
    bad = False
    for n in range(weights.shape[0]):
        w = weights[n]
        bad |= not (w >= 0.0 and w - w == 0.0)
    if bad:
        raise ValueError("sample_weight: expected finite values >= 0")


# --------------------------------------------------------------------------------------------
# Targets: class labels and probabilities.
# --------------------------------------------------------------------------------------------
@kernel
def one_hot(labels, out):
    """One-hot rows of integer ``labels`` (B,) into ``out[:B]`` (>= B, M); returns -1, or the
    index of the first label outside ``[0, M)`` (then ``out`` is partly written)."""
    m = out.shape[1]
    for n in range(labels.shape[0]):
        c = labels[n]
        if c < 0 or c >= m:
            return n
        for k in range(m):
            out[n, k] = 0.0
        out[n, c] = 1.0
    return -1


@kernel
def check_targets(code, Y, tol):
    """Check probability targets ``Y`` (B, M^L) of a cross-entropy loss: returns
    ``(status, n)`` with status 0 (valid), 1 (entry of row n negative, or above 1 for sigmoid
    cross-entropy) or 2 (softmax: row n does not sum to 1 within ``tol``)."""
    B, m = Y.shape
    for n in range(B):
        s = 0.0
        for k in range(m):
            y = np.float64(Y[n, k])
            if not y >= 0.0 or (code == SIGMOID_CE and y > 1.0):
                return 1, n
            s += y
        if code == SOFTMAX_CE and not abs(s - 1.0) <= tol:
            return 2, n
    return 0, -1
