"""Small helpers shared by the test modules (no fastbp logic: only data and error measures)."""

import numpy as np

TINY = np.finfo(np.float64).tiny


def rel_err(a, b):
    """max|a - b| / max(max|b|, tiny): 0.0 for two empty arrays."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), TINY))


def scalar_rel_err(a, b):
    return abs(float(a) - float(b)) / max(abs(float(b)), TINY)


def n_params(sizes):
    return sum(sizes[i] * sizes[i - 1] + sizes[i] for i in range(1, len(sizes)))


def random_problem(rng, sizes, batch, scale=1.0):
    """theta, X, Y drawn from rng: theta ~ N(0, scale^2 / fan_in) so no unit saturates badly."""
    parts = []
    for i in range(1, len(sizes)):
        std = scale / np.sqrt(sizes[i - 1])
        parts.append(rng.normal(0.0, std, size=sizes[i] * sizes[i - 1]))
        parts.append(rng.normal(0.0, 0.5, size=sizes[i]))
    theta = np.concatenate(parts)
    X = rng.normal(size=(batch, sizes[0]))
    Y = rng.normal(size=(batch, sizes[-1]))
    return theta, X, Y


def make_net(fastbp, sizes, activations, theta, dtype=np.float64):
    """An MLP with its parameters set to theta (cast to dtype)."""
    net = fastbp.MLP(sizes, activations, dtype=dtype, seed=0)
    net.params = np.asarray(theta, dtype=dtype)
    return net
