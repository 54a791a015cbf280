/*
 * pre_audio.c - fixed-point log-mel and MFCC (e.g. the MLPerf Tiny KWS front end).
 *
 * pre_logmel, per frame:
 *   1. x[n] * hann[n] (Q15) -> int32, zero-padded to N; block floating point: peak scaled into
 *      [2^26, 2^27), true value = mantissa * 2^E.
 *   2. N-point real FFT as an N/2-point complex FFT of z[k] = x[2k] + i x[2k+1] (the same memory),
 *      radix-2 decimation in time, Q15 twiddles; before every stage all values are shifted right
 *      until |re|,|im| < 2^27 (a stage grows them by at most 1 + sqrt(2), so products of 2^28 by
 *      Q15 stay within 32 bits).
 *   3. split into the N/2+1 bins of the real transform (2 X[k]); |X| by integer square root after
 *      scaling re/im below 2^15 (isqrt of a sum of squares < 2^31).
 *   4. mel filterbank (Q15 weights) on magnitudes shifted below 2^mag_bits (no overflow of a band
 *      sum), then log2 in Q16 (64-entry table + linear interpolation) plus the exponent.
 * pre_mfcc, per frame at read time:
 *   y = log2mel - log2(max) (normalization by the window max), log-add of the epsilon
 *   (max(y, e) + log2(1 + 2^-|y - e|), 1/8-step table), DCT-II with ln 2 folded into Q(dct_shift).
 * Every multiply is an exact product floored by a shift, so the pure-Python fallback
 * (device/mpyml/pre/_fallback.py) reproduces the results bit for bit.
 */
#include "pre.h"

#define LIM (1 << 27)

/* floor(a * b / 2^15) for |a| < 2^30, |b| <= 2^15 with 32-bit products only */
static inline int32_t mul15(int32_t a, int32_t b) {
    return (a >> 15) * b + (((a & 0x7FFF) * b) >> 15);
}

static uint32_t isqrt32(uint32_t v) {
    uint32_t res = 0, bit = 1u << 30;
    while (bit > v) {
        bit >>= 2;
    }
    while (bit) {
        if (v >= res + bit) {
            v -= res + bit;
            res = (res >> 1) + bit;
        } else {
            res >>= 1;
        }
        bit >>= 2;
    }
    return res;
}

static int32_t mag(int32_t xr, int32_t xi) {
    uint32_t ar = xr < 0 ? 0u - (uint32_t)xr : (uint32_t)xr;
    uint32_t ai = xi < 0 ? 0u - (uint32_t)xi : (uint32_t)xi;
    uint32_t mx = ar > ai ? ar : ai;
    int r = 0;
    while ((mx >> r) >= 32768u) {
        r++;
    }
    ar >>= r;
    ai >>= r;
    return (int32_t)(isqrt32(ar * ar + ai * ai) << r);
}

static int normalize(int32_t *z, int n) {
    uint32_t m = 0;
    for (int i = 0; i < n; i++) {
        uint32_t v = z[i] < 0 ? 0u - (uint32_t)z[i] : (uint32_t)z[i];
        if (v > m) {
            m = v;
        }
    }
    int k = 0;
    while ((m >> k) >= (uint32_t)LIM) {
        k++;
    }
    if (k) {
        for (int i = 0; i < n; i++) {
            z[i] >>= k;
        }
    }
    return k;
}

/* plan header + section bounds check; returns the header or NULL */
static const int32_t *plan_header(const uint8_t *plan, size_t plan_len) {
    if (((uintptr_t)plan & 3u) != 0 || plan_len < 4 * PL__COUNT) {
        return NULL;
    }
    const int32_t *h = (const int32_t *)plan;
    int32_t N = h[PL_FFT_LEN], L = h[PL_FRAME_LEN], B = h[PL_N_MELS], K = h[PL_N_MFCC];
    if (h[PL_MAGIC] != MPYML_PLAN_MAGIC || h[PL_SIZE] < 0 || (size_t)h[PL_SIZE] > plan_len) {
        return NULL;
    }
    if (N < 8 || N > 4096 || (N & (N - 1)) != 0 || L < 1 || L > N || B < 1 || B > 256 || K < 0 || K > B ||
        h[PL_MAG_BITS] < 8 || h[PL_MAG_BITS] > 30 || h[PL_DCT_SHIFT] < 15 || h[PL_DCT_SHIFT] > 30 ||
        h[PL_N_SP] < 2 || h[PL_N_WEIGHTS] < 0) {
        return NULL;
    }
    /* (offset, bytes, alignment) of every section */
    const int32_t sec[9][3] = {
        {h[PL_OFF_WINDOW], 2 * L, 2}, {h[PL_OFF_COS], N, 2}, {h[PL_OFF_SIN], N, 2},
        {h[PL_OFF_MEL_START], 2 * B, 2}, {h[PL_OFF_MEL_LEN], 2 * B, 2}, {h[PL_OFF_MEL_W], 2 * h[PL_N_WEIGHTS], 2},
        {h[PL_OFF_DCT], 2 * (K ? K * B : 1), 2}, {h[PL_OFF_LOG2TAB], 4 * 65, 4}, {h[PL_OFF_SPTAB], 4 * h[PL_N_SP], 4},
    };
    for (int i = 0; i < 9; i++) {
        if (sec[i][0] < 4 * PL__COUNT || (sec[i][0] & (sec[i][2] - 1)) != 0 || sec[i][1] < 0 ||
            sec[i][0] > h[PL_SIZE] || sec[i][1] > h[PL_SIZE] - sec[i][0]) {
            return NULL;
        }
    }
    /* mel bands must stay inside the weights and the N/2+1 bins */
    const int16_t *st = (const int16_t *)(plan + h[PL_OFF_MEL_START]);
    const int16_t *ln = (const int16_t *)(plan + h[PL_OFF_MEL_LEN]);
    int32_t total = 0;
    for (int b = 0; b < B; b++) {
        if (st[b] < 0 || ln[b] < 0 || st[b] + ln[b] > N / 2 + 1) {
            return NULL;
        }
        total += ln[b];
    }
    if (total != h[PL_N_WEIGHTS]) {
        return NULL;
    }
    return h;
}

