/*
 * pre.h - preprocessing kernels of mpyml: image crop/resize/convert/quantize, fixed-point
 * log-mel / MFCC, feature quantization. Portable C99, no MicroPython headers.
 *
 * Rules (MicroPython native-module build): integer-only, no malloc, no writable globals/BSS,
 * only 32-bit arithmetic (armv6m has no 64-bit multiply in the natmod link: products wider than
 * 32 bits are built from 16-bit halves). All tables come in the caller's buffers (the "plan"
 * built by device/mpyml/pre/audio.py), so there is nothing to keep in sync between C and the
 * pure-MicroPython fallback (device/mpyml/pre/_fallback.py), which computes the same integers
 * bit for bit: every step is an exact floor of an exact product.
 * Right shifts of negative values are arithmetic (as on every compiler the project supports).
 */
#ifndef MPYML_PRE_H
#define MPYML_PRE_H

#include <stddef.h>
#include <stdint.h>

/* status codes */
#define MPYML_PRE_OK 0
#define MPYML_PRE_E_PLAN 1      /* plan buffer invalid (magic, sizes, offsets) */
#define MPYML_PRE_E_SIZE 2      /* a buffer is too small for what the call needs */
#define MPYML_PRE_E_PARAM 3     /* params out of range */
#define MPYML_PRE_E_ALIGN 4     /* plan/int32 buffer not 4-byte aligned */

/* element types of generic buffers (from the MicroPython buffer typecode) */
#define MPYML_PRE_T_U8 0
#define MPYML_PRE_T_I8 1
#define MPYML_PRE_T_I16 2
#define MPYML_PRE_T_U16 3
#define MPYML_PRE_T_I32 4

#define MPYML_PRE_NEG (-(1 << 30))   /* log-mel of an empty band */

/* plan header (int32 words); offsets are in bytes from the start of the plan */
#define MPYML_PLAN_MAGIC 0x4D464331
enum {
    PL_MAGIC, PL_FRAME_LEN, PL_FFT_LEN, PL_N_MELS, PL_N_MFCC, PL_MAG_BITS, PL_DCT_SHIFT, PL_LOG2_EPS,
    PL_OFF_WINDOW, PL_OFF_COS, PL_OFF_SIN, PL_OFF_MEL_START, PL_OFF_MEL_LEN, PL_OFF_MEL_W, PL_OFF_DCT,
    PL_OFF_LOG2TAB, PL_OFF_SPTAB, PL_N_SP, PL_N_WEIGHTS, PL_SIZE, PL__COUNT
};

/* floor(a * b / 2^s) for any int32 a, b and 0 <= s <= 62, when the result fits in int32 */
int32_t mpyml_pre_mulshift(int32_t a, int32_t b, int s);

/* log2(v) in Q16 for 0 < v < 2^31, from T = log2(1 + i/64) in Q16 (65 entries) */
int32_t mpyml_pre_log2q16(uint32_t v, const int32_t *T);

/* largest element of buf[off:off+n] */
int32_t mpyml_pre_max(const void *buf, int type, size_t off, size_t n);

/* n little-endian int32 samples >> shift, saturated to int16 */
void mpyml_pre_i32_to_i16(const uint8_t *src, int16_t *dst, int shift, size_t n);

/* dst[dst_off + j] = clamp((((src[src_off + j] * m_c) >> 15) + o_c) >> sh2) + zp  (bytes)
 * params: n_ch, sh2, zp, lo, hi, m_0, o_0, m_1, o_1, ...  (c = j % n_ch) */
int mpyml_pre_quant(const void *src, int src_type, size_t src_len, size_t src_off, size_t n,
    uint8_t *dst, size_t dst_len, size_t dst_off, const int32_t *params, size_t n_params);

/* window + 2^k-point real FFT + |X| + mel filterbank + log2 (Q16) of one frame.
 * frame: frame_len int16; out: n_mels int32; scratch: fft_len int32 (4-byte aligned) */
int mpyml_pre_logmel(const uint8_t *plan, size_t plan_len, const int16_t *frame, size_t frame_len,
    int32_t *out, size_t out_len, int32_t *scratch, size_t scratch_len);

/* log2-mel (Q16) - log2max, + epsilon (log-add), DCT-II -> n_mfcc coefficients (Q16, natural log
 * units); n_mfcc == 0: n_mels natural-log mel values. tmp: n_mels int32 */
int mpyml_pre_mfcc(const uint8_t *plan, size_t plan_len, const int32_t *logmel, size_t lm_len,
    int32_t log2max, int32_t *out, size_t out_len, int32_t *tmp, size_t tmp_len);

/* crop + resize + pixel conversion + quantization; params (int32):
 * sw sh sfmt cx cy cw ch dw dh dfmt mode sh2 zp lo hi m_0 o_0 [m_1 o_1 m_2 o_2]
 * formats: 0 gray, 1 RGB565 big-endian, 2 RGB888; dfmt 0 or 2; mode 0 nearest 1 bilinear 2 area */
int mpyml_pre_image(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_len,
    const int32_t *params, size_t n_params);

#endif /* MPYML_PRE_H */
