"""Start-up cost: a fresh interpreter imports fastbp and computes its first gradient.

``disk cache``: the first call loads machine code cached by an earlier process. ``cold
cache``: an empty cache directory, what a user meets after installing: the first call runs on
the plain tier while a helper process compiles the tiled driver (fastbp._warm; teardown waits
for it, so it does not run into the next benchmark). ``compile``: ``FASTBP_DISABLE_CACHE=1``,
the tiled drivers compiled in-process (no cache, so no helper): the compile the plain tier
hides. ``python -m benchmarks.startup`` measures whole jobs the same way, beside PyTorch.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time

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

    params = (["disk cache", "cold cache", "compile"],)
    param_names = ["kernels"]
    number = 1
    repeat = 3
    timeout = 300

    def setup(self, kernels):
        self.cold = tempfile.mkdtemp(prefix="fastbp-cold-") if kernels == "cold cache" else None
        if kernels == "disk cache":
            # Fill the cache once so that every timed process loads it.
            subprocess.run([sys.executable, "-c", FIRST_GRADIENT], env=child_env(), check=True)

    def teardown(self, kernels):
        if self.cold is not None:
            _wait_for_helpers()
            shutil.rmtree(self.cold, ignore_errors=True)

    def timeraw_import_and_first_grad(self, kernels):
        setup = child_path_setup()
        if kernels == "cold cache":
            # A new empty directory per timed process (fastbp reads it at import), once the
            # previous run's helper has exited (untimed setup).
            setup += (
                "\nimport os, subprocess, tempfile, time"
                "\nwhile subprocess.run(['pgrep', '-f', 'fastbp._warm import main'],"
                " capture_output=True).stdout.strip(): time.sleep(0.5)"
                "\nos.environ['NUMBA_CACHE_DIR'] = "
                f"tempfile.mkdtemp(dir={self.cold!r})"
                "\nos.environ['FASTBP_BACKGROUND_COMPILE'] = '1'"
            )
        if kernels == "compile":
            # Read by fastbp at import, so it must be set before the timed statement imports it.
            setup += "\nimport os\nos.environ['FASTBP_DISABLE_CACHE'] = '1'"
        return FIRST_GRADIENT, setup


def _wait_for_helpers(limit: float = 600.0) -> None:
    """Block until no fastbp._warm helper process runs (their command line names it)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        out = subprocess.run(
            ["pgrep", "-f", "fastbp._warm import main"], capture_output=True, text=True
        )
        if not out.stdout.strip():
            return
        time.sleep(0.5)
