"""`mpyml fit`: scale a PhiNet-style backbone (host/mpyml/phinet.py) to a board's RAM, flash and MACs budget.

Owns: the budget figures of a packed model, the cheap calibrated predictor, the search over width alpha,
shape factor beta, first expansion t0 and block count, and the command.

What is counted (the real pipeline: Keras -> TFLiteConverter full-int8 PTQ with a random representative
dataset -> `packer.pack_model`, on a copy of the model with random weights so that no blob is shared and no
scale is degenerate, as after training):
- RAM: the packed arena (the int8 input and output tensors live in it) + the engine context `mpyml.load`
  allocates (`mpyml_ctx_size`: its copy of the validated records and the trusted region) + the .mpk itself
  when the model is loaded into RAM (`--model-in-ram`; the board profiles that have no ROMFS).
- flash: the .mpk file size.  MACs: the packed header's `macs` (what `mpyml inspect` / `m.info()` report).

Search: each candidate's figures are predicted from its layer list (liveness of the activations for the
arena, byte counts of weights, biases, per-channel requantization and records for file and context, MAC
counts as the packer counts them), each figure scaled by the largest real/predicted ratio measured so far.
The best predicted candidate inside the budget is converted and packed for real; that measurement
re-calibrates the predictor; this repeats (a few real conversions in all) and the best real model inside
every budget wins. A budget the smallest PhiNet cannot meet is an error naming the smallest reachable figure.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import spec
from .fit_boards import BOARDS, Board
from .phinet import Arch, layers

FIGURES = ("ram", "flash", "macs")
ALPHAS = tuple(round(0.03 * 1.12 ** i, 4) for i in range(48))        # 0.03 .. ~6
BETAS = (0.5, 0.75, 1.0, 1.5, 2.0)
T0S = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
BLOCKS = (5, 6, 7, 8, 9)
HEADROOM = 64          # bytes: the same model trained packed 16 B more context here (requantization tables)
PLANNED = 200          # candidates per round whose arena the planner computes (~3-7 ms each)
CTX_STRUCT_BYTES = 144          # sizeof(mpyml_ctx_t) on a 64-bit host (32-bit boards: less)
VIPER_CTX_BYTES = 384 * 4       # viper_engine._CTX_WORDS words


class FitError(ValueError):
    """A budget or option that cannot be met: one line, `mpyml fit` exits 2."""


@dataclass
class Budget:
    ram: int
    flash: int
    macs: int
    model_in_ram: bool = False
    engine: str = "c"            # whose context is counted: "c" or "viper"

    def fraction(self, fig: dict[str, int]) -> dict[str, float]:
        return {k: fig[k] / getattr(self, k) for k in FIGURES}

    def limit(self, k: str) -> int:
        """What a measured figure may reach: RAM and flash keep HEADROOM bytes for what training changes."""
        return getattr(self, k) - (HEADROOM if k != "macs" else 0)

    def fits(self, fig: dict[str, int]) -> bool:
        return all(fig[k] <= self.limit(k) for k in FIGURES)


@dataclass
class Figures:
    """A packed model's budget figures (or their prediction)."""

    arena: int
    ctx: int
    file: int
    macs: int

    def budget_view(self, model_in_ram: bool) -> dict[str, int]:
        return {"ram": self.arena + self.ctx + (self.file if model_in_ram else 0), "flash": self.file,
                "macs": self.macs}


# ---------------------------------------------------------------- the cheap predictor (no TensorFlow)

def _a16(n: int) -> int:
    return (n + 15) // 16 * 16


def _a8(n: int) -> int:
    return (n + 7) // 8 * 8


