"""Patch-based inference: `mpyml pack --max-ram BYTES` (the tiler).

Owns: splitting the first stage of a CNN (a chain of CONV_2D / DEPTHWISE_CONV_2D / AVERAGE_POOL_2D /
MAX_POOL_2D / LUT ops starting at a model input, up to where activations get small) into spatial tiles,
and choosing the stage end and the tile grid that meet a RAM budget with the least recomputation.

A patch plan is an ordinary op list, unrolled: for each tile (row-major over the stage output),
  STRIDED_COPY  the tile's input window (its receptive field, clipped to the input) out of the stage input;
  every stage op on tile-sized buffers, with per-tile paddings;
  WRITE_BOX     the tile's part of the stage output into the whole stage output tensor.
The rest of the model runs layer by layer. Weights and requantization constants are shared by all tiles'
records (the data section does not grow; the op records and tensor table do, and with them the context a
writable model is validated into).

Bit-exact by construction: conv / depthwise / pool params carry only the leading (top / left) padding, the
output size comes from the output tensor, and the kernels treat input positions outside the input tensor
as padding (pool averages count only in-bounds taps). The op computing output rows [a, b) of a whole-tensor
op, run on a buffer holding input rows [lo, hi) = the rows those outputs read, clipped to [0, H), is the
same op with pad' = max(pad - a * stride, 0) and smaller tensors: the same taps, the same arithmetic, the
same borders. Columns likewise.

Choice: every candidate (stage end, tile height, tile width) is built, bounded below by its peak of live
bytes, and the candidates are tried in order of MACs (then tile count): the first whose planned arena
(the real planner, host/mpyml/planner.py) fits the budget wins. Without one, PatchError names the smallest
arena any candidate reaches.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

from . import spec
from .packer import ALIGN_ARENA, PackedModel, PackError, POp, PTensor, _layout_data
from .planner import plan_arena

CONV, DWCONV = spec.OPCODES["CONV_2D"], spec.OPCODES["DEPTHWISE_CONV_2D"]
AVG_POOL, MAX_POOL = spec.OPCODES["AVERAGE_POOL_2D"], spec.OPCODES["MAX_POOL_2D"]
LUT = spec.OPCODES["LUT"]
STRIDED_COPY, WRITE_BOX = spec.OPCODES["STRIDED_COPY"], spec.OPCODES["WRITE_BOX"]
TILEABLE = (CONV, DWCONV, AVG_POOL, MAX_POOL, LUT)
S_ARENA = spec.STORAGE["arena"]
NO_TENSOR = spec.NO_TENSOR
MAX_TILES = 144           # per stage: each tile adds (stage ops + 2) op records
MAX_GRID = 16             # tiles along one axis
IN_PLACE_TRIES = 4        # plans with in-place conv variants tried when no plain patch plan fits
IN_PLACE_MAX_OPS = 300    # ... on candidates of at most this many op records (that planning is slower)


class PatchError(PackError):
    """No patch plan meets the budget; the message names the smallest arena one reaches (`smallest`)."""

    def __init__(self, message: str, smallest: int = 0) -> None:
        super().__init__(message)
        self.smallest = smallest


@dataclass
class PatchInfo:
    """What a patch plan did (for pack's summary, inspect and bench)."""

    stage: tuple[int, int]              # ops [first, last] of the original op list that run tiled
    grid: tuple[int, int]               # tiles along H, W
    tile: tuple[int, int]               # tile size (rows, cols) of the stage output (the last tiles may be smaller)
    arena: int                          # planned arena with patching
    arena_unpatched: int                # the default pack's arena
    macs: int
    macs_unpatched: int
    ops: int
    ops_unpatched: int
    ops_bytes: int = 0                  # op record bytes with patching (the ctx copies them)
    ops_bytes_unpatched: int = 0
    tensors: int = 0
    tensors_unpatched: int = 0

    @property
    def ctx_growth(self) -> int:
        """Bytes the records add to the context of a model in writable memory (C engine on a bytearray, and
        always for the viper engine), which copies the op records and tensor table; the C engine validating a
        model in place (bytes, ROMFS, flash) uses no more."""
        return self.ops_bytes - self.ops_bytes_unpatched + spec.TENSOR_SIZE * (self.tensors - self.tensors_unpatched)

    @property
    def mac_overhead(self) -> float:
        return self.macs / self.macs_unpatched if self.macs_unpatched else 1.0


@dataclass
class _Geo:
    """How one op maps output rows/cols to input rows/cols: (stride, effective kernel, pad) per axis."""

    sh: int
    kh: int
    ph: int
    sw: int
    kw: int
    pw: int


def _geometry(pm, op) -> _Geo:  # type: ignore[no-untyped-def]
    p = op.params
    if op.opcode in (CONV, DWCONV):
        f = pm.tensors[op.inputs[1]].shape        # conv [O,KH,KW,C], depthwise [1,KH,KW,O]
        return _Geo(p[1], (f[1] - 1) * p[3] + 1, p[5], p[0], (f[2] - 1) * p[2] + 1, p[4])
    if op.opcode in (AVG_POOL, MAX_POOL):
        return _Geo(p[1], p[3], p[5], p[0], p[2], p[4])
    return _Geo(1, 1, 0, 1, 1, 0)                 # LUT: elementwise


def _with_pads(op, pad_h: int, pad_w: int) -> list[int]:  # type: ignore[no-untyped-def]
    p = list(op.params)
    if op.opcode in (CONV, DWCONV, AVG_POOL, MAX_POOL):
        p[4], p[5] = pad_w, pad_h
    return p


def _need(a: int, b: int, s: int, k: int, pad: int, size: int) -> tuple[int, int, int]:
    """Input range [lo, hi) that outputs [a, b) read, clipped to [0, size), and the op's pad for it."""
    lo = a * s - pad
    hi = (b - 1) * s - pad + k
    return max(lo, 0), min(hi, size), max(pad - a * s, 0)


def _chain(pm, start: int) -> list[int]:  # type: ignore[no-untyped-def]
    """Ops start, start+1, ... that form a tileable chain: each reads the previous one's output, which
    nothing else reads (and that is no model output); every operand but the first is a constant."""
    consumers: dict[int, int] = {}
    for op in pm.ops:
        for t in op.inputs:
            consumers[t] = consumers.get(t, 0) + 1
    outs = set(pm.outputs)
    chain: list[int] = []
    for i in range(start, len(pm.ops)):
        op = pm.ops[i]
        if op.opcode not in TILEABLE or len(op.outputs) != 1:
            break
        x, y = pm.tensors[op.inputs[0]], pm.tensors[op.outputs[0]]
        if len(x.shape) != 4 or len(y.shape) != 4 or x.storage != S_ARENA or x.flags or y.flags:
            break
        if any(t != NO_TENSOR and pm.tensors[t].storage == S_ARENA for t in op.inputs[1:]):
            break
        if op.opcode == LUT and x.shape != y.shape:
            break
        if chain:
            prev = pm.ops[chain[-1]]
            if op.inputs[0] != prev.outputs[0] or consumers.get(prev.outputs[0], 0) != 1 or prev.outputs[0] in outs:
                break
        chain.append(i)
    return chain


@dataclass
class _Cand:
    start: int
    end: int                  # exclusive
    ty: int
    tx: int
    macs: int = 0
    n_tiles: int = 0
    ops: list = field(default_factory=list)
    tensors: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    bound: int = 0


def _split(n: int, t: int) -> list[tuple[int, int]]:
    return [(a, min(a + t, n)) for a in range(0, n, t)]


def _build(pm, start: int, end: int, ty: int, tx: int) -> _Cand | None:  # type: ignore[no-untyped-def]
    """The op list with ops [start, end) run in tiles of ty x tx stage-output pixels (None: not tileable)."""
    stage = pm.ops[start:end]
    geos = [_geometry(pm, op) for op in stage]
    tensors = list(pm.tensors)
    x_idx = stage[0].inputs[0]
    y_idx = stage[-1].outputs[0]
    X = pm.tensors[x_idx]
    Y = pm.tensors[y_idx]
    N = Y.shape[0]
    tiles_h, tiles_w = _split(Y.shape[1], ty), _split(Y.shape[2], tx)
    if len(tiles_h) * len(tiles_w) < 2 or len(tiles_h) * len(tiles_w) > MAX_TILES:
        return None
    new_ops: list = []
    macs = 0
    for ti, (a, b) in enumerate(tiles_h):
        for tj, (c, d) in enumerate(tiles_w):
            # walk back from the stage output box: each op's output box, input box and pads
            boxes = []
            oa, ob, oc, od = a, b, c, d
            for op, g in zip(reversed(stage), reversed(geos), strict=True):
                xin = pm.tensors[op.inputs[0]]
                lo_h, hi_h, ph = _need(oa, ob, g.sh, g.kh, g.ph, xin.shape[1])
                lo_w, hi_w, pw = _need(oc, od, g.sw, g.kw, g.pw, xin.shape[2])
                if hi_h <= lo_h or hi_w <= lo_w:
                    return None
                boxes.append(((lo_h, hi_h, lo_w, hi_w), (oa, ob, oc, od), ph, pw))
                oa, ob, oc, od = lo_h, hi_h, lo_w, hi_w
            boxes.reverse()
            tag = f"@{ti},{tj}"
            (ih0, ih1, iw0, iw1) = boxes[0][0]
            if (ih0, ih1, iw0, iw1) == (0, X.shape[1], 0, X.shape[2]):
                cur = x_idx
            else:
                tensors.append(PTensor(X.name + tag, (X.shape[0], ih1 - ih0, iw1 - iw0, X.shape[3]), X.type, S_ARENA,
                                       X.zero_point, X.scale))
                cur = len(tensors) - 1
                H, W, C = X.shape[1], X.shape[2], X.shape[3]
                new_ops.append(POp(STRIDED_COPY, [x_idx], [cur], [(ih0 * W + iw0) * C, H * W * C, W * C, C, 1],
                                   stage[0].tflite_index, 0, {"patch": (start, ti, tj)}))
            for op, (_, (oa, ob, oc, od), ph, pw) in zip(stage, boxes, strict=True):
                yo = pm.tensors[op.outputs[0]]
                tensors.append(PTensor(yo.name + tag, (N, ob - oa, od - oc, yo.shape[3]), yo.type, S_ARENA,
                                       yo.zero_point, yo.scale))
                out = len(tensors) - 1
                full = yo.shape[1] * yo.shape[2]
                m = op.macs * (ob - oa) * (od - oc) // full
                macs += m
                new_ops.append(POp(op.opcode, [cur] + list(op.inputs[1:]), [out], _with_pads(op, ph, pw),
                                   op.tflite_index, m, dict(op.info, patch=(start, ti, tj))))
                cur = out
            new_ops.append(POp(WRITE_BOX, [cur], [y_idx], [0, a, c, 0], stage[-1].tflite_index, 0,
                               {"patch": (start, ti, tj)}))
    ops = list(pm.ops[:start]) + new_ops + list(pm.ops[end:])
    macs += sum(op.macs for op in pm.ops[:start]) + sum(op.macs for op in pm.ops[end:])
    cand = _Cand(start, end, ty, tx, macs, len(tiles_h) * len(tiles_w))
    # the whole-size stage intermediates are still in `tensors`, unused: _materialize() drops them
    cand.tensors, cand.ops, cand.inputs, cand.outputs = tensors, ops, list(pm.inputs), list(pm.outputs)
    cand.bound = _live_bound(cand)
    return cand


def _materialize(c: _Cand) -> tuple[list, list, list[int], list[int]]:
    """The candidate's tensors (copies: the planner sets their offsets) and ops (new records), renumbered."""
    tensors, ops, inputs, outputs = _compact(c.tensors, c.ops, c.inputs, c.outputs)
    return [copy.copy(t) for t in tensors], ops, inputs, outputs


def _compact(tensors, ops, inputs, outputs):  # type: ignore[no-untyped-def]
    """Drop the tensors no op or model input/output names any more (the whole-size intermediates of the
    stage: an unused arena tensor would still have to fit the arena) and renumber."""
    used: list[int] = []
    seen: set[int] = set()

    def use(t: int) -> None:
        if t != NO_TENSOR and t not in seen:
            seen.add(t)
            used.append(t)

    for t in inputs:
        use(t)
    for op in ops:
        for t in op.inputs + op.outputs:
            use(t)
    for t in outputs:
        use(t)
    used.sort()
    remap = {t: i for i, t in enumerate(used)}
    remap[NO_TENSOR] = NO_TENSOR
    new_ops = [POp(op.opcode, [remap[t] for t in op.inputs], [remap[t] for t in op.outputs], list(op.params),
                   op.tflite_index, op.macs, op.info) for op in ops]
    return [tensors[t] for t in used], new_ops, [remap[t] for t in inputs], [remap[t] for t in outputs]


def _live_bound(c: _Cand, align: int = 16) -> int:
    """The largest sum of arena bytes live at one op, rounded up to `align`: no plan of this op list is
    smaller (a RESHAPE's output counts as its input's bytes, as the planner aliases them)."""
    n = len(c.ops)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    size: dict[int, int] = {}
    alias: dict[int, int] = {}
    for op in c.ops:
        if op.opcode == spec.OPCODES["RESHAPE"] and c.tensors[op.inputs[0]].storage == S_ARENA:
            alias[op.outputs[0]] = alias.get(op.inputs[0], op.inputs[0])

    def touch(t: int, s: int) -> None:
        if t == NO_TENSOR:
            return
        r = alias.get(t, t)
        if r not in first:
            tt = c.tensors[t]
            if tt.storage != S_ARENA:
                return
            first[r] = last[r] = s
            size[r] = math.prod(tt.shape) * spec.TYPE_SIZE[tt.type]
            return
        if t != r:
            tt = c.tensors[t]
            size[r] = max(size[r], math.prod(tt.shape) * spec.TYPE_SIZE[tt.type])
        if s < first[r]:
            first[r] = s
        if s > last[r]:
            last[r] = s

    for t in c.inputs:
        touch(t, 0)
    for s, op in enumerate(c.ops):
        for t in op.inputs + op.outputs:
            touch(t, s)
    for t in c.outputs:
        touch(t, n)
    for i, t in enumerate(c.tensors):
        if t.flags and t.storage == S_ARENA:      # STATE: alive throughout
            touch(i, 0)
            touch(i, n)
    delta = [0] * (n + 2)
    for r, f in first.items():
        delta[f] += size[r]
        delta[last[r] + 1] -= size[r]
    best = cur = 0
    for v in delta:
        cur += v
        best = max(best, cur)
    return (best + align - 1) // align * align


def candidates(pm, budget: int | None = None) -> list[_Cand]:  # type: ignore[no-untyped-def]
    """Every patch plan of a first stage: a chain starting at an op that reads a model input, or the output of
    an op that cannot run in tiles (a QUANTIZE of a float input, an ADD...). With `budget`, stages whose input
    and output alone exceed it are left out (both are live while the last tile gathers its window)."""
    out = []
    producer = {t: i for i, op in enumerate(pm.ops) for t in op.outputs}
    starts = [i for i, op in enumerate(pm.ops) if op.opcode in TILEABLE and op.inputs
              and (op.inputs[0] in pm.inputs or pm.ops[producer.get(op.inputs[0], i)].opcode not in TILEABLE)]
    for start in starts:
        chain = _chain(pm, start)
        for end in range(start + 1, start + len(chain) + 1):
            Y = pm.tensors[pm.ops[end - 1].outputs[0]]
            if budget is not None and pm.tensors[pm.ops[start].inputs[0]].nbytes + Y.nbytes > budget:
                continue
            H, W = Y.shape[1], Y.shape[2]
            sizes_h = sorted({-(-H // g) for g in range(1, min(H, MAX_GRID) + 1)})
            sizes_w = sorted({-(-W // g) for g in range(1, min(W, MAX_GRID) + 1)})
            for ty in sizes_h:
                for tx in sizes_w:
                    n = -(-H // ty) * -(-W // tx)
                    if n < 2 or n > MAX_TILES:
                        continue
                    c = _build(pm, start, end, ty, tx)
                    if c is not None:
                        out.append(c)
    return out


def _scratch_maker(tensors: list):  # type: ignore[no-untyped-def]
    """The planner's `new_scratch` for a materialized tensor list (in-place conv variants' scratch buffers)."""
    def make(step: int, nbytes: int) -> int:
        tensors.append(PTensor(f"op{step}/inplace_scratch", (nbytes,), spec.TYPE_CODE["int8"], S_ARENA))
        return len(tensors) - 1
    return make


def _plan(c: _Cand, align: int, in_place: bool = False) -> int:
    tensors, ops, inputs, outputs = _materialize(c)
    if not in_place:
        return plan_arena(tensors, ops, inputs, outputs, align)
    return plan_arena(tensors, ops, inputs, outputs, align, new_scratch=_scratch_maker(tensors), slow_in_place=True)


def _ops_bytes(ops) -> int:  # type: ignore[no-untyped-def]
    return sum(8 + 2 * ((len(op.inputs) + len(op.outputs) + 1) // 2 * 2) + 4 * len(op.params) for op in ops)


def apply(pm, max_ram: int, in_place: bool = False):  # type: ignore[no-untyped-def]
    """A PackedModel whose arena is at most `max_ram` bytes, with the least MACs: `pm` itself when its arena
    already fits, else the best patch plan (its `.patch` is a PatchInfo). Raises PatchError otherwise.
    `in_place`: when no plain patch plan fits, also try plans with the in-place conv variants (slower
    depthwise included), which can take an arena below a candidate's live-bytes bound."""
    if pm.arena_size <= max_ram:
        return pm
    base_macs = sum(op.macs for op in pm.ops)
    cands = candidates(pm, max_ram)
    if not any(c.bound <= max_ram for c in cands):
        cands = candidates(pm)          # for the error: the smallest figure over every stage
    if not cands:
        raise PatchError(f"--max-ram {max_ram:,} is below the smallest arena mpyml reaches for this model, "
                         f"{pm.arena_size:,} B, its default plan (no stage of it can run in tiles: that needs a "
                         f"chain of CONV_2D / DEPTHWISE_CONV_2D / pooling ops on 4-D tensors): use --max-ram "
                         f"{pm.arena_size} or more", pm.arena_size)
    chosen: _Cand | None = None
    arena = 0
    for c in sorted(cands, key=lambda c: (c.macs, c.n_tiles, c.bound)):
        if c.bound > max_ram:
            continue
        a = _plan(c, ALIGN_ARENA)
        if a <= max_ram:
            chosen, arena = c, a
            break
    if chosen is None and in_place:
        # with the in-place conv variants an arena can go below a candidate's live-bytes bound: try the
        # candidates of smallest bound (least MACs among equals), a bounded number of plans (packing stays fast)
        small = [c for c in cands if len(c.ops) <= IN_PLACE_MAX_OPS]
        for c in sorted(small, key=lambda c: (c.bound, c.macs, c.n_tiles))[:IN_PLACE_TRIES]:
            a = _plan(c, ALIGN_ARENA, True)
            if a <= max_ram:
                chosen, arena = c, a
                break
        in_place = chosen is not None
    else:
        in_place = False
    if chosen is None:
        best = min(pm.arena_size, min_arena(cands))
        raise PatchError(f"--max-ram {max_ram:,} is below the smallest arena mpyml reaches for this model, "
                         f"{best:,} B (default plan {pm.arena_size:,} B): use --max-ram {best} or more", best)
    c = chosen
    tensors, ops, inputs, outputs = _materialize(c)
    arena = plan_arena(tensors, ops, inputs, outputs, ALIGN_ARENA,
                       new_scratch=_scratch_maker(tensors) if in_place else None, slow_in_place=in_place)
    out = PackedModel(tensors, ops, inputs, outputs, arena, notes=list(pm.notes))
    _layout_data(out)
    Y = pm.tensors[pm.ops[c.end - 1].outputs[0]]
    out.patch = PatchInfo(  # type: ignore[attr-defined]
        stage=(c.start, c.end - 1), grid=(-(-Y.shape[1] // c.ty), -(-Y.shape[2] // c.tx)), tile=(c.ty, c.tx),
        arena=arena, arena_unpatched=pm.arena_size, macs=c.macs, macs_unpatched=base_macs, ops=len(ops),
        ops_unpatched=len(pm.ops), ops_bytes=_ops_bytes(ops), ops_bytes_unpatched=_ops_bytes(pm.ops),
        tensors=len(tensors), tensors_unpatched=len(pm.tensors))
    return out


def min_arena(cands: list[_Cand]) -> int:
    """The smallest planned arena over the candidates (branch and bound on their live-bytes bounds)."""
    best = None
    for c in sorted(cands, key=lambda c: (c.bound, c.macs)):
        if best is not None and c.bound >= best:
            break
        a = _plan(c, ALIGN_ARENA)
        if best is None or a < best:
            best = a
    assert best is not None
    return best


def tile_map(ops) -> dict[int, tuple[int, int]]:  # type: ignore[no-untyped-def]
    """Which ops of a packed op list (MpkFile.ops or POps) belong to patch tiles: op index -> (stage, tile).
    A tile is a WRITE_BOX and the chain that feeds it: its producers back through single-consumer tile
    buffers, up to and including the STRIDED_COPY that gathered its input window. Stages are numbered in
    order of their whole output tensor's first WRITE_BOX; tiles in order within a stage."""
    producer: dict[int, int] = {}
    readers: dict[int, int] = {}
    for i, op in enumerate(ops):
        for t in op.outputs:
            producer.setdefault(t, i)
        for t in op.inputs:
            readers[t] = readers.get(t, 0) + 1
    out: dict[int, tuple[int, int]] = {}
    stages: dict[int, list[int]] = {}
    for i, op in enumerate(ops):
        if op.opcode != WRITE_BOX:
            continue
        tiles = stages.setdefault(op.outputs[0], [0])
        st = list(stages).index(op.outputs[0])
        member = [i]
        t = op.inputs[0]
        while t in producer and readers.get(t) == 1:
            j = producer[t]
            if ops[j].opcode not in (*TILEABLE, STRIDED_COPY) or j in out:
                break
            member.append(j)
            if ops[j].opcode == STRIDED_COPY:
                break
            t = ops[j].inputs[0]
        for j in member:
            out[j] = (st, tiles[0])
        tiles[0] += 1
    return out


def smallest(pm):  # type: ignore[no-untyped-def]
    """The plan with the smallest arena (patching at its best --max-ram), least MACs among those; `pm` itself
    when no patch plan is smaller than the default one."""
    cands = candidates(pm)
    if not cands:
        return pm
    best = min_arena(cands)
    return apply(pm, best) if best < pm.arena_size else pm
