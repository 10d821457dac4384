"""Explicit SIMD vectors for the batched core, built on Numba's extension API.

A :class:`Vec` is a Numba type whose data model is an LLVM vector (``<4 x double>`` on the
``avx2`` tier, ``<8 x double>`` on ``avx512``; twice the lanes in float32), so a register tile
written with it is vector code by construction, whatever the SLP vectorizer decides
(docs/perf-log.md, "Issue 22"). The operations are ``@intrinsic`` functions, each one LLVM
instruction or intrinsic:

==================================  =========================================================
``vbroadcast(arr, i)``              ``arr[i]`` in every lane
``vload(arr, i)``                   ``arr[i : i + LANES]`` (unaligned; ``arr`` 1-D contiguous)
``vload_part(arr, i, n)``           the first ``n`` lanes from ``arr[i:]``, zeros after
                                    (``llvm.masked.load``: never reads past ``arr[i + n - 1]``)
``vstore(arr, i, v)``               ``arr[i : i + LANES] = v``
``vstore_part(arr, i, v, n)``       the first ``n`` lanes of ``v`` into ``arr[i:]``
``vfma(a, b, c)``                   ``a * b + c`` rounded once per lane (``llvm.fma``)
``vmul(a, b)``                      lane by lane
==================================  =========================================================

Lanes per vector follow the tier (:data:`VECTOR_BYTES`): the code is the same on every tier and
every lane's value is computed by the same IEEE operations as the scalar loops
(:func:`fastbp._jit.fma` per multiply-add, in the same order), so the tier changes the speed,
never the bits. No index is checked here: the kernels that call these check their shapes first.

Under ``NUMBA_DISABLE_JIT=1`` every operation is a NumPy stand-in on small arrays (the
multiply-add rounds twice there, as :func:`fastbp._jit.fma`'s stand-in does).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic, models, register_model

from .._tiers import TIER

__all__ = [
    "LANES_F32",
    "VECTOR_BYTES",
    "Vec",
    "lanes",
    "vbroadcast",
    "vfma",
    "vload",
    "vload_part",
    "vmul",
    "vstore",
    "vstore_part",
]

#: Bytes per vector register for each tier: 64 (zmm), 32 (ymm), 16 (xmm / NEON).
VECTOR_BYTES = {"avx512": 64, "avx2": 32, "portable": 16}[TIER]
LANES_F32 = VECTOR_BYTES // 4


def lanes(dtype) -> int:
    """Lanes per vector for a NumPy dtype on this process's tier."""
    return VECTOR_BYTES // np.dtype(dtype).itemsize


class Vec(types.Type):
    """A SIMD vector of ``count`` lanes of the float type ``dtype``."""

    def __init__(self, dtype, count):
        self.dtype = dtype
        self.count = count
        super().__init__(name=f"Vec({dtype} x {count})")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        be_type = ir.VectorType(dmm.lookup(fe_type.dtype).get_value_type(), fe_type.count)
        super().__init__(dmm, fe_type, be_type)


