"""ROMFS images of packed models: the weights stay in flash and `mpyml.load` uses them in place.

MicroPython 1.25+ boards with a ROMFS partition mount it read-only at /rom; a file there is memory-mapped,
so `memoryview(open(path, 'rb'))` is the file's bytes in flash (no copy into the heap). The C engine then
validates the model where it lies (mpyml_prepare_in_place) and copies only its small trusted region.

The image is built with mpremote's own writer (mpremote.romfs.VfsRomWriter, the code behind
`mpremote romfs build`), with one addition: every file's data starts on an `align`-byte boundary of the
image (ROMFS padding records before it), because the engine needs a 4-byte-aligned model and the packed
format aligns its data to 16 bytes. The partition itself is block-aligned, so offsets in the image are
alignments in flash. `parse_image` reads an image back (tests, `deploy --romfs --dry-run`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpremote.romfs import VfsRomWriter

if TYPE_CHECKING:
    from .deploy import Item
    from .remote import Board

ALIGN = 16
_K_PADDING = VfsRomWriter.ROMFS_RECORD_KIND_PADDING
_K_VERBATIM = VfsRomWriter.ROMFS_RECORD_KIND_DATA_VERBATIM
_K_POINTER = VfsRomWriter.ROMFS_RECORD_KIND_DATA_POINTER
_K_DIR = VfsRomWriter.ROMFS_RECORD_KIND_DIRECTORY
_K_FILE = VfsRomWriter.ROMFS_RECORD_KIND_FILE


class RomfsError(ValueError):
    """An image cannot be built or read (the message names the file and the fix)."""


def _uint(buf: bytes, pos: int) -> tuple[int, int]:
    v = 0
    while True:
        if pos >= len(buf):
            raise RomfsError("ROMFS image truncated")
        b = buf[pos]
        pos += 1
        v = (v << 7) | (b & 0x7F)
        if not b & 0x80:
            return v, pos


def _tree(files: Mapping[str, bytes]) -> dict:
    root: dict = {}
    for path, data in files.items():
        parts = [p for p in path.strip("/").split("/") if p]
        if not parts:
            raise RomfsError(f"ROMFS: empty file name {path!r}")
        for p in parts:
            if not p.isascii():
                raise RomfsError(f"ROMFS names are ASCII: rename {path!r}")
        d = root
        for p in parts[:-1]:
            d = d.setdefault(p, {})
            if not isinstance(d, dict):
                raise RomfsError(f"ROMFS: {path!r} is below a file")
        if parts[-1] in d:
            raise RomfsError(f"ROMFS: {path!r} given twice")
        d[parts[-1]] = bytes(data)
    return root


def _write(tree: dict, pads: dict[str, int]) -> bytes:
    w = VfsRomWriter()

    def walk(d: dict, prefix: str) -> None:
        for name in sorted(d):
            v = d[name]
            if isinstance(v, dict):
                w.opendir(name)
                walk(v, prefix + name + "/")
                w.closedir()
            else:
                pad = pads.get(prefix + name, 0)
                if pad:
                    # a padding record occupies at least 2 bytes (kind, length)
                    w._extend(w._pack(_K_PADDING, bytes(pad - 2)))
                w.mkfile(name, v)

    walk(tree, "")
    # VfsRomWriter.finalise() with a fixed-size length field (leading 0x80 bytes are zero digits, as
    # finalise itself uses for parity), so file offsets do not move with the image's total length
    _, data = w._dir_stack.pop()
    if (len(VfsRomWriter.ROMFS_HEADER) + 4 + len(data)) % 2:
        data += w._pack(_K_PADDING, b"\0")          # an even image, as finalise() makes it
    enc = w._encode_uint(len(data))
    if len(enc) > 4:
        raise RomfsError(f"ROMFS image too large ({len(data):,} B)")
    return VfsRomWriter.ROMFS_HEADER + b"\x80" * (4 - len(enc)) + enc + bytes(data)


def parse_image(img: bytes) -> dict[str, tuple[int, int]]:
    """Every file of a ROMFS image: path -> (offset of its data in the image, length)."""
    if not img.startswith(VfsRomWriter.ROMFS_HEADER):
        raise RomfsError("not a ROMFS image (bad header)")
    n, pos = _uint(img, 3)
    out: dict[str, tuple[int, int]] = {}

    def records(pos: int, end: int, prefix: str) -> None:
        while pos < end:
            kind, pos = _uint(img, pos)
            ln, pos = _uint(img, pos)
            body, nxt = pos, pos + ln
            if kind in (_K_DIR, _K_FILE):
                nl, p = _uint(img, body)
                name = img[p:p + nl].decode("ascii")
                p += nl
                if kind == _K_DIR:
                    records(p, nxt, prefix + name + "/")
                else:
                    k2, p = _uint(img, p)
                    l2, p = _uint(img, p)
                    if k2 == _K_VERBATIM:
                        out[prefix + name] = (p, l2)
                    elif k2 == _K_POINTER:
                        off, q = _uint(img, p)
                        size, _ = _uint(img, q)
                        out[prefix + name] = (off, size)
            pos = nxt

    records(pos, pos + n, "")
    return out


def build_image(files: Mapping[str, bytes], align: int = ALIGN) -> bytes:
    """A ROMFS image holding `files` (path in the image -> bytes), every file's data `align`-aligned."""
    tree = _tree(files)
    pads: dict[str, int] = {}
    # files are aligned in image order (the padding before one moves only the ones after it, and the
    # lengths of the directories that hold it); a few passes settle directory-length changes
    for _ in range(4):
        order = sorted((off, p) for p, (off, _) in parse_image(_write(tree, pads)).items())
        for _, p in order:
            for pad in (pads.get(p, 0), 0, *range(2, align + 2)):
                pads[p] = pad
                if parse_image(_write(tree, pads))[p][0] % align == 0:
                    break
        img = _write(tree, pads)
        if all(off % align == 0 for off, _ in parse_image(img).values()):
            return img
    raise RomfsError("could not align the files of the ROMFS image (too many files?)")


