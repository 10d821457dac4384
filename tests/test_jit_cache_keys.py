"""The disk cache is keyed on every kernel module: a kernel that calls into another module is
recompiled when that module changes (Numba alone would keep running the stale inlined copy)."""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import fastbp
from fastbp import _jit


def test_every_dispatcher_is_keyed_on_the_package_hash():
    import fastbp.optim  # noqa: F401
    import fastbp.train_kernels  # noqa: F401

    assert _jit.DISPATCHERS
    if not _jit.CACHE:
        pytest.skip("disk cache disabled")
    for dispatcher in _jit.DISPATCHERS:
        stamp = dispatcher._cache._cache_file._source_stamp
        assert stamp[1] == _jit.kernel_sources_hash(), dispatcher


def test_hash_covers_kernel_modules_only(tmp_path, monkeypatch):
    pkg = tmp_path / "fastbp"
    shutil.copytree(os.path.dirname(fastbp.__file__), pkg)

    def digest():
        monkeypatch.setattr(_jit, "_PACKAGE_DIR", pkg)
        monkeypatch.setattr(_jit, "_kernel_sources_hash", None)
        return _jit.kernel_sources_hash()

    base = digest()
    (pkg / "cli.py").write_text((pkg / "cli.py").read_text() + "\n# not a kernel module\n")
    assert digest() == base
    for name in ("kernels.py", "optim.py", "train_kernels.py", "_jit.py"):
        path = pkg / name
        original = path.read_text()
        path.write_text(original + "\n# changed\n")
        assert digest() != base, name
        path.write_text(original)
    assert digest() == base


SCRIPT = textwrap.dedent(
    """
    import numpy as np, fastbp
    X = np.linspace(-1, 1, 8).reshape(8, 1); Y = X ** 2
    net = fastbp.MLP([1, 3, 1], ["tanh", "identity"], seed=0)
    h = net.fit(X, Y, epochs=1, batch_size=4, progress=False, shuffle=False)
    print(repr(h.loss[0]))
    """
)


def test_editing_kernels_py_recompiles_the_training_loop(tmp_path):
    # fit's compiled loop lives in train_kernels.py and calls kernels.loss_and_grad. Change only
    # kernels.py between two processes sharing one disk cache: the second must see the change.
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
    kernels_py = root / "fastbp" / "kernels.py"
    source = kernels_py.read_text()
    # The last `return total` of loss_and_grad (its batch path) now adds 8.
    start = source.index("\ndef loss_and_grad(")
    end = source.find("\n@kernel", start)
    end = len(source) if end < 0 else end
    at = source.rindex("\n    return total\n", start, end)
    kernels_py.write_text(source[:at] + "\n    return total + 8.0\n" + source[at + 18 :])
    # Two steps of 4 samples each gain 8: the epoch's mean loss grows by 16 / 8 = 2.
    assert loss() == pytest.approx(first + 2.0, rel=1e-12)
