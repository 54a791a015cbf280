"""Wheel build hook: the wheel carries what `mpyml run` / `mpyml deploy` need outside a checkout.

Metadata lives in pyproject.toml; this file only adds the package data that is not Python source of the
host package, copied into mpyml/_data/ of the wheel (host/mpyml/paths.py looks there when not in a checkout):

    _data/device/mpyml/**             the MicroPython device package (device/mpyml, as `mpyml deploy` copies it)
    _data/device/package.json         its mip package file
    _data/natmod/<arch>/mpyml_engine.mpy   the C engine, x64 armv6m armv7m armv7emsp armv7emdp (+ xtensawin if built)
    _data/viper/<arch>/mpyml/*.mpy    the viper engine compiled ahead of time for all six archs
    _data/host/libmpyml.so            the engine as a host library (loader validation in inspect / deploy)

They are built by `make natmods viper hostlib` (`make wheel` runs those first); a missing one fails the build
naming the make target. An editable install (`pip install -e .`, the dev set-up) copies nothing: paths.py uses
the checkout's device/ and build/ directly.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

try:
    from setuptools.command.bdist_wheel import bdist_wheel  # setuptools >= 70.1
except ImportError:                                           # older setuptools (editable dev install): unused
    bdist_wheel = None  # type: ignore[assignment,misc]

ROOT = Path(__file__).resolve().parent
BUILD = ROOT / "build"
NATMOD_ARCHS = ("x64", "armv6m", "armv7m", "armv7emsp", "armv7emdp")   # xtensawin: only with its compiler
VIPER_ARCHS = ("x64", "armv6m", "armv7m", "armv7emsp", "armv7emdp", "xtensawin")
SKIP_PARTS = ("__pycache__",)
SKIP_SUFFIXES = (".pyc", ".mpy", ".part")


def _device_files() -> list[Path]:
    root = ROOT / "device" / "mpyml"
    out = []
    for p in sorted(root.rglob("*")):
        parts = p.relative_to(root).parts
        if p.is_file() and p.suffix not in SKIP_SUFFIXES and not any(x in SKIP_PARTS or x.startswith(".")
                                                                     for x in parts):
            out.append(p)
    return out


def data_files() -> list[tuple[Path, str]]:
    """(source, destination under mpyml/_data/) for every file the wheel must carry; raises naming what is
    missing and the make target that builds it."""
    files = [(p, "device/" + p.relative_to(ROOT / "device").as_posix()) for p in _device_files()]
    files.append((ROOT / "device" / "package.json", "device/package.json"))
    archs = list(NATMOD_ARCHS) + (["xtensawin"] if (BUILD / "natmod" / "xtensawin" / "mpyml_engine.mpy").is_file()
                                  else [])
    files += [(BUILD / "natmod" / a / "mpyml_engine.mpy", f"natmod/{a}/mpyml_engine.mpy") for a in archs]
    for a in VIPER_ARCHS:
        d = BUILD / "viper" / a / "mpyml"
        mpys = sorted(d.glob("*.mpy")) if d.is_dir() else []
        files += [(p, f"viper/{a}/mpyml/{p.name}") for p in mpys] or [(d / "viper_engine.mpy",
                                                                        f"viper/{a}/mpyml/viper_engine.mpy")]
    files.append((BUILD / "host" / "libmpyml.so", "host/libmpyml.so"))
    missing = [str(src.relative_to(ROOT)) for src, _ in files if not src.is_file()]
    if missing:
        raise SystemExit(f"mpyml wheel: {len(missing)} built file(s) missing ({', '.join(missing[:3])}"
                         f"{', ...' if len(missing) > 3 else ''}): run `make natmods viper hostlib` first "
                         "(`make wheel` does)")
    return files


class BuildPyWithData(build_py):
    """build_py that also copies the device package and built engines into mpyml/_data/."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        dest_root = Path(self.build_lib) / "mpyml" / "_data"
        if dest_root.exists():
            shutil.rmtree(dest_root)
        for src, rel in data_files():
            dest = dest_root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)


cmdclass: dict[str, type] = {"build_py": BuildPyWithData}



class BinaryDistribution(Distribution):
    """libmpyml.so is a host binary: the package installs to platlib and the wheel is platform-specific."""

    def has_ext_modules(self) -> bool:
        return True


if bdist_wheel is not None:
    class PlatformWheel(bdist_wheel):   # type: ignore[misc,valid-type]
        """Tag the wheel py3-none-<platform>: a host binary, but no CPython extension ABI is used."""

        def get_tag(self) -> tuple[str, str, str]:
            _, _, plat = super().get_tag()
            return "py3", "none", plat

    cmdclass["bdist_wheel"] = PlatformWheel

# setuptools' scratch space away from the project's own build/ outputs
setup(cmdclass=cmdclass, distclass=BinaryDistribution,
      options={"build": {"build_base": os.environ.get("MPYML_SETUPTOOLS_BUILD", str(BUILD / "setuptools"))}})
