"""The C preprocessing core (native_modules/engine/pre/*.c) built for the host with UBSan, called with
ctypes and compared bit for bit with the pure-Python fallback (device/mpyml/pre/_fallback.py, run under
CPython): randomized frames, plans, images, quantization params. Signed overflow anywhere aborts."""

from __future__ import annotations

import ctypes
import importlib.util
import math
import shutil
import subprocess
import sys
from array import array

import numpy as np
import pytest

from conftest import skip_or_fail
from mpyml import paths

PRE_DIR = paths.REPO / "native_modules" / "engine" / "pre"
RNG = np.random.default_rng(7)


def load_device_package():
    """device/mpyml as the package `devmpyml` (the host package is also called mpyml)."""
    name = "devmpyml"
    if name not in sys.modules:
        d = paths.DEVICE_DIR / "mpyml"
        spec = importlib.util.spec_from_file_location(name, d / "__init__.py", submodule_search_locations=[str(d)])
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    importlib.import_module(name + ".pre.audio")
    importlib.import_module(name + ".pre.image")
    importlib.import_module(name + ".pre.quant")
    return sys.modules[name]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        skip_or_fail("no C compiler")
    out = tmp_path_factory.mktemp("prelib") / "libpre.so"
    cmd = [cc, "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
           "-fsanitize=undefined", "-fno-sanitize-recover=all", "-o", str(out), *map(str, PRE_DIR.glob("*.c"))]
    subprocess.run(cmd, check=True, capture_output=True)
    lb = ctypes.CDLL(str(out))
    P, S, I32 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int32
    lb.mpyml_pre_logmel.argtypes = [P, S, P, S, P, S, P, S]
    lb.mpyml_pre_mfcc.argtypes = [P, S, P, S, I32, P, S, P, S]
    lb.mpyml_pre_quant.argtypes = [P, ctypes.c_int, S, S, S, P, S, S, P, S]
    lb.mpyml_pre_image.argtypes = [P, S, P, S, P, S]
    lb.mpyml_pre_mulshift.argtypes = [I32, I32, ctypes.c_int]
    lb.mpyml_pre_mulshift.restype = I32
    return lb


@pytest.fixture(scope="module")
def dev():
    return load_device_package()


def buf(a):
    """ctypes pointer + length (elements) of an array.array or bytearray (kept alive by the caller)."""
    if isinstance(a, bytearray):
        return (ctypes.c_char * len(a)).from_buffer(a), len(a)
    addr, n = a.buffer_info()
    return ctypes.c_void_p(addr), n


def test_mulshift_exact(lib):
    for _ in range(20000):
        a = int(RNG.integers(-(2**31), 2**31))
        b = int(RNG.integers(-(2**31), 2**31))
        s = int(RNG.integers(0, 63))
        want = (a * b) >> s
        if -(2**31) <= want < 2**31:
            assert lib.mpyml_pre_mulshift(a, b, s) == want, (a, b, s)


def _frames(L, n):
    out = [np.zeros(L, np.int16), np.full(L, 32767, np.int16), np.full(L, -32768, np.int16),
           np.where(np.arange(L) % 2 == 0, 32767, -32768).astype(np.int16)]
    for _ in range(n):
        amp = int(2 ** RNG.uniform(0, 15))
        kind = RNG.integers(0, 3)
        if kind == 0:
            x = RNG.integers(-amp, amp + 1, L)
        elif kind == 1:
            f = RNG.uniform(0, 0.5)
            x = amp * np.sin(2 * np.pi * f * np.arange(L) + RNG.uniform(0, 6)) + RNG.normal(0, amp / 100 + 0.5, L)
        else:
            x = np.zeros(L)
            x[RNG.integers(0, L, 3)] = RNG.integers(-amp, amp + 1, 3)
        out.append(np.clip(np.round(x), -32768, 32767).astype(np.int16))
    return out


