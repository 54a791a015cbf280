/*
 * ops/conv2d_dsp.c - the Armv7E-M DSP (Cortex-M4/M7) CONV_2D kernel (interface in conv2d_dsp.h; built only
 * when simd.h selects the DSP helpers: M4/M7, and the host's MPYML_EMULATE_DSP test variant).
 *
 * Output pixels are taken two at a time. For each pair, im2col writes the pair's filter windows as two int16
 * columns of K = f_h * f_w * in_c elements: x + input_offset (exact, |x + off| <= 255), 0 where a tap falls
 * into the padding (the reference skips those taps, a zero term is the same sum). Within every aligned group
 * of 4 elements a column is stored in the order (0, 2, 1, 3): one word of the column then lines up with
 * SXTB16 (bytes 0, 2) and SXTB16 ROR 8 (bytes 1, 3) of a weight word loaded straight from the filter, whose
 * layout the packer keeps ([oc][fy][fx][c], K contiguous bytes per output channel). The two columns are
 * interleaved group by group (4 int16 of pixel a, 4 of pixel b), so one pointer and LDRD walk both. The last
 * K % 4 elements (a partial group, natural order) are summed in C. 1x1 filters without padding convert the
 * input pixel directly; the column buffer is a bounded C stack array (K <= MPYML_CONV_DSP_MAX_K).
 *
 * The GEMM runs 2 output channels x 2 pixels per pass: each weight word (4 taps of one channel) feeds both
 * pixels, each column word both channels: per 16 MACs 2 LDR, 2 LDRD, 4 SXTB16 and 8 SMLAD (inline assembly
 * on the target, the same arithmetic in C over the instruction models otherwise). The accumulators start from
 * the bias (SMLAD wraps modulo 2^32 like TFLite's int32 bias add); each output is requantized once after its
 * whole reduction (mpyml_dw_requant's exact arithmetic, the shift decoded once per channel and pixel pair,
 * the clamp done on both pixels' halfword lanes with SSAT / SSUB16 / SEL). An odd channel count recomputes
 * channel out_c - 2 with the last one (same bytes written twice); an odd pixel count ends with a one-pixel
 * pass (conv_dsp_gemm1: 2 LDR, 1 LDRD, 4 SXTB16, 4 SMLAD per 8 MACs).
 */
#include "simd.h"

#if defined(MPYML_SIMD_DSP)
#include <string.h>
#include "conv2d_dsp.h"
#include "depthwise_dm1.h"      /* mpyml_dw_requant: the exact, cheap requantization */

#if defined(__GNUC__)
#define CONV_DSP_NOINLINE __attribute__((noinline))
#define CONV_DSP_INLINE inline __attribute__((always_inline))
#else
#define CONV_DSP_NOINLINE
#define CONV_DSP_INLINE inline
#endif

/* acc[0..3] = (pixel a, channel 0), (a, 1), (b, 0), (b, 1), each += the dot product of its pixel's column
 * with the channel's filter over `words` groups of 4 elements. The two columns are interleaved group by group
 * (c: 4 int16 of pixel a, then 4 of pixel b, per group), so one pointer and LDRD walk both. */
