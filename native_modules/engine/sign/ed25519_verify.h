/*
 * ed25519_verify.h - Ed25519 signature verification (RFC 8032, PureEd25519) and SHA-512 (FIPS 180-4).
 *
 * Portable C99, no libc, no writable globals, no 64-bit division. Verification only (the board holds a
 * public key; signing happens on the host). Not constant time: it checks public data only.
 * Stack: about 4 KB during mpyml_ed25519_verify.
 */
#ifndef MPYML_ED25519_VERIFY_H
#define MPYML_ED25519_VERIFY_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t h[8];
    uint64_t total;       /* bytes hashed so far (messages < 2^61 bytes) */
    uint8_t buf[128];
    uint32_t fill;
} mpyml_sha512_t;

void mpyml_sha512_init(mpyml_sha512_t *s);
void mpyml_sha512_update(mpyml_sha512_t *s, const uint8_t *data, size_t len);
void mpyml_sha512_final(mpyml_sha512_t *s, uint8_t out[64]);
void mpyml_sha512(const uint8_t *data, size_t len, uint8_t out[64]);

/* 1 if sig is a valid Ed25519 signature of msg[0:len] by pubkey, else 0 (also for a malformed key,
 * a non-canonical S >= L, or R/A not on the curve). */
int mpyml_ed25519_verify(const uint8_t pubkey[32], const uint8_t *msg, size_t len, const uint8_t sig[64]);

#endif /* MPYML_ED25519_VERIFY_H */
