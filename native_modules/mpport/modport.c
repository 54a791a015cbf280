/*
 * modport.c - the small modules of the mpyml QEMU port: time, binascii, hashlib (sha256).
 *
 * time: ticks_us/ms/cpu, ticks_diff, ticks_add, sleep, sleep_ms, sleep_us, time, time_ns (from the board's
 * hardware timer, main.c; time() counts from power-on: the boards have no RTC here).
 * binascii: hexlify, unhexlify, a2b_base64, b2a_base64, crc32 (what mpremote and `mpyml deploy` use).
 * hashlib.sha256: FIPS 180-4, update/digest (mpremote and `mpyml deploy` verify copied files with it).
 * mpport.heap_size([n]): this port's own: the heap size, or set the one the next soft reset uses.
 */
#include <string.h>

#include "py/mphal.h"
#include "py/objstr.h"
#include "py/runtime.h"
#include "py/smallint.h"

/* ------------------------------------------------------------------------------------------- time */
#define TICKS_PERIOD (MICROPY_PY_TIME_TICKS_PERIOD)
#define TICKS_MAX (TICKS_PERIOD - 1)
#define TICKS_HALF (TICKS_PERIOD / 2)

static mp_obj_t time_ticks_ms(void) {
    return MP_OBJ_NEW_SMALL_INT(mp_hal_ticks_ms() & TICKS_MAX);
}
static MP_DEFINE_CONST_FUN_OBJ_0(time_ticks_ms_obj, time_ticks_ms);

static mp_obj_t time_ticks_us(void) {
    return MP_OBJ_NEW_SMALL_INT(mp_hal_ticks_us() & TICKS_MAX);
}
static MP_DEFINE_CONST_FUN_OBJ_0(time_ticks_us_obj, time_ticks_us);

static mp_obj_t time_ticks_cpu(void) {
    return MP_OBJ_NEW_SMALL_INT(mp_hal_ticks_us() & TICKS_MAX);
}
static MP_DEFINE_CONST_FUN_OBJ_0(time_ticks_cpu_obj, time_ticks_cpu);

static mp_obj_t time_ticks_diff(mp_obj_t end_in, mp_obj_t start_in) {
    mp_uint_t start = MP_OBJ_SMALL_INT_VALUE(start_in);
    mp_uint_t end = MP_OBJ_SMALL_INT_VALUE(end_in);
    mp_int_t diff = ((end - start + TICKS_HALF) & TICKS_MAX) - TICKS_HALF;
    return MP_OBJ_NEW_SMALL_INT(diff);
}
static MP_DEFINE_CONST_FUN_OBJ_2(time_ticks_diff_obj, time_ticks_diff);

static mp_obj_t time_ticks_add(mp_obj_t ticks_in, mp_obj_t delta_in) {
    mp_uint_t ticks = MP_OBJ_SMALL_INT_VALUE(ticks_in);
    mp_uint_t delta = mp_obj_get_int(delta_in);
    return MP_OBJ_NEW_SMALL_INT((ticks + delta) & TICKS_MAX);
}
static MP_DEFINE_CONST_FUN_OBJ_2(time_ticks_add_obj, time_ticks_add);

