/*
 * mpyml_natmod.c - the MicroPython binding of the engine core (module mpyml_engine), built either as
 * a native module (.mpy, py/dynruntime.mk) or as a firmware user C module (native_modules/usermod/).
 *
 * Thin glue only: buffer-protocol arguments in, engine status out. The pure-Python layer
 * (device/mpyml/__init__.py) turns error tuples into ValueError messages. No writable globals, no BSS.
 *
 *   prepare(model, ctx) -> None | (status, index, detail, line)   validate; ctx = bytearray(ctx_size(model))
 *   invoke(model, arena, ctx) -> None                            run one inference, allocates nothing
 *   reset(model, arena, ctx) -> None                             zero the model's STATE tensors
 *   ctx_size([model]) -> int: bytes of ctx (the engine's copy of the model's records) ; version() -> int ;
 *   crc32(buf[, crc]) -> int
 *   verify(pubkey32, message, sig64) -> bool                    Ed25519 (RFC 8032) signature check
 */
#include "binding.h"
#include "../engine/mpyml_engine.h"
#include "../engine/sign/ed25519_verify.h"

#include "glue_pre.c" /* preprocessing bindings: same translation unit, MPYML_PRE_FUNCS */

#ifdef MICROPY_ENABLE_DYNRUNTIME
/* The natmod linker has no libc: route the core's (and the compiler's) mem* calls to MicroPython's. */
void *memset(void *s, int c, size_t n) {
    return mp_fun_table.memset_(s, c, n);
}

void *memmove(void *d, const void *s, size_t n) {
    return mp_fun_table.memmove_(d, s, n);
}

void *memcpy(void *d, const void *s, size_t n) {
    return mp_fun_table.memmove_(d, s, n);
}
#endif

/* A model in memory the program can write (bytearray, writable memoryview) is validated into an engine-owned
 * copy of its records; an immutable one (bytes, a ROMFS / flash memoryview) is used in place. */
static int model_is_writable(mp_obj_t model_in) {
    mp_buffer_info_t w;
    return mp_get_buffer(model_in, &w, MP_BUFFER_WRITE);
}

static size_t ctx_bytes_for(mp_obj_t model_in, const mp_buffer_info_t *model) {
    return model_is_writable(model_in) ? mpyml_ctx_size((const uint8_t *)model->buf, model->len)
                                       : sizeof(mpyml_ctx_t);
}

static mp_obj_t fn_prepare(mp_obj_t model_in, mp_obj_t ctx_in) {
    mp_buffer_info_t model, ctx;
    mp_get_buffer_raise(model_in, &model, MP_BUFFER_READ);
    mp_get_buffer_raise(ctx_in, &ctx, MP_BUFFER_WRITE);
    if (ctx.len < ctx_bytes_for(model_in, &model)) {
        mp_raise_ValueError(MP_ERROR_TEXT("ctx buffer too small: use bytearray(mpyml_engine.ctx_size(model))"));
    }
    if (((uintptr_t)ctx.buf & (sizeof(void *) - 1)) != 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("ctx buffer not aligned"));
    }
    mpyml_err_t err;
    int st = model_is_writable(model_in)
        ? mpyml_prepare((mpyml_ctx_t *)ctx.buf, ctx.len, (const uint8_t *)model.buf, model.len, &err)
        : mpyml_prepare_in_place((mpyml_ctx_t *)ctx.buf, (const uint8_t *)model.buf, model.len, &err);
    if (st == MPYML_OK) {
        return mp_const_none;
    }
    mp_obj_t items[4] = {
        mp_obj_new_int(err.status), mp_obj_new_int(err.index), mp_obj_new_int(err.detail), mp_obj_new_int(err.line),
    };
    return mp_obj_new_tuple(4, items);
}
static MP_DEFINE_CONST_FUN_OBJ_2(fn_prepare_obj, fn_prepare);

