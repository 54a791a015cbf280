# mpyml viper kernels of the "shape" op family (data movement): PAD, CONCATENATION, STRIDED_COPY,
# RESIZE_NEAREST, RESIZE_BILINEAR, WRITE_BOX (patch plans). Bit-exact with native_modules/engine/ops/shape_*.c.
#
# check(opcode, ts, n_in, n_out, prm, buf, data) -> check code: plain Python, run once by prepare;
#   mirrors each C <kernel>_check test by test (same order, same code).
# run(opc, model, arena, ctx): viper, allocation-free; operands are decoded by viper_engine._ext into
#   ctx words _C_X + 8*k (+0 offset, +1 storage 0 arena / 1 const (offset into the model) / 2 absent /
#   3 trusted const (offset into the ctx, its copy made at load), +2..+5 n h w c,
#   +6 nbytes, +7 type), params at _C_XP + i, n_in at _C_XNIN.
# Word-size rules as in viper_engine.py: ptr32 loads are zero-extended on 64-bit, so signed params are
# read as (v ^ S) - S with S = 2**31 built at run time (S <<= 31).
import struct

import micropython
from micropython import const

_C_XNIN = const(60)
_C_XP = const(64)
_C_X = const(128)

_OP_PAD = const(25)
_OP_CONCAT = const(26)
_OP_COPY = const(27)
_OP_NEAREST = const(28)
_OP_BILINEAR = const(29)
_OP_BOX = const(30)

_CHK_SHAPE_OUT = const(40)
_CHK_TYPES = const(41)
_CHK_PAD_VALUE = const(42)
_CHK_CONCAT = const(43)
_CHK_BOUNDS = const(44)
_CHK_TABLE = const(45)
_CHK_RANK = const(46)
_CHK_WEIGHT = const(47)
_CHK_COUNT = const(70)
_CHK_BOX = const(94)

_ES = (0, 1, 4, 4, 1, 2, 8)          # element bytes by type code


# ---------------------------------------------------------------- load-time checks (plain Python)

def _dims4(t):
    nd = t[1]
    d = [1, 1, 1, 1]
    for i in range(nd):
        d[4 - nd + i] = t[4 + i]
    return d


def _elems(t):
    n = 1
    for i in range(t[1]):
        n *= t[4 + i]
    return n


def _check_pad(ts, prm):
    x, y = ts[0], ts[1]
    if x[0] != y[0]:
        return _CHK_TYPES
    di, do = _dims4(x), _dims4(y)
    for i in range(4):
        if do[i] != prm[1 + i] + di[i] + prm[5 + i]:
            return _CHK_SHAPE_OUT
    v, ty = prm[0], x[0]
    if ty == 1 and not -128 <= v <= 127:
        return _CHK_PAD_VALUE
    if ty == 4 and not 0 <= v <= 255:
        return _CHK_PAD_VALUE
    if ty == 5 and not -32768 <= v <= 32767:
        return _CHK_PAD_VALUE
    return 0


def _concat_rows(t, y, axis):
    if t[1] == y[1]:
        for i in range(y[1]):
            if i != axis and t[4 + i] != y[4 + i]:
                return 0
        return t[4 + axis]
    if t[1] + 1 == y[1]:
        for i in range(t[1]):
            if t[4 + i] != y[4 + (i if i < axis else i + 1)]:
                return 0
        return 1
    return 0


def _check_concat(ts, n_in, prm):
    y = ts[n_in]
    axis = prm[0] - (4 - y[1])
    if axis < 0:
        return _CHK_CONCAT
    total = 0
    for k in range(n_in):
        t = ts[k]
        if t[0] != y[0]:
            return _CHK_TYPES
        r = _concat_rows(t, y, axis)
        if r == 0:
            return _CHK_CONCAT
        total += r
    if total != y[4 + axis]:
        return _CHK_CONCAT
    return 0


def _check_copy(ts, prm):
    x, y = ts[0], ts[1]
    if x[0] != y[0]:
        return _CHK_TYPES
    d = _dims4(y)
    lo = hi = prm[0]
    for i in range(4):
        reach = (d[i] - 1) * prm[1 + i]
        if reach < 0:
            lo += reach
        else:
            hi += reach
    if lo < 0 or hi >= _elems(x):
        return _CHK_BOUNDS
    return 0


