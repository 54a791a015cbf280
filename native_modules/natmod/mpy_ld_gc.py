"""mpy_ld.py with dead-code removal: the natmod link step (natmod/Makefile sets MPY_LD to this script).

mpy_ld.py links every .text/.rodata section of every object it is given. With -ffunction-sections
-fdata-sections objects, this script first links them into one relocatable object garbage-collected from the
entry point mpy_init (`ld -r --gc-sections -e mpy_init`: functions nothing calls, e.g. the portable reference
kernels the natmod never dispatches to, and their constants are dropped), then runs mpy_ld.py on it.
Usage: mpy_ld_gc.py --ld LD MPY_LD_PY [mpy_ld.py arguments ...]; --preprocess calls go straight through.
"""

import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] != "--ld":
        print("usage: mpy_ld_gc.py --ld LD MPY_LD_PY [mpy_ld.py arguments ...]", file=sys.stderr)
        return 2
    ld, mpy_ld, args = argv[1], argv[2], argv[3:]
    objs = [a for a in args if a.endswith(".o")]
    if "--preprocess" not in args and objs and "-o" in args:
        out = Path(args[args.index("-o") + 1])
        merged = out.with_name(out.stem + ".gc.o")
        subprocess.run([ld, "-r", "--gc-sections", "-e", "mpy_init", "-o", str(merged), *objs], check=True)
        args = [a for a in args if not a.endswith(".o")] + [str(merged)]
    return subprocess.run([sys.executable, mpy_ld, *args]).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