static mp_obj_t time_sleep(mp_obj_t s) {
    mp_hal_delay_ms((mp_uint_t)(mp_obj_get_float(s) * 1000));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(time_sleep_obj, time_sleep);

static mp_obj_t time_sleep_ms(mp_obj_t ms) {
    mp_int_t n = mp_obj_get_int(ms);
    if (n > 0) {
        mp_hal_delay_ms(n);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(time_sleep_ms_obj, time_sleep_ms);

static mp_obj_t time_sleep_us(mp_obj_t us) {
    mp_int_t n = mp_obj_get_int(us);
    if (n > 0) {
        mp_hal_delay_us(n);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(time_sleep_us_obj, time_sleep_us);

static mp_obj_t time_time(void) {
    return mp_obj_new_int_from_ull(mp_hal_time_ns() / 1000000000u);
}
static MP_DEFINE_CONST_FUN_OBJ_0(time_time_obj, time_time);

static mp_obj_t time_time_ns(void) {
    return mp_obj_new_int_from_ull(mp_hal_time_ns());
}
static MP_DEFINE_CONST_FUN_OBJ_0(time_time_ns_obj, time_time_ns);

static const mp_rom_map_elem_t time_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_time) },
    { MP_ROM_QSTR(MP_QSTR_ticks_ms), MP_ROM_PTR(&time_ticks_ms_obj) },
    { MP_ROM_QSTR(MP_QSTR_ticks_us), MP_ROM_PTR(&time_ticks_us_obj) },
    { MP_ROM_QSTR(MP_QSTR_ticks_cpu), MP_ROM_PTR(&time_ticks_cpu_obj) },
    { MP_ROM_QSTR(MP_QSTR_ticks_diff), MP_ROM_PTR(&time_ticks_diff_obj) },
    { MP_ROM_QSTR(MP_QSTR_ticks_add), MP_ROM_PTR(&time_ticks_add_obj) },
    { MP_ROM_QSTR(MP_QSTR_sleep), MP_ROM_PTR(&time_sleep_obj) },
    { MP_ROM_QSTR(MP_QSTR_sleep_ms), MP_ROM_PTR(&time_sleep_ms_obj) },
    { MP_ROM_QSTR(MP_QSTR_sleep_us), MP_ROM_PTR(&time_sleep_us_obj) },
    { MP_ROM_QSTR(MP_QSTR_time), MP_ROM_PTR(&time_time_obj) },
    { MP_ROM_QSTR(MP_QSTR_time_ns), MP_ROM_PTR(&time_time_ns_obj) },
};
static MP_DEFINE_CONST_DICT(time_globals, time_globals_table);

const mp_obj_module_t mpport_time_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&time_globals,
};
MP_REGISTER_MODULE(MP_QSTR_time, mpport_time_module);

/* ------------------------------------------------------------------------------------------- binascii */
static mp_obj_t bin_hexlify(size_t n_args, const mp_obj_t *args) {
    mp_buffer_info_t b;
    mp_get_buffer_raise(args[0], &b, MP_BUFFER_READ);
    const char *sep = NULL;
    if (n_args > 1) {
        sep = mp_obj_str_get_str(args[1]);
    }
    vstr_t v;
    vstr_init_len(&v, b.len * 2 + (sep && b.len ? b.len - 1 : 0));
    char *o = v.buf;
    const uint8_t *p = b.buf;
    for (size_t i = 0; i < b.len; i++) {
        if (sep && i) {
            *o++ = sep[0];
        }
        *o++ = "0123456789abcdef"[p[i] >> 4];
        *o++ = "0123456789abcdef"[p[i] & 15];
    }
    return mp_obj_new_bytes_from_vstr(&v);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(bin_hexlify_obj, 1, 2, bin_hexlify);

static int hexval(int c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

static mp_obj_t bin_unhexlify(mp_obj_t data) {
    mp_buffer_info_t b;
    mp_get_buffer_raise(data, &b, MP_BUFFER_READ);
    if (b.len & 1) {
        mp_raise_ValueError(MP_ERROR_TEXT("odd-length string"));
    }
    vstr_t v;
    vstr_init_len(&v, b.len / 2);
    const uint8_t *p = b.buf;
    for (size_t i = 0; i < b.len / 2; i++) {
        int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            mp_raise_ValueError(MP_ERROR_TEXT("non-hex digit found"));
        }
        v.buf[i] = (char)(hi << 4 | lo);
    }
    return mp_obj_new_bytes_from_vstr(&v);
}
static MP_DEFINE_CONST_FUN_OBJ_1(bin_unhexlify_obj, bin_unhexlify);

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64val(int c) {
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

static mp_obj_t bin_a2b_base64(mp_obj_t data) {
    mp_buffer_info_t b;
    mp_get_buffer_raise(data, &b, MP_BUFFER_READ);
    vstr_t v;
    vstr_init(&v, b.len / 4 * 3 + 3);
    const uint8_t *p = b.buf;
    uint32_t acc = 0;
    int bits = 0, pad = 0, n = 0;
    for (size_t i = 0; i < b.len; i++) {
        int c = p[i];
        if (c == '=') {
            pad++;
            n++;
            continue;
        }
        int x = b64val(c);
        if (x < 0) {
            continue; /* skip whitespace and other characters, as CPython's non-strict mode */
        }
        if (pad) {
            mp_raise_ValueError(MP_ERROR_TEXT("incorrect padding"));
        }
        n++;
        acc = acc << 6 | (uint32_t)x;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            vstr_add_byte(&v, (byte)(acc >> bits));
        }
    }
    if (n % 4) {
        mp_raise_ValueError(MP_ERROR_TEXT("incorrect padding"));
    }
    return mp_obj_new_bytes_from_vstr(&v);
}
static MP_DEFINE_CONST_FUN_OBJ_1(bin_a2b_base64_obj, bin_a2b_base64);

static mp_obj_t bin_b2a_base64(size_t n_args, const mp_obj_t *pos, mp_map_t *kw) {
    static const mp_arg_t allowed[] = {
        { MP_QSTR_newline, MP_ARG_KW_ONLY | MP_ARG_BOOL, {.u_bool = true} },
    };
    mp_arg_val_t a[1];
    mp_arg_parse_all(n_args - 1, pos + 1, kw, 1, allowed, a);
    mp_buffer_info_t b;
    mp_get_buffer_raise(pos[0], &b, MP_BUFFER_READ);
    vstr_t v;
    vstr_init(&v, (b.len + 2) / 3 * 4 + 1);
    const uint8_t *p = b.buf;
    for (size_t i = 0; i < b.len; i += 3) {
        uint32_t x = (uint32_t)p[i] << 16;
        if (i + 1 < b.len) {
            x |= (uint32_t)p[i + 1] << 8;
        }
        if (i + 2 < b.len) {
            x |= p[i + 2];
        }
        vstr_add_byte(&v, b64chars[x >> 18 & 63]);
        vstr_add_byte(&v, b64chars[x >> 12 & 63]);
        vstr_add_byte(&v, i + 1 < b.len ? b64chars[x >> 6 & 63] : '=');
        vstr_add_byte(&v, i + 2 < b.len ? b64chars[x & 63] : '=');
    }
    if (a[0].u_bool) {
        vstr_add_byte(&v, '\n');
    }
    return mp_obj_new_bytes_from_vstr(&v);
}
static MP_DEFINE_CONST_FUN_OBJ_KW(bin_b2a_base64_obj, 1, bin_b2a_base64);

static mp_obj_t bin_crc32(size_t n_args, const mp_obj_t *args) {
    mp_buffer_info_t b;
    mp_get_buffer_raise(args[0], &b, MP_BUFFER_READ);
    uint32_t crc = n_args > 1 ? (uint32_t)mp_obj_get_int_truncated(args[1]) : 0;
    crc = ~crc;
    const uint8_t *p = b.buf;
    for (size_t i = 0; i < b.len; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return mp_obj_new_int_from_uint(~crc);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(bin_crc32_obj, 1, 2, bin_crc32);

static const mp_rom_map_elem_t binascii_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_binascii) },
    { MP_ROM_QSTR(MP_QSTR_hexlify), MP_ROM_PTR(&bin_hexlify_obj) },
    { MP_ROM_QSTR(MP_QSTR_unhexlify), MP_ROM_PTR(&bin_unhexlify_obj) },
    { MP_ROM_QSTR(MP_QSTR_a2b_base64), MP_ROM_PTR(&bin_a2b_base64_obj) },
    { MP_ROM_QSTR(MP_QSTR_b2a_base64), MP_ROM_PTR(&bin_b2a_base64_obj) },
    { MP_ROM_QSTR(MP_QSTR_crc32), MP_ROM_PTR(&bin_crc32_obj) },
};
static MP_DEFINE_CONST_DICT(binascii_globals, binascii_globals_table);

const mp_obj_module_t mpport_binascii_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&binascii_globals,
};
MP_REGISTER_MODULE(MP_QSTR_binascii, mpport_binascii_module);

