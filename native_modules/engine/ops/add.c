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
 *
 * and mpyml_add, the optimized entry point (every target) with identical output for the parameter
 * ranges the loader accepts (offsets -127..128, left_shift 0..20, multipliers 0..2^31-1, shifts
 * -31..0). With xo = x + offset (|xo| <= 255) and k = 31 - left_shift, the input multiply is
 *   SaturatingRoundingDoublingHighMul(xo << left_shift, m) = floor((xo m + 2^(k-1)) / 2^k)
 *                                                         = xo mh + ((xo ml + 2^(k-1)) >> k)
 * with m = mh 2^k + ml, 0 <= ml < 2^k: two 32-bit products (|xo ml| < 2^31 needs k <= 23, i.e.
 * left_shift >= 8; TFLite's int8 ADD uses 20; smaller shifts take the reference loop). No saturation
 * (|xo << left_shift| < 2^28). RoundingDivideByPOT(v, e) = (v + r + (v < 0 && e > 0 ? -1 : 0)) >> e,
 * r = e ? 2^(e-1) : 0 (ties away from zero; |v| < 2^30 so nothing wraps). The sum of the two scaled
 * inputs is below 2^29 in magnitude, so the output multiply cannot saturate either (mult >= 0).
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

/* ---------------------------------------------------------------- optimized */

/* one input's scaling, precomputed. ARMv6-M: s(x) = rdbpot(xo mh + ((xo ml + rk) >> k), e); elsewhere
 * SaturatingRoundingDoublingHighMul(v, m) = (2v m + 2^31) >> 32 (SMMULR on Armv7E-M) with
 * 2v = (x << (left_shift + 1)) + c, c = offset << (left_shift + 1) (|2v| < 2^29) */
typedef struct {
    int32_t off, mh, ml, rk, k;
    int32_t ls1, c, m;
    int32_t r, neg, e;          /* rdbpot: rounding term, -1 mask when e > 0, exponent */
} add_in_t;

typedef struct {
    add_in_t a, b;
    int32_t om, r, neg, e;      /* output multiplier and its rdbpot */
    int32_t oo, lo, hi;
} add_k_t;

static void add_rdbpot_init(int32_t e, int32_t *r, int32_t *neg)
{
    *r = e > 0 ? (int32_t)1 << (e - 1) : 0;
    *neg = e > 0 ? -1 : 0;
}

static void add_in_init(add_in_t *s, int32_t off, int32_t ls, int32_t mult, int32_t shift)
{
    s->off = off;
    s->k = 31 - ls;
    s->mh = mult >> s->k;
    s->ml = mult & (int32_t)(((uint32_t)1 << s->k) - 1u);
    s->rk = (int32_t)1 << (s->k - 1);
    s->ls1 = ls + 1;
    s->c = mpyml_wrap_shl(off, (int)(ls + 1));
    s->m = mult;
    s->e = -shift;
    add_rdbpot_init(s->e, &s->r, &s->neg);
}

static inline int32_t add_rdbpot(int32_t v, int32_t r, int32_t neg, int32_t e)
{
    return (v + r + ((v >> 31) & neg)) >> e;
}

/* (a b + 2^31) >> 32 */
static inline int32_t add_smmulr(int32_t a, int32_t b)
{
#if defined(__ARM_FEATURE_DSP)
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
#endif
}

#if defined(MPYML_ARITH_V6M)
#define ADD_SCALE(s, x) add_rdbpot(((x) + (s)->off) * (s)->mh \
    + ((((x) + (s)->off) * (s)->ml + (s)->rk) >> (s)->k), (s)->r, (s)->neg, (s)->e)
#else
#define ADD_SCALE(s, x) add_rdbpot(add_smmulr((int32_t)((uint32_t)(x) << (s)->ls1) + (s)->c, (s)->m), \
    (s)->r, (s)->neg, (s)->e)
#endif

/* SaturatingRoundingDoublingHighMul(a, b) for b >= 0 and |a| < 2^30 (no saturation); on ARMv6-M from
 * four 16 x 16 products, as mpyml_dw_srdhm_pos in depthwise_dm1.h explains. */
