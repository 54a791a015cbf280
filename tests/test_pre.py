"""mpyml.pre on the MicroPython unix port: the C kernels of mpyml_engine and the pure-MicroPython
fallback give the same bytes (log-mel, MFCC, streaming MFCC, image, quantization); the streaming
MFCC and the image path allocate nothing per call. Timings are printed for the report."""

from __future__ import annotations

import pytest

from conftest import IN_CI, load_hostrun, shared_path

hostrun = load_hostrun()
KERNELS = ("pre_logmel", "pre_mfcc", "pre_quant", "pre_image", "pre_max", "pre_i32_to_i16")


def require_c_kernels():
    if not hostrun.natmod_has(*KERNELS):
        msg = "build/natmod/x64/mpyml_engine.mpy has no pre_* kernels: run `make natmods`"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)


def speech_wavs() -> list[str]:
    # every clip or a skip (a failure under CI=true): never a silently shorter list
    return [str(shared_path("data", "speech", f"{n}_1000ms.wav")) for n in ("yes", "no", "noise", "silence")]


def test_c_and_fallback_bit_exact():
    require_c_kernels()
    r = hostrun.run_device("mp_pre.py", {"require_c": True, "wavs": speech_wavs()}, timeout=170)
    assert len(r.passed) == 8, r.stdout
    print("timings (x64 unix port):", {k: v for k, v in r.values.items() if "_us" in k})


def test_fallback_alone():
    # the same device tests without the native module: every kernel from the fallback
    r = hostrun.run_device("mp_pre.py", {"wavs": speech_wavs()[:1]}, natmod=False, timeout=170)
    # only the tests that need no C kernels ran, and all of them passed
    assert sorted(r.passed) == ["test_image_and_quantizer_allocate_nothing",
                                "test_streaming_allocates_nothing_and_timing",
                                "test_streaming_mfcc_c_equals_fallback"], r.stdout
