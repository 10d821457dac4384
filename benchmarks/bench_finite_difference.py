"""Finite differences, the O(N^2) baseline of backpropagation, on small networks.

``time_finite_difference`` times the whole gradient by finite differences (fastbp's compiled
central and forward schemes, and central differences over a NumPy loss); ``track_fd_bp_ratio``
records how many backpropagation calls one finite-difference gradient costs, which grows about
linearly with the parameter count N (see ``fastbp complexity`` for the full sweep).
"""

from __future__ import annotations

import time

import numpy as np

import fastbp

from .common import make_problem, numpy_fd_grad, smoke_params

#: Small networks (49, 676 and 6,792 parameters) and the batch of ``fastbp gradcheck``.
FD_CONFIGS = {"4-8-1": [4, 8, 1], "16-32-4": [16, 32, 4], "32-64-64-8": [32, 64, 64, 8]}
FD_BATCH = 16


def _best_time(fn, min_total: float = 0.05, max_repeat: int = 1000) -> float:
    """Fastest of repeated calls (at least 3, until ``min_total`` seconds have passed)."""
    times, total = [], 0.0
    while len(times) < 3 or (total < min_total and len(times) < max_repeat):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        total += dt
    return min(times)


class FiniteDifference:
    """``time_finite_difference``: the full gradient by finite differences."""

    params = smoke_params(
        list(FD_CONFIGS), ["fastbp-central", "fastbp-forward", "numpy-central"], keep=(1,)
    )
    param_names = ["sizes", "impl"]
    timeout = 180

    def setup(self, config, impl):
        net, X, Y = make_problem(FD_CONFIGS[config], FD_BATCH, "float64")
        if impl == "numpy-central":
            self.step = lambda: numpy_fd_grad(net, X, Y)
        else:
            scheme = impl.split("-")[1]
            self.step = lambda: fastbp.finite_difference_grad(net, X, Y, scheme=scheme)
            self.step()

    def time_finite_difference(self, config, impl):
        self.step()


class FDOverBP:
    """``track_fd_bp_ratio``: time of a central finite-difference gradient over the time of a
    backpropagation gradient, both compiled, best of several runs."""

    params = smoke_params(list(FD_CONFIGS))
    param_names = ["sizes"]
    unit = "FD time / BP time"
    timeout = 180

    def setup(self, config):
        self.net, self.X, self.Y = make_problem(FD_CONFIGS[config], FD_BATCH, "float64")
        self.grad = np.empty_like(self.net.params)
        self.net.loss_and_grad(self.X, self.Y, out=self.grad)
        fastbp.finite_difference_grad(self.net, self.X, self.Y)

    def track_fd_bp_ratio(self, config):
        net, X, Y, grad = self.net, self.X, self.Y, self.grad
        t_bp = _best_time(lambda: net.loss_and_grad(X, Y, out=grad))
        t_fd = _best_time(lambda: fastbp.finite_difference_grad(net, X, Y), max_repeat=5)
        return t_fd / t_bp
