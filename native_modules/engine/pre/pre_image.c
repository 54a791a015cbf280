/*
 * pre_image.c - crop + resize + pixel format conversion + quantization of a camera frame into a
 * model input, in one pass and integer arithmetic only.
 *
 * Sources: gray (1 B/px), RGB565 (2 B/px big-endian, channels widened to 8 bits by bit
 * replication), RGB888 (3 B/px). Output: gray or RGB888 (HWC). Gray from color is
 * (77 R + 150 G + 29 B) >> 8 per source pixel (weights sum to 256: gray stays gray).
 * Resize of the crop (cw x ch) to (dw x dh):
 *   nearest   source pixel ((2 o + 1) c) / (2 d) (pixel centres)
 *   bilinear  half-pixel centres, Q16 coordinates, Q8 weights, rounded
 *   area      mean of the source pixels [o c / d, ceil((o + 1) c / d)) in x and y, rounded
 * Then per output channel c: clamp((((v * m_c) >> 15) + o_c) >> sh2) + zp, stored as a byte.
 */
#include "pre.h"

enum {
    P_SW, P_SH, P_SFMT, P_CX, P_CY, P_CW, P_CH, P_DW, P_DH, P_DFMT, P_MODE, P_SH2, P_ZP, P_LO, P_HI, P_MC
};

/* channel c (0..2, -1 = gray) of source pixel i */
static inline int32_t px(const uint8_t *src, int32_t i, int sfmt, int c) {
    int32_t r, g, b;
    if (sfmt == 0) {
        return src[i];
    }
    if (sfmt == 1) {
        uint32_t v = ((uint32_t)src[2 * i] << 8) | src[2 * i + 1];
        r = (int32_t)((v >> 11) & 31u);
        g = (int32_t)((v >> 5) & 63u);
        b = (int32_t)(v & 31u);
        r = (r << 3) | (r >> 2);
        g = (g << 2) | (g >> 4);
        b = (b << 3) | (b >> 2);
    } else {
        r = src[3 * i];
        g = src[3 * i + 1];
        b = src[3 * i + 2];
    }
    if (c < 0) {
        return (77 * r + 150 * g + 29 * b) >> 8;
    }
    return c == 0 ? r : (c == 1 ? g : b);
}

int mpyml_pre_image(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_len,
    const int32_t *P, size_t n_params) {
    if (n_params < P_MC + 2) {
        return MPYML_PRE_E_PARAM;
    }
    const int32_t sw = P[P_SW], sh = P[P_SH], sfmt = P[P_SFMT], cx = P[P_CX], cy = P[P_CY], cw = P[P_CW],
        ch = P[P_CH], dw = P[P_DW], dh = P[P_DH], dfmt = P[P_DFMT], mode = P[P_MODE], sh2 = P[P_SH2],
        zp = P[P_ZP], lo = P[P_LO], hi = P[P_HI];
    const int nc = dfmt == 0 ? 1 : 3;
    if (sfmt < 0 || sfmt > 2 || (dfmt != 0 && dfmt != 2) || mode < 0 || mode > 2 || sh2 < 0 || sh2 > 30 ||
        sw < 1 || sh < 1 || sw > 16384 || sh > 16384 || dw < 1 || dh < 1 || dw > 16384 || dh > 16384 ||
        cw < 1 || ch < 1 || cx < 0 || cy < 0 || cx > sw - cw || cy > sh - ch || cw * ch > (1 << 23) ||
        n_params < (size_t)(P_MC + 2 * nc)) {
        return MPYML_PRE_E_PARAM;
    }
    const int32_t bpp = sfmt == 0 ? 1 : (sfmt == 1 ? 2 : 3);
    if (src_len < (size_t)sw * (size_t)sh * (size_t)bpp || dst_len < (size_t)dw * (size_t)dh * (size_t)nc) {
        return MPYML_PRE_E_SIZE;
    }
    const int32_t xstep = (cw << 16) / dw, ystep = (ch << 16) / dh;
    size_t o = 0;
    for (int32_t oy = 0; oy < dh; oy++) {
        int32_t y0, y1 = 0, fy = 0;
        if (mode == 1) {
            int32_t sy = oy * ystep + (ystep >> 1) - 32768;
            if (sy < 0) {
                sy = 0;
            }
            if (sy > (ch - 1) << 16) {
                sy = (ch - 1) << 16;
            }
            sy = (sy + 128) >> 8; /* Q8, rounded */
            y0 = sy >> 8;
            fy = sy & 255;
            y1 = y0 + 1 < ch ? y0 + 1 : y0;
        } else if (mode == 2) {
            y0 = oy * ch / dh;
            y1 = ((oy + 1) * ch + dh - 1) / dh;
        } else {
            y0 = ((2 * oy + 1) * ch) / (2 * dh);
        }
        for (int32_t ox = 0; ox < dw; ox++) {
            int32_t x0, x1 = 0, fx = 0;
            if (mode == 1) {
                int32_t sx = ox * xstep + (xstep >> 1) - 32768;
                if (sx < 0) {
                    sx = 0;
                }
                if (sx > (cw - 1) << 16) {
                    sx = (cw - 1) << 16;
                }
                sx = (sx + 128) >> 8;
                x0 = sx >> 8;
                fx = sx & 255;
                x1 = x0 + 1 < cw ? x0 + 1 : x0;
            } else if (mode == 2) {
                x0 = ox * cw / dw;
                x1 = ((ox + 1) * cw + dw - 1) / dw;
            } else {
                x0 = ((2 * ox + 1) * cw) / (2 * dw);
            }
            for (int c = 0; c < nc; c++) {
                int cc = nc == 1 ? -1 : c;
                int32_t v;
                if (mode == 1) {
                    int32_t r0 = (cy + y0) * sw + cx, r1 = (cy + y1) * sw + cx;
                    int32_t top = px(src, r0 + x0, sfmt, cc) * (256 - fx) + px(src, r0 + x1, sfmt, cc) * fx;
                    int32_t bot = px(src, r1 + x0, sfmt, cc) * (256 - fx) + px(src, r1 + x1, sfmt, cc) * fx;
                    v = (top * (256 - fy) + bot * fy + 32768) >> 16;
                } else if (mode == 2) {
                    int32_t s = 0;
                    for (int32_t yy = y0; yy < y1; yy++) {
                        int32_t r0 = (cy + yy) * sw + cx;
                        for (int32_t xx = x0; xx < x1; xx++) {
                            s += px(src, r0 + xx, sfmt, cc);
                        }
                    }
                    int32_t cnt = (y1 - y0) * (x1 - x0);
                    v = (s + (cnt >> 1)) / cnt;
                } else {
                    v = px(src, (cy + y0) * sw + cx + x0, sfmt, cc);
                }
                int32_t q = ((mpyml_pre_mulshift(v, P[P_MC + 2 * c], 15) + P[P_MC + 1 + 2 * c]) >> sh2) + zp;
                q = q < lo ? lo : (q > hi ? hi : q);
                dst[o++] = (uint8_t)q;
            }
        }
    }
    return MPYML_PRE_OK;
}
