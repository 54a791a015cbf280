# Person detection: camera -> 96x96 grayscale -> TFLM person-detection model -> "person" events.
#
# Board (ESP32-CAM with a MicroPython firmware that has a `camera` module; mpyml + the model copied to
# the board, see docs/examples.md):   main.py runs at boot, or `import main; main.run()`
# Unix port with replayed images:
#   micropython main.py --model build/models/person_detection/person_detect.mpk person.bmp no_person.bmp
#
# Prints one line per frame:  FRAME name=... person=<int8> not_person=<int8> diff=<person - not_person>
# and one DETECTED line per event; the board's LED lights up while a person is seen.
import sys

import mpyml
from mpyml.app import App
from mpyml.pre.image import ImagePre
from mpyml.sensors import GRAY
from mpyml.sensors.camera import Camera, ReplayCamera

NOT_PERSON = 0
PERSON = 1


def _s8(b):
    return b - 256 if b > 127 else b


class PersonScore:
    """Postprocessing: raw int8 scores; event PERSON when person - not_person > margin."""

    def __init__(self, camera, margin=0, verbose=True, led=None):
        self.camera = camera
        self.led = led
        self.margin = margin
        self.verbose = verbose
        self.person = self.not_person = self.diff = 0
        self.frames = 0

    def __call__(self, model):
        out = model.output.buffer
        self.not_person = _s8(out[NOT_PERSON])
        self.person = _s8(out[PERSON])
        self.diff = self.person - self.not_person
        self.frames += 1
        if self.verbose:
            name = getattr(self.camera, "current", None) or "frame%d" % self.frames
            print("FRAME name=%s person=%d not_person=%d diff=%d" % (name.rsplit("/", 1)[-1], self.person,
                                                                     self.not_person, self.diff))
        seen = self.diff > self.margin
        if self.led is not None:
            self.led.value(1 if seen else 0)          # lit while a person is seen
        return PERSON if seen else None


def make_app(model="models/person_detect.mpk", images=None, margin=0, period_ms=0, wdt_ms=0, led_pin=None,
             verbose=True):
    m = mpyml.load(model)
    if images:
        cam = ReplayCamera(images, GRAY, loop=False)
    else:
        cam = Camera(GRAY, (96, 96))                          # ESP32-CAM, OV2640 grayscale 96x96
    frame = bytearray(cam.frame_bytes)
    h, w = m.input.shape[1], m.input.shape[2]
    # any camera frame size: centred crop to the model's aspect, area-resized to 96x96; pixel - 128
    # (the TFLM example's input convention) written straight into the model's input tensor
    pre = ImagePre((cam.width, cam.height), GRAY, (w, h), GRAY, crop="center", mode="area",
                   target=(1.0, -128), norm=(1.0, 0.0))
    inp = m.input.buffer

    def preprocess(raw, model):
        pre(raw, inp)

    led = None
    if led_pin is not None:
        from machine import Pin
        led = Pin(led_pin, Pin.OUT)

    post = PersonScore(cam, margin, verbose, led)

    def act(event, app):
        if verbose:
            print("DETECTED person diff=%d" % post.diff)

    app = App(cam, frame, model=m, pre=preprocess, post=post, act=act, period_ms=period_ms, wdt_ms=wdt_ms,
              name="person_detection")
    app.score = post
    return app


def run(model="models/person_detect.mpk", images=None, cycles=0, period_ms=500, wdt_ms=0, led_pin=None):
    app = make_app(model, images, period_ms=period_ms, wdt_ms=wdt_ms, led_pin=led_pin)
    app.run(cycles=cycles)
    app.print_stats()
    return app


def _args(argv):
    opts = {"model": "models/person_detect.mpk", "cycles": 0, "period": 0}
    files = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--model", "--cycles", "--period"):
            opts[a[2:]] = argv[i + 1] if a == "--model" else int(argv[i + 1])
            i += 2
        else:
            files.append(a)
            i += 1
    return opts, files


if __name__ == "__main__":
    if sys.platform in ("linux", "darwin") and len(sys.argv) > 1:
        o, files = _args(sys.argv[1:])
        run(o["model"], files, o["cycles"], o["period"])
    else:                                                      # on the board: camera, LED on GPIO 4
        run(period_ms=500, wdt_ms=8000, led_pin=4)
