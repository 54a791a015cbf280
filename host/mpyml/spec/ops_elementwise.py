"""Elementwise ops: op codes 9-24, check codes 30-39 (and 97: DIV). Each op's C kernel and its *_check live in
native_modules/engine/ops/elementwise*.c, its viper kernel in device/mpyml/viper_elementwise.py, its lowering
in host/mpyml/lower/elementwise.py."""

from __future__ import annotations

from . import Check, Op, Operand, Param

_8 = ("int8", "uint8")
U31 = 2**31 - 1

CHK_TABLE = Check("EW_TABLE", 30, "lookup table must be a constant of 256 entries of the output's type "
                                  "(repack the model with this mpyml version)")
CHK_SHAPE = Check("EW_SHAPE", 31, "elementwise output must have the input's shape (binary ops: the broadcast of "
                                  "the input shapes, up to 4-D)")
CHK_KEYS = Check("EW_KEYS", 32, "QUANTIZE breakpoints must be 1..512 strictly increasing int32 keys with one more "
                                "value than keys, values of the output's type")
CHK_QUANT = Check("EW_QUANT", 34, "MAXIMUM / MINIMUM need the same zero point on both inputs and the output")
CHK_ACT = Check("EW_ACT", 35, "activation range invalid (-128 <= act_min <= act_max <= 127)")
CHK_DIV = Check("DIV_RECIP", 97, "DIV reciprocal table must be a constant int32 [512] (repack the model with this "
                                 "mpyml version)")



def _ARITH_PARAMS(max_left_shift: int) -> tuple[Param, ...]:  # noqa: N802
    return (Param("input1_offset", -127, 128), Param("input2_offset", -127, 128), Param("output_offset", -128, 127),
            Param("left_shift", 0, max_left_shift),
            Param("input1_mult", 0, U31), Param("input1_shift", -31, 0),
            Param("input2_mult", 0, U31), Param("input2_shift", -31, 0),
            Param("output_mult", 0, U31), Param("output_shift", -31, 0),
            Param("act_min", -128, 127), Param("act_max", -128, 127))


_BIN_IN = (Operand("input1", ("int8",), "any"), Operand("input2", ("int8",), "any"))
_BIN_OUT = (Operand("output", ("int8",), "arena"),)

