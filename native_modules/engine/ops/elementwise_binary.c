/*
 * ops/elementwise_binary.c - int8 binary elementwise ops with 4-D broadcasting: MUL, MAXIMUM, MINIMUM,
 * SUB, SQUARED_DIFFERENCE, PRELU.
 *
 * Shapes: every operand is right-aligned into {n, h, w, c} (leading 1s); each output dim is the
 * broadcast of the two input dims (equal, or one of them 1), which _check verifies. The walk is
 * TFLM's BroadcastBinaryFunction6DSlow restricted to 4 dims (strides 0 along a broadcast dim).
 */
#include "op_view.h"
#include "fixedpoint.h"
#include "../mpyml_spec.h"

enum { BIN_IN_X1 = 0, BIN_IN_X2 = 1, BIN_OUT_Y = 2 };

/* element strides of a tensor along n, h, w, c of the output (0 along a broadcast dim) */
typedef struct {
    int32_t d[4];       /* output dims */
    int32_t s1[4], s2[4];
} bin_walk_t;

static void bin_strides(const mpyml_tensor_t *t, int32_t s[4])
{
    int32_t d[4];
    int32_t acc = 1;
    int i;
    mpyml_dims4(t, d);
    for (i = 3; i >= 0; i--) {
        s[i] = d[i] == 1 ? 0 : acc;
        acc *= d[i];
    }
}

static void bin_walk(const mpyml_op_view_t *v, bin_walk_t *w)
{
    mpyml_dims4(v->t[BIN_OUT_Y], w->d);
    bin_strides(v->t[BIN_IN_X1], w->s1);
    bin_strides(v->t[BIN_IN_X2], w->s2);
}

/* the output shape is exactly the broadcast of the input shapes (all up to 4-D) */
static int bin_check_shapes(const mpyml_op_view_t *v)
{
    const mpyml_tensor_t *a = v->t[BIN_IN_X1], *b = v->t[BIN_IN_X2], *y = v->t[BIN_OUT_Y];
    int32_t da[4], db[4], dy[4];
    int i;
    if (a->ndim > y->ndim || b->ndim > y->ndim) return MPYML_CHK_EW_SHAPE;
    mpyml_dims4(a, da);
    mpyml_dims4(b, db);
    mpyml_dims4(y, dy);
    for (i = 0; i < 4; i++) {
        if ((da[i] != dy[i] && da[i] != 1) || (db[i] != dy[i] && db[i] != 1)) return MPYML_CHK_EW_SHAPE;
        if (dy[i] != (da[i] > db[i] ? da[i] : db[i])) return MPYML_CHK_EW_SHAPE;
    }
    return 0;
}

/* ------------------------------------------------------------------ MUL
 * MUL: y = clamp(MultiplyByQuantizedMultiplier((x1 + input1_offset) * (x2 + input2_offset),
 *                output_mult, output_shift) + output_offset, act_min, act_max)   (TFLM MulElementwise)
 *   operands: BIN_IN_X1, BIN_IN_X2 int8 (arena or const), BIN_OUT_Y int8 arena (broadcast shape)
 *   @param input1_offset, input2_offset  -127..128  (minus the zero points)
 *   @param output_offset                 -128..127
 *   @param output_mult 0..2^31-1, output_shift -31..30 (> 0 = left)
 *   @param act_min <= act_max             -128..127
 *   |product| <= 256 * 256, so the left shift (<= 30) wraps like TFLite's int32 arithmetic at worst.
 */
int mpyml_ew_mul_check(const mpyml_op_view_t *v)
{
    const mpyml_mul_params_t *p = (const mpyml_mul_params_t *)(const void *)v->params;
    int bad = bin_check_shapes(v);
    if (bad) return bad;
    if (p->act_min > p->act_max) return MPYML_CHK_EW_ACT;
    return 0;
}

static inline int8_t mul_one(const mpyml_mul_params_t *p, int32_t a, int32_t b)
{
    const int32_t prod = (a + p->input1_offset) * (b + p->input2_offset);
    const int32_t r = mpyml_wrap_add(mpyml_mbqm(prod, p->output_mult, p->output_shift), p->output_offset);
    return (int8_t)mpyml_clamp(r, p->act_min, p->act_max);
}

void mpyml_ew_mul_eval(const mpyml_op_view_t *v)
{
    const mpyml_mul_params_t *p = (const mpyml_mul_params_t *)(const void *)v->params;
    const int8_t *x1 = (const int8_t *)v->ptr[BIN_IN_X1];
    const int8_t *x2 = (const int8_t *)v->ptr[BIN_IN_X2];
    int8_t *y = (int8_t *)v->ptr[BIN_OUT_Y];
    bin_walk_t w;
    int32_t b, i, j, c;
    bin_walk(v, &w);
    for (b = 0; b < w.d[0]; b++) {
        for (i = 0; i < w.d[1]; i++) {
            for (j = 0; j < w.d[2]; j++) {
                const int8_t *a1 = x1 + b * w.s1[0] + i * w.s1[1] + j * w.s1[2];
                const int8_t *a2 = x2 + b * w.s2[0] + i * w.s2[1] + j * w.s2[2];
                for (c = 0; c < w.d[3]; c++) {
                    *y++ = mul_one(p, a1[c * w.s1[3]], a2[c * w.s2[3]]);
                }
            }
        }
    }
}

