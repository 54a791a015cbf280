"""Pruned Keras models for the sparse-weights work: trained on scikit-learn's bundled 8x8 digits, the smallest
weights of each Dense / Conv2D layer zeroed with numpy (magnitude pruning, then a few epochs of masked
fine-tuning), converted by TensorFlow's documented full-integer PTQ (Optimize.DEFAULT: the `.tflite` keeps the zeros).
Used by `make bench-sparse` (tools/bench_sparse.py) and tests/ops/test_sparse.py.

Deterministic (fixed seeds, deterministic ops); cached in build/sparse/ keyed by this file's hash and the arguments.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "build" / "sparse"


def digits(flat: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): float32 in [0, 1], (N, 64) when flat else (N, 8, 8, 1)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)
    x = x.reshape(len(x), 64) if flat else x[..., np.newaxis]
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return xtr, ytr, xte, yte


def _prune(model: Any, sparsity: float, block: int = 1) -> list[tuple[Any, np.ndarray]]:
    """Zero the `sparsity` fraction of smallest-magnitude kernel weights of every Dense / Conv2D layer (block > 1:
    whole blocks of `block` output channels, by L1 norm, where the layer's output channels are a multiple of it;
    mpyml.prune's masks)."""
    from mpyml.prune import _mask
    masks = []
    for layer in model.layers:
        if layer.__class__.__name__ not in ("Dense", "Conv2D"):
            continue
        w = layer.kernel.numpy()
        mask = _mask(w, sparsity, block).astype(np.float32)
        layer.kernel.assign(w * mask)
        masks.append((layer, mask))
    return masks


def build(kind: str, sparsity: float, io: str = "int8", width: int = 256, seed: int = 0,
          epochs: int = 30, block: int = 1) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A pruned int8 `.tflite` and its float test set (x_test, y_test).

    kind: "mlp" (64-width-width-10 Dense/ReLU), "conv1x1" (Conv 3x3 stem, then 1x1 convs) or "conv3x3"
    (3x3 convs, per-channel quantized), all ending in Dense(10)."""
    key = json.dumps([kind, sparsity, io, width, seed, epochs, block,
                      hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]])
    tag = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = CACHE / f"{kind}-{int(sparsity * 100)}-b{block}-{io}-{width}-{tag}.tflite"
    flat = kind == "mlp"
    xtr, ytr, xte, yte = digits(flat)
    if path.exists():
        return path.read_bytes(), xte, yte
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    keras = tf.keras
    keras.utils.set_random_seed(seed)
    with contextlib.suppress(Exception):
        tf.config.experimental.enable_op_determinism()
    L = keras.layers
    if kind == "mlp":
        inp = keras.Input((64,), batch_size=1)
        x = L.Dense(width, activation="relu")(inp)
        x = L.Dense(width, activation="relu")(x)
    elif kind in ("conv1x1", "conv3x3"):
        inp = keras.Input((8, 8, 1), batch_size=1)
        x = L.Conv2D(width // 8, 3, padding="same", activation="relu")(inp)
        k = 1 if kind == "conv1x1" else 3
        x = L.Conv2D(width // 4, k, padding="same", activation="relu")(x)
        x = L.Conv2D(width // 4, k, strides=2, padding="same" if k == 3 else "valid", activation="relu")(x)
        x = L.Flatten()(x)
    else:
        raise ValueError(kind)
    out = L.Dense(10)(x)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(xtr, ytr, epochs=epochs, batch_size=32, verbose=0)
    masks = _prune(model, sparsity, block)
    for _ in range(max(1, epochs // 6)):         # masked fine-tuning: re-zero after every epoch
        model.fit(xtr, ytr, epochs=1, batch_size=32, verbose=0)
        for layer, m in masks:
            layer.kernel.assign(layer.kernel.numpy() * m)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([xtr[i:i + 1]] for i in range(200))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io != "float":
        conv.inference_input_type = getattr(tf, io)
        conv.inference_output_type = getattr(tf, io)
    tfl = bytes(conv.convert())
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tfl)
    return tfl, xte, yte