/* ------------------------------------------------------------------------------------------- hashlib */
typedef struct {
    mp_obj_base_t base;
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    uint32_t n;
    bool final;
} sha256_obj_t;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t *h, const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++) {
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    }
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
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
    h[7] += hh;
}

static void sha256_add(sha256_obj_t *s, const uint8_t *p, size_t n) {
    s->len += n;
    while (n) {
        size_t k = 64 - s->n;
        if (k > n) {
            k = n;
        }
        memcpy(s->buf + s->n, p, k);
        s->n += k;
        p += k;
        n -= k;
        if (s->n == 64) {
            sha256_block(s->h, s->buf);
            s->n = 0;
        }
    }
}

static mp_obj_t sha256_update(mp_obj_t self_in, mp_obj_t data) {
    sha256_obj_t *s = MP_OBJ_TO_PTR(self_in);
    if (s->final) {
        mp_raise_ValueError(MP_ERROR_TEXT("hash is final"));
    }
    mp_buffer_info_t b;
    mp_get_buffer_raise(data, &b, MP_BUFFER_READ);
    sha256_add(s, b.buf, b.len);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(sha256_update_obj, sha256_update);

static mp_obj_t sha256_digest(mp_obj_t self_in) {
    sha256_obj_t *s = MP_OBJ_TO_PTR(self_in);
    if (s->final) {
        mp_raise_ValueError(MP_ERROR_TEXT("hash is final"));
    }
    s->final = true;
    uint64_t bits = s->len * 8;
    static const uint8_t pad80 = 0x80;
    static const uint8_t zero[64] = {0};
    sha256_add(s, &pad80, 1);
    sha256_add(s, zero, (s->n <= 56 ? 56 - s->n : 120 - s->n));
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) {
        lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
    }
    sha256_add(s, lenb, 8);
    vstr_t v;
    vstr_init_len(&v, 32);
    for (int i = 0; i < 8; i++) {
        v.buf[4 * i] = (char)(s->h[i] >> 24);
        v.buf[4 * i + 1] = (char)(s->h[i] >> 16);
        v.buf[4 * i + 2] = (char)(s->h[i] >> 8);
        v.buf[4 * i + 3] = (char)s->h[i];
    }
    return mp_obj_new_bytes_from_vstr(&v);
}
static MP_DEFINE_CONST_FUN_OBJ_1(sha256_digest_obj, sha256_digest);

