"""Every compiled function goes through fastbp._jit, with the documented options."""

import gc
import importlib
import importlib.util
import pkgutil

import numba
import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

import fastbp
from fastbp import _jit, kernels
from fastbp._extras import available  # a submodule whose optional extra is installed
from fastbp.activations import ACTIVATIONS


def _package_modules() -> list[str]:
    """Every module of the package, those of its subpackages (fastbp._kernels) included."""
    return [
        info.name
        for info in pkgutil.walk_packages(fastbp.__path__, "fastbp.")
        if info.name != "fastbp.__main__" and available(info.name)
    ]


def _import_package():
    """Import every module of the package, so every kernel and twin it makes exists."""
    for name in _package_modules():
        importlib.import_module(name)


def _module_dispatchers():
    """(module, name, dispatcher) of every dispatcher bound to a package module's name."""
    _import_package()
    found = []
    for name in _package_modules():
        module = importlib.import_module(name)
        for name, value in vars(module).items():
            if isinstance(value, CPUDispatcher) and value.py_func.__module__ == module.__name__:
                found.append((module.__name__, name, value))
    return found


def _is_package(dispatcher) -> bool:
    # Under NUMBA_DISABLE_JIT=1 _jit.DISPATCHERS holds the plain functions: no dispatchers.
    if not isinstance(dispatcher, CPUDispatcher):
        return False
    return (getattr(dispatcher.py_func, "__module__", None) or "").startswith("fastbp")


#: The tests below inspect dispatchers, which the JIT off does not make.
needs_jit = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="no dispatchers with the JIT off")


def _package_dispatchers():
    """Every package dispatcher made through fastbp._jit: the module-level kernels and every twin
    (the serial drivers, the per-mode forward twins that live only in a namespace dict, the
    training twins in fastbp.train.TRAIN_STEPS)."""
    _import_package()
    return [d for d in _jit.DISPATCHERS if _is_package(d)]


def _live_package_dispatchers():
    """Every package dispatcher alive in this process, wherever it is bound (found by the
    garbage collector, so a kernel made by numba.njit directly, outside _jit, is found too)."""
    _import_package()
    gc.collect()
    # issubclass(type(o), ...), not isinstance: isinstance reads o.__class__, which some live
    # objects refuse (an NpzFile's BagObj, from the golden files other tests load, raises
    # AttributeError for every attribute).
    return [o for o in gc.get_objects() if issubclass(type(o), CPUDispatcher) and _is_package(o)]


def _label(dispatcher) -> str:
    f = dispatcher.py_func
    return f"{f.__module__}.{f.__name__}"


def policy_violations(dispatcher) -> list[str]:
    """What in ``dispatcher``'s options breaks fastbp's policy (empty when nothing)."""
    options = dispatcher.targetoptions
    found = []
    if options.get("nogil") is not True:
        found.append(f"nogil={options.get('nogil')!r}")
    # fastmath is off everywhere: fused multiply-adds are explicit (_jit.fma), so every
    # compilation of a kernel gives the same bits (a cold process and a warm cache agree).
    fastmath = options.get("fastmath")
    if fastmath:
        found.append(f"fastmath={fastmath!r}")
    if options.get("error_model") != "numpy":
        found.append(f"error_model={options.get('error_model')!r}")
    # The disk cache is the package's own, attached by _jit (or none), never numba's cache=True.
    cache = type(dispatcher._cache).__name__
    if cache not in ("NullCache", "_PackageCache"):
        found.append(f"cache: {cache}")
    return found


@needs_jit
def test_package_has_kernels():
    names = {name for _, name, _ in _module_dispatchers()}
    assert {"forward", "loss", "loss_and_grad", "finite_difference"} <= names
    # The twins are in the list the policy iterates: the serial drivers, the serial per-mode
    # forward passes (bound in no module) and every training twin.
    from fastbp import train

    package = _package_dispatchers()
    names = {d.py_func.__name__ for d in package}
    assert {
        "_loss_and_grad_serial",
        "_forward_all_forward_serial",
        "_forward_all_gradient_serial",
    } <= names
    assert all(any(k is d for d in package) for k in train.TRAIN_STEPS.values())


