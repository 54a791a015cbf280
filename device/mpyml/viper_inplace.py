# mpyml viper kernels of the inplace family (ops 65..66: DEPTHWISE_CONV_2D_INPLACE, CONV_2D_INPLACE), bit-exact
# with native_modules/engine/ops/depthwise_inplace.c and conv2d_inplace.c (the same schedules: depthwise channel
# plane by plane through the scratch; conv output rows in order, each from its window of input rows in the scratch).
#
# check(opcode, ts, n_in, n_out, prm, buf, data) -> 0 or the same check code as the C *_check (plain Python,
# once at load; mirrors ops/inplace_common.h ip_check_conv check by check); run(opc, model, arena, ctx) runs one
# op from the operand words viper_engine._ext wrote into ctx (operand k at _C_X + 8 * k: +0 byte offset,
# +1 storage 0 arena / 1 const (offset into the model) / 2 absent / 3 trusted const (offset into the ctx),
# +2..+5 dims n h w c, +6 nbytes, +7 type code; params at _C_XP + i).
# Operands: 0 input, 1 filter, 2 bias (optional), 3 mult, 4 shift, 5 scratch -> 6 output.
# Word-size rules as in viper_engine.py: no literal >= 2**30, S = 2**31 built at run time, ptr32 loads
# sign-corrected with (v ^ S) - S, wrapping adds re-wrapped with ((v + S) & M) - S.
import struct

import micropython
from micropython import const

_C_XP = const(64)
_C_X = const(128)

_OP_DW = const(65)
_OP_CONV = const(66)

_CHK_RANK = const(3)
_CHK_FILTER = const(4)
_CHK_BATCH = const(5)
_CHK_SHAPE = const(6)
_CHK_DEPTH = const(7)
_CHK_BIAS = const(8)
_CHK_REQUANT = const(9)
_CHK_DILATION = const(11)
_CHK_ACTIVATION = const(14)
_CHK_IP_SCRATCH = const(88)
_CHK_IP_ROWS = const(89)


# ---------------------------------------------------------------- check (mirrors the C *_check)

def _elems(t):
    n = 1
    for i in range(t[1]):
        n *= t[4 + i]
    return n


def _overlaps(a, b):
    return a[8] < b[8] + b[9] and b[8] < a[8] + a[9]


def _check_conv(ts, prm, buf, data, depthwise):
    x, f, b, m, s, sc, y = ts[0], ts[1], ts[2], ts[3], ts[4], ts[5], ts[6]
    if x[1] != 4 or y[1] != 4:
        return _CHK_RANK
    if f[1] != 4 or f[10] != 0:
        return _CHK_FILTER
    if prm[8] > prm[9]:
        return _CHK_ACTIVATION
    o = y[7]
    if x[4] != y[4]:
        return _CHK_BATCH
    if prm[3] * x[6] * x[7] > 0x7FFFFFFF:
        return _CHK_DILATION
    if depthwise:
        if f[4] != 1 or f[7] != o or x[7] != o:
            return _CHK_SHAPE
        if f[5] * f[6] > 65536:
            return _CHK_DEPTH
    else:
        if f[4] != o or f[7] != x[7]:
            return _CHK_SHAPE
        if f[5] * f[6] * f[7] > 65536:
            return _CHK_DEPTH
    if b is not None and _elems(b) != o:
        return _CHK_BIAS
    if _elems(m) != o or _elems(s) != o:
        return _CHK_REQUANT
    mo = data + m[8]
    so = data + s[8]
    for i in range(o):
        if struct.unpack_from("<i", buf, mo + 4 * i)[0] < 0:
            return _CHK_REQUANT
        sv = struct.unpack_from("<i", buf, so + 4 * i)[0]
        if sv < -31 or sv > 30:
            return _CHK_REQUANT
    if _overlaps(sc, x) or _overlaps(sc, y):
        return _CHK_IP_SCRATCH
    return 0


