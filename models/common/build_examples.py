"""Build (train, quantize, pack) the examples that train on generated data, in one process (one TensorFlow
import): anomaly, gesture, hello_world. Each is cached in build/models/<name>/ and skipped when current.

    .venv/bin/python models/common/build_examples.py [--force] [names...]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

MODELS = Path(__file__).resolve().parents[1]
NAMES = ("anomaly", "gesture", "hello_world")


def load(name: str):
    mod_name = f"mpyml_example_{name}"
    if mod_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(mod_name, MODELS / name / "build.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[mod_name]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(NAMES))
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args(argv)
    for n in a.names:
        t = time.monotonic()
        load(n).build(force=a.force)
        print(f"{n}: ok ({time.monotonic() - t:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
