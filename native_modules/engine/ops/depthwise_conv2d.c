/*
 * ops/depthwise_conv2d.c - DEPTHWISE_CONV_2D, int8 with per-channel requantization.
 *
 * Owns mpyml_depthwise_conv2d_ref (a line-by-line port of TFLite Micro's
 * reference_integer_ops::DepthwiseConvPerChannel) and mpyml_depthwise_conv2d, the optimized entry
 * point with identical output: the filter window is clipped once per output pixel (no per-tap
 * bounds test) and four output channels are accumulated together so every tap's address arithmetic
 * is shared; depth_multiplier 1 (channels contiguous in input, filter and output) and > 1 (one input
 * value feeds `depth_multiplier` consecutive output channels) have their own inner loops; with depth
 * multiplier 1, 8 channels per SSE2 madd (x86-64); on every other target depth multiplier 1 goes row by
 * row to mpyml_dw_dm1_row (depthwise_dm1_dsp.c on Cortex-M4/M7, depthwise_dm1_scalar.c otherwise); depth
 * multiplier >= 4 on Cortex-M4/M7 goes pixel by pixel to mpyml_dw_dmn_dsp (depthwise_dmn_dsp.c), except
 * runs of full 3x3 windows with 1 input channel and depth multiplier 8 (mpyml_dw_dmn8_c1_dsp, same file).
 * The int32 accumulator cannot overflow (the loader bounds KH*KW <= 65536); bias is added with
 * wraparound, then MultiplyByQuantizedMultiplier, output offset and clamp, exactly as TFLite.
 */
#include "ops.h"
#include "fixedpoint.h"
#include "simd.h"
#include "depthwise_dm1.h"

void mpyml_depthwise_conv2d_ref(const mpyml_conv_params_t *p,
    const mpyml_shape4_t *in_s, const int8_t *in,
    const mpyml_shape4_t *f_s, const int8_t *filter,
    const int32_t *bias, const int32_t *mult, const int32_t *shift,
    const mpyml_shape4_t *out_s, int8_t *out)
{
    const int32_t in_h = in_s->h, in_w = in_s->w, in_c = in_s->c;
    const int32_t f_h = f_s->h, f_w = f_s->w;
    const int32_t out_h = out_s->h, out_w = out_s->w, out_c = out_s->c;
    const int32_t dm = p->depth_multiplier;
    int32_t b, oy, ox, ic, m, fy, fx;

    for (b = 0; b < out_s->n; b++) {
        for (oy = 0; oy < out_h; oy++) {
            for (ox = 0; ox < out_w; ox++) {
                for (ic = 0; ic < in_c; ic++) {
                    for (m = 0; m < dm; m++) {
                        const int32_t oc = m + ic * dm;
                        const int32_t ix0 = ox * p->stride_w - p->pad_w;
                        const int32_t iy0 = oy * p->stride_h - p->pad_h;
                        int32_t acc = 0;
                        for (fy = 0; fy < f_h; fy++) {
                            for (fx = 0; fx < f_w; fx++) {
                                const int32_t ix = ix0 + p->dil_w * fx;
                                const int32_t iy = iy0 + p->dil_h * fy;
                                if (ix >= 0 && ix < in_w && iy >= 0 && iy < in_h) {
                                    const int32_t x = in[((b * in_h + iy) * in_w + ix) * in_c + ic];
                                    const int32_t w = filter[(fy * f_w + fx) * out_c + oc];
                                    acc += w * (x + p->input_offset);
                                }
                            }
                        }
                        if (bias) {
                            acc = mpyml_wrap_add(acc, bias[oc]);
                        }
                        out[((b * out_h + oy) * out_w + ox) * out_c + oc] = mpyml_requant(acc,
                            mult[oc], shift[oc], p->output_offset, p->act_min, p->act_max);
                    }
                }
            }
        }
    }
}

/* ---------------------------------------------------------------- optimized */

/* First tap index t in [0, n) with 0 <= origin + dil * t, or n if none. A short loop rather
 * than a division: ARMv6-M has no divide instruction and natmods cannot call libgcc. */
static int32_t dw_first_tap(int32_t origin, int32_t dil, int32_t n)
{
    int32_t t = 0;
    while (t < n && origin + dil * t < 0) {
        t++;
    }
    return t;
}

/* One past the last tap index t in [0, n) with origin + dil * t < size (taps are increasing). */
static int32_t dw_end_tap(int32_t origin, int32_t dil, int32_t size, int32_t n)
{
    int32_t t = n;
    while (t > 0 && origin + dil * (t - 1) >= size) {
        t--;
    }
    return t;
}

/* the clipped window of one output pixel (depthwise_dm1.h) */
typedef mpyml_dw_win_t dw_window_t;

#if defined(MPYML_SIMD_DSP)
/* depthwise_dmn_dsp.c: 1 input channel, depth multiplier 8, a run of n pixels of one row with the full 3x3
 * window */
void mpyml_dw_dmn8_c1_dsp(const mpyml_conv_params_t *p, const mpyml_dw_win_t *win, int32_t n, int32_t x_step,
    const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out);
