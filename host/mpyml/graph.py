"""Exact graph clean-up of a TFLite model at pack time, and the pack-time report of what cannot run.

Owns: `cleanup(model)`, the rewrites applied between `read_tflite` and lowering, each of which leaves the
model's outputs unchanged bit for bit (under TFLite's integer kernels, as tflite-micro runs them):

1. constant folding of static-shape arithmetic (SHAPE of a static tensor, STRIDED_SLICE / PACK /
   CONCATENATION / GATHER / CAST / ... over int32 constants), then dead ops and tensors are dropped;
   static shapes the converter wrote wrongly (a dynamic dimension written as 1: Keras 3 `UpSampling2D`)
   are repaired from the folded RESHAPE shapes, forward through the ops whose shape rule is known;
2. EXPAND_DIMS / SQUEEZE -> RESHAPE;
3. SPACE_TO_BATCH_ND -> CONV_2D / DEPTHWISE_CONV_2D -> BATCH_TO_SPACE_ND (a dilated conv as TFLite lowers
   it; also the Conv1D form with RESHAPEs around the conv) -> one conv with dilation factors, when the
   paddings / crops are exactly SAME or VALID padding of the dilated conv;
4. Keras 3 `UpSampling1D/2D` (RESHAPE (was EXPAND_DIMS) -> TILE -> RESHAPE per axis) ->
   RESIZE_NEAREST_NEIGHBOR (align_corners and half_pixel_centers false), when its index arithmetic is
   exactly the repeat; and any other chain of RESHAPE / TILE / BROADCAST_TO from a 3-D / 4-D tensor back
   to its rank (Keras 3 `UpSampling2D` with a fixed batch: RESHAPE to rank 5 -> TILE -> RESHAPE merging
   one axis and splitting the next -> TILE -> RESHAPE) when it moves the elements exactly as
   RESIZE_NEAREST_NEIGHBOR does (checked by running the chain on the element indices);
5. identity QUANTIZE (same scale and zero point), RESHAPE to the same shape, and RESHAPE -> RESHAPE;
6. a standalone RELU / RELU6 / RELU_N1_TO_1 fused into its producer when the clamp is the same bytes;
7. PAD (zero-point padding) -> VALID conv merged into one SAME conv when the paddings are SAME's;
8. an op the converter left in float inside an 8-bit model: DEQUANTIZE (int8/uint8, per tensor) -> float32
   elementwise ops (unary, or binary with a scalar float constant) -> QUANTIZE (to int8/uint8), the float
   tensors read by the next op only, is a function of the input byte: folded into the pseudo-op
   MPYML_LUT8 (inputs: x and a constant [256] table of the output type, entry b the output for input byte
   b; lowered to the engine's LUT in lower/fold.py). The table is tflite-micro's own output for the
   sub-graph fed all 256 values, so it is exact by construction; when tflite-micro cannot run the chain
   it is left for unsupported_report.

and `unsupported_report(model, supported)`: one message naming every op mpyml cannot run (name, count,
op indices), a float model, ops left in float inside an int8 model, CUSTOM ops by their custom code.

Op indices: an `Operator` of the cleaned model keeps in `.index` the index of the op of the original
.tflite it comes from (the first one of a fused group), so messages point into the file the user has;
its position in `operators` is its new place. Tensor indices are renumbered (`.index` = position).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from . import quantize
from .tflite_model import ACTIVATION, PADDING, Operator, Tensor, TFLiteModel

__all__ = ["cleanup", "unsupported_report"]

_ACT_CODE = {v: k for k, v in ACTIVATION.items()}          # "RELU" -> 1
_PAD_CODE = {v: k for k, v in PADDING.items()}             # "SAME" -> 0
_INT_TYPES = {"INT32": np.int32, "INT64": np.int64, "INT16": np.int16, "BOOL": np.bool_}
_FUSED_ACTS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
# ops whose int8 kernels clamp to CalculateActivationRangeQuantized(fused activation, output)
_FUSABLE = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "AVERAGE_POOL_2D",
            "MAX_POOL_2D"}
_STANDALONE_ACTS = {"RELU": "RELU", "RELU6": "RELU6", "RELU_N1_TO_1": "RELU_N1_TO_1"}
# ops never dropped even when nothing reads their outputs
_STATEFUL = {"ASSIGN_VARIABLE", "VAR_HANDLE", "READ_VARIABLE", "CALL_ONCE", "WHILE", "IF", "CALL"}
_UNARY_SAME_SHAPE = {
    "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LOGISTIC", "TANH", "QUANTIZE", "DEQUANTIZE", "ELU",
    "HARD_SWISH", "LEAKY_RELU", "ABS", "NEG", "SQRT", "RSQRT", "EXP", "LOG", "CAST", "SOFTMAX", "LOG_SOFTMAX",
    "L2_NORMALIZATION", "GELU", "SQUARE", "SIN", "COS", "FLOOR", "CEIL", "ROUND", "SIGN",
}
_BINARY_BROADCAST = {"ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "PRELU", "POW",
                     "FLOOR_DIV", "FLOOR_MOD"}
_REDUCERS = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY", "REDUCE_ALL"}


# ------------------------------------------------------------------ working graph

@dataclass(eq=False)
class _Op:
    op: str
    version: int
    inputs: list[int]
    outputs: list[int]
    options: dict
    orig: list[int] = field(default_factory=list)      # indices of the original ops it stands for


class _Graph:
    def __init__(self, model: TFLiteModel) -> None:
        self.tensors: list[Tensor] = [dataclasses.replace(t, shape=tuple(int(d) for d in t.shape))
                                      for t in model.tensors]
        self.ops: list[_Op] = [_Op(o.op, o.version, list(o.inputs), list(o.outputs), dict(o.options), [o.index])
                               for o in model.operators]
        self.inputs = list(model.inputs)
        self.outputs = list(model.outputs)
        self.description = model.description

    # ---- queries
    def t(self, i: int) -> Tensor:
        return self.tensors[i]

    def const(self, i: int) -> np.ndarray | None:
        return None if i < 0 else self.tensors[i].data

    def producer(self, ti: int) -> _Op | None:
        return next((o for o in self.ops if ti in o.outputs), None)

    def consumers(self, ti: int) -> list[_Op]:
        return [o for o in self.ops if ti in o.inputs]

    def is_graph_io(self, ti: int) -> bool:
        return ti in self.outputs or ti in self.inputs

    def sole_consumer(self, ti: int) -> _Op | None:
        """The only op reading `ti`, if exactly one does and `ti` is not a model input/output."""
        if self.is_graph_io(ti):
            return None
        cs = self.consumers(ti)
        return cs[0] if len(cs) == 1 and cs[0].inputs.count(ti) == 1 else None

    # ---- edits
    def new_tensor(self, name: str, shape: tuple[int, ...], like: Tensor | None = None, dtype: str = "INT8",
                   data: np.ndarray | None = None) -> int:
        i = len(self.tensors)
        if like is not None:
            self.tensors.append(Tensor(i, name, tuple(shape), like.dtype, None, like.scales.copy(),
                                       like.zero_points.copy(), like.quantized_dimension))
        else:
            self.tensors.append(Tensor(i, name, tuple(shape), dtype, data, np.zeros(0, np.float32),
                                       np.zeros(0, np.int64), 0))
        return i

    def const_i32(self, name: str, values: list[int] | tuple[int, ...]) -> int:
        arr = np.asarray(values, dtype=np.int32)
        return self.new_tensor(name, arr.shape, dtype="INT32", data=arr)

    def replace_uses(self, old: int, new: int) -> None:
        for o in self.ops:
            o.inputs = [new if i == old else i for i in o.inputs]

    def remove(self, *ops: _Op) -> None:
        ids = {id(o) for o in ops}
        self.ops = [o for o in self.ops if id(o) not in ids]

    def replace(self, old: list[_Op], new: list[_Op]) -> None:
        """Put `new` where the last of `old` was, and drop `old`."""
        ids = {id(o) for o in old}
        pos = max(k for k, o in enumerate(self.ops) if id(o) in ids)
        self.ops[pos + 1:pos + 1] = new
        self.remove(*old)

    def bypass(self, op: _Op) -> bool:
        """Drop a unary op whose output equals its input (same shape, type, quantization)."""
        x, y = op.inputs[0], op.outputs[0]
        if y not in self.outputs:
            self.remove(op)
            self.replace_uses(y, x)
            return True
        p = self.producer(x)
        if p is not None and not self.is_graph_io(x) and [c is op for c in self.consumers(x)] == [True]:
            p.outputs = [y if i == x else i for i in p.outputs]
            self.remove(op)
            return True
        return False

    # ---- result
    def to_model(self) -> TFLiteModel:
        self._drop_dead()
        used: list[int] = []
        seen: set[int] = set()
        for i in [*self.inputs, *(i for o in self.ops for i in o.inputs + o.outputs), *self.outputs]:
            if i >= 0 and i not in seen:
                seen.add(i)
                used.append(i)
        used.sort()
        remap = {old: new for new, old in enumerate(used)}
        tensors = [dataclasses.replace(self.tensors[old], index=new) for new, old in enumerate(used)]
        ops = [Operator(o.orig[0] if o.orig else -1, o.op, o.version, [remap[i] if i >= 0 else -1 for i in o.inputs],
                        [remap[i] for i in o.outputs], dict(o.options)) for o in self.ops]
        return TFLiteModel(tensors, ops, [remap[i] for i in self.inputs], [remap[i] for i in self.outputs],
                           self.description)

    def _drop_dead(self) -> None:
        while True:
            read = {i for o in self.ops for i in o.inputs} | set(self.outputs)
            dead = [o for o in self.ops if o.op not in _STATEFUL and not o.op.startswith("CUSTOM:")
                    and not any(i in read for i in o.outputs)]
            if not dead:
                return
            self.remove(*dead)


# ------------------------------------------------------------------ helpers

def _same_quant(a: Tensor, b: Tensor) -> bool:
    return (a.dtype == b.dtype and len(a.scales) == len(b.scales) and len(a.zero_points) == len(b.zero_points)
            and bool(np.all(np.asarray(a.scales, np.float32) == np.asarray(b.scales, np.float32)))
            and bool(np.all(a.zero_points == b.zero_points)))


def _pad_out(padding: str, size: int, k: int, stride: int, dil: int) -> tuple[int, int]:
    """TFLite ComputeOutSize + ComputePaddingWithOffset: (output size, leading padding)."""
    eff = (k - 1) * dil + 1
    out = (size + stride - 1) // stride if padding == "SAME" else (size + stride - eff) // stride
    total = max((out - 1) * stride + eff - size, 0)
    return out, total // 2


def _ops_text(idx: list[int]) -> str:
    idx = sorted(set(i for i in idx if i >= 0))
    if not idx:
        return "new ops"
    if len(idx) == 1:
        return f"op #{idx[0]}"
    if idx == list(range(idx[0], idx[-1] + 1)):
        return f"ops #{idx[0]}-#{idx[-1]}"
    return "ops " + ", ".join(f"#{i}" for i in idx)


def _shape_text(s: tuple[int, ...] | list[int]) -> str:
    return "[" + ",".join(str(int(d)) for d in s) + "]"


def _int_list(a: np.ndarray | None) -> list[int] | None:
    return None if a is None else [int(v) for v in np.asarray(a).reshape(-1)]


def _resolve_shape(target: list[int], n_elems: int) -> tuple[int, ...] | None:
    """RESHAPE's shape with one -1 stretched to fit `n_elems` elements, or None if it cannot fit."""
    if target.count(-1) > 1 or any(d < -1 for d in target):
        return None
    known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
    if -1 in target:
        if known == 0 or n_elems % known:
            return None
        target = [n_elems // known if d == -1 else d for d in target]
    elif known != n_elems:
        return None
    return tuple(target)


def _axis(a: int, rank: int) -> int:
    return a + rank if a < 0 else a


# ------------------------------------------------------------------ 1. constant folding + shape repair

def _strided_slice(x: np.ndarray, begin: list[int], end: list[int], strides: list[int],
                   opts: dict) -> np.ndarray | None:
    if opts.get("ellipsisMask", 0) or opts.get("newAxisMask", 0):
        return None
    bm, em, sm = int(opts.get("beginMask", 0)), int(opts.get("endMask", 0)), int(opts.get("shrinkAxisMask", 0))
    idx: list[object] = []
    for d in range(len(begin)):
        b, e, s = begin[d], end[d], strides[d]
        if s == 0:
            return None
        if opts.get("offset", False):
            e = b + e
        if sm >> d & 1:
            n = x.shape[d]
            bb = b + n if b < 0 else b
            if not 0 <= bb < n:
                return None
            idx.append(bb)
        else:
            idx.append(slice(None if bm >> d & 1 else b, None if em >> d & 1 else e, s))
    return np.asarray(x[tuple(idx)])


def _eval_const(g: _Graph, op: _Op) -> np.ndarray | None:
    """The value of an int op over constants (numpy, same integer semantics), or None if not foldable."""
    vals = [g.const(i) for i in op.inputs]
    o = op.options
    name = op.op
    x = vals[0] if vals else None
    try:
        if name == "SHAPE":
            return np.asarray(g.t(op.inputs[0]).shape, dtype=np.int64)
        if any(v is None for v, i in zip(vals, op.inputs, strict=True) if i >= 0):
            return None
        assert x is not None
        if name == "STRIDED_SLICE":
            return _strided_slice(x, *(_int_list(v) or [] for v in vals[1:4]), o)
        if name == "PACK":
            return np.stack(vals, axis=int(o.get("axis", 0)))
        if name == "CONCATENATION":
            if o.get("fusedActivationFunction", 0):
                return None
            return np.concatenate([np.atleast_1d(v) for v in vals], axis=int(o.get("axis", 0)))
        if name == "GATHER":
            if o.get("batchDims", 0):
                return None
            return np.take(x, vals[1], axis=int(o.get("axis", 0)))
        if name == "CAST":
            return x
        if name == "RESHAPE":
            tgt = _int_list(vals[1]) if len(vals) > 1 else o.get("newShape")
            shape = _resolve_shape(list(tgt), int(x.size)) if tgt is not None else None
            return None if shape is None else x.reshape(shape)
        if name == "EXPAND_DIMS":
            return np.expand_dims(x, _axis(int(np.asarray(vals[1]).reshape(-1)[0]), x.ndim + 1))
        if name == "SQUEEZE":
            dims = o.get("squeezeDims") or None
            return np.squeeze(x, axis=tuple(_axis(int(d), x.ndim) for d in dims) if dims else None)
        if name in ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "FLOOR_DIV"):
            if o.get("fusedActivationFunction", 0):
                return None
            a, b = vals[0], vals[1]
            assert b is not None
            if name == "FLOOR_DIV":
                return None if np.any(b == 0) else np.floor_divide(a, b)
            fn = {"ADD": np.add, "SUB": np.subtract, "MUL": np.multiply, "MAXIMUM": np.maximum,
                  "MINIMUM": np.minimum}[name]
            return fn(a, b)
        if name in ("REDUCE_PROD", "SUM"):
            axes = tuple(_axis(a, x.ndim) for a in (_int_list(vals[1]) or []))
            fn = np.prod if name == "REDUCE_PROD" else np.sum
            return fn(x, axis=axes, keepdims=bool(o.get("keepDims", False)))
        if name == "TILE":
            return np.tile(x, _int_list(vals[1]))
        if name == "TRANSPOSE":
            return np.transpose(x, _int_list(vals[1]))
        if name == "SLICE":
            b, s = _int_list(vals[1]) or [], _int_list(vals[2]) or []
            return x[tuple(slice(bb, None if ss == -1 else bb + ss) for bb, ss in zip(b, s, strict=True))]
        if name == "FILL":
            return np.full(_int_list(x) or [], vals[1])
    except (ValueError, IndexError, TypeError):
        return None
    return None


