# Fake of the lemariva/micropython-camera-driver module API (module-level functions), for tests.
GRAYSCALE = 2
RGB565 = 3
JPEG = 5
FRAME_96X96 = 1
FRAME_QQVGA = 2
FRAME_QVGA = 6
calls = []
_state = {"fmt": None, "size": None, "n": 0, "short_every": 0}
_SIZES = {FRAME_96X96: (96, 96), FRAME_QQVGA: (160, 120), FRAME_QVGA: (320, 240)}


def init(id, format=JPEG, framesize=FRAME_QVGA, **kw):
    calls.append(("init", format, framesize))
    _state["fmt"] = format
    _state["size"] = _SIZES[framesize]
    return True


def deinit():
    calls.append(("deinit",))


def capture():
    w, h = _state["size"]
    bpp = 1 if _state["fmt"] == GRAYSCALE else 2
    _state["n"] += 1
    n = _state["n"]
    se = _state["short_every"]
    if se and n % se == 0:
        return b""                        # the driver returns an empty frame on a timeout
    return bytes((i * 7 + n) & 0xFF for i in range(w * h * bpp))
