"""Corpus progress report: convert every architecture (cached), try mpyml.pack on each I/O variant,
check the packed ones against tflite-micro, and say which TFLite ops / patterns block the rest.

    python -m tests.corpus.report                 # all; table on stdout, JSON in build/corpus/report.json
    python -m tests.corpus.report -j 2            # convert cache misses in 2 processes
    python -m tests.corpus.report --no-run mobilenet_v2 lstm_tfk

Per (architecture, io) row: the ops present, whether pack() succeeds and, when it does, whether the C
engine on the MicroPython unix port matches tflite-micro byte for byte on one random input. For a model
that does not pack, the blockers are the TFLite ops still unsupported after the packer's graph clean-up
(mpyml.graph.cleanup vs mpyml.packer.supported_tflite_ops), or, when every op is supported, the packer's
error as a pattern (normalized, attributed to its op).
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
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from . import ENGINES, INPUT_SEED, IO_TYPES, N_SAMPLES
from .architectures import ARCHITECTURES, sample_inputs
from .convert import CACHE_DIR, REPO, ConversionError, ensure, tflite

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from tflite_build import op_names, run_tflm  # noqa: E402

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
    s = re.sub(r"^op #\d+ [A-Z0-9_]+:? ?", "", first)
    s = re.sub(r"tensor \d+ '[^']*'", "tensor", s)
    s = re.sub(r"\(supported: [^)]*\)\.?", "", s)
    s = re.sub(r"\([^()]*\d[^()]*\)", "(...)", s)
    s = re.sub(r"#\d+", "#N", s)
    return s.strip()[:140]


def _is_float(t) -> bool:
    return t.dtype == "FLOAT32"


def blockers(tfl: bytes, error: str) -> list[dict]:
    """What keeps a model from packing: the TFLite ops left unsupported after the packer's graph clean-up
    (an op computing in float32 inside an int8 model is flagged as such), or, when every op is supported,
    the packer's error as a pattern (normalized: no indices, names or shapes), attributed to its op."""
    model = None
    try:                                # the packer's own view: after clean-up, against its op list
        from mpyml.graph import cleanup
        from mpyml.packer import supported_tflite_ops
        from mpyml.tflite_model import read_tflite

        model, _ = cleanup(read_tflite(tfl))
        supported = supported_tflite_ops()
    except Exception:                   # API moved / model unreadable: fall back to the message
        model = None
    out: list[dict] = []
    if model is not None:
        has_int8 = any(t.dtype in ("INT8", "INT16") and not t.is_const for t in model.tensors)
        by_op: dict[tuple[str, str], int] = Counter()
        for op in model.operators:
            if op.op in supported:
                continue
            ts = [model.tensors[i] for i in op.inputs + op.outputs if i >= 0 and not model.tensors[i].is_const]
            float_inside = (op.op not in ("QUANTIZE", "DEQUANTIZE") and has_int8 and ts
                            and all(_is_float(t) for t in ts))
            by_op[(op.op, "float32 op inside an int8 model" if float_inside else "op not supported")] += 1
        out = [{"op": o, "reason": r, "count": n} for (o, r), n in by_op.items()]
    if not out:
        m = re.search(r"op #\d+ ([A-Z][A-Z0-9_]+)", error)
        out = [{"op": m.group(1) if m else "(graph)", "reason": _normalize(error), "count": 1}]
    return out


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
    if run:
        row["run_engines"] = run_check(name, tfl, mpk)
        bad = {e: v for e, v in row["run_engines"].items() if v != "exact"}
        row["run"] = "exact" if not bad else "; ".join(f"{e}: {v}" for e, v in bad.items())
    else:
        row["run"] = "-"
    return row


