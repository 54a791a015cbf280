/*
 * sign_main.c - bare-metal harness for the Ed25519 verifier (native_modules/engine/sign), for exact
 * instruction counts under QEMU (tools/sign_icount.py). Linked instead of main.c, with startup.c,
 * semihost.c and blobs.S, whose "model" blob is here [public key 32][signature 64][message].
 * The verify call is bracketed by bm_mark_begin / bm_mark_end (the counting window); a second call with
 * one signature bit flipped must fail (outside the window).
 *   SIGN ok=<0|1> tampered=<0|1> message=<bytes>   then STACK used=<bytes> size=<bytes>, END status=<s>
 * Exit status 0 when the signature verifies and the tampered one does not, 1 otherwise, 2 for a short blob.
 */
#include <stdint.h>
#include <string.h>
#include "sign/ed25519_verify.h"
#include "semihost.h"

extern const uint8_t bm_model[], bm_model_end[];
uint32_t bm_stack_used(void);
uint32_t bm_stack_size(void);

volatile uint32_t bm_window;

__attribute__((noinline, noipa)) void bm_mark_begin(void)
{
    bm_window = 1;
}

__attribute__((noinline, noipa)) void bm_mark_end(void)
{
    bm_window = 2;
}

int main(void)
{
    const uint8_t *p = bm_model;
    const size_t n = (size_t)(bm_model_end - bm_model);
    int status = 2, ok = 0, tampered = 1;
    if (n >= 96) {
        bm_mark_begin();
        ok = mpyml_ed25519_verify(p, p + 96, n - 96, p + 32);
        bm_mark_end();
        uint8_t sig[64];
        memcpy(sig, p + 32, 64);
        sig[7] ^= 0x20;
        tampered = mpyml_ed25519_verify(p, p + 96, n - 96, sig);
        status = (ok && !tampered) ? 0 : 1;
    }
    sh_puts("SIGN ok=");
    sh_put_u32((uint32_t)ok);
    sh_puts(" tampered=");
    sh_put_u32((uint32_t)tampered);
    sh_puts(" message=");
    sh_put_u32(n >= 96 ? (uint32_t)(n - 96) : 0);
    sh_puts("\nSTACK used=");
    sh_put_u32(bm_stack_used());
    sh_puts(" size=");
    sh_put_u32(bm_stack_size());
    sh_puts("\nEND status=");
    sh_put_u32((uint32_t)status);
    sh_puts("\n");
    return status;
}
