/*
 * fuzz_loader.c - "nothing a file contains may crash the VM": a mutation driver for the engine core.
 *
 * Built with -fsanitize=address,undefined -fno-sanitize-recover=all (native_modules/tests/Makefile,
 * target `sanitize`), so any out-of-bounds access, use of a bad pointer or undefined behaviour in
 * mpyml_prepare / mpyml_invoke kills the process with a report. For each seed .mpk it runs:
 *
 *   trunc       the file truncated at every byte offset (one allocation; the tail past the cut is
 *               ASan-poisoned, so a read beyond the truncated length is caught)
 *   trunc_fix   truncations with file_size / data_size patched and the CRC recomputed (sampled), so
 *               the table-bounds checks see short files
 *   flip_raw    random single-byte xor flips, CRC left alone (every one must be rejected)
 *   flip_crc    random byte flips with the CRC recomputed (biased towards the header and tables)
 *   struct      1-4 field-aware corruptions of header fields, tensor records (also with coherent
 *               dims/nbytes), op headers, operand indices, params, the io table and int32 constants
 *               (multipliers / shifts / biases), with the CRC recomputed
 *   align       the file at a buffer address 1..3 bytes off 4-byte alignment
 *
 * Every buffer handed to the engine is an exact-size heap allocation (ASan redzones on both sides).
 * Every accepted file is invoked on an arena of exactly ctx.arena_size bytes (filled with random
 * bytes), unless its arena exceeds -a or its estimated work exceeds -w (counted as skipped); after
 * invoke the model bytes are checked to be unchanged. Rejections are checked for a consistent
 * mpyml_err_t (status in range, a source line, an index of the right kind).
 *
 * Output: per phase "phase NAME: cases=.. accepted=.. invoked=.. skipped=.. rejected{STATUS=n ...}"
 * and a last line "TOTAL: N cases, K accepted, I invoked, 0 crashes" (a crash never gets there: the
 * sanitizer report, the phase/case being run and the path of a reproducer file are printed instead).
 * Exit status: 0 ok, 1 an engine contract was violated (bad error record, invoke failure, model
 * written), 2 usage / seed error.
 *
 *   fuzz_loader [-s SEED] [-f N] [-F N] [-m N] [-T N] [-t SECONDS] [-w WORK] [-a BYTES] [-o DIR] seed.mpk...
 *   fuzz_loader -r file.mpk...     replay files as they are (no CRC fix-up): prints each one's status
 *
 * With -DMPYML_LIBFUZZER the file instead provides LLVMFuzzerTestOneInput (clang -fsanitize=fuzzer):
 * the input's file_size and CRC fields are patched before mpyml_prepare so mutations reach the
 * structural checks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../engine/mpyml_engine.h"

/* ------------------------------------------------------------------ sanitizer hooks */

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(FUZZ_ASAN)
#define FUZZ_ASAN 1
#endif

#ifdef FUZZ_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>

/* the engine context and its copy of the model records (sequential cases share it) */
static uint64_t g_ctxbuf[(8u << 20) / 8];
#define POISON(p, n) __asan_poison_memory_region((p), (n))
#define UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* ------------------------------------------------------------------ little helpers */

static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static void wr16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void wr32(uint8_t *p, uint32_t v) { wr16(p, v); wr16(p + 2, v >> 16); }

static uint64_t g_rng = 1;

static uint64_t rnd64(void) {
    /* splitmix64: fixed-seed, identical on every platform */
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#ifndef MPYML_LIBFUZZER
static uint32_t rnd(uint32_t n) { return n ? (uint32_t)(rnd64() % n) : 0; }
#endif

static uint32_t crc_tab[256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        crc_tab[i] = c;
    }
}

static uint32_t crc_update(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = (crc >> 8) ^ crc_tab[(crc ^ p[i]) & 0xFFu];
    return ~crc;
}

/* The CRC the file's header must carry: over the whole file with the crc field (bytes 12..15) zeroed. */
static uint32_t file_crc(const uint8_t *b, size_t len) {
    static const uint8_t z4[4] = {0, 0, 0, 0};
    if (len < 16) return 0;
    uint32_t c = crc_update(0, b, 12);
    c = crc_update(c, z4, 4);
    return crc_update(c, b + 16, len - 16);
}

static const char *status_name(int st) {
    static const char *names[] = {"OK", "TRUNCATED", "MAGIC", "VERSION", "SIZE", "CRC", "HEADER", "ALIGN",
        "TENSOR", "OPCODE", "OP", "IO", "ARENA", "CTX"};
    return st >= 0 && st < (int)(sizeof(names) / sizeof(names[0])) ? names[st] : "?";
}

/* ------------------------------------------------------------------ case runner */

typedef struct {
    const char *name;
    unsigned long cases, accepted, invoked, skip_arena, skip_work, violations;
    unsigned long status[MPYML_E__COUNT + 1];
} stats_t;

static uint64_t g_max_work = 20000000u;         /* -w: estimated multiply-adds per invoke */
static uint32_t g_max_arena = 64u << 20;        /* -a */
static const char *g_seed_name = "?";
static int g_verbose = 0;

/* What is being run, for the death callback. */
static const uint8_t *g_cur = NULL;
static size_t g_cur_len = 0;
static const char *g_cur_phase = "?";
static unsigned long g_cur_case = 0;
static char g_cur_desc[256];

#ifndef MPYML_LIBFUZZER
static const char *g_crash_dir = NULL;          /* -o */

