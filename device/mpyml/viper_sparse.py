# mpyml viper kernels of the "sparse" op family: SPARSE_FULLY_CONNECTED, SPARSE_CONV_2D (CSC sparse weights,
# docs/FORMAT.md "Sparse weights"). Bit-exact with native_modules/engine/ops/sparse_fc.c / sparse_conv.c.
#
# check(opcode, ts, n_in, n_out, prm, buf, data) -> check code: plain Python, run once by prepare; mirrors
#   mpyml_sparse_fc_check / mpyml_sparse_conv_check and sparse_common.c test by test (same order, same code).
# run(opc, model, arena, ctx): viper, allocation-free; operands decoded by viper_engine._ext into ctx words
#   _C_X + 8*k (+0 offset, +1 storage 0 arena / 1 const / 2 absent / 3 trusted const (offset into the ctx),
#   +2..+5 n h w c, +6 nbytes, +7 type), params at _C_XP + i.
# rows are uint8 / int16 row indices, int8 4-bit row gaps (sparse_common.h: from 0 inside a column, low nibble
# first, an even entry count per column) or uint8 / int16 block indices (values = B x rows, B = 4, 8, 16). rows and colptr are trusted operands: the kernels read the ctx's copies (storage 3), validated at load, so
# every scatter index is < O and every column range inside values whatever the model buffer holds later.
# The accumulator scratch starts at the bias and takes the products, as in C: a ptr32 store keeps the low 32 bits
# (int32 wrapping on every word size), so the partial sums add to the loaded word as is; the final read is
# sign-corrected ((v ^ S) - S).
import struct

import micropython
from micropython import const

_C_XP = const(64)
_C_X = const(128)

_OP_FC = const(57)
_OP_CONV = const(58)

_CHK_SHAPE = const(80)
_CHK_INDEX = const(81)
_CHK_SECTION = const(82)
_CHK_VALUES = const(83)
_CHK_REQUANT = const(84)
_CHK_ACT = const(85)
_CHK_COUNT = const(70)

_T_INT8 = const(1)
_T_UINT8 = const(4)
_T_INT16 = const(5)


# ---------------------------------------------------------------- load-time checks (plain Python)

def _elems(t):
    n = 1
    for i in range(t[1]):
        n *= t[4 + i]
    return n


def _in_section(t):
    from mpyml import viper_engine as ve
    tr, sz = ve._TRUSTED[0], ve._SPARSE[0]
    start = tr - sz
    return t[2] == 1 and t[8] >= start and t[8] - start <= sz and t[9] <= sz - (t[8] - start)


def _block_of(val, rows):
    # values per row entry (sparse_common.h mpyml_sparse_block_of): 1, or 4 / 8 / 16 for block indices, 0 invalid
    nv = _elems(val)
    nr = _elems(rows)
    if rows[0] == _T_INT8 or nv == nr:
        return 1
    if nr == 0 or nv % nr:
        return 0
    b = nv // nr
    return b if b in (4, 8, 16) else 0


