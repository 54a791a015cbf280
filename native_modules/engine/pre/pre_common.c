/*
 * pre_common.c - integer helpers and the generic kernels (max, int32->int16, feature quantization).
 */
#include "pre.h"

int32_t mpyml_pre_mulshift(int32_t a, int32_t b, int s) {
    /* exact 64-bit product from 16-bit halves (no __aeabi_lmul), then an arithmetic shift of
     * the (hi:lo) pair: floor division for either sign */
    uint32_t ua = a < 0 ? 0u - (uint32_t)a : (uint32_t)a;
    uint32_t ub = b < 0 ? 0u - (uint32_t)b : (uint32_t)b;
    uint32_t a0 = ua & 0xFFFFu, a1 = ua >> 16, b0 = ub & 0xFFFFu, b1 = ub >> 16;
    uint32_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint32_t mid = (p00 >> 16) + (p01 & 0xFFFFu) + (p10 & 0xFFFFu);
    uint32_t lo = (p00 & 0xFFFFu) | (mid << 16);
    uint32_t hi = p11 + (p01 >> 16) + (p10 >> 16) + (mid >> 16);
    if ((a < 0) != (b < 0)) {
        lo = ~lo + 1u;
        hi = ~hi + (lo == 0u ? 1u : 0u);
    }
    if (s == 0) {
        return (int32_t)lo;
    }
    if (s < 32) {
        return (int32_t)((lo >> s) | (hi << (32 - s)));
    }
    return (int32_t)hi >> (s - 32);
}

int32_t mpyml_pre_log2q16(uint32_t v, const int32_t *T) {
    int p = 0;
    while ((v >> (p + 1)) != 0u) {
        p++;
    }
    uint32_t u = v << (30 - p);
    int i = (int)((u >> 24) & 63u);
    int32_t f = (int32_t)((u >> 8) & 0xFFFFu);
    int32_t t = T[i];
    return (int32_t)((uint32_t)p << 16) + t + (((T[i + 1] - t) * f) >> 16);
}

static int32_t get_elem(const void *buf, int type, size_t i) {
    switch (type) {
        case MPYML_PRE_T_I8:
            return ((const int8_t *)buf)[i];
        case MPYML_PRE_T_I16:
            return ((const int16_t *)buf)[i];
        case MPYML_PRE_T_U16:
            return ((const uint16_t *)buf)[i];
        case MPYML_PRE_T_I32:
            return ((const int32_t *)buf)[i];
        default:
            return ((const uint8_t *)buf)[i];
    }
}

int32_t mpyml_pre_max(const void *buf, int type, size_t off, size_t n) {
    int32_t m = get_elem(buf, type, off);
    for (size_t i = off + 1; i < off + n; i++) {
        int32_t v = get_elem(buf, type, i);
        if (v > m) {
            m = v;
        }
    }
    return m;
}

void mpyml_pre_i32_to_i16(const uint8_t *src, int16_t *dst, int shift, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const uint8_t *q = src + 4 * i;
        int32_t v = (int32_t)((uint32_t)q[0] | ((uint32_t)q[1] << 8) | ((uint32_t)q[2] << 16) |
            ((uint32_t)q[3] << 24));
        v >>= shift;
        dst[i] = (int16_t)(v < -32768 ? -32768 : (v > 32767 ? 32767 : v));
    }
}

int mpyml_pre_quant(const void *src, int src_type, size_t src_len, size_t src_off, size_t n,
    uint8_t *dst, size_t dst_len, size_t dst_off, const int32_t *params, size_t n_params) {
    if (n_params < 5) {
        return MPYML_PRE_E_PARAM;
    }
    int32_t nch = params[0], sh2 = params[1], zp = params[2], lo = params[3], hi = params[4];
    if (nch < 1 || sh2 < 0 || sh2 > 30 || n_params < 5 + 2 * (size_t)nch) {
        return MPYML_PRE_E_PARAM;
    }
    if (src_off > src_len || n > src_len - src_off || dst_off > dst_len || n > dst_len - dst_off) {
        return MPYML_PRE_E_SIZE;
    }
    int32_t c = 0;
    for (size_t j = 0; j < n; j++) {
        int32_t x = get_elem(src, src_type, src_off + j);
        int32_t q = ((mpyml_pre_mulshift(x, params[5 + 2 * c], 15) + params[6 + 2 * c]) >> sh2) + zp;
        q = q < lo ? lo : (q > hi ? hi : q);
        dst[dst_off + j] = (uint8_t)q;
        if (++c == nch) {
            c = 0;
        }
    }
    return MPYML_PRE_OK;
}