static mp_obj_t fn_invoke(mp_obj_t model_in, mp_obj_t arena_in, mp_obj_t ctx_in) {
    mp_buffer_info_t model, arena, ctx;
    mp_get_buffer_raise(model_in, &model, MP_BUFFER_READ);
    mp_get_buffer_raise(arena_in, &arena, MP_BUFFER_WRITE);
    mp_get_buffer_raise(ctx_in, &ctx, MP_BUFFER_READ);
    if (ctx.len < sizeof(mpyml_ctx_t) || ((uintptr_t)ctx.buf & (sizeof(void *) - 1)) != 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("bad ctx buffer"));
    }
    int st = mpyml_invoke((const mpyml_ctx_t *)ctx.buf, (const uint8_t *)model.buf, model.len,
        (uint8_t *)arena.buf, arena.len);
    if (st == MPYML_E_CTX) {
        mp_raise_ValueError(MP_ERROR_TEXT("model buffer was not prepared with this ctx"));
    } else if (st == MPYML_E_ARENA) {
        mp_raise_ValueError(MP_ERROR_TEXT("arena smaller than the model's arena_size"));
    } else if (st == MPYML_E_INDEX) {
        mp_raise_ValueError(MP_ERROR_TEXT("GATHER index out of range (an int input outside the embedding table)"));
    } else if (st != MPYML_OK) {
        mp_raise_ValueError(MP_ERROR_TEXT("arena not 4-byte aligned"));
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_3(fn_invoke_obj, fn_invoke);

static mp_obj_t fn_reset(mp_obj_t model_in, mp_obj_t arena_in, mp_obj_t ctx_in) {
    mp_buffer_info_t model, arena, ctx;
    mp_get_buffer_raise(model_in, &model, MP_BUFFER_READ);
    mp_get_buffer_raise(arena_in, &arena, MP_BUFFER_WRITE);
    mp_get_buffer_raise(ctx_in, &ctx, MP_BUFFER_READ);
    if (ctx.len < sizeof(mpyml_ctx_t) || ((uintptr_t)ctx.buf & (sizeof(void *) - 1)) != 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("bad ctx buffer"));
    }
    const mpyml_ctx_t *c = (const mpyml_ctx_t *)ctx.buf;
    if (c->magic != MPYML_CTX_MAGIC || c->model != (const uint8_t *)model.buf || c->model_len != model.len) {
        mp_raise_ValueError(MP_ERROR_TEXT("model buffer was not prepared with this ctx"));
    }
    mpyml_reset_state(c, (uint8_t *)arena.buf, arena.len);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_3(fn_reset_obj, fn_reset);

static mp_obj_t fn_ctx_size(size_t n_args, const mp_obj_t *args) {
    if (n_args == 0) {
        return mp_obj_new_int(sizeof(mpyml_ctx_t));
    }
    mp_buffer_info_t model;
    mp_get_buffer_raise(args[0], &model, MP_BUFFER_READ);
    return mp_obj_new_int((mp_int_t)ctx_bytes_for(args[0], &model));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(fn_ctx_size_obj, 0, 1, fn_ctx_size);

static mp_obj_t fn_version(void) {
    return mp_obj_new_int(MPYML_ENGINE_VERSION);
}
static MP_DEFINE_CONST_FUN_OBJ_0(fn_version_obj, fn_version);

static mp_obj_t fn_crc32(size_t n_args, const mp_obj_t *args) {
    mp_buffer_info_t buf;
    mp_get_buffer_raise(args[0], &buf, MP_BUFFER_READ);
    uint32_t crc = n_args > 1 ? (uint32_t)mp_obj_get_int_truncated(args[1]) : 0;
    crc = mpyml_crc32(crc, (const uint8_t *)buf.buf, buf.len);
    return mp_obj_new_int_from_uint(crc);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(fn_crc32_obj, 1, 2, fn_crc32);

static mp_obj_t fn_verify(mp_obj_t key_in, mp_obj_t msg_in, mp_obj_t sig_in) {
    mp_buffer_info_t key, msg, sig;
    mp_get_buffer_raise(key_in, &key, MP_BUFFER_READ);
    mp_get_buffer_raise(msg_in, &msg, MP_BUFFER_READ);
    mp_get_buffer_raise(sig_in, &sig, MP_BUFFER_READ);
    if (key.len != 32 || sig.len != 64) {
        mp_raise_ValueError(MP_ERROR_TEXT("verify: the public key must be 32 bytes and the signature 64"));
    }
    return mp_obj_new_bool(mpyml_ed25519_verify((const uint8_t *)key.buf, (const uint8_t *)msg.buf, msg.len,
        (const uint8_t *)sig.buf));
}
static MP_DEFINE_CONST_FUN_OBJ_3(fn_verify_obj, fn_verify);

#define MPYML_ENGINE_FUNCS(X) \
    X(MP_QSTR_prepare, fn_prepare_obj) \
    X(MP_QSTR_invoke, fn_invoke_obj) \
    X(MP_QSTR_reset, fn_reset_obj) \
    X(MP_QSTR_ctx_size, fn_ctx_size_obj) \
    X(MP_QSTR_version, fn_version_obj) \
    X(MP_QSTR_crc32, fn_crc32_obj) \
    X(MP_QSTR_verify, fn_verify_obj)

#ifdef MICROPY_ENABLE_DYNRUNTIME

#define MPYML_STORE(qst, obj) mp_store_global(qst, MP_OBJ_FROM_PTR(&obj));

/* called by mpy_init (natmod_entry.c) */
void mpyml_store_globals(void);
void mpyml_store_globals(void) {
    MPYML_ENGINE_FUNCS(MPYML_STORE)
    MPYML_PRE_FUNCS(MPYML_STORE)
}

#else /* firmware user C module */

#define MPYML_ENTRY(qst, obj) { MP_ROM_QSTR(qst), MP_ROM_PTR(&obj) },

static const mp_rom_map_elem_t mpyml_engine_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_mpyml_engine) },
    MPYML_ENGINE_FUNCS(MPYML_ENTRY)
    MPYML_PRE_FUNCS(MPYML_ENTRY)
};
static MP_DEFINE_CONST_DICT(mpyml_engine_globals, mpyml_engine_globals_table);

const mp_obj_module_t mpyml_engine_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&mpyml_engine_globals,
};

MP_REGISTER_MODULE(MP_QSTR_mpyml_engine, mpyml_engine_user_cmodule);

#endif
