/*
 * ops/batch_matmul.c - BATCH_MATMUL: int8 matmul of two tensors (attention scores Q.K^T, weights.V, any
 * matmul of two activations), TFLM reference_integer_ops BatchMatMul semantics.
 *
 *   y[b, i, j] = clamp(MultiplyByQuantizedMultiplier(sum_k (L[b, i, k] + lhs_offset) * (R[b, k, j] + rhs_offset),
 *                      mult, shift) + output_offset, -128, 127)
 *
 *   operands: BMM_IN_LHS int8 [..., M, K] ([..., K, M] with adj_x), any storage
 *             BMM_IN_RHS int8 [..., K, N] ([..., N, K] with adj_y), any storage
 *             BMM_OUT_Y  int8 arena [batch..., M, N]
 *   Shapes are right-aligned into 4 dims: dims 0, 1 are batch dims, each operand's is 1 (broadcast) or the
 *   output's; the output's is the larger of the two (TFLM's broadcast_dim).
 *   @param adj_x, adj_y       0..1
 *   @param lhs_offset, rhs_offset  -127..128 (minus the zero points)
 *   @param output_offset      -128..127
 *   @param mult 0..2^31-1, shift -31..30 (> 0 = left)
 *   @param K (accumulation depth) 1..32768: |(x + off) * (w + off)| <= 255 * 255, so the int32 sum cannot
 *          overflow (TFLM accumulates in int32 too; the order of an exact integer sum does not matter).
 * No scratch: TFLM transposes operands into buffers, here the walk uses strides instead.
 */
#include "op_view.h"
#include "fixedpoint.h"
#include "../mpyml_spec.h"

enum { BMM_IN_LHS = 0, BMM_IN_RHS = 1, BMM_OUT_Y = 2 };
#define BMM_MAX_DEPTH 32768

typedef struct {
    int32_t m, n, k;
    int32_t l_i, l_k, r_k, r_j;     /* element strides inside one matrix */
    int32_t l_b0, l_b1, r_b0, r_b1; /* matrix strides along the batch dims (0 = broadcast) */
    int32_t nb0, nb1;
} bmm_geom_t;

static void bmm_geom(const mpyml_op_view_t *v, bmm_geom_t *g)
{
    const mpyml_batch_matmul_params_t *p = (const mpyml_batch_matmul_params_t *)(const void *)v->params;
    int32_t dl[4], dr[4], dy[4];
    mpyml_dims4(v->t[BMM_IN_LHS], dl);
    mpyml_dims4(v->t[BMM_IN_RHS], dr);
    mpyml_dims4(v->t[BMM_OUT_Y], dy);
    g->m = dy[2];
    g->n = dy[3];
    g->k = p->adj_x ? dl[2] : dl[3];
    g->l_i = p->adj_x ? 1 : g->k;
    g->l_k = p->adj_x ? g->m : 1;
    g->r_k = p->adj_y ? 1 : g->n;
    g->r_j = p->adj_y ? g->k : 1;
    g->l_b1 = dl[1] == 1 ? 0 : g->m * g->k;
    g->l_b0 = dl[0] == 1 ? 0 : dl[1] * g->m * g->k;
    g->r_b1 = dr[1] == 1 ? 0 : g->k * g->n;
    g->r_b0 = dr[0] == 1 ? 0 : dr[1] * g->k * g->n;
    g->nb0 = dy[0];
    g->nb1 = dy[1];
}

int mpyml_batch_matmul_check(const mpyml_op_view_t *v)
{
    const mpyml_batch_matmul_params_t *p = (const mpyml_batch_matmul_params_t *)(const void *)v->params;
    const mpyml_tensor_t *l = v->t[BMM_IN_LHS], *r = v->t[BMM_IN_RHS], *y = v->t[BMM_OUT_Y];
    int32_t dl[4], dr[4], dy[4];
    int32_t m, k, kr, n;
    int i;
    if (l->ndim < 2 || r->ndim < 2 || y->ndim != (l->ndim > r->ndim ? l->ndim : r->ndim)) return MPYML_CHK_BMM_SHAPE;
    mpyml_dims4(l, dl);
    mpyml_dims4(r, dr);
    mpyml_dims4(y, dy);
    for (i = 0; i < 2; i++) {
        if ((dl[i] != dy[i] && dl[i] != 1) || (dr[i] != dy[i] && dr[i] != 1)) return MPYML_CHK_BMM_SHAPE;
        if (dy[i] != (dl[i] > dr[i] ? dl[i] : dr[i])) return MPYML_CHK_BMM_SHAPE;
    }
    m = p->adj_x ? dl[3] : dl[2];
    k = p->adj_x ? dl[2] : dl[3];
    kr = p->adj_y ? dr[3] : dr[2];
    n = p->adj_y ? dr[2] : dr[3];
    if (k != kr || dy[2] != m || dy[3] != n) return MPYML_CHK_BMM_SHAPE;
    if (k > BMM_MAX_DEPTH) return MPYML_CHK_BMM_DEPTH;
    return 0;
}

void mpyml_batch_matmul_eval(const mpyml_op_view_t *v)
{
    const mpyml_batch_matmul_params_t *p = (const mpyml_batch_matmul_params_t *)(const void *)v->params;
    const int8_t *lhs = (const int8_t *)v->ptr[BMM_IN_LHS];
    const int8_t *rhs = (const int8_t *)v->ptr[BMM_IN_RHS];
    int8_t *y = (int8_t *)v->ptr[BMM_OUT_Y];
    const int32_t lo = p->lhs_offset, ro = p->rhs_offset;
    bmm_geom_t g;
    int32_t b0, b1, i, j, k;
    bmm_geom(v, &g);
    for (b0 = 0; b0 < g.nb0; b0++) {
        for (b1 = 0; b1 < g.nb1; b1++) {
            const int8_t *lm = lhs + b0 * g.l_b0 + b1 * g.l_b1;
            const int8_t *rm = rhs + b0 * g.r_b0 + b1 * g.r_b1;
            for (i = 0; i < g.m; i++) {
                const int8_t *li = lm + i * g.l_i;
                for (j = 0; j < g.n; j++) {
                    const int8_t *a = li, *b = rm + j * g.r_j;
                    int32_t acc = 0;
                    for (k = 0; k < g.k; k++) {
                        acc += ((int32_t)*a + lo) * ((int32_t)*b + ro);
                        a += g.l_k;
                        b += g.r_k;
                    }
                    *y++ = mpyml_requant(acc, p->mult, p->shift, p->output_offset, -128, 127);
                }
            }
        }
    }
}
