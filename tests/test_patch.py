"""Patch-based inference (`mpyml pack --max-ram`, host/mpyml/patch.py, the WRITE_BOX op).

- random small CNNs (chains of CONV_2D / DEPTHWISE_CONV_2D / AVERAGE_POOL_2D / MAX_POOL_2D / RELU with random
  kernels, strides, dilations, SAME / VALID padding, odd sizes, int8 / uint8 / float32 I/O, sometimes a
  FULLY_CONNECTED tail) packed with several budgets: the arena meets the budget and the outputs are bit-exact
  with tflite-micro on the host library, the native module (unix port) and the viper engine;
- the chooser: no candidate meeting the budget has fewer MACs than the chosen one; a budget too small is one
  PackError naming the smallest figure, which itself packs (CLI: one line, exit 2); the default pack and a
  budget the default plan meets are byte-identical to the plain pack;
- the shared models: person_detect within 18,432 B and VWW within 40,960 B, bit-exact with tflite-micro;
- inspect: the tile ops marked per stage and tile, the arena with and without patching, the MAC overhead;
- the heap after load on the unix port is the arena plus a constant (plus the context the engine copies);
- malformed WRITE_BOX records are refused with the same check code by both loaders, and the sanitizer
  mutation driver finds nothing on patch plans.

Runtime: about 45 s (a few MicroPython processes; the shared-model parts skip without ../shared).
"""

from __future__ import annotations

import copy
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from conftest import shared_path
from mpyml import patch, spec
from mpyml.hostlib import E_OP, prepare_status
from mpyml.mpk import MpkFile, with_crc
from mpyml.packer import PackError, pack, pack_model, serialize
from mpyml.planner import plan_arena
from tflite_build import _Model, conv_output_size, run_tflm

WRITE_BOX = spec.OPCODES["WRITE_BOX"]
BOX_BOUNDS = next(c.code for c in spec.check_codes().values() if c.name == "BOX_BOUNDS")
SHAPE_TYPES = next(c.code for c in spec.check_codes().values() if c.name == "SHAPE_TYPES")
ALIAS = next(c.code for c in spec.CHECKS if c.name == "ALIAS")
_ACT = {"NONE": 0, "RELU": 1, "RELU6": 3}


# ------------------------------------------------------------------ random CNNs

def _conv_layer(m: _Model, rng: np.random.Generator, x: int, shape: tuple[int, ...], q: tuple[float, int],
                depthwise: bool, k: int) -> tuple[int, tuple[int, ...], tuple[float, int]] | None:
    n, h, w, c = shape
    kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    dh, dw = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if sh == sw == 1 else (1, 1)
    padding = str(rng.choice(["SAME", "VALID"]))
    oh, ow = conv_output_size(padding, h, kh, sh, dh), conv_output_size(padding, w, kw, sw, dw)
    if oh < 1 or ow < 1:
        return None
    dm = int(rng.integers(1, 3)) if depthwise else 1
    oc = c * dm if depthwise else int(rng.integers(1, 9))
    taps = kh * kw * (1 if depthwise else c)
    per_channel = bool(rng.random() < 0.7)
    f_scales = (10.0 ** rng.uniform(-3.0, -1.0, size=oc if per_channel else 1)).astype(np.float32)
    acc_std = np.sqrt(taps) * 74.0 * 73.0
    out_scale = float(q[0] * float(np.median(f_scales)) * acc_std / 40.0 * 2.0 ** rng.uniform(-2.0, 2.0))
    oq = (out_scale, int(rng.integers(-100, 100)))
    fshape = (1, kh, kw, oc) if depthwise else (oc, kh, kw, c)
    f = m.tensor(f"f{k}", fshape, "INT8", f_scales, 0, 3 if depthwise else 0,
                 rng.integers(-127, 128, size=fshape).astype(np.int8))
    bias_s = np.float32(q[0]) * f_scales
    bias_s = np.repeat(bias_s, oc) if bias_s.size == 1 else bias_s
    b = m.tensor(f"b{k}", (oc,), "INT32", bias_s, 0, 0,
                 np.clip(np.round(rng.normal(0, acc_std, size=oc)), -2**24, 2**24).astype(np.int32))
    y = m.tensor(f"y{k}", (n, oh, ow, oc), "INT8", *oq)
    if depthwise:
        o = schema.DepthwiseConv2DOptionsT()
        o.depthMultiplier = dm
        kind = schema.BuiltinOptions.DepthwiseConv2DOptions
    else:
        o = schema.Conv2DOptionsT()
        kind = schema.BuiltinOptions.Conv2DOptions
    o.padding = {"SAME": schema.Padding.SAME, "VALID": schema.Padding.VALID}[padding]
    o.strideH, o.strideW = sh, sw
    o.dilationHFactor, o.dilationWFactor = dh, dw
    o.fusedActivationFunction = _ACT[str(rng.choice(list(_ACT)))]
    m.op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [x, f, b], [y], o, kind)
    return y, (n, oh, ow, oc), oq


