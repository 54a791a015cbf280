"""The viper fallback engine (device/mpyml/viper_engine.py) against the C engine, on the unix port.

Proofs, all byte-for-byte against the C native module (tolerance 0):
  * every model under ../shared/models: the whole arena after invoke (outputs and every
    intermediate) on random and extreme arena contents, one micropython process per model;
  * per op: random single-op TFLite models (tests/tflite_build.random_case, through mpyml.pack) and
    directly packed single-op models with parameters TFLite never produces (shifts up to 30,
    multipliers up to 2^31-1, int32 bias wraparound, empty windows, left shifts of softmax...);
  * malformed files: truncation at every offset, random byte flips (fixed seed) and CRC-fixed
    corruptions of every header / tensor / op / io byte and of the data section give the same
    (status, index, detail) from both loaders, and when both accept, the same arena after invoke;
  * allocation: every viper invoke above is repeated with the heap locked, and the heap is flat
    across 1000 invokes;
  * 32-bit boards: the engine's viper functions are re-run in CPython with every int operation
    wrapped to 32 bits and ptr32 loads sign-extended (what viper does on ESP32 / Cortex-M), and
    must still match the C engine;
  * mpy-cross builds the engine for every arch (tools/build_viper.py); the x64 .mpy runs.
"""

from __future__ import annotations

import ast
import glob
import os
import struct
import subprocess
import sys
import types
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import IN_CI, shared_path, skip_or_fail
from mpyml import pack, paths
from mpyml.mpk import MpkFile, with_crc
from mpyml.packer import (
    NO_TENSOR,
    S_ARENA,
    S_CONST,
    T_INT8,
    T_INT32,
    PackedModel,
    POp,
    PTensor,
    _layout_data,
    serialize,
)
from mpyml.unix_port import run_batch, run_micropython

REPO = Path(__file__).resolve().parents[1]
ENGINE_SRC = REPO / "device" / "mpyml" / "viper_engine.py"
OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "ADD", "RESHAPE",
       "SOFTMAX")
OPCODE = {n: i + 1 for i, n in enumerate(OPS[:6])} | {"RESHAPE": 7, "SOFTMAX": 8}
ARENA_CAP = 1 << 20

# ------------------------------------------------------------------ device side

# Runs a container of cases through both engines. Per case: both prepare() results; when both accept
# (and the arena is not absurdly large), both invoke() on the same initial arena, then the viper
# invoke again with the heap locked. Writes one record per case to the output file.
DUAL = r"""
import sys, struct, micropython
import mpyml_engine as ce
from mpyml import viper_engine as ve
src, dst, cap = sys.argv[1], sys.argv[2], int(sys.argv[3])
f = open(src, "rb")
fo = open(dst, "wb")
n = struct.unpack("<I", f.read(4))[0]
def st(r):
    return (0, 0, 0, 0) if r is None else r

for i in range(n):
    mpk = f.read(struct.unpack("<I", f.read(4))[0])
    init = f.read(struct.unpack("<I", f.read(4))[0])
    cctx = bytearray(ce.ctx_size(mpk))
    vctx = bytearray(ve.ctx_size(mpk))
    rc = ce.prepare(mpk, cctx)
    rv = ve.prepare(mpk, vctx)
    ac = av = b""
    lock = 0
    if rc is None and rv is None:
        asz = struct.unpack_from("<I", mpk, 16)[0]
        if asz <= cap:
            ac = bytearray(asz)
            k = min(asz, len(init))
            ac[:k] = init[:k]
            av = bytearray(ac)
            ce.invoke(mpk, ac, cctx)
            ve.invoke(mpk, av, vctx)
            again = bytearray(asz)
            again[:k] = init[:k]
            micropython.heap_lock()
            try:
                ve.invoke(mpk, again, vctx)
                lock = 1
            except MemoryError:
                lock = 2
            micropython.heap_unlock()
    fo.write(struct.pack("<8iiI", *(st(rc) + st(rv)), lock, len(ac)))
    fo.write(ac)
    fo.write(av)
fo.close()
print("DONE", n)
"""

HEAP = r"""
import sys, gc, micropython, mpyml
m = mpyml.load(sys.argv[1], engine="viper")
n = int(sys.argv[2])

def loop(k):
    i = 0
    while i < k:
        m.invoke()
        i += 1

loop(10)        # the first measured loop of any engine (C too) loses one GC block to the VM itself
gc.collect()
before = gc.mem_free()
loop(n)
gc.collect()
after = gc.mem_free()
micropython.heap_lock()
try:
    m.invoke()
    locked = "ok"
except MemoryError:
    locked = "alloc"
micropython.heap_unlock()
print("HEAP", m.engine, before, after, locked)
"""

