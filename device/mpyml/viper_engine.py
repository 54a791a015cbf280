# mpyml viper engine: the pure-MicroPython fallback for boards without the C native module.
#
# Same module interface as the C engine (native_modules/natmod/mpyml_natmod.c):
#   ctx_size(model=None) -> int     bytes of ctx: fixed words + the copy of the model records
#   prepare(model, ctx) -> None | (status, index, detail, check)   statuses as mpyml_status_t
#   invoke(model, arena, ctx) -> None      raises ValueError when ctx/arena do not fit the model
#   version() -> int ;  crc32(buf, crc=0) -> int
# and the same results: prepare mirrors the C loader (mpyml_engine.c) check by check (same status,
# index and detail; the 4th item is this file's check number, not a C line), and every kernel is
# bit-exact with native_modules/engine/ops/*.c (TFLite Micro's reference int8 arithmetic).
#
# Design rules (why the code looks the way it does):
#  - prepare is plain Python (runs once, may allocate); invoke and the kernels are viper and
#    allocate nothing: the op loop decodes each op record into int32 words of the ctx bytearray
#    (no per-op objects), and viper functions only ever pass buffer objects and small ints.
#  - viper ints are machine words: 32-bit on boards, 64-bit on the unix port. Every value is kept
#    as a sign-correct int32; where C wraps (bias add, left shifts, output offset) the result is
#    re-wrapped with ((v + S) & M) - S, which is the identity on 32-bit words. S = 2**31 and
#    M = 2**32 - 1 are built at run time (S <<= 31) because a literal >= 2**30 is a heap object
#    in viper on 32-bit targets. SaturatingRoundingDoublingHighMul is computed from 16-bit halves
#    (no 64-bit product needed).
#  - ptr32 loads are zero-extended on 64-bit: signed fields are read as (v ^ S) - S.
#  - The first three locals of a viper function live in registers: kernels take the pointers of
#    their hottest loop as the first parameters.
#  - viper evaluates like a stack machine and spills pending operands to the stack: hot sums put the
#    loads first and the accumulator last (a = (w[i] ^ 128) * xv + a, not a += xv * (w[i] ^ 128)),
#    and hot loops index pointers with constants (p[0], p[1], then p = ptr8(int(p) + 4)).
import struct

import micropython
from micropython import const

# ---------------------------------------------------------------- status codes (mpyml_engine.h)
E_TRUNCATED = const(1)
E_MAGIC = const(2)
E_VERSION = const(3)
E_SIZE = const(4)
E_CRC = const(5)
E_HEADER = const(6)
E_ALIGN = const(7)
E_TENSOR = const(8)
E_OPCODE = const(9)
E_OP = const(10)
E_IO = const(11)
E_ARENA = const(12)
E_CTX = const(13)

_VERSION = const(0x000200)          # MPYML_ENGINE_VERSION of the C engine this one mirrors
_MAGIC = 0x4D59504D

# ---------------------------------------------------------------- ctx layout (int32 words)
_CTX_WORDS = const(384)
_CTX_MAGIC = const(0x3650564D)      # < 2**30 on purpose (a small int everywhere)
_C_MAGIC = const(0)
_C_LEN = const(1)                   # model length
_C_ALO = const(2)                   # model address, low / high word
_C_AHI = const(3)
_C_ARENA = const(4)                 # arena bytes needed
_C_NOPS = const(5)
_C_OPS = const(6)                   # byte offset of the ctx's copy of the op records
_C_TENS = const(7)                  # byte offset of the ctx's copy of the tensor table
_C_DATA = const(8)                  # byte offset of the data section in the model
_C_TRU = const(9)                   # byte offset of the ctx's copy of the trusted data region
_C_TRUSZ = const(10)                # its size (header trusted_size)
# per-op scratch, rewritten by invoke for every op
_C_OPC = const(12)
_C_BIAS = const(13)                 # model offset of the bias, 0 = none
_C_MULT = const(14)                 # model offset of the multipliers
_C_SHIFT = const(15)                # model offset of the shifts
_C_NMULT = const(11)                # number of multipliers (FC: 1 = per-tensor)
# three decoded tensors: in (operand 0), out, t1 (operand 1: filter or second ADD input)
# +0 storage (1 = const: offset is into the model), +1 byte offset, +2..+5 n h w c,
# +6 nbytes, +7 ndim, +8 last dim
_C_IN = const(16)
_C_OUT = const(26)
_C_T1 = const(36)
_C_P = const(48)                    # the op's int32 params (up to 12)
# ops of the op families (code >= 9, kernels in mpyml/viper_<family>.py): invoke decodes every operand
# k into 8 words at _C_X + 8 * k: +0 byte offset in its buffer (const: into the model, arena: into the
# arena), +1 storage (0 arena, 1 const, 2 absent, 3 trusted const: offset into ctx), +2..+5 dims right-aligned n h w c (leading 1s),
# +6 nbytes, +7 type code; the params into _C_XP + i; then calls the family's run(opc, model, arena, ctx).
_C_XNIN = const(60)
_C_XNOUT = const(61)
_C_XNP = const(62)
_C_XP = const(64)
_C_X = const(128)


def _al8(n):
    return (n + 7) & ~7


def _copy_sizes(h, size):
    # (tensor table, op records, io table, trusted data) bytes of the ctx copies, clamped to the buffer
    return (_al8(min(h[6] * 32, size)), _al8(min(h[12], size)), _al8(min(2 * (h[8] + h[9]), size)),
            _al8(min(h[18], size)))


def ctx_size(model=None):
    """Bytes of ctx for model: the engine's words plus its copy of the model's records (as mpyml_ctx_size;
    the viper engine always copies, also for immutable buffers)."""
    n = _CTX_WORDS * 4
    if model is None or len(model) < 64 or struct.unpack_from("<I", model, 0)[0] != _MAGIC:
        return n
    for k in _copy_sizes(struct.unpack_from(_HDR, model, 0), len(model)):
        n += k
    return n


def version():
    return _VERSION


# ---------------------------------------------------------------- small viper helpers

@micropython.viper
def _addr_lo(buf) -> int:
    return int(ptr8(buf)) & 0xFFFF


@micropython.viper
def _zero(buf, n: int):
    p = ptr8(buf)
    i = 0
    while i < n:
        p[i] = 0
        i += 1


@micropython.viper
def _store_addr(model, ctx):
    c = ptr32(ctx)
    a = int(ptr8(model))
    c[_C_ALO] = a
    c[_C_AHI] = (a >> 16) >> 16


_CRC_TAB = bytearray(1024)


@micropython.viper
def _crc_init(tab):
    t = ptr32(tab)
    poly = 0xEDB8
    poly <<= 16
    poly |= 0x8320
    n = 0
    while n < 256:
        u = uint(n)
        k = 0
        while k < 8:
            if u & 1:
                u = (u >> 1) ^ uint(poly)
            else:
                u = u >> 1
            k += 1
        t[n] = int(u)
        n += 1


_crc_init(_CRC_TAB)


@micropython.viper
def _crc(buf, start: int, end: int, zero_from: int, zero_to: int, lo: int, hi: int) -> uint:
    # CRC-32 (zlib) of buf[start:end] continuing from crc = hi << 16 | lo; bytes at
    # zero_from <= i < zero_to are taken as 0 (the header's own CRC field)
    p = ptr8(buf)
    t = ptr32(_CRC_TAB)
    crc = uint((hi << 16) | lo)
    crc = crc ^ uint(0xFFFF)
    crc = crc ^ (uint(0xFFFF) << 16)
    i = start
    while i < end:
        b = uint(p[i])
        if zero_from <= i and i < zero_to:
            b = uint(0)
        crc = uint(t[int((crc ^ b) & uint(0xFF))]) ^ (crc >> 8)
        i += 1
    crc = crc ^ uint(0xFFFF)
    crc = crc ^ (uint(0xFFFF) << 16)
    return crc


def crc32(buf, crc=0):
    """CRC-32 (zlib polynomial) of buf, continuing from crc (start with 0)."""
    return int(_crc(buf, 0, len(buf), 0, 0, crc & 0xFFFF, (crc >> 16) & 0xFFFF)) & 0xFFFFFFFF


# ---------------------------------------------------------------- prepare (validation)
# Mirrors mpyml_prepare() and check_op() of mpyml_engine.c, check for check, in the same order.

_HDR = "<IHHIIIHHHHIIIIIIIII"
_TENSOR = "<BBBB4HIIiII"
_NPARAMS = (None, 11, 11, 4, 8, 8, 12, 0, 3)    # by opcode
_MIN_IN = (None, 5, 5, 5, 1, 1, 2, 1, 1)


class _Tensors:
    # the tensor table, records decoded on demand (prepare's memory does not grow with the model)
    def __init__(self, buf, off, n):
        self.buf = buf
        self.off = off
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return struct.unpack_from(_TENSOR, self.buf, self.off + 32 * i)


def _fits(off, n, size):
    return off <= size and n <= size - off


def _in_range(v, lo, hi):
    return lo <= v <= hi


def _elems(t):
    n = 1
    for i in range(t[1]):
        n *= t[4 + i]
    return n


def _shape4(t):
    nd = t[1]
    d = [1, 1, 1, 1]
    for i in range(nd):
        d[4 - nd + i] = t[4 + i]
    return d


_ES = (0, 1, 4, 4, 1, 2, 8)          # element bytes by type code (mpyml/_spec.py TYPES)


_TRUSTED = [0]      # trusted_size of the model being validated (prepare is not re-entrant)
_SPARSE = [0]       # its sparse_size (the sparse section ends the trusted region; viper_sparse checks it)


def _in_trusted(t):
    return t[2] == 1 and _fits(t[8], t[9], _TRUSTED[0])


