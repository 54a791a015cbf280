/*
 * ops/depthwise_dm1_scalar.c - the row kernel of DEPTHWISE_CONV_2D with depth multiplier 1 for targets
 * without SIMD helpers (Cortex-M0/M0+/M3, and MPYML_NO_SIMD builds, which the host tests run); interface
 * and requantization in depthwise_dm1.h. Integer only, 32-bit multiplies (ARMv6-M: no libgcc).
 *
 * The row's interior pixels (whole filter row inside the input) of a 3-wide undilated filter are computed
 * one channel at a time across the row, so that channel's filter taps, bias and requantization parameters
 * stay loop-invariant, and the input offset is folded out of the taps:
 *     sum w (x + off) = sum w x + off * sum w,
 * with bias + off * sum w (over the row's valid filter rows) summed once per channel, modulo 2^32 like the
 * bias add (|sum w x| <= 3 * n_rows * 2^14 < 2^31: the loader bounds KH * KW <= 65536). Other pixels clip
 * their columns once and sum (x + off) * w directly. Same result as mpyml_depthwise_conv2d_ref.
 */
#include "simd.h"

#if !defined(MPYML_SIMD_DSP) && !defined(MPYML_SIMD_SSE2)
#include "depthwise_dm1.h"

/* interior pixels lo .. hi - 1 of a 3-wide undilated filter, channel by channel */
static void dw_run3(const mpyml_conv_params_t *p, const mpyml_dw_row_t *r, int32_t lo, int32_t hi,
    const int32_t *bias, const int32_t *mult, const int32_t *shift)
{
    const int32_t c_n = r->c, c2 = 2 * c_n, xrs = r->x_row_step, wrs = 3 * c_n, n_rows = r->n_rows;
    const int32_t xps = p->stride_w * c_n, n_px = hi - lo;
    const int32_t oo = p->output_offset, amin = p->act_min, amax = p->act_max;
    const int8_t *x0 = r->x + (lo * p->stride_w - p->pad_w) * c_n;
    int8_t *o0 = r->out + lo * c_n;
    int32_t c, k, n;
    for (c = 0; c < c_n; c++) {
        const int8_t *w = r->w + c;
        const int32_t m = mult[c], sh = shift[c];
        const int8_t *xp = x0 + c;
        int8_t *o = o0 + c;
        int32_t sw = 0;
        uint32_t init;
        for (k = 0; k < n_rows; k++) {
            sw += w[k * wrs] + w[k * wrs + c_n] + w[k * wrs + c2];
        }
        init = (bias ? (uint32_t)bias[c] : 0u) + (uint32_t)p->input_offset * (uint32_t)sw;
        if (n_rows == 3) {
            const int32_t w0 = w[0], w1 = w[c_n], w2 = w[c2];
            const int32_t w3 = w[wrs], w4 = w[wrs + c_n], w5 = w[wrs + c2];
            const int32_t w6 = w[2 * wrs], w7 = w[2 * wrs + c_n], w8 = w[2 * wrs + c2];
            for (n = n_px; n > 0; n--) {
                const int8_t *x1 = xp + xrs, *x2 = x1 + xrs;
                int32_t a = xp[0] * w0 + xp[c_n] * w1 + xp[c2] * w2;
                a += x1[0] * w3 + x1[c_n] * w4 + x1[c2] * w5;
                a += x2[0] * w6 + x2[c_n] * w7 + x2[c2] * w8;
                *o = mpyml_dw_requant((int32_t)(init + (uint32_t)a), m, sh, oo, amin, amax);
                xp += xps;
                o += c_n;
            }
        } else {
            for (n = n_px; n > 0; n--) {
                const int8_t *x = xp, *wk = w;
                int32_t a = 0;
                for (k = n_rows; k > 0; k--) {
                    a += x[0] * wk[0] + x[c_n] * wk[c_n] + x[c2] * wk[c2];
                    x += xrs;
                    wk += wrs;
                }
                *o = mpyml_dw_requant((int32_t)(init + (uint32_t)a), m, sh, oo, amin, amax);
                xp += xps;
                o += c_n;
            }
        }
    }
}

/* One pixel, filter columns fx0 .. fx1 - 1 (possibly none), x at column ix0 + dil_w fx0, channel 0. */
static void dw_pixel(const mpyml_conv_params_t *p, const mpyml_dw_row_t *r, const int8_t *x, int32_t fx0,
    int32_t fx1, int8_t *out, const int32_t *bias, const int32_t *mult, const int32_t *shift)
{
    const int32_t c_n = r->c, xcs = p->dil_w * c_n, xrs = r->x_row_step, wrs = r->f_w * c_n;
    const int32_t off = p->input_offset, n_cols = fx1 - fx0;
    const int8_t *w = r->w + fx0 * c_n;
    int32_t c, k, j;
    for (c = 0; c < c_n; c++) {
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

void mpyml_dw_dm1_row(const mpyml_conv_params_t *p, const mpyml_dw_row_t *r, const int32_t *bias,
    const int32_t *mult, const int32_t *shift)
{
    const int32_t c_n = r->c, dil = p->dil_w, f_w = r->f_w;
    int32_t lo, hi, ox;
    mpyml_dw_interior(p, r, &lo, &hi);
    if (f_w == 3 && dil == 1 && hi > lo) {
        dw_run3(p, r, lo, hi, bias, mult, shift);
    } else {
        lo = hi = 0;    /* every pixel below */
    }
    for (ox = 0; ox < r->out_w; ox++) {
        const int32_t ix0 = ox * p->stride_w - p->pad_w;
        int32_t fx0 = 0, fx1 = f_w;
        if (ox >= lo && ox < hi) {
            continue;
        }
        while (fx0 < f_w && ix0 + dil * fx0 < 0) {
            fx0++;
        }
        while (fx1 > fx0 && ix0 + dil * (fx1 - 1) >= r->in_w) {
            fx1--;
        }
        /* no valid column: x is not read (n_cols 0), point it at the row start */
        dw_pixel(p, r, fx1 > fx0 ? r->x + (ix0 + dil * fx0) * c_n : r->x, fx0, fx1, r->out + ox * c_n,
            bias, mult, shift);
    }
}

#else
typedef int mpyml_depthwise_dm1_scalar_unused_t;   /* ISO C: a translation unit declares something */
#endif
