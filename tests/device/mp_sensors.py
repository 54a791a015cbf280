# Device-side tests of mpyml.sensors (run under the MicroPython unix port by tests/test_sensors.py).
# Expected values (CRCs of decoded frames/samples) are computed by the host with NumPy.
import array
import sys

import mptest
from binascii import crc32
from heapcheck import allocates
from mptest import arg, eq, raises

from mpyml.sensors import GRAY, RGB565, RGB888, EndOfData, SensorError
from mpyml.sensors.adc import ADC, ReplayADC
from mpyml.sensors.camera import Camera, ReplayCamera
from mpyml.sensors.imu import MPU6050, ReplayIMU
from mpyml.sensors.microphone import Microphone, ReplayMicrophone
from mpyml.sensors.replay import Faulty, load_csv, load_npy, load_wav

FMTS = {"gray": GRAY, "rgb565": RGB565, "rgb888": RGB888}


def test_images():
    for path, fmt, size, crc in arg("images", []):
        cam = ReplayCamera(path, FMTS[fmt], size=size)
        buf = bytearray(cam.frame_bytes)
        eq(cam.read_into(buf), cam.frame_bytes, path)
        eq(crc32(buf) & 0xFFFFFFFF, crc, "%s as %s" % (path, fmt))


def test_replay_camera_loop_and_eod():
    files = arg("camera_files")
    cam = ReplayCamera(files, GRAY, loop=False)
    eq((cam.width, cam.height), (96, 96))
    buf = bytearray(cam.frame_bytes)
    seen = []
    for _ in range(len(files)):
        cam.read_into(buf)
        seen.append(cam.current)
    eq(seen, files)
    raises(EndOfData, cam.read_into, buf)
    cam2 = ReplayCamera(files, GRAY, loop=True)
    for _ in range(2 * len(files) + 1):
        cam2.read_into(buf)
    eq(cam2.current, files[0])
    eq(allocates(cam2.read_into, buf), False, "ReplayCamera.read_into allocates")


