"""The Cortex-M4/M7 DEPTHWISE_CONV_2D, FULLY_CONNECTED and ADD kernels (native_modules/engine/ops/
depthwise_dm1_dsp.c, depthwise_dmn_dsp.c, fully_connected.c with simd_dsp.h's inline-assembly loop, add.c)
on the target: random single-op models run bare-metal under QEMU (mps2-an386 / an500; ADD also on the
Cortex-M0 board) and compared byte for byte with tflite-micro. The host's MPYML_EMULATE_DSP build only
proves the C models of the DSP instructions; this runs the real SXTAB16 / SMLABB / SMLAD / SMMULR code.

Depthwise shapes: depth multiplier 1 with odd widths and channel counts not a multiple of 4 (the per-channel
tail), 3x3 interior / clipped edge pixels, strides, dilation, SAME / VALID, batches, depth multiplier >= 4
(the DSP dm kernel) and 2 / 3 (the C path). FC: depths not a multiple of 4 or 8, units not a multiple of 4,
batches, per-channel. ADD: same shapes (odd sizes) and broadcasts on every dim.
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

N_SAMPLES = 2


@pytest.fixture(autouse=True, scope="module")
def _toolchain() -> None:
    why = bm.missing_tools()
    if why:
        if IN_CI:
            pytest.fail(why)
        skip_or_fail(why)


def _dw_case(rng: np.random.Generator, i: int) -> tuple[bytes, str]:
    dm = [1, 1, 1, 4, 8, 2, 1, 3][i % 8]
    c = int(rng.integers(1, 4)) if dm > 1 else int(rng.integers(1, 40))
    kh, kw = [(3, 3), (3, 3), (5, 5), (3, 3), (3, 3), (2, 4), (1, 3), (3, 1)][i % 8]
    stride = (int(rng.choice([1, 2])), int(rng.choice([1, 2])))
    dil = (1, 1) if i % 3 else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    h = int(rng.integers((kh - 1) * dil[0] + 1, 12))
    w = int(rng.integers((kw - 1) * dil[1] + 1, 12))
    kwargs: dict[str, Any] = dict(in_shape=(2 if i == 5 else 1, h, w, c), depth_multiplier=dm, kernel=(kh, kw),
                                  stride=stride, dilation=dil, padding=str(rng.choice(["SAME", "VALID"])),
                                  fused=str(rng.choice(tb.ACTIVATIONS)), bias=bool(rng.random() < 0.9))
    return tb.depthwise_model(rng, **kwargs), f"DW {kwargs}"


def _fc_case(rng: np.random.Generator, i: int) -> tuple[bytes, str]:
    depth = int(rng.integers(1, 90))
    units = int(rng.integers(1, 21))
    batches = 3 if i % 3 == 2 else 1
    kwargs: dict[str, Any] = dict(in_shape=(batches, depth), units=units, fused=str(rng.choice(tb.ACTIVATIONS)),
                                  per_channel=bool(i % 2), bias=bool(rng.random() < 0.9))
    return tb.fully_connected_model(rng, **kwargs), f"FC {kwargs}"


ADD_SHAPES: list[tuple[tuple[int, ...], tuple[int, ...]]] = [
    ((1, 5, 7, 3), (1, 5, 7, 3)),
    ((1, 9, 13), (1, 9, 13)),
    ((2, 3, 5, 6), (1, 1, 1, 6)),
    ((1, 4, 3, 5), (1, 4, 1, 1)),
    ((1, 1, 6, 1), (1, 3, 1, 7)),
    ((2, 1, 2, 3), (1, 3, 1, 1)),
]


def _add_case(rng: np.random.Generator, i: int) -> tuple[bytes, str]:
    s1, s2 = ADD_SHAPES[i]
    fused = str(rng.choice(["NONE", "RELU", "RELU6"]))
    return tb.add_model(rng, s1, s2, fused, const_input2=i == 3), f"ADD {s1} + {s2} {fused}"


def _build() -> dict[str, list[tuple[bytes, str]]]:
    rng = np.random.default_rng(20261203)
    dw = [_dw_case(rng, i) for i in range(10)]
    dw.append((tb.depthwise_model(rng, (1, 7, 5, 11), 1, (3, 3), (1, 1), (1, 1), "SAME", "RELU"),
               "DW 7x5x11 3x3 SAME (KWS-like edges)"))
    dw.append((tb.depthwise_model(rng, (1, 9, 9, 1), 8, (3, 3), (2, 2), (1, 1), "SAME", "RELU6"),
               "DW 9x9x1 dm 8 s2 (person_detect's first layer)"))
    dw.append((tb.depthwise_model(rng, (1, 8, 8, 16), 1, (3, 3), (2, 2), (1, 1), "SAME", "RELU6"),
               "DW 8x8x16 3x3 s2 SAME (clipped right / bottom edge)"))
    dw.append((tb.depthwise_model(rng, (1, 6, 9, 22), 1, (2, 2), (1, 1), (1, 1), "SAME", "NONE"),
               "DW 6x9x22 2x2 SAME (2-wide filter)"))
    fc = [_fc_case(rng, i) for i in range(6)]
    fc.append((tb.fully_connected_model(rng, (1, 640), 16, "RELU"), "FC 640 -> 16 (AD)"))
    add = [_add_case(rng, i) for i in range(len(ADD_SHAPES))]
    add.append((tb.random_case("ADD", rng)[0], "ADD random_case"))
    return {"dw": dw, "fc": fc, "add": add}


_CACHE: dict[str, list[tuple[bytes, str]]] = {}


def _cases(kind: str) -> list[tuple[bytes, str]]:
    if not _CACHE:
        _CACHE.update(_build())
    return _CACHE[kind]


def _check(tflite: bytes, what: str, cpu: str, seed: int) -> None:
    mpk = pack(tflite)
    info = MpkFile(mpk)
    rng = np.random.default_rng(seed)
    batch = [[rng.integers(-128, 128, size=t.shape, dtype=np.int8) for t in info.input_tensors()]
             for _ in range(N_SAMPLES)]
    ref = TflmRunner(tflite)
    want = [ref.run(s) for s in batch]
    got, _ = bm.run_on_qemu(mpk, batch, cpu=cpu)
    for s, (ws, gs) in enumerate(zip(want, got, strict=True)):
        for w, g in zip(ws, gs, strict=True):
            assert w.tobytes() == g.tobytes(), (f"{cpu} {what} sample {s}: differs from tflite-micro in "
                                                f"{int(np.sum(w != g))}/{w.size} elements")


@pytest.mark.parametrize("cpu", ["m4", "m7"])
@pytest.mark.parametrize("k", range(14))
def test_depthwise_bit_exact(k: int, cpu: str) -> None:
    _check(*_cases("dw")[k], cpu, k)


@pytest.mark.parametrize("cpu", ["m4", "m7"])
@pytest.mark.parametrize("k", range(7))
def test_fully_connected_bit_exact(k: int, cpu: str) -> None:
    _check(*_cases("fc")[k], cpu, 100 + k)


@pytest.mark.parametrize("cpu", ["m4", "m7", "m0"])
@pytest.mark.parametrize("k", range(7))
def test_add_bit_exact(k: int, cpu: str) -> None:
    _check(*_cases("add")[k], cpu, 200 + k)
