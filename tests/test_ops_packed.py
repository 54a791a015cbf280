"""Per-op bit-exactness through the whole user path: random single-op TFLite model -> mpyml.pack ->
C native module on the MicroPython unix port, compared byte for byte with tflite-micro (tolerance 0).

Randomized shapes and parameters (tests/tflite_build.random_case): odd channel counts, strides 1-3,
SAME/VALID, dilation, depth multipliers, zero points across -128..127, per-tensor and per-channel
weights, every fused activation, broadcasting ADD, softmax with varied beta and scales."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mpyml import pack
from mpyml.mpk import MpkFile
from mpyml.unix_port import run_micropython
from tflite_build import random_case, run_tflm

OPS = ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "ADD", "RESHAPE",
       "SOFTMAX"]
CASES_PER_OP = 60
RUNNER = Path(__file__).parent / "device" / "run_cases.py"


@pytest.mark.parametrize("op", OPS)
def test_op_bit_exact_on_device(op: str, tmp_path: Path, natmod_x64: Path) -> None:
    rng = np.random.default_rng(OPS.index(op) + 100)
    expected, descr = [], []
    for i in range(CASES_PER_OP):
        model, kwargs = random_case(op, rng)
        mpk = pack(model)
        ins = [rng.integers(-128, 128, size=t.shape, dtype=np.int8) for t in MpkFile(mpk).input_tensors()]
        (tmp_path / f"{i}.mpk").write_bytes(mpk)
        (tmp_path / f"{i}.in").write_bytes(b"".join(a.tobytes() for a in ins))
        expected.append(b"".join(o.astype(np.int8).tobytes() for o in run_tflm(model, ins)))
        descr.append(kwargs)
    r = run_micropython([str(RUNNER), str(tmp_path), str(CASES_PER_OP)])
    assert r.returncode == 0 and f"DONE {CASES_PER_OP}" in r.stdout, r.stdout + r.stderr
    bad = [(i, descr[i]) for i in range(CASES_PER_OP) if (tmp_path / f"{i}.out").read_bytes() != expected[i]]
    assert not bad, f"{len(bad)}/{CASES_PER_OP} {op} cases differ from tflite-micro, e.g. {bad[:2]}"
