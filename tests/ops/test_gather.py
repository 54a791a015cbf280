"""GATHER (gather family, native_modules/engine/ops/gather.c, device/mpyml/viper_gather.py) against tflite-micro.

Random single-op models (Keras Embedding, tf.gather forms): params int8 / uint8 / int16 / int32, constant
or an activation, ranks 1..4; indices int32 / int16 (a model input or a constant). tflite-micro (this build) runs
GATHER on int8 params with int32 indices only; for uint8 / int16 / int32 params and int16 indices (which TFLite's
gather.cc takes) the oracle is numpy's take, the copy TFLite's reference Gather makes;
any axis, batch_dims up to axis; Keras 3's negative-index wrap (LESS / ADD / SELECT_V2, fused into the op's wrap
param) against TensorFlow Lite's reference kernels. Outputs byte-identical on tflite-micro, the C engine (host
library), and the C native module and the viper engine on the unix port (both arenas identical, no viper
allocation). Malformed records: both loaders refuse with the same check code. Indices out of range at
invoke: the C engine returns
MPYML_E_INDEX, the native module and viper raise ValueError, and the output is left unwritten (every index is
validated before the first copy).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from mpyml import pack
from mpyml.hostlib import E_INDEX, HostModel, prepare_status
from mpyml.mpk import MpkFile, with_crc
from mpyml.packer import PackError
from mpyml.spec import OPCODES
from mpyml.unix_port import run_micropython
from ops.engines import host_run, outputs_of
from ops.test_reduce import _param_off, _set_dims, _tensor_rec
from test_viper_engine import check_dual, run_dual
from tflite_build import _Model, run_tflm

N_CASES = 60
_NP = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32, "FLOAT32": np.float32}


def _gather_model(xshape: tuple[int, ...], ishape: tuple[int, ...], axis: int, bd: int, dtype: str = "INT8",
                  x_const: np.ndarray | None = None, i_const: np.ndarray | None = None,
                  idt: str = "INT32") -> bytes:
    m = _Model()
    q = (0.05, 3) if dtype == "INT8" else ((0.05, 130) if dtype == "UINT8" else (None, None))
    x = m.tensor("x", xshape, dtype, *q, data=x_const)
    i = m.tensor("idx", ishape, idt, data=i_const)
    a = axis % len(xshape)
    yshape = tuple(xshape[:a]) + tuple(ishape[bd:]) + tuple(xshape[a + 1:])
    y = m.tensor("y", yshape, dtype, *q)
    o = schema.GatherOptionsT()
    o.axis, o.batchDims = axis, bd
    m.op("GATHER", [x, i], [y], o, schema.BuiltinOptions.GatherOptions)
    ins = [t for t, c in ((x, x_const), (i, i_const)) if c is None]
    return m.finish(ins, [y])


def _values(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    if dtype == "FLOAT32":
        return rng.normal(size=shape).astype(np.float32)
    info = np.iinfo(_NP[dtype])
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(_NP[dtype])


def _take(x: np.ndarray, idx: np.ndarray, axis: int, bd: int) -> np.ndarray:
    """TFLite reference_ops::Gather in numpy (the oracle where tflite-micro has no kernel: int16 indices)."""
    if bd == 0:
        return np.take(x, idx, axis=axis)
    return np.stack([_take(x[b], idx[b], axis - 1, bd - 1) for b in range(x.shape[0])])


def gather_case(rng: np.random.Generator, i: int) -> tuple[str, bytes, list[np.ndarray], bytes]:
    """(what, tflite, inputs, expected output bytes)."""
    while True:
        xr = int(rng.integers(1, 5))
        xshape = tuple(int(d) for d in rng.integers(1, 7, size=xr))
        axis = int(rng.integers(0, xr))
        bd = int(rng.integers(0, axis + 1)) if i % 3 == 0 else 0
        n_coord = int(rng.integers(0, 5 - xr + bd)) if 4 - xr + bd > 0 else 0
        ishape = tuple(xshape[:bd]) + tuple(int(d) for d in rng.integers(1, 6, size=n_coord))
        if len(ishape) == 0:
            ishape = (int(rng.integers(1, 6)),)
            if bd:
                continue
        if xr + len(ishape) - 1 - bd <= 4:
            break
    dtype = ("INT8", "INT8", "UINT8", "INT16", "INT32", "INT8")[i % 6] if i % 4 else "INT8"
    idt = "INT16" if i % 7 == 3 else "INT32"
    x = _values(rng, xshape, dtype)
    idx = rng.integers(0, xshape[axis], size=ishape).astype(_NP[idt])
    x_const = x if i % 2 == 0 else None
    i_const = idx if i % 5 == 4 and x_const is None else None
    neg = i % 8 == 5                                # a negative axis (TFLite normalizes it)
    tfl = _gather_model(xshape, ishape, axis - xr if neg else axis, bd, dtype, x_const, i_const, idt)
    ins = [a for a, c in ((x, x_const), (idx, i_const)) if c is None]
    if idt == "INT32" and dtype == "INT8":
        want = b"".join(np.ascontiguousarray(o).tobytes() for o in run_tflm(tfl, ins))
    else:
        want = np.ascontiguousarray(_take(x, idx.astype(np.int64), axis, bd)).tobytes()
    assert want == np.ascontiguousarray(_take(x, idx.astype(np.int64), axis, bd)).tobytes()
    return f"{dtype} x{xshape} idx{ishape}:{idt} axis {axis} bd {bd}", tfl, ins, want


def test_gather_bit_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(31)
    dual, wants = [], []
    for i in range(N_CASES):
        what, tfl, ins, want = gather_case(rng, i)
        mpk = pack(tfl)
        assert [o.name for o in MpkFile(mpk).ops] == ["GATHER"], what
        host, init = host_run(mpk, ins, garbage=True)
        assert b"".join(host) == want, what
        dual.append((mpk, init))
        wants.append(want)
    results = run_dual(dual, tmp_path, "gather")
    counts = check_dual(dual, results, "gather")
    assert counts["ran"] == N_CASES, counts
    for (mpk, _), res, want in zip(dual, results, wants, strict=True):
        assert b"".join(outputs_of(mpk, res["ac"])) == want and b"".join(outputs_of(mpk, res["av"])) == want


def test_embedding_shape(tmp_path: Path) -> None:
    """Keras Embedding(50, 8) on 12 int32 tokens: GATHER of a constant [50, 8] table by an int32 model input."""
    rng = np.random.default_rng(7)
    table = rng.integers(-128, 128, size=(50, 8)).astype(np.int8)
    tfl = _gather_model((50, 8), (1, 12), 0, 0, "INT8", x_const=table)
    mpk = pack(tfl)
    tok = rng.integers(0, 50, size=(1, 12)).astype(np.int32)
    want = run_tflm(tfl, [tok])[0].tobytes()
    assert want == table[tok].tobytes()
    host, init = host_run(mpk, [tok])
    assert host == [want]
    results = run_dual([(mpk, init)], tmp_path, "emb")
    check_dual([(mpk, init)], results, "emb")
    assert outputs_of(mpk, results[0]["ac"]) == [want] == outputs_of(mpk, results[0]["av"])


def _keras3_embedding(n: int, dim: int, tokens: int, table: np.ndarray) -> bytes:
    """What the converter makes of a Keras 3 Embedding: ops.take wraps negative ids with LESS / ADD / SELECT_V2
    before the GATHER."""
    m = _Model()
    i = m.tensor("ids", (1, tokens), "INT32")
    zero = m.tensor("zero", (), "INT32", data=np.asarray(0, np.int32))
    nn = m.tensor("n", (), "INT32", data=np.asarray(n, np.int32))
    less = m.tensor("less", (1, tokens), "BOOL")
    added = m.tensor("added", (1, tokens), "INT32")
    sel = m.tensor("sel", (1, tokens), "INT32")
    x = m.tensor("table", (n, dim), "INT8", 0.05, 3, data=table)
    y = m.tensor("y", (1, tokens, dim), "INT8", 0.05, 3)
    m.op("LESS", [i, zero], [less])
    m.op("ADD", [i, nn], [added], schema.AddOptionsT(), schema.BuiltinOptions.AddOptions)
    m.op("SELECT_V2", [less, added, i], [sel])
    o = schema.GatherOptionsT()
    o.axis, o.batchDims = 0, 0
    m.op("GATHER", [x, sel], [y], o, schema.BuiltinOptions.GatherOptions)
    return m.finish([i], [y])


def test_keras3_negative_index_wrap(tmp_path: Path) -> None:
    """graph.cleanup fuses the wrap into GATHER (param wrap = 1): ids -N..N-1 are bit-exact with TensorFlow Lite's
    reference kernels (tflite-micro's SELECT_V2 has no int32 kernel), -N-1 and N fail at invoke."""
    from mpyml.tflm import TfliteRefRunner
    rng = np.random.default_rng(9)
    table = rng.integers(-128, 128, size=(20, 6)).astype(np.int8)
    tfl = _keras3_embedding(20, 6, 10, table)
    mpk = pack(tfl)
    f = MpkFile(mpk)
    assert [o.name for o in f.ops] == ["GATHER"] and f.ops[0].params[2] == 1
    ref = TfliteRefRunner(tfl)
    dual, wants = [], []
    for k in range(8):
        ids = rng.integers(-20, 20, size=(1, 10)).astype(np.int32)
        ids[0, 0], ids[0, 1] = (-20, 19) if k == 0 else (ids[0, 0], ids[0, 1])
        want = ref.run([ids])[0].tobytes()
        assert want == table[ids].tobytes()
        host, init = host_run(mpk, [ids], garbage=True)
        assert host == [want]
        dual.append((mpk, init))
        wants.append(want)
    results = run_dual(dual, tmp_path, "wrap")
    check_dual(dual, results, "wrap")
    for res, want in zip(results, wants, strict=True):
        assert outputs_of(mpk, res["ac"]) == [want] == outputs_of(mpk, res["av"])
    hm = HostModel(mpk)
    xi = hm.inputs[0]
    for bad in (-21, 20, -(1 << 31)):
        ids = np.zeros(10, "<i4")
        ids[3] = bad
        hm.arena[xi.offset:xi.offset + 40] = np.frombuffer(ids.tobytes(), np.uint8)
        assert hm.invoke_status() == E_INDEX, bad


# ------------------------------------------------------------------ indices out of range at invoke

OOR = r"""
import sys, struct
import mpyml_engine as ce
from mpyml import viper_engine as ve
mpk = open(sys.argv[1], "rb").read()
off, n, guard = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for name, eng in (("c", ce), ("viper", ve)):
    ctx = bytearray(eng.ctx_size(mpk))
    assert eng.prepare(mpk, ctx) is None
    asz = struct.unpack_from("<I", mpk, 16)[0]
    for v in (-1, n, n + 1000, -2147483648, 2147483647, 0):
        arena = bytearray(b"\xa5" * asz)
        struct.pack_into("<3i", arena, off - 4, 0, v, 0)
        try:
            eng.invoke(mpk, arena, ctx)
            r = "ok"
        except ValueError as e:
            r = "ValueError" if "GATHER index out of range" in str(e) else "other"
        untouched = arena[guard:guard + 4] == b"\xa5\xa5\xa5\xa5"
        print(name, v, r, untouched)
"""


def _oor_model() -> tuple[bytes, HostModel]:
    table = np.arange(-64, 64, dtype=np.int8).reshape(16, 8)
    mpk = pack(_gather_model((16, 8), (3,), 0, 0, "INT8", x_const=table))
    return mpk, HostModel(mpk)


def test_index_out_of_range_at_invoke(tmp_path: Path) -> None:
    mpk, hm = _oor_model()
    xi, yo = hm.inputs[0], hm.outputs[0]
    for v in (-1, 16, 17, 1 << 20, -(1 << 31), (1 << 31) - 1):
        hm.arena[:] = 0xA5
        hm.arena[xi.offset:xi.offset + 12] = np.frombuffer(np.array([1, v, 2], "<i4").tobytes(), np.uint8)
        assert hm.invoke_status() == E_INDEX, v
        assert bytes(hm.arena[yo.offset:yo.offset + yo.nbytes]) == b"\xa5" * yo.nbytes   # nothing written
    hm.arena[xi.offset:xi.offset + 12] = np.frombuffer(np.array([0, 15, 3], "<i4").tobytes(), np.uint8)
    assert hm.invoke_status() == 0
    assert bytes(hm.arena[yo.offset:yo.offset + 24]) == np.arange(-64, 64, dtype=np.int8).reshape(16, 8)[
        [0, 15, 3]].tobytes()
    # the unix port: the C native module and viper both refuse the same values, the output stays unwritten
    p = tmp_path / "oor.mpk"
    p.write_bytes(mpk)
    s = tmp_path / "oor.py"
    s.write_text(OOR)
    r = run_micropython([str(s), str(p), str(xi.offset + 4), "16", str(yo.offset)])
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.split("\n")
    for eng in ("c", "viper"):
        got = [ln.split() for ln in lines if ln.startswith(eng + " ")]
        assert [g[2:] for g in got] == [["ValueError", "True"]] * 5 + [["ok", "False"]], (eng, got)


def test_const_index_out_of_range_refused() -> None:
    with pytest.raises(PackError, match="constant index is outside 0..15"):
        pack(_gather_model((16, 8), (2,), 0, 0, "INT8", i_const=np.array([3, 16], np.int32)))
    with pytest.raises(PackError, match="int16 or int32 indices"):
        pack(_gather_model((16, 8), (2,), 0, 0, "INT8", idt="INT64"))


# ------------------------------------------------------------------ malformed records

def _malformed() -> list[tuple[str, bytes, int]]:
    out: list[tuple[str, bytes, int]] = []
    mpk = pack(_gather_model((2, 5, 3), (2, 4), 1, 1, "INT8"))
    f = MpkFile(mpk)
    x, idx = f.ops[0].inputs
    y = f.ops[0].outputs[0]
    for what, ti, dims in (("output dims", y, (2, 3, 4)), ("output rank", y, (24,)), ("batch dims", idx, (4, 2)),
                           ("indices rank", idx, (8,))):
        b = bytearray(mpk)
        _set_dims(b, f, ti, dims)
        out.append((f"GATHER {what}", with_crc(b), 90))
    b = bytearray(mpk)
    struct.pack_into("<i", b, _param_off(f, 0, 1), 3)            # batch_end after axis
    out.append(("GATHER batch_end > axis", with_crc(b), 90))
    b = bytearray(mpk)
    struct.pack_into("<i", b, _param_off(f, 0, 0), 0)            # axis before the input's own dims
    struct.pack_into("<i", b, _param_off(f, 0, 1), 0)
    out.append(("GATHER axis outside rank", with_crc(b), 90))
    b = bytearray(mpk)
    struct.pack_into("<i", b, _param_off(f, 0, 0), 4)
    out.append(("GATHER axis range", with_crc(b), 100))
    b = bytearray(mpk)
    struct.pack_into("<i", b, _param_off(f, 0, 2), 2)
    out.append(("GATHER wrap range", with_crc(b), 102))
    b = bytearray(mpk)
    struct.pack_into("<i", b, _tensor_rec(f, y) + 20, 5)         # output zero point differs
    out.append(("GATHER output zero point", with_crc(b), 91))
    b = bytearray(mpk)
    b[_tensor_rec(f, y)] = 4                                     # uint8 output of int8 params
    out.append(("GATHER output type", with_crc(b), 91))
    b = bytearray(mpk)
    b[_tensor_rec(f, idx)] = 3                                   # float32 indices (same byte count)
    out.append(("GATHER indices type", with_crc(b), 201))
    out.append(("GATHER ok", mpk, 0))
    return out


def test_malformed_records_refused_alike(tmp_path: Path) -> None:
    cases = _malformed()
    dual = [(mpk, bytes(8) * 1024) for _, mpk, _ in cases]      # index 0 everywhere: in range
    results = run_dual(dual, tmp_path, "malformed")
    check_dual(dual, results, "malformed")
    for (what, mpk, code), res in zip(cases, results, strict=True):
        host = prepare_status(mpk)
        if code == 0:
            assert host[0] == 0 and res["c"] == res["v"] == (0, 0, 0, 0) and res["ac"], (what, host, res["c"])
            continue
        assert host[:3] == (10, 0, code), (what, host)
        assert res["c"][:3] == host[:3] and res["v"][:3] == host[:3], (what, res["c"], res["v"])


def test_opcode_free_code() -> None:
    assert OPCODES["GATHER"] == 31


def test_sanitizer_fuzz_gather(tmp_path: Path) -> None:
    """The loader mutation driver (ASan + UBSan host build, tests/test_loader_robustness.py) over GATHER models:
    corrupted records are refused, or run (or stop with MPYML_E_INDEX) without a sanitizer report."""
    import subprocess

    from test_loader_robustness import DRIVER, TESTS_MAKE, build_lock, parse_phases, run_driver
    with build_lock():
        r = subprocess.run(["make", "-s", "-C", str(TESTS_MAKE), "sanitize"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    rng = np.random.default_rng(51)
    seeds = []
    for i in range(8):
        p = tmp_path / f"seed{i}.mpk"
        p.write_bytes(pack(gather_case(rng, i)[1]))
        seeds.append(str(p))
    r = run_driver(DRIVER, ["-s", "31", "-f", "200", "-F", "1000", "-m", "4000", "-T", "200", "-t", "60",
                            "-o", str(tmp_path), *seeds], timeout=300)
    ph = parse_phases(r.stdout)
    assert ph["flip_crc"].accepted > 0 and ph["struct"].rejected.get("OP", 0) > 0, r.stdout[-2000:]


API = r"""
import sys, mpyml
for eng in ("c", "viper"):
    m = mpyml.load(sys.argv[1], engine=eng)
    t = m.inputs[0]
    m.predict([int(v) for v in sys.argv[2].split(",")])
    a = m.outputs[0].raw()
    b = m.predict(bytes(open(sys.argv[3], "rb").read()))
    print(eng, t.dtype, t.elements, t.raw(), a == [x - 256 if x > 127 else x for x in b], a)
    try:
        m.predict([0, 99, 1])
    except ValueError as e:
        print(eng, "refused", "GATHER index out of range" in str(e))
"""


def test_device_api_int32_input(tmp_path: Path) -> None:
    """mpyml.load on the unix port: an int32 input takes a list of ids (stored as int32, not quantized), raw()
    gives them back; an id outside the table raises ValueError on both engines."""
    mpk, hm = _oor_model()
    p = tmp_path / "emb.mpk"
    p.write_bytes(mpk)
    raw = tmp_path / "ids.bin"
    raw.write_bytes(np.array([3, 0, 15], "<i4").tobytes())
    s = tmp_path / "api.py"
    s.write_text(API)
    r = run_micropython([str(s), str(p), "3,0,15", str(raw)])
    assert r.returncode == 0, r.stdout + r.stderr
    want = np.arange(-64, 64, dtype=np.int8).reshape(16, 8)[[3, 0, 15]].reshape(-1).tolist()
    for eng in ("c", "viper"):
        assert f"{eng} int32 3 [3, 0, 15] True {want}" in r.stdout.replace("\n", " "), r.stdout
        assert f"{eng} refused True" in r.stdout, r.stdout
