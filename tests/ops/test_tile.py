"""TILE (RepeatVector, UpSampling1D forms) -> CONCATENATION of the input with itself, against TFLite's reference TILE.

tflite-micro has no TILE kernel, so the oracle is TFLite's reference-kernel interpreter (test_corpus.reference:
the converter's TILE version lowered to the one its reference resolver registers; a pure copy). Random int8 /
uint8 single-op models tiling one axis or several (ranks 1..4, multiples up to 31) on the C engine (host library),
the C native module and the viper engine on the unix port; the packer's refusal (> 31 copies); CONCATENATION of
more inputs than a record holds; tf-keras UpSampling1D's SPLIT -> CONCATENATION repeat as one RESIZE_NEAREST.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mpyml import pack
from mpyml.mpk import MpkFile
from mpyml.packer import PackError
from ops.engines import host_run, outputs_of
from test_corpus import reference
from test_viper_engine import check_dual, run_dual
from tflite_build import _Model


def _tile_model(shape: tuple[int, ...], mult: list[int], dtype: str = "INT8") -> bytes:
    m = _Model()
    x = m.tensor("x", shape, dtype, 0.05, 3 if dtype == "INT8" else 130)
    t = m.tensor("multiples", (len(mult),), "INT32", data=np.asarray(mult, np.int32))
    y = m.tensor("y", tuple(d * k for d, k in zip(shape, mult, strict=True)), dtype, 0.05,
                 3 if dtype == "INT8" else 130)
    m.op("TILE", [x, t], [y])
    return m.finish([x], [y])


def test_tile_one_axis(tmp_path: Path) -> None:
    rng = np.random.default_rng(31)
    dual, refs = [], []
    for i in range(40):
        rank = int(rng.integers(1, 5))
        shape = tuple(int(d) for d in rng.integers(1, 6, size=rank))
        mult = [1] * rank
        mult[int(rng.integers(0, rank))] = int(rng.choice([1, 2, 3, 5, 31]) if i % 7 else 31)
        dtype = "UINT8" if i % 5 == 4 else "INT8"
        tfl = _tile_model(shape, mult, dtype)
        mpk = pack(tfl)
        assert [o.name for o in MpkFile(mpk).ops] == ["CONCATENATION"]
        x = rng.integers(0, 256, size=shape).astype(np.uint8).view(np.int8 if dtype == "INT8" else np.uint8)
        ref = [np.ascontiguousarray(o).tobytes() for o in reference(tfl, [x])]
        assert ref[0] == np.tile(x, mult).tobytes()
        host, init = host_run(mpk, [x], garbage=True)
        assert host == ref, (shape, mult)
        dual.append((mpk, init))
        refs.append(ref)
    results = run_dual(dual, tmp_path, "tile")
    check_dual(dual, results, "tile")
    for (mpk, _), res, ref in zip(dual, results, refs, strict=True):
        assert outputs_of(mpk, res["ac"]) == ref and outputs_of(mpk, res["av"]) == ref


def test_tile_several_axes(tmp_path: Path) -> None:
    rng = np.random.default_rng(32)
    dual, refs = [], []
    for shape, mult in (((2, 3), [2, 2]), ((1, 2, 1, 3), [3, 1, 4, 2]), ((1, 1, 6), [1, 5, 1]), ((3,), [31])):
        tfl = _tile_model(shape, mult)
        mpk = pack(tfl)
        # (graph.cleanup may first rewrite a TILE that is a nearest-neighbour upsampling into RESIZE_NEAREST)
        assert {o.name for o in MpkFile(mpk).ops} <= {"CONCATENATION", "RESHAPE", "RESIZE_NEAREST"}
        x = rng.integers(-128, 128, size=shape).astype(np.int8)
        ref = [np.ascontiguousarray(o).tobytes() for o in reference(tfl, [x])]
        assert ref[0] == np.tile(x, mult).tobytes()
        host, init = host_run(mpk, [x], garbage=True)
        assert host == ref, (shape, mult)
        dual.append((mpk, init))
        refs.append(ref)
    results = run_dual(dual, tmp_path, "tiles")
    check_dual(dual, results, "tiles")
    for (mpk, _), res, ref in zip(dual, results, refs, strict=True):
        assert outputs_of(mpk, res["ac"]) == ref and outputs_of(mpk, res["av"]) == ref


def test_tile_refusal() -> None:
    with pytest.raises(PackError, match="at most 31"):
        pack(_tile_model((2, 3), [1, 32]))


def _split_concat(t: int, repeat: bool) -> bytes:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
    m = _Model()
    x = m.tensor("x", (1, t, 3), "INT8", 0.05, -4)
    ax = m.tensor("axis", (), "INT32", data=np.asarray(1, np.int32))
    parts = [m.tensor(f"s{i}", (1, 1, 3), "INT8", 0.05, -4) for i in range(t)]
    o = schema.SplitOptionsT()
    o.numSplits = t
    m.op("SPLIT", [ax, x], parts, o, schema.BuiltinOptions.SplitOptions)
    y = m.tensor("y", (1, 2 * t, 3), "INT8", 0.05, -4)
    c = schema.ConcatenationOptionsT()
    c.axis = 1
    ins = [p for p in parts for _ in range(2)] if repeat else parts + parts
    m.op("CONCATENATION", ins, [y], c, schema.BuiltinOptions.ConcatenationOptions)
    return m.finish([x], [y])


@pytest.mark.parametrize("t", [16, 40])
def test_split_concat_repeat_is_resize(t: int, tmp_path: Path) -> None:
    """tf-keras UpSampling1D: SPLIT into T slices, CONCATENATION of 2 * T inputs (s0, s0, s1, s1, ...) is a
    nearest-neighbour repeat: graph.cleanup makes it one RESIZE_NEAREST (between RESHAPEs to 4-D) instead of T
    copies and the concatenations."""
    tfl = _split_concat(t, repeat=True)
    mpk = pack(tfl)
    assert [o.name for o in MpkFile(mpk).ops] == ["RESHAPE", "RESIZE_NEAREST", "RESHAPE"]
    rng = np.random.default_rng(t)
    xv = rng.integers(-128, 128, size=(1, t, 3)).astype(np.int8)
    want = np.repeat(xv, 2, axis=1).tobytes()
    host, init = host_run(mpk, [xv], garbage=True)
    assert host == [want]          # the oracle: the repeat itself (tflite-micro refuses > 10 concat inputs)
    results = run_dual([(mpk, init)], tmp_path, "upsample")
    check_dual([(mpk, init)], results, "upsample")
    assert outputs_of(mpk, results[0]["ac"]) == [want] and outputs_of(mpk, results[0]["av"]) == [want]


@pytest.mark.parametrize("t", [16, 40])
def test_concat_of_many_inputs(t: int, tmp_path: Path) -> None:
    """SPLIT into T slices, CONCATENATION of 2 * T inputs (s0 .. sT-1, s0 .. sT-1: a tile, no resize). More than
    31 inputs (one record's limit) are concatenated in groups through arena tensors; tflite-micro refuses more
    than 10 inputs, so the oracle is the tile itself (TFLite's reference kernels compute exactly that)."""
    from mpyml.tflite_model import read_tflite
    tfl = _split_concat(t, repeat=False)
    assert len(read_tflite(tfl).operators[1].inputs) == 2 * t
    mpk = pack(tfl)
    n_concat = sum(o.name == "CONCATENATION" for o in MpkFile(mpk).ops)
    assert n_concat == (1 if 2 * t <= 31 else 1 + -(-2 * t // 31))
    rng = np.random.default_rng(t)
    xv = rng.integers(-128, 128, size=(1, t, 3)).astype(np.int8)
    want = np.tile(xv, (1, 2, 1)).tobytes()
    host, init = host_run(mpk, [xv], garbage=True)
    assert host == [want]
    results = run_dual([(mpk, init)], tmp_path, "concat")
    check_dual([(mpk, init)], results, "concat")
    assert outputs_of(mpk, results[0]["ac"]) == [want] and outputs_of(mpk, results[0]["av"]) == [want]
