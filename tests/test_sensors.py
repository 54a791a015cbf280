"""mpyml.sensors on the MicroPython unix port: file replays (BMP/PGM/PPM/raw, WAV, NPY/CSV), board
drivers against fake peripherals, fault injection. Expected values computed here with NumPy."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import load_hostrun, shared_path

hostrun = load_hostrun()

RNG = np.random.default_rng(1234)


# ---------------------------------------------------------------- reference conversions
def to_gray(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    return ((77 * r + 150 * g + 29 * b) >> 8).astype(np.uint8)


def to_rgb565(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    v = ((r & 0xF8) << 8) | ((g & 0xFC) << 3) | (b >> 3)
    return np.stack([v >> 8, v & 0xFF], axis=-1).astype(np.uint8)


def convert(rgb: np.ndarray, fmt: str) -> bytes:
    if fmt == "gray":
        return to_gray(rgb).tobytes()
    if fmt == "rgb565":
        return to_rgb565(rgb).tobytes()
    return rgb.astype(np.uint8).tobytes()


def crc(b: bytes) -> int:
    return zlib.crc32(b) & 0xFFFFFFFF


# ---------------------------------------------------------------- writers
def write_bmp(path: Path, rgb: np.ndarray, bits: int, top_down: bool = False, palette: np.ndarray | None = None,
              index: np.ndarray | None = None) -> None:
    h, w = rgb.shape[:2] if index is None else index.shape
    stride = ((w * bits + 31) // 32) * 4
    rows = []
    for y in range(h):
        if bits == 8:
            row = index[y].astype(np.uint8).tobytes()
        elif bits == 24:
            row = rgb[y][:, ::-1].astype(np.uint8).tobytes()
        else:
            bgra = np.concatenate([rgb[y][:, ::-1], np.full((w, 1), 255)], axis=1)
            row = bgra.astype(np.uint8).tobytes()
        rows.append(row + b"\0" * (stride - len(row)))
    if not top_down:
        rows = rows[::-1]
    pal = b""
    if bits == 8:
        pal = b"".join(bytes([b, g, r, 0]) for r, g, b in palette)
    off = 14 + 40 + len(pal)
    data = b"".join(rows)
    hdr = struct.pack("<2sIHHI", b"BM", off + len(data), 0, 0, off)
    info = struct.pack("<IiiHHIIiiII", 40, w, -h if top_down else h, 1, bits, 0, len(data), 2835, 2835,
                       len(palette) if bits == 8 else 0, 0)
    path.write_bytes(hdr + info + pal + data)


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000, bits: int = 16, channels: int = 1) -> None:
    if bits == 16:
        data = samples.astype("<i2").tobytes()
    elif bits == 8:
        data = (samples // 256 + 128).astype(np.uint8).tobytes()
    else:
        data = (samples.astype(np.int32) << 16).astype("<i4").tobytes()
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * bits // 8, channels * bits // 8, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", 4) + b"INFO"          # an extra chunk to skip
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def npy_bytes(a: np.ndarray) -> bytes:
    import io
    f = io.BytesIO()
    np.save(f, a)
    return f.getvalue()


# ---------------------------------------------------------------- tests
def test_image_files(tmp_path):
    rgb = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    pal = RNG.integers(0, 256, size=(16, 3), dtype=np.uint8)
    idx = RNG.integers(0, 16, size=(6, 9), dtype=np.uint8)
    images = []
    files = {
        "rgb24.bmp": (rgb, lambda p: write_bmp(p, rgb, 24)),
        "rgb24_td.bmp": (rgb, lambda p: write_bmp(p, rgb, 24, top_down=True)),
        "rgb32.bmp": (rgb, lambda p: write_bmp(p, rgb, 32)),
        "pal8.bmp": (pal[idx], lambda p: write_bmp(p, None, 8, palette=pal, index=idx)),
        "gray.pgm": (None, None),
        "color.ppm": (rgb, lambda p: p.write_bytes(b"P6\n# comment\n7 5\n255\n" + rgb.tobytes())),
        "frame.rgb565": (rgb, lambda p: p.write_bytes(to_rgb565(rgb).tobytes())),
    }
    gray = RNG.integers(0, 256, size=(4, 6), dtype=np.uint8)
    for name, (src, writer) in files.items():
        p = tmp_path / name
        if name == "gray.pgm":
            p.write_bytes(b"P5 6 4 255\n" + gray.tobytes())
            src = np.stack([gray] * 3, axis=-1)
        else:
            writer(p)
        size = [7, 5] if name.endswith(".rgb565") else None
        for fmt in ("gray", "rgb565", "rgb888"):
            want = convert(src, fmt)
            if name.endswith(".rgb565") and fmt != "rgb565":
                # through RGB565: channels expanded back to 8 bits by bit replication
                v = to_rgb565(src).astype(np.int32)
                v = (v[..., 0] << 8) | v[..., 1]
                r, g, b = (v >> 11) & 31, (v >> 5) & 63, v & 31
                e = np.stack([(r << 3) | (r >> 2), (g << 2) | (g >> 4), (b << 3) | (b >> 2)], axis=-1)
                want = convert(e, fmt)
            images.append([str(p), fmt, size, crc(want)])
    hostrun.run_device("mp_sensors.py", {"only": ["test_images"], "images": images})


def test_shared_person_bmps():
    files = [str(shared_path("data", "person_detection", n)) for n in ("person.bmp", "no_person.bmp")]
    images = []
    for f in files:
        raw = Path(f).read_bytes()
        off = struct.unpack_from("<I", raw, 10)[0]
        pal = np.frombuffer(raw[54:off], np.uint8).reshape(-1, 4)[:, 2::-1]     # BGRX -> RGB
        idx = np.frombuffer(raw[off:off + 96 * 96], np.uint8).reshape(96, 96)[::-1]
        rgb = pal[idx]
        assert (pal[:, 0] == np.arange(256)).all()          # grayscale identity palette
        images.append([f, "gray", None, crc(to_gray(rgb).tobytes())])
        images.append([f, "rgb888", None, crc(rgb.tobytes())])
    hostrun.run_device("mp_sensors.py", {"only": ["test_images", "test_replay_camera_loop_and_eod"],
                                         "images": images, "camera_files": files})


def _wav_expect(p: Path) -> list:
    raw = p.read_bytes()
    i = raw.index(b"data")
    n = struct.unpack_from("<I", raw, i + 4)[0] // 2
    s = np.frombuffer(raw[i + 8:i + 8 + 2 * n], "<i2")
    padded = np.concatenate([s, np.zeros(-n % 320, np.int16)])
    return [str(p), n, crc(padded.tobytes())]


def test_wav_replay_shared():
    names = ["yes_1000ms.wav", "no_1000ms.wav", "noise_1000ms.wav", "silence_1000ms.wav"]
    wavs = [_wav_expect(shared_path("data", "speech", n)) for n in names]
    hostrun.run_device("mp_sensors.py", {"only": ["test_wav", "test_wav_direct_read_allocates_nothing"],
                                         "wavs": wavs})


def test_wav_replay_formats(tmp_path):
    wavs = []
    tone = (np.sin(np.arange(1001) * 0.05) * 12000).astype(np.int16)
    for bits, ch in ((16, 1), (8, 2), (32, 1)):
        p = tmp_path / f"tone_{bits}_{ch}.wav"
        x = tone if ch == 1 else np.stack([tone, -tone], axis=1).ravel()
        write_wav(p, x, bits=bits, channels=ch)
        want = tone if bits != 8 else ((tone // 256) * 256).astype(np.int16)
        padded = np.concatenate([want, np.zeros(-len(want) % 320, np.int16)])
        wavs.append([str(p), len(tone), crc(padded.astype("<i2").tobytes())])
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    write_wav(a, np.arange(130, dtype=np.int16))
    write_wav(b, -np.arange(77, dtype=np.int16))
    hostrun.run_device("mp_sensors.py", {"only": ["test_wav", "test_wav_sequence_gap_loop",
                                                  "test_wav_direct_read_allocates_nothing"],
                                         "wavs": wavs, "wav_seq": [str(a), str(b)]})


def test_series_and_board_drivers(tmp_path):
    imu = RNG.integers(-32768, 32768, size=(9, 6)).astype(np.int16)
    (tmp_path / "imu.npy").write_bytes(npy_bytes(imu))
    small = imu[:4]
    lines = ["ax,ay,az,gx,gy,gz"] + [",".join(str(v) for v in r) for r in small]
    (tmp_path / "imu.csv").write_text("\n".join(lines) + "\n")
    adc = RNG.integers(0, 65536, size=(20,)).astype(np.uint16)
    (tmp_path / "adc.npy").write_bytes(npy_bytes(adc))
    args = {
        "npy": str(tmp_path / "imu.npy"), "npy_shape": [9, 6], "npy_crc": crc(imu.tobytes()),
        "csv": str(tmp_path / "imu.csv"), "csv_shape": [4, 6], "csv_values": small.ravel().tolist(),
        "adc_npy": str(tmp_path / "adc.npy"), "adc_first8": adc[:8].tolist(),
        "here": str(Path(__file__).parent / "device"),
        "only": ["test_npy_csv_series", "test_faulty_wrapper", "test_mpu6050_fake_bus",
                 "test_i2s_microphone_blocking_and_irq", "test_camera_board_drivers", "test_adc_board_driver"],
    }
    r = hostrun.run_device("mp_sensors.py", args)
    assert len(r.passed) == 6, r.stdout


@pytest.mark.parametrize("fortran", [False])
def test_npy_header_variants(tmp_path, fortran):
    # float32 3-D array and a 1-D float64 array read back exactly (through the IMU/ADC series path)
    a = RNG.standard_normal((2, 3, 6)).astype(np.float32)
    (tmp_path / "f.npy").write_bytes(npy_bytes(a))
    script = tmp_path / "npy_check.py"
    script.write_text(
        "from mpyml.sensors.replay import load_npy, load_series\n"
        f"shape, arr = load_npy({str(tmp_path / 'f.npy')!r})\n"
        "print('SHAPE', shape, len(arr))\n"
        f"rows, cols, s = load_series({str(tmp_path / 'f.npy')!r}, 'f')\n"
        "print('SERIES', rows, cols, '%.6f' % s[7])\n")
    r = hostrun.run_device(script)
    assert "SHAPE (2, 3, 6) 36" in r.stdout
    assert f"SERIES 2 18 {a.ravel()[7]:.6f}" in r.stdout
