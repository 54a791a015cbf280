/*
 * ops/sparse_common.h - what the sparse-weight kernels (sparse_fc.c, sparse_conv.c) share: the load-time
 * checks of a CSC weight set (values / rows / colptr, docs/FORMAT.md "Sparse weights") and the column
 * scatter of the eval loops.
 *
 * Operands of both ops: IN_X, IN_VALUES int8 [nnz], IN_ROWS the row of each value: uint8 [nnz] (O <= 256) or
 * int16 [nnz] (read as uint16) indices, or int8 [nnz / 2] 4-bit gaps (entry j's gap = nibble j, low nibble
 * first; inside a column the row starts at 0 and each entry adds its gap; every column holds an even number of
 * entries; the packer bridges gaps over 15 and pads odd columns with zero-valued filler entries, counted in
 * nnz), or uint8 / int16 block indices (values = B x rows, B = 4, 8 or 16: entry j holds output channels
 * rows[j] * B .. + B - 1; O a multiple of B; sparse_block.h), IN_COLPTR int32 [cols + 1], IN_BIAS int32 [O] or
 * absent, IN_MULT / IN_SHIFT int32 [O] (FC also [1]); OUT_Y int8, OUT_ACC int32 [O] scratch. rows and colptr are trusted operands in the sparse section: invoke
 * reads the engine's validated copies, so a scatter index is always < O and every column range inside values.
 */
#ifndef MPYML_SPARSE_COMMON_H
#define MPYML_SPARSE_COMMON_H

#include "op_view.h"
#include "../mpyml_spec.h"
#include "sparse_block.h"

#if defined(__GNUC__)
#define MPYML_RESTRICT __restrict__
#else
#define MPYML_RESTRICT
#endif

enum { SP_X = 0, SP_VALUES = 1, SP_ROWS = 2, SP_COLPTR = 3, SP_BIAS = 4, SP_MULT = 5, SP_SHIFT = 6 };
enum { SP_Y = 0, SP_ACC = 1 };
enum { SP_ROWS_U8 = 0, SP_ROWS_U16 = 1, SP_ROWS_GAP4 = 2 };

/* the rows encoding of a validated op, from the rows operand's type */
static inline int mpyml_sparse_kind(const mpyml_tensor_t *rows)
{
    return rows->type == MPYML_T_INT16 ? SP_ROWS_U16 : rows->type == MPYML_T_INT8 ? SP_ROWS_GAP4 : SP_ROWS_U8;
}

/* values per row entry: 1 (row indices, 4-bit gaps), or B = 4, 8, 16 (block indices: values = B x rows);
 * 0 for any other ratio (the loader refuses it: SP_VALUES). The kernels call it on validated operands. */
static inline uint32_t mpyml_sparse_block_of(const mpyml_tensor_t *val, const mpyml_tensor_t *rows)
{
    const uint32_t nv = mpyml_elems(val), nr = mpyml_elems(rows);
    if (rows->type == MPYML_T_INT8 || nv == nr) return 1u;
    if (nr == 0 || nv % nr != 0) return 0u;
    const uint32_t b = nv / nr;
    return b == 4u || b == 8u || b == 16u ? b : 0u;
}

/* the 4-bit gap of entry j */
static inline uint32_t mpyml_sparse_gap(const uint8_t *g, uint32_t j)
{
    return ((uint32_t)g[j >> 1] >> ((j & 1u) << 2)) & 15u;
}

/* the CSC weight set of `cols` columns and `o` output channels; 0 or a check code */
int mpyml_sparse_check_weights(const mpyml_op_view_t *v, uint32_t cols, uint32_t o);
/* bias [O] (or absent), mult / shift [n_q] in range, acc scratch int32 [O], act_min <= act_max */
int mpyml_sparse_check_requant(const mpyml_op_view_t *v, uint32_t o, uint32_t n_q, int32_t act_min,
    int32_t act_max);

/* For each of n columns k with xo = x[k] + off != 0: acc[rows[j]] += values[j] * xo over j in
 * [cp[k], cp[k+1]). uint32 (wrapping) adds of exact int32 products. u8 rows (O <= 256) or u16 rows. */
