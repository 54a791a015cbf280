"""Read a TFLite flatbuffer through the official TFLite schema bindings (shipped by tflite-micro).

Owns: turning a .tflite into plain Python views (tensors with quantization, operators with their
builtin code name and options) that the packer and `inspect` use. No hand-written flatbuffer parsing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_NP_TYPES = {
    schema.TensorType.INT8: np.int8,
    schema.TensorType.UINT8: np.uint8,
    schema.TensorType.INT16: np.int16,
    schema.TensorType.INT32: np.int32,
    schema.TensorType.INT64: np.int64,
    schema.TensorType.FLOAT32: np.float32,
}
PADDING = {schema.Padding.SAME: "SAME", schema.Padding.VALID: "VALID"}
ACTIVATION = {v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")}


class TFLiteError(ValueError):
    """The .tflite cannot be read or uses something mpyml does not support."""


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str                       # "INT8", "INT32", "FLOAT32"...
    data: np.ndarray | None          # constant contents (from the model's buffer), else None
    scales: np.ndarray               # float32, per-tensor (len 1) or per-channel
    zero_points: np.ndarray          # int64
    quantized_dimension: int

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def scale(self) -> float:
        return float(self.scales[0]) if len(self.scales) else 0.0

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0]) if len(self.zero_points) else 0


@dataclass
class Operator:
    index: int
    op: str                          # builtin name, e.g. "CONV_2D", or "CUSTOM:<name>"
    version: int
    inputs: list[int]                # -1 for an absent optional input
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class TFLiteModel:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]
    description: str


def _decode(s: bytes | str | None) -> str:
    if s is None:
        return ""
    return s.decode("utf-8", "replace") if isinstance(s, bytes) else str(s)


def read_tflite(data: bytes) -> TFLiteModel:
    """Parse a .tflite model (one subgraph) into `TFLiteModel`. Any inconsistency of a corrupted file
    (bad indices, truncated buffers, shapes that do not match the data) is a TFLiteError."""
    try:
        return _read_tflite(data)
    except TFLiteError:
        raise
    except (IndexError, ValueError, TypeError, AttributeError, KeyError, OverflowError) as e:
        raise TFLiteError(f"corrupted or unsupported .tflite file ({type(e).__name__}: {e}); "
                          "re-export it with tf.lite.TFLiteConverter") from None
    except Exception as e:  # struct.error and flatbuffers' own errors on garbage
        raise TFLiteError(f"corrupted .tflite file ({type(e).__name__}: {e}); "
                          "re-export it with tf.lite.TFLiteConverter") from None


def _read_tflite(data: bytes) -> TFLiteModel:
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise TFLiteError("not a TFLite flatbuffer (missing 'TFL3' identifier)")
    try:
        m = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as e:  # flatbuffers raises assorted errors on garbage
        raise TFLiteError(f"cannot parse TFLite flatbuffer: {e}") from e
    if not m.subgraphs:
        raise TFLiteError("model has no subgraph")
    if len(m.subgraphs) > 1:
        raise TFLiteError(f"model has {len(m.subgraphs)} subgraphs; mpyml supports single-subgraph models")
    sg = m.subgraphs[0]
    buffers = m.buffers or []
    tensors: list[Tensor] = []
    for i, t in enumerate(sg.tensors or []):
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        dtype = _TYPE_NAMES.get(t.type, f"TYPE{t.type}")
        content = None
        buf = buffers[t.buffer] if 0 <= t.buffer < len(buffers) else None
        raw = None
        if buf is not None and buf.data is not None and len(buf.data):
            raw = bytes(np.asarray(buf.data, dtype=np.uint8))
        elif buf is not None and getattr(buf, "size", 0) and buf.offset > 1:
            raw = bytes(data[buf.offset: buf.offset + buf.size])   # large models: data outside the flatbuffer
        if raw is not None:
            npt = _NP_TYPES.get(t.type)
            if npt is None:
                raise TFLiteError(f"tensor {i} ({_decode(t.name)}): constant of unsupported type {dtype}")
            content = np.frombuffer(raw, dtype=npt).reshape(shape if shape else ())
        q = t.quantization
        scales = np.asarray(q.scale if q is not None and q.scale is not None else [], dtype=np.float32)
        zps = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [], dtype=np.int64)
        qdim = int(q.quantizedDimension) if q is not None else 0
        tensors.append(Tensor(i, _decode(t.name), shape, dtype, content, scales, zps, qdim))
    ops: list[Operator] = []
    for i, o in enumerate(sg.operators or []):
        oc = m.operatorCodes[o.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        name = _OP_NAMES.get(code, f"BUILTIN_{code}")
        if name == "CUSTOM":
            name = "CUSTOM:" + _decode(oc.customCode)
        opts = {}
        if o.builtinOptions is not None:
            opts = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(o.builtinOptions).items()}
        ins = [int(x) for x in (o.inputs if o.inputs is not None else [])]
        outs = [int(x) for x in (o.outputs if o.outputs is not None else [])]
        ops.append(Operator(i, name, int(oc.version), ins, outs, opts))
    return TFLiteModel(
        tensors=tensors,
        operators=ops,
        inputs=[int(x) for x in sg.inputs],
        outputs=[int(x) for x in sg.outputs],
        description=_decode(m.description),
    )
