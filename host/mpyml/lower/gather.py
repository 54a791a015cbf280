"""Lowering of the gather family (spec: host/mpyml/spec/ops_gather.py).

Owns GATHER (Keras Embedding, tf.gather) -> GATHER: params int8 / uint8 / int16 / int32 / float32 (constant or
activation), indices int16 / int32 (a model input, an activation or a constant), axis and batch_dims made
non-negative as TFLite's gather.cc Prepare does; a GATHER graph.cleanup fused with Keras 3's negative-index wrap
(LESS / ADD / SELECT_V2, option mpymlWrapNegative) sets the op's wrap param. The output must carry the params'
quantization (the op only moves elements). Constant indices are checked here (the packer refuses what TFLite
would refuse at invoke); other indices are checked by the engine at every invoke.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tflite_model import Operator
from . import lowering

WRAP_OPTION = "mpymlWrapNegative"   # set by graph.cleanup on a GATHER it fused with Keras 3's negative-index wrap
_MOVE = ("INT8", "UINT8", "INT16", "INT32", "FLOAT32")
_INDEX = ("INT16", "INT32")


def _err(msg: str) -> Exception:
    from ..packer import PackError
    return PackError(msg)


@lowering("GATHER")
def _gather(b: Any, op: Operator, where: str) -> None:
    if len(op.inputs) < 2 or op.inputs[0] < 0 or op.inputs[1] < 0:
        raise _err(f"{where}: GATHER needs params and indices")
    x, idx, y = (b.m.tensors[t] for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
    if x.dtype != y.dtype:
        raise _err(f"{where}: params are {x.dtype} but the output is {y.dtype}; GATHER only moves elements")
    if x.dtype in ("INT8", "UINT8", "INT16") and (x.zero_point != y.zero_point
                                                  or not np.isclose(x.scale, y.scale, rtol=1e-6, atol=0)):
        raise _err(f"{where}: params and output quantization differ (scale {x.scale:g} / {y.scale:g}, "
                   f"zero point {x.zero_point} / {y.zero_point}); TFLite's GATHER requires them equal")
    if idx.dtype not in _INDEX:
        raise _err(f"{where}: indices are {idx.dtype}; mpyml's GATHER takes int16 or int32 indices "
                   "(cast int64 indices to int32 before the gather)")
    xr = len(x.shape) if x.shape else 1
    ir = len(idx.shape) if idx.shape else 0
    axis = int(op.options.get("axis", 0))
    bd = int(op.options.get("batchDims", 0))
    if axis < 0:
        axis += xr
    if bd < 0:
        bd += ir
    if not 0 <= bd <= axis < xr or bd > max(ir, 0):
        raise _err(f"{where}: axis {axis} / batch_dims {bd} invalid for params of rank {xr} and indices of "
                   f"rank {ir}")
    if idx.data is not None:
        vals = np.asarray(idx.data, dtype=np.int64).reshape(-1)
        n = int(x.shape[axis])
        if op.options.get(WRAP_OPTION):
            vals = np.where(vals < 0, vals + n, vals)
        if vals.size and (vals.min() < 0 or vals.max() >= n):
            raise _err(f"{where}: a constant index is outside 0..{n - 1} (TFLite's GATHER fails at invoke)")
    xi = b.tensor(op.inputs[0], where, _MOVE)
    ii = b.tensor(op.inputs[1], where, _INDEX)
    if ir == 0:
        # a scalar index: the engine's tensors have rank >= 1, the output keeps the rank TFLite gives it
        raise _err(f"{where}: a scalar GATHER index is not supported; use an index of shape [1]")
    yi = b.tensor(op.outputs[0], where, _MOVE)
    wrap = 1 if op.options.get(WRAP_OPTION) else 0
    b.emit("GATHER", [xi, ii], [yi], [axis + 4 - xr, bd + 4 - xr, wrap], op)
