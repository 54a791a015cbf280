"""Weights stay in flash: a model on a ROMFS partition is used in place.

The ROMFS image is built by host/mpyml/romfs.py with mpremote's romfs writer (files 16-byte aligned),
mounted on the MicroPython unix port with vfs.VfsRom (as MicroPython 1.25+ mounts a board's ROMFS
partition at /rom), and `mpyml.load('/rom/models/...')` must: hand the engine the file's read-only
memoryview (no copy of the weights), grow the heap at load by about the arena plus the engine's context
plus a small constant (far less than the weights), and give the same output as loading a copy of the
file into RAM. Both engines (C native module, viper). Runtime: about 2 s.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from mpyml import pack
from mpyml.mpk import MpkFile
from mpyml.romfs import RomfsError, build_image, parse_image
from mpyml.unix_port import run_micropython
from tflite_build import fully_connected_model

if TYPE_CHECKING:
    from virtual_board import VirtualBoard

pytest_plugins = ["virtual_board"]   # fixtures: virtual_board
SCRIPT = Path(__file__).parent / "device" / "romfs_load.py"
SLACK = 2048            # bytes beyond arena + ctx the load may allocate (Model, Tensor objects, memoryviews)


def _model() -> bytes:
    # 512 -> 160 fully connected: 80 KB of weights, 672 B of activations
    return pack(fully_connected_model(np.random.default_rng(3), in_shape=(1, 512), units=160))


def test_image_layout() -> None:
    mpk = _model()
    files = {"models/fc.mpk": mpk, "main.py": b"print(1)\n", "lib/a/b.txt": b"xyz"}
    img = build_image(files)
    where = parse_image(img)
    assert set(where) == set(files)
    for path, (off, n) in where.items():
        assert off % 16 == 0, f"{path} at {off}: not 16-byte aligned"
        assert img[off:off + n] == files[path]
    with pytest.raises(RomfsError, match="ASCII"):
        build_image({"modèle.mpk": b"x"})
    with pytest.raises(RomfsError, match="not a ROMFS image"):
        parse_image(b"\0" * 16)


@pytest.mark.parametrize("engine", ["c", "viper"])
def test_load_in_place_from_romfs(engine: str, tmp_path: Path, natmod_x64: Path) -> None:
    mpk = _model()
    f = MpkFile(mpk)
    img = tmp_path / "models.romfs"
    img.write_bytes(build_image({"models/fc.mpk": mpk}))
    x = np.random.default_rng(4).integers(-128, 128, size=f.input_tensors()[0].nbytes, dtype=np.int8).tobytes()
    (tmp_path / "x.bin").write_bytes(x)
    (tmp_path / "fc.mpk").write_bytes(mpk)
    r = run_micropython([str(SCRIPT), str(img), "models/fc.mpk", str(tmp_path / "fc.mpk"), str(tmp_path / "x.bin"),
                         engine], heapsize="2M")
    assert r.returncode == 0 and "DONE" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    rows = {line.split()[1]: line.split()[2:] for line in r.stdout.splitlines() if line.startswith("RESULT")}
    g_rom, arena, ctx_rom, ro, kind, eng, out_rom = rows["rom"]
    g_ram, _, ctx_ram, _, _, _, out_ram = rows["ram"]
    g_rom, arena, ctx_rom, g_ram = int(g_rom), int(arena), int(ctx_rom), int(g_ram)
    weights = f.header["data_size"]
    print(f"{engine} ({eng}): load from ROMFS grew the heap by {g_rom} B (arena {arena} B, ctx {ctx_rom} B); "
          f"from a RAM copy by {g_ram} B (ctx {ctx_ram} B); weights {weights} B, file {len(mpk)} B")
    assert kind == "memoryview" and ro == "1", "the ROMFS model buffer must be a read-only memoryview"
    assert g_rom <= arena + ctx_rom + SLACK, f"ROMFS load grew the heap by {g_rom} B"
    assert g_rom < weights // 4, "the weights were copied into the heap"
    assert g_ram >= len(mpk), "the RAM load must hold a copy (sanity check of the measurement)"
    assert out_rom == out_ram and len(out_rom) == 2 * f.output_tensors()[0].nbytes


def test_deploy_romfs_plan_and_refusal(virtual_board: VirtualBoard, tmp_path: Path) -> None:
    mpk = tmp_path / "fc.mpk"
    mpk.write_bytes(_model())
    r = subprocess.run([sys.executable, "-m", "mpyml.cli", "deploy", "--dry-run", "--arch", "armv7m", "--romfs",
                        "--no-package", "--no-engine", str(mpk)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "ROMFS image" in r.stdout and "/rom/models/fc.mpk" in r.stdout
    # the unix port (the virtual board) has vfs.VfsRom but no ROMFS partition: one line, exit 2
    r = virtual_board.deploy(str(mpk), "--romfs", "--no-engine", "--no-package")
    assert r.returncode == 2 and "no ROMFS partition" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