def _check_tensor(t, arena_size, data_size):
    ty, nd, storage, flags = t[0], t[1], t[2], t[3]
    if ty < 1 or ty > 6:
        return False
    if nd < 1 or nd > 4:
        return False
    if t[12] != 0:
        return False
    if flags != 0 and not (flags == 1 and storage == 0):
        return False
    n = 1
    for i in range(4):
        d = t[4 + i]
        if i < nd:
            if d == 0:
                return False
            n *= d
            if n > 0x7FFFFFFF:
                return False
        elif d != 0:
            return False
    es = _ES[ty]
    off, nbytes, zp = t[8], t[9], t[10]
    if n * es != nbytes:
        return False
    if off % (4 if es > 4 else es) != 0:
        return False
    if ty == 1:
        if not _in_range(zp, -128, 127):
            return False
    elif ty == 4:
        if not _in_range(zp, 0, 255):
            return False
    elif ty == 5:
        if not _in_range(zp, -32768, 32767):
            return False
    elif zp != 0:
        return False
    if storage == 0:
        return _fits(off, nbytes, arena_size)
    if storage == 1:
        # (data address + offset) % es: the model is 4-aligned and data_offset 16-aligned
        if off < _TRUSTED[0] and not _fits(off, nbytes, _TRUSTED[0]):
            return False
        return _fits(off, nbytes, data_size)
    return False


def _overlap(a, b):
    return (a is not None and b is not None and a[2] == 0 and b[2] == 0
            and a[8] < b[8] + b[9] and b[8] < a[8] + a[9])


_FAMS = {}      # family index -> imported mpyml.viper_<family> module
_RUN = [None for _ in range(256)]     # op code -> its family's run(), set by prepare (invoke only indexes it)


def _family(fi):
    m = _FAMS.get(fi)
    if m is None:
        from mpyml import _spec
        name = _spec.FAMILIES[fi]
        m = __import__("mpyml.viper_" + name, None, None, ("run",))
        _FAMS[fi] = m
    return m


def _same_bytes(a, b):
    return a is not None and b is not None and a[2] == 0 and b[2] == 0 and a[8] == b[8] and a[9] == b[9]


def _check_generic(d, opcode, idx, n_in, n_out, prm, tens, buf, data, in_place=0):
    # mirrors check_generic() of mpyml_engine.c: operand rules and param ranges from the spec, no
    # output overlapping an input or another output (except an exact alias onto an input when the
    # record is flagged IN_PLACE), then the family's check
    rng, rules, n_spec_in = d[4], d[5], d[6]
    n_spec = len(rules)
    ts = []
    for k in range(n_in + n_out):
        if k < n_in:
            j = k if k < n_spec_in else n_spec_in - 1
        else:
            j = n_spec_in + (k - n_in if k - n_in < n_spec - n_spec_in else n_spec - n_spec_in - 1)
        mask, storage, optional, trusted = rules[j]
        t = None if idx[k] == 0xFFFF else tens[idx[k]]
        if t is None:
            if not optional or k >= n_in:
                return 200 + k, ts
            ts.append(None)
            continue
        if not (mask >> t[0]) & 1:
            return 200 + k, ts
        if storage != 2 and t[2] != storage:
            return 200 + k, ts
        if trusted and not _in_trusted(t):
            return 200 + k, ts
        ts.append(t)
    for i in range(len(prm)):
        lo, hi = rng[i]
        if prm[i] < lo or prm[i] > hi:
            return 100 + i, ts
    for k in range(n_in, n_in + n_out):
        for j in range(k):
            if in_place and j < n_in and _same_bytes(ts[j], ts[k]):
                continue
            if _overlap(ts[j], ts[k]):
                return 73, ts
    fam = _family(d[9])
    _RUN[opcode] = fam.run
    return fam.check(opcode, ts, n_in, n_out, prm, buf, data), ts


def _is_act(t):
    return t is not None and t[0] == 1 and t[2] == 0


def _is_i8(t):
    return t is not None and t[0] == 1


def _is_const_i32_len(t, n):
    return t is not None and t[0] == 2 and t[2] == 1 and _elems(t) == n


def _check_requant(buf, data, mult, shift, n):
    if not _in_trusted(mult) or not _in_trusted(shift):
        return False
    mo = data + mult[8]
    so = data + shift[8]
    for i in range(n):
        m = struct.unpack_from("<i", buf, mo + 4 * i)[0]
        s = struct.unpack_from("<i", buf, so + 4 * i)[0]
        if m < 0 or not _in_range(s, -31, 30):
            return False
    return True


def _check_act(lo, hi):
    return _in_range(lo, -128, 127) and _in_range(hi, -128, 127) and lo <= hi


def _check_op(opcode, idx, n_in, p, tens, buf, data):
    # returns 0 or the failing check code of check_op() in mpyml_engine.c

    def operand(i):
        return None if i == 0xFFFF or i >= len(tens) else tens[i]

    t_in = operand(idx[0])
    out = operand(idx[n_in])
    if not _is_i8(t_in):
        return 1
    if not _is_act(out):
        return 2
    if opcode == 1 or opcode == 2:
        f = operand(idx[1])
        bias = operand(idx[2])
        if t_in[1] != 4 or out[1] != 4:
            return 3
        if not _is_i8(f) or f[2] != 1 or f[1] != 4 or f[10] != 0:
            return 4
        if not _in_range(p[0], 1, 1024) or not _in_range(p[1], 1, 1024):
            return 10
        if not _in_range(p[2], 1, 1024) or not _in_range(p[3], 1, 1024):
            return 11
        if not _in_range(p[4], 0, 1024) or not _in_range(p[5], 0, 1024):
            return 12
        if not _in_range(p[6], -127, 128) or not _in_range(p[7], -128, 127):
            return 13
        if not _check_act(p[8], p[9]):
            return 14
        o = out[7]
        if t_in[4] != out[4]:
            return 5
        if p[3] * t_in[6] * t_in[7] > 0x7FFFFFFF:  # the kernels step dil_h input rows at a time in int32
            return 11
        if opcode == 1:
            if p[10] != 1:
                return 15
            if f[4] != o or f[7] != t_in[7]:
                return 6
            if f[5] * f[6] * f[7] > 65536:
                return 7
        else:
            if not _in_range(p[10], 1, 1024):
                return 15
            if f[4] != 1 or f[7] != o:
                return 6
            if t_in[7] * p[10] != o:
                return 6
            if f[5] * f[6] > 65536:
                return 7
        if idx[2] != 0xFFFF and not _is_const_i32_len(bias, o):
            return 8
        if not _is_const_i32_len(operand(idx[3]), o) or not _is_const_i32_len(operand(idx[4]), o):
            return 9
        if not _check_requant(buf, data, operand(idx[3]), operand(idx[4]), o):
            return 9
        return 0
    if opcode == 3:
        f = operand(idx[1])
        bias = operand(idx[2])
        m = operand(idx[3])
        if not _is_i8(f) or f[2] != 1 or f[1] != 2 or f[10] != 0:
            return 4
        o, k = f[4], f[5]
        if k > 65536:
            return 7
        if out[4 + out[1] - 1] != o:
            return 6
        batches = _elems(out) // o
        if batches * k != _elems(t_in):
            return 6
        if idx[2] != 0xFFFF and not _is_const_i32_len(bias, o):
            return 8
        nm = _elems(m) if m is not None else 0
        if nm != 1 and nm != o:
            return 9
        if not _is_const_i32_len(m, nm) or not _is_const_i32_len(operand(idx[4]), nm):
            return 9
        if not _check_requant(buf, data, m, operand(idx[4]), nm):
            return 9
        if not _in_range(p[0], -127, 128) or not _in_range(p[1], -128, 127):
            return 13
        if not _check_act(p[2], p[3]):
            return 14
        return 0
    if opcode == 4 or opcode == 5:
        if t_in[1] != 4 or out[1] != 4:
            return 3
        if t_in[4] != out[4] or t_in[7] != out[7]:
            return 6
        if not _in_range(p[0], 1, 1024) or not _in_range(p[1], 1, 1024):
            return 10
        if not _in_range(p[2], 1, 1024) or not _in_range(p[3], 1, 1024):
            return 11
        if p[2] * p[3] > 65536:
            return 11
        if not _in_range(p[4], 0, 1024) or not _in_range(p[5], 0, 1024):
            return 12
        if not _check_act(p[6], p[7]):
            return 14
        return 0
    if opcode == 6:
        in2 = operand(idx[1])
        if not _is_i8(in2):
            return 4
        a, b, c = _shape4(t_in), _shape4(in2), _shape4(out)
        if t_in[1] > out[1] or in2[1] > out[1]:
            return 6
        for i in range(4):
            if (a[i] != c[i] and a[i] != 1) or (b[i] != c[i] and b[i] != 1):
                return 6
            if c[i] != (a[i] if a[i] > b[i] else b[i]):
                return 6
        if not _in_range(p[0], -127, 128) or not _in_range(p[1], -127, 128):
            return 13
        if not _in_range(p[2], -128, 127):
            return 13
        if not _in_range(p[3], 0, 20):
            return 10
        if p[4] < 0 or p[6] < 0 or p[8] < 0:
            return 11
        if not _in_range(p[5], -31, 0) or not _in_range(p[7], -31, 0) or not _in_range(p[9], -31, 0):
            return 12
        if not _check_act(p[10], p[11]):
            return 14
        return 0
    if opcode == 7:
        if t_in[9] != out[9]:
            return 6
        return 0
    if opcode == 8:
        if t_in[9] != out[9] or t_in[1] != out[1]:
            return 6
        for i in range(t_in[1]):
            if t_in[4 + i] != out[4 + i]:
                return 6
        if p[0] < 0 or not _in_range(p[1], 0, 31) or p[2] > 0:
            return 10
        if p[2] == -0x80000000:
            return 10
        return 0
    return 99


