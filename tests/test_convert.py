"""`mpyml convert` (issue 9): float Keras / tf_keras / SavedModel -> full-integer int8 .tflite -> .mpk, measured.

Models are small CNNs on scikit-learn's bundled 8x8 digits, trained here once and cached in
build/test_convert/ (keyed by the builder's source and the TensorFlow / Keras versions). Every check runs the
real parts: TensorFlow's converter, tflite-micro, the MicroPython unix port with the C engine.
About 60-90 s on one core with a warm cache (plus ~20 s to train the models on a cold one).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mpyml import paths

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "build" / "test_convert"
IO_TYPES = ("int8", "uint8", "float")
N_EVAL = 60


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    x_train, x_test, y_train, y_test = train_test_split(x, d.target.astype(np.int64), test_size=0.2,
                                                        random_state=0, stratify=d.target)
    return x_train, y_train, x_test, y_test


def _layers(L: Any) -> list[Any]:  # noqa: N803 - the keras.layers module of either Keras
    return [L.Conv2D(12, 3, padding="same", activation="relu"),
            L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu"),
            L.Conv2D(24, 1, activation="relu"), L.AveragePooling2D(2), L.Flatten(), L.Dense(10), L.Softmax()]


def _train(keras: Any, epochs: int) -> Any:
    keras.utils.set_random_seed(0)
    x_train, y_train, _, _ = _digits()
    m = keras.Sequential([keras.Input((8, 8, 1), batch_size=1), *_layers(keras.layers)])
    m.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    m.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    return m


def _build_all(out: Path) -> None:
    import keras
    import tf_keras

    m = _train(keras, 25)
    m.save(out / "digits.keras")
    m.export(str(out / "digits_savedmodel"), verbose=False)
    _train(tf_keras, 10).save(out / "digits.h5")


def _key() -> str:
    h = hashlib.sha256()
    for f in (_digits, _layers, _train, _build_all):
        h.update(inspect.getsource(f).encode())
    for dist in ("tensorflow", "keras", "tf-keras", "numpy", "scikit-learn"):
        h.update(importlib.metadata.version(dist).encode())
    return h.hexdigest()[:20]


@pytest.fixture(scope="module")
def models() -> dict[str, Path]:
    from mpyml.convert import import_tf

    import_tf()
    out = CACHE / _key()
    done = out / ".done"
    if not done.exists():
        import fcntl

        out.mkdir(parents=True, exist_ok=True)
        with open(out / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not done.exists():
                _build_all(out)
                done.touch()
    return {"keras": out / "digits.keras", "h5": out / "digits.h5", "saved_model": out / "digits_savedmodel"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    x_train, y_train, x_test, y_test = _digits()
    d = tmp_path_factory.mktemp("convert_data")
    files = {"cal": d / "cal.npy", "x": d / "x.npy", "y": d / "y.npy"}
    np.save(files["cal"], x_train[:100])
    np.save(files["x"], x_test[:N_EVAL])
    np.save(files["y"], y_test[:N_EVAL])
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, **files}


@pytest.fixture(scope="module")
def natmod(natmod_x64: Path) -> Path:
    return natmod_x64


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from mpyml.cli import main

    rc = main(["convert", *args])
    c = capsys.readouterr()
    return rc, c.out, c.err


def _io_dtype(tfl: bytes) -> tuple[np.dtype[Any], np.dtype[Any]]:
    from mpyml.tflm import TflmRunner

    r = TflmRunner(tfl)
    return r.input_details()[0].dtype, r.output_details()[0].dtype


# --------------------------------------------------------------------------------------------- conversions
@pytest.mark.parametrize("io", IO_TYPES)
@pytest.mark.parametrize("kind", ["keras", "h5", "saved_model"])
def test_each_input_kind_and_io(kind: str, io: str, models: dict[str, Path], data: dict[str, Any],
                                natmod: Path) -> None:
    """Each model format with each --io: converts, packs, and the device is bit-exact with tflite-micro over
    the eval set, with the requested edge types."""
    import mpyml

    res = mpyml.convert(models[kind], data["cal"], eval_data=(data["x"], data["y"]), io=io, sqnr=False,
                        timing=False, progress=False)
    m = res.metrics
    want = {"int8": np.int8, "uint8": np.uint8, "float": np.float32}[io]
    assert _io_dtype(res.tflite) == (np.dtype(want), np.dtype(want))
    assert m["bit_exact"] and m["bit_exact_samples"] == N_EVAL == m["eval_samples"]
    assert m["device_accuracy"] == m["int8_accuracy"]
    assert m["float_accuracy"] > 0.85, m          # a trained model, not an accident
    assert abs(m["float_accuracy"] - m["int8_accuracy"]) <= 0.05
    assert res.mpk[:4] == mpyml.pack(res.tflite)[:4] and len(res.mpk) == m["file_bytes"]


def _hand_flow(model: Any, cal: np.ndarray, io: str, saved_model: Path | None = None) -> bytes:
    """The conversion a user writes by hand (TensorFlow's documented full-integer recipe)."""
    import tensorflow as tf

    conv = (tf.lite.TFLiteConverter.from_saved_model(str(saved_model)) if saved_model is not None
            else tf.lite.TFLiteConverter.from_keras_model(model))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([cal[i:i + 1]] for i in range(len(cal)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io != "float":
        conv.inference_input_type = getattr(tf, io)
        conv.inference_output_type = getattr(tf, io)
    return bytes(conv.convert())


@pytest.mark.parametrize(("kind", "io"), [("keras", "int8"), ("keras", "float"), ("saved_model", "uint8")])
def test_byte_identical_to_hand_written_flow(kind: str, io: str, models: dict[str, Path], data: dict[str, Any],
                                             tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import keras

    cal = np.load(data["cal"])
    if kind == "saved_model":
        hand = _hand_flow(None, cal, io, saved_model=models[kind])
    else:
        hand = _hand_flow(keras.saving.load_model(models[kind], compile=False), cal, io)
    out = tmp_path / "m.tflite"
    rc, _, err = _cli([str(models[kind]), "-o", str(tmp_path / "m.mpk"), "--calibration", str(data["cal"]),
                       "--io", io, "--tflite", str(out), "--quiet"], capsys)
    assert rc == 0, err
    assert out.read_bytes() == hand
    assert (tmp_path / "m.mpk").read_bytes() == __import__("mpyml").pack(hand)


def test_digits_ptq_within_two_points_and_bit_exact(models: dict[str, Path], data: dict[str, Any],
                                                    natmod: Path) -> None:
    """The whole held-out split (360 images): PTQ accuracy within 2 points of float, device bit-exact."""
    import mpyml

    res = mpyml.convert(models["keras"], data["x_train"][:300], eval_data=(data["x_test"], data["y_test"]),
                        sqnr=False, progress=False)
    m = res.metrics
    assert m["eval_samples"] == 360
    assert m["float_accuracy"] >= 0.93, m
    assert abs(m["float_accuracy"] - m["int8_accuracy"]) <= 0.02, m
    assert m["bit_exact"] and m["device_accuracy"] == m["int8_accuracy"]
    assert m["unix_port_us"] is not None and m["unix_port_us"] > 0


def test_json_keys_sqnr_and_report(models: dict[str, Path], data: dict[str, Any], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str], natmod: Path) -> None:
    rep = tmp_path / "report"
    rc, out, err = _cli([str(models["keras"]), "-o", str(tmp_path / "m.mpk"), "--calibration", str(data["cal"]),
                         "--eval", str(data["x"]), str(data["y"]), "--json", "--report", str(rep)], capsys)
    assert rc == 0, err
    m = json.loads(out)
    for k in ("float_accuracy", "int8_accuracy", "device_accuracy", "bit_exact", "arena_bytes", "file_bytes",
              "weights_bytes", "macs", "unix_port_us", "op_sqnr_db"):
        assert k in m, k
    assert m["bit_exact"] is True and m["file_bytes"] == (tmp_path / "m.mpk").stat().st_size
    info = __import__("mpyml").inspect_model((tmp_path / "m.mpk").read_bytes())
    assert (m["arena_bytes"], m["macs"], m["weights_bytes"]) == (info["arena_bytes"], info["macs"],
                                                                 info["weights_bytes"])
    ops = [r["op"] for r in m["op_sqnr_db"]]
    assert ops[:3] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"], ops
    for r in m["op_sqnr_db"]:
        assert r["sqnr_db"] is not None and 10.0 < r["sqnr_db"] < 80.0, r   # int8: real, finite noise
    assert m["worst_op"]["tensor"] in [r["tensor"] for r in m["op_sqnr_db"]]
    text = (rep / "report.md").read_text()
    for png in ("accuracy.png", "sqnr.png", "memory.png"):
        assert f"]({png})" in text
        assert (rep / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "DEPTHWISE_CONV_2D" in text


def test_eval_float_targets_mean_absolute_error(natmod: Path) -> None:
    """Float targets (a regression model): mean absolute error for float, int8 and device, bit-exact."""
    import keras

    import mpyml

    keras.utils.set_random_seed(1)
    inp = keras.Input((6,), batch_size=1)
    m = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Dense(16, activation="relu")(inp)))
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (40, 6)).astype(np.float32)
    y = np.asarray(m.predict(x, verbose=0)) + 0.1      # float model's MAE is exactly 0.1
    res = mpyml.convert(m, x, eval_data=(x, y), sqnr=False, timing=False, progress=False)
    r = res.metrics
    assert r["metric"] == "mae" and "float_mae" in r and "float_accuracy" not in r
    assert abs(r["float_mae"] - 0.1) < 1e-5
    assert r["int8_mae"] == r["device_mae"] and abs(r["int8_mae"] - 0.1) < 0.05 and r["bit_exact"]


def test_embedding_int_input_calibrated_with_ids(natmod: Path) -> None:
    """A Keras Embedding on int32 token ids: calibrated with integer ids ('random' = ids in the Embedding's range,
    or the user's int array), packed with GATHER, evaluated bit-exact on the device engine."""
    import keras

    import mpyml

    keras.utils.set_random_seed(2)
    inp = keras.Input((12,), dtype="int32", batch_size=1)
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 8)(inp))
    m = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, size=(30, 12))
    y = rng.integers(0, 3, size=30)
    for cal in ("random", ids.astype(np.int64)):
        res = mpyml.convert(m, cal, eval_data=(ids, y), sqnr=False, timing=False, progress=False)
        assert "GATHER" in {o["op"] for o in res.metrics["layers"]}
        assert res.metrics["bit_exact"], res.metrics