_FOLDABLE = {"SHAPE", "STRIDED_SLICE", "PACK", "CONCATENATION", "GATHER", "CAST", "RESHAPE", "EXPAND_DIMS",
             "SQUEEZE", "ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "FLOOR_DIV", "REDUCE_PROD", "SUM", "TILE",
             "TRANSPOSE", "SLICE", "FILL"}


def _foldable(g: _Graph, op: _Op) -> bool:
    if op.op not in _FOLDABLE or len(op.outputs) != 1 or op.outputs[0] in g.outputs:
        return False
    out = g.t(op.outputs[0])
    if out.dtype not in _INT_TYPES or len(out.scales):
        return False
    if op.op == "SHAPE":
        return True
    return all(g.t(i).dtype in _INT_TYPES and not len(g.t(i).scales) for i in op.inputs if i >= 0)


def _infer_shape(g: _Graph, op: _Op) -> tuple[int, ...] | None:
    """Output 0 shape from the current input shapes (TFLite's shape rules), or None if unknown."""
    s = [g.t(i).shape if i >= 0 else None for i in op.inputs]
    c = [g.const(i) for i in op.inputs]
    o = op.options
    name = op.op
    x = s[0] if s else None
    try:
        if name in _UNARY_SAME_SHAPE:
            return x
        if name in _BINARY_BROADCAST:
            return tuple(int(d) for d in np.broadcast_shapes(s[0], s[1]))
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D") and x is not None:
            if len(x) != 4:
                return None
            pad = PADDING.get(o.get("padding", 1), "VALID")
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                f = s[1]
                assert f is not None
                kh, kw, ch = f[1], f[2], (f[0] if name == "CONV_2D" else f[3])
                dh, dw = int(o.get("dilationHFactor", 1)), int(o.get("dilationWFactor", 1))
            else:
                kh, kw, ch, dh, dw = int(o.get("filterHeight", 1)), int(o.get("filterWidth", 1)), x[3], 1, 1
            oh, _ = _pad_out(pad, x[1], kh, int(o.get("strideH", 1)), dh)
            ow, _ = _pad_out(pad, x[2], kw, int(o.get("strideW", 1)), dw)
            return (x[0], oh, ow, ch)
        if name == "FULLY_CONNECTED" and x is not None and s[1] is not None:
            units, depth = s[1]
            if o.get("keepNumDims", False):
                return (*x[:-1], units)
            n = int(np.prod(x))
            return (n // depth, units) if n % depth == 0 else None
        if name == "RESHAPE" and x is not None:
            tgt = _int_list(c[1]) if len(c) > 1 else o.get("newShape")
            if not tgt:
                return None
            return _resolve_shape(list(tgt), int(np.prod(x, dtype=np.int64)))
        if name == "EXPAND_DIMS" and x is not None and c[1] is not None:
            a = _axis(int(np.asarray(c[1]).reshape(-1)[0]), len(x) + 1)
            return (*x[:a], 1, *x[a:])
        if name == "SQUEEZE" and x is not None:
            dims = {_axis(int(d), len(x)) for d in (o.get("squeezeDims") or [])}
            return tuple(d for k, d in enumerate(x) if not ((k in dims) if dims else d == 1))
        if name == "TILE" and x is not None and c[1] is not None:
            return tuple(int(d) * int(m) for d, m in zip(x, c[1].reshape(-1), strict=True))
        if name in ("PAD", "PADV2", "MIRROR_PAD") and x is not None and c[1] is not None:
            p = c[1].reshape(len(x), 2)
            return tuple(int(d + p[k, 0] + p[k, 1]) for k, d in enumerate(x))
        if name in _REDUCERS and x is not None and c[1] is not None:
            axes = {_axis(int(a), len(x)) for a in c[1].reshape(-1)}
            if o.get("keepDims", False):
                return tuple(1 if k in axes else d for k, d in enumerate(x))
            return tuple(d for k, d in enumerate(x) if k not in axes)
        if name in ("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR") and x is not None and c[1] is not None:
            h, w = (int(v) for v in c[1].reshape(-1))
            return (x[0], h, w, x[3])
        if name == "CONCATENATION" and x is not None:
            a = _axis(int(o.get("axis", 0)), len(x))
            total = sum(int(sh[a]) for sh in s if sh is not None)
            return (*x[:a], total, *x[a + 1:])
        if name == "TRANSPOSE" and x is not None and c[1] is not None:
            return tuple(x[int(p)] for p in c[1].reshape(-1))
        if name in ("SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND") and x is not None and c[1] is not None \
                and c[2] is not None:
            blk = [int(v) for v in c[1].reshape(-1)]
            pc = c[2].reshape(len(blk), 2)
            prod = int(np.prod(blk))
            if name == "SPACE_TO_BATCH_ND":
                sp = [(x[1 + k] + int(pc[k, 0]) + int(pc[k, 1])) // b for k, b in enumerate(blk)]
                return (x[0] * prod, *sp, *x[1 + len(blk):])
            sp = [x[1 + k] * b - int(pc[k, 0]) - int(pc[k, 1]) for k, b in enumerate(blk)]
            return (x[0] // prod, *sp, *x[1 + len(blk):])
    except (ValueError, TypeError, IndexError, AssertionError):
        return None
    return None


def _fold_constants(g: _Graph, notes: list[str]) -> bool:
    """Fold int shape arithmetic over constants; repair static shapes from folded RESHAPE shapes."""
    folded: dict[int, _Op] = {}          # tensor made constant -> the op that computed it
    changed_shape: set[int] = set()
    repaired: list[str] = []
    for op in list(g.ops):
        if op.op == "RESHAPE" or any(i in changed_shape for i in op.inputs):
            # a folded RESHAPE shape wins over the static output shape (TFLite resizes to it; the converter
            # writes a dynamic dimension as 1), and the change is carried to the ops after it
            new = _infer_shape(g, op)
            t = g.t(op.outputs[0])
            if new is not None and tuple(new) != t.shape and int(np.prod(new)) > 0:
                repaired.append(f"tensor '{t.name}' {_shape_text(t.shape)}→{_shape_text(new)} "
                                f"(output of {op.op} {_ops_text(op.orig)})")
                g.tensors[op.outputs[0]] = dataclasses.replace(t, shape=tuple(int(d) for d in new))
                changed_shape.add(op.outputs[0])
        if _foldable(g, op):
            val = _eval_const(g, op)
            if val is None:
                continue
            out = g.t(op.outputs[0])
            npt = _INT_TYPES[out.dtype]
            val = np.array(val, dtype=npt, order="C")
            g.tensors[op.outputs[0]] = dataclasses.replace(out, data=val, shape=tuple(int(d) for d in val.shape))
            folded[op.outputs[0]] = op
            g.remove(op)
    if not folded and not repaired:
        return False
    # one note per op that reads a folded constant
    for op in g.ops:
        srcs = [i for i in op.inputs if i in folded]
        if not srcs:
            continue
        chain: list[_Op] = []
        todo = list(srcs)
        while todo:
            p = folded.get(todo.pop())
            if p is not None and all(p is not q for q in chain):
                chain.append(p)
                todo += [i for i in p.inputs if i in folded]
        chain.sort(key=lambda p: p.orig[0] if p.orig else -1)
        names = "→".join([p.op for p in chain] + [op.op])
        idx = [i for p in chain for i in p.orig] + op.orig
        if op.op == "RESHAPE":
            what = f"RESHAPE {_shape_text(g.t(op.inputs[0]).shape)}→{_shape_text(g.t(op.outputs[0]).shape)}"
        else:
            vals = "; ".join(str(_int_list(g.const(i))) for i in srcs)
            what = f"constant {vals} read by {op.op}"
        notes.append(f"folded {names} chain ({_ops_text(idx)}) into {what}")
    for r in repaired:
        notes.append(f"repaired static shape of {r}: the converter wrote a dynamic dimension as 1")
    return True


# ------------------------------------------------------------------ 2. EXPAND_DIMS / SQUEEZE -> RESHAPE

def _to_reshape(g: _Graph, op: _Op) -> None:
    y = g.t(op.outputs[0])
    op.inputs = [op.inputs[0], g.const_i32(f"{y.name}/shape", y.shape)]
    op.op, op.version, op.options = "RESHAPE", 1, {}


def _expand_squeeze(g: _Graph, notes: list[str]) -> bool:
    changed = False
    for op in list(g.ops):
        if op.op not in ("EXPAND_DIMS", "SQUEEZE"):
            continue
        x, y = g.t(op.inputs[0]), g.t(op.outputs[0])
        if x.is_const or not _same_quant(x, y) or int(np.prod(x.shape)) != int(np.prod(y.shape)):
            continue
        name = op.op
        _to_reshape(g, op)
        notes.append(f"{name} {_ops_text(op.orig)} → RESHAPE {_shape_text(x.shape)}→{_shape_text(y.shape)}")
        changed = True
    return changed


# ------------------------------------------------------------------ 5. identities

def _identities(g: _Graph, notes: list[str]) -> bool:
    changed = False
    for op in list(g.ops):
        if op not in g.ops or not op.inputs or len(op.outputs) != 1:
            continue
        x_i, y_i = op.inputs[0], op.outputs[0]
        if x_i < 0:
            continue
        x, y = g.t(x_i), g.t(y_i)
        if op.op in ("RESHAPE", "QUANTIZE") and not x.is_const and x.shape == y.shape and _same_quant(x, y):
            if g.bypass(op):
                what = "RESHAPE to the same shape" if op.op == "RESHAPE" else \
                    f"identity QUANTIZE ({x.dtype.lower()}, same scale and zero point)"
                notes.append(f"dropped {what} {_shape_text(x.shape)} ({_ops_text(op.orig)})")
                changed = True
                continue
        if op.op == "RESHAPE":
            p = g.producer(x_i)
            if p is not None and p.op == "RESHAPE" and g.sole_consumer(x_i) is op \
                    and _same_quant(g.t(p.inputs[0]), y):
                a = g.t(p.inputs[0])
                op.inputs = [p.inputs[0], g.const_i32(f"{y.name}/shape", y.shape)]
                op.orig = p.orig + op.orig
                g.remove(p)
                path = f"{_shape_text(a.shape)}→{_shape_text(x.shape)}→{_shape_text(y.shape)}"
                if a.shape == y.shape and not a.is_const and g.bypass(op):
                    notes.append(f"dropped RESHAPE→RESHAPE ({_ops_text(op.orig)}): {path} is the identity")
                else:
                    notes.append(f"collapsed RESHAPE→RESHAPE ({_ops_text(op.orig)}) {path} into one RESHAPE")
                changed = True
    return changed


# ------------------------------------------------------------------ 3. dilated convolutions

def _next(g: _Graph, ti: int, names: tuple[str, ...]) -> _Op | None:
    c = g.sole_consumer(ti)
    return c if c is not None and c.op in names and c.inputs[0] == ti else None


def _dilated(g: _Graph, notes: list[str]) -> bool:
    for s in list(g.ops):
        if s.op != "SPACE_TO_BATCH_ND" or s not in g.ops:
            continue
        if _fuse_dilated(g, s, notes):
            return True
    return False


def _fuse_dilated(g: _Graph, s: _Op, notes: list[str]) -> bool:
    block, pads = _int_list(g.const(s.inputs[1])), _int_list(g.const(s.inputs[2]))
    xi = s.inputs[0]
    x = g.t(xi)
    if block is None or pads is None or len(block) not in (1, 2) or len(x.shape) != len(block) + 2:
        return False
    chain = [s]
    r1 = r2 = None
    cur = s.outputs[0]
    nxt = _next(g, cur, ("RESHAPE", "CONV_2D", "DEPTHWISE_CONV_2D"))
    if nxt is not None and nxt.op == "RESHAPE":
        r1 = nxt
        chain.append(r1)
        cur = r1.outputs[0]
        nxt = _next(g, cur, ("CONV_2D", "DEPTHWISE_CONV_2D"))
    if nxt is None or nxt.op == "RESHAPE":
        return False
    c = nxt
    chain.append(c)
    cur = c.outputs[0]
    nxt = _next(g, cur, ("RESHAPE", "BATCH_TO_SPACE_ND"))
    if nxt is not None and nxt.op == "RESHAPE":
        r2 = nxt
        chain.append(r2)
        nxt = _next(g, r2.outputs[0], ("BATCH_TO_SPACE_ND",))
    if nxt is None:
        return False
    b = nxt
    chain.append(b)
    if _int_list(g.const(b.inputs[1])) != block:
        return False
    crops = _int_list(g.const(b.inputs[2]))
    if crops is None or len(crops) != 2 * len(block):
        return False
    o = c.options
    if (int(o.get("strideH", 1)), int(o.get("strideW", 1)), int(o.get("dilationHFactor", 1)),
            int(o.get("dilationWFactor", 1))) != (1, 1, 1, 1):
        return False
    yi = b.outputs[0]
    y = g.t(yi)
    # quantization is carried unchanged through the data-movement ops
    if not (_same_quant(x, g.t(s.outputs[0])) and _same_quant(g.t(c.outputs[0]), y)
            and (r1 is None or _same_quant(g.t(r1.inputs[0]), g.t(r1.outputs[0])))
            and (r2 is None or _same_quant(g.t(r2.inputs[0]), g.t(r2.outputs[0])))):
        return False
    f = g.t(c.inputs[1])
    if len(f.shape) != 4:
        return False
    kh, kw = f.shape[1], f.shape[2]
    n = x.shape[0]
    ch_out = f.shape[0] if c.op == "CONV_2D" else f.shape[3]
    if len(block) == 2:
        if r1 is not None or r2 is not None:
            return False
        dims = [(x.shape[1], kh, block[0], pads[0], pads[1], crops[0], crops[1]),
                (x.shape[2], kw, block[1], pads[2], pads[3], crops[2], crops[3])]
        axis = None
    else:
        if r1 is None or r2 is None:
            return False
        w, ch = x.shape[1], x.shape[2]
        ws = (w + pads[0] + pads[1]) // block[0] if block[0] > 0 else 0
        e = g.t(r1.outputs[0]).shape
        if len(e) != 4 or e[3] != ch:
            return False
        if e[1:3] == (1, ws):
            axis = 2
        elif e[1:3] == (ws, 1):
            axis = 1
        else:
            return False
        one = (1, kh if axis == 2 else kw, 1, 0, 0, 0, 0)
        line = (w, kw if axis == 2 else kh, block[0], pads[0], pads[1], crops[0], crops[1])
        dims = [one, line] if axis == 2 else [line, one]
        if g.t(r1.inputs[0]).shape[1:] != (ws, ch):
            return False
        r2_in, r2_out = g.t(r2.inputs[0]).shape, g.t(r2.outputs[0]).shape
        if len(r2_in) != 4 or (r2_in[1] if axis == 2 else r2_in[2]) != 1 \
                or r2_out[1:] != ((r2_in[2] if axis == 2 else r2_in[1]), r2_in[3]):
            return False
    mode = PADDING.get(o.get("padding", 1), "?")
    if mode not in _PAD_CODE:
        return False
    target: list[tuple[int, int]] = []
    for size, k, d, pb, pa, cb, ca in dims:
        if d < 1 or (size + pb + pa) % d or min(pb, pa, cb, ca) < 0:
            return False
        out_s, p_in = _pad_out(mode, (size + pb + pa) // d, k, 1, 1)
        if out_s < 1:
            return False
        target.append((out_s * d - cb - ca, pb + d * p_in - cb))
    new_mode = next((m for m in (mode, "VALID" if mode == "SAME" else "SAME")
                     if all(_pad_out(m, dm[0], dm[1], 1, dm[2]) == tg for dm, tg in zip(dims, target, strict=True))),
                    None)
    if new_mode is None:
        return False
    (hy, _), (wy, _) = target
    if len(block) == 2:
        if y.shape != (n, hy, wy, ch_out):
            return False
    elif y.shape != (n, wy if axis == 2 else hy, ch_out):
        return False
    dh, dw = dims[0][2], dims[1][2]
    opts = dict(o, dilationHFactor=dh, dilationWFactor=dw, padding=_PAD_CODE[new_mode])
    idx = [i for op in chain for i in op.orig]
    if len(block) == 2:
        new_ops = [_Op(c.op, c.version, [xi, *c.inputs[1:]], [yi], opts, idx)]
    else:
        x4 = g.new_tensor(f"{x.name}/4d", (n, 1, x.shape[1], x.shape[2]) if axis == 2
                          else (n, x.shape[1], 1, x.shape[2]), like=x)
        y4 = g.new_tensor(f"{y.name}/4d", (n, hy, wy, ch_out), like=y)
        new_ops = [_Op("RESHAPE", 1, [xi, g.const_i32(f"{x.name}/4d/shape", g.t(x4).shape)], [x4], {}, idx[:1]),
                   _Op(c.op, c.version, [x4, *c.inputs[1:]], [y4], opts, idx),
                   _Op("RESHAPE", 1, [y4, g.const_i32(f"{y.name}/shape", y.shape)], [yi], {}, idx[-1:])]
    g.replace(chain, new_ops)
    names = "→".join(op.op for op in chain)
    dil = (dh, dw)
    notes.append(f"fused {names} ({_ops_text(idx)}) into {c.op} dilation {dil} {new_mode} padding"
                 + (" (1-D, between RESHAPEs)" if len(block) == 1 else ""))
    return True


# ------------------------------------------------------------------ 7. PAD -> VALID conv

def _pad_into_conv(g: _Graph, notes: list[str]) -> bool:
    for p in list(g.ops):
        if p.op not in ("PAD", "PADV2") or p not in g.ops:
            continue
        x, t = g.t(p.inputs[0]), g.t(p.outputs[0])
        pads = _int_list(g.const(p.inputs[1]))
        c = _next(g, p.outputs[0], ("CONV_2D", "DEPTHWISE_CONV_2D"))
        if c is None or pads is None or len(x.shape) != 4 or len(pads) != 8 or pads[0:2] != [0, 0] \
                or pads[6:8] != [0, 0] or not _same_quant(x, t) or len(t.zero_points) != 1:
            continue
        if p.op == "PADV2":
            v = g.const(p.inputs[2]) if len(p.inputs) > 2 else None
            if v is None or v.size != 1 or int(v.reshape(-1)[0]) != t.zero_point:
                continue
        o = c.options
        if PADDING.get(o.get("padding", 1)) != "VALID":
            continue
        f, out = g.t(c.inputs[1]), g.t(c.outputs[0])
        if len(f.shape) != 4 or len(out.shape) != 4:
            continue
        dims = [(x.shape[1], f.shape[1], int(o.get("strideH", 1)), int(o.get("dilationHFactor", 1)), pads[2],
                 out.shape[1]),
                (x.shape[2], f.shape[2], int(o.get("strideW", 1)), int(o.get("dilationWFactor", 1)), pads[4],
                 out.shape[2])]
        if any(_pad_out("VALID", size + pads[2 + 2 * k] + pads[3 + 2 * k], kk, st, dd)[0] != oo
               for k, (size, kk, st, dd, _, oo) in enumerate(dims)):
            continue
        if not all(_pad_out("SAME", size, kk, st, dd) == (oo, before) for size, kk, st, dd, before, oo in dims):
            continue
        c.inputs = [p.inputs[0], *c.inputs[1:]]
        c.options = dict(o, padding=_PAD_CODE["SAME"])
        c.orig = p.orig + c.orig
        g.remove(p)
        notes.append(f"merged {p.op}→{c.op} ({_ops_text(c.orig)}) into {c.op} SAME padding "
                     f"(paddings {pads[2:6]} are exactly SAME's)")
        return True
    return False


# ------------------------------------------------------------------ 4. UpSampling -> RESIZE_NEAREST_NEIGHBOR

@dataclass(eq=False)
class _Unit:
    """One repeat: RESHAPE r1 (insert a 1 at axis+1) -> TILE t (×f there) -> RESHAPE r2 (merge axis, axis+1)."""

    axis: int
    f: int
    x: int                 # r1's input
    out: int               # r2's output
    r1: _Op
    t: _Op
    r2: _Op


def _unit(g: _Graph, t: _Op) -> _Unit | None:
    if t.op != "TILE":
        return None
    r1 = g.producer(t.inputs[0])
    if r1 is None or r1.op != "RESHAPE" or g.is_graph_io(t.inputs[0]):
        return None
    # r1's output may feed several TILEs (the converter shares it between UpSampling layers), nothing else
    if any(c.op != "TILE" or c.inputs[0] != t.inputs[0] for c in g.consumers(t.inputs[0])):
        return None
    x, e = g.t(r1.inputs[0]), g.t(r1.outputs[0])
    if len(e.shape) != len(x.shape) + 1 or x.is_const:
        return None
    a = next((k for k in range(1, len(e.shape)) if e.shape[:k] + e.shape[k + 1:] == x.shape and e.shape[k] == 1),
             None)
    mult = _int_list(g.const(t.inputs[1]))
    if a is None or mult is None or len(mult) != len(e.shape):
        return None
    f = mult[a]
    if f < 1 or any(m != 1 for k, m in enumerate(mult) if k != a):
        return None
    r2 = _next(g, t.outputs[0], ("RESHAPE",))
    if r2 is None:
        return None
    y = g.t(r2.outputs[0])
    want = (*x.shape[:a - 1], x.shape[a - 1] * f, *x.shape[a:])
    if y.shape != want or not all(_same_quant(x, g.t(i)) for i in (r1.outputs[0], t.outputs[0], r2.outputs[0])):
        return None
    return _Unit(a - 1, f, r1.inputs[0], r2.outputs[0], r1, t, r2)


def _unit_producing(g: _Graph, ti: int) -> _Unit | None:
    r2 = g.producer(ti)
    if r2 is None or r2.op != "RESHAPE":
        return None
    t = g.producer(r2.inputs[0])
    u = _unit(g, t) if t is not None else None
    return u if u is not None and u.out == ti else None


def _feeds_only_units(g: _Graph, ti: int, axis: int) -> bool:
    """Every reader of `ti` starts a repeat along another axis (which will absorb the repeat making `ti`)."""
    if g.is_graph_io(ti) or len(g.t(ti).shape) != 4:
        return False
    units = [_unit(g, t) for r in g.consumers(ti) for t in g.consumers(r.outputs[0])] \
        if all(r.op == "RESHAPE" for r in g.consumers(ti)) else [None]
    return bool(units) and all(u is not None and u.x == ti and u.axis != axis for u in units)


def _nearest_is_repeat(n_in: int, f: int) -> bool:
    """TFLite GetNearestNeighbor (no align_corners, no half-pixel) maps out y to y // f, in float32."""
    n_out = n_in * f
    scale = np.float32(n_in) / np.float32(n_out)
    ys = np.arange(n_out)
    got = np.minimum(np.floor(ys.astype(np.float32) * scale).astype(np.int64), n_in - 1)
    return bool(np.array_equal(got, ys // f))


def _upsample(g: _Graph, notes: list[str]) -> bool:
    for t in list(g.ops):
        u = _unit(g, t)
        if u is None:
            continue
        x = g.t(u.x)
        if len(x.shape) == 4 and _feeds_only_units(g, u.out, u.axis):
            continue                            # the repeat(s) reading it fold this one in
        factors = {u.axis: u.f}
        src = u.x
        chain = [u]
        p = _unit_producing(g, u.x) if len(x.shape) == 4 else None
        if p is not None and p.axis != u.axis and _feeds_only_units(g, u.x, p.axis):
            factors[p.axis] = p.f
            src = p.x
            chain = [p, u]
        xs, y = g.t(src), g.t(u.out)
        if len(xs.shape) == 4 and set(factors) <= {1, 2}:
            fh, fw = factors.get(1, 1), factors.get(2, 1)
            h, w = xs.shape[1], xs.shape[2]
            x4, y4 = src, u.out
        elif len(xs.shape) == 3 and set(factors) == {1}:
            fh, fw = factors[1], 1
            h, w = xs.shape[1], 1
        else:
            continue
        if not (_nearest_is_repeat(h, fh) and _nearest_is_repeat(w, fw)):
            continue
        if len(xs.shape) == 3:
            x4 = g.new_tensor(f"{xs.name}/4d", (xs.shape[0], h, 1, xs.shape[2]), like=xs)
            y4 = g.new_tensor(f"{y.name}/4d", (xs.shape[0], h * fh, 1, xs.shape[2]), like=y)
        all_ops = [op for c in chain for op in (c.r1, c.t, c.r2)]
        idx = sorted({i for op in all_ops for i in op.orig})
        size = g.const_i32(f"{y.name}/size", (h * fh, w * fw))
        resize = _Op("RESIZE_NEAREST_NEIGHBOR", 2, [x4, size], [y4], {"alignCorners": False, "halfPixelCenters": False},
                     idx)
        if x4 == src:
            new_ops = [resize]
        else:
            new_ops = [_Op("RESHAPE", 1, [src, g.const_i32(f"{xs.name}/4d/shape", g.t(x4).shape)], [x4], {},
                           idx[:1]),
                       resize,
                       _Op("RESHAPE", 1, [y4, g.const_i32(f"{y.name}/shape", y.shape)], [u.out], {}, idx[-1:])]
        # only this repeat's TILE and RESHAPE go now; shared ops before it die once nothing reads them
        g.replace([u.t, u.r2], new_ops)
        g._drop_dead()
        names = "→".join(op.op for op in all_ops)
        notes.append(f"replaced {names} ({_ops_text(idx)}: nearest-neighbour upsampling ×{fh}×{fw} as Keras 3 "
                     f"lowers UpSampling{len(xs.shape) - 2}D) by RESIZE_NEAREST_NEIGHBOR "
                     f"{_shape_text(xs.shape)}→{_shape_text(y.shape)}")
        return True
    return False


def _split_concat_repeat(g: _Graph, notes: list[str]) -> bool:
    """tf-keras UpSampling1D/2D: SPLIT of x into its T slices along an axis, CONCATENATION of s0 x k, s1 x k, ...
    along the same axis (2T or more inputs: one copy per slice plus a concat in groups of 31) -> one
    RESIZE_NEAREST_NEIGHBOR (rank 3: between RESHAPEs to [n, T, 1, c]) where TFLite's nearest-neighbour rule is
    exactly that repeat (_nearest_is_repeat)."""
    for c in g.ops:
        if c.op != "CONCATENATION" or c.options.get("fusedActivationFunction", 0) or len(c.inputs) < 2:
            continue
        sp = g.producer(c.inputs[0])
        if sp is None or sp.op != "SPLIT" or len(sp.inputs) != 2:
            continue
        ax_c, x_i, y_i = g.const(sp.inputs[0]), sp.inputs[1], c.outputs[0]
        x, y = g.t(x_i), g.t(y_i)
        rank = len(x.shape)
        if ax_c is None or ax_c.size != 1 or rank not in (3, 4) or len(y.shape) != rank or not _same_quant(x, y):
            continue
        axis = _axis(int(ax_c.reshape(-1)[0]), rank)
        n_parts = len(sp.outputs)
        if axis != _axis(int(c.options.get("axis", 0)), rank) or n_parts != x.shape[axis] or axis not in (1, 2) \
                or (rank == 3 and axis != 1) or len(c.inputs) % n_parts:
            continue
        k = len(c.inputs) // n_parts
        if c.inputs != [o for o in sp.outputs for _ in range(k)] or k < 2 or not _nearest_is_repeat(n_parts, k):
            continue
        if any(g.is_graph_io(o) or any(u is not c for u in g.consumers(o)) for o in sp.outputs):
            continue
        idx = sorted(set(sp.orig + c.orig))
        if rank == 4:
            h, w = x.shape[1], x.shape[2]
            size = g.const_i32(f"{y.name}/size", (h * k, w) if axis == 1 else (h, w * k))
            new_ops = [_Op("RESIZE_NEAREST_NEIGHBOR", 2, [x_i, size], [y_i],
                           {"alignCorners": False, "halfPixelCenters": False}, idx)]
        else:
            x4 = g.new_tensor(f"{x.name}/4d", (x.shape[0], n_parts, 1, x.shape[2]), like=x)
            y4 = g.new_tensor(f"{y.name}/4d", (x.shape[0], n_parts * k, 1, x.shape[2]), like=y)
            size = g.const_i32(f"{y.name}/size", (n_parts * k, 1))
            new_ops = [_Op("RESHAPE", 1, [x_i, g.const_i32(f"{x.name}/4d/shape", g.t(x4).shape)], [x4], {}, idx[:1]),
                       _Op("RESIZE_NEAREST_NEIGHBOR", 2, [x4, size], [y4],
                           {"alignCorners": False, "halfPixelCenters": False}, idx),
                       _Op("RESHAPE", 1, [y4, g.const_i32(f"{y.name}/shape", y.shape)], [y_i], {}, idx[-1:])]
        g.replace([sp, c], new_ops)
        notes.append(f"replaced SPLIT→CONCATENATION ({_ops_text(idx)}: each of {n_parts} slices ×{k}, as tf-keras "
                     f"lowers UpSampling) by RESIZE_NEAREST_NEIGHBOR {_shape_text(x.shape)}→{_shape_text(y.shape)}")
        return True
    return False


# Keras 3 UpSampling2D with a fixed batch: RESHAPE to rank 5/6 -> TILE (or BROADCAST_TO) -> RESHAPE ... with the
# merge of one axis and the split of the next in one RESHAPE. Matched by what the chain does to element
# indices: it must move them exactly as RESIZE_NEAREST_NEIGHBOR (TFLite GetNearestNeighbor) does.
_MOVES = ("RESHAPE", "TILE", "BROADCAST_TO")
_MAX_SIM_ELEMS = 1 << 22


def _simulate(g: _Graph, op: _Op, a: np.ndarray) -> np.ndarray | None:
    """What data-movement op `op` does to array `a` (its input 0), or None if not exactly known."""
    c = _int_list(g.const(op.inputs[1])) if len(op.inputs) > 1 and op.inputs[1] >= 0 else None
    if op.op == "RESHAPE":
        tgt = c if c is not None else op.options.get("newShape")
        shape = _resolve_shape(list(tgt), int(a.size)) if tgt else None
        return None if shape is None else a.reshape(shape)
    if c is None:
        return None
    if op.op == "TILE":
        return np.tile(a, c) if len(c) == a.ndim and min(c) >= 1 else None
    try:
        return np.broadcast_to(a, tuple(c)).copy() if min(c, default=1) >= 1 else None
    except ValueError:
        return None


def _nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """TFLite GetNearestNeighbor (no align_corners, no half-pixel centers), in float32 like the C++."""
    scale = np.float32(n_in) / np.float32(n_out)
    got = np.floor(np.arange(n_out).astype(np.float32) * scale).astype(np.int64)
    return np.minimum(got, n_in - 1)


def _move_step(g: _Graph, op: _Op, a: np.ndarray, quant: Tensor) -> np.ndarray | None:
    if op.op not in _MOVES or len(op.outputs) != 1 or not _same_quant(quant, g.t(op.outputs[0])):
        return None
    r = _simulate(g, op, a)
    return r if r is not None and r.shape == g.t(op.outputs[0]).shape and r.size <= _MAX_SIM_ELEMS else None


def _feeds_longer(g: _Graph, ti: int, cands: dict, reached: dict) -> bool:
    """Every reader of `ti` is a data-movement op needed only to make resize candidates further on."""
    def covered(t: int) -> bool:
        return t in cands or (t in reached and _feeds_longer(g, t, cands, reached))
    cs = g.consumers(ti)
    return not g.is_graph_io(ti) and bool(cs) and all(c.op in _MOVES and c.inputs[0] == ti and covered(c.outputs[0])
                                                      for c in cs)


def _upsample_chain(g: _Graph, notes: list[str]) -> bool:
    for first in list(g.ops):
        src = first.inputs[0] if first.op in _MOVES and first.inputs else -1
        if src < 0:
            continue
        xs = g.t(src)
        p = g.producer(src)
        if xs.is_const or len(xs.shape) not in (3, 4) or min(xs.shape) < 1 or p is not None and p.op in _MOVES \
                or int(np.prod(xs.shape)) > _MAX_SIM_ELEMS:
            continue
        base = np.arange(int(np.prod(xs.shape)), dtype=np.int32).reshape(xs.shape)
        n, h, w, ch = (*xs.shape[:2], 1, xs.shape[2]) if len(xs.shape) == 3 else xs.shape
        # every tensor the data-movement ops reading `src` make, with what they did to the element indices
        reached: dict[int, tuple[np.ndarray, list[_Op]]] = {}
        todo = [(src, base, [])]
        while todo and len(reached) < 64:
            ti, a, path = todo.pop()
            for c in g.consumers(ti):
                if c.inputs[0] != ti or c.outputs[0] in reached:
                    continue
                r = _move_step(g, c, a, xs)
                if r is not None:
                    reached[c.outputs[0]] = (r, [*path, c])
                    todo.append((c.outputs[0], r, [*path, c]))
        cands: dict[int, tuple[int, int]] = {}
        for ti, (r, path) in reached.items():
            y = g.t(ti)
            if len(y.shape) != len(xs.shape) or all(o.op == "RESHAPE" for o in path):
                continue
            n2, oh, ow, ch2 = (*y.shape[:2], 1, y.shape[2]) if len(y.shape) == 3 else y.shape
            if (n2, ch2) != (n, ch) or (oh, ow) == (h, w):
                continue
            want = base.reshape(n, h, w, ch)[:, _nearest_indices(h, oh)][:, :, _nearest_indices(w, ow)]
            if np.array_equal(r.reshape(want.shape), want):     # exactly RESIZE_NEAREST_NEIGHBOR of src
                cands[ti] = (oh, ow)
        for yi, (oh, ow) in cands.items():
            if _feeds_longer(g, yi, cands, reached):
                continue                        # a longer chain from src makes what its readers make
            y = g.t(yi)
            ops = reached[yi][1]
            idx = sorted({i for o in ops for i in o.orig})
            size = g.const_i32(f"{y.name}/size", (oh, ow))
            opts = {"alignCorners": False, "halfPixelCenters": False}
            if len(xs.shape) == 4:
                new_ops = [_Op("RESIZE_NEAREST_NEIGHBOR", 2, [src, size], [yi], opts, idx)]
            else:
                x4 = g.new_tensor(f"{xs.name}/4d", (n, h, 1, ch), like=xs)
                y4 = g.new_tensor(f"{y.name}/4d", (n, oh, 1, ch), like=y)
                new_ops = [_Op("RESHAPE", 1, [src, g.const_i32(f"{xs.name}/4d/shape", (n, h, 1, ch))], [x4], {},
                               idx[:1]),
                           _Op("RESIZE_NEAREST_NEIGHBOR", 2, [x4, size], [y4], opts, idx),
                           _Op("RESHAPE", 1, [y4, g.const_i32(f"{y.name}/shape", y.shape)], [yi], {}, idx[-1:])]
            # only the op making y goes now; the ones before it die once nothing reads them
            g.replace(ops[-1:], new_ops)
            g._drop_dead()
            names = "→".join(o.op for o in ops)
            how = f"×{oh // h}×{ow // w}" if oh % h == 0 and ow % w == 0 else "by its index map"
            notes.append(f"replaced {names} ({_ops_text(idx)}: nearest-neighbour upsampling {how} as Keras 3 "
                         f"lowers UpSampling{len(xs.shape) - 2}D with a fixed batch) by RESIZE_NEAREST_NEIGHBOR "
                         f"{_shape_text(xs.shape)}→{_shape_text(y.shape)}")
            return True
    return False

# ------------------------------------------------------------------ 6. standalone activations

def _fuse_relu(g: _Graph, notes: list[str]) -> bool:
    changed = False
    for r in list(g.ops):
        if r.op not in _STANDALONE_ACTS or r not in g.ops:
            continue
        xi, yi = r.inputs[0], r.outputs[0]
        x, y = g.t(xi), g.t(yi)
        if x.dtype != "INT8" or not _same_quant(x, y) or len(x.scales) != 1 or x.shape != y.shape:
            continue
        p = g.producer(xi)
        if p is None or p.op not in _FUSABLE or g.sole_consumer(xi) is not r or len(p.outputs) != 1:
            continue
        cur = ACTIVATION.get(int(p.options.get("fusedActivationFunction", 0)), "?")
        if cur not in _FUSED_ACTS:
            continue
        a = quantize.activation_range(cur, x.scale, x.zero_point)
        b = quantize.activation_range(_STANDALONE_ACTS[r.op], x.scale, x.zero_point)
        want = (max(a[0], b[0]), min(a[1], b[1]))
        if want[0] > want[1]:
            continue
        pick = next((act for act in dict.fromkeys((cur, r.op, *_FUSED_ACTS))
                     if quantize.activation_range(act, x.scale, x.zero_point) == want), None)
        if pick is None:
            continue
        p.options = dict(p.options, fusedActivationFunction=_ACT_CODE[pick])
        p.outputs = [yi]
        p.orig = p.orig + r.orig
        g.remove(r)
        notes.append(f"fused standalone {r.op} {_ops_text(r.orig)} into {p.op} {_ops_text(p.orig[:1])} "
                     f"(fused activation {cur} → {pick}; same int8 range {list(want)})")
        changed = True
    return changed


# ------------------------------------------------------------------ 8. float islands -> 8-bit lookup table

# float32 ops that act on each element alone (the binary ones with a scalar constant operand)
_LUT_UNARY = {"ELU", "TANH", "LOGISTIC", "EXP", "LOG", "ABS", "NEG", "SQRT", "RSQRT", "SQUARE", "RELU", "RELU6",
              "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU", "HARD_SWISH", "GELU", "SIN", "COS", "FLOOR", "CEIL",
              "ROUND", "SIGN"}
_LUT_BINARY = {"MUL", "ADD", "SUB", "DIV", "MAXIMUM", "MINIMUM", "POW", "SQUARED_DIFFERENCE", "PRELU",
               "FLOOR_DIV", "FLOOR_MOD"}
_LUT_BYTES = ("INT8", "UINT8")
_LUT_TABLES: dict[bytes, np.ndarray | None] = {}      # sub-model .tflite -> table (None: tflite-micro failed)
LUT_OP = "MPYML_LUT8"


def _per_tensor_byte(t: Tensor) -> bool:
    return t.dtype in _LUT_BYTES and len(t.scales) == 1 and len(t.zero_points) == 1


def _lut_chain(g: _Graph, d: _Op) -> list[_Op] | None:
    """DEQUANTIZE d -> float elementwise ops -> QUANTIZE, the float tensors read by the next op only."""
    x, f = g.t(d.inputs[0]), g.t(d.outputs[0])
    if not _per_tensor_byte(x) or f.dtype != "FLOAT32" or f.shape != x.shape:
        return None
    chain = [d]
    cur = d.outputs[0]
    while True:
        c = g.sole_consumer(cur)
        if c is None or len(c.outputs) != 1:
            return None
        out = g.t(c.outputs[0])
        if c.op == "QUANTIZE":
            if c.inputs != [cur] or not _per_tensor_byte(out) or out.shape != x.shape or len(chain) < 2:
                return None
            return [*chain, c]
        if out.dtype != "FLOAT32" or out.shape != x.shape:
            return None
        if c.op in _LUT_UNARY:
            if c.inputs != [cur]:
                return None
        elif c.op in _LUT_BINARY:
            if len(c.inputs) != 2 or cur not in c.inputs:
                return None
            k = g.t(c.inputs[1 - c.inputs.index(cur)])
            if k.dtype != "FLOAT32" or k.data is None or k.data.size != 1:
                return None
        else:
            return None
        chain.append(c)
        cur = c.outputs[0]


def _lut_island(g: _Graph, q: _Op) -> tuple[list[_Op], int] | None:
    """The elementwise ops (float ones between DEQUANTIZEs and QUANTIZE q, int8 unary ones before them) whose
    only non-constant source is ONE byte tensor x of q's shape: (ops in graph order, x). E.g. max(|h|, h^2) of
    tf.math in Lambda layers: DEQUANTIZE(h), ABS(h) -> DEQUANTIZE, SQUARE, MAXIMUM, QUANTIZE. Each output element
    is then a function of the same element of x alone: one int8 table. Intermediate tensors are read by the
    island only; constants must be scalars."""
    y = g.t(q.outputs[0])
    if q.op != "QUANTIZE" or len(q.outputs) != 1 or not _per_tensor_byte(y):
        return None
    island: dict[int, _Op] = {id(q): q}
    leaves: set[int] = set()
    seen: set[int] = set()
    stack = [i for i in q.inputs if i >= 0]
    while stack:
        ti = stack.pop()
        if ti in seen:
            continue
        seen.add(ti)
        t = g.t(ti)
        if t.data is not None:
            if t.dtype != "FLOAT32" or np.asarray(t.data).size != 1:
                return None
            continue
        p = g.producer(ti)
        if p is None or len(p.outputs) != 1 or t.shape != y.shape or g.is_graph_io(ti) or \
                p.op not in _LUT_UNARY | _LUT_BINARY | {"DEQUANTIZE", "QUANTIZE"}:
            leaves.add(ti)
            continue
        island[id(p)] = p
        stack.extend(i for i in p.inputs if i >= 0)
    if len(leaves) != 1 or len(island) < 3:
        return None
    xi = next(iter(leaves))
    if not _per_tensor_byte(g.t(xi)) or g.t(xi).shape != y.shape:
        return None
    ops = [o for o in g.ops if id(o) in island]
    if not any(g.t(o.outputs[0]).dtype == "FLOAT32" for o in ops):
        return None                           # all int8 already: nothing to fold
    for o in ops:
        if o is not q and (g.is_graph_io(o.outputs[0])
                           or any(id(c) not in island for c in g.consumers(o.outputs[0]))):
            return None
    return ops, xi


def _lut_table(g: _Graph, chain: list[_Op], x_in: int | None = None) -> np.ndarray | None:
    """The chain run by tflite-micro on the 256 input values, in table order (entry b: input byte b); the chain's
    source is x_in (default: the first op's input 0)."""
    from .tflite_write import write_tflite
    from .tflm import TflmRunner, capture_fd_output

    remap: dict[int, int] = {}
    tensors: list[Tensor] = []

    def add(ti: int) -> int:
        if ti not in remap:
            t = g.t(ti)
            shape = (1,) if t.data is not None else (256,)
            data = None if t.data is None else np.asarray(t.data).reshape(1).copy()
            remap[ti] = len(tensors)
            tensors.append(dataclasses.replace(t, index=len(tensors), shape=shape, data=data))
        return remap[ti]

    ops = [Operator(k, o.op, o.version, [add(i) for i in o.inputs], [add(i) for i in o.outputs], dict(o.options))
           for k, o in enumerate(chain)]
    x, y = (chain[0].inputs[0] if x_in is None else x_in), chain[-1].outputs[0]
    sub = TFLiteModel(tensors, ops, [remap[x]], [remap[y]], "mpyml lut8")
    try:
        tfl = write_tflite(sub)
    except (ValueError, TypeError, AttributeError):
        return None
    if tfl not in _LUT_TABLES:
        xb = np.arange(256, dtype=np.uint8)
        inp = xb.view(np.int8) if g.t(x).dtype == "INT8" else xb
        table: np.ndarray | None
        try:
            with capture_fd_output():         # tflite-micro prints why it refuses an op
                table = np.asarray(TflmRunner(tfl, arena_size=1 << 16).run([inp])[0]).reshape(-1)
        except Exception:                     # tflite-micro has no such kernel, or refuses this op  # noqa: BLE001
            table = None
        want = np.int8 if g.t(y).dtype == "INT8" else np.uint8
        if table is not None and (table.dtype != want or table.size != 256):
            table = None
        if len(_LUT_TABLES) > 1024:
            _LUT_TABLES.clear()
        _LUT_TABLES[tfl] = None if table is None else table.copy()
    got = _LUT_TABLES[tfl]
    return None if got is None else got.copy()


def _fold_lut(g: _Graph, notes: list[str]) -> bool:
    for d in list(g.ops):
        if d.op != "DEQUANTIZE" or d not in g.ops:
            continue
        chain = _lut_chain(g, d)
        if chain is None:
            continue
        table = _lut_table(g, chain)
        if table is None:
            continue                          # left for unsupported_report to name
        xi, yi = chain[0].inputs[0], chain[-1].outputs[0]
        y = g.t(yi)
        ti = g.new_tensor(f"{y.name}/lut8", (256,), dtype=y.dtype, data=table)
        idx = sorted({i for o in chain for i in o.orig})
        g.replace(chain, [_Op(LUT_OP, 1, [xi, ti], [yi], {}, idx)])
        names = "→".join(o.op for o in chain[1:-1])
        notes.append(f"folded float {names} between DEQUANTIZE/QUANTIZE ({_ops_text(idx)}) into an "
                     f"{y.dtype.lower()} lookup table")
        return True
    for q in list(g.ops):
        found = _lut_island(g, q) if q.op == "QUANTIZE" else None
        if found is None:
            continue
        ops, xi = found
        table = _lut_table(g, ops, xi)
        if table is None:
            continue
        yi = q.outputs[0]
        y = g.t(yi)
        ti = g.new_tensor(f"{y.name}/lut8", (256,), dtype=y.dtype, data=table)
        idx = sorted({i for o in ops for i in o.orig})
        g.replace(ops, [_Op(LUT_OP, 1, [xi, ti], [yi], {}, idx)])
        notes.append(f"folded the elementwise {'/'.join(o.op for o in ops)} of one {g.t(xi).dtype.lower()} tensor "
                     f"({_ops_text(idx)}) into an {y.dtype.lower()} lookup table")
        return True
    return False

# ------------------------------------------------------------------ Keras 3 Embedding: negative-index wrap

def _take_wrap(g: _Graph, notes: list[str]) -> bool:
    """GATHER(params, SELECT[_V2](LESS(i, 0), ADD(i, N), i)) with N = params.dims[axis] (Keras 3 ops.take, so
    Embedding, wraps negative ids) -> GATHER(params, i) with option mpymlWrapNegative: the engine's GATHER adds N
    to a negative index itself (then refuses what is still outside 0..N-1, as TFLite's GATHER does)."""
    from .lower.gather import WRAP_OPTION
    for op in g.ops:
        if op.op != "GATHER" or len(op.inputs) < 2 or op.options.get(WRAP_OPTION):
            continue
        s = g.producer(op.inputs[1])
        if s is None or s.op not in ("SELECT", "SELECT_V2") or len(s.inputs) != 3 \
                or g.sole_consumer(s.outputs[0]) is not op:
            continue
        c, a, i = (g.producer(s.inputs[0]), g.producer(s.inputs[1]), s.inputs[2])
        if c is None or a is None or c.op != "LESS" or a.op != "ADD" or a.options.get("fusedActivationFunction", 0):
            continue
        zero = g.const(c.inputs[1]) if c.inputs[0] == i else None
        n_in = [t for t in a.inputs if t != i]
        if zero is None or zero.size != 1 or int(zero.reshape(-1)[0]) != 0 or i not in a.inputs or len(n_in) != 1:
            continue
        n = g.const(n_in[0])
        x = g.t(op.inputs[0])
        axis = int(op.options.get("axis", 0))
        axis += len(x.shape) if axis < 0 else 0
        if n is None or n.size != 1 or not 0 <= axis < len(x.shape) or int(n.reshape(-1)[0]) != int(x.shape[axis]):
            continue
        if g.t(i).dtype not in ("INT32", "INT16") or g.t(s.outputs[0]).shape != g.t(i).shape:
            continue
        op.inputs = [op.inputs[0], i, *op.inputs[2:]]
        op.options = {**op.options, WRAP_OPTION: True}
        op.orig = c.orig + a.orig + s.orig + op.orig
        notes.append(f"fused Keras' negative-index wrap LESS/ADD/{s.op} into GATHER ({_ops_text(op.orig)})")
        return True
    return False


# ------------------------------------------------------------------ entry points

# the pattern passes run before _identities, which would merge the RESHAPEs they match
_PASSES = (_fold_constants, _expand_squeeze, _dilated, _upsample, _upsample_chain, _pad_into_conv, _identities,
           _fuse_relu, _fold_lut, _take_wrap, _split_concat_repeat)


def cleanup(model: TFLiteModel) -> tuple[TFLiteModel, list[str]]:
    """Exact rewrites of `model` (a new model; the input is not modified) and notes saying what was done."""
    g = _Graph(model)
    notes: list[str] = []
    for _ in range(64):
        changed = False
        for p in _PASSES:
            while p(g, notes):
                changed = True
                g._drop_dead()
        if not changed:
            break
    n_before = len(model.operators)
    out = g.to_model()
    if notes and len(out.operators) != n_before:
        notes.append(f"{n_before} ops → {len(out.operators)} ops")
    return out, notes


def _is_float(t: Tensor) -> bool:
    return t.dtype in ("FLOAT32", "FLOAT16", "FLOAT64")


CONVERT_HINT = (
    "Quantize it to int8 with a representative dataset:\n"
    "    converter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
    "    converter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
    "    converter.representative_dataset = lambda: ([x[None].astype('float32')] for x in calibration_samples)\n"
    "    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
    "    converter.inference_input_type = tf.int8\n"
    "    converter.inference_output_type = tf.int8\n"
    "    tflite_model = converter.convert()\n"
    "or use `mpyml convert` (Keras / SavedModel -> int8 .tflite)."
)


def unsupported_report(model: TFLiteModel, supported: set[str]) -> str | None:
    """One message naming everything in `model` that mpyml cannot run, or None if every op is supported."""
    ops = model.operators
    unsupported = [op for op in ops if op.op not in supported]
    act_tensors = [model.tensors[i] for op in ops for i in op.inputs + op.outputs if i >= 0
                   and not model.tensors[i].is_const]
    has_int8 = any(t.dtype in ("INT8", "INT16") and len(t.scales) for t in act_tensors)
    has_float = any(_is_float(t) for t in act_tensors)
    if has_float and not has_int8:
        return ("the model is float32 (not quantized): mpyml runs int8 models. " + CONVERT_HINT)
    if not unsupported:
        return None
    parts: list[str] = []
    counts = Counter(op.op for op in unsupported)
    listed = []
    for name in counts:
        idx = [op.index for op in unsupported if op.op == name]
        where = "op" if len(idx) == 1 else "ops"
        listed.append(f"{name} ×{len(idx)} ({where} " + ", ".join(f"#{i}" for i in idx) + ")")
    n = len(unsupported)
    parts.append(f"{n} op{'s are' if n != 1 else ' is'} not supported by mpyml: " + ", ".join(listed) + ".")
    first = unsupported[0]

    def _desc(ids: list[int]) -> str:
        ts = [model.tensors[i] for i in ids if i >= 0 and not model.tensors[i].is_const]
        return ", ".join(f"{t.dtype.lower()}{_shape_text(t.shape)}" for t in ts) or "constants"

    parts.append(f"{'The first is ' if n > 1 else ''}op #{first.index} {first.op} "
                 f"({_desc(first.inputs)} → {_desc(first.outputs)}).")
    # ops computing in float inside an int8 model
    for op in unsupported:
        if op.op in ("QUANTIZE", "DEQUANTIZE"):
            continue
        ts = [model.tensors[i] for i in op.inputs + op.outputs if i >= 0 and not model.tensors[i].is_const]
        if ts and all(_is_float(t) for t in ts) and has_int8:
            parts.append(f"op #{op.index} {op.op} runs in float32 inside an int8 model: the converter could not "
                         f"quantize it (no int8 {op.op} kernel in TFLite); replace the layer with one that has an "
                         "int8 kernel (e.g. ReLU, or a lookup-friendly activation) or drop it.")
    qd = [op for op in unsupported if op.op in ("QUANTIZE", "DEQUANTIZE")]
    io_float = any(_is_float(model.tensors[i]) for i in model.inputs + model.outputs)
    if qd and io_float:
        parts.append("The model's inputs/outputs are float32 (QUANTIZE/DEQUANTIZE at its edges): convert with "
                     "converter.inference_input_type = tf.int8 and converter.inference_output_type = tf.int8.")
    if any(op.op.startswith("CUSTOM:") for op in unsupported):
        parts.append("CUSTOM ops are the converter's or a framework's own kernels (e.g. detection "
                     "post-processing); run that part on the host side of your program instead.")
    parts.append("Supported: " + ", ".join(sorted(s for s in supported if not s.startswith("MPYML_"))) + ".")
    return " ".join(parts)
