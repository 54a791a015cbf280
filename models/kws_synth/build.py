"""Keyword spotting trained on offline-synthesized speech: espeak-ng words -> the board's MFCC -> int8 DS-CNN.

    make kws-synth          (or: .venv/bin/python models/kws_synth/build.py [--force] [--epochs N] [--qat-epochs N])

Words are spoken by Debian's `espeak-ng` (installed by `make setup`) in several voices, voice variants, speeds and
pitches, resampled from 22.05 kHz to 16 kHz, placed at a random offset in a 1 s clip with a random gain and mixed
with synthesized noise (white / pink / brown / mains hum) at a random SNR; a "silence" class is noise alone and an
"unknown" class is other words. The held-out split uses voices, variants, speeds and pitches that training never
sees. Features are computed by the device code itself (mpyml.pre.audio.MFCC, the C kernels of the natmod) on the
MicroPython unix port (app/main.py --features), so the model is trained on exactly what the board computes.
The float model is converted with `mpyml.convert` (PTQ and QAT), both evaluated on the held-out clips on
tflite-micro and on the unix port (bit-exactness checked); the QAT model is then run end to end on the device
(raw audio -> board MFCC -> model, app/main.py --classify). Output (cached): build/models/kws_synth/.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path) -> Any:
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


U = _load("mpyml_example_util", HERE.parent / "common" / "example_util.py")
OUT = U.BUILD / "kws_synth"
APP = HERE / "app" / "main.py"
MPK = OUT / "kws_synth.mpk"
PTQ_MPK = OUT / "kws_synth_ptq.mpk"

KEYWORDS = ["yes", "no", "up", "down", "left", "right", "stop", "go"]
LABELS = [*KEYWORDS, "silence", "unknown"]
SILENCE, UNKNOWN = LABELS.index("silence"), LABELS.index("unknown")
UNKNOWN_WORDS = ["bed", "bird", "cat", "dog", "house", "tree", "wow", "happy", "seven", "zero", "off", "on",
                 "learn", "follow", "forward", "visual"]
RATE = 16000
CLIP = RATE
# what training sees / what the held-out evaluation uses (espeak-ng voices without mbrola, variants, -s, -p)
TRAIN = {"voices": ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029"],
         "variants": ["", "m1", "m3", "m5", "f1", "f2", "f4", "klatt", "croak"],
         "speeds": [115, 140, 165, 190, 215], "pitches": [25, 40, 55, 70, 85]}
HELD_OUT = {"voices": ["en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc"],
            "variants": ["m2", "m7", "f3", "f5"],
            "speeds": [130, 175, 205], "pitches": [33, 48, 62, 78]}


class ExampleError(Exception):
    """A problem the user can fix; main() prints it on one line and exits 2."""


def espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise ExampleError("espeak-ng not found: install it with `make setup` (Debian package espeak-ng)")
    return exe


def espeak_version() -> str:
    return subprocess.run([espeak(), "--version"], capture_output=True, text=True, check=True).stdout.strip()


def synth(word: str, voice: str, variant: str, speed: int, pitch: int) -> np.ndarray:
    """One word spoken by espeak-ng, as 16 kHz int16 (espeak-ng writes 22.05 kHz; polyphase resampling)."""
    from scipy.signal import resample_poly

    v = f"{voice}+{variant}" if variant else voice
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        r = subprocess.run([espeak(), "-v", v, "-s", str(speed), "-p", str(pitch), "-w", f.name, word],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise ExampleError(f"espeak-ng -v {v} failed ({r.stderr.strip() or r.returncode}): check "
                               "`espeak-ng --voices`")
        with wave.open(f.name) as w:
            rate = w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)
    g = np.gcd(RATE, rate)
    y = resample_poly(x, RATE // g, rate // g)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def trim(x: np.ndarray, rel: float = 0.02) -> np.ndarray:
    """The word without espeak-ng's leading / trailing silence."""
    a = np.abs(x.astype(np.int32))
    idx = np.flatnonzero(a > rel * max(int(a.max()), 1))
    return x[idx[0]:idx[-1] + 1] if len(idx) else x[:0]


def noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-RMS background noise: white, pink, brown or mains hum with harmonics (+ a little white)."""
    kind = rng.integers(4)
    if kind == 0:
        z = rng.normal(size=n)
    elif kind in (1, 2):
        spec = np.fft.rfft(rng.normal(size=n))
        f = np.arange(len(spec), dtype=np.float64)
        f[0] = 1.0
        spec /= np.sqrt(f) if kind == 1 else f
        z = np.fft.irfft(spec, n)
    else:
        t = np.arange(n) / RATE
        f0 = rng.choice([50.0, 60.0])
        z = sum(rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) for h in (1, 2, 3, 5))
        z = z + 0.1 * rng.normal(size=n)
    return z / (np.sqrt(np.mean(z ** 2)) + 1e-12)


def make_clip(word: np.ndarray | None, rng: np.random.Generator, snr_db: tuple[float, float] = (5.0, 30.0),
              noisy: bool = True) -> np.ndarray:
    """A 1 s int16 clip: the (trimmed) word at a random offset and gain, plus noise at a random SNR.
    word None: a silence clip (noise only, random level; sometimes near-digital silence)."""
    out = np.zeros(CLIP, np.float64)
    if word is not None:
        w = trim(word).astype(np.float64)
        if len(w) > CLIP:
            s = (len(w) - CLIP) // 2
            w = w[s:s + CLIP]
        off = int(rng.integers(0, CLIP - len(w) + 1))
        w *= rng.uniform(0.15, 1.0) * 30000 / max(np.abs(w).max(), 1.0)
        out[off:off + len(w)] = w
        if noisy:
            sig_rms = np.sqrt(np.mean(w ** 2))
            out += noise(rng, CLIP) * sig_rms / 10 ** (rng.uniform(*snr_db) / 20)
    else:
        out += noise(rng, CLIP) * 10 ** rng.uniform(0.0, 3.3)
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def renders(split: dict[str, list[Any]], words: list[str], per_word: int,
            rng: np.random.Generator) -> list[tuple[str, str, str, int, int]]:
    """per_word distinct (word, voice, variant, speed, pitch) draws from the split's grid, per word."""
    grid = [(v, va, s, p) for v in split["voices"] for va in split["variants"] for s in split["speeds"]
            for p in split["pitches"]]
    jobs = []
    for w in words:
        for i in rng.choice(len(grid), size=min(per_word, len(grid)), replace=False):
            jobs.append((w, *grid[int(i)]))
    return jobs


def synth_all(jobs: list[tuple[str, str, str, int, int]], workers: int = 2) -> list[np.ndarray]:
    with ThreadPoolExecutor(workers) as ex:
        return list(ex.map(lambda j: synth(*j), jobs))


