/*
 * ops/kernels_v6m.h - the CONV_2D / FULLY_CONNECTED kernels for cores without SIMD (Armv6-M: Cortex-M0/M0+,
 * RP2040; Armv7-M without DSP: Cortex-M3): their entry points (conv2d_v6m.c, fully_connected_v6m.c, which
 * conv2d.c and fully_connected.c dispatch to) and the multiply-accumulate run they share.
 *
 * MPYML_KERNELS_V6M is defined on __ARM_ARCH_6M__ / __ARM_ARCH_7M__ and, for the host tests, under
 * MPYML_EMULATE_V6M (the same kernels with the run in C instead of Thumb inline assembly).
 *
 * mpyml_v6m_dot4: acc[k] += sum_{i < n} (x[i] + off) * wk[i] for the four weight rows w0..w3 (a row may
 * repeat), modulo 2^32 (a start value may be any int32), with
 *   @param n    1 .. 65536 (the loader bounds KH * KW * C and the FC depth)
 *   @param off  -127 .. 128 (an int8 input offset; |(x + off) * w| < 2^15)
 * On ARM every register of the loop is live at once: x, the four weight rows, a negative index counting up
 * to 0 and two temporaries in r0-r7, the four accumulators and the offset in high registers (ADD Rd, Rm reads
 * and writes those), 31 instructions per 8 multiply-accumulates (two input elements per iteration); on
 * Armv7-M, MLA makes that 23.
 */
#ifndef MPYML_OPS_KERNELS_V6M_H
#define MPYML_OPS_KERNELS_V6M_H

#include "ops.h"

#if !defined(MPYML_NO_V6M_KERNELS) \
    && (defined(__ARM_ARCH_6M__) || (defined(__ARM_ARCH_7M__) && !defined(__ARM_FEATURE_DSP)) \
        || defined(MPYML_EMULATE_V6M))
#define MPYML_KERNELS_V6M 1
#endif

#if defined(MPYML_KERNELS_V6M)
#include "depthwise_dm1.h"      /* mpyml_dw_requant: the exact requantization without 64-bit multiply */

void mpyml_conv2d_v6m(const mpyml_conv_params_t *p,
    const mpyml_shape4_t *in_s, const int8_t *in,
    const mpyml_shape4_t *f_s, const int8_t *filter,
    const int32_t *bias, const int32_t *mult, const int32_t *shift,
    const mpyml_shape4_t *out_s, int8_t *out);

void mpyml_fully_connected_v6m(const mpyml_fc_params_t *p, int32_t batches, int32_t in_depth,
    int32_t out_depth, const int8_t *in, const int8_t *filter, const int32_t *bias,
    const int32_t *mult, const int32_t *shift, int per_channel, int8_t *out);

#if (defined(__ARM_ARCH_6M__) || defined(__ARM_ARCH_7M__)) && !defined(MPYML_EMULATE_V6M)
#define MPYML_V6M_ASM 1
#if defined(__ARM_ARCH_7M__)
#define V6M_MAC(a) "mla %[" a "], %[tw], %[tx], %[" a "]\n\t"     /* Thumb-2: one multiply-accumulate */
#else
#define V6M_MAC(a) "muls %[tw], %[tx], %[tw]\n\t" "add %[" a "], %[tw]\n\t"
#endif
/* one input element into the four accumulators; OFF adds the input offset to it (or is empty) */
#define V6M_STEP(OFF) \
    "ldrsb %[tx], [%[x], %[i]]\n\t" OFF \
    "ldrsb %[tw], [%[w0], %[i]]\n\t" V6M_MAC("a0") \
    "ldrsb %[tw], [%[w1], %[i]]\n\t" V6M_MAC("a1") \
    "ldrsb %[tw], [%[w2], %[i]]\n\t" V6M_MAC("a2") \
    "ldrsb %[tw], [%[w3], %[i]]\n\t" V6M_MAC("a3") \
    "adds %[i], #1\n\t"
