"""PhiNet-style backbones (Paissan et al., "PhiNets: a scalable backbone for low-power AI at the edge",
ACM TECS 2022, doi:10.1145/3510832), as a plain layer list and as a Keras model built from that list.

Owns: the architecture `mpyml fit` scales. One `Arch` (input shape, classes, width alpha, shape factor beta,
first expansion t0, number of blocks) gives one `layers()` list, which both the cheap predictor in fit.py
and the Keras builder below walk, so the two never disagree about the graph:

- stem: a 3x3 separable convolution, stride 2 (depthwise 3x3 + pointwise to int(48 alpha) channels), ReLU6;
- block 1: depthwise 3x3 + linear 1x1 projection to int(24 alpha) (expansion 1, no expand conv);
- blocks 2..N: inverted residual blocks (1x1 expand, ReLU6; 3x3 depthwise, ReLU6; linear 1x1 project;
  identity shortcut when stride 1 and widths match), the expansion of block i growing linearly from t0
  (block 1) to beta*t0 (block N): t_i = t0 * (1 + (beta - 1) * i / N); stride 2 at blocks 2 and 4 and at
  the `downsampling` blocks (5 and 7), where the width doubles (24 -> 48 alpha at block 4, then x2);
- head: global average pooling, a dense layer to the classes, softmax.

Axes of size 1 (a 49x1 strip, a 1-D IMU window given as Tx1xC) get kernel 1 and stride 1 along that axis,
so the same family covers images, spectrograms and time series. Batch normalisation follows every conv in
the Keras model (folded away by the TFLite converter). TensorFlow is imported by `keras_model` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FIRST_CONV_FILTERS = 48
B1_FILTERS = 24
B2_FILTERS = 48


@dataclass(frozen=True)
class Arch:
    input_shape: tuple[int, int, int]     # H, W, C
    classes: int
    alpha: float
    beta: float
    t0: float
    blocks: int = 7
    downsampling: tuple[int, ...] = (5, 7)

    def describe(self) -> str:
        return f"alpha={self.alpha:g} beta={self.beta:g} t0={self.t0:g} blocks={self.blocks}"


@dataclass(frozen=True)
class Layer:
    """One op of the float graph as the converter emits it: conv / dw / add / mean / fc / softmax."""

    kind: str
    in_shape: tuple[int, int, int]        # H, W, C (fc: 1, 1, in features)
    out_shape: tuple[int, int, int]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    relu6: bool = False
    block: int = 0                        # 0 stem, 1..N blocks, N+1 head
    skip_from: int = -1                   # add: index of the layer whose *input* is the shortcut


def _width(filters: float, alpha: float) -> int:
    return max(1, int(filters * alpha))


def expansion(t0: float, beta: float, block_id: int, blocks: int) -> float:
    """PhiNets' expansion factor of block `block_id` (linear from t0 to beta*t0 over the blocks)."""
    return t0 * beta * block_id / blocks + t0 * (blocks - block_id) / blocks


