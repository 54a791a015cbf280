"""The Cortex-M4/M7 CONV_2D kernel (native_modules/engine/ops/conv2d_dsp.c: im2col + a 2 pixels x 2 channels
SMLAD GEMM in inline assembly, so the host's MPYML_EMULATE_DSP build only proves its C model) on the target:
random single-op models run bare-metal under QEMU (mps2-an386 / an500) and compared byte for byte with
tflite-micro.

The shapes cover every path: 1x1 pointwise (strided), KxK with SAME / VALID padding (windows clipped on every
side, memset + partial runs), in_c 1 / 3 first layers (runs not aligned to the column's groups of 4), reductions
with K % 4 != 0 (the C tail) and an odd number of weight words (the single-word step after the unrolled loop),
dilation, batches, odd pixel counts (the one-pixel pass) and channel counts (the overlapping last pair), a
single output pixel, out_c 1 and a reduction above MPYML_CONV_DSP_MAX_K (both the generic path), and
requantization scales that make the accumulators large (the exact SMULL requantization) or small (SMMULR).
Skipped when the ARM toolchain or QEMU is missing (fails under CI=true).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tflite_build as tb
from conftest import IN_CI, skip_or_fail
from mpyml import baremetal as bm
from mpyml import pack
from mpyml.mpk import MpkFile
from mpyml.tflm import TflmRunner

CPUS = ("m4", "m7")
N_RANDOM, N_SAMPLES = 24, 2


@pytest.fixture(autouse=True, scope="module")
def _toolchain() -> None:
    why = bm.missing_tools()
    if why:
        if IN_CI:
            pytest.fail(why)
        skip_or_fail(why)


def _conv_case(rng: np.random.Generator, i: int) -> tuple[bytes, dict[str, Any]]:
    """Random CONV_2D: in_c 1..40, filters 1..5, strides 1..2, dilation 1..3, SAME / VALID, odd sizes."""
    kind = i % 4
    padding = str(rng.choice(["SAME", "VALID"]))
    if kind == 0:       # 1x1 pointwise (GEMM), sometimes strided
        kh = kw = 1
        stride = (int(rng.choice([1, 1, 2])), int(rng.choice([1, 1, 2])))
        dil = (1, 1)
    else:
        kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        stride = (int(rng.choice([1, 1, 2])), int(rng.choice([1, 1, 2])))
        dil = (1, 1) if kind != 3 else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    in_c = int(rng.integers(1, 4)) if kind == 1 else int(rng.integers(1, 41))
    lo_h, lo_w = (kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1
    h = int(rng.integers(lo_h, max(lo_h + 1, 12)))
    w = int(rng.integers(lo_w, max(lo_w + 1, 12)))
    n = 2 if rng.random() < 0.15 else 1
    out_ch = int(rng.integers(1, 4)) if rng.random() < 0.2 else int(rng.integers(4, 24))
    kwargs: dict[str, Any] = dict(in_shape=(n, h, w, in_c), out_ch=out_ch, kernel=(kh, kw), stride=stride,
                                  dilation=dil, padding=padding, fused=str(rng.choice(tb.ACTIVATIONS)),
                                  per_channel=bool(rng.random() < 0.75), bias=bool(rng.random() < 0.9),
                                  scale_mode=str(rng.choice(["normal", "normal", "large", "tiny", "mixed"])))
    return tb.conv2d_model(rng, **kwargs), kwargs


def _cases() -> list[tuple[bytes, str]]:
    rng = np.random.default_rng(20261204)
    cases = [(_conv_case(rng, i)[0], f"random {i}") for i in range(N_RANDOM)]
    cases.append((tb.random_case("CONV_2D", rng)[0], "random_case"))
    fixed: list[tuple[tuple[int, int, int, int], int, tuple[int, int], tuple[int, int], tuple[int, int], str]] = [
        ((1, 13, 11, 1), 8, (3, 3), (2, 2), (1, 1), "SAME"),        # person_detect's first conv
        ((1, 15, 13, 3), 9, (3, 3), (2, 2), (1, 1), "SAME"),        # VWW's first conv, odd out_c
        ((1, 17, 9, 1), 12, (10, 4), (2, 2), (1, 1), "SAME"),       # KWS's first conv
        ((1, 6, 7, 64), 6, (3, 3), (1, 1), (1, 1), "SAME"),         # K = 576, the bound
        ((1, 5, 5, 40), 5, (5, 5), (1, 1), (1, 1), "SAME"),         # K = 1000: generic path
        ((1, 7, 5, 37), 7, (1, 1), (1, 2), (1, 1), "VALID"),        # 1x1, K % 4 == 1, strided
        ((1, 3, 3, 6), 1, (3, 3), (1, 1), (1, 1), "SAME"),          # out_c 1: generic path
        ((2, 3, 3, 5), 3, (3, 3), (1, 1), (1, 1), "VALID"),         # one pixel per batch
        ((1, 9, 9, 4), 10, (3, 3), (1, 1), (2, 3), "SAME"),         # dilated, fully clipped taps
        ((1, 3, 3, 5), 4, (3, 3), (1, 1), (1, 1), "VALID"),         # a single output pixel
        ((1, 5, 3, 7), 5, (1, 1), (1, 1), (1, 1), "VALID"),         # 1x1, 15 pixels, K % 4 == 3
    ]
    for in_shape, out_ch, kernel, stride, dil, padding in fixed:
        model = tb.conv2d_model(rng, in_shape, out_ch, kernel, stride, dil, padding, "RELU6")
        cases.append((model, f"{in_shape} -> {out_ch} k{kernel} s{stride} d{dil} {padding}"))
    return cases


_CACHE: list[tuple[bytes, str]] = []


def _cases_cached() -> list[tuple[bytes, str]]:
    if not _CACHE:
        _CACHE.extend(_cases())
    return _CACHE


@pytest.mark.parametrize("cpu", CPUS)
@pytest.mark.parametrize("k", range(N_RANDOM + 1 + 11))
def test_dsp_conv_bit_exact(k: int, cpu: str) -> None:
    tflite, what = _cases_cached()[k]
    mpk = pack(tflite)
    info = MpkFile(mpk)
    rng = np.random.default_rng(k)
    batch = [[rng.integers(-128, 128, size=t.shape, dtype=np.int8) for t in info.input_tensors()]
             for _ in range(N_SAMPLES)]
    ref = TflmRunner(tflite)
    want = [ref.run(s) for s in batch]
    got, _ = bm.run_on_qemu(mpk, batch, cpu=cpu)
    for s, (ws, gs) in enumerate(zip(want, got, strict=True)):
        for w, g in zip(ws, gs, strict=True):
            assert w.tobytes() == g.tobytes(), (f"{cpu} {what} sample {s}: differs from tflite-micro in "
                                                f"{int(np.sum(w != g))}/{w.size} elements")
