# mpyml.pre.quant: integer quantization of features to a model input's scale and zero point.
#
#   q = Quantizer(model.input, a=1/16384, channels=1)   # real = x * a + b, per channel
#   q(samples, model.input.buffer)                       # int16/int32 features -> int8 input bytes
#
# The kernel (pre_quant, C or fallback) computes per element, with c = element index % channels:
#   q = clamp(((((x * m_c) >> 15) + o_c) >> sh2) + zp, lo, hi)
# affine_params() turns the real-valued mapping into (m_c, o_c, sh2) with round-half-up.
import array

from . import kernel


def _shift_for(amax, bmax, x_max):
    """sh2 in [1, 20] keeping (x_max * amax + bmax) * 2^sh2 below 2^29 (31-bit intermediates) and
    the multipliers amax * 2^(15 + sh2) below 2^31."""
    sh2 = 20
    while sh2 > 1 and ((x_max * amax + bmax + 1) * (1 << sh2) >= (1 << 29) or
                       amax * (1 << (15 + sh2)) >= (1 << 31)):
        sh2 -= 1
    if amax * (1 << (15 + sh2)) >= (1 << 31) or (x_max * amax + bmax + 1) * (1 << sh2) >= (1 << 30):
        raise ValueError("quantization gain %g / offset %g too large for inputs up to %d" % (amax, bmax, x_max))
    return sh2


def affine_params(a, b, scale, zero_point, x_max=32767, lo=-128, hi=127):
    """int32 params for pre_quant/pre_image: real_c = x * a[c] + b[c], q = round(real / scale) + zp.

    a, b: sequences (one entry per channel). x_max: largest |x| the input can hold."""
    n = len(a)
    amax = bmax = 0.0
    for c in range(n):
        amax = max(amax, abs(a[c] / scale))
        bmax = max(bmax, abs(b[c] / scale))
    sh2 = _shift_for(amax, bmax + abs(zero_point), x_max)
    p = array.array("i", [n, sh2, zero_point, lo, hi] + [0] * (2 * n))
    for c in range(n):
        p[5 + 2 * c] = int(round(a[c] / scale * (1 << (15 + sh2))))
        p[6 + 2 * c] = int(round(b[c] / scale * (1 << sh2))) + (1 << (sh2 - 1))
    return p


def _scale_zp(t):
    if isinstance(t, (tuple, list)):
        return t[0], t[1]
    return t.scale, t.zero_point


class Quantizer:
    """Quantize features x (int arrays) to an int8 tensor: real_c = x * a_c + b_c (c = index % channels).

    target: a tensor (scale, zero_point attributes) or (scale, zero_point). a, b: a number or one
    per channel. x_max: largest |x| (32767 for int16 features)."""

    def __init__(self, target, a=1.0, b=0.0, channels=1, x_max=32767, engine=None):
        scale, zp = _scale_zp(target)
        aa = list(a) if isinstance(a, (list, tuple)) else [a] * channels
        bb = list(b) if isinstance(b, (list, tuple)) else [b] * channels
        if len(aa) != channels or len(bb) != channels:
            raise ValueError("a and b need one value per channel")
        self.params = affine_params(aa, bb, scale, zp, x_max)
        self._q = kernel("pre_quant", engine)

    def __call__(self, src, dst, src_off=0, n=-1, dst_off=0):
        if n < 0:
            n = len(src) - src_off
        self._q(src, src_off, n, dst, dst_off, self.params)
