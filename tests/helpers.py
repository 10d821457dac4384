"""Small helpers shared by the test modules (no fastbp logic: data, error measures and a runner
for scripts that must measure in a fresh interpreter)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

TINY = np.finfo(np.float64).tiny


def rel_err(a, b):
    """max|a - b| / max(max|b|, tiny): 0.0 for two empty arrays."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), TINY))


def scalar_rel_err(a, b):
    return abs(float(a) - float(b)) / max(abs(float(b)), TINY)


def n_params(sizes):
    return sum(sizes[i] * sizes[i - 1] + sizes[i] for i in range(1, len(sizes)))


def random_problem(rng, sizes, batch, scale=1.0):
    """theta, X, Y drawn from rng: theta ~ N(0, scale^2 / fan_in) so no unit saturates badly."""
    parts = []
    for i in range(1, len(sizes)):
        std = scale / np.sqrt(sizes[i - 1])
        parts.append(rng.normal(0.0, std, size=sizes[i] * sizes[i - 1]))
        parts.append(rng.normal(0.0, 0.5, size=sizes[i]))
    theta = np.concatenate(parts)
    X = rng.normal(size=(batch, sizes[0]))
    Y = rng.normal(size=(batch, sizes[-1]))
    return theta, X, Y


def make_net(fastbp, sizes, activations, theta, dtype=np.float64):
    """An MLP with its parameters set to theta (cast to dtype)."""
    net = fastbp.MLP(sizes, activations, dtype=dtype, seed=0)
    net.params = np.asarray(theta, dtype=dtype)
    return net


def child_env(**env: str) -> dict:
    """This process's environment plus ``env``, importing fastbp from this checkout."""
    full = {**os.environ, **env}
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return full


def run_script(script: str, *args: str, timeout: float = 900, **env: str) -> str:
    """Run ``script`` in a fresh interpreter on this checkout (``env`` added); its stdout.

    Fails the test with the script's stderr when it exits non-zero.
    """
    return _run_child(["-c", script, *args], timeout, env)


def run_script_file(name: str, *args: str, timeout: float = 900, **env: str) -> str:
    """Run the file ``tests/scripts/<name>`` in a fresh interpreter on this checkout; its stdout.

    Like :func:`run_script`, for the scripts kept as ``.py`` files (linted, found by grep).
    """
    return _run_child([str(ROOT / "tests" / "scripts" / name), *args], timeout, env)


def _run_child(argv: list[str], timeout: float, env: dict) -> str:
    proc = subprocess.run(
        [sys.executable, *argv],
        env=child_env(**env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def script_result(stdout: str):
    """The JSON a script printed after ``RESULT `` on its last such line."""
    line = [s for s in stdout.splitlines() if s.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


#: Source of ``parallel_code()`` for the scripts of run_script: the names of the package's
#: dispatchers that hold machine code with a parallel region, compiled in the child or loaded
#: from the disk cache. A library's module for linking holds every function linked into it,
#: callees included, so a parfor anywhere below an entry point shows as a defined
#: ``__numba_parfor_gufunc`` function (numba/parfors/parfor_lowering.py names them so). Numba's
#: own marker, ``_reload_parfors`` in a result's ``reload_init``, is not enough: a library
#: loaded from the cache carries none, so a kernel compiled against a cached parallel callee
#: lacks it.
PARALLEL_CODE = """
def parallel_code():
    from fastbp import _jit

    def has_parfor(cres):
        module = cres.library._get_module_for_linking()
        return any(
            "__numba_parfor_gufunc" in f.name and not f.is_declaration for f in module.functions
        )

    return sorted(
        d.py_func.__name__
        for d in _jit.DISPATCHERS
        if any(has_parfor(c) for c in d.overloads.values())
    )
"""
