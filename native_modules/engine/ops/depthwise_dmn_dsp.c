/*
 * ops/depthwise_dmn_dsp.c - the Armv7E-M DSP (Cortex-M4/M7) kernel of DEPTHWISE_CONV_2D with depth
 * multiplier >= 4, for one output pixel and one input channel (mpyml_dw_dmn_dsp, interface in
 * depthwise_dm1.h), and its special case of 1 input channel, depth multiplier 8 and a full 3x3 window
 * (person_detect's first layer) for a run of pixels (mpyml_dw_dmn8_c1_dsp, declared in depthwise_conv2d.c).
 * Built only when simd.h selects the DSP helpers, i.e. on M4/M7 and in the host's MPYML_EMULATE_DSP test
 * variant.
 *
 * The dm output channels of input channel ic are contiguous in the filter and the output. Four at a time:
 * per tap one byte of input (x + input_offset in the bottom halfword, exact: |x + off| <= 255) and one
 * word of filter split by SXTB16 into channels 0/2 and 1/3; SMLABB / SMLABT accumulate the four channels,
 * starting from the bias (wrapping modulo 2^32 exactly as TFLite's bias add); mpyml_dw_requant4_any
 * requantizes the four (out of line, natmod size: with 1 input channel, depth multiplier 8 and a 3x3 filter
 * this kernel only gets the clipped edge windows). Same arithmetic as mpyml_depthwise_conv2d_ref.
 * @param dm        4..(out channels), any value (the last dm % 4 channels are left to the caller)
 * @param win       n_rows, n_cols >= 0 (0: bias only), any strides
 *
 * mpyml_dw_dmn8_c1_dsp: the full 3x3 window of 1 input channel with depth multiplier 8 (person_detect's
 * first layer), a run of n pixels of one output row. The nine inputs of a pixel are loaded once, (x +
 * input_offset) packed into halfword pairs of taps (0,1) (2,3) (4,5) (6,7) (8,-) (exact: |x + off| <= 255);
 * dw_dmn8_pack arranges the filter (once per run, on the stack) so that one word holds taps 2q, 2q+1 of
 * channels 2g, 2g+1 as bytes [2q/2g, 2q/2g+1, 2q+1/2g, 2q+1/2g+1]: SXTB16 / SXTB16 ror 8 give each channel's
 * tap pair, SMLAD does 2 MACs; mpyml_dw_requant4_dsp requantizes four channels at a time.
 * @param win       n_rows == n_cols == 3, x_col_step / x_row_step any, w at filter tap 0 (filter [1][3][3][8])
 * @param n         >= 1 consecutive output pixels of one row, all with the full window
 * @param x_step    stride_w * in_c: input elements between two of those pixels
 */
#include "simd.h"

#if defined(MPYML_SIMD_DSP)
#include "depthwise_dm1.h"

#define DW_DMN_TAP(xp, wp) do { \
        const uint32_t xv_ = (uint32_t)(*(xp) + off), wv_ = mpyml_dsp_ld32(wp); \
        const uint32_t we_ = mpyml_dsp_sxtb16(wv_), wo_ = mpyml_dsp_sxtb16_ror8(wv_); \
        a0 = mpyml_dsp_smlabb(xv_, we_, a0); \
        a2 = mpyml_dsp_smlabt(xv_, we_, a2); \
        a1 = mpyml_dsp_smlabb(xv_, wo_, a1); \
        a3 = mpyml_dsp_smlabt(xv_, wo_, a3); \
    } while (0)

void mpyml_dw_dmn_dsp(const mpyml_conv_params_t *p, const mpyml_dw_win_t *win, int32_t ic, int32_t dm,
    const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out)
{
    const int32_t off = p->input_offset;
    const int32_t n_rows = win->n_rows, n_cols = win->n_cols;
    const int32_t xcs = win->x_col_step, wcs = win->w_col_step;
    const int32_t xrs = win->x_row_step - n_cols * xcs, wrs = win->w_row_step - n_cols * wcs;
    const int32_t oc0 = ic * dm;
    int32_t m;
    for (m = 0; m + 4 <= dm; m += 4) {
        const int32_t oc = oc0 + m;
        const int8_t *x = win->x + ic, *w = win->w + oc;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, r, c;
        if (bias) {
            a0 = bias[oc];
            a1 = bias[oc + 1];
            a2 = bias[oc + 2];
            a3 = bias[oc + 3];
        }
        for (r = n_rows; r > 0; r--) {
            for (c = n_cols; c > 0; c--) {
                DW_DMN_TAP(x, w);
                x += xcs;
                w += wcs;
            }
            x += xrs;
            w += wrs;
        }
        mpyml_dw_requant4_any(out + oc, a0, a1, a2, a3, mult + oc, shift + oc, p->output_offset, p->act_min,
            p->act_max);
    }
}
#undef DW_DMN_TAP

