/*
 * ops/shape_pad.c - PAD (TFLite PAD / PADV2, TFLM reference Pad): the input copied into the middle of
 * the output, every other output element set to the pad value. Pure data movement, any element type
 * of 1, 2 or 4 bytes.
 *
 * Operands: IN_X input (int8/uint8/int16/int32/float32, arena or const), OUT_Y output (same type, arena).
 * @param value      -2^31..2^31-1: the pad element (int8 -128..127, uint8 0..255, int16 -32768..32767,
 *                   int32 any, float32 its IEEE bits); TFLM int8 PAD pads with the output zero point
 * @param before0..3 0..65535: elements added before dim i of the 4-D (right-aligned) view
 * @param after0..3  0..65535: elements added after dim i
 * _check: output type == input type; output dim i == before_i + input dim i + after_i for i = 0..3;
 *         value inside the element type's range.
 */
#include "op_view.h"

enum { IN_X = 0 };
enum { OUT_Y = 0 };

static uint32_t pad_esize(int type) {
    return type == MPYML_T_INT16 ? 2u : (type == MPYML_T_INT32 || type == MPYML_T_FLOAT32) ? 4u
         : type == MPYML_T_INT64 ? 8u : 1u;
}

int mpyml_pad_check(const mpyml_op_view_t *v) {
    const mpyml_tensor_t *x = mpyml_view_in(v, IN_X), *y = mpyml_view_out(v, OUT_Y);
    const mpyml_pad_params_t *p = (const mpyml_pad_params_t *)(const void *)v->params;
    if (x->type != y->type) return MPYML_CHK_SHAPE_TYPES;
    int32_t di[4], dout[4];
    mpyml_dims4(x, di);
    mpyml_dims4(y, dout);
    const int32_t *before = &p->before0, *after = &p->after0;
    for (int i = 0; i < 4; i++) {
        if (dout[i] != before[i] + di[i] + after[i]) return MPYML_CHK_SHAPE_OUT;
    }
    switch (x->type) {
        case MPYML_T_INT8: if (!mpyml_in_range(p->value, -128, 127)) return MPYML_CHK_PAD_VALUE; break;
        case MPYML_T_UINT8: if (!mpyml_in_range(p->value, 0, 255)) return MPYML_CHK_PAD_VALUE; break;
        case MPYML_T_INT16: if (!mpyml_in_range(p->value, -32768, 32767)) return MPYML_CHK_PAD_VALUE; break;
        default: break;
    }
    return 0;
}

/* n elements of es bytes, each the little-endian bytes vb[0..es) */
static uint8_t *pad_fill(uint8_t *o, uint32_t n, uint32_t es, const uint8_t *vb) {
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < es; j++) *o++ = vb[j];
    }
    return o;
}

void mpyml_pad_eval(const mpyml_op_view_t *v) {
    const mpyml_tensor_t *x = mpyml_view_in(v, IN_X), *y = mpyml_view_out(v, OUT_Y);
    const mpyml_pad_params_t *p = (const mpyml_pad_params_t *)(const void *)v->params;
    const uint8_t *in = (const uint8_t *)mpyml_view_in_ptr(v, IN_X);
    uint8_t *o = (uint8_t *)mpyml_view_out_ptr(v, OUT_Y);
    uint32_t es = pad_esize(x->type);
    uint8_t vb[4];
    for (int j = 0; j < 4; j++) vb[j] = (uint8_t)((uint32_t)p->value >> (8 * j));
    int32_t di[4], dout[4];
    mpyml_dims4(x, di);
    mpyml_dims4(y, dout);
    uint32_t row = (uint32_t)dout[3];               /* output elements per (n, h, w) */
    uint32_t rowb = (uint32_t)di[3] * es;           /* input bytes per (n, h, w) */
    for (int32_t n = 0; n < dout[0]; n++) {
        int nin = n >= p->before0 && n < p->before0 + di[0];
        for (int32_t h = 0; h < dout[1]; h++) {
            int hin = nin && h >= p->before1 && h < p->before1 + di[1];
            for (int32_t w = 0; w < dout[2]; w++) {
                if (!hin || w < p->before2 || w >= p->before2 + di[2]) {
                    o = pad_fill(o, row, es, vb);
                    continue;
                }
                o = pad_fill(o, (uint32_t)p->before3, es, vb);
                const uint8_t *src = in + ((((uint32_t)(n - p->before0) * (uint32_t)di[1]
                    + (uint32_t)(h - p->before1)) * (uint32_t)di[2] + (uint32_t)(w - p->before2)) * rowb);
                for (uint32_t k = 0; k < rowb; k++) *o++ = src[k];
                o = pad_fill(o, (uint32_t)p->after3, es, vb);
            }
        }
    }
}
