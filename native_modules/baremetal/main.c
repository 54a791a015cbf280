/*
 * main.c - bare-metal harness for the mpyml engine (Cortex-M0/M3/M4/M7 under QEMU, semihosting).
 *
 * The job is linked into flash by blobs.S: the packed model (bm_model), the input samples
 * (bm_input: samples back to back, each the model's inputs in model order, raw int8) and the number
 * of invokes per sample (bm_repeat). The arena is the linker's .arena section: exactly the model's
 * arena_size, in RAM, filled with a junk pattern first so no kernel can rely on zeroed memory.
 *
 *   prepare once; for each sample, `repeat` times: copy the inputs in, invoke (between the
 *   bm_mark_begin / bm_mark_end calls, which bracket the instruction-count window); the output
 *   bytes of every repeat must hash equal; print the outputs of the last one.
 *
 * Console protocol (one line each, semihosting SYS_WRITE0):
 *   BM arch=<arch> model=<bytes> input=<bytes> arena_avail=<bytes> repeat=<n>
 *   PREPARE status=<s> index=<i> detail=<d> line=<l> arena=<bytes> inputs=<n> outputs=<n> sample_bytes=<n> samples=<n>
 *   OUT <sample> <output> <hex bytes>
 *   STACK used=<bytes> size=<bytes>
 *   END status=<exit status>
 * Exit status: 0 ok; 1..13 mpyml_prepare's status (mpyml_status_t); 64 + status for a failed
 * mpyml_invoke; 80 input size not a multiple of the sample size; 81 repeats gave different outputs;
 * 82 arena section smaller than the model needs; 99 CPU fault (startup.c).
 */
#include <stdint.h>
#include <string.h>
#include "mpyml_engine.h"
#include "semihost.h"

extern const uint8_t bm_model[], bm_model_end[];
extern const uint8_t bm_input[], bm_input_end[];
extern const uint32_t bm_repeat;
extern uint8_t __arena_start[], __arena_end[];
uint32_t bm_stack_used(void);
uint32_t bm_stack_size(void);

enum {
    EXIT_INVOKE_BASE = 64,
    EXIT_INPUT_SIZE = 80,
    EXIT_NONDETERMINISTIC = 81,
    EXIT_ARENA = 82,
};

#if defined(__ARM_ARCH_6M__)
#define BM_ARCH "armv6m"
#elif defined(__ARM_ARCH_7EM__) && defined(__ARM_FP) && (__ARM_FP & 8)
#define BM_ARCH "armv7emdp"
#elif defined(__ARM_ARCH_7EM__) && defined(__ARM_FP)
#define BM_ARCH "armv7emsp"
#elif defined(__ARM_ARCH_7EM__)
#define BM_ARCH "armv7em"
#elif defined(__ARM_ARCH_7M__)
#define BM_ARCH "armv7m"
#else
#define BM_ARCH "unknown"
#endif

/* Instruction-count window markers: the host counts the instructions QEMU executes from the first
 * instruction of bm_mark_begin to the first of bm_mark_end. Distinct bodies so identical-code folding
 * cannot merge them; noipa so the calls stay where they are. */
volatile uint32_t bm_window;

__attribute__((noinline, noipa)) void bm_mark_begin(void)
{
    bm_window = 1;
}

__attribute__((noinline, noipa)) void bm_mark_end(void)
{
    bm_window = 2;
}

/* the model is in flash, which nothing can write: the engine uses its records in place */
static mpyml_ctx_t ctx;

static const mpyml_tensor_t *io_tensor(uint32_t i)
{
    return &ctx.tensors[ctx.io[i]];
}

static void put_kv(const char *key, int32_t v)
{
    sh_puts(key);
    sh_put_i32(v);
}

static int finish(int status)
{
    sh_puts("STACK used=");
    sh_put_u32(bm_stack_used());
    sh_puts(" size=");
    sh_put_u32(bm_stack_size());
    sh_puts("\nEND status=");
    sh_put_u32((uint32_t)status);
    sh_puts("\n");
    return status;
}

