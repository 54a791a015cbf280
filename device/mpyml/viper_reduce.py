# mpyml viper kernels of the reduce family (ops 41..46: MEAN, SUM, REDUCE_MAX, ARG_MAX,
# TRANSPOSE_CONV, BATCH_MATMUL), bit-exact with native_modules/engine/ops/reduce.c, transpose_conv.c
# and batch_matmul.c.
#
# check(opcode, ts, n_in, n_out, prm, buf, data) -> 0 or the same check code as the C *_check
# (plain Python, runs once at load); run(opc, model, arena, ctx) runs one op from the operand words
# viper_engine._ext wrote into ctx (operand k at _C_X + 8 * k: +0 byte offset, +1 storage 0 arena /
# 1 const (offset into the model) / 2 absent / 3 trusted const (offset into the ctx), +2..+5 dims
# n h w c, +6 nbytes, +7 type code; params at _C_XP + i).
# Word-size rules as in viper_engine.py: no literal >= 2**30, S = 2**31 built at run time, ptr32
# loads sign-corrected with (v ^ S) - S, wrapping adds re-wrapped with ((v + S) & M) - S.
import struct

import micropython
from micropython import const

_C_XP = const(64)
_C_X = const(128)

_OP_MEAN = const(41)
_OP_SUM = const(42)
_OP_REDUCE_MAX = const(43)
_OP_ARG_MAX = const(44)
_OP_TRANSPOSE_CONV = const(45)
_OP_BATCH_MATMUL = const(46)

_CHK_RED_SHAPE = const(50)
_CHK_RED_COUNT = const(51)
_CHK_ARG_SHAPE = const(52)
_CHK_TC_RANK = const(53)
_CHK_TC_SHAPE = const(54)
_CHK_TC_BIAS = const(55)
_CHK_TC_REQUANT = const(56)
_CHK_TC_ACT = const(57)
_CHK_BMM_SHAPE = const(95)
_CHK_BMM_DEPTH = const(96)

_RED_MAX_COUNT = const(1 << 23)


# ---------------------------------------------------------------- check (mirrors the C *_check)

def _elems(t):
    n = 1
    for i in range(t[1]):
        n *= t[4 + i]
    return n


def _dims4(t):
    nd = t[1]
    d = [1, 1, 1, 1]
    for i in range(nd):
        d[4 - nd + i] = t[4 + i]
    return d


def _check_reduce(ts, mask):
    d = _dims4(ts[0])
    kept = 1
    count = 1
    for i in range(4):
        if (mask >> i) & 1:
            count *= d[i]
        else:
            kept *= d[i]
    if kept != _elems(ts[1]):
        return _CHK_RED_SHAPE
    if count > _RED_MAX_COUNT:
        return _CHK_RED_COUNT
    return 0


def _check_tconv(ts, prm, buf, data):
    x, f, b, m, s, y = ts[0], ts[1], ts[2], ts[3], ts[4], ts[5]
    if x[1] != 4 or f[1] != 4 or y[1] != 4:
        return _CHK_TC_RANK
    if x[4] != y[4] or f[7] != x[7] or f[4] != y[7]:
        return _CHK_TC_SHAPE
    o = f[4]
    if b is not None and _elems(b) != o:
        return _CHK_TC_BIAS
    if _elems(m) != o or _elems(s) != o:
        return _CHK_TC_REQUANT
    mo = data + m[8]
    so = data + s[8]
    for i in range(o):
        if struct.unpack_from("<i", buf, mo + 4 * i)[0] < 0:
            return _CHK_TC_REQUANT
        sv = struct.unpack_from("<i", buf, so + 4 * i)[0]
        if sv < -31 or sv > 30:
            return _CHK_TC_REQUANT
    if prm[6] > prm[7]:
        return _CHK_TC_ACT
    return 0


