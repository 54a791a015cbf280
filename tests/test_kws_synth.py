"""models/kws_synth (keyword spotting trained on espeak-ng speech), small and fast (~30 s): real espeak-ng words,
the board's MFCC run on the unix port (C kernels of the natmod) against the float reference front end, and a tiny
model trained on those features, converted with mpyml.convert and run end to end (raw audio -> board MFCC -> model)
on the unix port, agreeing with tflite-micro. The full training run is `make kws-synth`, not part of make test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import load_hostrun, load_module, skip_or_fail

REPO = Path(__file__).resolve().parents[1]
BUILD_PY = REPO / "models" / "kws_synth" / "build.py"
ks = load_module("kws_synth_build", BUILD_PY)
ref = load_module("kws_frontend_ref", REPO / "models" / "kws" / "frontend_ref.py")
hostrun = load_hostrun()


@pytest.fixture(scope="module")
def words() -> dict[str, list[np.ndarray]]:
    if shutil.which("espeak-ng") is None:
        skip_or_fail("espeak-ng not installed: `make setup` installs it (Debian package espeak-ng)")
    if not hostrun.natmod_has("pre_logmel", "pre_mfcc", "pre_quant"):
        skip_or_fail("the x64 native module with the pre_* kernels is not built: run `make natmods`")
    jobs = [(w, v, va, s, p) for w in ("yes", "no") for v, va, s, p in
            (("en-us", "", 160, 50), ("en-gb", "f2", 140, 70), ("en-gb-scotland", "m3", 190, 35),
             ("en-029", "m1", 120, 55))]
    audio = ks.synth_all(jobs)
    out: dict[str, list[np.ndarray]] = {"yes": [], "no": []}
    for (w, *_), a in zip(jobs, audio, strict=True):
        out[w].append(a)
    return out


def test_synth_is_16k_speech(words):
    for w, clips in words.items():
        for a in clips:
            t = ks.trim(a)
            assert a.dtype == np.int16
            assert 0.15 * 16000 < len(t) < 16000, (w, len(t))        # a spoken word, resampled to 16 kHz
            assert np.abs(t.astype(np.int32)).max() > 3000, w
    # different voices give different audio
    assert not np.array_equal(words["yes"][0][:4000], words["yes"][1][:4000])


def test_board_mfcc_equals_float_reference(words):
    rng = np.random.default_rng(0)
    clips = np.stack([ks.make_clip(a, rng) for a in words["yes"] + words["no"]] + [ks.make_clip(None, rng)])
    feats, engine = ks.device_features(clips)
    assert engine == "c" and feats.shape == (len(clips), 49, 10, 1)
    err = max(float(np.abs(ref.mfcc(c) - feats[i, :, :, 0]).max()) for i, c in enumerate(clips))
    assert err < 0.05, err                       # board fixed point vs the float (TensorFlow-checked) reference
    assert np.abs(feats[0] - feats[1]).max() > 1.0


def test_tiny_model_round_trip(words, tmp_path):
    import mpyml
    from mpyml.tflm import TflmRunner

    rng = np.random.default_rng(1)
    clips, y = [], []
    for lab, w in ((0, "yes"), (1, "no")):
        for a in words[w]:
            for _ in range(4):
                clips.append(ks.make_clip(a, rng, snr_db=(20.0, 30.0)))
                y.append(lab)
    for _ in range(8):
        clips.append(ks.make_clip(None, rng))
        y.append(ks.SILENCE)
    x_a, y_ = np.stack(clips), np.array(y, np.int64)
    x, _ = ks.device_features(x_a)
    model = ks.train(x, y_, epochs=30, width=8, batch_norm=False, batch_size=4)
    res = mpyml.convert(model, x, eval_data=(x, y_), io="int8", progress=False, sqnr=False, timing=False)
    m = res.metrics
    assert m["bit_exact"] and m["bit_exact_samples"] == len(y_)
    assert m["float_accuracy"] >= 0.9 and m["int8_accuracy"] >= 0.85, m
    # end to end on the device: its labels are tflite-micro's on the host-quantized device features
    mpk = tmp_path / "kws_synth_tiny.mpk"
    mpk.write_bytes(res.mpk)
    got = ks.device_classify(mpk, x_a)
    r = TflmRunner(res.tflite)
    d = r.input_details()[0]
    want = np.array([int(np.argmax(r.run([d.quantize(s[None])])[0])) for s in x])
    assert (got == want).all(), (got, want)      # device features() == host quantize(compute()) in effect
    assert np.mean(got == y_) >= 0.85


def test_missing_espeak_is_one_line_exit_2(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))
    r = subprocess.run([sys.executable, str(BUILD_PY)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "espeak-ng not found" in r.stderr and "make setup" in r.stderr
