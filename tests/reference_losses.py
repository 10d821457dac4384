"""NumPy oracle for the losses, written from their equations (never imports fastbp).

    squared                1/2 ||z - y||^2,                              delta = (z - y) h'(a)
    softmax cross-entropy  -sum_k y_k log softmax(z)_k,                  delta = softmax(z) - y
    sigmoid cross-entropy  -sum_k y_k log s(z_k) + (1-y_k) log(1-s(z_k)),  delta = s(z) - y

each sample's term times its weight w_n. Logits z are the outputs of an identity last layer.
"""

import numpy as np
from reference import activation_prime, forward_one, pack, unpack


def per_sample_loss(name, z, Y):
    """Loss of each sample (float64, shape (B,))."""
    z = np.asarray(z, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if name == "squared":
        return 0.5 * ((z - Y) ** 2).sum(axis=1)
    if name == "softmax_cross_entropy":
        m = z.max(axis=1, keepdims=True)
        logp = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
        return -(np.where(Y != 0, Y * logp, 0.0)).sum(axis=1)
    if name == "sigmoid_cross_entropy":
        return (np.maximum(z, 0) - z * Y + np.log1p(np.exp(-np.abs(z)))).sum(axis=1)
    raise ValueError(name)


def output_delta(name, z, Y, w):
    """delta^L of an identity output layer, times the weights (float64, (B, M))."""
    z = np.asarray(z, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if name == "squared":
        d = z - Y
    elif name == "softmax_cross_entropy":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        d = e / e.sum(axis=1, keepdims=True) - Y
    else:
        d = 1.0 / (1.0 + np.exp(-z)) - Y
    return d * np.asarray(w, dtype=np.float64)[:, None]


def one_hot(labels, m):
    out = np.zeros((len(labels), m))
    out[np.arange(len(labels)), labels] = 1.0
    return out


def loss_and_grad(name, theta, sizes, activations, X, Y, w=None):
    """(loss, grad) of loss ``name`` with weights ``w`` (default 1), per-sample backprop."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    w = np.ones(X.shape[0]) if w is None else np.asarray(w, dtype=np.float64)
    Ws, _ = unpack(theta, sizes)
    L = len(Ws)
    dWs = [np.zeros_like(W) for W in Ws]
    dbs = [np.zeros(W.shape[0]) for W in Ws]
    total = 0.0
    for n in range(X.shape[0]):
        if w[n] == 0:
            continue
        a, z = forward_one(theta, sizes, activations, X[n])
        total += w[n] * per_sample_loss(name, z[L][None], Y[n][None])[0]
        delta = output_delta(name, z[L][None], Y[n][None], w[n : n + 1])[0]
        if name == "squared":
            delta = delta * activation_prime(activations[L - 1], a[L - 1])
        for l in range(L - 1, -1, -1):
            dWs[l] += np.outer(delta, z[l])
            dbs[l] += delta
            if l > 0:
                delta = (Ws[l].T @ delta) * activation_prime(activations[l - 1], a[l - 1])
    return total, pack(dWs, dbs)