/* n odd: enter at the second half of the two-element body; i reaches 0 only at its end */
#define V6M_LOOP(OFF) \
    ".syntax unified\n\t" \
    "lsls %[tw], %[i], #31\n\t" \
    "bne 2f\n" \
    "1:\n\t" V6M_STEP(OFF) \
    "2:\n\t" V6M_STEP(OFF) \
    "bne 1b\n\t"
/* explicit high registers: GCC's "h" constraint fails to allocate two operands at -Os */
#define V6M_REGS \
    const int8_t *xe = x + n; \
    int32_t i = -n, tx, tw; \
    register int32_t a0 __asm__("r8") = acc[0]; \
    register int32_t a1 __asm__("r9") = acc[1]; \
    register int32_t a2 __asm__("r10") = acc[2]; \
    register int32_t a3 __asm__("r11") = acc[3]
#define V6M_OUTS [i] "+l"(i), [tx] "=&l"(tx), [tw] "=&l"(tw), \
    [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3)
#define V6M_INS [x] "l"(xe), [w0] "l"(w0 + n), [w1] "l"(w1 + n), [w2] "l"(w2 + n), [w3] "l"(w3 + n)
#endif

static inline void mpyml_v6m_dot4(const int8_t *x, const int8_t *w0, const int8_t *w1, const int8_t *w2,
    const int8_t *w3, int32_t n, int32_t off, int32_t *acc)
{
#if defined(MPYML_V6M_ASM)
    V6M_REGS;
    register int32_t ro __asm__("r12") = off;
    __asm__ volatile(V6M_LOOP("add %[tx], %[off]\n\t") : V6M_OUTS : V6M_INS, [off] "r"(ro) : "cc", "memory");
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
#else
    uint32_t a0 = (uint32_t)acc[0], a1 = (uint32_t)acc[1], a2 = (uint32_t)acc[2], a3 = (uint32_t)acc[3];
    int32_t i;
    for (i = 0; i < n; i++) {
        const int32_t xv = x[i] + off;
        a0 += (uint32_t)(xv * w0[i]);
        a1 += (uint32_t)(xv * w1[i]);
        a2 += (uint32_t)(xv * w2[i]);
        a3 += (uint32_t)(xv * w3[i]);
    }
    acc[0] = (int32_t)a0;
    acc[1] = (int32_t)a1;
    acc[2] = (int32_t)a2;
    acc[3] = (int32_t)a3;
#endif
}

/* mpyml_v6m_dot4 without the input offset: acc[k] += sum_{i < n} x[i] * wk[i], modulo 2^32 (the caller folds
 * off * sum wk into acc). 27 instructions per 8 multiply-accumulates on Armv6-M, 19 on Armv7-M. */
static inline void mpyml_v6m_dot4_raw(const int8_t *x, const int8_t *w0, const int8_t *w1, const int8_t *w2,
    const int8_t *w3, int32_t n, int32_t *acc)
{
#if defined(MPYML_V6M_ASM)
    V6M_REGS;
    __asm__ volatile(V6M_LOOP("") : V6M_OUTS : V6M_INS : "cc", "memory");
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
#else
    mpyml_v6m_dot4(x, w0, w1, w2, w3, n, 0, acc);
#endif
}

#if defined(MPYML_V6M_ASM)
#undef V6M_MAC
#undef V6M_STEP
#undef V6M_LOOP
#undef V6M_REGS
#undef V6M_OUTS
#undef V6M_INS
#endif

/* bias (wrapping add) and requantization of one accumulator */
static inline int8_t mpyml_v6m_finish(int32_t acc, const int32_t *bias, int32_t oc, int32_t mult,
    int32_t shift, int32_t out_off, int32_t act_min, int32_t act_max)
{
    if (bias) {
        acc = mpyml_wrap_add(acc, bias[oc]);
    }
    return mpyml_dw_requant(acc, mult, shift, out_off, act_min, act_max);
}
#endif /* MPYML_KERNELS_V6M */

#endif /* MPYML_OPS_KERNELS_V6M_H */
