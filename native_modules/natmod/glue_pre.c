/*
 * glue_pre.c - MicroPython bindings of the preprocessing core (native_modules/engine/pre/).
 * Part of the binding translation unit: #included by mpyml_natmod.c, which registers MPYML_PRE_FUNCS
 * (natmod: mp_store_global at init; firmware: the module's const globals table).
 *
 * Buffers in, ints out; nothing allocated (errors raise ValueError). Element types come from the
 * buffer's typecode: int16 buffers are array('h'), int32 buffers array('i'), byte buffers
 * bytes/bytearray/memoryview. Same names and arguments as device/mpyml/pre/_fallback.py:
 *   pre_logmel(plan, frame, out, out_off, scratch)
 *   pre_mfcc(plan, logmel, lm_off, log2max, out, out_off, tmp)
 *   pre_quant(src, src_off, n, dst, dst_off, params) ; pre_image(src, dst, params)
 *   pre_max(buf, off, n) -> int ; pre_i32_to_i16(src, dst, shift, n)
 */
#include "binding.h"
#include "../engine/pre/pre.h"

/* element type and count of a buffer; -1 for a typecode the kernels do not take */
static int elem_type(const mp_buffer_info_t *b, size_t *n) {
    switch (b->typecode) {
        case 'b':
            *n = b->len;
            return MPYML_PRE_T_I8;
        case 'B':
        case BYTEARRAY_TYPECODE:
            *n = b->len;
            return MPYML_PRE_T_U8;
        case 'h':
            *n = b->len / 2;
            return MPYML_PRE_T_I16;
        case 'H':
            *n = b->len / 2;
            return MPYML_PRE_T_U16;
        case 'i':
            *n = b->len / 4;
            return MPYML_PRE_T_I32;
        case 'l':
            if (sizeof(long) == 4) {
                *n = b->len / 4;
                return MPYML_PRE_T_I32;
            }
            return -1;
        default:
            return -1;
    }
}

static void get_typed(mp_obj_t o, mp_buffer_info_t *b, int flags, int want, size_t *n) {
    mp_get_buffer_raise(o, b, flags);
    int t = elem_type(b, n);
    if (t != want && !(want == MPYML_PRE_T_U8 && t == MPYML_PRE_T_I8)) {
        if (want == MPYML_PRE_T_I16) {
            mp_raise_ValueError(MP_ERROR_TEXT("expected an array('h') buffer"));
        } else if (want == MPYML_PRE_T_I32) {
            mp_raise_ValueError(MP_ERROR_TEXT("expected an array('i') buffer"));
        }
        mp_raise_ValueError(MP_ERROR_TEXT("expected a bytes-like buffer"));
    }
}

static size_t get_off(mp_obj_t o, size_t len) {
    mp_int_t v = mp_obj_get_int(o);
    if (v < 0 || (size_t)v > len) {
        mp_raise_ValueError(MP_ERROR_TEXT("offset out of range"));
    }
    return (size_t)v;
}

static void check(int st) {
    switch (st) {
        case MPYML_PRE_OK:
            return;
        case MPYML_PRE_E_PLAN:
            mp_raise_ValueError(MP_ERROR_TEXT("invalid preprocessing plan"));
        case MPYML_PRE_E_SIZE:
            mp_raise_ValueError(MP_ERROR_TEXT("buffer too small"));
        case MPYML_PRE_E_ALIGN:
            mp_raise_ValueError(MP_ERROR_TEXT("buffer not 4-byte aligned"));
        default:
            mp_raise_ValueError(MP_ERROR_TEXT("invalid parameters"));
    }
}

