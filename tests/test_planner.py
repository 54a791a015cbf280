"""The arena planner (host/mpyml/planner.py): best-of-several placement orders plus in-place elementwise ops.

- on the six ../shared models and on every converted corpus model in build/corpus: the plan is valid (no two
  tensors alive at the same op share a byte unless the format allows that alias: a RESHAPE, or an op record
  flagged IN_PLACE whose output exactly covers an input that dies there), the C loader accepts it, and the
  arena is never larger than TFLM's greedy largest-first plan (the plan before this one);
- synthetic lifetimes where largest-first is not optimal: the new plan is strictly smaller, and deterministic;
- random chains of elementwise ops (LUT activations, MUL, SUB, ADD, MAXIMUM, MINIMUM, SQUARED_DIFFERENCE,
  PRELU) planned in place: bit-exact with tflite-micro on the C engine (host library and native module) and
  the viper engine, with a smaller arena than without in-place;
- malformed files: a partial overlap, an exact alias without the IN_PLACE flag, the flag on an op whose
  kernel is not in-place-safe, an unknown flag bit: both loaders refuse them.

Runtime: about 15 s (two MicroPython processes; the corpus part is skipped when build/corpus is absent).
"""

from __future__ import annotations

import copy
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_path, skip_or_fail
from mpyml import paths, spec
from mpyml.hostlib import E_OP, OK, prepare_status
from mpyml.mpk import HEADER_OFFSETS, MpkFile, with_crc
from mpyml.packer import pack, pack_model, serialize
from mpyml.planner import live_bytes_per_op, plan_arena, plan_arena_greedy
from tflite_build import _Model, run_tflm

SHARED_MODELS = ["mlperf_tiny/ad01_int8.tflite", "mlperf_tiny/kws_ref_model.tflite",
                 "mlperf_tiny/pretrainedResnet_quant.tflite", "mlperf_tiny/str_ww_ref_model.tflite",
                 "mlperf_tiny/vww_96_int8.tflite", "tflm/person_detect.tflite"]
CORPUS = paths.BUILD_DIR / "corpus"
IN_PLACE = spec.OP_FLAGS["IN_PLACE"]
RESHAPE = spec.OPCODES["RESHAPE"]
FLAGS = next(c.code for c in spec.CHECKS if c.name == "FLAGS")


# ------------------------------------------------------------------ plan validity

def _lifetimes(tensors, ops, inputs, outputs) -> dict[int, tuple[int, int]]:
    life: dict[int, list[int]] = {}

    def touch(t: int, s: int) -> None:
        if t != 0xFFFF and tensors[t].storage == 0:
            lo, hi = life.setdefault(t, [s, s])
            life[t] = [min(lo, s), max(hi, s)]

    for t in inputs:
        touch(t, 0)
    for s, op in enumerate(ops):
        for t in op.inputs + op.outputs:
            touch(t, s)
    for t in outputs:
        touch(t, len(ops))
    for i, t in enumerate(tensors):
        if t.flags & 1 and t.storage == 0:
            touch(i, -1)
            touch(i, len(ops) + 1)
    return {t: (lo, hi) for t, (lo, hi) in life.items()}


def check_plan(tensors, ops, inputs, outputs, arena: int) -> None:
    """Every pair of tensors alive at one op is disjoint, unless aliased exactly through RESHAPE / IN_PLACE."""
    parent = list(range(len(tensors)))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for op in ops:
        o = op.outputs[0]
        for i in op.inputs:
            if i == 0xFFFF or tensors[i].storage != 0:
                continue
            same = tensors[i].offset == tensors[o].offset and tensors[i].nbytes == tensors[o].nbytes
            if (op.opcode == RESHAPE or getattr(op, "in_place", False)) and same:
                parent[find(o)] = find(i)
    life = _lifetimes(tensors, ops, inputs, outputs)
    ts = sorted(life)
    for t in ts:
        assert tensors[t].offset % 16 == 0 and tensors[t].offset + tensors[t].nbytes <= arena, t
    for a_i, a in enumerate(ts):
        ta, (fa, la) = tensors[a], life[a]
        for b in ts[a_i + 1:]:
            tb, (fb, lb) = tensors[b], life[b]
            if la < fb or lb < fa:
                continue
            if ta.offset < tb.offset + tb.nbytes and tb.offset < ta.offset + ta.nbytes:
                assert find(a) == find(b) and ta.offset == tb.offset, \
                    f"tensors {a} and {b} are alive together and overlap without an alias"


