"""The sparse-weights pass (runs after lowering, before the arena plan): FULLY_CONNECTED and CONV_2D ops whose
weights are mostly zero become SPARSE_FULLY_CONNECTED / SPARSE_CONV_2D (host/mpyml/spec/ops_sparse.py) with the
weights stored column by column (CSC: values, rows, colptr; docs/FORMAT.md "Sparse weights").

A layer is converted only where that is smaller AND not slower, by the cost model below (calibrated on the x64
native module, whose dense FC / conv kernels are SSE2, the hardest target to beat; on Cortex-M the dense
kernels are slower per MAC and the sparse kernels win earlier). The rows are u8 / u16 row indices or 4-bit row
gaps (gap4: about half the index bytes; zero-valued fillers bridge gaps over 15 and pad odd columns), chosen per
layer: the smaller, unless the cost model says the gaps (slower to decode) would be slower than dense while the
indices are not (`always`: the smaller). The dense weights tensor becomes the
`values` tensor (same slot, so nothing else refers to the dense bytes); rows / colptr are new trusted
tensors that _layout_data places in the sparse section, plus one int32 accumulator scratch per op.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import spec

# cost model, in ns per unit on the x64 natmod (gcc -O2; tools/bench_sparse.py on the digits MLP and a C loop of
# the kernels over its 256 x 256 layer: dense SSE2 ~3.5 us, u8-index scatter ~3.3 us, 4-bit gaps ~4.5 us with 40%
# of the columns skipped; fitted to whole-model timings of `bench_sparse.py --block 1|4|8`: the index scatter
# ~0.37 ns per active value, the gap decode ~35% more, ~0.78 ns per active block of 4 and ~1.0 per block of 8):
DENSE_NS_PER_MAC = 0.049         # SSE2 dense FC / conv inner loop
ROW_NS = 1.2                     # per output channel and position, both forms: bias, requantize, store
SPARSE_NS_PER_NZ = 0.37          # one scatter with u8 / u16 row indices (load value and row, multiply, add)
GAP4_NS_PER_NZ = 0.50            # one scatter with 4-bit row gaps (the decode adds ~35%; fillers count as entries)
BLOCK_NS_PER_ENTRY = {4: 0.78, 8: 1.0, 16: 1.6}  # one block add of B values (SSE2 B wide, one index per block)
SPARSE_NS_PER_COL = 0.6          # per input column (load x, test, column bounds)
SPARSE_NS_PER_ROW = 0.3          # per output channel and position, sparse only: the accumulator's init
RELU_ZERO_FRACTION = 0.4         # columns skipped when the input comes out of a ReLU (zero-point outputs; the
                                 # digits MLP's hidden layers measure 40-42%)
MIN_SPARSITY = 0.5               # never below this
ROWS = "auto"                    # the rows encoding: "auto" (per layer, below), "index", "gap4" or "block4" /
                                 # "block8" / "block16" (tests, benchmarks)
BLOCKS = (4, 8, 16)              # block sizes (output channels per entry) the kernels take


def _shape_of(n: int) -> tuple[int, ...] | None:
    """A tensor shape of n elements with dims <= 65535 (the format's dims are u16), or None."""
    if n <= 65535:
        return (n,)
    for a in range(2, 65536):
        if n % a == 0 and n // a <= 65535:
            return (n // a, a)
    return None


def csc(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """w [O, cols] int8 -> (values int8 [nnz], rows [nnz] int, colptr int32 [cols + 1]), rows increasing in a
    column."""
    wt = np.ascontiguousarray(w.T)
    cols, rows = np.nonzero(wt)
    counts = np.bincount(cols, minlength=wt.shape[0])
    colptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return wt[cols, rows].astype(np.int8), rows, colptr


def gap4(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """w [O, cols] int8 -> the 4-bit-gap encoding (values int8 [n], rows int8 [n / 2] packed gaps, low nibble
    first, colptr int32 [cols + 1]): inside a column the row starts at 0 and each entry adds its gap (0..15); a
    gap over 15 gets zero-valued filler entries every 15 rows, and an odd column one zero-valued filler at its
    last row (gap 0), so every column has an even count (n = nnz + fillers)."""
    values, rows, colptr = csc(w)
    vals: list[np.ndarray] = []
    gaps: list[np.ndarray] = []
    counts = np.zeros(len(colptr) - 1, np.int64)
    for k in range(len(colptr) - 1):
        r = rows[colptr[k]:colptr[k + 1]].astype(np.int64)
        d = np.diff(np.concatenate([[0], r]))                   # >= 0 (the first may be 0)
        fill = np.maximum(d - 1, 0) // 15                      # fillers before each entry
        n = int(fill.sum()) + len(r)
        n += n & 1
        g = np.full(n, 15, np.int64)
        v = np.zeros(n, np.int8)
        ends = np.cumsum(fill + 1) - 1                         # the real entries' positions
        g[ends] = d - 15 * fill
        v[ends] = values[colptr[k]:colptr[k + 1]]
        if len(ends) and ends[-1] != n - 1 or not len(ends) and n:
            g[n - 1] = 0                                        # the odd column's padding
        vals.append(v)
        gaps.append(g)
        counts[k] = n
    v_all = np.concatenate(vals) if vals else np.zeros(0, np.int8)
    g_all = np.concatenate(gaps) if gaps else np.zeros(0, np.int64)
    packed = (g_all[0::2] | (g_all[1::2] << 4)).astype(np.uint8).view(np.int8)
    cp = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return v_all.astype(np.int8), packed, cp


def blocks(w: np.ndarray, bs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """w [O, cols] int8, O a multiple of bs -> the block encoding (values int8 [n * bs], rows [n] block indices,
    colptr int32 [cols + 1]): the output channels in blocks of bs; every block with a nonzero weight in a column
    is stored whole (its bs values), its index increasing inside the column."""
    o, cols = w.shape
    wb = w.reshape(o // bs, bs, cols)
    nz = np.any(wb != 0, axis=1).T                           # [cols, o / bs]
    col, blk = np.nonzero(nz)
    counts = np.bincount(col, minlength=cols)
    colptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    values = wb[blk, :, col].reshape(-1).astype(np.int8)     # [n, bs] in column order
    return values, blk, colptr


def index_bytes(o: int, nnz: int) -> int:
    """values + row indices: u8 indices when O <= 256, else u16."""
    return nnz * (2 if o <= 256 else 3)


def sparse_bytes(o: int, cols: int, nnz: int, gap_entries: int | None = None) -> int:
    """values + rows (the smaller encoding; `gap_entries` = the 4-bit-gap encoding's entry count) + colptr"""
    best = index_bytes(o, nnz)
    if gap_entries is not None:
        best = min(best, gap_entries + gap_entries // 2)
    return best + 4 * (cols + 1)


def estimate(o: int, cols: int, entries: int, positions: int, relu_input: bool, enc: str = "index"
             ) -> tuple[float, float]:
    """(dense ns, sparse ns) for one op: `positions` = batches (FC) or output pixels (conv); `entries` = the
    stored row entries (nnz for "index", values incl. fillers for "gap4", blocks for "block<B>")."""
    active = 1.0 - RELU_ZERO_FRACTION if relu_input else 1.0
    dense = positions * o * (cols * DENSE_NS_PER_MAC + ROW_NS)
    if enc.startswith("block"):
        per = BLOCK_NS_PER_ENTRY[int(enc[5:])]
    else:
        per = GAP4_NS_PER_NZ if enc == "gap4" else SPARSE_NS_PER_NZ
    sparse = positions * (entries * active * per + cols * SPARSE_NS_PER_COL + o * (ROW_NS + SPARSE_NS_PER_ROW))
    return dense, sparse


def encodings(w: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, str, np.ndarray, int]]:
    """Every encoding the kernels take for w [O, cols]: name -> (values, rows, rows type, colptr, entries), with
    entries as `estimate` counts them (rows of O > 65536 channels, or block indices past u16, are left out)."""
    o = w.shape[0]
    out: dict[str, tuple[np.ndarray, np.ndarray, str, np.ndarray, int]] = {}
    if o <= 65535:
        values, rows, colptr = csc(w)
        out["index"] = (values, rows, "uint8" if o <= 256 else "int16", colptr, len(values))
        g_vals, g_rows, g_cp = gap4(w)
        out["gap4"] = (g_vals, g_rows, "int8", g_cp, len(g_vals))
    for bs in BLOCKS:
        if o % bs == 0 and o // bs <= 65535:
            values, rows, colptr = blocks(w, bs)
            out[f"block{bs}"] = (values, rows, "uint8" if o // bs <= 256 else "int16", colptr, len(rows))
    return out


def encoded_bytes(values: np.ndarray, rows: np.ndarray, rows_type: str, colptr: np.ndarray) -> int:
    """values + rows + colptr bytes of one encoding"""
    rb = len(rows) * (2 if rows_type == "int16" else 1)
    return len(values) + rb + 4 * len(colptr)


def _relu_outputs(b: Any) -> set[int]:
    """Tensors written by an FC / conv / depthwise whose activation range starts at its output zero point."""
    out: set[int] = set()
    for op in b.ops:
        name = spec.OP_NAMES.get(op.opcode, "")
        if name in ("FULLY_CONNECTED", "SPARSE_FULLY_CONNECTED") and op.params[2] == op.params[1]:
            out.add(op.outputs[0])
        elif name in ("CONV_2D", "DEPTHWISE_CONV_2D") and op.params[8] == op.params[7]:
            out.add(op.outputs[0])
    return out


def sparsify(b: Any, always: bool = False) -> None:
    """Rewrite b.ops in place (see the module doc). `always`: every layer where the sparse form is smaller,
    whatever the speed estimate and MIN_SPARSITY say (tests; `pack(..., sparse="always")`)."""
    from ..packer import NO_TENSOR
    uses: dict[int, int] = {}
    for op in b.ops:
        for t in op.inputs:
            uses[t] = uses.get(t, 0) + 1
    relu = _relu_outputs(b)
    for op in b.ops:
        name = spec.OP_NAMES.get(op.opcode, "")
        if name not in ("FULLY_CONNECTED", "CONV_2D") or uses.get(op.inputs[1], 0) != 1:
            continue
        ft = b.tensors[op.inputs[1]]
        w = np.frombuffer(ft.data, np.int8)
        o = ft.shape[0]
        cols = w.size // o
        w = w.reshape(o, cols)
        out_t = b.tensors[op.outputs[0]]
        positions = int(np.prod(out_t.shape)) // o
        nnz = int(np.count_nonzero(w))
        if nnz == 0 or cols > 65536 or (1 - nnz / w.size < MIN_SPARSITY and not always):
            continue
        relu_in = op.inputs[0] in relu
        # the encoding: the smallest one that is smaller than dense and, by the cost model, not slower
        # ("always": the smallest; ROWS: a forced one)
        best: tuple[int, str] | None = None
        cands = encodings(w)
        for enc, (values, rows, rt, colptr, entries) in cands.items():
            if ROWS != "auto" and enc != ROWS:
                continue
            if _shape_of(len(values)) is None or _shape_of(len(rows)) is None:
                continue
            size = encoded_bytes(values, rows, rt, colptr)
            dense_ns, ns = estimate(o, cols, entries, positions, relu_in, enc)
            if size >= w.size or (ns > dense_ns and not always):
                continue
            if best is None or size < best[0]:
                best = (size, enc)
        if best is None:
            continue
        sb, enc = best
        values, rows, rt, colptr, entries = cands[enc]
        dense_ns, sparse_ns = estimate(o, cols, entries, positions, relu_in, enc)
        shp = _shape_of(len(values))
        r_shp = _shape_of(len(rows))
        assert shp is not None and r_shp is not None
        i_rows = b.const(f"{ft.name}/rows", rows, rt, r_shp)
        dense_shape = ft.shape
        ft.data, ft.shape = values.tobytes(), shp
        i_cp = b.const(f"{ft.name}/colptr", colptr, "int32")
        i_acc = b.scratch(f"{ft.name}/acc", (o,), "int32")
        bias, mult, shift = op.inputs[2], op.inputs[3], op.inputs[4]
        ins = [op.inputs[0], op.inputs[1], i_rows, i_cp, bias if bias != NO_TENSOR else NO_TENSOR, mult, shift]
        if name == "FULLY_CONNECTED":
            op.opcode = spec.OPCODES["SPARSE_FULLY_CONNECTED"]
        else:
            kh, kw = dense_shape[1], dense_shape[2]
            sw, sh, dw, dh, pw, ph, ioff, ooff, amin, amax, _dm = op.params
            op.params = [sw, sh, dw, dh, pw, ph, kw, kh, ioff, ooff, amin, amax]
            op.opcode = spec.OPCODES["SPARSE_CONV_2D"]
        spec.check_params(spec.OP_NAMES[op.opcode], op.params)
        op.inputs = ins
        op.outputs = [op.outputs[0], i_acc]
        op.info["sparse"] = {"nnz": nnz, "weights": int(w.size), "sparsity": 1 - nnz / w.size, "encoding": enc,
                             "dense_bytes": int(w.size), "sparse_bytes": sb, "saved_bytes": int(w.size) - sb,
                             "est_dense_ns": round(dense_ns), "est_sparse_ns": round(sparse_ns)}


def sparse_index_tensors(ops: list[Any]) -> set[int]:
    """The rows / colptr tensors of the sparse ops: they go in the sparse section."""
    out: set[int] = set()
    for op in ops:
        if spec.OPS_BY_CODE[op.opcode].family == "sparse":
            out.update(op.inputs[2:4])
    return out
