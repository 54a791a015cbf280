"""`mpyml bench`: mpyml on the MicroPython unix port vs tflite-micro, model by model, in one run.

For every MLPerf Tiny reference model in ../shared/models/mlperf_tiny (unless --no-mlperf) plus any .tflite
given on the command line:

- time:  median microseconds per inference. mpyml: measured on the device with `time.ticks_us` around each
         invoke (mpyml.unix_port.run_model); tflite-micro: `time.perf_counter_ns` around `invoke()` (its
         reference kernels, in this CPython process). Same random int8 input, same repeat count.
- arena: mpyml's planned arena (from the .mpk) vs tflite-micro's non-persistent arena ("head", from its
         RecordingMicroAllocator): both are the activation memory laid out by a planner.
- patch: the smallest arena `mpyml pack --max-ram` reaches (patch-based inference or the in-place kernels,
         whichever is smaller; the default arena when neither is) and the MAC overhead of its recomputation;
         that plan is run once on the first engine and must be bit-exact too.
- size:  packed .mpk bytes vs .tflite bytes.
- exact: whether mpyml's outputs equal tflite-micro's bit for bit on that input.

Ratios are mpyml / tflite-micro: below 1 means mpyml is smaller or faster. Each --engine gets its own
group of time columns (default: the C engine), so engines can be compared side by side.
This is a benchmark that reports; it asserts nothing about speed.

--cortex-m: the Cortex-M speed report instead (mpyml.bench_cortex_m). For the MLPerf Tiny models and
person_detect in ../shared (and/or the models given) on each --cpu (default m0,m4,m7): the exact QEMU
instruction count per invoke (mpyml.baremetal.count_instructions), instr/MAC, estimated cycles/MAC and
MAC/cycle from the CPU's cycle model (m0: Cortex-M0+/RP2040, m4, m7: dual-issue; see README "Cortex-M
speed"), the tflite-micro + CMSIS-NN instr/MAC anchor, the ratio to it, the target and whether it is met.
Needs arm-none-eabi-gcc, qemu-system-arm and make; without models to count it exits 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import paths

__all__ = [
    "BenchRow", "EngineResult", "add_commands", "bench_model", "default_models", "format_table", "main",
]

DEFAULT_REPEAT = 50
INPUT_SEED = 0


@dataclass
class EngineResult:
    """mpyml timing (and correctness) for one engine on one model."""

    engine: str | None
    median_us: float | None = None
    time_ratio: float | None = None      # mpyml / tflite-micro
    exact: bool | None = None            # outputs bit-exact with tflite-micro
    error: str | None = None


@dataclass
class BenchRow:
    """All measurements for one model."""

    model: str
    path: str
    tflite_bytes: int
    mpk_bytes: int | None = None
    size_ratio: float | None = None
    macs: int | None = None
    tflm_head_bytes: int | None = None
    tflm_tail_bytes: int | None = None
    mpyml_arena_bytes: int | None = None
    arena_ratio: float | None = None
    patch_arena_bytes: int | None = None     # arena with patching at its best --max-ram
    patch_mac_overhead: float | None = None  # MACs of that plan / MACs of the default plan
    patch_exact: bool | None = None          # that plan bit-exact with tflite-micro (first engine)
    tflm_us: float | None = None
    engines: list[EngineResult] = field(default_factory=list)
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or any(e.error is not None for e in self.engines)


def engine_label(engine: str | None) -> str:
    return "mpyml" if engine is None else f"mpyml:{engine}"


def default_models() -> list[Path]:
    """The MLPerf Tiny reference models in ../shared (empty if ../shared is absent)."""
    d = paths.SHARED / "models" / "mlperf_tiny"
    return sorted(d.glob("*.tflite")) if d.is_dir() else []


def _ratio(a: float | int | None, b: float | int | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return float(a) / float(b)


def _err(e: BaseException) -> str:
    """One line: the exception's first line, plus the last line when it is multi-line (e.g. the device's
    traceback after "micropython failed")."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    if len(lines) > 1:
        text += f" ... {lines[-1]}"
    return f"{type(e).__name__}: {text}".rstrip(": ")