def _compare_plans(tfl: bytes) -> tuple[int, int, int]:
    """(greedy arena, new arena, in-place ops) of a model; asserts both plans valid and new <= greedy."""
    pm = pack_model(tfl)
    g_t, g_o = copy.deepcopy(pm.tensors), copy.deepcopy(pm.ops)
    greedy = plan_arena_greedy(g_t, g_o, pm.inputs, pm.outputs, spec.ALIGN_ARENA)
    check_plan(g_t, g_o, pm.inputs, pm.outputs, greedy)
    check_plan(pm.tensors, pm.ops, pm.inputs, pm.outputs, pm.arena_size)
    assert pm.arena_size <= greedy, f"new plan {pm.arena_size} B > greedy {greedy} B"
    st, idx, detail, _ = prepare_status(serialize(pm))
    assert st == OK, (st, idx, detail)
    return greedy, pm.arena_size, sum(op.in_place for op in pm.ops)


@pytest.mark.parametrize("model", SHARED_MODELS)
def test_shared_models_never_larger(model: str) -> None:
    greedy, new, n_ip = _compare_plans(shared_path("models", model).read_bytes())
    print(f"{model}: greedy {greedy} B, new {new} B, {n_ip} op(s) in place")


def test_corpus_models_never_larger() -> None:
    files = sorted(CORPUS.glob("*.tflite")) if CORPUS.is_dir() else []
    if not files:
        skip_or_fail(f"{CORPUS} has no .tflite: `python -m tests.corpus.convert` (or test_corpus.py) builds it")
    from mpyml.packer import PackError
    tot_g = tot_n = checked = 0
    for f in files:
        try:
            greedy, new, _ = _compare_plans(f.read_bytes())
        except PackError:
            continue                # a model mpyml does not pack yet (test_corpus reports those)
        tot_g += greedy
        tot_n += new
        checked += 1
    assert checked >= 10, f"only {checked} corpus models packed"
    assert tot_n < tot_g            # the corpus has branching models where largest-first is not optimal


# ------------------------------------------------------------------ synthetic lifetimes

@dataclass
class T:
    size: int
    storage: int = 0
    offset: int = 0
    flags: int = 0
    type: int = 1

    @property
    def nbytes(self) -> int:
        return self.size

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.size,)


@dataclass
class Op:
    opcode: int
    inputs: list[int]
    outputs: list[int]
    in_place: bool = False


def _chain(sizes: list[int], skips: list[tuple[int, int]]) -> tuple[list[T], list[Op]]:
    """Op i reads tensor i (and tensor a for each skip (a, i)) and writes tensor i + 1 (CONV_2D: no in-place)."""
    tensors = [T(s) for s in sizes]
    ops = []
    for i in range(len(sizes) - 1):
        ins = [i] + [a for a, b in skips if b == i]
        ops.append(Op(1, ins, [i + 1]))
    return tensors, ops


