/*
 * ops/shape_copy.c - STRIDED_COPY: every output element read from one input element at an affine flat
 * index. TFLite STRIDED_SLICE, SLICE, SPLIT, SPLIT_V, UNPACK and TRANSPOSE all lower to it (the packer
 * folds begin / strides / masks / perm into start and four strides). Pure data movement, any type.
 *
 * Operands: IN_X input (arena or const), OUT_Y output (arena, same type).
 * @param start     0..2^31-1: flat input element index of output element 0
 * @param stride0..3 -(2^31-1)..2^31-1: input elements stepped per step of output dim i (4-D view of
 *                  the output, right-aligned), negative for reversed slices
 * out[n,h,w,c] = in[start + n*stride0 + h*stride1 + w*stride2 + c*stride3]
 * _check: same type; the lowest and the highest index the box reaches (64-bit arithmetic) lie inside
 *         0..elements(input)-1, so every partial sum the kernel forms does too.
 */
#include "op_view.h"

enum { IN_X = 0 };
enum { OUT_Y = 0 };

static uint32_t copy_esize(int type) {
    return type == MPYML_T_INT16 ? 2u : (type == MPYML_T_INT32 || type == MPYML_T_FLOAT32) ? 4u
         : type == MPYML_T_INT64 ? 8u : 1u;
}

int mpyml_strided_copy_check(const mpyml_op_view_t *v) {
    const mpyml_tensor_t *x = mpyml_view_in(v, IN_X), *y = mpyml_view_out(v, OUT_Y);
    const mpyml_strided_copy_params_t *p = (const mpyml_strided_copy_params_t *)(const void *)v->params;
    if (x->type != y->type) return MPYML_CHK_SHAPE_TYPES;
    int32_t d[4];
    mpyml_dims4(y, d);
    const int32_t *s = &p->stride0;
    int64_t lo = p->start, hi = p->start;
    for (int i = 0; i < 4; i++) {
        int64_t reach = (int64_t)(d[i] - 1) * s[i];
        if (reach < 0) lo += reach; else hi += reach;
    }
    if (lo < 0 || hi >= (int64_t)mpyml_elems(x)) return MPYML_CHK_COPY_BOUNDS;
    return 0;
}

#define COPY_LOOP(T, U)                                                                         \
    do {                                                                                        \
        const T *src = (const T *)in;                                                           \
        T *dst = (T *)o;                                                                        \
        for (int32_t n = 0; n < d[0]; n++) {                                                    \
            int32_t in_ = p->start + n * s[0];                                                  \
            for (int32_t h = 0; h < d[1]; h++) {                                                \
                int32_t ih = in_ + h * s[1];                                                    \
                for (int32_t w = 0; w < d[2]; w++) {                                            \
                    int32_t iw = ih + w * s[2];                                                 \
                    for (int32_t c = 0; c < d[3]; c++) {                                        \
                        const T *e = src + (uint32_t)(iw + c * s[3]) * (U);                     \
                        for (uint32_t u = 0; u < (U); u++) *dst++ = e[u];                       \
                    }                                                                           \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
    } while (0)

void mpyml_strided_copy_eval(const mpyml_op_view_t *v) {
    const mpyml_tensor_t *y = mpyml_view_out(v, OUT_Y);
    const mpyml_strided_copy_params_t *p = (const mpyml_strided_copy_params_t *)(const void *)v->params;
    const void *in = mpyml_view_in_ptr(v, IN_X);
    void *o = mpyml_view_out_ptr(v, OUT_Y);
    int32_t d[4];
    mpyml_dims4(y, d);
    const int32_t *s = &p->stride0;
    switch (copy_esize(y->type)) {
        case 1: COPY_LOOP(uint8_t, 1u); break;
        case 2: COPY_LOOP(uint16_t, 1u); break;
        case 4: COPY_LOOP(uint32_t, 1u); break;
        default: COPY_LOOP(uint32_t, 2u); break;     /* int64: two words (tensors are 4-aligned) */
    }
}
