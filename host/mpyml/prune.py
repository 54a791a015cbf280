"""Pruning for `mpyml convert`: magnitude pruning with a sparsity schedule (`--prune`) and structured channel
pruning that rebuilds a narrower Keras model (`--prune-channels`), plus the shared fine-tuning helpers.

Works on the model's own Keras (Keras 3 or tf_keras, whichever loaded it): the masks are ours, not
tensorflow-model-optimization's, so no conversion to tf_keras is needed and the pruned model converts with the
same TFLite flow.

Magnitude pruning (Zhu & Gupta 2017): every Dense / Conv / DepthwiseConv kernel is pruned layer by layer to the
sparsity s(t) = s_f * (1 - (1 - t / T_ramp)^3), updated ~30 times over the first 2/3 of the fine-tuning steps and
held at s_f for the last third. Dense / Conv1D / Conv2D kernels are pruned in blocks of 8 output channels of
one input tap by default (`--prune-block 4|8|16`, by the blocks' L1 norm: the form the packer stores as block
indices and the kernels add B wide, like TFLite's block-sparse (1, 4) FC; `--prune-block 1` prunes every weight
alone); after each batch the masked weights are set back to zero, so the final float
kernels (and the int8 ones: symmetric weight quantization maps 0.0 to 0) hold exactly those zeros.

Structured pruning: the Keras graph is walked once; every tensor's last axis is a list of channel segments, each
a "channel group". A Dense / Conv1D / Conv2D / SeparableConv2D output starts a group; BatchNormalization,
DepthwiseConv2D (depth_multiplier 1), activations, pooling, padding and dropout pass it through; Add / Subtract /
Multiply / Maximum / Minimum / Average tie their inputs' groups together (pruned together or not at all);
Concatenate joins segments; Flatten followed by Dense maps the kept channels to the Dense rows. Groups reaching
the model's input or output or any other layer (Reshape, softmax, custom layers, ...) are left whole. In each free
group the channels with the largest L1 filter norm (summed over the group's producers, each normalised by its
mean) are kept, the model is rebuilt with the narrower layers and the kept weights copied.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ChannelPlan", "PruneError", "clone", "compile_for", "keras_of", "magnitude_prune", "plan_channels",
           "prune_channels", "rebuild_narrow", "weight_sparsity"]

PRUNED_LAYERS = ("Dense", "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "DepthwiseConv1D", "SeparableConv2D",
                 "SeparableConv1D", "Conv2DTranspose")
BLOCK_LAYERS = ("Dense", "Conv1D", "Conv2D")   # kernels [..., taps / inputs, O]: blocks along O
BLOCKS = (1, 4, 8, 16)                         # the block sizes the sparse kernels take (1: unstructured)
DEFAULT_BLOCK = 8                              # blocks of 8 output channels: ~1.13 bytes per nonzero and an
                                               # 8-wide add per stored block (lower/sparse.py); digits MLP at
                                               # 80%: accuracy as unstructured, 0.54x the dense invoke on x64
RAMP_FRACTION = 2.0 / 3.0
MASK_UPDATES = 30
PRODUCERS = ("Dense", "Conv1D", "Conv2D", "SeparableConv2D")
PASS_THROUGH = ("ReLU", "LeakyReLU", "ELU", "ThresholdedReLU", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
                "GaussianNoise", "GaussianDropout", "AlphaDropout", "MaxPooling1D", "MaxPooling2D",
                "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
                "GlobalMaxPooling1D", "GlobalMaxPooling2D", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D",
                "Cropping2D", "UpSampling1D", "UpSampling2D", "Identity", "Activation")
FLAT_OK = ("ReLU", "LeakyReLU", "ELU", "ThresholdedReLU", "Dropout", "GaussianNoise", "GaussianDropout",
           "AlphaDropout", "Identity", "Activation")
MERGES = ("Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average")


class PruneError(ValueError):
    """A model or setting pruning cannot handle; one line naming the problem and the fix."""


# ---------------------------------------------------------------------------------------------- Keras helpers
def keras_of(model: Any) -> Any:
    """The Keras module the model belongs to (keras for Keras 3, tf_keras for legacy models)."""
    if type(model).__module__.startswith("tf_keras"):
        import tf_keras

        return tf_keras
    import keras

    return keras


def clone(model: Any) -> Any:
    """A copy with its own weights (same Keras, same architecture)."""
    k = keras_of(model)
    c = k.models.clone_model(model)
    c.set_weights(model.get_weights())
    return c


def ends_in_softmax(model: Any) -> bool:
    last = model.layers[-1]
    return type(last).__name__ == "Softmax" or last.get_config().get("activation") == "softmax"


def compile_for(model: Any, y: np.ndarray, lr: float) -> np.ndarray:
    """Compile for fine-tuning on targets y (labels: sparse cross-entropy, else MSE); returns y as fit takes it."""
    k = keras_of(model)
    if np.issubdtype(y.dtype, np.integer):
        loss = k.losses.SparseCategoricalCrossentropy(from_logits=not ends_in_softmax(model))
        yy = y
    else:
        loss = k.losses.MeanSquaredError()
        yy = y.reshape(len(y), -1)
    model.compile(optimizer=k.optimizers.Adam(lr), loss=loss)
    return yy


def all_layers(model: Any) -> list[Any]:
    out = []
    for ly in model.layers:
        if hasattr(ly, "layers") and type(ly).__name__ in ("Functional", "Sequential", "Model"):
            out += all_layers(ly)
        else:
            out.append(ly)
    return out


def _var_name(v: Any) -> str:
    return str(getattr(v, "path", None) or v.name).split("/")[-1].split(":")[0]


def prunable_kernels(model: Any) -> list[tuple[Any, Any]]:
    """(layer, variable) of every kernel magnitude pruning zeroes: Dense / Conv / DepthwiseConv kernels."""
    out = []
    for ly in all_layers(model):
        if type(ly).__name__ not in PRUNED_LAYERS:
            continue
        for v in ly.trainable_weights:
            if _var_name(v).endswith("kernel") and len(v.shape) >= 2:
                out.append((ly, v))
    return out


def weight_sparsity(model: Any) -> float:
    """Fraction of exact zeros in the prunable kernels."""
    ks = [np.asarray(v.numpy()) for _, v in prunable_kernels(model)]
    n = sum(k.size for k in ks)
    return float(sum(int(np.count_nonzero(k == 0)) for k in ks) / n) if n else 0.0


def _callback_base(model: Any) -> Any:
    return keras_of(model).callbacks.Callback


# ---------------------------------------------------------------------------------------------- magnitude
def schedule(step: int, ramp_steps: int, final: float) -> float:
    """Polynomial (cubic) sparsity ramp from 0 to `final` over ramp_steps, then constant."""
    if ramp_steps <= 0 or step >= ramp_steps:
        return final
    return final * (1.0 - (1.0 - step / ramp_steps) ** 3)


def _mask(w: np.ndarray, sparsity: float, block: int = 1) -> np.ndarray:
    """Keep-mask of w at `sparsity`: its smallest-magnitude entries zeroed, or with block > 1 whole blocks of
    `block` consecutive output channels (the last axis) of one input tap, the blocks with the smallest L1 norm (the
    block-sparse form the kernels run B channels wide); halved down to 4 until it divides the output channels,
    else every weight alone."""
    while block > 4 and w.shape[-1] % block:
        block //= 2                                 # the largest block (>= 4) that divides the output channels
    if block > 1 and w.shape[-1] % block == 0:
        blocks = np.abs(w).reshape(-1, block).sum(axis=1)
        return np.repeat(_mask(blocks, sparsity), block).reshape(w.shape)
    k = int(round(sparsity * w.size))
    if k <= 0:
        return np.ones_like(w, dtype=bool)
    order = np.argsort(np.abs(w), axis=None, kind="stable")
    m = np.ones(w.size, dtype=bool)
    m[order[:k]] = False
    return m.reshape(w.shape)


def magnitude_prune(model: Any, x: np.ndarray, y: np.ndarray, sparsity: float, epochs: int, lr: float,
                    batch_size: int = 32, seed: int = 0,
                    on_epoch: Callable[[], None] | None = None, block: int = DEFAULT_BLOCK) -> dict[str, Any]:
    """Prune `model` in place to `sparsity` (per kernel, by magnitude, on a cubic schedule) while fine-tuning it on
    (x, y) for `epochs`; returns what was done (achieved sparsity, steps). block: Dense / Conv kernels whose output
    channels are a multiple of it are pruned in blocks of `block` output channels (1: every weight on its own;
    depthwise / separable / transposed kernels always are)."""
    if not 0.0 < sparsity < 1.0:
        raise PruneError(f"--prune {sparsity:g}: the sparsity must be between 0 and 1 (e.g. 0.8)")
    if block not in BLOCKS:
        raise PruneError(f"--prune-block {block}: choose one of {', '.join(map(str, BLOCKS))}")
    kernels = prunable_kernels(model)
    if not kernels:
        raise PruneError("--prune: the model has no Dense / Conv / DepthwiseConv kernel to prune")
    k = keras_of(model)
    k.utils.set_random_seed(seed)
    yy = compile_for(model, y, lr)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    total = steps_per_epoch * epochs
    ramp = max(1, int(total * RAMP_FRACTION))
    every = max(1, ramp // MASK_UPDATES)
    masks: list[np.ndarray | None] = [None] * len(kernels)
    state = {"step": 0, "sparsity": 0.0}

    def update(s: float) -> None:
        for i, (ly, v) in enumerate(kernels):
            masks[i] = _mask(np.asarray(v.numpy()), s, block if type(ly).__name__ in BLOCK_LAYERS else 1)
        state["sparsity"] = s

    def apply() -> None:
        for m, (_, v) in zip(masks, kernels, strict=True):
            if m is not None:
                v.assign(np.asarray(v.numpy()) * m)

    class _Pruner(_callback_base(model)):  # type: ignore[misc]
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            state["step"] += 1
            t = state["step"]
            if t <= ramp and (t % every == 0 or t == ramp):
                update(schedule(t, ramp, sparsity))
            apply()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if on_epoch is not None:
                on_epoch()

    model.fit(x, yy, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=[_Pruner()])
    if state["sparsity"] < sparsity:   # fewer steps than the ramp needs: reach the target, then stop
        update(sparsity)
        apply()
    per_layer = [{"layer": ly.name, "weights": int(np.prod(v.shape)),
                  "sparsity": float(np.mean(np.asarray(v.numpy()) == 0))} for ly, v in kernels]
    return {"target_sparsity": sparsity, "sparsity": weight_sparsity(model), "block": block, "epochs": epochs,
            "steps": total,
            "ramp_steps": ramp, "learning_rate": lr, "layers": per_layer}


def finetune(model: Any, x: np.ndarray, y: np.ndarray, epochs: int, lr: float, batch_size: int = 32,
             seed: int = 0, on_epoch: Callable[[], None] | None = None) -> None:
    """Plain fine-tuning (after structured pruning)."""
    k = keras_of(model)
    k.utils.set_random_seed(seed)
    yy = compile_for(model, y, lr)

    class _Cb(_callback_base(model)):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if on_epoch is not None:
                on_epoch()

    model.fit(x, yy, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=[_Cb()])


# ---------------------------------------------------------------------------------------------- structured
class _Groups:
    """Union-find of channel groups: size, whether they must stay whole, the layers producing them."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.size: list[int] = []
        self.fixed: list[bool] = []
        self.producers: list[list[Any]] = []

    def new(self, size: int, fixed: bool, producer: Any = None) -> int:
        self.parent.append(len(self.parent))
        self.size.append(size)
        self.fixed.append(fixed)
        self.producers.append([producer] if producer is not None else [])
        return len(self.parent) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        self.parent[rb] = ra
        self.fixed[ra] = self.fixed[ra] or self.fixed[rb] or self.size[ra] != self.size[rb]
        self.producers[ra] += self.producers[rb]

    def fix(self, g: int) -> None:
        self.fixed[self.find(g)] = True


