"""Corpus progress report: convert every architecture (cached), try mpyml.pack on each I/O variant,
check the packed ones against tflite-micro, and say which TFLite ops / patterns block the rest.

    python -m tests.corpus.report                 # all; table on stdout, JSON in build/corpus/report.json
    python -m tests.corpus.report -j 2            # convert cache misses in 2 processes
    python -m tests.corpus.report --no-run mobilenet_v2 lstm_tfk

Per (architecture, io) row: the ops present, whether pack() succeeds and, when it does, whether the C
engine on the MicroPython unix port matches tflite-micro byte for byte on one random input. For a model
that does not pack, every op is also packed on its own (cut out with tflite_build.extract_op_model): the
blockers are the ops that fail alone (with the normalized reason), or the whole-model error when every op
packs alone (a graph-level pattern).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from . import IO_TYPES
from .architectures import ARCHITECTURES, sample_inputs
from .convert import CACHE_DIR, REPO, ConversionError, ensure, tflite

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from tflite_build import extract_op_model, op_names, run_tflm  # noqa: E402
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema  # noqa: E402

_TYPE = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_NP = {"INT8": np.int8, "UINT8": np.uint8, "FLOAT32": np.float32, "INT16": np.int16, "INT32": np.int32}


# ------------------------------------------------------------------ model I/O and inputs

def io_tensors(tfl: bytes) -> tuple[list[tuple[tuple[int, ...], str]], list[tuple[tuple[int, ...], str]]]:
    """(shape, TFLite type name) of the inputs and of the outputs of subgraph 0."""
    m = schema.ModelT.InitFromPackedBuf(bytearray(tfl), 0)
    sg = m.subgraphs[0]

    def spec(i: int) -> tuple[tuple[int, ...], str]:
        t = sg.tensors[i]
        return tuple(int(d) for d in t.shape), _TYPE.get(t.type, str(t.type))

    return [spec(i) for i in sg.inputs], [spec(i) for i in sg.outputs]


def make_inputs(name: str, tfl: bytes, n: int, seed: int = 1) -> list[list[np.ndarray]]:
    """n samples (each a list over model inputs): int8 / uint8 uniform over the full range; float32 from
    the architecture's own data distribution (what the float I/O model really sees)."""
    rng = np.random.default_rng(seed)
    ins, _ = io_tensors(tfl)
    arch = ARCHITECTURES[name]
    samples = []
    for k in range(n):
        sample = []
        for shape, tname in ins:
            dt = _NP[tname]
            if np.issubdtype(dt, np.integer):
                info = np.iinfo(dt)
                x = rng.integers(info.min, info.max + 1, shape, dtype=np.int64).astype(dt)
            else:
                x = sample_inputs(arch, 1, seed=seed * 1000 + k).reshape(shape).astype(dt)
            sample.append(x)
        samples.append(sample)
    return samples


# ------------------------------------------------------------------ blockers

def _normalize(msg: str) -> str:
    """A pack error without per-model detail (op index, tensor indices / names, shapes, numbers)."""
    first = msg.strip().splitlines()[0] if msg.strip() else msg
    s = re.sub(r"^op #\d+ ", "", first)
    s = re.sub(r"tensor \d+ '[^']*'", "tensor", s)
    s = re.sub(r"\(supported: [^)]*\)\.?", "", s)
    s = re.sub(r"\([^()]*\d[^()]*\)", "(...)", s)
    return s.strip()[:160]


