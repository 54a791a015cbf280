"""TFLite Micro-exact integer parameters, computed on the host so the device engine is integer-only.

Every function mirrors the C++ Prepare code of the TFLite Micro kernels bit for bit:
scales are float32 in the .tflite and TFLM keeps them as ``float``; it converts them to ``double``
where the C++ does (``static_cast<double>``), multiplies/divides in double, splits with ``std::frexp``
and rounds with ``std::round`` (half away from zero). Results are what the kernels in
``native_modules/engine/ops`` expect (double-rounding ``MultiplyByQuantizedMultiplier``, the default
TFLite build, i.e. not ``TFLITE_SINGLE_ROUNDING``).

Sources mirrored (tensorflow/lite/...):
  kernels/internal/quantization_util.cc  QuantizeMultiplier, PreprocessSoftmaxScaling, CalculateInputRadius
  kernels/kernel_util.cc                 PopulateConvolutionQuantizationParams,
                                         GetQuantizedConvolutionMultipler, CalculateActivationRangeQuantized
  micro/kernels/add_common.cc            CalculateOpDataAdd (int8)
  micro/kernels/softmax_common.cc        CalculateSoftmaxParams (int8)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "quantize_multiplier",
    "per_channel_multipliers",
    "fc_per_tensor_multiplier",
    "add_params",
    "softmax_params",
    "activation_range",
    "round_half_away",
]

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)
INT8_MIN, INT8_MAX = -128, 127
ADD_LEFT_SHIFT = 20             # CalculateOpDataAdd: 20 for int8 (15 for int16)
SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5
FUSED_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def _f32(x: float) -> float:
    """The double value of a C++ ``float`` holding x (float32 rounding, then exact widening)."""
    return float(np.float32(x))


def round_half_away(x: float) -> int:
    """``std::round`` (and ``TfLiteRound``) of a double: nearest integer, ties away from zero. Exact."""
    if not math.isfinite(x):
        raise ValueError(f"cannot round {x}")
    f = math.floor(x)
    frac = x - f                # exact: the fractional bits of a double are representable
    if frac > 0.5 or (frac == 0.5 and x > 0):
        return f + 1
    return f


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLM ``QuantizeMultiplier(double)``: real ~= mult * 2^(shift - 31), mult in [2^30, 2^31).

    Returns (mult, shift) with shift > 0 meaning a left shift; real == 0 gives (0, 0) and very small
    multipliers (shift < -31) are flushed to (0, 0) as TFLite does.
    """
    real = float(real)
    if real == 0.0:
        return 0, 0
    if not math.isfinite(real):
        raise ValueError(f"multiplier must be finite, got {real}")
    q, shift = math.frexp(real)                     # same as std::frexp: q in [0.5, 1)
    q_fixed = round_half_away(q * float(1 << 31))   # exact scaling by 2^31
    if q_fixed > (1 << 31):                         # TFLITE_CHECK(q_fixed <= (1LL << 31))
        raise ValueError(f"QuantizeMultiplier({real}) overflowed")
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if q_fixed > INT32_MAX:                         # TFLITE_CHECK_LE
        raise ValueError(f"QuantizeMultiplier({real}) overflowed")
    if shift < -31:
        shift = 0
        q_fixed = 0
    return int(q_fixed), int(shift)


