# mpyml viper kernels of the elementwise family (ops 9..24), bit-exact with
# native_modules/engine/ops/elementwise.c and elementwise_binary.c.
#
# check(opcode, ts, n_in, n_out, prm, buf, data) -> 0 or the same check code as the C *_check
# (plain Python, runs once at load); run(opc, model, arena, ctx) runs one op from the operand words
# viper_engine._ext wrote into ctx (operand k at _C_X + 8 * k: +0 byte offset, +1 storage 0 arena /
# 1 const / 2 absent, +2..+5 dims n h w c, +6 nbytes, +7 type code; params at _C_XP + i).
# Word-size rules as in viper_engine.py: no literal >= 2**30, S = 2**31 built at run time, ptr32
# loads sign-corrected with (v ^ S) - S, wrapping adds re-wrapped with ((v + S) & M) - S.
import struct

import micropython
from micropython import const

_C_XP = const(64)
_C_X = const(128)

_OP_LUT = const(9)
_OP_DEQUANTIZE = const(10)
_OP_QUANTIZE = const(11)
_OP_MUL = const(12)
_OP_MAXIMUM = const(13)
_OP_MINIMUM = const(14)
_OP_SUB = const(15)
_OP_SQDIFF = const(16)
_OP_PRELU = const(17)
_OP_DIV = const(18)

_CHK_TABLE = const(30)
_CHK_SHAPE = const(31)
_CHK_KEYS = const(32)
_CHK_QUANT = const(34)
_CHK_ACT = const(35)
_CHK_DIV_RECIP = const(97)


# ---------------------------------------------------------------- check (mirrors the C *_check)

def _elems(t):
    n = 1
    for i in range(t[1]):
        n *= t[4 + i]
    return n


def _same_shape(a, b):
    if a[1] != b[1]:
        return False
    for i in range(a[1]):
        if a[4 + i] != b[4 + i]:
            return False
    return True


def _dims4(t):
    nd = t[1]
    d = [1, 1, 1, 1]
    for i in range(nd):
        d[4 - nd + i] = t[4 + i]
    return d


def _check_shapes(ts):
    a, b, y = ts[0], ts[1], ts[2]
    if a[1] > y[1] or b[1] > y[1]:
        return _CHK_SHAPE
    da, db, dy = _dims4(a), _dims4(b), _dims4(y)
    for i in range(4):
        if (da[i] != dy[i] and da[i] != 1) or (db[i] != dy[i] and db[i] != 1):
            return _CHK_SHAPE
        if dy[i] != (da[i] if da[i] > db[i] else db[i]):
            return _CHK_SHAPE
    return 0


def check(opcode, ts, n_in, n_out, prm, buf, data):
    if opcode == _OP_LUT or opcode == _OP_DEQUANTIZE:
        x, tab, y = ts[0], ts[1], ts[2]
        if _elems(tab) != 256 or tab[0] != y[0]:
            return _CHK_TABLE
        if not _same_shape(x, y):
            return _CHK_SHAPE
        return 0
    if opcode == _OP_QUANTIZE:
        x, keys, vals, y = ts[0], ts[1], ts[2], ts[3]
        n = _elems(keys)
        if n < 1 or n > 512 or _elems(vals) != n + 1 or vals[0] != y[0] or keys[2] != 1:
            return _CHK_KEYS
        k = struct.unpack_from("<%di" % n, buf, data + keys[8])
        for i in range(1, n):
            if k[i] <= k[i - 1]:
                return _CHK_KEYS
        if not _same_shape(x, y):
            return _CHK_SHAPE
        return 0
    if opcode == _OP_MUL:
        bad = _check_shapes(ts)
        if bad:
            return bad
        if prm[5] > prm[6]:
            return _CHK_ACT
        return 0
    if opcode == _OP_SUB or opcode == _OP_SQDIFF:
        bad = _check_shapes(ts)
        if bad:
            return bad
        if prm[10] > prm[11]:
            return _CHK_ACT
        return 0
    if opcode == _OP_PRELU:
        return _check_shapes(ts)
    if opcode == _OP_DIV:
        bad = _check_shapes((ts[0], ts[1], ts[3]))
        if bad:
            return bad
        if prm[4] > prm[5]:
            return _CHK_ACT
        return _CHK_DIV_RECIP if _elems(ts[2]) != 512 else 0
    if opcode == _OP_MAXIMUM or opcode == _OP_MINIMUM:
        bad = _check_shapes(ts)
        if bad:
            return bad
        a, b, y = ts[0], ts[1], ts[2]
        if a[10] != y[10] or b[10] != y[10] or a[11] != y[11] or b[11] != y[11]:
            return _CHK_QUANT
        return 0
    return 70


