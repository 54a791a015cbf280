"""Build tiny single-op int8 .tflite models for tests, with the official schema's object API.

Every builder takes a numpy Generator and returns the flatbuffer bytes of a one-op model whose
weights, biases, scales and zero points are random (weights symmetric int8 in [-127, 127] with zero
point 0, per-channel on dim 0 for conv / FC and dim 3 for depthwise, biases int32 with scale
input_scale * filter_scale as the converter writes them). Output shapes follow TFLite (SAME / VALID).

    conv2d_model, depthwise_model, fully_connected_model, pool_model, add_model, softmax_model,
    reshape_model          one op with the given configuration
    random_case(op, rng)   one op with randomized configuration (odd channel counts, strides 1/2,
                           SAME/VALID, dilation, every fused activation, per-tensor and per-channel,
                           occasional multipliers > 1 and < 2^-31, broadcast shapes...)
    extract_op_model       a one-op model cut out of a real model (same tensors, weights, options)
    read_op, op_names      an op of a model as plain Python data (what kernels need); the op names
    conv_output_size, conv_padding   TFLite's SAME / VALID output size and leading padding
    run_tflm               run a model in the tflite-micro interpreter (reference kernels)

Only tflite_micro, flatbuffers and numpy are imported (no TensorFlow: it is slow to import).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

__all__ = [
    "ACTIVATIONS",
    "OPS",
    "OpInfo",
    "TensorInfo",
    "add_model",
    "conv2d_model",
    "conv_output_size",
    "conv_padding",
    "depthwise_model",
    "extract_op_model",
    "fully_connected_model",
    "op_names",
    "pool_model",
    "random_case",
    "read_op",
    "reshape_model",
    "run_tflm",
    "softmax_model",
]

ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "ADD",
       "SOFTMAX", "RESHAPE")

_ACT_CODE = {
    "NONE": schema.ActivationFunctionType.NONE,
    "RELU": schema.ActivationFunctionType.RELU,
    "RELU6": schema.ActivationFunctionType.RELU6,
    "RELU_N1_TO_1": schema.ActivationFunctionType.RELU_N1_TO_1,
}
_ACT_NAME = {v: k for k, v in _ACT_CODE.items()}
_PAD_CODE = {"SAME": schema.Padding.SAME, "VALID": schema.Padding.VALID}
_PAD_NAME = {v: k for k, v in _PAD_CODE.items()}
_OP_NAME = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAME = {schema.TensorType.INT8: "INT8", schema.TensorType.INT32: "INT32",
              schema.TensorType.FLOAT32: "FLOAT32", schema.TensorType.UINT8: "UINT8",
              schema.TensorType.INT16: "INT16", schema.TensorType.INT64: "INT64"}
_NP_TYPE = {"INT8": np.int8, "INT32": np.int32, "FLOAT32": np.float32, "UINT8": np.uint8,
            "INT16": np.int16, "INT64": np.int64}
SOFTMAX_OUT_SCALE = 1.0 / 256


# ------------------------------------------------------------------ shape arithmetic (TFLite's)

def conv_output_size(padding: str, size: int, k: int, stride: int, dilation: int = 1) -> int:
    """ComputeOutSize: SAME -> ceil(size / stride); VALID -> (size - effective_k) / stride + 1."""
    eff = (k - 1) * dilation + 1
    if padding == "SAME":
        return (size + stride - 1) // stride
    if padding == "VALID":
        return (size + stride - eff) // stride
    raise ValueError(f"padding {padding!r}")


def conv_padding(padding: str, size: int, k: int, stride: int, dilation: int = 1) -> int:
    """ComputePaddingWithOffset: the leading (top / left) padding the kernels use."""
    out = conv_output_size(padding, size, k, stride, dilation)
    eff = (k - 1) * dilation + 1
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2


# ------------------------------------------------------------------ flatbuffer assembly

class _Model:
    """Accumulates tensors / buffers / one or more operators, then packs a TFL3 flatbuffer."""

    def __init__(self) -> None:
        self.tensors: list[schema.TensorT] = []
        self.buffers: list[schema.BufferT] = [schema.BufferT()]     # buffer 0: the empty sentinel
        self.opcodes: list[schema.OperatorCodeT] = []
        self.operators: list[schema.OperatorT] = []

    def tensor(self, name: str, shape: tuple[int, ...] | list[int], ttype: str,
               scale: float | list[float] | None = None, zero_point: int | list[int] | None = None,
               qdim: int = 0, data: np.ndarray | None = None) -> int:
        t = schema.TensorT()
        t.name = name
        t.shape = [int(d) for d in shape]
        t.type = getattr(schema.TensorType, ttype)
        if data is not None:
            arr = np.ascontiguousarray(np.asarray(data, dtype=_NP_TYPE[ttype]).reshape(t.shape))
            b = schema.BufferT()
            b.data = np.frombuffer(arr.tobytes(), dtype=np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        else:
            t.buffer = 0
        if scale is not None:
            q = schema.QuantizationParametersT()
            scales = [float(s) for s in np.atleast_1d(np.asarray(scale, dtype=np.float32))]
            zps = np.atleast_1d(np.asarray(0 if zero_point is None else zero_point, dtype=np.int64))
            if zps.size == 1 and len(scales) > 1:
                zps = np.repeat(zps, len(scales))
            q.scale = scales
            q.zeroPoint = [int(z) for z in zps]
            q.quantizedDimension = int(qdim)
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, name: str, inputs: list[int], outputs: list[int], options: Any = None,
           options_type: int = 0) -> None:
        code = getattr(schema.BuiltinOperator, name)
        idx = next((i for i, c in enumerate(self.opcodes) if c.builtinCode == code), None)
        if idx is None:
            oc = schema.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
            oc.version = 1
            self.opcodes.append(oc)
            idx = len(self.opcodes) - 1
        o = schema.OperatorT()
        o.opcodeIndex = idx
        o.inputs = list(inputs)
        o.outputs = list(outputs)
        if options is not None:
            o.builtinOptionsType = options_type
            o.builtinOptions = options
        self.operators.append(o)

    def finish(self, inputs: list[int], outputs: list[int]) -> bytes:
        sg = schema.SubGraphT()
        sg.tensors = self.tensors
        sg.inputs = list(inputs)
        sg.outputs = list(outputs)
        sg.operators = self.operators
        sg.name = "main"
        m = schema.ModelT()
        m.version = 3
        m.operatorCodes = self.opcodes
        m.subgraphs = [sg]
        m.description = "mpyml test model"
        m.buffers = self.buffers
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


# ------------------------------------------------------------------ random quantization helpers

def _act_scale(rng: np.random.Generator) -> float:
    return float(10.0 ** rng.uniform(-2.5, -0.5))


def _zp(rng: np.random.Generator) -> int:
    return int(rng.integers(-128, 128))


def _weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(-127, 128, size=shape).astype(np.int8)


def _conv_quant(rng: np.random.Generator, n_out: int, taps: int, per_channel: bool,
                scale_mode: str) -> tuple[float, np.ndarray, float, np.ndarray]:
    """(input_scale, filter_scales, output_scale, bias) for an op accumulating `taps` products.

    scale_mode: "normal" (outputs spread over int8), "large" (effective multipliers > 1, so positive
    shifts, saturation and int32 wraparound in the left shift), "tiny" (multipliers < 2^-31, which
    TFLite flushes to zero), "mixed" (per-channel scales spanning six decades).
    """
    in_scale = _act_scale(rng)
    n_scales = n_out if per_channel else 1
    if scale_mode == "mixed":
        f_scales = 10.0 ** rng.uniform(-6.0, 0.0, size=n_scales)
    else:
        f_scales = 10.0 ** rng.uniform(-3.0, -1.0, size=n_scales)
    f_scales = f_scales.astype(np.float32)
    acc_std = np.sqrt(max(taps, 1)) * 74.0 * 73.0
    typical = in_scale * float(np.median(f_scales))
    if scale_mode == "large":
        out_scale = typical * 2.0 ** rng.uniform(-10.0, 0.0)
    elif scale_mode == "tiny":
        out_scale = typical * 2.0 ** rng.uniform(33.0, 40.0)
    else:
        out_scale = typical * acc_std / 40.0 * 2.0 ** rng.uniform(-2.0, 2.0)
    bias = np.round(rng.normal(0.0, acc_std, size=n_out)).astype(np.int64)
    bias = np.clip(bias, -(2**24), 2**24).astype(np.int32)
    return in_scale, f_scales, float(out_scale), bias


def _bias_scales(in_scale: float, f_scales: np.ndarray, n_out: int) -> np.ndarray:
    s = (np.float32(in_scale) * f_scales.astype(np.float32)).astype(np.float32)
    return np.repeat(s, n_out) if s.size == 1 and n_out > 1 else s


# ------------------------------------------------------------------ single-op builders

def conv2d_model(rng: np.random.Generator, in_shape: tuple[int, int, int, int] = (1, 8, 8, 3),
                 out_ch: int = 4, kernel: tuple[int, int] = (3, 3), stride: tuple[int, int] = (1, 1),
                 dilation: tuple[int, int] = (1, 1), padding: str = "SAME", fused: str = "NONE",
                 per_channel: bool = True, bias: bool = True, scale_mode: str = "normal") -> bytes:
    """CONV_2D. kernel / stride / dilation are (h, w); filter [out_ch, kh, kw, C]."""
    n, h, w, c = in_shape
    kh, kw = kernel
    oh = conv_output_size(padding, h, kh, stride[0], dilation[0])
    ow = conv_output_size(padding, w, kw, stride[1], dilation[1])
    if oh < 1 or ow < 1:
        raise ValueError("VALID padding with a filter larger than the input")
    in_scale, f_scales, out_scale, b = _conv_quant(rng, out_ch, kh * kw * c, per_channel, scale_mode)
    m = _Model()
    x = m.tensor("input", in_shape, "INT8", in_scale, _zp(rng))
    f = m.tensor("filter", (out_ch, kh, kw, c), "INT8", f_scales, 0, 0, _weights(rng, (out_ch, kh, kw, c)))
    ins = [x, f]
    if bias:
        ins.append(m.tensor("bias", (out_ch,), "INT32", _bias_scales(in_scale, f_scales, out_ch), 0, 0, b))
    y = m.tensor("output", (n, oh, ow, out_ch), "INT8", out_scale, _zp(rng))
    o = schema.Conv2DOptionsT()
    o.padding = _PAD_CODE[padding]
    o.strideH, o.strideW = stride
    o.dilationHFactor, o.dilationWFactor = dilation
    o.fusedActivationFunction = _ACT_CODE[fused]
    m.op("CONV_2D", ins, [y], o, schema.BuiltinOptions.Conv2DOptions)
    return m.finish([x], [y])


def depthwise_model(rng: np.random.Generator, in_shape: tuple[int, int, int, int] = (1, 8, 8, 3),
                    depth_multiplier: int = 1, kernel: tuple[int, int] = (3, 3),
                    stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1),
                    padding: str = "SAME", fused: str = "NONE", per_channel: bool = True, bias: bool = True,
                    scale_mode: str = "normal") -> bytes:
    """DEPTHWISE_CONV_2D. filter [1, kh, kw, C * depth_multiplier], per-channel on dim 3."""
    n, h, w, c = in_shape
    kh, kw = kernel
    oc = c * depth_multiplier
    oh = conv_output_size(padding, h, kh, stride[0], dilation[0])
    ow = conv_output_size(padding, w, kw, stride[1], dilation[1])
    if oh < 1 or ow < 1:
        raise ValueError("VALID padding with a filter larger than the input")
    in_scale, f_scales, out_scale, b = _conv_quant(rng, oc, kh * kw, per_channel, scale_mode)
    m = _Model()
    x = m.tensor("input", in_shape, "INT8", in_scale, _zp(rng))
    f = m.tensor("filter", (1, kh, kw, oc), "INT8", f_scales, 0, 3, _weights(rng, (1, kh, kw, oc)))
    ins = [x, f]
    if bias:
        ins.append(m.tensor("bias", (oc,), "INT32", _bias_scales(in_scale, f_scales, oc), 0, 0, b))
    y = m.tensor("output", (n, oh, ow, oc), "INT8", out_scale, _zp(rng))
    o = schema.DepthwiseConv2DOptionsT()
    o.padding = _PAD_CODE[padding]
    o.strideH, o.strideW = stride
    o.dilationHFactor, o.dilationWFactor = dilation
    o.depthMultiplier = depth_multiplier
    o.fusedActivationFunction = _ACT_CODE[fused]
    m.op("DEPTHWISE_CONV_2D", ins, [y], o, schema.BuiltinOptions.DepthwiseConv2DOptions)
    return m.finish([x], [y])


def fully_connected_model(rng: np.random.Generator, in_shape: tuple[int, ...] = (1, 16), units: int = 8,
                          fused: str = "NONE", per_channel: bool = False, bias: bool = True,
                          scale_mode: str = "normal") -> bytes:
    """FULLY_CONNECTED. The input's last dim is the depth; its other dims are the batches."""
    depth = int(in_shape[-1])
    batches = int(np.prod(in_shape)) // depth
    in_scale, f_scales, out_scale, b = _conv_quant(rng, units, depth, per_channel, scale_mode)
    m = _Model()
    x = m.tensor("input", in_shape, "INT8", in_scale, _zp(rng))
    f = m.tensor("weights", (units, depth), "INT8", f_scales, 0, 0, _weights(rng, (units, depth)))
    ins = [x, f]
    if bias:
        ins.append(m.tensor("bias", (units,), "INT32", _bias_scales(in_scale, f_scales, units), 0, 0, b))
    y = m.tensor("output", (batches, units), "INT8", out_scale, _zp(rng))
    o = schema.FullyConnectedOptionsT()
    o.fusedActivationFunction = _ACT_CODE[fused]
    m.op("FULLY_CONNECTED", ins, [y], o, schema.BuiltinOptions.FullyConnectedOptions)
    return m.finish([x], [y])