def _validate(buf):
    # -> None (valid) or (status, index, detail, check); the ctx is filled by prepare()
    from mpyml import _spec
    size = len(buf)
    if _addr_lo(buf) & 3:
        return (E_ALIGN, -1, 0, 1)
    if size < 64:
        return (E_TRUNCATED, -1, size, 2)
    h = struct.unpack_from(_HDR, buf, 0)
    (magic, ver, header_size, file_size, crc, arena_size, n_tensors, n_ops, n_inputs, n_outputs,
     tensors_offset, ops_offset, ops_size, io_offset, data_offset, data_size, _macs, sparse_size,
     trusted_size) = h
    if magic != _MAGIC:
        return (E_MAGIC, -1, 0, 3)
    if ver < _spec.VERSION_MIN or ver > _spec.VERSION:
        return (E_VERSION, -1, ver, 4)
    if file_size > size:
        return (E_TRUNCATED, -1, size, 5)
    if file_size != size:
        return (E_SIZE, -1, file_size, 6)
    if int(_crc(buf, 0, size, 12, 16, 0, 0)) & 0xFFFFFFFF != crc:
        return (E_CRC, -1, 0, 7)
    if header_size != 64:
        return (E_HEADER, -1, 0, 8)
    if n_tensors == 0 or n_tensors == 0xFFFF or n_ops == 0:
        return (E_HEADER, -1, 1, 9)
    if n_inputs == 0 or n_inputs > 16 or n_outputs == 0 or n_outputs > 16:
        return (E_HEADER, -1, 2, 10)
    if arena_size % 16 != 0:
        return (E_HEADER, -1, 3, 11)
    if tensors_offset % 4 or ops_offset % 4 or io_offset % 4 or ops_size % 4:
        return (E_HEADER, -1, 4, 12)
    if data_offset % 16:
        return (E_HEADER, -1, 4, 13)
    if not _fits(tensors_offset, n_tensors * 32, size):
        return (E_HEADER, -1, 5, 14)
    if not _fits(ops_offset, ops_size, size):
        return (E_HEADER, -1, 6, 15)
    if not _fits(io_offset, 2 * (n_inputs + n_outputs), size):
        return (E_HEADER, -1, 7, 16)
    if not _fits(data_offset, data_size, size):
        return (E_HEADER, -1, 8, 17)
    if trusted_size > data_size or trusted_size % 16:
        return (E_HEADER, -1, 9, 30)
    # the sparse section (v3): the last sparse_size bytes of the trusted region; a v2 file has none
    if sparse_size > trusted_size or sparse_size % 16 or (ver < 3 and sparse_size):
        return (E_HEADER, -1, 10, 31)
    _SPARSE[0] = sparse_size

    _TRUSTED[0] = trusted_size
    tens = _Tensors(buf, tensors_offset, n_tensors)
    for i in range(n_tensors):
        if not _check_tensor(tens[i], arena_size, data_size):
            return (E_TENSOR, i, 0, 18)

    for i in range(n_inputs + n_outputs):
        ti = struct.unpack_from("<H", buf, io_offset + 2 * i)[0]
        if ti == 0xFFFF or ti >= n_tensors or tens[ti][2] != 0:
            return (E_IO, i, ti, 19)

    op = ops_offset
    remaining = ops_size
    for i in range(n_ops):
        if remaining < 8:
            return (E_OP, i, 0, 20)
        opcode, n_in, n_out, n_params, osize, ores = struct.unpack_from("<BBBBHH", buf, op)
        d = _spec.OPS.get(opcode)
        if d is None:
            return (E_OPCODE, i, opcode, 21)
        core = d[7]
        n_idx = n_in + n_out
        n_pad = (n_idx + 1) & ~1
        want = 8 + 2 * n_pad + 4 * n_params
        if osize != want or osize > remaining:
            return (E_OP, i, 0, 22)
        if (n_in < d[0] or n_in > d[1] or n_out < d[2] or n_out > d[3] or n_params != len(d[4])
                or n_idx > 32):
            return (E_OP, i, 0 if core else 70, 23)
        # op record flags: only IN_PLACE (1), and only on an op whose kernel is in-place-safe
        if ores & ~1 or (ores & 1 and (not d[10] or n_out != 1)):
            return (E_OP, i, 74, 22)
        idx = struct.unpack_from("<%dH" % n_pad, buf, op + 8)
        for k in range(n_pad):
            if k >= n_idx:
                if idx[k] != 0xFFFF:
                    return (E_OP, i, k, 24)
            elif idx[k] != 0xFFFF and idx[k] >= n_tensors:
                return (E_OP, i, k, 25)
        prm = struct.unpack_from("<%di" % n_params, buf, op + 8 + 2 * n_pad)
        if not core:
            bad = _check_generic(d, opcode, idx, n_in, n_out, prm, tens, buf, data_offset, ores & 1)[0]
            if bad:
                return (E_OP, i, bad, 29)
            op += osize
            remaining -= osize
            continue
        bad = _check_op(opcode, idx, n_in, prm, tens, buf, data_offset)
        if bad:
            return (E_OP, i, bad, 26)
        # kernels are not in-place: no output/input overlap, except a RESHAPE aliasing its input exactly
        o0 = tens[idx[n_in]]
        for k in range(n_in):
            ik = None if idx[k] == 0xFFFF or idx[k] >= n_tensors else tens[idx[k]]
            if ik is None or (opcode == 7 and (ik is o0 or ik[8] == o0[8])):
                continue
            if ores & 1 and _same_bytes(ik, o0):
                continue
            if ik[2] == 0 and o0[2] == 0 and ik[8] < o0[8] + o0[9] and o0[8] < ik[8] + ik[9]:
                return (E_OP, i, 20 + k, 28)
        op += osize
        remaining -= osize
    if remaining != 0:
        return (E_OP, n_ops, 0, 27)
    return None


def reset(model, arena, ctx):
    """Zero the model's STATE tensors (RNN state) in the arena (as mpyml_reset_state)."""
    h = struct.unpack_from(_HDR, model, 0)
    tens = _Tensors(model, h[10], h[6])
    for i in range(h[6]):
        t = tens[i]
        if t[3] & 1 and t[8] + t[9] <= len(arena):
            _zero_at(arena, t[8], t[9])


@micropython.viper
def _zero_at(buf, off: int, n: int):
    p = ptr8(buf)
    i = 0
    while i < n:
        p[off + i] = 0
        i += 1


def _release_spec():
    # the spec tables (mpyml._spec, ~33 KB of heap on a board) are needed only while validating: drop the
    # module so the GC takes them back before the caller allocates the arena (an error message re-imports it)
    import sys
    if sys.implementation.name != "micropython":    # the host tests' CPython model of the engine injects it
        return
    sys.modules.pop("mpyml._spec", None)
    import mpyml
    try:
        del mpyml.__dict__["_spec"]
    except (KeyError, TypeError):   # not imported through the package, or a frozen package's fixed dict
        pass


def prepare(model, ctx):
    """Validate model; fill ctx (bytearray(ctx_size(model))). None if valid, else (status, index, detail, check)."""
    if len(ctx) < ctx_size(model):
        raise ValueError("ctx buffer too small: use bytearray(viper_engine.ctx_size(model))")
    if _addr_lo(ctx) & 3:
        raise ValueError("ctx buffer not aligned")
    memoryview(model)       # TypeError for a non-buffer (as the C binding's buffer check)
    _zero(ctx, _CTX_WORDS * 4)
    res = _validate(model)
    _release_spec()
    if res is not None:
        return res
    h = struct.unpack_from(_HDR, model, 0)
    # the engine's copies of what it validated: invoke reads records only from here
    st, so, si, sd = _copy_sizes(h, len(model))
    ct = _CTX_WORDS * 4
    co = ct + st
    ci = co + so
    cd = ci + si
    mv, cv = memoryview(model), memoryview(ctx)
    cv[ct:ct + 32 * h[6]] = mv[h[10]:h[10] + 32 * h[6]]
    cv[co:co + h[12]] = mv[h[11]:h[11] + h[12]]
    cv[ci:ci + 2 * (h[8] + h[9])] = mv[h[13]:h[13] + 2 * (h[8] + h[9])]
    cv[cd:cd + h[18]] = mv[h[14]:h[14] + h[18]]
    struct.pack_into("<IIIIIIIII", ctx, 4 * _C_ARENA, h[5], h[7], co, ct, h[14], cd, h[18], 0, 0)
    struct.pack_into("<I", ctx, 4 * _C_LEN, len(model))
    _store_addr(model, ctx)
    struct.pack_into("<I", ctx, 4 * _C_MAGIC, _CTX_MAGIC)
    return None


# ---------------------------------------------------------------- invoke

