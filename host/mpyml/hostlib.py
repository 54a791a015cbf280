"""ctypes binding of the engine core built as a host shared library (build/host/libmpyml.so, `make hostlib`).

The same C core as the MicroPython native module, callable from CPython: fast per-op and loader tests
without starting MicroPython. The model buffer and the arena are private numpy arrays (16-byte aligned,
kept alive by the HostModel), as the engine uses the model in place.

    m = HostModel(mpk)                  # mpyml_prepare; PrepareError (a ValueError) if the file is invalid
    outs = m.invoke([x])                # int8 arrays in (tensor order), int8 arrays out
    st, index, detail, line = prepare_status(mpk)
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import paths
from .spec import STATUS

STATUS_NAMES = tuple(("MPYML_OK" if n == "OK" else f"MPYML_E_{n}") for n, _ in STATUS)
(OK, E_TRUNCATED, E_MAGIC, E_VERSION, E_SIZE, E_CRC, E_HEADER, E_ALIGN, E_TENSOR, E_OPCODE, E_OP, E_IO,
 E_ARENA, E_CTX, E_INDEX) = range(len(STATUS_NAMES))

_HEADER = struct.Struct("<IHHIIIHHHHIIIIIIIII")
_TENSOR = struct.Struct("<BBBB4HIIiII")
_ALIGN = 16


class _Err(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int32), ("index", ctypes.c_int32), ("detail", ctypes.c_int32),
                ("line", ctypes.c_int32)]


class PrepareError(ValueError):
    """mpyml_prepare rejected the model; the attributes are the engine's mpyml_err_t."""

    def __init__(self, status: int, index: int, detail: int, line: int, text: str) -> None:
        self.status, self.index, self.detail, self.line = status, index, detail, line
        self.status_name = STATUS_NAMES[status] if 0 <= status < len(STATUS_NAMES) else f"status {status}"
        super().__init__(f"mpyml_prepare: {self.status_name} ({text}), index {index}, detail {detail}, "
                         f"engine line {line}")


class _Lib:
    """The loaded shared library with argument types declared once."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: build it with `make hostlib`")
        lib = ctypes.CDLL(str(path))
        vp, sz = ctypes.c_void_p, ctypes.c_size_t
        lib.mpyml_ctx_size.argtypes = [vp, sz]
        lib.mpyml_ctx_size.restype = sz
        lib.mpyml_prepare.argtypes = [vp, sz, vp, sz, ctypes.POINTER(_Err)]
        lib.mpyml_prepare.restype = ctypes.c_int
        lib.mpyml_invoke.argtypes = [vp, vp, sz, vp, sz]
        lib.mpyml_invoke.restype = ctypes.c_int
        lib.mpyml_status_str.argtypes = [ctypes.c_int]
        lib.mpyml_status_str.restype = ctypes.c_char_p
        lib.mpyml_op_name.argtypes = [ctypes.c_int]
        lib.mpyml_op_name.restype = ctypes.c_char_p
        lib.mpyml_crc32.argtypes = [ctypes.c_uint32, vp, sz]
        lib.mpyml_crc32.restype = ctypes.c_uint32
        self.lib = lib
        self.path = path
        self.prepare = lib.mpyml_prepare
        self.invoke = lib.mpyml_invoke


_LIB: _Lib | None = None


def load_library(path: Path | str | None = None) -> _Lib:
    """The engine library (cached); path defaults to mpyml.paths.HOSTLIB."""
    global _LIB
    if path is not None:
        return _Lib(Path(path))
    if _LIB is None:
        _LIB = _Lib(paths.HOSTLIB)
    return _LIB


def status_str(status: int) -> str:
    """The engine's English text for a status code."""
    return load_library().lib.mpyml_status_str(status).decode()


def op_name(opcode: int) -> str:
    return load_library().lib.mpyml_op_name(opcode).decode()


