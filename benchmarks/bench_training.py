"""asv suite: one training epoch of SGD, fastbp ``fit`` beside NumPy and PyTorch loops.

The loops are those of ``benchmarks/train_epoch.py`` (the side-by-side script with ratios);
here 2,000 samples of ``[784, 128, 10]`` in float64 so that a full ``asv run`` stays short.
PyTorch is skipped when it is not installed.
"""

import fastbp

from .common import SMOKE_BATCHES, smoke_params
from .train_epoch import fastbp_epoch, make_problem, numpy_epoch, torch_epoch, torch_setup

SIZES = [784, 128, 10]
SAMPLES = 2000


class TimeFitEpoch:
    params = smoke_params(
        [1, 32, 128], ["fastbp", "numpy", "torch"], keep=(1,), only={0: SMOKE_BATCHES}
    )
    param_names = ["batch_size", "impl"]
    timeout = 300

    def setup(self, batch_size, impl):
        self.X, self.Y = make_problem(SIZES, SAMPLES, 0)
        self.net = fastbp.MLP(SIZES, seed=0)
        if impl == "torch":
            try:
                import torch
            except ImportError:
                raise NotImplementedError("torch is not installed") from None
            self.model, self.opt = torch_setup(self.net, 1)
            self.Xt, self.Yt = torch.from_numpy(self.X), torch.from_numpy(self.Y)
        self.Ws = [W.copy() for W in self.net.weights]
        self.bs = [b.copy() for b in self.net.biases]
        self.time_epoch(batch_size, impl)  # compile / warm up: time_ measures the steady state

    def time_epoch(self, batch_size, impl):
        if impl == "fastbp":
            fastbp_epoch(self.net, self.X, self.Y, batch_size)
        elif impl == "numpy":
            numpy_epoch((self.Ws, self.bs), self.X, self.Y, batch_size)
        else:
            torch_epoch(self.model, self.opt, self.Xt, self.Yt, batch_size)


class TimeRawFirstFit:
    """A fresh interpreter: import fastbp and train one epoch (disk-cache load or compile)."""

    timeout = 600

    def timeraw_import_and_fit(self):
        return """
import numpy as np

import fastbp
X = np.random.default_rng(0).uniform(size=(64, 8))
Y = X[:, :2] ** 2
fastbp.MLP([8, 16, 2], seed=0).fit(X, Y, epochs=1, batch_size=8, progress=False)
"""
