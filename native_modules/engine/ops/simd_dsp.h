/*
 * ops/simd_dsp.h - Armv7E-M DSP building blocks (Cortex-M4/M7: SXTB16, SXTAB16, SMLAD, SMLABB,
 * SMLATT, SMMULR, an ASRS / ADC rounding shift, SSAT / SSUB8 / SEL clamping) for conv2d.c,
 * depthwise_conv2d.c and fully_connected.c; selected by simd.h when __ARM_FEATURE_DSP is defined.
 * Defining MPYML_EMULATE_DSP on any other target builds the same kernels over portable C models of
 * those instructions, so the host tests prove them bit-exact.
 *
 * Exactness: x + input_offset is in [-255, 255] and w in [-128, 127]: every halfword lane holds its
 * value exactly and each SMLAD / SMLAxy product pair is the reference's int32 products; the
 * accumulators are the reference's int32 sums (the loader bounds the reduction length so the exact
 * sum fits int32; SMLAD's Q flag is never read).
 */
#ifndef MPYML_OPS_SIMD_DSP_H
#define MPYML_OPS_SIMD_DSP_H

#include <stdint.h>
#include <string.h>

#define MPYML_SIMD_DSP 1

#if defined(__ARM_FEATURE_DSP) && !defined(MPYML_EMULATE_DSP)
#include <arm_acle.h>

/* the halfword lanes (as int16) of sign-extended bytes 0 and 2 / 1 and 3 of x */
static inline uint32_t mpyml_dsp_sxtb16(uint32_t x)
{
    return (uint32_t)__sxtb16((int8x4_t)x);
}

static inline uint32_t mpyml_dsp_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* a's halfword lanes plus sign-extended bytes 0 and 2 / 1 and 3 of x */
static inline uint32_t mpyml_dsp_sxtab16(uint32_t a, uint32_t x)
{
    return (uint32_t)__sxtab16((int16x2_t)a, (int8x4_t)x);
}

static inline uint32_t mpyml_dsp_sxtab16_ror8(uint32_t a, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}

/* acc + a.lo * b.lo + a.hi * b.hi */
static inline int32_t mpyml_dsp_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlad((int16x2_t)a, (int16x2_t)b, acc);
}

/* acc + a.lo * b.lo / acc + a.hi * b.hi */
static inline int32_t mpyml_dsp_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlabb((int32_t)a, (int32_t)b, acc);
}

static inline int32_t mpyml_dsp_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlatt((int32_t)a, (int32_t)b, acc);
}

/* acc + a.lo * b.hi */
static inline int32_t mpyml_dsp_smlabt(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlabt((int32_t)a, (int32_t)b, acc);
}

/* SMMULR: (a * b + 2^31) >> 32, the rounded high word of the 64-bit product */
static inline int32_t mpyml_dsp_smmulr(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* RoundingDivideByPOT(v, e) + add for e in 1..31 and v > INT32_MIN: with v' = v - [v < 0], ASRS by e leaves
 * bit e - 1 of v' in the carry and ADC adds it (and add): floor((v' + 2^(e-1)) / 2^e) + add. */
static inline int32_t mpyml_dsp_rdbpot_add(int32_t v, int32_t e, int32_t add)
{
    int32_t r;
    __asm__("add %0, %1, %1, asr #31\n\t"
            "asrs %0, %0, %2\n\t"
            "adc %0, %0, %3"
            : "=&r"(r) : "r"(v), "r"(e), "r"(add) : "cc");
    return r;
}

/* four int32 values v0..v3 (as the low..high byte) saturated to int8 (SSAT), packed (BFI) and clamped bytewise
 * to [lo, hi] (SSUB8 / SEL against lo4 = lo * 0x01010101, hi4 likewise; -128 <= lo <= hi <= 127) */
static inline uint32_t mpyml_dsp_pack4_clamp(int32_t v0, int32_t v1, int32_t v2, int32_t v3, uint32_t lo4,
    uint32_t hi4)
{
    uint32_t r, t;
    __asm__("ssat %[r], #8, %[v0]\n\t"
            "ssat %[t], #8, %[v1]\n\t"
            "bfi %[r], %[t], #8, #8\n\t"
            "ssat %[t], #8, %[v2]\n\t"
            "bfi %[r], %[t], #16, #8\n\t"
            "ssat %[t], #8, %[v3]\n\t"
            "bfi %[r], %[t], #24, #8\n\t"
            "ssub8 %[t], %[r], %[lo4]\n\t"
            "sel %[r], %[r], %[lo4]\n\t"
            "ssub8 %[t], %[hi4], %[r]\n\t"
            "sel %[r], %[r], %[hi4]"
            : [r] "=&r"(r), [t] "=&r"(t)
            : [v0] "r"(v0), [v1] "r"(v1), [v2] "r"(v2), [v3] "r"(v3), [lo4] "r"(lo4), [hi4] "r"(hi4)
            : "cc");
    return r;
}

#else   /* portable models of the instructions (host tests) */

