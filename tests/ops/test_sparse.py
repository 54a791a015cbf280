"""Sparse weights (SPARSE_FULLY_CONNECTED, SPARSE_CONV_2D; format v3's sparse section) against tflite-micro.

Random single-op FULLY_CONNECTED / CONV_2D models (tests/tflite_build.py builders) whose weights get 50..97% of
their entries zeroed with numpy, packed with `pack(..., sparse="always")` (rows as u8 / u16 indices, as 4-bit gaps
and as the packer picks, a third each), run by tflite-micro on the pruned `.tflite` (which still holds the zeros:
the oracle), the C engine through the host library, and the C native module and the viper engine on the
MicroPython unix port (one process): outputs byte-identical everywhere, every viper invoke allocation-free.
Inputs are partly at the zero point, so the kernels' skip of zero-point activations is exercised. Then: the
packer's choice (dense where sparse would be larger, sparse for a pruned MLP), v2 files still load, malformed
sparse records and headers for both rows encodings (both loaders refuse with the same status, detail and check
code), and a model mutated after load (bytearray) cannot make either engine touch memory outside its buffers.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from mpyml import pack
from mpyml.hostlib import HostModel, prepare_status
from mpyml.mpk import MpkFile, with_crc
from mpyml.spec import VERSION_MIN
from ops.engines import host_run, outputs_of
from test_viper_engine import check_dual, run_dual
from tflite_build import conv2d_model, fully_connected_model, run_tflm

SPARSE_OPS = ("SPARSE_FULLY_CONNECTED", "SPARSE_CONV_2D")


def _prune(tfl: bytes, frac: float, rng: np.random.Generator, block: int = 1) -> bytes:
    """Zero a `frac` share of the entries of the model's int8 weights buffer (operator 0, input 1), chosen at
    random (block > 1: whole blocks of `block` output channels in a column, as block pruning leaves them);
    sometimes whole output channels or whole input columns as well."""
    m = schema.ModelT.InitFromPackedBuf(tfl, 0)
    sg = m.subgraphs[0]
    t = sg.tensors[sg.operators[0].inputs[1]]
    buf = m.buffers[t.buffer]
    w = np.frombuffer(bytes(bytearray(buf.data)), np.int8).copy().reshape(t.shape)
    flat = w.reshape(w.shape[0], -1)
    if block > 1:
        mask = rng.random((flat.shape[0] // block, flat.shape[1])) < frac
        flat[np.repeat(mask, block, axis=0)] = 0
    else:
        w[rng.random(w.shape) < frac] = 0
    if rng.random() < 0.3:
        flat[int(rng.integers(0, flat.shape[0]))] = 0          # a dead output channel (bias only)
    if rng.random() < 0.3:
        flat[:, int(rng.integers(0, flat.shape[1]))] = 0       # an input column nobody reads
    buf.data = np.frombuffer(flat.tobytes(), np.uint8)
    import flatbuffers
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _input(rng: np.random.Generator, shape: tuple[int, ...], zp: int) -> np.ndarray:
    x = rng.integers(-128, 128, size=shape).astype(np.int8)
    x[rng.random(shape) < rng.uniform(0.0, 0.7)] = zp            # zero-point activations (skipped columns)
    return x


def _fc_case(rng: np.random.Generator) -> tuple[str, bytes, list[np.ndarray]]:
    depth = int(rng.choice([3, 16, 64, 200, 300]))
    units = int(rng.choice([1, 4, 10, 33, 256, 300]))
    batches = int(rng.integers(1, 4))
    fused = str(rng.choice(["NONE", "RELU", "RELU6"]))
    tfl = fully_connected_model(rng, (batches, depth), units, fused=fused, per_channel=bool(rng.random() < 0.4),
                                bias=bool(rng.random() < 0.8), scale_mode=str(rng.choice(["normal", "large"])))
    tfl = _prune(tfl, float(rng.uniform(0.6, 0.97)), rng)
    zp = _zp_of(tfl)
    return "SPARSE_FULLY_CONNECTED", tfl, [_input(rng, (batches, depth), zp)]


def _conv_case(rng: np.random.Generator) -> tuple[str, bytes, list[np.ndarray]]:
    k = int(rng.choice([1, 3]))
    c = int(rng.choice([1, 3, 8, 20] if k == 3 else [8, 20, 64]))
    h, w = int(rng.integers(k, 10)), int(rng.integers(k, 10))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    dil = (1, 1) if k == 1 or rng.random() < 0.7 else (2, 1)
    pad = str(rng.choice(["SAME", "VALID"]))
    if pad == "VALID" and (h < (k - 1) * dil[0] + 1 or w < (k - 1) * dil[1] + 1):
        pad = "SAME"
    n = int(rng.integers(1, 3))
    out_ch = int(rng.choice([4, 16, 40] if k == 1 else [1, 4, 16, 40]))
    tfl = conv2d_model(rng, (n, h, w, c), out_ch, (k, k), stride, dil, pad,
                       fused=str(rng.choice(["NONE", "RELU"])), per_channel=bool(rng.random() < 0.8),
                       bias=bool(rng.random() < 0.8))
    tfl = _prune(tfl, float(rng.uniform(0.6, 0.97)), rng)
    return f"SPARSE_CONV_2D:{k}x{k}", tfl, [_input(rng, (n, h, w, c), _zp_of(tfl))]


def _zp_of(tfl: bytes) -> int:
    m = schema.ModelT.InitFromPackedBuf(tfl, 0)
    sg = m.subgraphs[0]
    return int(sg.tensors[sg.inputs[0]].quantization.zeroPoint[0])


def test_sparse_kernels_bit_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(57)
    cases = [_fc_case(rng) for _ in range(60)] + [_conv_case(rng) for _ in range(60)]
    dual, refs, seen = [], [], {}
    for i, (what, tfl, inputs) in enumerate(cases):
        mpk = _packed(tfl, ("auto", "index", "gap4")[i % 3])    # both rows encodings, and the packer's pick
        f = MpkFile(mpk)
        names = [o.name for o in f.ops]
        if names[0] not in SPARSE_OPS:                # the sparse form would be larger: kept dense
            assert f.header["version"] == VERSION_MIN and f.header["sparse_size"] == 0, what
            what = "dense:" + what
        else:
            assert f.header["version"] == 3 and f.header["sparse_size"] > 0
            op = f.ops[0]
            enc = "gap4" if f.tensors[op.inputs[2]].type == 1 else "index"
            seen[enc] = seen.get(enc, 0) + 1
            dense = np.frombuffer(_weights_of(tfl), np.int8).reshape(f.dense_weights(op).shape)
            assert np.array_equal(f.dense_weights(op), dense), what
        ref = [np.ascontiguousarray(o).tobytes() for o in run_tflm(tfl, inputs)]
        host, init = host_run(mpk, inputs, garbage=True)
        assert host == ref, f"{what}: host C engine differs from tflite-micro"
        refs.append(ref)
        dual.append((mpk, init))
        key = "dense" if what.startswith("dense") else what
        seen[key] = seen.get(key, 0) + 1
    assert seen.get("SPARSE_FULLY_CONNECTED", 0) >= 25 and seen.get("SPARSE_CONV_2D:1x1", 0) >= 12 \
        and seen.get("SPARSE_CONV_2D:3x3", 0) >= 10 and seen.get("dense", 0) >= 1, seen
    assert seen.get("gap4", 0) >= 30 and seen.get("index", 0) >= 30, seen
    results = run_dual(dual, tmp_path, "sparse")
    counts = check_dual(dual, results, "sparse")         # statuses, whole arenas (acc scratch too), no allocation
    assert counts["ran"] == len(cases), counts
    for (what, _, _), (mpk, _), res, ref in zip(cases, dual, results, refs, strict=True):
        assert res["c"] == (0, 0, 0, 0) and res["v"] == (0, 0, 0, 0), (what, res["c"], res["v"])
        assert res["lock"] == 1, f"{what}: viper invoke allocated"
        assert outputs_of(mpk, res["ac"]) == ref, f"{what}: natmod differs from tflite-micro"
        assert outputs_of(mpk, res["av"]) == ref, f"{what}: viper differs from tflite-micro"


def _block_case(rng: np.random.Generator, bs: int, kind: int) -> tuple[str, bytes, list[np.ndarray]]:
    """A block-pruned FC (kind 0), 1x1 conv (1) or 3x3 conv (2) with O a multiple of bs."""
    o = bs * int(rng.choice([1, 2, 3, 5]))
    if kind == 0:
        batches, depth = int(rng.integers(1, 3)), int(rng.choice([3, 40, 130]))
        tfl = fully_connected_model(rng, (batches, depth), o, fused=str(rng.choice(["NONE", "RELU"])),
                                    per_channel=bool(rng.random() < 0.4), bias=bool(rng.random() < 0.8))
        shape: tuple[int, ...] = (batches, depth)
        what = "SPARSE_FULLY_CONNECTED"
    else:
        k = 1 if kind == 1 else 3
        shape = (1, int(rng.integers(k, 7)), int(rng.integers(k, 7)), int(rng.choice([3, 8, 17])))
        tfl = conv2d_model(rng, shape, o, (k, k), (int(rng.integers(1, 3)), 1), (1, 1),
                           str(rng.choice(["SAME", "VALID"])), fused=str(rng.choice(["NONE", "RELU"])),
                           per_channel=True, bias=bool(rng.random() < 0.8))
        what = f"SPARSE_CONV_2D:{k}x{k}"
    tfl = _prune(tfl, float(rng.uniform(0.5, 0.95)), rng, block=bs)
    return what, tfl, [_input(rng, shape, _zp_of(tfl))]


def _portable_lib(tmp_path: Path) -> Path:
    """The engine built as a host library with MPYML_NO_SIMD: the portable C loops Cortex-M0 / M3 run."""
    import subprocess
    root = Path(__file__).resolve().parents[2] / "native_modules" / "engine"
    src = [str(p) for d in ("", "ops", "pre", "sign") for p in sorted((root / d).glob("*.c"))]
    lib = tmp_path / "libmpyml_portable.so"
    subprocess.run(["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-DMPYML_NO_SIMD",
                    "-o", str(lib), *src], check=True)
    return lib


def test_block_sparse_bit_exact(tmp_path: Path) -> None:
    """Block-pruned weights (blocks of 4, 8, 16 output channels) as block indices, forced and as the packer
    picks: the SSE2 host library, the portable C build, the natmod and viper all equal tflite-micro."""
    rng = np.random.default_rng(59)
    portable = _portable_lib(tmp_path)
    cases = [_block_case(rng, bs, kind) for _ in range(4) for bs in (4, 8, 16) for kind in (0, 1, 2)]
    dual, refs, seen = [], [], {}
    for i, (what, tfl, inputs) in enumerate(cases):
        bs = (4, 8, 16)[(i // 3) % 3]
        mpk = _packed(tfl, "auto" if i % 2 else f"block{bs}")
        f = MpkFile(mpk)
        op = f.ops[0]
        if op.name in SPARSE_OPS:
            bsz = f.tensors[op.inputs[1]].elements // f.tensors[op.inputs[2]].elements
            enc = f"block{bsz}" if f.tensors[op.inputs[2]].type != 1 and bsz > 1 else "other"
            dense = np.frombuffer(_weights_of(tfl), np.int8).reshape(f.dense_weights(op).shape)
            assert np.array_equal(f.dense_weights(op), dense), what
        else:
            enc = "dense"                               # a tiny layer: the colptr would outweigh the zeros
        seen[enc] = seen.get(enc, 0) + 1
        ref = [np.ascontiguousarray(o).tobytes() for o in run_tflm(tfl, inputs)]
        host, init = host_run(mpk, inputs, garbage=True)
        assert host == ref, f"{what} {enc}: host C engine (SSE2) differs from tflite-micro"
        hm = HostModel(mpk, library=portable)
        assert [o.tobytes() for o in hm.invoke(inputs)] == ref, f"{what} {enc}: portable C differs"
        refs.append(ref)
        dual.append((mpk, init))
    assert all(seen.get(f"block{b}", 0) >= 6 for b in (4, 8, 16)), seen
    results = run_dual(dual, tmp_path, "block")
    counts = check_dual(dual, results, "block")
    assert counts["ran"] == len(cases), counts
    for (what, _, _), (mpk, _), res, ref in zip(cases, dual, results, refs, strict=True):
        assert res["c"] == (0, 0, 0, 0) and res["v"] == (0, 0, 0, 0), (what, res["c"], res["v"])
        assert res["lock"] == 1, f"{what}: viper invoke allocated"
        assert outputs_of(mpk, res["ac"]) == ref, f"{what}: natmod differs from tflite-micro"
        assert outputs_of(mpk, res["av"]) == ref, f"{what}: viper differs from tflite-micro"


def test_block_pruned_layer_packs_as_blocks() -> None:
    """A 256 x 256 layer pruned in blocks of 4 at 80%: the packer's default picks the block form (its size is
    ~1.25 bytes per nonzero, under the index and gap forms) and it is smaller than 0.3x dense."""
    rng = np.random.default_rng(8)
    m = _prune(fully_connected_model(rng, (1, 256), 256, fused="RELU"), 0.8, rng, block=4)
    f = MpkFile(pack(m))
    op = f.ops[0]
    assert op.name == "SPARSE_FULLY_CONNECTED", [o.name for o in f.ops]
    assert f.tensors[op.inputs[1]].elements == 4 * f.tensors[op.inputs[2]].elements
    st = f.sparse_stats(op)
    assert st is not None and st["sparse_bytes"] < 0.3 * st["dense_bytes"], st


def _weights_of(tfl: bytes) -> bytes:
    m = schema.ModelT.InitFromPackedBuf(tfl, 0)
    sg = m.subgraphs[0]
    return bytes(bytearray(m.buffers[sg.tensors[sg.operators[0].inputs[1]].buffer].data))


def test_packer_choice() -> None:
    rng = np.random.default_rng(3)
    dense_fc = fully_connected_model(rng, (1, 64), 32)
    mpk = pack(dense_fc)
    f = MpkFile(mpk)
    assert [o.name for o in f.ops] == ["FULLY_CONNECTED"] and f.header["version"] == VERSION_MIN
    assert f.header["sparse_size"] == 0
    # 90% zeros in a 256 x 256 layer whose input comes from a ReLU: sparse by default, 3.x times smaller
    m = _prune(fully_connected_model(rng, (1, 256), 256), 0.9, rng)
    auto = MpkFile(pack(m))
    assert auto.ops[0].name == "SPARSE_FULLY_CONNECTED" or auto.ops[0].name == "FULLY_CONNECTED"
    forced = MpkFile(pack(m, sparse="always"))
    st = forced.sparse_stats(forced.ops[0])
    assert st is not None and 0.85 < st["sparsity"] < 0.95 and st["saved_bytes"] > 40000, st
    # "always" takes the smaller rows encoding: here the 4-bit gaps, under the u8 indices' nnz bytes
    assert forced.tensors[forced.ops[0].inputs[2]].type == 1, "expected 4-bit row gaps"
    assert forced.tensors[forced.ops[0].inputs[2]].nbytes + forced.tensors[forced.ops[0].inputs[1]].nbytes \
        < 2 * st["nnz"], st
    assert [o.name for o in MpkFile(pack(m, sparse=False)).ops] == ["FULLY_CONNECTED"]
    # 30% zeros: the CSC form (value + row index per weight) would be larger, never used
    few = MpkFile(pack(_prune(fully_connected_model(rng, (1, 64), 64), 0.3, rng), sparse="always"))
    assert few.ops[0].name == "FULLY_CONNECTED"


# ------------------------------------------------------------------ malformed sparse records and headers

def _rec(f: MpkFile, ti: int) -> int:
    return f.header["tensors_offset"] + 32 * ti


def _data(f: MpkFile, ti: int) -> int:
    return f.header["data_offset"] + f.tensors[ti].offset


def _packed(tfl: bytes, rows: str) -> bytes:
    """pack(tfl, sparse="always") with the rows encoding forced ("index", "gap4") or chosen ("auto")."""
    import mpyml.lower.sparse as ls
    old = ls.ROWS
    ls.ROWS = rows
    try:
        return pack(tfl, sparse="always")
    finally:
        ls.ROWS = old


def _base(conv: bool, rows: str = "index") -> bytes:
    rng = np.random.default_rng(11)
    if conv:
        tfl = conv2d_model(rng, (1, 6, 6, 4), 8, (3, 3), per_channel=True)
    else:
        tfl = fully_connected_model(rng, (1, 40), 12)
    return _packed(_prune(tfl, 0.8, rng, block=4 if rows == "block4" else 1), rows)


def _malformed_block(conv: bool) -> list[tuple[str, bytes, tuple[int, int, int]]]:
    """Block indices: an index naming a block past O, values not a multiple of 4 / 8 / 16 of the rows, rows
    not increasing."""
    out: list[tuple[str, bytes, tuple[int, int, int]]] = []
    mpk = _base(conv, "block4")
    f = MpkFile(mpk)
    op = f.ops[0]
    vals, rows, cp = op.inputs[1], op.inputs[2], op.inputs[3]
    nb = f.tensors[rows].elements
    assert op.name in SPARSE_OPS and f.tensors[vals].elements == 4 * nb, "the block base must use blocks of 4"
    edit = _editor(mpk, ("conv" if conv else "fc") + " block4", out)
    o = f.tensors[op.outputs[0]].shape[-1]
    edit(lambda b: struct.pack_into("<B", b, _data(f, rows), o // 4), 81, "block index = O / 4")
    edit(lambda b: struct.pack_into("<B", b, _data(f, rows), o), 81, "block index = O")
    cpv = f.const_array(f.tensors[cp])
    j = int(np.argmax(np.diff(cpv) >= 2))
    r0 = _data(f, rows) + int(cpv[j])
    edit(lambda b: b.__setitem__(slice(r0, r0 + 2), bytes(b[r0:r0 + 2])[::-1]), 81, "blocks not increasing")
    for n in (4 * nb - 1, 3 * nb, 2 * nb):
        edit(lambda b, n=n: struct.pack_into("<H", b, _rec(f, vals) + 4, n) or
             struct.pack_into("<I", b, _rec(f, vals) + 16, n), 83, f"{n} values for {nb} blocks")
    return out


def _malformed() -> list[tuple[str, bytes, tuple[int, int, int]]]:
    """(what, corrupted mpk, expected (status, index, detail)) - E_OP = 10, E_HEADER = 6, E_VERSION = 3."""
    return (_malformed_one(False) + _malformed_one(True) + _malformed_gap(False) + _malformed_gap(True)
            + _malformed_block(False) + _malformed_block(True))


def _editor(mpk: bytes, tag: str, out: list[tuple[str, bytes, tuple[int, int, int]]]) -> object:
    def edit(fn: object, code: int, what: str, detail_status: int = 10) -> None:
        b = bytearray(mpk)
        fn(b)  # type: ignore[operator]
        out.append((f"{tag} {what}", with_crc(b), (detail_status, 0 if detail_status == 10 else -1, code)))
    return edit


def _malformed_gap(conv: bool) -> list[tuple[str, bytes, tuple[int, int, int]]]:
    """The 4-bit-gap rows: a row past O, an odd column, the wrong byte count, an odd entry count."""
    out: list[tuple[str, bytes, tuple[int, int, int]]] = []
    mpk = _base(conv, "gap4")
    f = MpkFile(mpk)
    op = f.ops[0]
    vals, rows, cp = op.inputs[1], op.inputs[2], op.inputs[3]
    assert op.name in SPARSE_OPS and f.tensors[rows].type == 1, "the gap base must use 4-bit gaps"
    edit = _editor(mpk, ("conv" if conv else "fc") + " gap4", out)
    o = f.tensors[op.outputs[0]].shape[-1]
    cpv = f.const_array(f.tensors[cp])
    n = int(cpv[-1])
    assert o <= 30, o                                       # two gaps of 15 reach a row past O
    k = int(np.argmax(np.diff(cpv) >= 2))
    g0 = _data(f, rows) + int(cpv[k]) // 2
    edit(lambda b: b.__setitem__(g0, 0xFF), 81, "gaps past O")
    last = _data(f, rows) + n // 2 - 1
    edit(lambda b: b.__setitem__(last, b[last] | 0xF0) or b.__setitem__(last - 1, b[last - 1] | 0xFF), 81,
         "gaps past O in the last column")
    j = int(np.argmax(np.diff(cpv) >= 2)) + 1
    edit(lambda b: struct.pack_into("<i", b, _data(f, cp) + 4 * j, int(cpv[j]) - 1), 81, "odd column pointer")
    # one gap byte fewer than entries / 2 (the record's element count and byte size)
    nb = f.tensors[rows].elements
    edit(lambda b: struct.pack_into("<H", b, _rec(f, rows) + 4, nb - 1) or
         struct.pack_into("<I", b, _rec(f, rows) + 16, nb - 1), 80, "gap bytes != entries / 2")
    # an odd entry count: one value fewer (and the last column pointer to match)
    edit(lambda b: struct.pack_into("<H", b, _rec(f, vals) + 4, n - 1) or
         struct.pack_into("<I", b, _rec(f, vals) + 16, n - 1), 80, "odd entry count")
    return out


def _malformed_one(conv: bool) -> list[tuple[str, bytes, tuple[int, int, int]]]:
    out: list[tuple[str, bytes, tuple[int, int, int]]] = []
    mpk = _base(conv)
    f = MpkFile(mpk)
    op = f.ops[0]
    assert op.name in SPARSE_OPS
    vals, rows, cp = op.inputs[1], op.inputs[2], op.inputs[3]
    tag = "conv" if conv else "fc"
    nnz = f.tensors[rows].elements
    o = f.tensors[op.outputs[0]].shape[-1]
    edit = _editor(mpk, tag, out)

    edit(lambda b: struct.pack_into("<B", b, _data(f, rows), o), 81, "row index = O")
    edit(lambda b: struct.pack_into("<B", b, _data(f, rows), 255), 81, "row index 255")
    cpv = f.const_array(f.tensors[cp])
    j = int(np.argmax(np.diff(cpv) >= 2))                   # a column with two values: swap their rows
    r0 = _data(f, rows) + int(cpv[j])
    edit(lambda b: b.__setitem__(slice(r0, r0 + 2), bytes(b[r0:r0 + 2])[::-1]), 81, "rows not increasing")
    edit(lambda b: struct.pack_into("<i", b, _data(f, cp), 1), 81, "colptr[0] != 0")
    edit(lambda b: struct.pack_into("<i", b, _data(f, cp) + 4 * (len(cpv) - 1), nnz + 1), 81,
         "colptr end past the values")
    edit(lambda b: struct.pack_into("<i", b, _data(f, cp) + 4, 0x7FFFFFFF), 81, "colptr huge")
    k = int(np.argmax(np.diff(cpv) >= 1)) + 1
    edit(lambda b: struct.pack_into("<i", b, _data(f, cp) + 4 * k, int(cpv[k - 1]) - 1 if cpv[k - 1] else -1),
         81, "colptr decreasing")
    edit(lambda b: struct.pack_into("<i", b, _rec(f, vals) + 20, 3), 83, "values zero point")
    # rows in untrusted data (the values' blob): refused as operand 2 (a trusted operand) by the generic rule
    edit(lambda b: struct.pack_into("<I", b, _rec(f, rows) + 12, f.tensors[vals].offset), 202,
         "rows outside the trusted region")
    # rows in the trusted region but before the sparse section (over the requantization params)
    assert f.header["trusted_size"] - f.header["sparse_size"] > 0
    edit(lambda b: struct.pack_into("<I", b, _rec(f, rows) + 12, 0), 82, "rows outside the section")
    edit(lambda b: struct.pack_into("<I", b, 56, 0), 82, "sparse_size 0 (v3)")
    # header rules (E_HEADER, detail 10)
    edit(lambda b: struct.pack_into("<I", b, 56, f.header["trusted_size"] + 16), 10, "sparse_size > trusted",
         detail_status=6)
    edit(lambda b: struct.pack_into("<I", b, 56, 8), 10, "sparse_size misaligned", detail_status=6)
    edit(lambda b: struct.pack_into("<H", b, 4, 2), 10, "v2 with a sparse section", detail_status=6)
    edit(lambda b: struct.pack_into("<H", b, 4, 4), 4, "version 4", detail_status=3)
    # shapes
    edit(lambda b: struct.pack_into("<H", b, _rec(f, op.outputs[1]) + 4, o - 1) or
         struct.pack_into("<I", b, _rec(f, op.outputs[1]) + 16, 4 * (o - 1)), 80, "acc length")
    return out


def test_malformed_sparse_records(tmp_path: Path) -> None:
    cases = _malformed()
    assert len(cases) >= 30
    for what, mpk, want in cases:
        st = prepare_status(mpk)
        assert st[:3] == want, (what, st, want)
    results = run_dual([(m, b"") for _, m, _ in cases], tmp_path, "bad")
    for (what, _, want), res in zip(cases, results, strict=True):
        assert res["c"][:3] == want and res["v"][:3] == want, (what, res["c"], res["v"], want)


def test_v2_files_still_load() -> None:
    rng = np.random.default_rng(5)
    mpk = pack(fully_connected_model(rng, (1, 16), 8))
    assert MpkFile(mpk).header["version"] == 2
    assert prepare_status(mpk)[0] == 0
    b = bytearray(mpk)
    struct.pack_into("<H", b, 4, 3)                   # the same dense model as v3 (sparse_size 0) loads too
    assert prepare_status(with_crc(b))[0] == 0


MUTATE = r"""
import sys, mpyml
mpk = bytearray(open(sys.argv[1], "rb").read())
for engine in ("native", "viper"):
    m = mpyml.load(mpk, engine=engine)
    m.invoke()
    good = bytes(m.outputs[0].buffer)
    for v in range(0, 256, 17):
        for i in range(len(mpk)):            # every byte of the file (records, sparse section, values)
            mpk[i] ^= v
        m.invoke()
        for i in range(len(mpk)):
            mpk[i] ^= v
    m.invoke()
    print("MUT", engine, bytes(m.outputs[0].buffer) == good)