def pool_model(rng: np.random.Generator, kind: str = "AVG", in_shape: tuple[int, int, int, int] = (1, 8, 8, 3),
               filter_size: tuple[int, int] = (2, 2), stride: tuple[int, int] = (2, 2), padding: str = "VALID",
               fused: str = "NONE") -> bytes:
    """AVERAGE_POOL_2D (kind "AVG") or MAX_POOL_2D ("MAX"); input and output share quantization."""
    n, h, w, c = in_shape
    fh, fw = filter_size
    oh = conv_output_size(padding, h, fh, stride[0])
    ow = conv_output_size(padding, w, fw, stride[1])
    if oh < 1 or ow < 1:
        raise ValueError("VALID padding with a filter larger than the input")
    scale, zp = _act_scale(rng), _zp(rng)
    m = _Model()
    x = m.tensor("input", in_shape, "INT8", scale, zp)
    y = m.tensor("output", (n, oh, ow, c), "INT8", scale, zp)
    o = schema.Pool2DOptionsT()
    o.padding = _PAD_CODE[padding]
    o.strideH, o.strideW = stride
    o.filterHeight, o.filterWidth = filter_size
    o.fusedActivationFunction = _ACT_CODE[fused]
    name = {"AVG": "AVERAGE_POOL_2D", "MAX": "MAX_POOL_2D"}[kind]
    m.op(name, [x], [y], o, schema.BuiltinOptions.Pool2DOptions)
    return m.finish([x], [y])


