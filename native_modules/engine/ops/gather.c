/*
 * ops/gather.c - GATHER (Keras Embedding, tf.gather): copies the input's slices named by an index tensor,
 * TFLite reference_ops::Gather semantics. Owns the kernel and its load-time check.
 *
 *   output[b, o, i, n] = input[b, o, indices[b, i], n]
 *   b: the first batch_dims dims (shared by input and indices), o: input dims batch_dims..axis-1,
 *   i: indices dims batch_dims.., n: input dims after axis (one contiguous slice of `inner` elements).
 *
 *   operands: G_IN_X   int8/uint8/int16/int32/float32, any storage (the embedding table)
 *             G_IN_IDX int16/int32, any storage (a model input, an activation or a constant)
 *             G_OUT_Y  same type (and zero point) as G_IN_X, arena, dims input[:axis] + indices[batch_dims:]
 *                      + input[axis+1:]
 *   @param axis        0..3: the gathered dim in the input's dims right-aligned into 4 (TFLite axis + 4 - rank)
 *   @param batch_end   0..axis: 4-D view dims before it are batch dims (TFLite batch_dims + 4 - input rank),
 *                      the same as the indices' leading dims
 *   @param wrap        0..1: 1 = a negative index i reads i + dims[axis] (Keras 3 Embedding's index wrap)
 * (4-D view params: a kernel needs no tensor ranks, only the 4-D dims, as the viper engine has them.)
 * Indices are VALUES the loader cannot see (an activation, or a const the caller may overwrite): eval
 * validates every index (0 <= idx < input dims[axis]) before it writes anything and returns MPYML_E_INDEX
 * on the first one outside (TFLite's Eval returns kTfLiteError); it never reads outside the input.
 */
#include <string.h>
#include "op_view.h"
#include "../mpyml_spec.h"

enum { G_IN_X = 0, G_IN_IDX = 1, G_OUT_Y = 2 };

typedef struct {
    uint32_t batch, outer, axis_size, coords, inner_bytes;
} gather_geom_t;

static uint32_t prod4(const int32_t d[4], int lo, int hi)
{
    uint32_t n = 1;
    for (int i = lo; i < hi; i++) n *= (uint32_t)d[i];
    return n;
}

/* element bytes of a type the spec allows here (int8/uint8 1, int16 2, int32/float32 4): no division helper */
static uint32_t elem_bytes(int type)
{
    return type == MPYML_T_INT16 ? 2u : ((type == MPYML_T_INT32 || type == MPYML_T_FLOAT32) ? 4u : 1u);
}

static void gather_geom(const mpyml_op_view_t *v, gather_geom_t *g)
{
    const mpyml_tensor_t *x = v->t[G_IN_X], *idx = v->t[G_IN_IDX];
    int axis = (int)v->params[0], be = (int)v->params[1];
    int bd = be - (4 - x->ndim);            /* the indices' own batch dims (checked: 0..idx rank) */
    int32_t d[4];
    mpyml_dims4(x, d);
    g->batch = prod4(d, 0, be);
    g->outer = prod4(d, be, axis);
    g->axis_size = (uint32_t)d[axis];
    g->coords = 1;
    for (int i = bd; i < idx->ndim; i++) g->coords *= idx->dims[i];
    g->inner_bytes = prod4(d, axis + 1, 4) * elem_bytes(x->type);
}

int mpyml_gather_check(const mpyml_op_view_t *v)
{
    const mpyml_tensor_t *x = v->t[G_IN_X], *idx = v->t[G_IN_IDX], *y = v->t[G_OUT_Y];
    int axis = (int)v->params[0] - (4 - x->ndim), bd = (int)v->params[1] - (4 - x->ndim);
    int i, k = 0;
    if (y->type != x->type || y->zero_point != x->zero_point) return MPYML_CHK_GATHER_TYPES;
    if (bd < 0 || bd > axis || bd > idx->ndim) return MPYML_CHK_GATHER_SHAPE;
    if (y->ndim != x->ndim + idx->ndim - 1 - bd) return MPYML_CHK_GATHER_SHAPE;
    for (i = 0; i < bd; i++) {
        if (idx->dims[i] != x->dims[i]) return MPYML_CHK_GATHER_SHAPE;
    }
    for (i = 0; i < axis; i++) {
        if (y->dims[k++] != x->dims[i]) return MPYML_CHK_GATHER_SHAPE;
    }
    for (i = bd; i < idx->ndim; i++) {
        if (y->dims[k++] != idx->dims[i]) return MPYML_CHK_GATHER_SHAPE;
    }
    for (i = axis + 1; i < x->ndim; i++) {
        if (y->dims[k++] != x->dims[i]) return MPYML_CHK_GATHER_SHAPE;
    }
    return 0;
}

static int32_t gather_index(const void *idx, int wide, int wrap, int32_t n, uint32_t j)
{
    int32_t p = wide ? ((const int32_t *)idx)[j] : (int32_t)((const int16_t *)idx)[j];
    return (wrap && p < 0) ? p + n : p;      /* p < 0: no overflow, n <= 65535 */
}

int mpyml_gather_eval(const mpyml_op_view_t *v)
{
    const uint8_t *x = (const uint8_t *)v->ptr[G_IN_X];
    const void *idx = v->ptr[G_IN_IDX];
    uint8_t *y = (uint8_t *)v->ptr[G_OUT_Y];
    int wide = v->t[G_IN_IDX]->type == MPYML_T_INT32, wrap = (int)v->params[2];
    gather_geom_t g;
    uint32_t b, o, i, n_idx;
    gather_geom(v, &g);
    n_idx = g.batch * g.coords;
    for (i = 0; i < n_idx; i++) {
        int32_t p = gather_index(idx, wide, wrap, (int32_t)g.axis_size, i);
        if (p < 0 || (uint32_t)p >= g.axis_size) return MPYML_E_INDEX;
    }
    for (b = 0; b < g.batch; b++) {
        for (o = 0; o < g.outer; o++) {
            const uint8_t *src = x + (b * g.outer + o) * g.axis_size * g.inner_bytes;
            for (i = 0; i < g.coords; i++) {
                uint32_t p = (uint32_t)gather_index(idx, wide, wrap, (int32_t)g.axis_size, b * g.coords + i);
                memcpy(y, src + p * g.inner_bytes, g.inner_bytes);
                y += g.inner_bytes;
            }
        }
    }
    return 0;
}
