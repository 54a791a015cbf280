"""Recurrent ops (SVDF, UNIDIRECTIONAL_SEQUENCE_LSTM int8): bit-exact with tflite-micro over sequences of invokes.

Random single-op models are built with the schema builder (tests/tflite_build.py _Model), packed with
mpyml.pack, and run for several invokes in a row (state carried over) in
  - tflite-micro (the oracle, one interpreter invoked repeatedly),
  - the C engine (host library, ctypes; own small driver: prepare / invoke / reset_state),
  - the MicroPython unix port: the C natmod and the viper engine, every case in one process, the viper
    invokes checked allocation-free (heap locked).
Plus real tf-keras LSTM(units) models converted with full-int8 quantization (among them the corpus models
lstm_tfk / lstm_stacked_tfk: 20 steps, state carried across invokes exactly as a persistent tflite-micro
interpreter carries it, and reset() giving a fresh interpreter's outputs), Model-level reset, and malformed op
records (both engines refuse with the same check code, nothing crashes).
"""

from __future__ import annotations

import ctypes
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from mpyml import pack, paths
from mpyml.mpk import MpkFile, with_crc
from mpyml.packer import PackError
from mpyml.tflm import TflmRunner
from mpyml.unix_port import run_micropython

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tflite_build import _Model, schema  # noqa: E402

STEPS = 3                   # invokes per case (state carried across them)


# ------------------------------------------------------------------ C engine driver (host library)

class _Err(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int32), ("index", ctypes.c_int32), ("detail", ctypes.c_int32),
                ("line", ctypes.c_int32)]


_LIB: list[ctypes.CDLL] = []


def _lib() -> ctypes.CDLL:
    if not _LIB:
        path = paths.HOSTLIB
        if not Path(path).exists():
            pytest.skip("host library not built (make hostlib)")
        lib = ctypes.CDLL(str(path))
        vp, sz = ctypes.c_void_p, ctypes.c_size_t
        lib.mpyml_ctx_size.argtypes = [vp, sz]
        lib.mpyml_ctx_size.restype = sz
        lib.mpyml_prepare.argtypes = [vp, sz, vp, sz, ctypes.POINTER(_Err)]
        lib.mpyml_prepare.restype = ctypes.c_int
        lib.mpyml_invoke.argtypes = [vp, vp, sz, vp, sz]
        lib.mpyml_invoke.restype = ctypes.c_int
        lib.mpyml_reset_state.argtypes = [vp, vp, sz]
        lib.mpyml_reset_state.restype = None
        _LIB.append(lib)
    return _LIB[0]


