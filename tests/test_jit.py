"""Every compiled function goes through fastbp._jit, with the documented options."""

import gc
import importlib
import pkgutil

import numba
import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

import fastbp
from fastbp import _jit, kernels
from fastbp.activations import ACTIVATIONS


def _package_dispatchers():
    found = []
    for info in pkgutil.iter_modules(fastbp.__path__):
        if info.name == "__main__":
            continue
        module = importlib.import_module(f"fastbp.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, CPUDispatcher) and value.py_func.__module__ == module.__name__:
                found.append((module.__name__, name, value))
    return found


def test_package_has_kernels():
    names = {name for _, name, _ in _package_dispatchers()}
    assert {"forward", "loss", "loss_and_grad", "finite_difference"} <= names


@pytest.mark.parametrize(
    "module,name,dispatcher", _package_dispatchers(), ids=lambda v: getattr(v, "__name__", v)
)
def test_dispatcher_made_by_jit_module(module, name, dispatcher):
    assert any(dispatcher is d for d in _jit.DISPATCHERS), f"{module}.{name} bypasses _jit"
    assert dispatcher.targetoptions.get("nogil") is True
    # fastmath is off everywhere: fused multiply-adds are explicit (_jit.fma), so every
    # compilation of a kernel gives the same bits (a cold process and a warm cache agree).
    fastmath = dispatcher.targetoptions.get("fastmath")
    assert not fastmath, f"{module}.{name}: {fastmath}"
    assert dispatcher.targetoptions.get("error_model") == "numpy"


def test_kernel_refuses_global_option_overrides():
    with pytest.raises(TypeError, match="fastmath"):
        _jit.kernel(fastmath=True)
    with pytest.raises(TypeError, match="fastmath"):
        _jit.kernel(fastmath={"contract"})
    with pytest.raises(TypeError, match="contract"):
        _jit.kernel(contract=True)


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
