"""The elementwise family (LUT, DEQUANTIZE, QUANTIZE_F32, MUL, MAXIMUM, MINIMUM, SUB, SQUARED_DIFFERENCE,
PRELU) against tflite-micro.

Every case is a random single-op TFLite model packed with mpyml.pack and run by tflite-micro (the oracle),
the C engine through the host library, and both the C native module and the viper engine on the
MicroPython unix port (one process for all cases): outputs byte-identical everywhere (tolerance 0),
the whole arenas of the two unix-port engines identical, and no viper invoke allocates.
Then malformed records (each op-specific check, CRC recomputed): both loaders refuse with the same code.
"""

from __future__ import annotations

import functools
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from mpyml import pack
from mpyml.hostlib import prepare_status
from mpyml.lower.elementwise import affine_quantize, f32_to_key, key_to_f32, quantize_breakpoints
from mpyml.mpk import MpkFile, with_crc
from mpyml.spec import OPCODES
from ops.engines import host_run, outputs_of
from tflite_build import _Model, run_tflm

N_CASES = 60
UNARY = ("LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU", "ELU", "RELU", "RELU6")
BINARY = ("MUL", "MAXIMUM", "MINIMUM", "SUB", "SQUARED_DIFFERENCE", "PRELU")
SCALAR_OPS = ("MUL", "SUB", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE")
NP = {"INT8": np.int8, "UINT8": np.uint8, "FLOAT32": np.float32}


# ------------------------------------------------------------------ random single-op models

def _shape(rng: np.random.Generator, rank: int | None = None) -> tuple[int, ...]:
    r = int(rng.integers(1, 5)) if rank is None else rank
    return tuple(int(d) for d in rng.integers(1, 8, size=r))


def _scale(rng: np.random.Generator) -> float:
    return float(np.exp(rng.uniform(np.log(1e-3), np.log(2.0))))


def _zp(rng: np.random.Generator, dtype: str = "INT8") -> int:
    lo, hi = (-128, 128) if dtype == "INT8" else (0, 256)
    if rng.random() < 0.2:
        return int(rng.choice([lo, hi - 1, 0 if dtype == "INT8" else 128]))
    return int(rng.integers(lo, hi))


def _values(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    n = int(np.prod(shape))
    raw = rng.integers(0, 256, size=n).astype(np.uint8)
    raw[: min(n, 2)] = [0, 255][: min(n, 2)] if rng.random() < 0.5 else [127, 128][: min(n, 2)]
    return raw.view(NP[dtype]).reshape(shape)


def _options(op: str, rng: np.random.Generator) -> tuple[Any, int]:
    if op == "LEAKY_RELU":
        o = schema.LeakyReluOptionsT()
        o.alpha = float(rng.choice([0.01, 0.1, 0.2, 0.3, rng.uniform(0, 1), -0.5, 1.7]))
        return o, schema.BuiltinOptions.LeakyReluOptions
    if op == "MUL":
        o = schema.MulOptionsT()
        o.fusedActivationFunction = int(rng.choice([0, 1, 3]))   # NONE, RELU, RELU6
        return o, schema.BuiltinOptions.MulOptions
    if op == "SUB":
        o = schema.SubOptionsT()
        o.fusedActivationFunction = int(rng.choice([0, 1]))
        return o, schema.BuiltinOptions.SubOptions
    return None, 0


def unary_case(op: str, rng: np.random.Generator) -> tuple[bytes, list[np.ndarray]]:
    shape = _shape(rng)
    m = _Model()
    dt_in = dt_out = "INT8"
    if op == "QUANTIZE":
        dt_in, dt_out = [("INT8", "INT8"), ("UINT8", "INT8"), ("INT8", "UINT8")][int(rng.integers(3))]
    yq = (_scale(rng), _zp(rng, dt_out))
    if op == "LOGISTIC":
        yq = (1.0 / 256, -128)
    elif op == "TANH":
        yq = (1.0 / 128, 0)
    xs = _scale(rng)
    if op == "HARD_SWISH":      # TFLM: output multiplier exponent <= 0 (output scale >= input scale / 128)
        yq = (xs * float(rng.uniform(0.05, 2.0)), yq[1])
    x = m.tensor("x", shape, dt_in, xs, _zp(rng, dt_in))
    y = m.tensor("y", shape, dt_out, *yq)
    m.op(op, [x], [y], *_options(op, rng))
    return m.finish([x], [y]), [_values(rng, shape, dt_in)]


def dequantize_case(rng: np.random.Generator) -> tuple[bytes, list[np.ndarray]]:
    shape = _shape(rng)
    # uint8 -> float32 alone is refused by graph.unsupported_report as "a float model" (no int8 tensor), and
    # converted models never dequantize uint8: int8 input only
    dt = "INT8"
    m = _Model()
    x = m.tensor("x", shape, dt, _scale(rng) * float(rng.choice([1, 1e-6, 1e3])), _zp(rng, dt))
    y = m.tensor("y", shape, "FLOAT32")
    m.op("DEQUANTIZE", [x], [y])
    return m.finish([x], [y]), [_values(rng, shape, dt)]


SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45, -1e-45, 1e-38, 3.4e38, -3.4e38, 1e10,
                    -1e10, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5], dtype=np.float32)


