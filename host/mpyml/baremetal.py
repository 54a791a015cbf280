"""Run the mpyml engine bare-metal on Cortex-M0/M3/M4/M7 under QEMU: bit-exactness of the ARM builds and exact
instruction counts per invoke.

The engine sources are compiled unchanged for each CPU (native_modules/baremetal/Makefile, the natmod build's
CPU flags at -O2) and linked with a small harness (startup, semihosting console, main.c) and one job: the packed
model and the input samples, linked into flash with .incbin and used in place as a product firmware would. QEMU
runs the image (mps2-an385/an386/an500 for M3/M4/M7, the micro:bit for M0); the harness prepares the model, invokes
it on every sample and prints the raw outputs through semihosting, then exits with a status code::

    outputs, n = run_on_qemu(mpk, [[x1], [x2]], cpu="m4", count_instructions=True)
    outputs[1][0]          # sample 1, output 0: int8 array shaped like the model's output
    n                      # instructions per invoke (mean over the invokes), or None

Instruction counts come from a QEMU TCG plugin (native_modules/baremetal/icount_plugin.c) that counts every guest
instruction executed between the harness's bm_mark_begin / bm_mark_end calls around mpyml_invoke, exactly, at
near-normal emulation speed (no -singlestep exec log), and keeps a per-instruction profile of those windows, from
which `count_instructions` derives a per-function breakdown and an estimate of Cortex-M4 cycles.

    python -m mpyml.baremetal --count MODEL.tflite [...] [--cpu m4]    instructions per invoke, cycles estimate
    python -m mpyml.baremetal --check MODEL.tflite [...] [--cpu all]   outputs byte-equal to tflite-micro?
    python -m mpyml.baremetal --size [MODEL.tflite] [--cpu all]        engine code size per CPU (+ linked image)

Builds go to build/baremetal/ (make keeps them incremental; a file lock per CPU makes concurrent test workers
safe). Needs arm-none-eabi-gcc + newlib, qemu-system-arm and make; counting also needs a host C compiler.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import paths
from .mpk import MpkFile
from .unix_port import input_bytes as _input_bytes

__all__ = [
    "CPUS", "DEFAULT_BOARD", "BaremetalError", "InstructionCount", "RunResult", "count_instructions",
    "engine_size", "estimate_cycles", "linked_sizes", "missing_tools", "run_job", "run_on_qemu", "status_name",
]

BAREMETAL_DIR = paths.REPO / "native_modules" / "baremetal"
BUILD = Path(os.environ.get("MPYML_BAREMETAL_BUILD", paths.BUILD_DIR / "baremetal"))
ENGINE_HEADER = paths.REPO / "native_modules" / "engine" / "mpyml_engine.h"
CROSS = os.environ.get("MPYML_CROSS", "arm-none-eabi-")
QEMU = os.environ.get("MPYML_QEMU", "qemu-system-arm")
HOST_CC = os.environ.get("CC", "cc")

CPUS = ("m0", "m3", "m4", "m7")
DEFAULT_BOARD = {"m0": "microbit", "m3": "mps2-an385", "m4": "mps2-an386", "m7": "mps2-an500"}
BOARDS = {"m0": ("microbit", "microbit-xl"), "m3": ("mps2-an385",), "m4": ("mps2-an386",), "m7": ("mps2-an500",)}
MCPU = {"m0": "cortex-m0", "m3": "cortex-m3", "m4": "cortex-m4", "m7": "cortex-m7"}

# main.c exit statuses besides 0 and mpyml_prepare's own status codes (1..13)
EXIT_INVOKE_BASE = 64
EXIT_TEXT = {80: "input size is not a multiple of the model's sample size",
             81: "repeated invokes gave different outputs", 82: "arena section smaller than the model needs",
             99: "CPU fault"}


class BaremetalError(RuntimeError):
    """Build, link or emulation failure, or (from run_on_qemu) a non-zero harness status."""

    def __init__(self, msg: str, result: RunResult | None = None) -> None:
        super().__init__(msg)
        self.result = result

    @property
    def status(self) -> int | None:
        return self.result.exit_status if self.result else None


# ---------------------------------------------------------------------------------------------- statuses

def _status_names() -> list[str]:
    """mpyml_status_t names in enum order, from the spec (host/mpyml/spec, the single source of truth)."""
    from . import spec
    return [("MPYML_OK" if n == "OK" else f"MPYML_E_{n}") for n, _ in spec.STATUS] + ["MPYML_E__COUNT"]


def status_name(status: int) -> str:
    """Text for a harness exit status: mpyml_status_t name, invoke failure or harness error."""
    names = _status_names()
    if 0 <= status < len(names) and not names[status].endswith("__COUNT"):
        return names[status]
    if EXIT_INVOKE_BASE < status < EXIT_INVOKE_BASE + len(names):
        return f"invoke failed: {names[status - EXIT_INVOKE_BASE]}"
    return EXIT_TEXT.get(status, f"unknown status {status}")


# ---------------------------------------------------------------------------------------------- tools

def missing_tools(count: bool = False) -> str | None:
    """Why the bare-metal runs cannot work here (None if they can). count=True: also the plugin's host compiler."""
    need = [f"{CROSS}gcc", f"{CROSS}ar", f"{CROSS}nm", f"{CROSS}size", QEMU, "make"]
    if count:
        need.append(HOST_CC)
    missing = [t for t in need if shutil.which(t) is None]
    if missing:
        return f"not on PATH: {', '.join(missing)} (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)"
    r = subprocess.run([f"{CROSS}gcc", "-mthumb", "-mcpu=cortex-m4", "--specs=nano.specs",
                        "-print-file-name=libc_nano.a"], capture_output=True, text=True)
    if r.returncode != 0 or not Path(r.stdout.strip()).is_absolute():
        return "newlib (libc_nano.a) for arm-none-eabi not found (Debian: libnewlib-arm-none-eabi)"
    return None