def raw_figures(a: Arch, engine: str = "c") -> Figures:
    """Figures counted from the layer list alone: exact MACs, activation liveness, bytes of the records."""
    ly = layers(a)
    h, w, c = a.input_shape
    sizes = [h * w * c] + [math.prod(x.out_shape) for x in ly]     # tensor t: 0 input, i+1 output of layer i
    last_use = list(range(len(sizes)))                              # tensor i is read by layer i
    last_use[-1] = len(ly)                                          # the output stays
    for i, x in enumerate(ly):
        if x.kind == "add":
            last_use[x.skip_from] = i                               # the shortcut lives until the add
    arena = 0
    for i in range(len(ly)):
        live = sum(_a16(sizes[t]) for t in range(len(sizes)) if t <= i + 1 and last_use[t] >= i)
        arena = max(arena, live)
    macs = data = trusted = n_tensors = ops_size = 0
    n_tensors = len(sizes)
    for x in ly:
        out = math.prod(x.out_shape)
        cin, cout = x.in_shape[2], x.out_shape[2]
        kk = x.kernel[0] * x.kernel[1]
        if x.kind in ("conv", "dw", "fc"):
            n_w = {"conv": cout * cin, "dw": cout * kk, "fc": cout * cin}[x.kind]
            macs += {"conv": out * cin, "dw": out * kk, "fc": cout * cin}[x.kind]
            data += _a16(n_w) + _a16(4 * cout)                     # int8 weights, int32 bias
            trusted += 2 * _a16(4 * cout)                          # per-channel multiplier and shift
            n_tensors += 4
            ops_size += 8 + 2 * 6 + 4 * 11
        elif x.kind == "mean":
            macs += math.prod(x.in_shape)
            ops_size += 8 + 2 * 2 + 4 * 5
        else:
            ops_size += 8 + 2 * 4 + 4 * 8
    data += trusted
    file = spec.HEADER_SIZE + n_tensors * spec.TENSOR_SIZE + ops_size + 4 + 16 + data
    base = VIPER_CTX_BYTES if engine == "viper" else _a8(CTX_STRUCT_BYTES)
    ctx = base + _a8(n_tensors * spec.TENSOR_SIZE) + _a8(ops_size) + 8 + trusted + 64   # 64: slack
    return Figures(arena, ctx, file, macs)


@dataclass
class _T:
    storage: int
    shape: tuple[int, ...]
    offset: int = 0
    flags: int = 0

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape)


@dataclass
class _Op:
    opcode: int
    inputs: list[int]
    outputs: list[int]
    params: list[int] = field(default_factory=list)


