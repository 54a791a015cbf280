/*
 * ops/conv2d_v6m.c - CONV_2D (any filter, stride, dilation, padding; 1x1 included) for cores without SIMD:
 * Cortex-M0/M0+ (RP2040), Cortex-M3, and the host under MPYML_EMULATE_V6M (see kernels_v6m.h). Same bytes
 * as mpyml_conv2d_ref (TFLite Micro's ConvPerChannel).
 *
 * Four output channels are accumulated per input load (mpyml_v6m_dot4; a channel tail of 1..3 repeats its
 * last filter row). The input offset is folded out where the whole filter window takes part:
 *     sum w (x + off) = sum w x + off * sum w,
 * with bias + off * sum w (over the whole filter, modulo 2^32 like TFLite's bias add: the same int32) as the
 * accumulators' start value, so the run (mpyml_v6m_dot4_raw) has no offset add.
 *   - 1x1 without padding (a GEMM): output channels in groups of 4 outside the pixel loop, each group's
 *     start values computed once.
 *   - Short filter rows (KW * C < V6M_SHORT_RUN, e.g. a first layer with C = 1 or 3) or a horizontally
 *     dilated filter, window <= V6M_IM2COL bytes: each pixel's window is copied to the stack (im2col), taps
 *     outside the input set to the input zero point -off, which add -off w + off w = 0 to the raw sum.
 *   - Otherwise each pixel's window is clipped once to its valid filter rows' runs of (valid columns) x C
 *     contiguous elements (dilation 1) or per-tap runs of C; a full window uses the raw runs, a clipped one
 *     the runs with the offset add and the bias at the end.
 * The start values of all output channels sit in a stack table when out_c <= V6M_MAX_INIT (else every pixel
 * takes the offset-add runs).
 * @param p->input_offset  -127 .. 128 (int8 zero point), f_s->h * f_s->w * in_s->c 1 .. 65536
 */
#include "kernels_v6m.h"

#if defined(MPYML_KERNELS_V6M)

#define V6M_IM2COL 512      /* bytes of stack for one window copy */
#define V6M_SHORT_RUN 16
#define V6M_MAX_INIT 64     /* output channels whose bias + off * sum w fit the stack table */

/* the clipped window of one output pixel: n_rows x n_runs runs of `run` elements */
typedef struct {
    const int8_t *x, *w;
    int32_t n_rows, x_row_step, w_row_step;
    int32_t n_runs, x_run_step, w_run_step, run;
} v6m_window_t;

/* All output channels of one pixel. w_oc = filter elements per output channel. With init (the whole filter
 * window's bias + off * sum w per output channel), the runs leave out the offset (a full window, or the
 * stack copy whose outside taps x = -off then add -off w + off w = 0); without, they add it. */
static void v6m_pixel(const mpyml_conv_params_t *p, const v6m_window_t *win, int32_t w_oc, int32_t out_c,
    const int32_t *init, const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out)
{
    const int32_t off = p->input_offset, oo = p->output_offset, amin = p->act_min, amax = p->act_max;
    int32_t oc, r, k, j;
    for (oc = 0; oc < out_c; oc += 4) {
        const int32_t n_oc = out_c - oc < 4 ? out_c - oc : 4;
        const int8_t *w0 = win->w + oc * w_oc;
        const int8_t *w1 = n_oc > 1 ? w0 + w_oc : w0;
        const int8_t *w2 = n_oc > 2 ? w1 + w_oc : w1;
        const int8_t *w3 = n_oc > 3 ? w2 + w_oc : w2;
        int32_t acc[4];
        if (init) {
            acc[0] = init[oc];
            acc[1] = init[oc + (n_oc > 1)];
            acc[2] = init[oc + (n_oc > 2 ? 2 : n_oc - 1)];
            acc[3] = init[oc + n_oc - 1];
            for (r = 0; r < win->n_rows; r++) {
                const int8_t *x = win->x + r * win->x_row_step;
                const int32_t wr = r * win->w_row_step;
                for (k = 0; k < win->n_runs; k++) {
                    const int32_t wk = wr + k * win->w_run_step;
                    mpyml_v6m_dot4_raw(x + k * win->x_run_step, w0 + wk, w1 + wk, w2 + wk, w3 + wk, win->run, acc);
                }
            }
            for (j = 0; j < n_oc; j++) {
                out[oc + j] = mpyml_dw_requant(acc[j], mult[oc + j], shift[oc + j], oo, amin, amax);
            }
            continue;
        }
        acc[0] = acc[1] = acc[2] = acc[3] = 0;
        for (r = 0; r < win->n_rows; r++) {
            const int8_t *x = win->x + r * win->x_row_step;
            const int32_t wr = r * win->w_row_step;
            for (k = 0; k < win->n_runs; k++) {
                const int32_t wk = wr + k * win->w_run_step;
                mpyml_v6m_dot4(x + k * win->x_run_step, w0 + wk, w1 + wk, w2 + wk, w3 + wk, win->run, off,
                    acc);
            }
        }
        for (j = 0; j < n_oc; j++) {
            out[oc + j] = mpyml_v6m_finish(acc[j], bias, oc + j, mult[oc + j], shift[oc + j], oo, amin, amax);
        }
    }
}

