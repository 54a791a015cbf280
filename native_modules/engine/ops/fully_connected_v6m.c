/*
 * ops/fully_connected_v6m.c - FULLY_CONNECTED (per-tensor or per-channel) for cores without SIMD: Cortex-M0/M0+
 * (RP2040), Cortex-M3, and the host under MPYML_EMULATE_V6M (see kernels_v6m.h). Four filter rows per pass of
 * mpyml_v6m_dot4 over the input row (a tail of 1..3 rows repeats its last row), then bias and the exact
 * 32-bit requantization. Same bytes as mpyml_fully_connected_ref.
 * @param in_depth  1 .. 65536, @param p->input_offset -127 .. 128
 */
#include "kernels_v6m.h"

#if defined(MPYML_KERNELS_V6M)

void mpyml_fully_connected_v6m(const mpyml_fc_params_t *p, int32_t batches, int32_t in_depth,
    int32_t out_depth, const int8_t *in, const int8_t *filter, const int32_t *bias,
    const int32_t *mult, const int32_t *shift, int per_channel, int8_t *out)
{
    const int32_t off = p->input_offset, oo = p->output_offset, amin = p->act_min, amax = p->act_max;
    int32_t b, oc, j;
    for (b = 0; b < batches; b++) {
        const int8_t *x = in + b * in_depth;
        for (oc = 0; oc < out_depth; oc += 4) {
            const int32_t n_oc = out_depth - oc < 4 ? out_depth - oc : 4;
            const int8_t *w0 = filter + oc * in_depth;
            const int8_t *w1 = n_oc > 1 ? w0 + in_depth : w0;
            const int8_t *w2 = n_oc > 2 ? w1 + in_depth : w1;
            const int8_t *w3 = n_oc > 3 ? w2 + in_depth : w2;
            int32_t acc[4];
            acc[0] = acc[1] = acc[2] = acc[3] = 0;
            if (in_depth > 0) {
                mpyml_v6m_dot4(x, w0, w1, w2, w3, in_depth, off, acc);
            }
            for (j = 0; j < n_oc; j++) {
                const int32_t q = per_channel ? oc + j : 0;
                out[oc + j] = mpyml_v6m_finish(acc[j], bias, oc + j, mult[q], shift[q], oo, amin, amax);
            }
        }
        out += out_depth;
    }
}

#else
typedef int mpyml_fully_connected_v6m_unused_t;   /* ISO C: a translation unit declares something */
#endif /* MPYML_KERNELS_V6M */
