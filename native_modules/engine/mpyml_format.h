/*
 * mpyml_format.h - the packed model format, versions 2 and 3 (.mpk; v3 adds the sparse section), as C structs.
 *
 * The normative description is docs/FORMAT.md; this header mirrors it field by field.
 * All integers are little-endian. The file is used in place (zero copy): the caller's buffer
 * must be 4-byte aligned, every table is 4-byte aligned and the data section is 16-byte aligned.
 * Nothing here is trusted until mpyml_prepare() (mpyml_engine.h) has validated it.
 */
#ifndef MPYML_FORMAT_H
#define MPYML_FORMAT_H

#include <stdint.h>

#include "mpyml_spec.h"   /* constants, codes and param structs, generated from the spec */

/* File header (64 bytes at offset 0). */
typedef struct {
    uint32_t magic;         /* MPYML_MAGIC */
    uint16_t version;       /* MPYML_VERSION */
    uint16_t header_size;   /* MPYML_HEADER_SIZE */
    uint32_t file_size;     /* total length in bytes, == buffer length */
    uint32_t crc32;         /* CRC-32 (IEEE 802.3, zlib) of the whole file with this field zeroed */
    uint32_t arena_size;    /* bytes of arena the caller must provide; multiple of 16 */
    uint16_t n_tensors;     /* 1..65534 */
    uint16_t n_ops;         /* 1..65535 */
    uint16_t n_inputs;      /* 1..16 */
    uint16_t n_outputs;     /* 1..16 */
    uint32_t tensors_offset;/* n_tensors * 32-byte mpyml_tensor_t records, 4-aligned */
    uint32_t ops_offset;    /* op records back to back, 4-aligned */
    uint32_t ops_size;      /* bytes of the op records */
    uint32_t io_offset;     /* uint16 input tensor indices then uint16 output indices, 4-aligned */
    uint32_t data_offset;   /* constant data section, 16-aligned */
    uint32_t data_size;     /* bytes of the data section */
    uint32_t macs;          /* multiply-accumulates per invoke (informative, saturates) */
    uint32_t sparse_size;   /* v3: bytes at the end of the trusted region holding sparse index tables (the sparse
                               section); multiple of 16, <= trusted_size. v2: the flags field, 0 */
    uint32_t trusted_size;  /* bytes at the start of the data section that the engine copies at load (requant
                               params, tables: values it validated); multiple of 16, <= data_size */
} mpyml_header_t;

/* Tensor record (32 bytes). */
typedef struct {
    uint8_t type;           /* MPYML_T_* */
    uint8_t ndim;           /* 1..4 */
    uint8_t storage;        /* MPYML_S_* */
    uint8_t flags;          /* MPYML_TF_*: STATE = persists across invokes (arena only) */
    uint16_t dims[4];       /* dims[0..ndim-1] each >= 1; unused entries 0 */
    uint32_t offset;        /* arena or data-section offset; multiple of the element size */
    uint32_t nbytes;        /* == product(dims) * element size */
    int32_t zero_point;     /* int8 -128..127, uint8 0..255, int16 -32768..32767; other types 0 */
    uint32_t scale_bits;    /* IEEE-754 float32 scale, for the Python API only; the engine never reads it */
    uint32_t reserved;      /* must be 0 */
} mpyml_tensor_t;

/*
 * Op record: this 8-byte header, then (n_in + n_out) uint16 tensor indices padded with
 * 0xFFFF to a multiple of two entries, then n_params int32 parameters.
 * size == 8 + 2 * roundup2(n_in + n_out) + 4 * n_params.
 */
typedef struct {
    uint8_t opcode;         /* MPYML_OP_* */
    uint8_t n_in;
    uint8_t n_out;
    uint8_t n_params;
    uint16_t size;          /* total record bytes, multiple of 4 */
    uint16_t reserved;      /* op flags: 0, or MPYML_OPF_IN_PLACE on an op whose spec is in_place_ok */
} mpyml_op_hdr_t;

/* Operands and param structs of every op: mpyml_spec.h (generated) and docs/FORMAT.md. */

#endif /* MPYML_FORMAT_H */
