"""tflite-micro reference runner: the yardstick mpyml is compared against (outputs, speed, arena).

Wraps the `tflite_micro` Python package (TFLM's reference kernels compiled into a CPython extension)::

    runner = TflmRunner(Path("model.tflite").read_bytes())
    outputs = runner.run([x])              # raw int8 outputs, bit-exact reference for mpyml
    runner.arena_head_bytes()              # TFLM's non-persistent (planned activation) arena
    runner.time_invoke_us(100)             # median microseconds per invoke()

Arena numbers come from TFLM's RecordingMicroAllocator: `print_allocations()` prints them from C++
straight to the process's file descriptors (stderr in current builds), bypassing `sys.stdout`, so they are
captured at the file-descriptor level and parsed. "head" is the non-persistent part (activations laid out
by the memory planner): the number comparable to mpyml's planned arena. "tail" is the persistent part
(TfLiteEvalTensor structs, quantization data, kernel scratch/op data, node structs): interpreter overhead
mpyml has no equivalent of.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ArenaUsage", "TensorDetails", "TflmRunner", "capture_fd_output", "min_arena_bytes"]

# Smallest arena tried when none is given; grown (doubled) until TFLM can allocate the model.
_MIN_DEFAULT_ARENA = 64 * 1024
_MAX_ARENA = 256 * 1024 * 1024

_TOTALS_RE = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
_RECORD_RE = re.compile(r"'([^']+)' used (\d+) bytes")


@dataclass(frozen=True)
class TensorDetails:
    """Shape, element type and quantization of one model input or output."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    scale: float
    zero_point: int
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Real values -> this tensor's integer type (round to nearest, saturate)."""
        info = np.iinfo(self.dtype)
        q = np.round(np.asarray(x, dtype=np.float64) / self.scale) + self.zero_point
        return np.clip(q, info.min, info.max).astype(self.dtype).reshape(self.shape)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """This tensor's integers -> real values (float32)."""
        return ((np.asarray(q, dtype=np.float32) - self.zero_point) * self.scale).astype(np.float32)


@dataclass(frozen=True)
class ArenaUsage:
    """What TFLM's RecordingMicroAllocator reported, in bytes."""

    head: int                     # non-persistent arena: the planned activation buffers
    tail: int | None = None       # persistent arena: interpreter structs, quantization data, op data
    total: int | None = None      # head + tail (the smallest arena that works, up to alignment)
    records: dict[str, int] = field(default_factory=dict)  # per-category persistent usage
    text: str = ""                # the raw report


def _flush_c_stdio() -> None:
    """Flush the C library's stdio buffers (output printed from C/C++ may sit in them)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def capture_fd_output(fds: Sequence[int] = (1, 2)) -> Iterator[list[str]]:
    """Capture everything written to file descriptors `fds` (default stdout and stderr) inside the block.

    Works for output from C/C++ extensions, which `contextlib.redirect_stdout` cannot see. The captured
    text is appended to the yielded list when the block exits.
    """
    captured: list[str] = []
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    _flush_c_stdio()
    with tempfile.TemporaryFile() as tmp:
        saved = [os.dup(fd) for fd in fds]
        try:
            for fd in fds:
                os.dup2(tmp.fileno(), fd)
            try:
                yield captured
            finally:
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):
                        stream.flush()
                _flush_c_stdio()
        finally:
            for fd, s in zip(fds, saved, strict=True):
                os.dup2(s, fd)
                os.close(s)
        tmp.seek(0)
        captured.append(tmp.read().decode("utf-8", errors="replace"))


def parse_allocations(text: str) -> ArenaUsage:
    """Parse the text of TFLM's `PrintAllocations()` report."""
    totals = {k: int(v) for k, v in _TOTALS_RE.findall(text)}
    if "head" not in totals:
        raise RuntimeError(f"no 'Arena allocation head' line in TFLM's allocation report:\n{text}")
    records = {k: int(v) for k, v in _RECORD_RE.findall(text)}
    return ArenaUsage(head=totals["head"], tail=totals.get("tail"), total=totals.get("total"),
                      records=records, text=text)


