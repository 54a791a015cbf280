"""`mpyml convert`: a float Keras model / SavedModel -> full-integer int8 .tflite -> packed .mpk, in one step.

    mpyml convert MODEL -o OUT.mpk --calibration DATA [--eval X Y] [--io int8|uint8|float] [--tflite OUT.tflite]
                  [--json] [--report DIR] [--qat --train X Y [--epochs N]] [--quiet]
                  [--teacher T.keras [--temperature T] [--alpha A]] [--prune-channels F] [--prune S]
                  [--train X Y] [--epochs N] [--lr LR] [--seed N]

MODEL: a Keras 3 ``.keras`` file, a legacy ``.h5`` (loaded with tf_keras when Keras 3 cannot) or a SavedModel
directory. DATA: ``.npy`` / ``.npz`` float samples shaped as the model takes them (NHWC, with or without the
batch axis of 1), or a folder of PNG / JPEG / BMP images, each resized to the model's input height x width,
converted to grayscale (1 channel) or RGB (3 channels) and scaled to [0, 1].

Quantization is TensorFlow's own full-integer post-training quantization, exactly the flow a user writes by
hand (``TFLiteConverter.from_keras_model`` / ``from_saved_model``, ``Optimize.DEFAULT``, the representative
dataset one sample at a time, ``TFLITE_BUILTINS_INT8``, per-channel weights); ``--io`` sets
``inference_input_type`` / ``inference_output_type`` (``float`` leaves the converter's float32 I/O). The same
model, data and settings give the same .tflite bytes as that hand-written flow.

``--eval X Y`` runs the same samples on the float model, the int8 .tflite on tflite-micro and the .mpk on the
MicroPython unix port (C engine), and says whether the device was bit-exact with tflite-micro on every
sample. Y holds class labels (integers, or one-hot rows: accuracy) or float targets (mean absolute error).
Per-op SQNR (dB) compares every int8 op's dequantized output with the float32 TFLite model (same converter,
no quantization) on the calibration data, matched by tensor name.

Compression (host/mpyml/prune.py, host/mpyml/distill.py; each needs ``--train X Y`` and runs in this order,
each stage converted, packed and measured like the original): ``--teacher`` trains the student MODEL with and
without the teacher's softened outputs (same initial weights, seed and budget); ``--prune-channels F`` removes the
fraction F of the channels of every prunable channel group (smallest L1 norm) and fine-tunes the narrower model;
``--prune S`` prunes the kernels by magnitude to sparsity S on a schedule while fine-tuning. The last stage's
model is written; the report has every stage side by side with the original (sparsity, sizes, MACs, arena,
accuracy, unix-port invoke time).

Python: ``mpyml.convert(model_or_path, calibration=..., eval_data=(x, y), io="int8") -> ConvertResult``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
import sys
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ConvertError", "ConvertResult", "add_commands", "convert", "load_calibration", "load_model",
           "quantized_tflite"]

IO_TYPES = ("int8", "uint8", "float")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
DEFAULT_MAX_CALIBRATION = 500
DEFAULT_EPOCHS = 3
DEFAULT_QAT_LR = 1e-4
DEFAULT_LR = 1e-3              # fine-tuning after pruning, distillation
TIMING_REPEAT = 50


class ConvertError(ValueError):
    """A problem the user can fix (bad model file, data, labels, unquantizable op, missing TensorFlow):
    the message is one line naming the problem and the fix."""


# ---------------------------------------------------------------------------------------------- TensorFlow
def import_tf() -> Any:
    """TensorFlow, quiet; ConvertError (one line, what to install) when it is not installed."""
    for k, v in (("TF_CPP_MIN_LOG_LEVEL", "3"), ("KERAS_BACKEND", "tensorflow"), ("ABSL_MIN_LOG_LEVEL", "3"),
                 ("GRPC_VERBOSITY", "ERROR")):
        os.environ.setdefault(k, v)
    try:
        with _quiet_fds():
            import tensorflow as tf
    except ImportError as e:
        raise ConvertError(f"TensorFlow is not installed ({e}): mpyml convert needs it; install it with "
                           "`make setup` (or `.venv/bin/pip install -r requirements.lock`)") from None
    tf.get_logger().setLevel("ERROR")
    with contextlib.suppress(Exception):
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    return tf


@contextlib.contextmanager
def _quiet_fds() -> Iterator[None]:
    """Silence C++ log spam (TF, MLIR) written straight to fds 1 and 2; replayed on stderr if the block fails."""
    import tempfile

    for s in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            s.flush()
    try:
        fds = [sys.stdout.fileno(), sys.stderr.fileno()]
    except (AttributeError, OSError, ValueError):   # replaced streams without real fds (pytest capsys)
        fds = []
    if not fds:
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
        return
    with tempfile.TemporaryFile() as tmp:
        saved = [os.dup(fd) for fd in fds]
        for fd in fds:
            os.dup2(tmp.fileno(), fd)
        ok = False
        try:
            yield
            ok = True
        finally:
            for s in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    s.flush()
            for fd, s in zip(fds, saved, strict=True):
                os.dup2(s, fd)
                os.close(s)
            if not ok and os.environ.get("MPYML_DEBUG"):
                tmp.seek(0)
                sys.stderr.write(tmp.read().decode("utf-8", errors="replace"))


# ---------------------------------------------------------------------------------------------- progress
class Progress:
    """rich progress bars on a terminal; nothing when quiet or stderr is not a TTY."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = bool(enabled) and sys.stderr.isatty()
        self._p: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            try:
                import rich.progress  # noqa: F401
            except ImportError:       # rich is optional: no bars without it
                self.enabled = False
                return self
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._p = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                   TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._p.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.__exit__(*exc)
            self._p = None

    def task(self, description: str, total: int) -> Callable[[int], None]:
        """A bar; returns advance(n)."""
        if self._p is None:
            return lambda n=1: None
        tid = self._p.add_task(description, total=total)
        return lambda n=1: self._p.advance(tid, n)


# ---------------------------------------------------------------------------------------------- model
@dataclass
class LoadedModel:
    """A float model ready for the TFLite converter."""

    kind: str                      # "keras" (Keras 3), "tf_keras" (legacy), "saved_model"
    path: str | None
    model: Any                     # Keras model, or the loaded SavedModel (tf.saved_model.load)
    input_shape: tuple[int, ...]   # without the batch axis
    output_shape: tuple[int, ...]
    n_inputs: int = 1
    input_dtype: str = "float32"   # "int32" / "int64" for integer inputs (Embedding token ids -> GATHER)

    @property
    def integer_input(self) -> bool:
        return self.input_dtype.startswith(("int", "uint"))

    def predict(self, x: np.ndarray) -> np.ndarray:
        tf = import_tf()
        if self.kind == "saved_model":
            fn = self.model.signatures["serving_default"]
            outs = []
            for i in range(0, len(x), 256):
                r = fn(tf.constant(x[i:i + 256].astype(self.input_dtype)))
                outs.append(np.asarray(next(iter(r.values()))))
            return np.concatenate(outs)
        return np.asarray(self.model.predict(x.astype(self.input_dtype), batch_size=256, verbose=0))


def _shape_wo_batch(shape: Any) -> tuple[int, ...]:
    dims = [None if d is None else int(d) for d in list(shape)]
    return tuple(d if d is not None else -1 for d in dims[1:])