def test_error_gru_not_unrolled() -> None:
    """TensorFlow's converter segfaults on a GRU time loop here: one line saying to unroll, before it runs."""
    import keras

    from mpyml.convert import ConvertError, convert
    inp = keras.Input((6, 3), batch_size=1)
    m = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GRU(4)(inp)))
    with pytest.raises(ConvertError) as e:
        convert(m, np.zeros((4, 6, 3), np.float32), progress=False)
    assert "\n" not in str(e.value) and "unroll=True" in str(e.value)


def test_sqnr_falls_when_an_op_loses_precision() -> None:
    """sqnr_db itself: exact -> inf, noise at 1% amplitude -> 40 dB."""
    from mpyml.convert import sqnr_db

    ref = np.sin(np.linspace(0, 20, 1000))
    assert sqnr_db(ref, ref) == float("inf")
    assert abs(sqnr_db(ref, ref + 0.01 * ref) - 40.0) < 1e-6


def test_image_folder_calibration(models: dict[str, Path], data: dict[str, Any], tmp_path: Path) -> None:
    """A folder of images: resized to the input (8x8), grayscale for 1 channel, scaled to [0, 1]."""
    from PIL import Image

    import mpyml
    from mpyml.convert import load_calibration

    folder = tmp_path / "imgs"
    folder.mkdir()
    imgs = (data["x_train"][:21] * 255).round().astype(np.uint8)
    for i, img in enumerate(imgs):
        rgb = Image.fromarray(np.repeat(img, 3, axis=2), "RGB")
        kind = ("png", "bmp", "jpg")[i % 3]
        if kind == "bmp":
            rgb = rgb.resize((24, 24), Image.Resampling.NEAREST)   # must come back as 8x8
        rgb.save(folder / f"{i:02d}.{kind}")
    (folder / "notes.txt").write_text("not an image, ignored")
    cal = load_calibration(folder, (8, 8, 1))
    assert cal.shape == (21, 8, 8, 1) and cal.dtype == np.float32
    assert 0.0 <= cal.min() and cal.max() <= 1.0
    for i in range(0, 21, 3):     # lossless PNG at the input size: exactly the pixel / 255
        np.testing.assert_allclose(cal[i], imgs[i] / 255.0, atol=1e-6)
    for i in range(1, 21, 3):     # a 3x nearest-neighbour BMP, resized back
        assert np.abs(cal[i] - imgs[i] / 255.0).mean() < 0.1
    res = mpyml.convert(models["keras"], folder, sqnr=False, progress=False)
    assert res.metrics["calibration_samples"] == 21 and len(res.mpk) == res.metrics["file_bytes"]