def _broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    r = max(len(a), len(b))
    pa, pb = (1,) * (r - len(a)) + tuple(a), (1,) * (r - len(b)) + tuple(b)
    out = []
    for x, y in zip(pa, pb, strict=True):
        if x != y and 1 not in (x, y):
            raise ValueError(f"shapes {a} and {b} do not broadcast")
        out.append(max(x, y))
    return tuple(out)


def add_model(rng: np.random.Generator, shape1: tuple[int, ...] = (1, 4, 4, 3),
              shape2: tuple[int, ...] | None = None, fused: str = "NONE",
              const_input2: bool = False) -> bytes:
    """ADD of two int8 tensors (numpy broadcasting of shape1 and shape2, rank <= 4)."""
    shape2 = tuple(shape1) if shape2 is None else tuple(shape2)
    out_shape = _broadcast_shape(tuple(shape1), shape2)
    s1, s2 = _act_scale(rng), _act_scale(rng)
    so = max(s1, s2) * 2.0 ** rng.uniform(-1.0, 2.0)
    m = _Model()
    a = m.tensor("input1", shape1, "INT8", s1, _zp(rng))
    data2 = rng.integers(-128, 128, size=shape2).astype(np.int8) if const_input2 else None
    b = m.tensor("input2", shape2, "INT8", s2, _zp(rng), 0, data2)
    y = m.tensor("output", out_shape, "INT8", so, _zp(rng))
    o = schema.AddOptionsT()
    o.fusedActivationFunction = _ACT_CODE[fused]
    m.op("ADD", [a, b], [y], o, schema.BuiltinOptions.AddOptions)
    return m.finish([a] if const_input2 else [a, b], [y])


