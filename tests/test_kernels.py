"""The int8 kernels (native_modules/engine/ops) are bit-exact with tflite-micro's reference kernels.

No packer involved: the ops' C files are compiled into host shared libraries (plain -O2, UBSan, and
UBSan with the ARMv6-M integer-only arithmetic), every *_ref and optimized kernel is called through
ctypes with parameters from mpyml.quantize, and the outputs are compared with the tflite-micro
interpreter running the same single-op model: tolerance 0, hundreds of random models per op plus
every op of the shared real models. Also: the fixed-point primitives against a Python model of
gemmlowp, quantize.py edge cases, and warning-free cross-compilation for Cortex-M0/M3/M4/M7 with no
libgcc calls, no float and no writable data.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import tflite_build as tb
from conftest import skip_or_fail
from mpyml import paths, quantize

ROOT = Path(__file__).resolve().parents[1]
OPS_DIR = ROOT / "native_modules" / "engine" / "ops"
OPS_SRC = sorted(OPS_DIR.glob("*.c"))
CC = os.environ.get("CC", "cc")
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared"]
UBSAN = ["-O1", "-g", "-fsanitize=undefined", "-fno-sanitize-recover=all"]
VARIANTS: dict[str, list[str]] = {
    "O2": ["-O2"],
    "ubsan": UBSAN,
    "ubsan_v6m": [*UBSAN, "-DMPYML_ARITH_V6M"],    # the Cortex-M0 integer-only paths, on the host
    "portable": ["-O2", "-DMPYML_NO_SIMD"],          # the C loops Cortex-M0/M3 run (no SSE2 / DSP helpers)
    "dsp_emul": [*UBSAN, "-DMPYML_EMULATE_DSP"],     # the Cortex-M4/M7 DSP kernels over C models of SMLAD & co
    "v6m_emul": [*UBSAN, "-DMPYML_NO_SIMD", "-DMPYML_ARITH_V6M", "-DMPYML_EMULATE_V6M"],  # M0/M3 conv / FC kernels
}

N_RANDOM = {
    "CONV_2D": 300,
    "DEPTHWISE_CONV_2D": 300,
    "FULLY_CONNECTED": 300,
    "AVERAGE_POOL_2D": 300,
    "MAX_POOL_2D": 300,
    "ADD": 300,
    "SOFTMAX": 300,
}

# A test-only shim exporting the static inline fixed-point helpers over arrays.
SHIM_SRC = r"""
#include <stdint.h>
#include "fixedpoint.h"
#define ARR2(name, expr) void t_##name(const int32_t *a, const int32_t *b, int32_t *o, int n) \
    { int i; for (i = 0; i < n; i++) { o[i] = (expr); } }
ARR2(srdhm, mpyml_srdhm(a[i], b[i]))
ARR2(rdbpot, mpyml_rdbpot(a[i], (int)b[i]))
ARR2(div_trunc, mpyml_div_trunc(a[i], b[i]))
void t_mbqm(const int32_t *x, const int32_t *m, const int32_t *s, int32_t *o, int n)
    { int i; for (i = 0; i < n; i++) { o[i] = mpyml_mbqm(x[i], m[i], s[i]); } }