def dataset(split: dict[str, list[Any]], per_keyword: int, per_unknown: int, copies: int, silence: int,
            seed: int, snr_db: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Clips (N, 16000) int16 and labels (N,) of one split."""
    rng = np.random.default_rng(seed)
    jobs = renders(split, KEYWORDS, per_keyword, rng) + renders(split, UNKNOWN_WORDS, per_unknown, rng)
    words = synth_all(jobs)
    clips, labels = [], []
    for (w, *_), audio in zip(jobs, words, strict=True):
        lab = LABELS.index(w) if w in KEYWORDS else UNKNOWN
        for _ in range(copies):
            clips.append(make_clip(audio, rng, snr_db))
            labels.append(lab)
    for _ in range(silence):
        clips.append(make_clip(None, rng))
        labels.append(SILENCE)
    return np.stack(clips), np.array(labels, np.int64)


# ---------------------------------------------------------------------------------------------- device
def _device(args: list[str], timeout: float = 600) -> str:
    r = U.run_app(APP, args, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"device app failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def device_features(clips: np.ndarray, engine: str | None = None) -> tuple[np.ndarray, str]:
    """The board's MFCC of each clip, run on the MicroPython unix port: float32 (N, 49, 10, 1), and the
    engine ('c' natmod kernels or the 'py' fallback)."""
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "clips.raw", Path(d) / "feats.raw"
        src.write_bytes(np.ascontiguousarray(clips, "<i2").tobytes())
        out = _device(["--features", str(src), str(dst), *(["--engine", engine] if engine else [])])
        done = U.parse_lines(out, "DONE")
        q16 = np.frombuffer(dst.read_bytes(), "<i4")
    if not done or int(done[0]["clips"]) != len(clips) or q16.size != len(clips) * 490:
        raise RuntimeError(f"device features: expected {len(clips)} clips, got:\n{out}")
    return (q16.astype(np.float64) / 65536).astype(np.float32).reshape(len(clips), 49, 10, 1), done[0]["engine"]


def device_classify(mpk: Path, clips: np.ndarray) -> np.ndarray:
    """Labels the device app gives each clip end to end (raw audio -> board MFCC -> model) on the unix port."""
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "clips.raw"
        src.write_bytes(np.ascontiguousarray(clips, "<i2").tobytes())
        out = _device(["--model", str(mpk), "--classify", str(src)])
    got = np.array([int(c["index"]) for c in U.parse_lines(out, "CLIP")], np.int64)
    if len(got) != len(clips):
        raise RuntimeError(f"device classify: expected {len(clips)} clips, got:\n{out}")
    return got


# ---------------------------------------------------------------------------------------------- model
def make_model(n_classes: int = len(LABELS), width: int = 32, batch_norm: bool = True) -> Any:
    """A small DS-CNN (tf_keras, the Keras that QAT fine-tunes): conv 10x4/2, two depthwise-separable blocks,
    global average pool, dense, softmax; batch norm after each conv (folded into the int8 convs by the converter).

    Batch norm keeps every activation near unit scale. Without it the unnormalized MFCCs (about -50..+25) give
    ReLU outputs in the hundreds, and tensorflow-model-optimization's QAT starts each activation range at
    [-6, 6], moved by an EMA with decay 0.999: a few QAT epochs then leave activations clipped and QAT far below
    PTQ (75% vs 80% in our runs). batch_norm=False (ReLU fused in the convs): for tiny data sets (the test), where
    the batch-norm statistics would not settle in a few steps."""
    import tf_keras

    L = tf_keras.layers  # noqa: N806

    def block(*convs: Any) -> list[Any]:
        if not batch_norm:
            return [c.__class__.from_config({**c.get_config(), "activation": "relu"}) for c in convs]
        return [y for c in convs for y in (c, L.BatchNormalization(), L.ReLU())]

    return tf_keras.Sequential([
        tf_keras.Input((49, 10, 1)),
        *block(L.Conv2D(width, (10, 4), strides=(2, 2), padding="same"),
               L.DepthwiseConv2D((3, 3), padding="same"), L.Conv2D(width, (1, 1)),
               L.DepthwiseConv2D((3, 3), padding="same"), L.Conv2D(width, (1, 1))),
        L.AveragePooling2D((25, 5)),
        L.Flatten(),
        L.Dense(n_classes),
        L.Softmax(),
    ])


def train(x: np.ndarray, y: np.ndarray, epochs: int, width: int = 32, seed: int = U.SEED,
          batch_norm: bool = True, batch_size: int = 32) -> Any:
    U.import_tf()
    import tf_keras

    tf_keras.utils.set_random_seed(seed)
    m = make_model(width=width, batch_norm=batch_norm)
    m.compile(optimizer=tf_keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    sched = tf_keras.callbacks.LearningRateScheduler(lambda e, lr: 3e-3 * 0.5 ** (3 * e / max(epochs, 1)))
    m.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=[sched])
    return m


def save_h5(model: Any, path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)    # "HDF5 ... legacy": the tf_keras file QAT fine-tunes
        model.save(path)


# ---------------------------------------------------------------------------------------------- pipeline
def build(epochs: int = 40, qat_epochs: int = 3, per_keyword: int = 90, force: bool = False,
          log: Any = print) -> dict[str, Any]:
    key = U.file_hash(Path(__file__), APP, U.REPO / "device" / "mpyml" / "pre" / "audio.py",
                      U.REPO / "device" / "mpyml" / "pre" / "_fallback.py", U.REPO / "host" / "mpyml" / "convert.py")
    key += f":{espeak_version()}:{epochs}:{qat_epochs}:{per_keyword}"

    def make() -> dict[str, Any]:
        import mpyml

        t0 = time.monotonic()
        per_unknown = max(1, per_keyword // 3)
        log(f"synthesizing: {len(KEYWORDS)} keywords x {per_keyword} + {len(UNKNOWN_WORDS)} unknown words x "
            f"{per_unknown} renders (training voices), and the held-out voices ...")
        x_tr_a, y_tr = dataset(TRAIN, per_keyword, per_unknown, copies=2, silence=2 * per_keyword, seed=1,
                               snr_db=(5.0, 30.0))
        x_te_a, y_te = dataset(HELD_OUT, 2 * per_keyword // 3, max(1, 2 * per_unknown // 3), copies=1,
                               silence=2 * per_keyword // 3, seed=2, snr_db=(10.0, 30.0))
        t_syn = time.monotonic() - t0
        log(f"  {len(y_tr)} training / {len(y_te)} held-out clips in {t_syn:.0f} s; board MFCC on the unix port ...")
        x_tr, engine = device_features(x_tr_a)
        x_te, _ = device_features(x_te_a)
        t_feat = time.monotonic() - t0 - t_syn
        log(f"  features ({engine} kernels) in {t_feat:.0f} s; training the float model ({epochs} epochs) ...")
        model = train(x_tr, y_tr, epochs)
        h5 = OUT / "kws_synth_float.h5"
        OUT.mkdir(parents=True, exist_ok=True)
        save_h5(model, h5)
        cal = x_tr[np.random.default_rng(3).choice(len(x_tr), 300, replace=False)]
        log(f"  converting (PTQ, then QAT {qat_epochs} epochs) and evaluating on tflite-micro and the unix port ...")
        res = mpyml.convert(h5, cal, eval_data=(x_te, y_te), io="int8", qat=True, train_data=(x_tr, y_tr),
                            epochs=qat_epochs, progress=False, sqnr=False)
        assert res.qat_mpk is not None
        U.write_atomic(PTQ_MPK, res.mpk)
        U.write_atomic(MPK, res.qat_mpk)
        U.write_atomic(OUT / "kws_synth.tflite", res.qat_tflite or b"")
        e2e = device_classify(MPK, x_te_a)
        e2e_ptq = device_classify(PTQ_MPK, x_te_a)
        m = res.metrics
        return {
            "files": [MPK.name, PTQ_MPK.name, h5.name, "kws_synth.tflite"],
            "labels": LABELS, "train_clips": len(y_tr), "held_out_clips": len(y_te), "mfcc_engine": engine,
            "train_split": TRAIN, "held_out_split": HELD_OUT,
            "float_accuracy": m["float_accuracy"],
            "ptq": {"int8_accuracy": m["int8_accuracy"], "device_accuracy": m["device_accuracy"],
                    "bit_exact_samples": m["bit_exact_samples"],
                    "device_e2e_accuracy": float(np.mean(e2e_ptq == y_te))},
            "qat": {"int8_accuracy": m["qat"]["int8_accuracy"], "device_accuracy": m["qat"]["device_accuracy"],
                    "bit_exact_samples": m["qat"]["bit_exact_samples"],
                    "device_e2e_accuracy": float(np.mean(e2e == y_te)), "epochs": qat_epochs},
            "eval_samples": m["eval_samples"], "arena_bytes": m["arena_bytes"], "file_bytes": len(res.qat_mpk),
            "macs": m["macs"], "unix_port_us": m.get("unix_port_us"),
            "per_class_e2e": {LABELS[c]: float(np.mean(e2e[y_te == c] == c)) for c in range(len(LABELS))
                              if np.any(y_te == c)},
            "seconds": {"synth": round(t_syn, 1), "features": round(t_feat, 1),
                        "total": round(time.monotonic() - t0, 1)},
        }

    return U.cached(OUT, key, make, force)


def table(meta: dict[str, Any]) -> str:
    n = meta["eval_samples"]
    p, q = meta["ptq"], meta["qat"]
    rows = [("float (Keras)", meta["float_accuracy"], "-", "-", "-"),
            ("int8 PTQ", p["int8_accuracy"], p["device_accuracy"], f"{p['bit_exact_samples']}/{n}",
             p["device_e2e_accuracy"]),
            (f"int8 QAT ({q['epochs']} ep)", q["int8_accuracy"], q["device_accuracy"], f"{q['bit_exact_samples']}/{n}",
             q["device_e2e_accuracy"])]
    out = [f"held-out accuracy, {n} clips ({', '.join(HELD_OUT['voices'])}; variants "
           f"{', '.join(HELD_OUT['variants'])}; speeds {HELD_OUT['speeds']}; pitches {HELD_OUT['pitches']})",
           f"  {'model':<18} {'accuracy':>9} {'device':>9} {'bit-exact':>10} {'device e2e':>11}"]

    def pct(v: Any) -> str:
        return f"{v:9.2%}" if isinstance(v, float) else f"{v:>9}"

    for name, acc, dev, be, e2e in rows:
        out.append(f"  {name:<18} {pct(acc)} {pct(dev)} {be:>10} {pct(e2e):>11}")
    out.append("  accuracy: float Keras / int8 on tflite-micro; device: the .mpk on the MicroPython unix port (C "
               "engine) on the same features; bit-exact: device vs tflite-micro; device e2e: raw audio -> board MFCC "
               "-> model, all on the unix port")
    out.append(f"  model: {meta['file_bytes']} B .mpk, arena {meta['arena_bytes']} B, {meta['macs']} MACs, "
               f"{meta['unix_port_us']} us/invoke (unix port); {meta['train_clips']} training clips; "
               f"build {meta['seconds']['total']:.0f} s")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40, help="float training epochs (default 40)")
    ap.add_argument("--qat-epochs", type=int, default=3, help="QAT fine-tuning epochs (default 3)")
    ap.add_argument("--per-keyword", type=int, default=90, help="training renders per keyword (default 90)")
    ap.add_argument("--force", action="store_true", help="rebuild even when build/models/kws_synth is current")
    ap.add_argument("--json", action="store_true", help="print the metrics as JSON")
    ap.add_argument("--say", nargs=2, metavar=("WORD", "OUT_WAV"),
                    help="only write WORD spoken by espeak-ng as a 1 s 16 kHz clip (for app/main.py --clips)")
    ap.add_argument("--voice", default="en-us", help="espeak-ng voice[+variant] for --say (default en-us)")
    a = ap.parse_args(argv)
    try:
        if a.say:
            voice, _, variant = a.voice.partition("+")
            clip = make_clip(synth(a.say[0], voice, variant, 160, 50), np.random.default_rng(0), noisy=False)
            try:
                with open(a.say[1], "wb") as f, wave.open(f, "wb") as w:
                    w.setnchannels(1)
                    w.setsampwidth(2)
                    w.setframerate(RATE)
                    w.writeframes(clip.astype("<i2").tobytes())
            except OSError as e:
                raise ExampleError(f"cannot write {a.say[1]} ({e.strerror}): give a writable path") from None
            print(f"wrote {a.say[1]}: {a.say[0]!r} ({a.voice}), 1 s, 16 kHz")
            return 0
        if a.epochs < 1 or a.qat_epochs < 1 or a.per_keyword < 3:
            raise ExampleError("--epochs and --qat-epochs must be at least 1, --per-keyword at least 3")
        meta = build(a.epochs, a.qat_epochs, a.per_keyword, a.force)
    except ExampleError as e:
        print(f"kws_synth: {e}", file=sys.stderr)
        return 2
    print(json.dumps(meta, indent=2) if a.json else table(meta))
    p, q = meta["ptq"], meta["qat"]
    n = meta["eval_samples"]
    return 0 if p["bit_exact_samples"] == n and q["bit_exact_samples"] == n else 1


if __name__ == "__main__":
    sys.exit(main())
