# Streams WAV clips through mpyml.pre.audio.MFCC (the KWS front end) and reports the features:
# raw Q16 values and int8 features for the host to compare with the NumPy reference.
import array

import mptest
from mptest import arg, report

from mpyml.pre.audio import MFCC
from mpyml.sensors import EndOfData
from mpyml.sensors.microphone import ReplayMicrophone


def test_stream_wavs():
    for eng in arg("engines", ["py"]):
        m = MFCC(engine=eng)
        m.set_output((arg("scale"), arg("zp")))
        for path in arg("wavs"):
            m.reset()
            mic = ReplayMicrophone(path, chunk=320)
            chunk = array.array("h", bytes(640))
            n = 0
            while n < 50:                      # 1 s; short clips are padded with zeros
                try:
                    mic.read_into(chunk)
                except EndOfData:
                    for i in range(320):
                        chunk[i] = 0
                m.push(chunk)
                n += 1
            q = bytearray(490)
            m.features(q)
            name = path.rsplit("/", 1)[-1]
            report("q_%s_%s" % (eng, name), list(q))
            report("raw_%s_%s" % (eng, name), list(m.compute()))


mptest.main(globals())
