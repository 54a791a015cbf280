/*
 * ops/ops.h - int8 kernel signatures. One op per file in ops/; each has a portable reference
 * kernel (*_ref) and the entry point the engine calls (no suffix), which is either an optimized
 * variant with the identical signature and bit-identical results, or the reference itself.
 *
 * Kernels trust their arguments: the loader (mpyml_engine.c) has validated every shape, pointer
 * and parameter range documented in mpyml_format.h. Kernels never allocate, never fail.
 * Shapes are NHWC; tensors of rank < 4 are right-aligned into {n,h,w,c} with leading 1s.
 */
#ifndef MPYML_OPS_H
#define MPYML_OPS_H

#include <stdint.h>
#include "../mpyml_format.h"

typedef struct {
    int32_t n, h, w, c;
} mpyml_shape4_t;

/* CONV_2D. f_s = {O, KH, KW, C}; out_s = {N, OH, OW, O}. bias may be NULL. */
void mpyml_conv2d_ref(const mpyml_conv_params_t *p,
    const mpyml_shape4_t *in_s, const int8_t *in,
    const mpyml_shape4_t *f_s, const int8_t *filter,
    const int32_t *bias, const int32_t *mult, const int32_t *shift,
    const mpyml_shape4_t *out_s, int8_t *out);
void mpyml_conv2d(const mpyml_conv_params_t *p,
    const mpyml_shape4_t *in_s, const int8_t *in,
    const mpyml_shape4_t *f_s, const int8_t *filter,
    const int32_t *bias, const int32_t *mult, const int32_t *shift,
    const mpyml_shape4_t *out_s, int8_t *out);

/* DEPTHWISE_CONV_2D. f_s = {1, KH, KW, O}; O = C * depth_multiplier; out_s = {N, OH, OW, O}. */
void mpyml_depthwise_conv2d_ref(const mpyml_conv_params_t *p,
    const mpyml_shape4_t *in_s, const int8_t *in,
    const mpyml_shape4_t *f_s, const int8_t *filter,
    const int32_t *bias, const int32_t *mult, const int32_t *shift,
    const mpyml_shape4_t *out_s, int8_t *out);
void mpyml_depthwise_conv2d(const mpyml_conv_params_t *p,
    const mpyml_shape4_t *in_s, const int8_t *in,
    const mpyml_shape4_t *f_s, const int8_t *filter,
    const int32_t *bias, const int32_t *mult, const int32_t *shift,
    const mpyml_shape4_t *out_s, int8_t *out);

/* FULLY_CONNECTED. filter is [out_depth, in_depth]; in is [batches, in_depth]; out [batches, out_depth].
 * per_channel: mult/shift have out_depth entries, else 1. bias may be NULL. */
void mpyml_fully_connected_ref(const mpyml_fc_params_t *p, int32_t batches, int32_t in_depth,
    int32_t out_depth, const int8_t *in, const int8_t *filter, const int32_t *bias,
    const int32_t *mult, const int32_t *shift, int per_channel, int8_t *out);
void mpyml_fully_connected(const mpyml_fc_params_t *p, int32_t batches, int32_t in_depth,
    int32_t out_depth, const int8_t *in, const int8_t *filter, const int32_t *bias,
    const int32_t *mult, const int32_t *shift, int per_channel, int8_t *out);

/* AVERAGE_POOL_2D / MAX_POOL_2D. out_s = {N, OH, OW, C}. */
void mpyml_avg_pool_ref(const mpyml_pool_params_t *p, const mpyml_shape4_t *in_s, const int8_t *in,
    const mpyml_shape4_t *out_s, int8_t *out);
void mpyml_max_pool_ref(const mpyml_pool_params_t *p, const mpyml_shape4_t *in_s, const int8_t *in,
    const mpyml_shape4_t *out_s, int8_t *out);

/* ADD with broadcasting: each dim of s1/s2 equals out_s's or is 1. */
void mpyml_add_ref(const mpyml_add_params_t *p, const mpyml_shape4_t *s1, const int8_t *in1,
    const mpyml_shape4_t *s2, const int8_t *in2, const mpyml_shape4_t *out_s, int8_t *out);
void mpyml_add(const mpyml_add_params_t *p, const mpyml_shape4_t *s1, const int8_t *in1,
    const mpyml_shape4_t *s2, const int8_t *in2, const mpyml_shape4_t *out_s, int8_t *out);

/* SOFTMAX over rows of `depth` elements, `outer` rows. in and out do not overlap. */
void mpyml_softmax_ref(const mpyml_softmax_params_t *p, int32_t outer, int32_t depth,
    const int8_t *in, int8_t *out);

#endif /* MPYML_OPS_H */
