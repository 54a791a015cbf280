"""Lowerings of the elementwise family (spec: host/mpyml/spec/ops_elementwise.py).

Owns:
  * unary 8-bit ops (activations, ABS, RSQRT, ..., 8-bit QUANTIZE / requantize, DEQUANTIZE) and binary ops by a
    constant scalar -> LUT / DEQUANTIZE whose 256-entry table is computed by tflite-micro itself, running the op
    with its own quantization and options on all 256 input values (exact by construction, cached); for the
    unary ops tflite-micro has no int8 kernel for (NEG, SQRT, EXP, LOG, GELU, RELU_N1_TO_1, RELU_0_TO_1) by
    TensorFlow Lite's reference kernels instead (needs TensorFlow at pack time);
  * float32 QUANTIZE -> QUANTIZE_F32: the breakpoints of x86 tflite-micro's AffineQuantize as a step
    function of the input's float bits, found exactly by bisection over float32 bit patterns;
  * MUL, MAXIMUM, MINIMUM with two tensor inputs (one may be constant) -> the binary kernels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import quantize
from ..tflite_model import Operator, Tensor, TFLiteModel
from . import lowering

_TABLE_DTYPES = ("INT8", "UINT8")
_NP = {"INT8": np.int8, "UINT8": np.uint8, "FLOAT32": np.float32}
INT32_MIN = -(2**31)


def _pack_error(msg: str) -> Exception:
    from ..packer import PackError
    return PackError(msg)


def _byte_inputs(dtype: str) -> np.ndarray:
    """The 256 input values in table order: entry b holds the value whose byte is b."""
    return np.arange(256, dtype=np.uint8).view(np.int8) if dtype == "INT8" else np.arange(256, dtype=np.uint8)


def _qkey(t: Tensor) -> tuple[Any, ...]:
    return (t.dtype, tuple(float(s) for s in t.scales), tuple(int(z) for z in t.zero_points))


def _opts_key(opts: dict) -> tuple[Any, ...]:
    return tuple(sorted((k, repr(v)) for k, v in opts.items()))


_TABLES: dict[tuple[Any, ...], bytes] = {}      # (op, version, options, quantizations, constant) -> table bytes


# unary int8 ops tflite-micro has no int8 kernel for: their tables come from TensorFlow Lite's reference kernels
# (tf.lite.Interpreter with BUILTIN_REF, the same oracle the tests use where tflite-micro cannot be one)
TFLITE_REF_OPS = ("NEG", "SQRT", "EXP", "LOG", "GELU", "RELU_N1_TO_1", "RELU_0_TO_1")
# ops defined on part of the real line: TFLite's kernels fail the whole invoke on an input outside it (negative
# inputs; x = 0 too where a kernel refuses it); their tables hold, for those inputs, the entry of the domain's
# first input
DOMAIN_OPS = ("SQRT", "RSQRT")


def _run_oracle(opname: str, model: bytes, x: np.ndarray) -> np.ndarray:
    """Run a one-op model on x: tflite-micro, or TFLite's reference kernels for TFLITE_REF_OPS."""
    if opname not in TFLITE_REF_OPS:
        from ..tflm import TflmRunner
        return TflmRunner(model, arena_size=1 << 16).run([x])[0]
    from ..tflm import TfliteRefRunner
    try:
        return TfliteRefRunner(model).run([x])[0]
    except ImportError:
        raise RuntimeError(f"tflite-micro has no int8 {opname}; its table is computed by TensorFlow Lite's "
                           "reference kernels, which need TensorFlow: pip install 'mpyml[convert]'") from None


