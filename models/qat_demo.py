"""QAT demo: a model that post-training quantization hurts, and quantization-aware training repairs.

    make qat-demo        (or: .venv/bin/python models/qat_demo.py [--epochs N] [--report DIR])

The model is a small MLP on scikit-learn's bundled 8x8 digits (offline). After float training, one hidden
unit is added that always outputs OUTLIER (no incoming weights, bias OUTLIER, no outgoing weights): the
float function is unchanged, but the hidden layer's activations now range over [0, OUTLIER] while the real
units stay below ~7 (an outlier channel, as found in real networks). int8 activations are quantized per
tensor, so the outlier sets the hidden layer's scale and every other unit is left with a few levels:
PTQ accuracy falls. `mpyml convert --qat` fine-tunes with fake
quantization (tensorflow-model-optimization) on the training split, and the network learns to live with the
int8 grid. All three (float, PTQ, QAT) are measured on the held-out split, on tflite-micro and on the
MicroPython unix port (bit-exact checked). This is a benchmark-style demonstration, not a timed test.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUTLIER = 1000.0
SEED = 0


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    x_tr, x_te, y_tr, y_te = train_test_split(x, d.target.astype(np.int64), test_size=0.3, random_state=SEED,
                                              stratify=d.target)
    return x_tr, y_tr, x_te, y_te


def build(x_train: np.ndarray, y_train: np.ndarray, epochs: int = 40) -> object:
    """The float MLP (64 -> 32 ReLU -> 10 softmax), trained, plus one hidden unit that is constantly OUTLIER."""
    import tf_keras

    tf_keras.utils.set_random_seed(SEED)
    L = tf_keras.layers  # noqa: N806

    def mlp(hidden: int) -> object:
        return tf_keras.Sequential([tf_keras.Input((8, 8, 1), batch_size=1), L.Flatten(),
                                    L.Dense(hidden, activation="relu"), L.Dense(10), L.Softmax()])

    m = mlp(32)
    m.compile(optimizer=tf_keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    m.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    w1, b1 = m.layers[1].get_weights()
    w2, b2 = m.layers[2].get_weights()
    # unit 33: no inputs, bias OUTLIER, no outputs -> the same float function, a hidden range of [0, OUTLIER]
    out = mlp(33)
    out.layers[1].set_weights([np.concatenate([w1, np.zeros((w1.shape[0], 1), np.float32)], axis=1),
                               np.concatenate([b1, np.float32([OUTLIER])])])
    out.layers[2].set_weights([np.concatenate([w2, np.zeros((1, w2.shape[1]), np.float32)], axis=0), b2])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5, help="QAT fine-tuning epochs (default 5)")
    ap.add_argument("--report", default=str(REPO / "build" / "qat_demo" / "report"),
                    help="Markdown report directory")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import mpyml
    from mpyml.convert import import_tf

    t0 = time.monotonic()
    import_tf()
    x_tr, y_tr, x_te, y_te = digits()
    print(f"training a float MLP on {len(y_tr)} digits, then adding a hidden unit stuck at {OUTLIER:g} ...")
    model = build(x_tr, y_tr)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "digits_outlier.h5"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)   # "HDF5 ... legacy": on purpose here
            model.save(path)   # legacy .h5: the tf_keras model tfmot fine-tunes
        res = mpyml.convert(path, x_tr[:300], eval_data=(x_te, y_te), qat=True, train_data=(x_tr, y_tr),
                            epochs=args.epochs, report_dir=args.report, output=Path(d) / "qat.mpk")
    m, q = res.metrics, res.metrics["qat"]
    rows = [("float (Keras)", m["float_accuracy"], "-"),
            ("int8 PTQ", m["int8_accuracy"], f"device {m['device_accuracy']:.2%}, bit-exact "
             f"{m['bit_exact_samples']}/{m['eval_samples']}"),
            (f"int8 QAT ({args.epochs} epochs)", q["int8_accuracy"], f"device {q['device_accuracy']:.2%}, "
             f"bit-exact {q['bit_exact_samples']}/{m['eval_samples']}")]
    print(f"\naccuracy on {m['eval_samples']} held-out digits (int8 on tflite-micro; device = MicroPython unix port):")
    for name, acc, note in rows:
        print(f"  {name:<22} {acc:7.2%}   {note}")
    recovered = q["int8_accuracy"] - m["int8_accuracy"]
    print(f"\nQAT recovers {recovered * 100:+.1f} points of the {(m['float_accuracy'] - m['int8_accuracy']) * 100:.1f} "
          f"PTQ lost; report: {m['report']} ({time.monotonic() - t0:.0f} s)")
    ok = m["bit_exact"] and q["bit_exact"] and recovered > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
