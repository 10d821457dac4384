"""fit's compiled loop is recompiled when _kernels/drivers.py changes: the package-wide source
stamp of fastbp._jit (see tests/test_cache.py) applied to the training kernels, which call into
another module (Numba's own per-file stamp would keep running the stale inlined copy)."""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import fastbp

SCRIPT = textwrap.dedent(
    """
    import numpy as np, fastbp
    X = np.linspace(-1, 1, 8).reshape(8, 1); Y = X ** 2
    net = fastbp.MLP([1, 3, 1], ["tanh", "identity"], seed=0)
    h = net.fit(X, Y, epochs=1, batch_size=4, progress=False, shuffle=False)
    print(repr(h.loss[0]))
    """
)


# Two cold compiles of fit's whole chain in a private cache (~60 s): CI's cold step runs it; the
# default run checks the same stamp with small probe kernels (tests/test_cache.py).
@pytest.mark.cold
def test_editing_kernels_py_recompiles_the_training_loop(tmp_path):
    # fit's compiled loop lives in _kernels/train_steps.py and calls drivers.loss_and_grad. Change
    # only _kernels/drivers.py between two processes sharing one disk cache: the second must see
    # the change.
    root = tmp_path / "copy"
    shutil.copytree(
        os.path.dirname(fastbp.__file__), root / "fastbp",
        ignore=shutil.ignore_patterns("__pycache__"),
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(root), "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("FASTBP_DISABLE_CACHE", None)

    def loss():
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
        return float(out.stdout.strip())

    first = loss()
    kernels_py = root / "fastbp" / "_kernels" / "drivers.py"
    source = kernels_py.read_text()
    # The last `return total` of loss_and_grad (its batch path) now adds 8.
    start = source.index("\ndef loss_and_grad(")
    end = source.find("\n@kernel", start)
    end = len(source) if end < 0 else end
    at = source.rindex("\n    return total\n", start, end)
    kernels_py.write_text(source[:at] + "\n    return total + 8.0\n" + source[at + 18 :])
    # Two steps of 4 samples each gain 8: the epoch's mean loss grows by 16 / 8 = 2.
    assert loss() == pytest.approx(first + 2.0, rel=1e-12)
