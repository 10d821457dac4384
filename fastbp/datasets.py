"""Small, seeded, generated data sets: the library works with no downloads.

Every generator returns ``(X, Y)`` as float64 arrays of shapes ``(n_samples, n_inputs)`` and
``(n_samples, n_outputs)`` and is reproducible from its ``seed``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["smooth_regression"]


def _positive(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return int(value)


def smooth_regression(
    n_samples: int = 256, n_inputs: int = 1, n_outputs: int = 1, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A smooth multi-output regression problem with targets in [0.1, 0.9].

    ``X`` is uniform on ``[-1, 1]^n_inputs``; output ``k`` is
    ``0.5 + 0.4 sin(pi (x . u_k) + phi_k)`` for fixed random unit directions ``u_k`` and phases
    ``phi_k`` drawn from the same seed. The range suits a sigmoid output layer (the default).

    Parameters
    ----------
    n_samples, n_inputs, n_outputs : int
        Shape of the problem (``n_samples`` may be 0).
    seed : int
        Seed of the generator; the same seed gives the same data.

    Returns
    -------
    X : ndarray, shape (n_samples, n_inputs)
    Y : ndarray, shape (n_samples, n_outputs)
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
        raise ValueError(f"n_samples: expected a non-negative int, got {n_samples!r}")
    if n_samples < 0:
        raise ValueError(f"n_samples: expected a non-negative int, got {n_samples!r}")
    n_inputs = _positive(n_inputs, "n_inputs")
    n_outputs = _positive(n_outputs, "n_outputs")
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(n_inputs, n_outputs))
    U /= np.linalg.norm(U, axis=0, keepdims=True)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=n_outputs)
    X = rng.uniform(-1.0, 1.0, size=(int(n_samples), n_inputs))
    Y = 0.5 + 0.4 * np.sin(np.pi * (X @ U) + phase)
    return X, Y
