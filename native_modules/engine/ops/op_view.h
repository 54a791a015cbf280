/*
 * ops/op_view.h - how the loader hands one op to its kernel family (ops of code >= 9).
 *
 * Every such op has, in its family's file in ops/:
 *   int  <kernel>_check(const mpyml_op_view_t *v);   0 = valid, else an MPYML_CHK_* code (mpyml_spec.h)
 *   void <kernel>_eval(const mpyml_op_view_t *v);    runs it; trusts everything _check accepted
 *   (an op declared fails=True in the spec, e.g. GATHER: int <kernel>_eval, 0 or an mpyml_status_t such as
 *    MPYML_E_INDEX when an input VALUE it must not trust (an index) is out of range; it checks before writing)
 * Before _check runs, the loader has already verified (from the spec, op_table.c): the operand and param
 * counts, every param inside its spec range, every operand index, each operand's type and storage as the
 * spec lists them (absent only where optional), that each tensor record is valid (dims >= 1, nbytes =
 * elements * element size, inside the arena / data section, aligned), and that no output shares arena
 * bytes with an input or another output. _check does what is op-specific: shapes, cross-param rules,
 * values inside constant operands (read through mpyml_view_const). Kernels never allocate; only fails=True
 * kernels can stop an invoke (with a status, never by reading out of bounds).
 * A const operand whose VALUES the kernel relies on (index tables, shifts) must be marked trusted=True
 * in the spec: the loader then requires it inside the header's trusted region, which it copies at load,
 * so a caller writing into the model buffer after load cannot change it.
 */
#ifndef MPYML_OP_VIEW_H
#define MPYML_OP_VIEW_H

#include <stddef.h>
#include <stdint.h>
#include "../mpyml_format.h"

typedef struct {
    uint8_t opcode, n_in, n_out, n_params;
    const mpyml_tensor_t *t[MPYML_MAX_OPERANDS];    /* inputs then outputs; NULL = absent */
    void *ptr[MPYML_MAX_OPERANDS];                  /* eval only: bytes of each operand (arena or data) */
    const int32_t *params;                          /* n_params int32 */
    const uint8_t *data;                            /* the data section (const tensors) */
    const uint8_t *trusted;                         /* the engine's copy of data[0 .. trusted_size) */
    uint32_t trusted_size;
    uint32_t sparse_size;                           /* check only: the sparse section is the last sparse_size
                                                       bytes of the trusted region (format v3) */
} mpyml_op_view_t;

/* operand accessors */
static inline const mpyml_tensor_t *mpyml_view_in(const mpyml_op_view_t *v, int k) { return v->t[k]; }
static inline const mpyml_tensor_t *mpyml_view_out(const mpyml_op_view_t *v, int k) { return v->t[v->n_in + k]; }
static inline void *mpyml_view_in_ptr(const mpyml_op_view_t *v, int k) { return v->ptr[k]; }
static inline void *mpyml_view_out_ptr(const mpyml_op_view_t *v, int k) { return v->ptr[v->n_in + k]; }

/* bytes of a const tensor during _check (NULL for an arena tensor: its contents are unknown at load) */
static inline const void *mpyml_view_const(const mpyml_op_view_t *v, const mpyml_tensor_t *t) {
    if (!t || t->storage != MPYML_S_CONST) return NULL;
    return t->offset < v->trusted_size ? (const void *)(v->trusted + t->offset) : (const void *)(v->data + t->offset);
}

static inline uint32_t mpyml_elems(const mpyml_tensor_t *t) {
    uint32_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->dims[i];   /* validated: < 2^31 */
    return n;
}

/* dims right-aligned into 4 (leading 1s) */
static inline void mpyml_dims4(const mpyml_tensor_t *t, int32_t d[4]) {
    d[0] = d[1] = d[2] = d[3] = 1;
    for (int i = 0; i < t->ndim; i++) d[4 - t->ndim + i] = t->dims[i];
}

static inline int mpyml_same_shape(const mpyml_tensor_t *a, const mpyml_tensor_t *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++) if (a->dims[i] != b->dims[i]) return 0;
    return 1;
}

static inline int mpyml_in_range(int32_t v, int32_t lo, int32_t hi) { return v >= lo && v <= hi; }

#endif /* MPYML_OP_VIEW_H */
