/*
 * ed25519_verify.c - Ed25519 verification (RFC 8032) with SHA-512, for signed models.
 *
 * Field arithmetic after TweetNaCl (public domain; Bernstein, van Gastel, Janssen, Lange, Schwabe,
 * Smetsers): GF(2^255-19) elements as 16 signed 16-bit limbs in int64, products of 32-bit limbs.
 * Verification computes [S]B + [h](-A) with one shared double-and-add chain (Straus/Shamir; not constant
 * time, it only handles public data) and compares its encoding with R. Rejects S >= L (RFC 8032 5.1.7).
 * No libc, no writable globals, no division; 64-bit multiplies only (__aeabi_lmul on Cortex-M0).
 */
#include "ed25519_verify.h"

#if defined(__GNUC__)
#define MPYML_NOINLINE __attribute__((noinline))
#else
#define MPYML_NOINLINE
#endif

typedef int64_t gf[16];

static const gf GF0 = {0};
static const gf GF1 = {1};
static const gf ED_D = {0x78a3, 0x1359, 0x4dca, 0x75eb, 0xd8ab, 0x4141, 0x0a4d, 0x0070,
                        0xe898, 0x7779, 0x4079, 0x8cc7, 0xfe73, 0x2b6f, 0x6cee, 0x5203};
static const gf ED_D2 = {0xf159, 0x26b2, 0x9b94, 0xebd6, 0xb156, 0x8283, 0x149a, 0x00e0,
                         0xd130, 0xeef3, 0x80f2, 0x198e, 0xfce7, 0x56df, 0xd9dc, 0x2406};
static const gf ED_I = {0xa0b0, 0x4a0e, 0x1b27, 0xc4ee, 0xe478, 0xad2f, 0x1806, 0x2f43,
                        0xd7a7, 0x3dfb, 0x0099, 0x2b4d, 0xdf0b, 0x4fc1, 0x2480, 0x2b83};
typedef gf ge[4]; /* X, Y, Z, T with x = X/Z, y = Y/Z, xy = T/Z */

/* the base point B in extended coordinates (T = X * Y) */
static const ge ED_B = {
    {0xd51a, 0x8f25, 0x2d60, 0xc956, 0xa7b2, 0x9525, 0xc760, 0x692c,
     0xdc5c, 0xfdd6, 0xe231, 0xc0a4, 0x53fe, 0xcd6e, 0x36d3, 0x2169},
    {0x6658, 0x6666, 0x6666, 0x6666, 0x6666, 0x6666, 0x6666, 0x6666,
     0x6666, 0x6666, 0x6666, 0x6666, 0x6666, 0x6666, 0x6666, 0x6666},
    {1},
    {0xdda3, 0xa5b7, 0x8ab3, 0x6dde, 0x52f5, 0x7751, 0x9f80, 0x20f0,
     0xe37d, 0x64ab, 0x4e8e, 0x66ea, 0x7665, 0xd78b, 0x5f0f, 0x6787},
};
/* the group order L = 2^252 + 27742317777372353535851937790883648493, little-endian bytes */
static const int64_t ED_L[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2,
                                 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};

/* ------------------------------------------------------------------ SHA-512 */