/* ------------------------------------------------------------------ MAXIMUM, MINIMUM
 * MAXIMUM / MINIMUM: y = max / min(x1, x2) on the raw int8 values (TFLM maximum_minimum.cc).
 *   operands: BIN_IN_X1, BIN_IN_X2 int8, BIN_OUT_Y int8 arena (broadcast shape)
 *   params:   none
 *   checks:   EW_SHAPE; EW_QUANT unless both inputs and the output share zero point and scale
 */
static int minmax_check(const mpyml_op_view_t *v)
{
    const mpyml_tensor_t *a = v->t[BIN_IN_X1], *b = v->t[BIN_IN_X2], *y = v->t[BIN_OUT_Y];
    int bad = bin_check_shapes(v);
    if (bad) return bad;
    if (a->zero_point != y->zero_point || b->zero_point != y->zero_point) return MPYML_CHK_EW_QUANT;
    if (a->scale_bits != y->scale_bits || b->scale_bits != y->scale_bits) return MPYML_CHK_EW_QUANT;
    return 0;
}

static void minmax_eval(const mpyml_op_view_t *v, int want_max)
{
    const int8_t *x1 = (const int8_t *)v->ptr[BIN_IN_X1];
    const int8_t *x2 = (const int8_t *)v->ptr[BIN_IN_X2];
    int8_t *y = (int8_t *)v->ptr[BIN_OUT_Y];
    bin_walk_t w;
    int32_t b, i, j, c;
    bin_walk(v, &w);
    for (b = 0; b < w.d[0]; b++) {
        for (i = 0; i < w.d[1]; i++) {
            for (j = 0; j < w.d[2]; j++) {
                const int8_t *a1 = x1 + b * w.s1[0] + i * w.s1[1] + j * w.s1[2];
                const int8_t *a2 = x2 + b * w.s2[0] + i * w.s2[1] + j * w.s2[2];
                for (c = 0; c < w.d[3]; c++) {
                    const int8_t p = a1[c * w.s1[3]], q = a2[c * w.s2[3]];
                    *y++ = want_max ? (p > q ? p : q) : (p < q ? p : q);
                }
            }
        }
    }
}

int mpyml_ew_maximum_check(const mpyml_op_view_t *v) { return minmax_check(v); }
void mpyml_ew_maximum_eval(const mpyml_op_view_t *v) { minmax_eval(v, 1); }
int mpyml_ew_minimum_check(const mpyml_op_view_t *v) { return minmax_check(v); }
void mpyml_ew_minimum_eval(const mpyml_op_view_t *v) { minmax_eval(v, 0); }

/* ------------------------------------------------------------------ SUB, SQUARED_DIFFERENCE
 * Both scale each input as TFLM's 8-bit ADD does, then combine:
 *   s_k = MultiplyByQuantizedMultiplierSmallerThanOneExp((x_k + input_k_offset) << left_shift, mult_k, shift_k)
 *   SUB:                r = s_1 - s_2
 *   SQUARED_DIFFERENCE: r = (s_1 - s_2)^2        (TFLM: left_shift 7, multipliers <= 1/2: < 2^31)
 *   y = clamp(MultiplyByQuantizedMultiplierSmallerThanOneExp(r, output_mult, output_shift) + output_offset,
 *             act_min, act_max)
 *   operands: BIN_IN_X1, BIN_IN_X2 int8, BIN_OUT_Y int8 arena (broadcast shape)
 *   @param input1_offset, input2_offset -127..128; output_offset -128..127
 *   @param left_shift  SUB 0..20, SQUARED_DIFFERENCE 0..7
 *   @param input1_mult, input2_mult, output_mult 0..2^31-1; the shifts -31..0
 *   @param act_min <= act_max -128..127
 * Differences and the square are formed with wrapping arithmetic: no parameter set reaches undefined
 * behaviour (TFLite's parameters never wrap).
 */
static int arith_check(const mpyml_op_view_t *v)
{
    const mpyml_sub_params_t *p = (const mpyml_sub_params_t *)(const void *)v->params;
    int bad = bin_check_shapes(v);
    if (bad) return bad;
    if (p->act_min > p->act_max) return MPYML_CHK_EW_ACT;
    return 0;
}

