/*
 * ops/sparse_block.h - the column scatter of block-sparse weights (sparse_common.h, docs/FORMAT.md "Sparse
 * weights": rows uint8 / int16 hold *block* indices and every entry carries B = 4, 8 or 16 consecutive output
 * channels' values). Block pruning (`mpyml convert --prune`, default blocks of 4 output channels) gives this form;
 * it needs one index per B values and lets the adds run B wide (SSE2 on x86-64, portable C elsewhere).
 *
 * For each of n columns k with xo = x[k] + off != 0, for every entry j in [cp[k], cp[k+1]):
 *     acc[rows[j] * B + i] += val[j * B + i] * xo        (i < B; uint32 wrapping adds of exact int32 products)
 * The loader has checked rows[j] * B + B <= O (O a multiple of B) and the column ranges, on the engine's copies.
 * SSE2 exactness: |val * xo| <= 128 * 255 = 32640 fits int16, so _mm_mullo_epi16 gives the exact products, which
 * are sign-extended to int32 before the add.
 */
#ifndef MPYML_SPARSE_BLOCK_H
#define MPYML_SPARSE_BLOCK_H

#include <stdint.h>
#include <string.h>
#include "simd.h"

#if defined(__GNUC__)
#define MPYML_SB_RESTRICT __restrict__
#else
#define MPYML_SB_RESTRICT
#endif

#if defined(MPYML_SIMD_SSE2)
/* acc[0..8) += int8 w[0..8) * xo (xv: xo in every int16 lane) */
static inline void mpyml_sb_add8(uint32_t *acc, const int8_t *w, __m128i xv)
{
    const __m128i p = _mm_mullo_epi16(mpyml_sse2_lo16(mpyml_sse2_load8(w)), xv);
    __m128i *a = (__m128i *)(void *)acc;
    _mm_storeu_si128(a, _mm_add_epi32(_mm_loadu_si128(a), _mm_srai_epi32(_mm_unpacklo_epi16(p, p), 16)));
    _mm_storeu_si128(a + 1, _mm_add_epi32(_mm_loadu_si128(a + 1), _mm_srai_epi32(_mm_unpackhi_epi16(p, p), 16)));
}

static inline void mpyml_sb_add4(uint32_t *acc, const int8_t *w, __m128i xv)
{
    int32_t w4;
    memcpy(&w4, w, 4);
    const __m128i p = _mm_mullo_epi16(mpyml_sse2_lo16(_mm_cvtsi32_si128(w4)), xv);
    __m128i *a = (__m128i *)(void *)acc;
    _mm_storeu_si128(a, _mm_add_epi32(_mm_loadu_si128(a), _mm_srai_epi32(_mm_unpacklo_epi16(p, p), 16)));
}
#endif

/* one body per block-index width: row_t is uint8_t or uint16_t */
#if defined(MPYML_SIMD_SSE2)
#define MPYML_SB_COLS(name, row_t)                                                                            \
    static inline void name(uint32_t *MPYML_SB_RESTRICT acc, const int8_t *MPYML_SB_RESTRICT val,            \
        const row_t *MPYML_SB_RESTRICT r, const int32_t *MPYML_SB_RESTRICT cp, const int8_t *MPYML_SB_RESTRICT x, \
        uint32_t n, int32_t off, uint32_t bs)                                                                \
    {                                                                                                        \
        for (uint32_t k = 0; k < n; k++) {                                                                   \
            const int32_t xo = x[k] + off;                                                                   \
            if (xo == 0) continue;                                                                           \
            const __m128i xv = _mm_set1_epi16((short)xo);                                                    \
            uint32_t j = (uint32_t)cp[k];                                                                    \
            const uint32_t je = (uint32_t)cp[k + 1];                                                         \
            if (bs == 4) {                                                                                   \
                for (; j < je; j++) mpyml_sb_add4(acc + 4u * r[j], val + 4u * j, xv);                        \
            } else if (bs == 8) {                                                                            \
                for (; j < je; j++) mpyml_sb_add8(acc + 8u * r[j], val + 8u * j, xv);                        \
            } else {                                                                                         \
                for (; j < je; j++) {                                                                        \
                    uint32_t *a = acc + 16u * r[j];                                                          \
                    const int8_t *w = val + 16u * j;                                                         \
                    mpyml_sb_add8(a, w, xv);                                                                 \
                    mpyml_sb_add8(a + 8, w + 8, xv);                                                         \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
    }
#else
#define MPYML_SB_COLS(name, row_t)                                                                            \
    static inline void name(uint32_t *MPYML_SB_RESTRICT acc, const int8_t *MPYML_SB_RESTRICT val,            \
        const row_t *MPYML_SB_RESTRICT r, const int32_t *MPYML_SB_RESTRICT cp, const int8_t *MPYML_SB_RESTRICT x, \
        uint32_t n, int32_t off, uint32_t bs)                                                                \
    {                                                                                                        \
        for (uint32_t k = 0; k < n; k++) {                                                                   \
            const int32_t xo = x[k] + off;                                                                   \
            if (xo == 0) continue;                                                                           \
            for (uint32_t j = (uint32_t)cp[k]; j < (uint32_t)cp[k + 1]; j++) {                               \
                uint32_t *a = acc + bs * r[j];                                                               \
                const int8_t *w = val + bs * j;                                                              \
                for (uint32_t i = 0; i < bs; i += 4) {       /* bs is 4, 8 or 16 */                          \
                    const int32_t p0 = w[i] * xo, p1 = w[i + 1] * xo, p2 = w[i + 2] * xo, p3 = w[i + 3] * xo; \
                    a[i] += (uint32_t)p0;                                                                    \
                    a[i + 1] += (uint32_t)p1;                                                                \
                    a[i + 2] += (uint32_t)p2;                                                                \
                    a[i + 3] += (uint32_t)p3;                                                                \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
    }
#endif
MPYML_SB_COLS(mpyml_sparse_blocks_u8, uint8_t)
MPYML_SB_COLS(mpyml_sparse_blocks_u16, uint16_t)
#undef MPYML_SB_COLS

#endif /* MPYML_SPARSE_BLOCK_H */