static inline uint32_t mpyml_dsp_pack4_clamp(int32_t v0, int32_t v1, int32_t v2, int32_t v3, uint32_t lo4,
    uint32_t hi4)
{
    const int32_t v[4] = {v0, v1, v2, v3};
    uint32_t r = 0;
    int k;
    for (k = 0; k < 4; k++) {
        const int32_t lo = (int32_t)(int8_t)(uint8_t)(lo4 >> (8 * k)), hi = (int32_t)(int8_t)(uint8_t)(hi4 >> (8 * k));
        int32_t x = v[k] < -128 ? -128 : (v[k] > 127 ? 127 : v[k]);
        x = x < lo ? lo : (x > hi ? hi : x);
        r |= ((uint32_t)x & 0xFFu) << (8 * k);
    }
    return r;
}

static inline int32_t mpyml_dsp_smmulr(int32_t a, int32_t b)
{
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
}

static inline int32_t mpyml_dsp_rdbpot_add(int32_t v, int32_t e, int32_t add)
{
    const int32_t t = v + (v >> 31);
    return (int32_t)((uint32_t)(t >> e) + (uint32_t)((t >> (e - 1)) & 1) + (uint32_t)add);
}

static inline uint32_t mpyml_dsp_lanes(int32_t lo, int32_t hi)
{
    return ((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu);
}

static inline int32_t mpyml_dsp_lo(uint32_t a)
{
    return (int32_t)(int16_t)(uint16_t)(a & 0xFFFFu);
}

static inline int32_t mpyml_dsp_hi(uint32_t a)
{
    return (int32_t)(int16_t)(uint16_t)(a >> 16);
}

static inline int32_t mpyml_dsp_byte(uint32_t x, int k)
{
    return (int32_t)(int8_t)(uint8_t)(x >> (8 * k));
}

static inline uint32_t mpyml_dsp_sxtb16(uint32_t x)
{
    return mpyml_dsp_lanes(mpyml_dsp_byte(x, 0), mpyml_dsp_byte(x, 2));
}

static inline uint32_t mpyml_dsp_sxtb16_ror8(uint32_t x)
{
    return mpyml_dsp_lanes(mpyml_dsp_byte(x, 1), mpyml_dsp_byte(x, 3));
}

static inline uint32_t mpyml_dsp_sxtab16(uint32_t a, uint32_t x)
{
    return mpyml_dsp_lanes(mpyml_dsp_lo(a) + mpyml_dsp_byte(x, 0), mpyml_dsp_hi(a) + mpyml_dsp_byte(x, 2));
}

static inline uint32_t mpyml_dsp_sxtab16_ror8(uint32_t a, uint32_t x)
{
    return mpyml_dsp_lanes(mpyml_dsp_lo(a) + mpyml_dsp_byte(x, 1), mpyml_dsp_hi(a) + mpyml_dsp_byte(x, 3));
}

static inline int32_t mpyml_dsp_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(mpyml_dsp_lo(a) * mpyml_dsp_lo(b))
        + (uint32_t)(mpyml_dsp_hi(a) * mpyml_dsp_hi(b)));
}

static inline int32_t mpyml_dsp_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(mpyml_dsp_lo(a) * mpyml_dsp_lo(b)));
}

static inline int32_t mpyml_dsp_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(mpyml_dsp_hi(a) * mpyml_dsp_hi(b)));
}

static inline int32_t mpyml_dsp_smlabt(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(mpyml_dsp_lo(a) * mpyml_dsp_hi(b)));
}

#endif

/* 4 bytes from any address (compiles to one LDR on Cortex-M4/M7, which allow unaligned words) */
static inline uint32_t mpyml_dsp_ld32(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* input_offset in both halfword lanes */
static inline uint32_t mpyml_dsp_off2(int32_t off)
{
    return ((uint32_t)off << 16) | ((uint32_t)off & 0xFFFFu);
}

/* One 4-byte word of x against the same word of 4 weight rows: the input pair-widened with its offset
 * (SXTAB16 / ROR 8) and two SMLADs per row; advances x and every w by 4. Shared by the C word
 * loops after the asm blocks of mpyml_dsp_run4 and fully_connected.c's fc_dsp_run4 (a macro: both keep the operands in
 * registers, which an inline function taking pointers to them would not guarantee at -Os). */
#define MPYML_DSP_WORD4_STEP(x, w0, w1, w2, w3, a0, a1, a2, a3, off2) do { \
        const uint32_t xv_ = mpyml_dsp_ld32(x); \
        const uint32_t xe_ = mpyml_dsp_sxtab16((off2), xv_), xo_ = mpyml_dsp_sxtab16_ror8((off2), xv_); \
        uint32_t wv_; \
        (x) += 4; \
        wv_ = mpyml_dsp_ld32(w0); (w0) += 4; \
        (a0) = mpyml_dsp_smlad(xe_, mpyml_dsp_sxtb16(wv_), (a0)); \
        (a0) = mpyml_dsp_smlad(xo_, mpyml_dsp_sxtb16_ror8(wv_), (a0)); \
        wv_ = mpyml_dsp_ld32(w1); (w1) += 4; \
        (a1) = mpyml_dsp_smlad(xe_, mpyml_dsp_sxtb16(wv_), (a1)); \
        (a1) = mpyml_dsp_smlad(xo_, mpyml_dsp_sxtb16_ror8(wv_), (a1)); \
        wv_ = mpyml_dsp_ld32(w2); (w2) += 4; \
        (a2) = mpyml_dsp_smlad(xe_, mpyml_dsp_sxtb16(wv_), (a2)); \
        (a2) = mpyml_dsp_smlad(xo_, mpyml_dsp_sxtb16_ror8(wv_), (a2)); \
        wv_ = mpyml_dsp_ld32(w3); (w3) += 4; \
        (a3) = mpyml_dsp_smlad(xe_, mpyml_dsp_sxtb16(wv_), (a3)); \
        (a3) = mpyml_dsp_smlad(xo_, mpyml_dsp_sxtb16_ror8(wv_), (a3)); \
    } while (0)

