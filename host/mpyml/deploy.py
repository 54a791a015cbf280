"""`mpyml deploy`: put the device package, the engine and models on a MicroPython board.

    mpyml deploy --port /dev/ttyUSB0 models/ad01.mpk --app models/digits/app --main

Connects through mpremote (serial port, or the virtual board: `--port virtual` or its /dev/pts/N),
soft-resets the board and reads its MicroPython version, native architecture and .mpy ABI, free
heap and flash, then installs:

  lib/mpyml/**.mpy          the device package, compiled by mpy-cross for that board
                            (-march=<arch>, so viper/native code is right; plain .py when the
                            board's .mpy version differs from mpy-cross's)
  lib/mpyml_engine.mpy      the C engine's native module built for that architecture
                            (else a per-arch fallback; see ENGINE_PROVIDERS)
  models/<name>.mpk         each MODEL (.mpk; a .tflite is packed first), or --models-dir
  <app files>               --app DIR, to the board's root; its main.py only with --main

Every file goes to <name>.part first, is verified on the board (size and sha256, or crc32 /
adler32 where hashlib is missing, computed by the board from its flash), then renamed into
place: an interrupted deploy never leaves a half-written file, and the next deploy cleans up.
Files whose size and hash already match are not copied. --dry-run prints the plan only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import paths
from ._cli_util import add_subcommand, module_main
from .board import MPY_ARCHS, BoardError, resolve_port
from .remote import Board, BoardInfo, RemoteError, default_port, host_hash

MPY_CROSS_ABI = (6, 3)                 # what the pinned mpy-cross (and the natmod kit) emit
ENGINE_DEST = "lib/mpyml_engine.mpy"
PACKAGE_DEST = "lib/mpyml"
SKIP_NAMES = {"__pycache__", ".DS_Store"}
EXIT_NO_ENGINE = 3


class DeployError(RuntimeError):
    pass


# ------------------------------------------------------------------------------ .mpy headers
def mpy_header(data: bytes) -> tuple[int, int, int] | None:
    """(mpy version, sub-version, arch index) of a .mpy file; arch 0 = bytecode only."""
    if len(data) < 4 or data[0] != ord("M"):
        return None
    return data[1], data[2] & 3, data[2] >> 2


def mpy_incompatibility(data: bytes, info: BoardInfo) -> str | None:
    """Why this .mpy would not import on that board (None: it would)."""
    h = mpy_header(data)
    if h is None:
        return "not a .mpy file"
    ver, sub, arch = h
    if info.mpy is None:
        return "the board does not report its .mpy ABI (MicroPython older than 1.19?)"
    if ver != info.mpy_version:
        return f".mpy v{ver}, the board loads v{info.mpy_version}"
    if arch:
        name = MPY_ARCHS[arch] if arch < len(MPY_ARCHS) else f"arch{arch}"
        if name != info.arch and name not in thumb_compatible(info.arch):
            return f"native code for {name}, the board is {info.arch or 'without native code support'}"
        if sub != info.mpy_sub:
            return f"native code for ABI {ver}.{sub}, the board is {info.abi}"
    return None


# ------------------------------------------------------------------------------ engine selection
@dataclass
class EngineChoice:
    kind: str                    # "native" | "fallback" | "package-viper" | "none"
    path: Path | None            # file to install as lib/mpyml_engine.mpy (None: nothing to install)
    label: str
    tried: list[str] = field(default_factory=list)


def _engine_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("MPYML_ENGINE_PATH", "").split(os.pathsep) if p]
    return [*extra, paths.NATMOD_DIR]


_THUMB = ("armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp")


def thumb_compatible(arch: str) -> list[str]:
    """Older Thumb archs whose native code this board also loads, best first (MicroPython's
    MPY_FEATURE_ARCH_TEST: armv6m <= mpy arch <= board arch), e.g. armv7em (a Cortex-M3 as v1.23 reports it)
    loads armv7m and armv6m native modules."""
    if arch not in _THUMB:
        return []
    return list(reversed(_THUMB[:_THUMB.index(arch)]))


def _native_candidates(arch: str) -> list[tuple[Path, str]]:
    return [(d / a / f"{paths.NATMOD_NAME}.mpy", "native module" if a == arch else f"native module ({a})")
            for a in (arch, *thumb_compatible(arch)) for d in _engine_dirs()]


def _fallback_candidates(arch: str) -> list[tuple[Path, str]]:
    # Plug-in point: a pure-MicroPython engine exposing the native module's API, compiled per arch
    # (viper code carries machine code, hence per arch) and dropped here, is installed under the
    # same name, lib/mpyml_engine.mpy. An arch-independent bytecode build may go in any/.
    base = paths.BUILD_DIR / "engine-fallback"
    return [(base / arch / f"{paths.NATMOD_NAME}.mpy", "fallback engine"),
            (base / "any" / f"{paths.NATMOD_NAME}.mpy", "fallback engine")]


# Ordered providers: arch -> [(candidate file, label)]; the first compatible file wins.
ENGINE_PROVIDERS: list[Callable[[str], list[tuple[Path, str]]]] = [_native_candidates, _fallback_candidates]


def choose_engine(info: BoardInfo | None, arch: str, package_files: list[str]) -> EngineChoice:
    tried: list[str] = []
    for provider in ENGINE_PROVIDERS:
        for path, label in provider(arch or "none"):
            rel = _rel(path)
            if not path.is_file():
                tried.append(f"{rel}: absent")
                continue
            if info is not None:
                why = mpy_incompatibility(path.read_bytes(), info)
                if why:
                    tried.append(f"{rel}: unusable, {why}")
                    continue
            kind = "native" if label == "native module" else "fallback"
            return EngineChoice(kind, path, f"{label} {arch} ({rel})", tried)
    if "viper_engine.py" in package_files:
        return EngineChoice("package-viper", None, "the device package's pure-MicroPython viper engine "
                            "(mpyml/viper_engine, slower than the native module)", tried)
    return EngineChoice("none", None, "none", tried)


def no_engine_message(info: BoardInfo | None, arch: str, choice: EngineChoice) -> str:
    abi = info.abi if info else "?"
    where = f", MicroPython {info.version_str} on {info.platform}" if info else ""
    if info is not None and not arch:
        head = (f"this firmware cannot load native modules: sys.implementation._mpy = {info.mpy} names no "
                f"architecture (.mpy ABI {abi}{where})")
    else:
        head = f"no mpyml engine for architecture {arch or '?'} (.mpy ABI {abi}{where})"
    lines = [head, "  looked for:"] + [f"    {t}" for t in choice.tried]
    lines += ["  what you can do:"]
    if arch == "xtensawin":
        lines.append("    - build it: install ESP-IDF (its export.sh puts xtensa-esp32-elf-gcc on PATH), "
                     "then `make natmods` builds build/natmod/xtensawin/mpyml_engine.mpy")
    elif arch:
        lines.append(f"    - build it: `make natmods` (the Makefile builds {', '.join(paths.NATMOD_ARCHS[:-1])}; "
                     f"{arch} needs its cross compiler and an ARCH entry)")
    if arch:
        lines.append(f"    - or copy an mpyml_engine.mpy built for {arch}, .mpy {abi} to "
                     f"build/natmod/{arch}/ (or <dir>/{arch}/ with <dir> on $MPYML_ENGINE_PATH)")
        lines.append(f"    - or drop a per-arch fallback engine in build/engine-fallback/{arch}/ (the "
                     "pure-MicroPython 'viper' engine will be the fallback once it exists)")
    else:
        lines.append("    - flash a MicroPython build with a native emitter for this CPU")
    lines.append("    - or deploy everything else with --no-engine (mpyml.load() fails on the board "
                 "until an engine is installed)")
    return "\n".join(lines)


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(paths.REPO))
    except ValueError:
        return str(p)


# ------------------------------------------------------------------------------ the plan
@dataclass
class Item:
    dest: str                  # path on the board, relative to its working directory
    data: bytes
    what: str                  # shown in the plan
    action: str = "copy"       # copy | same | delete
    size_on_board: int | None = None


def _walk(root: Path, skip_suffixes: tuple[str, ...] = (".pyc",)) -> list[Path]:
    """Files under root, sorted; hidden files, __pycache__ and skip_suffixes left out."""
    out = []
    for p in sorted(root.rglob("*")):
        parts = p.relative_to(root).parts
        if p.is_file() and p.suffix not in skip_suffixes \
                and not any(x in SKIP_NAMES or x.startswith(".") for x in parts):
            out.append(p)
    return out


def package_sources() -> list[Path]:
    """The device package's files (device/mpyml/**), as deployed and as listed in package.json."""
    return _walk(paths.DEVICE_DIR / "mpyml", (".pyc", ".mpy", ".part"))


