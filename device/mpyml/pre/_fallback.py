# mpyml.pre._fallback: pure-MicroPython preprocessing kernels, bit-exact with the C core.
#
# Same names, arguments and integer results as the mpyml_engine natmod functions implemented in
# native_modules/engine/pre/*.c (the C core's comments explain the algorithms). The only
# difference: the audio kernels take the Plan object (its arrays) where C takes Plan.blob (bytes).
# Every fixed-point step here is an exact integer formula (floor shifts of exact products); the C
# code computes the same values with 32-bit arithmetic only (no 64-bit multiply on armv6m), so
# both give the same result bit for bit. Also runs under CPython (host tests).

NEG = -(1 << 30)            # log-mel of an all-zero band ("-inf")
_LIM = 1 << 27              # FFT block floating point: |re|, |im| < 2^27 before every stage


def pre_max(buf, off, n):
    """Largest element of buf[off:off+n] (signed for 'h'/'b'/'i' arrays)."""
    m = buf[off]
    for i in range(off + 1, off + n):
        v = buf[i]
        if v > m:
            m = v
    return m


def pre_i32_to_i16(src, dst, shift, n):
    """n little-endian int32 samples in src (bytes) >> shift, saturated into dst (int16 array)."""
    for i in range(n):
        q = 4 * i
        v = src[q] | (src[q + 1] << 8) | (src[q + 2] << 16) | (src[q + 3] << 24)
        if v & 0x80000000:
            v -= 0x100000000
        v >>= shift
        dst[i] = -32768 if v < -32768 else (32767 if v > 32767 else v)


def pre_quant(src, src_off, n, dst, dst_off, params):
    """dst[dst_off+j] = clamp((((src[src_off+j] * m_c) >> 15) + o_c) >> sh2) + zp, c = j % n_ch.

    params (int array): n_ch, sh2, zp, lo, hi, then m_c, o_c for every channel. dst gets the
    two's-complement byte of the clamped value."""
    # (one assignment per name: a tuple assignment of more than 3 values allocates on MicroPython)
    nch = params[0]
    sh2 = params[1]
    zp = params[2]
    lo = params[3]
    hi = params[4]
    c = 0
    for j in range(n):
        q = ((((src[src_off + j] * params[5 + 2 * c]) >> 15) + params[6 + 2 * c]) >> sh2) + zp
        if q < lo:
            q = lo
        elif q > hi:
            q = hi
        dst[dst_off + j] = q & 0xFF
        c += 1
        if c == nch:
            c = 0


# ------------------------------------------------------------------ audio


def _isqrt(v):
    res = 0
    bit = 1 << 30
    while bit > v:
        bit >>= 2
    while bit:
        if v >= res + bit:
            v -= res + bit
            res = (res >> 1) + bit
        else:
            res >>= 1
        bit >>= 2
    return res


def _mag(xr, xi):
    ar = -xr if xr < 0 else xr
    ai = -xi if xi < 0 else xi
    mx = ar if ar > ai else ai
    r = 0
    while (mx >> r) >= 32768:
        r += 1
    ar >>= r
    ai >>= r
    return _isqrt(ar * ar + ai * ai) << r


def _log2q16(v, T):
    """log2(v) in Q16 for an int 0 < v < 2^31 (table T: log2(1 + i/64) in Q16, 65 entries)."""
    p = 0
    while (v >> (p + 1)) > 0:
        p += 1
    u = v << (30 - p)
    i = (u >> 24) & 63
    f = (u >> 8) & 0xFFFF
    t = T[i]
    return (p << 16) + t + (((T[i + 1] - t) * f) >> 16)


def _normalize(z, n, lim):
    """Shift z[0:n] right until every |z| < lim; returns the shift."""
    m = 0
    for i in range(n):
        v = z[i]
        if v < 0:
            v = -v
        if v > m:
            m = v
    k = 0
    while (m >> k) >= lim:
        k += 1
    if k:
        for i in range(n):
            z[i] >>= k
    return k