def run_check(name: str, tfl: bytes, mpk: bytes, engines: tuple[str, ...] = ENGINES) -> dict[str, str]:
    """Per engine: 'exact' when the unix port gives tflite-micro's output bytes (dtype, shape, values) on
    the test's inputs (make_inputs(..., N_SAMPLES, INPUT_SEED)), else what went wrong."""
    from mpyml.unix_port import run_batch

    samples = make_inputs(name, tfl, N_SAMPLES, seed=INPUT_SEED)
    try:
        refs = [run_tflm(tfl, s) for s in samples]
    except Exception as e:
        return {eng: f"tflite-micro error: {_first_line(e)}" for eng in engines}
    out: dict[str, str] = {}
    for eng in engines:
        try:
            r = run_batch(mpk, samples, engine=eng)
        except Exception as e:
            out[eng] = f"error: {_first_line(e)}"
            continue
        out[eng] = "exact"
        for k, (got, ref) in enumerate(zip(r.batch, refs, strict=True)):
            for g, e in zip(got, ref, strict=True):
                if g.dtype != e.dtype or g.shape != e.shape:
                    out[eng] = f"MISMATCH sample {k}: {g.dtype}{g.shape}, tflite-micro {e.dtype}{e.shape}"
                elif g.tobytes() != e.tobytes():
                    d = np.abs(g.astype(np.float64) - e.astype(np.float64))
                    out[eng] = f"MISMATCH sample {k}: {int(np.count_nonzero(d))}/{d.size} differ, max {d.max():g}"
                else:
                    continue
                break
            if out[eng] != "exact":
                break
    return out


def _first_line(e: BaseException) -> str:
    """The informative line of an exception (micropython failures: the last traceback line)."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    if lines[0].startswith("micropython failed") and len(lines) > 1:
        return f"micropython: {lines[-1]}"[:160]
    return f"{type(e).__name__}: {lines[0]}"[:160]


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
        "exact_by_engine": {e: sum(r.get("run_engines", {}).get(e) == "exact" for r in rows) for e in ENGINES},
        "packed_by_io": {io: sum(r["pack_ok"] for r in rows if r["io"] == io) for io in IO_TYPES},
        "blockers": {lab: {"pairs": len(v), "sole_blocker_of": only[lab], "models": v}
                     for lab, v in sorted(blocked.items(), key=lambda kv: (-len(kv[1]), kv[0]))},
        "ops_by_architecture_count": {op: len(v) for op, v in sorted(op_seen.items(), key=lambda kv: -len(kv[1]))},
        "not_exact": {f"{r['name']}/{r['io']}": r["run"] for r in rows
                      if r["pack_ok"] and r.get("run", "-") not in ("exact", "-")},
        "not_converted": [f"{r['name']}/{r['io']}: {r['error']}" for r in rows if not r["converted"]],
    }


def print_table(rows: list[dict], summary: dict) -> None:
    hdr = (f"{'architecture':24s} {'io':7s} {'conv':>5s} {'ops':>3s} {'pack':4s} {'/'.join(ENGINES):8s} "
           "blockers / error")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        conv = f"{r['convert_s']:.1f}" if isinstance(r.get("convert_s"), float | int) else "-"
        pk = "ok" if r["pack_ok"] else ("FAIL" if r["converted"] else "CONV")
        run = r.get("run", "-")
        if r["pack_ok"]:
            why = "" if run in ("exact", "-") else run
            eng = r.get("run_engines", {})
            run = "-" if not eng else "/".join("ok" if v == "exact" else "X" for v in eng.values())
        elif r["blockers"]:
            why = ", ".join(sorted({blocker_label(b) for b in r["blockers"]}))
        else:
            why = r["error"].splitlines()[0][:110]
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
          f"{s['exact']} run exact on {' and '.join(ENGINES)} "
          f"({', '.join(f'{e} {n}' for e, n in s['exact_by_engine'].items())})")
    if s["not_converted"]:
        print("do not convert:")
        for line in s["not_converted"]:
            print("  " + line.splitlines()[0][:160])
    if s["not_exact"]:
        print("packed but not bit-exact with tflite-micro:")
        for pair, why in s["not_exact"].items():
            print(f"  {pair:34s} {why[:150]}")
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