def _check_table(t, buf, data, n, per, lim):
    if _elems(t) != n * per:
        return _CHK_TABLE
    if t[2] != 1:
        return _CHK_TABLE
    base = data + t[8]
    for i in range(n):
        a = struct.unpack_from("<iii" if per == 3 else "<i", buf, base + 4 * per * i)
        if not 0 <= a[0] <= lim - 1:
            return _CHK_TABLE
        if per == 3:
            if not 0 <= a[1] <= lim - 1:
                return _CHK_TABLE
            if not -1024 <= a[2] <= 1024:
                return _CHK_WEIGHT
    return 0


def _check_resize(ts, buf, data, per):
    x, rows, cols, y = ts[0], ts[1], ts[2], ts[3]
    if per == 1 and x[0] != y[0]:
        return _CHK_TYPES
    if x[1] != 4 or y[1] != 4 or x[4] != y[4] or x[7] != y[7]:
        return _CHK_RANK
    r = _check_table(rows, buf, data, y[5], per, x[5])
    if r == 0:
        r = _check_table(cols, buf, data, y[6], per, x[6])
    return r


def _check_box(ts, prm):
    x, y = ts[0], ts[1]
    if x[0] != y[0]:
        return _CHK_TYPES
    di, do = _dims4(x), _dims4(y)
    for i in range(4):
        if prm[i] > do[i] or di[i] > do[i] - prm[i]:
            return _CHK_BOX
    return 0


def check(opcode, ts, n_in, n_out, prm, buf, data):
    if opcode == _OP_PAD:
        return _check_pad(ts, prm)
    if opcode == _OP_CONCAT:
        return _check_concat(ts, n_in, prm)
    if opcode == _OP_COPY:
        return _check_copy(ts, prm)
    if opcode == _OP_NEAREST:
        return _check_resize(ts, buf, data, 1)
    if opcode == _OP_BILINEAR:
        return _check_resize(ts, buf, data, 3)
    if opcode == _OP_BOX:
        return _check_box(ts, prm)
    return _CHK_COUNT


# ---------------------------------------------------------------- kernels (viper, allocation-free)

@micropython.viper
def _esize(ty: int) -> int:
    if ty == 5:
        return 2
    if ty == 2 or ty == 3:
        return 4
    if ty == 6:
        return 8
    return 1


@micropython.viper
def _k_pad(model, arena, ctx):
    c = ptr32(ctx)
    am = int(ptr8(model))
    aa = int(ptr8(arena))
    actx = int(ptr8(ctx))
    x = ptr8(c[_C_X] + (am if c[_C_X + 1] == 1 else (actx if c[_C_X + 1] == 3 else aa)))
    o = ptr8(c[_C_X + 8] + (am if c[_C_X + 9] == 1 else (actx if c[_C_X + 9] == 3 else aa)))
    es = int(_esize(c[_C_X + 7]))
    raw = c[_C_XP]
    b0 = raw & 0xFF
    b1 = (raw >> 8) & 0xFF
    b2 = (raw >> 16) & 0xFF
    b3 = (raw >> 24) & 0xFF
    bn = c[_C_XP + 1]
    bh = c[_C_XP + 2]
    bw = c[_C_XP + 3]
    bc = c[_C_XP + 4]
    ac = c[_C_XP + 8]
    dn = c[_C_X + 2]
    dh = c[_C_X + 3]
    dw = c[_C_X + 4]
    dc = c[_C_X + 5]
    on = c[_C_X + 8 + 2]
    oh = c[_C_X + 8 + 3]
    ow = c[_C_X + 8 + 4]
    oc = c[_C_X + 8 + 5]
    rowb = dc * es
    pos = 0
    n = 0
    while n < on:
        nin = n >= bn and n < bn + dn
        h = 0
        while h < oh:
            hin = nin and h >= bh and h < bh + dh
            w = 0
            while w < ow:
                cnt = oc
                copy = 0
                if hin and w >= bw and w < bw + dw:
                    cnt = bc
                    copy = 1
                # cnt pad elements, then (copy) the input row and ac pad elements
                while True:
                    e = 0
                    while e < cnt:
                        o[pos] = b0
                        if es > 1:
                            o[pos + 1] = b1
                            if es > 2:
                                o[pos + 2] = b2
                                o[pos + 3] = b3
                        pos += es
                        e += 1
                    if copy == 0:
                        break
                    src = (((n - bn) * dh + (h - bh)) * dw + (w - bw)) * rowb
                    k = 0
                    while k < rowb:
                        o[pos] = x[src + k]
                        pos += 1
                        k += 1
                    cnt = ac
                    copy = 0
                w += 1
            h += 1
        n += 1


