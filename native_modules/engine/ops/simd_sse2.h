/*
 * ops/simd_sse2.h - SSE2 building blocks of the x86-64 kernels (conv2d.c, depthwise_conv2d.c,
 * fully_connected.c include it when __SSE2__ is defined and MPYML_NO_SIMD is not; SSE2 is the
 * x86-64 baseline, so the natmod's default flags suffice).
 *
 * Exactness: x + input_offset is in [-255, 255] and w in [-128, 127], so both fit int16, each
 * product fits in 16 bits of magnitude (|p| <= 32640) and _mm_madd_epi16's sum of two products can
 * never overflow its int32 lane. Every accumulator is the same int32 sum the reference forms (the
 * loader bounds the reduction length, so the exact sum fits int32 and the order does not matter).
 */
#ifndef MPYML_OPS_SIMD_SSE2_H
#define MPYML_OPS_SIMD_SSE2_H

#include <emmintrin.h>
#include <stdint.h>

#define MPYML_SIMD_SSE2 1

static inline __m128i mpyml_sse2_load16(const int8_t *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

static inline __m128i mpyml_sse2_load8(const int8_t *p)
{
    return _mm_loadl_epi64((const __m128i *)(const void *)p);
}

/* int8 lanes 0..7 / 8..15 sign-extended to int16 */
static inline __m128i mpyml_sse2_lo16(__m128i v)
{
    return _mm_srai_epi16(_mm_unpacklo_epi8(v, v), 8);
}

static inline __m128i mpyml_sse2_hi16(__m128i v)
{
    return _mm_srai_epi16(_mm_unpackhi_epi8(v, v), 8);
}

/* [sum(a0), sum(a1), sum(a2), sum(a3)] */
static inline __m128i mpyml_sse2_hsum4(__m128i a0, __m128i a1, __m128i a2, __m128i a3)
{
    const __m128i s01 = _mm_add_epi32(_mm_unpacklo_epi32(a0, a1), _mm_unpackhi_epi32(a0, a1));
    const __m128i s23 = _mm_add_epi32(_mm_unpacklo_epi32(a2, a3), _mm_unpackhi_epi32(a2, a3));
    return _mm_add_epi32(_mm_unpacklo_epi64(s01, s23), _mm_unpackhi_epi64(s01, s23));
}

/* 4 output channels, vector part of one contiguous run: v[k] += lanes of (x[i] + off) * wk[i] for
 * i < n & ~7; returns the number of elements consumed (the caller finishes the tail in scalar). */
static inline int32_t mpyml_sse2_run4(const int8_t *x, const int8_t *w0, int32_t ws, int32_t n,
    __m128i voff, __m128i *v)
{
    const int8_t *w1 = w0 + ws, *w2 = w1 + ws, *w3 = w2 + ws;
    __m128i a0 = v[0], a1 = v[1], a2 = v[2], a3 = v[3];
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m128i xv = mpyml_sse2_load16(x + i);
        const __m128i xl = _mm_add_epi16(mpyml_sse2_lo16(xv), voff);
        const __m128i xh = _mm_add_epi16(mpyml_sse2_hi16(xv), voff);
        __m128i wv;
        wv = mpyml_sse2_load16(w0 + i);
        a0 = _mm_add_epi32(a0, _mm_add_epi32(_mm_madd_epi16(xl, mpyml_sse2_lo16(wv)),
            _mm_madd_epi16(xh, mpyml_sse2_hi16(wv))));
        wv = mpyml_sse2_load16(w1 + i);
        a1 = _mm_add_epi32(a1, _mm_add_epi32(_mm_madd_epi16(xl, mpyml_sse2_lo16(wv)),
            _mm_madd_epi16(xh, mpyml_sse2_hi16(wv))));
        wv = mpyml_sse2_load16(w2 + i);
        a2 = _mm_add_epi32(a2, _mm_add_epi32(_mm_madd_epi16(xl, mpyml_sse2_lo16(wv)),
            _mm_madd_epi16(xh, mpyml_sse2_hi16(wv))));
        wv = mpyml_sse2_load16(w3 + i);
        a3 = _mm_add_epi32(a3, _mm_add_epi32(_mm_madd_epi16(xl, mpyml_sse2_lo16(wv)),
            _mm_madd_epi16(xh, mpyml_sse2_hi16(wv))));
    }
    if (i + 8 <= n) {
        const __m128i xl = _mm_add_epi16(mpyml_sse2_lo16(mpyml_sse2_load8(x + i)), voff);
        a0 = _mm_add_epi32(a0, _mm_madd_epi16(xl, mpyml_sse2_lo16(mpyml_sse2_load8(w0 + i))));
        a1 = _mm_add_epi32(a1, _mm_madd_epi16(xl, mpyml_sse2_lo16(mpyml_sse2_load8(w1 + i))));
        a2 = _mm_add_epi32(a2, _mm_madd_epi16(xl, mpyml_sse2_lo16(mpyml_sse2_load8(w2 + i))));
        a3 = _mm_add_epi32(a3, _mm_madd_epi16(xl, mpyml_sse2_lo16(mpyml_sse2_load8(w3 + i))));
        i += 8;
    }
    v[0] = a0;
    v[1] = a1;
    v[2] = a2;
    v[3] = a3;
    return i;
}

/* 1 output channel: the vector part of sum((x[i] + off) * w[i]); returns the elements consumed. */
static inline int32_t mpyml_sse2_run1(const int8_t *x, const int8_t *w, int32_t n, __m128i voff,
    __m128i *v)
{
    __m128i a = *v;
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m128i xv = mpyml_sse2_load16(x + i);
        const __m128i wv = mpyml_sse2_load16(w + i);
        a = _mm_add_epi32(a, _mm_madd_epi16(_mm_add_epi16(mpyml_sse2_lo16(xv), voff), mpyml_sse2_lo16(wv)));
        a = _mm_add_epi32(a, _mm_madd_epi16(_mm_add_epi16(mpyml_sse2_hi16(xv), voff), mpyml_sse2_hi16(wv)));
    }
    if (i + 8 <= n) {
        a = _mm_add_epi32(a, _mm_madd_epi16(_mm_add_epi16(mpyml_sse2_lo16(mpyml_sse2_load8(x + i)), voff),
            mpyml_sse2_lo16(mpyml_sse2_load8(w + i))));
        i += 8;
    }
    *v = a;
    return i;
}

static inline int32_t mpyml_sse2_hsum1(__m128i a)
{
    a = _mm_add_epi32(a, _mm_unpackhi_epi64(a, a));
    a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0x55));
    return _mm_cvtsi128_si32(a);
}

#endif /* MPYML_OPS_SIMD_SSE2_H */
