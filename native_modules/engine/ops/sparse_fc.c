/*
 * ops/sparse_fc.c - SPARSE_FULLY_CONNECTED: int8 FULLY_CONNECTED with CSC sparse weights (sparse_common.h),
 * bit-exact with TFLite Micro's reference FullyConnected / FullyConnectedPerChannel on the dense weights.
 *
 * Per batch row: acc[o] = bias[o] (0 if absent); for every input column k whose x[k] + input_offset is not 0,
 * acc[rows[j]] += values[j] * (x[k] + input_offset) over column k's values; then TFLite's requantization
 * (MultiplyByQuantizedMultiplier, output offset, clamp). The sum of the products is exact in int32 (K <= 65536
 * terms of |value * xo| <= 32640) and the bias add wraps as TFLite's does, so the order of the adds does not
 * change the result. Skipped: zero weights (not stored) and zero-point activations (ReLU zeros).
 * _check: output [.., O] with the input's element count K * batches (K = colptr length - 1), the CSC set,
 * bias / mult / shift ([1] or [O]) and the acc scratch.
 */
#include "sparse_common.h"
#include "fixedpoint.h"

int mpyml_sparse_fc_check(const mpyml_op_view_t *v) {
    const mpyml_tensor_t *x = mpyml_view_in(v, SP_X), *y = mpyml_view_out(v, SP_Y);
    const mpyml_sparse_fully_connected_params_t *p = (const mpyml_sparse_fully_connected_params_t *)v->params;
    uint32_t o = y->dims[y->ndim - 1];
    uint32_t cols = mpyml_elems(mpyml_view_in(v, SP_COLPTR)) - 1u;
    uint32_t batches = mpyml_elems(y) / o;
    if (cols == 0 || mpyml_elems(x) % cols != 0 || mpyml_elems(x) / cols != batches) return MPYML_CHK_SP_SHAPE;
    int r = mpyml_sparse_check_weights(v, cols, o);
    if (r) return r;
    uint32_t nq = mpyml_elems(mpyml_view_in(v, SP_MULT));
    return mpyml_sparse_check_requant(v, o, nq == 1 ? 1u : o, p->act_min, p->act_max);
}

void mpyml_sparse_fc_eval(const mpyml_op_view_t *v) {
    const mpyml_tensor_t *y = mpyml_view_out(v, SP_Y);
    const mpyml_sparse_fully_connected_params_t *p = (const mpyml_sparse_fully_connected_params_t *)v->params;
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
    int per_channel = mpyml_elems(v->t[SP_MULT]) != 1;
    uint32_t o = y->dims[y->ndim - 1];
    uint32_t cols = mpyml_elems(v->t[SP_COLPTR]) - 1u;
    uint32_t batches = mpyml_elems(y) / o;
    const int32_t off = p->input_offset;
    for (uint32_t b = 0; b < batches; b++, x += cols, out += o) {
        for (uint32_t i = 0; i < o; i++) acc[i] = bias ? (uint32_t)bias[i] : 0u;
        mpyml_sparse_cols(acc, val, rows, kind, bs, cp, x, cols, off);
        for (uint32_t i = 0; i < o; i++) {
            const uint32_t q = per_channel ? i : 0u;
            out[i] = mpyml_requant_pos((int32_t)acc[i], mult[q], shift[q], p->output_offset, p->act_min, p->act_max);
        }
    }
}
