/*
 * mpyml_engine.c - the loader (validates an untrusted .mpk once) and the interpreter loop.
 *
 * Owns: header/CRC/table checks, the explicit op table (operand counts, per-op validation of
 * shapes, types and parameter ranges) and dispatch to the kernels in ops/. Every bounds check
 * is in subtraction form (x <= size - off after off <= size) so no sum can overflow.
 */
#include <string.h>
#include "mpyml_engine.h"
#include "ops/ops.h"
#include "ops/op_table.h"

/* ------------------------------------------------------------------ helpers */

#define FAIL(st, idx, det) do { \
        err->status = (st); err->index = (idx); err->detail = (det); err->line = __LINE__; \
        return (st); \
    } while (0)

/* Does [off, off+n) fit in a region of `size` bytes? */
static int fits(uint32_t off, uint32_t n, uint32_t size) {
    return off <= size && n <= size - off;
}


uint32_t mpyml_crc32(uint32_t crc, const uint8_t *buf, size_t len) {
    /* Nibble-table CRC-32 (reflected 0xEDB88320): small table, no writable state. */
    static const uint32_t tab[16] = {
        0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
        0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
        0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
    };
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= buf[i];
        crc = (crc >> 4) ^ tab[crc & 15u];
        crc = (crc >> 4) ^ tab[crc & 15u];
    }
    return ~crc;
}

/* element bytes of a type code, 0 for an unknown type */
static uint32_t elem_size(int type) {
    switch (type) {
        case MPYML_T_INT8: case MPYML_T_UINT8: return 1u;
        case MPYML_T_INT16: return 2u;
        case MPYML_T_INT32: case MPYML_T_FLOAT32: return 4u;
        case MPYML_T_INT64: return 8u;
        default: return 0u;
    }
}

static uint32_t tensor_elems(const mpyml_tensor_t *t) {
    uint32_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        n *= t->dims[i]; /* validated: product < 2^31 */
    }
    return n;
}

/* Right-align a tensor's dims into NHWC. */
static void shape4(const mpyml_tensor_t *t, mpyml_shape4_t *s) {
    int32_t d[4] = {1, 1, 1, 1};
    for (int i = 0; i < t->ndim; i++) {
        d[4 - t->ndim + i] = t->dims[i];
    }
    s->n = d[0]; s->h = d[1]; s->w = d[2]; s->c = d[3];
}

static int in_range(int32_t v, int32_t lo, int32_t hi) {
    return v >= lo && v <= hi;
}

/* ------------------------------------------------------------------ validation */

static int check_tensor(const mpyml_tensor_t *t, uint32_t arena_size, uint32_t data_size, uintptr_t data_addr,
    uint32_t trusted_size) {
    uint32_t es = elem_size(t->type);
    if (es == 0) return 0;
    if (t->ndim < 1 || t->ndim > MPYML_MAX_DIMS) return 0;
    if (t->reserved != 0) return 0;
    if (t->flags != 0 && !(t->flags == MPYML_TF_STATE && t->storage == MPYML_S_ARENA)) return 0;
    uint64_t n = 1;
    for (int i = 0; i < MPYML_MAX_DIMS; i++) {
        if (i < t->ndim) {
            if (t->dims[i] == 0) return 0;
            n *= t->dims[i];
            if (n > 0x7FFFFFFFu) return 0;
        } else if (t->dims[i] != 0) {
            return 0;
        }
    }
    if (n * es != t->nbytes) return 0;
    if (t->offset % (es > 4 ? 4 : es) != 0) return 0;
    switch (t->type) {
        case MPYML_T_INT8: if (!in_range(t->zero_point, -128, 127)) return 0; break;
        case MPYML_T_UINT8: if (!in_range(t->zero_point, 0, 255)) return 0; break;
        case MPYML_T_INT16: if (!in_range(t->zero_point, -32768, 32767)) return 0; break;
        default: if (t->zero_point != 0) return 0; break;
    }
    if (t->storage == MPYML_S_ARENA) {
        return fits(t->offset, t->nbytes, arena_size);
    }
    if (t->storage == MPYML_S_CONST) {
        if ((data_addr + t->offset) % (es > 4 ? 4 : es) != 0) return 0;
        /* a const tensor lies entirely inside the trusted (copied) region or entirely after it */
        if (t->offset < trusted_size && !fits(t->offset, t->nbytes, trusted_size)) return 0;
        return fits(t->offset, t->nbytes, data_size);
    }
    return 0;
}

