"""Anomaly detection example: vibration (ADC, 1 kHz, generated) -> log-mel bands -> int8 autoencoder ->
reconstruction-error threshold.

    .venv/bin/python models/anomaly/build.py [--force] [--run]

Data: a motor at 28-32 Hz with 2x/3x harmonics and sensor noise (normal); the anomaly is a bearing fault:
impacts at the outer-race frequency (3.6 x shaft speed) ringing a 250 Hz resonance. Features: 24 log-mel
bands (0-500 Hz) of 256-sample frames, the same front end as the device (mpyml.pre.audio.MFCC with
n_mfcc=0), standardized per band. The autoencoder (24-12-6-12-24) is trained on normal frames only; the
threshold is 1.5 x the largest reconstruction MSE of held-out normal frames (int8, tflite-micro).
Output: build/models/anomaly/ (anomaly.mpk; anomaly.json: band mean/std and threshold; replay.npy: 40 normal
then 40 faulty frames).
Deterministic (fixed seeds, deterministic ops), ~15 s.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path) -> Any:
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


U = _load("mpyml_example_util", HERE.parent / "common" / "example_util.py")
ref = _load("kws_frontend_ref", HERE.parent / "kws" / "frontend_ref.py")
OUT = U.BUILD / "anomaly"
TFLITE, MPK, NORM, REPLAY = OUT / "anomaly.tflite", OUT / "anomaly.mpk", OUT / "anomaly.json", OUT / "replay.npy"
APP = HERE / "app" / "main.py"
RATE, FRAME, N_MELS = 1000, 256, 24
N_REPLAY = 40


def vibration(rng: np.random.Generator, n_frames: int, fault: bool) -> np.ndarray:
    """ADC counts (uint16, mid-scale 32768) of n_frames * FRAME samples."""
    n = n_frames * FRAME
    t = np.arange(n) / RATE
    f0 = rng.uniform(28, 32) + 0.3 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t)   # slow speed drift
    ph = 2 * np.pi * np.cumsum(f0) / RATE
    x = (rng.uniform(0.25, 0.35) * np.sin(ph) + rng.uniform(0.08, 0.15) * np.sin(2 * ph + rng.uniform(0, 6))
         + rng.uniform(0.03, 0.06) * np.sin(3 * ph + rng.uniform(0, 6)))
    x += rng.normal(0, 0.01, n)
    if fault:
        period = RATE / (3.6 * f0.mean())
        k = np.arange(64)
        ring = np.exp(-k / 6) * np.sin(2 * np.pi * 250 * k / RATE)
        imp = np.zeros(n)
        for c in np.arange(rng.uniform(0, period), n, period):
            imp[int(c)] += rng.uniform(0.6, 1.0)
        x += rng.uniform(0.08, 0.12) * np.convolve(imp, ring)[:n]
    return np.clip(np.round(32768 + 32767 * 0.8 * x), 0, 65535).astype(np.uint16)


def logmel(counts: np.ndarray) -> np.ndarray:
    """(frames, 24) float log-mel of the device front end: frames of 256, /32768, log(mel + 1e-6)."""
    x = (counts.astype(np.float64) - 32768) / 32768
    fr = x.reshape(-1, FRAME)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAME) / FRAME)
    spec = np.abs(np.fft.rfft(fr * win, FRAME))
    return np.log(spec @ ref.mel_matrix(N_MELS, FRAME // 2 + 1, RATE, 0.0, RATE / 2) + 1e-6)


def _npy(a: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def train() -> dict[str, Any]:
    tf = U.import_tf()
    keras = tf.keras
    rng = np.random.default_rng(U.SEED)
    normal = np.concatenate([logmel(vibration(rng, 20, False)) for _ in range(100)])        # 2000 frames
    held = np.concatenate([logmel(vibration(rng, 20, False)) for _ in range(10)])
    faulty = np.concatenate([logmel(vibration(rng, 20, True)) for _ in range(10)])
    mean, std = normal.mean(0), normal.std(0) + 1e-3

    def z(f: np.ndarray) -> np.ndarray:
        return ((f - mean) / std).astype(np.float32)

    inp = keras.Input((N_MELS,), batch_size=1, name="bands")
    h = keras.layers.Dense(12, activation="relu")(inp)
    h = keras.layers.Dense(6, activation="relu")(h)
    h = keras.layers.Dense(12, activation="relu")(h)
    model = keras.Model(inp, keras.layers.Dense(N_MELS)(h), name="autoencoder")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse", steps_per_execution=16)
    with U.quiet_fds():
        model.fit(z(normal), z(normal), epochs=40, batch_size=32, shuffle=True, verbose=0)
    # calibrate the input quantization wider than normal data (x3): anomalous bands reach 5-10 sigma and
    # must not be clipped by the int8 input range, or the reconstruction error saturates
    tfl = U.to_int8_tflite(tf, model, np.concatenate([z(normal[::8]), 3 * z(normal[::16])]))
    from mpyml.tflm import TflmRunner

    r = TflmRunner(tfl)
    di, do = r.input_details()[0], r.output_details()[0]

    def mse(f: np.ndarray) -> np.ndarray:
        res = []
        for v in z(f):
            q = di.quantize(v[None])
            y = do.dequantize(r.run([q])[0])
            res.append(float(np.mean((y - di.dequantize(q)) ** 2)))
        return np.array(res)

    m_held, m_fault = mse(held), mse(faulty)
    threshold = 1.5 * float(m_held.max())
    U.write_atomic(TFLITE, tfl)
    U.pack_to(tfl, MPK)
    U.write_atomic(NORM, json.dumps({"mean": mean.tolist(), "std": std.tolist(), "threshold": threshold,
                                     "rate": RATE, "frame": FRAME, "n_mels": N_MELS}).encode())
    rr = np.random.default_rng(U.SEED + 1)
    U.write_atomic(REPLAY, _npy(np.concatenate([vibration(rr, N_REPLAY, False), vibration(rr, N_REPLAY, True)])))
    return {"files": [TFLITE.name, MPK.name, NORM.name, REPLAY.name], "params": int(model.count_params()),
            "threshold": threshold, "normal_mse_max": float(m_held.max()), "normal_mse_mean": float(m_held.mean()),
            "faulty_mse_min": float(m_fault.min()), "faulty_mse_mean": float(m_fault.mean())}


def build(force: bool = False) -> dict[str, Any]:
    return U.cached(OUT, U.file_hash(Path(__file__), HERE.parent / "kws" / "frontend_ref.py"), train, force)


def run_app(replay: Path = REPLAY, mpk: Path = MPK, norm: Path = NORM) -> str:
    return U.app_stdout(APP, ["--model", str(mpk), "--norm", str(norm), str(replay)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--run", action="store_true", help="run the device app on the unix port")
    a = ap.parse_args(argv)
    m = build(a.force)
    print(f"autoencoder: {m['params']} parameters; reconstruction MSE (int8, tflite-micro): normal mean "
          f"{m['normal_mse_mean']:.3f} max {m['normal_mse_max']:.3f}, faulty mean {m['faulty_mse_mean']:.3f} "
          f"min {m['faulty_mse_min']:.3f}; threshold {m['threshold']:.3f} ({MPK})")
    if a.run:
        print(run_app(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
