# mpyml viper kernel of the "gather" op family: GATHER (Keras Embedding, tf.gather). Bit-exact with
# native_modules/engine/ops/gather.c (same check codes, same wrap of negative indices, same refusal of an index
# out of range at invoke).
#
# check(opcode, ts, n_in, n_out, prm, buf, data) -> check code: plain Python, run once by prepare;
#   mirrors mpyml_gather_check test by test.
# run(opc, model, arena, ctx): operands decoded by viper_engine._ext into ctx words _C_X + 8*k (+0 offset,
#   +1 storage 0 arena / 1 const / 3 trusted const, +2..+5 n h w c, +6 nbytes, +7 type), params at _C_XP + i.
#   Every index is validated before anything is written; one outside 0..dims[axis]-1 raises ValueError
#   (the C engine's MPYML_E_INDEX) and nothing outside the input is read.
import micropython
from micropython import const

_C_XP = const(64)
_C_X = const(128)

_OP_GATHER = const(31)
_CHK_SHAPE = const(90)
_CHK_TYPES = const(91)
_CHK_COUNT = const(70)


def check(opcode, ts, n_in, n_out, prm, buf, data):
    if opcode != _OP_GATHER:
        return _CHK_COUNT
    x, idx, y = ts[0], ts[1], ts[2]
    rx, ri, ry = x[1], idx[1], y[1]
    axis = prm[0] - (4 - rx)
    bd = prm[1] - (4 - rx)
    if y[0] != x[0] or y[10] != x[10]:
        return _CHK_TYPES
    if bd < 0 or bd > axis or bd > ri:
        return _CHK_SHAPE
    if ry != rx + ri - 1 - bd:
        return _CHK_SHAPE
    for i in range(bd):
        if idx[4 + i] != x[4 + i]:
            return _CHK_SHAPE
    want = [x[4 + i] for i in range(axis)] + [idx[4 + i] for i in range(bd, ri)] + \
        [x[4 + i] for i in range(axis + 1, rx)]
    for k in range(ry):
        if y[4 + k] != want[k]:
            return _CHK_SHAPE
    return 0


@micropython.viper
def _gather(model, arena, ctx) -> int:
    c = ptr32(ctx)
    am = int(ptr8(model))
    aa = int(ptr8(arena))
    actx = int(ptr8(ctx))
    x = ptr8(c[_C_X] + (am if c[_C_X + 1] == 1 else (actx if c[_C_X + 1] == 3 else aa)))
    ib = c[_C_X + 8] + (am if c[_C_X + 9] == 1 else (actx if c[_C_X + 9] == 3 else aa))
    i32 = ptr32(ib)
    i16 = ptr16(ib)
    wide = 0
    if c[_C_X + 15] == 2:
        wide = 1
    y = ptr8(c[_C_X + 16] + (am if c[_C_X + 17] == 1 else (actx if c[_C_X + 17] == 3 else aa)))
    axis = c[_C_XP]
    be = c[_C_XP + 1]
    wrap = c[_C_XP + 2]
    S = 1
    S <<= 31
    ty = c[_C_X + 7]
    es = 1
    if ty == 5:
        es = 2
    elif ty == 2 or ty == 3:
        es = 4
    batch = 1
    outer = 1
    inner = es
    d = 0
    while d < 4:
        v = c[_C_X + 2 + d]
        if d < be:
            batch *= v
        elif d < axis:
            outer *= v
        elif d > axis:
            inner *= v
        d += 1
    A = c[_C_X + 2 + axis]
    n_idx = c[_C_X + 10] * c[_C_X + 11] * c[_C_X + 12] * c[_C_X + 13]
    coords = 0              # n_idx / batch (exact) without a division helper
    t = batch
    while t <= n_idx:
        coords += 1
        t += batch
    j = 0
    while j < n_idx:
        if wide:
            p = (i32[j] ^ S) - S        # signed on 32- and 64-bit words
        else:
            p = (i16[j] ^ 0x8000) - 0x8000
        if p < 0:
            if wrap:
                p += A
        if p < 0:
            return 1
        if p >= A:
            return 1
        j += 1
    pos = 0
    b = 0
    while b < batch:
        o = 0
        while o < outer:
            base = (b * outer + o) * A * inner
            i = 0
            while i < coords:
                jj = b * coords + i
                if wide:
                    p = (i32[jj] ^ S) - S
                else:
                    p = (i16[jj] ^ 0x8000) - 0x8000
                if p < 0:
                    p += A              # wrap = 1 (validated above)
                src = base + p * inner
                k = 0
                while k < inner:
                    y[pos] = x[src + k]
                    pos += 1
                    k += 1
                i += 1
            o += 1
        b += 1
    return 0


def run(opc, model, arena, ctx):
    if _gather(model, arena, ctx):
        raise ValueError("GATHER index out of range (an int input outside the embedding table)")
