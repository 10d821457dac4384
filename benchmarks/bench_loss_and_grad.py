"""Loss and gradient (the hot path of training): fastbp beside NumPy, PyTorch and JAX.

``setup`` builds the problem and calls the step once, so the timing is the steady state (compiled
kernels, grown workspace, JAX traced). fastbp writes into a preallocated gradient; the peers are
written the way their users would write them (:mod:`benchmarks.peer_impls`). fastbp's kernels are
serial here, while NumPy's BLAS and PyTorch may use every core: the ratios are per machine.
"""

from __future__ import annotations

from .common import (
    BATCHES,
    CONFIGS,
    DTYPES,
    IMPLS,
    SMOKE_BATCHES,
    make_problem,
    make_step,
    skip_heavy,
    smoke_params,
)


class LossAndGrad:
    """``time_loss_and_grad``: one loss-and-gradient evaluation on a batch."""

    params = smoke_params(
        list(CONFIGS), BATCHES, DTYPES, IMPLS, keep=(2, 3), only={1: SMOKE_BATCHES}
    )
    param_names = ["sizes", "batch", "dtype", "impl"]
    timeout = 180

    def setup(self, config, batch, dtype, impl):
        sizes = CONFIGS[config]
        skip_heavy(sizes, batch)
        net, X, Y = make_problem(sizes, batch, dtype)
        self.step = make_step(impl, net, X, Y)
        self.step()

    def time_loss_and_grad(self, config, batch, dtype, impl):
        self.step()


class PeakMemory:
    """``peakmem_loss_and_grad``: peak resident memory of a process that evaluates the gradient of
    the widest network (8.4 million parameters, float64, batch 32).

    asv reports the process's maximum RSS, interpreter and imports included, so compare the
    implementations with each other, not with the 67 MB that theta takes.
    """

    params = (IMPLS,)
    param_names = ["impl"]
    timeout = 180

    def setup(self, impl):
        net, X, Y = make_problem(CONFIGS["2048-2048-2048"], 32, "float64")
        self.step = make_step(impl, net, X, Y)

    def peakmem_loss_and_grad(self, impl):
        self.step()