/* Operand accessor during validation: returns the tensor or NULL if absent/out of range. */
typedef struct {
    const mpyml_tensor_t *tensors;
    uint32_t n_tensors;
    const uint8_t *data;        /* the model's data section */
    const uint8_t *trusted;     /* the ctx copy of data[0 .. trusted_size) */
    uint32_t trusted_size;
    uint32_t sparse_size;       /* header sparse_size: the end of the trusted region */
} tables_t;

/* bytes of a const tensor: from the trusted copy when it lies there (check_tensor: entirely) */
static const uint8_t *const_bytes(const tables_t *tb, const mpyml_tensor_t *t) {
    return t->offset < tb->trusted_size ? tb->trusted + t->offset : tb->data + t->offset;
}

static int in_trusted(const tables_t *tb, const mpyml_tensor_t *t) {
    return t->storage == MPYML_S_CONST && fits(t->offset, t->nbytes, tb->trusted_size);
}

static const mpyml_tensor_t *operand(const tables_t *tb, uint16_t idx) {
    if (idx == MPYML_NO_TENSOR || idx >= tb->n_tensors) return NULL;
    return &tb->tensors[idx];
}

static int is_act(const mpyml_tensor_t *t) {
    return t && t->type == MPYML_T_INT8 && t->storage == MPYML_S_ARENA;
}

static int is_arena(const mpyml_tensor_t *t) {
    return t && t->storage == MPYML_S_ARENA;
}

static int is_i8(const mpyml_tensor_t *t) {
    return t && t->type == MPYML_T_INT8;
}

static int is_const_i32_len(const mpyml_tensor_t *t, uint32_t len) {
    return t && t->type == MPYML_T_INT32 && t->storage == MPYML_S_CONST && tensor_elems(t) == len;
}

static int check_requant(const mpyml_tensor_t *mult, const mpyml_tensor_t *shift, const tables_t *tb, uint32_t n) {
    if (!in_trusted(tb, mult) || !in_trusted(tb, shift)) return 0;
    const int32_t *m = (const int32_t *)(const void *)const_bytes(tb, mult);
    const int32_t *s = (const int32_t *)(const void *)const_bytes(tb, shift);
    for (uint32_t i = 0; i < n; i++) {
        if (m[i] < 0 || !in_range(s[i], -31, 30)) return 0;
    }
    return 1;
}

/* Do two tensors share arena bytes? (Offsets and sizes are validated: no overflow.) */
static int overlaps(const mpyml_tensor_t *a, const mpyml_tensor_t *b) {
    return a && b && a->storage == MPYML_S_ARENA && b->storage == MPYML_S_ARENA
        && a->offset < b->offset + b->nbytes && b->offset < a->offset + a->nbytes;
}

/* Do two arena tensors occupy exactly the same bytes (an in-place alias)? */
static int same_bytes(const mpyml_tensor_t *a, const mpyml_tensor_t *b) {
    return a && b && a->storage == MPYML_S_ARENA && b->storage == MPYML_S_ARENA
        && a->offset == b->offset && a->nbytes == b->nbytes;
}

static int check_act(int32_t lo, int32_t hi) {
    return in_range(lo, -128, 127) && in_range(hi, -128, 127) && lo <= hi;
}