def test_progress_off_when_not_a_tty(models: dict[str, Path], data: dict[str, Any], tmp_path: Path) -> None:
    """Not a TTY (as here) -> no bars, whatever --quiet says; the command's own stderr stays clean."""
    from mpyml.convert import Progress

    assert not Progress(True).enabled
    r = subprocess.run([sys.executable, "-m", "mpyml.cli", "convert", str(models["keras"]), "-o",
                        str(tmp_path / "m.mpk"), "--calibration", str(data["cal"])],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "calibrating" not in r.stderr and "\x1b[" not in r.stderr
    assert "wrote" in r.stdout


def test_progress_bars_on_a_terminal(models: dict[str, Path], data: dict[str, Any], tmp_path: Path) -> None:
    """On a TTY (a pseudo-terminal here) calibration and evaluation show rich progress bars."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:   # child: the real console script, stdout and stderr on the pty
        os.execv(str(Path(sys.executable).parent / "mpyml"),
                 ["mpyml", "convert", str(models["keras"]), "-o", str(tmp_path / "m.mpk"), "--calibration",
                  str(data["cal"]), "--eval", str(data["x"]), str(data["y"])])
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:   # EIO: the child closed the pty
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "calibrating" in text and "evaluating" in text and "\u2501" in text, text[:500]
    assert "bit-exact with tflite-micro: yes" in text


# --------------------------------------------------------------------------------------------- QAT
def test_qat_result_is_a_real_int8_model(models: dict[str, Path], data: dict[str, Any], natmod: Path) -> None:
    """--qat: fake-quant fine-tuning (tensorflow-model-optimization), converted, packed, bit-exact on device;
    float, PTQ and QAT reported side by side."""
    import mpyml

    res = mpyml.convert(models["h5"], data["cal"], eval_data=(data["x"], data["y"]), qat=True,
                        train_data=(data["x_train"][:400], data["y_train"][:400]), epochs=1, sqnr=False,
                        timing=False, progress=False)
    q = res.metrics["qat"]
    assert res.qat_mpk is not None and res.qat_tflite is not None and res.mpk is not None
    assert q["bit_exact"] and q["bit_exact_samples"] == N_EVAL
    assert q["device_accuracy"] == q["int8_accuracy"] > 0.5
    assert _io_dtype(res.qat_tflite) == (np.dtype(np.int8), np.dtype(np.int8))
    assert "int8_accuracy" in res.metrics and "float_accuracy" in res.metrics


def test_qat_from_keras3_model(models: dict[str, Path], data: dict[str, Any], natmod: Path) -> None:
    """A Keras 3 .keras layer chain is rebuilt in tf_keras (same weights) for QAT."""
    import mpyml

    res = mpyml.convert(models["keras"], data["cal"], eval_data=(data["x"], data["y"]), qat=True,
                        train_data=(data["x_train"][:200], data["y_train"][:200]), epochs=1, sqnr=False,
                        timing=False, progress=False)
    q = res.metrics["qat"]
    assert q["bit_exact"] and abs(q["int8_accuracy"] - res.metrics["float_accuracy"]) <= 0.1, res.metrics


# --------------------------------------------------------------------------------------------- errors
def _one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("mpyml convert: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_error_not_a_model(tmp_path: Path, data: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "model.keras"
    bad.write_text("hello, I am not a model")
    rc, _, err = _cli([str(bad), "-o", str(tmp_path / "m.mpk"), "--calibration", str(data["cal"])], capsys)
    _one_line_error(rc, err, "model.keras", "not a loadable Keras model", ".keras")
    other = tmp_path / "weights.bin"
    other.write_bytes(b"\0" * 10)
    rc, _, err = _cli([str(other), "-o", str(tmp_path / "m.mpk"), "--calibration", str(data["cal"])], capsys)
    _one_line_error(rc, err, "weights.bin", "SavedModel")
    rc, _, err = _cli([str(tmp_path), "-o", str(tmp_path / "m.mpk"), "--calibration", str(data["cal"])], capsys)
    _one_line_error(rc, err, "saved_model.pb")
    tfl = tmp_path / "m.tflite"
    tfl.write_bytes(b"\0" * 8)
    rc, _, err = _cli([str(tfl), "-o", str(tmp_path / "m.mpk"), "--calibration", str(data["cal"])], capsys)
    _one_line_error(rc, err, "mpyml pack")


def test_error_not_a_model_real_cli(tmp_path: Path, data: dict[str, Any]) -> None:
    """The installed console script: exit 2, one line, no traceback."""
    bad = tmp_path / "m.h5"
    bad.write_text("nope")
    r = subprocess.run([str(Path(sys.executable).parent / "mpyml"), "convert", str(bad), "-o",
                        str(tmp_path / "m.mpk"), "--calibration", str(data["cal"])],
                       capture_output=True, text=True, timeout=300)
    _one_line_error(r.returncode, r.stderr, "m.h5")


def test_error_calibration_shape_and_dtype(models: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(models["keras"]), "-o", str(tmp_path / "m.mpk"), "--calibration"]
    np.save(tmp_path / "shape.npy", np.zeros((5, 28, 28, 1), np.float32))
    rc, _, err = _cli([*args, str(tmp_path / "shape.npy")], capsys)
    _one_line_error(rc, err, "(5, 28, 28, 1)", "(N, 8, 8, 1)")
    np.save(tmp_path / "dtype.npy", np.zeros((5, 8, 8, 1), np.uint8))
    rc, _, err = _cli([*args, str(tmp_path / "dtype.npy")], capsys)
    _one_line_error(rc, err, "uint8", "float")
    (tmp_path / "junk.npy").write_text("not numpy")
    rc, _, err = _cli([*args, str(tmp_path / "junk.npy")], capsys)
    _one_line_error(rc, err, "junk.npy", "numpy.save")
    rc, _, err = _cli([*args, str(tmp_path / "missing.npy")], capsys)
    _one_line_error(rc, err, "missing.npy")


def test_error_labels_do_not_match(models: dict[str, Path], data: dict[str, Any], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(models["keras"]), "-o", str(tmp_path / "m.mpk"), "--calibration", str(data["cal"]), "--eval",
            str(data["x"])]
    np.save(tmp_path / "short.npy", np.zeros(N_EVAL - 1, np.int64))
    rc, _, err = _cli([*args, str(tmp_path / "short.npy")], capsys)
    _one_line_error(rc, err, f"{N_EVAL - 1} labels for {N_EVAL}")
    np.save(tmp_path / "range.npy", np.full(N_EVAL, 12, np.int64))
    rc, _, err = _cli([*args, str(tmp_path / "range.npy")], capsys)
    _one_line_error(rc, err, "10 outputs")
    np.save(tmp_path / "wide.npy", np.zeros((N_EVAL, 3), np.float32))
    rc, _, err = _cli([*args, str(tmp_path / "wide.npy")], capsys)
    _one_line_error(rc, err, "(60, 3)")
    assert not (tmp_path / "m.mpk").exists()


def test_error_op_the_converter_cannot_quantize(tmp_path: Path) -> None:
    import keras
    import tensorflow as tf

    from mpyml.convert import ConvertError, convert

    inp = keras.Input((8,), batch_size=1)
    x = keras.layers.Dense(8)(inp)
    x = keras.layers.Lambda(lambda t: tf.math.erf(t))(x)
    m = keras.Model(inp, keras.layers.Dense(2)(x))
    with pytest.raises(ConvertError) as e:
        convert(m, np.random.default_rng(0).random((8, 8), dtype=np.float32), progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "cannot quantize op Erf" in msg and "replace" in msg


def test_error_tensorflow_not_installed(monkeypatch: pytest.MonkeyPatch, models: dict[str, Path],
                                        data: dict[str, Any], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow", None)   # `import tensorflow` now raises ImportError
    rc, _, err = _cli([str(models["keras"]), "-o", str(tmp_path / "m.mpk"), "--calibration", str(data["cal"])],
                      capsys)
    _one_line_error(rc, err, "TensorFlow is not installed", "make setup")


def test_import_mpyml_does_not_import_tensorflow() -> None:
    r = subprocess.run([sys.executable, "-c", "import sys, mpyml; assert callable(mpyml.convert); "
                        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(paths.REPO
                                                                                                         / "host")})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]