@micropython.viper
def invoke(model, arena, ctx):
    """Run one inference. Allocates nothing. ValueError if ctx was not prepared for model."""
    nctx = int(len(ctx))
    if nctx < _CTX_WORDS * 4 or (int(ptr8(ctx)) & 3) != 0:
        raise ValueError("bad ctx buffer")
    c = ptr32(ctx)
    mlen = int(len(model))
    a = int(ptr8(model))
    if c[_C_MAGIC] != _CTX_MAGIC or c[_C_LEN] != mlen:
        raise ValueError("model buffer was not prepared with this ctx")
    S = 1
    S <<= 31
    M = S + S - 1
    if c[_C_ALO] != (a & M) or c[_C_AHI] != (((a >> 16) >> 16) & M):
        raise ValueError("model buffer was not prepared with this ctx")
    if uint(int(len(arena))) < uint(c[_C_ARENA]):
        raise ValueError("arena smaller than the model's arena_size")
    if int(ptr8(arena)) & 3:
        raise ValueError("arena not 4-byte aligned")
    m8 = ptr8(ctx)          # records: the ctx's validated copies (never the model buffer)
    m16 = ptr16(ctx)
    m32 = ptr32(ctx)
    tens = c[_C_TENS]
    data = c[_C_DATA]
    op = c[_C_OPS]
    n_ops = c[_C_NOPS]
    i = 0
    while i < n_ops:
        opc = m8[op]
        n_in = m8[op + 1]
        npad = ((n_in + m8[op + 2] + 1) >> 1) << 1
        ib = (op + 8) >> 1
        pw = (op + 8 + 2 * npad) >> 2
        k = 0
        while k < m8[op + 3]:
            c[_C_P + k] = m32[pw + k]
            k += 1
        c[_C_OPC] = opc
        # decode in, out, t1
        k = 0
        while k < 3:
            t = 0xFFFF
            base = _C_IN
            if k == 0:
                t = m16[ib]
            elif k == 1:
                t = m16[ib + n_in]
                base = _C_OUT
            else:
                base = _C_T1
                if n_in > 1:
                    t = m16[ib + 1]
            if t != 0xFFFF:
                rec = tens + (t << 5)
                nd = m8[rec + 1]
                st = m8[rec + 2]
                off = m32[(rec + 12) >> 2]
                if st:
                    off += data
                c[base] = st
                c[base + 1] = off
                c[base + 2] = 1
                c[base + 3] = 1
                c[base + 4] = 1
                c[base + 5] = 1
                j = 0
                r16 = (rec + 4) >> 1
                while j < nd:
                    c[base + 6 - nd + j] = m16[r16 + j]
                    j += 1
                c[base + 6] = m32[(rec + 16) >> 2]
                c[base + 7] = nd
                c[base + 8] = m16[r16 + nd - 1]
            k += 1
        if opc <= 3:
            t = m16[ib + 2]
            c[_C_BIAS] = 0
            if t != 0xFFFF:
                c[_C_BIAS] = data + m32[(tens + (t << 5) + 12) >> 2]
            t = m16[ib + 3]
            c[_C_MULT] = data + m32[(tens + (t << 5) + 12) >> 2]
            c[_C_NMULT] = m32[(tens + (t << 5) + 16) >> 2] >> 2
            t = m16[ib + 4]
            c[_C_SHIFT] = data + m32[(tens + (t << 5) + 12) >> 2]
        xin = arena
        if c[_C_IN]:
            xin = model
        if opc == 1:
            _k_conv(xin, model, 0, ctx, arena)
        elif opc == 2:
            _k_dwconv(xin, model, 0, ctx, arena)
        elif opc == 3:
            _k_fc(xin, model, 0, ctx, arena)
        elif opc == 4 or opc == 5:
            _k_pool(xin, arena, 0, ctx)
        elif opc == 6:
            x2 = arena
            if c[_C_T1]:
                x2 = model
            _k_add(xin, x2, 0, ctx, arena)
        elif opc == 7:
            _k_reshape(xin, arena, 0, ctx)
        elif opc == 8:
            _k_softmax(xin, arena, 0, ctx)
        else:
            _ext(model, arena, ctx, op, tens, data)
        op += m16[(op + 4) >> 1]
        i += 1


@micropython.viper
def _ext(model, arena, ctx, op: int, tens: int, data: int):
    # an op of a family: decode every operand and the params into the ctx, then the family's run()
    c = ptr32(ctx)
    m8 = ptr8(ctx)          # records: the ctx's validated copies
    m16 = ptr16(ctx)
    m32 = ptr32(ctx)
    opc = m8[op]
    n_in = m8[op + 1]
    n_out = m8[op + 2]
    n_p = m8[op + 3]
    n_idx = n_in + n_out
    npad = ((n_idx + 1) >> 1) << 1
    ib = (op + 8) >> 1
    pw = (op + 8 + 2 * npad) >> 2
    k = 0
    while k < n_p:
        c[_C_XP + k] = m32[pw + k]
        k += 1
    c[_C_XNIN] = n_in
    c[_C_XNOUT] = n_out
    c[_C_XNP] = n_p
    k = 0
    while k < n_idx:
        base = _C_X + 8 * k
        t = m16[ib + k]
        if t == 0xFFFF:
            c[base + 1] = 2
        else:
            rec = tens + (t << 5)
            nd = m8[rec + 1]
            st = m8[rec + 2]
            off = m32[(rec + 12) >> 2]
            if st:
                if uint(off) < uint(c[_C_TRUSZ]):
                    st = 3          # trusted const: its bytes are the ctx's copy (offset into ctx)
                    off += c[_C_TRU]
                else:
                    off += data
            c[base] = off
            c[base + 1] = st
            c[base + 2] = 1
            c[base + 3] = 1
            c[base + 4] = 1
            c[base + 5] = 1
            j = 0
            r16 = (rec + 4) >> 1
            while j < nd:
                c[base + 6 - nd + j] = m16[r16 + j]
                j += 1
            c[base + 6] = m32[(rec + 16) >> 2]
            c[base + 7] = m8[rec]
        k += 1
    _run_family(opc, model, arena, ctx)


def _run_family(opc, model, arena, ctx):
    _RUN[opc](opc, model, arena, ctx)


# ---------------------------------------------------------------- kernels
# Each kernel reads its operands from the ctx words written by invoke. The requantization
# epilogue (bias wrap-add, MultiplyByQuantizedMultiplier with double rounding, output offset,
# clamp) is inlined: see mpyml_requant() in ops/fixedpoint.h.