def softmax_model(rng: np.random.Generator, shape: tuple[int, ...] = (1, 10), beta: float = 1.0,
                  input_scale: float | None = None) -> bytes:
    """SOFTMAX over the last dim; output scale 1/256 and zero point -128 (TFLite's int8 rule)."""
    scale = float(10.0 ** rng.uniform(-2.5, 0.0)) if input_scale is None else input_scale
    m = _Model()
    x = m.tensor("input", shape, "INT8", scale, _zp(rng))
    y = m.tensor("output", shape, "INT8", SOFTMAX_OUT_SCALE, -128)
    o = schema.SoftmaxOptionsT()
    o.beta = float(beta)
    m.op("SOFTMAX", [x], [y], o, schema.BuiltinOptions.SoftmaxOptions)
    return m.finish([x], [y])


def reshape_model(rng: np.random.Generator, in_shape: tuple[int, ...] = (1, 1, 1, 8),
                  out_shape: tuple[int, ...] = (1, 8)) -> bytes:
    """RESHAPE with the new shape both as a constant int32 input and in the options (as converters do)."""
    if int(np.prod(in_shape)) != int(np.prod(out_shape)):
        raise ValueError("reshape must keep the element count")
    scale, zp = _act_scale(rng), _zp(rng)
    m = _Model()
    x = m.tensor("input", in_shape, "INT8", scale, zp)
    s = m.tensor("shape", (len(out_shape),), "INT32", None, None, 0, np.asarray(out_shape, np.int32))
    y = m.tensor("output", out_shape, "INT8", scale, zp)
    o = schema.ReshapeOptionsT()
    o.newShape = [int(d) for d in out_shape]
    m.op("RESHAPE", [x, s], [y], o, schema.BuiltinOptions.ReshapeOptions)
    return m.finish([x], [y])