static const uint64_t SHA512_K[80] = {
    0x428a2f98d728ae22ULL, 0x7137449123ef65cdULL, 0xb5c0fbcfec4d3b2fULL, 0xe9b5dba58189dbbcULL,
    0x3956c25bf348b538ULL, 0x59f111f1b605d019ULL, 0x923f82a4af194f9bULL, 0xab1c5ed5da6d8118ULL,
    0xd807aa98a3030242ULL, 0x12835b0145706fbeULL, 0x243185be4ee4b28cULL, 0x550c7dc3d5ffb4e2ULL,
    0x72be5d74f27b896fULL, 0x80deb1fe3b1696b1ULL, 0x9bdc06a725c71235ULL, 0xc19bf174cf692694ULL,
    0xe49b69c19ef14ad2ULL, 0xefbe4786384f25e3ULL, 0x0fc19dc68b8cd5b5ULL, 0x240ca1cc77ac9c65ULL,
    0x2de92c6f592b0275ULL, 0x4a7484aa6ea6e483ULL, 0x5cb0a9dcbd41fbd4ULL, 0x76f988da831153b5ULL,
    0x983e5152ee66dfabULL, 0xa831c66d2db43210ULL, 0xb00327c898fb213fULL, 0xbf597fc7beef0ee4ULL,
    0xc6e00bf33da88fc2ULL, 0xd5a79147930aa725ULL, 0x06ca6351e003826fULL, 0x142929670a0e6e70ULL,
    0x27b70a8546d22ffcULL, 0x2e1b21385c26c926ULL, 0x4d2c6dfc5ac42aedULL, 0x53380d139d95b3dfULL,
    0x650a73548baf63deULL, 0x766a0abb3c77b2a8ULL, 0x81c2c92e47edaee6ULL, 0x92722c851482353bULL,
    0xa2bfe8a14cf10364ULL, 0xa81a664bbc423001ULL, 0xc24b8b70d0f89791ULL, 0xc76c51a30654be30ULL,
    0xd192e819d6ef5218ULL, 0xd69906245565a910ULL, 0xf40e35855771202aULL, 0x106aa07032bbd1b8ULL,
    0x19a4c116b8d2d0c8ULL, 0x1e376c085141ab53ULL, 0x2748774cdf8eeb99ULL, 0x34b0bcb5e19b48a8ULL,
    0x391c0cb3c5c95a63ULL, 0x4ed8aa4ae3418acbULL, 0x5b9cca4f7763e373ULL, 0x682e6ff3d6b2b8a3ULL,
    0x748f82ee5defb2fcULL, 0x78a5636f43172f60ULL, 0x84c87814a1f0ab72ULL, 0x8cc702081a6439ecULL,
    0x90befffa23631e28ULL, 0xa4506cebde82bde9ULL, 0xbef9a3f7b2c67915ULL, 0xc67178f2e372532bULL,
    0xca273eceea26619cULL, 0xd186b8c721c0c207ULL, 0xeada7dd6cde0eb1eULL, 0xf57d4f7fee6ed178ULL,
    0x06f067aa72176fbaULL, 0x0a637dc5a2c898a6ULL, 0x113f9804bef90daeULL, 0x1b710b35131c471bULL,
    0x28db77f523047d84ULL, 0x32caab7b40c72493ULL, 0x3c9ebe0a15c9bebcULL, 0x431d67c49c100d4cULL,
    0x4cc5d4becb3e42b6ULL, 0x597f299cfc657e2aULL, 0x5fcb6fab3ad6faecULL, 0x6c44198c4a475817ULL,
};