def _table_uncached(opname: str, version: int, opts: dict, xq: tuple[Any, ...], yq: tuple[Any, ...], const_pos: int,
                    cq: tuple[Any, ...] | None, const_bytes: bytes | None) -> bytes:
    from ..tflite_write import write_tflite

    def tensor(i: int, name: str, q: tuple[Any, ...], shape: tuple[int, ...], data: np.ndarray | None = None) -> Tensor:
        dtype, scales, zps = q
        return Tensor(i, name, shape, dtype, data, np.asarray(scales, np.float32), np.asarray(zps, np.int64), 0)

    def run(x: np.ndarray) -> np.ndarray:
        tensors = [tensor(0, "x", xq, x.shape)]
        inputs = [0]
        if cq is not None:
            assert const_bytes is not None
            cdata = np.frombuffer(const_bytes, dtype=_NP[cq[0]]).reshape(1).copy()
            tensors.append(tensor(1, "c", cq, (1,), cdata))
            inputs = [1, 0] if const_pos == 0 else [0, 1]
        tensors.append(tensor(len(tensors), "y", yq, x.shape))
        op = Operator(0, opname, version, inputs, [len(tensors) - 1], dict(opts))
        model = TFLiteModel(tensors, [op], [0], [len(tensors) - 1], "mpyml table")
        return np.ascontiguousarray(_run_oracle(opname, write_tflite(model), x).reshape(x.shape))

    xs = _byte_inputs(xq[0])
    try:
        return run(xs).tobytes()
    except RuntimeError:
        if opname not in DOMAIN_OPS:
            raise
    # the domain: inputs at or above the zero point (x >= 0), else above it (x > 0)
    q = xs.astype(np.int64) - int(xq[2][0])
    for keep in (q >= 0, q > 0):
        if not keep.any():
            continue
        try:
            part = run(np.ascontiguousarray(xs[keep]))
        except RuntimeError:
            continue
        out = np.empty(256, dtype=part.dtype)
        out[keep] = part
        out[~keep] = part[int(np.argmin(q[keep]))]          # the domain's first input
        return out.tobytes()
    raise RuntimeError(f"{opname} fails on every input of this quantization")


def tflm_table(op: Operator, x: Tensor, y: Tensor, const: Tensor | None = None, const_pos: int = 1,
               const_value: Any = None) -> np.ndarray:
    """Output of `op` (run by tflite-micro with its quantization and options) for the 256 values of x,
    in table order (entry b: the input whose byte is b). Cached per op, options, quantization and constant."""
    cq = _qkey(const) if const is not None else None
    cb = np.asarray([const_value], dtype=_NP[const.dtype]).tobytes() if const is not None else None
    key = (op.op, op.version, _opts_key(op.options), _qkey(x), _qkey(y), const_pos, cq, cb)
    raw = _TABLES.get(key)
    if raw is None:
        raw = _table_uncached(op.op, op.version, op.options, _qkey(x), _qkey(y), const_pos, cq, cb)
        if len(_TABLES) > 4096:
            _TABLES.clear()
        _TABLES[key] = raw
    return np.frombuffer(raw, dtype=_NP[y.dtype]).copy()


def _per_tensor(t: Tensor, where: str) -> None:
    if len(t.scales) > 1 or len(t.zero_points) > 1:
        raise _pack_error(f"{where}: tensor {t.index} '{t.name}' needs per-tensor quantization")


def _emit_table(b: Any, op: Operator, where: str, xi: int, table: np.ndarray, kind: str) -> None:
    x = b.m.tensors[xi]
    y = b.m.tensors[op.outputs[0]]
    i_x = b.tensor(xi, where, types=_TABLE_DTYPES)
    tname = "float32" if kind == "DEQUANTIZE" else y.dtype.lower()
    i_t = b.const(f"{y.name}/table", table, tname)
    i_y = b.tensor(op.outputs[0], where, types=(y.dtype,))
    if b.tensors[i_x].shape != b.tensors[i_y].shape:
        raise _pack_error(f"{where}: input shape {x.shape} and output shape {y.shape} differ")
    b.emit(kind, [i_x, i_t], [i_y], [], op, info={"table": f"{x.dtype.lower()}->{tname}"})


