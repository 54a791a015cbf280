/*
 * ops/lstm.c - UNIDIRECTIONAL_SEQUENCE_LSTM, the fully integer LSTM of TFLite Micro
 * (tensorflow/lite/micro/kernels/lstm_eval.h LstmStep with int8 activations / weights, int16 cell
 * state and gates, int32 biases; lstm_eval.cc for the pieces), bit-exact.
 *
 * One step of one batch row (x: its input row, h: hidden state int8, c: cell state int16, S units):
 *   gate(W, R, b) = sat16(FC16(x, W, b) + FC16(h, R))    FC16: int32 dot + bias, MBQM, clamp int16
 *   f = sigmoid(gate_f); i = sigmoid(gate_i); g = tanh(gate_c)     (Q3.12 in, Q0.15 out; TFLite's
 *   flatbuffer has no SIGMOID fused activation, so TANH is the only cell gate nonlinearity)
 *   c = sat16(mul16(f, c) + mul16(i, g)), then clipped to +-cell_clip if cell_clip > 0
 *   o = sigmoid(gate_o); h = mul8(tanh_cell(c), o) (+ hidden zero point); output row = h
 * TFLM resets an int8 variable tensor to its zero point, mpyml zeroes STATE bytes: the hidden state is
 * stored as (uint8)(h - hidden_zero_point), so that zero bytes are h = zero point (a bijection mod 256).
 * Batch rows are independent, so every row runs its time steps in order on its own slice of h and c;
 * time_major only changes where the rows of the input and output are.
 * The int16 sigmoid / tanh are TFLite's reference_integer_ops::Logistic / Tanh (interpolated 256-entry
 * sigmoid table) with the multipliers the LSTM passes (sigmoid: 0 -> 3; tanh: tanh_mult, tanh_rshift,
 * precomputed by the packer from the cell state scale).
 *
 * @param time_major        0..1
 * @param input_offset      -127..128 (-input zero point)
 * @param hidden_offset     -127..128 (-hidden zero point: recurrent FC input offset)
 * @param hidden_zero_point -128..127
 * @param <gate>_in/rec_mult, _shift   FC multipliers 0..2^31-1, shifts -31..30, gates i, f, c, o
 * @param forget/input/output_mul_mult, _shift   the three elementwise products
 * @param cell_clip         0..32767 (0: none)
 * @param tanh_mult         1..49152, tanh_rshift 0..31: tanh_mult * 32768 + rounding < 2^31 (checked)
 * Operands: see host/mpyml/spec/ops_recurrent.py (13 inputs: x, 4 input weights [S, I], 4 recurrent
 * weights [S, S], 4 biases [S]; 4 outputs: y, hidden STATE int8 [B*S], cell STATE int16 [B*S],
 * scratch int16 [4*S]). I, S <= 65536 keep every int32 dot product free of overflow.
 */
#include "../mpyml_spec.h"
#include "fixedpoint.h"
#include "op_view.h"

enum { IN_X = 0, IN_W = 1, IN_R = 5, IN_B = 9 };         /* + gate: 0 input, 1 forget, 2 cell, 3 output */
enum { OUT_Y = 0, OUT_H = 1, OUT_C = 2, OUT_SCRATCH = 3 };
enum { G_I = 0, G_F = 1, G_C = 2, G_O = 3 };
enum { P_GATES = 4 };                                     /* params 4 + 4 * gate: in mult, shift, rec mult, shift */

/* sigmoid(i / 24) in 0.16 (TFLite's sigmoid_table_uint16) */
static const uint16_t k_sigmoid[256] = {
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432, 42064, 42688,
    43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409,
    51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110,
    61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186,
    63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208,
    65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433, 65438, 65442, 65445, 65449,
    65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535
};

