"""Nothing a model file contains may crash the VM.

Three layers, all on packed versions of the small MLPerf Tiny models (kws, str_ww, ad01):
- the sanitizer driver native_modules/tests/fuzz_loader.c (ASan + UBSan, aborts on the first report):
  truncation at every byte, random flips with and without the CRC fixed, field-aware corruptions with
  the CRC fixed, every accepted file invoked on an exactly-sized arena;
- crafted models (loader regressions and kernels at the edges of the documented value ranges) replayed
  through the sanitizer driver and checked with the host library (build/host/libmpyml.so);
- the real native module on the MicroPython unix port, one process per model running
  tests/device/loader_robustness.py: every truncation / flip / targeted corruption either loads (and
  invokes) or raises ValueError, and each targeted corruption names its specific failure.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pytest

import mpyml
from conftest import shared_path, skip_or_fail
from mpyml import paths, spec
from mpyml.hostlib import (
    E_ALIGN,
    E_CRC,
    E_HEADER,
    E_IO,
    E_MAGIC,
    E_OP,
    E_OPCODE,
    E_SIZE,
    E_TENSOR,
    E_TRUNCATED,
    E_VERSION,
    OK,
    STATUS_NAMES,
    HostModel,
    PrepareError,
    prepare_status,
)
from mpyml.mpk import HEADER_FIELDS, HEADER_OFFSETS, MpkFile, with_crc
from mpyml.packer import NO_TENSOR, OPCODES, PackedModel, POp, PTensor, serialize
from mpyml.unix_port import run_batch, run_micropython

TESTS_MAKE = paths.REPO / "native_modules" / "tests"
DRIVER = paths.BUILD_DIR / "test" / "fuzz_loader"
DRIVER_V6M = paths.BUILD_DIR / "test" / "fuzz_loader_v6m"     # kernels with the ARMv6-M (Cortex-M0) arithmetic
DEVICE_SCRIPT = Path(__file__).parent / "device" / "loader_robustness.py"
ENGINE_DIR = paths.REPO / "native_modules" / "engine"
MODELS = {"kws": "kws_ref_model.tflite", "str_ww": "str_ww_ref_model.tflite", "ad01": "ad01_int8.tflite"}
SAN_ENV = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:halt_on_error=1",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
SAN_REPORT = re.compile(r"ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|CRASH|VIOLATION")

CONV, DW, FC = OPCODES["CONV_2D"], OPCODES["DEPTHWISE_CONV_2D"], OPCODES["FULLY_CONNECTED"]
AVG, MAXP, ADD = OPCODES["AVERAGE_POOL_2D"], OPCODES["MAX_POOL_2D"], OPCODES["ADD"]
RESHAPE, SOFTMAX = OPCODES["RESHAPE"], OPCODES["SOFTMAX"]


@cache
def packed(name: str) -> bytes:
    return mpyml.pack(shared_path("models", "mlperf_tiny", MODELS[name]).read_bytes())


@contextmanager
def build_lock() -> Iterator[None]:
    """Serialize builds between pytest-xdist workers."""
    paths.BUILD_DIR.mkdir(exist_ok=True)
    with open(paths.BUILD_DIR / ".loader_robustness.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _newest_source() -> float:
    return max(p.stat().st_mtime for p in ENGINE_DIR.rglob("*.[ch]"))


@pytest.fixture(scope="session")
def fuzz_driver() -> Path:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        skip_or_fail(f"no C compiler ({cc!r} not on PATH): the sanitizer driver cannot be built")
    with build_lock():
        r = subprocess.run(["make", "-s", "-C", str(TESTS_MAKE), "sanitize"], capture_output=True, text=True)
    assert r.returncode == 0, f"building the sanitizer driver failed:\n{r.stdout}\n{r.stderr}"
    return DRIVER


@pytest.fixture(scope="session")
def hostlib() -> Path:
    """build/host/libmpyml.so, rebuilt (`make hostlib`) when missing or older than the engine sources."""
    lib = paths.HOSTLIB
    if not lib.exists() or lib.stat().st_mtime < _newest_source():
        if shutil.which(os.environ.get("CC", "cc")) is None:
            skip_or_fail("no C compiler: cannot build the host library")
        with build_lock():
            r = subprocess.run(["make", "-s", "-C", str(paths.REPO), "hostlib"], capture_output=True, text=True)
        assert r.returncode == 0, f"make hostlib failed:\n{r.stdout}\n{r.stderr}"
    return lib


def run_driver(driver: Path, args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    r = subprocess.run([str(driver), *args], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **SAN_ENV})
    report = "\n".join(r.stderr.splitlines()[:80])
    assert r.returncode == 0 and not SAN_REPORT.search(r.stderr), (
        f"fuzz_loader {' '.join(args)} exited {r.returncode}:\n{r.stdout[-3000:]}\n{report}")
    assert "0 crashes, 0 violations" in r.stdout, r.stdout[-3000:]
    return r


@dataclass
class Phase:
    cases: int
    accepted: int
    invoked: int
    skipped: int
    rejected: dict[str, int]


def parse_phases(out: str) -> dict[str, Phase]:
    phases = {}
    for m in re.finditer(r"^phase (\w+): cases=(\d+) accepted=(\d+) invoked=(\d+) skipped=(\d+) rejected\{([^}]*)\}",
                         out, re.M):
        rej = {k: int(v) for k, v in (kv.split("=") for kv in m.group(6).split())}
        phases[m.group(1)] = Phase(int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5)), rej)
    return phases


# ------------------------------------------------------------------ 1. the sanitizer mutation driver

# Cases per model, sized for ~60 s of the whole file on 2 cores (ad01 is 273 KB: every prepare CRCs it all,
# so it gets fewer). -t is only a safety net for a very slow machine.
FUZZ_PLAN = {
    "kws": ["-s", "11", "-f", "1000", "-F", "1500", "-m", "6000", "-T", "400", "-t", "60"],
    "str_ww": ["-s", "12", "-f", "1000", "-F", "1500", "-m", "6000", "-T", "400", "-t", "60"],
    "ad01": ["-s", "13", "-f", "400", "-F", "800", "-m", "3000", "-T", "300", "-t", "60"],
    "str_ww-v6m": ["-s", "14", "-f", "200", "-F", "600", "-m", "3000", "-T", "100", "-t", "40"],
}


@pytest.mark.parametrize("name", [*MODELS, "str_ww-v6m"])
def test_sanitizer_fuzz(name: str, fuzz_driver: Path, tmp_path: Path) -> None:
    model, v6m = name.removesuffix("-v6m"), name.endswith("-v6m")
    mpk = packed(model)
    seed = tmp_path / f"{model}.mpk"
    seed.write_bytes(mpk)
    r = run_driver(DRIVER_V6M if v6m else fuzz_driver, [*FUZZ_PLAN[name], "-o", str(tmp_path), str(seed)])
    ph = parse_phases(r.stdout)
    print(r.stdout)
    assert set(ph) == {"trunc", "align", "trunc_fix", "flip_raw", "flip_crc", "struct"}, r.stdout
    budget_hit = "time budget" in r.stdout

    # every truncation is rejected; only the whole file loads
    assert ph["trunc"].cases == len(mpk) + 1 and ph["trunc"].accepted == 1
    assert ph["trunc"].rejected == {"TRUNCATED": len(mpk)}
    assert ph["trunc_fix"].accepted <= 1
    assert {"HEADER", "TENSOR"} <= set(ph["trunc_fix"].rejected)
    assert ph["align"].rejected == {"ALIGN": 3}
    # CRC-32 catches every single-byte error (magic, version and file_size are checked before it)
    fr = ph["flip_raw"]
    assert fr.accepted == 0 and set(fr.rejected) <= {"CRC", "MAGIC", "VERSION", "TRUNCATED", "SIZE"}, fr
    assert fr.rejected["CRC"] > 0.95 * fr.cases, fr
    # with the CRC fixed: weights flips load, header/table flips are caught by the structural checks
    fc = ph["flip_crc"]
    assert 0.1 < fc.accepted / fc.cases < 0.8, fc
    assert {"TENSOR", "OP"} <= set(fc.rejected), fc
    st = ph["struct"]
    assert 0.03 < st.accepted / st.cases < 0.5, st
    assert {"MAGIC", "VERSION", "SIZE", "HEADER", "TENSOR", "OPCODE", "OP", "IO"} <= set(st.rejected), st
    assert st.rejected["OP"] > 0.1 * st.cases and st.rejected["TENSOR"] > 0.1 * st.cases, st
    if not budget_hit:
        assert fc.cases == int(FUZZ_PLAN[name][FUZZ_PLAN[name].index("-F") + 1])
        assert st.cases == int(FUZZ_PLAN[name][FUZZ_PLAN[name].index("-m") + 1])
    else:
        assert st.cases >= 500, "the time budget left almost no structural cases: machine far too slow?"
    # every accepted file was invoked (bar a few with a corrupted, huge arena_size)
    for p in ph.values():
        assert p.invoked + p.skipped == p.accepted
        assert p.skipped <= max(2, 0.02 * p.accepted), p


# ------------------------------------------------------------------ 2. crafted models

class Craft:
    """A tiny model builder: arena tensors at chosen offsets, constants laid out 16-aligned."""

    def __init__(self) -> None:
        self.tensors: list[PTensor] = []
        self.ops: list[POp] = []
        self.data = bytearray()

    def act(self, shape: tuple[int, ...], offset: int, zp: int = 0) -> int:
        self.tensors.append(PTensor(f"a{len(self.tensors)}", shape, 1, 0, zp, 0.5, offset=offset))
        return len(self.tensors) - 1

    def const(self, values: np.ndarray | list[int], shape: tuple[int, ...] | None = None, int32: bool = False) -> int:
        arr = np.asarray(values, dtype="<i4" if int32 else np.int8)
        shape = shape or arr.shape
        arr = np.broadcast_to(arr, shape) if arr.size != int(np.prod(shape)) else arr.reshape(shape)
        self.data += b"\0" * (-len(self.data) % 16)
        self.tensors.append(PTensor(f"c{len(self.tensors)}", tuple(shape), 2 if int32 else 1, 1,
                                    offset=len(self.data), scale=0.5))
        self.data += np.ascontiguousarray(arr).tobytes()
        return len(self.tensors) - 1

    def op(self, opcode: int, ins: list[int], outs: list[int], params: list[int]) -> None:
        self.ops.append(POp(opcode, ins, outs, params, -1))

    def build(self, inputs: list[int], outputs: list[int], arena: int | None = None) -> bytes:
        if arena is None:
            arena = max(t.offset + t.nbytes for t in self.tensors if t.storage == 0)
            arena = (arena + 15) // 16 * 16
        # every constant in the trusted (engine-copied) region: the core ops require it for mult/shift
        data = bytes(self.data) + b"\0" * (-len(self.data) % 16)
        return serialize(PackedModel(self.tensors, self.ops, inputs, outputs, arena, data, trusted_size=len(data)))


def conv_params(stride: int = 1, dil: int = 1, pad: int = 0, in_off: int = 0, out_off: int = 0,
                act: tuple[int, int] = (-128, 127), dm: int = 1, dil_h: int | None = None) -> list[int]:
    return [stride, stride, dil, dil if dil_h is None else dil_h, pad, pad, in_off, out_off, act[0], act[1], dm]


def crafted_models() -> dict[str, tuple[bytes, tuple[int, int, int] | None]]:
    """name -> (file, expected (status, index, detail) or None for 'loads and invokes')."""
    out: dict[str, tuple[bytes, tuple[int, int, int] | None]] = {}
    big_m, max_m = 1 << 30, 0x7FFFFFFF

    # --- regressions: files an earlier loader accepted, then the kernels read out of bounds (ADD), overflowed
    # int32 (row step) or wrote over their own input (overlap)
    # ADD whose two (equal) inputs are smaller than the output: the elementwise path read past them
    c = Craft()
    a = c.act((1,), 0)
    o = c.act((1, 8, 8, 16), 16)
    c.op(ADD, [a, a], [o], [0, 0, 0, 20, big_m, -1, big_m, -1, big_m, -20, -128, 127])
    out["add_inputs_smaller_than_output"] = (c.build([a], [o]), (E_OP, 0, 6))
    # conv / depthwise stepping dil_h rows of a >2M-element row: int32 overflow in the kernels' row step
    for opcode, name in ((CONV, "conv"), (DW, "depthwise")):
        c = Craft()
        x = c.act((1, 1, 65535, 33), 0)
        f = c.const([1], (1, 1, 1, 33))
        n_o = 1 if opcode == CONV else 33
        m = c.const([big_m], (n_o,), int32=True)
        s = c.const([0], (n_o,), int32=True)
        y = c.act((1, 1, 1, n_o), 65535 * 33 + 13)
        c.op(opcode, [x, f, NO_TENSOR, m, s], [y], conv_params(pad=1, dil_h=1024))
        out[f"{name}_row_step_overflow"] = (c.build([x], [y]), (E_OP, 0, 11))
    # outputs written over their own input
    c = Craft()
    x = c.act((1, 8, 8, 4), 0)
    y = c.act((1, 8, 8, 4), 128)
    c.op(MAXP, [x], [y], [1, 1, 2, 2, 0, 0, -128, 127])
    out["pool_output_overlaps_input"] = (c.build([x], [y]), (E_OP, 0, 20))
    c = Craft()
    x = c.act((4, 10), 0)
    y = c.act((4, 10), 30)
    c.op(SOFTMAX, [x], [y], [big_m, 20, -4000])
    out["softmax_output_overlaps_input"] = (c.build([x], [y]), (E_OP, 0, 20))

    # --- edge cases that must load and run clean under the sanitizers
    # conv: every tap in the padding (stride/dilation/pad at 1024), output far larger than the input implies
    c = Craft()
    x = c.act((1, 3, 3, 2), 0)
    f = c.const(np.full((3, 2, 2, 2), -128))
    b = c.const([-(2**31), 2**31 - 1, 5], int32=True)
    m = c.const([max_m], (3,), int32=True)
    s = c.const([30, -31, 0], int32=True)
    y = c.act((1, 7, 9, 3), 32)
    c.op(CONV, [x, f, b, m, s], [y], conv_params(stride=1024, dil=1024, pad=1024, in_off=128, out_off=-128))
    out["conv_all_taps_in_padding"] = (c.build([x], [y]), None)
    # conv accumulating the maximum magnitude: K = 65536 taps of -128 * (127 + 128), const input
    c = Craft()
    x = c.const(np.full((1, 16, 16, 256), 127))
    f = c.const(np.full((2, 16, 16, 256), -128))
    m = c.const([max_m], (2,), int32=True)
    s = c.const([30, -31], int32=True)
    y = c.act((1, 1, 1, 2), 0)
    c.op(CONV, [x, f, NO_TENSOR, m, s], [y], conv_params(in_off=128, out_off=127, act=(-128, 127)))
    out["conv_max_accumulator"] = (_with_dummy_input(c, y), None)
    # 1x1 conv: the fast path (strides 1, 3) and just past its bounds (stride 4: general path)
    for stride in (1, 3, 4):
        c = Craft()
        x = c.act((2, 5, 4, 3), 0)
        f = c.const(np.arange(4 * 1 * 1 * 3).reshape(4, 1, 1, 3) - 6)
        m = c.const([big_m], (4,), int32=True)
        s = c.const([-3], (4,), int32=True)
        y = c.act((2, 2, 2, 4), 128)
        c.op(CONV, [x, f, NO_TENSOR, m, s], [y], conv_params(stride=stride))
        out[f"conv_1x1_stride{stride}"] = (c.build([x], [y]), None)
    # depthwise: depth_multiplier 1024 (1 input channel), and 4-channel groups with a 1-wide tail
    c = Craft()
    x = c.act((1, 4, 4, 1), 0)
    f = c.const(np.full((1, 2, 2, 1024), 127))
    m = c.const([max_m], (1024,), int32=True)
    s = c.const([30], (1024,), int32=True)
    y = c.act((1, 3, 3, 1024), 16)
    c.op(DW, [x, f, NO_TENSOR, m, s], [y], conv_params(in_off=-127, out_off=-128, dm=1024))
    out["depthwise_multiplier_1024"] = (c.build([x], [y]), None)
    c = Craft()
    x = c.act((1, 6, 5, 7), 0)
    f = c.const(np.ones((1, 3, 3, 14)))
    b = c.const([7], (14,), int32=True)
    m = c.const([big_m], (14,), int32=True)
    s = c.const([0], (14,), int32=True)
    y = c.act((1, 9, 9, 14), 224)
    c.op(DW, [x, f, b, m, s], [y], conv_params(stride=2, dil=3, pad=4, dm=2))
    out["depthwise_dm2_dilated_padded"] = (c.build([x], [y]), None)
    # fully connected: K = 65535, per-tensor and per-channel, batch of 3
    c = Craft()
    x = c.act((1, 65535), 0)
    f = c.const(np.full((1, 65535), -128))
    m = c.const([max_m], int32=True)
    s = c.const([30], int32=True)
    y = c.act((1, 1), 65536)
    c.op(FC, [x, f, NO_TENSOR, m, s], [y], [128, 127, -128, 127])
    out["fc_k_65535"] = (c.build([x], [y]), None)
    c = Craft()
    x = c.act((3, 2, 5), 0)
    f = c.const(np.arange(50).reshape(5, 10) - 25)
    b = c.const(np.arange(5), int32=True)
    m = c.const([max_m, 1, 0, big_m, big_m], int32=True)
    s = c.const([30, -31, 0, 1, -1], int32=True)
    y = c.act((3, 5), 32)
    c.op(FC, [x, f, b, m, s], [y], [-127, -128, -5, 5])
    out["fc_per_channel_batch3"] = (c.build([x], [y]), None)
    # pooling: 1024 x 64 window (65536 taps) over a small input, padding 1024, windows with no valid tap
    for opcode, name in ((AVG, "avg"), (MAXP, "max")):
        c = Craft()
        x = c.act((2, 5, 3, 4), 0)
        y = c.act((2, 6, 7, 4), 128)
        c.op(opcode, [x], [y], [1024, 3, 1024, 64, 1024, 2, -100, 100])
        out[f"{name}pool_huge_window"] = (c.build([x], [y]), None)
    # ADD: full 4-D broadcast both ways, a const input, extreme shifts and multipliers
    c = Craft()
    a = c.act((1, 1, 5, 1), 0)
    b = c.const(np.arange(-128, 128, 8).reshape(1, 4, 1, 8))
    y = c.act((1, 4, 5, 8), 16)
    c.op(ADD, [a, b], [y], [128, -127, 127, 20, max_m, 0, max_m, -31, max_m, 0, -128, 127])
    out["add_broadcast_const"] = (c.build([a], [y]), None)
    c = Craft()
    a = c.act((3, 1, 2, 1), 0)
    b = c.act((1, 6, 1, 5), 16)
    y = c.act((3, 6, 2, 5), 48)
    c.op(ADD, [a, b], [y], [-127, 128, -128, 0, 0, -31, big_m, -1, 1, -31, 0, 0])
    out["add_broadcast_4d"] = (c.build([a, b], [y]), None)
    # softmax: one-element rows, a 20000-wide row (the exp sum wraps), extreme parameters
    c = Craft()
    x = c.act((7, 1), 0)
    y = c.act((7, 1), 16)
    c.op(SOFTMAX, [x], [y], [0, 0, 0])
    out["softmax_depth1"] = (c.build([x], [y]), None)
    c = Craft()
    x = c.const(np.full((1, 20000), 127))
    y = c.act((1, 20000), 0)
    c.op(SOFTMAX, [x], [y], [max_m, 31, -(2**31) + 1])
    out["softmax_wide_row_extreme_params"] = (_with_dummy_input(c, y), None)
    # reshape: aliased (same offset, free) and from a constant
    c = Craft()
    x = c.act((2, 3, 4), 0)
    y = c.act((4, 6), 0)
    k = c.const(np.arange(24).reshape(24))
    z = c.act((1, 24), 32)
    c.op(RESHAPE, [x], [y], [])
    c.op(RESHAPE, [k], [z], [])
    out["reshape_alias_and_const"] = (c.build([x], [y, z]), None)
    return out


def _with_dummy_input(c: Craft, out_index: int) -> bytes:
    """A model whose real work reads constants still needs one arena input: add a 1-byte one."""
    end = max(t.offset + t.nbytes for t in c.tensors if t.storage == 0)
    d = c.act((1,), (end + 15) // 16 * 16)
    return c.build([d], [out_index])


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, tuple[int, int, int] | None]]:
    d = tmp_path_factory.mktemp("crafted")
    res = {}
    for name, (data, want) in crafted_models().items():
        p = d / f"{name}.mpk"
        p.write_bytes(data)
        res[name] = (p, want)
    return res


def test_crafted_models_host_status(crafted: dict, hostlib: Path) -> None:
    for name, (p, want) in crafted.items():
        st = prepare_status(p.read_bytes())
        if want is None:
            assert st[0] == OK, f"{name}: expected to load, got {STATUS_NAMES[st[0]]} {st}"
        else:
            assert st[:3] == want, f"{name}: expected {STATUS_NAMES[want[0]]} {want}, got {STATUS_NAMES[st[0]]} {st}"


@pytest.mark.parametrize("v6m", [False, True], ids=["arith64", "arith-v6m"])
def test_crafted_models_sanitizer(crafted: dict, fuzz_driver: Path, v6m: bool) -> None:
    r = run_driver(DRIVER_V6M if v6m else fuzz_driver, ["-r", *(str(p) for p, _ in crafted.values())])
    lines = {Path(m.group(1)).stem: (m.group(2), int(m.group(3))) for m in
             re.finditer(r"^replay (\S+): (\w+) index=.* invoked=(\d)", r.stdout, re.M)}
    assert len(lines) == len(crafted), r.stdout
    for name, (_, want) in crafted.items():
        if want is None:
            assert lines[name] == ("OK", 1), f"{name} not invoked: {lines[name]}"
        else:
            assert lines[name][0] == STATUS_NAMES[want[0]].removeprefix("MPYML_E_"), (name, lines[name])


# ------------------------------------------------------------------ 3. targeted corruptions

_HDR_FMT = dict(zip(HEADER_FIELDS, "IHHIIIHHHHIIIIIIIII", strict=True))
_TENSOR_FIELDS = {"type": (0, "B"), "ndim": (1, "B"), "storage": (2, "B"), "flags": (3, "B"), "dim0": (4, "H"),
                  "dim1": (6, "H"), "dim2": (8, "H"), "dim3": (10, "H"), "offset": (12, "I"), "nbytes": (16, "I"),
                  "zero_point": (20, "i"), "scale": (24, "I"), "reserved": (28, "I")}
_OP_FIELDS = {"opcode": (0, "B"), "n_in": (1, "B"), "n_out": (2, "B"), "n_params": (3, "B"), "size": (4, "H"),
              "reserved": (6, "H")}


@dataclass
class Target:
    name: str
    data: bytes
    status: int                         # expected mpyml status (OK: loads and invokes)
    index: int | None = None            # expected err.index (None: not checked)
    detail: int | None = None
    words: list[str] = field(default_factory=list)   # the device's ValueError message must contain each
    memory_error: bool = False          # valid file whose arena cannot be allocated: MemoryError on the device


class Corruptor:
    """Edits of one packed model, each returned as a whole new file (CRC recomputed unless told not to)."""

    def __init__(self, mpk: bytes) -> None:
        self.mpk = mpk
        self.m = MpkFile(mpk)
        self.h = self.m.header

    def _put(self, edits: list[tuple[int, str, int]], crc: bool = True) -> bytes:
        b = bytearray(self.mpk)
        for off, fmt, v in edits:
            struct.pack_into("<" + fmt, b, off, v)
        return with_crc(b) if crc else bytes(b)

    def header(self, name: str, v: int, crc: bool = True) -> bytes:
        return self._put([(HEADER_OFFSETS[name], _HDR_FMT[name], v)], crc)

    def tensor(self, i: int, **fields: int) -> bytes:
        base = self.h["tensors_offset"] + 32 * i
        return self._put([(base + _TENSOR_FIELDS[k][0], _TENSOR_FIELDS[k][1], v) for k, v in fields.items()])

    def op(self, i: int, **fields: int) -> bytes:
        base = self.m.ops[i].record_offset
        return self._put([(base + _OP_FIELDS[k][0], _OP_FIELDS[k][1], v) for k, v in fields.items()])

    def operand(self, i: int, k: int, v: int) -> bytes:
        return self._put([(self.m.ops[i].record_offset + 8 + 2 * k, "H", v)])

    def param(self, i: int, k: int, v: int) -> bytes:
        op = self.m.ops[i]
        n_idx = len(op.inputs) + len(op.outputs)
        return self._put([(op.record_offset + 8 + 2 * (n_idx + (n_idx & 1)) + 4 * k, "i", v)])

    def params(self, i: int, values: dict[int, int]) -> bytes:
        op = self.m.ops[i]
        n_idx = len(op.inputs) + len(op.outputs)
        base = op.record_offset + 8 + 2 * (n_idx + (n_idx & 1))
        return self._put([(base + 4 * k, "i", v) for k, v in values.items()])

    def io(self, k: int, v: int) -> bytes:
        return self._put([(self.h["io_offset"] + 2 * k, "H", v)])

    def const_i32(self, t: int, k: int, v: int) -> bytes:
        return self._put([(self.h["data_offset"] + self.m.tensors[t].offset + 4 * k, "i", v)])


def targets(mpk: bytes) -> list[Target]:
    c = Corruptor(mpk)
    m, h, n = c.m, c.h, len(mpk)
    nt, no = h["n_tensors"], h["n_ops"]
    ts = m.tensors
    out: list[Target] = []

    def add(name: str, data: bytes, status: int, index: int | None = None, detail: int | None = None,
            words: list[str] | None = None, memory_error: bool = False) -> None:
        out.append(Target(name, data, status, index, detail, words or [], memory_error))

    # ---- header
    add("magic", b"MPYX" + mpk[4:], E_MAGIC, -1, words=["magic"])
    add("magic_crc_fixed", with_crc(b"\0\0\0\0" + mpk[4:]), E_MAGIC, -1, words=["magic"])
    add("version1", c.header("version", 1), E_VERSION, -1, 1, ["version"])
    add("version4", c.header("version", 4), E_VERSION, -1, 4, ["version"])
    add("version0", c.header("version", 0), E_VERSION, -1, 0, ["version"])
    add("crc_wrong", c.header("crc32", h["crc32"] ^ 1, crc=False), E_CRC, -1, words=["CRC"])
    flipped = bytearray(mpk)
    flipped[n - 1] ^= 0x40
    add("data_flip_no_crc", bytes(flipped), E_CRC, -1, words=["CRC"])
    add("file_size_big", c.header("file_size", n + 16), E_TRUNCATED, -1, words=["truncated"])
    add("file_size_small", c.header("file_size", n - 16), E_SIZE, -1, n - 16, ["file size"])
    add("file_size_zero", c.header("file_size", 0), E_SIZE, -1, 0, ["file size"])
    # requantization params outside the trusted (engine-copied) region are refused: a caller could change them
    add("trusted_size_zero", c.header("trusted_size", 0), E_OP, 0, 9, ["op #0"])
    for f, v, d in (("header_size", 32, 0), ("sparse_size", 16, 10), ("trusted_size", 8, 9),
                    ("trusted_size", h["data_size"] + 16, 9), ("n_tensors", 0, 1),
                    ("n_tensors", 0xFFFF, 1), ("n_ops", 0, 1), ("n_inputs", 0, 2), ("n_inputs", 17, 2),
                    ("n_outputs", 0, 2), ("n_outputs", 17, 2), ("arena_size", h["arena_size"] + 8, 3),
                    ("tensors_offset", h["tensors_offset"] + 2, 4), ("ops_offset", h["ops_offset"] + 2, 4),
                    ("ops_size", h["ops_size"] + 2, 4), ("io_offset", h["io_offset"] + 2, 4),
                    ("data_offset", h["data_offset"] + 4, 4), ("tensors_offset", n & ~3, 5),
                    ("tensors_offset", 0xFFFFFFFC, 5), ("n_tensors", n // 32 + 1, 5), ("ops_offset", (n - 4) & ~3, 6),
                    ("ops_size", 0xFFFFFFF0, 6), ("io_offset", n & ~3, 7), ("io_offset", 0xFFFFFFFC, 7),
                    ("data_offset", h["data_offset"] + 16, 8), ("data_size", h["data_size"] + 1, 8),
                    ("data_size", 0xFFFFFFFF, 8)):
        add(f"{f}_{v:#x}", c.header(f, v), E_HEADER, -1, d, ["header field"])
    add("macs_zero", c.header("macs", 0), OK)
    add("ops_size_plus4", c.header("ops_size", h["ops_size"] + 4), E_OP, no, 0, [f"op #{no}"])
    add("ops_size_minus4", c.header("ops_size", h["ops_size"] - 4), E_OP, no - 1, 0, [f"op #{no - 1}"])
    add("arena_size_huge", c.header("arena_size", 0xFFFFFFF0), OK, memory_error=True)
    first_big = next(t.index for t in ts if t.storage == 0 and t.offset + t.nbytes > 16)
    add("arena_size_16", c.header("arena_size", 16), E_TENSOR, first_big, words=[f"tensor #{first_big}"])
    cut = h["data_size"] - 16
    first_out = next(t.index for t in ts if t.storage == 1 and t.offset + t.nbytes > cut)
    add("data_size_minus16", c.header("data_size", cut), E_TENSOR, first_out, words=[f"tensor #{first_out}"])

    # ---- tensor records
    act = m.inputs[0]
    i8c = next(t.index for t in ts if t.storage == 1 and t.type == 1)
    i32c = next(t.index for t in ts if t.type == 2)
    low_rank = next(t.index for t in ts if len(t.shape) < 4)
    for name, i, fields in (
            ("type3", act, {"type": 3}), ("type0", act, {"type": 0}), ("type7", act, {"type": 7}),
            ("ndim0", act, {"ndim": 0}), ("ndim5", act, {"ndim": 5}), ("storage2", act, {"storage": 2}),
            ("flags2", act, {"flags": 2}), ("flags_state_const", i32c, {"flags": 1}),
            ("reserved1", i32c, {"reserved": 1}), ("dim0_zero", act, {"dim0": 0}),
            ("unused_dim_set", low_rank, {f"dim{len(ts[low_rank].shape)}": 1}),
            ("nbytes_plus1", act, {"nbytes": ts[act].nbytes + 1}), ("nbytes_zero", i8c, {"nbytes": 0}),
            ("arena_offset_out", act, {"offset": h["arena_size"]}),
            ("arena_offset_wrap", act, {"offset": 0xFFFFFFF0}),
            ("const_offset_out", i8c, {"offset": h["data_size"]}),
            ("const_offset_wrap", i32c, {"offset": 0xFFFFFFFC}),
            ("i8_zero_point_128", act, {"zero_point": 128}), ("i8_zero_point_-129", i8c, {"zero_point": -129}),
            ("i32_zero_point_1", i32c, {"zero_point": 1}),
            ("i32_offset_unaligned", i32c, {"offset": ts[i32c].offset + 2})):
        add(f"tensor_{name}", c.tensor(i, **fields), E_TENSOR, i, words=[f"tensor #{i}"])
    add("tensor_scale_changed", c.tensor(m.outputs[0], scale=0x3F800000), OK)
    add("tensor_input_zero_point", c.tensor(act, zero_point=-128), OK)

    # ---- op records: the first op, then the first op of each kind present
    add("opcode0", c.op(0, opcode=0), E_OPCODE, 0, 0, ["op #0 has op code 0"])
    add("opcode200", c.op(no - 1, opcode=200), E_OPCODE, no - 1, 200, [f"op #{no - 1} has op code 200"])
    add("opcode255", c.op(0, opcode=255), E_OPCODE, 0, 255, ["op #0 has op code 255"])
    first = m.ops[0]
    for f, v in (("n_in", len(first.inputs) + 1), ("n_out", 2), ("n_params", len(first.params) + 1),
                 ("size", 0), ("size", 0xFFFC), ("reserved", 1)):
        add(f"op0_{f}_{v}", c.op(0, **{f: v}), E_OP, 0, 74 if f == "reserved" else 0, ["op #0"])
    # a valid op code whose operand count differs from the record's
    add("op0_opcode_other_arity", c.op(0, opcode=RESHAPE if len(first.inputs) != 1 else CONV), E_OP, 0, 0,
        ["op #0"])
    add("op0_operand_out_of_range", c.operand(0, 0, nt), E_OP, 0, 0, ["op #0"])
    add("op0_operand_0xfffe", c.operand(0, 0, 0xFFFE), E_OP, 0, 0, ["op #0"])
    add("op0_input_absent", c.operand(0, 0, NO_TENSOR), E_OP, 0, 1, ["op #0"])
    add("op0_input_int32", c.operand(0, 0, i32c), E_OP, 0, 1, ["op #0"])
    k_out = len(first.inputs)
    add("op0_output_const", c.operand(0, k_out, i8c), E_OP, 0, 2, ["op #0"])
    add("op0_output_is_input", c.operand(0, k_out, first.inputs[0]), E_OP, 0, None, ["op #0"])
    done: set[int] = set()
    for op in m.ops:
        i, kind = op.index, op.opcode
        if kind in done or kind not in OP_TAGS:   # the newer families have their own malformed-record tests
            continue
        done.add(kind)
        tag, words = f"op{i}_{OP_TAGS[kind]}", [f"op #{i}"]
        if kind in (CONV, DW):
            cases = [(0, 0, 10), (1, 1025, 10), (2, 0, 11), (3, 1025, 11), (4, -1, 12), (5, 1025, 12),
                     (6, 129, 13), (6, -128, 13), (7, 128, 13), (8, -129, 14), (9, 128, 14), (10, 0, 15),
                     (10, 1025, 15)]
            if op.params[9] < 127:
                cases.append((8, op.params[9] + 1, 14))
            for k, v, d in cases:
                add(f"{tag}_param{k}_{v}", c.param(i, k, v), E_OP, i, d, words)
            add(f"{tag}_filter_absent", c.operand(i, 1, NO_TENSOR), E_OP, i, 4, words)
            add(f"{tag}_filter_in_arena", c.operand(i, 1, act), E_OP, i, 4, words)
            add(f"{tag}_mult_absent", c.operand(i, 3, NO_TENSOR), E_OP, i, 9, words)
            # constants with equal bytes are stored once: the first op sharing them reports it
            add(f"{tag}_mult_negative", c.const_i32(op.inputs[3], 0, -1), E_OP, None, 9, ["op #"])
            add(f"{tag}_shift_31", c.const_i32(op.inputs[4], 0, 31), E_OP, None, 9, ["op #"])
            add(f"{tag}_shift_-32", c.const_i32(op.inputs[4], 0, -32), E_OP, None, 9, ["op #"])
            if op.inputs[2] != NO_TENSOR:
                add(f"{tag}_bias_absent", c.operand(i, 2, NO_TENSOR), OK)
                add(f"{tag}_bias_int8", c.operand(i, 2, i8c), E_OP, i, 8, words)
            add(f"{tag}_act_single_value", c.param(i, 9, op.params[8]), OK)
        elif kind == FC:
            for k, v, d in ((0, 129, 13), (1, -129, 13), (3, 128, 14), (2, -129, 14)):
                add(f"{tag}_param{k}_{v}", c.param(i, k, v), E_OP, i, d, words)
            add(f"{tag}_weights_int32", c.operand(i, 1, op.inputs[3]), E_OP, i, 4, words)
            add(f"{tag}_mult_negative", c.const_i32(op.inputs[3], 0, -(2**31)), E_OP, None, 9, ["op #"])
            add(f"{tag}_shift_absent", c.operand(i, 4, NO_TENSOR), E_OP, i, 9, words)
            if op.inputs[2] != NO_TENSOR:
                add(f"{tag}_bias_absent", c.operand(i, 2, NO_TENSOR), OK)
        elif kind in (AVG, MAXP):
            for k, v, d in ((0, 0, 10), (1, 1025, 10), (2, 0, 11), (3, 1025, 11), (4, 1025, 12), (5, -1, 12),
                            (6, -129, 14), (7, 128, 14)):
                add(f"{tag}_param{k}_{v}", c.param(i, k, v), E_OP, i, d, words)
            add(f"{tag}_window_over_65536", c.params(i, {2: 1024, 3: 65}), E_OP, i, 11, words)
        elif kind == SOFTMAX:
            for k, v in ((0, -1), (1, 32), (1, -1), (2, 1), (2, -(2**31))):
                add(f"{tag}_param{k}_{v}", c.param(i, k, v), E_OP, i, 10, words)
        elif kind == RESHAPE:
            add(f"{tag}_output_const", c.operand(i, 1, i8c), E_OP, i, 2, words)

    # ---- io table
    n_in = h["n_inputs"]
    add("io_input_out_of_range", c.io(0, nt), E_IO, 0, nt, ["entry 0"])
    add("io_input_const", c.io(0, i8c), E_IO, 0, i8c, ["entry 0"])
    add("io_output_absent", c.io(n_in, NO_TENSOR), E_IO, n_in, NO_TENSOR, [f"entry {n_in}"])
    add("io_output_int32", c.io(n_in, i32c), E_IO, n_in, i32c, [f"entry {n_in}"])
    add("io_output_is_input", c.io(n_in, m.inputs[0]), OK)
    return out


OP_TAGS = {CONV: "conv", DW: "dw", FC: "fc", AVG: "avgpool", MAXP: "maxpool", ADD: "add", RESHAPE: "reshape",
           SOFTMAX: "softmax"}


@pytest.mark.parametrize("name", list(MODELS))
def test_targeted_corruptions_host(name: str, hostlib: Path) -> None:
    """Each targeted corruption gives exactly the documented status (and index / detail)."""
    bad = []
    tg = targets(packed(name))
    assert len(tg) >= 60
    for t in tg:
        st, index, detail, line = prepare_status(t.data)
        ok = st == t.status and (t.index is None or index == t.index) and (t.detail is None or detail == t.detail)
        if not ok:
            bad.append(f"{t.name}: expected {STATUS_NAMES[t.status]} index={t.index} detail={t.detail}, got "
                       f"{STATUS_NAMES[st] if 0 <= st < len(STATUS_NAMES) else st} index={index} detail={detail} "
                       f"line={line}")
        if st == OK and not t.memory_error:
            hm = HostModel(t.data)
            hm.invoke([np.zeros(x.shape, np.int8) for x in hm.inputs])
    assert not bad, "\n".join(bad)


# ------------------------------------------------------------------ 4. the native module on the unix port

# Truncation steps per model: kws (31 KB) at every byte; the bigger ones at every byte of the header and
# tables and sampled through the data section.
DEVICE_PLAN = {
    "kws": lambda n, d: ["trunc:0:-1:1", f"truncfix:0:{d + 64}:1", f"truncfix:{d + 64}:-1:97",
                         "flip:2500:1", "flipcrc:2500:2"],
    "str_ww": lambda n, d: [f"trunc:0:{d + 4096}:1", f"trunc:{d + 4096}:-1:13", f"truncfix:0:{d + 64}:3",
                            f"truncfix:{d + 64}:-1:211", "flip:1500:3", "flipcrc:1500:4"],
    "ad01": lambda n, d: [f"trunc:0:{d + 4096}:1", f"trunc:{d + 4096}:-1:61", f"truncfix:0:{d + 64}:5",
                          f"truncfix:{d + 64}:-1:1499", "flip:600:5", "flipcrc:1000:6"],
}


def _patches(orig: bytes, new: bytes) -> str:
    """The device-side form of an edit: 'off:hex,off:hex' runs of changed bytes."""
    assert len(orig) == len(new)
    diff = np.flatnonzero(np.frombuffer(orig, np.uint8) != np.frombuffer(new, np.uint8))
    runs, start, prev = [], None, None
    for i in diff.tolist():
        if start is None:
            start = prev = i
        elif i == prev + 1:
            prev = i
        else:
            runs.append((start, prev))
            start = prev = i
    if start is not None:
        runs.append((start, prev))
    return ",".join(f"{a}:{new[a:b + 1].hex()}" for a, b in runs) or "0:" + orig[:1].hex()


@dataclass
class DeviceRun:
    summary: dict[str, dict[str, int]]
    cases: dict[str, tuple[str, str]]
    others: list[str]
    stdout: str


def run_device(model: Path, steps: list[str], timeout: float = 600) -> DeviceRun:
    r = run_micropython([str(DEVICE_SCRIPT), str(model), *steps], heapsize="16M", timeout=timeout)
    tail = "\n".join(r.stdout.splitlines()[-30:])
    assert r.returncode == 0 and r.stdout.rstrip().endswith("DONE"), (
        f"micropython died or failed (exit {r.returncode}):\n{tail}\n{r.stderr[-3000:]}")
    summary: dict[str, dict[str, int]] = {}
    for m in re.finditer(r"^SUMMARY (\w+) (.*)$", r.stdout, re.M):
        s = summary.setdefault(m.group(1), {})
        for kv in m.group(2).split():
            k, v = kv.split("=")
            s[k] = s.get(k, 0) + int(v)
    cases = {}
    for line in r.stdout.splitlines():
        if line.startswith("CASE "):
            parts = line.split(" ", 3)
            cases[parts[1]] = (parts[2], parts[3] if len(parts) > 3 else "")
    others = [ln for ln in r.stdout.splitlines() if ln.startswith("OTHER")]
    return DeviceRun(summary, cases, others, r.stdout)


@pytest.mark.parametrize("name", list(MODELS))
def test_device_loader_robustness(name: str, natmod_x64: Path, tmp_path: Path) -> None:
    mpk = packed(name)
    h = MpkFile(mpk).header
    model = tmp_path / f"{name}.mpk"
    model.write_bytes(mpk)
    tg = targets(mpk)
    cases = tmp_path / "cases.txt"
    cases.write_text("".join(f"{t.name}\t{_patches(mpk, t.data)}\n" for t in tg))
    steps = [*DEVICE_PLAN[name](len(mpk), h["data_offset"]), f"cases:{cases}", "align"]
    run = run_device(model, steps)
    print("\n".join(ln for ln in run.stdout.splitlines() if ln.startswith(("MODEL", "SUMMARY"))))
    assert not run.others, "\n".join(run.others[:50])
    s = run.summary
    for step in ("trunc", "truncfix", "flip", "flipcrc", "cases", "align"):
        assert s[step]["other"] == 0, (step, s[step])
    # truncations: only the whole file loads
    assert s["trunc"]["loaded"] == 1 and s["trunc"]["valueerror"] == s["trunc"]["cases"] - 1
    assert s["truncfix"]["loaded"] <= 1
    assert s["flip"]["loaded"] == 0 and s["flip"]["valueerror"] == s["flip"]["cases"]
    fc = s["flipcrc"]
    assert 0.1 < fc["loaded"] / fc["cases"] < 0.8, fc
    # targeted: the specific failure, by message
    bad = []
    for t in tg:
        kind, msg = run.cases[t.name]
        if t.memory_error:
            ok = kind == "MemoryError" and "arena" in msg
        elif t.status == OK:
            ok = kind == "LOADED"
        else:
            ok = kind == "ValueError" and all(w in msg for w in t.words)
        if not ok:
            bad.append(f"{t.name}: expected {STATUS_NAMES[t.status]} {t.words}, got {kind}: {msg}")
    assert not bad, "\n".join(bad)
    # alignment and arena size
    c = run.cases
    for k in (1, 2, 3):
        assert c[f"unaligned{k}"][0] == "ValueError" and "aligned" in c[f"unaligned{k}"][1]
    assert c["slice1"][0] == "ValueError" and "magic" in c["slice1"][1]
    assert c["arena_short"][0] == "ValueError" and str(h["arena_size"]) in c["arena_short"][1]
    assert c["arena_exact"][0] == "LOADED"
    assert c["arena_unaligned"][0] == "ValueError" and "aligned" in c["arena_unaligned"][1]


def test_device_crafted_models(crafted: dict, natmod_x64: Path, tmp_path: Path) -> None:
    """The crafted regression / edge-case models through the real native module."""
    cases = tmp_path / "crafted.txt"
    cases.write_text("".join(f"{name}\tfile:{p}\n" for name, (p, _) in crafted.items()))
    model = next(iter(crafted.values()))[0]
    run = run_device(model, [f"cases:{cases}"])
    assert not run.others, "\n".join(run.others)
    for name, (_, want) in crafted.items():
        kind, msg = run.cases[name]
        if want is None:
            assert kind == "LOADED", (name, kind, msg)
        else:
            assert kind == "ValueError" and f"op #{want[1]}" in msg, (name, kind, msg)


# ------------------------------------------------------------------ 5. the host library itself

def test_hostlib_matches_natmod(hostlib: Path, natmod_x64: Path) -> None:
    """The host library and the x64 native module are the same core: identical outputs."""
    mpk = packed("kws")
    hm = HostModel(mpk)
    x = np.load(shared_path("data", "mlperf_tiny_inputs", "kws_input_int8.npy")).astype(np.int8)
    rng = np.random.default_rng(7)
    xs = [x, *(rng.integers(-128, 128, x.shape, dtype=np.int8) for _ in range(3))]
    dev = run_batch(mpk, [[xi] for xi in xs]).batch
    for xi, d in zip(xs, dev, strict=True):
        host = hm.invoke([xi])
        assert len(host) == len(d) == 1
        np.testing.assert_array_equal(host[0], d[0])
    assert hm.invoke([x])[0].dtype == np.int8 and hm.invoke([x])[0].shape == tuple(hm.outputs[0].shape)


def test_hostlib_api(hostlib: Path) -> None:
    mpk = packed("kws")
    hm = HostModel(bytearray(mpk))
    assert hm.arena_size == MpkFile(mpk).header["arena_size"] and hm.n_ops == MpkFile(mpk).header["n_ops"]
    assert prepare_status(mpk)[0] == OK
    for k in (1, 2, 3):
        assert prepare_status(mpk, misalign=k)[0] == E_ALIGN
    # a short or misaligned arena and a model that was not prepared are refused, never run
    from mpyml.hostlib import E_ARENA

    assert hm.invoke_status(hm.arena_size - 1) == E_ARENA
    assert hm.invoke_status(arena_misalign=1) == E_ALIGN
    with pytest.raises(PrepareError, match="MPYML_E_MAGIC") as ei:
        HostModel(b"\0" * 64)
    assert ei.value.status == E_MAGIC and ei.value.line > 0 and isinstance(ei.value, ValueError)
    with pytest.raises(PrepareError, match=r"MPYML_E_OPCODE .*index 0, detail 77"):
        HostModel(Corruptor(mpk).op(0, opcode=77))
    with pytest.raises(ValueError, match="int8"):
        hm.invoke([np.zeros(hm.inputs[0].shape, np.float32)])
    with pytest.raises(ValueError, match="needs 490"):
        hm.invoke([np.zeros(3, np.int8)])
    with pytest.raises(ValueError, match="1 inputs"):
        hm.invoke([])


# the op families' records (corpus models made the ordinary way, one or more op families each)
FAMILY_SEEDS = [("squeeze_excite", "int8"), ("inception_concat", "int8"), ("conv_ae_transpose", "float32"),
                ("resize_bilinear", "uint8"), ("reshape_permute", "int8"), ("merge_min_max_sub", "int8"),
                ("act_prelu", "int8"), ("zero_padding", "float32"), ("lstm_tfk", "int8"), ("mean_over_time", "int8")]


def test_sanitizer_fuzz_op_families(fuzz_driver: Path, tmp_path: Path) -> None:
    """The mutation driver over models of every op family (LUT, QUANTIZE/DEQUANTIZE, MUL/SUB/MIN/MAX, PRELU,
    MEAN, CONCATENATION, STRIDED_COPY, PAD, RESIZE, TRANSPOSE_CONV, LSTM): no sanitizer report, no crash."""
    from corpus import convert
    seeds = []
    ops_seen: set[str] = set()
    for name, io in FAMILY_SEEDS:
        mpk = mpyml.pack(convert.tflite(name, io))
        p = tmp_path / f"{name}_{io}.mpk"
        p.write_bytes(mpk)
        seeds.append(str(p))
        ops_seen |= {op.name for op in MpkFile(mpk).ops}
    families = {spec.OPS_BY_NAME[n].family for n in ops_seen}
    assert {"core", "elementwise", "shape", "reduce", "recurrent"} <= families, families   # (+ inplace convs)
    r = run_driver(fuzz_driver, ["-s", "21", "-f", "300", "-F", "2000", "-m", "8000", "-T", "300", "-t", "90",
                                 "-o", str(tmp_path), *seeds], timeout=400)
    print(r.stdout[-3000:])
    ph = parse_phases(r.stdout)
    assert set(ph) == {"trunc", "align", "trunc_fix", "flip_raw", "flip_crc", "struct"}, r.stdout
    assert ph["flip_crc"].accepted > 0 and ph["struct"].rejected.get("OP", 0) > 0, r.stdout
    for p in ph.values():
        assert p.invoked + p.skipped == p.accepted
