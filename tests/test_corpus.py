"""The "models people bring" corpus (issue 8): common TinyML Keras architectures, converted the ordinary
way (TFLiteConverter, full-integer, int8 / uint8 / float32 I/O), must pack and run bit-exact.

For every (architecture, io) pair (tests/corpus/architectures.py): convert (cached in build/corpus/, see
tests/corpus/convert.py), `mpyml.pack`, then 3 random inputs of the model's input dtype (int8 / uint8 over
the full range, float32 from the architecture's data distribution) through tflite-micro's reference
kernels and through the MicroPython unix port with the C engine and with the viper engine: every output
must have tflite-micro's dtype, shape and bytes (tolerance 0). A model that does not pack fails here with
the packer's message; `python -m tests.corpus.report` lists what blocks each one.
"""

from __future__ import annotations

import numpy as np
import pytest

from corpus import ENGINES, INPUT_SEED, IO_TYPES, N_SAMPLES, convert
from corpus.architectures import ARCHITECTURES, source_digest
from corpus.report import make_inputs
from mpyml import pack
from mpyml.unix_port import run_batch
from tflite_build import op_names, run_tflm

CASES = [(name, io) for name in ARCHITECTURES for io in IO_TYPES]

# tflite-micro sizes SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND outputs from the graph's static shapes, which the
# converter writes with batch 1 for dilated convs, and then computes them wrongly (checked: it disagrees with
# TFLite's own reference kernels). For those models the oracle is TFLite's reference-kernel interpreter
# (the same integer arithmetic); mpyml fuses the pattern into one dilated conv, which tflite-micro runs right.
_TFLM_WRONG = {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"}
# tflite-micro has no TILE kernel (Keras 3 UpSampling2D with a fixed batch converts to RESHAPE/TILE chains, which
# mpyml rewrites into RESIZE_NEAREST_NEIGHBOR): TFLite's reference TILE kernel is the oracle. Its reference
# resolver registers TILE up to an older op version than the converter writes; the kernel is the same one.
_TFLM_LACKS = {"TILE"}


def _tile_v1(tfl: bytes) -> bytes:
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
    m = schema.ModelT.InitFromPackedBuf(bytearray(tfl), 0)
    for oc in m.operatorCodes:
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == schema.BuiltinOperator.TILE:
            oc.version = 1
    b = flatbuffers.Builder(len(tfl) + 1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def reference(tfl: bytes, sample: list[np.ndarray]) -> list[np.ndarray]:
    names = set(op_names(tfl))
    if not (_TFLM_WRONG | _TFLM_LACKS) & names:
        return run_tflm(tfl, sample)
    import tensorflow as tf
    if _TFLM_LACKS & names:
        tfl = _tile_v1(tfl)
    it = tf.lite.Interpreter(model_content=tfl,
                             experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), sample, strict=True):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def _compare(got: np.ndarray, ref: np.ndarray, where: str) -> None:
    assert got.dtype == ref.dtype, f"{where}: dtype {got.dtype}, tflite-micro gives {ref.dtype}"
    assert got.shape == ref.shape, f"{where}: shape {got.shape}, tflite-micro gives {ref.shape}"
    if got.tobytes() != ref.tobytes():
        g, r = got.astype(np.float64), ref.astype(np.float64)
        bad = np.flatnonzero(g.ravel() != r.ravel())
        k = int(bad[0])
        pytest.fail(f"{where}: {bad.size}/{got.size} values differ from tflite-micro, max |diff| "
                    f"{np.max(np.abs(g - r)):g}; first at flat index {k}: {got.ravel()[k]} vs {ref.ravel()[k]}")


@pytest.mark.parametrize(("name", "io"), CASES)
def test_corpus_model(name: str, io: str, natmod_x64) -> None:
    tfl = convert.tflite(name, io)                  # ConversionError if the converter failed
    mpk = pack(tfl)                                 # PackError names the op and what is missing
    samples = make_inputs(name, tfl, N_SAMPLES, seed=INPUT_SEED)
    refs = [reference(tfl, s) for s in samples]
    for engine in ENGINES:
        try:
            r = run_batch(mpk, samples, engine=engine)
        except RuntimeError as e:                   # micropython failed: its traceback, without the locals
            pytest.fail(f"{name} {io} I/O, {engine} engine: {e}")
        assert len(r.batch) == N_SAMPLES
        for k, (got, ref) in enumerate(zip(r.batch, refs, strict=True)):
            assert len(got) == len(ref), f"{engine}: {len(got)} outputs, tflite-micro gives {len(ref)}"
            for j, (g, e) in enumerate(zip(got, ref, strict=True)):
                _compare(g, e, f"{name} {io} I/O, {engine} engine, sample {k}, output {j}")


def test_corpus_covers_issue_8() -> None:
    """The corpus is what issue 8 asks for: >= 27 architectures, tf-keras ones, every I/O type converts."""
    assert len(ARCHITECTURES) >= 27
    tfk = [a for a in ARCHITECTURES.values() if a.framework == "tf_keras"]
    assert any(a.build.__name__ == "lstm" for a in tfk) and len(tfk) >= 3
    assert IO_TYPES == ("int8", "uint8", "float32")
    digests = {source_digest(a) for a in ARCHITECTURES.values()}
    assert len(digests) == len(ARCHITECTURES), "two architectures share a cache key"


@pytest.mark.parametrize("name", ["lstm_tfk", "flatten_cnn"])
def test_corpus_io_types(name: str) -> None:
    """The three variants really differ only at the edges: int8 / uint8 / float32 inputs and outputs,
    and the LSTM converts to TFLite's fused UNIDIRECTIONAL_SEQUENCE_LSTM."""
    from corpus.report import io_tensors

    for io in IO_TYPES:
        tfl = convert.tflite(name, io)
        ins, outs = io_tensors(tfl)
        assert {t for _, t in ins + outs} == {io.upper()}, (io, ins, outs)
        if name == "lstm_tfk":
            assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in op_names(tfl)