static CONV_DSP_INLINE void conv_dsp_gemm(const int16_t *c, const int8_t *w0, const int8_t *w1, int32_t words, int32_t *acc)
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
#if !defined(MPYML_EMULATE_DSP)
    int32_t pairs = words >> 1;
    if (pairs > 0) {
        /* Register plan (all 14 allocatable registers): c, w0, w1 post-incremented pointers, n the loop
         * counter, a0..a3 accumulators, w0e/w0o/w1e/w1o the sign-extended halfword pairs of one weight word
         * of each channel, x0/x1 one column's group (lanes 0,2 / 1,3). Per group of 4 elements: 2 LDR,
         * 4 SXTB16, 2 LDRD, 8 SMLAD = 16 instructions for 16 MACs; 2 groups per pass (+ 2 loop). */
        uint32_t w0e, w0o, w1e, w1o, x0, x1;
        words &= 1;
        __asm__ volatile(
            "1:\n"
#define CONV_DSP_GROUP \
            "ldr %[w0o], [%[w0]], #4\n" \
            "ldr %[w1o], [%[w1]], #4\n" \
            "ldrd %[x0], %[x1], [%[c]], #16\n" \
            "sxtb16 %[w0e], %[w0o]\n" \
            "sxtb16 %[w0o], %[w0o], ror #8\n" \
            "sxtb16 %[w1e], %[w1o]\n" \
            "sxtb16 %[w1o], %[w1o], ror #8\n" \
            "smlad %[a0], %[x0], %[w0e], %[a0]\n" \
            "smlad %[a1], %[x0], %[w1e], %[a1]\n" \
            "smlad %[a0], %[x1], %[w0o], %[a0]\n" \
            "smlad %[a1], %[x1], %[w1o], %[a1]\n" \
            "ldrd %[x0], %[x1], [%[c], #-8]\n" \
            "smlad %[a2], %[x0], %[w0e], %[a2]\n" \
            "smlad %[a3], %[x0], %[w1e], %[a3]\n" \
            "smlad %[a2], %[x1], %[w0o], %[a2]\n" \
            "smlad %[a3], %[x1], %[w1o], %[a3]\n"
            CONV_DSP_GROUP
            CONV_DSP_GROUP
#undef CONV_DSP_GROUP
            "subs %[n], %[n], #1\n"
            "bne 1b\n"
            : [c] "+r"(c), [w0] "+r"(w0), [w1] "+r"(w1), [n] "+r"(pairs),
              [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3),
              [w0e] "=&r"(w0e), [w0o] "=&r"(w0o), [w1e] "=&r"(w1e), [w1o] "=&r"(w1o),
              [x0] "=&r"(x0), [x1] "=&r"(x1)
            :
            : "cc", "memory");
    }
