"""mpyml demo: a digits classifier trained here, packed, and run on the MicroPython unix port.

    make demo          (or, after `make setup natmods`:  .venv/bin/python models/digits/demo.py)

1. train (or reuse) a tiny int8 CNN on scikit-learn's bundled 8x8 digits   -> build/demo/digits_int8.tflite
2. pack it with mpyml.pack                                                -> build/demo/digits.mpk
3. classify the held-out test images on the MicroPython unix port (mpyml's C engine as a native module),
   all in one device session, and compare with the float model and with tflite-micro, bit for bit
4. time one inference on the device (time.ticks_us, median)

Needs nothing outside this repository.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from mpyml.tflm import TflmRunner

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUILD = REPO / "build" / "demo"
MPK_PATH = BUILD / "digits.mpk"
TIMING_REPEAT = 200
N_SHOWN = 6
_SHADES = " .:-=+*#%@"


def load_train_module() -> ModuleType:
    """models/digits/train.py as a module (under a name that cannot clash with other `train` modules)."""
    name = "mpyml_demo_digits_train"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "train.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def ensure_model(retrain: bool = False) -> dict[str, Any]:
    """Train (in a separate process: TensorFlow stays out of this one) unless the cached model is current."""
    train = load_train_module()
    meta = None if retrain else train.cached_meta()
    if meta is not None:
        print(f"      using cached {train.TFLITE_PATH.relative_to(REPO)} (train.py unchanged)")
        return meta
    cmd = [sys.executable, str(HERE / "train.py"), *(["--force"] if retrain else [])]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    for line in r.stdout.splitlines():
        print(f"      {line}")
    meta = train.cached_meta()
    if r.returncode != 0 or meta is None:
        raise SystemExit(f"error: training failed (exit {r.returncode}): {' '.join(cmd)}")
    return meta


def quantize_images(images: np.ndarray, scale: float, zero_point: int) -> list[np.ndarray]:
    """Float images in [0, 1] -> int8 model inputs (1, 8, 8, 1), with the model's input quantization."""
    q = np.round(np.asarray(images, dtype=np.float64) / scale) + zero_point
    q = np.clip(q, -128, 127).astype(np.int8)
    return [img.reshape(1, 8, 8, 1) for img in q]


