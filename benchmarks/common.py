"""Shared fixtures of the asv suites: network configurations, seeded problems, peers.

Every suite benchmarks fastbp through its public API only (``fastbp.MLP``,
``fastbp.finite_difference_grad``, ``fastbp.check_grad``, ``fastbp.kernels``), so the suites keep
working while the kernels are rewritten. The peers (NumPy, PyTorch, JAX) come from
:mod:`benchmarks.peer_impls`; a peer that is not installed raises ``NotImplementedError`` in
``setup``, which asv reports as skipped (``n/a``).

asv skips a parameter combination the same way when it is not sensible (see :func:`skip_heavy`):
the widest network at batch 256 would take seconds per call and say nothing new.

Smoke mode, ``FASTBP_ASV_SMOKE=1`` (what CI runs: ``.ci/run``), runs every benchmark once at its
smallest parameters: each suite declares its ``params`` through :func:`smoke_params`, which then
keeps only the first (smallest) value of each size-like parameter and every value of the
parameters that choose a code path (dtype, implementation, driver). It checks that every
benchmark still runs; its timings are not measurements.
"""

from __future__ import annotations

import os

import numpy as np

import fastbp

from . import peer_impls

__all__ = [
    "BATCHES",
    "child_env",
    "child_path_setup",
    "CONFIGS",
    "DTYPES",
    "IMPLS",
    "make_problem",
    "make_step",
    "numpy_fd_grad",
    "numpy_forward",
    "SMOKE",
    "SMOKE_BATCHES",
    "skip_heavy",
    "smoke_params",
]

#: True when ``FASTBP_ASV_SMOKE`` is set (not "", "0"): every benchmark once, smallest params.
SMOKE = os.environ.get("FASTBP_ASV_SMOKE", "").strip().lower() not in ("", "0", "false", "no")


def smoke_params(*params: list, keep: tuple[int, ...] = (), only: dict | None = None):
    """asv ``params`` (one list per parameter, smallest value first), cut in smoke mode.

    In smoke mode (:data:`SMOKE`) each list is cut to its first value, except those at the
    positions in ``keep``, parameters that choose a code path (dtype, implementation, driver),
    which keep all their values, and those at the positions in ``only``, which keep the values
    it gives (e.g. :data:`SMOKE_BATCHES`). Outside smoke mode, ``params`` unchanged.
    """
    if not SMOKE:
        return tuple(params)
    only = only or {}
    return tuple(
        list(only[i]) if i in only else list(p) if i in keep else list(p)[:1]
        for i, p in enumerate(params)
    )


#: Network configurations by label: the layer widths [M0, ..., ML].
CONFIGS = {
    "2-16-1": [2, 16, 1],
    "784-128-10": [784, 128, 10],
    "784-512-512-10": [784, 512, 512, 10],
    "10x64": [64] * 11,
    "2048-2048-2048": [2048, 2048, 2048],
}
BATCHES = [1, 32, 256]
#: The batches smoke mode keeps: B = 1 takes the single-sample path of tiny networks, 32 the
#: batched one.
SMOKE_BATCHES = [1, 32]
DTYPES = ["float64", "float32"]
#: fastbp and its peers, in the order asv lists them.
IMPLS = ["fastbp", "numpy", "torch", "jax"]

# Multiply-adds per call above which a combination is skipped (N * B for the widest network
# at B = 256 is 2.1e9: seconds per call for every implementation, nothing a smaller one misses).
_MAX_WORK = 5e8


def skip_heavy(sizes, batch: int) -> None:
    """Raise ``NotImplementedError`` (asv: skipped) when ``n_params * batch`` is too large."""
    n_params = sum(m_out * (m_in + 1) for m_in, m_out in zip(sizes[:-1], sizes[1:]))
    if n_params * batch > _MAX_WORK:
        raise NotImplementedError(f"{sizes} at batch {batch}: too slow to be worth a benchmark")


