"""Every user mistake in the CLI is one line on stderr naming the file and the fix, exit 2, never a traceback
(issue: nothing a user does prints a traceback); a closed pipe exits quietly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_path
from mpyml import packer
from mpyml.tflite_model import read_tflite

MPYML = [sys.executable, "-m", "mpyml.cli"]


def run(*args: str, **kw) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run([*MPYML, *args], capture_output=True, text=True, timeout=300, **kw)


def one_line_error(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.fixture(scope="module")
def kws() -> Path:
    return shared_path("models", "mlperf_tiny", "kws_ref_model.tflite")


def test_missing_input_file(tmp_path: Path) -> None:
    one_line_error(run("pack", str(tmp_path / "nope.tflite")), "nope.tflite", "no such file")


def test_output_directory_missing(kws: Path, tmp_path: Path) -> None:
    one_line_error(run("pack", str(kws), "-o", str(tmp_path / "no" / "dir" / "x.mpk")), "does not exist")


def test_wrong_input_shape(kws: Path, tmp_path: Path) -> None:
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((3, 7), np.int8))
    one_line_error(run("run", str(kws), "--input", str(x)), "mpyml run")


def test_run_and_deploy_of_a_tflite_that_does_not_pack(kws: Path, tmp_path: Path) -> None:
    from test_cli import with_op_replaced
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(with_op_replaced(kws.read_bytes(), 3, 62))      # CUMSUM: not supported
    one_line_error(run("run", str(bad)), "not supported")
    one_line_error(run("deploy", str(bad), "--dry-run", "--arch", "x64"), "not supported")


def test_garbage_mpk_and_corrupted_tflites(kws: Path, tmp_path: Path) -> None:
    g = tmp_path / "g.mpk"
    g.write_bytes(b"MPYM" + bytes(range(256)) * 4)
    r = run("inspect", str(g))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    data = kws.read_bytes()
    rng = np.random.default_rng(1)
    for k in range(12):                    # truncated and byte-smashed flatbuffers
        b = bytearray(data[: len(data) // (k + 2)] if k % 2 else data)
        for i in rng.integers(8, len(b), size=40):
            b[int(i)] = int(rng.integers(0, 256))
        p = tmp_path / f"c{k}.tflite"
        p.write_bytes(bytes(b))
        r = run("inspect", str(p))
        assert "Traceback" not in r.stderr and r.returncode in (0, 2), (k, r.stderr[-1500:])


def test_bit_flipped_mpk(kws: Path, tmp_path: Path) -> None:
    """A packed file with flipped bits in its records: `inspect` either shows it with the CRC warning (exit 0)
    or says in one line that the file is corrupted and to repack it (exit 2), never a bare Python error."""
    good = tmp_path / "kws.mpk"
    r = run("pack", str(kws), "-o", str(good))
    assert r.returncode == 0, r.stderr
    data = good.read_bytes()
    rng = np.random.default_rng(3)
    for k in range(16):
        b = bytearray(data)
        for i in rng.integers(64, min(len(b), 4096), size=4):      # header, tensor and op records
            b[int(i)] ^= 1 << int(rng.integers(0, 8))
        p = tmp_path / f"f{k}.mpk"
        p.write_bytes(bytes(b))
        r = run("inspect", str(p))
        if r.returncode == 0:
            assert "CRC mismatch" in r.stdout, (k, r.stdout[-500:])
        else:
            one_line_error(r, f"f{k}.mpk", "repack")
    b = bytearray(data)
    b[100] ^= 0xFF                          # a tensor record's shape: the records cannot be read
    p = tmp_path / "shape.mpk"
    p.write_bytes(bytes(b))
    one_line_error(run("inspect", str(p)), "corrupted (CRC mismatch)", "repack it with `mpyml pack`")


def test_repeat_below_one_refused(kws: Path) -> None:
    r = run("run", str(kws), "--repeat", "0")
    assert r.returncode == 2 and "at least 1" in r.stderr and "Traceback" not in r.stderr


def test_broken_pipe_is_quiet(kws: Path) -> None:
    p = subprocess.run(f"{sys.executable} -m mpyml.cli inspect {kws} | head -1", shell=True, capture_output=True,
                       text=True, timeout=300)
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr


def test_corrupted_mpk_inspect_warns_and_deploy_refuses(kws: Path, tmp_path: Path) -> None:
    mpk = bytearray(packer.pack(kws.read_bytes()))
    mpk[len(mpk) // 2] ^= 0x10
    p = tmp_path / "bad.mpk"
    p.write_bytes(bytes(mpk))
    r = run("inspect", str(p))
    assert "WARNING: CRC mismatch" in r.stdout, r.stdout[-800:]
    one_line_error(run("deploy", str(p), "--dry-run", "--arch", "x64"), "CRC", "repack")


@pytest.mark.parametrize(("params", "what"), [
    ([1100, 1, 1, 1, 0, 0, 0, 0, -128, 127, 1], "stride_w = 1100"),
    ([1, 1, 1100, 1, 0, 0, 0, 0, -128, 127, 1], "dil_w = 1100"),
    ([1, 1, 1, 1, 1050, 0, 0, 0, -128, 127, 1], "pad_w = 1050"),
    ([1, 1, 1, 1, 0, 0, 200, 0, -128, 127, 1], "input_offset = 200"),
    ([1, 1, 1, 1, 0, 0, 0, -300, -128, 127, 1], "output_offset = -300"),
])
def test_pack_refuses_what_the_board_refuses(kws: Path, params: list[int], what: str) -> None:
    m = read_tflite(kws.read_bytes())
    op = next(o for o in m.operators if o.op == "CONV_2D")
    with pytest.raises(packer.PackError, match=what):
        packer._Builder(m).emit("CONV_2D", [0] * 5, [0], params, op)
    dw = next(o for o in m.operators if o.op == "DEPTHWISE_CONV_2D")
    with pytest.raises(packer.PackError, match="depth_multiplier = 2000"):
        packer._Builder(m).emit("DEPTHWISE_CONV_2D", [0] * 5, [0], [1, 1, 1, 1, 0, 0, 0, 0, -128, 127, 2000], dw)