#endif

static inline int8_t dw_finish(const mpyml_conv_params_t *p, int32_t acc, const int32_t *bias,
    const int32_t *mult, const int32_t *shift, int32_t oc)
{
    if (bias) {
        acc = mpyml_wrap_add(acc, bias[oc]);
    }
    return mpyml_requant_pos(acc, mult[oc], shift[oc], p->output_offset, p->act_min, p->act_max);
}

/* Output channels oc..oc+3 of one pixel; the input channel of output channel oc + j is
 * ic + j * x_inc (x_inc = 1 when depth_multiplier == 1, 0 within one input channel's group). */
static inline void dw_window_acc4(const dw_window_t *win, int32_t ic, int32_t x_inc, int32_t oc,
    int32_t off, int8_t *out, const mpyml_conv_params_t *p, const int32_t *bias,
    const int32_t *mult, const int32_t *shift)
{
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, r, c;
    for (r = 0; r < win->n_rows; r++) {
        const int8_t *x = win->x + r * win->x_row_step + ic;
        const int8_t *w = win->w + r * win->w_row_step + oc;
        for (c = 0; c < win->n_cols; c++) {
            a0 += (x[0] + off) * w[0];
            a1 += (x[x_inc] + off) * w[1];
            a2 += (x[2 * x_inc] + off) * w[2];
            a3 += (x[3 * x_inc] + off) * w[3];
            x += win->x_col_step;
            w += win->w_col_step;
        }
    }
    out[oc] = dw_finish(p, a0, bias, mult, shift, oc);
    out[oc + 1] = dw_finish(p, a1, bias, mult, shift, oc + 1);
    out[oc + 2] = dw_finish(p, a2, bias, mult, shift, oc + 2);
    out[oc + 3] = dw_finish(p, a3, bias, mult, shift, oc + 3);
}

static inline void dw_window_acc1(const dw_window_t *win, int32_t ic, int32_t oc, int32_t off,
    int8_t *out, const mpyml_conv_params_t *p, const int32_t *bias, const int32_t *mult,
    const int32_t *shift)
{
    int32_t a = 0, r, c;
    for (r = 0; r < win->n_rows; r++) {
        const int8_t *x = win->x + r * win->x_row_step + ic;
        const int8_t *w = win->w + r * win->w_row_step + oc;
        for (c = 0; c < win->n_cols; c++) {
            a += (x[0] + off) * w[0];
            x += win->x_col_step;
            w += win->w_col_step;
        }
    }
    out[oc] = dw_finish(p, a, bias, mult, shift, oc);
}

#if defined(MPYML_SIMD_SSE2)
/* depth_multiplier 1, output channels c..c+7: taps taken in pairs so one _mm_madd_epi16 adds two
 * taps' products per channel (an odd last tap of a row is paired with zeros). */
static inline void dw_window_acc8_sse2(const dw_window_t *win, int32_t c, __m128i voff, int8_t *out,
    const mpyml_conv_params_t *p, const int32_t *bias, const int32_t *mult, const int32_t *shift)
{
    const __m128i zero = _mm_setzero_si128();
    __m128i lo = zero, hi = zero;
    int32_t acc[8], r, k, j;
    for (r = 0; r < win->n_rows; r++) {
        const int8_t *x = win->x + r * win->x_row_step + c;
        const int8_t *w = win->w + r * win->w_row_step + c;
        for (k = 0; k + 2 <= win->n_cols; k += 2) {
            const __m128i xa = _mm_add_epi16(mpyml_sse2_lo16(mpyml_sse2_load8(x)), voff);
            const __m128i xb = _mm_add_epi16(mpyml_sse2_lo16(mpyml_sse2_load8(x + win->x_col_step)), voff);
            const __m128i wa = mpyml_sse2_lo16(mpyml_sse2_load8(w));
            const __m128i wb = mpyml_sse2_lo16(mpyml_sse2_load8(w + win->w_col_step));
            lo = _mm_add_epi32(lo, _mm_madd_epi16(_mm_unpacklo_epi16(xa, xb), _mm_unpacklo_epi16(wa, wb)));
            hi = _mm_add_epi32(hi, _mm_madd_epi16(_mm_unpackhi_epi16(xa, xb), _mm_unpackhi_epi16(wa, wb)));
            x += 2 * win->x_col_step;
            w += 2 * win->w_col_step;
        }
        if (k < win->n_cols) {
            const __m128i xa = _mm_add_epi16(mpyml_sse2_lo16(mpyml_sse2_load8(x)), voff);
            const __m128i wa = mpyml_sse2_lo16(mpyml_sse2_load8(w));
            lo = _mm_add_epi32(lo, _mm_madd_epi16(_mm_unpacklo_epi16(xa, zero), _mm_unpacklo_epi16(wa, zero)));
            hi = _mm_add_epi32(hi, _mm_madd_epi16(_mm_unpackhi_epi16(xa, zero), _mm_unpackhi_epi16(wa, zero)));
        }
    }
    _mm_storeu_si128((__m128i *)(void *)acc, lo);
    _mm_storeu_si128((__m128i *)(void *)(acc + 4), hi);
    for (j = 0; j < 8; j++) {
        out[c + j] = dw_finish(p, acc[j], bias, mult, shift, c + j);
    }
}
#endif