def _pool_layer(m: _Model, rng: np.random.Generator, x: int, shape: tuple[int, ...], q: tuple[float, int],
                k: int) -> tuple[int, tuple[int, ...], tuple[float, int]] | None:
    n, h, w, c = shape
    fh, fw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    padding = str(rng.choice(["SAME", "VALID"]))
    oh, ow = conv_output_size(padding, h, fh, sh), conv_output_size(padding, w, fw, sw)
    if oh < 1 or ow < 1:
        return None
    y = m.tensor(f"y{k}", (n, oh, ow, c), "INT8", *q)
    o = schema.Pool2DOptionsT()
    o.padding = {"SAME": schema.Padding.SAME, "VALID": schema.Padding.VALID}[padding]
    o.strideH, o.strideW = sh, sw
    o.filterHeight, o.filterWidth = fh, fw
    m.op(str(rng.choice(["AVERAGE_POOL_2D", "MAX_POOL_2D"])), [x], [y], o, schema.BuiltinOptions.Pool2DOptions)
    return y, (n, oh, ow, c), q


def cnn_case(rng: np.random.Generator, io: str = "int8") -> tuple[bytes, list[np.ndarray]]:
    """A random CNN: [QUANTIZE] -> 2..6 conv / depthwise / pool / RELU layers -> [FULLY_CONNECTED] -> [(DE)QUANTIZE]."""
    while True:
        m = _Model()
        shape = (1, int(rng.integers(9, 30)), int(rng.integers(9, 30)), int(rng.integers(1, 5)))
        q = (float(10.0 ** rng.uniform(-2.5, -0.5)), int(rng.integers(-100, 100)))
        if io == "int8":
            x = m.tensor("x", shape, "INT8", *q)
            cur, feed = x, rng.integers(-128, 128, size=shape, dtype=np.int8)
        elif io == "uint8":
            x = m.tensor("x", shape, "UINT8", q[0], q[1] + 128)
            cur = m.tensor("xq", shape, "INT8", *q)
            m.op("QUANTIZE", [x], [cur])
            feed = rng.integers(0, 256, size=shape, dtype=np.uint8)
        else:
            x = m.tensor("x", shape, "FLOAT32")
            cur = m.tensor("xq", shape, "INT8", *q)
            m.op("QUANTIZE", [x], [cur])
            feed = (rng.normal(0, 1, size=shape) * q[0] * 60).astype(np.float32)
        ok = True
        for k in range(int(rng.integers(2, 7))):
            r = rng.random()
            if r < 0.35:
                res = _conv_layer(m, rng, cur, shape, q, False, k)
            elif r < 0.7:
                res = _conv_layer(m, rng, cur, shape, q, True, k)
            elif r < 0.9:
                res = _pool_layer(m, rng, cur, shape, q, k)
            else:
                y = m.tensor(f"y{k}", shape, "INT8", *q)
                m.op("RELU", [cur], [y])
                res = (y, shape, q)
            if res is None:
                ok = False
                break
            cur, shape, q = res
        if not ok:
            continue
        if rng.random() < 0.4:          # a tail the tiler leaves alone
            flat = int(np.prod(shape))
            r_ = m.tensor("flat", (1, flat), "INT8", *q)
            shp = m.tensor("shp", (2,), "INT32", data=np.array([1, flat], np.int32))
            m.op("RESHAPE", [cur, shp], [r_])
            units = int(rng.integers(1, 6))
            fs = float(10.0 ** rng.uniform(-3, -1))
            wt = m.tensor("w", (units, flat), "INT8", fs, 0, 0, rng.integers(-127, 128, size=(units, flat)))
            oq = (float(q[0] * fs * np.sqrt(flat) * 74 * 73 / 40), int(rng.integers(-50, 50)))
            y = m.tensor("fc", (1, units), "INT8", *oq)
            o = schema.FullyConnectedOptionsT()
            m.op("FULLY_CONNECTED", [r_, wt], [y], o, schema.BuiltinOptions.FullyConnectedOptions)
            cur, shape, q = y, (1, units), oq
        if io == "uint8":
            out = m.tensor("out", shape, "UINT8", q[0], q[1] + 128)
            m.op("QUANTIZE", [cur], [out])
        elif io == "float":
            out = m.tensor("out", shape, "FLOAT32")
            m.op("DEQUANTIZE", [cur], [out])
        else:
            out = cur
        return m.finish([x], [out]), [feed]