#endif
    for (; words > 0; words--) {
        const uint32_t u0 = mpyml_dsp_ld32(w0), u1 = mpyml_dsp_ld32(w1);
        const uint32_t w0e = mpyml_dsp_sxtb16(u0), w0o = mpyml_dsp_sxtb16_ror8(u0);
        const uint32_t w1e = mpyml_dsp_sxtb16(u1), w1o = mpyml_dsp_sxtb16_ror8(u1);
        uint32_t xe = mpyml_dsp_ld32((const int8_t *)(const void *)c);
        uint32_t xo = mpyml_dsp_ld32((const int8_t *)(const void *)(c + 2));
        a0 = mpyml_dsp_smlad(xe, w0e, a0);
        a0 = mpyml_dsp_smlad(xo, w0o, a0);
        a1 = mpyml_dsp_smlad(xe, w1e, a1);
        a1 = mpyml_dsp_smlad(xo, w1o, a1);
        xe = mpyml_dsp_ld32((const int8_t *)(const void *)(c + 4));
        xo = mpyml_dsp_ld32((const int8_t *)(const void *)(c + 6));
        a2 = mpyml_dsp_smlad(xe, w0e, a2);
        a2 = mpyml_dsp_smlad(xo, w0o, a2);
        a3 = mpyml_dsp_smlad(xe, w1e, a3);
        a3 = mpyml_dsp_smlad(xo, w1o, a3);
        w0 += 4;
        w1 += 4;
        c += 8;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* acc[0..1] = (pixel a, channel 0), (a, 1) += the dot products over `words` groups of column a (the other
 * column's slots are skipped): the last pixel of an odd count. */
static void conv_dsp_gemm1(const int16_t *c, const int8_t *w0, const int8_t *w1, int32_t words, int32_t *acc)
{
    int32_t a0 = acc[0], a1 = acc[1];
#if !defined(MPYML_EMULATE_DSP)
    int32_t pairs = words >> 1;
    if (pairs > 0) {
        /* 12 registers: c, w0, w1, n, a0, a1, w0e/w0o/w1e/w1o, x0/x1. Per group 2 LDR, 4 SXTB16, 1 LDRD,
         * 4 SMLAD for 8 MACs; 2 groups per pass. */
        uint32_t w0e, w0o, w1e, w1o, x0, x1;
        words &= 1;
        __asm__ volatile(
            "1:\n"
#define CONV_DSP_GROUP1 \
            "ldr %[w0o], [%[w0]], #4\n" \
            "ldr %[w1o], [%[w1]], #4\n" \
            "ldrd %[x0], %[x1], [%[c]], #16\n" \
            "sxtb16 %[w0e], %[w0o]\n" \
            "sxtb16 %[w0o], %[w0o], ror #8\n" \
            "sxtb16 %[w1e], %[w1o]\n" \
            "sxtb16 %[w1o], %[w1o], ror #8\n" \
            "smlad %[a0], %[x0], %[w0e], %[a0]\n" \
            "smlad %[a1], %[x0], %[w1e], %[a1]\n" \
            "smlad %[a0], %[x1], %[w0o], %[a0]\n" \
            "smlad %[a1], %[x1], %[w1o], %[a1]\n"
            CONV_DSP_GROUP1
            CONV_DSP_GROUP1
#undef CONV_DSP_GROUP1
            "subs %[n], %[n], #1\n"
            "bne 1b\n"
            : [c] "+r"(c), [w0] "+r"(w0), [w1] "+r"(w1), [n] "+r"(pairs), [a0] "+r"(a0), [a1] "+r"(a1),
              [w0e] "=&r"(w0e), [w0o] "=&r"(w0o), [w1e] "=&r"(w1e), [w1o] "=&r"(w1o),
              [x0] "=&r"(x0), [x1] "=&r"(x1)
            :
            : "cc", "memory");
    }
#endif
    for (; words > 0; words--) {
        const uint32_t u0 = mpyml_dsp_ld32(w0), u1 = mpyml_dsp_ld32(w1);
        const uint32_t xe = mpyml_dsp_ld32((const int8_t *)(const void *)c);
        const uint32_t xo = mpyml_dsp_ld32((const int8_t *)(const void *)(c + 2));
        a0 = mpyml_dsp_smlad(xe, mpyml_dsp_sxtb16(u0), a0);
        a0 = mpyml_dsp_smlad(xo, mpyml_dsp_sxtb16_ror8(u0), a0);
        a1 = mpyml_dsp_smlad(xe, mpyml_dsp_sxtb16(u1), a1);
        a1 = mpyml_dsp_smlad(xo, mpyml_dsp_sxtb16_ror8(u1), a1);
        w0 += 4;
        w1 += 4;
        c += 8;
    }
    acc[0] = a0;
    acc[1] = a1;
}

/* column position of reduction element k (column a; column b is 4 further): group k / 4 at 8 (k / 4), in the
 * order (0, 2, 1, 3) below k4, natural in the last, partial group */
static inline int32_t conv_dsp_pos(int32_t k, int32_t k4)
{
    return 2 * (k & ~3) + (k < k4 ? (((k & 1) << 1) | ((k >> 1) & 1)) : (k & 3));
}

/* column elements k .. k + n - 1 = src[0 .. n - 1] + off (col: the column's group 0) */
static void conv_dsp_put(int16_t *col, int32_t k, const int8_t *src, int32_t n, int32_t k4, int32_t off,
    uint32_t off2)
{
    for (; n > 0 && (k & 3) != 0; n--, k++) {
        col[conv_dsp_pos(k, k4)] = (int16_t)(*src++ + off);
    }
    if (k < k4) {
        /* whole groups of 4: one word in, two reordered words out */
        int32_t g = (n < k4 - k ? n : k4 - k) >> 2;
        int16_t *d = col + 2 * k;
        n -= 4 * g;
        k += 4 * g;
        for (; g > 0; g--) {
            const uint32_t v = mpyml_dsp_ld32(src);
            const uint32_t e = mpyml_dsp_sxtab16(off2, v), o = mpyml_dsp_sxtab16_ror8(off2, v);
            memcpy(d, &e, 4);
            memcpy(d + 2, &o, 4);
            d += 8;
            src += 4;
        }
    }
    for (; n > 0; n--, k++) {
        col[conv_dsp_pos(k, k4)] = (int16_t)(*src++ + off);
    }
}

/* Everything about the layer that the per-pixel-pair loops need. */
typedef struct {
    const mpyml_conv_params_t *p;
    const mpyml_shape4_t *in_s;
    const int8_t *in, *filter;
    const int32_t *bias, *mult, *shift;
    int32_t f_h, f_w, k_n, k4, out_w, out_hw, out_c, oo;
    uint32_t lo2, hi2;      /* act_min / act_max in both halfword lanes */
} conv_dsp_job_t;

/* The column of output pixel `pix` (linear over batch, rows, columns); the positions of padding taps are left
 * as they are (the caller zeroes the buffer first when a window is clipped). */
static void conv_dsp_im2col(const conv_dsp_job_t *j, int32_t pix, int16_t *col)
{
    const mpyml_conv_params_t *p = j->p;
    const int32_t in_h = j->in_s->h, in_w = j->in_s->w, in_c = j->in_s->c, dh = p->dil_h, dw = p->dil_w;
    const int32_t f_h = j->f_h, f_w = j->f_w, k4 = j->k4, off = p->input_offset, row = f_w * in_c;
    const uint32_t off2 = mpyml_dsp_off2(off);
    const int32_t b = pix / j->out_hw, r = pix - b * j->out_hw, oy = r / j->out_w, ox = r - oy * j->out_w;
    const int32_t iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
    const int8_t *in_b = j->in + b * in_h * in_w * in_c;
    int32_t fy, fx, k = 0, fx0 = 0, fx1 = f_w;
    if (dw == 1) {
        /* the valid taps of a filter row are one contiguous run */
        fx0 = ix0 < 0 ? (-ix0 < f_w ? -ix0 : f_w) : 0;
        fx1 = in_w - ix0 < f_w ? in_w - ix0 : f_w;
    }
    for (fy = 0; fy < f_h; fy++, k += row) {
        const int32_t iy = iy0 + dh * fy;
        const int8_t *src;
        if (iy < 0 || iy >= in_h) {
            continue;
        }
        src = in_b + iy * in_w * in_c;
        if (dw == 1) {
            if (fx1 > fx0) {
                conv_dsp_put(col, k + fx0 * in_c, src + (ix0 + fx0) * in_c, (fx1 - fx0) * in_c, k4, off, off2);
            }
            continue;
        }
        for (fx = 0; fx < f_w; fx++) {
            const int32_t ix = ix0 + dw * fx;
            if (ix >= 0 && ix < in_w) {
                conv_dsp_put(col, k + fx * in_c, src + ix * in_c, in_c, k4, off, off2);
            }
        }
    }
}

/* the input pixel under output pixel `pix` of a 1x1 filter without padding */
static const int8_t *conv_dsp_pixel(const conv_dsp_job_t *j, int32_t pix)
{
    const mpyml_conv_params_t *p = j->p;
    const int32_t b = pix / j->out_hw, r = pix - b * j->out_hw, oy = r / j->out_w, ox = r - oy * j->out_w;
    return j->in + ((b * j->in_s->h + oy * p->stride_h) * j->in_s->w + ox * p->stride_w) * j->in_s->c;
}

/* whether output pixel `pix`'s window lies wholly inside the input */
static int conv_dsp_inside(const conv_dsp_job_t *j, int32_t pix)
{
    const mpyml_conv_params_t *p = j->p;
    const int32_t r = pix % j->out_hw, oy = r / j->out_w, ox = r - oy * j->out_w;
    const int32_t iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
    return iy0 >= 0 && iy0 + p->dil_h * (j->f_h - 1) < j->in_s->h
        && ix0 >= 0 && ix0 + p->dil_w * (j->f_w - 1) < j->in_s->w;
}

/* a += x * w modulo 2^32 (the accumulators started from the bias and may wrap, like TFLite's) */
static inline int32_t conv_dsp_mac(int32_t a, int32_t x, int32_t w)
{
    return (int32_t)((uint32_t)a + (uint32_t)(x * w));
}

/* the lanes of v clamped to [lo, hi] lane by lane (both lanes' bounds equal; int16 lanes) */
#if defined(__ARM_FEATURE_DSP) && !defined(MPYML_EMULATE_DSP)
static inline uint32_t conv_dsp_pack_clamp(int32_t a, int32_t b, uint32_t lo2, uint32_t hi2)
{
    uint32_t v, r;
    /* SSAT to int16 (exact: lo, hi are int8), PKHBT into lanes; SSUB16 sets GE per lane, SEL picks */
    __asm__("ssat %[a], #16, %[a]\n"
            "ssat %[b], #16, %[b]\n"
            "pkhbt %[v], %[a], %[b], lsl #16\n"
            "ssub16 %[r], %[v], %[lo]\n"
            "sel %[v], %[v], %[lo]\n"
            "ssub16 %[r], %[v], %[hi]\n"
            "sel %[v], %[hi], %[v]\n"
            : [a] "+r"(a), [b] "+r"(b), [v] "=&r"(v), [r] "=&r"(r)
            : [lo] "r"(lo2), [hi] "r"(hi2)
            : "cc");
    return v;
}
#else
static inline uint32_t conv_dsp_pack_clamp(int32_t a, int32_t b, uint32_t lo2, uint32_t hi2)
{
    const int32_t lo = (int16_t)(uint16_t)(lo2 & 0xFFFFu), hi = (int16_t)(uint16_t)(hi2 & 0xFFFFu);
    a = a < lo ? lo : (a > hi ? hi : a);
    b = b < lo ? lo : (b > hi ? hi : b);
    return ((uint32_t)b << 16) | ((uint32_t)a & 0xFFFFu);
}
#endif

/* SaturatingRoundingDoublingHighMul(a, m) for |a| < 2^30 (m >= 0): (a m + 2^30) >> 31 = (2a m + 2^31) >> 32,
 * which is SMMULR(2a, m), one instruction (2a fits int32) */
#if defined(__ARM_FEATURE_DSP) && !defined(MPYML_EMULATE_DSP)
static inline int32_t conv_dsp_srdhm_small(int32_t a, int32_t m)
{
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a + a), "r"(m));
    return r;
}
#else
static inline int32_t conv_dsp_srdhm_small(int32_t a, int32_t m)
{
    return (int32_t)(((int64_t)(a + a) * m + ((int64_t)1 << 31)) >> 32);
}
#endif

