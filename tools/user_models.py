"""Offline corpus of ordinary Keras models users bring, beyond tests/corpus: does mpyml pack them, bit-exactly?

Owns: the architectures below (small Keras builders, random weights, synthetic data: no downloads), their
conversion the ordinary way (mpyml.convert.quantized_tflite = TFLiteConverter full-integer int8 PTQ), the
cache of converted models in build/user_models/<name>.tflite, and the report: for each model whether
`mpyml.pack` accepts it (else the refusal) and how many of N samples the .mpk gives byte-identical outputs
to tflite-micro on the MicroPython unix port (C natmod and, with --viper, the viper engine).

    .venv/bin/python tools/user_models.py [names...] [--samples N] [--viper] [--reconvert] [--json OUT]

A rerun only re-packs and re-runs the cached .tflite files (--reconvert rebuilds them).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "host"))

from corpus.architectures import Arch, _realistic_weights, keras_module, make_data  # noqa: E402

CACHE = REPO / "build" / "user_models"


# ------------------------------------------------------------------ builders (K = keras or tf_keras)

def _head(K: Any, x: Any, classes: int = 4) -> Any:
    return K.layers.Dense(classes, activation="softmax")(x)


def _model(K: Any, inp: Any, out: Any, name: str) -> Any:
    return K.Model(inp, out, name=name)


def attention_layer(K: Any, batch_size: int | None = None) -> Any:
    """keras.layers.Attention (dot-product) over projected queries / keys / values: two matmuls of
    activations (BATCH_MATMUL) around a softmax."""
    inp = K.Input((16, 8), batch_size=batch_size)
    q = K.layers.Dense(16)(inp)
    v = K.layers.Dense(16)(inp)
    k = K.layers.Dense(16)(inp)
    x = K.layers.Attention()([q, v, k])
    x = K.layers.GlobalAveragePooling1D()(x)
    return _model(K, inp, _head(K, x), "attention_layer")


def mha_block(K: Any, batch_size: int | None = None) -> Any:
    """A tiny transformer encoder block: MultiHeadAttention (2 heads) + residual, LayerNorm, FFN."""
    inp = K.Input((12, 16), batch_size=batch_size)
    a = K.layers.MultiHeadAttention(num_heads=2, key_dim=8)(inp, inp)
    x = K.layers.LayerNormalization()(inp + a)
    f = K.layers.Dense(32, activation="relu")(x)
    f = K.layers.Dense(16)(f)
    x = K.layers.LayerNormalization()(x + f)
    x = K.layers.GlobalAveragePooling1D()(x)
    return _model(K, inp, _head(K, x), "mha_block")


def mha_only(K: Any) -> Any:
    """MultiHeadAttention self-attention alone (no LayerNorm), flattened into a dense head."""
    inp = K.Input((10, 12))
    a = K.layers.MultiHeadAttention(num_heads=3, key_dim=4)(inp, inp)
    x = K.layers.Flatten()(a)
    return _model(K, inp, _head(K, x), "mha_only")


def matmul_lambda(K: Any) -> Any:
    """Gram matrix of features (x @ x^T) in a Lambda: a matmul of two activations with adj_y."""
    import tensorflow as tf
    inp = K.Input((8, 6))
    h = K.layers.Dense(10, activation="relu")(inp)
    g = K.layers.Lambda(lambda t: tf.matmul(t, t, transpose_b=True))(h)
    x = K.layers.Flatten()(g)
    return _model(K, inp, _head(K, x), "matmul_lambda")


def upsampling1d(K: Any, batch_size: int | None = None, size: int = 2) -> Any:
    inp = K.Input((32, 4), batch_size=batch_size)
    x = K.layers.Conv1D(8, 3, padding="same", activation="relu")(inp)
    x = K.layers.MaxPooling1D(2)(x)
    x = K.layers.UpSampling1D(size)(x)
    x = K.layers.Conv1D(4, 3, padding="same")(x)
    return _model(K, inp, x, "upsampling1d")


def upsampling2d_bilinear(K: Any) -> Any:
    inp = K.Input((16, 16, 3), batch_size=1)
    x = K.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = K.layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = K.layers.Conv2D(3, 3, padding="same")(x)
    return _model(K, inp, x, "upsampling2d_bilinear")


def conv2d_transpose(K: Any) -> Any:
    inp = K.Input((12, 12, 4))
    x = K.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = K.layers.Conv2DTranspose(6, 3, strides=2, padding="same", activation="relu")(x)
    x = K.layers.Conv2D(2, 1)(x)
    return _model(K, inp, x, "conv2d_transpose")


def separable_conv1d(K: Any) -> Any:
    inp = K.Input((40, 6))
    x = K.layers.SeparableConv1D(12, 5, padding="same", activation="relu")(inp)
    x = K.layers.SeparableConv1D(16, 3, strides=2, activation="relu")(x)
    x = K.layers.GlobalMaxPooling1D()(x)
    return _model(K, inp, _head(K, x), "separable_conv1d")


def gru_tfk(K: Any, unroll: bool = False) -> Any:
    inp = K.Input((16, 5), batch_size=1)
    x = K.layers.GRU(12, unroll=unroll)(inp)
    return _model(K, inp, _head(K, x), "gru_tfk")


def lstm_keras3(K: Any, unroll: bool = False) -> Any:
    inp = K.Input((12, 4), batch_size=1)
    x = K.layers.LSTM(8, unroll=unroll)(inp)
    return _model(K, inp, _head(K, x), "lstm_keras3")


def global_max_pool(K: Any) -> Any:
    inp = K.Input((24, 24, 3))
    x = K.layers.Conv2D(8, 3, strides=2, activation="relu")(inp)
    x = K.layers.Conv2D(16, 3, activation="relu")(x)
    x = K.layers.GlobalMaxPooling2D()(x)
    return _model(K, inp, _head(K, x), "global_max_pool")


def concat_branches_1d(K: Any) -> Any:
    inp = K.Input((50, 3))
    bs = [K.layers.Conv1D(6, k, padding="same", activation="relu")(inp) for k in (3, 5, 9)]
    x = K.layers.Concatenate()(bs)
    x = K.layers.GlobalAveragePooling1D()(x)
    return _model(K, inp, _head(K, x), "concat_branches_1d")


def mbv3_block(K: Any) -> Any:
    """MobileNetV3 inverted residual: 1x1 expand, hard-swish, DW 3x3, squeeze-excite (Multiply with a
    hard-sigmoid gate), 1x1 project, residual Add."""
    inp = K.Input((16, 16, 8))
    x = K.layers.Conv2D(24, 1, use_bias=False)(inp)
    x = K.layers.BatchNormalization()(x)
    x = K.layers.Activation("hard_swish")(x)
    x = K.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = K.layers.BatchNormalization()(x)
    x = K.layers.Activation("hard_swish")(x)
    s = K.layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = K.layers.Conv2D(8, 1, activation="relu")(s)
    s = K.layers.Conv2D(24, 1, activation="hard_sigmoid")(s)
    x = K.layers.Multiply()([x, s])
    x = K.layers.Conv2D(8, 1, use_bias=False)(x)
    x = K.layers.BatchNormalization()(x)
    x = K.layers.Add()([inp, x])
    x = K.layers.GlobalAveragePooling2D()(x)
    return _model(K, inp, _head(K, x), "mbv3_block")


def dropout_bn_mlp(K: Any) -> Any:
    inp = K.Input((20,))
    x = K.layers.Dense(32)(inp)
    x = K.layers.BatchNormalization()(x)
    x = K.layers.ReLU()(x)
    x = K.layers.Dropout(0.3)(x)
    x = K.layers.Dense(16, activation="relu")(x)
    x = K.layers.Dropout(0.2)(x)
    return _model(K, inp, _head(K, x, 3), "dropout_bn_mlp")


def resizing_input(K: Any) -> Any:
    inp = K.Input((32, 32, 1), batch_size=1)
    x = K.layers.Resizing(20, 20)(inp)
    x = K.layers.Conv2D(8, 3, activation="relu")(x)
    x = K.layers.GlobalAveragePooling2D()(x)
    return _model(K, inp, _head(K, x), "resizing_input")


def normalization_layer(K: Any) -> Any:
    inp = K.Input((10,))
    norm = K.layers.Normalization(mean=np.linspace(0.2, 0.8, 10), variance=np.linspace(0.5, 2.0, 10))
    x = norm(inp)
    x = K.layers.Dense(16, activation="relu")(x)
    return _model(K, inp, _head(K, x, 2), "normalization_layer")


def crop_pad_1d(K: Any) -> Any:
    inp = K.Input((40, 4))
    x = K.layers.Cropping1D((3, 5))(inp)
    x = K.layers.ZeroPadding1D((2, 1))(x)
    x = K.layers.Conv1D(8, 3, activation="relu")(x)
    x = K.layers.GlobalAveragePooling1D()(x)
    return _model(K, inp, _head(K, x), "crop_pad_1d")


def permute_3d(K: Any) -> Any:
    inp = K.Input((8, 6, 4))
    x = K.layers.Permute((3, 1, 2))(inp)
    x = K.layers.Conv2D(6, 3, padding="same", activation="relu")(x)
    x = K.layers.Flatten()(x)
    return _model(K, inp, _head(K, x), "permute_3d")


def lambda_math(K: Any) -> Any:
    """tf.math in Lambda layers: abs, square, maximum / minimum, and x / sum(|x|) (tensor / tensor DIV)."""
    import tensorflow as tf
    inp = K.Input((24,))
    h = K.layers.Dense(16)(inp)
    a = K.layers.Lambda(lambda t: tf.math.abs(t))(h)
    s = K.layers.Lambda(lambda t: tf.math.square(t))(h)
    m = K.layers.Lambda(lambda t: tf.math.maximum(t[0], t[1]))([a, s])
    d = K.layers.Lambda(lambda t: t / (tf.reduce_sum(tf.math.abs(t), axis=-1, keepdims=True) + 1.0))(m)
    return _model(K, inp, _head(K, d), "lambda_math")


def div_tensors(K: Any) -> Any:
    """Ratio of two learned features (tensor / tensor DIV, e.g. a normalised band energy)."""
    import tensorflow as tf
    inp = K.Input((16,))
    a = K.layers.Dense(8, activation="relu")(inp)
    b = K.layers.Dense(8, activation="sigmoid")(inp)
    d = K.layers.Lambda(lambda t: tf.math.divide(t[0], t[1] + 0.5))([a, b])
    return _model(K, inp, _head(K, d), "div_tensors")


def time_distributed_dense(K: Any) -> Any:
    inp = K.Input((10, 6))
    x = K.layers.TimeDistributed(K.layers.Dense(8, activation="relu"))(inp)
    x = K.layers.Flatten()(x)
    return _model(K, inp, _head(K, x), "time_distributed_dense")


def conv1d_transpose(K: Any) -> Any:
    inp = K.Input((16, 4))
    x = K.layers.Conv1D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = K.layers.Conv1DTranspose(4, 3, strides=2, padding="same")(x)
    return _model(K, inp, x, "conv1d_transpose")


def repeat_vector(K: Any) -> Any:
    inp = K.Input((12,))
    x = K.layers.Dense(6, activation="relu")(inp)
    x = K.layers.RepeatVector(5)(x)
    x = K.layers.Conv1D(4, 3, padding="same")(x)
    return _model(K, inp, x, "repeat_vector")


def embedding_int(K: Any) -> Any:
    inp = K.Input((12,), dtype="int32")
    x = K.layers.Embedding(50, 8)(inp)
    x = K.layers.GlobalAveragePooling1D()(x)
    return _model(K, inp, _head(K, x), "embedding_int")


def _u(name: str, build: Callable[[Any], Any], shape: tuple[int, ...], **kw: Any) -> Arch:
    return Arch(name, build, shape, **kw)


USER: list[Arch] = [
    _u("attention_layer", attention_layer, (16, 8), data="normal"),
    _u("mha_block", mha_block, (12, 16), data="normal"),
    _u("attention_layer_b1", attention_layer, (16, 8), data="normal", kwargs={"batch_size": 1},
       notes="static batch: no SHAPE / REDUCE_PROD, so tflite-micro itself is the oracle"),
    _u("mha_block_b1", mha_block, (12, 16), data="normal", kwargs={"batch_size": 1}),
    _u("mha_only", mha_only, (10, 12), data="normal"),
    _u("matmul_lambda", matmul_lambda, (8, 6), data="normal"),
    _u("upsampling1d", upsampling1d, (32, 4), data="imu"),
    _u("upsampling1d_b1_x3", upsampling1d, (32, 4), data="imu", batch_size=1, kwargs={"batch_size": 1, "size": 3}),
    _u("upsampling1d_tfk", upsampling1d, (32, 4), data="imu", framework="tf_keras"),
    _u("upsampling2d_bilinear", upsampling2d_bilinear, (16, 16, 3), batch_size=1),
    _u("conv2d_transpose", conv2d_transpose, (12, 12, 4)),
    _u("separable_conv1d", separable_conv1d, (40, 6), data="imu"),
    _u("gru_tfk", gru_tfk, (16, 5), data="imu", framework="tf_keras", batch_size=1,
       notes="refused by mpyml convert before TensorFlow's converter segfaults: use unroll=True"),
    _u("gru_tfk_unroll", gru_tfk, (16, 5), data="imu", framework="tf_keras", batch_size=1,
       kwargs={"unroll": True}),
    _u("gru_keras3_unroll", gru_tfk, (16, 5), data="imu", batch_size=1, kwargs={"unroll": True}),
    _u("lstm_keras3", lstm_keras3, (12, 4), data="imu", batch_size=1,
       notes="refused by mpyml convert before TensorFlow's converter segfaults: use unroll=True"),
    _u("lstm_keras3_unroll", lstm_keras3, (12, 4), data="imu", batch_size=1, kwargs={"unroll": True}),
    _u("global_max_pool", global_max_pool, (24, 24, 3)),
    _u("concat_branches_1d", concat_branches_1d, (50, 3), data="imu"),
    _u("mbv3_block", mbv3_block, (16, 16, 8)),
    _u("dropout_bn_mlp", dropout_bn_mlp, (20,), data="normal"),
    _u("resizing_input", resizing_input, (32, 32, 1), batch_size=1),
    _u("normalization_layer", normalization_layer, (10,), data="unit"),
    _u("crop_pad_1d", crop_pad_1d, (40, 4), data="imu"),
    _u("permute_3d", permute_3d, (8, 6, 4), data="normal"),
    _u("lambda_math", lambda_math, (24,), data="normal"),
    _u("div_tensors", div_tensors, (16,), data="normal"),
    _u("time_distributed_dense", time_distributed_dense, (10, 6), data="imu"),
    _u("conv1d_transpose", conv1d_transpose, (16, 4), data="imu"),
    _u("repeat_vector", repeat_vector, (12,), data="normal"),
    _u("embedding_int", embedding_int, (12,), data="tokens"),
]
BY_NAME = {a.name: a for a in USER}


# ------------------------------------------------------------------ convert, pack, run

def _data(arch: Arch, seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if arch.data == "tokens":
        return rng.integers(0, 50, size=(n, *arch.shape)).astype(np.float32)
    return make_data(arch.data, arch.shape, rng, n).astype(np.float32)


def convert_one(arch: Arch) -> bytes:
    """Build (seeded, realistic weights) and convert at int8 I/O the ordinary way."""
    from mpyml.convert import load_model, quantized_tflite
    K = keras_module(arch.framework)
    K.backend.clear_session()
    K.utils.set_random_seed(arch.seed)
    model = arch.build(K, **arch.kwargs)
    rng = np.random.default_rng(1000 + arch.seed)
    if arch.data != "tokens":
        _realistic_weights(K, model, _data(arch, 1000, 32), rng)
    cal = _data(arch, 2000, 32)
    return quantized_tflite(load_model(model), cal, "int8")


def tflite_of(arch: Arch, reconvert: bool = False) -> bytes:
    CACHE.mkdir(parents=True, exist_ok=True)
    p = CACHE / f"{arch.name}.tflite"
    err = CACHE / f"{arch.name}.error"
    if not reconvert:
        if p.exists():
            return p.read_bytes()
        if err.exists():
            raise RuntimeError(err.read_text())
    # each conversion in its own process: TensorFlow crashes (segfaults) on some models, and Keras 3 /
    # tf-keras do not mix in one process
    err.unlink(missing_ok=True)
    p.unlink(missing_ok=True)
    r = subprocess.run([sys.executable, __file__, "--convert-only", arch.name], capture_output=True, text=True)
    if r.returncode != 0 or not p.exists():
        if not err.exists():
            err.write_text(f"conversion crashed (exit status {r.returncode})")
        raise RuntimeError(err.read_text())
    return p.read_bytes()


def _convert_only(name: str) -> int:
    arch = BY_NAME[name]
    try:
        tfl = convert_one(arch)
    except Exception as e:  # noqa: BLE001 - recorded as the model's conversion failure
        (CACHE / f"{name}.error").write_text(
            f"conversion failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        traceback.print_exc()
        return 1
    (CACHE / f"{name}.tflite").write_bytes(tfl)
    return 0


def check_one(arch: Arch, tfl: bytes, samples: int, viper: bool) -> dict[str, Any]:
    """Pack, then run `samples` inputs on tflite-micro and on the unix port: bit-exact sample counts."""
    from mpyml.packer import PackError, pack
    from mpyml.tflite_model import read_tflite
    from mpyml.tflm import reference_runner
    from mpyml.unix_port import run_batch
    ops = sorted({o.op for o in read_tflite(tfl).operators})
    res: dict[str, Any] = {"name": arch.name, "tflite_ops": ops}
    try:
        mpk = pack(tfl)
    except PackError as e:
        res["packed"] = False
        res["refusal"] = str(e).splitlines()[0]
        return res
    res["packed"] = True
    ref = reference_runner(tfl) if "TILE" not in ops else None
    if "SELECT_V2" in ops or "SELECT" in ops:   # Keras 3 Embedding index wrap: no int32 SELECT in tflite-micro
        from mpyml.tflm import TfliteRefRunner
        ref = TfliteRefRunner(tfl)
    det = (ref or reference_runner(_tile_free(tfl))).input_details()[0]
    xs = _data(arch, 7, samples)
    ins = [det.quantize(x[None]) if det.dtype != np.float32 and det.dtype != np.int32 else
           x[None].astype(det.dtype).reshape(det.shape) for x in xs]
    if "TILE" in ops:                   # tflite-micro has no TILE kernel: TFLite's reference kernels (test_corpus)
        from test_corpus import reference
        want = [reference(tfl, [a])[0] for a in ins]
        res["oracle"] = "tflite reference kernels"
    else:
        oracle = _tflm_on_cleaned(tfl) if ref is not None and ref.oracle != "tflite-micro" else None
        run = oracle or ref
        assert run is not None
        want = [run.run([a])[0] for a in ins]
        res["oracle"] = "tflite-micro on graph.cleanup's exact rewrite" if oracle else ref.oracle
    for eng in ("natmod", "viper") if viper else ("natmod",):
        got = run_batch(mpk, [[a] for a in ins], engine=None if eng == "natmod" else "viper").batch
        res[f"{eng}_exact"] = sum(bool(np.array_equal(w, g[0]) and w.dtype == g[0].dtype)
                                  for w, g in zip(want, got, strict=True))
    res["samples"] = samples
    return res


def _tflm_on_cleaned(tfl: bytes) -> Any:
    """tflite-micro on the graph mpyml packs (graph.cleanup folds the converter's SHAPE / REDUCE_PROD batch
    arithmetic, which tflite-micro has no kernels for), when that graph can be written back; else None."""
    from mpyml.graph import cleanup
    from mpyml.tflite_model import read_tflite
    from mpyml.tflite_write import write_tflite
    from mpyml.tflm import TflmRunner
    try:
        return TflmRunner(write_tflite(cleanup(read_tflite(tfl))[0]))
    except (ValueError, RuntimeError):
        return None


def _tile_free(tfl: bytes) -> bytes:
    """A model with the same input, for its input details only (tflite-micro cannot load TILE)."""
    from test_corpus import _tile_v1
    return _tile_v1(tfl)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--viper", action="store_true")
    ap.add_argument("--reconvert", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--convert-only", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.convert_only:
        CACHE.mkdir(parents=True, exist_ok=True)
        return _convert_only(a.convert_only)
    archs = [BY_NAME[n] for n in a.names] if a.names else USER
    rows = []
    for arch in archs:
        try:
            tfl = tflite_of(arch, a.reconvert)
        except RuntimeError as e:
            rows.append({"name": arch.name, "packed": False, "refusal": str(e)})
        else:
            try:
                rows.append(check_one(arch, tfl, a.samples, a.viper))
            except Exception as e:  # noqa: BLE001 - report and go on with the next model
                rows.append({"name": arch.name, "packed": True, "error": f"{type(e).__name__}: {e}"})
        r = rows[-1]
        status = (f"exact natmod {r.get('natmod_exact')}/{r.get('samples')}"
                  + (f" viper {r.get('viper_exact')}/{r.get('samples')}" if a.viper else "")
                  if r.get("packed") and "error" not in r else r.get("refusal") or r.get("error"))
        oracle = f"  [oracle: {r['oracle']}]" if r.get("oracle", "tflite-micro") != "tflite-micro" else ""
        print(f"{arch.name:24s} {'PACKS' if r.get('packed') else 'REFUSED':8s} {status}{oracle}", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    print(f"{sum(bool(r.get('packed')) for r in rows)}/{len(rows)} pack")
    return 0


if __name__ == "__main__":
    sys.exit(main())