def _from_keras(model: Any, kind: str, path: str | None) -> LoadedModel:
    ins = model.inputs if getattr(model, "inputs", None) else None
    if not ins:
        raise ConvertError(f"{path or 'model'}: the Keras model has no defined inputs; build it (call it on an "
                           "input or give keras.Input) before converting")
    if len(ins) != 1 or len(model.outputs) != 1:
        raise ConvertError(f"{path or 'model'}: {len(ins)} inputs / {len(model.outputs)} outputs: mpyml convert "
                           "takes single-input single-output models; convert others with TFLiteConverter and "
                           "`mpyml pack`")
    return LoadedModel(kind, path, model, _shape_wo_batch(ins[0].shape), _shape_wo_batch(model.outputs[0].shape),
                       input_dtype=_dtype_name(ins[0].dtype))


def _dtype_name(d: Any) -> str:
    """numpy-style name of a Keras 3 (str) / tf_keras / TensorFlow (tf.DType) input dtype."""
    return str(getattr(d, "name", d) or "float32")


def load_model(model_or_path: Any) -> LoadedModel:
    """A Keras 3 model / tf_keras model / path to .keras, .h5 or a SavedModel directory."""
    if isinstance(model_or_path, LoadedModel):
        return model_or_path
    if not isinstance(model_or_path, (str, os.PathLike)):
        mod = type(model_or_path).__module__
        if hasattr(model_or_path, "predict") and hasattr(model_or_path, "inputs"):
            return _from_keras(model_or_path, "tf_keras" if mod.startswith("tf_keras") else "keras", None)
        raise ConvertError(f"model: got a {type(model_or_path).__name__}; give a Keras model or the path of a "
                           ".keras / .h5 file or SavedModel directory")
    p = Path(model_or_path)
    if not p.exists():
        raise FileNotFoundError(2, "No such file or directory", str(p))
    tf = import_tf()
    fix = "give a Keras 3 .keras file, a legacy .h5 or a SavedModel directory"
    if p.is_dir():
        if not (p / "saved_model.pb").exists():
            raise ConvertError(f"{p}: directory without saved_model.pb, so not a SavedModel: {fix}")
        try:
            with _quiet_fds():
                sm = tf.saved_model.load(str(p))
            fn = sm.signatures["serving_default"]
        except Exception as e:  # noqa: BLE001 - any loader failure is a bad file for the user
            raise ConvertError(f"{p}: cannot load the SavedModel ({_first_line(e)}): {fix}") from None
        specs = [s for s in fn.structured_input_signature[1].values()]
        outs = list(fn.structured_outputs.values())
        if len(specs) != 1 or len(outs) != 1:
            raise ConvertError(f"{p}: {len(specs)} inputs / {len(outs)} outputs: mpyml convert takes "
                               "single-input single-output models")
        return LoadedModel("saved_model", str(p), sm, _shape_wo_batch(specs[0].shape), _shape_wo_batch(outs[0].shape),
                           input_dtype=_dtype_name(specs[0].dtype))
    suffix = p.suffix.lower()
    if suffix == ".tflite":
        raise ConvertError(f"{p}: already a .tflite: pack it with `mpyml pack {p}` (convert takes the float Keras "
                           "model or SavedModel)")
    if suffix not in (".keras", ".h5", ".hdf5"):
        raise ConvertError(f"{p}: unknown model file type {suffix or '(none)'!r}: {fix}")
    errors = []
    try:
        import keras

        with _quiet_fds():
            m = keras.saving.load_model(str(p), compile=False)
        return _from_keras(m, "keras", str(p))
    except ConvertError:
        raise
    except Exception as e:  # noqa: BLE001
        errors.append(_first_line(e))
    if suffix != ".keras":
        try:
            import tf_keras

            with _quiet_fds():
                m = tf_keras.models.load_model(str(p), compile=False)
            return _from_keras(m, "tf_keras", str(p))
        except ConvertError:
            raise
        except Exception as e:  # noqa: BLE001
            errors.append(_first_line(e))
    raise ConvertError(f"{p}: not a loadable Keras model ({errors[-1]}): {fix}")


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    line = s.splitlines()[0] if s else type(e).__name__
    return line[:200]


# ---------------------------------------------------------------------------------------------- data
def _load_images(folder: Path, shape: tuple[int, ...]) -> np.ndarray:
    from PIL import Image

    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConvertError(f"{folder}: no .png / .jpg / .bmp images in the folder: give image files or a .npy")
    if len(shape) != 3 or shape[2] not in (1, 3) or shape[0] < 1 or shape[1] < 1:
        raise ConvertError(f"{folder}: the model's input is {shape}, not an image (H, W, 1 or 3): give a .npy")
    h, w, c = shape
    out = np.empty((len(files), h, w, c), dtype=np.float32)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                im = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.Resampling.BILINEAR)
                a = np.asarray(im, dtype=np.float32) / 255.0
        except OSError as e:
            raise ConvertError(f"{f}: not a readable image ({_first_line(e)}): remove it from the folder") from None
        out[i] = a.reshape(h, w, c)
    return out


def _load_array(src: Any, what: str) -> np.ndarray:
    if isinstance(src, (str, os.PathLike)):
        p = Path(src)
        if not p.exists():
            raise FileNotFoundError(2, "No such file or directory", str(p))
        try:
            a = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise ConvertError(f"{p}: not a .npy / .npz file ({_first_line(e)}): save {what} with numpy.save") \
                from None
        if isinstance(a, np.lib.npyio.NpzFile):
            keys = list(a.keys())
            key = next((k for k in ("x", "calibration", "data", "arr_0") if k in keys), None)
            if key is None and len(keys) == 1:
                key = keys[0]
            if key is None:
                raise ConvertError(f"{p}: .npz with arrays {keys}: keep one array, or name it 'x'")
            return np.asarray(a[key])
        return np.asarray(a)
    return np.asarray(src)


def load_calibration(src: Any, input_shape: tuple[int, ...], what: str = "calibration data",
                     dtype: str = "float32") -> np.ndarray:
    """float32 samples (N, *input_shape) from an array, .npy / .npz or image folder; ConvertError on bad ones.
    A model with an integer input (`dtype` "int32": Embedding token ids) takes integer samples (or floats with
    integral values), returned as that dtype."""
    if isinstance(src, (str, os.PathLike)) and Path(src).is_dir():
        return _load_images(Path(src), input_shape)
    a = _load_array(src, what)
    name = str(src) if isinstance(src, (str, os.PathLike)) else what
    if dtype.startswith(("int", "uint")):
        return _integer_samples(a, input_shape, name, what, dtype)
    if not np.issubdtype(a.dtype, np.floating):
        raise ConvertError(f"{name}: {what} is {a.dtype}; give float samples scaled as the model takes them "
                           "(e.g. x.astype('float32') / 255)")
    want = input_shape
    if a.ndim == len(want) + 2 and a.shape[1] == 1:   # (N, 1, ...) batches of one
        a = a.reshape(a.shape[0], *a.shape[2:])
    ok = a.ndim == len(want) + 1 and all(w in (-1, s) for w, s in zip(want, a.shape[1:], strict=True))
    if not ok:
        raise ConvertError(f"{name}: {what} has shape {a.shape}; the model takes (N, {', '.join(map(str, want))}) "
                           "(N samples, NHWC)")
    if len(a) == 0:
        raise ConvertError(f"{name}: {what} holds no samples: give at least one")
    if not np.all(np.isfinite(a)):
        raise ConvertError(f"{name}: {what} contains NaN or infinite values: clean the data")
    return a.astype(np.float32)


