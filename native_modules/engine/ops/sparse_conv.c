/*
 * ops/sparse_conv.c - SPARSE_CONV_2D: int8 CONV_2D (any KH x KW, stride, dilation, padding; per-channel
 * requantization) with the filter [O, KH, KW, C] stored as CSC sparse columns in (ky, kx, c) order
 * (sparse_common.h), bit-exact with TFLite Micro's reference ConvPerChannel on the dense filter.
 *
 * Per output pixel: acc[o] = bias[o] (0 if absent); for every tap (ky, kx) inside the input (padding taps
 * contribute nothing, as in TFLite) and every channel c whose x + input_offset is not 0, column
 * (ky * KW + kx) * C + c scatters values * (x + input_offset) into acc; then per-channel requantization.
 * Exact int32 sums (KH*KW*C <= 65536), wrapping bias add: order-independent, as in sparse_fc.c.
 * _check: 4-D input and output with the same batch, colptr of KH*KW*C + 1 entries, output channels O = the
 * output's last dim, the CSC set, bias / mult / shift [O] and the acc scratch.
 */
#include "sparse_common.h"
#include "fixedpoint.h"

int mpyml_sparse_conv_check(const mpyml_op_view_t *v) {
    const mpyml_tensor_t *x = mpyml_view_in(v, SP_X), *y = mpyml_view_out(v, SP_Y);
    const mpyml_sparse_conv_2d_params_t *p = (const mpyml_sparse_conv_2d_params_t *)v->params;
    if (x->ndim != 4 || y->ndim != 4 || x->dims[0] != y->dims[0]) return MPYML_CHK_SP_SHAPE;
    uint32_t cols = mpyml_elems(mpyml_view_in(v, SP_COLPTR)) - 1u;
    uint32_t taps = (uint32_t)p->kernel_h * (uint32_t)p->kernel_w;      /* <= 1024 * 1024 */
    if (taps > 65536u || taps * x->dims[3] != cols) return MPYML_CHK_SP_SHAPE;
    uint32_t o = y->dims[3];
    int r = mpyml_sparse_check_weights(v, cols, o);
    if (r) return r;
    return mpyml_sparse_check_requant(v, o, o, p->act_min, p->act_max);
}

void mpyml_sparse_conv_eval(const mpyml_op_view_t *v) {
    const mpyml_tensor_t *xt = mpyml_view_in(v, SP_X), *y = mpyml_view_out(v, SP_Y);
    const mpyml_sparse_conv_2d_params_t *p = (const mpyml_sparse_conv_2d_params_t *)v->params;
    const int8_t *x = (const int8_t *)mpyml_view_in_ptr(v, SP_X);
    const int8_t *val = (const int8_t *)mpyml_view_in_ptr(v, SP_VALUES);
    const void *rows = mpyml_view_in_ptr(v, SP_ROWS);
    const int32_t *cp = (const int32_t *)mpyml_view_in_ptr(v, SP_COLPTR);
    const int32_t *bias = (const int32_t *)mpyml_view_in_ptr(v, SP_BIAS);
    const int32_t *mult = (const int32_t *)mpyml_view_in_ptr(v, SP_MULT);
    const int32_t *shift = (const int32_t *)mpyml_view_in_ptr(v, SP_SHIFT);
    int8_t *out = (int8_t *)mpyml_view_out_ptr(v, SP_Y);
    uint32_t *acc = (uint32_t *)mpyml_view_out_ptr(v, SP_ACC);
    const int kind = mpyml_sparse_kind(v->t[SP_ROWS]);
    const uint32_t bs = mpyml_sparse_block_of(v->t[SP_VALUES], v->t[SP_ROWS]);
    const int32_t H = xt->dims[1], W = xt->dims[2], C = xt->dims[3];
    const int32_t N = y->dims[0], OH = y->dims[1], OW = y->dims[2], O = y->dims[3];
    const int32_t KH = p->kernel_h, KW = p->kernel_w, off = p->input_offset;
    for (int32_t n = 0; n < N; n++) {
        const int8_t *xb = x + n * H * W * C;
        for (int32_t oy = 0; oy < OH; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < OW; ox++, out += O) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                for (int32_t i = 0; i < O; i++) acc[i] = bias ? (uint32_t)bias[i] : 0u;
                for (int32_t ky = 0; ky < KH; ky++) {
                    const int32_t iy = iy0 + p->dil_h * ky;
                    if (iy < 0 || iy >= H) continue;
                    for (int32_t kx = 0; kx < KW; kx++) {
                        const int32_t ix = ix0 + p->dil_w * kx;
                        if (ix < 0 || ix >= W) continue;
                        const int8_t *px = xb + (iy * W + ix) * C;
                        const int32_t *cpk = cp + (ky * KW + kx) * C;
                        mpyml_sparse_cols(acc, val, rows, kind, bs, cpk, px, (uint32_t)C, off);
                    }
                }
                for (int32_t i = 0; i < O; i++) {
                    out[i] = mpyml_requant_pos((int32_t)acc[i], mult[i], shift[i], p->output_offset, p->act_min,
                        p->act_max);
                }
            }
        }
    }
}
