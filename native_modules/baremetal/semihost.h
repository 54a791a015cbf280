/*
 * semihost.h - the few ARM semihosting calls the bare-metal harness needs (no newlib rdimon).
 *
 * A semihosting call on M-profile is `BKPT 0xAB` with the operation in r0 and an argument in r1;
 * the debugger (here QEMU, -semihosting-config enable=on,target=native) performs it and returns
 * in r0. On real hardware without a debugger attached BKPT faults, so this is for QEMU / debug probes.
 */
#ifndef MPYML_BM_SEMIHOST_H
#define MPYML_BM_SEMIHOST_H

#include <stdint.h>

#define SH_SYS_WRITE0 0x04u         /* write a NUL-terminated string to the debug console */
#define SH_SYS_EXIT 0x18u           /* stop; r1 = reason (A32/T32: no status code) */
#define SH_SYS_EXIT_EXTENDED 0x20u  /* stop; r1 -> {reason, status code} (semihosting v2) */
#define SH_ADP_APPLICATION_EXIT 0x20026u

static inline uint32_t sh_call(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* Console output, buffered by line (one semihosting trap per line, not per character). */
void sh_puts(const char *s);                 /* append text; flushes at '\n' or when the buffer is full */
void sh_put_u32(uint32_t v);                 /* decimal */
void sh_put_i32(int32_t v);                  /* decimal, signed */
void sh_put_hex32(uint32_t v);               /* 0x%08x */
void sh_put_hexbytes(const uint8_t *p, uint32_t n);  /* two lower-case hex digits per byte, no separator */
void sh_flush(void);

/* Exit QEMU with a status code (0..255); does not return. */
void sh_exit(uint32_t status) __attribute__((noreturn));

#endif /* MPYML_BM_SEMIHOST_H */