@pytest.mark.parametrize("cfg", [
    {},
    {"frame_length": 400, "fft_length": 512, "n_mels": 64, "fmin": 0.0, "fmax": 8000.0, "n_mfcc": 0},
    {"frame_length": 64, "fft_length": 64, "n_mels": 8, "fmin": 100.0, "fmax": 7000.0, "n_mfcc": 8},
    {"frame_length": 2048, "fft_length": 2048, "n_mels": 128, "fmin": 0.0, "fmax": 8000.0, "n_mfcc": 20},
])
def test_logmel_mfcc_c_equals_fallback(lib, dev, cfg):
    fb = dev.pre._fallback
    plan = dev.pre.audio.Plan(**cfg)
    L, N, nb = plan.frame_length, plan.fft_length, plan.n_mels
    K = plan.n_mfcc or nb
    blob = bytearray(plan.blob)
    pb, pn = buf(blob)
    z = array("i", bytes(4 * N))
    zb, zn = buf(z)
    tmp = array("i", bytes(4 * nb))
    tb, tn = buf(tmp)
    for x in _frames(L, 60 if L <= 512 else 12):
        fr = array("h", x.tolist())
        fp, fnn = buf(fr)
        a = array("i", bytes(4 * nb))
        ab, an = buf(a)
        assert lib.mpyml_pre_logmel(pb, pn, fp, fnn, ab, an, zb, zn) == 0
        b = array("i", bytes(4 * nb))
        fb.pre_logmel(plan, fr, b, 0, array("i", bytes(4 * N)))
        assert list(a) == list(b)
        for l2 in (0, int(RNG.integers(0, 15 << 16)), -(3 << 16)):
            oa = array("i", bytes(4 * K))
            ob_, on = buf(oa)
            assert lib.mpyml_pre_mfcc(pb, pn, ab, an, l2, ob_, on, tb, tn) == 0
            ob = array("i", bytes(4 * K))
            fb.pre_mfcc(plan, b, 0, l2, ob, 0, array("i", bytes(4 * nb)))
            assert list(oa) == list(ob)


def test_plan_validation_rejects_corrupt_plans(lib, dev):
    plan = dev.pre.audio.Plan()
    fr = array("h", bytes(2 * 480))
    fp, fnn = buf(fr)
    out = array("i", bytes(4 * 40))
    ob, on = buf(out)
    z = array("i", bytes(4 * 512))
    zb, zn = buf(z)
    for word in (0, 2, 3, 11, 12, 13, 18, 19):
        blob = bytearray(plan.blob)
        v = int.from_bytes(blob[4 * word:4 * word + 4], "little", signed=True)
        blob[4 * word:4 * word + 4] = (v + 100000).to_bytes(4, "little", signed=True)
        pb, pn = buf(blob)
        assert lib.mpyml_pre_logmel(pb, pn, fp, fnn, ob, on, zb, zn) == 1, word
    blob = bytearray(plan.blob)
    pb, pn = buf(blob)
    assert lib.mpyml_pre_logmel(pb, pn - 4, fp, fnn, ob, on, zb, zn) == 1        # truncated
    assert lib.mpyml_pre_logmel(pb, pn, fp, fnn - 1, ob, on, zb, zn) == 2        # short frame
    assert lib.mpyml_pre_logmel(pb, pn, fp, fnn, ob, on, zb, zn - 1) == 2        # short scratch


def test_quant_c_equals_fallback(lib, dev):
    fb, q = dev.pre._fallback, dev.pre.quant
    types = {"b": (1, 128), "B": (0, 255), "h": (2, 32768), "H": (3, 65535), "i": (4, 1 << 24)}
    for tc, (t, xm) in types.items():
        lo, hi = (-xm, xm) if tc in "bhi" else (0, xm)
        src = array(tc, RNG.integers(lo, hi, 500).tolist())
        sb, sn = buf(src)
        for _ in range(20):
            nch = int(RNG.integers(1, 5))
            scale = float(10 ** RNG.uniform(-3, 0))
            # real outputs up to a few hundred steps (beyond the clamp) for |x| <= x_max
            a = (RNG.uniform(-1, 1, nch) * 10.0 ** RNG.uniform(-3, 0.5, nch) * 300 * scale / xm).tolist()
            b = (RNG.uniform(-100, 100, nch) * scale).tolist()
            p = q.affine_params(a, b, scale, int(RNG.integers(-128, 128)), x_max=xm)
            pp, pnn = buf(p)
            d1 = bytearray(520)
            db, dn = buf(d1)
            assert lib.mpyml_pre_quant(sb, t, sn, 3, 490, db, dn, 11, pp, pnn) == 0
            d2 = bytearray(520)
            fb.pre_quant(src, 3, 490, d2, 11, p)
            assert d1 == d2


