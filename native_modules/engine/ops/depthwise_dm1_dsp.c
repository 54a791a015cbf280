/*
 * ops/depthwise_dm1_dsp.c - the Armv7E-M DSP (Cortex-M4/M7) row kernel of DEPTHWISE_CONV_2D with depth
 * multiplier 1 (interface and requantization in depthwise_dm1.h; built only when simd.h selects the DSP
 * helpers, i.e. on M4/M7 and in the host's MPYML_EMULATE_DSP test variant).
 *
 * Per pixel, four channels at a time: one word load per tap of input and of filter, SXTAB16 / SXTB16 split
 * even and odd channels into halfword lanes (input_offset added to the input lanes, exact: |x + off| <= 255),
 * SMLABB / SMLATT accumulate each lane, starting from the bias (the accumulators wrap modulo 2^32 exactly
 * as TFLite's bias add does). Pixels whose filter row lies wholly inside the input with a 3-wide, undilated
 * filter run the three taps of each filter row unrolled, undilated pixels with exactly 2 valid columns (the
 * clipped edges of a 3-wide filter, interior of a 2-wide one) the two taps; other pixels clip their columns
 * once. Channels
 * beyond the last multiple of 4 are summed one at a time. Same arithmetic as mpyml_depthwise_conv2d_ref.
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

/* the four requantized channels c..c+3 of one pixel */
static inline void dw_store4(const mpyml_conv_params_t *p, int8_t *o, const int32_t *mult,
    const int32_t *shift, int32_t a0, int32_t a1, int32_t a2, int32_t a3)
{
    const int32_t oo = p->output_offset, lo = p->act_min, hi = p->act_max;
    o[0] = mpyml_dw_requant(a0, mult[0], shift[0], oo, lo, hi);
    o[1] = mpyml_dw_requant(a1, mult[1], shift[1], oo, lo, hi);
    o[2] = mpyml_dw_requant(a2, mult[2], shift[2], oo, lo, hi);
    o[3] = mpyml_dw_requant(a3, mult[3], shift[3], oo, lo, hi);
}

/* One pixel whose filter row has NC (2 or 3) consecutive valid columns, undilated: x at the pixel's first
 * valid tap (channel 0), w at the matching filter column (channel 0): the interior of a 3-wide filter and
 * the clipped edge columns of a 3-wide filter (SAME padding) or of a 2-wide one. */
#define DW_PIXEL_COLS(NAME, NC) \
static void NAME(const mpyml_conv_params_t *p, const mpyml_dw_row_t *r, const int8_t *x, const int8_t *w, \
    int8_t *out, const int32_t *bias, const int32_t *mult, const int32_t *shift) \
{ \
    const int32_t c_n = r->c, xrs = r->x_row_step, wrs = r->f_w * c_n; \
    const uint32_t off2 = mpyml_dsp_off2(p->input_offset); \
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
        for (k = r->n_rows; k > 0; k--) { \
            const int8_t *xq = xp + c_n, *wq = wp + c_n; \
            DW_DSP_TAP(xp, wp); \
            DW_DSP_TAP(xq, wq); \
            if (NC == 3) { \
                DW_DSP_TAP(xq + c_n, wq + c_n); \
            } \
            xp += xrs; \
            wp += wrs; \
        } \
        dw_store4(p, out + c, mult + c, shift + c, a0, a1, a2, a3); \
    } \
    for (; c < c_n; c++) { \
        const int32_t off = p->input_offset; \
        const int8_t *xp = x + c, *wp = w + c; \
        int32_t a = 0, k; \
        for (k = r->n_rows; k > 0; k--) { \
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

DW_PIXEL_COLS(dw_pixel3, 3)
DW_PIXEL_COLS(dw_pixel2, 2)
#undef DW_PIXEL_COLS

/* Any pixel: filter columns fx0 .. fx1 - 1 are inside the input (possibly none), x at column ix0 + dil_w fx0. */
static void dw_pixel(const mpyml_conv_params_t *p, const mpyml_dw_row_t *r, const int8_t *x, int32_t fx0,
    int32_t fx1, int8_t *out, const int32_t *bias, const int32_t *mult, const int32_t *shift)
{
    const int32_t c_n = r->c, xcs = p->dil_w * c_n, xrs = r->x_row_step, wrs = r->f_w * c_n;
    const int32_t n_cols = fx1 - fx0, off = p->input_offset;
    const uint32_t off2 = mpyml_dsp_off2(off);
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
        dw_store4(p, out + c, mult + c, shift + c, a0, a1, a2, a3);
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
