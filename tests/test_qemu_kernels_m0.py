"""The Cortex-M0 CONV_2D / FULLY_CONNECTED kernels (native_modules/engine/ops/conv2d_v6m.c,
fully_connected_v6m.c: Thumb-1 inline assembly, so the host tests cannot run them) on the target: many random
single-op models run bare-metal under QEMU (the micro:bit machine with enlarged memories) and compared byte for
byte with tflite-micro.

The shapes cover every path of the kernels: the stack window copy (short filter rows, in_c 1..3, dilated
windows), the clipped contiguous runs (SAME padding, strides), per-tap runs of dilated filters too large to copy,
1x1 (pointwise GEMM, with stride), more than 64 output channels (no table of bias + off * sum w), output-channel
tails (out_ch not a multiple of 4, including 1..3), odd run lengths (the two-element loop entered in its middle),
batches, and FC depths / unit counts not a multiple of 2 / 4.
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

CPU, BOARD = "m0", "microbit-xl"
N_CONV, N_FC, N_SAMPLES = 100, 30, 2


@pytest.fixture(autouse=True, scope="module")
def _toolchain() -> None:
    why = bm.missing_tools()
    if why:
        if IN_CI:
            pytest.fail(why)
        skip_or_fail(why)


def _conv_case(rng: np.random.Generator, i: int) -> tuple[bytes, dict[str, Any]]:
    """Random CONV_2D: in_c 1..40, filters 1..5, strides 1..3, dilation 1..3, SAME / VALID, odd sizes."""
    kind = i % 4
    padding = str(rng.choice(["SAME", "VALID"]))
    if kind == 0:       # 1x1 pointwise (GEMM), sometimes strided
        kh = kw = 1
        stride = (int(rng.choice([1, 1, 2])), int(rng.choice([1, 1, 2])))
        dil = (1, 1)
    else:
        kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        stride = (int(rng.choice([1, 1, 2, 3])), int(rng.choice([1, 1, 2])))
        dil = (1, 1) if kind != 3 else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    in_c = int(rng.integers(1, 4)) if kind == 1 else int(rng.integers(1, 41))
    lo_h, lo_w = ((kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1) if padding == "VALID" else (1, 1)
    h, w = int(rng.integers(lo_h, max(lo_h, 11) + 1)), int(rng.integers(lo_w, max(lo_w, 11) + 1))
    n = 2 if rng.random() < 0.15 else 1
    out_ch = int(rng.integers(1, 4)) if rng.random() < 0.2 else int(rng.integers(4, 24))
    kwargs: dict[str, Any] = dict(in_shape=(n, h, w, in_c), out_ch=out_ch, kernel=(kh, kw), stride=stride,
                                  dilation=dil, padding=padding, fused=str(rng.choice(tb.ACTIVATIONS)),
                                  per_channel=bool(rng.random() < 0.75), bias=bool(rng.random() < 0.9))
    return tb.conv2d_model(rng, **kwargs), kwargs


def _fc_case(rng: np.random.Generator) -> tuple[bytes, dict[str, Any]]:
    depth = int(rng.integers(1, 300))
    batches = 1 if rng.random() < 0.6 else int(rng.integers(2, 4))
    kwargs: dict[str, Any] = dict(in_shape=(batches, depth), units=int(rng.integers(1, 38)),
                                  fused=str(rng.choice(tb.ACTIVATIONS)), per_channel=bool(rng.random() < 0.4),
                                  bias=bool(rng.random() < 0.9))
    return tb.fully_connected_model(rng, **kwargs), kwargs


def _cases() -> list[tuple[bytes, str]]:
    rng = np.random.default_rng(20261203)
    cases = []
    for i in range(N_CONV):
        model, kw = _conv_case(rng, i)
        cases.append((model, f"CONV_2D {kw}"))
    cases.append((tb.random_case("CONV_2D", rng)[0], "CONV_2D random_case"))
    # a dilated window too big for the stack copy (per-tap runs of in_c)
    cases.append((tb.conv2d_model(rng, (1, 9, 9, 40), 6, (5, 5), (1, 2), (2, 2), "SAME", "RELU"),
                  "CONV_2D 5x5 d2 in_c 40"))
    # more than 64 output channels: no stack table of bias + off * sum w (the runs add the offset)
    cases.append((tb.conv2d_model(rng, (1, 5, 6, 7), 70, (3, 3), (1, 1), (1, 1), "SAME", "NONE"),
                  "CONV_2D 3x3 out_ch 70"))
    cases.append((tb.conv2d_model(rng, (1, 7, 5, 2), 67, (3, 2), (2, 1), (1, 2), "SAME", "RELU6"),
                  "CONV_2D 3x2 d(1,2) in_c 2 out_ch 67"))
    for _ in range(N_FC):
        model, kw = _fc_case(rng)
        cases.append((model, f"FULLY_CONNECTED {kw}"))
    return cases


@pytest.mark.parametrize("k", range(N_CONV + 4 + N_FC))
def test_m0_kernel_bit_exact(k: int) -> None:
    tflite, what = _cases_cached()[k]
    mpk = pack(tflite)
    info = MpkFile(mpk)
    rng = np.random.default_rng(k)
    batch = [[rng.integers(-128, 128, size=t.shape, dtype=np.int8) for t in info.input_tensors()]
             for _ in range(N_SAMPLES)]
    ref = TflmRunner(tflite)
    want = [ref.run(s) for s in batch]
    got, _ = bm.run_on_qemu(mpk, batch, cpu=CPU, board=BOARD)
    for s, (ws, gs) in enumerate(zip(want, got, strict=True)):
        for w, g in zip(ws, gs, strict=True):
            assert w.tobytes() == g.tobytes(), (f"{what} sample {s}: differs from tflite-micro in "
                                                f"{int(np.sum(w != g))}/{w.size} elements")


_CACHE: list[tuple[bytes, str]] = []


def _cases_cached() -> list[tuple[bytes, str]]:
    if not _CACHE:
        _CACHE.extend(_cases())
    return _CACHE
