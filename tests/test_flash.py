"""`mpyml flash-firmware`: the esptool command lines built for each chip (no board needed)."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mpyml import flash

EXPECTED_OFFSETS = {"esp32": "0x1000", "esp32s2": "0x1000", "esp32s3": "0x0", "esp32c3": "0x0",
                    "esp32c2": "0x0", "esp32c6": "0x0", "esp32h2": "0x0", "esp8266": "0x0",
                    "esp32c5": "0x2000", "esp32p4": "0x2000"}


def esp_image(chip: str | None) -> bytes:
    """A minimal image header: ESP32-family extended header naming `chip`, or an ESP8266 one."""
    if chip is None or chip == "esp8266":
        return bytes([0xE9, 1, 0, 0x20]) + struct.pack("<I", 0x40100000) + struct.pack("<II", 0x40100000, 16) \
            + b"\0" * 64
    chip_id = {v: k for k, v in flash.IMAGE_CHIP_IDS.items()}[chip]
    ext = bytes([0xEE, 0, 0, 0]) + struct.pack("<H", chip_id) + bytes([0]) + b"\0" * 4 + b"\0" * 4 + bytes([1])
    return bytes([0xE9, 3, 2, 0x20]) + struct.pack("<I", 0x40080000) + ext + b"\0" * 64


def fw(tmp_path: Path, chip: str | None) -> Path:
    p = tmp_path / f"{chip or 'generic'}.bin"
    p.write_bytes(esp_image(chip))
    return p


@pytest.mark.parametrize("chip", sorted(EXPECTED_OFFSETS))
def test_commands_per_chip(chip: str) -> None:
    cmds = flash.esptool_commands("/dev/ttyUSB0", "fw.bin", chip, baud=460800, erase=True)
    common = ["--chip", chip, "--port", "/dev/ttyUSB0", "--baud", "460800"]
    assert cmds[0] == [*common, "erase-flash"]
    write = cmds[1]
    assert write[:len(common)] == common and write[len(common)] == "write-flash"
    assert write[-2:] == [EXPECTED_OFFSETS[chip], "fw.bin"]
    assert ("--flash-size" in write) == (chip == "esp8266")
    # without erase: only the write
    assert flash.esptool_commands("/dev/ttyUSB0", "fw.bin", chip, erase=False) == [
        [*common[:-1], str(flash.DEFAULT_BAUD), *write[len(common):]]]


def test_offsets_agree_with_esptool() -> None:
    from esptool.targets import CHIP_DEFS
    for chip, off in flash.FLASH_OFFSETS.items():
        assert off == CHIP_DEFS[chip].BOOTLOADER_FLASH_OFFSET, chip
        if chip != "esp8266":
            assert flash.IMAGE_CHIP_IDS[CHIP_DEFS[chip].IMAGE_CHIP_ID] == chip


def test_image_header_names_the_chip() -> None:
    for chip in ("esp32", "esp32s3", "esp32c3", "esp32s2"):
        assert flash.image_chip(esp_image(chip)) == chip
    assert flash.image_chip(esp_image("esp8266")) is None
    assert flash.image_chip(b"\x00" * 64) is None
    assert flash.check_image(esp_image("esp32"), "esp32") == []
    assert "built for esp32s3, not esp32" in flash.check_image(esp_image("esp32s3"), "esp32")[0]
    assert "not an ESP firmware image" in flash.check_image(b"PK\x03\x04" + b"\0" * 60, "esp32")[0]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mpyml.cli", "flash-firmware", *args], capture_output=True,
                          text=True, timeout=60)


def test_dry_run_prints_esptool_lines(tmp_path: Path) -> None:
    f = fw(tmp_path, "esp32")
    r = run_cli("--port", "/dev/ttyUSB0", str(f), "--dry-run")            # --chip auto: from the header
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("would run: ")]
    assert lines == [
        "would run: esptool --chip esp32 --port /dev/ttyUSB0 --baud 460800 erase-flash",
        f"would run: esptool --chip esp32 --port /dev/ttyUSB0 --baud 460800 write-flash 0x1000 {f}",
    ]
    assert "from the firmware image header" in r.stdout
    r = run_cli("--port", "COM3", str(fw(tmp_path, "esp32s3")), "--chip", "esp32s3", "--no-erase",
                "--baud", "115200", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert [ln for ln in r.stdout.splitlines() if ln.startswith("would run: ")] == [
        f"would run: esptool --chip esp32s3 --port COM3 --baud 115200 write-flash 0x0 {tmp_path / 'esp32s3.bin'}"]


def test_wrong_or_unknown_chip_is_refused(tmp_path: Path) -> None:
    r = run_cli("--port", "/dev/ttyUSB0", str(fw(tmp_path, "esp32s3")), "--chip", "esp32", "--dry-run")
    assert r.returncode == 2 and "built for esp32s3, not esp32" in r.stderr and "--force" in r.stderr
    r = run_cli("--port", "/dev/ttyUSB0", str(fw(tmp_path, "esp32s3")), "--chip", "esp32", "--dry-run", "--force")
    assert r.returncode == 0 and "0x1000" in r.stdout and "warning" in r.stdout
    # ESP8266 images don't name their chip: a dry run can't ask the board
    r = run_cli("--port", "/dev/ttyUSB0", str(fw(tmp_path, "esp8266")), "--dry-run")
    assert r.returncode == 2 and "give --chip" in r.stderr
    r = run_cli("--port", "/dev/ttyUSB0", str(fw(tmp_path, "esp8266")), "--chip", "esp8266", "--dry-run")
    assert r.returncode == 0 and "write-flash --flash-size detect 0x0" in r.stdout
    r = run_cli("--port", "/dev/ttyUSB0", str(tmp_path / "missing.bin"), "--chip", "esp32", "--dry-run")
    assert r.returncode == 2 and "no such file" in r.stderr


def test_auto_detection_without_a_board_fails_clearly(tmp_path: Path) -> None:
    # no serial port here: esptool's detection fails and the message says what to do
    r = run_cli("--port", str(tmp_path / "ttyUSB9"), str(fw(tmp_path, "esp8266")))
    assert r.returncode == 2
    assert "could not detect the chip" in r.stderr and "--chip" in r.stderr


def test_whole_flash_image_is_written_at_zero(tmp_path: Path) -> None:
    f = tmp_path / "merged.bin"
    f.write_bytes(b"\xff" * 0x1000 + esp_image("esp32"))
    assert flash.image_start(f.read_bytes()) == 0x1000 and flash.write_offset(f.read_bytes(), "esp32") == 0
    r = run_cli("--port", "/dev/ttyUSB0", str(f), "--dry-run", "--no-erase")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == f"would run: esptool --chip esp32 --port /dev/ttyUSB0 --baud 460800 " \
        f"write-flash 0x0 {f}"
    # the same layout on a chip that boots from 0x0 cannot be right
    with pytest.raises(flash.FlashError, match="boots from 0x0"):
        flash.write_offset(f.read_bytes(), "esp32s3")
