"""Recurrent ops: op codes 49-56, check codes 60-69. Each op's C kernel and its *_check live in
native_modules/engine/ops/ (svdf.c, lstm.c), its viper kernel in device/mpyml/viper_recurrent.py, its lowering
in host/mpyml/lower/recurrent.py.

State: the RNN state of an op is an *output* operand whose tensor carries the STATE flag (kept across invokes,
zeroed at load and by reset); the kernel reads and updates it in place. Scratch buffers are outputs too (nobody
reads them after the op), so the loader's generic no-overlap rule covers them.
"""

from __future__ import annotations

from . import Check, Op, Operand, Param

I32_MAX = 2147483647

C_SVDF_SHAPE = Check("SVDF_SHAPE", 60, "SVDF: input [B, I], weights_feature [F, I], weights_time [F, M], "
                     "bias [F/rank], output [B, F/rank], state [B, M*F], scratch [B*F] / [B*U] int32 must agree "
                     "(F a multiple of rank, I <= 65536)")
C_STATE = Check("STATE", 61, "a recurrent state operand must be an arena tensor with the STATE flag")
C_LSTM_SHAPE = Check("LSTM_SHAPE", 62, "LSTM: input [B, T, I] (or [T, B, I] time-major), weights [S, I] / [S, S], "
                     "biases [S], output [B, T, S], hidden state [B*S] int8, cell state [B*S] int16, scratch [4*S] "
                     "int16 must agree (I, S <= 65536)")
C_ZERO_POINT = Check("REC_ZERO_POINT", 63, "recurrent op: weights must have zero point 0 and the quantization "
                     "fields of the tensors must match the op's params")

C_TANH = Check("LSTM_TANH", 64, "LSTM: tanh_mult * 32768 plus the rounding of tanh_rshift must fit in int32 "
               "(multiplier 3 with a right shift, or 3 << left shift with none)")

_SHIFT = (-31, 30)

SVDF = Op(
    name="SVDF",
    code=49,
    kernel="mpyml_svdf",
    tflite=("SVDF",),
    doc="TFLM svdf_common.cc EvalIntegerSvdfReference<int16_t>: feature matmul into the newest state column, "
        "time-weighted sum over the memory, rank reduction, bias, requantize to int8. The int8 path of TFLM "
        "applies no fused activation (only the int8 clamp), so neither does this op.",
    inputs=(
        Operand("input", ("int8",), "arena", doc="[batch, input_size]"),
        Operand("weights_feature", ("int8",), "const", doc="[num_filters, input_size]"),
        Operand("weights_time", ("int16",), "const", doc="[num_filters, memory_size]"),
        Operand("bias", ("int32",), "const", optional=True, doc="[num_units] (num_units = num_filters / rank)"),
    ),
    outputs=(
        Operand("output", ("int8",), "arena", doc="[batch, num_units]"),
        Operand("state", ("int16",), "arena", doc="STATE tensor [batch, memory_size * num_filters], updated in place"),
        Operand("scratch", ("int32",), "arena", doc="[batch * num_filters] scratch"),
        Operand("scratch_output", ("int32",), "arena", doc="[batch * num_units] scratch"),
    ),
    params=(
        Param("rank", 1, 1024, "SVDF rank (num_filters / num_units)"),
        Param("input_offset", -127, 128, "-input zero point"),
        Param("state_zero_point", -32768, 32767, "zero point of the activation state"),
        Param("output_offset", -128, 127, "output zero point"),
        Param("mult1", 0, I32_MAX, "input*weights_feature -> state multiplier"),
        Param("shift1", *_SHIFT, "its shift (> 0 = left)"),
        Param("mult2", 0, I32_MAX, "state*weights_time -> output multiplier"),
        Param("shift2", *_SHIFT, "its shift (> 0 = left)"),
    ),
    checks=(C_SVDF_SHAPE, C_STATE),
)

