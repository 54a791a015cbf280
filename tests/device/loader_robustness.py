# Loader robustness on the device: nothing a model file contains may crash the VM.
#
# Plain MicroPython (unix port or a board, unchanged). Every case either loads -- and then invokes --
# or raises ValueError("mpyml: ..."). A model whose (valid) arena is larger than the free heap raises
# the package's MemoryError("mpyml: model needs N bytes of arena ...") and is counted apart. Anything
# else is printed as an OTHER line and fails the run; a VM crash ends the output before "DONE".
#
#   micropython loader_robustness.py MODEL.mpk STEP [STEP ...]
# STEP is one of
#   trunc:START:STOP:STEP      load the file truncated at each length in range(START, STOP, STEP)
#                              (zero-copy memoryview prefixes; STOP -1: to the end, the whole file last)
#   truncfix:START:STOP:STEP   the same with file_size and the CRC patched to match (a copy each)
#   flip:COUNT:SEED            COUNT random single-byte xor flips (fixed seed), CRC left alone
#   flipcrc:COUNT:SEED         COUNT random 1-2 byte flips with the CRC recomputed (so they reach the
#                              structural checks); 3 in 5 land in the header and tables
#   cases:PATH                 targeted cases, one per line: "name<TAB>off:hex,off:hex..." patches on
#                              the model (the host has already recomputed the CRC where it should), or
#                              "name<TAB>file:PATH" for a whole other file; prints one CASE line each
#   align                      unaligned model buffers and a too small arena
# On a board (no argv) the arguments are read from loader_robustness.args (one line) next to the
# model, or default to "model.mpk trunc:0:-1:1 flip:2000:1 flipcrc:2000:2 align".
#
# Output: "CASE name LOADED|ValueError|MemoryError message", "OTHER step case exception" and, per step,
# "SUMMARY step cases=N loaded=L valueerror=V memoryerror=M other=O", then "DONE".
import gc
import struct
import sys

import mpyml
import mpyml_engine

_HDR_CRC = 12


class Stats:
    def __init__(self, name):
        self.name = name
        self.cases = self.loaded = self.valueerror = self.memoryerror = self.other = 0

    def line(self):
        return "SUMMARY %s cases=%d loaded=%d valueerror=%d memoryerror=%d other=%d" % (
            self.name, self.cases, self.loaded, self.valueerror, self.memoryerror, self.other)


def try_load(buf, st, case, arena=None):
    """Load (and invoke) buf. Returns ('LOADED', '') / ('ValueError', msg) / ('MemoryError', msg) /
    ('OTHER', repr); updates st."""
    st.cases += 1
    try:
        m = mpyml.load(buf, arena=arena)
    except ValueError as e:
        msg = str(e)
        if msg.startswith("mpyml:"):
            st.valueerror += 1
            return "ValueError", msg
        return other(st, case, e)
    except MemoryError as e:
        msg = str(e)
        if msg.startswith("mpyml: model needs"):
            st.memoryerror += 1
            return "MemoryError", msg
        return other(st, case, e)
    except Exception as e:  # noqa: BLE001 - any other exception is exactly what this test looks for
        return other(st, case, e)
    try:
        m.invoke()
        m.output.raw()
    except Exception as e:  # noqa: BLE001
        return other(st, case, e, "invoke: ")
    st.loaded += 1
    return "LOADED", ""


def other(st, case, e, where=""):
    st.other += 1
    print("OTHER", st.name, case, where + repr(e))
    return "OTHER", repr(e)


def set_crc(b):
    b[_HDR_CRC:_HDR_CRC + 4] = b"\0\0\0\0"
    struct.pack_into("<I", b, _HDR_CRC, mpyml_engine.crc32(b))


class Rng:
    """xorshift32 with a fixed seed: the same sequence on every port."""

    def __init__(self, seed):
        self.x = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def next(self, n):
        x = self.x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.x = x
        return x % n


def lengths(n, start, stop, step):
    if stop >= 0:
        return range(start, stop, step)
    return list(range(start, n, step)) + [n]


def step_trunc(buf, start, stop, step):
    st = Stats("trunc")
    mv = memoryview(buf)
    for n in lengths(len(buf), start, stop, step):
        r = try_load(mv[:n], st, n)[0]
        if r == "LOADED" and n != len(buf):
            print("OTHER trunc %d loaded a truncated file" % n)
            st.other += 1
        if n % 4096 == 0:
            gc.collect()
    return st


