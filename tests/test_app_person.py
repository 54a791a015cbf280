"""Example 1, person detection: the device app (models/person_detection/app/main.py) on the MicroPython
unix port with the TFLM test images replayed through ReplayCamera + ImagePre + the packed TFLM model."""

from __future__ import annotations

from pathlib import Path

from conftest import load_module, shared_path

REPO = Path(__file__).resolve().parents[1]


def test_person_scores_far_higher_on_the_person_image():
    tflite = shared_path("models", "tflm", "person_detect.tflite")
    images = [shared_path("data", "person_detection", n) for n in ("person.bmp", "no_person.bmp")]
    ex = load_module("mpyml_example_person_detection", REPO / "models" / "person_detection" / "build.py")
    meta = ex.build(tflite, images)
    frames = ex.run_app(images)
    p, n = frames["person.bmp"], frames["no_person.bmp"]
    # TFLM gives person - not_person = -8 (person.bmp) and -154 (no_person.bmp)
    assert p["diff"] - n["diff"] > 100
    assert (p["diff"], n["diff"]) == (-8, -154)
    # bit-exact with tflite-micro on the same input (pixel - 128)
    for name, (not_person, person) in meta["tflm"].items():
        assert (frames[name]["not_person"], frames[name]["person"]) == (not_person, person)
