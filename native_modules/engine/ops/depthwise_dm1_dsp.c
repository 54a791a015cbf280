/*
 * ops/depthwise_dm1_dsp.c - the Armv7E-M DSP (Cortex-M4/M7) row kernel of DEPTHWISE_CONV_2D with depth
 * multiplier 1 (interface and requantization in depthwise_dm1.h; built only when simd.h selects the DSP
 * helpers, i.e. on M4/M7 and in the host's MPYML_EMULATE_DSP test variant).
 *
 * Per pixel, four channels at a time: one word load per tap of input and of filter, SXTAB16 / SXTB16 split
 * even and odd channels into halfword lanes (input_offset added to the input lanes, exact: |x + off| <= 255),
 * SMLABB / SMLATT accumulate each lane, starting from the bias (the accumulators wrap modulo 2^32 exactly
 * as TFLite's bias add does). Pixels whose filter row lies wholly inside the input with a 3-wide, undilated
 * filter run the three taps of each filter row unrolled (in assembly on the target, all 9 taps unrolled when
 * the 3 filter rows are inside the input; a noinline function, so that GCC has the registers for it),
 * undilated pixels with exactly 2 valid columns (the clipped edges of a 3-wide filter, interior of a 2-wide
 * one) the two taps; other pixels clip their columns once. Channels beyond the last multiple of 4 are summed
 * one at a time. Each group of 4 channels is requantized together (mpyml_dw_requant4_dsp: SMMULR, ASRS / ADC
 * rounding, one SSUB8 / SEL clamp and one word store). Same arithmetic as mpyml_depthwise_conv2d_ref.
 */
#include "simd.h"

#if defined(MPYML_SIMD_DSP)
#include "depthwise_dm1.h"

#define DW_DSP_TAP(xp, wp) do { \
        const uint32_t xv_ = mpyml_dsp_ld32(xp), wv_ = mpyml_dsp_ld32(wp); \
        const uint32_t xe_ = mpyml_dsp_sxtab16(off2, xv_), xo_ = mpyml_dsp_sxtab16_ror8(off2, xv_); \
        const uint32_t we_ = mpyml_dsp_sxtb16(wv_), wo_ = mpyml_dsp_sxtb16_ror8(wv_); \
        a0 = mpyml_dsp_smlabb(xe_, we_, a0); \
        a2 = mpyml_dsp_smlatt(xe_, we_, a2); \
        a1 = mpyml_dsp_smlabb(xo_, wo_, a1); \
        a3 = mpyml_dsp_smlatt(xo_, wo_, a3); \
    } while (0)

void mpyml_dw_requant4_any(int8_t *o, int32_t a0, int32_t a1, int32_t a2, int32_t a3, const int32_t *mult,
    const int32_t *shift, int32_t out_off, int32_t act_min, int32_t act_max)
{
    o[0] = mpyml_dw_requant(a0, mult[0], shift[0], out_off, act_min, act_max);
    o[1] = mpyml_dw_requant(a1, mult[1], shift[1], out_off, act_min, act_max);
    o[2] = mpyml_dw_requant(a2, mult[2], shift[2], out_off, act_min, act_max);
    o[3] = mpyml_dw_requant(a3, mult[3], shift[3], out_off, act_min, act_max);
}

/* the four requantized channels c..c+3 of one pixel (lo4 / hi4: act_min / act_max in every byte): in line in
 * the 3- and 2-column kernels, one out-of-line copy for dw_pixel (code size) */
static MPYML_DW_INLINE void dw_store4(int8_t *o, const int32_t *mult, const int32_t *shift, int32_t a0,
    int32_t a1, int32_t a2, int32_t a3, int32_t oo, int32_t lo, int32_t hi, uint32_t lo4, uint32_t hi4)
{
    mpyml_dw_requant4_dsp(o, a0, a1, a2, a3, mult, shift, oo, lo, hi, lo4, hi4);
}

static MPYML_DW_NOINLINE void dw_store4_call(int8_t *o, const int32_t *mult, const int32_t *shift, int32_t a0,
    int32_t a1, int32_t a2, int32_t a3, int32_t oo, int32_t lo, int32_t hi, uint32_t lo4, uint32_t hi4)
{
    mpyml_dw_requant4_dsp(o, a0, a1, a2, a3, mult, shift, oo, lo, hi, lo4, hi4);
}