def step_truncfix(buf, start, stop, step):
    st = Stats("truncfix")
    for n in lengths(len(buf), start, stop, step):
        b = bytearray(buf[:n])
        if n >= 12:
            struct.pack_into("<I", b, 8, n)
        if n >= 16:
            set_crc(b)
        try_load(b, st, n)
        b = None
        gc.collect()
    return st


def step_flip(buf, count, seed, fix):
    st = Stats("flipcrc" if fix else "flip")
    rng = Rng(seed)
    n = len(buf)
    data_off = struct.unpack_from("<I", buf, 44)[0]
    crc = bytes(buf[_HDR_CRC:_HDR_CRC + 4])
    for i in range(count):
        k = 1 + rng.next(2) if fix else 1
        saved = []
        for _ in range(k):
            off = rng.next(data_off) if fix and rng.next(5) < 3 else rng.next(n)
            x = 1 + rng.next(255)
            saved.append((off, buf[off]))
            buf[off] ^= x
        if fix:
            set_crc(buf)
        r = try_load(buf, st, i)[0]
        if r == "LOADED" and not fix:
            print("OTHER flip %d loaded with a wrong CRC" % i)
            st.other += 1
        for off, v in reversed(saved):
            buf[off] = v
        buf[_HDR_CRC:_HDR_CRC + 4] = crc
        if i % 256 == 0:
            gc.collect()
    return st


def unhex(s):
    return bytes(int(s[i:i + 2], 16) for i in range(0, len(s), 2))


def step_cases(buf, path):
    st = Stats("cases")
    f = open(path)
    for line in f:
        line = line.rstrip("\n")
        if not line or line[0] == "#":
            continue
        name, spec = line.split("\t")
        if spec.startswith("file:"):
            g = open(spec[5:], "rb")
            b = g.read()
            g.close()
        else:
            b = bytearray(buf)
            for p in spec.split(","):
                off, hx = p.split(":")
                v = unhex(hx)
                b[int(off):int(off) + len(v)] = v
        kind, msg = try_load(b, st, name)
        print("CASE", name, kind, msg)
        b = None
        gc.collect()
    f.close()
    return st


def step_align(buf):
    st = Stats("align")
    n = len(buf)
    # the whole file at an address 1..3 bytes past 4-byte alignment
    for k in (1, 2, 3):
        ba = bytearray(n + 4)
        ba[k:k + n] = buf
        kind, msg = try_load(memoryview(ba)[k:k + n], st, "offset%d" % k)
        print("CASE unaligned%d" % k, kind, msg)
    # an odd slice of the file itself (bytes shifted too)
    kind, msg = try_load(memoryview(buf)[1:], st, "slice1")
    print("CASE slice1", kind, msg)
    need = struct.unpack_from("<I", buf, 16)[0]
    kind, msg = try_load(buf, st, "arena_short", arena=bytearray(need - 16))
    print("CASE arena_short", kind, msg)
    kind, msg = try_load(buf, st, "arena_exact", arena=bytearray(need))
    print("CASE arena_exact", kind, msg)
    # a misaligned arena is refused (at load or at the first invoke), never used
    ar = memoryview(bytearray(need + 4))[1:1 + need]
    try:
        m = mpyml.load(buf, arena=ar)
        m.invoke()
        kind, msg = "LOADED", ""
        st.loaded += 1
    except ValueError as e:
        kind, msg = "ValueError", str(e)
        st.valueerror += 1
    except Exception as e:  # noqa: BLE001
        kind, msg = other(st, "arena_unaligned", e)
    st.cases += 1
    print("CASE arena_unaligned", kind, msg)
    return st


def main(args):
    f = open(args[0], "rb")
    buf = bytearray(f.read())
    f.close()
    print("MODEL", args[0], len(buf))
    for s in args[1:]:
        p = s.split(":")
        if p[0] == "trunc":
            st = step_trunc(buf, int(p[1]), int(p[2]), int(p[3]))
        elif p[0] == "truncfix":
            st = step_truncfix(buf, int(p[1]), int(p[2]), int(p[3]))
        elif p[0] in ("flip", "flipcrc"):
            st = step_flip(buf, int(p[1]), int(p[2]), p[0] == "flipcrc")
        elif p[0] == "cases":
            st = step_cases(buf, s[6:])
        elif p[0] == "align":
            st = step_align(buf)
        else:
            raise ValueError("unknown step " + s)
        print(st.line())
    print("DONE")


def _board_args():
    try:
        f = open("loader_robustness.args")
        a = f.read().split()
        f.close()
        return a
    except OSError:
        return ["model.mpk", "trunc:0:-1:1", "flip:2000:1", "flipcrc:2000:2", "align"]


main(sys.argv[1:] if len(sys.argv) > 1 else _board_args())
