"""Arena planner: assign every activation tensor an offset in one arena, computed once on the host.

Owns the memory plan. Lifetimes run from the op that produces a tensor (0 for model inputs) to the
last op that reads it (past the end for model outputs). A RESHAPE's output shares its input's
buffer (zero-copy). STATE tensors (RNN state) live across invokes and are never shared.

Placement: a buffer goes at the lowest aligned offset that does not overlap a buffer whose lifetime
intersects its own (first fit), buffers taken in some order. TFLM's GreedyMemoryPlanner takes them
largest first; this planner tries several orders (largest first, first use, longest lifetime,
size x lifetime, ...) and then a small deterministic local search over the order (bounded by a
count of trials, not by time, so a pack is reproducible), and keeps the smallest arena. TFLM's
largest-first plan is always one of the candidates, so the arena is never larger than it. The search
stops early when a plan reaches the lower bound (the largest sum of buffers live at one op).

In-place ops: an op whose spec has `in_place_ok` (elementwise kernels that read element i before
writing element i) may write its output over an input of the same byte size, type and shape that
dies at this op. The planner tries plans with those aliases too and keeps one only when it is
strictly smaller; the ops it applies to get `in_place = True` (the packer writes the op record's
IN_PLACE flag, which is what lets the loader accept that exact overlap).

In-place conv variants (spec/ops_inplace.py): a CONV_2D / DEPTHWISE_CONV_2D (depth multiplier 1) whose input dies
at it and has the output's byte count may become CONV_2D_INPLACE / DEPTHWISE_CONV_2D_INPLACE: output aliased onto
the input, plus a scratch buffer live during that op only (depthwise: IH*IW + KH*KW bytes; conv: a window of
the input rows an output row reads or destroys while later rows still read them, the same schedule the loader
replays). Only when the caller passes `new_scratch` (the packer does); the depthwise variant runs channel by
channel and is slower than the normal kernel, so it is considered only with `slow_in_place` (the packer's
`--max-ram` path when the default plan does not fit). The planner tries all of them at once,
then drops each one whose removal does not make the arena larger (fixed orders only), and keeps the result only
if the arena is strictly smaller than the best plan without them; the chosen ops are rewritten (opcode, scratch
operand, `rows` param).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Protocol

RESHAPE = 7
CONV_2D = 1
DEPTHWISE_CONV_2D = 2
S_ARENA = 0
STATE = 1       # spec.TENSOR_FLAGS["STATE"]
NO_TENSOR = 0xFFFF
SEARCH_TRIALS = 300        # local-search order perturbations per candidate set (deterministic)
SEARCH_MAX_BUFFERS = 400   # above this many buffers only the fixed orders are tried (keeps packing fast)
SEARCH_WORK = 4_000_000    # trials x buffers^2 budget of the local search


class _Tensor(Protocol):
    storage: int
    offset: int

    @property
    def nbytes(self) -> int: ...


class _Op(Protocol):
    opcode: int
    inputs: list[int]
    outputs: list[int]


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _in_place_opcodes() -> frozenset[int]:
    from . import spec
    return frozenset(o.code for o in spec.OPS if getattr(o, "in_place_ok", False))


class _Groups:
    """Tensors that share one buffer (union-find) and each buffer's lifetime and size."""

    def __init__(self, tensors: Sequence[_Tensor], ops: Sequence[_Op], inputs: Sequence[int],
                 outputs: Sequence[int]) -> None:
        self.tensors, self.ops, self.inputs, self.outputs = tensors, ops, inputs, outputs
        self.parent = list(range(len(tensors)))
        for op in ops:
            if op.opcode == RESHAPE:
                a, b = self.find(op.inputs[0]), self.find(op.outputs[0])
                if a != b and tensors[op.inputs[0]].storage == S_ARENA:
                    self.parent[b] = a
        self.in_place_ops: list[int] = []
        self.conv_ops: dict[int, tuple[int, int, int]] = {}   # step -> (variant opcode, scratch bytes, rows)

    def find(self, i: int) -> int:
        p = self.parent
        while p[i] != i:
            p[i] = p[p[i]]
            i = p[i]
        return i

    def copy(self) -> _Groups:
        g = _Groups.__new__(_Groups)
        g.tensors, g.ops, g.inputs, g.outputs = self.tensors, self.ops, self.inputs, self.outputs
        g.parent = list(self.parent)
        g.in_place_ops = list(self.in_place_ops)
        g.conv_ops = dict(self.conv_ops)
        return g

    def lifetimes(self) -> tuple[dict[int, int], dict[int, int], dict[int, int]]:
        """(first, last, size) per buffer root."""
        tensors = self.tensors
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        size: dict[int, int] = {}

        def touch(t: int, step: int) -> None:
            if tensors[t].storage != S_ARENA:
                return
            r = self.find(t)
            first[r] = min(first.get(r, step), step)
            last[r] = max(last.get(r, step), step)
            size[r] = max(size.get(r, 0), tensors[t].nbytes)

        for t in self.inputs:
            touch(t, 0)
        for step, op in enumerate(self.ops):
            for t in op.inputs:
                if t != NO_TENSOR:
                    touch(t, step)
            for t in op.outputs:
                touch(t, step)
        for t in self.outputs:
            touch(t, len(self.ops))
        # STATE tensors (RNN state) persist across invokes: alive from before the first op to past the last
        for i, t in enumerate(tensors):
            if getattr(t, "flags", 0) & STATE and t.storage == S_ARENA:
                touch(i, -1)
                touch(i, len(self.ops) + 1)
        for step, (_, nbytes, _) in self.conv_ops.items():     # in-place conv scratch: live at its op only
            key = len(tensors) + step
            first[key], last[key], size[key] = step, step, nbytes
        return first, last, size

    def add_in_place(self, opcodes: frozenset[int]) -> bool:
        """Alias the output of every in-place-capable op onto an input that dies there. True if any."""
        tensors = self.tensors
        pinned = {self.find(t) for t in self.outputs if tensors[t].storage == S_ARENA}
        pinned |= {self.find(i) for i, t in enumerate(tensors) if getattr(t, "flags", 0) & STATE}
        changed = False
        for step, op in enumerate(self.ops):
            if op.opcode not in opcodes or len(op.outputs) != 1:
                continue
            first, last, _ = self.lifetimes()
            o = op.outputs[0]
            to = tensors[o]
            ro = self.find(o)
            if to.storage != S_ARENA or first.get(ro) != step:
                continue
            for i in op.inputs:
                if i == NO_TENSOR:
                    continue
                ti = tensors[i]
                ri = self.find(i)
                if (ti.storage != S_ARENA or ri == ro or ri in pinned or last.get(ri) != step
                        or ti.nbytes != to.nbytes or getattr(ti, "type", 0) != getattr(to, "type", 0)
                        or tuple(getattr(ti, "shape", ())) != tuple(getattr(to, "shape", ()))):
                    continue
                # (other operands in the input's buffer are the same tensor or RESHAPE aliases of it: same
                # offset and byte count, so they alias the output exactly too)
                if ro in pinned:
                    pinned.add(ri)
                self.parent[ro] = ri
                self.in_place_ops.append(step)
                changed = True
                break
        return changed

    def add_conv_in_place(self, variants: dict[int, tuple[int, int, int]]) -> bool:
        """Alias the output of each conv in `variants` (step -> (opcode, scratch bytes, rows)) onto its input
        when that input dies there. True if any."""
        tensors = self.tensors
        pinned = {self.find(t) for t in self.outputs if tensors[t].storage == S_ARENA}
        pinned |= {self.find(i) for i, t in enumerate(tensors) if getattr(t, "flags", 0) & STATE}
        changed = False
        for step, v in sorted(variants.items()):
            op = self.ops[step]
            first, last, _ = self.lifetimes()
            o, i = op.outputs[0], op.inputs[0]
            ro, ri = self.find(o), self.find(i)
            if first.get(ro) != step or last.get(ri) != step or ri == ro or ri in pinned:
                continue
            if ro in pinned:
                pinned.add(ri)
            self.parent[ro] = ri
            self.in_place_ops.append(step)
            self.conv_ops[step] = v
            changed = True
        return changed


