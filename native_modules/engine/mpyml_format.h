/*
 * mpyml_format.h - the packed model format, version 1 (.mpk), as C structs.
 *
 * The normative description is docs/FORMAT.md; this header mirrors it field by field.
 * All integers are little-endian. The file is used in place (zero copy): the caller's buffer
 * must be 4-byte aligned, every table is 4-byte aligned and the data section is 16-byte aligned.
 * Nothing here is trusted until mpyml_prepare() (mpyml_engine.h) has validated it.
 */
#ifndef MPYML_FORMAT_H
#define MPYML_FORMAT_H

#include <stdint.h>

#define MPYML_MAGIC 0x4D59504Du /* bytes 'M','P','Y','M' */
#define MPYML_VERSION 1u
#define MPYML_HEADER_SIZE 64u
#define MPYML_TENSOR_SIZE 32u
#define MPYML_OP_HDR_SIZE 8u
#define MPYML_ALIGN_DATA 16u
#define MPYML_ALIGN_ARENA 16u
#define MPYML_MAX_DIMS 4
#define MPYML_NO_TENSOR 0xFFFFu /* optional operand absent */

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
    uint32_t flags;         /* must be 0 in version 1 */
    uint32_t reserved;      /* must be 0 */
} mpyml_header_t;

/* Tensor element types. */
enum {
    MPYML_T_INT8 = 1,
    MPYML_T_INT32 = 2,
};

/* Where a tensor's bytes live. */
enum {
    MPYML_S_ARENA = 0,      /* offset is into the caller's arena (activations, inputs, outputs) */
    MPYML_S_CONST = 1,      /* offset is into the data section (weights, biases, multipliers) */
};

/* Tensor record (32 bytes). */
typedef struct {
    uint8_t type;           /* MPYML_T_* */
    uint8_t ndim;           /* 1..4 */
    uint8_t storage;        /* MPYML_S_* */
    uint8_t flags;          /* must be 0 */
    uint16_t dims[4];       /* dims[0..ndim-1] each >= 1; unused entries 0 */
    uint32_t offset;        /* arena or data-section offset; multiple of the element size */
    uint32_t nbytes;        /* == product(dims) * element size */
    int32_t zero_point;     /* int8: -128..127; int32: 0 */
    uint32_t scale_bits;    /* IEEE-754 float32 scale, for the Python API only; the engine never reads it */
    uint32_t reserved;      /* must be 0 */
} mpyml_tensor_t;

/* Op codes (mpyml's own numbering, not TFLite's). */
enum {
    MPYML_OP_CONV_2D = 1,
    MPYML_OP_DEPTHWISE_CONV_2D = 2,
    MPYML_OP_FULLY_CONNECTED = 3,
    MPYML_OP_AVERAGE_POOL_2D = 4,
    MPYML_OP_MAX_POOL_2D = 5,
    MPYML_OP_ADD = 6,
    MPYML_OP_RESHAPE = 7,
    MPYML_OP_SOFTMAX = 8,
    MPYML_OP_COUNT_ = 9,
};

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
    uint16_t reserved;      /* must be 0 */
} mpyml_op_hdr_t;

/* ---- Operands and parameters of each op (the int32 params array is cast to these structs). ----
 * Value ranges are enforced by the loader; kernels may rely on them.
 */

/* CONV_2D and DEPTHWISE_CONV_2D.
 * inputs:  0 input  int8 [N,H,W,C] (arena)
 *          1 filter int8 conv: [O,KH,KW,C]   depthwise: [1,KH,KW,O], O = C * depth_multiplier
 *          2 bias   int32 [O] or MPYML_NO_TENSOR
 *          3 mult   int32 [O]   per-channel requantization multiplier, 0..2^31-1
 *          4 shift  int32 [O]   per-channel shift, -31..30 (>0 = left)
 * outputs: 0 output int8 [N,OH,OW,O] (arena)
 * KH*KW*C (conv) or KH*KW (depthwise) <= 65536, so the int32 accumulator cannot overflow.
 */
typedef struct {
    int32_t stride_w, stride_h;     /* 1..1024 */
    int32_t dil_w, dil_h;           /* 1..1024 */
    int32_t pad_w, pad_h;           /* left / top padding, 0..1024 */
    int32_t input_offset;           /* -input_zero_point: -127..128 */
    int32_t output_offset;          /* output_zero_point: -128..127 */
    int32_t act_min, act_max;       /* -128 <= act_min <= act_max <= 127 */
    int32_t depth_multiplier;       /* depthwise: O / C (1..1024); conv: 1 */
} mpyml_conv_params_t;
#define MPYML_CONV_NPARAMS 11

/* FULLY_CONNECTED.
 * inputs:  0 input  int8, any shape with B*K elements (arena)
 *          1 filter int8 [O,K], zero point 0, K <= 65536
 *          2 bias   int32 [O] or MPYML_NO_TENSOR
 *          3 mult   int32 [1] (per-tensor) or [O] (per-channel)
 *          4 shift  int32, same length as mult, -31..30
 * outputs: 0 output int8 with B*O elements, last dim O
 */
typedef struct {
    int32_t input_offset;           /* -127..128 */
    int32_t output_offset;          /* -128..127 */
    int32_t act_min, act_max;
} mpyml_fc_params_t;
#define MPYML_FC_NPARAMS 4

/* AVERAGE_POOL_2D and MAX_POOL_2D.
 * inputs: 0 input int8 [N,H,W,C];  outputs: 0 output int8 [N,OH,OW,C]
 */
typedef struct {
    int32_t stride_w, stride_h;     /* 1..1024 */
    int32_t filter_w, filter_h;     /* 1..1024, filter_w * filter_h <= 65536 */
    int32_t pad_w, pad_h;           /* 0..1024 */
    int32_t act_min, act_max;
} mpyml_pool_params_t;
#define MPYML_POOL_NPARAMS 8

/* ADD (TFLite int8 quantized add, with 4-D broadcasting).
 * inputs: 0 input1 int8, 1 input2 int8 (arena or const); outputs: 0 output int8.
 * Each of the (right-aligned, up to 4) dims of an input equals the output's or is 1.
 */
typedef struct {
    int32_t input1_offset, input2_offset;   /* -127..128 */
    int32_t output_offset;                  /* -128..127 */
    int32_t left_shift;                     /* 0..20 */
    int32_t input1_mult, input1_shift;      /* mult 0..2^31-1, shift -31..0 */
    int32_t input2_mult, input2_shift;      /* mult 0..2^31-1, shift -31..0 */
    int32_t output_mult, output_shift;      /* mult 0..2^31-1, shift -31..0 */
    int32_t act_min, act_max;
} mpyml_add_params_t;
#define MPYML_ADD_NPARAMS 12

/* RESHAPE. inputs: 0 input; outputs: 0 output with the same byte count. No params.
 * When the planner aliases output onto input (same arena offset) the op is free. */
#define MPYML_RESHAPE_NPARAMS 0

/* SOFTMAX (int8 -> int8, output scale 1/256 and zero point -128, as TFLite requires).
 * inputs: 0 input int8; outputs: 0 output int8, same shape; rows along the last dim.
 */
typedef struct {
    int32_t input_multiplier;       /* 0..2^31-1 */
    int32_t input_left_shift;       /* 0..31 */
    int32_t diff_min;               /* -2^31+1..0 */
} mpyml_softmax_params_t;
#define MPYML_SOFTMAX_NPARAMS 3

#endif /* MPYML_FORMAT_H */