def _random_inputs(details: Sequence[Any]) -> list[np.ndarray]:
    rng = np.random.default_rng(INPUT_SEED)
    return [rng.integers(-128, 128, size=d.shape, dtype=np.int8) for d in details]


def bench_model(path: Path, repeat: int, engines: Sequence[str | None]) -> BenchRow:
    """Pack, inspect and time one .tflite on tflite-micro and on the unix port (one session per engine)."""
    import mpyml
    from mpyml import unix_port

    from .tflm import TflmRunner

    tflite = path.read_bytes()
    row = BenchRow(model=path.stem, path=str(path), tflite_bytes=len(tflite))

    # tflite-micro: the reference outputs, head arena and time.
    try:
        runner = TflmRunner(tflite)
        inputs = _random_inputs(runner.input_details())
        ref = runner.run(inputs)
        usage = runner.arena_usage()
        row.tflm_head_bytes, row.tflm_tail_bytes = usage.head, usage.tail
        row.tflm_us = runner.time_invoke_us(repeat, inputs)
    except Exception as e:  # report and carry on with the next model
        row.error = f"tflite-micro: {_err(e)}"
        return row

    # mpyml: pack and inspect.
    try:
        mpk = mpyml.pack(tflite)
        info = mpyml.inspect_model(mpk)
    except Exception as e:
        row.error = f"pack: {_err(e)}"
        return row
    row.mpk_bytes = int(info.get("file_bytes", len(mpk)))
    row.size_ratio = _ratio(row.mpk_bytes, row.tflite_bytes)
    row.mpyml_arena_bytes = int(info["arena_bytes"])
    row.arena_ratio = _ratio(row.mpyml_arena_bytes, row.tflm_head_bytes)
    layers = info.get("layers") or []
    if layers and all("macs" in layer for layer in layers):
        row.macs = int(sum(int(layer["macs"]) for layer in layers))

    # patching at its best: the smallest arena any patch plan reaches, run once
    try:
        from .packer import pack_model, serialize
        from .patch import smallest
        base = pack_model(tflite)
        best = smallest(base)
        small = pack_model(tflite, slow_in_place=True)      # the in-place kernels, slower depthwise included
        if small.arena_size < best.arena_size:
            best = small
        row.patch_arena_bytes = int(best.arena_size)
        row.patch_mac_overhead = _ratio(sum(op.macs for op in best.ops), sum(op.macs for op in base.ops))
        if best is not base:
            got = unix_port.run_model(serialize(best), inputs, repeat=1, engine=engines[0] if engines else None)
            row.patch_exact = all(np.array_equal(np.asarray(o).ravel(), r.ravel())
                                  for o, r in zip(got.outputs, ref, strict=True))
            if not row.patch_exact:
                row.error = f"patch plan (arena {best.arena_size} B): outputs differ from tflite-micro"
    except Exception as e:
        row.error = f"patch plan: {_err(e)}"
        return row

    # mpyml on the unix port, per engine: one session for the outputs (a single invoke: repeated invokes
    # may legitimately overwrite the input buffer, which the arena planner reuses once it is consumed),
    # one for the timing.
    for engine in engines:
        res = EngineResult(engine=engine)
        try:
            once = unix_port.run_model(mpk, inputs, repeat=1, engine=engine)
            if repeat > 1:
                timed = unix_port.run_model(mpk, inputs, repeat=repeat, engine=engine)
                res.median_us = None if timed.median_us is None else float(timed.median_us)
            res.time_ratio = _ratio(res.median_us, row.tflm_us)
            outs = [np.asarray(o).ravel() for o in once.outputs]
            res.exact = len(outs) == len(ref) and all(
                np.array_equal(o, r.ravel()) for o, r in zip(outs, ref, strict=True)
            )
        except Exception as e:
            res.error = _err(e)
        row.engines.append(res)
    return row


# ---------------------------------------------------------------------------------------------- output
def _fmt_int(v: int | None) -> str:
    return "-" if v is None else str(v)


