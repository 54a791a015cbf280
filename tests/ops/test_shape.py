"""The shape family (PAD, CONCATENATION, STRIDED_COPY, RESIZE_NEAREST, RESIZE_BILINEAR) against tflite-micro.

Every case is a random single-op TFLite model (PAD, PADV2, CONCATENATION, PACK, STRIDED_SLICE, SLICE, SPLIT,
SPLIT_V, UNPACK, TRANSPOSE, RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR) packed with mpyml.pack and run by
tflite-micro (the oracle), the C engine through the host library, and both the C native module and the
viper engine on the MicroPython unix port (one process for all cases of a test): outputs byte-identical
everywhere (tolerance 0), the whole arenas of the two unix-port engines identical, no viper invoke allocates.
Then malformed records (each op-specific check, CRC recomputed): both loaders refuse with the same code.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from mpyml import pack
from mpyml.hostlib import prepare_status
from mpyml.lower.shape import bilinear_table, nearest_index
from mpyml.mpk import MpkFile, with_crc
from mpyml.packer import PackError
from mpyml.spec import OPCODES
from ops.engines import host_run, outputs_of
from tflite_build import _Model, run_tflm

N_CASES = 60
NP = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32, "FLOAT32": np.float32,
      "INT64": np.int64}
QUANT = ("INT8", "UINT8", "INT16")
BO = schema.BuiltinOptions
Case = tuple[str, bytes, list[np.ndarray]]


# ------------------------------------------------------------------ random single-op models

def _shape(rng: np.random.Generator, rank: int | None = None, hi: int = 7) -> tuple[int, ...]:
    r = int(rng.integers(1, 5)) if rank is None else rank
    return tuple(int(d) for d in rng.integers(1, hi + 1, size=r))


def _q(rng: np.random.Generator, dtype: str) -> tuple[float | None, int | None]:
    if dtype not in QUANT:
        return None, None
    scale = float(np.exp(rng.uniform(np.log(1e-3), np.log(2.0))))
    lo, hi = {"INT8": (-128, 128), "UINT8": (0, 256), "INT16": (0, 1)}[dtype]
    zp = int(rng.choice([lo, hi - 1])) if rng.random() < 0.2 else int(rng.integers(lo, hi))
    return scale, zp


def _values(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    n = int(np.prod(shape)) * np.dtype(NP[dtype]).itemsize
    raw = rng.integers(0, 256, size=n).astype(np.uint8)
    if dtype == "FLOAT32":
        return rng.normal(size=shape).astype(np.float32) * np.float32(100)
    return raw.view(NP[dtype]).reshape(shape)


def _opts(cls: Any, **kw: Any) -> Any:
    o = cls()
    for k, v in kw.items():
        setattr(o, k, v)
    return o


def pad_case(rng: np.random.Generator, v2: bool) -> Case:
    dtype = str(rng.choice(["INT8", "INT8", "INT8", "INT16", "INT32"]))
    xs = _shape(rng)
    pads = rng.integers(0, 4, size=(len(xs), 2))
    if rng.random() < 0.2:
        pads[:] = 0
    ys = tuple(int(d + p[0] + p[1]) for d, p in zip(xs, pads, strict=True))
    scale, zp = _q(rng, dtype)
    m = _Model()
    x = m.tensor("x", xs, dtype, scale, zp)
    p = m.tensor("pads", (len(xs), 2), "INT32", data=pads)      # TFLM PAD reads int32 paddings only
    y = m.tensor("y", ys, dtype, scale, zp)
    ins = [x, p]
    if v2:
        cv = _values(rng, (1,), dtype)
        ins.append(m.tensor("value", (1,) if rng.random() < 0.5 else (), dtype, scale, zp, data=cv))
        m.op("PADV2", ins, [y], _opts(schema.PadV2OptionsT), BO.PadV2Options)
    else:
        m.op("PAD", ins, [y], _opts(schema.PadOptionsT), BO.PadOptions)
    return ("PADV2" if v2 else "PAD"), m.finish([x], [y]), [_values(rng, xs, dtype)]


def concat_case(rng: np.random.Generator, pack_op: bool) -> Case:
    dtype = str(rng.choice(["INT8", "INT8", "INT8", "INT16", "INT32", "INT64"] if not pack_op
                           else ["INT8", "INT8", "INT32", "INT64"]))
    n = int(rng.integers(1, 5))
    rank = int(rng.integers(1, 4 if pack_op else 5))
    base = list(_shape(rng, rank, 5))
    axis = int(rng.integers(0, rank + (1 if pack_op else 0)))
    scale, zp = _q(rng, dtype)
    m = _Model()
    ins, feeds = [], []
    sizes = []
    for k in range(n):
        s = list(base)
        if not pack_op:
            s[axis] = int(rng.integers(1, 5))
            sizes.append(s[axis])
        const = k > 0 and rng.random() < 0.25
        data = _values(rng, tuple(s), dtype) if const else None
        t = m.tensor(f"x{k}", s, dtype, scale, zp, data=data)
        ins.append(t)
        if not const:
            feeds.append((t, _values(rng, tuple(s), dtype)))
    if pack_op:
        ys = base[:axis] + [n] + base[axis:]
    else:
        ys = list(base)
        ys[axis] = sum(sizes)
    y = m.tensor("y", ys, dtype, scale, zp)
    neg = rng.random() < 0.3
    if pack_op:
        m.op("PACK", ins, [y], _opts(schema.PackOptionsT, valuesCount=n, axis=axis - len(ys) if neg else axis),
             BO.PackOptions)
    else:
        m.op("CONCATENATION", ins, [y], _opts(schema.ConcatenationOptionsT, axis=axis - len(ys) if neg else axis,
                                              fusedActivationFunction=0), BO.ConcatenationOptions)
    return ("PACK" if pack_op else "CONCATENATION"), m.finish([t for t, _ in feeds], [y]), [v for _, v in feeds]


def strided_slice_case(rng: np.random.Generator) -> Case:
    dtype = str(rng.choice(["INT8", "INT8", "INT8", "INT16", "INT32"]))
    while True:
        xs = _shape(rng, None, 8)
        r = len(xs)
        begin = [int(rng.integers(-d - 2, d + 2)) for d in xs]
        end = [int(rng.integers(-d - 2, d + 2)) for d in xs]
        strides = [int(rng.choice([1, 1, 2, 3, -1, -1, -2])) for _ in xs]
        bm, em, sm = (int(rng.integers(0, 1 << r)) for _ in range(3))
        if rng.random() < 0.5:
            sm = 0
        strides = [abs(st) if sm >> i & 1 else st for i, st in enumerate(strides)]
        sl: list[Any] = []
        for i in range(r):
            if sm >> i & 1:
                bi = begin[i] if not bm >> i & 1 else 0
                if not -xs[i] <= bi < xs[i]:
                    break
                sl.append(bi)
            else:
                sl.append(slice(None if bm >> i & 1 else begin[i], None if em >> i & 1 else end[i], strides[i]))
        else:
            ys = np.empty(xs)[tuple(sl)].shape
            if all(d > 0 for d in ys) and (len(ys) > 0):
                break
    scale, zp = _q(rng, dtype)
    m = _Model()
    x = m.tensor("x", xs, dtype, scale, zp)
    tb = m.tensor("begin", (r,), "INT32", data=np.array(begin))
    te = m.tensor("end", (r,), "INT32", data=np.array(end))
    ts = m.tensor("strides", (r,), "INT32", data=np.array(strides))
    y = m.tensor("y", ys, dtype, scale, zp)
    m.op("STRIDED_SLICE", [x, tb, te, ts], [y],
         _opts(schema.StridedSliceOptionsT, beginMask=bm, endMask=em, ellipsisMask=0, newAxisMask=0,
               shrinkAxisMask=sm, offset=False), BO.StridedSliceOptions)
    return "STRIDED_SLICE", m.finish([x], [y]), [_values(rng, xs, dtype)]


def slice_case(rng: np.random.Generator) -> Case:
    dtype = str(rng.choice(["INT8", "INT8", "INT16", "INT32"]))
    xs = _shape(rng, None, 8)
    begin = [int(rng.integers(0, d)) for d in xs]
    size = [int(rng.integers(1, d - b + 1)) if rng.random() < 0.8 else -1 for d, b in zip(xs, begin, strict=True)]
    ys = tuple(d - b if s == -1 else s for d, b, s in zip(xs, begin, size, strict=True))
    scale, zp = _q(rng, dtype)
    m = _Model()
    x = m.tensor("x", xs, dtype, scale, zp)
    it = str(rng.choice(["INT32", "INT64"]))
    tb = m.tensor("begin", (len(xs),), it, data=np.array(begin))
    tsz = m.tensor("size", (len(xs),), it, data=np.array(size))
    y = m.tensor("y", ys, dtype, scale, zp)
    m.op("SLICE", [x, tb, tsz], [y], _opts(schema.SliceOptionsT), BO.SliceOptions)
    return "SLICE", m.finish([x], [y]), [_values(rng, xs, dtype)]


def split_case(rng: np.random.Generator, kind: str) -> Case:
    dtype = str(rng.choice(["INT8", "INT8", "INT16", "INT32"]))
    xs = list(_shape(rng, None, 6))
    axis = int(rng.integers(0, len(xs)))
    scale, zp = _q(rng, dtype)
    m = _Model()
    if kind == "SPLIT":
        n = int(rng.integers(1, 4))
        xs[axis] = n * int(rng.integers(1, 4))
        parts = [xs[axis] // n] * n
    elif kind == "SPLIT_V":
        n = int(rng.integers(1, 4))
        parts = [int(p) for p in rng.integers(1, 4, size=n)]
        xs[axis] = sum(parts)
    else:
        n = xs[axis]
        parts = [1] * n
    x = m.tensor("x", xs, dtype, scale, zp)
    outs = []
    for k, p in enumerate(parts):
        s = list(xs)
        s[axis] = p
        if kind == "UNPACK":
            s = xs[:axis] + xs[axis + 1:]
        outs.append(m.tensor(f"y{k}", s, dtype, scale, zp))
    neg = rng.random() < 0.3
    ax = axis - len(xs) if neg else axis
    if kind == "SPLIT":
        ta = m.tensor("axis", (), "INT32", data=np.array(ax))
        m.op("SPLIT", [ta, x], outs, _opts(schema.SplitOptionsT, numSplits=n), BO.SplitOptions)
    elif kind == "SPLIT_V":
        sp = list(parts)
        if rng.random() < 0.3:
            sp[int(rng.integers(0, n))] = -1
        tsz = m.tensor("sizes", (n,), "INT32", data=np.array(sp))
        ta = m.tensor("axis", (), "INT32", data=np.array(ax))
        m.op("SPLIT_V", [x, tsz, ta], outs, _opts(schema.SplitVOptionsT, numSplits=n), BO.SplitVOptions)
    else:
        if len(xs) == 1:
            return split_case(rng, kind)
        m.op("UNPACK", [x], outs, _opts(schema.UnpackOptionsT, num=n, axis=ax), BO.UnpackOptions)
    return kind, m.finish([x], outs), [_values(rng, tuple(xs), dtype)]


def transpose_case(rng: np.random.Generator) -> Case:
    dtype = str(rng.choice(["INT8", "INT8", "INT16"]))       # TFLM TRANSPOSE: int8, int16, float32
    xs = _shape(rng, int(rng.integers(2, 5)), 6)
    perm = [int(p) for p in rng.permutation(len(xs))]
    scale, zp = _q(rng, dtype)
    m = _Model()
    x = m.tensor("x", xs, dtype, scale, zp)
    tp = m.tensor("perm", (len(xs),), "INT32", data=np.array(perm))
    y = m.tensor("y", tuple(xs[p] for p in perm), dtype, scale, zp)
    m.op("TRANSPOSE", [x, tp], [y], _opts(schema.TransposeOptionsT), BO.TransposeOptions)
    return "TRANSPOSE", m.finish([x], [y]), [_values(rng, xs, dtype)]


def resize_case(rng: np.random.Generator, bilinear: bool) -> Case:
    dtype = "INT8" if bilinear else str(rng.choice(["INT8", "INT8", "INT16"]))   # what TFLM resizes
    n, h, w, c = int(rng.integers(1, 3)), int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(rng.integers(1, 5))
    oh, ow = int(rng.integers(1, 17)), int(rng.integers(1, 17))
    if rng.random() < 0.3:
        f = int(rng.integers(2, 4))
        oh, ow = h * f, w * f
    ac = bool(rng.random() < 0.35)
    hp = bool(not ac and rng.random() < 0.5)
    scale, zp = _q(rng, dtype)
    m = _Model()
    x = m.tensor("x", (n, h, w, c), dtype, scale, zp)
    sz = m.tensor("size", (2,), "INT32", data=np.array([oh, ow]))
    y = m.tensor("y", (n, oh, ow, c), dtype, scale, zp)
    if bilinear:
        m.op("RESIZE_BILINEAR", [x, sz], [y], _opts(schema.ResizeBilinearOptionsT, alignCorners=ac,
                                                     halfPixelCenters=hp), BO.ResizeBilinearOptions)
    else:
        m.op("RESIZE_NEAREST_NEIGHBOR", [x, sz], [y],
             _opts(schema.ResizeNearestNeighborOptionsT, alignCorners=ac, halfPixelCenters=hp),
             BO.ResizeNearestNeighborOptions)
    return ("RESIZE_BILINEAR" if bilinear else "RESIZE_NEAREST_NEIGHBOR"), m.finish([x], [y]), \
        [_values(rng, (n, h, w, c), dtype)]


ENGINE_OP = {"PAD": "PAD", "PADV2": "PAD", "CONCATENATION": "CONCATENATION", "PACK": "CONCATENATION",
             "STRIDED_SLICE": "STRIDED_COPY", "SLICE": "STRIDED_COPY", "SPLIT": "STRIDED_COPY",
             "SPLIT_V": "STRIDED_COPY", "UNPACK": "STRIDED_COPY", "TRANSPOSE": "STRIDED_COPY",
             "RESIZE_NEAREST_NEIGHBOR": "RESIZE_NEAREST", "RESIZE_BILINEAR": "RESIZE_BILINEAR"}


# ------------------------------------------------------------------ engines

def _raw(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


def _check_cases(cases: list[Case], tmp: Path, name: str) -> None:
    from test_viper_engine import check_dual, run_dual
    dual: list[tuple[bytes, bytes]] = []
    refs: list[list[bytes]] = []
    for what, tfl, inputs in cases:
        mpk = pack(tfl)
        names = {o.name for o in MpkFile(mpk).ops}
        assert names <= {ENGINE_OP[what], "RESHAPE"}, (what, names)
        ref = [_raw(o) for o in run_tflm(tfl, inputs)]
        host, init = host_run(mpk, inputs, garbage=True)
        assert host == ref, f"{what}: host C engine differs from tflite-micro"
        refs.append(ref)
        dual.append((mpk, init))
    results = run_dual(dual, tmp, name)
    check_dual(dual, results, name)
    for (what, _, _), (mpk, _), res, ref in zip(cases, dual, results, refs, strict=True):
        assert res["c"] == (0, 0, 0, 0) and res["v"] == (0, 0, 0, 0), (what, res["c"], res["v"])
        assert outputs_of(mpk, res["ac"]) == ref, f"{what}: natmod differs from tflite-micro"
        assert outputs_of(mpk, res["av"]) == ref, f"{what}: viper differs from tflite-micro"


def test_pad_and_concat(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    cases = [pad_case(rng, False) for _ in range(N_CASES)] + [pad_case(rng, True) for _ in range(N_CASES)]
    cases += [concat_case(rng, False) for _ in range(N_CASES)] + [concat_case(rng, True) for _ in range(N_CASES)]
    _check_cases(cases, tmp_path, "pad_concat")


def test_strided_copies(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    cases = [strided_slice_case(rng) for _ in range(2 * N_CASES)] + [slice_case(rng) for _ in range(N_CASES)]
    cases += [split_case(rng, k) for k in ("SPLIT", "SPLIT_V", "UNPACK") for _ in range(N_CASES)]
    cases += [transpose_case(rng) for _ in range(N_CASES)]
    _check_cases(cases, tmp_path, "strided")


def test_resize(tmp_path: Path) -> None:
    rng = np.random.default_rng(13)
    cases = [resize_case(rng, False) for _ in range(N_CASES)] + [resize_case(rng, True) for _ in range(N_CASES)]
    _check_cases(cases, tmp_path, "resize")


def test_keras_model_end_to_end(tmp_path: Path) -> None:
    """A converted Keras 3 model chaining every lowering of the family (ZeroPadding2D -> PAD, Cropping2D ->
    STRIDED_SLICE, Concatenate, Resizing bilinear / nearest, Permute -> TRANSPOSE, split -> SPLIT_V,
    reversed slice): tflite-micro, the host C engine, the natmod and viper on the unix port agree."""
    import keras as K

    from corpus.convert import convert_model
    from test_viper_engine import check_dual, run_dual
    inp = K.Input((12, 10, 3), batch_size=1)
    a = K.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    b = K.layers.Cropping2D(((1, 0), (2, 1)))(K.layers.ZeroPadding2D(((1, 0), (2, 1)))(a))
    c = K.layers.Concatenate()([a, b])
    d = K.layers.Resizing(7, 9, interpolation="bilinear")(c)
    e = K.layers.Resizing(14, 18, interpolation="nearest")(d)
    f = K.layers.Permute((2, 1, 3))(e)
    h = K.layers.Reshape((-1, 3))(K.layers.Conv2D(3, 3, strides=2)(f))
    s1, s2 = K.layers.Lambda(lambda t: K.ops.split(t, [2], axis=-1))(h)
    o = K.layers.Concatenate(axis=1)([K.layers.Concatenate(axis=-1)([s2, s1]),
                                      K.layers.Lambda(lambda t: t[:, ::-2, :])(h)])
    rng = np.random.default_rng(9)
    tfl = convert_model(K.Model(inp, o), rng.normal(size=(16, 12, 10, 3)).astype(np.float32), "int8")
    mpk = pack(tfl)
    names = [op.name for op in MpkFile(mpk).ops]
    assert {"PAD", "STRIDED_COPY", "CONCATENATION", "RESIZE_BILINEAR", "RESIZE_NEAREST"} <= set(names), names
    dual, refs = [], []
    for _ in range(4):
        x = rng.integers(-128, 128, size=(1, 12, 10, 3)).astype(np.int8)
        ref = [_raw(r) for r in run_tflm(tfl, [x])]
        host, init = host_run(mpk, [x], garbage=True)
        assert host == ref
        dual.append((mpk, init))
        refs.append(ref)
    results = run_dual(dual, tmp_path, "keras")
    check_dual(dual, results, "keras shape model")
    for res, ref in zip(results, refs, strict=True):
        assert outputs_of(mpk, res["av"]) == ref and outputs_of(mpk, res["ac"]) == ref


def test_resize_tables_edges() -> None:
    # every (in, out) size up to 12 and every mode: indices in range, weights inside the checked bounds
    for i in range(1, 13):
        for o in range(1, 13):
            for ac, hp in ((False, False), (True, False), (False, True), (True, True)):
                assert all(0 <= nearest_index(v, i, o, ac, hp) < i for v in range(o))
                if ac and hp:
                    continue
                t = bilinear_table(i, o, ac, hp)
                assert all(0 <= t[k] < i and 0 <= t[k + 1] < i and -1024 <= t[k + 2] <= 1024
                           for k in range(0, len(t), 3))


def test_concat_refuses_mixed_quantization() -> None:
    m = _Model()
    a = m.tensor("a", (2, 3), "INT8", 0.1, 1)
    c = m.tensor("c", (2, 3), "INT8", 0.2, 1)
    y = m.tensor("y", (4, 3), "INT8", 0.1, 1)
    m.op("CONCATENATION", [a, c], [y], _opts(schema.ConcatenationOptionsT, axis=0, fusedActivationFunction=0),
         BO.ConcatenationOptions)
    with pytest.raises(PackError, match="identical quantization"):
        pack(m.finish([a, c], [y]))


# ------------------------------------------------------------------ malformed records

def _tensor_rec(f: MpkFile, i: int) -> int:
    return f.header["tensors_offset"] + 32 * i


def _param_off(f: MpkFile, op_i: int, p: int) -> int:
    op = f.ops[op_i]
    n_idx = len(op.inputs) + len(op.outputs)
    return op.record_offset + 8 + 2 * (n_idx + (n_idx & 1)) + 4 * p


def _dims(b: bytearray, f: MpkFile, ti: int, dims: tuple[int, ...], es: int = 1) -> None:
    """Rewrite a tensor record's dims (and nbytes) in place."""
    rec = _tensor_rec(f, ti)
    b[rec + 1] = len(dims)
    struct.pack_into("<4H", b, rec + 4, *(list(dims) + [0] * (4 - len(dims))))
    struct.pack_into("<I", b, rec + 16, int(np.prod(dims)) * es)