def pre_logmel(p, frame, out, out_off, z):
    """Window + real FFT + magnitude + mel filterbank + log2 of one frame.

    frame: int16 array (p.frame_length samples); out[out_off:out_off+n_mels] gets log2(mel) in
    Q16 (NEG for an empty band) of the un-normalized samples; z: int32 scratch of fft_length."""
    L = p.frame_length
    N = p.fft_length
    M = N >> 1
    w = p.window
    m = 0
    for n in range(L):
        v = frame[n] * w[n]
        z[n] = v
        if v < 0:
            v = -v
        if v > m:
            m = v
    for n in range(L, N):
        z[n] = 0
    nb = p.n_mels
    if m == 0:
        for b in range(nb):
            out[out_off + b] = NEG
        return
    # block floating point: bring the peak into [2^26, 2^27); true value = z * 2^E
    E = -15
    k = 0
    while (m >> k) >= _LIM:
        k += 1
    if k:
        for n in range(L):
            z[n] >>= k
        E += k
    else:
        while (m << (k + 1)) < _LIM:
            k += 1
        if k:
            for n in range(L):
                z[n] <<= k
            E -= k
    # z holds M complex values z[k] = x[2k] + i x[2k+1] (interleaved): bit-reverse them
    j = 0
    for i in range(1, M):
        bit = M >> 1
        while j & bit:
            j ^= bit
            bit >>= 1
        j ^= bit
        if i < j:
            a, b = 2 * i, 2 * j
            t = z[a]
            z[a] = z[b]
            z[b] = t
            t = z[a + 1]
            z[a + 1] = z[b + 1]
            z[b + 1] = t
    cs, sn = p.cos, p.sin
    size = 2
    while size <= M:
        E += _normalize(z, N, _LIM)
        half = size >> 1
        step = N // size
        start = 0
        while start < M:                  # (range() with a variable step allocates)
            for j in range(half):
                t = j * step
                c = cs[t]
                s = sn[t]
                a = 2 * (start + j)
                b = a + size
                br = z[b]
                bi = z[b + 1]
                tr = ((br * c) >> 15) + ((bi * s) >> 15)
                ti = ((bi * c) >> 15) - ((br * s) >> 15)
                ar = z[a]
                ai = z[a + 1]
                z[b] = ar - tr
                z[b + 1] = ai - ti
                z[a] = ar + tr
                z[a + 1] = ai + ti
            start += size
        size <<= 1
    E += _normalize(z, N, _LIM)
    # split into the N/2+1 bins of the real FFT (values are 2 X[k]); magnitudes in place:
    # mag[k] -> z[2k] (k < M), mag[M] -> z[1]
    zr0, zi0 = z[0], z[1]
    z[0] = _mag(2 * (zr0 + zi0), 0)
    z[1] = _mag(2 * (zr0 - zi0), 0)
    for k in range(1, (M >> 1) + 1):
        kk = M - k
        zr, zi = z[2 * k], z[2 * k + 1]
        yr, yi = z[2 * kk], z[2 * kk + 1]
        c, s = cs[k], sn[k]
        er = zr + yr
        ei = zi - yi
        o_r = zi + yi
        o_i = yr - zr
        m1 = _mag(er + ((o_r * c) >> 15) + ((o_i * s) >> 15), ei + ((o_i * c) >> 15) - ((o_r * s) >> 15))
        if kk != k:
            c, s = cs[kk], sn[kk]
            er = yr + zr
            ei = yi - zi
            o_r = yi + zi
            o_i = zr - yr
            z[2 * kk] = _mag(er + ((o_r * c) >> 15) + ((o_i * s) >> 15),
                             ei + ((o_i * c) >> 15) - ((o_r * s) >> 15))
        z[2 * k] = m1
    E -= 1
    # mel filterbank on magnitudes shifted below 2^mag_bits (band sums cannot overflow)
    mx = z[1]
    for k in range(M):
        if z[2 * k] > mx:
            mx = z[2 * k]
    q = 0
    lim = 1 << p.mag_bits
    while (mx >> q) >= lim:
        q += 1
    E += q
    st, ln, wt = p.mel_start, p.mel_len, p.mel_w
    T = p.log2tab
    o = 0
    for b in range(nb):
        acc = 0
        k = st[b]
        for i in range(ln[b]):
            mg = z[1] if k == M else z[2 * k]
            acc += ((mg >> q) * wt[o + i]) >> 15
            k += 1
        o += ln[b]
        out[out_off + b] = _log2q16(acc, T) + (E << 16) if acc > 0 else NEG


def pre_mfcc(p, lm, lm_off, Lq, out, out_off, tmp):
    """Normalize one frame's log2-mel by the window max, add the epsilon, DCT -> Q16 MFCCs.

    lm[lm_off:] are pre_logmel outputs, Lq = log2(max sample) in Q16 (0 for max <= 1);
    out[out_off:out_off+n_mfcc] gets the coefficients (natural-log units, Q16); tmp: int32 scratch
    of n_mels. With p.n_mfcc == 0 the normalized natural-log mel values are written instead."""
    nb, K = p.n_mels, p.n_mfcc
    eps = p.log2_eps
    S = p.sptab
    nsp = len(S)
    for b in range(nb):
        v = lm[lm_off + b]
        if v == NEG:
            tmp[b] = eps
            continue
        y = v - Lq
        d = y - eps
        if d < 0:
            y = eps
            d = -d
        i = d >> 13
        if i < nsp - 1:
            s0 = S[i]
            y += s0 + (((S[i + 1] - s0) * (d & 8191)) >> 13)
        tmp[b] = y
    D = p.dct
    sh = p.dct_shift
    if K == 0:                      # log-mel output: ln = log2 * ln2 (D holds ln2 in Q(sh))
        c = D[0]
        for b in range(nb):
            out[out_off + b] = (tmp[b] * c) >> sh
        return
    for k in range(K):
        acc = 0
        o = k * nb
        for b in range(nb):
            acc += (tmp[b] * D[o + b]) >> sh
        out[out_off + k] = acc


