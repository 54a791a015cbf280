/*
 * ops/shape_concat.c - CONCATENATION (TFLite CONCATENATION and PACK; TFLM reference Concatenation):
 * the inputs copied one after the other along one axis of the output. Pure data movement, any type.
 *
 * Operands: IN_FIRST.. n_in inputs (variadic, all of the output's type), then OUT_Y (arena).
 * @param axis4 0..3: the axis in the 4-D right-aligned view of the output (4 - rank + axis; the
 *              viper kernel has dims only), >= 4 - output rank
 * An input has the output's rank (its dims equal the output's off the axis; along the axis it
 * contributes dims[axis] rows) or one less (PACK: the output's dims with the axis removed; it
 * contributes one row). _check: every input of the output's type, every input's dims as above, the
 * contributions adding up to the output's dim at the axis.
 */
#include "op_view.h"

enum { IN_FIRST = 0 };
enum { OUT_Y = 0 };

static uint32_t concat_esize(int type) {
    return type == MPYML_T_INT16 ? 2u : (type == MPYML_T_INT32 || type == MPYML_T_FLOAT32) ? 4u
         : type == MPYML_T_INT64 ? 8u : 1u;
}

/* rows input t contributes along the axis, 0 = its dims do not fit the output */
static uint32_t concat_rows(const mpyml_tensor_t *t, const mpyml_tensor_t *y, int axis) {
    if (t->ndim == y->ndim) {
        for (int i = 0; i < y->ndim; i++) {
            if (i != axis && t->dims[i] != y->dims[i]) return 0;
        }
        return t->dims[axis];
    }
    if (t->ndim + 1 == y->ndim) {
        for (int i = 0; i < t->ndim; i++) {
            if (t->dims[i] != y->dims[i < axis ? i : i + 1]) return 0;
        }
        return 1;
    }
    return 0;
}

int mpyml_concat_check(const mpyml_op_view_t *v) {
    const mpyml_tensor_t *y = mpyml_view_out(v, OUT_Y);
    int axis = v->params[0] - (4 - y->ndim);
    if (axis < 0) return MPYML_CHK_CONCAT_SHAPE;
    uint32_t total = 0;
    for (int k = IN_FIRST; k < v->n_in; k++) {
        const mpyml_tensor_t *t = mpyml_view_in(v, k);
        if (t->type != y->type) return MPYML_CHK_SHAPE_TYPES;
        uint32_t r = concat_rows(t, y, axis);
        if (r == 0) return MPYML_CHK_CONCAT_SHAPE;
        total += r;                       /* <= 31 * 65535 */
    }
    if (total != y->dims[axis]) return MPYML_CHK_CONCAT_SHAPE;
    return 0;
}

void mpyml_concat_eval(const mpyml_op_view_t *v) {
    const mpyml_tensor_t *y = mpyml_view_out(v, OUT_Y);
    int axis = v->params[0] - (4 - y->ndim);
    uint8_t *o = (uint8_t *)mpyml_view_out_ptr(v, OUT_Y);
    uint32_t outer = 1, inner = concat_esize(y->type);
    for (int i = 0; i < axis; i++) outer *= y->dims[i];
    for (int i = axis + 1; i < y->ndim; i++) inner *= y->dims[i];
    for (uint32_t b = 0; b < outer; b++) {
        for (int k = IN_FIRST; k < v->n_in; k++) {
            const mpyml_tensor_t *t = mpyml_view_in(v, k);
            uint32_t chunk = concat_rows(t, y, axis) * inner;
            const uint8_t *src = (const uint8_t *)mpyml_view_in_ptr(v, k) + b * chunk;
            for (uint32_t j = 0; j < chunk; j++) *o++ = src[j];
        }
    }
}
