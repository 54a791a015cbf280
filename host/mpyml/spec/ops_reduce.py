"""Reduce ops: op codes 41-48, check codes 50-59 (and 95-96: BATCH_MATMUL). Each op's C kernel and its *_check
live in native_modules/engine/ops/ (reduce.c, transpose_conv.c, batch_matmul.c), its viper kernel in
device/mpyml/viper_reduce.py,
its lowering in host/mpyml/lower/reduce.py.

Reductions work on the input's shape right-aligned into 4 dims (n, h, w, c; leading 1s): `axis_mask`
bit i set = dim i of that 4-D shape (0 = n ... 3 = c) is reduced. The output holds the kept dims in
row-major order (keep_dims only changes the output's recorded shape, not its bytes).
"""

from __future__ import annotations

from . import Check, Op, Operand, Param

_I8 = ("int8",)
_I32 = ("int32",)
U31 = 2**31 - 1

RED_SHAPE = Check("RED_SHAPE", 50, "reduce: the output must have as many elements as the input's dims that are not "
                  "reduced (axis_mask over the input right-aligned to 4-D)")
RED_COUNT = Check("RED_COUNT", 51, "reduce: at most 2^23 input elements may reduce into one output element")
ARG_SHAPE = Check("ARG_SHAPE", 52, "arg max: the output must have the input's element count divided by the axis size")
TC_RANK = Check("TCONV_RANK", 53, "transpose conv: input, output and filter [O,KH,KW,I] must be 4-D")
TC_SHAPE = Check("TCONV_SHAPE", 54, "transpose conv: batch sizes differ, or filter [O,KH,KW,I] does not match input "
                 "channels I and output channels O")
TC_BIAS = Check("TCONV_BIAS", 55, "transpose conv: bias must be a constant int32 tensor with one value per "
                "output channel")
TC_REQUANT = Check("TCONV_REQUANT", 56, "transpose conv: mult (0..2^31-1) and shift (-31..30) must be constant int32 "
                   "tensors with one value per output channel")
TC_ACT = Check("TCONV_ACT", 57, "transpose conv: activation range needs act_min <= act_max")

BMM_SHAPE = Check("BMM_SHAPE", 95, "batch matmul: lhs and rhs need rank >= 2, batch dims that broadcast to the "
                  "output's, equal depths (lhs cols / rhs rows after adj_x / adj_y), output [..., lhs rows, "
                  "rhs cols]")
BMM_DEPTH = Check("BMM_DEPTH", 96, "batch matmul: accumulation depth must be <= 32768 (int32 sums)")

_MASK = Param("axis_mask", 0, 15, "bit i: reduce dim i of the 4-D right-aligned input (0 = n .. 3 = c)")
_RED_CHECKS = (RED_SHAPE, RED_COUNT)

OPS = [
    Op("MEAN", 41, (Operand("input", _I8, "any"),), (Operand("output", _I8, "arena"),),
       (_MASK, Param("input_zp", -128, 127), Param("output_zp", -128, 127),
        Param("mult", 0, U31, "input_scale / output_scale with 1/count folded in"),
        Param("shift", -31, 30, ">0 = left")),
       ("MEAN",), kernel="mpyml_mean", checks=_RED_CHECKS,
       doc="int8 mean over the axes of axis_mask, as TFLM's reduce_common.cc (always requantizes, even when "
           "input and output share their quantization)"),
    Op("SUM", 42, (Operand("input", _I8, "any"),), (Operand("output", _I8, "arena"),),
       (_MASK, Param("input_zp", -128, 127), Param("output_zp", -128, 127),
        Param("mult", 0, U31, "input_scale / output_scale"), Param("shift", -31, 30, ">0 = left")),
       ("SUM",), kernel="mpyml_sum", checks=_RED_CHECKS,
       doc="int8 sum over the axes of axis_mask, requantized (TFLM QuantizedMeanOrSum, compute_sum)"),
    Op("REDUCE_MAX", 43, (Operand("input", _I8, "any"),), (Operand("output", _I8, "arena"),), (_MASK,),
       ("REDUCE_MAX",), kernel="mpyml_reduce_max", checks=_RED_CHECKS,
       doc="int8 max over the axes of axis_mask (input and output share quantization)"),
    Op("ARG_MAX", 44, (Operand("input", _I8, "any"),), (Operand("output", ("int32", "int64"), "arena"),),
       (Param("axis", 0, 3, "dim of the 4-D right-aligned input"),),
       ("ARG_MAX",), kernel="mpyml_arg_max", checks=(ARG_SHAPE,),
       doc="index of the largest value along axis (ties: the first), int32 or int64 output"),
    Op("TRANSPOSE_CONV", 45,
       (Operand("input", _I8, "any"), Operand("filter", _I8, "const", doc="[O,KH,KW,I]"),
        Operand("bias", _I32, "const", optional=True),
        Operand("mult", _I32, "const", doc="per-channel multiplier 0..2^31-1", trusted=True),
        Operand("shift", _I32, "const", doc="per-channel shift -31..30 (>0 = left)", trusted=True)),
       (Operand("output", _I8, "arena"),),
       (Param("stride_w", 1, 1024), Param("stride_h", 1, 1024),
        Param("pad_w", 0, 1024, "left padding"), Param("pad_h", 0, 1024, "top padding"),
        Param("input_offset", -127, 128, "-input zero point"), Param("output_offset", -128, 127),
        Param("act_min", -128, 127), Param("act_max", -128, 127)),
       ("TRANSPOSE_CONV",), kernel="mpyml_transpose_conv", checks=(TC_RANK, TC_SHAPE, TC_BIAS, TC_REQUANT, TC_ACT),
       doc="int8 transpose conv, per-channel requantization (TFLM reference_integer_ops::TransposeConv), "
           "computed output-major without a scratch buffer"),
    Op("BATCH_MATMUL", 46,
       (Operand("lhs", _I8, "any", doc="[..., M, K] ([..., K, M] with adj_x)"),
        Operand("rhs", _I8, "any", doc="[..., K, N] ([..., N, K] with adj_y)")),
       (Operand("output", _I8, "arena", doc="[broadcast batch dims..., M, N]"),),
       (Param("adj_x", 0, 1, "1: lhs holds its matrices transposed"),
        Param("adj_y", 0, 1, "1: rhs holds its matrices transposed"),
        Param("lhs_offset", -127, 128, "-lhs zero point"), Param("rhs_offset", -127, 128, "-rhs zero point"),
        Param("output_offset", -128, 127, "output zero point"),
        Param("mult", 0, U31, "lhs_scale * rhs_scale / output_scale"), Param("shift", -31, 30, ">0 = left")),
       ("BATCH_MATMUL",), kernel="mpyml_batch_matmul", checks=(BMM_SHAPE, BMM_DEPTH),
       doc="int8 matmul of two tensors (TFLM reference_integer_ops BatchMatMul): output[b, i, j] = clamp("
           "MultiplyByQuantizedMultiplier(sum_k (lhs[b, i, k] + lhs_offset) * (rhs[b, k, j] + rhs_offset), mult, "
           "shift) + output_offset, -128, 127), batch dims (up to 2, right-aligned) broadcast"),
]