def _io_counts(tflite: bytes) -> tuple[int, int]:
    """Number of inputs and outputs of the model's main subgraph (read from the flatbuffer)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb

    model = schema_fb.Model.GetRootAsModel(tflite, 0)
    if model.SubgraphsLength() < 1:
        raise ValueError("model has no subgraph")
    sg = model.Subgraphs(0)
    return int(sg.InputsLength()), int(sg.OutputsLength())


def _details(d: dict[str, Any]) -> TensorDetails:
    q = d.get("quantization_parameters") or {}
    scales = tuple(float(s) for s in np.asarray(q.get("scales", []), dtype=np.float64).ravel())
    zps = tuple(int(z) for z in np.asarray(q.get("zero_points", []), dtype=np.int64).ravel())
    return TensorDetails(
        shape=tuple(int(s) for s in np.asarray(d["shape"]).ravel()),
        dtype=np.dtype(d["dtype"]),
        scale=scales[0] if scales else 0.0,
        zero_point=zps[0] if zps else 0,
        scales=scales,
        zero_points=zps,
    )


def _new_interpreter(tflite: bytes, arena_size: int) -> Any:
    """A TFLM interpreter with tensors allocated, or RuntimeError carrying TFLM's own messages."""
    from tflite_micro.python.tflite_micro import runtime

    with capture_fd_output() as out:
        try:
            interp = runtime.Interpreter.from_bytes(tflite, arena_size=arena_size)
        except RuntimeError as e:
            err: RuntimeError | None = e
        else:
            err = None
    if err is not None:
        msg = out[0].strip() if out else ""
        raise RuntimeError(f"{err} (arena_size={arena_size})" + (f":\n{msg}" if msg else "")) from err
    return interp


def min_arena_bytes(tflite: bytes, *, upper: int | None = None) -> int:
    """The smallest `arena_size` TFLM accepts for this model (binary search; head + tail + alignment)."""
    hi = upper if upper is not None else TflmRunner(tflite).arena_size
    usage = TflmRunner(tflite, hi).arena_usage()
    lo = (usage.total or usage.head) - 1  # never enough: the report is a lower bound
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            _new_interpreter(tflite, mid)
        except RuntimeError:
            lo = mid
        else:
            hi = mid
    return hi


