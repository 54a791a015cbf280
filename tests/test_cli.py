"""The `mpyml` CLI: pack, inspect (table and --json), run on the unix port, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from conftest import shared_path
from mpyml.tflm import TflmRunner

MPYML = [sys.executable, "-m", "mpyml.cli"]


def mpyml(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*MPYML, *args], capture_output=True, text=True, timeout=300)


def with_op_replaced(tflite: bytes, op_index: int, builtin: int) -> bytes:
    """Rewrite one operator's code (through the schema object API) to make an unsupported model."""
    m = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 1
    m.operatorCodes.append(code)
    m.subgraphs[0].operators[op_index].opcodeIndex = len(m.operatorCodes) - 1
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_pack_inspect_run(tmp_path: Path) -> None:
    src = shared_path("models", "mlperf_tiny", "kws_ref_model.tflite")
    out = tmp_path / "kws.mpk"
    r = mpyml("pack", str(src), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.exists() and "arena" in r.stdout

    r = mpyml("inspect", str(out))
    assert r.returncode == 0, r.stderr
    for word in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX", "arena", "MACs"):
        assert word in r.stdout

    r = mpyml("inspect", "--json", str(src))      # .tflite works too (packed in memory)
    info = json.loads(r.stdout)
    assert info["arena_bytes"] > 0 and info["weights_bytes"] > 0 and info["file_bytes"] > 0
    assert info["tflite_bytes"] == src.stat().st_size
    assert [layer["op"] for layer in info["layers"]][0] == "CONV_2D"
    assert all({"op", "macs", "arena_offset"} <= set(layer) for layer in info["layers"])
    assert sum(layer["macs"] for layer in info["layers"]) == info["macs"]
    # MLPerf Tiny publishes 2.66 M MACs for KWS
    assert 2.5e6 < info["macs"] < 2.8e6

    x = np.load(shared_path("data", "mlperf_tiny_inputs", "kws_input_int8.npy")).astype(np.int8)
    np.save(tmp_path / "in.npy", x)
    r = mpyml("run", str(out), "--input", str(tmp_path / "in.npy"), "--output", str(tmp_path / "out.npy"),
              "--repeat", "5")
    assert r.returncode == 0, r.stderr
    assert "median invoke" in r.stdout
    got = np.load(tmp_path / "out.npy")
    want = TflmRunner(src.read_bytes()).run([x])[0]
    assert np.array_equal(got.reshape(-1), want.reshape(-1))


def test_unsupported_op_fails_at_pack_time(tmp_path: Path) -> None:
    src = shared_path("models", "mlperf_tiny", "ad01_int8.tflite").read_bytes()
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(with_op_replaced(src, 3, schema.BuiltinOperator.CUMSUM))
    r = mpyml("pack", str(bad), "-o", str(tmp_path / "bad.mpk"))
    assert r.returncode != 0
    assert "op #3 CUMSUM" in r.stderr and "not supported" in r.stderr and "CONV_2D" in r.stderr
    assert not (tmp_path / "bad.mpk").exists()
    # inspect still shows every layer, marking the one mpyml cannot run
    r = mpyml("inspect", str(bad))
    assert r.returncode != 0 and "op #3 CUMSUM" in r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if line[:1].isdigit()]
    assert [row[1] for row in rows if "NOT" in row] == ["CUMSUM"] and len(rows) > 3


def test_pack_rejects_non_tflite(tmp_path: Path) -> None:
    p = tmp_path / "x.tflite"
    p.write_bytes(b"not a model at all")
    r = mpyml("pack", str(p))
    assert r.returncode != 0 and "TFLite" in r.stderr