def test_wav():
    for path, n, crc in arg("wavs", []):
        mic = ReplayMicrophone(path, chunk=320)
        chunk = array.array("h", bytes(640))
        total = array.array("h")
        reads = 0
        while True:
            try:
                mic.read_into(chunk)
            except EndOfData:
                break
            total.extend(chunk)
            reads += 1
        eq(reads, (n + 319) // 320, path + " chunks")
        eq(crc32(total) & 0xFFFFFFFF, crc, path + " samples")
        rate, whole = load_wav(path)
        eq(len(whole), n)


def test_wav_sequence_gap_loop():
    a, b = arg("wav_seq")
    mic = ReplayMicrophone([a, b], chunk=100, gap=50, loop=True)
    ra, wa = load_wav(a)
    rb, wb = load_wav(b)
    want = list(wa) + [0] * 50 + list(wb) + [0] * 50 + list(wa)
    got = []
    chunk = array.array("h", bytes(200))
    for _ in range((len(want) + 99) // 100):
        mic.read_into(chunk)
        got.extend(chunk)
    eq(got[:len(want)], want, "sequence with gaps")


def test_wav_direct_read_allocates_nothing():
    path = arg("wavs")[0][0]
    mic = ReplayMicrophone(path, chunk=320, loop=True)
    chunk = array.array("h", bytes(640))
    mic.read_into(chunk)
    eq(allocates(mic.read_into, chunk), False, "ReplayMicrophone.read_into allocates")


def test_npy_csv_series():
    shape, arr = load_npy(arg("npy"))
    eq(list(shape), arg("npy_shape"))
    eq(crc32(arr) & 0xFFFFFFFF, arg("npy_crc"))
    rows, cols, vals = load_csv(arg("csv"), "h")
    eq((rows, cols), tuple(arg("csv_shape")))
    eq(list(vals), arg("csv_values"))
    imu = ReplayIMU(arg("csv"), loop=False)
    s = array.array("h", bytes(12))
    for r in range(rows):
        imu.read_into(s)
        eq(list(s), arg("csv_values")[6 * r:6 * r + 6])
    raises(EndOfData, imu.read_into, s)
    imu2 = ReplayIMU(arg("npy"))
    imu2.read_into(s)
    eq(allocates(imu2.read_into, s), False, "ReplayIMU.read_into allocates")
    adc = ReplayADC(arg("adc_npy"), loop=True)
    block = array.array("H", bytes(2 * 8))
    adc.read_into(block)
    eq(list(block), arg("adc_first8"))
    eq(allocates(adc.read_into, block), False, "ReplayADC.read_into allocates")


def test_faulty_wrapper():
    imu = Faulty(ReplayIMU(arg("csv")), fail_at=(1,), fail_every=4)
    s = array.array("h", bytes(12))
    ok = fail = 0
    for _ in range(8):
        try:
            imu.read_into(s)
            ok += 1
        except SensorError:
            fail += 1
    eq((ok, fail), (5, 3))
    eq(imu.failures, 3)


def test_mpu6050_fake_bus():
    import fakes
    samples = [(100, -200, 16384, 5, -6, 7), (-32768, 32767, 0, 1, 2, 3)]
    bus = fakes.FakeMPU6050Bus(samples, fail_at=(3,))
    imu = MPU6050(bus, accel_g=4, gyro_dps=500)
    eq(bus.regs[0x6B], 0x01, "woken up")
    eq(bus.regs[0x1C], 1 << 3, "accel range")
    eq(bus.regs[0x1B], 1 << 3, "gyro range")
    eq(imu.accel_lsb, 8192)
    s = array.array("h", bytes(12))
    imu.read_into(s)
    eq(tuple(s), samples[0])
    imu.read_into(s)
    eq(tuple(s), samples[1])
    eq(allocates(imu.read_into, s), False, "MPU6050.read_into allocates")
    raises(OSError, imu.read_into, s)               # injected bus error
    raises(SensorError, MPU6050, fakes.FakeMPU6050Bus(samples, addr=0x69))
    raises(SensorError, MPU6050, fakes.FakeMPU6050Bus(samples, who=0x12))


def test_i2s_microphone_blocking_and_irq():
    import fakes
    wave = [((i * 37) % 2000) - 1000 for i in range(1000)]
    for bits in (16, 32):
        mic = Microphone(i2s=fakes.FakeI2S(wave, bits), bits=bits, chunk=100, mode="blocking", shift=16)
        chunk = array.array("h", bytes(200))
        mic.read_into(chunk)
        eq(list(chunk), wave[:100], "blocking %d-bit" % bits)
        mic.read_into(chunk)
        eq(list(chunk), wave[100:200])
    i2s = fakes.FakeI2S(wave, 16)
    mic = Microphone(i2s=i2s, chunk=100, chunks=4, mode="irq")
    i2s.run_dma(2)
    eq(mic.available(), 2)
    mic.read_into(chunk)
    eq(list(chunk), wave[:100], "irq chunk 0")
    i2s.run_dma(5)                                   # more than the ring holds: overruns
    eq(mic.overruns, 3)
    mic.read_into(chunk)
    eq(list(chunk), wave[400:500], "oldest chunk kept after overrun")
    i2s.run_dma(1)
    eq(allocates(mic.read_into, chunk), False, "Microphone.read_into allocates")
    mic.close()
    eq(i2s.deinited, True)


def test_camera_board_drivers():
    for d, api in (("fake_lemariva", "lemariva"), ("fake_cnadler", "cnadler")):
        sys.path.insert(0, mptest.arg("here") + "/" + d)
        try:
            if "camera" in sys.modules:
                del sys.modules["camera"]
            cam = Camera(GRAY, (96, 96))
            buf = bytearray(cam.frame_bytes)
            eq(cam.read_into(buf), 96 * 96)
            eq(buf[0], 1, api)
            eq(buf[1], (7 + 1) & 0xFF if api == "lemariva" else 4, api)
            if api == "lemariva":
                import camera
                camera._state["short_every"] = 2
                cam.read_into(buf)                  # 2nd capture short, retried
                eq(cam.short_frames, 1)
                camera._state["short_every"] = 1
                raises(SensorError, cam.read_into, buf)
                camera._state["short_every"] = 0
            cam.close()
            raises(ValueError, Camera, GRAY, (97, 97))
        finally:
            sys.path.pop(0)


def test_adc_board_driver():
    import fakes
    adc = ADC(0, rate=10000, adc=fakes.FakeADC([1, 2, 3, 65535]))
    buf = array.array("H", bytes(10))
    adc.read_into(buf)
    eq(list(buf), [1, 2, 3, 65535, 1])


mptest.main(globals())