def check(opcode, ts, n_in, n_out, prm, buf, data):
    if opcode == _OP_DW:
        bad = _check_conv(ts, prm, buf, data, True)
        if bad:
            return bad
        x = ts[0]
        return _CHK_IP_SCRATCH if ts[5][9] < x[5] * x[6] + ts[1][5] * ts[1][6] else 0
    if opcode == _OP_CONV:
        bad = _check_conv(ts, prm, buf, data, False)
        if bad:
            return bad
        x, y = ts[0], ts[6]
        ih, ri = x[5], x[6] * x[7]
        ro = y[6] * y[7]
        rows = prm[11]
        if rows * ri > ts[5][9]:
            return _CHK_IP_SCRATCH
        taps = (ts[1][5] - 1) * prm[3] + 1
        sv = 0
        for oy in range(y[5]):      # the kernel's schedule (conv2d_inplace.c ip_window)
            lo = oy * prm[1] - prm[5]
            end = (oy + 1) * ro
            while sv < ih and sv * ri < end:
                sv += 1
            a = lo if lo > 0 else 0
            b = lo + taps if lo + taps > sv else sv
            if b > ih:
                b = ih
            if b < a:
                b = a
            if b - a > rows:
                return _CHK_IP_ROWS
        return 0
    return 70


# ---------------------------------------------------------------- kernels

@micropython.viper
def _dw(model, arena, ctx):
    # DEPTHWISE_CONV_2D_INPLACE (depthwise_inplace.c): per (batch, channel), the input plane and the channel's
    # filter taps to the scratch, then that output channel from it
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    mb = int(ptr8(model))
    ab = int(ptr8(arena))
    cb = int(ptr8(ctx))
    # base address of each const operand by its storage word: 1 model, 3 ctx (trusted copy)
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
    out_off = (c[_C_XP + 7] ^ S) - S
    act_min = (c[_C_XP + 8] ^ S) - S
    act_max = (c[_C_XP + 9] ^ S) - S
    xb0 = ab + c[_C_X]
    sc = ptr8(ab + c[_C_X + 40])
    yb0 = ab + c[_C_X + 48]
    ih = c[_C_X + 3]
    iw = c[_C_X + 4]
    kh = c[_C_X + 8 + 3]
    kw = c[_C_X + 8 + 4]
    nb = c[_C_X + 48 + 2]
    oh = c[_C_X + 48 + 3]
    ow = c[_C_X + 48 + 4]
    ch = c[_C_X + 48 + 5]
    sw = c[_C_XP]
    sh = c[_C_XP + 1]
    dw = c[_C_XP + 2]
    dh = c[_C_XP + 3]
    pw = c[_C_XP + 4]
    ph = c[_C_XP + 5]
    off = (c[_C_XP + 6] ^ S) - S
    f = ptr8(fb)
    bi = 0
    while bi < nb:
        xb = ptr8(xb0 + bi * ih * iw * ch)
        yb = ptr8(yb0 + bi * oh * ow * ch)
        k = 0
        while k < ch:
            i = 0
            while i < ih * iw:
                sc[i] = xb[i * ch + k]
                i += 1
            fo = ih * iw                    # the channel's taps after the plane (as the C kernel)
            i = 0
            while i < kh * kw:
                sc[fo + i] = f[i * ch + k]
                i += 1
            oy = 0
            while oy < oh:
                iy0 = oy * sh - ph
                ox = 0
                while ox < ow:
                    ix0 = ox * sw - pw
                    acc = 0
                    fy = 0
                    while fy < kh:
                        iy = iy0 + dh * fy
                        if iy >= 0 and iy < ih:
                            fx = 0
                            while fx < kw:
                                ix = ix0 + dw * fx
                                if ix >= 0 and ix < iw:
                                    acc += (((sc[iy * iw + ix] ^ 128) - 128) + off) * \
                                        ((sc[fo + fy * kw + fx] ^ 128) - 128)
                                fx += 1
                        fy += 1
                    if has_bias:
                        acc = ((acc + ((bias[k] ^ S) - S) + S) & M) - S
                    mu = mults[k]
                    shf = (shifts[k] ^ S) - S
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
                    yb[(oy * ow + ox) * ch + k] = r
                    ox += 1
                oy += 1
            k += 1
        bi += 1