# ------------------------------------------------------------------ randomized configurations

def _odd(rng: np.random.Generator, lo: int, hi: int) -> int:
    """Mostly odd sizes in [lo, hi] (odd channel counts break 4-wide blocking), sometimes any size."""
    v = int(rng.integers(lo, hi + 1))
    if rng.random() < 0.6 and v % 2 == 0:
        v = v + 1 if v < hi else v - 1
    return max(lo, v)


def _scale_mode(rng: np.random.Generator) -> str:
    r = rng.random()
    return "large" if r < 0.08 else "tiny" if r < 0.11 else "mixed" if r < 0.2 else "normal"


def _spatial(rng: np.random.Generator, k: int, stride: int, dil: int, padding: str, hi: int = 11) -> int:
    eff = (k - 1) * dil + 1
    lo = eff if padding == "VALID" else 1
    return int(rng.integers(lo, max(lo, hi) + 1))


def random_case(op: str, rng: np.random.Generator) -> tuple[bytes, dict[str, Any]]:
    """A random single-op model for `op` (one of OPS) and the keyword arguments that built it."""
    act = str(rng.choice(ACTIVATIONS))
    if op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        padding = str(rng.choice(["SAME", "VALID"]))
        kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        sh, sw = int(rng.choice([1, 1, 2, 3])), int(rng.choice([1, 1, 2]))
        dh, dw = (1, 1) if rng.random() < 0.75 else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        h, w = _spatial(rng, kh, sh, dh, padding), _spatial(rng, kw, sw, dw, padding)
        n = 2 if rng.random() < 0.1 else 1
        kw_common: dict[str, Any] = dict(kernel=(kh, kw), stride=(sh, sw), dilation=(dh, dw), padding=padding,
                                         fused=act, per_channel=bool(rng.random() < 0.75),
                                         bias=bool(rng.random() < 0.9), scale_mode=_scale_mode(rng))
        if op == "CONV_2D":
            kw_common.update(in_shape=(n, h, w, _odd(rng, 1, 19)), out_ch=_odd(rng, 1, 19))
            return conv2d_model(rng, **kw_common), kw_common
        dm = 1 if rng.random() < 0.7 else int(rng.integers(2, 6))
        kw_common.update(in_shape=(n, h, w, _odd(rng, 1, 21)), depth_multiplier=dm)
        return depthwise_model(rng, **kw_common), kw_common
    if op == "FULLY_CONNECTED":
        depth = _odd(rng, 1, 300)
        batches = 1 if rng.random() < 0.7 else int(rng.integers(2, 5))
        in_shape = (batches, depth) if rng.random() < 0.7 else (batches, 1, 1, depth)
        kwargs: dict[str, Any] = dict(in_shape=in_shape, units=_odd(rng, 1, 37), fused=act,
                                      per_channel=bool(rng.random() < 0.4), bias=bool(rng.random() < 0.9),
                                      scale_mode=_scale_mode(rng))
        return fully_connected_model(rng, **kwargs), kwargs
    if op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        padding = str(rng.choice(["SAME", "VALID"]))
        fh, fw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        h, w = _spatial(rng, fh, sh, 1, padding, 13), _spatial(rng, fw, sw, 1, padding, 13)
        kwargs = dict(kind="AVG" if op == "AVERAGE_POOL_2D" else "MAX",
                      in_shape=(1 if rng.random() < 0.9 else 2, h, w, _odd(rng, 1, 19)),
                      filter_size=(fh, fw), stride=(sh, sw), padding=padding, fused=act)
        return pool_model(rng, **kwargs), kwargs
    if op == "ADD":
        out = [int(rng.integers(1, 3)), int(rng.integers(1, 7)), int(rng.integers(1, 7)), _odd(rng, 1, 19)]
        shapes = []
        for _ in range(2):
            s = list(out)
            if rng.random() < 0.5:
                for d in range(4):
                    if rng.random() < 0.35:
                        s[d] = 1
            rank = 4 if rng.random() < 0.7 else int(rng.integers(1, 4))
            shapes.append(tuple(s[4 - rank:]))
        kwargs = dict(shape1=shapes[0], shape2=shapes[1], fused=act, const_input2=bool(rng.random() < 0.15))
        return add_model(rng, **kwargs), kwargs
    if op == "SOFTMAX":
        depth = int(rng.integers(1, 65))
        outer = int(rng.integers(1, 4))
        shape = (outer, depth) if rng.random() < 0.7 else (1, outer, 1, depth)
        r = rng.random()
        scale = (float(10.0 ** rng.uniform(-2.5, 0.0)) if r < 0.8 else
                 float(10.0 ** rng.uniform(0.0, 2.0)) if r < 0.9 else float(10.0 ** rng.uniform(-5.0, -2.5)))
        beta = 1.0 if rng.random() < 0.7 else float(rng.uniform(0.05, 4.0))
        kwargs = dict(shape=shape, beta=beta, input_scale=scale)
        return softmax_model(rng, **kwargs), kwargs
    if op == "RESHAPE":
        c = _odd(rng, 1, 33)
        kwargs = dict(in_shape=(1, 1, 1, c), out_shape=(1, c))
        return reshape_model(rng, **kwargs), kwargs
    raise ValueError(f"unknown op {op!r}")


