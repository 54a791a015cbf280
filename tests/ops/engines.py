"""Shared by the op-family tests: run one packed model on the C engine through the host library."""

from __future__ import annotations

import numpy as np

from mpyml.hostlib import HostModel
from mpyml.mpk import MpkFile


def host_run(mpk: bytes, inputs: list[np.ndarray], garbage: bool = False) -> tuple[list[bytes], bytes]:
    """C engine (host library): raw output bytes and the initial arena it ran on (zeros, or with garbage=True
    random bytes, so a kernel that reads what it did not write shows)."""
    hm = HostModel(mpk)
    if garbage:
        hm.arena[:] = np.frombuffer(np.random.default_rng(len(mpk)).bytes(hm.arena.size), np.uint8)
    else:
        hm.arena[:] = 0
    for t, x in zip(hm.inputs, inputs, strict=True):
        raw = np.ascontiguousarray(x).view(np.uint8).reshape(-1)
        assert raw.size == t.nbytes
        hm.arena[t.offset:t.offset + t.nbytes] = raw
    init = hm.arena.tobytes()
    assert hm.invoke_status() == 0
    return [hm.arena[t.offset:t.offset + t.nbytes].tobytes() for t in hm.outputs], init


def outputs_of(mpk: bytes, arena: bytes) -> list[bytes]:
    """The output tensors' bytes of an arena after invoke."""
    return [arena[t.offset:t.offset + t.nbytes] for t in MpkFile(mpk).output_tensors()]
