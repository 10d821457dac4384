"""Accuracy tracked over commits: a speed-up must not cost correctness.

``track_max_rel_error`` is ``fastbp.check_grad``'s ``max |bp - fd| / max(|bp|, |fd|)`` against
central finite differences (about 1e-10..1e-9 in float64 and 1e-5..1e-4 in float32, limited by
the finite differences); ``track_max_rel_diff_numpy`` compares the backpropagation gradient with
the NumPy peer's (rounding only: about 1e-16 in float64, 1e-7 in float32).
"""

from __future__ import annotations

import numpy as np

import fastbp

from .common import make_problem, make_step, smoke_params

ACC_CONFIGS = {"4-8-1": [4, 8, 1], "16-32-4": [16, 32, 4], "32-64-64-8": [32, 64, 64, 8]}


class Accuracy:
    """Maximum relative gradient error of backpropagation."""

    params = smoke_params(list(ACC_CONFIGS), ["float64", "float32"], keep=(1,))
    param_names = ["sizes", "dtype"]
    unit = "relative error"
    timeout = 120

    def setup(self, config, dtype):
        self.net, self.X, self.Y = make_problem(ACC_CONFIGS[config], 16, dtype)

    def track_max_rel_error(self, config, dtype):
        return fastbp.check_grad(self.net, self.X, self.Y).max_rel_error

    def track_max_rel_diff_numpy(self, config, dtype):
        _, bp = self.net.loss_and_grad(self.X, self.Y)
        _, ref = make_step("numpy", self.net, self.X, self.Y)()
        bp, ref = bp.astype(np.float64), ref.astype(np.float64)
        return float(np.max(np.abs(bp - ref)) / np.max(np.abs(ref)))