static void on_death(void) {
    static int done = 0;
    if (done++) return;
    fprintf(stderr, "\nfuzz_loader: CRASH on seed %s, phase %s, case #%lu (%s), file of %lu bytes\n",
        g_seed_name, g_cur_phase, g_cur_case, g_cur_desc, (unsigned long)g_cur_len);
    if (g_crash_dir && g_cur) {
        char path[1024];
        const char *base = strrchr(g_seed_name, '/');
        snprintf(path, sizeof(path), "%s/crash-%s-%s-%lu.mpk", g_crash_dir, base ? base + 1 : g_seed_name,
            g_cur_phase, g_cur_case);
        UNPOISON((void *)(uintptr_t)g_cur, g_cur_len);
        FILE *f = fopen(path, "wb");
        if (f) {
            fwrite(g_cur, 1, g_cur_len, f);
            fclose(f);
            fprintf(stderr, "fuzz_loader: reproducer written to %s (replay: fuzz_loader -r %s)\n", path, path);
        }
    }
    fflush(stderr);
}

#ifdef FUZZ_ASAN
/* UBSan's hook, called on every report (with gcc its runtime is separate from ASan's, whose death
 * callback it does not run) */
void __ubsan_on_report(void);
void __ubsan_on_report(void) {
    on_death();
}
#endif
#endif

static uint64_t elems(const mpyml_tensor_t *t) {
    uint64_t n = 1;
    for (int i = 0; i < t->ndim && i < 4; i++) n *= t->dims[i];
    return n;
}

/* Upper bound of the multiply-adds one invoke does (validated ctx: every index and shape is sane). */
static uint64_t work_estimate(const mpyml_ctx_t *ctx) {
    uint64_t w = 0;
    const uint8_t *op = ctx->ops;
    for (uint32_t i = 0; i < ctx->n_ops; i++) {
        const mpyml_op_hdr_t *oh = (const mpyml_op_hdr_t *)(const void *)op;
        const uint16_t *idx = (const uint16_t *)(const void *)(op + MPYML_OP_HDR_SIZE);
        uint32_t n_idx_padded = ((uint32_t)oh->n_in + oh->n_out + 1u) & ~1u;
        const int32_t *prm = (const int32_t *)(const void *)(op + MPYML_OP_HDR_SIZE + 2u * n_idx_padded);
        const mpyml_tensor_t *out = &ctx->tensors[idx[oh->n_in]];
        const mpyml_tensor_t *in = &ctx->tensors[idx[0] == MPYML_NO_TENSOR ? idx[oh->n_in] : idx[0]];
        /* windows are clipped to the input: at most min(window, input) taps per dimension */
        uint64_t in_h = in->ndim == 4 ? in->dims[1] : 1, in_w = in->ndim == 4 ? in->dims[2] : 1;
        uint64_t per = 4;
        if (oh->opcode == MPYML_OP_CONV_2D || oh->opcode == MPYML_OP_DEPTHWISE_CONV_2D) {
            const mpyml_tensor_t *f = &ctx->tensors[idx[1]];
            uint64_t kh = f->dims[1] < in_h ? f->dims[1] : in_h, kw = f->dims[2] < in_w ? f->dims[2] : in_w;
            per += kh * kw * (oh->opcode == MPYML_OP_CONV_2D ? f->dims[3] : 1u);
        } else if (oh->opcode == MPYML_OP_FULLY_CONNECTED) {
            per += ctx->tensors[idx[1]].dims[1];
        } else if (oh->opcode == MPYML_OP_AVERAGE_POOL_2D || oh->opcode == MPYML_OP_MAX_POOL_2D) {
            uint64_t fw = (uint32_t)prm[2] < in_w ? (uint32_t)prm[2] : in_w;
            uint64_t fh = (uint32_t)prm[3] < in_h ? (uint32_t)prm[3] : in_h;
            per += fw * fh;
        } else if (oh->opcode == MPYML_OP_SOFTMAX) {
            per += 8;
        } else if (oh->opcode == MPYML_OP_CONV_2D_INPLACE || oh->opcode == MPYML_OP_DEPTHWISE_CONV_2D_INPLACE) {
            /* the conv taps, plus copying each input byte to the scratch once */
            const mpyml_tensor_t *f = &ctx->tensors[idx[1]];
            uint64_t kh = f->dims[1] < in_h ? f->dims[1] : in_h, kw = f->dims[2] < in_w ? f->dims[2] : in_w;
            per += kh * kw * (oh->opcode == MPYML_OP_CONV_2D_INPLACE ? f->dims[3] : 1u);
            w += elems(in);
        } else if (oh->opcode > MPYML_OP_SOFTMAX) {
            /* op families: bounded by the elements of their inputs per output element (generous) */
            for (uint32_t k = 0; k < oh->n_in; k++) {
                if (idx[k] != MPYML_NO_TENSOR) per += elems(&ctx->tensors[idx[k]]);
            }
        }
        w += per * elems(out);
        if (w > ((uint64_t)1 << 62)) break;
        op += oh->size;
    }
    return w;
}

static void violation(stats_t *st, const char *what, const mpyml_err_t *err) {
    st->violations++;
    fprintf(stderr, "fuzz_loader: VIOLATION on seed %s, phase %s, case #%lu (%s): %s [status %d %s, index %d, "
        "detail %d, line %d]\n", g_seed_name, g_cur_phase, g_cur_case, g_cur_desc, what,
        err ? err->status : 0, err ? status_name(err->status) : "-", err ? err->index : 0, err ? err->detail : 0,
        err ? err->line : 0);
}