# ---------------------------------------------------------------- unary ops through tflite-micro

@lowering("LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU", "ELU", "RELU", "RELU6", "ABS", "RSQRT", *TFLITE_REF_OPS)
def _unary(b: Any, op: Operator, where: str) -> None:
    x, y = b.m.tensors[op.inputs[0]], b.m.tensors[op.outputs[0]]
    if x.dtype == "FLOAT32":
        raise _pack_error(f"{where}: {op.op} is float32 in this model: the TFLite converter left it unquantized "
                          "(it has no int8 version of this layer); mpyml runs quantized ops only - replace the "
                          "layer (e.g. ELU by LeakyReLU) and convert again")
    if x.dtype not in _TABLE_DTYPES or y.dtype != x.dtype:
        raise _pack_error(f"{where}: {op.op} runs on int8 tensors (has {x.dtype} -> {y.dtype})")
    for t in (x, y):
        _per_tensor(t, where)
    _emit_table(b, op, where, op.inputs[0], _run_table(op, x, y, where), "LUT")


def _run_table(op: Operator, x: Tensor, y: Tensor, where: str, const: Tensor | None = None, const_pos: int = 1,
               const_value: Any = None) -> np.ndarray:
    try:
        return tflm_table(op, x, y, const, const_pos, const_value)
    except (RuntimeError, ValueError, TypeError) as e:
        raise _pack_error(f"{where}: tflite-micro cannot run {op.op} with this quantization "
                          f"({x.dtype} -> {y.dtype}): {e}") from None


@lowering("DEQUANTIZE")
def _dequantize(b: Any, op: Operator, where: str) -> None:
    x, y = b.m.tensors[op.inputs[0]], b.m.tensors[op.outputs[0]]
    if x.dtype not in _TABLE_DTYPES or y.dtype != "FLOAT32":
        raise _pack_error(f"{where}: DEQUANTIZE supports int8/uint8 -> float32 (has {x.dtype} -> {y.dtype})")
    _per_tensor(x, where)
    _emit_table(b, op, where, op.inputs[0], _run_table(op, x, y, where), "DEQUANTIZE")


@lowering("QUANTIZE")
def _quantize(b: Any, op: Operator, where: str) -> None:
    x, y = b.m.tensors[op.inputs[0]], b.m.tensors[op.outputs[0]]
    _per_tensor(y, where)
    if x.dtype in _TABLE_DTYPES and y.dtype in _TABLE_DTYPES:
        _per_tensor(x, where)
        _emit_table(b, op, where, op.inputs[0], _run_table(op, x, y, where), "LUT")
        return
    if x.dtype != "FLOAT32" or y.dtype != "INT8":
        raise _pack_error(f"{where}: QUANTIZE supports float32 -> int8 and 8-bit requantization "
                          f"(has {x.dtype} -> {y.dtype})")
    keys, values = quantize_breakpoints(y.scale, y.zero_point)
    i_x = b.tensor(op.inputs[0], where, types=("FLOAT32",))
    i_k = b.const(f"{y.name}/keys", keys, "int32")
    i_v = b.const(f"{y.name}/values", values, "int8")
    i_y = b.tensor(op.outputs[0], where, types=("INT8",))
    if b.tensors[i_x].shape != b.tensors[i_y].shape:
        raise _pack_error(f"{where}: input shape {x.shape} and output shape {y.shape} differ")
    b.emit("QUANTIZE_F32", [i_x, i_k, i_v], [i_y], [], op, info={"breakpoints": len(keys)})


# ---------------------------------------------------------------- float32 -> int8 breakpoints

def key_to_f32(keys: np.ndarray) -> np.ndarray:
    """float32 values of sortable int32 keys (k = b >= 0 ? b : b ^ 0x7FFFFFFF, b = the float's bits)."""
    k = np.asarray(keys, dtype=np.int64)
    bits = np.where(k >= 0, k, k ^ 0x7FFFFFFF) & 0xFFFFFFFF
    return bits.astype(np.uint32).view(np.float32)


