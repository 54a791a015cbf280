"""Compile the viper fallback engine ahead of time with mpy-cross, for every board architecture.

    python tools/build_viper.py [--out build/viper] [--arch ARCH ...]

writes <out>/<arch>/mpyml/viper_engine.mpy (and any device/mpyml/viper_*.py helper module) for
x64, armv6m, armv7m, armv7emsp, armv7emdp and xtensawin (ESP32). A precompiled .mpy imports
without compiling on the board (compiling 1600 lines of viper needs more RAM than an ESP32 has
free) and its native code is what runs. Copy the file next to the board's mpyml/__init__.py
(the package directory); remove viper_engine.py there if present, since .py is found first.

Fails (exit 1) on any mpy-cross error, e.g. a viper type error that only a 32-bit target shows
(an integer literal >= 2**30 is a heap object there, not a machine int).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from mpyml import paths

REPO = Path(__file__).resolve().parents[1]
SRC_DIR = REPO / "device" / "mpyml"
ARCHS = ("x64", "armv6m", "armv7m", "armv7emsp", "armv7emdp", "xtensawin")


def sources() -> list[Path]:
    return sorted([SRC_DIR / "viper_engine.py", *SRC_DIR.glob("viper_*.py")], key=lambda p: p.name)


def mpy_cross() -> str:
    try:
        return paths.mpy_cross_exe()
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None


def build(out: Path, archs: list[str]) -> list[Path]:
    exe = mpy_cross()
    built = []
    for arch in archs:
        dest = out / arch / "mpyml"
        dest.mkdir(parents=True, exist_ok=True)
        for src in dict.fromkeys(sources()):
            target = dest / (src.stem + ".mpy")
            cmd = [exe, f"-march={arch}", "-s", f"mpyml/{src.name}", "-o", str(target), str(src)]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"mpy-cross failed for {arch} {src.name}:\n{r.stdout}{r.stderr}")
            built.append(target)
    return built


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "build" / "viper")
    ap.add_argument("--arch", action="append", choices=ARCHS, help="default: all")
    a = ap.parse_args(argv)
    for p in build(a.out, a.arch or list(ARCHS)):
        print(f"{p.relative_to(a.out) if p.is_relative_to(a.out) else p}  {p.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