/* Is the error record consistent with the file? (the header is trusted once past the magic/size checks) */
static void check_err(stats_t *st, const uint8_t *m, size_t len, int rc, const mpyml_err_t *err) {
    if (rc != err->status || rc <= MPYML_OK || rc >= MPYML_E__COUNT || rc == MPYML_E_ARENA || rc == MPYML_E_CTX
        || err->line <= 0) {
        violation(st, "inconsistent error record", err);
        return;
    }
    if (len < MPYML_HEADER_SIZE) {
        if (rc != MPYML_E_TRUNCATED && rc != MPYML_E_ALIGN) violation(st, "short file not TRUNCATED", err);
        return;
    }
    const mpyml_header_t *h = (const mpyml_header_t *)(const void *)m;
    int32_t lim = -2;
    switch (rc) {
        case MPYML_E_TENSOR: lim = h->n_tensors; break;
        case MPYML_E_OPCODE: lim = h->n_ops; break;
        case MPYML_E_OP: lim = h->n_ops + 1; break;
        case MPYML_E_IO: lim = h->n_inputs + h->n_outputs; break;
        default: break;
    }
    if (lim == -2 ? err->index != -1 : (err->index < 0 || err->index >= lim)) {
        violation(st, "error index out of range", err);
    }
    if (rc == MPYML_E_OPCODE) {
        /* the op's first byte is its opcode: find the record */
        const uint8_t *op = m + h->ops_offset;
        for (int32_t i = 0; i < err->index; i++) op += rd16(op + 4);
        if (err->detail != op[0]) violation(st, "OPCODE detail is not the op code", err);
    }
}

/* Prepare (and invoke when accepted) the len bytes at m. m must stay valid and unchanged. */
static void run_case(stats_t *st, const uint8_t *m, size_t len) {
    mpyml_ctx_t *ctxp_ = (mpyml_ctx_t *)(void *)g_ctxbuf;
    mpyml_err_t err;
    g_cur = m;
    g_cur_len = len;
    st->cases++;
    /* the in-place loader (models in flash / immutable buffers) validates exactly like the copying one */
    mpyml_err_t err_ip;
    int rc_ip = mpyml_prepare_in_place(ctxp_, m, len, &err_ip);
    int rc = mpyml_prepare(ctxp_, sizeof(g_ctxbuf), m, len, &err);
    if (rc != rc_ip || (rc != MPYML_OK && (err.index != err_ip.index || err.detail != err_ip.detail))) {
        if (!(rc == MPYML_E_CTX && rc_ip == MPYML_OK)) violation(st, "in-place and copying loaders disagree", &err);
    }
    st->status[rc >= 0 && rc < MPYML_E__COUNT ? rc : MPYML_E__COUNT]++;
    if (g_verbose) {
        fprintf(stderr, "  %s #%lu %s -> %s index %d detail %d line %d\n", g_cur_phase, g_cur_case, g_cur_desc,
            status_name(rc), err.index, err.detail, err.line);
    }
    if (rc != MPYML_OK) {
        check_err(st, m, len, rc, &err);
        return;
    }
    st->accepted++;
    const mpyml_header_t *h = (const mpyml_header_t *)(const void *)m;
    if (ctxp_->magic != MPYML_CTX_MAGIC || ctxp_->model != m || ctxp_->model_len != len || ctxp_->arena_size != h->arena_size
        || ctxp_->n_ops != h->n_ops) {
        violation(st, "accepted but ctx inconsistent", &err);
        return;
    }
    if (ctxp_->arena_size > g_max_arena) {
        st->skip_arena++;
        return;
    }
    if (work_estimate(ctxp_) > g_max_work) {
        st->skip_work++;
        return;
    }
    uint8_t *snap = (uint8_t *)malloc(len);
    uint8_t *arena = (uint8_t *)malloc(ctxp_->arena_size ? ctxp_->arena_size : 1);
    if (!snap || !arena) {
        fprintf(stderr, "fuzz_loader: out of memory\n");
        exit(2);
    }
    memcpy(snap, m, len);
    for (uint32_t i = 0; i < ctxp_->arena_size; i++) arena[i] = (uint8_t)rnd64();
    /* contract checks that run nothing: arena one byte short, model length changed */
    if (ctxp_->arena_size > 0 && mpyml_invoke(ctxp_, m, len, arena, ctxp_->arena_size - 1) != MPYML_E_ARENA) {
        violation(st, "invoke accepted a short arena", NULL);
    }
    if (mpyml_invoke(ctxp_, m, len - 1, arena, ctxp_->arena_size) != MPYML_E_CTX) {
        violation(st, "invoke accepted a different model length", NULL);
    }
    int ri = mpyml_invoke(ctxp_, m, len, arena, ctxp_->arena_size);
    st->invoked++;
    /* MPYML_E_INDEX: a GATHER index (arena values) out of range, refused at invoke by design */
    if (ri != MPYML_OK && ri != MPYML_E_INDEX) violation(st, "invoke of an accepted model failed", NULL);
    if (memcmp(snap, m, len) != 0) violation(st, "invoke wrote into the model buffer", NULL);
    free(arena);
    free(snap);
}

#ifndef MPYML_LIBFUZZER

/* ------------------------------------------------------------------ seed layout */

typedef struct {
    uint8_t *w;                 /* working copy, exactly len bytes */
    const uint8_t *orig;        /* pristine seed */
    size_t len;
    uint32_t n_tensors, n_ops, n_io, tensors_off, ops_off, ops_size, io_off, data_off, data_size, arena_size;
    uint32_t *op_off;           /* file offset of each op record */
    uint32_t *i32_tensors;      /* indices of int32 const tensors */
    uint32_t n_i32;
} seed_t;

