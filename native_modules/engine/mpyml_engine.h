/*
 * mpyml_engine.h - public API of the portable C99 engine core (no MicroPython headers).
 *
 * Compiled three ways: into the MicroPython native module (native_modules/natmod/, thin glue),
 * as a host shared library (tests, sanitizers, fuzzing) and bare-metal for Cortex-M.
 *
 * Life cycle:
 *   mpyml_prepare(ctx, ctx_len, model, len, &err)   validate everything once (header, CRC, tables, ops)
 *   mpyml_invoke(ctx, model, arena, len)    run; trusts what prepare validated, never allocates
 * The caller owns the model buffer (read-only, 4-byte aligned, used in place), the arena
 * (>= ctx->arena_size bytes, 4-byte aligned) and the context (mpyml_ctx_size(model) bytes).
 * Status codes only; the bindings turn them into exceptions.
 */
#ifndef MPYML_ENGINE_H
#define MPYML_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include "mpyml_format.h"

/* mpyml_status_t: mpyml_spec.h (generated from the spec) */

typedef struct {
    int32_t status;         /* mpyml_status_t */
    int32_t index;          /* op or tensor index the error is about, -1 if none */
    int32_t detail;         /* opcode, operand number, bytes needed... (see status) */
    int32_t line;           /* engine source line of the failed check (for bug reports) */
} mpyml_err_t;

/* Context filled by mpyml_prepare: plain data, may live in a bytearray; mpyml_ctx_size(model) bytes.
 * It holds the engine's own copy of everything it validated (header, tensor table, op records, io table,
 * the trusted part of the data section), so nothing the caller does to the model buffer after prepare
 * can change what invoke trusts: invoke reads only weight bytes (any values are safe) from the model. */
typedef struct {
    uint32_t magic;                 /* MPYML_CTX_MAGIC once prepared */
    uint32_t model_len;
    const uint8_t *model;           /* the buffer that was validated */
    uint32_t arena_size;
    uint32_t n_ops;
    const mpyml_header_t *hdr;      /* -> hdr_copy */
    const mpyml_tensor_t *tensors;  /* copies, in the area after this struct */
    const uint8_t *ops;
    const uint16_t *io;
    const uint8_t *trusted;         /* copy of data[0 .. trusted_size) */
    const uint8_t *data;            /* the model's data section (weights, read in place) */
    uint32_t trusted_size;
    uint32_t ctx_size;              /* bytes of ctx used: mpyml_ctx_size() */
    mpyml_header_t hdr_copy;
} mpyml_ctx_t;

#define MPYML_CTX_MAGIC 0x5250594Du

/* Bytes of context the model needs (>= sizeof(mpyml_ctx_t)), read from its header; for a buffer that is
 * not a plausible mpyml header, sizeof(mpyml_ctx_t) (prepare then reports what is wrong). */
size_t mpyml_ctx_size(const uint8_t *model, size_t len);

/* Validate a model. ctx: ctx_len >= mpyml_ctx_size(model, len) bytes (MPYML_E_CTX with
 * err.detail = bytes needed if smaller; pointer-aligned). On success fills ctx and returns MPYML_OK; otherwise fills err. */
int mpyml_prepare(mpyml_ctx_t *ctx, size_t ctx_len, const uint8_t *model, size_t len, mpyml_err_t *err);

/* The same validation for a model in memory nobody can write after load (flash, ROMFS, an immutable
 * Python bytes object): the records are used in place; ctx is sizeof(mpyml_ctx_t) bytes. */
int mpyml_prepare_in_place(mpyml_ctx_t *ctx, const uint8_t *model, size_t len, mpyml_err_t *err);

/* Run one inference. Returns MPYML_E_CTX if ctx was not prepared for exactly this model buffer,
 * MPYML_E_ARENA / MPYML_E_ALIGN for a bad arena; MPYML_OK otherwise. */
int mpyml_invoke(const mpyml_ctx_t *ctx, const uint8_t *model, size_t len, uint8_t *arena, size_t arena_len);

/* Zero the model's STATE tensors (RNN state) in the arena: call once after allocating the arena, and to
 * start a new sequence. Does nothing if ctx is not prepared or the arena is too small. */
void mpyml_reset_state(const mpyml_ctx_t *ctx, uint8_t *arena, size_t arena_len);

/* Short English text for a status code. */
const char *mpyml_status_str(int status);

/* Name of an mpyml op code ("CONV_2D"...), or "?" */
const char *mpyml_op_name(int opcode);

/* CRC-32 (zlib polynomial) of buf, continuing from crc (start with 0). */
uint32_t mpyml_crc32(uint32_t crc, const uint8_t *buf, size_t len);

/* Engine version for the binding: (major << 16) | (minor << 8) | patch. */
#define MPYML_ENGINE_VERSION 0x000200u

#endif /* MPYML_ENGINE_H */
