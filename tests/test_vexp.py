"""The branch-free exp / expm1 / log1p of fastbp._kernels.vexp and the vectorized activation
epilogue.

References are NumPy's long double (80-bit on x86-64) functions, ~11 bits more precise than
float64, so the measured errors are the functions' own. Errors are in ulp of the float64
reference (where it is normal), the unit the module docstring quotes. Under
NUMBA_DISABLE_JIT=1 the grids are thinned (every function then runs as Python on NumPy scalars).
"""

import math
import platform
import re

import numba
import numpy as np
import pytest

from fastbp import _jit
from fastbp._kernels import layers as _layers
from fastbp._kernels import vexp as _vexp

JIT = not numba.config.DISABLE_JIT
DENSE = 400_001 if JIT else 2_001
LD = np.longdouble
pytestmark = pytest.mark.skipif(
    np.finfo(LD).eps >= 1e-18, reason="needs an 80-bit long double for the reference"
)


# Compiled with the package's options (its multiply-adds are explicit _jit.fma calls), so the
# tested bits are the production ones.
@numba.njit(**_jit._OPTIONS)
def _map(f, x, out):
    for i in range(x.shape[0]):
        out[i] = f(x[i])


def _apply(f, x):
    out = np.empty_like(x)
    if JIT:
        _map(f, x, out)
    else:
        for i in range(x.shape[0]):
            out[i] = f(x[i])
    return out


def _ulp(got, ref):
    """|got - ref| in ulp of the float64 reference, 0 where the reference is not normal."""
    r64 = ref.astype(np.float64)
    normal = np.abs(r64) >= np.finfo(np.float64).tiny
    err = np.abs(got.astype(LD) - ref) / np.spacing(np.abs(r64)).astype(LD)
    return np.where(normal, err, 0).astype(np.float64)


