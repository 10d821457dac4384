"""Oracle for the second-order derivatives: plain float64 NumPy, written from the equations.

Shares no code with fastbp (nor with tests/reference.py). Whole-batch matrix algebra where the
package runs explicit loops, and h'' from h (``s (1 - s) (1 - 2 s)`` ...) where the package
computes it from ``e^-|a|``:

- :func:`hvp`: Pearlmutter's R-operator, R{.} = d/dr (.)(theta + r v) at r = 0, applied to
  every equation of the forward and backward pass (docs/second-order.md);
- :func:`residual_jacobian`: for each sample and output unit, backpropagation from the unit
  vector e_k at the output;
- :func:`gnvp`: J_r^T (J_r v) from that Jacobian.
"""

import numpy as np

SLOPE = 0.01


def act(name, a):
    """h(a), h'(a), h''(a) elementwise (float64)."""
    if name == "sigmoid":
        s = 0.5 * (1.0 + np.tanh(0.5 * a))  # = 1 / (1 + e^-a), without overflow warnings
        return s, s * (1 - s), s * (1 - s) * (1 - 2 * s)
    if name == "tanh":
        t = np.tanh(a)
        return t, 1 - t * t, -2 * t * (1 - t * t)
    if name == "softplus":
        s = 0.5 * (1.0 + np.tanh(0.5 * a))
        return np.logaddexp(0.0, a), s, s * (1 - s)
    if name == "relu":
        return np.maximum(a, 0.0), (a > 0).astype(float), np.zeros_like(a)
    if name == "leaky_relu":
        return np.where(a > 0, a, SLOPE * a), np.where(a > 0, 1.0, SLOPE), np.zeros_like(a)
    if name == "identity":
        return a.copy(), np.ones_like(a), np.zeros_like(a)
    raise KeyError(name)


def unpack(theta, sizes):
    """[(W^l, b^l)] from the flat vector: W^l row-major (M^l, M^(l-1)), then b^l."""
    out, k = [], 0
    for m_in, m_out in zip(sizes[:-1], sizes[1:]):
        W = theta[k : k + m_in * m_out].reshape(m_out, m_in)
        k += m_in * m_out
        out.append((W, theta[k : k + m_out]))
        k += m_out
    assert k == len(theta)
    return out


def pack(parts):
    return np.concatenate([np.concatenate([gW.ravel(), gb]) for gW, gb in parts])


def hvp(sizes, acts, theta, X, Y, v):
    """(loss, H v) of L = sum_n 1/2 ||f(x_n) - y_n||^2 by the R-operator, float64."""
    theta, X, Y, v = (np.asarray(t, dtype=np.float64) for t in (theta, X, Y, v))
    P, V = unpack(theta, sizes), unpack(v, sizes)
    z, rz, d1, d2, ra = [X], [np.zeros_like(X)], [], [], []
    for (W, b), (Vw, c), name in zip(P, V, acts):
        a = z[-1] @ W.T + b
        r = z[-1] @ Vw.T + c + rz[-1] @ W.T
        h, hp, hpp = act(name, a)
        z.append(h)
        rz.append(hp * r)
        d1.append(hp)
        d2.append(hpp)
        ra.append(r)
    res = z[-1] - Y
    delta = res * d1[-1]
    rdelta = rz[-1] * d1[-1] + res * d2[-1] * ra[-1]
    grads = []
    for l in range(len(P) - 1, -1, -1):
        W, Vw = P[l][0], V[l][0]
        grads.append((rdelta.T @ z[l] + delta.T @ rz[l], rdelta.sum(0)))
        if l > 0:
            g = delta @ W
            rg = delta @ Vw + rdelta @ W
            delta, rdelta = g * d1[l - 1], rg * d1[l - 1] + g * d2[l - 1] * ra[l - 1]
    return 0.5 * float(np.sum(res * res)), pack(grads[::-1])


def residual_jacobian(sizes, acts, theta, X):
    """J_r, shape (B M^L, n_params): row b M^L + k = d f_k(x_b) / d theta."""
    theta, X = np.asarray(theta, dtype=np.float64), np.asarray(X, dtype=np.float64)
    P = unpack(theta, sizes)
    M = sizes[-1]
    J = np.zeros((X.shape[0] * M, len(theta)))
    for b in range(X.shape[0]):
        z, d1 = [X[b]], []
        for (W, bias), name in zip(P, acts):
            h, hp, _ = act(name, W @ z[-1] + bias)
            z.append(h)
            d1.append(hp)
        for k in range(M):
            delta = np.eye(M)[k] * d1[-1]
            parts = []
            for l in range(len(P) - 1, -1, -1):
                parts.append((np.outer(delta, z[l]), delta))
                if l > 0:
                    delta = (P[l][0].T @ delta) * d1[l - 1]
            J[b * M + k] = pack(parts[::-1])
    return J


def forward(sizes, acts, theta, X):
    z = np.asarray(X, dtype=np.float64)
    for (W, b), name in zip(unpack(np.asarray(theta, dtype=np.float64), sizes), acts):
        z = act(name, z @ W.T + b)[0]
    return z


def gnvp(sizes, acts, theta, X, v):
    """J_r^T J_r v from :func:`residual_jacobian`."""
    J = residual_jacobian(sizes, acts, theta, X)
    return J.T @ (J @ np.asarray(v, dtype=np.float64))


def gradient(sizes, acts, theta, X, Y):
    """dL/dtheta = J_r^T r."""
    J = residual_jacobian(sizes, acts, theta, X)
    r = (forward(sizes, acts, theta, X) - np.asarray(Y, dtype=np.float64)).ravel()
    return J.T @ r
