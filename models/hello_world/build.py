"""Hello world example (the TFLM classic): a tiny int8 model of y = sin(x), x in [0, 2 pi), trained here.

    .venv/bin/python models/hello_world/build.py [--force] [--run]

The device app reads a "knob" (an ADC, 0..65535 -> angle 0..2 pi; replayed from a sweep on the unix port),
quantizes the angle straight from the ADC counts into the model input, and prints / outputs sin(angle) (on a
board: LED brightness by PWM). Output: build/models/hello_world/ (sine.tflite, sine.mpk, sweep.npy).
Deterministic (fixed seeds, deterministic ops), ~10 s.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
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
OUT = U.BUILD / "hello_world"
TFLITE, MPK, SWEEP = OUT / "sine.tflite", OUT / "sine.mpk", OUT / "sweep.npy"
APP = HERE / "app" / "main.py"
N_SWEEP = 100


def train() -> dict[str, Any]:
    tf = U.import_tf()
    keras = tf.keras
    rng = np.random.default_rng(U.SEED)
    x = rng.uniform(0, 2 * math.pi, 2000).astype(np.float32)
    y = np.sin(x).astype(np.float32)
    inp = keras.Input((1,), batch_size=1, name="x")
    h = keras.layers.Dense(16, activation="relu")(inp)
    h = keras.layers.Dense(16, activation="relu")(h)
    out = keras.layers.Dense(1, name="y")(h)
    model = keras.Model(inp, out, name="sine")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", steps_per_execution=32)
    with U.quiet_fds():
        model.fit(x[:, None], y[:, None], epochs=60, batch_size=64, shuffle=True, verbose=0)
        model.optimizer.learning_rate.assign(2e-3)
        model.fit(x[:, None], y[:, None], epochs=40, batch_size=64, shuffle=True, verbose=0)
    tfl = U.to_int8_tflite(tf, model, x[:500, None])
    U.write_atomic(TFLITE, tfl)
    U.pack_to(tfl, MPK)
    # a sweep of the knob over one turn, as ADC counts
    sweep = np.round(np.arange(N_SWEEP) * 65536 / N_SWEEP).astype(np.uint16)
    import io

    buf = io.BytesIO()
    np.save(buf, sweep)
    U.write_atomic(SWEEP, buf.getvalue())
    # int8 model error on the host (tflite-micro)
    from mpyml.tflm import TflmRunner

    r = TflmRunner(tfl)
    di, do = r.input_details()[0], r.output_details()[0]
    xs = np.linspace(0, 2 * math.pi, 200, endpoint=False)
    ys = np.array([do.dequantize(r.run([di.quantize(np.array([[v]], np.float32))])[0]).item() for v in xs])
    return {"files": [TFLITE.name, MPK.name, SWEEP.name], "params": int(model.count_params()),
            "int8_max_abs_err": float(np.abs(ys - np.sin(xs)).max()),
            "int8_mean_abs_err": float(np.abs(ys - np.sin(xs)).mean())}


def build(force: bool = False) -> dict[str, Any]:
    return U.cached(OUT, U.file_hash(Path(__file__)), train, force)


def run_app(mpk: Path = MPK, sweep: Path = SWEEP) -> list[tuple[float, float]]:
    out = U.app_stdout(APP, ["--model", str(mpk), str(sweep)])
    print(out, end="")
    return [(float(d["x"]), float(d["y"])) for d in U.parse_lines(out, "SINE")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--run", action="store_true", help="run the device app on the unix port")
    a = ap.parse_args(argv)
    meta = build(a.force)
    print(f"sine model: {meta['params']} parameters, int8 error on the host: max {meta['int8_max_abs_err']:.3f}, "
          f"mean {meta['int8_mean_abs_err']:.3f} ({MPK})")
    if a.run:
        run_app()
    return 0


if __name__ == "__main__":
    sys.exit(main())