def _vec_of(dtype):
    """The :class:`Vec` type for an array or scalar dtype, or None for a non-float dtype."""
    if not isinstance(dtype, types.Float):
        return None
    return Vec(dtype, VECTOR_BYTES // (dtype.bitwidth // 8))


def _flat(arr):
    """Whether ``arr`` is a 1-D C-contiguous float array type (what the loads take)."""
    return isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C"


def _pointer(context, builder, aryty, ary, index, indexty, vty):
    """The address of ``ary[index]`` as a pointer to ``vty``'s LLVM vector."""
    array = context.make_array(aryty)(context, builder, ary)
    i = context.cast(builder, index, indexty, types.intp)
    ptr = builder.gep(array.data, [i])
    return builder.bitcast(ptr, context.get_value_type(vty).as_pointer())


def _mask(builder, n, nty, count, context):
    """``<count x i1>``: lane j set where j < n."""
    n = context.cast(builder, n, nty, types.int32)
    vt = ir.VectorType(ir.IntType(32), count)
    lanes_const = ir.Constant(vt, list(range(count)))
    undef = ir.Constant(vt, ir.Undefined)
    first = builder.insert_element(undef, n, ir.Constant(ir.IntType(32), 0))
    ns = builder.shuffle_vector(first, undef, ir.Constant(vt, [0] * count))
    return builder.icmp_signed("<", lanes_const, ns)


def _suffix(vty, context):
    """LLVM's type suffix for a vector type: ``v4f64``, ``v8f32``."""
    bits = vty.dtype.bitwidth
    return f"v{vty.count}f{bits}"


if numba.config.DISABLE_JIT:  # pragma: no cover - exercised by the JIT-off CI step

    def vbroadcast(arr, i):
        return np.full(lanes(arr.dtype), arr[i], dtype=arr.dtype)

    def vload(arr, i):
        return arr[i : i + lanes(arr.dtype)].copy()

    def vload_part(arr, i, n):
        v = np.zeros(lanes(arr.dtype), dtype=arr.dtype)
        v[:n] = arr[i : i + n]
        return v

    def vstore(arr, i, v):
        arr[i : i + v.shape[0]] = v

    def vstore_part(arr, i, v, n):
        arr[i : i + n] = v[:n]

    def vfma(a, b, c):
        return a * b + c

    def vmul(a, b):
        return a * b

else:

    @intrinsic
    def vbroadcast(typingctx, arr, i):
        """``arr[i]`` in every lane (``arr`` 1-D contiguous)."""
        if not _flat(arr) or not isinstance(i, types.Integer):
            return None
        vty = _vec_of(arr.dtype)
        if vty is None:
            return None

        def codegen(context, builder, sig, args):
            array = context.make_array(sig.args[0])(context, builder, args[0])
            idx = context.cast(builder, args[1], sig.args[1], types.intp)
            x = builder.load(builder.gep(array.data, [idx]))
            lt = context.get_value_type(vty)
            first = builder.insert_element(
                ir.Constant(lt, ir.Undefined), x, ir.Constant(ir.IntType(32), 0)
            )
            zeros = ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count)
            return builder.shuffle_vector(first, ir.Constant(lt, ir.Undefined), zeros)

        return vty(arr, i), codegen

    @intrinsic
    def vload(typingctx, arr, i):
        """``arr[i : i + lanes]`` as a vector (unaligned; ``arr`` 1-D contiguous)."""
        if not _flat(arr) or not isinstance(i, types.Integer):
            return None
        vty = _vec_of(arr.dtype)
        if vty is None:
            return None

        def codegen(context, builder, sig, args):
            ptr = _pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1], vty)
            return builder.load(ptr, align=vty.dtype.bitwidth // 8)

        return vty(arr, i), codegen

    @intrinsic
    def vload_part(typingctx, arr, i, n):
        """The first ``n`` lanes of ``arr[i:]``, zeros in the others; reads nothing past them."""
        if not _flat(arr) or not isinstance(i, types.Integer) or not isinstance(n, types.Integer):
            return None
        vty = _vec_of(arr.dtype)
        if vty is None:
            return None

        def codegen(context, builder, sig, args):
            ptr = _pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1], vty)
            lt = context.get_value_type(vty)
            mask = _mask(builder, args[2], sig.args[2], vty.count, context)
            fnty = ir.FunctionType(lt, [lt.as_pointer(), ir.IntType(32), mask.type, lt])
            name = f"llvm.masked.load.{_suffix(vty, context)}.p0{_suffix(vty, context)}"
            fn = cgutils.get_or_insert_function(builder.module, fnty, name)
            align = ir.Constant(ir.IntType(32), vty.dtype.bitwidth // 8)
            return builder.call(fn, [ptr, align, mask, ir.Constant(lt, None)])

        return vty(arr, i, n), codegen

    @intrinsic
    def vstore(typingctx, arr, i, v):
        """``arr[i : i + lanes] = v`` (unaligned)."""
        if not _flat(arr) or not isinstance(v, Vec) or v.dtype != arr.dtype:
            return None

        def codegen(context, builder, sig, args):
            ptr = _pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1], v)
            builder.store(args[2], ptr, align=v.dtype.bitwidth // 8)
            return context.get_dummy_value()

        return types.none(arr, i, v), codegen

    @intrinsic
    def vstore_part(typingctx, arr, i, v, n):
        """The first ``n`` lanes of ``v`` into ``arr[i : i + n]``; writes nothing else."""
        if not _flat(arr) or not isinstance(v, Vec) or v.dtype != arr.dtype:
            return None

        def codegen(context, builder, sig, args):
            ptr = _pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1], v)
            lt = context.get_value_type(v)
            mask = _mask(builder, args[3], sig.args[3], v.count, context)
            fnty = ir.FunctionType(ir.VoidType(), [lt, lt.as_pointer(), ir.IntType(32), mask.type])
            name = f"llvm.masked.store.{_suffix(v, context)}.p0{_suffix(v, context)}"
            fn = cgutils.get_or_insert_function(builder.module, fnty, name)
            align = ir.Constant(ir.IntType(32), v.dtype.bitwidth // 8)
            builder.call(fn, [args[2], ptr, align, mask])
            return context.get_dummy_value()

        return types.none(arr, i, v, n), codegen

    @intrinsic
    def vfma(typingctx, a, b, c):
        """``a * b + c`` per lane, rounded once (``llvm.fma`` on the vector type)."""
        if not (isinstance(a, Vec) and a == b and a == c):
            return None

        def codegen(context, builder, sig, args):
            lt = context.get_value_type(a)
            fnty = ir.FunctionType(lt, [lt, lt, lt])
            fn = cgutils.get_or_insert_function(
                builder.module, fnty, f"llvm.fma.{_suffix(a, context)}"
            )
            return builder.call(fn, list(args))

        return a(a, b, c), codegen

    @intrinsic
    def vmul(typingctx, a, b):
        """``a * b`` per lane."""
        if not (isinstance(a, Vec) and a == b):
            return None

        def codegen(context, builder, sig, args):
            return builder.fmul(args[0], args[1])

        return a(a, b), codegen