def test_better_than_largest_first_and_deterministic() -> None:
    # a long-lived small buffer placed after the big ones lands on top of them in largest-first order
    tensors, ops = _chain([48, 64, 16, 64, 48, 16], [(0, 4), (2, 4)])
    g_t = copy.deepcopy(tensors)
    greedy = plan_arena_greedy(g_t, ops, [0], [5], 16)
    new = plan_arena(tensors, ops, [0], [5], 16)
    check_plan(g_t, ops, [0], [5], greedy)
    check_plan(tensors, ops, [0], [5], new)
    assert new <= greedy
    # random graphs: never worse, and the same offsets on every run
    rng = np.random.default_rng(5)
    better = 0
    for _ in range(60):
        n = int(rng.integers(4, 14))
        sizes = [int(x) * 16 for x in rng.integers(1, 40, size=n)]
        skips = [(int(a), int(b)) for a, b in rng.integers(0, n - 1, size=(int(rng.integers(0, 4)), 2)) if a < b]
        t1, o1 = _chain(sizes, skips)
        t2, o2 = _chain(sizes, skips)
        tg, og = _chain(sizes, skips)
        a1 = plan_arena(t1, o1, [0], [n - 1], 16)
        a2 = plan_arena(t2, o2, [0], [n - 1], 16)
        ag = plan_arena_greedy(tg, og, [0], [n - 1], 16)
        check_plan(t1, o1, [0], [n - 1], a1)
        assert a1 == a2 and [t.offset for t in t1] == [t.offset for t in t2]
        assert a1 <= ag
        better += a1 < ag
    assert better >= 3, f"the best-of plan beat largest-first on only {better}/60 random graphs"


def test_live_bytes_per_op() -> None:
    tensors, ops = _chain([32, 64, 16], [])
    plan_arena(tensors, ops, [0], [2], 16)
    assert live_bytes_per_op(tensors, ops, [0], [2]) == [96, 80]


# ------------------------------------------------------------------ in-place elementwise chains

UNARY = ("RELU", "RELU6", "LEAKY_RELU", "ELU", "LOGISTIC", "TANH")
BINARY = ("MUL", "SUB", "ADD", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "PRELU")


def _scale(rng: np.random.Generator) -> float:
    return float(np.exp(rng.uniform(np.log(1e-2), np.log(1.0))))


def _options(op: str, rng: np.random.Generator):
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
    if op == "LEAKY_RELU":
        o = schema.LeakyReluOptionsT()
        o.alpha = float(rng.choice([0.1, 0.3]))
        return o, schema.BuiltinOptions.LeakyReluOptions
    if op in ("MUL", "SUB", "ADD"):
        o = {"MUL": schema.MulOptionsT, "SUB": schema.SubOptionsT, "ADD": schema.AddOptionsT}[op]()
        o.fusedActivationFunction = int(rng.choice([0, 1]))
        kind = {"MUL": schema.BuiltinOptions.MulOptions, "SUB": schema.BuiltinOptions.SubOptions,
                "ADD": schema.BuiltinOptions.AddOptions}[op]
        return o, kind
    return None, 0


def chain_case(rng: np.random.Generator) -> tuple[bytes, list[np.ndarray]]:
    """x -> op -> op -> ... : each intermediate dies at the next op, which may write over it. Binary ops take
    a second model input, of the full shape or broadcast, as first or second operand."""
    shape = tuple(int(d) for d in rng.integers(2, 7, size=int(rng.integers(2, 5))))
    m = _Model()
    q = (_scale(rng), int(rng.integers(-20, 20)))
    cur = m.tensor("x", shape, "INT8", *q)
    ins, feeds = [cur], [rng.integers(-128, 128, size=shape, dtype=np.int8)]
    for k in range(int(rng.integers(2, 6))):
        op = str(rng.choice(UNARY + BINARY))
        if op in UNARY:
            fixed = {"LOGISTIC": (1.0 / 256, -128), "TANH": (1.0 / 128, 0)}
            oq = fixed.get(op, (_scale(rng), int(rng.integers(-20, 20))))
            if op in ("RELU", "RELU6"):
                oq = q                  # keeps the LUT non-trivial on a random scale too
            y = m.tensor(f"y{k}", shape, "INT8", *oq)
            m.op(op, [cur], [y], *_options(op, rng))
        else:
            oshape = tuple(d if rng.random() < 0.6 else 1 for d in shape) if rng.random() < 0.4 else shape
            bq = q if op in ("MAXIMUM", "MINIMUM") else (_scale(rng), int(rng.integers(-20, 20)))
            oq = q if op in ("MAXIMUM", "MINIMUM") else (_scale(rng), int(rng.integers(-20, 20)))
            b = m.tensor(f"b{k}", oshape, "INT8", *bq)
            ins.append(b)
            feeds.append(rng.integers(-128, 128, size=oshape, dtype=np.int8))
            y = m.tensor(f"y{k}", shape, "INT8", *oq)
            pair = [cur, b] if op == "PRELU" or rng.random() < 0.5 else [b, cur]
            m.op(op, pair, [y], *_options(op, rng))
        cur, q = y, oq
    return m.finish(ins, [cur]), feeds