def quantize_f32_case(rng: np.random.Generator) -> tuple[bytes, list[np.ndarray]]:
    shape = _shape(rng)
    n = int(np.prod(shape))
    scale = _scale(rng) * float(rng.choice([1, 1e-5, 1e4, 1e-30]))
    zp = _zp(rng)
    m = _Model()
    x = m.tensor("x", shape, "FLOAT32")
    y = m.tensor("y", shape, "INT8", scale, zp)
    m.op("QUANTIZE", [x], [y])
    keys, _ = quantize_breakpoints(scale, zp)
    pick = rng.integers(0, len(keys), size=n)
    near = key_to_f32(keys[pick].astype(np.int64) + rng.integers(-2, 2, size=n))
    vals = np.where(rng.random(n) < 0.5, near, (rng.normal(size=n) * 100 * scale).astype(np.float32))
    k = min(n, len(SPECIAL))
    vals[:k] = rng.permutation(SPECIAL)[:k]
    return m.finish([x], [y]), [vals.astype(np.float32).reshape(shape)]


def _broadcast_pair(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    out = _shape(rng)
    a = tuple(d if rng.random() < 0.7 else 1 for d in out)
    b = tuple(d if rng.random() < 0.5 else 1 for d in out)
    a = a[int(rng.integers(0, len(a))):] if rng.random() < 0.3 else a
    b = b[int(rng.integers(0, len(b))):] if rng.random() < 0.3 else b
    if rng.random() < 0.3:
        a = b = out
    return a or (1,), b or (1,)


def binary_case(op: str, rng: np.random.Generator) -> tuple[bytes, list[np.ndarray]]:
    sa, sb = _broadcast_pair(rng)
    if op == "PRELU":               # output = input shape, alpha broadcast against it
        sa = tuple(max(p, q) for p, q in zip((1,) * (max(len(sa), len(sb)) - len(sa)) + sa,
                                             (1,) * (max(len(sa), len(sb)) - len(sb)) + sb, strict=True))
    r = max(len(sa), len(sb))
    so = tuple(max(p, q) for p, q in zip((1,) * (r - len(sa)) + sa, (1,) * (r - len(sb)) + sb, strict=True))
    m = _Model()
    if op in ("MUL", "SUB", "SQUARED_DIFFERENCE", "PRELU"):
        qa, qb, qo = ((_scale(rng), _zp(rng)) for _ in range(3))
    else:
        qa = qb = qo = (_scale(rng), _zp(rng))
    const_b = rng.random() < 0.3
    a = m.tensor("a", sa, "INT8", *qa)
    bdata = _values(rng, sb, "INT8") if const_b else None
    if bdata is not None and bdata.size == 1:
        bdata = None                    # a scalar constant takes the table path (scalar_case)
        const_b = False
    elif bdata is not None and np.all(bdata == bdata.reshape(-1)[0]):
        bdata.reshape(-1)[0] ^= 1       # keep the binary kernel (not the scalar-table path)
    b = m.tensor("b", sb, "INT8", *qb, data=bdata)
    o = m.tensor("o", so, "INT8", *qo)
    m.op(op, [a, b], [o], *_options(op, rng))
    ins = [a] if const_b else [a, b]
    feeds = [_values(rng, sa, "INT8")] + ([] if const_b else [_values(rng, sb, "INT8")])
    return m.finish(ins, [o]), feeds


def scalar_case(op: str, rng: np.random.Generator) -> tuple[bytes, list[np.ndarray]]:
    shape = _shape(rng)
    m = _Model()
    qx, qc, qo = ((_scale(rng), _zp(rng)) for _ in range(3))
    if op in ("MAXIMUM", "MINIMUM"):
        qc = qo = qx
    cshape = tuple(1 for _ in range(int(rng.integers(1, len(shape) + 1))))
    if rng.random() < 0.3:
        cshape = (shape[-1],)
    cval = int(rng.integers(-128, 128))
    x = m.tensor("x", shape, "INT8", *qx)
    c = m.tensor("c", cshape, "INT8", *qc, data=np.full(cshape, cval, np.int8))
    o = m.tensor("o", shape, "INT8", *qo)
    m.op(op, [c, x] if rng.random() < 0.5 else [x, c], [o], *_options(op, rng))
    return m.finish([x], [o]), [_values(rng, shape, "INT8")]


# ------------------------------------------------------------------ engines

def _raw(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


def _check_cases(cases: list[tuple[str, bytes, list[np.ndarray]]], tmp: Path, expect_ops: dict[str, str],
                 oracle: Any = run_tflm) -> None:
    from test_viper_engine import check_dual, run_dual
    dual: list[tuple[bytes, bytes]] = []
    refs: list[list[bytes]] = []
    for what, tfl, inputs in cases:
        mpk = pack(tfl)
        names = [o.name for o in MpkFile(mpk).ops]
        assert names == [expect_ops.get(what, what.split(":")[0])], (what, names)
        ref = [_raw(o) for o in oracle(tfl, inputs)]
        host, init = host_run(mpk, inputs)
        assert host == ref, f"{what}: host C engine differs from tflite-micro"
        refs.append(ref)
        dual.append((mpk, init))
    results = run_dual(dual, tmp, "elementwise")
    check_dual(dual, results, "elementwise")
    for (what, _, _), (mpk, _), res, ref in zip(cases, dual, results, refs, strict=True):
        assert res["c"] == (0, 0, 0, 0) and res["v"] == (0, 0, 0, 0), (what, res["c"], res["v"])
        assert outputs_of(mpk, res["ac"]) == ref, f"{what}: natmod differs from tflite-micro"
        assert outputs_of(mpk, res["av"]) == ref, f"{what}: viper differs from tflite-micro"


def test_unary_and_8bit_quantize(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    cases = [(op, *unary_case(op, rng)) for op in (*UNARY, "QUANTIZE") for _ in range(N_CASES)]
    _check_cases(cases, tmp_path, {op: "LUT" for op in (*UNARY, "QUANTIZE")})


def _domain_case(op: str, rng: np.random.Generator) -> tuple[bytes, list[np.ndarray]]:
    """unary_case, with GELU's `approximate` option, and SQRT / RSQRT inputs inside the op's domain (TFLite's
    kernels fail the whole invoke on a negative input)."""
    tfl, inputs = unary_case(op, rng)
    if op == "GELU":
        m = schema.ModelT.InitFromPackedBuf(tfl, 0)
        o = schema.GeluOptionsT()
        o.approximate = bool(rng.random() < 0.5)
        m.subgraphs[0].operators[0].builtinOptionsType = schema.BuiltinOptions.GeluOptions
        m.subgraphs[0].operators[0].builtinOptions = o
        import flatbuffers
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        tfl = bytes(b.Output())
    if op in ("SQRT", "RSQRT"):
        m = schema.ModelT.InitFromPackedBuf(tfl, 0)
        zp = int(m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]].quantization.zeroPoint[0])
        x = inputs[0].astype(np.int64)
        inputs = [np.clip(x, zp, 127).astype(np.int8)]
    return tfl, inputs


def _tflite_ref(tfl: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from mpyml.tflm import TfliteRefRunner
    return TfliteRefRunner(tfl).run(inputs)


def test_unary_lut_ops_beyond_activations(tmp_path: Path) -> None:
    """ABS, RSQRT (tflite-micro's int8 kernels) and NEG, SQRT, EXP, LOG, GELU, RELU_N1_TO_1, RELU_0_TO_1
    (tflite-micro has no int8 kernel: TFLite's reference kernels are the oracle and compute the table) become
    LUTs, bit-exact on every engine; SQRT / RSQRT tables hold the domain's first entry below it."""
    from mpyml.lower.elementwise import TFLITE_REF_OPS
    rng = np.random.default_rng(5)
    n = 30
    cases = [(op, *_domain_case(op, rng)) for op in ("ABS", "RSQRT") for _ in range(n)]
    _check_cases(cases, tmp_path, {op: "LUT" for op in ("ABS", "RSQRT")})
    ref_cases = [(op, *_domain_case(op, rng)) for op in TFLITE_REF_OPS for _ in range(n)]
    _check_cases(ref_cases, tmp_path, dict.fromkeys(TFLITE_REF_OPS, "LUT"), oracle=_tflite_ref)
    # below the domain: the entry of the domain's first input (tflite-micro's RSQRT takes x = zp, real 0)
    m = _Model()
    x = m.tensor("x", (256,), "INT8", 0.02, -3)
    y = m.tensor("y", (256,), "INT8", 0.05, -100)
    m.op("RSQRT", [x], [y])
    f = MpkFile(pack(m.finish([x], [y])))
    table = f.const_array(f.tensors[f.ops[0].inputs[1]]).reshape(-1)
    first = int(table[-3 & 0xFF])                       # entry b: the input whose byte is b; x = zp = -3
    assert all(int(table[v & 0xFF]) == first for v in range(-128, -3)), table
    assert len(set(table.tolist())) > 10, "the in-domain entries vary"


def test_dequantize_and_float_quantize(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    cases = [("DEQUANTIZE", *dequantize_case(rng)) for _ in range(N_CASES)]
    cases += [("QUANTIZE", *quantize_f32_case(rng)) for _ in range(N_CASES)]
    _check_cases(cases, tmp_path, {"QUANTIZE": "QUANTIZE_F32"})


def test_binary(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    cases = [(op, *binary_case(op, rng)) for op in BINARY for _ in range(N_CASES)]
    cases += [(f"{op}:scalar", *scalar_case(op, rng)) for op in SCALAR_OPS for _ in range(N_CASES)]
    _check_cases(cases, tmp_path, {f"{op}:scalar": "LUT" for op in SCALAR_OPS})


# ------------------------------------------------------------------ QUANTIZE_F32 breakpoints, exhaustively

@pytest.mark.parametrize("scale,zp", [(0.05, -3), (0.00392157, -128), (1.0, 0), (0.1, 127), (1e-30, 5),
                                      (3e-5, -100), (7.5, 64)])
def test_quantize_breakpoints_match_tflm(scale: float, zp: int) -> None:
    keys, values = quantize_breakpoints(scale, zp)
    assert np.all(np.diff(keys.astype(np.int64)) > 0) and len(values) == len(keys) + 1
    around = (keys.astype(np.int64)[:, None] + np.arange(-3, 3)[None, :]).reshape(-1)
    around = around[(around >= -(2**31)) & (around < 2**31)]
    x = np.concatenate([key_to_f32(around), SPECIAL,
                        np.random.default_rng(4).normal(size=4000).astype(np.float32) * np.float32(300 * scale)])
    m = _Model()
    ti = m.tensor("x", (x.size,), "FLOAT32")
    to = m.tensor("y", (x.size,), "INT8", scale, zp)
    m.op("QUANTIZE", [ti], [to])
    ref = run_tflm(m.finish([ti], [to]), [x])[0]
    assert np.array_equal(affine_quantize(x, scale, zp), ref)
    j = np.searchsorted(keys.astype(np.int64), f32_to_key(x), side="right")
    assert np.array_equal(values[j], ref)


# ------------------------------------------------------------------ malformed records

def _tensor_rec(f: MpkFile, i: int) -> int:
    return f.header["tensors_offset"] + 32 * i


def _param_off(f: MpkFile, op_i: int, p: int) -> int:
    op = f.ops[op_i]
    n_idx = len(op.inputs) + len(op.outputs)
    return op.record_offset + 8 + 2 * (n_idx + (n_idx & 1)) + 4 * p


def _malformed(rng: np.random.Generator) -> list[tuple[str, bytes, int]]:
    """(what, corrupted mpk, expected check code) for each op-specific check."""
    out: list[tuple[str, bytes, int]] = []
    # LUT: table of another type than the output (same element size), output shape differs
    m = _Model()
    x = m.tensor("x", (2, 3), "INT8", 0.1, 0)
    y = m.tensor("y", (2, 3), "INT8", 0.05, 3)
    m.op("RELU", [x], [y])
    mpk = pack(m.finish([x], [y]))
    f = MpkFile(mpk)
    tab = f.ops[0].inputs[1]
    b = bytearray(mpk)
    b[_tensor_rec(f, tab)] = 4                                  # uint8 table for an int8 output
    out.append(("LUT table type", with_crc(b), 30))
    b = bytearray(mpk)
    struct.pack_into("<HH", b, _tensor_rec(f, f.ops[0].outputs[0]) + 4, 3, 2)
    out.append(("LUT shape", with_crc(b), 31))
    b = bytearray(mpk)
    b[_tensor_rec(f, tab)] = 2                                  # int32 table [64] (same bytes): operand rule
    struct.pack_into("<H", b, _tensor_rec(f, tab) + 4, 64)
    out.append(("LUT operand type", with_crc(b), 201))
    # DEQUANTIZE: output shape
    m = _Model()
    x = m.tensor("x", (4, 5), "INT8", 0.1, 7)
    y = m.tensor("y", (4, 5), "FLOAT32")
    m.op("DEQUANTIZE", [x], [y])
    mpk = pack(m.finish([x], [y]))
    f = MpkFile(mpk)
    b = bytearray(mpk)
    struct.pack_into("<HH", b, _tensor_rec(f, f.ops[0].outputs[0]) + 4, 5, 4)
    out.append(("DEQUANTIZE shape", with_crc(b), 31))
    # QUANTIZE_F32: keys out of order, values of the wrong type
    m = _Model()
    x = m.tensor("x", (7,), "FLOAT32")
    y = m.tensor("y", (7,), "INT8", 0.02, -1)
    m.op("QUANTIZE", [x], [y])
    mpk = pack(m.finish([x], [y]))
    f = MpkFile(mpk)
    kt = f.tensors[f.ops[0].inputs[1]]
    for _ in range(3):
        b = bytearray(mpk)
        i = int(rng.integers(0, kt.nbytes // 4 - 1))
        at = f.header["data_offset"] + kt.offset + 4 * i
        b[at:at + 8] = b[at + 4:at + 8] + b[at:at + 4]
        out.append((f"QUANTIZE keys swap {i}", with_crc(b), 32))
    b = bytearray(mpk)
    b[_tensor_rec(f, f.ops[0].inputs[2])] = 4
    out.append(("QUANTIZE values type", with_crc(b), 32))
    # MUL: act_min > act_max, a param out of its range; MAXIMUM: zero point differs
    m = _Model()
    a = m.tensor("a", (2, 3), "INT8", 0.1, 1)
    c = m.tensor("c", (3,), "INT8", 0.2, -2)
    o = m.tensor("o", (2, 3), "INT8", 0.3, 4)
    m.op("MUL", [a, c], [o])
    mpk = pack(m.finish([a, c], [o]))
    f = MpkFile(mpk)
    b = bytearray(mpk)
    struct.pack_into("<ii", b, _param_off(f, 0, 5), 10, -10)
    out.append(("MUL act", with_crc(b), 35))
    b = bytearray(mpk)
    struct.pack_into("<i", b, _param_off(f, 0, 4), 31)
    out.append(("MUL shift range", with_crc(b), 104))
    b = bytearray(mpk)
    struct.pack_into("<HH", b, _tensor_rec(f, f.ops[0].inputs[1]) + 4, 2, 0)   # [2] vs output [2, 3]
    struct.pack_into("<I", b, _tensor_rec(f, f.ops[0].inputs[1]) + 16, 2)
    out.append(("MUL broadcast", with_crc(b), 31))
    for opname, code_act in (("SUB", 10), ("SQUARED_DIFFERENCE", 10), ("PRELU", None)):
        m = _Model()
        a = m.tensor("a", (2, 3), "INT8", 0.1, 1)
        c = m.tensor("c", (3,), "INT8", 0.2, -2)
        o = m.tensor("o", (2, 3), "INT8", 0.3, 4)
        m.op(opname, [a, c], [o])
        mpk = pack(m.finish([a, c], [o]))
        f = MpkFile(mpk)
        if code_act is not None:
            b = bytearray(mpk)
            struct.pack_into("<ii", b, _param_off(f, 0, code_act), 5, -5)
            out.append((f"{opname} act", with_crc(b), 35))
            b = bytearray(mpk)
            struct.pack_into("<i", b, _param_off(f, 0, 3), 21 if opname == "SUB" else 8)
            out.append((f"{opname} left shift range", with_crc(b), 103))
        b = bytearray(mpk)
        struct.pack_into("<HH", b, _tensor_rec(f, f.ops[0].inputs[1]) + 4, 2, 0)
        struct.pack_into("<I", b, _tensor_rec(f, f.ops[0].inputs[1]) + 16, 2)
        out.append((f"{opname} broadcast", with_crc(b), 31))
    m = _Model()
    a = m.tensor("a", (2, 3), "INT8", 0.1, 1)
    c = m.tensor("c", (2, 1), "INT8", 0.1, 1)
    o = m.tensor("o", (2, 3), "INT8", 0.1, 1)
    m.op("MAXIMUM", [a, c], [o])
    mpk = pack(m.finish([a, c], [o]))
    f = MpkFile(mpk)
    b = bytearray(mpk)
    struct.pack_into("<i", b, _tensor_rec(f, f.ops[0].outputs[0]) + 20, 2)
    out.append(("MAXIMUM zero point", with_crc(b), 34))
    return out


def test_malformed_records_refused_alike(tmp_path: Path) -> None:
    from test_viper_engine import run_dual
    cases = _malformed(np.random.default_rng(5))
    results = run_dual([(mpk, b"") for _, mpk, _ in cases], tmp_path, "malformed")
    for (what, mpk, code), res in zip(cases, results, strict=True):
        host = prepare_status(mpk)
        assert host[:3] == (10, 0, code), (what, host)          # MPYML_E_OP, op 0, the check code
        assert res["c"][:3] == host[:3] and res["v"][:3] == host[:3], (what, res["c"], res["v"])


def test_opcodes_in_family_range() -> None:
    for name in ("LUT", "DEQUANTIZE", "QUANTIZE_F32", "MUL", "MAXIMUM", "MINIMUM", "SUB", "SQUARED_DIFFERENCE",
                 "PRELU"):
        assert 9 <= OPCODES[name] <= 24


# ------------------------------------------------------------------ whole models: float32 and uint8 I/O

@functools.lru_cache(maxsize=1)
def _keras_models() -> dict[str, bytes]:
    """A small Keras model converted full-integer with float32 I/O (QUANTIZE / DEQUANTIZE edges) and uint8 I/O
    (8-bit requantizing QUANTIZE edges); activations LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU and MUL."""
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 3), batch_size=1)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="hard_swish")(inp)
    h = keras.layers.LeakyReLU(negative_slope=0.2)(h)
    g = keras.layers.Conv2D(8, 1, activation="sigmoid")(h)
    h = keras.layers.Multiply()([h, g])
    h = keras.layers.Conv2D(4, 3, strides=2, activation="relu6")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(6, activation="tanh")(h)
    out = keras.layers.Dense(3)(h)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)

    def rep():  # noqa: ANN202
        for _ in range(32):
            yield [rng.standard_normal((1, 6, 6, 3)).astype(np.float32)]

    res = {}
    for io in ("float32", "uint8"):
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io == "uint8":
            conv.inference_input_type = tf.uint8
            conv.inference_output_type = tf.uint8
        res[io] = conv.convert()
    return res


def test_keras_model_float_and_uint8_io() -> None:
    from mpyml.unix_port import run_batch
    models = _keras_models()
    rng = np.random.default_rng(7)
    for io, tfl in models.items():
        mpk = pack(tfl)
        f = MpkFile(mpk)
        names = [o.name for o in f.ops]
        assert f.input_tensors()[0].dtype == io and f.output_tensors()[0].dtype == io, (io, names)
        if io == "float32":
            assert names[0] == "QUANTIZE_F32" and names[-1] == "DEQUANTIZE", names
            xs = [rng.standard_normal((1, 6, 6, 3)).astype(np.float32) * 2 for _ in range(6)]
            xs[0].reshape(-1)[:4] = [np.inf, -np.inf, 0.0, -0.0]
        else:
            assert names[0] == "LUT" and names[-1] == "LUT", names
            xs = [rng.integers(0, 256, size=(1, 6, 6, 3)).astype(np.uint8) for _ in range(6)]
        refs = [run_tflm(tfl, [x])[0] for x in xs]
        for engine in ("c", "viper"):
            got = run_batch(mpk, [[x] for x in xs], engine=engine).batch
            for i, (g, r) in enumerate(zip(got, refs, strict=True)):
                assert g[0].dtype == r.dtype and np.array_equal(g[0].reshape(r.shape).view(np.uint8),
                                                                r.view(np.uint8)), (io, engine, i, g[0], r)


# the device API on float32 / uint8 model edges (unix port, both engines)
DEVICE_API = r"""
import sys, struct
import mpyml
data = open(sys.argv[1], "rb").read()
xs = open(sys.argv[2], "rb").read()
out = open(sys.argv[3], "wb")
for eng in ("c", "viper"):
    m = mpyml.load(data, engine=eng)
    i, o = m.input, m.output
    assert i.dtype == sys.argv[4] and o.dtype == sys.argv[4], (i.dtype, o.dtype)
    assert sys.argv[4] in repr(m) and sys.argv[4] in repr(i), repr(m)
    assert m.info()["inputs"][0]["dtype"] == sys.argv[4]
    n = i.elements
    if i.dtype == "float32":
        vals = list(struct.unpack("<%df" % n, xs))
        assert i.size == 4 * n
    else:
        vals = [(b - i.zero_point) * i.scale for b in xs]
    r1 = m.predict(bytes(xs))                       # raw bytes of the input dtype
    r2 = m.predict(vals)                            # floats: stored as float32 / quantized
    assert bytes(o.buffer) == r1
    assert r2 == o.dequantize(), (r2, o.dequantize())
    out.write(r1)
    if i.dtype == "uint8":                          # out-of-range floats clamp to 0..255
        i.quantize([1e9] * n)
        assert bytes(i.buffer) == b"\xff" * n
        i.quantize([-1e9] * n)
        assert bytes(i.buffer) == b"\x00" * n
out.close()
print("API OK")
"""


def test_device_api_float_and_uint8_edges(tmp_path: Path) -> None:
    from mpyml.unix_port import run_micropython
    rng = np.random.default_rng(8)
    for io, tfl in _keras_models().items():
        mpk = pack(tfl)
        if io == "float32":
            x = rng.standard_normal((1, 6, 6, 3)).astype(np.float32)
        else:
            x = rng.integers(0, 256, size=(1, 6, 6, 3)).astype(np.uint8)
        ref = run_tflm(tfl, [x])[0]
        (tmp_path / "m.mpk").write_bytes(mpk)
        (tmp_path / "x.bin").write_bytes(x.tobytes())
        (tmp_path / "api.py").write_text(DEVICE_API)
        r = run_micropython([str(tmp_path / "api.py"), str(tmp_path / "m.mpk"), str(tmp_path / "x.bin"),
                             str(tmp_path / "y.bin"), io])
        assert r.returncode == 0 and "API OK" in r.stdout, r.stdout + r.stderr
        assert (tmp_path / "y.bin").read_bytes() == ref.tobytes() * 2


# ------------------------------------------------------------------ 32-bit words (ESP32, Cortex-M), this family

FAMILY_SRC = Path(__file__).resolve().parents[2] / "device" / "mpyml" / "viper_elementwise.py"


def _word_engine_with_family(bits: int) -> Any:
    """test_viper_engine.load_word_engine (viper_engine.py under `bits`-bit viper semantics in CPython) with
    this family's viper module transformed the same way and sharing its simulated memory."""
    import ast
    import sys
    import types

    from test_viper_engine import _Ptr, _ViperToWords, load_word_engine
    eng = load_word_engine(bits)
    mem = eng.mem
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)

    def ptr(size: int) -> Any:
        def cast(x: Any) -> Any:
            if isinstance(x, _Ptr):
                return _Ptr(mem, x.addr, size)
            if isinstance(x, int):
                return _Ptr(mem, x & mask, size)
            return _Ptr(mem, mem.base(x), size)
        return cast

    fake = types.ModuleType("micropython")
    fake.viper = fake.native = fake.const = lambda f: f     # type: ignore[attr-defined]
    tree = _ViperToWords().visit(ast.parse(FAMILY_SRC.read_text()))
    ast.fix_missing_locations(tree)
    fam = types.ModuleType("mpyml.viper_elementwise")
    fam.__dict__.update(__w=lambda v: ((int(v) + sign) & mask) - sign, ptr8=ptr(1), ptr16=ptr(2), ptr32=ptr(4),
                        uint=lambda v: int(v) & mask)
    saved = sys.modules.get("micropython")
    sys.modules["micropython"] = fake
    try:
        exec(compile(tree, str(FAMILY_SRC), "exec"), fam.__dict__)
    finally:
        if saved is None:
            del sys.modules["micropython"]
        else:
            sys.modules["micropython"] = saved
    eng._FAMS.clear()
    eng._FAMS[1] = fam
    return eng


@pytest.mark.parametrize("bits", [32, 64])
def test_viper_word_size_semantics(bits: int) -> None:
    """The family's viper kernels with 32-bit words (ESP32 / Cortex-M) match the C engine; 64 checks the
    simulation itself against the C engine too."""
    from test_viper_engine import _word_run
    eng = _word_engine_with_family(bits)
    rng = np.random.default_rng(9 + bits)
    cases = [unary_case(op, rng) for op in ("LOGISTIC", "QUANTIZE") for _ in range(3)]
    cases += [dequantize_case(rng) for _ in range(3)] + [quantize_f32_case(rng) for _ in range(6)]
    cases += [binary_case(op, rng) for op in BINARY for _ in range(5)]
    bad = []
    for i, (tfl, inputs) in enumerate(cases):
        mpk = pack(tfl)
        host, init = host_run(mpk, inputs)
        st, arena = _word_run(eng, mpk, init)
        if st != (0, 0, 0, 0) or outputs_of(mpk, arena) != host:
            bad.append((i, MpkFile(mpk).ops[0].name, st))
    assert not bad, f"{bits}-bit words: {len(bad)}/{len(cases)} cases differ from C: {bad[:5]}"