API = r"""
import sys
import mpyml_engine as ce
from mpyml import viper_engine as ve
mpk = open(sys.argv[1], "rb").read()
print("VERSION", ce.version() == ve.version())
print("CTXSIZE", ve.ctx_size() >= 4 * 64)
ok = 1
for data in (b"", b"a", b"123456789", bytes(range(256)) * 3, mpk):
    for start in (0, 1, 0xFFFFFFFF, 0x12345678, -1):
        if ce.crc32(data, start) != ve.crc32(data, start):
            ok = 0
    if ce.crc32(data) != ve.crc32(data):
        ok = 0
print("CRC", ok)

def err(fn, *a):
    try:
        fn(*a)
    except ValueError:
        return "ValueError"
    except TypeError:
        return "TypeError"
    return "none"

ctx = bytearray(ve.ctx_size(mpk))
print("SMALLCTX", err(ve.prepare, mpk, bytearray(8)))
print("NOTBUF", err(ve.prepare, 12345, ctx))
print("UNPREPARED", err(ve.invoke, mpk, bytearray(1 << 16), bytearray(ve.ctx_size())))
assert ve.prepare(mpk, ctx) is None
asz = int.from_bytes(mpk[16:20], "little")
print("SHORTARENA", err(ve.invoke, mpk, bytearray(asz - 16), ctx))
big = bytearray(asz + 1)
print("MISALIGNED", err(ve.invoke, mpk, memoryview(big)[1:], ctx))
print("OTHERMODEL", err(ve.invoke, bytearray(mpk), bytearray(asz), ctx))
print("CCTX", err(ve.invoke, mpk, bytearray(asz), bytearray(ce.ctx_size() + 512)))
print("NOTPREPARED2", err(ve.invoke, mpk, bytearray(asz), bytearray(ve.ctx_size() - 4)))
odd = bytearray(len(mpk) + 1)
odd[1:] = mpk
print("ODDMODEL", ve.prepare(memoryview(odd)[1:], ctx), ce.prepare(memoryview(odd)[1:], bytearray(ce.ctx_size())))
failed = ve.prepare(mpk[:-1], ctx)
print("AFTERFAIL", err(ve.invoke, mpk[:-1], bytearray(asz), ctx), failed[0])
"""


def _write_cases(path: Path, cases: list[tuple[bytes, bytes]]) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<I", len(cases)))
        for mpk, init in cases:
            f.write(struct.pack("<I", len(mpk)) + mpk + struct.pack("<I", len(init)) + init)


def run_dual(cases: list[tuple[bytes, bytes]], tmp: Path, name: str = "cases") -> list[dict]:
    """Both engines on every (mpk, initial arena) case in one micropython process."""
    src, dst, script = tmp / f"{name}.bin", tmp / f"{name}.out", tmp / "dual.py"
    _write_cases(src, cases)
    script.write_text(DUAL)
    r = run_micropython([str(script), str(src), str(dst), str(ARENA_CAP)], heapsize="64M")
    assert r.returncode == 0 and f"DONE {len(cases)}" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    raw = dst.read_bytes()
    out, pos = [], 0
    for _ in cases:
        vals = struct.unpack_from("<8iiI", raw, pos)
        pos += 40
        n = vals[9]
        out.append(dict(c=vals[0:4], v=vals[4:8], lock=vals[8], ac=raw[pos:pos + n], av=raw[pos + n:pos + 2 * n]))
        pos += 2 * n
    assert pos == len(raw)
    return out


def check_dual(cases: list[tuple[bytes, bytes]], results: list[dict], what: str, compare_line: bool = False,
               skip_arena: set[int] | None = None) -> dict[str, int]:
    """Assert statuses agree ((status, index, detail); the 4th item is each engine's own check
    number), arenas agree when both accepted, and no viper invoke allocated. Returns counts."""
    bad_status, bad_arena, alloc = [], [], []
    ran = 0
    for i, res in enumerate(results):
        if res["c"][:3] != res["v"][:3]:
            bad_status.append((i, res["c"], res["v"]))
        if res["ac"]:
            ran += 1
            if res["ac"] != res["av"] and i not in (skip_arena or set()):
                diff = np.flatnonzero(np.frombuffer(res["ac"], np.uint8) != np.frombuffer(res["av"], np.uint8))
                bad_arena.append((i, len(diff), int(diff[0])))
            if res["lock"] != 1:
                alloc.append(i)
    assert not bad_status, f"{what}: {len(bad_status)}/{len(cases)} statuses differ (i, C, viper): {bad_status[:5]}"
    assert not bad_arena, f"{what}: {len(bad_arena)} arenas differ (i, n bytes, first): {bad_arena[:5]}"
    assert not alloc, f"{what}: viper invoke allocated in cases {alloc[:10]}"
    return {"cases": len(cases), "ran": ran}


# ------------------------------------------------------------------ packed single-op models, built directly

def _i8(rng: np.random.Generator, shape) -> bytes:
    return rng.integers(-128, 128, size=shape, dtype=np.int8).tobytes()


