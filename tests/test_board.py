"""The virtual board (`mpyml board`): the unix port on a pty, addressable by mpremote like hardware."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import serial

from mpyml import board as vboard
from mpyml.remote import Board

if TYPE_CHECKING:
    from virtual_board import VirtualBoard

MPYML = [sys.executable, "-m", "mpyml.cli"]
pytest_plugins = ["virtual_board"]   # fixtures: virtual_board, board_factory


def _mpyml(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*MPYML, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_cli_start_status_stop(tmp_path: Path) -> None:
    env = {"MPYML_BOARD_RUNDIR": str(tmp_path / "run"), "MPYML_BOARD_WATCH_PID": str(os.getpid())}
    d = tmp_path / "fs"
    r = _mpyml("board", "start", "--dir", str(d), "--heapsize", "256K", env=env)
    try:
        assert r.returncode == 0, r.stderr
        tty = r.stdout.strip()
        assert tty.startswith("/dev/pts/"), r.stdout
        assert "mpremote connect" in r.stderr
        s = _mpyml("board", "status", "--dir", str(d), env=env)
        assert s.returncode == 0 and tty in s.stdout and "256K" in s.stdout
        again = _mpyml("board", "start", "--dir", str(d), "--heapsize", "256K", env=env)
        assert again.stdout.strip() == tty                      # idempotent: same board
        out = subprocess.run([sys.executable, "-m", "mpremote", "connect", tty, "exec",
                              "import gc; print(gc.mem_free() + gc.mem_alloc())"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert 200_000 < int(out.stdout.strip()) <= 256 * 1024
    finally:
        st = _mpyml("board", "stop", "--dir", str(d), env=env)
    assert st.returncode == 0 and "stopped" in st.stdout
    assert _mpyml("board", "status", "--dir", str(d), env=env).returncode == 1
    assert not list((tmp_path / "run").glob("*/state.json"))


def test_filesystem_is_the_board_dir(virtual_board: VirtualBoard) -> None:
    b = virtual_board
    out = b.exec("import os, sys\n"
                 "os.mkdir('lib'); f = open('/lib/abs.txt', 'w'); f.write('a'); f.close()\n"
                 "f = open('lib/rel.txt', 'w'); f.write('r'); f.close()\n"
                 "os.rename('lib/rel.txt', 'lib/moved.txt')\n"
                 "f = open('lib/hello.py', 'w'); f.write('X = 42'); f.close()\n"
                 "import hello\n"
                 "print(os.getcwd(), sorted(os.listdir('/lib')), sys.path, hello.X)")
    assert out.split()[0] == "/"
    assert "['abs.txt', 'hello.py', 'moved.txt']" in out and "'/lib'" in out and out.strip().endswith("42")
    assert sorted(p.name for p in (b.dir / "lib").iterdir()) == ["abs.txt", "hello.py", "moved.txt"]


def test_soft_reset_is_emulated(virtual_board: VirtualBoard) -> None:
    b = virtual_board
    (b.dir / "boot.py").write_text("f = open('boot.log', 'a'); f.write('b'); f.close()\n")
    b.exec("leftover = 1")
    # every mpremote session soft-resets (fresh interpreter: globals gone), boot.py runs each time
    r = b.mpremote("exec", "print(leftover)", check=False)
    assert "NameError" in r.stdout + r.stderr
    # `resume` skips the soft reset: the state is kept
    b.exec("kept = 7")
    assert b.mpremote("resume", "exec", "print(kept)").stdout.strip() == "7"
    assert (b.dir / "boot.log").read_text().count("b") >= 3


def test_main_py_runs_at_boot_and_ctrl_c_interrupts_it(board_factory) -> None:
    # main.py that never returns: mpremote must still get in (Ctrl-C), as on a real board
    b = board_factory("loop")
    (b.dir / "main.py").write_text("import time\nf = open('main.log', 'a'); f.write('m'); f.close()\n"
                                   "while True:\n    time.sleep_ms(10)\n")
    # Ctrl-D at the friendly REPL: the unix port would exit; the board soft-reboots and runs main.py
    with serial.Serial(b.tty, 115200, timeout=0.2) as s:
        s.write(b"\r\x03\x03\r\x02")
        time.sleep(0.3)
        s.read(4096)
        s.write(b"\x04")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (b.dir / "main.log").exists():
            time.sleep(0.02)
        assert (b.dir / "main.log").read_text() == "m"
        s.read(4096)
        s.write(b"\x03")                    # interrupt the loop in main.py
        out = b""
        while time.monotonic() < deadline and not out.endswith(b">>> "):
            out += s.read(256)
        assert b"KeyboardInterrupt" in out and out.endswith(b">>> ")
        s.write(b"print(6 * 7)\r")
        out = b""
        while time.monotonic() < deadline and b"42\r\n>>> " not in out:
            out += s.read(256)
        assert b"42\r\n>>> " in out            # "\n" becomes "\r\n", as boards print
    assert b.exec("print('in')").strip() == "in"
    assert b.alive


def test_interpreter_exit_restarts(virtual_board: VirtualBoard) -> None:
    b = virtual_board
    b.mpremote("exec", "import sys; sys.exit()", check=False)
    assert b.exec("print(1 + 1)").strip() == "2"
    assert b.alive


def test_arch_override(board_factory) -> None:
    b = board_factory("esp", arch_override="xtensawin")
    out = b.exec("import sys; print(sys.implementation._mpy, sys.platform, sys.implementation.name)")
    mpy, plat, name = out.split()
    assert int(mpy) >> 10 == vboard.MPY_ARCHS.index("xtensawin") and int(mpy) & 0x3FF == 0x306
    assert (plat, name) == ("linux", "micropython")
    with Board(b.tty) as board:
        assert board.info.arch == "xtensawin" and board.info.abi == "6.3"


def test_probe(virtual_board: VirtualBoard) -> None:
    with Board(virtual_board.tty) as board:
        info = board.info
        assert info.arch == "x64" and info.abi == "6.3" and info.platform == "linux" and info.is_unix_port
        assert info.version[:2] >= (1, 22)
        assert 1_000_000 < info.mem_free <= 2 * 1024 * 1024
        assert info.fs_free > 0 and info.hash == "sha256"
        text = "\n".join(f"{k} {v}" for k, v in info.describe())
        assert "x64" in text and "6.3" in text and "free heap" in text


def test_board_dir_holds_only_board_files(virtual_board: VirtualBoard) -> None:
    # runtime state (pid, tty, log) stays out of the board's filesystem
    assert list(virtual_board.dir.iterdir()) == []
    st = vboard.read_state(virtual_board.dir)
    assert st is not None and (st.rundir / "tty").resolve() == Path(st.tty)
