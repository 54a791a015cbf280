"""Board profiles for `mpyml fit`: what a model may use on each board, with the source of every figure.

Owns: the table (`BOARDS`) and its Markdown rendering (`boards_markdown`, the README's "Board profiles"
section, kept identical by tests/test_fit.py). Each usable budget is the board's figure minus what mpyml
itself takes there:

- RAM: the MicroPython GC heap free after boot, minus the device package and engine once imported
  (measured on this project's QEMU MicroPython 1.23 ports, `mpyml board start --cpu m4|m0`, by
  tools/measure_engine_ram.py, which prints these constants: `import mpyml` 9,792 B; `import mpyml_engine`
  56,464 B for the armv7emsp native module (.mpy 56,397 B) and 60,128 B for armv6m (.mpy 60,058 B), i.e.
  its .mpy size, because bare-metal ports load native code into the GC heap; the viper engine 38,304 B +
  32,736 B for mpyml._spec, which its validation imports for every model, + up to 58,944 B more for the
  op families a model's ops import), minus `APP_RESERVE` for the application (frame buffer,
  pre-processing, the REPL). What the model takes is counted by fit.py: arena (inputs and outputs live
  in it) + engine context, + the .mpk itself when the board loads it into RAM (`model_in_ram`: no ROMFS
  partition, so `mpyml.load(path)` reads the file).
- flash: the filesystem the model is written to, minus the files `mpyml deploy` puts there first.
- MACs: MACs one inference may take to finish in `latency_ms` at the board's clock, from the engine's
  instructions per MAC (this project's QEMU instruction counts, README "Benchmark"; a lower bound on
  cycles: flash wait states and load latency are not in it).
"""

from __future__ import annotations

from dataclasses import dataclass

APP_RESERVE = 8 * 1024
# measured by tools/measure_engine_ram.py (gc.mem_free() before/after each import, fresh interpreter each)
MPYML_PACKAGE_RAM = 9_792              # import mpyml, QEMU Cortex-M4 port (MicroPython 1.23); the same on M0
C_ENGINE_M4_RAM = 56_464               # import mpyml_engine (armv7emsp .mpy 56,397 B) on the same port
C_ENGINE_M0_RAM = 60_128               # import mpyml_engine (armv6m .mpy 60,058 B), QEMU Cortex-M0 port
VIPER_CORE_M4_RAM = 38_304             # `from mpyml import viper_engine` after `import mpyml`, Cortex-M4 port
# `from mpyml import _spec`: viper's validation imports it per model and releases it after prepare, but the
# load's peak holds it next to the ctx, and the arena allocated next may not get its blocks back in one piece
SPEC_RAM = 32_736
VIPER_ENGINE_M4_RAM = VIPER_CORE_M4_RAM + SPEC_RAM
VIPER_FAMILIES_M4_RAM = 58_944         # the other op families (mpyml.viper_<family>, imported per op used)
# viper_engine.mpy: xtensawin 39,094 B / armv7emsp 32,998 B (build/viper/<arch>/mpyml/); _spec is bytecode
VIPER_ENGINE_XTENSA_RAM = VIPER_CORE_M4_RAM * 39_094 // 32_998 + SPEC_RAM
_MEASURED = "measured on the QEMU Cortex-M4 MicroPython 1.23 port (`mpyml board start --cpu m4`)"
_MEASURED_M0 = "measured on the QEMU Cortex-M0 MicroPython 1.23 port (`mpyml board start --cpu m0`)"
_VIPER_SCALED = (f"viper engine 38,304 B + mpyml._spec 32,736 B (imported to validate every model), {_MEASURED}, "
                 "the engine part scaled by the xtensawin/armv7emsp viper_engine.mpy sizes (39,094 B / 32,998 B); "
                 "a model's ops may import up to 58,944 B more of op families (M4 figure)")


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    arch: str
    engine: str                  # "c" (native module) or "viper"
    heap: int                    # MicroPython GC heap after boot, bytes
    heap_source: str
    engine_ram: int              # the engine's share of the heap once imported
    engine_ram_source: str
    fs: int                      # filesystem bytes for the model and mpyml's files
    fs_source: str
    deploy_files: int            # bytes `mpyml deploy` writes before the model (package + engine)
    model_in_ram: bool           # True: the .mpk is read into the heap (no ROMFS on the stock firmware)
    mhz: int
    instr_per_mac: float
    speed_source: str
    latency_ms: int = 1000

    @property
    def ram_budget(self) -> int:
        return self.heap - MPYML_PACKAGE_RAM - self.engine_ram - APP_RESERVE

    @property
    def flash_budget(self) -> int:
        return self.fs - self.deploy_files

    def macs_budget(self, latency_ms: int | None = None) -> int:
        ms = self.latency_ms if latency_ms is None else latency_ms
        return int(self.mhz * 1e6 * ms / 1000 / self.instr_per_mac)


# Files `mpyml deploy` copies before any model: the device package compiled for the arch (mpy-cross -march;
# it includes the viper modules) + the native module where there is one (tools/measure_engine_ram.py prints
# them; tests/test_fit.py checks them against deploy's own compile): armv6m 158,772 + 60,058 B, armv7emsp
# 146,699 + 56,397 B, xtensawin 162,963 B (viper modules 105,632 B of it, no native module).
DEPLOY_BYTES = {"armv6m": 158_772 + 60_058, "armv7emsp": 146_699 + 56_397, "xtensawin": 162_963}

