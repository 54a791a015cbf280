/*
 * ops/depthwise_dm1.h - what depthwise_conv2d.c's dispatcher shares with the depth-multiplier-1 row kernels
 * (depthwise_dm1_dsp.c on Armv7E-M DSP targets, depthwise_dm1_scalar.c on targets without SIMD: Cortex-M0/M3
 * and MPYML_NO_SIMD builds): the description of one output row, the row kernel's signature and the
 * requantization both use (and, on DSP targets, its exact SMMULR form for one or four outputs, which
 * depthwise_dmn_dsp.c and fully_connected.c use too).
 *
 * A row kernel computes one output row (every pixel, every channel) of DEPTHWISE_CONV_2D with depth
 * multiplier 1, any filter size, stride and dilation, from the row's vertically clipped window (the filter
 * rows fy0 .. fy0 + n_rows - 1 that fall inside the input, n_rows >= 1). Columns are clipped per pixel;
 * pixels whose whole filter row lies inside the input take the kernel's fast path.
 */
#ifndef MPYML_OPS_DEPTHWISE_DM1_H
#define MPYML_OPS_DEPTHWISE_DM1_H

#include "ops.h"
#include "fixedpoint.h"

typedef struct {
    const int8_t *x;        /* input of this batch, first valid filter row's input row, column 0, channel 0 */
    const int8_t *w;        /* filter row fy0, column 0, channel 0 */
    int32_t n_rows;         /* valid filter rows, >= 1 */
    int32_t x_row_step;     /* dil_h * in_w * c: elements between the input rows of two filter rows */
    int32_t in_w, c, f_w, out_w;
    int8_t *out;            /* output row, pixel 0, channel 0 */
} mpyml_dw_row_t;

void mpyml_dw_dm1_row(const mpyml_conv_params_t *p, const mpyml_dw_row_t *r, const int32_t *bias,
    const int32_t *mult, const int32_t *shift);

/* The clipped filter window of one output pixel (depthwise_conv2d.c): x at channel 0 of the first valid
 * tap, w at output channel 0 of the matching filter tap. */
typedef struct {
    const int8_t *x, *w;
    int32_t n_rows, n_cols;
    int32_t x_row_step, x_col_step;     /* elements between taps in the input */
    int32_t w_row_step, w_col_step;     /* elements between taps in the filter */
} mpyml_dw_win_t;

/* depthwise_dmn_dsp.c (Armv7E-M DSP only): depth multiplier dm >= 4, output channels ic * dm + m for
 * m in [0, dm & ~3) of one pixel (the caller does the rest). */
void mpyml_dw_dmn_dsp(const mpyml_conv_params_t *p, const mpyml_dw_win_t *win, int32_t ic, int32_t dm,
    const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out);

/* The pixels [*lo, *hi) of the row whose filter taps all lie inside the input columns (short loops, no
 * division: ARMv6-M has none). */
static inline void mpyml_dw_interior(const mpyml_conv_params_t *p, const mpyml_dw_row_t *r, int32_t *lo,
    int32_t *hi)
{
    const int32_t span = p->dil_w * (r->f_w - 1);
    int32_t a = 0, b = r->out_w;
    while (a < b && a * p->stride_w - p->pad_w < 0) {
        a++;
    }
    while (b > a && (b - 1) * p->stride_w - p->pad_w + span >= r->in_w) {
        b--;
    }
    *lo = a;
    *hi = b;
}

/* mpyml_requant_pos (acc already includes the bias; mult 0..2^31-1, shift -31..30), restated so that the
 * rounding divide needs no mask: for e >= 1, RoundingDivideByPOT(v, e) = floor((v - [v < 0] + 2^(e-1)) / 2^e)
 * = (t >> 1) + (t & 1) with t = (v - [v < 0]) >> (e - 1); v >= INT32_MIN + 1 (|mult| < 2^31), so v - 1 does
 * not wrap. SaturatingRoundingDoublingHighMul cannot saturate (mult != INT32_MIN). On ARMv6-M it is built
 * from four 16 x 16 products: with a = ah 2^16 + al, b = bh 2^16 + bl (al, bl unsigned 16 bit, b >= 0) and
 * m1 = ah bl, m2 = al bh (each |.| < 2^31), (ab + 2^30) >> 31 = 2 ah bh + (m1 >> 15) + (m2 >> 15)
 * + ((m1 & 0x7FFF) + (m2 & 0x7FFF) + (al bl >> 16) + 2^14) >> 15, summed modulo 2^32 (the result fits). */
static inline int32_t mpyml_dw_srdhm_pos(int32_t a, int32_t b)
{
#if defined(MPYML_ARITH_V6M)
    const int32_t ah = a >> 16, bh = b >> 16;
    const uint32_t al = (uint32_t)a & 0xFFFFu, bl = (uint32_t)b & 0xFFFFu;
    const int32_t m1 = ah * (int32_t)bl, m2 = (int32_t)al * bh;
    uint32_t r = ((uint32_t)m1 & 0x7FFFu) + ((uint32_t)m2 & 0x7FFFu) + ((al * bl) >> 16) + 0x4000u;
    r = (r >> 15) + 2u * (uint32_t)(ah * bh) + (uint32_t)(m1 >> 15) + (uint32_t)(m2 >> 15);
    return (int32_t)r;
#else
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 30)) >> 31);
#endif
}

