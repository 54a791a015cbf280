"""Emulated Cortex-M boards: the project's MicroPython port (native_modules/mpport) under qemu-system-arm.

`mpyml board start --cpu m0|m3|m4|m7 [--dir D] [--heapsize N]` builds the firmware if needed, boots it in
QEMU with its UART on a pseudo-terminal and prints the pty path; mpremote and `mpyml deploy --port` use it
like a serial board. It is real MicroPython 1.23 on the real instruction set of the CPU: native .mpy files
load only for the board's own architecture (sys.implementation._mpy), floats, REPL and raw REPL, soft reset
(Ctrl-D) with boot.py / main.py, a RAM filesystem that survives soft resets but not `board stop`.

| cpu | QEMU machine                              | arch       | default heap |
|-----|-------------------------------------------|------------|--------------|
| m0  | microbit, nRF51 RAM enlarged to 4 MiB     | armv6m     | 192 KiB      |
| m3  | mps2-an385                                | armv7em    | 128 KiB      |
| m4  | mps2-an386                                | armv7emsp  | 192 KiB      |
| m7  | mps2-an500                                | armv7emdp  | 256 KiB      |

The directory D only names the board (its run state lives in $TMPDIR/mpyml-boards-<uid>/, as for the
unix-port board; `mpyml board stop --dir D` stops it): the files live in the board's RAM.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

from . import paths

CPUS = ("m0", "m3", "m4", "m7")
ARCH = {"m0": "armv6m", "m3": "armv7em", "m4": "armv7emsp", "m7": "armv7emdp"}
BOOT_PARAM = 0x203FFFF8      # last 8 bytes of RAM (port.ld _boot_param): "HEAP", size
BOOT_MAGIC = 0x50414548
MAX_HEAP = 2 * 1024 * 1024
DEFAULT_HEAP = {"m0": 192 * 1024, "m3": 128 * 1024, "m4": 192 * 1024, "m7": 256 * 1024}   # as the Makefile
PORT_DIR = paths.REPO / "native_modules" / "mpport"
BOOT_TIMEOUT = 20.0


class QemuBoardError(RuntimeError):
    pass


def parse_size(s: str) -> int:
    """'128K', '1M', '200000' -> bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)\s*", s)
    if not m:
        raise QemuBoardError(f"bad heap size {s!r}: give bytes or K/M, e.g. 128K")
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]


def heap_args(heap: int) -> list[str]:
    """QEMU writes the heap size into the firmware's boot parameter words (main.c heap_size) before reset."""
    return ["-device", f"loader,addr={BOOT_PARAM:#x},data={BOOT_MAGIC:#x},data-len=4",
            "-device", f"loader,addr={BOOT_PARAM + 4:#x},data={heap},data-len=4"]


def heap_label(cpu: str, heap: int | None) -> str:
    return f"{(heap or DEFAULT_HEAP[cpu]) // 1024}K"


def firmware(cpu: str) -> tuple[Path, list[str]]:
    """Build (if needed) the firmware for `cpu`; returns (elf, QEMU command without -serial)."""
    if cpu not in CPUS:
        raise QemuBoardError(f"unknown cpu {cpu!r}: one of {', '.join(CPUS)}")
    if not (PORT_DIR / "Makefile").is_file():
        raise QemuBoardError(f"{PORT_DIR} not found: emulated boards need a source checkout of mpyml")
    cmd = ["make", "-s", "-C", str(PORT_DIR), f"CPU={cpu}"]
    r = subprocess.run(cmd + ["-j2", "all"], capture_output=True, text=True)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-15:])
        raise QemuBoardError(f"building the {cpu} firmware failed (`{shlex.join(cmd)}`; `make setup` installs "
                             f"the cross compiler and the MicroPython kit):\n{tail}")
    r = subprocess.run(cmd + ["qemu-cmd"], capture_output=True, text=True, check=True)
    qemu = shlex.split(r.stdout.strip().splitlines()[-1])
    return Path(qemu[-1]), qemu


def _wait_prompt(tty: str, timeout: float) -> bytes:
    """Open the pty, poke the REPL, wait for its prompt (the firmware has booted)."""
    fd = os.open(tty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        import termios
        import tty as ttymod
        ttymod.setraw(fd)
        termios.tcflush(fd, termios.TCIOFLUSH)
        out = b""
        deadline = time.monotonic() + timeout
        next_poke = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() > next_poke:
                os.write(fd, b"\r")
                next_poke = time.monotonic() + 0.5
            with contextlib.suppress(BlockingIOError):
                out += os.read(fd, 4096)
            if out.endswith(b">>> "):
                # let the answers to earlier pokes drain before closing (QEMU drops what the board sends
                # while no client has the pty open, as a UART with nothing attached)
                quiet = time.monotonic() + 0.3
                while time.monotonic() < quiet:
                    with contextlib.suppress(BlockingIOError):
                        if os.read(fd, 4096):
                            quiet = time.monotonic() + 0.3
                    time.sleep(0.02)
                return out
            time.sleep(0.01)
        raise QemuBoardError(f"no MicroPython prompt on {tty} after {timeout:.0f} s (got {out[-200:]!r})")
    finally:
        os.close(fd)


def start(rundir: Path, board_dir: Path, cpu: str, heap: int | None = None, icount: bool = False) -> dict:
    """Boot the firmware under QEMU; writes rundir/state.json (the format board.py reads) and returns it.

    icount: QEMU's -icount shift=0, virtual time = 1 ns per instruction executed, so time.ticks_us() on the
    board counts thousands of instructions (deterministic, independent of host load; benchmarks)."""
    elf, qemu = firmware(cpu)
    if heap is not None:
        if not 16 * 1024 <= heap <= MAX_HEAP:
            raise QemuBoardError(f"heap {heap} B out of range: 16K to {MAX_HEAP // 1024 // 1024}M")
        qemu += heap_args(heap)
    if icount:
        qemu += ["-icount", "shift=0"]
    rundir.mkdir(parents=True, exist_ok=True)
    log_path = rundir / "board.log"
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*qemu, "-serial", "pty"], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
    tty = None
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline and tty is None:
        m = re.search(r"char device redirected to (/dev/pts/\d+)", log_path.read_text(errors="replace"))
        if m:
            tty = m.group(1)
        elif proc.poll() is not None:
            break
        else:
            time.sleep(0.02)
    try:
        if tty is None:
            raise QemuBoardError(f"QEMU did not start (see {log_path}):\n"
                                 + log_path.read_text(errors="replace")[-1500:])
        _wait_prompt(tty, max(1.0, deadline - time.monotonic()))
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        raise
    boot_s = time.monotonic() - t0
    heapsize = heap_label(cpu, heap)
    state = {"pid": proc.pid, "tty": tty, "dir": str(board_dir), "heapsize": heapsize, "arch_override": None,
             "cpu": cpu, "arch": ARCH[cpu], "firmware": str(elf), "qemu": qemu, "boot_s": round(boot_s, 3),
             "started": time.time(), "log": str(log_path)}
    tmp = rundir / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(rundir / "state.json")
    return state
