# Signed models on the MicroPython unix port (run by tests/test_sign.py): mpyml.load(key=...), the board key
# file, tampering anywhere, wrong keys, unsigned files, the viper engine, the 250 KB verify time.
import os
import time

import mpyml
import mptest
from mptest import arg, eq, raises, report

SIGNED = arg("signed")
UNSIGNED = arg("unsigned")
PUB = arg("pub")
OTHER = arg("other_pub")
EXPECT = arg("expect_hex")


def _read(p):
    with open(p, "rb") as f:
        return f.read()


def _refused(buf, key, words):
    try:
        mpyml.load(buf, key=key)
    except ValueError as e:
        msg = str(e)
        for w in words:
            if w not in msg:
                raise AssertionError("error %r does not say %r" % (msg, w))
        return msg
    raise AssertionError("accepted")


def test_signed_loads_and_runs():
    for key in (PUB, _read(PUB), _read(PUB).decode().strip()):
        m = mpyml.load(SIGNED, key=key)
        eq(m.predict(bytes(m.input.size)).hex(), EXPECT, "output")
    eq(mpyml.load(SIGNED).predict(bytes(mpyml.load(SIGNED).input.size)).hex(), EXPECT, "no key: still loads")


def test_every_byte_changed_is_refused():
    data = _read(SIGNED)
    buf = bytearray(data)
    n = 0
    for i in range(len(buf)):
        buf[i] ^= 0x01 << (i % 8)
        try:
            mpyml.load(buf, key=PUB)
        except ValueError:
            n += 1
        else:
            raise AssertionError("byte %d changed and still accepted" % i)
        buf[i] = data[i]
    eq(n, len(data), "refusals")
    raises(ValueError, mpyml.load, data[:-1], PUB)           # truncated
    raises(ValueError, mpyml.load, data + b"\0", PUB)        # extended
    report("bytes_checked", n)


def test_tampered_weight_message():
    buf = bytearray(_read(SIGNED))
    buf[len(buf) // 2] ^= 0x40
    _refused(buf, PUB, ("signature check failed", "modified after signing"))


def test_wrong_key_is_refused():
    _refused(_read(SIGNED), OTHER, ("signed with another key",))


def test_unsigned_refused_when_key_required():
    _refused(_read(UNSIGNED), PUB, ("not signed", "mpyml pack --sign"))
    mpyml.load(UNSIGNED)  # no key: unchanged behaviour


def test_bad_key_argument():
    _refused(_read(SIGNED), b"short", ("not an Ed25519 public key",))
    _refused(_read(SIGNED), "no/such/key.pub", ("key file no/such/key.pub not found",))


def test_board_key_file():
    # the key `mpyml deploy --key` installs; the unix port's working directory is its flash
    with open("mpyml_key.pub", "wb") as f:
        f.write(_read(PUB))
    try:
        mpyml.load(SIGNED)
        _refused(_read(UNSIGNED), None, ("not signed", "mpyml_key.pub"))
        buf = bytearray(_read(SIGNED))
        buf[70] ^= 1
        _refused(buf, None, ("signature check failed",))
    finally:
        os.remove("mpyml_key.pub")
    mpyml.load(UNSIGNED)


def test_viper_engine_with_signed_model():
    m = mpyml.load(SIGNED, engine="viper", key=PUB)
    eq(m.engine, "mpyml.viper_engine", "engine")
    eq(m.predict(bytes(m.input.size)).hex(), EXPECT, "viper output")


def test_verify_250k_time():
    import mpyml_engine
    msg = _read(arg("big_msg"))
    sig = _read(arg("big_sig"))
    pub = _read(arg("big_pub"))
    best = None
    for _ in range(5):
        t = time.ticks_us()
        ok = mpyml_engine.verify(pub, msg, sig)
        dt = time.ticks_diff(time.ticks_us(), t)
        best = dt if best is None or dt < best else best
        eq(ok, True, "verify")
    bad = bytearray(msg)
    bad[-1] ^= 1
    eq(mpyml_engine.verify(pub, bad, sig), False, "changed message")
    raises(ValueError, mpyml_engine.verify, pub[:31], msg, sig)
    report("verify_250k_us", best)


mptest.main(globals())
