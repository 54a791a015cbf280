"""Runs the device-side API test (tests/device/test_model_api.py) under the MicroPython unix port."""

from __future__ import annotations

from pathlib import Path

from conftest import shared_path
from mpyml import pack
from mpyml.unix_port import run_micropython

DEVICE_TEST = Path(__file__).parent / "device" / "test_model_api.py"


def test_device_api_on_unix_port(tmp_path: Path, natmod_x64: Path) -> None:
    mpk = pack(shared_path("models", "mlperf_tiny", "kws_ref_model.tflite").read_bytes())
    (tmp_path / "model.mpk").write_bytes(mpk)
    # heap sized like a board with ~100 KB free for the app: the OOM check must fill it quickly
    r = run_micropython([str(DEVICE_TEST), str(tmp_path / "model.mpk")], heapsize="400K", cwd=str(tmp_path))
    assert r.returncode == 0 and "ALL OK" in r.stdout, r.stdout + r.stderr
    assert r.stdout.count("PASS") >= 15
