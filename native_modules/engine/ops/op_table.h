/*
 * ops/op_table.h - the op table generated from the spec (ops/op_table.c, by tools/gen_spec.py):
 * operand and param counts, param ranges and operand rules per op code, and the dispatch to each
 * op family's <kernel>_check / <kernel>_eval for the ops that are not core ops.
 */
#ifndef MPYML_OP_TABLE_H
#define MPYML_OP_TABLE_H

#include <stdint.h>
#include "op_view.h"

typedef struct {
    uint8_t min_in, max_in, min_out, max_out, n_params;
    uint8_t n_spec_in, n_spec_out, core;
    uint16_t ranges, operands;      /* indices into the generated tables */
    uint8_t in_place_ok;            /* an op record flagged MPYML_OPF_IN_PLACE may alias output onto an input */
} mpyml_op_info_t;

typedef struct {
    uint8_t typemask;               /* bit (1 << MPYML_T_*) per accepted type */
    uint8_t storage;                /* 0 arena, 1 const, 2 either */
    uint8_t optional;               /* may be MPYML_NO_TENSOR */
    uint8_t trusted;                /* a const operand: must lie inside the trusted (copied) region */
} mpyml_operand_rule_t;

/* 1 and fills d if opcode is in the spec, else 0 */
int mpyml_op_info(int opcode, mpyml_op_info_t *d);
void mpyml_op_param_range(const mpyml_op_info_t *d, int i, int32_t *lo, int32_t *hi);
void mpyml_op_operand_rule(const mpyml_op_info_t *d, int k, int n_in, mpyml_operand_rule_t *r);
int mpyml_op_check_ext(const mpyml_op_view_t *v);
int mpyml_op_eval_ext(const mpyml_op_view_t *v);   /* 0, or an mpyml_status_t (ops with fails=True) */

#endif /* MPYML_OP_TABLE_H */
