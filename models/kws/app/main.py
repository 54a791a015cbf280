# Keyword spotting: I2S microphone -> streaming MFCC (MLPerf Tiny KWS front end, fixed point) ->
# MLPerf Tiny DS-CNN -> commands.
#
# Board (ESP32 + I2S MEMS microphone, e.g. INMP441 on SCK 14 / WS 15 / SD 32; mpyml + kws.mpk copied):
#   main.py runs at boot, or `import main; main.run()`
# Unix port, replaying WAV clips (16 kHz mono 16-bit):
#   micropython main.py --model kws.mpk --clips yes.wav no.wav       one label per 1 s clip
#   micropython main.py --model kws.mpk --stream long.wav            streaming commands
#
# Clip mode prints "CLIP name=<file> label=<label> index=<i> score=<int8>" per clip; streaming mode
# prints "COMMAND label=<label> score=<avg int8> at_ms=<audio time>" per recognized command.
import array
import sys

import mpyml
from mpyml.app import App, RecognizeCommands
from mpyml.pre.audio import MFCC
from mpyml.sensors.microphone import Microphone, ReplayMicrophone

LABELS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "silence", "unknown")
SILENCE, UNKNOWN = 10, 11
HOP = 320                                   # 20 ms at 16 kHz: one MFCC frame step
CLIP_HOPS = 50                              # 1 s


def _s8(b):
    return b - 256 if b > 127 else b


class KwsPre:
    """Push each 20 ms chunk into the streaming MFCC; run the model every `stride` hops once the
    49-frame window is full (clip mode: once per 1 s clip, the MFCC restarted for every clip)."""

    def __init__(self, mfcc, model, stride, clips):
        self.mfcc = mfcc
        self.inp = model.input.buffer
        self.stride = stride
        self.clips = clips
        self.hops = 0

    def __call__(self, chunk, model):
        m = self.mfcc
        if self.clips and self.hops % CLIP_HOPS == 0:
            m.reset()
        m.push(chunk)
        self.hops += 1
        if self.clips:
            if self.hops % CLIP_HOPS:
                return False
        elif not m.ready() or self.hops % self.stride:
            return False
        m.features(self.inp)
        return True


class ClipLabel:
    """Clip mode postprocessing: the top label of each clip (always an event)."""

    def __init__(self, mic, verbose=True):
        self.mic = mic
        self.verbose = verbose
        self.index = -1
        self.score = -128

    def __call__(self, model):
        out = model.output.buffer
        best = 0
        for i in range(1, len(out)):
            if _s8(out[i]) > _s8(out[best]):
                best = i
        self.index = best
        self.score = _s8(out[best])
        if self.verbose:
            name = getattr(self.mic, "current", "mic").rsplit("/", 1)[-1]
            print("CLIP name=%s label=%s index=%d score=%d scores=%s" % (
                name, LABELS[best], best, self.score, ",".join(str(_s8(b)) for b in out)))
        return best


def make_app(model="models/kws.mpk", wavs=None, clips=False, stride=12, threshold=0.6, engine=None, verbose=True,
             mic_pins=(14, 15, 32), wdt_ms=0):
    m = mpyml.load(model)
    if wavs:
        mic = ReplayMicrophone(wavs, chunk=HOP)
    else:
        from machine import Pin
        sck, ws, sd = mic_pins
        mic = Microphone(sck=Pin(sck), ws=Pin(ws), sd=Pin(sd), bits=32, chunk=HOP, chunks=16)
    mfcc = MFCC(engine=engine)                 # 16 kHz, 480/320, 512 FFT, 40 mel 20-4000 Hz, 10 MFCC, 49 frames
    mfcc.set_output(m.input)
    chunk = array.array("h", bytes(2 * HOP))
    pre = KwsPre(mfcc, m, stride, clips)
    if clips:
        post = ClipLabel(mic, verbose)
        act = None
    else:
        # 3 results = 720 ms averaged; a command is not repeated for 1 s (suppression in results)
        post = RecognizeCommands(m, window=3, threshold=threshold, suppression=1000 // (stride * 20),
                                 minimum_count=2, ignore=(SILENCE, UNKNOWN))

        def act(event, app):
            if verbose:
                print("COMMAND label=%s score=%d at_ms=%d" % (LABELS[event], post.score, pre.hops * 20))

    app = App(mic, chunk, model=m, pre=pre, post=post, act=act, sleep="ms", wdt_ms=wdt_ms, name="kws")
    app.mfcc = mfcc
    return app


def run(model="models/kws.mpk", wavs=None, clips=False, cycles=0, engine=None):
    app = make_app(model, wavs, clips, engine=engine, wdt_ms=0 if wavs else 5000)
    app.run(cycles=cycles)
    app.print_stats()
    print("MFCC engine: %s" % app.mfcc.engine)
    return app


if __name__ == "__main__":
    argv = sys.argv[1:]
    if sys.platform in ("linux", "darwin") and argv:
        model, engine, files, clips = "models/kws.mpk", None, [], False
        i = 0
        while i < len(argv):
            if argv[i] == "--model":
                model = argv[i + 1]
                i += 2
            elif argv[i] == "--engine":
                engine = argv[i + 1]
                i += 2
            elif argv[i] in ("--clips", "--stream"):
                clips = argv[i] == "--clips"
                i += 1
            else:
                files.append(argv[i])
                i += 1
        run(model, files, clips, engine=engine)
    else:
        run()
