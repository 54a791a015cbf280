# mpyml viper kernels of the recurrent family (ops 49 SVDF, 50 UNIDIRECTIONAL_SEQUENCE_LSTM), bit-exact
# with native_modules/engine/ops/svdf.c and lstm.c (TFLite Micro's integer SVDF and LSTM).
#
# check(opcode, ts, n_in, n_out, prm, buf, data) -> 0 or the same check code as the C *_check (plain
# Python, once at load); run(opc, model, arena, ctx) runs one op from the operand words viper_engine._ext
# wrote into ctx (operand k at _C_X + 8 * k: +0 byte offset, +1 storage 0 arena / 1 const / 2 absent,
# +2..+5 dims n h w c, +6 nbytes, +7 type code; params at _C_XP + i).
# Word-size rules as in viper_engine.py: no literal >= 2**30, S = 2**31 built at run time, ptr32 loads
# sign-corrected with (v ^ S) - S, wrapping adds re-wrapped with ((v + S) & M) - S. Values that may not
# be small ints (int32 products, multipliers) never cross a function call as arguments: MultiplyByQuantized-
# Multiplier is one helper that reads and writes ctx words _W.._W+3 (after the operand words of these ops:
# SVDF uses words up to 191, LSTM up to 263).
import struct

import micropython
from micropython import const

_C_XP = const(64)
_C_X = const(128)
_W = const(376)

_OP_SVDF = const(49)
_OP_LSTM = const(50)

_CHK_COUNT = const(70)
_CHK_SVDF_SHAPE = const(60)
_CHK_STATE = const(61)
_CHK_LSTM_SHAPE = const(62)
_CHK_ZERO_POINT = const(63)
_CHK_TANH = const(64)

# sigmoid(i / 24) in 0.16 (TFLite's sigmoid_table_uint16); a tuple, then one star-call (a call with more
# than 255 positional arguments does not compile in MicroPython)
_TAB = (
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432, 42064, 42688,
    43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409,
    51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110,
    61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186,
    63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208,
    65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433, 65438, 65442, 65445, 65449,
    65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535)
_TAB = struct.pack("<256H", *_TAB)


# ---------------------------------------------------------------- check (mirrors the C *_check)

def _elems(t):
    n = 1
    for i in range(t[1]):
        n *= t[4 + i]
    return n


def _check_svdf(ts, prm):
    x, wf, wt, bias, y, st, s1, s2 = ts[0], ts[1], ts[2], ts[3], ts[4], ts[5], ts[6], ts[7]
    if st[3] != 1:
        return _CHK_STATE
    if x[1] != 2 or wf[1] != 2 or wt[1] != 2 or y[1] != 2:
        return _CHK_SVDF_SHAPE
    b, i, f, m = x[4], x[5], wf[4], wt[5]
    if wf[5] != i or wt[4] != f or i > 65536:
        return _CHK_SVDF_SHAPE
    rank = prm[0]
    if f % rank:
        return _CHK_SVDF_SHAPE
    u = f // rank
    if y[4] != b or y[5] != u:
        return _CHK_SVDF_SHAPE
    if bias is not None and _elems(bias) != u:
        return _CHK_SVDF_SHAPE
    if b * f * m != _elems(st):
        return _CHK_SVDF_SHAPE
    if b * f != _elems(s1) or b * u != _elems(s2):
        return _CHK_SVDF_SHAPE
    return 0


def _check_lstm(ts, prm):
    x, y, h, c, scr = ts[0], ts[13], ts[14], ts[15], ts[16]
    if h[3] != 1 or c[3] != 1:
        return _CHK_STATE
    if x[1] != 3 or y[1] != 3:
        return _CHK_LSTM_SHAPE
    b = x[5] if prm[0] else x[4]
    n_in = x[6]
    s = ts[1][4]
    if n_in > 65536 or s > 65536:
        return _CHK_LSTM_SHAPE
    for g in range(4):
        w, r, bias = ts[1 + g], ts[5 + g], ts[9 + g]
        if w[1] != 2 or w[4] != s or w[5] != n_in:
            return _CHK_LSTM_SHAPE
        if r[1] != 2 or r[4] != s or r[5] != s:
            return _CHK_LSTM_SHAPE
        if _elems(bias) != s:
            return _CHK_LSTM_SHAPE
        if w[10] != 0 or r[10] != 0:
            return _CHK_ZERO_POINT
    if y[4] != x[4] or y[5] != x[5] or y[6] != s:
        return _CHK_LSTM_SHAPE
    if b * s != _elems(h) or b * s != _elems(c):
        return _CHK_LSTM_SHAPE
    if 4 * s != _elems(scr):
        return _CHK_LSTM_SHAPE
    rnd = (1 << (prm[28] - 1)) if prm[28] > 0 else 0
    if prm[27] * 32768 + rnd > 0x7FFFFFFF:
        return _CHK_TANH
    return 0