@micropython.viper
def _k_concat(model, arena, ctx):
    # axis4 is the axis in the output's 4-D view; the ctx has dims, not ranks, so every input's
    # bytes per outer step are found as nbytes / outer by counting (check() proved
    # nbytes = outer * rows * inner; the count costs no more than the copy).
    c = ptr32(ctx)
    am = int(ptr8(model))
    aa = int(ptr8(arena))
    actx = int(ptr8(ctx))
    n_in = c[_C_XNIN]
    yb = _C_X + 8 * n_in
    o = ptr8(c[yb] + aa)
    ax4 = c[_C_XP]
    outer = 1
    i = 0
    while i < ax4:
        outer *= c[yb + 2 + i]
        i += 1
    pos = 0
    b = 0
    while b < outer:
        k = 0
        while k < n_in:
            nb = c[_C_X + 8 * k + 6]
            chunk = 0
            acc = 0
            while acc < nb:
                acc += outer
                chunk += 1
            kb = _C_X + 8 * k
            src = ptr8(c[kb] + (am if c[kb + 1] == 1 else (actx if c[kb + 1] == 3 else aa)) + b * chunk)
            j = 0
            while j < chunk:
                o[pos] = src[j]
                pos += 1
                j += 1
            k += 1
        b += 1


@micropython.viper
def _k_copy(model, arena, ctx):
    c = ptr32(ctx)
    am = int(ptr8(model))
    aa = int(ptr8(arena))
    actx = int(ptr8(ctx))
    src = c[_C_X] + (am if c[_C_X + 1] == 1 else (actx if c[_C_X + 1] == 3 else aa))
    dst = c[_C_X + 8] + aa
    S = 1
    S <<= 31
    es = int(_esize(c[_C_X + 8 + 7]))
    start = (c[_C_XP] ^ S) - S
    s0 = (c[_C_XP + 1] ^ S) - S
    s1 = (c[_C_XP + 2] ^ S) - S
    s2 = (c[_C_XP + 3] ^ S) - S
    s3 = (c[_C_XP + 4] ^ S) - S
    d0 = c[_C_X + 8 + 2]
    d1 = c[_C_X + 8 + 3]
    d2 = c[_C_X + 8 + 4]
    d3 = c[_C_X + 8 + 5]
    u = 1
    if es == 8:
        u = 2
        start += start
        s0 += s0
        s1 += s1
        s2 += s2
        s3 += s3
    p8 = ptr8(src)
    q8 = ptr8(dst)
    p16 = ptr16(src)
    q16 = ptr16(dst)
    p32 = ptr32(src)
    q32 = ptr32(dst)
    pos = 0
    n = 0
    while n < d0:
        i_n = start + n * s0
        h = 0
        while h < d1:
            i_h = i_n + h * s1
            w = 0
            while w < d2:
                i_w = i_h + w * s2
                ch = 0
                while ch < d3:
                    e = i_w + ch * s3
                    if es == 1:
                        q8[pos] = p8[e]
                    elif es == 2:
                        q16[pos] = p16[e]
                    else:
                        q32[pos] = p32[e]
                        if u == 2:
                            pos += 1
                            q32[pos] = p32[e + 1]
                    pos += 1
                    ch += 1
                w += 1
            h += 1
        n += 1


@micropython.viper
def _k_nearest(model, arena, ctx):
    c = ptr32(ctx)
    am = int(ptr8(model))
    aa = int(ptr8(arena))
    actx = int(ptr8(ctx))
    x = ptr8(c[_C_X] + (am if c[_C_X + 1] == 1 else (actx if c[_C_X + 1] == 3 else aa)))
    rows = ptr32(c[_C_X + 8] + (am if c[_C_X + 9] == 1 else (actx if c[_C_X + 9] == 3 else aa)))
    cols = ptr32(c[_C_X + 16] + (am if c[_C_X + 17] == 1 else (actx if c[_C_X + 17] == 3 else aa)))
    o = ptr8(c[_C_X + 24] + (am if c[_C_X + 25] == 1 else (actx if c[_C_X + 25] == 3 else aa)))
    es = int(_esize(c[_C_X + 7]))
    H = c[_C_X + 3]
    W = c[_C_X + 4]
    pix = c[_C_X + 5] * es
    yb = _C_X + 24
    on = c[yb + 2]
    oh = c[yb + 3]
    ow = c[yb + 4]
    pos = 0
    n = 0
    while n < on:
        oy = 0
        while oy < oh:
            line = (n * H + rows[oy]) * W * pix
            ox = 0
            while ox < ow:
                src = line + cols[ox] * pix
                k = 0
                while k < pix:
                    o[pos] = x[src + k]
                    pos += 1
                    k += 1
                ox += 1
            oy += 1
        n += 1