class _Net:
    """Tiny direct .mpk builder: arena tensors laid out back to back (16-aligned), consts in the data section."""

    def __init__(self) -> None:
        self.tensors: list[PTensor] = []
        self.ops: list[POp] = []
        self.arena = 0

    def act(self, shape, zp: int = 0, at: int | None = None) -> int:
        t = PTensor(f"a{len(self.tensors)}", tuple(shape), T_INT8, S_ARENA, zp, 0.05)
        t.offset = self.arena if at is None else at
        if at is None:
            self.arena += (t.nbytes + 15) // 16 * 16
        self.tensors.append(t)
        return len(self.tensors) - 1

    def const(self, shape, data: bytes, int32: bool = False) -> int:
        t = PTensor(f"c{len(self.tensors)}", tuple(shape), T_INT32 if int32 else T_INT8, S_CONST, 0, 0.01, data)
        assert t.nbytes == len(data)
        self.tensors.append(t)
        return len(self.tensors) - 1

    def i32(self, values) -> int:
        v = np.asarray(values, dtype=np.int64)
        return self.const((len(v),), v.astype("<i4").tobytes(), int32=True)

    def op(self, name: str, inputs: list[int], output: int, params: list[int]) -> None:
        self.ops.append(POp(OPCODE[name], list(inputs), [output], [int(p) for p in params], -1))

    def build(self, inputs: list[int], outputs: list[int]) -> bytes:
        pm = PackedModel(self.tensors, self.ops, inputs, outputs, max(16, (self.arena + 15) // 16 * 16))
        _layout_data(pm)
        return serialize(pm)


def _mults(rng: np.random.Generator, n: int, extreme: bool) -> tuple[list[int], list[int]]:
    if extreme:
        m = [int(rng.choice([rng.integers(0, 1 << 31), rng.integers(1 << 30, 1 << 31), (1 << 31) - 1, 0,
                             rng.integers(0, 1 << 16)])) for _ in range(n)]
        s = [int(rng.integers(-31, 31)) for _ in range(n)]
    else:
        m = [int(rng.integers(1 << 30, 1 << 31)) for _ in range(n)]
        s = [int(rng.integers(-14, 2)) for _ in range(n)]
    return m, s


def _bias(rng: np.random.Generator, n: int, extreme: bool) -> list[int]:
    if extreme and rng.random() < 0.5:
        return [int(rng.choice([rng.integers(-(1 << 31), 1 << 31), (1 << 31) - 1, -(1 << 31)])) for _ in range(n)]
    return [int(x) for x in rng.integers(-20000, 20000, size=n)]


def _act_range(rng: np.random.Generator) -> tuple[int, int]:
    if rng.random() < 0.5:
        return -128, 127
    a, b = sorted(int(x) for x in rng.integers(-128, 128, size=2))
    return a, b


def _conv_case(rng: np.random.Generator, depthwise: bool, extreme: bool) -> bytes:
    net = _Net()
    n = 2 if rng.random() < 0.15 else 1
    h, w, c = int(rng.integers(1, 8)), int(rng.integers(1, 8)), int(rng.integers(1, 10))
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    dh, dw = (1, 1) if rng.random() < 0.6 else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    ph, pw = int(rng.integers(0, (kh - 1) * dh + 2)), int(rng.integers(0, (kw - 1) * dw + 2))
    oh = max(1, (h + 2 * ph - (kh - 1) * dh - 1) // sh + 1 + int(rng.integers(0, 2)))
    ow = max(1, (w + 2 * pw - (kw - 1) * dw - 1) // sw + 1 + int(rng.integers(0, 2)))
    dm = 1
    if depthwise:
        dm = 1 if rng.random() < 0.5 else int(rng.integers(2, 7))
        o = c * dm
        fshape = (1, kh, kw, o)
    else:
        o = int(rng.integers(1, 11))
        fshape = (o, kh, kw, c)
    x = net.act((n, h, w, c))
    y = net.act((n, oh, ow, o))
    f = net.const(fshape, _i8(rng, fshape))
    bias = net.i32(_bias(rng, o, extreme)) if rng.random() < 0.85 else NO_TENSOR
    m, s = _mults(rng, o, extreme)
    lo, hi = _act_range(rng)
    net.op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [x, f, bias, net.i32(m), net.i32(s)], y,
           [sw, sh, dw, dh, pw, ph, int(rng.integers(-127, 129)), int(rng.integers(-128, 128)), lo, hi, dm])
    return net.build([x], [y])


def _fc_case(rng: np.random.Generator, extreme: bool) -> bytes:
    net = _Net()
    b, k, o = int(rng.integers(1, 4)), int(rng.integers(1, 80)), int(rng.integers(1, 14))
    shape = [(b, k), (b, 1, 1, k), (b * k,)][int(rng.integers(0, 3 if b == 1 else 2))]
    x = net.act(shape)
    y = net.act((b, o))
    f = net.const((o, k), _i8(rng, (o, k)))
    bias = net.i32(_bias(rng, o, extreme)) if rng.random() < 0.85 else NO_TENSOR
    nm = o if rng.random() < 0.5 else 1
    m, s = _mults(rng, nm, extreme)
    lo, hi = _act_range(rng)
    net.op("FULLY_CONNECTED", [x, f, bias, net.i32(m), net.i32(s)], y,
           [int(rng.integers(-127, 129)), int(rng.integers(-128, 128)), lo, hi])
    return net.build([x], [y])


def _pool_case(rng: np.random.Generator, name: str) -> bytes:
    net = _Net()
    n, h, w, c = (2 if rng.random() < 0.15 else 1), int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(
        rng.integers(1, 8))
    fh, fw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    ph, pw = int(rng.integers(0, 4)), int(rng.integers(0, 4))
    oh, ow = int(rng.integers(1, 7)), int(rng.integers(1, 7))
    x = net.act((n, h, w, c))
    y = net.act((n, oh, ow, c))
    lo, hi = _act_range(rng)
    net.op(name, [x], y, [sw, sh, fw, fh, pw, ph, lo, hi])
    return net.build([x], [y])


def _shape4(shape) -> tuple[int, ...]:
    return (1,) * (4 - len(shape)) + tuple(shape)


def _add_case(rng: np.random.Generator, extreme: bool) -> bytes:
    net = _Net()
    rank = int(rng.integers(1, 5))
    full = [int(rng.integers(1, 3)), int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 9))]
    out = full[4 - rank:]
    shapes = []
    for _ in range(2):
        s = [d if rng.random() < 0.65 else 1 for d in out]
        r = int(rng.integers(1, len(s) + 1))
        shapes.append(tuple(s[len(s) - r:]))
    if _shape4(shapes[0]) == _shape4(shapes[1]):
        shapes[0] = tuple(out)   # equal input shapes must be the output's: see test_add_equal_inputs_broadcast
    x1 = net.act(shapes[0])
    x2 = net.const(shapes[1], _i8(rng, shapes[1])) if rng.random() < 0.2 else net.act(shapes[1])
    # the output is exactly the broadcast of the inputs (the loader rejects anything else)
    y = net.act(tuple(max(a, b) for a, b in zip(_shape4(shapes[0]), _shape4(shapes[1]), strict=True)))
    lo, hi = _act_range(rng)
    if extreme:
        mults = [int(rng.integers(0, 1 << 31)) for _ in range(3)]
        shifts = [int(rng.integers(-31, 1)) for _ in range(3)]
        ls = int(rng.integers(0, 21))
    else:
        mults = [int(rng.integers(1 << 30, 1 << 31)) for _ in range(3)]
        shifts = [int(rng.integers(-10, 1)), int(rng.integers(-10, 1)), int(rng.integers(-20, -8))]
        ls = 20
    net.op("ADD", [x1, x2], y, [int(rng.integers(-127, 129)), int(rng.integers(-127, 129)),
                                int(rng.integers(-128, 128)), ls, mults[0], shifts[0], mults[1], shifts[1],
                                mults[2], shifts[2], lo, hi])
    inputs = [x1] + ([x2] if net.tensors[x2].storage == S_ARENA else [])
    return net.build(inputs, [y])


def _reshape_case(rng: np.random.Generator) -> bytes:
    net = _Net()
    k = int(rng.integers(1, 40))
    kind = int(rng.integers(0, 3))
    if kind == 0:                                   # arena copy
        x = net.act((1, k))
        y = net.act((k,))
        ins = [x]
    elif kind == 1:                                 # aliased (the planner's free reshape)
        x = net.act((1, 1, k))
        y = net.act((k, 1), at=net.tensors[x].offset)
        ins = [x]
    else:                                           # from a constant
        x = net.const((k, 1), _i8(rng, (k, 1)))
        y = net.act((1, k))
        ins = [net.act((4,))]
    net.op("RESHAPE", [x], y, [])
    return net.build(ins, [y])


def _softmax_case(rng: np.random.Generator, extreme: bool) -> bytes:
    net = _Net()
    depth, outer = int(rng.integers(1, 70)), int(rng.integers(1, 4))
    shape = (outer, depth) if rng.random() < 0.6 else (1, outer, 1, depth)
    x = net.act(shape)
    y = net.act(shape)
    if extreme:
        im = int(rng.choice([rng.integers(0, 1 << 31), (1 << 31) - 1, 0, rng.integers(1 << 30, 1 << 31)]))
        ils = int(rng.integers(0, 32))
        dmin = int(rng.choice([rng.integers(-(1 << 31) + 1, 1), rng.integers(-300, 1), 0, -(1 << 31) + 1]))
    else:
        im = int(rng.integers(1 << 30, 1 << 31))
        ils = int(rng.integers(18, 28))
        dmin = int(rng.integers(-400, -10))
    net.op("SOFTMAX", [x], y, [im, ils, dmin])
    return net.build([x], [y])


def direct_case(op: str, rng: np.random.Generator) -> bytes:
    extreme = bool(rng.random() < 0.5)
    if op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return _conv_case(rng, op == "DEPTHWISE_CONV_2D", extreme)
    if op == "FULLY_CONNECTED":
        return _fc_case(rng, extreme)
    if op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return _pool_case(rng, op)
    if op == "ADD":
        return _add_case(rng, extreme)
    if op == "RESHAPE":
        return _reshape_case(rng)
    return _softmax_case(rng, extreme)


def zoo_model(seed: int = 7) -> bytes:
    """A small model with every op (the base of the malformed-file tests and the heap test)."""
    rng = np.random.default_rng(seed)
    net = _Net()
    t0 = net.act((1, 5, 5, 3), zp=-3)
    t1, t2, t3 = net.act((1, 5, 5, 4)), net.act((1, 5, 5, 4)), net.act((1, 5, 5, 4))
    t4, t5, t6 = net.act((1, 3, 3, 4)), net.act((1, 1, 1, 4)), net.act((1, 4))
    t7, t8 = net.act((1, 5)), net.act((1, 5), zp=-128)

    def rq(n):
        return net.i32(rng.integers(1 << 30, 1 << 31, size=n)), net.i32(rng.integers(-9, 0, size=n))

    f0 = net.const((4, 3, 3, 3), _i8(rng, (4, 3, 3, 3)))
    net.op("CONV_2D", [t0, f0, net.i32(rng.integers(-999, 999, 4)), *rq(4)], t1,
           [1, 1, 1, 1, 1, 1, 3, -5, -128, 127, 1])
    f1 = net.const((1, 3, 3, 4), _i8(rng, (1, 3, 3, 4)))
    net.op("DEPTHWISE_CONV_2D", [t1, f1, net.i32(rng.integers(-99, 99, 4)), *rq(4)], t2,
           [1, 1, 1, 1, 1, 1, 5, 2, -128, 127, 1])
    net.op("ADD", [t1, t2], t3, [5, -2, 1, 20, 1 << 30, -1, 1 << 30, -1, 1 << 30, -19, -128, 127])
    net.op("MAX_POOL_2D", [t3], t4, [2, 2, 2, 2, 0, 0, -128, 127])
    net.op("AVERAGE_POOL_2D", [t4], t5, [1, 1, 3, 3, 0, 0, -128, 127])
    net.op("RESHAPE", [t5], t6, [])
    f2 = net.const((5, 4), _i8(rng, (5, 4)))
    net.op("FULLY_CONNECTED", [t6, f2, net.i32(rng.integers(-99, 99, 5)), *rq(1)], t7, [7, -1, -128, 127])
    net.op("SOFTMAX", [t7], t8, [1 << 30, 22, -300])
    return net.build([t0], [t8])


def _rand_init(rng: np.random.Generator, mpk: bytes) -> bytes:
    return rng.integers(0, 256, size=struct.unpack_from("<I", mpk, 16)[0], dtype=np.uint8).tobytes()


# ------------------------------------------------------------------ models

def _model_names() -> list[str]:
    found = sorted(glob.glob(str(paths.SHARED / "models" / "**" / "*.tflite"), recursive=True))
    return [os.path.relpath(p, paths.SHARED / "models") for p in found] or ["(no models: ../shared missing)"]


@pytest.mark.parametrize("name", _model_names())
def test_model_bit_exact(name: str, tmp_path: Path, natmod_x64: Path) -> None:
    path = shared_path("models", *Path(name).parts)
    mpk = pack(path.read_bytes())
    rng = np.random.default_rng(sum(name.encode()))
    asz = struct.unpack_from("<I", mpk, 16)[0]
    macs = struct.unpack_from("<I", mpk, 52)[0]
    n_random = 3 if macs > 5_000_000 else 6
    inits = [_rand_init(rng, mpk) for _ in range(n_random)] + [b"\x80" * asz, b"\x7f" * asz, bytes(asz)]
    res = run_dual([(mpk, init) for init in inits], tmp_path)
    counts = check_dual([(mpk, i) for i in inits], res, name)
    assert counts["ran"] == len(inits)
    # the outputs specifically (what a user sees), for the record
    m = MpkFile(mpk)
    for r in res:
        for t in m.output_tensors():
            assert r["ac"][t.offset:t.offset + t.nbytes] == r["av"][t.offset:t.offset + t.nbytes]


def test_device_package_uses_viper(tmp_path: Path, natmod_x64: Path) -> None:
    """The user path: mpyml.load(engine='viper') through run_batch; and the automatic fallback when
    the native module is missing."""
    mpk = zoo_model()
    rng = np.random.default_rng(5)
    batch = [[rng.integers(-128, 128, size=(1, 5, 5, 3), dtype=np.int8)] for _ in range(4)]
    rc = run_batch(mpk, batch, engine="c")
    rv = run_batch(mpk, batch, engine="viper")
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(rc.batch, rv.batch, strict=True))
    assert rv.heap_delta == 0
    (tmp_path / "m.mpk").write_bytes(mpk)
    script = tmp_path / "fallback.py"
    script.write_text("import sys, mpyml\nm = mpyml.load(sys.argv[1])\nprint('ENGINE', m.engine)\n")
    env = dict(os.environ, MICROPYPATH=str(paths.DEVICE_DIR))       # no natmod on the path
    r = subprocess.run([paths.micropython_exe(), str(script), str(tmp_path / "m.mpk")], capture_output=True,
                       text=True, env=env, timeout=60)
    assert "ENGINE" in r.stdout and "viper_engine" in r.stdout, r.stdout + r.stderr