def f32_to_key(x: np.ndarray) -> np.ndarray:
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.int32).astype(np.int64)
    return np.where(b >= 0, b, b ^ 0x7FFFFFFF)


def _rounded(x: np.ndarray, scale: np.float32) -> np.ndarray:
    """TfLiteRound(x / scale) in float32 (as float64, exact), NaN propagated."""
    with np.errstate(all="ignore"):
        v = (np.asarray(x, np.float32) / scale).astype(np.float64)
        a = np.abs(v)
        fl = np.floor(a)
        r = fl + (a - fl >= 0.5)
        return np.copysign(r, v)


def affine_quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """x86 tflite-micro AffineQuantize float32 -> int8: int32 cast of NaN / out of range = INT32_MIN,
    wrapping + zero point, clamp."""
    r = _rounded(x, np.float32(scale))
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(r) & (r >= -(2.0**31)) & (r < 2.0**31)
    i = np.where(ok, np.nan_to_num(r), INT32_MIN).astype(np.int64)
    u = ((i + int(zero_point) + 2**31) & 0xFFFFFFFF) - 2**31
    return np.clip(u, -128, 127).astype(np.int8)


def quantize_breakpoints(scale: float, zero_point: int) -> tuple[np.ndarray, np.ndarray]:
    """(keys, values) of QUANTIZE_F32: output = values[#keys <= key(x)], exactly affine_quantize."""
    s = np.float32(scale)
    k_ninf = int(f32_to_key(np.array([-np.inf]))[0])
    k_pinf = int(f32_to_key(np.array([np.inf]))[0])
    # U(key) = TfLiteRound(x / scale) is monotone over [-inf, +inf]; f = F(U) changes only where U
    # crosses one of these integers (clamp steps, zero-point wrap, int32 cast range)
    zp = int(zero_point)
    cand = {float(v - zp) for v in range(-127, 128)}
    cand |= {float(2**31 - zp), float(-(2**31) - zp), float(2**31), float(-(2**31)), float(-(2**31) + 1)}
    cand_arr = np.array(sorted(cand), dtype=np.float64)
    # smallest key in [k_ninf, k_pinf] with U(key) >= T, for every candidate T (vectorized bisection)
    lo = np.full(cand_arr.shape, k_ninf, dtype=np.int64)
    hi = np.full(cand_arr.shape, k_pinf + 1, dtype=np.int64)
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        u = _rounded(key_to_f32(np.minimum(mid, k_pinf)), s)
        ge = (u >= cand_arr) & (mid <= k_pinf)
        hi = np.where((lo < hi) & ge, mid, hi)
        lo = np.where((lo < hi) & ~ge, mid + 1, lo)
    starts = sorted({int(v) for v in lo if k_ninf < v <= k_pinf} | {k_ninf, k_pinf, k_pinf + 1})
    # piece values at each start; below k_ninf: negative NaNs
    nan_v = int(affine_quantize(np.array([np.nan], np.float32), scale, zp)[0])
    vals = [nan_v]
    keys: list[int] = []
    for st in starts:
        if st == k_pinf + 1:
            v = nan_v
        else:
            v = int(affine_quantize(key_to_f32(np.array([st])), scale, zp)[0])
        if v != vals[-1]:
            keys.append(st)
            vals.append(v)
    return np.array(keys, dtype=np.int32), np.array(vals, dtype=np.int8)


# ---------------------------------------------------------------- binary ops

def _scalar_const(t: Tensor) -> Any:
    """The value of a constant tensor whose elements are all equal, else None."""
    if t.data is None or t.data.size == 0:
        return None
    flat = np.asarray(t.data).reshape(-1)
    return flat[0] if np.all(flat == flat[0]) else None


