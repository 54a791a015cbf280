/*
 * ops/elementwise_div.c - DIV: int8 tensor / tensor with 4-D broadcasting, TFLM reference_ops
 * DivElementwise bit for bit.
 *
 * Per element (x1 = in1 + input1_offset, x2 = in2 + input2_offset):
 *   if x2 < 0: x1 = -x1, x2 = -x2
 *   inv, rs = GetReciprocal(x2, 31)            (from the packer's table, indexed by the input2 byte)
 *   h = CountLeadingSignBits(x1)
 *   q = SaturatingRoundingDoublingHighMul(x1 << h, inv)         (MultiplyByQuantizedMultiplierGreaterThanOne)
 *   y = clamp(RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(q, output_mult), h + rs - output_shift)
 *             + output_offset, act_min, act_max)                (MultiplyByQuantizedMultiplierSmallerThanOneExp)
 *   operands: DIV_IN_X1, DIV_IN_X2 int8 (any storage), DIV_IN_RECIP int32 const [512]
 *             ([b] = inv of input2 byte b, [256 + b] = 2 * (rs + 1) + (x2 < 0), rs -1..7), DIV_OUT_Y int8 arena (broadcast shape)
 *   @param input1_offset -127..128, output_offset -128..127
 *   @param output_mult 0..2^31-1, output_shift -31..30
 *   @param act_min <= act_max -128..127
 * The exponent e = h + rs - output_shift exceeds 31 for small |x1| when the scale ratio is small: gemmlowp's
 * RoundingDivideByPOT is then undefined behaviour, and x86 tflite-micro (the oracle) computes mask = all ones
 * and x >> (e & 31): (x >> (e - 32)) + (x >= 0), which this kernel reproduces for e 32..63. The packer refuses
 * scales that reach e < 0 or e > 63; the kernel clamps e to 0..63, so no input or table value is undefined here.
 */
#include "op_view.h"
#include "fixedpoint.h"
#include "../mpyml_spec.h"

enum { DIV_IN_X1 = 0, DIV_IN_X2 = 1, DIV_IN_RECIP = 2, DIV_OUT_Y = 3 };

static void div_strides(const mpyml_tensor_t *t, int32_t s[4])
{
    int32_t d[4];
    int32_t acc = 1;
    int i;
    mpyml_dims4(t, d);
    for (i = 3; i >= 0; i--) {
        s[i] = d[i] == 1 ? 0 : acc;
        acc *= d[i];
    }
}

int mpyml_ew_div_check(const mpyml_op_view_t *v)
{
    const mpyml_div_params_t *p = (const mpyml_div_params_t *)(const void *)v->params;
    const mpyml_tensor_t *a = v->t[DIV_IN_X1], *b = v->t[DIV_IN_X2], *y = v->t[DIV_OUT_Y];
    int32_t da[4], db[4], dy[4];
    int i;
    if (a->ndim > y->ndim || b->ndim > y->ndim) return MPYML_CHK_EW_SHAPE;
    mpyml_dims4(a, da);
    mpyml_dims4(b, db);
    mpyml_dims4(y, dy);
    for (i = 0; i < 4; i++) {
        if ((da[i] != dy[i] && da[i] != 1) || (db[i] != dy[i] && db[i] != 1)) return MPYML_CHK_EW_SHAPE;
        if (dy[i] != (da[i] > db[i] ? da[i] : db[i])) return MPYML_CHK_EW_SHAPE;
    }
    if (p->act_min > p->act_max) return MPYML_CHK_EW_ACT;
    if (mpyml_elems(v->t[DIV_IN_RECIP]) != 512) return MPYML_CHK_DIV_RECIP;
    return 0;
}

/* CountLeadingSignBits of an int32 (|x| <= 255 here, never INT32_MIN): 31 for 0 and -1 */
static inline int div_clrsb(int32_t x)
{
    return mpyml_clz32((uint32_t)(x < 0 ? ~x : x)) - 1;
}

void mpyml_ew_div_eval(const mpyml_op_view_t *v)
{
    const mpyml_div_params_t *p = (const mpyml_div_params_t *)(const void *)v->params;
    const int8_t *x1 = (const int8_t *)v->ptr[DIV_IN_X1];
    const int8_t *x2 = (const int8_t *)v->ptr[DIV_IN_X2];
    const int32_t *tab = (const int32_t *)v->ptr[DIV_IN_RECIP];
    int8_t *y = (int8_t *)v->ptr[DIV_OUT_Y];
    int32_t d[4], s1[4], s2[4];
    int32_t b, i, j, c;
    mpyml_dims4(v->t[DIV_OUT_Y], d);
    div_strides(v->t[DIV_IN_X1], s1);
    div_strides(v->t[DIV_IN_X2], s2);
    for (b = 0; b < d[0]; b++) {
        for (i = 0; i < d[1]; i++) {
            for (j = 0; j < d[2]; j++) {
                const int8_t *a1 = x1 + b * s1[0] + i * s1[1] + j * s1[2];
                const int8_t *a2 = x2 + b * s2[0] + i * s2[1] + j * s2[2];
                for (c = 0; c < d[3]; c++) {
                    const uint8_t k = (uint8_t)a2[c * s2[3]];
                    const int32_t t = tab[256 + k];
                    int32_t n = (int32_t)a1[c * s1[3]] + p->input1_offset;
                    int h, e;
                    int32_t q;
                    if (t & 1) n = -n;
                    h = div_clrsb(n);
                    q = mpyml_srdhm(mpyml_wrap_shl(n, h), tab[k]);
                    e = h + (t >> 1) - 1 - (int)p->output_shift;
                    q = mpyml_srdhm(q, p->output_mult);
                    if (e > 31) {
                        q = (q >> ((e > 63 ? 63 : e) - 32)) + (q >= 0 ? 1 : 0);      /* x86 tflite-micro */
                    } else {
                        q = mpyml_rdbpot(q, e < 0 ? 0 : e);
                    }
                    q = mpyml_wrap_add(q, p->output_offset);
                    *y++ = (int8_t)mpyml_clamp(q, p->act_min, p->act_max);
                }
            }
        }
    }
}
