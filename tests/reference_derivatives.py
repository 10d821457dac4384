"""Slow, obviously-right NumPy oracle for the input and per-sample derivatives.

Written from the chain rule alone (it never imports fastbp); builds on the forward pass and
activations of tests/reference.py. Float64, one sample at a time:

    J_f(x) = D^L W^L D^(L-1) W^(L-1) ... D^1 W^1,   D^l = diag(h'^l(a^l))
    dL/dx  = J_f(x)^T (f(x) - y)
    per-sample gradient of sample n = the batch gradient of the batch {n}
"""

import numpy as np
import reference


def jacobian(theta, sizes, activations, X):
    """J of shape (B, M^L, M^0): the product of the layers' D^l W^l, right to left."""
    X = np.asarray(X, dtype=np.float64)
    Ws, _ = reference.unpack(theta, sizes)
    out = np.zeros((X.shape[0], int(sizes[-1]), int(sizes[0])))
    for n in range(X.shape[0]):
        a, _ = reference.forward_one(theta, sizes, activations, X[n])
        J = np.eye(int(sizes[0]))
        for W, a_l, name in zip(Ws, a, activations, strict=True):
            J = reference.activation_prime(name, a_l)[:, None] * (W @ J)
        out[n] = J
    return out


def input_grad(theta, sizes, activations, X, Y):
    """(loss, dX) by the backward recursion carried to the input, per sample."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    Ws, _ = reference.unpack(theta, sizes)
    L = len(Ws)
    dX = np.zeros_like(X)
    total = 0.0
    for n in range(X.shape[0]):
        a, z = reference.forward_one(theta, sizes, activations, X[n])
        r = z[L] - Y[n]
        total += 0.5 * float(r @ r)
        delta = r * reference.activation_prime(activations[L - 1], a[L - 1])
        for l in range(L - 1, 0, -1):
            delta = (Ws[l].T @ delta) * reference.activation_prime(activations[l - 1], a[l - 1])
        dX[n] = Ws[0].T @ delta
    return total, dX


def per_sample_grads(theta, sizes, activations, X, Y):
    """(losses (B,), G (B, n_params)): each row the oracle's gradient of its sample alone."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    losses = np.zeros(X.shape[0])
    G = np.zeros((X.shape[0], reference.n_params(sizes)))
    for n in range(X.shape[0]):
        losses[n], G[n] = reference.loss_and_grad(
            theta, sizes, activations, X[n : n + 1], Y[n : n + 1]
        )
    return losses, G