BOARDS: dict[str, Board] = {b.name: b for b in (
    Board("esp32", "ESP32 (no PSRAM, e.g. ESP32-DevKitC, ESP32_GENERIC)", "xtensawin", "viper",
          110 * 1024, "MicroPython docs (esp32 quickref, \"Controlling the Python heap size\"): the heap is the "
          "largest free block, around 100 KB without SPIRAM; ~110 KB gc.mem_free() after boot on v1.2x "
          "(this README, ESP32-CAM section)",
          VIPER_ENGINE_XTENSA_RAM, _VIPER_SCALED,
          2 * 1024 * 1024, "ESP32_GENERIC partitions.csv: 2 MiB vfs partition (4 MB flash)",
          DEPLOY_BYTES["xtensawin"], True, 240, 50.0,
          "240 MHz; viper engine ~50 instructions/MAC: the C engine's 3.8 (Cortex-M4 DSP) x the viper/C time "
          "ratio 7-14 (README benchmark, x64) - an estimate, no ESP32 emulator here"),
    Board("esp32-cam", "ESP32-CAM (AI-Thinker, 4 MB PSRAM)", "xtensawin", "viper",
          4 * 1024 * 1024 - 256 * 1024, "MicroPython docs: with SPIRAM the heap is the whole SPIRAM, typically "
          "4 MB; 256 KB left for the camera's frame buffers (QVGA RGB565 is 150 KB, README ESP32-CAM)",
          VIPER_ENGINE_XTENSA_RAM, _VIPER_SCALED,
          2 * 1024 * 1024, "ESP32_GENERIC-SPIRAM partitions.csv: 2 MiB vfs partition (4 MB flash)",
          DEPLOY_BYTES["xtensawin"], True, 240, 60.0,
          "240 MHz; viper ~50 instructions/MAC (as ESP32) + 20% for PSRAM reads through the cache (estimate)"),
    Board("rp2040", "Raspberry Pi Pico (RP2040)", "armv6m", "c",
          192 * 1024, "264 KB SRAM; the rp2 port's GC heap is ~192 KB after stack, BSS and pystack "
          "(gc.mem_free() after boot, v1.2x)",
          C_ENGINE_M0_RAM, f"the armv6m native module (.mpy 60,058 B), {_MEASURED_M0}: its code is loaded "
          "into the heap",
          1408 * 1024, "RPI_PICO: 2 MB flash, 1408 KiB filesystem (MICROPY_HW_FLASH_STORAGE_BYTES)",
          DEPLOY_BYTES["armv6m"], True, 125, 11.0,
          "125 MHz; Cortex-M0 portable kernels 9-11 instructions/MAC (QEMU counts, README benchmark)"),
    Board("stm32f4", "STM32F405 (pyboard v1.1, PYBV11), mpyml built into the firmware", "armv7emsp", "c",
          100 * 1024, "ports/stm32/boards/stm32f405.ld: 128 KB RAM - 16 KB stack = 112 KB for bss + heap; "
          "~12 KB bss (estimate)",
          0, "the engine as a firmware user C module (native_modules/usermod) with the package frozen: code in "
          "flash, no heap for it (the 112 KB filesystem cannot hold the 198 KB of .mpy files)",
          112 * 1024, "stm32f405.ld: FLASH_FS 112 KB internal filesystem, all of it for the model",
          0, True, 168, 3.9,
          "168 MHz; Cortex-M4 DSP kernels 3.8-3.9 instructions/MAC (QEMU counts, README benchmark)"),
    Board("stm32h7", "STM32H743 (NUCLEO_H743ZI), mpyml built into the firmware", "armv7emdp", "c",
          480 * 1024, "ports/stm32/boards/stm32h743.ld: heap in the 512 KB AXI SRAM from .bss to the 16 KB "
          "stack (~16 KB bss, estimate)",
          0, "the engine as a firmware user C module with the package frozen (the 128 KB filesystem is for "
          "the model)",
          128 * 1024, "stm32h743.ld: FLASH_FS 128 KB internal filesystem",
          0, True, 400, 3.9,
          "400 MHz (480 on rev V); Cortex-M4 DSP kernel count used for M7 (same ISA, dual-issue: faster)"),
    Board("nrf52840", "nRF52840 (PCA10056 / nice!nano class)", "armv7emsp", "c",
          128 * 1024, "ports/nrf/boards/nrf52840_1M_256k.ld: 256 KB RAM, 8 KB stack, _minimum_heap_size 128K "
          "(the guaranteed heap; more without a SoftDevice)",
          C_ENGINE_M4_RAM, f"armv7emsp native module (.mpy 56,397 B), {_MEASURED}",
          256 * 1024, "nrf52840_1M_256k.ld + boards/memory.ld: 1 MB flash; filesystem 64 KB default, "
          "256 KB on boards that set _fs_size (estimate: choose --flash for yours)",
          DEPLOY_BYTES["armv7emsp"], True, 64, 3.9,
          "64 MHz Cortex-M4F; DSP kernels 3.8-3.9 instructions/MAC (QEMU counts, README benchmark)"),
)}


def boards_markdown() -> str:
    """The README table: budgets per board and where each figure comes from."""
    rows = ["| board | engine | RAM budget B | flash budget B | MACs / 1 s | heap: source | flash: source "
            "| speed: source |", "|---|---|---:|---:|---:|---|---|---|"]
    for b in BOARDS.values():
        rows.append(f"| `{b.name}`: {b.title} | {b.engine} ({b.arch}) | {b.ram_budget:,} | {b.flash_budget:,} | "
                    f"{b.macs_budget(1000):,} | {b.heap:,} B: {b.heap_source}; engine {b.engine_ram:,} B: "
                    f"{b.engine_ram_source} | {b.fs:,} B: {b.fs_source}; minus {b.deploy_files:,} B of "
                    f"mpyml files | {b.speed_source} |")
    return "\n".join(rows)
