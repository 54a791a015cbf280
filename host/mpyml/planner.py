"""Arena planner: assign every activation tensor an offset in one arena, computed once on the host.

Owns the memory plan. Lifetimes run from the op that produces a tensor (0 for model inputs) to the
last op that reads it (past the end for model outputs). A RESHAPE's output shares its input's
buffer (zero-copy). STATE tensors (RNN state) live across invokes and are never shared.
Buffers are placed greedily, largest first, at the lowest aligned offset that
does not overlap a live buffer — TFLM's GreedyMemoryPlanner strategy, plus the RESHAPE aliasing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

RESHAPE = 7
S_ARENA = 0
STATE = 1       # spec.TENSOR_FLAGS["STATE"]


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


def plan_arena(tensors: Sequence[_Tensor], ops: Sequence[_Op], inputs: Sequence[int], outputs: Sequence[int],
               align: int = 16) -> int:
    """Set `offset` of every arena tensor; return the arena size (a multiple of `align`)."""
    parent = list(range(len(tensors)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for op in ops:
        if op.opcode == RESHAPE:
            a, b = find(op.inputs[0]), find(op.outputs[0])
            if a != b and tensors[op.inputs[0]].storage == S_ARENA:
                parent[b] = a

    first: dict[int, int] = {}
    last: dict[int, int] = {}
    size: dict[int, int] = {}

    def touch(t: int, step: int) -> None:
        if tensors[t].storage != S_ARENA:
            return
        r = find(t)
        first[r] = min(first.get(r, step), step)
        last[r] = max(last.get(r, step), step)
        size[r] = max(size.get(r, 0), tensors[t].nbytes)

    for t in inputs:
        touch(t, 0)
    for step, op in enumerate(ops):
        for t in op.inputs:
            if t != 0xFFFF:
                touch(t, step)
        for t in op.outputs:
            touch(t, step)
    for t in outputs:
        touch(t, len(ops))
    # STATE tensors (RNN state) persist across invokes: alive from before the first op to past the last
    for i, t in enumerate(tensors):
        if getattr(t, "flags", 0) & STATE and t.storage == S_ARENA:
            touch(i, -1)
            touch(i, len(ops) + 1)

    order = sorted(size, key=lambda r: (-size[r], first[r]))
    placed: list[tuple[int, int, int, int]] = []   # (offset, end, first, last)
    offset_of: dict[int, int] = {}
    for r in order:
        live = sorted((o, e) for o, e, f, l_ in placed if not (l_ < first[r] or last[r] < f))
        cand = 0
        for o, e in live:
            if cand + size[r] <= o:
                break
            cand = max(cand, _align(e, align))
        offset_of[r] = cand
        placed.append((cand, cand + size[r], first[r], last[r]))

    for i, t in enumerate(tensors):
        if t.storage == S_ARENA:
            t.offset = offset_of[find(i)] if find(i) in offset_of else 0
    total = max((e for _, e, _, _ in placed), default=0)
    return _align(max(total, align), align)