def conv_window_rows(in_shape: Sequence[int], out_shape: Sequence[int], kh: int, stride_h: int, dil_h: int,
                     pad_h: int) -> int:
    """Input rows the CONV_2D_INPLACE window must hold: the loader's replay of the kernel's schedule
    (native_modules/engine/ops/conv2d_inplace.c, ip_window)."""
    _, ih, iw, ic = in_shape
    _, oh, ow, oc = out_shape
    ri, ro = iw * ic, ow * oc
    sv, need = 0, 1
    for oy in range(oh):
        lo = oy * stride_h - pad_h
        while sv < ih and sv * ri < (oy + 1) * ro:
            sv += 1
        a = max(lo, 0)
        b = max(a, min(ih, max(lo + (kh - 1) * dil_h + 1, sv)))
        need = max(need, b - a)
    return need


def _conv_variants(tensors: Sequence[_Tensor], ops: Sequence[_Op], slow: bool = False
                   ) -> dict[int, tuple[int, int, int]]:
    """step -> (in-place variant opcode, scratch bytes, rows) for every conv that could run in place. The
    depthwise variant (channel by channel, scalar) is slower than the normal kernel: only with `slow`."""
    from . import spec
    out: dict[int, tuple[int, int, int]] = {}
    for step, op in enumerate(ops):
        if op.opcode not in (CONV_2D, DEPTHWISE_CONV_2D) or len(op.outputs) != 1:
            continue
        x, y = tensors[op.inputs[0]], tensors[op.outputs[0]]
        xs, ys = tuple(getattr(x, "shape", ())), tuple(getattr(y, "shape", ()))
        if (x.storage != S_ARENA or y.storage != S_ARENA or len(xs) != 4 or len(ys) != 4
                or x.nbytes != y.nbytes or getattr(x, "flags", 0) & STATE):
            continue
        params = list(getattr(op, "params", ()))
        if len(params) != 11 or params[10] != 1:
            continue
        if op.opcode == DEPTHWISE_CONV_2D:
            if not slow:
                continue
            fs = tuple(getattr(tensors[op.inputs[1]], "shape", (1, 1, 1, 1)))
            code, scratch, rows = spec.OPCODES["DEPTHWISE_CONV_2D_INPLACE"], xs[1] * xs[2] + fs[1] * fs[2], 0
        else:
            kh = tuple(getattr(tensors[op.inputs[1]], "shape", (0, 1)))[1]
            rows = conv_window_rows(xs, ys, kh, params[1], params[3], params[5])
            code, scratch = spec.OPCODES["CONV_2D_INPLACE"], rows * xs[2] * xs[3]
            if rows > 65535:
                continue
        if scratch < y.nbytes:
            out[step] = (code, scratch, rows)
    return out


