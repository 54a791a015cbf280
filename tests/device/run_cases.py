# Device-side batch runner for per-op tests (plain MicroPython): for i in 0..n-1 load <dir>/<i>.mpk,
# fill its inputs from <dir>/<i>.in, invoke, write the outputs to <dir>/<i>.out. argv: dir n [engine]
import sys

import mpyml

d, n = sys.argv[1], int(sys.argv[2])
engine = sys.argv[3] if len(sys.argv) > 3 else None
for i in range(n):
    base = "%s/%d" % (d, i)
    m = mpyml.load(base + ".mpk", engine=engine)
    with open(base + ".in", "rb") as f:
        for t in m.inputs:
            f.readinto(t.buffer)
    m.invoke()
    with open(base + ".out", "wb") as f:
        for t in m.outputs:
            f.write(t.buffer)
print("DONE", n)