/* requantize one channel's accumulators of both pixels (mpyml_dw_requant, the shift decoded once); small:
 * the layer's accumulators are known to stay below 2^30 after the left shift (conv_dsp_small) */
static inline void conv_dsp_store2(const conv_dsp_job_t *j, int32_t a, int32_t b, int32_t m, int32_t s,
    int8_t *oa, int8_t *ob, int small)
{
    int32_t va, vb;
    uint32_t v;
    if (s > 0) {
        a = mpyml_wrap_shl(a, (int)s);
        b = mpyml_wrap_shl(b, (int)s);
    }
    if (small) {
        va = conv_dsp_srdhm_small(a, m);
        vb = conv_dsp_srdhm_small(b, m);
    } else {
        va = mpyml_dw_srdhm_pos(a, m);
        vb = mpyml_dw_srdhm_pos(b, m);
    }
    if (s < 0) {
        const int e = (int)(-s - 1);
        va = (va + (va >> 31)) >> e;
        vb = (vb + (vb >> 31)) >> e;
        va = (va >> 1) + (va & 1);
        vb = (vb >> 1) + (vb & 1);
    }
    va = (int32_t)((uint32_t)va + (uint32_t)j->oo);
    vb = (int32_t)((uint32_t)vb + (uint32_t)j->oo);
    v = conv_dsp_pack_clamp(va, vb, j->lo2, j->hi2);
    *oa = (int8_t)(uint8_t)(v & 0xFFu);
    *ob = (int8_t)(uint8_t)((v >> 16) & 0xFFu);
}