# ------------------------------------------------------------------ reading models back

@dataclass
class TensorInfo:
    """One tensor of a model: shape, type name, quantization and (for constants) its data."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scales: list[float] = field(default_factory=list)
    zero_points: list[int] = field(default_factory=list)
    qdim: int = 0
    data: np.ndarray | None = None

    @property
    def scale(self) -> float:
        return self.scales[0] if self.scales else 0.0

    @property
    def zero_point(self) -> int:
        return self.zero_points[0] if self.zero_points else 0


@dataclass
class OpInfo:
    """One operator: builtin name, options (padding / activation as names), operand tensors."""

    op: str
    options: dict[str, Any]
    inputs: list[TensorInfo | None]
    outputs: list[TensorInfo]


def _model_t(model: bytes) -> schema.ModelT:
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))


def _tensor_info(m: schema.ModelT, sg: schema.SubGraphT, i: int) -> TensorInfo | None:
    if i < 0:
        return None
    t = sg.tensors[i]
    dtype = _TYPE_NAME.get(t.type, str(t.type))
    info = TensorInfo(i, t.name.decode() if isinstance(t.name, bytes) else str(t.name),
                      tuple(int(d) for d in (t.shape if t.shape is not None else [])), dtype)
    q = t.quantization
    if q is not None and q.scale is not None and len(q.scale) > 0:
        info.scales = [float(s) for s in q.scale]
        info.zero_points = [int(z) for z in (q.zeroPoint if q.zeroPoint is not None else [0])]
        info.qdim = int(q.quantizedDimension)
    buf = m.buffers[t.buffer] if t.buffer < len(m.buffers) else None
    if buf is not None and buf.data is not None and len(buf.data) > 0:
        raw = np.asarray(buf.data, dtype=np.uint8).tobytes()
        info.data = np.frombuffer(raw, dtype=_NP_TYPE[dtype]).reshape(info.shape).copy()
    return info


def _options_dict(o: Any) -> dict[str, Any]:
    if o is None:
        return {}
    d = dict(vars(o))
    if "padding" in d:
        d["padding"] = _PAD_NAME.get(d["padding"], d["padding"])
    if "fusedActivationFunction" in d:
        d["fusedActivationFunction"] = _ACT_NAME.get(d["fusedActivationFunction"], d["fusedActivationFunction"])
    return d


def _op_name(m: schema.ModelT, op: schema.OperatorT) -> str:
    oc = m.operatorCodes[op.opcodeIndex]
    return _OP_NAME[max(oc.builtinCode, oc.deprecatedBuiltinCode)]


def read_op(model: bytes, op_index: int = 0) -> OpInfo:
    """Operator `op_index` of subgraph 0, with its tensors (and constant data) as plain Python."""
    m = _model_t(model)
    sg = m.subgraphs[0]
    op = sg.operators[op_index]
    outs = [_tensor_info(m, sg, i) for i in op.outputs]
    return OpInfo(_op_name(m, op), _options_dict(op.builtinOptions),
                  [_tensor_info(m, sg, i) for i in op.inputs], [t for t in outs if t is not None])


def op_names(model: bytes) -> list[str]:
    """Builtin names of the operators of subgraph 0, in order."""
    m = _model_t(model)
    return [_op_name(m, op) for op in m.subgraphs[0].operators]


def extract_op_model(model: bytes, op_index: int) -> bytes:
    """A one-op model holding operator `op_index` of `model` with its tensors, constant buffers and
    options unchanged; its non-constant inputs become the model inputs."""
    m = _model_t(model)
    sg = m.subgraphs[0]
    op = sg.operators[op_index]
    new = _Model()
    remap: dict[int, int] = {}
    graph_inputs: list[int] = []
    for i in list(op.inputs) + list(op.outputs):
        if i < 0 or i in remap:
            continue
        t = sg.tensors[i]
        nt = schema.TensorT()
        nt.name, nt.shape, nt.type, nt.quantization = t.name, t.shape, t.type, t.quantization
        buf = m.buffers[t.buffer] if t.buffer < len(m.buffers) else None
        if buf is not None and buf.data is not None and len(buf.data) > 0:
            nb = schema.BufferT()
            nb.data = np.asarray(buf.data, dtype=np.uint8)
            new.buffers.append(nb)
            nt.buffer = len(new.buffers) - 1
        else:
            nt.buffer = 0
            if i in op.inputs:
                graph_inputs.append(len(new.tensors))
        new.tensors.append(nt)
        remap[i] = len(new.tensors) - 1
    oc = m.operatorCodes[op.opcodeIndex]
    new.opcodes.append(oc)
    o = schema.OperatorT()
    o.opcodeIndex = 0
    o.inputs = [remap[i] if i >= 0 else -1 for i in op.inputs]
    o.outputs = [remap[i] for i in op.outputs]
    o.builtinOptionsType = op.builtinOptionsType
    o.builtinOptions = op.builtinOptions
    new.operators.append(o)
    return new.finish(graph_inputs, [remap[i] for i in op.outputs])


# ------------------------------------------------------------------ running

def run_tflm(model: bytes, inputs: list[np.ndarray], arena_size: int | None = None) -> list[np.ndarray]:
    """Invoke the tflite-micro Python interpreter (reference kernels) once; returns every output."""
    from tflite_micro.python.tflite_micro import runtime

    m = _model_t(model)
    sg = m.subgraphs[0]
    if arena_size is None:
        act_bytes = sum(int(np.prod(t.shape if t.shape is not None else [1])) * 4 for t in sg.tensors)
        arena_size = 65536 + 4 * len(model) + act_bytes
    interp = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
    for k, x in enumerate(inputs):
        interp.set_input(x, k)
    interp.invoke()
    return [np.array(interp.get_output(k)) for k in range(len(sg.outputs))]