def crc32(data: bytes, crc: int = 0) -> int:
    """The engine's CRC-32 (equals zlib.crc32)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    return int(load_library().lib.mpyml_crc32(crc, buf.ctypes.data, buf.size))


def _aligned(nbytes: int, misalign: int = 0) -> np.ndarray:
    """A new uint8 array of nbytes at address % 16 == misalign (a view keeps its base alive)."""
    raw = np.zeros(nbytes + _ALIGN + misalign, dtype=np.uint8)
    start = (-raw.ctypes.data) % _ALIGN + misalign
    return raw[start:start + nbytes]


def _aligned_copy(data: bytes | bytearray | memoryview, misalign: int = 0) -> np.ndarray:
    src = np.frombuffer(data, dtype=np.uint8)
    buf = _aligned(src.size, misalign)
    buf[:] = src
    return buf


def ctx_size(mpk: bytes | bytearray | memoryview) -> int:
    """mpyml_ctx_size: bytes of engine context (with its copy of the validated records) the model needs."""
    buf = _aligned_copy(mpk)
    return int(load_library().lib.mpyml_ctx_size(buf.ctypes.data, buf.size))


def prepare_status(mpk: bytes | bytearray | memoryview, misalign: int = 0) -> tuple[int, int, int, int]:
    """(status, index, detail, line) of mpyml_prepare on a private copy of mpk (status 0 = accepted).

    misalign places the copy that many bytes past a 16-byte boundary (1..3 give MPYML_E_ALIGN).
    """
    lib = load_library()
    buf = _aligned_copy(mpk, misalign)
    ctx, err = _aligned(int(lib.lib.mpyml_ctx_size(buf.ctypes.data, buf.size))), _Err()
    lib.prepare(ctx.ctypes.data, ctx.size, buf.ctypes.data, buf.size, ctypes.byref(err))
    return err.status, err.index, err.detail, err.line


def describe_error(status: int, index: int, detail: int, mpk: bytes | None = None) -> str:
    """The loader's error as a user reads it: status text, op/tensor index, the named check code
    (with the op's param and operand names when the model bytes are given)."""
    from . import spec
    text = spec.STATUS[status][1] if 0 <= status < len(spec.STATUS) else f"status {status}"
    if status == E_OP:
        opcode = None
        name = ""
        if mpk is not None:
            try:
                from .mpk import MpkFile
                opcode = MpkFile(mpk).ops[index].opcode
                name = " " + spec.OP_NAMES.get(opcode, "?")
            except (ValueError, IndexError, KeyError):
                opcode = None
        return f"op #{index}{name}: {text}: {spec.check_message(detail, opcode)} (check {detail})"
    if status == E_OPCODE:
        return f"op #{index} has op code {detail}, which this engine does not run"
    if status == E_TENSOR:
        return f"tensor #{index}: {text}"
    return text


class HostTensor:
    """An input or output of a HostModel: shape, quantization and where its bytes live in the arena."""

    def __init__(self, index: int, shape: tuple[int, ...], offset: int, nbytes: int, zero_point: int,
                 scale: float) -> None:
        self.index, self.shape, self.offset, self.nbytes = index, shape, offset, nbytes
        self.zero_point, self.scale = zero_point, scale

    def __repr__(self) -> str:
        return f"HostTensor(#{self.index}, int8{self.shape}, scale={self.scale:g}, zp={self.zero_point})"


class HostModel:
    """A packed model prepared by the host engine library. Raises PrepareError for an invalid file."""

    def __init__(self, mpk: bytes | bytearray | memoryview, library: Path | str | None = None) -> None:
        self._lib = load_library(library)
        self._model = _aligned_copy(mpk)     # kept alive: the engine uses it in place
        self._addr, self._len = self._model.ctypes.data, self._model.size
        self._ctx, err = _aligned(int(self._lib.lib.mpyml_ctx_size(self._addr, self._len))), _Err()
        self.ctx_bytes: int = self._ctx.size
        st = self._lib.prepare(self._ctx.ctypes.data, self._ctx.size, self._addr, self._len, ctypes.byref(err))
        if st != OK:
            raise PrepareError(err.status, err.index, err.detail, err.line,
                               self._lib.lib.mpyml_status_str(err.status).decode())
        model = self._model
        h = _HEADER.unpack_from(model, 0)
        self.arena_size: int = h[5]
        self.n_tensors, self.n_ops, n_in, n_out = h[6], h[7], h[8], h[9]
        self.macs: int = h[16]
        tensors_off, io_off = h[10], h[13]
        io = struct.unpack_from(f"<{n_in + n_out}H", model, io_off)

        def tensor(i: int) -> HostTensor:
            t = _TENSOR.unpack_from(model, tensors_off + 32 * i)
            scale = struct.unpack("<f", struct.pack("<I", t[11]))[0]
            return HostTensor(i, tuple(t[4:4 + t[1]]), t[8], t[9], t[10], scale)

        self.inputs: list[HostTensor] = [tensor(i) for i in io[:n_in]]
        self.outputs: list[HostTensor] = [tensor(i) for i in io[n_in:]]
        # 4 spare bytes so that invoke_status() can also try a misaligned arena
        self._arena_spare = _aligned(self.arena_size + 4)
        self.arena: np.ndarray = self._arena_spare[:self.arena_size]
        self._arena_i8 = self.arena.view(np.int8)
        self._arena_addr = self.arena.ctypes.data
        self._ctx_ref = self._ctx.ctypes.data

    def invoke(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Write the raw int8 inputs (tensor order, any shape with the right size), run, copy the outputs out."""
        if len(inputs) != len(self.inputs):
            raise ValueError(f"model has {len(self.inputs)} inputs, got {len(inputs)}")
        a = self._arena_i8
        for x, t in zip(inputs, self.inputs, strict=True):
            arr = np.asarray(x)
            if arr.dtype != np.int8:
                raise ValueError(f"input tensor {t.index} must be int8 (raw quantized), got {arr.dtype}")
            if arr.size != t.nbytes:
                raise ValueError(f"input tensor {t.index} needs {t.nbytes} values {t.shape}, got {arr.size}")
            a[t.offset:t.offset + t.nbytes] = arr.reshape(-1)
        st = self._lib.invoke(self._ctx_ref, self._addr, self._len, self._arena_addr, self.arena_size)
        if st != OK:
            raise RuntimeError(f"mpyml_invoke failed: {STATUS_NAMES[st] if 0 <= st < len(STATUS_NAMES) else st}")
        return [a[t.offset:t.offset + t.nbytes].reshape(t.shape).copy() for t in self.outputs]

    def invoke_status(self, arena_len: int | None = None, arena_misalign: int = 0) -> int:
        """Raw mpyml_invoke status with a shorter or misaligned arena (for contract tests)."""
        n = self.arena_size if arena_len is None else arena_len
        if not (0 <= arena_misalign <= 3 and 0 <= n <= self.arena_size):
            raise ValueError("arena_len must be <= arena_size and arena_misalign 0..3")
        return int(self._lib.invoke(self._ctx_ref, self._addr, self._len, self._arena_addr + arena_misalign, n))

    def __repr__(self) -> str:
        return f"<HostModel {self.n_ops} ops, arena {self.arena_size} B, in {self.inputs} -> out {self.outputs}>"
