"""`make bench-sparse`: dense vs sparse weights on the digits MLP 64-256-256-10 (Dense/ReLU, int8, ~80% of the
weights zeroed by magnitude pruning; tools/sparse_corpus.py), on the MicroPython unix port (x64 natmod).

Packs the same pruned `.tflite` three times: `mpyml.pack(..., sparse=False)` (dense), the default (the sparse pass
converts the layers its cost model picks) and `sparse="always"` (every layer where smaller), then prints for each:
.mpk bytes and the ratio, the ops, the per-invoke time and whether every output equals tflite-micro's.
Timing (on the device, time.ticks_us, whose 1 us tick cannot resolve one invoke): for each test sample, `--loops`
times a loop of `--invokes` invokes (each restoring the input first, as the arena may reuse the input's bytes),
minus the same loop restoring only; per-invoke µs = the difference / invokes. The table gives the median (and the
mean) of these over samples x loops. The three packings run in turn per round (`--rounds`), so slow drift of the
machine hits them alike; the reported value is each packing's median over all rounds. A benchmark: it reports, it
asserts nothing about speed.

    .venv/bin/python tools/bench_sparse.py [--sparsity 0.8] [--block 8] [--kind mlp] [--engine natmod|viper]
                                           [--tflite M.tflite [--digits]]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sparse_corpus  # noqa: E402

from mpyml import pack  # noqa: E402
from mpyml.mpk import MpkFile  # noqa: E402
from mpyml.tflm import TflmRunner  # noqa: E402
from mpyml.unix_port import run_micropython  # noqa: E402

DEVICE = r"""
import sys, time, mpyml
model, inp, n, invokes, loops, engine = (sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                                         int(sys.argv[5]), sys.argv[6])
m = mpyml.load(model, engine=None if engine == "natmod" else engine)
t = m.inputs[0]
buf = t.buffer
raw = open(inp, "rb").read()
sz = t.size
per = []
out = bytearray()
def restore_only(s, k):
    t0 = time.ticks_us()
    for _ in range(k):
        buf[:] = s
    return time.ticks_diff(time.ticks_us(), t0)
def restore_invoke(s, k):
    inv = m.invoke
    t0 = time.ticks_us()
    for _ in range(k):
        buf[:] = s
        inv()
    return time.ticks_diff(time.ticks_us(), t0)
for i in range(n):
    s = raw[i * sz:(i + 1) * sz]
    buf[:] = s
    m.invoke()
    out += bytes(m.outputs[0].buffer)
    for _ in range(loops):
        per.append((restore_invoke(s, invokes) - restore_only(s, invokes)) / invokes)
per.sort()
print("RESULT", per[len(per) // 2], sum(per) / len(per))
print("OUT", out.hex())
"""


def run(mpk: bytes, xs: np.ndarray, invokes: int, loops: int, engine: str) -> tuple[float, float, bytes]:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d)
        (p / "m.mpk").write_bytes(mpk)
        (p / "x.bin").write_bytes(xs.tobytes())
        (p / "b.py").write_text(DEVICE)
        r = run_micropython([str(p / "b.py"), str(p / "m.mpk"), str(p / "x.bin"), str(len(xs)), str(invokes),
                             str(loops), engine])
    if r.returncode != 0:
        raise SystemExit(f"micropython failed: {r.stderr.strip()[-500:]}")
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
    med, mean = (float(v) for v in lines["RESULT"].split())
    return med, mean, bytes.fromhex(lines["OUT"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", default="mlp", choices=("mlp", "conv1x1", "conv3x3"))
    ap.add_argument("--sparsity", type=float, default=0.8)
    ap.add_argument("--block", type=int, default=8, choices=(1, 4, 8, 16),
                    help="prune in blocks of this many output channels (default 8, as `mpyml convert --prune`; 1: "
                         "every weight alone)")
    ap.add_argument("--invokes", type=int, help="invokes per timed loop (natmod 2000, viper 20)")
    ap.add_argument("--loops", type=int, default=1, help="timed loops per test sample and round")
    ap.add_argument("--rounds", type=int, default=3, help="runs of the three packings in turn")
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--engine", default="natmod", choices=("natmod", "viper"))
    ap.add_argument("--tflite", type=Path, help="an int8 .tflite instead (random int8 inputs, seed 0)")
    ap.add_argument("--digits", action="store_true", help="with --tflite: the digits test samples as inputs "
                    "(a model of 64 or 8x8x1 inputs scaled to [0, 1], as models/prune_demo.py trains)")
    a = ap.parse_args(argv)
    if a.tflite:
        tfl = a.tflite.read_bytes()
        xte = sparse_corpus.digits(True)[2]
    else:
        tfl, xte, _ = sparse_corpus.build(a.kind, a.sparsity, block=a.block)
    dense, sparse, always = pack(tfl, sparse=False), pack(tfl), pack(tfl, sparse="always")
    t = MpkFile(dense).input_tensors()[0]
    if a.tflite and not a.digits:
        xs = np.random.default_rng(0).integers(-128, 128, size=(a.samples, *t.shape[1:]), dtype=np.int8)
    else:
        xs = np.clip(np.round(xte[:a.samples].reshape(-1, *t.shape[1:]) / t.scale) + t.zero_point, -128, 127
                     ).astype(np.int8)
    ref = TflmRunner(tfl)
    want = b"".join(ref.run([xs[i:i + 1].reshape((1, *t.shape[1:]))])[0].tobytes() for i in range(len(xs)))
    what = (f"{a.tflite.name}, {len(xs)} {'digits' if a.digits else 'random'} inputs" if a.tflite else
            f"{a.kind}, {a.sparsity:.0%} of the weights zero"
            f"{f' in blocks of {a.block}' if a.block > 1 else ''}, {len(xs)} digits test samples")
    invokes = a.invokes or (2000 if a.engine == "natmod" else 20)
    print(f"{what}; {a.engine} on the unix port, loops of {invokes} invokes, {a.loops} per sample, "
          f"{a.rounds} rounds")
    packs = {"dense": dense, "sparse": sparse, "always": always}
    meds: dict[str, list[float]] = {k: [] for k in packs}
    means: dict[str, list[float]] = {k: [] for k in packs}
    exact: dict[str, bool] = {}
    for _ in range(a.rounds):
        for name, mpk in packs.items():
            med, mean, out = run(mpk, xs, invokes, a.loops, a.engine)
            meds[name].append(med)
            means[name].append(mean)
            exact[name] = exact.get(name, True) and out == want
    print(f"{'':8} {'bytes':>7} {'ratio':>6} {'median us':>10} {'mean us':>8} {'rounds (median us)':>24}  exact  ops")
    res = {}
    for name, mpk in packs.items():
        med, mean = float(np.median(meds[name])), float(np.median(means[name]))
        res[name] = (len(mpk), med, mean)
        names = [o.name.replace("FULLY_CONNECTED", "FC") for o in MpkFile(mpk).ops]
        ops = " ".join(names) if len(names) <= 8 else ", ".join(
            f"{n} x{names.count(n)}" for n in dict.fromkeys(names))
        rounds = " ".join(f"{v:.2f}" for v in meds[name])
        print(f"{name:8} {len(mpk):7d} {len(mpk) / len(dense):6.3f} {med:10.2f} {mean:8.2f} {rounds:>24}  "
              f"{'yes' if exact[name] else 'NO':5}  {ops}")
    base = res["dense"]
    for name in ("sparse", "always"):
        n, med, mean = res[name]
        print(f"{name} / dense: size {n / len(dense):.3f}, median {med / base[1]:.3f}, mean {mean / base[2]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
