"""Pytest support for the virtual board (`mpyml board`): the MicroPython unix port on a pty.

Use from a test module:

    from virtual_board import VirtualBoard          # the handle's type
    pytest_plugins = ["virtual_board"]              # the fixtures

`virtual_board` is a running board on a fresh directory (tmp_path / "board"); `board_factory(...)`
starts more (other heap size, --arch-override). Every board is stopped at the end of its test,
even when the test fails, and its state lives under tmp_path (MPYML_BOARD_RUNDIR), so parallel
runs (pytest -n) never share one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mpyml import board as vboard

MPREMOTE = [sys.executable, "-m", "mpremote"]
MPYML = [sys.executable, "-m", "mpyml.cli"]


@dataclass
class VirtualBoard:
    tty: str
    dir: Path
    pid: int

    def mpremote(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        """Run the mpremote CLI against this board (it soft-resets the board first, like on hardware)."""
        r = subprocess.run([*MPREMOTE, "connect", self.tty, *args], capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"mpremote {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def exec(self, code: str, timeout: float = 60) -> str:
        return self.mpremote("exec", code, timeout=timeout).stdout

    def deploy(self, *args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
        """`mpyml deploy --port <this board> ARGS` as a subprocess."""
        return subprocess.run([*MPYML, "deploy", "--port", self.tty, *args], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **(env or {})})

    def soft_reboot(self, wait_for: Path | None = None, timeout: float = 15) -> bytes:
        """Ctrl-D at the friendly REPL, as a user would: the board reboots and runs boot.py and main.py.
        Returns what it printed (until `wait_for` exists, if given, else until the next prompt)."""
        import serial

        out = b""
        with serial.Serial(self.tty, 115200, timeout=0.1) as s:
            s.write(b"\r\x03\x03\r\x02")
            time.sleep(0.3)
            s.read(65536)
            s.write(b"\x04")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                out += s.read(4096)
                if wait_for is not None and wait_for.exists():
                    break
                if wait_for is None and out.endswith(b">>> ") and b"soft reboot" in out:
                    break
        return out

    @property
    def alive(self) -> bool:
        st = vboard.read_state(self.dir)
        return st is not None and st.pid == self.pid


@pytest.fixture
def board_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., VirtualBoard]]:
    monkeypatch.setenv("MPYML_BOARD_RUNDIR", str(tmp_path / "run"))
    monkeypatch.setenv("MPYML_BOARD_WATCH_PID", str(os.getpid()))
    started: list[Path] = []

    def make(name: str = "board", heapsize: str = vboard.DEFAULT_HEAPSIZE,
             arch_override: str | None = None) -> VirtualBoard:
        d = tmp_path / name
        st = vboard.start(d, heapsize=heapsize, arch_override=arch_override)
        started.append(d)
        return VirtualBoard(st.tty, Path(st.dir), st.pid)

    yield make
    for d in started:
        vboard.stop(d)


@pytest.fixture
def virtual_board(board_factory: Callable[..., VirtualBoard]) -> VirtualBoard:
    return board_factory()
