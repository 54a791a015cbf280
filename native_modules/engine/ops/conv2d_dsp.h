/*
 * ops/conv2d_dsp.h - the Armv7E-M DSP (Cortex-M4/M7) CONV_2D kernel that conv2d.c's mpyml_conv2d
 * dispatches to when simd.h selects the DSP helpers (M4/M7, and the host's MPYML_EMULATE_DSP variant).
 *
 * mpyml_conv2d_dsp: im2col + 2 pixels x 2 output channels register-blocked GEMM (conv2d_dsp.c). Uses
 * 4 * MPYML_CONV_DSP_MAX_K bytes of C stack for the column buffer.
 * @param in_c, f_h, f_w  any, with K = f_h * f_w * in_c <= MPYML_CONV_DSP_MAX_K (else returns 0 and does
 *                        nothing: the caller runs its generic path)
 * @param stride, dilation, padding  any (per-tap clipping in the im2col)
 * @param out_c          >= 2 (else returns 0); an odd count recomputes the second-to-last channel
 * @param pixels         any (>= 1)
 * Output is identical to mpyml_conv2d_ref (TFLite's reference ConvPerChannel).
 */
#ifndef MPYML_OPS_CONV2D_DSP_H
#define MPYML_OPS_CONV2D_DSP_H

#include "ops.h"

/* the im2col buffer holds two int16 columns of K elements: 4 * K bytes of C stack (2304 B at 576, the
 * largest reduction of the MLPerf Tiny models: 3x3x64) */
#define MPYML_CONV_DSP_MAX_K 576

/* Returns 1 if it computed the convolution, 0 if the shape is outside its range (nothing written). */
int mpyml_conv2d_dsp(const mpyml_conv_params_t *p,
    const mpyml_shape4_t *in_s, const int8_t *in,
    const mpyml_shape4_t *f_s, const int8_t *filter,
    const int32_t *bias, const int32_t *mult, const int32_t *shift,
    const mpyml_shape4_t *out_s, int8_t *out);

#endif /* MPYML_OPS_CONV2D_DSP_H */