static inline int32_t add_srdhm_pos(int32_t a, int32_t b)
{
#if defined(MPYML_ARITH_V6M)
    const int32_t ah = a >> 16, bh = b >> 16;
    const uint32_t al = (uint32_t)a & 0xFFFFu, bl = (uint32_t)b & 0xFFFFu;
    const int32_t m1 = ah * (int32_t)bl, m2 = (int32_t)al * bh;
    uint32_t r = ((uint32_t)m1 & 0x7FFFu) + ((uint32_t)m2 & 0x7FFFu) + ((al * bl) >> 16) + 0x4000u;
    r = (r >> 15) + 2u * (uint32_t)(ah * bh) + (uint32_t)(m1 >> 15) + (uint32_t)(m2 >> 15);
    return (int32_t)r;
#else
    return add_smmulr(2 * a, b);
#endif
}

/* n outputs from a[i * sa], b[i * sb] (strides 0 or 1); the parameters are copied to locals (the int8
 * stores could alias the struct) */
static void add_run(const add_k_t *kp, const int8_t *a, int32_t sa, const int8_t *b, int32_t sb,
    int32_t n, int8_t *out)
{
    const add_k_t k = *kp;
    int32_t i;
    for (i = 0; i < n; i++) {
        const int32_t sum = ADD_SCALE(&k.a, *a) + ADD_SCALE(&k.b, *b);
        int32_t v = add_rdbpot(add_srdhm_pos(sum, k.om), k.r, k.neg, k.e) + k.oo;
        v = v < k.lo ? k.lo : v;
        out[i] = (int8_t)(v > k.hi ? k.hi : v);
        a += sa;
        b += sb;
    }
}
#undef ADD_SCALE

void mpyml_add(const mpyml_add_params_t *p, const mpyml_shape4_t *s1, const int8_t *in1,
    const mpyml_shape4_t *s2, const int8_t *in2, const mpyml_shape4_t *out_s, int8_t *out)
{
    const int32_t c1 = s1->c == 1 ? 0 : 1;
    const int32_t w1 = s1->w == 1 ? 0 : s1->c;
    const int32_t h1 = s1->h == 1 ? 0 : s1->w * s1->c;
    const int32_t n1 = s1->n == 1 ? 0 : s1->h * s1->w * s1->c;
    const int32_t c2 = s2->c == 1 ? 0 : 1;
    const int32_t w2 = s2->w == 1 ? 0 : s2->c;
    const int32_t h2 = s2->h == 1 ? 0 : s2->w * s2->c;
    const int32_t n2 = s2->n == 1 ? 0 : s2->h * s2->w * s2->c;
    add_k_t k;
    int32_t b, y, x;

    if (p->left_shift < 8 || p->left_shift > 20) {
        mpyml_add_ref(p, s1, in1, s2, in2, out_s, out);
        return;
    }
    add_in_init(&k.a, p->input1_offset, p->left_shift, p->input1_mult, p->input1_shift);
    add_in_init(&k.b, p->input2_offset, p->left_shift, p->input2_mult, p->input2_shift);
    k.om = p->output_mult;
    k.e = -p->output_shift;
    add_rdbpot_init(k.e, &k.r, &k.neg);
    k.oo = p->output_offset;
    k.lo = p->act_min;
    k.hi = p->act_max;
    if (s1->n == s2->n && s1->h == s2->h && s1->w == s2->w && s1->c == s2->c) {
        add_run(&k, in1, 1, in2, 1, out_s->n * out_s->h * out_s->w * out_s->c, out);
        return;
    }
    for (b = 0; b < out_s->n; b++) {
        for (y = 0; y < out_s->h; y++) {
            for (x = 0; x < out_s->w; x++) {
                add_run(&k, in1 + b * n1 + y * h1 + x * w1, c1, in2 + b * n2 + y * h2 + x * w2, c2,
                    out_s->c, out);
                out += out_s->c;
            }
        }
    }
}