void mpyml_depthwise_conv2d(const mpyml_conv_params_t *p,
    const mpyml_shape4_t *in_s, const int8_t *in,
    const mpyml_shape4_t *f_s, const int8_t *filter,
    const int32_t *bias, const int32_t *mult, const int32_t *shift,
    const mpyml_shape4_t *out_s, int8_t *out)
{
    const int32_t in_h = in_s->h, in_w = in_s->w, in_c = in_s->c;
    const int32_t f_h = f_s->h, f_w = f_s->w;
    const int32_t out_c = out_s->c, off = p->input_offset;
    const int32_t dm = p->depth_multiplier;
    const int32_t dil_h = p->dil_h, dil_w = p->dil_w;
    int32_t b, oy, ox, ic, m, oc;
    dw_window_t win;
#if defined(MPYML_SIMD_DSP)
    const int dmn8 = dm == 8 && in_c == 1 && f_h == 3 && f_w == 3;
#endif

    win.x_row_step = dil_h * in_w * in_c;
    win.x_col_step = dil_w * in_c;
    win.w_row_step = f_w * out_c;
    win.w_col_step = out_c;
    for (b = 0; b < out_s->n; b++) {
        const int8_t *in_b = in + b * in_h * in_w * in_c;
        for (oy = 0; oy < out_s->h; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            const int32_t fy0 = dw_first_tap(iy0, dil_h, f_h);
            const int32_t fy1 = dw_end_tap(iy0, dil_h, in_h, f_h);
#if !defined(MPYML_SIMD_SSE2)
            if (dm == 1 && fy1 > fy0) {
                mpyml_dw_row_t row;
                row.x = in_b + (iy0 + dil_h * fy0) * in_w * in_c;
                row.w = filter + fy0 * f_w * out_c;
                row.n_rows = fy1 - fy0;
                row.x_row_step = win.x_row_step;
                row.in_w = in_w;
                row.c = in_c;
                row.f_w = f_w;
                row.out_w = out_s->w;
                row.out = out;
                mpyml_dw_dm1_row(p, &row, bias, mult, shift);
                out += out_s->w * out_c;
                continue;
            }
#endif
            for (ox = 0; ox < out_s->w; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                const int32_t fx0 = dw_first_tap(ix0, dil_w, f_w);
                const int32_t fx1 = dw_end_tap(ix0, dil_w, in_w, f_w);
                if (fy1 > fy0 && fx1 > fx0) {
                    win.n_rows = fy1 - fy0;
                    win.n_cols = fx1 - fx0;
                    win.x = in_b + ((iy0 + dil_h * fy0) * in_w + ix0 + dil_w * fx0) * in_c;
                    win.w = filter + (fy0 * f_w + fx0) * out_c;
                } else {
                    win.n_rows = 0;     /* no valid tap: acc = 0 (bias only) */
                    win.n_cols = 0;
                    win.x = in_b;
                    win.w = filter;
                }
                if (dm == 1) {
                    oc = 0;
#if defined(MPYML_SIMD_SSE2)
                    for (; oc + 8 <= out_c; oc += 8) {
                        dw_window_acc8_sse2(&win, oc, _mm_set1_epi16((short)off), out, p, bias, mult, shift);
                    }
#endif
                    for (; oc + 4 <= out_c; oc += 4) {
                        dw_window_acc4(&win, oc, 1, oc, off, out, p, bias, mult, shift);
                    }
                    for (; oc < out_c; oc++) {
                        dw_window_acc1(&win, oc, oc, off, out, p, bias, mult, shift);
                    }
                } else {
#if defined(MPYML_SIMD_DSP)
                    if (dmn8 && win.n_rows == 3 && win.n_cols == 3) {
                        int32_t n = 1;  /* this and the next pixels with the full window */
                        while (ox + n < out_s->w && (ox + n) * p->stride_w - p->pad_w + 2 * dil_w < in_w) {
                            n++;
                        }
                        mpyml_dw_dmn8_c1_dsp(p, &win, n, p->stride_w, bias, mult, shift, out);
                        ox += n - 1;
                        out += n * out_c;
                        continue;
                    }
#endif
                    for (ic = 0; ic < in_c; ic++) {
                        m = 0;
#if defined(MPYML_SIMD_DSP)
                        mpyml_dw_dmn_dsp(p, &win, ic, dm, bias, mult, shift, out);
                        m = dm & ~3;
#endif
                        for (; m + 4 <= dm; m += 4) {
                            dw_window_acc4(&win, ic, 0, ic * dm + m, off, out, p, bias, mult, shift);
                        }
                        for (; m < dm; m++) {
                            dw_window_acc1(&win, ic, ic * dm + m, off, out, p, bias, mult, shift);
                        }
                    }
                }
                out += out_c;
            }
        }
    }
}
