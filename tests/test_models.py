"""Whole-model bit-exactness: every model in ../shared/models through pack -> C natmod on the MicroPython
unix port, compared byte for byte with tflite-micro on 20 random inputs each and on the real samples."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_path
from mpyml import pack
from mpyml.mpk import MpkFile
from mpyml.tflm import TflmRunner
from mpyml.unix_port import run_batch

MODELS = [
    ("mlperf_tiny", "ad01_int8.tflite"),
    ("mlperf_tiny", "kws_ref_model.tflite"),
    ("mlperf_tiny", "pretrainedResnet_quant.tflite"),
    ("mlperf_tiny", "str_ww_ref_model.tflite"),
    ("mlperf_tiny", "vww_96_int8.tflite"),
    ("tflm", "person_detect.tflite"),
]
N_RANDOM = 20


def read_bmp_gray(path) -> np.ndarray:
    """8-bit palettized BMP -> top-down uint8 grayscale (palette luminance)."""
    b = path.read_bytes()
    off = int.from_bytes(b[10:14], "little")
    hdr = int.from_bytes(b[14:18], "little")
    w, h = int.from_bytes(b[18:22], "little", signed=True), int.from_bytes(b[22:26], "little", signed=True)
    bpp = int.from_bytes(b[28:30], "little")
    assert bpp == 8, bpp
    ncol = int.from_bytes(b[46:50], "little") or 256
    pal = np.frombuffer(b[14 + hdr:14 + hdr + 4 * ncol], np.uint8).reshape(-1, 4)[:, :3]   # B, G, R
    stride = (w + 3) // 4 * 4
    idx = np.frombuffer(b[off:off + stride * abs(h)], np.uint8).reshape(abs(h), stride)[:, :w]
    if h > 0:
        idx = idx[::-1]
    return pal[idx][..., 0].astype(np.uint8)   # gray palette: B == G == R


def real_samples(name: str, inp) -> list[np.ndarray]:
    if name == "kws_ref_model.tflite":
        return [np.load(shared_path("data", "mlperf_tiny_inputs", "kws_input_int8.npy")).astype(np.int8)]
    if name == "ad01_int8.tflite":
        x = np.load(shared_path("data", "mlperf_tiny_inputs", "ad_dcase01_normal_id_01_logmel_float32.npy"))
        frames = x.reshape(-1, 128)
        wins = [frames[i:i + 5].reshape(1, 640) for i in range(0, len(frames) - 5, 37)]
        return [np.clip(np.round(w / inp.scale) + inp.zero_point, -128, 127).astype(np.int8) for w in wins]
    if name == "person_detect.tflite":
        return [(read_bmp_gray(shared_path("data", "person_detection", f)).astype(np.int16) - 128)
                .astype(np.int8).reshape(inp.shape) for f in ("person.bmp", "no_person.bmp")]
    return []


@pytest.mark.parametrize("folder,name", MODELS, ids=[m[1] for m in MODELS])
def test_model_bit_exact_with_tflite_micro(folder: str, name: str) -> None:
    tflite = shared_path("models", folder, name).read_bytes()
    mpk = pack(tflite)
    f = MpkFile(mpk)
    rng = np.random.default_rng(1234)
    batch = [[rng.integers(-128, 128, size=t.shape, dtype=np.int8) for t in f.input_tensors()]
             for _ in range(N_RANDOM)]
    real = real_samples(name, f.input_tensors()[0])
    batch += [[s] for s in real]
    res = run_batch(mpk, batch)
    ref = TflmRunner(tflite)
    mismatches = []
    for i, (sample, got) in enumerate(zip(batch, res.batch, strict=True)):
        want = ref.run(sample)
        for j, (w, g) in enumerate(zip(want, got, strict=True)):
            if not np.array_equal(w.reshape(-1), g.reshape(-1)):
                mismatches.append((i, j, w.reshape(-1)[:8].tolist(), g.reshape(-1)[:8].tolist()))
    assert not mismatches, f"{len(mismatches)} of {len(batch)} samples differ from tflite-micro: {mismatches[:3]}"
    assert res.heap_delta == 0, f"invoke allocated {res.heap_delta} bytes on the MicroPython heap"
    if name == "person_detect.tflite":
        (p,), (n,) = res.batch[-2], res.batch[-1]
        p, n = p.reshape(-1).astype(int), n.reshape(-1).astype(int)
        assert p[1] - p[0] > n[1] - n[0], "person image must score higher for 'person' than the no-person image"


def test_person_detect_scores_match_reference_readme() -> None:
    """../shared/README.md: TFLM gives person-minus-not-person -8 (person.bmp) and -154 (no_person.bmp)."""
    tflite = shared_path("models", "tflm", "person_detect.tflite").read_bytes()
    mpk = pack(tflite)
    inp = MpkFile(mpk).input_tensors()[0]
    res = run_batch(mpk, [[s] for s in real_samples("person_detect.tflite", inp)])
    scores = [int(o[0].reshape(-1)[1]) - int(o[0].reshape(-1)[0]) for o in res.batch]
    assert scores == [-8, -154]
