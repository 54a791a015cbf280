"""The `mpyml` command line: pack, inspect, run (core) plus the commands of the other host modules."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

# Modules that contribute sub-commands through add_commands(subparsers).
COMMAND_MODULES = ("mpyml.bench", "mpyml.deploy", "mpyml.board", "mpyml.flash", "mpyml.convert",
                   "mpyml.sign", "mpyml.compare", "mpyml.fit")


_SPARSE_MODES: dict[str, bool | str] = {"auto": True, "always": "always", "never": False}


def cmd_pack(args: argparse.Namespace) -> int:
    from .packer import PackError, pack_model, serialize
    src = Path(args.model)
    out = Path(args.output) if args.output else src.with_suffix(".mpk")
    try:
        pm = pack_model(src.read_bytes(), args.max_ram, _SPARSE_MODES[args.sparse])
        data = serialize(pm)
    except PackError as e:
        print(f"mpyml pack: {src}: {e}", file=sys.stderr)
        return 2
    mpk = data
    if args.sign:
        from .sign import load_private, sign_mpk
        data = sign_mpk(data, load_private(args.sign))
    out.write_bytes(data)
    from .inspect_model import inspect_model
    info = inspect_model(mpk)
    print(f"packed {src} ({src.stat().st_size:,} B) -> {out} ({len(data):,} B): {info['ops']} ops, "
          f"{info['macs']:,} MACs, arena {info['arena_bytes']:,} B, weights {info['weights_bytes']:,} B")
    patch = getattr(pm, "patch", None)
    if patch is not None:
        print(f"patch plan: ops {patch.stage[0]}..{patch.stage[1]} in {patch.grid[0]}x{patch.grid[1]} tiles "
              f"of {patch.tile[0]}x{patch.tile[1]}; arena {patch.arena_unpatched:,} -> {patch.arena:,} B, "
              f"MACs x{patch.mac_overhead:.3f} (recomputation), op records {patch.ops_bytes_unpatched:,} -> "
              f"{patch.ops_bytes:,} B; the engine context of a model loaded into writable memory (bytearray, or "
              f"the viper engine) grows by {patch.ctx_growth:,} B, a model used in place (bytes, ROMFS) by the C "
              "engine needs none")
    return 0


def _mpk_crc_ok(data: bytes) -> bool:
    """Whether a packed file's CRC field matches its bytes (False for a file too short to hold one)."""
    if len(data) < 16:
        return False
    buf = bytearray(data)
    buf[12:16] = b"\0\0\0\0"
    return zlib.crc32(buf) & 0xFFFFFFFF == struct.unpack_from("<I", data, 12)[0]


def cmd_inspect(args: argparse.Namespace) -> int:
    from .inspect_model import format_table, inspect_json, inspect_model
    from .packer import PackError
    data = Path(args.model).read_bytes()
    if args.max_ram is not None and data[4:8] != b"TFL3":
        print(f"mpyml inspect: {args.model}: --max-ram packs a .tflite; a packed .mpk already has its plan "
              "(its patch stages are shown without it)", file=sys.stderr)
        return 2
    try:
        info = inspect_model(data, args.max_ram)
        print(inspect_json(data, args.max_ram) if args.json else format_table(info))
        if getattr(args, "plot", None):
            from .inspect_model import plot_memory
            try:
                plot_memory(info, args.plot, f"{Path(args.model).name}: live arena bytes per op")
            except ImportError:
                print("mpyml inspect: --plot needs matplotlib: .venv/bin/pip install -r requirements.lock",
                      file=sys.stderr)
                return 2
            except OSError as e:
                print(f"mpyml inspect: cannot write {args.plot}: {e.strerror}", file=sys.stderr)
                return 2
            print(f"wrote {args.plot}", file=sys.stderr)
    except (PackError, ValueError, IndexError, KeyError, struct.error) as e:
        if data[4:8] != b"TFL3" and not _mpk_crc_ok(data):
            print(f"mpyml inspect: {args.model}: the file is corrupted (CRC mismatch) and its records cannot be "
                  f"read ({e}); repack it with `mpyml pack`", file=sys.stderr)
            return 2
        if isinstance(e, (IndexError, KeyError, struct.error)):
            print(f"mpyml inspect: {args.model}: malformed records ({e}); repack it with `mpyml pack`",
                  file=sys.stderr)
            return 2
        if data[4:8] == b"TFL3" and not args.json:
            from .inspect_model import tflite_ops_table
            try:
                print(tflite_ops_table(data))
            except ValueError:
                pass
        print(f"mpyml inspect: {args.model}: {e}", file=sys.stderr)
        return 2
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .mpk import MpkFile
    from .unix_port import run_model
    data = Path(args.model).read_bytes()
    if data[4:8] == b"TFL3":
        from .packer import pack
        data = pack(data)
    info = MpkFile(data)
    ins = info.input_tensors()
    if len(args.input) != len(ins):
        print(f"mpyml run: model has {len(ins)} input(s), got {len(args.input)} --input", file=sys.stderr)
        return 2
    arrays = []
    for path, t in zip(args.input, ins, strict=True):
        a = np.load(path)
        want = t.np_dtype
        if t.dtype == "float32":
            if not np.issubdtype(a.dtype, np.floating):
                print(f"mpyml run: {path}: dtype {a.dtype}; the model's input is float32", file=sys.stderr)
                return 2
            a = a.astype(np.float32)
        elif a.dtype != want:
            if not np.issubdtype(a.dtype, np.floating):
                print(f"mpyml run: {path}: dtype {a.dtype}; give {t.dtype} (raw) or float (quantized here)",
                      file=sys.stderr)
                return 2
            lo, hi = (0, 255) if t.dtype == "uint8" else (-128, 127)
            a = np.clip(np.round(a / t.scale) + t.zero_point, lo, hi).astype(want)
        arrays.append(a.reshape(t.shape))
    res = run_model(data, arrays, repeat=args.repeat, engine=args.engine)
    outs = args.output or []
    for i, arr in enumerate(res.outputs):
        if i < len(outs):
            np.save(outs[i], arr)
        else:
            print(f"output {i}: {arr.reshape(-1).tolist()}")
    if res.median_us is not None:
        print(f"median invoke: {res.median_us:.0f} us over {args.repeat} runs (MicroPython unix port, time.ticks_us)")
    return 0


