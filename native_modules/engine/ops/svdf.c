/*
 * ops/svdf.c - SVDF, int8 input / int16 state, bit-exact with TFLite Micro's
 * EvalIntegerSvdfReference<int16_t> (tensorflow/lite/micro/kernels/svdf_common.cc).
 *
 * Per invoke:
 *   1. the state [B, F, M] shifts left by one element (the newest column M-1 is then overwritten);
 *   2. feature matmul: state[b, f, M-1] = (int16)(clamp_int16(MBQM(sum_i wf[f, i] * (x[b, i] + input_offset),
 *      mult1, shift1)) + state_zero_point)   (the zero point after the clamp, wrapping: as the TFLM we test);
 *   3. time: scratch[b, f] = sum_m wt[f, m] * (state[b, f, m] - state_zero_point);
 *   4. out[b, u] = clamp_int8(MBQM(bias[u] + sum_r scratch[b, u * rank + r], mult2, shift2) + output_offset).
 * TFLM's int8 SVDF applies no fused activation (only the int8 clamp). Sums of steps 3 and 4 wrap modulo
 * 2^32 like TFLM's int32 arithmetic (computed on uint32_t here: no signed-overflow UB).
 *
 * @param rank              1..1024, num_filters F is a multiple of it, num_units U = F / rank
 * @param input_offset      -127..128 (-input zero point)
 * @param state_zero_point  -32768..32767
 * @param output_offset     -128..127
 * @param mult1, shift1     0..2^31-1, -31..30
 * @param mult2, shift2     0..2^31-1, -31..30
 * Operands: input int8 [B, I], weights_feature int8 const [F, I] (I <= 65536: the int32 dot cannot
 * overflow), weights_time int16 const [F, M], bias int32 const [U] (optional) -> output int8 [B, U],
 * state int16 STATE [B, M*F] (any shape of B*M*F elements), scratch int32 [B*F], scratch_output int32 [B*U].
 */
#include "../mpyml_spec.h"
#include "fixedpoint.h"
#include "op_view.h"

enum { IN_X = 0, IN_WF = 1, IN_WT = 2, IN_BIAS = 3 };
enum { OUT_Y = 0, OUT_STATE = 1, OUT_SCRATCH = 2, OUT_SCRATCH_OUT = 3 };

int mpyml_svdf_check(const mpyml_op_view_t *v)
{
    const mpyml_svdf_params_t *p = (const mpyml_svdf_params_t *)(const void *)v->params;
    const mpyml_tensor_t *x = mpyml_view_in(v, IN_X), *wf = mpyml_view_in(v, IN_WF);
    const mpyml_tensor_t *wt = mpyml_view_in(v, IN_WT), *bias = mpyml_view_in(v, IN_BIAS);
    const mpyml_tensor_t *y = mpyml_view_out(v, OUT_Y), *st = mpyml_view_out(v, OUT_STATE);
    const mpyml_tensor_t *s1 = mpyml_view_out(v, OUT_SCRATCH), *s2 = mpyml_view_out(v, OUT_SCRATCH_OUT);
    uint32_t b, i, f, m, u;
    if (st->flags != MPYML_TF_STATE) return MPYML_CHK_STATE;
    if (x->ndim != 2 || wf->ndim != 2 || wt->ndim != 2 || y->ndim != 2) return MPYML_CHK_SVDF_SHAPE;
    b = x->dims[0]; i = x->dims[1]; f = wf->dims[0]; m = wt->dims[1];
    if (wf->dims[1] != i || wt->dims[0] != f || i > 65536u) return MPYML_CHK_SVDF_SHAPE;
    if (f % (uint32_t)p->rank != 0) return MPYML_CHK_SVDF_SHAPE;
    u = f / (uint32_t)p->rank;
    if (y->dims[0] != b || y->dims[1] != u) return MPYML_CHK_SVDF_SHAPE;
    if (bias && mpyml_elems(bias) != u) return MPYML_CHK_SVDF_SHAPE;
    /* products of validated tensor sizes: each < 2^31 elements, compare in 64 bits */
    if ((uint64_t)b * f * m != mpyml_elems(st)) return MPYML_CHK_SVDF_SHAPE;
    if ((uint64_t)b * f != mpyml_elems(s1) || (uint64_t)b * u != mpyml_elems(s2)) return MPYML_CHK_SVDF_SHAPE;
    return 0;
}