@micropython.viper
def _conv(xp: ptr8, w0: ptr8, i: int, model, arena, ctx):
    # CONV_2D_INPLACE (conv2d_inplace.c): output rows in order, each computed from its window of input rows
    # [a, b) kept in the scratch (rows shared with the previous window moved down, new ones copied in).
    # xp, w0 and i are the MAC loop's pointers and counter: viper keeps its first three locals (the
    # arguments) in registers on x64 and xtensa, so they come first (the caller passes placeholders).
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    mb = int(ptr8(model))
    ab = int(ptr8(arena))
    cb = int(ptr8(ctx))
    # base address of each const operand by its storage word: 1 model, 3 ctx (trusted copy)
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
    out_off = (c[_C_XP + 7] ^ S) - S
    act_min = (c[_C_XP + 8] ^ S) - S
    act_max = (c[_C_XP + 9] ^ S) - S
    xb0 = ab + c[_C_X]
    rb = ab + c[_C_X + 40]
    yb0 = ab + c[_C_X + 48]
    ih = c[_C_X + 3]
    iw = c[_C_X + 4]
    ic = c[_C_X + 5]
    kh = c[_C_X + 8 + 3]
    kw = c[_C_X + 8 + 4]
    nb = c[_C_X + 48 + 2]
    oh = c[_C_X + 48 + 3]
    ow = c[_C_X + 48 + 4]
    oc = c[_C_X + 48 + 5]
    sw = c[_C_XP]
    sh = c[_C_XP + 1]
    dw = c[_C_XP + 2]
    dh = c[_C_XP + 3]
    pw = c[_C_XP + 4]
    ph = c[_C_XP + 5]
    off = (c[_C_XP + 6] ^ S) - S
    ri = iw * ic
    ro = ow * oc
    offm = off - 128
    fst = kh * kw * ic
    w2o = fst + fst
    w3o = w2o + fst
    x_row = dh * ri
    w_row = kw * ic
    x_run = dw * ic
    win = ptr8(rb)
    taps = (kh - 1) * dh + 1
    bi = 0
    while bi < nb:
        xb = ptr8(xb0 + bi * ih * ri)
        yb = ptr8(yb0 + bi * oh * ro)
        sv = 0
        wa = 0
        wb = 0
        oy = 0
        while oy < oh:
            lo = oy * sh - ph
            end = (oy + 1) * ro
            while sv < ih and sv * ri < end:
                sv += 1
            a = lo
            if a < 0:
                a = 0
            b = lo + taps
            if b < sv:
                b = sv
            if b > ih:
                b = ih
            if b < a:
                b = a
            if a < wb:
                src = (a - wa) * ri
                n = (wb - a) * ri
                j = 0
                while j < n:
                    win[j] = win[src + j]
                    j += 1
            else:
                wb = a
            d = (wb - a) * ri
            src = wb * ri
            n = (b - wb) * ri
            j = 0
            while j < n:
                win[d + j] = xb[src + j]
                j += 1
            wa = a
            wb = b
            wh = b - a
            iy0 = lo - a                    # window row of filter row 0
            # filter rows inside the window: fy0 <= fy < fy1 (as the C kernel's per-tap test, hoisted)
            fy0 = 0
            while fy0 < kh and iy0 + dh * fy0 < 0:
                fy0 += 1
            fy1 = kh
            while fy1 > 0 and iy0 + dh * (fy1 - 1) >= wh:
                fy1 -= 1
            yq = yb0 + bi * oh * ro + oy * ro
            ox = 0
            while ox < ow:
                # as viper_engine._k_conv: window clipped once per output pixel, four output channels per
                # input load, weights used as w ^ 128 with the 128 * sum(x + offset) correction
                ix0 = ox * sw - pw
                fx0 = 0
                while fx0 < kw and ix0 + dw * fx0 < 0:
                    fx0 += 1
                fx1 = kw
                while fx1 > 0 and ix0 + dw * (fx1 - 1) >= iw:
                    fx1 -= 1
                n_rows = 0
                n_runs = 0
                run = 0
                xa = rb
                wf = fb
                if fy1 > fy0 and fx1 > fx0:
                    n_rows = fy1 - fy0
                    if dw == 1:
                        n_runs = 1
                        run = (fx1 - fx0) * ic
                    else:
                        n_runs = fx1 - fx0
                        run = ic
                    xa = rb + (iy0 + dh * fy0) * ri + (ix0 + dw * fx0) * ic
                    wf = fb + (fy0 * kw + fx0) * ic
                sumx = 0
                r = 0
                while r < n_rows:
                    k = 0
                    while k < n_runs:
                        xp = ptr8(xa + r * x_row + k * x_run)
                        i = 0
                        while i < run:
                            sumx = (xp[i] ^ 128) + sumx
                            i += 1
                        k += 1
                    r += 1
                corr = (offm * n_rows * n_runs * run + sumx) << 7
                o = 0
                while o < oc:
                    nq = oc - o
                    a0 = 0
                    a1 = 0
                    a2 = 0
                    a3 = 0
                    if nq >= 4:
                        nq = 4
                        r = 0
                        while r < n_rows:
                            k = 0
                            while k < n_runs:
                                xp = ptr8(xa + r * x_row + k * x_run)
                                wq = wf + o * fst + r * w_row + k * ic
                                w0 = ptr8(wq)
                                i = run >> 2
                                while i > 0:                # four inputs a pass, constant-offset loads
                                    q0 = (xp[0] ^ 128) + offm
                                    q1 = (xp[1] ^ 128) + offm
                                    q2 = (xp[2] ^ 128) + offm
                                    q3 = (xp[3] ^ 128) + offm
                                    a0 = (w0[0] ^ 128) * q0 + (w0[1] ^ 128) * q1 + (w0[2] ^ 128) * q2 + (w0[3] ^ 128) * q3 + a0
                                    wp = ptr8(int(w0) + fst)
                                    a1 = (wp[0] ^ 128) * q0 + (wp[1] ^ 128) * q1 + (wp[2] ^ 128) * q2 + (wp[3] ^ 128) * q3 + a1
                                    wp = ptr8(int(w0) + w2o)
                                    a2 = (wp[0] ^ 128) * q0 + (wp[1] ^ 128) * q1 + (wp[2] ^ 128) * q2 + (wp[3] ^ 128) * q3 + a2
                                    wp = ptr8(int(w0) + w3o)
                                    a3 = (wp[0] ^ 128) * q0 + (wp[1] ^ 128) * q1 + (wp[2] ^ 128) * q2 + (wp[3] ^ 128) * q3 + a3
                                    xp = ptr8(int(xp) + 4)
                                    w0 = ptr8(int(w0) + 4)
                                    i -= 1
                                i = run & 3
                                while i > 0:
                                    q0 = (xp[0] ^ 128) + offm
                                    a0 = (w0[0] ^ 128) * q0 + a0
                                    a1 = (w0[fst] ^ 128) * q0 + a1
                                    a2 = (w0[w2o] ^ 128) * q0 + a2
                                    a3 = (w0[w3o] ^ 128) * q0 + a3
                                    xp = ptr8(int(xp) + 1)
                                    w0 = ptr8(int(w0) + 1)
                                    i -= 1
                                k += 1
                            r += 1
                    else:
                        j = 0
                        while j < nq:
                            acc = 0
                            r = 0
                            while r < n_rows:
                                k = 0
                                while k < n_runs:
                                    xp = ptr8(xa + r * x_row + k * x_run)
                                    w0 = ptr8(wf + (o + j) * fst + r * w_row + k * ic)
                                    i = 0
                                    while i < run:
                                        acc = (w0[i] ^ 128) * ((xp[i] ^ 128) + offm) + acc
                                        i += 1
                                    k += 1
                                r += 1
                            a3 = a2
                            a2 = a1
                            a1 = a0
                            a0 = acc
                            j += 1
                        if nq == 2:
                            acc = a0
                            a0 = a1
                            a1 = acc
                        elif nq == 3:
                            acc = a0
                            a0 = a2
                            a2 = acc
                    ch = o
                    j = o + nq
                    while ch < j:
                        acc = a0 - corr
                        a0 = a1
                        a1 = a2
                        a2 = a3
                        if has_bias:
                            acc = ((bias[ch] + acc + S) & M) - S  # mod 2**32: no sign fix
                        else:
                            acc = ((acc + S) & M) - S
                        shf = (shifts[ch] ^ S) - S
                        if shf > 0:
                            acc = (((acc << shf) + S) & M) - S
                        mu = mults[ch]
                        ah = acc >> 16
                        al = acc & 0xFFFF
                        bh = mu >> 16
                        bl = mu & 0xFFFF
                        ll = al * bl
                        m1 = ah * bl
                        m2 = al * bh
                        cc = ((ll >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
                        v = ((ah * bh + (m1 >> 16) + (m2 >> 16) + (cc >> 16)) << 1) + (((cc & 0xFFFF) + 0x4000) >> 15)
                        if shf < 0:
                            # RoundingDivideByPOT(v, -shf): (v - (v < 0)) >> (-shf - 1), + 1, >> 1 (exact here)
                            if v < 0:
                                v -= 1
                            v = ((v >> (-1 - shf)) + 1) >> 1
                        v = ((v + out_off + S) & M) - S
                        if v < act_min:
                            v = act_min
                        if v > act_max:
                            v = act_max
                        ptr8(yq)[ch] = v
                        ch += 1
                    o += 4
                yq += oc
                ox += 1
            oy += 1
        bi += 1


def run(opc, model, arena, ctx):
    if opc == _OP_CONV:
        _conv(arena, model, 0, model, arena, ctx)
    else:
        _dw(model, arena, ctx)
