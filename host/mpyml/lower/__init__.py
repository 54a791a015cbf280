"""Lowerings of TFLite ops to engine ops, one module per op family (the core eight live in packer.py).

Each family module registers its handlers with `@lowering("TFLITE_OP", ...)`; a handler is
`fn(b: packer._Builder, op: Operator, where: str) -> None` and emits engine ops with `b.emit(...)`,
creating tensors with `b.tensor(...)`, `b.const(...)` and `b.scratch(...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LOWERINGS: dict[str, Callable[[Any, Any, str], None]] = {}


def lowering(*names: str) -> Callable[[Callable[[Any, Any, str], None]], Callable[[Any, Any, str], None]]:
    def deco(fn: Callable[[Any, Any, str], None]) -> Callable[[Any, Any, str], None]:
        for n in names:
            if n in LOWERINGS:
                raise AssertionError(f"two lowerings for {n}")
            LOWERINGS[n] = fn
        return fn
    return deco


def _load_families() -> None:
    import importlib
    import pkgutil
    for m in pkgutil.iter_modules(__path__):
        if not m.name.startswith("_"):
            importlib.import_module(f"{__name__}.{m.name}")


_load_families()