def _integer_samples(a: np.ndarray, input_shape: tuple[int, ...], name: str, what: str, dtype: str) -> np.ndarray:
    if not np.issubdtype(a.dtype, np.number) or (np.issubdtype(a.dtype, np.floating)
                                                 and not np.all(np.isfinite(a) & (a == np.round(a)))):
        raise ConvertError(f"{name}: the model's input is {dtype} (token ids, e.g. of an Embedding): give integer "
                           f"{what}, e.g. real token sequences or np.random.randint(0, vocabulary, (N, ...))")
    if a.ndim == len(input_shape) + 2 and a.shape[1] == 1:
        a = a.reshape(a.shape[0], *a.shape[2:])
    if a.ndim != len(input_shape) + 1 or not all(w in (-1, s) for w, s in zip(input_shape, a.shape[1:], strict=True)):
        raise ConvertError(f"{name}: {what} has shape {a.shape}; the model takes "
                           f"(N, {', '.join(map(str, input_shape))})")
    if len(a) == 0:
        raise ConvertError(f"{name}: {what} holds no samples: give at least one")
    return a.astype(dtype)


def random_tokens(lm: LoadedModel, n: int = 256, seed: int = 0) -> np.ndarray:
    """Calibration for an integer-input model without data: random ids in 0..input_dim-1 of its first Embedding
    layer (the range GATHER accepts). Real token sequences calibrate better; ConvertError without an Embedding."""
    layers = getattr(lm.model, "layers", None) or []
    emb = next((ly for ly in layers if type(ly).__name__ == "Embedding"), None)
    if emb is None or any(d < 0 for d in lm.input_shape):
        raise ConvertError("--calibration random needs a Keras model with an Embedding layer and a fixed input shape; "
                           "give integer calibration samples instead")
    rng = np.random.default_rng(seed)
    return rng.integers(0, int(emb.input_dim), size=(n, *lm.input_shape)).astype(lm.input_dtype)


@dataclass
class Targets:
    kind: str                     # "labels" or "values"
    y: np.ndarray                 # labels (N,) int64, or float targets (N, ...)


def load_targets(src: Any, n: int, output_shape: tuple[int, ...]) -> Targets:
    y = _load_array(src, "labels")
    name = str(src) if isinstance(src, (str, os.PathLike)) else "eval labels"
    if len(y) != n:
        raise ConvertError(f"{name}: {len(y)} labels for {n} eval samples: give one label (or target) per sample")
    n_out = int(np.prod([d for d in output_shape if d > 0])) if output_shape else 1
    if np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
            lab = y.reshape(-1).astype(np.int64)
            if lab.min() < 0 or (n_out > 1 and lab.max() >= n_out):
                raise ConvertError(f"{name}: labels range {lab.min()}..{lab.max()} but the model has {n_out} "
                                   "outputs: labels must be class indices 0..{n_out - 1}")
            return Targets("labels", lab)
    if y.ndim == 2 and y.shape[1] == n_out and n_out > 1 and np.all((y == 0) | (y == 1)) \
            and np.all(y.sum(axis=1) == 1):
        return Targets("labels", np.argmax(y, axis=1).astype(np.int64))
    if not np.issubdtype(y.dtype, np.number):
        raise ConvertError(f"{name}: labels of dtype {y.dtype}: give integer class labels, one-hot rows or floats")
    if int(np.prod(y.shape[1:])) != n_out:
        raise ConvertError(f"{name}: targets of shape {y.shape} do not match the model's output "
                           f"{output_shape}: give class labels (N,), one-hot (N, {n_out}) or float targets")
    return Targets("values", y.astype(np.float32).reshape(n, n_out))


# ---------------------------------------------------------------------------------------------- conversion
def _keras_layers(model: Any) -> Iterator[Any]:
    """Every layer of a Keras model, nested models and wrappers (Bidirectional, TimeDistributed) included."""
    for ly in getattr(model, "layers", None) or []:
        yield ly
        yield from _keras_layers(ly)
        for inner in (getattr(ly, "layer", None), getattr(ly, "forward_layer", None),
                      getattr(ly, "backward_layer", None)):
            if inner is not None:
                yield inner


def _check_convertible(lm: LoadedModel) -> None:
    """Refuse, before TensorFlow crashes the process, what its converter segfaults on (TF 2.19 here): a GRU with
    its symbolic time loop (unroll=False), in Keras 3 and tf-keras, and a Keras 3 LSTM (tf-keras LSTM converts to
    the fused UNIDIRECTIONAL_SEQUENCE_LSTM). Unrolled they convert to FULLY_CONNECTED / LOGISTIC / TANH / MUL / ADD
    per step, which mpyml runs bit-exactly."""
    if lm.kind == "saved_model":
        return
    for ly in _keras_layers(lm.model):
        kind = type(ly).__name__
        if (kind == "GRU" or (kind == "LSTM" and lm.kind == "keras")) and not getattr(ly, "unroll", False):
            raise ConvertError(f"layer {ly.name!r}: the TFLite converter crashes on a {kind}'s time loop; build it "
                               f"with {kind}(..., unroll=True) (a fixed sequence length, e.g. keras.Input((T, F), "
                               "batch_size=1)) and convert again")


def _converter(tf: Any, lm: LoadedModel) -> Any:
    _check_convertible(lm)
    if lm.kind == "saved_model":
        assert lm.path is not None
        return tf.lite.TFLiteConverter.from_saved_model(lm.path)
    return tf.lite.TFLiteConverter.from_keras_model(lm.model)


def _unquantizable(msg: str) -> str | None:
    m = re.search(r"'(?:tf|tfl)\.([A-Za-z0-9_]+)' op", msg) or re.search(r"op[s]? (?:named )?'?([A-Za-z0-9_.]+)'?"
                                                                         r" (?:is|are) neither", msg)
    return m.group(1) if m else None


def quantized_tflite(lm: LoadedModel, calibration: np.ndarray, io: str = "int8",
                     progress: Progress | None = None) -> bytes:
    """TensorFlow's full-integer PTQ (the hand-written flow), with the representative dataset `calibration`."""
    if io not in IO_TYPES:
        raise ConvertError(f"--io {io!r}: choose one of {', '.join(IO_TYPES)}")
    tf = import_tf()
    conv = _converter(tf, lm)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    advance = (progress or Progress(False)).task("calibrating", len(calibration))

    def rep() -> Iterator[list[np.ndarray]]:
        for i in range(len(calibration)):
            advance(1)
            # an integer input (Embedding ids) is calibrated with integers: the converter refuses floats there
            yield [calibration[i:i + 1].astype(lm.input_dtype) if lm.integer_input else calibration[i:i + 1]]

    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io != "float":
        conv.inference_input_type = getattr(tf, io)
        conv.inference_output_type = getattr(tf, io)
    try:
        with warnings.catch_warnings(), _quiet_fds():
            warnings.simplefilter("ignore")
            return bytes(conv.convert())
    except Exception as e:  # noqa: BLE001 - the converter raises ConverterError / RuntimeError / ValueError
        msg = str(e)
        op = _unquantizable(msg)
        if op is not None:
            raise ConvertError(f"the TFLite converter cannot quantize op {op} to int8: replace that layer with "
                               "one the converter quantizes (see README, Supported ops)") from None
        raise ConvertError(f"the TFLite converter failed: {_first_line(e)}: check the model converts with "
                           "tf.lite.TFLiteConverter") from None


