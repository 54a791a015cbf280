"""Shape ops: op codes 25-40, check codes 40-49 (and 94-99: WRITE_BOX, the patch-plan op). Each op's C kernel
and its *_check live in native_modules/engine/ops/ (one file per op family), its viper kernel in
device/mpyml/viper_shape.py, its lowering in host/mpyml/lower/ (WRITE_BOX: host/mpyml/patch.py).

Data movement only: every kernel copies elements (of the element size of its type), except RESIZE_BILINEAR
(int8 fixed-point interpolation, TFLM's ResizeBilinearInteger). Shapes are taken right-aligned into 4 dims
(leading 1s) as n, h, w, c.
"""

from __future__ import annotations

from . import Check, Op, Operand, Param

_MOVE = ("int8", "uint8", "int16", "int32", "float32")   # types a pure copy handles
_MOVE64 = (*_MOVE, "int64")
_I32 = ("int32",)
U31 = 2**31 - 1

CHK_SHAPE = Check("SHAPE_OUT", 40, "shape op: the output shape does not follow from the input shape and the params")
CHK_TYPE = Check("SHAPE_TYPES", 41, "shape op: input and output element types (or quantization) differ")
CHK_PADV = Check("PAD_VALUE", 42, "PAD: the pad value is outside the range of the tensor's element type")
CHK_CONCAT = Check("CONCAT_SHAPE", 43, "CONCATENATION: axis outside the output rank, or an input's dims differ "
                                       "from the output's off the axis, or the axis sizes do not add up")
CHK_BOUNDS = Check("COPY_BOUNDS", 44, "STRIDED_COPY: the start offset and strides address elements outside the "
                                      "input")
CHK_TABLE = Check("RESIZE_TABLE", 45, "RESIZE: an index table has the wrong length or names a row/column "
                                      "outside the input")
CHK_RANK = Check("RESIZE_RANK", 46, "RESIZE: input and output must be 4-D NHWC with the same batch and channels")
CHK_WEIGHT = Check("RESIZE_WEIGHT", 47, "RESIZE_BILINEAR: an interpolation weight is outside -1024..1024")
CHK_BOX = Check("BOX_BOUNDS", 94, "WRITE_BOX: the input placed at the offsets does not fit inside the output "
                                  "(4-D views: offset_i + input dim i <= output dim i)")

_PAD_PARAMS = (
    Param("value", -(2**31), U31, "pad element: int8/uint8/int16 value in the type's range, int32 value or "
                                  "float32 bits"),
    *(Param(f"before{i}", 0, 65535, f"elements added before dim {i} of the 4-D view") for i in range(4)),
    *(Param(f"after{i}", 0, 65535, f"elements added after dim {i} of the 4-D view") for i in range(4)),
)

OPS = [
    Op("PAD", 25, (Operand("input", _MOVE, "any"),), (Operand("output", _MOVE, "arena"),), _PAD_PARAMS,
       ("PAD", "PADV2"), kernel="mpyml_pad", checks=(CHK_SHAPE, CHK_TYPE, CHK_PADV),
       doc="output dim i = before_i + input dim i + after_i (4-D views); new elements = value"),
    Op("CONCATENATION", 26, (Operand("input", _MOVE64, "any"),), (Operand("output", _MOVE64, "arena"),),
       (Param("axis4", 0, 3, "axis in the 4-D right-aligned view of the output (4 - rank + axis)"),),
       ("CONCATENATION", "PACK", "TILE"), kernel="mpyml_concat", variadic_in=True, checks=(CHK_TYPE, CHK_CONCAT),
       doc="inputs of the output's rank, or of one less (PACK: the axis inserted with size 1), copied in order "
           "(TILE along one axis: the input repeated)"),
    Op("STRIDED_COPY", 27, (Operand("input", _MOVE64, "any"),), (Operand("output", _MOVE64, "arena"),),
       (Param("start", 0, U31, "element offset of output element 0 in the input"),
        *(Param(f"stride{i}", -U31, U31, f"input element step per step of output dim {i} (4-D view)")
          for i in range(4))),
       ("STRIDED_SLICE", "SLICE", "SPLIT", "SPLIT_V", "UNPACK", "TRANSPOSE"), kernel="mpyml_strided_copy",
       checks=(CHK_TYPE, CHK_BOUNDS),
       doc="out[n,h,w,c] = in[start + n*stride0 + h*stride1 + w*stride2 + c*stride3] (flat element index)"),
    Op("RESIZE_NEAREST", 28,
       (Operand("input", _MOVE, "any"),
        Operand("rows", _I32, "const", trusted=True, doc="[OH] source row per output row"),
        Operand("cols", _I32, "const", trusted=True, doc="[OW] source column per output column")),
       (Operand("output", _MOVE, "arena"),), (), ("RESIZE_NEAREST_NEIGHBOR",), kernel="mpyml_resize_nearest",
       checks=(CHK_TYPE, CHK_TABLE, CHK_RANK),
       doc="out[n,y,x,c] = in[n,rows[y],cols[x],c]; the packer computes TFLM's GetNearestNeighbor"),
    Op("RESIZE_BILINEAR", 29,
       (Operand("input", ("int8",), "any"),
        Operand("rows", _I32, "const", trusted=True, doc="[OH*3] y0, y1, wy (10-bit fraction, TFLM input_y - 1024*y0)"),
        Operand("cols", _I32, "const", trusted=True, doc="[OW*3] x0, x1, wx")),
       (Operand("output", ("int8",), "arena"),), (), ("RESIZE_BILINEAR",), kernel="mpyml_resize_bilinear",
       checks=(CHK_TABLE, CHK_RANK, CHK_WEIGHT),
       doc="TFLM ResizeBilinearInteger: 4 taps weighted (1024-wy|wy)*(1024-wx|wx), rounded / 2^20"),
    Op("WRITE_BOX", 30, (Operand("input", _MOVE64, "arena"),), (Operand("output", _MOVE64, "arena"),),
       tuple(Param(f"offset{i}", 0, 65535, f"position of input element 0 along dim {i} of the output (4-D view)")
             for i in range(4)),
       (), kernel="mpyml_write_box", checks=(CHK_TYPE, CHK_BOX),
       doc="out[n+offset0, h+offset1, w+offset2, c+offset3] = in[n,h,w,c] (4-D views); the other output "
           "elements are left as they are. Written by the packer's patch plans (`pack --max-ram`): each "
           "spatial tile of a stage writes its part of the stage output"),
]