def make_problem(sizes, batch: int, dtype: str = "float64", seed: int = 0):
    """A seeded sigmoid network and a regression batch for it.

    Returns
    -------
    net : fastbp.MLP
    X : ndarray, shape (batch, sizes[0]), dtype ``dtype``
    Y : ndarray, shape (batch, sizes[-1]), dtype ``dtype``, values in [0.1, 0.9]
    """
    rng = np.random.default_rng(seed)
    net = fastbp.MLP(sizes, "sigmoid", dtype=np.dtype(dtype), seed=seed)
    X = rng.uniform(-1.0, 1.0, size=(batch, sizes[0])).astype(dtype)
    Y = rng.uniform(0.1, 0.9, size=(batch, sizes[-1])).astype(dtype)
    return net, X, Y


def make_step(impl: str, net, X, Y):
    """A callable computing loss and gradient of ``net`` on ``(X, Y)`` with ``impl``.

    ``"fastbp"`` writes into a preallocated gradient (the steady state a training loop sees);
    the peers are :mod:`benchmarks.peer_impls`. Raises ``NotImplementedError`` when the peer is
    not installed, which asv reports as skipped.
    """
    if impl == "fastbp":
        grad = np.empty_like(net.params)
        return lambda: net.loss_and_grad(X, Y, out=grad)
    makers = {
        "numpy": peer_impls.make_numpy,
        "torch": peer_impls.make_torch,
        "jax": peer_impls.make_jax,
    }
    if impl not in makers:
        raise ValueError(f"unknown implementation {impl!r}")
    step = makers[impl](net.params.copy(), list(net.sizes), list(net.activations), X, Y)
    if step is None:
        raise NotImplementedError(f"{impl} is not installed")
    return step


def numpy_forward(net, X):
    """The network output by batched NumPy matrix products (the forward baseline)."""
    z = X
    for W, b, name in zip(net.weights, net.biases, net.activations):
        z, _ = peer_impls.numpy_activation(name, z @ W.T + b)
    return z


def _numpy_loss(Ws, bs, activations, X, Y):
    z = X
    for W, b, name in zip(Ws, bs, activations):
        z, _ = peer_impls.numpy_activation(name, z @ W.T + b)
    r = z - Y
    return 0.5 * float(np.sum(r * r))


def numpy_fd_grad(net, X, Y):
    """Central finite differences over a NumPy loss: the interpreted baseline of FD.

    Same relative step as fastbp's default (``u^(1/3) max(1, |theta_k|)``), on a private copy of
    the parameters.
    """
    theta = net.params.copy()
    eps = float(np.finfo(theta.dtype).eps) ** (1.0 / 3.0)
    Ws, bs, pos = [], [], 0
    for m_in, m_out in zip(net.sizes[:-1], net.sizes[1:]):
        Ws.append(theta[pos : pos + m_out * m_in].reshape(m_out, m_in))
        pos += m_out * m_in
        bs.append(theta[pos : pos + m_out])
        pos += m_out
    grad = np.empty_like(theta)
    for k in range(theta.shape[0]):
        old = theta[k]
        h = eps * max(1.0, abs(float(old)))
        theta[k] = old + h
        up = _numpy_loss(Ws, bs, net.activations, X, Y)
        theta[k] = old - h
        down = _numpy_loss(Ws, bs, net.activations, X, Y)
        theta[k] = old
        grad[k] = (up - down) / (2.0 * h)
    return grad


def _fastbp_root() -> str:
    """The directory that holds the ``fastbp`` package this process imported."""
    return os.path.dirname(os.path.dirname(os.path.abspath(fastbp.__file__)))


def child_env(**extra: str) -> dict:
    """Environment for a measuring subprocess: it imports the same fastbp as this process.

    asv removes ``PYTHONPATH`` from the benchmark process (it passes ``ASV_PYTHONPATH`` on through
    ``sys.path`` only), so the fastbp directory is put back in front of ``PYTHONPATH`` explicitly.
    """
    env = dict(os.environ, **extra)
    paths = [_fastbp_root()] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def child_path_setup() -> str:
    """Setup code for an asv ``timeraw_`` child: import the same fastbp as this process."""
    return f"import sys\nsys.path.insert(0, {_fastbp_root()!r})"