/* filter [1][3][3][8] -> wpk[q * 4 + g] (tap pair q = 0..4, channel pair g = 0..3; tap 9 is 0): from the
 * words A (channels 4h..4h+3 of tap 2q) and B (tap 2q + 1), PKHBT / PKHTB give [a0 a1 b0 b1] and [a2 a3 b2 b3] */
static void dw_dmn8_pack(const int8_t *filter, uint32_t *wpk)
{
    int32_t q, h;
    for (q = 0; q < 5; q++) {
        for (h = 0; h < 2; h++) {
            const uint32_t a = mpyml_dsp_ld32(filter + 16 * q + 4 * h);
            const uint32_t b = q < 4 ? mpyml_dsp_ld32(filter + 16 * q + 8 + 4 * h) : 0u;
            wpk[4 * q + 2 * h] = (a & 0xFFFFu) | (b << 16);
            wpk[4 * q + 2 * h + 1] = (a >> 16) | (b & 0xFFFF0000u);
        }
    }
}

#define DW_DMN8_X(i) ((uint32_t)(x[((i) / 3) * xrs + ((i) % 3) * xcs] + off))
#define DW_DMN8_PAIR(q, a0, a1, a2, a3, g) do { \
        const uint32_t w0_ = wpk[(q) * 4 + (g)], w1_ = wpk[(q) * 4 + (g) + 1]; \
        a0 = mpyml_dsp_smlad(xp[q], mpyml_dsp_sxtb16(w0_), a0); \
        a1 = mpyml_dsp_smlad(xp[q], mpyml_dsp_sxtb16_ror8(w0_), a1); \
        a2 = mpyml_dsp_smlad(xp[q], mpyml_dsp_sxtb16(w1_), a2); \
        a3 = mpyml_dsp_smlad(xp[q], mpyml_dsp_sxtb16_ror8(w1_), a3); \
    } while (0)

void mpyml_dw_dmn8_c1_dsp(const mpyml_conv_params_t *p, const mpyml_dw_win_t *win, int32_t n, int32_t x_step,
    const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out)
{
    const int32_t off = p->input_offset, oo = p->output_offset, lo = p->act_min, hi = p->act_max;
    const uint32_t lo4 = mpyml_dw_bytes4(lo), hi4 = mpyml_dw_bytes4(hi);
    const int8_t *x = win->x;
    const int32_t xrs = win->x_row_step, xcs = win->x_col_step;
    uint32_t wpk[20];
    dw_dmn8_pack(win->w, wpk);
    for (; n > 0; n--) {
        uint32_t xp[5];
        int32_t g, q;
        xp[0] = (DW_DMN8_X(0) & 0xFFFFu) | (DW_DMN8_X(1) << 16);
        xp[1] = (DW_DMN8_X(2) & 0xFFFFu) | (DW_DMN8_X(3) << 16);
        xp[2] = (DW_DMN8_X(4) & 0xFFFFu) | (DW_DMN8_X(5) << 16);
        xp[3] = (DW_DMN8_X(6) & 0xFFFFu) | (DW_DMN8_X(7) << 16);
        xp[4] = DW_DMN8_X(8) & 0xFFFFu;
        for (g = 0; g < 4; g += 2) {
            int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            if (bias) {
                a0 = bias[2 * g];
                a1 = bias[2 * g + 1];
                a2 = bias[2 * g + 2];
                a3 = bias[2 * g + 3];
            }
            for (q = 0; q < 5; q++) {   /* a loop, not unrolled: natmod size */
                DW_DMN8_PAIR(q, a0, a1, a2, a3, g);
            }
            mpyml_dw_requant4_dsp(out + 2 * g, a0, a1, a2, a3, mult + 2 * g, shift + 2 * g, oo, lo, hi, lo4, hi4);
        }
        x += x_step;
        out += 8;
    }
}
#undef DW_DMN8_X
#undef DW_DMN8_PAIR

#else
typedef int mpyml_depthwise_dmn_dsp_unused_t;   /* ISO C: a translation unit declares something */
#endif
