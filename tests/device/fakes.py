import struct

# Fakes of board peripherals (machine.I2C with an MPU6050 on it, machine.I2S, machine.ADC) so the
# board drivers in mpyml.sensors run on the unix port.


class FakeMPU6050Bus:
    """machine.I2C-like bus with an MPU6050 at 0x68; samples come from a list of 6-tuples."""

    def __init__(self, samples, addr=0x68, who=0x68, fail_at=()):
        self.regs = bytearray(128)
        self.regs[0x75] = who
        self.regs[0x6B] = 0x40              # sleeping after power-on
        self.addr = addr
        self.samples = samples
        self.n = 0
        self.fail_at = fail_at
        self.writes = []
        self.blobs = []                     # register bytes 0x3B..0x48 per sample, built once
        for ax, ay, az, gx, gy, gz in samples:
            b = bytearray(14)
            struct.pack_into(">7h", b, 0, ax, ay, az, 1234, gx, gy, gz)
            self.blobs.append(b)

    def _check(self, addr):
        if addr != self.addr:
            raise OSError(19)               # ENODEV: no ACK

    def readfrom_mem(self, addr, reg, n):
        self._check(addr)
        return bytes(self.regs[reg:reg + n])

    def writeto_mem(self, addr, reg, buf):
        self._check(addr)
        self.writes.append((reg, bytes(buf)))
        for i, b in enumerate(buf):
            self.regs[reg + i] = b

    def readfrom_mem_into(self, addr, reg, buf):
        self._check(addr)
        k = self.n
        self.n += 1
        if k in self.fail_at:
            raise OSError(5)                # EIO
        if reg == 0x3B and len(buf) == 14:
            buf[:] = self.blobs[k % len(self.blobs)]      # allocation-free, like the real driver
        else:
            for i in range(len(buf)):
                buf[i] = self.regs[reg + i]


class FakeI2S:
    """machine.I2S-like RX: delivers consecutive samples of a waveform (16- or 32-bit slots)."""

    def __init__(self, samples, bits=16):
        self.samples = samples
        self.bits = bits
        self.pos = 0
        self.cb = None
        self.pending = []
        self.deinited = False

    def irq(self, cb):
        self.cb = cb

    def _fill(self, buf):
        bps = self.bits // 8
        n = len(bytes(buf)) // bps          # byte length (an array('h') counts items)
        for i in range(n):
            v = self.samples[(self.pos + i) % len(self.samples)]
            if self.bits == 32:
                struct.pack_into("<i", buf, 4 * i, v << 16)
            else:
                struct.pack_into("<h", buf, 2 * i, v)
        self.pos += n
        return n * bps

    def readinto(self, buf):
        if self.cb is None:
            return self._fill(buf)
        self.pending.append(buf)             # non-blocking: completes on run_dma()
        return 0

    def run_dma(self, n=1):
        """Complete n pending non-blocking reads (what the I2S DMA + IRQ would do)."""
        for _ in range(n):
            if not self.pending:
                return
            buf = self.pending.pop(0)
            self._fill(buf)
            self.cb(self)

    def deinit(self):
        self.deinited = True


class FakeADC:
    def __init__(self, values):
        self.values = values
        self.n = 0

    def read_u16(self):
        v = self.values[self.n % len(self.values)]
        self.n += 1
        return v
