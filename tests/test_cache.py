"""The on-disk kernel cache: package-wide invalidation, read-only installs, opting out.

Every scenario runs in fresh interpreters on a private copy of the package in ``tmp_path`` (the
cache is decided at import), with ``-W error`` so that any warning fails the run.

Read-only installs. The tests run as root here, and ``chmod -R a-w`` does not stop root from
writing, so a chmod test alone proves nothing. What binds for root too is a path that cannot
be a directory: the copy's ``fastbp/__pycache__`` is made a regular *file* (no directory can be
created there, and no file written in it, by anyone), and ``XDG_CACHE_HOME`` (the user cache
dir) or ``NUMBA_CACHE_DIR`` point below a regular file. The chmod variant runs as well and
checks more when the tests run as an ordinary user.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numba
import pytest

import fastbp
import fastbp._jit as jit

PACKAGE = Path(fastbp.__file__).resolve().parent

COMPUTE = """
import json
import numpy as np
import fastbp
import fastbp._jit as jit
from fastbp import kernels

net = fastbp.MLP([3, 4, 2], ["tanh", "sigmoid"], seed=0)
X = np.linspace(-1.0, 1.0, 15).reshape(5, 3)
Y = np.zeros((5, 2))
loss, grad = net.loss_and_grad(X, Y)
print(json.dumps({
    "loss": loss.hex(),
    "grad": [float(g).hex() for g in grad],
    "cache_dir": jit.CACHE_DIR,
    # The network is small: fastbp.MLP runs the serial twin of loss_and_grad.
    "hits": sum(kernels._loss_and_grad_serial.stats.cache_hits.values()),
    "misses": sum(kernels._loss_and_grad_serial.stats.cache_misses.values()),
}))
"""

CALLEE = """
from ._jit import kernel


@kernel
def scale(x):
    return {factor} * x
"""

CALLER = """
from ._jit import kernel
from ._probe_callee import scale


@kernel
def caller(x):
    return scale(x) + 1.0
"""

CALL_PROBE = """
import json
import fastbp._jit as jit
from fastbp._probe_caller import caller

print(json.dumps({"value": caller(1.0), "hits": sum(caller.stats.cache_hits.values()),
                  "cache_dir": jit.CACHE_DIR}))
"""


def reference(code: str | None = None, stop: str = "print(", grad: str = "grad") -> dict:
    """What ``code`` (COMPUTE by default) prints for loss and gradient, computed in this
    process: its lines before ``stop``, then the loss and the array named ``grad``."""
    namespace: dict = {}
    exec((COMPUTE if code is None else code).split(stop)[0], namespace)
    return {
        "loss": namespace["loss"].hex(),
        "grad": [float(g).hex() for g in namespace[grad]],
    }


TINY_CALL = """
import json
import numpy as np
import fastbp
import fastbp._jit as jit
from fastbp import kernels

net = fastbp.MLP([2, 16, 1], seed=0)
out = np.empty(net.n_params)
loss, _ = net.loss_and_grad(np.array([0.5, -1.0]), np.array([0.25]), out=out)
entry = net._local.tiny[0]
print(json.dumps({
    "loss": loss.hex(),
    "grad": [float(g).hex() for g in out],
    "direct": entry is not kernels._single_sample_flat,
    "hits": sum(kernels._single_sample_flat.stats.cache_hits.values()),
    "misses": sum(kernels._single_sample_flat.stats.cache_misses.values()),
    "cache_dir": jit.CACHE_DIR,
}))
"""


def tiny_reference() -> dict:
    """What TINY_CALL prints for loss and gradient, computed in this process."""
    return reference(TINY_CALL, stop="entry = ", grad="out")


def with_probe(root: Path, factor: str = "2.0") -> Path:
    """A package copy with a caller kernel in one module and its callee in another."""
    pkg = copy_package(root)
    (pkg / "_probe_callee.py").write_text(CALLEE.format(factor=factor))
    (pkg / "_probe_caller.py").write_text(CALLER)
    return pkg


def copy_package(root: Path) -> Path:
    """A copy of fastbp (sources only, no cache files) under ``root``; returns its directory."""
    dest = root / "fastbp"
    shutil.copytree(PACKAGE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def run_python(code: str, site: Path, **env_overrides) -> dict:
    """Run ``code`` in a fresh interpreter importing fastbp from ``site``; its JSON output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "FASTBP_"))}
    env["PYTHONPATH"] = str(site)
    # The tiled drivers from the first call, as these probes count their cache hits (the
    # plain tier and its helper process: tests/test_plain_tier.py).
    env["FASTBP_BACKGROUND_COMPILE"] = "0"
    env.update(env_overrides)
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr  # no warning, no log noise
    return json.loads(proc.stdout)


def cache_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in (".nbi", ".nbc"))


def test_dispatchers_use_the_package_cache():
    if numba.config.DISABLE_JIT:
        pytest.skip("no dispatchers with NUMBA_DISABLE_JIT=1")
    if jit.CACHE_DIR is None:
        pytest.skip("disk cache off in this process (FASTBP_DISABLE_CACHE or nothing writable)")
    package = [d for d in jit.DISPATCHERS if d.py_func.__module__.startswith("fastbp")]
    assert package
    for dispatcher in package:
        assert type(dispatcher._cache).__name__ == "_PackageCache", dispatcher
        assert dispatcher.stats.cache_path == jit.CACHE_DIR


