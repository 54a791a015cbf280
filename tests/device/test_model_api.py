# Device-side test of the mpyml API (plain MicroPython: runs unchanged on a board).
# argv: model.mpk (KWS-sized int8 model with 1 input / 1 output)
# Prints "PASS <name>" per check; any failure raises, which exits non-zero.
import gc
import sys

import mpyml

path = sys.argv[1] if len(sys.argv) > 1 else "model.mpk"


def check(name, cond, msg=""):
    if not cond:
        raise AssertionError(name + ": " + msg)
    print("PASS", name)


with open(path, "rb") as f:
    data = f.read()

# load from path, bytes, bytearray, memoryview: same results
m = mpyml.load(path)
mb = mpyml.load(data)
mba = mpyml.load(bytearray(data))
mmv = mpyml.load(memoryview(data))
check("load_sources", m.arena_size == mb.arena_size == mba.arena_size == mmv.arena_size)
check("zero_copy_bytes", mb._buf is data, "bytes model must be used in place")


def raises(fn, exc, words):
    try:
        fn()
    except exc as e:
        return all(w in str(e) for w in words)
    return False


check("load_none_typeerror", raises(lambda: mpyml.load(None), TypeError, ("path", "bytes", "NoneType")))
check("load_int_typeerror", raises(lambda: mpyml.load(5), TypeError, ("bytearray", "int")))
check("arena_bytes_refused", raises(lambda: mpyml.load(data, arena=bytes(m.arena_size)), TypeError, ("writable",)))
check("arena_ro_view_refused", raises(lambda: mpyml.load(data, arena=memoryview(bytes(m.arena_size))), TypeError,
                                      ("writable",)))
n_in = m.input.size
m.predict([float("nan")] * n_in)       # documented: NaN and inf quantize as TFLite's QUANTIZE does, no error
m.predict([float("inf"), -float("inf")] * (n_in // 2) + [0.0] * (n_in % 2))
check("predict_str_typeerror", raises(lambda: m.predict(["a"] * n_in), TypeError, ("number",)))
check("predict_int_typeerror", raises(lambda: m.predict(5), TypeError, ("numbers",)))
check("predict_too_many_valueerror", raises(lambda: m.predict([0.0] * (n_in + 1)), ValueError, ("expected",)))
check("ctx_bytes_reported", m.info()["ctx_bytes"] > 0 and m.ctx_bytes == m.info()["ctx_bytes"])
# a writable model buffer is validated into an engine-owned copy of its records; bytes are used in place
check("ctx_copy_for_bytearray", m.engine != "mpyml_engine" or mba.ctx_bytes > mb.ctx_bytes,
      "%d vs %d" % (mba.ctx_bytes, mb.ctx_bytes))

# tensors
i, o = m.input, m.output
check("input_meta", i.dtype == "int8" and len(i.shape) >= 1 and i.scale > 0 and -128 <= i.zero_point <= 127)
n_in = 1
for d in i.shape:
    n_in *= d
check("input_size", i.size == n_in and len(i.buffer) == n_in)
check("repr", "mpyml.Model" in repr(m) and "Tensor" in repr(i))
info = m.info()
check("info", info["arena_bytes"] == m.arena_size and info["model_bytes"] == len(data) and info["ops"] > 0)

# predict raw == invoke on the same bytes, and deterministic across model instances
x = bytes((k * 37 + 11) & 0xFF for k in range(i.size))
r1 = m.predict(x)
mb.input.buffer[:] = x
mb.invoke()
check("predict_raw", r1 == bytes(mb.output.buffer) and isinstance(r1, bytes))
check("predict_repeatable", m.predict(x) == r1)

# predict floats: quantize -> invoke -> dequantize
vals = [((k % 7) - 3) * i.scale for k in range(i.size)]
i.quantize(vals)  # (invoke may reuse the input's arena bytes: check before running)
q = i.raw()
check("quantize", q[0] == max(-128, min(127, -3 + i.zero_point)), str(q[:4]))
y = m.predict(vals)
check("predict_float", len(y) == o.size and isinstance(y[0], float))
check("dequantize", m.output.dequantize() == y)

# invoke allocates nothing: heap flat across 100 invokes
def heap_used_by_invokes(model, n):
    # locals only: module-level assignments would grow the globals dict and be counted
    gc.collect()
    before = gc.mem_free()
    for _ in range(n):
        model.invoke()
    return before - gc.mem_free()


heap_used_by_invokes(m, 1)
used = heap_used_by_invokes(m, 100)
check("invoke_no_alloc", used == 0, "%d bytes allocated by 100 invokes" % used)

# caller-owned arena, and a too-small one
arena = bytearray(m.arena_size)
ma = mpyml.load(data, arena=arena)
check("caller_arena", ma._arena is arena and ma.predict(x) == r1)
try:
    mpyml.load(data, arena=bytearray(m.arena_size - 16))
    check("small_arena", False, "no error")
except ValueError as e:
    check("small_arena", str(m.arena_size) in str(e), str(e))

# unaligned model buffer: clear ValueError, no crash
try:
    mpyml.load(memoryview(b"\0" + data)[1:])
    check("unaligned", False, "no error")
except ValueError as e:
    check("unaligned", "aligned" in str(e), str(e))

# not a model
try:
    mpyml.load(b"hello world" * 10)
    check("bad_magic", False, "no error")
except ValueError as e:
    check("bad_magic", "magic" in str(e), str(e))

# out of RAM at load: the error states the bytes needed
del m, mb, mba, mmv, ma, arena
gc.collect()
filler = []
try:
    while gc.mem_free() > 8 * 1024:
        filler.append(bytearray(2048))
except MemoryError:
    pass
try:
    mpyml.load(data)
    check("oom_message", False, "no MemoryError with %d free" % gc.mem_free())
except MemoryError as e:
    check("oom_message", "needs" in str(e) and "arena" in str(e), str(e))
filler = None
gc.collect()
print("ALL OK")