/* Journal of the bytes changed in the working copy, to restore it after each case. */
#define JMAX 64
static struct { uint32_t off, n; uint8_t old[8]; } g_j[JMAX];
static int g_jn = 0;

static void put(seed_t *s, uint32_t off, uint32_t v, uint32_t n) {
    if (off >= s->len || n > s->len - off || g_jn >= JMAX) return;
    g_j[g_jn].off = off;
    g_j[g_jn].n = n;
    memcpy(g_j[g_jn].old, s->w + off, n);
    g_jn++;
    for (uint32_t i = 0; i < n; i++) s->w[off + i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get(const seed_t *s, uint32_t off, uint32_t n) {
    uint32_t v = 0;
    for (uint32_t i = 0; i < n && off + i < s->len; i++) v |= (uint32_t)s->w[off + i] << (8 * i);
    return v;
}

static void restore(seed_t *s) {
    while (g_jn > 0) {
        g_jn--;
        memcpy(s->w + g_j[g_jn].off, g_j[g_jn].old, g_j[g_jn].n);
    }
}

static void fix_crc(seed_t *s) {
    put(s, 12, file_crc(s->w, s->len), 4);
}

/* ------------------------------------------------------------------ mutators */

/* An "interesting" replacement for a field of n bytes holding v. */
static uint32_t interesting(const seed_t *s, uint32_t v, uint32_t n) {
    static const int32_t special[] = {0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 63, 64, 127, 128, 129, 255, 256,
        1023, 1024, 1025, 4096, 32767, 32768, 65535, 65536, 65537, 0x7FFFFFFF, -1, -2, -16, -30, -31, -32, -33,
        -127, -128, -129, -1024, -1025, -65536, (int32_t)0x80000000, (int32_t)0x80000001, 30, 29, 20, 21, 5, 6, 9};
    uint32_t r;
    switch (rnd(8)) {
        case 0: r = (uint32_t)special[rnd(sizeof(special) / sizeof(special[0]))]; break;
        case 1: r = v + 1 + rnd(4); break;
        case 2: r = v - 1 - rnd(4); break;
        case 3: r = v ^ (1u << rnd(8 * n)); break;
        case 4: r = rnd(2) ? v * 2 : v / 2; break;
        case 5: {
            /* values that mean something elsewhere in this file */
            const uint32_t rel[] = {(uint32_t)s->len, (uint32_t)s->len - 1, (uint32_t)s->len + 1, s->data_off,
                s->data_size, s->n_tensors, s->n_tensors - 1, s->n_tensors + 1, s->arena_size,
                s->arena_size + 16, s->arena_size - 16, s->ops_off, s->ops_size, s->io_off, s->tensors_off,
                MPYML_NO_TENSOR, s->n_ops, s->n_ops + 1};
            r = rel[rnd(sizeof(rel) / sizeof(rel[0]))];
            break;
        }
        case 6: r = v + (rnd(2) ? 16u : 0u - 16u) * (1 + rnd(4)); break;
        default: r = (uint32_t)rnd64(); break;
    }
    return r;
}

static void mut_field(seed_t *s, uint32_t off, uint32_t n, char *desc, size_t dn, const char *what) {
    uint32_t v = get(s, off, n), r = interesting(s, v, n);
    if (n < 4) r &= (1u << (8 * n)) - 1u;
    if (r == v) r = v ^ 1u;
    put(s, off, r, n);
    size_t l = strlen(desc);
    snprintf(desc + l, dn - l, "%s%s@%u=%u(was %u)", l ? " + " : "", what, off, r, v);
}

static const struct { uint8_t off, n; const char *name; } HDR[] = {
    {0, 4, "magic"}, {4, 2, "version"}, {6, 2, "header_size"}, {8, 4, "file_size"}, {16, 4, "arena_size"},
    {20, 2, "n_tensors"}, {22, 2, "n_ops"}, {24, 2, "n_inputs"}, {26, 2, "n_outputs"}, {28, 4, "tensors_offset"},
    {32, 4, "ops_offset"}, {36, 4, "ops_size"}, {40, 4, "io_offset"}, {44, 4, "data_offset"},
    {48, 4, "data_size"}, {52, 4, "macs"}, {56, 4, "sparse_size"}, {60, 4, "trusted_size"},
};
static const struct { uint8_t off, n; const char *name; } TEN[] = {
    {0, 1, "type"}, {1, 1, "ndim"}, {2, 1, "storage"}, {3, 1, "tflags"}, {4, 2, "dim0"}, {6, 2, "dim1"},
    {8, 2, "dim2"}, {10, 2, "dim3"}, {12, 4, "toffset"}, {16, 4, "nbytes"}, {20, 4, "zero_point"},
    {24, 4, "scale"}, {28, 4, "treserved"},
};
static const struct { uint8_t off, n; const char *name; } OPH[] = {
    {0, 1, "opcode"}, {1, 1, "n_in"}, {2, 1, "n_out"}, {3, 1, "n_params"}, {4, 2, "opsize"}, {6, 2, "opreserved"},
};

/* A tensor gets a new shape with nbytes kept consistent (so the op-level shape checks are reached). */
static void mut_shape(seed_t *s, char *desc, size_t dn) {
    uint32_t t = rnd(s->n_tensors), base = s->tensors_off + 32u * t;
    uint32_t es = s->w[base] == 2 ? 4u : 1u;
    uint32_t nd = rnd(3) ? s->w[base + 1] : 1 + rnd(4);
    if (nd < 1 || nd > 4) nd = 1 + rnd(4);
    uint64_t prod = 1;
    uint32_t d[4] = {0, 0, 0, 0};
    for (uint32_t i = 0; i < nd; i++) {
        uint32_t o = get(s, base + 4 + 2 * i, 2);
        switch (rnd(6)) {
            case 0: d[i] = 1; break;
            case 1: d[i] = o ? o : 1; break;
            case 2: d[i] = o + 1; break;
            case 3: d[i] = o > 1 ? o - 1 : 2; break;
            case 4: d[i] = 1 + rnd(64); break;
            default: d[i] = rnd(8) ? o * 2 : 65535; break;
        }
        if (d[i] == 0 || d[i] > 65535) d[i] = 1;
        prod *= d[i];
    }
    put(s, base + 1, nd, 1);
    for (uint32_t i = 0; i < 4; i++) put(s, base + 4 + 2 * i, d[i], 2);
    put(s, base + 16, (uint32_t)(prod * es), 4);
    if (rnd(2)) {
        /* and grow the arena if the tensor lives there, so it still fits */
        uint64_t end = (uint64_t)get(s, base + 12, 4) + prod * es;
        uint64_t a = (end + 15) & ~(uint64_t)15;
        if (s->w[base + 2] == 0 && a > get(s, 16, 4) && a < 0xFFFFFFF0u) put(s, 16, (uint32_t)a, 4);
    }
    size_t l = strlen(desc);
    snprintf(desc + l, dn - l, "%sshape t%u=%u[%u,%u,%u,%u]", l ? " + " : "", t, nd, d[0], d[1], d[2], d[3]);
}

static void mut_struct(seed_t *s, char *desc, size_t dn) {
    uint32_t k = rnd(100);
    char what[48];
    if (k < 14) {
        uint32_t f = rnd(sizeof(HDR) / sizeof(HDR[0]));
        mut_field(s, HDR[f].off, HDR[f].n, desc, dn, HDR[f].name);
    } else if (k < 36) {
        uint32_t t = rnd(s->n_tensors), f = rnd(sizeof(TEN) / sizeof(TEN[0]));
        snprintf(what, sizeof(what), "t%u.%s", t, TEN[f].name);
        mut_field(s, s->tensors_off + 32u * t + TEN[f].off, TEN[f].n, desc, dn, what);
    } else if (k < 44) {
        mut_shape(s, desc, dn);
    } else if (k < 52) {
        uint32_t o = rnd(s->n_ops), f = rnd(sizeof(OPH) / sizeof(OPH[0]));
        snprintf(what, sizeof(what), "op%u.%s", o, OPH[f].name);
        mut_field(s, s->op_off[o] + OPH[f].off, OPH[f].n, desc, dn, what);
    } else if (k < 66) {
        /* operand index: another tensor, NO_TENSOR, out of range, or another operand of the same op */
        uint32_t o = rnd(s->n_ops), off = s->op_off[o];
        uint32_t n_idx = (uint32_t)s->orig[off + 1] + s->orig[off + 2], np = (n_idx + 1) & ~1u;
        uint32_t j = rnd(np), v;
        switch (rnd(5)) {
            case 0: v = rnd(s->n_tensors); break;
            case 1: v = MPYML_NO_TENSOR; break;
            case 2: v = s->n_tensors + rnd(3); break;
            case 3: v = get(s, off + 8 + 2 * rnd(np), 2); break;
            default: v = interesting(s, get(s, off + 8 + 2 * j, 2), 2) & 0xFFFFu; break;
        }
        size_t l = strlen(desc);
        snprintf(desc + l, dn - l, "%sop%u.operand%u=%u(was %u)", l ? " + " : "", o, j, v, get(s, off + 8 + 2 * j, 2));
        put(s, off + 8 + 2 * j, v, 2);
    } else if (k < 84) {
        uint32_t o = rnd(s->n_ops), off = s->op_off[o];
        uint32_t n_idx = (uint32_t)s->orig[off + 1] + s->orig[off + 2], np = (n_idx + 1) & ~1u;
        uint32_t n_prm = s->orig[off + 3];
        if (n_prm == 0) {
            mut_field(s, off + 3, 1, desc, dn, "op.n_params");
        } else {
            uint32_t j = rnd(n_prm);
            snprintf(what, sizeof(what), "op%u.param%u", o, j);
            mut_field(s, off + 8 + 2 * np + 4 * j, 4, desc, dn, what);
        }
    } else if (k < 90) {
        uint32_t i = rnd(s->n_io);
        snprintf(what, sizeof(what), "io%u", i);
        if (rnd(2)) {
            put(s, s->io_off + 2 * i, rnd(s->n_tensors), 2);
            size_t l = strlen(desc);
            snprintf(desc + l, dn - l, "%s%s=%u", l ? " + " : "", what, get(s, s->io_off + 2 * i, 2));
        } else {
            mut_field(s, s->io_off + 2 * i, 2, desc, dn, what);
        }
    } else if (k < 96 && s->n_i32 > 0) {
        /* a multiplier / shift / bias value */
        uint32_t t = s->i32_tensors[rnd(s->n_i32)], base = s->tensors_off + 32u * t;
        uint32_t n = get(s, base + 16, 4) / 4, e = rnd(n ? n : 1);
        snprintf(what, sizeof(what), "t%u[%u]", t, e);
        mut_field(s, s->data_off + get(s, base + 12, 4) + 4 * e, 4, desc, dn, what);
    } else {
        /* copy one tensor record over another */
        uint32_t a = rnd(s->n_tensors), b = rnd(s->n_tensors);
        for (uint32_t i = 0; i < 32; i += 4) put(s, s->tensors_off + 32 * b + i, get(s, s->tensors_off + 32 * a + i, 4), 4);
        size_t l = strlen(desc);
        snprintf(desc + l, dn - l, "%stensor%u:=tensor%u", l ? " + " : "", b, a);
    }
}

/* ------------------------------------------------------------------ phases */

static double g_deadline = 0;
static int g_budget_hit = 0;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int over_budget(void) {
    if (g_deadline > 0 && (g_cur_case & 31u) == 0 && now() > g_deadline) {
        g_budget_hit = 1;
        return 1;
    }
    return 0;
}

static double g_phase_t0 = 0;

static void begin(stats_t *st, const char *name) {
    g_phase_t0 = now();
    memset(st, 0, sizeof(*st));
    st->name = name;
    g_cur_phase = name;
    g_cur_case = 0;
    g_cur_desc[0] = 0;
}

static stats_t g_total;

static void report(const stats_t *st) {
    printf("phase %s: cases=%lu accepted=%lu invoked=%lu skipped=%lu rejected{", st->name, st->cases, st->accepted,
        st->invoked, st->skip_arena + st->skip_work);
    int first = 1;
    for (int i = 1; i <= MPYML_E__COUNT; i++) {
        if (st->status[i]) {
            printf("%s%s=%lu", first ? "" : " ", status_name(i), st->status[i]);
            first = 0;
        }
    }
    printf("} %.2fs%s\n", now() - g_phase_t0, st->violations ? " VIOLATIONS" : "");
    g_total.cases += st->cases;
    g_total.accepted += st->accepted;
    g_total.invoked += st->invoked;
    g_total.skip_arena += st->skip_arena;
    g_total.skip_work += st->skip_work;
    g_total.violations += st->violations;
    for (int i = 0; i <= MPYML_E__COUNT; i++) g_total.status[i] += st->status[i];
    fflush(stdout);
}

/* Every byte offset: one exact allocation, the tail beyond the cut poisoned byte by byte. */
static void phase_trunc(seed_t *s) {
    stats_t st;
    begin(&st, "trunc");
    uint8_t *b = (uint8_t *)malloc(s->len);
    memcpy(b, s->orig, s->len);
    for (size_t n = s->len + 1; n-- > 0;) {
        if (n < s->len) POISON(b + n, 1);
        g_cur_case = (unsigned long)n;
        snprintf(g_cur_desc, sizeof(g_cur_desc), "truncated to %lu bytes", (unsigned long)n);
        run_case(&st, b, n);
    }
    UNPOISON(b, s->len);
    free(b);
    report(&st);
}

/* Truncations with file_size (and sometimes data_size) patched and the CRC recomputed. */
static void phase_trunc_fix(seed_t *s, unsigned long samples) {
    stats_t st;
    begin(&st, "trunc_fix");
    size_t dense = s->data_off + 64 < s->len ? s->data_off + 64 : s->len;
    uint8_t *b = (uint8_t *)malloc(s->len);
    for (size_t n = 0; n <= s->len; g_cur_case++) {
        if (over_budget()) break;
        UNPOISON(b, s->len);
        memcpy(b, s->orig, n);
        POISON(b + n, s->len - n);
        int variant = (int)(g_cur_case % 3);
        if (n >= 12) wr32(b + 8, (uint32_t)n);
        if (variant == 1 && n >= 52 && n > s->data_off) wr32(b + 48, (uint32_t)(n - s->data_off));
        if (variant == 2 && n >= 52) wr32(b + 48, n > s->data_off ? (uint32_t)((n - s->data_off) & ~15u) : 0);
        if (n >= 16) wr32(b + 12, file_crc(b, n));
        snprintf(g_cur_desc, sizeof(g_cur_desc), "truncated to %lu bytes, file_size%s and CRC fixed",
            (unsigned long)n, variant ? ", data_size" : "");
        run_case(&st, b, n);
        if (n == s->len) break;
        if (n < dense) {
            n++;
        } else {
            size_t step = (s->len - dense) / (samples ? samples : 1);
            n += step ? step + rnd((uint32_t)step) : 1;
            if (n > s->len) n = s->len;
        }
    }
    UNPOISON(b, s->len);
    free(b);
    report(&st);
}

static void phase_flips(seed_t *s, unsigned long count, int fix) {
    stats_t st;
    begin(&st, fix ? "flip_crc" : "flip_raw");
    for (g_cur_case = 0; g_cur_case < count; g_cur_case++) {
        if (over_budget()) break;
        uint32_t nflip = fix ? 1 + (rnd(4) == 0 ? rnd(4) : 0) : 1;
        g_cur_desc[0] = 0;
        for (uint32_t i = 0; i < nflip; i++) {
            /* with the CRC fixed, 3 in 5 flips land in the header/tables (the data section is
             * mostly weights, which no check can reject) */
            uint32_t off = (fix && rnd(5) < 3) ? rnd(s->data_off) : rnd((uint32_t)s->len);
            uint8_t x = (uint8_t)(1 + rnd(255));
            put(s, off, s->w[off] ^ x, 1);
            size_t l = strlen(g_cur_desc);
            snprintf(g_cur_desc + l, sizeof(g_cur_desc) - l, "%sbyte %u ^= 0x%02x", i ? ", " : "", off, x);
        }
        if (fix) fix_crc(s);
        run_case(&st, s->w, s->len);
        restore(s);
    }
    report(&st);
}

static void phase_struct(seed_t *s, unsigned long count) {
    stats_t st;
    begin(&st, "struct");
    for (g_cur_case = 0; g_cur_case < count; g_cur_case++) {
        if (over_budget()) break;
        uint32_t r = rnd(20), n = r < 12 ? 1 : (r < 17 ? 2 : 3 + rnd(2));
        g_cur_desc[0] = 0;
        for (uint32_t i = 0; i < n; i++) mut_struct(s, g_cur_desc, sizeof(g_cur_desc));
        fix_crc(s);
        run_case(&st, s->w, s->len);
        restore(s);
    }
    report(&st);
}

static void phase_align(seed_t *s) {
    stats_t st;
    begin(&st, "align");
    for (size_t k = 1; k < 4; k++) {
        uint8_t *b = (uint8_t *)malloc(s->len + 4);
        memcpy(b + k, s->orig, s->len);
        g_cur_case = (unsigned long)k;
        snprintf(g_cur_desc, sizeof(g_cur_desc), "buffer at address %% 4 == %lu", (unsigned long)k);
        mpyml_ctx_t *ctxp_ = (mpyml_ctx_t *)(void *)g_ctxbuf;
        mpyml_err_t err;
        st.cases++;
        int rc = mpyml_prepare(ctxp_, sizeof(g_ctxbuf), b + k, s->len, &err);
        st.status[rc]++;
        if (rc != MPYML_E_ALIGN) violation(&st, "misaligned model not rejected with ALIGN", &err);
        free(b);
    }
    /* a misaligned arena is refused by invoke */
    mpyml_ctx_t *ctxp_ = (mpyml_ctx_t *)(void *)g_ctxbuf;
    mpyml_err_t err;
    uint8_t *arena = (uint8_t *)malloc(s->arena_size + 4);
    if (mpyml_prepare(ctxp_, sizeof(g_ctxbuf), s->w, s->len, &err) != MPYML_OK
        || mpyml_invoke(ctxp_, s->w, s->len, arena + 1, s->arena_size) != MPYML_E_ALIGN) {
        violation(&st, "misaligned arena not rejected with ALIGN", &err);
    }
    free(arena);
    report(&st);
}

/* ------------------------------------------------------------------ driver */

static int load_seed(seed_t *s, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_loader: cannot open %s\n", path);
        return 0;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *orig = (uint8_t *)malloc(n > 0 ? (size_t)n : 1);
    if (n <= 0 || fread(orig, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        fprintf(stderr, "fuzz_loader: cannot read %s\n", path);
        return 0;
    }
    fclose(f);
    memset(s, 0, sizeof(*s));
    s->orig = orig;
    s->len = (size_t)n;
    s->w = (uint8_t *)malloc(s->len);
    memcpy(s->w, orig, s->len);
    mpyml_ctx_t *ctxp_ = (mpyml_ctx_t *)(void *)g_ctxbuf;
    mpyml_err_t err;
    if (mpyml_prepare(ctxp_, sizeof(g_ctxbuf), s->w, s->len, &err) != MPYML_OK) {
        fprintf(stderr, "fuzz_loader: seed %s does not load: %s (index %d detail %d line %d)\n", path,
            mpyml_status_str(err.status), err.index, err.detail, err.line);
        return 0;
    }
    const mpyml_header_t *h = ctxp_->hdr;
    s->n_tensors = h->n_tensors;
    s->n_ops = h->n_ops;
    s->n_io = (uint32_t)h->n_inputs + h->n_outputs;
    s->tensors_off = h->tensors_offset;
    s->ops_off = h->ops_offset;
    s->ops_size = h->ops_size;
    s->io_off = h->io_offset;
    s->data_off = h->data_offset;
    s->data_size = h->data_size;
    s->arena_size = h->arena_size;
    s->op_off = (uint32_t *)malloc(sizeof(uint32_t) * s->n_ops);
    uint32_t off = s->ops_off;
    for (uint32_t i = 0; i < s->n_ops; i++) {
        s->op_off[i] = off;
        off += rd16(s->orig + off + 4);
    }
    s->i32_tensors = (uint32_t *)malloc(sizeof(uint32_t) * s->n_tensors);
    for (uint32_t i = 0; i < s->n_tensors; i++) {
        const mpyml_tensor_t *t = &ctxp_->tensors[i];
        if (t->type == MPYML_T_INT32 && t->storage == MPYML_S_CONST) s->i32_tensors[s->n_i32++] = i;
    }
    return 1;
}

static void free_seed(seed_t *s) {
    free((void *)(uintptr_t)s->orig);
    free(s->w);
    free(s->op_off);
    free(s->i32_tensors);
}

/* Replay files as they are (no CRC fix-up): one line per file, "replay PATH: STATUS index=I detail=D
 * line=L invoked=0|1". */
static int replay(int n, char **files) {
    stats_t st;
    begin(&st, "replay");
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(files[i], "rb");
        if (!f) {
            fprintf(stderr, "fuzz_loader: cannot open %s\n", files[i]);
            return 2;
        }
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *b = (uint8_t *)malloc(len > 0 ? (size_t)len : 1);
        size_t got = len > 0 ? fread(b, 1, (size_t)len, f) : 0;
        fclose(f);
        g_seed_name = files[i];
        g_cur_case = (unsigned long)i;
        snprintf(g_cur_desc, sizeof(g_cur_desc), "replay of %s", files[i]);
        unsigned long invoked = st.invoked;
        mpyml_ctx_t *ctxp_ = (mpyml_ctx_t *)(void *)g_ctxbuf;
        mpyml_err_t err;
        int rc = mpyml_prepare(ctxp_, sizeof(g_ctxbuf), b, got, &err);
        run_case(&st, b, got);
        printf("replay %s: %s index=%d detail=%d line=%d invoked=%lu\n", files[i], status_name(rc), err.index,
            err.detail, err.line, st.invoked - invoked);
        free(b);
    }
    report(&st);
    printf("TOTAL: %lu cases, %lu accepted, %lu invoked, 0 crashes, %lu violations\n", st.cases, st.accepted,
        st.invoked, st.violations);
    return st.violations ? 1 : 0;
}

static void usage(void) {
    fprintf(stderr, "usage: fuzz_loader [-s SEED] [-f RAW_FLIPS] [-F CRC_FLIPS] [-m STRUCT] [-T TRUNC_FIX_SAMPLES]\n"
        "                   [-t SECONDS] [-w MAX_WORK] [-a MAX_ARENA] [-o CRASH_DIR] [-v] seed.mpk...\n"
        "       fuzz_loader -r file.mpk...\n");
}

int main(int argc, char **argv) {
    unsigned long seed = 1, n_raw = 2000, n_crc = 4000, n_struct = 20000, n_tfix = 600;
    double budget = 0;
    int i = 1;
    crc_init();
#ifdef FUZZ_ASAN
    __sanitizer_set_death_callback(on_death);
#endif
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        char o = argv[i][1];
        if (o == 'v') {
            g_verbose = 1;
            continue;
        }
        if (o == 'r') return replay(argc - i - 1, argv + i + 1);
        if (i + 1 >= argc) {
            usage();
            return 2;
        }
        const char *a = argv[++i];
        switch (o) {
            case 's': seed = strtoul(a, NULL, 0); break;
            case 'f': n_raw = strtoul(a, NULL, 0); break;
            case 'F': n_crc = strtoul(a, NULL, 0); break;
            case 'm': n_struct = strtoul(a, NULL, 0); break;
            case 'T': n_tfix = strtoul(a, NULL, 0); break;
            case 't': budget = strtod(a, NULL); break;
            case 'w': g_max_work = strtoull(a, NULL, 0); break;
            case 'a': g_max_arena = (uint32_t)strtoul(a, NULL, 0); break;
            case 'o': g_crash_dir = a; break;
            default: usage(); return 2;
        }
    }
    if (i >= argc) {
        usage();
        return 2;
    }
    double t0 = now();
    int n_seeds = argc - i;
    for (; i < argc; i++) {
        seed_t s;
        g_seed_name = argv[i];
        if (!load_seed(&s, argv[i])) return 2;
        g_rng = seed;
        /* the time budget is shared evenly by the seeds, and within a seed by the mutation phases */
        double ts = now();
        double per_seed = budget > 0 ? budget / n_seeds : 0;
        printf("seed %s: %lu bytes, %u tensors, %u ops, data at %u, arena %u\n", argv[i], (unsigned long)s.len,
            s.n_tensors, s.n_ops, s.data_off, s.arena_size);
        phase_trunc(&s);
        phase_align(&s);
        g_deadline = per_seed > 0 ? ts + per_seed * 0.15 : 0;
        phase_trunc_fix(&s, n_tfix);
        g_deadline = per_seed > 0 ? ts + per_seed * 0.25 : 0;
        phase_flips(&s, n_raw, 0);
        g_deadline = per_seed > 0 ? ts + per_seed * 0.5 : 0;
        phase_flips(&s, n_crc, 1);
        g_deadline = per_seed > 0 ? ts + per_seed : 0;
        phase_struct(&s, n_struct);
        g_deadline = 0;
        free_seed(&s);
    }
    printf("status totals:");
    for (int k = 0; k <= MPYML_E__COUNT; k++) {
        if (g_total.status[k]) printf(" %s=%lu", status_name(k), g_total.status[k]);
    }
    printf("\nskipped invokes: %lu arena > %u bytes, %lu work > %llu\n", g_total.skip_arena, g_max_arena,
        g_total.skip_work, (unsigned long long)g_max_work);
    if (g_budget_hit) printf("time budget of %.0f s reached: some phases stopped early\n", budget);
    printf("elapsed %.1f s\n", now() - t0);
    printf("TOTAL: %lu cases, %lu accepted, %lu invoked, 0 crashes, %lu violations\n", g_total.cases,
        g_total.accepted, g_total.invoked, g_total.violations);
    return g_total.violations ? 1 : 0;
}

#else /* MPYML_LIBFUZZER */

/* libFuzzer: the input is a whole .mpk; file_size and CRC are made to match so that mutations reach
 * the structural checks (a raw CRC mismatch is covered by the mutation driver above). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init = 0;
    if (!init) {
        crc_init();
        init = 1;
    }
    uint8_t *b = (uint8_t *)malloc(size ? size : 1);
    memcpy(b, data, size);
    if (size >= 16) {
        wr32(b + 8, (uint32_t)size);
        wr32(b + 12, file_crc(b, size));
    }
    stats_t st;
    memset(&st, 0, sizeof(st));
    st.name = g_cur_phase = "libfuzzer";
    g_seed_name = "libfuzzer";
    g_rng = 1;
    g_max_work = 5000000u;
    g_max_arena = 4u << 20;
    run_case(&st, b, size);
    free(b);
    if (st.violations) abort();
    return 0;
}

#endif