def _malformed() -> list[tuple[str, bytes, int]]:
    out: list[tuple[str, bytes, int]] = []
    rng = np.random.default_rng(21)
    # PAD: output shape, pad value out of int8 range, param out of spec range, type mismatch
    m = _Model()
    x = m.tensor("x", (2, 3), "INT8", 0.1, 4)
    p = m.tensor("p", (2, 2), "INT32", data=np.array([[1, 0], [2, 1]]))
    y = m.tensor("y", (3, 6), "INT8", 0.1, 4)
    m.op("PAD", [x, p], [y], _opts(schema.PadOptionsT), BO.PadOptions)
    mpk = pack(m.finish([x], [y]))
    f = MpkFile(mpk)
    b = bytearray(mpk)
    struct.pack_into("<i", b, _param_off(f, 0, 3), 2)          # before2: 1 -> 2
    out.append(("PAD shape", with_crc(b), 40))
    b = bytearray(mpk)
    struct.pack_into("<i", b, _param_off(f, 0, 0), 200)
    out.append(("PAD value", with_crc(b), 42))
    b = bytearray(mpk)
    struct.pack_into("<i", b, _param_off(f, 0, 5), -1)
    out.append(("PAD param range", with_crc(b), 105))
    b = bytearray(mpk)
    rec = _tensor_rec(f, f.ops[0].outputs[0])
    b[rec] = 4                                                # uint8 output of an int8 input
    struct.pack_into("<i", b, rec + 20, 4)
    out.append(("PAD types", with_crc(b), 41))
    # CONCATENATION: axis outside the rank, sizes do not add up, off-axis dims differ, types
    m = _Model()
    a = m.tensor("a", (2, 3), "INT8", 0.1, 1)
    c = m.tensor("c", (2, 2), "INT8", 0.1, 1)
    y = m.tensor("y", (2, 5), "INT8", 0.1, 1)
    m.op("CONCATENATION", [a, c], [y], _opts(schema.ConcatenationOptionsT, axis=1, fusedActivationFunction=0),
         BO.ConcatenationOptions)
    mpk = pack(m.finish([a, c], [y]))
    f = MpkFile(mpk)
    b = bytearray(mpk)
    struct.pack_into("<i", b, _param_off(f, 0, 0), 1)         # axis4 1 of a rank-2 output
    out.append(("CONCAT axis", with_crc(b), 43))
    b = bytearray(mpk)
    struct.pack_into("<i", b, _param_off(f, 0, 0), 4)
    out.append(("CONCAT axis range", with_crc(b), 100))
    b = bytearray(mpk)
    _dims(b, f, f.ops[0].inputs[1], (2, 1))
    out.append(("CONCAT sum", with_crc(b), 43))
    b = bytearray(mpk)
    _dims(b, f, f.ops[0].inputs[1], (1, 4))
    out.append(("CONCAT off-axis", with_crc(b), 43))
    b = bytearray(mpk)
    _dims(b, f, f.ops[0].inputs[1], (2, 2, 1))
    out.append(("CONCAT rank", with_crc(b), 43))
    b = bytearray(mpk)
    b[_tensor_rec(f, f.ops[0].inputs[1])] = 4
    struct.pack_into("<i", b, _tensor_rec(f, f.ops[0].inputs[1]) + 20, 1)
    out.append(("CONCAT types", with_crc(b), 41))
    # STRIDED_COPY: reads past the end, before the start (negative stride), start range, types
    m = _Model()
    x = m.tensor("x", (4, 6), "INT16", None, None)
    perm = m.tensor("perm", (2,), "INT32", data=np.array([1, 0]))
    y = m.tensor("y", (6, 4), "INT16", None, None)
    m.op("TRANSPOSE", [x, perm], [y], _opts(schema.TransposeOptionsT), BO.TransposeOptions)
    mpk = pack(m.finish([x], [y]))
    f = MpkFile(mpk)
    for what, k, v in (("start", 0, 1), ("stride up", 3, 7), ("stride down", 4, -1), ("huge", 4, 2**31 - 1),
                       ("huge down", 3, -(2**31 - 1))):
        b = bytearray(mpk)
        struct.pack_into("<i", b, _param_off(f, 0, k), v)
        out.append((f"COPY {what}", with_crc(b), 44))
    b = bytearray(mpk)
    struct.pack_into("<i", b, _param_off(f, 0, 0), -1)
    out.append(("COPY start range", with_crc(b), 100))
    b = bytearray(mpk)
    b[_tensor_rec(f, f.ops[0].outputs[0])] = 4                 # uint8 [6,4] needs 24 bytes, int16 has 48
    struct.pack_into("<I", b, _tensor_rec(f, f.ops[0].outputs[0]) + 16, 24)
    out.append(("COPY types", with_crc(b), 41))
    # RESIZE_NEAREST / RESIZE_BILINEAR: an index outside the input, table length, weight, rank, batch
    for bil in (False, True):
        m = _Model()
        x = m.tensor("x", (1, 3, 4, 2), "INT8", 0.1, 0)
        sz = m.tensor("size", (2,), "INT32", data=np.array([5, 7]))
        y = m.tensor("y", (1, 5, 7, 2), "INT8", 0.1, 0)
        if bil:
            m.op("RESIZE_BILINEAR", [x, sz], [y], _opts(schema.ResizeBilinearOptionsT, alignCorners=False,
                                                         halfPixelCenters=True), BO.ResizeBilinearOptions)
        else:
            m.op("RESIZE_NEAREST_NEIGHBOR", [x, sz], [y], _opts(schema.ResizeNearestNeighborOptionsT,
                                                                 alignCorners=False, halfPixelCenters=False),
                 BO.ResizeNearestNeighborOptions)
        mpk = pack(m.finish([x], [y]))
        f = MpkFile(mpk)
        tag = "BILINEAR" if bil else "NEAREST"
        rows, cols = f.tensors[f.ops[0].inputs[1]], f.tensors[f.ops[0].inputs[2]]
        per = 3 if bil else 1
        data = f.header["data_offset"]
        for name, t, lim in (("rows", rows, 3), ("cols", cols, 4)):
            k = int(rng.integers(0, t.nbytes // (4 * per)))
            for j, v in ((0, lim), (0, -1)) + (((1, lim),) if bil else ()):
                b = bytearray(mpk)
                struct.pack_into("<i", b, data + t.offset + 4 * (per * k + j), v)
                out.append((f"{tag} {name}[{k}].{j} = {v}", with_crc(b), 45))
            if bil:
                b = bytearray(mpk)
                struct.pack_into("<i", b, data + t.offset + 4 * (per * k + 2), 1025)
                out.append((f"{tag} {name} weight", with_crc(b), 47))
        b = bytearray(mpk)
        _dims(b, f, f.ops[0].inputs[1], (rows.nbytes // 4 - 1,), 4)
        out.append((f"{tag} rows length", with_crc(b), 45))
        b = bytearray(mpk)
        _dims(b, f, f.ops[0].outputs[0], (5, 7, 2))
        out.append((f"{tag} rank", with_crc(b), 46))
        b = bytearray(mpk)
        _dims(b, f, f.ops[0].outputs[0], (1, 5, 7, 1))
        out.append((f"{tag} channels", with_crc(b), 46))
    return out


def test_malformed_records_refused_alike(tmp_path: Path) -> None:
    from test_viper_engine import run_dual
    cases = _malformed()
    results = run_dual([(mpk, b"") for _, mpk, _ in cases], tmp_path, "malformed")
    for (what, mpk, code), res in zip(cases, results, strict=True):
        host = prepare_status(mpk)
        assert host[:3] == (10, 0, code), (what, host)          # MPYML_E_OP, op 0, the check code
        assert res["c"][:3] == host[:3] and res["v"][:3] == host[:3], (what, res["c"], res["v"])


# ------------------------------------------------------------------ params TFLite never produces, 32-bit words

def _fuzzed(rng: np.random.Generator, n_per_op: int) -> list[tuple[bytes, bytes]]:
    """Valid-looking records with random params / table entries (CRC fixed): some accepted, some refused."""
    out: list[tuple[bytes, bytes]] = []
    gens = [lambda: pad_case(rng, True), lambda: concat_case(rng, False), lambda: concat_case(rng, True),
            lambda: strided_slice_case(rng), lambda: transpose_case(rng), lambda: split_case(rng, "SPLIT_V"),
            lambda: resize_case(rng, False), lambda: resize_case(rng, True)]
    for g in gens:
        for _ in range(n_per_op):
            _, tfl, _ = g()
            mpk = pack(tfl)
            f = MpkFile(mpk)
            b = bytearray(mpk)
            op = f.ops[0]
            name = op.name
            elems = max(1, f.tensors[op.inputs[0]].nbytes)
            if name == "STRIDED_COPY":
                for k in range(5):
                    if rng.random() < 0.6:
                        lo = 0 if k == 0 else -2 * elems
                        struct.pack_into("<i", b, _param_off(f, 0, k), int(rng.integers(lo, 2 * elems)))
            elif name == "PAD":
                k = int(rng.integers(0, 9))
                struct.pack_into("<i", b, _param_off(f, 0, k), int(rng.integers(-40000, 40000)) if k == 0
                                 else int(rng.integers(0, 4)))
            elif name == "CONCATENATION":
                struct.pack_into("<i", b, _param_off(f, 0, 0), int(rng.integers(0, 4)))
            else:
                data = f.header["data_offset"]
                for ti in op.inputs[1:3]:
                    t = f.tensors[ti]
                    for _ in range(int(rng.integers(1, 4))):
                        i = int(rng.integers(0, t.nbytes // 4))
                        v = int(rng.integers(-1100, 1100)) if name == "RESIZE_BILINEAR" and i % 3 == 2 \
                            else int(rng.integers(-2, 10))
                        struct.pack_into("<i", b, data + t.offset + 4 * i, v)
            mpk = with_crc(b)
            asz = struct.unpack_from("<I", mpk, 16)[0]
            out.append((mpk, rng.integers(0, 256, size=asz, dtype=np.uint8).tobytes()))
    return out


def test_fuzzed_params_agree(tmp_path: Path) -> None:
    from test_viper_engine import check_dual, run_dual
    cases = _fuzzed(np.random.default_rng(31), 40)
    results = run_dual(cases, tmp_path, "fuzz")
    counts = check_dual(cases, results, "shape fuzz")
    for (mpk, _), res in zip(cases, results, strict=True):
        host = prepare_status(mpk)
        assert res["c"][:3] == (host[:3] if host[0] else (0, 0, 0)), (res["c"], host)
    assert 0.1 * len(cases) < counts["ran"] < len(cases), counts       # both outcomes exercised


def _word_engine(bits: int) -> Any:
    """viper_engine.py + viper_shape.py as CPython code with `bits`-bit viper word semantics."""
    import ast
    import sys
    import types

    from test_viper_engine import _ViperToWords, load_word_engine
    eng = load_word_engine(bits)
    src = Path(__file__).resolve().parents[2] / "device" / "mpyml" / "viper_shape.py"
    tree = _ViperToWords().visit(ast.parse(src.read_text()))
    ast.fix_missing_locations(tree)
    fam = types.ModuleType(f"viper_shape_{bits}")
    fam.__dict__.update({k: eng.__dict__[k] for k in ("__w", "ptr8", "ptr16", "ptr32", "uint")})
    fake = types.ModuleType("micropython")
    fake.viper = fake.native = fake.const = lambda f: f       # type: ignore[attr-defined]
    saved = sys.modules.get("micropython")
    sys.modules["micropython"] = fake
    try:
        exec(compile(tree, str(src), "exec"), fam.__dict__)
    finally:
        if saved is None:
            del sys.modules["micropython"]
        else:
            sys.modules["micropython"] = saved
    from mpyml.spec import FAMILIES
    eng._FAMS[FAMILIES.index("shape")] = fam
    return eng


@pytest.mark.parametrize("bits", [32, 64])
def test_word_size_semantics(bits: int, tmp_path: Path) -> None:
    """32: the ESP32 / Cortex-M viper arithmetic of the shape kernels matches C; 64: the simulation
    matches the unix-port viper it models."""
    from test_viper_engine import _word_run, run_dual
    eng = _word_engine(bits)
    rng = np.random.default_rng(40 + bits)
    cases: list[tuple[bytes, bytes]] = []
    gens = [lambda: pad_case(rng, False), lambda: pad_case(rng, True), lambda: concat_case(rng, False),
            lambda: concat_case(rng, True), lambda: strided_slice_case(rng), lambda: slice_case(rng),
            lambda: split_case(rng, "SPLIT"), lambda: split_case(rng, "UNPACK"), lambda: transpose_case(rng),
            lambda: resize_case(rng, False), lambda: resize_case(rng, True)]
    for g in gens:
        for _ in range(6):
            _, tfl, _ = g()
            mpk = pack(tfl)
            asz = struct.unpack_from("<I", mpk, 16)[0]
            cases.append((mpk, rng.integers(0, 256, size=asz, dtype=np.uint8).tobytes()))
    cases += _fuzzed(rng, 4)
    res = run_dual(cases, tmp_path, "words")
    bad = []
    for i, ((mpk, init), r) in enumerate(zip(cases, res, strict=True)):
        st, arena = _word_run(eng, mpk, init)
        if st[:3] != r["c"][:3] or arena != r["ac"]:
            bad.append((i, MpkFile(mpk).ops[0].name, st, r["c"]))
    assert not bad, f"{bits}-bit words: {len(bad)}/{len(cases)} cases differ from C: {bad[:5]}"


def test_opcodes_in_family_range() -> None:
    for name in ("PAD", "CONCATENATION", "STRIDED_COPY", "RESIZE_NEAREST", "RESIZE_BILINEAR"):
        assert 25 <= OPCODES[name] <= 40
