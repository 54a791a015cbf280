"""Gather ops: op code 31 (GATHER), check codes 90-91. The C kernel and its _check live in
native_modules/engine/ops/gather.c, the viper kernel in device/mpyml/viper_gather.py, the lowering in
host/mpyml/lower/gather.py.

GATHER (Keras Embedding, tf.gather) moves whole slices, TFLite's reference_ops::Gather: with the input's
dims split at `axis` and the first `batch_dims` dims shared with the indices,
  output[b, o, i, n] = input[b, o, indices[b, i], n]
(b over the batch dims, o over input dims batch_dims..axis-1, i over the indices' dims after the batch dims,
n over input dims after axis). With wrap = 1 a negative index first gets input.dims[axis] added. An index
(after that) outside 0..input.dims[axis]-1 is not read: invoke stops and returns
MPYML_E_INDEX (TFLite's Eval returns kTfLiteError), the output is left unwritten.
"""

from __future__ import annotations

from . import Check, Op, Operand, Param

_MOVE = ("int8", "uint8", "int16", "int32", "float32")   # element types a copy handles

CHK_SHAPE = Check("GATHER_SHAPE", 90, "GATHER: need batch_dims <= axis < input rank, batch_dims <= indices rank, "
                                      "equal batch dims, output dims = input[:axis] + indices[batch_dims:] + "
                                      "input[axis+1:]")
CHK_TYPES = Check("GATHER_TYPES", 91, "GATHER: output element type (and quantization) must be the input's")

OPS = [
    Op("GATHER", 31,
       (Operand("input", _MOVE, "any", doc="params / embedding table"),
        Operand("indices", ("int16", "int32"), "any", doc="positions along axis; checked at invoke")),
       (Operand("output", _MOVE, "arena"),),
       (Param("axis", 0, 3, "the gathered dim in the input's 4-D right-aligned view (TFLite axis + 4 - rank)"),
        Param("batch_end", 0, 3, "the input's 4-D view dims before it are batch dims shared with the indices "
                                 "(TFLite batch_dims + 4 - input rank), <= axis"),
        Param("wrap", 0, 1, "1: a negative index i reads i + dims[axis] (Keras 3 Embedding / ops.take: the "
                            "LESS / ADD / SELECT_V2 it emits before GATHER, fused by graph.cleanup)")),
       ("GATHER",), kernel="mpyml_gather", checks=(CHK_SHAPE, CHK_TYPES), fails=True,
       doc="copies the input's slices named by indices along axis (TFLite reference_ops::Gather); an index "
           "out of range stops invoke with MPYML_E_INDEX"),
]