/* one body for both row widths: row_t is uint8_t (mpyml_sparse_cols_u8) or uint16_t (mpyml_sparse_cols_u16) */
#define MPYML_SPARSE_COLS(name, row_t)                                                                        \
    static inline void name(uint32_t *MPYML_RESTRICT acc, const int8_t *MPYML_RESTRICT val,                  \
        const row_t *MPYML_RESTRICT r, const int32_t *MPYML_RESTRICT cp, const int8_t *MPYML_RESTRICT x,      \
        uint32_t n, int32_t off)                                                                             \
    {                                                                                                        \
        for (uint32_t k = 0; k < n; k++) {                                                                   \
            const int32_t xo = x[k] + off;                                                                   \
            if (xo == 0) continue;                                                                           \
            uint32_t j = (uint32_t)cp[k];                                                                    \
            const uint32_t j1 = (uint32_t)cp[k + 1];                                                         \
            for (; j + 4 <= j1; j += 4) {                                                                    \
                const uint32_t r0 = r[j], r1 = r[j + 1], r2 = r[j + 2], r3 = r[j + 3];                       \
                const int32_t p0 = val[j] * xo, p1 = val[j + 1] * xo, p2 = val[j + 2] * xo,                  \
                    p3 = val[j + 3] * xo;                                                                    \
                acc[r0] += (uint32_t)p0;                                                                     \
                acc[r1] += (uint32_t)p1;                                                                     \
                acc[r2] += (uint32_t)p2;                                                                     \
                acc[r3] += (uint32_t)p3;                                                                     \
            }                                                                                                \
            for (; j < j1; j++) acc[r[j]] += (uint32_t)(val[j] * xo);                                        \
        }                                                                                                    \
    }
MPYML_SPARSE_COLS(mpyml_sparse_cols_u8, uint8_t)
MPYML_SPARSE_COLS(mpyml_sparse_cols_u16, uint16_t)
#undef MPYML_SPARSE_COLS

/* the same with 4-bit row gaps: inside column k the row starts at 0 and entry j adds gap j (validated: every
 * row < O, every column an even number of entries, so a column starts on a byte). Four entries (two bytes) a
 * step: the rows first, then the products, then the adds, as the index loops. Zero-valued fillers add 0. */
static inline void mpyml_sparse_cols_gap4(uint32_t *MPYML_RESTRICT acc, const int8_t *MPYML_RESTRICT val,
    const uint8_t *MPYML_RESTRICT g, const int32_t *MPYML_RESTRICT cp, const int8_t *MPYML_RESTRICT x,
    uint32_t n, int32_t off)
{
    for (uint32_t k = 0; k < n; k++) {
        const int32_t xo = x[k] + off;
        if (xo == 0) continue;
        uint32_t j = (uint32_t)cp[k];
        const uint32_t j1 = (uint32_t)cp[k + 1];
        uint32_t r = 0;
        for (; j + 4 <= j1; j += 4) {
            const uint32_t b0 = g[j >> 1], b1 = g[(j >> 1) + 1];
            const uint32_t r0 = r + (b0 & 15u), r1 = r0 + (b0 >> 4), r2 = r1 + (b1 & 15u), r3 = r2 + (b1 >> 4);
            const int32_t p0 = val[j] * xo, p1 = val[j + 1] * xo, p2 = val[j + 2] * xo, p3 = val[j + 3] * xo;
            r = r3;
            acc[r0] += (uint32_t)p0;
            acc[r1] += (uint32_t)p1;
            acc[r2] += (uint32_t)p2;
            acc[r3] += (uint32_t)p3;
        }
        if (j < j1) {                           /* two entries left (even count) */
            const uint32_t b = g[j >> 1];
            const uint32_t ra = r + (b & 15u);
            r = ra + (b >> 4);
            acc[ra] += (uint32_t)(val[j] * xo);
            acc[r] += (uint32_t)(val[j + 1] * xo);
        }
    }
}

/* the columns of one input vector x[0..n) (FC: a batch row; conv: the C channels of one tap); bs from
 * mpyml_sparse_block_of */
static inline void mpyml_sparse_cols(uint32_t *acc, const int8_t *val, const void *rows, int kind, uint32_t bs,
    const int32_t *cp, const int8_t *x, uint32_t n, int32_t off)
{
    if (kind == SP_ROWS_GAP4) {
        mpyml_sparse_cols_gap4(acc, val, (const uint8_t *)rows, cp, x, n, off);
    } else if (bs > 1u) {
        if (kind == SP_ROWS_U16) {
            mpyml_sparse_blocks_u16(acc, val, (const uint16_t *)rows, cp, x, n, off, bs);
        } else {
            mpyml_sparse_blocks_u8(acc, val, (const uint8_t *)rows, cp, x, n, off, bs);
        }
    } else if (kind == SP_ROWS_U16) {
        mpyml_sparse_cols_u16(acc, val, (const uint16_t *)rows, cp, x, n, off);
    } else {
        mpyml_sparse_cols_u8(acc, val, (const uint8_t *)rows, cp, x, n, off);
    }
}

#endif /* MPYML_SPARSE_COMMON_H */
