# Gesture recognition: MPU6050 at 50 Hz -> 1 s sliding window (50 x 6) -> int8 CNN -> gestures.
#
# Board (ESP32 / RP2040 + MPU6050 on I2C; gesture.mpk + mpyml copied):
#   main.py runs at boot, or `import main; main.run(scl=22, sda=21)`
# Unix port, replaying a recording (CSV: ax,ay,az,gx,gy,gz raw counts, 50 Hz):
#   micropython main.py --model gesture.mpk replay.csv
# Prints "GESTURE label=<label> score=<avg int8> at_ms=<time of the sample>" per recognized gesture.
import array
import sys

import mpyml
from mpyml.app import App, RecognizeCommands
from mpyml.pre.quant import Quantizer
from mpyml.sensors.imu import MPU6050, ReplayIMU

LABELS = ("idle", "shake", "circle", "punch")
RATE = 50                                   # Hz
WIN = 50                                    # 1 s window
SCALE = (1 / 16384, 1 / 16384, 1 / 16384, 1 / (131 * 250), 1 / (131 * 250), 1 / (131 * 250))


class WindowPre:
    """Keep the last WIN samples; every `stride` samples quantize the window (oldest first, per-axis
    scaling to g and 250 deg/s) into the model input."""

    def __init__(self, model, stride):
        self.ring = array.array("h", bytes(2 * 6 * WIN))
        self.pos = 0
        self.n = 0
        self.stride = stride
        self.q = Quantizer(model.input, a=SCALE, channels=6)
        self.inp = model.input.buffer

    def __call__(self, s, model):
        r = self.ring
        o = self.pos * 6
        for j in range(6):
            r[o + j] = s[j]
        p = self.pos + 1
        self.pos = 0 if p == WIN else p
        self.n += 1
        if self.n < WIN or self.n % self.stride:
            return False
        k = (WIN - self.pos) * 6
        self.q(r, self.inp, self.pos * 6, k, 0)
        if self.pos:
            self.q(r, self.inp, 0, self.pos * 6, k)
        return True


def make_app(model="models/gesture.mpk", replay=None, stride=5, threshold=0.7, scl=22, sda=21, verbose=True):
    m = mpyml.load(model)
    if replay:
        imu = ReplayIMU(replay, loop=False, rate=RATE)
        period = 0
    else:
        from machine import I2C, Pin
        imu = MPU6050(I2C(0, scl=Pin(scl), sda=Pin(sda), freq=400000), accel_g=2, gyro_dps=250, rate_div=19)
        period = 1000 // RATE
    sample = array.array("h", bytes(12))
    pre = WindowPre(m, stride)
    # 3 results averaged (300 ms); one event per gesture (at least 1 s apart); "idle" never fires
    post = RecognizeCommands(m, window=3, threshold=threshold, suppression=RATE // stride, minimum_count=2,
                             ignore=(0,), repeat=False)

    def act(event, app):
        if verbose:
            print("GESTURE label=%s score=%d at_ms=%d" % (LABELS[event], post.score, pre.n * 1000 // RATE))

    return App(imu, sample, model=m, pre=pre, post=post, act=act, period_ms=period, name="gesture")


def run(model="models/gesture.mpk", replay=None, cycles=0, **kw):
    app = make_app(model, replay, **kw)
    app.run(cycles=cycles)
    app.print_stats()
    return app


if __name__ == "__main__":
    a = sys.argv[1:]
    if sys.platform in ("linux", "darwin") and a:
        model = a[a.index("--model") + 1] if "--model" in a else "models/gesture.mpk"
        files = [f for i, f in enumerate(a) if f != "--model" and (i == 0 or a[i - 1] != "--model")]
        run(model, files[0] if files else None)
    else:
        run()