void mpyml_svdf_eval(const mpyml_op_view_t *v)
{
    const mpyml_svdf_params_t *p = (const mpyml_svdf_params_t *)(const void *)v->params;
    const mpyml_tensor_t *x = mpyml_view_in(v, IN_X), *wf = mpyml_view_in(v, IN_WF);
    const mpyml_tensor_t *wt = mpyml_view_in(v, IN_WT);
    const int8_t *xd = (const int8_t *)mpyml_view_in_ptr(v, IN_X);
    const int8_t *wfd = (const int8_t *)mpyml_view_in_ptr(v, IN_WF);
    const int16_t *wtd = (const int16_t *)mpyml_view_in_ptr(v, IN_WT);
    const int32_t *bias = (const int32_t *)mpyml_view_in_ptr(v, IN_BIAS);
    int8_t *y = (int8_t *)mpyml_view_out_ptr(v, OUT_Y);
    int16_t *state = (int16_t *)mpyml_view_out_ptr(v, OUT_STATE);
    int32_t *scratch = (int32_t *)mpyml_view_out_ptr(v, OUT_SCRATCH);
    int32_t *scratch_out = (int32_t *)mpyml_view_out_ptr(v, OUT_SCRATCH_OUT);
    const int32_t n_batch = x->dims[0], n_input = x->dims[1], n_filter = wf->dims[0], n_memory = wt->dims[1];
    const int32_t rank = p->rank, n_unit = mpyml_view_out(v, OUT_Y)->dims[1];   /* = F / rank (checked) */
    const int32_t szp = p->state_zero_point;
    int32_t b, r, c, k, total;

    /* 1. shift the whole state left by one element */
    total = n_batch * n_filter * n_memory;
    for (k = 0; k + 1 < total; k++) {
        state[k] = state[k + 1];
    }
    /* 2. feature matmul into the newest column */
    for (b = 0; b < n_batch; b++) {
        const int8_t *w = wfd;
        int16_t *res = state + (size_t)b * n_filter * n_memory + (n_memory - 1);
        for (r = 0; r < n_filter; r++) {
            const int8_t *xv = xd + (size_t)b * n_input;
            int32_t dot = 0;
            for (c = 0; c < n_input; c++) {
                dot += (int32_t)w[c] * ((int32_t)xv[c] + p->input_offset);
            }
            w += n_input;
            /* TFLM clamps to int16, then adds the state zero point and narrows (wraps) to int16 */
            dot = mpyml_clamp(mpyml_mbqm(dot, p->mult1, p->shift1), -32768, 32767) + szp;
            *res = (int16_t)(uint16_t)(uint32_t)dot;
            res += n_memory;
        }
    }
    /* 3. time weights */
    for (b = 0; b < n_batch; b++) {
        const int16_t *w = wtd;
        const int16_t *sv = state + (size_t)b * n_memory * n_filter;
        for (r = 0; r < n_filter; r++) {
            uint32_t acc = 0;
            for (c = 0; c < n_memory; c++) {
                acc += (uint32_t)(int32_t)w[c] * (uint32_t)((int32_t)sv[c] - szp);   /* wraps like TFLM's int32 */
            }
            w += n_memory;
            sv += n_memory;
            scratch[b * n_filter + r] = (int32_t)acc;
        }
    }
    /* 4. bias, rank reduction, requantize */
    for (b = 0; b < n_batch; b++) {
        const int32_t *sp = scratch + (size_t)b * n_filter;
        for (k = 0; k < n_unit; k++) {
            uint32_t acc = bias ? (uint32_t)bias[k] : 0u;
            for (r = 0; r < rank; r++) {
                acc += (uint32_t)*sp++;
            }
            scratch_out[b * n_unit + k] = (int32_t)acc;
        }
    }
    for (k = 0; k < n_batch * n_unit; k++) {
        int32_t o = mpyml_wrap_add(mpyml_mbqm(scratch_out[k], p->mult2, p->shift2), p->output_offset);
        y[k] = (int8_t)mpyml_clamp(o, -128, 127);
    }
}
