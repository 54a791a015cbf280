"""Train the demo model: a tiny CNN on scikit-learn's bundled 8x8 digits, exported as a full-int8 .tflite.

    .venv/bin/python models/digits/train.py [--force]

Writes build/demo/digits_int8.tflite (int8 input and output, post-training full-integer quantization with a
representative dataset, through `mpyml.convert`) and build/demo/digits_meta.json (float test accuracy,
quantization, cache key).
Offline (load_digits ships with scikit-learn), deterministic (fixed seeds, deterministic ops, fixed split)
and cached: nothing is retrained when the .tflite exists and this script is unchanged.

The layers use only the ops of the MLPerf Tiny models (CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D,
RESHAPE, FULLY_CONNECTED, SOFTMAX), MobileNet-style: 3x3 conv, strided 3x3 depthwise, 1x1 conv, 2x2 average
pool, dense, softmax. About 2.2k parameters; ~97% test accuracy.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def load_common() -> Any:
    """models/common/example_util.py (models/ is not a package), shared with the example build scripts."""
    name = "mpyml_example_util"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE.parent / "common" / "example_util.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


U = load_common()
REPO = HERE.parents[1]
OUT_DIR = REPO / "build" / "demo"
TFLITE_PATH = OUT_DIR / "digits_int8.tflite"
META_PATH = OUT_DIR / "digits_meta.json"

SEED = 0
TEST_FRACTION = 0.2
EPOCHS = 60
BATCH = 32
N_REPRESENTATIVE = 300


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed train/test split: images as float32 (N, 8, 8, 1) in [0, 1], labels as int64 (N,)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[..., np.newaxis]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SEED, stratify=y
    )
    return x_train, y_train, x_test, y_test


def script_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def cached_meta() -> dict[str, Any] | None:
    """The saved metadata if the .tflite is present and was produced by this exact script, else None."""
    try:
        meta: dict[str, Any] = json.loads(META_PATH.read_text())
    except (OSError, ValueError):
        return None
    if not TFLITE_PATH.exists() or meta.get("script_sha256") != script_hash():
        return None
    return meta


def build_model(tf: Any) -> Any:
    keras = tf.keras
    layers = keras.layers
    inp = keras.Input((8, 8, 1), batch_size=1, name="image")  # static shapes: RESHAPE, no SHAPE ops
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inp)  # 8x8x16
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu")(x)  # 4x4x16
    x = layers.Conv2D(32, 1, activation="relu")(x)  # 4x4x32
    x = layers.AveragePooling2D(2)(x)  # 2x2x32
    x = layers.Flatten()(x)  # 128
    x = layers.Dense(10)(x)
    out = layers.Softmax(name="probs")(x)
    return keras.Model(inp, out, name="digits_cnn")


def train(verbose: bool = True) -> dict[str, Any]:
    """Train, quantize and save; returns the metadata written to digits_meta.json."""
    t0 = time.monotonic()
    tf = U.import_tf_quiet()
    keras = tf.keras
    keras.utils.set_random_seed(SEED)
    with contextlib.suppress(Exception):
        tf.config.experimental.enable_op_determinism()

    x_train, y_train, x_test, y_test = load_split()
    model = build_model(tf)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    with U.quiet_fds():
        model.fit(x_train, y_train, epochs=EPOCHS, batch_size=BATCH, shuffle=True, verbose=0)
        probs = model.predict(x_test, batch_size=256, verbose=0)
    float_acc = float(np.mean(np.argmax(probs, axis=1) == y_test))

    import mpyml  # mpyml.convert: TensorFlow's full-integer PTQ (the hand-written flow, same bytes) + pack

    tflite = mpyml.convert(model, x_train[:N_REPRESENTATIVE], io="int8", sqnr=False, progress=verbose).tflite

    meta = {
        "script_sha256": script_hash(),
        "tensorflow": tf.__version__,
        "float_test_accuracy": float_acc,
        "n_train": len(y_train),
        "n_test": len(y_test),
        "params": int(model.count_params()),
        "tflite_bytes": len(tflite),
        "train_seconds": round(time.monotonic() - t0, 1),
    }
    # Written atomically: a concurrent reader (another demo or test run) never sees a half-written file.
    U.write_atomic(TFLITE_PATH, tflite)
    U.write_atomic(META_PATH, json.dumps(meta, indent=2).encode() + b"\n")
    if verbose:
        print(f"trained {model.name}: {meta['params']} parameters, float test accuracy {float_acc:.2%} "
              f"({meta['n_test']} images), {len(tflite)} B int8 .tflite, {meta['train_seconds']} s")
    return meta


def ensure_trained(force: bool = False, verbose: bool = True) -> dict[str, Any]:
    """The cached model's metadata, training first when needed."""
    meta = None if force else cached_meta()
    if meta is not None:
        if verbose:
            print(f"using cached {TFLITE_PATH.relative_to(REPO)} (train.py unchanged)")
        return meta
    with U.build_lock(OUT_DIR):
        meta = None if force else cached_meta()  # another process may have just trained it
        if meta is not None:
            return meta
        if verbose:
            print("training the digits model (once; cached in build/demo) ...", flush=True)
        return train(verbose=verbose)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="retrain even if the cached model is current")
    args = ap.parse_args(argv)
    meta = ensure_trained(force=args.force)
    print(f"{TFLITE_PATH.relative_to(REPO)}: {meta['tflite_bytes']} B, "
          f"float test accuracy {meta['float_test_accuracy']:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
