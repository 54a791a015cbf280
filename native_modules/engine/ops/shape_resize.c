/*
 * ops/shape_resize.c - RESIZE_NEAREST (TFLite RESIZE_NEAREST_NEIGHBOR) and RESIZE_BILINEAR (int8,
 * TFLM reference ResizeBilinearInteger). TFLM's float / integer index arithmetic (align_corners,
 * half_pixel_centers, the 10-bit scales) runs in the packer, which stores per output row and column
 * the source indices (and the 10-bit weights); the kernels only gather and interpolate.
 *
 * RESIZE_NEAREST operands: IN_X input [N,H,W,C] (int8/uint8/int16/int32/float32), IN_ROWS const int32
 *   [OH] source row per output row, IN_COLS const int32 [OW] source column per output column, OUT_Y
 *   [N,OH,OW,C] (same type). No params. _check: 4-D, same N and C and type, table lengths OH / OW,
 *   every row in 0..H-1, every column in 0..W-1.
 * RESIZE_BILINEAR operands: IN_X int8 [N,H,W,C], IN_ROWS const int32 [OH*3] (y0, y1, wy) per output
 *   row, IN_COLS const int32 [OW*3] (x0, x1, wx), OUT_Y int8 [N,OH,OW,C]. wy = TFLM's
 *   input_y - 1024*y0 (negative near the top edge with half_pixel_centers). No params.
 *   out = round_half_away((in[y0,x0]*(1024-wy)*(1024-wx) + in[y1,x0]*wy*(1024-wx)
 *                         + in[y0,x1]*(1024-wy)*wx + in[y1,x1]*wy*wx) / 2^20), stored as its low byte.
 *   _check: as nearest, plus every weight in -1024..1024 (so the sum stays < 2^31 in int32).
 */
#include "op_view.h"

enum { IN_X = 0, IN_ROWS = 1, IN_COLS = 2 };
enum { OUT_Y = 0 };

static uint32_t resize_esize(int type) {
    return type == MPYML_T_INT16 ? 2u : (type == MPYML_T_INT32 || type == MPYML_T_FLOAT32) ? 4u : 1u;
}

static int resize_shape(const mpyml_tensor_t *x, const mpyml_tensor_t *y) {
    if (x->ndim != 4 || y->ndim != 4 || x->dims[0] != y->dims[0] || x->dims[3] != y->dims[3]) {
        return MPYML_CHK_RESIZE_RANK;
    }
    return 0;
}

/* table of n groups of `per` int32: the first two of each (or the one) in 0..lim-1, a third in -1024..1024 */
static int resize_table(const mpyml_op_view_t *v, const mpyml_tensor_t *t, uint32_t n, uint32_t per, int32_t lim) {
    if (mpyml_elems(t) != n * per) return MPYML_CHK_RESIZE_TABLE;
    const int32_t *a = (const int32_t *)mpyml_view_const(v, t);
    if (a == NULL) return MPYML_CHK_RESIZE_TABLE;
    for (uint32_t i = 0; i < n; i++, a += per) {
        if (!mpyml_in_range(a[0], 0, lim - 1)) return MPYML_CHK_RESIZE_TABLE;
        if (per == 3) {
            if (!mpyml_in_range(a[1], 0, lim - 1)) return MPYML_CHK_RESIZE_TABLE;
            if (!mpyml_in_range(a[2], -1024, 1024)) return MPYML_CHK_RESIZE_WEIGHT;
        }
    }
    return 0;
}

int mpyml_resize_nearest_check(const mpyml_op_view_t *v) {
    const mpyml_tensor_t *x = mpyml_view_in(v, IN_X), *y = mpyml_view_out(v, OUT_Y);
    if (x->type != y->type) return MPYML_CHK_SHAPE_TYPES;
    int r = resize_shape(x, y);
    if (r == 0) r = resize_table(v, mpyml_view_in(v, IN_ROWS), y->dims[1], 1, x->dims[1]);
    if (r == 0) r = resize_table(v, mpyml_view_in(v, IN_COLS), y->dims[2], 1, x->dims[2]);
    return r;
}