# ------------------------------------------------------------------ per op

def _tflite_build():
    try:
        import tflite_build
    except ImportError as e:        # tflite_micro missing: the direct cases below still run
        if IN_CI:
            raise
        skip_or_fail(f"tests/tflite_build.py unavailable: {e}")
    return tflite_build


@pytest.mark.parametrize("op", OPS)
def test_op_random_tflite(op: str, tmp_path: Path, natmod_x64: Path) -> None:
    """Random single-op TFLite models (tflite_build.random_case) through mpyml.pack."""
    tb = _tflite_build()
    rng = np.random.default_rng(1000 + OPS.index(op))
    cases = []
    for _ in range(40):
        mpk = pack(tb.random_case(op, rng)[0])
        cases.append((mpk, _rand_init(rng, mpk)))
    counts = check_dual(cases, run_dual(cases, tmp_path), op)
    assert counts["ran"] == len(cases)


@pytest.mark.parametrize("op", OPS)
def test_op_random_direct(op: str, tmp_path: Path, natmod_x64: Path) -> None:
    """Directly packed single-op models with parameters at and beyond what TFLite produces."""
    rng = np.random.default_rng(2000 + OPS.index(op))
    cases = []
    for _ in range(60):
        mpk = direct_case(op, rng)
        cases.append((mpk, _rand_init(rng, mpk)))
    res = run_dual(cases, tmp_path)
    rejected = [(i, r["c"]) for i, r in enumerate(res) if r["c"][0] != 0]
    assert not rejected, f"the generator made invalid {op} models: {rejected[:3]}"
    check_dual(cases, res, op)