def compile_package(info: BoardInfo | None, arch: str, source: bool, workdir: Path) -> tuple[list[Item], list[str]]:
    """The device package as Items (compiled .mpy, or .py), plus notes."""
    root = paths.DEVICE_DIR / "mpyml"
    notes: list[str] = []
    items: list[Item] = []
    files = package_sources()
    if not files:
        raise DeployError(f"no device package under {root}")
    use_mpy = not source
    if use_mpy and info is not None and info.mpy_version is not None and info.mpy_version != MPY_CROSS_ABI[0]:
        notes.append(f"the board loads .mpy v{info.mpy_version}, mpy-cross here emits v{MPY_CROSS_ABI[0]}: "
                     "installing the package as .py sources")
        use_mpy = False
    if use_mpy and info is not None and info.mpy is None:
        notes.append("the board does not report its .mpy ABI: installing the package as .py sources")
        use_mpy = False
    mpy_cross = paths.mpy_cross_exe() if use_mpy else ""
    for f in files:
        rel = f.relative_to(root).as_posix()
        if f.suffix != ".py" or not use_mpy:
            items.append(Item(f"{PACKAGE_DEST}/{rel}", f.read_bytes(), "device package (source)"
                              if f.suffix == ".py" else "device package data"))
            continue
        out = workdir / (rel[:-3] + ".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [mpy_cross, "-o", str(out), "-s", f"mpyml/{rel}"]
        if arch:
            cmd.append(f"-march={arch}")
        cmd.append(str(f))
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise DeployError(f"mpy-cross failed on {f}:\n{r.stderr.strip() or r.stdout.strip()}")
        data = out.read_bytes()
        why = mpy_incompatibility(data, info) if info is not None else None
        if why:
            notes.append(f"mpyml/{rel}: {why}: installing the .py source instead")
            items.append(Item(f"{PACKAGE_DEST}/{rel}", f.read_bytes(), "device package (source)"))
            continue
        items.append(Item(f"{PACKAGE_DEST}/{rel[:-3]}.mpy", data,
                          "device package (mpy-cross" + (f" -march={arch})" if arch else ")")))
    return items, notes


def _validate_model(path: Path, data: bytes) -> None:
    """Refuse a model the board's loader would refuse: run the engine's own validation (host library).
    Without the host library (a pip install without a compiler) the CRC is still checked."""
    from . import hostlib
    from .mpk import MpkFile
    try:
        st, idx, detail, _ = hostlib.prepare_status(data)
    except (OSError, FileNotFoundError):
        if not MpkFile(data).crc_ok():
            raise DeployError(f"{path}: CRC mismatch: the file is corrupted; repack it with `mpyml pack`") from None
        return
    if st != hostlib.OK:
        why = hostlib.describe_error(st, idx, detail, data)
        why = hostlib.describe_error(st, idx, detail, data)
        raise DeployError(f"{path}: the board's loader would refuse it: {why}; repack it with `mpyml pack`")


def model_items(models: list[Path], dest_dir: str) -> list[Item]:
    items = []
    for m in models:
        if not m.is_file():
            raise DeployError(f"{m}: no such model file")
        data = m.read_bytes()
        name = m.name
        if data[4:8] == b"TFL3":
            from .packer import pack
            data = pack(data)
            name = m.stem + ".mpk"
            what = f"model (packed from {m.name})"
        else:
            if data[:4] != b"MPYM":
                raise DeployError(f"{m}: not an mpyml model (.mpk) nor a .tflite")
            what = "model"
        from .sign import split
        _validate_model(m, split(data)[0])  # a signed file: its .mpk part (the board splits it off too)
        items.append(Item(f"{dest_dir.strip('/')}/{name}" if dest_dir.strip("/") else name, data, what))
    return items


def app_items(app: Path, main: bool, dest_dir: str) -> tuple[list[Item], list[str]]:
    if not app.is_dir():
        raise DeployError(f"{app}: not a directory")
    items, notes = [], []
    prefix = dest_dir.strip("/")
    has_main = False
    for f in _walk(app):
        rel = f.relative_to(app).as_posix()
        if rel == "main.py":
            has_main = True
            if not main:
                notes.append(f"{app}/main.py not installed: pass --main to start the app at boot")
                continue
            items.append(Item("main.py", f.read_bytes(), "app main.py (starts at boot)"))
            continue
        items.append(Item(f"{prefix}/{rel}" if prefix else rel, f.read_bytes(), "app"))
    if main and not has_main:
        raise DeployError(f"--main: {app} has no main.py")
    return items, notes


# ------------------------------------------------------------------------------ output helpers
def _kib(n: int) -> str:
    return f"{n / 1024:,.1f} KiB" if n >= 1024 else f"{n} B"


class Progress:
    """Per-file progress on stderr: a bar on a terminal, a few lines otherwise (large files only)."""

    def __init__(self, stream=None, min_size: int = 32 * 1024):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.min_size = min_size
        self.name = ""
        self.last = -1

    def start(self, name: str) -> None:
        self.name, self.last = name, -1

    def __call__(self, done: int, total: int) -> None:
        if total < self.min_size:
            return
        pct = done * 100 // total
        if self.tty:
            bar = "#" * (pct // 4)
            self.stream.write(f"\r    {self.name} [{bar:<25}] {pct:3d}% {_kib(done)}/{_kib(total)}")
            if done >= total:
                self.stream.write("\n")
            self.stream.flush()
        elif pct // 25 != self.last // 25 or done >= total:
            self.stream.write(f"    {self.name}: {pct}% ({done}/{total} B)\n")
            self.stream.flush()
        self.last = pct


def _fault_hook() -> Callable[[int], None] | None:
    """Test hook: MPYML_DEPLOY_KILL_AFTER_CHUNKS=N SIGKILLs this process after the N-th chunk of the
    first file that has more than N chunks (simulates a cable pull / Ctrl-C mid-copy)."""
    n = os.environ.get("MPYML_DEPLOY_KILL_AFTER_CHUNKS")
    if not n:
        return None
    limit = int(n)

    def hook(chunk: int) -> None:
        if chunk >= limit:
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    return hook


# ------------------------------------------------------------------------------ deploy
@dataclass
class DeployResult:
    copied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    bytes_copied: int = 0
    seconds: float = 0.0
    engine: str = ""
    board: dict = field(default_factory=dict)


def deploy(args: argparse.Namespace, out=None) -> DeployResult:
    out = out or sys.stdout
    t0 = time.monotonic()
    result = DeployResult()

    def say(s: str = "") -> None:
        print(s, file=out, flush=True)

    port = resolve_port(args.port) if args.port else None
    if port is None and not (args.dry_run and args.arch):
        port = default_port()
        if port is None:
            raise DeployError("no board found: give --port (a serial port, `virtual` for the virtual board, "
                              "or its /dev/pts/N)")
    board: Board | None = None
    try:
        info = None
        if port is not None:
            board = Board(port, baudrate=args.baud, soft_reset=not getattr(args, "no_reset", False))
            info = board.info
            say(f"board {port}")
            for k, v in info.describe():
                say(f"  {k:<12} {v}")
            result.board = {"port": port, "version": info.version_str, "platform": info.platform,
                            "arch": info.arch, "abi": info.abi, "mem_free": info.mem_free, "fs_free": info.fs_free}
        arch = args.arch or (info.arch if info else "")
        if args.arch and info and args.arch != info.arch:
            say(f"  (--arch {args.arch} overrides the board's {info.arch or 'none'})")

        items: list[Item] = []
        notes: list[str] = []
        with tempfile.TemporaryDirectory(prefix="mpyml-deploy-") as work:
            if not args.no_package:
                pkg, n = compile_package(info, arch, args.source, Path(work))
                items += pkg
                notes += n
        pkg_names = [Path(i.dest).name.replace(".mpy", ".py") for i in items]
        if not args.no_engine:
            choice = choose_engine(info, arch, pkg_names)
            result.engine = choice.kind
            notes += [f"engine candidate {t}" for t in choice.tried if "unusable" in t]
            if choice.kind == "none":
                raise NoEngine(no_engine_message(info, arch, choice))
            if choice.path is not None:
                items.append(Item(ENGINE_DEST, choice.path.read_bytes(), choice.label))
            else:
                notes.append(f"no native module for {arch} (.mpy ABI {info.abi if info else '?'}): "
                             f"mpyml will use {choice.label}")
        items += model_items([Path(m) for m in args.models], args.models_dir)
        if getattr(args, "key", None):
            from .sign import SignError, board_key_item
            try:
                items.append(Item(*board_key_item(Path(args.key), [(i.dest, i.data) for i in items])))
            except SignError as e:
                raise DeployError(str(e)) from None
        romfs_img = None
        if getattr(args, "romfs", False):          # models into one ROMFS image (weights stay in flash)
            from .romfs import RomfsError, romfs_plan
            try:
                romfs_img, items, n = romfs_plan(board, items, args.models_dir)
            except RomfsError as e:
                raise DeployError(str(e)) from None
            notes += n
        if args.app:
            a, n = app_items(Path(args.app), args.main, args.app_dest)
            items += a
            notes += n
        elif args.main:
            raise DeployError("--main needs --app APP_DIR (the directory holding main.py)")
        seen: dict[str, str] = {}
        for it in items:
            if it.dest in seen:
                raise DeployError(f"two files for {it.dest}: {seen[it.dest]} and {it.what}")
            seen[it.dest] = it.what

        deletions: list[Item] = []
        if board is not None:
            if not args.dry_run:
                board.recover([it.dest for it in items])
            infos = board.file_infos([(it.dest, len(it.data)) for it in items])
            for it, got in zip(items, infos, strict=True):
                if got == "dir":
                    raise DeployError(f"{it.dest} is a directory on the board")
                if got is not None:
                    it.size_on_board = got[0]
                    if got[0] == len(it.data) and got[1] == host_hash(it.data, board.info.hash):
                        it.action = "same"
            # files the plan makes stale: old package files, and .py files that would shadow a new .mpy
            wanted = {it.dest for it in items}
            stale = [p for p in board.walk(PACKAGE_DEST) if p not in wanted] if not args.no_package else []
            shadows = [it.dest[:-4] + ".py" for it in items if it.dest.endswith(".mpy")]
            present = board.file_infos([(p, -2) for p in shadows]) if shadows else []
            stale += [p for p, g in zip(shadows, present, strict=True) if g not in (None, "dir") and p not in wanted]
            deletions = [Item(p, b"", "stale" if p.startswith(PACKAGE_DEST) else "would shadow the .mpy",
                              action="delete") for p in dict.fromkeys(stale)]

        to_copy = [it for it in items if it.action == "copy"]
        need = sum(len(it.data) - (it.size_on_board or 0) for it in to_copy)
        say(f"plan: {len(items)} files, {_kib(sum(len(it.data) for it in items))}"
            + ("" if board is not None else " (board not checked: everything listed as copy)"))
        w = max([len(it.dest) for it in items + deletions] + [10])
        for it in items + deletions:
            size = "" if it.action == "delete" else _kib(len(it.data))
            say(f"  {it.action:<6} {it.dest:<{w}} {size:>11}  {it.what}")
        for n in notes:
            say(f"  note: {n}")
        if info is not None:
            libs = {"lib", "/lib", info.cwd.rstrip("/") + "/lib"}
            if any(it.dest.startswith("lib/") for it in items) and not libs & set(info.path):
                say(f"  warning: the board's sys.path {info.path} has no {info.cwd.rstrip('/')}/lib: "
                    "add `sys.path.append('/lib')` to its boot.py or `import mpyml` will fail")
            if info.fs_free >= 0 and need > info.fs_free - 4096:
                raise DeployError(f"not enough flash: the copy needs about {_kib(need)}, the board has "
                                  f"{_kib(info.fs_free)} free")
            for it in items:
                if it.dest.endswith(".mpk") and len(it.data) > info.mem_free:
                    say(f"  warning: {it.dest} ({_kib(len(it.data))}) is larger than the board's free heap "
                        f"({_kib(info.mem_free)}): mpyml.load() will not fit it in RAM")
        if args.dry_run:
            say(f"dry run: would copy {len(to_copy)} files ({_kib(sum(len(i.data) for i in to_copy))}), "
                f"delete {len(deletions)}, {len(items) - len(to_copy)} unchanged")
            result.seconds = time.monotonic() - t0
            return result

        assert board is not None
        progress = Progress(min_size=args.progress_min)
        fault = _fault_hook()
        for it in deletions:
            board.remove(it.dest)
            result.deleted.append(it.dest)
        for it in items:
            if it.action == "same":
                result.unchanged.append(it.dest)
                continue
            if getattr(args, "ab", False) and it.dest.endswith(".mpk") and it.size_on_board is not None:
                from .ab import keep_previous
                say(f"  kept {it.dest} as {keep_previous(board, it.dest)} (--ab)")
            progress.start(it.dest)
            t1 = time.monotonic()
            board.write_file(it.dest, it.data, progress=progress, fault=fault)
            dt = time.monotonic() - t1
            if len(it.data) >= args.progress_min:
                say(f"  wrote {it.dest} ({_kib(len(it.data))}, {len(it.data) / max(dt, 1e-6) / 1024:,.0f} KiB/s, "
                    "verified)")
            result.copied.append(it.dest)
            result.bytes_copied += len(it.data)
        if romfs_img is not None:
            from .romfs import RomfsError, write_image
            try:
                write_image(board, romfs_img, say)
            except RomfsError as e:
                raise DeployError(str(e)) from None
            result.copied.append("/rom")
            result.bytes_copied += len(romfs_img)
        result.seconds = time.monotonic() - t0
        say(f"copied {len(result.copied)} files ({_kib(result.bytes_copied)}), {len(result.unchanged)} unchanged, "
            f"{len(result.deleted)} deleted, in {result.seconds:.2f} s")
        if args.main:
            say("main.py starts at the next boot: press the board's reset button (or Ctrl-D at its REPL)")
        return result
    finally:
        if board is not None:
            board.close()


class NoEngine(DeployError):
    pass


# ------------------------------------------------------------------------------ CLI
def cmd_deploy(args: argparse.Namespace) -> int:
    try:
        res = deploy(args, out=sys.stderr if args.json else sys.stdout)
    except NoEngine as e:
        print(f"mpyml deploy: {e}", file=sys.stderr)
        return EXIT_NO_ENGINE
    except (DeployError, RemoteError, BoardError, FileNotFoundError) as e:
        print(f"mpyml deploy: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(res.__dict__, indent=1))
    return 0


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="*", metavar="MODEL.mpk", help="models to copy (.mpk; .tflite is packed first)")
    p.add_argument("--port", "-p", help="serial port (/dev/ttyUSB0, COM3), `virtual` (the virtual board of "
                   "`mpyml board start`), `virtual:DIR`, or a pty; default: the first USB serial port")
    p.add_argument("--baud", type=int, default=115200, help="serial baud rate (default 115200)")
    p.add_argument("--app", metavar="APP_DIR", help="copy this directory's files to the board's root")
    p.add_argument("--app-dest", default="", metavar="DIR", help="board directory for --app (default: root)")
    p.add_argument("--main", action="store_true", help="also install APP_DIR/main.py so the app starts at boot")
    p.add_argument("--models-dir", default="models", metavar="DIR", help="board directory for models "
                   "(default: models)")
    p.add_argument("--no-engine", action="store_true", help="do not install the engine (native module)")
    p.add_argument("--no-package", action="store_true", help="do not install the device package")
    p.add_argument("--source", action="store_true", help="install the device package as .py sources")
    p.add_argument("--arch", choices=MPY_ARCHS[1:], metavar="ARCH",
                   help="target architecture instead of the board's (with --dry-run: plan without a board)")
    p.add_argument("--dry-run", "-n", action="store_true", help="print the plan; change nothing")
    p.add_argument("--romfs", action="store_true", help="put the models in the board's ROMFS partition "
                   "(MicroPython 1.25+): weights stay in flash, mpyml.load('/rom/models/M.mpk') uses them in place")
    p.add_argument("--key", metavar="KEY.pub", help="install this public key as mpyml_key.pub: mpyml.load() then "
                   "refuses unsigned or tampered models (the models deployed are checked against it first)")
    p.add_argument("--ab", action="store_true", help="keep each replaced model as MODEL.mpk.prev, the fallback "
                   "of mpyml.load_ab()")
    p.add_argument("--no-reset", action="store_true",
                   help="do not soft-reset the board first (mpremote's `resume`): for boards that cannot or must not")
    p.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    p.add_argument("--progress-min", type=int, default=32 * 1024, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_deploy)


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    add_subcommand(sub, "deploy", "install the device package, engine, models and app on a board",
                   __doc__, configure_parser)


def main(argv: list[str] | None = None) -> int:
    return module_main("mpyml.deploy", __doc__, configure_parser, argv)


if __name__ == "__main__":
    sys.exit(main())