class CModel:
    """One packed model in the C engine; the arena (and so the STATE tensors) persists across invokes."""

    def __init__(self, mpk: bytes) -> None:
        lib = self.lib = _lib()
        self.model = np.frombuffer(bytes(mpk), np.uint8).copy()
        n = lib.mpyml_ctx_size(self.model.ctypes.data, self.model.size)
        self.ctx = np.zeros((n + 7) // 8 + 1, np.uint64)
        e = _Err()
        self.status = lib.mpyml_prepare(self.ctx.ctypes.data, self.ctx.nbytes, self.model.ctypes.data,
                                        self.model.size, ctypes.byref(e))
        self.err = (e.status, e.index, e.detail)
        if self.status == 0:
            info = MpkFile(mpk)
            self.inp, self.out = info.input_tensors()[0], info.output_tensors()[0]
            asz = info.header["arena_size"]
            self.arena = np.zeros((asz + 7) // 8, np.uint64).view(np.uint8)[:asz]

    def invoke(self, x: np.ndarray) -> np.ndarray:
        t = self.inp
        self.arena[t.offset:t.offset + t.nbytes] = np.ascontiguousarray(x, np.int8).reshape(-1).view(np.uint8)
        st = self.lib.mpyml_invoke(self.ctx.ctypes.data, self.model.ctypes.data, self.model.size,
                                   self.arena.ctypes.data, self.arena.size)
        assert st == 0, st
        o = self.out
        return self.arena[o.offset:o.offset + o.nbytes].view(np.int8).copy()

    def reset(self) -> None:
        self.lib.mpyml_reset_state(self.ctx.ctypes.data, self.arena.ctypes.data, self.arena.size)


# ------------------------------------------------------------------ model builders

def _scale(rng: np.random.Generator, lo: float = -2.5, hi: float = -0.5) -> float:
    return float(10.0 ** rng.uniform(lo, hi))


def svdf_model(rng: np.random.Generator, n_batch: int, n_input: int, n_unit: int, rank: int, n_memory: int,
               state_zp: int = 0, mode: str = "normal", act: str = "NONE") -> bytes:
    """One int8 SVDF (int16 weights_time and state) with random weights and quantization."""
    n_filter = n_unit * rank
    m = _Model()
    sx, zx = _scale(rng), int(rng.integers(-128, 128))
    swf = _scale(rng, -3, -1)
    feat_std = np.sqrt(n_input) * 74 * 73 * sx * swf
    ss = float(feat_std / 6000 * 10.0 ** rng.uniform(-0.5, 0.5))
    if mode == "large":
        ss = float(feat_std / 200000)        # state saturates
    swt = _scale(rng, -4, -2)
    out_std = np.sqrt(n_memory * rank) * 6000 * 18000 * ss * swt
    so = float(out_std / 60 * 10.0 ** rng.uniform(-0.7, 0.7))
    if mode == "large":
        so = float(out_std / 4000)
    x = m.tensor("x", (n_batch, n_input), "INT8", sx, zx)
    wf = m.tensor("wf", (n_filter, n_input), "INT8", swf, 0,
                  data=rng.integers(-127, 128, size=(n_filter, n_input)))
    wt = m.tensor("wt", (n_filter, n_memory), "INT16", swt, 0,
                  data=rng.integers(-32767, 32768, size=(n_filter, n_memory)))
    bias_scale = float(np.float32(ss) * np.float32(swt))
    b = m.tensor("b", (n_unit,), "INT32", bias_scale, 0,
                 data=rng.integers(-(1 << 20), 1 << 20, size=(n_unit,)))
    st = m.tensor("state", (n_batch, n_memory * n_filter), "INT16", ss, state_zp)
    m.tensors[st].isVariable = True
    y = m.tensor("y", (n_batch, n_unit), "INT8", so, int(rng.integers(-128, 128)))
    opt = schema.SVDFOptionsT()
    opt.rank = rank
    opt.fusedActivationFunction = getattr(schema.ActivationFunctionType, act)
    m.op("SVDF", [x, wf, wt, b, st], [y], opt, schema.BuiltinOptions.SVDFOptions)
    return m.finish([x], [y])


def lstm_model(rng: np.random.Generator, n_batch: int, n_time: int, n_input: int, n_unit: int,
               time_major: bool = False, cell_pow: int = -11, cell_clip: float = 0.0, cell_act: str = "TANH",
               mode: str = "normal") -> bytes:
    """One int8 UNIDIRECTIONAL_SEQUENCE_LSTM in the layout of the TFLite converter (24 inputs, variable
    hidden int8 / cell int16 states, int32 biases, per-tensor symmetric int8 weights)."""
    m = _Model()
    sx, zx = _scale(rng, -2, -0.5), int(rng.integers(-128, 128))
    sh, zh = float(10.0 ** rng.uniform(-2.5, -2.0)), int(rng.integers(-128, 128))
    spread = 3.0 if mode == "normal" else 40.0        # real gate-input magnitude
    shape_x = (n_time, n_batch, n_input) if time_major else (n_batch, n_time, n_input)
    shape_y = (n_time, n_batch, n_unit) if time_major else (n_batch, n_time, n_unit)
    x = m.tensor("x", shape_x, "INT8", sx, zx)
    w_in, w_rec, biases = [], [], []
    for g in "ifco":
        s_w = float(spread / (np.sqrt(n_input) * 74 * 128 * sx) * 10.0 ** rng.uniform(-0.5, 0.3))
        w_in.append(m.tensor(f"w_{g}", (n_unit, n_input), "INT8", s_w, 0,
                             data=rng.integers(-127, 128, size=(n_unit, n_input))))
    for g in "ifco":
        s_r = float(spread / (np.sqrt(n_unit) * 74 * 128 * sh) * 10.0 ** rng.uniform(-0.5, 0.3))
        w_rec.append(m.tensor(f"r_{g}", (n_unit, n_unit), "INT8", s_r, 0,
                              data=rng.integers(-127, 128, size=(n_unit, n_unit))))
    for g in "ifco":
        biases.append(m.tensor(f"b_{g}", (n_unit,), "INT32", 1e-4, 0,
                               data=rng.integers(-(1 << 14), 1 << 14, size=(n_unit,))))
    h = m.tensor("h", (n_batch, n_unit), "INT8", sh, zh)
    c = m.tensor("c", (n_batch, n_unit), "INT16", 2.0 ** cell_pow, 0)
    m.tensors[h].isVariable = True
    m.tensors[c].isVariable = True
    y = m.tensor("y", shape_y, "INT8", sh, zh)
    ins = [x, *w_in, *w_rec, -1, -1, -1, *biases, -1, -1, h, c, -1, -1, -1, -1]
    opt = schema.UnidirectionalSequenceLSTMOptionsT()
    opt.fusedActivationFunction = getattr(schema.ActivationFunctionType, cell_act)
    opt.cellClip = float(cell_clip)
    opt.projClip = 0.0
    opt.timeMajor = bool(time_major)
    m.op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [y], opt, schema.BuiltinOptions.UnidirectionalSequenceLSTMOptions)
    return m.finish([x], [y])


def svdf_case(rng: np.random.Generator, i: int) -> bytes:
    rank = int(rng.choice([1, 1, 2, 3]))
    return svdf_model(rng, n_batch=int(rng.integers(1, 4)), n_input=int(rng.integers(1, 24)),
                      n_unit=int(rng.integers(1, 9)), rank=rank, n_memory=int(rng.integers(1, 11)),
                      state_zp=0, mode="large" if i % 7 == 3 else "normal",
                      act="RELU" if i % 5 == 2 else "NONE")


def lstm_case(rng: np.random.Generator, i: int) -> bytes:
    return lstm_model(rng, n_batch=int(rng.choice([1, 1, 2, 3])), n_time=int(rng.integers(1, 5)),
                      n_input=int(rng.integers(1, 12)), n_unit=int(rng.integers(1, 10)),
                      time_major=i % 4 == 1, cell_pow=int(rng.choice([-15, -14, -13, -12, -11, -10, -8])),
                      cell_clip=float(rng.choice([0.0, 0.0, 10.0, 0.5])),
                      mode="large" if i % 6 == 4 else "normal")


def lstm_seq_case(rng: np.random.Generator, i: int) -> bytes:
    """The shapes / quantization pattern of the corpus tf-keras LSTMs: batch 1, ~20 time steps, 6 features,
    16 units, cell state scale 2^-14 with cell clip 10 (quantized clip 32767 after the int16 saturation)."""
    return lstm_model(rng, n_batch=1, n_time=int(rng.integers(16, 25)), n_input=6, n_unit=16,
                      cell_pow=-14 if i % 3 else int(rng.choice([-15, -13, -12])), cell_clip=10.0,
                      mode="large" if i % 4 == 3 else "normal")


_CASE_FN = {"svdf": svdf_case, "lstm": lstm_case, "lstm_seq": lstm_seq_case}
_CASE_N_SEED = {"svdf": (64, 1234), "lstm": (64, 4321), "lstm_seq": (12, 2024)}


def _inputs(rng: np.random.Generator, tfl: bytes, steps: int) -> list[np.ndarray]:
    d = TflmRunner(tfl).input_details()[0]
    xs = [rng.integers(-128, 128, size=d.shape).astype(np.int8) for _ in range(steps)]
    flat = xs[0].reshape(-1)
    flat[0] = -128                  # extreme input values in every case
    flat[-1] = 127
    return xs


def _tflm_seq(tfl: bytes, xs: list[np.ndarray]) -> list[np.ndarray]:
    r = TflmRunner(tfl)
    return [r.run([x])[0].reshape(-1).copy() for x in xs]


def _cases(kind: str, n: int, seed: int) -> list[tuple[bytes, bytes, list[np.ndarray], list[np.ndarray]]]:
    """(tflite, mpk, inputs per step, TFLM outputs per step) for n random cases."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        tfl = _CASE_FN[kind](rng, i)
        xs = _inputs(rng, tfl, STEPS)
        out.append((tfl, pack(tfl), xs, _tflm_seq(tfl, xs)))
    return out


_CACHE: dict[str, list] = {}


def cases(kind: str) -> list[tuple[bytes, bytes, list[np.ndarray], list[np.ndarray]]]:
    if kind not in _CACHE:
        _CACHE[kind] = _cases(kind, *_CASE_N_SEED[kind])
    return _CACHE[kind]


# ------------------------------------------------------------------ host C engine vs TFLM

@pytest.mark.parametrize("kind", ["svdf", "lstm", "lstm_seq"])
def test_c_engine_matches_tflm(kind: str) -> None:
    bad = []
    for i, (_, mpk, xs, want) in enumerate(cases(kind)):
        cm = CModel(mpk)
        assert cm.status == 0, (i, cm.err)
        for t, (x, w) in enumerate(zip(xs, want, strict=True)):
            got = cm.invoke(x)
            if not np.array_equal(got, w):
                bad.append((i, t, int(np.sum(got != w))))
        # reset: the state is zeroed, the sequence repeats exactly
        cm.reset()
        if not np.array_equal(cm.invoke(xs[0]), want[0]):
            bad.append((i, "reset"))
    assert not bad, f"{kind}: {len(bad)} mismatches (case, step, n): {bad[:8]}"


def test_svdf_state_zero_point() -> None:
    """A nonzero int16 state zero point is honoured as TFLM's svdf_common.cc does."""
    rng = np.random.default_rng(5)
    for _ in range(6):
        tfl = svdf_model(rng, 2, 7, 3, 2, 4, state_zp=int(rng.integers(-300, 300)))
        xs = _inputs(rng, tfl, STEPS)
        want = _tflm_seq(tfl, xs)
        cm = CModel(pack(tfl))
        assert [cm.invoke(x).tolist() for x in xs] == [w.tolist() for w in want]


# ------------------------------------------------------------------ real tf-keras LSTM

def _keras_lstm(units: int, steps: int, feat: int, seed: int, return_sequences: bool) -> bytes:
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("tf_keras")
    rng = np.random.default_rng(seed)
    tf.random.set_seed(seed)
    inp = keras.Input(shape=(steps, feat), batch_size=1)
    x = keras.layers.LSTM(units, return_sequences=return_sequences)(inp)
    model = keras.Model(inp, x)

    def rep():
        for _ in range(40):
            yield [rng.normal(size=(1, steps, feat)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


_KERAS: list[tuple[bytes, bytes, list[np.ndarray], list[np.ndarray]]] = []


def keras_cases() -> list[tuple[bytes, bytes, list[np.ndarray], list[np.ndarray]]]:
    if not _KERAS:
        rng = np.random.default_rng(9)
        for units, steps, feat, seq in ((4, 5, 3, True), (16, 8, 10, False)):
            tfl = _keras_lstm(units, steps, feat, units, seq)
            xs = _inputs(rng, tfl, 4)
            _KERAS.append((tfl, pack(tfl), xs, _tflm_seq(tfl, xs)))
    return _KERAS


def test_keras_lstm() -> None:
    for _tfl, mpk, xs, want in keras_cases():
        ops = [o.name for o in MpkFile(mpk).ops]
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops, ops
        cm = CModel(mpk)
        for x, w in zip(xs, want, strict=True):
            assert np.array_equal(cm.invoke(x), w)


# ------------------------------------------------------------------ the corpus tf-keras LSTMs

CORPUS_LSTMS = ("lstm_tfk", "lstm_stacked_tfk")
_CORPUS: list[tuple[bytes, bytes, list[np.ndarray], list[np.ndarray], list[np.ndarray]]] = []
_CORPUS_MISSING: list[str] = []


def corpus_cases() -> list[tuple[bytes, bytes, list[np.ndarray], list[np.ndarray], list[np.ndarray]]]:
    """(tflite, mpk, inputs, outputs of one persistent TFLM interpreter, outputs of a fresh interpreter per
    input) for the corpus LSTM models (tests/corpus/architectures.py, int8 I/O, cached in build/corpus/)."""
    if _CORPUS_MISSING:
        return _CORPUS
    if not _CORPUS:
        from corpus import convert
        rng = np.random.default_rng(31)
        for name in CORPUS_LSTMS:
            try:
                tfl = convert.tflite(name, "int8")
            except Exception as e:         # no cache and no TensorFlow / converter failure
                _CORPUS_MISSING.append(f"corpus model {name} unavailable: {e}")
                return _CORPUS
            xs = _inputs(rng, tfl, 5)
            fresh = [TflmRunner(tfl).run([x])[0].reshape(-1).copy() for x in xs]
            _CORPUS.append((tfl, pack(tfl), xs, _tflm_seq(tfl, xs), fresh))
    return _CORPUS


def test_corpus_lstm_state_semantics() -> None:
    """Regression for the corpus mismatch of lstm_tfk / lstm_stacked_tfk: the arithmetic is bit-exact, the
    difference was the LSTM state. TFLM keeps the hidden / cell variable tensors across invokes (a tf-keras
    stateless LSTM included); so does mpyml. Invokes in a row equal one persistent TFLM interpreter; reset()
    before every invoke equals a fresh TFLM interpreter per input (what independent samples need)."""
    sel = corpus_cases()
    if _CORPUS_MISSING:
        pytest.skip(_CORPUS_MISSING[0])
    assert len(sel) == len(CORPUS_LSTMS)
    for _tfl, mpk, xs, persistent, fresh in sel:
        ops = [o.name for o in MpkFile(mpk).ops]
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops, ops
        # the state really is carried: a persistent interpreter disagrees with fresh ones after invoke 0
        assert np.array_equal(persistent[0], fresh[0])
        assert any(not np.array_equal(p, f) for p, f in zip(persistent[1:], fresh[1:], strict=True))
        cm = CModel(mpk)
        assert cm.status == 0, cm.err
        got = [cm.invoke(x) for x in xs]
        assert [g.tolist() for g in got] == [p.tolist() for p in persistent]
        got = []
        for x in xs:
            cm.reset()
            got.append(cm.invoke(x))
        assert [g.tolist() for g in got] == [f.tolist() for f in fresh]


# ------------------------------------------------------------------ packer refusals

def test_pack_refuses_variants() -> None:
    rng = np.random.default_rng(3)
    tfl = lstm_model(rng, 1, 2, 3, 4)
    from mpyml.packer import lower
    from mpyml.tflite_model import read_tflite
    model = read_tflite(tfl)
    for k, what in ((9, "peephole"), (16, "projection"), (20, "layer norm")):
        m2 = read_tflite(tfl)
        m2.operators[0].inputs[k] = m2.operators[0].inputs[1]
        with pytest.raises(PackError, match=what):
            lower(m2)
    m3 = read_tflite(tfl)
    m3.operators[0].inputs[1] = -1
    with pytest.raises(PackError, match="CIFG"):
        lower(m3)
    assert lower(model).ops


# ------------------------------------------------------------------ malformed records

def _op_rec(mpk: bytes) -> tuple[int, int, int, int]:
    info = MpkFile(mpk)
    op = info.ops[0]
    n_idx = len(op.inputs) + len(op.outputs)
    return op.record_offset, len(op.inputs), n_idx + (n_idx & 1), info.header["tensors_offset"]


def _corruptions(mpk: bytes, kind: str) -> list[bytes]:
    """Edited copies of a valid one-op model (CRC recomputed)."""
    out = []
    pos, n_in, npad, toff = _op_rec(mpk)
    info = MpkFile(mpk)
    op = info.ops[0]
    prm = pos + 8 + 2 * npad

    def edit(fn) -> None:
        b = bytearray(mpk)
        fn(b)
        out.append(with_crc(b))

    def set_param(i: int, v: int) -> None:
        edit(lambda b: struct.pack_into("<i", b, prm + 4 * i, v))

    def tensor_field(t: int, off: int, fmt: str, v: int) -> None:
        edit(lambda b: struct.pack_into(fmt, b, toff + 32 * t + off, v))

    outs = op.outputs
    # state flag cleared (STATE check); input int8 -> uint8 (same size: the generic operand type check)
    tensor_field(outs[1], 3, "<B", 0)
    tensor_field(op.inputs[0], 0, "<B", 4)
    # dims rotated (same element count, so the record stays valid): the op's shape checks
    for k in (*op.inputs[:3], *outs):
        t = info.tensors[k]
        if len(t.shape) > 1 and len(set(t.shape)) > 1:
            rot = t.shape[1:] + t.shape[:1]
            edit(lambda b, k=k, rot=rot: struct.pack_into(f"<{len(rot)}H", b, toff + 32 * k + 4, *rot))
    # rank + 1 with a trailing 1 (same elements)
    t = info.tensors[op.inputs[0]]
    b = bytearray(mpk)
    struct.pack_into("<B", b, toff + 32 * op.inputs[0] + 1, len(t.shape) + 1)
    struct.pack_into("<H", b, toff + 32 * op.inputs[0] + 4 + 2 * len(t.shape), 1)
    out.append(with_crc(b))
    # a weights zero point (record field at +20)
    tensor_field(op.inputs[1], 20, "<i", 3)
    if kind == "svdf":
        set_param(0, 7)          # rank not dividing F (or other than the output's)
        set_param(0, 0)          # outside the spec range
        set_param(5, 31)         # shift outside range
        edit(lambda b: struct.pack_into("<H", b, pos + 8 + 2 * 3, 0xFFFF))    # bias absent: allowed
    else:
        set_param(0, 1 - op.params[0])   # time-major flip: batch / time swapped
        set_param(27, 49152)             # largest tanh multiplier without rounding: fits
        edit(lambda b: struct.pack_into("<2i", b, prm + 4 * 27, 49152, 31))   # with rounding: overflows
        set_param(27, 0)
        edit(lambda b: struct.pack_into("<H", b, pos + 8 + 2 * 9, 0xFFFF))    # bias absent: refused
    # scratch shares bytes with the output (generic alias check)
    so = info.tensors[outs[-1]]
    tensor_field(outs[-1], 12, "<I", info.tensors[outs[0]].offset - (info.tensors[outs[0]].offset % 4))
    del so
    return out


# ------------------------------------------------------------------ unix port: natmod C + viper

DEVICE = r"""
import sys, struct, micropython
import mpyml_engine as ce
from mpyml import viper_engine as ve
src, dst = sys.argv[1], sys.argv[2]
f = open(src, "rb")
fo = open(dst, "wb")
n = struct.unpack("<I", f.read(4))[0]

def rd():
    return f.read(struct.unpack("<I", f.read(4))[0])

def mk_ctx(eng, mpk):
    try:
        return bytearray(eng.ctx_size(mpk))
    except TypeError:
        return bytearray(eng.ctx_size())

def st(r):
    return (0, 0, 0, 0) if r is None else r

for i in range(n):
    mpk = rd()
    steps, ioff, inb, ooff, onb = struct.unpack("<5I", f.read(20))
    xs = [rd() for _ in range(steps)]
    cctx = mk_ctx(ce, mpk)
    vctx = mk_ctx(ve, mpk)
    rc = ce.prepare(mpk, cctx)
    rv = ve.prepare(mpk, vctx)
    fo.write(struct.pack("<8i", *(st(rc) + st(rv))))
    if rc is not None or rv is not None:
        continue
    asz = struct.unpack_from("<I", mpk, 16)[0]
    ac = bytearray(asz)
    av = bytearray(asz)
    lock = 1
    outs = []
    for k in range(steps + 1):
        x = xs[k] if k < steps else xs[0]
        if k == steps:
            ce.reset(mpk, ac, cctx)
            ve.reset(mpk, av, vctx)
        ac[ioff:ioff + inb] = x
        av[ioff:ioff + inb] = x
        ce.invoke(mpk, ac, cctx)
        micropython.heap_lock()
        try:
            ve.invoke(mpk, av, vctx)
        except MemoryError:
            lock = 0
        micropython.heap_unlock()
        if lock == 0:
            ve.invoke(mpk, av, vctx)
        fo.write(ac[ooff:ooff + onb])
        fo.write(av[ooff:ooff + onb])
    fo.write(struct.pack("<i", lock))
fo.close()
print("DONE", n)
"""


def _device_run(items: list[tuple[bytes, list[np.ndarray]]], tmp: Path) -> list[dict]:
    natmod = paths.natmod_path("x64")
    if not Path(natmod).exists():
        pytest.skip("x64 natmod not built (make natmods)")
    src, dst, script = tmp / "rec.bin", tmp / "rec.out", tmp / "rec_dual.py"
    meta = []
    with open(src, "wb") as f:
        f.write(struct.pack("<I", len(items)))
        for mpk, xs in items:
            f.write(struct.pack("<I", len(mpk)) + mpk)
            try:
                info = MpkFile(mpk)
                ti, to = info.input_tensors()[0], info.output_tensors()[0]
                io = (ti.offset, ti.nbytes, to.offset, to.nbytes)
            except (ValueError, IndexError, struct.error):
                io = (0, 0, 0, 0)
            io = tuple(int(v) for v in io)
            meta.append(io)
            f.write(struct.pack("<5I", len(xs), *io))
            for x in xs:
                blob = np.ascontiguousarray(x, np.int8).tobytes()[: io[1]]
                f.write(struct.pack("<I", len(blob)) + blob)
    script.write_text(DEVICE)
    r = run_micropython([str(script), str(src), str(dst)], heapsize="64M", timeout=900)
    assert r.returncode == 0 and f"DONE {len(items)}" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    raw = dst.read_bytes()
    res, pos = [], 0
    for (_, xs), io in zip(items, meta, strict=True):
        vals = struct.unpack_from("<8i", raw, pos)
        pos += 32
        d = {"c": vals[:4], "v": vals[4:], "outs": []}
        if vals[0] == 0 and vals[4] == 0:
            onb = io[3]
            for _ in range(len(xs) + 1):
                d["outs"].append((np.frombuffer(raw[pos:pos + onb], np.int8).copy(),
                                  np.frombuffer(raw[pos + onb:pos + 2 * onb], np.int8).copy()))
                pos += 2 * onb
            d["lock"] = struct.unpack_from("<i", raw, pos)[0]
            pos += 4
        res.append(d)
    assert pos == len(raw)
    return res


def test_unix_port_natmod_and_viper(tmp_path: Path) -> None:
    """The natmod C engine and the viper engine on the unix port: TFLM's outputs for every step and after
    reset, for every random case and the Keras models; viper invokes allocation-free."""
    sel = (cases("svdf") + cases("lstm") + cases("lstm_seq") + keras_cases()
           + [(tfl, mpk, xs, want) for tfl, mpk, xs, want, _ in corpus_cases()])
    res = _device_run([(mpk, xs) for _, mpk, xs, _ in sel], tmp_path)
    bad = []
    for i, ((_, _, xs, want), r) in enumerate(zip(sel, res, strict=True)):
        assert r["c"][0] == 0 and r["v"][0] == 0, (i, r["c"], r["v"])
        assert r["lock"] == 1, f"case {i}: viper invoke allocated"
        for k, (oc, ov) in enumerate(r["outs"]):
            w = want[k] if k < len(xs) else want[0]
            if not (np.array_equal(oc, w) and np.array_equal(ov, w)):
                bad.append((i, k, int(np.sum(oc != w)), int(np.sum(ov != w))))
    assert not bad, f"{len(bad)} mismatches (case, step, C diffs, viper diffs): {bad[:8]}"


def test_malformed_records_both_engines(tmp_path: Path) -> None:
    """Corrupted SVDF / LSTM records: the host C engine, the natmod and the viper engine report the same
    (status, index, detail); accepted ones run without crashing and agree."""
    items = []
    for kind in ("svdf", "lstm"):
        for _, mpk, xs, _ in cases(kind)[:3]:
            for bad in _corruptions(mpk, kind):
                items.append((bad, xs[:1]))
    # random in-range params: whatever is accepted must run identically in both engines
    from mpyml.spec import OPS_BY_CODE
    rng = np.random.default_rng(77)
    for kind in ("svdf", "lstm"):
        for _, mpk, xs, _ in cases(kind)[3:33]:
            op = MpkFile(mpk).ops[0]
            pos, _, npad, _ = _op_rec(mpk)
            spec_op = OPS_BY_CODE[op.opcode]
            b = bytearray(mpk)
            for _ in range(int(rng.integers(1, 4))):
                i = int(rng.integers(0, len(spec_op.params)))
                p = spec_op.params[i]
                struct.pack_into("<i", b, pos + 8 + 2 * npad + 4 * i, int(rng.integers(p.lo, p.hi, endpoint=True)))
            items.append((with_crc(b), xs))
    res = _device_run(items, tmp_path)
    refused = 0
    for i, ((mpk, _), r) in enumerate(zip(items, res, strict=True)):
        host = CModel(mpk)
        assert r["c"][:3] == r["v"][:3], (i, r["c"], r["v"])
        assert (host.err if host.status else (0, 0, 0)) == tuple(r["c"][:3]), (i, host.err, r["c"])
        if r["c"][0]:
            refused += 1
        else:
            for oc, ov in r["outs"]:
                assert np.array_equal(oc, ov), i
    ran = sum(1 for r in res if r['outs'])
    assert refused >= 20 and ran >= 20, (refused, ran)


MODEL_API = r"""
import sys, mpyml
path, steps, engine = sys.argv[1], int(sys.argv[2]), sys.argv[3]
m = mpyml.load(path, engine=engine)
f = open(sys.argv[4], "rb")
xs = [f.read(m.input.size) for _ in range(steps)]
out = []
for x in xs + [None] + xs:
    if x is None:
        m.reset()
        continue
    out.append(bytes(m.predict(x)).hex())
print("OUT", engine, " ".join(out))
"""


def test_device_model_reset(tmp_path: Path) -> None:
    """mpyml.load(...).predict over a sequence carries the state; Model.reset() starts the sequence again
    (C natmod and viper engine), equal to TFLM."""
    if not Path(paths.natmod_path("x64")).exists():
        pytest.skip("x64 natmod not built")
    for kind in ("svdf", "lstm"):
        _, mpk, xs, want = cases(kind)[5]
        (tmp_path / "m.mpk").write_bytes(mpk)
        (tmp_path / "x.bin").write_bytes(b"".join(np.ascontiguousarray(x, np.int8).tobytes() for x in xs))
        (tmp_path / "api.py").write_text(MODEL_API)
        exp = " ".join(w.astype(np.int8).tobytes().hex() for w in want + want)
        for engine in ("c", "viper"):
            r = run_micropython([str(tmp_path / "api.py"), str(tmp_path / "m.mpk"), str(len(xs)), engine,
                                 str(tmp_path / "x.bin")], heapsize="16M")
            line = next((ln for ln in r.stdout.splitlines() if ln.startswith("OUT")), "")
            assert line == f"OUT {engine} {exp}", (kind, engine, r.stdout[-2000:], r.stderr[-2000:])
