"""Convert the corpus the ordinary way (TFLiteConverter, full-integer), cached in build/corpus/.

The flow every user follows::

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = ...
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8     # int8 / uint8 I/O; float32 I/O: left at the default
    converter.inference_output_type = tf.int8

Cache: build/corpus/<name>_<io>.tflite for io in int8 / uint8 / float32, and build/corpus/<name>.json
(key, timings, errors). The key hashes the architecture's source (architectures.source_digest), this
file's conversion code and the TensorFlow / Keras / tf-keras / numpy versions, so a rerun loads bytes
without importing TensorFlow. One architecture is built at a time under an flock (pytest-xdist workers
wait for each other instead of duplicating the work); every file is written to a temp name and moved
into place with os.replace. A failed conversion is cached too (same key) and re-raised, not retried.

    tflite(name, io) -> bytes     the converted model (builds on a miss; ConversionError if it failed)
    ensure(name) -> dict          the metadata record (builds on a miss)
    python -m tests.corpus.convert [names...]   build (default all), print timings
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import inspect
import io as _io
import json
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

from . import IO_TYPES
from .architectures import ARCHITECTURES, Arch, build_model, source_digest

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("MPYML_CORPUS_DIR", REPO / "build" / "corpus"))
_VERSIONED = ("tensorflow", "keras", "tf-keras", "numpy")


class ConversionError(RuntimeError):
    """The TFLite converter (or building the Keras model) failed for this architecture."""


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def versions() -> dict[str, str]:
    return {d: _version(d) for d in _VERSIONED}


def cache_key(arch: Arch) -> str:
    h = hashlib.sha256()
    h.update(source_digest(arch).encode())
    h.update(inspect.getsource(convert_model).encode())
    h.update(inspect.getsource(_build).encode())
    h.update(json.dumps(versions(), sort_keys=True).encode())
    return h.hexdigest()[:24]


def tflite_path(name: str, io: str) -> Path:
    return CACHE_DIR / f"{name}_{io}.tflite"


def meta_path(name: str) -> Path:
    return CACHE_DIR / f"{name}.json"


def _import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


def convert_model(model, rep, io: str) -> bytes:
    """The ordinary full-integer conversion of a Keras (3 or tf-keras) model with int8 / uint8 / float32 I/O."""
    tf = _import_tf()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([rep[i:i + 1]] for i in range(len(rep)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io != "float32":
        converter.inference_input_type = getattr(tf, io)
        converter.inference_output_type = getattr(tf, io)
    with warnings.catch_warnings():     # "Statistics for quantized inputs were expected": harmless, every time
        warnings.simplefilter("ignore", UserWarning)
        return converter.convert()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _err(e: BaseException) -> str:
    """The converter's message, without the long MLIR location dumps."""
    msg = f"{type(e).__name__}: {e}".strip()
    lines = [ln for ln in msg.splitlines() if ln.strip()]
    keep = [ln for ln in lines if "error:" in ln or "Exception" in ln or "Error" in ln] or lines
    return "\n".join(keep[:6])[:1200]


def _build(arch: Arch, key: str) -> dict:
    """Build the model once, convert it for every I/O type, write the cache files."""
    meta: dict = {"name": arch.name, "key": key, "versions": versions(), "framework": arch.framework,
                  "notes": arch.notes, "build_s": None, "convert_s": {}, "errors": {}}
    from mpyml.tflm import capture_fd_output

    with capture_fd_output() as logs, contextlib.redirect_stdout(_io.StringIO()):
        t0 = time.perf_counter()
        try:
            model, rep = build_model(arch)
        except Exception as e:
            model = rep = None
            meta["errors"] = {io: "build: " + _err(e) for io in IO_TYPES}
            meta["traceback"] = traceback.format_exc()[-4000:]
        meta["build_s"] = round(time.perf_counter() - t0, 2)
        for io in IO_TYPES if model is not None else ():
            t1 = time.perf_counter()
            try:
                data = convert_model(model, rep, io)
            except Exception as e:
                meta["errors"][io] = _err(e)
            else:
                _write_atomic(tflite_path(arch.name, io), data)
            meta["convert_s"][io] = round(time.perf_counter() - t1, 2)
    if meta["errors"]:
        meta["log_tail"] = "".join(logs)[-3000:]
    _write_atomic(meta_path(arch.name), json.dumps(meta, indent=1).encode())
    return meta


def _cached(name: str, key: str) -> dict | None:
    try:
        meta = json.loads(meta_path(name).read_text())
    except (OSError, ValueError):
        return None
    if meta.get("key") != key:
        return None
    if any(io not in meta["errors"] and not tflite_path(name, io).exists() for io in IO_TYPES):
        return None
    return meta


def ensure(name: str, force: bool = False) -> dict:
    """The metadata record of `name`, building all three I/O variants when the cache is stale.

    While another process holds `name`'s lock (is building it), this one builds some other stale
    architecture nobody holds instead of idling: pytest-xdist workers then share the conversions."""
    arch = ARCHITECTURES[name]
    key = cache_key(arch)
    if not force and (meta := _cached(name, key)) is not None:
        meta["cached"] = True
        return meta
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f".{name}.lock", "w") as lock:
        if not _try_lock(lock):
            _help_others(name)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and (meta := _cached(name, key)) is not None:
            meta["cached"] = True
            return meta
        meta = _build(arch, key)
        meta["cached"] = False
        return meta


def _try_lock(f) -> bool:
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _help_others(waiting_for: str) -> None:
    """Build stale architectures (after `waiting_for` in registry order) while its builder holds it."""
    names = list(ARCHITECTURES)
    start = names.index(waiting_for)
    for other in names[start + 1:] + names[:start]:
        with open(CACHE_DIR / f".{waiting_for}.lock", "w") as probe:
            if _try_lock(probe):        # it is done: stop helping
                return
        key = cache_key(ARCHITECTURES[other])
        if _cached(other, key) is not None:
            continue
        with open(CACHE_DIR / f".{other}.lock", "w") as lock:
            if _try_lock(lock) and _cached(other, key) is None:
                _build(ARCHITECTURES[other], key)


def tflite(name: str, io: str) -> bytes:
    """The converted .tflite of architecture `name` with `io` inputs/outputs (int8, uint8 or float32)."""
    if io not in IO_TYPES:
        raise ValueError(f"io must be one of {IO_TYPES}, got {io!r}")
    meta = ensure(name)
    if io in meta["errors"]:
        raise ConversionError(f"{name} ({io} I/O) does not convert: {meta['errors'][io]}")
    return tflite_path(name, io).read_bytes()


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m tests.corpus.convert", description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="architectures (default: all)")
    ap.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = ap.parse_args(argv)
    names = args.names or list(ARCHITECTURES)
    unknown = [n for n in names if n not in ARCHITECTURES]
    if unknown:
        ap.error(f"unknown architectures {unknown}; known: {', '.join(ARCHITECTURES)}")
    for n in names:
        t = time.perf_counter()
        m = ensure(n, force=args.force)
        conv = " ".join(f"{io}={m['convert_s'].get(io, '-')}s" for io in IO_TYPES)
        errs = "; ".join(f"{io}: {e.splitlines()[0]}" for io, e in m["errors"].items())
        print(f"{n:24s} {'cached' if m['cached'] else 'built '} {time.perf_counter() - t:6.1f}s  "
              f"build={m['build_s']}s {conv}  {errs}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
