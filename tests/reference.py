"""Slow, obviously-right NumPy oracle for fastbp.

Written from the equations alone and sharing no code with the package (it must never import
fastbp). Everything is computed in float64, one sample at a time where that is clearer.

    z^0 = x
    a^l = W^l z^(l-1) + b^l,  z^l = h^l(a^l),  l = 1..L
    loss = sum_n 1/2 ||z^L - y||^2
    delta^L = (z^L - y) * h'^L(a^L)
    delta^l = (W^(l+1)^T delta^(l+1)) * h'^l(a^l)
    dL/dW^l = sum_n delta^l z^(l-1)^T,  dL/db^l = sum_n delta^l

Parameter layout of ``theta``: for l = 1..L, W^l row-major with shape (M^l, M^(l-1)), then b^l.
"""

import numpy as np

LEAKY_SLOPE = 0.01


def _sigmoid(a):
    # exp(-|a|) never overflows; pick the algebraically equal form that does not cancel.
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _sigmoid_prime(a):
    # s(1 - s) = e / (1 + e)^2 with e = exp(-|a|): accurate also where s rounds to 1.
    e = np.exp(-np.abs(a))
    return e / (1.0 + e) ** 2


def activation(name, a):
    """h(a) elementwise, float64."""
    a = np.asarray(a, dtype=np.float64)
    if name == "sigmoid":
        return _sigmoid(a)
    if name == "tanh":
        return np.tanh(a)
    if name == "relu":
        return np.where(a > 0, a, 0.0)
    if name == "leaky_relu":
        return np.where(a > 0, a, LEAKY_SLOPE * a)
    if name == "softplus":
        return np.logaddexp(0.0, a)
    if name == "identity":
        return a.copy()
    raise ValueError(f"unknown activation {name!r}")


def activation_prime(name, a):
    """h'(a) elementwise, float64 (relu: 0 at a = 0; leaky_relu: 0.01 at a <= 0)."""
    a = np.asarray(a, dtype=np.float64)
    if name == "sigmoid":
        return _sigmoid_prime(a)
    if name == "tanh":
        # 1 - tanh^2 = 1 / cosh^2; cosh overflows to inf for |a| > ~710, giving the right 0.
        with np.errstate(over="ignore"):
            return 1.0 / np.cosh(a) ** 2
    if name == "relu":
        return np.where(a > 0, 1.0, 0.0)
    if name == "leaky_relu":
        return np.where(a > 0, 1.0, LEAKY_SLOPE)
    if name == "softplus":
        return _sigmoid(a)
    if name == "identity":
        return np.ones_like(a)
    raise ValueError(f"unknown activation {name!r}")


NAMES = ("sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity")


def n_params(sizes):
    sizes = [int(m) for m in sizes]
    return sum(sizes[l] * sizes[l - 1] + sizes[l] for l in range(1, len(sizes)))


def unpack(theta, sizes):
    """Split flat theta into lists [W^1..W^L], [b^1..b^L] (float64 copies)."""
    theta = np.asarray(theta, dtype=np.float64)
    sizes = [int(m) for m in sizes]
    if theta.shape != (n_params(sizes),):
        raise ValueError("theta has the wrong length for sizes")
    Ws, bs = [], []
    pos = 0
    for l in range(1, len(sizes)):
        rows, cols = sizes[l], sizes[l - 1]
        Ws.append(theta[pos : pos + rows * cols].reshape(rows, cols).copy())
        pos += rows * cols
        bs.append(theta[pos : pos + rows].copy())
        pos += rows
    return Ws, bs


def pack(Ws, bs):
    """Inverse of unpack."""
    parts = []
    for W, b in zip(Ws, bs, strict=True):
        parts.append(np.asarray(W, dtype=np.float64).ravel())
        parts.append(np.asarray(b, dtype=np.float64).ravel())
    return np.concatenate(parts) if parts else np.zeros(0)


def _check(sizes, activations):
    if len(activations) != len(sizes) - 1:
        raise ValueError("need one activation per layer")


def forward_one(theta, sizes, activations, x):
    """One sample. Returns lists a = [a^1..a^L] and z = [z^0..z^L]."""
    _check(sizes, activations)
    Ws, bs = unpack(theta, sizes)
    z = [np.asarray(x, dtype=np.float64)]
    a = []
    for W, b, name in zip(Ws, bs, activations, strict=True):
        a.append(W @ z[-1] + b)
        z.append(activation(name, a[-1]))
    return a, z


def forward(theta, sizes, activations, X):
    """Outputs z^L, shape (B, M^L), computed one sample at a time."""
    X = np.asarray(X, dtype=np.float64)
    out = np.zeros((X.shape[0], int(sizes[-1])))
    for n in range(X.shape[0]):
        out[n] = forward_one(theta, sizes, activations, X[n])[1][-1]
    return out


def pre_activations(theta, sizes, activations, X):
    """All a^l for all samples, concatenated into one 1-D array (to test distance from kinks)."""
    X = np.asarray(X, dtype=np.float64)
    parts = [np.zeros(0)]
    for n in range(X.shape[0]):
        parts.extend(forward_one(theta, sizes, activations, X[n])[0])
    return np.concatenate(parts)


def loss(theta, sizes, activations, X, Y):
    Z = forward(theta, sizes, activations, X)
    return float(0.5 * np.sum((Z - np.asarray(Y, dtype=np.float64)) ** 2))


def loss_and_grad(theta, sizes, activations, X, Y):
    """(loss, grad) in float64; grad has the layout of theta. Per-sample backprop loops."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    Ws, _ = unpack(theta, sizes)
    L = len(Ws)
    dWs = [np.zeros_like(W) for W in Ws]
    dbs = [np.zeros(W.shape[0]) for W in Ws]
    total = 0.0
    for n in range(X.shape[0]):
        a, z = forward_one(theta, sizes, activations, X[n])
        r = z[L] - Y[n]
        total += 0.5 * float(r @ r)
        delta = r * activation_prime(activations[L - 1], a[L - 1])
        for l in range(L - 1, -1, -1):  # python index l is layer l+1
            dWs[l] += np.outer(delta, z[l])
            dbs[l] += delta
            if l > 0:
                delta = (Ws[l].T @ delta) * activation_prime(activations[l - 1], a[l - 1])
    return total, pack(dWs, dbs)