def check(opcode, ts, n_in, n_out, prm, buf, data):
    if opcode == _OP_SVDF:
        return _check_svdf(ts, prm)
    if opcode == _OP_LSTM:
        return _check_lstm(ts, prm)
    return _CHK_COUNT


# ---------------------------------------------------------------- shared arithmetic

@micropython.viper
def _mbqm(ctx):
    # ctx[_W + 3] = MultiplyByQuantizedMultiplier(ctx[_W], ctx[_W + 1], ctx[_W + 2]) (double rounding):
    # wrapping left shift, SaturatingRoundingDoublingHighMul from 16-bit halves (mult >= 0, so never
    # INT32_MIN * INT32_MIN), RoundingDivideByPOT.
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    a = (c[_W] ^ S) - S
    mu = c[_W + 1]
    sh = (c[_W + 2] ^ S) - S
    rs = 0
    if sh > 0:
        a = (((a << sh) + S) & M) - S
    else:
        rs = 0 - sh
    ah = a >> 16
    al = a & 0xFFFF
    bh = mu >> 16
    bl = mu & 0xFFFF
    ll = al * bl
    m1 = ah * bl
    m2 = al * bh
    cc = ((ll >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
    v = ((ah * bh + (m1 >> 16) + (m2 >> 16) + (cc >> 16)) << 1) + (((cc & 0xFFFF) + 0x4000) >> 15)
    if rs > 0:
        mask = (1 << rs) - 1
        rem = v & mask
        thr = mask >> 1
        if v < 0:
            thr += 1
        v = v >> rs
        if rem > thr:
            v += 1
    c[_W + 3] = v


# ---------------------------------------------------------------- SVDF

@micropython.viper
def _svdf(model, arena, ctx):
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    a8 = int(ptr8(arena))
    m8 = int(ptr8(model))
    n_b = c[_C_X + 4]
    n_in = c[_C_X + 5]
    n_f = c[_C_X + 8 + 4]
    n_m = c[_C_X + 16 + 5]
    rank = c[_C_XP]
    in_off = (c[_C_XP + 1] ^ S) - S
    szp = (c[_C_XP + 2] ^ S) - S
    out_off = (c[_C_XP + 3] ^ S) - S
    n_u = c[_C_X + 32 + 5]
    x = ptr8(a8 + c[_C_X])
    wf = ptr8(m8 + c[_C_X + 8])
    wt = ptr16(m8 + c[_C_X + 16])
    has_bias = c[_C_X + 24 + 1] != 2
    bias = ptr32(m8 + c[_C_X + 24])
    y = ptr8(a8 + c[_C_X + 32])
    st = ptr16(a8 + c[_C_X + 40])
    s1 = ptr32(a8 + c[_C_X + 48])
    s2 = ptr32(a8 + c[_C_X + 56])
    # 1. shift the state left by one element
    total = n_b * n_f * n_m
    k = 0
    while k + 1 < total:
        st[k] = st[k + 1]
        k += 1
    # 2. feature matmul into the newest column
    b = 0
    while b < n_b:
        r = 0
        while r < n_f:
            dot = 0
            wo = r * n_in
            xo = b * n_in
            i = 0
            while i < n_in:
                dot += ((wf[wo + i] ^ 128) - 128) * (((x[xo + i] ^ 128) - 128) + in_off)
                i += 1
            c[_W] = dot
            c[_W + 1] = c[_C_XP + 4]
            c[_W + 2] = c[_C_XP + 5]
            _mbqm(ctx)
            v = (c[_W + 3] ^ S) - S
            if v < -32768:
                v = -32768
            if v > 32767:
                v = 32767
            st[(b * n_f + r) * n_m + n_m - 1] = v + szp     # clamp, then + zero point (wraps to int16)
            r += 1
        b += 1
    # 3. time weights (int32 sums wrap as in C)
    b = 0
    while b < n_b:
        r = 0
        while r < n_f:
            acc = 0
            so = (b * n_f + r) * n_m
            wo = r * n_m
            j = 0
            while j < n_m:
                acc += ((wt[wo + j] ^ 0x8000) - 0x8000) * (((st[so + j] ^ 0x8000) - 0x8000) - szp)
                acc = ((acc + S) & M) - S
                j += 1
            s1[b * n_f + r] = acc
            r += 1
        b += 1
    # 4. bias, rank reduction, requantize
    b = 0
    while b < n_b:
        u = 0
        while u < n_u:
            acc = 0
            if has_bias:
                acc = (bias[u] ^ S) - S
            j = 0
            while j < rank:
                acc = ((acc + ((s1[b * n_f + u * rank + j] ^ S) - S) + S) & M) - S
                j += 1
            s2[b * n_u + u] = acc
            u += 1
        b += 1
    k = 0
    while k < n_b * n_u:
        c[_W] = s2[k]
        c[_W + 1] = c[_C_XP + 6]
        c[_W + 2] = c[_C_XP + 7]
        _mbqm(ctx)
        v = (((c[_W + 3] ^ S) - S) + out_off + S & M) - S
        if v < -128:
            v = -128
        if v > 127:
            v = 127
        y[k] = v
        k += 1


# ---------------------------------------------------------------- LSTM

@micropython.viper
def _sigmoid16(v: int) -> int:
    t = ptr16(_TAB)
    x = v * 3
    a = x
    if a < 0:
        a = 0 - a
    uh = a >> 9
    r = 0x7FFF << 10
    if uh < 255:
        ua = t[uh]
        r = (ua << 9) + (a & 0x1FF) * (t[uh + 1] - ua)
    if x >= 0:
        r = r + 512
    else:
        r = (1 << 25) - r + 511
    r = (r >> 10) & 0xFFFF
    return (r ^ 0x8000) - 0x8000


@micropython.viper
def _tanh16(v: int, mult: int, rshift: int) -> int:
    t = ptr16(_TAB)
    rnd = 0
    if rshift > 0:
        rnd = 1 << (rshift - 1)
    x = (v * mult + rnd) >> rshift
    a = x
    if a < 0:
        a = 0 - a
    uh = a >> 8
    r = 0xFFFF << 8
    if uh < 255:
        ua = t[uh]
        r = (ua << 8) + (a & 0xFF) * (t[uh + 1] - ua)
    if x >= 0:
        r = r - (1 << 23) + 128
    else:
        r = 0 - r + (1 << 23) + 127
    r = (r >> 8) & 0xFFFF
    return (r ^ 0x8000) - 0x8000


@micropython.viper
def _fc16(model, arena, ctx, g: int, xo: int, rec: int):
    # one gate FC into scratch buffer (rec ? 3 : dest of gate g): int32 dot + bias, MBQM, int16 clamp.
    # rec = 0: the input row at arena offset xo with W_g and bias_g; rec = 1: the hidden row at xo
    # (stored as h - zp) with R_g, no bias.
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    a8 = int(ptr8(arena))
    m8 = int(ptr8(model))
    s = c[_C_X + 8 + 4]
    n = c[_C_X + 5]
    dec = 0
    off = (c[_C_XP + 1] ^ S) - S
    wk = 1 + g
    pk = _C_XP + 4 + 4 * g
    if rec:
        n = s
        dec = (c[_C_XP + 3] ^ S) - S
        off = (c[_C_XP + 2] ^ S) - S
        wk = 5 + g
        pk += 2
    x = ptr8(a8 + xo)
    w = ptr8(m8 + c[_C_X + 8 * wk])
    bias = ptr32(m8 + c[_C_X + 8 * (9 + g)])
    buf = 3
    if not rec:
        buf = 0
        if g == 0:
            buf = 1
        elif g == 2:
            buf = 2
        elif g == 3:
            buf = 1
    out = ptr16(a8 + c[_C_X + 8 * 16] + 2 * buf * s)
    o = 0
    while o < s:
        acc = 0
        wo = o * n
        k = 0
        while k < n:
            acc += ((w[wo + k] ^ 128) - 128) * (((((x[k] + dec) & 255) ^ 128) - 128) + off)
            k += 1
        if not rec:
            acc = ((acc + ((bias[o] ^ S) - S) + S) & M) - S
        c[_W] = acc
        c[_W + 1] = c[pk]
        c[_W + 2] = c[pk + 1]
        _mbqm(ctx)
        v = (c[_W + 3] ^ S) - S
        if v < -32768:
            v = -32768
        if v > 32767:
            v = 32767
        out[o] = v
        o += 1


@micropython.viper
def _gate(model, arena, ctx, g: int, xo: int, ho: int, act: int):
    c = ptr32(ctx)
    a8 = int(ptr8(arena))
    s = c[_C_X + 8 + 4]
    _fc16(model, arena, ctx, g, xo, 0)
    _fc16(model, arena, ctx, g, ho, 1)
    buf = 0
    if g == 0 or g == 3:
        buf = 1
    elif g == 2:
        buf = 2
    out = ptr16(a8 + c[_C_X + 8 * 16] + 2 * buf * s)
    tmp = ptr16(a8 + c[_C_X + 8 * 16] + 6 * s)
    k = 0
    while k < s:
        v = ((out[k] ^ 0x8000) - 0x8000) + ((tmp[k] ^ 0x8000) - 0x8000)
        if v < -32768:
            v = -32768
        if v > 32767:
            v = 32767
        if act:
            out[k] = int(_sigmoid16(v))
        else:
            out[k] = int(_tanh16(v, 3, 0))
        k += 1


@micropython.viper
def _mul(ctx, a: int, b: int, pk: int) -> int:
    # MBQM(a * b, params pk, pk + 1) for int16 a, b: the result |.| <= 2^30 is not returned (it may not be
    # a small int): it is left in ctx[_W + 3]
    c = ptr32(ctx)
    c[_W] = a * b
    c[_W + 1] = c[pk]
    c[_W + 2] = c[pk + 1]
    _mbqm(ctx)
    return 0


@micropython.viper
def _lstm(model, arena, ctx):
    c = ptr32(ctx)
    S = 1
    S <<= 31
    M = S + S - 1
    a8 = int(ptr8(arena))
    tm = c[_C_XP]
    n_in = c[_C_X + 5]
    n_b = c[_C_X + 3]
    n_t = c[_C_X + 4]
    if tm:
        n_b = c[_C_X + 4]
        n_t = c[_C_X + 3]
    s = c[_C_X + 8 + 4]
    hzp = (c[_C_XP + 3] ^ S) - S
    clip = c[_C_XP + 26]
    tmul = c[_C_XP + 27]
    trs = c[_C_XP + 28]
    yb = c[_C_X + 8 * 13]
    hb = c[_C_X + 8 * 14]
    cb = c[_C_X + 8 * 15]
    sb = c[_C_X + 8 * 16]
    y = ptr8(a8 + yb)
    hd = ptr8(a8 + hb)
    cd = ptr16(a8 + cb)
    b0 = ptr16(a8 + sb)
    b1 = ptr16(a8 + sb + 2 * s)
    b2 = ptr16(a8 + sb + 4 * s)
    b = 0
    while b < n_b:
        ho = hb + b * s
        co = b * s
        t = 0
        while t < n_t:
            row = b * n_t + t
            if tm:
                row = t * n_b + b
            xo = c[_C_X] + row * n_in
            _gate(model, arena, ctx, 1, xo, ho, 1)
            _gate(model, arena, ctx, 0, xo, ho, 1)
            _gate(model, arena, ctx, 2, xo, ho, 0)
            k = 0
            while k < s:
                cv = (cd[co + k] ^ 0x8000) - 0x8000
                _mul(ctx, (b0[k] ^ 0x8000) - 0x8000, cv, _C_XP + 20)
                fc = (c[_W + 3] ^ S) - S
                if fc < -32768:
                    fc = -32768
                if fc > 32767:
                    fc = 32767
                _mul(ctx, (b1[k] ^ 0x8000) - 0x8000, (b2[k] ^ 0x8000) - 0x8000, _C_XP + 22)
                ig = (c[_W + 3] ^ S) - S
                if ig < -32768:
                    ig = -32768
                if ig > 32767:
                    ig = 32767
                nc = fc + ig
                if nc < -32768:
                    nc = -32768
                if nc > 32767:
                    nc = 32767
                if clip > 0:
                    if nc < 0 - clip:
                        nc = 0 - clip
                    if nc > clip:
                        nc = clip
                cd[co + k] = nc
                k += 1
            _gate(model, arena, ctx, 3, xo, ho, 1)
            k = 0
            while k < s:
                th = int(_tanh16((cd[co + k] ^ 0x8000) - 0x8000, tmul, trs))
                _mul(ctx, th, (b1[k] ^ 0x8000) - 0x8000, _C_XP + 24)
                hv = (((c[_W + 3] ^ S) - S) + hzp + S & M) - S
                if hv < -128:
                    hv = -128
                if hv > 127:
                    hv = 127
                y[row * s + k] = hv
                hd[b * s + k] = (hv - hzp) & 255
                k += 1
            t += 1
        b += 1


def run(opc, model, arena, ctx):
    if opc == _OP_SVDF:
        _svdf(model, arena, ctx)
    else:
        _lstm(model, arena, ctx)
