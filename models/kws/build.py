"""Keyword spotting example: pack the MLPerf Tiny KWS model, compute the host reference (float NumPy MFCC
front end + tflite-micro), run the device app (fixed-point streaming MFCC + mpyml) on the unix port.

    .venv/bin/python models/kws/build.py [--tflite PATH] [--wavs WAV...] [--run] [--engine c|py]

Model: ../shared/models/mlperf_tiny/kws_ref_model.tflite (mlcommons/tiny, Apache-2.0); clips:
../shared/data/speech/*_1000ms.wav (tensorflow/tflite-micro). Output: build/models/kws/.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path) -> Any:
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


U = _load("mpyml_example_util", HERE.parent / "common" / "example_util.py")
ref = _load("kws_frontend_ref", HERE / "frontend_ref.py")
OUT = U.BUILD / "kws"
MPK = OUT / "kws.mpk"
APP = HERE / "app" / "main.py"
TFLITE = U.SHARED / "models" / "mlperf_tiny" / "kws_ref_model.tflite"
WAVS = [U.SHARED / "data" / "speech" / f"{n}_1000ms.wav" for n in ("yes", "no", "noise", "silence")]


def reference(tflite: bytes, wavs: list[Path]) -> dict[str, dict[str, Any]]:
    """Per clip: label and int8 scores of tflite-micro on the float front end's quantized MFCCs."""
    from mpyml.tflm import TflmRunner

    r = TflmRunner(tflite)
    d = r.input_details()[0]
    res = {}
    for p in wavs:
        x = ref.quantize(ref.mfcc(ref.read_wav(p)), d.scale, d.zero_point).reshape(1, 49, 10, 1)
        out = r.run([x])[0].reshape(-1).astype(int)
        res[p.name] = {"label": ref.LABELS[int(np.argmax(out))], "scores": out.tolist()}
    return res


def build(tflite_path: Path = TFLITE, wavs: list[Path] | None = None, force: bool = False) -> dict[str, Any]:
    wavs = WAVS if wavs is None else wavs
    key = U.file_hash(Path(__file__), HERE / "frontend_ref.py", tflite_path, *wavs)

    def make() -> dict[str, Any]:
        tfl = tflite_path.read_bytes()
        mpk = U.pack_to(tfl, MPK)
        return {"files": [MPK.name], "mpk_bytes": len(mpk), "reference": reference(tfl, wavs)}

    return U.cached(OUT, key, make, force)


def run_app(wavs: list[Path], mode: str = "--clips", engine: str | None = None, mpk: Path = MPK) -> str:
    args = ["--model", str(mpk), mode, *(["--engine", engine] if engine else []), *map(str, wavs)]
    return U.app_stdout(APP, args)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tflite", type=Path, default=TFLITE)
    ap.add_argument("--wavs", type=Path, nargs="*", default=WAVS)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--run", action="store_true", help="run the device app on the unix port")
    ap.add_argument("--engine", choices=["c", "py"], default=None, help="MFCC kernels (default: C if built)")
    a = ap.parse_args(argv)
    meta = build(a.tflite, a.wavs, a.force)
    print(f"packed {MPK} ({meta['mpk_bytes']} B)")
    for name, v in meta["reference"].items():
        print(f"  host reference (float MFCC + TFLM): {name:22s} -> {v['label']}")
    if a.run:
        print(run_app(a.wavs, engine=a.engine), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
