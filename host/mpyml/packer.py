"""The packer: int8 TFLite model -> mpyml packed model (.mpk, format v2, or v3 with sparse weights; docs/FORMAT.md).

Owns: checking every op and dtype against what the engine runs, lowering TFLite ops to mpyml ops (the
eight core ops here, the op families in host/mpyml/lower/, registered by TFLite op name)
with every float-derived parameter precomputed (multipliers, shifts, activation ranges, softmax
scaling), laying out the constant data section, planning the arena, and writing the file.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import quantize, spec
from .planner import plan_arena
from .spec import (  # noqa: F401  (re-exported: mpk, tests)
    ALIGN_ARENA,
    ALIGN_DATA,
    HEADER_FMT,
    HEADER_SIZE,
    MAGIC,
    NO_TENSOR,
    OP_HDR_FMT,
    OP_NAMES,
    OPCODES,
    TENSOR_FMT,
    TENSOR_SIZE,
    TYPE_CODE,
    TYPE_SIZE,
    VERSION,
)
from .tflite_model import ACTIVATION, PADDING, Operator, Tensor, TFLiteError, TFLiteModel, read_tflite

T_INT8, T_INT32, T_FLOAT32, T_UINT8, T_INT16, T_INT64 = (TYPE_CODE[n] for n in
                                                         ("int8", "int32", "float32", "uint8", "int16", "int64"))
S_ARENA, S_CONST = spec.STORAGE["arena"], spec.STORAGE["const"]
F_STATE = spec.TENSOR_FLAGS["STATE"]
# TFLite dtype name -> mpyml type code
TFLITE_TYPES = {"INT8": T_INT8, "INT32": T_INT32, "FLOAT32": T_FLOAT32, "UINT8": T_UINT8, "INT16": T_INT16,
                "INT64": T_INT64}
SUPPORTED_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
assert struct.calcsize(HEADER_FMT) == HEADER_SIZE
assert struct.calcsize(TENSOR_FMT) == TENSOR_SIZE


class PackError(ValueError):
    """The model cannot be packed; the message says which op/tensor and what to do."""


@dataclass
class PTensor:
    """A tensor of the packed model."""

    name: str
    shape: tuple[int, ...]
    type: int
    storage: int
    zero_point: int = 0
    scale: float = 0.0
    data: bytes | None = None        # const contents
    offset: int = 0                  # assigned by layout/planner
    tflite_index: int = -1
    flags: int = 0                   # F_STATE: persists across invokes (RNN state)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * TYPE_SIZE[self.type]


@dataclass
class POp:
    opcode: int
    inputs: list[int]
    outputs: list[int]
    params: list[int]
    tflite_index: int
    macs: int = 0
    info: dict = field(default_factory=dict)
    in_place: bool = False           # set by the planner: output aliased exactly onto an input (OP_FLAGS IN_PLACE)


def _pad_out(padding: str, in_size: int, filt: int, stride: int, dil: int) -> tuple[int, int]:
    """TFLM ComputeOutSize + ComputePaddingWithOffset: (out_size, pad_before)."""
    eff = (filt - 1) * dil + 1
    if padding == "SAME":
        out = (in_size + stride - 1) // stride
    else:
        out = (in_size + stride - eff) // stride
    total = max((out - 1) * stride + eff - in_size, 0)
    return out, total // 2


class _Builder:
    def __init__(self, model: TFLiteModel) -> None:
        self.m = model
        self.tensors: list[PTensor] = []
        self.ops: list[POp] = []
        self.act_map: dict[int, int] = {}   # tflite tensor index -> packed index (activations)

    # ---- tensors
    def act(self, ti: int, where: str) -> int:
        """Packed index of an activation (arena) int8 tensor, created on first use."""
        if ti in self.act_map:
            return self.act_map[ti]
        t = self.m.tensors[ti]
        if t.is_const:
            return self.const_int8(t, where)
        self._require_int8(t, where)
        self.tensors.append(PTensor(t.name, self._shape(t, where), T_INT8, S_ARENA, t.zero_point, t.scale,
                                    tflite_index=ti))
        self.act_map[ti] = len(self.tensors) - 1
        return self.act_map[ti]

    def const_int8(self, t: Tensor, where: str, weights: bool = False) -> int:
        """A constant int8 tensor; `weights` (conv/FC filters) may carry per-channel scales."""
        if weights:
            if t.dtype != "INT8":
                raise PackError(f"{where}: weights tensor {t.index} '{t.name}' is {t.dtype}, expected int8")
        else:
            self._require_int8(t, where)
        assert t.data is not None
        self.tensors.append(PTensor(t.name, self._shape(t, where), T_INT8, S_CONST, t.zero_point, t.scale,
                                    data=np.ascontiguousarray(t.data, dtype=np.int8).tobytes(), tflite_index=t.index))
        return len(self.tensors) - 1

    def const_i32(self, name: str, values: np.ndarray, tflite_index: int = -1) -> int:
        arr = np.ascontiguousarray(values, dtype="<i4")
        self.tensors.append(PTensor(name, (int(arr.size),), T_INT32, S_CONST, data=arr.tobytes(),
                                    tflite_index=tflite_index))
        return len(self.tensors) - 1

    def _shape(self, t: Tensor, where: str) -> tuple[int, ...]:
        shape = t.shape if t.shape else (1,)
        if len(shape) > 4:
            raise PackError(f"{where}: tensor {t.index} '{t.name}' has rank {len(shape)}; mpyml supports rank <= 4")
        if int(np.prod(shape, dtype=np.float64)) * 8 >= 2**31:
            raise PackError(f"{where}: tensor {t.index} '{t.name}' {shape} has "
                            f"{int(np.prod(shape, dtype=np.float64)):,} elements: too large for a microcontroller "
                            "(and for the format's 32-bit sizes); reduce the input resolution or the layer widths")
        if any(d <= 0 or d > 65535 for d in shape):
            raise PackError(f"{where}: tensor {t.index} '{t.name}' has unsupported shape {shape} "
                            "(dynamic or > 65535 dims)")
        return tuple(shape)

    @staticmethod
    def _require_int8(t: Tensor, where: str) -> None:
        if t.dtype != "INT8":
            raise PackError(f"{where}: tensor {t.index} '{t.name}' is {t.dtype}; mpyml runs int8 models. "
                            "Convert with full-integer quantization (inference_input_type/output_type = tf.int8)")
        if len(t.scales) != 1 or len(t.zero_points) != 1:
            raise PackError(f"{where}: tensor {t.index} '{t.name}' needs per-tensor quantization "
                            f"(has {len(t.scales)} scales)")

    def tensor(self, ti: int, where: str, types: tuple[str, ...] = ("INT8",)) -> int:
        """Packed index of TFLite tensor `ti` of one of `types` (TFLite dtype names): an arena tensor
        (created on first use) or, for a constant, a const tensor. Per-tensor quantization is kept."""
        if ti in self.act_map:
            return self.act_map[ti]
        t = self.m.tensors[ti]
        if t.dtype not in types:
            raise PackError(f"{where}: tensor {t.index} '{t.name}' is {t.dtype}; this op takes {'/'.join(types)}")
        code = TFLITE_TYPES.get(t.dtype)
        if code is None:
            raise PackError(f"{where}: tensor {t.index} '{t.name}' has type {t.dtype}, which mpyml does not store")
        if t.is_const:
            assert t.data is not None
            arr = np.ascontiguousarray(t.data, dtype=spec.TYPES[spec.TYPE_NAME[code]][2])
            self.tensors.append(PTensor(t.name, self._shape(t, where), code, S_CONST, t.zero_point, t.scale,
                                        data=arr.tobytes(), tflite_index=t.index))
            return len(self.tensors) - 1
        self.tensors.append(PTensor(t.name, self._shape(t, where), code, S_ARENA, t.zero_point, t.scale,
                                    tflite_index=ti))
        self.act_map[ti] = len(self.tensors) - 1
        return self.act_map[ti]

    def const(self, name: str, values: np.ndarray, type_name: str, shape: tuple[int, ...] | None = None,
              scale: float = 0.0, zero_point: int = 0) -> int:
        """A constant tensor made by the packer (tables, params too long for the record...)."""
        code = TYPE_CODE[type_name]
        arr = np.ascontiguousarray(values, dtype=spec.TYPES[type_name][2])
        shp = tuple(int(d) for d in (shape if shape is not None else (arr.size,)))
        self.tensors.append(PTensor(name, shp, code, S_CONST, zero_point, scale, data=arr.tobytes()))
        return len(self.tensors) - 1

    def scratch(self, name: str, shape: tuple[int, ...], type_name: str, state: bool = False) -> int:
        """An arena tensor made by the packer: op scratch (live during its op only) or, with state=True,
        RNN state that persists across invokes (zeroed at load)."""
        self.tensors.append(PTensor(name, tuple(shape), TYPE_CODE[type_name], S_ARENA,
                                    flags=F_STATE if state else 0))
        return len(self.tensors) - 1

    def emit(self, opname: str, inputs: list[int], outputs: list[int], params: list[int], op: Operator,
             macs: int = 0, info: dict | None = None) -> None:
        """Append an engine op, after checking its params against the loader's ranges (the spec)."""
        try:
            spec.check_params(opname, [int(p) for p in params])
        except spec.SpecRangeError as e:
            raise PackError(f"op #{op.index} {op.op}: {e}: the board would refuse this model") from None
        self.ops.append(POp(OPCODES[opname], list(inputs), list(outputs), [int(p) for p in params], op.index,
                            macs, info or {}))

    # ---- ops
    def add_op(self, op: Operator) -> None:
        where = f"op #{op.index} {op.op}"
        from .lower import LOWERINGS
        handler = getattr(self, "_op_" + op.op.lower(), None) if op.op in _CORE_TFLITE else None
        if handler is None and op.op not in LOWERINGS:
            raise PackError(f"{where} is not supported by mpyml (supported: "
                            f"{', '.join(sorted(s for s in supported_tflite_ops() if not s.startswith('MPYML_')))}).")
        try:
            if handler is None:
                LOWERINGS[op.op](self, op, where)
            else:
                handler(op, where)
        except PackError:
            raise
        except (ValueError, OverflowError, ZeroDivisionError, FloatingPointError) as e:
            # quantize.py refuses parameters TFLite's integer arithmetic cannot represent
            raise PackError(f"{where}: {e}. The model's quantization parameters cannot be represented by "
                            "TFLite's integer arithmetic: recalibrate with a representative dataset of real inputs "
                            "(an untrained model or constant logits give degenerate scales)") from None

    def _fused(self, op: Operator, where: str, out: Tensor) -> tuple[int, int]:
        act = ACTIVATION.get(op.options.get("fusedActivationFunction", 0), "?")
        if act not in SUPPORTED_ACTIVATIONS:
            raise PackError(f"{where}: fused activation {act} not supported (supported: "
                            f"{', '.join(SUPPORTED_ACTIVATIONS)})")
        return quantize.activation_range(act, out.scale, out.zero_point)

    def _conv_common(self, op: Operator, where: str, depthwise: bool) -> None:
        ins = op.inputs
        x, f, o = self.m.tensors[ins[0]], self.m.tensors[ins[1]], self.m.tensors[op.outputs[0]]
        if f.data is None:
            raise PackError(f"{where}: filter is not a constant")
        if f.dtype != "INT8" or len(f.shape) != 4:
            raise PackError(f"{where}: filter must be int8 4-D, is {f.dtype} {f.shape}")
        if np.any(f.zero_points != 0):
            raise PackError(f"{where}: filter zero points must be 0 (symmetric int8 weights)")
        self._require_int8(x, where)
        self._require_int8(o, where)
        if len(x.shape) != 4 or len(o.shape) != 4:
            raise PackError(f"{where}: input and output must be 4-D NHWC")
        opts = op.options
        sw, sh = int(opts.get("strideW", 1)), int(opts.get("strideH", 1))
        dw_, dh = int(opts.get("dilationWFactor", 1)), int(opts.get("dilationHFactor", 1))
        padding = PADDING.get(opts.get("padding", 1), "?")
        _, ih, iw, ic = x.shape
        on, oh, ow, oc = o.shape
        if depthwise:
            _, kh, kw, fo = f.shape
            if fo != oc or oc % ic:
                raise PackError(f"{where}: filter {f.shape} does not match input {x.shape} / output {o.shape}")
            dm = oc // ic
            channel_scales = f.scales
        else:
            fo, kh, kw, fc = f.shape
            if fo != oc:
                raise PackError(f"{where}: filter {f.shape} does not match output {o.shape}")
            if fc != ic:
                raise PackError(f"{where}: grouped convolution (filter channels {fc} != input channels {ic}) "
                                "is not supported")
            dm = 1
            channel_scales = f.scales
        if len(channel_scales) not in (1, oc):
            raise PackError(f"{where}: filter has {len(channel_scales)} scales for {oc} output channels")
        exp_h, pad_h = _pad_out(padding, ih, kh, sh, dh)
        exp_w, pad_w = _pad_out(padding, iw, kw, sw, dw_)
        if (exp_h, exp_w) != (oh, ow) or on != x.shape[0]:
            raise PackError(f"{where}: output shape {o.shape} inconsistent with input {x.shape}, "
                            f"filter {f.shape}, stride ({sh},{sw}), {padding} padding")
        mult, shift = quantize.per_channel_multipliers(x.scale, [float(s) for s in channel_scales], o.scale)
        if len(mult) == 1 and oc > 1:
            mult, shift = np.repeat(mult, oc), np.repeat(shift, oc)
        act_min, act_max = self._fused(op, where, o)
        i_in = self.act(ins[0], where)
        i_f = self.const_int8(f, where, weights=True)
        i_b = self._bias(op, where, oc)
        i_m = self.const_i32(f"{f.name}/mult", mult)
        i_s = self.const_i32(f"{f.name}/shift", shift)
        i_o = self.act(op.outputs[0], where)
        params = [sw, sh, dw_, dh, pad_w, pad_h, -x.zero_point, o.zero_point, act_min, act_max, dm]
        macs = on * oh * ow * oc * kh * kw * (1 if depthwise else ic)
        code = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
        info = {"kernel": (kh, kw), "stride": (sh, sw), "dilation": (dh, dw_), "padding": padding,
                "activation": ACTIVATION.get(opts.get("fusedActivationFunction", 0)),
                "per_channel": len(f.scales) > 1}
        self.emit(code, [i_in, i_f, i_b, i_m, i_s], [i_o], params, op, macs, info)

    def _bias(self, op: Operator, where: str, n: int) -> int:
        if len(op.inputs) < 3 or op.inputs[2] < 0:
            return NO_TENSOR
        b = self.m.tensors[op.inputs[2]]
        if b.data is None or b.dtype != "INT32":
            raise PackError(f"{where}: bias must be a constant int32 tensor (is {b.dtype})")
        if b.data.size != n:
            raise PackError(f"{where}: bias has {b.data.size} values for {n} output channels")
        return self.const_i32(b.name, b.data.reshape(-1), b.index)

    def _op_conv_2d(self, op: Operator, where: str) -> None:
        self._conv_common(op, where, depthwise=False)

    def _op_depthwise_conv_2d(self, op: Operator, where: str) -> None:
        self._conv_common(op, where, depthwise=True)

    def _op_fully_connected(self, op: Operator, where: str) -> None:
        ins = op.inputs
        x, f, o = self.m.tensors[ins[0]], self.m.tensors[ins[1]], self.m.tensors[op.outputs[0]]
        if f.data is None or f.dtype != "INT8" or len(f.shape) != 2:
            raise PackError(f"{where}: weights must be a constant int8 [units, depth] tensor")
        if op.options.get("weightsFormat", 0) != 0:
            raise PackError(f"{where}: shuffled weights format is not supported")
        if np.any(f.zero_points != 0):
            raise PackError(f"{where}: weights zero point must be 0")
        self._require_int8(x, where)
        self._require_int8(o, where)
        units, depth = f.shape
        in_elems = int(np.prod(x.shape))
        out_elems = int(np.prod(o.shape))
        if o.shape[-1] != units or in_elems % depth or in_elems // depth != out_elems // units:
            raise PackError(f"{where}: shapes input {x.shape}, weights {f.shape}, output {o.shape} disagree")
        if len(f.scales) == 1:
            # TFLM GetQuantizedConvolutionMultipler: float product, then double division
            real = float(np.float32(x.scale) * np.float32(f.scales[0])) / float(np.float32(o.scale))
            m1, s1 = quantize.quantize_multiplier(real)
            mult, shift = np.array([m1], np.int32), np.array([s1], np.int32)
        elif len(f.scales) == units:
            mult, shift = quantize.per_channel_multipliers(x.scale, [float(s) for s in f.scales], o.scale)
        else:
            raise PackError(f"{where}: weights have {len(f.scales)} scales for {units} units")
        act_min, act_max = self._fused(op, where, o)
        i_in = self.act(ins[0], where)
        i_f = self.const_int8(f, where, weights=True)
        i_b = self._bias(op, where, units)
        i_m = self.const_i32(f"{f.name}/mult", mult)
        i_s = self.const_i32(f"{f.name}/shift", shift)
        i_o = self.act(op.outputs[0], where)
        params = [-x.zero_point, o.zero_point, act_min, act_max]
        info = {"units": units, "depth": depth, "per_channel": len(f.scales) > 1,
                "activation": ACTIVATION.get(op.options.get("fusedActivationFunction", 0))}
        self.emit("FULLY_CONNECTED", [i_in, i_f, i_b, i_m, i_s], [i_o], params, op,
                  (out_elems // units) * units * depth, info)

    def _pool(self, op: Operator, where: str, name: str) -> None:
        x, o = self.m.tensors[op.inputs[0]], self.m.tensors[op.outputs[0]]
        self._require_int8(x, where)
        self._require_int8(o, where)
        if x.scale != o.scale or x.zero_point != o.zero_point:
            raise PackError(f"{where}: input and output quantization must match (TFLite requires it)")
        if len(x.shape) != 4 or len(o.shape) != 4:
            raise PackError(f"{where}: input and output must be 4-D NHWC")
        opts = op.options
        sw, sh = int(opts.get("strideW", 1)), int(opts.get("strideH", 1))
        fw, fh = int(opts.get("filterWidth", 1)), int(opts.get("filterHeight", 1))
        padding = PADDING.get(opts.get("padding", 1), "?")
        exp_h, pad_h = _pad_out(padding, x.shape[1], fh, sh, 1)
        exp_w, pad_w = _pad_out(padding, x.shape[2], fw, sw, 1)
        if (exp_h, exp_w) != tuple(o.shape[1:3]) or o.shape[3] != x.shape[3]:
            raise PackError(f"{where}: output shape {o.shape} inconsistent with input {x.shape}")
        act_min, act_max = self._fused(op, where, o)
        i_in, i_o = self.act(op.inputs[0], where), self.act(op.outputs[0], where)
        info = {"filter": (fh, fw), "stride": (sh, sw), "padding": padding}
        self.emit(name, [i_in], [i_o], [sw, sh, fw, fh, pad_w, pad_h, act_min, act_max], op, 0, info)

    def _op_average_pool_2d(self, op: Operator, where: str) -> None:
        self._pool(op, where, "AVERAGE_POOL_2D")

    def _op_max_pool_2d(self, op: Operator, where: str) -> None:
        self._pool(op, where, "MAX_POOL_2D")

    def _op_add(self, op: Operator, where: str) -> None:
        a, b, o = (self.m.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
        for t in (a, b, o):
            self._require_int8(t, where)
        so = o.shape
        for t in (a, b):
            if len(t.shape) > len(so) or any(d not in (1, e) for d, e in zip(t.shape[::-1], so[::-1], strict=False)):
                raise PackError(f"{where}: cannot broadcast {t.shape} to {so}")
        p = quantize.add_params(a.scale, b.scale, o.scale)
        act_min, act_max = self._fused(op, where, o)
        i_a, i_b = self.act(op.inputs[0], where), self.act(op.inputs[1], where)
        i_o = self.act(op.outputs[0], where)
        params = [-a.zero_point, -b.zero_point, o.zero_point, p["left_shift"], p["input1_mult"], p["input1_shift"],
                  p["input2_mult"], p["input2_shift"], p["output_mult"], p["output_shift"], act_min, act_max]
        self.emit("ADD", [i_a, i_b], [i_o], params, op, 0,
                  {"broadcast": a.shape != b.shape})

    def _op_reshape(self, op: Operator, where: str) -> None:
        x, o = self.m.tensors[op.inputs[0]], self.m.tensors[op.outputs[0]]
        self._require_int8(x, where)
        self._require_int8(o, where)
        if int(np.prod(x.shape)) != int(np.prod(o.shape)):
            raise PackError(f"{where}: reshape {x.shape} -> {o.shape} changes the element count")
        if x.scale != o.scale or x.zero_point != o.zero_point:
            raise PackError(f"{where}: reshape must keep quantization")
        self.emit("RESHAPE", [self.act(op.inputs[0], where)], [self.act(op.outputs[0], where)], [], op)

    def _op_softmax(self, op: Operator, where: str) -> None:
        x, o = self.m.tensors[op.inputs[0]], self.m.tensors[op.outputs[0]]
        self._require_int8(x, where)
        self._require_int8(o, where)
        if o.zero_point != -128 or abs(o.scale - 1.0 / 256) > 0.001 / 256:
            raise PackError(f"{where}: int8 softmax output must have scale 1/256 and zero point -128 "
                            f"(has {o.scale}, {o.zero_point})")
        if x.shape != o.shape:
            raise PackError(f"{where}: input and output shapes differ")
        beta = float(op.options.get("beta", 1.0))
        mult, lshift, diff_min = quantize.softmax_params(beta, x.scale)
        self.emit("SOFTMAX", [self.act(op.inputs[0], where)], [self.act(op.outputs[0], where)],
                  [mult, lshift, diff_min], op, 0, {"beta": beta})


_CORE_TFLITE = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "ADD",
                "RESHAPE", "SOFTMAX")


def supported_tflite_ops() -> set[str]:
    """Every TFLite builtin op name the packer lowers (core handlers + host/mpyml/lower/ families)."""
    from .lower import LOWERINGS
    return set(_CORE_TFLITE) | set(LOWERINGS)


@dataclass
class PackedModel:
    """Result of lowering + planning (before serialization); also what `inspect` reports."""

    tensors: list[PTensor]
    ops: list[POp]
    inputs: list[int]
    outputs: list[int]
    arena_size: int
    data: bytes = b""
    trusted_size: int = 0            # bytes at the start of data that the engine copies at load
    sparse_size: int = 0             # bytes at the end of the trusted region: the sparse section (format v3)
    notes: list[str] = field(default_factory=list)   # what graph.cleanup() folded / fused before lowering


def lower(model: TFLiteModel, sparse: bool | str = True, slow_in_place: bool = False) -> PackedModel:
    """`sparse`: FC / conv layers with mostly-zero weights become sparse ops where the cost model says smaller
    and not slower (host/mpyml/lower/sparse.py); "always": wherever smaller; False: never."""
    if not model.operators:
        raise PackError("model has no operators")
    b = _Builder(model)
    for op in model.operators:
        b.add_op(op)
    if sparse:
        from .lower.sparse import sparsify
        sparsify(b, always=sparse == "always")
    try:
        inputs = [b.act_map[i] for i in model.inputs]
        outputs = [b.act_map[i] for i in model.outputs]
    except KeyError as e:
        raise PackError(f"model input/output tensor {e} is not used by any op") from None
    if len(inputs) > 16 or len(outputs) > 16:
        raise PackError("at most 16 inputs and 16 outputs are supported")
    arena = plan_arena(b.tensors, b.ops, inputs, outputs, ALIGN_ARENA,
                       new_scratch=lambda step, n: b.scratch(f"op{step}/inplace_scratch", (n,), "int8"),
                       slow_in_place=slow_in_place)
    if arena >= 2**31:
        raise PackError(f"the model needs {arena:,} bytes of activations: too large for any microcontroller; "
                        "reduce the input resolution or the layer widths")
    pm = PackedModel(b.tensors, b.ops, inputs, outputs, arena)
    _layout_data(pm)
    return pm


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _trusted_tensors(pm: PackedModel) -> set[int]:
    """Const tensors whose values a kernel relies on (spec operands with trusted=True)."""
    out: set[int] = set()
    for op in pm.ops:
        sop = spec.OPS_BY_CODE[op.opcode]
        n_in = len(op.inputs)
        for k, ti in enumerate(op.inputs + op.outputs):
            if ti != NO_TENSOR and sop.operand(k, n_in).trusted and pm.tensors[ti].storage == S_CONST:
                out.add(ti)
    return out


def _layout_data(pm: PackedModel) -> None:
    """Place const tensors in the data section, 16-byte aligned, identical blobs shared. The trusted ones
    (requantization params, tables the kernels index with) come first: that region, `trusted_size` bytes,
    is copied by the engine at load, so nothing written into the model buffer later can change them."""
    from .lower.sparse import sparse_index_tensors
    out = bytearray()
    seen: dict[bytes, int] = {}
    trusted = _trusted_tensors(pm)
    sparse_idx = sparse_index_tensors(pm.ops)

    def place(t: PTensor) -> None:
        assert t.data is not None
        if t.data in seen:
            t.offset = seen[t.data]
            return
        out.extend(b"\0" * (_align(len(out), ALIGN_DATA) - len(out)))
        t.offset = len(out)
        seen[t.data] = t.offset
        out.extend(t.data)

    for i in sorted(trusted - sparse_idx):
        place(pm.tensors[i])
    out.extend(b"\0" * (_align(len(out), ALIGN_DATA) - len(out)))
    sparse_start = len(out)
    if sparse_idx:          # the sparse section (format v3): the end of the trusted region, its own blobs
        dense_seen, seen = seen, {}
        for i in sorted(sparse_idx):
            place(pm.tensors[i])
        out.extend(b"\0" * (_align(len(out), ALIGN_DATA) - len(out)))
        seen = {**dense_seen, **seen}
    pm.trusted_size = len(out)
    pm.sparse_size = len(out) - sparse_start
    for i, t in enumerate(pm.tensors):
        if t.storage == S_CONST and i not in trusted:
            place(t)     # identical to a trusted blob: shares it (a const lies inside the region or after it)
    pm.data = bytes(out)


def serialize(pm: PackedModel) -> bytes:
    tensors_off = HEADER_SIZE
    tensor_blob = bytearray()
    for t in pm.tensors:
        dims = list(t.shape) + [0] * (4 - len(t.shape))
        scale_bits = struct.unpack("<I", struct.pack("<f", t.scale))[0]
        tensor_blob += struct.pack(TENSOR_FMT, t.type, len(t.shape), t.storage, t.flags, *dims, t.offset, t.nbytes,
                                   t.zero_point, scale_bits, 0)
    ops_off = tensors_off + len(tensor_blob)
    ops_blob = bytearray()
    for op in pm.ops:
        idx = op.inputs + op.outputs
        if len(idx) % 2:
            idx = idx + [NO_TENSOR]
        size = 8 + 2 * len(idx) + 4 * len(op.params)
        ops_blob += struct.pack(OP_HDR_FMT, op.opcode, len(op.inputs), len(op.outputs), len(op.params), size,
                                spec.OP_FLAGS["IN_PLACE"] if op.in_place else 0)
        ops_blob += struct.pack(f"<{len(idx)}H", *idx)
        ops_blob += struct.pack(f"<{len(op.params)}i", *op.params)
    io_off = ops_off + len(ops_blob)
    io_blob = struct.pack(f"<{len(pm.inputs) + len(pm.outputs)}H", *(pm.inputs + pm.outputs))
    data_off = _align(io_off + len(io_blob), ALIGN_DATA)
    total = data_off + len(pm.data)
    macs = min(sum(op.macs for op in pm.ops), 0xFFFFFFFF)
    version = VERSION if pm.sparse_size else spec.VERSION_MIN     # v2 readers keep loading dense models
    header = struct.pack(HEADER_FMT, MAGIC, version, HEADER_SIZE, total, 0, pm.arena_size, len(pm.tensors),
                         len(pm.ops), len(pm.inputs), len(pm.outputs), tensors_off, ops_off, len(ops_blob), io_off,
                         data_off, len(pm.data), macs, pm.sparse_size, pm.trusted_size)
    buf = bytearray(header + tensor_blob + ops_blob + io_blob)
    buf += b"\0" * (data_off - len(buf))
    buf += pm.data
    assert len(buf) == total
    struct.pack_into("<I", buf, 12, zlib.crc32(buf) & 0xFFFFFFFF)
    return bytes(buf)


def pack_model(tflite: bytes, max_ram: int | None = None, sparse: bool | str = True,
               slow_in_place: bool = False) -> PackedModel:
    """read_tflite -> graph.cleanup (exact rewrites) -> every unsupported op reported at once -> lower.
    The clean-up notes are on the result (`.notes`). With `max_ram`, an arena of at most that many bytes:
    the default plan if it fits, else a patch plan (host/mpyml/patch.py; PackError if none fits).
    `slow_in_place`: allow the in-place kernels that are slower than the normal ones (depthwise) at once (what
    `max_ram` falls back to when the default plan does not fit)."""
    from .graph import cleanup, unsupported_report
    try:
        model = read_tflite(tflite)
    except TFLiteError as e:
        raise PackError(str(e)) from None
    model, notes = cleanup(model)
    report = unsupported_report(model, supported_tflite_ops())
    if report:
        raise PackError(report)
    pm = lower(model, sparse=sparse, slow_in_place=slow_in_place)
    pm.notes = notes
    if max_ram is not None and pm.arena_size > max_ram:
        # the fastest plan that fits: the default one; else with the slower in-place kernels (depthwise
        # channel by channel); else patch-based inference (host/mpyml/patch.py), in-place variants allowed
        small = lower(model, sparse=sparse, slow_in_place=True)
        small.notes = notes
        if small.arena_size <= max_ram:
            return small
        from .patch import PatchError, apply
        try:
            pm = apply(pm, max_ram, in_place=True)
        except PatchError as e:
            if e.smallest <= small.arena_size:
                raise
            raise PatchError(f"--max-ram {max_ram:,} is below the smallest arena mpyml reaches for this model, "
                             f"{small.arena_size:,} B with its in-place kernels (default plan {pm.arena_size:,} B;"
                             f" no patch plan is smaller): use --max-ram {small.arena_size} or more",
                             small.arena_size) from None
    return pm


def pack(tflite: bytes, max_ram: int | None = None, sparse: bool | str = True) -> bytes:
    """Pack an int8 .tflite model into the mpyml format. Raises PackError (a ValueError) with a clear message.
    `max_ram`: the arena budget in bytes (`mpyml pack --max-ram`), met by patch-based inference if need be."""
    return serialize(pack_model(tflite, max_ram, sparse))
