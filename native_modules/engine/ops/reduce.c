/*
 * ops/reduce.c - reductions over axes (MEAN, SUM, REDUCE_MAX) and ARG_MAX, bit-exact with TFLite
 * Micro's reference kernels (micro/kernels/reduce_common.cc, reference/reduce.h, arg_min_max.cc).
 *
 * The input is viewed right-aligned as 4-D (n, h, w, c; leading 1s); `axis_mask` bit i marks dim i
 * as reduced. Outputs are the kept dims in row-major order, which is TFLite's ReducedOutputOffset
 * order for keep_dims true and false alike. Sums are int32 (at most 2^23 int8 terms, checked, so
 * they never overflow); the order of the terms does not matter for integers.
 * No float arithmetic, no libc, no division (MEAN's 1/count is folded into its multiplier by the packer).
 */
#include "op_view.h"
#include "fixedpoint.h"
#include "../mpyml_spec.h"

enum { RED_IN_X = 0, RED_OUT_Y = 1 };
enum { KIND_REQUANT = 1, KIND_MAX = 2 };

#define RED_MAX_COUNT (1L << 23)

/* kept dims -> number of output elements, reduced dims -> count; RED_SHAPE / RED_COUNT or 0 */
static int reduce_check(const mpyml_op_view_t *v, int32_t mask)
{
    int32_t d[4];
    uint32_t kept = 1, count = 1;
    int i;
    mpyml_dims4(v->t[RED_IN_X], d);
    for (i = 0; i < 4; i++) {
        if ((mask >> i) & 1) {
            count *= (uint32_t)d[i];
            if (count > (uint32_t)RED_MAX_COUNT) count = (uint32_t)RED_MAX_COUNT + 1u;   /* saturate */
        } else {
            kept *= (uint32_t)d[i];   /* <= elements of the input, < 2^31 */
        }
    }
    if (kept != mpyml_elems(v->t[RED_OUT_Y])) return MPYML_CHK_RED_SHAPE;
    if (count > (uint32_t)RED_MAX_COUNT) return MPYML_CHK_RED_COUNT;
    return 0;
}

/* the one walk of all three reductions: for every output element (kept dims, row-major) the sum
 * or the max of its reduced elements, then the op's epilogue */
static void reduce_run(const mpyml_op_view_t *v, int32_t mask, int kind, int32_t in_zp, int32_t out_zp,
    int32_t mult, int32_t shift)
{
    const int8_t *x = (const int8_t *)v->ptr[RED_IN_X];
    int8_t *y = (int8_t *)v->ptr[RED_OUT_Y];
    int32_t d[4], s[4], ke[4], re[4];
    int32_t count = 1, a0, a1, a2, a3, b0, b1, b2, b3;
    int i;
    mpyml_dims4(v->t[RED_IN_X], d);
    s[3] = 1; s[2] = d[3]; s[1] = d[2] * d[3]; s[0] = d[1] * d[2] * d[3];
    for (i = 0; i < 4; i++) {
        const int red = (mask >> i) & 1;
        ke[i] = red ? 1 : d[i];
        re[i] = red ? d[i] : 1;
        count *= re[i];
    }
    for (a0 = 0; a0 < ke[0]; a0++) {
        for (a1 = 0; a1 < ke[1]; a1++) {
            for (a2 = 0; a2 < ke[2]; a2++) {
                for (a3 = 0; a3 < ke[3]; a3++) {
                    const int8_t *xb = x + a0 * s[0] + a1 * s[1] + a2 * s[2] + a3;
                    int32_t acc = kind == KIND_MAX ? -128 : 0, r;
                    for (b0 = 0; b0 < re[0]; b0++) {
                        for (b1 = 0; b1 < re[1]; b1++) {
                            for (b2 = 0; b2 < re[2]; b2++) {
                                const int8_t *xr = xb + b0 * s[0] + b1 * s[1] + b2 * s[2];
                                if (kind == KIND_MAX) {
                                    for (b3 = 0; b3 < re[3]; b3++) {
                                        if (xr[b3] > acc) acc = xr[b3];
                                    }
                                } else {
                                    for (b3 = 0; b3 < re[3]; b3++) acc += xr[b3];
                                }
                            }
                        }
                    }
                    if (kind == KIND_MAX) {
                        r = acc;
                    } else {
                        /* |acc - in_zp * count| <= 255 * 2^23 < 2^31 */
                        r = mpyml_wrap_add(mpyml_mbqm(acc - in_zp * count, mult, shift), out_zp);
                        r = mpyml_clamp(r, -128, 127);
                    }
                    *y++ = (int8_t)r;
                }
            }
        }
    }
}

/* ------------------------------------------------------------------ MEAN
 * MEAN: int8 mean over the axes of axis_mask (TFLM EvalIntegerMean -> QuantizedMeanOrSum, which TFLM
 * runs even when input and output share their quantization):
 *   MultiplyByQuantizedMultiplier(sum - input_zp * count, mult, shift) + output_zp, clamped, where the
 *   packer has folded 1/count into mult / shift exactly as QuantizedMeanOrSum does.
 *   operands: RED_IN_X input int8 (any), RED_OUT_Y output int8 arena
 *   @param axis_mask 0..15   @param input_zp, output_zp -128..127   @param mult 0..2^31-1
 *   @param shift -31..30
 *   checks: RED_SHAPE, RED_COUNT
 */
