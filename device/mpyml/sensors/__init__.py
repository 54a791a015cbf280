# mpyml.sensors: board drivers and file replays behind one small interface.
#
# Every sensor object has
#   read_into(buf) -> n   fill a caller-owned, preallocated buffer; returns items written
#   close()               release the hardware / file
# plus a few attributes describing what it produces (width/height/fmt for cameras, rate for
# microphones, columns for series). Board drivers and replays of the same kind are
# interchangeable, so an app developed on the unix port with replay data runs unchanged on a board.
#
# Errors: a failed read raises SensorError (an OSError subclass); the super-loop counts it and
# retries. The end of a replay raises EndOfData, which stops the loop cleanly.
#
#   camera.py      Camera (ESP32-CAM `camera` module), ReplayCamera (BMP / PGM / raw files)
#   microphone.py  Microphone (machine.I2S, 16 kHz mono 16-bit, ring of chunks), ReplayMicrophone (WAV)
#   imu.py         MPU6050 (I2C), ReplayIMU (CSV / NPY)
#   adc.py         ADC (machine.ADC), ReplayADC (CSV / NPY)
#   replay.py      file readers (BMP, PGM, WAV, NPY, CSV), ReplaySeries, Faulty (fault injection)

# Pixel formats of camera frames (and of the image preprocessing functions in mpyml.pre).
GRAY = 0        # 1 byte per pixel
RGB565 = 1      # 2 bytes per pixel, big-endian (as ESP32 camera drivers deliver it)
RGB888 = 2      # 3 bytes per pixel, R G B

_BPP = (1, 2, 3)


def bytes_per_pixel(fmt):
    return _BPP[fmt]


class SensorError(OSError):
    """A sensor read failed (bus error, timeout, short read...). The loop counts it and retries."""


class EndOfData(Exception):
    """A replay sensor has no more data (and was not asked to loop)."""


class Copier:
    """Copy a buffer into a caller's buffer without allocating: slice assignment into an array
    allocates on MicroPython, into a memoryview it does not, so the view of the last destination
    is cached (allocation only when the destination changes). Item types must match."""

    def __init__(self):
        self.dst = None
        self.mv = None

    def copy(self, dst, src):
        if dst is not self.dst:
            self.dst = dst
            self.mv = memoryview(dst)
        self.mv[:] = src