def test_in_place_chains_bit_exact(tmp_path: Path, natmod_x64: Path) -> None:
    from ops.engines import host_run, outputs_of
    from test_viper_engine import check_dual, run_dual
    rng = np.random.default_rng(10)
    dual, refs, flagged, smaller = [], [], 0, 0
    for _ in range(40):
        tfl, feeds = chain_case(rng)
        mpk = pack(tfl)
        f = MpkFile(mpk)
        n_ip = sum(1 for op in f.ops if op.flags & IN_PLACE)
        flagged += n_ip
        pm = pack_model(tfl)
        greedy = plan_arena_greedy(copy.deepcopy(pm.tensors), pm.ops, pm.inputs, pm.outputs, 16)
        smaller += f.header["arena_size"] < greedy
        assert f.header["arena_size"] <= greedy
        ref = [np.ascontiguousarray(o).tobytes() for o in run_tflm(tfl, feeds)]
        host, init = host_run(mpk, feeds, garbage=True)
        assert host == ref, "host C engine differs from tflite-micro on an in-place plan"
        dual.append((mpk, init))
        refs.append(ref)
    assert flagged >= 40 and smaller >= 20, (flagged, smaller)
    results = run_dual(dual, tmp_path, "in_place")
    check_dual(dual, results, "in_place")
    for (mpk, _), res, ref in zip(dual, results, refs, strict=True):
        assert res["c"][:3] == (0, 0, 0) and res["v"][:3] == (0, 0, 0), (res["c"], res["v"])
        assert outputs_of(mpk, res["ac"]) == ref, "natmod differs from tflite-micro on an in-place plan"
        assert outputs_of(mpk, res["av"]) == ref, "viper differs from tflite-micro on an in-place plan"


# ------------------------------------------------------------------ malformed in-place records

def _two_input(op: str) -> bytes:
    m = _Model()
    a = m.tensor("a", (1, 4, 4, 8), "INT8", 0.1, 0)
    b = m.tensor("b", (1, 4, 4, 8), "INT8", 0.1, 0)
    y = m.tensor("y", (1, 4, 4, 8), "INT8", 0.2, 1)
    m.op(op, [a, b], [y])
    return pack(m.finish([a, b], [y]))


def _softmax_aliased() -> bytes:
    """A SOFTMAX whose output sits exactly on its input, flagged IN_PLACE (SOFTMAX is not in_place_ok)."""
    m = _Model()
    a = m.tensor("a", (1, 64), "INT8", 0.1, 0)
    y = m.tensor("y", (1, 64), "INT8", 1.0 / 256, -128)
    m.op("SOFTMAX", [a], [y])
    mpk = bytearray(pack(m.finish([a], [y])))
    f = MpkFile(bytes(mpk))
    struct.pack_into("<I", mpk, _trec(f, f.ops[0].outputs[0]) + 12, f.tensors[f.ops[0].inputs[0]].offset)
    struct.pack_into("<H", mpk, f.ops[0].record_offset + 6, IN_PLACE)
    return with_crc(mpk)