#if !defined(MPYML_EMULATE_DSP)
/* The NC == 3 tap rows of one 4-channel group in assembly (GCC spills the C loop's pointers and accumulators):
 * 12 values in registers, the row counter and row step in memory (13 registers are more than GCC finds with
 * the hard-float ABI), 3 taps per filter row with register-offset loads ([p], [p, c], [p, c, lsl #1]). */
#define DW_TAPS3_ASM(xp, wp, c_n, xrs, n_rows, off2, a0, a1, a2, a3) do { \
        const int8_t *x_ = (xp), *w_ = (wp); \
        int32_t k_ = (n_rows), xrs_ = (xrs); \
        uint32_t t0_, t1_, t2_, t3_; \
        __asm__ volatile( \
            "1:\n" \
            DW_TAP3_ASM("[%[x]]", "[%[w]]") \
            DW_TAP3_ASM("[%[x], %[cn]]", "[%[w], %[cn]]") \
            DW_TAP3_ASM("[%[x], %[cn], lsl #1]", "[%[w], %[cn], lsl #1]") \
            "ldr %[t0], %[xrs]\n" \
            "add %[x], %[x], %[t0]\n" \
            "add %[w], %[w], %[cn], lsl #1\n" \
            "add %[w], %[w], %[cn]\n" \
            "ldr %[t0], %[k]\n" \
            "subs %[t0], %[t0], #1\n" \
            "str %[t0], %[k]\n" \
            "bne 1b\n" \
            : [x] "+r"(x_), [w] "+r"(w_), [k] "+m"(k_), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), \
              [a3] "+r"(a3), [t0] "=&r"(t0_), [t1] "=&r"(t1_), [t2] "=&r"(t2_), [t3] "=&r"(t3_) \
            : [cn] "r"(c_n), [xrs] "m"(xrs_), [off2] "r"(off2) \
            : "cc", "memory"); \
    } while (0)
/* the same for exactly 3 filter rows, unrolled (no counter) */
#define DW_TAPS9_ASM(xp, wp, c_n, xrs, off2, a0, a1, a2, a3) do { \
        const int8_t *x_ = (xp), *w_ = (wp); \
        int32_t xrs_ = (xrs); \
        uint32_t t0_, t1_, t2_, t3_; \
        __asm__ volatile( \
            DW_ROW3_ASM \
            DW_ROW3_ASM \
            DW_TAP3_ASM("[%[x]]", "[%[w]]") \
            DW_TAP3_ASM("[%[x], %[cn]]", "[%[w], %[cn]]") \
            DW_TAP3_ASM("[%[x], %[cn], lsl #1]", "[%[w], %[cn], lsl #1]") \
            : [x] "+r"(x_), [w] "+r"(w_), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), \
              [a3] "+r"(a3), [t0] "=&r"(t0_), [t1] "=&r"(t1_), [t2] "=&r"(t2_), [t3] "=&r"(t3_) \
            : [cn] "r"(c_n), [xrs] "m"(xrs_), [off2] "r"(off2) \
            : "memory"); \
    } while (0)
#define DW_ROW3_ASM \
            DW_TAP3_ASM("[%[x]]", "[%[w]]") \
            DW_TAP3_ASM("[%[x], %[cn]]", "[%[w], %[cn]]") \
            DW_TAP3_ASM("[%[x], %[cn], lsl #1]", "[%[w], %[cn], lsl #1]") \
            "ldr %[t0], %[xrs]\n" \
            "add %[x], %[x], %[t0]\n" \
            "add %[w], %[w], %[cn], lsl #1\n" \
            "add %[w], %[w], %[cn]\n"
#define DW_TAP3_ASM(xa, wa) \
            "ldr %[t0], " xa "\n" \
            "ldr %[t1], " wa "\n" \
            "sxtab16 %[t2], %[off2], %[t0]\n" \
            "sxtab16 %[t0], %[off2], %[t0], ror #8\n" \
            "sxtb16 %[t3], %[t1]\n" \
            "sxtb16 %[t1], %[t1], ror #8\n" \
            "smlabb %[a0], %[t2], %[t3], %[a0]\n" \
            "smlatt %[a2], %[t2], %[t3], %[a2]\n" \
            "smlabb %[a1], %[t0], %[t1], %[a1]\n" \
            "smlatt %[a3], %[t0], %[t1], %[a3]\n"
