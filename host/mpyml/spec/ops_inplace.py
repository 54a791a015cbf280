"""In-place conv variants: op codes 65-72, check codes 88-93. C kernels in native_modules/engine/ops/
(depthwise_inplace.c, conv2d_inplace.c), viper kernels in device/mpyml/viper_inplace.py; the packer never lowers
a TFLite op to them directly: the planner (host/mpyml/planner.py) rewrites a DEPTHWISE_CONV_2D / CONV_2D into its
variant when writing the output over the input (same offset and byte count, the op record flagged IN_PLACE)
makes the arena strictly smaller, and adds the scratch operand sized here.

Both variants compute exactly what DEPTHWISE_CONV_2D / CONV_2D compute (the same int32 sums, bias, requantization)
and are correct whether or not the output aliases the input; the scratch holds the input bytes the output
overwrites while they are still needed:
- DEPTHWISE_CONV_2D_INPLACE (depth multiplier 1): output channel c reads only input channel c and overwrites only
  input channel c's bytes (flat index = c mod C in both), so each channel plane (IH x IW values) is copied to the
  scratch with the channel's KH x KW filter taps after it, then that channel of the output is written.
  Scratch >= IH * IW + KH * KW bytes.
- CONV_2D_INPLACE: output rows are computed in order, each from a window of input rows kept in the scratch: rows
  [a, b), lo = oy*stride_h - pad_h, a = max(0, lo), b = min(IH, max(lo + (KH-1)*dil_h + 1, sv)), where sv counts
  the input rows whose bytes (RI = IW*C each) start below the end of output row oy (bytes [oy*RO, (oy+1)*RO),
  RO = OW*O): the rows writing it may destroy. Rows shared with the previous window move down, new ones (still
  intact) are copied from the input; the row is computed from the window alone and written in place. The loader
  replays that schedule: b - a <= `rows` everywhere. Scratch >= rows * RI bytes.
"""

from __future__ import annotations

from . import Check, Op, Operand, Param

_I8 = ("int8",)
_I32 = ("int32",)

IP_SCRATCH = Check("IP_SCRATCH", 88, "in-place conv: the scratch must be an int8 arena tensor of at least the bytes "
                   "the variant needs (depthwise IH*IW+KH*KW, conv rows*IW*C) sharing no bytes with the input or "
                   "output")
IP_ROWS = Check("IP_ROWS", 89, "in-place conv: the window of `rows` input rows is too short for the rows an output "
                "row reads or overwrites while a later one still reads them")

_PARAMS = (
    Param("stride_w", 1, 1024), Param("stride_h", 1, 1024),
    Param("dil_w", 1, 1024), Param("dil_h", 1, 1024),
    Param("pad_w", 0, 1024, "left padding"), Param("pad_h", 0, 1024, "top padding"),
    Param("input_offset", -127, 128, "-input zero point"), Param("output_offset", -128, 127, "output zero point"),
    Param("act_min", -128, 127), Param("act_max", -128, 127),
    Param("depth_multiplier", 1, 1, "1: the in-place variants need one output channel per input channel (depthwise)"
          " and conv has none"),
)
_IN = (
    Operand("input", _I8, "arena"), Operand("filter", _I8, "const"), Operand("bias", _I32, "const", optional=True),
    Operand("mult", _I32, "const", doc="per-channel multiplier 0..2^31-1", trusted=True),
    Operand("shift", _I32, "const", doc="per-channel shift -31..30 (>0 = left)", trusted=True),
    Operand("scratch", _I8, "arena", doc="live during this op only"),
)
_OUT = (Operand("output", _I8, "arena"),)

OPS = [
    Op("DEPTHWISE_CONV_2D_INPLACE", 65, _IN, _OUT, _PARAMS, (), kernel="mpyml_depthwise_inplace",
       checks=(IP_SCRATCH,), in_place_ok=True,
       doc="DEPTHWISE_CONV_2D (depth multiplier 1) that may write its output over its input: channel by channel "
           "through a scratch of IH*IW + KH*KW bytes"),
    Op("CONV_2D_INPLACE", 66, _IN, _OUT, _PARAMS + (Param("rows", 1, 65535, "input rows the scratch window holds"),),
       (), kernel="mpyml_conv2d_inplace", checks=(IP_SCRATCH, IP_ROWS), in_place_ok=True,
       doc="CONV_2D that may write its output over its input: output rows in order, each computed from its input rows "
           "in a scratch window of `rows` input rows"),
]
