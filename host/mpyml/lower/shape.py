"""Lowerings of the shape family (spec: host/mpyml/spec/ops_shape.py): data movement ops.

Owns:
  * PAD / PADV2 -> PAD (4-D before/after counts, the pad element: PADV2's constant, else the output
    zero point for int8 / uint8 (TFLM), else 0);
  * TILE (RepeatVector, UpSampling1D forms the graph pass leaves) -> per tiled axis a CONCATENATION of the tensor
    with itself `multiple` times (<= 31), which is exactly the repeat;
  * CONCATENATION (identical quantization of inputs and output, as TFLM int8 requires) and PACK (the
    engine's CONCATENATION accepts inputs of one rank less: the new axis) -> CONCATENATION;
  * STRIDED_SLICE, SLICE, SPLIT, SPLIT_V, UNPACK, TRANSPOSE -> STRIDED_COPY: TFLM's index arithmetic
    (begin/end clamping, masks, negative strides) folded into one start offset and a stride per
    output dim;
  * RESIZE_NEAREST_NEIGHBOR -> RESIZE_NEAREST with TFLM's GetNearestNeighbor (float32 arithmetic,
    reproduced with numpy float32) precomputed per output row and column; RESIZE_BILINEAR (int8) ->
    RESIZE_BILINEAR with TFLM ResizeBilinearInteger's 10-bit indices and weights precomputed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import spec
from ..tflite_model import ACTIVATION, Operator, Tensor
from . import lowering

_MOVE = ("INT8", "UINT8", "INT16", "INT32", "FLOAT32")
_MOVE64 = (*_MOVE, "INT64")
_QUANTIZED = ("INT8", "UINT8", "INT16")


def _err(msg: str) -> Exception:
    from ..packer import PackError
    return PackError(msg)


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in t.shape) if t.shape else (1,)


def _const_ints(b: Any, ti: int, where: str, what: str) -> np.ndarray:
    if ti < 0:
        raise _err(f"{where}: {what} is missing")
    t = b.m.tensors[ti]
    if t.data is None:
        raise _err(f"{where}: {what} (tensor {ti} '{t.name}') must be a constant; mpyml has no dynamic shapes")
    if t.dtype not in ("INT32", "INT64"):
        raise _err(f"{where}: {what} (tensor {ti}) is {t.dtype}, expected int32 or int64")
    return np.asarray(t.data, dtype=np.int64).reshape(-1)


def _strides(shape: tuple[int, ...]) -> list[int]:
    s = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        s[i] = s[i + 1] * shape[i + 1]
    return s


def _rank4(t: Tensor, where: str) -> tuple[int, ...]:
    shp = _shape(t)
    if len(shp) > 4:
        raise _err(f"{where}: tensor {t.index} '{t.name}' has rank {len(shp)}; mpyml supports rank <= 4")
    return shp


def _same_type(where: str, x: Tensor, y: Tensor) -> None:
    if x.dtype != y.dtype:
        raise _err(f"{where}: input is {x.dtype} but output is {y.dtype}; this op only moves elements")


def _emit_copy(b: Any, op: Operator, where: str, x_ti: int, y_ti: int, start: int, strides: list[int],
               types: tuple[str, ...] = _MOVE64, info: dict | None = None) -> None:
    """STRIDED_COPY: out[i0..] = in[start + sum(i_j * strides[j])], strides one per output dim."""
    x, y = b.m.tensors[x_ti], b.m.tensors[y_ti]
    _same_type(where, x, y)
    yshape = _rank4(y, where)
    if len(strides) != len(yshape):
        raise AssertionError("one stride per output dim")
    s4 = [0] * (4 - len(strides)) + [int(s) for s in strides]
    ix = b.tensor(x_ti, where, types)
    iy = b.tensor(y_ti, where, types)
    b.emit("STRIDED_COPY", [ix], [iy], [int(start), *s4], op, info=info or {})


# ---------------------------------------------------------------- PAD / PADV2

@lowering("PAD", "PADV2")
def _pad(b: Any, op: Operator, where: str) -> None:
    x, y = b.m.tensors[op.inputs[0]], b.m.tensors[op.outputs[0]]
    _same_type(where, x, y)
    xs, ys = _rank4(x, where), _rank4(y, where)
    pads = _const_ints(b, op.inputs[1], where, "paddings")
    r = len(xs)
    if pads.size != 2 * r:
        raise _err(f"{where}: paddings has {pads.size} values, expected [{r}, 2]")
    pads = pads.reshape(r, 2)
    if (pads < 0).any():
        raise _err(f"{where}: negative paddings are not supported")
    if len(ys) != r or any(ys[i] != xs[i] + pads[i, 0] + pads[i, 1] for i in range(r)):
        raise _err(f"{where}: output shape {ys} is not the padded input shape")
    before = [0] * (4 - r) + [int(p) for p in pads[:, 0]]
    after = [0] * (4 - r) + [int(p) for p in pads[:, 1]]
    value = 0
    cv = op.inputs[2] if op.op == "PADV2" and len(op.inputs) > 2 else -1
    if cv >= 0:
        c = b.m.tensors[cv]
        if c.data is None or c.dtype != x.dtype or np.asarray(c.data).size != 1:
            raise _err(f"{where}: the pad value must be a constant scalar of the input's type ({x.dtype})")
        if x.dtype in _QUANTIZED and (c.zero_point != y.zero_point or c.scale != y.scale):
            raise _err(f"{where}: the pad value must have the output's quantization (TFLM requires it)")
        raw = np.asarray(c.data).reshape(-1)[:1]
        value = int(raw.view(np.int32)[0]) if x.dtype == "FLOAT32" else int(raw[0])
    elif x.dtype in ("INT8", "UINT8"):
        value = y.zero_point
    if x.dtype in _QUANTIZED and (x.zero_point != y.zero_point or x.scale != y.scale):
        raise _err(f"{where}: input and output quantization differ (TFLM PAD requires them equal)")
    ix = b.tensor(op.inputs[0], where, _MOVE)
    iy = b.tensor(op.outputs[0], where, _MOVE)
    b.emit("PAD", [ix], [iy], [value, *before, *after], op, info={"pads": pads.tolist()})


# ---------------------------------------------------------------- CONCATENATION / PACK

def _concat_emit(b: Any, op: Operator, where: str, axis_out: int, out_rank: int) -> None:
    ins = [b.tensor(i, where, _MOVE64) for i in op.inputs]
    iy = b.tensor(op.outputs[0], where, _MOVE64)
    if len(ins) > 31 * 31:
        raise _err(f"{where}: {len(ins)} inputs; mpyml takes at most {31 * 31}")
    if len(ins) > 31:
        # more inputs than one record holds (tf-keras UpSampling1D: SPLIT -> CONCATENATION of 2 * T slices): groups
        # of <= 31 consecutive inputs into arena tensors of the output's type and quantization, then those
        y = b.tensors[iy]
        groups = []
        for g in range(0, len(ins), 31):
            part = ins[g:g + 31]
            n = sum(b.tensors[i].shape[axis_out] if len(b.tensors[i].shape) == out_rank else 1 for i in part)
            shape = tuple(n if k == axis_out else d for k, d in enumerate(y.shape))
            ig = b.scratch(f"{y.name}/concat{g // 31}", shape, spec.TYPE_NAME[y.type])
            b.tensors[ig].zero_point, b.tensors[ig].scale = y.zero_point, y.scale
            b.emit("CONCATENATION", part, [ig], [4 - out_rank + axis_out], op, info={"axis": axis_out})
            groups.append(ig)
        ins = groups
    b.emit("CONCATENATION", ins, [iy], [4 - out_rank + axis_out], op, info={"axis": axis_out})


@lowering("CONCATENATION")
def _concatenation(b: Any, op: Operator, where: str) -> None:
    y = b.m.tensors[op.outputs[0]]
    ys = _rank4(y, where)
    act = ACTIVATION.get(op.options.get("fusedActivationFunction", 0), "?")
    if act != "NONE":
        raise _err(f"{where}: fused activation {act} on CONCATENATION is not supported")
    axis = int(op.options.get("axis", 0))
    if axis < 0:
        axis += len(ys)
    if not 0 <= axis < len(ys):
        raise _err(f"{where}: axis {op.options.get('axis')} outside rank {len(ys)}")
    total = 0
    for ti in op.inputs:
        t = b.m.tensors[ti]
        ts = _shape(t)
        if t.dtype != y.dtype:
            raise _err(f"{where}: input {ti} is {t.dtype}, output {y.dtype}")
        if y.dtype in _QUANTIZED and (t.scale != y.scale or t.zero_point != y.zero_point):
            raise _err(f"{where}: input {ti} '{t.name}' has scale {t.scale:g} / zero point {t.zero_point}, the "
                       f"output {y.scale:g} / {y.zero_point}: TFLM int8 CONCATENATION requires identical "
                       "quantization of every input and the output (re-quantize the inputs first, or convert "
                       "with a representative dataset that gives them one range)")
        if len(ts) != len(ys) or any(ts[i] != ys[i] for i in range(len(ys)) if i != axis):
            raise _err(f"{where}: input shape {ts} does not fit output {ys} at axis {axis}")
        total += ts[axis]
    if total != ys[axis]:
        raise _err(f"{where}: inputs add up to {total} along axis {axis}, output has {ys[axis]}")
    _concat_emit(b, op, where, axis, len(ys))


@lowering("PACK")
def _pack(b: Any, op: Operator, where: str) -> None:
    y = b.m.tensors[op.outputs[0]]
    ys = _rank4(y, where)
    axis = int(op.options.get("axis", 0))
    if axis < 0:
        axis += len(ys)
    if not 0 <= axis < len(ys):
        raise _err(f"{where}: axis {op.options.get('axis')} outside output rank {len(ys)}")
    want = ys[:axis] + ys[axis + 1:]
    if ys[axis] != len(op.inputs):
        raise _err(f"{where}: {len(op.inputs)} inputs but output dim {axis} is {ys[axis]}")
    for ti in op.inputs:
        t = b.m.tensors[ti]
        if t.dtype != y.dtype:
            raise _err(f"{where}: input {ti} is {t.dtype}, output {y.dtype}")
        ts = tuple(int(d) for d in t.shape)
        if ts != want:
            raise _err(f"{where}: input shape {ts}, expected {want}")
    if len(want) == 0:
        raise _err(f"{where}: PACK of scalars is not supported")
    _concat_emit(b, op, where, axis, len(ys))


# ---------------------------------------------------------------- STRIDED_SLICE, SLICE, SPLIT(_V), UNPACK, TRANSPOSE

def _clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))


@lowering("STRIDED_SLICE")
def _strided_slice(b: Any, op: Operator, where: str) -> None:
    x, y = b.m.tensors[op.inputs[0]], b.m.tensors[op.outputs[0]]
    xs = _rank4(x, where)
    begin = _const_ints(b, op.inputs[1], where, "begin")
    end = _const_ints(b, op.inputs[2], where, "end")
    strides = _const_ints(b, op.inputs[3], where, "strides") if len(op.inputs) > 3 else np.ones(len(xs), np.int64)
    o = op.options
    if int(o.get("ellipsisMask", 0)) or int(o.get("newAxisMask", 0)):
        raise _err(f"{where}: ellipsis_mask / new_axis_mask are not supported (TFLM does not support them either)")
    if o.get("offset", False):
        raise _err(f"{where}: offset=True strided slices are not supported")
    r = len(xs)
    if not (begin.size == end.size == strides.size == r):
        raise _err(f"{where}: begin/end/strides must have one value per input dim ({r})")
    bm, em, sm = int(o.get("beginMask", 0)), int(o.get("endMask", 0)), int(o.get("shrinkAxisMask", 0))
    instr = _strides(xs)
    start_flat = 0
    kept: list[tuple[int, int]] = []     # (count, element stride) of each output dim
    for i in range(r):
        n, st = xs[i], int(strides[i])
        if st == 0:
            raise _err(f"{where}: stride 0 in dim {i}")
        if sm >> i & 1 and st < 0:
            # TFLM's loop runs from start to start + 1 with the negative stride: no element at all,
            # it leaves the output unwritten
            raise _err(f"{where}: shrink_axis_mask with a negative stride (dim {i}) selects nothing in TFLM")
        # TFLM strided_slice_logic.h StartForAxis / StopForAxis
        if bm >> i & 1:
            s = 0 if st > 0 else n - 1
        else:
            s = int(begin[i])
            if s < 0:
                s += n
            s = _clamp(s, 0, n) if st > 0 else _clamp(s, -1, n - 1)
        if sm >> i & 1:
            e = s + 1
        elif em >> i & 1:
            e = n if st > 0 else -1
        else:
            e = int(end[i])
            if e < 0:
                e += n
            e = _clamp(e, 0, n) if st > 0 else _clamp(e, -1, n - 1)
        cnt = max(0, -(-(e - s) // st)) if st > 0 else max(0, -(-(s - e) // -st))
        if sm >> i & 1:
            cnt = 1
        if cnt == 0:
            raise _err(f"{where}: the slice is empty along dim {i}; mpyml has no empty tensors")
        if not 0 <= s < n:
            raise _err(f"{where}: slice start {s} outside dim {i} of size {n}")
        start_flat += s * instr[i]
        if not sm >> i & 1:
            kept.append((cnt, st * instr[i]))
    ys = _shape(y)
    counts = tuple(c for c, _ in kept) or (1,)
    if counts != ys:
        raise _err(f"{where}: computed output shape {counts} differs from the model's {ys}")
    _emit_copy(b, op, where, op.inputs[0], op.outputs[0], start_flat, [s for _, s in kept] or [0])


@lowering("SLICE")
def _slice(b: Any, op: Operator, where: str) -> None:
    x, y = b.m.tensors[op.inputs[0]], b.m.tensors[op.outputs[0]]
    xs, ys = _rank4(x, where), _shape(y)
    begin = _const_ints(b, op.inputs[1], where, "begin")
    size = _const_ints(b, op.inputs[2], where, "size")
    r = len(xs)
    if begin.size != r or size.size != r:
        raise _err(f"{where}: begin/size must have one value per input dim ({r})")
    counts = []
    for i in range(r):
        s, n = int(begin[i]), int(size[i])
        if n == -1:
            n = xs[i] - s
        if s < 0 or n < 1 or s + n > xs[i]:
            raise _err(f"{where}: slice [{s}, {s}+{n}) outside dim {i} of size {xs[i]}")
        counts.append(n)
    if tuple(counts) != ys:
        raise _err(f"{where}: computed output shape {tuple(counts)} differs from the model's {ys}")
    instr = _strides(xs)
    _emit_copy(b, op, where, op.inputs[0], op.outputs[0], sum(int(begin[i]) * instr[i] for i in range(r)), instr)


def _split_outputs(b: Any, op: Operator, where: str, x_ti: int, axis: int) -> None:
    x = b.m.tensors[x_ti]
    xs = _rank4(x, where)
    if axis < 0:
        axis += len(xs)
    if not 0 <= axis < len(xs):
        raise _err(f"{where}: axis outside rank {len(xs)}")
    instr = _strides(xs)
    off = 0
    for k, yi in enumerate(op.outputs):
        ys = _shape(b.m.tensors[yi])
        if len(ys) != len(xs) or any(ys[i] != xs[i] for i in range(len(xs)) if i != axis):
            raise _err(f"{where}: output {k} shape {ys} does not fit input {xs} split along {axis}")
        _emit_copy(b, op, where, x_ti, yi, off * instr[axis], instr, info={"part": k})
        off += ys[axis]
    if off != xs[axis]:
        raise _err(f"{where}: outputs add up to {off} along axis {axis}, input has {xs[axis]}")


@lowering("SPLIT")
def _split(b: Any, op: Operator, where: str) -> None:
    axis = _const_ints(b, op.inputs[0], where, "axis")
    _split_outputs(b, op, where, op.inputs[1], int(axis[0]))


@lowering("SPLIT_V")
def _split_v(b: Any, op: Operator, where: str) -> None:
    axis = _const_ints(b, op.inputs[2], where, "axis")
    _split_outputs(b, op, where, op.inputs[0], int(axis[0]))


@lowering("UNPACK")
def _unpack(b: Any, op: Operator, where: str) -> None:
    x = b.m.tensors[op.inputs[0]]
    xs = _rank4(x, where)
    axis = int(op.options.get("axis", 0))
    if axis < 0:
        axis += len(xs)
    if not 0 <= axis < len(xs) or len(op.outputs) != xs[axis]:
        raise _err(f"{where}: axis {axis} / {len(op.outputs)} outputs do not fit input {xs}")
    instr = _strides(xs)
    rest = [instr[i] for i in range(len(xs)) if i != axis]
    want = tuple(xs[i] for i in range(len(xs)) if i != axis) or (1,)
    for k, yi in enumerate(op.outputs):
        if _shape(b.m.tensors[yi]) != want:
            raise _err(f"{where}: output {k} shape differs from {want}")
        _emit_copy(b, op, where, op.inputs[0], yi, k * instr[axis], rest or [0], info={"part": k})


@lowering("TRANSPOSE")
def _transpose(b: Any, op: Operator, where: str) -> None:
    x, y = b.m.tensors[op.inputs[0]], b.m.tensors[op.outputs[0]]
    xs, ys = _rank4(x, where), _shape(y)
    perm = [int(p) for p in _const_ints(b, op.inputs[1], where, "perm")]
    if sorted(perm) != list(range(len(xs))):
        raise _err(f"{where}: perm {perm} is not a permutation of the input's {len(xs)} dims")
    if tuple(xs[p] for p in perm) != ys:
        raise _err(f"{where}: output shape {ys} is not the permuted input shape")
    instr = _strides(xs)
    _emit_copy(b, op, where, op.inputs[0], op.outputs[0], 0, [instr[p] for p in perm], info={"perm": perm})


# ---------------------------------------------------------------- RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR

def _resize_shapes(b: Any, op: Operator, where: str) -> tuple[tuple[int, ...], tuple[int, ...], bool, bool]:
    x, y = b.m.tensors[op.inputs[0]], b.m.tensors[op.outputs[0]]
    _same_type(where, x, y)
    xs, ys = _shape(x), _shape(y)
    if len(xs) != 4 or len(ys) != 4 or xs[0] != ys[0] or xs[3] != ys[3]:
        raise _err(f"{where}: input {xs} and output {ys} must be 4-D NHWC with the same batch and channels")
    size = _const_ints(b, op.inputs[1], where, "size")
    if size.size != 2 or (int(size[0]), int(size[1])) != ys[1:3]:
        raise _err(f"{where}: size {size.tolist()} differs from the output's {ys[1:3]}")
    ac = bool(op.options.get("alignCorners", False))
    hp = bool(op.options.get("halfPixelCenters", False))
    return xs, ys, ac, hp


def nearest_index(v: int, in_size: int, out_size: int, align: bool, half: bool) -> int:
    """TFLM reference GetNearestNeighbor (resize_nearest_neighbor.h), in float32 like the C++."""
    f32 = np.float32
    if align and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
    else:
        scale = f32(in_size) / f32(out_size)
    offset = f32(0.5) if half else f32(0.0)
    p = f32(f32(v) + offset) * scale
    if align:
        q = int(np.floor(np.abs(p) + f32(0.5))) * (1 if p >= 0 else -1)   # TfLiteRound: half away from zero
    else:
        q = int(np.floor(p))
    out = min(q, in_size - 1)
    if half:
        out = max(0, out)
    return out


@lowering("RESIZE_NEAREST_NEIGHBOR")
def _resize_nearest(b: Any, op: Operator, where: str) -> None:
    xs, ys, ac, hp = _resize_shapes(b, op, where)
    rows = [nearest_index(i, xs[1], ys[1], ac, hp) for i in range(ys[1])]
    cols = [nearest_index(i, xs[2], ys[2], ac, hp) for i in range(ys[2])]
    ix = b.tensor(op.inputs[0], where, _MOVE)
    iy = b.tensor(op.outputs[0], where, _MOVE)
    ir = b.const(f"{b.m.tensors[op.outputs[0]].name}/rows", np.array(rows, np.int32), "int32")
    ic = b.const(f"{b.m.tensors[op.outputs[0]].name}/cols", np.array(cols, np.int32), "int32")
    b.emit("RESIZE_NEAREST", [ix, ir, ic], [iy], [], op, info={"align_corners": ac, "half_pixel_centers": hp})


def _tdiv(a: int, d: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(d)
    return q if (a >= 0) == (d > 0) else -q


def bilinear_table(in_size: int, out_size: int, align: bool, half: bool) -> list[int]:
    """TFLM ResizeBilinearInteger: (lower, upper, input_v - 1024*lower) per output index."""
    scale = _tdiv((1 << 10) * in_size + out_size // 2, out_size)
    if align and out_size > 1:
        scale = _tdiv((1 << 10) * (in_size - 1) + (out_size - 1) // 2, out_size - 1)
    out: list[int] = []
    for v in range(out_size):
        sv = v * scale + _tdiv(scale, 2) - (1 << 9) if half else v * scale
        lo = max(_tdiv(sv, 1 << 10), 0)
        hi = min(_tdiv(sv + (1 << 10) - 1, 1 << 10), in_size - 1)
        out += [lo, hi, sv - (1 << 10) * lo]
    return out


@lowering("RESIZE_BILINEAR")
def _resize_bilinear(b: Any, op: Operator, where: str) -> None:
    xs, ys, ac, hp = _resize_shapes(b, op, where)
    if b.m.tensors[op.inputs[0]].dtype != "INT8":
        raise _err(f"{where}: RESIZE_BILINEAR runs on int8 tensors only")
    if ac and hp:
        raise _err(f"{where}: align_corners and half_pixel_centers cannot both be set")
    rows, cols = bilinear_table(xs[1], ys[1], ac, hp), bilinear_table(xs[2], ys[2], ac, hp)
    ix = b.tensor(op.inputs[0], where, ("INT8",))
    iy = b.tensor(op.outputs[0], where, ("INT8",))
    name = b.m.tensors[op.outputs[0]].name
    ir = b.const(f"{name}/rows", np.array(rows, np.int32), "int32")
    ic = b.const(f"{name}/cols", np.array(cols, np.int32), "int32")
    b.emit("RESIZE_BILINEAR", [ix, ir, ic], [iy], [], op, info={"align_corners": ac, "half_pixel_centers": hp})


@lowering("TILE")
def _tile(b: Any, op: Operator, where: str) -> None:
    x, y = b.m.tensors[op.inputs[0]], b.m.tensors[op.outputs[0]]
    xs, ys = _rank4(x, where), _rank4(y, where)
    mult = [int(m) for m in _const_ints(b, op.inputs[1], where, "multiples")]
    if len(mult) != len(xs) or len(ys) != len(xs) or any(d * m != o for d, m, o in zip(xs, mult, ys, strict=True)):
        raise _err(f"{where}: multiples {mult} of input {xs} do not give output {ys}")
    if x.dtype != y.dtype or (y.dtype in _QUANTIZED and (x.scale != y.scale or x.zero_point != y.zero_point)):
        raise _err(f"{where}: TILE input and output differ in type or quantization")
    axes = [i for i, m in enumerate(mult) if m != 1] or [len(xs) - 1]
    if any(mult[a] > 31 for a in axes):
        raise _err(f"{where}: TILE by {mult}; mpyml repeats at most 31 times along an axis")
    cur = b.tensor(op.inputs[0], where, _MOVE64)
    iy = b.tensor(op.outputs[0], where, _MOVE64)
    shape = list(xs)
    for k, a in enumerate(axes):            # one axis at a time, through arena tensors of the output's quantization
        shape[a] *= mult[a]
        if k == len(axes) - 1:
            nxt = iy
        else:
            nxt = b.scratch(f"{y.name}/tile{k}", tuple(shape), spec.TYPE_NAME[b.tensors[iy].type])
            b.tensors[nxt].zero_point, b.tensors[nxt].scale = b.tensors[iy].zero_point, b.tensors[iy].scale
        b.emit("CONCATENATION", [cur] * mult[a], [nxt], [4 - len(ys) + a], op, info={"axis": a, "tile": mult[a]})
        cur = nxt