/* 4 output channels over the vector part (n & ~3 elements) of one contiguous run:
 * acc[k] += sum (x[i] + off) * w0[k * ws + i]; returns the elements consumed. */
static inline int32_t mpyml_dsp_run4(const int8_t *x, const int8_t *w0, int32_t ws, int32_t n,
    uint32_t off2, int32_t *acc)
{
    const int8_t *w1 = w0 + ws, *w2 = w1 + ws, *w3 = w2 + ws;
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t words = n >> 2;
#if !defined(MPYML_EMULATE_DSP)
    /* GCC spills three of the five pointers in the C loop below; this is the same loop with all
     * 14 values in registers (the word counter lives in memory: one load/store per 8 bytes). */
    if (words >= 2) {
        int32_t pairs = words >> 1;
        uint32_t xe, xo, wv, wt;
        words &= 1;
        __asm__ volatile(
            "1:\n"
#define MPYML_DSP_WORD \
            "ldr %[xo], [%[x]], #4\n" \
            "sxtab16 %[xe], %[off2], %[xo]\n" \
            "sxtab16 %[xo], %[off2], %[xo], ror #8\n" \
            "ldr %[wv], [%[w0]], #4\n" \
            "sxtb16 %[wt], %[wv]\n" \
            "sxtb16 %[wv], %[wv], ror #8\n" \
            "smlad %[a0], %[xe], %[wt], %[a0]\n" \
            "smlad %[a0], %[xo], %[wv], %[a0]\n" \
            "ldr %[wv], [%[w1]], #4\n" \
            "sxtb16 %[wt], %[wv]\n" \
            "sxtb16 %[wv], %[wv], ror #8\n" \
            "smlad %[a1], %[xe], %[wt], %[a1]\n" \
            "smlad %[a1], %[xo], %[wv], %[a1]\n" \
            "ldr %[wv], [%[w2]], #4\n" \
            "sxtb16 %[wt], %[wv]\n" \
            "sxtb16 %[wv], %[wv], ror #8\n" \
            "smlad %[a2], %[xe], %[wt], %[a2]\n" \
            "smlad %[a2], %[xo], %[wv], %[a2]\n" \
            "ldr %[wv], [%[w3]], #4\n" \
            "sxtb16 %[wt], %[wv]\n" \
            "sxtb16 %[wv], %[wv], ror #8\n" \
            "smlad %[a3], %[xe], %[wt], %[a3]\n" \
            "smlad %[a3], %[xo], %[wv], %[a3]\n"
            MPYML_DSP_WORD
            MPYML_DSP_WORD
#undef MPYML_DSP_WORD
            "ldr %[wt], %[pairs]\n"
            "subs %[wt], %[wt], #1\n"
            "str %[wt], %[pairs]\n"
            "bne 1b\n"
            : [x] "+r"(x), [w0] "+r"(w0), [w1] "+r"(w1), [w2] "+r"(w2), [w3] "+r"(w3),
              [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [pairs] "+m"(pairs),
              [xe] "=&r"(xe), [xo] "=&r"(xo), [wv] "=&r"(wv), [wt] "=&r"(wt)
            : [off2] "r"(off2)
            : "cc", "memory");
    }
#endif
    while (words-- > 0) {
        MPYML_DSP_WORD4_STEP(x, w0, w1, w2, w3, a0, a1, a2, a3, off2);
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    return n & ~3;
}

/* 1 output channel, vector part of sum((x[i] + off) * w[i]); returns the elements consumed. */
static inline int32_t mpyml_dsp_run1(const int8_t *x, const int8_t *w, int32_t n, uint32_t off2,
    int32_t *acc)
{
    int32_t a = *acc, i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32_t xv = mpyml_dsp_ld32(x + i), wv = mpyml_dsp_ld32(w + i);
        a = mpyml_dsp_smlad(mpyml_dsp_sxtab16(off2, xv), mpyml_dsp_sxtb16(wv), a);
        a = mpyml_dsp_smlad(mpyml_dsp_sxtab16_ror8(off2, xv), mpyml_dsp_sxtb16_ror8(wv), a);
    }
    *acc = a;
    return i;
}

#endif /* MPYML_OPS_SIMD_DSP_H */
