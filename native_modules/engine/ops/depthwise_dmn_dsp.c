/*
 * ops/depthwise_dmn_dsp.c - the Armv7E-M DSP (Cortex-M4/M7) kernel of DEPTHWISE_CONV_2D with depth
 * multiplier >= 4 (e.g. person_detect's first layer: 1 input channel, depth multiplier 8), for one output
 * pixel and one input channel (interface in depthwise_dm1.h; built only when simd.h selects the DSP
 * helpers, i.e. on M4/M7 and in the host's MPYML_EMULATE_DSP test variant).
 *
 * The dm output channels of input channel ic are contiguous in the filter and the output. Four at a time:
 * per tap one byte of input (x + input_offset in the bottom halfword, exact: |x + off| <= 255) and one
 * word of filter split by SXTB16 into channels 0/2 and 1/3; SMLABB / SMLABT accumulate the four channels,
 * starting from the bias (wrapping modulo 2^32 exactly as TFLite's bias add); mpyml_dw_requant4_dsp
 * requantizes the four together. Same arithmetic as mpyml_depthwise_conv2d_ref.
 * @param dm        4..(out channels), any value (the last dm % 4 channels are left to the caller)
 * @param win       n_rows, n_cols >= 0 (0: bias only), any strides
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
    const int32_t off = p->input_offset, oo = p->output_offset, lo = p->act_min, hi = p->act_max;
    const uint32_t lo4 = mpyml_dw_bytes4(lo), hi4 = mpyml_dw_bytes4(hi);
    const int32_t n_rows = win->n_rows, n_cols = win->n_cols;
    const int32_t xcs = win->x_col_step, wcs = win->w_col_step;
    const int32_t xrs0 = win->x_row_step, wrs0 = win->w_row_step;
    const int32_t xrs = xrs0 - n_cols * xcs, wrs = wrs0 - n_cols * wcs;
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
        if (n_cols == 3) {     /* the common full window: the three taps of a row unrolled */
            for (r = n_rows; r > 0; r--) {
                DW_DMN_TAP(x, w);
                DW_DMN_TAP(x + xcs, w + wcs);
                DW_DMN_TAP(x + 2 * xcs, w + 2 * wcs);
                x += xrs0;
                w += wrs0;
            }
        } else {
            for (r = n_rows; r > 0; r--) {
                for (c = n_cols; c > 0; c--) {
                    DW_DMN_TAP(x, w);
                    x += xcs;
                    w += wcs;
                }
                x += xrs;
                w += wrs;
            }
        }
        mpyml_dw_requant4_dsp(out + oc, a0, a1, a2, a3, mult + oc, shift + oc, oo, lo, hi, lo4, hi4);
    }
}
#undef DW_DMN_TAP

#else
typedef int mpyml_depthwise_dmn_dsp_unused_t;   /* ISO C: a translation unit declares something */
#endif
