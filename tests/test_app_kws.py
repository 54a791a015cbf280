"""Example 2, keyword spotting: the device app (models/kws/app/main.py) on the MicroPython unix port,
replaying the four TFLM speech clips through ReplayMicrophone -> fixed-point streaming MFCC -> the packed
MLPerf Tiny KWS model. Labels must equal the host reference (float NumPy front end + tflite-micro)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import load_module, shared_path

REPO = Path(__file__).resolve().parents[1]
EXPECTED = {"yes_1000ms.wav": "yes", "silence_1000ms.wav": "silence", "noise_1000ms.wav": "unknown",
            "no_1000ms.wav": "go"}            # the reference model itself hears "no" as "go"


@pytest.fixture(scope="module")
def kws():
    tflite = shared_path("models", "mlperf_tiny", "kws_ref_model.tflite")
    wavs = [shared_path("data", "speech", n) for n in EXPECTED]
    ex = load_module("mpyml_example_kws", REPO / "models" / "kws" / "build.py")
    meta = ex.build(tflite, wavs)
    return ex, meta, wavs


def labels(ex, out: str) -> dict[str, dict[str, str]]:
    return {d["name"]: d for d in ex.U.parse_lines(out, "CLIP")}


@pytest.mark.parametrize("engine", ["c", "py"])
def test_clips_same_label_as_host_reference(kws, engine):
    ex, meta, wavs = kws
    got = labels(ex, ex.run_app(wavs, engine=engine))
    for name, want in EXPECTED.items():
        assert meta["reference"][name]["label"] == want
        assert got[name]["label"] == want, (name, got[name])
        ref_scores = meta["reference"][name]["scores"]
        dev_scores = [int(v) for v in got[name]["scores"].split(",")]
        # features within one quantization step of the float front end: scores stay close
        assert max(abs(a - b) for a, b in zip(ref_scores, dev_scores, strict=True)) <= 16, (name, ref_scores,
                                                                                           dev_scores)


def test_streaming_commands(kws):
    ex, _, _ = kws
    d = shared_path("data", "speech")
    seq = [d / f"{n}_1000ms.wav" for n in ("silence", "yes", "silence", "no", "noise", "silence")]
    out = ex.run_app(seq, mode="--stream")
    cmds = ex.U.parse_lines(out, "COMMAND")
    assert [c["label"] for c in cmds] == ["yes", "go"], out
    assert 1000 <= int(cmds[0]["at_ms"]) <= 2600           # while / just after "yes" (1-2 s)
    assert 3000 <= int(cmds[1]["at_ms"]) <= 4600           # while / just after "no" (3-4 s)