/* Copy the window at input row iy0, column ix0 to buf (KH x KW x C), taps outside the input = -off; the
 * valid filter columns are fx0 .. fx1 - 1 (contiguous in the input when dil_w = 1). */
#if defined(__GNUC__) && !defined(__clang__)
/* byte loops, not memcpy / memset calls: the runs are a few bytes long */
__attribute__((optimize("no-tree-loop-distribute-patterns")))
#endif
static void v6m_im2col(const mpyml_conv_params_t *p, const mpyml_shape4_t *in_s, const int8_t *in_b,
    int32_t f_h, int32_t f_w, int32_t iy0, int32_t ix0, int32_t fx0, int32_t fx1, int8_t *buf)
{
    const int32_t in_h = in_s->h, in_w = in_s->w, c = in_s->c, row_n = f_w * c;
    const int8_t zp = (int8_t)-p->input_offset;
    int32_t fy, fx, i;
    for (fy = 0; fy < f_h; fy++, buf += row_n) {
        const int32_t iy = iy0 + fy * p->dil_h;
        const int32_t row = (iy * in_w + ix0) * c;     /* index of column ix0 (may lie outside the row) */
        if (iy < 0 || iy >= in_h || fx1 <= fx0) {
            for (i = 0; i < row_n; i++) {
                buf[i] = zp;
            }
        } else if (p->dil_w == 1) {
            const int32_t a = fx0 * c, b = fx1 * c;
            for (i = 0; i < a; i++) {
                buf[i] = zp;
            }
            for (; i < b; i++) {
                buf[i] = in_b[row + i];
            }
            for (; i < row_n; i++) {
                buf[i] = zp;
            }
        } else {
            for (fx = 0; fx < f_w; fx++) {
                const int32_t s = row + fx * p->dil_w * c;
                int8_t *d = buf + fx * c;
                if (fx >= fx0 && fx < fx1) {
                    for (i = 0; i < c; i++) {
                        d[i] = in_b[s + i];
                    }
                } else {
                    for (i = 0; i < c; i++) {
                        d[i] = zp;
                    }
                }
            }
        }
    }
}

/* First tap index t in [0, n) with 0 <= origin + dil * t, or n if none (no divide on ARMv6-M). */
static int32_t v6m_first_tap(int32_t origin, int32_t dil, int32_t n)
{
    int32_t t = 0;
    while (t < n && origin + dil * t < 0) {
        t++;
    }
    return t;
}

/* One past the last tap index t in [0, n) with origin + dil * t < size. */
static int32_t v6m_end_tap(int32_t origin, int32_t dil, int32_t size, int32_t n)
{
    int32_t t = n;
    while (t > 0 && origin + dil * (t - 1) >= size) {
        t--;
    }
    return t;
}

/* 1x1 filter, no padding, every sampled pixel inside the input: a GEMM, output channels in groups of 4 outside
 * the pixel loop, so that each group's bias + off * sum w is computed once and the run needs no offset add
 * (sum w (x + off) = sum w x + off sum w, modulo 2^32 like TFLite's bias add; the result is the same int32). */
static void v6m_conv_1x1(const mpyml_conv_params_t *p, const mpyml_shape4_t *in_s, const int8_t *in,
    const int8_t *filter, const int32_t *bias, const int32_t *mult, const int32_t *shift,
    const mpyml_shape4_t *out_s, int8_t *out)
{
    const int32_t in_c = in_s->c, out_c = out_s->c, off = p->input_offset;
    const int32_t oo = p->output_offset, amin = p->act_min, amax = p->act_max;
    const int32_t x_col = p->stride_w * in_c, x_row = p->stride_h * in_s->w * in_c;
    int32_t oc, b, oy, ox, i, j;
    for (oc = 0; oc < out_c; oc += 4) {
        const int32_t n_oc = out_c - oc < 4 ? out_c - oc : 4;
        const int8_t *w[4];
        uint32_t init[4];
        int32_t m[4], sh[4];
        w[0] = filter + oc * in_c;
        for (j = 0; j < 4; j++) {
            const int32_t q = j < n_oc ? oc + j : oc + n_oc - 1;
            uint32_t sw = 0;
            w[j] = filter + q * in_c;
            for (i = 0; i < in_c; i++) {
                sw += (uint32_t)(int32_t)w[j][i];
            }
            init[j] = (bias ? (uint32_t)bias[q] : 0u) + (uint32_t)off * sw;
            m[j] = mult[q];
            sh[j] = shift[q];
        }
        for (b = 0; b < out_s->n; b++) {
            const int8_t *xb = in + b * in_s->h * in_s->w * in_c;
            int8_t *ob = out + b * out_s->h * out_s->w * out_c + oc;
            for (oy = 0; oy < out_s->h; oy++) {
                const int8_t *x = xb + oy * x_row;
                for (ox = 0; ox < out_s->w; ox++, x += x_col, ob += out_c) {
                    int32_t acc[4];
                    acc[0] = (int32_t)init[0];
                    acc[1] = (int32_t)init[1];
                    acc[2] = (int32_t)init[2];
                    acc[3] = (int32_t)init[3];
                    mpyml_v6m_dot4_raw(x, w[0], w[1], w[2], w[3], in_c, acc);
                    for (j = 0; j < n_oc; j++) {
                        ob[j] = mpyml_dw_requant(acc[j], m[j], sh[j], oo, amin, amax);
                    }
                }
            }
        }
    }
}

