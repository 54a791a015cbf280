"""Read a packed .mpk file on the host (for inspect, run and tests). The device-side reader is the C loader."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .packer import (
    HEADER_FMT,
    HEADER_SIZE,
    MAGIC,
    OP_HDR_FMT,
    OP_NAMES,
    S_ARENA,
    TENSOR_FMT,
    TENSOR_SIZE,
)
from .spec import TYPE_NAME, TYPES

HEADER_FIELDS = ("magic", "version", "header_size", "file_size", "crc32", "arena_size", "n_tensors", "n_ops",
                 "n_inputs", "n_outputs", "tensors_offset", "ops_offset", "ops_size", "io_offset",
                 "data_offset", "data_size", "macs", "flags", "trusted_size")
HEADER_OFFSETS = dict(zip(HEADER_FIELDS, (0, 4, 6, 8, 12, 16, 20, 22, 24, 26, 28, 32, 36, 40, 44, 48, 52, 56, 60),
                          strict=True))


@dataclass
class MTensor:
    index: int
    type: int
    shape: tuple[int, ...]
    storage: int
    offset: int
    nbytes: int
    zero_point: int
    scale: float

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape))

    @property
    def dtype(self) -> str:
        return TYPE_NAME.get(self.type, f"type{self.type}")

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(TYPES[self.dtype][2])

    @property
    def in_arena(self) -> bool:
        return self.storage == S_ARENA


@dataclass
class MOp:
    index: int
    opcode: int
    inputs: list[int]
    outputs: list[int]
    params: list[int]
    record_offset: int
    flags: int = 0                  # op record flags (spec.OP_FLAGS: IN_PLACE)

    @property
    def name(self) -> str:
        return OP_NAMES.get(self.opcode, f"OP{self.opcode}")


class MpkFile:
    """Parsed view of a packed model. Raises ValueError for anything that is not a well-formed header."""

    def __init__(self, data: bytes) -> None:
        if len(data) < HEADER_SIZE:
            raise ValueError("file shorter than the mpyml header")
        self.data = bytes(data)
        vals = struct.unpack_from(HEADER_FMT, data, 0)
        self.header = dict(zip(HEADER_FIELDS, vals, strict=True))
        if self.header["magic"] != MAGIC:
            raise ValueError("not an mpyml packed model (bad magic)")
        h = self.header
        self.tensors = []
        for i in range(h["n_tensors"]):
            t = struct.unpack_from(TENSOR_FMT, data, h["tensors_offset"] + TENSOR_SIZE * i)
            scale = struct.unpack("<f", struct.pack("<I", t[11]))[0]
            self.tensors.append(MTensor(i, t[0], tuple(t[4:4 + t[1]]), t[2], t[8], t[9], t[10], scale))
        self.ops = []
        pos = h["ops_offset"]
        for i in range(h["n_ops"]):
            code, n_in, n_out, n_params, size, flags = struct.unpack_from(OP_HDR_FMT, data, pos)
            n_idx = n_in + n_out
            idx = struct.unpack_from(f"<{n_idx}H", data, pos + 8)
            prm = struct.unpack_from(f"<{n_params}i", data, pos + 8 + 2 * (n_idx + (n_idx & 1)))
            self.ops.append(MOp(i, code, list(idx[:n_in]), list(idx[n_in:]), list(prm), pos, flags))
            pos += size
        io = struct.unpack_from(f"<{h['n_inputs'] + h['n_outputs']}H", data, h["io_offset"])
        self.inputs = list(io[: h["n_inputs"]])
        self.outputs = list(io[h["n_inputs"]:])

    def crc_ok(self) -> bool:
        buf = bytearray(self.data)
        buf[12:16] = b"\0\0\0\0"
        return zlib.crc32(buf) & 0xFFFFFFFF == self.header["crc32"]

    def input_tensors(self) -> list[MTensor]:
        return [self.tensors[i] for i in self.inputs]

    def output_tensors(self) -> list[MTensor]:
        return [self.tensors[i] for i in self.outputs]

    def const_array(self, t: MTensor) -> np.ndarray:
        start = self.header["data_offset"] + t.offset
        dt = t.np_dtype
        return np.frombuffer(self.data[start:start + t.nbytes], dtype=dt).reshape(t.shape)


def with_crc(buf: bytearray | bytes) -> bytes:
    """Recompute the CRC field of a (possibly edited) packed file (for tests that corrupt fields)."""
    b = bytearray(buf)
    b[12:16] = b"\0\0\0\0"
    struct.pack_into("<I", b, 12, zlib.crc32(b) & 0xFFFFFFFF)
    return bytes(b)