# ------------------------------------------------------------------ image

_P_SW, _P_SH, _P_SFMT, _P_CX, _P_CY, _P_CW, _P_CH, _P_DW, _P_DH, _P_DFMT, _P_MODE = range(11)
_P_SH2, _P_ZP, _P_LO, _P_HI, _P_MC = 11, 12, 13, 14, 15


def _px(src, i, sfmt, c):
    """Channel c (0..2; -1 = gray) of source pixel i."""
    if sfmt == 0:
        return src[i]
    if sfmt == 1:
        v = (src[2 * i] << 8) | src[2 * i + 1]
        r = (v >> 11) & 31
        g = (v >> 5) & 63
        b = v & 31
        r = (r << 3) | (r >> 2)
        g = (g << 2) | (g >> 4)
        b = (b << 3) | (b >> 2)
    else:
        r, g, b = src[3 * i], src[3 * i + 1], src[3 * i + 2]
    if c < 0:
        return (77 * r + 150 * g + 29 * b) >> 8
    return r if c == 0 else (g if c == 1 else b)


def pre_image(src, dst, P):
    """Crop + resize + pixel format conversion + quantization of one frame into dst.

    P (int array): sw sh sfmt cx cy cw ch dw dh dfmt mode sh2 zp lo hi, then m_c o_c for each
    output channel. Formats 0 gray, 1 RGB565 (big-endian), 2 RGB888; dfmt 0 gray or 2 RGB888.
    mode 0 nearest, 1 bilinear (Q8 weights, half-pixel centres), 2 area (box average).
    Output value per channel: clamp((((v * m_c) >> 15) + o_c) >> sh2) + zp, stored as a byte."""
    sw = P[_P_SW]
    sfmt = P[_P_SFMT]
    cx = P[_P_CX]
    cy = P[_P_CY]
    cw = P[_P_CW]
    ch = P[_P_CH]
    dw = P[_P_DW]
    dh = P[_P_DH]
    dfmt = P[_P_DFMT]
    mode = P[_P_MODE]
    sh2 = P[_P_SH2]
    zp = P[_P_ZP]
    lo = P[_P_LO]
    hi = P[_P_HI]
    nc = 1 if dfmt == 0 else 3
    xstep = (cw << 16) // dw
    ystep = (ch << 16) // dh
    o = 0
    for oy in range(dh):
        if mode == 1:
            sy = oy * ystep + (ystep >> 1) - 32768
            if sy < 0:
                sy = 0
            if sy > (ch - 1) << 16:
                sy = (ch - 1) << 16
            sy = (sy + 128) >> 8              # Q8, rounded
            y0 = sy >> 8
            fy = sy & 255
            y1 = y0 + 1 if y0 + 1 < ch else y0
        elif mode == 2:
            y0 = oy * ch // dh
            y1 = ((oy + 1) * ch + dh - 1) // dh
        else:
            y0 = ((2 * oy + 1) * ch) // (2 * dh)
        for ox in range(dw):
            if mode == 1:
                sx = ox * xstep + (xstep >> 1) - 32768
                if sx < 0:
                    sx = 0
                if sx > (cw - 1) << 16:
                    sx = (cw - 1) << 16
                sx = (sx + 128) >> 8
                x0 = sx >> 8
                fx = sx & 255
                x1 = x0 + 1 if x0 + 1 < cw else x0
            elif mode == 2:
                x0 = ox * cw // dw
                x1 = ((ox + 1) * cw + dw - 1) // dw
            else:
                x0 = ((2 * ox + 1) * cw) // (2 * dw)
            for c in range(nc):
                cc = -1 if nc == 1 else c
                if mode == 1:
                    r0 = (cy + y0) * sw + cx
                    r1 = (cy + y1) * sw + cx
                    top = _px(src, r0 + x0, sfmt, cc) * (256 - fx) + _px(src, r0 + x1, sfmt, cc) * fx
                    bot = _px(src, r1 + x0, sfmt, cc) * (256 - fx) + _px(src, r1 + x1, sfmt, cc) * fx
                    v = (top * (256 - fy) + bot * fy + 32768) >> 16
                elif mode == 2:
                    s = 0
                    for yy in range(y0, y1):
                        r0 = (cy + yy) * sw + cx
                        for xx in range(x0, x1):
                            s += _px(src, r0 + xx, sfmt, cc)
                    cnt = (y1 - y0) * (x1 - x0)
                    v = (s + (cnt >> 1)) // cnt
                else:
                    v = _px(src, (cy + y0) * sw + cx + x0, sfmt, cc)
                q = ((((v * P[_P_MC + 2 * c]) >> 15) + P[_P_MC + 1 + 2 * c]) >> sh2) + zp
                if q < lo:
                    q = lo
                elif q > hi:
                    q = hi
                dst[o] = q & 0xFF
                o += 1
