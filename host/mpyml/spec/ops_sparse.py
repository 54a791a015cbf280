"""Sparse-weight ops: op codes 57-64, check codes 80-87. C kernels and their *_check in
native_modules/engine/ops/sparse_fc.c and sparse_conv.c (shared helpers: sparse_common.h), viper kernels in
device/mpyml/viper_sparse.py, the packer pass in host/mpyml/lower/sparse.py (FULLY_CONNECTED / CONV_2D whose
weights are mostly zero, only where that is smaller and not slower).

Storage (format version 3, docs/FORMAT.md "Sparse weights"): the nonzero weights column by column (CSC; a column
is one input element of FC, one (ky, kx, c) tap of conv), with
  values  int8 [nnz]        the nonzero weights, column after column (any bytes are safe: model data)
  rows    uint8 / int16 [nnz] the output channel of each value (int16 read as uint16; uint8 when O <= 256),
                            strictly increasing inside a column
          or int8 [nnz / 2]  4-bit row gaps, two a byte, low nibble first: inside a column the row starts
                            at 0 and each entry's row = the previous + gap; a gap over 15 is bridged by
                            zero-valued filler entries (counted in nnz), every column holds an even count
          or uint8 / int16 [n] block indices when values holds B x n (B = 4, 8, 16): entry j is output channels
                            rows[j] * B .. + B - 1 (block pruning); O a multiple of B
                            The packer picks the encoding per layer.
  colptr  int32 [cols + 1]  column j's values are values[colptr[j] .. colptr[j+1]); 0 first, nnz last
rows and colptr are what the kernels compute addresses from: they are trusted operands and must lie in the
header's sparse section (the end of the trusted region, which the engine copies at load). The kernels scatter
into an int32 accumulator scratch of O entries, skipping every column whose input is at the zero point
(x + input_offset == 0: ReLU outputs, blank pixels), so they skip both zero weights and zero activations; the
int32 sums are exact (at most 65536 terms), wrapping added to the bias as TFLite does.
"""

from __future__ import annotations

from . import Check, Op, Operand, Param

_I8 = ("int8",)
_I32 = ("int32",)
_ROWS = ("uint8", "int16", "int8")
U31 = 2**31 - 1

C_SHAPE = Check("SP_SHAPE", 80, "sparse op: input, output, column pointers (K + 1, conv KH*KW*C + 1 <= 65537), "
                "4-bit row gaps (ceil(nnz / 2) bytes), block indices (output channels a multiple of the block), "
                "bias / mult / shift (one per output channel, mult / shift 1 for FC per-tensor) and the "
                "accumulator scratch (int32, one per output channel) must agree")
C_INDEX = Check("SP_INDEX", 81, "sparse weights: column pointers must start at 0, never decrease and end at the "
                "value count; row indices (or the rows 4-bit gaps reach, or the blocks) must name an output "
                "channel and increase strictly inside a column")
C_SECTION = Check("SP_SECTION", 82, "sparse weights: the row indices and column pointers must lie in the header's "
                  "sparse section (format version 3)")
C_VALUES = Check("SP_VALUES", 83, "sparse weights: values must be a constant int8 tensor with zero point 0, one "
                 "per row index (or 4, 8 or 16 per block index)")
C_REQUANT = Check("SP_REQUANT", 84, "sparse op: multipliers must be 0..2^31-1 and shifts -31..30")
C_ACT = Check("SP_ACT", 85, "sparse op: activation range needs act_min <= act_max")
_CHECKS = (C_SHAPE, C_INDEX, C_SECTION, C_VALUES, C_REQUANT, C_ACT)

_W = (
    Operand("values", _I8, "const", doc="[nnz] nonzero weights, column-major"),
    Operand("rows", _ROWS, "const", trusted=True,
            doc="[nnz] output channel of each value, int8 [nnz/2] 4-bit row gaps, or [nnz/B] block indices"),
    Operand("colptr", _I32, "const", trusted=True, doc="[cols + 1] start of each column in values / rows"),
    Operand("bias", _I32, "const", optional=True, doc="[O]"),
    Operand("mult", _I32, "const", trusted=True, doc="[O] (FC: or [1])"),
    Operand("shift", _I32, "const", trusted=True, doc="[O] (FC: or [1])"),
)
_OUT = (
    Operand("output", _I8, "arena"),
    Operand("acc", _I32, "arena", doc="[O] int32 accumulator scratch"),
)
_Q = (Param("input_offset", -127, 128, "-input zero point"), Param("output_offset", -128, 127, "output zero point"),
      Param("act_min", -128, 127), Param("act_max", -128, 127))

OPS = [
    Op("SPARSE_FULLY_CONNECTED", 57, (Operand("input", _I8, "any", doc="[batches, K]"), *_W), _OUT, _Q,
       ("FULLY_CONNECTED",), kernel="mpyml_sparse_fc", checks=_CHECKS, min_in=7,
       doc="FULLY_CONNECTED with CSC sparse weights [O,K] (TFLM FullyConnected / PerChannel, bit-exact): "
           "acc[o] = bias[o] + sum over columns k with x[k] + input_offset != 0 of values * (x[k] + "
           "input_offset), requantized per tensor or per channel; K <= 65536"),
    Op("SPARSE_CONV_2D", 58, (Operand("input", _I8, "any", doc="[N, H, W, C]"), *_W), _OUT,
       (Param("stride_w", 1, 1024), Param("stride_h", 1, 1024), Param("dil_w", 1, 1024), Param("dil_h", 1, 1024),
        Param("pad_w", 0, 1024, "left padding"), Param("pad_h", 0, 1024, "top padding"),
        Param("kernel_w", 1, 1024), Param("kernel_h", 1, 1024), *_Q),
       ("CONV_2D",), kernel="mpyml_sparse_conv", checks=_CHECKS, min_in=7,
       doc="CONV_2D (TFLM ConvPerChannel, bit-exact) with CSC sparse filter [O, KH*KW*C] (columns in (ky, kx, c) "
           "order); per output pixel, taps inside the input with x + input_offset != 0 scatter into acc"),
]