int mpyml_lstm_check(const mpyml_op_view_t *v)
{
    const mpyml_lstm_params_t *p = (const mpyml_lstm_params_t *)(const void *)v->params;
    const mpyml_tensor_t *x = mpyml_view_in(v, IN_X), *y = mpyml_view_out(v, OUT_Y);
    const mpyml_tensor_t *h = mpyml_view_out(v, OUT_H), *c = mpyml_view_out(v, OUT_C);
    uint32_t b, n_in, s;
    int g;
    if (h->flags != MPYML_TF_STATE || c->flags != MPYML_TF_STATE) return MPYML_CHK_STATE;
    if (x->ndim != 3 || y->ndim != 3) return MPYML_CHK_LSTM_SHAPE;
    b = p->time_major ? x->dims[1] : x->dims[0];
    n_in = x->dims[2];
    s = mpyml_view_in(v, IN_W)->dims[0];
    if (n_in > 65536u || s > 65536u) return MPYML_CHK_LSTM_SHAPE;
    for (g = 0; g < 4; g++) {
        const mpyml_tensor_t *w = mpyml_view_in(v, IN_W + g), *r = mpyml_view_in(v, IN_R + g);
        const mpyml_tensor_t *bias = mpyml_view_in(v, IN_B + g);
        if (w->ndim != 2 || w->dims[0] != s || w->dims[1] != n_in) return MPYML_CHK_LSTM_SHAPE;
        if (r->ndim != 2 || r->dims[0] != s || r->dims[1] != s) return MPYML_CHK_LSTM_SHAPE;
        if (mpyml_elems(bias) != s) return MPYML_CHK_LSTM_SHAPE;
        if (w->zero_point != 0 || r->zero_point != 0) return MPYML_CHK_REC_ZERO_POINT;
    }
    if (y->dims[0] != x->dims[0] || y->dims[1] != x->dims[1] || y->dims[2] != s) return MPYML_CHK_LSTM_SHAPE;
    if ((uint64_t)b * s != mpyml_elems(h) || (uint64_t)b * s != mpyml_elems(c)) return MPYML_CHK_LSTM_SHAPE;
    if ((uint64_t)4 * s != mpyml_elems(mpyml_view_out(v, OUT_SCRATCH))) return MPYML_CHK_LSTM_SHAPE;
    {
        const uint32_t round = p->tanh_rshift > 0 ? (uint32_t)1 << (p->tanh_rshift - 1) : 0u;
        if ((uint32_t)p->tanh_mult * 32768u + round > 0x7FFFFFFFu) return MPYML_CHK_LSTM_TANH;
    }
    return 0;
}

/* TFLM lstm_internal::FullyConnected int8 -> int16 (output offset 0, int16 clamp). The input bytes are
 * decoded as (int8)(byte + dec): dec = 0 for the input, the hidden zero point for the stored hidden state. */
static void fc16(const int8_t *x, int32_t dec, int32_t x_off, const int8_t *w, const int32_t *bias,
    int32_t n_in, int32_t n_out, int32_t mult, int32_t shift, int16_t *out)
{
    int32_t o, k;
    for (o = 0; o < n_out; o++) {
        int32_t acc = 0;
        for (k = 0; k < n_in; k++) {
            acc += (int32_t)w[k] * ((int32_t)(int8_t)(uint8_t)((uint32_t)(uint8_t)x[k] + (uint32_t)dec) + x_off);
        }
        w += n_in;
        if (bias) acc = mpyml_wrap_add(acc, bias[o]);
        out[o] = (int16_t)mpyml_clamp(mpyml_mbqm(acc, mult, shift), -32768, 32767);
    }
}

/* reference_integer_ops::Logistic(int16) with input_multiplier 0 (-> 3), left shift 0 */
static int16_t sigmoid16(int32_t v)
{
    const int32_t in = v * 3;
    const uint32_t a = (uint32_t)(in < 0 ? -in : in);
    const uint32_t uh = a >> 9;
    uint32_t r;
    if (uh >= 255u) {
        r = 0x7FFFu << 10;
    } else {
        const uint32_t ua = k_sigmoid[uh], ub = k_sigmoid[uh + 1];
        r = (ua << 9) + (a & 0x1FFu) * (ub - ua);
    }
    r = in >= 0 ? r + (1u << 9) : (1u << 25) - r + (1u << 9) - 1u;
    return (int16_t)(r >> 10);
}

/* reference_integer_ops::Tanh(int16): input (v * mult + round) >> rshift */
static int16_t tanh16(int32_t v, int32_t mult, int32_t rshift)
{
    const int32_t round = rshift > 0 ? (int32_t)1 << (rshift - 1) : 0;
    const int32_t in = (v * mult + round) >> rshift;
    const uint32_t a = (uint32_t)(in < 0 ? -in : in);
    const uint32_t uh = a >> 8;
    int32_t r;
    if (uh >= 255u) {
        r = 0xFFFF << 8;
    } else {
        const uint32_t ua = k_sigmoid[uh], ub = k_sigmoid[uh + 1];
        r = (int32_t)((ua << 8) + (a & 0xFFu) * (ub - ua));
    }
    r = in >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1;
    return (int16_t)(r >> 8);
}