LSTM = Op(
    name="UNIDIRECTIONAL_SEQUENCE_LSTM",
    code=50,
    kernel="mpyml_lstm",
    params_struct="mpyml_lstm_params_t",
    tflite=("UNIDIRECTIONAL_SEQUENCE_LSTM",),
    doc="TFLM's integer LSTM (lstm_eval.h LstmStep, int8 activations and weights, int16 cell state and gates, "
        "int32 biases): no peephole, projection, layer norm or CIFG. Every batch row runs its time steps in order "
        "with its own slice of the hidden and cell state (time-major only changes the input/output layout).",
    inputs=(
        Operand("input", ("int8",), "arena", doc="[batch, time, input_size] ([time, batch, input] if time_major)"),
        Operand("input_to_input_weights", ("int8",), "const", doc="[S, I]"),
        Operand("input_to_forget_weights", ("int8",), "const", doc="[S, I]"),
        Operand("input_to_cell_weights", ("int8",), "const", doc="[S, I]"),
        Operand("input_to_output_weights", ("int8",), "const", doc="[S, I]"),
        Operand("recurrent_to_input_weights", ("int8",), "const", doc="[S, S]"),
        Operand("recurrent_to_forget_weights", ("int8",), "const", doc="[S, S]"),
        Operand("recurrent_to_cell_weights", ("int8",), "const", doc="[S, S]"),
        Operand("recurrent_to_output_weights", ("int8",), "const", doc="[S, S]"),
        Operand("input_gate_bias", ("int32",), "const", doc="[S]"),
        Operand("forget_gate_bias", ("int32",), "const", doc="[S]"),
        Operand("cell_gate_bias", ("int32",), "const", doc="[S]"),
        Operand("output_gate_bias", ("int32",), "const", doc="[S]"),
    ),
    outputs=(
        Operand("output", ("int8",), "arena", doc="[batch, time, S] ([time, batch, S] if time_major)"),
        Operand("hidden_state", ("int8",), "arena",
                doc="STATE tensor, batch * S int8, stored as (uint8)(h - hidden_zero_point) so that the zeroed "
                    "state is h = zero point, as TFLM resets int8 variable tensors"),
        Operand("cell_state", ("int16",), "arena", doc="STATE tensor, batch * S int16"),
        Operand("scratch", ("int16",), "arena", doc="4 * S int16 gate buffers"),
    ),
    params=(
        Param("time_major", 0, 1, "1: input/output are [time, batch, ...]"),
        Param("input_offset", -127, 128, "-input zero point"),
        Param("hidden_offset", -127, 128, "-hidden state zero point (recurrent FC input offset)"),
        Param("hidden_zero_point", -128, 127, "hidden state zero point (output of the hidden update)"),
        # gate FCs, order input, forget, cell, output: (input FC mult, shift, recurrent FC mult, shift)
        Param("i_in_mult", 0, I32_MAX), Param("i_in_shift", *_SHIFT),
        Param("i_rec_mult", 0, I32_MAX), Param("i_rec_shift", *_SHIFT),
        Param("f_in_mult", 0, I32_MAX), Param("f_in_shift", *_SHIFT),
        Param("f_rec_mult", 0, I32_MAX), Param("f_rec_shift", *_SHIFT),
        Param("c_in_mult", 0, I32_MAX), Param("c_in_shift", *_SHIFT),
        Param("c_rec_mult", 0, I32_MAX), Param("c_rec_shift", *_SHIFT),
        Param("o_in_mult", 0, I32_MAX), Param("o_in_shift", *_SHIFT),
        Param("o_rec_mult", 0, I32_MAX), Param("o_rec_shift", *_SHIFT),
        Param("forget_mul_mult", 0, I32_MAX, "forget gate x cell state -> cell state"),
        Param("forget_mul_shift", *_SHIFT),
        Param("input_mul_mult", 0, I32_MAX, "input gate x cell gate -> cell state"),
        Param("input_mul_shift", *_SHIFT),
        Param("output_mul_mult", 0, I32_MAX, "tanh(cell) x output gate -> hidden state"),
        Param("output_mul_shift", *_SHIFT),
        Param("cell_clip", 0, 32767, "quantized cell clip, 0 = none"),
        Param("tanh_mult", 1, 49152, "tanh(cell state) input multiplier (3 << left shift, or 3)"),
        Param("tanh_rshift", 0, 31, "tanh(cell state) input right shift"),
    ),
    checks=(C_LSTM_SHAPE, C_STATE, C_ZERO_POINT, C_TANH),
)

OPS: list[Op] = [SVDF, LSTM]
