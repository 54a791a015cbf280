# mpyml.sensors.adc: analog samples (vibration, current, light...) from machine.ADC or CSV/NPY files.
#
#   adc = ADC(34, rate=1000)                 # board: machine.ADC on a pin, read_u16 (0..65535)
#   adc = ReplayADC("vibration.npy")         # file: one value per row (or rows of several channels)
#   block = array.array("H", bytes(2 * 256))
#   adc.read_into(block)                     # fill the whole buffer, paced at `rate` Hz
import time

from .replay import ReplaySeries


class ADC:
    """machine.ADC sampled into a buffer at a fixed rate (busy-waits between samples)."""

    def __init__(self, pin, rate=1000, atten=None, adc=None):
        if adc is None:
            import machine
            p = machine.Pin(pin) if isinstance(pin, int) else pin
            adc = machine.ADC(p) if atten is None else machine.ADC(p, atten=atten)
        self.adc = adc
        self.rate = rate
        self.cols = 1
        self.period_us = 1000000 // rate if rate else 0
        self.reads = 0

    def read_into(self, buf):
        """len(buf) samples (0..65535) into buf, one every period_us. Returns len(buf)."""
        rd = self.adc.read_u16
        per = self.period_us
        n = len(buf)
        t = time.ticks_us()
        for i in range(n):
            buf[i] = rd()
            if per and i + 1 < n:
                t = time.ticks_add(t, per)
                while time.ticks_diff(t, time.ticks_us()) > 0:
                    pass
        self.reads += 1
        return n

    def close(self):
        pass


class ReplayADC(ReplaySeries):
    """ADC samples from a CSV/NPY table; read_into(buf) fills all of buf (rows x cols, row-major)."""

    def __init__(self, path_or_data, typecode="H", loop=True, rate=1000, cols=None):
        ReplaySeries.__init__(self, path_or_data, typecode, loop, cols)
        self.rate = rate

    def read_into(self, buf):
        n = len(buf) // self.cols
        self.read_block(buf, n)
        return n * self.cols
