/*
 * ops/fully_connected.c - FULLY_CONNECTED, int8, per-tensor or per-channel requantization.
 *
 * Owns mpyml_fully_connected_ref (a port of TFLite Micro's reference_integer_ops::FullyConnected /
 * FullyConnectedPerChannel; the filter zero point is 0, so both reduce to the same loop) and
 * mpyml_fully_connected, the optimized entry point with identical output: four output rows are
 * accumulated per input load (one (x + input_offset) feeds four multiply-adds) with the per-row
 * pointers hoisted, the rows vectorized with SSE2 (x86-64) or SMLAD (Cortex-M4/M7: simd.h's helpers, on
 * the target fc_dsp_run4, 16 bytes per assembly pass). acc = sum(w * (x + input_offset)) in int32
 * (K <= 65536 cannot overflow), then bias (wrapping add), MultiplyByQuantizedMultiplier (mpyml_dw_requant; on
 * Cortex-M4/M7 mpyml_dw_requant4_dsp, four rows at once), output offset and clamp, exactly as TFLite.
 */
#include "ops.h"
#include "fixedpoint.h"
#include "simd.h"
#include "depthwise_dm1.h"   /* mpyml_dw_requant: mpyml_requant_pos without the rounding mask */
#include "kernels_v6m.h"

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

#if defined(MPYML_SIMD_DSP) && !defined(MPYML_EMULATE_DSP)
/* mpyml_dsp_run4 with 16 input bytes per pass (the loop counter lives in memory: one load / store per 16
 * bytes instead of per 8), then simd_dsp.h's C word loop for the remaining whole words. */
