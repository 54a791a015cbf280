"""Gesture recognition example: 6-axis IMU windows (generated), a small int8 CNN, and a streaming device app.

    .venv/bin/python models/gesture/build.py [--force] [--run]

Data: synthetic MPU6050 recordings at 50 Hz in raw counts (accelerometer 16384/g, gyroscope 131 per deg/s):
idle (gravity, tremor), shake (4-6 Hz side to side), circle (1-1.5 Hz circular motion) and punch (a short
forward spike with rebound), with random amplitude, speed, phase, orientation and noise. The model sees
1 s windows (50 x 6) scaled per axis (g and 250 deg/s units). Output: build/models/gesture/ (gesture.mpk,
replay.csv: a scripted sequence idle/shake/idle/circle/idle/punch/idle for the unix-port app).
Deterministic (fixed seeds, deterministic ops), ~15 s.
"""

from __future__ import annotations

import argparse
import importlib.util
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
OUT = U.BUILD / "gesture"
TFLITE, MPK, REPLAY = OUT / "gesture.tflite", OUT / "gesture.mpk", OUT / "replay.csv"
APP = HERE / "app" / "main.py"
LABELS = ["idle", "shake", "circle", "punch"]
RATE, WIN = 50, 50
ACC, GYR = 16384.0, 131.0                  # counts per g, per deg/s
SCALE = [1 / ACC] * 3 + [1 / (GYR * 250)] * 3    # model input units: g, 250 deg/s


def _rot(rng: np.random.Generator, deg: float) -> np.ndarray:
    a, b = np.radians(rng.normal(0, deg, 2))
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    return rx @ ry


def gesture(rng: np.random.Generator, kind: str, n: int, active: np.ndarray | None = None) -> np.ndarray:
    """n samples (n, 6) of one gesture in g / deg/s; `active` (0..1 per sample) fades the motion in/out."""
    t = np.arange(n) / RATE
    acc = np.zeros((n, 3))
    gyr = np.zeros((n, 3))
    if kind == "shake":
        f, a, ph = rng.uniform(4, 6), rng.uniform(0.8, 1.6), rng.uniform(0, 2 * np.pi)
        acc[:, 1] += a * np.sin(2 * np.pi * f * t + ph)
        gyr[:, 2] += a * 120 * np.cos(2 * np.pi * f * t + ph)
    elif kind == "circle":
        f, a, ph = rng.uniform(1.0, 1.5), rng.uniform(0.5, 1.0), rng.uniform(0, 2 * np.pi)
        acc[:, 0] += a * np.cos(2 * np.pi * f * t + ph)
        acc[:, 1] += a * np.sin(2 * np.pi * f * t + ph)
        gyr[:, 2] += rng.choice([-1, 1]) * rng.uniform(120, 220) * (1 + 0.2 * np.sin(2 * np.pi * f * t))
    elif kind == "punch":
        c = rng.uniform(0.3, 0.7) * n if n >= WIN else n / 2           # spike position in the window
        w = rng.uniform(2.0, 3.5)                                       # samples (40-70 ms)
        a = rng.uniform(1.2, 1.9)
        k = np.arange(n)
        acc[:, 0] += a * np.exp(-0.5 * ((k - c) / w) ** 2) - 0.6 * a * np.exp(-0.5 * ((k - c - 3 * w) / (1.5 * w)) ** 2)
        gyr[:, 1] += 60 * a * np.exp(-0.5 * ((k - c) / w) ** 2)
    if active is not None:
        acc *= active[:, None]
        gyr *= active[:, None]
    acc[:, 2] += 1.0                                                  # gravity
    acc += rng.normal(0, 0.02, acc.shape) + 0.03 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)[:, None]
    gyr += rng.normal(0, 2.0, gyr.shape)
    r = _rot(rng, 15)
    return np.concatenate([acc @ r.T, gyr @ r.T], axis=1)


def to_counts(x: np.ndarray) -> np.ndarray:
    c = np.concatenate([x[:, :3] * ACC, x[:, 3:] * GYR], axis=1)
    return np.clip(np.round(c), -32768, 32767).astype(np.int16)


def _partial(rng: np.random.Generator) -> np.ndarray:
    """Activity mask of a window that catches the start or the end of a gesture (35-100 % of it)."""
    m = np.zeros(WIN)
    k = int(rng.uniform(0.35, 1.0) * WIN)
    if rng.random() < 0.5:
        m[WIN - k:] = 1
    else:
        m[:k] = 1
    return np.convolve(m, np.ones(3) / 3, mode="same")


