"""BATCH_MATMUL (reduce family, native_modules/engine/ops/batch_matmul.c, viper_reduce._bmm) against tflite-micro.

Random single-op int8 models (ranks 2..4, adj_x / adj_y, broadcast batch dims, either operand constant,
extreme zero points and scales) packed with mpyml.pack and run by tflite-micro (the oracle), the C engine
through the host library, and the C native module and the viper engine on the MicroPython unix port:
outputs byte-identical everywhere, both unix-port arenas identical, no viper invoke allocating; the viper
kernel also with simulated 32-bit words. Then malformed records: both loaders refuse with the same code.
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
from ops.test_reduce import _param_off, _set_dims, _tensor_rec, _word_engine
from test_viper_engine import check_dual, run_dual
from tflite_build import _Model, run_tflm

N_CASES = 80


def _zp(rng: np.random.Generator) -> int:
    if rng.random() < 0.25:
        return int(rng.choice([-128, 127, 0]))
    return int(rng.integers(-128, 128))


def _values(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    v = rng.integers(-128, 128, size=shape).astype(np.int8)
    if rng.random() < 0.15:
        v.reshape(-1)[: v.size // 2] = rng.choice([-128, 127])
    return v


def _shapes(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], bool, bool]:
    """lhs, rhs, output shapes and adj_x, adj_y: batch dims broadcast as TFLM allows."""
    m, k, n = (int(rng.integers(1, 9)) for _ in range(3))
    if rng.random() < 0.1:
        k = int(rng.integers(30, 200))
    rank = int(rng.integers(2, 5))
    batch = [int(rng.integers(1, 4)) for _ in range(rank - 2)]
    lb, rb = list(batch), list(batch)
    for i in range(len(batch)):            # broadcast: one side 1
        u = rng.random()
        if u < 0.2:
            lb[i] = 1
        elif u < 0.4:
            rb[i] = 1
    lr = rank if rng.random() < 0.8 else int(rng.integers(2, rank + 1))   # the lower rank one is right-aligned
    rr = rank if lr < rank or rng.random() < 0.8 else int(rng.integers(2, rank + 1))
    lb, rb = lb[len(lb) - (lr - 2):], rb[len(rb) - (rr - 2):]
    r = max(lr, rr)
    full_l, full_r = [1] * (r - lr) + lb, [1] * (r - rr) + rb
    ob = [max(p, q) for p, q in zip(full_l[: r - 2], full_r[: r - 2], strict=True)]
    adj_x, adj_y = bool(rng.random() < 0.3), bool(rng.random() < 0.5)
    ls = (*lb, k, m) if adj_x else (*lb, m, k)
    rs = (*rb, n, k) if adj_y else (*rb, k, n)
    return tuple(ls), tuple(rs), (*ob, m, n), adj_x, adj_y


def bmm_case(rng: np.random.Generator) -> tuple[str, bytes, list[np.ndarray]]:
    ls, rs, ys, adj_x, adj_y = _shapes(rng)
    k = ls[-2] if adj_x else ls[-1]
    sl, sr = (float(10.0 ** rng.uniform(-3, 0)) for _ in range(2))
    so = float(sl * sr * np.sqrt(k) * 74 * 73 / 40 * 2.0 ** rng.uniform(-3, 3))
    if rng.random() < 0.08:
        so /= 2.0 ** 12                     # multiplier > 1: left shifts
    m = _Model()
    const = rng.choice(["none", "rhs", "lhs"], p=[0.7, 0.2, 0.1])
    ld = _values(rng, ls) if const == "lhs" else None
    rd = _values(rng, rs) if const == "rhs" else None
    a = m.tensor("lhs", ls, "INT8", sl, _zp(rng), data=ld)
    b = m.tensor("rhs", rs, "INT8", sr, _zp(rng), data=rd)
    y = m.tensor("y", ys, "INT8", so, _zp(rng))
    o = schema.BatchMatMulOptionsT()
    o.adjX, o.adjY = adj_x, adj_y
    m.op("BATCH_MATMUL", [a, b], [y], o, schema.BuiltinOptions.BatchMatMulOptions)
    ins = [t for t, d in ((a, ld), (b, rd)) if d is None]
    feeds = [_values(rng, s) for s, d in ((ls, ld), (rs, rd)) if d is None]
    return f"BATCH_MATMUL:{int(adj_x)}{int(adj_y)}:{const}", m.finish(ins, [y]), feeds


def test_batch_matmul_bit_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(46)
    cases = [bmm_case(rng) for _ in range(N_CASES)]
    dual: list[tuple[bytes, bytes]] = []
    refs: list[list[bytes]] = []
    seen: dict[str, int] = {}
    for what, tfl, inputs in cases:
        mpk = pack(tfl)
        assert [o.name for o in MpkFile(mpk).ops] == ["BATCH_MATMUL"], what
        ref = [np.ascontiguousarray(o).tobytes() for o in run_tflm(tfl, inputs)]
        host, init = host_run(mpk, inputs, garbage=True)
        assert host == ref, f"{what}: host C engine differs from tflite-micro"
        refs.append(ref)
        dual.append((mpk, init))
        for key in what.split(":")[1:]:
            seen[key] = seen.get(key, 0) + 1
    results = run_dual(dual, tmp_path, "bmm")
    counts = check_dual(dual, results, "bmm")
    assert counts["ran"] == len(cases), counts
    for (what, _, _), (mpk, _), res, ref in zip(cases, dual, results, refs, strict=True):
        assert res["c"] == (0, 0, 0, 0) and res["v"] == (0, 0, 0, 0), (what, res["c"], res["v"])
        assert outputs_of(mpk, res["ac"]) == ref, f"{what}: natmod differs from tflite-micro"
        assert outputs_of(mpk, res["av"]) == ref, f"{what}: viper differs from tflite-micro"
    assert all(seen.get(k, 0) >= 8 for k in ("00", "01", "10", "11", "rhs")), seen


def test_attention_shapes(tmp_path: Path) -> None:
    """The shapes keras MultiHeadAttention converts to: [1, H, T, d] x [1, H, T, d]^T and [1, H, T, T] x V."""
    rng = np.random.default_rng(47)
    dual, refs = [], []
    for h, t, d in ((2, 12, 8), (3, 10, 4), (1, 16, 16), (4, 25, 16)):
        for adj_y, rs, ys in ((True, (1, h, t, d), (1, h, t, t)), (False, (1, h, t, d), (1, h, t, d))):
            ls = (1, h, t, d) if adj_y else (1, h, t, t)
            m = _Model()
            a = m.tensor("q", ls, "INT8", 0.05, _zp(rng))
            b = m.tensor("k", rs, "INT8", 0.04, _zp(rng))
            y = m.tensor("y", ys, "INT8", 0.05 * 0.04 * d * 6, _zp(rng))
            o = schema.BatchMatMulOptionsT()
            o.adjX, o.adjY = False, adj_y
            m.op("BATCH_MATMUL", [a, b], [y], o, schema.BuiltinOptions.BatchMatMulOptions)
            tfl = m.finish([a, b], [y])
            feeds = [_values(rng, ls), _values(rng, rs)]
            mpk = pack(tfl)
            ref = [np.ascontiguousarray(x).tobytes() for x in run_tflm(tfl, feeds)]
            host, init = host_run(mpk, feeds)
            assert host == ref
            dual.append((mpk, init))
            refs.append(ref)
    results = run_dual(dual, tmp_path, "attn")
    check_dual(dual, results, "attn")
    for (mpk, _), res, ref in zip(dual, results, refs, strict=True):
        assert outputs_of(mpk, res["ac"]) == ref and outputs_of(mpk, res["av"]) == ref


def test_word_size_semantics(tmp_path: Path) -> None:
    """viper _bmm with simulated 32-bit words (Cortex-M, ESP32) and 64-bit words equals the C engine."""
    import sys

    import test_viper_engine as tve
    rng = np.random.default_rng(49)
    cases: list[tuple[bytes, bytes]] = []
    for _ in range(16):
        mpk = pack(bmm_case(rng)[1])
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


# ------------------------------------------------------------------ malformed records

def _bmm_mpk(ls: tuple[int, ...], rs: tuple[int, ...], ys: tuple[int, ...], adj_y: bool = False) -> bytes:
    m = _Model()
    a = m.tensor("lhs", ls, "INT8", 0.1, 3)
    b = m.tensor("rhs", rs, "INT8", 0.05, -2)
    y = m.tensor("y", ys, "INT8", 0.2, 1)
    o = schema.BatchMatMulOptionsT()
    o.adjX, o.adjY = False, adj_y
    m.op("BATCH_MATMUL", [a, b], [y], o, schema.BuiltinOptions.BatchMatMulOptions)
    return pack(m.finish([a, b], [y]))


def _malformed() -> list[tuple[str, bytes, int]]:
    out: list[tuple[str, bytes, int]] = []
    mpk = _bmm_mpk((2, 3, 4), (2, 4, 6), (2, 3, 6))
    f = MpkFile(mpk)
    lhs, rhs = f.ops[0].inputs
    yi = f.ops[0].outputs[0]
    for what, ti, dims in (("output rows", yi, (2, 6, 3)), ("output batch", yi, (1, 3, 12)),
                           ("depth", rhs, (2, 8, 3)), ("lhs batch", lhs, (3, 2, 4)),
                           ("rank 1", lhs, (24,)), ("output rank", yi, (36,))):
        b = bytearray(mpk)
        _set_dims(b, f, ti, dims)
        out.append((f"BMM {what}", with_crc(b), 95))
    b = bytearray(mpk)
    struct.pack_into("<i", b, _param_off(f, 0, 1), 1)          # adj_y on a [K, N] rhs: depth 6 != 4
    out.append(("BMM adj_y flag", with_crc(b), 95))
    b = bytearray(mpk)
    struct.pack_into("<i", b, _param_off(f, 0, 0), 2)
    out.append(("BMM adj_x range", with_crc(b), 100))
    b = bytearray(mpk)
    struct.pack_into("<i", b, _param_off(f, 0, 6), 31)
    out.append(("BMM shift range", with_crc(b), 106))
    b = bytearray(mpk)
    b[_tensor_rec(f, yi)] = 4                                  # uint8 output
    out.append(("BMM output type", with_crc(b), 202))
    ok = _bmm_mpk((2, 32768), (2, 32768), (2, 2), adj_y=True)
    out.append(("BMM depth 32768", ok, 0))
    f = MpkFile(ok)
    b = bytearray(ok)
    for ti, dims in ((f.ops[0].inputs[0], (1, 32769)), (f.ops[0].inputs[1], (1, 32769)),
                     (f.ops[0].outputs[0], (1, 1))):       # smaller tensors inside the same arena bytes
        _set_dims(b, f, ti, dims)
        struct.pack_into("<I", b, _tensor_rec(f, ti) + 16, int(np.prod(dims)))
    out.append(("BMM depth limit", with_crc(b), 96))
    return out


def test_malformed_records_refused_alike(tmp_path: Path) -> None:
    import pytest

    from mpyml.packer import PackError
    with pytest.raises(PackError, match="depth 32769"):
        _bmm_mpk((1, 32769), (32769, 1), (1, 1))
    cases = _malformed()
    dual = [(mpk, bytes(range(256)) * 1024) for _, mpk, _ in cases]
    results = run_dual(dual, tmp_path, "malformed")
    check_dual(dual, results, "malformed")
    for (what, mpk, code), res in zip(cases, results, strict=True):
        host = prepare_status(mpk)
        if code == 0:
            assert host[0] == 0 and res["c"] == res["v"] == (0, 0, 0, 0) and res["ac"], (what, host, res["c"])
            continue
        assert host[:3] == (10, 0, code), (what, host)
        assert res["c"][:3] == host[:3] and res["v"][:3] == host[:3], (what, res["c"], res["v"])


def test_opcode_in_family_range() -> None:
    assert 41 <= OPCODES["BATCH_MATMUL"] <= 48


def test_sanitizer_fuzz_bmm_and_div(tmp_path: Path) -> None:
    """The loader mutation driver (ASan + UBSan host build, tests/test_loader_robustness.py) over BATCH_MATMUL
    and DIV models: corrupted records are refused or run without a sanitizer report."""
    import subprocess

    from ops.test_div import _cases
    from test_loader_robustness import DRIVER, TESTS_MAKE, build_lock, parse_phases, run_driver
    with build_lock():
        r = subprocess.run(["make", "-s", "-C", str(TESTS_MAKE), "sanitize"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    rng = np.random.default_rng(50)
    seeds = []
    for i, tfl in enumerate([bmm_case(rng)[1] for _ in range(6)] + [c[1] for c in _cases(rng, 6)]):
        p = tmp_path / f"seed{i}.mpk"
        p.write_bytes(pack(tfl))
        seeds.append(str(p))
    r = run_driver(DRIVER, ["-s", "46", "-f", "200", "-F", "1000", "-m", "4000", "-T", "200", "-t", "60",
                            "-o", str(tmp_path), *seeds], timeout=300)
    ph = parse_phases(r.stdout)
    assert ph["flip_crc"].accepted > 0 and ph["struct"].rejected.get("OP", 0) > 0, r.stdout[-2000:]