/* pre_logmel(plan, frame, out, out_off, scratch) */
static mp_obj_t fn_pre_logmel(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    mp_buffer_info_t plan, frame, out, scr;
    size_t nf, no, ns;
    mp_get_buffer_raise(args[0], &plan, MP_BUFFER_READ);
    get_typed(args[1], &frame, MP_BUFFER_READ, MPYML_PRE_T_I16, &nf);
    get_typed(args[2], &out, MP_BUFFER_WRITE, MPYML_PRE_T_I32, &no);
    size_t off = get_off(args[3], no);
    get_typed(args[4], &scr, MP_BUFFER_WRITE, MPYML_PRE_T_I32, &ns);
    check(mpyml_pre_logmel((const uint8_t *)plan.buf, plan.len, (const int16_t *)frame.buf, nf,
        (int32_t *)out.buf + off, no - off, (int32_t *)scr.buf, ns));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(fn_pre_logmel_obj, 5, 5, fn_pre_logmel);

/* pre_mfcc(plan, logmel, lm_off, log2max, out, out_off, tmp) */
static mp_obj_t fn_pre_mfcc(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    mp_buffer_info_t plan, lm, out, tmp;
    size_t nl, no, nt;
    mp_get_buffer_raise(args[0], &plan, MP_BUFFER_READ);
    get_typed(args[1], &lm, MP_BUFFER_READ, MPYML_PRE_T_I32, &nl);
    size_t loff = get_off(args[2], nl);
    int32_t l2 = (int32_t)mp_obj_get_int(args[3]);
    get_typed(args[4], &out, MP_BUFFER_WRITE, MPYML_PRE_T_I32, &no);
    size_t ooff = get_off(args[5], no);
    get_typed(args[6], &tmp, MP_BUFFER_WRITE, MPYML_PRE_T_I32, &nt);
    check(mpyml_pre_mfcc((const uint8_t *)plan.buf, plan.len, (const int32_t *)lm.buf + loff, nl - loff, l2,
        (int32_t *)out.buf + ooff, no - ooff, (int32_t *)tmp.buf, nt));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(fn_pre_mfcc_obj, 7, 7, fn_pre_mfcc);

/* pre_quant(src, src_off, n, dst, dst_off, params) */
static mp_obj_t fn_pre_quant(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    mp_buffer_info_t src, dst, par;
    size_t ns, nd, np;
    mp_get_buffer_raise(args[0], &src, MP_BUFFER_READ);
    int st = elem_type(&src, &ns);
    if (st < 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("src: expected bytes or an array of b/B/h/H/i"));
    }
    size_t soff = get_off(args[1], ns);
    mp_int_t n = mp_obj_get_int(args[2]);
    get_typed(args[3], &dst, MP_BUFFER_WRITE, MPYML_PRE_T_U8, &nd);
    size_t doff = get_off(args[4], nd);
    get_typed(args[5], &par, MP_BUFFER_READ, MPYML_PRE_T_I32, &np);
    if (n < 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("n < 0"));
    }
    check(mpyml_pre_quant(src.buf, st, ns, soff, (size_t)n, (uint8_t *)dst.buf, nd, doff,
        (const int32_t *)par.buf, np));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(fn_pre_quant_obj, 6, 6, fn_pre_quant);

/* pre_image(src, dst, params) */
static mp_obj_t fn_pre_image(mp_obj_t src_in, mp_obj_t dst_in, mp_obj_t par_in) {
    mp_buffer_info_t src, dst, par;
    size_t ns, nd, np;
    get_typed(src_in, &src, MP_BUFFER_READ, MPYML_PRE_T_U8, &ns);
    get_typed(dst_in, &dst, MP_BUFFER_WRITE, MPYML_PRE_T_U8, &nd);
    get_typed(par_in, &par, MP_BUFFER_READ, MPYML_PRE_T_I32, &np);
    check(mpyml_pre_image((const uint8_t *)src.buf, ns, (uint8_t *)dst.buf, nd, (const int32_t *)par.buf, np));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_3(fn_pre_image_obj, fn_pre_image);

/* pre_max(buf, off, n) -> int */
static mp_obj_t fn_pre_max(mp_obj_t buf_in, mp_obj_t off_in, mp_obj_t n_in) {
    mp_buffer_info_t b;
    size_t nb;
    mp_get_buffer_raise(buf_in, &b, MP_BUFFER_READ);
    int t = elem_type(&b, &nb);
    if (t < 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("expected bytes or an array of b/B/h/H/i"));
    }
    size_t off = get_off(off_in, nb);
    mp_int_t n = mp_obj_get_int(n_in);
    if (n < 1 || (size_t)n > nb - off) {
        mp_raise_ValueError(MP_ERROR_TEXT("n out of range"));
    }
    return mp_obj_new_int(mpyml_pre_max(b.buf, t, off, (size_t)n));
}
static MP_DEFINE_CONST_FUN_OBJ_3(fn_pre_max_obj, fn_pre_max);

/* pre_i32_to_i16(src, dst, shift, n) */
static mp_obj_t fn_pre_i32_to_i16(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    mp_buffer_info_t src, dst;
    size_t ns, nd;
    get_typed(args[0], &src, MP_BUFFER_READ, MPYML_PRE_T_U8, &ns);
    get_typed(args[1], &dst, MP_BUFFER_WRITE, MPYML_PRE_T_I16, &nd);
    mp_int_t shift = mp_obj_get_int(args[2]);
    mp_int_t n = mp_obj_get_int(args[3]);
    if (shift < 0 || shift > 31 || n < 0 || (size_t)n > ns / 4 || (size_t)n > nd) {
        mp_raise_ValueError(MP_ERROR_TEXT("shift or n out of range"));
    }
    mpyml_pre_i32_to_i16((const uint8_t *)src.buf, (int16_t *)dst.buf, (int)shift, (size_t)n);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(fn_pre_i32_to_i16_obj, 4, 4, fn_pre_i32_to_i16);

#define MPYML_PRE_FUNCS(X) \
    X(MP_QSTR_pre_logmel, fn_pre_logmel_obj) \
    X(MP_QSTR_pre_mfcc, fn_pre_mfcc_obj) \
    X(MP_QSTR_pre_quant, fn_pre_quant_obj) \
    X(MP_QSTR_pre_image, fn_pre_image_obj) \
    X(MP_QSTR_pre_max, fn_pre_max_obj) \
    X(MP_QSTR_pre_i32_to_i16, fn_pre_i32_to_i16_obj)
