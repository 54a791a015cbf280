"""Knowledge distillation for `mpyml convert --teacher` (Hinton, Vinyals & Dean 2015).

The student is trained on  alpha * CE(hard labels, softmax(z_s)) + (1 - alpha) * T^2 * KL(p_t^T || softmax(z_s / T))
where p_t^T is the teacher's output softened at temperature T (computed once, in float64, from the teacher's logits
or, when it outputs probabilities, from log p_t, which is the same softmax up to a constant). The baseline
("without teacher") is the same student from the same initial weights, with the same seed (same shuffling), the
same epochs, batch size and learning rate and the same loss code with alpha = 1 (hard labels only).

A student ending in softmax (a Softmax layer, or an activation="softmax" layer) is trained on its logits: the
Softmax layer's input, or the layer with its activation switched to linear while training; the returned model
computes what the original computed (probabilities when it ended in softmax).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .prune import PruneError, clone, keras_of

__all__ = ["DistillError", "distill", "soft_targets", "train_student"]

DEFAULT_TEMPERATURE = 4.0
DEFAULT_ALPHA = 0.1


class DistillError(PruneError):
    """A teacher / student / setting distillation cannot use; one line naming the problem and the fix."""


def soft_targets(teacher_out: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(z / T) of the teacher's logits; probabilities (rows in [0, 1] summing to 1) are taken as exp(z)."""
    t = np.asarray(teacher_out, dtype=np.float64).reshape(len(teacher_out), -1)
    probs = bool(np.all(t >= 0) and np.all(t <= 1) and np.allclose(t.sum(axis=1), 1.0, atol=1e-3))
    z = np.log(np.clip(t, 1e-30, None)) if probs else t
    z = z / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _logits_model(model: Any) -> tuple[Any, Callable[[], None]]:
    """(a model computing the student's logits, sharing its layers; a function undoing any change)."""
    k = keras_of(model)
    last = model.layers[-1]
    if type(last).__name__ == "Softmax":
        return k.Model(model.inputs, last.input), lambda: None
    if last.get_config().get("activation") == "softmax":
        saved = last.activation
        last.activation = k.activations.linear

        def undo() -> None:
            last.activation = saved

        return model, undo
    return model, lambda: None


def train_student(student: Any, x: np.ndarray, labels: np.ndarray, soft: np.ndarray | None, epochs: int,
                  lr: float, temperature: float = DEFAULT_TEMPERATURE, alpha: float = DEFAULT_ALPHA,
                  batch_size: int = 32, seed: int = 0, on_epoch: Callable[[], None] | None = None) -> Any:
    """Train a copy of `student` (its weights untouched) on the hard labels, plus the soft targets when given;
    returns the trained copy."""
    import tensorflow as tf

    k = keras_of(student)
    model = clone(student)
    n_cls = int(np.prod(model.outputs[0].shape[1:]))
    if labels.min() < 0 or labels.max() >= n_cls:
        raise DistillError(f"--teacher: labels {labels.min()}..{labels.max()} for a student with {n_cls} outputs")
    onehot = np.eye(n_cls, dtype=np.float32)[labels]
    if soft is None:
        a, soft_ = 1.0, np.zeros_like(onehot)
    else:
        if soft.shape != onehot.shape:
            raise DistillError(f"--teacher: the teacher has {soft.shape[1]} outputs, the student {n_cls}: "
                               "give a teacher for the same classes")
        a, soft_ = float(alpha), soft
    t2 = float(temperature) ** 2
    inv_t = 1.0 / float(temperature)

    def loss(y_true: Any, z: Any) -> Any:
        y_true = tf.cast(y_true, tf.float32)
        z = tf.reshape(tf.cast(z, tf.float32), (-1, n_cls))
        hard, sft = y_true[:, :n_cls], y_true[:, n_cls:]
        ce = tf.nn.softmax_cross_entropy_with_logits(hard, z)
        if a >= 1.0:
            return ce
        logq = tf.nn.log_softmax(z * inv_t)
        kd = tf.reduce_sum(sft * (tf.math.log(sft + 1e-12) - logq), axis=-1) * t2
        return a * ce + (1.0 - a) * kd

    trainee, undo = _logits_model(model)
    k.utils.set_random_seed(seed)
    trainee.compile(optimizer=k.optimizers.Adam(lr), loss=loss)

    class _Cb(k.callbacks.Callback):  # type: ignore[misc,name-defined]
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if on_epoch is not None:
                on_epoch()

    try:
        trainee.fit(x, np.concatenate([onehot, soft_], axis=1), epochs=epochs, batch_size=batch_size, shuffle=True,
                    verbose=0, callbacks=[_Cb()])
    finally:
        undo()
    return model


def distill(student: Any, teacher_out: np.ndarray, x: np.ndarray, labels: np.ndarray, epochs: int, lr: float,
            temperature: float = DEFAULT_TEMPERATURE, alpha: float = DEFAULT_ALPHA, batch_size: int = 32,
            seed: int = 0, on_epoch: Callable[[], None] | None = None) -> tuple[Any, Any]:
    """(student trained without the teacher, student trained with it): same init, seed and budget."""
    if temperature <= 0:
        raise DistillError(f"--temperature {temperature:g}: must be positive (e.g. 4)")
    if not 0.0 <= alpha <= 1.0:
        raise DistillError(f"--alpha {alpha:g}: the hard-label weight must be in [0, 1] (e.g. 0.1)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DistillError("--teacher: distillation needs class labels in --train Y (integers or one-hot)")
    soft = soft_targets(teacher_out, temperature)
    plain = train_student(student, x, labels, None, epochs, lr, temperature, alpha, batch_size, seed, on_epoch)
    kd = train_student(student, x, labels, soft, epochs, lr, temperature, alpha, batch_size, seed, on_epoch)
    return plain, kd