def build_dir(src: Path, align: int = ALIGN) -> bytes:
    """A ROMFS image of a directory tree (files as they are: no .py compilation)."""
    if not src.is_dir():
        raise RomfsError(f"{src}: not a directory")
    files = {str(p.relative_to(src)).replace("\\", "/"): p.read_bytes() for p in sorted(src.rglob("*"))
             if p.is_file()}
    return build_image(files, align)


# ------------------------------------------------------------------ deploy --romfs

_QUERY = """import vfs
f = getattr(vfs, 'rom_ioctl', None)
if f is None or f(1) <= 0:
    print(None)
else:
    d = f(2, 0)
    if isinstance(d, int):
        print(None)
    elif hasattr(d, 'ioctl'):
        print(d.ioctl(4, 0) * d.ioctl(5, 0))
    else:
        print(len(d))
"""

NO_ROMFS = ("the board has no ROMFS partition (MicroPython 1.25+ enables one only on some boards: PYBD-SFx, "
            "the stm32 Arduino boards, alif boards, ESP8266_GENERIC-FLASH_2M_ROMFS; stock ESP32_GENERIC images "
            "have none, see docs/deploy.md); deploy without --romfs to copy the models to its filesystem")


def partition_size(board: Board) -> int | None:
    """Bytes of the board's ROMFS partition 0, or None when it has none (MicroPython < 1.25, or no partition)."""
    return board.eval_print(_QUERY)


def romfs_plan(board: Board | None, items: list[Item], models_dir: str) -> tuple[bytes, list[Item], list[str]]:
    """Move the .mpk items of a deploy plan into one ROMFS image: (image, remaining items, notes).
    Raises ValueError (DeployError's base) with a one-line reason when the board cannot take it."""
    models = [it for it in items if it.dest.endswith(".mpk")]
    if not models:
        raise RomfsError("--romfs needs at least one model (.mpk or .tflite)")
    rest = [it for it in items if not it.dest.endswith(".mpk")]
    img = build_image({it.dest: it.data for it in models})
    notes = [f"ROMFS image {len(img):,} B ({len(models)} model(s)) replaces the whole ROMFS partition; "
             f"load them as mpyml.load('/rom/{models[0].dest}') (weights used in place, in flash)"]
    if board is not None:
        size = partition_size(board)
        if size is None:
            raise RomfsError(NO_ROMFS)
        if len(img) > size:
            raise RomfsError(f"the ROMFS image ({len(img):,} B) is larger than the board's ROMFS partition "
                             f"({size:,} B): deploy fewer models, or without --romfs")
        notes[0] += f"; partition {size:,} B"
    return img, rest, notes


class _State:
    """What mpremote's romfs commands need of its state: the open transport (already in the raw REPL)."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def ensure_raw_repl(self, soft_reset: bool | None = None) -> None:
        pass

    def did_action(self) -> None:
        pass


def write_image(board: Board, img: bytes, say: Callable[[str], None]) -> None:
    """Write `img` to the board's ROMFS partition 0 with mpremote's own `romfs deploy` code, over the
    deploy's open connection."""
    import argparse
    import contextlib
    import io
    import tempfile

    from mpremote.commands import _do_romfs_deploy

    with tempfile.TemporaryDirectory(prefix="mpyml-romfs-") as d:
        p = Path(d) / "models.romfs"
        p.write_bytes(img)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            try:
                _do_romfs_deploy(_State(board.t), argparse.Namespace(path=str(p), partition=0, mpy=False))
            except SystemExit:
                raise RomfsError("mpremote refused the ROMFS image: " + buf.getvalue().strip().splitlines()[-1]) \
                    from None
    if "ROMFS image deployed" not in buf.getvalue():
        raise RomfsError("writing the ROMFS partition failed: " + buf.getvalue().strip()[-300:])
    say(f"  wrote the ROMFS partition ({len(img):,} B); reset the board to mount it at /rom")