int main(void)
{
    const uint8_t *model = bm_model;
    const size_t model_len = (size_t)(bm_model_end - bm_model);
    const size_t input_len = (size_t)(bm_input_end - bm_input);
    uint8_t *arena = __arena_start;
    const size_t arena_avail = (size_t)(__arena_end - __arena_start);
    const uint32_t repeat = bm_repeat;

    memset(arena, 0x5A, arena_avail); /* junk, not zeros */

    sh_puts("BM arch=" BM_ARCH);
    put_kv(" model=", (int32_t)model_len);
    put_kv(" input=", (int32_t)input_len);
    put_kv(" arena_avail=", (int32_t)arena_avail);
    put_kv(" repeat=", (int32_t)repeat);
    sh_puts("\n");

    mpyml_err_t err;
    int st = mpyml_prepare_in_place(&ctx, model, model_len, &err);
    uint32_t n_in = 0, n_out = 0, sample_bytes = 0;
    if (st == MPYML_OK) {
        n_in = ctx.hdr->n_inputs;
        n_out = ctx.hdr->n_outputs;
        for (uint32_t i = 0; i < n_in; i++) {
            sample_bytes += io_tensor(i)->nbytes;
        }
    }
    sh_puts("PREPARE");
    put_kv(" status=", st);
    put_kv(" index=", err.index);
    put_kv(" detail=", err.detail);
    put_kv(" line=", err.line);
    put_kv(" arena=", (int32_t)ctx.arena_size);
    put_kv(" inputs=", (int32_t)n_in);
    put_kv(" outputs=", (int32_t)n_out);
    put_kv(" sample_bytes=", (int32_t)sample_bytes);
    put_kv(" samples=", sample_bytes ? (int32_t)(input_len / sample_bytes) : 0);
    sh_puts("\n");
    if (st != MPYML_OK) {
        return finish(st);
    }
    if (arena_avail < ctx.arena_size) {
        return finish(EXIT_ARENA);
    }
    if (sample_bytes == 0 || input_len % sample_bytes != 0) {
        return finish(EXIT_INPUT_SIZE);
    }

    /* empty window first: the host subtracts its count (marker call overhead) from every invoke */
    bm_mark_begin();
    bm_mark_end();

    const uint32_t n_samples = (uint32_t)(input_len / sample_bytes);
    for (uint32_t s = 0; s < n_samples; s++) {
        uint32_t first_crc = 0;
        for (uint32_t r = 0; r < repeat; r++) {
            const uint8_t *src = bm_input + (size_t)s * sample_bytes;
            for (uint32_t i = 0; i < n_in; i++) {
                const mpyml_tensor_t *t = io_tensor(i);
                memcpy(arena + t->offset, src, t->nbytes);
                src += t->nbytes;
            }
            bm_mark_begin();
            st = mpyml_invoke(&ctx, model, model_len, arena, arena_avail);
            bm_mark_end();
            if (st != MPYML_OK) {
                sh_puts("INVOKE");
                put_kv(" status=", st);
                put_kv(" sample=", (int32_t)s);
                sh_puts("\n");
                return finish(EXIT_INVOKE_BASE + st);
            }
            uint32_t crc = 0;
            for (uint32_t o = 0; o < n_out; o++) {
                const mpyml_tensor_t *t = io_tensor(n_in + o);
                crc = mpyml_crc32(crc, arena + t->offset, t->nbytes);
            }
            if (r == 0) {
                first_crc = crc;
            } else if (crc != first_crc) {
                sh_puts("NONDETERMINISTIC");
                put_kv(" sample=", (int32_t)s);
                put_kv(" repeat=", (int32_t)r);
                sh_puts("\n");
                return finish(EXIT_NONDETERMINISTIC);
            }
        }
        for (uint32_t o = 0; o < n_out; o++) {
            const mpyml_tensor_t *t = io_tensor(n_in + o);
            sh_puts("OUT ");
            sh_put_u32(s);
            sh_puts(" ");
            sh_put_u32(o);
            sh_puts(" ");
            sh_put_hexbytes(arena + t->offset, t->nbytes);
            sh_puts("\n");
        }
    }
    return finish(0);
}