@dataclass
class _Desc:
    """A tensor's last axis: segments of (group, channels), repeated `spatial` times when flattened."""

    segments: list[tuple[int, int]]
    spatial: int = 1

    @property
    def channels(self) -> int:
        return sum(n for _, n in self.segments)


@dataclass
class ChannelPlan:
    """Which channels of which group structured pruning keeps."""

    groups: _Groups
    descs: dict[str, _Desc]                       # by producing layer name (and "__input__")
    keep: dict[int, np.ndarray] = field(default_factory=dict)   # group root -> kept channel indices (sorted)
    order: list[tuple[Any, list[str]]] = field(default_factory=list)  # (layer, input layer names), topological
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)

    def kept(self, d: _Desc) -> np.ndarray:
        idx, off = [], 0
        for g, n in d.segments:
            r = self.groups.find(g)
            idx.append(off + (self.keep[r] if r in self.keep else np.arange(n)))
            off += n
        ch = np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64)
        if d.spatial > 1:
            ch = (np.arange(d.spatial)[:, None] * d.channels + ch[None, :]).reshape(-1)
        return ch.astype(np.int64)

    def summary(self) -> list[dict[str, Any]]:
        rows = []
        for r, kept in sorted(self.keep.items()):
            names = [p.name for p in self.groups.producers[r]]
            rows.append({"layers": names, "channels": self.groups.size[r], "kept": len(kept)})
        return rows