def _broadcast_ok(a: tuple[int, ...], b: tuple[int, ...], o: tuple[int, ...]) -> bool:
    if len(a) > len(o) or len(b) > len(o) or len(o) > 4:
        return False
    a4 = (1,) * (4 - len(a)) + tuple(a)
    b4 = (1,) * (4 - len(b)) + tuple(b)
    o4 = (1,) * (4 - len(o)) + tuple(o)
    return all(p in (1, r) and q in (1, r) and r == max(p, q) for p, q, r in zip(a4, b4, o4, strict=True))


def _try_const_lut(b: Any, op: Operator, where: str) -> bool:
    """op(x, c) with c constant, all elements equal, and the output x's shape: a LUT."""
    t1, t2, y = (b.m.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    for pos, (var, c) in enumerate(((t2, t1), (t1, t2))):
        if var.data is not None or c.data is None:
            continue
        v = _scalar_const(c)
        if v is None or var.dtype not in _TABLE_DTYPES or y.dtype not in _TABLE_DTYPES or c.dtype not in _TABLE_DTYPES:
            continue
        if tuple(var.shape or (1,)) != tuple(y.shape or (1,)):
            continue
        if len(c.scales) > 1 or len(var.scales) > 1:
            continue
        table = _run_table(op, var, y, where, c, 0 if pos == 0 else 1, v)
        _emit_table(b, op, where, op.inputs[1] if pos == 0 else op.inputs[0], table, "LUT")
        return True
    return False


def _binary_common(b: Any, op: Operator, where: str) -> tuple[Tensor, Tensor, Tensor, list[int]]:
    t1, t2, y = (b.m.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    for t in (t1, t2, y):
        if t.dtype != "INT8":
            raise _pack_error(f"{where}: {op.op} runs on int8 tensors (tensor {t.index} '{t.name}' is {t.dtype})")
        _per_tensor(t, where)
    if not _broadcast_ok(tuple(t1.shape or (1,)), tuple(t2.shape or (1,)), tuple(y.shape or (1,))):
        raise _pack_error(f"{where}: cannot broadcast {t1.shape} and {t2.shape} to {y.shape} (4-D at most)")
    idx = [b.tensor(op.inputs[0], where), b.tensor(op.inputs[1], where), b.tensor(op.outputs[0], where)]
    return t1, t2, y, idx


@lowering("MUL")
def _mul(b: Any, op: Operator, where: str) -> None:
    if _try_const_lut(b, op, where):
        return
    t1, t2, y, idx = _binary_common(b, op, where)
    act_min, act_max = b._fused(op, where, y)
    real = float(np.float64(np.float32(t1.scale)) * np.float64(np.float32(t2.scale))
                 / np.float64(np.float32(y.scale)))
    mult, shift = quantize.quantize_multiplier(real)
    b.emit("MUL", idx[:2], idx[2:], [-t1.zero_point, -t2.zero_point, y.zero_point, mult, shift, act_min, act_max],
           op, macs=int(np.prod(y.shape or (1,))), info={"broadcast": tuple(t1.shape) != tuple(t2.shape)})


def _minmax(b: Any, op: Operator, where: str) -> None:
    if _try_const_lut(b, op, where):
        return
    t1, t2, y, idx = _binary_common(b, op, where)
    for t in (t1, t2):
        if t.zero_point != y.zero_point or np.float32(t.scale) != np.float32(y.scale):
            raise _pack_error(f"{where}: {op.op} needs the same scale and zero point on inputs and output "
                              f"(tensor {t.index} '{t.name}' has {t.scale:g}/{t.zero_point}, output "
                              f"{y.scale:g}/{y.zero_point})")
    b.emit(op.op, idx[:2], idx[2:], [], op, info={"broadcast": tuple(t1.shape) != tuple(t2.shape)})


lowering("MAXIMUM", "MINIMUM")(_minmax)


def _arith_params(t1: Tensor, t2: Tensor, y: Tensor, square: bool, where: str) -> dict[str, int]:
    """SUB: CalculateOpDataSub (= ADD's: left shift 20); SQUARED_DIFFERENCE: left shift 7 and the output
    multiplier twice_max^2 / (2^14 * output_scale), as squared_difference.cc Prepare."""
    if not square:
        return quantize.add_params(t1.scale, t2.scale, y.scale)
    s1, s2, so = np.float32(t1.scale), np.float32(t2.scale), np.float32(y.scale)
    twice_max = 2.0 * float(max(s1, s2))
    reals = (float(s1) / twice_max, float(s2) / twice_max, twice_max * twice_max / (float(1 << 14) * float(so)))
    out: dict[str, int] = {"left_shift": 7}
    for name, r in zip(("input1", "input2", "output"), reals, strict=True):
        if not 0.0 < r < 1.0:
            raise _pack_error(f"{where}: SQUARED_DIFFERENCE rescale {r:g} outside (0, 1): tflite-micro refuses "
                              "these scales too")
        m, sh = quantize.quantize_multiplier(r)
        out[f"{name}_mult"], out[f"{name}_shift"] = m, sh
    return out


@lowering("SUB", "SQUARED_DIFFERENCE")
def _sub_like(b: Any, op: Operator, where: str) -> None:
    if _try_const_lut(b, op, where):
        return
    t1, t2, y, idx = _binary_common(b, op, where)
    square = op.op == "SQUARED_DIFFERENCE"
    try:
        p = _arith_params(t1, t2, y, square, where)
    except ValueError as e:
        if type(e).__name__ == "PackError":
            raise
        raise _pack_error(f"{where}: {op.op} scales out of range: {e}") from None
    act_min, act_max = (-128, 127) if square else b._fused(op, where, y)
    b.emit(op.op, idx[:2], idx[2:],
           [-t1.zero_point, -t2.zero_point, y.zero_point, p["left_shift"], p["input1_mult"], p["input1_shift"],
            p["input2_mult"], p["input2_shift"], p["output_mult"], p["output_shift"], act_min, act_max],
           op, info={"broadcast": tuple(t1.shape) != tuple(t2.shape)})


@lowering("PRELU")
def _prelu(b: Any, op: Operator, where: str) -> None:
    t1, t2, y, idx = _binary_common(b, op, where)
    m1, sh1 = quantize.quantize_multiplier(float(np.float32(t1.scale)) / float(np.float32(y.scale)))
    m2, sh2 = quantize.quantize_multiplier(float(np.float32(t1.scale)) * float(np.float32(t2.scale))
                                           / float(np.float32(y.scale)))
    b.emit("PRELU", idx[:2], idx[2:], [-t1.zero_point, -t2.zero_point, y.zero_point, m1, sh1, m2, sh2], op,
           info={"broadcast": tuple(t1.shape) != tuple(t2.shape)})


# ------------------------------------------------------------------ DIV (tensor / tensor)
_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1


def _wrap32(x: int) -> int:
    return ((x + 2**31) & 0xFFFFFFFF) - 2**31


def _srdhm(a: int, b: int) -> int:
    if a == b == _I32_MIN:
        return _I32_MAX
    return (a * b + (1 << 30)) >> 31           # = gemmlowp's truncating (ab + nudge) / 2^31, see fixedpoint.h


def _sat_shl(x: int, e: int) -> int:
    thr = (1 << (31 - e)) - 1
    return _I32_MAX if x > thr else _I32_MIN if x < -thr else _wrap32(x << e)


def _one_over_one_plus_x(a: int) -> int:
    """gemmlowp one_over_one_plus_x_for_x_in_0_1 (Q0.31 raw in and out), as fixedpoint.h."""
    s = a + _I32_MAX
    half = _wrap32((s + (1 if s >= 0 else -1)) // 2 if s >= 0 else -((-s + 1) // 2))   # RoundingHalfSum
    x = _wrap32(1515870810 + _srdhm(half, -1010580540))
    for _ in range(3):
        one_minus = _wrap32((1 << 29) - _srdhm(half, x))
        x = _wrap32(x + _sat_shl(_srdhm(x, one_minus), 2))
    return _sat_shl(x, 1)


def get_reciprocal(x: int) -> tuple[int, int]:
    """TFLite GetReciprocal(x, 31): (Q0.31 reciprocal, num_bits_over_unit) for 0 <= x < 2^31. x = 0 as x86
    tflite-micro computes it (CountLeadingZeros(0) = 32, 0 << 32 = 0)."""
    hp1 = 32 if x == 0 else 32 - x.bit_length()
    shifted = _wrap32(((x << hp1) & 0xFFFFFFFF) - (1 << 31))
    return _one_over_one_plus_x(shifted), 31 - hp1


def _clrsb(x: int) -> int:
    return (32 - (~x if x < 0 else x).bit_length()) - 1


def div_table(input2_offset: int) -> np.ndarray:
    """The DIV kernel's [512] int32 operand: per input2 byte b, GetReciprocal(|x2|) and 2 * (shift + 1) + (x2 < 0)."""
    inv = np.zeros(256, np.int64)
    code = np.zeros(256, np.int64)
    for b in range(256):
        x2 = (b - 256 if b > 127 else b) + input2_offset
        r, rs = get_reciprocal(abs(x2))
        inv[b], code[b] = r, 2 * (rs + 1) + (1 if x2 < 0 else 0)
    return np.concatenate([inv, code]).astype(np.int32)


def _div_exponent_range(off1: int, off2: int, out_shift: int) -> tuple[int, int]:
    """min / max of TFLM's RoundingDivideByPOT exponent h + rs - output_shift over reachable inputs, x1 != 0 (the
    kernel reproduces x86 tflite-micro for 32..63, where gemmlowp's shift is undefined behaviour)."""
    lo, hi = 99, -99
    rs_of: dict[tuple[int, bool], list[int]] = {}
    for q2 in range(-128, 128):
        x2 = q2 + off2
        rs_of.setdefault((False, x2 < 0), []).append(get_reciprocal(abs(x2))[1])
    for q1 in range(-128, 128):
        for neg in (False, True):
            rss = rs_of.get((False, neg))
            if not rss:
                continue
            x1 = -(q1 + off1) if neg else q1 + off1
            if x1 == 0:
                continue
            h = _clrsb(x1)
            lo, hi = min(lo, h + min(rss) - out_shift), max(hi, h + max(rss) - out_shift)
    return lo, hi


@lowering("DIV")
def _div(b: Any, op: Operator, where: str) -> None:
    if _try_const_lut(b, op, where):
        return
    t1, t2, y, idx = _binary_common(b, op, where)
    act_min, act_max = b._fused(op, where, y)
    # CalculateOpDataDiv of the tflite-micro we test against: the ratio in double, QuantizeMultiplier
    real = float(np.float32(t1.scale)) / (float(np.float32(t2.scale)) * float(np.float32(y.scale)))
    mult, shift = quantize.quantize_multiplier(real)
    lo, hi = _div_exponent_range(-t1.zero_point, -t2.zero_point, shift)
    if lo < 0 or hi > 63:
        raise _pack_error(f"{where}: DIV scales {t1.scale:g} / ({t2.scale:g} * {y.scale:g}) give tflite-micro shifts "
                          f"outside 0..63 (undefined behaviour there): requantize the output")
    i_t = b.const_i32(f"{b.m.tensors[op.inputs[1]].name}/div_recip", div_table(-t2.zero_point))
    b.emit("DIV", [idx[0], idx[1], i_t], idx[2:], [-t1.zero_point, y.zero_point, mult, shift, act_min, act_max],
           op, macs=int(np.prod(y.shape or (1,))), info={"broadcast": tuple(t1.shape) != tuple(t2.shape)})
