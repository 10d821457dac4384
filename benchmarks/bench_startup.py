"""Start-up cost: a fresh interpreter imports fastbp and computes its first gradient.

With the disk cache (the default) the first call loads machine code cached by an earlier process;
with ``FASTBP_DISABLE_CACHE=1`` every kernel it needs is compiled, which is what a user pays once
after installing or upgrading.
"""

from __future__ import annotations

import subprocess
import sys

from .common import child_env, child_path_setup

FIRST_GRADIENT = """
import numpy as np
import fastbp

rng = np.random.default_rng(0)
net = fastbp.MLP([784, 128, 10], seed=0)
X = rng.uniform(-1.0, 1.0, size=(32, 784))
Y = rng.uniform(0.1, 0.9, size=(32, 10))
net.loss_and_grad(X, Y)
"""


class Startup:
    """``timeraw_import_and_first_grad``: import plus first ``loss_and_grad`` in a new process."""

    params = (["disk cache", "compile"],)
    param_names = ["kernels"]
    number = 1
    repeat = 3
    timeout = 300

    def setup(self, kernels):
        if kernels == "disk cache":
            # Fill the cache once so that every timed process loads it.
            subprocess.run([sys.executable, "-c", FIRST_GRADIENT], env=child_env(), check=True)

    def timeraw_import_and_first_grad(self, kernels):
        setup = child_path_setup()
        if kernels == "compile":
            # Read by fastbp at import, so it must be set before the timed statement imports it.
            setup += "\nimport os\nos.environ['FASTBP_DISABLE_CACHE'] = '1'"
        return FIRST_GRADIENT, setup
