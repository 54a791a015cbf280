"""`make demo`'s pieces on a subset of the digits test set: device == tflite-micro bit for bit, sane accuracy.

Needs nothing outside the repository (the model is trained from scikit-learn's bundled digits, cached in
build/demo; training runs in a subprocess so TensorFlow stays out of the test process).
"""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import mpyml
from conftest import load_module
from mpyml import paths
from mpyml.tflm import TflmRunner

DEMO_DIR = paths.REPO / "models" / "digits"
N_SUBSET = 60


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    return load_module("mpyml_test_digits_demo", DEMO_DIR / "demo.py")


@pytest.fixture(scope="module")
def model(demo: ModuleType) -> dict[str, Any]:
    train = demo.load_train_module()
    if train.cached_meta() is None:
        r = subprocess.run([sys.executable, str(DEMO_DIR / "train.py")], capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
    meta = train.cached_meta()
    assert meta is not None
    tflite = train.TFLITE_PATH.read_bytes()
    _, _, x_test, y_test = train.load_split()
    return {"meta": meta, "tflite": tflite, "x": x_test[:N_SUBSET], "y": y_test[:N_SUBSET]}


def test_trained_model_is_int8_and_accurate(model: dict[str, Any]) -> None:
    r = TflmRunner(model["tflite"])
    (i,), (o,) = r.input_details(), r.output_details()
    assert i.shape == (1, 8, 8, 1) and i.dtype == np.int8
    assert o.shape == (1, 10) and o.dtype == np.int8
    assert model["meta"]["float_test_accuracy"] > 0.9
    assert model["meta"]["n_test"] == 360


@pytest.mark.usefixtures("natmod_x64")
def test_device_bit_exact_with_tflm(demo: ModuleType, model: dict[str, Any]) -> None:
    tflite = model["tflite"]
    mpk = mpyml.pack(tflite)
    ref = TflmRunner(tflite)
    det = ref.input_details()[0]
    images = demo.quantize_images(model["x"], det.scale, det.zero_point)
    assert len(images) == N_SUBSET and images[0].dtype == np.int8 and images[0].shape == (1, 8, 8, 1)

    dev = demo.device_outputs(mpk, images)
    want = demo.tflm_outputs(ref, images)
    assert len(dev) == len(want) == N_SUBSET
    for k, (a, b) in enumerate(zip(dev, want, strict=True)):
        assert a.dtype == np.int8 and np.array_equal(a, b), f"image {k}: device {a} != tflite-micro {b}"

    pred = np.array([int(np.argmax(o)) for o in dev])
    acc = float(np.mean(pred == model["y"]))
    assert acc >= 0.85, acc


@pytest.mark.usefixtures("natmod_x64")
def test_demo_script_runs(demo: ModuleType, model: dict[str, Any],
                          capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--limit", "20"]) == 0
    out = capsys.readouterr().out
    assert "bit-exact with tflite-micro" in out and "20/20 images" in out
    assert "per-inference time on device" in out
    assert demo.MPK_PATH.exists()
