/*
 * ops/simd.h - picks the SIMD building blocks for the target at build time:
 *   __ARM_FEATURE_DSP (M4, M7)      simd_dsp.h    MPYML_SIMD_DSP
 *   __SSE2__ (x86-64 baseline)      simd_sse2.h   MPYML_SIMD_SSE2
 *   otherwise (M0, M3, ...)         none: the kernels' portable C loops
 * MPYML_EMULATE_DSP selects simd_dsp.h over C models of the DSP instructions on any target.
 * Defining MPYML_NO_SIMD forces the portable loops on any target (the host tests build that variant
 * too, so the code Cortex-M0/M3 run is proven bit-exact on the host).
 */
#ifndef MPYML_OPS_SIMD_H
#define MPYML_OPS_SIMD_H

#if !defined(MPYML_NO_SIMD) && (defined(__ARM_FEATURE_DSP) || defined(MPYML_EMULATE_DSP))
#include "simd_dsp.h"
#elif !defined(MPYML_NO_SIMD) && defined(__SSE2__)
#include "simd_sse2.h"
#endif

#endif /* MPYML_OPS_SIMD_H */
