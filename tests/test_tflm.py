"""mpyml.tflm: the tflite-micro reference runner (arena report parsing, determinism, input checks)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import shared_path
from mpyml.tflm import TflmRunner, capture_fd_output, min_arena_bytes, parse_allocations

REPORT = """\
[RecordingMicroAllocator] Arena allocation total 24272 bytes
[RecordingMicroAllocator] Arena allocation head 16000 bytes
[RecordingMicroAllocator] Arena allocation tail 8272 bytes
[RecordingMicroAllocator] 'TfLiteEvalTensor data' used 840 bytes with alignment overhead (requested 840 bytes for 35 allocations)
[RecordingMicroAllocator] 'Persistent buffer data' used 5556 bytes with alignment overhead (requested 5528 bytes for 32 allocations)
"""  # noqa: E501


@pytest.fixture(scope="module")
def ad01() -> bytes:
    return shared_path("models", "mlperf_tiny", "ad01_int8.tflite").read_bytes()


@pytest.fixture(scope="module")
def ad01_runner(ad01: bytes) -> TflmRunner:
    return TflmRunner(ad01)


def test_parse_allocations_text() -> None:
    u = parse_allocations(REPORT)
    assert (u.head, u.tail, u.total) == (16000, 8272, 24272)
    assert u.records == {"TfLiteEvalTensor data": 840, "Persistent buffer data": 5556}


def test_parse_allocations_requires_head() -> None:
    with pytest.raises(RuntimeError, match="head"):
        parse_allocations("[RecordingMicroAllocator] Arena allocation total 10 bytes\n")


def test_capture_fd_output_sees_raw_fd_writes() -> None:
    with capture_fd_output() as out:
        os.write(1, b"to-stdout\n")
        os.write(2, b"to-stderr\n")
    assert "to-stdout" in out[0] and "to-stderr" in out[0]


def test_arena_head_ad01(ad01_runner: TflmRunner) -> None:
    u = ad01_runner.arena_usage()
    # The FC autoencoder's widest adjacent pair is the 640-value input and its 128-unit first layer:
    # TFLM's planner needs exactly both at once.
    assert ad01_runner.arena_head_bytes() == 640 + 128 == u.head
    assert u.tail is not None and u.tail > 0
    assert u.total == u.head + u.tail
    assert "TfLiteEvalTensor data" in u.records
    # Cached, and a second interpreter reports the same.
    assert ad01_runner.arena_head_bytes() == u.head
    assert TflmRunner(ad01_runner.tflite, arena_size=64 * 1024).arena_head_bytes() == u.head


def test_details_ad01(ad01_runner: TflmRunner) -> None:
    (i,) = ad01_runner.input_details()
    (o,) = ad01_runner.output_details()
    assert i.shape == (1, 640) and o.shape == (1, 640)
    assert i.dtype == np.int8 and o.dtype == np.int8
    assert i.scale > 0 and -128 <= i.zero_point <= 127
    x = np.array([0.0, 1.0, -3.5], dtype=np.float32)
    back = i.dequantize(i.quantize(np.resize(x, i.shape)))
    assert np.allclose(back.ravel()[:3], x, atol=i.scale)


def test_runner_deterministic(ad01_runner: TflmRunner, ad01: bytes) -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, size=(1, 640), dtype=np.int8)
    y = rng.integers(-128, 128, size=(1, 640), dtype=np.int8)
    a1 = ad01_runner.run([x])
    b = ad01_runner.run([y])
    a2 = ad01_runner.run([x])
    a3 = TflmRunner(ad01).run([x])
    assert a1[0].dtype == np.int8 and a1[0].shape == (1, 640)
    assert np.array_equal(a1[0], a2[0]) and np.array_equal(a1[0], a3[0])
    assert not np.array_equal(a1[0], b[0])
    # A flat array with the right element count is accepted (reshaped to the input shape).
    assert np.array_equal(ad01_runner.run([x.ravel()])[0], a1[0])


def test_runner_rejects_bad_inputs(ad01_runner: TflmRunner) -> None:
    with pytest.raises(TypeError):
        ad01_runner.run([np.zeros((1, 640), np.float32)])
    with pytest.raises(ValueError):
        ad01_runner.run([np.zeros((1, 639), np.int8)])
    with pytest.raises(ValueError):
        ad01_runner.run([])


def test_time_invoke_us(ad01_runner: TflmRunner) -> None:
    t = ad01_runner.time_invoke_us(3)
    assert isinstance(t, float) and t > 0  # measured, never asserted against a budget
    with pytest.raises(ValueError):
        ad01_runner.time_invoke_us(0)


def test_min_arena_bytes(ad01: bytes, ad01_runner: TflmRunner) -> None:
    n = min_arena_bytes(ad01)
    u = ad01_runner.arena_usage()
    # The reported total is a lower bound (prepare-time scratch needs a little more).
    assert u.total is not None and u.total <= n < 2 * u.total
    assert TflmRunner(ad01, arena_size=n).arena_head_bytes() == u.head
    with pytest.raises(RuntimeError, match="allocate"):
        TflmRunner(ad01, arena_size=u.head)
