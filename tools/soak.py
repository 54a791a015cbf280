"""Soak run on the MicroPython unix port (`make soak`; not part of `make test`).

    .venv/bin/python tools/soak.py [--invokes 100000] [--seconds 600] [--model m.mpk] [--json out.json]

1. `--invokes` invokes of a packed model through the C engine (output checked bit-exact against the
   tflite-micro-equivalent first run, settled heap measured after each tenth),
2. the mpyml.app super-loop for `--seconds` with sensor fault injection (every 97th read fails, plus
   bursts that make the loop reinit the sensor), a watchdog and Threshold postprocessing.
Prints the counts (invokes/s, cycles, faults, reinits, watchdog feeds, heap) and exits 1 if any check fails
(heap not flat, a fault not counted, the watchdog not fed per cycle, outputs changing). The default model is
a 3x3 conv (16x16x8 -> 16x16x16) built by tests/tflite_build.py: no ../shared needed.
The device script is tests/device/mp_soak.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "host"))
sys.path.insert(0, str(REPO / "tests"))

from mpyml import pack, paths  # noqa: E402


def default_model() -> bytes:
    import numpy as np

    import tflite_build as tb
    return pack(tb.conv2d_model(np.random.default_rng(13), in_shape=(1, 16, 16, 8), out_ch=16))


def run(model: bytes, invokes: int, seconds: float, heapsize: str = "1M") -> dict:
    natmod = paths.natmod_path("x64")
    if not natmod.exists():
        raise SystemExit(f"soak: {natmod} missing: run `make natmods` first")
    with tempfile.TemporaryDirectory(prefix="mpyml-soak-") as d:
        mpk = Path(d) / "soak.mpk"
        mpk.write_bytes(model)
        env = dict(os.environ)
        env["MICROPYPATH"] = ":".join([str(REPO / "tests" / "device"), str(paths.DEVICE_DIR), str(natmod.parent),
                                       ".frozen"])
        env["MPYML_TEST_ARGS"] = json.dumps({"model": str(mpk), "invokes": invokes, "seconds": seconds})
        t0 = time.monotonic()
        r = subprocess.run([paths.micropython_exe(), "-X", f"heapsize={heapsize}",
                            str(REPO / "tests" / "device" / "mp_soak.py")], capture_output=True, text=True,
                           env=env, timeout=seconds + invokes / 500 + 300)
        wall = time.monotonic() - t0
    values: dict = {"returncode": r.returncode, "wall_seconds": round(wall, 2), "ok": False}
    for line in r.stdout.splitlines():
        if line.startswith("VALUE "):
            _, key, val = line.split(" ", 2)
            values[key] = json.loads(val)
    values["ok"] = r.returncode == 0 and "SOAK OK" in r.stdout
    if not values["ok"]:
        values["error"] = (r.stdout[-3000:] + r.stderr[-3000:]).strip()
    return values


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--invokes", type=int, default=int(os.environ.get("SOAK_INVOKES", 100_000)))
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    ap.add_argument("--model", help=".mpk or .tflite to soak (default: a conv model built here)")
    ap.add_argument("--json", help="also write the results to this file")
    a = ap.parse_args(argv)
    if a.invokes < 1 or a.seconds <= 0:
        print("soak: --invokes must be >= 1 and --seconds > 0", file=sys.stderr)
        return 2
    if a.model:
        data = Path(a.model).read_bytes()
        model = pack(data) if data[4:8] == b"TFL3" else data
    else:
        model = default_model()
    print(f"soak: {a.invokes:,} invokes, then the super-loop for {a.seconds:g} s (MicroPython unix port, C engine)",
          flush=True)
    v = run(model, a.invokes, a.seconds)
    for k, val in v.items():
        if k != "error":
            print(f"  {k:<32} {val}")
    if a.json:
        Path(a.json).write_text(json.dumps(v, indent=1))
    if not v["ok"]:
        print(f"soak: FAILED\n{v.get('error', '')}", file=sys.stderr)
        return 1
    print("soak: OK (heap flat, every fault counted, watchdog fed every completed cycle, outputs stable)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