def _down(hw: tuple[int, int], k: int, s: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Kernel, stride and SAME-padded output size per axis; an axis of size 1 gets kernel 1, stride 1."""
    ks = tuple(k if d > 1 else 1 for d in hw)
    ss = tuple(s if d > 1 else 1 for d in hw)
    out = tuple(-(-d // st) for d, st in zip(hw, ss, strict=True))
    return (ks[0], ks[1]), (ss[0], ss[1]), (out[0], out[1])


def layers(a: Arch) -> list[Layer]:
    """The graph of `a`, op by op, in execution order."""
    if a.blocks < 4:
        raise ValueError(f"a PhiNet needs at least 4 blocks, got {a.blocks}")
    h, w, c = a.input_shape
    out: list[Layer] = []
    k, s, (oh, ow) = _down((h, w), 3, 2)
    out.append(Layer("dw", (h, w, c), (oh, ow, c), k, s, False, 0))
    c1 = _width(FIRST_CONV_FILTERS, a.alpha)
    out.append(Layer("conv", (oh, ow, c), (oh, ow, c1), relu6=True, block=0))
    hw, cin = (oh, ow), c1

    def block(bid: int, cout: int, stride: int, t: float) -> None:
        nonlocal hw, cin
        start = len(out)
        x = (hw[0], hw[1], cin)
        if t != 1:
            ce = max(1, int(round(cin * t)))
            out.append(Layer("conv", x, (hw[0], hw[1], ce), relu6=True, block=bid))
        else:
            ce = cin
        k, s, nhw = _down(hw, 3, stride)
        out.append(Layer("dw", (hw[0], hw[1], ce), (nhw[0], nhw[1], ce), k, s, True, bid))
        out.append(Layer("conv", (nhw[0], nhw[1], ce), (nhw[0], nhw[1], cout), block=bid))
        if nhw == hw and cout == cin:
            y = (nhw[0], nhw[1], cout)
            out.append(Layer("add", y, y, block=bid, skip_from=start))
        hw, cin = nhw, cout

    n = a.blocks
    block(1, _width(B1_FILTERS, a.alpha), 1, 1)
    block(2, _width(B1_FILTERS, a.alpha), 2, expansion(a.t0, a.beta, 1, n))
    block(3, _width(B1_FILTERS, a.alpha), 1, expansion(a.t0, a.beta, 2, n))
    block(4, _width(B2_FILTERS, a.alpha), 2, expansion(a.t0, a.beta, 3, n))
    filters = B2_FILTERS
    for bid in range(5, n + 1):
        down = bid in a.downsampling
        if down:
            filters *= 2
        block(bid, _width(filters, a.alpha), 2 if down else 1, expansion(a.t0, a.beta, bid - 1, n))
    out.append(Layer("mean", (hw[0], hw[1], cin), (1, 1, cin), block=n + 1))
    out.append(Layer("fc", (1, 1, cin), (1, 1, a.classes), block=n + 1))
    out.append(Layer("softmax", (1, 1, a.classes), (1, 1, a.classes), block=n + 1))
    return out


def keras_model(a: Arch) -> Any:
    """The untrained Keras model of `a` (float; BatchNorm after every conv), ready for `mpyml convert --train`."""
    from .convert import import_tf
    import_tf()
    import keras
    from keras import layers as kl

    inp = keras.Input(shape=a.input_shape, name="input")
    x = inp
    kept: dict[int, Any] = {}         # layer index -> the tensor that is that layer's input
    spec = layers(a)
    i = 0
    while i < len(spec):
        ly = spec[i]
        kept[i] = x
        if ly.kind == "dw" and ly.block == 0:
            pw = spec[i + 1]          # the stem: one SeparableConv2D = depthwise + pointwise
            x = kl.SeparableConv2D(pw.out_shape[2], ly.kernel, strides=ly.stride, padding="same", use_bias=False,
                                   name="stem")(x)
            x = kl.BatchNormalization(name="stem_bn")(x)
            x = kl.ReLU(6.0, name="stem_relu")(x)
            kept[i + 1] = x
            i += 2
            continue
        name = f"b{ly.block}_{i}"
        if ly.kind == "conv":
            x = kl.Conv2D(ly.out_shape[2], 1, padding="same", use_bias=False, name=name)(x)
            x = kl.BatchNormalization(name=name + "_bn")(x)
        elif ly.kind == "dw":
            x = kl.DepthwiseConv2D(ly.kernel, strides=ly.stride, padding="same", use_bias=False, name=name)(x)
            x = kl.BatchNormalization(name=name + "_bn")(x)
        elif ly.kind == "add":
            x = kl.Add(name=name)([kept[ly.skip_from], x])
        elif ly.kind == "mean":
            x = kl.GlobalAveragePooling2D(name="pool")(x)
        elif ly.kind == "fc":
            x = kl.Dense(ly.out_shape[2], name="logits")(x)
        elif ly.kind == "softmax":
            x = kl.Softmax(name="softmax")(x)
        if ly.relu6:
            x = kl.ReLU(6.0, name=name + "_relu")(x)
        i += 1
    return keras.Model(inp, x, name="phinet_" + a.describe().replace(" ", "_").replace("=", ""))


def randomized_copy(model: Any, seed: int = 0) -> Any:
    """A copy of `model` with every weight drawn at random (He-scaled kernels, non-zero biases, BatchNorm
    statistics around 1): what a trained model's packed figures look like. An untrained model converts to
    degenerate scales (near-constant logits) and zero biases that the packer shares between layers, which
    would make its file smaller than the trained model's."""
    import keras
    import numpy as np
    rng = np.random.default_rng(seed)
    copy = keras.models.clone_model(model)
    weights = []
    for v in copy.weights:
        shape = tuple(int(d) for d in v.shape)
        name = v.path if hasattr(v, "path") else v.name
        if "moving_variance" in name or "gamma" in name:
            w = rng.uniform(0.5, 1.5, shape)
        elif "moving_mean" in name or "beta" in name or "bias" in name:
            w = rng.normal(0.0, 0.1, shape)
        else:                                   # kernels: fan-in = all but the last axis (depthwise: k*k)
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
            if "depthwise" in name:
                fan_in = int(np.prod(shape[:2]))
            w = rng.normal(0.0, np.sqrt(2.0 / max(1, fan_in)), shape)
        weights.append(w.astype(np.float32))
    copy.set_weights(weights)
    return copy