@micropython.viper
def _k_bilinear(model, arena, ctx):
    c = ptr32(ctx)
    am = int(ptr8(model))
    aa = int(ptr8(arena))
    actx = int(ptr8(ctx))
    x = ptr8(c[_C_X] + (am if c[_C_X + 1] == 1 else (actx if c[_C_X + 1] == 3 else aa)))
    rows = ptr32(c[_C_X + 8] + (am if c[_C_X + 9] == 1 else (actx if c[_C_X + 9] == 3 else aa)))
    cols = ptr32(c[_C_X + 16] + (am if c[_C_X + 17] == 1 else (actx if c[_C_X + 17] == 3 else aa)))
    o = ptr8(c[_C_X + 24] + (am if c[_C_X + 25] == 1 else (actx if c[_C_X + 25] == 3 else aa)))
    S = 1
    S <<= 31
    H = c[_C_X + 3]
    W = c[_C_X + 4]
    C = c[_C_X + 5]
    yb = _C_X + 24
    on = c[yb + 2]
    oh = c[yb + 3]
    ow = c[yb + 4]
    R = 1 << 19
    pos = 0
    n = 0
    while n < on:
        oy = 0
        while oy < oh:
            l0 = (n * H + rows[3 * oy]) * W * C
            l1 = (n * H + rows[3 * oy + 1]) * W * C
            wy = (rows[3 * oy + 2] ^ S) - S
            ox = 0
            while ox < ow:
                x0 = cols[3 * ox] * C
                x1 = cols[3 * ox + 1] * C
                wx = (cols[3 * ox + 2] ^ S) - S
                w00 = (1024 - wy) * (1024 - wx)
                w10 = wy * (1024 - wx)
                w01 = (1024 - wy) * wx
                w11 = wy * wx
                ch = 0
                while ch < C:
                    a = (((x[l0 + x0 + ch] ^ 128) - 128) * w00 + ((x[l1 + x0 + ch] ^ 128) - 128) * w10
                         + ((x[l0 + x1 + ch] ^ 128) - 128) * w01 + ((x[l1 + x1 + ch] ^ 128) - 128) * w11)
                    if a > 0:
                        q = (a + R) >> 20
                    else:
                        q = 0 - ((R - a) >> 20)
                    o[pos] = q & 0xFF
                    pos += 1
                    ch += 1
                ox += 1
            oy += 1
        n += 1


@micropython.viper
def _k_box(model, arena, ctx):
    # out[n+o0, h+o1, w+o2, c+o3] = in[n,h,w,c]: runs of C*es bytes (both operands in the arena)
    c = ptr32(ctx)
    aa = int(ptr8(arena))
    x = ptr8(c[_C_X] + aa)
    o = ptr8(c[_C_X + 8] + aa)
    es = int(_esize(c[_C_X + 7]))
    o0 = c[_C_XP]
    o1 = c[_C_XP + 1]
    o2 = c[_C_XP + 2]
    o3 = c[_C_XP + 3]
    dn = c[_C_X + 2]
    dh = c[_C_X + 3]
    dw = c[_C_X + 4]
    rowb = c[_C_X + 5] * es
    OH = c[_C_X + 8 + 3]
    OW = c[_C_X + 8 + 4]
    OC = c[_C_X + 8 + 5]
    ostep = OC * es
    src = 0
    n = 0
    while n < dn:
        h = 0
        while h < dh:
            dst = ((((n + o0) * OH + h + o1) * OW + o2) * OC + o3) * es
            w = 0
            while w < dw:
                k = 0
                while k < rowb:
                    o[dst + k] = x[src + k]
                    k += 1
                src += rowb
                dst += ostep
                w += 1
            h += 1
        n += 1


@micropython.viper
def run(opc: int, model, arena, ctx):
    if opc == _OP_PAD:
        _k_pad(model, arena, ctx)
    elif opc == _OP_CONCAT:
        _k_concat(model, arena, ctx)
    elif opc == _OP_COPY:
        _k_copy(model, arena, ctx)
    elif opc == _OP_NEAREST:
        _k_nearest(model, arena, ctx)
    elif opc == _OP_BILINEAR:
        _k_bilinear(model, arena, ctx)
    elif opc == _OP_BOX:
        _k_box(model, arena, ctx)
