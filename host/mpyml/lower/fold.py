"""Lowerings of the pseudo-ops graph.cleanup() folds a sub-graph into (spec: host/mpyml/spec/ops_elementwise.py).

Owns:
  * MPYML_LUT8 (a DEQUANTIZE -> float32 elementwise ops -> QUANTIZE island; inputs: the 8-bit input and the
    256-entry table tflite-micro computed for it, entry b the output for input byte b) -> LUT.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tflite_model import Operator
from . import lowering

_BYTES = ("INT8", "UINT8")


def _err(msg: str) -> Exception:
    from ..packer import PackError
    return PackError(msg)


@lowering("MPYML_LUT8")
def _lut8(b: Any, op: Operator, where: str) -> None:
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        raise _err(f"{where}: expects (input, table) -> output")
    x, t, y = (b.m.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    if x.dtype not in _BYTES or y.dtype not in _BYTES:
        raise _err(f"{where}: runs on int8/uint8 tensors (has {x.dtype} -> {y.dtype})")
    if t.data is None or t.dtype != y.dtype or t.data.size != 256:
        raise _err(f"{where}: table (tensor {t.index}) must be a constant {y.dtype} [256]")
    i_x = b.tensor(op.inputs[0], where, types=_BYTES)
    i_t = b.const(f"{y.name}/table", np.asarray(t.data).reshape(256), y.dtype.lower())
    i_y = b.tensor(op.outputs[0], where, types=(y.dtype,))
    if b.tensors[i_x].shape != b.tensors[i_y].shape:
        raise _err(f"{where}: input shape {x.shape} and output shape {y.shape} differ")
    b.emit("LUT", [i_x, i_t], [i_y], [], op, info={"table": f"{x.dtype.lower()}->{y.dtype.lower()}", "folded": True})