def _max_ram(text: str) -> int:
    try:
        v = int(text.replace("_", ""), 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a byte count: {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive byte count, got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mpyml", description="int8 ML models on MicroPython: pack, inspect, run, "
                                 "benchmark and deploy.")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="pack an int8 .tflite into an mpyml .mpk")
    p.add_argument("model")
    p.add_argument("-o", "--output", help="output path (default: MODEL.mpk)")
    p.add_argument("--sign", metavar="KEY", help="append an Ed25519 signature made with KEY (`mpyml keygen`)")
    p.add_argument("--max-ram", metavar="BYTES", type=_max_ram,
                   help="arena budget: run the first stage in spatial tiles (patch-based inference) when the "
                        "default plan needs more; the smallest reachable figure is named when BYTES is too small")
    p.add_argument("--sparse", choices=tuple(_SPARSE_MODES), default="auto",
                   help="FC / conv layers with mostly-zero weights stored sparse: where smaller and not slower "
                        "(auto, default), wherever smaller (always), or never")
    p.set_defaults(func=cmd_pack)
    p = sub.add_parser("inspect", help="per-layer table of a .tflite or .mpk")
    p.add_argument("model")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--plot", metavar="PNG", help="also draw the live arena bytes per op into PNG (matplotlib)")
    p.add_argument("--max-ram", metavar="BYTES", type=_max_ram,
                   help="pack a .tflite as `pack --max-ram` does and show the patch plan: arena with and without "
                        "patching, MAC overhead of recomputation")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("run", help="run a model on the MicroPython unix port through the native module")
    p.add_argument("model", help=".mpk (or .tflite, packed first)")
    p.add_argument("--input", action="append", default=[], help="input .npy (repeat for several inputs)")
    p.add_argument("--output", action="append", default=[], help="output .npy (repeat; else printed)")
    p.add_argument("--repeat", type=_positive, default=1, help="invoke N times (N >= 1) and print the median µs")
    p.add_argument("--engine", default=None, help="engine on the device: c (default) or viper")
    p.set_defaults(func=cmd_run)
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).add_commands(sub)
    return ap


def _positive(v: str) -> int:
    n = int(v)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def main(argv: list[str] | None = None) -> int:
    """Run one command. A user mistake is one line on stderr and exit 2, never a traceback
    (MPYML_DEBUG=1 shows the traceback); a closed pipe (`mpyml inspect m.mpk | head`) exits quietly."""
    import os
    import struct
    args = build_parser().parse_args(argv)
    cmd = f"mpyml {getattr(args, 'command', '')}".strip()
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # stdout's reader went away: say nothing more (and keep Python from complaining at exit)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"{cmd}: interrupted", file=sys.stderr)
        return 130
    except FileNotFoundError as e:
        if os.environ.get("MPYML_DEBUG"):
            raise
        where = e.filename or e
        parent = Path(str(e.filename)).parent if e.filename else None
        hint = (f"directory {parent} does not exist: create it or choose another output path"
                if parent is not None and str(parent) not in ("", ".") and not parent.exists()
                else "no such file: check the path")
        print(f"{cmd}: {where}: {hint}", file=sys.stderr)
        return 2
    except (IsADirectoryError, NotADirectoryError, PermissionError) as e:
        if os.environ.get("MPYML_DEBUG"):
            raise
        print(f"{cmd}: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    except (ValueError, struct.error, IndexError, MemoryError, OverflowError) as e:
        if os.environ.get("MPYML_DEBUG"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"{cmd}: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
