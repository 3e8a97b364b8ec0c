"""Eight float32 lanes as one Numba value (an LLVM <8 x float>), for the batch-lane twins that keep
several outputs' sums in registers across all of their terms (register blocking, as GEMM kernels do):
Numba's loop vectorizer does not do that by itself, it loads and stores the sums on every pass.

Only what the lane twins need: a load and a store of eight consecutive floats, a broadcast,
acc + a * b with the multiply and the add each rounded to float32, and the ReLU pair as selects on the
IEEE bits (train_f32's relu twins eight at a time: no branch to mispredict, and as fast in place as
not, where LLVM's vectorizer gives up). The IR carries no fast-math flags, so LLVM may not contract a
multiply and an add into a fused multiply-add: every lane does exactly the scalar twin's arithmetic.
Where the CPU has no 256-bit vectors LLVM splits each operation; the bits do not change.
Loads and stores are not bounds-checked: the callers keep every index inside the array.
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic, models, register_model

__all__ = ["WIDTH", "f32x8", "load8", "store8", "splat8", "splat_at", "madd8", "relu8", "relu_backward8"]

WIDTH = 8
_VECTOR = ir.VectorType(ir.FloatType(), WIDTH)


class F32x8(types.Type):
    """Eight float32 values held as one SIMD value."""

    def __init__(self):
        super().__init__(name="f32x8")


f32x8 = F32x8()


@register_model(F32x8)
class _F32x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VECTOR)


def _is_f32_array(t) -> bool:
    return isinstance(t, types.Array) and t.dtype == types.float32 and t.ndim == 1 and t.layout == "C"


def _element_pointer(context, builder, array_type, array, index, index_type):
    data = context.make_array(array_type)(context, builder, array).data
    return builder.gep(data, [context.cast(builder, index, index_type, types.intp)])


def _vector_pointer(context, builder, array_type, array, index, index_type):
    return builder.bitcast(_element_pointer(context, builder, array_type, array, index, index_type),
                           _VECTOR.as_pointer())


def _splat(builder, x):
    one = builder.insert_element(ir.Constant(_VECTOR, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(_VECTOR, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), WIDTH), [0] * WIDTH))


@intrinsic
def load8(typingctx, array, index):
    """array[index : index + 8] as one f32x8 (array: 1-D float32)."""
    if not (_is_f32_array(array) and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.load(_vector_pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1]), align=4)
    return f32x8(array, index), codegen


@intrinsic
def store8(typingctx, array, index, value):
    """array[index : index + 8] = value."""
    if not (_is_f32_array(array) and isinstance(index, types.Integer) and value == f32x8):
        return None

    def codegen(context, builder, sig, args):
        builder.store(args[2], _vector_pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1]),
                      align=4)
        return context.get_dummy_value()
    return types.none(array, index, value), codegen


@intrinsic
def splat8(typingctx, x):
    """x (a float32) in all eight lanes."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        return _splat(builder, args[0])
    return f32x8(x), codegen


@intrinsic
def splat_at(typingctx, array, index):
    """array[index] in all eight lanes (one broadcast load; no negative-index wraparound, no bounds check)."""
    if not (_is_f32_array(array) and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        return _splat(builder, builder.load(ptr, align=4))
    return f32x8(array, index), codegen


@intrinsic
def madd8(typingctx, acc, a, b):
    """acc + a * b lane by lane: the product rounded to float32, then the sum (never fused)."""
    if not (acc == a == b == f32x8):
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], builder.fmul(args[1], args[2]))
    return f32x8(acc, a, b), codegen


_INT_VECTOR = ir.VectorType(ir.IntType(32), WIDTH)


@intrinsic
def relu8(typingctx, v):
    """Lane by lane: +0.0 where the sign bit is set, else v (train_f32.relu_f32_forward)."""
    if v != f32x8:
        return None

    def codegen(context, builder, sig, args):
        negative = builder.icmp_signed("<", builder.bitcast(args[0], _INT_VECTOR), ir.Constant(_INT_VECTOR, 0))
        return builder.select(negative, ir.Constant(_VECTOR, 0.0), args[0])
    return f32x8(v), codegen


@intrinsic
def relu_backward8(typingctx, y, g):
    """Lane by lane: g where the bits of y, as an int32, are > 0, else +0.0 (train_f32.relu_f32_backward)."""
    if not (y == g == f32x8):
        return None

    def codegen(context, builder, sig, args):
        positive = builder.icmp_signed(">", builder.bitcast(args[0], _INT_VECTOR), ir.Constant(_INT_VECTOR, 0))
        return builder.select(positive, args[1], ir.Constant(_VECTOR, 0.0))
    return f32x8(y, g), codegen