def _graph(model: Any) -> tuple[list[tuple[Any, list[str]]], list[str], list[str], dict[str, Any]]:
    """(layer, names of the layers feeding it) in order, the input layer names, output layer names, input shapes."""
    k = keras_of(model)
    layers = [ly for ly in model.layers if type(ly).__name__ != "InputLayer"]
    ins = list(getattr(model, "inputs", None) or [])
    if len(ins) != 1 or len(model.outputs) != 1:
        raise PruneError("--prune-channels takes single-input single-output models")
    in_name = ins[0]._keras_history[0].name
    shapes = {in_name: tuple(ins[0].shape)}
    order: list[tuple[Any, list[str]]] = []
    names = {ly.name for ly in layers}
    if isinstance(model, k.Sequential):
        prev = in_name
        for ly in layers:
            order.append((ly, [prev]))
            prev = ly.name
        out_name = prev
    else:
        for ly in layers:
            if len(ly._inbound_nodes) != 1:
                raise PruneError(f"--prune-channels: layer {ly.name} is used {len(ly._inbound_nodes)} times "
                                 "(shared layers are not supported): drop --prune-channels")
            t = ly.input
            ts = list(t) if isinstance(t, (list, tuple)) else [t]
            src = [x._keras_history[0].name for x in ts]
            order.append((ly, [s if s in names else in_name for s in src]))
        out_name = model.outputs[0]._keras_history[0].name
    return order, [in_name], [out_name], shapes


