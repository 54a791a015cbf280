/*
 * ops/conv2d_inplace.c - CONV_2D_INPLACE: CONV_2D whose output may lie over its input (same offset and byte
 * count), through a window of `rows` input rows in the scratch.
 *
 * Per batch, output rows are computed in order. Output row oy covers bytes [oy*RO, (oy+1)*RO) of the batch
 * (RO = OW*O), input row q bytes [q*RI, (q+1)*RI) (RI = IW*C). Its window is the input rows [a, b):
 * a = max(0, lo), lo = oy*stride_h - pad_h, and b = min(IH, max(lo + (KH-1)*dil_h + 1, sv)), where sv counts
 * the rows whose bytes start below (oy+1)*RO (the ones writing output row oy may destroy). The window is kept
 * in the scratch, in order: the rows it shares with the previous window are moved down, the new ones (all at or
 * past the previous b >= the previous sv, so still intact) copied from the input. Output row oy is then
 * computed by the optimized mpyml_conv2d from the window alone (window height b - a, top padding a - lo) and
 * written in place; every row a later output row reads and this one destroys is in [a, sv), inside the window.
 * The loader (mpyml_conv2d_inplace_check) replays the schedule: b - a <= rows everywhere. The arithmetic is
 * mpyml_conv2d's, so the bytes equal CONV_2D's (TFLite Micro's ConvPerChannel). Correct whether or not the
 * output aliases the input.
 */
#include <string.h>
#include "inplace_common.h"
#include "ops.h"

/* the window [*a, *b) of output row oy; *sv advanced as the kernel does (no division) */
static inline void ip_window(const mpyml_conv_2d_inplace_params_t *p, int32_t oy, int32_t kh, int32_t ih,
    int32_t ri, int32_t ro, int32_t *sv, int32_t *a, int32_t *b)
{
    const int32_t lo = oy * p->stride_h - p->pad_h;
    const int32_t hi = lo + (kh - 1) * p->dil_h + 1;
    const int32_t end = (oy + 1) * ro;       /* <= the output's nbytes < 2^31 */
    while (*sv < ih && *sv * ri < end) {
        (*sv)++;
    }
    *a = lo > 0 ? lo : 0;
    *b = hi > *sv ? hi : *sv;
    if (*b > ih) *b = ih;
    if (*b < *a) *b = *a;
}

int mpyml_conv2d_inplace_check(const mpyml_op_view_t *v)
{
    const mpyml_conv_2d_inplace_params_t *p = (const mpyml_conv_2d_inplace_params_t *)(const void *)v->params;
    const mpyml_tensor_t *x = v->t[IP_X], *y = v->t[IP_Y], *f = v->t[IP_FILTER];
    int32_t oy, sv = 0, a, b;
    int bad = ip_check_conv(v, 0);
    if (bad) return bad;
    if ((uint64_t)p->rows * x->dims[2] * x->dims[3] > v->t[IP_SCRATCH]->nbytes) return MPYML_CHK_IP_SCRATCH;
    /* lo, hi below: |oy * stride_h|, (KH - 1) * dil_h <= 65535 * 1024, int32 */
    for (oy = 0; oy < (int32_t)y->dims[1]; oy++) {
        ip_window(p, oy, f->dims[1], x->dims[1], (int32_t)x->dims[2] * x->dims[3], (int32_t)y->dims[2] * y->dims[3],
            &sv, &a, &b);
        if (b - a > p->rows) return MPYML_CHK_IP_ROWS;
    }
    return 0;
}

void mpyml_conv2d_inplace_eval(const mpyml_op_view_t *v)
{
    const mpyml_conv_2d_inplace_params_t *p = (const mpyml_conv_2d_inplace_params_t *)(const void *)v->params;
    const mpyml_tensor_t *tx = v->t[IP_X], *tf = v->t[IP_FILTER], *ty = v->t[IP_Y];
    const int8_t *x = (const int8_t *)v->ptr[IP_X];
    const int8_t *f = (const int8_t *)v->ptr[IP_FILTER];
    const int32_t *bias = v->t[IP_BIAS] ? (const int32_t *)v->ptr[IP_BIAS] : NULL;
    const int32_t *mult = (const int32_t *)v->ptr[IP_MULT];
    const int32_t *shift = (const int32_t *)v->ptr[IP_SHIFT];
    int8_t *win = (int8_t *)v->ptr[IP_SCRATCH];
    int8_t *y = (int8_t *)v->ptr[IP_Y];
    const int32_t nb = ty->dims[0], oh = ty->dims[1];
    const int32_t ih = tx->dims[1], ri = tx->dims[2] * tx->dims[3], ro = ty->dims[2] * ty->dims[3];
    mpyml_shape4_t ws, fs, os;
    mpyml_conv_params_t cp;
    int32_t bi, oy;
    /* the first 11 params are CONV_2D's */
    cp.stride_w = p->stride_w; cp.stride_h = p->stride_h; cp.dil_w = p->dil_w; cp.dil_h = p->dil_h;
    cp.pad_w = p->pad_w; cp.input_offset = p->input_offset; cp.output_offset = p->output_offset;
    cp.act_min = p->act_min; cp.act_max = p->act_max; cp.depth_multiplier = 1;
    fs.n = tf->dims[0]; fs.h = tf->dims[1]; fs.w = tf->dims[2]; fs.c = tf->dims[3];
    ws.n = 1; ws.w = tx->dims[2]; ws.c = tx->dims[3];
    os.n = 1; os.h = 1; os.w = ty->dims[2]; os.c = ty->dims[3];
    for (bi = 0; bi < nb; bi++) {
        const int8_t *xb = x + bi * ih * ri;
        int8_t *yb = y + bi * oh * ro;
        int32_t sv = 0, wa = 0, wb = 0, a, b;     /* input rows [wa, wb) are in the window */
        for (oy = 0; oy < oh; oy++) {
            ip_window(p, oy, fs.h, ih, ri, ro, &sv, &a, &b);
            if (a < wb) {
                memmove(win, win + (a - wa) * ri, (size_t)((wb - a) * ri));
            } else {
                wb = a;
            }
            memcpy(win + (wb - a) * ri, xb + wb * ri, (size_t)((b - wb) * ri));
            wa = a;
            wb = b;
            ws.h = b - a;
            cp.pad_h = a - (oy * p->stride_h - p->pad_h);
            mpyml_conv2d(&cp, &ws, win, &fs, f, bias, mult, shift, &os, yb + oy * ro);
        }
    }
}