def _fmt_us(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def _fmt_ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _fmt_exact(v: bool | None) -> str:
    return "-" if v is None else ("yes" if v else "NO")


def _geomean(vals: Sequence[float | None]) -> float | None:
    xs = [v for v in vals if v is not None and v > 0]
    return math.exp(sum(math.log(v) for v in xs) / len(xs)) if xs else None


def table_columns(engines: Sequence[str | None]) -> list[str]:
    """Column headers: fixed size/arena/tflite-micro columns, then a time group per engine."""
    cols = [
        "model", "tflite B", "mpk B", "size x", "tflm head B", "mpyml arena B", "arena x", "patch arena B", "MAC x",
        "tflm us",
    ]
    for engine in engines:
        label = engine_label(engine)
        if len(engines) == 1:
            cols += [f"{label} us", "time x", "exact"]
        else:
            cols += [f"{label} us", f"{label} x", f"{label} exact"]
    return cols


def _cells(row: BenchRow, engines: Sequence[str | None]) -> list[str]:
    cells = [
        row.model, _fmt_int(row.tflite_bytes), _fmt_int(row.mpk_bytes), _fmt_ratio(row.size_ratio),
        _fmt_int(row.tflm_head_bytes), _fmt_int(row.mpyml_arena_bytes), _fmt_ratio(row.arena_ratio),
        _fmt_int(row.patch_arena_bytes), _fmt_ratio(row.patch_mac_overhead), _fmt_us(row.tflm_us),
    ]
    by_engine = {e.engine: e for e in row.engines}
    for engine in engines:
        r = by_engine.get(engine)
        if r is None or r.error is not None:
            cells += ["error" if r is not None else "-", "-", "-"]
        else:
            cells += [_fmt_us(r.median_us), _fmt_ratio(r.time_ratio), _fmt_exact(r.exact)]
    return cells


def engine_ratios(rows: Sequence[BenchRow], engines: Sequence[str | None]) -> list[str]:
    """With several engines: each later engine's time over each earlier one's, per model and geomean (same run)."""
    out = []
    for j, slow in enumerate(engines):
        for fast in engines[:j]:
            cells, ratios = [], []
            for r in rows:
                by = {e.engine: e for e in r.engines}
                a, b = by.get(slow), by.get(fast)
                if a and b and a.median_us and b.median_us:
                    ratios.append(a.median_us / b.median_us)
                    cells.append(f"{r.model} {ratios[-1]:.2f}")
            if ratios:
                out.append(f"{engine_label(slow)} / {engine_label(fast)} time: " + ", ".join(cells)
                           + f"; geomean {_geomean(ratios):.2f}")
    return out


def format_table(rows: Sequence[BenchRow], engines: Sequence[str | None], repeat: int) -> str:
    header = table_columns(engines)
    body = [_cells(r, engines) for r in rows]
    if len(rows) > 1:
        gm = ["geomean", "", "", _fmt_ratio(_geomean([r.size_ratio for r in rows])), "", "",
              _fmt_ratio(_geomean([r.arena_ratio for r in rows])), "", "", ""]
        for engine in engines:
            ratios = [e.time_ratio for r in rows for e in r.engines if e.engine == engine]
            gm += ["", _fmt_ratio(_geomean(ratios)), ""]
        body.append(gm)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        padded = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs]
        return "  ".join(padded).rstrip()

    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(c) for c in body[: len(rows)]]
    if len(body) > len(rows):
        out += ["  ".join("-" * w for w in widths), line(body[-1])]
    out.append("")
    out += [
        f"us: median per-inference microseconds over {repeat} invokes, same random int8 input "
        "(mpyml: MicroPython unix port, time.ticks_us;",
        "    tflm: tflite-micro reference kernels in CPython, perf_counter_ns around invoke()).",
        "x: mpyml / tflite-micro (< 1: mpyml smaller or faster). arena: mpyml's planned arena vs "
        "tflite-micro's non-persistent head.",
        "size: .mpk vs .tflite bytes. exact: outputs bit-identical to tflite-micro's.",
        "patch arena: the smallest arena `mpyml pack --max-ram` reaches (patch-based inference or in-place "
        "kernels, bit-exact on the first engine); MAC x: its recomputation overhead.",
        *engine_ratios(rows, engines),
    ]
    for r in rows:
        if r.error:
            out.append(f"{r.model}: {r.error}")
        for e in r.engines:
            if e.error:
                out.append(f"{r.model} [{engine_label(e.engine)}]: {e.error}")
    return "\n".join(out)