/* Validate one op's operands and parameters. Returns 0 if OK, else the failing operand/param code (>0). */
static int check_op(int opcode, const uint16_t *idx, uint8_t n_in, const int32_t *prm, const tables_t *tb) {
    const mpyml_tensor_t *in = operand(tb, idx[0]);
    const mpyml_tensor_t *out = operand(tb, idx[n_in]);
    if (!is_i8(in)) return 1;
    if (!is_act(out)) return 2;
    switch (opcode) {
        case MPYML_OP_CONV_2D:
        case MPYML_OP_DEPTHWISE_CONV_2D: {
            const mpyml_conv_params_t *p = (const mpyml_conv_params_t *)(const void *)prm;
            const mpyml_tensor_t *f = operand(tb, idx[1]);
            const mpyml_tensor_t *bias = operand(tb, idx[2]);
            if (in->ndim != 4 || out->ndim != 4) return 3;
            if (!is_i8(f) || f->storage != MPYML_S_CONST || f->ndim != 4 || f->zero_point != 0) return 4;
            if (!in_range(p->stride_w, 1, 1024) || !in_range(p->stride_h, 1, 1024)) return 10;
            if (!in_range(p->dil_w, 1, 1024) || !in_range(p->dil_h, 1, 1024)) return 11;
            if (!in_range(p->pad_w, 0, 1024) || !in_range(p->pad_h, 0, 1024)) return 12;
            if (!in_range(p->input_offset, -127, 128) || !in_range(p->output_offset, -128, 127)) return 13;
            if (!check_act(p->act_min, p->act_max)) return 14;
            uint32_t o = out->dims[3];
            if (in->dims[0] != out->dims[0]) return 5;
            /* the kernels step dil_h input rows at a time in int32 */
            if ((uint64_t)p->dil_h * in->dims[2] * in->dims[3] > 0x7FFFFFFFu) return 11;
            if (opcode == MPYML_OP_CONV_2D) {
                if (p->depth_multiplier != 1) return 15;
                if (f->dims[0] != o || f->dims[3] != in->dims[3]) return 6;
                if ((uint32_t)f->dims[1] * f->dims[2] * f->dims[3] > 65536u) return 7;
            } else {
                if (!in_range(p->depth_multiplier, 1, 1024)) return 15;
                if (f->dims[0] != 1 || f->dims[3] != o) return 6;
                if ((uint32_t)in->dims[3] * (uint32_t)p->depth_multiplier != o) return 6;
                if ((uint32_t)f->dims[1] * f->dims[2] > 65536u) return 7;
            }
            if (idx[2] != MPYML_NO_TENSOR && !is_const_i32_len(bias, o)) return 8;
            if (!is_const_i32_len(operand(tb, idx[3]), o) || !is_const_i32_len(operand(tb, idx[4]), o)) return 9;
            if (!check_requant(operand(tb, idx[3]), operand(tb, idx[4]), tb, o)) return 9;
            return 0;
        }
        case MPYML_OP_FULLY_CONNECTED: {
            const mpyml_fc_params_t *p = (const mpyml_fc_params_t *)(const void *)prm;
            const mpyml_tensor_t *f = operand(tb, idx[1]);
            const mpyml_tensor_t *bias = operand(tb, idx[2]);
            const mpyml_tensor_t *m = operand(tb, idx[3]);
            if (!is_i8(f) || f->storage != MPYML_S_CONST || f->ndim != 2 || f->zero_point != 0) return 4;
            uint32_t o = f->dims[0], k = f->dims[1];
            if (k > 65536u) return 7;
            if (out->dims[out->ndim - 1] != o) return 6;
            uint32_t batches = tensor_elems(out) / o;
            if ((uint64_t)batches * k != tensor_elems(in)) return 6;
            if (idx[2] != MPYML_NO_TENSOR && !is_const_i32_len(bias, o)) return 8;
            uint32_t nm = m ? tensor_elems(m) : 0;
            if (nm != 1 && nm != o) return 9;
            if (!is_const_i32_len(m, nm) || !is_const_i32_len(operand(tb, idx[4]), nm)) return 9;
            if (!check_requant(m, operand(tb, idx[4]), tb, nm)) return 9;
            if (!in_range(p->input_offset, -127, 128) || !in_range(p->output_offset, -128, 127)) return 13;
            if (!check_act(p->act_min, p->act_max)) return 14;
            return 0;
        }
        case MPYML_OP_AVERAGE_POOL_2D:
        case MPYML_OP_MAX_POOL_2D: {
            const mpyml_pool_params_t *p = (const mpyml_pool_params_t *)(const void *)prm;
            if (in->ndim != 4 || out->ndim != 4) return 3;
            if (in->dims[0] != out->dims[0] || in->dims[3] != out->dims[3]) return 6;
            if (!in_range(p->stride_w, 1, 1024) || !in_range(p->stride_h, 1, 1024)) return 10;
            if (!in_range(p->filter_w, 1, 1024) || !in_range(p->filter_h, 1, 1024)) return 11;
            if (p->filter_w * p->filter_h > 65536) return 11;
            if (!in_range(p->pad_w, 0, 1024) || !in_range(p->pad_h, 0, 1024)) return 12;
            if (!check_act(p->act_min, p->act_max)) return 14;
            return 0;
        }
        case MPYML_OP_ADD: {
            const mpyml_add_params_t *p = (const mpyml_add_params_t *)(const void *)prm;
            const mpyml_tensor_t *in2 = operand(tb, idx[1]);
            if (!is_i8(in2)) return 4;
            mpyml_shape4_t s1, s2, so;
            shape4(in, &s1); shape4(in2, &s2); shape4(out, &so);
            if (in->ndim > out->ndim || in2->ndim > out->ndim) return 6;
            const int32_t *a = &s1.n, *b = &s2.n, *c = &so.n;
            for (int i = 0; i < 4; i++) {
                /* output dims are exactly the broadcast of the input dims */
                if ((a[i] != c[i] && a[i] != 1) || (b[i] != c[i] && b[i] != 1)) return 6;
                if (c[i] != (a[i] > b[i] ? a[i] : b[i])) return 6;
            }
            if (!in_range(p->input1_offset, -127, 128) || !in_range(p->input2_offset, -127, 128)) return 13;
            if (!in_range(p->output_offset, -128, 127)) return 13;
            if (!in_range(p->left_shift, 0, 20)) return 10;
            if (p->input1_mult < 0 || p->input2_mult < 0 || p->output_mult < 0) return 11;
            if (!in_range(p->input1_shift, -31, 0) || !in_range(p->input2_shift, -31, 0)
                || !in_range(p->output_shift, -31, 0)) return 12;
            if (!check_act(p->act_min, p->act_max)) return 14;
            return 0;
        }
        case MPYML_OP_RESHAPE:
            if (in->nbytes != out->nbytes) return 6;
            return 0;
        case MPYML_OP_SOFTMAX: {
            const mpyml_softmax_params_t *p = (const mpyml_softmax_params_t *)(const void *)prm;
            if (in->nbytes != out->nbytes || in->ndim != out->ndim) return 6;
            for (int i = 0; i < in->ndim; i++) {
                if (in->dims[i] != out->dims[i]) return 6;
            }
            if (p->input_multiplier < 0 || !in_range(p->input_left_shift, 0, 31) || p->diff_min > 0) return 10;
            if (p->diff_min == INT32_MIN) return 10;
            return 0;
        }
        default:
            return 99;
    }
}

