"""`mpyml flash-firmware`: write MicroPython firmware to an Espressif board with esptool.

    mpyml flash-firmware --port /dev/ttyUSB0 ESP32_GENERIC-SPIRAM-20250415-v1.25.0.bin

MicroPython's ESP32-family .bin files are merged images (bootloader + partition table + app)
written at the chip's bootloader offset: 0x1000 on ESP32 and ESP32-S2, 0x0 on ESP32-S3, -C2, -C3,
-C6, -H2 and ESP8266, 0x2000 on ESP32-C5 and ESP32-P4. Getting it wrong bricks nothing but the
board will not boot, so the offset comes from this table, and the chip from --chip, else from
the image header (ESP32-family images name their chip), else from the board itself (esptool's
chip detection over the serial port). --erase (default) wipes the whole flash first, the
filesystem included: use --no-erase to upgrade MicroPython and keep the files.
--dry-run prints the esptool command lines.
"""

from __future__ import annotations

import argparse
import shlex
import struct
import subprocess
import sys
from pathlib import Path

from ._cli_util import add_subcommand, module_main

# Offset of MicroPython's firmware .bin per chip (micropython.org/download, "Installation instructions").
FLASH_OFFSETS = {
    "esp8266": 0x0,
    "esp32": 0x1000,
    "esp32s2": 0x1000,
    "esp32s3": 0x0,
    "esp32c2": 0x0,
    "esp32c3": 0x0,
    "esp32c6": 0x0,
    "esp32c61": 0x0,
    "esp32h2": 0x0,
    "esp32c5": 0x2000,
    "esp32p4": 0x2000,
}
CHIPS = tuple(FLASH_OFFSETS)
# Chip id in the extended header of ESP32-family images (byte 12, little-endian u16).
IMAGE_CHIP_IDS = {0: "esp32", 2: "esp32s2", 5: "esp32c3", 9: "esp32s3", 12: "esp32c2", 13: "esp32c6",
                  16: "esp32h2", 18: "esp32p4", 20: "esp32c61", 23: "esp32c5"}
IMAGE_MAGIC = 0xE9
DEFAULT_BAUD = 460800


class FlashError(RuntimeError):
    pass


def image_chip(data: bytes) -> str | None:
    """The chip an ESP32-family firmware image is built for, or None (ESP8266 or unknown)."""
    if len(data) < 24 or data[0] != IMAGE_MAGIC:
        return None
    # ESP32-family images carry a 16-byte extended header after the 8-byte one; its first byte is the
    # WP pin (0xEE = disabled) and bytes 19..22 are reserved zeros. ESP8266 images have a segment there.
    if data[8] != 0xEE or any(data[19:23]):
        return None
    (chip_id,) = struct.unpack_from("<H", data, 12)
    return IMAGE_CHIP_IDS.get(chip_id)


def image_start(data: bytes) -> int:
    """Where the image begins in the file: 0, or 0x1000 / 0x2000 for a whole-flash dump whose start is
    erased flash (0xff), as some merged .bin files are made (they are then written at 0x0)."""
    for start in (0x1000, 0x2000):
        if len(data) > start and data[0] == 0xFF and data[start] == IMAGE_MAGIC \
                and data[:start].count(0xFF) == start:
            return start
    return 0


def write_offset(data: bytes, chip: str) -> int:
    """Flash address for this file on this chip."""
    off = FLASH_OFFSETS[chip] - image_start(data)
    if off < 0:
        raise FlashError(f"the file holds an image at 0x{image_start(data):x}, but {chip} boots from "
                         f"0x{FLASH_OFFSETS[chip]:x}: wrong firmware for this chip?")
    return off


def check_image(data: bytes, chip: str) -> list[str]:
    """Problems with flashing this image on this chip (empty: fine)."""
    problems = []
    if not data:
        return ["the firmware file is empty"]
    data = data[image_start(data):]
    if data[0] != IMAGE_MAGIC:
        problems.append(f"not an ESP firmware image (first byte 0x{data[0]:02x}, expected 0xe9): is it a "
                        "MicroPython .bin for an Espressif chip?")
    found = image_chip(data)
    if found and found != chip:
        problems.append(f"the image is built for {found}, not {chip}")
    if chip == "esp8266" and found:
        problems.append(f"the image is an ESP32-family image ({found}), not an ESP8266 one")
    return problems


def esptool_commands(port: str, firmware: str, chip: str, baud: int = DEFAULT_BAUD, erase: bool = True,
                     before: str | None = None, offset: int | None = None) -> list[list[str]]:
    """esptool argument lists (without the program) that erase (optionally) and write the firmware
    (at the chip's offset, or `offset`)."""
    if chip not in FLASH_OFFSETS:
        raise FlashError(f"unknown chip {chip!r}; one of {', '.join(CHIPS)}")
    common = ["--chip", chip, "--port", port, "--baud", str(baud)]
    if before:
        common += ["--before", before]
    cmds = []
    if erase:
        cmds.append([*common, "erase-flash"])
    write = [*common, "write-flash"]
    if chip == "esp8266":
        write += ["--flash-size", "detect"]
    write += [f"0x{FLASH_OFFSETS[chip] if offset is None else offset:x}", firmware]
    cmds.append(write)
    return cmds


