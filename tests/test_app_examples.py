"""Examples 3-5 (anomaly detection, gesture recognition, hello world): each host script trains its model
from generated data (deterministic, cached in build/models/), packs it, and the device app runs on the
MicroPython unix port with replayed sensor data; the test checks the app's output."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

from conftest import load_module

REPO = Path(__file__).resolve().parents[1]


def example(name: str):
    """models/<name>/build.py as a module, after models/common/build_examples.py has trained and packed all
    three examples in one subprocess (one TensorFlow import, kept out of the test process; results are
    cached in build/models/<name>, so later calls return at once)."""
    r = subprocess.run([sys.executable, str(REPO / "models" / "common" / "build_examples.py")],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    return load_module(f"mpyml_example_{name}", REPO / "models" / name / "build.py"), r.stdout


def test_anomaly_flagged_normal_not():
    ex, log = example("anomaly")
    meta = ex.build()
    assert meta["faulty_mse_min"] > meta["threshold"] > meta["normal_mse_max"], log
    out = ex.run_app()
    frames = ex.U.parse_lines(out, "FRAME")
    events = [int(d["i"]) for d in ex.U.parse_lines(out, "ANOMALY")]
    n = ex.N_REPLAY                             # frames 0..n-1 normal, n..2n-1 faulty
    assert len(frames) == 2 * n
    assert not [i for i in events if i < n], out          # normal data is never flagged
    assert set(range(n + 2, 2 * n)) <= set(events), out    # the fault is flagged (3-frame average)
    mse = [float(d["mse"]) for d in frames]
    assert max(mse[:n]) < meta["threshold"] < min(mse[n + 2:])


def test_gesture_sequence_recognized():
    ex, log = example("gesture")
    meta = ex.build()
    assert meta["int8_test_accuracy"] > 0.95, log
    out = ex.run_app()
    got = [(d["label"], int(d["at_ms"])) for d in ex.U.parse_lines(out, "GESTURE")]
    segs = [s for s in meta["replay_segments"] if s[0] != "idle"]
    assert [g for g, _ in got] == [s[0] for s in segs], out
    for (label, at), (_, start, end) in zip(got, segs, strict=True):
        assert start * 1000 <= at <= end * 1000 + 1000, (label, at, start, end)   # within the gesture (+1 s)


def test_hello_world_sine():
    ex, log = example("hello_world")
    pts = ex.run_app()
    assert len(pts) == ex.N_SWEEP
    err = [abs(y - math.sin(x)) for x, y in pts]
    assert max(err) < 0.15 and sum(err) / len(err) < 0.05, (max(err), sum(err) / len(err))
    assert abs(pts[25][1] - 1.0) < 0.15 and abs(pts[75][1] + 1.0) < 0.15      # x = pi/2, 3 pi/2
