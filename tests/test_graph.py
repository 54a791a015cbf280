"""graph.cleanup (exact pack-time rewrites) and graph.unsupported_report, on real converter output.

Keras 3 (and tf-keras, when installed) models are converted by TFLiteConverter to int8 once and cached in
build/test_graph/ with TFLite's own outputs for fixed random inputs, so warm runs import no TensorFlow.
Each cleaned model is written back to a .tflite (tflite_write) and run under tflite-micro: its outputs
must equal, byte for byte, TFLite's reference kernels on the original model (the optimized kernels where
the reference resolver lacks an op: int8 TILE), and tflite-micro on the original where tflite-micro runs
the original correctly. (It does not for the converter's SPACE_TO_BATCH_ND dilated convs: their static
shapes carry batch 1 where the real batch is block_h x block_w; the fused conv fixes that.)
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import inspect
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from conftest import skip_or_fail
from mpyml import paths
from mpyml.graph import cleanup, unsupported_report
from mpyml.inspect_model import format_table, inspect_model
from mpyml.packer import PackError, pack, supported_tflite_ops
from mpyml.tflite_model import ACTIVATION, Operator, Tensor, TFLiteModel, read_tflite
from mpyml.tflite_write import write_tflite
from tflite_build import _Model, run_tflm

CACHE = paths.BUILD_DIR / "test_graph"
CACHE_VERSION = "1"
N_INPUTS = 3
HAS_TF_KERAS = importlib.util.find_spec("tf_keras") is not None


# ------------------------------------------------------------------ model builders (run only on cache miss)

def _seq(k: Any, in_shape: tuple[int, ...], *layers: Any) -> Any:
    x = k.Input(in_shape)
    y = x
    for layer in layers:
        y = layer(y)
    return k.Model(x, y)


def m_flatten(k: Any) -> Any:
    L = k.layers
    return _seq(k, (8, 8, 3), L.Conv2D(4, 3), L.MaxPooling2D(2), L.Flatten(), L.Dense(5), L.Softmax())


def m_conv1d(k: Any) -> Any:
    L = k.layers
    return _seq(k, (16, 3), L.Conv1D(4, 3, padding="same"), L.Conv1D(4, 3, activation="relu"),
                L.Conv1D(4, 3, strides=2, padding="same"), L.Flatten(), L.Dense(3))


def m_dilated(k: Any) -> Any:
    L = k.layers
    return _seq(k, (12, 12, 3), L.Conv2D(4, 3, dilation_rate=2, padding="same"),
                L.Conv2D(4, 3, dilation_rate=2, padding="valid"),
                L.DepthwiseConv2D(3, dilation_rate=3, padding="same"),
                L.Conv2D(3, (3, 2), dilation_rate=(2, 3), padding="same", activation="relu"))


def m_dilated1d(k: Any) -> Any:
    L = k.layers
    return _seq(k, (16, 3), L.Conv1D(4, 3, dilation_rate=2, padding="same"),
                L.Conv1D(4, 3, dilation_rate=3, padding="valid"),
                L.Conv1D(4, 3, dilation_rate=2, padding="causal"), L.Flatten(), L.Dense(3))


# The reference resolver has no int8 TILE, so these are checked against TFLite's builtin kernels, whose
# int8 conv rounds ties differently from the reference (ruy): only data movement and max pooling here.
def m_upsample(k: Any) -> Any:
    L = k.layers
    x = k.Input((4, 6, 3))
    a = L.MaxPooling2D(2, strides=1, padding="same")(x)
    b = L.MaxPooling2D(3, strides=1, padding="same")(L.UpSampling2D(2)(a))
    c = L.MaxPooling2D(2, strides=2)(L.UpSampling2D((2, 3))(a))
    return k.Model(x, [b, c])


def m_upsample1d(k: Any) -> Any:
    L = k.layers
    return _seq(k, (10, 3), L.MaxPooling1D(2, strides=1, padding="same"), L.UpSampling1D(3),
                L.MaxPooling1D(2))


def m_upsample_batch1(k: Any) -> Any:
    # a fixed batch of 1: Keras 3 UpSampling2D becomes RESHAPE (rank 5) -> TILE -> RESHAPE -> TILE -> RESHAPE
    L = k.layers
    x = k.Input((4, 6, 3), batch_size=1)
    a = L.MaxPooling2D(2, strides=1, padding="same")(x)
    b = L.MaxPooling2D(3, strides=1, padding="same")(L.UpSampling2D(2)(a))
    c = L.MaxPooling2D(2, strides=2)(L.UpSampling2D((2, 3))(a))
    d = L.MaxPooling2D(2, strides=1, padding="same")(L.UpSampling2D((3, 1))(L.UpSampling2D(2)(a)))
    return k.Model(x, [b, c, d])


def m_upsample1d_batch1(k: Any) -> Any:
    L = k.layers
    x = k.Input((10, 3), batch_size=1)
    return k.Model(x, L.MaxPooling1D(2)(L.UpSampling1D(3)(L.MaxPooling1D(2, strides=1, padding="same")(x))))


def m_relu(k: Any) -> Any:
    # the converter fuses a ReLU into ADD, then moves Reshape's ReLU before the RESHAPE: a standalone RELU
    L = k.layers
    x = k.Input((8, 8, 3))
    a = L.Conv2D(4, 3, padding="same")(x)
    c = L.ReLU()(L.MaxPooling2D(2)(a))
    e = L.ReLU(max_value=6.0)(L.AveragePooling2D(2)(a))
    g = L.ReLU()(L.Add()([c, e]))
    return k.Model(x, L.ReLU()(L.Reshape((4, 16))(g)))


def m_zeropad(k: Any) -> Any:
    L = k.layers
    return _seq(k, (8, 8, 3), L.ZeroPadding2D(1), L.Conv2D(4, 3), L.ZeroPadding2D(((1, 2), (1, 2))),
                L.DepthwiseConv2D(4, strides=2), L.ZeroPadding2D(1), L.Conv2D(2, 3, strides=2))


def m_elu(k: Any) -> Any:
    L = k.layers
    return _seq(k, (8, 8, 3), L.Conv2D(4, 3), L.ELU(), L.Flatten(), L.Dense(4))


def m_tfk(k: Any) -> Any:
    L = k.layers
    return _seq(k, (8, 8, 3), L.Conv2D(4, 1), L.UpSampling2D(2), L.Conv2D(2, 3, dilation_rate=2, padding="same"),
                L.Reshape((16, 16, 2)), L.Conv2D(2, 3), L.Flatten(), L.Dense(3))


def m_tfk_conv1d(k: Any) -> Any:
    L = k.layers
    return _seq(k, (16, 3), L.Conv1D(4, 3, padding="same"), L.Conv1D(4, 3, dilation_rate=2, padding="same"),
                L.Flatten(), L.Dense(3))


BUILDERS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "flatten": (m_flatten, "keras"), "conv1d": (m_conv1d, "keras"), "dilated": (m_dilated, "keras"),
    "dilated1d": (m_dilated1d, "keras"), "upsample": (m_upsample, "keras"), "upsample1d": (m_upsample1d, "keras"),
    "relu": (m_relu, "keras"), "zeropad": (m_zeropad, "keras"), "elu": (m_elu, "keras"),
    "tfk": (m_tfk, "tf_keras"), "tfk_conv1d": (m_tfk_conv1d, "tf_keras"),
    "upsample_batch1": (m_upsample_batch1, "keras"), "upsample1d_batch1": (m_upsample1d_batch1, "keras"),
}


@contextlib.contextmanager
def _lock(d: Path) -> Iterator[None]:
    d.mkdir(parents=True, exist_ok=True)
    import fcntl
    with open(d / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _convert(name: str) -> tuple[bytes, dict[str, np.ndarray]]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    builder, framework = BUILDERS[name]
    k = importlib.import_module(framework)
    k.utils.set_random_seed(0)
    model = builder(k)
    in_shape = (1, *model.inputs[0].shape[1:])
    rng = np.random.default_rng(0)

    def rep() -> Iterator[list[np.ndarray]]:
        for _ in range(16):
            yield [rng.standard_normal(in_shape).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    tfl = conv.convert()
    # TFLite's outputs for fixed inputs: reference kernels, else the builtin ones (the reference resolver has
    # no int8 TILE)
    res = tf.lite.experimental.OpResolverType
    xs = [np.random.default_rng(100 + i).integers(-128, 128, size=in_shape).astype(np.int8) for i in range(N_INPUTS)]
    out: dict[str, np.ndarray] = {}
    for kind in (res.BUILTIN_REF, res.BUILTIN_WITHOUT_DEFAULT_DELEGATES):
        try:
            it = tf.lite.Interpreter(model_content=tfl, experimental_op_resolver_type=kind)
            it.allocate_tensors()
        except (RuntimeError, ValueError):
            continue
        for i, x in enumerate(xs):
            it.set_tensor(it.get_input_details()[0]["index"], x)
            it.invoke()
            out[f"x{i}"] = x
            for j, d in enumerate(it.get_output_details()):
                out[f"y{i}_{j}"] = it.get_tensor(d["index"]).copy()
        out["resolver"] = np.array(str(kind))
        break
    return tfl, out


def converted(name: str) -> tuple[bytes, dict[str, np.ndarray]]:
    """(.tflite bytes, {x<i>: input, y<i>_<j>: TFLite output j}) of model `name`, cached."""
    builder, framework = BUILDERS[name]
    if importlib.util.find_spec(framework) is None:
        skip_or_fail(f"{framework} is not installed")
    key = hashlib.sha256((CACHE_VERSION + inspect.getsource(builder) + inspect.getsource(_convert) +
                          importlib.metadata.version("tensorflow")).encode()).hexdigest()[:16]
    tfl_p, ref_p = CACHE / f"{name}-{key}.tflite", CACHE / f"{name}-{key}.npz"
    with _lock(CACHE):
        if not (tfl_p.exists() and ref_p.exists()):
            for old in CACHE.glob(f"{name}-*.*"):      # other builder / TensorFlow versions
                old.unlink()
            tfl, ref = _convert(name)
            np.savez(ref_p.with_suffix(".tmp.npz"), **ref)
            os.replace(ref_p.with_suffix(".tmp.npz"), ref_p)
            tfl_p.with_suffix(".tmp").write_bytes(tfl)
            os.replace(tfl_p.with_suffix(".tmp"), tfl_p)
    with np.load(ref_p) as z:
        ref = {k: z[k] for k in z.files}
    return tfl_p.read_bytes(), ref


# ------------------------------------------------------------------ checks

def ops_of(m: TFLiteModel) -> list[str]:
    return [o.op for o in m.operators]


def tflm_outputs(tfl: bytes, x: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(y).reshape(-1) for y in run_tflm(tfl, [x])]


def unfold_lut8(m: TFLiteModel) -> TFLiteModel:
    """`m` with every MPYML_LUT8 pseudo-op as tflite-micro ops doing the same lookup (CAST, ADD 128, GATHER
    from the table), so a cleaned model can be run by tflite-micro."""
    tensors = list(m.tensors)
    ops: list[Operator] = []

    def new(name: str, shape: tuple[int, ...], dtype: str, data: np.ndarray | None = None,
            like: Tensor | None = None) -> int:
        t = Tensor(len(tensors), name, tuple(shape), dtype, data,
                   like.scales.copy() if like is not None else np.zeros(0, np.float32),
                   like.zero_points.copy() if like is not None else np.zeros(0, np.int64), 0)
        tensors.append(t)
        return t.index

    for o in m.operators:
        if o.op != "MPYML_LUT8":
            ops.append(o)
            continue
        x, t, y = tensors[o.inputs[0]], tensors[o.inputs[1]], tensors[o.outputs[0]]
        table = np.asarray(t.data).reshape(256)
        xi = x.index
        if x.dtype == "UINT8":      # tflite-micro has no CAST from uint8: x - 128 as int8 (same scale)
            xi = new(f"{x.name}/s8", x.shape, "INT8", like=x)
            tensors[xi] = dataclasses.replace(tensors[xi], zero_points=x.zero_points - 128)
            ops.append(Operator(o.index, "QUANTIZE", 1, [x.index], [xi], {}))
        else:
            table = np.roll(table, 128)        # entry x + 128 holds table[x & 0xFF]
        i32 = new(f"{x.name}/i32", x.shape, "INT32")
        off = new(f"{x.name}/128", (1,), "INT32", np.array([128], np.int32))
        idx = new(f"{x.name}/idx", x.shape, "INT32")
        p = new(f"{y.name}/params", (256,), y.dtype, table.copy(), like=y)
        ops += [Operator(o.index, "CAST", 1, [xi], [i32], {}), Operator(o.index, "ADD", 1, [i32, off], [idx], {}),
                Operator(o.index, "GATHER", 1, [p, idx], [y.index], {"axis": 0})]
    return TFLiteModel(tensors, ops, list(m.inputs), list(m.outputs), m.description)


def check_exact(name: str, tflm_original_ok: bool = True) -> tuple[TFLiteModel, TFLiteModel, list[str]]:
    """Clean model `name`; its rewritten .tflite under tflite-micro must match TFLite on the original."""
    tfl, ref = converted(name)
    original = read_tflite(tfl)
    before = copy.deepcopy(original)
    cleaned, notes = cleanup(original)
    # the input model is not modified
    assert ops_of(original) == ops_of(before)
    assert all(a.shape == b.shape and (a.data is None) == (b.data is None) for a, b in
               zip(original.tensors, before.tensors, strict=True))
    assert [o.inputs for o in original.operators] == [o.inputs for o in before.operators]
    out_tfl = write_tflite(unfold_lut8(cleaned))
    n_out = len(original.outputs)
    for i in range(N_INPUTS):
        x = ref[f"x{i}"]
        got = tflm_outputs(out_tfl, x)
        want = [ref[f"y{i}_{j}"].reshape(-1) for j in range(n_out)]
        assert len(got) == n_out
        for j in range(n_out):
            assert got[j].dtype == np.int8 and np.array_equal(got[j], want[j]), \
                f"{name}: output {j} differs from TFLite ({ref['resolver']}) on input {i}"
        if tflm_original_ok:
            for a, b in zip(tflm_outputs(tfl, x), got, strict=True):
                assert np.array_equal(a, b), f"{name}: tflite-micro original vs cleaned differ"
    # output shapes are the real ones
    for j, ti in enumerate(cleaned.outputs):
        assert int(np.prod(cleaned.tensors[ti].shape)) == ref[f"y0_{j}"].size
    return original, cleaned, notes


def fused_act(m: TFLiteModel, op_name: str) -> list[str]:
    return [ACTIVATION[o.options.get("fusedActivationFunction", 0)] for o in m.operators if o.op == op_name]


# ------------------------------------------------------------------ real converter patterns

def test_flatten_shape_chain_folded() -> None:
    orig, clean, notes = check_exact("flatten")
    assert {"SHAPE", "STRIDED_SLICE", "PACK"} <= set(ops_of(orig))
    assert ops_of(clean) == ["CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    r = clean.operators[2]
    assert r.index == 5    # op indices point into the original .tflite
    assert clean.tensors[r.inputs[1]].data.tolist() == [1, 36]
    assert any(n.startswith("folded SHAPE→STRIDED_SLICE→PACK→RESHAPE chain (ops #2-#5) into RESHAPE [1,3,3,4]→[1,36]")
               for n in notes), notes
    # the packer sees only what it runs; the clean-up notes are on the packed model and in inspect
    info = inspect_model(converted("flatten")[0])
    assert info["cleanup"] == notes and info["ops"] == 5
    assert "graph clean-up:" in format_table(info)


def test_conv1d_expand_dims_become_reshapes() -> None:
    orig, clean, notes = check_exact("conv1d")
    assert "EXPAND_DIMS" in ops_of(orig)
    assert not {"EXPAND_DIMS", "SQUEEZE", "SHAPE"} & set(ops_of(clean))
    # RESHAPE [1,1,W,C] -> [1,W,C] -> [1,1,W,C] between the convs is gone
    assert ops_of(clean) == ["RESHAPE", "CONV_2D", "CONV_2D", "CONV_2D", "RESHAPE", "FULLY_CONNECTED"]
    assert any("EXPAND_DIMS op #0 → RESHAPE [1,16,3]→[1,1,16,3]" in n for n in notes), notes
    pack(write_tflite(clean))


def test_dilated_conv2d_fused() -> None:
    orig, clean, notes = check_exact("dilated", tflm_original_ok=False)
    assert ops_of(orig).count("SPACE_TO_BATCH_ND") == 4
    # the ReLU stays standalone: between S2B/B2S the converter did not fuse it, and it requantizes
    # (output scale != input scale), which no fused activation can do
    assert ops_of(clean) == ["CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "RELU"]
    convs = clean.operators[:4]
    dil = [(o.options["dilationHFactor"], o.options["dilationWFactor"]) for o in convs]
    assert dil == [(2, 2), (2, 2), (3, 3), (2, 3)]
    pads = [o.options["padding"] for o in convs]
    assert pads == [schema.Padding.SAME, schema.Padding.VALID, schema.Padding.SAME, schema.Padding.SAME]
    assert sum(n.startswith("fused SPACE_TO_BATCH_ND→") for n in notes) == 4


def test_dilated_conv1d_fused_causal_keeps_pad() -> None:
    orig, clean, notes = check_exact("dilated1d", tflm_original_ok=False)
    assert "SPACE_TO_BATCH_ND" in ops_of(orig)
    assert not {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "EXPAND_DIMS"} & set(ops_of(clean))
    convs = [o for o in clean.operators if o.op == "CONV_2D"]
    assert [(o.options["dilationHFactor"], o.options["dilationWFactor"]) for o in convs] == [(1, 2), (1, 3), (1, 2)]
    # causal padding (all on the left) is no SAME/VALID padding: the PAD stays, before a VALID dilated conv
    assert ops_of(clean).count("PAD") == 1 and convs[2].options["padding"] == schema.Padding.VALID


def test_upsampling2d_becomes_resize_nearest() -> None:
    orig, clean, notes = check_exact("upsample", tflm_original_ok=False)
    assert "TILE" in ops_of(orig)
    assert ops_of(clean).count("RESIZE_NEAREST_NEIGHBOR") == 2
    assert not {"TILE", "SHAPE", "EXPAND_DIMS", "CONCATENATION", "STRIDED_SLICE"} & set(ops_of(clean))
    rs = [o for o in clean.operators if o.op == "RESIZE_NEAREST_NEIGHBOR"]
    assert all(o.options == {"alignCorners": False, "halfPixelCenters": False} for o in rs)
    sizes = sorted(clean.tensors[o.inputs[1]].data.tolist() for o in rs)
    assert sizes == [[8, 12], [8, 18]]
    # the converter wrote the dynamic H of the second RESHAPE as 1; the folded shape repairs it, and the
    # ops after it
    assert any(n.startswith("repaired static shape") for n in notes), notes
    assert sorted(tuple(clean.tensors[i].shape) for i in clean.outputs) == [(1, 4, 9, 3), (1, 8, 12, 3)]


def test_upsampling1d_becomes_resize_nearest() -> None:
    orig, clean, notes = check_exact("upsample1d", tflm_original_ok=False)
    assert "TILE" in ops_of(orig) and "TILE" not in ops_of(clean)
    assert "RESIZE_NEAREST_NEIGHBOR" in ops_of(clean)


def test_standalone_relu_fused() -> None:
    orig, clean, notes = check_exact("relu")
    assert "RELU" in ops_of(orig) and "RELU" not in ops_of(clean)
    assert any(n.startswith("fused standalone RELU") for n in notes), notes
    assert fused_act(clean, "ADD") == ["RELU"]
    pack(write_tflite(clean))


def test_zero_padding_merged_into_same_conv() -> None:
    orig, clean, notes = check_exact("zeropad")
    # the converter itself merges ZeroPadding2D(1) + 3x3 VALID stride 1 into SAME; ((1,2),(1,2)) + 4x4
    # stride 2 on 8x8 is SAME's padding (1, 2); (1) + 3x3 stride 2 on 4x4 is not SAME's (0, 1): kept
    assert ops_of(orig).count("PAD") == 2
    assert ops_of(clean) == ["CONV_2D", "DEPTHWISE_CONV_2D", "PAD", "CONV_2D"]
    assert [o.options["padding"] for o in clean.operators if o.op != "PAD"] == \
        [schema.Padding.SAME, schema.Padding.SAME, schema.Padding.VALID]
    assert sum(n.startswith("merged PAD→") for n in notes) == 1


@pytest.mark.skipif(not HAS_TF_KERAS, reason="tf_keras is not installed (pip install tf-keras)")
def test_tf_keras_models() -> None:
    orig, clean, notes = check_exact("tfk", tflm_original_ok=False)
    # tf-keras UpSampling2D is RESIZE_NEAREST_NEIGHBOR already (half-pixel centers); its dilated conv is fused
    assert "RESIZE_NEAREST_NEIGHBOR" in ops_of(orig)
    assert not {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "SHAPE", "STRIDED_SLICE"} & set(ops_of(clean))
    orig, clean, notes = check_exact("tfk_conv1d", tflm_original_ok=False)
    assert not {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "EXPAND_DIMS", "SQUEEZE"} & set(ops_of(clean))


def test_upsampling2d_fixed_batch_becomes_resize_nearest() -> None:
    # Keras 3 with Input(batch_size=1): RESHAPE to rank 5 -> TILE -> RESHAPE -> TILE -> RESHAPE, the middle
    # RESHAPE merging one axis and splitting the next; the converter shares the first repeat between layers
    orig, clean, notes = check_exact("upsample_batch1", tflm_original_ok=False)
    assert "TILE" in ops_of(orig) and any(len(t.shape) == 5 for t in orig.tensors)
    assert ops_of(clean).count("RESIZE_NEAREST_NEIGHBOR") == 3
    assert not {"TILE", "RESHAPE", "BROADCAST_TO"} & set(ops_of(clean))
    rs = [o for o in clean.operators if o.op == "RESIZE_NEAREST_NEIGHBOR"]
    assert all(o.options == {"alignCorners": False, "halfPixelCenters": False} for o in rs)
    # the size input is the output's H, W; UpSampling2D(2) then (3, 1) is one resize x6 x2
    for o in rs:
        assert clean.tensors[o.inputs[1]].data.tolist() == list(clean.tensors[o.outputs[0]].shape[1:3])
    assert sorted(clean.tensors[o.inputs[1]].data.tolist() for o in rs) == [[8, 12], [8, 18], [24, 12]]
    assert sum("with a fixed batch) by RESIZE_NEAREST_NEIGHBOR" in n for n in notes) == 3, notes
    pack(write_tflite(clean))
    orig, clean, notes = check_exact("upsample1d_batch1", tflm_original_ok=False)
    assert "TILE" in ops_of(orig) and "TILE" not in ops_of(clean)
    assert "RESIZE_NEAREST_NEIGHBOR" in ops_of(clean)


def test_elu_in_float_folded_to_lookup_table() -> None:
    # the converter leaves ELU in float: DEQUANTIZE -> ELU -> QUANTIZE, one lookup table computed by tflite-micro
    orig, clean, notes = check_exact("elu")
    assert ["DEQUANTIZE", "ELU", "QUANTIZE"] == [o for o in ops_of(orig) if o in ("DEQUANTIZE", "ELU", "QUANTIZE")]
    assert ops_of(clean) == ["CONV_2D", "MPYML_LUT8", "RESHAPE", "FULLY_CONNECTED"]
    lut = clean.operators[1]
    table = clean.tensors[lut.inputs[1]]
    assert table.dtype == "INT8" and table.data is not None and table.data.shape == (256,)
    first = next(o.index for o in orig.operators if o.op == "DEQUANTIZE")
    assert lut.index == first
    assert f"folded float ELU between DEQUANTIZE/QUANTIZE (ops #{first}-#{first + 2}) into an int8 lookup table" \
        in notes, notes
    assert unsupported_report(clean, supported_tflite_ops()) is None
    tfl, _ = converted("elu")
    from mpyml.packer import OPCODES, pack_model
    pm = pack_model(tfl)
    assert any("folded float ELU" in n for n in pm.notes)
    assert [op.opcode for op in pm.ops].count(OPCODES["LUT"]) == 1


def _float_island(*ops: tuple[str, float | None], xq: tuple[str, float, int] = ("INT8", 0.05, -3),
                  yq: tuple[str, float, int] = ("INT8", 0.04, 5), shape: tuple[int, ...] = (1, 4, 4, 2),
                  extra_output: bool = False) -> tuple[bytes, int]:
    """x -> DEQUANTIZE -> float ops (name, scalar constant or None) -> QUANTIZE -> y; (tflite, first float)."""
    b = _Model()
    x = b.tensor("x", shape, xq[0], xq[1], xq[2])
    f = b.tensor("f0", shape, "FLOAT32")
    b.op("DEQUANTIZE", [x], [f])
    first = f
    for k, (name, c) in enumerate(ops):
        g = b.tensor(f"f{k + 1}", shape, "FLOAT32")
        if c is None:
            b.op(name, [f], [g])
        else:
            kt = b.tensor(f"k{k}", (1,), "FLOAT32", data=np.array([c], np.float32))
            opt_t, opt = {"MUL": ("MulOptions", schema.MulOptionsT), "ADD": ("AddOptions", schema.AddOptionsT),
                          "SUB": ("SubOptions", schema.SubOptionsT)}[name]
            b.op(name, [kt, f] if name == "MUL" else [f, kt], [g], opt(),
                 getattr(schema.BuiltinOptions, opt_t))
        f = g
    y = b.tensor("y", shape, yq[0], yq[1], yq[2])
    b.op("QUANTIZE", [f], [y])
    return b.finish([x], [y, first] if extra_output else [y]), first


@pytest.mark.parametrize("xq", [("INT8", 0.05, -3), ("UINT8", 0.03, 140)])
def test_float_chain_folded_to_one_table(xq: tuple[str, float, int], natmod_x64: Path) -> None:
    tfl, _ = _float_island(("MUL", 1.7), ("TANH", None), ("ADD", -0.25), ("ELU", None), ("SUB", 0.125),
                           ("ABS", None), xq=xq, shape=(1, 8, 32))
    clean, notes = cleanup(read_tflite(tfl))
    assert ops_of(clean) == ["MPYML_LUT8"]
    assert notes[0] == ("folded float MUL→TANH→ADD→ELU→SUB→ABS between DEQUANTIZE/QUANTIZE (ops #0-#7) "
                        "into an int8 lookup table")
    _same_under_tflm(tfl, clean, (1, 8, 32), np.int8 if xq[0] == "INT8" else np.uint8)
    # every input byte, through tflite-micro on the original and both engines on the packed model
    from mpyml.unix_port import run_batch
    xs = np.arange(256, dtype=np.uint8).view(np.int8 if xq[0] == "INT8" else np.uint8)
    sample = [xs.reshape(1, 8, 32), xs[::-1].reshape(1, 8, 32).copy()]
    mpk = pack(tfl)
    for engine in ("c", "viper"):
        r = run_batch(mpk, [[s] for s in sample], engine=engine)
        for got, s in zip(r.batch, sample, strict=True):
            assert np.array_equal(got[0].reshape(-1), tflm_outputs(tfl, s)[0]), engine


def test_float_chain_not_folded_when_unsafe() -> None:
    # a float tensor inside is also a model output
    tfl, _ = _float_island(("ELU", None), extra_output=True)
    assert ops_of(cleanup(read_tflite(tfl))[0]) == ["DEQUANTIZE", "ELU", "QUANTIZE"]
    # DEQUANTIZE -> QUANTIZE with nothing between is a requantization, not an island
    tfl, _ = _float_island()
    assert ops_of(cleanup(read_tflite(tfl))[0]) == ["DEQUANTIZE", "QUANTIZE"]
    # MUL by a tensor that is not a scalar constant
    b = _Model()
    x = _q(b, "x", (1, 4))
    f, g = b.tensor("f", (1, 4), "FLOAT32"), b.tensor("g", (1, 4), "FLOAT32")
    k = b.tensor("k", (4,), "FLOAT32", data=np.array([1, 2, 3, 4], np.float32))
    y = _q(b, "y", (1, 4))
    b.op("DEQUANTIZE", [x], [f])
    b.op("MUL", [f, k], [g], schema.MulOptionsT(), schema.BuiltinOptions.MulOptions)
    b.op("QUANTIZE", [g], [y])
    assert ops_of(cleanup(read_tflite(b.finish([x], [y])))[0]) == ["DEQUANTIZE", "MUL", "QUANTIZE"]


def test_float_op_tflm_cannot_run_is_named() -> None:
    # tflite-micro has no float SIGN kernel: no table, the chain stays and the report names the float op
    tfl, _ = _float_island(("SIGN", None))
    clean, notes = cleanup(read_tflite(tfl))
    assert ops_of(clean) == ["DEQUANTIZE", "SIGN", "QUANTIZE"] and not notes
    rep = unsupported_report(clean, supported_tflite_ops())
    assert rep is not None
    assert "op #1 SIGN runs in float32 inside an int8 model: the converter could not quantize it" in rep
    with pytest.raises(PackError, match="SIGN runs in float32"):
        pack(tfl)


# ------------------------------------------------------------------ synthetic graphs (no TensorFlow)

def _q(b: _Model, name: str, shape: tuple[int, ...], scale: float = 0.05, zp: int = -3) -> int:
    return b.tensor(name, shape, "INT8", scale, zp)


def _conv_opts(act: str = "NONE") -> Any:
    o = schema.Conv2DOptionsT()
    o.padding, o.strideW, o.strideH = schema.Padding.SAME, 1, 1
    o.fusedActivationFunction = getattr(schema.ActivationFunctionType, act)
    return o


def _conv(b: _Model, rng: np.random.Generator, x: int, y: int, c_in: int, c_out: int, act: str = "NONE") -> None:
    f = b.tensor("w", (c_out, 3, 3, c_in), "INT8", [0.01] * c_out, 0, 0,
                 rng.integers(-127, 128, size=(c_out, 3, 3, c_in)))
    bias = b.tensor("b", (c_out,), "INT32", [0.0005] * c_out, 0, 0, rng.integers(-500, 500, size=c_out))
    b.op("CONV_2D", [x, f, bias], [y], _conv_opts(act), schema.BuiltinOptions.Conv2DOptions)


def _same_under_tflm(tfl: bytes, clean: TFLiteModel, shape: tuple[int, ...], dtype: Any = np.int8) -> None:
    rng = np.random.default_rng(7)
    for _ in range(4):
        x = rng.integers(0, 256, size=shape).astype(np.uint8).view(dtype)
        a, b = tflm_outputs(tfl, x), tflm_outputs(write_tflite(unfold_lut8(clean)), x)
        assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))


@pytest.mark.parametrize(("fused", "standalone", "expect"), [
    ("NONE", "RELU", "RELU"), ("RELU6", "RELU", "RELU6"), ("RELU", "RELU6", "RELU6"),
    ("NONE", "RELU_N1_TO_1", "RELU_N1_TO_1"), ("RELU", "RELU", "RELU"),
    ("RELU_N1_TO_1", "RELU6", None),     # [zp, q(1)] is no fused activation: left for the RELU kernel
])
def test_relu_fusion_ranges(fused: str, standalone: str, expect: str | None) -> None:
    rng = np.random.default_rng(1)
    b = _Model()
    x = _q(b, "x", (1, 5, 5, 2), 0.02, 3)
    c = _q(b, "c", (1, 5, 5, 3), 0.06, -20)      # RELU6's top (-20 + 6 / 0.06) is inside int8
    y = _q(b, "y", (1, 5, 5, 3), 0.06, -20)
    _conv(b, rng, x, c, 2, 3, fused)
    if standalone == "RELU_N1_TO_1":
        # TFLM has no RELU_N1_TO_1 kernel: check the ranges, not a run
        b.op("RELU_N1_TO_1", [c], [y])
    else:
        b.op(standalone, [c], [y])
    tfl = b.finish([x], [y])
    clean, notes = cleanup(read_tflite(tfl))
    if expect is None:
        assert ops_of(clean) == ["CONV_2D", standalone] and not notes
        return
    assert ops_of(clean) == ["CONV_2D"] and fused_act(clean, "CONV_2D") == [expect]
    assert clean.outputs == [clean.operators[0].outputs[0]]
    if standalone != "RELU_N1_TO_1":
        _same_under_tflm(tfl, clean, (1, 5, 5, 2))


def test_relu_not_fused_when_unsafe() -> None:
    rng = np.random.default_rng(2)
    # producer output read twice
    b = _Model()
    x = _q(b, "x", (1, 4, 4, 2))
    c = _q(b, "c", (1, 4, 4, 2))
    y = _q(b, "y", (1, 4, 4, 2))
    _conv(b, rng, x, c, 2, 2)
    b.op("RELU", [c], [y])
    tfl = b.finish([x], [y, c])
    assert ops_of(cleanup(read_tflite(tfl))[0]) == ["CONV_2D", "RELU"]
    # RELU requantizes (different output scale)
    b = _Model()
    x = _q(b, "x", (1, 4, 4, 2))
    c = _q(b, "c", (1, 4, 4, 2))
    y = _q(b, "y", (1, 4, 4, 2), 0.02, -128)
    _conv(b, rng, x, c, 2, 2)
    b.op("RELU", [c], [y])
    assert ops_of(cleanup(read_tflite(b.finish([x], [y])))[0]) == ["CONV_2D", "RELU"]


def _reshape(b: _Model, x: int, y: int, shape: tuple[int, ...]) -> None:
    s = b.tensor("s", (len(shape),), "INT32", data=np.asarray(shape, np.int32))
    b.op("RESHAPE", [x, s], [y])


def test_identity_quantize_and_reshape_chains() -> None:
    rng = np.random.default_rng(3)
    b = _Model()
    x = _q(b, "x", (1, 4, 4, 2))
    q = _q(b, "q", (1, 4, 4, 2))
    b.op("QUANTIZE", [x], [q])                         # int8 -> int8, same scale and zero point
    c = _q(b, "c", (1, 4, 4, 3), 0.04, 5)
    _conv(b, rng, q, c, 2, 3)
    r1, r2, r3 = _q(b, "r1", (1, 48), 0.04, 5), _q(b, "r2", (1, 4, 12), 0.04, 5), _q(b, "r3", (1, 4, 12), 0.04, 5)
    _reshape(b, c, r1, (1, 48))
    _reshape(b, r1, r2, (1, 4, 12))
    _reshape(b, r2, r3, (1, 4, 12))                    # to the same shape
    y = _q(b, "y", (1, 4, 12), 0.05, -7)
    b.op("QUANTIZE", [r3], [y])                        # a real requantization: kept
    tfl = b.finish([x], [y])
    clean, notes = cleanup(read_tflite(tfl))
    assert ops_of(clean) == ["CONV_2D", "RESHAPE", "QUANTIZE"], notes
    assert any("identity QUANTIZE" in n for n in notes) and any("RESHAPE→RESHAPE" in n for n in notes)
    _same_under_tflm(tfl, clean, (1, 4, 4, 2))


def test_identity_reshape_on_model_output() -> None:
    rng = np.random.default_rng(4)
    b = _Model()
    x = _q(b, "x", (1, 4, 4, 2))
    c = _q(b, "c", (1, 4, 4, 2))
    y = _q(b, "y", (1, 4, 4, 2))
    _conv(b, rng, x, c, 2, 2)
    _reshape(b, c, y, (1, 4, 4, 2))
    tfl = b.finish([x], [y])
    clean, _ = cleanup(read_tflite(tfl))
    assert ops_of(clean) == ["CONV_2D"] and clean.tensors[clean.outputs[0]].name == "y"
    _same_under_tflm(tfl, clean, (1, 4, 4, 2))


def _upsample_chain_model(x_shape: tuple[int, ...], steps: list[tuple[str, tuple[int, ...], tuple[int, ...]]]) -> bytes:
    """x -> data-movement ops (name, constant operand, output shape) -> y, int8 with one quantization."""
    b = _Model()
    cur = _q(b, "x", x_shape)
    x = cur
    for k, (name, c, out_shape) in enumerate(steps):
        y = _q(b, f"t{k}", out_shape)
        ct = b.tensor(f"c{k}", (len(c),), "INT32", data=np.asarray(c, np.int32))
        b.op(name, [cur, ct], [y])
        cur = y
    return b.finish([x], [cur])


def test_upsampling_chain_synthetic() -> None:
    # conv_ae_upsampling's form (Keras 3 UpSampling2D(2), batch 1)
    tfl = _upsample_chain_model((1, 3, 5, 2), [
        ("RESHAPE", (1, 3, 1, 5, 2), (1, 3, 1, 5, 2)), ("TILE", (1, 1, 2, 1, 1), (1, 3, 2, 5, 2)),
        ("RESHAPE", (1, 6, 5, 1, 2), (1, 6, 5, 1, 2)), ("TILE", (1, 1, 1, 2, 1), (1, 6, 5, 2, 2)),
        ("RESHAPE", (1, 6, 10, 2), (1, 6, 10, 2))])
    clean, notes = cleanup(read_tflite(tfl))
    assert ops_of(clean) == ["RESIZE_NEAREST_NEIGHBOR"], notes
    assert clean.tensors[clean.operators[0].inputs[1]].data.tolist() == [6, 10]
    assert notes[0].startswith("replaced RESHAPE→TILE→RESHAPE→TILE→RESHAPE (ops #0-#4: nearest-neighbour "
                               "upsampling ×2×2")
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = rng.integers(-128, 128, size=(1, 3, 5, 2)).astype(np.int8)
        assert np.array_equal(tflm_outputs(write_tflite(clean), x)[0].reshape(1, 6, 10, 2),
                              x.repeat(2, axis=1).repeat(2, axis=2))
    # the same with BROADCAST_TO (tflite-micro runs it: checked against the original), ×3 ×2
    tfl = _upsample_chain_model((1, 2, 3, 4), [
        ("RESHAPE", (1, 2, 1, 3, 4), (1, 2, 1, 3, 4)), ("BROADCAST_TO", (1, 2, 3, 3, 4), (1, 2, 3, 3, 4)),
        ("RESHAPE", (1, 6, 3, 1, 4), (1, 6, 3, 1, 4)), ("BROADCAST_TO", (1, 6, 3, 2, 4), (1, 6, 3, 2, 4)),
        ("RESHAPE", (1, 6, 6, 4), (1, 6, 6, 4))])
    clean, notes = cleanup(read_tflite(tfl))
    assert ops_of(clean) == ["RESIZE_NEAREST_NEIGHBOR"], notes
    assert clean.tensors[clean.operators[0].inputs[1]].data.tolist() == [6, 6]
    _same_under_tflm(tfl, clean, (1, 2, 3, 4))
    # 3-D (UpSampling1D): between RESHAPEs to 4-D
    tfl = _upsample_chain_model((1, 5, 3), [
        ("RESHAPE", (1, 5, 1, 3), (1, 5, 1, 3)), ("TILE", (1, 1, 4, 1), (1, 5, 4, 3)),
        ("RESHAPE", (1, 20, 3), (1, 20, 3))])
    clean, notes = cleanup(read_tflite(tfl))
    assert ops_of(clean) == ["RESHAPE", "RESIZE_NEAREST_NEIGHBOR", "RESHAPE"], notes
    x = np.random.default_rng(6).integers(-128, 128, size=(1, 5, 3)).astype(np.int8)
    assert np.array_equal(tflm_outputs(write_tflite(clean), x)[0].reshape(1, 20, 3), x.repeat(4, axis=1))


def test_upsampling_chain_not_a_resize_kept() -> None:
    # tiling whole rows (x x instead of x0 x0 x1 x1), and repeating channels: no nearest-neighbour resize
    for steps in ([("RESHAPE", (1, 1, 3, 5, 2), (1, 1, 3, 5, 2)), ("TILE", (1, 2, 1, 1, 1), (1, 2, 3, 5, 2)),
                   ("RESHAPE", (1, 6, 5, 2), (1, 6, 5, 2))],
                  [("RESHAPE", (1, 3, 5, 2, 1), (1, 3, 5, 2, 1)), ("TILE", (1, 1, 1, 1, 2), (1, 3, 5, 2, 2)),
                   ("RESHAPE", (1, 3, 5, 4), (1, 3, 5, 4))]):
        clean, notes = cleanup(read_tflite(_upsample_chain_model((1, 3, 5, 2), steps)))
        assert "TILE" in ops_of(clean) and "RESIZE_NEAREST_NEIGHBOR" not in ops_of(clean), notes


# ------------------------------------------------------------------ the report

def _many_unsupported() -> TFLiteModel:
    b = _Model()
    x = _q(b, "x", (1, 4, 4, 2))
    t1, t2, t3 = _q(b, "t1", (1, 8, 4, 2)), _q(b, "t2", (1, 8, 4, 2)), _q(b, "t3", (1, 16, 4, 2))
    m = b.tensor("m", (4,), "INT32", data=np.array([1, 2, 1, 1], np.int32))
    b.op("TILE", [x, m], [t1])
    b.op("RELU", [t1], [t2])
    b.op("TILE", [t2, m], [t3])
    tfl = bytearray(b.finish([x], [t3]))
    model = read_tflite(bytes(tfl))
    # a CUSTOM op, named by its custom code
    mt = schema.ModelT.InitFromPackedBuf(tfl, 0)
    oc = schema.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    oc.customCode = "TFLite_Detection_PostProcess"
    mt.operatorCodes.append(oc)
    sg = mt.subgraphs[0]
    sg.tensors.append(copy.deepcopy(sg.tensors[sg.outputs[0]]))
    o = schema.OperatorT()
    o.opcodeIndex, o.inputs, o.outputs = len(mt.operatorCodes) - 1, [sg.outputs[0]], [len(sg.tensors) - 1]
    sg.operators.append(o)
    sg.outputs = [len(sg.tensors) - 1]
    import flatbuffers
    fb = flatbuffers.Builder(1024)
    fb.Finish(mt.Pack(fb), file_identifier=b"TFL3")
    model = read_tflite(bytes(fb.Output()))
    return model


def test_unsupported_report_lists_every_op() -> None:
    model = _many_unsupported()
    assert ops_of(model)[-1] == "CUSTOM:TFLite_Detection_PostProcess"
    rep = unsupported_report(model, {"CONV_2D", "RELU", "RESHAPE"})
    assert rep is not None
    assert rep.startswith("3 ops are not supported by mpyml: TILE ×2 (ops #0, #2), "
                          "CUSTOM:TFLite_Detection_PostProcess ×1 (op #3).")
    assert "The first is op #0 TILE (int8[1,4,4,2] → int8[1,8,4,2])." in rep
    assert "Supported: CONV_2D, RELU, RESHAPE." in rep
    assert unsupported_report(model, {"TILE", "RELU", "CUSTOM:TFLite_Detection_PostProcess"}) is None
    with pytest.raises(PackError, match=r"CUSTOM:TFLite_Detection_PostProcess ×1 \(op #3\)"):   # TILE packs now
        pack(write_tflite(model))


def test_unsupported_report_float_model() -> None:
    b = _Model()
    x = b.tensor("x", (1, 4), "FLOAT32")
    y = b.tensor("y", (1, 4), "FLOAT32")
    b.op("TANH", [x], [y])
    rep = unsupported_report(read_tflite(b.finish([x], [y])), supported_tflite_ops())
    assert rep is not None and "float32 (not quantized)" in rep
    assert "representative_dataset" in rep and "mpyml convert" in rep


def test_float_island_of_one_tensor_folds_to_lut() -> None:
    """tf.math in Lambda layers: max(|h|, h^2) leaves DEQUANTIZE(h), ABS(h) -> DEQUANTIZE, float SQUARE, MAXIMUM,
    QUANTIZE (two float branches of ONE int8 tensor): one int8 table, the same as tflite-micro on all 256 values."""
    from ops.engines import host_run
    b = _Model()
    h = b.tensor("h", (1, 16), "INT8", 0.04, -3)
    hf = b.tensor("hf", (1, 16), "FLOAT32")
    a = b.tensor("a", (1, 16), "INT8", 0.02, -128)
    af = b.tensor("af", (1, 16), "FLOAT32")
    sq = b.tensor("sq", (1, 16), "FLOAT32")
    mx = b.tensor("mx", (1, 16), "FLOAT32")
    y = b.tensor("y", (1, 16), "INT8", 0.1, -128)
    b.op("DEQUANTIZE", [h], [hf])
    b.op("ABS", [h], [a])
    b.op("DEQUANTIZE", [a], [af])
    b.op("SQUARE", [hf], [sq])
    b.op("MAXIMUM", [af, sq], [mx])
    b.op("QUANTIZE", [mx], [y])
    tfl = b.finish([h], [y])
    clean, notes = cleanup(read_tflite(tfl))
    assert ops_of(clean) == ["MPYML_LUT8"], notes
    mpk = pack(tfl)
    for k in range(16):
        x = ((np.arange(16) + 16 * k) % 256).astype(np.uint8).view(np.int8).reshape(1, 16)
        want = run_tflm(tfl, [x])[0].tobytes()
        assert host_run(mpk, [x])[0] == [want]
