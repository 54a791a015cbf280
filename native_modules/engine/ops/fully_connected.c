/*
 * ops/fully_connected.c - FULLY_CONNECTED, int8, per-tensor or per-channel requantization.
 *
 * Owns mpyml_fully_connected_ref (a port of TFLite Micro's reference_integer_ops::FullyConnected /
 * FullyConnectedPerChannel; the filter zero point is 0, so both reduce to the same loop) and
 * mpyml_fully_connected, the optimized entry point with identical output: four output rows are
 * accumulated per input load (one (x + input_offset) feeds four multiply-adds) with the per-row
 * pointers hoisted. acc = sum(w * (x + input_offset)) in int32 (K <= 65536 cannot overflow), then
 * bias (wrapping add), MultiplyByQuantizedMultiplier, output offset and clamp, exactly as TFLite.
 */
#include "ops.h"
#include "fixedpoint.h"

void mpyml_fully_connected_ref(const mpyml_fc_params_t *p, int32_t batches, int32_t in_depth,
    int32_t out_depth, const int8_t *in, const int8_t *filter, const int32_t *bias,
    const int32_t *mult, const int32_t *shift, int per_channel, int8_t *out)
{
    int32_t b, oc, d;
    for (b = 0; b < batches; b++) {
        for (oc = 0; oc < out_depth; oc++) {
            const int32_t q = per_channel ? oc : 0;
            int32_t acc = 0;
            for (d = 0; d < in_depth; d++) {
                const int32_t x = in[b * in_depth + d];
                const int32_t w = filter[oc * in_depth + d];
                acc += w * (x + p->input_offset);
            }
            if (bias) {
                acc = mpyml_wrap_add(acc, bias[oc]);
            }
            out[oc + out_depth * b] = mpyml_requant(acc, mult[q], shift[q], p->output_offset,
                p->act_min, p->act_max);
        }
    }
}

/* ---------------------------------------------------------------- optimized */

static inline int8_t fc_finish(const mpyml_fc_params_t *p, int32_t acc, const int32_t *bias,
    const int32_t *mult, const int32_t *shift, int per_channel, int32_t oc)
{
    const int32_t q = per_channel ? oc : 0;
    if (bias) {
        acc = mpyml_wrap_add(acc, bias[oc]);
    }
    return mpyml_requant(acc, mult[q], shift[q], p->output_offset, p->act_min, p->act_max);
}

void mpyml_fully_connected(const mpyml_fc_params_t *p, int32_t batches, int32_t in_depth,
    int32_t out_depth, const int8_t *in, const int8_t *filter, const int32_t *bias,
    const int32_t *mult, const int32_t *shift, int per_channel, int8_t *out)
{
    const int32_t off = p->input_offset;
    int32_t b, oc, d;
    for (b = 0; b < batches; b++) {
        const int8_t *x = in + b * in_depth;
        for (oc = 0; oc + 4 <= out_depth; oc += 4) {
            const int8_t *w0 = filter + oc * in_depth;
            const int8_t *w1 = w0 + in_depth, *w2 = w1 + in_depth, *w3 = w2 + in_depth;
            int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            for (d = 0; d < in_depth; d++) {
                const int32_t xv = x[d] + off;
                a0 += xv * w0[d];
                a1 += xv * w1[d];
                a2 += xv * w2[d];
                a3 += xv * w3[d];
            }
            out[oc] = fc_finish(p, a0, bias, mult, shift, per_channel, oc);
            out[oc + 1] = fc_finish(p, a1, bias, mult, shift, per_channel, oc + 1);
            out[oc + 2] = fc_finish(p, a2, bias, mult, shift, per_channel, oc + 2);
            out[oc + 3] = fc_finish(p, a3, bias, mult, shift, per_channel, oc + 3);
        }
        for (; oc < out_depth; oc++) {
            const int8_t *w = filter + oc * in_depth;
            int32_t a = 0;
            for (d = 0; d < in_depth; d++) {
                a += (x[d] + off) * w[d];
            }
            out[oc] = fc_finish(p, a, bias, mult, shift, per_channel, oc);
        }
        out += out_depth;
    }
}
