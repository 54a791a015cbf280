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
                 "data_offset", "data_size", "macs", "sparse_size", "trusted_size")
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

    def dense_weights(self, op: MOp) -> np.ndarray:
        """The dense int8 weights [O, cols] of a sparse op (SPARSE_FULLY_CONNECTED / SPARSE_CONV_2D: cols = K or
        KH*KW*C in (ky, kx, c) order), rebuilt from its CSC values / rows / colptr (docs/FORMAT.md): row indices,
        4-bit row gaps or block indices."""
        t = self.tensors
        vals = self.const_array(t[op.inputs[1]]).reshape(-1).astype(np.int32)
        colptr = self.const_array(t[op.inputs[3]]).reshape(-1)
        o = t[op.outputs[0]].shape[-1]
        w = np.zeros((o, len(colptr) - 1), np.int8)
        rt = t[op.inputs[2]]
        if rt.type == 1:                # int8: 4-bit row gaps from 0, low nibble first (zero-valued fillers)
            g = self.const_array(rt).reshape(-1).view(np.uint8)
            gaps = np.stack([g & 15, g >> 4], axis=1).reshape(-1)[:len(vals)].astype(np.int64)
            cols = np.repeat(np.arange(len(colptr) - 1), np.diff(colptr))
            rows_g = np.zeros(len(vals), np.int64)
            for k in range(len(colptr) - 1):
                rows_g[colptr[k]:colptr[k + 1]] = np.cumsum(gaps[colptr[k]:colptr[k + 1]])
            nz = vals != 0
            w[rows_g[nz], cols[nz]] = vals[nz]
            return w
        rows = self.const_array(rt).reshape(-1).view(np.uint16 if rt.type == 5 else np.uint8)
        cols = np.repeat(np.arange(len(colptr) - 1), np.diff(colptr))
        bs = len(vals) // max(len(rows), 1)     # block indices: values = bs x rows (bs 4 / 8 / 16), else 1
        r = (rows.astype(np.int64)[:, None] * bs + np.arange(bs)).reshape(-1)
        w[r, np.repeat(cols, bs)] = vals
        return w

    def sparse_stats(self, op: MOp) -> dict[str, float | int] | None:
        """For a sparse op: nnz, weights, sparsity, sparse_bytes (values + rows + colptr), dense_bytes, saved_bytes.
        None for any other op."""
        if op.name not in ("SPARSE_FULLY_CONNECTED", "SPARSE_CONV_2D"):
            return None
        t = self.tensors
        nnz = t[op.inputs[1]].elements
        if nnz != t[op.inputs[2]].elements:      # 4-bit gaps (zero fillers) or blocks (zeros inside blocks)
            nnz = int(np.count_nonzero(self.const_array(t[op.inputs[1]])))
        o = t[op.outputs[0]].shape[-1]
        weights = o * (t[op.inputs[3]].elements - 1)
        sb = sum(t[i].nbytes for i in op.inputs[1:4])
        return {"nnz": nnz, "weights": weights, "sparsity": 1 - nnz / weights, "sparse_bytes": sb,
                "dense_bytes": weights, "saved_bytes": weights - sb}

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