def test_add_output_must_be_the_broadcast(tmp_path: Path, natmod_x64: Path) -> None:
    """An ADD whose output is larger than the broadcast of its inputs (two (1,1,1,6) inputs, a (1,2,3,6)
    output; TFLite never writes one) is rejected by both loaders with the same status: op 0, check 6."""
    params = [3, -7, 2, 20, 1 << 30, -1, 1 << 30, -1, 1 << 30, -18, -128, 127]
    a = _Net()
    x1, x2, y = a.act((1, 1, 1, 6)), a.act((1, 1, 1, 6)), a.act((1, 2, 3, 6))
    a.op("ADD", [x1, x2], y, params)
    odd = a.build([x1, x2], [y])
    rng = np.random.default_rng(9)
    res = run_dual([(odd, bytes(_rand_init(rng, odd)))], tmp_path)
    assert tuple(res[0]["v"][:3]) == tuple(res[0]["c"][:3]) == (10, 0, 6)


# ------------------------------------------------------------------ malformed files

def _overlapping(mpk: bytes) -> bool:
    """True when some op's output overlaps an arena input other than exactly (a planner-aliased
    reshape): then results depend on each kernel's read/write order, which is not part of the contract."""
    try:
        m = MpkFile(mpk)
    except Exception:
        return True
    for op in m.ops:
        try:
            out = m.tensors[op.outputs[0]]
            for i in op.inputs:
                if i == NO_TENSOR:
                    continue
                t = m.tensors[i]
                if t.in_arena and t.offset < out.offset + out.nbytes and out.offset < t.offset + t.nbytes:
                    if not (op.opcode == 7 and t.offset == out.offset):
                        return True
        except (IndexError, KeyError):
            return True
    return False


