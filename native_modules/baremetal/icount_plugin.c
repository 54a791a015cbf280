/*
 * icount_plugin.c - QEMU TCG plugin (host side): exact instruction counts of the harness's invoke
 * windows, and a per-instruction execution profile of those windows.
 *
 *   qemu-system-arm ... -plugin file=libicount.so,begin=0x<addr>,end=0x<addr>,out=<file>
 *
 * A window runs from the first instruction of bm_mark_begin (address `begin`) up to, not including,
 * the first instruction of bm_mark_end (`end`); main.c calls them around each mpyml_invoke. Every
 * guest instruction gets an inline "counter += 1" (one counter per guest PC, shared by all the
 * translations of that PC); the two marker instructions get a callback instead, which snapshots
 * the counters at window start and accumulates the difference at window end. Counting is exact
 * (QEMU's TB chaining stays on; no -singlestep, no exec log) and costs a few host instructions per
 * guest instruction.
 *
 * Output file (written at exit):
 *   W <instructions>                    one line per window, in order
 *   P <pc hex> <count> <size> <disassembly>   every PC executed inside windows (summed over them)
 *
 * Built with the host C compiler against the QEMU plugin API v1 (QEMU 4.2 .. 8.x); the few
 * declarations it needs are below so no QEMU development headers are required.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- QEMU plugin API v1: the subset used here (ABI-stable, see QEMU's include/qemu/qemu-plugin.h) */
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
    enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op,
    void *ptr, uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
char *qemu_plugin_insn_disas(const struct qemu_plugin_insn *insn);
void qemu_plugin_outs(const char *string);
#define EXPORT __attribute__((visibility("default")))
EXPORT int qemu_plugin_version = 1;
EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv);
/* ---- */

#define TABLE_BITS 17                  /* 131072 slots: ample for a firmware of a few hundred KiB */
#define TABLE_SIZE (1u << TABLE_BITS)
#define MAX_WINDOWS 65536

typedef struct {
    uint64_t pc;                        /* 0 = empty slot (address 0 holds the vector table, never code) */
    uint64_t count;                     /* executions since reset */
    uint64_t base;                      /* count at the start of the current window */
    uint64_t in_windows;                /* executions inside windows, summed */
    uint32_t size;
    char *disas;
} slot_t;

static slot_t *table;
static uint64_t begin_pc, end_pc;
static char out_path[4096];
static uint64_t *windows;
static size_t n_windows;
static int in_window;
static uint64_t n_slots;

static slot_t *slot_for(uint64_t pc)
{
    uint64_t h = (pc * 0x9E3779B97F4A7C15ull) >> (64 - TABLE_BITS);
    for (;;) {
        slot_t *s = &table[h];
        if (s->pc == pc) {
            return s;
        }
        if (s->pc == 0) {
            if (n_slots + 1 >= TABLE_SIZE) {
                return NULL;
            }
            n_slots++;
            s->pc = pc;
            return s;
        }
        h = (h + 1) & (TABLE_SIZE - 1);
    }
}

/* Sum of counts since the window began, over every slot: the instructions executed in the window. */
static void window_close(void)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < TABLE_SIZE; i++) {
        slot_t *s = &table[i];
        if (s->pc != 0 && s->count != s->base) {
            uint64_t d = s->count - s->base;
            s->in_windows += d;
            total += d;
        }
    }
    if (n_windows < MAX_WINDOWS) {
        windows[n_windows++] = total;
    }
    in_window = 0;
}

static void window_open(void)
{
    for (uint32_t i = 0; i < TABLE_SIZE; i++) {
        table[i].base = table[i].count;
    }
    in_window = 1;
}

static void on_begin(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    slot_t *s = udata;
    if (in_window) {
        window_close(); /* begin without end: close the open one (not expected from main.c) */
    }
    window_open();
    s->count++; /* counted inside the new window */
}

static void on_end(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    slot_t *s = udata;
    if (in_window) {
        window_close();
    }
    s->count++; /* outside any window */
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        slot_t *s = slot_for(pc);
        if (s == NULL) {
            qemu_plugin_outs("icount_plugin: PC table full, counts are incomplete\n");
            continue;
        }
        if (s->disas == NULL) {
            s->size = (uint32_t)qemu_plugin_insn_size(insn);
            s->disas = qemu_plugin_insn_disas(insn);
        }
        if (pc == begin_pc) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, s);
        } else if (pc == end_pc) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, s);
        } else {
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &s->count, 1);
        }
    }
}

static void plugin_exit(qemu_plugin_id_t id, void *udata)
{
    (void)id;
    (void)udata;
    FILE *f = fopen(out_path, "w");
    if (f == NULL) {
        qemu_plugin_outs("icount_plugin: cannot open the output file\n");
        return;
    }
    for (size_t i = 0; i < n_windows; i++) {
        fprintf(f, "W %" PRIu64 "\n", windows[i]);
    }
    for (uint32_t i = 0; i < TABLE_SIZE; i++) {
        const slot_t *s = &table[i];
        if (s->pc != 0 && s->in_windows != 0) {
            fprintf(f, "P %" PRIx64 " %" PRIu64 " %u %s\n", s->pc, s->in_windows, s->size,
                s->disas ? s->disas : "?");
        }
    }
    fclose(f);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "begin=", 6) == 0) {
            begin_pc = strtoull(a + 6, NULL, 0) & ~1ull; /* Thumb bit off */
        } else if (strncmp(a, "end=", 4) == 0) {
            end_pc = strtoull(a + 4, NULL, 0) & ~1ull;
        } else if (strncmp(a, "out=", 4) == 0) {
            snprintf(out_path, sizeof(out_path), "%s", a + 4);
        } else {
            fprintf(stderr, "icount_plugin: unknown argument %s\n", a);
            return 1;
        }
    }
    if (begin_pc == 0 || end_pc == 0 || out_path[0] == '\0') {
        fprintf(stderr, "icount_plugin: begin=, end= and out= are required\n");
        return 1;
    }
    table = calloc(TABLE_SIZE, sizeof(slot_t));
    windows = calloc(MAX_WINDOWS, sizeof(uint64_t));
    if (table == NULL || windows == NULL) {
        return 1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
    qemu_plugin_register_atexit_cb(id, plugin_exit, NULL);
    return 0;
}
