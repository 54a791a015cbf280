"""Host side of the device-side tests: run a tests/device script under the MicroPython unix port.

Imported by tests/test_sensors*.py, test_pre*.py and test_app_*.py (by path: tests/device is not a
package). The device package, tests/device, extra paths (model apps) and the built x64 native
module (when present) are on MICROPYPATH; parameters go in MPYML_TEST_ARGS as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from mpyml import paths

HERE = Path(__file__).resolve().parent


@dataclass
class DeviceRun:
    stdout: str
    stderr: str
    returncode: int
    values: dict = field(default_factory=dict)
    passed: list = field(default_factory=list)


def run_device(script: str | Path, args: dict | None = None, extra_paths: list[str | Path] | None = None,
               heapsize: str = "8M", timeout: float = 150, natmod: bool = True, check: bool = True,
               argv: list[str] | None = None, cwd: str | Path | None = None) -> DeviceRun:
    script = Path(script)
    if not script.is_absolute():
        script = HERE / script
    p = [str(x) for x in (extra_paths or [])] + [str(HERE), str(paths.DEVICE_DIR)]
    nm = natmod_dir()
    if natmod and nm is not None:
        p.append(str(nm))
    p.append(".frozen")
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(p)
    env["MPYML_TEST_ARGS"] = json.dumps(args or {})
    cmd = [paths.micropython_exe(), "-X", f"heapsize={heapsize}", str(script), *(argv or [])]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                       cwd=str(cwd) if cwd else None)
    run = DeviceRun(r.stdout, r.stderr, r.returncode)
    for line in r.stdout.splitlines():
        if line.startswith("VALUE "):
            _, key, val = line.split(" ", 2)
            run.values[key] = json.loads(val)
        elif line.startswith("PASS "):
            run.passed.append(line[5:])
    if check and r.returncode != 0:
        raise AssertionError(f"{script.name} failed under micropython (exit {r.returncode}):\n"
                             f"{r.stdout[-6000:]}\n{r.stderr[-3000:]}")
    if check and args and args.get("only"):
        # a selection must run exactly the tests it names: a typo selects nothing and must not pass
        if sorted(run.passed) != sorted(args["only"]):
            raise AssertionError(f"{script.name}: asked for {sorted(args['only'])}, passed {sorted(run.passed)}")
    return run


def natmod_dir() -> Path | None:
    """Directory of the x64 mpyml_engine.mpy (MPYML_NATMOD_DIR overrides build/natmod/x64)."""
    d = os.environ.get("MPYML_NATMOD_DIR")
    p = Path(d) if d else paths.natmod_path("x64").parent
    return p if (p / "mpyml_engine.mpy").exists() else None


def natmod_has(*names: str) -> bool:
    """True when the built native module exports all `names` (e.g. the pre_* kernels)."""
    d = natmod_dir()
    if d is None:
        return False
    code = f"import mpyml_engine as e\nprint(all(hasattr(e, n) for n in {list(names)!r}))"
    env = dict(os.environ, MICROPYPATH=str(d))
    r = subprocess.run([paths.micropython_exe(), "-c", code], capture_output=True, text=True, env=env, timeout=30)
    return r.stdout.strip() == "True"