# ---------------------------------------------------------------- kernels (allocation-free)

@micropython.viper
def _lut(model, arena, ctx):
    # LUT / DEQUANTIZE: y[i] = table[x[i] as a byte]; 1-byte or 4-byte table entries
    c = ptr32(ctx)
    xb = int(ptr8(arena))
    if c[_C_X + 1] == 1:
        xb = int(ptr8(model))
    xb += c[_C_X]
    tb = int(ptr8(model)) + c[_C_X + 8]
    yb = int(ptr8(arena)) + c[_C_X + 16]
    n = c[_C_X + 16 + 6]
    x = ptr8(xb)
    if c[_C_X + 16 + 7] == 3:
        t32 = ptr32(tb)
        y32 = ptr32(yb)
        n = n >> 2
        i = 0
        while i < n:
            y32[i] = t32[x[i]]
            i += 1
    else:
        t = ptr8(tb)
        y = ptr8(yb)
        i = 0
        while i < n:
            y[i] = t[x[i]]
            i += 1


@micropython.viper
def _quantize(model, arena, ctx):
    # QUANTIZE_F32: y = values[number of keys <= key(x)], key(b) = b >= 0 ? b : b ^ 0x7FFFFFFF
    c = ptr32(ctx)
    S = 1
    S <<= 31
    F = S - 1
    xb = int(ptr8(arena))
    if c[_C_X + 1] == 1:
        xb = int(ptr8(model))
    xb += c[_C_X]
    keys = ptr32(int(ptr8(model)) + c[_C_X + 8])
    nk = c[_C_X + 8 + 6] >> 2
    vals = ptr8(int(ptr8(model)) + c[_C_X + 16])
    y = ptr8(int(ptr8(arena)) + c[_C_X + 24])
    n = c[_C_X + 24 + 6]
    x = ptr32(xb)
    i = 0
    while i < n:
        b = x[i]
        if b & S:
            b = b ^ F
        key = (b ^ S) - S
        lo = 0
        hi = nk
        while lo < hi:
            mid = (lo + hi) >> 1
            if ((keys[mid] ^ S) - S) <= key:
                lo = mid + 1
            else:
                hi = mid
        y[i] = vals[lo]
        i += 1