def test_source_stamp_covers_compiled_modules_only(tmp_path):
    """An edit of a module with compiled code (or one it imports) changes the stamp; an edit
    of the CLI, or a new module no kernel imports, does not (no recompile for a help string)."""
    pkg = copy_package(tmp_path)
    before = jit._source_stamp(pkg)
    assert before == jit._source_stamp(pkg)
    (pkg / "cli.py").write_text((pkg / "cli.py").read_text() + "\n# a help string edit\n")
    (pkg / "new_module.py").write_text("X = 1\n")
    assert jit._source_stamp(pkg) == before
    layers = pkg / "_kernels" / "layers.py"  # a module of the compiled subpackage
    layers.write_text(layers.read_text() + "\n# edit\n")
    edited = jit._source_stamp(pkg)
    assert edited != before
    drivers = pkg / "_kernels" / "drivers.py"  # `from .. import x`: a module one level up
    drivers.write_text(drivers.read_text() + "\nfrom .. import new_module  # noqa: E402\n")
    (pkg / "new_module.py").write_text("X = 2\n")
    third = jit._source_stamp(pkg)
    assert third is not None and third not in (before, edited)


def test_source_stamp_follows_the_kernels_subpackage(tmp_path):
    """Every module of fastbp/_kernels/ is stamped, and the stamp follows each form of relative
    import from there: `from .x import`, `from .. import x`, `from ..x import`, `from ..x.y
    import` (a module of a subpackage's subpackage)."""
    pkg = copy_package(tmp_path)
    stamped = {p.relative_to(pkg).as_posix() for p in jit._compiled_sources(pkg)}
    kernels_dir = {f"_kernels/{p.name}" for p in (pkg / "_kernels").glob("*.py")}
    assert kernels_dir <= stamped
    assert {"_kernels/plain.py", "_kernels/optimizer_steps.py", "_jit.py"} <= stamped
    assert "cli.py" not in stamped
    (pkg / "one.py").write_text("X = 1\n")
    (pkg / "two.py").write_text("X = 1\n")
    (pkg / "sub").mkdir()
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "three.py").write_text("X = 1\n")
    (pkg / "_kernels" / "vexp.py").write_text(
        (pkg / "_kernels" / "vexp.py").read_text()
        + "\nfrom .. import one  # noqa: E402\nfrom ..two import X  # noqa: E402\n"
        + "from ..sub.three import X as Y  # noqa: E402\n"
    )
    stamped = {p.relative_to(pkg).as_posix() for p in jit._compiled_sources(pkg)}
    assert {"one.py", "two.py", "sub/__init__.py", "sub/three.py"} <= stamped
    assert "__init__.py" not in stamped  # `from .. import one` follows one, not the package


def test_callee_change_in_another_module_invalidates_caller(tmp_path):
    pkg = with_probe(tmp_path)
    first = run_python(CALL_PROBE, tmp_path)
    assert first == {"value": 3.0, "hits": 0, "cache_dir": str(pkg / "__pycache__")}
    assert run_python(CALL_PROBE, tmp_path)["hits"] == 1  # the cache is really used

    (pkg / "_probe_callee.py").write_text(CALLEE.format(factor="5.0"))
    after = run_python(CALL_PROBE, tmp_path)
    assert after["value"] == 6.0, "stale machine code loaded after the callee changed"
    assert after["hits"] == 0
    assert run_python(CALL_PROBE, tmp_path)["hits"] == 1


def test_numba_default_cache_is_stale_across_modules(tmp_path):
    """Why fastbp stamps the whole package: plain ``cache=True`` keeps the stale caller.

    If this starts failing, numba tracks callees itself and the package stamp is redundant.
    """
    pkg = tmp_path / "probe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    plain = "import numba\n\n\n@numba.njit(cache=True)\ndef scale(x):\n    return {factor} * x\n"
    (pkg / "callee.py").write_text(plain.format(factor="2.0"))
    (pkg / "caller.py").write_text(
        "import numba\nfrom .callee import scale\n\n\n@numba.njit(cache=True)\n"
        "def caller(x):\n    return scale(x) + 1.0\n"
    )
    code = "import json\nfrom probe.caller import caller\nprint(json.dumps(caller(1.0)))\n"
    assert run_python(code, tmp_path) == 3.0
    (pkg / "callee.py").write_text(plain.format(factor="5.0"))
    assert run_python(code, tmp_path) == 3.0  # stale: the right answer is 6.0


def test_corrupt_cache_files_are_a_miss_and_get_repaired(tmp_path):
    pkg = with_probe(tmp_path)
    assert run_python(CALL_PROBE, tmp_path)["hits"] == 0
    files = cache_files(pkg / "__pycache__")
    assert {p.suffix for p in files} == {".nbi", ".nbc"}
    for path in files:  # truncated / garbage index and data files
        path.write_bytes(b"\x80\x04garbage")
    broken = run_python(CALL_PROBE, tmp_path)
    assert (broken["value"], broken["hits"]) == (3.0, 0)
    repaired = run_python(CALL_PROBE, tmp_path)  # the corrupt files were rewritten
    assert (repaired["value"], repaired["hits"]) == (3.0, 1)


