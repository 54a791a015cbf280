#!/usr/bin/env python3
"""Generate mip package files for the device package, from the device tree (so they cannot drift).

    python tools/make_package_json.py            # write device/package.json
    python tools/make_package_json.py --check    # exit 1 if device/package.json is out of date
    python tools/make_package_json.py --dist build/mip   # per-architecture mip trees, see below

device/package.json (committed) lists every file of device/mpyml as source, with URLs relative to
the package.json, so both of these install the Python part on a board:

    mpremote mip install github:OWNER/mpyml/device/package.json      (or the board's own mip)
    mpremote mip install device/package.json                         (from a checkout)

The engine is a native module, one build per architecture and .mpy ABI, so it cannot be in a
single file list that mip understands. Following emlearn-micropython's layout, --dist writes one
directory per built architecture, named {ARCH}_{MPY} (x64_6.3, armv6m_6.3, xtensawin_6.3...), each
holding the device package compiled by mpy-cross for that arch, mpyml_engine.mpy and a
package.json with relative URLs; plus a top-level package.json that declares "arch" and "mpy" and
uses {ARCH}_{MPY} URL templates (emlearn-micropython's convention, for tools that expand them).
Publish the tree anywhere (GitHub Pages, a release) and install with

    mip.install("https://HOST/mpyml/xtensawin_6.3/package.json")          # on the board
    mpremote mip install build/mip/armv6m_6.3/package.json              # from the host
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from mpyml import paths
from mpyml.deploy import MPY_CROSS_ABI, compile_package, package_sources

PACKAGE_JSON = paths.DEVICE_DIR / "package.json"
DESCRIPTION = "mpyml: run int8 models packed from TensorFlow Lite on MicroPython (device package)"
MPY = f"{MPY_CROSS_ABI[0]}.{MPY_CROSS_ABI[1]}"


def device_version() -> str:
    text = (paths.DEVICE_DIR / "mpyml" / "__init__.py").read_text()
    m = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.M)
    return m.group(1) if m else "0.0.0"


def device_files() -> list[str]:
    """Paths of the device package's files relative to device/ ("mpyml/__init__.py", ...)."""
    return [p.relative_to(paths.DEVICE_DIR).as_posix() for p in package_sources()]


def source_package() -> dict:
    files = device_files()
    return {
        "name": "mpyml",
        "version": device_version(),
        "description": DESCRIPTION,
        "arch": list(paths.NATMOD_ARCHS),
        "mpy": [MPY],
        "urls": [[f, f] for f in files],
        "deps": [],
    }


def render(obj: dict) -> str:
    """JSON with one url pair per line (readable diffs)."""
    head = {k: v for k, v in obj.items() if k != "urls"}
    lines = ["{"]
    for k, v in head.items():
        lines.append(f"  {json.dumps(k)}: {json.dumps(v)},")
    urls = obj.get("urls", [])
    lines.append('  "urls": [')
    lines += [f"    {json.dumps(u)}," for u in urls[:-1]] + ([f"    {json.dumps(urls[-1])}"] if urls else [])
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_dist(out: Path, archs: list[str]) -> list[str]:
    """Per-arch mip trees under out/; returns the arch dirs written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for arch in archs:
        natmod = paths.natmod_path(arch)
        if not natmod.is_file():
            print(f"{arch}: {natmod} not built, skipped", file=sys.stderr)
            continue
        d = out / f"{arch}_{MPY}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        with tempfile.TemporaryDirectory() as work:
            items, notes = compile_package(None, arch, False, Path(work))
        urls = []
        for it in items:
            rel = it.dest.removeprefix("lib/")
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_bytes(it.data)
            urls.append([rel, rel])
        shutil.copyfile(natmod, d / f"{paths.NATMOD_NAME}.mpy")
        urls.append([f"{paths.NATMOD_NAME}.mpy", f"{paths.NATMOD_NAME}.mpy"])
        pkg = {"name": "mpyml", "version": device_version(), "description": DESCRIPTION,
               "arch": arch, "mpy": MPY, "urls": urls, "deps": []}
        (d / "package.json").write_text(render(pkg))
        written.append(d.name)
    top = {"name": "mpyml", "version": device_version(), "description": DESCRIPTION,
           "arch": [a for a in archs if (out / f"{a}_{MPY}").is_dir()], "mpy": [MPY],
           "urls": [[u[0], "{ARCH}_{MPY}/" + u[1]] for u in
                    ([[f.removesuffix(".py") + ".mpy", f.removesuffix(".py") + ".mpy"] if f.endswith(".py")
                      else [f, f] for f in device_files()]
                     + [[f"{paths.NATMOD_NAME}.mpy", f"{paths.NATMOD_NAME}.mpy"]])],
           "deps": []}
    (out / "package.json").write_text(render(top))
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if device/package.json is out of date")
    ap.add_argument("--output", type=Path, default=PACKAGE_JSON, help="where to write (default device/package.json)")
    ap.add_argument("--dist", type=Path, metavar="DIR", help="write per-arch mip trees to DIR instead")
    ap.add_argument("--arch", action="append", choices=paths.NATMOD_ARCHS,
                    help="with --dist: only this arch (repeat); default every built one")
    args = ap.parse_args(argv)
    if args.dist:
        done = write_dist(args.dist, args.arch or list(paths.NATMOD_ARCHS))
        print(f"wrote {args.dist}/package.json and {', '.join(done) or 'no arch (nothing built: make natmods)'}")
        return 0 if done else 1
    text = render(source_package())
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run `python tools/make_package_json.py`", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date ({len(device_files())} files)")
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output} ({len(device_files())} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