#endif

/* One pixel whose filter row has NC (2 or 3) consecutive valid columns, undilated: x at the pixel's first
 * valid tap (channel 0), w at the matching filter column (channel 0): the interior of a 3-wide filter and
 * the clipped edge columns of a 3-wide filter (SAME padding) or of a 2-wide one. Not inlined: its own frame
 * leaves GCC the registers for the assembly. */
#define DW_PIXEL_COLS(NAME, NC) \
static MPYML_DW_NOINLINE void NAME(const mpyml_conv_params_t *p, const mpyml_dw_row_t *r, const int8_t *x, \
    const int8_t *w, int8_t *out, const int32_t *bias, const int32_t *mult, const int32_t *shift) \
{ \
    const int32_t c_n = r->c, xrs = r->x_row_step, wrs = r->f_w * c_n, n_rows = r->n_rows; \
    const int32_t oo = p->output_offset, lo = p->act_min, hi = p->act_max; \
    const uint32_t off2 = mpyml_dsp_off2(p->input_offset), lo4 = mpyml_dw_bytes4(lo), hi4 = mpyml_dw_bytes4(hi); \
    int32_t c; \
    for (c = 0; c + 4 <= c_n; c += 4) { \
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, k; \
        const int8_t *xp = x + c, *wp = w + c; \
        if (bias) { \
            a0 = bias[c]; \
            a1 = bias[c + 1]; \
            a2 = bias[c + 2]; \
            a3 = bias[c + 3]; \
        } \
        DW_TAPS_FAST(NC) \
        for (k = n_rows; k > 0; k--) { \
            const int8_t *xq = xp + c_n, *wq = wp + c_n; \
            DW_DSP_TAP(xp, wp); \
            DW_DSP_TAP(xq, wq); \
            if (NC == 3) { \
                DW_DSP_TAP(xq + c_n, wq + c_n); \
            } \
            xp += xrs; \
            wp += wrs; \
        } \
        dw_store4(out + c, mult + c, shift + c, a0, a1, a2, a3, oo, lo, hi, lo4, hi4); \
    } \
    for (; c < c_n; c++) { \
        const int32_t off = p->input_offset; \
        const int8_t *xp = x + c, *wp = w + c; \
        int32_t a = 0, k; \
        for (k = n_rows; k > 0; k--) { \
            a += (xp[0] + off) * wp[0] + (xp[c_n] + off) * wp[c_n]; \
            if (NC == 3) { \
                a += (xp[2 * c_n] + off) * wp[2 * c_n]; \
            } \
            xp += xrs; \
            wp += wrs; \
        } \
        if (bias) { \
            a = mpyml_wrap_add(a, bias[c]); \
        } \
        out[c] = mpyml_dw_requant(a, mult[c], shift[c], p->output_offset, p->act_min, p->act_max); \
    } \
}

#if !defined(MPYML_EMULATE_DSP)
#define DW_TAPS_FAST(NC) \
        if (NC == 3) { \
            if (MPYML_DW_LIKELY(n_rows == 3)) { \
                DW_TAPS9_ASM(xp, wp, c_n, xrs, off2, a0, a1, a2, a3); \
            } else { \
                DW_TAPS3_ASM(xp, wp, c_n, xrs, n_rows, off2, a0, a1, a2, a3); \
            } \
            dw_store4(out + c, mult + c, shift + c, a0, a1, a2, a3, oo, lo, hi, lo4, hi4); \
            continue; \
        }
#else
#define DW_TAPS_FAST(NC)
#endif
DW_PIXEL_COLS(dw_pixel3, 3)
DW_PIXEL_COLS(dw_pixel2, 2)
#undef DW_PIXEL_COLS
#undef DW_TAPS_FAST