static int32_t fc_dsp_run4(const int8_t *x, const int8_t *w0, int32_t ws, int32_t n, uint32_t off2,
    int32_t *acc)
{
    const int8_t *w1 = w0 + ws, *w2 = w1 + ws, *w3 = w2 + ws;
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t quads = n >> 4, done;
    if (quads > 0) {
        uint32_t xe, xo, wv, wt;
        __asm__ volatile(
            "1:\n"
#define FC_DSP_WORD \
            "ldr %[xo], [%[x]], #4\n" \
            "sxtab16 %[xe], %[off2], %[xo]\n" \
            "sxtab16 %[xo], %[off2], %[xo], ror #8\n" \
            "ldr %[wv], [%[w0]], #4\n" \
            "sxtb16 %[wt], %[wv]\n" \
            "sxtb16 %[wv], %[wv], ror #8\n" \
            "smlad %[a0], %[xe], %[wt], %[a0]\n" \
            "smlad %[a0], %[xo], %[wv], %[a0]\n" \
            "ldr %[wv], [%[w1]], #4\n" \
            "sxtb16 %[wt], %[wv]\n" \
            "sxtb16 %[wv], %[wv], ror #8\n" \
            "smlad %[a1], %[xe], %[wt], %[a1]\n" \
            "smlad %[a1], %[xo], %[wv], %[a1]\n" \
            "ldr %[wv], [%[w2]], #4\n" \
            "sxtb16 %[wt], %[wv]\n" \
            "sxtb16 %[wv], %[wv], ror #8\n" \
            "smlad %[a2], %[xe], %[wt], %[a2]\n" \
            "smlad %[a2], %[xo], %[wv], %[a2]\n" \
            "ldr %[wv], [%[w3]], #4\n" \
            "sxtb16 %[wt], %[wv]\n" \
            "sxtb16 %[wv], %[wv], ror #8\n" \
            "smlad %[a3], %[xe], %[wt], %[a3]\n" \
            "smlad %[a3], %[xo], %[wv], %[a3]\n"
            FC_DSP_WORD
            FC_DSP_WORD
            FC_DSP_WORD
            FC_DSP_WORD
#undef FC_DSP_WORD
            "ldr %[wt], %[quads]\n"
            "subs %[wt], %[wt], #1\n"
            "str %[wt], %[quads]\n"
            "bne 1b\n"
            : [x] "+r"(x), [w0] "+r"(w0), [w1] "+r"(w1), [w2] "+r"(w2), [w3] "+r"(w3),
              [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [quads] "+m"(quads),
              [xe] "=&r"(xe), [xo] "=&r"(xo), [wv] "=&r"(wv), [wt] "=&r"(wt)
            : [off2] "r"(off2)
            : "cc", "memory");
    }
    done = n & ~15;
    /* the remaining whole words in C (a second asm block in this function would leave GCC at -Os
     * without enough registers) */
    for (; done + 4 <= n; done += 4) {
        MPYML_DSP_WORD4_STEP(x, w0, w1, w2, w3, a0, a1, a2, a3, off2);
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    return done;
}
#define FC_DSP_RUN4 fc_dsp_run4
#elif defined(MPYML_SIMD_DSP)
#define FC_DSP_RUN4 mpyml_dsp_run4
#endif

static inline int8_t fc_finish(const mpyml_fc_params_t *p, int32_t acc, const int32_t *bias,
    const int32_t *mult, const int32_t *shift, int per_channel, int32_t oc)
{
    const int32_t q = per_channel ? oc : 0;
    if (bias) {
        acc = mpyml_wrap_add(acc, bias[oc]);
    }
    return mpyml_dw_requant(acc, mult[q], shift[q], p->output_offset, p->act_min, p->act_max);
}

void mpyml_fully_connected(const mpyml_fc_params_t *p, int32_t batches, int32_t in_depth,
    int32_t out_depth, const int8_t *in, const int8_t *filter, const int32_t *bias,
    const int32_t *mult, const int32_t *shift, int per_channel, int8_t *out)
{
    const int32_t off = p->input_offset;
    int32_t b, oc, d;
#if defined(MPYML_SIMD_DSP)
    /* four outputs per requantization (mpyml_dw_requant4_dsp); per-tensor: the one multiplier four times */
    const int32_t oo = p->output_offset, lo = p->act_min, hi = p->act_max;
    const uint32_t lo4 = mpyml_dw_bytes4(lo), hi4 = mpyml_dw_bytes4(hi);
    const int32_t mult4[4] = {mult[0], mult[0], mult[0], mult[0]};
    const int32_t shift4[4] = {shift[0], shift[0], shift[0], shift[0]};
#endif
#if defined(MPYML_KERNELS_V6M)
    /* Cortex-M0/M3 (no SIMD): fully_connected_v6m.c */
    mpyml_fully_connected_v6m(p, batches, in_depth, out_depth, in, filter, bias, mult, shift, per_channel, out);
    return;
#endif
    for (b = 0; b < batches; b++) {
        const int8_t *x = in + b * in_depth;
        for (oc = 0; oc + 4 <= out_depth; oc += 4) {
            const int8_t *w0 = filter + oc * in_depth;
            const int8_t *w1 = w0 + in_depth, *w2 = w1 + in_depth, *w3 = w2 + in_depth;
            int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            d = 0;
#if defined(MPYML_SIMD_SSE2)
            {
                __m128i v[4];
                int32_t acc[4];
                v[0] = v[1] = v[2] = v[3] = _mm_setzero_si128();
                d = mpyml_sse2_run4(x, w0, in_depth, in_depth, _mm_set1_epi16((short)off), v);
                _mm_storeu_si128((__m128i *)(void *)acc, mpyml_sse2_hsum4(v[0], v[1], v[2], v[3]));
                a0 = acc[0];
                a1 = acc[1];
                a2 = acc[2];
                a3 = acc[3];
            }
#elif defined(MPYML_SIMD_DSP)
            {
                int32_t acc[4] = {0, 0, 0, 0};
                d = FC_DSP_RUN4(x, w0, in_depth, in_depth, mpyml_dsp_off2(off), acc);
                a0 = acc[0];
                a1 = acc[1];
                a2 = acc[2];
                a3 = acc[3];
            }
#endif
            for (; d < in_depth; d++) {
                const int32_t xv = x[d] + off;
                a0 += xv * w0[d];
                a1 += xv * w1[d];
                a2 += xv * w2[d];
                a3 += xv * w3[d];
            }
#if defined(MPYML_SIMD_DSP)
            if (bias) {
                a0 = mpyml_wrap_add(a0, bias[oc]);
                a1 = mpyml_wrap_add(a1, bias[oc + 1]);
                a2 = mpyml_wrap_add(a2, bias[oc + 2]);
                a3 = mpyml_wrap_add(a3, bias[oc + 3]);
            }
            mpyml_dw_requant4_dsp(out + oc, a0, a1, a2, a3, per_channel ? mult + oc : mult4,
                per_channel ? shift + oc : shift4, oo, lo, hi, lo4, hi4);
#else
            out[oc] = fc_finish(p, a0, bias, mult, shift, per_channel, oc);
            out[oc + 1] = fc_finish(p, a1, bias, mult, shift, per_channel, oc + 1);
            out[oc + 2] = fc_finish(p, a2, bias, mult, shift, per_channel, oc + 2);
            out[oc + 3] = fc_finish(p, a3, bias, mult, shift, per_channel, oc + 3);
#endif
        }
        for (; oc < out_depth; oc++) {
            const int8_t *w = filter + oc * in_depth;
            int32_t a = 0;
            d = 0;
#if defined(MPYML_SIMD_SSE2)
            {
                __m128i v = _mm_setzero_si128();
                d = mpyml_sse2_run1(x, w, in_depth, _mm_set1_epi16((short)off), &v);
                a = mpyml_sse2_hsum1(v);
            }
#elif defined(MPYML_SIMD_DSP)
            d = mpyml_dsp_run1(x, w, in_depth, mpyml_dsp_off2(off), &a);
#endif
            for (; d < in_depth; d++) {
                a += (x[d] + off) * w[d];
            }
            out[oc] = fc_finish(p, a, bias, mult, shift, per_channel, oc);
        }
        out += out_depth;
    }
}
