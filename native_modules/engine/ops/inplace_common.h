/*
 * ops/inplace_common.h - what the in-place conv variants (depthwise_inplace.c, conv2d_inplace.c) share:
 * the loader checks of their conv operands (the same rules, in the same order and with the same check
 * codes, as check_op() in mpyml_engine.c applies to DEPTHWISE_CONV_2D / CONV_2D) and of the scratch.
 * Operand order of both ops: input, filter, bias (optional), mult, shift, scratch -> output.
 */
#ifndef MPYML_INPLACE_COMMON_H
#define MPYML_INPLACE_COMMON_H

#include "op_view.h"
#include "../mpyml_spec.h"

enum { IP_X = 0, IP_FILTER = 1, IP_BIAS = 2, IP_MULT = 3, IP_SHIFT = 4, IP_SCRATCH = 5, IP_Y = 6 };

static inline int ip_overlaps(const mpyml_tensor_t *a, const mpyml_tensor_t *b)
{
    return a->offset < b->offset + b->nbytes && b->offset < a->offset + a->nbytes;
}

/* p points at the 11 conv params (stride_w .. depth_multiplier); depthwise: filter [1,KH,KW,C] */
static inline int ip_check_conv(const mpyml_op_view_t *v, int depthwise)
{
    const int32_t *p = v->params;
    const mpyml_tensor_t *x = v->t[IP_X], *f = v->t[IP_FILTER], *b = v->t[IP_BIAS], *y = v->t[IP_Y];
    const mpyml_tensor_t *m = v->t[IP_MULT], *s = v->t[IP_SHIFT], *sc = v->t[IP_SCRATCH];
    const int32_t *mv, *sv;
    uint32_t o, i;
    if (x->ndim != 4 || y->ndim != 4) return MPYML_CHK_RANK;
    if (f->ndim != 4 || f->zero_point != 0) return MPYML_CHK_FILTER;
    if (p[8] > p[9]) return MPYML_CHK_ACTIVATION;
    o = y->dims[3];
    if (x->dims[0] != y->dims[0]) return MPYML_CHK_BATCH;
    /* the kernels step dil_h input rows at a time in int32 */
    if ((uint64_t)p[3] * x->dims[2] * x->dims[3] > 0x7FFFFFFFu) return MPYML_CHK_DILATION;
    if (depthwise) {
        if (f->dims[0] != 1 || f->dims[3] != o || x->dims[3] != o) return MPYML_CHK_SHAPE;
        if ((uint32_t)f->dims[1] * f->dims[2] > 65536u) return MPYML_CHK_DEPTH;
    } else {
        if (f->dims[0] != o || f->dims[3] != x->dims[3]) return MPYML_CHK_SHAPE;
        if ((uint32_t)f->dims[1] * f->dims[2] * f->dims[3] > 65536u) return MPYML_CHK_DEPTH;
    }
    if (b != NULL && mpyml_elems(b) != o) return MPYML_CHK_BIAS;
    if (mpyml_elems(m) != o || mpyml_elems(s) != o) return MPYML_CHK_REQUANT;
    mv = (const int32_t *)mpyml_view_const(v, m);
    sv = (const int32_t *)mpyml_view_const(v, s);
    for (i = 0; i < o; i++) {
        if (mv[i] < 0 || !mpyml_in_range(sv[i], -31, 30)) return MPYML_CHK_REQUANT;
    }
    /* the generic loader rule lets an IN_PLACE record alias the output exactly onto any input: only the
     * input may be aliased, the scratch shares no byte with either */
    if (ip_overlaps(sc, x) || ip_overlaps(sc, y)) return MPYML_CHK_IP_SCRATCH;
    return 0;
}

#endif /* MPYML_INPLACE_COMMON_H */
