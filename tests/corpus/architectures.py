"""Builders of the corpus: common TinyML Keras architectures, small, with deterministic seeds.

Every builder takes the Keras module to use (`keras` = Keras 3, or `tf_keras` = the legacy tf.keras 2,
which converts some layers differently) and returns a compiled, untrained model. `build_model` seeds
everything, builds, gives the weights a trained look (random biases / batch-norm parameters, batch-norm
statistics measured on the synthetic data, so activation ranges are realistic) and returns the model with
its representative dataset.

    ARCHITECTURES      name -> Arch (builder, framework, input shape, data kind)
    make_data          the synthetic input generator of a data kind (float32, the model's real range)
    build_model        (model, representative batch) for one Arch
    source_digest      hash of everything an Arch's model depends on (for the conversion cache)

TensorFlow / Keras are imported inside the functions only: importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CALIB_SAMPLES = 32
REP_SAMPLES = 32


@dataclass(frozen=True)
class Arch:
    """One corpus model: `build(K)` with K = the `framework` module, input `shape` (no batch dim)."""

    name: str
    build: Callable[[Any], Any]
    shape: tuple[int, ...]
    data: str = "image"                 # make_data kind
    framework: str = "keras"            # "keras" (Keras 3) or "tf_keras" (legacy Keras 2)
    seed: int = 0
    batch_size: int | None = None       # fixed batch dim (tf-keras LSTM needs 1)
    notes: str = ""
    kwargs: dict = field(default_factory=dict)


# ------------------------------------------------------------------ synthetic data

def make_data(kind: str, shape: tuple[int, ...], rng: np.random.Generator, n: int) -> np.ndarray:
    """n float32 samples of `shape` in the range a real sensor pipeline gives for `kind`."""
    full = (n, *shape)
    if kind == "image":             # normalised pixels with some spatial structure
        x = rng.random(full)
        coarse = rng.random((n, *[max(1, s // 4) for s in shape[:-1]], shape[-1]))
        for ax in range(1, len(shape)):
            coarse = np.repeat(coarse, 4, axis=ax)
        x = 0.5 * x + 0.5 * coarse[tuple(slice(0, s) for s in full)]
    elif kind == "image255":        # raw 0..255 pixels (models with a Rescaling layer)
        x = np.floor(rng.random(full) * 256.0)
    elif kind == "mfcc":            # MFCC / log-mel features: centred, a few units wide
        x = rng.normal(0.0, 1.0, full) * np.linspace(3.0, 0.5, shape[-1])
    elif kind == "imu":             # accelerometer + gyro windows: sinusoids + noise
        t = np.arange(shape[0])[None, :, None]
        f = rng.uniform(0.02, 0.2, (n, 1, shape[-1]))
        ph = rng.uniform(0, 2 * np.pi, (n, 1, shape[-1]))
        x = 1.5 * np.sin(2 * np.pi * f * t + ph) + rng.normal(0, 0.2, full)
    elif kind == "normal":
        x = rng.normal(0.0, 1.0, full)
    elif kind == "unit":            # features already scaled to 0..1 (autoencoders)
        x = rng.random(full)
    else:
        raise ValueError(f"data kind {kind!r}")
    return x.astype(np.float32)


# ------------------------------------------------------------------ shared blocks

def _classifier(K, x, classes=4):
    return K.layers.Dense(classes, activation="softmax")(x)


def _compile(K, inp, out, name):
    m = K.Model(inp, out, name=name)
    last = m.layers[-1]
    act = getattr(getattr(last, "activation", None), "__name__", "")
    m.compile(optimizer="adam", loss="categorical_crossentropy" if act == "softmax" else "mse")
    return m


def _dw_block(K, x, filters, stride=1):
    """Depthwise-separable block (MobileNet v1 / DS-CNN): DW 3x3 -> BN -> ReLU -> 1x1 -> BN -> ReLU."""
    x = K.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
    x = K.layers.BatchNormalization()(x)
    x = K.layers.ReLU()(x)
    x = K.layers.Conv2D(filters, 1, use_bias=False)(x)
    x = K.layers.BatchNormalization()(x)
    return K.layers.ReLU()(x)


def _act_model(K, act_layer, name):
    """Conv -> activation -> conv -> activation -> GAP -> dense: one activation kind, standalone."""
    inp = K.Input((16, 16, 3))
    x = K.layers.Conv2D(8, 3, padding="same")(inp)
    x = act_layer()(x)
    x = K.layers.Conv2D(8, 3, strides=2, padding="same")(x)
    x = act_layer()(x)
    x = K.layers.GlobalAveragePooling2D()(x)
    return _compile(K, inp, _classifier(K, x), name)


# ------------------------------------------------------------------ builders

def flatten_cnn(K):
    inp = K.Input((28, 28, 1))
    x = K.layers.Conv2D(8, 3, strides=2, activation="relu")(inp)
    x = K.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = K.layers.Flatten()(x)
    x = K.layers.Dense(32, activation="relu")(x)
    return _compile(K, inp, _classifier(K, x, 10), "flatten_cnn")


def gap_cnn(K):
    inp = K.Input((32, 32, 3))
    x = K.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inp)
    x = K.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = K.layers.GlobalAveragePooling2D()(x)
    return _compile(K, inp, _classifier(K, x, 5), "gap_cnn")


def maxpool_cnn(K):
    inp = K.Input((32, 32, 1))
    x = K.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = K.layers.MaxPooling2D(2)(x)
    x = K.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = K.layers.MaxPooling2D(2)(x)
    x = K.layers.Flatten()(x)
    return _compile(K, inp, _classifier(K, x, 4), "maxpool_cnn")


def mobilenet_v2(K):
    m = K.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3), weights=None, classes=3)
    m.compile(optimizer="adam", loss="categorical_crossentropy")
    return m


def mobilenet_v3_small(K, minimalistic=False, include_preprocessing=False):
    m = K.applications.MobileNetV3Small(input_shape=(96, 96, 3), alpha=0.75, minimalistic=minimalistic,
                                        weights=None, classes=3, include_preprocessing=include_preprocessing,
                                        classifier_activation="softmax")
    m.compile(optimizer="adam", loss="categorical_crossentropy")
    return m


def ds_cnn_kws(K):
    """DS-CNN keyword spotting (Hello Edge / MLPerf Tiny KWS shape, fewer channels): 49x10 MFCC."""
    inp = K.Input((49, 10, 1))
    x = K.layers.Conv2D(32, (10, 4), strides=(2, 2), padding="same", use_bias=False)(inp)
    x = K.layers.BatchNormalization()(x)
    x = K.layers.ReLU()(x)
    for _ in range(3):
        x = _dw_block(K, x, 32)
    x = K.layers.AveragePooling2D(pool_size=(25, 5))(x)
    x = K.layers.Flatten()(x)
    return _compile(K, inp, _classifier(K, x, 12), "ds_cnn_kws")


def conv1d_imu(K):
    """Gesture / activity recognition on 128-sample 6-axis IMU windows."""
    inp = K.Input((128, 6))
    x = K.layers.Conv1D(16, 5, strides=2, padding="same", activation="relu")(inp)
    x = K.layers.MaxPooling1D(2)(x)
    x = K.layers.Conv1D(24, 3, padding="same", activation="relu")(x)
    x = K.layers.MaxPooling1D(2)(x)
    x = K.layers.Flatten()(x)
    x = K.layers.Dense(16, activation="relu")(x)
    return _compile(K, inp, _classifier(K, x, 5), "conv1d_imu")


def mean_over_time(K):
    """Conv1D over MFCC frames, then the mean over time (GlobalAveragePooling1D)."""
    inp = K.Input((50, 13))
    x = K.layers.Conv1D(16, 3, padding="same", activation="relu")(inp)
    x = K.layers.Conv1D(16, 3, padding="same", activation="relu")(x)
    x = K.layers.GlobalAveragePooling1D()(x)
    return _compile(K, inp, _classifier(K, x, 4), "mean_over_time")


def dense_autoencoder(K):
    """MLPerf Tiny anomaly-detection shape (smaller): 128 features -> 8 -> 128."""
    inp = K.Input((128,))
    x = inp
    for units in (64, 32, 8, 32, 64):
        x = K.layers.Dense(units)(x)
        x = K.layers.BatchNormalization()(x)
        x = K.layers.ReLU()(x)
    out = K.layers.Dense(128)(x)
    return _compile(K, inp, out, "dense_autoencoder")


def conv_ae_upsampling(K):
    # batch fixed to 1: with a free batch dim Keras 3's UpSampling2D (ops.repeat) leaves H dynamic after the
    # second upsampling and the converter cannot legalize the next Conv2D ("'tf.Conv2D' op is neither a
    # custom op nor a flex op")
    inp = K.Input((32, 32, 1), batch_size=1)
    x = K.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = K.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    x = K.layers.UpSampling2D(2)(x)
    x = K.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = K.layers.UpSampling2D(2)(x)
    out = K.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(x)
    return _compile(K, inp, out, "conv_ae_upsampling")


def conv_ae_transpose(K):
    inp = K.Input((32, 32, 1))
    x = K.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = K.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    x = K.layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(x)
    x = K.layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(x)
    out = K.layers.Conv2D(1, 3, padding="same")(x)
    return _compile(K, inp, out, "conv_ae_transpose")


def inception_concat(K):
    inp = K.Input((24, 24, 3))
    x = K.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inp)
    b1 = K.layers.Conv2D(8, 1, activation="relu")(x)
    b2 = K.layers.Conv2D(8, 1, activation="relu")(x)
    b2 = K.layers.Conv2D(8, 3, padding="same", activation="relu")(b2)
    b3 = K.layers.Conv2D(4, 1, activation="relu")(x)
    b3 = K.layers.Conv2D(4, 5, padding="same", activation="relu")(b3)
    b4 = K.layers.MaxPooling2D(3, strides=1, padding="same")(x)
    b4 = K.layers.Conv2D(4, 1, activation="relu")(b4)
    x = K.layers.Concatenate()([b1, b2, b3, b4])
    x = K.layers.GlobalAveragePooling2D()(x)
    return _compile(K, inp, _classifier(K, x), "inception_concat")


def squeeze_excite(K):
    inp = K.Input((16, 16, 3))
    x = K.layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
    s = K.layers.GlobalAveragePooling2D()(x)
    s = K.layers.Dense(4, activation="relu")(s)
    s = K.layers.Dense(16, activation="sigmoid")(s)
    s = K.layers.Reshape((1, 1, 16))(s)
    x = K.layers.Multiply()([x, s])
    x = K.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = K.layers.GlobalAveragePooling2D()(x)
    return _compile(K, inp, _classifier(K, x), "squeeze_excite")


def bn_after_activation(K):
    """BatchNormalization after the ReLU: cannot fold into the conv, becomes MUL + ADD."""
    inp = K.Input((16, 16, 3))
    x = K.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = K.layers.BatchNormalization()(x)
    x = K.layers.MaxPooling2D(2)(x)
    x = K.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = K.layers.BatchNormalization()(x)
    x = K.layers.GlobalAveragePooling2D()(x)
    return _compile(K, inp, _classifier(K, x), "bn_after_activation")


def act_sigmoid(K):
    return _act_model(K, lambda: K.layers.Activation("sigmoid"), "act_sigmoid")


def act_tanh(K):
    return _act_model(K, lambda: K.layers.Activation("tanh"), "act_tanh")


def act_hard_swish(K):
    return _act_model(K, lambda: K.layers.Activation("hard_swish"), "act_hard_swish")


def act_hard_sigmoid(K):
    return _act_model(K, lambda: K.layers.Activation("hard_sigmoid"), "act_hard_sigmoid")


def act_leaky_relu(K):
    return _act_model(K, lambda: K.layers.LeakyReLU(negative_slope=0.1), "act_leaky_relu")


def act_prelu(K):
    return _act_model(K, lambda: K.layers.PReLU(shared_axes=[1, 2]), "act_prelu")


def act_elu(K):
    return _act_model(K, lambda: K.layers.ELU(), "act_elu")


def act_relu6(K):
    return _act_model(K, lambda: K.layers.ReLU(max_value=6.0), "act_relu6")


def act_relu_layer(K):
    """A ReLU layer after ops it cannot be fused into (concatenation, max-pool): a standalone RELU."""
    inp = K.Input((16, 16, 3))
    a = K.layers.Conv2D(4, 3, padding="same")(inp)
    b = K.layers.Conv2D(4, 1)(inp)
    x = K.layers.Concatenate()([a, b])
    x = K.layers.ReLU()(x)
    x = K.layers.Conv2D(8, 3, strides=2, padding="same")(x)
    x = K.layers.MaxPooling2D(2)(x)
    x = K.layers.ReLU()(x)
    x = K.layers.GlobalAveragePooling2D()(x)
    return _compile(K, inp, _classifier(K, x), "act_relu_layer")


def dilated_conv(K):
    inp = K.Input((24, 24, 3))
    x = K.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = K.layers.Conv2D(8, 3, dilation_rate=2, padding="same", activation="relu")(x)
    x = K.layers.Conv2D(8, 3, dilation_rate=2, padding="valid", activation="relu")(x)
    x = K.layers.GlobalAveragePooling2D()(x)
    return _compile(K, inp, _classifier(K, x), "dilated_conv")


def zero_padding(K):
    inp = K.Input((20, 20, 3))
    x = K.layers.ZeroPadding2D(((1, 2), (2, 1)))(inp)
    x = K.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = K.layers.ZeroPadding2D(1)(x)
    x = K.layers.Conv2D(8, 3, activation="relu")(x)
    x = K.layers.Flatten()(x)
    return _compile(K, inp, _classifier(K, x), "zero_padding")


def resnet_small(K):
    """MLPerf Tiny ResNet-8 shape (narrower): residual stacks with Add skips and 1x1 projections."""
    inp = K.Input((32, 32, 3))
    x = K.layers.Conv2D(8, 3, padding="same", use_bias=False)(inp)
    x = K.layers.BatchNormalization()(x)
    x = K.layers.ReLU()(x)
    for filters, stride in ((8, 1), (16, 2), (24, 2)):
        y = K.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        y = K.layers.BatchNormalization()(y)
        y = K.layers.ReLU()(y)
        y = K.layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
        y = K.layers.BatchNormalization()(y)
        if stride != 1 or x.shape[-1] != filters:
            x = K.layers.Conv2D(filters, 1, strides=stride)(x)
        x = K.layers.Add()([x, y])
        x = K.layers.ReLU()(x)
    x = K.layers.GlobalAveragePooling2D()(x)
    return _compile(K, inp, _classifier(K, x, 10), "resnet_small")


def fomo_detector(K):
    """FOMO-style detector: MobileNet-ish trunk to stride 8, 1x1 head, softmax over channels per cell."""
    inp = K.Input((64, 64, 1))
    x = K.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inp)
    x = K.layers.BatchNormalization()(x)
    x = K.layers.ReLU(max_value=6.0)(x)
    x = _dw_block(K, x, 16, stride=2)
    x = _dw_block(K, x, 16)
    x = _dw_block(K, x, 32, stride=2)
    x = K.layers.Conv2D(16, 1, activation="relu")(x)
    out = K.layers.Conv2D(3, 1, activation="softmax")(x)
    return _compile(K, inp, out, "fomo_detector")


def mnist_mlp(K):
    inp = K.Input((28, 28))
    x = K.layers.Flatten()(inp)
    x = K.layers.Dense(64, activation="relu")(x)
    x = K.layers.Dense(32, activation="relu")(x)
    return _compile(K, inp, _classifier(K, x, 10), "mnist_mlp")


def resize_bilinear(K):
    inp = K.Input((24, 24, 3))
    x = K.layers.Resizing(16, 16, interpolation="bilinear")(inp)
    x = K.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = K.layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = K.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    x = K.layers.Flatten()(x)
    return _compile(K, inp, _classifier(K, x), "resize_bilinear")


def merge_min_max_sub(K):
    inp = K.Input((16, 16, 3))
    a = K.layers.Conv2D(8, 3, padding="same")(inp)
    b = K.layers.Conv2D(8, 1)(inp)
    c = K.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    lo = K.layers.Minimum()([a, b])
    hi = K.layers.Maximum()([b, c])
    x = K.layers.Subtract()([hi, lo])
    x = K.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = K.layers.GlobalAveragePooling2D()(x)
    return _compile(K, inp, _classifier(K, x), "merge_min_max_sub")


def reshape_permute(K):
    """Spectrogram (time, freq) -> Permute -> (freq, time): real TRANSPOSEs (4-D and 3-D) and Reshapes.
    (No Dense on the 3-D tensor: with a free batch dim Keras 3 converts that to a dynamic SHAPE / GATHER /
    REDUCE_PROD chain, and tflite-micro has no REDUCE_PROD kernel, so there would be no reference.)"""
    inp = K.Input((20, 12, 1))
    x = K.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = K.layers.Permute((2, 1, 3))(x)
    x = K.layers.Conv2D(4, (3, 1), strides=(2, 1), padding="same", activation="relu")(x)
    x = K.layers.Reshape((6, 80))(x)
    x = K.layers.Permute((2, 1))(x)
    x = K.layers.Reshape((80, 6, 1))(x)
    x = K.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    x = K.layers.Flatten()(x)
    return _compile(K, inp, _classifier(K, x), "reshape_permute")


def cropping_slice(K):
    inp = K.Input((32, 32, 1))
    x = K.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = K.layers.Cropping2D(((2, 4), (3, 1)))(x)
    x = K.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = K.layers.Lambda(lambda t: t[:, 1:9, :, 2:6])(x)
    x = K.layers.Flatten()(x)
    return _compile(K, inp, _classifier(K, x), "cropping_slice")


def separable_conv(K):
    inp = K.Input((32, 32, 3))
    x = K.layers.SeparableConv2D(16, 3, strides=2, padding="same", activation="relu")(inp)
    x = K.layers.SeparableConv2D(24, 3, strides=2, padding="same", activation="relu")(x)
    x = K.layers.SeparableConv2D(32, 3, depth_multiplier=2, padding="same", activation="relu")(x)
    x = K.layers.GlobalAveragePooling2D()(x)
    return _compile(K, inp, _classifier(K, x), "separable_conv")


def lstm(K, return_sequences=False):
    """tf-keras LSTM, batch fixed to 1: converts to UNIDIRECTIONAL_SEQUENCE_LSTM."""
    inp = K.Input((20, 6), batch_size=1)
    x = K.layers.LSTM(16, return_sequences=return_sequences)(inp)
    if return_sequences:
        x = K.layers.LSTM(8)(x)
    return _compile(K, inp, _classifier(K, x), "lstm")


def sine_mlp(K):
    """The TFLM 'hello world': a scalar -> sin(x) regression MLP."""
    inp = K.Input((1,))
    x = K.layers.Dense(16, activation="relu")(inp)
    x = K.layers.Dense(16, activation="relu")(x)
    return _compile(K, inp, K.layers.Dense(1)(x), "sine_mlp")


def attention_tiny(K):
    """keras.layers.Attention over projected queries / keys / values: two BATCH_MATMULs of activations (scores
    Q.K^T with adj_y, weights.V) around a softmax. Batch fixed to 1: with a free batch the converter leaves
    SHAPE / REDUCE_PROD in the graph, which tflite-micro (the oracle) has no kernel for."""
    inp = K.Input((16, 8), batch_size=1)
    q = K.layers.Dense(16)(inp)
    v = K.layers.Dense(16)(inp)
    k = K.layers.Dense(16)(inp)
    x = K.layers.Attention()([q, v, k])
    x = K.layers.GlobalAveragePooling1D()(x)
    return _compile(K, inp, _classifier(K, x), "attention_tiny")


def mha_encoder(K):
    """A tiny transformer encoder block: MultiHeadAttention (2 heads, [1, H, T, d] BATCH_MATMULs), residual,
    LayerNormalization, feed-forward (batch 1, as attention_tiny)."""
    inp = K.Input((12, 16), batch_size=1)
    a = K.layers.MultiHeadAttention(num_heads=2, key_dim=8)(inp, inp)
    x = K.layers.LayerNormalization()(inp + a)
    f = K.layers.Dense(32, activation="relu")(x)
    x = K.layers.LayerNormalization()(x + K.layers.Dense(16)(f))
    x = K.layers.GlobalAveragePooling1D()(x)
    return _compile(K, inp, _classifier(K, x), "mha_encoder")


def div_ratio(K):
    """The ratio of two learned features (tensor / tensor DIV)."""
    import tensorflow as tf
    inp = K.Input((16,))
    a = K.layers.Dense(8, activation="relu")(inp)
    b = K.layers.Dense(8, activation="sigmoid")(inp)
    d = K.layers.Lambda(lambda t: tf.math.divide(t[0], t[1] + 0.5))([a, b])
    return _compile(K, inp, _classifier(K, d), "div_ratio")


def repeat_vector(K):
    """RepeatVector (a TILE along one axis) feeding a Conv1D decoder, as in sequence autoencoders."""
    inp = K.Input((12,))
    x = K.layers.Dense(6, activation="relu")(inp)
    x = K.layers.RepeatVector(5)(x)
    out = K.layers.Conv1D(4, 3, padding="same")(x)
    return _compile(K, inp, out, "repeat_vector")


# ------------------------------------------------------------------ the registry

_ALL = [
    Arch("flatten_cnn", flatten_cnn, (28, 28, 1)),
    Arch("flatten_cnn_tfk", flatten_cnn, (28, 28, 1), framework="tf_keras"),
    Arch("gap_cnn", gap_cnn, (32, 32, 3)),
    Arch("maxpool_cnn", maxpool_cnn, (32, 32, 1)),
    Arch("mobilenet_v2", mobilenet_v2, (96, 96, 3), notes="keras.applications, alpha 0.35"),
    # both include_preprocessing settings convert; the default (True) puts Rescaling(x/127.5 - 1) in the graph
    # (a MUL + ADD by constants on the raw 0..255 input), False expects the caller to scale to -1..1
    Arch("mobilenet_v3_small", mobilenet_v3_small, (96, 96, 3),
         notes="alpha 0.75, include_preprocessing=False (hard-swish, squeeze-excite)"),
    Arch("mobilenet_v3_small_min", mobilenet_v3_small, (96, 96, 3), data="image255",
         kwargs={"minimalistic": True, "include_preprocessing": True},
         notes="minimalistic=True, alpha 0.75, include_preprocessing=True (Rescaling in the graph)"),
    Arch("ds_cnn_kws", ds_cnn_kws, (49, 10, 1), data="mfcc"),
    Arch("conv1d_imu", conv1d_imu, (128, 6), data="imu"),
    Arch("conv1d_imu_tfk", conv1d_imu, (128, 6), data="imu", framework="tf_keras"),
    Arch("mean_over_time", mean_over_time, (50, 13), data="mfcc"),
    Arch("dense_autoencoder", dense_autoencoder, (128,), data="unit"),
    Arch("conv_ae_upsampling", conv_ae_upsampling, (32, 32, 1), batch_size=1,
         notes="Input(batch_size=1): with batch None Keras 3 UpSampling2D x2 does not convert"),
    Arch("conv_ae_transpose", conv_ae_transpose, (32, 32, 1)),
    Arch("inception_concat", inception_concat, (24, 24, 3)),
    Arch("squeeze_excite", squeeze_excite, (16, 16, 3)),
    Arch("bn_after_activation", bn_after_activation, (16, 16, 3)),
    Arch("act_sigmoid", act_sigmoid, (16, 16, 3)),
    Arch("act_tanh", act_tanh, (16, 16, 3)),
    Arch("act_hard_swish", act_hard_swish, (16, 16, 3)),
    Arch("act_hard_sigmoid", act_hard_sigmoid, (16, 16, 3)),
    Arch("act_leaky_relu", act_leaky_relu, (16, 16, 3)),
    Arch("act_prelu", act_prelu, (16, 16, 3)),
    Arch("act_elu", act_elu, (16, 16, 3)),
    Arch("act_relu6", act_relu6, (16, 16, 3)),
    Arch("act_relu_layer", act_relu_layer, (16, 16, 3)),
    Arch("dilated_conv", dilated_conv, (24, 24, 3)),
    Arch("zero_padding", zero_padding, (20, 20, 3)),
    Arch("resnet_small", resnet_small, (32, 32, 3)),
    Arch("fomo_detector", fomo_detector, (64, 64, 1)),
    Arch("mnist_mlp", mnist_mlp, (28, 28)),
    Arch("mnist_mlp_tfk", mnist_mlp, (28, 28), framework="tf_keras"),
    Arch("resize_bilinear", resize_bilinear, (24, 24, 3)),
    Arch("merge_min_max_sub", merge_min_max_sub, (16, 16, 3)),
    Arch("reshape_permute", reshape_permute, (20, 12, 1), data="mfcc"),
    Arch("cropping_slice", cropping_slice, (32, 32, 1)),
    Arch("separable_conv", separable_conv, (32, 32, 3)),
    Arch("sine_mlp", sine_mlp, (1,), data="normal"),
    Arch("attention_tiny", attention_tiny, (16, 8), data="normal", batch_size=1, notes="BATCH_MATMUL"),
    Arch("mha_encoder", mha_encoder, (12, 16), data="normal", batch_size=1, notes="BATCH_MATMUL, 4-D batch dims"),
    Arch("div_ratio", div_ratio, (16,), data="normal", notes="tensor / tensor DIV"),
    Arch("repeat_vector", repeat_vector, (12,), data="normal", notes="TILE along one axis"),
    Arch("lstm_tfk", lstm, (20, 6), data="imu", framework="tf_keras", batch_size=1),
    Arch("lstm_stacked_tfk", lstm, (20, 6), data="imu", framework="tf_keras", batch_size=1,
         kwargs={"return_sequences": True}, notes="two LSTMs, the first returning sequences"),
]
ARCHITECTURES: dict[str, Arch] = {a.name: a for a in _ALL}
assert len(ARCHITECTURES) == len(_ALL), "duplicate architecture name"


# ------------------------------------------------------------------ building

def keras_module(framework: str):
    if framework == "keras":
        import keras
        return keras
    if framework == "tf_keras":
        import tf_keras
        return tf_keras
    raise ValueError(f"framework {framework!r}")


def _realistic_weights(K, model, x: np.ndarray, rng: np.random.Generator) -> None:
    """Make a freshly initialised model look trained where it matters for int8 kernels: non-zero biases,
    batch-norm scale / offset away from 1 / 0, PReLU slopes, and batch-norm moving statistics set to the
    real statistics of `x` (one forward pass in training mode with momentum 0). Costs a fraction of a
    second where model.fit costs seconds (tracing) per model and after a few steps would leave the moving
    statistics at their initial 0 / 1 anyway."""
    bns = []
    for layer in model.layers:
        if isinstance(layer, K.layers.BatchNormalization):
            n = layer.gamma.shape
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype(np.float32))
            layer.beta.assign(rng.normal(0.0, 0.2, n).astype(np.float32))
            bns.append((layer, layer.momentum))
            layer.momentum = 0.0
        elif isinstance(layer, K.layers.PReLU):
            layer.alpha.assign(rng.uniform(0.05, 0.4, layer.alpha.shape).astype(np.float32))
        elif getattr(layer, "bias", None) is not None and hasattr(layer.bias, "assign"):
            layer.bias.assign(rng.normal(0.0, 0.1, layer.bias.shape).astype(np.float32))
    if bns:
        bs = model.inputs[0].shape[0]
        if bs is None:
            model(x, training=True)
        else:                           # fixed batch: one pass per batch (momentum 0 keeps the last)
            model(x[:bs], training=True)
        for layer, momentum in bns:
            layer.momentum = momentum


def build_model(arch: Arch) -> tuple[Any, np.ndarray]:
    """The arch's model with deterministic, realistic weights (seeded), + its representative inputs."""
    K = keras_module(arch.framework)
    K.backend.clear_session()           # fresh layer names / graph: the same model in any process order
    K.utils.set_random_seed(arch.seed)
    model = arch.build(K, **arch.kwargs)
    rng = np.random.default_rng(1000 + arch.seed)
    _realistic_weights(K, model, make_data(arch.data, arch.shape, rng, CALIB_SAMPLES), rng)
    rep = make_data(arch.data, arch.shape, np.random.default_rng(2000 + arch.seed), REP_SAMPLES)
    return model, rep


