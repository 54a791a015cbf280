"""Print the size of every built native module (build/natmod/<arch>/mpyml_engine.mpy), with the issue 11
baseline and ratio (tools/natmod_size_check.py). Reports only: never fails the build."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from natmod_size_check import report  # noqa: E402

root = Path(sys.argv[1] if len(sys.argv) > 1 else "build/natmod")
report(root)
