# mpyml.sensors.microphone: 16 kHz mono 16-bit audio from an I2S microphone or from WAV files.
#
#   mic = Microphone(sck=Pin(14), ws=Pin(15), sd=Pin(32))    # board: machine.I2S
#   mic = ReplayMicrophone(["yes.wav", "no.wav"])             # files
#   chunk = array.array("h", bytes(2 * mic.chunk))
#   mic.read_into(chunk)                                      # next mic.chunk samples (int16)
#
# Audio arrives in fixed-size chunks (default 320 samples = 20 ms = one MFCC hop at 16 kHz). The
# board driver keeps a ring of chunk buffers: in mode="irq" the I2S peripheral fills them in the
# background (non-blocking machine.I2S with a callback), so inference can run while audio keeps
# coming; read_into() takes the oldest chunk (an overrun drops the oldest chunk and is counted).
# In mode="blocking", read_into() reads the next chunk straight from I2S.
# MEMS microphones that send 32-bit slots (INMP441, SPH0645...) use bits=32: samples are shifted
# down by `shift` bits into int16 (C fast path when mpyml_engine has it).
import array

from . import Copier, EndOfData, SensorError
from .replay import _pcm_to_i16, read_wav


def _i32_to_i16_py(src, dst, shift, n):
    for i in range(n):
        q = 4 * i
        v = src[q] | (src[q + 1] << 8) | (src[q + 2] << 16) | (src[q + 3] << 24)
        if v & 0x80000000:
            v -= 0x100000000
        v >>= shift
        dst[i] = -32768 if v < -32768 else (32767 if v > 32767 else v)


def _i32_to_i16():
    try:
        import mpyml_engine
        return mpyml_engine.pre_i32_to_i16
    except (ImportError, AttributeError):
        return _i32_to_i16_py


def _noop():
    pass


class Microphone:
    """I2S microphone (machine.I2S RX, mono). rate 16000, 16-bit samples out."""

    def __init__(self, id=0, sck=None, ws=None, sd=None, rate=16000, bits=16, chunk=320, chunks=8,
                 shift=None, mode="irq", ibuf=None, i2s=None):
        self.rate = rate
        self.chunk = chunk
        self.bits = bits
        self.shift = (14 if bits == 32 else 0) if shift is None else shift
        self.mode = mode
        self.overruns = 0
        self.reads = 0
        self._n = chunks
        self._ring = [array.array("h", bytes(2 * chunk)) for _ in range(chunks)]
        self._raw = [bytearray(4 * chunk) for _ in range(chunks)] if bits == 32 else None
        self._slot_bytes = chunk * (4 if bits == 32 else 2)
        self._w = 0          # chunks completed by the I2S callback (total)
        self._r = 0          # chunks consumed (total)
        self._conv = _i32_to_i16()
        self._copier = Copier()
        try:
            import machine
            self._idle = machine.idle
        except (ImportError, AttributeError):
            self._idle = _noop
        if i2s is None:
            from machine import I2S
            i2s = I2S(id, sck=sck, ws=ws, sd=sd, mode=I2S.RX, bits=bits, format=I2S.MONO, rate=rate,
                      ibuf=ibuf or 4 * chunk * (4 if bits == 32 else 2))
        self._i2s = i2s
        if mode == "irq":
            self._cb = self._on_chunk          # bound once: no allocation per callback
            i2s.irq(self._cb)
            self._start_read()

    def _slot(self, k):
        return self._raw[k] if self._raw is not None else self._ring[k]

    def _start_read(self):
        self._i2s.readinto(self._slot(self._w % self._n))

    def _on_chunk(self, _):
        k = self._w % self._n
        if self._raw is not None:
            self._conv(self._raw[k], self._ring[k], self.shift, self.chunk)
        self._w += 1
        if self._w - self._r > self._n - 1:    # keep one slot free for the running read
            self._r += 1
            self.overruns += 1
        self._start_read()

    def available(self):
        """Complete chunks waiting to be read."""
        return self._w - self._r

    def read_into(self, buf):
        """Next chunk of int16 samples into buf (array('h') of chunk samples). Returns chunk."""
        if self.mode == "irq":
            while self._w == self._r:          # wait for the background read
                self._idle()
            k = self._r % self._n
            self._copier.copy(buf, self._ring[k])
            self._r += 1
        else:
            slot = self._slot(0)
            n = self._i2s.readinto(slot)
            if n is not None and n < self._slot_bytes:
                raise SensorError(5, "I2S microphone: short read")
            if self._raw is not None:
                self._conv(slot, self._ring[0], self.shift, self.chunk)
                slot = self._ring[0]
            self._copier.copy(buf, slot)
        self.reads += 1
        return self.chunk

    def close(self):
        try:
            self._i2s.deinit()
        except Exception:
            pass


