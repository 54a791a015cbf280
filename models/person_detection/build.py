"""Person detection example: pack the TFLM person-detection model, compute TFLM reference scores, run the
device app on the MicroPython unix port with the replayed test images.

    .venv/bin/python models/person_detection/build.py [--tflite PATH] [--images BMP...] [--run]

Model: ../shared/models/tflm/person_detect.tflite (tensorflow/tflite-micro, Apache-2.0); images:
../shared/data/person_detection/{person,no_person}.bmp. Output: build/models/person_detection/.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def load_common() -> Any:
    name = "mpyml_example_util"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE.parent / "common" / "example_util.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


U = load_common()
OUT = U.BUILD / "person_detection"
MPK = OUT / "person_detect.mpk"
APP = HERE / "app" / "main.py"
TFLITE = U.SHARED / "models" / "tflm" / "person_detect.tflite"
IMAGES = [U.SHARED / "data" / "person_detection" / n for n in ("person.bmp", "no_person.bmp")]


def bmp_gray(path: Path) -> np.ndarray:
    """96x96 uint8 of an 8-bit palettized BMP: palette applied, rows flipped to top-down."""
    raw = path.read_bytes()
    off = int.from_bytes(raw[10:14], "little")
    w, h = int.from_bytes(raw[18:22], "little", signed=True), int.from_bytes(raw[22:26], "little", signed=True)
    pal = np.frombuffer(raw[54:off], np.uint8).reshape(-1, 4)[:, 2::-1].astype(np.int32)
    stride = (w + 3) & ~3
    idx = np.frombuffer(raw[off:off + stride * abs(h)], np.uint8).reshape(abs(h), stride)[:, :w]
    if h > 0:
        idx = idx[::-1]
    rgb = pal[idx]
    return ((77 * rgb[..., 0] + 150 * rgb[..., 1] + 29 * rgb[..., 2]) >> 8).astype(np.uint8)


def tflm_scores(tflite: bytes, images: list[Path]) -> dict[str, list[int]]:
    """[not_person, person] int8 scores from tflite-micro, input = pixel - 128 (the TFLM example)."""
    from mpyml.tflm import TflmRunner

    r = TflmRunner(tflite)
    res = {}
    for p in images:
        x = (bmp_gray(p).astype(np.int16) - 128).astype(np.int8).reshape(1, 96, 96, 1)
        res[p.name] = [int(v) for v in r.run([x])[0].reshape(-1)]
    return res


def build(tflite_path: Path = TFLITE, images: list[Path] | None = None, force: bool = False) -> dict[str, Any]:
    images = IMAGES if images is None else images
    key = U.file_hash(Path(__file__), tflite_path, *images)

    def make() -> dict[str, Any]:
        tfl = tflite_path.read_bytes()
        mpk = U.pack_to(tfl, MPK)
        return {"files": [MPK.name], "mpk_bytes": len(mpk), "tflite_bytes": len(tfl),
                "tflm": tflm_scores(tfl, images)}

    return U.cached(OUT, key, make, force)


def run_app(images: list[Path], mpk: Path = MPK) -> dict[str, dict[str, int]]:
    out = U.app_stdout(APP, ["--model", str(mpk), *map(str, images)])
    print(out, end="")
    return {d["name"]: {k: int(v) for k, v in d.items() if k != "name"} for d in U.parse_lines(out, "FRAME")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tflite", type=Path, default=TFLITE)
    ap.add_argument("--images", type=Path, nargs="*", default=IMAGES)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--run", action="store_true", help="run the device app on the unix port")
    a = ap.parse_args(argv)
    meta = build(a.tflite, a.images, a.force)
    print(f"packed {MPK} ({meta['mpk_bytes']} B); TFLM [not_person, person]: {meta['tflm']}")
    if a.run:
        run_app(a.images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
