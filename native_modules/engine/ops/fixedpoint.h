/*
 * ops/fixedpoint.h - integer fixed-point helpers shared by the int8 kernels.
 *
 * Bit-exact C99 versions of the gemmlowp / TFLite primitives the TFLite Micro reference kernels use
 * (default double-rounding build, not TFLITE_SINGLE_ROUNDING):
 *   mpyml_srdhm          gemmlowp SaturatingRoundingDoublingHighMul (int32)
 *   mpyml_rdbpot         gemmlowp RoundingDivideByPOT (int32, exponent 0..31)
 *   mpyml_mbqm           tflite MultiplyByQuantizedMultiplier (shift -31..30, >0 = left)
 *   mpyml_mbqm_le1       tflite MultiplyByQuantizedMultiplierSmallerThanOneExp (shift -31..0)
 *   mpyml_mbqm_ge1       tflite MultiplyByQuantizedMultiplierGreaterThanOne (shift 0..31)
 *   mpyml_div_trunc      n / d (d > 0), C truncation, without a divide instruction on ARMv6-M
 *   mpyml_requant        the conv / depthwise / FC epilogue: scale, add output offset, clamp
 *   mpyml_fp_*           the gemmlowp FixedPoint pieces softmax needs (exp, 1/(1+x), rescale)
 *
 * Rules: integer only, no writable globals, no signed-overflow UB (wrapping arithmetic is done on
 * uint32_t, which equals what TFLite computes in practice), and on ARMv6-M no 64-bit multiply,
 * 64-bit division or variable 64-bit shift (the natmod linker cannot resolve __aeabi_lmul & co).
 */
#ifndef MPYML_OPS_FIXEDPOINT_H
#define MPYML_OPS_FIXEDPOINT_H

#include <stdint.h>

/* ARMv6-M (Cortex-M0/M0+, RP2040) has no 64-bit multiply or divide instructions and a natmod cannot
 * call the libgcc helpers, so these paths use 32-bit operations only. Defining MPYML_ARITH_V6M
 * selects them on any target (the host tests do, to prove them bit-exact). */
#if defined(__ARM_ARCH_6M__) && !defined(MPYML_ARITH_V6M)
#define MPYML_ARITH_V6M 1
#endif

#define MPYML_INT32_MIN (-2147483647 - 1)
#define MPYML_INT32_MAX 2147483647

/* a + b and a << sh (sh 0..31) with two's complement wraparound, as TFLite's int32 arithmetic
 * behaves in practice, without signed-overflow UB. */