def to_json(rows: Sequence[BenchRow], engines: Sequence[str | None], repeat: int) -> dict[str, Any]:
    return {
        "repeat": repeat,
        "engines": list(engines),
        "columns": table_columns(engines),
        "models": [asdict(r) for r in rows],
    }


# ---------------------------------------------------------------------------------------------- CLI
def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `bench` on the `mpyml` command's subparsers."""
    p = sub.add_parser(
        "bench",
        help="benchmark mpyml (MicroPython unix port) against tflite-micro: time, arena, size",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure_parser(p)


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="*", type=Path, metavar="MODEL.tflite",
                   help="extra int8 .tflite models, benchmarked after the MLPerf Tiny ones")
    p.add_argument("--repeat", type=int, default=DEFAULT_REPEAT,
                   help=f"invokes per model and runtime; the median is reported (default {DEFAULT_REPEAT})")
    p.add_argument("--engine", action="append", default=None, metavar="NAME",
                   help="mpyml engine to run: c, viper, or c-portable (the C engine built without its "
                        "SIMD kernels, `make bench-viper` builds it); repeat the option for one column group "
                        "per engine (default: the C engine); with several, each engine's time over the others'")
    p.add_argument("--no-mlperf", action="store_true",
                   help="skip the MLPerf Tiny models in ../shared (and person_detect with --cortex-m); "
                        "only the models given")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    p.add_argument("--cortex-m", action="store_true",
                   help="the Cortex-M speed report instead: exact QEMU instruction counts, instr/MAC, estimated "
                        "cycles/MAC and MAC/cycle per CPU, next to the tflite-micro + CMSIS-NN anchors and targets")
    p.add_argument("--cpu", default="m0,m4,m7", metavar="LIST",
                   help="--cortex-m: comma list of m0, m4, m7 (default m0,m4,m7)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run `mpyml bench`; returns the exit status (1 if any model failed to run)."""
    if getattr(args, "cortex_m", False):
        from . import bench_cortex_m
        return bench_cortex_m.main(args)
    if args.repeat < 1:
        print("mpyml bench: --repeat must be >= 1", file=sys.stderr)
        return 2
    engines: list[str | None] = list(args.engine) if args.engine else [None]
    models: list[Path] = [] if args.no_mlperf else default_models()
    if not args.no_mlperf and not models:
        print(f"mpyml bench: no MLPerf Tiny models under {paths.SHARED / 'models' / 'mlperf_tiny'} "
              "(../shared is only in CI and dev checkouts); benchmarking only the models given",
              file=sys.stderr)
    for m in args.models:
        if not m.is_file():
            print(f"mpyml bench: {m}: no such file", file=sys.stderr)
            return 2
        models.append(m)
    if not models:
        print("mpyml bench: no models to benchmark", file=sys.stderr)
        return 2

    rows: list[BenchRow] = []
    for m in models:
        t0 = time.monotonic()
        print(f"bench: {m.name} ...", end="", file=sys.stderr, flush=True)
        row = bench_model(m, args.repeat, engines)
        status = " FAILED" if row.failed else ""
        print(f" {time.monotonic() - t0:.1f} s{status}", file=sys.stderr, flush=True)
        rows.append(row)

    if args.json:
        print(json.dumps(to_json(rows, engines, args.repeat), indent=2))
    else:
        print(format_table(rows, engines, args.repeat))
    return 1 if any(r.failed for r in rows) else 0


def _standalone(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mpyml.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    configure_parser(p)
    return main(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(_standalone())