/* Spec-driven checks of an op that is not a core op, then its family's <kernel>_check. */
static int check_generic(const mpyml_op_info_t *d, const mpyml_op_hdr_t *oh, const uint16_t *idx,
    const int32_t *prm, const tables_t *tb) {
    mpyml_op_view_t v;
    memset(&v, 0, sizeof(v));
    v.opcode = oh->opcode; v.n_in = oh->n_in; v.n_out = oh->n_out; v.n_params = oh->n_params;
    v.params = prm; v.data = tb->data; v.trusted = tb->trusted; v.trusted_size = tb->trusted_size;
    v.sparse_size = tb->sparse_size;
    uint32_t n_idx = (uint32_t)oh->n_in + oh->n_out;
    for (uint32_t k = 0; k < n_idx; k++) {
        mpyml_operand_rule_t r;
        mpyml_op_operand_rule(d, (int)k, oh->n_in, &r);
        const mpyml_tensor_t *t = operand(tb, idx[k]);
        if (t == NULL) {
            if (!r.optional || k >= oh->n_in) return MPYML_CHK_OPERAND_BASE + (int)k;
            continue;
        }
        if (!((r.typemask >> t->type) & 1u)) return MPYML_CHK_OPERAND_BASE + (int)k;
        if (r.storage != 2 && t->storage != r.storage) return MPYML_CHK_OPERAND_BASE + (int)k;
        if (r.trusted && !in_trusted(tb, t)) return MPYML_CHK_OPERAND_BASE + (int)k;
        v.t[k] = t;
    }
    for (int i = 0; i < oh->n_params; i++) {
        int32_t lo, hi;
        mpyml_op_param_range(d, i, &lo, &hi);
        if (prm[i] < lo || prm[i] > hi) return MPYML_CHK_PARAM_BASE + i;
    }
    /* no output shares arena bytes with an input or with another output, except that an op record flagged
     * IN_PLACE (only accepted for ops whose kernels are in-place-safe) may alias its output exactly onto an input */
    for (uint32_t k = oh->n_in; k < n_idx; k++) {
        for (uint32_t j = 0; j < k; j++) {
            if ((oh->reserved & MPYML_OPF_IN_PLACE) && j < oh->n_in && same_bytes(v.t[j], v.t[k])) continue;
            if (overlaps(v.t[j], v.t[k])) return MPYML_CHK_ALIAS;
        }
    }
    return mpyml_op_check_ext(&v);
}

static uint32_t align8(uint32_t n) {
    return (n + 7u) & ~7u;
}

/* sizes of the ctx copies, each clamped to the buffer (prepare rejects a header whose tables do not fit) */
static void copy_sizes(const mpyml_header_t *h, size_t len, uint32_t sz[4]) {
    uint32_t cap = len > 0x7FFFFFF0u ? 0x7FFFFFF0u : (uint32_t)len;
    uint32_t t = (uint32_t)h->n_tensors * MPYML_TENSOR_SIZE;
    uint32_t io = 2u * ((uint32_t)h->n_inputs + h->n_outputs);
    sz[0] = align8(t > cap ? cap : t);
    sz[1] = align8(h->ops_size > cap ? cap : h->ops_size);
    sz[2] = align8(io > cap ? cap : io);
    sz[3] = align8(h->trusted_size > cap ? cap : h->trusted_size);
}

