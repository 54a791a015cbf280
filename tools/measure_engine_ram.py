"""Measure the heap mpyml takes on the QEMU MicroPython boards; print the constants of host/mpyml/fit_boards.py.

Owns: the measurement behind MPYML_PACKAGE_RAM, C_ENGINE_M4_RAM, C_ENGINE_M0_RAM and VIPER_ENGINE_M4_RAM. For
each CPU (default m4 and m0) it boots the project's MicroPython 1.23 port (`mpyml board start`, qemu_board.py),
deploys the device package and the native module with `mpyml deploy` (as tests/test_qemu_port.py does), then,
each in a fresh interpreter (every mpremote session soft-resets), prints gc.mem_free() before and after
(gc.collect() first each time):

  package    `import mpyml`
  c          `import mpyml_engine` (the natmod: bare-metal ports load its code into the GC heap)
  viper      `import mpyml` then `from mpyml import viper_engine` (the viper share, package excluded)
  spec       then `from mpyml import _spec` (the op tables viper's validation imports for every model)
  families   then every viper op family beyond core (mpyml.viper_<family>, imported by prepare for the ops
             a model uses)

Also prints the .mpy sizes involved and the bytes `mpyml deploy` writes per arch (package, natmod).

    .venv/bin/python tools/measure_engine_ram.py [--cpu m4,m0] [--json]

About 1 min per CPU (mostly the deploy over the emulated UART).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from mpyml import board as vboard  # noqa: E402
from mpyml import deploy as mdeploy  # noqa: E402
from mpyml import paths, qemu_board  # noqa: E402

MPREMOTE = [sys.executable, "-m", "mpremote"]
MPYML = [sys.executable, "-m", "mpyml.cli"]

_PRE = "import gc\ngc.collect()\nf0 = gc.mem_free()\n"
_POST = "gc.collect()\nf1 = gc.mem_free()\nprint('MEAS', f0, f0 - f1)\n"
SCRIPTS = {
    "boot": "import gc\ngc.collect()\nprint('MEAS', gc.mem_free(), gc.mem_free() + gc.mem_alloc())\n",
    "package": _PRE + "import mpyml\n" + _POST,
    "c": _PRE + "import mpyml_engine\n" + _POST,
    "viper": "import gc\nimport mpyml\n" + _PRE + "from mpyml import viper_engine\n" + _POST,
    "spec": "import gc\nimport mpyml\nfrom mpyml import viper_engine\n" + _PRE + "from mpyml import _spec\n" + _POST,
    "families": "import gc\nimport mpyml\nfrom mpyml import viper_engine\nfrom mpyml import _spec\n" + _PRE
                + "for n in _spec.FAMILIES[1:]:\n    __import__('mpyml.viper_' + n)\n" + _POST,
}


def _mpremote(tty: str, *args: str, timeout: float = 120) -> str:
    r = subprocess.run([*MPREMOTE, "connect", tty, *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"mpremote {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def _measure(tty: str, script: str) -> tuple[int, int]:
    out = _mpremote(tty, "exec", script)
    m = re.search(r"MEAS (\d+) (-?\d+)", out)
    if not m:
        raise RuntimeError(f"no measurement in {out!r}")
    return int(m.group(1)), int(m.group(2))


def measure_cpu(cpu: str, tmp: Path) -> dict[str, int]:
    """Boot `cpu` at its default heap, deploy, measure; the board is stopped afterwards."""
    rundir = tmp / f"run-{cpu}"
    st = qemu_board.start(rundir, tmp / f"board-{cpu}", cpu)
    try:
        tty = st["tty"]
        r = subprocess.run([*MPYML, "deploy", "--port", tty], capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"mpyml deploy on {cpu} failed:\n{r.stdout}\n{r.stderr}")
        res: dict[str, int] = {}
        res["heap_free"], res["heap_total"] = _measure(tty, SCRIPTS["boot"])
        for k in ("package", "c", "viper", "spec", "families"):
            res[k] = _measure(tty, SCRIPTS[k])[1]
        return res
    finally:
        s = json.loads((rundir / "state.json").read_text())
        vboard.stop_state(vboard.BoardState(s["pid"], s["tty"], s["dir"], s["heapsize"], None, rundir))


def deploy_bytes(arch: str) -> dict[str, int]:
    """Bytes `mpyml deploy` writes for `arch` without models: the compiled package (of it the viper modules)
    and the native module."""
    with tempfile.TemporaryDirectory(prefix="mpyml-measure-") as work:
        items, _ = mdeploy.compile_package(None, arch, False, Path(work))
    pkg = sum(len(i.data) for i in items)
    viper = sum(len(i.data) for i in items if Path(i.dest).name.startswith("viper_"))
    nat = paths.natmod_path(arch)
    return {"package": pkg, "package_viper": viper, "natmod": nat.stat().st_size if nat.is_file() else 0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", default="m4,m0", help="comma-separated QEMU CPUs (m0, m3, m4, m7); default m4,m0")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    cpus = [c.strip() for c in args.cpu.split(",") if c.strip()]
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="mpyml-measure-") as t:
        for cpu in cpus:
            arch = qemu_board.ARCH[cpu]
            figures[cpu] = {"arch": arch, **measure_cpu(cpu, Path(t))}
    sizes = {a: deploy_bytes(a) for a in ("armv6m", "armv7m", "armv7emsp", "armv7emdp", "xtensawin")}
    if args.json:
        print(json.dumps({"boards": figures, "deploy": sizes}, indent=1))
        return 0
    for cpu, f in figures.items():
        print(f"{cpu} ({f['arch']}): heap {f['heap_total']:,} B, free after boot {f['heap_free']:,} B; "
              f"import mpyml {f['package']:,} B; import mpyml_engine {f['c']:,} B "
              f"(.mpy {paths.natmod_path(f['arch']).stat().st_size:,} B); viper_engine {f['viper']:,} B "
              f"+ _spec {f['spec']:,} B (+ the other op families {f['families']:,} B)")
    for a, s in sizes.items():
        print(f"deploy {a}: package {s['package']:,} B (viper modules {s['package_viper']:,} B), "
              f"native module {s['natmod']:,} B")
    m4, m0 = figures.get("m4"), figures.get("m0")
    print("\n# host/mpyml/fit_boards.py")
    if m4:
        print(f"MPYML_PACKAGE_RAM = {m4['package']:_}")
        print(f"C_ENGINE_M4_RAM = {m4['c']:_}")
    if m0:
        print(f"C_ENGINE_M0_RAM = {m0['c']:_}")
    if m4:
        print(f"VIPER_CORE_M4_RAM = {m4['viper']:_}")
        print(f"SPEC_RAM = {m4['spec']:_}")
        print(f"VIPER_FAMILIES_M4_RAM = {m4['families']:_}")
    vx, v4 = (ROOT / "build" / "viper" / a / "mpyml" / "viper_engine.mpy" for a in ("xtensawin", "armv7emsp"))
    if vx.is_file() and v4.is_file():
        print(f"# viper_engine.mpy: xtensawin {vx.stat().st_size:,} B / armv7emsp {v4.stat().st_size:,} B")
    d = {a: sizes[a] for a in ("armv6m", "armv7emsp", "xtensawin")}
    print("DEPLOY_BYTES = {" + ", ".join(f'"{a}": {s["package"]:_}' + (f" + {s['natmod']:_}" if s["natmod"] else "")
                                         for a, s in d.items()) + "}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