@needs_jit
def test_every_live_dispatcher_went_through_jit():
    """No package dispatcher bypasses fastbp._jit, module-level or not."""
    live = _live_package_dispatchers()
    assert len(live) >= len(_module_dispatchers())
    bypass = [_label(d) for d in live if not any(d is k for k in _jit.DISPATCHERS)]
    assert not bypass, bypass


@needs_jit
@pytest.mark.parametrize("dispatcher", _package_dispatchers(), ids=_label)
def test_dispatcher_options_follow_the_policy(dispatcher):
    assert not policy_violations(dispatcher), (_label(dispatcher), policy_violations(dispatcher))


@needs_jit
@pytest.mark.parametrize(
    "options",
    [
        {"fastmath": True},
        {"fastmath": {"contract"}},
        {"nogil": False},
        {"error_model": "python"},
        {"cache": True},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_policy_flags_a_wrong_option(options):
    """The policy check itself can fail: a dispatcher made with one wrong option is flagged
    (never called, so nothing compiles or reaches a disk cache)."""

    def double(x):
        return 2.0 * x

    good = {**_jit._OPTIONS}
    assert not policy_violations(numba.njit(**good)(double))
    assert policy_violations(numba.njit(**{**good, **options})(double))


def test_kernel_refuses_global_option_overrides():
    with pytest.raises(TypeError, match="fastmath"):
        _jit.kernel(fastmath=True)
    with pytest.raises(TypeError, match="fastmath"):
        _jit.kernel(fastmath={"contract"})
    with pytest.raises(TypeError, match="contract"):
        _jit.kernel(contract=True)


@needs_jit
def test_fma_rounds_once():
    """_jit.fma is the fused multiply-add: exact products, one rounding (LLVM's llvm.fma)."""

    @_jit.kernel
    def fused(a, b, c):
        return _jit.fma(a, b, c)

    a = 1.0 + 2.0**-30
    # a * a = 1 + 2^-29 + 2^-60: rounded first, the 2^-60 is lost; fused, it survives.
    assert fused(a, a, -1.0) == 2.0**-29 + 2.0**-60
    assert a * a - 1.0 == 2.0**-29
    assert fused(np.float32(1.5), np.float32(2.0), np.float32(0.25)) == np.float32(3.25)


def test_activation_codes_agree_with_kernels():
    codes = {
        "sigmoid": kernels.SIGMOID,
        "tanh": kernels.TANH,
        "relu": kernels.RELU,
        "leaky_relu": kernels.LEAKY_RELU,
        "softplus": kernels.SOFTPLUS,
        "identity": kernels.IDENTITY,
    }
    assert tuple(sorted(codes, key=codes.get)) == ACTIVATIONS


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="nothing is compiled with the JIT off")
def test_compile_leaves_the_garbage_collector_as_it_was():
    """A compile freezes the objects that existed before it (gc.freeze) and unfreezes them after,
    leaving nothing frozen; a caller's own frozen objects stay frozen, untouched."""

    def double(x):
        return 2.0 * x

    assert gc.get_freeze_count() == 0
    first = _jit.kernel(double)
    assert first(1.5) == 3.0
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        second = _jit.kernel(double)
        assert second(2) == 4.0  # an int signature: a fresh compile
        # Still frozen, and nothing added: only objects freed during the compile have left.
        assert 0 < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()
    assert gc.isenabled()


@needs_jit
def test_twins_keep_the_originals_options():
    """A twin compiles its original's bytecode with the same FMA contraction, parallel loops and
    inlining (the serial twin of _layer_gradient must stay inlined into its driver)."""
    pairs = [
        (kernels._layer_gradient, kernels._layer_gradient_serial),
        (kernels.forward_rows, kernels.forward_rows_gradient),
        (kernels.forward_rows_parallel, kernels.forward_rows_parallel_gradient),
        (kernels.loss_and_grad, kernels._loss_and_grad_serial),
    ]
    for original, twin in pairs:
        for option in ("fastmath", "parallel", "inline"):
            assert twin.targetoptions.get(option) == original.targetoptions.get(option), (
                f"{twin.py_func.__name__}: {option}"
            )
    assert kernels._layer_gradient_serial.targetoptions.get("inline") == "always"
