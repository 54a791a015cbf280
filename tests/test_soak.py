"""`make soak` (tools/soak.py + tests/device/mp_soak.py) exercised briefly: 3,000 invokes and a 3-second
super-loop with sensor fault injection on the unix port, heap flat, every fault counted. About 5 s.
The full run (100,000 invokes, 10 minutes) is `make soak` (SOAK_INVOKES, SOAK_SECONDS)."""

from __future__ import annotations

import sys
from pathlib import Path

from mpyml import paths

sys.path.insert(0, str(paths.REPO / "tools"))
import soak  # noqa: E402


def test_short_soak(natmod_x64: Path) -> None:
    v = soak.run(soak.default_model(), invokes=3000, seconds=3)
    assert v["ok"], v.get("error")
    assert v["invokes"] == 3000 and v["invoke_output_mismatches"] == 0
    assert max(v["invoke_heap_loss_per_window"]) <= 512
    assert v["loop_cycles"] > 2000            # (after a 1200-cycle warm-up) past the burst at reads 3000..3005
    assert v["loop_read_errors"] == v["loop_injected_faults"] >= v["loop_cycles"] // 97
    assert v["loop_ok_cycles"] + v["loop_read_errors"] == v["loop_cycles"]
    assert v["loop_wdt_feeds"] == v["loop_ok_cycles"] and not v["loop_wdt_starved"]
    assert v["loop_reinits"] >= 1 and v["loop_stage_errors"] == 0
    assert v["loop_heap_start"] - v["loop_heap_end"] <= 512


def test_soak_cli_rejects_bad_parameters() -> None:
    assert soak.main(["--invokes", "0"]) == 2
