# Device-side tests of mpyml.pre: the C kernels (mpyml_engine) and the pure-MicroPython fallback
# agree bit for bit; streaming MFCC allocates nothing per hop; timings reported for the host.
import array
import gc
import time

import micropython
import mptest
from mptest import arg, eq, report

from mpyml.pre import _fallback, have_c, kernel
from mpyml.pre.audio import MFCC, Plan
from mpyml.pre.image import ImagePre
from mpyml.pre.quant import Quantizer, affine_params
from mpyml.sensors import GRAY, RGB565, RGB888
from mpyml.sensors.replay import load_wav

C = have_c("pre_logmel") and have_c("pre_image")


def needs_c(fn):
    # a C-vs-fallback comparison: not defined at all without the C kernels (never a silent PASS)
    return fn if C else None
if arg("require_c") and not C:
    raise ImportError("mpyml_engine without the pre_* kernels: rebuild it (make natmods)")

_seed = [12345]


def rnd(n):
    """LCG: n pseudo-random 16-bit values (deterministic, no `random` module needed)."""
    out = []
    s = _seed[0]
    for _ in range(n):
        s = (s * 1103515245 + 12345) & 0x7FFFFFFF
        out.append(s >> 15)
    _seed[0] = s
    return out


def pair(name):
    return kernel(name, "c"), getattr(_fallback, name)


@needs_c
def test_logmel_mfcc_bit_exact():
    plan = Plan()
    lc, lp = pair("pre_logmel")
    mc, mp = pair("pre_mfcc")
    L = plan.frame_length
    frames = []
    frames.append([0] * L)
    frames.append([32767 if (n & 1) else -32768 for n in range(L)])          # Nyquist, full scale
    frames.append([32767] * L)                                              # DC
    frames.append([0] * 100 + [20000] + [0] * (L - 101))                   # impulse
    for amp in (1, 3, 100, 3000, 32767):
        frames.append([((v % (2 * amp + 1)) - amp) for v in rnd(L)])
    for f in (50, 440, 1000, 3999, 7999):
        import math
        frames.append([int(20000 * math.sin(2 * math.pi * f * n / 16000)) for n in range(L)])
    for path in arg("wavs", []):
        rate, x = load_wav(path)
        for start in (0, 4000, 8000, 12000):
            frames.append(list(x[start:start + L]))
    a = array.array("i", bytes(4 * 40))
    b = array.array("i", bytes(4 * 40))
    z = array.array("i", bytes(4 * 512))
    tmp = array.array("i", bytes(4 * 40))
    oa = array.array("i", bytes(4 * 10))
    ob = array.array("i", bytes(4 * 10))
    for i, fr in enumerate(frames):
        x = array.array("h", fr)
        lc(plan.blob, x, a, 0, z)
        lp(plan, x, b, 0, z)
        eq(list(a), list(b), "logmel frame %d" % i)
        for L2 in (0, 15 << 16, 983040 + 12345, -5 << 16):
            mc(plan.blob, a, 0, L2, oa, 0, tmp)
            mp(plan, b, 0, L2, ob, 0, tmp)
            eq(list(oa), list(ob), "mfcc frame %d L %d" % (i, L2))
    report("logmel_frames_checked", len(frames))


@needs_c
def test_other_plans_bit_exact():
    for kw in ({"frame_length": 400, "fft_length": 512, "n_mels": 64, "fmin": 0.0, "fmax": 8000.0,
                "n_mfcc": 0},
               {"frame_length": 256, "fft_length": 256, "n_mels": 32, "fmin": 60.0, "fmax": 7600.0,
                "n_mfcc": 13},
               {"frame_length": 1024, "fft_length": 1024, "n_mels": 80, "fmin": 0.0, "fmax": 8000.0,
                "n_mfcc": 20}):
        plan = Plan(**kw)
        L, nb = plan.frame_length, plan.n_mels
        K = plan.n_mfcc or nb
        lc, lp = pair("pre_logmel")
        mc, mp = pair("pre_mfcc")
        z = array.array("i", bytes(4 * plan.fft_length))
        a = array.array("i", bytes(4 * nb))
        b = array.array("i", bytes(4 * nb))
        oa = array.array("i", bytes(4 * K))
        ob = array.array("i", bytes(4 * K))
        tmp = array.array("i", bytes(4 * nb))
        for amp in (7, 30000):
            x = array.array("h", [((v % (2 * amp + 1)) - amp) for v in rnd(L)])
            lc(plan.blob, x, a, 0, z)
            lp(plan, x, b, 0, z)
            eq(list(a), list(b), "logmel %r" % kw)
            mc(plan.blob, a, 0, 3 << 16, oa, 0, tmp)
            mp(plan, b, 0, 3 << 16, ob, 0, tmp)
            eq(list(oa), list(ob), "mfcc %r" % kw)


@needs_c
def test_quant_bit_exact():
    qc, qp = pair("pre_quant")
    srcs = [(array.array("h", [v - 32768 for v in rnd(300)]), 32768),
            (array.array("i", [(v << 9) - (1 << 24) for v in rnd(300)]), 1 << 24),
            (array.array("b", [(v & 255) - 128 for v in rnd(300)]), 128),
            (bytearray([v & 255 for v in rnd(300)]), 255),
            (array.array("H", rnd(300)), 65535)]
    for si, (s, xm) in enumerate(srcs):
        # affine_params keeps the intermediates within 31 bits for |x| <= x_max
        params = [affine_params([1 / 65536], [0.0], 0.5847029, 83, x_max=xm),
                  affine_params([0.001, -0.002, 0.5], [0.1, -3.0, 7.0], 0.05, -5, x_max=xm),
                  affine_params([1.0], [-128.0], 1.0, 0, x_max=xm),
                  affine_params([3.7], [0.0], 0.9, 10, x_max=xm, lo=0, hi=255)]
        for pi, p in enumerate(params):
            da = bytearray(310)
            db = bytearray(310)
            qc(s, 5, 290, da, 7, p)
            qp(s, 5, 290, db, 7, p)
            eq(da, db, "quant src %d params %d" % (si, pi))