def check(opcode, ts, n_in, n_out, prm, buf, data):
    if opcode == _OP_MEAN or opcode == _OP_SUM or opcode == _OP_REDUCE_MAX:
        return _check_reduce(ts, prm[0])
    if opcode == _OP_ARG_MAX:
        d = _dims4(ts[0])
        kept = 1
        for i in range(4):
            if i != prm[0]:
                kept *= d[i]
        return 0 if kept == _elems(ts[1]) else _CHK_ARG_SHAPE
    if opcode == _OP_TRANSPOSE_CONV:
        return _check_tconv(ts, prm, buf, data)
    if opcode == _OP_BATCH_MATMUL:
        return _check_bmm(ts, prm)
    return 70


def _check_bmm(ts, prm):
    # mirrors mpyml_batch_matmul_check (batch_matmul.c)
    lt, rt, yt = ts[0], ts[1], ts[2]
    if lt[1] < 2 or rt[1] < 2 or yt[1] != max(lt[1], rt[1]):
        return _CHK_BMM_SHAPE
    dl, dr, dy = _dims4(lt), _dims4(rt), _dims4(yt)
    for i in range(2):
        if (dl[i] != dy[i] and dl[i] != 1) or (dr[i] != dy[i] and dr[i] != 1):
            return _CHK_BMM_SHAPE
        if dy[i] != max(dl[i], dr[i]):
            return _CHK_BMM_SHAPE
    m, k = (dl[3], dl[2]) if prm[0] else (dl[2], dl[3])
    kr, n = (dr[3], dr[2]) if prm[1] else (dr[2], dr[3])
    if k != kr or dy[2] != m or dy[3] != n:
        return _CHK_BMM_SHAPE
    if k > 32768:
        return _CHK_BMM_DEPTH
    return 0


# ---------------------------------------------------------------- kernels