@micropython.viper
def _binary(model, arena, ctx, kind: int):
    # MUL (kind 0), MAXIMUM (1), MINIMUM (2) with 4-D broadcasting (ops/elementwise_binary.c)
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    ma = int(ptr8(model))
    aa = int(ptr8(arena))
    x1b = aa
    if c[_C_X + 1] == 1:
        x1b = ma
    x1b += c[_C_X]
    x2b = aa
    if c[_C_X + 8 + 1] == 1:
        x2b = ma
    x2b += c[_C_X + 8]
    y = ptr8(aa + c[_C_X + 16])
    # element strides along n, h, w, c of each input; 0 along a broadcast (size 1) dim
    s1c = 0
    acc = 1
    if c[_C_X + 5] != 1:
        s1c = acc
    acc *= c[_C_X + 5]
    s1w = 0
    if c[_C_X + 4] != 1:
        s1w = acc
    acc *= c[_C_X + 4]
    s1h = 0
    if c[_C_X + 3] != 1:
        s1h = acc
    acc *= c[_C_X + 3]
    s1n = 0
    if c[_C_X + 2] != 1:
        s1n = acc
    s2c = 0
    acc = 1
    if c[_C_X + 13] != 1:
        s2c = acc
    acc *= c[_C_X + 13]
    s2w = 0
    if c[_C_X + 12] != 1:
        s2w = acc
    acc *= c[_C_X + 12]
    s2h = 0
    if c[_C_X + 11] != 1:
        s2h = acc
    acc *= c[_C_X + 11]
    s2n = 0
    if c[_C_X + 10] != 1:
        s2n = acc
    dn = c[_C_X + 18]
    dh = c[_C_X + 19]
    dw = c[_C_X + 20]
    dc = c[_C_X + 21]
    off1 = 0
    off2 = 0
    out_off = 0
    mu = 0
    lsh = 0
    rs = 0
    act_min = 0
    act_max = 0
    if kind == 0:
        off1 = (c[_C_XP] ^ S) - S
        off2 = (c[_C_XP + 1] ^ S) - S
        out_off = (c[_C_XP + 2] ^ S) - S
        mu = c[_C_XP + 3]
        sh = (c[_C_XP + 4] ^ S) - S
        if sh > 0:
            lsh = sh
        else:
            rs = 0 - sh
        act_min = (c[_C_XP + 5] ^ S) - S
        act_max = (c[_C_XP + 6] ^ S) - S
    o = 0
    b = 0
    while b < dn:
        i = 0
        while i < dh:
            j = 0
            while j < dw:
                a1 = ptr8(x1b + b * s1n + i * s1h + j * s1w)
                a2 = ptr8(x2b + b * s2n + i * s2h + j * s2w)
                k = 0
                while k < dc:
                    p = a1[k * s1c]
                    if p > 127:
                        p -= 256
                    q = a2[k * s2c]
                    if q > 127:
                        q -= 256
                    if kind == 0:
                        v = (p + off1) * (q + off2)
                        if lsh > 0:
                            v = ((v << lsh) + S & M) - S
                        # srdhm(v, mu) from 16-bit halves
                        ah = v >> 16
                        al = v & 0xFFFF
                        bh = mu >> 16
                        bl = mu & 0xFFFF
                        ll = al * bl
                        m1 = ah * bl
                        m2 = al * bh
                        c1 = ((ll >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
                        v = ((ah * bh + (m1 >> 16) + (m2 >> 16) + (c1 >> 16)) << 1) + (((c1 & 0xFFFF) + 0x4000) >> 15)
                        if rs > 0:
                            mask = (1 << rs) - 1
                            rem = v & mask
                            thr = mask >> 1
                            if v < 0:
                                thr += 1
                            v = v >> rs
                            if rem > thr:
                                v += 1
                        v = ((v + out_off + S) & M) - S
                        if v < act_min:
                            v = act_min
                        if v > act_max:
                            v = act_max
                    elif kind == 1:
                        v = p
                        if q > p:
                            v = q
                    else:
                        v = p
                        if q < p:
                            v = q
                    y[o] = v
                    o += 1
                    k += 1
                j += 1
            i += 1
        b += 1


@micropython.viper
def _arith(model, arena, ctx, square: int):
    # SUB (square 0) / SQUARED_DIFFERENCE (square 1), ops/elementwise_binary.c arith_one: three
    # MultiplyByQuantizedMultiplierSmallerThanOneExp per element, one inlined block run in a 3-step loop
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    ma = int(ptr8(model))
    aa = int(ptr8(arena))
    x1b = aa
    if c[_C_X + 1] == 1:
        x1b = ma
    x1b += c[_C_X]
    x2b = aa
    if c[_C_X + 8 + 1] == 1:
        x2b = ma
    x2b += c[_C_X + 8]
    y = ptr8(aa + c[_C_X + 16])
    s1c = 0
    acc = 1
    if c[_C_X + 5] != 1:
        s1c = acc
    acc *= c[_C_X + 5]
    s1w = 0
    if c[_C_X + 4] != 1:
        s1w = acc
    acc *= c[_C_X + 4]
    s1h = 0
    if c[_C_X + 3] != 1:
        s1h = acc
    acc *= c[_C_X + 3]
    s1n = 0
    if c[_C_X + 2] != 1:
        s1n = acc
    s2c = 0
    acc = 1
    if c[_C_X + 13] != 1:
        s2c = acc
    acc *= c[_C_X + 13]
    s2w = 0
    if c[_C_X + 12] != 1:
        s2w = acc
    acc *= c[_C_X + 12]
    s2h = 0
    if c[_C_X + 11] != 1:
        s2h = acc
    acc *= c[_C_X + 11]
    s2n = 0
    if c[_C_X + 10] != 1:
        s2n = acc
    dn = c[_C_X + 18]
    dh = c[_C_X + 19]
    dw = c[_C_X + 20]
    dc = c[_C_X + 21]
    off1 = (c[_C_XP] ^ S) - S
    off2 = (c[_C_XP + 1] ^ S) - S
    out_off = (c[_C_XP + 2] ^ S) - S
    lsh = c[_C_XP + 3]
    mu1 = c[_C_XP + 4]
    rs1 = 0 - ((c[_C_XP + 5] ^ S) - S)
    mu2 = c[_C_XP + 6]
    rs2 = 0 - ((c[_C_XP + 7] ^ S) - S)
    muo = c[_C_XP + 8]
    rso = 0 - ((c[_C_XP + 9] ^ S) - S)
    act_min = (c[_C_XP + 10] ^ S) - S
    act_max = (c[_C_XP + 11] ^ S) - S
    o = 0
    b = 0
    while b < dn:
        i = 0
        while i < dh:
            j = 0
            while j < dw:
                a1 = ptr8(x1b + b * s1n + i * s1h + j * s1w)
                a2 = ptr8(x2b + b * s2n + i * s2h + j * s2w)
                k = 0
                while k < dc:
                    p = a1[k * s1c]
                    if p > 127:
                        p -= 256
                    q = a2[k * s2c]
                    if q > 127:
                        q -= 256
                    s1 = 0
                    v = (((p + off1) << lsh) + S & M) - S
                    mu = mu1
                    rs = rs1
                    st = 0
                    while st < 3:
                        # v = rdbpot(srdhm(v, mu), rs)
                        ah = v >> 16
                        al = v & 0xFFFF
                        bh = mu >> 16
                        bl = mu & 0xFFFF
                        ll = al * bl
                        m1 = ah * bl
                        m2 = al * bh
                        c1 = ((ll >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
                        v = ((ah * bh + (m1 >> 16) + (m2 >> 16) + (c1 >> 16)) << 1) + (((c1 & 0xFFFF) + 0x4000) >> 15)
                        if rs > 0:
                            mask = (1 << rs) - 1
                            rem = v & mask
                            thr = mask >> 1
                            if v < 0:
                                thr += 1
                            v = v >> rs
                            if rem > thr:
                                v += 1
                        if st == 0:
                            s1 = v
                            v = (((q + off2) << lsh) + S & M) - S
                            mu = mu2
                            rs = rs2
                        elif st == 1:
                            v = ((s1 - v + S) & M) - S
                            if square:
                                v = ((v * v + S) & M) - S
                            mu = muo
                            rs = rso
                        st += 1
                    v = ((v + out_off + S) & M) - S
                    if v < act_min:
                        v = act_min
                    if v > act_max:
                        v = act_max
                    y[o] = v
                    o += 1
                    k += 1
                j += 1
            i += 1
        b += 1


@micropython.viper
def _prelu(model, arena, ctx):
    # PRELU (ops/elementwise_binary.c): MultiplyByQuantizedMultiplier by one of two multipliers
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    ma = int(ptr8(model))
    aa = int(ptr8(arena))
    x1b = aa
    if c[_C_X + 1] == 1:
        x1b = ma
    x1b += c[_C_X]
    x2b = aa
    if c[_C_X + 8 + 1] == 1:
        x2b = ma
    x2b += c[_C_X + 8]
    y = ptr8(aa + c[_C_X + 16])
    s1c = 0
    acc = 1
    if c[_C_X + 5] != 1:
        s1c = acc
    acc *= c[_C_X + 5]
    s1w = 0
    if c[_C_X + 4] != 1:
        s1w = acc
    acc *= c[_C_X + 4]
    s1h = 0
    if c[_C_X + 3] != 1:
        s1h = acc
    acc *= c[_C_X + 3]
    s1n = 0
    if c[_C_X + 2] != 1:
        s1n = acc
    s2c = 0
    acc = 1
    if c[_C_X + 13] != 1:
        s2c = acc
    acc *= c[_C_X + 13]
    s2w = 0
    if c[_C_X + 12] != 1:
        s2w = acc
    acc *= c[_C_X + 12]
    s2h = 0
    if c[_C_X + 11] != 1:
        s2h = acc
    acc *= c[_C_X + 11]
    s2n = 0
    if c[_C_X + 10] != 1:
        s2n = acc
    dn = c[_C_X + 18]
    dh = c[_C_X + 19]
    dw = c[_C_X + 20]
    dc = c[_C_X + 21]
    in_off = (c[_C_XP] ^ S) - S
    al_off = (c[_C_XP + 1] ^ S) - S
    out_off = (c[_C_XP + 2] ^ S) - S
    mua = c[_C_XP + 3]
    sha = (c[_C_XP + 4] ^ S) - S
    mub = c[_C_XP + 5]
    shb = (c[_C_XP + 6] ^ S) - S
    o = 0
    b = 0
    while b < dn:
        i = 0
        while i < dh:
            j = 0
            while j < dw:
                a1 = ptr8(x1b + b * s1n + i * s1h + j * s1w)
                a2 = ptr8(x2b + b * s2n + i * s2h + j * s2w)
                k = 0
                while k < dc:
                    p = a1[k * s1c]
                    if p > 127:
                        p -= 256
                    v = p + in_off
                    mu = mua
                    sh = sha
                    if v < 0:
                        q = a2[k * s2c]
                        if q > 127:
                            q -= 256
                        v = v * (q + al_off)
                        mu = mub
                        sh = shb
                    rs = 0
                    if sh > 0:
                        v = ((v << sh) + S & M) - S
                    else:
                        rs = 0 - sh
                    ah = v >> 16
                    al = v & 0xFFFF
                    bh = mu >> 16
                    bl = mu & 0xFFFF
                    ll = al * bl
                    m1 = ah * bl
                    m2 = al * bh
                    c1 = ((ll >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
                    v = ((ah * bh + (m1 >> 16) + (m2 >> 16) + (c1 >> 16)) << 1) + (((c1 & 0xFFFF) + 0x4000) >> 15)
                    if rs > 0:
                        mask = (1 << rs) - 1
                        rem = v & mask
                        thr = mask >> 1
                        if v < 0:
                            thr += 1
                        v = v >> rs
                        if rem > thr:
                            v += 1
                    v = ((v + out_off + S) & M) - S
                    if v < -128:
                        v = -128
                    if v > 127:
                        v = 127
                    y[o] = v
                    o += 1
                    k += 1
                j += 1
            i += 1
        b += 1


@micropython.viper
def _div(model, arena, ctx):
    # DIV (ops/elementwise_div.c): TFLM DivElementwise with the packer's reciprocal table
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    NEG = 0 - S
    MAXV = S - 1
    ma = int(ptr8(model))
    aa = int(ptr8(arena))
    ca = int(ptr8(ctx))
    x1b = aa
    if c[_C_X + 1] == 1:
        x1b = ma
    elif c[_C_X + 1] == 3:
        x1b = ca
    x1b += c[_C_X]
    x2b = aa
    if c[_C_X + 8 + 1] == 1:
        x2b = ma
    elif c[_C_X + 8 + 1] == 3:
        x2b = ca
    x2b += c[_C_X + 8]
    tb = ma
    if c[_C_X + 16 + 1] == 3:
        tb = ca
    tab = ptr32(tb + c[_C_X + 16])
    y = ptr8(aa + c[_C_X + 24])
    s1c = 0
    acc = 1
    if c[_C_X + 5] != 1:
        s1c = acc
    acc *= c[_C_X + 5]
    s1w = 0
    if c[_C_X + 4] != 1:
        s1w = acc
    acc *= c[_C_X + 4]
    s1h = 0
    if c[_C_X + 3] != 1:
        s1h = acc
    acc *= c[_C_X + 3]
    s1n = 0
    if c[_C_X + 2] != 1:
        s1n = acc
    s2c = 0
    acc = 1
    if c[_C_X + 13] != 1:
        s2c = acc
    acc *= c[_C_X + 13]
    s2w = 0
    if c[_C_X + 12] != 1:
        s2w = acc
    acc *= c[_C_X + 12]
    s2h = 0
    if c[_C_X + 11] != 1:
        s2h = acc
    acc *= c[_C_X + 11]
    s2n = 0
    if c[_C_X + 10] != 1:
        s2n = acc
    dn = c[_C_X + 26]
    dh = c[_C_X + 27]
    dw = c[_C_X + 28]
    dc = c[_C_X + 29]
    off1 = (c[_C_XP] ^ S) - S
    out_off = (c[_C_XP + 1] ^ S) - S
    mu = c[_C_XP + 2]
    osh = (c[_C_XP + 3] ^ S) - S
    act_min = (c[_C_XP + 4] ^ S) - S
    act_max = (c[_C_XP + 5] ^ S) - S
    o = 0
    b = 0
    while b < dn:
        i = 0
        while i < dh:
            j = 0
            while j < dw:
                a1 = ptr8(x1b + b * s1n + i * s1h + j * s1w)
                a2 = ptr8(x2b + b * s2n + i * s2h + j * s2w)
                k = 0
                while k < dc:
                    q2 = a2[k * s2c]
                    t = tab[256 + q2]
                    n = ((a1[k * s1c] ^ 128) - 128) + off1
                    if t & 1:
                        n = 0 - n
                    u = n
                    if u < 0:
                        u = 0 - u - 1
                    h = 31
                    while u:
                        u >>= 1
                        h -= 1
                    a = ((n << h) + S & M) - S
                    bb = (tab[q2] ^ S) - S
                    st = 0
                    while st < 2:
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
                        a = r
                        bb = mu
                        st += 1
                    e = h + (t >> 1) - 1 - osh
                    if e < 0:
                        e = 0
                    if e > 63:
                        e = 63
                    v = a
                    if e > 31:
                        # gemmlowp RoundingDivideByPOT past 31 as x86 tflite-micro runs it (elementwise_div.c)
                        v = v >> (e - 32)
                        if a >= 0:
                            v += 1
                    elif e > 0:
                        mask = (1 << e) - 1
                        rem = v & mask
                        thr = mask >> 1
                        if v < 0:
                            thr += 1
                        v = v >> e
                        if rem > thr:
                            v += 1
                    v = ((v + out_off + S) & M) - S
                    if v < act_min:
                        v = act_min
                    if v > act_max:
                        v = act_max
                    y[o] = v
                    o += 1
                    k += 1
                j += 1
            i += 1
        b += 1


def run(opc, model, arena, ctx):
    if opc == _OP_LUT or opc == _OP_DEQUANTIZE:
        _lut(model, arena, ctx)
    elif opc == _OP_QUANTIZE:
        _quantize(model, arena, ctx)
    elif opc == _OP_MUL:
        _binary(model, arena, ctx, 0)
    elif opc == _OP_MAXIMUM:
        _binary(model, arena, ctx, 1)
    elif opc == _OP_MINIMUM:
        _binary(model, arena, ctx, 2)
    elif opc == _OP_SUB:
        _arith(model, arena, ctx, 0)
    elif opc == _OP_SQDIFF:
        _arith(model, arena, ctx, 1)
    elif opc == _OP_PRELU:
        _prelu(model, arena, ctx)
    elif opc == _OP_DIV:
        _div(model, arena, ctx)
