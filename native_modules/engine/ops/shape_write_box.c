/*
 * ops/shape_write_box.c - WRITE_BOX: the input copied into a box of the output at given offsets; the
 * other output elements are left as they are. The packer's patch plans (host/mpyml/patch.py,
 * `mpyml pack --max-ram`) run the first stage of a CNN tile by tile; each tile's last op writes a small
 * buffer and a WRITE_BOX puts it at its place in the whole stage output. Pure data movement, any type.
 *
 * Operands: IN_X input (arena), OUT_Y output (arena, same type; it may be larger).
 * @param offset0..3 0..65535: where input element [0,0,0,0] lands, per dim of the 4-D (right-aligned) views
 * out[n+offset0, h+offset1, w+offset2, c+offset3] = in[n,h,w,c]
 * _check: same type; offset_i + input dim i <= output dim i for i = 0..3 (so every byte written lies
 *         inside the output tensor).
 */
#include "op_view.h"

enum { IN_X = 0 };
enum { OUT_Y = 0 };

static uint32_t box_esize(int type) {
    return type == MPYML_T_INT16 ? 2u : (type == MPYML_T_INT32 || type == MPYML_T_FLOAT32) ? 4u
         : type == MPYML_T_INT64 ? 8u : 1u;
}

int mpyml_write_box_check(const mpyml_op_view_t *v) {
    const mpyml_tensor_t *x = mpyml_view_in(v, IN_X), *y = mpyml_view_out(v, OUT_Y);
    const mpyml_write_box_params_t *p = (const mpyml_write_box_params_t *)(const void *)v->params;
    if (x->type != y->type) return MPYML_CHK_SHAPE_TYPES;
    int32_t di[4], dout[4];
    mpyml_dims4(x, di);
    mpyml_dims4(y, dout);
    const int32_t *off = &p->offset0;
    for (int i = 0; i < 4; i++) {
        /* params are 0..65535 (spec range, checked by the loader) and dims < 2^31: no overflow */
        if (off[i] > dout[i] || di[i] > dout[i] - off[i]) return MPYML_CHK_BOX_BOUNDS;
    }
    return 0;
}

void mpyml_write_box_eval(const mpyml_op_view_t *v) {
    const mpyml_tensor_t *x = mpyml_view_in(v, IN_X), *y = mpyml_view_out(v, OUT_Y);
    const mpyml_write_box_params_t *p = (const mpyml_write_box_params_t *)(const void *)v->params;
    const uint8_t *in = (const uint8_t *)mpyml_view_in_ptr(v, IN_X);
    uint8_t *o = (uint8_t *)mpyml_view_out_ptr(v, OUT_Y);
    uint32_t es = box_esize(x->type);
    int32_t di[4], dout[4];
    mpyml_dims4(x, di);
    mpyml_dims4(y, dout);
    uint32_t rowb = (uint32_t)di[3] * es;           /* bytes of one input (n, h, w) run */
    for (int32_t n = 0; n < di[0]; n++) {
        for (int32_t h = 0; h < di[1]; h++) {
            uint32_t base = (((uint32_t)(n + p->offset0) * (uint32_t)dout[1] + (uint32_t)(h + p->offset1))
                * (uint32_t)dout[2] + (uint32_t)p->offset2) * (uint32_t)dout[3] + (uint32_t)p->offset3;
            uint8_t *dst = o + base * es;
            for (int32_t w = 0; w < di[2]; w++) {
                for (uint32_t k = 0; k < rowb; k++) dst[k] = in[k];
                in += rowb;
                dst += (uint32_t)dout[3] * es;
            }
        }
    }
}
