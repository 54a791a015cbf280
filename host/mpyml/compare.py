"""`mpyml compare A.mpk B.mpk ...`: models side by side (sparsity, .mpk size, weights, arena, MACs, accuracy,
median unix-port invoke), optionally plotted (accuracy against size and against MACs).

    mpyml compare A.mpk B.mpk [C.tflite ...] [--eval X Y] [--repeat N] [--no-time] [--json] [--plot PNG]

Each model is a packed .mpk or an int8 .tflite (packed in memory). Sizes, MACs and arena come from
`mpyml.inspect_model`; int8 weight sparsity is the fraction of zero weights of the CONV_2D / DEPTHWISE_CONV_2D /
FULLY_CONNECTED kernels (from the .tflite's tensors; for a .mpk from `inspect_model`'s per-layer `sparsity`,
weighted by kernel size, when it reports one, else from the .mpk's dense weight tensors). `--eval X Y` runs X on
every model on the MicroPython unix port (C engine) and scores it against Y (class labels: accuracy; float
targets: mean absolute error); the invoke time is the median of N invokes on the unix port (time.ticks_us).
Nothing here depends on how the .mpk stores weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_commands", "compare", "format_table", "plot", "weight_sparsity_int8"]

WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
DEFAULT_REPEAT = 50
MPK_MAGIC = b"MPYM"           # spec.MAGIC 0x4D59504D, little-endian


def _tflite_sparsity(data: bytes) -> float | None:
    from .tflite_model import read_tflite

    m = read_tflite(data)
    zeros = total = 0
    for op in m.operators:
        if op.op in WEIGHT_OPS and len(op.inputs) > 1 and op.inputs[1] >= 0:
            t = m.tensors[op.inputs[1]]
            if t.data is not None and t.dtype == "INT8":
                zeros += int(np.count_nonzero(t.data == 0))
                total += int(t.data.size)
    return zeros / total if total else None


def _mpk_sparsity(data: bytes, info: dict[str, Any]) -> float | None:
    if info.get("weights_sparsity") is not None:
        return float(info["weights_sparsity"])
    rated = [ly for ly in info.get("layers", []) if ly.get("sparsity") is not None]
    if rated:   # inspect's per-layer share of zeros, weighted by the layer's kernel size (its MACs per pixel)
        k = [ly["macs"] / max(1, int(np.prod(ly["output"][1:-1]))) for ly in rated]
        return float(sum(w * ly["sparsity"] for w, ly in zip(k, rated, strict=True)) / sum(k)) if sum(k) else None
    from .mpk import MpkFile

    try:
        f = MpkFile(data)
        zeros = total = 0
        for op in f.ops:
            if op.name in WEIGHT_OPS and len(op.inputs) > 1 and op.inputs[1] != 0xFFFF:
                t = f.tensors[op.inputs[1]]
                if t.in_arena or t.dtype != "int8" or t.offset + t.nbytes > f.header["data_size"]:
                    return None
                a = f.const_array(t)
                if a.size != t.elements:
                    return None
                zeros += int(np.count_nonzero(a == 0))
                total += int(a.size)
        return zeros / total if total else None
    except (ValueError, IndexError, KeyError, AttributeError):
        return None


def weight_sparsity_int8(data: bytes) -> float | None:
    """Fraction of zero int8 kernel weights of a .tflite or .mpk (None when it has no kernels or is unreadable)."""
    if data[4:8] == b"TFL3":
        return _tflite_sparsity(data)
    from .inspect_model import inspect_model

    return _mpk_sparsity(data, inspect_model(data))


def _score(y: np.ndarray, out: np.ndarray) -> tuple[str, float]:
    out = out.reshape(len(y), -1).astype(np.float64)
    if np.issubdtype(y.dtype, np.integer) and y.ndim == 1:
        pred = (out[:, 0] > 0.5).astype(np.int64) if out.shape[1] == 1 else np.argmax(out, axis=1)
        return "accuracy", float(np.mean(pred == y))
    if y.ndim == 2 and y.shape[1] == out.shape[1] and out.shape[1] > 1 and np.all((y == 0) | (y == 1)):
        return "accuracy", float(np.mean(np.argmax(out, axis=1) == np.argmax(y, axis=1)))
    return "mae", float(np.mean(np.abs(out - y.reshape(len(y), -1))))


def _measure(data: bytes, x: np.ndarray | None, y: np.ndarray | None, timing: bool, repeat: int) -> dict[str, Any]:
    from .inspect_model import inspect_model
    from .mpk import MpkFile
    from .packer import pack
    from .unix_port import run_batch, run_model

    tflite = data if data[4:8] == b"TFL3" else None
    mpk = pack(data) if tflite is not None else data
    info = inspect_model(mpk)
    r: dict[str, Any] = {"file_bytes": len(mpk), "weights_bytes": info["weights_bytes"],
                         "arena_bytes": info["arena_bytes"], "macs": info["macs"], "ops": info["ops"],
                         "sparsity": _tflite_sparsity(tflite) if tflite is not None else _mpk_sparsity(mpk, info)}
    f = MpkFile(mpk)
    ins = f.input_tensors()
    if len(ins) != 1 or len(f.output_tensors()) != 1:
        if x is not None:
            raise ValueError("--eval takes single-input single-output models")
    t_in = ins[0]
    t_out = f.output_tensors()[0]

    def q(s: np.ndarray) -> np.ndarray:
        if t_in.dtype == "float32":
            return s.astype(np.float32).reshape(t_in.shape)
        lo, hi = (0, 255) if t_in.dtype == "uint8" else (-128, 127)
        return np.clip(np.round(s / t_in.scale) + t_in.zero_point, lo, hi).astype(t_in.np_dtype).reshape(t_in.shape)

    if x is not None and y is not None:
        if x[0].size != t_in.elements:
            raise ValueError(f"--eval: samples of {x[0].size} values, the model's input {tuple(t_in.shape)} holds "
                             f"{t_in.elements}")
        res = run_batch(mpk, [[q(s)] for s in x])
        raw = np.stack([b[0] for b in res.batch])
        out = raw.astype(np.float64) if t_out.dtype == "float32" else \
            (raw.astype(np.float64) - t_out.zero_point) * t_out.scale
        metric, val = _score(y, out)
        r["metric"], r[metric] = metric, val
    if timing:
        sample = q(x[0]) if x is not None else np.zeros(t_in.shape, dtype=t_in.np_dtype)
        r["unix_port_us"] = run_model(mpk, [sample], repeat=repeat).median_us
    return r


def compare(models: Sequence[str | Path], eval_data: tuple[Any, Any] | None = None, timing: bool = True,
            repeat: int = DEFAULT_REPEAT) -> list[dict[str, Any]]:
    """One row per model (path, sizes, MACs, sparsity; accuracy / MAE with eval_data; median invoke µs)."""
    x = y = None
    if eval_data is not None:
        x = np.asarray(np.load(eval_data[0], allow_pickle=False) if isinstance(eval_data[0], (str, Path))
                       else eval_data[0])
        y = np.asarray(np.load(eval_data[1], allow_pickle=False) if isinstance(eval_data[1], (str, Path))
                       else eval_data[1])
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"--eval: X is {x.dtype}; give float samples scaled as the models take them")
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"--eval: {len(x)} samples and {len(y)} labels: give one label per sample")
    blobs = []
    for p in models:
        data = Path(p).read_bytes()
        if data[4:8] != b"TFL3" and data[:4] != MPK_MAGIC:
            raise ValueError(f"{p}: neither a .mpk nor a .tflite file")
        blobs.append((p, data))
    rows = []
    for p, data in blobs:
        try:
            rows.append({"model": str(p), **_measure(data, x, y, timing, repeat)})
        except ValueError as e:   # PackError / TFLiteError / a malformed .mpk: say which file
            raise ValueError(f"{p}: {e}") from None
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    base = rows[0]
    cols = [("model", lambda r: Path(r["model"]).name),
            ("sparsity", lambda r: "?" if r["sparsity"] is None else f"{r['sparsity']:.1%}"),
            (".mpk B", lambda r: f"{r['file_bytes']:,} ({r['file_bytes'] / base['file_bytes']:.2f}x)"),
            ("weights B", lambda r: f"{r['weights_bytes']:,}"),
            ("arena B", lambda r: f"{r['arena_bytes']:,}"),
            ("MACs", lambda r: f"{r['macs']:,} ({r['macs'] / max(1, base['macs']):.2f}x)")]
    if "metric" in base:
        k = base["metric"]
        cols.append((k, lambda r: f"{r[k]:.2%}" if k == "accuracy" else f"{r[k]:.5g}"))
    if base.get("unix_port_us") is not None:
        t0 = base["unix_port_us"]
        cols.append(("invoke us", lambda r: f"{r['unix_port_us']:.0f} ({r['unix_port_us'] / t0:.2f}x)"))
    table = [[c for c, _ in cols]] + [[f(r) for _, f in cols] for r in rows]
    w = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines = ["  ".join(v.ljust(w[i]) if i == 0 else v.rjust(w[i]) for i, v in enumerate(row)) for row in table]
    lines.insert(1, "  ".join("-" * n for n in w))
    return "\n".join(lines) + "\n(ratios against the first model; invoke: median on the MicroPython unix port)"


def plot(rows: list[dict[str, Any]], path: str | Path) -> None:
    """accuracy (or MAE) against .mpk size and against MACs, one point per model."""
    if "metric" not in rows[0]:
        raise ValueError("--plot draws accuracy against size and MACs: add --eval X Y")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = rows[0]["metric"]
    scale = 100.0 if k == "accuracy" else 1.0
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "file_bytes", ".mpk size (bytes)"), (axes[1], "macs", "MACs")):
        for r in rows:
            ax.scatter(r[key], r[k] * scale, color="#4878a8")
            ax.annotate(Path(r["model"]).stem, (r[key], r[k] * scale), fontsize=8, xytext=(4, 4),
                        textcoords="offset points")
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy (%)" if k == "accuracy" else "mean absolute error")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{k} (unix port) against size and MACs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cmd_compare(args: argparse.Namespace) -> int:
    try:
        rows = compare(args.models, tuple(args.eval) if args.eval else None, timing=not args.no_time,
                       repeat=args.repeat)
        if args.plot and "metric" not in rows[0]:
            raise ValueError("--plot draws accuracy against size and MACs: add --eval X Y")
    except ValueError as e:
        print(f"mpyml compare: {e}", file=sys.stderr)
        return 2
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    if args.plot:
        try:
            plot(rows, args.plot)
        except ImportError:
            print("mpyml compare: --plot needs matplotlib: .venv/bin/pip install -r requirements.lock",
                  file=sys.stderr)
            return 2
        except OSError as e:
            print(f"mpyml compare: cannot write {args.plot}: {e.strerror}", file=sys.stderr)
            return 2
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def _positive(v: str) -> int:
    n = int(v)
    if n < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2 (a median of invokes), got {n}")
    return n


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", metavar="MODEL", help=".mpk or int8 .tflite files (the first is the base)")
    p.add_argument("--eval", nargs=2, metavar=("X", "Y"), help="score every model on X (.npy) against Y (.npy)")
    p.add_argument("--repeat", type=_positive, default=DEFAULT_REPEAT,
                   help=f"invokes per timing (median, default {DEFAULT_REPEAT})")
    p.add_argument("--no-time", action="store_true", help="skip the unix-port invoke timing")
    p.add_argument("--json", action="store_true", help="one JSON list, a row per model")
    p.add_argument("--plot", metavar="PNG", help="accuracy against .mpk size and MACs (needs --eval)")
    p.set_defaults(func=cmd_compare)


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from ._cli_util import add_subcommand

    add_subcommand(sub, "compare", "models side by side: sparsity, size, MACs, accuracy, unix-port time",
                   __doc__, configure)


def main(argv: Sequence[str] | None = None) -> int:
    from ._cli_util import module_main

    return module_main("mpyml.compare", __doc__, configure, argv)


if __name__ == "__main__":
    sys.exit(main())