def _malformed_cases() -> list[bytes]:
    base = zoo_model()
    rng = np.random.default_rng(77)
    m = MpkFile(base)
    h = m.header
    meta_end = h["io_offset"] + 2 * (h["n_inputs"] + h["n_outputs"])
    cases = [base[:k] for k in range(len(base))]                                  # truncation
    for _ in range(300):                                                           # raw flips
        b = bytearray(base)
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(0, len(b)))] ^= int(rng.integers(1, 256))
        cases.append(bytes(b))
    for off in range(meta_end):                                                   # CRC-fixed, every byte
        if 12 <= off < 16:
            continue
        for v in {0x00, 0xFF, (base[off] + 1) & 0xFF, (base[off] - 1) & 0xFF, int(rng.integers(0, 256))}:
            if v != base[off]:
                b = bytearray(base)
                b[off] = v
                cases.append(with_crc(b))
    for _ in range(300):                                                           # CRC-fixed data words
        b = bytearray(base)
        off = h["data_offset"] + 4 * int(rng.integers(0, h["data_size"] // 4))
        struct.pack_into("<I", b, off, int(rng.choice([0, 0xFFFFFFFF, 0x80000000, 0x7FFFFFFF,
                                                      rng.integers(0, 1 << 32), rng.integers(0, 40)])))
        cases.append(with_crc(b))
    cases += [with_crc(base + b"\0" * 4), base + b"\0" * 16, b"", b"MPYM" + bytes(60)]
    return cases


def test_malformed_same_status(tmp_path: Path, natmod_x64: Path) -> None:
    rng = np.random.default_rng(3)
    blobs = _malformed_cases()
    cases = [(b, rng.integers(0, 256, size=4096, dtype=np.uint8).tobytes()) for b in blobs]
    res = run_dual(cases, tmp_path)
    skip = {i for i, (b, _) in enumerate(cases) if res[i]["ac"] and _overlapping(b)}
    counts = check_dual(cases, res, "malformed", skip_arena=skip)
    statuses = {r["c"][0] for r in res}
    # the corpus reaches deep into the loader: most status codes occur
    assert {0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11} <= statuses, statuses
    assert counts["ran"] > 100


# ------------------------------------------------------------------ heap and API

def test_heap_flat_1000_invokes(tmp_path: Path, natmod_x64: Path) -> None:
    model = tmp_path / "zoo.mpk"
    model.write_bytes(zoo_model())
    script = tmp_path / "heap.py"
    script.write_text(HEAP)
    r = run_micropython([str(script), str(model), "1000"])
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("HEAP")), None)
    assert r.returncode == 0 and line, r.stdout + r.stderr
    _, engine, before, after, locked = line.split()
    assert engine.endswith("viper_engine"), engine
    assert int(before) == int(after), f"heap not flat across 1000 invokes: {before} -> {after}"
    assert locked == "ok"


def test_api_matches_c(tmp_path: Path, natmod_x64: Path) -> None:
    model = tmp_path / "zoo.mpk"
    model.write_bytes(zoo_model())
    script = tmp_path / "api.py"
    script.write_text(API)
    r = run_micropython([str(script), str(model)])
    assert r.returncode == 0, r.stdout + r.stderr
    out = dict(ln.split(" ", 1) for ln in r.stdout.strip().splitlines())
    assert out["VERSION"] == "True" and out["CTXSIZE"] == "True" and out["CRC"] == "1"
    for k in ("SMALLCTX", "UNPREPARED", "SHORTARENA", "MISALIGNED", "OTHERMODEL", "CCTX", "NOTPREPARED2"):
        assert out[k] == "ValueError", (k, out[k])
    assert out["NOTBUF"] == "TypeError"
    assert out["ODDMODEL"].startswith("(7, -1, 0,") and "(7, -1, 0," in out["ODDMODEL"][10:]
    assert out["AFTERFAIL"] == "ValueError 1"


# ------------------------------------------------------------------ mpy-cross, every arch