def _check_weights(ts, buf, data, cols, o):
    val, rows, cp = ts[1], ts[2], ts[3]
    if not _in_section(rows) or not _in_section(cp):
        return _CHK_SECTION
    gap = rows[0] == _T_INT8
    bs = _block_of(val, rows)
    nnz = _elems(val) if gap else _elems(rows)
    if val[10] != 0 or bs == 0:
        return _CHK_VALUES
    if cols == 0 or cols > 65536 or _elems(cp) != cols + 1:
        return _CHK_SHAPE
    if o == 0 or o > 65536 or o % bs:
        return _CHK_SHAPE
    n_rows = o // bs
    if rows[0] == _T_UINT8 and n_rows > 256:
        return _CHK_SHAPE
    if gap and (nnz & 1 or _elems(rows) != nnz // 2):
        return _CHK_SHAPE
    # read in place (no tuple of nnz items: a board may not have the RAM for one)
    pb = data + cp[8]
    rb = data + rows[8]
    wide = rows[0] == _T_INT16
    mv = memoryview(buf)
    p0 = struct.unpack_from("<i", buf, pb)[0]
    if p0 != 0 or struct.unpack_from("<i", buf, pb + 4 * cols)[0] != nnz:
        return _CHK_INDEX
    for k in range(cols):
        p1 = struct.unpack_from("<i", buf, pb + 4 * k + 4)[0]
        if p1 < p0 or p1 > nnz:
            return _CHK_INDEX
        if gap:
            if p1 & 1:
                return _CHK_INDEX
            r = 0
            for j in range(p0, p1):
                r += (mv[rb + (j >> 1)] >> ((j & 1) << 2)) & 15
                if r >= o:
                    return _CHK_INDEX
            p0 = p1
            continue
        last = -1
        for j in range(p0, p1):
            r = (mv[rb + 2 * j] | (mv[rb + 2 * j + 1] << 8)) if wide else mv[rb + j]
            if r <= last or r >= n_rows:
                return _CHK_INDEX
            last = r
        p0 = p1
    return 0


def _check_requant(ts, n_in, buf, data, o, nq, act_min, act_max):
    b, m, s, acc = ts[4], ts[5], ts[6], ts[n_in + 1]
    if (b is not None and _elems(b) != o) or _elems(acc) != o:
        return _CHK_SHAPE
    if _elems(m) != nq or _elems(s) != nq:
        return _CHK_SHAPE
    mv = struct.unpack_from("<%di" % nq, buf, data + m[8])
    sv = struct.unpack_from("<%di" % nq, buf, data + s[8])
    for i in range(nq):
        if mv[i] < 0 or not -31 <= sv[i] <= 30:
            return _CHK_REQUANT
    if act_min > act_max:
        return _CHK_ACT
    return 0


def _check_fc(ts, n_in, prm, buf, data):
    x, y = ts[0], ts[n_in]
    o = y[4 + y[1] - 1]
    cols = _elems(ts[3]) - 1
    batches = _elems(y) // o
    if cols == 0 or _elems(x) % cols != 0 or _elems(x) // cols != batches:
        return _CHK_SHAPE
    r = _check_weights(ts, buf, data, cols, o)
    if r:
        return r
    nq = _elems(ts[5])
    return _check_requant(ts, n_in, buf, data, o, 1 if nq == 1 else o, prm[2], prm[3])


def _check_conv(ts, n_in, prm, buf, data):
    x, y = ts[0], ts[n_in]
    if x[1] != 4 or y[1] != 4 or x[4] != y[4]:
        return _CHK_SHAPE
    cols = _elems(ts[3]) - 1
    taps = prm[6] * prm[7]
    if taps > 65536 or taps * x[7] != cols:
        return _CHK_SHAPE
    o = y[7]
    r = _check_weights(ts, buf, data, cols, o)
    if r:
        return r
    return _check_requant(ts, n_in, buf, data, o, o, prm[10], prm[11])


def check(opcode, ts, n_in, n_out, prm, buf, data):
    if opcode == _OP_FC:
        return _check_fc(ts, n_in, prm, buf, data)
    if opcode == _OP_CONV:
        return _check_conv(ts, n_in, prm, buf, data)
    return _CHK_COUNT


# ---------------------------------------------------------------- kernels (viper, allocation-free)

@micropython.viper
def _cols(acc: ptr32, val: ptr8, x: ptr8, rows: int, cp: int, n: int, off: int, wide: int, bs: int):
    # columns k < n of x with xo = x[k] + off != 0: acc[rows[j]] += values[j] * xo (exact partial sums);
    # wide 0: u8 rows, 1: u16 rows, 2: 4-bit gaps (two entries a byte, an even count per column);
    # bs > 1: the rows are block indices, entry j adds values[j * bs + i] * xo to acc[rows[j] * bs + i], i < bs
    c = ptr32(cp)
    r8 = ptr8(rows)
    r16 = ptr16(rows)
    k = 0
    while k < n:
        xo = ((x[k] ^ 128) - 128) + off
        if xo != 0:
            j = c[k]
            j1 = c[k + 1]
            if wide == 2:
                r = 0
                while j < j1:
                    b = r8[j >> 1]
                    r += b & 15
                    acc[r] = ((val[j] ^ 128) - 128) * xo + acc[r]
                    r += b >> 4
                    acc[r] = ((val[j + 1] ^ 128) - 128) * xo + acc[r]
                    j += 2
            elif bs > 1:
                while j < j1:
                    if wide:
                        r = r16[j] * bs
                    else:
                        r = r8[j] * bs
                    v = j * bs
                    e = r + bs
                    while r < e:
                        acc[r] = ((val[v] ^ 128) - 128) * xo + acc[r]
                        r += 1
                        v += 1
                    j += 1
            elif wide:
                while j < j1:
                    r = r16[j]
                    acc[r] = ((val[j] ^ 128) - 128) * xo + acc[r]
                    j += 1
            else:
                while j < j1:
                    r = r8[j]
                    acc[r] = ((val[j] ^ 128) - 128) * xo + acc[r]
                    j += 1
        k += 1


@micropython.viper
def _finish(acc: ptr32, out: ptr8, mult: int, shift: int, o: int, per_ch: int, prm: int, ctx):
    # out[i] = requant(acc[i]) for i < o (acc holds bias + products); prm = index of the input_offset param.
    # MultiplyByQuantizedMultiplier + output offset + clamp (mpyml_requant_pos; as viper_engine._k_fc), inlined
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    out_off = (c[prm + 1] ^ S) - S
    act_min = (c[prm + 2] ^ S) - S
    act_max = (c[prm + 3] ^ S) - S
    mp = ptr32(mult)
    sp = ptr32(shift)
    i = 0
    q = 0
    while i < o:
        if per_ch:
            q = i
        a = (acc[i] ^ S) - S
        sh = (sp[q] ^ S) - S
        if sh > 0:
            a = (((a << sh) + S) & M) - S
        mu = mp[q]
        ah = a >> 16
        al = a & 0xFFFF
        bh = mu >> 16
        bl = mu & 0xFFFF
        ll = al * bl
        m1 = ah * bl
        m2 = al * bh
        c1 = ((ll >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
        v = ((ah * bh + (m1 >> 16) + (m2 >> 16) + (c1 >> 16)) << 1) + (((c1 & 0xFFFF) + 0x4000) >> 15)
        if sh < 0:
            # RoundingDivideByPOT(v, -sh): (v - (v < 0)) >> (-sh - 1), + 1, >> 1 (exact: |v| < 2**31 - 1)
            if v < 0:
                v -= 1
            v = ((v >> (-1 - sh)) + 1) >> 1
        v = ((v + out_off + S) & M) - S
        if v < act_min:
            v = act_min
        if v > act_max:
            v = act_max
        out[i] = v
        i += 1


@micropython.viper
def _addr(k: int, model, arena, ctx) -> int:
    c = ptr32(ctx)
    st = c[_C_X + 8 * k + 1]
    if st == 2:
        return 0
    if st == 1:
        return int(ptr8(model)) + c[_C_X + 8 * k]
    if st == 3:
        return int(ptr8(ctx)) + c[_C_X + 8 * k]
    return int(ptr8(arena)) + c[_C_X + 8 * k]


@micropython.viper
def _bs(ctx, wide: int) -> int:
    # values per row entry of a validated op (_block_of): values bytes / rows entries
    c = ptr32(ctx)
    if wide == 2:
        return 1
    nr = c[_C_X + 16 + 6]
    if wide:
        nr >>= 1
    nv = c[_C_X + 8 + 6]
    if nv == nr:
        return 1
    return nv // nr


@micropython.viper
def _init(acc: ptr32, bias: int, o: int):
    # acc[i] = bias[i] (0 if absent), as the C kernels: the scratch bytes match the C engine's
    bp = ptr32(bias)
    i = 0
    while i < o:
        if bias:
            acc[i] = bp[i]
        else:
            acc[i] = 0
        i += 1


@micropython.viper
def _k_fc(model, arena, ctx):
    c = ptr32(ctx)
    S = 1
    S <<= 31
    x = int(_addr(0, model, arena, ctx))
    val = ptr8(int(_addr(1, model, arena, ctx)))
    rows = int(_addr(2, model, arena, ctx))
    cp = int(_addr(3, model, arena, ctx))
    bias = int(_addr(4, model, arena, ctx))
    mult = int(_addr(5, model, arena, ctx))
    shift = int(_addr(6, model, arena, ctx))
    out = int(_addr(7, model, arena, ctx))
    acc = ptr32(int(_addr(8, model, arena, ctx)))
    wide = 0
    if c[_C_X + 16 + 7] == _T_INT16:
        wide = 1
    elif c[_C_X + 16 + 7] == _T_INT8:
        wide = 2
    bs = int(_bs(ctx, wide))
    per_ch = 0
    if c[_C_X + 40 + 6] != 4:
        per_ch = 1
    o = c[_C_X + 56 + 5]
    cols = (c[_C_X + 24 + 6] >> 2) - 1
    batches = c[_C_X + 56 + 6] // o
    off = (c[_C_XP] ^ S) - S
    b = 0
    while b < batches:
        _init(acc, bias, o)
        _cols(acc, val, ptr8(x + b * cols), rows, cp, cols, off, wide, bs)
        _finish(acc, ptr8(out + b * o), mult, shift, o, per_ch, _C_XP, ctx)
        b += 1


@micropython.viper
def _k_conv(model, arena, ctx):
    c = ptr32(ctx)
    S = 1
    S <<= 31
    x = int(_addr(0, model, arena, ctx))
    val = ptr8(int(_addr(1, model, arena, ctx)))
    rows = int(_addr(2, model, arena, ctx))
    cp = int(_addr(3, model, arena, ctx))
    bias = int(_addr(4, model, arena, ctx))
    mult = int(_addr(5, model, arena, ctx))
    shift = int(_addr(6, model, arena, ctx))
    out = int(_addr(7, model, arena, ctx))
    acc = ptr32(int(_addr(8, model, arena, ctx)))
    wide = 0
    if c[_C_X + 16 + 7] == _T_INT16:
        wide = 1
    elif c[_C_X + 16 + 7] == _T_INT8:
        wide = 2
    bs = int(_bs(ctx, wide))
    H = c[_C_X + 3]
    W = c[_C_X + 4]
    C = c[_C_X + 5]
    N = c[_C_X + 56 + 2]
    OH = c[_C_X + 56 + 3]
    OW = c[_C_X + 56 + 4]
    O = c[_C_X + 56 + 5]
    sw = c[_C_XP]
    sh = c[_C_XP + 1]
    dw = c[_C_XP + 2]
    dh = c[_C_XP + 3]
    pw = c[_C_XP + 4]
    ph = c[_C_XP + 5]
    KW = c[_C_XP + 6]
    KH = c[_C_XP + 7]
    off = (c[_C_XP + 8] ^ S) - S
    pos = out
    n = 0
    while n < N:
        xb = x + n * H * W * C
        oy = 0
        while oy < OH:
            iy0 = oy * sh - ph
            ox = 0
            while ox < OW:
                ix0 = ox * sw - pw
                _init(acc, bias, O)
                ky = 0
                while ky < KH:
                    iy = iy0 + dh * ky
                    if 0 <= iy < H:
                        kx = 0
                        while kx < KW:
                            ix = ix0 + dw * kx
                            if 0 <= ix < W:
                                _cols(acc, val, ptr8(xb + (iy * W + ix) * C), rows, cp + 4 * (ky * KW + kx) * C,
                                      C, off, wide, bs)
                            kx += 1
                    ky += 1
                _finish(acc, ptr8(pos), mult, shift, O, 1, _C_XP + 8, ctx)
                pos += O
                ox += 1
            oy += 1
        n += 1


@micropython.viper
def run(opc: int, model, arena, ctx):
    if opc == _OP_FC:
        _k_fc(model, arena, ctx)
    elif opc == _OP_CONV:
        _k_conv(model, arena, ctx)