void mpyml_conv2d_v6m(const mpyml_conv_params_t *p,
    const mpyml_shape4_t *in_s, const int8_t *in,
    const mpyml_shape4_t *f_s, const int8_t *filter,
    const int32_t *bias, const int32_t *mult, const int32_t *shift,
    const mpyml_shape4_t *out_s, int8_t *out)
{
    const int32_t in_h = in_s->h, in_w = in_s->w, in_c = in_s->c;
    const int32_t f_h = f_s->h, f_w = f_s->w, out_c = out_s->c;
    const int32_t w_oc = f_h * f_w * in_c;
    const int32_t dil_h = p->dil_h, dil_w = p->dil_w;
    const int use_im2col = w_oc <= V6M_IM2COL && p->input_offset >= -127 && p->input_offset <= 128
        && (dil_w != 1 || f_w * in_c < V6M_SHORT_RUN);
    int8_t buf[V6M_IM2COL];
    int32_t init[V6M_MAX_INIT];
    const int have_init = out_c <= V6M_MAX_INIT;
    int32_t b, oy, ox, oc, i;
    v6m_window_t win;

    if (f_h == 1 && f_w == 1 && p->pad_h == 0 && p->pad_w == 0
        && (out_s->h - 1) * p->stride_h < in_h && (out_s->w - 1) * p->stride_w < in_w) {
        v6m_conv_1x1(p, in_s, in, filter, bias, mult, shift, out_s, out);
        return;
    }
    for (oc = 0; have_init && oc < out_c; oc++) {
        const int8_t *w = filter + oc * w_oc;
        uint32_t sw = 0;
        for (i = 0; i < w_oc; i++) {
            sw += (uint32_t)(int32_t)w[i];
        }
        init[oc] = (int32_t)((bias ? (uint32_t)bias[oc] : 0u) + (uint32_t)p->input_offset * sw);
    }
    for (b = 0; b < out_s->n; b++) {
        const int8_t *in_b = in + b * in_h * in_w * in_c;
        for (oy = 0; oy < out_s->h; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            const int32_t fy0 = v6m_first_tap(iy0, dil_h, f_h);
            const int32_t fy1 = v6m_end_tap(iy0, dil_h, in_h, f_h);
            for (ox = 0; ox < out_s->w; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                const int32_t fx0 = v6m_first_tap(ix0, dil_w, f_w);
                const int32_t fx1 = v6m_end_tap(ix0, dil_w, in_w, f_w);
                if (use_im2col) {
                    v6m_im2col(p, in_s, in_b, f_h, f_w, iy0, ix0, fx0, fx1, buf);
                    win.x = buf;
                    win.w = filter;
                    win.n_rows = 1;
                    win.n_runs = 1;
                    win.run = w_oc;
                    win.x_row_step = win.w_row_step = win.x_run_step = win.w_run_step = 0;
                } else if (fy1 > fy0 && fx1 > fx0) {
                    win.x = in_b + ((iy0 + dil_h * fy0) * in_w + ix0 + dil_w * fx0) * in_c;
                    win.w = filter + (fy0 * f_w + fx0) * in_c;
                    win.n_rows = fy1 - fy0;
                    win.x_row_step = dil_h * in_w * in_c;
                    win.w_row_step = f_w * in_c;
                    if (dil_w == 1) {
                        win.n_runs = 1;
                        win.run = (fx1 - fx0) * in_c;
                    } else {
                        win.n_runs = fx1 - fx0;
                        win.run = in_c;
                    }
                    win.x_run_step = dil_w * in_c;
                    win.w_run_step = in_c;
                } else {
                    win.x = in_b;       /* no valid tap: acc = 0 (bias only) */
                    win.w = filter;
                    win.n_rows = 0;
                    win.n_runs = win.run = 0;
                    win.x_row_step = win.w_row_step = win.x_run_step = win.w_run_step = 0;
                }
                v6m_pixel(p, &win, w_oc, out_c,
                    have_init && (use_im2col || (fy1 - fy0 == f_h && fx1 - fx0 == f_w)) ? init : (const int32_t *)0,
                    bias, mult, shift, out);
                out += out_c;
            }
        }
    }
}

#else
typedef int mpyml_conv2d_v6m_unused_t;   /* ISO C: a translation unit declares something */
#endif /* MPYML_KERNELS_V6M */