size_t mpyml_ctx_size(const uint8_t *model, size_t len) {
    if (model == NULL || len < MPYML_HEADER_SIZE || ((uintptr_t)model & 3u) != 0) return sizeof(mpyml_ctx_t);
    const mpyml_header_t *h = (const mpyml_header_t *)(const void *)model;
    if (h->magic != MPYML_MAGIC) return sizeof(mpyml_ctx_t);
    uint32_t sz[4];
    copy_sizes(h, len, sz);
    return align8(sizeof(mpyml_ctx_t)) + (size_t)sz[0] + sz[1] + sz[2] + sz[3];
}

static int prepare_impl(mpyml_ctx_t *ctx, size_t ctx_len, const uint8_t *model, size_t len, int copy,
    mpyml_err_t *err) {
    err->status = MPYML_OK; err->index = -1; err->detail = 0; err->line = 0;
    if (ctx_len < sizeof(mpyml_ctx_t) || ((uintptr_t)ctx & (sizeof(void *) - 1u)) != 0) {
        FAIL(MPYML_E_CTX, -1, (int32_t)sizeof(mpyml_ctx_t));
    }
    memset(ctx, 0, sizeof(*ctx));
    if (((uintptr_t)model & 3u) != 0) FAIL(MPYML_E_ALIGN, -1, 0);
    if (len < MPYML_HEADER_SIZE) FAIL(MPYML_E_TRUNCATED, -1, (int32_t)len);
    /* from here on only the engine's copy of the header is read */
    memcpy(&ctx->hdr_copy, model, sizeof(mpyml_header_t));
    const mpyml_header_t *h = &ctx->hdr_copy;
    if (h->magic != MPYML_MAGIC) FAIL(MPYML_E_MAGIC, -1, 0);
    if (h->version < MPYML_VERSION_MIN || h->version > MPYML_VERSION) FAIL(MPYML_E_VERSION, -1, h->version);
    if (h->file_size > len) FAIL(MPYML_E_TRUNCATED, -1, (int32_t)len);
    if (h->file_size != len) FAIL(MPYML_E_SIZE, -1, (int32_t)h->file_size);
    uint32_t size = h->file_size;
    /* CRC over the whole file with the crc field taken as zero */
    static const uint8_t zero4[4] = {0, 0, 0, 0};
    uint32_t crc = mpyml_crc32(0, model, 12);
    crc = mpyml_crc32(crc, zero4, 4);
    crc = mpyml_crc32(crc, model + 16, size - 16);
    if (crc != h->crc32) FAIL(MPYML_E_CRC, -1, 0);

    if (h->header_size != MPYML_HEADER_SIZE) FAIL(MPYML_E_HEADER, -1, 0);
    if (h->n_tensors == 0 || h->n_tensors == 0xFFFFu || h->n_ops == 0) FAIL(MPYML_E_HEADER, -1, 1);
    if (h->n_inputs == 0 || h->n_inputs > 16 || h->n_outputs == 0 || h->n_outputs > 16) FAIL(MPYML_E_HEADER, -1, 2);
    if (h->arena_size % MPYML_ALIGN_ARENA != 0) FAIL(MPYML_E_HEADER, -1, 3);
    if (h->tensors_offset % 4 || h->ops_offset % 4 || h->io_offset % 4 || h->ops_size % 4) FAIL(MPYML_E_HEADER, -1, 4);
    if (h->data_offset % MPYML_ALIGN_DATA) FAIL(MPYML_E_HEADER, -1, 4);
    if (!fits(h->tensors_offset, (uint32_t)h->n_tensors * MPYML_TENSOR_SIZE, size)) FAIL(MPYML_E_HEADER, -1, 5);
    if (!fits(h->ops_offset, h->ops_size, size)) FAIL(MPYML_E_HEADER, -1, 6);
    if (!fits(h->io_offset, 2u * ((uint32_t)h->n_inputs + h->n_outputs), size)) FAIL(MPYML_E_HEADER, -1, 7);
    if (!fits(h->data_offset, h->data_size, size)) FAIL(MPYML_E_HEADER, -1, 8);
    if (h->trusted_size > h->data_size || h->trusted_size % MPYML_ALIGN_DATA) FAIL(MPYML_E_HEADER, -1, 9);
    /* the sparse section (v3): the last sparse_size bytes of the trusted region; a v2 file has none */
    if (h->sparse_size > h->trusted_size || h->sparse_size % MPYML_ALIGN_DATA || (h->version < 3 && h->sparse_size != 0)) {
        FAIL(MPYML_E_HEADER, -1, 10);
    }

    /* the engine's copies of the tables and the trusted data, validated below and used by invoke */
    size_t need = copy ? mpyml_ctx_size(model, len) : sizeof(mpyml_ctx_t);
    if (ctx_len < need) FAIL(MPYML_E_CTX, -1, (int32_t)need);
    const mpyml_tensor_t *tensors = (const mpyml_tensor_t *)(const void *)(model + h->tensors_offset);
    const uint8_t *ops = model + h->ops_offset;
    const uint16_t *io = (const uint16_t *)(const void *)(model + h->io_offset);
    const uint8_t *data = model + h->data_offset;
    const uint8_t *trusted = data;
    if (copy) {
        uint32_t sz[4];
        copy_sizes(h, len, sz);
        uint8_t *area = (uint8_t *)ctx + align8(sizeof(mpyml_ctx_t));
        memcpy(area, tensors, (size_t)h->n_tensors * MPYML_TENSOR_SIZE);
        memcpy(area + sz[0], ops, h->ops_size);
        memcpy(area + sz[0] + sz[1], io, 2u * ((uint32_t)h->n_inputs + h->n_outputs));
        memcpy(area + sz[0] + sz[1] + sz[2], data, h->trusted_size);
        tensors = (const mpyml_tensor_t *)(const void *)area;
        ops = area + sz[0];
        io = (const uint16_t *)(const void *)(area + sz[0] + sz[1]);
        trusted = area + sz[0] + sz[1] + sz[2];
    }

    for (uint32_t i = 0; i < h->n_tensors; i++) {
        if (!check_tensor(&tensors[i], h->arena_size, h->data_size, (uintptr_t)data, h->trusted_size)) {
            FAIL(MPYML_E_TENSOR, (int32_t)i, 0);
        }
    }
    tables_t tb = {tensors, h->n_tensors, data, trusted, h->trusted_size, h->sparse_size};

    /* inputs and outputs: arena tensors */
    for (uint32_t i = 0; i < (uint32_t)h->n_inputs + h->n_outputs; i++) {
        if (!is_arena(operand(&tb, io[i]))) FAIL(MPYML_E_IO, (int32_t)i, io[i]);
    }

    /* ops */
    const uint8_t *op = ops;
    uint32_t remaining = h->ops_size;
    for (uint32_t i = 0; i < h->n_ops; i++) {
        if (remaining < MPYML_OP_HDR_SIZE) FAIL(MPYML_E_OP, (int32_t)i, 0);
        const mpyml_op_hdr_t *oh = (const mpyml_op_hdr_t *)(const void *)op;
        mpyml_op_info_t d;
        if (!mpyml_op_info(oh->opcode, &d)) FAIL(MPYML_E_OPCODE, (int32_t)i, oh->opcode);
        uint32_t n_idx = (uint32_t)oh->n_in + oh->n_out;
        uint32_t n_idx_padded = (n_idx + 1u) & ~1u;
        uint32_t want = MPYML_OP_HDR_SIZE + 2u * n_idx_padded + 4u * oh->n_params;
        if (oh->size != want || oh->size > remaining) FAIL(MPYML_E_OP, (int32_t)i, 0);
        if (oh->n_in < d.min_in || oh->n_in > d.max_in || oh->n_out < d.min_out || oh->n_out > d.max_out
            || oh->n_params != d.n_params || n_idx > MPYML_MAX_OPERANDS) {
            FAIL(MPYML_E_OP, (int32_t)i, d.core ? 0 : MPYML_CHK_COUNT);
        }
        /* op record flags: only IN_PLACE, and only on an op whose kernel is in-place-safe */
        if ((oh->reserved & ~MPYML_OPF_IN_PLACE) != 0
            || ((oh->reserved & MPYML_OPF_IN_PLACE) && (!d.in_place_ok || oh->n_out != 1))) {
            FAIL(MPYML_E_OP, (int32_t)i, MPYML_CHK_FLAGS);
        }
        const uint16_t *idx = (const uint16_t *)(const void *)(op + MPYML_OP_HDR_SIZE);
        for (uint32_t k = 0; k < n_idx_padded; k++) {
            if (k >= n_idx) {
                if (idx[k] != MPYML_NO_TENSOR) FAIL(MPYML_E_OP, (int32_t)i, (int32_t)k);
            } else if (idx[k] != MPYML_NO_TENSOR && idx[k] >= h->n_tensors) {
                FAIL(MPYML_E_OP, (int32_t)i, (int32_t)k);
            }
        }
        const int32_t *prm = (const int32_t *)(const void *)(op + MPYML_OP_HDR_SIZE + 2u * n_idx_padded);
        if (d.core) {
            int bad = check_op(oh->opcode, idx, oh->n_in, prm, &tb);
            if (bad) FAIL(MPYML_E_OP, (int32_t)i, bad);
            /* Kernels are not in-place: the output may not share bytes with an input, except that a
             * RESHAPE may alias its input exactly (the planner's zero-copy reshape). */
            const mpyml_tensor_t *o0 = operand(&tb, idx[oh->n_in]);
            for (uint32_t k = 0; k < oh->n_in; k++) {
                const mpyml_tensor_t *ik = operand(&tb, idx[k]);
                if (oh->opcode == MPYML_OP_RESHAPE && ik == o0) continue;
                if (oh->opcode == MPYML_OP_RESHAPE && ik && ik->offset == o0->offset) continue;
                if ((oh->reserved & MPYML_OPF_IN_PLACE) && same_bytes(ik, o0)) continue;
                if (overlaps(ik, o0)) FAIL(MPYML_E_OP, (int32_t)i, 20 + (int32_t)k);
            }
        } else {
            int bad = check_generic(&d, oh, idx, prm, &tb);
            if (bad) FAIL(MPYML_E_OP, (int32_t)i, bad);
        }
        op += oh->size;
        remaining -= oh->size;
    }
    if (remaining != 0) FAIL(MPYML_E_OP, (int32_t)h->n_ops, 0);

    ctx->model_len = size;
    ctx->model = model;
    ctx->arena_size = h->arena_size;
    ctx->n_ops = h->n_ops;
    ctx->hdr = h;
    ctx->tensors = tensors;
    ctx->ops = ops;
    ctx->io = io;
    ctx->trusted = trusted;
    ctx->trusted_size = h->trusted_size;
    ctx->data = data;
    ctx->ctx_size = (uint32_t)need;
    ctx->magic = MPYML_CTX_MAGIC;
    return MPYML_OK;
}

