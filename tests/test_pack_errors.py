"""Pack errors are one PackError naming the op and what to do, never a traceback from the arithmetic."""

from __future__ import annotations

import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

import tflite_build as tb
from mpyml import packer


def _softmax(scale: float) -> bytes:
    m = tb._Model()
    a = m.tensor("x", (1, 10), "INT8", scale=scale, zero_point=0)
    o = m.tensor("y", (1, 10), "INT8", scale=1 / 256, zero_point=-128)
    opt = schema.SoftmaxOptionsT()
    opt.beta = 1.0
    m.op("SOFTMAX", [a], [o], opt, schema.BuiltinOptions.SoftmaxOptions)
    return m.finish([a], [o])


@pytest.mark.parametrize("scale", [1e-9, 1e-30])
def test_softmax_scale_too_small_is_a_pack_error(scale: float) -> None:
    with pytest.raises(packer.PackError, match=r"op #0 SOFTMAX: .*too small.*recalibrate"):
        packer.pack(_softmax(scale))


def test_huge_activation_is_a_pack_error() -> None:
    m = tb._Model()
    a = m.tensor("x", (1, 60000, 60000, 1), "INT8", scale=0.1, zero_point=0)
    o = m.tensor("y", (1, 60000, 60000, 1), "INT8", scale=1 / 256, zero_point=-128)
    opt = schema.SoftmaxOptionsT()
    opt.beta = 1.0
    m.op("SOFTMAX", [a], [o], opt, schema.BuiltinOptions.SoftmaxOptions)
    with pytest.raises(packer.PackError, match="too large for a microcontroller"):
        packer.pack(m.finish([a], [o]))


def test_softmax_valid_scale_packs() -> None:
    assert packer.pack(_softmax(0.1))[:4] == b"MPYM"
