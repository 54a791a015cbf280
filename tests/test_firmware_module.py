"""The binding compiles in both modes from one source (issue: firmware-module builds).

natmod mode is what `make natmods` builds (every other test uses it). Firmware mode is proven here by
building MicroPython's mpy-cross from the natmod kit's MicroPython tree with USER_C_MODULES pointing at
native_modules/ (the same micropython.mk a port uses): the qstrs are generated, MP_REGISTER_MODULE is
processed into moduledefs.h, every source compiles with the port's -Werror flags, and the module is
force-linked so that every symbol the engine and the binding use must resolve.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from mpyml import paths

KIT_MPY_CROSS = paths.BUILD_DIR / "kit" / "mpy_cross_v6_3-1.1.1" / "micropython" / "mpy-cross"
NATIVE = paths.REPO / "native_modules"


def build(build_dir: Path, with_module: bool) -> tuple[subprocess.CompletedProcess, Path]:
    prog = "mpy-cross-mpyml" if with_module else "mpy-cross-plain"
    cmd = ["make", "-j2", "-f", "Makefile", f"BUILD={build_dir}", f"PROG={prog}"]
    if with_module:
        cmd += ["-f", str(NATIVE / "usermod" / "link_into_mpy_cross.mk"), f"USER_C_MODULES={NATIVE}",
                "LDFLAGS_EXTRA=-Wl,--undefined=mpyml_engine_user_cmodule"]
    r = subprocess.run(cmd, cwd=KIT_MPY_CROSS, capture_output=True, text=True, timeout=900)
    return r, build_dir / prog


def text_size(binary: Path) -> int:
    out = subprocess.run(["size", str(binary)], capture_output=True, text=True, check=True).stdout
    return int(out.splitlines()[1].split()[0])


def test_binding_builds_as_firmware_user_c_module(tmp_path: Path) -> None:
    if not (KIT_MPY_CROSS / "Makefile").exists():
        pytest.fail(f"{KIT_MPY_CROSS} missing: run `make setup` (extracts the natmod kit)")
    r, exe = build(tmp_path / "fw", with_module=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Including User C Module from" in r.stdout
    moduledefs = (tmp_path / "fw" / "genhdr" / "moduledefs.h").read_text()
    assert "MODULE_DEF_MPYML_ENGINE" in moduledefs and "mpyml_engine_user_cmodule" in moduledefs
    qstrs = (tmp_path / "fw" / "genhdr" / "qstrdefs.generated.h").read_text()
    for name in ("mpyml_engine", "prepare", "invoke", "ctx_size", "version", "crc32", "pre_logmel", "pre_mfcc",
                 "pre_quant", "pre_image", "pre_max", "pre_i32_to_i16"):
        assert re.search(rf"QDEF\d?\(MP_QSTR_{name},", qstrs), f"qstr {name} not generated"
    # the engine really is linked in: compare with the same build without the module
    r0, plain = build(tmp_path / "plain", with_module=False)
    assert r0.returncode == 0, r0.stderr[-2000:]
    grown = text_size(exe) - text_size(plain)
    assert grown > 15_000, f"firmware build only grew by {grown} bytes: engine not linked"