int mpyml_prepare(mpyml_ctx_t *ctx, size_t ctx_len, const uint8_t *model, size_t len, mpyml_err_t *err) {
    return prepare_impl(ctx, ctx_len, model, len, 1, err);
}

int mpyml_prepare_in_place(mpyml_ctx_t *ctx, const uint8_t *model, size_t len, mpyml_err_t *err) {
    return prepare_impl(ctx, sizeof(mpyml_ctx_t), model, len, 0, err);
}

/* ------------------------------------------------------------------ invoke */

static void *tensor_ptr(const mpyml_ctx_t *ctx, uint8_t *arena, uint16_t idx) {
    if (idx == MPYML_NO_TENSOR) return NULL;
    const mpyml_tensor_t *t = &ctx->tensors[idx];
    if (t->storage == MPYML_S_ARENA) return arena + t->offset;
    const uint8_t *base = t->offset < ctx->trusted_size ? ctx->trusted : ctx->data;
    return (void *)(uintptr_t)(base + t->offset);
}

int mpyml_invoke(const mpyml_ctx_t *ctx, const uint8_t *model, size_t len, uint8_t *arena, size_t arena_len) {
    if (ctx->magic != MPYML_CTX_MAGIC || ctx->model != model || ctx->model_len != len) return MPYML_E_CTX;
    if (arena_len < ctx->arena_size) return MPYML_E_ARENA;
    if (((uintptr_t)arena & 3u) != 0) return MPYML_E_ALIGN;
    const uint8_t *op = ctx->ops;
    for (uint32_t i = 0; i < ctx->n_ops; i++) {
        const mpyml_op_hdr_t *oh = (const mpyml_op_hdr_t *)(const void *)op;
        const uint16_t *idx = (const uint16_t *)(const void *)(op + MPYML_OP_HDR_SIZE);
        uint32_t n_idx_padded = ((uint32_t)oh->n_in + oh->n_out + 1u) & ~1u;
        const void *prm = op + MPYML_OP_HDR_SIZE + 2u * n_idx_padded;
        const mpyml_tensor_t *tin = &ctx->tensors[idx[0] == MPYML_NO_TENSOR ? idx[oh->n_in] : idx[0]];
        const mpyml_tensor_t *tout = &ctx->tensors[idx[oh->n_in]];
        const int8_t *in = (const int8_t *)tensor_ptr(ctx, arena, idx[0] == MPYML_NO_TENSOR ? idx[oh->n_in] : idx[0]);
        int8_t *out = (int8_t *)tensor_ptr(ctx, arena, idx[oh->n_in]);
        mpyml_shape4_t si, so;
        shape4(tin, &si);
        shape4(tout, &so);
        switch (oh->opcode) {
            case MPYML_OP_CONV_2D:
            case MPYML_OP_DEPTHWISE_CONV_2D: {
                mpyml_shape4_t sf;
                shape4(&ctx->tensors[idx[1]], &sf);
                const int8_t *f = (const int8_t *)tensor_ptr(ctx, arena, idx[1]);
                const int32_t *bias = (const int32_t *)tensor_ptr(ctx, arena, idx[2]);
                const int32_t *mult = (const int32_t *)tensor_ptr(ctx, arena, idx[3]);
                const int32_t *shift = (const int32_t *)tensor_ptr(ctx, arena, idx[4]);
                if (oh->opcode == MPYML_OP_CONV_2D) {
                    mpyml_conv2d((const mpyml_conv_params_t *)prm, &si, in, &sf, f, bias, mult, shift, &so, out);
                } else {
                    mpyml_depthwise_conv2d((const mpyml_conv_params_t *)prm, &si, in, &sf, f, bias, mult, shift, &so, out);
                }
                break;
            }
            case MPYML_OP_FULLY_CONNECTED: {
                const mpyml_tensor_t *tf = &ctx->tensors[idx[1]];
                int32_t o = tf->dims[0], k = tf->dims[1];
                int32_t batches = (int32_t)(tensor_elems(tout) / (uint32_t)o);
                int per_channel = tensor_elems(&ctx->tensors[idx[3]]) != 1;
                mpyml_fully_connected((const mpyml_fc_params_t *)prm, batches, k, o, in,
                    (const int8_t *)tensor_ptr(ctx, arena, idx[1]),
                    (const int32_t *)tensor_ptr(ctx, arena, idx[2]),
                    (const int32_t *)tensor_ptr(ctx, arena, idx[3]),
                    (const int32_t *)tensor_ptr(ctx, arena, idx[4]), per_channel, out);
                break;
            }
            case MPYML_OP_AVERAGE_POOL_2D:
                mpyml_avg_pool_ref((const mpyml_pool_params_t *)prm, &si, in, &so, out);
                break;
            case MPYML_OP_MAX_POOL_2D:
                mpyml_max_pool_ref((const mpyml_pool_params_t *)prm, &si, in, &so, out);
                break;
            case MPYML_OP_ADD: {
                mpyml_shape4_t s2;
                shape4(&ctx->tensors[idx[1]], &s2);
                mpyml_add((const mpyml_add_params_t *)prm, &si, in, &s2,
                    (const int8_t *)tensor_ptr(ctx, arena, idx[1]), &so, out);
                break;
            }
            case MPYML_OP_RESHAPE:
                if ((const int8_t *)out != in) {
                    memmove(out, in, tout->nbytes);
                }
                break;
            case MPYML_OP_SOFTMAX: {
                int32_t depth = tout->dims[tout->ndim - 1];
                int32_t outer = (int32_t)(tensor_elems(tout) / (uint32_t)depth);
                mpyml_softmax_ref((const mpyml_softmax_params_t *)prm, outer, depth, in, out);
                break;
            }
            default: {
                mpyml_op_view_t v;
                uint32_t n_idx = (uint32_t)oh->n_in + oh->n_out;
                v.opcode = oh->opcode; v.n_in = oh->n_in; v.n_out = oh->n_out; v.n_params = oh->n_params;
                v.params = (const int32_t *)prm; v.data = ctx->data;
                v.trusted = ctx->trusted; v.trusted_size = ctx->trusted_size;
                for (uint32_t k = 0; k < n_idx; k++) {
                    v.t[k] = idx[k] == MPYML_NO_TENSOR ? NULL : &ctx->tensors[idx[k]];
                    v.ptr[k] = tensor_ptr(ctx, arena, idx[k]);
                }
                int st = mpyml_op_eval_ext(&v);
                if (st != MPYML_OK) return st;      /* an index input out of range (GATHER) */
                break;
            }
        }
        op += oh->size;
    }
    return MPYML_OK;
}

void mpyml_reset_state(const mpyml_ctx_t *ctx, uint8_t *arena, size_t arena_len) {
    if (ctx->magic != MPYML_CTX_MAGIC || arena_len < ctx->arena_size) return;
    for (uint32_t i = 0; i < ctx->hdr->n_tensors; i++) {
        const mpyml_tensor_t *t = &ctx->tensors[i];
        if (t->flags & MPYML_TF_STATE) memset(arena + t->offset, 0, t->nbytes);
    }
}