class TflmRunner:
    """One tflite-micro interpreter for one .tflite model (int8 in, int8 out)."""

    oracle = "tflite-micro"

    def __init__(self, tflite: bytes, arena_size: int | None = None) -> None:
        self.tflite = bytes(tflite)
        self.n_inputs, self.n_outputs = _io_counts(self.tflite)
        if arena_size is not None:
            self._interp = _new_interpreter(self.tflite, arena_size)
        else:
            # Generous first guess (10x the model, TFLM's own heuristic), doubled until it fits.
            arena_size = max(_MIN_DEFAULT_ARENA, 10 * len(self.tflite))
            while True:
                try:
                    self._interp = _new_interpreter(self.tflite, arena_size)
                    break
                except RuntimeError:
                    if arena_size >= _MAX_ARENA:
                        raise
                    arena_size *= 2
        self.arena_size: int = arena_size
        self._inputs = [_details(self._interp.get_input_details(i)) for i in range(self.n_inputs)]
        self._outputs = [_details(self._interp.get_output_details(i)) for i in range(self.n_outputs)]
        self._usage: ArenaUsage | None = None
        self._inputs_set = False

    # ------------------------------------------------------------------ metadata
    def input_details(self) -> list[TensorDetails]:
        return list(self._inputs)

    def output_details(self) -> list[TensorDetails]:
        return list(self._outputs)

    # ------------------------------------------------------------------ running
    def _set_inputs(self, inputs: Sequence[np.ndarray]) -> None:
        if len(inputs) != self.n_inputs:
            raise ValueError(f"model has {self.n_inputs} input(s), got {len(inputs)}")
        for i, (x, det) in enumerate(zip(inputs, self._inputs, strict=True)):
            a = np.asarray(x)
            if a.dtype != det.dtype:
                raise TypeError(f"input {i}: expected {det.dtype} data, got {a.dtype}")
            if a.size != int(np.prod(det.shape)):
                raise ValueError(f"input {i}: expected shape {det.shape}, got {a.shape}")
            self._interp.set_input(np.ascontiguousarray(a.reshape(det.shape)), i)
        self._inputs_set = True

    def _zero_inputs(self) -> list[np.ndarray]:
        """Inputs holding each tensor's zero point (real value 0)."""
        return [np.full(d.shape, d.zero_point, dtype=d.dtype) for d in self._inputs]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One inference; returns the raw (quantized) outputs as fresh arrays of the output shapes."""
        self._set_inputs(inputs)
        self._interp.invoke()
        return [np.array(self._interp.get_output(i), copy=True) for i in range(self.n_outputs)]

    def time_invoke_us(self, repeat: int, inputs: Sequence[np.ndarray] | None = None) -> float:
        """Median microseconds of one `invoke()` over `repeat` invokes (after one untimed warm-up).

        Inputs are set once, before timing: the given ones, else the last ones run, else zero points.
        """
        if repeat < 1:
            raise ValueError("repeat must be >= 1")
        if inputs is not None:
            self._set_inputs(inputs)
        elif not self._inputs_set:
            self._set_inputs(self._zero_inputs())
        invoke = self._interp.invoke
        clock = time.perf_counter_ns
        invoke()
        times = []
        for _ in range(repeat):
            t0 = clock()
            invoke()
            times.append(clock() - t0)
        return float(np.median(times)) / 1000.0

    # ------------------------------------------------------------------ arena
    def arena_usage(self) -> ArenaUsage:
        """TFLM's RecordingMicroAllocator report (head, tail, total and per-category records)."""
        if self._usage is None:
            with capture_fd_output() as out:
                self._interp.print_allocations()
            self._usage = parse_allocations(out[0])
        return self._usage

    def arena_head_bytes(self) -> int:
        """TFLM's non-persistent arena ("head"): the activation memory its planner laid out."""
        return self.arena_usage().head

    def arena_tail_bytes(self) -> int | None:
        """TFLM's persistent arena ("tail"), if reported."""
        return self.arena_usage().tail

    def arena_total_bytes(self) -> int | None:
        """head + tail as reported (None if the report lacks it)."""
        return self.arena_usage().total


class TfliteRefRunner:
    """TensorFlow Lite's reference kernels (tf.lite.Interpreter, BUILTIN_REF) behind TflmRunner's run / details
    interface: the oracle for models with an op tflite-micro has no int8 kernel for (GELU, EXP, LOG, NEG, ...;
    mpyml's tables for them come from the same kernels). Needs TensorFlow. No arena figures (None)."""

    oracle = "TensorFlow Lite reference kernels"

    def __init__(self, tflite: bytes) -> None:
        import os
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf
        self._it = tf.lite.Interpreter(model_content=bytes(tflite),
                                       experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
        self._it.allocate_tensors()
        self._in = self._it.get_input_details()
        self._out = self._it.get_output_details()

    def input_details(self) -> list[TensorDetails]:
        return [_details(d) for d in self._in]

    def output_details(self) -> list[TensorDetails]:
        return [_details(d) for d in self._out]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        for d, x in zip(self._in, inputs, strict=True):
            self._it.set_tensor(d["index"], np.ascontiguousarray(np.asarray(x).reshape(d["shape"])))
        self._it.invoke()
        return [np.array(self._it.get_tensor(d["index"]), copy=True) for d in self._out]

    def arena_head_bytes(self) -> None:
        return None


def reference_runner(tflite: bytes) -> TflmRunner | TfliteRefRunner:
    """tflite-micro for the model, or, where tflite-micro lacks one of its ops' kernels (and TensorFlow is
    installed), TensorFlow Lite's reference kernels; `.oracle` names which."""
    try:
        return TflmRunner(tflite)
    except RuntimeError as e:
        if "Didn't find op" not in str(e) and "not supported" not in str(e) and "failed to prepare" not in str(e):
            raise
        try:
            return TfliteRefRunner(tflite)
        except ImportError:
            raise e from None