int mpyml_pre_logmel(const uint8_t *plan, size_t plan_len, const int16_t *frame, size_t frame_len,
    int32_t *out, size_t out_len, int32_t *z, size_t scratch_len) {
    const int32_t *h = plan_header(plan, plan_len);
    if (h == NULL) {
        return MPYML_PRE_E_PLAN;
    }
    const int L = h[PL_FRAME_LEN], N = h[PL_FFT_LEN], M = N >> 1, nb = h[PL_N_MELS];
    if (frame_len < (size_t)L || out_len < (size_t)nb || scratch_len < (size_t)N) {
        return MPYML_PRE_E_SIZE;
    }
    if (((uintptr_t)z & 3u) != 0 || ((uintptr_t)out & 3u) != 0) {
        return MPYML_PRE_E_ALIGN;
    }
    const int16_t *w = (const int16_t *)(plan + h[PL_OFF_WINDOW]);
    const int16_t *cs = (const int16_t *)(plan + h[PL_OFF_COS]);
    const int16_t *sn = (const int16_t *)(plan + h[PL_OFF_SIN]);

    /* 1. window, peak */
    uint32_t m = 0;
    for (int n = 0; n < L; n++) {
        int32_t v = (int32_t)frame[n] * w[n];
        z[n] = v;
        uint32_t a = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
        if (a > m) {
            m = a;
        }
    }
    for (int n = L; n < N; n++) {
        z[n] = 0;
    }
    if (m == 0) {
        for (int b = 0; b < nb; b++) {
            out[b] = MPYML_PRE_NEG;
        }
        return MPYML_PRE_OK;
    }
    int E = -15, k = 0;
    while ((m >> k) >= (uint32_t)LIM) {
        k++;
    }
    if (k) {
        for (int n = 0; n < L; n++) {
            z[n] >>= k;
        }
        E += k;
    } else {
        while ((m << (k + 1)) < (uint32_t)LIM) {
            k++;
        }
        if (k) {
            for (int n = 0; n < L; n++) {
                z[n] = (int32_t)((uint32_t)z[n] << k);
            }
            E -= k;
        }
    }

    /* 2. complex FFT of M points: bit reversal, then radix-2 stages */
    int j = 0;
    for (int i = 1; i < M; i++) {
        int bit = M >> 1;
        while (j & bit) {
            j ^= bit;
            bit >>= 1;
        }
        j ^= bit;
        if (i < j) {
            int32_t t = z[2 * i];
            z[2 * i] = z[2 * j];
            z[2 * j] = t;
            t = z[2 * i + 1];
            z[2 * i + 1] = z[2 * j + 1];
            z[2 * j + 1] = t;
        }
    }
    for (int size = 2, step = M; size <= M; size <<= 1, step >>= 1) {
        E += normalize(z, N);
        int half = size >> 1; /* twiddle W_size^j = W_N^(j * step), step = N / size */
        for (int start = 0; start < M; start += size) {
            for (int jj = 0; jj < half; jj++) {
                int t = jj * step;
                int32_t c = cs[t], s = sn[t];
                int a = 2 * (start + jj), b = a + size;
                int32_t br = z[b], bi = z[b + 1];
                int32_t tr = mul15(br, c) + mul15(bi, s);
                int32_t ti = mul15(bi, c) - mul15(br, s);
                int32_t ar = z[a], ai = z[a + 1];
                z[b] = ar - tr;
                z[b + 1] = ai - ti;
                z[a] = ar + tr;
                z[a + 1] = ai + ti;
            }
        }
    }
    E += normalize(z, N);

    /* 3. real-FFT split + magnitudes in place: mag[k] -> z[2k] (k < M), mag[M] -> z[1] */
    {
        int32_t zr0 = z[0], zi0 = z[1];
        z[0] = mag(2 * (zr0 + zi0), 0);
        z[1] = mag(2 * (zr0 - zi0), 0);
    }
    for (int kk1 = 1; kk1 <= (M >> 1); kk1++) {
        int kk = M - kk1;
        int32_t zr = z[2 * kk1], zi = z[2 * kk1 + 1], yr = z[2 * kk], yi = z[2 * kk + 1];
        int32_t c = cs[kk1], s = sn[kk1];
        int32_t er = zr + yr, ei = zi - yi, o_r = zi + yi, o_i = yr - zr;
        int32_t m1 = mag(er + mul15(o_r, c) + mul15(o_i, s), ei + mul15(o_i, c) - mul15(o_r, s));
        if (kk != kk1) {
            c = cs[kk];
            s = sn[kk];
            er = yr + zr;
            ei = yi - zi;
            o_r = yi + zi;
            o_i = zr - yr;
            z[2 * kk] = mag(er + mul15(o_r, c) + mul15(o_i, s), ei + mul15(o_i, c) - mul15(o_r, s));
        }
        z[2 * kk1] = m1;
    }
    E -= 1;

    /* 4. mel filterbank + log2 */
    int32_t mx = z[1];
    for (int kb = 0; kb < M; kb++) {
        if (z[2 * kb] > mx) {
            mx = z[2 * kb];
        }
    }
    int q = 0;
    const int32_t lim = (int32_t)1 << h[PL_MAG_BITS];
    while ((mx >> q) >= lim) {
        q++;
    }
    E += q;
    const int16_t *st = (const int16_t *)(plan + h[PL_OFF_MEL_START]);
    const int16_t *ln = (const int16_t *)(plan + h[PL_OFF_MEL_LEN]);
    const int16_t *wt = (const int16_t *)(plan + h[PL_OFF_MEL_W]);
    const int32_t *T = (const int32_t *)(plan + h[PL_OFF_LOG2TAB]);
    int o = 0;
    for (int b = 0; b < nb; b++) {
        int32_t acc = 0;
        int kb = st[b];
        for (int i = 0; i < ln[b]; i++, kb++) {
            int32_t mg = kb == M ? z[1] : z[2 * kb];
            acc += mul15(mg >> q, wt[o + i]);
        }
        o += ln[b];
        out[b] = acc > 0 ? mpyml_pre_log2q16((uint32_t)acc, T) + (int32_t)((uint32_t)E << 16) : MPYML_PRE_NEG;
    }
    return MPYML_PRE_OK;
}