def plan_channels(model: Any, fraction: float) -> ChannelPlan:
    """Analyse the graph and choose, in every group that may shrink, the channels to keep (largest L1 norm)."""
    if not 0.0 <= fraction < 1.0:
        raise PruneError(f"--prune-channels {fraction:g}: the fraction of channels removed must be in [0, 1) "
                         "(e.g. 0.5)")
    order, in_names, out_names, shapes = _graph(model)
    g = _Groups()
    descs: dict[str, _Desc] = {}
    cin = int(shapes[in_names[0]][-1])
    descs[in_names[0]] = _Desc([(g.new(cin, True), cin)])

    def barrier(ds: Sequence[_Desc], ly: Any) -> _Desc:
        for d in ds:
            for gid, _ in d.segments:
                g.fix(gid)
        n = int(ly.output.shape[-1]) if ly.output.shape and ly.output.shape[-1] is not None else 1
        return _Desc([(g.new(n, True), n)])

    for ly, srcs in order:
        kind = type(ly).__name__
        ds = [descs[s] for s in srcs]
        cfg = ly.get_config()
        d0 = ds[0]
        if kind in PRODUCERS and len(ds) == 1 and cfg.get("groups", 1) == 1 and cfg.get("activation") != "softmax" \
                and cfg.get("depth_multiplier", 1) == 1 and (kind == "Dense" or d0.spatial == 1):
            n = int(cfg["units"] if kind == "Dense" else cfg["filters"])
            descs[ly.name] = _Desc([(g.new(n, False, ly), n)])
        elif kind == "DepthwiseConv2D" and cfg.get("depth_multiplier", 1) == 1 and d0.spatial == 1:
            descs[ly.name] = d0
        elif kind == "BatchNormalization" and d0.spatial == 1 and cfg.get("axis") in (-1, [-1], len(ly.input.shape) - 1,
                                                                                       [len(ly.input.shape) - 1]):
            descs[ly.name] = d0
        elif kind in PASS_THROUGH and len(ds) == 1 and (d0.spatial == 1 or kind in FLAT_OK) \
                and not (kind == "Activation" and cfg.get("activation") == "softmax") and not ly.weights:
            descs[ly.name] = d0
        elif kind == "Flatten" and len(ds) == 1:
            shp = ly.input.shape
            s = int(np.prod([int(v) for v in shp[1:-1]])) if len(shp) > 2 else 1
            descs[ly.name] = _Desc(d0.segments, d0.spatial * s)
        elif kind in MERGES and len(ds) > 1 and all(d.spatial == 1 for d in ds) \
                and len({tuple(n for _, n in d.segments) for d in ds}) == 1:
            for d in ds[1:]:
                for (a, _), (b, _) in zip(ds[0].segments, d.segments, strict=True):
                    g.union(a, b)
            descs[ly.name] = ds[0]
        elif kind == "Concatenate" and cfg.get("axis", -1) in (-1, len(ly.output.shape) - 1) \
                and all(d.spatial == 1 for d in ds):
            descs[ly.name] = _Desc([s for d in ds for s in d.segments])
        else:
            descs[ly.name] = barrier(ds, ly)
    for name in out_names:
        for gid, _ in descs[name].segments:
            g.fix(gid)
    plan = ChannelPlan(g, descs, order=order, input_names=in_names, output_names=out_names)
    roots = {g.find(i) for i in range(len(g.parent))}
    for r in sorted(roots):
        if g.fixed[r] or not g.producers[r]:
            continue
        n = g.size[r]
        score = np.zeros(n, dtype=np.float64)
        for p in g.producers[r]:
            w = np.abs(np.asarray(p.get_weights()[1 if type(p).__name__ == "SeparableConv2D" else 0],
                                  dtype=np.float64))
            l1 = w.reshape(-1, w.shape[-1]).sum(axis=0)
            score += l1 / (l1.mean() if l1.mean() > 0 else 1.0)
        n_keep = max(1, int(round(n * (1.0 - fraction))))
        if n_keep < n:
            top = np.argsort(-score, kind="stable")[:n_keep]
            plan.keep[r] = np.sort(top).astype(np.int64)
    return plan