/* one gate for one row: out = act(sat16(FC(x) + FC(h))); tmp: S int16 */
static void gate(const mpyml_op_view_t *v, int g, const int8_t *x, const int8_t *h, int32_t n_in, int32_t s,
    int act, int16_t *out, int16_t *tmp)
{
    const mpyml_lstm_params_t *p = (const mpyml_lstm_params_t *)(const void *)v->params;
    const int32_t *gp = v->params + P_GATES + 4 * g;
    int32_t k;
    fc16(x, 0, p->input_offset, (const int8_t *)mpyml_view_in_ptr(v, IN_W + g),
        (const int32_t *)mpyml_view_in_ptr(v, IN_B + g), n_in, s, gp[0], gp[1], out);
    fc16(h, p->hidden_zero_point, p->hidden_offset, (const int8_t *)mpyml_view_in_ptr(v, IN_R + g), NULL, s, s,
        gp[2], gp[3], tmp);
    for (k = 0; k < s; k++) {
        const int32_t sum = mpyml_clamp((int32_t)out[k] + (int32_t)tmp[k], -32768, 32767);
        out[k] = act ? sigmoid16(sum) : tanh16(sum, 3, 0);
    }
}

static int32_t mul_q(int32_t a, int32_t b, int32_t mult, int32_t shift)
{
    return mpyml_mbqm(a * b, mult, shift);     /* |a * b| <= 2^30 */
}

void mpyml_lstm_eval(const mpyml_op_view_t *v)
{
    const mpyml_lstm_params_t *p = (const mpyml_lstm_params_t *)(const void *)v->params;
    const mpyml_tensor_t *x = mpyml_view_in(v, IN_X);
    const int8_t *xd = (const int8_t *)mpyml_view_in_ptr(v, IN_X);
    int8_t *yd = (int8_t *)mpyml_view_out_ptr(v, OUT_Y);
    int8_t *hd = (int8_t *)mpyml_view_out_ptr(v, OUT_H);
    int16_t *cd = (int16_t *)mpyml_view_out_ptr(v, OUT_C);
    int16_t *buf0 = (int16_t *)mpyml_view_out_ptr(v, OUT_SCRATCH);
    const int32_t s = mpyml_view_in(v, IN_W)->dims[0], n_in = x->dims[2];
    const int32_t n_b = p->time_major ? x->dims[1] : x->dims[0];
    const int32_t n_t = p->time_major ? x->dims[0] : x->dims[1];
    int16_t *buf1 = buf0 + s, *buf2 = buf1 + s, *buf3 = buf2 + s;
    const int32_t clip = p->cell_clip;
    int32_t b, t, k;
    for (b = 0; b < n_b; b++) {
        int8_t *h = hd + (size_t)b * s;
        int16_t *c = cd + (size_t)b * s;
        for (t = 0; t < n_t; t++) {
            const int32_t row = p->time_major ? t * n_b + b : b * n_t + t;
            const int8_t *xr = xd + (size_t)row * n_in;
            gate(v, G_F, xr, h, n_in, s, 1, buf0, buf3);
            gate(v, G_I, xr, h, n_in, s, 1, buf1, buf3);
            gate(v, G_C, xr, h, n_in, s, 0, buf2, buf3);
            for (k = 0; k < s; k++) {
                int32_t fc = mpyml_clamp(mul_q(buf0[k], c[k], p->forget_mul_mult, p->forget_mul_shift), -32768, 32767);
                int32_t ig = mpyml_clamp(mul_q(buf1[k], buf2[k], p->input_mul_mult, p->input_mul_shift), -32768, 32767);
                int32_t nc = mpyml_clamp(fc + ig, -32768, 32767);
                if (clip > 0) nc = mpyml_clamp(nc, -clip, clip);
                c[k] = (int16_t)nc;
            }
            gate(v, G_O, xr, h, n_in, s, 1, buf1, buf3);
            for (k = 0; k < s; k++) {
                const int32_t th = tanh16(c[k], p->tanh_mult, p->tanh_rshift);
                const int32_t hv = mpyml_wrap_add(mul_q(th, buf1[k], p->output_mul_mult, p->output_mul_shift),
                    p->hidden_zero_point);
                const int32_t hq = mpyml_clamp(hv, -128, 127);
                yd[(size_t)row * s + k] = (int8_t)hq;
                h[k] = (int8_t)(uint8_t)((uint32_t)hq - (uint32_t)p->hidden_zero_point);   /* stored - zp */
            }
        }
    }
}