"""


def test_mutation_after_load(tmp_path: Path) -> None:
    """A bytearray model rewritten after load (every byte, several patterns): the engines read only their
    validated copies of rows / colptr, so nothing crashes and restoring the bytes restores the output."""
    from mpyml.unix_port import run_micropython
    for rows in ("index", "gap4", "block4"):
        mpk = _base(conv=True, rows=rows)
        p = tmp_path / f"m_{rows}.mpk"
        p.write_bytes(mpk)
        s = tmp_path / "mut.py"
        s.write_text(MUTATE)
        r = run_micropython([str(s), str(p)])
        assert r.returncode == 0, r.stderr[-2000:]
        assert "MUT native True" in r.stdout and "MUT viper True" in r.stdout, rows + r.stdout + r.stderr[-2000:]
        hm = HostModel(mpk)
        assert hm.invoke_status() == 0


def test_sanitizer_fuzz_sparse(tmp_path: Path) -> None:
    """The ASan/UBSan mutation driver (native_modules/tests/fuzz_loader.c) on a sparse FC and a sparse conv
    model, each with u8 row indices, with 4-bit row gaps and with blocks of 4: truncations, bit flips (raw and
    CRC-fixed), structured field mutations, invokes of what loads."""
    import subprocess

    import test_loader_robustness as tlr
    with tlr.build_lock():
        r = subprocess.run(["make", "-s", "-C", str(tlr.TESTS_MAKE), "sanitize"], capture_output=True, text=True)
    assert r.returncode == 0, f"building the sanitizer driver failed:\n{r.stdout}\n{r.stderr}"
    seeds = []
    for conv in (False, True):
        for rows in ("index", "gap4", "block4"):
            p = tmp_path / f"sparse_{'conv' if conv else 'fc'}_{rows}.mpk"
            p.write_bytes(_base(conv, rows))
            seeds.append(str(p))
    r = tlr.run_driver(tlr.DRIVER, ["-s", "57", "-f", "300", "-F", "3000", "-m", "20000", "-T", "400", "-t", "40",
                            "-o", str(tmp_path), *seeds])
    print(r.stdout)
    ph = tlr.parse_phases(r.stdout)
    assert ph["struct"].cases > 0 and ph["struct"].accepted > 0 and ph["struct"].invoked > 0, r.stdout
    # the kernels built with the ARMv6-M (Cortex-M0) arithmetic
    r = tlr.run_driver(tlr.DRIVER_V6M, ["-s", "58", "-f", "100", "-F", "500", "-m", "4000", "-T", "100", "-t", "20",
                                        "-o", str(tmp_path), *seeds])
    assert tlr.parse_phases(r.stdout)["struct"].invoked > 0, r.stdout


# ------------------------------------------------------------------ pruned Keras models (tools/sparse_corpus.py)

CORPUS = [("mlp", 0.8, "int8", 256, 1), ("mlp", 0.9, "uint8", 64, 1), ("conv1x1", 0.85, "uint8", 64, 1),
          ("conv3x3", 0.8, "float", 64, 1), ("conv3x3", 0.9, "int8", 128, 1),
          ("mlp", 0.8, "int8", 256, 8), ("conv3x3", 0.8, "uint8", 128, 8)]     # (last: pruned in blocks of 8)


def _raw_inputs(tfl: bytes, x: np.ndarray) -> np.ndarray:
    m = schema.ModelT.InitFromPackedBuf(tfl, 0)
    sg = m.subgraphs[0]
    t = sg.tensors[sg.inputs[0]]
    if t.type == schema.TensorType.FLOAT32:
        return x.astype(np.float32)
    s, z = t.quantization.scale[0], t.quantization.zeroPoint[0]
    lo, hi, dt = (0, 255, np.uint8) if t.type == schema.TensorType.UINT8 else (-128, 127, np.int8)
    return np.clip(np.round(x / s) + z, lo, hi).astype(dt)


def test_pruned_keras_corpus(tmp_path: Path) -> None:
    """Magnitude-pruned digits models (Dense MLPs, 1x1 and 3x3 convs with per-channel quantization; int8, uint8
    and float I/O; weight by weight and in blocks of 8 output channels) converted by TensorFlow: sparse packing
    is bit-exact with tflite-micro on host, natmod and viper over real test images, and smaller than the dense
    packing."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    try:
        import sparse_corpus
        import tensorflow  # noqa: F401
    except ImportError as e:
        from conftest import skip_or_fail
        skip_or_fail(f"TensorFlow is needed to build the pruned models: {e}")
    dual, refs, names = [], [], []
    for kind, sparsity, io, width, block in CORPUS:
        tfl, xte, _ = sparse_corpus.build(kind, sparsity, io=io, width=width, epochs=6, block=block)
        dense = pack(tfl, sparse=False)
        for mode in (True, "always"):
            mpk = pack(tfl, sparse=mode)
            f = MpkFile(mpk)
            n_sparse = sum(o.name in SPARSE_OPS for o in f.ops)
            if mode == "always" or block > 1:      # block-pruned: sparse (and blocks) by default too
                assert n_sparse >= 2 and len(mpk) < len(dense), (kind, io, len(mpk), len(dense))
            if block > 1:
                assert any(f.tensors[o.inputs[1]].elements == block * f.tensors[o.inputs[2]].elements
                           for o in f.ops if o.name in SPARSE_OPS), (kind, "no block-index layer")
            for i in range(4):
                x = _raw_inputs(tfl, xte[i:i + 1])
                ref = [np.ascontiguousarray(o).tobytes() for o in run_tflm(tfl, [x])]
                host, init = host_run(mpk, [x], garbage=True)
                assert host == ref, f"{kind} {io} {mode}: host C engine differs from tflite-micro"
                dual.append((mpk, init))
                refs.append(ref)
                names.append(f"{kind}-{io}-{mode}-{i}")
    results = run_dual(dual, tmp_path, "corpus")
    counts = check_dual(dual, results, "corpus")
    assert counts["ran"] == len(dual), counts
    for what, (mpk, _), res, ref in zip(names, dual, results, refs, strict=True):
        assert outputs_of(mpk, res["ac"]) == ref, f"{what}: natmod differs from tflite-micro"
        assert outputs_of(mpk, res["av"]) == ref, f"{what}: viper differs from tflite-micro"
