/*
 * ops/pooling.c - AVERAGE_POOL_2D and MAX_POOL_2D, int8 (input and output share scale and zero
 * point, as TFLite requires).
 *
 * Owns mpyml_avg_pool_ref and mpyml_max_pool_ref, ports of TFLite Micro's
 * reference_integer_ops::AveragePool / MaxPool: the window is clipped to the input, so padding
 * taps are not counted; the average is the int32 sum of the valid raw values divided by their
 * count, rounded half away from zero ((sum +- count/2) / count, C division truncates); the max
 * starts at -128. Both clamp to [act_min, act_max]. The clipped window is computed once per output
 * pixel and reused for all channels. A window with no valid tap (TFLite fails the invoke there;
 * SAME/VALID padding never produces one) outputs the clamped value 0 (avg) or -128 (max).
 */
#include "ops.h"
#include "fixedpoint.h"

typedef struct {
    int32_t y0, y1, x0, x1;     /* valid input rows [y0, y1) and columns [x0, x1) */
} pool_win_t;

static pool_win_t pool_window(const mpyml_pool_params_t *p, const mpyml_shape4_t *in_s,
    int32_t oy, int32_t ox)
{
    pool_win_t win;
    const int32_t iy0 = oy * p->stride_h - p->pad_h;
    const int32_t ix0 = ox * p->stride_w - p->pad_w;
    const int32_t fy_start = iy0 < 0 ? -iy0 : 0;
    const int32_t fx_start = ix0 < 0 ? -ix0 : 0;
    const int32_t fy_end = p->filter_h < in_s->h - iy0 ? p->filter_h : in_s->h - iy0;
    const int32_t fx_end = p->filter_w < in_s->w - ix0 ? p->filter_w : in_s->w - ix0;
    win.y0 = iy0 + fy_start;
    win.y1 = iy0 + fy_end;
    win.x0 = ix0 + fx_start;
    win.x1 = ix0 + fx_end;
    if (win.y1 < win.y0) {
        win.y1 = win.y0;
    }
    if (win.x1 < win.x0) {
        win.x1 = win.x0;
    }
    return win;
}

void mpyml_avg_pool_ref(const mpyml_pool_params_t *p, const mpyml_shape4_t *in_s, const int8_t *in,
    const mpyml_shape4_t *out_s, int8_t *out)
{
    const int32_t depth = out_s->c;
    int32_t b, oy, ox, c, y, x;
    for (b = 0; b < out_s->n; b++) {
        const int8_t *in_b = in + b * in_s->h * in_s->w * depth;
        for (oy = 0; oy < out_s->h; oy++) {
            for (ox = 0; ox < out_s->w; ox++) {
                const pool_win_t win = pool_window(p, in_s, oy, ox);
                const int32_t count = (win.y1 - win.y0) * (win.x1 - win.x0);
                for (c = 0; c < depth; c++) {
                    int32_t acc = 0;
                    for (y = win.y0; y < win.y1; y++) {
                        for (x = win.x0; x < win.x1; x++) {
                            acc += in_b[(y * in_s->w + x) * depth + c];
                        }
                    }
                    if (count > 0) {
                        acc = acc > 0 ? mpyml_div_trunc(acc + count / 2, count)
                                      : mpyml_div_trunc(acc - count / 2, count);
                    }
                    out[c] = (int8_t)mpyml_clamp(acc, p->act_min, p->act_max);
                }
                out += depth;
            }
        }
    }
}

void mpyml_max_pool_ref(const mpyml_pool_params_t *p, const mpyml_shape4_t *in_s, const int8_t *in,
    const mpyml_shape4_t *out_s, int8_t *out)
{
    const int32_t depth = out_s->c;
    int32_t b, oy, ox, c, y, x;
    for (b = 0; b < out_s->n; b++) {
        const int8_t *in_b = in + b * in_s->h * in_s->w * depth;
        for (oy = 0; oy < out_s->h; oy++) {
            for (ox = 0; ox < out_s->w; ox++) {
                const pool_win_t win = pool_window(p, in_s, oy, ox);
                for (c = 0; c < depth; c++) {
                    int32_t m = -128;
                    for (y = win.y0; y < win.y1; y++) {
                        for (x = win.x0; x < win.x1; x++) {
                            const int32_t v = in_b[(y * in_s->w + x) * depth + c];
                            m = v > m ? v : m;
                        }
                    }
                    out[c] = (int8_t)mpyml_clamp(m, p->act_min, p->act_max);
                }
                out += depth;
            }
        }
    }
}