def blockers(tfl: bytes, whole_error: str) -> list[dict]:
    """Why a model does not pack: every op kind that fails alone, or the whole-model error."""
    from mpyml.packer import pack

    names = op_names(tfl)
    found: dict[tuple[str, str], dict] = {}
    for i, op in enumerate(names):
        try:
            one = extract_op_model(tfl, i)
            pack(one)
        except Exception as e:  # PackError, or anything the packer trips on
            reason = _normalize(str(e)) if str(e) else type(e).__name__
            if "is not supported by mpyml" in reason or "not supported" in reason and op in reason:
                reason = "op not supported"
            key = (op, reason)
            if key not in found:
                found[key] = {"op": op, "reason": reason, "count": 0, "first_index": i, "message": str(e)[:400]}
            found[key]["count"] += 1
    if not found:
        return [{"op": "(graph)", "reason": _normalize(whole_error), "count": 1, "first_index": -1,
                 "message": whole_error[:400]}]
    return list(found.values())


def blocker_label(b: dict) -> str:
    return b["op"] if b["reason"] == "op not supported" else f"{b['op']}: {b['reason']}"


# ------------------------------------------------------------------ one row

def check(name: str, io: str, run: bool = True) -> dict:
    from mpyml.packer import pack

    row: dict = {"name": name, "io": io, "framework": ARCHITECTURES[name].framework}
    meta = ensure(name)
    row["convert_s"] = meta["convert_s"].get(io)
    try:
        tfl = tflite(name, io)
    except ConversionError as e:
        row.update(converted=False, ops=[], pack_ok=False, error=str(e), blockers=[], run="-")
        return row
    names = op_names(tfl)
    ins, outs = io_tensors(tfl)
    row.update(converted=True, tflite_bytes=len(tfl), ops=sorted(set(names)), op_counts=dict(Counter(names)),
               n_ops=len(names), inputs=[[list(s), t] for s, t in ins], outputs=[[list(s), t] for s, t in outs])
    t0 = time.perf_counter()
    try:
        mpk = pack(tfl)
    except Exception as e:
        row.update(pack_ok=False, error=f"{type(e).__name__}: {e}", blockers=blockers(tfl, str(e)), run="-")
        return row
    row.update(pack_ok=True, pack_s=round(time.perf_counter() - t0, 3), mpk_bytes=len(mpk), error="",
               blockers=[])
    row["run"] = run_check(name, tfl, mpk) if run else "-"
    return row


def run_check(name: str, tfl: bytes, mpk: bytes) -> str:
    """'exact' when the C engine on the unix port gives tflite-micro's output bytes on one random input."""
    from mpyml.unix_port import run_batch

    try:
        sample = make_inputs(name, tfl, 1)[0]
        ref = run_tflm(tfl, sample)
        got = run_batch(mpk, [sample], engine="c").outputs
    except Exception as e:
        return f"error: {type(e).__name__}: {str(e).strip().splitlines()[0][:120] if str(e).strip() else ''}"
    for g, r in zip(got, ref, strict=True):
        if g.dtype != r.dtype or g.shape != r.shape:
            return f"MISMATCH dtype/shape {g.dtype}{g.shape} vs {r.dtype}{r.shape}"
        if g.tobytes() != r.tobytes():
            diff = np.abs(g.astype(np.float64) - r.astype(np.float64))
            return f"MISMATCH {int(np.count_nonzero(diff))}/{diff.size} differ, max {diff.max():g}"
    return "exact"


# ------------------------------------------------------------------ summary / printing

def summarize(rows: list[dict]) -> dict:
    blocked: dict[str, list[str]] = defaultdict(list)
    only: Counter = Counter()
    for r in rows:
        labels = sorted({blocker_label(b) for b in r["blockers"]})
        for lab in labels:
            blocked[lab].append(f"{r['name']}/{r['io']}")
        if len(labels) == 1:
            only[labels[0]] += 1
    op_seen: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        for op in r["ops"]:
            op_seen[op].add(r["name"])
    return {
        "architectures": len({r["name"] for r in rows}),
        "pairs": len(rows),
        "converted": sum(r["converted"] for r in rows),
        "packed": sum(r["pack_ok"] for r in rows),
        "exact": sum(r.get("run") == "exact" for r in rows),
        "packed_by_io": {io: sum(r["pack_ok"] for r in rows if r["io"] == io) for io in IO_TYPES},
        "blockers": {lab: {"pairs": len(v), "sole_blocker_of": only[lab], "models": v}
                     for lab, v in sorted(blocked.items(), key=lambda kv: (-len(kv[1]), kv[0]))},
        "ops_by_architecture_count": {op: len(v) for op, v in sorted(op_seen.items(), key=lambda kv: -len(kv[1]))},
        "not_converted": [f"{r['name']}/{r['io']}: {r['error']}" for r in rows if not r["converted"]],
    }