void mpyml_resize_nearest_eval(const mpyml_op_view_t *v) {
    const mpyml_tensor_t *x = mpyml_view_in(v, IN_X), *y = mpyml_view_out(v, OUT_Y);
    const uint8_t *in = (const uint8_t *)mpyml_view_in_ptr(v, IN_X);
    const int32_t *rows = (const int32_t *)mpyml_view_in_ptr(v, IN_ROWS);
    const int32_t *cols = (const int32_t *)mpyml_view_in_ptr(v, IN_COLS);
    uint8_t *o = (uint8_t *)mpyml_view_out_ptr(v, OUT_Y);
    uint32_t pix = (uint32_t)x->dims[3] * resize_esize(x->type);     /* bytes per pixel */
    uint32_t H = x->dims[1], W = x->dims[2];
    for (uint32_t n = 0; n < y->dims[0]; n++) {
        for (uint32_t oy = 0; oy < y->dims[1]; oy++) {
            const uint8_t *line = in + (n * H + (uint32_t)rows[oy]) * W * pix;
            for (uint32_t ox = 0; ox < y->dims[2]; ox++) {
                const uint8_t *src = line + (uint32_t)cols[ox] * pix;
                for (uint32_t k = 0; k < pix; k++) *o++ = src[k];
            }
        }
    }
}

int mpyml_resize_bilinear_check(const mpyml_op_view_t *v) {
    const mpyml_tensor_t *x = mpyml_view_in(v, IN_X), *y = mpyml_view_out(v, OUT_Y);
    int r = resize_shape(x, y);
    if (r == 0) r = resize_table(v, mpyml_view_in(v, IN_ROWS), y->dims[1], 3, x->dims[1]);
    if (r == 0) r = resize_table(v, mpyml_view_in(v, IN_COLS), y->dims[2], 3, x->dims[2]);
    return r;
}

void mpyml_resize_bilinear_eval(const mpyml_op_view_t *v) {
    const mpyml_tensor_t *x = mpyml_view_in(v, IN_X), *y = mpyml_view_out(v, OUT_Y);
    const int8_t *in = (const int8_t *)mpyml_view_in_ptr(v, IN_X);
    const int32_t *rows = (const int32_t *)mpyml_view_in_ptr(v, IN_ROWS);
    const int32_t *cols = (const int32_t *)mpyml_view_in_ptr(v, IN_COLS);
    uint8_t *o = (uint8_t *)mpyml_view_out_ptr(v, OUT_Y);
    uint32_t C = x->dims[3], H = x->dims[1], W = x->dims[2];
    for (uint32_t n = 0; n < y->dims[0]; n++) {
        for (uint32_t oy = 0; oy < y->dims[1]; oy++) {
            const int32_t *ry = rows + 3 * oy;
            const int8_t *l0 = in + (n * H + (uint32_t)ry[0]) * W * C;
            const int8_t *l1 = in + (n * H + (uint32_t)ry[1]) * W * C;
            int32_t wy = ry[2];
            for (uint32_t ox = 0; ox < y->dims[2]; ox++) {
                const int32_t *cx = cols + 3 * ox;
                uint32_t x0 = (uint32_t)cx[0] * C, x1 = (uint32_t)cx[1] * C;
                int32_t wx = cx[2];
                int32_t w00 = (1024 - wy) * (1024 - wx), w10 = wy * (1024 - wx);
                int32_t w01 = (1024 - wy) * wx, w11 = wy * wx;
                for (uint32_t c = 0; c < C; c++) {
                    int32_t acc = l0[x0 + c] * w00 + l1[x0 + c] * w10 + l0[x1 + c] * w01 + l1[x1 + c] * w11;
                    int32_t q = acc > 0 ? (acc + (1 << 19)) >> 20 : -((-acc + (1 << 19)) >> 20);
                    *o++ = (uint8_t)((uint32_t)q & 0xFFu);
                }
            }
        }
    }
}
