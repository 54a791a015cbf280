"""Board profiles for `mpyml fit`: what a model may use on each board, with the source of every figure.

Owns: the table (`BOARDS`) and its Markdown rendering (`boards_markdown`, the README's "Board profiles"
section, kept identical by tests/test_fit.py). Each usable budget is the board's figure minus what mpyml
itself takes there:

- RAM: the MicroPython GC heap free after boot, minus the device package and engine once imported
  (measured on this project's QEMU Cortex-M4 MicroPython 1.23 port, `mpyml board start --cpu m4`:
  `import mpyml` 9,600 B; the armv7emsp C native module 51,712 B, i.e. its .mpy size, because bare-metal
  ports load native code into the GC heap; `import mpyml` + the viper engine 44,368 B), minus
  `APP_RESERVE` for the application (frame buffer, pre-processing, the REPL). What the model takes
  is counted by fit.py: arena (inputs and outputs live in it) + engine context, + the .mpk itself when
  the board loads it into RAM (`model_in_ram`: no ROMFS partition, so `mpyml.load(path)` reads the file).
- flash: the filesystem the model is written to, minus the files `mpyml deploy` puts there first.
- MACs: MACs one inference may take to finish in `latency_ms` at the board's clock, from the engine's
  instructions per MAC (this project's QEMU instruction counts, README "Benchmark"; a lower bound on
  cycles: flash wait states and load latency are not in it).
"""

from __future__ import annotations

from dataclasses import dataclass

APP_RESERVE = 8 * 1024
MPYML_PACKAGE_RAM = 9_600              # import mpyml, QEMU Cortex-M4 port (MicroPython 1.23)
C_ENGINE_M4_RAM = 51_712               # import mpyml_engine (armv7emsp .mpy 51,499 B) on the same port
VIPER_ENGINE_M4_RAM = 44_368 - 9_600   # `from mpyml import viper_engine` on the same port, package excluded
_MEASURED = "measured on the QEMU Cortex-M4 MicroPython 1.23 port (`mpyml board start --cpu m4`)"


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


# Files `mpyml deploy` copies before any model: the compiled device package + one engine.
# `mpyml deploy` to the QEMU Cortex-M4 board copied 166.4 KiB: the armv7emsp native module 51,499 B, the viper
# engine 66,486 B, so 52.4 KB of package. With one engine: + the native module (49-63 KB) or the xtensawin
# viper engine (77,436 B).
_DEPLOY_C = 116 * 1024
_DEPLOY_VIPER = 128 * 1024

BOARDS: dict[str, Board] = {b.name: b for b in (
    Board("esp32", "ESP32 (no PSRAM, e.g. ESP32-DevKitC, ESP32_GENERIC)", "xtensawin", "viper",
          110 * 1024, "MicroPython docs (esp32 quickref, \"Controlling the Python heap size\"): the heap is the "
          "largest free block, around 100 KB without SPIRAM; ~110 KB gc.mem_free() after boot on v1.2x "
          "(this README, ESP32-CAM section)",
          VIPER_ENGINE_M4_RAM * 73 // 62, f"viper engine {_MEASURED}, scaled by the xtensawin/armv7m .mpy "
          "sizes (73 KB / 62 KB)",
          2 * 1024 * 1024, "ESP32_GENERIC partitions.csv: 2 MiB vfs partition (4 MB flash)",
          _DEPLOY_VIPER, True, 240, 50.0,
          "240 MHz; viper engine ~50 instructions/MAC: the C engine's 3.8 (Cortex-M4 DSP) x the viper/C time "
          "ratio 7-14 (README benchmark, x64) - an estimate, no ESP32 emulator here"),
    Board("esp32-cam", "ESP32-CAM (AI-Thinker, 4 MB PSRAM)", "xtensawin", "viper",
          4 * 1024 * 1024 - 256 * 1024, "MicroPython docs: with SPIRAM the heap is the whole SPIRAM, typically "
          "4 MB; 256 KB left for the camera's frame buffers (QVGA RGB565 is 150 KB, README ESP32-CAM)",
          VIPER_ENGINE_M4_RAM * 73 // 62, f"viper engine {_MEASURED}, scaled by .mpy size (73 KB / 62 KB)",
          2 * 1024 * 1024, "ESP32_GENERIC-SPIRAM partitions.csv: 2 MiB vfs partition (4 MB flash)",
          _DEPLOY_VIPER, True, 240, 60.0,
          "240 MHz; viper ~50 instructions/MAC (as ESP32) + 20% for PSRAM reads through the cache (estimate)"),
    Board("rp2040", "Raspberry Pi Pico (RP2040)", "armv6m", "c",
          192 * 1024, "264 KB SRAM; the rp2 port's GC heap is ~192 KB after stack, BSS and pystack "
          "(gc.mem_free() after boot, v1.2x)",
          63 * 1024, "the armv6m native module (63 KB .mpy), loaded into the heap as on the Cortex-M4 port "
          f"({_MEASURED}: heap growth = .mpy size)",
          1408 * 1024, "RPI_PICO: 2 MB flash, 1408 KiB filesystem (MICROPY_HW_FLASH_STORAGE_BYTES)",
          _DEPLOY_C, True, 125, 11.0,
          "125 MHz; Cortex-M0 portable kernels 9-11 instructions/MAC (QEMU counts, README benchmark)"),
    Board("stm32f4", "STM32F405 (pyboard v1.1, PYBV11), mpyml built into the firmware", "armv7emsp", "c",
          100 * 1024, "ports/stm32/boards/stm32f405.ld: 128 KB RAM - 16 KB stack = 112 KB for bss + heap; "
          "~12 KB bss (estimate)",
          0, "the engine as a firmware user C module (native_modules/usermod) with the package frozen: code in "
          "flash, no heap for it (the 112 KB filesystem cannot hold the 116 KB of .mpy files)",
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
          C_ENGINE_M4_RAM, f"armv7emsp native module, {_MEASURED}",
          256 * 1024, "nrf52840_1M_256k.ld + boards/memory.ld: 1 MB flash; filesystem 64 KB default, "
          "256 KB on boards that set _fs_size (estimate: choose --flash for yours)",
          _DEPLOY_C, True, 64, 3.9,
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