def _same_pad(size: int, k: int, s: int) -> int:
    out = -(-size // s)
    return max(0, (out - 1) * s + k - size) // 2


def planned_arena(a: Arch, search: bool = False) -> tuple[int, int]:
    """(arena, ops rewritten in place) from the packer's own planner (`planner.plan_arena`, in-place ops and
    conv variants included) run on the activation graph of `a`: int8 tensors with the packer's shapes and
    the conv params the planner reads. Without `search` only its fixed placement orders are tried, so the
    arena is at least the packer's."""
    from .planner import plan_arena
    s_arena, s_const = spec.STORAGE["arena"], spec.STORAGE["const"]
    code = spec.OPCODES
    h, w, c = a.input_shape
    ts: list[_T] = [_T(s_const, (1,)), _T(s_arena, (1, h, w, c))]
    ops: list[_Op] = []
    cur = 1
    outs: list[int] = []                                          # tensor index of each layer's input
    for x in layers(a):
        outs.append(cur)
        oh, ow, oc = x.out_shape
        shape: tuple[int, ...] = (1, oh, ow, oc) if x.kind not in ("mean", "fc", "softmax") else (1, oc)
        ts.append(_T(s_arena, shape))
        y = len(ts) - 1
        if x.kind in ("conv", "dw"):
            ph = _same_pad(x.in_shape[0], x.kernel[0], x.stride[0])
            pw = _same_pad(x.in_shape[1], x.kernel[1], x.stride[1])
            kh, kw = x.kernel
            ts.append(_T(s_const, (oc, kh, kw, x.in_shape[2]) if x.kind == "conv" else (1, kh, kw, oc)))
            ops.append(_Op(code["CONV_2D" if x.kind == "conv" else "DEPTHWISE_CONV_2D"], [cur, len(ts) - 1, 0, 0, 0],
                           [y], [x.stride[1], x.stride[0], 1, 1, pw, ph, 0, 0, -128, 127, 1]))
        elif x.kind == "add":
            ops.append(_Op(code["ADD"], [outs[x.skip_from], cur], [y]))
        elif x.kind == "mean":
            ops.append(_Op(code["MEAN"], [cur], [y]))
        elif x.kind == "fc":
            ops.append(_Op(code["FULLY_CONNECTED"], [cur, 0, 0], [y]))
        else:
            ops.append(_Op(code["SOFTMAX"], [cur], [y]))
        cur = y

    def scratch(_step: int, n: int) -> int:
        ts.append(_T(s_arena, (n,)))
        return len(ts) - 1

    before = [op.opcode for op in ops]
    arena = plan_arena(ts, ops, [1], [cur], spec.ALIGN_ARENA, search=search, new_scratch=scratch, slow_in_place=True)
    return arena, sum(1 for op, b in zip(ops, before, strict=True) if op.opcode != b)


INPLACE_EXTRA = 40      # file / context bytes an in-place conv adds: its scratch tensor record + operand + param


@dataclass
class Predictor:
    """Figures of a candidate without converting it. Cheap: `raw_figures`. Exact arena: the packer's planner
    on the activation graph (`planned_arena`, cached), with the file / context records its in-place
    rewrites add. File, context and MACs are scaled by the largest real/predicted ratio measured so far
    (1 before any measurement); the arena is not (the planner without its search is never below the
    packer's)."""

    engine: str = "c"
    ratios: dict[str, float] = field(default_factory=lambda: {"ctx": 1.0, "file": 1.0, "macs": 1.0})
    seen: int = 0
    _plans: dict[Arch, tuple[int, int]] = field(default_factory=dict)

    def _base(self, a: Arch, exact: bool) -> Figures:
        r = raw_figures(a, self.engine)
        if not exact:
            return r
        if a not in self._plans:
            self._plans[a] = planned_arena(a)
        arena, rewritten = self._plans[a]
        return Figures(arena, r.ctx + INPLACE_EXTRA * rewritten, r.file + INPLACE_EXTRA * rewritten, r.macs)

    def predict(self, a: Arch, exact: bool = True) -> Figures:
        b = self._base(a, exact)
        return Figures(b.arena, *(math.ceil(getattr(b, k) * self.ratios[k]) for k in ("ctx", "file", "macs")))

    def learn(self, a: Arch, real: Figures) -> None:
        b = self._base(a, True)
        for k in self.ratios:
            q = getattr(real, k) / max(1, getattr(b, k))
            self.ratios[k] = q if self.seen == 0 else max(self.ratios[k], q)
        self.seen += 1


# ---------------------------------------------------------------- the real pipeline

@dataclass
class Packed:
    arch: Arch
    figures: Figures
    mpk: bytes
    seconds: float


def ctx_bytes(mpk: bytes, engine: str = "c") -> int:
    """The engine context `mpyml.load` allocates for a model loaded from bytes: mpyml_ctx_size (C engine,
    mpyml_engine.c: the struct + 8-aligned copies of the tensor table, op records, io list and trusted
    region) or viper_engine.ctx_size (its 384 words + the same copies)."""
    h = _header(mpk)
    copies = (_a8(h["n_tensors"] * spec.TENSOR_SIZE) + _a8(h["ops_size"]) + _a8(2 * (h["n_inputs"] + h["n_outputs"]))
              + _a8(h["trusted_size"]))
    return copies + (VIPER_CTX_BYTES if engine == "viper" else _a8(CTX_STRUCT_BYTES))


def _header(mpk: bytes) -> dict[str, int]:
    from .mpk import MpkFile
    return dict(MpkFile(mpk).header)


def packed_figures(mpk: bytes, engine: str = "c") -> Figures:
    h = _header(mpk)
    return Figures(int(h["arena_size"]), ctx_bytes(mpk, engine), len(mpk), int(h["macs"]))


def real_pack(a: Arch, engine: str = "c", seed: int = 0) -> Packed:
    """Build the Keras model, convert it to int8 with random calibration data, pack it: the real figures."""
    from .convert import load_model, quantized_tflite
    from .packer import pack_model, serialize
    from .phinet import keras_model, randomized_copy
    t = time.monotonic()
    model = randomized_copy(keras_model(a), seed)
    calib = np.random.default_rng(seed).random((8, *a.input_shape), dtype=np.float32)
    tflite = quantized_tflite(load_model(model), calib, io="int8")
    mpk = serialize(pack_model(tflite, slow_in_place=True))   # = `mpyml pack --max-ram` when RAM is the limit
    return Packed(a, packed_figures(mpk, engine), mpk, time.monotonic() - t)


# ---------------------------------------------------------------- the search

def candidates(input_shape: tuple[int, int, int], classes: int) -> list[Arch]:
    return [Arch(input_shape, classes, al, be, t0, n) for n in BLOCKS for t0 in T0S for be in BETAS
            for al in ALPHAS]


def score(frac: dict[str, float]) -> float:
    """How close to the budget: the binding figure's fraction, then the mean (all fractions <= 1)."""
    return max(frac.values()) + 0.1 * sum(frac.values()) / len(frac)


def smallest(input_shape: tuple[int, int, int], classes: int) -> Arch:
    """The least of every figure: width 1 everywhere, no expand convs (t = 1), the fewest blocks."""
    return Arch(input_shape, classes, ALPHAS[0], 1.0, 1.0, BLOCKS[0])


@dataclass
class FitResult:
    best: Packed
    predicted: Figures
    budget: Budget
    tried: list[tuple[Packed, Figures]]

    def as_json(self) -> dict[str, Any]:
        b = self.budget
        real = self.best.figures.budget_view(b.model_in_ram)
        return {
            "arch": asdict(self.best.arch),
            "budget": asdict(b),
            "predicted": {**self.predicted.budget_view(b.model_in_ram), **asdict(self.predicted)},
            "packed": {**real, **asdict(self.best.figures)},
            "fraction": b.fraction(real),
            "real_conversions": [{"arch": asdict(p.arch), "packed": p.figures.budget_view(b.model_in_ram),
                                  "predicted": pr.budget_view(b.model_in_ram), "fits": b.fits(
                                      p.figures.budget_view(b.model_in_ram)), "seconds": round(p.seconds, 2)}
                                 for p, pr in self.tried],
        }


def fit(budget: Budget, input_shape: tuple[int, int, int], classes: int, max_packs: int = 4,
        log: Any = None) -> FitResult:
    """Search alpha, beta, t0 and the block count; at most `max_packs` real conversions (+1 when the first
    measurement shows the budget is out of reach)."""
    say = log or (lambda _m: None)
    pred = Predictor(engine=budget.engine)
    pool = candidates(input_shape, classes)
    tried: list[tuple[Packed, Figures]] = []
    done: set[Arch] = set()
    best: tuple[float, Packed, Figures] | None = None
    tiny = smallest(input_shape, classes)
    shrink = 1.0                 # tightened after a candidate predicted inside turns out over the budget
    for _ in range(max_packs):
        cheap = []
        for a in pool:           # cheap figures for all; the planner only for the most promising
            if a in done:
                continue
            frac = budget.fraction(pred.predict(a, exact=False).budget_view(budget.model_in_ram))
            if frac["flash"] <= shrink and frac["macs"] <= shrink and frac["ram"] <= 2.0:
                key = score({k: min(v, 1.0) for k, v in frac.items()}) - max(0.0, frac["ram"] - 1.0)
                cheap.append((key, a))
        cheap.sort(key=lambda r: -r[0])
        ranked = []
        for _, a in cheap[:PLANNED]:
            f = pred.predict(a)
            view = f.budget_view(budget.model_in_ram)
            if all(view[k] <= budget.limit(k) * shrink for k in FIGURES):
                ranked.append((score(budget.fraction(view)), a, f))
        if not ranked:
            if best is not None:
                break
            a, f = tiny, pred.predict(tiny)     # nothing predicted inside: measure the smallest to be sure
            if a in done:
                break
        else:
            s_pred, a, f = max(ranked, key=lambda r: r[0])
            if best is not None and s_pred <= best[0] * 1.02:
                break            # nothing left that is predicted better than what is measured
        p = real_pack(a, budget.engine)
        done.add(a)
        tried.append((p, f))
        view = p.figures.budget_view(budget.model_in_ram)
        ok = budget.fits(view)
        say(f"  {a.describe()}: predicted {_fmt(f.budget_view(budget.model_in_ram))}, packed {_fmt(view)} "
            f"({'inside' if ok else 'over'}, {p.seconds:.1f} s)")
        pred.learn(a, p.figures)
        if ok:
            s = score(budget.fraction(view))
            if best is None or s > best[0]:
                best = (s, p, f)
        else:
            shrink *= 0.97
            if a == tiny:
                break
    if best is None:
        raise FitError(_too_small(budget, input_shape, tried, tiny))
    return FitResult(best[1], best[2], budget, tried)


def _too_small(budget: Budget, shape: tuple[int, int, int], tried: list[tuple[Packed, Figures]],
               tiny: Arch) -> str:
    small = next((p for p, _ in tried if p.arch == tiny), None)
    if small is None:
        small = real_pack(tiny, budget.engine)
    view = small.figures.budget_view(budget.model_in_ram)
    names = {"ram": "RAM", "flash": "flash", "macs": "MACs"}
    over = [f"{names[k]} {view[k]:,}{' B' if k != 'macs' else ''} (budget {getattr(budget, k):,})"
            for k in FIGURES if view[k] > getattr(budget, k)]
    what = "; ".join(over) if over else "no candidate inside every budget at once"
    return (f"budget too small for any PhiNet on {'x'.join(map(str, shape))}: the smallest ({tiny.describe()}) "
            f"needs {what}")


def _fmt(view: dict[str, int]) -> str:
    return f"RAM {view['ram']:,} B, flash {view['flash']:,} B, MACs {view['macs']:,}"


# ---------------------------------------------------------------- the command

def parse_size(text: str, what: str, base: int = 1024) -> int:
    """'65536', '64K', '64KB', '1M', '10M' (MACs use base 1000)."""
    t = text.strip().upper().removesuffix("B")
    mult = 1
    if t and t[-1] in "KMG":
        mult = base ** ("KMG".index(t[-1]) + 1)
        t = t[:-1]
    try:
        v = float(t) * mult
    except ValueError:
        raise FitError(f"{what} {text!r}: give a number, e.g. 65536, 64K or 1M") from None
    if not v >= 1 or not math.isfinite(v):
        raise FitError(f"{what} {text!r}: must be at least 1")
    return int(v)


def parse_shape(text: str) -> tuple[int, int, int]:
    try:
        dims = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        dims = ()
    if len(dims) == 2:
        dims = (dims[0], 1, dims[1])             # T x C: a 1-D window as T x 1 x C
    if len(dims) != 3 or min(dims) < 1 or max(dims) > 4096:
        raise FitError(f"--input {text!r}: give HxWxC (e.g. 96x96x1, 49x10x1) or TxC for a 1-D window")
    return dims[0], dims[1], dims[2]


def budget_from_args(args: argparse.Namespace) -> tuple[Budget, Board | None]:
    board = None
    if args.board:
        board = BOARDS.get(args.board.lower())
        if board is None:
            raise FitError(f"--board {args.board!r}: unknown board; choose one of {', '.join(BOARDS)}")
    missing = [o for o, v in (("--ram", args.ram), ("--flash", args.flash), ("--macs", args.macs)) if v is None]
    if board is None and missing:
        raise FitError(f"give --board NAME or all of --ram, --flash and --macs (missing {', '.join(missing)})")
    ram = parse_size(args.ram, "--ram") if args.ram is not None else board.ram_budget  # type: ignore[union-attr]
    flash = parse_size(args.flash, "--flash") if args.flash is not None else board.flash_budget  # type: ignore[union-attr]
    macs = (parse_size(args.macs, "--macs", 1000) if args.macs is not None
            else board.macs_budget(args.latency_ms))  # type: ignore[union-attr]
    in_ram = args.model_in_ram if args.model_in_ram is not None else bool(board and board.model_in_ram)
    engine = args.engine or (board.engine if board else "c")
    if ram < 1 or flash < 1:
        raise FitError(f"board {board.name if board else ''}: no RAM or flash left for a model")
    return Budget(ram, flash, macs, in_ram, engine), board


def cmd_fit(args: argparse.Namespace) -> int:
    if args.list_boards:
        for b in BOARDS.values():
            print(f"{b.name:10s} {b.title}: RAM {b.ram_budget:,} B, flash {b.flash_budget:,} B, "
                  f"MACs {b.macs_budget(args.latency_ms):,} ({args.latency_ms or b.latency_ms} ms)")
        return 0
    try:
        if not args.output:
            raise FitError("-o MODEL.keras is required")
        if not str(args.output).endswith(".keras"):
            raise FitError(f"-o {args.output}: the output is a Keras model: name it MODEL.keras")
        if args.classes is None or args.classes < 2:
            raise FitError("--classes K: give the number of classes (at least 2)")
        if args.input is None:
            raise FitError("--input HxWxC is required (e.g. 96x96x1)")
        shape = parse_shape(args.input)
        budget, board = budget_from_args(args)
        out = Path(args.output)
        if not out.parent.exists():
            raise FitError(f"-o {out}: directory {out.parent} does not exist")
        log = None if args.json else (lambda m: print(m, file=sys.stderr))
        if log:
            log(f"fitting a PhiNet to {'x'.join(map(str, shape))} -> {args.classes} classes within RAM "
                f"{budget.ram:,} B, flash {budget.flash:,} B, MACs {budget.macs:,}"
                + (f" ({board.name})" if board else "") + (" (model loaded into RAM)" if budget.model_in_ram
                                                            else ""))
        res = fit(budget, shape, args.classes, max_packs=args.max_packs, log=log)
    except FitError as e:
        print(f"mpyml fit: {e}", file=sys.stderr)
        return 2
    from .phinet import keras_model
    keras_model(res.best.arch).save(str(out))
    if args.json:
        print(json.dumps({**res.as_json(), "output": str(out)}, indent=1))
        return 0
    b, real = res.budget, res.best.figures.budget_view(res.budget.model_in_ram)
    frac = b.fraction(real)
    pv = res.predicted.budget_view(b.model_in_ram)
    print(f"{res.best.arch.describe()} -> {out}")
    for k, unit in (("ram", "B"), ("flash", "B"), ("macs", "")):
        print(f"  {k:5s} predicted {pv[k]:>12,} {unit:1s}  packed {real[k]:>12,} {unit:1s}  budget "
              f"{getattr(b, k):>12,} {unit:1s}  {100 * frac[k]:5.1f}%")
    f = res.best.figures
    print(f"  RAM = arena {f.arena:,} + engine context {f.ctx:,}" + (f" + model file {f.file:,}" if
                                                                      b.model_in_ram else "") + " B; "
          f"{len(res.tried)} real conversion(s)")
    print(f"  untrained: train it in Keras (keras.models.load_model('{out}'), compile, fit, save), then "
          f"`mpyml convert` it with --tflite M.tflite and `mpyml pack M.tflite --max-ram {f.arena}` (the plan "
          "measured above; the default pack keeps the faster, larger plan when it differs)")
    return 0


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", help=f"board profile: {', '.join(BOARDS)} (--ram/--flash/--macs override it)")
    p.add_argument("--ram", help="RAM budget in bytes (64K = 65536): arena + engine context (+ model file "
                   "with --model-in-ram)")
    p.add_argument("--flash", help="flash budget in bytes for the .mpk file")
    p.add_argument("--macs", help="MACs per inference (10M = 10,000,000)")
    p.add_argument("--latency-ms", type=int, default=None, help="with --board: the MACs budget is what runs "
                   "in this many ms (default 1000)")
    p.add_argument("--model-in-ram", dest="model_in_ram", action="store_true", default=None,
                   help="count the .mpk in RAM too (the board reads it into the heap; default with boards "
                   "without ROMFS)")
    p.add_argument("--model-in-flash", dest="model_in_ram", action="store_false",
                   help="the model is used in place from ROMFS: not counted in RAM")
    p.add_argument("--engine", choices=("c", "viper"), help="whose engine context to count (default: the "
                   "board's engine, else c)")
    p.add_argument("--input", help="input shape HxWxC, e.g. 96x96x1 (TxC for a 1-D window)")
    p.add_argument("--classes", type=int, help="number of output classes")
    p.add_argument("-o", "--output", help="write the chosen (untrained) Keras model here (.keras)")
    p.add_argument("--json", action="store_true", help="print the predicted and packed figures as JSON")
    p.add_argument("--max-packs", type=int, default=4, help="real conversions the search may make (default 4)")
    p.add_argument("--list-boards", action="store_true", help="list the board profiles and their budgets")
    p.set_defaults(func=cmd_fit)


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    configure(sub.add_parser("fit", help="choose a PhiNet's width/expansion to fill a RAM, flash and MACs "
                             "budget (board profile or explicit)"))