def per_channel_multipliers(
    input_scale: float, filter_scales: Sequence[float], output_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mult, shift) int32 arrays, as PopulateConvolutionQuantizationParams (conv, depthwise)
    and the per-channel branch of CalculateOpDataFullyConnected compute them:
    effective = double(input_scale) * double(filter_scale[i]) / double(output_scale).

    One filter scale gives one entry (TFLM broadcasts it over the output channels for conv/depthwise).
    For a per-tensor FULLY_CONNECTED use fc_per_tensor_multiplier: TFLM computes that one differently.
    """
    s_in, s_out = _f32(input_scale), _f32(output_scale)
    mults, shifts = [], []
    for fs in filter_scales:
        m, s = quantize_multiplier(s_in * _f32(fs) / s_out)
        mults.append(m)
        shifts.append(s)
    return np.asarray(mults, dtype=np.int32), np.asarray(shifts, dtype=np.int32)


def fc_per_tensor_multiplier(input_scale: float, filter_scale: float, output_scale: float) -> tuple[int, int]:
    """Per-tensor FULLY_CONNECTED (mult, shift): TFLM's GetQuantizedConvolutionMultipler multiplies the
    two scales in float32 first: double(float(input_scale * filter_scale)) / double(output_scale).
    """
    product = float(np.float32(input_scale) * np.float32(filter_scale))
    return quantize_multiplier(product / _f32(output_scale))


def _quantize_multiplier_smaller_than_one_exp(real: float) -> tuple[int, int]:
    if not (0.0 < real < 1.0):              # TFLITE_CHECK_LT / TFLITE_CHECK_GT
        raise ValueError(f"multiplier {real} must be in (0, 1)")
    m, s = quantize_multiplier(real)
    if s > 0:
        raise ValueError(f"multiplier {real} gave a left shift {s}")
    return m, s


def add_params(input1_scale: float, input2_scale: float, output_scale: float) -> dict[str, int]:
    """int8 ADD parameters, as CalculateOpDataAdd in micro/kernels/add_common.cc.

    Keys: left_shift, input1_mult, input1_shift, input2_mult, input2_shift, output_mult, output_shift
    (shifts <= 0, i.e. right shifts, for MultiplyByQuantizedMultiplierSmallerThanOneExp).
    """
    s1, s2, so = np.float32(input1_scale), np.float32(input2_scale), np.float32(output_scale)
    twice_max_input_scale = 2.0 * float(max(s1, s2))        # std::max on floats, then double
    real1 = float(s1) / twice_max_input_scale
    real2 = float(s2) / twice_max_input_scale
    real_out = twice_max_input_scale / (float(1 << ADD_LEFT_SHIFT) * float(so))
    m1, sh1 = _quantize_multiplier_smaller_than_one_exp(real1)
    m2, sh2 = _quantize_multiplier_smaller_than_one_exp(real2)
    mo, sho = _quantize_multiplier_smaller_than_one_exp(real_out)
    return {
        "left_shift": ADD_LEFT_SHIFT,
        "input1_mult": m1,
        "input1_shift": sh1,
        "input2_mult": m2,
        "input2_shift": sh2,
        "output_mult": mo,
        "output_shift": sho,
    }


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """int8 SOFTMAX (input_multiplier, input_left_shift, diff_min), as CalculateSoftmaxParams:
    PreprocessSoftmaxScaling(double(beta), double(input_scale), 5) and
    diff_min = -CalculateInputRadius(5, input_left_shift).
    """
    b, s = _f32(beta), _f32(input_scale)
    max_real_multiplier = float((1 << 31) - 1)
    real = min(b * s * float(1 << (31 - SOFTMAX_SCALED_DIFF_INTEGER_BITS)), max_real_multiplier)
    if not real > 1.0:                      # QuantizeMultiplierGreaterThanOne: TFLITE_CHECK_GT(m, 1.)
        raise ValueError(f"softmax beta * input_scale = {b * s} is too small (TFLite requires > 2^-26)")
    mult, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        raise ValueError(f"softmax multiplier {real} gave a right shift")
    # CalculateInputRadius(5, left_shift, 31) in double, floored, then diff_min = -1.0 * radius
    max_input_rescaled = (
        1.0 * ((1 << SOFTMAX_SCALED_DIFF_INTEGER_BITS) - 1)
        * float(1 << (31 - SOFTMAX_SCALED_DIFF_INTEGER_BITS)) / float(1 << left_shift)
    )
    diff_min = -math.floor(max_input_rescaled)
    return int(mult), int(left_shift), int(diff_min)


def _quantize_f32(scale: np.float32, zero_point: int, f: float) -> int:
    """kernel_util.cc Quantize(): q = zero_point + int(TfLiteRound(float(f) / scale)) in float32."""
    tmp = np.float32(np.float32(f) / scale)
    if not np.isfinite(tmp):
        raise ValueError(f"activation bound {f} / scale {scale} overflows")
    r = round_half_away(float(tmp))
    if not (INT32_MIN <= r <= INT32_MAX):   # TF_LITE_ENSURE(no_integer_overflow_from_quantization)
        raise ValueError(f"activation bound {f} / scale {scale} overflows int32")
    return int(zero_point) + r


def activation_range(fused: str, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for an int8 output: (act_min, act_max) within [-128, 127]."""
    s = np.float32(scale)
    if fused == "NONE":
        return INT8_MIN, INT8_MAX
    if fused == "RELU":
        return max(INT8_MIN, _quantize_f32(s, zero_point, 0.0)), INT8_MAX
    if fused == "RELU6":
        return (max(INT8_MIN, _quantize_f32(s, zero_point, 0.0)),
                min(INT8_MAX, _quantize_f32(s, zero_point, 6.0)))
    if fused == "RELU_N1_TO_1":
        return (max(INT8_MIN, _quantize_f32(s, zero_point, -1.0)),
                min(INT8_MAX, _quantize_f32(s, zero_point, 1.0)))
    raise ValueError(f"unsupported fused activation {fused!r} (expected one of {FUSED_ACTIVATIONS})")