static inline int8_t mpyml_dw_requant(int32_t acc, int32_t mult, int32_t shift, int32_t out_off,
    int32_t act_min, int32_t act_max)
{
    int32_t v;
    if (shift > 0) {
        acc = mpyml_wrap_shl(acc, (int)shift);
    }
    v = mpyml_dw_srdhm_pos(acc, mult);
    if (shift < 0) {
        const int32_t t = (v + (v >> 31)) >> (-shift - 1);
        v = (t >> 1) + (t & 1);
    }
    v = (int32_t)((uint32_t)v + (uint32_t)out_off);
    return (int8_t)(v < act_min ? act_min : (v > act_max ? act_max : v));
}

#if defined(MPYML_SIMD_DSP)
#if defined(__GNUC__)
#define MPYML_DW_LIKELY(x) __builtin_expect(!!(x), 1)   /* keeps the fast path in line (no taken branches) */
#define MPYML_DW_INLINE __attribute__((always_inline)) inline
#define MPYML_DW_NOINLINE __attribute__((noinline, unused))
#else
#define MPYML_DW_LIKELY(x) (x)
#define MPYML_DW_INLINE inline
#define MPYML_DW_NOINLINE
#endif
/* mpyml_dw_requant on Armv7E-M DSP (include simd.h first), same result for every input. Fast path for a right
 * shift (shift -31..-1) and |acc| <= 2^30: SaturatingRoundingDoublingHighMul(acc, mult) = floor((acc mult
 * + 2^30) / 2^31) = floor((2 acc mult + 2^31) / 2^32) = SMMULR(2 acc, mult) (2 acc does not wrap), then
 * RoundingDivideByPOT plus output offset (mpyml_dsp_rdbpot_add: the SRDHM result is > -2^30); every other
 * input takes mpyml_dw_requant. */
static inline int8_t mpyml_dw_requant_dsp(int32_t acc, int32_t mult, int32_t shift, int32_t out_off,
    int32_t act_min, int32_t act_max)
{
    if (MPYML_DW_LIKELY(shift < 0 && (uint32_t)acc + 0x40000000u < 0x80000000u)) {
        const int32_t v = mpyml_dsp_rdbpot_add(mpyml_dsp_smmulr(mpyml_wrap_shl(acc, 1), mult), -shift, out_off);
        return (int8_t)(v < act_min ? act_min : (v > act_max ? act_max : v));
    }
    return mpyml_dw_requant(acc, mult, shift, out_off, act_min, act_max);
}

/* act_min / act_max in every byte (mpyml_dsp_pack4_clamp) */
static inline uint32_t mpyml_dw_bytes4(int32_t v)
{
    return ((uint32_t)v & 0xFFu) * 0x01010101u;
}

/* mpyml_dw_requant of four accumulators into o[0..3]: mpyml_dw_requant4_dsp's rare path, out of line
 * (depthwise_dm1_dsp.c) */
void mpyml_dw_requant4_any(int8_t *o, int32_t a0, int32_t a1, int32_t a2, int32_t a3, const int32_t *mult,
    const int32_t *shift, int32_t out_off, int32_t act_min, int32_t act_max);

/* mpyml_dw_requant_dsp of four accumulators into o[0..3] (any alignment): when every shift is a right shift
 * and every |acc| <= 2^30, the fast path of each and one clamp (mpyml_dsp_pack4_clamp: SSAT to int8 first is
 * exact: the loader checks -128 <= act_min <= act_max <= 127) and one word store; otherwise
 * mpyml_dw_requant4_any. Also used by depthwise_dmn_dsp.c and fully_connected.c. */
static MPYML_DW_INLINE void mpyml_dw_requant4_dsp(int8_t *o, int32_t a0, int32_t a1, int32_t a2, int32_t a3,
    const int32_t *mult, const int32_t *shift, int32_t out_off, int32_t act_min, int32_t act_max, uint32_t lo4,
    uint32_t hi4)
{
    const int32_t s0 = shift[0], s1 = shift[1], s2 = shift[2], s3 = shift[3];
    if (MPYML_DW_LIKELY((s0 & s1 & s2 & s3) < 0 && (((uint32_t)a0 + 0x40000000u) | ((uint32_t)a1 + 0x40000000u)
            | ((uint32_t)a2 + 0x40000000u) | ((uint32_t)a3 + 0x40000000u)) < 0x80000000u)) {
        const int32_t v0 = mpyml_dsp_rdbpot_add(mpyml_dsp_smmulr(mpyml_wrap_shl(a0, 1), mult[0]), -s0, out_off);
        const int32_t v1 = mpyml_dsp_rdbpot_add(mpyml_dsp_smmulr(mpyml_wrap_shl(a1, 1), mult[1]), -s1, out_off);
        const int32_t v2 = mpyml_dsp_rdbpot_add(mpyml_dsp_smmulr(mpyml_wrap_shl(a2, 1), mult[2]), -s2, out_off);
        const int32_t v3 = mpyml_dsp_rdbpot_add(mpyml_dsp_smmulr(mpyml_wrap_shl(a3, 1), mult[3]), -s3, out_off);
        const uint32_t w = mpyml_dsp_pack4_clamp(v0, v1, v2, v3, lo4, hi4);
        memcpy(o, &w, 4);
        return;
    }
    mpyml_dw_requant4_any(o, a0, a1, a2, a3, mult, shift, out_off, act_min, act_max);
}
#endif

#endif /* MPYML_OPS_DEPTHWISE_DM1_H */
