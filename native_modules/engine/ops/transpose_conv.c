/*
 * ops/transpose_conv.c - int8 TRANSPOSE_CONV, bit-exact with TFLite Micro's
 * reference_integer_ops::TransposeConv (per-channel requantization, optional int32 bias).
 *
 * TFLM scatters every input pixel into an int32 scratch copy of the output, then requantizes. This
 * kernel gathers instead, output element by output element: output (oy, ox) receives input (iy, ix)
 * through filter tap (ky, kx) when oy = iy * stride_h - pad_h + ky (same for x), i.e. for
 * ky = (oy + pad_h) mod stride_h + j * stride_h with iy = (oy + pad_h) div stride_h - j. The int32
 * sum of the same products is the same (wrapping addition is commutative), and no scratch is needed.
 * The quotient and remainder are carried incrementally: no division, no libc, no float.
 */
#include "op_view.h"
#include "fixedpoint.h"
#include "../mpyml_spec.h"

/*
 * TRANSPOSE_CONV
 *   operands: IN_X input int8 [N,IH,IW,I] (any), IN_FILTER int8 const [O,KH,KW,I],
 *             IN_BIAS int32 const [O] (optional), IN_MULT int32 const [O], IN_SHIFT int32 const [O],
 *             OUT_Y int8 arena [N,OH,OW,O]
 *   @param stride_w, stride_h 1..1024   @param pad_w, pad_h 0..1024 (leading padding)
 *   @param input_offset -127..128 (-input zero point)   @param output_offset -128..127
 *   @param act_min, act_max -128..127
 *   checks: TCONV_RANK, TCONV_SHAPE, TCONV_BIAS, TCONV_REQUANT (values of mult / shift), TCONV_ACT
 */
enum { IN_X = 0, IN_FILTER = 1, IN_BIAS = 2, IN_MULT = 3, IN_SHIFT = 4, OUT_Y = 5 };

int mpyml_transpose_conv_check(const mpyml_op_view_t *v)
{
    const mpyml_transpose_conv_params_t *p = (const mpyml_transpose_conv_params_t *)(const void *)v->params;
    const mpyml_tensor_t *x = v->t[IN_X], *f = v->t[IN_FILTER], *b = v->t[IN_BIAS];
    const mpyml_tensor_t *m = v->t[IN_MULT], *s = v->t[IN_SHIFT], *y = v->t[OUT_Y];
    uint32_t o, i;
    const int32_t *mv, *sv;
    if (x->ndim != 4 || f->ndim != 4 || y->ndim != 4) return MPYML_CHK_TCONV_RANK;
    if (x->dims[0] != y->dims[0] || f->dims[3] != x->dims[3] || f->dims[0] != y->dims[3]) {
        return MPYML_CHK_TCONV_SHAPE;
    }
    o = f->dims[0];
    if (b != NULL && mpyml_elems(b) != o) return MPYML_CHK_TCONV_BIAS;
    if (mpyml_elems(m) != o || mpyml_elems(s) != o) return MPYML_CHK_TCONV_REQUANT;
    mv = (const int32_t *)mpyml_view_const(v, m);
    sv = (const int32_t *)mpyml_view_const(v, s);
    for (i = 0; i < o; i++) {
        if (mv[i] < 0 || !mpyml_in_range(sv[i], -31, 30)) return MPYML_CHK_TCONV_REQUANT;
    }
    if (p->act_min > p->act_max) return MPYML_CHK_TCONV_ACT;
    return 0;
}

void mpyml_transpose_conv_eval(const mpyml_op_view_t *v)
{
    const mpyml_transpose_conv_params_t *p = (const mpyml_transpose_conv_params_t *)(const void *)v->params;
    const mpyml_tensor_t *tx = v->t[IN_X], *tf = v->t[IN_FILTER], *ty = v->t[OUT_Y];
    const int8_t *x = (const int8_t *)v->ptr[IN_X];
    const int8_t *f = (const int8_t *)v->ptr[IN_FILTER];
    const int32_t *bias = v->t[IN_BIAS] ? (const int32_t *)v->ptr[IN_BIAS] : NULL;
    const int32_t *mult = (const int32_t *)v->ptr[IN_MULT];
    const int32_t *shift = (const int32_t *)v->ptr[IN_SHIFT];
    int8_t *y = (int8_t *)v->ptr[OUT_Y];
    const int32_t nb = ty->dims[0], oh = ty->dims[1], ow = ty->dims[2], oc = ty->dims[3];
    const int32_t ih = tx->dims[1], iw = tx->dims[2], ic = tx->dims[3];
    const int32_t kh = tf->dims[1], kw = tf->dims[2];
    const int32_t sh = p->stride_h, sw = p->stride_w, in_off = p->input_offset;
    int32_t qy0 = 0, ry0 = p->pad_h, qx0 = 0, rx0 = p->pad_w;
    int32_t bi, oy, ox, o, ky, kx, iy, ix, c;
    /* (pad) div / mod stride by subtraction: pad <= 1024 */
    while (ry0 >= sh) { ry0 -= sh; qy0++; }
    while (rx0 >= sw) { rx0 -= sw; qx0++; }
    for (bi = 0; bi < nb; bi++) {
        const int8_t *xb = x + bi * ih * iw * ic;
        int32_t qy = qy0, ry = ry0;         /* (oy + pad_h) = qy * sh + ry */
        for (oy = 0; oy < oh; oy++) {
            int32_t qx = qx0, rx = rx0;
            for (ox = 0; ox < ow; ox++) {
                for (o = 0; o < oc; o++) {
                    const int8_t *fo = f + o * kh * kw * ic;
                    uint32_t acc = 0;       /* int32 wraparound, as TFLite's int32 adds */
                    for (ky = ry, iy = qy; ky < kh && iy >= 0; ky += sh, iy--) {
                        if (iy >= ih) continue;
                        for (kx = rx, ix = qx; kx < kw && ix >= 0; kx += sw, ix--) {
                            const int8_t *xp, *fp;
                            if (ix >= iw) continue;
                            xp = xb + (iy * iw + ix) * ic;
                            fp = fo + (ky * kw + kx) * ic;
                            for (c = 0; c < ic; c++) {
                                acc += (uint32_t)((xp[c] + in_off) * fp[c]);
                            }
                        }
                    }
                    if (bias) acc += (uint32_t)bias[o];
                    *y++ = mpyml_requant((int32_t)acc, mult[o], shift[o], p->output_offset, p->act_min, p->act_max);
                }
                if (++rx == sw) { rx = 0; qx++; }
            }
            if (++ry == sh) { ry = 0; qy++; }
        }
    }
}