@micropython.viper
def _reduce(model, arena, ctx, opc: int):
    # MEAN / SUM / REDUCE_MAX (reduce.c reduce_run): per output element (kept dims, row-major) the
    # sum or max of its reduced elements, then the epilogue of the op
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    mask = c[_C_XP]
    kind = 1                            # 1 requantize (MEAN, SUM), 2 max
    in_zp = 0
    out_zp = 0
    mult = 0
    sh = 0
    if opc == _OP_MEAN or opc == _OP_SUM:
        in_zp = (c[_C_XP + 1] ^ S) - S
        out_zp = (c[_C_XP + 2] ^ S) - S
        mult = c[_C_XP + 3]
        sh = (c[_C_XP + 4] ^ S) - S
    else:
        kind = 2
    left = 0
    right = 0
    if sh > 0:
        left = sh
    else:
        right = 0 - sh
    xb = int(ptr8(arena)) + c[_C_X]
    if c[_C_X + 1] == 1:
        xb = int(ptr8(model)) + c[_C_X]
    elif c[_C_X + 1] == 3:
        xb = int(ptr8(ctx)) + c[_C_X]
    y = ptr8(int(ptr8(arena)) + c[_C_X + 8])
    d0 = c[_C_X + 2]
    d1 = c[_C_X + 3]
    d2 = c[_C_X + 4]
    d3 = c[_C_X + 5]
    s2 = d3
    s1 = d2 * d3
    s0 = d1 * s1
    k0 = d0
    k1 = d1
    k2 = d2
    k3 = d3
    r0 = 1
    r1 = 1
    r2 = 1
    r3 = 1
    if mask & 1:
        k0 = 1
        r0 = d0
    if mask & 2:
        k1 = 1
        r1 = d1
    if mask & 4:
        k2 = 1
        r2 = d2
    if mask & 8:
        k3 = 1
        r3 = d3
    count = r0 * r1 * r2 * r3
    pos = 0
    a0 = 0
    while a0 < k0:
        a1 = 0
        while a1 < k1:
            a2 = 0
            while a2 < k2:
                a3 = 0
                while a3 < k3:
                    base = xb + a0 * s0 + a1 * s1 + a2 * s2 + a3
                    acc = 0
                    if kind == 2:
                        acc = -128
                    b0 = 0
                    while b0 < r0:
                        b1 = 0
                        while b1 < r1:
                            b2 = 0
                            while b2 < r2:
                                x = ptr8(base + b0 * s0 + b1 * s1 + b2 * s2)
                                b3 = 0
                                if kind == 2:
                                    while b3 < r3:
                                        v = (x[b3] ^ 128) - 128
                                        if v > acc:
                                            acc = v
                                        b3 += 1
                                else:
                                    while b3 < r3:
                                        acc += (x[b3] ^ 128) - 128
                                        b3 += 1
                                b2 += 1
                            b1 += 1
                        b0 += 1
                    r = acc
                    if kind == 1:
                        a = ((((acc - in_zp * count) << left) + S) & M) - S
                        ah = a >> 16
                        al = a & 0xFFFF
                        bh = mult >> 16
                        bl = mult & 0xFFFF
                        ll = al * bl
                        m1 = ah * bl
                        m2 = al * bh
                        cc = ((ll >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
                        r = ((ah * bh + (m1 >> 16) + (m2 >> 16) + (cc >> 16)) << 1) + (((cc & 0xFFFF) + 0x4000) >> 15)
                        if right > 0:
                            msk = (1 << right) - 1
                            rem = r & msk
                            thr = msk >> 1
                            if r < 0:
                                thr += 1
                            r = r >> right
                            if rem > thr:
                                r += 1
                        r = ((r + out_zp + S) & M) - S
                        if r < -128:
                            r = -128
                        if r > 127:
                            r = 127
                    y[pos] = r
                    pos += 1
                    a3 += 1
                a2 += 1
            a1 += 1
        a0 += 1


@micropython.viper
def _arg_max(model, arena, ctx):
    # ARG_MAX (reduce.c): first index of the max along the axis; int32 or int64 (two words) output
    c = ptr32(ctx)
    axis = c[_C_XP]
    xb = int(ptr8(arena)) + c[_C_X]
    if c[_C_X + 1] == 1:
        xb = int(ptr8(model)) + c[_C_X]
    elif c[_C_X + 1] == 3:
        xb = int(ptr8(ctx)) + c[_C_X]
    y = ptr32(int(ptr8(arena)) + c[_C_X + 8])
    wide = 0
    if c[_C_X + 15] == 6:
        wide = 1
    outer = 1
    inner = 1
    i = 0
    while i < 4:
        if i < axis:
            outer *= c[_C_X + 2 + i]
        elif i > axis:
            inner *= c[_C_X + 2 + i]
        i += 1
    n = c[_C_X + 2 + axis]
    pos = 0
    o = 0
    while o < outer:
        j = 0
        while j < inner:
            x = ptr8(xb + o * n * inner + j)
            best = (x[0] ^ 128) - 128
            idx = 0
            k = 1
            while k < n:
                v = (x[k * inner] ^ 128) - 128
                if v > best:
                    best = v
                    idx = k
                k += 1
            y[pos] = idx
            pos += 1
            if wide:
                y[pos] = 0
                pos += 1
            j += 1
        o += 1


@micropython.viper
def _tconv(model, arena, ctx):
    # TRANSPOSE_CONV (transpose_conv.c): gather form, int32 sums identical to TFLM's scatter
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    mb = int(ptr8(model))
    ab = int(ptr8(arena))
    cb = int(ptr8(ctx))
    # base address of each operand by its storage word: 0 arena, 1 model, 3 ctx (trusted copy)
    xb = ab + c[_C_X]
    if c[_C_X + 1] == 1:
        xb = mb + c[_C_X]
    elif c[_C_X + 1] == 3:
        xb = cb + c[_C_X]
    fb = mb + c[_C_X + 8]
    if c[_C_X + 9] == 3:
        fb = cb + c[_C_X + 8]
    has_bias = 0
    if c[_C_X + 17] != 2:
        has_bias = 1
    bb = mb + c[_C_X + 16]
    if c[_C_X + 17] == 3:
        bb = cb + c[_C_X + 16]
    bias = ptr32(bb)
    mbase = mb + c[_C_X + 24]
    if c[_C_X + 25] == 3:
        mbase = cb + c[_C_X + 24]
    mults = ptr32(mbase)
    sbase = mb + c[_C_X + 32]
    if c[_C_X + 33] == 3:
        sbase = cb + c[_C_X + 32]
    shifts = ptr32(sbase)
    y = ptr8(ab + c[_C_X + 40])
    ih = c[_C_X + 3]
    iw = c[_C_X + 4]
    ic = c[_C_X + 5]
    kh = c[_C_X + 8 + 3]
    kw = c[_C_X + 8 + 4]
    nb = c[_C_X + 40 + 2]
    oh = c[_C_X + 40 + 3]
    ow = c[_C_X + 40 + 4]
    oc = c[_C_X + 40 + 5]
    sw = c[_C_XP]
    sh = c[_C_XP + 1]
    in_off = (c[_C_XP + 4] ^ S) - S
    out_off = (c[_C_XP + 5] ^ S) - S
    act_min = (c[_C_XP + 6] ^ S) - S
    act_max = (c[_C_XP + 7] ^ S) - S
    qy0 = 0
    ry0 = c[_C_XP + 3]
    while ry0 >= sh:
        ry0 -= sh
        qy0 += 1
    qx0 = 0
    rx0 = c[_C_XP + 2]
    while rx0 >= sw:
        rx0 -= sw
        qx0 += 1
    pos = 0
    bi = 0
    while bi < nb:
        xn = xb + bi * ih * iw * ic
        qy = qy0
        ry = ry0
        oy = 0
        while oy < oh:
            qx = qx0
            rx = rx0
            ox = 0
            while ox < ow:
                o = 0
                while o < oc:
                    fo = fb + o * kh * kw * ic
                    acc = 0
                    ky = ry
                    iy = qy
                    while ky < kh and iy >= 0:
                        if iy < ih:
                            kx = rx
                            ix = qx
                            while kx < kw and ix >= 0:
                                if ix < iw:
                                    xp = ptr8(xn + (iy * iw + ix) * ic)
                                    fp = ptr8(fo + (ky * kw + kx) * ic)
                                    k = 0
                                    while k < ic:
                                        acc += (((xp[k] ^ 128) - 128) + in_off) * ((fp[k] ^ 128) - 128)
                                        k += 1
                                    acc = ((acc + S) & M) - S
                                kx += sw
                                ix -= 1
                        ky += sh
                        iy -= 1
                    if has_bias:
                        acc = ((acc + ((bias[o] ^ S) - S) + S) & M) - S
                    mu = mults[o]
                    shf = (shifts[o] ^ S) - S
                    left = 0
                    right = 0
                    if shf > 0:
                        left = shf
                    else:
                        right = 0 - shf
                    a = ((acc << left) + S & M) - S
                    ah = a >> 16
                    al = a & 0xFFFF
                    bh = mu >> 16
                    bl = mu & 0xFFFF
                    ll = al * bl
                    m1 = ah * bl
                    m2 = al * bh
                    cc = ((ll >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
                    r = ((ah * bh + (m1 >> 16) + (m2 >> 16) + (cc >> 16)) << 1) + (((cc & 0xFFFF) + 0x4000) >> 15)
                    if right > 0:
                        msk = (1 << right) - 1
                        rem = r & msk
                        thr = msk >> 1
                        if r < 0:
                            thr += 1
                        r = r >> right
                        if rem > thr:
                            r += 1
                    r = ((r + out_off + S) & M) - S
                    if r < act_min:
                        r = act_min
                    if r > act_max:
                        r = act_max
                    y[pos] = r
                    pos += 1
                    o += 1
                rx += 1
                if rx == sw:
                    rx = 0
                    qx += 1
                ox += 1
            ry += 1
            if ry == sh:
                ry = 0
                qy += 1
            oy += 1
        bi += 1


@micropython.viper
def _bmm(model, arena, ctx):
    # BATCH_MATMUL (batch_matmul.c): strided walk of both operands (adj_x / adj_y, broadcast batch dims),
    # int32 sums, requantized as mpyml_requant with act -128..127
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    mb = int(ptr8(model))
    ab = int(ptr8(arena))
    cb = int(ptr8(ctx))
    lb = ab + c[_C_X]
    if c[_C_X + 1] == 1:
        lb = mb + c[_C_X]
    elif c[_C_X + 1] == 3:
        lb = cb + c[_C_X]
    rb = ab + c[_C_X + 8]
    if c[_C_X + 9] == 1:
        rb = mb + c[_C_X + 8]
    elif c[_C_X + 9] == 3:
        rb = cb + c[_C_X + 8]
    y = ptr8(ab + c[_C_X + 16])
    adj_x = c[_C_XP]
    adj_y = c[_C_XP + 1]
    lo = (c[_C_XP + 2] ^ S) - S
    ro = (c[_C_XP + 3] ^ S) - S
    out_off = (c[_C_XP + 4] ^ S) - S
    mu = c[_C_XP + 5]
    shf = (c[_C_XP + 6] ^ S) - S
    left = 0
    right = 0
    if shf > 0:
        left = shf
    else:
        right = 0 - shf
    m = c[_C_X + 16 + 4]
    n = c[_C_X + 16 + 5]
    k = c[_C_X + 5]
    l_i = k
    l_k = 1
    if adj_x:
        k = c[_C_X + 4]
        l_i = 1
        l_k = m
    r_k = n
    r_j = 1
    if adj_y:
        r_k = 1
        r_j = k
    l_b1 = m * k
    if c[_C_X + 3] == 1:
        l_b1 = 0
    l_b0 = c[_C_X + 3] * m * k
    if c[_C_X + 2] == 1:
        l_b0 = 0
    r_b1 = k * n
    if c[_C_X + 8 + 3] == 1:
        r_b1 = 0
    r_b0 = c[_C_X + 8 + 3] * k * n
    if c[_C_X + 8 + 2] == 1:
        r_b0 = 0
    nb0 = c[_C_X + 16 + 2]
    nb1 = c[_C_X + 16 + 3]
    pos = 0
    b0 = 0
    while b0 < nb0:
        b1 = 0
        while b1 < nb1:
            lm = lb + b0 * l_b0 + b1 * l_b1
            rm = rb + b0 * r_b0 + b1 * r_b1
            i = 0
            while i < m:
                j = 0
                while j < n:
                    pa = ptr8(lm + i * l_i)
                    pb = ptr8(rm + j * r_j)
                    ia = 0
                    ib = 0
                    acc = 0
                    kk = 0
                    while kk < k:
                        acc += (((pa[ia] ^ 128) - 128) + lo) * (((pb[ib] ^ 128) - 128) + ro)
                        ia += l_k
                        ib += r_k
                        kk += 1
                    a = ((acc << left) + S & M) - S
                    ah = a >> 16
                    al = a & 0xFFFF
                    bh = mu >> 16
                    bl = mu & 0xFFFF
                    ll = al * bl
                    m1 = ah * bl
                    m2 = al * bh
                    cc = ((ll >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
                    r = ((ah * bh + (m1 >> 16) + (m2 >> 16) + (cc >> 16)) << 1) + (((cc & 0xFFFF) + 0x4000) >> 15)
                    if right > 0:
                        msk = (1 << right) - 1
                        rem = r & msk
                        thr = msk >> 1
                        if r < 0:
                            thr += 1
                        r = r >> right
                        if rem > thr:
                            r += 1
                    r = ((r + out_off + S) & M) - S
                    if r < -128:
                        r = -128
                    if r > 127:
                        r = 127
                    y[pos] = r
                    pos += 1
                    j += 1
                i += 1
            b1 += 1
        b0 += 1


def run(opc, model, arena, ctx):
    if opc == _OP_TRANSPOSE_CONV:
        _tconv(model, arena, ctx)
    elif opc == _OP_BATCH_MATMUL:
        _bmm(model, arena, ctx)
    elif opc == _OP_ARG_MAX:
        _arg_max(model, arena, ctx)
    else:
        _reduce(model, arena, ctx, opc)