"""


# ------------------------------------------------------------------ ctypes mirror of the C API

class Shape4(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int32), ("h", ctypes.c_int32), ("w", ctypes.c_int32), ("c", ctypes.c_int32)]


class ConvParams(ctypes.Structure):
    _fields_ = [(f, ctypes.c_int32) for f in (
        "stride_w", "stride_h", "dil_w", "dil_h", "pad_w", "pad_h", "input_offset", "output_offset",
        "act_min", "act_max", "depth_multiplier")]


class FcParams(ctypes.Structure):
    _fields_ = [(f, ctypes.c_int32) for f in ("input_offset", "output_offset", "act_min", "act_max")]


class PoolParams(ctypes.Structure):
    _fields_ = [(f, ctypes.c_int32) for f in (
        "stride_w", "stride_h", "filter_w", "filter_h", "pad_w", "pad_h", "act_min", "act_max")]


class AddParams(ctypes.Structure):
    _fields_ = [(f, ctypes.c_int32) for f in (
        "input1_offset", "input2_offset", "output_offset", "left_shift", "input1_mult", "input1_shift",
        "input2_mult", "input2_shift", "output_mult", "output_shift", "act_min", "act_max")]


class SoftmaxParams(ctypes.Structure):
    _fields_ = [(f, ctypes.c_int32) for f in ("input_multiplier", "input_left_shift", "diff_min")]


def _ptr(a: np.ndarray | None) -> ctypes.c_void_p | None:
    return None if a is None else ctypes.c_void_p(a.ctypes.data)


def _shape4(shape: tuple[int, ...]) -> Shape4:
    s = (1,) * (4 - len(shape)) + tuple(int(d) for d in shape)
    return Shape4(*s)


def _i32(a: np.ndarray | list[int]) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.int32))


def _i8(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.int8))


def _check_ranges(mult: np.ndarray, shift: np.ndarray, lo: int, hi: int) -> None:
    """The value ranges mpyml_format.h promises the kernels (the loader enforces them)."""
    assert np.all((mult >= 0) & (mult <= 2**31 - 1)), mult
    assert np.all((shift >= lo) & (shift <= hi)), shift


# ------------------------------------------------------------------ one op through the C kernels

class Kernels:
    """Calls each kernel (reference and optimized) of one compiled library for a single-op model."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib

    def run(self, info: tb.OpInfo, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        """{kernel name: output} for every kernel implementing info.op."""
        return getattr(self, "_" + info.op.lower())(info, inputs)

    def _conv_like(self, info: tb.OpInfo, inputs: list[np.ndarray], depthwise: bool) -> dict[str, np.ndarray]:
        x_t, f_t, b_t = info.inputs[0], info.inputs[1], info.inputs[2] if len(info.inputs) > 2 else None
        y_t = info.outputs[0]
        assert x_t is not None and f_t is not None and f_t.data is not None
        o = info.options
        _, ih, iw, ic = x_t.shape
        fo, kh, kw, fc = f_t.shape
        oc = y_t.shape[3]
        sh, sw, dh, dw = o["strideH"], o["strideW"], o["dilationHFactor"], o["dilationWFactor"]
        dm = oc // ic if depthwise else 1
        if depthwise:
            assert o["depthMultiplier"] in (dm, 0) and ic * dm == oc
        mult, shift = quantize.per_channel_multipliers(x_t.scale, f_t.scales, y_t.scale)
        if mult.size == 1:
            mult, shift = np.repeat(mult, oc), np.repeat(shift, oc)
        _check_ranges(mult, shift, -31, 30)
        act_min, act_max = quantize.activation_range(o["fusedActivationFunction"], y_t.scale, y_t.zero_point)
        p = ConvParams(sw, sh, dw, dh, tb.conv_padding(o["padding"], iw, kw, sw, dw),
                       tb.conv_padding(o["padding"], ih, kh, sh, dh), -x_t.zero_point, y_t.zero_point,
                       act_min, act_max, dm)
        x, f = _i8(inputs[0]), _i8(f_t.data)
        bias = None if b_t is None or b_t.data is None else _i32(b_t.data)
        mult, shift = _i32(mult), _i32(shift)
        in_s, f_s, out_s = _shape4(x_t.shape), _shape4(f_t.shape), _shape4(y_t.shape)
        name = "mpyml_depthwise_conv2d" if depthwise else "mpyml_conv2d"
        res = {}
        for fn in (name + "_ref", name):
            y = np.full(y_t.shape, 0x55, dtype=np.int8)
            getattr(self.lib, fn)(ctypes.byref(p), ctypes.byref(in_s), _ptr(x), ctypes.byref(f_s), _ptr(f),
                                  _ptr(bias), _ptr(mult), _ptr(shift), ctypes.byref(out_s), _ptr(y))
            res[fn] = y
        return res

    def _conv_2d(self, info: tb.OpInfo, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        return self._conv_like(info, inputs, depthwise=False)

    def _depthwise_conv_2d(self, info: tb.OpInfo, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        return self._conv_like(info, inputs, depthwise=True)

    def _fully_connected(self, info: tb.OpInfo, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        x_t, f_t = info.inputs[0], info.inputs[1]
        b_t = info.inputs[2] if len(info.inputs) > 2 else None
        y_t = info.outputs[0]
        assert x_t is not None and f_t is not None and f_t.data is not None
        units, depth = f_t.shape
        per_channel = len(f_t.scales) > 1
        if per_channel:
            mult, shift = quantize.per_channel_multipliers(x_t.scale, f_t.scales, y_t.scale)
        else:
            m1, s1 = quantize.fc_per_tensor_multiplier(x_t.scale, f_t.scale, y_t.scale)
            mult, shift = np.array([m1]), np.array([s1])
        _check_ranges(mult, shift, -31, 30)
        act_min, act_max = quantize.activation_range(info.options["fusedActivationFunction"], y_t.scale,
                                                     y_t.zero_point)
        p = FcParams(-x_t.zero_point, y_t.zero_point, act_min, act_max)
        x, f = _i8(inputs[0]), _i8(f_t.data)
        batches = x.size // depth
        bias = None if b_t is None or b_t.data is None else _i32(b_t.data)
        mult, shift = _i32(mult), _i32(shift)
        res = {}
        for fn in ("mpyml_fully_connected_ref", "mpyml_fully_connected"):
            y = np.full(y_t.shape, 0x55, dtype=np.int8)
            getattr(self.lib, fn)(ctypes.byref(p), batches, depth, units, _ptr(x), _ptr(f), _ptr(bias),
                                  _ptr(mult), _ptr(shift), int(per_channel), _ptr(y))
            res[fn] = y
        return res

    def _pool(self, info: tb.OpInfo, inputs: list[np.ndarray], fn: str) -> dict[str, np.ndarray]:
        x_t, y_t, o = info.inputs[0], info.outputs[0], info.options
        assert x_t is not None
        _, ih, iw, _ = x_t.shape
        fh, fw, sh, sw = o["filterHeight"], o["filterWidth"], o["strideH"], o["strideW"]
        act_min, act_max = quantize.activation_range(o["fusedActivationFunction"], y_t.scale, y_t.zero_point)
        p = PoolParams(sw, sh, fw, fh, tb.conv_padding(o["padding"], iw, fw, sw),
                       tb.conv_padding(o["padding"], ih, fh, sh), act_min, act_max)
        x = _i8(inputs[0])
        y = np.full(y_t.shape, 0x55, dtype=np.int8)
        in_s, out_s = _shape4(x_t.shape), _shape4(y_t.shape)
        getattr(self.lib, fn)(ctypes.byref(p), ctypes.byref(in_s), _ptr(x), ctypes.byref(out_s), _ptr(y))
        return {fn: y}

    def _average_pool_2d(self, info: tb.OpInfo, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        return self._pool(info, inputs, "mpyml_avg_pool_ref")

    def _max_pool_2d(self, info: tb.OpInfo, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        return self._pool(info, inputs, "mpyml_max_pool_ref")

    def _add(self, info: tb.OpInfo, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        a_t, b_t, y_t = info.inputs[0], info.inputs[1], info.outputs[0]
        assert a_t is not None and b_t is not None
        q = quantize.add_params(a_t.scale, b_t.scale, y_t.scale)
        _check_ranges(np.array([q["input1_mult"], q["input2_mult"], q["output_mult"]]),
                      np.array([q["input1_shift"], q["input2_shift"], q["output_shift"]]), -31, 0)
        act_min, act_max = quantize.activation_range(info.options["fusedActivationFunction"], y_t.scale,
                                                     y_t.zero_point)
        p = AddParams(-a_t.zero_point, -b_t.zero_point, y_t.zero_point, q["left_shift"], q["input1_mult"],
                      q["input1_shift"], q["input2_mult"], q["input2_shift"], q["output_mult"], q["output_shift"],
                      act_min, act_max)
        it = iter(inputs)
        a = _i8(a_t.data if a_t.data is not None else next(it))
        b = _i8(b_t.data if b_t.data is not None else next(it))
        y = np.full(y_t.shape, 0x55, dtype=np.int8)
        s1, s2, so = _shape4(a_t.shape), _shape4(b_t.shape), _shape4(y_t.shape)
        self.lib.mpyml_add_ref(ctypes.byref(p), ctypes.byref(s1), _ptr(a), ctypes.byref(s2), _ptr(b),
                               ctypes.byref(so), _ptr(y))
        y_opt = np.full(y_t.shape, 0x55, dtype=np.int8)
        self.lib.mpyml_add(ctypes.byref(p), ctypes.byref(s1), _ptr(a), ctypes.byref(s2), _ptr(b),
                           ctypes.byref(so), _ptr(y_opt))
        return {"mpyml_add_ref": y, "mpyml_add": y_opt}

    def _softmax(self, info: tb.OpInfo, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        x_t, y_t = info.inputs[0], info.outputs[0]
        assert x_t is not None
        assert y_t.zero_point == -128 and y_t.scale == 1.0 / 256
        mult, lshift, diff_min = quantize.softmax_params(info.options["beta"], x_t.scale)
        assert 0 <= mult <= 2**31 - 1 and 0 <= lshift <= 31 and -(2**31) + 1 <= diff_min <= 0
        p = SoftmaxParams(mult, lshift, diff_min)
        x = _i8(inputs[0])
        depth = x_t.shape[-1]
        y = np.full(y_t.shape, 0x55, dtype=np.int8)
        self.lib.mpyml_softmax_ref(ctypes.byref(p), x.size // depth, depth, _ptr(x), _ptr(y))
        return {"mpyml_softmax_ref": y}


# ------------------------------------------------------------------ fixtures

def _compile(out: Path, flags: list[str], sources: list[Path]) -> None:
    cmd = [CC, *CFLAGS, *flags, "-I", str(OPS_DIR), "-o", str(out), *map(str, sources)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout}{r.stderr}"


@pytest.fixture(scope="session")
def libs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ctypes.CDLL]:
    """One shared library per build variant, all kernels plus the fixed-point shim."""
    d = tmp_path_factory.mktemp("ops_lib")
    shim = d / "shim.c"
    shim.write_text(SHIM_SRC)
    jobs = {name: (d / f"libops_{name}.so", flags) for name, flags in VARIANTS.items()}
    with ThreadPoolExecutor(len(jobs)) as ex:
        for f in [ex.submit(_compile, out, flags, [*OPS_SRC, shim]) for out, flags in jobs.values()]:
            f.result()
    return {name: ctypes.CDLL(str(out)) for name, (out, _) in jobs.items()}


def _inputs_for(info: tb.OpInfo, rng: np.random.Generator) -> list[np.ndarray]:
    """Random int8 data for the model inputs (non-constant operands), sometimes narrow-ranged so
    softmax / max pool see many near-equal values."""
    out = []
    for t in info.inputs:
        if t is None or t.data is not None:
            continue
        if rng.random() < 0.2:
            c = int(rng.integers(-128, 128))
            lo, hi = max(-128, c - 3), min(127, c + 3)
            out.append(rng.integers(lo, hi + 1, size=t.shape).astype(np.int8))
        else:
            out.append(rng.integers(-128, 128, size=t.shape).astype(np.int8))
    return out


def _check_case(model: bytes, libs: dict[str, ctypes.CDLL], rng: np.random.Generator, what: str) -> np.ndarray:
    info = tb.read_op(model)
    inputs = _inputs_for(info, rng)
    want = tb.run_tflm(model, inputs)[0]
    for variant, lib in libs.items():
        for fn, got in Kernels(lib).run(info, inputs).items():
            if not np.array_equal(got.reshape(want.shape), want):
                bad = np.flatnonzero(got.reshape(-1) != want.reshape(-1))
                pytest.fail(f"{fn} [{variant}] differs from tflite-micro in {bad.size}/{want.size} elements "
                            f"(first at {bad[0]}: got {got.reshape(-1)[bad[0]]}, want {want.reshape(-1)[bad[0]]}) "
                            f"for {what}")
    return want


# ------------------------------------------------------------------ bit-exactness

@pytest.mark.parametrize("op", list(N_RANDOM))
def test_random_ops_bit_exact(op: str, libs: dict[str, ctypes.CDLL]) -> None:
    """Hundreds of random single-op models per op: every kernel equals tflite-micro exactly."""
    rng = np.random.default_rng(20240611 + tb.OPS.index(op))
    n_const = 0
    for i in range(N_RANDOM[op]):
        model, kwargs = tb.random_case(op, rng)
        want = _check_case(model, libs, rng, f"{op} case {i} {kwargs}")
        n_const += int(np.all(want == want.reshape(-1)[0]))
    # the random scales must exercise the arithmetic, not just saturate
    assert n_const < N_RANDOM[op] * 0.35, f"{n_const} of {N_RANDOM[op]} outputs were constant"


SHARED_MODELS = ["mlperf_tiny/ad01_int8.tflite", "mlperf_tiny/kws_ref_model.tflite",
                 "mlperf_tiny/pretrainedResnet_quant.tflite", "mlperf_tiny/str_ww_ref_model.tflite",
                 "mlperf_tiny/vww_96_int8.tflite", "tflm/person_detect.tflite"]


@pytest.mark.parametrize("name", SHARED_MODELS)
def test_shared_model_ops_bit_exact(name: str, shared_dir: Path, libs: dict[str, ctypes.CDLL]) -> None:
    """Every op of the real models (their weights, scales, options), cut out as a one-op model."""
    path = shared_dir / "models" / name
    if not path.exists():
        skip_or_fail(f"{path} not present")
    model = path.read_bytes()
    rng = np.random.default_rng(7)
    names = tb.op_names(model)
    for k, op in enumerate(names):
        if op == "RESHAPE":
            continue
        sub = tb.extract_op_model(model, k)
        for rep in range(2):
            _check_case(sub, libs, rng, f"{name} op {k} ({op}) input {rep}")


def test_dilation_and_empty_windows(libs: dict[str, ctypes.CDLL]) -> None:
    """Corner cases: dilated SAME windows reaching past the input on both sides, 1x1 with stride,
    4x-blocking tails (1..9 output channels), batches, depth multipliers."""
    rng = np.random.default_rng(3)
    for oc in range(1, 10):
        for kernel, dil, stride in [((3, 3), (4, 4), (1, 1)), ((1, 1), (1, 1), (3, 2)), ((5, 2), (2, 5), (2, 1))]:
            m = tb.conv2d_model(rng, (2, 5, 6, 3), oc, kernel, stride, dil, "SAME", "RELU6")
            _check_case(m, libs, rng, f"conv oc={oc} k={kernel} d={dil} s={stride}")
            m = tb.depthwise_model(rng, (2, 5, 6, 2), oc, kernel, stride, dil, "SAME", "RELU")
            _check_case(m, libs, rng, f"depthwise dm={oc} k={kernel} d={dil} s={stride}")
        m = tb.fully_connected_model(rng, (3, 11), oc, "NONE", per_channel=bool(oc % 2))
        _check_case(m, libs, rng, f"fc units={oc}")


def test_simd_blocking_tails(libs: dict[str, ctypes.CDLL]) -> None:
    """The SIMD paths' blocking and tails: SSE2 16/8-element runs and 8-channel depthwise, DSP 4-element
    words and 4-channel depthwise, each followed by its scalar remainder (run lengths and channel counts
    1..40), in every build variant (the SSE2 code in O2 / ubsan, the DSP code in dsp_emul)."""
    rng = np.random.default_rng(17)
    assert {"O2", "portable", "dsp_emul"} <= set(libs)
    for c in range(1, 41):
        m = tb.conv2d_model(rng, (1, 3, 4, c), 1 + c % 9, (1, 1), (1, 1), (1, 1), "VALID", "NONE")
        _check_case(m, libs, rng, f"conv 1x1 in_c={c}")
        m = tb.fully_connected_model(rng, (1, c), 1 + c % 7, "NONE", per_channel=bool(c % 2))
        _check_case(m, libs, rng, f"fc depth={c}")
        if c <= 24:
            m = tb.depthwise_model(rng, (1, 4, 5, c), 1, (3, 3), (1, 1), (1, 1), "SAME", "NONE")
            _check_case(m, libs, rng, f"depthwise 3x3 c={c}")
            m = tb.conv2d_model(rng, (1, 4, 5, c), 5, (3, 2), (1, 1), (1, 1), "SAME", "RELU")
            _check_case(m, libs, rng, f"conv 3x2 in_c={c}")


# ------------------------------------------------------------------ memory safety (AddressSanitizer)

def asan_child(lib_path: str, n_per_op: int, models: list[str]) -> None:
    """Run in a subprocess with libasan preloaded: every kernel on random ops (and on the ops of the
    given real models), each operand in its own exact-size heap block, so any read or write outside
    an operand hits an ASan redzone. Also checks that all kernels of an op agree."""
    lib = ctypes.CDLL(lib_path)
    k = Kernels(lib)
    rng = np.random.default_rng(99)
    cases: list[tuple[bytes, str]] = []
    for op in N_RANDOM:
        for i in range(n_per_op):
            model, kwargs = tb.random_case(op, rng)
            cases.append((model, f"{op} case {i} {kwargs}"))
    for path in models:
        model = Path(path).read_bytes()
        for j, op in enumerate(tb.op_names(model)):
            if op != "RESHAPE":
                cases.append((tb.extract_op_model(model, j), f"{path} op {j} ({op})"))
    for model, what in cases:
        info = tb.read_op(model)
        inputs = [np.array(x, copy=True) for x in _inputs_for(info, rng)]
        outs = list(k.run(info, inputs).items())
        for fn, y in outs[1:]:
            assert np.array_equal(y, outs[0][1]), f"{fn} != {outs[0][0]} for {what}"
    print(f"ASAN-CHILD-OK {len(cases)}")


def test_kernels_asan(tmp_path: Path) -> None:
    """No kernel reads or writes outside its operands (AddressSanitizer + UBSan, in a subprocess)."""
    r = subprocess.run([CC, "-print-file-name=libasan.so"], capture_output=True, text=True)
    libasan = r.stdout.strip()
    if r.returncode != 0 or not os.path.isabs(libasan) or not os.path.exists(libasan):
        skip_or_fail("libasan not available for this compiler")
    lib = tmp_path / "libops_asan.so"
    _compile(lib, ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                   "-fno-sanitize-recover=all"], OPS_SRC)
    models = [str(paths.SHARED / "models" / m) for m in SHARED_MODELS if (paths.SHARED / "models" / m).exists()]
    code = ("import sys; sys.path[:0] = {!r}; import test_kernels; test_kernels.asan_child({!r}, 60, {!r})"
            .format([str(Path(__file__).parent), str(ROOT / "host")], str(lib), models))
    env = dict(os.environ, LD_PRELOAD=libasan, ASAN_OPTIONS="detect_leaks=0", PYTHONMALLOC="malloc")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    report = f"rc={r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-6000:]}"
    assert r.returncode == 0 and "ASAN-CHILD-OK" in r.stdout, report


# ------------------------------------------------------------------ the model builder itself

@pytest.mark.parametrize("op", tb.OPS)
def test_builder_models_run_in_tflm(op: str) -> None:
    """Every random model the builder makes is accepted by tflite-micro and produces the declared
    output shape; RESHAPE copies; read_op / extract_op_model round-trip the operator."""
    rng = np.random.default_rng(5 + tb.OPS.index(op))
    for _ in range(25):
        model, kwargs = tb.random_case(op, rng)
        info = tb.read_op(model)
        assert info.op == op
        inputs = _inputs_for(info, rng)
        out = tb.run_tflm(model, inputs)[0]
        assert out.dtype == np.int8 and tuple(out.shape) == info.outputs[0].shape, kwargs
        if op == "RESHAPE":
            assert np.array_equal(out.reshape(-1), inputs[0].reshape(-1))
        again = tb.read_op(tb.extract_op_model(model, 0))
        assert again.op == op and again.options.keys() == info.options.keys()
        for key, value in info.options.items():
            assert np.array_equal(np.asarray(again.options[key]), np.asarray(value)), key
        for t1, t2 in zip(info.inputs, again.inputs, strict=True):
            assert (t1 is None) == (t2 is None)
            if t1 is not None and t2 is not None:
                assert (t1.shape, t1.scales, t1.zero_points, t1.qdim) == (t2.shape, t2.scales, t2.zero_points, t2.qdim)
                assert (t1.data is None and t2.data is None) or np.array_equal(t1.data, t2.data)


def test_output_size_and_padding() -> None:
    """TFLite's SAME / VALID output sizes and leading padding, against their definitions."""
    for size in range(1, 14):
        for k in range(1, 6):
            for stride in range(1, 4):
                for dil in range(1, 4):
                    eff = (k - 1) * dil + 1
                    same = tb.conv_output_size("SAME", size, k, stride, dil)
                    assert same == -(-size // stride)
                    total = max((same - 1) * stride + eff - size, 0)
                    assert tb.conv_padding("SAME", size, k, stride, dil) == total // 2
                    if eff <= size:
                        assert tb.conv_output_size("VALID", size, k, stride, dil) == -(-(size - eff + 1) // stride)
                        assert tb.conv_padding("VALID", size, k, stride, dil) == 0


# ------------------------------------------------------------------ fixed-point primitives

def _py_srdhm(a: int, b: int) -> int:
    if a == b == -(2**31):
        return 2**31 - 1
    ab = a * b
    n = ab + (2**30 if ab >= 0 else 1 - 2**30)
    q = abs(n) // 2**31
    return q if n >= 0 else -q          # C++ integer division truncates toward zero


def _py_rdbpot(x: int, e: int) -> int:
    mask = (1 << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > thr else 0)


def _py_mbqm(x: int, m: int, s: int) -> int:
    left, right = max(s, 0), max(-s, 0)
    xs = ((x << left) + 2**31) % 2**32 - 2**31        # int32 wraparound of x * (1 << left)
    return _py_rdbpot(_py_srdhm(xs, m), right)


def _edge_int32(rng: np.random.Generator, n: int) -> np.ndarray:
    edges = np.array([-(2**31), -(2**31) + 1, -(2**30), -(2**16), -65535, -1, 0, 1, 65535, 2**16, 2**30,
                      2**31 - 2, 2**31 - 1], dtype=np.int64)
    v = np.concatenate([rng.integers(-(2**31), 2**31, size=n), rng.choice(edges, size=n),
                        rng.integers(-70000, 70000, size=n)])
    return rng.permutation(v).astype(np.int32)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_fixedpoint_primitives(variant: str, libs: dict[str, ctypes.CDLL]) -> None:
    """SaturatingRoundingDoublingHighMul, RoundingDivideByPOT, MultiplyByQuantizedMultiplier and the
    M0 division against a direct Python transcription of gemmlowp / TFLite, edge values included."""
    lib = libs[variant]
    rng = np.random.default_rng(11)
    a, b = _edge_int32(rng, 3000), _edge_int32(rng, 3000)
    n = a.size
    out = np.zeros(n, np.int32)
    lib.t_srdhm(_ptr(a), _ptr(b), _ptr(out), n)
    assert out.tolist() == [_py_srdhm(int(x), int(y)) for x, y in zip(a, b, strict=True)]
    e = rng.integers(0, 32, size=n).astype(np.int32)
    lib.t_rdbpot(_ptr(a), _ptr(e), _ptr(out), n)
    assert out.tolist() == [_py_rdbpot(int(x), int(y)) for x, y in zip(a, e, strict=True)]
    m = rng.integers(0, 2**31, size=n).astype(np.int32)
    s = rng.integers(-31, 31, size=n).astype(np.int32)
    lib.t_mbqm(_ptr(a), _ptr(m), _ptr(s), _ptr(out), n)
    assert out.tolist() == [_py_mbqm(int(x), int(y), int(z)) for x, y, z in zip(a, m, s, strict=True)]
    num = rng.integers(-(2**31) + 1, 2**31, size=n).astype(np.int32)
    den = np.where(rng.random(n) < 0.5, rng.integers(1, 70000, size=n), rng.integers(1, 2**31, size=n))
    den = den.astype(np.int32)
    lib.t_div_trunc(_ptr(num), _ptr(den), _ptr(out), n)
    assert out.tolist() == [int(abs(int(x)) // int(y)) * (1 if x >= 0 else -1) for x, y in zip(num, den, strict=True)]


# ------------------------------------------------------------------ quantize.py

def test_quantize_multiplier_edges() -> None:
    assert quantize.quantize_multiplier(0.0) == (0, 0)
    assert quantize.quantize_multiplier(0.5) == (2**30, 0)
    assert quantize.quantize_multiplier(1.0) == (2**30, 1)
    assert quantize.quantize_multiplier(0.75) == (3 * 2**29, 0)
    assert quantize.quantize_multiplier(-0.75) == (-3 * 2**29, 0)
    # q * 2^31 rounds up to 2^31: halved, shift + 1
    assert quantize.quantize_multiplier((2**31 - 0.5) / 2**31) == (2**30, 1)
    # std::round: ties away from zero
    assert quantize.quantize_multiplier((2**30 + 0.5) / 2**31) == (2**30 + 1, 0)
    # below 2^-32 the shift would be < -31: flushed to zero
    assert quantize.quantize_multiplier(2.0**-33) == (0, 0)
    assert quantize.quantize_multiplier(2.0**-32) == (2**30, -31)
    assert quantize.round_half_away(2.5) == 3 and quantize.round_half_away(-2.5) == -3
    assert quantize.round_half_away(2**31 - 0.5 - 2**-22) == 2**31 - 1    # floor(x + 0.5) gets this wrong


def test_quantize_params_edges() -> None:
    # per-channel uses the double product; per-tensor FC the float32 product (they differ here)
    s_in, s_f, s_out = 0.0123456789, 0.00098765432, 0.0456789
    m_pc, _ = quantize.per_channel_multipliers(s_in, [s_f], s_out)
    m_fc, _ = quantize.fc_per_tensor_multiplier(s_in, s_f, s_out)
    assert int(m_pc[0]) != m_fc
    assert quantize.activation_range("NONE", 0.1, 5) == (-128, 127)
    assert quantize.activation_range("RELU", 0.1, 5) == (5, 127)
    assert quantize.activation_range("RELU6", 0.1, -128) == (-128, -68)
    assert quantize.activation_range("RELU_N1_TO_1", 0.25, 0) == (-4, 4)
    assert quantize.activation_range("RELU6", 0.5, 120) == (120, 127)
    with pytest.raises(ValueError):
        quantize.activation_range("TANH", 0.1, 0)
    p = quantize.add_params(0.5, 0.25, 0.5)
    assert p["left_shift"] == 20 and p["input1_mult"] == 2**30 and p["input1_shift"] == 0
    assert p["input2_mult"] == 2**30 and p["input2_shift"] == -1
    # beta * scale >= 32 saturates the multiplier at 2^31 - 1 with left shift 31, diff_min 0
    assert quantize.softmax_params(1.0, 64.0) == (2**31 - 1, 31, 0)
    mult, ls, dmin = quantize.softmax_params(1.0, 1.0 / 16)
    assert (mult, ls) == (2**30, 23) and dmin == -(31 * 2**26 // 2**23)
    with pytest.raises(ValueError):
        quantize.softmax_params(1.0, 1e-9)


# ------------------------------------------------------------------ portability

ARM_CPUS = {
    "cortex-m0": ["-mcpu=cortex-m0"],
    "cortex-m0plus": ["-mcpu=cortex-m0plus"],
    "cortex-m3": ["-mcpu=cortex-m3"],
    "cortex-m4": ["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"],
    "cortex-m7": ["-mcpu=cortex-m7"],
}
# libgcc helpers the natmod cannot link; 32-bit division and __aeabi_lmul are provided by
# native_modules/natmod/armv6m_runtime.c (and by libgcc bare-metal)
FORBIDDEN = {"__aeabi_ldivmod", "__aeabi_uldivmod", "__aeabi_llsl", "__aeabi_llsr",
             "__aeabi_lasr", "__clzsi2", "__muldi3", "__divdi3"}


@pytest.mark.parametrize("cpu", list(ARM_CPUS))
@pytest.mark.parametrize("opt", ["-O2", "-Os"])
def test_arm_cross_compile(cpu: str, opt: str, tmp_path: Path) -> None:
    """Warning-free for Cortex-M; no undefined symbols at all (so no libgcc helper such as
    __aeabi_lmul, no libm, no float emulation) and no writable data (.data / .bss) in any object."""
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        skip_or_fail("arm-none-eabi-gcc not installed (make setup installs it)")
    nm = shutil.which("arm-none-eabi-nm") or "arm-none-eabi-nm"
    size = shutil.which("arm-none-eabi-size") or "arm-none-eabi-size"
    for src in OPS_SRC:
        obj = tmp_path / (src.stem + ".o")
        cmd = [gcc, "-std=c99", opt, "-mthumb", *ARM_CPUS[cpu], "-Wall", "-Wextra", "-Werror", "-c", str(src),
               "-o", str(obj)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
        undef = subprocess.run([nm, "-u", str(obj)], capture_output=True, text=True, check=True).stdout.split()
        undef = [s for s in undef if s != "U"]
        assert not set(undef) & FORBIDDEN, f"{src.name} [{cpu} {opt}] calls {set(undef) & FORBIDDEN}"
        undef = [s for s in undef if s not in ENGINE_PROVIDED]
        assert not undef, f"{src.name} [{cpu} {opt}] references external symbols {undef}"
        out = subprocess.run([size, "-A", str(obj)], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if parts and parts[0].startswith((".data", ".bss")) and int(parts[1]) != 0:
                pytest.fail(f"{src.name} [{cpu} {opt}] has writable data: {line}")


def _engine_symbols() -> set[str]:
    """Functions the engine's own sources define (op_table.c dispatches to the kernels of every family), plus
    what every build provides: mem* (natmod glue / libc) and the armv6m runtime's __aeabi_lmul."""
    import re
    names = {"memcpy", "memset", "memmove", "__aeabi_lmul", "__aeabi_idiv", "__aeabi_uidiv", "__aeabi_idivmod",
             "__aeabi_uidivmod", "__aeabi_memcpy", "__aeabi_memset", "__aeabi_memclr",
             "__aeabi_memcpy4", "__aeabi_memclr4", "__aeabi_memset4", "__aeabi_memmove"}
    for src in OPS_SRC:
        names |= set(re.findall(r"^(?:int|void|static inline \w+)\s+\**(mpyml_\w+)\s*\(", src.read_text(), re.M))
    return names


ENGINE_PROVIDED = _engine_symbols()


def test_host_objects_self_contained(tmp_path: Path) -> None:
    """On the host too, each kernel object needs nothing external and has no writable data."""
    for src in OPS_SRC:
        obj = tmp_path / (src.stem + ".o")
        cmd = [CC, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c", str(src), "-o", str(obj)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
        undef = subprocess.run(["nm", "-u", str(obj)], capture_output=True, text=True, check=True).stdout.split()
        undef = [s for s in undef if s != "U" and s not in ENGINE_PROVIDED]
        assert undef == [], f"{src.name}: {undef}"
        syms = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout
        writable = [ln for ln in syms.splitlines() if ln.split()[-2:-1] and ln.split()[-2] in "dDbB"]
        assert not writable, f"{src.name} has writable data: {writable}"


def test_sources_integer_only() -> None:
    """No float / double / libm anywhere in the kernels, no MicroPython headers, no allocation."""
    import re

    banned = re.compile(r"\b(float|double|malloc|calloc|realloc|free|printf)\b|#include\s*[<\"](math|py/)")
    for src in [*OPS_SRC, OPS_DIR / "fixedpoint.h"]:
        text = re.sub(r"/\*.*?\*/", "", src.read_text(), flags=re.S)
        m = banned.search(text)
        assert m is None, f"{src.name}: {m.group(0) if m else ''}"

