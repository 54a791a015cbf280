"""Run packed models on the MicroPython unix port through the native module (not in CPython).

Owns the host side of `mpyml run`: staging the model and inputs in a temp dir, starting
`micropython` with the device package and the x64 native module on its path, collecting outputs.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import paths
from .mpk import MpkFile

RUNNER = Path(__file__).parent / "device_scripts" / "run_model.py"


@dataclass
class RunResult:
    outputs: list[np.ndarray]            # raw outputs (the output's dtype) of the last (or only) sample
    batch: list[list[np.ndarray]]        # outputs of every sample
    median_us: float | None              # median per-invoke µs (time.ticks_us on the device)
    arena_bytes: int
    heap_delta: int                      # max heap bytes lost across the invokes of one sample


def micropython_env(arch: str = "x64", extra_paths: list[str] | None = None) -> dict[str, str]:
    """Environment for the unix port: device package + built native module on MICROPYPATH."""
    env = dict(os.environ)
    p = [*(extra_paths or []), str(paths.DEVICE_DIR), str(paths.natmod_path(arch).parent), ".frozen"]
    env["MICROPYPATH"] = ":".join(p)
    return env


# engine names the host accepts beyond the device's ('c', 'viper'): the device engine and the natmod build it loads
HOST_ENGINES = {"c-portable": ("c", "x64-portable")}   # the C engine without SIMD kernels (`make bench-viper`)


def device_engine(engine: str | None) -> tuple[str | None, str]:
    """(engine name for mpyml.load, natmod build directory) of an engine name given on the host."""
    if engine in HOST_ENGINES:
        name, arch = HOST_ENGINES[engine]
        if not paths.natmod_path(arch).exists():
            raise FileNotFoundError(f"engine {engine!r} needs {paths.natmod_path(arch)}: run `make bench-viper`")
        return name, arch
    return engine, "x64"


def run_micropython(args: list[str], heapsize: str = "16M", timeout: float = 600, cwd: str | None = None,
                    extra_paths: list[str] | None = None, arch: str = "x64") -> subprocess.CompletedProcess:
    cmd = [paths.micropython_exe(), "-X", f"heapsize={heapsize}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=micropython_env(
        arch=arch, extra_paths=extra_paths), cwd=cwd)


def input_bytes(info: MpkFile, inputs: Sequence[Sequence[np.ndarray]]) -> bytes:
    """The raw inputs of every sample (each of its tensor's dtype: int8, uint8 or float32 values, not
    quantized), concatenated in tensor order (checked against the model)."""
    ins = info.input_tensors()
    out = bytearray()
    for sample in inputs:
        if len(sample) != len(ins):
            raise ValueError(f"model has {len(ins)} inputs, got {len(sample)}")
        for arr, t in zip(sample, ins, strict=True):
            a = np.asarray(arr)
            if a.dtype != t.np_dtype:
                what = "raw quantized" if t.dtype in ("int8", "uint8") else "raw values"
                raise ValueError(f"input {t.index} must be {t.dtype} ({what}), got {a.dtype}")
            if a.size != t.elements:
                raise ValueError(f"input {t.index} needs {t.elements} values {t.shape}, got {a.size}")
            out += np.ascontiguousarray(a, dtype=t.np_dtype).tobytes()
    return bytes(out)


def run_batch(mpk: bytes, batch: list[list[np.ndarray]], repeat: int = 1, engine: str | None = None,
              heapsize: str = "16M", timeout: float = 600) -> RunResult:
    """Run every sample of `batch` (a list of input-tensor lists) in one device session."""
    info = MpkFile(mpk)
    outs = info.output_tensors()
    engine, arch = device_engine(engine)
    with tempfile.TemporaryDirectory(prefix="mpyml-run-") as d:
        dd = Path(d)
        (dd / "model.mpk").write_bytes(mpk)
        (dd / "in.bin").write_bytes(input_bytes(info, batch))
        r = run_micropython([str(RUNNER), str(dd / "model.mpk"), str(dd / "in.bin"), str(dd / "out.bin"),
                             str(len(batch)), str(repeat), engine or "-"], heapsize=heapsize, timeout=timeout,
                             arch=arch)
        line = next((ln for ln in r.stdout.splitlines() if ln.startswith("MPYML_RESULT")), None)
        if r.returncode != 0 or line is None:
            raise RuntimeError(f"micropython failed (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")
        raw = (dd / "out.bin").read_bytes()
    results: list[list[np.ndarray]] = []
    pos = 0
    for _ in batch:
        sample = []
        for t in outs:
            sample.append(np.frombuffer(raw[pos:pos + t.nbytes], dtype=t.np_dtype).reshape(t.shape).copy())
            pos += t.nbytes
        results.append(sample)
    _, med, arena, heap = line.split()
    return RunResult(results[-1] if results else [], results, float(med) if repeat > 1 else None,
                     int(arena), int(heap))


def run_model(mpk: bytes, inputs: list[np.ndarray], repeat: int = 1, engine: str | None = None,
              heapsize: str = "16M") -> RunResult:
    """Run one set of inputs (arrays of each input's dtype: int8 / uint8 raw quantized, float32 values; tensor
    order); with repeat > 1 also time the invoke."""
    return run_batch(mpk, [inputs], repeat=repeat, engine=engine, heapsize=heapsize)
