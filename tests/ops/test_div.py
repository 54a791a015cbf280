"""DIV of two int8 tensors (elementwise family, native_modules/engine/ops/elementwise_div.c, viper_elementwise._div)
against tflite-micro.

Random single-op models (4-D broadcasting, either input constant, fused RELU / RELU6, extreme zero points incl.
divisors that hit zero, scale ratios across the range the packer accepts) packed with mpyml.pack and run by
tflite-micro, the C engine (host library), the C native module and the viper engine on the unix port: outputs
byte-identical, both unix-port arenas identical, no viper invoke allocating; the viper kernel also with simulated
32-bit words. The packer's GetReciprocal table against an independent float model, and malformed records refused
alike by both loaders.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from mpyml import pack
from mpyml.hostlib import prepare_status
from mpyml.lower.elementwise import get_reciprocal
from mpyml.mpk import MpkFile, with_crc
from mpyml.packer import PackError
from mpyml.spec import OPCODES
from ops.engines import host_run, outputs_of
from ops.test_reduce import _param_off, _set_dims, _tensor_rec
from test_viper_engine import check_dual, run_dual
from tflite_build import _Model, run_tflm

N_CASES = 120


def _zp(rng: np.random.Generator) -> int:
    return int(rng.choice([-128, 127, 0])) if rng.random() < 0.25 else int(rng.integers(-128, 128))


def _broadcast_pair(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    r = int(rng.integers(1, 5))
    out = tuple(int(d) for d in rng.integers(1, 7, size=r))
    a = tuple(d if rng.random() < 0.7 else 1 for d in out)
    b = tuple(d if rng.random() < 0.6 else 1 for d in out)
    b = b[int(rng.integers(0, len(b))):] or (1,)
    bb = (1,) * (r - len(b)) + b
    return a, b, tuple(max(p, q) for p, q in zip(a, bb, strict=True))


def div_case(rng: np.random.Generator) -> tuple[str, bytes, list[np.ndarray]]:
    sa, sb, so = _broadcast_pair(rng)
    s1, s2 = (float(10.0 ** rng.uniform(-3, 0)) for _ in range(2))
    zp2 = _zp(rng)
    # the output range of x1 / x2: the smallest divisor magnitudes dominate; scale it like a calibrated model
    so_ = float(s1 / s2 * 2.0 ** rng.uniform(-6, 3) / 8)
    m = _Model()
    const = rng.choice(["none", "a", "b"], p=[0.7, 0.15, 0.15])
    ad = rng.integers(-128, 128, size=sa).astype(np.int8) if const == "a" else None
    bd = rng.integers(-128, 128, size=sb).astype(np.int8) if const == "b" else None
    if bd is not None and np.all(bd == bd.reshape(-1)[0]):
        bd.reshape(-1)[0] ^= 1
    if ad is not None and np.all(ad == ad.reshape(-1)[0]):
        ad.reshape(-1)[0] ^= 1
    a = m.tensor("a", sa, "INT8", s1, _zp(rng), data=ad)
    b = m.tensor("b", sb, "INT8", s2, zp2, data=bd)
    y = m.tensor("y", so, "INT8", so_, _zp(rng))
    o = schema.DivOptionsT()
    act = str(rng.choice(["NONE", "RELU", "RELU6"], p=[0.7, 0.2, 0.1]))
    o.fusedActivationFunction = getattr(schema.ActivationFunctionType, act)
    m.op("DIV", [a, b], [y], o, schema.BuiltinOptions.DivOptions)
    ins = [t for t, d in ((a, ad), (b, bd)) if d is None]
    feeds = []
    for s, d in ((sa, ad), (sb, bd)):
        if d is None:
            v = rng.integers(-128, 128, size=s).astype(np.int8)
            if s is sb and rng.random() < 0.5:
                v.reshape(-1)[: max(1, v.size // 4)] = zp2          # divisors of zero
            feeds.append(v)
    return f"DIV:{act}:{const}", m.finish(ins, [y]), feeds


def _cases(rng: np.random.Generator, n: int) -> list[tuple[str, bytes, list[np.ndarray]]]:
    out = []
    while len(out) < n:
        what, tfl, feeds = div_case(rng)
        try:
            pack(tfl)
        except PackError as e:
            assert "outside 0..63" in str(e), e
            continue
        out.append((what, tfl, feeds))
    return out


def test_div_bit_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(18)
    cases = _cases(rng, N_CASES)
    dual: list[tuple[bytes, bytes]] = []
    refs: list[list[bytes]] = []
    seen: dict[str, int] = {}
    for what, tfl, inputs in cases:
        mpk = pack(tfl)
        names = [o.name for o in MpkFile(mpk).ops]
        assert names == ["DIV"] or (names == ["LUT"] and not what.endswith("none")), (what, names)   # scalar const
        what = f"{what}:{names[0]}"
        ref = [np.ascontiguousarray(o).tobytes() for o in run_tflm(tfl, inputs)]
        host, init = host_run(mpk, inputs, garbage=True)
        assert host == ref, f"{what}: host C engine differs from tflite-micro"
        refs.append(ref)
        dual.append((mpk, init))
        for k in what.split(":")[1:]:
            seen[k] = seen.get(k, 0) + 1
    results = run_dual(dual, tmp_path, "div")
    counts = check_dual(dual, results, "div")
    assert counts["ran"] == len(cases), counts
    for (what, _, _), (mpk, _), res, ref in zip(cases, dual, results, refs, strict=True):
        assert res["c"] == (0, 0, 0, 0) and res["v"] == (0, 0, 0, 0), (what, res["c"], res["v"])
        assert outputs_of(mpk, res["ac"]) == ref, f"{what}: natmod differs from tflite-micro"
        assert outputs_of(mpk, res["av"]) == ref, f"{what}: viper differs from tflite-micro"
    assert seen.get("RELU", 0) >= 10 and seen.get("b", 0) >= 8 and seen.get("a", 0) >= 8, seen
    assert seen.get("DIV", 0) >= N_CASES * 3 // 4, seen


def test_reciprocal_table() -> None:
    """GetReciprocal(x) ~ 2^(31 - rs) / x: the Q0.31 value x * inv / 2^(31 + rs) is within 2^-27 of 1."""
    for x in range(1, 256):
        inv, rs = get_reciprocal(x)
        assert 0 <= rs <= 7 and abs(x * inv / 2.0 ** (31 + rs) - 1.0) < 2.0 ** -27, (x, inv, rs)


@pytest.mark.parametrize("bits", [32, 64])
def test_word_size_semantics(bits: int) -> None:
    """viper _div with simulated 32-bit words (Cortex-M, ESP32) and 64-bit words equals the C engine."""
    from ops.test_elementwise import _word_engine_with_family
    from test_viper_engine import _word_run
    eng = _word_engine_with_family(bits)
    rng = np.random.default_rng(19 + bits)
    bad = []
    for i, (_, tfl, inputs) in enumerate(_cases(rng, 16)):
        mpk = pack(tfl)
        host, init = host_run(mpk, inputs)
        st, arena = _word_run(eng, mpk, init)
        if st != (0, 0, 0, 0) or outputs_of(mpk, arena) != host:
            bad.append((i, st))
    assert not bad, f"{bits}-bit words: cases differ from C: {bad[:5]}"


def _div_mpk() -> bytes:
    m = _Model()
    a = m.tensor("a", (2, 3), "INT8", 0.1, 1)
    c = m.tensor("c", (3,), "INT8", 0.02, -2)
    o = m.tensor("o", (2, 3), "INT8", 0.5, 4)
    m.op("DIV", [a, c], [o], schema.DivOptionsT(), schema.BuiltinOptions.DivOptions)
    return pack(m.finish([a, c], [o]))


def _malformed() -> list[tuple[str, bytes, int]]:
    mpk = _div_mpk()
    f = MpkFile(mpk)
    x1, x2, tab = f.ops[0].inputs
    yi = f.ops[0].outputs[0]
    out: list[tuple[str, bytes, int]] = [("DIV ok", mpk, 0)]
    b = bytearray(mpk)
    _set_dims(b, f, tab, (256,))
    struct.pack_into("<I", b, _tensor_rec(f, tab) + 16, 1024)
    out.append(("DIV table length", with_crc(b), 97))
    b = bytearray(mpk)
    b[_tensor_rec(f, tab)] = 1                                   # int8 table: operand rule
    _set_dims(b, f, tab, (2048,))
    out.append(("DIV table type", with_crc(b), 202))
    b = bytearray(mpk)
    struct.pack_into("<ii", b, _param_off(f, 0, 4), 10, -10)
    out.append(("DIV act", with_crc(b), 35))
    b = bytearray(mpk)
    struct.pack_into("<i", b, _param_off(f, 0, 3), 31)
    out.append(("DIV shift range", with_crc(b), 103))
    b = bytearray(mpk)
    _set_dims(b, f, x2, (2,))
    struct.pack_into("<I", b, _tensor_rec(f, x2) + 16, 2)
    out.append(("DIV broadcast", with_crc(b), 31))
    b = bytearray(mpk)
    _set_dims(b, f, yi, (3, 2))
    out.append(("DIV output shape", with_crc(b), 31))
    assert x1 != x2
    return out


def test_malformed_records_refused_alike(tmp_path: Path) -> None:
    cases = _malformed()
    dual = [(mpk, bytes(range(256)) * 16) for _, mpk, _ in cases]
    results = run_dual(dual, tmp_path, "malformed")
    check_dual(dual, results, "malformed")
    for (what, mpk, code), res in zip(cases, results, strict=True):
        host = prepare_status(mpk)
        if code == 0:
            assert host[0] == 0 and res["c"] == res["v"] == (0, 0, 0, 0) and res["ac"], (what, host, res["c"])
            continue
        assert host[:3] == (10, 0, code), (what, host)
        assert res["c"][:3] == host[:3] and res["v"][:3] == host[:3], (what, res["c"], res["v"])


def test_packer_refuses_undefined_shifts() -> None:
    m = _Model()
    a = m.tensor("a", (4,), "INT8", 1e-9, 0)
    c = m.tensor("c", (4,), "INT8", 1.0, 0)
    o = m.tensor("o", (4,), "INT8", 1.0, 0)      # ratio 1e-9: shift -29, exponent > 63 for small |x1|
    m.op("DIV", [a, c], [o], schema.DivOptionsT(), schema.BuiltinOptions.DivOptions)
    with pytest.raises(PackError, match="outside 0..63"):
        pack(m.finish([a, c], [o]))


def test_opcode_in_family_range() -> None:
    assert 9 <= OPCODES["DIV"] <= 24
