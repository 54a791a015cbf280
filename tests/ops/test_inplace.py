"""The in-place conv variants (DEPTHWISE_CONV_2D_INPLACE, CONV_2D_INPLACE: host/mpyml/spec/ops_inplace.py).

Random single-op CONV_2D / DEPTHWISE_CONV_2D models whose output the planner writes over the input (the op
rewritten into its variant, flagged IN_PLACE, a scratch operand added): outputs byte-identical to tflite-micro and
to the out-of-place kernel (the same model packed without the variants) on the C engine (host library, arena
full of garbage), on the C native module and on the viper engine (unix port; whole arenas identical, no viper
invoke allocates). The shared models' arenas (KWS, ResNet-8) meet issue 10's bars, with unchanged MACs. Malformed
records (scratch too small, window too short, wrong overlaps): both loaders refuse with the same check code. The
heap after load on the unix port is the arena plus a constant.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_path
from mpyml import pack, planner
from mpyml.hostlib import prepare_status
from mpyml.mpk import MpkFile, with_crc
from mpyml.spec import OP_FLAGS, OPCODES
from ops.engines import host_run, outputs_of
from test_viper_engine import check_dual, run_dual
from tflite_build import conv2d_model, depthwise_model, run_tflm

N_CASES = 40
DW_IP, CONV_IP = OPCODES["DEPTHWISE_CONV_2D_INPLACE"], OPCODES["CONV_2D_INPLACE"]
IN_PLACE = OP_FLAGS["IN_PLACE"]


def _fused(rng: np.random.Generator) -> str:
    return str(rng.choice(["NONE", "NONE", "RELU", "RELU6"]))


def _mode(rng: np.random.Generator) -> str:
    return str(rng.choice(["normal", "normal", "normal", "large", "tiny", "mixed"]))


def conv_case(rng: np.random.Generator) -> tuple[str, bytes]:
    """A CONV_2D whose output has the input's byte count (what the in-place variant takes)."""
    n = 2 if rng.random() < 0.2 else 1
    kind = int(rng.integers(0, 3))
    c = int(rng.integers(1, 9))
    if kind == 2:           # stride 2, SAME, 4x the channels: RO = 2 RI, the window keeps rows destroyed early
        h, w = 2 * int(rng.integers(2, 7)), 2 * int(rng.integers(2, 7))
        kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        tfl = conv2d_model(rng, (n, h, w, c), 4 * c, kernel, (2, 2), (1, 1), "SAME", _fused(rng),
                           bool(rng.random() < 0.7), bool(rng.random() < 0.8), _mode(rng))
        return "stride2", tfl
    h, w = int(rng.integers(3, 13)), int(rng.integers(3, 13))
    kernel = (1, 1) if kind == 1 else (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if kind == 0 else (1, 1)
    tfl = conv2d_model(rng, (n, h, w, c), c, kernel, (1, 1), dil, "SAME", _fused(rng), bool(rng.random() < 0.7),
                       bool(rng.random() < 0.8), _mode(rng))
    return ("1x1" if kind == 1 else "kxk"), tfl


def dw_case(rng: np.random.Generator) -> tuple[str, bytes]:
    n = 2 if rng.random() < 0.2 else 1
    h, w, c = int(rng.integers(2, 13)), int(rng.integers(2, 13)), int(rng.integers(1, 17))
    kernel = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    return "dw", depthwise_model(rng, (n, h, w, c), 1, kernel, (1, 1), dil, "SAME", _fused(rng),
                                 bool(rng.random() < 0.7), bool(rng.random() < 0.8), _mode(rng))


def _pack_out_of_place(tfl: bytes, monkeypatch: pytest.MonkeyPatch) -> bytes:
    with monkeypatch.context() as m:
        m.setattr(planner, "_conv_variants", lambda *a: {})
        return pack(tfl)


def _pack_in_place(tfl: bytes) -> bytes:
    """Packed with every in-place variant allowed (the slower depthwise one too, as `pack --max-ram` does when
    the default plan does not fit; the default pack takes only the conv variant, which costs no speed)."""
    from mpyml.graph import cleanup
    from mpyml.packer import lower, read_tflite, serialize
    model, _ = cleanup(read_tflite(tfl))
    return serialize(lower(model, slow_in_place=True))


def _run_cases(cases: list[tuple[str, bytes]], tmp: Path, name: str, monkeypatch: pytest.MonkeyPatch,
               want: int) -> dict[str, int]:
    dual: list[tuple[bytes, bytes]] = []
    refs: list[list[bytes]] = []
    seen: dict[str, int] = {}
    rng = np.random.default_rng(len(cases))
    for what, tfl in cases:
        mpk = _pack_in_place(tfl)
        f = MpkFile(mpk)
        if [o.opcode for o in f.ops] != [want]:
            seen["not in place"] = seen.get("not in place", 0) + 1
            continue
        op = f.ops[0]
        assert op.flags == IN_PLACE
        x, y = f.tensors[op.inputs[0]], f.tensors[op.outputs[0]]
        assert (x.offset, x.nbytes) == (y.offset, y.nbytes), what
        flat = _pack_out_of_place(tfl, monkeypatch)
        assert MpkFile(flat).header["arena_size"] > f.header["arena_size"], what
        x_in = rng.integers(-128, 128, size=x.shape, dtype=np.int8)
        ref = [np.ascontiguousarray(o).tobytes() for o in run_tflm(tfl, [x_in])]
        host, init = host_run(mpk, [x_in], garbage=True)
        assert host == ref, f"{what}: in-place C kernel differs from tflite-micro"
        assert host_run(flat, [x_in], garbage=True)[0] == host, f"{what}: in-place and out-of-place kernels differ"
        dual.append((mpk, init))
        refs.append(ref)
        seen[what] = seen.get(what, 0) + 1
    results = run_dual(dual, tmp, name)
    counts = check_dual(dual, results, name)
    assert counts["ran"] == len(dual), counts
    for (mpk, _), res, ref in zip(dual, results, refs, strict=True):
        assert outputs_of(mpk, res["ac"]) == ref, "natmod differs from tflite-micro"
        assert outputs_of(mpk, res["av"]) == ref, "viper differs from tflite-micro"
    return seen


def test_conv2d_inplace_random(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, natmod_x64: Path) -> None:
    rng = np.random.default_rng(65)
    seen = _run_cases([conv_case(rng) for _ in range(N_CASES)], tmp_path, "conv_ip", monkeypatch, CONV_IP)
    assert seen.get("kxk", 0) >= 8 and seen.get("1x1", 0) >= 6 and seen.get("stride2", 0) >= 6, seen
    assert seen.get("not in place", 0) <= N_CASES // 4, seen


def test_depthwise_inplace_random(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, natmod_x64: Path) -> None:
    rng = np.random.default_rng(66)
    seen = _run_cases([dw_case(rng) for _ in range(N_CASES)], tmp_path, "dw_ip", monkeypatch, DW_IP)
    assert seen.get("dw", 0) >= 3 * N_CASES // 4, seen


# ------------------------------------------------------------------ the shared models

@pytest.mark.parametrize("model,bar,ops", [("kws_ref_model.tflite", 8704, {DW_IP: 4, CONV_IP: 4}),
                                           ("pretrainedResnet_quant.tflite", 36864, {CONV_IP: 1})])
def test_shared_model_arena_bar(model: str, bar: int, ops: dict[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    tfl = shared_path("models", "mlperf_tiny", model).read_bytes()
    mpk = pack(tfl, max_ram=bar)
    f = MpkFile(mpk)
    flat = MpkFile(_pack_out_of_place(tfl, monkeypatch))
    assert f.header["arena_size"] <= bar < flat.header["arena_size"], (f.header["arena_size"], bar)
    assert f.header["macs"] == flat.header["macs"]          # in place recomputes nothing
    got = {c: sum(o.opcode == c for o in f.ops) for c in ops}
    assert got == ops, got
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, size=f.input_tensors()[0].shape, dtype=np.int8)
    ref = [np.ascontiguousarray(o).tobytes() for o in run_tflm(tfl, [x])]
    assert host_run(mpk, [x], garbage=True)[0] == ref


SHARED = [("mlperf_tiny", "ad01_int8.tflite"), ("mlperf_tiny", "kws_ref_model.tflite"),
          ("mlperf_tiny", "pretrainedResnet_quant.tflite"), ("mlperf_tiny", "str_ww_ref_model.tflite"),
          ("mlperf_tiny", "vww_96_int8.tflite"), ("tflm", "person_detect.tflite")]


@pytest.mark.parametrize("folder,model", SHARED, ids=[m.split(".")[0] for _, m in SHARED])
def test_default_pack_never_larger(folder: str, model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The variants are kept only when they make the arena strictly smaller: never larger than without them."""
    tfl = shared_path("models", folder, model).read_bytes()
    f = MpkFile(pack(tfl))
    flat = MpkFile(_pack_out_of_place(tfl, monkeypatch))
    n = sum(o.opcode in (DW_IP, CONV_IP) for o in f.ops)
    if n:
        assert f.header["arena_size"] < flat.header["arena_size"], model
    else:
        assert f.header["arena_size"] == flat.header["arena_size"], model


# ------------------------------------------------------------------ malformed records

def _rec(f: MpkFile, ti: int) -> int:
    return f.header["tensors_offset"] + 32 * ti


def _param_off(f: MpkFile, op_i: int, p: int) -> int:
    op = f.ops[op_i]
    n_idx = len(op.inputs) + len(op.outputs)
    return op.record_offset + 8 + 2 * (n_idx + (n_idx & 1)) + 4 * p


def _set_1d(b: bytearray, f: MpkFile, ti: int, n: int) -> None:
    struct.pack_into("<H", b, _rec(f, ti) + 4, n)
    struct.pack_into("<I", b, _rec(f, ti) + 16, n)


def _grow_arena(b: bytearray, f: MpkFile, by: int) -> int:
    """Add `by` bytes (16-aligned) to the header's arena; returns the old size."""
    old = f.header["arena_size"]
    struct.pack_into("<I", b, 16, old + (by + 15) // 16 * 16)
    return old


def _ip_model(kind: str) -> bytes:
    rng = np.random.default_rng(7)
    if kind == "dw":
        tfl = depthwise_model(rng, (1, 6, 5, 8), 1, (3, 3), (1, 1), (1, 1), "SAME")
    else:
        tfl = conv2d_model(rng, (1, 6, 5, 8), 8, (3, 3), (1, 1), (1, 1), "SAME")
    mpk = _pack_in_place(tfl)
    assert MpkFile(mpk).ops[0].opcode == (DW_IP if kind == "dw" else CONV_IP)
    return mpk


def malformed() -> list[tuple[str, bytes, int]]:
    """(what, corrupted mpk, expected check code; 0 = valid) for the in-place records."""
    out: list[tuple[str, bytes, int]] = []
    for kind in ("dw", "conv"):
        mpk = _ip_model(kind)
        f = MpkFile(mpk)
        op = f.ops[0]
        xi, si, yi = op.inputs[0], op.inputs[5], op.outputs[0]
        x, sc, y = f.tensors[xi], f.tensors[si], f.tensors[yi]
        b = bytearray(mpk)
        _set_1d(b, f, si, sc.nbytes - 1)
        out.append((f"{kind} scratch one byte short", with_crc(b), 88))
        b = bytearray(mpk)
        _set_1d(b, f, si, y.nbytes)
        struct.pack_into("<I", b, _rec(f, si) + 12, y.offset)   # scratch exactly over the output (and input)
        out.append((f"{kind} scratch aliases the output", with_crc(b), 88))
        b = bytearray(mpk)
        struct.pack_into("<I", b, _rec(f, si) + 12, y.offset + y.nbytes - 8)  # partly over the output
        out.append((f"{kind} scratch overlaps the output", with_crc(b), 73))
        b = bytearray(mpk)
        struct.pack_into("<H", b, op.record_offset + 6, 0)                  # aliased without the flag
        out.append((f"{kind} alias without IN_PLACE", with_crc(b), 73))
        b = bytearray(mpk)
        _grow_arena(b, f, 16)
        struct.pack_into("<I", b, _rec(f, yi) + 12, x.offset + 16)          # output partly over the input
        out.append((f"{kind} output shifted over the input", with_crc(b), 73))
        b = bytearray(mpk)
        old = _grow_arena(b, f, y.nbytes)
        struct.pack_into("<I", b, _rec(f, yi) + 12, old)                    # not aliased at all: still valid
        out.append((f"{kind} output elsewhere", with_crc(b), 0))
        b = bytearray(mpk)
        struct.pack_into("<i", b, _param_off(f, 0, 10), 2)
        out.append((f"{kind} depth multiplier 2", with_crc(b), 110))
        b = bytearray(mpk)
        struct.pack_into("<ii", b, _param_off(f, 0, 8), 5, 4)
        out.append((f"{kind} act_min > act_max", with_crc(b), 14))
        b = bytearray(mpk)
        struct.pack_into("<i", b, _rec(f, op.inputs[1]) + 20, 1)              # filter zero point
        out.append((f"{kind} filter zero point", with_crc(b), 4))
        b = bytearray(mpk)
        struct.pack_into("<i", b, f.header["data_offset"] + f.tensors[op.inputs[4]].offset, 31)
        out.append((f"{kind} shift 31", with_crc(b), 9))
        if kind == "conv":
            rows = op.params[11]
            assert rows == 3 and sc.nbytes == rows * 5 * 8       # 3x3, pad 1: rows oy-1 .. oy+1
            b = bytearray(mpk)
            struct.pack_into("<i", b, _param_off(f, 0, 11), rows - 1)
            out.append(("conv window one row short", with_crc(b), 89))
            b = bytearray(mpk)
            struct.pack_into("<i", b, _param_off(f, 0, 11), rows + 1)
            out.append(("conv rows beyond the scratch", with_crc(b), 88))
            b = bytearray(mpk)
            struct.pack_into("<i", b, _param_off(f, 0, 11), 0)
            out.append(("conv rows 0", with_crc(b), 111))
            b = bytearray(mpk)
            struct.pack_into("<i", b, _param_off(f, 0, 3), 2)                   # dil_h 2: a 5-row window
            out.append(("conv dilation beyond the window", with_crc(b), 89))
    return out


def test_malformed_inplace_records_refused_alike(tmp_path: Path, natmod_x64: Path) -> None:
    cases = malformed()
    dual = [(mpk, bytes(range(256)) * 8) for _, mpk, _ in cases]
    results = run_dual(dual, tmp_path, "ip_malformed")
    check_dual(dual, results, "ip_malformed")       # same statuses; same arenas where both accept
    for (what, mpk, code), res in zip(cases, results, strict=True):
        host = prepare_status(mpk)
        if code == 0:
            assert host[0] == 0 and res["c"] == res["v"] == (0, 0, 0, 0) and res["ac"], (what, host, res["c"])
            continue
        assert host[:3] == (10, 0, code), (what, host)
        assert res["c"][:3] == host[:3] and res["v"][:3] == host[:3], (what, res["c"], res["v"])


# ------------------------------------------------------------------ heap after load

HEAP = r"""
import sys, gc, mpyml
bufs = [open(p, "rb").read() for p in sys.argv[1:]]
for eng in ("c", "viper"):
    m = mpyml.load(bufs[0], engine=eng)      # warm-up: the engine's modules imported once
    m.invoke()
    del m
    for k, buf in enumerate(bufs):
        gc.collect()
        before = gc.mem_free()
        m = mpyml.load(buf, engine=eng)
        gc.collect()
        grew = before - gc.mem_free()
        m.invoke()
        print("LOAD", eng, k, grew, m.arena_size, m.ctx_bytes)
        del m
"""
SLACK = 64         # what the Model object costs beyond arena and ctx may not depend on the plan


def test_heap_after_load_is_arena_plus_constant(tmp_path: Path, natmod_x64: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """KWS packed with and without the in-place variants: on both engines the heap a load takes is the arena
    plus the ctx plus the same constant (the Model object), so the 7.5 KB the plan saves are RAM saved."""
    from mpyml.unix_port import run_micropython
    script = tmp_path / "heap.py"
    script.write_text(HEAP)
    tfl = shared_path("models", "mlperf_tiny", "kws_ref_model.tflite").read_bytes()
    paths = []
    for k, mpk in enumerate((pack(tfl, max_ram=8704), _pack_out_of_place(tfl, monkeypatch))):
        paths.append(tmp_path / f"kws{k}.mpk")
        paths[-1].write_bytes(mpk)
    arenas = [MpkFile(p.read_bytes()).header["arena_size"] for p in paths]
    assert arenas[0] <= 8704 < arenas[1], arenas
    r = run_micropython([str(script)] + [str(p) for p in paths], heapsize="4M")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [ln.split()[1:] for ln in r.stdout.splitlines() if ln.startswith("LOAD")]
    assert len(rows) == 4, r.stdout
    for eng in ("c", "viper"):
        const = []
        for e, k, grew, asz, ctx in rows:
            if e == eng:
                assert int(asz) == arenas[int(k)]
                const.append(int(grew) - int(asz) - int(ctx))
        assert len(const) == 2 and const[0] >= 0 and abs(const[0] - const[1]) <= SLACK, (eng, const)


def test_max_ram_too_small_names_the_in_place_figure() -> None:
    """Below every plan, `--max-ram` names the smallest reachable arena, counting the in-place kernels (KWS: the
    in-place plan, not the larger patch figure), and that figure packs."""
    from mpyml.packer import PackError
    tfl = shared_path("models", "mlperf_tiny", "kws_ref_model.tflite").read_bytes()
    with pytest.raises(PackError, match=r"reaches for this model, 8,496 B .*use --max-ram 8496 or more") as e:
        pack(tfl, max_ram=4000)
    assert "\n" not in str(e.value)
    assert MpkFile(pack(tfl, max_ram=8496)).header["arena_size"] == 8496
