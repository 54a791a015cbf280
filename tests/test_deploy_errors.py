"""Deploy to boards that are not there or go away: one line naming the port and what to do, exit 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from conftest import skip_or_fail

MPYML = [sys.executable, "-m", "mpyml.cli"]


def _one_line(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-1500:])
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and all(w in lines[0] for w in words), r.stderr


def _mpk(tmp_path: Path) -> Path:
    import numpy as np

    import tflite_build as tb
    from mpyml import pack
    p = tmp_path / "m.mpk"
    p.write_bytes(pack(tb.fully_connected_model(np.random.default_rng(0))))
    return p


def test_port_that_does_not_exist(tmp_path: Path) -> None:
    r = subprocess.run([*MPYML, "deploy", "--port", "/dev/nonexistent", str(_mpk(tmp_path))], capture_output=True,
                       text=True, timeout=120)
    _one_line(r, "/dev/nonexistent does not exist")


def test_board_that_disconnects(tmp_path: Path) -> None:
    """A plain MicroPython unix port on a pty (no raw REPL emulation: the REPL exits on Ctrl-D) drops the line
    during the handshake: a clear error, not an OSError traceback."""
    from mpyml import paths
    if shutil.which("socat") is None:
        skip_or_fail("socat not installed (make setup installs it)")
    tty = tmp_path / "tty"
    p = subprocess.Popen(["socat", f"PTY,link={tty},raw,echo=0",
                          f"EXEC:{paths.micropython_exe()},pty,setsid,ctty,stderr"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if tty.exists():
                break
            time.sleep(0.1)
        r = subprocess.run([*MPYML, "deploy", "--port", str(tty), str(_mpk(tmp_path)), "--dry-run", "--no-reset"],
                           capture_output=True, text=True, timeout=120)
        _one_line(r, str(tty))
        assert "disconnected" in r.stderr or "no MicroPython raw REPL" in r.stderr or "cannot open" in r.stderr
    finally:
        p.kill()
        p.wait()
