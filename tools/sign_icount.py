"""Exact instruction counts of the Ed25519 verifier (native_modules/engine/sign) on Cortex-M under QEMU.

    .venv/bin/python tools/sign_icount.py [--cpu m4] [--sizes 0,256000]

Links native_modules/baremetal/sign_main.c with the bare-metal harness (startup.c, semihost.c, blobs.S; see
host/mpyml/baremetal.py) and a blob [public key][signature][message] signed here with `cryptography`, runs it
under QEMU with the instruction-counting plugin and prints instructions (and, on m4, the estimated cycles) of one
verify per message size. Needs arm-none-eabi-gcc + newlib and qemu-system-arm (`make setup` installs them).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "host"))

from mpyml import baremetal as bm  # noqa: E402
from mpyml import sign as sg  # noqa: E402

BM_DIR = REPO / "native_modules" / "baremetal"
SIGN_SRC = REPO / "native_modules" / "engine" / "sign" / "ed25519_verify.c"
CPU_FLAGS = {"m0": ["-mthumb", "-mcpu=cortex-m0"], "m3": ["-mthumb", "-mcpu=cortex-m3"],
             "m4": ["-mthumb", "-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"],
             "m7": ["-mthumb", "-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard"]}
# (linker script, QEMU machine); the M0 uses the enlarged micro:bit so a 250 KB message fits its flash
BOARD = {"m0": ("microbit_xl.ld", ["-M", "microbit", "-global", "nrf51-soc.flash-size=1048576",
                                   "-global", "nrf51-soc.sram-size=262144"]),
         "m3": ("mps2.ld", ["-M", "mps2-an385"]), "m4": ("mps2.ld", ["-M", "mps2-an386"]),
         "m7": ("mps2.ld", ["-M", "mps2-an500"])}


def _run(cmd: list[str], timeout: float = 600) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise bm.BaremetalError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def count(cpu: str, message: bytes) -> dict:
    """{'instructions', 'est_cycles' (m4), 'stack_used', 'ok'} of one verify of message on cpu."""
    missing = bm.missing_tools(count=True)
    if missing:
        raise bm.BaremetalError(missing)
    bm.build_lib(cpu)
    plugin = bm.build_plugin()
    harness = bm.BUILD / cpu / "harness"
    cc = f"{bm.CROSS}gcc"
    flags = [*CPU_FLAGS[cpu], "-std=c99", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-fno-strict-aliasing",
             "-ffunction-sections", "-fdata-sections"]
    k = sg.generate()
    sig = k.sign(message)  # type: ignore[attr-defined]
    ld, machine = BOARD[cpu]
    with tempfile.TemporaryDirectory(prefix="mpyml-sign-bm-") as t:
        d = Path(t)
        (d / "blob.bin").write_bytes(sg.public_bytes(k) + sig + message)
        (d / "empty.bin").write_bytes(b"")
        objs = []
        for src in (BM_DIR / "sign_main.c", SIGN_SRC):
            o = d / (src.stem + ".o")
            _run([cc, *flags, f"-I{REPO / 'native_modules' / 'engine'}", f"-I{BM_DIR}", "-c", "-o", str(o), str(src)])
            objs.append(str(o))
        _run([cc, *CPU_FLAGS[cpu], "-c", "-x", "assembler-with-cpp", f"-DMODEL_FILE=\"{d / 'blob.bin'}\"",
              f"-DINPUT_FILE=\"{d / 'empty.bin'}\"", "-o", str(d / "blobs.o"), str(BM_DIR / "blobs.S")])
        elf = d / "sign.elf"
        _run([cc, *CPU_FLAGS[cpu], "-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections",
              "-Wl,--no-warn-rwx-segments", f"-L{BM_DIR}", "-T", ld, "-Wl,--defsym=__arena_size=16",
              "-Wl,--defsym=__min_stack=8192", "-o", str(elf), *objs, str(d / "blobs.o"),
              str(harness / "startup.o"), str(harness / "semihost.o")])
        syms = bm._symbols(elf)
        cmd = [bm.QEMU, *machine, "-nodefaults", "-display", "none", "-semihosting-config",
               "enable=on,target=native,chardev=out", "-chardev", f"file,id=out,path={d / 'console.txt'}",
               "-kernel", str(elf), "-plugin", f"{plugin},begin={syms['bm_mark_begin'][0]:#x},"
               f"end={syms['bm_mark_end'][0]:#x},out={d / 'count.txt'}"]
        subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        console = (d / "console.txt").read_text() if (d / "console.txt").exists() else ""
        if "END status=0" not in console:
            raise bm.BaremetalError(f"{cpu}: verify failed or the harness did not finish:\n{console}")
        windows, profile = bm._parse_plugin(d / "count.txt")
    stack = next(int(w.split("=")[1]) for ln in console.splitlines() if ln.startswith("STACK")
                 for w in ln.split() if w.startswith("used="))
    return {"cpu": cpu, "message": len(message), "instructions": windows[0], "stack_used": stack,
            "est_cycles": bm._estimate_cycles_m4(profile) if cpu == "m4" else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", default="m4", help="m0, m3, m4, m7 or a comma list")
    ap.add_argument("--sizes", default="0,256000", help="message sizes in bytes, comma separated")
    a = ap.parse_args(argv)
    try:
        for cpu in a.cpu.split(","):
            if cpu not in CPU_FLAGS:
                print(f"sign_icount: unknown cpu {cpu!r} (m0, m3, m4, m7)", file=sys.stderr)
                return 2
            for n in (int(s) for s in a.sizes.split(",")):
                r = count(cpu, os.urandom(n))
                cyc = f", ~{r['est_cycles'] / 1e6:.1f} M cycles (est.)" if r["est_cycles"] else ""
                print(f"{cpu}: verify of {n:,} B: {r['instructions']:,} instructions{cyc}, stack {r['stack_used']} B",
                      flush=True)
    except bm.BaremetalError as e:
        print(f"sign_icount: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