def _nonpositive_grid(rng):
    return np.concatenate(
        [
            np.linspace(-745.0, 0.0, DENSE),
            -rng.uniform(0.0, 745.0, DENSE // 2),
            -rng.uniform(0.0, 1.0, DENSE // 2),
            -np.logspace(-300, -8, DENSE // 20),
            [-0.0, 0.0, -5e-324, -1e-320, -745.0, -745.1],
        ]
    )


def test_exp_nonpos_within_one_ulp(rng):
    y = _nonpositive_grid(rng)
    assert _ulp(_apply(_vexp.exp_nonpos, y), np.exp(y.astype(LD))).max() < 1.0


def test_expm1_nonpos_within_one_ulp(rng):
    y = _nonpositive_grid(rng)
    assert _ulp(_apply(_vexp.expm1_nonpos, y), np.expm1(y.astype(LD))).max() < 1.0


def test_log1p_unit_within_one_ulp(rng):
    e = np.concatenate(
        [
            np.linspace(0.0, 1.0, DENSE),
            rng.uniform(0.0, 1.0, DENSE // 2),
            np.logspace(-320, -1, 999),
        ]
    )
    assert _ulp(_apply(_vexp.log1p_unit, e), np.log1p(e.astype(LD))).max() < 1.0


@pytest.mark.parametrize(
    "f, ref",
    [(_vexp.exp_nonpos, math.exp), (_vexp.expm1_nonpos, math.expm1)],
    ids=["exp", "expm1"],
)
def test_special_arguments_as_libm(f, ref):
    y = np.array([0.0, -np.inf, -1000.0, -746.0, -1e-300, np.nan])
    got = _apply(f, y)
    np.testing.assert_array_equal(got, [ref(v) for v in y])  # NaN == NaN here


def test_subnormal_results_within_one_subnormal_step():
    y = np.linspace(-745.2, -708.0, DENSE // 4)
    got = _apply(_vexp.exp_nonpos, y)
    assert np.abs(got - np.exp(y)).max() <= 5e-324
    assert _apply(_vexp.exp_nonpos, np.array([-745.2, -800.0])).tolist() == [0.0, 0.0]


def _reference(name, a):
    """(h, h') in long double."""
    a = a.astype(LD)
    e = np.exp(-np.abs(a))
    sigmoid = np.where(a >= 0, 1 / (1 + e), e / (1 + e))
    if name == "sigmoid":
        return sigmoid, e / ((1 + e) * (1 + e))
    if name == "tanh":
        e2 = np.exp(-2 * np.abs(a))
        return np.tanh(a), 4 * e2 / ((1 + e2) * (1 + e2))
    return np.maximum(a, 0) + np.log1p(e), sigmoid


def _epilogue(name, a, derivative):
    """z = h(a) by the batched epilogue on one row; returns (z, a after, zT column)."""
    code = {"sigmoid": _layers.SIGMOID, "tanh": _layers.TANH, "softplus": _layers.SOFTPLUS}[name]
    a = a.reshape(1, -1).copy()
    z = np.empty_like(a)
    zT = np.empty((a.shape[1], 1), dtype=a.dtype)
    _layers._activate(code, a, z, zT, 0, a.shape[1], 0, derivative)
    return z[0], a[0], zT[:, 0]


# Max ulp of the float64 results: the formulas' own rounding (e.g. 1 / (1 + e)) dominates, and the
# same formulas on libm's exp (the scalar path) measure alike: sigmoid 2.24 / 3.99, tanh (libm's
# tanh) 2.10 / 3.90, softplus 1.49 / 2.24.
ULP64 = {"sigmoid": (2.5, 4.5), "tanh": (2.5, 4.5), "softplus": (2.0, 2.5)}


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus"])
def test_epilogue_float64_accuracy(name, rng):
    a = np.concatenate(
        [
            np.linspace(-40.0, 40.0, DENSE),
            rng.normal(0.0, 3.0, DENSE // 2),
            np.logspace(-300, -8, DENSE // 40),
            -np.logspace(-300, -8, DENSE // 40),
            np.linspace(-745.0, 745.0, DENSE // 10),
            [0.0, -0.0, 1000.0, -1000.0, 5e-324, -5e-324],
        ]
    )
    z, d, zT = _epilogue(name, a, True)
    h_ref, d_ref = _reference(name, a)
    assert _ulp(z, h_ref).max() < ULP64[name][0]
    assert _ulp(d, d_ref).max() < ULP64[name][1]
    assert zT.tobytes() == z.tobytes()
    assert _epilogue(name, a, False)[0].tobytes() == z.tobytes()  # h alone: the same bits


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus"])
def test_epilogue_float32_correctly_rounded(name, rng):
    """float32 is computed in float64 and rounded once: the nearest float32 of the reference."""
    a = np.concatenate([np.linspace(-20.0, 20.0, DENSE // 4), rng.normal(0.0, 3.0, DENSE // 4)])
    a = a.astype(np.float32)
    z, d, _ = _epilogue(name, a, True)
    h_ref, d_ref = _reference(name, a.astype(np.float64))
    for got, ref in ((z, h_ref), (d, d_ref)):
        r32 = ref.astype(np.float32)
        err = np.abs(got.astype(LD) - ref) / np.spacing(np.abs(r32)).astype(LD)
        assert np.where(np.abs(r32) >= np.finfo(np.float32).tiny, err, 0).max() <= 0.5 + 1e-6


SPECIAL = np.array([0.0, -0.0, 1000.0, -1000.0, np.inf, -np.inf, np.nan])
FINITE = 4  # the first four; +-inf (an overflowed pre-activation) and NaN give NaN
LN2 = math.log(2.0)
# (h, h') at the finite SPECIAL values, as libm's formulas give them (tanh(-0) = -0 included).
EXPECTED = {
    "sigmoid": ([0.5, 0.5, 1.0, 0.0], [0.25, 0.25, 0.0, 0.0]),
    "tanh": ([0.0, -0.0, 1.0, -1.0], [1.0, 1.0, 0.0, 0.0]),
    "softplus": ([LN2, LN2, 1000.0, 0.0], [0.5, 0.5, 1.0, 0.0]),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus"])
def test_epilogue_special_values(name, dtype):
    """Saturation and signed zeros exact; +-inf (only an overflowed pre-activation can be
    infinite: inputs are validated) and NaN give NaN for h and h', in the epilogue and the scalar
    path, so the overflow is reported instead of saturating silently."""
    code = {"sigmoid": _layers.SIGMOID, "tanh": _layers.TANH, "softplus": _layers.SOFTPLUS}[name]
    h_exp, d_exp = (np.array(v, dtype) for v in EXPECTED[name])
    z, d, _ = _epilogue(name, SPECIAL.astype(dtype), True)
    pairs = [_layers.activation_and_derivative(code, v) for v in SPECIAL.astype(dtype)]
    for h, dh in ((z, d), (np.array(pairs, dtype)[:, 0], np.array(pairs, dtype)[:, 1])):
        assert h[:FINITE].tobytes() == h_exp.tobytes()  # bytes: the sign of zero counts
        assert dh[:FINITE].tobytes() == d_exp.tobytes()
        assert np.isnan(h[FINITE:]).all() and np.isnan(dh[FINITE:]).all()


@pytest.mark.skipif(not JIT, reason="no machine code with NUMBA_DISABLE_JIT=1")
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 assembly")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_epilogue_loops_are_vectorized(dtype):
    """The smooth activations' loops hold packed divisions (divpd on xmm/ymm/zmm), i.e. the loop
    vectorizer packed them: a call left inside, or a vector instruction inlined from a callee
    that SLP packed on its own, would keep them scalar (divsd)."""
    # A fresh, uncached compile with the package's options (cached code cannot be inspected).
    options = dict(_jit._OPTIONS)  # as the package compiles it
    activate = numba.njit(**options)(_layers._activate_gradient.py_func)
    a = np.zeros((2, 40), dtype)
    activate(_layers.TANH, a, a.copy(), np.zeros((40, 2), dtype), 0, 40, 0, True)
    asm = activate.inspect_asm(activate.signatures[0])
    assert len(re.findall(r"\bv?divpd\b", asm)) >= 3  # one per loop at least: 3 codes (h and h')
