/*
 * ops/conv2d.c - CONV_2D, int8 with per-channel requantization.
 *
 * Owns mpyml_conv2d_ref (a line-by-line port of TFLite Micro's
 * reference_integer_ops::ConvPerChannel) and mpyml_conv2d, the optimized entry point with identical
 * output: tap ranges clipped once per output pixel instead of a bounds test per tap, contiguous
 * (kw x C) runs when the dilation is 1, four output channels accumulated per input load, and a 1x1
 * fast path; the inner runs use SSE2 (x86-64) or SMLAD (Cortex-M4/M7) through simd.h. Both compute
 * acc = sum(w * (x + input_offset)) in int32 (the loader bounds KH*KW*C <= 65536, so it cannot
 * overflow), then bias (wrapping add), MultiplyByQuantizedMultiplier,
 * output offset and clamp, exactly as TFLite does.
 */
#include "ops.h"
#include "fixedpoint.h"
#include "simd.h"
#if defined(MPYML_SIMD_DSP)
#include "conv2d_dsp.h"
#endif
#include "kernels_v6m.h"

void mpyml_conv2d_ref(const mpyml_conv_params_t *p,
    const mpyml_shape4_t *in_s, const int8_t *in,
    const mpyml_shape4_t *f_s, const int8_t *filter,
    const int32_t *bias, const int32_t *mult, const int32_t *shift,
    const mpyml_shape4_t *out_s, int8_t *out)
{
    const int32_t in_h = in_s->h, in_w = in_s->w, in_c = in_s->c;
    const int32_t f_h = f_s->h, f_w = f_s->w;
    const int32_t out_h = out_s->h, out_w = out_s->w, out_c = out_s->c;
    int32_t b, oy, ox, oc, fy, fx, ic;

    for (b = 0; b < out_s->n; b++) {
        for (oy = 0; oy < out_h; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            for (ox = 0; ox < out_w; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                for (oc = 0; oc < out_c; oc++) {
                    int32_t acc = 0;
                    for (fy = 0; fy < f_h; fy++) {
                        const int32_t iy = iy0 + p->dil_h * fy;
                        for (fx = 0; fx < f_w; fx++) {
                            const int32_t ix = ix0 + p->dil_w * fx;
                            if (ix < 0 || ix >= in_w || iy < 0 || iy >= in_h) {
                                continue;
                            }
                            for (ic = 0; ic < in_c; ic++) {
                                const int32_t x = in[((b * in_h + iy) * in_w + ix) * in_c + ic];
                                const int32_t w = filter[((oc * f_h + fy) * f_w + fx) * in_c + ic];
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

/* ---------------------------------------------------------------- optimized */

/* First tap index t in [0, n) with 0 <= origin + dil * t, or n if none. A short loop rather
 * than a division: ARMv6-M has no divide instruction and natmods cannot call libgcc. */
static int32_t conv_first_tap(int32_t origin, int32_t dil, int32_t n)
{
    int32_t t = 0;
    while (t < n && origin + dil * t < 0) {
        t++;
    }
    return t;
}

/* One past the last tap index t in [0, n) with origin + dil * t < size (taps are increasing). */
static int32_t conv_end_tap(int32_t origin, int32_t dil, int32_t size, int32_t n)
{
    int32_t t = n;
    while (t > 0 && origin + dil * (t - 1) >= size) {
        t--;
    }
    return t;
}

static inline int32_t conv_dot1(const int8_t *x, const int8_t *w, int32_t n, int32_t off)
{
    int32_t a = 0, i;
    for (i = 0; i < n; i++) {
        a += (x[i] + off) * w[i];
    }
    return a;
}

/* bias (wrapping add, as TFLite's int32 add wraps in practice), requantize, offset, clamp */
static inline int8_t conv_finish(const mpyml_conv_params_t *p, int32_t acc, const int32_t *bias,
    const int32_t *mult, const int32_t *shift, int32_t oc)
{
    if (bias) {
        acc = mpyml_wrap_add(acc, bias[oc]);
    }
    return mpyml_requant_pos(acc, mult[oc], shift[oc], p->output_offset, p->act_min, p->act_max);
}

/* The clipped window of one output pixel: n_rows x n_runs runs of `run` contiguous elements. */
typedef struct {
    const int8_t *x;        /* first valid input element */
    const int8_t *w;        /* matching element of output channel 0's filter */
    int32_t n_rows, x_row_step, w_row_step;
    int32_t n_runs, x_run_step, w_run_step, run;
} conv_window_t;

/* acc[k] = sum over the window of (x + off) * w_k, for the 4 output channels whose filters start
 * w_oc_off + k * w_stride elements after win->w: one input load feeds four multiply-adds. */
#if defined(MPYML_SIMD_SSE2)
static inline void conv_window_dot4(const conv_window_t *win, int32_t w_oc_off, int32_t w_stride,
    int32_t off, int32_t *acc)
{
    const __m128i voff = _mm_set1_epi16((short)off);
    __m128i v[4];
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, r, k, i;
    v[0] = v[1] = v[2] = v[3] = _mm_setzero_si128();
    for (r = 0; r < win->n_rows; r++) {
        for (k = 0; k < win->n_runs; k++) {
            const int8_t *x = win->x + r * win->x_row_step + k * win->x_run_step;
            const int8_t *w0 = win->w + w_oc_off + r * win->w_row_step + k * win->w_run_step;
            const int8_t *w1 = w0 + w_stride, *w2 = w1 + w_stride, *w3 = w2 + w_stride;
            for (i = mpyml_sse2_run4(x, w0, w_stride, win->run, voff, v); i < win->run; i++) {
                const int32_t xv = x[i] + off;
                a0 += xv * w0[i];
                a1 += xv * w1[i];
                a2 += xv * w2[i];
                a3 += xv * w3[i];
            }
        }
    }
    _mm_storeu_si128((__m128i *)(void *)acc, mpyml_sse2_hsum4(v[0], v[1], v[2], v[3]));
    acc[0] += a0;
    acc[1] += a1;
    acc[2] += a2;
    acc[3] += a3;
}

static inline int32_t conv_window_dot1(const conv_window_t *win, int32_t w_oc_off, int32_t off)
{
    const __m128i voff = _mm_set1_epi16((short)off);
    __m128i v = _mm_setzero_si128();
    int32_t r, k, i, acc = 0;
    for (r = 0; r < win->n_rows; r++) {
        for (k = 0; k < win->n_runs; k++) {
            const int8_t *x = win->x + r * win->x_row_step + k * win->x_run_step;
            const int8_t *w = win->w + w_oc_off + r * win->w_row_step + k * win->w_run_step;
            for (i = mpyml_sse2_run1(x, w, win->run, voff, &v); i < win->run; i++) {
                acc += (x[i] + off) * w[i];
            }
        }
    }
    return acc + mpyml_sse2_hsum1(v);
}
#elif defined(MPYML_SIMD_DSP)
static inline void conv_window_dot4(const conv_window_t *win, int32_t w_oc_off, int32_t w_stride,
    int32_t off, int32_t *acc)
{
    const uint32_t off2 = mpyml_dsp_off2(off);
    int32_t r, k, i;
    acc[0] = acc[1] = acc[2] = acc[3] = 0;
    for (r = 0; r < win->n_rows; r++) {
        for (k = 0; k < win->n_runs; k++) {
            const int8_t *x = win->x + r * win->x_row_step + k * win->x_run_step;
            const int8_t *w0 = win->w + w_oc_off + r * win->w_row_step + k * win->w_run_step;
            const int8_t *w1 = w0 + w_stride, *w2 = w1 + w_stride, *w3 = w2 + w_stride;
            for (i = mpyml_dsp_run4(x, w0, w_stride, win->run, off2, acc); i < win->run; i++) {
                const int32_t xv = x[i] + off;
                acc[0] += xv * w0[i];
                acc[1] += xv * w1[i];
                acc[2] += xv * w2[i];
                acc[3] += xv * w3[i];
            }
        }
    }
}

static inline int32_t conv_window_dot1(const conv_window_t *win, int32_t w_oc_off, int32_t off)
{
    const uint32_t off2 = mpyml_dsp_off2(off);
    int32_t r, k, i, acc = 0;
    for (r = 0; r < win->n_rows; r++) {
        for (k = 0; k < win->n_runs; k++) {
            const int8_t *x = win->x + r * win->x_row_step + k * win->x_run_step;
            const int8_t *w = win->w + w_oc_off + r * win->w_row_step + k * win->w_run_step;
            for (i = mpyml_dsp_run1(x, w, win->run, off2, &acc); i < win->run; i++) {
                acc += (x[i] + off) * w[i];
            }
        }
    }
    return acc;
}
#else
static inline void conv_window_dot4(const conv_window_t *win, int32_t w_oc_off, int32_t w_stride,
    int32_t off, int32_t *acc)
{
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, r, k, i;
    for (r = 0; r < win->n_rows; r++) {
        for (k = 0; k < win->n_runs; k++) {
            const int8_t *x = win->x + r * win->x_row_step + k * win->x_run_step;
            const int8_t *w0 = win->w + w_oc_off + r * win->w_row_step + k * win->w_run_step;
            const int8_t *w1 = w0 + w_stride, *w2 = w1 + w_stride, *w3 = w2 + w_stride;
            for (i = 0; i < win->run; i++) {
                const int32_t xv = x[i] + off;
                a0 += xv * w0[i];
                a1 += xv * w1[i];
                a2 += xv * w2[i];
                a3 += xv * w3[i];
            }
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

static inline int32_t conv_window_dot1(const conv_window_t *win, int32_t w_oc_off, int32_t off)
{
    int32_t r, k, acc = 0;
    for (r = 0; r < win->n_rows; r++) {
        const int8_t *x = win->x + r * win->x_row_step;
        const int8_t *w = win->w + w_oc_off + r * win->w_row_step;
        for (k = 0; k < win->n_runs; k++) {
            acc += conv_dot1(x + k * win->x_run_step, w + k * win->w_run_step, win->run, off);
        }
    }
    return acc;
}

#endif

/* Requantize the accumulators of output channels oc..oc+3 into out[oc..oc+3]. */
static inline void conv_store4(const mpyml_conv_params_t *p, const int32_t *acc, const int32_t *bias,
    const int32_t *mult, const int32_t *shift, int32_t oc, int8_t *out)
{
    out[oc] = conv_finish(p, acc[0], bias, mult, shift, oc);
    out[oc + 1] = conv_finish(p, acc[1], bias, mult, shift, oc + 1);
    out[oc + 2] = conv_finish(p, acc[2], bias, mult, shift, oc + 2);
    out[oc + 3] = conv_finish(p, acc[3], bias, mult, shift, oc + 3);
}

/* 1x1 filter, every input pixel in range: out[pix][oc] = W[oc] . (x[pix] + off), a plain GEMM. */
static void conv_1x1(const mpyml_conv_params_t *p, const mpyml_shape4_t *in_s, const int8_t *in,
    const int8_t *filter, const int32_t *bias, const int32_t *mult, const int32_t *shift,
    const mpyml_shape4_t *out_s, int8_t *out)
{
    const int32_t in_c = in_s->c, out_c = out_s->c, off = p->input_offset;
    const int32_t oc4 = out_c & ~3;
    int32_t b, oy, ox, oc;
    int32_t acc[4];
    conv_window_t win;
    win.w = filter;
    win.n_rows = 1;
    win.n_runs = 1;
    win.run = in_c;
    win.x_row_step = win.w_row_step = win.x_run_step = win.w_run_step = 0;
    for (b = 0; b < out_s->n; b++) {
        for (oy = 0; oy < out_s->h; oy++) {
            const int32_t iy = oy * p->stride_h;
            for (ox = 0; ox < out_s->w; ox++) {
                win.x = in + ((b * in_s->h + iy) * in_s->w + ox * p->stride_w) * in_c;
                for (oc = 0; oc < oc4; oc += 4) {
                    conv_window_dot4(&win, oc * in_c, in_c, off, acc);
                    conv_store4(p, acc, bias, mult, shift, oc, out);
                }
                for (; oc < out_c; oc++) {
                    const int32_t acc1 = conv_window_dot1(&win, oc * in_c, off);
                    out[oc] = conv_finish(p, acc1, bias, mult, shift, oc);
                }
                out += out_c;
            }
        }
    }
}

void mpyml_conv2d(const mpyml_conv_params_t *p,
    const mpyml_shape4_t *in_s, const int8_t *in,
    const mpyml_shape4_t *f_s, const int8_t *filter,
    const int32_t *bias, const int32_t *mult, const int32_t *shift,
    const mpyml_shape4_t *out_s, int8_t *out)
{
    const int32_t in_h = in_s->h, in_w = in_s->w, in_c = in_s->c;
    const int32_t f_h = f_s->h, f_w = f_s->w;
    const int32_t out_c = out_s->c, off = p->input_offset;
    const int32_t oc4 = out_c & ~3;
    const int32_t f_oc_stride = f_h * f_w * in_c;   /* filter elements per output channel */
    const int32_t dil_h = p->dil_h, dil_w = p->dil_w;
    int32_t b, oy, ox, oc;
    int32_t acc[4];
    conv_window_t win;

#if defined(MPYML_SIMD_DSP)
    /* Cortex-M4/M7: im2col + 2x2 register-blocked GEMM (conv2d_dsp.c) for reductions up to its bound */
    if (mpyml_conv2d_dsp(p, in_s, in, f_s, filter, bias, mult, shift, out_s, out)) {
        return;
    }
#endif
#if defined(MPYML_KERNELS_V6M)
    /* Cortex-M0/M3 (no SIMD): conv2d_v6m.c */
    mpyml_conv2d_v6m(p, in_s, in, f_s, filter, bias, mult, shift, out_s, out);
    return;
#endif
    if (f_h == 1 && f_w == 1 && p->pad_h == 0 && p->pad_w == 0
        && (out_s->h - 1) * p->stride_h < in_h && (out_s->w - 1) * p->stride_w < in_w) {
        conv_1x1(p, in_s, in, filter, bias, mult, shift, out_s, out);
        return;
    }

    win.x_row_step = dil_h * in_w * in_c;
    win.w_row_step = f_w * in_c;
    for (b = 0; b < out_s->n; b++) {
        const int8_t *in_b = in + b * in_h * in_w * in_c;
        for (oy = 0; oy < out_s->h; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            const int32_t fy0 = conv_first_tap(iy0, dil_h, f_h);
            const int32_t fy1 = conv_end_tap(iy0, dil_h, in_h, f_h);
            const int32_t n_fy = fy1 > fy0 ? fy1 - fy0 : 0;
            for (ox = 0; ox < out_s->w; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                const int32_t fx0 = conv_first_tap(ix0, dil_w, f_w);
                const int32_t fx1 = conv_end_tap(ix0, dil_w, in_w, f_w);
                const int32_t n_fx = fx1 > fx0 ? fx1 - fx0 : 0;
                if (dil_w == 1) {
                    /* the valid taps of one filter row are one contiguous run */
                    win.n_runs = n_fx > 0 ? 1 : 0;
                    win.run = n_fx * in_c;
                } else {
                    win.n_runs = n_fx;
                    win.run = in_c;
                }
                win.x_run_step = dil_w * in_c;
                win.w_run_step = in_c;
                if (n_fy > 0 && n_fx > 0) {
                    win.n_rows = n_fy;
                    win.x = in_b + ((iy0 + dil_h * fy0) * in_w + ix0 + dil_w * fx0) * in_c;
                    win.w = filter + (fy0 * f_w + fx0) * in_c;
                } else {
                    win.n_rows = 0;     /* no valid tap: acc = 0 (bias only) */
                    win.x = in_b;
                    win.w = filter;
                }
                for (oc = 0; oc < oc4; oc += 4) {
                    conv_window_dot4(&win, oc * f_oc_stride, f_oc_stride, off, acc);
                    conv_store4(p, acc, bias, mult, shift, oc, out);
                }
                for (; oc < out_c; oc++) {
                    const int32_t acc1 = conv_window_dot1(&win, oc * f_oc_stride, off);
                    out[oc] = conv_finish(p, acc1, bias, mult, shift, oc);
                }
                out += out_c;
            }
        }
    }
}
