"""The reduce family (MEAN, SUM, REDUCE_MAX, ARG_MAX, TRANSPOSE_CONV) against tflite-micro.

Every case is a random single-op TFLite model packed with mpyml.pack and run by tflite-micro (the oracle),
the C engine through the host library, and both the C native module and the viper engine on the
MicroPython unix port (one process for all cases of a test): outputs byte-identical everywhere
(tolerance 0), the whole arenas of the two unix-port engines identical, and no viper invoke allocates.
Then malformed records (each op-specific check, CRC recomputed): both loaders refuse with the same code.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from mpyml import pack
from mpyml.hostlib import HostModel, prepare_status
from mpyml.mpk import MpkFile, with_crc
from mpyml.spec import OPCODES
from ops.engines import host_run, outputs_of
from test_viper_engine import run_dual
from tflite_build import _Model, run_tflm

N_CASES = 60


# ------------------------------------------------------------------ random single-op models

def _scale(rng: np.random.Generator) -> float:
    return float(np.exp(rng.uniform(np.log(1e-3), np.log(2.0))))


def _zp(rng: np.random.Generator) -> int:
    if rng.random() < 0.2:
        return int(rng.choice([-128, 127, 0]))
    return int(rng.integers(-128, 128))


def _values(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape))
    mode = rng.random()
    if mode < 0.15:
        raw = rng.choice(np.array([-128, 127], np.int8), size=n)           # extremes only
    elif mode < 0.3:
        raw = rng.integers(-3, 3, size=n).astype(np.int8)                 # many ties
    else:
        raw = rng.integers(-128, 128, size=n).astype(np.int8)
    return raw.astype(np.int8).reshape(shape)


def _shape(rng: np.random.Generator) -> tuple[int, ...]:
    if rng.random() < 0.2:      # GlobalAveragePooling-like
        return (int(rng.integers(1, 3)), int(rng.integers(1, 10)), int(rng.integers(1, 10)), int(rng.integers(1, 17)))
    r = int(rng.integers(1, 5))
    return tuple(int(d) for d in rng.integers(1, 8, size=r))


def _axes(rng: np.random.Generator, rank: int, shape: tuple[int, ...]) -> list[int]:
    if rank == 4 and rng.random() < 0.3:
        ax = [1, 2]
    else:
        k = int(rng.integers(1, rank + 1))
        ax = sorted(int(a) for a in rng.choice(rank, size=k, replace=False))
    out = [a - rank if rng.random() < 0.3 else a for a in ax]
    if rng.random() < 0.15:
        out.append(out[0])                    # a duplicate (ResolveAxis drops it)
    return [int(a) for a in rng.permutation(out)]


def reduce_case(op: str, rng: np.random.Generator) -> tuple[str, bytes, list[np.ndarray]]:
    shape = _shape(rng)
    rank = len(shape)
    axes = _axes(rng, rank, shape)
    res = {a % rank for a in axes}
    keep = bool(rng.random() < 0.5)
    out_shape = [1 if i in res else d for i, d in enumerate(shape)] if keep else \
        [d for i, d in enumerate(shape) if i not in res]
    if not out_shape:
        out_shape = [1]
    count = int(np.prod([shape[a] for a in res]))
    s_in, zp_in = _scale(rng), _zp(rng)
    what = op
    if op == "REDUCE_MAX" or (op == "MEAN" and rng.random() < 0.35):
        s_out, zp_out = s_in, zp_in
        what += ":same"
    elif op == "SUM":
        s_out, zp_out = s_in * count * float(2.0 ** rng.uniform(-5, 1)) / 8, _zp(rng)
        if rng.random() < 0.1:
            s_out = s_in * float(2.0 ** rng.uniform(-8, -2))               # saturating, shift > 0
    else:
        s_out, zp_out = s_in * float(2.0 ** rng.uniform(-3, 3)), _zp(rng)
        if rng.random() < 0.2:
            zp_out = zp_in                                                  # zp same, scale not
    m = _Model()
    x = m.tensor("x", shape, "INT8", s_in, zp_in)
    a = m.tensor("axis", (len(axes),), "INT32", data=np.asarray(axes, np.int32))
    y = m.tensor("y", out_shape, "INT8", s_out, zp_out)
    o = schema.ReducerOptionsT()
    o.keepDims = keep
    m.op(op, [x, a], [y], o, schema.BuiltinOptions.ReducerOptions)
    return what, m.finish([x], [y]), [_values(rng, shape)]


def _arg_max_model(shape: tuple[int, ...], axis: int, out_type: str, axis_type: str, scale: float,
                   zp: int) -> bytes:
    rank = len(shape)
    out_shape = [d for i, d in enumerate(shape) if i != axis % rank] or [1]
    m = _Model()
    x = m.tensor("x", shape, "INT8", scale, zp)
    a = m.tensor("axis", (1,), axis_type, data=np.asarray([axis]))
    y = m.tensor("y", out_shape, out_type)
    o = schema.ArgMaxOptionsT()
    o.outputType = getattr(schema.TensorType, out_type)
    m.op("ARG_MAX", [x, a], [y], o, schema.BuiltinOptions.ArgMaxOptions)
    return m.finish([x], [y])


def arg_max_case(rng: np.random.Generator) -> tuple[str, bytes, list[np.ndarray], bytes | None]:
    """tflite-micro's ARG_MAX only takes an int32 axis and writes int32; models with an int64 axis or
    output (tf.argmax's default) are checked against the int32 twin's result, widened."""
    shape = _shape(rng)
    rank = len(shape)
    axis = int(rng.integers(0, rank))
    if rng.random() < 0.3:
        axis -= rank
    out_type = "INT64" if rng.random() < 0.4 else "INT32"
    axis_type = "INT64" if rng.random() < 0.2 else "INT32"
    scale, zp = _scale(rng), _zp(rng)
    tfl = _arg_max_model(shape, axis, out_type, axis_type, scale, zp)
    oracle = None
    if (out_type, axis_type) != ("INT32", "INT32"):
        oracle = _arg_max_model(shape, axis, "INT32", "INT32", scale, zp)
    return f"ARG_MAX:{out_type}", tfl, [_values(rng, shape)], oracle


def transpose_conv_case(rng: np.random.Generator) -> tuple[str, bytes, list[np.ndarray]]:
    n = int(rng.integers(1, 3))
    ih, iw = int(rng.integers(1, 7)), int(rng.integers(1, 7))
    ic, oc = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    padding = "SAME" if rng.random() < 0.5 else "VALID"
    if padding == "SAME":
        oh, ow = ih * sh, iw * sw
    else:
        oh, ow = (ih - 1) * sh + kh, (iw - 1) * sw + kw
    per_channel = rng.random() < 0.7
    s_in, zp_in = _scale(rng), _zp(rng)
    f_scales = (10.0 ** rng.uniform(-3, -1, size=oc if per_channel else 1)).astype(np.float32)
    taps = max(1, (kh * kw * ic) // max(1, sh * sw))
    s_out = float(s_in * float(np.median(f_scales)) * np.sqrt(taps) * 74 * 73 / 40 * 2.0 ** rng.uniform(-2, 2))
    if rng.random() < 0.1:
        s_out /= 2.0 ** 12                                                 # large multipliers
    w = rng.integers(-127, 128, size=(oc, kh, kw, ic)).astype(np.int8)
    m = _Model()
    shp = m.tensor("output_shape", (4,), "INT32", data=np.asarray([n, oh, ow, oc], np.int32))
    f = m.tensor("w", (oc, kh, kw, ic), "INT8", [float(s) for s in f_scales], 0, 0, w)
    x = m.tensor("x", (n, ih, iw, ic), "INT8", s_in, zp_in)
    ins = [shp, f, x]
    if rng.random() < 0.7:
        bs = (np.float32(s_in) * f_scales).astype(np.float32)
        bias = np.clip(np.round(rng.normal(0, 74 * 73 * np.sqrt(taps), size=oc)), -2**24, 2**24).astype(np.int32)
        ins.append(m.tensor("b", (oc,), "INT32", [float(s) for s in np.broadcast_to(bs, (oc,))], 0, 0, bias))
    y = m.tensor("y", (n, oh, ow, oc), "INT8", s_out, _zp(rng))
    o = schema.TransposeConvOptionsT()
    o.padding = getattr(schema.Padding, padding)
    o.strideW, o.strideH = sw, sh
    act = "NONE" if rng.random() < 0.7 else "RELU"
    o.fusedActivationFunction = getattr(schema.ActivationFunctionType, act)
    m.op("TRANSPOSE_CONV", ins, [y], o, schema.BuiltinOptions.TransposeConvOptions)
    return f"TRANSPOSE_CONV:{padding}:{act}", m.finish([x], [y]), [_values(rng, (n, ih, iw, ic))]


# ------------------------------------------------------------------ engines

def _reference(tfl: bytes, inputs: list[np.ndarray], oracle: bytes | None) -> list[bytes]:
    """tflite-micro's outputs; from the int32 twin `oracle`, widened to int64, when given."""
    if oracle is None:
        return [np.ascontiguousarray(o).tobytes() for o in run_tflm(tfl, inputs)]
    return [np.ascontiguousarray(o).astype(np.int64 if "INT64" in _out_type(tfl) else np.int32).tobytes()
            for o in run_tflm(oracle, inputs)]


def _out_type(tfl: bytes) -> str:
    from tflite_build import read_op
    return str(read_op(tfl).outputs[0].dtype)


Case = tuple  # (what, tflite, inputs) or (what, tflite, inputs, oracle tflite | None)


def _check_cases(cases: list[Case], tmp: Path, name: str) -> dict[str, int]:
    from test_viper_engine import check_dual
    dual: list[tuple[bytes, bytes]] = []
    refs: list[list[bytes]] = []
    seen: dict[str, int] = {}
    for case in cases:
        what, tfl, inputs = case[:3]
        mpk = pack(tfl)
        names = [o.name for o in MpkFile(mpk).ops]
        assert names == [what.split(":")[0]], (what, names)
        ref = _reference(tfl, inputs, case[3] if len(case) > 3 else None)
        host, init = host_run(mpk, inputs)
        assert host == ref, f"{what}: host C engine differs from tflite-micro"
        refs.append(ref)
        dual.append((mpk, init))
        seen[what] = seen.get(what, 0) + 1
    results = run_dual(dual, tmp, name)
    counts = check_dual(dual, results, name)
    assert counts["ran"] == len(cases), counts
    for case, (mpk, _), res, ref in zip(cases, dual, results, refs, strict=True):
        what = case[0]
        assert res["c"] == (0, 0, 0, 0) and res["v"] == (0, 0, 0, 0), (what, res["c"], res["v"])
        assert outputs_of(mpk, res["ac"]) == ref, f"{what}: natmod differs from tflite-micro"
        assert outputs_of(mpk, res["av"]) == ref, f"{what}: viper differs from tflite-micro"
    return seen


def test_mean_sum_reduce_max(tmp_path: Path) -> None:
    rng = np.random.default_rng(41)
    cases = [reduce_case(op, rng) for op in ("MEAN", "SUM", "REDUCE_MAX") for _ in range(N_CASES + 20)]
    seen = _check_cases(cases, tmp_path, "reduce")
    assert seen["MEAN:same"] >= 15 and seen["MEAN"] >= 40, seen


def test_mean_global_average_pooling(tmp_path: Path) -> None:
    # GlobalAveragePooling2D / 1D as the converter writes them: MEAN over [1, 2] / [1]
    rng = np.random.default_rng(42)
    cases: list[tuple[str, bytes, list[np.ndarray]]] = []
    for i in range(24):
        shape: tuple[int, ...] = (1, int(rng.integers(1, 33)), int(rng.integers(1, 33)), int(rng.integers(1, 40)))
        axes = [1, 2]
        if i % 3 == 2:
            shape, axes = shape[:1] + shape[2:], [1]
        keep = bool(i % 2)
        out = [1 if j in axes else d for j, d in enumerate(shape)] if keep else \
            [d for j, d in enumerate(shape) if j not in axes]
        s_in, zp = _scale(rng), _zp(rng)
        same = i % 4 == 0
        m = _Model()
        x = m.tensor("x", shape, "INT8", s_in, zp)
        a = m.tensor("axis", (len(axes),), "INT32", data=np.asarray(axes, np.int32))
        y = m.tensor("y", out, "INT8", s_in if same else s_in * 0.7, zp if same else _zp(rng))
        o = schema.ReducerOptionsT()
        o.keepDims = keep
        m.op("MEAN", [x, a], [y], o, schema.BuiltinOptions.ReducerOptions)
        cases.append(("MEAN", m.finish([x], [y]), [_values(rng, shape)]))
    _check_cases(cases, tmp_path, "gap")


def test_arg_max(tmp_path: Path) -> None:
    rng = np.random.default_rng(44)
    seen = _check_cases([arg_max_case(rng) for _ in range(N_CASES + 20)], tmp_path, "argmax")
    assert seen["ARG_MAX:INT32"] >= 20 and seen["ARG_MAX:INT64"] >= 20, seen


def test_transpose_conv(tmp_path: Path) -> None:
    rng = np.random.default_rng(45)
    seen = _check_cases([transpose_conv_case(rng) for _ in range(N_CASES + 20)], tmp_path, "tconv")
    assert sum(v for k, v in seen.items() if "RELU" in k) >= 10, seen


# ------------------------------------------------------------------ malformed records

def _tensor_rec(f: MpkFile, i: int) -> int:
    return f.header["tensors_offset"] + 32 * i


def _param_off(f: MpkFile, op_i: int, p: int) -> int:
    op = f.ops[op_i]
    n_idx = len(op.inputs) + len(op.outputs)
    return op.record_offset + 8 + 2 * (n_idx + (n_idx & 1)) + 4 * p


def _set_dims(b: bytearray, f: MpkFile, ti: int, dims: tuple[int, ...]) -> None:
    """Rewrite a tensor's shape (keeping nbytes consistent for an int8 tensor of the same count)."""
    struct.pack_into("<B", b, _tensor_rec(f, ti) + 1, len(dims))
    struct.pack_into("<4H", b, _tensor_rec(f, ti) + 4, *(tuple(dims) + (0,) * (4 - len(dims))))


def _reduce_mpk(op: str, shape: tuple[int, ...], axes: list[int], out: list[int]) -> bytes:
    m = _Model()
    x = m.tensor("x", shape, "INT8", 0.1, 3)
    a = m.tensor("axis", (len(axes),), "INT32", data=np.asarray(axes, np.int32))
    y = m.tensor("y", out, "INT8", 0.1 if op == "REDUCE_MAX" else 0.05, 3 if op == "REDUCE_MAX" else -2)
    o = schema.ReducerOptionsT()
    o.keepDims = False
    m.op(op, [x, a], [y], o, schema.BuiltinOptions.ReducerOptions)
    return pack(m.finish([x], [y]))


def _malformed(rng: np.random.Generator) -> list[tuple[str, bytes, int]]:
    """(what, corrupted mpk, expected check code) for each op-specific check."""
    out: list[tuple[str, bytes, int]] = []
    for op in ("MEAN", "SUM", "REDUCE_MAX"):
        mpk = _reduce_mpk(op, (2, 3, 4, 5), [1, 2], [2, 5])
        f = MpkFile(mpk)
        b = bytearray(mpk)
        struct.pack_into("<i", b, _param_off(f, 0, 0), 0b0010)            # reduce h only: 40 outputs
        out.append((f"{op} mask vs output", with_crc(b), 50))
        b = bytearray(mpk)
        struct.pack_into("<i", b, _param_off(f, 0, 0), 16)                 # mask out of range
        out.append((f"{op} mask range", with_crc(b), 100))
        b = bytearray(mpk)
        b[_tensor_rec(f, f.ops[0].outputs[0])] = 4                          # uint8 output (zero point 0..255)
        struct.pack_into("<i", b, _tensor_rec(f, f.ops[0].outputs[0]) + 20, 0)
        out.append((f"{op} output type", with_crc(b), 201))
    # RED_COUNT: 4096 x 4096 elements reduced into one (a big const input is not needed: the input
    # record is rewritten to claim a huge arena tensor, the check must fire before any bounds matter)
    mpk = _reduce_mpk("MEAN", (2, 3, 4, 5), [0, 1, 2, 3], [1])
    f = MpkFile(mpk)
    b = bytearray(mpk)
    struct.pack_into("<i", b, _param_off(f, 0, 0), 0b0011)
    _set_dims(b, f, f.ops[0].inputs[0], (120,))                           # 4-D (1,1,1,120): n, h reduced
    out.append(("MEAN shape after rank change", with_crc(b), 50))
    sh = bytearray(mpk)
    struct.pack_into("<i", sh, _param_off(f, 0, 4), 31)
    out.append(("MEAN shift range", with_crc(sh), 104))
    # ARG_MAX: axis vs output shape, axis range, output type
    m = _Model()
    x = m.tensor("x", (3, 4, 5), "INT8", 0.1, 0)
    a = m.tensor("axis", (1,), "INT32", data=np.asarray([1], np.int32))
    y = m.tensor("y", (3, 5), "INT32")
    o = schema.ArgMaxOptionsT()
    o.outputType = schema.TensorType.INT32
    m.op("ARG_MAX", [x, a], [y], o, schema.BuiltinOptions.ArgMaxOptions)
    mpk = pack(m.finish([x], [y]))
    f = MpkFile(mpk)
    b = bytearray(mpk)
    struct.pack_into("<i", b, _param_off(f, 0, 0), 3)                      # axis c: 12 outputs, not 15
    out.append(("ARG_MAX axis vs output", with_crc(b), 52))
    b = bytearray(mpk)
    struct.pack_into("<i", b, _param_off(f, 0, 0), 4)
    out.append(("ARG_MAX axis range", with_crc(b), 100))
    b = bytearray(mpk)
    b[_tensor_rec(f, f.ops[0].outputs[0])] = 3                              # float32 output
    out.append(("ARG_MAX output type", with_crc(b), 201))
    # TRANSPOSE_CONV
    m = _Model()
    shp = m.tensor("output_shape", (4,), "INT32", data=np.asarray([1, 6, 6, 3], np.int32))
    w = rng.integers(-127, 128, size=(3, 3, 3, 2)).astype(np.int8)
    fw = m.tensor("w", (3, 3, 3, 2), "INT8", [0.01, 0.02, 0.03], 0, 0, w)
    x = m.tensor("x", (1, 3, 3, 2), "INT8", 0.1, 1)
    bt = m.tensor("b", (3,), "INT32", [0.001, 0.002, 0.003], 0, 0, np.asarray([5, -7, 100], np.int32))
    y = m.tensor("y", (1, 6, 6, 3), "INT8", 0.2, -3)
    o = schema.TransposeConvOptionsT()
    o.padding, o.strideW, o.strideH = schema.Padding.SAME, 2, 2
    m.op("TRANSPOSE_CONV", [shp, fw, x, bt], [y], o, schema.BuiltinOptions.TransposeConvOptions)
    mpk = pack(m.finish([x], [y]))
    f = MpkFile(mpk)
    ins = f.ops[0].inputs
    b = bytearray(mpk)
    _set_dims(b, f, ins[0], (3, 3, 2))
    out.append(("TCONV input rank", with_crc(b), 53))
    b = bytearray(mpk)
    _set_dims(b, f, ins[1], (3, 3, 2, 3))                                   # filter I = 3 != 2
    out.append(("TCONV filter channels", with_crc(b), 54))
    b = bytearray(mpk)
    _set_dims(b, f, f.ops[0].outputs[0], (1, 6, 9, 2))                     # output channels 2 != 3
    out.append(("TCONV output channels", with_crc(b), 54))
    b = bytearray(mpk)
    _set_dims(b, f, ins[0], (1, 9, 1, 2))                                   # same bytes, same channels: ok
    out.append(("TCONV other input shape", with_crc(b), 0))
    b = bytearray(mpk)
    struct.pack_into("<H", b, _tensor_rec(f, ins[2]) + 4, 2)               # bias of 2 values
    struct.pack_into("<I", b, _tensor_rec(f, ins[2]) + 16, 8)
    out.append(("TCONV bias length", with_crc(b), 55))
    b = bytearray(mpk)
    struct.pack_into("<H", b, _tensor_rec(f, ins[3]) + 4, 2)
    struct.pack_into("<I", b, _tensor_rec(f, ins[3]) + 16, 8)
    out.append(("TCONV mult length", with_crc(b), 56))
    data = f.header["data_offset"]
    for k, (idx, val) in enumerate(((3, -1), (4, 31), (4, -32))):
        b = bytearray(mpk)
        struct.pack_into("<i", b, data + f.tensors[ins[idx]].offset + 4 * (k % 3), val)
        out.append((f"TCONV requant value {k}", with_crc(b), 56))
    b = bytearray(mpk)
    struct.pack_into("<ii", b, _param_off(f, 0, 6), 10, 9)
    out.append(("TCONV act", with_crc(b), 57))
    b = bytearray(mpk)
    struct.pack_into("<i", b, _param_off(f, 0, 0), 0)
    out.append(("TCONV stride range", with_crc(b), 100))
    b = bytearray(mpk)
    b[_tensor_rec(f, ins[1]) + 2] = 0                                       # filter in the arena
    out.append(("TCONV filter storage", with_crc(b), 201))
    return out


def test_malformed_records_refused_alike(tmp_path: Path) -> None:
    from test_viper_engine import check_dual
    cases = _malformed(np.random.default_rng(5))
    dual = [(mpk, bytes(range(256)) * 64) for _, mpk, _ in cases]
    results = run_dual(dual, tmp_path, "malformed")
    check_dual(dual, results, "malformed")          # same statuses; same arena where both accept
    for (what, mpk, code), res in zip(cases, results, strict=True):
        host = prepare_status(mpk)
        if code == 0:
            assert host[0] == 0 and res["c"] == res["v"] == (0, 0, 0, 0) and res["ac"], (what, host, res["c"])
            continue
        assert host[:3] == (10, 0, code), (what, host)          # MPYML_E_OP, op 0, the check code
        assert res["c"][:3] == host[:3] and res["v"][:3] == host[:3], (what, res["c"], res["v"])


def test_packer_refuses_what_tflm_refuses() -> None:
    from mpyml.packer import PackError
    m = _Model()
    x = m.tensor("x", (2, 3), "INT8", 0.1, 3)
    a = m.tensor("axis", (1,), "INT32", data=np.asarray([1], np.int32))
    y = m.tensor("y", (2,), "INT8", 0.2, 3)
    m.op("REDUCE_MAX", [x, a], [y], schema.ReducerOptionsT(), schema.BuiltinOptions.ReducerOptions)
    try:
        pack(m.finish([x], [y]))
    except PackError as e:
        assert "same scale" in str(e)
    else:
        raise AssertionError("REDUCE_MAX with requantization was packed")


def test_opcodes_in_family_range() -> None:
    for name in ("MEAN", "SUM", "REDUCE_MAX", "ARG_MAX", "TRANSPOSE_CONV"):
        assert 41 <= OPCODES[name] <= 48


def test_extreme_params_c_equals_viper(tmp_path: Path) -> None:
    """Packed models rewritten with values TFLite never produces (multipliers 0 / 1 / 2^31-1, shifts -31
    and 30, extreme zero points, biases near the int32 limits): the C engine (host library and natmod)
    and viper agree byte for byte, whole arenas."""
    from test_viper_engine import check_dual
    rng = np.random.default_rng(47)
    big = (1 << 31) - 1
    dual: list[tuple[bytes, bytes]] = []
    hosts: list[bytes] = []
    for i in range(90):
        kind = i % 3
        if kind < 2:
            _, tfl, _ = reduce_case("MEAN" if kind == 0 else "SUM", rng)
            mpk = pack(tfl)
            f = MpkFile(mpk)
            b = bytearray(mpk)
            vals = [int(rng.choice([-128, 127, 0, int(rng.integers(-128, 128))])),
                    int(rng.choice([-128, 127, 0, int(rng.integers(-128, 128))])),
                    int(rng.choice([0, 1, big, 1 << 30, int(rng.integers(0, big))])),
                    int(rng.choice([-31, 30, 0, -1, 1, int(rng.integers(-31, 31))]))]
            struct.pack_into("<4i", b, _param_off(f, 0, 1), *vals)
        else:
            _, tfl, _ = transpose_conv_case(rng)
            mpk = pack(tfl)
            f = MpkFile(mpk)
            b = bytearray(mpk)
            ins = f.ops[0].inputs
            data = f.header["data_offset"]
            oc = f.tensors[ins[3]].shape[0]
            m = rng.choice(np.array([0, 1, big, 1 << 30], np.int64), size=oc)
            s = rng.choice(np.array([-31, 30, 0, 12, -12], np.int64), size=oc)
            struct.pack_into(f"<{oc}i", b, data + f.tensors[ins[3]].offset, *m.tolist())
            struct.pack_into(f"<{oc}i", b, data + f.tensors[ins[4]].offset, *s.tolist())
            if ins[2] != 0xFFFF:
                bias = rng.choice(np.array([big, -big - 1, 0, 1 << 30], np.int64), size=oc)
                struct.pack_into(f"<{oc}i", b, data + f.tensors[ins[2]].offset, *bias.tolist())
            struct.pack_into("<ii", b, _param_off(f, 0, 4), int(rng.choice([-127, 128])), int(rng.choice([-128, 127])))
        mpk = with_crc(b)
        hm = HostModel(mpk)
        init = rng.integers(0, 256, size=hm.arena_size, dtype=np.uint8)
        hm.arena[:] = init
        assert hm.invoke_status() == 0
        hosts.append(hm.arena.tobytes())
        dual.append((mpk, init.tobytes()))
    results = run_dual(dual, tmp_path, "extreme")
    counts = check_dual(dual, results, "extreme")
    assert counts["ran"] == len(dual), counts
    for i, res in enumerate(results):
        assert res["ac"] == hosts[i], f"case {i}: natmod differs from the host library"


def _word_engine(bits: int):
    """test_viper_engine.load_word_engine (viper_engine.py in CPython with `bits`-bit viper words) with
    this family's viper module converted the same way and importable as mpyml.viper_reduce."""
    import ast
    import sys
    import types

    import test_viper_engine as tve
    eng = tve.load_word_engine(bits)
    src = Path(tve.ENGINE_SRC).parent / "viper_reduce.py"
    tree = tve._ViperToWords().visit(ast.parse(src.read_text()))
    ast.fix_missing_locations(tree)
    mod = types.ModuleType("mpyml.viper_reduce")
    mod.__dict__.update({k: eng.__dict__[k] for k in ("__w", "ptr8", "ptr16", "ptr32", "uint")})
    fake = types.ModuleType("micropython")
    fake.viper = fake.native = fake.const = lambda f: f
    saved = sys.modules.get("micropython")
    sys.modules["micropython"] = fake
    try:
        exec(compile(tree, str(src), "exec"), mod.__dict__)
    finally:
        if saved is None:
            del sys.modules["micropython"]
        else:
            sys.modules["micropython"] = saved
    sys.modules["mpyml.viper_reduce"] = mod
    return eng


def test_word_size_semantics(tmp_path: Path) -> None:
    """The viper kernels with 32-bit machine words (ESP32, Cortex-M), simulated in CPython, give the C
    engine's bytes; the 64-bit simulation equals the real unix-port viper (a faithful model)."""
    import sys

    import test_viper_engine as tve
    rng = np.random.default_rng(48)
    cases: list[tuple[bytes, bytes]] = []
    for i in range(30):
        k = i % 5
        if k < 3:
            tfl = reduce_case(("MEAN", "SUM", "REDUCE_MAX")[k], rng)[1]
        elif k == 3:
            tfl = arg_max_case(rng)[1]
        else:
            tfl = transpose_conv_case(rng)[1]
        mpk = pack(tfl)
        hm = HostModel(mpk)
        cases.append((mpk, rng.integers(0, 256, size=hm.arena_size, dtype=np.uint8).tobytes()))
    res = run_dual(cases, tmp_path, "words")
    saved = sys.modules.get("mpyml.viper_reduce")
    try:
        for bits in (32, 64):
            eng = _word_engine(bits)
            for i, ((mpk, init), r) in enumerate(zip(cases, res, strict=True)):
                st, arena = tve._word_run(eng, mpk, init)
                assert st[:3] == r["c"][:3] and arena == r["ac"], f"{bits}-bit words: case {i} differs from C"
    finally:
        if saved is None:
            sys.modules.pop("mpyml.viper_reduce", None)
        else:
            sys.modules["mpyml.viper_reduce"] = saved


def test_larger_shapes(tmp_path: Path) -> None:
    """A few model-sized cases: GAP over 48x48x32, SUM of 16384 elements into one, REDUCE_MAX over rows,
    a 16-channel stride-2 transpose conv (SAME and VALID)."""
    rng = np.random.default_rng(49)
    cases: list[tuple[str, bytes, list[np.ndarray]]] = []
    for op, shape, axes, s_ratio in (("MEAN", (1, 48, 48, 32), [1, 2], 0.9), ("MEAN", (2, 30, 40), [-1], 1.0),
                                     ("SUM", (1, 32, 32, 16), [0, 1, 2, 3], 2000.0),
                                     ("SUM", (4, 1000), [1], 300.0), ("REDUCE_MAX", (3, 50, 60), [2], 1.0)):
        s_in, zp = _scale(rng), _zp(rng)
        out = [d for i, d in enumerate(shape) if i not in [a % len(shape) for a in axes]] or [1]
        same = op == "REDUCE_MAX"
        m = _Model()
        x = m.tensor("x", shape, "INT8", s_in, zp)
        a = m.tensor("axis", (len(axes),), "INT32", data=np.asarray(axes, np.int32))
        y = m.tensor("y", out, "INT8", s_in * s_ratio, zp if same else _zp(rng))
        m.op(op, [x, a], [y], schema.ReducerOptionsT(), schema.BuiltinOptions.ReducerOptions)
        cases.append((op, m.finish([x], [y]), [_values(rng, shape)]))
    for padding in ("SAME", "VALID"):
        for _ in range(2):
            sub = np.random.default_rng(int(rng.integers(1 << 30)))
            while True:
                case = transpose_conv_case(sub)
                if padding in case[0]:
                    break
            cases.append(case)
        w = rng.integers(-127, 128, size=(16, 3, 3, 16)).astype(np.int8)
        oh = 16 if padding == "SAME" else 17
        m = _Model()
        shp = m.tensor("output_shape", (4,), "INT32", data=np.asarray([1, oh, oh, 16], np.int32))
        f = m.tensor("w", (16, 3, 3, 16), "INT8", [float(s) for s in 10.0 ** rng.uniform(-3, -1, 16)], 0, 0, w)
        x = m.tensor("x", (1, 8, 8, 16), "INT8", 0.02, -5)
        y = m.tensor("y", (1, oh, oh, 16), "INT8", 0.5, 7)
        o = schema.TransposeConvOptionsT()
        o.padding, o.strideW, o.strideH = getattr(schema.Padding, padding), 2, 2
        m.op("TRANSPOSE_CONV", [shp, f, x], [y], o, schema.BuiltinOptions.TransposeConvOptions)
        cases.append(("TRANSPOSE_CONV", m.finish([x], [y]), [_values(rng, (1, 8, 8, 16))]))
    _check_cases(cases, tmp_path, "large")