int mpyml_mean_check(const mpyml_op_view_t *v)
{
    const mpyml_mean_params_t *p = (const mpyml_mean_params_t *)(const void *)v->params;
    return reduce_check(v, p->axis_mask);
}

void mpyml_mean_eval(const mpyml_op_view_t *v)
{
    const mpyml_mean_params_t *p = (const mpyml_mean_params_t *)(const void *)v->params;
    reduce_run(v, p->axis_mask, KIND_REQUANT, p->input_zp, p->output_zp, p->mult, p->shift);
}

/* ------------------------------------------------------------------ SUM
 * SUM: int8 sum over the axes of axis_mask, requantized (TFLM QuantizedMeanOrSum, compute_sum).
 *   operands: as MEAN   @param axis_mask 0..15   @param input_zp, output_zp -128..127
 *   @param mult 0..2^31-1   @param shift -31..30          checks: RED_SHAPE, RED_COUNT
 */
int mpyml_sum_check(const mpyml_op_view_t *v)
{
    const mpyml_sum_params_t *p = (const mpyml_sum_params_t *)(const void *)v->params;
    return reduce_check(v, p->axis_mask);
}

void mpyml_sum_eval(const mpyml_op_view_t *v)
{
    const mpyml_sum_params_t *p = (const mpyml_sum_params_t *)(const void *)v->params;
    reduce_run(v, p->axis_mask, KIND_REQUANT, p->input_zp, p->output_zp, p->mult, p->shift);
}

/* ------------------------------------------------------------------ REDUCE_MAX
 * REDUCE_MAX: int8 max over the axes of axis_mask (TFLM ReduceGeneric, init -128; the packer only
 * accepts input and output with the same scale and zero point, as TFLM does).
 *   operands: as MEAN   @param axis_mask 0..15            checks: RED_SHAPE, RED_COUNT
 */
int mpyml_reduce_max_check(const mpyml_op_view_t *v)
{
    const mpyml_reduce_max_params_t *p = (const mpyml_reduce_max_params_t *)(const void *)v->params;
    return reduce_check(v, p->axis_mask);
}

void mpyml_reduce_max_eval(const mpyml_op_view_t *v)
{
    const mpyml_reduce_max_params_t *p = (const mpyml_reduce_max_params_t *)(const void *)v->params;
    reduce_run(v, p->axis_mask, KIND_MAX, 0, 0, 0, 0);
}

/* ------------------------------------------------------------------ ARG_MAX
 * ARG_MAX: index of the largest int8 along one axis; ties give the first index (TFLM ArgMinMax with
 * std::greater). Output int32 or int64 (written as two 32-bit words: the tensor is only 4-aligned).
 *   operands: ARG_IN_X input int8 (any), ARG_OUT_Y output int32|int64 arena
 *   @param axis 0..3 (dim of the 4-D right-aligned input)
 *   checks: ARG_SHAPE (output elements != input elements / axis size)
 */
enum { ARG_IN_X = 0, ARG_OUT_Y = 1 };

int mpyml_arg_max_check(const mpyml_op_view_t *v)
{
    const mpyml_arg_max_params_t *p = (const mpyml_arg_max_params_t *)(const void *)v->params;
    int32_t d[4];
    uint32_t kept = 1;
    int i;
    mpyml_dims4(v->t[ARG_IN_X], d);
    for (i = 0; i < 4; i++) {
        if (i != p->axis) kept *= (uint32_t)d[i];
    }
    if (kept != mpyml_elems(v->t[ARG_OUT_Y])) return MPYML_CHK_ARG_SHAPE;
    return 0;
}

void mpyml_arg_max_eval(const mpyml_op_view_t *v)
{
    const mpyml_arg_max_params_t *p = (const mpyml_arg_max_params_t *)(const void *)v->params;
    const int8_t *x = (const int8_t *)v->ptr[ARG_IN_X];
    uint32_t *y = (uint32_t *)v->ptr[ARG_OUT_Y];
    const int wide = v->t[ARG_OUT_Y]->type == MPYML_T_INT64;
    int32_t d[4], outer = 1, inner = 1, n, o, in, k;
    int i;
    mpyml_dims4(v->t[ARG_IN_X], d);
    for (i = 0; i < p->axis; i++) outer *= d[i];
    for (i = p->axis + 1; i < 4; i++) inner *= d[i];
    n = d[p->axis];
    for (o = 0; o < outer; o++) {
        for (in = 0; in < inner; in++) {
            const int8_t *xs = x + o * n * inner + in;
            int32_t best = xs[0], idx = 0;
            for (k = 1; k < n; k++) {
                if (xs[k * inner] > best) {
                    best = xs[k * inner];
                    idx = k;
                }
            }
            if (wide) {
                y[0] = (uint32_t)idx;   /* little-endian int64, index >= 0 */
                y[1] = 0u;
                y += 2;
            } else {
                *y++ = (uint32_t)idx;
            }
        }
    }
}
