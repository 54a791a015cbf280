"""The engine built bare-metal for Cortex-M0/M3/M4/M7 and run under QEMU (host/mpyml/baremetal.py,
native_modules/baremetal/): every model's outputs byte-equal to tflite-micro's on each CPU, malformed models
rejected by mpyml_prepare on the target, and the instruction-counting path.

Skipped when arm-none-eabi-gcc / newlib / qemu-system-arm are missing locally; under CI=true that fails instead.
Instruction counts of the full models are not measured here (see `python -m mpyml.baremetal --count`).
"""

from __future__ import annotations

import functools
import struct

import numpy as np
import pytest

from conftest import IN_CI, shared_path, skip_or_fail
from mpyml import baremetal as bm
from mpyml import pack
from mpyml.mpk import HEADER_OFFSETS, MpkFile, with_crc
from mpyml.tflm import TflmRunner

MODELS = [
    ("mlperf_tiny", "ad01_int8.tflite"),
    ("mlperf_tiny", "kws_ref_model.tflite"),
    ("mlperf_tiny", "str_ww_ref_model.tflite"),
    ("mlperf_tiny", "pretrainedResnet_quant.tflite"),
    ("mlperf_tiny", "vww_96_int8.tflite"),
    ("tflm", "person_detect.tflite"),
]
# (cpu, board): the M0 runs on the micro:bit machine with enlarged nRF51 memories (the real 16 KiB of RAM holds
# only str_ww's arena: see the two micro:bit tests below)
TARGETS = [("m0", "microbit-xl"), ("m3", None), ("m4", None), ("m7", None)]
N_RANDOM = 6
REPEAT = 2          # every sample invoked twice on the target; both must give the same bytes


@pytest.fixture(autouse=True, scope="module")
def _toolchain() -> None:
    why = bm.missing_tools()
    if why:
        if IN_CI:
            pytest.fail(why)
        skip_or_fail(why)


def _read_bmp_gray(path) -> np.ndarray:
    """8-bit palettized grayscale BMP -> top-down uint8 array."""
    b = path.read_bytes()
    off, hdr = int.from_bytes(b[10:14], "little"), int.from_bytes(b[14:18], "little")
    w, h = int.from_bytes(b[18:22], "little", signed=True), int.from_bytes(b[22:26], "little", signed=True)
    assert int.from_bytes(b[28:30], "little") == 8
    ncol = int.from_bytes(b[46:50], "little") or 256
    pal = np.frombuffer(b[14 + hdr:14 + hdr + 4 * ncol], np.uint8).reshape(-1, 4)[:, 0]
    stride = (w + 3) // 4 * 4
    idx = np.frombuffer(b[off:off + stride * abs(h)], np.uint8).reshape(abs(h), stride)[:, :w]
    return pal[idx[::-1] if h > 0 else idx]


