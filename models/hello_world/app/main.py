# Hello world: a knob (ADC) -> angle -> the int8 sine model -> LED brightness.
#
# Board (any MicroPython board with an ADC pin and a PWM-capable LED; sine.mpk + mpyml copied):
#   main.py runs at boot, or `import main; main.run(adc_pin=26, led_pin=25)`
# Unix port, replaying a sweep of ADC counts (build/models/hello_world/sweep.npy):
#   micropython main.py --model sine.mpk sweep.npy
# Prints "SINE x=<angle> y=<model output>" per reading.
import array
import math
import sys

import mpyml
from mpyml.app import App
from mpyml.pre.quant import Quantizer
from mpyml.sensors.adc import ADC, ReplayADC


def _s8(b):
    return b - 256 if b > 127 else b


class Sine:
    """Postprocessing: dequantized y; always an event (the value to show)."""

    def __init__(self, model, raw, verbose):
        self.o = model.output
        self.raw = raw
        self.verbose = verbose
        self.y = 0.0

    def __call__(self, model):
        o = self.o
        self.y = (_s8(o.buffer[0]) - o.zero_point) * o.scale
        if self.verbose:
            print("SINE x=%.4f y=%.4f" % (self.raw[0] * 2 * math.pi / 65536, self.y))
        return self.y


def make_app(model="models/sine.mpk", sweep=None, adc_pin=26, led_pin=None, period_ms=0, verbose=True):
    m = mpyml.load(model)
    adc = ReplayADC(sweep, loop=False) if sweep else ADC(adc_pin, rate=0)
    raw = array.array("H", [0])
    # angle = counts * 2 pi / 65536, quantized straight from the counts into the model input
    q = Quantizer(m.input, a=2 * math.pi / 65536, x_max=65535)

    def pre(raw_buf, model):
        q(raw_buf, model.input.buffer)

    post = Sine(m, raw, verbose)
    pwm = None
    if led_pin is not None:
        from machine import PWM, Pin
        pwm = PWM(Pin(led_pin), freq=1000)

    def act(y, app):
        if pwm is not None:
            pwm.duty_u16(int((y + 1) * 32767))

    return App(adc, raw, model=m, pre=pre, post=post, act=act, period_ms=period_ms, name="hello_world")


def run(model="models/sine.mpk", sweep=None, adc_pin=26, led_pin=None, period_ms=0, cycles=0):
    app = make_app(model, sweep, adc_pin, led_pin, period_ms)
    app.run(cycles=cycles)
    app.print_stats()
    return app


if __name__ == "__main__":
    a = sys.argv[1:]
    if sys.platform in ("linux", "darwin") and a:
        model = a[a.index("--model") + 1] if "--model" in a else "models/sine.mpk"
        files = [f for i, f in enumerate(a) if f != "--model" and (i == 0 or a[i - 1] != "--model")]
        run(model, files[0] if files else None)
    else:
        run(led_pin=25, period_ms=50)
