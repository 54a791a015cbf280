"""Fixed-point streaming MFCC (mpyml.pre.audio, on the MicroPython unix port) vs the float NumPy
reference of the MLPerf Tiny KWS front end (models/kws/frontend_ref.py), which itself is checked
against TensorFlow: every feature within one quantization step of the model input."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import load_hostrun, load_module, shared_path

REPO = Path(__file__).resolve().parents[1]
SCALE, ZP = 0.5847029089927673, 83          # kws_ref_model.tflite input quantization


hostrun = load_hostrun()
ref = load_module("kws_frontend_ref", REPO / "models" / "kws" / "frontend_ref.py")
NAMES = ("yes", "no", "noise", "silence")


def write_wav(path: Path, x: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.asarray(x, "<i2").tobytes())


def synthetic(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(3)
    t = np.arange(16000) / 16000
    sigs = {
        "chirp_noise": 8000 * np.sin(2 * np.pi * (100 + 1900 * t) * t) + rng.normal(0, 300, 16000),
        "quiet_noise": rng.integers(-3, 4, 16000),                       # a few LSBs
        "short_clip": np.concatenate([rng.normal(0, 2000, 9000)]),       # padded with zeros
        "clipped": np.clip(rng.normal(0, 30000, 16000), -32768, 32767),
        "negative_peak": -np.abs(rng.normal(0, 3000, 16000)) + 50,       # max(x) small and positive
    }
    out = []
    for name, x in sigs.items():
        p = tmp_path / f"{name}.wav"
        write_wav(p, np.clip(np.round(x), -32768, 32767).astype(np.int16))
        out.append(p)
    return out


def run_stream(wavs: list[Path], engines: list[str]) -> dict:
    natmod = "c" in engines
    r = hostrun.run_device("mp_mfcc.py", {"wavs": [str(p) for p in wavs], "engines": engines,
                                          "scale": SCALE, "zp": ZP}, natmod=natmod, timeout=170)
    return r.values


def check(values: dict, wavs: list[Path], eng: str) -> dict:
    stats = {}
    for p in wavs:
        x = ref.read_wav(p)
        want = ref.mfcc(x)
        got = np.array(values[f"raw_{eng}_{p.name}"]).reshape(49, 10) / 65536
        q = np.array(values[f"q_{eng}_{p.name}"], np.uint8).astype(np.int8).reshape(49, 10)
        qref = ref.quantize(want, SCALE, ZP)
        err_steps = float(np.abs(got - want).max() / SCALE)
        stats[p.name] = err_steps
        assert err_steps < 0.1, (p.name, err_steps)
        assert np.abs(q.astype(int) - qref.astype(int)).max() <= 1, p.name
    return stats


def test_speech_clips_within_one_step():
    wavs = [shared_path("data", "speech", f"{n}_1000ms.wav") for n in NAMES]
    engines = ["py", "c"] if hostrun.natmod_has("pre_logmel", "pre_mfcc", "pre_quant") else ["py"]
    vals = run_stream(wavs, engines)
    for eng in engines:
        stats = check(vals, wavs, eng)
        print(f"MFCC max error ({eng}), quantization steps:", {k: round(v, 4) for k, v in stats.items()})
    if len(engines) == 2:
        for p in wavs:
            assert vals[f"q_c_{p.name}"] == vals[f"q_py_{p.name}"]
            assert vals[f"raw_c_{p.name}"] == vals[f"raw_py_{p.name}"]


def test_synthetic_signals_within_one_step(tmp_path):
    wavs = synthetic(tmp_path)
    stats = check(run_stream(wavs, ["py"]), wavs, "py")
    print("MFCC max error (synthetic), quantization steps:", {k: round(v, 4) for k, v in stats.items()})


def test_numpy_reference_matches_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = pytest.importorskip("tensorflow")
    x = ref.read_wav(shared_path("data", "speech", "yes_1000ms.wav"))
    w = tf.cast(x, tf.float32)
    w = w / tf.reduce_max(w)
    w = tf.slice(tf.pad(tf.pad(w, [[0, 16000 - len(x)]]), [[2, 2]]), [2], [16000])
    st = tf.signal.stft(w, 480, 320, fft_length=None, window_fn=tf.signal.hann_window)
    m = tf.signal.linear_to_mel_weight_matrix(40, st.shape[-1], 16000, 20.0, 4000.0)
    lm = tf.math.log(tf.tensordot(tf.abs(st), m, 1) + 1e-6)
    want = tf.signal.mfccs_from_log_mel_spectrograms(lm)[..., :10].numpy()
    assert np.abs(ref.mfcc(x) - want).max() < 0.01 * SCALE
    assert np.abs(ref.mel_matrix() - m.numpy()).max() < 1e-5