static const uint64_t SHA512_IV[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

#define ROR64(x, n) (((x) >> (n)) | ((x) << (64 - (n))))

static uint64_t load_be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static void store_be64(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static void sha512_block(uint64_t h[8], const uint8_t *blk) {
    uint64_t w[16];
    uint64_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 16; i++) {
        w[i] = load_be64(blk + 8 * i);
    }
    for (int i = 0; i < 80; i++) {
        uint64_t wi;
        if (i < 16) {
            wi = w[i];
        } else {
            uint64_t w15 = w[(i - 15) & 15], w2 = w[(i - 2) & 15];
            uint64_t s0 = ROR64(w15, 1) ^ ROR64(w15, 8) ^ (w15 >> 7);
            uint64_t s1 = ROR64(w2, 19) ^ ROR64(w2, 61) ^ (w2 >> 6);
            wi = w[i & 15] = w[i & 15] + s0 + w[(i - 7) & 15] + s1;
        }
        uint64_t t1 = k + (ROR64(e, 14) ^ ROR64(e, 18) ^ ROR64(e, 41)) + ((e & f) ^ (~e & g)) + SHA512_K[i] + wi;
        uint64_t t2 = (ROR64(a, 28) ^ ROR64(a, 34) ^ ROR64(a, 39)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

void mpyml_sha512_init(mpyml_sha512_t *s) {
    for (int i = 0; i < 8; i++) {
        s->h[i] = SHA512_IV[i];
    }
    s->total = 0;
    s->fill = 0;
}

void mpyml_sha512_update(mpyml_sha512_t *s, const uint8_t *data, size_t len) {
    s->total += len;
    while (len > 0) {
        if (s->fill == 0 && len >= 128) {
            sha512_block(s->h, data);
            data += 128;
            len -= 128;
            continue;
        }
        uint32_t n = 128 - s->fill;
        if (n > len) {
            n = (uint32_t)len;
        }
        for (uint32_t i = 0; i < n; i++) {
            s->buf[s->fill + i] = data[i];
        }
        s->fill += n;
        data += n;
        len -= n;
        if (s->fill == 128) {
            sha512_block(s->h, s->buf);
            s->fill = 0;
        }
    }
}

void mpyml_sha512_final(mpyml_sha512_t *s, uint8_t out[64]) {
    uint64_t bits = s->total << 3;
    uint32_t i = s->fill;
    s->buf[i++] = 0x80;
    if (i > 112) {
        while (i < 128) {
            s->buf[i++] = 0;
        }
        sha512_block(s->h, s->buf);
        i = 0;
    }
    while (i < 120) {
        s->buf[i++] = 0; /* the high 64 bits of the 128-bit length are zero */
    }
    store_be64(s->buf + 120, bits);
    sha512_block(s->h, s->buf);
    for (i = 0; i < 8; i++) {
        store_be64(out + 8 * i, s->h[i]);
    }
}

void mpyml_sha512(const uint8_t *data, size_t len, uint8_t out[64]) {
    mpyml_sha512_t s;
    mpyml_sha512_init(&s);
    mpyml_sha512_update(&s, data, len);
    mpyml_sha512_final(&s, out);
}

/* ------------------------------------------------------------------ GF(2^255 - 19) */

static void gf_set(gf r, const gf a) {
    for (int i = 0; i < 16; i++) {
        r[i] = a[i];
    }
}

/* carry: limbs 1..15 to [0, 2^16), the top carry folded into limb 0 (2^256 = 38 mod p) */
static void gf_car(gf o) {
    for (int i = 0; i < 16; i++) {
        int64_t c = o[i] >> 16; /* arithmetic shift: floor(o[i] / 2^16) */
        o[i] &= 0xffff;
        if (i < 15) {
            o[i + 1] += c;
        } else {
            o[0] += 38 * c;
        }
    }
}

static void gf_add(gf o, const gf a, const gf b) {
    for (int i = 0; i < 16; i++) {
        o[i] = a[i] + b[i];
    }
}

static void gf_sub(gf o, const gf a, const gf b) {
    for (int i = 0; i < 16; i++) {
        o[i] = a[i] - b[i];
    }
}

/* Limbs entering a product are below 2^20 in magnitude (outputs of gf_mul, sums/differences of two),
 * so 32-bit x 32-bit -> 64-bit products suffice (one SMULL on ARMv7-M). */
static void gf_mul(gf o, const gf a, const gf b) {
    int64_t t[31];
    for (int i = 0; i < 31; i++) {
        t[i] = 0;
    }
    for (int i = 0; i < 16; i++) {
        int32_t ai = (int32_t)a[i];
        for (int j = 0; j < 16; j++) {
            t[i + j] += (int64_t)ai * (int32_t)b[j];
        }
    }
    for (int i = 0; i < 15; i++) {
        t[i] += 38 * t[i + 16];
    }
    for (int i = 0; i < 16; i++) {
        o[i] = t[i];
    }
    gf_car(o);
    gf_car(o);
}

static void gf_sq(gf o, const gf a) {
    gf_mul(o, a, a);
}

/* a^(2^252 - 3) (for the square root in decompression) */
static void gf_pow2523(gf o, const gf in) {
    gf c;
    gf_set(c, in);
    for (int a = 250; a >= 0; a--) {
        gf_sq(c, c);
        if (a != 1) {
            gf_mul(c, c, in);
        }
    }
    gf_set(o, c);
}

/* a^(p - 2) = 1/a */
static void gf_inv(gf o, const gf in) {
    gf c;
    gf_set(c, in);
    for (int a = 253; a >= 0; a--) {
        gf_sq(c, c);
        if (a != 2 && a != 4) {
            gf_mul(c, c, in);
        }
    }
    gf_set(o, c);
}

/* the canonical 32-byte little-endian encoding */
static void gf_pack(uint8_t out[32], const gf n) {
    gf t, m;
    gf_set(t, n);
    gf_car(t);
    gf_car(t);
    gf_car(t);
    for (int j = 0; j < 2; j++) {
        m[0] = t[0] - 0xffed;
        for (int i = 1; i < 15; i++) {
            m[i] = t[i] - 0xffff - ((m[i - 1] >> 16) & 1);
            m[i - 1] &= 0xffff;
        }
        m[15] = t[15] - 0x7fff - ((m[14] >> 16) & 1);
        int borrow = (int)((m[15] >> 16) & 1);
        m[14] &= 0xffff;
        if (!borrow) {
            gf_set(t, m); /* t >= p: take t - p */
        }
    }
    for (int i = 0; i < 16; i++) {
        out[2 * i] = (uint8_t)(t[i] & 0xff);
        out[2 * i + 1] = (uint8_t)((t[i] >> 8) & 0xff);
    }
}

static int bytes_eq32(const uint8_t *a, const uint8_t *b) {
    unsigned d = 0;
    for (int i = 0; i < 32; i++) {
        d |= (unsigned)(a[i] ^ b[i]);
    }
    return d == 0;
}

static int gf_eq(const gf a, const gf b) {
    uint8_t x[32], y[32];
    gf_pack(x, a);
    gf_pack(y, b);
    return bytes_eq32(x, y);
}

static int gf_parity(const gf a) {
    uint8_t d[32];
    gf_pack(d, a);
    return d[0] & 1;
}

static void gf_unpack(gf o, const uint8_t n[32]) {
    for (int i = 0; i < 16; i++) {
        o[i] = (int64_t)n[2 * i] + ((int64_t)n[2 * i + 1] << 8);
    }
    o[15] &= 0x7fff;
}

/* ------------------------------------------------------------------ the curve (extended coordinates) */

/* a point as a const argument (C99 has no implicit gf[4] -> const gf[4] conversion) */
#define GE_C(p) ((const gf *)(p))

/* p += q (the unified twisted-Edwards addition: also doubles, also with the neutral element) */
static void ge_add(ge p, const ge q) {
    gf a, b, c, d, t, e, f, g, h;
    gf_sub(a, p[1], p[0]);
    gf_sub(t, q[1], q[0]);
    gf_mul(a, a, t);
    gf_add(b, p[0], p[1]);
    gf_add(t, q[0], q[1]);
    gf_mul(b, b, t);
    gf_mul(c, p[3], q[3]);
    gf_mul(c, c, ED_D2);
    gf_mul(d, p[2], q[2]);
    gf_add(d, d, d);
    gf_sub(e, b, a);
    gf_sub(f, d, c);
    gf_add(g, d, c);
    gf_add(h, b, a);
    gf_mul(p[0], e, f);
    gf_mul(p[1], h, g);
    gf_mul(p[2], g, f);
    gf_mul(p[3], e, h);
}

static void ge_copy(ge r, const ge p) {
    for (int i = 0; i < 4; i++) {
        gf_set(r[i], p[i]);
    }
}

static void ge_pack(uint8_t out[32], const ge p) {
    gf zi, tx, ty;
    gf_inv(zi, p[2]);
    gf_mul(tx, p[0], zi);
    gf_mul(ty, p[1], zi);
    gf_pack(out, ty);
    out[31] ^= (uint8_t)(gf_parity(tx) << 7);
}

/* r = -A for the encoding p of A; 0 if p is not a point */
static int ge_unpack_neg(ge r, const uint8_t p[32]) {
    gf t, chk, num, den, den2, den4, den6;
    gf_set(r[2], GF1);
    gf_unpack(r[1], p);
    gf_sq(num, r[1]);
    gf_mul(den, num, ED_D);
    gf_sub(num, num, r[2]);
    gf_add(den, r[2], den);
    gf_sq(den2, den);
    gf_sq(den4, den2);
    gf_mul(den6, den4, den2);
    gf_mul(t, den6, num);
    gf_mul(t, t, den);
    gf_pow2523(t, t);
    gf_mul(t, t, num);
    gf_mul(t, t, den);
    gf_mul(t, t, den);
    gf_mul(r[0], t, den);
    gf_sq(chk, r[0]);
    gf_mul(chk, chk, den);
    if (!gf_eq(chk, num)) {
        gf_mul(r[0], r[0], ED_I);
    }
    gf_sq(chk, r[0]);
    gf_mul(chk, chk, den);
    if (!gf_eq(chk, num)) {
        return 0;
    }
    if (gf_parity(r[0]) == (p[31] >> 7)) {
        gf_sub(r[0], GF0, r[0]);
    }
    gf_mul(r[3], r[0], r[1]);
    return 1;
}

/* ------------------------------------------------------------------ scalars mod L */

/* r = x mod L, x: 64 limbs of 8 bits (TweetNaCl's modL) */
static void sc_reduce(uint8_t r[32], int64_t x[64]) {
    int64_t carry;
    int i, j;
    for (i = 63; i >= 32; --i) {
        carry = 0;
        for (j = i - 32; j < i - 12; ++j) {
            x[j] += carry - 16 * x[i] * ED_L[j - (i - 32)];
            carry = (x[j] + 128) >> 8;
            x[j] -= carry * 256;
        }
        x[j] += carry;
        x[i] = 0;
    }
    carry = 0;
    for (j = 0; j < 32; j++) {
        x[j] += carry - (x[31] >> 4) * ED_L[j];
        carry = x[j] >> 8;
        x[j] &= 255;
    }
    for (j = 0; j < 32; j++) {
        x[j] -= carry * ED_L[j];
    }
    for (i = 0; i < 32; i++) {
        x[i + 1] += x[i] >> 8;
        r[i] = (uint8_t)(x[i] & 255);
    }
}

/* s < L (little-endian compare) */
static int sc_is_canonical(const uint8_t s[32]) {
    for (int i = 31; i >= 0; i--) {
        if (s[i] != ED_L[i]) {
            return s[i] < ED_L[i];
        }
    }
    return 0; /* s == L */
}

static int bit_at(const uint8_t *s, int i) {
    return (s[i >> 3] >> (i & 7)) & 1;
}

/* k = SHA-512(R || A || M) mod L; its own frame (noinline), released before the point arithmetic */
MPYML_NOINLINE static void hram_mod_l(uint8_t k[32], const uint8_t *sig, const uint8_t *pubkey,
    const uint8_t *msg, size_t len) {
    uint8_t hram[64];
    int64_t x[64];
    mpyml_sha512_t h;
    mpyml_sha512_init(&h);
    mpyml_sha512_update(&h, sig, 32);
    mpyml_sha512_update(&h, pubkey, 32);
    mpyml_sha512_update(&h, msg, len);
    mpyml_sha512_final(&h, hram);
    for (int i = 0; i < 64; i++) {
        x[i] = hram[i];
    }
    sc_reduce(k, x);
}

int mpyml_ed25519_verify(const uint8_t pubkey[32], const uint8_t *msg, size_t len, const uint8_t sig[64]) {
    ge neg_a, both, acc;
    uint8_t k[32], check[32];
    if (!sc_is_canonical(sig + 32) || !ge_unpack_neg(neg_a, pubkey)) {
        return 0;
    }
    hram_mod_l(k, sig, pubkey, msg, len);
    /* acc = [S]B + [k](-A), one double-and-add chain over both scalars */
    ge_copy(both, ED_B);
    ge_add(both, GE_C(neg_a));
    gf_set(acc[0], GF0);
    gf_set(acc[1], GF1);
    gf_set(acc[2], GF1);
    gf_set(acc[3], GF0);
    const uint8_t *s = sig + 32;
    int started = 0;
    for (int i = 255; i >= 0; i--) {
        int bs = bit_at(s, i), bk = bit_at(k, i);
        if (started) {
            ge_add(acc, GE_C(acc));
        }
        if (bs && bk) {
            ge_add(acc, GE_C(both));
        } else if (bs) {
            ge_add(acc, ED_B);
        } else if (bk) {
            ge_add(acc, GE_C(neg_a));
        }
        started |= bs | bk;
    }
    ge_pack(check, GE_C(acc));
    return bytes_eq32(check, sig);
}
