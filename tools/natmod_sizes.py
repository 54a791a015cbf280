"""Print the size of every built native module (build/natmod/<arch>/mpyml_engine.mpy)."""

import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "build/natmod")
for mpy in sorted(root.glob("*/mpyml_engine.mpy")):
    print(f"natmod {mpy.parent.name:10s} {mpy.stat().st_size:8d} bytes  {mpy}")