def sample_inputs(arch: Arch, n: int, seed: int = 7) -> np.ndarray:
    """Float inputs for float-I/O tests: the arch's data distribution, a seed disjoint from calibration."""
    return make_data(arch.data, arch.shape, np.random.default_rng(seed), n)



# ------------------------------------------------------------------ cache key

def _module_functions() -> dict[str, types.FunctionType]:
    mod = sys.modules[__name__]
    return {k: v for k, v in vars(mod).items()
            if isinstance(v, types.FunctionType) and v.__module__ == __name__}


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _code_names(c)
    return names


def source_digest(arch: Arch) -> str:
    """sha256 over the source of the builder and every module function it (transitively) calls, the
    training / data code, and the Arch's fields: any edit that can change the model changes the key."""
    funcs = _module_functions()
    todo = [arch.build, build_model, make_data, _realistic_weights, keras_module]
    seen: dict[str, str] = {}
    while todo:
        f = todo.pop()
        if f.__name__ in seen:
            continue
        seen[f.__name__] = inspect.getsource(f)
        todo += [funcs[n] for n in _code_names(f.__code__) if n in funcs and n not in seen]
    h = hashlib.sha256()
    for name in sorted(seen):
        h.update(name.encode() + b"\0" + seen[name].encode() + b"\0")
    fields = (arch.name, arch.shape, arch.data, arch.framework, arch.seed, arch.batch_size,
              sorted(arch.kwargs.items()), CALIB_SAMPLES, REP_SAMPLES)
    h.update(repr(fields).encode())
    return h.hexdigest()
