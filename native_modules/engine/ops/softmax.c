/*
 * ops/softmax.c - SOFTMAX, int8 in, int8 out (output scale 1/256, zero point -128).
 *
 * Owns mpyml_softmax_ref, a port of TFLite Micro's reference_ops::Softmax<int8_t, int8_t>
 * (the gemmlowp fixed-point path): per row, diff = x - max; taps with diff < diff_min contribute
 * nothing and output -128; the others are rescaled to Q5.26 by
 * MultiplyByQuantizedMultiplierGreaterThanOne(diff, input_multiplier, input_left_shift), exp'd
 * with gemmlowp exp_on_negative_values, summed in Q12.19 (Rescale<12>), the sum inverted with
 * GetReciprocal (one_over_one_plus_x_for_x_in_0_1), and each output is
 * RoundingDivideByPOT(recip * exp, num_bits_over_unit + 31 - 8) - 128, clamped to int8.
 * The row's exp values are recomputed in the second pass (no scratch memory), as TFLite does.
 * Rows whose exp sum needs an output exponent > 31 (TFLite aborts the invoke there; it takes a few
 * hundred near-maximal values in one row) output the exact rounded result, -128.
 */
#include "ops.h"
#include "fixedpoint.h"

#define ACCUM_INTEGER_BITS 12

static inline int32_t softmax_exp(const mpyml_softmax_params_t *p, int32_t diff)
{
    const int32_t scaled = mpyml_mbqm_ge1(diff, p->input_multiplier, p->input_left_shift);
    return mpyml_fp_exp_neg_q5(scaled);
}

void mpyml_softmax_ref(const mpyml_softmax_params_t *p, int32_t outer, int32_t depth,
    const int8_t *in, int8_t *out)
{
    int32_t i, c;
    for (i = 0; i < outer; i++) {
        const int8_t *x = in + i * depth;
        int8_t *y = out + i * depth;
        int32_t max_in_row = -128, sum_of_exps = 0, headroom_plus_one, num_bits_over_unit;
        int32_t shifted_sum_minus_one, shifted_scale, exponent;
        for (c = 0; c < depth; c++) {
            max_in_row = x[c] > max_in_row ? x[c] : max_in_row;
        }
        for (c = 0; c < depth; c++) {
            const int32_t diff = x[c] - max_in_row;
            if (diff >= p->diff_min) {
                /* Rescale<12> of a Q0.31 value: rounding right shift by 12 */
                sum_of_exps = mpyml_wrap_add(sum_of_exps,
                    mpyml_rdbpot(softmax_exp(p, diff), ACCUM_INTEGER_BITS));
            }
        }
        /* GetReciprocal(sum_of_exps, 12, &num_bits_over_unit); the row max always contributes
         * exp(0) = 1.0, so sum_of_exps > 0 */
        headroom_plus_one = mpyml_clz32((uint32_t)sum_of_exps);
        if (headroom_plus_one > 31) {
            headroom_plus_one = 31;     /* only reachable if the sum wrapped (depth > 4096) */
        }
        num_bits_over_unit = ACCUM_INTEGER_BITS - headroom_plus_one;
        shifted_sum_minus_one = (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - 0x80000000u);
        shifted_scale = mpyml_fp_one_over_one_plus_x(shifted_sum_minus_one);
        exponent = num_bits_over_unit + 31 - 8;
        for (c = 0; c < depth; c++) {
            const int32_t diff = x[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t e = softmax_exp(p, diff);
                const int32_t prod = mpyml_srdhm(shifted_scale, e);
                /* TFLite requires exponent <= 31 (it aborts otherwise, for rows of several hundred
                 * near-equal values); beyond that the exact rounded quotient of prod >= 0 is 0 */
                const int32_t unsat = exponent <= 31 ? mpyml_rdbpot(prod, (int)exponent) : 0;
                y[c] = (int8_t)mpyml_clamp(unsat - 128, -128, 127);
            } else {
                y[c] = -128;
            }
        }
    }
}
