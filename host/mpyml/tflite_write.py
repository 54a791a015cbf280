"""Write a `TFLiteModel` back to a .tflite flatbuffer with the official schema's object API.

Owns: the inverse of `tflite_model.read_tflite` for what that reader keeps (tensors with shape, type,
constant data and quantization; operators with builtin name, version, operands and builtin options;
model inputs / outputs / description). Used to check graph clean-up (`graph.cleanup`) bit for bit under
tflite-micro, and to save a cleaned model. Not kept by the reader, so not written: shape signatures,
custom options of CUSTOM ops, metadata, signature defs, sparsity.
"""

from __future__ import annotations

from typing import Any

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from .tflite_model import TFLiteModel

__all__ = ["options_type", "write_tflite"]

_OPTIONS_BY_KEY = {k.replace("_", "").lower(): (k, v) for k, v in vars(schema.BuiltinOptions).items()
                   if not k.startswith("_") and k != "NONE"}
_IRREGULAR_OPTIONS = {
    "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions", "L2_POOL_2D": "Pool2DOptions",
    "MEAN": "ReducerOptions", "SUM": "ReducerOptions", "REDUCE_MAX": "ReducerOptions",
    "REDUCE_MIN": "ReducerOptions", "REDUCE_PROD": "ReducerOptions", "REDUCE_ANY": "ReducerOptions",
    "REDUCE_ALL": "ReducerOptions", "MAXIMUM": "MaximumMinimumOptions", "MINIMUM": "MaximumMinimumOptions",
    "LSH_PROJECTION": "LSHProjectionOptions", "SVDF": "SVDFOptions", "RNN": "RNNOptions",
    "LSTM": "LSTMOptions", "L2_NORMALIZATION": "L2NormOptions",
    "LOCAL_RESPONSE_NORMALIZATION": "LocalResponseNormalizationOptions",
}
_TYPES = {k: v for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


def options_type(op: str) -> tuple[int, type] | None:
    """(BuiltinOptions union type, options T class) of a builtin op, or None if it has no options table."""
    name = _IRREGULAR_OPTIONS.get(op)
    if name is None:
        hit = _OPTIONS_BY_KEY.get(op.replace("_", "").lower() + "options")
        if hit is None:
            return None
        name = hit[0]
    cls = getattr(schema, name + "T", None)
    if cls is None:
        return None
    return int(getattr(schema.BuiltinOptions, name)), cls


def _options(op: str, opts: dict[str, Any]) -> tuple[int, Any]:
    if not opts:
        return 0, None
    found = options_type(op)
    if found is None:
        raise ValueError(f"{op}: do not know the builtin options table for options {sorted(opts)}")
    code, cls = found
    obj = cls()
    for k, v in opts.items():
        if not hasattr(obj, k):
            raise ValueError(f"{op}: {cls.__name__} has no field {k!r}")
        setattr(obj, k, v)
    return code, obj


def write_tflite(model: TFLiteModel) -> bytes:
    """Serialize `model` (one subgraph) to TFL3 flatbuffer bytes."""
    buffers: list[schema.BufferT] = [schema.BufferT()]     # buffer 0: the empty sentinel
    tensors: list[schema.TensorT] = []
    for t in model.tensors:
        tt = schema.TensorT()
        tt.name = t.name
        tt.shape = [int(d) for d in t.shape]
        if t.dtype not in _TYPES:
            raise ValueError(f"tensor {t.index} '{t.name}': unknown type {t.dtype}")
        tt.type = _TYPES[t.dtype]
        tt.buffer = 0
        if t.data is not None:
            b = schema.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(t.data).tobytes(), dtype=np.uint8)
            buffers.append(b)
            tt.buffer = len(buffers) - 1
        if len(t.scales) or len(t.zero_points):
            q = schema.QuantizationParametersT()
            q.scale = [float(s) for s in np.asarray(t.scales, dtype=np.float32)]
            q.zeroPoint = [int(z) for z in t.zero_points]
            q.quantizedDimension = int(t.quantized_dimension)
            tt.quantization = q
        tensors.append(tt)
    codes: list[schema.OperatorCodeT] = []
    code_index: dict[tuple[str, int], int] = {}
    operators: list[schema.OperatorT] = []
    for op in model.operators:
        key = (op.op, op.version)
        if key not in code_index:
            oc = schema.OperatorCodeT()
            if op.op.startswith("CUSTOM:"):
                code = schema.BuiltinOperator.CUSTOM
                oc.customCode = op.op[len("CUSTOM:"):]
            else:
                code = getattr(schema.BuiltinOperator, op.op, None)
                if code is None:
                    raise ValueError(f"op {op.index}: unknown builtin {op.op}")
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
            oc.version = max(1, int(op.version))
            codes.append(oc)
            code_index[key] = len(codes) - 1
        o = schema.OperatorT()
        o.opcodeIndex = code_index[key]
        o.inputs = [int(i) for i in op.inputs]
        o.outputs = [int(i) for i in op.outputs]
        if not op.op.startswith("CUSTOM:"):
            o.builtinOptionsType, o.builtinOptions = _options(op.op, op.options)
        operators.append(o)
    sg = schema.SubGraphT()
    sg.tensors = tensors
    sg.inputs = [int(i) for i in model.inputs]
    sg.outputs = [int(i) for i in model.outputs]
    sg.operators = operators
    sg.name = "main"
    m = schema.ModelT()
    m.version = 3
    m.operatorCodes = codes
    m.subgraphs = [sg]
    m.description = model.description or "mpyml"
    m.buffers = buffers
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())