/* Every output channel of the two pixels whose interleaved columns are c: outputs oa[0 .. out_c - 1] and
 * oa[out_c .. 2 out_c - 1]. Channels go in pairs; an odd count recomputes channel out_c - 2 with the last.
 * Not inlined: only the channel index stays live across the GEMM, the rest is reloaded from j. */
static CONV_DSP_INLINE void conv_dsp_channels_body(const conv_dsp_job_t *j, const int16_t *c, int8_t *oa, int small)
{
    int32_t oc = 0;
    for (;;) {
        const int32_t k_n = j->k_n;
        const int8_t *const w = j->filter + oc * k_n;
        int32_t acc[4];
        if (j->bias) {
            acc[0] = acc[2] = j->bias[oc];
            acc[1] = acc[3] = j->bias[oc + 1];
        } else {
            acc[0] = acc[1] = acc[2] = acc[3] = 0;
        }
        conv_dsp_gemm(c, w, w + k_n, k_n >> 2, acc);
        if (j->k4 != k_n) {
            const int16_t *t = c + 2 * j->k4;     /* the partial group, natural order */
            int32_t k;
            for (k = j->k4; k < k_n; k++, t++) {
                acc[0] = conv_dsp_mac(acc[0], t[0], w[k]);
                acc[1] = conv_dsp_mac(acc[1], t[0], w[k_n + k]);
                acc[2] = conv_dsp_mac(acc[2], t[4], w[k]);
                acc[3] = conv_dsp_mac(acc[3], t[4], w[k_n + k]);
            }
        }
        {
            const int32_t out_c = j->out_c;
            int8_t *const o = oa + oc;
            conv_dsp_store2(j, acc[0], acc[2], j->mult[oc], j->shift[oc], o, o + out_c, small);
            conv_dsp_store2(j, acc[1], acc[3], j->mult[oc + 1], j->shift[oc + 1], o + 1, o + out_c + 1, small);
            oc += 2;
            if (oc >= out_c) {
                break;
            }
            if (oc == out_c - 1) {
                oc--;       /* the last pair overlaps this one */
            }
        }
    }
}