def test_mpy_cross_all_archs(tmp_path: Path, natmod_x64: Path) -> None:
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import build_viper
    finally:
        sys.path.pop(0)
    built = build_viper.build(tmp_path / "viper", list(build_viper.ARCHS))
    assert {p.parent.parent.name for p in built} == set(build_viper.ARCHS)
    arch_code = {"x64": 2, "armv6m": 4, "armv7m": 5, "armv7emsp": 7, "armv7emdp": 8, "xtensawin": 10}
    for p in built:
        head = p.read_bytes()[:4]
        assert head[0] == ord("M") and head[1] == 6, p
        assert head[2] >> 2 == arch_code[p.parent.parent.name], (p, head)
    # the precompiled x64 engine runs and matches C
    pkg = tmp_path / "pkg" / "mpyml"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_bytes((paths.DEVICE_DIR / "mpyml" / "__init__.py").read_bytes())
    (pkg / "_spec.py").write_bytes((paths.DEVICE_DIR / "mpyml" / "_spec.py").read_bytes())
    (pkg / "viper_engine.mpy").write_bytes((tmp_path / "viper" / "x64" / "mpyml" / "viper_engine.mpy").read_bytes())
    mpk = zoo_model(11)
    rng = np.random.default_rng(0)
    (tmp_path / "m.mpk").write_bytes(mpk)
    (tmp_path / "in.bin").write_bytes(_rand_init(rng, mpk))
    script = tmp_path / "mpy.py"
    script.write_text(
        "import sys, mpyml_engine as ce\nfrom mpyml import viper_engine as ve\n"
        "print('FILE', ve.__file__)\nmpk = open(sys.argv[1], 'rb').read()\ninit = open(sys.argv[2], 'rb').read()\n"
        "a, b = bytearray(init), bytearray(init)\nx, y = bytearray(ce.ctx_size(mpk)), bytearray(ve.ctx_size(mpk))\n"
        "assert ce.prepare(mpk, x) is None and ve.prepare(mpk, y) is None\n"
        "ce.invoke(mpk, a, x)\nve.invoke(mpk, b, y)\nprint('SAME', a == b)\n")
    env = dict(os.environ, MICROPYPATH=f"{tmp_path / 'pkg'}:{paths.natmod_path('x64').parent}")
    r = subprocess.run([paths.micropython_exe(), str(script), str(tmp_path / "m.mpk"), str(tmp_path / "in.bin")],
                       capture_output=True, text=True, env=env, timeout=60)
    assert "viper_engine.mpy" in r.stdout and "SAME True" in r.stdout, r.stdout + r.stderr


# ------------------------------------------------------------------ 32-bit words (ESP32, Cortex-M)

