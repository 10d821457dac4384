"""Small, seeded, generated data sets: the library works with no downloads.

Every generator returns ``(X, Y)`` as float64 arrays of shapes ``(n_samples, n_inputs)`` and
``(n_samples, n_outputs)`` and is reproducible from its ``seed``. :data:`DATASETS` maps the
names used by ``fastbp train --data`` to the generators.

=====================  ========  =======  ================================================
name                   inputs    outputs  what
=====================  ========  =======  ================================================
``smooth_regression``  any (1)   any (1)  smooth sines of random projections, in [0.1, 0.9]
``xor``                2         1        the four XOR corners, optionally jittered
``two_spirals``        2         1        two interleaved spirals, class 0 or 1
=====================  ========  =======  ================================================

One real data set is read from scikit-learn's copy (not generated, not in
:data:`DATASETS`): :func:`digits`, the 1,797 8x8 handwritten digits, with integer labels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DATASETS", "digits", "smooth_regression", "two_spirals", "xor"]


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


def xor(n_samples: int = 4, *, noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The XOR problem: inputs in {0, 1}^2, target ``x1 XOR x2``.

    The classic problem a single layer cannot solve and one hidden layer can. Sample ``n`` is
    the corner ``n % 4`` of ``(0,0), (0,1), (1,0), (1,1)``, plus Gaussian jitter of standard
    deviation ``noise`` (0: the four exact corners, repeated).

    Parameters
    ----------
    n_samples : int, default 4
        Number of samples (>= 1).
    noise : float, default 0.0
        Standard deviation of the jitter added to the inputs (targets stay 0 or 1).
    seed : int
        Seed of the jitter.

    Returns
    -------
    X : ndarray, shape (n_samples, 2)
    Y : ndarray, shape (n_samples, 1)
    """
    n = _positive(n_samples, "n_samples")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise: expected a finite value >= 0, got {noise!r}")
    corners = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    labels = np.array([0.0, 1.0, 1.0, 0.0])
    idx = np.arange(n) % 4
    X = corners[idx].copy()
    if noise > 0:
        X += np.random.default_rng(seed).normal(scale=noise, size=X.shape)
    return X, labels[idx].reshape(n, 1)


def two_spirals(
    n_samples: int = 400, *, turns: float = 1.5, noise: float = 0.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals in the plane, the classic hard case for a small MLP.

    Half the samples (the even ones) lie on the spiral ``r = t``, angle ``2 pi turns t``, for
    ``t`` uniform in ``(0.05, 1]`` (class 0), the other half on the same spiral turned by pi
    (class 1). Coordinates lie in ``[-1, 1]``.

    Parameters
    ----------
    n_samples : int, default 400
        Number of samples (>= 2).
    turns : float, default 1.5
        Turns of each spiral.
    noise : float, default 0.0
        Standard deviation of Gaussian jitter added to the coordinates.
    seed : int
        Seed of the radii and the jitter.

    Returns
    -------
    X : ndarray, shape (n_samples, 2)
    Y : ndarray, shape (n_samples, 1)
        0.0 for the first spiral, 1.0 for the second.
    """
    n = _positive(n_samples, "n_samples")
    if n < 2:
        raise ValueError(f"n_samples: expected at least 2 (one per spiral), got {n}")
    if not np.isfinite(turns) or turns <= 0:
        raise ValueError(f"turns: expected a finite value > 0, got {turns!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise: expected a finite value >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.05, 1.0, size=n)
    label = (np.arange(n) % 2).astype(np.float64)
    angle = 2.0 * np.pi * turns * t + np.pi * label
    X = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
    if noise > 0:
        X += rng.normal(scale=noise, size=X.shape)
    return X, label.reshape(n, 1)


#: Built-in data sets by name (``fastbp train --data NAME``).
DATASETS = {
    "smooth_regression": smooth_regression,
    "xor": xor,
    "two_spirals": two_spirals,
}


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The UCI optical recognition of handwritten digits data (Alpaydin and Kaynak, 1998).

    1,797 images of 8x8 pixels, each a count 0..16, and their digit 0..9, read from the copy
    that scikit-learn ships (``sklearn.datasets.load_digits``; nothing is downloaded, and the
    data is not copied into fastbp). Needs scikit-learn: ``pip install fastbp[datasets]``.

    Returns
    -------
    X : ndarray of float64, shape (1797, 64)
        Pixels scaled to [0, 1] (the counts divided by 16), row by row.
    y : ndarray of int64, shape (1797,)
        The digit of each image: class labels for ``loss="softmax_cross_entropy"``.

    Raises
    ------
    ImportError
        When scikit-learn is not installed (the message names the ``datasets`` extra).

    Examples
    --------
    >>> X, y = fastbp.datasets.digits()  # doctest: +SKIP
    >>> net = fastbp.MLP([64, 64, 10], ["tanh", "identity"], loss="softmax_cross_entropy")
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "fastbp.datasets.digits() reads the copy of the data that scikit-learn ships: "
            "pip install 'fastbp[datasets]' (or scikit-learn)"
        ) from None
    data = load_digits()
    X = np.ascontiguousarray(data.data, dtype=np.float64) / 16.0
    y = np.ascontiguousarray(data.target, dtype=np.int64)
    return X, y
