"""Lowerings of the recurrent TFLite ops: SVDF and UNIDIRECTIONAL_SEQUENCE_LSTM (int8, as TFLite Micro runs them).

Every Prepare-time constant of TFLM (svdf_common.cc PrepareSvdf; lstm_eval_common.cc
PrepareGateParametersInteger / CreateLstmCellStateInfo) is computed here, with TFLM's float32 / double
arithmetic. The variable (state) tensors of TFLite become STATE arena tensors (zeroed at load), passed to the
engine op as outputs that the kernel reads and updates in place; scratch buffers are outputs too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import quantize
from ..tflite_model import ACTIVATION, Operator, Tensor
from . import lowering

if TYPE_CHECKING:
    from ..packer import _Builder


def _err(where: str, msg: str) -> Exception:
    from ..packer import PackError
    return PackError(f"{where}: {msg}")


def _per_tensor(t: Tensor, where: str, what: str) -> None:
    if len(t.scales) != 1 or len(t.zero_points) != 1:
        raise _err(where, f"{what} tensor {t.index} '{t.name}' needs per-tensor quantization "
                          f"(has {len(t.scales)} scales)")


def _state(b: _Builder, t: Tensor, type_name: str, where: str, what: str) -> int:
    """A TFLite variable tensor -> a STATE arena tensor (its quantization kept in the record)."""
    if t.is_const:
        raise _err(where, f"{what} tensor {t.index} '{t.name}' must be a variable (state) tensor, not a constant")
    shape = tuple(int(d) for d in t.shape) or (1,)
    i = b.scratch(t.name or what, shape, type_name, state=True)
    b.tensors[i].zero_point = t.zero_point
    b.tensors[i].scale = t.scale
    b.tensors[i].tflite_index = t.index
    return i


def _f32(x: float) -> np.float32:
    return np.float32(x)


# ---------------------------------------------------------------- SVDF

@lowering("SVDF")
def _svdf(b: _Builder, op: Operator, where: str) -> None:
    m = b.m
    if len(op.inputs) != 5 or len(op.outputs) != 1:
        raise _err(where, f"SVDF needs 5 inputs and 1 output (has {len(op.inputs)}, {len(op.outputs)})")
    ix, iwf, iwt, ib, ist = op.inputs
    x, wf, wt, o = m.tensors[ix], m.tensors[iwf], m.tensors[iwt], m.tensors[op.outputs[0]]
    if ist < 0:
        raise _err(where, "SVDF needs its activation state (input 4)")
    st = m.tensors[ist]
    if x.dtype != "INT8" or o.dtype != "INT8":
        raise _err(where, f"only the int8 SVDF is supported (input {x.dtype}, output {o.dtype})")
    if wf.dtype != "INT8" or not wf.is_const:
        raise _err(where, "weights_feature must be a constant int8 tensor")
    if wt.dtype != "INT16" or not wt.is_const or st.dtype != "INT16":
        raise _err(where, f"weights_time and the activation state must be int16 (are {wt.dtype}, {st.dtype}); "
                          "the int8-state SVDF variant is not supported")
    for t, what in ((x, "input"), (wf, "weights_feature"), (wt, "weights_time"), (st, "state"), (o, "output")):
        _per_tensor(t, where, what)
    if len(x.shape) != 2 or len(wf.shape) != 2 or len(wt.shape) != 2 or len(o.shape) != 2:
        raise _err(where, f"SVDF tensors must be 2-D (input {x.shape}, weights_feature {wf.shape}, "
                          f"weights_time {wt.shape}, output {o.shape})")
    rank = int(op.options.get("rank", 1))
    n_batch, n_input = x.shape
    n_filter = wf.shape[0]
    n_memory = wt.shape[1]
    if rank < 1 or n_filter % rank:
        raise _err(where, f"num_filters {n_filter} is not a multiple of rank {rank}")
    n_unit = n_filter // rank
    if wf.shape[1] != n_input or wt.shape[0] != n_filter or tuple(o.shape) != (n_batch, n_unit):
        raise _err(where, f"shapes disagree: input {x.shape}, weights_feature {wf.shape}, weights_time {wt.shape}, "
                          f"output {o.shape}, rank {rank}")
    if int(np.prod(st.shape)) != n_batch * n_memory * n_filter:
        raise _err(where, f"activation state {st.shape} must hold batch * memory * filters values")
    if np.any(wf.zero_points != 0) or np.any(wt.zero_points != 0):
        raise _err(where, "weights zero points must be 0")
    act = ACTIVATION.get(op.options.get("fusedActivationFunction", 0), "?")
    if act not in ("NONE", "RELU"):
        raise _err(where, f"fused activation {act} is not supported for SVDF")
    # TFLM PrepareSvdf: float32 products and quotient, then QuantizeMultiplier(double)
    s1 = float(_f32(x.scale) * _f32(wf.scale) / _f32(st.scale))
    s2 = float(_f32(st.scale) * _f32(wt.scale) / _f32(o.scale))
    mult1, shift1 = quantize.quantize_multiplier(s1)
    mult2, shift2 = quantize.quantize_multiplier(s2)
    i_b = 0xFFFF
    if ib >= 0:
        bt = m.tensors[ib]
        if bt.dtype != "INT32" or not bt.is_const or bt.data is None or bt.data.size != n_unit:
            raise _err(where, f"bias must be a constant int32 tensor of {n_unit} values")
        if abs(float(bt.scale) - float(_f32(st.scale) * _f32(wt.scale))) >= 1e-5:
            raise _err(where, "bias scale must be state scale * weights_time scale (TFLM refuses it otherwise)")
        i_b = b.const_i32(bt.name, bt.data.reshape(-1), bt.index)
    i_x = b.tensor(ix, where, ("INT8",))
    i_wf = b.tensor(iwf, where, ("INT8",))
    i_wt = b.tensor(iwt, where, ("INT16",))
    i_o = b.tensor(op.outputs[0], where, ("INT8",))
    i_st = _state(b, st, "int16", where, "activation state")
    i_s1 = b.scratch(f"{o.name}/svdf_scratch", (n_batch * n_filter,), "int32")
    i_s2 = b.scratch(f"{o.name}/svdf_scratch_out", (n_batch * n_unit,), "int32")
    params = [rank, -x.zero_point, st.zero_point, o.zero_point, mult1, shift1, mult2, shift2]
    b.emit("SVDF", [i_x, i_wf, i_wt, i_b], [i_o, i_st, i_s1, i_s2], params, op,
           macs=n_batch * n_filter * (n_input + n_memory),
           info={"rank": rank, "memory": n_memory, "filters": n_filter, "activation": act})


# ---------------------------------------------------------------- UNIDIRECTIONAL_SEQUENCE_LSTM

_NONLINEAR_IN = 2.0 ** -12      # gate FC output scale (Q3.12)
_NONLINEAR_OUT = 2.0 ** -15     # gate output scale (Q0.15)


def _checked_log2(x: float) -> int:
    """tflite::CheckedLog2 (float32 log, round half away from zero); TFLM ignores whether it was exact."""
    lg = np.float32(np.log(np.float32(x))) * np.float32(1.0 / np.log(np.float32(2.0)))
    return int(np.copysign(np.floor(np.abs(lg) + np.float32(0.5)), lg))


def _mul_params(in1: float, in2: float, out: float) -> tuple[int, int]:
    """CreateInterGateMulParams: double(in1) * double(in2) / double(out), QuantizeMultiplier."""
    return quantize.quantize_multiplier(float(_f32(in1)) * float(_f32(in2)) / float(_f32(out)))


@lowering("UNIDIRECTIONAL_SEQUENCE_LSTM")
def _lstm(b: _Builder, op: Operator, where: str) -> None:
    m = b.m
    ins = list(op.inputs) + [-1] * (24 - len(op.inputs))
    if len(op.inputs) != 24 or len(op.outputs) != 1:
        raise _err(where, f"LSTM needs 24 inputs and 1 output (has {len(op.inputs)}, {len(op.outputs)})")
    if ins[1] < 0 or ins[5] < 0:
        raise _err(where, "CIFG LSTM (coupled input and forget gate) is not supported")
    for k, what in ((9, "peephole"), (10, "peephole"), (11, "peephole"), (16, "projection"), (17, "projection"),
                    (20, "layer norm"), (21, "layer norm"), (22, "layer norm"), (23, "layer norm")):
        if ins[k] >= 0:
            raise _err(where, f"{what} LSTM variants are not supported (TFLM's integer LSTM runs the plain "
                              "Keras LSTM only)")
    x, o = m.tensors[ins[0]], m.tensors[op.outputs[0]]
    if ins[18] < 0 or ins[19] < 0:
        raise _err(where, "LSTM needs its output state and cell state tensors (inputs 18, 19)")
    h, c = m.tensors[ins[18]], m.tensors[ins[19]]
    if x.dtype != "INT8" or o.dtype != "INT8" or h.dtype != "INT8":
        raise _err(where, f"only the int8 LSTM is supported (input {x.dtype}, output {o.dtype}, state {h.dtype}); "
                          "convert with full-integer quantization")
    if c.dtype != "INT16":
        raise _err(where, f"the cell state must be int16 (is {c.dtype})")
    for t, what in ((x, "input"), (o, "output"), (h, "output state"), (c, "cell state")):
        _per_tensor(t, where, what)
    if len(x.shape) != 3 or len(o.shape) != 3:
        raise _err(where, f"input and output must be 3-D (are {x.shape}, {o.shape})")
    time_major = bool(op.options.get("timeMajor", False))
    n_b = x.shape[1] if time_major else x.shape[0]
    n_in = x.shape[2]
    ws = [m.tensors[ins[k]] for k in range(1, 9)]
    bs = [m.tensors[ins[k]] for k in range(12, 16)]
    s = ws[0].shape[0] if len(ws[0].shape) == 2 else -1
    for k, w in enumerate(ws):
        want = (s, n_in) if k < 4 else (s, s)
        if w.dtype != "INT8" or not w.is_const or tuple(w.shape) != want:
            raise _err(where, f"weights tensor {w.index} '{w.name}' must be a constant int8 {want} tensor "
                              f"(is {w.dtype} {w.shape})")
        _per_tensor(w, where, "weights")
        if w.zero_point != 0:
            raise _err(where, f"weights tensor {w.index} '{w.name}' must have zero point 0")
    for bt in bs:
        if bt.dtype != "INT32" or not bt.is_const or bt.data is None or bt.data.size != s:
            raise _err(where, f"bias tensor {bt.index} '{bt.name}' must be a constant int32 tensor of {s} values")
    if tuple(o.shape) != (x.shape[0], x.shape[1], s):
        raise _err(where, f"output shape {o.shape} does not match input {x.shape} and {s} units")
    if int(np.prod(h.shape)) != n_b * s or int(np.prod(c.shape)) != n_b * s:
        raise _err(where, f"state tensors {h.shape}, {c.shape} must hold batch * units = {n_b * s} values")
    if (o.scale, o.zero_point) != (h.scale, h.zero_point):
        raise _err(where, "the output must have the output state's quantization (TFLM copies the hidden state)")
    act = ACTIVATION.get(op.options.get("fusedActivationFunction", 0), "?")
    if act != "TANH":
        raise _err(where, f"cell gate activation {act} is not supported (TFLM's integer LSTM runs TANH)")
    gates: list[int] = []
    for g in range(4):             # input, forget, cell, output
        gates += quantize.fc_per_tensor_multiplier(x.scale, ws[g].scale, _NONLINEAR_IN)
        gates += quantize.fc_per_tensor_multiplier(h.scale, ws[4 + g].scale, _NONLINEAR_IN)
    fm = _mul_params(_NONLINEAR_OUT, c.scale, c.scale)
    im = _mul_params(_NONLINEAR_OUT, _NONLINEAR_OUT, c.scale)
    om = _mul_params(_NONLINEAR_OUT, _NONLINEAR_OUT, h.scale)
    cell_clip = float(op.options.get("cellClip", 0.0))
    q_clip = 0
    if cell_clip > 0:
        q_clip = int(np.int16(min(max(float(_f32(cell_clip)) / float(_f32(c.scale)), -32768.0), 32767.0)))
        if q_clip <= 0:
            raise _err(where, f"cell clip {cell_clip} quantizes to {q_clip}")
    power = _checked_log2(c.scale)
    ls = 15 + power - 3
    tanh_mult, tanh_rshift = (3 << ls, 0) if ls >= 0 else (3, -ls)
    i_x = b.tensor(ins[0], where, ("INT8",))
    i_w = [b.tensor(ins[k], where, ("INT8",)) for k in range(1, 9)]
    i_bias = [b.const_i32(bt.name, bt.data.reshape(-1), bt.index) for bt in bs if bt.data is not None]
    i_o = b.tensor(op.outputs[0], where, ("INT8",))
    i_h = _state(b, h, "int8", where, "output state")
    i_c = _state(b, c, "int16", where, "cell state")
    i_s = b.scratch(f"{o.name}/lstm_gates", (4 * s,), "int16")
    params = [int(time_major), -x.zero_point, -h.zero_point, h.zero_point, *gates, *fm, *im, *om, q_clip,
              tanh_mult, tanh_rshift]
    n_t = x.shape[0] if time_major else x.shape[1]
    b.emit("UNIDIRECTIONAL_SEQUENCE_LSTM", [i_x, *i_w, *i_bias], [i_o, i_h, i_c, i_s], params, op,
           macs=n_b * n_t * 4 * s * (n_in + s),
           info={"units": s, "time_steps": n_t, "time_major": time_major, "cell_clip": q_clip})
