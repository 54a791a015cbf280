"""Core ops (codes 1..8): the first engine's eight, validated in native_modules/engine/mpyml_engine.c."""

from __future__ import annotations

from . import Op, Operand, Param

_I8 = ("int8",)
_I32 = ("int32",)
U31 = 2**31 - 1

_CONV_PARAMS = (
    Param("stride_w", 1, 1024), Param("stride_h", 1, 1024),
    Param("dil_w", 1, 1024), Param("dil_h", 1, 1024),
    Param("pad_w", 0, 1024, "left padding"), Param("pad_h", 0, 1024, "top padding"),
    Param("input_offset", -127, 128, "-input zero point"), Param("output_offset", -128, 127, "output zero point"),
    Param("act_min", -128, 127), Param("act_max", -128, 127),
    Param("depth_multiplier", 1, 1024, "depthwise: O / C; conv: 1"),
)
_CONV_IN = (
    Operand("input", _I8, "any"), Operand("filter", _I8, "const"), Operand("bias", _I32, "const", optional=True),
    Operand("mult", _I32, "const", doc="per-channel multiplier 0..2^31-1", trusted=True),
    Operand("shift", _I32, "const", doc="per-channel shift -31..30 (>0 = left)", trusted=True),
)
_OUT = (Operand("output", _I8, "arena"),)
_POOL_PARAMS = (
    Param("stride_w", 1, 1024), Param("stride_h", 1, 1024),
    Param("filter_w", 1, 1024), Param("filter_h", 1, 1024),
    Param("pad_w", 0, 1024), Param("pad_h", 0, 1024),
    Param("act_min", -128, 127), Param("act_max", -128, 127),
)

OPS = [
    Op("CONV_2D", 1, _CONV_IN, _OUT, _CONV_PARAMS, ("CONV_2D",), core=True, params_struct="mpyml_conv_params_t",
       doc="filter [O,KH,KW,C]; KH*KW*C <= 65536"),
    Op("DEPTHWISE_CONV_2D", 2, _CONV_IN, _OUT, _CONV_PARAMS, ("DEPTHWISE_CONV_2D",), core=True,
       params_struct="mpyml_conv_params_t", doc="filter [1,KH,KW,O], O = C * depth_multiplier; KH*KW <= 65536"),
    Op("FULLY_CONNECTED", 3,
       (Operand("input", _I8, "any"), Operand("filter", _I8, "const"), Operand("bias", _I32, "const", optional=True),
        Operand("mult", _I32, "const", doc="[1] or [O]", trusted=True), Operand("shift", _I32, "const", trusted=True)),
       _OUT,
       (Param("input_offset", -127, 128), Param("output_offset", -128, 127),
        Param("act_min", -128, 127), Param("act_max", -128, 127)),
       ("FULLY_CONNECTED",), core=True, params_struct="mpyml_fc_params_t", doc="weights [O,K], K <= 65536"),
    Op("AVERAGE_POOL_2D", 4, (Operand("input", _I8, "any"),), _OUT, _POOL_PARAMS, ("AVERAGE_POOL_2D",), core=True,
       params_struct="mpyml_pool_params_t"),
    Op("MAX_POOL_2D", 5, (Operand("input", _I8, "any"),), _OUT, _POOL_PARAMS, ("MAX_POOL_2D",), core=True,
       params_struct="mpyml_pool_params_t"),
    Op("ADD", 6, (Operand("input1", _I8, "any"), Operand("input2", _I8, "any")), _OUT,
       (Param("input1_offset", -127, 128), Param("input2_offset", -127, 128), Param("output_offset", -128, 127),
        Param("left_shift", 0, 20),
        Param("input1_mult", 0, U31), Param("input1_shift", -31, 0),
        Param("input2_mult", 0, U31), Param("input2_shift", -31, 0),
        Param("output_mult", 0, U31), Param("output_shift", -31, 0),
        Param("act_min", -128, 127), Param("act_max", -128, 127)),
       ("ADD",), core=True, params_struct="mpyml_add_params_t", doc="4-D broadcasting; output = broadcast shape",
       in_place_ok=True),
    Op("RESHAPE", 7, (Operand("input", _I8, "any"),), _OUT, (), ("RESHAPE", "EXPAND_DIMS", "SQUEEZE"), core=True,
       doc="same byte count; free when the planner aliases output onto input"),
    Op("SOFTMAX", 8, (Operand("input", _I8, "any"),), _OUT,
       (Param("input_multiplier", 0, U31), Param("input_left_shift", 0, 31), Param("diff_min", -(2**31) + 1, 0)),
       ("SOFTMAX",), core=True, params_struct="mpyml_softmax_params_t",
       doc="output scale 1/256, zero point -128; rows along the last dim"),
]
