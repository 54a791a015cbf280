# Anomaly detection: vibration sensor on an ADC (1 kHz) -> 24 log-mel bands per 256-sample frame ->
# int8 autoencoder -> reconstruction error above a threshold = anomaly.
#
# Board (e.g. ESP32 + analog accelerometer / piezo on GPIO 34; models/anomaly.mpk + models/anomaly.json):
#   main.py runs at boot, or `import main; main.run(adc_pin=34)`
# Unix port, replaying recorded ADC counts (.npy, uint16):
#   micropython main.py --model anomaly.mpk --norm anomaly.json replay.npy
# Prints "FRAME i=<n> mse=<reconstruction MSE>" per frame and "ANOMALY i=<n> mse=<..>" per event.
import array
import json
import sys

import mpyml
from mpyml.app import App, Reconstruction
from mpyml.pre.audio import MFCC
from mpyml.sensors.adc import ADC, ReplayADC


class VibrationPre:
    """ADC counts -> int16 around mid-scale -> log-mel frame -> standardized, quantized model input."""

    def __init__(self, mfcc, model, frame):
        self.mfcc = mfcc
        self.chunk = array.array("h", bytes(2 * frame))
        self.inp = model.input.buffer
        self.n = frame

    def __call__(self, raw, model):
        c = self.chunk
        for i in range(self.n):
            c[i] = raw[i] - 32768
        self.mfcc.push(c)
        self.mfcc.features(self.inp)


def make_app(model="models/anomaly.mpk", norm="models/anomaly.json", replay=None, adc_pin=34, window=3, verbose=True):
    m = mpyml.load(model)
    f = open(norm)
    cfg = json.load(f)
    f.close()
    rate, frame = cfg["rate"], cfg["frame"]
    adc = ReplayADC(replay, loop=False, rate=rate) if replay else ADC(adc_pin, rate=rate)
    raw = array.array("H", bytes(2 * frame))
    mfcc = MFCC(sample_rate=rate, frame_length=frame, frame_step=frame, fft_length=frame, n_mels=cfg["n_mels"],
                fmin=0.0, fmax=rate / 2, n_mfcc=0, n_frames=1, normalize=32768)
    mfcc.set_output(m.input, cfg["mean"], cfg["std"])
    post = Reconstruction(m, cfg["threshold"], window=window, suppression=0)
    pre = VibrationPre(mfcc, m, frame)
    count = [0]

    class LogPost:
        before_invoke = post.before_invoke       # keep the input copy (see Reconstruction)

        def __call__(self, model):
            ev = post(model)
            count[0] += 1
            if verbose:
                print("FRAME i=%d mse=%.4f" % (count[0] - 1, post.mse()))
            return ev

    log_post = LogPost()

    def act(event, app):
        print("ANOMALY i=%d mse=%.4f" % (count[0] - 1, post.mse()))

    app = App(adc, raw, model=m, pre=pre, post=log_post, act=act, name="anomaly")
    app.recon = post
    return app


def run(model="models/anomaly.mpk", norm="models/anomaly.json", replay=None, adc_pin=34, cycles=0):
    app = make_app(model, norm, replay, adc_pin)
    app.run(cycles=cycles)
    app.print_stats()
    return app


if __name__ == "__main__":
    a = sys.argv[1:]
    if sys.platform in ("linux", "darwin") and a:
        opts = {"--model": "models/anomaly.mpk", "--norm": "models/anomaly.json"}
        files = []
        i = 0
        while i < len(a):
            if a[i] in opts:
                opts[a[i]] = a[i + 1]
                i += 2
            else:
                files.append(a[i])
                i += 1
        run(opts["--model"], opts["--norm"], files[0] if files else None)
    else:
        run()
