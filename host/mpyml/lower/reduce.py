"""Lowerings of the reduce family (spec: host/mpyml/spec/ops_reduce.py).

Owns MEAN, SUM, REDUCE_MAX, ARG_MAX and TRANSPOSE_CONV, with TFLite Micro's Prepare math reproduced
bit for bit:
  * MEAN (reduce_common.cc EvalIntegerMean): TFLM always takes reference_ops::QuantizedMeanOrSum,
    also when input and output share scale and zero point (an older TFLM had a truncating
    sum / count path for that case; the tflite-micro we test against does not): requantize with
    QuantizeMultiplier(input_scale / output_scale), 1/count folded into the multiplier;
  * SUM: QuantizedMeanOrSum with compute_sum (no 1/count);
  * REDUCE_MAX: TFLM requires the same quantization on input and output;
  * ARG_MAX: the axis from its constant tensor, int32 or int64 output;
  * TRANSPOSE_CONV: per-channel multipliers as PopulateConvolutionQuantizationParams, padding as
    ComputePaddingHeightWidth over the output size (TFLM's CalculateOpData);
  * BATCH_MATMUL (int8, two tensors, either may be constant): the multiplier as batch_matmul.cc Prepare
    (GetQuantizedConvolutionMultipler: double(lhs_scale) * double(rhs_scale) / double(output_scale)), no fused
    activation (-128..127), adj_x / adj_y and broadcast batch dims handled by the kernel's strides.
Axes are resolved as ResolveAxis (negative axes, duplicates) and mapped onto the input right-aligned
to 4-D, which is what the kernels index.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import quantize
from ..tflite_model import ACTIVATION, PADDING, Operator
from . import lowering

_MAX_COUNT = 1 << 23


def _pack_error(msg: str) -> Exception:
    from ..packer import PackError
    return PackError(msg)


def _f32(x: float) -> float:
    return float(np.float32(x))


def _axes(b: Any, op: Operator, where: str, rank: int) -> list[int]:
    """The resolved axes (ResolveAxis: negative wrapped, duplicates dropped) of the const axis input."""
    if len(op.inputs) < 2 or op.inputs[1] < 0:
        raise _pack_error(f"{where}: the axis input is missing")
    t = b.m.tensors[op.inputs[1]]
    if t.data is None or t.dtype not in ("INT32", "INT64"):
        raise _pack_error(f"{where}: the axis must be a constant int32 tensor (is {t.dtype}"
                          f"{'' if t.data is not None else ', not constant'})")
    out: list[int] = []
    for a in np.asarray(t.data).reshape(-1).tolist():
        cur = int(a) + rank if a < 0 else int(a)
        if not 0 <= cur < rank:
            raise _pack_error(f"{where}: axis {a} out of range for a rank-{rank} input")
        if cur not in out:
            out.append(cur)
    return out


def _reduce_common(b: Any, op: Operator, where: str) -> tuple[int, int, int, int, Any, Any]:
    """(packed input, packed output, axis_mask, count, input Tensor, output Tensor)."""
    x, y = b.m.tensors[op.inputs[0]], b.m.tensors[op.outputs[0]]
    for t in (x, y):
        if t.dtype != "INT8":
            raise _pack_error(f"{where}: tensor {t.index} '{t.name}' is {t.dtype}; mpyml runs int8 reductions")
        if len(t.scales) > 1:
            raise _pack_error(f"{where}: tensor {t.index} '{t.name}' needs per-tensor quantization")
    shape = tuple(x.shape) if x.shape else (1,)
    rank = len(shape)
    if rank > 4:
        raise _pack_error(f"{where}: input rank {rank}; mpyml supports rank <= 4")
    axes = _axes(b, op, where, rank)
    mask = 0
    count = 1
    kept = 1
    for i, d in enumerate(shape):
        if i in axes:
            mask |= 1 << (4 - rank + i)
            count *= int(d)
        else:
            kept *= int(d)
    out_elems = int(np.prod(y.shape, dtype=np.int64)) if y.shape else 1
    if out_elems != kept:
        raise _pack_error(f"{where}: output shape {y.shape} does not match input {shape} reduced over {axes}")
    if count > _MAX_COUNT:
        raise _pack_error(f"{where}: {count} elements reduce into one output; mpyml allows at most {_MAX_COUNT}")
    i_x = b.tensor(op.inputs[0], where)
    i_y = b.tensor(op.outputs[0], where)
    return i_x, i_y, mask, count, x, y


def _requant(in_scale: float, out_scale: float) -> tuple[int, int]:
    """PrepareSimple: QuantizeMultiplier(double(input_scale) / double(output_scale))."""
    return quantize.quantize_multiplier(_f32(in_scale) / _f32(out_scale))


def _fold_count(mult: int, shift: int, count: int) -> tuple[int, int]:
    """reference_ops::QuantizedMeanOrSum: 1/count folded into (mult, shift), int64 arithmetic."""
    s = min(count.bit_length() - 1, 32, 31 + shift)      # 63 - CountLeadingZeros(uint64 count)
    return int((mult << s) // count), shift - s           # positive: floor == C truncation


@lowering("MEAN")
def _mean(b: Any, op: Operator, where: str) -> None:
    i_x, i_y, mask, count, x, y = _reduce_common(b, op, where)
    mult, shift = _fold_count(*_requant(x.scale, y.scale), count)
    b.emit("MEAN", [i_x], [i_y], [mask, x.zero_point, y.zero_point, mult, shift], op,
           macs=int(np.prod(x.shape or (1,))), info={"axis_mask": mask, "count": count})


@lowering("SUM")
def _sum(b: Any, op: Operator, where: str) -> None:
    i_x, i_y, mask, count, x, y = _reduce_common(b, op, where)
    mult, shift = _requant(x.scale, y.scale)
    b.emit("SUM", [i_x], [i_y], [mask, x.zero_point, y.zero_point, mult, shift], op,
           macs=int(np.prod(x.shape or (1,))), info={"axis_mask": mask, "count": count})


@lowering("REDUCE_MAX")
def _reduce_max(b: Any, op: Operator, where: str) -> None:
    i_x, i_y, mask, count, x, y = _reduce_common(b, op, where)
    if x.zero_point != y.zero_point or np.float32(x.scale) != np.float32(y.scale):
        raise _pack_error(f"{where}: input and output quantization differ; TFLite Micro's int8 REDUCE_MAX "
                          "requires the same scale and zero point")
    b.emit("REDUCE_MAX", [i_x], [i_y], [mask], op, macs=int(np.prod(x.shape or (1,))),
           info={"axis_mask": mask, "count": count})


@lowering("ARG_MAX")
def _arg_max(b: Any, op: Operator, where: str) -> None:
    x, y = b.m.tensors[op.inputs[0]], b.m.tensors[op.outputs[0]]
    if x.dtype != "INT8":
        raise _pack_error(f"{where}: input is {x.dtype}; mpyml runs int8 ARG_MAX")
    if y.dtype not in ("INT32", "INT64"):
        raise _pack_error(f"{where}: output is {y.dtype}; ARG_MAX writes int32 or int64")
    shape = tuple(x.shape) if x.shape else (1,)
    rank = len(shape)
    if rank > 4:
        raise _pack_error(f"{where}: input rank {rank}; mpyml supports rank <= 4")
    axes = _axes(b, op, where, rank)
    if len(axes) != 1:
        raise _pack_error(f"{where}: ARG_MAX takes exactly one axis (got {axes})")
    out_elems = int(np.prod(y.shape, dtype=np.int64)) if y.shape else 1
    if out_elems * shape[axes[0]] != int(np.prod(shape)):
        raise _pack_error(f"{where}: output shape {y.shape} does not match input {shape} without axis {axes[0]}")
    i_x = b.tensor(op.inputs[0], where)
    i_y = b.tensor(op.outputs[0], where, types=("INT32", "INT64"))
    b.emit("ARG_MAX", [i_x], [i_y], [4 - rank + axes[0]], op, macs=int(np.prod(shape)),
           info={"axis": axes[0], "output": y.dtype.lower()})


@lowering("TRANSPOSE_CONV")
def _transpose_conv(b: Any, op: Operator, where: str) -> None:
    from ..packer import NO_TENSOR, _pad_out
    ins = op.inputs
    if len(ins) < 3:
        raise _pack_error(f"{where}: expected inputs (output_shape, weights, input[, bias])")
    f, x, y = b.m.tensors[ins[1]], b.m.tensors[ins[2]], b.m.tensors[op.outputs[0]]
    if f.data is None or f.dtype != "INT8" or len(f.shape) != 4:
        raise _pack_error(f"{where}: weights must be a constant int8 [O,KH,KW,I] tensor")
    if np.any(np.asarray(f.zero_points) != 0):
        raise _pack_error(f"{where}: filter zero points must be 0 (symmetric int8 weights)")
    for t in (x, y):
        if t.dtype != "INT8" or len(t.scales) > 1:
            raise _pack_error(f"{where}: tensor {t.index} '{t.name}' must be int8 with per-tensor quantization "
                              f"(is {t.dtype})")
    if len(x.shape) != 4 or len(y.shape) != 4:
        raise _pack_error(f"{where}: input and output must be 4-D NHWC")
    oc, kh, kw, fic = (int(d) for d in f.shape)
    n, ih, iw, ic = (int(d) for d in x.shape)
    on, oh, ow, occ = (int(d) for d in y.shape)
    if fic != ic or occ != oc or on != n:
        raise _pack_error(f"{where}: weights {f.shape} do not match input {x.shape} / output {y.shape}")
    opts = op.options
    sw, sh = int(opts.get("strideW", 1)), int(opts.get("strideH", 1))
    padding = PADDING.get(opts.get("padding", 0), "?")
    if padding not in ("SAME", "VALID"):
        raise _pack_error(f"{where}: padding {padding} not supported")
    _, pad_h = _pad_out(padding, oh, kh, sh, 1)
    _, pad_w = _pad_out(padding, ow, kw, sw, 1)
    if len(f.scales) not in (1, oc):
        raise _pack_error(f"{where}: filter has {len(f.scales)} scales for {oc} output channels")
    mult, shift = quantize.per_channel_multipliers(x.scale, [float(s) for s in f.scales], y.scale)
    if len(mult) == 1 and oc > 1:
        mult, shift = np.repeat(mult, oc), np.repeat(shift, oc)
    act = ACTIVATION.get(opts.get("fusedActivationFunction", 0), "?")
    if act not in quantize.FUSED_ACTIVATIONS:
        raise _pack_error(f"{where}: fused activation {act} not supported")
    act_min, act_max = quantize.activation_range(act, y.scale, y.zero_point)
    i_b = NO_TENSOR
    if len(ins) > 3 and ins[3] >= 0:
        bt = b.m.tensors[ins[3]]
        if bt.data is None or bt.dtype != "INT32" or bt.data.size != oc:
            raise _pack_error(f"{where}: bias must be a constant int32 tensor with {oc} values "
                              f"(is {bt.dtype}, {None if bt.data is None else bt.data.size} values)")
        i_b = b.const_i32(bt.name, bt.data.reshape(-1), bt.index)
    i_x = b.tensor(ins[2], where)
    i_f = b.const_int8(f, where, weights=True)
    i_m = b.const_i32(f"{f.name}/mult", mult)
    i_s = b.const_i32(f"{f.name}/shift", shift)
    i_y = b.tensor(op.outputs[0], where)
    b.emit("TRANSPOSE_CONV", [i_x, i_f, i_b, i_m, i_s], [i_y],
           [sw, sh, pad_w, pad_h, -x.zero_point, y.zero_point, act_min, act_max], op,
           macs=n * ih * iw * ic * kh * kw * oc,
           info={"kernel": (kh, kw), "stride": (sh, sw), "padding": padding, "activation": act,
                 "per_channel": len(f.scales) > 1})


@lowering("BATCH_MATMUL")
def _batch_matmul(b: Any, op: Operator, where: str) -> None:
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        raise _pack_error(f"{where}: expected inputs (lhs, rhs) and one output")
    lhs, rhs, y = (b.m.tensors[i] for i in (*op.inputs, op.outputs[0]))
    for t in (lhs, rhs, y):
        if t.dtype != "INT8" or len(t.scales) > 1:
            raise _pack_error(f"{where}: tensor {t.index} '{t.name}' must be int8 with per-tensor quantization "
                              f"(is {t.dtype}, {len(t.scales)} scales): mpyml runs int8 BATCH_MATMUL only")
    ls, rs, ys = (tuple(int(d) for d in t.shape) for t in (lhs, rhs, y))
    if len(ls) < 2 or len(rs) < 2 or max(len(ls), len(rs)) > 4:
        raise _pack_error(f"{where}: operands of rank 2..4 only (lhs {ls}, rhs {rs})")
    adj_x, adj_y = int(bool(op.options.get("adjX", False))), int(bool(op.options.get("adjY", False)))
    m, k = (ls[-1], ls[-2]) if adj_x else (ls[-2], ls[-1])
    kr, n = (rs[-1], rs[-2]) if adj_y else (rs[-2], rs[-1])
    r = max(len(ls), len(rs))
    lb, rb = (1,) * (r - len(ls)) + ls[:-2], (1,) * (r - len(rs)) + rs[:-2]
    if (k != kr or any(p != q and 1 not in (p, q) for p, q in zip(lb, rb, strict=True))
            or ys != tuple(max(p, q) for p, q in zip(lb, rb, strict=True)) + (m, n)):
        raise _pack_error(f"{where}: shapes lhs {ls}, rhs {rs} (adj_x {adj_x}, adj_y {adj_y}) do not give "
                          f"output {ys}")
    if k > 32768:
        raise _pack_error(f"{where}: accumulation depth {k} > 32768")
    real = float(np.float64(np.float32(lhs.scale)) * np.float64(np.float32(rhs.scale))
                 / np.float64(np.float32(y.scale)))
    mult, shift = quantize.quantize_multiplier(real)
    idx = [b.tensor(op.inputs[0], where), b.tensor(op.inputs[1], where), b.tensor(op.outputs[0], where)]
    b.emit("BATCH_MATMUL", idx[:2], idx[2:],
           [adj_x, adj_y, -lhs.zero_point, -rhs.zero_point, y.zero_point, mult, shift], op,
           macs=int(np.prod(ys)) * k, info={"adj_x": bool(adj_x), "adj_y": bool(adj_y), "depth": k,
                                           "broadcast": lb != rb})