def print_table(rows: list[dict], summary: dict) -> None:
    hdr = f"{'architecture':24s} {'io':7s} {'conv':>5s} {'ops':>3s} {'pack':4s} {'run':8s} blockers / error"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        conv = f"{r['convert_s']:.1f}" if isinstance(r.get("convert_s"), float | int) else "-"
        pk = "ok" if r["pack_ok"] else ("FAIL" if r["converted"] else "CONV")
        if r["pack_ok"]:
            why = ""
        elif r["blockers"]:
            why = ", ".join(sorted({blocker_label(b) for b in r["blockers"]}))
        else:
            why = r["error"].splitlines()[0][:110]
        run = r.get("run", "-")
        run = run if len(run) <= 8 else run[:8]
        print(f"{r['name']:24s} {r['io']:7s} {conv:>5s} {r.get('n_ops', 0):3d} {pk:4s} {run:8s} {why}")
    print()
    print("ops present (per architecture, float32-I/O variant or the first that converted):")
    by_name: dict[str, dict] = {}
    for r in rows:
        if r["converted"] and (r["name"] not in by_name or r["io"] == "float32"):
            by_name[r["name"]] = r
    for name, r in by_name.items():
        print(f"  {name:24s} {' '.join(f'{op}x{n}' for op, n in sorted(r['op_counts'].items()))}")
    print()
    s = summary
    print(f"{s['architectures']} architectures, {s['pairs']} (architecture, io) pairs: {s['converted']} convert, "
          f"{s['packed']} pack ({', '.join(f'{io} {n}' for io, n in s['packed_by_io'].items())}), "
          f"{s['exact']} run exact on the C engine")
    if s["not_converted"]:
        print("do not convert:")
        for line in s["not_converted"]:
            print("  " + line.splitlines()[0][:160])
    print("blocking ops / patterns (pairs blocked, pairs where it is the only blocker):")
    for lab, b in s["blockers"].items():
        names = sorted({m.split("/")[0] for m in b["models"]})
        print(f"  {b['pairs']:3d} {b['sole_blocker_of']:3d}  {lab}   [{', '.join(names)}]")


def _convert_parallel(names: list[str], jobs: int) -> None:
    """Fill the cache for `names` in `jobs` processes (each `python -m tests.corpus.convert ...`)."""
    chunks = [names[i::jobs] for i in range(jobs)]
    procs = [subprocess.Popen([sys.executable, "-m", "tests.corpus.convert", *c], cwd=REPO) for c in chunks if c]
    for p in procs:
        p.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.corpus.report", description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="architectures (default: all)")
    ap.add_argument("--io", choices=IO_TYPES, action="append", help="only these I/O variants")
    ap.add_argument("--no-run", action="store_true", help="do not run packed models on the unix port")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="processes for converting cache misses")
    ap.add_argument("--json", type=Path, default=CACHE_DIR / "report.json", help="JSON output path")
    args = ap.parse_args(argv)
    names = args.names or list(ARCHITECTURES)
    unknown = [n for n in names if n not in ARCHITECTURES]
    if unknown:
        ap.error(f"unknown architectures {unknown}; known: {', '.join(ARCHITECTURES)}")
    if args.jobs > 1:
        _convert_parallel(names, args.jobs)
    rows = [check(n, io, run=not args.no_run) for n in names for io in (args.io or IO_TYPES)]
    summary = summarize(rows)
    print_table(rows, summary)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, default=str))
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