def _trec(f: MpkFile, i: int) -> int:
    return f.header["tensors_offset"] + spec.TENSOR_SIZE * i


def malformed() -> list[tuple[str, bytes, int, int]]:
    """(what, file, status, detail) of in-place corruptions both loaders must refuse."""
    out = []
    for op, alias_code in (("MUL", 73), ("ADD", None)):
        mpk = _two_input(op)
        f = MpkFile(mpk)
        o0 = f.ops[0]
        assert o0.flags & IN_PLACE, f"{op}: expected an in-place plan"
        out_t = f.tensors[o0.outputs[0]]
        k = next(k for k, i in enumerate(o0.inputs) if f.tensors[i].offset == out_t.offset)
        code = alias_code if alias_code is not None else 20 + k
        # partial overlap: the output moved 16 bytes past the input it aliased (arena grown to hold it)
        b = bytearray(mpk)
        struct.pack_into("<I", b, _trec(f, o0.outputs[0]) + 12, out_t.offset + 16)
        arena = max(f.header["arena_size"], out_t.offset + 16 + out_t.nbytes)
        struct.pack_into("<I", b, HEADER_OFFSETS["arena_size"], (arena + 15) // 16 * 16)
        out.append((f"{op} partial overlap", with_crc(b), E_OP, code))
        # the same exact alias without the flag
        b = bytearray(mpk)
        struct.pack_into("<H", b, o0.record_offset + 6, 0)
        out.append((f"{op} alias without IN_PLACE", with_crc(b), E_OP, code))
        # an unknown flag bit
        b = bytearray(mpk)
        struct.pack_into("<H", b, o0.record_offset + 6, IN_PLACE | 2)
        out.append((f"{op} unknown flag", with_crc(b), E_OP, FLAGS))
    out.append(("SOFTMAX flagged IN_PLACE", _softmax_aliased(), E_OP, FLAGS))
    return out


def test_malformed_in_place_refused(tmp_path: Path, natmod_x64: Path) -> None:
    from test_viper_engine import run_dual
    cases = malformed()
    for what, mpk, st, detail in cases:
        got = prepare_status(mpk)[:3]
        assert got == (st, 0, detail), f"{what}: host loader gave {got}, want {(st, 0, detail)}"
    results = run_dual([(mpk, b"") for _, mpk, _, _ in cases], tmp_path, "in_place_bad")
    for (what, _, st, detail), res in zip(cases, results, strict=True):
        assert res["c"][:3] == (st, 0, detail), f"{what}: natmod gave {res['c']}"
        assert res["v"][:3] == (st, 0, detail), f"{what}: viper gave {res['v']}"


# ------------------------------------------------------------------ inspect: live bytes per op, --plot

def test_inspect_live_bytes_and_plot(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from mpyml.inspect_model import format_table, inspect_model
    tfl, _ = chain_case(np.random.default_rng(11))
    mpk = pack(tfl)
    info = inspect_model(mpk)
    live = [layer["live_arena_bytes"] for layer in info["layers"]]
    assert len(live) == info["ops"] and 0 < max(live) == info["peak_live_arena_bytes"] <= info["arena_bytes"]
    assert any(layer["in_place"] for layer in info["layers"])
    table = format_table(info)
    assert "live B" in table and "* in place" in table
    src = tmp_path / "m.mpk"
    src.write_bytes(mpk)
    png = tmp_path / "mem.png"
    cli = [sys.executable, "-m", "mpyml.cli", "inspect"]
    r = subprocess.run([*cli, str(src), "--plot", str(png)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    r = subprocess.run([*cli, "--json", str(src)], capture_output=True, text=True, timeout=120)
    assert [layer["live_arena_bytes"] for layer in json.loads(r.stdout)["layers"]] == live
    r = subprocess.run([*cli, str(src), "--plot", str(tmp_path / "no" / "dir" / "x.png")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "cannot write" in r.stderr and "Traceback" not in r.stderr, r.stderr