static CONV_DSP_NOINLINE void conv_dsp_channels(const conv_dsp_job_t *j, const int16_t *c, int8_t *oa)
{
    conv_dsp_channels_body(j, c, oa, 0);
}

static CONV_DSP_NOINLINE void conv_dsp_channels_small(const conv_dsp_job_t *j, const int16_t *c, int8_t *oa)
{
    conv_dsp_channels_body(j, c, oa, 1);
}

/* Whether every accumulator of the layer, shifted left by its channel's shift, stays below 2^30 in magnitude:
 * |acc| <= |bias| + K * 255 * 128 (|x + off| <= 255, |w| <= 128). */
static int conv_dsp_small(const conv_dsp_job_t *j)
{
    uint32_t maxb = 0;
    int32_t maxl = 0, oc;
    for (oc = 0; oc < j->out_c; oc++) {
        if (j->bias) {
            const int32_t b = j->bias[oc];
            const uint32_t u = b < 0 ? 0u - (uint32_t)b : (uint32_t)b;
            maxb = u > maxb ? u : maxb;
        }
        maxl = j->shift[oc] > maxl ? j->shift[oc] : maxl;
    }
    return maxb < (1u << 29) && maxb + (uint32_t)j->k_n * 32640u < ((1u << 30) >> maxl);
}