def test_unwritable_everywhere_runs_uncached_and_quiet(tmp_path):
    pkg = copy_package(tmp_path)
    (pkg / "__pycache__").write_text("a file, so no cache directory can exist here\n")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    env = {"XDG_CACHE_HOME": str(blocker / "cache"), "NUMBA_CACHE_DIR": str(blocker / "numba")}
    result = run_python(TINY_CALL, tmp_path, **env)
    assert result["cache_dir"] is None
    assert (result["hits"], result["misses"]) == (0, 1)
    assert {k: result[k] for k in ("loss", "grad")} == tiny_reference()
    assert not cache_files(tmp_path)


def test_read_only_package_falls_back_to_user_cache_dir(tmp_path):
    pkg = copy_package(tmp_path)
    (pkg / "__pycache__").write_text("a file, so no cache directory can exist here\n")
    user_cache = tmp_path / "xdg"
    first = run_python(TINY_CALL, tmp_path, XDG_CACHE_HOME=str(user_cache))
    assert first["cache_dir"].startswith(str(user_cache / "numba" / "fastbp_"))
    assert cache_files(user_cache)
    second = run_python(TINY_CALL, tmp_path, XDG_CACHE_HOME=str(user_cache))
    assert first["misses"] == 1 and first["hits"] == 0
    assert second["hits"] == 1 and second["misses"] == 0
    assert (second["loss"], second["grad"]) == (first["loss"], first["grad"])
    assert {k: first[k] for k in ("loss", "grad")} == tiny_reference()


@pytest.mark.cold
def test_read_only_package_runs_the_batch_drivers_from_the_user_cache_dir(tmp_path):
    """The same with the batch drivers (a whole serial loss_and_grad chain compiled in a fresh
    process; the default run checks the fallback with the one-sample kernel above)."""
    pkg = copy_package(tmp_path)
    (pkg / "__pycache__").write_text("a file, so no cache directory can exist here\n")
    user_cache = tmp_path / "xdg"
    first = run_python(COMPUTE, tmp_path, XDG_CACHE_HOME=str(user_cache))
    assert first["cache_dir"].startswith(str(user_cache / "numba" / "fastbp_"))
    second = run_python(COMPUTE, tmp_path, XDG_CACHE_HOME=str(user_cache))
    assert first["misses"] == 1 and first["hits"] == 0
    assert second["hits"] == 1 and second["misses"] == 0
    assert {k: second[k] for k in ("loss", "grad")} == reference()


def test_numba_cache_dir_is_honoured_first(tmp_path):
    with_probe(tmp_path)
    target = tmp_path / "numba-cache"
    result = run_python(CALL_PROBE, tmp_path, NUMBA_CACHE_DIR=str(target))
    assert result["value"] == 3.0
    assert result["cache_dir"].startswith(str(target / "fastbp_"))
    assert cache_files(target)


def test_chmod_read_only_install(tmp_path):
    """``chmod -R a-w`` on the install. Root can still write, so the cache may land in-tree;
    an ordinary user must get the user cache dir. Either way: correct and quiet."""
    pkg = with_probe(tmp_path)
    user_cache = tmp_path / "xdg"
    for path in [pkg, *pkg.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        result = run_python(CALL_PROBE, tmp_path, XDG_CACHE_HOME=str(user_cache))
        assert result["value"] == 3.0
        if not os.access(pkg, os.W_OK):
            assert result["cache_dir"].startswith(str(user_cache))
    finally:
        for path in [pkg, *pkg.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_disable_cache_env_var(tmp_path):
    pkg = with_probe(tmp_path)
    user_cache = tmp_path / "xdg"
    for _ in range(2):
        result = run_python(
            CALL_PROBE, tmp_path, FASTBP_DISABLE_CACHE="1", XDG_CACHE_HOME=str(user_cache)
        )
        assert result == {"value": 3.0, "hits": 0, "cache_dir": None}
    assert not cache_files(tmp_path)
    # "0" means enabled again.
    enabled = run_python(CALL_PROBE, tmp_path, FASTBP_DISABLE_CACHE="0")
    assert enabled["cache_dir"] == str(pkg / "__pycache__")


def test_tiny_entry_is_loaded_from_the_disk_cache(tmp_path):
    """MLP resolves the one-sample entry with ``Dispatcher.compile``: compiled once, then loaded
    from the package cache by a fresh process (no compile), with the same bits."""
    copy_package(tmp_path)
    first = run_python(TINY_CALL, tmp_path)
    assert (first["direct"], first["hits"], first["misses"]) == (True, 0, 1)
    second = run_python(TINY_CALL, tmp_path)
    assert (second["direct"], second["hits"], second["misses"]) == (True, 1, 0)
    assert (second["loss"], second["grad"]) == (first["loss"], first["grad"])