def float_tflite(lm: LoadedModel) -> bytes:
    tf = import_tf()
    conv = _converter(tf, lm)
    with warnings.catch_warnings(), _quiet_fds():
        warnings.simplefilter("ignore")
        return bytes(conv.convert())


# ---------------------------------------------------------------------------------------------- SQNR
def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB (inf when exact)."""
    ref = np.asarray(ref, dtype=np.float64).ravel()
    got = np.asarray(got, dtype=np.float64).ravel()
    noise = float(np.sum((ref - got) ** 2))
    sig = float(np.sum(ref ** 2))
    if noise == 0.0:
        return math.inf
    if sig == 0.0:
        return -math.inf
    return 10.0 * math.log10(sig / noise)


def _interpreter(tflite: bytes, preserve: bool = True) -> Any:
    """tf.lite.Interpreter without delegates (XNNPACK would fuse ops and hide tensors), quietly."""
    tf = import_tf()
    with warnings.catch_warnings(), _quiet_fds():
        warnings.simplefilter("ignore")
        it = tf.lite.Interpreter(
            model_content=tflite, experimental_preserve_all_tensors=preserve,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        it.allocate_tensors()
    return it


def _all_tensors(it: Any, x: np.ndarray) -> dict[int, np.ndarray]:
    """Every tensor's value (dequantized) after one invoke of `it` on the float sample x."""
    d = it.get_input_details()[0]
    a = x
    if d["dtype"] != np.float32 and d["quantization"][0] == 0.0:
        a = x.astype(d["dtype"])            # an unquantized integer input (token ids)
    elif d["dtype"] != np.float32:
        s, z = d["quantization"]
        info = np.iinfo(d["dtype"])
        a = np.clip(np.round(x / s) + z, info.min, info.max).astype(d["dtype"])
    it.set_tensor(d["index"], a.reshape(d["shape"]))
    it.invoke()
    vals = {}
    for t in it.get_tensor_details():
        with contextlib.suppress(ValueError):
            v = it.get_tensor(t["index"])
            if t["dtype"] in (np.int8, np.uint8, np.int16) and t["quantization"][0] != 0.0:
                s, z = t["quantization"]
                v = (v.astype(np.float64) - z) * s
            vals[t["index"]] = np.array(v, dtype=np.float64)
    return vals


def _norm_name(name: str) -> str:
    return name.split(";")[0]


def per_op_sqnr(q_tflite: bytes, f_tflite: bytes, data: np.ndarray, limit: int = 32) -> list[dict[str, Any]]:
    """Each int8 op's dequantized output vs the float32 TFLite model's same tensor (by name, else by op order and
    shape): SQNR in dB over `limit` samples of `data`, and `loss_db`, how much SQNR the op itself lost (its
    worst activation input's SQNR minus its output's)."""
    qi = _interpreter(q_tflite)
    fi = _interpreter(f_tflite)
    q_ops = qi._get_ops_details()
    f_ops = fi._get_ops_details()
    q_t = {t["index"]: t for t in qi.get_tensor_details()}
    f_t = {t["index"]: t for t in fi.get_tensor_details()}
    f_by_name: dict[str, int] = {}
    for t in f_t.values():
        f_by_name.setdefault(t["name"], t["index"])
        f_by_name.setdefault(_norm_name(t["name"]), t["index"])
    f_by_op: dict[str, list[int]] = {}
    for op in f_ops:
        if op["outputs"].size:
            f_by_op.setdefault(op["op_name"], []).append(int(op["outputs"][0]))

    def match(qidx: int, opname: str | None = None, k: int = 0) -> int | None:
        name = q_t[qidx]["name"]
        fidx = f_by_name.get(name, f_by_name.get(_norm_name(name)))
        if fidx is None and opname is not None:
            cands = f_by_op.get(opname, [])
            if k < len(cands):
                fidx = cands[k]
        if fidx is None or tuple(f_t[fidx]["shape"]) != tuple(q_t[qidx]["shape"]):
            return None
        return fidx

    # activations: the model inputs and every op output
    pairs: dict[int, int] = {}
    for i in qi.get_input_details():
        f = match(int(i["index"]))
        if f is None and len(fi.get_input_details()) == 1:
            f = int(fi.get_input_details()[0]["index"])
        if f is not None:
            pairs[int(i["index"])] = f
    seen: dict[str, int] = {}
    ops = []
    for op in q_ops:
        if not op["outputs"].size:
            continue
        k = seen.get(op["op_name"], 0)
        seen[op["op_name"]] = k + 1
        qidx = int(op["outputs"][0])
        f = match(qidx, op["op_name"], k)
        if f is not None:
            pairs[qidx] = f
        ops.append((op["op_name"], qidx, [int(t) for t in op["inputs"] if t >= 0]))
    sig = dict.fromkeys(pairs, 0.0)
    noise = dict.fromkeys(pairs, 0.0)
    for x in data[:limit]:
        qv = _all_tensors(qi, x[None])
        fv = _all_tensors(fi, x[None])
        for qidx, fidx in pairs.items():
            if qidx in qv and fidx in fv:
                sig[qidx] += float(np.sum(fv[fidx] ** 2))
                noise[qidx] += float(np.sum((fv[fidx] - qv[qidx]) ** 2))

    def db(t: int) -> float | None:
        if t not in pairs or sig[t] == 0.0:
            return None
        return math.inf if noise[t] == 0.0 else 10 * math.log10(sig[t] / noise[t])

    rows = []
    for opname, qidx, ins in ops:
        if opname in ("QUANTIZE", "DEQUANTIZE") or qidx not in pairs:
            continue
        out = db(qidx)
        in_db = [v for v in (db(t) for t in ins) if v is not None]
        inp = min(in_db) if in_db else None
        loss = None if out is None or inp is None or not math.isfinite(out) or not math.isfinite(inp) \
            else round(inp - out, 2)
        rows.append({"op": opname, "tensor": _norm_name(q_t[qidx]["name"]),
                     "sqnr_db": round(out, 2) if out is not None and math.isfinite(out) else None,
                     "loss_db": loss})
    return rows


# ---------------------------------------------------------------------------------------------- eval
def _score(t: Targets, out: np.ndarray) -> float:
    out = np.asarray(out, dtype=np.float64).reshape(len(t.y), -1)
    if t.kind == "labels":
        if out.shape[1] == 1:   # binary with one sigmoid output
            return float(np.mean((out[:, 0] > 0.5).astype(np.int64) == t.y))
        return float(np.mean(np.argmax(out, axis=1) == t.y))
    return float(np.mean(np.abs(out - t.y)))


def _to_model_input(det: Any, x: np.ndarray) -> np.ndarray:
    if det.dtype == np.float32:
        return x.astype(np.float32).reshape(det.shape)
    if det.dtype in (np.int32, np.int64) and not det.scale:
        return x.astype(det.dtype).reshape(det.shape)     # token ids: not quantized
    return det.quantize(x)


@dataclass
class ConvertResult:
    """What `convert` produced and measured (`metrics` is what --json prints)."""

    tflite: bytes
    mpk: bytes
    metrics: dict[str, Any] = field(default_factory=dict)
    qat_tflite: bytes | None = None
    qat_mpk: bytes | None = None
    base_tflite: bytes | None = None   # with --prune / --prune-channels / --teacher: the uncompressed model's
    base_mpk: bytes | None = None      # (tflite / mpk then hold the last compression stage's, the one written)