/* Any pixel: filter columns fx0 .. fx1 - 1 are inside the input (possibly none), x at column ix0 + dil_w fx0. */
static void dw_pixel(const mpyml_conv_params_t *p, const mpyml_dw_row_t *r, const int8_t *x, int32_t fx0,
    int32_t fx1, int8_t *out, const int32_t *bias, const int32_t *mult, const int32_t *shift)
{
    const int32_t c_n = r->c, xcs = p->dil_w * c_n, xrs = r->x_row_step, wrs = r->f_w * c_n;
    const int32_t n_cols = fx1 - fx0, off = p->input_offset;
    const int32_t oo = p->output_offset, lo = p->act_min, hi = p->act_max;
    const uint32_t off2 = mpyml_dsp_off2(off), lo4 = mpyml_dw_bytes4(lo), hi4 = mpyml_dw_bytes4(hi);
    const int8_t *w = r->w + fx0 * c_n;
    int32_t c, k, j;
    for (c = 0; c + 4 <= c_n; c += 4) {
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        if (bias) {
            a0 = bias[c];
            a1 = bias[c + 1];
            a2 = bias[c + 2];
            a3 = bias[c + 3];
        }
        for (k = 0; k < r->n_rows; k++) {
            const int8_t *xp = x + k * xrs + c, *wp = w + k * wrs + c;
            for (j = 0; j < n_cols; j++) {
                DW_DSP_TAP(xp, wp);
                xp += xcs;
                wp += c_n;
            }
        }
        dw_store4_call(out + c, mult + c, shift + c, a0, a1, a2, a3, oo, lo, hi, lo4, hi4);
    }
    for (; c < c_n; c++) {
        int32_t a = 0;
        for (k = 0; k < r->n_rows; k++) {
            const int8_t *xp = x + k * xrs + c, *wp = w + k * wrs + c;
            for (j = 0; j < n_cols; j++) {
                a += (xp[0] + off) * wp[0];
                xp += xcs;
                wp += c_n;
            }
        }
        if (bias) {
            a = mpyml_wrap_add(a, bias[c]);
        }
        out[c] = mpyml_dw_requant(a, mult[c], shift[c], p->output_offset, p->act_min, p->act_max);
    }
}
#undef DW_DSP_TAP

void mpyml_dw_dm1_row(const mpyml_conv_params_t *p, const mpyml_dw_row_t *r, const int32_t *bias,
    const int32_t *mult, const int32_t *shift)
{
    const int32_t c_n = r->c, dil = p->dil_w, f_w = r->f_w;
    const int fast3 = f_w == 3 && dil == 1;
    int32_t lo, hi, ox;
    mpyml_dw_interior(p, r, &lo, &hi);
    for (ox = 0; ox < r->out_w; ox++) {
        const int32_t ix0 = ox * p->stride_w - p->pad_w;
        int8_t *out = r->out + ox * c_n;
        if (ox >= lo && ox < hi) {
            if (fast3) {
                dw_pixel3(p, r, r->x + ix0 * c_n, r->w, out, bias, mult, shift);
            } else if (f_w == 2 && dil == 1) {
                dw_pixel2(p, r, r->x + ix0 * c_n, r->w, out, bias, mult, shift);
            } else {
                dw_pixel(p, r, r->x + ix0 * c_n, 0, f_w, out, bias, mult, shift);
            }
        } else {
            int32_t fx0 = 0, fx1 = f_w;
            while (fx0 < f_w && ix0 + dil * fx0 < 0) {
                fx0++;
            }
            while (fx1 > fx0 && ix0 + dil * (fx1 - 1) >= r->in_w) {
                fx1--;
            }
            if (dil == 1 && fx1 - fx0 == 2) {
                dw_pixel2(p, r, r->x + (ix0 + fx0) * c_n, r->w + fx0 * c_n, out, bias, mult, shift);
            } else {
                /* no valid column: x is not read (n_cols 0), point it at the row start */
                dw_pixel(p, r, fx1 > fx0 ? r->x + (ix0 + dil * fx0) * c_n : r->x, fx0, fx1, out, bias, mult,
                    shift);
            }
        }
    }
}

#else
typedef int mpyml_depthwise_dm1_dsp_unused_t;   /* ISO C: a translation unit declares something */
#endif