@needs_c
def test_image_bit_exact():
    ic, ip = pair("pre_image")
    sizes = ((17, 13), (96, 96), (40, 30))
    for sfmt, bpp in ((GRAY, 1), (RGB565, 2), (RGB888, 3)):
        for sw, sh in sizes:
            src = bytes(v & 255 for v in rnd(sw * sh * bpp))
            for dfmt in (GRAY, RGB888):
                for mode in ("nearest", "bilinear", "area"):
                    for crop, dst in (((0, 0, sw, sh), (sw, sh)), ((1, 2, sw - 3, sh - 2), (9, 11)),
                                      ((0, 0, sw, sh), (2 * sw, sh + 5)), ((2, 1, 5, 4), (5, 4))):
                        pre = ImagePre((sw, sh), sfmt, dst, dfmt, crop=crop, mode=mode,
                                       target=(1 / 255, -128), norm=(1 / 255, 0.0))
                        n = dst[0] * dst[1] * (1 if dfmt == GRAY else 3)
                        da = bytearray(n)
                        db = bytearray(n)
                        ic(src, da, pre.params)
                        ip(src, db, pre.params)
                        eq(da, db, "image %s %dx%d -> %s %r %r" % (sfmt, sw, sh, mode, crop, dst))


@needs_c
def test_max_and_i32():
    xc, xp = pair("pre_max")
    for buf in (array.array("h", [v - 40000 for v in rnd(100)]), array.array("b", [-5, -3, -9]),
                bytearray([3, 200, 7]), array.array("i", [-(1 << 30), 5, -7])):
        eq(xc(buf, 0, len(buf)), xp(buf, 0, len(buf)))
        eq(xc(buf, 1, 2), xp(buf, 1, 2))
    cc, cp = pair("pre_i32_to_i16")
    raw = bytes(v & 255 for v in rnd(400))
    a = array.array("h", bytes(200))
    b = array.array("h", bytes(200))
    for sh in (0, 8, 14, 16):
        cc(raw, a, sh, 100)
        cp(raw, b, sh, 100)
        eq(list(a), list(b), "i32_to_i16 shift %d" % sh)


def _stream(m, x):
    chunk = array.array("h", bytes(2 * m.frame_step))
    out = []
    for i in range(len(x) // m.frame_step):
        for j in range(m.frame_step):
            chunk[j] = x[i * m.frame_step + j]
        m.push(chunk)
        if i in (30, 49):
            q = bytearray(m.n_frames * m.n_out)
            m.features(q)
            out.append(bytes(q))
    return out


def test_streaming_mfcc_c_equals_fallback():
    wavs = arg("wavs", [])
    if not wavs:
        raise AssertionError("no wavs given: nothing to check")
    for path in wavs:
        rate, x = load_wav(path)
        res = []
        for eng in (("c", "py") if C else ("py",)):
            m = MFCC(engine=eng)
            m.set_output((0.5847029089927673, 83))
            res.append(_stream(m, x))
        if C:
            eq(res[0], res[1], "streaming MFCC C vs fallback " + path)
        report("features_" + path.rsplit("/", 1)[-1], list(res[0][-1]))


def test_streaming_allocates_nothing_and_timing():
    for eng in (("c", "py") if C else ("py",)):
        m = MFCC(engine=eng)
        m.set_output((0.5847029089927673, 83))
        chunk = array.array("h", [((v % 2001) - 1000) for v in rnd(320)])
        q = bytearray(490)
        for _ in range(52):
            m.push(chunk)
        m.features(q)
        gc.collect()
        micropython.heap_lock()
        try:
            for _ in range(5):
                m.push(chunk)
            m.features(q)
            chunk[0] = 30000                      # new window max: every frame renormalized
            m.push(chunk)
            m.features(q)
            chunk[0] = 0
        finally:
            micropython.heap_unlock()
        t0 = time.ticks_us()
        for _ in range(20):
            m.push(chunk)
        t1 = time.ticks_us()
        for _ in range(5):
            m.features(q)
        t2 = time.ticks_us()
        chunk[0] = 31000 + (t2 & 7)
        m.push(chunk)
        t3 = time.ticks_us()
        m.features(q)
        t4 = time.ticks_us()
        report("mfcc_us_" + eng, {"push": time.ticks_diff(t1, t0) // 20,
                                   "features_cached": time.ticks_diff(t2, t1) // 5,
                                   "features_renormalized": time.ticks_diff(t4, t3)})


def test_image_and_quantizer_allocate_nothing():
    for eng in (("c", "py") if C else ("py",)):
        src = bytearray(160 * 120 * 2)
        pre = ImagePre((160, 120), RGB565, (96, 96), GRAY, crop=(20, 0, 120, 120), mode="area",
                       target=(1 / 255, -128), engine=eng)
        dst = bytearray(96 * 96)
        pre(src, dst)
        qz = Quantizer((0.05, 0), a=1 / 16384, engine=eng)
        x = array.array("h", rnd(60))
        d2 = bytearray(60)
        gc.collect()
        micropython.heap_lock()
        try:
            if eng == "c":
                pre(src, dst)
            qz(x, d2)
        finally:
            micropython.heap_unlock()
        t0 = time.ticks_us()
        pre(src, dst)
        report("image_us_" + eng, time.ticks_diff(time.ticks_us(), t0))


mptest.main(globals())