def test_image_c_equals_fallback(lib, dev):
    fb, image = dev.pre._fallback, dev.pre.image
    for _ in range(40):
        sfmt = int(RNG.integers(0, 3))
        sw, sh = int(RNG.integers(1, 40)), int(RNG.integers(1, 40))
        src = bytearray(RNG.integers(0, 256, sw * sh * (1, 2, 3)[sfmt]).astype(np.uint8).tobytes())
        cw, ch = int(RNG.integers(1, sw + 1)), int(RNG.integers(1, sh + 1))
        crop = (int(RNG.integers(0, sw - cw + 1)), int(RNG.integers(0, sh - ch + 1)), cw, ch)
        dst = (int(RNG.integers(1, 50)), int(RNG.integers(1, 50)))
        dfmt = int(RNG.choice([0, 2]))
        mode = str(RNG.choice(["nearest", "bilinear", "area"]))
        target = None if RNG.random() < 0.3 else (float(RNG.uniform(0.003, 0.05)), int(RNG.integers(-128, 128)))
        pre = image.ImagePre((sw, sh), sfmt, dst, dfmt, crop=crop, mode=mode, target=target,
                             norm=([0.004, 0.005, 0.003], [-0.5, 0.1, 0.0]), engine="py")
        n = pre.out_bytes
        d1, d2 = bytearray(n), bytearray(n)
        s_b, s_n = buf(src)
        db, dn = buf(d1)
        pp, pnn = buf(pre.params)
        assert lib.mpyml_pre_image(s_b, s_n, db, dn, pp, pnn) == 0
        fb.pre_image(src, d2, pre.params)
        assert d1 == d2, (sfmt, (sw, sh), crop, dst, dfmt, mode)


def test_image_resize_matches_numpy(dev):
    """area = block mean for integer factors; bilinear = half-pixel-centre interpolation."""
    image = dev.pre.image
    img = RNG.integers(0, 256, (48, 64)).astype(np.uint8)
    pre = image.ImagePre((64, 48), 0, (16, 12), 0, mode="area", engine="py")
    out = bytearray(pre.out_bytes)
    pre(bytearray(img.tobytes()), out)
    want = np.floor(img.reshape(12, 4, 16, 4).mean(axis=(1, 3)) + 0.5)
    assert np.array_equal(np.frombuffer(out, np.uint8).reshape(12, 16), want)
    pre = image.ImagePre((64, 48), 0, (100, 70), 0, mode="bilinear", engine="py")
    out = bytearray(pre.out_bytes)
    pre(bytearray(img.tobytes()), out)
    ys = np.clip((np.arange(70) + 0.5) * 48 / 70 - 0.5, 0, 47)
    xs = np.clip((np.arange(100) + 0.5) * 64 / 100 - 0.5, 0, 63)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, 47), np.minimum(x0 + 1, 63)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None]
    f = img.astype(np.float64)
    want = (f[y0][:, x0] * (1 - fx) + f[y0][:, x1] * fx) * (1 - fy) + (f[y1][:, x0] * (1 - fx) + f[y1][:, x1] * fx) * fy
    got = np.frombuffer(out, np.uint8).reshape(70, 100).astype(np.float64)
    assert np.abs(got - want).max() <= 1.25          # Q8 coordinates and weights, rounded result


def test_mulshift_helper_matches_python_math():
    # sanity of the reference identity the kernels rely on: nested floors = one floor
    for _ in range(2000):
        x, m, s = int(RNG.integers(-(2**24), 2**24)), int(RNG.integers(1, 2**21)), int(RNG.integers(1, 21))
        assert (((x * m) >> 15) + (1 << (s - 1))) >> s == (x * m + (1 << (s + 14))) >> (s + 15)
    assert math.isclose(1.0, 1.0)


@pytest.mark.parametrize("cpu", ["cortex-m0", "cortex-m4"])
def test_natmod_rules_on_arm(tmp_path, cpu):
    """No 64-bit helper calls (the natmod linker has no libgcc: __aeabi_lmul...), no writable data/BSS."""
    cc = shutil.which("arm-none-eabi-gcc")
    if cc is None:
        skip_or_fail("arm-none-eabi-gcc not installed (make setup)")
    for src in PRE_DIR.glob("*.c"):
        obj = tmp_path / (src.stem + ".o")
        subprocess.run([cc, f"-mcpu={cpu}", "-mthumb", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                        "-c", str(src), "-o", str(obj)], check=True, capture_output=True)
        nm = subprocess.run([cc.replace("gcc", "nm"), str(obj)], check=True, capture_output=True,
                            text=True).stdout
        undefined = {ln.split()[-1] for ln in nm.splitlines() if " U " in ln}
        assert not {u for u in undefined if u.startswith(("__aeabi_l", "__muldi", "__ashldi", "__ashrdi",
                                                          "__lshrdi", "__divdi", "__udivdi", "__clz"))}, undefined
        assert undefined <= {"memset", "memcpy", "__aeabi_idiv", "__aeabi_uidiv", "__aeabi_idivmod",
                             "__aeabi_uidivmod", "mpyml_pre_mulshift", "mpyml_pre_log2q16"}, undefined
        writable = [ln for ln in nm.splitlines() if ln.split()[-2:-1] and ln.split()[-2] in "bBdDcC"]
        assert not writable, writable