static inline int8_t arith_one(const mpyml_sub_params_t *p, int32_t a, int32_t b, int square)
{
    const int32_t v1 = mpyml_wrap_shl(a + p->input1_offset, (int)p->left_shift);
    const int32_t v2 = mpyml_wrap_shl(b + p->input2_offset, (int)p->left_shift);
    const int32_t s1 = mpyml_mbqm_le1(v1, p->input1_mult, p->input1_shift);
    const int32_t s2 = mpyml_mbqm_le1(v2, p->input2_mult, p->input2_shift);
    int32_t r = (int32_t)((uint32_t)s1 - (uint32_t)s2);
    if (square) {
        r = (int32_t)((uint32_t)r * (uint32_t)r);
    }
    r = mpyml_wrap_add(mpyml_mbqm_le1(r, p->output_mult, p->output_shift), p->output_offset);
    return (int8_t)mpyml_clamp(r, p->act_min, p->act_max);
}

static void arith_eval(const mpyml_op_view_t *v, int square)
{
    const mpyml_sub_params_t *p = (const mpyml_sub_params_t *)(const void *)v->params;
    const int8_t *x1 = (const int8_t *)v->ptr[BIN_IN_X1];
    const int8_t *x2 = (const int8_t *)v->ptr[BIN_IN_X2];
    int8_t *y = (int8_t *)v->ptr[BIN_OUT_Y];
    bin_walk_t w;
    int32_t b, i, j, c;
    bin_walk(v, &w);
    for (b = 0; b < w.d[0]; b++) {
        for (i = 0; i < w.d[1]; i++) {
            for (j = 0; j < w.d[2]; j++) {
                const int8_t *a1 = x1 + b * w.s1[0] + i * w.s1[1] + j * w.s1[2];
                const int8_t *a2 = x2 + b * w.s2[0] + i * w.s2[1] + j * w.s2[2];
                for (c = 0; c < w.d[3]; c++) {
                    *y++ = arith_one(p, a1[c * w.s1[3]], a2[c * w.s2[3]], square);
                }
            }
        }
    }
}

int mpyml_ew_sub_check(const mpyml_op_view_t *v) { return arith_check(v); }
void mpyml_ew_sub_eval(const mpyml_op_view_t *v) { arith_eval(v, 0); }
/* the two param structs have the same layout (same param list) */
int mpyml_ew_sqdiff_check(const mpyml_op_view_t *v) { return arith_check(v); }
void mpyml_ew_sqdiff_eval(const mpyml_op_view_t *v) { arith_eval(v, 1); }

/* ------------------------------------------------------------------ PRELU
 * PRELU (TFLM reference_ops::BroadcastPrelu4DSlow, int8):
 *   v = x + input_offset
 *   y = clamp(v >= 0 ? MBQM(v, output_mult_1, output_shift_1)
 *                    : MBQM(v * (alpha + alpha_offset), output_mult_2, output_shift_2)) + output_offset,
 *             -128, 127)
 *   operands: BIN_IN_X1 input int8, BIN_IN_X2 alpha int8 (const or not), broadcast against each other
 *             into BIN_OUT_Y int8 arena
 *   @param input_offset, alpha_offset -127..128; output_offset -128..127
 *   @param output_mult_1, output_mult_2 0..2^31-1; output_shift_1, output_shift_2 -31..30
 */
int mpyml_ew_prelu_check(const mpyml_op_view_t *v)
{
    return bin_check_shapes(v);
}

void mpyml_ew_prelu_eval(const mpyml_op_view_t *v)
{
    const mpyml_prelu_params_t *p = (const mpyml_prelu_params_t *)(const void *)v->params;
    const int8_t *x1 = (const int8_t *)v->ptr[BIN_IN_X1];
    const int8_t *x2 = (const int8_t *)v->ptr[BIN_IN_X2];
    int8_t *y = (int8_t *)v->ptr[BIN_OUT_Y];
    bin_walk_t w;
    int32_t b, i, j, c;
    bin_walk(v, &w);
    for (b = 0; b < w.d[0]; b++) {
        for (i = 0; i < w.d[1]; i++) {
            for (j = 0; j < w.d[2]; j++) {
                const int8_t *a1 = x1 + b * w.s1[0] + i * w.s1[1] + j * w.s1[2];
                const int8_t *a2 = x2 + b * w.s2[0] + i * w.s2[1] + j * w.s2[2];
                for (c = 0; c < w.d[3]; c++) {
                    const int32_t in = a1[c * w.s1[3]] + p->input_offset;
                    int32_t r;
                    if (in >= 0) {
                        r = mpyml_mbqm(in, p->output_mult_1, p->output_shift_1);
                    } else {
                        r = mpyml_mbqm(in * (a2[c * w.s2[3]] + p->alpha_offset), p->output_mult_2,
                                       p->output_shift_2);
                    }
                    *y++ = (int8_t)mpyml_clamp(mpyml_wrap_add(r, p->output_offset), -128, 127);
                }
            }
        }
    }
}
