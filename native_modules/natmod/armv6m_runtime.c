/*
 * armv6m_runtime.c - the few libgcc helpers Cortex-M0 code needs, for the natmod build only.
 *
 * The v1.23 natmod linker (mpy_ld) links no libgcc, and Cortex-M0 has no divide instruction,
 * so integer division compiles to calls of __aeabi_uidiv/__aeabi_idiv(mod). Compiled only when
 * ARCH=armv6m; shift-subtract division, no writable data. 64-bit multiplies (__aeabi_lmul)
 * are likewise built from 32-bit multiplies here.
 */
#if defined(__ARM_ARCH_6M__)
#include <stdint.h>

static uint64_t udivmod32(uint32_t n, uint32_t d) {
    uint32_t q = 0, r = 0;
    if (d == 0) {
        return 0; /* the engine never divides by zero (validated); keep it defined anyway */
    }
    for (int i = 31; i >= 0; i--) {
        r = (r << 1) | ((n >> i) & 1u);
        if (r >= d) {
            r -= d;
            q |= 1u << i;
        }
    }
    return ((uint64_t)r << 32) | q; /* quotient in r0, remainder in r1 */
}

uint64_t __aeabi_uidivmod(uint32_t n, uint32_t d) {
    return udivmod32(n, d);
}

uint32_t __aeabi_uidiv(uint32_t n, uint32_t d) {
    return (uint32_t)udivmod32(n, d);
}

uint64_t __aeabi_idivmod(int32_t n, int32_t d) {
    uint32_t un = n < 0 ? 0u - (uint32_t)n : (uint32_t)n;
    uint32_t ud = d < 0 ? 0u - (uint32_t)d : (uint32_t)d;
    uint64_t qr = udivmod32(un, ud);
    uint32_t q = (uint32_t)qr, r = (uint32_t)(qr >> 32);
    if ((n < 0) != (d < 0)) {
        q = 0u - q;
    }
    if (n < 0) {
        r = 0u - r;
    }
    return ((uint64_t)r << 32) | q;
}

int32_t __aeabi_idiv(int32_t n, int32_t d) {
    return (int32_t)(uint32_t)__aeabi_idivmod(n, d);
}

/* 32x32 -> 64 unsigned multiply from 16-bit halves (Cortex-M0 MULS is 32x32 -> 32). */
static uint64_t umul32x32(uint32_t a, uint32_t b) {
    uint32_t a0 = a & 0xFFFFu, a1 = a >> 16, b0 = b & 0xFFFFu, b1 = b >> 16;
    uint32_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint32_t mid = (p00 >> 16) + (p01 & 0xFFFFu) + (p10 & 0xFFFFu);
    uint32_t lo = (p00 & 0xFFFFu) | (mid << 16);
    uint32_t hi = p11 + (p01 >> 16) + (p10 >> 16) + (mid >> 16);
    return ((uint64_t)hi << 32) | lo;
}

/* 64x64 -> 64 multiply (same bits for signed and unsigned). */
uint64_t __aeabi_lmul(uint64_t a, uint64_t b) {
    uint32_t al = (uint32_t)a, ah = (uint32_t)(a >> 32), bl = (uint32_t)b, bh = (uint32_t)(b >> 32);
    uint32_t cross = al * bh + ah * bl;
    return umul32x32(al, bl) + ((uint64_t)cross << 32);
}
#else
typedef int mpyml_armv6m_runtime_unused; /* ISO C forbids an empty translation unit */
#endif