def evaluate(lm: LoadedModel, tflite: bytes, mpk: bytes, x: np.ndarray, t: Targets,
             progress: Progress | None = None, float_out: np.ndarray | None = None,
             timing: bool = True) -> dict[str, Any]:
    """Float model, int8 tflite-micro and the .mpk on the unix port over the same samples."""
    from .tflm import reference_runner
    from .unix_port import run_batch, run_model

    prog = progress or Progress(False)
    metric = "accuracy" if t.kind == "labels" else "mae"
    adv = prog.task("evaluating", 3 * len(x))
    fo = lm.predict(x) if float_out is None else float_out
    adv(len(x))
    ref = reference_runner(tflite)      # tflite-micro, or TFLite's reference kernels for ops it lacks (GELU, ...)
    di, do = ref.input_details()[0], ref.output_details()[0]
    ins = [_to_model_input(di, s[None]) for s in x]
    tflm_raw = []
    for a in ins:
        tflm_raw.append(ref.run([a])[0])
        adv(1)
    dev = run_batch(mpk, [[a] for a in ins])
    adv(len(x))
    dev_raw = [s[0] for s in dev.batch]
    exact = sum(bool(np.array_equal(a, b) and a.dtype == b.dtype) for a, b in zip(tflm_raw, dev_raw, strict=True))

    def deq(raw: list[np.ndarray]) -> np.ndarray:
        return np.stack([r.astype(np.float32) if do.dtype == np.float32 else do.dequantize(r) for r in raw])

    res: dict[str, Any] = {
        "metric": metric,
        "eval_samples": len(x),
        f"float_{metric}": _score(t, fo),
        f"int8_{metric}": _score(t, deq(tflm_raw)),
        f"device_{metric}": _score(t, deq(dev_raw)),
        "bit_exact": exact == len(x),
        "bit_exact_samples": exact,
        "tflm_arena_head_bytes": ref.arena_head_bytes(),
        "oracle": ref.oracle,
    }
    if timing:
        res["unix_port_us"] = run_model(mpk, ins[0:1], repeat=TIMING_REPEAT).median_us
    return res


