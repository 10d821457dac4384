"""Second-order derivatives: one HVP beside one loss_and_grad (fastbp) and PyTorch's
``torch.func.jvp(grad)``; the Gauss-Newton product and the residual Jacobian.

``setup`` builds the problem and calls each operation once (compiled, workspace grown), so the
timings are the steady state. The ratio that matters (HVP at most 3x a gradient, at least 3x
faster than PyTorch) is read side by side in one run; ``python -m benchmarks.second_order``
prints it with the optimiser comparison.
"""

from __future__ import annotations

import numpy as np

import fastbp

from .common import smoke_params

SIZES = {"2-16-1": [2, 16, 1], "784-128-10": [784, 128, 10]}


def problem(label, batch):
    sizes = SIZES[label]
    rng = np.random.default_rng(0)
    net = fastbp.MLP(sizes, ["tanh"] * (len(sizes) - 2) + ["identity"], seed=0)
    X = rng.normal(size=(batch, sizes[0]))
    Y = rng.normal(size=(batch, sizes[-1]))
    v = rng.normal(size=net.n_params)
    return net, X, Y, v


def _fastbp_only(label, batch, impl):
    """Setup of the benchmarks that have no peer (asv calls it unbound, with the parameters):
    skip every other implementation."""
    if impl != "fastbp":
        raise NotImplementedError(f"no {impl} peer for this operation")


class SecondOrder:
    """``time_<op>``: one call of the operation on a batch."""

    params = smoke_params(list(SIZES), [32, 256], ["fastbp", "torch"], keep=(2,))
    param_names = ["sizes", "batch", "impl"]

    def setup(self, label, batch, impl):
        net, X, Y, v = problem(label, batch)
        if impl == "torch":
            from .second_order import torch_hvp

            try:  # torch is imported inside torch_hvp
                self.hvp = torch_hvp(net, X, Y, v)
            except ImportError:
                raise NotImplementedError("torch is not installed") from None
            self.grad = self.gnvp = self.jac = None
        else:
            out = np.empty(net.n_params)
            self.hvp = lambda: net.hvp(X, Y, v, out=out)
            self.grad = lambda: net.loss_and_grad(X, Y, out=out)
            self.gnvp = lambda: net.gnvp(X, Y, v, out=out)
            J = np.empty((batch * net.sizes[-1], net.n_params))
            self.jac = lambda: net.residual_jacobian(X, out=J)
            self.grad()
            self.gnvp()
            self.jac()
        self.hvp()

    def time_hvp(self, label, batch, impl):
        self.hvp()

    def time_loss_and_grad(self, label, batch, impl):
        self.grad()

    def time_gnvp(self, label, batch, impl):
        self.gnvp()

    def time_residual_jacobian(self, label, batch, impl):
        self.jac()

    # No torch peer for these three: skipped in setup (asv counts a NotImplementedError raised
    # in the timed function as a failure, in a setup as a skip).
    time_loss_and_grad.setup = time_gnvp.setup = time_residual_jacobian.setup = _fastbp_only


FIRST_HVP = """
import numpy as np
import fastbp
rng = np.random.default_rng(0)
net = fastbp.MLP([33, 65, 100, 4], ["tanh", "softplus", "sigmoid"], seed=0)
X, Y = rng.normal(size=(65, 33)), rng.normal(size=(65, 4))
net.hvp(X, Y, rng.normal(size=net.n_params))
"""


class SecondOrderCompile:
    """``timeraw_import_and_first_hvp``: a new process imports fastbp and computes its first
    HVP with the disk cache off, so the serial float64 body and the tiles it calls compile
    (the cold cost the test suite pays once; docs/perf-log.md, "Issue 15")."""

    timeout = 900
    number = 1
    repeat = 1

    def timeraw_import_and_first_hvp(self):
        from .common import child_path_setup

        setup = child_path_setup() + "\nimport os\nos.environ['FASTBP_DISABLE_CACHE'] = '1'"
        return FIRST_HVP, setup
