"""`mpyml compare` (issue 14, host/mpyml/compare.py): models side by side, sparsity, sizes, MACs, accuracy on the
unix port (checked against tflite-micro's), timing, the plot and the user errors. ~10 s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A dense and a 70%-sparse int8 MLP on digits (.tflite and .mpk), and eval data."""
    from sklearn.datasets import load_digits

    from mpyml import prune
    from mpyml.convert import LoadedModel, import_tf, quantized_tflite
    from mpyml.packer import pack

    import_tf()
    import keras

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None][:400]
    y = d.target.astype(np.int64)[:400]
    keras.utils.set_random_seed(0)
    L = keras.layers  # noqa: N806
    m = keras.Sequential([keras.Input((8, 8, 1), batch_size=1), L.Flatten(), L.Dense(32, activation="relu"),
                          L.Dense(10)])
    m.compile(optimizer=keras.optimizers.Adam(3e-3),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(x, y, epochs=3, batch_size=32, verbose=0)
    out = tmp_path_factory.mktemp("compare")
    dense = quantized_tflite(LoadedModel("keras", None, m, (8, 8, 1), (10,)), x[:100])
    prune.magnitude_prune(m, x, y, 0.7, epochs=1, lr=1e-3)
    sparse = quantized_tflite(LoadedModel("keras", None, m, (8, 8, 1), (10,)), x[:100])
    (out / "dense.tflite").write_bytes(dense)
    (out / "sparse.tflite").write_bytes(sparse)
    (out / "dense.mpk").write_bytes(pack(dense))
    (out / "sparse.mpk").write_bytes(pack(sparse))
    np.save(out / "x.npy", x[300:340])
    np.save(out / "y.npy", y[300:340])
    return {p.name: p for p in out.iterdir()}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mpyml.cli", "compare", *args], capture_output=True, text=True,
                          cwd=REPO)


def test_rows_without_device(models: dict[str, Path]) -> None:
    from mpyml.compare import compare, format_table, weight_sparsity_int8
    from mpyml.inspect_model import inspect_model

    rows = compare([models["dense.mpk"], models["sparse.tflite"], models["sparse.mpk"]], timing=False)
    info = inspect_model(models["dense.mpk"].read_bytes())
    assert rows[0]["file_bytes"] == models["dense.mpk"].stat().st_size
    assert (rows[0]["macs"], rows[0]["arena_bytes"], rows[0]["weights_bytes"]) == \
        (info["macs"], info["arena_bytes"], info["weights_bytes"])
    assert rows[0]["sparsity"] < 0.1 and rows[1]["sparsity"] >= 0.69
    assert rows[2]["sparsity"] == pytest.approx(rows[1]["sparsity"], abs=1e-6)
    assert rows[1]["file_bytes"] == rows[2]["file_bytes"] == models["sparse.mpk"].stat().st_size
    assert weight_sparsity_int8(models["sparse.tflite"].read_bytes()) == rows[1]["sparsity"]
    table = format_table(rows)
    assert "sparse.tflite" in table and "MACs" in table and "accuracy" not in table


def test_cli_eval_time_plot(models: dict[str, Path], tmp_path: Path) -> None:
    """--eval accuracy on the unix port equals tflite-micro's (the device is bit-exact); timing and plot written."""
    from mpyml.tflm import TflmRunner

    png = tmp_path / "cmp.png"
    r = _cli(str(models["dense.mpk"]), str(models["sparse.mpk"]), "--eval", str(models["x.npy"]),
             str(models["y.npy"]), "--repeat", "5", "--json", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    x, y = np.load(models["x.npy"]), np.load(models["y.npy"])
    for row, name in zip(rows, ("dense.tflite", "sparse.tflite"), strict=True):
        ref = TflmRunner(models[name].read_bytes())
        di = ref.input_details()[0]
        pred = [int(np.argmax(ref.run([di.quantize(s[None])])[0])) for s in x]
        assert row["metric"] == "accuracy" and row["accuracy"] == pytest.approx(float(np.mean(np.array(pred) == y)))
        assert row["unix_port_us"] > 0
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("extra, msg", [
    (["--plot", "p.png", "--no-time"], "add --eval X Y"),
    (["NOTMODEL"], "neither a .mpk nor a .tflite"),
])
def test_cli_user_errors(models: dict[str, Path], tmp_path: Path, extra: list[str], msg: str) -> None:
    bad = tmp_path / "bad.mpk"
    bad.write_bytes(b"hello world, not a model")
    args = [str(bad) if a == "NOTMODEL" else str(tmp_path / a) if a.endswith(".png") else a for a in extra]
    r = _cli(str(models["dense.mpk"]), *args)
    assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