/* conv_dsp_channels for one pixel (column a of c): outputs o[0 .. out_c - 1]. */
static CONV_DSP_NOINLINE void conv_dsp_channels1(const conv_dsp_job_t *j, const int16_t *c, int8_t *o)
{
    const mpyml_conv_params_t *p = j->p;
    int32_t oc = 0;
    for (;;) {
        const int32_t k_n = j->k_n, k4 = j->k4;
        const int8_t *const w = j->filter + oc * k_n;
        int32_t acc[2];
        acc[0] = j->bias ? j->bias[oc] : 0;
        acc[1] = j->bias ? j->bias[oc + 1] : 0;
        conv_dsp_gemm1(c, w, w + k_n, k_n >> 2, acc);
        if (k4 != k_n) {
            const int16_t *t = c + 2 * k4;
            int32_t k;
            for (k = k4; k < k_n; k++, t++) {
                acc[0] = conv_dsp_mac(acc[0], t[0], w[k]);
                acc[1] = conv_dsp_mac(acc[1], t[0], w[k_n + k]);
            }
        }
        o[oc] = mpyml_dw_requant(acc[0], j->mult[oc], j->shift[oc], p->output_offset, p->act_min, p->act_max);
        o[oc + 1] = mpyml_dw_requant(acc[1], j->mult[oc + 1], j->shift[oc + 1], p->output_offset, p->act_min,
            p->act_max);
        oc += 2;
        if (oc >= j->out_c) {
            break;
        }
        if (oc == j->out_c - 1) {
            oc--;       /* the last pair overlaps this one */
        }
    }
}

int mpyml_conv2d_dsp(const mpyml_conv_params_t *p,
    const mpyml_shape4_t *in_s, const int8_t *in,
    const mpyml_shape4_t *f_s, const int8_t *filter,
    const int32_t *bias, const int32_t *mult, const int32_t *shift,
    const mpyml_shape4_t *out_s, int8_t *out)
{
    union {
        uint32_t align;
        int16_t h[2 * MPYML_CONV_DSP_MAX_K];
    } buf;
    conv_dsp_job_t j;
    const int32_t k_n = f_s->h * f_s->w * in_s->c, n_pix = out_s->n * out_s->h * out_s->w;
    int16_t *const ca = buf.h, *const cb = buf.h + 4;     /* interleaved by groups of 4 */
    const int one = f_s->h == 1 && f_s->w == 1 && p->pad_h == 0 && p->pad_w == 0
        && (out_s->h - 1) * p->stride_h < in_s->h && (out_s->w - 1) * p->stride_w < in_s->w;
    const uint32_t off2 = mpyml_dsp_off2(p->input_offset);
    int32_t i;
    int small;

    if (k_n > MPYML_CONV_DSP_MAX_K || out_s->c < 2) {
        return 0;
    }
    j.p = p;
    j.in_s = in_s;
    j.in = in;
    j.filter = filter;
    j.bias = bias;
    j.mult = mult;
    j.shift = shift;
    j.f_h = f_s->h;
    j.f_w = f_s->w;
    j.k_n = k_n;
    j.k4 = k_n & ~3;
    j.out_w = out_s->w;
    j.out_hw = out_s->h * out_s->w;
    j.out_c = out_s->c;
    j.oo = p->output_offset;
    j.lo2 = mpyml_dsp_off2(p->act_min);
    j.hi2 = mpyml_dsp_off2(p->act_max);
    small = conv_dsp_small(&j);
    /* pixels in pairs; an odd count ends with one pixel alone */
    for (i = 0; i < n_pix; i += 2) {
        const int two = i + 1 < n_pix;
        if (one) {
            /* 1x1 without padding: each column is one input pixel */
            conv_dsp_put(ca, 0, conv_dsp_pixel(&j, i), k_n, j.k4, p->input_offset, off2);
            if (two) {
                conv_dsp_put(cb, 0, conv_dsp_pixel(&j, i + 1), k_n, j.k4, p->input_offset, off2);
            }
        } else {
            if (!conv_dsp_inside(&j, i) || (two && !conv_dsp_inside(&j, i + 1))) {
                memset(buf.h, 0, (size_t)(8 * ((k_n + 3) >> 2)) * sizeof(int16_t));
            }
            conv_dsp_im2col(&j, i, ca);
            if (two) {
                conv_dsp_im2col(&j, i + 1, cb);
            }
        }
        if (two) {
            if (small) {
                conv_dsp_channels_small(&j, buf.h, out + i * out_s->c);
            } else {
                conv_dsp_channels(&j, buf.h, out + i * out_s->c);
            }
        } else {
            conv_dsp_channels1(&j, buf.h, out + i * out_s->c);
        }
    }
    return 1;
}

#endif /* MPYML_SIMD_DSP */
