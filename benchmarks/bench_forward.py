"""The forward pass ``net.forward(X)`` beside batched NumPy matrix products."""

from __future__ import annotations

from .common import (
    BATCHES,
    CONFIGS,
    DTYPES,
    SMOKE_BATCHES,
    make_problem,
    numpy_forward,
    skip_heavy,
    smoke_params,
)


class Forward:
    """``time_forward``: the network output for a batch (allocates the output array)."""

    params = smoke_params(
        list(CONFIGS), BATCHES, DTYPES, ["fastbp", "numpy"], keep=(2, 3), only={1: SMOKE_BATCHES}
    )
    param_names = ["sizes", "batch", "dtype", "impl"]
    timeout = 120

    def setup(self, config, batch, dtype, impl):
        sizes = CONFIGS[config]
        skip_heavy(sizes, batch)
        net, X, _ = make_problem(sizes, batch, dtype)
        if impl == "fastbp":
            self.step = lambda: net.forward(X)
        else:
            self.step = lambda: numpy_forward(net, X)
        self.step()

    def time_forward(self, config, batch, dtype, impl):
        self.step()
