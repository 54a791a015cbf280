# mpyml.sensors.imu: 6-axis IMU samples from an MPU6050 over I2C or from CSV/NPY files.
#
#   imu = MPU6050(I2C(0, scl=Pin(22), sda=Pin(21)))     # board
#   imu = ReplayIMU("walk.csv")                          # file: rows of ax,ay,az,gx,gy,gz
#   s = array.array("h", bytes(12))
#   imu.read_into(s)                                     # raw int16 counts: ax ay az gx gy gz
#
# Both produce raw sensor counts (MPU6050 units): accel_lsb counts per g, gyro_lsb counts per deg/s,
# so models trained on replayed data see the same numbers on the board.
from . import SensorError
from .replay import ReplaySeries

_PWR_MGMT_1 = 0x6B
_SMPLRT_DIV = 0x19
_CONFIG = 0x1A
_GYRO_CONFIG = 0x1B
_ACCEL_CONFIG = 0x1C
_ACCEL_XOUT_H = 0x3B
_WHO_AM_I = 0x75

_ACCEL_LSB = {2: 16384, 4: 8192, 8: 4096, 16: 2048}          # counts per g
_GYRO_LSB10 = {250: 1310, 500: 655, 1000: 328, 2000: 164}     # counts per deg/s, x10


def _s16(hi, lo):
    v = (hi << 8) | lo
    return v - 65536 if v & 0x8000 else v


class MPU6050:
    """InvenSense MPU6050/MPU6500 accelerometer + gyroscope on I2C (address 0x68 or 0x69)."""

    columns = ("ax", "ay", "az", "gx", "gy", "gz")

    def __init__(self, i2c, addr=0x68, accel_g=2, gyro_dps=250, dlpf=3, rate_div=4):
        if accel_g not in _ACCEL_LSB or gyro_dps not in _GYRO_LSB10:
            raise ValueError("accel_g must be 2/4/8/16, gyro_dps 250/500/1000/2000")
        self.i2c = i2c
        self.addr = addr
        self.accel_g = accel_g
        self.gyro_dps = gyro_dps
        self.accel_lsb = _ACCEL_LSB[accel_g]
        self.gyro_lsb = _GYRO_LSB10[gyro_dps] / 10
        self.cols = 6
        self._dlpf = dlpf
        self._div = rate_div
        self._raw = bytearray(14)
        self._b1 = bytearray(1)
        self.reads = 0
        self.init()

    def _w(self, reg, val):
        self._b1[0] = val
        self.i2c.writeto_mem(self.addr, reg, self._b1)

    def init(self):
        try:
            who = self.i2c.readfrom_mem(self.addr, _WHO_AM_I, 1)[0]
        except OSError as e:
            raise SensorError(19, "MPU6050 not found at 0x%02x (%s)" % (self.addr, e))
        if who not in (0x68, 0x70, 0x71, 0x72, 0x73, 0x98):
            raise SensorError(19, "device at 0x%02x is not an MPU6050 (WHO_AM_I=0x%02x)" % (self.addr, who))
        self._w(_PWR_MGMT_1, 0x01)                    # wake up, PLL with X-gyro reference
        self._w(_SMPLRT_DIV, self._div)               # 1 kHz / (1 + div) with the DLPF on
        self._w(_CONFIG, self._dlpf)
        self._w(_GYRO_CONFIG, {250: 0, 500: 1, 1000: 2, 2000: 3}[self.gyro_dps] << 3)
        self._w(_ACCEL_CONFIG, {2: 0, 4: 1, 8: 2, 16: 3}[self.accel_g] << 3)

    reinit = init

    def read_into(self, buf):
        """ax ay az gx gy gz (raw int16 counts) into buf[0:6]. Returns 6. Allocates nothing."""
        r = self._raw
        self.i2c.readfrom_mem_into(self.addr, _ACCEL_XOUT_H, r)
        buf[0] = _s16(r[0], r[1])
        buf[1] = _s16(r[2], r[3])
        buf[2] = _s16(r[4], r[5])
        buf[3] = _s16(r[8], r[9])                     # r[6:8] is the temperature
        buf[4] = _s16(r[10], r[11])
        buf[5] = _s16(r[12], r[13])
        self.reads += 1
        return 6

    def temperature(self):
        r = self._raw
        self.i2c.readfrom_mem_into(self.addr, _ACCEL_XOUT_H, r)
        return _s16(r[6], r[7]) / 340 + 36.53

    def close(self):
        try:
            self._w(_PWR_MGMT_1, 0x40)                # sleep
        except OSError:
            pass


class ReplayIMU(ReplaySeries):
    """IMU samples from a CSV/NPY table with 6 columns (ax ay az gx gy gz) or 3 (accelerometer).

    Values are raw counts (int16 typecode by default) like MPU6050.read_into. loop=True wraps.
    """

    columns = ("ax", "ay", "az", "gx", "gy", "gz")

    def __init__(self, path_or_data, typecode="h", loop=True, rate=100, accel_lsb=16384, gyro_lsb=131.0,
                 cols=None):
        ReplaySeries.__init__(self, path_or_data, typecode, loop, cols)
        if self.cols not in (3, 6):
            raise ValueError("IMU replay needs 3 or 6 columns, got %d" % self.cols)
        self.rate = rate
        self.accel_lsb = accel_lsb
        self.gyro_lsb = gyro_lsb
