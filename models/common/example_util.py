"""Helpers shared by the example host scripts (models/<name>/build.py): quiet TensorFlow, int8 conversion,
cached atomic outputs, packing, running the device app on the MicroPython unix port.

Loaded by path (models/ is not a package): see load_common() at the top of each build.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build" / "models"
SHARED = Path(os.environ.get("MPYML_SHARED", REPO.parent / "shared"))
SEED = 0


@contextlib.contextmanager
def quiet_fds() -> Iterator[None]:
    """Silence C++ log spam (TF, MLIR converter) written straight to fds 1 and 2; replay it on error."""
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as tmp:
        saved = [os.dup(1), os.dup(2)]
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        ok = False
        try:
            yield
            ok = True
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            if not ok:
                tmp.seek(0)
                sys.stderr.write(tmp.read().decode("utf-8", errors="replace"))


def import_tf_quiet() -> Any:
    """TensorFlow with its C++ and Python logging silenced (no seeding: see import_tf)."""
    for k, v in (("TF_CPP_MIN_LOG_LEVEL", "3"), ("TF_ENABLE_ONEDNN_OPTS", "0"), ("KERAS_BACKEND", "tensorflow"),
                 ("PYTHONHASHSEED", str(SEED)), ("ABSL_MIN_LOG_LEVEL", "3"), ("GRPC_VERBOSITY", "ERROR")):
        os.environ.setdefault(k, v)
    with quiet_fds():
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        with contextlib.suppress(Exception):
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
    return tf


def import_tf() -> Any:
    """TensorFlow, quiet and deterministic (fixed seeds, deterministic ops)."""
    tf = import_tf_quiet()
    tf.keras.utils.set_random_seed(SEED)
    with contextlib.suppress(Exception):
        tf.config.experimental.enable_op_determinism()
    with contextlib.suppress(Exception):
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.threading.set_intra_op_parallelism_threads(1)
    return tf


def to_int8_tflite(tf: Any, model: Any, representative: np.ndarray) -> bytes:
    """Full-integer (int8 in/out) post-training quantization with a representative dataset."""

    def rep() -> Iterator[list[np.ndarray]]:
        for i in range(len(representative)):
            yield [representative[i:i + 1].astype(np.float32)]

    with quiet_fds():
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        return conv.convert()


def file_hash(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@contextlib.contextmanager
def build_lock(out_dir: Path) -> Iterator[None]:
    """Serialize a build across processes (parallel test workers)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".build.lock", "w") as f:
        try:
            import fcntl
        except ImportError:
            yield
            return
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _packer_digest() -> str:
    """What the packed files depend on besides the example's own sources: the packer and the format spec."""
    import hashlib

    import mpyml
    root = Path(mpyml.__file__).parent
    h = hashlib.sha256()
    for f in sorted([*root.glob("packer.py"), *root.glob("planner.py"), *root.glob("quantize.py"),
                     *root.glob("graph.py"), *root.glob("spec/*.py"), *root.glob("lower/*.py")]):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def cached(out_dir: Path, key: str, build: Callable[[], dict[str, Any]], force: bool = False) -> dict[str, Any]:
    """meta.json of out_dir when its "key" (plus the packer's digest) matches, else build() (under a lock)
    and save its meta."""
    meta_path = out_dir / "meta.json"
    key = f"{key}:{_packer_digest()}"

    def current() -> dict[str, Any] | None:
        try:
            m = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            return None
        return m if m.get("key") == key and all((out_dir / f).exists() for f in m.get("files", [])) else None

    m = None if force else current()
    if m is not None:
        return m
    with build_lock(out_dir):
        m = None if force else current()
        if m is None:
            m = build()
            m["key"] = key
            write_atomic(meta_path, json.dumps(m, indent=2).encode() + b"\n")
    return m


def pack_to(tflite: bytes, path: Path) -> bytes:
    import mpyml

    mpk = mpyml.pack(tflite)
    write_atomic(path, mpk)
    return mpk


def run_app(app: Path, args: Sequence[str], heapsize: str = "8M", timeout: float = 300,
            extra_paths: Sequence[Path] = ()) -> subprocess.CompletedProcess:
    """Run a device app (models/<name>/app/main.py) on the MicroPython unix port with the device package
    and the x64 native module on its path."""
    from mpyml import paths

    natmod = os.environ.get("MPYML_NATMOD_DIR") or str(paths.natmod_path("x64").parent)
    p = [*map(str, extra_paths), str(app.parent), str(paths.DEVICE_DIR), natmod, ".frozen"]
    env = dict(os.environ, MICROPYPATH=":".join(p))
    return subprocess.run([paths.micropython_exe(), "-X", f"heapsize={heapsize}", str(app), *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def app_stdout(app: Path, args: Sequence[str]) -> str:
    """The output of run_app(app, args); RuntimeError (with the app's stdout and stderr) when it fails."""
    r = run_app(app, args)
    if r.returncode != 0:
        raise RuntimeError(f"device app failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def parse_lines(out: str, tag: str) -> list[dict[str, str]]:
    """Lines 'TAG k=v k=v ...' of the app output as dicts."""
    res = []
    for ln in out.splitlines():
        if ln.startswith(tag + " "):
            res.append(dict(kv.split("=", 1) for kv in ln.split()[1:] if "=" in kv))
    return res
