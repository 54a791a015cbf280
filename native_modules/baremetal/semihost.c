/* semihost.c - line-buffered console output and exit through ARM semihosting (see semihost.h). */
#include "semihost.h"

static char line_buf[256];
static uint32_t line_len;

void sh_flush(void)
{
    if (line_len == 0) {
        return;
    }
    line_buf[line_len] = '\0';
    sh_call(SH_SYS_WRITE0, line_buf);
    line_len = 0;
}

static void put_char(char c)
{
    line_buf[line_len++] = c;
    if (c == '\n' || line_len == sizeof(line_buf) - 1) {
        sh_flush();
    }
}

void sh_puts(const char *s)
{
    while (*s) {
        put_char(*s++);
    }
}

void sh_put_u32(uint32_t v)
{
    char tmp[11];
    int n = 0;
    do {
        /* no divide instruction on ARMv6-M: libgcc's __aeabi_uidiv is fine here (not in the hot path) */
        tmp[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0);
    while (n > 0) {
        put_char(tmp[--n]);
    }
}

void sh_put_i32(int32_t v)
{
    if (v < 0) {
        put_char('-');
        sh_put_u32(0u - (uint32_t)v);
    } else {
        sh_put_u32((uint32_t)v);
    }
}

static const char hex_digits[] = "0123456789abcdef";

void sh_put_hex32(uint32_t v)
{
    put_char('0');
    put_char('x');
    for (int sh = 28; sh >= 0; sh -= 4) {
        put_char(hex_digits[(v >> sh) & 15u]);
    }
}

void sh_put_hexbytes(const uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        put_char(hex_digits[p[i] >> 4]);
        put_char(hex_digits[p[i] & 15u]);
    }
}

void sh_exit(uint32_t status)
{
    sh_flush();
    const uint32_t block[2] = {SH_ADP_APPLICATION_EXIT, status};
    sh_call(SH_SYS_EXIT_EXTENDED, block);
    /* a host without SYS_EXIT_EXTENDED: plain exit (status lost, the END line still carries it) */
    sh_call(SH_SYS_EXIT, (const void *)(uintptr_t)SH_ADP_APPLICATION_EXIT);
    for (;;) {
    }
}