def display(argv: list[str]) -> str:
    return "esptool " + shlex.join(argv)


def detect_chip(port: str, baud: int = 115200) -> str:
    """Ask the board which chip it is (resets it into its ROM bootloader)."""
    from esptool.cmds import detect_chip as _detect

    try:
        esp = _detect(port, baud)
    except Exception as e:  # esptool raises FatalError, SerialException, OSError...
        raise FlashError(f"could not detect the chip on {port}: {e} (hold BOOT/IO0 low while resetting "
                         "to enter the bootloader, or give --chip)") from None
    try:
        name = esp.CHIP_NAME
    finally:
        try:
            esp._port.close()
        except Exception:
            pass
    return name.lower().replace("-", "")


def resolve_chip(chip: str, data: bytes, port: str, dry_run: bool, baud: int) -> tuple[str, str]:
    """(chip, how it was determined)."""
    if chip != "auto":
        return chip, "--chip"
    found = image_chip(data[image_start(data):])
    if found:
        return found, "the firmware image header"
    if dry_run:
        raise FlashError("--chip auto: the firmware image does not name its chip (ESP8266 images don't) and a "
                         "dry run does not touch the board: give --chip")
    detected = detect_chip(port, min(baud, 115200))
    if detected not in FLASH_OFFSETS:
        raise FlashError(f"detected {detected}: no MicroPython offset known for it; give --chip and check")
    return detected, f"the board on {port}"


def flash(args: argparse.Namespace) -> int:
    fw = Path(args.firmware)
    if not fw.is_file():
        raise FlashError(f"{fw}: no such file")
    data = fw.read_bytes()
    chip, how = resolve_chip(args.chip, data, args.port, args.dry_run, args.baud)
    problems = check_image(data, chip)
    if problems and not args.force:
        raise FlashError(f"{fw}: " + "; ".join(problems) + " (--force to flash anyway)")
    offset = write_offset(data, chip)
    cmds = esptool_commands(args.port, str(fw), chip, args.baud, args.erase, args.before, offset)
    print(f"chip {chip} (from {how}); firmware {fw.name} ({len(data):,} B) at 0x{offset:x}"
          + (f" (a whole-flash image: its boot image starts at 0x{image_start(data):x})" if image_start(data)
             else "")
          + ("; the whole flash is erased first (filesystem included)" if args.erase else ""))
    for p in problems:
        print(f"warning: {p}")
    for c in cmds:
        print(("would run: " if args.dry_run else "running: ") + display(c), flush=True)
        if args.dry_run:
            continue
        r = subprocess.run([sys.executable, "-m", "esptool", *c])
        if r.returncode != 0:
            raise FlashError(f"esptool failed (exit {r.returncode}): {display(c)}")
    if not args.dry_run:
        print(f"done: MicroPython is on the board; next: mpremote connect {args.port} repl, or mpyml deploy "
              f"--port {args.port}")
    return 0


# ------------------------------------------------------------------------------ CLI
def cmd_flash(args: argparse.Namespace) -> int:
    try:
        return flash(args)
    except FlashError as e:
        print(f"mpyml flash-firmware: {e}", file=sys.stderr)
        return 2


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("firmware", metavar="FIRMWARE.bin", help="MicroPython firmware image (micropython.org/download)")
    p.add_argument("--port", "-p", required=True, help="serial port of the board (/dev/ttyUSB0, COM3)")
    p.add_argument("--chip", default="auto", choices=("auto", *CHIPS),
                   help="target chip (default auto: from the image header, else asked of the board)")
    p.add_argument("--baud", "-b", type=int, default=DEFAULT_BAUD, help=f"baud rate (default {DEFAULT_BAUD}; "
                   "try 115200 on flaky USB-serial adapters such as the ESP32-CAM-MB)")
    p.add_argument("--erase", action=argparse.BooleanOptionalAction, default=True,
                   help="erase the whole flash first (default; --no-erase keeps the filesystem)")
    p.add_argument("--before", choices=("default-reset", "usb-reset", "no-reset", "no-reset-no-sync"),
                   help="esptool reset before connecting (no-reset for boards without auto-reset wiring)")
    p.add_argument("--force", action="store_true", help="flash even if the image does not look right for the chip")
    p.add_argument("--dry-run", "-n", action="store_true", help="print the esptool command lines only")
    p.set_defaults(func=cmd_flash)


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    add_subcommand(sub, "flash-firmware", "write MicroPython firmware to an ESP32/ESP8266 board (esptool)",
                   __doc__, configure_parser)


def main(argv: list[str] | None = None) -> int:
    return module_main("mpyml.flash", __doc__, configure_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
