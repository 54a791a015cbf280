"""`mpyml bench --cortex-m`: the Cortex-M speed report. Owns the anchor/target table (ANCHORS, TARGETS) and the
report: per model and CPU (M0+, M4, M7), exact instructions per invoke under QEMU
(mpyml.baremetal.count_instructions), instructions/MAC, estimated cycles/MAC and MAC/cycle from the CPU's cycle
model (mpyml.baremetal.estimate_cycles), next to tflite-micro's numbers measured the same way, and the targets.

Counts are exact for today's build (build/baremetal/<cpu>, rebuilt incrementally); cycles are a pipeline
model (README "Cortex-M speed"), not a measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import paths

__all__ = ["ANCHORS", "CPUS", "MODEL_KEYS", "TARGETS", "CortexRow", "default_models", "format_table", "main",
           "measure", "model_key"]

CPUS = ("m0", "m4", "m7")

# Every anchor in one place. instr/MAC: tflite-micro at 90b983c2b built for the same bare-metal harness and
# counted with the same QEMU plugin (instructions inside the invoke window / the model's MACs).
ANCHORS: dict[str, Any] = {
    "provenance": "tflite-micro 90b983c2b, bare-metal, exact QEMU instruction counts measured like mpyml's "
                  "(mpyml.baremetal.count_instructions); instr/MAC = instructions per invoke / model MACs",
    "instr_per_mac": {
        ("m4", "TFLM + CMSIS-NN"): {"VWW": 3.22, "KWS": 2.90, "ResNet-8": 2.39, "person_detect": 3.20, "AD": 2.21},
        ("m4", "TFLM reference"): {"VWW": 13.42, "KWS": 16.23, "ResNet-8": 8.60, "person_detect": 13.40,
                                   "AD": 7.40},
        ("m0", "TFLM + CMSIS-NN"): {"VWW": 11.60, "KWS": 10.91, "ResNet-8": 7.80, "person_detect": 11.69,
                                    "AD": 6.68},
    },
    "cycles": {"note": "TFLM + CMSIS-NN VWW on the M4 cycle model: 31.0 M cycles (0.24 MAC/cycle)"},
    "hardware": {
        "provenance": "MLPerf Tiny inference results, Cortex-M4 (STM32L4R5 @ 120 MHz), MAC/cycle",
        "TFLM reference": (0.10, 0.22),
        "ST X-CUBE-AI 10.2": (0.46, 0.70),      # VWW 0.70
        "Plumerai": (0.45, 0.79),
    },
}
ANCHOR_ENGINE = "TFLM + CMSIS-NN"       # the column the report compares with

# Targets (issue 11): M4 <= 0.8 x CMSIS-NN instr/MAC and >= 0.30 estimated MAC/cycle; M0 <= 0.8 x CMSIS-NN.
TARGETS: dict[str, dict[str, Any]] = {
    "m4": {"instr_per_mac": {"VWW": 2.58, "KWS": 2.32, "ResNet-8": 1.91, "person_detect": 2.56, "AD": 1.77},
           "mac_per_cycle": 0.30},
    "m0": {"instr_per_mac": {"VWW": 9.28, "KWS": 8.73, "ResNet-8": 6.24, "person_detect": 9.35, "AD": 5.34},
           "mac_per_cycle": None},
}

# .tflite file stem -> anchor key
MODEL_KEYS = {"vww_96_int8": "VWW", "kws_ref_model": "KWS", "pretrainedResnet_quant": "ResNet-8",
              "person_detect": "person_detect", "ad01_int8": "AD"}


def model_key(path: Path | str) -> str | None:
    return MODEL_KEYS.get(Path(path).stem)


def default_models() -> list[Path]:
    """The MLPerf Tiny models and person_detect in ../shared (empty when ../shared is absent)."""
    from .bench import default_models as mlperf
    out = list(mlperf())
    person = paths.SHARED / "models" / "tflm" / "person_detect.tflite"
    if person.is_file():
        out.append(person)
    return out


@dataclass
class CortexRow:
    model: str
    cpu: str
    macs: int | None = None
    instructions: int | None = None         # per invoke, exact
    instr_per_mac: float | None = None
    cycles: float | None = None              # estimated, per invoke (None: no cycle model)
    cycles_per_mac: float | None = None
    mac_per_cycle: float | None = None
    anchor_instr_per_mac: float | None = None   # ANCHOR_ENGINE, same CPU
    ratio_vs_anchor: float | None = None         # instr/MAC / anchor instr/MAC
    target_instr_per_mac: float | None = None
    target_mac_per_cycle: float | None = None
    met: bool | None = None                      # every target of this row met (None: no target)
    error: str | None = None


def _targets(row: CortexRow, key: str | None) -> None:
    anchor = ANCHORS["instr_per_mac"].get((row.cpu, ANCHOR_ENGINE), {})
    row.anchor_instr_per_mac = anchor.get(key) if key else None
    if row.anchor_instr_per_mac and row.instr_per_mac is not None:
        row.ratio_vs_anchor = row.instr_per_mac / row.anchor_instr_per_mac
    t = TARGETS.get(row.cpu)
    if t is None or key is None or key not in t["instr_per_mac"]:
        return
    row.target_instr_per_mac = t["instr_per_mac"][key]
    row.target_mac_per_cycle = t["mac_per_cycle"]
    if row.instr_per_mac is None:
        return
    ok = row.instr_per_mac <= row.target_instr_per_mac
    if row.target_mac_per_cycle is not None:
        ok = ok and row.mac_per_cycle is not None and row.mac_per_cycle >= row.target_mac_per_cycle
    row.met = ok


def measure(path: Path, cpu: str, seed: int = 0) -> CortexRow:
    """Count one .tflite (or .mpk) on one CPU; a failure is reported in the row, not raised."""
    import argparse as _ap

    from . import baremetal
    row = CortexRow(model=Path(path).stem, cpu=cpu)
    try:
        mpk = baremetal._as_mpk(Path(path).read_bytes())
        board = baremetal._board(_ap.Namespace(board=None), cpu, mpk)   # m0: microbit-xl for big models
        c = baremetal.count_instructions(mpk, cpu=cpu, board=board, seed=seed, name=row.model)
    except Exception as e:  # report and carry on with the next model/CPU
        from .bench import _err
        row.error = _err(e)
        return row
    row.macs, row.instructions = c.macs, c.instructions
    row.instr_per_mac = c.instr_per_mac if c.macs else None
    row.cycles = c.cpu_cycles
    if c.cpu_cycles and c.macs:
        row.cycles_per_mac = c.cpu_cycles / c.macs
        row.mac_per_cycle = c.macs / c.cpu_cycles
    _targets(row, model_key(path))
    return row


# ---------------------------------------------------------------------------------------------- output
COLUMNS = ["model", "cpu", "MACs", "instr/invoke", "instr/MAC", "est. cyc/MAC", "MAC/cycle",
           f"{ANCHOR_ENGINE} instr/MAC", "x anchor", "target", "met"]


def _f(v: float | None, fmt: str = ".2f") -> str:
    return "-" if v is None else format(v, fmt)


def _target_text(r: CortexRow) -> str:
    if r.target_instr_per_mac is None:
        return "-"
    t = f"<={r.target_instr_per_mac:.2f}"
    if r.target_mac_per_cycle is not None:
        t += f", >={r.target_mac_per_cycle:.2f} MAC/cyc"
    return t


def _cells(r: CortexRow) -> list[str]:
    if r.error is not None:
        return [r.model, r.cpu, "error", *["-"] * (len(COLUMNS) - 3)]
    return [r.model, r.cpu, _f(r.macs, ","), _f(r.instructions, ","), _f(r.instr_per_mac), _f(r.cycles_per_mac),
            _f(r.mac_per_cycle, ".3f"), _f(r.anchor_instr_per_mac), _f(r.ratio_vs_anchor), _target_text(r),
            "-" if r.met is None else ("met" if r.met else "not met")]


def format_table(rows: Sequence[CortexRow]) -> str:
    body = [_cells(r) for r in rows]
    widths = [max(len(x[i]) for x in [COLUMNS, *body]) for i in range(len(COLUMNS))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    out = [line(COLUMNS), "  ".join("-" * w for w in widths), *(line(c) for c in body), ""]
    ref = ANCHORS["instr_per_mac"][("m4", "TFLM reference")]
    hw = ANCHORS["hardware"]
    out += [
        "instr/invoke: exact QEMU count of one invoke (random int8 input); instr/MAC = instr/invoke / MACs.",
        "est. cyc/MAC, MAC/cycle: the CPU's cycle model (mpyml.baremetal.estimate_cycles; m0 = Cortex-M0+/RP2040,"
        " m7 dual-issue; README \"Cortex-M speed\"), not a measurement.",
        f"anchor: {ANCHORS['provenance']}.",
        f"  x anchor: ratio vs the {ANCHOR_ENGINE} instr/MAC on the same CPU (< 1: fewer instructions).",
        "  M4 TFLM reference instr/MAC: " + ", ".join(f"{k} {v:.2f}" for k, v in ref.items()) + "; "
        + ANCHORS["cycles"]["note"] + ".",
        f"  {hw['provenance']}: " + ", ".join(f"{k} {lo:.2f}-{hi:.2f}" for k, v in hw.items()
                                              if k != "provenance" for lo, hi in [v]) + ".",
        "target: M4 <= 0.8 x CMSIS-NN instr/MAC and >= 0.30 MAC/cycle; M0 <= 0.8 x CMSIS-NN instr/MAC "
        "(no M7 anchor or target).",
    ]
    out += [f"{r.model} [{r.cpu}]: {r.error}" for r in rows if r.error]
    return "\n".join(out)


def to_json(rows: Sequence[CortexRow]) -> dict[str, Any]:
    anchors = dict(ANCHORS)
    anchors["instr_per_mac"] = [{"cpu": cpu, "engine": eng, "instr_per_mac": v}
                                for (cpu, eng), v in ANCHORS["instr_per_mac"].items()]
    return {"columns": COLUMNS, "anchors": anchors, "targets": TARGETS, "rows": [asdict(r) for r in rows]}


# ---------------------------------------------------------------------------------------------- CLI
def parse_cpus(text: str) -> list[str]:
    cpus = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in cpus if c not in CPUS]
    if bad or not cpus:
        raise ValueError(f"--cpu: expected a comma list of {', '.join(CPUS)}, got {text!r}")
    return cpus


def main(args: argparse.Namespace) -> int:
    """Run the report for `mpyml bench --cortex-m`; 0, 1 if a model failed to run, 2 for a usage error."""
    from .baremetal import missing_tools
    try:
        cpus = parse_cpus(args.cpu)
    except ValueError as e:
        print(f"mpyml bench: {e}", file=sys.stderr)
        return 2
    models: list[Path] = [] if getattr(args, "no_mlperf", False) else default_models()
    for m in args.models:
        if not Path(m).is_file():
            print(f"mpyml bench: {m}: no such file", file=sys.stderr)
            return 2
        models.append(Path(m))
    if not models:
        print(f"mpyml bench: no models: ../shared ({paths.SHARED}) is absent and no MODEL.tflite was given",
              file=sys.stderr)
        return 2
    why = missing_tools(count=True)
    if why:
        print(f"mpyml bench: cannot run bare-metal: {why}", file=sys.stderr)
        return 2
    rows = []
    for m in models:
        for cpu in cpus:
            print(f"bench --cortex-m: {m.name} {cpu} ...", file=sys.stderr, flush=True)
            rows.append(measure(m, cpu, seed=getattr(args, "seed", 0)))
    print(json.dumps(to_json(rows), indent=2) if args.json else format_table(rows))
    return 1 if any(r.error for r in rows) else 0