OPS: list[Op] = [
    Op("LUT", 9,
       (Operand("input", _8, "any"),
        Operand("table", _8, "const", doc="[256]: output of input byte b (int8 input: b = x & 0xFF)")),
       (Operand("output", _8, "arena"),),
       (),
       ("LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU", "ELU", "RELU", "RELU6", "QUANTIZE", "MUL", "SUB",
        "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "ABS", "RSQRT", "NEG", "SQRT", "EXP", "LOG", "GELU",
        "RELU_N1_TO_1", "RELU_0_TO_1"),
       kernel="mpyml_ew_lut", in_place_ok=True, checks=(CHK_TABLE, CHK_SHAPE),
       doc="any function of one 8-bit value: output[i] = table[input[i] as a byte]. The packer computes the "
           "table by running tflite-micro on the op itself for all 256 inputs (unary activations, ABS, RSQRT, "
           "8-bit QUANTIZE/requantize, MUL/ADD/SUB/MAXIMUM/MINIMUM/SQUARED_DIFFERENCE by a constant scalar); "
           "for NEG, SQRT, EXP, LOG, GELU, RELU_N1_TO_1, RELU_0_TO_1, which tflite-micro has no int8 kernel "
           "for, TensorFlow Lite's reference kernels"),
    Op("DEQUANTIZE", 10,
       (Operand("input", _8, "any"),
        Operand("table", ("float32",), "const", doc="[256]: float32 of input byte b (int8: b = x & 0xFF)")),
       (Operand("output", ("float32",), "arena"),),
       (),
       ("DEQUANTIZE",),
       kernel="mpyml_ew_dequantize", checks=(CHK_TABLE, CHK_SHAPE),
       doc="int8/uint8 -> float32 through a 256-entry table computed by tflite-micro (bit-exact, no float "
           "arithmetic in the engine)"),
    Op("QUANTIZE_F32", 11,
       (Operand("input", ("float32",), "any"),
        Operand("keys", ("int32",), "const", doc="[n] strictly increasing breakpoints, float bits mapped to "
                                                 "sortable int32 (k = b >= 0 ? b : b ^ 0x7FFFFFFF)"),
        Operand("values", _8, "const", doc="[n + 1]: output when j keys are <= the input's key")),
       (Operand("output", _8, "arena"),),
       (),
       ("QUANTIZE",),
       kernel="mpyml_ew_quantize", checks=(CHK_KEYS, CHK_SHAPE),
       doc="float32 -> int8, TFLM AffineQuantize clamp(int32(round_half_away(x / scale)) + zp) as x86 "
           "tflite-micro computes it, without float arithmetic: the output is a step function of the "
           "input's bit pattern in float order, found exactly by the packer. As on x86 tflite-micro, NaN, "
           "+-inf and |x / scale| >= 2^31 give int32 INT_MIN + zp (wrapping) clamped: -128 when zp >= 0, "
           "127 when zp < 0"),
    Op("MUL", 12, _BIN_IN, _BIN_OUT,
       (Param("input1_offset", -127, 128, "-input1 zero point"),
        Param("input2_offset", -127, 128, "-input2 zero point"),
        Param("output_offset", -128, 127, "output zero point"),
        Param("output_mult", 0, U31), Param("output_shift", -31, 30, ">0 = left"),
        Param("act_min", -128, 127), Param("act_max", -128, 127)),
       ("MUL",), kernel="mpyml_ew_mul", in_place_ok=True, checks=(CHK_SHAPE, CHK_ACT),
       doc="TFLM reference_integer_ops::Mul with 4-D broadcasting: clamp(MultiplyByQuantizedMultiplier("
           "(x1 + off1) * (x2 + off2), mult, shift) + out_off)"),
    Op("MAXIMUM", 13, _BIN_IN, _BIN_OUT, (), ("MAXIMUM",), kernel="mpyml_ew_maximum", in_place_ok=True,
       checks=(CHK_SHAPE, CHK_QUANT), doc="max(x1, x2) with 4-D broadcasting (same quantization everywhere)"),
    Op("MINIMUM", 14, _BIN_IN, _BIN_OUT, (), ("MINIMUM",), kernel="mpyml_ew_minimum", in_place_ok=True,
       checks=(CHK_SHAPE, CHK_QUANT), doc="min(x1, x2) with 4-D broadcasting (same quantization everywhere)"),
    Op("SUB", 15, _BIN_IN, _BIN_OUT, _ARITH_PARAMS(20), ("SUB",), kernel="mpyml_ew_sub", in_place_ok=True,
       checks=(CHK_SHAPE, CHK_ACT),
       doc="TFLM int8 SUB with 4-D broadcasting: as ADD with the scaled second input subtracted"),
    Op("SQUARED_DIFFERENCE", 16, _BIN_IN, _BIN_OUT, _ARITH_PARAMS(7), ("SQUARED_DIFFERENCE",),
       kernel="mpyml_ew_sqdiff", in_place_ok=True, checks=(CHK_SHAPE, CHK_ACT),
       doc="TFLM int8 SQUARED_DIFFERENCE with 4-D broadcasting: (s1 - s2)^2 (int32, wrapping) rescaled"),
    Op("PRELU", 17,
       (Operand("input", ("int8",), "any"), Operand("alpha", ("int8",), "any")), _BIN_OUT,
       (Param("input_offset", -127, 128, "-input zero point"),
        Param("alpha_offset", -127, 128, "-alpha zero point"),
        Param("output_offset", -128, 127, "output zero point"),
        Param("output_mult_1", 0, U31, "x >= 0: input scale / output scale"), Param("output_shift_1", -31, 30),
        Param("output_mult_2", 0, U31, "x < 0: input scale * alpha scale / output scale"),
        Param("output_shift_2", -31, 30)),
       ("PRELU",), kernel="mpyml_ew_prelu", in_place_ok=True, checks=(CHK_SHAPE,),
       doc="TFLM int8 PRELU, alpha broadcast (4-D) against the input; output clamped to int8"),
    Op("DIV", 18,
       (Operand("input1", ("int8",), "any"), Operand("input2", ("int8",), "any"),
        Operand("recip", ("int32",), "const",
                doc="[512]: for input2 byte b, [b] = GetReciprocal(|x2|) (Q0.31) and [256 + b] = "
                    "2 * (recip_shift + 1) + (x2 < 0), x2 = b + input2_offset")),
       _BIN_OUT,
       (Param("input1_offset", -127, 128, "-input1 zero point"),
        Param("output_offset", -128, 127, "output zero point"),
        Param("output_mult", 0, U31, "input1 scale / (input2 scale * output scale), in double"),
        Param("output_shift", -31, 30, ">0 = left"),
        Param("act_min", -128, 127), Param("act_max", -128, 127)),
       ("DIV",), kernel="mpyml_ew_div", in_place_ok=True, checks=(CHK_SHAPE, CHK_ACT, CHK_DIV),
       doc="TFLM int8 DIV (reference_ops DivElementwise) of two tensors with 4-D broadcasting: x1 (sign-flipped "
           "when x2 < 0) scaled by its headroom times the reciprocal of |x2|, then rescaled by output_mult and the "
           "total shift (past 31 as x86 tflite-micro: (x >> (e - 32)) + (x >= 0)); the packer tabulates "
           "GetReciprocal for the 256 input2 values (no division on the board)"),
]