def _budgets(tfl: bytes) -> tuple[int, int, list[int]]:
    """(default arena, smallest patch arena, budgets between them to pack with)."""
    pm = pack_model(tfl)
    cands = patch.candidates(pm)
    lo = min(pm.arena_size, patch.min_arena(cands)) if cands else pm.arena_size
    hi = pm.arena_size
    return hi, lo, sorted({lo, (lo + hi) // 2 // 16 * 16, hi - 16} - {hi} if lo < hi else set())


def _ref(tfl: bytes, feeds: list[np.ndarray]) -> list[bytes]:
    return [np.ascontiguousarray(o).tobytes() for o in run_tflm(tfl, feeds)]


def test_random_cnns_bit_exact(tmp_path: Path, natmod_x64: Path) -> None:
    from ops.engines import host_run, outputs_of
    from test_planner import check_plan
    from test_viper_engine import check_dual, run_dual
    rng = np.random.default_rng(2026)
    dual, refs, patched, boxes = [], [], 0, 0
    for i in range(30):
        io = ("int8", "uint8", "float")[i % 3]
        tfl, feeds = cnn_case(rng, io)
        ref = _ref(tfl, feeds)
        hi, lo, budgets = _budgets(tfl)
        for budget in budgets:
            pm = pack_model(tfl, budget)
            check_plan(pm.tensors, pm.ops, pm.inputs, pm.outputs, pm.arena_size)
            mpk = serialize(pm)
            f = MpkFile(mpk)
            assert f.header["arena_size"] <= budget, (budget, f.header["arena_size"])
            n_box = sum(1 for op in f.ops if op.opcode == WRITE_BOX)
            assert n_box >= 2 and getattr(pm, "patch", None) is not None
            patched += 1
            boxes += n_box
            host, init = host_run(mpk, feeds, garbage=True)
            assert host == ref, f"case {i} ({io}) budget {budget}: host C engine differs from tflite-micro"
            if len(dual) < 40:
                dual.append((mpk, init))
                refs.append(ref)
    assert patched >= 30 and boxes >= 100, (patched, boxes)
    results = run_dual(dual, tmp_path, "patch")
    check_dual(dual, results, "patch")
    for (mpk, _), res, ref in zip(dual, results, refs, strict=True):
        assert res["c"][:3] == (0, 0, 0) and res["v"][:3] == (0, 0, 0), (res["c"], res["v"])
        assert outputs_of(mpk, res["ac"]) == ref, "natmod differs from tflite-micro on a patch plan"
        assert outputs_of(mpk, res["av"]) == ref, "viper differs from tflite-micro on a patch plan"


# ------------------------------------------------------------------ the chooser

def test_least_macs_within_budget() -> None:
    rng = np.random.default_rng(7)
    checked = 0
    while checked < 4:
        tfl, _ = cnn_case(rng)
        hi, lo, budgets = _budgets(tfl)
        if not budgets:
            continue
        pm0 = pack_model(tfl)
        cands = patch.candidates(pm0)
        arenas = [plan_arena(*(copy.deepcopy((c.tensors, c.ops)) + (c.inputs, c.outputs)), 16) for c in cands]
        for budget in budgets:
            pm = pack_model(tfl, budget)
            best = min(c.macs for c, a in zip(cands, arenas, strict=True) if a <= budget)
            assert pm.patch.macs == best, (budget, pm.patch, best)
            assert pm.patch.arena == pm.arena_size <= budget
            assert pm.patch.arena_unpatched == hi and pm.patch.macs_unpatched == sum(op.macs for op in pm0.ops)
        assert min(arenas + [hi]) == lo
        checked += 1


def test_budget_too_small_names_the_smallest(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    while True:
        tfl, _ = cnn_case(rng)
        hi, lo, budgets = _budgets(tfl)
        if budgets:
            break
    with pytest.raises(PackError, match=f"smallest arena mpyml reaches for this model, {lo:,} B") as e:
        pack(tfl, lo - 16)
    assert "\n" not in str(e.value)
    assert MpkFile(pack(tfl, lo)).header["arena_size"] == lo
    src = tmp_path / "m.tflite"
    src.write_bytes(tfl)
    r = subprocess.run([sys.executable, "-m", "mpyml.cli", "pack", str(src), "-o", str(tmp_path / "m.mpk"),
                        "--max-ram", str(lo - 16)], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and f"{lo:,} B" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "mpyml.cli", "pack", str(src), "-o", str(tmp_path / "m.mpk"),
                        "--max-ram", str(lo)], capture_output=True, text=True)
    assert r.returncode == 0 and "patch plan:" in r.stdout and "MACs x" in r.stdout, r.stdout + r.stderr
    # the default pack, and a budget the default plan meets, are the plain pack
    plain = pack(tfl)
    assert pack(tfl, None) == plain and pack(tfl, hi) == plain and pack(tfl, hi + 1000) == plain


def test_inspect_shows_the_patch_plan(tmp_path: Path) -> None:
    import json

    from mpyml.inspect_model import format_table, inspect_json, inspect_model, plot_memory
    rng = np.random.default_rng(13)
    while True:
        tfl, _ = cnn_case(rng)
        hi, lo, budgets = _budgets(tfl)
        if budgets:
            break
    info = inspect_model(tfl, lo)
    p = info["patch"]
    assert p["arena"] == info["arena_bytes"] == lo and p["arena_unpatched"] == hi
    assert p["macs"] == info["macs"] and p["mac_overhead"] == p["macs"] / p["macs_unpatched"]
    (st,) = info["patch_stages"]
    tiled = [layer for layer in info["layers"] if layer["patch"]]
    assert len({tuple(layer["patch"]) for layer in tiled}) == st["tiles"] == p["grid"][0] * p["grid"][1]
    assert sum(1 for layer in tiled if layer["op"] == "WRITE_BOX") == st["tiles"]
    assert [layer["index"] for layer in tiled] == list(range(st["ops"][0], st["ops"][1] + 1))
    # the .mpk alone shows the same stages; the plain pack has none
    mpk = pack(tfl, lo)
    mpk_info = inspect_model(mpk)
    assert mpk_info["patch_stages"] == info["patch_stages"] and "patch" not in mpk_info
    assert "patch_stages" not in inspect_model(pack(tfl))
    text = format_table(info)
    assert "[s0 t0]" in text and f"arena {hi:,} B without patching, {lo:,} B with" in text
    plot_memory(info, str(tmp_path / "mem.png"))
    assert (tmp_path / "mem.png").stat().st_size > 1000
    assert json.loads(inspect_json(tfl, lo))["patch"]["arena"] == lo
    (tmp_path / "m.mpk").write_bytes(mpk)
    r = subprocess.run([sys.executable, "-m", "mpyml.cli", "inspect", str(tmp_path / "m.mpk"), "--max-ram", "9999"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


# ------------------------------------------------------------------ the shared models

BARS = {"tflm/person_detect.tflite": 18432, "mlperf_tiny/vww_96_int8.tflite": 40960}


def _person_input(shared: Path) -> np.ndarray:
    from PIL import Image
    img = np.asarray(Image.open(shared / "data/person_detection/person.bmp").convert("L"), np.int16)
    return (img - 128).astype(np.int8).reshape(1, 96, 96, 1)


@pytest.mark.parametrize("model", sorted(BARS))
def test_shared_models_meet_the_bars(model: str, tmp_path: Path, natmod_x64: Path) -> None:
    from ops.engines import host_run, outputs_of
    from test_viper_engine import check_dual, run_dual
    tfl = shared_path("models", model).read_bytes()
    pm = pack_model(tfl, BARS[model])
    mpk = serialize(pm)
    p = pm.patch
    print(f"{model}: arena {p.arena_unpatched} -> {p.arena} B (bar {BARS[model]}), MACs x{p.mac_overhead:.3f}, "
          f"{p.grid[0]}x{p.grid[1]} tiles over ops {p.stage[0]}..{p.stage[1]}, ops {p.ops_unpatched} -> {p.ops}, "
          f"op records {p.ops_bytes_unpatched} -> {p.ops_bytes} B, tensors {p.tensors_unpatched} -> {p.tensors}")
    assert MpkFile(mpk).header["arena_size"] == p.arena <= BARS[model]
    rng = np.random.default_rng(3)
    shape = tuple(MpkFile(mpk).input_tensors()[0].shape)
    feeds = [[rng.integers(-128, 128, size=shape, dtype=np.int8)]]
    if "person" in model:
        feeds.append([_person_input(shared_path())])
    dual, refs = [], []
    for x in feeds:
        ref = _ref(tfl, x)
        host, init = host_run(mpk, x, garbage=True)
        assert host == ref, f"{model}: host C engine differs from tflite-micro"
        dual.append((mpk, init))
        refs.append(ref)
    # both engines on the unix port. The viper run uses the same patch plan packed with dense weights
    # (sparse=False: the same tiles, stage and arena), so that it tests the patch plan and not the sparse
    # op family, which has its own tests (tests/ops/test_sparse.py)
    dense = serialize(pack_model(tfl, BARS[model], sparse=False))
    assert MpkFile(dense).header["arena_size"] == p.arena
    d_host, d_init = host_run(dense, feeds[0], garbage=True)
    assert d_host == refs[0], f"{model}: host C engine differs from tflite-micro (dense weights)"
    cases = [dual[0], (dense, d_init)]
    results = run_dual(cases, tmp_path, "patch_shared")
    check_dual(cases[1:], results[1:], "patch_shared")
    assert outputs_of(mpk, results[0]["ac"]) == refs[0], "natmod differs from tflite-micro"
    assert outputs_of(dense, results[1]["ac"]) == refs[0], "natmod differs from tflite-micro (dense weights)"
    assert outputs_of(dense, results[1]["av"]) == refs[0], "viper differs from tflite-micro"


# ------------------------------------------------------------------ heap after load

HEAP = r"""
import sys, gc, mpyml
buf = open(sys.argv[1], "rb").read()
for eng in ("c", "viper"):
    m = mpyml.load(buf, engine=eng)     # imports the engine (and its kernel families) once
    m.invoke()
    del m
    gc.collect()
    before = gc.mem_free()
    m = mpyml.load(buf, engine=eng)
    gc.collect()
    grew = before - gc.mem_free()
    m.invoke()
    print("LOAD", eng, grew, m.arena_size, m.ctx_bytes)
    del m
"""

SLACK = 1536       # the Model object, its tensors and bookkeeping (about 1.1 KB), independent of the plan


def test_heap_after_load_is_arena_plus_constant(tmp_path: Path, natmod_x64: Path) -> None:
    from mpyml.unix_port import run_micropython
    rng = np.random.default_rng(5)
    rows = []
    script = tmp_path / "heap.py"
    script.write_text(HEAP)
    while len(rows) < 2:
        tfl, _ = cnn_case(rng)
        hi, lo, budgets = _budgets(tfl)
        if not budgets:
            continue
        for mpk in (pack(tfl), pack(tfl, lo)):
            p = tmp_path / f"m{len(rows)}.mpk"
            p.write_bytes(mpk)
            r = run_micropython([str(script), str(p)], heapsize="4M")
            assert r.returncode == 0, r.stdout + r.stderr
            got = {ln.split()[1]: [int(v) for v in ln.split()[2:]] for ln in r.stdout.splitlines()
                   if ln.startswith("LOAD")}
            assert set(got) == {"c", "viper"}, r.stdout
            rows.append((MpkFile(mpk).header["arena_size"], got))
    for arena, got in rows:
        for eng, (grew, _, ctx) in got.items():
            print(f"{eng}: load grew the heap by {grew} B = arena {arena} + ctx {ctx} + {grew - arena - ctx}")
    consts = []
    for arena, got in rows:
        for eng, (grew, asz, ctx) in got.items():
            assert asz == arena
            assert arena + ctx <= grew <= arena + ctx + SLACK, (eng, grew, arena, ctx)
            consts.append(grew - arena - ctx)
    assert max(consts) - min(consts) <= 128, f"the heap beyond arena + ctx varies with the plan: {consts}"


# ------------------------------------------------------------------ malformed WRITE_BOX records

def _box_model() -> bytes:
    rng = np.random.default_rng(1)
    while True:
        tfl, _ = cnn_case(rng)
        hi, lo, budgets = _budgets(tfl)
        if budgets:
            return pack(tfl, lo)


def malformed() -> list[tuple[str, bytes, int, int, int]]:
    """(what, file, status, detail, op index) of WRITE_BOX corruptions both loaders must refuse."""
    mpk = _box_model()
    f = MpkFile(mpk)
    k, op = next((k, op) for k, op in enumerate(f.ops) if op.opcode == WRITE_BOX)
    prm = op.record_offset + 8 + 2 * 2          # 2 operands (in, out): no padding slot
    x, y = f.tensors[op.inputs[0]], f.tensors[op.outputs[0]]
    out = []
    # the box reaches past the output along H, W, C, N
    for dim in (1, 2, 3, 0):
        b = bytearray(mpk)
        struct.pack_into("<i", b, prm + 4 * dim, y.shape[dim] - x.shape[dim] + 1)
        out.append((f"offset{dim} past the output", with_crc(b), E_OP, BOX_BOUNDS))
    b = bytearray(mpk)
    struct.pack_into("<i", b, prm + 4, 65536)
    out.append(("offset1 outside its range", with_crc(b), E_OP, spec.PARAM_BASE + 1))
    b = bytearray(mpk)
    struct.pack_into("<i", b, prm + 8, -1)
    out.append(("negative offset2", with_crc(b), E_OP, spec.PARAM_BASE + 2))
    # the output as uint8 (zero point 0): types differ (no op before this one names the output)
    b = bytearray(mpk)
    rec = f.header["tensors_offset"] + spec.TENSOR_SIZE * op.outputs[0]
    b[rec] = spec.TYPE_CODE["uint8"]
    struct.pack_into("<i", b, rec + 20, 0)
    out.append(("output type differs", with_crc(b), E_OP, SHAPE_TYPES))
    # the output operand names a constant (a filter): operand 1 of the wrong storage
    const = next(i for i, t in enumerate(f.tensors) if not t.in_arena)
    b = bytearray(mpk)
    struct.pack_into("<H", b, op.record_offset + 8 + 2, const)
    out.append(("output a constant", with_crc(b), E_OP, spec.OPERAND_BASE + 1))
    # the input operand names the output itself
    b = bytearray(mpk)
    struct.pack_into("<H", b, op.record_offset + 8, op.outputs[0])
    out.append(("input is the output", with_crc(b), E_OP, ALIAS))
    return [(w, m, st, d, k) for w, m, st, d in out]


def test_malformed_write_box_refused(tmp_path: Path, natmod_x64: Path) -> None:
    from test_viper_engine import run_dual
    cases = malformed()
    for what, mpk, st, detail, k in cases:
        got = prepare_status(mpk)[:3]
        assert got == (st, k, detail), f"{what}: host loader gave {got}, want {(st, k, detail)}"
    results = run_dual([(mpk, b"") for _, mpk, _, _, _ in cases], tmp_path, "box_bad")
    for (what, _, st, detail, k), res in zip(cases, results, strict=True):
        assert res["c"][:3] == (st, k, detail), f"{what}: natmod gave {res['c']}"
        assert res["v"][:3] == (st, k, detail), f"{what}: viper gave {res['v']}"


def test_sanitizer_fuzz_patch_plans(tmp_path: Path) -> None:
    """The loader mutation driver (ASan/UBSan) over patch plans: truncations, bit flips (with the CRC fixed)
    and structural edits of WRITE_BOX / STRIDED_COPY / tile records: no sanitizer report, no crash."""
    import shutil

    from conftest import skip_or_fail
    from test_loader_robustness import DRIVER, TESTS_MAKE, build_lock, parse_phases, run_driver
    if shutil.which("cc") is None:
        skip_or_fail("no C compiler ('cc' not on PATH): the sanitizer driver cannot be built")
    with build_lock():
        b = subprocess.run(["make", "-s", "-C", str(TESTS_MAKE), "sanitize"], capture_output=True, text=True)
    assert b.returncode == 0, f"building the sanitizer driver failed:\n{b.stdout}\n{b.stderr}"
    driver = DRIVER
    rng = np.random.default_rng(99)
    seeds = []
    while len(seeds) < 2:
        tfl, _ = cnn_case(rng)
        hi, lo, budgets = _budgets(tfl)
        if budgets:
            mpk = pack(tfl, lo)
            assert sum(1 for op in MpkFile(mpk).ops if op.opcode == WRITE_BOX) >= 2
            p = tmp_path / f"patch{len(seeds)}.mpk"
            p.write_bytes(mpk)
            seeds.append(str(p))
    r = run_driver(driver, ["-s", "31", "-f", "300", "-F", "1000", "-m", "4000", "-T", "200", "-t", "40",
                            "-o", str(tmp_path), *seeds], timeout=300)
    ph = parse_phases(r.stdout)
    assert set(ph) == {"trunc", "align", "trunc_fix", "flip_raw", "flip_crc", "struct"}, r.stdout
    assert ph["flip_crc"].accepted > 0 and ph["struct"].rejected.get("OP", 0) > 0, r.stdout
