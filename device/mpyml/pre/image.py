# mpyml.pre.image: crop + resize + pixel conversion + quantization of camera frames, in one pass.
#
#   pre = ImagePre((160, 120), RGB565, (96, 96), GRAY, crop=(20, 0, 120, 120), mode="area",
#                  target=model.input)              # model input scale / zero point
#   pre(frame, model.input.buffer)                   # allocates nothing
#
# Pixel values v (0..255 per channel) map to the model's real input as real = v * norm[0] + norm[1]
# (per channel with norm=([a_r, a_g, a_b], [b_r, b_g, b_b])); the default norm (1/255, 0) is the
# usual [0, 1] input scaling. target=None writes plain uint8 pixels (0..255) instead.
# Modes: "nearest", "bilinear" (half-pixel centres, Q8 weights), "area" (box average; the right
# choice for downscaling). Formats: GRAY, RGB565 (big-endian, as ESP32 cameras deliver it),
# RGB888 in; GRAY or RGB888 (HWC) out.
import array

from ..sensors import GRAY, RGB565, RGB888

from . import kernel
from .quant import _scale_zp, affine_params

MODES = {"nearest": 0, "bilinear": 1, "area": 2}


class ImagePre:
    def __init__(self, src_size, src_fmt, dst_size, dst_fmt=GRAY, crop=None, mode="area", target=None,
                 norm=(1 / 255, 0.0), engine=None):
        sw, sh = src_size
        dw, dh = dst_size
        if crop is None:
            crop = (0, 0, sw, sh)
        elif crop == "center":                    # largest centred crop with the output's aspect
            cw = min(sw, sh * dw // dh)
            ch = min(sh, sw * dh // dw)
            crop = ((sw - cw) // 2, (sh - ch) // 2, cw, ch)
        cx, cy, cw, ch = crop
        if src_fmt not in (GRAY, RGB565, RGB888) or dst_fmt not in (GRAY, RGB888):
            raise ValueError("formats: GRAY/RGB565/RGB888 in, GRAY/RGB888 out")
        if cx < 0 or cy < 0 or cw < 1 or ch < 1 or cx + cw > sw or cy + ch > sh:
            raise ValueError("crop %r outside the %dx%d frame" % (crop, sw, sh))
        if cw * ch > (1 << 23) or max(sw, sh, dw, dh) > 16384:
            raise ValueError("frame too large")
        if mode not in MODES:
            raise ValueError("mode must be nearest, bilinear or area")
        nc = 1 if dst_fmt == GRAY else 3
        a, b = norm
        a = list(a) if isinstance(a, (list, tuple)) else [a] * nc
        b = list(b) if isinstance(b, (list, tuple)) else [b] * nc
        if target is None:
            q = affine_params([1.0] * nc, [0.0] * nc, 1.0, 0, x_max=255, lo=0, hi=255)
        else:
            scale, zp = _scale_zp(target)
            q = affine_params(a[:nc], b[:nc], scale, zp, x_max=255)
        head = [sw, sh, src_fmt, cx, cy, cw, ch, dw, dh, dst_fmt, MODES[mode], q[1], q[2], q[3], q[4]]
        self.params = array.array("i", head + list(q[5:]))
        self.crop = crop
        self.src_size = src_size
        self.dst_size = dst_size
        self.dst_fmt = dst_fmt
        self.out_bytes = dw * dh * nc
        self._k = kernel("pre_image", engine)

    def __call__(self, src, dst):
        """Preprocess one frame src into dst (out_bytes long, e.g. model.input.buffer)."""
        self._k(src, dst, self.params)