def _place(order: Sequence[int], size: dict[int, int], first: dict[int, int], last: dict[int, int],
           align: int, limit: int | None = None) -> tuple[int, dict[int, int]] | None:
    """First-fit placement in `order`; (arena end, offsets). None once the end exceeds `limit`."""
    placed: list[tuple[int, int, int, int]] = []   # (offset, end, first, last)
    offset_of: dict[int, int] = {}
    total = 0
    for r in order:
        f, l_, s = first[r], last[r], size[r]
        live = sorted((o, e) for o, e, pf, pl in placed if not (pl < f or l_ < pf))
        cand = 0
        for o, e in live:
            if cand + s <= o:
                break
            cand = max(cand, _align(e, align))
        offset_of[r] = cand
        placed.append((cand, cand + s, f, l_))
        total = max(total, cand + s)
        if limit is not None and _align(total, align) > limit:
            return None
    return total, offset_of


def _lower_bound(size: dict[int, int], first: dict[int, int], last: dict[int, int], align: int) -> int:
    if not size:
        return 0
    lo = min(first.values())
    hi = max(last.values())
    best = 0
    for step in range(lo, hi + 1):
        best = max(best, sum(_align(size[r], align) for r in size if first[r] <= step <= last[r]))
    # the last buffer placed need not be padded: the bound is at least the largest single buffer
    return max(best - align + 1, max(size.values()), 0)