def device_outputs(mpk: bytes, images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Raw int8 outputs for every image from the MicroPython unix port, in one session when possible."""
    from mpyml import unix_port

    run_batch = getattr(unix_port, "run_batch", None)
    if run_batch is not None:
        res = run_batch(mpk, [[img] for img in images], repeat=1)
        return [sample[0].reshape(-1) for sample in res.batch]
    return [unix_port.run_model(mpk, [img]).outputs[0].reshape(-1) for img in images]


def tflm_outputs(runner: TflmRunner, images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Raw int8 outputs for every image from tflite-micro (the reference)."""
    return [runner.run([img])[0].reshape(-1) for img in images]


def device_time_us(mpk: bytes, image: np.ndarray, repeat: int = TIMING_REPEAT) -> float | None:
    """Median microseconds of one inference on the device (time.ticks_us around invoke)."""
    from mpyml import unix_port

    return unix_port.run_model(mpk, [image], repeat=repeat).median_us


def ascii_digits(images: Sequence[np.ndarray], captions: Sequence[Sequence[str]]) -> str:
    """Images (8x8, values 0..1) side by side as ASCII art, with caption lines underneath."""
    width = 16
    lines = []
    for r in range(8):
        row = []
        for img in images:
            px = np.asarray(img, dtype=np.float64).reshape(8, 8)[r]
            row.append("".join(_SHADES[min(int(v * len(_SHADES)), len(_SHADES) - 1)] * 2 for v in px))
        lines.append("    " + "   ".join(row))
    for cap in captions:
        lines.append(("    " + "   ".join(c.center(width) for c in cap)).rstrip())
    return "\n".join(lines)


def _pick_examples(labels: np.ndarray, preds: np.ndarray, n: int) -> list[int]:
    """A few test images to show: the first ones, plus the first misclassified one (if any)."""
    wrong = [int(i) for i in np.flatnonzero(preds != labels)]
    picks = list(range(min(n, len(labels))))
    if wrong and wrong[0] not in picks and picks:
        picks[-1] = wrong[0]
    return picks


BOARD_IMAGES = 8
BOARD_CODE = """
import mpyml
m = mpyml.load('models/digits.mpk')
print(m)
print([m.predict(bytes.fromhex(h)).hex() for h in {hexes!r}])
"""


def on_board(port: str | None, images: Sequence[np.ndarray], expected: Sequence[np.ndarray]) -> bool:
    """Deploy package + engine + model with `mpyml deploy`, run the images at the board's REPL via mpremote,
    and check the outputs equal the unix-port run. Without a port, a virtual board is started and stopped."""
    from mpyml import board as vboard
    from mpyml.remote import Board

    state = None
    if port is None:
        state = vboard.start(BUILD / "board")
        port = state.tty
    try:
        r = subprocess.run([sys.executable, "-m", "mpyml.cli", "deploy", "--port", port, str(MPK_PATH)],
                           capture_output=True, text=True, timeout=300)
        for line in r.stdout.splitlines():
            print("      " + line)
        if r.returncode != 0:
            print("      deploy failed:\n" + r.stderr, file=sys.stderr)
            return False
        with Board(port) as b:
            out = b.exec(BOARD_CODE.format(hexes=[im.tobytes().hex() for im in images]), timeout=120)
        lines = out.decode(errors="replace").strip().splitlines()
        print("      board: " + lines[0])
        got = [bytes.fromhex(h) for h in ast.literal_eval(lines[-1])]
        ok = got == [e.tobytes() for e in expected]
        preds = [int(np.argmax(np.frombuffer(g, np.int8))) for g in got]
        print(f"      board predictions {preds}: {'equal to' if ok else 'DIFFERENT FROM'} the unix-port run")
        return ok
    finally:
        if state is not None:
            vboard.stop(BUILD / "board")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="mpyml demo: digits on the MicroPython unix port")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N test images")
    ap.add_argument("--retrain", action="store_true", help="retrain even if the cached model is current")
    ap.add_argument("--port", default=os.environ.get("PORT") or None,
                    help="deploy to this serial port (env PORT) instead of a virtual board")
    args = ap.parse_args(argv)

    import mpyml
    from mpyml import paths

    t_start = time.monotonic()
    print("mpyml demo: handwritten digits (scikit-learn load_digits, 8x8 px) on the MicroPython unix port\n")
    if not paths.natmod_path("x64").exists():
        print(f"error: {paths.natmod_path('x64').relative_to(REPO)} is missing: run `make demo` "
              "(or `make natmods`) to build the native module first", file=sys.stderr)
        return 1

    # 1. model
    train = load_train_module()
    print("[1/5] model")
    meta = ensure_model(args.retrain)
    tflite = train.TFLITE_PATH.read_bytes()
    float_acc = float(meta["float_test_accuracy"])
    print(f"      {meta['params']} parameters, float test accuracy {float_acc:.2%}, "
          f"int8 .tflite {len(tflite)} B\n")

    # 2. pack
    print("[2/5] pack")
    mpk = mpyml.pack(tflite)
    MPK_PATH.parent.mkdir(parents=True, exist_ok=True)
    MPK_PATH.write_bytes(mpk)
    info = mpyml.inspect_model(mpk)
    layers = info.get("layers") or []
    macs = sum(int(layer.get("macs", 0)) for layer in layers)
    print(f"      {MPK_PATH.relative_to(REPO)}: {len(mpk)} B ({len(mpk) / len(tflite):.0%} of the .tflite), "
          f"weights {info.get('weights_bytes', '?')} B, arena {info['arena_bytes']} B, {macs} MACs")
    if layers:
        print("      " + " > ".join(str(layer["op"]) for layer in layers))
    print()

    # 3. run the test set on the device and on tflite-micro
    _, _, x_test, y_test = train.load_split()
    if args.limit is not None:
        x_test, y_test = x_test[: args.limit], y_test[: args.limit]
    ref = TflmRunner(tflite)
    in_det = ref.input_details()[0]
    images = quantize_images(x_test, in_det.scale, in_det.zero_point)
    print(f"[3/5] classify {len(images)} held-out test images")
    t0 = time.monotonic()
    dev = device_outputs(mpk, images)
    t_dev = time.monotonic() - t0
    print(f"      MicroPython unix port: {len(images)} images in one session, {t_dev:.1f} s wall "
          "(incl. start-up)")
    ref_out = tflm_outputs(ref, images)
    dev_pred = np.array([int(np.argmax(o)) for o in dev])
    ref_pred = np.array([int(np.argmax(o)) for o in ref_out])
    exact = sum(bool(np.array_equal(a, b)) for a, b in zip(dev, ref_out, strict=True))
    dev_acc = float(np.mean(dev_pred == y_test))
    ref_acc = float(np.mean(ref_pred == y_test))
    out_det = ref.output_details()[0]

    picks = _pick_examples(y_test, dev_pred, N_SHOWN)
    print()
    print(ascii_digits(
        [x_test[i] for i in picks],
        [
            [f"label {y_test[i]}" for i in picks],
            [f"device {dev_pred[i]} ({float(out_det.dequantize(dev[i])[dev_pred[i]]):.0%})" for i in picks],
            ["ok" if dev_pred[i] == y_test[i] else "WRONG" for i in picks],
        ],
    ))
    print()

    # 4. timing
    print("[4/5] time one inference on the device")
    dev_us = device_time_us(mpk, images[0])
    tflm_us = ref.time_invoke_us(TIMING_REPEAT, [images[0]])
    if dev_us is not None:
        rate = int(1e6 / max(dev_us, 1.0))
        print(f"      {dev_us:.0f} us per inference on the unix port ({rate} inferences/s)")
    print()

    # 5. the board workflow: deploy with mpremote, run at the board's REPL
    print(f"[5/5] deploy to {'board ' + args.port if args.port else 'a virtual board (the unix port on a pty)'} "
          "and classify there")
    board_ok = on_board(args.port, images[:BOARD_IMAGES], dev[:BOARD_IMAGES])
    print()

    n = len(images)
    dev_us_s = "n/a" if dev_us is None else f"{dev_us:.0f} us"
    med = f"median of {TIMING_REPEAT}"
    rows = [
        ("float model (Keras) accuracy", f"{float_acc:.2%}" + ("" if args.limit is None else " (all 360)")),
        ("int8 on device (mpyml) accuracy", f"{dev_acc:.2%}  ({int(np.sum(dev_pred == y_test))}/{n})"),
        ("int8 tflite-micro accuracy", f"{ref_acc:.2%}  ({int(np.sum(ref_pred == y_test))}/{n})"),
        ("bit-exact with tflite-micro", f"{exact}/{n} images" + ("" if exact == n else "  <-- MISMATCH")),
        ("per-inference time on device", f"{dev_us_s}  ({med}, unix port x64, time.ticks_us)"),
        ("tflite-micro invoke (CPython)", f"{tflm_us:.0f} us  ({med}, reference kernels)"),
        ("arena: mpyml / tflite-micro head", f"{info['arena_bytes']} B / {ref.arena_head_bytes()} B"),
        ("deployed board agrees", f"{'yes' if board_ok else 'NO'} ({BOARD_IMAGES} images through mpremote)"),
    ]
    w = max(len(k) for k, _ in rows)
    print("results")
    for k, v in rows:
        print(f"  {k.ljust(w)}  {v}")
    print(f"\ndone in {time.monotonic() - t_start:.1f} s. The packed model is {MPK_PATH.relative_to(REPO)}.")
    return 0 if exact == n and board_ok else 1


if __name__ == "__main__":
    sys.exit(main())
