# mpyml.pre: preprocessing for on-device models, in C (mpyml_engine natmod) with a pure-MicroPython
# fallback that gives the same result bit for bit.
#
#   image.ImagePre   crop + resize (nearest / bilinear / area, integer) + GRAY/RGB565/RGB888
#                    conversion + quantization into a model input
#   audio.MFCC       streaming MFCC / log-mel (frames, window, FFT, mel, log, DCT in fixed point),
#                    exactly the MLPerf Tiny KWS front end by default; only new frames computed
#   quant.Quantizer  per-channel affine quantization of int features to a model input
#
# Kernels (C names in mpyml_engine; the same names in mpyml.pre._fallback):
#   pre_image(src, dst, params)                        pre_quant(src, src_off, n, dst, dst_off, params)
#   pre_logmel(plan, frame, out, out_off, scratch)     pre_mfcc(plan, logmel, off, log2max, out, out_off, tmp)
#   pre_max(buf, off, n)                               pre_i32_to_i16(src, dst, shift, n)
# kernel(name) returns the C one when the installed mpyml_engine has it, else the fallback;
# set ENGINE = "py" (or "c") before creating preprocessing objects to force one.
from . import _fallback

try:
    import mpyml_engine as _c
except ImportError:
    _c = None

ENGINE = None           # None: C when available; "c": require C; "py": always the fallback


def have_c(name="pre_logmel"):
    return _c is not None and hasattr(_c, name)


def kernel(name, engine=None):
    """The kernel function `name`: C when available (or engine='c'), else the fallback."""
    e = engine or ENGINE
    if e != "py" and _c is not None:
        f = getattr(_c, name, None)
        if f is not None:
            return f
    if e == "c":
        raise ImportError("mpyml_engine has no %s: install an mpyml_engine.mpy built with the "
                          "preprocessing kernels (or use engine='py')" % name)
    return getattr(_fallback, name)


def engine_of(fn):
    """'c' or 'py' for a kernel returned by kernel()."""
    return "py" if getattr(_fallback, getattr(fn, "__name__", ""), None) is fn else "c"
