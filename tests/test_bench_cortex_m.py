"""`mpyml bench --cortex-m` (host/mpyml/bench_cortex_m.py) and the M0+/M7 cycle models it uses
(mpyml.baremetal.estimate_cycles): the report on one tiny conv model on m0 and m4 (sane numbers, no timing
asserts), the anchor/target table, the error paths, and the cycle models on hand-made profiles.

The QEMU tests skip when arm-none-eabi-gcc / newlib / qemu-system-arm are missing locally (fail under CI=true).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import skip_or_fail
from mpyml import baremetal as bm
from mpyml import bench, bench_cortex_m, paths
from mpyml.baremetal import ProfileEntry
from tflite_build import conv2d_model

# (1, 8, 8, 3) input, 4 output channels, 3x3 SAME: 8 * 8 * 4 * 3 * 3 * 3 MACs
CONV_MACS = 8 * 8 * 4 * 3 * 3 * 3


def _parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="mpyml")
    sub = ap.add_subparsers(dest="command", required=True)
    bench.add_commands(sub)
    return ap.parse_args(["bench", *argv])


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    why = bm.missing_tools(count=True)
    if why:
        skip_or_fail(why)
    p = tmp_path_factory.mktemp("cm") / "tiny_conv.tflite"
    p.write_bytes(conv2d_model(np.random.default_rng(0)))
    return p


def test_args_and_help() -> None:
    args = _parse(["--cortex-m", "--cpu", "m0,m4", "x.tflite", "--json"])
    assert args.cortex_m and args.cpu == "m0,m4" and args.json and args.models == [Path("x.tflite")]
    assert _parse([]).cortex_m is False and _parse([]).cpu == "m0,m4,m7"
    assert "--cortex-m" in bench.__doc__ and "Cortex-M speed" in bench.__doc__
    with pytest.raises(ValueError):
        bench_cortex_m.parse_cpus("m0,m5")


def test_anchor_table() -> None:
    a = bench_cortex_m.ANCHORS["instr_per_mac"]
    cmsis4 = a[("m4", "TFLM + CMSIS-NN")]
    assert set(cmsis4) == set(bench_cortex_m.MODEL_KEYS.values())
    assert a[("m4", "TFLM reference")]["VWW"] == 13.42 and a[("m0", "TFLM + CMSIS-NN")]["AD"] == 6.68
    # the instr/MAC targets are 0.8 x the CMSIS-NN anchors
    for cpu in ("m4", "m0"):
        for k, t in bench_cortex_m.TARGETS[cpu]["instr_per_mac"].items():
            assert t == pytest.approx(0.8 * a[(cpu, "TFLM + CMSIS-NN")][k], abs=0.006), (cpu, k)
    assert bench_cortex_m.model_key("/x/vww_96_int8.tflite") == "VWW"
    assert bench_cortex_m.model_key("str_ww_ref_model.tflite") is None


def test_met_rule() -> None:
    r = bench_cortex_m.CortexRow("vww_96_int8", "m4", instr_per_mac=2.5, mac_per_cycle=0.31)
    bench_cortex_m._targets(r, "VWW")
    assert r.anchor_instr_per_mac == 3.22 and r.ratio_vs_anchor == pytest.approx(2.5 / 3.22) and r.met is True
    r = bench_cortex_m.CortexRow("vww_96_int8", "m4", instr_per_mac=2.5, mac_per_cycle=0.29)
    bench_cortex_m._targets(r, "VWW")
    assert r.met is False
    r = bench_cortex_m.CortexRow("vww_96_int8", "m7", instr_per_mac=2.5, mac_per_cycle=0.5)
    bench_cortex_m._targets(r, "VWW")
    assert r.met is None and r.anchor_instr_per_mac is None


def test_no_models_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(paths, "SHARED", tmp_path / "no-shared")
    assert bench.main(_parse(["--cortex-m"])) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and len(cap.err.strip().splitlines()) == 1 and "no models" in cap.err
    assert bench.main(_parse(["--cortex-m", str(tmp_path / "missing.tflite")])) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert bench.main(_parse(["--cortex-m", "--cpu", "m9", "--no-mlperf"])) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_report_tiny_conv_m0_m4(conv_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = bench.main(_parse(["--cortex-m", "--no-mlperf", "--cpu", "m0,m4", "--json", str(conv_model)]))
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    rows = {r["cpu"]: r for r in data["rows"]}
    assert set(rows) == {"m0", "m4"}
    for cpu, r in rows.items():
        assert r["error"] is None and r["model"] == "tiny_conv"
        assert r["macs"] == CONV_MACS, cpu
        assert r["instructions"] > 0 and r["instr_per_mac"] == pytest.approx(r["instructions"] / CONV_MACS)
        assert r["cycles"] is not None and r["cycles"] >= r["instructions"], cpu   # no CPI below 1 on m0/m4
        assert r["cycles_per_mac"] * r["mac_per_cycle"] == pytest.approx(1.0)
        assert r["anchor_instr_per_mac"] is None and r["met"] is None     # no anchor for this model
    assert rows["m0"]["instr_per_mac"] > rows["m4"]["instr_per_mac"]     # no SIMD on the M0
    assert {"cpu": "m4", "engine": "TFLM + CMSIS-NN"}.items() <= data["anchors"]["instr_per_mac"][0].items()

    # the table: one line per CPU with every column filled
    rc = bench.main(_parse(["--cortex-m", "--no-mlperf", "--cpu", "m0", str(conv_model)]))
    out = capsys.readouterr().out
    assert rc == 0
    header, rule, line = out.splitlines()[:3]
    assert header.split()[:3] == ["model", "cpu", "MACs"] and "MAC/cycle" in header and "met" in header
    cells = line.split()
    assert cells[:3] == ["tiny_conv", "m0", f"{CONV_MACS:,}"]
    assert "error" not in cells and float(cells[4]) > 0


# ---------------------------------------------------------------------------------------------- cycle models
def _prof(*insns: tuple[int, int, str], size: int = 2) -> list[ProfileEntry]:
    return [ProfileEntry(pc, n, size, d) for pc, n, d in insns]


def test_m0_cycle_model() -> None:
    # a 10-iteration loop: ldrb 2, muls 1, adds 1, str 2, subs 1, bne taken 9x (2) + not taken 1x (1)
    loop = _prof((0, 10, "ldrb r3, [r1, #0]"), (2, 10, "muls r3, r2, r3"), (4, 10, "adds r0, r0, r3"),
                 (6, 10, "str r0, [r4, #0]"), (8, 10, "subs r5, #1"), (10, 10, "bne #0x0"), (12, 1, "bx lr"))
    assert bm.estimate_cycles(loop, "m0") == 10 * (2 + 1 + 1 + 2 + 1) + 9 * 2 + 1 + 2
    assert bm.estimate_cycles(_prof((0, 1, "pop {r4, r5, pc}")), "m0") == 3 + 3
    assert bm.estimate_cycles(_prof((0, 1, "bl #0x100")), "m0") == 3
    assert bm.estimate_cycles(loop, "m3") is None


def test_m7_cycle_model_pairs_independent_instructions() -> None:
    # independent ALU + load pair (1 cycle); a dependent pair does not (2 cycles)
    indep = _prof((0, 100, "adds r0, r0, #1"), (2, 100, "ldr r2, [r3, #0]"), (4, 1, "bx lr"))
    dep = _prof((0, 100, "adds r0, r0, #1"), (2, 100, "adds r1, r0, #1"), (4, 1, "bx lr"))
    two_loads = _prof((0, 100, "ldr r0, [r4, #0]"), (2, 100, "ldr r1, [r4, #4]"), (4, 1, "bx lr"))
    ret = 1 + bm._M7_PENALTY
    assert bm.estimate_cycles(indep, "m7") == 100 + ret
    assert bm.estimate_cycles(dep, "m7") == 200 + ret
    assert bm.estimate_cycles(two_loads, "m7") == 200 + ret
    # load-use: the loaded register read by the next instruction costs one more
    use = _prof((0, 100, "ldr r0, [r4, #0]"), (2, 100, "adds r1, r0, #1"), (4, 1, "bx lr"))
    assert bm.estimate_cycles(use, "m7") == 300 + ret
    # a loop branch taken 9x and falling through once: one misprediction
    loop = _prof((0, 10, "subs r5, #1"), (2, 10, "bne #0x0"), (4, 1, "bx lr"))
    assert bm.estimate_cycles(loop, "m7") == 10 + 10 + bm._M7_PENALTY + ret
    # the M7 never needs more cycles than the M4 model on straight-line single-cycle code
    assert bm.estimate_cycles(indep, "m7") <= bm.estimate_cycles(indep, "m4")