int mpyml_pre_mfcc(const uint8_t *plan, size_t plan_len, const int32_t *lm, size_t lm_len,
    int32_t log2max, int32_t *out, size_t out_len, int32_t *tmp, size_t tmp_len) {
    const int32_t *h = plan_header(plan, plan_len);
    if (h == NULL) {
        return MPYML_PRE_E_PLAN;
    }
    const int nb = h[PL_N_MELS], K = h[PL_N_MFCC], nsp = h[PL_N_SP], sh = h[PL_DCT_SHIFT];
    const int32_t eps = h[PL_LOG2_EPS];
    if (lm_len < (size_t)nb || out_len < (size_t)(K ? K : nb) || tmp_len < (size_t)nb) {
        return MPYML_PRE_E_SIZE;
    }
    const int32_t *S = (const int32_t *)(plan + h[PL_OFF_SPTAB]);
    const int16_t *D = (const int16_t *)(plan + h[PL_OFF_DCT]);
    for (int b = 0; b < nb; b++) {
        int32_t v = lm[b];
        if (v == MPYML_PRE_NEG) {
            tmp[b] = eps;
            continue;
        }
        int32_t y = v - log2max, d = y - eps;
        if (d < 0) {
            y = eps;
            d = -d;
        }
        int32_t i = d >> 13;
        if (i < nsp - 1) {
            int32_t s0 = S[i];
            y += s0 + (((S[i + 1] - s0) * (d & 8191)) >> 13);
        }
        tmp[b] = y;
    }
    if (K == 0) {
        for (int b = 0; b < nb; b++) {
            out[b] = mpyml_pre_mulshift(tmp[b], D[0], sh);
        }
        return MPYML_PRE_OK;
    }
    for (int k = 0; k < K; k++) {
        int32_t acc = 0;
        const int16_t *Dk = D + k * nb;
        for (int b = 0; b < nb; b++) {
            acc += mpyml_pre_mulshift(tmp[b], Dk[b], sh);
        }
        out[k] = acc;
    }
    return MPYML_PRE_OK;
}
