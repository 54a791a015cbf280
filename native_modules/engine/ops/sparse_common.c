/*
 * ops/sparse_common.c - load-time checks shared by the sparse-weight ops (see sparse_common.h): the CSC
 * structure (column pointers 0 .. nnz, never decreasing; row indices < O, strictly increasing inside a
 * column, so no column holds more than O values and no accumulator gets more than cols terms), that rows and
 * colptr lie in the header's sparse section, and the requantization operands. 4-bit row gaps (rows int8
 * [nnz / 2]) instead of row indices: every column pointer even, and every row the gaps reach inside a column
 * (0 + the gaps so far) < O (never decreasing by construction; same check code, SP_INDEX). Block indices
 * (values = B x rows, B 4 / 8 / 16, else SP_VALUES): O a multiple of B and every index < O / B. A row may repeat
 * there (the packer's zero-valued fillers add 0, so a packed model's sums are the exact ones); whatever a file
 * holds, the adds wrap (uint32): a hostile file can change outputs, never the memory touched.
 */
#include "sparse_common.h"

static int in_sparse_section(const mpyml_op_view_t *v, const mpyml_tensor_t *t) {
    uint32_t start = v->trusted_size - v->sparse_size;      /* loader: sparse_size <= trusted_size */
    return t->storage == MPYML_S_CONST && t->offset >= start && t->offset - start <= v->sparse_size
        && t->nbytes <= v->sparse_size - (t->offset - start);
}

int mpyml_sparse_check_weights(const mpyml_op_view_t *v, uint32_t cols, uint32_t o) {
    const mpyml_tensor_t *val = mpyml_view_in(v, SP_VALUES), *rows = mpyml_view_in(v, SP_ROWS);
    const mpyml_tensor_t *cp = mpyml_view_in(v, SP_COLPTR);
    if (!in_sparse_section(v, rows) || !in_sparse_section(v, cp)) return MPYML_CHK_SP_SECTION;
    const int kind = mpyml_sparse_kind(rows);
    const uint32_t bs = mpyml_sparse_block_of(val, rows);
    uint32_t nnz = kind == SP_ROWS_GAP4 ? mpyml_elems(val) : mpyml_elems(rows);
    if (val->zero_point != 0 || bs == 0) return MPYML_CHK_SP_VALUES;
    if (cols == 0 || cols > 65536u || mpyml_elems(cp) != cols + 1u) return MPYML_CHK_SP_SHAPE;
    if (o == 0 || o > 65536u || o % bs != 0) return MPYML_CHK_SP_SHAPE;
    const uint32_t n_rows = o / bs;                   /* what a row (block) index may name */
    if (kind == SP_ROWS_U8 && n_rows > 256u) return MPYML_CHK_SP_SHAPE;
    if (kind == SP_ROWS_GAP4 && (nnz & 1u || mpyml_elems(rows) != nnz / 2u)) return MPYML_CHK_SP_SHAPE;
    const int32_t *p = (const int32_t *)mpyml_view_const(v, cp);
    const uint8_t *r8 = (const uint8_t *)mpyml_view_const(v, rows);
    const uint16_t *r16 = (const uint16_t *)(const void *)r8;
    if (p[0] != 0 || (uint32_t)p[cols] != nnz) return MPYML_CHK_SP_INDEX;
    for (uint32_t k = 0; k < cols; k++) {
        if (p[k + 1] < p[k] || (uint32_t)p[k + 1] > nnz) return MPYML_CHK_SP_INDEX;
        if (kind == SP_ROWS_GAP4) {
            if (p[k + 1] & 1) return MPYML_CHK_SP_INDEX;
            uint32_t r = 0;
            for (uint32_t j = (uint32_t)p[k]; j < (uint32_t)p[k + 1]; j++) {
                r += mpyml_sparse_gap(r8, j);             /* <= 15 * 2^31: checked every step, never wraps */
                if (r >= o) return MPYML_CHK_SP_INDEX;
            }
            continue;
        }
        int32_t last = -1;
        for (uint32_t j = (uint32_t)p[k]; j < (uint32_t)p[k + 1]; j++) {
            int32_t r = kind == SP_ROWS_U16 ? (int32_t)r16[j] : (int32_t)r8[j];
            if (r <= last || (uint32_t)r >= n_rows) return MPYML_CHK_SP_INDEX;
            last = r;
        }
    }
    return 0;
}

int mpyml_sparse_check_requant(const mpyml_op_view_t *v, uint32_t o, uint32_t n_q, int32_t act_min,
    int32_t act_max) {
    const mpyml_tensor_t *b = mpyml_view_in(v, SP_BIAS), *acc = mpyml_view_out(v, SP_ACC);
    const mpyml_tensor_t *m = mpyml_view_in(v, SP_MULT), *s = mpyml_view_in(v, SP_SHIFT);
    if ((b && mpyml_elems(b) != o) || mpyml_elems(acc) != o) return MPYML_CHK_SP_SHAPE;
    if (mpyml_elems(m) != n_q || mpyml_elems(s) != n_q) return MPYML_CHK_SP_SHAPE;
    const int32_t *mv = (const int32_t *)mpyml_view_const(v, m), *sv = (const int32_t *)mpyml_view_const(v, s);
    for (uint32_t i = 0; i < n_q; i++) {
        if (mv[i] < 0 || !mpyml_in_range(sv[i], -31, 30)) return MPYML_CHK_SP_REQUANT;
    }
    if (act_min > act_max) return MPYML_CHK_SP_ACT;
    return 0;
}