def rebuild_narrow(model: Any, plan: ChannelPlan) -> Any:
    """The model with the plan's channels removed: narrower layers (same Keras, same names), kept weights copied."""
    k = keras_of(model)
    inp0 = model.inputs[0]
    inp = k.Input(shape=tuple(inp0.shape[1:]), batch_size=inp0.shape[0], dtype=inp0.dtype)
    tensors: dict[str, Any] = {plan.input_names[0]: inp}
    for ly, srcs in plan.order:
        kind = type(ly).__name__
        cfg = ly.get_config()
        out_d = plan.descs[ly.name]
        in_d = plan.descs[srcs[0]]
        in_idx = plan.kept(in_d)
        out_idx = plan.kept(out_d)
        w = ly.get_weights()
        produces = any(p is ly for p in plan.groups.producers[plan.groups.find(out_d.segments[0][0])])
        if kind == "SeparableConv2D" and produces:
            cfg["filters"] = len(out_idx)
            w = [np.take(w[0], in_idx, axis=-2), np.take(np.take(w[1], in_idx, axis=-2), out_idx, axis=-1)] + \
                [np.take(b, out_idx) for b in w[2:]]
        elif kind == "SeparableConv2D":
            w = [np.take(w[0], in_idx, axis=-2), np.take(w[1], in_idx, axis=-2)] + w[2:]
        elif kind in PRODUCERS and produces:
            cfg["units" if kind == "Dense" else "filters"] = len(out_idx)
            w = [np.take(np.take(w[0], in_idx, axis=-2), out_idx, axis=-1)] + [np.take(b, out_idx) for b in w[1:]]
        elif kind in PRODUCERS:
            w = [np.take(w[0], in_idx, axis=-2)] + w[1:]
        elif kind == "DepthwiseConv2D" and out_d is in_d:
            w = [np.take(w[0], in_idx, axis=-2)] + [np.take(b, in_idx) for b in w[1:]]
        elif kind == "BatchNormalization" and out_d is in_d:
            w = [np.take(b, in_idx) for b in w]
        try:
            new = type(ly).from_config(cfg)
        except Exception as e:  # noqa: BLE001 - a custom layer that cannot be re-made from its config
            raise PruneError(f"--prune-channels: cannot rebuild layer {ly.name} ({type(ly).__name__}: {e}): "
                             "drop --prune-channels") from None
        xs = [tensors[s] for s in srcs]
        tensors[ly.name] = new(xs if kind in MERGES or kind == "Concatenate" else xs[0])
        if w:
            new.set_weights(w)
    return k.Model(inp, tensors[plan.output_names[0]], name=model.name)


def prune_channels(model: Any, fraction: float) -> tuple[Any, ChannelPlan]:
    """The narrower model (not fine-tuned) and the plan that made it."""
    plan = plan_channels(model, fraction)
    return rebuild_narrow(model, plan), plan
