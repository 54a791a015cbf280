"""Pruning / structured pruning / distillation demo on scikit-learn's digits (offline), end to end through the CLI.

    make prune-demo        (or: .venv/bin/python models/prune_demo.py [--epochs N] [--out DIR])

1. Digits MLP 64-256-256-10: `mpyml convert --prune 0.8 --train ...` (blocks of 8 output channels, the default)
   against the dense int8 model: accuracy on tflite-micro and the unix port, .mpk size, median unix-port invoke,
   then the invoke benchmark (tools/bench_sparse.py) and `mpyml compare dense.mpk pruned.mpk`.
2. A small CNN (conv / BatchNorm / depthwise / residual add / dense): `--prune-channels 0.5`: MACs, arena, .mpk and
   accuracy before and after.
3. Distillation: a 64-16-10 student trained with and without the MLP as teacher (same init, seed and budget), over
   3 seeds: int8 accuracy mean +- std of each, reported whichever way it comes out.
A demonstration (minutes, two cores), not a timed test; every number printed is measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MPYML = [sys.executable, "-m", "mpyml.cli"]
SEEDS = (0, 1, 2)


def digits(out: Path) -> dict[str, Path]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    x_tr, x_te, y_tr, y_te = train_test_split(x, d.target.astype(np.int64), test_size=0.3, random_state=0,
                                              stratify=d.target)
    paths = {}
    for name, a in (("x_train", x_tr), ("y_train", y_tr), ("x_test", x_te), ("y_test", y_te), ("x_cal", x_tr[:300])):
        paths[name] = out / f"{name}.npy"
        np.save(paths[name], a)
    return paths


def train(keras: Any, layers: list[Any], x: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0) -> Any:
    keras.utils.set_random_seed(seed)
    m = keras.Sequential([keras.Input((8, 8, 1), batch_size=1), *layers])
    m.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    if epochs:
        m.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return m


def cnn(keras: Any) -> Any:
    L = keras.layers  # noqa: N806
    i = keras.Input((8, 8, 1), batch_size=1)
    a = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(i)))
    b = L.ReLU()(L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same")(a)))
    b = L.Conv2D(16, 1)(b)
    r = L.ReLU()(L.Add()([a, b]))
    c = L.Conv2D(32, 3, strides=2, padding="same", activation="relu")(r)
    c = L.AveragePooling2D(2)(c)
    o = L.Softmax()(L.Dense(10)(L.Dense(32, activation="relu")(L.Flatten()(c))))
    return keras.Model(i, o)


def run(cmd: list[str]) -> dict[str, Any]:
    t = time.time()
    r = subprocess.run(MPYML + cmd, capture_output=True, text=True, cwd=REPO)
    if r.returncode not in (0, 1):
        sys.exit(f"mpyml {' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    print(f"  [mpyml {cmd[0]} ... {time.time() - t:.0f} s]", flush=True)
    return json.loads(r.stdout) if "--json" in cmd else {"stdout": r.stdout}


def pct(v: float) -> str:
    return f"{100 * v:.2f}%"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs of each compression stage")
    ap.add_argument("--out", default=str(REPO / "build" / "prune_demo"))
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    p = digits(out)
    x_tr, y_tr = np.load(p["x_train"]), np.load(p["y_train"])
    data = ["--calibration", str(p["x_cal"]), "--eval", str(p["x_test"]), str(p["y_test"]), "--quiet"]
    train_args = ["--train", str(p["x_train"]), str(p["y_train"]), "--epochs", str(args.epochs)]
    L = keras.layers  # noqa: N806

    # 1. magnitude pruning of the digits MLP
    print("1. magnitude pruning, digits MLP 64-256-256-10", flush=True)
    mlp = train(keras, [L.Flatten(), L.Dense(256, activation="relu"), L.Dense(256, activation="relu"), L.Dense(10),
                        L.Softmax()], x_tr, y_tr, 30)
    mlp.save(out / "mlp.keras")
    run(["convert", str(out / "mlp.keras"), "-o", str(out / "mlp_dense.mpk"), *data])
    m = run(["convert", str(out / "mlp.keras"), "-o", str(out / "mlp_pruned.mpk"), *data, "--prune", "0.8",
             *train_args, "--json", "--report", str(out / "report_prune"), "--tflite", str(out / "mlp_pruned.tflite")])
    d = m["prune"]
    print(f"   dense : int8 accuracy {pct(m['int8_accuracy'])} (device {pct(m['device_accuracy'])}), "
          f".mpk {m['file_bytes']:,} B, invoke {m['unix_port_us']:.0f} us, int8 weights "
          f"{m['int8_weight_sparsity']:.1%} zero")
    print(f"   pruned: int8 accuracy {pct(d['int8_accuracy'])} (device {pct(d['device_accuracy'])}, bit-exact "
          f"{d['bit_exact']}), .mpk {d['file_bytes']:,} B ({d['file_bytes'] / m['file_bytes']:.2f}x), invoke "
          f"{d['unix_port_us']:.0f} us ({d['unix_port_us'] / m['unix_port_us']:.2f}x), float kernels "
          f"{d['sparsity']:.1%} zero, int8 weights {d['int8_weight_sparsity']:.1%} zero")
    print(f"   accuracy drop {100 * (m['int8_accuracy'] - d['int8_accuracy']):.2f} points (acceptance: <= 3)")
    # the invoke-time benchmark (sub-microsecond: loops of 2000 invokes per digit, 3 rounds): the pruned .tflite
    # packed dense (what the dense model costs: dense kernels do not skip zeros) against its default sparse pack
    b = subprocess.run([sys.executable, str(REPO / "tools" / "bench_sparse.py"), "--tflite",
                        str(out / "mlp_pruned.tflite"), "--digits"], capture_output=True, text=True, cwd=REPO)
    print("   invoke benchmark (tools/bench_sparse.py; acceptance: size <= 0.45x, median invoke <= 0.75x):\n"
          + "\n".join("     " + ln for ln in b.stdout.splitlines()[1:]) + b.stderr[-2000:])
    c = run(["compare", str(out / "mlp_dense.mpk"), str(out / "mlp_pruned.mpk"), "--eval", str(p["x_test"]),
             str(p["y_test"]), "--plot", str(out / "compare.png")])
    print("   mpyml compare:\n" + "\n".join("     " + ln for ln in c["stdout"].splitlines()))

    # 2. structured pruning of a small CNN
    print("2. structured pruning (50% of channels), small CNN with BatchNorm / depthwise / residual add", flush=True)
    keras.utils.set_random_seed(0)
    net = cnn(keras)
    net.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    net.fit(x_tr, y_tr, epochs=30, batch_size=32, verbose=0)
    net.save(out / "cnn.keras")
    m = run(["convert", str(out / "cnn.keras"), "-o", str(out / "cnn_narrow.mpk"), *data, "--prune-channels",
             "0.5", *train_args, "--json"])
    d = m["prune_channels"]
    print(f"   before: {m['macs']:,} MACs, arena {m['arena_bytes']:,} B, .mpk {m['file_bytes']:,} B, "
          f"int8 accuracy {pct(m['int8_accuracy'])}, invoke {m['unix_port_us']:.0f} us")
    print(f"   after : {d['macs']:,} MACs ({d['macs'] / m['macs']:.2f}x), arena {d['arena_bytes']:,} B, "
          f".mpk {d['file_bytes']:,} B, int8 accuracy {pct(d['int8_accuracy'])} (device "
          f"{pct(d['device_accuracy'])}, bit-exact {d['bit_exact']}), invoke {d['unix_port_us']:.0f} us")
    print("   groups: " + ", ".join(f"{'+'.join(g['layers'])} {g['channels']}->{g['kept']}" for g in d["groups"]))

    # 3. distillation over 3 seeds
    print(f"3. distillation: 64-16-10 student, MLP teacher, {args.epochs * 2} epochs, seeds {SEEDS}", flush=True)
    res: dict[str, list[float]] = {"without": [], "with": []}
    for s in SEEDS:
        st = train(keras, [L.Flatten(), L.Dense(16, activation="relu"), L.Dense(10), L.Softmax()], x_tr, y_tr, 0,
                   seed=s)
        st.save(out / f"student{s}.keras")
        m = run(["convert", str(out / f"student{s}.keras"), "-o", str(out / f"student{s}.mpk"), *data, "--teacher",
                 str(out / "mlp.keras"), "--train", str(p["x_train"]), str(p["y_train"]), "--epochs",
                 str(args.epochs * 2), "--seed", str(s), "--json"])
        d = m["distill"]
        a0, a1 = d["without_teacher"]["int8_accuracy"], d["with_teacher"]["int8_accuracy"]
        res["without"].append(a0)
        res["with"].append(a1)
        print(f"   seed {s}: without teacher {pct(a0)}, with teacher {pct(a1)} (teacher float "
              f"{pct(d['teacher_float_accuracy'])})")
    for k in ("without", "with"):
        v = np.array(res[k]) * 100
        print(f"   {k:7s} teacher: int8 accuracy {v.mean():.2f} +- {v.std(ddof=1):.2f} % (mean +- std, 3 seeds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
