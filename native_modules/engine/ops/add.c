/*
 * ops/add.c - ADD, int8 quantized with up-to-4-D broadcasting.
 *
 * Owns mpyml_add_ref, a port of TFLite Micro's reference_integer_ops::AddFunc applied elementwise
 * (same shapes) or through the broadcast walk (BroadcastAdd6DSlow restricted to 4 dims):
 *   v_i = (x_i + input_i_offset) << left_shift
 *   s_i = MultiplyByQuantizedMultiplierSmallerThanOneExp(v_i, input_i_mult, input_i_shift)
 *   out = clamp(MultiplyByQuantizedMultiplierSmallerThanOneExp(s_1 + s_2, output_mult,
 *               output_shift) + output_offset, act_min, act_max)
 * With |x + offset| <= 255 and left_shift <= 20 no intermediate can overflow; the sum is still
 * formed with a wrapping add so that no parameter set can reach undefined behaviour.
 */
#include "ops.h"
#include "fixedpoint.h"

static inline int8_t add_one(const mpyml_add_params_t *p, int32_t x1, int32_t x2)
{
    const int32_t v1 = mpyml_wrap_shl(x1 + p->input1_offset, (int)p->left_shift);
    const int32_t v2 = mpyml_wrap_shl(x2 + p->input2_offset, (int)p->left_shift);
    const int32_t s1 = mpyml_mbqm_le1(v1, p->input1_mult, p->input1_shift);
    const int32_t s2 = mpyml_mbqm_le1(v2, p->input2_mult, p->input2_shift);
    const int32_t raw = mpyml_mbqm_le1(mpyml_wrap_add(s1, s2), p->output_mult, p->output_shift);
    return (int8_t)mpyml_clamp(mpyml_wrap_add(raw, p->output_offset), p->act_min, p->act_max);
}

void mpyml_add_ref(const mpyml_add_params_t *p, const mpyml_shape4_t *s1, const int8_t *in1,
    const mpyml_shape4_t *s2, const int8_t *in2, const mpyml_shape4_t *out_s, int8_t *out)
{
    /* element strides of each input along n, h, w, c; 0 along a broadcast (size 1) dim */
    const int32_t c1 = s1->c == 1 ? 0 : 1;
    const int32_t w1 = s1->w == 1 ? 0 : s1->c;
    const int32_t h1 = s1->h == 1 ? 0 : s1->w * s1->c;
    const int32_t n1 = s1->n == 1 ? 0 : s1->h * s1->w * s1->c;
    const int32_t c2 = s2->c == 1 ? 0 : 1;
    const int32_t w2 = s2->w == 1 ? 0 : s2->c;
    const int32_t h2 = s2->h == 1 ? 0 : s2->w * s2->c;
    const int32_t n2 = s2->n == 1 ? 0 : s2->h * s2->w * s2->c;
    int32_t b, y, x, c;

    if (s1->n == s2->n && s1->h == s2->h && s1->w == s2->w && s1->c == s2->c) {
        const int32_t size = out_s->n * out_s->h * out_s->w * out_s->c;
        int32_t i;
        for (i = 0; i < size; i++) {
            out[i] = add_one(p, in1[i], in2[i]);
        }
        return;
    }
    for (b = 0; b < out_s->n; b++) {
        for (y = 0; y < out_s->h; y++) {
            for (x = 0; x < out_s->w; x++) {
                const int8_t *a = in1 + b * n1 + y * h1 + x * w1;
                const int8_t *d = in2 + b * n2 + y * h2 + x * w2;
                for (c = 0; c < out_s->c; c++) {
                    *out++ = add_one(p, a[c * c1], d[c * c2]);
                }
            }
        }
    }
}