# ---------------------------------------------------------------------------------------------- QAT
def qat_finetune(lm: LoadedModel, x: np.ndarray, y: np.ndarray, epochs: int, progress: Progress | None = None,
                 learning_rate: float = DEFAULT_QAT_LR) -> LoadedModel:
    """Fine-tune with fake quantization (tensorflow-model-optimization, tf_keras); the returned model converts
    with the same full-integer flow."""
    import_tf()
    try:
        import tensorflow_model_optimization as tfmot
        import tf_keras
    except ImportError as e:
        raise ConvertError(f"--qat needs tensorflow-model-optimization and tf-keras ({e}): install them with "
                           "`make setup`") from None
    model = _as_tf_keras(lm, x[:8])
    try:
        with _quiet_fds():
            qmodel = tfmot.quantization.keras.quantize_model(model)
    except Exception as e:  # noqa: BLE001
        raise ConvertError(f"--qat: tensorflow-model-optimization cannot quantize this model "
                           f"({_first_line(e)}): use post-training quantization (drop --qat)") from None
    labels = np.issubdtype(y.dtype, np.integer)
    n_out = int(np.prod(lm.output_shape))
    if labels:
        probs = _ends_in_softmax(model)
        loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=not probs)
    else:
        loss = tf_keras.losses.MeanSquaredError()
    qmodel.compile(optimizer=tf_keras.optimizers.Adam(learning_rate), loss=loss)
    steps = epochs
    adv = (progress or Progress(False)).task("QAT training (epochs)", steps)

    class _Cb(tf_keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            adv(1)

    yy = y if labels else y.reshape(len(y), n_out)
    qmodel.fit(x, yy, epochs=epochs, batch_size=32, shuffle=True, verbose=0, callbacks=[_Cb()])
    return LoadedModel("tf_keras", None, qmodel, lm.input_shape, lm.output_shape)


def _ends_in_softmax(model: Any) -> bool:
    last = model.layers[-1]
    cfg = last.get_config()
    return type(last).__name__ == "Softmax" or cfg.get("activation") == "softmax"


def _as_tf_keras(lm: LoadedModel, sample: np.ndarray) -> Any:
    """The model as tf_keras (tfmot's Keras): as is, or a Keras 3 model rebuilt layer by layer (same configs and
    weights) when it is a plain chain of layers tf_keras also has."""
    import tf_keras

    if lm.kind == "tf_keras":
        return lm.model
    if lm.kind != "keras":
        raise ConvertError("--qat needs a Keras model (.keras or .h5), not a SavedModel: give the Keras file")
    m = lm.model
    layers = [ly for ly in m.layers if type(ly).__name__ != "InputLayer"]
    drop = {"dtype", "quantization_config"}
    try:
        inp = tf_keras.Input(lm.input_shape, batch_size=m.inputs[0].shape[0])
        h = inp
        for ly in layers:
            # initializers do not matter (the weights are copied); Keras 3-only keys are dropped
            cfg = {k: v for k, v in ly.get_config().items() if k not in drop and not k.endswith("_initializer")}
            for k, v in list(cfg.items()):
                if isinstance(v, dict) and "class_name" in v and "module" in v:  # Keras 3 serialized objects
                    cfg[k] = {"class_name": v["class_name"], "config": v.get("config", {})}
            new = getattr(tf_keras.layers, type(ly).__name__).from_config(cfg)
            h = new(h)
            new.set_weights(ly.get_weights())
        rebuilt = tf_keras.Model(inp, h)
    except Exception as e:  # noqa: BLE001
        raise ConvertError(f"--qat: cannot rebuild this Keras 3 model in tf_keras for QAT ({_first_line(e)}): "
                           "save it from tf_keras as .h5, or drop --qat") from None
    ref = np.asarray(m.predict(sample, verbose=0))
    got = np.asarray(rebuilt.predict(sample, verbose=0))
    if ref.shape != got.shape or not np.allclose(ref, got, rtol=1e-4, atol=1e-5):
        raise ConvertError("--qat: this Keras 3 model is not a plain chain of layers (rebuilt in tf_keras it "
                           "computes something else): save it from tf_keras as .h5, or drop --qat")
    return rebuilt


# ---------------------------------------------------------------------------------------------- main API
def convert(model_or_path: Any, calibration: Any, *, output: str | os.PathLike[str] | None = None,
            eval_data: tuple[Any, Any] | None = None, io: str = "int8",
            tflite_output: str | os.PathLike[str] | None = None, report_dir: str | os.PathLike[str] | None = None,
            qat: bool = False, train_data: tuple[Any, Any] | None = None, epochs: int = DEFAULT_EPOCHS,
            qat_lr: float = DEFAULT_QAT_LR, progress: bool = True, max_calibration: int = DEFAULT_MAX_CALIBRATION,
            sqnr: bool = True, timing: bool = True, prune: float | None = None,
            prune_channels: float | None = None, teacher: Any = None, temperature: float | None = None,
            alpha: float | None = None, lr: float = DEFAULT_LR, seed: int = 0,
            prune_block: int | None = None) -> ConvertResult:
    """Quantize (full-integer PTQ, optionally QAT) and pack a float model; measure it when eval_data is given.

    calibration: float array (N, *input) / .npy / .npz path / folder of images. eval_data: (x, y) arrays or paths.
    io: "int8", "uint8" or "float" (float32 model edges). Writes `output` (.mpk) and `tflite_output` when given.
    teacher (distillation), prune_channels (structured), prune (magnitude sparsity, in blocks of prune_block
    output channels, default prune.DEFAULT_BLOCK): compression stages run in that order on train_data, each
    measured (metrics "distill", "prune_channels", "prune"); the last is written.
    """
    from .inspect_model import inspect_model
    from .packer import PackError, pack

    if io not in IO_TYPES:
        raise ConvertError(f"io={io!r}: choose one of {', '.join(IO_TYPES)}")
    if qat and train_data is None:
        raise ConvertError("--qat needs training data: add --train X Y")
    if epochs < 1:
        raise ConvertError(f"--epochs {epochs}: must be at least 1")
    if prune_block is not None:
        from .prune import BLOCKS
        if prune is None:
            raise ConvertError("--prune-block sets how --prune zeroes weights: add --prune SPARSITY")
        if prune_block not in BLOCKS:
            raise ConvertError(f"--prune-block {prune_block}: choose one of {', '.join(map(str, BLOCKS))}")
    compress = prune is not None or prune_channels is not None or teacher is not None
    if compress or temperature is not None or alpha is not None:
        _check_compress(qat, train_data, prune, prune_channels, teacher, temperature, alpha, lr)
    lm = load_model(model_or_path)
    if any(d < 0 for d in lm.input_shape):
        pass   # dynamic dims are checked against the data only where fixed
    if lm.integer_input and isinstance(calibration, str) and calibration == "random":
        cal = random_tokens(lm)
    else:
        cal = load_calibration(calibration, lm.input_shape, dtype=lm.input_dtype)
    if max_calibration and len(cal) > max_calibration:
        cal = cal[:max_calibration]
    ex = et = None
    if eval_data is not None:
        ex = load_calibration(eval_data[0], lm.input_shape, what="eval data", dtype=lm.input_dtype)
        et = load_targets(eval_data[1], len(ex), lm.output_shape)

    with Progress(progress) as prog:
        tfl = quantized_tflite(lm, cal, io, prog)
        try:
            mpk = pack(tfl)
        except PackError as e:
            raise ConvertError(f"converted, but mpyml cannot pack it: {_first_line(e)}") from None
        info = inspect_model(mpk)
        metrics: dict[str, Any] = {
            "model": lm.path, "io": io, "calibration_samples": len(cal),
            "arena_bytes": info["arena_bytes"], "file_bytes": info["file_bytes"],
            "weights_bytes": info["weights_bytes"], "macs": info["macs"], "ops": info["ops"],
            "tflite_bytes": len(tfl),
            "layers": [{"op": ly["op"], "output": ly["output"], "macs": ly.get("macs", 0),
                        "activation_bytes": ly.get("activation_bytes", 0)} for ly in info.get("layers", [])],
        }
        if sqnr:
            ftfl = float_tflite(lm)
            metrics["op_sqnr_db"] = per_op_sqnr(tfl, ftfl, cal)
            finite = [r for r in metrics["op_sqnr_db"] if r["sqnr_db"] is not None]
            if finite:
                lossy = [r for r in finite if r["loss_db"] is not None]
                metrics["worst_op"] = (max(lossy, key=lambda r: r["loss_db"]) if lossy
                                       else min(finite, key=lambda r: r["sqnr_db"]))
        float_out = None
        if ex is not None and et is not None:
            float_out = lm.predict(ex)
            metrics.update(evaluate(lm, tfl, mpk, ex, et, prog, float_out=float_out, timing=timing))
        result = ConvertResult(tfl, mpk, metrics)
        if qat:
            assert train_data is not None
            tx = load_calibration(train_data[0], lm.input_shape, what="training data")
            tt = load_targets(train_data[1], len(tx), lm.output_shape)
            ty = tt.y
            qlm = qat_finetune(lm, tx, ty, epochs, prog, learning_rate=qat_lr)
            qtfl = quantized_tflite(qlm, cal, io, prog)
            try:
                qmpk = pack(qtfl)
            except PackError as e:
                raise ConvertError(f"QAT model converted, but mpyml cannot pack it: {_first_line(e)}") from None
            result.qat_tflite, result.qat_mpk = qtfl, qmpk
            q: dict[str, Any] = {"file_bytes": len(qmpk), "tflite_bytes": len(qtfl), "epochs": epochs,
                                 "learning_rate": qat_lr}
            if ex is not None and et is not None:
                ev = evaluate(lm, qtfl, qmpk, ex, et, prog, float_out=float_out, timing=False)
                q.update({k: v for k, v in ev.items() if k.startswith(("int8_", "device_", "bit_exact"))})
            metrics["qat"] = q
            # the QAT model is the one written out
            tfl, mpk = qtfl, qmpk
        if compress:
            assert train_data is not None
            result.base_tflite, result.base_mpk = tfl, mpk
            tfl, mpk = _compress(lm, tfl, cal, io, prog, metrics, train_data, ex, et, epochs, lr, seed, timing,
                                 prune, prune_channels, teacher, temperature, alpha, prune_block)
            result.tflite, result.mpk = tfl, mpk
    if output is not None:
        Path(output).write_bytes(mpk)
    if tflite_output is not None:
        Path(tflite_output).write_bytes(tfl)
    if report_dir is not None:
        from .convert_report import write_report

        metrics["report"] = str(write_report(Path(report_dir), metrics))
    return result


# ---------------------------------------------------------------------------------------------- compression
def _check_compress(qat: bool, train_data: Any, prune: float | None, prune_channels: float | None, teacher: Any,
                    temperature: float | None, alpha: float | None, lr: float) -> None:
    used = " / ".join(n for n, v in (("--prune", prune), ("--prune-channels", prune_channels),
                                      ("--teacher", teacher)) if v is not None)
    if teacher is None and (temperature is not None or alpha is not None):
        raise ConvertError("--temperature / --alpha are distillation settings: add --teacher TEACHER.keras")
    if qat:
        raise ConvertError(f"--qat with {used}: QAT would fill the pruned weights back in; run one of them")
    if train_data is None:
        raise ConvertError(f"{used} fine-tunes the model: add --train X Y")
    if prune is not None and not 0.0 < prune < 1.0:
        raise ConvertError(f"--prune {prune:g}: the sparsity must be between 0 and 1 (e.g. 0.8)")
    if prune_channels is not None and not 0.0 < prune_channels < 1.0:
        raise ConvertError(f"--prune-channels {prune_channels:g}: the fraction of channels removed must be between "
                           "0 and 1 (e.g. 0.5)")
    if temperature is not None and not temperature > 0:
        raise ConvertError(f"--temperature {temperature:g}: must be positive (e.g. 4)")
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise ConvertError(f"--alpha {alpha:g}: the hard-label weight must be in [0, 1] (e.g. 0.1)")
    if not lr > 0:
        raise ConvertError(f"--lr {lr:g}: the learning rate must be positive (e.g. 1e-3)")


def _stage(lm: LoadedModel, model: Any, cal: np.ndarray, io: str, prog: Progress, ex: np.ndarray | None,
           et: Targets | None, timing: bool, what: str) -> tuple[bytes, bytes, dict[str, Any]]:
    """Quantize, pack, inspect and (with eval data) evaluate one compressed float model."""
    from .compare import weight_sparsity_int8
    from .inspect_model import inspect_model
    from .packer import PackError, pack

    slm = LoadedModel(lm.kind, None, model, lm.input_shape, lm.output_shape)
    tfl = quantized_tflite(slm, cal, io, prog)
    try:
        mpk = pack(tfl)
    except PackError as e:
        raise ConvertError(f"{what}: converted, but mpyml cannot pack it: {_first_line(e)}") from None
    info = inspect_model(mpk)
    d: dict[str, Any] = {"file_bytes": len(mpk), "tflite_bytes": len(tfl), "macs": info["macs"],
                         "arena_bytes": info["arena_bytes"], "weights_bytes": info["weights_bytes"],
                         "params": int(model.count_params()), "int8_weight_sparsity": weight_sparsity_int8(tfl)}
    if ex is not None and et is not None:
        ev = evaluate(slm, tfl, mpk, ex, et, prog, timing=timing)
        d.update({k: v for k, v in ev.items() if k.startswith(("float_", "int8_", "device_", "bit_exact",
                                                                "unix_port"))})
    return tfl, mpk, d


def _compress(lm: LoadedModel, base_tflite: bytes, cal: np.ndarray, io: str, prog: Progress,
              metrics: dict[str, Any],
              train_data: tuple[Any, Any], ex: np.ndarray | None, et: Targets | None, epochs: int, lr: float,
              seed: int, timing: bool, prune: float | None, prune_channels: float | None, teacher: Any,
              temperature: float | None, alpha: float | None, prune_block: int | None = None) -> tuple[bytes, bytes]:
    """The compression stages (distill -> structured -> magnitude), each measured into metrics; the last's bytes."""
    from . import distill as kd
    from . import prune as pr

    if lm.kind == "saved_model":
        raise ConvertError("--prune / --prune-channels / --teacher train the model: give the Keras file "
                           "(.keras or .h5), not a SavedModel")
    tx = load_calibration(train_data[0], lm.input_shape, what="training data")
    ty = load_targets(train_data[1], len(tx), lm.output_shape).y
    model = pr.clone(lm.model)
    metrics["params"] = int(model.count_params())
    from .compare import weight_sparsity_int8

    metrics["int8_weight_sparsity"] = weight_sparsity_int8(base_tflite)
    out: tuple[bytes, bytes] | None = None
    stages: list[str] = []
    try:
        if teacher is not None:
            T = kd.DEFAULT_TEMPERATURE if temperature is None else float(temperature)  # noqa: N806
            a = kd.DEFAULT_ALPHA if alpha is None else float(alpha)
            tlm = load_model(teacher)
            if tuple(tlm.input_shape) != tuple(lm.input_shape):
                raise ConvertError(f"--teacher: the teacher takes {tlm.input_shape}, the student "
                                   f"{lm.input_shape}: give a teacher for the same inputs")
            tout = tlm.predict(tx)
            adv = prog.task("distilling (epochs, without + with teacher)", 2 * epochs)
            plain, model = kd.distill(model, tout, tx, ty, epochs, lr, T, a, seed=seed, on_epoch=lambda: adv(1))
            _, _, d_plain = _stage(lm, plain, cal, io, prog, ex, et, timing, "--teacher (student without teacher)")
            tfl, mpk, d_kd = _stage(lm, model, cal, io, prog, ex, et, timing, "--teacher")
            d: dict[str, Any] = {"teacher": str(teacher), "temperature": T, "alpha": a, "epochs": epochs,
                                 "learning_rate": lr, "seed": seed, "without_teacher": d_plain, "with_teacher": d_kd}
            if ex is not None and et is not None:
                d["teacher_float_" + ("accuracy" if et.kind == "labels" else "mae")] = _score(et, tlm.predict(ex))
            metrics["distill"] = d
            out = (tfl, mpk)
            stages.append("distill")
        if prune_channels is not None:
            adv = prog.task("structured pruning: fine-tuning (epochs)", epochs)
            narrow, plan = pr.prune_channels(model, prune_channels)
            if not plan.keep:
                raise ConvertError("--prune-channels: no channel can be removed from this model (every channel "
                                   "group reaches the input, the output or a layer that needs all of them)")
            pr.finetune(narrow, tx, ty, epochs, lr, seed=seed, on_epoch=lambda: adv(1))
            model = narrow
            tfl, mpk, d = _stage(lm, model, cal, io, prog, ex, et, timing, "--prune-channels")
            d.update({"fraction": prune_channels, "epochs": epochs, "learning_rate": lr, "seed": seed,
                      "groups": plan.summary()})
            metrics["prune_channels"] = d
            out = (tfl, mpk)
            stages.append("prune_channels")
        if prune is not None:
            adv = prog.task("magnitude pruning: fine-tuning (epochs)", epochs)
            info = pr.magnitude_prune(model, tx, ty, prune, epochs, lr, seed=seed, on_epoch=lambda: adv(1),
                                      block=pr.DEFAULT_BLOCK if prune_block is None else prune_block)
            tfl, mpk, d = _stage(lm, model, cal, io, prog, ex, et, timing, "--prune")
            d.update(info)
            metrics["prune"] = d
            out = (tfl, mpk)
            stages.append("prune")
    except pr.PruneError as e:
        raise ConvertError(str(e)) from None
    assert out is not None
    metrics["stages"] = stages
    return out


class _CallableModule(types.ModuleType):
    """`mpyml.convert` is both this module and the function: importing the submodule rebinds the package
    attribute to the module, so the module calls convert()."""

    def __call__(self, model_or_path: Any, calibration: Any, **kwargs: Any) -> ConvertResult:
        return convert(model_or_path, calibration, **kwargs)


sys.modules[__name__].__class__ = _CallableModule


# ---------------------------------------------------------------------------------------------- CLI
def _fmt(metrics: dict[str, Any]) -> str:
    m = metrics
    lines = [f"int8 model: {m['ops']} ops, {m['macs']:,} MACs, arena {m['arena_bytes']:,} B, "
             f".mpk {m['file_bytes']:,} B (weights {m['weights_bytes']:,} B), .tflite {m['tflite_bytes']:,} B, "
             f"I/O {m['io']}, {m['calibration_samples']} calibration samples"]
    if "metric" in m:
        k = m["metric"]
        pct = (lambda v: f"{v:.2%}") if k == "accuracy" else (lambda v: f"{v:.5g}")
        lines.append(f"{k} on {m['eval_samples']} samples: float {pct(m[f'float_{k}'])}, int8 tflite-micro "
                     f"{pct(m[f'int8_{k}'])}, device (unix port, C engine) {pct(m[f'device_{k}'])}")
        lines.append(f"device bit-exact with tflite-micro: {'yes' if m['bit_exact'] else 'NO'} "
                     f"({m['bit_exact_samples']}/{m['eval_samples']} samples)")
        if m.get("unix_port_us") is not None:
            lines.append(f"median invoke on the unix port: {m['unix_port_us']:.0f} us")
        if "qat" in m and f"int8_{k}" in m["qat"]:
            q = m["qat"]
            lines.append(f"QAT ({q['epochs']} epochs): int8 tflite-micro {pct(q[f'int8_{k}'])}, device "
                         f"{pct(q[f'device_{k}'])}, bit-exact {'yes' if q['bit_exact'] else 'NO'} "
                         f"(vs PTQ {pct(m[f'int8_{k}'])})")
    lines += _fmt_stages(m)
    if m.get("worst_op"):
        w = m["worst_op"]
        lost = f", loses {w['loss_db']:.1f} dB itself" if w.get("loss_db") is not None else ""
        lines.append(f"op losing most SQNR: {w['op']} {w['tensor']}: {w['sqnr_db']:.1f} dB vs float{lost} "
                     f"(of {len(m['op_sqnr_db'])} ops; --json lists each)")
    return "\n".join(lines)


def _fmt_stage(name: str, d: dict[str, Any], base: dict[str, Any]) -> str:
    k = base.get("metric")
    s = (f"{name}: .mpk {d['file_bytes']:,} B ({d['file_bytes'] / base['file_bytes']:.2f}x), "
         f"{d['macs']:,} MACs ({d['macs'] / max(1, base['macs']):.2f}x), arena {d['arena_bytes']:,} B, "
         f"int8 weights {d['int8_weight_sparsity']:.1%} zero")
    if k and f"int8_{k}" in d:
        pct = (lambda v: f"{v:.2%}") if k == "accuracy" else (lambda v: f"{v:.5g}")
        s += (f", int8 {k} {pct(d[f'int8_{k}'])} (device {pct(d[f'device_{k}'])}, bit-exact "
              f"{'yes' if d['bit_exact'] else 'NO'})")
    if d.get("unix_port_us") is not None:
        t0 = base.get("unix_port_us")
        s += f", invoke {d['unix_port_us']:.0f} us" + (f" ({d['unix_port_us'] / t0:.2f}x)" if t0 else "")
    return s


def _fmt_stages(m: dict[str, Any]) -> list[str]:
    lines = []
    if "distill" in m:
        d = m["distill"]
        lines.append(f"distillation (T={d['temperature']:g}, alpha={d['alpha']:g}, {d['epochs']} epochs, "
                     f"seed {d['seed']}):")
        lines.append("  " + _fmt_stage("student without teacher", d["without_teacher"], m))
        lines.append("  " + _fmt_stage("student with teacher", d["with_teacher"], m))
    if "prune_channels" in m:
        d = m["prune_channels"]
        lines.append(_fmt_stage(f"structured pruning {d['fraction']:.0%} of channels ({d['epochs']} epochs)", d, m))
    if "prune" in m:
        d = m["prune"]
        lines.append(_fmt_stage(f"magnitude pruning to {d['target_sparsity']:.0%} ({d['epochs']} epochs)", d, m))
    return lines


def cmd_convert(args: argparse.Namespace) -> int:
    try:
        res = convert(args.model, args.calibration, output=args.output, io=args.io,
                      eval_data=tuple(args.eval) if args.eval else None, tflite_output=args.tflite,
                      report_dir=args.report, qat=args.qat, train_data=tuple(args.train) if args.train else None,
                      epochs=args.epochs, qat_lr=args.qat_lr, progress=not args.quiet,
                      max_calibration=args.max_calibration, prune=args.prune, prune_channels=args.prune_channels,
                      teacher=args.teacher, temperature=args.temperature, alpha=args.alpha, lr=args.lr,
                      seed=args.seed, prune_block=args.prune_block)
    except ConvertError as e:
        print(f"mpyml convert: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(res.metrics, indent=2, default=str))
    else:
        if not args.quiet:
            print(_fmt(res.metrics))
        print(f"wrote {args.output}" + (f", {args.tflite}" if args.tflite else "")
              + (f", report {res.metrics['report']}" if "report" in res.metrics else ""))
    if "bit_exact" in res.metrics and not res.metrics["bit_exact"]:
        return 1
    st = res.metrics
    stages = [st.get("prune"), st.get("prune_channels"), *((st["distill"]["without_teacher"],
                                                            st["distill"]["with_teacher"]) if "distill" in st else ())]
    if any(d is not None and d.get("bit_exact") is False for d in stages):
        return 1
    return 0


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="Keras 3 .keras, legacy .h5 or SavedModel directory (float)")
    p.add_argument("-o", "--output", required=True, help="output .mpk")
    p.add_argument("--calibration", required=True, metavar="DATA",
                   help=".npy / .npz float samples (N, H, W, C) or a folder of images (resized, [0, 1]); for a model "
                        "with an integer input (Embedding): integer samples, or 'random' (ids in the Embedding's "
                        "range)")
    p.add_argument("--eval", nargs=2, metavar=("X", "Y"),
                   help="evaluate on X (.npy) with labels / targets Y (.npy): float vs int8 vs device")
    p.add_argument("--io", choices=IO_TYPES, default="int8", help="model input/output type (default int8)")
    p.add_argument("--tflite", metavar="OUT.tflite", help="also keep the int8 .tflite")
    p.add_argument("--json", action="store_true", help="print one JSON object with every measurement")
    p.add_argument("--report", metavar="DIR", help="write a Markdown report with PNG plots into DIR")
    p.add_argument("--qat", action="store_true", help="quantization-aware fine-tuning (needs --train)")
    p.add_argument("--train", nargs=2, metavar=("X", "Y"),
                   help="training data for --qat / --prune / --prune-channels / --teacher")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                   help=f"training epochs of QAT and of each compression stage (default {DEFAULT_EPOCHS})")
    p.add_argument("--prune", type=float, metavar="SPARSITY",
                   help="magnitude pruning to this fraction of zero weights while fine-tuning (needs --train)")
    from .prune import BLOCKS, DEFAULT_BLOCK
    p.add_argument("--prune-block", type=int, metavar="B", choices=BLOCKS,
                   help=f"--prune in blocks of B output channels ({', '.join(map(str, BLOCKS))}; default "
                        f"{DEFAULT_BLOCK}: the block-sparse form the kernels run fastest; 1: every weight alone)")
    p.add_argument("--prune-channels", type=float, metavar="FRACTION",
                   help="remove this fraction of filters / channels (L1 norm) and fine-tune (needs --train)")
    p.add_argument("--teacher", metavar="TEACHER.keras",
                   help="distil: train MODEL on this teacher's softened outputs (needs --train)")
    from .distill import DEFAULT_ALPHA, DEFAULT_TEMPERATURE

    p.add_argument("--temperature", type=float, help=f"distillation temperature (default {DEFAULT_TEMPERATURE:g})")
    p.add_argument("--alpha", type=float,
                   help=f"weight of the hard-label loss in distillation (default {DEFAULT_ALPHA:g})")
    p.add_argument("--lr", type=float, default=DEFAULT_LR,
                   help=f"learning rate of the compression stages' training (Adam, default {DEFAULT_LR:g})")
    p.add_argument("--seed", type=int, default=0, help="random seed of the compression stages' training")
    p.add_argument("--qat-lr", type=float, default=DEFAULT_QAT_LR,
                   help=f"QAT learning rate (Adam, default {DEFAULT_QAT_LR:g})")
    p.add_argument("--max-calibration", type=int, default=DEFAULT_MAX_CALIBRATION,
                   help=f"use at most N calibration samples (default {DEFAULT_MAX_CALIBRATION})")
    p.add_argument("--quiet", action="store_true", help="no progress bars, only the output paths")
    p.set_defaults(func=cmd_convert)


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from ._cli_util import add_subcommand

    add_subcommand(sub, "convert", "quantize a float Keras model / SavedModel to int8 and pack it (.mpk)",
                   __doc__, configure)


def main(argv: Sequence[str] | None = None) -> int:
    from ._cli_util import module_main

    return module_main("mpyml.convert", __doc__, configure, argv)


if __name__ == "__main__":
    sys.exit(main())