@micropython.viper
def _k_pw(x: ptr8, w: ptr8, i: int, ctx, arena):
    # CONV_2D with a 1x1 filter whose windows all lie inside the input (no padding): _k_conv without the
    # window clipping. Four output channels a pass, four inputs each: the weight rows are read at constant
    # offsets from one walking pointer (w, w + in_c, ...), which viper compiles to single loads.
    a0 = 0
    a1 = 0
    a2 = 0
    a3 = 0
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    mb = int(w)
    stride_w = c[_C_P]
    stride_h = c[_C_P + 1]
    offm = ((c[_C_P + 6] ^ S) - S) - 128
    out_off = (c[_C_P + 7] ^ S) - S
    act_min = (c[_C_P + 8] ^ S) - S
    act_max = (c[_C_P + 9] ^ S) - S
    xb = int(x) + c[_C_IN + 1]
    in_h = c[_C_IN + 3]
    in_w = c[_C_IN + 4]
    in_c = c[_C_IN + 5]
    out_n = c[_C_OUT + 2]
    out_h = c[_C_OUT + 3]
    out_w = c[_C_OUT + 4]
    out_c = c[_C_OUT + 5]
    ob = int(ptr8(arena)) + c[_C_OUT + 1]
    fb = mb + c[_C_T1 + 1]
    has_bias = c[_C_BIAS]
    bp = ptr32(mb + has_bias)
    mp = ptr32(mb + c[_C_MULT])
    sp = ptr32(mb + c[_C_SHIFT])
    c2 = in_c + in_c
    c3 = c2 + in_c
    c4 = c3 + in_c
    corr0 = offm * in_c
    x_step = stride_w * in_c
    b = 0
    while b < out_n:
        oy = 0
        while oy < out_h:
            xa = xb + ((b * in_h + oy * stride_h) * in_w) * in_c
            ox = 0
            while ox < out_w:
                x = ptr8(xa)
                sumx = 0
                i = 0
                while i < in_c:
                    sumx = (x[i] ^ 128) + sumx
                    i += 1
                corr = (corr0 + sumx) << 7
                wq = fb
                oc = 0
                while oc < out_c:
                    nb = out_c - oc
                    a0 = 0
                    a1 = 0
                    a2 = 0
                    a3 = 0
                    if nb >= 4:
                        nb = 4
                        w = ptr8(wq)
                        x = ptr8(xa)
                        i = in_c >> 2
                        while i > 0:                # four inputs a pass, constant-offset loads
                            q0 = (x[0] ^ 128) + offm
                            q1 = (x[1] ^ 128) + offm
                            q2 = (x[2] ^ 128) + offm
                            q3 = (x[3] ^ 128) + offm
                            a0 = (w[0] ^ 128) * q0 + (w[1] ^ 128) * q1 + (w[2] ^ 128) * q2 + (w[3] ^ 128) * q3 + a0
                            wp = ptr8(int(w) + in_c)
                            a1 = (wp[0] ^ 128) * q0 + (wp[1] ^ 128) * q1 + (wp[2] ^ 128) * q2 + (wp[3] ^ 128) * q3 + a1
                            wp = ptr8(int(w) + c2)
                            a2 = (wp[0] ^ 128) * q0 + (wp[1] ^ 128) * q1 + (wp[2] ^ 128) * q2 + (wp[3] ^ 128) * q3 + a2
                            wp = ptr8(int(w) + c3)
                            a3 = (wp[0] ^ 128) * q0 + (wp[1] ^ 128) * q1 + (wp[2] ^ 128) * q2 + (wp[3] ^ 128) * q3 + a3
                            x = ptr8(int(x) + 4)
                            w = ptr8(int(w) + 4)
                            i -= 1
                        i = in_c & 3
                        while i > 0:
                            q0 = (x[0] ^ 128) + offm
                            a0 = (w[0] ^ 128) * q0 + a0
                            a1 = (w[in_c] ^ 128) * q0 + a1
                            a2 = (w[c2] ^ 128) * q0 + a2
                            a3 = (w[c3] ^ 128) * q0 + a3
                            x = ptr8(int(x) + 1)
                            w = ptr8(int(w) + 1)
                            i -= 1
                    else:
                        x = ptr8(xa)
                        j = 0
                        while j < nb:
                            w = ptr8(wq + j * in_c)
                            acc = 0
                            i = 0
                            while i < in_c:
                                acc = (w[i] ^ 128) * ((x[i] ^ 128) + offm) + acc
                                i += 1
                            a3 = a2
                            a2 = a1
                            a1 = a0
                            a0 = acc
                            j += 1
                        if nb == 2:
                            acc = a0
                            a0 = a1
                            a1 = acc
                        elif nb == 3:
                            acc = a0
                            a0 = a2
                            a2 = acc
                    ch = oc
                    j = oc + nb
                    while ch < j:
                        acc = a0 - corr
                        a0 = a1
                        a1 = a2
                        a2 = a3
                        if has_bias:
                            acc = ((bp[ch] + acc + S) & M) - S  # mod 2**32: no sign fix
                        else:
                            acc = ((acc + S) & M) - S
                        sh = (sp[ch] ^ S) - S
                        if sh > 0:
                            acc = (((acc << sh) + S) & M) - S
                        mu = mp[ch]
                        ah = acc >> 16
                        al = acc & 0xFFFF
                        bh = mu >> 16
                        bl = mu & 0xFFFF
                        ll = al * bl
                        m1 = ah * bl
                        m2 = al * bh
                        c1 = ((ll >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
                        v = ((ah * bh + (m1 >> 16) + (m2 >> 16) + (c1 >> 16)) << 1) + (((c1 & 0xFFFF) + 0x4000) >> 15)
                        if sh < 0:
                            # RoundingDivideByPOT(v, -sh): half away from zero, (v - (v < 0)) >> (-sh - 1), + 1, >> 1
                            # (exact for every int32 v here: |v| < 2**31 - 1, no overflow)
                            if v < 0:
                                v -= 1
                            v = ((v >> (-1 - sh)) + 1) >> 1
                        v = ((v + out_off + S) & M) - S
                        if v < act_min:
                            v = act_min
                        if v > act_max:
                            v = act_max
                        ptr8(ob)[ch] = v
                        ch += 1
                    wq += c4
                    oc += 4
                ob += out_c
                xa += x_step
                ox += 1
            oy += 1
        b += 1


@micropython.viper
def _k_conv(x: ptr8, w: ptr8, i: int, ctx, arena):
    # CONV_2D (ops/conv2d.c): the filter window is clipped once per output pixel, four output
    # channels share each input load. The weights are used as w ^ 128 (= w + 128, unsigned) and
    # the sum is corrected by 128 * sum(x + offset) of the window, which is exact in int32
    # (two's complement wraparound on 32-bit words cancels out).
    a0 = 0
    a1 = 0
    a2 = 0
    a3 = 0
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    mb = int(w)
    stride_w = c[_C_P]
    stride_h = c[_C_P + 1]
    dil_w = c[_C_P + 2]
    dil_h = c[_C_P + 3]
    pad_w = c[_C_P + 4]
    pad_h = c[_C_P + 5]
    offm = ((c[_C_P + 6] ^ S) - S) - 128
    out_off = (c[_C_P + 7] ^ S) - S
    act_min = (c[_C_P + 8] ^ S) - S
    act_max = (c[_C_P + 9] ^ S) - S
    xb = int(x) + c[_C_IN + 1]
    in_h = c[_C_IN + 3]
    in_w = c[_C_IN + 4]
    in_c = c[_C_IN + 5]
    out_n = c[_C_OUT + 2]
    out_h = c[_C_OUT + 3]
    out_w = c[_C_OUT + 4]
    out_c = c[_C_OUT + 5]
    ob = int(ptr8(arena)) + c[_C_OUT + 1]
    fb = mb + c[_C_T1 + 1]
    f_h = c[_C_T1 + 3]
    f_w = c[_C_T1 + 4]
    has_bias = c[_C_BIAS]
    bp = ptr32(mb + has_bias)
    mp = ptr32(mb + c[_C_MULT])
    sp = ptr32(mb + c[_C_SHIFT])
    fst = f_h * f_w * in_c
    w2o = fst + fst
    w3o = w2o + fst
    if f_h == 1 and f_w == 1 and pad_w == 0 and pad_h == 0 and (out_h - 1) * stride_h < in_h and \
            (out_w - 1) * stride_w < in_w:
        _k_pw(x, w, 0, ctx, arena)
        return
    x_row = dil_h * in_w * in_c
    w_row = f_w * in_c
    x_run = dil_w * in_c
    b = 0
    while b < out_n:
        inb = xb + b * in_h * in_w * in_c
        oy = 0
        while oy < out_h:
            iy0 = oy * stride_h - pad_h
            fy0 = 0
            while fy0 < f_h and iy0 + dil_h * fy0 < 0:
                fy0 += 1
            fy1 = f_h
            while fy1 > 0 and iy0 + dil_h * (fy1 - 1) >= in_h:
                fy1 -= 1
            ox = 0
            while ox < out_w:
                ix0 = ox * stride_w - pad_w
                fx0 = 0
                while fx0 < f_w and ix0 + dil_w * fx0 < 0:
                    fx0 += 1
                fx1 = f_w
                while fx1 > 0 and ix0 + dil_w * (fx1 - 1) >= in_w:
                    fx1 -= 1
                n_rows = 0
                n_runs = 0
                run = 0
                xa = inb
                wa = fb
                if fy1 > fy0 and fx1 > fx0:
                    n_rows = fy1 - fy0
                    if dil_w == 1:
                        n_runs = 1
                        run = (fx1 - fx0) * in_c
                    else:
                        n_runs = fx1 - fx0
                        run = in_c
                    xa = inb + ((iy0 + dil_h * fy0) * in_w + ix0 + dil_w * fx0) * in_c
                    wa = fb + (fy0 * f_w + fx0) * in_c
                # 128 * sum of (x + input_offset) over the window
                sumx = 0
                r = 0
                while r < n_rows:
                    k = 0
                    while k < n_runs:
                        x = ptr8(xa + r * x_row + k * x_run)
                        i = 0
                        while i < run:
                            sumx = (x[i] ^ 128) + sumx
                            i += 1
                        k += 1
                    r += 1
                corr = (offm * n_rows * n_runs * run + sumx) << 7
                oc = 0
                while oc < out_c:
                    nb = out_c - oc
                    a0 = 0
                    a1 = 0
                    a2 = 0
                    a3 = 0
                    if nb >= 4:
                        nb = 4
                        r = 0
                        while r < n_rows:
                            k = 0
                            while k < n_runs:
                                x = ptr8(xa + r * x_row + k * x_run)
                                wq = wa + oc * fst + r * w_row + k * in_c
                                w = ptr8(wq)
                                i = run >> 2
                                while i > 0:                # four inputs a pass, constant-offset loads
                                    q0 = (x[0] ^ 128) + offm
                                    q1 = (x[1] ^ 128) + offm
                                    q2 = (x[2] ^ 128) + offm
                                    q3 = (x[3] ^ 128) + offm
                                    a0 = (w[0] ^ 128) * q0 + (w[1] ^ 128) * q1 + (w[2] ^ 128) * q2 + (w[3] ^ 128) * q3 + a0
                                    wp = ptr8(int(w) + fst)
                                    a1 = (wp[0] ^ 128) * q0 + (wp[1] ^ 128) * q1 + (wp[2] ^ 128) * q2 + (wp[3] ^ 128) * q3 + a1
                                    wp = ptr8(int(w) + w2o)
                                    a2 = (wp[0] ^ 128) * q0 + (wp[1] ^ 128) * q1 + (wp[2] ^ 128) * q2 + (wp[3] ^ 128) * q3 + a2
                                    wp = ptr8(int(w) + w3o)
                                    a3 = (wp[0] ^ 128) * q0 + (wp[1] ^ 128) * q1 + (wp[2] ^ 128) * q2 + (wp[3] ^ 128) * q3 + a3
                                    x = ptr8(int(x) + 4)
                                    w = ptr8(int(w) + 4)
                                    i -= 1
                                i = run & 3
                                while i > 0:
                                    q0 = (x[0] ^ 128) + offm
                                    a0 = (w[0] ^ 128) * q0 + a0
                                    a1 = (w[fst] ^ 128) * q0 + a1
                                    a2 = (w[w2o] ^ 128) * q0 + a2
                                    a3 = (w[w3o] ^ 128) * q0 + a3
                                    x = ptr8(int(x) + 1)
                                    w = ptr8(int(w) + 1)
                                    i -= 1
                                k += 1
                            r += 1
                    else:
                        j = 0
                        while j < nb:
                            acc = 0
                            r = 0
                            while r < n_rows:
                                k = 0
                                while k < n_runs:
                                    x = ptr8(xa + r * x_row + k * x_run)
                                    w = ptr8(wa + (oc + j) * fst + r * w_row + k * in_c)
                                    i = 0
                                    while i < run:
                                        acc = (w[i] ^ 128) * ((x[i] ^ 128) + offm) + acc
                                        i += 1
                                    k += 1
                                r += 1
                            a3 = a2
                            a2 = a1
                            a1 = a0
                            a0 = acc
                            j += 1
                        # a0 holds the last channel: put the first one in a0
                        if nb == 2:
                            acc = a0
                            a0 = a1
                            a1 = acc
                        elif nb == 3:
                            acc = a0
                            a0 = a2
                            a2 = acc
                    ch = oc
                    j = oc + nb
                    while ch < j:
                        acc = a0 - corr
                        a0 = a1
                        a1 = a2
                        a2 = a3
                        if has_bias:
                            acc = ((bp[ch] + acc + S) & M) - S  # mod 2**32: no sign fix
                        else:
                            acc = ((acc + S) & M) - S
                        sh = (sp[ch] ^ S) - S
                        if sh > 0:
                            acc = (((acc << sh) + S) & M) - S
                        mu = mp[ch]
                        ah = acc >> 16
                        al = acc & 0xFFFF
                        bh = mu >> 16
                        bl = mu & 0xFFFF
                        ll = al * bl
                        m1 = ah * bl
                        m2 = al * bh
                        c1 = ((ll >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
                        v = ((ah * bh + (m1 >> 16) + (m2 >> 16) + (c1 >> 16)) << 1) + (((c1 & 0xFFFF) + 0x4000) >> 15)
                        if sh < 0:
                            # RoundingDivideByPOT(v, -sh): half away from zero, (v - (v < 0)) >> (-sh - 1), + 1, >> 1
                            # (exact for every int32 v here: |v| < 2**31 - 1, no overflow)
                            if v < 0:
                                v -= 1
                            v = ((v >> (-1 - sh)) + 1) >> 1
                        v = ((v + out_off + S) & M) - S
                        if v < act_min:
                            v = act_min
                        if v > act_max:
                            v = act_max
                        ptr8(ob)[ch] = v
                        ch += 1
                    oc += 4
                ob += out_c
                ox += 1
            oy += 1
        b += 1


@micropython.viper
def _k_dwconv(x: ptr8, w: ptr8, i: int, ctx, arena):
    # DEPTHWISE_CONV_2D (ops/depthwise_conv2d.c): window clipped once per output pixel, four
    # output channels per pass; the input channel of output channel oc + j is ic + j * x_inc
    # (x_inc = 1 for depth_multiplier 1, else 0 within one input channel's group).
    a0 = 0
    a1 = 0
    a2 = 0
    a3 = 0
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    mb = int(w)
    stride_w = c[_C_P]
    stride_h = c[_C_P + 1]
    dil_w = c[_C_P + 2]
    dil_h = c[_C_P + 3]
    pad_w = c[_C_P + 4]
    pad_h = c[_C_P + 5]
    offm = ((c[_C_P + 6] ^ S) - S) - 128
    out_off = (c[_C_P + 7] ^ S) - S
    act_min = (c[_C_P + 8] ^ S) - S
    act_max = (c[_C_P + 9] ^ S) - S
    dm = c[_C_P + 10]
    xb = int(x) + c[_C_IN + 1]
    in_h = c[_C_IN + 3]
    in_w = c[_C_IN + 4]
    in_c = c[_C_IN + 5]
    out_n = c[_C_OUT + 2]
    out_h = c[_C_OUT + 3]
    out_w = c[_C_OUT + 4]
    out_c = c[_C_OUT + 5]
    ob = int(ptr8(arena)) + c[_C_OUT + 1]
    fb = mb + c[_C_T1 + 1]
    f_h = c[_C_T1 + 3]
    f_w = c[_C_T1 + 4]
    has_bias = c[_C_BIAS]
    bp = ptr32(mb + has_bias)
    mp = ptr32(mb + c[_C_MULT])
    sp = ptr32(mb + c[_C_SHIFT])
    x_row = dil_h * in_w * in_c
    x_col = dil_w * in_c
    w_row = f_w * out_c
    x_inc = 0
    if dm == 1:
        x_inc = 1
    b = 0
    while b < out_n:
        inb = xb + b * in_h * in_w * in_c
        oy = 0
        while oy < out_h:
            iy0 = oy * stride_h - pad_h
            fy0 = 0
            while fy0 < f_h and iy0 + dil_h * fy0 < 0:
                fy0 += 1
            fy1 = f_h
            while fy1 > 0 and iy0 + dil_h * (fy1 - 1) >= in_h:
                fy1 -= 1
            ox = 0
            while ox < out_w:
                ix0 = ox * stride_w - pad_w
                fx0 = 0
                while fx0 < f_w and ix0 + dil_w * fx0 < 0:
                    fx0 += 1
                fx1 = f_w
                while fx1 > 0 and ix0 + dil_w * (fx1 - 1) >= in_w:
                    fx1 -= 1
                n_rows = 0
                n_cols = 0
                xa = inb
                wa = fb
                if fy1 > fy0 and fx1 > fx0:
                    n_rows = fy1 - fy0
                    n_cols = fx1 - fx0
                    xa = inb + ((iy0 + dil_h * fy0) * in_w + ix0 + dil_w * fx0) * in_c
                    wa = fb + (fy0 * f_w + fx0) * out_c
                oc = 0
                ic = 0
                m = 0
                while oc < out_c:
                    # this pass: output channels oc..oc+nb-1; input channel of oc + j is ic + j * x_inc
                    if dm == 1:
                        ic = oc
                        nb = out_c - oc
                    else:
                        nb = dm - m
                    a0 = 0
                    a1 = 0
                    a2 = 0
                    a3 = 0
                    if nb >= 4:
                        nb = 4
                        r = 0
                        while r < n_rows:
                            x = ptr8(xa + r * x_row + ic)
                            w = ptr8(wa + r * w_row + oc)
                            i = n_cols
                            if x_inc:
                                while i > 0:            # the loads come first in each sum (fewer spills)
                                    a0 = ((w[0] ^ 128) - 128) * ((x[0] ^ 128) + offm) + a0
                                    a1 = ((w[1] ^ 128) - 128) * ((x[1] ^ 128) + offm) + a1
                                    a2 = ((w[2] ^ 128) - 128) * ((x[2] ^ 128) + offm) + a2
                                    a3 = ((w[3] ^ 128) - 128) * ((x[3] ^ 128) + offm) + a3
                                    x = ptr8(int(x) + x_col)
                                    w = ptr8(int(w) + out_c)
                                    i -= 1
                            else:
                                while i > 0:            # depth multiplier > 1: one input for the four
                                    xv = (x[0] ^ 128) + offm
                                    a0 = ((w[0] ^ 128) - 128) * xv + a0
                                    a1 = ((w[1] ^ 128) - 128) * xv + a1
                                    a2 = ((w[2] ^ 128) - 128) * xv + a2
                                    a3 = ((w[3] ^ 128) - 128) * xv + a3
                                    x = ptr8(int(x) + x_col)
                                    w = ptr8(int(w) + out_c)
                                    i -= 1
                            r += 1
                    else:
                        nb = 1
                        r = 0
                        while r < n_rows:
                            x = ptr8(xa + r * x_row + ic)
                            w = ptr8(wa + r * w_row + oc)
                            i = n_cols
                            while i > 0:
                                a0 = ((w[0] ^ 128) - 128) * ((x[0] ^ 128) + offm) + a0
                                x = ptr8(int(x) + x_col)
                                w = ptr8(int(w) + out_c)
                                i -= 1
                            r += 1
                    ch = oc
                    j = oc + nb
                    while ch < j:
                        acc = a0
                        a0 = a1
                        a1 = a2
                        a2 = a3
                        if has_bias:
                            acc = ((bp[ch] + acc + S) & M) - S  # mod 2**32: no sign fix
                        sh = (sp[ch] ^ S) - S
                        if sh > 0:
                            acc = (((acc << sh) + S) & M) - S
                        mu = mp[ch]
                        if -32768 <= acc and acc < 32768:
                            # |acc| < 2**15: acc * (mu & 0xFFFF) and acc * (mu >> 16) fit 32 bits, and
                            # (acc * mu + 2**30) >> 31 == (acc * (mu >> 16) + (acc * (mu & 0xFFFF) >> 16) + 2**14) >> 15
                            v = (acc * (mu >> 16) + ((acc * (mu & 0xFFFF)) >> 16) + 0x4000) >> 15
                        else:
                            ah = acc >> 16
                            al = acc & 0xFFFF
                            bh = mu >> 16
                            bl = mu & 0xFFFF
                            ll = al * bl
                            m1 = ah * bl
                            m2 = al * bh
                            c1 = ((ll >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
                            v = ((ah * bh + (m1 >> 16) + (m2 >> 16) + (c1 >> 16)) << 1) + (((c1 & 0xFFFF) + 0x4000) >> 15)
                        if sh < 0:
                            # RoundingDivideByPOT(v, -sh), as in _k_conv
                            if v < 0:
                                v -= 1
                            v = ((v >> (-1 - sh)) + 1) >> 1
                        v = ((v + out_off + S) & M) - S
                        if v < act_min:
                            v = act_min
                        if v > act_max:
                            v = act_max
                        ptr8(ob)[ch] = v
                        ch += 1
                    oc += nb
                    m += nb
                    if m >= dm:
                        m = 0
                        ic += 1
                ob += out_c
                ox += 1
            oy += 1
        b += 1


@micropython.viper
def _k_fc(x: ptr8, w: ptr8, i: int, ctx, arena):
    # FULLY_CONNECTED (ops/fully_connected.c): four output rows per input load; weights used as
    # w ^ 128 with the 128 * sum(x + offset) correction (see _k_conv).
    a0 = 0
    a1 = 0
    a2 = 0
    a3 = 0
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    mb = int(w)
    offm = ((c[_C_P] ^ S) - S) - 128
    out_off = (c[_C_P + 1] ^ S) - S
    act_min = (c[_C_P + 2] ^ S) - S
    act_max = (c[_C_P + 3] ^ S) - S
    xb = int(x) + c[_C_IN + 1]
    ob = int(ptr8(arena)) + c[_C_OUT + 1]
    fb = mb + c[_C_T1 + 1]
    o = c[_C_T1 + 4]
    kk = c[_C_T1 + 5]
    batches = c[_C_OUT + 6] // o
    per_ch = 0
    if c[_C_NMULT] != 1:
        per_ch = 1
    has_bias = c[_C_BIAS]
    bp = ptr32(mb + has_bias)
    mp = ptr32(mb + c[_C_MULT])
    sp = ptr32(mb + c[_C_SHIFT])
    k2 = kk + kk
    k3 = k2 + kk
    b = 0
    while b < batches:
        xa = xb + b * kk
        x = ptr8(xa)
        sumx = 0
        i = 0
        while i < kk:
            sumx = (x[i] ^ 128) + sumx
            i += 1
        corr = (sumx + offm * kk) << 7
        oc = 0
        while oc < o:
            nb = o - oc
            a0 = 0
            a1 = 0
            a2 = 0
            a3 = 0
            if nb >= 4:
                nb = 4
                w = ptr8(fb + oc * kk)
                x = ptr8(xa)
                i = kk >> 2
                while i > 0:                # four inputs a pass, constant-offset loads
                    q0 = (x[0] ^ 128) + offm
                    q1 = (x[1] ^ 128) + offm
                    q2 = (x[2] ^ 128) + offm
                    q3 = (x[3] ^ 128) + offm
                    a0 = (w[0] ^ 128) * q0 + (w[1] ^ 128) * q1 + (w[2] ^ 128) * q2 + (w[3] ^ 128) * q3 + a0
                    wp = ptr8(int(w) + kk)
                    a1 = (wp[0] ^ 128) * q0 + (wp[1] ^ 128) * q1 + (wp[2] ^ 128) * q2 + (wp[3] ^ 128) * q3 + a1
                    wp = ptr8(int(w) + k2)
                    a2 = (wp[0] ^ 128) * q0 + (wp[1] ^ 128) * q1 + (wp[2] ^ 128) * q2 + (wp[3] ^ 128) * q3 + a2
                    wp = ptr8(int(w) + k3)
                    a3 = (wp[0] ^ 128) * q0 + (wp[1] ^ 128) * q1 + (wp[2] ^ 128) * q2 + (wp[3] ^ 128) * q3 + a3
                    x = ptr8(int(x) + 4)
                    w = ptr8(int(w) + 4)
                    i -= 1
                i = kk & 3
                while i > 0:
                    q0 = (x[0] ^ 128) + offm
                    a0 = (w[0] ^ 128) * q0 + a0
                    a1 = (w[kk] ^ 128) * q0 + a1
                    a2 = (w[k2] ^ 128) * q0 + a2
                    a3 = (w[k3] ^ 128) * q0 + a3
                    x = ptr8(int(x) + 1)
                    w = ptr8(int(w) + 1)
                    i -= 1
            else:
                x = ptr8(xa)
                j = 0
                while j < nb:
                    w = ptr8(fb + (oc + j) * kk)
                    acc = 0
                    i = 0
                    while i < kk:
                        acc = (w[i] ^ 128) * ((x[i] ^ 128) + offm) + acc
                        i += 1
                    if j == 0:
                        a0 = acc
                    elif j == 1:
                        a1 = acc
                    else:
                        a2 = acc
                    j += 1
            j = 0
            while j < nb:
                acc = a0
                if j == 1:
                    acc = a1
                elif j == 2:
                    acc = a2
                elif j == 3:
                    acc = a3
                ch = oc + j
                q = 0
                if per_ch:
                    q = ch
                acc -= corr
                if has_bias:
                    acc = ((bp[ch] + acc + S) & M) - S  # mod 2**32: no sign fix
                else:
                    acc = ((acc + S) & M) - S
                sh = (sp[q] ^ S) - S
                if sh > 0:
                    acc = (((acc << sh) + S) & M) - S
                mu = mp[q]
                ah = acc >> 16
                al = acc & 0xFFFF
                bh = mu >> 16
                bl = mu & 0xFFFF
                ll = al * bl
                m1 = ah * bl
                m2 = al * bh
                c1 = ((ll >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
                v = ((ah * bh + (m1 >> 16) + (m2 >> 16) + (c1 >> 16)) << 1) + (((c1 & 0xFFFF) + 0x4000) >> 15)
                if sh < 0:
                    # RoundingDivideByPOT(v, -sh), as in _k_conv
                    if v < 0:
                        v -= 1
                    v = ((v >> (-1 - sh)) + 1) >> 1
                v = ((v + out_off + S) & M) - S
                if v < act_min:
                    v = act_min
                if v > act_max:
                    v = act_max
                ptr8(ob)[ch] = v
                j += 1
            oc += 4
        ob += o
        b += 1


@micropython.viper
def _k_pool(x: ptr8, o: ptr8, i: int, ctx):
    # AVERAGE_POOL_2D / MAX_POOL_2D (ops/pooling.c): window clipped to the input, padding taps
    # not counted, average rounded half away from zero with C (truncating) division.
    c = ptr32(ctx)
    S = 1
    S <<= 31
    is_max = 0
    if c[_C_OPC] == 5:
        is_max = 1
    stride_w = c[_C_P]
    stride_h = c[_C_P + 1]
    filt_w = c[_C_P + 2]
    filt_h = c[_C_P + 3]
    pad_w = c[_C_P + 4]
    pad_h = c[_C_P + 5]
    act_min = (c[_C_P + 6] ^ S) - S
    act_max = (c[_C_P + 7] ^ S) - S
    xb = int(x) + c[_C_IN + 1]
    in_h = c[_C_IN + 3]
    in_w = c[_C_IN + 4]
    depth = c[_C_OUT + 5]
    out_n = c[_C_OUT + 2]
    out_h = c[_C_OUT + 3]
    out_w = c[_C_OUT + 4]
    ob = int(o) + c[_C_OUT + 1]
    row = in_w * depth
    b = 0
    while b < out_n:
        inb = xb + b * in_h * in_w * depth
        oy = 0
        while oy < out_h:
            iy0 = oy * stride_h - pad_h
            y0 = iy0
            if iy0 < 0:
                y0 = 0
            y1 = iy0 + filt_h
            if in_h - iy0 < filt_h:
                y1 = in_h
            if y1 < y0:
                y1 = y0
            ox = 0
            while ox < out_w:
                ix0 = ox * stride_w - pad_w
                x0 = ix0
                if ix0 < 0:
                    x0 = 0
                x1 = ix0 + filt_w
                if in_w - ix0 < filt_w:
                    x1 = in_w
                if x1 < x0:
                    x1 = x0
                count = (y1 - y0) * (x1 - x0)
                half = count >> 1
                o = ptr8(ob)
                ch = 0
                while ch < depth:
                    acc = 0
                    if is_max:
                        acc = -128
                    y = y0
                    while y < y1:
                        x = ptr8(inb + y * row + x0 * depth + ch)
                        i = 0
                        n = x1 - x0
                        while n > 0:
                            v = (x[i] ^ 128) - 128
                            if is_max:
                                if v > acc:
                                    acc = v
                            else:
                                acc += v
                            i += depth
                            n -= 1
                        y += 1
                    if count > 0 and not is_max:
                        if acc > 0:
                            acc = (acc + half) // count
                        else:
                            acc = 0 - ((half - acc) // count)
                    if acc < act_min:
                        acc = act_min
                    if acc > act_max:
                        acc = act_max
                    o[ch] = acc
                    ch += 1
                ob += depth
                ox += 1
            oy += 1
        b += 1


@micropython.viper
def _k_add(x: ptr8, y: ptr8, i: int, ctx, arena):
    # ADD (ops/add.c): three MultiplyByQuantizedMultiplierSmallerThanOneExp per element, with
    # 4-D broadcasting. One inlined srdhm + rounding shift serves the three steps.
    # The flat elementwise walk is taken only when both inputs have the output's shape (C's
    # mpyml_add_ref takes it whenever the two input shapes are equal, and then reads past both
    # inputs if they are broadcast against a larger output: a loader-accepted file TFLite never
    # produces; here the broadcast walk handles it).
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    off1 = (c[_C_P] ^ S) - S
    off2 = (c[_C_P + 1] ^ S) - S
    out_off = (c[_C_P + 2] ^ S) - S
    lsh = c[_C_P + 3]
    mu1 = c[_C_P + 4]
    rs1 = 0 - ((c[_C_P + 5] ^ S) - S)
    mu2 = c[_C_P + 6]
    rs2 = 0 - ((c[_C_P + 7] ^ S) - S)
    muo = c[_C_P + 8]
    rso = 0 - ((c[_C_P + 9] ^ S) - S)
    act_min = (c[_C_P + 10] ^ S) - S
    act_max = (c[_C_P + 11] ^ S) - S
    xb = int(x) + c[_C_IN + 1]
    yb = int(y) + c[_C_T1 + 1]
    o = ptr8(int(ptr8(arena)) + c[_C_OUT + 1])
    # element strides along n, h, w, c; 0 along a broadcast dim
    sn1 = c[_C_IN + 2]
    sh1 = c[_C_IN + 3]
    sw1 = c[_C_IN + 4]
    sc1 = c[_C_IN + 5]
    sn2 = c[_C_T1 + 2]
    sh2 = c[_C_T1 + 3]
    sw2 = c[_C_T1 + 4]
    sc2 = c[_C_T1 + 5]
    on = c[_C_OUT + 2]
    oh = c[_C_OUT + 3]
    ow = c[_C_OUT + 4]
    oc = c[_C_OUT + 5]
    same = 0
    if sn1 == on and sh1 == oh and sw1 == ow and sc1 == oc and sn2 == on and sh2 == oh and sw2 == ow and sc2 == oc:
        same = 1
    c1s = 1
    if sc1 == 1:
        c1s = 0
    w1s = sc1
    if sw1 == 1:
        w1s = 0
    h1s = sw1 * sc1
    if sh1 == 1:
        h1s = 0
    n1s = sh1 * sw1 * sc1
    if sn1 == 1:
        n1s = 0
    c2s = 1
    if sc2 == 1:
        c2s = 0
    w2s = sc2
    if sw2 == 1:
        w2s = 0
    h2s = sw2 * sc2
    if sh2 == 1:
        h2s = 0
    n2s = sh2 * sw2 * sc2
    if sn2 == 1:
        n2s = 0
    total = on * oh * ow * oc
    if same:
        # elementwise: walk both inputs with stride 1 as one row
        n1s = 0
        h1s = 0
        w1s = 0
        c1s = 1
        n2s = 0
        h2s = 0
        w2s = 0
        c2s = 1
        on = 1
        oh = 1
        ow = 1
        oc = total
    bh1 = mu1 >> 16
    bl1 = mu1 & 0xFFFF
    bh2 = mu2 >> 16
    bl2 = mu2 & 0xFFFF
    bho = muo >> 16
    blo = muo & 0xFFFF
    pos = 0
    bi = 0
    while bi < on:
        yi = 0
        while yi < oh:
            xi = 0
            while xi < ow:
                x = ptr8(xb + bi * n1s + yi * h1s + xi * w1s)
                y = ptr8(yb + bi * n2s + yi * h2s + xi * w2s)
                i = 0
                while i < oc:
                    # the three steps written out (multiplier halves hoisted out of the loop);
                    # RoundingDivideByPOT as (v - (v < 0)) >> (rs - 1), + 1, >> 1 (exact: |v| < 2**31 - 1)
                    a = (((x[i * c1s] ^ 128) - 128) + off1) << lsh
                    ah = a >> 16
                    al = a & 0xFFFF
                    ll = al * bl1
                    m1 = ah * bl1
                    m2 = al * bh1
                    cc = ((ll >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
                    v = ((ah * bh1 + (m1 >> 16) + (m2 >> 16) + (cc >> 16)) << 1) + (((cc & 0xFFFF) + 0x4000) >> 15)
                    if rs1 > 0:
                        if v < 0:
                            v -= 1
                        v = ((v >> (rs1 - 1)) + 1) >> 1
                    s1 = v
                    a = (((y[i * c2s] ^ 128) - 128) + off2) << lsh
                    ah = a >> 16
                    al = a & 0xFFFF
                    ll = al * bl2
                    m1 = ah * bl2
                    m2 = al * bh2
                    cc = ((ll >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
                    v = ((ah * bh2 + (m1 >> 16) + (m2 >> 16) + (cc >> 16)) << 1) + (((cc & 0xFFFF) + 0x4000) >> 15)
                    if rs2 > 0:
                        if v < 0:
                            v -= 1
                        v = ((v >> (rs2 - 1)) + 1) >> 1
                    a = ((s1 + v + S) & M) - S
                    ah = a >> 16
                    al = a & 0xFFFF
                    ll = al * blo
                    m1 = ah * blo
                    m2 = al * bho
                    cc = ((ll >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
                    v = ((ah * bho + (m1 >> 16) + (m2 >> 16) + (cc >> 16)) << 1) + (((cc & 0xFFFF) + 0x4000) >> 15)
                    if rso > 0:
                        if v < 0:
                            v -= 1
                        v = ((v >> (rso - 1)) + 1) >> 1
                    v = ((v + out_off + S) & M) - S
                    if v < act_min:
                        v = act_min
                    if v > act_max:
                        v = act_max
                    o[pos] = v
                    pos += 1
                    i += 1
                xi += 1
            yi += 1
        bi += 1


@micropython.viper
def _k_reshape(x: ptr8, o: ptr8, i: int, ctx):
    # RESHAPE: copy the bytes (memmove semantics) unless the planner aliased output onto input
    c = ptr32(ctx)
    src = int(x) + c[_C_IN + 1]
    dst = int(o) + c[_C_OUT + 1]
    n = c[_C_OUT + 6]
    if src == dst:
        return
    x = ptr8(src)
    o = ptr8(dst)
    if dst < src:
        i = 0
        while i < n:
            o[i] = x[i]
            i += 1
    else:
        i = n - 1
        while i >= 0:
            o[i] = x[i]
            i -= 1


@micropython.viper
def _k_softmax(x: ptr8, o: ptr8, i: int, ctx):
    # SOFTMAX (ops/softmax.c): gemmlowp fixed point, bit-exact with the C port. Every
    # SaturatingRoundingDoublingHighMul goes through the one inlined copy at the top of the
    # step loop: `st` selects its operands and where the product goes.
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    NEG = 0 - S                          # INT32_MIN (sign-correct on 32- and 64-bit words)
    MAXV = S - 1                         # INT32_MAX
    im = c[_C_P]
    ils = c[_C_P + 1]
    dmin = (c[_C_P + 2] ^ S) - S
    depth = c[_C_OUT + 8]
    outer = c[_C_OUT + 6] // depth
    xb = int(x) + c[_C_IN + 1]
    ob = int(o) + c[_C_OUT + 1]
    # constants >= 2**30 are built at run time (a literal would be a heap int on 32-bit boards)
    ct = 0x70F5
    ct = (ct << 16) | 0xA894            # exp(-1/8), 1895147668
    c48 = 0x5A5A
    c48 = (c48 << 16) | 0x5A5A          # 48/17 in Q2.29, 1515870810
    row = 0
    while row < outer:
        x = ptr8(xb + row * depth)
        o = ptr8(ob + row * depth)
        mx = -128
        i = 0
        while i < depth:
            v = (x[i] ^ 128) - 128
            if v > mx:
                mx = v
            i += 1
        total = 0
        scale = 0
        exponent = 0
        ps = 0
        while ps < 2:
            if ps == 1:
                # GetReciprocal(total): headroom, then one_over_one_plus_x_for_x_in_0_1
                u = total & M
                hp1 = 0
                while hp1 < 32 and ((u >> (31 - hp1)) & 1) == 0:
                    hp1 += 1
                if hp1 > 31:
                    hp1 = 31
                exponent = (12 - hp1) + 31 - 8
                ssm1 = ((u << hp1) & M) - S           # (int32)((uint32)sum << hp1) - 2**31)
                # rounding half sum of (ssm1, INT32_MAX)
                hd = (ssm1 >> 1) + (MAXV >> 1) + (ssm1 & MAXV & 1)
                if ((ssm1 ^ MAXV) & 1) and hd >= 0:
                    hd += 1
                xr = 0
                st = 0
                while st < 7:
                    if st == 0:
                        a = hd
                        bb = -1010580540             # -32/17 in Q2.29
                    elif st & 1:
                        a = hd
                        bb = xr
                    else:
                        a = xr
                        bb = ((1 << 29) - scale + S & M) - S
                    # r = srdhm(a, bb)
                    if a == NEG and bb == NEG:
                        r = MAXV
                    else:
                        ah = a >> 16
                        al = a & 0xFFFF
                        bh = bb >> 16
                        bl = bb & 0xFFFF
                        ll = al * bl
                        m1 = ah * bl
                        m2 = al * bh
                        cc = ((ll >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
                        r = ((ah * bh + (m1 >> 16) + (m2 >> 16) + (cc >> 16)) << 1) + (((cc & 0xFFFF) + 0x4000) >> 15)
                    if st == 0:
                        xr = ((c48 + r + S) & M) - S
                    elif st & 1:
                        scale = r                     # half_denominator * x
                    else:
                        # x += sat_shl(srdhm(x, 1 - hdx), 2)
                        if r > (1 << 29) - 1:
                            r = MAXV
                        elif r < 1 - (1 << 29):
                            r = NEG
                        else:
                            r = r << 2
                        xr = ((xr + r + S) & M) - S
                    st += 1
                # sat_shl(x, 1)
                if xr > MAXV >> 1:
                    scale = MAXV
                elif xr < 0 - (MAXV >> 1):
                    scale = NEG
                else:
                    scale = xr << 1
            i = 0
            while i < depth:
                diff = ((x[i] ^ 128) - 128) - mx
                if diff < dmin:
                    if ps == 1:
                        o[i] = -128
                    i += 1
                    continue
                # e = exp_on_negative_values<5>(srdhm(diff << ils, im)) (gemmlowp)
                e = 0
                aa = 0
                aq = 0
                xq = 0
                x2 = 0
                x3 = 0
                rr = 0
                st = 0
                while st < 13:
                    if st == 0:
                        a = (((diff << ils) + S) & M) - S
                        bb = im
                    elif st == 1:
                        a = xq
                        bb = xq
                    elif st == 2:
                        a = x2
                        bb = xq
                    elif st == 3:
                        a = x2
                        bb = x2
                    elif st == 4:
                        a = x3
                        bb = 715827883                # 1/3
                    elif st == 5:
                        a = ct
                        bb = xq
                    else:
                        # barrel shifter: multiply by exp(-2^k / 4) when bit 24 + k is set
                        k = st - 6
                        if (rr >> (24 + k)) & 1 == 0:
                            st += 1
                            continue
                        a = e
                        if k == 0:
                            bb = 0x63AF
                            bb = (bb << 16) | 0xBE7B      # 1672461947
                        elif k == 1:
                            bb = 0x4DA2
                            bb = (bb << 16) | 0xCBF2      # 1302514674
                        elif k == 2:
                            bb = 790015084
                        elif k == 3:
                            bb = 290630308
                        elif k == 4:
                            bb = 39332535
                        elif k == 5:
                            bb = 720401
                        else:
                            bb = 242
                    if a == NEG and bb == NEG:
                        r = MAXV
                    else:
                        ah = a >> 16
                        al = a & 0xFFFF
                        bh = bb >> 16
                        bl = bb & 0xFFFF
                        ll = al * bl
                        m1 = ah * bl
                        m2 = al * bh
                        cc = ((ll >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
                        r = ((ah * bh + (m1 >> 16) + (m2 >> 16) + (cc >> 16)) << 1) + (((cc & 0xFFFF) + 0x4000) >> 15)
                    if st == 0:
                        aa = r
                        aq = (aa & ((1 << 24) - 1)) - (1 << 24)
                        # x = sat_shl(aq, 5) + 1/8
                        if aq > (1 << 26) - 1:
                            xq = MAXV
                        elif aq < 1 - (1 << 26):
                            xq = NEG
                        else:
                            xq = aq << 5
                        xq = ((xq + (1 << 28) + S) & M) - S
                        rr = ((aq - aa + S) & M) - S
                    elif st == 1:
                        x2 = r
                    elif st == 2:
                        x3 = r
                    elif st == 3:
                        # x4 / 4 (rounding) + x3
                        rem = r & 3
                        thr = 1
                        if r < 0:
                            thr = 2
                        r = r >> 2
                        if rem > thr:
                            r += 1
                        x3 = ((r + x3 + S) & M) - S
                    elif st == 4:
                        # poly = rdbpot(r + x2, 1); xq = x + poly
                        r = ((r + x2 + S) & M) - S
                        rem = r & 1
                        thr = 0
                        if r < 0:
                            thr = 1
                        r = r >> 1
                        if rem > thr:
                            r += 1
                        xq = ((xq + r + S) & M) - S
                    elif st == 5:
                        e = ((ct + r + S) & M) - S
                    else:
                        e = r
                    st += 1
                if aa == 0:
                    e = MAXV
                if ps == 0:
                    # Rescale<12>: rounding right shift by 12
                    rem = e & 0xFFF
                    thr = 0x7FF
                    if e < 0:
                        thr += 1
                    e = e >> 12
                    if rem > thr:
                        e += 1
                    total = ((total + e + S) & M) - S
                else:
                    a = scale
                    bb = e
                    if a == NEG and bb == NEG:
                        r = MAXV
                    else:
                        ah = a >> 16
                        al = a & 0xFFFF
                        bh = bb >> 16
                        bl = bb & 0xFFFF
                        ll = al * bl
                        m1 = ah * bl
                        m2 = al * bh
                        cc = ((ll >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
                        r = ((ah * bh + (m1 >> 16) + (m2 >> 16) + (cc >> 16)) << 1) + (((cc & 0xFFFF) + 0x4000) >> 15)
                    v = 0
                    if exponent <= 31:
                        v = r
                        if exponent > 0:
                            mask = (1 << exponent) - 1
                            rem = v & mask
                            thr = mask >> 1
                            if v < 0:
                                thr += 1
                            v = v >> exponent
                            if rem > thr:
                                v += 1
                    v -= 128
                    if v < -128:
                        v = -128
                    if v > 127:
                        v = 127
                    o[i] = v
                i += 1
            ps += 1
        row += 1
