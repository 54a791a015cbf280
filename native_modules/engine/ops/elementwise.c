/*
 * ops/elementwise.c - table-driven elementwise ops: LUT, DEQUANTIZE, QUANTIZE_F32.
 *
 * None of them computes anything: the packer has evaluated the TFLite op exactly (tflite-micro
 * itself for the 8-bit tables, an exact emulation of AffineQuantize for the float breakpoints), so
 * these kernels only index tables. No float arithmetic (float32 data is moved as 32-bit words),
 * no division, no libc.
 */
#include "op_view.h"
#include "../mpyml_spec.h"

/* byte index of element i of an 8-bit input: int8 x -> x & 0xFF, uint8 -> itself */
static inline uint32_t byte_at(const void *p, uint32_t i) { return ((const uint8_t *)p)[i]; }

/* ------------------------------------------------------------------ LUT
 * LUT: output[i] = table[input[i] as a byte]
 *   operands: IN_X input int8|uint8 (any), IN_TABLE table int8|uint8 const [256],
 *             OUT_Y output int8|uint8 arena, same shape as the input
 *   params:   none
 *   checks:   EW_TABLE (table not 256 entries or not of the output's type), EW_SHAPE (shapes differ)
 */
enum { LUT_IN_X = 0, LUT_IN_TABLE = 1, LUT_OUT_Y = 2 };

static int check_table(const mpyml_op_view_t *v, int n_entries)
{
    const mpyml_tensor_t *x = v->t[LUT_IN_X], *tab = v->t[LUT_IN_TABLE], *y = v->t[LUT_OUT_Y];
    if (mpyml_elems(tab) != (uint32_t)n_entries || tab->type != y->type) return MPYML_CHK_EW_TABLE;
    if (!mpyml_same_shape(x, y)) return MPYML_CHK_EW_SHAPE;
    return 0;
}

int mpyml_ew_lut_check(const mpyml_op_view_t *v)
{
    return check_table(v, 256);
}

void mpyml_ew_lut_eval(const mpyml_op_view_t *v)
{
    const void *x = v->ptr[LUT_IN_X];
    const uint8_t *tab = (const uint8_t *)v->ptr[LUT_IN_TABLE];
    uint8_t *y = (uint8_t *)v->ptr[LUT_OUT_Y];
    const uint32_t n = mpyml_elems(v->t[LUT_OUT_Y]);
    uint32_t i;
    for (i = 0; i < n; i++) {
        y[i] = tab[byte_at(x, i)];
    }
}

/* ------------------------------------------------------------------ DEQUANTIZE
 * DEQUANTIZE: output[i] = table[input[i] as a byte] (float32 words, copied as bits)
 *   operands: IN_X input int8|uint8, IN_TABLE float32 const [256], OUT_Y float32 arena, same shape
 *   params:   none
 *   checks:   EW_TABLE, EW_SHAPE (as LUT)
 */
int mpyml_ew_dequantize_check(const mpyml_op_view_t *v)
{
    return check_table(v, 256);
}

void mpyml_ew_dequantize_eval(const mpyml_op_view_t *v)
{
    const void *x = v->ptr[LUT_IN_X];
    const uint32_t *tab = (const uint32_t *)v->ptr[LUT_IN_TABLE];
    uint32_t *y = (uint32_t *)v->ptr[LUT_OUT_Y];
    const uint32_t n = mpyml_elems(v->t[LUT_OUT_Y]);
    uint32_t i;
    for (i = 0; i < n; i++) {
        y[i] = tab[byte_at(x, i)];
    }
}

/* ------------------------------------------------------------------ QUANTIZE_F32
 * QUANTIZE_F32: float32 -> int8|uint8 as a step function of the input's bits in float order.
 *   key(x) = b >= 0 ? b : b ^ 0x7FFFFFFF   (b = the float's bits as int32; monotone in the float
 *            order, -0 just below +0, NaNs beyond +-inf)
 *   output = values[j], j = number of keys[] <= key(x)   (binary search, log2(n) steps)
 *   operands: IN_X input float32, IN_KEYS int32 const [n], n in 1..512, strictly increasing,
 *             IN_VALUES int8|uint8 const [n + 1] of the output's type, OUT_Y arena, input's shape
 *   params:   none
 *   checks:   EW_KEYS (n, order, values length or type), EW_SHAPE
 */
enum { Q_IN_X = 0, Q_IN_KEYS = 1, Q_IN_VALUES = 2, Q_OUT_Y = 3 };
#define Q_MAX_KEYS 512u

int mpyml_ew_quantize_check(const mpyml_op_view_t *v)
{
    const mpyml_tensor_t *keys = v->t[Q_IN_KEYS], *vals = v->t[Q_IN_VALUES], *y = v->t[Q_OUT_Y];
    const uint32_t n = mpyml_elems(keys);
    const int32_t *k = (const int32_t *)mpyml_view_const(v, keys);
    uint32_t i;
    if (n < 1 || n > Q_MAX_KEYS || mpyml_elems(vals) != n + 1 || vals->type != y->type || k == NULL) {
        return MPYML_CHK_EW_KEYS;
    }
    for (i = 1; i < n; i++) {
        if (k[i] <= k[i - 1]) return MPYML_CHK_EW_KEYS;
    }
    if (!mpyml_same_shape(v->t[Q_IN_X], y)) return MPYML_CHK_EW_SHAPE;
    return 0;
}

void mpyml_ew_quantize_eval(const mpyml_op_view_t *v)
{
    const uint32_t *x = (const uint32_t *)v->ptr[Q_IN_X];
    const int32_t *keys = (const int32_t *)v->ptr[Q_IN_KEYS];
    const uint8_t *vals = (const uint8_t *)v->ptr[Q_IN_VALUES];
    uint8_t *y = (uint8_t *)v->ptr[Q_OUT_Y];
    const uint32_t n = mpyml_elems(v->t[Q_OUT_Y]);
    const uint32_t nk = mpyml_elems(v->t[Q_IN_KEYS]);
    uint32_t i;
    for (i = 0; i < n; i++) {
        const uint32_t b = x[i];
        const int32_t key = (int32_t)((b & 0x80000000u) ? b ^ 0x7FFFFFFFu : b);
        uint32_t lo = 0, hi = nk;        /* count of keys <= key lies in [lo, hi] */
        while (lo < hi) {
            const uint32_t mid = (lo + hi) >> 1;
            if (keys[mid] <= key) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        y[i] = vals[lo];
    }
}
