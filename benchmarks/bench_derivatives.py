"""Input Jacobians and per-sample gradients (issue 15) beside torch.func and JAX.

The peers come from :mod:`benchmarks.derivative_peers` (skipped, ``n/a``, when not installed).
``python -m benchmarks.derivatives`` prints the same cases side by side on one thread.
"""

from __future__ import annotations

import numpy as np

import fastbp

from .common import smoke_params
from .derivative_peers import make_jacobian_peer, make_per_sample_peer

_JACOBIAN = {"3-64-5 tanh B=128": ([3, 64, 5], 128), "784-128-10 tanh B=32": ([784, 128, 10], 32)}
_PER_SAMPLE = {"2-16-1 tanh B=256": ([2, 16, 1], 256), "784-128-10 tanh B=32": ([784, 128, 10], 32)}
_IMPLS = ["fastbp", "torch", "jax"]


def _problem(sizes, batch):
    rng = np.random.default_rng(0)
    net = fastbp.MLP(sizes, "tanh", seed=0)
    return net, rng.normal(size=(batch, sizes[0])), rng.normal(size=(batch, sizes[-1]))


class InputJacobian:
    """``time_jacobian``: ``net.jacobian(X)`` (mode "auto") against ``vmap(jacrev(f))``."""

    params = smoke_params(list(_JACOBIAN), _IMPLS, keep=(1,))
    param_names = ["case", "impl"]
    timeout = 120

    def setup(self, case, impl):
        sizes, batch = _JACOBIAN[case]
        net, X, _ = _problem(sizes, batch)
        self.step = (
            (lambda: net.jacobian(X)) if impl == "fastbp" else make_jacobian_peer(impl, net, X)
        )
        self.step()

    def time_jacobian(self, case, impl):
        self.step()


class PerSampleGrads:
    """``time_per_sample_grads``: ``net.per_sample_grads(X, Y, out=G)`` against ``vmap(grad)``."""

    params = smoke_params(list(_PER_SAMPLE), _IMPLS, keep=(1,))
    param_names = ["case", "impl"]
    timeout = 120

    def setup(self, case, impl):
        sizes, batch = _PER_SAMPLE[case]
        net, X, Y = _problem(sizes, batch)
        if impl == "fastbp":
            out = np.empty((batch, net.n_params))
            self.step = lambda: net.per_sample_grads(X, Y, out=out)
        else:
            self.step = make_per_sample_peer(impl, net, X, Y)
        self.step()

    def time_per_sample_grads(self, case, impl):
        self.step()