static inline int32_t mpyml_wrap_add(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static inline int32_t mpyml_wrap_shl(int32_t a, int sh)
{
    return (int32_t)((uint32_t)a << sh);
}

static inline int32_t mpyml_clamp(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/*
 * SaturatingRoundingDoublingHighMul: a * b / 2^31 rounded to nearest, ties toward +infinity,
 * saturating INT32_MIN * INT32_MIN to INT32_MAX. gemmlowp computes
 * (ab + (ab >= 0 ? 2^30 : 1 - 2^30)) / 2^31 with truncating division; for every 64-bit ab that equals
 * floor((ab + 2^30) / 2^31), i.e. an arithmetic shift, which needs no division.
 */
static inline int32_t mpyml_srdhm(int32_t a, int32_t b)
{
    if (a == MPYML_INT32_MIN && b == MPYML_INT32_MIN) {
        return MPYML_INT32_MAX;
    }
#if defined(MPYML_ARITH_V6M)
    {
        /* 16-bit partial products: every product fits in 32 bits, the sum is formed modulo 2^64
         * with adds and constant shifts only (no __aeabi_lmul). */
        const int32_t ah = a >> 16, bh = b >> 16;
        const uint32_t al = (uint32_t)a & 0xFFFFu, bl = (uint32_t)b & 0xFFFFu;
        const int32_t mid1 = ah * (int32_t)bl;     /* |.| < 2^31 */
        const int32_t mid2 = (int32_t)al * bh;
        uint64_t ab = (uint64_t)(uint32_t)(ah * bh) << 32;
        ab += (uint64_t)(int64_t)mid1 << 16;
        ab += (uint64_t)(int64_t)mid2 << 16;
        ab += (uint64_t)(al * bl);
        ab += (uint64_t)1 << 30;
        /* the result fits in int32 (the only overflowing case was handled above), so the low
         * 32 bits of the logical shift are the arithmetic-shift result */
        return (int32_t)(uint32_t)(ab >> 31);
    }
#else
    {
        const int64_t ab = (int64_t)a * (int64_t)b;
        return (int32_t)((ab + ((int64_t)1 << 30)) >> 31);
    }
#endif
}

/* RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero. exponent 0..31. */
static inline int32_t mpyml_rdbpot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((uint32_t)1 << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* MultiplyByQuantizedMultiplier (double rounding). shift -31..30. */
static inline int32_t mpyml_mbqm(int32_t x, int32_t mult, int32_t shift)
{
    const int left = shift > 0 ? (int)shift : 0;
    const int right = shift > 0 ? 0 : (int)-shift;
    return mpyml_rdbpot(mpyml_srdhm(mpyml_wrap_shl(x, left), mult), right);
}

/* MultiplyByQuantizedMultiplierSmallerThanOneExp. shift -31..0. */
static inline int32_t mpyml_mbqm_le1(int32_t x, int32_t mult, int32_t shift)
{
    return mpyml_rdbpot(mpyml_srdhm(x, mult), (int)-shift);
}

/* MultiplyByQuantizedMultiplierGreaterThanOne. left_shift 0..31. */
static inline int32_t mpyml_mbqm_ge1(int32_t x, int32_t mult, int32_t left_shift)
{
    return mpyml_srdhm(mpyml_wrap_shl(x, (int)left_shift), mult);
}

/* n / d truncated toward zero (C semantics) for d > 0; shift-subtract on ARMv6-M. */
static inline int32_t mpyml_div_trunc(int32_t n, int32_t d)
{
#if defined(MPYML_ARITH_V6M)
    const uint32_t un = n < 0 ? 0u - (uint32_t)n : (uint32_t)n;
    const uint32_t ud = (uint32_t)d;
    uint32_t q = 0, r = 0;
    int i;
    for (i = 31; i >= 0; i--) {
        r = (r << 1) | ((un >> i) & 1u);
        if (r >= ud) {
            r -= ud;
            q |= (uint32_t)1 << i;
        }
    }
    return (int32_t)(n < 0 ? 0u - q : q);
#else
    return n / d;
#endif
}

/* conv / depthwise / FC epilogue: acc (+ bias already added) -> int8. */
static inline int8_t mpyml_requant(int32_t acc, int32_t mult, int32_t shift, int32_t out_off,
    int32_t act_min, int32_t act_max)
{
    /* wrapping add (defined behaviour; what TFLite's int32 add does on every target) */
    const int32_t v = (int32_t)((uint32_t)mpyml_mbqm(acc, mult, shift) + (uint32_t)out_off);
    return (int8_t)mpyml_clamp(v, act_min, act_max);
}

/* mpyml_requant for a multiplier the loader has validated to 0..2^31-1 (conv / depthwise / FC
 * mult operands): INT32_MIN * INT32_MIN cannot occur, so SaturatingRoundingDoublingHighMul needs no
 * saturation test, and the left / right shift split is one branch. Same result as mpyml_requant. */
static inline int8_t mpyml_requant_pos(int32_t acc, int32_t mult, int32_t shift, int32_t out_off,
    int32_t act_min, int32_t act_max)
{
    int32_t v, right = 0;
    if (shift > 0) {
        acc = mpyml_wrap_shl(acc, (int)shift);
    } else {
        right = -shift;
    }
#if defined(MPYML_ARITH_V6M)
    v = mpyml_srdhm(acc, mult);
#else
    /* |acc * mult| < 2^62: the shifted sum fits int32 */
    v = (int32_t)(((int64_t)acc * mult + ((int64_t)1 << 30)) >> 31);
#endif
    v = mpyml_rdbpot(v, (int)right);
    v = (int32_t)((uint32_t)v + (uint32_t)out_off);
    return (int8_t)mpyml_clamp(v, act_min, act_max);
}

/* ---- gemmlowp FixedPoint<int32, N> subset used by softmax (raw int32 values) ---- */

/* SaturatingRoundingMultiplyByPOT<exponent> for exponent > 0: saturating left shift. */
static inline int32_t mpyml_fp_sat_shl(int32_t x, int exponent)
{
    const int32_t threshold = (int32_t)(((uint32_t)1 << (31 - exponent)) - 1u);
    if (x > threshold) {
        return MPYML_INT32_MAX;
    }
    if (x < -threshold) {
        return MPYML_INT32_MIN;
    }
    return mpyml_wrap_shl(x, exponent);
}

/* gemmlowp RoundingHalfSum(a, b) = (a + b + (a + b >= 0 ? 1 : -1)) / 2, truncating, computed
 * without 64-bit arithmetic: that is floor((a + b) / 2), plus one when a + b is odd and >= 0. */
static inline int32_t mpyml_fp_rounding_half_sum(int32_t a, int32_t b)
{
    const int32_t fl = (a >> 1) + (b >> 1) + (a & b & 1);      /* floor((a + b) / 2) */
    const int32_t odd = (a ^ b) & 1;
    return fl + ((odd && fl >= 0) ? 1 : 0);
}

/* exp(x) for x in [-1/4, 0), Q0.31 in and out. */
static inline int32_t mpyml_fp_exp_quarter(int32_t a)
{
    const int32_t constant_term = 1895147668;   /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;
    const int32_t x = mpyml_wrap_add(a, 1 << 28);       /* a + 1/8 */
    const int32_t x2 = mpyml_srdhm(x, x);
    const int32_t x3 = mpyml_srdhm(x2, x);
    const int32_t x4 = mpyml_srdhm(x2, x2);
    const int32_t x4_over_4 = mpyml_rdbpot(x4, 2);
    const int32_t poly = mpyml_rdbpot(
        mpyml_wrap_add(mpyml_srdhm(mpyml_wrap_add(x4_over_4, x3), constant_1_over_3), x2), 1);
    return mpyml_wrap_add(constant_term, mpyml_srdhm(constant_term, mpyml_wrap_add(x, poly)));
}

/* gemmlowp exp_on_negative_values for FixedPoint<int32, 5> input (Q5.26), Q0.31 result. */
static inline int32_t mpyml_fp_exp_neg_q5(int32_t a)
{
    const int32_t one_quarter = 1 << 24;
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter;
    int32_t result = mpyml_fp_exp_quarter(mpyml_fp_sat_shl(a_mod_quarter_minus_one_quarter, 5));
    const int32_t remainder = (int32_t)((uint32_t)a_mod_quarter_minus_one_quarter - (uint32_t)a);
    /* barrel shifter: bit 26 + e of the remainder set -> multiply by exp(-2^e), e = -2..4 */
    if (remainder & (1 << 24)) {
        result = mpyml_srdhm(result, 1672461947);
    }
    if (remainder & (1 << 25)) {
        result = mpyml_srdhm(result, 1302514674);
    }
    if (remainder & (1 << 26)) {
        result = mpyml_srdhm(result, 790015084);
    }
    if (remainder & (1 << 27)) {
        result = mpyml_srdhm(result, 290630308);
    }
    if (remainder & (1 << 28)) {
        result = mpyml_srdhm(result, 39332535);
    }
    if (remainder & (1 << 29)) {
        result = mpyml_srdhm(result, 720401);
    }
    if (remainder & (1 << 30)) {
        result = mpyml_srdhm(result, 242);
    }
    if (a == 0) {
        result = MPYML_INT32_MAX;
    }
    return result;
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1: Q0.31 in, Q0.31 out. */
static inline int32_t mpyml_fp_one_over_one_plus_x(int32_t a)
{
    const int32_t half_denominator = mpyml_fp_rounding_half_sum(a, MPYML_INT32_MAX);
    const int32_t constant_48_over_17 = 1515870810;     /* Q2.29 */
    const int32_t constant_neg_32_over_17 = -1010580540;
    const int32_t f2_one = 1 << 29;
    int32_t x = mpyml_wrap_add(constant_48_over_17, mpyml_srdhm(half_denominator, constant_neg_32_over_17));
    int i;
    for (i = 0; i < 3; i++) {
        const int32_t half_denominator_times_x = mpyml_srdhm(half_denominator, x);
        const int32_t one_minus = (int32_t)((uint32_t)f2_one - (uint32_t)half_denominator_times_x);
        x = mpyml_wrap_add(x, mpyml_fp_sat_shl(mpyml_srdhm(x, one_minus), 2));
    }
    return mpyml_fp_sat_shl(x, 1);
}

/* Number of leading zero bits of a nonzero uint32 (portable, no builtins needed). */
static inline int mpyml_clz32(uint32_t x)
{
    int n = 0;
    if (x == 0) {
        return 32;
    }
    while (!(x & 0x80000000u)) {
        x <<= 1;
        n++;
    }
    return n;
}

#endif /* MPYML_OPS_FIXEDPOINT_H */