def _real_samples(name: str, info: MpkFile) -> list[np.ndarray]:
    inp = info.input_tensors()[0]
    if name == "kws_ref_model.tflite":
        return [np.load(shared_path("data", "mlperf_tiny_inputs", "kws_input_int8.npy")).astype(np.int8)]
    if name == "ad01_int8.tflite":
        x = np.load(shared_path("data", "mlperf_tiny_inputs", "ad_dcase01_normal_id_01_logmel_float32.npy"))
        frames = x.reshape(-1, 128)
        wins = [frames[i:i + 5].reshape(1, 640) for i in range(0, len(frames) - 4, (len(frames) - 5) // 2)]
        return [np.clip(np.round(w / inp.scale) + inp.zero_point, -128, 127).astype(np.int8) for w in wins]
    if name == "person_detect.tflite":
        return [(_read_bmp_gray(shared_path("data", "person_detection", f)).astype(np.int16) - 128)
                .astype(np.int8).reshape(inp.shape) for f in ("person.bmp", "no_person.bmp")]
    return []


@functools.cache
def _reference(folder: str, name: str, max_ram: int | None = None
               ) -> tuple[bytes, list[list[np.ndarray]], list[list[np.ndarray]], int]:
    """Packed model (`pack --max-ram` when given), samples (random + real) and tflite-micro's outputs for them;
    n_real = real samples at the end."""
    tflite = shared_path("models", folder, name).read_bytes()
    mpk = pack(tflite, max_ram=max_ram)
    info = MpkFile(mpk)
    rng = np.random.default_rng(20240611)
    batch = [[rng.integers(-128, 128, size=t.shape, dtype=np.int8) for t in info.input_tensors()]
             for _ in range(N_RANDOM)]
    real = _real_samples(name, info)
    batch += [[s] for s in real]
    ref = TflmRunner(tflite)
    return mpk, batch, [ref.run(s) for s in batch], len(real)


def _assert_equal(want: list[list[np.ndarray]], got: list[list[np.ndarray]], what: str) -> None:
    bad = [(i, j, w.reshape(-1)[:8].tolist(), g.reshape(-1)[:8].tolist())
           for i, (ws, gs) in enumerate(zip(want, got, strict=True))
           for j, (w, g) in enumerate(zip(ws, gs, strict=True))
           if w.dtype != np.int8 or w.tobytes() != g.tobytes()]
    assert not bad, f"{what}: {len(bad)} outputs differ from tflite-micro (sample, output, want, got): {bad[:3]}"


@pytest.mark.parametrize("cpu,board", TARGETS, ids=[t[0] for t in TARGETS])
@pytest.mark.parametrize("folder,name", MODELS, ids=[m[1].split(".")[0] for m in MODELS])
def test_bit_exact_with_tflite_micro(folder: str, name: str, cpu: str, board: str | None) -> None:
    mpk, batch, want, n_real = _reference(folder, name)
    got, _ = bm.run_on_qemu(mpk, batch, cpu=cpu, board=board, repeat=REPEAT)
    _assert_equal(want, got, f"{name} on {cpu}")
    if name == "person_detect.tflite" and n_real == 2:
        p, n = (o[0].reshape(-1).astype(int) for o in got[-2:])
        assert p[1] - p[0] > n[1] - n[0], "the person image must score 'person' higher than the no-person image"


def test_m0_on_the_real_microbit_memory() -> None:
    """str_ww fits the nRF51's real 256 KiB flash / 16 KiB RAM (6.5 KiB arena) and is bit-exact there."""
    mpk, batch, want, _ = _reference("mlperf_tiny", "str_ww_ref_model.tflite")
    got, _ = bm.run_on_qemu(mpk, batch, cpu="m0", board="microbit")
    _assert_equal(want, got, "str_ww on the micro:bit")


def test_m0_microbit_fits_kws_in_place() -> None:
    """KWS packed with `--max-ram 8704` (in-place depthwise and conv variants) needs an 8,496-byte arena (16,000
    by default): it fits the nRF51's real 16 KiB of RAM with the harness's data and stack, and is bit-exact there."""
    mpk, batch, want, _ = _reference("mlperf_tiny", "kws_ref_model.tflite", 8704)
    assert MpkFile(mpk).header["arena_size"] <= 8704
    got, _ = bm.run_on_qemu(mpk, batch[:1], cpu="m0", board="microbit")
    _assert_equal(want[:1], got, "kws on the micro:bit")


def test_m0_microbit_ram_too_small_for_resnet() -> None:
    """ResNet-8 needs a 34,304-byte arena even in place: it cannot fit 16 KiB of RAM, and the link says so (as it
    would for a product firmware) rather than the run corrupting memory."""
    mpk, batch, _, _ = _reference("mlperf_tiny", "pretrainedResnet_quant.tflite")
    with pytest.raises(bm.BaremetalError, match="do not fit in RAM"):
        bm.run_on_qemu(mpk, batch[:1], cpu="m0", board="microbit")


@functools.cache
def _small_mpk() -> bytes:
    return _reference("mlperf_tiny", "str_ww_ref_model.tflite")[0]


def _unknown_opcode(mpk: bytes) -> bytes:
    """Op 1's opcode replaced by an unknown one, CRC recomputed: only the op table check can catch it."""
    f = MpkFile(mpk)
    b = bytearray(mpk)
    b[f.ops[1].record_offset] = 0x7E
    return with_crc(b)


@pytest.mark.parametrize("cpu", [t[0] for t in TARGETS])
def test_malformed_model_rejected_on_target(cpu: str) -> None:
    mpk = _small_mpk()
    crc_off = HEADER_OFFSETS["crc32"]
    data_off = struct.unpack_from("<I", mpk, HEADER_OFFSETS["data_offset"])[0]
    bad_crc = bytearray(mpk)
    bad_crc[data_off + 5] ^= 0x01                       # one weight bit flipped, CRC field untouched
    cases = [
        ("bad CRC", bytes(bad_crc), "MPYML_E_CRC", -1),
        ("truncated", mpk[:-64], "MPYML_E_TRUNCATED", -1),
        ("CRC field corrupted", mpk[:crc_off] + bytes(4) + mpk[crc_off + 4:], "MPYML_E_CRC", -1),
        ("unknown opcode", _unknown_opcode(mpk), "MPYML_E_OPCODE", 1),
    ]
    sample = bytes(MpkFile(mpk).input_tensors()[0].nbytes)
    board = dict(TARGETS)[cpu]
    for what, model, status, index in cases:
        r = bm.run_job(model, sample, cpu=cpu, board=board)
        assert bm.status_name(r.exit_status) == status, f"{what}: {r.console}"
        assert r.prepare["status"] == r.exit_status and r.prepare["index"] == index, f"{what}: {r.prepare}"
        assert r.outputs == [], f"{what}: a rejected model must not be invoked"
    with pytest.raises(bm.BaremetalError) as e:
        bm.run_on_qemu(bytes(bad_crc), [[np.zeros(len(sample), np.int8)]], cpu=cpu, board=board)
    assert bm.status_name(e.value.status) == "MPYML_E_CRC" and "MPYML_E_CRC" in str(e.value)


def test_instruction_count_window() -> None:
    """The counting path on one small model (M4): exact and repeatable, and attributed to the right kernel."""
    why = bm.missing_tools(count=True)
    if why and IN_CI:
        pytest.fail(why)
    if why:
        skip_or_fail(why)
    mpk, batch, want, _ = _reference("mlperf_tiny", "ad01_int8.tflite")
    got, n = bm.run_on_qemu(mpk, batch[:1], cpu="m4", count_instructions=True, repeat=3)
    _assert_equal(want[:1], got, "ad01 with counting")
    r = bm.run_job(mpk, batch[0][0].tobytes(), cpu="m4", count_instructions=True, repeat=3)
    assert r.windows is not None and r.profile is not None
    assert 0 < r.windows[0] < 16, f"the empty window is only the markers' call overhead: {r.windows}"
    per_invoke = r.invoke_instructions
    assert len(per_invoke) == 3 and len(set(per_invoke)) == 1 and n == per_invoke[0], per_invoke
    assert sum(e.count for e in r.profile) == sum(r.windows)
    macs = MpkFile(mpk).header["macs"]
    assert macs < per_invoke[0] < 20 * macs
    c = bm.count_instructions(mpk, cpu="m4", inputs=batch[:1])
    assert c.instructions == per_invoke[0]
    assert c.functions[0][0] == "mpyml_fully_connected" and c.functions[0][1] > 0.9 * c.instructions
    assert c.est_cycles is not None and c.est_cycles > c.instructions