static const mp_rom_map_elem_t sha256_locals_table[] = {
    { MP_ROM_QSTR(MP_QSTR_update), MP_ROM_PTR(&sha256_update_obj) },
    { MP_ROM_QSTR(MP_QSTR_digest), MP_ROM_PTR(&sha256_digest_obj) },
};
static MP_DEFINE_CONST_DICT(sha256_locals, sha256_locals_table);

static mp_obj_t sha256_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw, const mp_obj_t *args);

static MP_DEFINE_CONST_OBJ_TYPE(sha256_type, MP_QSTR_sha256, MP_TYPE_FLAG_NONE,
    make_new, sha256_make_new, locals_dict, &sha256_locals);

static mp_obj_t sha256_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw, const mp_obj_t *args) {
    mp_arg_check_num(n_args, n_kw, 0, 1, false);
    sha256_obj_t *s = mp_obj_malloc(sha256_obj_t, type);
    static const uint32_t h0[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    };
    memcpy(s->h, h0, sizeof(h0));
    s->len = 0;
    s->n = 0;
    s->final = false;
    if (n_args) {
        sha256_update(MP_OBJ_FROM_PTR(s), args[0]);
    }
    return MP_OBJ_FROM_PTR(s);
}

static const mp_rom_map_elem_t hashlib_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_hashlib) },
    { MP_ROM_QSTR(MP_QSTR_sha256), MP_ROM_PTR(&sha256_type) },
};
static MP_DEFINE_CONST_DICT(hashlib_globals, hashlib_globals_table);

const mp_obj_module_t mpport_hashlib_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&hashlib_globals,
};
MP_REGISTER_MODULE(MP_QSTR_hashlib, mpport_hashlib_module);

/* ------------------------------------------------------------------------------------------- mpport */
/* mpport.heap_size([n]): the heap size in bytes; with n, the heap the next soft reset (Ctrl-D) starts with
 * (0: the board's default). Files survive the soft reset (they are outside the heap). */
extern uint32_t _boot_param[];
size_t mpport_heap_size(void);

static mp_obj_t mpport_heap_size_fn(size_t n_args, const mp_obj_t *args) {
    if (n_args) {
        mp_int_t n = mp_obj_get_int(args[0]);
        if (n != 0 && (n < 16 * 1024 || n > 2 * 1024 * 1024)) {
            mp_raise_ValueError(MP_ERROR_TEXT("heap size: 0 (default) or 16K..2M"));
        }
        _boot_param[0] = n ? 0x50414548u : 0;
        _boot_param[1] = (uint32_t)n;
        return mp_const_none;
    }
    return mp_obj_new_int_from_uint(mpport_heap_size());
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(mpport_heap_size_obj, 0, 1, mpport_heap_size_fn);

static const mp_rom_map_elem_t mpport_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_mpport) },
    { MP_ROM_QSTR(MP_QSTR_heap_size), MP_ROM_PTR(&mpport_heap_size_obj) },
};
static MP_DEFINE_CONST_DICT(mpport_globals, mpport_globals_table);

const mp_obj_module_t mpport_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&mpport_globals,
};
MP_REGISTER_MODULE(MP_QSTR_mpport, mpport_module);