@contextlib.contextmanager
def _lock(name: str, exclusive: bool = True) -> Iterator[None]:
    """Inter-process lock on build/baremetal/.<name>.lock (pytest-xdist workers build the same CPU)."""
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / f".{name}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _make(*args: str, timeout: float = 600) -> str:
    cmd = ["make", "-s", "--no-print-directory", "-C", str(BAREMETAL_DIR), f"BUILD={BUILD}", f"CROSS={CROSS}",
           f"QEMU={QEMU}", f"HOST_CC={HOST_CC}", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise BaremetalError(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    return r.stdout


def build_lib(cpu: str) -> Path:
    """Engine library + harness objects for one CPU (incremental). Returns the library path."""
    _check_cpu(cpu)
    with _lock(f"lib-{cpu}"):
        _make(f"CPU={cpu}", "lib")
    return BUILD / cpu / "libmpyml_engine.a"


def build_plugin() -> Path:
    with _lock("plugin"):
        _make("plugin")
    return BUILD / "host" / "libicount.so"


def _check_cpu(cpu: str, board: str | None = None) -> str:
    if cpu not in CPUS:
        raise ValueError(f"cpu must be one of {CPUS}, got {cpu!r}")
    board = board or DEFAULT_BOARD[cpu]
    if board not in BOARDS[cpu]:
        raise ValueError(f"board {board!r} does not carry a {cpu} (choose from {BOARDS[cpu]})")
    return board


# ---------------------------------------------------------------------------------------------- results

@dataclass
class ProfileEntry:
    pc: int
    count: int          # executions inside the invoke windows (all invokes of the run)
    size: int           # instruction bytes
    disas: str


@dataclass
class RunResult:
    exit_status: int                           # harness status (see status_name)
    prepare: dict[str, int]                    # PREPARE line: status, index, detail, line, arena, inputs, ...
    outputs: list[list[bytes]]                 # [sample][output] raw output bytes
    stack_used: int | None                     # bytes of stack ever used (painted-stack high-water mark)
    stack_size: int | None
    console: str                               # everything the harness printed
    windows: list[int] | None = None           # instructions per count window; [0] is the empty calibration one
    profile: list[ProfileEntry] | None = None
    elf: Path | None = None                    # kept only with keep_dir

    @property
    def invoke_instructions(self) -> list[int]:
        """Instructions per invoke (window minus the empty window: the markers' own call overhead)."""
        if not self.windows:
            return []
        return [w - self.windows[0] for w in self.windows[1:]]


def _parse_console(text: str, exit_status: int) -> RunResult:
    prepare: dict[str, int] = {}
    outputs: dict[int, dict[int, bytes]] = {}
    stack_used = stack_size = None
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "PREPARE":
            prepare = {k: int(v) for k, v in (w.split("=", 1) for w in words[1:])}
        elif words[0] == "OUT" and len(words) in (3, 4):
            outputs.setdefault(int(words[1]), {})[int(words[2])] = bytes.fromhex(words[3] if len(words) == 4 else "")
        elif words[0] == "STACK":
            kv = dict(w.split("=", 1) for w in words[1:])
            stack_used, stack_size = int(kv["used"]), int(kv["size"])
    samples = [[outputs[s][o] for o in sorted(outputs[s])] for s in sorted(outputs)]
    return RunResult(exit_status, prepare, samples, stack_used, stack_size, text)


def _symbols(elf: Path) -> dict[str, tuple[int, int]]:
    """Function symbols of an ELF: name -> (address without the Thumb bit, size)."""
    r = subprocess.run([f"{CROSS}nm", "-S", "--defined-only", str(elf)], capture_output=True, text=True, check=True)
    syms = {}
    for line in r.stdout.splitlines():
        p = line.split()
        if len(p) == 4 and p[2] in "TtWw":
            syms[p[3]] = (int(p[0], 16) & ~1, int(p[1], 16))
    return syms


def _parse_plugin(path: Path) -> tuple[list[int], list[ProfileEntry]]:
    windows: list[int] = []
    profile: list[ProfileEntry] = []
    for line in path.read_text().splitlines():
        if line.startswith("W "):
            windows.append(int(line[2:]))
        elif line.startswith("P "):
            _, pc, n, size, disas = line.split(" ", 4)
            profile.append(ProfileEntry(int(pc, 16), int(n), int(size), disas))
    return windows, profile


# ---------------------------------------------------------------------------------------------- running

def _arena_for_link(mpk: bytes) -> int:
    """The arena section size: the header's arena_size; a token 16 bytes for files too broken to say."""
    if len(mpk) >= 20:
        n = int.from_bytes(mpk[16:20], "little")
        if 0 < n <= 64 * 1024 * 1024:
            return (n + 15) // 16 * 16
    return 16


def _build_job(mpk: bytes, input_bytes: bytes, d: Path, *, cpu: str, board: str, repeat: int) -> tuple[Path, list[str]]:
    """Link one job image in directory d. Returns (ELF, QEMU command line without the console and kernel)."""
    build_lib(cpu)
    (d / "model.mpk").write_bytes(mpk)
    (d / "input.bin").write_bytes(input_bytes)
    elf = d / "job.elf"
    arena = _arena_for_link(mpk)
    try:
        with _lock(f"lib-{cpu}", exclusive=False):
            _make(f"CPU={cpu}", f"BOARD={board}", f"MODEL={d / 'model.mpk'}", f"INPUT={d / 'input.bin'}",
                  f"REPEAT={repeat}", f"ARENA={arena}", f"ELF={elf}", "elf")
    except BaremetalError as e:
        over = re.findall(r"region `(\w+)' overflowed by (\d+) bytes", str(e))
        if over:
            what = ", ".join(f"{region} by {n} bytes" for region, n in over)
            raise BaremetalError(f"model does not fit the {board} board ({what}; model {len(mpk):,} bytes, arena "
                                 f"{arena:,} bytes + harness data + stack): do not fit in RAM/flash\n{e}") from e
        raise
    return elf, (d / "job.qemu").read_text().split()


def run_job(mpk: bytes, input_bytes: bytes, *, cpu: str = "m4", board: str | None = None, repeat: int = 1,
            count_instructions: bool = False, timeout: float = 300, keep_dir: Path | None = None) -> RunResult:
    """Build and run one image: `mpk` (any bytes, malformed models included) and raw int8 input samples.

    Returns the harness's result whatever its status; raises BaremetalError only when the image cannot be built
    or linked (e.g. the model does not fit the board), or QEMU fails or times out.
    """
    board = _check_cpu(cpu, board)
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    plugin = build_plugin() if count_instructions else None
    with contextlib.ExitStack() as stack:
        if keep_dir is None:
            d = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mpyml-bm-")))
        else:
            d = Path(keep_dir)
            d.mkdir(parents=True, exist_ok=True)
        elf, qemu = _build_job(mpk, input_bytes, d, cpu=cpu, board=board, repeat=repeat)
        cmd = [*qemu, "-chardev", f"file,id=out,path={d / 'console.txt'}", "-kernel", str(elf)]
        if plugin is not None:
            syms = _symbols(elf)
            cmd += ["-plugin", f"{plugin},begin={syms['bm_mark_begin'][0]:#x},end={syms['bm_mark_end'][0]:#x},"
                               f"out={d / 'count.txt'}"]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise BaremetalError(f"QEMU timed out after {timeout} s: {' '.join(cmd)}") from e
        console = (d / "console.txt").read_text() if (d / "console.txt").exists() else ""
        res = _parse_console(console, r.returncode)
        errors = [ln for ln in r.stderr.splitlines() if "has no peer" not in ln]   # mps2's unused ethernet
        if "END status=" not in console and "FAULT" not in console:
            raise BaremetalError(f"QEMU exit {r.returncode} without the harness's END line: {' '.join(cmd)}\n"
                                 f"console:\n{console}\nstderr:\n" + "\n".join(errors), res)
        if plugin is not None:
            if not (d / "count.txt").exists():
                raise BaremetalError("the counting plugin wrote no output:\n" + "\n".join(errors), res)
            res.windows, res.profile = _parse_plugin(d / "count.txt")
        if keep_dir is not None:
            res.elf = elf
    return res


def run_on_qemu(mpk: bytes, inputs: Sequence[Sequence[np.ndarray]], cpu: str = "m4",
                count_instructions: bool = False, *, board: str | None = None, repeat: int = 1,
                timeout: float = 300) -> tuple[list[list[np.ndarray]], int | None]:
    """Run a packed model on every sample of `inputs` (a list of input-tensor lists) on a bare-metal Cortex-M.

    Returns (outputs, instructions per invoke): outputs[sample][output] is an int8 array shaped like the model's
    output; the count (mean over all invokes, rounded) only with count_instructions. Each sample is invoked
    `repeat` times and every repeat must produce the same bytes. Raises BaremetalError for a non-zero harness
    status (e.g. mpyml_prepare rejecting the model: `.status`, `.result.prepare`).
    """
    info = MpkFile(mpk)
    res = run_job(mpk, _input_bytes(info, inputs), cpu=cpu, board=board, repeat=repeat,
                  count_instructions=count_instructions, timeout=timeout)
    if res.exit_status != 0:
        raise BaremetalError(f"{cpu}: harness status {res.exit_status} ({status_name(res.exit_status)})\n"
                             f"{res.console}", res)
    if res.stack_used is not None and res.stack_size is not None and res.stack_used >= res.stack_size:
        raise BaremetalError(f"{cpu}: stack overflow (used {res.stack_used} of {res.stack_size} bytes)", res)
    outs = info.output_tensors()
    if len(res.outputs) != len(inputs) or any(len(s) != len(outs) for s in res.outputs):
        raise BaremetalError(f"{cpu}: expected {len(inputs)} samples x {len(outs)} outputs\n{res.console}", res)
    outputs = [[np.frombuffer(b, dtype=np.int8).reshape(t.shape).copy() for b, t in zip(s, outs, strict=True)]
               for s in res.outputs]
    n = None
    if count_instructions:
        counts = res.invoke_instructions
        n = round(sum(counts) / len(counts)) if counts else None
    return outputs, n


# ---------------------------------------------------------------------------------------------- counting

_CONDS = {"eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le"}
_BRANCH_PENALTY = 2     # Cortex-M4 pipeline refill P (1..3)


def _insn_cycles_m4(e: ProfileEntry, next_count: int) -> float:
    """Cycles of all executions of one instruction (see _estimate_cycles_m4). Classified by mnemonic prefix,
    which also covers the condition-suffixed forms inside IT blocks (ldrbne, addeq...)."""
    mn, _, operands = e.disas.strip().lower().partition(" ")
    base = mn.split(".")[0]
    first = operands.split(",")[0].strip()
    reglist = []
    if "{" in operands:
        reglist = [r.strip() for r in operands[operands.find("{") + 1:operands.find("}")].split(",") if r.strip()]
    p = _BRANCH_PENALTY
    if (base[:1] == "b" and base[1:] in _CONDS) or base in ("cbz", "cbnz"):
        not_taken = min(e.count, next_count)          # the instruction after it ran this often (at most)
        return not_taken + (1 + p) * (e.count - not_taken)
    if base in ("b", "bl", "blx", "bx"):
        c = 1 + p
    elif base.startswith(("tbb", "tbh")):
        c = 2 + p
    elif base.startswith(("ldm", "stm", "pop", "push")):
        c = 1 + len(reglist) + (p if "pc" in reglist else 0)
    elif base.startswith(("ldrd", "strd")):
        c = 3
    elif base.startswith("ldr"):
        c = 2 + (p if first == "pc" else 0)
    elif base.startswith(("sdiv", "udiv")):
        c = 7
    elif first == "pc":
        c = 1 + p
    else:
        c = 1   # ALU, stores (write buffer), multiplies and 64-bit multiply-accumulates (single cycle on M4), IT
    return float(c * e.count)


def _estimate_cycles_m4(profile: Sequence[ProfileEntry]) -> float:
    """Cortex-M4 cycles from an execution profile, with the Cortex-M4 TRM's instruction timings.

    ALU, MUL/MLA and the 64-bit multiply(-accumulate)s: 1; LDR*: 2 (no credit for the N+1 pipelining of back to
    back loads); STR*: 1 (write buffer); LDRD/STRD: 3; LDM/STM/PUSH/POP: 1 + registers; SDIV/UDIV: 7 (2..12);
    branches 1 + P with P = 2 when taken, 1 when not. A conditional branch counts as not taken as often as the
    instruction after it ran. A pipeline model, not a measurement (no wait states, no bus contention): +-20%.
    """
    by_pc = {e.pc: e.count for e in profile}
    return sum(_insn_cycles_m4(e, by_pc.get(e.pc + e.size, 0)) for e in profile)


# Cortex-M0+ (RP2040) and Cortex-M7 models, next to the M4 one; estimate_cycles picks the model for a CPU.

_REG = re.compile(r"\b(r1[0-5]|r[0-9]|sb|sl|fp|ip|sp|lr|pc)\b")
_M0_BRANCH_TAKEN = 2      # Cortex-M0+ 2-stage pipeline: taken branch 2 cycles, BL 3


def _insn_cycles_m0(e: ProfileEntry, next_count: int) -> float:
    """Cycles of all executions of one instruction on a Cortex-M0+ (see _estimate_cycles_m0)."""
    mn, _, operands = e.disas.strip().lower().partition(" ")
    base = mn.split(".")[0]
    first = operands.split(",")[0].strip()
    reglist = []
    if "{" in operands:
        reglist = [r.strip() for r in operands[operands.find("{") + 1:operands.find("}")].split(",") if r.strip()]
    if base[:1] == "b" and base[1:] in _CONDS:
        not_taken = min(e.count, next_count)
        return not_taken + _M0_BRANCH_TAKEN * (e.count - not_taken)
    if base == "bl":
        c = 3
    elif base in ("b", "bx", "blx"):
        c = 2
    elif base.startswith(("ldm", "stm", "pop", "push")):
        c = 1 + len(reglist) + (2 if "pc" in reglist else 0)
    elif base.startswith(("ldr", "str")):
        c = 2
    elif first == "pc":
        c = 2
    else:
        c = 1   # ALU, MOV, MULS (single-cycle multiplier option, as on the RP2040), extends, CMP
    return float(c * e.count)


def _estimate_cycles_m0(profile: Sequence[ProfileEntry]) -> float:
    """Cortex-M0+ cycles (the RP2040's core, zero wait-state SRAM/XIP-cache hits) from an execution profile, with
    the Cortex-M0+ TRM's timings: LDR*/STR* 2; LDM/STM/PUSH 1 + registers, POP {.., pc} 3 + registers; taken
    conditional branch 2, not taken 1; B/BX/BLX 2, BL 3; MULS 1 (the single-cycle multiplier the RP2040 has;
    32 on the small-multiplier option); everything else 1. Conditional branches as in _estimate_cycles_m4.
    No wait states and no bus contention: a pipeline model, +-15%."""
    by_pc = {e.pc: e.count for e in profile}
    return sum(_insn_cycles_m0(e, by_pc.get(e.pc + e.size, 0)) for e in profile)


_M7_PENALTY = 5     # Cortex-M7 6-stage pipeline: cycles lost on a mispredicted / unpredicted branch (assumed)


def _m7_class(e: ProfileEntry) -> tuple[str, float, set[str], set[str]]:
    """(class, issue cycles per execution, registers written, registers read) of one instruction on a Cortex-M7.
    class: alu, mul, load, store, multi (LDM/STM/PUSH/POP), div, branch, it (the last four never pair)."""
    mn, _, operands = e.disas.strip().lower().partition(" ")
    base = mn.split(".")[0]
    regs = _REG.findall(operands)
    reglist = []
    if "{" in operands:
        reglist = [r.strip() for r in operands[operands.find("{") + 1:operands.find("}")].split(",") if r.strip()]
    if (base[:1] == "b" and base[1:] in _CONDS) or base in ("cbz", "cbnz", "b", "bl", "blx", "bx") \
            or base.startswith(("tbb", "tbh")):
        return "branch", 1.0, {"pc"}, set(regs)
    if base.startswith(("it", "nop")):
        return "it", 1.0, set(), set()
    if base.startswith(("ldm", "stm", "pop", "push")):
        # 64-bit data path: two registers per beat; writing pc is a return (not predicted here)
        c = 1 + (len(reglist) + 1) // 2 + (_M7_PENALTY if "pc" in reglist else 0)
        return "multi", float(c), set(reglist) if base.startswith(("ldm", "pop")) else set(), set(regs)
    if base.startswith(("sdiv", "udiv")):
        return "div", 7.0, set(regs[:1]), set(regs[1:])
    wb = {regs[1]} if "!" in operands and len(regs) > 1 else set()
    if base.startswith("ldr"):
        dst = set(regs[:2]) if base.startswith("ldrd") else set(regs[:1])
        return "load", 1.0 + (_M7_PENALTY if "pc" in dst else 0), dst | wb, set(regs) - dst
    if base.startswith("str"):
        return "store", 1.0, wb, set(regs)
    if base.startswith(("cmp", "cmn", "tst", "teq")):
        return "alu", 1.0, set(), set(regs)
    nd = 2 if base.startswith(("smlal", "umlal", "smull", "umull")) else 1
    dst = set(regs[:nd])
    cls = "mul" if base.startswith(("mul", "mla", "mls", "sml", "smu", "umul", "umla", "umaal", "smmu", "smml")) \
        else "alu"
    return cls, 1.0 + (_M7_PENALTY if "pc" in dst else 0), dst, set(regs[nd:]) | (dst if nd == 2 else set())


def _estimate_cycles_m7(profile: Sequence[ProfileEntry]) -> float:
    """Cortex-M7 cycles from an execution profile: a simple dual-issue model, all code and data in TCM or
    always-hit caches (no wait states). Not a measurement: treat it as +-30%.

    Issue cycles per instruction: ALU, MUL/MLA/SMLAD/SMLAL, LDR*/STR* (LDRD/STRD too: 64-bit port) 1;
    LDM/STM/PUSH/POP 1 + ceil(registers / 2); SDIV/UDIV 7. Branches: predicted (loop-back and unconditional
    branches, calls) 1; a conditional branch mispredicts as often as its rarer direction (taken vs fall-through
    counts: one miss per loop exit); returns, indirect branches and other writes of pc (BX, BLX reg, POP {pc},
    LDR pc, TBB/TBH: 2 + miss) are not predicted; each miss costs 5 more (_M7_PENALTY).
    Load-use: 1 more when the next instruction reads the loaded register.
    Pairing rule: in a straight-line run (consecutive addresses, equal execution counts), two adjacent
    single-cycle instructions issue together (the pair costs 1) unless both access memory, both multiply, the
    second reads or writes a register the first writes, or either is a branch, IT, LDM/STM or divide.
    """
    by_pc = {e.pc: e for e in profile}
    total = 0.0
    paired: set[int] = set()        # pcs issued as the second of a pair
    for e in sorted(profile, key=lambda x: x.pc):
        cls, c, wr, _ = _m7_class(e)
        nxt = by_pc.get(e.pc + e.size)
        ncount = nxt.count if nxt is not None else 0
        if cls == "branch":
            mn = e.disas.strip().lower().split(" ")[0].split(".")[0]
            if mn in ("bx", "blx"):             # returns and indirect calls: not predicted
                total += (1 + _M7_PENALTY) * e.count
            elif mn.startswith(("tbb", "tbh")):   # table branch: a load, then an unpredicted jump
                total += (2 + _M7_PENALTY) * e.count
            elif (mn[:1] == "b" and mn[1:] in _CONDS) or mn in ("cbz", "cbnz"):
                not_taken = min(e.count, ncount)
                total += e.count + _M7_PENALTY * min(not_taken, e.count - not_taken)
            else:
                total += e.count
            continue
        second = e.pc in paired     # issued with the instruction before it: its cycle was the pair's
        if not second:
            total += c * e.count
        if nxt is None or nxt.count != e.count:
            continue
        ncls, nc, nwr, nrd = _m7_class(nxt)
        depends = bool(wr & (nrd | nwr))
        if cls == "load" and wr & nrd:
            total += e.count        # load-use interlock
        if not second and c == 1 and nc == 1 and not depends and cls in ("alu", "mul", "load", "store") \
                and ncls in ("alu", "mul", "load", "store") \
                and not (cls in ("load", "store") and ncls in ("load", "store")) \
                and not (cls == "mul" and ncls == "mul"):
            paired.add(nxt.pc)
    return total


CYCLE_MODELS = {"m0": _estimate_cycles_m0, "m4": _estimate_cycles_m4, "m7": _estimate_cycles_m7}


def estimate_cycles(profile: Sequence[ProfileEntry], cpu: str) -> float | None:
    """Estimated cycles of an execution profile on one CPU (m0: Cortex-M0+/RP2040, m4, m7), None for a CPU
    without a cycle model (m3)."""
    model = CYCLE_MODELS.get(cpu)
    return model(profile) if model is not None else None


@dataclass
class InstructionCount:
    model: str
    cpu: str
    macs: int
    instructions: int                          # per invoke (mean over the invokes)
    per_invoke: list[int]
    est_cycles: float | None                   # Cortex-M4 cycle estimate per invoke (cpu == "m4" only)
    functions: list[tuple[str, int]] = field(default_factory=list)   # (function, instructions per invoke)
    stack_used: int | None = None
    cpu_cycles: float | None = None            # cycle estimate per invoke on `cpu` itself (estimate_cycles)

    @property
    def cpu_cycles_per_mac(self) -> float | None:
        return self.cpu_cycles / self.macs if self.cpu_cycles is not None and self.macs else None

    @property
    def instr_per_mac(self) -> float:
        return self.instructions / self.macs if self.macs else float("nan")

    @property
    def cycles_per_mac(self) -> float | None:
        return self.est_cycles / self.macs if self.est_cycles is not None and self.macs else None


def _as_mpk(model: bytes) -> bytes:
    if model[:4] == b"MPYM":
        return model
    from .packer import pack
    return pack(model)


def count_instructions(model: bytes, cpu: str = "m4", inputs: Sequence[Sequence[np.ndarray]] | None = None, *,
                       board: str | None = None, seed: int = 0, name: str = "model",
                       timeout: float = 600) -> InstructionCount:
    """Exact instructions per invoke of a model (.tflite or .mpk) on one CPU, with a per-function breakdown and
    (M4) a cycle estimate. Default input: one random int8 sample (seed)."""
    mpk = _as_mpk(model)
    info = MpkFile(mpk)
    if inputs is None:
        rng = np.random.default_rng(seed)
        inputs = [[rng.integers(-128, 128, size=t.shape, dtype=np.int8) for t in info.input_tensors()]]
    with tempfile.TemporaryDirectory(prefix="mpyml-bm-count-") as d:
        res = run_job(mpk, _input_bytes(info, inputs), cpu=cpu, board=board, count_instructions=True,
                      timeout=timeout, keep_dir=Path(d))
        if res.exit_status != 0:
            raise BaremetalError(f"{cpu}: harness status {res.exit_status} ({status_name(res.exit_status)})\n"
                                 f"{res.console}", res)
        assert res.elf is not None and res.profile is not None
        syms = sorted((a, s, n) for n, (a, s) in _symbols(res.elf).items() if s > 0)
    per_invoke = res.invoke_instructions
    n_inv = len(per_invoke)
    starts = [a for a, _, _ in syms]
    funcs: dict[str, int] = {}
    for e in res.profile:
        i = bisect.bisect_right(starts, e.pc) - 1
        fn = syms[i][2] if i >= 0 and e.pc < syms[i][0] + syms[i][1] else "?"
        funcs[fn] = funcs.get(fn, 0) + e.count
    # the profile also holds the empty calibration window's few instructions (marker bodies): leave them out
    funcs = {k: v for k, v in funcs.items() if k not in ("bm_mark_begin", "bm_mark_end")}
    est = _estimate_cycles_m4(res.profile) / n_inv if cpu == "m4" and n_inv else None
    cpu_est = estimate_cycles(res.profile, cpu)
    return InstructionCount(
        model=name, cpu=cpu, macs=info.header["macs"], instructions=round(sum(per_invoke) / n_inv),
        per_invoke=per_invoke, est_cycles=est,
        functions=sorted(((k, round(v / n_inv)) for k, v in funcs.items()), key=lambda kv: -kv[1]),
        stack_used=res.stack_used, cpu_cycles=cpu_est / n_inv if cpu_est is not None and n_inv else None)


# ---------------------------------------------------------------------------------------------- sizes

def engine_size(cpu: str) -> dict[str, int]:
    """text/data/bss bytes of the engine library for one CPU (every engine function; arm-none-eabi-size)."""
    lib = build_lib(cpu)
    r = subprocess.run([f"{CROSS}size", "-t", str(lib)], capture_output=True, text=True, check=True)
    text, data, bss = (int(x) for x in r.stdout.strip().splitlines()[-1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


_MAP_SECTION = re.compile(r"^ (\.[\w.]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)$", re.M)


def linked_sizes(model: bytes, cpu: str, board: str | None = None) -> dict[str, int]:
    """Flash bytes (code + read-only data) per part of a linked firmware image for `model`, after
    --gc-sections: engine, harness (startup, semihosting, main), libc/libgcc, model+inputs; and RAM bytes."""
    board = _check_cpu(cpu, board)
    mpk = _as_mpk(model)
    with tempfile.TemporaryDirectory(prefix="mpyml-bm-size-") as d:
        elf, _ = _build_job(mpk, b"", Path(d), cpu=cpu, board=board, repeat=1)
        text = elf.with_suffix(".map").read_text()
    text = text[text.index("Linker script and memory map"):]      # skip "Discarded input sections"
    text = re.sub(r"^ (\.[\w.]+)\n\s+", r" \1 ", text, flags=re.M)  # long section names wrap onto the next line
    sizes = {"engine": 0, "harness": 0, "libc/libgcc": 0, "model+inputs": 0, "ram": 0}
    for m in _MAP_SECTION.finditer(text):
        sec, size, obj = m.group(1), int(m.group(3), 16), m.group(4)
        if sec.startswith((".data", ".bss")):
            sizes["ram"] += size
        if not sec.startswith((".text", ".rodata", ".data", ".vectors")):
            continue
        part = ("engine" if "libmpyml_engine.a" in obj else "harness" if "/harness/" in obj
                else "model+inputs" if obj.endswith(".blobs.o") else "libc/libgcc")
        sizes[part] += size
    return sizes


# ---------------------------------------------------------------------------------------------- CLI

def _cpus(arg: str) -> list[str]:
    return list(CPUS) if arg == "all" else arg.split(",")


def _board(args: argparse.Namespace, cpu: str, mpk: bytes | None = None) -> str | None:
    """--board for the CPUs it carries; otherwise the default, except that on m0 a model too big for the real
    micro:bit runs on microbit-xl (noted on stderr)."""
    if args.board in BOARDS[cpu]:
        return args.board
    if cpu == "m0" and mpk is not None and args.board is None:
        header_arena = int.from_bytes(mpk[16:20], "little") if len(mpk) >= 20 else 0
        if len(mpk) > 200 * 1024 or header_arena > 13 * 1024:   # microbit.ld: 256 KiB flash, 16 KiB RAM
            print("m0: model too big for the micro:bit (256 KiB flash, 16 KiB RAM): running on microbit-xl",
                  file=sys.stderr)
            return "microbit-xl"
    return None


def _cmd_count(args: argparse.Namespace) -> int:
    rows = []
    print(f"{'model':32} {'cpu':3} {'MACs':>12} {'instr/invoke':>14} {'instr/MAC':>9} {'est. M4 cycles':>14} "
          f"{'cyc/MAC':>8}")
    for path in args.models:
        for cpu in _cpus(args.cpu):
            model = _as_mpk(Path(path).read_bytes())
            c = count_instructions(model, cpu=cpu, board=_board(args, cpu, model), seed=args.seed,
                                   name=Path(path).name)
            rows.append(c)
            est = f"{'-':>14} {'-':>8}"
            if c.est_cycles is not None and c.cycles_per_mac is not None:
                est = f"{c.est_cycles:14,.0f} {c.cycles_per_mac:8.2f}"
            print(f"{c.model:32} {cpu:3} {c.macs:12,} {c.instructions:14,} {c.instr_per_mac:9.2f} {est} "
                  f"stack {c.stack_used} B")
            for fn, n in c.functions[:args.functions]:
                print(f"    {fn:40} {n:14,} {100.0 * n / c.instructions:6.1f}%")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from .tflm import TflmRunner
    bad = 0
    for path in args.models:
        tflite = Path(path).read_bytes()
        mpk = _as_mpk(tflite)
        info = MpkFile(mpk)
        rng = np.random.default_rng(args.seed)
        batch = [[rng.integers(-128, 128, size=t.shape, dtype=np.int8) for t in info.input_tensors()]
                 for _ in range(args.n)]
        ref = TflmRunner(tflite)
        want = [ref.run(s) for s in batch]
        for cpu in _cpus(args.cpu):
            try:
                got, _ = run_on_qemu(mpk, batch, cpu=cpu, board=_board(args, cpu, mpk))
            except BaremetalError as e:
                print(f"{Path(path).name:32} {cpu:3} ERROR {str(e).splitlines()[0]}")
                bad += 1
                continue
            diff = sum(not all(np.array_equal(w.reshape(-1), g.reshape(-1)) for w, g in zip(ws, gs, strict=True))
                       for ws, gs in zip(want, got, strict=True))
            bad += diff != 0
            print(f"{Path(path).name:32} {cpu:3} {'bit-exact' if diff == 0 else f'{diff} samples differ'} "
                  f"({args.n} random inputs)")
    return 1 if bad else 0


def _cmd_size(args: argparse.Namespace) -> int:
    """Engine library size per CPU; with a model, also the flash/RAM split of a firmware linked with it."""
    for cpu in _cpus(args.cpu):
        s = engine_size(cpu)
        line = f"{cpu:3} {MCPU[cpu]:10} engine library: text {s['text']:7,}  data {s['data']:3,}  bss {s['bss']:3,}"
        for path in args.models:
            model = _as_mpk(Path(path).read_bytes())
            ln = linked_sizes(model, cpu, _board(args, cpu, model))
            line += (f"\n    linked with {Path(path).name}: " +
                     ", ".join(f"{k} {v:,}" for k, v in ln.items()))
        print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mpyml.baremetal", description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--count", action="store_true", help="instructions per invoke (+ M4 cycle estimate)")
    mode.add_argument("--check", action="store_true", help="outputs byte-equal to tflite-micro on random inputs")
    mode.add_argument("--size", action="store_true", help="engine code size per CPU")
    ap.add_argument("models", nargs="*", help=".tflite (or .mpk for --count) files")
    ap.add_argument("--cpu", default=None, help=f"one of {', '.join(CPUS)}, a comma list, or all "
                                                "(default: m4 for --count, all otherwise)")
    ap.add_argument("--board", default=None,
                    help="QEMU board, for the CPUs it carries (m0: microbit, the default, or microbit-xl)")
    ap.add_argument("--seed", type=int, default=0, help="random input seed")
    ap.add_argument("-n", type=int, default=5, help="--check: random inputs per model")
    ap.add_argument("--functions", type=int, default=6, help="--count: functions listed per model")
    args = ap.parse_args(argv)
    if args.cpu is None:
        args.cpu = "m4" if args.count else "all"
    why = missing_tools(count=args.count)
    if why:
        print(f"cannot run bare-metal: {why}", file=sys.stderr)
        return 2
    if (args.count or args.check) and not args.models:
        ap.error("give at least one model")
    return _cmd_count(args) if args.count else _cmd_check(args) if args.check else _cmd_size(args)


if __name__ == "__main__":
    sys.exit(main())
