"""Pruning (issue 14): magnitude pruning on a schedule and structured channel pruning (host/mpyml/prune.py), through
`mpyml convert --prune / --prune-channels`. Tiny models on scikit-learn's digits, a few epochs: ~20 s."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _digits(n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images.astype(np.float32) / 16.0)[..., None][:n], d.target.astype(np.int64)[:n]


def _keras(name: str) -> Any:
    from mpyml.convert import import_tf

    import_tf()
    if name == "keras":
        import keras

        return keras
    import tf_keras

    return tf_keras


def _mlp(K: Any, hidden: int = 32) -> Any:  # noqa: N803
    L = K.layers  # noqa: N806
    K.utils.set_random_seed(0)
    return K.Sequential([K.Input((8, 8, 1), batch_size=1), L.Flatten(), L.Dense(hidden, activation="relu"),
                         L.Dense(hidden, activation="relu"), L.Dense(10), L.Softmax()])


def _cnn(K: Any) -> Any:  # noqa: N803 - functional: BatchNorm, depthwise, residual add, concatenate, flatten->dense
    L = K.layers  # noqa: N806
    K.utils.set_random_seed(0)
    i = K.Input((8, 8, 1), batch_size=1)
    a = L.ReLU()(L.BatchNormalization(name="bn1")(L.Conv2D(8, 3, padding="same", name="c1")(i)))
    b = L.ReLU()(L.BatchNormalization(name="bn2")(L.DepthwiseConv2D(3, padding="same", name="dw")(a)))
    b = L.Conv2D(8, 1, name="c2")(b)
    r = L.Add()([a, b])
    c = L.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="c3")(r)
    c = L.Concatenate()([c, L.Conv2D(4, 1, name="c4")(c)])
    h = L.Dense(16, activation="relu", name="d1")(L.Flatten()(c))
    return K.Model(i, L.Softmax()(L.Dense(10, name="d2")(h)))


@pytest.mark.parametrize("kname", ["keras", "tf_keras"])
def test_structured_removes_exactly_the_dead_channels(kname: str) -> None:
    """Half of every prunable group made dead (zero filters and biases, BatchNorm passing 0 as 0): the narrower model
    computes the same function, so the graph walk (BatchNorm, depthwise, tied Add, Concatenate, Flatten->Dense rows)
    and the weight copies are right."""
    from mpyml import prune

    K = _keras(kname)  # noqa: N806
    m = _cnn(K)
    rng = np.random.default_rng(0)
    dead = {"c1": [1, 3, 4, 6], "c2": [1, 3, 4, 6], "c3": [0, 2, 5], "c4": [1, 2], "d1": list(range(0, 16, 2))}
    for ly in m.layers:
        w = ly.get_weights()
        if ly.name in dead:
            w = [rng.normal(size=v.shape).astype(np.float32) for v in w]
            w[0][..., dead[ly.name]] = 0
            w[1][dead[ly.name]] = 0
        elif ly.name in ("bn1", "bn2"):
            g, b, mu, var = (rng.uniform(0.5, 1.5, size=v.shape).astype(np.float32) for v in w)
            b[dead["c1"]] = 0
            mu[dead["c1"]] = 0
            w = [g, b, mu, var]
        elif ly.name == "dw":
            w = [rng.normal(size=v.shape).astype(np.float32) for v in w]
            w[1][dead["c1"]] = 0
        if w:
            ly.set_weights(w)
    new, plan = prune.prune_channels(m, 0.5)
    groups = {tuple(sorted(g["layers"])): (g["channels"], g["kept"]) for g in plan.summary()}
    assert groups == {("c1", "c2"): (8, 4), ("c3",): (6, 3), ("c4",): (4, 2), ("d1",): (16, 8)}
    assert [int(v) for v in plan.keep[plan.groups.find(plan.descs["c1"].segments[0][0])]] == [0, 2, 5, 7]
    x = _digits(16)[0]
    ref = m.predict(x, verbose=0)
    got = new.predict(x, verbose=0)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    assert new.count_params() < m.count_params() / 2


def test_structured_separable_sequential() -> None:
    """A Sequential with SeparableConv2D (tf_keras): rebuilt unchanged at fraction 0, both its kernels cut at 0.5."""
    from mpyml import prune

    K = _keras("tf_keras")  # noqa: N806
    L = K.layers  # noqa: N806
    K.utils.set_random_seed(0)
    m = K.Sequential([K.Input((8, 8, 1)), L.Conv2D(8, 3), L.BatchNormalization(), L.SeparableConv2D(8, 3),
                      L.ReLU(), L.SeparableConv2D(6, 1), L.GlobalAveragePooling2D(), L.Dense(10)])
    x = _digits(8)[0]
    same, _ = prune.prune_channels(m, 0.0)
    np.testing.assert_allclose(same.predict(x, verbose=0), m.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    new, plan = prune.prune_channels(m, 0.5)
    assert [(g["channels"], g["kept"]) for g in plan.summary()] == [(8, 4), (8, 4), (6, 3)]
    assert [w.shape for w in new.get_layer(m.layers[4].name).get_weights()] == [(1, 1, 4, 1), (1, 1, 4, 3), (3,)]
    assert new.predict(x, verbose=0).shape == (8, 10)


def test_structured_leaves_tied_and_edge_groups_whole() -> None:
    """A residual Add onto the model input, the output layer and a Reshape consumer stay whole; a free group shrinks."""
    from mpyml import prune

    K = _keras("keras")  # noqa: N806
    L = K.layers  # noqa: N806
    i = K.Input((8, 8, 1), batch_size=1)
    a = L.Add(name="res")([i, L.Conv2D(1, 3, padding="same", name="tied")(i)])
    b = L.Conv2D(8, 3, padding="same", name="free")(a)
    c = L.Conv2D(4, 1, name="reshaped")(b)
    o = L.Dense(10, name="out")(L.Reshape((256,))(c))
    m = K.Model(i, o)
    plan = prune.plan_channels(m, 0.5)
    assert [g["layers"] for g in plan.summary()] == [["free"]]
    new = prune.rebuild_narrow(m, plan)
    assert [tuple(w.shape) for w in new.get_layer("reshaped").get_weights()] == [(1, 1, 4, 4), (4,)]


def test_magnitude_schedule_and_masks() -> None:
    from mpyml import prune
    from mpyml.compare import weight_sparsity_int8
    from mpyml.convert import LoadedModel, quantized_tflite

    s = [prune.schedule(t, 100, 0.8) for t in range(0, 121, 10)]
    assert s[0] == 0.0 and s[10] == pytest.approx(0.8) and s[-1] == 0.8
    assert all(b >= a for a, b in zip(s, s[1:], strict=False))
    K = _keras("keras")  # noqa: N806
    x, y = _digits()
    m = _mlp(K)
    info = prune.magnitude_prune(m, x, y, 0.8, epochs=2, lr=1e-3)
    assert info["block"] == prune.DEFAULT_BLOCK == 8
    for row in info["layers"]:         # whole blocks of 8 (4 where 8 does not divide the outputs, else 1)
        assert row["sparsity"] == pytest.approx(0.8, abs=8.0 / row["weights"] + 1e-9)
    assert info["sparsity"] == pytest.approx(0.8, abs=4e-3)
    for ly, v in prune.prunable_kernels(m):
        w = np.asarray(v.numpy())
        b = 8 if w.shape[-1] % 8 == 0 else 4 if w.shape[-1] % 4 == 0 else 1
        blocks = (w.reshape(-1, b) == 0).sum(axis=1)
        assert set(np.unique(blocks)) <= {0, b}, f"{ly.name}: zeros not in whole blocks of {b}"
    tfl = quantized_tflite(LoadedModel("keras", None, m, (8, 8, 1), (10,)), x[:50])
    assert weight_sparsity_int8(tfl) >= 0.8 - 2e-3       # float zeros stay int8 zeros


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mpyml.cli", "convert", *args], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "MPYML_DEBUG": ""})


def test_convert_prune_end_to_end(tmp_path: Path) -> None:
    """`mpyml convert --prune` and `--prune-channels` on a Keras 3 file: the written .mpk is the pruned one, every
    stage measured on tflite-micro and the unix port (bit-exact), MACs of the narrower CNN really drop."""
    import json

    K = _keras("keras")  # noqa: N806
    x, y = _digits()
    m = _mlp(K, 128)
    m.compile(optimizer=K.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    m.fit(x[:300], y[:300], epochs=15, batch_size=32, verbose=0)
    m.save(tmp_path / "mlp.keras")
    _cnn(K).save(tmp_path / "cnn.keras")
    for n, a in (("x", x[:300]), ("y", y[:300]), ("xe", x[400:440]), ("ye", y[400:440])):
        np.save(tmp_path / f"{n}.npy", a)
    common = ["--calibration", str(tmp_path / "x.npy"), "--train", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"),
              "--epochs", "2", "--json", "--quiet"]
    r = _cli(str(tmp_path / "mlp.keras"), "-o", str(tmp_path / "p.mpk"), *common, "--epochs", "4", "--prune", "0.75",
             "--eval", str(tmp_path / "xe.npy"), str(tmp_path / "ye.npy"))
    assert r.returncode == 0, r.stderr
    mt = json.loads(r.stdout)
    d = mt["prune"]
    assert mt["stages"] == ["prune"] and d["bit_exact"] and d["int8_weight_sparsity"] >= 0.74
    assert mt["int8_weight_sparsity"] < 0.1
    assert d["file_bytes"] == (tmp_path / "p.mpk").stat().st_size
    assert mt["int8_accuracy"] > 0.7 and d["int8_accuracy"] > mt["int8_accuracy"] - 0.1 and d["unix_port_us"] > 0
    from mpyml.convert import convert

    res = convert(tmp_path / "cnn.keras", x[:100], output=tmp_path / "c.mpk", train_data=(x[:300], y[:300]),
                  epochs=1, prune_channels=0.5, progress=False, sqnr=False)
    mt = res.metrics
    d = mt["prune_channels"]
    assert 0.2 < d["macs"] / mt["macs"] < 0.6 and d["params"] < mt["params"] / 2
    assert d["file_bytes"] == (tmp_path / "c.mpk").stat().st_size < mt["file_bytes"]
    assert res.base_mpk is not None and len(res.base_mpk) == mt["file_bytes"]
    assert res.mpk == (tmp_path / "c.mpk").read_bytes()


@pytest.mark.parametrize("args, msg", [
    (["--prune", "0.8"], "add --train X Y"),
    (["--prune", "1.5", "--train", "X", "Y"], "between 0 and 1"),
    (["--prune-channels", "0", "--train", "X", "Y"], "between 0 and 1"),
    (["--prune", "0.5", "--qat", "--train", "X", "Y"], "--qat with --prune"),
    (["--temperature", "3", "--train", "X", "Y"], "add --teacher"),
])
def test_convert_prune_user_errors(tmp_path: Path, args: list[str], msg: str) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 8, 8, 1), np.float32))
    args = [str(tmp_path / "x.npy") if a == "X" else str(tmp_path / "x.npy") if a == "Y" else a for a in args]
    r = _cli(str(tmp_path / "missing.keras"), "-o", str(tmp_path / "o.mpk"), "--calibration",
             str(tmp_path / "x.npy"), *args)
    assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
