/*
 * ops/depthwise_inplace.c - DEPTHWISE_CONV_2D_INPLACE: DEPTHWISE_CONV_2D with depth multiplier 1 whose
 * output may lie over its input (same offset and byte count; MCUNet's in-place depthwise, 2N -> N + eps).
 *
 * With one output channel per input channel, output channel c reads only input channel c, and (C the same
 * for both) its flat indices are exactly those = c mod C: writing it destroys nothing but input channel c.
 * So each (batch, channel) plane of IH x IW values is copied to the scratch first, with that channel's KH x KW
 * filter taps after it (both contiguous), then that output channel is computed from the scratch: the filter
 * window is clipped once per output pixel (no per-tap test). Arithmetic as mpyml_depthwise_conv2d_ref
 * (TFLite Micro's DepthwiseConvPerChannel): int32 sum of filter * (x + input_offset) over the valid taps
 * (KH*KW <= 65536: no overflow), bias wrapping add, MultiplyByQuantizedMultiplier, output offset, clamp.
 * Correct whether or not the output aliases the input. Scratch: IH*IW + KH*KW bytes.
 */
#include "inplace_common.h"
#include "fixedpoint.h"

int mpyml_depthwise_inplace_check(const mpyml_op_view_t *v)
{
    const mpyml_tensor_t *x = v->t[IP_X], *f = v->t[IP_FILTER];
    int bad = ip_check_conv(v, 1);
    if (bad) return bad;
    if (v->t[IP_SCRATCH]->nbytes < (uint32_t)x->dims[1] * x->dims[2] + (uint32_t)f->dims[1] * f->dims[2]) {
        return MPYML_CHK_IP_SCRATCH;
    }
    return 0;
}

/* first tap t in [0, n) with 0 <= origin + dil * t (n if none), and one past the last with origin + dil * t
 * < size: short loops, no division (ARMv6-M) */
static int32_t ip_first_tap(int32_t origin, int32_t dil, int32_t n)
{
    int32_t t = 0;
    while (t < n && origin + dil * t < 0) t++;
    return t;
}

static int32_t ip_end_tap(int32_t origin, int32_t dil, int32_t size, int32_t n)
{
    int32_t t = n;
    while (t > 0 && origin + dil * (t - 1) >= size) t--;
    return t;
}

void mpyml_depthwise_inplace_eval(const mpyml_op_view_t *v)
{
    const mpyml_depthwise_conv_2d_inplace_params_t *p =
        (const mpyml_depthwise_conv_2d_inplace_params_t *)(const void *)v->params;
    const mpyml_tensor_t *tx = v->t[IP_X], *tf = v->t[IP_FILTER], *ty = v->t[IP_Y];
    const int8_t *x = (const int8_t *)v->ptr[IP_X];
    const int8_t *f = (const int8_t *)v->ptr[IP_FILTER];
    const int32_t *bias = v->t[IP_BIAS] ? (const int32_t *)v->ptr[IP_BIAS] : NULL;
    const int32_t *mult = (const int32_t *)v->ptr[IP_MULT];
    const int32_t *shift = (const int32_t *)v->ptr[IP_SHIFT];
    int8_t *sc = (int8_t *)v->ptr[IP_SCRATCH];
    int8_t *y = (int8_t *)v->ptr[IP_Y];
    const int32_t nb = ty->dims[0], oh = ty->dims[1], ow = ty->dims[2], c = ty->dims[3];
    const int32_t ih = tx->dims[1], iw = tx->dims[2];
    const int32_t kh = tf->dims[1], kw = tf->dims[2];
    const int32_t off = p->input_offset, dh = p->dil_h, dw = p->dil_w;
    int8_t *fw = sc + ih * iw;          /* this channel's taps, [KH][KW] */
    int32_t bi, ch, i, oy, ox, fy, fx;
    for (bi = 0; bi < nb; bi++) {
        const int8_t *xb = x + bi * ih * iw * c;
        int8_t *yb = y + bi * oh * ow * c;
        for (ch = 0; ch < c; ch++) {
            for (i = 0; i < ih * iw; i++) {
                sc[i] = xb[i * c + ch];
            }
            for (i = 0; i < kh * kw; i++) {
                fw[i] = f[i * c + ch];
            }
            for (oy = 0; oy < oh; oy++) {
                const int32_t iy0 = oy * p->stride_h - p->pad_h;
                const int32_t fy0 = ip_first_tap(iy0, dh, kh), fy1 = ip_end_tap(iy0, dh, ih, kh);
                for (ox = 0; ox < ow; ox++) {
                    const int32_t ix0 = ox * p->stride_w - p->pad_w;
                    const int32_t fx0 = ip_first_tap(ix0, dw, kw), fx1 = ip_end_tap(ix0, dw, iw, kw);
                    int32_t acc = 0;
                    for (fy = fy0; fy < fy1; fy++) {
                        const int32_t row = (iy0 + dh * fy) * iw + ix0;   /* row + dw * fx >= 0 for fx >= fx0 */
                        const int8_t *wr = fw + fy * kw;
                        for (fx = fx0; fx < fx1; fx++) {
                            acc += (sc[row + dw * fx] + off) * wr[fx];
                        }
                    }
                    if (bias) {
                        acc = mpyml_wrap_add(acc, bias[ch]);
                    }
                    yb[(oy * ow + ox) * c + ch] = mpyml_requant_pos(acc, mult[ch], shift[ch], p->output_offset,
                        p->act_min, p->act_max);
                }
            }
        }
    }
}