class _Mem:
    """Flat address space for the simulated pointers: every buffer gets a fixed, 16-aligned base."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.next = 0x3FC80000 if bits == 32 else 0x7F1234560000
        self.bufs: list[tuple[int, object, memoryview]] = []

    def base(self, obj) -> int:
        for b, o, _ in self.bufs:
            if o is obj:
                return b
        b = self.next
        mv = memoryview(obj).cast("B")
        self.bufs.append((b, obj, mv))
        self.next += (len(mv) + 64 + 15) // 16 * 16
        return b

    def at(self, a: int) -> tuple[memoryview, int]:
        for b, _, mv in self.bufs:
            if b <= a < b + len(mv):
                return mv, a - b
        raise IndexError(f"simulated access outside every buffer: {a:#x}")


class _Ptr:
    def __init__(self, mem: _Mem, addr: int, size: int) -> None:
        self.mem, self.addr, self.size = mem, addr, size

    def __index__(self) -> int:
        return self.addr

    __int__ = __index__

    def __getitem__(self, i: int) -> int:
        mv, off = self.mem.at(self.addr + i * self.size)
        if off + self.size > len(mv):
            raise IndexError("simulated read past the end of a buffer")
        v = int.from_bytes(mv[off:off + self.size], "little")
        if self.size == 4 and self.mem.bits == 32:
            v = v - (1 << 32) if v >= 1 << 31 else v     # a 32-bit word is the int itself
        return v

    def __setitem__(self, i: int, v: int) -> None:
        mv, off = self.mem.at(self.addr + i * self.size)
        if mv.readonly:
            raise TypeError("simulated write into a read-only buffer (the model)")
        mv[off:off + self.size] = (v & ((1 << (8 * self.size)) - 1)).to_bytes(self.size, "little")


class _ViperToWords(ast.NodeTransformer):
    """Inside @micropython.viper functions: wrap every int result to the machine word and convert
    typed parameters the way the viper calling convention does."""

    def visit_FunctionDef(self, node: ast.FunctionDef):
        if not any(ast.unparse(d) == "micropython.viper" for d in node.decorator_list):
            return node
        node.decorator_list = []
        pre = []
        for a in node.args.args:
            ann = ast.unparse(a.annotation) if a.annotation else None
            if ann in ("ptr8", "ptr16", "ptr32"):
                pre.append(ast.parse(f"{a.arg} = {ann}({a.arg})").body[0])
            elif ann in ("int", "uint"):
                pre.append(ast.parse(f"{a.arg} = __w(int({a.arg}))").body[0])
            a.annotation = None
        node.returns = None
        self.generic_visit(node)
        node.body = pre + node.body
        return node

    def visit_BinOp(self, node: ast.BinOp):
        self.generic_visit(node)
        return ast.Call(ast.Name("__w", ast.Load()), [node], [])

    def visit_UnaryOp(self, node: ast.UnaryOp):
        self.generic_visit(node)
        if isinstance(node.op, (ast.USub, ast.Invert)):
            return ast.Call(ast.Name("__w", ast.Load()), [node], [])
        return node

    def visit_AugAssign(self, node: ast.AugAssign):
        self.generic_visit(node)
        assert isinstance(node.target, ast.Name), ast.unparse(node)
        load = ast.Name(node.target.id, ast.Load())
        return ast.Assign([node.target], ast.Call(ast.Name("__w", ast.Load()), [ast.BinOp(load, node.op, node.value)],
                                                  []), lineno=node.lineno)


def load_word_engine(bits: int) -> types.ModuleType:
    """viper_engine.py as CPython code with `bits`-bit viper semantics."""
    mem = _Mem(bits)
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)

    def w(v: int) -> int:
        return ((int(v) + sign) & mask) - sign

    def ptr(size):
        def cast(x):
            if isinstance(x, _Ptr):
                return _Ptr(mem, x.addr, size)
            if isinstance(x, int):
                return _Ptr(mem, x & mask, size)
            return _Ptr(mem, mem.base(x), size)
        return cast

    fake = types.ModuleType("micropython")
    fake.viper = fake.native = fake.const = lambda f: f
    tree = _ViperToWords().visit(ast.parse(ENGINE_SRC.read_text()))
    ast.fix_missing_locations(tree)
    mod = types.ModuleType(f"viper_engine_{bits}")
    mod.__dict__.update(__w=w, ptr8=ptr(1), ptr16=ptr(2), ptr32=ptr(4), uint=lambda v: int(v) & ((1 << bits) - 1))
    saved = sys.modules.get("micropython")
    sys.modules["micropython"] = fake
    try:
        # the device constants (mpyml/_spec.py) as the engine imports them on the board
        dspec = types.ModuleType("mpyml._spec")
        exec(compile((ENGINE_SRC.parent / "_spec.py").read_text(), "_spec.py", "exec"), dspec.__dict__)
        sys.modules["mpyml._spec"] = dspec
        exec(compile(tree, str(ENGINE_SRC), "exec"), mod.__dict__)
    finally:
        if saved is None:
            del sys.modules["micropython"]
        else:
            sys.modules["micropython"] = saved

    def crc(buf, start, end, zf, zt, lo, hi):      # uint arithmetic: checked on the device by test_api_matches_c
        b = bytearray(bytes(buf)[start:end])
        for i in range(max(zf, start), min(zt, end)):
            b[i - start] = 0
        return zlib.crc32(b, (hi << 16) | lo)

    mod._crc = crc
    mod.mem = mem
    return mod


def _word_run(eng: types.ModuleType, mpk: bytes, init: bytes) -> tuple[tuple, bytes]:
    ctx = bytearray(eng.ctx_size(mpk))
    r = eng.prepare(mpk, ctx)
    if r is not None:
        return tuple(r), b""
    arena = bytearray(struct.unpack_from("<I", mpk, 16)[0])
    k = min(len(arena), len(init))
    arena[:k] = init[:k]
    eng.invoke(mpk, arena, ctx)
    return (0, 0, 0, 0), bytes(arena)


@pytest.mark.parametrize("bits", [32, 64])
def test_word_size_semantics(bits: int, tmp_path: Path, natmod_x64: Path) -> None:
    """32: the ESP32 / Cortex-M arithmetic matches C. 64: the simulation itself matches the real
    unix-port viper (so the 32-bit run is a faithful model of the same code)."""
    eng = load_word_engine(bits)
    rng = np.random.default_rng(4000 + bits)
    cases = [(zoo_model(), _rand_init(rng, zoo_model()))]
    for op in OPS:
        for _ in range(12):
            mpk = direct_case(op, rng)
            cases.append((mpk, _rand_init(rng, mpk)))
    for blob in _malformed_cases()[::40]:
        cases.append((blob, rng.integers(0, 256, size=4096, dtype=np.uint8).tobytes()))
    res = run_dual(cases, tmp_path)
    bad = []
    for i, ((mpk, init), r) in enumerate(zip(cases, res, strict=True)):
        st, arena = _word_run(eng, mpk, init)
        if st[:3] != r["c"][:3] or (r["ac"] and not _overlapping(mpk) and arena != r["ac"]):
            bad.append((i, st, r["c"]))
    assert not bad, f"{bits}-bit words: {len(bad)}/{len(cases)} cases differ from C: {bad[:5]}"


SPEC_RELEASE = r"""
import sys, gc, mpyml
gc.collect()
base = gc.mem_free()
from mpyml import _spec
gc.collect()
spec_bytes = base - gc.mem_free()
_spec = None
m = mpyml.load(sys.argv[1], engine="viper")
m.invoke()
gc.collect()
print("SPEC", spec_bytes, "mpyml._spec" in sys.modules, "_spec" in mpyml.__dict__)
try:
    bad = bytearray(open(sys.argv[1], "rb").read())
    bad[-1] ^= 1                                        # a CRC error: its message comes from _spec.STATUS
    mpyml.load(bad, engine="viper")
except ValueError as e:
    print("ERROR", str(e))
"""


def test_spec_tables_released_after_prepare(tmp_path: Path, natmod_x64: Path) -> None:
    """The viper engine validates with mpyml._spec (tens of KB of heap on a board) and then drops it, so a
    loaded model does not keep the tables alive; an error message still re-imports them."""
    model = tmp_path / "zoo.mpk"
    model.write_bytes(zoo_model())
    script = tmp_path / "spec.py"
    script.write_text(SPEC_RELEASE)
    r = run_micropython([str(script), str(model)])
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("SPEC")), None)
    assert r.returncode == 0 and line, r.stdout + r.stderr
    _, spec_bytes, in_modules, in_package = line.split()
    assert int(spec_bytes) > 4096, spec_bytes           # the tables are worth releasing
    assert in_modules == "False" and in_package == "False", line
    assert "ERROR mpyml: invalid model:" in r.stdout, r.stdout