def dataset(rng: np.random.Generator, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows of every class; half the shake/circle windows only partly contain the gesture (the
    streaming app sees windows across gesture boundaries)."""
    xs, ys = [], []
    for label, kind in enumerate(LABELS):
        for i in range(per_class):
            act = _partial(rng) if kind in ("shake", "circle") and i % 2 else None
            xs.append(to_counts(gesture(rng, kind, WIN, act)))
            ys.append(label)
    return np.stack(xs), np.array(ys)


def features(counts: np.ndarray) -> np.ndarray:
    """(N, 50, 6) counts -> model input (N, 1, 50, 6) in g / 250 deg/s units."""
    return (counts.astype(np.float32) * np.array(SCALE, np.float32))[:, None]


def replay_sequence(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """A scripted recording (counts) and its segments (label, start s, end s)."""
    script = [("idle", 1.5), ("shake", 1.6), ("idle", 1.5), ("circle", 2.0), ("idle", 1.5), ("punch", 1.0),
              ("idle", 1.5)]
    parts, segs, t = [], [], 0.0
    for kind, dur in script:
        n = int(dur * RATE)
        parts.append(to_counts(gesture(rng, kind, n)))
        segs.append((kind, t, t + dur))
        t += dur
    return np.concatenate(parts), segs


def train() -> dict[str, Any]:
    tf = U.import_tf()
    keras = tf.keras
    rng = np.random.default_rng(U.SEED)
    xtr, ytr = dataset(rng, 300)
    xte, yte = dataset(rng, 60)
    inp = keras.Input((1, WIN, 6), batch_size=1, name="imu")
    h = keras.layers.Conv2D(12, (1, 5), strides=(1, 2), padding="same", activation="relu")(inp)   # 25
    h = keras.layers.Conv2D(16, (1, 3), strides=(1, 2), padding="same", activation="relu")(h)     # 13
    h = keras.layers.AveragePooling2D((1, 13))(h)
    h = keras.layers.Flatten()(h)
    out = keras.layers.Softmax()(keras.layers.Dense(len(LABELS))(h))
    model = keras.Model(inp, out, name="gesture")
    model.compile(optimizer=keras.optimizers.Adam(5e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], steps_per_execution=16)
    with U.quiet_fds():
        model.fit(features(xtr), ytr, epochs=25, batch_size=32, shuffle=True, verbose=0)
        acc = float(np.mean(np.argmax(model.predict(features(xte), verbose=0), 1) == yte))
    tfl = U.to_int8_tflite(tf, model, features(xtr[::4]))
    U.write_atomic(TFLITE, tfl)
    U.pack_to(tfl, MPK)
    from mpyml.tflm import TflmRunner

    r = TflmRunner(tfl)
    d = r.input_details()[0]
    pred = [int(np.argmax(r.run([d.quantize(features(x[None]))])[0])) for x in xte]
    seq, segs = replay_sequence(np.random.default_rng(U.SEED + 1))
    lines = ["ax,ay,az,gx,gy,gz"] + [",".join(map(str, row)) for row in seq.tolist()]
    U.write_atomic(REPLAY, ("\n".join(lines) + "\n").encode())
    return {"files": [TFLITE.name, MPK.name, REPLAY.name], "params": int(model.count_params()),
            "float_test_accuracy": acc, "int8_test_accuracy": float(np.mean(np.array(pred) == yte)),
            "replay_segments": segs}


def build(force: bool = False) -> dict[str, Any]:
    return U.cached(OUT, U.file_hash(Path(__file__)), train, force)


def run_app(csv: Path = REPLAY, mpk: Path = MPK) -> str:
    return U.app_stdout(APP, ["--model", str(mpk), str(csv)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--run", action="store_true", help="run the device app on the unix port")
    a = ap.parse_args(argv)
    m = build(a.force)
    print(f"gesture model: {m['params']} parameters, test accuracy float {m['float_test_accuracy']:.1%}, "
          f"int8 (tflite-micro) {m['int8_test_accuracy']:.1%} ({MPK})")
    print("replay script:", ", ".join(f"{k} {s:.1f}-{e:.1f}s" for k, s, e in m["replay_segments"]))
    if a.run:
        print(run_app(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