def _best_plan(size: dict[int, int], first: dict[int, int], last: dict[int, int], align: int,
               trials: int, seed: int = 0) -> tuple[int, dict[int, int]]:
    roots = list(size)
    if not roots:
        return 0, {}
    bound = _align(max(_lower_bound(size, first, last, align), align), align)
    orders = [
        sorted(roots, key=lambda r: (-size[r], first[r])),                                # TFLM greedy: first
        sorted(roots, key=lambda r: (first[r], -size[r])),
        sorted(roots, key=lambda r: (-(last[r] - first[r]), -size[r], first[r])),
        sorted(roots, key=lambda r: (-size[r] * (last[r] - first[r] + 1), first[r])),
        sorted(roots, key=lambda r: (-last[r], -size[r])),
        sorted(roots, key=lambda r: (-_align(size[r], 4096), first[r], -size[r])),
    ]
    best: tuple[int, dict[int, int]] | None = None
    best_order = orders[0]
    for order in orders:
        res = _place(order, size, first, last, align, None if best is None else _align(best[0], align) - 1)
        if res is not None and (best is None or _align(res[0], align) < _align(best[0], align)):
            best, best_order = res, order
        if best is not None and _align(best[0], align) <= bound:
            return best
    assert best is not None
    if len(roots) > SEARCH_MAX_BUFFERS or len(roots) < 3:
        return best
    rng = random.Random(seed)
    order = list(best_order)
    n = len(order)
    trials = min(trials, max(20, SEARCH_WORK // (n * n)))     # a placement costs up to n^2: bound the work
    for _ in range(trials):
        cand = list(order)
        if rng.random() < 0.5:
            i, j = rng.randrange(n), rng.randrange(n)
            cand[i], cand[j] = cand[j], cand[i]
        else:           # move one buffer earlier in the order
            i = rng.randrange(1, n)
            j = rng.randrange(0, i)
            cand.insert(j, cand.pop(i))
        res = _place(cand, size, first, last, align, _align(best[0], align))
        if res is None:
            continue
        if _align(res[0], align) <= _align(best[0], align):     # accept sideways moves too
            if _align(res[0], align) < _align(best[0], align):
                best = res
            order = cand
            if _align(best[0], align) <= bound:
                break
    return best


def _with_convs(g: _Groups, variants: dict[int, tuple[int, int, int]], align: int) -> _Groups | None:
    """`g` plus the in-place conv variants that make its arena smaller (fixed orders only), or None."""
    cand = g.copy()
    if not cand.add_conv_in_place(variants):
        return None

    def arena(x: _Groups) -> int:
        first, last, size = x.lifetimes()
        return _align(_best_plan(size, first, last, align, 0)[0], align)

    best = arena(cand)
    for step in sorted(cand.conv_ops):
        keep = {s: v for s, v in cand.conv_ops.items() if s != step}
        trial = g.copy()
        trial.add_conv_in_place(keep)
        if set(trial.conv_ops) == set(keep) and arena(trial) <= best:
            cand = trial
    return cand if cand.conv_ops else None


def plan_arena(tensors: Sequence[_Tensor], ops: Sequence[_Op], inputs: Sequence[int], outputs: Sequence[int],
               align: int = 16, *, in_place: bool = True, search: bool = True,
               new_scratch: Callable[[int, int], int] | None = None, slow_in_place: bool = False) -> int:
    """Set `offset` of every arena tensor; return the arena size (a multiple of `align`).

    Ops whose output is planned in place over an input get `in_place = True` (others `False`). With
    `new_scratch(step, nbytes) -> tensor index` (an int8 arena tensor appended to `tensors`), convs may be
    rewritten into their in-place variants (see the module doc); `slow_in_place` also allows the ones slower
    than the normal kernel (in-place depthwise), which the packer asks for only to meet `--max-ram`."""
    base = _Groups(tensors, ops, inputs, outputs)
    cands = [base]
    opcodes = _in_place_opcodes() if in_place else frozenset()
    if opcodes:
        g = base.copy()
        if g.add_in_place(opcodes):
            cands.append(g)
    best_g = base
    best: tuple[int, dict[int, int]] | None = None
    for g in cands:
        first, last, size = g.lifetimes()
        res = _best_plan(size, first, last, align, SEARCH_TRIALS if search else 0)
        if best is None or _align(res[0], align) < _align(best[0], align):
            best, best_g = res, g
    assert best is not None
    variants = _conv_variants(tensors, ops, slow_in_place) if in_place and new_scratch is not None else {}
    for g in cands if variants else []:
        g2 = _with_convs(g, variants, align)
        if g2 is not None:
            first, last, size = g2.lifetimes()
            res = _best_plan(size, first, last, align, SEARCH_TRIALS if search else 0)
            if _align(res[0], align) < _align(best[0], align):
                best, best_g = res, g2
    total, offset_of = best
    n_tensors = len(tensors)
    for i, t in enumerate(tensors):
        if t.storage == S_ARENA:
            r = best_g.find(i)
            t.offset = offset_of.get(r, 0)
    if best_g.conv_ops:
        assert new_scratch is not None
        _rewrite_convs(tensors, ops, best_g.conv_ops, offset_of, n_tensors, new_scratch)
    ip = set(best_g.in_place_ops)
    for step, op in enumerate(ops):
        if hasattr(op, "in_place") or ip:
            op.in_place = step in ip        # type: ignore[attr-defined]
    return _align(max(total, align), align)


def _rewrite_convs(tensors: Sequence[_Tensor], ops: Sequence[_Op], conv_ops: dict[int, tuple[int, int, int]],
                   offset_of: dict[int, int], n_tensors: int, new_scratch: Callable[[int, int], int]) -> None:
    """Turn each planned conv into its in-place variant: the scratch tensor at its planned offset, the opcode, the
    `rows` param of CONV_2D_INPLACE (the packer's param ranges checked as for every op it emits)."""
    from . import spec
    for step, (code, nbytes, rows) in sorted(conv_ops.items()):
        op = ops[step]
        si = new_scratch(step, nbytes)
        tensors[si].offset = offset_of[n_tensors + step]
        params = list(op.params) + ([rows] if code == spec.OPCODES["CONV_2D_INPLACE"] else [])  # type: ignore[attr-defined]
        spec.check_params(spec.OP_NAMES[code], params)
        op.opcode = code
        op.inputs = list(op.inputs) + [si]
        op.params = params      # type: ignore[attr-defined]


def plan_arena_greedy(tensors: Sequence[_Tensor], ops: Sequence[_Op], inputs: Sequence[int],
                      outputs: Sequence[int], align: int = 16) -> int:
    """TFLM's GreedyMemoryPlanner (largest first) with the RESHAPE aliasing: the plan before this planner,
    kept as the reference the best-of plan is compared against."""
    g = _Groups(tensors, ops, inputs, outputs)
    first, last, size = g.lifetimes()
    res = _place(sorted(size, key=lambda r: (-size[r], first[r])), size, first, last, align)
    assert res is not None
    total, offset_of = res
    for i, t in enumerate(tensors):
        if t.storage == S_ARENA:
            t.offset = offset_of.get(g.find(i), 0)
    return _align(max(total, align), align)


def live_bytes_per_op(tensors: Sequence[_Tensor], ops: Sequence[_Op], inputs: Sequence[int],
                      outputs: Sequence[int]) -> list[int]:
    """Arena bytes live while each op runs: the union of the byte ranges of the arena tensors alive at
    that op (aliased tensors count once), from the tensors' planned offsets."""
    n = len(ops)
    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def touch(t: int, step: int) -> None:
        if t == NO_TENSOR or tensors[t].storage != S_ARENA:
            return
        first[t] = min(first.get(t, step), step)
        last[t] = max(last.get(t, step), step)

    for t in inputs:
        touch(t, 0)
    for step, op in enumerate(ops):
        for t in list(op.inputs) + list(op.outputs):
            touch(t, step)
    for t in outputs:
        touch(t, n)
    for i, t in enumerate(tensors):
        if getattr(t, "flags", 0) & STATE and t.storage == S_ARENA:
            touch(i, 0)
            touch(i, n)
    out = []
    for step in range(n):
        spans = sorted((tensors[t].offset, tensors[t].offset + tensors[t].nbytes)
                       for t in first if first[t] <= step <= last[t])
        total, end = 0, -1
        for o, e in spans:
            if e <= end:
                continue
            total += e - max(o, end) if o < end else e - o
            end = e
        out.append(total)
    return out
