# Post-load mutation: the user changes the model bytearray after mpyml.load(); invoke must never crash.
# Every metadata word (header, tensor table, op records, io table, trusted data) and a sample of weight
# bytes is overwritten in turn, the model invoked, the byte restored. Run by tests/test_mutation.py.
import sys

import mpyml

path, engine, step, wstep = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
buf = bytearray(open(path, "rb").read())
m = mpyml.load(buf, engine=engine)
m.input.buffer[:] = bytes(len(m.input.buffer))
m.invoke()
ref = bytes(m.output.buffer)
data_off = int.from_bytes(buf[44:48], "little")
vals = (0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x00010000, 12345678)
n = 0
errors = 0
for off in range(0, data_off - 3, 4 * step):
    old = bytes(buf[off:off + 4])
    v = vals[(off >> 2) % len(vals)]
    buf[off:off + 4] = v.to_bytes(4, "little")
    try:
        m.input.buffer[:] = bytes(len(m.input.buffer))
        m.invoke()
    except ValueError:
        errors += 1
    buf[off:off + 4] = old
    n += 1
# metadata restored: the model gives the reference output again
m.input.buffer[:] = bytes(len(m.input.buffer))
m.invoke()
same = bytes(m.output.buffer) == ref
w = 0
for off in range(data_off, len(buf), wstep):
    buf[off] ^= 0xA5
    m.invoke()
    w += 1
print("MUTATION", engine, n, errors, w, "SAME" if same else "DIFF")
