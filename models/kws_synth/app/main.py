# Keyword spotting on a model trained on offline-synthesized speech (espeak-ng): the board's own
# fixed-point streaming MFCC (mpyml.pre.audio.MFCC, MLPerf Tiny KWS front end) -> small int8 DS-CNN.
#
# Board (ESP32 + I2S MEMS microphone, e.g. INMP441 on SCK 14 / WS 15 / SD 32; mpyml + kws_synth.mpk
# copied): main.py runs at boot (streaming commands), or `import main; main.run()`.
# Unix port:
#   micropython main.py --features clips.raw feats.raw           MFCC of each 1 s clip (raw int16, 16000
#                                                                 samples a clip) -> int32 Q16, 49 x 10 a clip
#   micropython main.py --model kws_synth.mpk --classify clips.raw   the same front end -> model, per clip
#   micropython main.py --model kws_synth.mpk --clips a.wav b.wav    one label per 1 s WAV clip
#
# --features is how the host builds the training set (models/kws_synth/build.py): the model is trained on
# exactly the features this code computes on the board. --classify and --clips print
# "CLIP name=<clip> label=<label> index=<i> score=<int8>" per clip; a summary line "DONE clips=<n>" ends.
import array
import sys

from mpyml.pre.audio import MFCC

LABELS = ("yes", "no", "up", "down", "left", "right", "stop", "go", "silence", "unknown")
SILENCE, UNKNOWN = 8, 9
HOP = 320                                   # 20 ms at 16 kHz: one MFCC frame step
CLIP = 16000                                # 1 s: 50 hops -> 49 frames
FEATURES = 49 * 10


def _s8(b):
    return b - 256 if b > 127 else b


def _clip_features(mfcc, clip, hop):
    """Reset the MFCC and push the 50 hops of one 1 s clip (array('h') of CLIP samples)."""
    mfcc.reset()
    mv = memoryview(clip)
    for i in range(0, CLIP, HOP):
        hop[:] = mv[i:i + HOP]
        mfcc.push(hop)


def features(src, dst, engine=None):
    """Q16 MFCCs (int32, natural-log units x 65536) of every clip in the raw int16 file src, into dst."""
    mfcc = MFCC(engine=engine)
    clip = array.array("h", bytes(2 * CLIP))
    hop = array.array("h", bytes(2 * HOP))
    out = array.array("i", bytes(4 * FEATURES))
    n = 0
    with open(src, "rb") as f, open(dst, "wb") as g:
        while f.readinto(clip) == 2 * CLIP:
            _clip_features(mfcc, clip, hop)
            mfcc.compute(out)
            g.write(out)
            n += 1
    print("DONE clips=%d engine=%s" % (n, mfcc.engine))


def _top(model):
    out = model.output.buffer
    best = 0
    for i in range(1, len(out)):
        if _s8(out[i]) > _s8(out[best]):
            best = i
    return best, _s8(out[best])


def classify(model_path, clips, engine=None):
    """clips: a raw int16 file of 1 s clips, or a list of 16 kHz WAV files (one 1 s clip each)."""
    import mpyml

    m = mpyml.load(model_path)
    mfcc = MFCC(engine=engine)
    mfcc.set_output(m.input)
    clip = array.array("h", bytes(2 * CLIP))
    hop = array.array("h", bytes(2 * HOP))
    n = 0
    if isinstance(clips, str):
        f = open(clips, "rb")
        names = None
    else:
        from mpyml.sensors.microphone import ReplayMicrophone
        names = clips
    while True:
        if names is None:
            if f.readinto(clip) != 2 * CLIP:
                break
            name = str(n)
        else:
            if n == len(names):
                break
            name = names[n].rsplit("/", 1)[-1]
            mic = ReplayMicrophone(names[n], chunk=CLIP)
            mic.read_into(clip)
        _clip_features(mfcc, clip, hop)
        mfcc.features(m.input.buffer)
        m.invoke()
        best, score = _top(m)
        print("CLIP name=%s label=%s index=%d score=%d" % (name, LABELS[best], best, score))
        n += 1
    if names is None:
        f.close()
    print("DONE clips=%d engine=%s" % (n, mfcc.engine))


def run(model="models/kws_synth.mpk", mic_pins=(14, 15, 32), stride=12, threshold=0.6, cycles=0):
    """Streaming commands from the I2S microphone (the models/kws app's loop with this model's labels)."""
    import mpyml
    from machine import Pin
    from mpyml.app import App, RecognizeCommands
    from mpyml.sensors.microphone import Microphone

    m = mpyml.load(model)
    sck, ws, sd = mic_pins
    mic = Microphone(sck=Pin(sck), ws=Pin(ws), sd=Pin(sd), bits=32, chunk=HOP, chunks=16)
    mfcc = MFCC()
    mfcc.set_output(m.input)
    state = {"hops": 0}

    def pre(chunk, model):
        mfcc.push(chunk)
        state["hops"] += 1
        if not mfcc.ready() or state["hops"] % stride:
            return False
        mfcc.features(model.input.buffer)
        return True

    post = RecognizeCommands(m, window=3, threshold=threshold, suppression=1000 // (stride * 20),
                             minimum_count=2, ignore=(SILENCE, UNKNOWN))

    def act(event, app):
        print("COMMAND label=%s score=%d at_ms=%d" % (LABELS[event], post.score, state["hops"] * 20))

    app = App(mic, array.array("h", bytes(2 * HOP)), model=m, pre=pre, post=post, act=act, sleep="ms",
              wdt_ms=5000, name="kws_synth")
    app.run(cycles=cycles)
    return app


def _main(argv):
    model, engine, mode, files = "models/kws_synth.mpk", None, None, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--model", "--engine"):
            if a == "--model":
                model = argv[i + 1]
            else:
                engine = argv[i + 1]
            i += 2
            continue
        if a in ("--features", "--classify", "--clips"):
            mode = a
        else:
            files.append(a)
        i += 1
    if mode == "--features" and len(files) == 2:
        features(files[0], files[1], engine)
    elif mode == "--classify" and len(files) == 1:
        classify(model, files[0], engine)
    elif mode == "--clips" and files:
        classify(model, files, engine)
    else:
        print("usage: main.py --features CLIPS.raw OUT.raw | [--model M.mpk] --classify CLIPS.raw | "
              "[--model M.mpk] --clips A.wav ...")
        sys.exit(2)


if __name__ == "__main__":
    if sys.platform in ("linux", "darwin") and len(sys.argv) > 1:
        _main(sys.argv[1:])
    else:
        run()
