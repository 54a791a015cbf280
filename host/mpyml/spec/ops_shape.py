"""Shape ops: op codes 25-40, check codes 40-49. Each op's C kernel and its *_check live in
native_modules/engine/ops/ (one file per op family), its viper kernel in device/mpyml/viper/, its lowering in
host/mpyml/lower/."""

from __future__ import annotations

from . import Op

OPS: list[Op] = []
