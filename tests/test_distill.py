"""Knowledge distillation (issue 14, host/mpyml/distill.py; `mpyml convert --teacher`): soft targets, the logits
the student is trained on, same init / seed / budget for the with- and without-teacher students. ~15 s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _digits(n: int = 500) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images.astype(np.float32) / 16.0)[..., None][:n], d.target.astype(np.int64)[:n]


def _keras() -> Any:
    from mpyml.convert import import_tf

    import_tf()
    import keras

    return keras


def _mlp(K: Any, hidden: int, softmax_layer: bool, seed: int = 0) -> Any:  # noqa: N803
    L = K.layers  # noqa: N806
    K.utils.set_random_seed(seed)
    head = [L.Dense(10), L.Softmax()] if softmax_layer else [L.Dense(10, activation="softmax")]
    return K.Sequential([K.Input((8, 8, 1), batch_size=1), L.Flatten(), L.Dense(hidden, activation="relu"), *head])


def test_soft_targets_same_from_logits_and_probabilities() -> None:
    from mpyml.distill import soft_targets

    z = np.random.default_rng(0).normal(scale=5, size=(20, 10))
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    for t in (1.0, 4.0):
        want = np.exp(z / t) / np.exp(z / t).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(soft_targets(z, t), want, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(soft_targets(p, t), want, rtol=1e-4, atol=1e-6)
    assert soft_targets(z, 4.0).max() < soft_targets(z, 1.0).max()   # softened


@pytest.mark.parametrize("softmax_layer", [True, False])
def test_student_follows_the_teacher(softmax_layer: bool) -> None:
    """alpha = 0 (soft targets only): the distilled student's softened outputs are closer to the teacher's than
    the plain student's; both start from the caller's weights (left untouched) and still end in softmax."""
    from mpyml.distill import distill, soft_targets

    K = _keras()  # noqa: N806
    x, y = _digits()
    teacher = _mlp(K, 64, True)
    teacher.compile(optimizer=K.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    teacher.fit(x, y, epochs=5, batch_size=32, verbose=0)
    t_out = teacher.predict(x, verbose=0)
    student = _mlp(K, 12, softmax_layer, seed=1)
    w0 = [w.copy() for w in student.get_weights()]
    plain, kd = distill(student, t_out, x, y, epochs=4, lr=3e-3, temperature=4.0, alpha=0.0)
    assert all(np.array_equal(a, b) for a, b in zip(w0, student.get_weights(), strict=True))
    target = soft_targets(t_out, 4.0)

    def kl(m: Any) -> float:
        q = soft_targets(m.predict(x, verbose=0), 4.0)
        return float(np.mean(np.sum(target * (np.log(target + 1e-12) - np.log(q + 1e-12)), axis=1)))

    assert kl(kd) < kl(plain)
    for m in (plain, kd):
        np.testing.assert_allclose(m.predict(x[:8], verbose=0).sum(axis=1), 1.0, atol=1e-5)


def test_convert_teacher(tmp_path: Path) -> None:
    """`mpyml convert --teacher`: both students measured alike (same budget recorded), the distilled one written."""
    K = _keras()  # noqa: N806
    x, y = _digits()
    teacher = _mlp(K, 64, True)
    teacher.compile(optimizer=K.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    teacher.fit(x, y, epochs=3, batch_size=32, verbose=0)
    teacher.save(tmp_path / "t.keras")
    _mlp(K, 12, True, seed=2).save(tmp_path / "s.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    from mpyml.convert import convert

    m = convert(tmp_path / "s.keras", x[:100], output=tmp_path / "s.mpk", teacher=tmp_path / "t.keras",
                temperature=3, alpha=0.2, train_data=(x, y), epochs=2, progress=False, sqnr=False).metrics
    json.dumps(m)   # what --json prints
    d = m["distill"]
    assert (d["temperature"], d["alpha"], d["epochs"], d["seed"]) == (3.0, 0.2, 2, 0)
    assert d["with_teacher"]["file_bytes"] == (tmp_path / "s.mpk").stat().st_size
    assert d["without_teacher"]["macs"] == d["with_teacher"]["macs"] == m["macs"]
    r = subprocess.run([sys.executable, "-m", "mpyml.cli", "convert", str(tmp_path / "s.keras"), "-o",
                        str(tmp_path / "s.mpk"), "--calibration", str(tmp_path / "x.npy"), "--teacher",
                        str(tmp_path / "t.keras"), "--alpha", "2", "--train", str(tmp_path / "x.npy"),
                        str(tmp_path / "y.npy")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "--alpha 2" in r.stderr and len(r.stderr.strip().splitlines()) == 1