class ReplayMicrophone:
    """Audio from WAV files (PCM 8/16/24/32-bit, channel 0), chunk samples per read.

    paths: one file or a list, played one after the other with gap samples of silence between
    them. The last chunk of the last file is padded with zeros; after it read_into raises
    EndOfData, or starts over when loop=True. `current` is the file being played.
    Mono 16-bit files are read straight into the caller's buffer: nothing is allocated per read.
    """

    def __init__(self, paths, chunk=320, rate=16000, loop=False, gap=0):
        if isinstance(paths, str):
            paths = [paths]
        self.paths = list(paths)
        self.chunk = chunk
        self.rate = rate
        self.loop = loop
        self.gap = gap
        self.reads = 0
        self.samples = 0
        self._scratch = None
        self._f = None
        self._k = -1
        self._gap_left = 0
        self._open(0)

    def _open(self, k):
        if self._f is not None:
            self._f.close()
        self._k = k
        f = open(self.paths[k], "rb")
        try:
            info = read_wav(f)
        except Exception:
            f.close()
            raise
        if info.rate != self.rate:
            f.close()
            raise ValueError("%s: %d Hz, the microphone replays %d Hz" % (self.paths[k], info.rate, self.rate))
        self._f = f
        self._info = info
        self._left = info.frames
        self._direct = info.channels == 1 and info.bits == 16
        if not self._direct and self._scratch is None:
            self._scratch = bytearray(self.chunk * 8)

    @property
    def current(self):
        return self.paths[self._k]

    def _fill(self, buf, start, n):
        """Up to n samples of the current file into buf[start:]; returns samples written."""
        n = min(n, self._left)
        if n <= 0:
            return 0
        info = self._info
        if self._direct:
            if start == 0 and n == len(buf):
                got = self._f.readinto(buf) // 2
            else:
                got = self._f.readinto(memoryview(buf)[start:start + n]) // 2
        else:
            fb = info.channels * (info.bits // 8)
            raw = self._scratch
            got = 0
            while got < n:
                m = min(n - got, len(raw) // fb)
                r = self._f.readinto(memoryview(raw)[0:m * fb]) // fb
                if r <= 0:
                    break
                tmp = array.array("h", bytes(2 * r))
                _pcm_to_i16(raw, info.channels, info.bits, tmp, r)
                for i in range(r):
                    buf[start + got + i] = tmp[i]
                got += r
        self._left -= got
        if got < n:
            self._left = 0                       # truncated data chunk
        return got

    def read_into(self, buf):
        """Next chunk of int16 samples into buf (len(buf) == chunk). Returns chunk."""
        if self._f is None:
            raise EndOfData()
        n = self.chunk
        pos = 0
        while pos < n:
            if self._gap_left > 0:
                g = min(self._gap_left, n - pos)
                for i in range(pos, pos + g):
                    buf[i] = 0
                self._gap_left -= g
                pos += g
                continue
            got = self._fill(buf, pos, n - pos)
            pos += got
            if self._left <= 0 and pos < n:
                if self._k + 1 < len(self.paths):
                    self._open(self._k + 1)
                    self._gap_left = self.gap
                elif self.loop:
                    self._open(0)
                    self._gap_left = self.gap
                elif pos == 0:
                    self._f.close()
                    self._f = None
                    raise EndOfData()
                else:
                    for i in range(pos, n):      # pad the last chunk
                        buf[i] = 0
                    pos = n
                    self._f.close()
                    self._f = None
        self.reads += 1
        self.samples += n
        return n

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None
